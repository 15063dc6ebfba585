"""Logs: append, read, seek, truncate, clear, keys, events."""

import threading

import pytest

import libdat


def test_append_and_get(store):
    log = store.core(name="chat")
    assert log.writable
    assert len(log) == 0
    assert log.append(b"hello") == 0
    assert log.append([b"a", b"bb", b"ccc"]) == 1  # one signed batch, first index
    assert log.append(bytearray(b"from a bytearray")) == 4
    assert log.append(memoryview(b"from a memoryview")) == 5
    assert len(log) == log.length == 6
    assert log.byte_length == 5 + 1 + 2 + 3 + 16 + 17
    assert log.get(0) == b"hello"
    assert [log.get(i) for i in range(1, 4)] == [b"a", b"bb", b"ccc"]
    assert log.get(5, timeout=0) == b"from a memoryview"
    assert log.has(3) and not log.has(6)
    assert log.contiguous_length == 6


def test_keys_and_names(store):
    log = store.core(name="chat")
    assert len(log.key) == 32 and len(log.discovery_key) == 32
    assert log.key != log.discovery_key
    # a name always gives the same log; the key finds it too (bytes or hex)
    assert store.core(name="chat").key == log.key
    assert store.core(key=log.key).writable
    assert store.core(key=log.key.hex()).key == log.key
    assert store.core(name="other").key != log.key
    # no name, no key: a new log each time
    a, b = store.core(), store.core()
    assert a.key != b.key and a.writable
    assert set(store.keys()) >= {log.key, a.key, b.key}


def test_reopen_keeps_blocks(tmp_path):
    with libdat.Store(tmp_path / "s") as s:
        key = s.core(name="x").key
        s.core(name="x").append([b"one", b"two"])
    with libdat.Store(tmp_path / "s") as s:
        log = s.core(key=key)
        assert len(log) == 2 and log.get(1) == b"two" and log.writable


def test_seek_and_byte_offset(store):
    log = store.core()
    blocks = [b"x" * n for n in (3, 0, 5, 1, 10)]
    log.append(blocks)
    offset = 0
    for i, b in enumerate(blocks):
        assert log.byte_offset(i) == offset
        for k in range(len(b)):
            assert log.seek(offset + k) == (i, k)
        offset += len(b)
    assert log.seek(7) == (2, 4)
    assert log.seek(8) == (3, 0)


def test_truncate_and_clear(store):
    log = store.core()
    log.append([b"a", b"b", b"c", b"d"])
    before = log.tree_hash()
    assert log.fork == 0
    assert log.tree_hash(2) != before and len(before) == 32
    assert log.clear(1, 3) == 2
    assert not log.has(1) and log.has(3)
    with pytest.raises(libdat.NotAvailable):
        log.get(1)
    log.truncate(2)
    assert len(log) == 2 and log.fork == 1
    assert log.append(b"e") == 2


def test_events_iterator(store):
    log = store.core()
    with log.events("append") as events:
        log.append(b"one")
        log.append([b"two", b"three"])
        first = events.next(timeout=5)
        second = events.next(timeout=5)
    assert (first.type, first.length, first.byte_length) == ("append", 1, 3)
    assert (second.length, second.byte_length) == (3, 11)
    assert first.key == log.discovery_key
    assert first.index is None
    assert "append" in repr(first)
    # a closed iterator ends
    assert list(events) == []


def test_store_events_and_callbacks(store):
    seen = []
    got = threading.Event()

    def on_append(event):
        seen.append((event.length, threading.current_thread() is threading.main_thread()))
        if event.length == 2:
            got.set()

    log = store.core(name="events")
    sub = store.on("append", on_append)
    assert sub.active
    events = store.events()
    log.append(b"a")
    log.append(b"b")
    assert got.wait(5)
    sub.close()
    assert not sub.active
    log.append(b"c")
    assert [length for length, _ in seen] == [1, 2]
    # callbacks run on a thread of the subscription's own, never the caller's
    assert not any(main for _, main in seen)
    lengths = [events.next(timeout=5).length for _ in range(3)]
    assert lengths == [1, 2, 3]
    # per-log callbacks
    with log.on("*", lambda e: seen.append(("log", e.type))) as sub2:
        log.append(b"d")
        for _ in range(100):
            if ("log", "append") in seen:
                break
            threading.Event().wait(0.05)
    assert ("log", "append") in seen and not sub2.active


def test_a_slow_reader_gets_a_lagged_event(tmp_path):
    # the buffer is bounded (1024 events): a reader that falls behind is told how many it missed
    with libdat.Store(tmp_path / "s", durability="no-sync") as store:
        log = store.core()
        events = log.events()
        for i in range(1100):
            log.append(b"%d" % i)
        first = events.next(timeout=5)
        assert (first.type, first.count) == ("lagged", 1100 - 1024)
        second = events.next(timeout=5)
        assert (second.type, second.length) == ("append", 1100 - 1024 + 1)

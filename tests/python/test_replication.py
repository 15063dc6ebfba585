"""Two stores replicating over TCP on 127.0.0.1: logs, sparse ranges with callbacks, live drive
changes, remote reads, downloads and events."""

import io
import random
import socket
import threading
import time

import pytest

import libdat
from conftest import synced_drive


def test_full_log_replicates_and_follows(peers):
    log = peers.writer.core(name="feed")
    log.append([b"block %d" % i for i in range(50)])
    remote = peers.reader.core(key=log.key)  # not sparse: the whole log, live
    assert not remote.writable
    assert remote.wait_length(50, timeout=10) == 50
    assert [remote.get(i, timeout=10) for i in range(50)] == [b"block %d" % i for i in range(50)]
    log.append(b"live")
    assert remote.get(50, timeout=10) == b"live"
    assert remote.key == log.key and remote.byte_length == log.byte_length
    with pytest.raises(libdat.NotWritable):
        remote.append(b"nope")


def test_prioritize_on_a_sparse_replica_calls_back(peers):
    log = peers.writer.core(name="sparse")
    log.append([bytes([i]) * 1000 for i in range(100)])
    remote = peers.reader.core(key=log.key, sparse=True)
    called = []
    done = threading.Event()

    def callback(error):
        called.append((error, threading.current_thread() is threading.main_thread()))
        done.set()

    r = remote.prioritize(10, 20, priority=5, linear=True, callback=callback)
    assert (r.start, r.end) == (10, 20)
    r.wait(timeout=10)
    assert r.done and not r.cancelled
    assert done.wait(5)
    assert called == [(None, False)]  # success, on a libdat thread
    assert all(remote.has(i) for i in range(10, 20))
    # sparse: nothing else was fetched
    assert not remote.has(0) and not remote.has(50)
    assert remote.get(15, timeout=0) == bytes([15]) * 1000
    with pytest.raises(libdat.NotAvailable):
        remote.get(50, timeout=0)
    r.cancel()
    # a block read with a timeout is fetched on demand
    assert remote.get(70, timeout=10) == bytes([70]) * 1000
    # bisect / random ranges and the context manager
    with remote.prioritize(30, 40, bisect=True, hotswap=True) as r2:
        r2.wait(10)
    assert r2.cancelled and all(remote.has(i) for i in range(30, 40))
    with pytest.raises(libdat.InvalidArgument):
        remote.prioritize(0, 1, linear=True, bisect=True)


def test_cancelled_range_reports_cancel(peers):
    log = peers.writer.core(name="never")
    log.append(b"x")
    remote = peers.reader.core(key=log.key, sparse=True)
    errors = []
    done = threading.Event()
    r = remote.prioritize(5, 10, callback=lambda e: (errors.append(e), done.set()))
    with pytest.raises(libdat.TimeoutError) as timeout:
        r.wait(timeout=0.2)
    assert "not complete after" in str(timeout.value)
    remote.unprioritize(r)
    assert r.cancelled
    assert done.wait(5)
    assert isinstance(errors[0], libdat.CancelledError)
    with pytest.raises(libdat.CancelledError):
        r.wait(1)
    # a block no peer has: the core's timeout, as libdat.TimeoutError (and the builtin)
    with pytest.raises(TimeoutError) as e:
        remote.get(1000, timeout=0.3)
    assert isinstance(e.value, libdat.TimeoutError)
    assert str(e.value).startswith("timed out: block 1000")


def test_callback_that_raises_is_reported_and_later_ones_run(peers, unraisable):
    log = peers.writer.core(name="raises")
    log.append([b"a", b"b", b"c"])
    remote = peers.reader.core(key=log.key, sparse=True)

    def bad(error):
        raise RuntimeError("callback failed on purpose")

    ok = threading.Event()
    r1 = remote.prioritize(0, 1, callback=bad)
    r1.wait(10)
    assert unraisable.event.wait(5)
    info = unraisable.seen[0]
    assert isinstance(info.exc_value, RuntimeError) and info.object is bad
    r2 = remote.prioritize(1, 3, callback=lambda e: ok.set())
    r2.wait(10)
    assert ok.wait(5)
    # the library goes on: more replication, more callbacks
    assert remote.get(2, timeout=10) == b"c"


def test_live_changes_from_the_other_store(peers):
    drive = peers.writer.drive()
    drive.put("/first.txt", b"1")
    remote = peers.reader.drive(key=drive.key, sparse=True)
    assert remote.version == drive.version and not remote.writable
    assert [c.name for c in remote.changes()] == ["/first.txt"]
    live = remote.changes(since=remote.version, live=True)
    drive.put("/second.txt", b"two")
    drive.symlink("/link", "/second.txt")
    change = live.next(timeout=10)
    assert (change.type, change.name, change.version) == ("put", "/second.txt", 3)
    assert change.entry.size == 3
    link = next(live)
    assert link.entry.linkname == "/second.txt"
    live.close()


def test_remote_drive_reads(peers):
    drive = peers.writer.drive()
    rnd = random.Random(3)
    data = rnd.randbytes(2 * 1024 * 1024 + 77)
    drive.put("/data/big.bin", data)
    drive.put("/data/small.txt", b"small")
    remote = synced_drive(peers.reader, drive)
    assert remote.get("/data/small.txt") == b"small"
    assert [n for n, _ in remote.list("/data")] == ["/data/big.bin", "/data/small.txt"]
    f = io.BufferedReader(remote.open("/data/big.bin"))
    for _ in range(100):
        offset = rnd.randrange(len(data))
        n = rnd.choice([1, 1000, 65536, 200_000])
        f.seek(offset)
        assert f.read(n) == data[offset : offset + n]
    assert b"".join(remote.read_stream("/data/big.bin", 1_000_000, 1_099_999)) == data[1_000_000:1_100_000]
    # only what was read (and prefetched) came over: the file is 33 blocks
    content = remote.content_log
    fetched = sum(content.has(i) for i in range(len(content)))
    assert 0 < fetched <= len(content)


def test_download_with_progress(peers):
    drive = peers.writer.drive()
    files = {f"/dir/{i}.bin": bytes([i]) * (100_000 + i) for i in range(5)}
    for p, d in files.items():
        drive.put(p, d)
    drive.put("/other.txt", b"not downloaded")
    remote = synced_drive(peers.reader, drive)
    updates = []
    dl = remote.download("/dir", progress=lambda done, total: updates.append((done, total)))
    fetched = dl.wait(timeout=20)
    assert dl.done and fetched > 0
    done, total = dl.progress
    assert done == total and total >= 10
    assert all(remote.get(p) == d for p, d in files.items())
    for _ in range(100):  # progress callbacks run on the callback thread, after the fact
        if updates and updates[-1][0] == updates[-1][1]:
            break
        threading.Event().wait(0.05)
    assert updates[-1] == (total, total)


def test_a_download_can_be_cancelled(peers):
    drive = peers.writer.drive()
    drive.put("/big.bin", bytes(range(256)) * 4096)  # 1 MiB: 16 blocks
    remote = synced_drive(peers.reader, drive)
    assert remote.entry("/big.bin").size == 1 << 20
    peers.connection.close()  # no peer is left to send the content
    remote = peers.reader.drive(key=drive.key, sparse=True, timeout=60)
    dl = remote.download("/big.bin")
    assert not dl.done
    started = time.monotonic()
    dl.cancel()
    with pytest.raises(libdat.CancelledError):
        dl.wait(timeout=30)
    assert time.monotonic() - started < 30, "stopped by the cancel, not the 60 s timeout"
    assert dl.done
    dl.cancel()  # twice does nothing


def test_store_events_over_a_connection(peers):
    log = peers.writer.core(name="evented")
    log.append([b"x" * 100] * 5)
    downloads = []
    got = threading.Event()

    def on_download(event):
        downloads.append(event.index)
        if len(downloads) == 5:
            got.set()

    uploads = peers.writer.events("upload")
    peer_adds = peers.reader.events("peer-add")
    sub = peers.reader.on("download", on_download)
    remote = peers.reader.core(key=log.key)
    assert got.wait(10)
    sub.close()
    assert sorted(downloads) == [0, 1, 2, 3, 4]
    up = uploads.next(timeout=10)
    assert up.type == "upload" and up.key == log.discovery_key
    keys = set()
    while log.discovery_key not in keys:
        e = peer_adds.next(timeout=10)
        assert e is not None
        keys.add(e.key)
    assert len(remote) == 5
    with pytest.raises(libdat.InvalidArgument):
        peers.reader.on("no-such-event", print)


def test_connection_and_server_close(peers):
    log = peers.writer.core(name="c")
    log.append(b"1")
    remote = peers.reader.core(key=log.key)
    assert remote.get(0, timeout=10) == b"1"
    assert not peers.connection.closed
    peers.connection.close()
    assert peers.connection.closed
    peers.connection.close()  # twice is fine
    log.append(b"2")
    with pytest.raises(libdat.TimeoutError):
        remote.get(1, timeout=0.3)
    # a new connection picks up where it left
    with peers.reader.connect(peers.server.address):
        assert remote.get(1, timeout=10) == b"2"
    peers.server.close()
    assert peers.server.closed
    # (the core's Server::close aborts its accept task without waiting for it: the port closes
    # a moment later)
    host, port = peers.server.address.rsplit(":", 1)

    def port_closed():
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    assert wait_for(port_closed)
    with pytest.raises(libdat.IoError) as refused:
        peers.reader.connect(peers.server.address)
    assert isinstance(refused.value, OSError)


def test_blocking_calls_release_the_gil_and_notice_ctrl_c(peers):
    log = peers.writer.core(name="gil")
    log.append(b"x")
    remote = peers.reader.core(key=log.key, sparse=True)
    counted = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counted[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        with pytest.raises(libdat.TimeoutError):
            remote.get(1000, timeout=0.5)
    finally:
        stop.set()
        t.join()
    assert counted[0] > 1000  # the other thread ran while this one waited

    # a wait without a time limit is interrupted by Ctrl-C (SIGINT). Python runs the handler
    # at the main thread's next check: if that falls in a finalizer the KeyboardInterrupt is
    # lost (reported as unraisable), so the interrupt is repeated until the wait has raised,
    # and interrupts after that are ignored.
    import _thread
    import signal

    r = remote.prioritize(500, 600)
    raised = threading.Event()

    def on_sigint(signum, frame):
        if not raised.is_set():
            raise KeyboardInterrupt

    def interrupt():
        while not raised.wait(0.3):
            _thread.interrupt_main()

    old = signal.signal(signal.SIGINT, on_sigint)
    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            r.wait()
    finally:
        raised.set()
        interrupter.join()
        signal.signal(signal.SIGINT, old)
    r.cancel()


def wait_for(condition, timeout=10.0):
    """Polls `condition()` until it is true or `timeout` seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        threading.Event().wait(0.02)


def test_store_on_every_event_kind(tmp_path):
    """store.on() callbacks for download, upload, peer-add, peer-remove and append, each with the
    event's attributes, on both sides of one connection."""
    writer = libdat.Store(tmp_path / "w")
    reader = libdat.Store(tmp_path / "r")
    seen = {"w": [], "r": []}
    lock = threading.Lock()

    def recorder(side):
        def record(event):
            with lock:
                seen[side].append(event)

        return record

    def events(side, kind):
        with lock:
            return [e for e in seen[side] if e.type == kind]

    subs = [writer.on(k, recorder("w")) for k in ("append", "upload", "peer-add", "peer-remove")]
    subs += [reader.on(k, recorder("r")) for k in ("download", "peer-add", "peer-remove")]
    try:
        log = writer.core(name="evented")
        log.append([b"a" * 10, b"b" * 20, b"c" * 30])
        appended = wait_for(lambda: events("w", "append"))
        assert [(e.length, e.byte_length, e.key) for e in appended] == [(3, 60, log.discovery_key)]

        server = writer.listen("127.0.0.1:0")
        conn = reader.connect(server.address)
        remote = reader.core(key=log.key)  # the whole log
        assert remote.wait_length(3, timeout=10) == 3
        downloads = wait_for(lambda: len(events("r", "download")) == 3 and events("r", "download"))
        assert sorted((e.index, e.bytes) for e in downloads) == [(0, 10), (1, 20), (2, 30)]
        assert all(e.key == log.discovery_key and e.peer is not None for e in downloads)
        uploads = wait_for(lambda: len(events("w", "upload")) >= 3 and events("w", "upload"))
        assert {e.index for e in uploads} == {0, 1, 2} and all(e.key == log.discovery_key for e in uploads)
        for side in ("w", "r"):
            added = wait_for(lambda: [e for e in events(side, "peer-add") if e.key == log.discovery_key])
            assert added, f"peer-add on {side}"
        assert not events("w", "peer-remove") and not events("r", "peer-remove")
        # the connection ends: both sides report peer-remove for the log they shared
        conn.close()
        for side in ("r", "w"):
            removed = wait_for(lambda: [e for e in events(side, "peer-remove") if e.key == log.discovery_key])
            assert removed, f"peer-remove on {side}"
    finally:
        for s in subs:
            s.close()
        reader.close()
        writer.close()


@pytest.mark.parametrize(
    "options",
    [{}, {"linear": True}, {"bisect": True}, {"hotswap": True}, {"linear": True, "hotswap": True, "priority": 7}],
    ids=["random", "linear", "bisect", "hotswap", "linear-hotswap-p7"],
)
def test_prioritize_orders_with_callback(peers, options):
    """A range past the writer's length is not done; it completes (and calls back, once, with
    None) when the writer appends the blocks; only the range's blocks come over."""
    log = peers.writer.core(name="grow")
    log.append([b"%d" % i for i in range(10)])
    remote = peers.reader.core(key=log.key, sparse=True)
    assert remote.wait_length(10, timeout=10) == 10
    calls = []
    called = threading.Event()

    def callback(error):
        calls.append(error)
        called.set()

    r = remote.prioritize(12, 16, callback=callback, **options)
    assert not r.done and not r.cancelled
    with pytest.raises(libdat.TimeoutError):
        r.wait(timeout=0.1)
    assert not called.is_set()
    log.append([b"%d" % i for i in range(10, 20)])
    r.wait(timeout=10)
    assert r.done
    assert called.wait(5) and calls == [None]
    assert [remote.get(i, timeout=0) for i in range(12, 16)] == [b"12", b"13", b"14", b"15"]
    assert not any(remote.has(i) for i in list(range(0, 12)) + list(range(16, 20)))
    r.cancel()
    assert r.cancelled and r.done  # done stays true once reached
    assert calls == [None]  # the callback ran once


def test_subscription_callback_that_raises_is_reported_and_keeps_running(store, unraisable):
    log = store.core()
    lengths = []
    third = threading.Event()

    def bad(event):
        lengths.append(event.length)
        if event.length == 3:
            third.set()
        if event.length == 1:
            raise ValueError("a callback bug")

    sub = store.on("append", bad)
    log.append(b"1")
    assert unraisable.event.wait(5)
    info = unraisable.seen[0]
    assert isinstance(info.exc_value, ValueError) and str(info.exc_value) == "a callback bug"
    assert info.object is bad
    # the subscription's thread survived: later events still call back
    log.append(b"2")
    log.append(b"3")
    assert third.wait(5)
    assert lengths == [1, 2, 3] and sub.active and len(unraisable.seen) == 1
    sub.close()


def test_progress_callback_that_raises_does_not_stop_the_download(peers, unraisable):
    drive = peers.writer.drive()
    drive.put("/f.bin", bytes(range(256)) * 1000)
    remote = synced_drive(peers.reader, drive)

    calls = []

    def bad(done, total):
        calls.append((done, total))
        if len(calls) == 1:  # once: later calls would reach pytest's own hook after the test
            raise RuntimeError("progress callback bug")

    dl = remote.download("/", progress=bad)
    assert dl.wait(timeout=20) > 0 and dl.done
    assert unraisable.event.wait(5)
    assert isinstance(unraisable.seen[0].exc_value, RuntimeError)
    assert remote.get("/f.bin") == bytes(range(256)) * 1000
    # the callback thread goes on: the next download's progress arrives (nothing left to fetch)
    updates = []
    again = remote.download("/", progress=lambda done, total: updates.append((done, total)))
    assert again.wait(timeout=20) == 0
    assert wait_for(lambda: updates and updates[-1][0] == updates[-1][1] > 0)

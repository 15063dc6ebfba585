"""Errors: the exception classes, the core's messages, and use after close."""

import random
import socket
import threading
import time

import pytest

import libdat
from libdat import errors


def test_hierarchy():
    assert libdat.Error is libdat.DatError
    for name in errors.__all__:
        cls = getattr(libdat, name)
        assert issubclass(cls, libdat.DatError)
    assert issubclass(libdat.TimeoutError, TimeoutError)
    assert issubclass(libdat.InvalidArgument, ValueError)
    assert issubclass(libdat.OutOfBounds, libdat.InvalidArgument)
    assert issubclass(libdat.OutOfBounds, IndexError)
    assert issubclass(libdat.NotFound, LookupError)
    assert issubclass(libdat.StorageError, libdat.IoError)
    assert issubclass(libdat.IoError, OSError)


def test_core_messages(store):
    log = store.core()
    log.append([b"a", b"b"])
    with pytest.raises(libdat.OutOfBounds) as e:
        log.get(5)
    assert str(e.value) == "out of bounds: block 5 of a log with 2 blocks"
    with pytest.raises(IndexError):
        log.byte_offset(3)
    log.clear(0, 1)
    with pytest.raises(libdat.NotAvailable) as e:
        log.get(0, timeout=0)
    assert str(e.value) == "block 0 is not available locally"

    drive = store.drive()
    with pytest.raises(libdat.NotFound) as e:
        drive.open("/nothing.bin")
    assert str(e.value) == "not found: no file at /nothing.bin"
    drive.symlink("/link", "/elsewhere")
    with pytest.raises(libdat.NotFound) as e:
        drive.read_stream("/link")
    assert str(e.value) == "not found: no file at /link"
    with pytest.raises(libdat.InvalidArgument) as e:
        drive.put("/bad/../../path", b"x")
    assert str(e.value).startswith("invalid argument: ")
    with pytest.raises(libdat.OutOfBounds) as e:
        drive.checkout(99)
    assert "version 99 is past the drive's current version" in str(e.value)


def test_remote_writes_are_refused(peers):
    log = peers.writer.core(name="w")
    log.append(b"x")
    remote = peers.reader.core(key=log.key, sparse=True)
    with pytest.raises(libdat.NotWritable) as e:
        remote.append(b"y")
    assert str(e.value).startswith("not writable: ")


def test_bad_arguments(store, tmp_path):
    with pytest.raises(libdat.InvalidArgument) as e:
        store.core(key=b"short")
    assert str(e.value) == "invalid argument: a key is 32 bytes, not 5"
    with pytest.raises(ValueError):
        store.core(key="zz" * 32)
    with pytest.raises(libdat.InvalidArgument):
        store.core(name="x", key=bytes(32))
    with pytest.raises(TypeError):
        store.core().append("text is not bytes")
    with pytest.raises(libdat.InvalidArgument):
        store.core().get(0, timeout=-1)
    with pytest.raises(libdat.InvalidArgument):
        store.events("nope")
    with pytest.raises(libdat.InvalidArgument):
        libdat.Store(tmp_path / "d", durability="sometimes")
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(libdat.IoError):
        libdat.Store(tmp_path / "file")
    # a remote drive no peer has
    with pytest.raises(libdat.TimeoutError) as e:
        store.drive(key=bytes(range(32)), timeout=0.2)
    assert str(e.value).startswith("timed out: no peer sent drive")


def test_use_after_close(tmp_path):
    store = libdat.Store(tmp_path / "s")
    log = store.core(name="x")
    log.append(b"1")
    drive = store.drive()
    drive.put("/f", b"data")
    f = drive.open("/f")
    events = store.events()
    changes = drive.changes(live=True)
    r = log.prioritize(0, 1)
    assert "closed" not in repr(store)
    store.close()
    assert store.closed and "closed" in repr(store)
    store.close()  # twice is fine
    for call in [
        lambda: store.core(name="x"),
        lambda: store.drive(),
        lambda: store.keys(),
        lambda: store.listen(),
        lambda: store.events(),
        lambda: log.get(0),
        lambda: len(log),
        lambda: log.append(b"2"),
        lambda: drive.get("/f"),
        lambda: drive.version,
        lambda: f.read(1),
        lambda: r.wait(1),
    ]:
        with pytest.raises(libdat.ClosedError) as e:
            call()
        assert str(e.value) == "the store is closed"
    # iterators end
    assert list(events) == [] and list(changes) == []
    # the directory can be opened again
    with libdat.Store(tmp_path / "s") as again:
        assert again.core(name="x").get(0) == b"1"
        assert again.drive().get("/f") == b"data"


def test_context_manager_closes(tmp_path):
    with libdat.Store(tmp_path / "s") as store:
        log = store.core()
    with pytest.raises(libdat.ClosedError):
        log.append(b"x")


def _tamper(path, needle, at):
    """Flips one byte of every occurrence of `needle` in the file at `path`; returns how many."""
    data = bytearray(path.read_bytes())
    hits, i = 0, data.find(needle)
    while i >= 0:
        data[i + at] ^= 0x55
        hits += 1
        i = data.find(needle, i + len(needle))
    path.write_bytes(bytes(data))
    return hits


def test_corrupted_block_is_a_corruption_error(tmp_path):
    with libdat.Store(tmp_path / "s") as store:
        log = store.core(name="blocks")
        log.append([(b"block number %04d " % i) * 20 for i in range(10)])
        key = log.key
    # bit rot in block 7's bytes, in the store's LMDB data file
    assert _tamper(tmp_path / "s" / "data.mdb", b"block number 0007 block number 0007", 3) > 0
    with libdat.Store(tmp_path / "s") as store:
        log = store.core(key=key)
        with pytest.raises(libdat.CorruptionError) as e:
            log.get(7)
        assert isinstance(e.value, libdat.DatError)
        message = str(e.value)
        assert message.startswith("corrupt store: ") and "block 7" in message and "do not match its hash" in message
        # the other blocks are intact
        assert log.get(6) == (b"block number 0006 ") * 20 and log.get(8) == (b"block number 0008 ") * 20


def test_a_peer_that_breaks_the_protocol_is_a_protocol_error(store):
    # a TCP "peer" that answers the Noise handshake with 48 bytes of noise
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def peer():
        conn, _ = server.accept()
        with conn:
            conn.sendall(bytes([48, 0, 0]) + random.Random(5).randbytes(48))
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    t = threading.Thread(target=peer)
    t.start()
    try:
        conn = store.connect("127.0.0.1:%d" % server.getsockname()[1])
        deadline = time.monotonic() + 10
        while not conn.closed and time.monotonic() < deadline:
            threading.Event().wait(0.02)
        assert conn.closed, "the connection ends when the handshake fails"
        with pytest.raises(libdat.ProtocolError) as e:
            conn.close()
        assert str(e.value) == "handshake failed: message 2 must be 96 bytes, got 48"
        # the store goes on: a good peer still replicates
        with libdat.Store(store.path.parent / "other") as other:
            log = other.core(name="after")
            log.append(b"fine")
            with store.connect(other.listen().address):
                assert store.core(key=log.key).get(0, timeout=10) == b"fine"
    finally:
        t.join(10)
        server.close()

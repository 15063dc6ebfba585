"""Drives: files, symlinks, listing, versions (checkout, diff, history, changes), cursors."""

import io
import random

import pytest

import libdat


def test_files(store):
    drive = store.drive()
    assert drive.writable and not drive.is_checkout
    assert drive.version == 1
    entry = drive.put("/a.txt", b"hello")
    assert entry.is_file and not entry.is_symlink and entry.size == 5
    assert entry.blob.byte_length == 5 and entry.blob.block_length == 1
    assert drive.version == 2
    assert drive.get("/a.txt") == b"hello"
    assert drive.get("/missing.txt") is None
    assert drive.entry("/missing.txt") is None
    assert drive.exists("/a.txt") and not drive.exists("/b.txt")
    assert drive.entry("/a.txt") == entry
    # paths are normalized
    assert drive.get("a.txt") == b"hello"
    assert drive.delete("/a.txt") is True
    assert drive.delete("/a.txt") is False
    assert drive.get("/a.txt") is None


def test_a_deduplicated_files_size_is_read_from_its_block_map(store):
    drive = store.drive()
    data = bytes(random.Random(5).getrandbits(8) for _ in range(300_000))
    drive.put("/one.bin", data, dedup=True)
    two = drive.put("/two.bin", data, dedup=True)
    # the entry's blob id covers the block map: its byte length is the map's
    assert two.is_deduplicated and two.size is None
    assert two.blob.block_map and two.blob.byte_length < 1000
    assert drive.file_size(two) == len(data) == len(drive.get("/two.bin"))
    assert "deduplicated" in repr(two)
    plain = drive.put("/plain.bin", b"abc")
    assert not plain.is_deduplicated and plain.size == 3 and drive.file_size(plain) == 3
    # an entry of an older version, through the history
    drive.put("/two.bin", data[:1000], dedup=True)
    versions = drive.history("/two.bin")
    assert [drive.file_size(v.entry) for v in versions] == [len(data), 1000]


def test_attributes_and_symlinks(store):
    drive = store.drive()
    e = drive.put("/bin/run.sh", b"#!/bin/sh\n", executable=True, metadata={"mode": 493, "tags": ["x"]})
    assert e.executable and e.metadata == {"mode": 493, "tags": ["x"]}
    assert drive.entry("/bin/run.sh").metadata == {"mode": 493, "tags": ["x"]}
    link = drive.symlink("/latest", "/bin/run.sh")
    assert link.is_symlink and link.linkname == "/bin/run.sh" and link.size == 0
    assert link.blob is None and link.metadata is None
    assert drive.entry("/latest").is_symlink
    assert drive.entry("/latest", follow=True) == e
    assert drive.get("/latest") is None  # a symlink has no content of its own
    with drive.open("/latest") as f:  # opening follows it
        assert f.read() == b"#!/bin/sh\n"


def test_list_and_readdir(store):
    drive = store.drive()
    for p in ["/b.txt", "/a/1.txt", "/a/2.txt", "/a/deep/3.txt"]:
        drive.put(p, p.encode())
    listed = drive.list("/")
    assert iter(listed) is listed
    names = [name for name, _ in listed]
    assert names == ["/a/1.txt", "/a/2.txt", "/a/deep/3.txt", "/b.txt"]
    # not recursive: the entries directly in the folder, and the first one under each sub-folder
    assert [n for n, _ in drive.list("/a", recursive=False)] == ["/a/1.txt", "/a/2.txt", "/a/deep/3.txt"]
    assert all(isinstance(e, libdat.Entry) for _, e in drive.list("/a"))
    assert sorted(drive.readdir("/")) == ["a", "b.txt"]
    assert sorted(drive.readdir("/a")) == ["1.txt", "2.txt", "deep"]


def test_named_drives_are_distinct(store):
    a, b = store.drive(name="a"), store.drive(name="b")
    assert a.key != b.key != store.drive().key
    assert store.drive(name="a").key == a.key
    a.put("/x", b"x")
    by_key = store.drive(key=a.key)
    assert by_key.writable and by_key.get("/x") == b"x"


def test_checkout_diff_history(store):
    drive = store.drive()
    drive.put("/keep.txt", b"same")
    drive.put("/change.txt", b"v1")
    drive.put("/remove.txt", b"bye")
    v = drive.version
    drive.put("/change.txt", b"v2")
    drive.delete("/remove.txt")
    drive.put("/add.txt", b"new")

    old = drive.checkout(v)
    assert old.is_checkout and not old.writable and old.version == v
    assert old.get("/change.txt") == b"v1" and old.get("/add.txt") is None
    with pytest.raises(libdat.NotWritable):
        old.put("/x", b"x")

    diffs = {d.name: d for d in drive.diff(v)}
    assert {n: d.type for n, d in diffs.items()} == {
        "/add.txt": "added",
        "/change.txt": "changed",
        "/remove.txt": "removed",
    }
    assert diffs["/add.txt"].left.size == 3 and diffs["/add.txt"].right is None
    assert diffs["/remove.txt"].left is None and diffs["/remove.txt"].right.size == 3
    assert [d.name for d in drive.diff(v, "/keep.txt")] == []

    history = drive.history("/change.txt")
    assert [h.version for h in history] == [3, 5]
    assert all(not h.deleted for h in history)
    removed = drive.history("/remove.txt")
    assert [h.deleted for h in removed] == [False, True]
    assert removed[1].entry is None


def test_diff_two_drives(store):
    a, b = store.drive(name="left"), store.drive(name="right")
    a.put("/same.txt", b"x")
    b.put("/same.txt", b"x")
    a.put("/only-left.txt", b"l")
    b.put("/only-right.txt", b"r")
    a.put("/differs.txt", b"1")
    b.put("/differs.txt", b"2")
    assert sorted((d.name, d.type) for d in a.diff(b)) == [
        ("/differs.txt", "changed"),
        ("/only-left.txt", "added"),
        ("/only-right.txt", "removed"),
    ]
    diffs = {d.name: d for d in a.diff(b)}
    assert diffs["/differs.txt"].left == a.entry("/differs.txt")
    assert diffs["/differs.txt"].right == b.entry("/differs.txt")
    assert diffs["/only-left.txt"].right is None and diffs["/only-right.txt"].left is None
    # the other way round, the sides swap
    assert sorted((d.name, d.type) for d in b.diff(a)) == [
        ("/differs.txt", "changed"),
        ("/only-left.txt", "removed"),
        ("/only-right.txt", "added"),
    ]
    with pytest.raises(TypeError):
        a.diff("not a drive")


def test_changes(store):
    drive = store.drive()
    drive.put("/a", b"1")
    drive.put("/b", b"2")
    drive.delete("/a")
    changes = list(drive.changes())
    assert [(c.version, c.type, c.name) for c in changes] == [
        (2, "put", "/a"),
        (3, "put", "/b"),
        (4, "del", "/a"),
    ]
    assert changes[0].entry.size == 1 and changes[2].entry is None
    assert [c.name for c in drive.changes(since=3)] == ["/a"]
    assert list(drive.changes(since=drive.version)) == []
    # a checkout's stream ends at its version, even live
    assert [c.version for c in drive.checkout(3).changes(live=True)] == [2, 3]
    # a live stream waits for new changes
    live = drive.changes(since=drive.version, live=True)
    assert live.next(timeout=0.2) is None
    drive.put("/c", b"3")
    change = live.next(timeout=5)
    assert (change.type, change.name, change.version) == ("put", "/c", 5)
    live.close()
    assert list(live) == []


@pytest.fixture
def big_file(store):
    drive = store.drive()
    rnd = random.Random(7)
    data = rnd.randbytes(3 * 1024 * 1024 + 12345)
    drive.put("/big.bin", data)
    return drive, data


def test_cursor_at_random_offsets(big_file):
    drive, data = big_file
    rnd = random.Random(11)
    with drive.open("/big.bin") as raw:
        assert isinstance(raw, io.RawIOBase) and raw.size == len(data)
        f = io.BufferedReader(raw, buffer_size=16 * 1024)
        for _ in range(1000):
            offset = rnd.randrange(len(data) + 1)
            n = rnd.choice([0, 1, 100, 4096, 70_000, 300_000])
            assert f.seek(offset) == offset
            assert f.read(n) == data[offset : offset + n]
            assert f.tell() == min(offset + n, len(data))
    assert raw.closed
    with pytest.raises(ValueError):
        raw.read(1)


def test_raw_file_api(big_file):
    drive, data = big_file
    f = drive.open("/big.bin")
    assert f.readable() and f.seekable() and not f.writable()
    buf = bytearray(1000)
    f.seek(-500, io.SEEK_END)
    assert f.readinto(buf) == 500 and bytes(buf[:500]) == data[-500:]
    assert f.read(10) == b""
    f.seek(100)
    f.seek(50, io.SEEK_CUR)
    assert f.tell() == 150
    assert f.read(3) == data[150:153]
    f.seek(0)
    assert f.readall() == data
    with pytest.raises(libdat.OutOfBounds):
        f.seek(len(data) + 1)
    with pytest.raises(ValueError):
        f.seek(-1)
    f.close()
    cursor = drive.cursor("/big.bin")
    assert len(cursor) == cursor.size == len(data) and cursor.path == "/big.bin"
    cursor.seek(10)
    assert cursor.read(5) == data[10:15] and cursor.tell() == 15
    cursor.close()
    with pytest.raises(libdat.ClosedError):
        cursor.read(1)


def test_read_stream(big_file):
    drive, data = big_file
    chunks = list(drive.read_stream("/big.bin"))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 64 * 1024
    # end is inclusive, as in Hyperdrive
    assert b"".join(drive.read_stream("/big.bin", start=100, end=199)) == data[100:200]
    assert b"".join(drive.read_stream("/big.bin", start=len(data) - 5)) == data[-5:]
    stream = drive.read_stream("/big.bin", start=10)
    assert stream.remaining == len(data) - 10
    with stream:
        next(stream)
    assert list(stream) == []

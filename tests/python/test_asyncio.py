"""asyncio: awaiting ranges, blocks, files and downloads, and `async for` over changes/events."""

import asyncio
import threading

import libdat
from conftest import synced_drive


def test_await_range_and_blocks(peers):
    log = peers.writer.core(name="aio")
    log.append([b"%d" % i for i in range(20)])
    remote = peers.reader.core(key=log.key, sparse=True)

    async def main():
        r = remote.prioritize(0, 10)
        assert await r is None
        assert r.done
        block = await remote.get_async(15, timeout=10)
        # several waits at once on one loop
        blocks = await asyncio.gather(*(remote.get_async(i, timeout=10) for i in range(16, 20)))
        try:
            await remote.get_async(500, timeout=0.2)
        except libdat.TimeoutError as e:
            timed_out = str(e)
        return block, blocks, timed_out

    block, blocks, timed_out = asyncio.run(main())
    assert block == b"15" and blocks == [b"16", b"17", b"18", b"19"]
    assert timed_out.startswith("timed out")


def test_await_cancelled_range_raises(peers):
    log = peers.writer.core(name="aio-cancel")
    log.append(b"x")
    remote = peers.reader.core(key=log.key, sparse=True)

    async def main():
        r = remote.prioritize(10, 20)
        asyncio.get_running_loop().call_later(0.1, r.cancel)
        try:
            await r
        except libdat.CancelledError:
            return "cancelled"

    assert asyncio.run(main()) == "cancelled"


def test_async_drive(peers):
    drive = peers.writer.drive()
    drive.put("/a.txt", b"alpha")
    for i in range(3):
        drive.put(f"/f/{i}", b"z" * 70_000)
    remote = synced_drive(peers.reader, drive)

    async def main():
        got = await remote.get_async("/a.txt")
        missing = await remote.get_async("/nope")
        fetched = await remote.download("/f")
        names = [c.name async for c in remote.changes()]
        live = remote.changes(since=remote.version, live=True)
        asyncio.get_running_loop().call_later(0.2, drive.put, "/late.txt", b"late")
        late = await asyncio.wait_for(live.__anext__(), 10)
        live.close()
        rest = [c async for c in live]
        return got, missing, fetched, names, late, rest

    got, missing, fetched, names, late, rest = asyncio.run(main())
    assert got == b"alpha" and missing is None
    # the download fetched every block of /f (nothing of it was read before), and only those
    content = remote.content_log
    blobs = [remote.entry(f"/f/{i}").blob for i in range(3)]
    blocks = [b for blob in blobs for b in range(blob.block_offset, blob.block_offset + blob.block_length)]
    assert fetched == len(blocks) and all(content.has(b) for b in blocks)
    assert names == ["/a.txt", "/f/0", "/f/1", "/f/2"]
    assert late.name == "/late.txt" and rest == []


def test_async_for_live_changes_from_the_other_store(peers):
    drive = peers.writer.drive()
    drive.put("/before.txt", b"0")
    remote = synced_drive(peers.reader, drive)
    start = remote.version

    def write_later():
        drive.put("/one.txt", b"1")
        drive.delete("/before.txt")
        drive.put("/two.txt", b"22")

    async def main():
        got = []
        asyncio.get_running_loop().call_later(0.1, write_later)
        async for change in remote.changes(since=start, live=True):
            got.append(change)
            if len(got) == 3:
                break
        return got

    got = asyncio.run(asyncio.wait_for(main(), 20))
    assert [(c.version, c.type, c.name) for c in got] == [
        (start + 1, "put", "/one.txt"),
        (start + 2, "del", "/before.txt"),
        (start + 3, "put", "/two.txt"),
    ]
    assert got[0].entry.size == 1 and got[1].entry is None and got[2].entry.size == 2


def test_await_range_with_callback_and_context_manager(peers):
    log = peers.writer.core(name="aio-ctx")
    log.append([b"%d" % i for i in range(8)])
    remote = peers.reader.core(key=log.key, sparse=True)
    calls = []

    async def main():
        with remote.prioritize(2, 6, bisect=True, callback=calls.append) as r:
            assert await r is None and r.done
        return r

    r = asyncio.run(main())
    assert r.cancelled and [remote.has(i) for i in range(8)] == [False, False, True, True, True, True, False, False]
    for _ in range(100):  # the callback runs on libdat's callback thread
        if calls:
            break
        threading.Event().wait(0.02)
    assert calls == [None]


def test_async_events(store):
    log = store.core()

    async def main():
        events = store.events("append")
        asyncio.get_running_loop().call_later(0.1, log.append, b"one")
        async for e in events:
            events.close()
            return e

    e = asyncio.run(main())
    assert e.type == "append" and e.length == 1

"""asyncio: awaiting ranges, blocks, files and downloads, and `async for` over changes/events."""

import asyncio

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
    assert got == b"alpha" and missing is None and fetched >= 0
    assert names == ["/a.txt", "/f/0", "/f/1", "/f/2"]
    assert late.name == "/late.txt" and rest == []


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

'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Store } = require('../../bindings/node')
const { tmpdir, bytes, rng, collect, within, waitFor } = require('./helpers')

async function twoStores (t) {
  const a = new Store(tmpdir(t))
  const b = new Store(tmpdir(t))
  t.after(async () => {
    await b.close()
    await a.close()
  })
  const server = await a.listen('127.0.0.1:0')
  assert.match(server.address, /^127\.0\.0\.1:\d+$/)
  return { a, b, server }
}

test('a sparse replica over 127.0.0.1: a prioritized range and its callback, a block on demand, a live append', async (t) => {
  const { a, b, server } = await twoStores(t)
  const src = a.core({ name: 'data' })
  await src.ready()
  await src.append(Array.from({ length: 100 }, (_, i) => Buffer.from(`block ${i}`)))

  const replica = b.core({ key: src.key, sparse: true })
  await replica.ready()
  assert.equal(replica.writable, false)
  const peerAdded = new Promise((resolve) => replica.once('peer-add', resolve))
  const conn = await b.connect(server.address)
  await peerAdded

  // a block fetched on demand (past the length the replica knows yet: the core asks the peer)
  assert.deepEqual(await replica.get(77, { timeout: 10000 }), Buffer.from('block 77'))
  assert.equal(replica.length, 100)

  let range
  const called = new Promise((resolve) => {
    range = replica.prioritize({ start: 10, end: 40, linear: true }, resolve)
  })
  await range.done()
  assert.equal(await called, null)
  assert.equal(range.isDone, true)
  for (let i = 10; i < 40; i++) assert.equal(await replica.has(i), true, `block ${i}`)
  assert.equal(await replica.has(60), false) // sparse: nothing else was fetched
  assert.equal(await replica.has(77), true)
  assert.deepEqual(await replica.get(25, { wait: false }), Buffer.from('block 25'))
  await assert.rejects(replica.get(61, { wait: false }), { code: 'ENOTAVAILABLE' })

  // a withdrawn range calls back with ECANCELED
  let withdrawn
  const cancelled = new Promise((resolve) => {
    withdrawn = replica.prioritize({ start: 150, end: 160 }, resolve)
  })
  replica.unprioritize(withdrawn)
  assert.equal((await cancelled).code, 'ECANCELED')

  // a live append reaches the replica, and get() waits for it
  const next = replica.get(100, { timeout: 10000 })
  await src.append(Buffer.from('block 100'))
  assert.deepEqual(await next, Buffer.from('block 100'))
  assert.equal(replica.length, 101)

  await conn.close()
  assert.equal(conn.closed, true)
  await conn.done() // a connection closed here ended cleanly
})

test('prioritize: linear, bisect and hotswap ranges with priorities complete and call back; events: download, upload, peer-add, peer-remove', async (t) => {
  const { a, b, server } = await twoStores(t)
  const src = a.core({ name: 'ranges' })
  await src.ready()
  const blocks = Array.from({ length: 300 }, (_, i) => bytes(100 + i, i + 1))
  await src.append(blocks)

  const replica = b.core({ key: src.key, sparse: true })
  await replica.ready()
  const downloads = new Map()
  const uploads = []
  const events = { srcAdd: 0, srcRemove: 0, add: 0, remove: 0 }
  replica.on('download', (index, n, from) => {
    downloads.set(index, n)
    assert.equal(typeof from.id, 'number')
  })
  replica.on('peer-add', () => events.add++)
  replica.on('peer-remove', () => events.remove++)
  src.on('upload', (index) => uploads.push(index))
  src.on('peer-add', () => events.srcAdd++)
  src.on('peer-remove', () => events.srcRemove++)

  const conn = await b.connect(server.address)
  const state = () => JSON.stringify({ ...events, downloads: downloads.size, uploads: new Set(uploads).size, called: called.length })
  const called = []
  await within(waitFor(() => events.add === 1 && events.srcAdd === 1, 10000, () => `peer-add on both sides: ${state()}`), 15000, 'peer-add')
  assert.deepEqual(await replica.get(299, { timeout: 10000 }), blocks[299]) // learns the length

  const specs = [
    { start: 0, end: 50, linear: true, priority: 7 },
    { start: 50, end: 150, bisect: true, priority: 2 },
    { start: 150, end: 250, hotswap: true },
    { start: 250, end: 299, linear: true, hotswap: true, priority: 0 }
  ]
  const ranges = specs.map((spec, k) => replica.prioritize(spec, (err) => called.push([k, err])))
  await within(Promise.all(ranges.map((r) => r.done())), 20000, 'every range done')
    .catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(ranges.map((r) => r.isDone))} ${state()}`) })
  await within(waitFor(() => called.length === specs.length, 10000, () => `every callback: ${state()}`), 15000, 'callbacks')
  assert.deepEqual(called.map(([, err]) => err), specs.map(() => null))
  for (const r of ranges) assert.equal(r.isDone, true)
  for (let i = 0; i < 300; i++) assert.deepEqual(await replica.get(i, { wait: false }), blocks[i], `block ${i}`)
  assert.equal(replica.contiguousLength, 300)

  // each block was downloaded once, with its size; the source reported the uploads
  await within(waitFor(() => downloads.size === 300 && new Set(uploads).size === 300, 10000, () => `download and upload events: ${state()}`), 15000, 'events')
  for (let i = 0; i < 300; i++) assert.equal(downloads.get(i), blocks[i].length)

  // a range already here completes at once; done() of a finished range resolves again
  const here = replica.prioritize({ start: 10, end: 20 })
  await within(here.done(), 10000, 'a range of blocks already here')
  await ranges[0].done()
  // unprioritize of a finished range changes nothing
  replica.unprioritize(ranges[1])
  await ranges[1].done()

  // the connection ends: both sides report peer-remove, and the connection resolves done()
  await conn.close()
  await within(waitFor(() => events.remove === 1 && events.srcRemove === 1, 10000, () => `peer-remove on both sides: ${state()}`), 15000, 'peer-remove')
  await conn.done()
  replica.removeAllListeners()
  src.removeAllListeners()
})

test('a callback that throws is reported, and the library goes on', async (t) => {
  const { a, b, server } = await twoStores(t)
  const src = a.core({ name: 'throwing' })
  await src.ready()
  await src.append(Array.from({ length: 20 }, (_, i) => Buffer.from(`block ${i}`)))
  const replica = b.core({ key: src.key, sparse: true })
  await replica.ready()
  await b.connect(server.address)
  assert.deepEqual(await replica.get(19, { timeout: 10000 }), Buffer.from('block 19'))

  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))

  const range = replica.prioritize({ start: 0, end: 10 }, () => { throw new Error('range callback bug') })
  await within(range.done(), 10000, 'the range')
  await within(waitFor(() => warnings.some((w) => w.message === 'range callback bug'), 10000, 'the warning'), 15000, 'warning')
  const w = warnings.find((w) => w.message === 'range callback bug')
  assert.equal(w.code, 'LIBDAT_CALLBACK_THREW')
  assert.equal(w.cause.message, 'range callback bug')

  // the replica, its store and the connection still work
  const again = await new Promise((resolve) => replica.prioritize({ start: 10, end: 20 }, resolve))
  assert.equal(again, null)
  const next = replica.get(20, { timeout: 10000 })
  await src.append(Buffer.from('block 20'))
  assert.deepEqual(await next, Buffer.from('block 20'))
})

test('a replica\'s read stream: a range of blocks (fetched in order), and live blocks as the writer appends', async (t) => {
  const { a, b, server } = await twoStores(t)
  const src = a.core({ name: 'stream' })
  await src.ready()
  const blocks = Array.from({ length: 50 }, (_, i) => Buffer.from(`stream block ${i}`))
  await src.append(blocks)
  const replica = b.core({ key: src.key, sparse: true })
  await replica.ready()
  await b.connect(server.address)
  assert.deepEqual(await replica.get(49, { timeout: 10000 }), blocks[49])

  assert.deepEqual(await within(collect(replica.createReadStream({ start: 5, end: 25 })), 10000, 'range'), blocks.slice(5, 25))
  assert.equal(await replica.has(30), false) // only the stream's range was fetched

  const live = replica.createReadStream({ start: 48, live: true })
  const seen = []
  const reading = (async () => {
    for await (const block of live) {
      seen.push(block.toString())
      if (seen.length === 4) break
    }
  })()
  await src.append([Buffer.from('stream block 50'), Buffer.from('stream block 51')])
  await within(reading, 10000, 'the live stream')
  assert.deepEqual(seen, ['stream block 48', 'stream block 49', 'stream block 50', 'stream block 51'])
})

test('a live changes stream receives a change made in the other store', async (t) => {
  const { a, b, server } = await twoStores(t)
  const drive = a.drive()
  await drive.ready()
  await drive.put('/first.txt', Buffer.from('first'))

  await b.connect(server.address)
  const remote = b.drive({ key: drive.key, sparse: true, timeout: 10000 })
  await remote.ready()
  assert.equal(remote.writable, false)

  const stream = remote.createChangesStream({ since: 0, live: true })
  const it = stream[Symbol.asyncIterator]()
  const first = await it.next()
  assert.deepEqual([first.value.version, first.value.type, first.value.name], [2, 'put', '/first.txt'])

  await drive.put('/second.txt', Buffer.from('second'))
  const second = await it.next()
  assert.deepEqual([second.value.version, second.value.type, second.value.name], [3, 'put', '/second.txt'])
  assert.deepEqual(await remote.get('/second.txt'), Buffer.from('second'))
  await it.return()
})

test('a sparse remote drive: cursor and read stream fetch what they read; download reports progress', async (t) => {
  const { a, b, server } = await twoStores(t)
  const drive = a.drive({ name: 'files' })
  await drive.ready()
  const data = bytes(300 * 1024, 11)
  await drive.put('/big.bin', data)
  await drive.put('/folder/x.bin', bytes(200 * 1024, 12))
  await drive.put('/folder/y.bin', bytes(10, 13))

  await b.connect(server.address)
  const remote = b.drive({ key: drive.key, sparse: true, timeout: 10000 })
  await remote.ready()
  assert.deepEqual(await remote.get('/folder/y.bin'), bytes(10, 13))

  const cursor = remote.createByteCursor('/big.bin')
  await cursor.seek(200000)
  assert.deepEqual(await cursor.read(5000), data.subarray(200000, 205000))
  assert.equal(cursor.position, 205000)
  // 1,000 seeded random reads on the sparse replica: each fetches what it lacks
  const next = rng(7)
  for (let i = 0; i < 1000; i++) {
    const pos = next() % data.length
    const n = 1 + next() % 4096
    assert.equal(await cursor.seek(pos), pos)
    const got = await cursor.read(n)
    assert.ok(got.equals(data.subarray(pos, pos + n)), `read ${n} at ${pos}`)
    assert.equal(cursor.position, pos + got.length)
  }
  await cursor.close()
  const part = Buffer.concat(await collect(remote.createReadStream('/big.bin', { start: 1000, end: 70000 })))
  assert.deepEqual(part, data.subarray(1000, 70001))

  const dl = remote.download('/folder')
  const reports = collect(dl)
  const fetched = await dl.done()
  assert.ok(fetched > 0)
  const progress = await reports
  if (progress.length > 0) assert.equal(progress.at(-1).blocks, progress.at(-1).total)
  assert.equal(dl.progress.blocks, dl.progress.total)
  assert.deepEqual(await remote.get('/folder/x.bin'), bytes(200 * 1024, 12))
})

test('a download waiting for blocks no peer sends stops with ECANCELED when cancelled', async (t) => {
  const { a, b, server } = await twoStores(t)
  const drive = a.drive({ name: 'files' })
  await drive.ready()
  await drive.put('/big.bin', bytes(1024 * 1024, 21))

  const conn = await b.connect(server.address)
  const remote = b.drive({ key: drive.key, sparse: true, timeout: 60000 })
  await remote.ready()
  assert.equal((await remote.entry('/big.bin')).size, 1024 * 1024)
  await conn.close() // no peer is left to send the content

  const dl = remote.download('/big.bin')
  const started = Date.now()
  dl.cancel()
  await assert.rejects(dl.done(), (err) => err.code === 'ECANCELED')
  assert.ok(Date.now() - started < 30000, 'stopped by the cancel, not the 60 s timeout')
  dl.cancel() // twice does nothing
})

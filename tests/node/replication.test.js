'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Store } = require('..')
const { tmpdir, bytes, collect } = require('./helpers')

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

  // a block fetched on demand (this also waits for the replica to learn the length: see the README)
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

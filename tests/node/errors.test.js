'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Store } = require('..')
const { tmpdir, collect } = require('./helpers')

test('errors are Errors with a stable code and the core message', async (t) => {
  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  const log = store.core({ name: 'log' })
  await log.ready()
  await log.append(Buffer.from('x'))

  const err = await log.get(5).catch((e) => e)
  assert.ok(err instanceof Error)
  assert.equal(err.code, 'ERANGE')
  assert.match(err.message, /^ERANGE: out of bounds: block 5 of a log with 1 blocks$/)
  await assert.rejects(log.get(-1), { code: 'EINVAL' })
  assert.throws(() => store.core({ key: Buffer.alloc(3) }), { code: 'EINVAL' })
  assert.throws(() => store.core({ name: 'a', key: Buffer.alloc(32) }), { code: 'EINVAL' })
  assert.throws(() => log.prioritize({ priority: 9 }), { code: 'EINVAL' })
  assert.throws(() => store.core().prioritize({}), { code: 'ENOTREADY' })
  await assert.rejects(log.append('not a buffer'), { code: 'EINVAL' })

  const other = store.core({ key: Buffer.alloc(32, 1) }) // a log only a peer could fill
  await other.ready()
  await assert.rejects(other.append(Buffer.from('no')), { code: 'ENOTWRITABLE' })
  await assert.rejects(other.get(0, { timeout: 100 }), { code: 'ETIMEDOUT' })

  const drive = store.drive()
  await drive.ready()
  await assert.rejects(collect(drive.createReadStream('/missing')), { code: 'ENOENT' })
  await assert.rejects(drive.createByteCursor('/missing').read(1), { code: 'ENOENT' })
  await drive.symlink('/link', '/nowhere')
  await assert.rejects(drive.createByteCursor('/link').open(), { code: 'ENOENT' })
  await assert.rejects(collect(drive.diff(99)), { code: 'ERANGE' })
  await assert.rejects(drive.checkout(99).ready(), { code: 'ERANGE' })

  const lost = store.drive({ key: Buffer.alloc(32, 2), timeout: 200 })
  await assert.rejects(lost.ready(), { code: 'ETIMEDOUT' })

  await assert.rejects(new Store(tmpdir(t), { durability: 'sometimes' }).ready(), { code: 'EINVAL' })
  const file = path.join(tmpdir(t), 'a-file')
  fs.writeFileSync(file, 'not a directory')
  const bad = await new Store(file).ready().catch((e) => e)
  assert.match(bad.code, /^E[A-Z]+$/)

  const server = await store.listen('127.0.0.1:0')
  const port = server.port
  await server.close()
  const peer = new Store(tmpdir(t))
  t.after(() => peer.close())
  await new Promise((resolve) => setTimeout(resolve, 50))
  await assert.rejects(peer.connect(`127.0.0.1:${port}`), { code: 'ECONNREFUSED' })
})

test('use after close: calls fail with ECLOSED, streams end, getters still answer', async (t) => {
  const store = new Store(tmpdir(t))
  const log = store.core({ name: 'log' })
  await log.ready()
  await log.append(Buffer.from('a'))
  const drive = store.drive()
  await drive.ready()
  await drive.put('/a', Buffer.from('a'))
  const cursor = drive.createByteCursor('/a')
  await cursor.open()

  const live = collect(drive.createChangesStream({ live: true }))
  const blocks = collect(log.createReadStream({ live: true }))
  await new Promise((resolve) => setTimeout(resolve, 100))

  // closing one core leaves the store open
  const side = store.core({ name: 'side' })
  await side.ready()
  await side.close()
  assert.equal(side.closed, true)
  await assert.rejects(side.append(Buffer.from('x')), { code: 'ECLOSED' })
  await log.append(Buffer.from('b'))
  await new Promise((resolve) => setTimeout(resolve, 200)) // the live stream reads it

  await store.close()
  assert.equal(store.closed, true)
  assert.equal(log.closed, true)
  assert.equal((await live).length, 1) // the live streams ended
  assert.equal((await blocks).length, 2)
  await assert.rejects(log.append(Buffer.from('c')), { code: 'ECLOSED', message: 'ECLOSED: the store is closed' })
  await assert.rejects(log.get(0), { code: 'ECLOSED' })
  await assert.rejects(drive.get('/a'), { code: 'ECLOSED' })
  await assert.rejects(cursor.read(1), { code: 'ECLOSED' })
  await assert.rejects(store.ready(), { code: 'ECLOSED' })
  await assert.rejects(store.listen(), { code: 'ECLOSED' })
  assert.throws(() => store.core({ name: 'log' }), { code: 'ECLOSED' })
  assert.throws(() => drive.list('/'), { code: 'ECLOSED' })
  assert.equal(log.length, 2)
  assert.equal(drive.version, 2)
})

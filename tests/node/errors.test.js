'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { Store } = require('../../bindings/node')
const { tmpdir, bytes, collect, within, waitFor } = require('./helpers')

const INTEROP = path.join(__dirname, '..', 'interop')
const reference = (name) => require(require.resolve(name, { paths: [INTEROP] }))

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

  // a port nothing listens on (bound, then closed, by Node)
  const probe = net.createServer()
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = probe.address().port
  await new Promise((resolve) => probe.close(resolve))
  await assert.rejects(store.connect(`127.0.0.1:${port}`), { code: 'ECONNREFUSED' })
  await assert.rejects(store.connect('not an address'), (err) => /^E[A-Z]+$/.test(err.code))
  await assert.rejects(store.listen('127.0.0.1:99999'), (err) => /^E[A-Z]+$/.test(err.code))
})

test('ECORRUPT: a block whose stored bytes were changed on disk is refused, not returned', async (t) => {
  const dir = tmpdir(t)
  const store = new Store(dir)
  t.after(() => store.close())
  const log = store.core({ name: 'log' })
  await log.ready()
  const marker = Buffer.from('libdat-corruption-marker:')
  const block = Buffer.concat([marker, bytes(3000, 9)])
  await log.append([Buffer.from('intact'), block])
  assert.deepEqual(await log.get(1), block)

  // flip one byte of the block in the store's file (LMDB reads through its memory map, which
  // shares the page cache with this write)
  const file = path.join(dir, 'data.mdb')
  const image = fs.readFileSync(file)
  const at = image.indexOf(marker)
  assert.ok(at >= 0, 'the block is in data.mdb')
  assert.equal(image.indexOf(marker, at + 1), -1, 'once')
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.from([image[at + marker.length + 100] ^ 0xff]), 0, 1, at + marker.length + 100)
  fs.closeSync(fd)

  const err = await log.get(1).catch((e) => e)
  assert.equal(err.code, 'ECORRUPT')
  assert.match(err.message, /^ECORRUPT: .*block 1 do not match its hash/)
  assert.deepEqual(await log.get(0), Buffer.from('intact')) // the rest of the log still reads
  await assert.rejects(collect(log.createReadStream()), { code: 'ECORRUPT' })
})

test('EPROTO, EHANDSHAKE: a peer that breaks the protocol ends the connection with a coded error', async (t) => {
  const NoiseSecretStream = reference('@hyperswarm/secret-stream')
  const sockets = []
  // completes the Noise handshake (as hypercore does), then sends a protomux frame that opens
  // channel 0, which the protocol forbids
  const server = net.createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => {})
    const s = new NoiseSecretStream(false, socket)
    s.on('error', () => {})
    s.on('open', () => s.write(Buffer.from([0, 1, 0, 0, 0])))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  // a peer whose answer to the handshake is a well-framed message of random bytes (a frame is
  // a 3-byte little-endian length, then that many bytes)
  const garbage = net.createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => {})
    socket.write(Buffer.concat([Buffer.from([96, 0, 0]), bytes(96, 5)]))
  })
  await new Promise((resolve) => garbage.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const s of sockets) s.destroy()
    server.close()
    garbage.close()
  })

  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  const conn = await store.connect(`127.0.0.1:${server.address().port}`)
  const err = await within(conn.done().catch((e) => e), 10000, 'the connection to fail')
  assert.ok(err instanceof Error)
  assert.equal(err.code, 'EPROTO')
  assert.match(err.message, /^EPROTO: .*channel 0/)
  assert.equal(conn.closed, true)

  const bad = await store.connect(`127.0.0.1:${garbage.address().port}`)
  const err2 = await within(bad.done().catch((e) => e), 10000, 'the handshake to fail')
  assert.equal(err2.code, 'EHANDSHAKE')
  assert.match(err2.message, /^EHANDSHAKE: handshake failed/)

  // the store is unharmed: it still works and connects
  const log = store.core({ name: 'still-here' })
  await log.ready()
  assert.deepEqual(await log.append(Buffer.from('ok')), { length: 1, byteLength: 2 })
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

  const changes = []
  const live = (async () => { for await (const c of drive.createChangesStream({ live: true })) changes.push(c) })()
  const blocks = []
  const following = (async () => { for await (const b of log.createReadStream({ live: true })) blocks.push(b) })()
  await waitFor(() => changes.length === 1 && blocks.length === 1, 10000, 'the live streams to start')

  // closing one core leaves the store open
  const side = store.core({ name: 'side' })
  await side.ready()
  await side.close()
  assert.equal(side.closed, true)
  await assert.rejects(side.append(Buffer.from('x')), { code: 'ECLOSED' })
  await log.append(Buffer.from('b'))
  await waitFor(() => blocks.length === 2, 10000, 'the live stream to read the append')

  await store.close()
  assert.equal(store.closed, true)
  assert.equal(log.closed, true)
  await within(Promise.all([live, following]), 10000, 'the live streams to end')
  assert.equal(changes.length, 1)
  assert.deepEqual(blocks, [Buffer.from('a'), Buffer.from('b')])
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

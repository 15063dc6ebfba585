'use strict'
// Interop in one Node process: libdat's addon and the pinned JavaScript reference (hypercore
// 11.39.5, corestore 7.12.5, hyperdrive 13.3.4 from tests/interop/node_modules, `make
// interop-deps`) replicate with each other over TCP on 127.0.0.1, in both directions: logs and
// drives written by libdat and read by JS, and written by JS and read by libdat. The libdat side
// uses store.listen / store.connect; the JS side net sockets with corestore.replicate(), the
// dialling side the initiator. Every wait has a timeout, so a hang fails the test.
const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const path = require('node:path')
const { ADDON, tmpdir, bytes, rng, collect, within, waitFor } = require('./helpers')
const { Store } = require(ADDON)

const INTEROP = path.join(__dirname, '..', 'interop')
const reference = (name) => require(require.resolve(name, { paths: [INTEROP] }))
const Corestore = reference('corestore')
const Hyperdrive = reference('hyperdrive')

const T = 20000 // ms for any one wait

function same (got, want, what) {
  assert.ok(Buffer.isBuffer(want))
  assert.ok(got && Buffer.compare(Buffer.from(got), want) === 0,
    `${what}: got ${got && got.length} bytes, want ${want.length} (or different bytes)`)
}

// A JS corestore in a temp dir, closed (with its sockets) when the test ends.
function jsStore (t) {
  const store = new Corestore(tmpdir(t))
  const sockets = []
  const servers = []
  t.after(async () => {
    for (const s of sockets) s.destroy()
    for (const s of servers) s.close()
    await store.close()
  })
  return {
    store,
    // dials a libdat server: this side is the initiator
    connect (port) {
      const socket = net.connect(port, '127.0.0.1')
      socket.setNoDelay(true)
      const s = store.replicate(true)
      s.on('error', () => {})
      socket.on('error', () => {})
      socket.pipe(s).pipe(socket)
      sockets.push(socket)
      return { socket, stream: s }
    },
    // serves libdat peers that dial in: this side is the responder
    async listen () {
      const server = net.createServer((socket) => {
        socket.setNoDelay(true)
        const s = store.replicate(false)
        s.on('error', () => {})
        socket.on('error', () => {})
        socket.pipe(s).pipe(socket)
        sockets.push(socket)
      })
      servers.push(server)
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
      return server.address().port
    }
  }
}

function libdatStore (t) {
  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  return store
}

const blockOf = (i) => bytes(1 + (i * 131) % 3000, i + 1)

test('interop: a libdat log is read by JS hypercore 11 over TCP (upload, peer-add, peer-remove, a live append)', { timeout: 60000 }, async (t) => {
  const store = libdatStore(t)
  const log = store.core({ name: 'to-js' })
  await log.ready()
  const blocks = Array.from({ length: 60 }, (_, i) => blockOf(i))
  await log.append(blocks)
  const uploads = new Set()
  log.on('upload', (index) => uploads.add(index))
  const peerAdd = new Promise((resolve) => log.once('peer-add', resolve))
  const peerRemove = new Promise((resolve) => log.once('peer-remove', resolve))
  const server = await store.listen('127.0.0.1:0')

  const js = jsStore(t)
  const core = js.store.get({ key: log.key })
  await core.ready()
  const jsPeer = new Promise((resolve) => core.once('peer-add', resolve))
  const { socket } = js.connect(server.port)
  await within(jsPeer, T, 'the JS core sees the libdat peer')
  await within(peerAdd, T, 'libdat peer-add')
  await within(waitFor(async () => { await core.update({ wait: true }); return core.length === 60 }, T, 'JS length 60'), T, 'JS update')
  assert.deepEqual(core.key, log.key)
  assert.deepEqual(core.discoveryKey, log.discoveryKey)
  assert.equal(core.byteLength, log.byteLength)
  for (let i = 0; i < blocks.length; i++) same(await within(core.get(i), T, `JS get ${i}`), blocks[i], `block ${i}`)
  const streamed = await within(collect(core.createReadStream({ start: 10, end: 40 })), T, 'JS read stream')
  assert.equal(streamed.length, 30)
  streamed.forEach((b, k) => same(b, blocks[10 + k], `streamed block ${10 + k}`))
  // every block JS read was uploaded by libdat, and libdat reported it
  await within(waitFor(() => uploads.size === 60, T, 'upload events'), T, 'uploads')
  assert.deepEqual([...uploads].sort((a, b) => a - b), blocks.map((_, i) => i))

  // a live append reaches the JS reader
  const appended = new Promise((resolve) => core.once('append', resolve))
  await log.append(Buffer.from('live from libdat'))
  await within(appended, T, 'JS append event')
  assert.equal(core.length, 61)
  same(await within(core.get(60), T, 'JS get 60'), Buffer.from('live from libdat'), 'block 60')

  // the JS peer goes away: libdat reports peer-remove
  socket.destroy()
  await within(peerRemove, T, 'libdat peer-remove')
  log.removeAllListeners()
})

test('interop: a JS hypercore 11 log is read by libdat over TCP (download, prioritize, read stream, a live append)', { timeout: 60000 }, async (t) => {
  const js = jsStore(t)
  const core = js.store.get({ name: 'from-js' })
  await core.ready()
  const blocks = Array.from({ length: 80 }, (_, i) => blockOf(i + 1000))
  await core.append(blocks)
  const port = await js.listen()

  const store = libdatStore(t)
  const replica = store.core({ key: core.key, sparse: true })
  await replica.ready()
  assert.equal(replica.writable, false)
  const downloads = new Map()
  replica.on('download', (index, n) => downloads.set(index, n))
  const peerAdd = new Promise((resolve) => replica.once('peer-add', resolve))
  const peerRemove = new Promise((resolve) => replica.once('peer-remove', resolve))
  const conn = await store.connect(`127.0.0.1:${port}`)
  await within(peerAdd, T, 'libdat peer-add')

  same(await replica.get(79, { timeout: T }), blocks[79], 'block 79 on demand')
  assert.equal(replica.length, 80)
  assert.equal(replica.byteLength, core.byteLength)
  const range = await new Promise((resolve, reject) => {
    const r = replica.prioritize({ start: 0, end: 40, linear: true }, (err) => err ? reject(err) : resolve(r))
  })
  assert.equal(range.isDone, true)
  for (let i = 0; i < 40; i++) same(await replica.get(i, { wait: false }), blocks[i], `prioritized block ${i}`)
  const streamed = await within(collect(replica.createReadStream({ start: 30, end: 80 })), T, 'libdat read stream')
  assert.equal(streamed.length, 50)
  streamed.forEach((b, k) => same(b, blocks[30 + k], `streamed block ${30 + k}`))
  assert.deepEqual(await replica.seek(core.byteLength - 1), [79, blocks[79].length - 1])

  // every block came from JS, and libdat reported each with its size
  await within(waitFor(() => downloads.size === 80, T, 'download events'), T, 'downloads')
  for (let i = 0; i < 80; i++) assert.equal(downloads.get(i), blocks[i].length, `download ${i}`)

  assert.deepEqual(replica.discoveryKey, core.discoveryKey)
  assert.equal(replica.fork, 0)

  // a live append made in JS reaches libdat
  const next = replica.get(80, { timeout: T })
  await core.append(Buffer.from('live from js'))
  same(await next, Buffer.from('live from js'), 'block 80')
  assert.equal(replica.length, 81)

  // JS truncates and writes on: libdat follows onto the new fork ('truncate', then 'append')
  const truncated = new Promise((resolve) => replica.once('truncate', (length, fork) => resolve([length, fork])))
  await core.truncate(70)
  await core.append(Buffer.from('on fork 1'))
  assert.equal(core.fork, 1)
  const [length, fork] = await within(truncated, T, 'libdat truncate event')
  assert.equal(fork, 1)
  assert.ok(length <= 70, `truncated to ${length}`)
  const b70 = await replica.get(70, { timeout: T }).catch((err) => {
    throw new Error(`${err.message}; truncated to ${length}; libdat: length ${replica.length}, fork ${replica.fork}; JS: length ${core.length}, fork ${core.fork}, peers ${core.peers.length}`)
  })
  same(b70, Buffer.from('on fork 1'), 'block 70 on fork 1')
  await within(waitFor(() => replica.fork === 1 && replica.length === 71, T, () => `fork ${replica.fork}, length ${replica.length}`), T, 'fork 1')
  same(await replica.get(69, { timeout: T }), blocks[69], 'block 69, kept on the new fork')

  await conn.close()
  await within(peerRemove, T, 'libdat peer-remove after conn.close()')
  replica.removeAllListeners()
})

// A drive's files: [path, content, put options]
function driveFiles () {
  return [
    ['/hello.txt', Buffer.from('hello world'), {}],
    ['/dir/big.bin', bytes(300 * 1024 + 17, 5), {}], // several blocks
    ['/dir/sub/c.txt', Buffer.from('c'), {}],
    ['/bin/run.sh', Buffer.from('#!/bin/sh\necho hi\n'), { executable: true, metadata: { mode: 493, tags: ['a', 'b'] } }],
    ['/unicode/héllo wörld ✓.txt', Buffer.from('unicode'), {}]
  ]
}

test('interop: a libdat drive is read by JS hyperdrive 13 over TCP (files, ranges, entries, a live put)', { timeout: 60000 }, async (t) => {
  const store = libdatStore(t)
  const drive = store.drive()
  await drive.ready()
  const files = driveFiles()
  for (const [p, data, opts] of files) await drive.put(p, data, opts)
  await drive.symlink('/link', '/hello.txt')
  await drive.put('/gone.txt', Buffer.from('deleted'))
  await drive.del('/gone.txt')
  const server = await store.listen('127.0.0.1:0')

  const js = jsStore(t)
  const jd = new Hyperdrive(js.store, drive.key)
  await jd.ready()
  const found = jd.findingPeers()
  const { stream } = js.connect(server.port)
  await within(stream.noiseStream.opened, T, 'the Noise handshake')
  found()
  await within(jd.update({ wait: true }), T, 'JS drive update')
  await within(waitFor(async () => { await jd.update({ wait: true }); return jd.version === drive.version }, T, 'JS version'), T, 'JS version')

  for (const [p, data] of files) same(await within(jd.get(p), T, `JS get ${p}`), data, p)
  assert.equal(await jd.get('/gone.txt'), null)
  const big = files[1][1]
  for (const [start, end] of [[0, 0], [65530, 200000], [big.length - 100, big.length - 1]]) {
    const got = Buffer.concat(await within(collect(jd.createReadStream('/dir/big.bin', { start, end })), T, 'JS range'))
    same(got, big.subarray(start, end + 1), `JS range ${start}..=${end}`)
  }
  const run = await jd.entry('/bin/run.sh')
  assert.equal(run.value.executable, true)
  assert.deepEqual(run.value.metadata, { mode: 493, tags: ['a', 'b'] })
  assert.equal((await jd.entry('/link')).value.linkname, '/hello.txt')
  const jsKeys = (await collect(jd.list('/'))).map((e) => e.key)
  const ours = (await collect(drive.list('/', { recursive: true }))).map((e) => e.key)
  assert.deepEqual(jsKeys, ours)

  // a put made in libdat later reaches the JS reader
  await drive.put('/later.txt', Buffer.from('written later'))
  await within(waitFor(async () => { await jd.update({ wait: true }); return jd.version === drive.version }, T, 'JS sees the put'), T, 'live put')
  same(await within(jd.get('/later.txt'), T, 'JS get /later.txt'), Buffer.from('written later'), '/later.txt')
})

test('interop: a JS hyperdrive 13 is read by a libdat drive over TCP (cursor, read stream, list, a live changes stream)', { timeout: 60000 }, async (t) => {
  const js = jsStore(t)
  const jd = new Hyperdrive(js.store)
  await jd.ready()
  const files = driveFiles()
  for (const [p, data, opts] of files) await jd.put(p, data, opts)
  await jd.symlink('/link', '/hello.txt')
  const port = await js.listen()

  const store = libdatStore(t)
  const conn = await store.connect(`127.0.0.1:${port}`)
  const remote = store.drive({ key: jd.key, sparse: true, timeout: T })
  await remote.ready()
  assert.equal(remote.writable, false)
  assert.deepEqual(remote.key, jd.key)
  await within(waitFor(() => remote.version === jd.version, T, 'libdat version'), T, 'version')

  for (const [p, data] of files) same(await remote.get(p), data, p)
  const run = await remote.entry('/bin/run.sh')
  assert.equal(run.value.executable, true)
  assert.deepEqual(run.value.metadata, { mode: 493, tags: ['a', 'b'] })
  assert.equal((await remote.entry('/link', { follow: true })).key, '/hello.txt')
  const jsKeys = (await collect(jd.list('/'))).map((e) => e.key)
  assert.deepEqual((await collect(remote.list('/', { recursive: true }))).map((e) => e.key), jsKeys)

  const big = files[1][1]
  const cursor = remote.createByteCursor('/dir/big.bin')
  const next = rng(42)
  for (let k = 0; k < 200; k++) {
    const pos = next() % big.length
    await cursor.seek(pos)
    same(await cursor.read(4096), big.subarray(pos, pos + 4096), `cursor at ${pos}`)
    assert.equal(cursor.position, Math.min(pos + 4096, big.length))
  }
  await cursor.close()
  const part = Buffer.concat(await within(collect(remote.createReadStream('/dir/big.bin', { start: 1000, end: 250000 })), T, 'read stream'))
  same(part, big.subarray(1000, 250001), 'read stream 1000..=250000')

  // a live changes stream receives a put made in JS
  const changes = remote.createChangesStream({ since: remote.version + 1, live: true })
  const it = changes[Symbol.asyncIterator]()
  await jd.put('/live.txt', Buffer.from('from js, later'))
  const { value: change } = await within(it.next(), T, 'a live change')
  assert.deepEqual([change.version, change.type, change.name], [jd.version, 'put', '/live.txt'])
  assert.equal(change.entry.size, 14)
  same(await remote.get('/live.txt'), Buffer.from('from js, later'), '/live.txt')
  await it.return()
  await conn.close()
})

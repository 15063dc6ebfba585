#!/usr/bin/env node
// A JavaScript hyperdrive 13 peer for libdat's drive interop tests (core/tests/js_drive.rs), over
// TCP on 127.0.0.1. The whole corestore replicates on each connection (`store.replicate(socket
// stream)`), as Hyperdrive apps do.
//
//   node drive-peer.js writer
//       writes a drive (files, a multi-block file, a write stream, a symlink, an executable with
//       metadata, a delete, an empty file, several versions), listens on 127.0.0.1:0 (responder)
//       and prints what a reader must see:
//       {"port", "key", "version", "ops": [{version, op, path}], "files": {path: file},
//        "readdir", "shallow", "follow", "range": {path, start, end, hex},
//        "checkouts": {version: {path: file}}, "diffs": [{version, folder, items}]}
//       where file = {sha256, size, executable, linkname, metadata}.
//   node drive-peer.js reader --port P --key HEX [--checkout V] [--diff V] [--range PATH:START:END]
//       opens the drive by key, connects (initiator), and prints the same report of what it read
//       (every file's content, the range, the checkout, the diff); then watches the drive.
//
// Then, on stdin (one command per line, each answered with one JSON line on stdout):
//   put PATH TEXT          (writer) writes TEXT to PATH, prints {version}
//   wait VERSION PATH      (reader) waits (drive.watch) until the drive reaches VERSION, prints
//                          {version, text} with the content of PATH
//   exit
'use strict'

const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const readline = require('readline')
const crypto = require('crypto')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const b4a = require('b4a')

function arg (name, def) {
  const i = process.argv.indexOf('--' + name)
  return i === -1 ? def : process.argv[i + 1]
}
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sha = (b) => crypto.createHash('sha256').update(b || b4a.alloc(0)).digest('hex')
const dirs = []
const tmp = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-drive-')); dirs.push(d); return d }

// deterministic bytes, different per seed
function pattern (n, seed) {
  const b = b4a.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    b[i] = x & 0xff
  }
  return b
}

async function collect (stream) {
  const items = []
  for await (const x of stream) items.push(x)
  return items
}

async function readAll (drive, name, opts) {
  const parts = await collect(drive.createReadStream(name, opts))
  return b4a.concat(parts)
}

// every file and symlink of `drive`, with its content's sha256
async function files (drive) {
  const res = {}
  for (const e of await collect(drive.list('/'))) {
    const v = e.value
    const f = {
      executable: v.executable,
      linkname: v.linkname,
      metadata: v.metadata,
      size: v.blob ? v.blob.byteLength : 0,
      blockMap: !!(v.blob && v.blob.blockMap),
      sha256: null
    }
    if (v.blob) {
      const data = v.blob.byteLength === 0 ? b4a.alloc(0) : await drive.get(e.key)
      f.sha256 = sha(data)
      f.size = data.length
    }
    res[e.key] = f
  }
  return res
}

async function diff (drive, version, folder) {
  const items = []
  for (const { left, right } of await collect(drive.diff(version, folder))) {
    items.push({ path: (left || right).key, left: left ? left.value : null, right: right ? right.value : null })
  }
  return { version, folder, items }
}

async function report (drive, { checkouts = [], diffs = [], range = null }) {
  const r = {
    key: b4a.toString(drive.key, 'hex'),
    version: drive.version,
    files: await files(drive),
    readdir: await collect(drive.readdir('/')),
    shallow: (await collect(drive.list('/', { recursive: false }))).map((e) => e.key),
    checkouts: {},
    diffs: []
  }
  for (const v of checkouts) {
    const snap = drive.checkout(v)
    await snap.ready()
    r.checkouts[v] = await files(snap)
    await snap.close()
  }
  for (const [v, folder] of diffs) r.diffs.push(await diff(drive, v, folder))
  if (range) {
    const data = await readAll(drive, range.path, { start: range.start, end: range.end })
    r.range = { ...range, hex: b4a.toString(data, 'hex') }
  }
  return r
}

async function writer () {
  const store = new Corestore(tmp())
  const drive = new Hyperdrive(store)
  await drive.ready()
  const ops = []
  const did = (op, p) => ops.push({ version: drive.version, op, path: p })

  await drive.put('/hello.txt', b4a.from('hello world')); did('put', '/hello.txt')
  await drive.put('/dir/big.bin', pattern(300000, 7)); did('put', '/dir/big.bin')
  await drive.put('/docs/readme.md', b4a.from('# readme\n')); did('put', '/docs/readme.md')
  const v1 = drive.version
  // a write stream: one block per write, blocks of several sizes
  const ws = drive.createWriteStream('/dir/stream.bin', { metadata: { via: 'stream' } })
  for (let i = 0; i < 8; i++) ws.write(pattern(40000 + i * 10000, 100 + i))
  await new Promise((resolve, reject) => { ws.on('error', reject); ws.end(resolve) })
  did('put', '/dir/stream.bin')
  await drive.symlink('/link', '/dir/big.bin'); did('symlink', '/link')
  await drive.symlink('/dir/rel', '../big.bin'); did('symlink', '/dir/rel')
  await drive.put('/bin/run.sh', b4a.from('#!/bin/sh\necho hi\n'), {
    executable: true,
    metadata: { mode: 493, tags: ['a', 'b'], nested: { x: 1, y: null } }
  }); did('put', '/bin/run.sh')
  await drive.put('/hello.txt', b4a.from('hello again, version two')); did('put', '/hello.txt')
  const v2 = drive.version
  await drive.del('/docs/readme.md'); did('del', '/docs/readme.md')
  await drive.put('/dir/nested/deep.txt', b4a.from('deep')); did('put', '/dir/nested/deep.txt')
  await drive.put('/empty.txt', b4a.alloc(0)); did('put', '/empty.txt')
  await drive.put('/unicode/héllo wörld ✓.txt', b4a.from('unicode')); did('put', '/unicode/héllo wörld ✓.txt')
  await drive.put('/dir/big2.bin', pattern(1 << 20, 9)); did('put', '/dir/big2.bin')

  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    const s = store.replicate(false)
    s.on('error', () => {})
    socket.on('error', () => {})
    socket.pipe(s).pipe(socket)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const r = await report(drive, {
    checkouts: [v1, v2],
    diffs: [[v1, '/'], [v2, '/'], [v1, '/dir']],
    range: { path: '/dir/big.bin', start: 65530, end: 65545 }
  })
  r.follow = {}
  for (const p of ['/link', '/dir/rel']) { const e = await drive.entry(p, { follow: true }); r.follow[p] = e && e.key }
  out({ port: server.address().port, blobsLength: drive.blobs.core.length, ops, ...r })

  await commands(async ([cmd, a, ...rest]) => {
    if (cmd === 'put') {
      await drive.put(a, b4a.from(rest.join(' ')))
      return { version: drive.version }
    }
  })
  server.close()
  await drive.close()
  await store.close()
}

async function reader () {
  const store = new Corestore(tmp())
  const drive = new Hyperdrive(store, b4a.from(arg('key'), 'hex'))
  await drive.ready()
  const done = drive.findingPeers()
  const socket = net.connect(Number(arg('port')), '127.0.0.1')
  socket.setNoDelay(true)
  const s = store.replicate(true)
  s.on('error', () => {})
  socket.on('error', () => {})
  socket.pipe(s).pipe(socket)
  await s.noiseStream.opened
  done()
  await drive.update({ wait: true })
  await drive.getBlobs()

  const watcher = drive.watch('/')
  await watcher.ready()
  const opts = { checkouts: [], diffs: [] }
  if (arg('checkout')) opts.checkouts.push(Number(arg('checkout')))
  if (arg('diff')) opts.diffs.push([Number(arg('diff')), '/'])
  if (arg('range')) {
    const [p, start, end] = arg('range').split(':')
    opts.range = { path: p, start: Number(start), end: Number(end) }
  }
  out(await report(drive, opts))

  await commands(async ([cmd, a, p]) => {
    if (cmd === 'wait') {
      const want = Number(a)
      while (drive.version < want) {
        const { done } = await watcher.next()
        if (done) throw new Error('the watcher ended')
      }
      const data = await drive.get(p)
      return { version: drive.version, text: data === null ? null : b4a.toString(data) }
    }
  })
  await watcher.destroy()
  socket.destroy()
  await drive.close()
  await store.close()
}

async function commands (handle) {
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const parts = line.trim().split(' ')
    if (parts[0] === 'exit' || parts[0] === '') break
    out((await handle(parts)) || { error: 'unknown command ' + parts[0] })
  }
}

const mode = process.argv[2]
const main = mode === 'writer' ? writer : mode === 'reader' ? reader : null
if (!main) {
  console.error('usage: drive-peer.js writer|reader ...')
  process.exit(2)
}
main()
  .catch((err) => { console.error(err); process.exitCode = 1 })
  .finally(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
    // open sockets and stdin would keep the process alive
    process.exit(process.exitCode || 0)
  })

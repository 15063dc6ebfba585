#!/usr/bin/env node
// Replication benchmark of the JS reference (hypercore 11) over loopback TCP, for comparison with
// libdat (core/benches/replication.rs drives this script for the JS→libdat and libdat→JS rows).
//
//   node repl-bench.js [--quick] [--only NAME[,NAME...]]
//       JS→JS: for 64 KiB × 2,000 and 1 KiB × 100,000 blocks (--quick: ÷10), this process builds
//       the writer core (untimed) and serves it; a reader child process (`reader --runs 3`)
//       downloads it fully 3 times, each into a fresh core. Prints one JSON line per workload:
//         {"impl":"js","name":"repl_64k_js_js","ops":N,"secs":[t1,t2,t3],"median_ops_per_sec":X,
//          "block_size":S}
//       Writer and reader are separate processes, as in every cross-implementation row, so each
//       side has its own core (the machine has 2) and its own event loop.
//   node repl-bench.js writer --size S --blocks N
//       builds a core of N blocks of S bytes (block i is S bytes of value i & 0xff), listens on
//       127.0.0.1:0, prints {"port","key","length"} and replicates with every connection until
//       stdin closes.
//   node repl-bench.js reader --port P --key HEX --blocks N --size S [--runs R]
//       R times (default 1): opens a fresh empty core for KEY (untimed), then times from the TCP
//       connect until all N blocks are stored (core.download({start:0,end:N}).done()), checks
//       contiguousLength and a sample of blocks (untimed) and prints {"run","secs","blocks"}.
//
// secs is the wall time of the timed part only; X = N / median(secs). Progress goes to stderr.
'use strict'

const fs = require('fs')
const os = require('os')
const net = require('net')
const path = require('path')
const { spawn } = require('child_process')
const readline = require('readline')
const Hypercore = require('hypercore')
const b4a = require('b4a')

const argv = process.argv.slice(2)
const MODE = argv[0] && !argv[0].startsWith('--') ? argv[0] : 'bench'
function arg (name, def) {
  const i = argv.indexOf('--' + name)
  return i === -1 || argv[i + 1] === undefined ? def : argv[i + 1]
}
const QUICK = argv.includes('--quick')
const ONLY = arg('only', null) ? new Set(arg('only').split(',')) : null
const DIV = QUICK ? 10 : 1
const RUNS = 3
const KIB = 1024

// name, block size, block count (before --quick)
const WORKLOADS = [
  { tag: '64k', size: 64 * KIB, blocks: 2000 },
  { tag: '1k', size: KIB, blocks: 100000 }
]

const log = (...msg) => process.stderr.write(msg.join(' ') + '\n')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const now = () => process.hrtime.bigint()
const secsSince = (t0) => Number(now() - t0) / 1e9
function median (xs) {
  const s = xs.slice().sort((a, b) => a - b)
  return s[s.length >> 1]
}

// Block i is `size` bytes of (i & 0xff); one buffer per content, never mutated.
const blockCache = new Map()
function blockOf (i, size) {
  let bufs = blockCache.get(size)
  if (!bufs) {
    bufs = []
    for (let v = 0; v < 256; v++) bufs.push(b4a.alloc(size, v))
    blockCache.set(size, bufs)
  }
  return bufs[i & 0xff]
}

const dirs = []
function tmpDir (tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-repl-bench-' + tag + '-'))
  dirs.push(d)
  return d
}
function rmDir (d) {
  fs.rmSync(d, { recursive: true, force: true })
  const i = dirs.indexOf(d)
  if (i >= 0) dirs.splice(i, 1)
}

// Untimed: a writer core of `blocks` blocks of `size` bytes, appended in batches of ~1 MiB.
async function buildWriter (size, blocks) {
  const core = new Hypercore(tmpDir('w'))
  await core.ready()
  const per = Math.max(1, Math.min(1000, Math.floor((1 << 20) / size)))
  for (let start = 0; start < blocks; start += per) {
    const batch = []
    for (let i = start; i < Math.min(blocks, start + per); i++) batch.push(blockOf(i, size))
    await core.append(batch)
  }
  return core
}

// Serves `core` on 127.0.0.1:0 to every connection; resolves to the net.Server.
async function serve (core) {
  const sockets = new Set()
  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    sockets.add(socket)
    const stream = core.replicate(false)
    socket.pipe(stream).pipe(socket)
    stream.on('error', () => {})
    socket.on('error', () => {})
    socket.on('close', () => { sockets.delete(socket); stream.destroy() })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  server.closeAll = () => {
    for (const s of sockets) s.destroy()
    return new Promise((resolve) => server.close(resolve))
  }
  return server
}

// One timed full download of `blocks` blocks into a fresh core. Returns seconds.
async function downloadOnce (port, key, blocks, size) {
  const dir = tmpDir('r')
  const core = new Hypercore(dir, key)
  await core.ready()
  const t0 = now()
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
  const stream = core.replicate(true)
  socket.pipe(stream).pipe(socket)
  stream.on('error', () => {})
  socket.on('error', (err) => log('[repl-bench] reader socket error:', err.message))
  await core.download({ start: 0, end: blocks }).done()
  const secs = secsSince(t0)
  // untimed checks
  if (core.contiguousLength !== blocks) {
    throw new Error(`reader has contiguousLength ${core.contiguousLength}, want ${blocks}`)
  }
  for (let i = 0; i < blocks; i += Math.max(1, Math.floor(blocks / 64))) {
    const b = await core.get(i, { wait: false })
    if (!b || !b4a.equals(b, blockOf(i, size))) throw new Error('block ' + i + ' differs')
  }
  socket.destroy()
  await core.close()
  rmDir(dir)
  return secs
}

async function writerMode () {
  const size = Number(arg('size', String(KIB)))
  const blocks = Number(arg('blocks', '1000'))
  const core = await buildWriter(size, blocks)
  const server = await serve(core)
  out({ port: server.address().port, key: b4a.toString(core.key, 'hex'), length: core.length })
  // serve until stdin closes (the parent exits or closes our stdin)
  await new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.on('close', resolve)
    process.stdin.on('error', resolve)
    process.stdin.resume()
  })
  await server.closeAll()
  await core.close()
}

async function readerMode () {
  const port = Number(arg('port'))
  const key = b4a.from(arg('key'), 'hex')
  const blocks = Number(arg('blocks'))
  const size = Number(arg('size', String(KIB)))
  const runs = Number(arg('runs', '1'))
  for (let r = 0; r < runs; r++) {
    const secs = await downloadOnce(port, key, blocks, size)
    out({ run: r + 1, secs: Number(secs.toFixed(6)), blocks })
  }
}

// Spawns this script as a reader child and collects its per-run seconds.
function readerChild (args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, 'reader', ...args], {
      stdio: ['ignore', 'pipe', 'inherit']
    })
    const secs = []
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const r = JSON.parse(line)
      log(`[repl-bench] run ${r.run}: ${r.secs.toFixed(3)} s, ${(r.blocks / r.secs).toFixed(0)} blocks/s`)
      secs.push(r.secs)
    })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(secs) : reject(new Error('reader exited with ' + code))))
  })
}

async function benchMode () {
  for (const w of WORKLOADS) {
    const name = `repl_${w.tag}_js_js`
    if (ONLY && !ONLY.has(name)) continue
    const blocks = w.blocks / DIV
    log(`[repl-bench] ${name}: building writer (${blocks} × ${w.size} B) ...`)
    const core = await buildWriter(w.size, blocks)
    const server = await serve(core)
    const key = b4a.toString(core.key, 'hex')
    const secs = await readerChild([
      '--port', String(server.address().port), '--key', key,
      '--blocks', String(blocks), '--size', String(w.size), '--runs', String(RUNS)
    ])
    await server.closeAll()
    await core.close()
    for (const d of dirs.slice()) rmDir(d)
    if (secs.length !== RUNS) throw new Error(`${name}: got ${secs.length} runs`)
    out({
      impl: 'js',
      name,
      ops: blocks,
      secs: secs.map((s) => Number(s.toFixed(6))),
      median_ops_per_sec: Number((blocks / median(secs)).toFixed(1)),
      block_size: w.size
    })
  }
}

const main = { bench: benchMode, 'js-js': benchMode, writer: writerMode, reader: readerMode }[MODE]
if (!main) {
  console.error('usage: repl-bench.js [js-js] [--quick] [--only NAMES] | writer ... | reader ...')
  process.exit(2)
}
main()
  .catch((err) => { console.error(err); process.exitCode = 1 })
  .finally(() => {
    for (const d of dirs.slice()) rmDir(d)
    process.exit(process.exitCode || 0)
  })

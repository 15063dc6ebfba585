#!/usr/bin/env node
// Read benchmark of the Node addon against the JS reference (hyperdrive 13.3.4 on corestore
// 7.12.5, from tests/interop/node_modules), for `make bench-node`:
//   node_read_stream   full read of a 256 MiB file: the addon's drive.createReadStream vs
//                      hyperdrive's createReadStream (bytes counted, chunks not copied)
//   node_cursor_4k     10,000 seeded random 4 KiB reads in that file: the addon's byte cursor
//                      (seek + read) vs the reference, which has no cursor: the file's entry looked
//                      up once, then ranged reads of its blob (as tests/interop/drive-bench.js)
// Target: the addon at least 2x the reference on both.
//
// Usage: LIBDAT_NODE_ADDON=path/to/release/libdat.node node read-bench.js [--quick]
//   --quick: a 32 MiB file and 1,000 reads.
// The two stores (a libdat store with a drive holding /big.bin, and a corestore with a hyperdrive
// holding the same bytes) are made once under target/bench/node-src[-quick]/ and checked: both
// read back the source's SHA-256. Every timed run is its own child process that opens the store,
// reads, and prints its seconds; medians of 3 runs. Writes one JSON line per workload and side to
// target/bench/node-read.jsonl:
//   {"impl": "js" | "libdat-node", "name", "ops", "unit", "secs": [...], "median_ops_per_sec"}
// and prints a Markdown table (workload, JS, addon, ratio, target, met). Progress on stderr.
'use strict'

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const os = require('os')
const { spawnSync } = require('child_process')

const ROOT = path.resolve(__dirname, '..', '..', '..')
const INTEROP = path.join(ROOT, 'tests', 'interop')
const reference = (name) => require(require.resolve(name, { paths: [INTEROP] }))

const args = process.argv.slice(2)
const QUICK = args.includes('--quick')
const MIB = 1 << 20
const SIZE = (QUICK ? 32 : 256) * MIB
const READS = QUICK ? 1000 : 10000
const RUNS = 3
const TARGET = 2
const BENCH = path.join(ROOT, 'target', 'bench')
const SRC = path.join(BENCH, QUICK ? 'node-src-quick' : 'node-src')
const OUT = path.join(BENCH, 'node-read.jsonl')
const FILE = '/big.bin'

const log = (...m) => process.stderr.write(m.join(' ') + '\n')
const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]

function mulberry32 (seed) {
  let a = seed >>> 0
  return function () {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

// 1 MiB chunk `c` of the file: xorshift32 words from a per-chunk seed (the bytes
// tests/interop/drive-bench.js makes for its big file)
function chunk (c) {
  const n = Math.min(MIB, SIZE - c * MIB)
  const b = Buffer.alloc(n)
  let x = ((0x9e3779b9 ^ c) >>> 0) || 1
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    b.writeUInt32LE(x, i)
  }
  return b
}

function positions () {
  const rng = mulberry32(9)
  const out = []
  for (let k = 0; k < READS; k++) out.push(rng() % (SIZE - 4096))
  return out
}

function addon () {
  if (!process.env.LIBDAT_NODE_ADDON) {
    throw new Error('set LIBDAT_NODE_ADDON to a release build of the addon (make bench-node does)')
  }
  return require(path.join(ROOT, 'bindings', 'node'))
}

// ----------------------------------------------------------------------------------- the stores
async function openLibdat () {
  const { Store } = addon()
  const store = new Store(path.join(SRC, 'libdat'))
  const drive = store.drive()
  await drive.ready()
  return { store, drive, close: () => store.close() }
}

async function openJs () {
  const Corestore = reference('corestore')
  const Hyperdrive = reference('hyperdrive')
  const store = new Corestore(path.join(SRC, 'js'))
  const drive = new Hyperdrive(store)
  await drive.ready()
  return { store, drive, close: async () => { await drive.close(); await store.close() } }
}

async function sha256Of (stream) {
  const h = crypto.createHash('sha256')
  let n = 0
  for await (const c of stream) { h.update(c); n += c.length }
  return { sha: h.digest('hex'), bytes: n }
}

// Each step opens a store in its own process: a store's directory opens once per process
const SETUP = {
  // writes the file into both stores
  async write () {
    const chunks = []
    for (let c = 0; c * MIB < SIZE; c++) chunks.push(chunk(c))
    const lib = await openLibdat()
    await lib.drive.put(FILE, Buffer.concat(chunks))
    await lib.close()

    const js = await openJs()
    const ws = js.drive.createWriteStream(FILE)
    for (const b of chunks) {
      // blocks of 64 KiB, as the reference's import of a file makes
      for (let off = 0; off < b.length; off += 1 << 16) {
        if (!ws.write(b.subarray(off, off + (1 << 16)))) await new Promise((resolve) => ws.once('drain', resolve))
      }
    }
    await new Promise((resolve, reject) => { ws.on('error', reject); ws.end(resolve) })
    await js.close()
    return {}
  },

  // the whole file's sha256 and size, and 100 of the timed random reads compared byte for
  // byte with the source
  async check (impl) {
    const s = impl === 'js' ? await openJs() : await openLibdat()
    const r = await sha256Of(s.drive.createReadStream(FILE))
    const want = (p) => {
      const c = Math.floor(p / MIB)
      const a = chunk(c)
      const b = p % MIB + 4096 > a.length ? Buffer.concat([a, chunk(c + 1)]) : a
      return b.subarray(p % MIB, p % MIB + 4096)
    }
    const read = await randomReader(s, impl)
    for (const p of positions().slice(0, 100)) {
      if (!Buffer.from(await read(p)).equals(want(p))) throw new Error(`${impl}: the 4 KiB read at ${p} differs from the source`)
    }
    await s.close()
    return r
  }
}

// (position) -> the 4 KiB there: the addon's cursor, or the reference's ranged blob reads
async function randomReader (s, impl) {
  if (impl === 'js') {
    const e = await s.drive.entry(FILE)
    const blobs = await s.drive.getBlobs()
    return (start) => blobs.get(e.value.blob, { start, length: 4096 })
  }
  const cursor = s.drive.createByteCursor(FILE)
  return async (start) => {
    await cursor.seek(start)
    return cursor.read(4096)
  }
}

function makeSource () {
  const done = path.join(SRC, 'complete')
  if (fs.existsSync(done)) return JSON.parse(fs.readFileSync(done, 'utf8'))
  log(`[node-bench] making the ${SIZE / MIB} MiB file in a libdat drive and a JS hyperdrive under ${SRC} ...`)
  fs.rmSync(SRC, { recursive: true, force: true })
  fs.mkdirSync(SRC, { recursive: true })
  const h = crypto.createHash('sha256')
  for (let c = 0; c * MIB < SIZE; c++) h.update(chunk(c))
  const sha = h.digest('hex')
  runChild('--setup', 'write')
  for (const impl of ['libdat-node', 'js']) {
    const r = runChild('--setup', 'check', impl)
    if (r.bytes !== SIZE || r.sha !== sha) throw new Error(`${impl}: read ${r.bytes} bytes, sha256 ${r.sha}, want ${sha}`)
  }
  const source = { size: SIZE, sha256: sha }
  fs.writeFileSync(done, JSON.stringify(source))
  log(`[node-bench] made and checked: sha256 ${sha}`)
  return source
}

// ------------------------------------------------------------------------------- timed children
const CHILD = {
  async node_read_stream (impl) {
    const s = impl === 'js' ? await openJs() : await openLibdat()
    const t0 = process.hrtime.bigint()
    let bytes = 0
    for await (const c of s.drive.createReadStream(FILE)) bytes += c.length
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    if (bytes !== SIZE) throw new Error(`read ${bytes} bytes`)
    await s.close()
    return secs
  },

  async node_cursor_4k (impl) {
    const pos = positions()
    const s = impl === 'js' ? await openJs() : await openLibdat()
    const t0 = process.hrtime.bigint()
    const read = await randomReader(s, impl) // the reference looks the file up once
    for (const start of pos) {
      const data = await read(start)
      if (data.length !== 4096) throw new Error('short read at ' + start)
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    await s.close()
    return secs
  }
}

const WORKLOADS = [
  ['node_read_stream', SIZE / MIB, 'MiB', 'read stream of the whole file'],
  ['node_cursor_4k', READS, 'reads', 'addon: cursor seek + read; reference: ranged blob reads']
]

// Runs `node read-bench.js MODE ...rest` and returns what it printed last (JSON)
function runChild (mode, ...rest) {
  const argv = [__filename, mode, ...rest]
  if (QUICK) argv.push('--quick')
  const r = spawnSync(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'], env: process.env })
  if (r.status !== 0) throw new Error(`${rest.join(' ')}: the child exited with ${r.status}`)
  return JSON.parse(r.stdout.toString().trim().split('\n').pop())
}

async function parent () {
  makeSource()
  const lines = []
  for (const [name, ops, unit] of WORKLOADS) {
    for (const impl of ['js', 'libdat-node']) {
      const secs = []
      for (let r = 0; r < RUNS; r++) {
        const s = runChild('--child', name, impl).secs
        log(`[node-bench ${impl}] ${name} run ${r + 1}/${RUNS}: ${s.toFixed(3)} s, ${(ops / s).toFixed(1)} ${unit}/s`)
        secs.push(s)
      }
      lines.push({ impl, name, ops, unit, secs: secs.map((s) => Number(s.toFixed(6))), median_ops_per_sec: Number((ops / median(secs)).toFixed(1)) })
    }
  }
  fs.mkdirSync(BENCH, { recursive: true })
  fs.writeFileSync(OUT, lines.map((l) => JSON.stringify(l)).join('\n') + '\n')

  const fmt = (x) => x.toLocaleString('en-US', { maximumFractionDigits: 1 })
  const host = `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, ${os.cpus()[0].model.trim()}`
  const out = ['', `## Node addon reads, ${host}, node ${process.version}, hyperdrive 13.3.4 (medians of ${RUNS} runs)`, '']
  out.push(`| workload | unit | JS hyperdrive 13 (/s) | addon (/s) | ratio | target | met | note |`)
  out.push('|---|---|---:|---:|---:|---:|:-:|---|')
  for (const [name, , unit, note] of WORKLOADS) {
    const js = lines.find((l) => l.name === name && l.impl === 'js').median_ops_per_sec
    const ours = lines.find((l) => l.name === name && l.impl === 'libdat-node').median_ops_per_sec
    const ratio = ours / js
    out.push(`| ${name} (${SIZE / MIB} MiB file) | ${unit} | ${fmt(js)} | ${fmt(ours)} | ${ratio.toFixed(2)}x | ${TARGET}x | ${ratio >= TARGET ? 'yes' : 'NO'} | ${note} |`)
  }
  process.stdout.write(out.join('\n') + '\n')
}

async function child () {
  for (const [flag, table] of [['--child', CHILD], ['--setup', SETUP]]) {
    const i = args.indexOf(flag)
    if (i < 0) continue
    const r = await table[args[i + 1]](args[i + 2])
    process.stdout.write(JSON.stringify(flag === '--child' ? { secs: r } : r) + '\n')
  }
}

;(args.includes('--child') || args.includes('--setup') ? child() : parent())
  .then(() => process.exit(0))
  .catch((err) => { console.error(err); process.exit(1) })

#!/usr/bin/env node
// Drive benchmark of the JS reference (hyperdrive 13.3.4 on corestore 7.12.5), the same
// workloads as core/benches/drive.rs, for `make bench`.
//
// Usage: node drive-bench.js [--quick] [--only NAME[,NAME...]]
//
// Workloads (--quick divides the counts by 10, and the 1 GiB file is 100 MiB):
//   drive_import_files  import a folder of 100,000 files of 1 KiB (read each file, put it;
//                       the reference's fastest path: drive.batch(), flushed every 1,000 files)
//   drive_import_1gib   import one 1 GiB file (a read stream from disk into drive.createWriteStream)
//   drive_stat          entry() of 100,000 random names of the imported folder
//   drive_read_files    full read of every file of the imported folder (list, then get each)
//   drive_read_1gib     full read of the imported 1 GiB file (a read stream)
//   drive_cursor_4k     10,000 random 4 KiB reads in the 1 GiB file
//
// The source folder and file are made once under target/bench/drive-src[-quick]/ (the same bytes
// core/benches/drive.rs makes). Every run is its own child process (so that its peak memory is
// its own): imports write into a fresh store; the read workloads open the store the last import
// run left. A child prints {"secs", "vmhwm_kib"} (timed part only; VmHWM from /proc/self/status at
// its end); the parent also samples the child's RssAnon every 10 ms. Per workload one line:
//   {"impl":"js","name":...,"ops":N,"unit":...,"secs":[...],"median_ops_per_sec":X,
//    "peak_rss_kib":[...],"peak_anon_kib":[...]}
// Progress goes to stderr.
'use strict'

const fs = require('fs')
const path = require('path')
const { spawn } = require('child_process')
const { pipeline } = require('stream/promises')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')

const args = process.argv.slice(2)
const QUICK = args.includes('--quick')
const DIV = QUICK ? 10 : 1
const RUNS = 3
const onlyIdx = args.indexOf('--only')
const ONLY = onlyIdx >= 0 && args[onlyIdx + 1] ? new Set(args[onlyIdx + 1].split(',')) : null

const FILES = 100000 / DIV
const FILES_PER_DIR = 1000
const FILE_SIZE = 1024
const BIG = (QUICK ? 100 : 1024) * (1 << 20) // --quick: 100 MiB
const STATS = 100000 / DIV
const CURSOR_READS = 10000 / DIV
const CHUNK = 1 << 20

const ROOT = path.resolve(__dirname, '../../target/bench')
const SRC = path.join(ROOT, QUICK ? 'drive-src-quick' : 'drive-src')
const WORK = path.join(ROOT, QUICK ? 'drive-js-quick' : 'drive-js')

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

// `n` bytes (a multiple of 4) of xorshift32 output from `seed` (little-endian words)
function noise (n, seed) {
  const b = Buffer.alloc(n)
  let x = (seed >>> 0) || 1
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    b.writeUInt32LE(x, i)
  }
  return b
}

const dirName = (d) => 'd' + String(d).padStart(3, '0')
const fileName = (i) => 'f' + String(i).padStart(6, '0') + '.bin'
// drive path of file i (also its path under SRC/files)
const filePath = (i) => '/' + dirName(Math.floor(i / FILES_PER_DIR)) + '/' + fileName(i)

function makeSource () {
  const done = path.join(SRC, 'complete')
  if (fs.existsSync(done)) return
  log(`[drive-bench] making ${FILES} files of ${FILE_SIZE} bytes and a ${BIG}-byte file in ${SRC} ...`)
  fs.rmSync(SRC, { recursive: true, force: true })
  for (let i = 0; i < FILES; i++) {
    const p = path.join(SRC, 'files', filePath(i))
    if (i % FILES_PER_DIR === 0) fs.mkdirSync(path.dirname(p), { recursive: true })
    fs.writeFileSync(p, noise(FILE_SIZE, i + 1))
  }
  const fd = fs.openSync(path.join(SRC, 'big.bin'), 'w')
  for (let c = 0; c * CHUNK < BIG; c++) fs.writeSync(fd, noise(Math.min(CHUNK, BIG - c * CHUNK), 0x9e3779b9 ^ c))
  fs.closeSync(fd)
  fs.writeFileSync(done, '')
}

function vmhwm () {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) : null
}

async function openDrive (dir) {
  const store = new Corestore(dir)
  const drive = new Hyperdrive(store)
  await drive.ready()
  return { store, drive }
}

async function closeDrive ({ store, drive }) {
  await drive.close()
  await store.close()
}

// Each child workload: (store dir) -> timed seconds
const CHILD = {
  async drive_import_files (dir) {
    const d = await openDrive(dir)
    const t0 = process.hrtime.bigint()
    let batch = d.drive.batch()
    const root = path.join(SRC, 'files')
    let n = 0
    for (const sub of fs.readdirSync(root).sort()) {
      for (const name of fs.readdirSync(path.join(root, sub)).sort()) {
        const data = fs.readFileSync(path.join(root, sub, name))
        await batch.put('/' + sub + '/' + name, data)
        if (++n % 1000 === 0) {
          await batch.flush()
          batch = d.drive.batch()
        }
      }
    }
    await batch.flush()
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    if (n !== FILES || d.drive.version !== FILES + 1) throw new Error(`imported ${n} files, version ${d.drive.version}`)
    await closeDrive(d)
    return secs
  },

  async drive_import_1gib (dir) {
    const d = await openDrive(dir)
    const t0 = process.hrtime.bigint()
    await pipeline(fs.createReadStream(path.join(SRC, 'big.bin'), { highWaterMark: 1 << 16 }), d.drive.createWriteStream('/big.bin'))
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    const e = await d.drive.entry('/big.bin')
    if (!e || e.value.blob.byteLength !== BIG) throw new Error('big file not imported')
    await closeDrive(d)
    return secs
  },

  async drive_stat (dir) {
    const d = await openDrive(dir)
    const rng = mulberry32(7)
    const names = []
    for (let k = 0; k < STATS; k++) names.push(filePath(rng() % FILES))
    const t0 = process.hrtime.bigint()
    for (const name of names) {
      const e = await d.drive.entry(name)
      if (!e || e.value.blob.byteLength !== FILE_SIZE) throw new Error('no entry for ' + name)
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    await closeDrive(d)
    return secs
  },

  async drive_read_files (dir) {
    const d = await openDrive(dir)
    const t0 = process.hrtime.bigint()
    let n = 0
    let bytes = 0
    for await (const e of d.drive.list('/')) {
      const data = await d.drive.get(e)
      n++
      bytes += data.length
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    if (n !== FILES || bytes !== FILES * FILE_SIZE) throw new Error(`read ${n} files, ${bytes} bytes`)
    await closeDrive(d)
    return secs
  },

  async drive_read_1gib (dir) {
    const d = await openDrive(dir)
    const t0 = process.hrtime.bigint()
    let bytes = 0
    for await (const c of d.drive.createReadStream('/big.bin')) bytes += c.length
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    if (bytes !== BIG) throw new Error(`read ${bytes} bytes`)
    await closeDrive(d)
    return secs
  },

  async drive_cursor_4k (dir) {
    const d = await openDrive(dir)
    const rng = mulberry32(9)
    const pos = []
    for (let k = 0; k < CURSOR_READS; k++) pos.push(rng() % (BIG - 4096))
    const t0 = process.hrtime.bigint()
    // the reference has no cursor: look the file up once, then ranged reads of its blob
    const e = await d.drive.entry('/big.bin')
    const blobs = await d.drive.getBlobs()
    for (const start of pos) {
      const data = await blobs.get(e.value.blob, { start, length: 4096 })
      if (data.length !== 4096) throw new Error('short read at ' + start)
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    await closeDrive(d)
    return secs
  }
}

// name, ops, unit, which store it runs on ('fresh' for imports)
const WORKLOADS = [
  ['drive_import_files', FILES, 'files', 'fresh', 'files'],
  ['drive_import_1gib', BIG / (1 << 20), 'MiB', 'fresh', 'big'],
  ['drive_stat', STATS, 'stats', 'files'],
  ['drive_read_files', FILES, 'files', 'files'],
  ['drive_read_1gib', BIG / (1 << 20), 'MiB', 'big'],
  ['drive_cursor_4k', CURSOR_READS, 'reads', 'big']
]

function runChild (name, dir) {
  return new Promise((resolve, reject) => {
    const argv = [__filename, '--child', name, '--store', dir]
    if (QUICK) argv.push('--quick')
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    let anon = 0
    const status = `/proc/${child.pid}/status`
    const timer = setInterval(() => {
      try {
        const m = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync(status, 'utf8'))
        if (m) anon = Math.max(anon, Number(m[1]))
      } catch {}
    }, 10)
    child.stdout.on('data', (b) => { out += b })
    child.on('exit', (code) => {
      clearInterval(timer)
      if (code !== 0) return reject(new Error(`${name} child exited with ${code}`))
      const r = JSON.parse(out.trim().split('\n').pop())
      resolve({ ...r, anon_kib: anon })
    })
  })
}

async function parent () {
  makeSource()
  fs.mkdirSync(WORK, { recursive: true })
  for (const [name, ops, unit, on, keep] of WORKLOADS) {
    if (ONLY && !ONLY.has(name)) continue
    const secs = []
    const rss = []
    const anon = []
    try {
      for (let r = 0; r < RUNS; r++) {
        let dir = path.join(WORK, on)
        if (on === 'fresh') {
          dir = path.join(WORK, `run-${name}`)
          fs.rmSync(dir, { recursive: true, force: true })
        } else if (!fs.existsSync(dir)) {
          throw new Error(`${dir} is missing: run the import workloads first`)
        }
        const res = await runChild(name, dir)
        log(`[drive-bench js] ${name} run ${r + 1}/${RUNS}: ${res.secs.toFixed(3)} s, ${(ops / res.secs).toFixed(0)} ${unit}/s, peak RSS ${(res.vmhwm_kib / 1024).toFixed(0)} MiB, anon ${(res.anon_kib / 1024).toFixed(0)} MiB`)
        secs.push(res.secs)
        rss.push(res.vmhwm_kib)
        anon.push(res.anon_kib)
        if (on === 'fresh') {
          // the last run's store serves the read workloads
          const target = path.join(WORK, keep)
          fs.rmSync(target, { recursive: true, force: true })
          fs.renameSync(dir, target)
        }
      }
      process.stdout.write(JSON.stringify({
        impl: 'js',
        name,
        ops,
        unit,
        secs: secs.map((s) => Number(s.toFixed(6))),
        median_ops_per_sec: Number((ops / median(secs)).toFixed(1)),
        peak_rss_kib: rss,
        peak_anon_kib: anon
      }) + '\n')
    } catch (err) {
      log(`[drive-bench js] ${name} FAILED: ${err.message}`)
      process.stdout.write(JSON.stringify({ impl: 'js', name, ops, unit, error: err.message }) + '\n')
    }
  }
}

async function child () {
  const name = args[args.indexOf('--child') + 1]
  const dir = args[args.indexOf('--store') + 1]
  const secs = await CHILD[name](dir)
  process.stdout.write(JSON.stringify({ secs, vmhwm_kib: vmhwm() }) + '\n')
}

;(args.includes('--child') ? child() : parent())
  .then(() => process.exit(0))
  .catch((err) => { console.error(err); process.exit(1) })

#!/usr/bin/env node
// A JavaScript hypercore 11 peer for libdat's replication interop tests, over TCP on 127.0.0.1.
//
//   node repl-peer.js writer --seed N --blocks M [--logs K] [--compat]
//       builds K logs (seeds N, N+1, ...) of M blocks each, listens on 127.0.0.1:0 and prints
//       {"port", "keys": [...], "lengths": [...]}; every connection replicates all K logs.
//   node repl-peer.js reader --port P --key HEX[,HEX...] [--range START-END] [--length N]
//       connects, downloads every log fully (or only blocks START..END of the first one with
//       --range) and prints {"lengths", "contiguous", "blocks": {index: sha256hex}} per log.
//       With --length, it first waits until every log has N blocks (a peer that is itself still
//       downloading, a relay, may announce a shorter length first).
//
// Then, on stdin (one command per line, each answered with one JSON line on stdout):
//   append LOG TEXT        (writer) append TEXT to log LOG
//   clear LOG START END    (writer) clear blocks START..END of log LOG (a hole in what it serves)
//   wait LOG LENGTH        (reader) wait until log LOG has LENGTH blocks, print the last block
//   exit
'use strict'

const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const readline = require('readline')
const crypto = require('crypto')
const Hypercore = require('hypercore')
const hcrypto = require('hypercore-crypto')
const b4a = require('b4a')

function arg (name, def) {
  const i = process.argv.indexOf('--' + name)
  return i === -1 ? def : process.argv[i + 1]
}
const flag = (name) => process.argv.includes('--' + name)
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-repl-'))
const dirs = []

function blockOf (seed, i) {
  // deterministic, sizes 0..~3 KiB
  return b4a.from(`log ${seed} block ${i} `.repeat(i % 97))
}

function replicateAll (cores, socket, isInitiator) {
  const stream = cores[0].replicate(isInitiator)
  for (const c of cores.slice(1)) c.replicate(stream)
  socket.pipe(stream).pipe(socket)
  stream.on('error', () => {})
  socket.on('error', () => {})
}

async function writer () {
  const seed = Number(arg('seed', '1'))
  const blocks = Number(arg('blocks', '100'))
  const logs = Number(arg('logs', '1'))
  const cores = []
  for (let k = 0; k < logs; k++) {
    const dir = tmp(); dirs.push(dir)
    const keyPair = hcrypto.keyPair(b4a.alloc(32, seed + k))
    const core = new Hypercore(dir, { keyPair, compat: flag('compat') })
    await core.ready()
    const batch = []
    for (let i = 0; i < blocks; i++) batch.push(blockOf(seed + k, i))
    for (let i = 0; i < batch.length; i += 50) await core.append(batch.slice(i, i + 50))
    cores.push(core)
  }
  const server = net.createServer((socket) => replicateAll(cores, socket, false))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  out({ port: server.address().port, keys: cores.map((c) => b4a.toString(c.key, 'hex')), lengths: cores.map((c) => c.length) })
  await commands(async ([cmd, a, ...rest]) => {
    if (cmd === 'append') {
      const core = cores[Number(a)]
      await core.append(b4a.from(rest.join(' ')))
      return { length: core.length }
    }
    if (cmd === 'clear') {
      const core = cores[Number(a)]
      await core.clear(Number(rest[0]), Number(rest[1]))
      return { length: core.length, contiguous: core.contiguousLength }
    }
    if (cmd === 'truncate') {
      // truncate <core> <length> <word>...: a new fork, then one new block per word
      const core = cores[Number(a)]
      await core.truncate(Number(rest[0]))
      if (rest.length > 1) await core.append(rest.slice(1).map((w) => b4a.from(w)))
      return { length: core.length, fork: core.fork }
    }
  })
  server.close()
  for (const c of cores) await c.close()
}

async function reader () {
  const keys = arg('key').split(',')
  const cores = []
  for (const key of keys) {
    const dir = tmp(); dirs.push(dir)
    const core = new Hypercore(dir, b4a.from(key, 'hex'))
    await core.ready()
    cores.push(core)
  }
  const socket = net.connect(Number(arg('port')), '127.0.0.1')
  replicateAll(cores, socket, true)
  const range = arg('range', null)
  const length = arg('length', null)
  const result = []
  for (const [n, core] of cores.entries()) {
    if (length === null) {
      await core.update({ wait: true })
    } else {
      // the length grows with the peer's syncs (hypercore upgrades eagerly)
      while (core.length < Number(length)) await new Promise((resolve) => core.once('append', resolve))
    }
    let start = 0
    let end = core.length
    if (range !== null && n === 0) [start, end] = range.split('-').map(Number)
    await core.download({ start, end }).done()
    const blocks = {}
    for (let i = start; i < end; i++) blocks[i] = sha(await core.get(i, { wait: false }))
    let contiguous = 0
    while (contiguous < core.length && await core.has(contiguous)) contiguous++
    let held = 0
    for (let i = 0; i < core.length; i++) if (await core.has(i)) held++
    result.push({ length: core.length, contiguous, held, blocks })
  }
  out({ logs: result })
  await commands(async ([cmd, a, b, ...rest]) => {
    if (cmd === 'wait') {
      const core = cores[Number(a)]
      const want = Number(b)
      while (core.length < want) await new Promise((resolve) => core.once('append', resolve))
      const block = await core.get(want - 1)
      return { length: core.length, last: b4a.toString(block) }
    }
    if (cmd === 'fork') {
      // fork <core> <fork> <length>: waits until the log is on that fork with that length,
      // then reads every block
      const core = cores[Number(a)]
      const want = Number(b)
      const length = Number(rest[0])
      while (core.fork < want || core.length < length) {
        await new Promise((resolve) => { core.once('truncate', resolve); core.once('append', resolve) })
      }
      const blocks = []
      for (let i = 0; i < core.length; i++) blocks.push(sha(await core.get(i)))
      return { fork: core.fork, length: core.length, blocks }
    }
  })
  socket.destroy()
  for (const c of cores) await c.close()
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
  console.error('usage: repl-peer.js writer|reader ...')
  process.exit(2)
}
main()
  .catch((err) => { console.error(err); process.exitCode = 1 })
  .finally(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
    // open sockets and stdin would keep the process alive
    process.exit(process.exitCode || 0)
  })

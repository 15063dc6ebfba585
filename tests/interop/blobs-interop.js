#!/usr/bin/env node
// Interop fixture for libdat's blobs layer (core/tests/blobs.rs), run with the pinned hyperblobs
// 2.12.1 on hypercore 11.39.5.
//
// Usage: node blobs-interop.js IN.json OUT.json
//
// IN.json, written by the Rust test:
//   write: { seed, ops: [{ kind: 'put', data, blockSize }
//                        | { kind: 'stream', writes: [hex], dedup, blockMap, prev }] }
//     Builds a core from crypto.keyPair(seed) and performs the ops with hyperblobs (`prev` is the
//     index of an earlier op whose id is passed as `blob` to createWriteStream, as Hyperdrive does
//     for dedup). Rust performs the same ops; the ids, blocks, tree hash and signature must match.
//   read: { seed, blocks: [hex], reads: [{ id, start, length, end }] }
//     Appends the blocks libdat wrote (plain and block-mapped blobs, deduplicated across files)
//     to a core from crypto.keyPair(seed) and reads each id with hyperblobs.
//
// OUT.json: { write: { key, ids, blocks (leaf hashes), length, byteLength, treeHash, signature },
//             read: { treeHash, results: [{ byteLength, length, hash }] } }

'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const Hypercore = require('hypercore')
const Hyperblobs = require('hyperblobs')
const crypto = require('hypercore-crypto')
const b4a = require('b4a')

const hex = (b) => b4a.toString(b, 'hex')
const unhex = (s) => b4a.from(s, 'hex')

async function openCore (tmp, name, seed) {
  const core = new Hypercore(fs.mkdtempSync(path.join(tmp, name + '-')), { keyPair: crypto.keyPair(unhex(seed)) })
  await core.ready()
  return core
}

async function write (tmp, input) {
  const core = await openCore(tmp, 'write', input.seed)
  const blobs = new Hyperblobs(core)
  await blobs.ready()
  const ids = []
  for (const op of input.ops) {
    if (op.kind === 'put') {
      const opts = op.blockSize ? { blockSize: op.blockSize } : undefined
      ids.push(await blobs.put(unhex(op.data), opts))
    } else {
      const opts = { dedup: !!op.dedup, blockMap: !!op.blockMap }
      if (op.prev !== null && op.prev !== undefined) opts.blob = ids[op.prev]
      const ws = blobs.createWriteStream(opts)
      const closed = new Promise((resolve, reject) => {
        ws.once('error', reject)
        ws.once('close', resolve)
      })
      for (const w of op.writes) ws.write(unhex(w))
      ws.end()
      await closed
      ids.push(ws.id)
    }
  }
  const blocks = []
  for (let i = 0; i < core.length; i++) blocks.push(hex(crypto.data(await core.get(i))))
  const out = {
    key: hex(core.key),
    ids: ids.map((id) => JSON.stringify(id)),
    blocks,
    length: core.length,
    byteLength: core.byteLength,
    treeHash: hex(await core.treeHash()),
    signature: hex(core.state.signature)
  }
  await blobs.close()
  return out
}

async function read (tmp, input) {
  const core = await openCore(tmp, 'read', input.seed)
  const blobs = new Hyperblobs(core)
  await blobs.ready()
  await core.append(input.blocks.map(unhex))
  const results = []
  for (const r of input.reads) {
    const opts = {}
    if (r.start !== null) opts.start = r.start
    if (r.length !== null) opts.length = r.length
    if (r.end !== null) opts.end = r.end
    const data = await blobs.get(r.id, Object.keys(opts).length ? opts : undefined)
    results.push({
      byteLength: await blobs.getByteLength(r.id),
      length: data === null ? null : data.length,
      hash: data === null ? null : hex(crypto.hash(data))
    })
  }
  const out = { treeHash: hex(await core.treeHash()), results }
  await blobs.close()
  return out
}

async function main () {
  const [inFile, outFile] = process.argv.slice(2)
  const input = JSON.parse(fs.readFileSync(inFile, 'utf8'))
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-blobs-'))
  try {
    const out = {
      write: await write(tmp, input.write),
      read: await read(tmp, input.read)
    }
    fs.writeFileSync(outFile, JSON.stringify(out))
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err)
  process.exit(1)
})

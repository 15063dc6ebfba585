#!/usr/bin/env node
// Interop fixture generator: builds hypercores with the JS reference (hypercore 11)
// from a deterministic generator and writes everything the Rust side needs to
// compare against into one JSON file.
//
// Usage: node make-logs.js OUT.json
//
// The generator (mulberry32, block sizes, block contents, batches, key seed) is
// re-implemented on the Rust side; keep the two in lockstep.
//
// Proof requests that the reference refuses are recorded as
// { request, error: message } instead of { request, data }.

'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const Hypercore = require('hypercore')
const crypto = require('hypercore-crypto')
const c = require('compact-encoding')
const b4a = require('b4a')
const Verifier = require('hypercore/lib/verifier')
const { wire } = require('hypercore/lib/messages')
const { MerkleTree } = require('hypercore/lib/merkle-tree')

const LOGS = [
  { seed: 1, compat: false, big: false, count: 150 },
  { seed: 2, compat: true, big: false, count: 150 },
  { seed: 3, compat: false, big: true, count: 60 },
  { seed: 4, compat: false, big: false, count: 1000 }
]

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

const hex = (b) => (b === null || b === undefined) ? null : b4a.toString(b, 'hex')

function blockSizes (rng, count, big) {
  const sizes = []
  for (let i = 0; i < count; i++) {
    const r = rng() % 100
    let size
    if (r < 10) size = 0
    else if (r < 80) size = rng() % 1024
    else if (r < 98) size = rng() % 65536
    else size = 65536 + (rng() % 200000)
    sizes.push(size)
  }
  if (big) sizes[count >> 1] = 3 * 1048576 + (rng() % 1000)
  return sizes
}

function makeBatches (rng, count) {
  const batches = []
  let start = 0
  while (start < count) {
    const n = 1 + (rng() % 16)
    batches.push([start, Math.min(count, start + n)])
    start += n
  }
  return batches
}

function blockContent (seed, i, size) {
  const crng = mulberry32((seed ^ Math.imul(i + 1, 0x9E3779B1)) >>> 0)
  const buf = b4a.alloc(size)
  for (let off = 0; off < size; off += 4) {
    const w = crng()
    const n = Math.min(4, size - off)
    for (let k = 0; k < n; k++) buf[off + k] = (w >>> (8 * k)) & 0xff
  }
  return buf
}

function keySeed (seed) {
  const s = b4a.alloc(32)
  for (let j = 0; j < 32; j++) s[j] = (seed * 7 + j) & 0xff
  return s
}

// Plain-JSON copy of a request object (numbers and nulls only).
function cloneRequest (req) {
  return JSON.parse(JSON.stringify(req))
}

// Produce the proof for `req` the way the replicator does when it answers a
// remote request (lib/replicator.js: Peer._handleRequest -> _getProof ->
// MerkleTree.proof, then batch.tryFlush(), then ProofRequest.fulfill()).
//
// We do not use `core.proof(req)` (index.js) for the recorded bytes because in
// hypercore 11.39.5 it calls rx.tryFlush() synchronously, before
// MerkleTree.proof has finished its async seek (seekFromHead), so every
// seek+upgrade request fails there with "Cannot read properties of null
// (reading 'get')". The replicator flushes only after MerkleTree.proof has
// resolved, so seeks work on the wire. For all other requests the two paths
// give identical proofs; that is checked below.
async function replicatorProof (core, req) {
  const state = core.core.state
  const rx = core.core.storage.read(state.fork)

  let block = null
  if (req.block) {
    block = rx.getBlock(req.block.index)
    block.catch(noop)
  }

  let proof
  try {
    proof = await MerkleTree.proof(state, rx, req)
  } catch (err) {
    rx.destroy()
    throw err
  }
  rx.tryFlush()

  const [settled, value] = await Promise.all([proof.settle(), block])
  if (!value && settled.block) throw new Error('block ' + req.block.index + ' not available')
  if (value) settled.block.value = value
  return settled
}

function noop () {}

// The data message the replicator sends for a settled proof
// (lib/replicator.js, Peer._fulfillRequest -> this.wireData.send({...})):
// request id, the request's fork, and block/hash/seek/upgrade/manifest straight
// from the settled proof. `manifest` is only filled in there when the request
// asked for it (msg.manifest), which ours never do.
function encodeDataMessage (proof) {
  const msg = {
    request: 0,
    fork: 0,
    block: proof.block,
    hash: proof.hash,
    seek: proof.seek,
    upgrade: proof.upgrade,
    manifest: null
  }
  return c.encode(wire.data, msg)
}

async function recordProof (core, req) {
  const request = cloneRequest(req)
  let data
  try {
    data = encodeDataMessage(await replicatorProof(core, cloneRequest(req)))
  } catch (err) {
    return { request, error: String(err.message) }
  }

  // Cross-check against the public API where it works.
  let viaApi = null
  try {
    viaApi = encodeDataMessage(await core.proof(cloneRequest(req)))
  } catch {}
  if (viaApi !== null && !b4a.equals(viaApi, data)) {
    throw new Error('core.proof and replicator path disagree for ' + JSON.stringify(request))
  }

  return { request, data: hex(data) }
}

async function buildLog (params, tmpRoot) {
  const { seed, compat, big, count } = params
  const rng = mulberry32(seed)
  const sizes = blockSizes(rng, count, big)
  const batches = makeBatches(rng, count)
  const blocks = sizes.map((size, i) => blockContent(seed, i, size))

  const keyPair = crypto.keyPair(keySeed(seed))
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'log-' + seed + '-'))
  const core = new Hypercore(dir, { keyPair, compat })
  await core.ready()

  const out = {
    seed,
    compat,
    big,
    count,
    key: hex(core.key),
    discoveryKey: hex(core.discoveryKey),
    publicKey: hex(keyPair.publicKey),
    manifest: hex(Verifier.encodeManifest(core.manifest)),
    sizes,
    blockHashes: blocks.map((b) => hex(crypto.data(b))),
    batches: [],
    proofs: [],
    seeks: []
  }

  for (const [start, end] of batches) {
    await core.append(blocks.slice(start, end))
    out.batches.push({
      start,
      end,
      length: core.length,
      byteLength: core.byteLength,
      treeHash: hex(await core.treeHash()),
      signature: hex(core.state.signature)
    })
  }

  const L = core.length
  const byteLength = core.byteLength
  if (L !== count) throw new Error('length mismatch: ' + L + ' != ' + count)

  // a. every block with a full upgrade from 0
  for (let i = 0; i < L; i++) {
    out.proofs.push(await recordProof(core, {
      fork: 0, block: { index: i, nodes: 0 }, hash: null, seek: null, upgrade: { start: 0, length: L }
    }))
  }

  const prng = mulberry32(seed + 1000)

  // b. block proofs without upgrade, nodes 0..3
  for (let k = 0; k < 40; k++) {
    const i = prng() % L
    const nodes = prng() % 4
    out.proofs.push(await recordProof(core, {
      fork: 0, block: { index: i, nodes }, hash: null, seek: null, upgrade: null
    }))
  }

  // c. seek with a full upgrade
  for (let k = 0; k < 20; k++) {
    const bytes = prng() % byteLength
    out.proofs.push(await recordProof(core, {
      fork: 0, block: null, hash: null, seek: { bytes, padding: 0 }, upgrade: { start: 0, length: L }
    }))
  }

  // d. block + seek with a full upgrade. The reference refuses every one of
  // these ("Cannot both do a seek and block/hash request when upgrading",
  // lib/merkle-tree.js generateProof: upgrade.start is 0, so the block is always
  // inside the upgrade range); they are recorded as errors.
  for (let k = 0; k < 20; k++) {
    const i = prng() % L
    const bytes = prng() % byteLength
    out.proofs.push(await recordProof(core, {
      fork: 0, block: { index: i, nodes: 0 }, hash: null, seek: { bytes, padding: 0 }, upgrade: { start: 0, length: L }
    }))
  }

  // e. upgrade-only proofs from a random start
  for (let k = 0; k < 20; k++) {
    const s = prng() % L
    if (L - s === 0) continue
    out.proofs.push(await recordProof(core, {
      fork: 0, block: null, hash: null, seek: null, upgrade: { start: s, length: L - s }
    }))
  }

  // f. tree-node (hash) proofs without upgrade
  for (let k = 0; k < 20; k++) {
    const i = prng() % (2 * L - 1)
    const nodes = prng() % 4
    out.proofs.push(await recordProof(core, {
      fork: 0, block: null, hash: { index: i, nodes }, seek: null, upgrade: null
    }))
  }

  // seeks
  for (let k = 0; k < 30; k++) {
    const bytes = prng() % byteLength
    const [index, offset] = await core.seek(bytes)
    out.seeks.push({ bytes, index, offset })
  }

  await core.close()
  return out
}

async function main () {
  const outPath = process.argv[2]
  if (!outPath) {
    console.error('usage: node make-logs.js OUT.json')
    process.exit(2)
  }

  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-interop-'))
  try {
    const result = {
      hypercore: require('hypercore/package.json').version,
      node: process.version,
      logs: []
    }
    for (const params of LOGS) result.logs.push(await buildLog(params, tmpRoot))
    fs.writeFileSync(outPath, JSON.stringify(result) + '\n')
  } finally {
    fs.rmSync(tmpRoot, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})

#!/usr/bin/env node
// The JavaScript side of libdat's bee interop test (core/tests/bee_interop.rs): applies a list
// of operations to hyperbee 2.27.3 on hypercore 11.39.5 and reports every block and the answers
// to a list of queries, so that libdat can check it writes the same blocks and reads the same
// answers.
//
// Usage: node bee-ops.js SEED < input.json > output.json
//
// The core's key pair is crypto.keyPair(SEED as one byte × 32), so the blocks (and the key) are
// deterministic. Input (keys and values as hex; binary key and value encodings):
//
//   { "ops": [ {"put": [K, V]} | {"putnv": K} | {"del": K} | {"batch": [[K, V | null], ...]} ],
//     "queries": [ {"range": {"version", "gt"?, "gte"?, "lt"?, "lte"?, "reverse", "limit"?}}
//                | {"history": {"version", "gt"?, "gte"?, "lt"?, "lte"?, "reverse", "limit"?}}
//                | {"diff": {"version", "other", "gt"?, "gte"?, "lt"?, "lte"?, "limit"?}}
//                | {"get": {"version", "key"}} ] }
//
// A batch entry with value null is a delete. Output:
//
//   { "key": HEX, "length": N, "blocks": [HEX, ...], "results": [...] }
//
// with one result per query: a list of [seq, keyHex, valueHex | null] (range), of
// [type, seq, keyHex, valueHex | null] (history), of [left, right] with each side null or
// [seq, keyHex, valueHex | null] (diff), and for get {"get": entry | null, "peek": entry | null}
// where "peek" is the same key read through a range (hyperbee's get has a shortcut that can
// return a deleted key; libdat's get matches "peek").

'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee')
const crypto = require('hypercore-crypto')
const b4a = require('b4a')

const hex = (b) => (b === null || b === undefined) ? null : b4a.toString(b, 'hex')
const buf = (h) => (h === null || h === undefined) ? undefined : b4a.from(h, 'hex')
const entry = (n) => n && [n.seq, hex(n.key), hex(n.value)]

function range (q) {
  const r = {}
  for (const k of ['gt', 'gte', 'lt', 'lte']) if (q[k] !== undefined && q[k] !== null) r[k] = buf(q[k])
  if (q.reverse) r.reverse = true
  if (q.limit !== undefined && q.limit !== null) r.limit = q.limit
  return r
}

async function collect (stream, map) {
  const out = []
  for await (const x of stream) out.push(map(x))
  return out
}

async function answer (db, q) {
  if (q.range) {
    const co = db.checkout(q.range.version)
    const res = await collect(co.createReadStream(range(q.range)), entry)
    await co.close()
    return res
  }
  if (q.history) {
    const h = q.history
    const co = db.checkout(h.version)
    const opts = {}
    for (const k of ['gt', 'gte', 'lt', 'lte', 'limit']) if (h[k] !== undefined && h[k] !== null) opts[k] = h[k]
    if (h.reverse) opts.reverse = true
    const res = await collect(co.createHistoryStream(opts), (n) => [n.type, n.seq, hex(n.key), hex(n.value)])
    await co.close()
    return res
  }
  if (q.diff) {
    const co = db.checkout(q.diff.version)
    const res = await collect(co.createDiffStream(q.diff.other, range(q.diff)), (d) => [entry(d.left), entry(d.right)])
    await co.close()
    return res
  }
  if (q.get) {
    const co = db.checkout(q.get.version)
    const key = buf(q.get.key)
    const got = entry(await co.get(key))
    const peek = entry(await co.peek({ gte: key, lte: key }))
    await co.close()
    return { get: got, peek }
  }
  throw new Error('unknown query ' + JSON.stringify(q))
}

async function main () {
  const seed = Number(process.argv[2])
  if (!Number.isInteger(seed) || seed < 0 || seed > 255) throw new Error('usage: node bee-ops.js SEED < input.json')
  const input = JSON.parse(fs.readFileSync(0, 'utf-8'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-bee-'))
  try {
    const keyPair = crypto.keyPair(b4a.alloc(32, seed))
    const core = new Hypercore(dir, { keyPair })
    const db = new Hyperbee(core)
    await db.ready()

    for (const op of input.ops) {
      if (op.put) await db.put(buf(op.put[0]), buf(op.put[1]))
      else if (op.putnv !== undefined) await db.put(buf(op.putnv))
      else if (op.del !== undefined) await db.del(buf(op.del))
      else if (op.batch) {
        const b = db.batch()
        for (const [k, v] of op.batch) {
          if (v === null) await b.del(buf(k))
          else await b.put(buf(k), buf(v))
        }
        await b.flush()
      } else throw new Error('unknown op ' + JSON.stringify(op))
    }

    const blocks = []
    for (let i = 0; i < core.length; i++) blocks.push(hex(await core.get(i)))
    const results = []
    for (const q of input.queries) results.push(await answer(db, q))

    await db.close()
    const out = JSON.stringify({ key: hex(core.key), length: core.length, blocks, results })
    // wait until the whole output is written: process.exit would cut a pending pipe write
    await new Promise((resolve, reject) => process.stdout.write(out, (err) => err ? reject(err) : resolve()))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err)
  process.exit(1)
})

'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

// A fresh directory removed when the test ends.
function tmpdir (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-node-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

// Deterministic pseudo-random bytes (xorshift32).
function bytes (n, seed = 1) {
  const out = Buffer.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

async function collect (iterable) {
  const out = []
  for await (const x of iterable) out.push(x)
  return out
}

module.exports = { tmpdir, bytes, collect }

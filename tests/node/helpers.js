'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

// The addon package (bindings/node), as `require('libdat')` gives it.
const ADDON = path.join(__dirname, '..', '..', 'bindings', 'node')

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

// A seeded generator of integers in [0, 2^32) (mulberry32).
function rng (seed) {
  let a = seed >>> 0
  return function next () {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

async function collect (iterable) {
  const out = []
  for await (const x of iterable) out.push(x)
  return out
}

// `promise`, or a rejection naming `what` if it has not settled within `ms` (a hang fails).
function within (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// Polls `cond` (which may be async) until it is truthy; fails after `ms`. `what` names the
// condition (a function: called for the failure message, to show the state waited on).
async function waitFor (cond, ms, what) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

module.exports = { ADDON, tmpdir, bytes, rng, collect, within, waitFor }

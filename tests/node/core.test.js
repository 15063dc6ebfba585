'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Store } = require('..')
const { tmpdir, collect } = require('./helpers')

test('a named core: append, get, seek, metadata', async (t) => {
  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  const log = store.core({ name: 'chat' })
  await log.ready()
  assert.equal(log.writable, true)
  assert.equal(log.key.length, 32)
  assert.equal(log.discoveryKey.length, 32)
  assert.equal(log.length, 0)

  assert.deepEqual(await log.append(Buffer.from('hello')), { length: 1, byteLength: 5 })
  assert.deepEqual(await log.append([Buffer.from('big'), Buffer.from('world')]), { length: 3, byteLength: 13 })
  assert.equal(log.length, 3)
  assert.equal(log.byteLength, 13)
  assert.equal(log.fork, 0)
  assert.equal(log.contiguousLength, 3)
  assert.deepEqual(await log.get(2), Buffer.from('world'))
  assert.deepEqual(await log.seek(9), [2, 1])
  assert.equal(await log.has(1), true)
  assert.equal(await log.has(3), false)

  // the same name gives the same log, here and in a store reopened on the same directory
  const again = store.core({ name: 'chat' })
  await again.ready()
  assert.deepEqual(again.key, log.key)
  assert.equal(again.length, 3)
})

test('createReadStream gives the blocks start..end (end exclusive), and follows a live log', async (t) => {
  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  const log = store.core()
  await log.ready()
  const blocks = Array.from({ length: 10 }, (_, i) => Buffer.from(`block ${i}`))
  await log.append(blocks)

  assert.deepEqual(await collect(log.createReadStream()), blocks)
  assert.deepEqual(await collect(log.createReadStream({ start: 3, end: 7 })), blocks.slice(3, 7))

  const live = log.createReadStream({ start: 8, live: true })
  const seen = []
  const done = (async () => {
    for await (const b of live) {
      seen.push(b.toString())
      if (seen.length === 4) break
    }
  })()
  await log.append([Buffer.from('block 10'), Buffer.from('block 11')])
  await done
  assert.deepEqual(seen, ['block 8', 'block 9', 'block 10', 'block 11'])
})

test('events: append, with a listener that throws reported as a warning', async (t) => {
  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  const log = store.core({ name: 'events' })
  await log.ready()

  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))

  const lengths = []
  const appended = new Promise((resolve) => {
    log.on('append', () => {
      lengths.push(log.length)
      if (lengths.length === 2) resolve()
    })
  })
  log.on('append', () => { throw new Error('listener bug') })
  await new Promise((resolve) => setTimeout(resolve, 50)) // the subscription starts
  await log.append(Buffer.from('a'))
  await log.append(Buffer.from('b'))
  await appended
  assert.deepEqual(lengths.length, 2)
  await new Promise((resolve) => setImmediate(resolve))
  assert.ok(warnings.some((w) => w.message === 'listener bug'), 'the throwing listener is reported')
  log.removeAllListeners()
})

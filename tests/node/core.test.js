'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Store } = require('../../bindings/node')
const { tmpdir, collect, within, waitFor } = require('./helpers')

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
  // on() of a ready core subscribes at once: the next append is seen
  await log.append(Buffer.from('a'))
  await log.append(Buffer.from('b'))
  await within(appended, 10000, 'two append events')
  assert.equal(lengths.length, 2)
  await waitFor(() => warnings.filter((w) => w.message === 'listener bug').length === 2, 10000,
    'the throwing listener reported once per event')
  const warning = warnings.find((w) => w.message === 'listener bug')
  assert.equal(warning.code, 'LIBDAT_CALLBACK_THREW')
  assert.equal(warning.cause.message, 'listener bug') // the error the listener threw
  // the library goes on: the core still appends and reads, and its events still flow
  const third = new Promise((resolve) => log.once('append', resolve))
  assert.deepEqual(await log.append(Buffer.from('c')), { length: 3, byteLength: 3 })
  await within(third, 10000, 'a third append event')
  assert.deepEqual(await log.get(2), Buffer.from('c'))
  log.removeAllListeners()
})

test('nothing blocks the event loop: JavaScript runs while a get waits and a large append commits', async (t) => {
  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  const remote = store.core({ key: Buffer.alloc(32, 7) }) // a log only a peer could fill
  await remote.ready()
  const log = store.core({ name: 'big' })
  await log.ready()
  let turns = 0
  let spinning = true
  const spin = () => {
    if (!spinning) return
    turns++
    setImmediate(spin)
  }
  spin()
  const waited = remote.get(0, { timeout: 300 }).catch((e) => e.code)
  const big = Array.from({ length: 64 }, (_, i) => Buffer.alloc(256 * 1024, i))
  const appended = log.append(big) // 16 MiB, one commit
  const [code, result] = await Promise.all([waited, appended])
  spinning = false
  assert.equal(code, 'ETIMEDOUT')
  assert.deepEqual(result, { length: 64, byteLength: 16 * 1024 * 1024 })
  // the event loop went round many times during the 300 ms wait
  assert.ok(turns > 50, `the event loop turned ${turns} times`)
})

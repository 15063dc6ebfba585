'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Store } = require('../../bindings/node')
const { tmpdir, bytes, rng, collect, within, waitFor } = require('./helpers')

async function openDrive (t) {
  const store = new Store(tmpdir(t))
  t.after(() => store.close())
  const drive = store.drive()
  await drive.ready()
  return { store, drive }
}

test('put, get, entry, exists, list, readdir, symlink, del', async (t) => {
  const { drive } = await openDrive(t)
  assert.equal(drive.writable, true)
  assert.equal(drive.version, 1)

  const e = await drive.put('/a.txt', Buffer.from('hello'), { metadata: { mime: 'text/plain' } })
  assert.equal(e.key, '/a.txt')
  assert.equal(e.size, 5)
  await drive.put('/dir/b.bin', bytes(1000), { executable: true })
  await drive.put('/dir/sub/c.txt', Buffer.from('c'))
  await drive.symlink('/link', '/a.txt')
  assert.equal(drive.version, 5)

  assert.deepEqual(await drive.get('/a.txt'), Buffer.from('hello'))
  assert.equal(await drive.get('/missing'), null)
  assert.equal(await drive.get('/link'), null) // a symlink has no content of its own
  const entry = await drive.entry('/a.txt')
  assert.deepEqual(entry.value.metadata, { mime: 'text/plain' })
  assert.equal(entry.value.blob.byteLength, 5)
  assert.equal((await drive.entry('/dir/b.bin')).value.executable, true)
  assert.equal((await drive.entry('/link')).value.linkname, '/a.txt')
  assert.equal((await drive.entry('/link', { follow: true })).key, '/a.txt')
  assert.equal(await drive.entry('/nope'), null)
  assert.equal(await drive.exists('/dir/sub/c.txt'), true)

  const all = await collect(drive.list('/'))
  assert.deepEqual(all.map((x) => x.key), ['/a.txt', '/dir/b.bin', '/dir/sub/c.txt', '/link'])
  const recursive = await collect(drive.list('/', { recursive: true }))
  assert.deepEqual(recursive, all)
  assert.deepEqual(recursive[1].value.blob.byteLength, 1000)
  assert.equal(recursive[3].value.linkname, '/a.txt')
  // an async iterable that can stop early
  for await (const e of drive.list('/dir', { recursive: true })) {
    assert.equal(e.key, '/dir/b.bin')
    break
  }
  assert.deepEqual((await collect(drive.list('/dir'))).map((x) => x.key), ['/dir/b.bin', '/dir/sub/c.txt'])
  assert.deepEqual((await collect(drive.list('/', { recursive: false }))).map((x) => x.key),
    ['/a.txt', '/dir/b.bin', '/link'])
  assert.deepEqual(await collect(drive.readdir('/')), ['a.txt', 'dir', 'link'])

  assert.equal(await drive.del('/a.txt'), true)
  assert.equal(await drive.del('/a.txt'), false)
  assert.equal(await drive.get('/a.txt'), null)
})

test('a byte cursor and read streams (end inclusive) match the file at 1,000 random offsets', async (t) => {
  const { drive } = await openDrive(t)
  const data = bytes(600 * 1024 + 123, 7) // several 64 KiB blocks
  await drive.put('/big.bin', data)

  const cursor = drive.createByteCursor('/big.bin')
  await cursor.open()
  assert.equal(cursor.length, data.length)
  const next = rng(12345)
  for (let i = 0; i < 1000; i++) {
    const pos = next() % data.length
    const n = 1 + next() % 4096
    assert.equal(await cursor.seek(pos), pos)
    const got = await cursor.read(n)
    assert.deepEqual(got, data.subarray(pos, pos + n), `read ${n} at ${pos}`)
    assert.equal(cursor.position, pos + got.length)
    // a read without a seek goes on from the position
    if (i % 100 === 0 && pos + n < data.length) {
      const more = await cursor.read(100)
      assert.deepEqual(more, data.subarray(pos + n, pos + n + 100))
      assert.equal(cursor.position, pos + n + more.length)
    }
  }
  await cursor.seek(data.length)
  assert.equal((await cursor.read(10)).length, 0) // the end
  await cursor.close()
  await assert.rejects(cursor.read(1), { code: 'ECLOSED' })

  const whole = Buffer.concat(await collect(drive.createReadStream('/big.bin')))
  assert.deepEqual(whole, data)
  for (const [start, end] of [[100, 199], [0, 0], [65535, 65536], [70000, 400000], [data.length - 5, data.length - 1]]) {
    const got = Buffer.concat(await collect(drive.createReadStream('/big.bin', { start, end })))
    assert.deepEqual(got, data.subarray(start, end + 1), `bytes ${start}..=${end}`)
  }
  const tail = Buffer.concat(await collect(drive.createReadStream('/big.bin', { start: 600000 })))
  assert.deepEqual(tail, data.subarray(600000))
})

test('back-pressure: a stalled reader of a large read stream holds a bounded number of bytes', async (t) => {
  const { drive } = await openDrive(t)
  const data = bytes(16 * 1024 * 1024, 3) // 256 chunks of 64 KiB
  await drive.put('/large.bin', data)
  const CHUNK = 64 * 1024
  const AHEAD = 16 // chunks the native side reads ahead (and hands over in one batch at most)
  const NATIVE = (AHEAD + 1) * CHUNK // the native read-ahead: 16 chunks buffered, 1 waiting for room
  const stream = drive.createReadStream('/large.bin')
  const hwm = stream.readableHighWaterMark
  assert.equal(hwm, CHUNK)
  // What the stream holds in memory: its Readable buffer (the high-water mark, plus at most one
  // batch pushed below it) and the native read-ahead. Were the producer not held back, this
  // would grow to the whole file.
  const bound = hwm + AHEAD * CHUNK + NATIVE
  let most = 0
  const held = () => {
    const n = stream.readableLength + stream.nativeBufferedBytes
    most = Math.max(most, n)
    assert.ok(n <= bound, `the stream holds ${n} bytes, more than ${bound}`)
    return n
  }
  const parts = []
  let read = 0
  const stalls = [0, 4, 8].map((mib) => mib * 1024 * 1024) // far enough from the end to fill up
  for await (const chunk of stream) {
    parts.push(chunk)
    read += chunk.length
    held()
    if (stalls.length > 0 && read > stalls[0]) {
      stalls.shift()
      // the consumer stalls here: wait until both buffers are as full as they get (the
      // Readable stops pulling at its high-water mark, the native producer at its channel's
      // bound), checking the bound on the way; then they stay so until this loop reads on
      await within(waitFor(() => {
        held()
        return stream.readableLength >= hwm && stream.nativeBufferedBytes >= NATIVE
      }, 10000, () => `the stalled stream to fill its buffers (Readable ${stream.readableLength}, native ${stream.nativeBufferedBytes} bytes, after ${read} bytes)`), 15000, 'stall')
      assert.ok(held() >= hwm + NATIVE)
    }
  }
  assert.equal(stalls.length, 0)
  assert.ok(most >= hwm + NATIVE, `the read-ahead filled up (${most} bytes)`)
  assert.ok(Buffer.concat(parts).equals(data), 'the slow reader still read every byte in order')
  assert.equal(stream.nativeBufferedBytes, 0)
})

test('a deduplicated file: its blob is a block map, its size comes from drive.fileSize()', async (t) => {
  const { drive } = await openDrive(t)
  const data = bytes(300000, 5)
  await drive.put('/one.bin', data, { dedup: true })
  const two = await drive.put('/two.bin', data, { dedup: true })
  assert.equal(two.value.blob.blockMap, true)
  assert.ok(two.value.blob.byteLength < 1000, 'the id covers the map')
  assert.equal(two.size, null)
  assert.equal(await drive.fileSize(two), data.length)
  assert.deepEqual(await drive.get('/two.bin'), data)
  const plain = await drive.put('/plain.bin', Buffer.from('abc'))
  assert.equal(plain.value.blob.blockMap, undefined)
  assert.equal(plain.size, 3)
  assert.equal(await drive.fileSize(plain), 3)
  // an older version's entry, through the history
  await drive.put('/two.bin', data.subarray(0, 1000), { dedup: true })
  const sizes = []
  for (const h of await drive.history('/two.bin')) sizes.push(await drive.fileSize(h.entry))
  assert.deepEqual(sizes, [data.length, 1000])
  await assert.rejects(drive.fileSize({ key: '/x', value: { executable: false, linkname: null, blob: { blockOffset: -1, blockLength: 1, byteOffset: 0, byteLength: 1 }, metadata: null }, size: null }), { code: 'EINVAL' })
})

test('checkout, diff, history, changes', async (t) => {
  const { store, drive } = await openDrive(t)
  await drive.put('/a.txt', Buffer.from('one'))
  await drive.put('/b.txt', Buffer.from('bee'))
  const v = drive.version
  await drive.put('/a.txt', Buffer.from('two'))
  await drive.del('/b.txt')
  await drive.put('/c.txt', Buffer.from('sea'))

  const old = drive.checkout(v)
  await old.ready()
  assert.equal(old.version, v)
  assert.equal(old.writable, false)
  assert.deepEqual(await old.get('/a.txt'), Buffer.from('one'))
  assert.deepEqual(await old.get('/b.txt'), Buffer.from('bee'))
  await assert.rejects(old.put('/x', Buffer.from('x')), { code: 'ENOTWRITABLE' })

  const diff = await collect(drive.diff(v))
  const byName = Object.fromEntries(diff.map((d) => [d.name, d]))
  assert.deepEqual(Object.keys(byName).sort(), ['/a.txt', '/b.txt', '/c.txt'])
  assert.equal(byName['/a.txt'].type, 'changed')
  // left: this drive's entry (now), right: the other version's
  assert.equal(byName['/a.txt'].left.key, '/a.txt')
  assert.equal(byName['/a.txt'].right.key, '/a.txt')
  assert.deepEqual(byName['/a.txt'].left, await drive.entry('/a.txt'))
  assert.deepEqual(byName['/a.txt'].right, await old.entry('/a.txt'))
  assert.deepEqual(byName['/b.txt'].right, await old.entry('/b.txt'))
  assert.deepEqual(byName['/c.txt'].left, await drive.entry('/c.txt'))
  assert.equal(byName['/b.txt'].type, 'removed')
  assert.equal(byName['/b.txt'].left, null)
  assert.equal(byName['/c.txt'].type, 'added')
  assert.equal(byName['/c.txt'].right, null)

  const other = store.drive({ name: 'other' })
  await other.ready()
  await other.put('/a.txt', Buffer.from('two'))
  await other.put('/only-there.txt', Buffer.from('x'))
  await other.put('/c.txt', Buffer.from('see'))
  const across = await collect(drive.diff(other))
  assert.deepEqual(across.map((d) => [d.name, d.type]), [['/c.txt', 'changed'], ['/only-there.txt', 'removed']])
  assert.deepEqual(across[0].left, await drive.entry('/c.txt'))
  assert.deepEqual(across[0].right, await other.entry('/c.txt'))
  assert.equal(across[1].left, null)
  assert.deepEqual(across[1].right, await other.entry('/only-there.txt'))
  // and the other way round, under a folder
  const back = await collect(other.diff(drive, { folder: '/' }))
  assert.deepEqual(back.map((d) => [d.name, d.type]), [['/c.txt', 'changed'], ['/only-there.txt', 'added']])

  const history = await drive.history('/a.txt')
  assert.deepEqual(history.map((h) => h.version), [2, 4])
  assert.equal(history[0].entry.size, 3)
  const bHistory = await drive.history('/b.txt')
  assert.equal(bHistory.at(-1).entry, null)

  const changes = await collect(drive.createChangesStream({ since: 0 }))
  assert.deepEqual(changes.map((c) => [c.version, c.type, c.name]), [
    [2, 'put', '/a.txt'], [3, 'put', '/b.txt'], [4, 'put', '/a.txt'], [5, 'del', '/b.txt'], [6, 'put', '/c.txt']
  ])
  const since = await collect(drive.changes({ since: 5 }))
  assert.deepEqual(since.map((c) => c.name), ['/b.txt', '/c.txt'])
})

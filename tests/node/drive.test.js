'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Store } = require('..')
const { tmpdir, bytes, collect } = require('./helpers')

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
  let x = 12345
  for (let i = 0; i < 1000; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    const pos = x % data.length
    const n = 1 + (x >> 8) % 4096
    assert.equal(await cursor.seek(pos), pos)
    const got = await cursor.read(n)
    assert.deepEqual(got, data.subarray(pos, pos + n), `read ${n} at ${pos}`)
    assert.equal(cursor.position, pos + got.length)
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

test('a slow reader of a large read stream holds a bounded amount in memory', async (t) => {
  const { drive } = await openDrive(t)
  const data = bytes(24 * 1024 * 1024, 3)
  await drive.put('/large.bin', data)
  const stream = drive.createReadStream('/large.bin')
  // read two chunks, then stall: the stream and the native side stop after a bounded read-ahead
  let read = 0
  for await (const chunk of stream) {
    read += chunk.length
    if (read >= 128 * 1024) break
  }
  const s2 = drive.createReadStream('/large.bin')
  const before = process.memoryUsage().arrayBuffers
  s2.pause()
  s2.read(0)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const buffered = s2.readableLength
  const grown = process.memoryUsage().arrayBuffers - before
  assert.ok(buffered <= 256 * 1024, `stream buffer ${buffered}`)
  assert.ok(grown < 4 * 1024 * 1024, `buffers grew by ${grown} bytes while stalled`)
  s2.destroy()
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
  assert.equal(byName['/b.txt'].type, 'removed')
  assert.equal(byName['/b.txt'].left, null)
  assert.equal(byName['/c.txt'].type, 'added')
  assert.equal(byName['/c.txt'].right, null)

  const other = store.drive({ name: 'other' })
  await other.ready()
  await other.put('/a.txt', Buffer.from('two'))
  const across = await collect(drive.diff(other))
  assert.deepEqual(across.map((d) => [d.name, d.type]), [['/c.txt', 'added']])

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

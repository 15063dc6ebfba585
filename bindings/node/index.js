'use strict'
// libdat for Node: the native classes of libdat.node (see index.d.ts), plus what only JavaScript
// does well: async iterators, Readable streams, EventEmitter events, callbacks, and `err.code`.
// No logic of libdat lives here (it is all in the Rust core); this file only adapts shapes.

const { Readable } = require('node:stream')
const { EventEmitter } = require('node:events')
// LIBDAT_NODE_ADDON: another build of the addon (the benchmarks load a release build this way)
const native = require(process.env.LIBDAT_NODE_ADDON || './libdat.node')

const {
  Store, Core, Drive, Range, ByteCursor, Download, Server, Connection,
  BlockIterator, CoreEventIterator, EntryIterator, NameIterator, ChangeIterator, DiffIterator,
  ChunkIterator
} = native

// ---------------------------------------------------------------------------------------- errors
// Native errors carry their code at the start of the message ("ENOENT: not found: ..."), as
// Node's own errors do; copy it to err.code. napi's own argument checks become EINVAL.
const NAPI_ARG_CODES = new Set(['InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected',
  'FunctionExpected', 'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected'])

function withCode (err) {
  if (err instanceof Error) {
    const m = /^(E[A-Z0-9]+): /.exec(err.message)
    if (m) err.code = m[1]
    else if (NAPI_ARG_CODES.has(err.code)) err.code = 'EINVAL'
  }
  return err
}

function rethrow (err) { throw withCode(err) }

// The methods that return a promise (see index.d.ts).
const ASYNC_METHODS = new Set(['ready', 'close', 'append', 'get', 'has', 'seek', 'read', 'open',
  'put', 'entry', 'exists', 'del', 'symlink', 'history', 'listen', 'connect', 'done', 'next',
  'nextBatch'])

for (const C of [Store, Core, Drive, Range, ByteCursor, Download, Server, Connection, BlockIterator,
  CoreEventIterator, EntryIterator, NameIterator, ChangeIterator, DiffIterator, ChunkIterator]) {
  for (const name of Object.getOwnPropertyNames(C.prototype)) {
    const d = Object.getOwnPropertyDescriptor(C.prototype, name)
    if (name === 'constructor' || typeof d.value !== 'function') continue
    const fn = d.value
    const async = ASYNC_METHODS.has(name)
    d.value = function (...args) {
      let r
      try {
        r = fn.apply(this, args)
      } catch (err) {
        // a bad argument to an async method rejects, as the other errors of that method do
        if (async) return Promise.reject(withCode(err))
        throw withCode(err)
      }
      return r instanceof Promise ? r.catch(rethrow) : r
    }
    Object.defineProperty(C.prototype, name, d)
  }
}

// ------------------------------------------------------------------------------------- callbacks
// A callback (or event listener) that throws is reported as a process warning
// (process.on('warning'): name 'LibdatWarning', code 'LIBDAT_CALLBACK_THREW', the thrown error as
// its cause) and does not take the library, or the stream it came from, down.
function warn (err, code) {
  const cause = err instanceof Error ? err : new Error(String(err))
  const w = new Error(cause.message, { cause })
  w.name = 'LibdatWarning'
  w.code = code
  process.emitWarning(w)
}

function callSafely (fn, ...args) {
  try {
    fn(...args)
  } catch (err) {
    warn(err, 'LIBDAT_CALLBACK_THREW')
  }
}

// ------------------------------------------------------------------------------- async iterators
// Native iterators have next() -> Promise<item | null> and close(); make them async iterable.
function asyncIterator () {
  const it = this
  return {
    async next () {
      const value = await it.next()
      return value === null ? { done: true, value: undefined } : { done: false, value }
    },
    async return () {
      it.close()
      return { done: true, value: undefined }
    },
    [Symbol.asyncIterator] () { return this }
  }
}

for (const It of [BlockIterator, CoreEventIterator, EntryIterator, NameIterator, ChangeIterator,
  DiffIterator, ChunkIterator, Download]) {
  It.prototype[Symbol.asyncIterator] = asyncIterator
}

// ------------------------------------------------------------------------------------------ core
const nativePrioritize = Core.prototype.prioritize

// prioritize(options, cb): cb(null) once every block is here, cb(err) if the range is withdrawn
// first (ECANCELED) or the core closes (ECLOSED).
Core.prototype.prioritize = function prioritize (options, cb) {
  if (typeof options === 'function') return this.prioritize(undefined, options)
  const range = nativePrioritize.call(this, options)
  if (typeof cb === 'function') {
    range.done().then(() => callSafely(cb, null), (err) => callSafely(cb, err))
  }
  return range
}

// A Readable of the blocks start..end (end exclusive, as hypercore); live follows the log.
Core.prototype.createReadStream = function createReadStream (options) {
  return Readable.from(this.blocks(options), { objectMode: true, highWaterMark: 16 })
}

// Events as hypercore emits them: 'append', 'truncate' (length, fork), 'download' (index, bytes,
// peer), 'upload' (index), 'clear' (start, end), 'peer-add', 'peer-remove'.
const emitters = new WeakMap()

function emitterOf (core) {
  let state = emitters.get(core)
  if (state) return state
  state = { emitter: new EventEmitter(), events: null }
  emitters.set(core, state)
  pump(core, state)
  return state
}

async function pump (core, state) {
  try {
    if (!core.key) await core.ready()
    if (emitters.get(core) !== state) return
    state.events = core.events()
    for await (const ev of state.events) dispatch(core, state.emitter, ev)
  } catch (err) {
    if (err.code !== 'ECLOSED') warn(err, 'LIBDAT_EVENTS_FAILED')
  }
}

function dispatch (core, emitter, ev) {
  const args = {
    append: [],
    truncate: [ev.length, ev.fork],
    download: [ev.index, ev.bytes, { id: ev.peer }],
    upload: [ev.index],
    clear: [ev.start, ev.end],
    'peer-add': [],
    'peer-remove': []
  }[ev.name] || []
  for (const fn of emitter.rawListeners(ev.name)) callSafely(() => fn.apply(core, args))
}

function stopIfUnused (core) {
  const state = emitters.get(core)
  if (!state || state.emitter.eventNames().length > 0) return
  emitters.delete(core)
  if (state.events) state.events.close()
}

Core.prototype.on = Core.prototype.addListener = function on (name, fn) {
  emitterOf(this).emitter.on(name, fn)
  return this
}

Core.prototype.once = function once (name, fn) {
  const core = this
  emitterOf(this).emitter.once(name, function (...args) {
    stopIfUnused(core)
    return fn.apply(this, args)
  })
  return this
}

Core.prototype.off = Core.prototype.removeListener = function off (name, fn) {
  const state = emitters.get(this)
  if (state) {
    state.emitter.off(name, fn)
    stopIfUnused(this)
  }
  return this
}

Core.prototype.removeAllListeners = function removeAllListeners (name) {
  const state = emitters.get(this)
  if (state) {
    if (name === undefined) state.emitter.removeAllListeners()
    else state.emitter.removeAllListeners(name)
    stopIfUnused(this)
  }
  return this
}

// ----------------------------------------------------------------------------------------- drive
// A Readable of the bytes start..end of a file (end inclusive, as hyperdrive), in chunks of at
// most 64 KiB. Each _read() takes every chunk the native side has read ahead (one call, not one
// per chunk). What it holds is bounded: its own buffer (the high-water mark, plus at most one
// batch) and the native read-ahead, which `nativeBufferedBytes` reports (at most 17 chunks).
class FileReadStream extends Readable {
  constructor (chunks) {
    super({ highWaterMark: 64 * 1024 })
    this._chunks = chunks
    this._reading = false
  }

  get nativeBufferedBytes () {
    return this._chunks.bufferedBytes
  }

  _read () {
    if (this._reading) return
    this._reading = true
    this._chunks.nextBatch().then((batch) => {
      this._reading = false
      if (this.destroyed) return
      if (batch.length === 0) this.push(null)
      else for (const chunk of batch) this.push(chunk)
    }, (err) => {
      this._reading = false
      this.destroy(err)
    })
  }

  _destroy (err, cb) {
    this._chunks.close()
    cb(err)
  }
}

Drive.prototype.createReadStream = function createReadStream (path, options) {
  return new FileReadStream(this.readChunks(path, options))
}

// A Readable (and async iterable) of { version, type, name, entry } from version `since` on.
Drive.prototype.createChangesStream = function createChangesStream (options) {
  return Readable.from(this.changes(options), { objectMode: true, highWaterMark: 16 })
}

module.exports = native

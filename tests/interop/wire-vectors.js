#!/usr/bin/env node
// Wire-crypto reference for libdat: the Noise XX handshake and the secretstream transport of
// @hyperswarm/secret-stream, computed by the JavaScript reference itself.
//
// Usage:
//   node wire-vectors.js                 print the golden vectors (JSON) to stdout; committed as
//                                        core/tests/vectors/noise-secretstream.json
//   node wire-vectors.js --decrypt       read {handshakeHash, senderIsInitiator, key,
//                                        headerPayload, ciphertexts[]} (hex) as JSON from stdin,
//                                        check the stream id and decrypt with sodium-secretstream,
//                                        print {plaintexts[]} (hex); exit 1 on any failure
//   node wire-vectors.js --peer ROLE     ROLE = initiator | responder: run a real NoiseSecretStream
//                                        over stdin/stdout (uint24le-framed raw bytes, fresh random
//                                        ephemeral key and header), static key from seed 0x11..
//                                        (initiator) or 0x22.. (responder). The first message it
//                                        sends is a JSON report {handshakeHash, publicKey,
//                                        remotePublicKey}; after that it echoes every message.
//
// Determinism in the vectors mode:
//  - static key pairs come from seeds 0x11 x 32 (initiator) and 0x22 x 32 (responder);
//  - ephemeral key pairs come from seeds 0x33 x 32 (initiator) and 0x44 x 32 (responder). They are
//    injected by setting `noise.e` on secret-stream's own Handshake object before its first send:
//    noise-handshake only generates an ephemeral key when `this.e === null`;
//  - libsodium's init_push always draws a random header, so the "fixedHeader" set builds the push
//    state with init_pull(fixed header, key), which gives the same state init_push would have built
//    with that header (checked below against a real init_push, whose header is random). So the
//    output is the same on every run. Ciphertexts from a real Push with a random header are
//    checked live by the Rust test through --decrypt and --peer.

'use strict'

const b4a = require('b4a')
const sodium = require('sodium-universal')
const { Push, Pull, ABYTES, HEADERBYTES, STATEBYTES } = require('sodium-secretstream')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Handshake = require('@hyperswarm/secret-stream/lib/handshake')

const hex = (b) => b4a.toString(b, 'hex')
const unhex = (s) => b4a.from(s, 'hex')
const fill = (byte, n) => b4a.alloc(n, byte)

function version (name) {
  return require(name + '/package.json').version
}

// The plaintexts of both secretstream sets. The big one is described, not spelled out.
const PATTERN = 'byte i = (i * 31 + 7) mod 256'
function pattern (n) {
  const b = b4a.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 255
  return b
}
const PLAINTEXTS = [
  { spec: { hex: '' }, bytes: b4a.alloc(0) },
  { spec: { hex: hex(b4a.from('hello')) }, bytes: b4a.from('hello') },
  { spec: { fill: 0xab, length: 100 }, bytes: fill(0xab, 100) },
  { spec: { pattern: PATTERN, length: 70000 }, bytes: pattern(70000) }
]

function unframe (framed) {
  const len = framed[0] | (framed[1] << 8) | (framed[2] << 16)
  if (len !== framed.byteLength - 3) throw new Error('bad handshake frame')
  // copy: noise-handshake zeroes parts of buffers it keeps references to when it finishes
  return b4a.from(framed.subarray(3))
}

function keyPairInfo (seed, ephemeralSeed) {
  const s = Handshake.keyPair(fill(seed, 32))
  const e = Handshake.keyPair(fill(ephemeralSeed, 32))
  return { s, e }
}

function handshakeVectors () {
  const ini = keyPairInfo(0x11, 0x33)
  const res = keyPairInfo(0x22, 0x44)

  const a = new Handshake(true, ini.s, null, 'XX')
  const b = new Handshake(false, res.s, null, 'XX')
  // copies: noise-handshake zeroes its ephemeral key pair after the split
  a.noise.e = { publicKey: b4a.from(ini.e.publicKey), secretKey: b4a.from(ini.e.secretKey) }
  b.noise.e = { publicKey: b4a.from(res.e.publicKey), secretKey: b4a.from(res.e.secretKey) }

  const m1 = unframe(a.send().data)
  const rb = b.recv(b4a.from(m1))
  if (rb === null || rb.data === null) throw new Error('responder rejected message 1')
  const m2 = unframe(rb.data)
  const ra = a.recv(b4a.from(m2))
  if (ra === null || ra.data === null) throw new Error('initiator rejected message 2')
  const m3 = unframe(ra.data)
  const rb2 = b.recv(b4a.from(m3))
  if (rb2 === null || rb2.tx === null) throw new Error('responder rejected message 3')

  if (!b4a.equals(ra.tx, rb2.rx) || !b4a.equals(ra.rx, rb2.tx) || !b4a.equals(ra.hash, rb2.hash)) {
    throw new Error('the two sides disagree')
  }

  return {
    ini,
    res,
    initiatorResult: ra,
    responderResult: rb2,
    out: {
      protocol: 'Noise_XX_Ed25519_ChaChaPoly_BLAKE2b',
      initiator: {
        staticSeed: hex(fill(0x11, 32)),
        staticPublicKey: hex(ini.s.publicKey),
        ephemeralSeed: hex(fill(0x33, 32)),
        ephemeralPublicKey: hex(ini.e.publicKey)
      },
      responder: {
        staticSeed: hex(fill(0x22, 32)),
        staticPublicKey: hex(res.s.publicKey),
        ephemeralSeed: hex(fill(0x44, 32)),
        ephemeralPublicKey: hex(res.e.publicKey)
      },
      message1: hex(m1),
      message2: hex(m2),
      message3: hex(m3),
      handshakeHash: hex(ra.hash),
      initiatorResult: { tx: hex(ra.tx), rx: hex(ra.rx), remotePublicKey: hex(ra.remotePublicKey) },
      responderResult: { tx: hex(rb2.tx), rx: hex(rb2.rx), remotePublicKey: hex(rb2.remotePublicKey) },
      streamId: {
        initiator: hex(NoiseSecretStream.id(ra.hash, true)),
        responder: hex(NoiseSecretStream.id(ra.hash, false))
      }
    }
  }
}

// init_pull(header) builds the state init_push builds when it draws `header`.
function pushStateWithHeader (key, header) {
  const state = b4a.alloc(STATEBYTES)
  sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
  return state
}

function checkInitPullEqualsInitPush () {
  const key = fill(0x55, 32)
  const push = new Push(key, b4a.alloc(STATEBYTES), b4a.alloc(HEADERBYTES))
  const state = pushStateWithHeader(key, push.header)
  if (!b4a.equals(state, push.state)) throw new Error('init_pull state differs from init_push state')
}

function pushWithState (state, m) {
  const c = b4a.alloc(m.byteLength + ABYTES)
  sodium.crypto_secretstream_xchacha20poly1305_push(
    state, c, m, null, sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
  return c
}

function checkDecrypts (key, header, ciphertexts, plaintexts) {
  const pull = new Pull(key)
  pull.init(header)
  ciphertexts.forEach((c, i) => {
    if (!b4a.equals(pull.next(c), plaintexts[i])) throw new Error('self-check failed')
  })
}

function secretstreamSet (sender, key, peerKey, header, plaintexts, handshakeHash) {
  const state = pushStateWithHeader(key, header)
  const ciphertexts = plaintexts.map((m) => pushWithState(state, m))
  checkDecrypts(peerKey, header, ciphertexts, plaintexts)
  const id = NoiseSecretStream.id(handshakeHash, sender === 'initiator')
  return {
    sender,
    messages: plaintexts.length,
    header: hex(header),
    headerPayload: hex(b4a.concat([id, header])),
    ciphertexts: ciphertexts.map(hex)
  }
}

function secretstreamVectors (hs) {
  checkInitPullEqualsInitPush()
  const plaintexts = PLAINTEXTS.map((p) => p.bytes)
  const hash = hs.initiatorResult.hash

  const header1 = b4a.alloc(HEADERBYTES)
  const header2 = b4a.alloc(HEADERBYTES)
  for (let i = 0; i < HEADERBYTES; i++) {
    header1[i] = i
    header2[i] = 0xf0 - i
  }

  return {
    plaintexts: PLAINTEXTS.map((p) => p.spec),
    // every plaintext, encrypted with the initiator's tx key
    initiatorToResponder: secretstreamSet('initiator', hs.initiatorResult.tx,
      hs.responderResult.rx, header1, plaintexts, hash),
    // the first three (the file stays small), with the responder's tx key
    responderToInitiator: secretstreamSet('responder', hs.responderResult.tx,
      hs.initiatorResult.rx, header2, plaintexts.slice(0, 3), hash)
  }
}

function vectors () {
  const hs = handshakeVectors()
  const out = {
    description: 'Noise XX handshake and secretstream transport of @hyperswarm/secret-stream, ' +
      'generated by tests/interop/wire-vectors.js',
    versions: {
      node: process.version,
      '@hyperswarm/secret-stream': version('@hyperswarm/secret-stream'),
      'noise-handshake': version('noise-handshake'),
      'noise-curve-ed': version('noise-curve-ed'),
      'sodium-secretstream': version('sodium-secretstream'),
      'sodium-universal': version('sodium-universal')
    },
    handshake: hs.out,
    secretstream: secretstreamVectors(hs)
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n')
}

function readStdin () {
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', (c) => chunks.push(c))
    process.stdin.on('end', () => resolve(b4a.concat(chunks)))
    process.stdin.on('error', reject)
  })
}

async function decrypt () {
  const input = JSON.parse(b4a.toString(await readStdin()))
  const payload = unhex(input.headerPayload)
  if (payload.byteLength !== 32 + HEADERBYTES) throw new Error('header payload must be 56 bytes')
  const expectedId = NoiseSecretStream.id(unhex(input.handshakeHash), input.senderIsInitiator)
  if (!b4a.equals(payload.subarray(0, 32), expectedId)) throw new Error('wrong stream id')
  const pull = new Pull(unhex(input.key))
  pull.init(payload.subarray(32))
  const plaintexts = input.ciphertexts.map((c) => hex(pull.next(unhex(c))))
  process.stdout.write(JSON.stringify({ plaintexts }) + '\n')
}

function peer (role) {
  if (role !== 'initiator' && role !== 'responder') throw new Error('ROLE: initiator | responder')
  const { Duplex } = require('streamx')
  const isInitiator = role === 'initiator'

  const raw = new Duplex({
    write (data, cb) {
      process.stdout.write(data, cb)
    },
    final (cb) {
      process.stdout.end(cb)
    }
  })
  process.stdin.on('data', (d) => raw.push(d))
  process.stdin.on('end', () => raw.push(null))

  const keyPair = Handshake.keyPair(fill(isInitiator ? 0x11 : 0x22, 32))
  const stream = new NoiseSecretStream(isInitiator, raw, { keyPair })

  stream.on('error', (err) => {
    process.stderr.write('wire-vectors peer: ' + err.message + '\n')
    process.exit(1)
  })
  stream.on('data', (data) => stream.write(data))
  stream.on('end', () => stream.end())
  stream.on('close', () => process.exit(0))

  stream.opened.then((ok) => {
    if (!ok) return
    stream.write(b4a.from(JSON.stringify({
      handshakeHash: hex(stream.handshakeHash),
      publicKey: hex(stream.publicKey),
      remotePublicKey: hex(stream.remotePublicKey)
    })))
  })
}

const mode = process.argv[2]
if (mode === undefined) {
  vectors()
} else if (mode === '--decrypt') {
  decrypt().catch((err) => {
    process.stderr.write('wire-vectors --decrypt: ' + err.message + '\n')
    process.exit(1)
  })
} else if (mode === '--peer') {
  peer(process.argv[3])
} else {
  process.stderr.write('usage: wire-vectors.js [--decrypt | --peer initiator|responder]\n')
  process.exit(2)
}

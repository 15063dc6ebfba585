//! The wire crypto (Noise XX handshake and secretstream transport) against the JavaScript
//! reference `@hyperswarm/secret-stream`:
//! - golden vectors: `tests/vectors/noise-secretstream.json`, the output of
//!   `node tests/interop/wire-vectors.js` (fixed static and ephemeral keys, fixed headers); libdat
//!   must produce the same bytes and decrypt every reference ciphertext;
//! - live: the same script decrypts what libdat encrypts (`--decrypt`), and runs a real
//!   `NoiseSecretStream` peer over stdio against libdat in both roles (`--peer`);
//! - libdat against itself, and every kind of bad input.
//!
//! The live tests need Node and `npm ci` in `tests/interop` (done by `make test`). Set
//! `LIBDAT_SKIP_INTEROP=1` to skip them on a machine without Node; without it a missing Node or
//! `node_modules` fails them.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dat_core::wire::noise::{self, Handshake, HandshakeResult};
use dat_core::wire::secret_stream::{self, SecretStream, stream_id};
use dat_core::{Error, KeyPair};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// helpers

fn vectors() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/noise-secretstream.json");
    serde_json::from_slice(&std::fs::read(path).expect("golden vectors")).expect("json")
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn h32(v: &Value) -> [u8; 32] {
    h(v).try_into().expect("32 bytes")
}

fn h64(v: &Value) -> [u8; 64] {
    h(v).try_into().expect("64 bytes")
}

fn kp(byte: u8) -> KeyPair {
    KeyPair::from_seed(&[byte; 32])
}

/// The plaintexts of the vectors, rebuilt from their description.
fn plaintexts(v: &Value) -> Vec<Vec<u8>> {
    v["secretstream"]["plaintexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            if let Some(x) = p.get("hex") {
                h(x)
            } else if let Some(b) = p.get("fill") {
                vec![b.as_u64().unwrap() as u8; p["length"].as_u64().unwrap() as usize]
            } else {
                assert_eq!(p["pattern"], "byte i = (i * 31 + 7) mod 256");
                pattern(p["length"].as_u64().unwrap() as usize)
            }
        })
        .collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

fn is_handshake_err<T: std::fmt::Debug>(r: dat_core::Result<T>) -> bool {
    matches!(r, Err(Error::Handshake(_)))
}

/// Runs a full handshake between two state machines and returns both results.
fn handshake(a: &mut Handshake, b: &mut Handshake) -> (HandshakeResult, HandshakeResult) {
    let m1 = a.start().unwrap().unwrap();
    assert!(b.start().unwrap().is_none());
    let m2 = b.recv(&m1).unwrap().unwrap();
    let m3 = a.recv(&m2).unwrap().unwrap();
    assert!(b.recv(&m3).unwrap().is_none());
    assert_eq!(
        (m1.len(), m2.len(), m3.len()),
        (
            noise::MESSAGE1_LEN,
            noise::MESSAGE2_LEN,
            noise::MESSAGE3_LEN
        )
    );
    assert_eq!((m1.len(), m2.len(), m3.len()), (32, 96, 64));
    assert!(a.is_done() && b.is_done());
    (a.result().unwrap().clone(), b.result().unwrap().clone())
}

fn fixed_handshake() -> (HandshakeResult, HandshakeResult) {
    let mut a = Handshake::with_ephemeral(true, &kp(0x11), kp(0x33));
    let mut b = Handshake::with_ephemeral(false, &kp(0x22), kp(0x44));
    handshake(&mut a, &mut b)
}

fn random_pair() -> (HandshakeResult, HandshakeResult) {
    let mut a = Handshake::new(true, &KeyPair::generate());
    let mut b = Handshake::new(false, &KeyPair::generate());
    handshake(&mut a, &mut b)
}

/// Two connected secret streams (headers exchanged).
fn stream_pair() -> (SecretStream, SecretStream) {
    let (ra, rb) = random_pair();
    let (mut sa, ha) = SecretStream::new(&ra);
    let (mut sb, hb) = SecretStream::new(&rb);
    sa.recv_header(&hb).unwrap();
    sb.recv_header(&ha).unwrap();
    (sa, sb)
}

fn interop_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    if std::env::var_os("LIBDAT_SKIP_INTEROP").is_some() {
        eprintln!("LIBDAT_SKIP_INTEROP is set: skipping the live interop test");
        return None;
    }
    assert!(
        dir.join("node_modules/@hyperswarm/secret-stream").is_dir(),
        "tests/interop/node_modules is missing: run `npm ci` in tests/interop (make test does), \
         or set LIBDAT_SKIP_INTEROP=1"
    );
    Some(dir)
}

// ---------------------------------------------------------------------------------------------
// golden vectors

#[test]
fn handshake_reproduces_reference_bytes() {
    let v = vectors();
    let hs = &v["handshake"];
    assert_eq!(
        hs["protocol"].as_str().unwrap().as_bytes(),
        noise::PROTOCOL_NAME
    );
    let (s_i, s_r, e_i, e_r) = (kp(0x11), kp(0x22), kp(0x33), kp(0x44));
    assert_eq!(s_i.seed().to_vec(), h(&hs["initiator"]["staticSeed"]));
    assert_eq!(s_r.seed().to_vec(), h(&hs["responder"]["staticSeed"]));
    assert_eq!(e_i.seed().to_vec(), h(&hs["initiator"]["ephemeralSeed"]));
    assert_eq!(e_r.seed().to_vec(), h(&hs["responder"]["ephemeralSeed"]));
    assert_eq!(s_i.public_key(), h32(&hs["initiator"]["staticPublicKey"]));
    assert_eq!(s_r.public_key(), h32(&hs["responder"]["staticPublicKey"]));
    assert_eq!(
        e_i.public_key(),
        h32(&hs["initiator"]["ephemeralPublicKey"])
    );
    assert_eq!(
        e_r.public_key(),
        h32(&hs["responder"]["ephemeralPublicKey"])
    );

    // Each side is fed the reference's messages, so each one is checked on its own.
    let mut a = Handshake::with_ephemeral(true, &s_i, e_i);
    let mut b = Handshake::with_ephemeral(false, &s_r, e_r);
    let m1 = a.start().unwrap().unwrap();
    assert_eq!(m1, h(&hs["message1"]), "message 1");
    let m2 = b.recv(&h(&hs["message1"])).unwrap().unwrap();
    assert_eq!(m2, h(&hs["message2"]), "message 2");
    let m3 = a.recv(&h(&hs["message2"])).unwrap().unwrap();
    assert_eq!(m3, h(&hs["message3"]), "message 3");
    assert!(b.recv(&h(&hs["message3"])).unwrap().is_none());

    let (ra, rb) = (a.result().unwrap(), b.result().unwrap());
    let hash = h64(&hs["handshakeHash"]);
    assert!(ra.is_initiator && !rb.is_initiator);
    assert_eq!(ra.handshake_hash, hash);
    assert_eq!(rb.handshake_hash, hash);
    assert_eq!(ra.tx, h32(&hs["initiatorResult"]["tx"]));
    assert_eq!(ra.rx, h32(&hs["initiatorResult"]["rx"]));
    assert_eq!(
        ra.remote_public_key,
        h32(&hs["initiatorResult"]["remotePublicKey"])
    );
    assert_eq!(rb.tx, h32(&hs["responderResult"]["tx"]));
    assert_eq!(rb.rx, h32(&hs["responderResult"]["rx"]));
    assert_eq!(
        rb.remote_public_key,
        h32(&hs["responderResult"]["remotePublicKey"])
    );
    assert_eq!(a.remote_public_key(), Some(s_r.public_key()));
    assert_eq!(b.remote_public_key(), Some(s_i.public_key()));

    assert_eq!(stream_id(&hash, true), h32(&hs["streamId"]["initiator"]));
    assert_eq!(stream_id(&hash, false), h32(&hs["streamId"]["responder"]));
}

#[test]
fn secretstream_reproduces_and_decrypts_reference_bytes() {
    let v = vectors();
    let plain = plaintexts(&v);
    assert_eq!(
        plain.iter().map(Vec::len).collect::<Vec<_>>(),
        [0, 5, 100, 70000]
    );
    let (ri, rr) = fixed_handshake();
    for (set, sender, receiver) in [
        ("initiatorToResponder", &ri, &rr),
        ("responderToInitiator", &rr, &ri),
    ] {
        let s = &v["secretstream"][set];
        let n = s["messages"].as_u64().unwrap() as usize;
        let cts: Vec<Vec<u8>> = s["ciphertexts"].as_array().unwrap().iter().map(h).collect();
        assert_eq!(cts.len(), n);
        let header: [u8; 24] = h(&s["header"]).try_into().unwrap();

        // libdat encrypts to the same bytes from the same key and header
        let (mut tx, payload) = SecretStream::with_header(sender, header);
        assert_eq!(payload, h(&s["headerPayload"]), "{set}: header payload");
        assert_eq!(payload.len(), secret_stream::HEADER_PAYLOAD_BYTES);
        for (i, (p, ct)) in plain.iter().zip(&cts).enumerate() {
            let mine = tx.encrypt(p).unwrap();
            assert_eq!(mine.len(), p.len() + secret_stream::ABYTES);
            assert!(
                mine == *ct,
                "{set}: ciphertext {i} differs from the reference"
            );
        }

        // and decrypts every reference ciphertext
        let (mut rx, _) = SecretStream::new(receiver);
        rx.recv_header(&h(&s["headerPayload"])).unwrap();
        for (i, (p, ct)) in plain.iter().zip(&cts).enumerate() {
            assert!(rx.decrypt(ct).unwrap() == *p, "{set}: plaintext {i}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// live: the reference checks libdat's output

#[test]
fn reference_decrypts_libdat_ciphertexts() {
    let Some(dir) = interop_dir() else {
        return;
    };
    let (ri, rr) = fixed_handshake();
    let mut messages = vec![
        Vec::new(),
        b"hello".to_vec(),
        vec![0xab; 100],
        pattern(70000),
    ];
    messages.extend((0..50).map(|i| pattern(i * 13)));
    for (sender, receiver) in [(&ri, &rr), (&rr, &ri)] {
        // a random header: the production path
        let (mut s, payload) = SecretStream::new(sender);
        let cts: Vec<String> = messages
            .iter()
            .map(|m| hex::encode(s.encrypt(m).unwrap()))
            .collect();
        let input = serde_json::json!({
            "handshakeHash": hex::encode(sender.handshake_hash),
            "senderIsInitiator": sender.is_initiator,
            "key": hex::encode(receiver.rx),
            "headerPayload": hex::encode(&payload),
            "ciphertexts": cts,
        });
        let mut child = Command::new("node")
            .arg(dir.join("wire-vectors.js"))
            .arg("--decrypt")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed to run the interop test");
        let mut stdin = child.stdin.take().unwrap();
        let body = serde_json::to_vec(&input).unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&body));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "wire-vectors.js --decrypt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let got: Vec<Vec<u8>> = got["plaintexts"]
            .as_array()
            .unwrap()
            .iter()
            .map(h)
            .collect();
        assert!(got == messages, "the reference decrypted something else");
    }
}

/// A `NoiseSecretStream` of the reference, over the stdio of a node process.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: mpsc::Receiver<Vec<u8>>,
}

impl Peer {
    fn spawn(dir: &std::path::Path, role: &str) -> Self {
        let mut child = Command::new("node")
            .arg(dir.join("wire-vectors.js"))
            .arg("--peer")
            .arg(role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node must be installed to run the interop test");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut len = [0u8; 3];
                if stdout.read_exact(&mut len).is_err() {
                    return;
                }
                let len = len[0] as usize | (len[1] as usize) << 8 | (len[2] as usize) << 16;
                let mut frame = vec![0u8; len];
                if stdout.read_exact(&mut frame).is_err() || tx.send(frame).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            frames,
        }
    }

    fn send(&mut self, payload: &[u8]) {
        let len = payload.len() as u32;
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&len.to_le_bytes()[..3]).unwrap();
        stdin.write_all(payload).unwrap();
        stdin.flush().unwrap();
    }

    fn recv(&mut self) -> Vec<u8> {
        self.frames
            .recv_timeout(Duration::from_secs(60))
            .expect("the reference peer sent nothing (see its stderr above)")
    }

    fn close(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the reference peer failed");
    }
}

fn live_session(libdat_is_initiator: bool) {
    let Some(dir) = interop_dir() else {
        return;
    };
    let (js_role, my_seed, js_seed) = if libdat_is_initiator {
        ("responder", 0x11, 0x22)
    } else {
        ("initiator", 0x22, 0x11)
    };
    let mut peer = Peer::spawn(&dir, js_role);
    let me = kp(my_seed);
    // random ephemeral keys on both sides
    let mut hs = Handshake::new(libdat_is_initiator, &me);
    if let Some(m1) = hs.start().unwrap() {
        peer.send(&m1);
    }
    while !hs.is_done() {
        let msg = peer.recv();
        if let Some(reply) = hs.recv(&msg).unwrap() {
            peer.send(&reply);
        }
    }
    let result = hs.result().unwrap().clone();
    assert_eq!(result.remote_public_key, kp(js_seed).public_key());

    let (mut stream, header) = SecretStream::new(&result);
    peer.send(&header);
    stream.recv_header(&peer.recv()).unwrap();

    // the reference reports what it got out of the handshake
    let report: Value = serde_json::from_slice(&stream.decrypt(&peer.recv()).unwrap()).unwrap();
    assert_eq!(h64(&report["handshakeHash"]), result.handshake_hash);
    assert_eq!(h32(&report["publicKey"]), kp(js_seed).public_key());
    assert_eq!(h32(&report["remotePublicKey"]), me.public_key());

    // then echoes every message
    let mut messages = vec![
        Vec::new(),
        b"hello".to_vec(),
        vec![0xab; 100],
        pattern(70000),
    ];
    messages.extend((0..200).map(|i| pattern((i * 977) % 5000)));
    messages.push(pattern(1 << 20));
    for m in &messages {
        peer.send(&stream.encrypt(m).unwrap());
    }
    for (i, m) in messages.iter().enumerate() {
        let echo = stream.decrypt(&peer.recv()).unwrap();
        assert!(echo == *m, "echo {i} differs");
    }
    peer.close();
}

#[test]
fn live_session_libdat_initiator_reference_responder() {
    live_session(true);
}

#[test]
fn live_session_libdat_responder_reference_initiator() {
    live_session(false);
}

// ---------------------------------------------------------------------------------------------
// libdat against itself

#[test]
fn rust_round_trip() {
    for _ in 0..5 {
        let sa_key = KeyPair::generate();
        let sb_key = KeyPair::generate();
        let mut a = Handshake::new(true, &sa_key);
        let mut b = Handshake::new(false, &sb_key);
        let (ra, rb) = handshake(&mut a, &mut b);
        assert_eq!(ra.tx, rb.rx);
        assert_eq!(ra.rx, rb.tx);
        assert_ne!(ra.tx, ra.rx);
        assert_eq!(ra.handshake_hash, rb.handshake_hash);
        assert_eq!(ra.remote_public_key, sb_key.public_key());
        assert_eq!(rb.remote_public_key, sa_key.public_key());
        // keys stay out of Debug output
        let dbg = format!("{ra:?}");
        assert!(!dbg.contains(&hex::encode(ra.tx)) && !dbg.contains(&hex::encode(ra.rx)));

        let (mut sa, ha) = SecretStream::new(&ra);
        let (mut sb, hb) = SecretStream::new(&rb);
        assert_ne!(ha[32..], hb[32..], "random headers");
        // sending works before the peer's header arrived
        let early = sa.encrypt(b"early").unwrap();
        assert!(!sb.header_received());
        sb.recv_header(&ha).unwrap();
        sa.recv_header(&hb).unwrap();
        assert_eq!(sb.decrypt(&early).unwrap(), b"early");
        for i in 0..300usize {
            let m = pattern(i * 7 % 3000);
            assert_eq!(sb.decrypt(&sa.encrypt(&m).unwrap()).unwrap(), m);
            assert_eq!(sa.decrypt(&sb.encrypt(&m).unwrap()).unwrap(), m);
        }
    }
}

#[test]
fn fresh_ephemerals_give_fresh_keys() {
    let (s1, s2) = (kp(1), kp(2));
    let mut a = Handshake::new(true, &s1);
    let mut b = Handshake::new(false, &s2);
    let (r1, _) = handshake(&mut a, &mut b);
    let mut a = Handshake::new(true, &s1);
    let mut b = Handshake::new(false, &s2);
    let (r2, _) = handshake(&mut a, &mut b);
    assert_ne!(r1.handshake_hash, r2.handshake_hash);
    assert_ne!(r1.tx, r2.tx);
}

#[test]
fn keep_alive_is_an_empty_message() {
    let (mut a, mut b) = stream_pair();
    let ct = a.encrypt(&[]).unwrap();
    assert_eq!(ct.len(), secret_stream::ABYTES);
    assert_eq!(b.decrypt(&ct).unwrap(), Vec::<u8>::new());
    assert_eq!(b.decrypt(&a.encrypt(b"x").unwrap()).unwrap(), b"x");
}

#[test]
fn dh_is_symmetric_and_rejects_bad_points() {
    let (a, b) = (kp(5), kp(6));
    assert_eq!(
        noise::dh(&a, &b.public_key()).unwrap(),
        noise::dh(&b, &a.public_key()).unwrap()
    );
    let reasons: Vec<String> = bad_points()
        .iter()
        .map(|bad| match noise::dh(&a, bad) {
            Err(Error::Handshake(m)) => m,
            other => panic!("{}: {other:?}", hex::encode(bad)),
        })
        .collect();
    let expected = [
        "small order",
        "small order",
        "small order",
        "small order",
        "small order",
        "non-canonical",
        "non-canonical",
        "not a curve point",
        "prime-order subgroup",
    ];
    for (got, want) in reasons.iter().zip(expected) {
        assert!(got.contains(want), "{got:?} should mention {want:?}");
    }
    assert_eq!(reasons.len(), expected.len());
}

/// Encodings libsodium's `crypto_scalarmult_ed25519` refuses.
fn bad_points() -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    out.push(identity); // order 1
    out.push([0u8; 32]); // y = 0: order 4
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    out.push(minus_one); // y = -1: order 2
    out.push(
        hex::decode("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
            .unwrap()
            .try_into()
            .unwrap(),
    ); // order 8
    out.push(
        hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
            .unwrap()
            .try_into()
            .unwrap(),
    ); // order 8
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    out.push(p); // y = p: non-canonical
    let mut p1 = p;
    p1[0] = 0xee;
    out.push(p1); // y = p + 1: non-canonical identity
    let mut not_on_curve = [0u8; 32];
    not_on_curve[0] = 2;
    out.push(not_on_curve); // y = 2 is not on the curve
    // a valid key plus a small-order component: off the prime-order subgroup
    let torsion = curve25519_point_plus_torsion();
    out.push(torsion);
    out
}

/// The public key of seed 0x05 plus the order-2 point (x, y) -> (-x, -y): a point of order 2L.
fn curve25519_point_plus_torsion() -> [u8; 32] {
    // Negating y of a point and flipping x is adding (0, -1). In the encoding: y' = p - y, sign
    // bit flipped (x' = -x). Compute p - y as a 255-bit little-endian subtraction.
    let pk = kp(5).public_key();
    let mut y = pk;
    let sign = y[31] & 0x80;
    y[31] &= 0x7f;
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in 0..32 {
        let d = p[i] as i16 - y[i] as i16 - borrow;
        out[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out[31] |= sign ^ 0x80;
    out
}

// ---------------------------------------------------------------------------------------------
// bad input: handshake

/// Golden-vector messages for the fixed keys.
fn golden_messages() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let v = vectors();
    let hs = &v["handshake"];
    (h(&hs["message1"]), h(&hs["message2"]), h(&hs["message3"]))
}

#[test]
fn tampered_message_2_is_rejected() {
    let (_, m2, _) = golden_messages();
    for i in 0..m2.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = m2.clone();
            bad[i] ^= bit;
            let mut a = Handshake::with_ephemeral(true, &kp(0x11), kp(0x33));
            a.start().unwrap();
            assert!(is_handshake_err(a.recv(&bad)), "byte {i} bit {bit:#x}");
            assert!(a.is_failed() && !a.is_done() && a.result().is_none());
            assert!(a.remote_public_key().is_none());
            // a failed handshake stays failed, even for the genuine message
            assert!(is_handshake_err(a.recv(&m2)));
        }
    }
}

#[test]
fn tampered_message_3_is_rejected() {
    let (m1, _, m3) = golden_messages();
    for i in 0..m3.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = m3.clone();
            bad[i] ^= bit;
            let mut b = Handshake::with_ephemeral(false, &kp(0x22), kp(0x44));
            b.recv(&m1).unwrap();
            assert!(is_handshake_err(b.recv(&bad)), "byte {i} bit {bit:#x}");
            assert!(b.is_failed() && b.result().is_none());
            assert!(is_handshake_err(b.recv(&m3)));
        }
    }
}

#[test]
fn wrong_lengths_are_rejected() {
    let (m1, m2, m3) = golden_messages();
    for len in [0, 31, 33, 64, 96] {
        let mut b = Handshake::new(false, &kp(0x22));
        let msg = if len <= 32 {
            m1[..len].to_vec()
        } else {
            vec![1; len]
        };
        assert!(is_handshake_err(b.recv(&msg)), "message 1 of {len} bytes");
    }
    for len in [0, 32, 64, 95, 97, 200] {
        let mut a = Handshake::with_ephemeral(true, &kp(0x11), kp(0x33));
        a.start().unwrap();
        let mut msg = m2.clone();
        msg.resize(len, 0);
        assert!(is_handshake_err(a.recv(&msg)), "message 2 of {len} bytes");
    }
    for len in [0, 32, 63, 65, 96] {
        let mut b = Handshake::with_ephemeral(false, &kp(0x22), kp(0x44));
        b.recv(&m1).unwrap();
        let mut msg = m3.clone();
        msg.resize(len, 0);
        assert!(is_handshake_err(b.recv(&msg)), "message 3 of {len} bytes");
    }
}

#[test]
fn invalid_ephemeral_and_static_keys_are_rejected() {
    for bad in bad_points() {
        // responder gets a bad `e` in message 1
        let mut b = Handshake::new(false, &kp(0x22));
        assert!(is_handshake_err(b.recv(&bad)), "{}", hex::encode(bad));
        // initiator gets a bad `e` in message 2 (the rest no longer matters)
        let mut a = Handshake::new(true, &kp(0x11));
        a.start().unwrap();
        let mut m2 = bad.to_vec();
        m2.resize(96, 0);
        assert!(is_handshake_err(a.recv(&m2)), "{}", hex::encode(bad));
    }
}

#[test]
fn messages_out_of_order_are_rejected() {
    let (m1, m2, m3) = golden_messages();
    let ini = || Handshake::with_ephemeral(true, &kp(0x11), kp(0x33));
    let res = || Handshake::with_ephemeral(false, &kp(0x22), kp(0x44));

    // initiator receives before it started
    let mut a = ini();
    assert!(is_handshake_err(a.recv(&m2)));
    // initiator starts twice
    let mut a = ini();
    a.start().unwrap();
    assert!(is_handshake_err(a.start()));
    // initiator gets message 1 (two initiators) or message 3
    let mut a = ini();
    a.start().unwrap();
    assert!(is_handshake_err(a.recv(&m1)));
    let mut a = ini();
    a.start().unwrap();
    assert!(is_handshake_err(a.recv(&m3)));
    // responder gets message 2 or message 3 first
    assert!(is_handshake_err(res().recv(&m2)));
    assert!(is_handshake_err(res().recv(&m3)));
    // responder gets message 1 twice
    let mut b = res();
    b.recv(&m1).unwrap();
    assert!(is_handshake_err(b.recv(&m1)));
    // two responders never start; two initiators both send message 1 and fail on the other's
    let mut x = ini();
    let mut y = ini();
    let (x1, y1) = (x.start().unwrap().unwrap(), y.start().unwrap().unwrap());
    assert!(is_handshake_err(x.recv(&y1)));
    assert!(is_handshake_err(y.recv(&x1)));
    // anything after completion is refused, and the result stays
    let mut a = ini();
    let mut b = res();
    handshake(&mut a, &mut b);
    assert!(is_handshake_err(a.recv(&m2)));
    assert!(is_handshake_err(b.recv(&m3)));
    assert!(is_handshake_err(a.start()));
    assert!(a.is_done() && b.is_done() && a.result().is_some());
    // a responder's start() is a no-op
    let mut b = res();
    assert!(b.start().unwrap().is_none());
    assert!(b.recv(&m1).unwrap().is_some());
}

#[test]
fn message_from_another_handshake_is_rejected() {
    // message 3 made for another responder ephemeral
    let (m1, _, _) = golden_messages();
    let mut a = Handshake::new(true, &kp(0x11));
    let mut b = Handshake::with_ephemeral(false, &kp(0x22), kp(0x44));
    let m1_other = a.start().unwrap().unwrap();
    let m2_other = Handshake::new(false, &kp(0x22))
        .recv(&m1_other)
        .unwrap()
        .unwrap();
    let m3_other = a.recv(&m2_other).unwrap().unwrap();
    b.recv(&m1).unwrap();
    assert!(is_handshake_err(b.recv(&m3_other)));
}

// ---------------------------------------------------------------------------------------------
// bad input: secret stream

#[test]
fn tampered_ciphertext_is_rejected() {
    let msg = pattern(40);
    let probe = {
        let (mut a, _) = stream_pair();
        a.encrypt(&msg).unwrap().len()
    };
    for i in 0..probe {
        let (mut a, mut b) = stream_pair();
        let mut ct = a.encrypt(&msg).unwrap();
        ct[i] ^= 0x04;
        assert!(is_handshake_err(b.decrypt(&ct)), "byte {i}");
        assert!(b.is_failed());
        // poisoned: the next genuine message is refused too
        assert!(is_handshake_err(b.decrypt(&a.encrypt(&msg).unwrap())));
    }
}

#[test]
fn replayed_ciphertext_is_rejected() {
    let (mut a, mut b) = stream_pair();
    let ct = a.encrypt(b"once").unwrap();
    assert_eq!(b.decrypt(&ct).unwrap(), b"once");
    assert!(is_handshake_err(b.decrypt(&ct)));
}

#[test]
fn reordered_ciphertexts_are_rejected() {
    let (mut a, mut b) = stream_pair();
    let c1 = a.encrypt(b"one").unwrap();
    let c2 = a.encrypt(b"two").unwrap();
    assert!(is_handshake_err(b.decrypt(&c2)));
    let (mut a, mut b) = stream_pair();
    let _skipped = a.encrypt(b"one").unwrap();
    let c2 = a.encrypt(b"two").unwrap();
    assert!(is_handshake_err(b.decrypt(&c2)));
    drop(c1);
}

#[test]
fn truncated_and_extended_ciphertexts_are_rejected() {
    for cut in [1usize, 16, 17, 20, 23] {
        let (mut a, mut b) = stream_pair();
        let ct = a.encrypt(b"hello!").unwrap();
        assert_eq!(ct.len(), 23);
        assert!(
            is_handshake_err(b.decrypt(&ct[..ct.len() - cut])),
            "cut {cut}"
        );
    }
    let (mut a, mut b) = stream_pair();
    let mut ct = a.encrypt(b"hello!").unwrap();
    ct.push(0);
    assert!(is_handshake_err(b.decrypt(&ct)));
    let (_, mut b) = stream_pair();
    assert!(is_handshake_err(b.decrypt(&[])));
}

#[test]
fn ciphertext_for_the_other_direction_or_connection_is_rejected() {
    let (mut a, mut b) = stream_pair();
    // a's own message fed back to a
    let ct = a.encrypt(b"mine").unwrap();
    assert!(is_handshake_err(a.decrypt(&ct)));
    // a message from another connection
    let (mut c, _) = stream_pair();
    assert!(is_handshake_err(b.decrypt(&c.encrypt(b"other").unwrap())));
}

#[test]
fn wrong_stream_id_is_rejected() {
    let (ra, rb) = random_pair();
    let (_, ha) = SecretStream::new(&ra);
    let (mut sb, hb) = SecretStream::new(&rb);
    // our own header: the id of the wrong role
    assert!(is_handshake_err(sb.recv_header(&hb)));
    assert!(sb.is_failed());
    // a flipped id bit
    let (mut sb, _) = SecretStream::new(&rb);
    let mut bad = ha.clone();
    bad[3] ^= 1;
    assert!(is_handshake_err(sb.recv_header(&bad)));
    // the id of another handshake
    let (rc, _) = random_pair();
    let (_, hc) = SecretStream::new(&rc);
    let (mut sb, _) = SecretStream::new(&rb);
    assert!(is_handshake_err(sb.recv_header(&hc)));
    // wrong lengths
    for len in [0, 32, 55, 57] {
        let (mut sb, _) = SecretStream::new(&rb);
        let mut p = ha.clone();
        p.resize(len, 0);
        assert!(is_handshake_err(sb.recv_header(&p)), "{len} bytes");
    }
    // the genuine one works, once
    let (mut sb, _) = SecretStream::new(&rb);
    sb.recv_header(&ha).unwrap();
    assert!(sb.header_received());
    assert!(is_handshake_err(sb.recv_header(&ha)));
}

#[test]
fn tampered_header_nonce_breaks_decryption() {
    let (ra, rb) = random_pair();
    let (mut sa, mut ha) = SecretStream::new(&ra);
    let (mut sb, _) = SecretStream::new(&rb);
    ha[40] ^= 1;
    sb.recv_header(&ha).unwrap(); // the header itself is not authenticated
    assert!(is_handshake_err(sb.decrypt(&sa.encrypt(b"x").unwrap())));
}

#[test]
fn decrypt_before_header_is_rejected() {
    let (ra, rb) = random_pair();
    let (mut sa, _) = SecretStream::new(&ra);
    let (mut sb, _) = SecretStream::new(&rb);
    let ct = sa.encrypt(b"too early").unwrap();
    assert!(is_handshake_err(sb.decrypt(&ct)));
    assert!(sb.is_failed());
}

#[test]
fn oversized_plaintext_is_refused_without_poisoning() {
    let (mut a, mut b) = stream_pair();
    let big = vec![0u8; secret_stream::MAX_PLAINTEXT_BYTES + 1];
    assert!(matches!(
        a.encrypt(&big),
        Err(Error::FrameTooLarge { size, max }) if size == (1 << 24) && max == (1 << 24) - 1
    ));
    assert!(!a.is_failed());
    assert_eq!(
        b.decrypt(&a.encrypt(b"still fine").unwrap()).unwrap(),
        b"still fine"
    );
}

#[test]
fn golden_ciphertexts_do_not_decrypt_with_the_wrong_key() {
    let v = vectors();
    let s = &v["secretstream"]["initiatorToResponder"];
    let (ri, _) = fixed_handshake();
    // the initiator's rx key is the responder's tx key: wrong for this direction, and its
    // stream id check fails first
    let (mut wrong, _) = SecretStream::new(&ri);
    assert!(is_handshake_err(wrong.recv_header(&h(&s["headerPayload"]))));
    // with a matching id but the wrong key, the MAC fails
    let mut swapped = ri.clone();
    swapped.is_initiator = false;
    let (mut wrong, _) = SecretStream::new(&swapped);
    wrong.recv_header(&h(&s["headerPayload"])).unwrap();
    assert!(is_handshake_err(wrong.decrypt(&h(&s["ciphertexts"][1]))));
}

/// libdat's secret stream against the `crypto_secretstream` crate (libsodium's construction):
/// the same bytes for every length around the 16- and 64-byte boundaries, and the crate's
/// messages with each of the four tags (a rekey tag changes the key) decrypted in order.
#[test]
fn secretstream_matches_the_crypto_secretstream_crate() {
    use crypto_secretstream::{Header, Key, PullStream, PushStream, Tag};
    let (ri, rr) = fixed_handshake();
    let header = [0x5au8; 24];
    struct Fixed([u8; 24]);
    impl rand::RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            d.copy_from_slice(&self.0[..d.len()]);
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }
    impl rand::CryptoRng for Fixed {}

    // libdat → crate
    let (mut ours, payload) = SecretStream::with_header(&ri, header);
    let mut theirs = PullStream::init(Header::from(header), &Key::from(rr.rx));
    let lengths: Vec<usize> = (0..200).chain([1023, 1024, 1025, 65536, 70001]).collect();
    for &n in &lengths {
        let m = pattern(n);
        let mut ct = ours.encrypt(&m).unwrap();
        assert_eq!(
            theirs.pull(&mut ct, &[]).unwrap(),
            Tag::Message,
            "length {n}"
        );
        assert!(ct == m, "length {n}: the crate decrypts libdat's message");
    }

    // crate → libdat, with every tag (FINAL last: libsodium rekeys after it, as libdat does,
    // and the crate does not, so nothing may follow it here)
    let (_, mut push) = PushStream::init(Fixed(header), &Key::from(ri.tx));
    let (mut rx, _) = SecretStream::new(&rr);
    rx.recv_header(&payload).unwrap();
    let tags = [Tag::Message, Tag::Push, Tag::Rekey];
    for (i, &n) in lengths.iter().enumerate() {
        let m = pattern(n);
        let mut ct = m.clone();
        let tag = if i + 1 == lengths.len() {
            Tag::Final
        } else {
            tags[i % 3]
        };
        push.push(&mut ct, &[], tag).unwrap();
        let mut tampered = ct.clone();
        let (mut probe, _) = SecretStream::new(&rr);
        probe.recv_header(&payload).unwrap();
        let got = rx.decrypt(&ct);
        assert!(
            got.as_ref().ok() == Some(&m),
            "length {n}, tag {tag:?}: {got:?}"
        );
        // a flipped byte anywhere fails (on a fresh stream, which is then poisoned)
        let at = (n * 7919) % tampered.len();
        tampered[at] ^= 1;
        if i == 0 {
            assert!(probe.decrypt(&tampered).is_err());
            assert!(probe.is_failed());
        }
    }
}

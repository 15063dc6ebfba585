//! Fuzz targets for dat-core's wire decoders.
//!
//! Each `pub fn <target>(data: &[u8])` feeds one decoder (or one state machine) with `data` and
//! checks the property every decoder of peer input must have: any input returns `Ok` or `Err`,
//! never panics, and never allocates more than the input justifies. Some targets also check
//! cheap functional properties (a decoded value re-encodes to itself, an honest peer's messages
//! come out as sent); a violated property is a panic too, so the fuzzer reports it.
//!
//! The same functions back the libFuzzer binaries in `fuzz_targets/` and the stable regression
//! replay in `tests/regressions.rs`.
//!
//! Most targets read their input as a few control bytes followed by *chunks* (see [`Input`]):
//! a chunk is one length byte (`0..=254`), or `255` and a uint24le length, then that many bytes
//! (fewer at the end of the input). [`chunks`] builds such inputs, for seed files.

use std::sync::OnceLock;

use dat_core::crypto::{self, KeyPair};
use dat_core::log::Log;
use dat_core::manifest::{Manifest, MultiSignature, SignatureProof, Verifier};
use dat_core::proof::{self, Data};
use dat_core::replication::{
    Connection, ConnectionOptions, PROTOCOL as REPLICATION_PROTOCOL, PeerLimits, SecureTransport,
};
use dat_core::tree::{Node, NodeReader, TreeState};
use dat_core::wire::framing::{FrameDecoder, HEADER_LEN, MAX_FRAME};
use dat_core::wire::messages::{self, Message, types};
use dat_core::wire::noise::{self, HandshakeResult};
use dat_core::wire::protomux::{ChannelId, Event, Limits, Mux};
use dat_core::wire::secret_stream::{self, SecretStream};
use dat_core::{Durability, LogOptions, Store, StoreOptions};

// ---------------------------------------------------------------------------------------------
// Input helpers
// ---------------------------------------------------------------------------------------------

/// A fuzz input read as control bytes and chunks. Reading past the end yields zeros and empty
/// chunks, so every input is valid.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, 0 past the end.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// The next chunk, `None` once the input is used up.
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        if self.data.is_empty() {
            return None;
        }
        let len = match self.byte() {
            255 => {
                let l = self.take(3);
                let mut b = [0u8; 4];
                b[..l.len()].copy_from_slice(l);
                u32::from_le_bytes(b) as usize
            }
            n => n as usize,
        };
        Some(self.take(len))
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Encodes `parts` as chunks (the inverse of [`Input::chunk`]), after `control` bytes.
pub fn chunks<P: AsRef<[u8]>>(control: &[u8], parts: &[P]) -> Vec<u8> {
    let mut out = control.to_vec();
    for p in parts {
        let p = p.as_ref();
        assert!(p.len() < 1 << 24, "chunk too long");
        if p.len() < 255 {
            out.push(p.len() as u8);
        } else {
            out.push(255);
            out.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
        }
        out.extend_from_slice(p);
    }
    out
}

/// A small deterministic PRNG (splitmix64) for choices derived from the input.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed keys: the ones of core/tests/vectors/noise-secretstream.json, so the golden handshake
// messages and ciphertexts in the seed files authenticate.
// ---------------------------------------------------------------------------------------------

/// Static key seed of the vectors' initiator.
pub const INITIATOR_STATIC_SEED: [u8; 32] = [0x11; 32];
/// Static key seed of the vectors' responder.
pub const RESPONDER_STATIC_SEED: [u8; 32] = [0x22; 32];
/// Ephemeral key seed of the vectors' initiator.
pub const INITIATOR_EPHEMERAL_SEED: [u8; 32] = [0x33; 32];
/// Ephemeral key seed of the vectors' responder.
pub const RESPONDER_EPHEMERAL_SEED: [u8; 32] = [0x44; 32];

/// The vectors' handshake hash.
pub const VECTOR_HANDSHAKE_HASH: &str = "904bbe89cd78fb98b811db439e8c9b546f524311b5ca9cc38393af54937661f25ebc1dbfd3f12d1bb77a8dfbc52027ce3c4111c60e4dfac926822ef8d79e9bcc";
/// The vectors' initiator `tx` (= responder `rx`).
pub const VECTOR_INITIATOR_TX: &str =
    "78b14100bcd57f02f9e58fabd03b064db09f4811cfb0c69c74c8c68c4003090b";
/// The vectors' responder `tx` (= initiator `rx`).
pub const VECTOR_RESPONDER_TX: &str =
    "5c949cf136128f8f2bc59d63473515e57da48520f8e7742e3f40745a47b75db9";
/// The vectors' secret-stream header sent by the initiator.
pub const VECTOR_INITIATOR_HEADER: &str = "000102030405060708090a0b0c0d0e0f1011121314151617";
/// The vectors' secret-stream header sent by the responder.
pub const VECTOR_RESPONDER_HEADER: &str = "f0efeeedecebeae9e8e7e6e5e4e3e2e1e0dfdedddcdbdad9";

/// Decodes lowercase hex (panics on bad input: for constants only).
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn unhex_array<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().expect("hex constant length")
}

/// The handshake result of one side of the vectors' session.
pub fn vector_result(is_initiator: bool) -> HandshakeResult {
    let (tx, rx) = if is_initiator {
        (VECTOR_INITIATOR_TX, VECTOR_RESPONDER_TX)
    } else {
        (VECTOR_RESPONDER_TX, VECTOR_INITIATOR_TX)
    };
    let remote_seed = if is_initiator {
        RESPONDER_STATIC_SEED
    } else {
        INITIATOR_STATIC_SEED
    };
    HandshakeResult {
        is_initiator,
        tx: unhex_array(tx),
        rx: unhex_array(rx),
        handshake_hash: unhex_array(VECTOR_HANDSHAKE_HASH),
        remote_public_key: KeyPair::from_seed(&remote_seed).public_key(),
    }
}

/// The key of the vectors' log (`core/tests/vectors`: key pair from seed `0x01 × 32`, default
/// manifest), the log of the captured JS session in `core/tests/wire_codec.rs`.
pub fn vector_log_key() -> [u8; 32] {
    Manifest::default_signer(KeyPair::from_seed(&[1; 32]).public_key()).hash()
}

fn static_key(is_initiator: bool) -> KeyPair {
    KeyPair::from_seed(if is_initiator {
        &INITIATOR_STATIC_SEED
    } else {
        &RESPONDER_STATIC_SEED
    })
}

/// The vectors' handshake state for one side (fixed static and ephemeral keys).
pub fn vector_handshake(is_initiator: bool) -> noise::Handshake {
    let e = KeyPair::from_seed(if is_initiator {
        &INITIATOR_EPHEMERAL_SEED
    } else {
        &RESPONDER_EPHEMERAL_SEED
    });
    noise::Handshake::with_ephemeral(is_initiator, &static_key(is_initiator), e)
}

// ---------------------------------------------------------------------------------------------
// framing
// ---------------------------------------------------------------------------------------------

/// `FrameDecoder`: control byte `sel` picks the frame limit, byte `seed` the chunking; the rest is
/// the stream. Checks that the frames and the outcome do not depend on how the stream is chunked,
/// that no frame exceeds the limit, and that the buffered bytes stay within one frame.
pub fn framing(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.byte();
    let seed = input.byte();
    let stream = input.rest();
    let max = match sel & 3 {
        0 => MAX_FRAME,
        1 => usize::from(sel >> 2),
        2 => usize::from(sel >> 2) << 8,
        _ => 1 << 16,
    };

    let whole = decode_frames(max, [stream]);
    let mut rng = Rng::new(u64::from(seed));
    let mut rest = stream;
    let mut pieces = Vec::new();
    while !rest.is_empty() {
        let n = match rng.below(4) {
            0 => 0,
            1 => 1,
            2 => rng.below(8) as usize,
            _ => rng.below(300) as usize,
        };
        let (a, b) = rest.split_at(n.min(rest.len()));
        pieces.push(a);
        rest = b;
    }
    let chunked = decode_frames(max, pieces);
    assert_eq!(whole, chunked, "the chunking changed the frames");
    let total: usize = whole.0.iter().map(|f| f.len() + HEADER_LEN).sum();
    assert!(total <= stream.len(), "more frame bytes than stream bytes");
}

type Decoded = (Vec<Vec<u8>>, bool, usize);

fn decode_frames<'a>(max: usize, pieces: impl IntoIterator<Item = &'a [u8]>) -> Decoded {
    let mut d = FrameDecoder::with_max_frame(max);
    let limit = d.max_frame();
    let mut frames = Vec::new();
    for piece in pieces {
        let r = d.push(piece);
        while let Some(f) = d.next_frame() {
            assert!(f.len() <= limit, "a frame over the limit");
            frames.push(f);
        }
        assert!(
            d.buffered() < HEADER_LEN + limit,
            "buffered more than one frame"
        );
        if r.is_err() {
            assert!(d.push(&[0, 0, 0]).is_err(), "a failed decoder recovered");
            assert!(d.next_frame().is_none());
            return (frames, true, 0);
        }
    }
    (frames, false, d.buffered())
}

// ---------------------------------------------------------------------------------------------
// protomux
// ---------------------------------------------------------------------------------------------

/// `Mux::receive`: control byte `flags` (bit 0: open two channels first; bit 1: small limits;
/// bit 2: cork while handling each frame), then one chunk per received frame. Open requests are
/// accepted or rejected, channels sent on and closed, by a PRNG seeded from `flags`. Stops at the
/// first error (the connection would be dropped). Checks that sent frames respect the limit.
pub fn protomux(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let limits = if flags & 2 != 0 {
        Limits {
            max_frame: 64 + usize::from(flags >> 3) * 8,
            max_remote_channels: 6,
            max_pending_opens: 3,
            max_pending_bytes: 2048,
        }
    } else {
        Limits::default()
    };
    let mut mux = Mux::with_limits(limits);
    let max_frame = mux.limits().max_frame;
    let mut rng = Rng::new(u64::from(flags) << 8 | 0x5a);
    if flags & 1 != 0 {
        let dk = crypto::discovery_key(&vector_log_key());
        let _ = mux.open(messages::PROTOCOL, Some(&dk), b"\x01handshake");
        let _ = mux.open("other", None, b"");
    }
    let mut open: Vec<ChannelId> = Vec::new();
    while let Some(frame) = input.chunk() {
        if mux.receive(frame).is_err() {
            break;
        }
        if flags & 4 != 0 {
            mux.cork();
        }
        while let Some(ev) = mux.next_event() {
            match ev {
                Event::OpenRequest {
                    remote_id,
                    protocol,
                    id,
                    ..
                } => {
                    if rng.one_in(3) {
                        let _ = mux.reject(remote_id);
                    } else if let Ok(ch) = mux.open(&protocol, Some(&id), b"hs") {
                        open.push(ch);
                    }
                }
                Event::Opened { channel, .. } => {
                    open.push(channel);
                    let _ = mux.send(channel, 0, b"sync");
                }
                Event::Message {
                    channel,
                    message_type,
                    ..
                } => {
                    if rng.one_in(5) {
                        let _ = mux.close(channel);
                    } else {
                        let _ = mux.send(channel, message_type, b"reply");
                    }
                }
                Event::Closed { channel } | Event::Rejected { channel } => {
                    assert!(!mux.is_open(channel), "a closed channel is still open");
                }
                Event::OpenRequestClosed { .. } => {}
            }
        }
        if !open.is_empty() && rng.one_in(7) {
            let ch = open.swap_remove(rng.below(open.len() as u64) as usize);
            let _ = mux.close(ch);
        }
        if flags & 4 != 0 {
            mux.uncork();
        }
        for f in mux.drain_frames() {
            assert!(f.len() <= max_frame, "sent a frame over the limit");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// messages
// ---------------------------------------------------------------------------------------------

/// `Message::decode` of the whole input as every type 0..=9 and a few unknown ones. Checks that
/// unknown types fail and that what decodes re-encodes to the same message.
pub fn messages(data: &[u8]) {
    for t in (0..=11u64).chain([255, 256, u64::MAX]) {
        if let Ok(m) = Message::decode(t, data) {
            assert!(t < messages::MESSAGE_TYPES, "decoded unknown type {t}");
            assert_eq!(m.message_type(), t);
            let (t2, bytes) = m.encode();
            assert_eq!(t2, t);
            let again = Message::decode(t, &bytes).expect("re-encoded message decodes");
            assert_eq!(again, m, "{} does not round-trip", m.name());
        }
    }
}

/// `messages::Handshake::decode` (the `hypercore/alpha` open handshake). Checks the round trip.
pub fn channel_handshake(data: &[u8]) {
    if let Ok(h) = messages::Handshake::decode(data) {
        let bytes = h.encode();
        assert_eq!(messages::Handshake::decode(&bytes).expect("re-encoded"), h);
        // a capability never verifies against an unrelated key
        let _ = messages::verify_capability(true, &[0; 32], &[0; 64], &h.capability);
    }
}

// ---------------------------------------------------------------------------------------------
// data (proofs)
// ---------------------------------------------------------------------------------------------

/// Blocks of the small in-memory tree the proof targets use.
const TREE_BLOCKS: u64 = 17;

struct Trees {
    /// Every node of the full tree.
    nodes: std::collections::HashMap<u64, Node>,
    /// `states[l]`: the tree state at length `l`, `0..=TREE_BLOCKS`.
    states: Vec<TreeState>,
    blocks: Vec<Vec<u8>>,
}

fn trees() -> &'static Trees {
    static TREES: OnceLock<Trees> = OnceLock::new();
    TREES.get_or_init(|| {
        let blocks: Vec<Vec<u8>> = (0..TREE_BLOCKS)
            .map(|i| format!("block {i}").repeat(i as usize % 3 + 1).into_bytes())
            .collect();
        let mut state = TreeState::default();
        let mut states = vec![state.clone()];
        let mut nodes = std::collections::HashMap::new();
        for b in &blocks {
            let mut new = Vec::new();
            state.append(b, &mut new);
            for n in new {
                nodes.insert(n.index, n);
            }
            states.push(state.clone());
        }
        Trees {
            nodes,
            states,
            blocks,
        }
    })
}

/// `proof::Data::decode` (the `data` message), then `proof::verify` of what decodes against an
/// empty state and a 5-block state, with and without the manifest's prologue, and
/// `verify_fully_remote` when the message carries a usable manifest. Checks the round trip.
pub fn data(data: &[u8]) {
    let Ok(d) = Data::decode(data) else { return };
    let again = Data::decode(&d.encode()).expect("re-encoded data decodes");
    assert_eq!(again, d, "data does not round-trip");

    let _ = proof::verify(&TreeState::default(), &d, None);
    let _ = proof::verify(&trees().states[5], &d, None);
    if let Some(m) = &d.manifest {
        if let Some(p) = &m.prologue {
            let _ = proof::verify(&TreeState::default(), &d, Some(p));
        }
        if let Ok(v) = Verifier::new(m.hash(), m.clone()) {
            let _ = proof::verify_fully_remote(&v, &d);
        }
    }
}

/// The stored nodes of a log of `head / 2` blocks: those under the head.
struct Upto<'a> {
    nodes: &'a std::collections::HashMap<u64, Node>,
    head: u64,
}

impl NodeReader for Upto<'_> {
    fn node(&self, index: u64) -> dat_core::Result<Option<Node>> {
        // A node at depth d spans flat indexes up to index + 2^d - 1. (Computed here rather than
        // with flat_tree::right_span so that hostile indexes cannot overflow in the harness.)
        let depth = index.trailing_ones();
        let right_span = (depth < 63)
            .then(|| index.checked_add((1u64 << depth) - 1))
            .flatten();
        match right_span {
            Some(r) if r < self.head => self.nodes.node(index),
            _ => Ok(None),
        }
    }
}

/// `proof::generate` for an arbitrary request (control byte: the local length, `% 18`; the rest:
/// a `request` message payload) on a 17-block tree. Checks that a pure upgrade proof verifies
/// against the requester's state and lands on the local state.
pub fn proof_generate(data: &[u8]) {
    let mut input = Input::new(data);
    let length = u64::from(input.byte()) % (TREE_BLOCKS + 1);
    let Ok(Message::Request(req)) = Message::decode(types::REQUEST, input.rest()) else {
        return;
    };
    let t = trees();
    let state = &t.states[length as usize];
    let mut pr = req.proof_request();
    pr.fork = state.fork;
    let reader = Upto {
        nodes: &t.nodes,
        head: 2 * length,
    };
    let Ok(mut d) = proof::generate(state, &reader, &pr) else {
        return;
    };
    if let Some(b) = d.block.as_mut() {
        // `generate` does not check that the block is stored (the log reads its value and
        // answers `NotAvailable` when it is not); without a value there is nothing to verify.
        let Some(value) = t.blocks[..length as usize].get(b.index as usize) else {
            return;
        };
        b.value = value.clone();
    }
    let d = Data::decode(&d.encode()).expect("a generated proof decodes");
    if length == 0 {
        assert_eq!(d, Data::default(), "a proof from an empty log");
        return;
    }
    if let Some(u) = pr.upgrade
        && pr.block.is_none()
        && pr.hash.is_none()
        && pr.seek.is_none()
    {
        // Ok means start < start + length <= the local length.
        let from = t
            .states
            .get(u.start as usize)
            .expect("generate accepted an upgrade that starts past the local length");
        let v = proof::verify(from, &d, None).expect("a generated upgrade proof verifies");
        assert!(v.upgraded);
        assert_eq!(v.tree.length, length, "the upgrade lands on another length");
        assert_eq!(
            v.tree.hash(),
            state.hash(),
            "the upgrade lands on another tree"
        );
    } else {
        let _ = proof::verify(&TreeState::default(), &d, None);
    }
}

// ---------------------------------------------------------------------------------------------
// manifest
// ---------------------------------------------------------------------------------------------

/// `Manifest::decode` and `MultiSignature::decode` of the whole input. Checks the round trips,
/// and runs what decodes through `Verifier` (manifest-keyed and compat).
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data) {
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).expect("re-encoded manifest"), m);
        let key = m.hash();
        if let Ok(v) = Verifier::new(key, m.clone()) {
            let sig = MultiSignature {
                proofs: (0..m.signers.len().min(4) as u64)
                    .map(|signer| SignatureProof {
                        signer,
                        signature: [0; 64],
                        patch: 0,
                    })
                    .collect(),
                patch: vec![],
            }
            .encode();
            assert!(!v.verify(&key, 1, 0, &sig), "a zero signature verified");
            let _ = v.verify(&key, 0, 0, &[]);
        }
        if let Some(s) = m.signers.first()
            && let Ok(v) = Verifier::new(s.public_key, m.clone())
        {
            let _ = v.verify(&key, 3, 0, &[0; 64]);
        }
    }
    if let Ok(ms) = MultiSignature::decode(data) {
        assert_eq!(
            MultiSignature::decode(&ms.encode()).expect("re-encoded multisig"),
            ms
        );
    }
}

// ---------------------------------------------------------------------------------------------
// noise
// ---------------------------------------------------------------------------------------------

/// `noise::Handshake::recv` with the vectors' keys. Control byte bit 0: play the initiator (fed
/// message 2 after `start`) rather than the responder (fed message 1, then message 3); each chunk
/// is one message. Checks the output lengths and that a failed or finished handshake stays so.
pub fn noise(data: &[u8]) {
    let mut input = Input::new(data);
    let is_initiator = input.byte() & 1 != 0;
    let mut hs = vector_handshake(is_initiator);
    match hs.start() {
        Ok(Some(m1)) => {
            assert!(is_initiator);
            assert_eq!(m1.len(), noise::MESSAGE1_LEN);
        }
        Ok(None) => assert!(!is_initiator),
        Err(e) => panic!("start failed: {e}"),
    }
    while let Some(msg) = input.chunk() {
        let was_done = hs.is_done();
        match hs.recv(msg) {
            Ok(Some(reply)) => {
                let expected = if is_initiator {
                    noise::MESSAGE3_LEN
                } else {
                    noise::MESSAGE2_LEN
                };
                assert_eq!(reply.len(), expected);
            }
            Ok(None) => assert!(hs.is_done() && !is_initiator),
            Err(_) => {
                assert!(
                    was_done || hs.is_failed(),
                    "an error did not fail the handshake"
                );
                assert!(
                    hs.recv(msg).is_err(),
                    "a failed handshake accepted a message"
                );
                break;
            }
        }
        if hs.is_done() {
            let r = hs.result().expect("a done handshake has a result");
            assert_eq!(Some(r.remote_public_key), hs.remote_public_key());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// secret stream
// ---------------------------------------------------------------------------------------------

/// `SecretStream::{recv_header, decrypt}` with the vectors' keys. Control byte bit 0: receive as
/// the initiator (else as the responder). Bit 1 clear: the first chunk is the header payload, the
/// others ciphertexts. Bit 1 set: an honest peer sends its real header, then encrypts each chunk's
/// tail; the chunk's first byte may corrupt (bit 0) or drop (bit 1) the ciphertext. Checks that
/// intact messages decrypt to what was sent and that corrupted, dropped-after or poisoned ones fail.
pub fn secret_stream(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let is_initiator = flags & 1 != 0;
    let (mut rx, _) = SecretStream::with_header(&vector_result(is_initiator), [9; 24]);
    if flags & 2 == 0 {
        let Some(header) = input.chunk() else { return };
        let mut failed = rx.recv_header(header).is_err();
        while let Some(c) = input.chunk() {
            let r = rx.decrypt(c);
            if failed {
                assert!(r.is_err(), "a poisoned stream decrypted");
            }
            if let Ok(p) = &r {
                assert_eq!(p.len() + secret_stream::ABYTES, c.len());
            }
            failed |= r.is_err();
        }
        return;
    }
    let header = unhex_array(if is_initiator {
        VECTOR_RESPONDER_HEADER
    } else {
        VECTOR_INITIATOR_HEADER
    });
    let (mut tx, payload) = SecretStream::with_header(&vector_result(!is_initiator), header);
    rx.recv_header(&payload)
        .expect("the honest header is accepted");
    let mut broken = false;
    while let Some(c) = input.chunk() {
        let (ctrl, plain) = c.split_first().map_or((0, &[][..]), |(a, b)| (*a, b));
        let mut ct = tx.encrypt(plain).expect("encrypt");
        assert_eq!(ct.len(), plain.len() + secret_stream::ABYTES);
        if ctrl & 2 != 0 {
            broken = true; // dropped: every later message is out of order
            continue;
        }
        let corrupt = ctrl & 1 != 0;
        if corrupt {
            let i = usize::from(ctrl >> 2) % ct.len();
            ct[i] ^= 1 << (ctrl & 7);
        }
        match rx.decrypt(&ct) {
            Ok(p) => {
                assert!(
                    !broken && !corrupt,
                    "a corrupted or out-of-order message decrypted"
                );
                assert_eq!(p, plain, "decrypted something else");
            }
            Err(_) => {
                assert!(broken || corrupt, "an intact message failed to decrypt");
                broken = true;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// transport
// ---------------------------------------------------------------------------------------------

/// Moves bytes both ways until neither side has output; errors end the pump.
fn pump(a: &mut SecureTransport, b: &mut SecureTransport) -> bool {
    for _ in 0..16 {
        let x = a.take_output();
        let y = b.take_output();
        if x.is_empty() && y.is_empty() {
            return true;
        }
        if b.receive(&x).is_err() || a.receive(&y).is_err() {
            return false;
        }
    }
    true
}

/// `SecureTransport::receive`. Control byte bit 0: be the initiator; bit 2: a 256-byte frame
/// limit. Bit 1 clear: every chunk is raw socket bytes. Bit 1 set: an honest peer completes the
/// handshake first, then each chunk's first byte picks what its tail becomes: a message the peer
/// encrypts (delivered split at a point), raw bytes injected into the stream, a peer message with
/// one byte flipped, or a message this side sends to the peer. Checks that intact messages arrive
/// as sent.
pub fn transport(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let is_initiator = flags & 1 != 0;
    let max_frame = if flags & 4 != 0 { 256 } else { MAX_FRAME };
    let mut t = SecureTransport::new(is_initiator, &static_key(is_initiator), max_frame)
        .expect("a new transport");
    if flags & 2 == 0 {
        let _ = t.take_output();
        while let Some(c) = input.chunk() {
            let r = t.receive(c);
            let _ = t.take_output();
            while t.next_message().is_some() {}
            if r.is_err() {
                assert!(t.receive(b"").is_err(), "a failed transport recovered");
                break;
            }
        }
        return;
    }
    let mut peer = SecureTransport::new(!is_initiator, &static_key(!is_initiator), MAX_FRAME)
        .expect("a new transport");
    assert!(pump(&mut t, &mut peer), "the honest handshake failed");
    assert!(t.is_established() && peer.is_established());
    let mut intact = true;
    while let Some(c) = input.chunk() {
        let (ctrl, body) = c.split_first().map_or((0, &[][..]), |(a, b)| (*a, b));
        let r = match ctrl & 3 {
            0 | 2 => {
                if peer.send(body).is_err() {
                    break;
                }
                let mut out = peer.take_output();
                let at = usize::from(ctrl >> 2) % (out.len() + 1);
                if ctrl & 3 == 2 && !out.is_empty() {
                    let i = at.min(out.len() - 1);
                    out[i] ^= 0x80;
                    intact = false;
                }
                let r = t.receive(&out[..at]).and_then(|()| t.receive(&out[at..]));
                if r.is_ok() && intact {
                    let got = t.next_message();
                    if body.is_empty() {
                        assert!(got.is_none(), "a keep-alive became a message");
                    } else {
                        assert_eq!(got.as_deref(), Some(body), "the message changed");
                    }
                }
                r
            }
            1 => {
                intact = false;
                t.receive(body)
            }
            _ => {
                if t.send(body).is_err() {
                    break;
                }
                let out = t.take_output();
                if peer.receive(&out).is_ok() && !body.is_empty() {
                    assert_eq!(peer.next_message().as_deref(), Some(body));
                }
                Ok(())
            }
        };
        while t.next_message().is_some() {}
        if r.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// connection
// ---------------------------------------------------------------------------------------------

/// The store the connection target serves, created once per process in a temporary directory.
pub struct Fixture {
    /// The store.
    pub store: Store,
    /// The vectors' log (key pair from seed `0x01 × 32`, manifest mode) holding "a", "b", "c":
    /// the log of the captured JS session, so its golden frames apply.
    pub writable: Log,
    /// An empty read-only log (key pair from seed `0x55 × 32`), filled only by verified proofs.
    pub remote: Log,
}

/// The fixture, created on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dat-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_with(
            &dir,
            StoreOptions {
                durability: Durability::NoSync,
                map_size: 64 << 20,
                primary_key: Some([7; 32]),
            },
        )
        .expect("open the fuzz store");
        let writable = store
            .create_log(LogOptions {
                compat: false,
                key_pair: Some(KeyPair::from_seed(&[1; 32])),
            })
            .expect("create the writable log");
        if writable.length() == 0 {
            writable
                .append_batch(&[b"a", b"b", b"c"])
                .expect("append to the writable log");
        }
        let remote_kp = KeyPair::from_seed(&[0x55; 32]);
        let manifest = Manifest::default_signer(remote_kp.public_key());
        let remote = store
            .open_log(&manifest.hash(), Some(manifest))
            .expect("open the read-only log");
        // The environment stays open; unlinking now leaves nothing behind when the process ends.
        let _ = std::fs::remove_dir_all(&dir);
        Fixture {
            store,
            writable,
            remote,
        }
    })
}

/// `Connection::receive` on a connection serving the [`fixture`] store. Control byte bit 0: be
/// the initiator; bit 2: replicate the writable log before connecting; bit 5: sparse; bit 6: a
/// 4 KiB frame limit and tight peer limits; bit 7: do not accept logs the peer opens first. Bit 1 clear: every
/// chunk is raw socket bytes. Bit 1 set: an honest peer completes the handshake, opens the
/// `hypercore/alpha` channel of the writable log (bit 3) and of the read-only log (bit 4) with
/// valid capabilities, then sends each chunk as one protomux frame. Stops at the first error.
pub fn connection(data: &[u8]) {
    let fx = fixture();
    let mut input = Input::new(data);
    let flags = input.byte();
    let is_initiator = flags & 1 != 0;
    let tight = flags & 64 != 0;
    let opts = ConnectionOptions {
        max_frame: if tight { 4096 } else { MAX_FRAME },
        sparse: flags & 32 != 0,
        limits: if tight {
            PeerLimits {
                max_invalid_requests: 2,
                max_unavailable_requests: 2,
            }
        } else {
            PeerLimits::default()
        },
        accept_unannounced: flags & 128 == 0,
        ..ConnectionOptions::default()
    };
    let mut conn = Connection::new(
        fx.store.clone(),
        is_initiator,
        &static_key(is_initiator),
        opts,
    )
    .expect("a new connection");
    if flags & 4 != 0 {
        conn.replicate(&fx.writable, flags & 32 != 0)
            .expect("replicate before connecting");
    }
    if flags & 2 == 0 {
        let _ = conn.take_output();
        while let Some(c) = input.chunk() {
            let r = conn.receive(c);
            let _ = conn.take_output();
            while conn.next_event().is_some() {}
            if r.is_err() {
                break;
            }
        }
        return;
    }

    let mut peer = SecureTransport::new(!is_initiator, &static_key(!is_initiator), MAX_FRAME)
        .expect("a new transport");
    for _ in 0..16 {
        let x = conn.take_output();
        let y = peer.take_output();
        if x.is_empty() && y.is_empty() {
            break;
        }
        if peer.receive(&x).is_err() {
            panic!("the peer rejected an honest handshake");
        }
        if conn.receive(&y).is_err() {
            return; // e.g. the channel open queued by `replicate` was refused
        }
    }
    assert!(conn.is_connected(), "the honest handshake did not connect");
    let hh = peer.handshake().expect("peer handshake").handshake_hash;
    let mut mux = Mux::new();
    for (bit, log) in [(8, &fx.writable), (16, &fx.remote)] {
        if flags & bit != 0 {
            let hs = messages::Handshake {
                seeks: true,
                capability: messages::capability(!is_initiator, &log.key(), &hh),
            };
            let _ = mux.open(
                REPLICATION_PROTOCOL,
                Some(&log.discovery_key()),
                &hs.encode(),
            );
        }
    }
    let prelude = mux.drain_frames();
    for frame in prelude
        .iter()
        .map(Vec::as_slice)
        .chain(std::iter::from_fn(|| input.chunk()))
    {
        if peer.send(frame).is_err() {
            break;
        }
        let r = conn.receive(&peer.take_output());
        let _ = peer.receive(&conn.take_output());
        while peer.next_message().is_some() {}
        while conn.next_event().is_some() {}
        if r.is_err() {
            break;
        }
    }
}

/// A fuzz target function.
pub type Target = fn(&[u8]);

/// Every target, by name (the name of its `fuzz_targets/` file and `regressions/` folder).
pub const TARGETS: &[(&str, Target)] = &[
    ("framing", framing),
    ("protomux", protomux),
    ("messages", messages),
    ("channel_handshake", channel_handshake),
    ("data", data),
    ("proof_generate", proof_generate),
    ("manifest", manifest),
    ("noise", noise),
    ("secret_stream", secret_stream),
    ("transport", transport),
    ("connection", connection),
];

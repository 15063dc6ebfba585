//! The transport encryption of `@hyperswarm/secret-stream` after the Noise handshake, sans IO.
//!
//! - Each side first sends a 56-byte header payload: [`stream_id`] of its own role (32 bytes)
//!   then the 24-byte libsodium `crypto_secretstream_xchacha20poly1305` header of its sending
//!   stream (keyed with its `tx`). The receiver checks the id against the sender's role and opens
//!   its receiving stream with its `rx` key.
//! - Every message is then `crypto_secretstream_xchacha20poly1305_push(plaintext, no AD,
//!   TAG_MESSAGE)`: the ciphertext is [`ABYTES`] (17) bytes longer than the plaintext. An empty
//!   plaintext is a keep-alive.
//!
//! Payloads here carry no length prefix; the framing layer adds the uint24le one. The stream
//! construction is written here on the `chacha20` and `poly1305` crates (HChaCha20 subkey, IETF
//! ChaCha20, the one-time Poly1305 key from block 0, the tag block at block 1, the message from
//! block 2, libsodium's MAC padding, nonce update and rekey), so that a message is encrypted
//! straight into the output buffer and decrypted where it lies, without the copies and the
//! whole-message rotations of a `Vec`-based API. `core/tests/wire_crypto.rs` checks it against
//! the JavaScript reference's bytes and against the `crypto_secretstream` crate.
//!
//! ```
//! use dat_core::KeyPair;
//! use dat_core::wire::noise::Handshake;
//! use dat_core::wire::secret_stream::SecretStream;
//!
//! # let mut a = Handshake::new(true, &KeyPair::generate());
//! # let mut b = Handshake::new(false, &KeyPair::generate());
//! # let m2 = b.recv(&a.start()?.unwrap())?.unwrap();
//! # b.recv(&a.recv(&m2)?.unwrap())?;
//! // after a completed handshake on both sides:
//! let (mut sa, header_a) = SecretStream::new(a.result().unwrap());
//! let (mut sb, header_b) = SecretStream::new(b.result().unwrap());
//! sa.recv_header(&header_b)?;
//! sb.recv_header(&header_a)?;
//! let ct = sa.encrypt(b"hello")?;
//! assert_eq!(sb.decrypt(&ct)?, b"hello");
//! # Ok::<(), dat_core::Error>(())
//! ```

use std::sync::LazyLock;

use chacha20::ChaCha20;
use chacha20::R20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use poly1305::Poly1305;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use rand::RngCore;

use crate::crypto::{Hash, keyed_hash, namespace};
use crate::error::{Error, Result};
use crate::wire::noise::HandshakeResult;

/// Length of a secretstream header.
pub const HEADER_BYTES: usize = 24;
/// Length of a stream id.
pub const STREAM_ID_BYTES: usize = 32;
/// Length of the header payload each side sends first: stream id || secretstream header.
pub const HEADER_PAYLOAD_BYTES: usize = STREAM_ID_BYTES + HEADER_BYTES;
/// Bytes a ciphertext adds to its plaintext: 1 encrypted tag byte and a 16-byte MAC.
pub const ABYTES: usize = 17;
/// The largest ciphertext (`MAX_ATOMIC_WRITE`): it must fit a uint24 length prefix.
pub const MAX_CIPHERTEXT_BYTES: usize = (1 << 24) - 1;
/// The largest plaintext one message can carry.
pub const MAX_PLAINTEXT_BYTES: usize = MAX_CIPHERTEXT_BYTES - ABYTES;

/// `NS_INITIATOR`, `NS_RESPONDER` and `NS_SEND` of `crypto.namespace('hyperswarm/secret-stream', 3)`.
static NAMESPACES: LazyLock<Vec<Hash>> = LazyLock::new(|| namespace("hyperswarm/secret-stream", 3));

fn fail(msg: impl Into<String>) -> Error {
    Error::Handshake(msg.into())
}

/// The stream id a side announces: keyed BLAKE2b-256 of `NS_INITIATOR` (initiator) or
/// `NS_RESPONDER` (responder), with the handshake hash as the key.
pub fn stream_id(handshake_hash: &[u8; 64], is_initiator: bool) -> [u8; 32] {
    let ns = &NAMESPACES[if is_initiator { 0 } else { 1 }];
    keyed_hash(handshake_hash, &[ns])
}

/// libsodium's `crypto_secretstream_xchacha20poly1305` tags (the first plaintext byte).
const TAG_MESSAGE: u8 = 0;
const TAG_REKEY: u8 = 2;
const TAG_FINAL: u8 = 3;
/// Poly1305 tag length.
const MAC_BYTES: usize = 16;

/// One direction of a `crypto_secretstream_xchacha20poly1305` stream: the HChaCha20 subkey, the
/// 8-byte inner nonce and the 32-bit message counter.
struct Direction {
    key: [u8; 32],
    inonce: [u8; 8],
    counter: u32,
}

impl Direction {
    /// `init_push` / `init_pull`: the subkey is HChaCha20(key, header[..16]), the inner nonce
    /// header[16..], the counter 1.
    fn new(key: &[u8; 32], header: &[u8; HEADER_BYTES]) -> Self {
        let mut input = [0u8; 16];
        input.copy_from_slice(&header[..16]);
        let sub = chacha20::hchacha::<R20>(&(*key).into(), &input.into());
        let mut inonce = [0u8; 8];
        inonce.copy_from_slice(&header[16..]);
        Direction {
            key: sub.into(),
            inonce,
            counter: 1,
        }
    }

    /// The message's ChaCha20 (nonce = counter LE || inner nonce) and its Poly1305 key (the first
    /// 32 bytes of block 0).
    fn cipher(&self) -> (ChaCha20, [u8; 32]) {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.counter.to_le_bytes());
        nonce[4..].copy_from_slice(&self.inonce);
        let mut cipher = ChaCha20::new(&self.key.into(), &nonce.into());
        let mut mac_key = [0u8; 32];
        cipher.apply_keystream(&mut mac_key);
        (cipher, mac_key)
    }

    /// The tag block (block 1: the tag byte, then key stream) and the message (from block 2) are
    /// XORed with `cipher`'s key stream; returns the encrypted tag block.
    fn tag_block(cipher: &mut ChaCha20, first: u8) -> [u8; 64] {
        let mut block = [0u8; 64];
        block[0] = first;
        cipher.seek(64u64);
        cipher.apply_keystream(&mut block);
        cipher.seek(128u64);
        block
    }

    /// libsodium's MAC (no additional data): the encrypted tag block, the ciphertext, then
    /// `len & 15` zero bytes (libsodium's padding quirk, `(0x10 - 64 + len) & 0xf`) and the two
    /// little-endian lengths (0 and 64 + len).
    fn mac(mac_key: &[u8; 32], tag_block: &[u8; 64], ciphertext: &[u8]) -> [u8; MAC_BYTES] {
        let mut mac = Poly1305::new(mac_key.into());
        mac.update_padded(tag_block);
        let full = ciphertext.len() & !15;
        mac.update_padded(&ciphertext[..full]);
        let rest = &ciphertext[full..];
        let mut last = [0u8; 3 * MAC_BYTES];
        last[..rest.len()].copy_from_slice(rest);
        let at = 2 * rest.len();
        last[at + 8..at + 16].copy_from_slice(&(64 + ciphertext.len() as u64).to_le_bytes());
        mac.compute_unpadded(&last[..at + 16]).into()
    }

    /// After each message: the inner nonce absorbs the MAC, the counter moves on, and the key
    /// changes on a rekey tag or when the counter wraps.
    fn advance(&mut self, mac: &[u8; MAC_BYTES], tag: u8) {
        for (n, m) in self.inonce.iter_mut().zip(mac) {
            *n ^= m;
        }
        self.counter = self.counter.wrapping_add(1);
        if tag & TAG_REKEY != 0 || self.counter == 0 {
            let (mut cipher, _) = self.cipher();
            cipher.seek(0u64);
            let mut both = [0u8; 40];
            both[..32].copy_from_slice(&self.key);
            both[32..].copy_from_slice(&self.inonce);
            cipher.apply_keystream(&mut both);
            self.key.copy_from_slice(&both[..32]);
            self.inonce.copy_from_slice(&both[32..]);
            self.counter = 1;
        }
    }

    /// Appends `tag || plaintext`'s ciphertext and MAC to `out`.
    fn push(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let (mut cipher, mac_key) = self.cipher();
        let tag_block = Self::tag_block(&mut cipher, TAG_MESSAGE);
        out.reserve(plaintext.len() + ABYTES);
        out.push(tag_block[0]);
        let start = out.len();
        out.extend_from_slice(plaintext);
        cipher.apply_keystream(&mut out[start..]);
        let mac = Self::mac(&mac_key, &tag_block, &out[start..]);
        out.extend_from_slice(&mac);
        self.advance(&mac, TAG_MESSAGE);
    }

    /// Checks and decrypts `buf` (tag || ciphertext || MAC) in place; the plaintext is then
    /// `buf[1..buf.len() - 16]`. `None` (nothing changed) when the MAC or the tag is wrong.
    fn pull(&mut self, buf: &mut [u8]) -> Option<()> {
        let body = buf.len().checked_sub(MAC_BYTES).filter(|&b| b >= 1)?;
        let (mut cipher, mac_key) = self.cipher();
        let tag_block = Self::tag_block(&mut cipher, buf[0]);
        let mut enc_tag_block = tag_block;
        enc_tag_block[0] = buf[0];
        let mac = Self::mac(&mac_key, &enc_tag_block, &buf[1..body]);
        // constant time: the MAC comparison must not leak where the first difference is
        let diff = mac
            .iter()
            .zip(&buf[body..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        let tag = tag_block[0];
        // any of libsodium's four tags is accepted, as the reference does
        if diff != 0 || tag > TAG_FINAL {
            return None;
        }
        cipher.apply_keystream(&mut buf[1..body]);
        buf[0] = tag;
        self.advance(&mac, tag);
        Some(())
    }
}

/// Both directions of an encrypted connection, after the handshake.
pub struct SecretStream {
    is_initiator: bool,
    handshake_hash: [u8; 64],
    push: Direction,
    rx: [u8; 32],
    pull: Option<Direction>,
    failed: bool,
}

impl std::fmt::Debug for SecretStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStream")
            .field("is_initiator", &self.is_initiator)
            .field("header_received", &self.pull.is_some())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl SecretStream {
    /// Sets up the streams for a completed handshake, with a random header. Returns the stream
    /// and the [`HEADER_PAYLOAD_BYTES`]-byte header payload to send to the peer before any
    /// message.
    pub fn new(handshake: &HandshakeResult) -> (Self, Vec<u8>) {
        let mut header = [0u8; HEADER_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut header);
        Self::with_header(handshake, header)
    }

    /// Like [`new`](Self::new) with a chosen header: for test vectors only. Two streams with the
    /// same key and header encrypt with the same key stream.
    pub fn with_header(handshake: &HandshakeResult, header: [u8; HEADER_BYTES]) -> (Self, Vec<u8>) {
        let push = Direction::new(&handshake.tx, &header);
        let mut payload = Vec::with_capacity(HEADER_PAYLOAD_BYTES);
        payload.extend_from_slice(&stream_id(
            &handshake.handshake_hash,
            handshake.is_initiator,
        ));
        payload.extend_from_slice(&header);
        let stream = Self {
            is_initiator: handshake.is_initiator,
            handshake_hash: handshake.handshake_hash,
            push,
            rx: handshake.rx,
            pull: None,
            failed: false,
        };
        (stream, payload)
    }

    /// Whether this side was the handshake initiator.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// The handshake hash the stream is bound to.
    pub fn handshake_hash(&self) -> &[u8; 64] {
        &self.handshake_hash
    }

    /// Whether the peer's header payload was accepted, so [`decrypt`](Self::decrypt) works.
    pub fn header_received(&self) -> bool {
        self.pull.is_some()
    }

    /// Whether an error poisoned the stream (every further call fails; close the connection).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn check(&self) -> Result<()> {
        if self.failed {
            Err(fail("secret stream already failed"))
        } else {
            Ok(())
        }
    }

    fn poison(&mut self, err: Error) -> Error {
        self.failed = true;
        self.pull = None;
        err
    }

    /// Takes the peer's header payload (the first frame after the handshake): checks the stream
    /// id against the peer's role and opens the receiving stream.
    pub fn recv_header(&mut self, payload: &[u8]) -> Result<()> {
        self.check()?;
        if self.pull.is_some() {
            return Err(self.poison(fail("secret stream header received twice")));
        }
        if payload.len() != HEADER_PAYLOAD_BYTES {
            return Err(self.poison(fail(format!(
                "secret stream header must be {HEADER_PAYLOAD_BYTES} bytes, got {}",
                payload.len()
            ))));
        }
        let expected = stream_id(&self.handshake_hash, !self.is_initiator);
        if payload[..STREAM_ID_BYTES] != expected {
            return Err(self.poison(fail("invalid stream id in the secret stream header")));
        }
        let header: [u8; HEADER_BYTES] = payload[STREAM_ID_BYTES..]
            .try_into()
            .expect("length checked");
        self.pull = Some(Direction::new(&self.rx, &header));
        Ok(())
    }

    /// Encrypts one message (`TAG_MESSAGE`, no additional data). The result is
    /// `plaintext.len() + ABYTES` bytes. An empty plaintext makes a keep-alive. Works before the
    /// peer's header arrived. A plaintext over [`MAX_PLAINTEXT_BYTES`] is an
    /// [`Error::FrameTooLarge`] and leaves the stream usable.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encrypt_into(plaintext, &mut out)?;
        Ok(out)
    }

    /// Like [`encrypt`](Self::encrypt), appending the ciphertext to `out` (one copy of the
    /// plaintext, encrypted where it lands).
    pub fn encrypt_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.check()?;
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(Error::FrameTooLarge {
                size: plaintext.len().saturating_add(ABYTES),
                max: MAX_CIPHERTEXT_BYTES,
            });
        }
        self.push.push(plaintext, out);
        Ok(())
    }

    /// Decrypts the next message from the peer. Any tag is accepted, as the reference does. A
    /// ciphertext shorter than [`ABYTES`], tampered, replayed or out of order, or one that
    /// arrives before the peer's header, is an [`Error::Handshake`] that poisons the stream.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let mut buf = ciphertext.to_vec();
        let plain = self.decrypt_in_place(&mut buf)?;
        buf.truncate(plain.end);
        buf.drain(..plain.start);
        Ok(buf)
    }

    /// Like [`decrypt`](Self::decrypt), in place: returns the range of `buf` that holds the
    /// plaintext (`1..buf.len() - 16`).
    pub fn decrypt_in_place(&mut self, buf: &mut [u8]) -> Result<std::ops::Range<usize>> {
        self.check()?;
        let Some(pull) = self.pull.as_mut() else {
            return Err(self.poison(fail("secret stream message before the peer's header")));
        };
        if buf.len() < ABYTES {
            return Err(self.poison(fail(format!(
                "secret stream message of {} bytes is shorter than {ABYTES}",
                buf.len()
            ))));
        }
        match pull.pull(buf) {
            Some(()) => Ok(1..buf.len() - MAC_BYTES),
            None => Err(self.poison(fail("secret stream decryption failed"))),
        }
    }
}

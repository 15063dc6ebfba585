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
//! cipher is the pure-Rust `crypto_secretstream` crate, which produces the same bytes as libsodium
//! (checked against the JavaScript reference in `core/tests/wire_crypto.rs`).
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

use crypto_secretstream::{Header, Key, PullStream, PushStream, Tag};
use rand::{CryptoRng, RngCore};

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

/// Hands a chosen header to `PushStream::init`, which draws the header from an RNG. Only used
/// with 24 bytes that themselves come from the OS RNG, or with a caller's fixed test header.
struct HeaderSource([u8; HEADER_BYTES]);

impl RngCore for HeaderSource {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // `Header::generate` asks for exactly the 24 header bytes once.
        for (d, s) in dest.iter_mut().zip(self.0.iter().cycle()) {
            *d = *s;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for HeaderSource {}

/// Both directions of an encrypted connection, after the handshake.
pub struct SecretStream {
    is_initiator: bool,
    handshake_hash: [u8; 64],
    push: PushStream,
    rx: [u8; 32],
    pull: Option<PullStream>,
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
        let (header, push) = PushStream::init(HeaderSource(header), &Key::from(handshake.tx));
        let mut payload = Vec::with_capacity(HEADER_PAYLOAD_BYTES);
        payload.extend_from_slice(&stream_id(
            &handshake.handshake_hash,
            handshake.is_initiator,
        ));
        payload.extend_from_slice(header.as_ref());
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
        self.pull = Some(PullStream::init(Header::from(header), &Key::from(self.rx)));
        Ok(())
    }

    /// Encrypts one message (`TAG_MESSAGE`, no additional data). The result is
    /// `plaintext.len() + ABYTES` bytes. An empty plaintext makes a keep-alive. Works before the
    /// peer's header arrived. A plaintext over [`MAX_PLAINTEXT_BYTES`] is an
    /// [`Error::FrameTooLarge`] and leaves the stream usable.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.check()?;
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(Error::FrameTooLarge {
                size: plaintext.len().saturating_add(ABYTES),
                max: MAX_CIPHERTEXT_BYTES,
            });
        }
        let mut buf = Vec::with_capacity(plaintext.len() + ABYTES);
        buf.extend_from_slice(plaintext);
        if self.push.push(&mut buf, &[], Tag::Message).is_err() {
            return Err(self.poison(fail("secret stream encryption failed")));
        }
        debug_assert_eq!(buf.len(), plaintext.len() + ABYTES);
        Ok(buf)
    }

    /// Decrypts the next message from the peer. Any tag is accepted, as the reference does. A
    /// ciphertext shorter than [`ABYTES`], tampered, replayed or out of order, or one that
    /// arrives before the peer's header, is an [`Error::Handshake`] that poisons the stream.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.check()?;
        let Some(pull) = self.pull.as_mut() else {
            return Err(self.poison(fail("secret stream message before the peer's header")));
        };
        if ciphertext.len() < ABYTES {
            return Err(self.poison(fail(format!(
                "secret stream message of {} bytes is shorter than {ABYTES}",
                ciphertext.len()
            ))));
        }
        let mut buf = ciphertext.to_vec();
        match pull.pull(&mut buf, &[]) {
            Ok(_tag) => Ok(buf),
            Err(_) => Err(self.poison(fail("secret stream decryption failed"))),
        }
    }
}

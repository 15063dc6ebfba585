//! The encrypted transport of one connection, sans IO: uint24le framing, the Noise XX handshake,
//! then the secret stream. Bytes from the socket go in with [`SecureTransport::receive`];
//! decrypted messages come out of [`SecureTransport::next_message`]; bytes for the socket come out
//! of [`SecureTransport::take_output`].

use std::collections::VecDeque;

use crate::crypto::KeyPair;
use crate::error::{Error, Result};
use crate::wire::framing::{FrameDecoder, encode_frame_into, push_frame_header};
use crate::wire::noise::{Handshake, HandshakeResult};
use crate::wire::secret_stream::{ABYTES, SecretStream};

enum Phase {
    Handshake(Box<Handshake>),
    Stream(Box<SecretStream>),
    Failed,
}

/// One side of an encrypted connection.
pub struct SecureTransport {
    decoder: FrameDecoder,
    phase: Phase,
    result: Option<HandshakeResult>,
    out: Vec<u8>,
    messages: VecDeque<Plaintext>,
    /// When this side last queued a message (a keep-alive goes out after a quiet while).
    last_sent: std::time::Instant,
}

/// A decrypted message: the frame it arrived in, decrypted where it lay (no copy).
#[derive(Debug)]
pub struct Plaintext {
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
}

impl std::ops::Deref for Plaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl std::fmt::Debug for SecureTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureTransport")
            .field("established", &self.is_established())
            .finish_non_exhaustive()
    }
}

impl SecureTransport {
    /// A transport for one side; the initiator's first handshake message is queued at once.
    /// `max_frame` bounds every incoming frame (a larger length prefix is a protocol error).
    pub fn new(is_initiator: bool, key_pair: &KeyPair, max_frame: usize) -> Result<Self> {
        let mut hs = Box::new(Handshake::new(is_initiator, key_pair));
        let mut t = SecureTransport {
            decoder: FrameDecoder::with_max_frame(max_frame),
            phase: Phase::Failed,
            result: None,
            out: Vec::new(),
            messages: VecDeque::new(),
            last_sent: std::time::Instant::now(),
        };
        if let Some(msg) = hs.start()? {
            encode_frame_into(&msg, &mut t.out)?;
        }
        t.phase = Phase::Handshake(hs);
        Ok(t)
    }

    /// True once both handshake and header exchange allow sending messages.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Stream(_))
    }

    /// The completed handshake (keys, handshake hash, the peer's static key).
    pub fn handshake(&self) -> Option<&HandshakeResult> {
        self.result.as_ref()
    }

    /// Feeds bytes read from the socket.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<()> {
        if matches!(self.phase, Phase::Failed) {
            return Err(Error::Protocol("the connection already failed".into()));
        }
        let r = self.receive_inner(bytes);
        if r.is_err() {
            self.phase = Phase::Failed;
        }
        r
    }

    fn receive_inner(&mut self, bytes: &[u8]) -> Result<()> {
        self.decoder.push(bytes)?;
        while let Some(frame) = self.decoder.next_frame() {
            match &mut self.phase {
                Phase::Handshake(hs) => {
                    if let Some(reply) = hs.recv(&frame)? {
                        encode_frame_into(&reply, &mut self.out)?;
                    }
                    if hs.is_done() {
                        self.start_stream()?;
                    }
                }
                Phase::Stream(stream) => {
                    if !stream.header_received() {
                        stream.recv_header(&frame)?;
                        continue;
                    }
                    let mut buf = frame;
                    let range = stream.decrypt_in_place(&mut buf)?;
                    // empty messages are keep-alives
                    if !range.is_empty() {
                        self.messages.push_back(Plaintext { buf, range });
                    }
                }
                Phase::Failed => unreachable!("checked on entry"),
            }
        }
        // The initiator finishes the handshake when it sends message 3.
        if let Phase::Handshake(hs) = &self.phase
            && hs.is_done()
        {
            self.start_stream()?;
        }
        Ok(())
    }

    /// After the handshake: queue this side's secret-stream header and switch to the stream.
    fn start_stream(&mut self) -> Result<()> {
        let Phase::Handshake(hs) = &self.phase else {
            return Ok(());
        };
        let result = hs
            .result()
            .cloned()
            .ok_or_else(|| Error::Handshake("no handshake result".into()))?;
        let (stream, header) = SecretStream::new(&result);
        encode_frame_into(&header, &mut self.out)?;
        self.result = Some(result);
        self.phase = Phase::Stream(Box::new(stream));
        Ok(())
    }

    /// The next decrypted message, if any.
    pub fn next_message(&mut self) -> Option<Plaintext> {
        self.messages.pop_front()
    }

    /// True when decrypted messages wait for [`SecureTransport::next_message`].
    pub fn has_messages(&self) -> bool {
        !self.messages.is_empty()
    }

    /// Encrypts and queues a message. Fails before the handshake completes.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<()> {
        match &mut self.phase {
            Phase::Stream(stream) => {
                // the frame's length prefix, then the ciphertext encrypted where it lands
                let start = self.out.len();
                push_frame_header(plaintext.len().saturating_add(ABYTES), &mut self.out)?;
                if let Err(e) = stream.encrypt_into(plaintext, &mut self.out) {
                    self.out.truncate(start);
                    return Err(e);
                }
                self.last_sent = std::time::Instant::now();
                Ok(())
            }
            _ => Err(Error::Protocol(
                "cannot send before the handshake completes".into(),
            )),
        }
    }

    /// Queues a keep-alive (an empty message, which the peer drops) when nothing was sent for
    /// `idle`, as the reference does every 5 s: a peer that times out quiet streams keeps this
    /// one. Returns whether one was queued; nothing before the stream is established.
    pub fn keep_alive(&mut self, idle: std::time::Duration) -> Result<bool> {
        if !self.is_established() || self.last_sent.elapsed() < idle {
            return Ok(false);
        }
        self.send(&[])?;
        Ok(true)
    }

    /// Takes the bytes to write to the socket.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// True when bytes are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pump(a: &mut SecureTransport, b: &mut SecureTransport) {
        for _ in 0..8 {
            let x = a.take_output();
            if !x.is_empty() {
                b.receive(&x).unwrap();
            }
            let y = b.take_output();
            if !y.is_empty() {
                a.receive(&y).unwrap();
            }
        }
    }

    #[test]
    fn two_sides_connect_and_exchange_messages() {
        let mut a = SecureTransport::new(true, &KeyPair::from_seed(&[1; 32]), 1 << 20).unwrap();
        let mut b = SecureTransport::new(false, &KeyPair::from_seed(&[2; 32]), 1 << 20).unwrap();
        pump(&mut a, &mut b);
        assert!(a.is_established() && b.is_established());
        assert_eq!(
            a.handshake().unwrap().handshake_hash,
            b.handshake().unwrap().handshake_hash
        );
        assert_eq!(
            a.handshake().unwrap().remote_public_key,
            KeyPair::from_seed(&[2; 32]).public_key()
        );
        a.send(b"hello").unwrap();
        a.send(b"").unwrap();
        b.send(&vec![7u8; 100_000]).unwrap();
        pump(&mut a, &mut b);
        assert_eq!(&*b.next_message().unwrap(), b"hello");
        assert!(b.next_message().is_none(), "keep-alives are dropped");
        assert_eq!(a.next_message().unwrap().len(), 100_000);
    }

    #[test]
    fn a_keep_alive_goes_out_only_after_a_quiet_while() {
        let mut a = SecureTransport::new(true, &KeyPair::from_seed(&[1; 32]), 1 << 20).unwrap();
        let mut b = SecureTransport::new(false, &KeyPair::from_seed(&[2; 32]), 1 << 20).unwrap();
        assert!(
            !a.keep_alive(Duration::ZERO).unwrap(),
            "not before the stream"
        );
        pump(&mut a, &mut b);
        // just sent its header: an hour is not up
        let hour = Duration::from_secs(3600);
        assert!(!a.keep_alive(hour).unwrap());
        assert!(a.take_output().is_empty());
        // a zero idle time is always up: one empty message, 3 + 17 bytes
        assert!(a.keep_alive(Duration::ZERO).unwrap());
        let out = a.take_output();
        assert_eq!(out.len(), 3 + ABYTES);
        assert_eq!(&out[..3], &[ABYTES as u8, 0, 0]);
        b.receive(&out).unwrap();
        assert!(b.next_message().is_none(), "dropped by the peer");
        // a message resets the clock
        a.send(b"x").unwrap();
        assert!(!a.keep_alive(hour).unwrap());
        pump(&mut a, &mut b);
        assert_eq!(&*b.next_message().unwrap(), b"x");
    }

    #[test]
    fn garbage_and_oversize_frames_fail_the_connection() {
        let mut a = SecureTransport::new(false, &KeyPair::from_seed(&[1; 32]), 1024).unwrap();
        assert!(matches!(
            a.receive(&[0xff, 0xff, 0x00]),
            Err(Error::FrameTooLarge { .. })
        ));
        assert!(a.receive(b"x").is_err());
        let mut b = SecureTransport::new(false, &KeyPair::from_seed(&[1; 32]), 1024).unwrap();
        assert!(b.receive(&[5, 0, 0, 1, 2, 3, 4, 5]).is_err());
    }
}

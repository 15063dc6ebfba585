//! uint24le length-prefixed frames: the outermost layer of the hypercore byte stream.
//!
//! Every Noise handshake message, the secret-stream header and every encrypted message travel as
//! `uint24le(len) || bytes`. [`encode_frame`] writes one frame; [`FrameDecoder`] splits a byte stream
//! that arrives in arbitrary chunks back into frames.

use std::collections::VecDeque;

use crate::error::{Error, Result};

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 3;

/// The largest payload a uint24le prefix can announce (2²⁴−1 bytes), which is also the largest
/// frame the reference (`@hyperswarm/secret-stream`, `MAX_ATOMIC_WRITE`) sends.
pub const MAX_FRAME: usize = (1 << 24) - 1;

/// `uint24le(payload.len()) || payload`. Fails with [`Error::FrameTooLarge`] past [`MAX_FRAME`].
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_frame_into(payload, &mut out)?;
    Ok(out)
}

/// Appends `uint24le(payload.len()) || payload` to `out` (unchanged on error).
pub fn encode_frame_into(payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    push_frame_header(payload.len(), out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends the length prefix of a `len`-byte frame to `out`, for a caller that writes the payload
/// after it itself (unchanged on error).
pub fn push_frame_header(len: usize, out: &mut Vec<u8>) -> Result<()> {
    if len > MAX_FRAME {
        return Err(Error::FrameTooLarge {
            size: len,
            max: MAX_FRAME,
        });
    }
    out.extend_from_slice(&(len as u32).to_le_bytes()[..HEADER_LEN]);
    Ok(())
}

/// Frames up to this size get their whole buffer when their length arrives.
const EAGER_RESERVE: usize = 1 << 20;

/// Splits a byte stream into frames.
///
/// Feed it whatever chunks the transport delivers with [`push`](Self::push); take the complete frames
/// in order with [`next_frame`](Self::next_frame). A frame may span many chunks and a chunk may hold
/// many frames. A length prefix over the limit is an error as soon as its third byte arrives, before
/// any of its payload is buffered; after that error the decoder stays failed. Zero-length frames are
/// yielded as empty vectors (the layer above decides what they mean).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Payload length of the frame being read, once its header is complete.
    body_len: Option<usize>,
    body: Vec<u8>,
    ready: VecDeque<Vec<u8>>,
    failed: Option<usize>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to the protocol maximum, [`MAX_FRAME`].
    pub fn new() -> Self {
        Self::with_max_frame(MAX_FRAME)
    }

    /// A decoder accepting payloads of at most `max_frame` bytes (capped at [`MAX_FRAME`]).
    pub fn with_max_frame(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame: max_frame.min(MAX_FRAME),
            header: [0; HEADER_LEN],
            header_len: 0,
            body_len: None,
            body: Vec::new(),
            ready: VecDeque::new(),
            failed: None,
        }
    }

    /// The largest payload accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Consumes a chunk of the stream. Complete frames become available from
    /// [`next_frame`](Self::next_frame), including those completed before an error in this chunk.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<()> {
        if let Some(size) = self.failed {
            return Err(self.too_large(size));
        }
        while !chunk.is_empty() {
            match self.body_len {
                None => {
                    let take = (HEADER_LEN - self.header_len).min(chunk.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&chunk[..take]);
                    self.header_len += take;
                    chunk = &chunk[take..];
                    if self.header_len < HEADER_LEN {
                        break;
                    }
                    let size =
                        u32::from_le_bytes([self.header[0], self.header[1], self.header[2], 0])
                            as usize;
                    self.header_len = 0;
                    if size > self.max_frame {
                        self.failed = Some(size);
                        return Err(self.too_large(size));
                    }
                    if size == 0 {
                        self.ready.push_back(Vec::new());
                    } else {
                        self.body_len = Some(size);
                        // A frame up to EAGER_RESERVE is reserved whole (growing it chunk by
                        // chunk copied it almost twice over); a larger one grows from there, so a
                        // peer announcing a big frame and then stalling costs at most
                        // EAGER_RESERVE or twice what it has sent.
                        self.body = Vec::with_capacity(size.min(chunk.len().max(EAGER_RESERVE)));
                    }
                }
                Some(size) => {
                    let take = (size - self.body.len()).min(chunk.len());
                    let needed = self.body.len() + take;
                    if needed > self.body.capacity() {
                        // Grow geometrically, but never past the announced size.
                        let target = (self.body.capacity() * 2).clamp(needed, size);
                        self.body.reserve_exact(target - self.body.len());
                    }
                    self.body.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if self.body.len() == size {
                        self.ready.push_back(std::mem::take(&mut self.body));
                        self.body_len = None;
                    }
                }
            }
        }
        Ok(())
    }

    /// The next complete frame's payload, in stream order.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// Pushes `chunk` and returns every frame now complete.
    pub fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.push(chunk)?;
        Ok(self.ready.drain(..).collect())
    }

    /// Bytes of an incomplete frame held (header and payload so far).
    pub fn buffered(&self) -> usize {
        self.header_len + self.body.len()
    }

    /// True when no partial frame is held and no complete frame awaits (a clean stream boundary).
    pub fn is_idle(&self) -> bool {
        self.header_len == 0 && self.body_len.is_none() && self.ready.is_empty()
    }

    fn too_large(&self, size: usize) -> Error {
        Error::FrameTooLarge {
            size,
            max: self.max_frame,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_little_endian_length() {
        assert_eq!(encode_frame(b"").unwrap(), vec![0, 0, 0]);
        assert_eq!(encode_frame(b"ab").unwrap(), vec![2, 0, 0, b'a', b'b']);
        let big = vec![7u8; 0x01_02_03];
        let f = encode_frame(&big).unwrap();
        assert_eq!(&f[..3], &[0x03, 0x02, 0x01]);
        assert_eq!(f.len(), 3 + big.len());
    }

    #[test]
    fn rejects_oversize_payload_on_encode() {
        let big = vec![0u8; MAX_FRAME + 1];
        assert!(matches!(
            encode_frame(&big),
            Err(Error::FrameTooLarge { size, max }) if size == MAX_FRAME + 1 && max == MAX_FRAME
        ));
        assert_eq!(
            encode_frame(&big[..MAX_FRAME]).unwrap().len(),
            MAX_FRAME + 3
        );
    }

    #[test]
    fn splits_and_joins() {
        let mut stream = Vec::new();
        for p in [&b"hello"[..], b"", b"x", &[9u8; 300]] {
            encode_frame_into(p, &mut stream).unwrap();
        }
        // Whole stream at once.
        let mut d = FrameDecoder::new();
        let frames = d.decode(&stream).unwrap();
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], b"hello");
        assert!(frames[1].is_empty());
        assert_eq!(frames[3], vec![9u8; 300]);
        assert!(d.is_idle());
        // One byte at a time.
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &stream {
            got.extend(d.decode(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn buffer_never_outgrows_the_frame() {
        let stream = encode_frame(&[1u8; 1000]).unwrap();
        let mut d = FrameDecoder::new();
        for c in stream.chunks(7) {
            d.push(c).unwrap();
        }
        let f = d.next_frame().unwrap();
        assert_eq!(f, vec![1u8; 1000]);
        assert!(f.capacity() <= 1000);
    }

    #[test]
    fn a_large_frame_grows_from_the_eager_reserve_and_within_twice_what_arrived() {
        let size = 5 << 20;
        let stream = encode_frame(&vec![3u8; size]).unwrap();
        let mut d = FrameDecoder::new();
        let mut sent = 0;
        for c in stream.chunks(64 << 10) {
            d.push(c).unwrap();
            sent += c.len();
            if d.body_len.is_some() {
                assert!(
                    d.body.capacity() <= EAGER_RESERVE.max(2 * sent),
                    "{} reserved after {sent} bytes",
                    d.body.capacity()
                );
            }
        }
        let f = d.next_frame().unwrap();
        assert_eq!(f.len(), size);
        assert!(f.capacity() <= size);
    }

    #[test]
    fn oversize_prefix_fails_before_payload() {
        let mut d = FrameDecoder::with_max_frame(10);
        d.push(&[5, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        d.push(&[11, 0]).unwrap();
        assert!(matches!(
            d.push(&[0]),
            Err(Error::FrameTooLarge { size: 11, max: 10 })
        ));
        // The frame before the bad prefix is still delivered, nothing of the bad one is buffered.
        assert_eq!(d.next_frame().unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(d.buffered(), 0);
        // The decoder stays failed.
        assert!(d.push(&[0, 0, 0]).is_err());
    }
}

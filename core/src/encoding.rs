//! compact-encoding primitives, as the JavaScript `compact-encoding` package lays them out.
//!
//! Every hypercore message, manifest and signature is built from these. Decoding never panics:
//! a short or malformed buffer gives [`DecodeError`].

use std::fmt;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was being decoded when the input ran out or was invalid.
    pub what: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed encoding: {}", self.what)
    }
}

impl std::error::Error for DecodeError {}

/// Upper bound on array lengths accepted by the decoder (the reference refuses more than 0x100000).
pub const MAX_ARRAY: u64 = 0x100000;

/// Appends encodings to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder with `n` bytes of capacity.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// `uint`: a variable-length unsigned integer.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        if n <= 0xfc {
            self.buf.push(n as u8);
        } else if n <= 0xffff {
            self.buf.push(0xfd);
            self.buf.extend_from_slice(&(n as u16).to_le_bytes());
        } else if n <= 0xffff_ffff {
            self.buf.push(0xfe);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        } else {
            self.buf.push(0xff);
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
        self
    }

    /// `uint64`: fixed 8 bytes little-endian.
    pub fn u64_le(&mut self, n: u64) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// `uint32`: fixed 4 bytes little-endian.
    pub fn u32_le(&mut self, n: u32) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// One raw byte.
    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.buf.push(b);
        self
    }

    /// `fixed32` / `fixed64` / `raw`: bytes with no length.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// `buffer`: a length-prefixed byte string.
    pub fn buffer(&mut self, b: &[u8]) -> &mut Self {
        self.uint(b.len() as u64);
        self.raw(b)
    }

    /// `optionalBuffer`: like `buffer`, with an empty/absent value written as a zero length.
    pub fn optional_buffer(&mut self, b: Option<&[u8]>) -> &mut Self {
        match b {
            Some(b) if !b.is_empty() => self.buffer(b),
            _ => self.uint(0),
        }
    }

    /// `string`: a length-prefixed UTF-8 string.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.buffer(s.as_bytes())
    }
}

/// Reads encodings from a byte slice.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was read.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError { what })
        }
    }

    /// `count` raw bytes.
    pub fn take(&mut self, count: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < count {
            return Err(DecodeError { what });
        }
        let out = &self.buf[self.pos..self.pos + count];
        self.pos += count;
        Ok(out)
    }

    /// One raw byte.
    pub fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// `uint`.
    pub fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let first = self.byte(what)?;
        Ok(match first {
            0xfd => u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")) as u64,
            0xfe => u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")) as u64,
            0xff => u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")),
            n => n as u64,
        })
    }

    /// `uint` that must fit a `usize` and stay under `max`.
    pub fn len(&mut self, max: u64, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.uint(what)?;
        if n > max {
            return Err(DecodeError { what });
        }
        usize::try_from(n).map_err(|_| DecodeError { what })
    }

    /// Fixed 8-byte little-endian integer.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    /// Fixed 4-byte little-endian integer.
    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    /// `fixed32`.
    pub fn fixed32(&mut self, what: &'static str) -> Result<[u8; 32], DecodeError> {
        Ok(self.take(32, what)?.try_into().expect("32 bytes"))
    }

    /// `fixed64`.
    pub fn fixed64(&mut self, what: &'static str) -> Result<[u8; 64], DecodeError> {
        Ok(self.take(64, what)?.try_into().expect("64 bytes"))
    }

    /// `buffer`.
    pub fn buffer(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.len(u64::MAX, what)?;
        self.take(n, what)
    }

    /// `optionalBuffer` (a zero length means none).
    pub fn optional_buffer(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
        let b = self.buffer(what)?;
        Ok(if b.is_empty() { None } else { Some(b) })
    }

    /// `string`.
    pub fn string(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.buffer(what)?).map_err(|_| DecodeError { what })
    }

    /// `raw`: everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_boundaries_round_trip() {
        for n in [
            0u64,
            0xfc,
            0xfd,
            0xffff,
            0x10000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let mut e = Encoder::new();
            e.uint(n);
            let bytes = e.finish();
            let expected_len = match n {
                0..=0xfc => 1,
                0xfd..=0xffff => 3,
                0x10000..=0xffff_ffff => 5,
                _ => 9,
            };
            assert_eq!(bytes.len(), expected_len, "{n}");
            let mut d = Decoder::new(&bytes);
            assert_eq!(d.uint("n").unwrap(), n);
            assert!(d.is_empty());
        }
    }

    #[test]
    fn short_input_is_an_error() {
        let mut d = Decoder::new(&[0xfe, 1, 2]);
        assert_eq!(d.uint("x"), Err(DecodeError { what: "x" }));
        let mut d = Decoder::new(&[5, 1, 2]);
        assert!(d.buffer("buf").is_err());
    }
}

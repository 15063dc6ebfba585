//! The blob id, and its JSON form as Hyperdrive 13 stores it inside a file entry.

use std::fmt;

use crate::encoding::DecodeError;
use crate::error::{Error, Result};

/// Where a blob lives in the blobs log (hyperblobs' `{blockOffset, byteOffset, blockLength,
/// byteLength[, blockMap]}`).
///
/// For a plain blob the data is blocks `block_offset .. block_offset + block_length`, bytes
/// `byte_offset .. byte_offset + byte_length` of the log. For a block-mapped blob (`block_map`) the
/// id covers the **map** blocks only: `byte_length` is the size of the map, and the file's bytes are
/// the blocks the map lists (see [`BlockMap`](super::BlockMap)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlobId {
    /// First block.
    pub block_offset: u64,
    /// Number of blocks.
    pub block_length: u64,
    /// Log byte offset of the first block.
    pub byte_offset: u64,
    /// Number of bytes.
    pub byte_length: u64,
    /// The blocks hold a block map rather than the data itself (hyperblobs ≥ 2.9).
    pub block_map: bool,
}

/// JavaScript's `Number.MAX_SAFE_INTEGER`: the largest integer a JSON id can carry exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

impl BlobId {
    /// The id of an empty blob written when the log had `length` blocks and `byte_length` bytes.
    pub fn empty(length: u64, byte_length: u64) -> BlobId {
        BlobId {
            block_offset: length,
            block_length: 0,
            byte_offset: byte_length,
            byte_length: 0,
            block_map: false,
        }
    }

    /// One past the last block of the id (for a block map: of the map).
    pub fn block_end(&self) -> u64 {
        self.block_offset.saturating_add(self.block_length)
    }

    /// The JSON Hyperdrive stores: keys in hyperblobs' order (`blockOffset`, `byteOffset`,
    /// `blockLength`, `byteLength`, then `"blockMap":true` for block maps only), no spaces, byte for
    /// byte what `JSON.stringify(id)` gives.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"blockOffset\":{},\"byteOffset\":{},\"blockLength\":{},\"byteLength\":{}{}}}",
            self.block_offset,
            self.byte_offset,
            self.block_length,
            self.byte_length,
            if self.block_map {
                ",\"blockMap\":true"
            } else {
                ""
            }
        )
    }

    /// Parses an id from JSON: any key order, extra keys ignored, whitespace allowed. The four
    /// numbers are required non-negative integers up to 2^53 - 1; `blockMap` may be `true`, `false`
    /// or `null` (absent means false).
    pub fn from_json(text: &str) -> Result<BlobId> {
        let mut p = Json {
            b: text.as_bytes(),
            i: 0,
        };
        let id = p.id()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(bad("trailing bytes after the blob id"));
        }
        Ok(id)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

fn bad(what: &'static str) -> Error {
    Error::Decode(DecodeError { what })
}

/// Nesting limit when skipping unknown values.
const MAX_DEPTH: usize = 64;

/// A minimal JSON reader: enough for a flat object of numbers and booleans, skipping anything
/// else it meets.
struct Json<'a> {
    b: &'a [u8],
    i: usize,
}

impl Json<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8, what: &'static str) -> Result<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(bad(what))
        }
    }

    fn id(&mut self) -> Result<BlobId> {
        const NOT_OBJECT: &str = "blob id: expected a JSON object";
        self.eat(b'{', NOT_OBJECT)?;
        let mut fields: [Option<u64>; 4] = [None; 4];
        let mut block_map = false;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                let key = self.string()?;
                self.eat(b':', NOT_OBJECT)?;
                self.ws();
                let slot = match key.as_str() {
                    "blockOffset" => Some(0),
                    "byteOffset" => Some(1),
                    "blockLength" => Some(2),
                    "byteLength" => Some(3),
                    _ => None,
                };
                match (slot, key.as_str()) {
                    (Some(k), _) => fields[k] = Some(self.uint()?),
                    (None, "blockMap") => block_map = self.flag()?,
                    _ => self.skip(0)?,
                }
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(bad(NOT_OBJECT)),
                }
            }
        }
        let [
            Some(block_offset),
            Some(byte_offset),
            Some(block_length),
            Some(byte_length),
        ] = fields
        else {
            return Err(bad(
                "blob id: blockOffset, byteOffset, blockLength and byteLength are required",
            ));
        };
        Ok(BlobId {
            block_offset,
            block_length,
            byte_offset,
            byte_length,
            block_map,
        })
    }

    fn uint(&mut self) -> Result<u64> {
        const WHAT: &str = "blob id: a field is not an integer from 0 to 2^53 - 1";
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .filter(|&n| n <= MAX_SAFE_INTEGER)
                .ok_or_else(|| bad(WHAT))?;
            self.i += 1;
        }
        if self.i == start || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(bad(WHAT));
        }
        Ok(n)
    }

    fn flag(&mut self) -> Result<bool> {
        for (word, value) in [("true", true), ("false", false), ("null", false)] {
            if self.b[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(bad("blob id: blockMap is not a boolean"))
    }

    fn string(&mut self) -> Result<String> {
        const WHAT: &str = "blob id: malformed JSON string";
        if self.peek() != Some(b'"') {
            return Err(bad(WHAT));
        }
        self.i += 1;
        let mut units: Vec<u16> = Vec::new();
        let mut out = String::new();
        loop {
            let c = self.peek().ok_or_else(|| bad(WHAT))?;
            match c {
                b'"' => {
                    self.i += 1;
                    flush_utf16(&mut units, &mut out);
                    return Ok(out);
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1).ok_or_else(|| bad(WHAT))?;
                    self.i += 2;
                    if e == b'u' {
                        let hex = self.b.get(self.i..self.i + 4).ok_or_else(|| bad(WHAT))?;
                        let hex = std::str::from_utf8(hex).map_err(|_| bad(WHAT))?;
                        units.push(u16::from_str_radix(hex, 16).map_err(|_| bad(WHAT))?);
                        self.i += 4;
                        continue;
                    }
                    flush_utf16(&mut units, &mut out);
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return Err(bad(WHAT)),
                    });
                }
                c if c < 0x20 => return Err(bad(WHAT)),
                _ => {
                    flush_utf16(&mut units, &mut out);
                    // Copy one UTF-8 sequence (the input is a &str, so it is well formed).
                    let len = match c {
                        0x00..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    let s = self.b.get(self.i..self.i + len).ok_or_else(|| bad(WHAT))?;
                    out.push_str(std::str::from_utf8(s).map_err(|_| bad(WHAT))?);
                    self.i += len;
                }
            }
        }
    }

    /// Skips one value of any type.
    fn skip(&mut self, depth: usize) -> Result<()> {
        const WHAT: &str = "blob id: malformed JSON value";
        if depth > MAX_DEPTH {
            return Err(bad("blob id: JSON nested too deeply"));
        }
        self.ws();
        match self.peek().ok_or_else(|| bad(WHAT))? {
            b'"' => self.string().map(drop),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.ws();
                        self.string()?;
                        self.eat(b':', WHAT)?;
                    }
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(bad(WHAT)),
                    }
                }
            }
            b't' | b'f' | b'n' => self.flag().map(drop).map_err(|_| bad(WHAT)),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[start..self.i])
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(drop)
                    .ok_or_else(|| bad(WHAT))
            }
            _ => Err(bad(WHAT)),
        }
    }
}

fn flush_utf16(units: &mut Vec<u16>, out: &mut String) {
    if !units.is_empty() {
        out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{fffd}')));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_in_hyperblobs_key_order() {
        let plain = BlobId {
            block_offset: 7,
            block_length: 2,
            byte_offset: 150014,
            byte_length: 100003,
            block_map: false,
        };
        let text = r#"{"blockOffset":7,"byteOffset":150014,"blockLength":2,"byteLength":100003}"#;
        assert_eq!(plain.to_json(), text);
        assert_eq!(BlobId::from_json(text).unwrap(), plain);
        let map = BlobId {
            block_map: true,
            ..plain
        };
        let text = r#"{"blockOffset":7,"byteOffset":150014,"blockLength":2,"byteLength":100003,"blockMap":true}"#;
        assert_eq!(map.to_json(), text);
        assert_eq!(map.to_string(), text);
        assert_eq!(BlobId::from_json(text).unwrap(), map);
    }

    #[test]
    fn json_accepts_any_order_and_extra_fields() {
        let text = r#" { "byteLength" : 4, "x\u00e9\"": {"a":[1,2.5e3,{"b":null}],"c":"\\}"},
            "blockMap": false, "blockLength":1,"byteOffset":150000,"blockOffset":3, "z": -1 } "#;
        let id = BlobId::from_json(text).unwrap();
        assert_eq!(
            id,
            BlobId {
                block_offset: 3,
                block_length: 1,
                byte_offset: 150000,
                byte_length: 4,
                block_map: false
            }
        );
        assert!(
            BlobId::from_json(
                r#"{"blockOffset":3,"byteOffset":0,"blockLength":1,"byteLength":4,"blockMap":null}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn json_rejects_bad_ids() {
        for text in [
            "",
            "null",
            "[]",
            r#"{"blockOffset":1,"byteOffset":0,"blockLength":1}"#,
            r#"{"blockOffset":-1,"byteOffset":0,"blockLength":1,"byteLength":1}"#,
            r#"{"blockOffset":1.5,"byteOffset":0,"blockLength":1,"byteLength":1}"#,
            r#"{"blockOffset":1e3,"byteOffset":0,"blockLength":1,"byteLength":1}"#,
            r#"{"blockOffset":9007199254740992,"byteOffset":0,"blockLength":1,"byteLength":1}"#,
            r#"{"blockOffset":"1","byteOffset":0,"blockLength":1,"byteLength":1}"#,
            r#"{"blockOffset":1,"byteOffset":0,"blockLength":1,"byteLength":1,"blockMap":1}"#,
            r#"{"blockOffset":1,"byteOffset":0,"blockLength":1,"byteLength":1} x"#,
            r#"{"blockOffset":1,"byteOffset":0,"blockLength":1,"byteLength":1"#,
            r#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        ] {
            assert!(
                matches!(BlobId::from_json(text), Err(Error::Decode(_))),
                "{text}"
            );
        }
        let max =
            r#"{"blockOffset":9007199254740991,"byteOffset":0,"blockLength":0,"byteLength":0}"#;
        assert_eq!(
            BlobId::from_json(max).unwrap().block_offset,
            MAX_SAFE_INTEGER
        );
    }
}

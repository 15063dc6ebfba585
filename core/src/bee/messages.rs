//! The protobuf messages of hyperbee 2 (`schema.proto`), encoded exactly as the reference's
//! generated code (`protocol-buffers-encodings`) lays them out.
//!
//! ```text
//! message Header    { required string protocol = 1; optional Metadata metadata = 2; }
//! message Metadata  { optional bytes contentFeed = 1; optional bytes userData = 2; }
//! message Node      { required bytes index = 1; required bytes key = 2; optional bytes value = 3; }
//! message YoloIndex { repeated Level levels = 1; }
//! message Level     { repeated uint64 keys = 1 [packed]; repeated uint64 children = 2 [packed]; }
//! ```
//!
//! The encoder writes fields in tag order and omits absent optional fields and empty packed
//! fields. The decoders accept any field order, skip unknown fields and never panic.

use crate::encoding::DecodeError;

type Res<T> = std::result::Result<T, DecodeError>;

fn err(what: &'static str) -> DecodeError {
    DecodeError { what }
}

/// Appends `n` as an unsigned LEB128 varint.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends a length-delimited field (wire type 2).
fn put_bytes(buf: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    buf.push(tag << 3 | 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// A protobuf reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Res<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(err("truncated varint"))?;
            self.pos += 1;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(err("varint longer than 10 bytes"))
    }

    fn bytes(&mut self) -> Res<&'a [u8]> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or(err("length-delimited field past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Reads a field key: `(tag, wire type)`.
    fn key(&mut self) -> Res<(u64, u8)> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> Res<()> {
        let n = match wire {
            0 => return self.varint().map(drop),
            1 => 8,
            2 => return self.bytes().map(drop),
            5 => 4,
            _ => return Err(err("unsupported protobuf wire type")),
        };
        if self.buf.len() - self.pos < n {
            return Err(err("truncated fixed-size field"));
        }
        self.pos += n;
        Ok(())
    }

    /// A repeated uint64 field: packed (wire type 2) or one unpacked value (wire type 0).
    fn uints(&mut self, wire: u8, out: &mut Vec<u64>) -> Res<()> {
        match wire {
            0 => out.push(self.varint()?),
            2 => {
                let mut packed = Reader::new(self.bytes()?);
                while !packed.done() {
                    out.push(packed.varint()?);
                }
            }
            _ => return Err(err("repeated uint64 field with a wrong wire type")),
        }
        Ok(())
    }

    fn bytes_field(&mut self, wire: u8) -> Res<&'a [u8]> {
        if wire != 2 {
            return Err(err("bytes field with a wrong wire type"));
        }
        self.bytes()
    }
}

/// Optional data in the header of a bee. Hyperdrive 13 writes an empty one (`contentFeed` absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `contentFeed`: the key of a content log (hyperdrive 10 wrote its blobs key here).
    pub content_feed: Option<Vec<u8>>,
    /// `userData`: application bytes.
    pub user_data: Option<Vec<u8>>,
}

/// Block 0 of a bee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Always `"hyperbee"` for a bee.
    pub protocol: String,
    /// Optional metadata; `None` writes no field at all.
    pub metadata: Option<Metadata>,
}

impl Header {
    /// The header a bee writes: protocol `"hyperbee"` and the given metadata.
    pub fn hyperbee(metadata: Option<Metadata>) -> Self {
        Header {
            protocol: "hyperbee".into(),
            metadata,
        }
    }

    /// The protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16);
        put_bytes(&mut buf, 1, self.protocol.as_bytes());
        if let Some(m) = &self.metadata {
            let mut inner = Vec::new();
            if let Some(c) = &m.content_feed {
                put_bytes(&mut inner, 1, c);
            }
            if let Some(u) = &m.user_data {
                put_bytes(&mut inner, 2, u);
            }
            put_bytes(&mut buf, 2, &inner);
        }
        buf
    }

    /// Decodes a header; `protocol` is required.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let (mut protocol, mut metadata) = (None, None);
        while !r.done() {
            match r.key()? {
                (1, w) => protocol = Some(String::from_utf8_lossy(r.bytes_field(w)?).into_owned()),
                (2, w) => {
                    let mut m = Reader::new(r.bytes_field(w)?);
                    let mut meta = Metadata::default();
                    while !m.done() {
                        match m.key()? {
                            (1, w) => meta.content_feed = Some(m.bytes_field(w)?.to_vec()),
                            (2, w) => meta.user_data = Some(m.bytes_field(w)?.to_vec()),
                            (_, w) => m.skip(w)?,
                        }
                    }
                    metadata = Some(meta);
                }
                (_, w) => r.skip(w)?,
            }
        }
        Ok(Header {
            protocol: protocol.ok_or(err("bee header without a protocol"))?,
            metadata,
        })
    }
}

/// One B-tree node inside a block's index: keys and children as block references.
///
/// `keys[i]` is the seq of the block holding that key and value; `children` are
/// `(seq, offset)` pairs naming level `offset` of block `seq`. A node has no children (leaf) or
/// `keys.len() + 1` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Level {
    /// Seqs of the blocks holding the keys, in key order.
    pub keys: Vec<u64>,
    /// `(seq, offset)` of each child.
    pub children: Vec<(u64, u64)>,
}

impl Level {
    fn encoded_len(&self) -> usize {
        let k: usize = self.keys.iter().map(|&s| varint_len(s)).sum();
        let c: usize = self
            .children
            .iter()
            .map(|&(s, o)| varint_len(s) + varint_len(o))
            .sum();
        let field = |n: usize| {
            if n == 0 {
                0
            } else {
                1 + varint_len(n as u64) + n
            }
        };
        field(k) + field(c)
    }

    fn encode_into(&self, buf: &mut Vec<u8>) {
        let k: usize = self.keys.iter().map(|&s| varint_len(s)).sum();
        if k > 0 {
            buf.push(1 << 3 | 2);
            put_varint(buf, k as u64);
            for &s in &self.keys {
                put_varint(buf, s);
            }
        }
        let c: usize = self
            .children
            .iter()
            .map(|&(s, o)| varint_len(s) + varint_len(o))
            .sum();
        if c > 0 {
            buf.push(2 << 3 | 2);
            put_varint(buf, c as u64);
            for &(s, o) in &self.children {
                put_varint(buf, s);
                put_varint(buf, o);
            }
        }
    }

    fn decode(buf: &[u8]) -> Res<Self> {
        let mut r = Reader::new(buf);
        let (mut keys, mut flat) = (Vec::new(), Vec::new());
        while !r.done() {
            match r.key()? {
                (1, w) => r.uints(w, &mut keys)?,
                (2, w) => r.uints(w, &mut flat)?,
                (_, w) => r.skip(w)?,
            }
        }
        if flat.len() % 2 != 0 {
            return Err(err("a level with an odd number of child numbers"));
        }
        let children = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        Ok(Level { keys, children })
    }
}

/// Encodes a `YoloIndex` (the levels of one block).
pub fn encode_index(levels: &[Level]) -> Vec<u8> {
    let mut buf = Vec::new();
    for l in levels {
        buf.push(1 << 3 | 2);
        put_varint(&mut buf, l.encoded_len() as u64);
        l.encode_into(&mut buf);
    }
    buf
}

/// Decodes a `YoloIndex`.
pub fn decode_index(buf: &[u8]) -> Result<Vec<Level>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut levels = Vec::new();
    while !r.done() {
        match r.key()? {
            (1, w) => levels.push(Level::decode(r.bytes_field(w)?)?),
            (_, w) => r.skip(w)?,
        }
    }
    Ok(levels)
}

/// A bee block after the header: a key, an optional value and the tree index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBlock {
    /// The tree nodes this block (re)writes; level 0 is the root when this block ends a write.
    pub levels: Vec<Level>,
    /// The key written or deleted.
    pub key: Vec<u8>,
    /// The value; `None` for a deletion (or a put without a value).
    pub value: Option<Vec<u8>>,
}

impl NodeBlock {
    /// The protobuf bytes: `index`, `key`, then `value` when present.
    pub fn encode(&self) -> Vec<u8> {
        encode_node(
            &encode_index(&self.levels),
            &self.key,
            self.value.as_deref(),
        )
    }

    /// Decodes a block; `index` and `key` are required.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let (mut index, mut key, mut value) = (None, None, None);
        while !r.done() {
            match r.key()? {
                (1, w) => index = Some(r.bytes_field(w)?),
                (2, w) => key = Some(r.bytes_field(w)?),
                (3, w) => value = Some(r.bytes_field(w)?.to_vec()),
                (_, w) => r.skip(w)?,
            }
        }
        let index = index.ok_or(err("bee node without an index"))?;
        let key = key.ok_or(err("bee node without a key"))?;
        Ok(NodeBlock {
            levels: decode_index(index)?,
            key: key.to_vec(),
            value,
        })
    }

    /// True when this block records a deletion: no value, and its own seq is not in its index
    /// (a put without a value keeps its seq in the tree).
    pub fn is_deletion(&self, seq: u64) -> bool {
        self.value.is_none() && !self.levels.iter().any(|l| l.keys.contains(&seq))
    }
}

/// Encodes a `Node` from an already encoded index.
pub(crate) fn encode_node(index: &[u8], key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(index.len() + key.len() + value.map_or(0, <[u8]>::len) + 12);
    put_bytes(&mut buf, 1, index);
    put_bytes(&mut buf, 2, key);
    if let Some(v) = value {
        put_bytes(&mut buf, 3, v);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn headers() {
        assert_eq!(
            Header::hyperbee(None).encode(),
            unhex("0a086879706572626565")
        );
        assert_eq!(
            Header::hyperbee(Some(Metadata::default())).encode(),
            unhex("0a0868797065726265651200")
        );
        let full = Header::hyperbee(Some(Metadata {
            content_feed: Some(vec![0xab; 32]),
            user_data: Some(b"hi".to_vec()),
        }));
        let bytes = full.encode();
        assert_eq!(
            bytes,
            unhex(
                "0a08687970657262656512260a20abababababababababababababababab\
                 abababababababababababababababab12026869"
            )
        );
        assert_eq!(Header::decode(&bytes).unwrap(), full);
        assert!(Header::decode(&unhex("1200")).is_err());
    }

    #[test]
    fn split_block_round_trip() {
        let hex = "0a1b0a090a01051204090109020a060a04010203040a060a04060708091201691a027669";
        let b = NodeBlock::decode(&unhex(hex)).unwrap();
        assert_eq!(b.key, b"i");
        assert_eq!(b.value.as_deref(), Some(&b"vi"[..]));
        assert_eq!(b.levels[0].keys, vec![5]);
        assert_eq!(b.levels[0].children, vec![(9, 1), (9, 2)]);
        assert_eq!(b.levels[2].keys, vec![6, 7, 8, 9]);
        assert_eq!(b.encode(), unhex(hex));
        assert!(!b.is_deletion(9));
    }

    #[test]
    fn empty_index_and_empty_level() {
        let b = NodeBlock {
            levels: vec![],
            key: b"a".to_vec(),
            value: None,
        };
        assert_eq!(b.encode(), unhex("0a00120161"));
        let e = NodeBlock {
            levels: vec![Level::default()],
            key: b"key367".to_vec(),
            value: None,
        };
        assert_eq!(e.encode(), unhex("0a020a0012066b6579333637"));
        assert!(e.is_deletion(4));
    }

    #[test]
    fn varints() {
        for n in [
            0u64,
            1,
            127,
            128,
            300,
            16383,
            16384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, n);
            assert_eq!(b.len(), varint_len(n));
            assert_eq!(Reader::new(&b).varint().unwrap(), n);
        }
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &[0x0a, 0xff][..],
            &[0x0a, 0x02, 0x0a, 0x05],
            &[0x0b],
            &[0x0a, 0x00],
            &[0xff; 12],
            &[0x0a, 0x03, 0x12, 0x01, 0x05, 0x12, 0x00],
        ] {
            let _ = NodeBlock::decode(bytes);
            let _ = Header::decode(bytes);
        }
        // a level with an odd child count is refused
        assert!(NodeBlock::decode(&unhex("0a050a0312010512016b")).is_err());
    }
}

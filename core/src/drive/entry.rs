//! A drive entry as Hyperdrive 13 stores it: the value of key `"files\0" + path` in the drive's
//! bee, `JSON.stringify({executable, linkname, blob, metadata})` in that key order.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub use crate::blobs::BlobId;

/// A file or symlink.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    /// The executable bit.
    pub executable: bool,
    /// The target of a symlink (`None` for files).
    pub linkname: Option<String>,
    /// The content (`None` for symlinks).
    pub blob: Option<BlobId>,
    /// Arbitrary user JSON.
    pub metadata: Option<Value>,
}

/// The bee key of `path` (already normalized): `"files" 0x00 path`.
pub fn key(path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + path.len());
    k.extend_from_slice(b"files\0");
    k.extend_from_slice(path.as_bytes());
    k
}

/// The path of a bee key, if it is a file key.
pub fn path_of(key: &[u8]) -> Option<&str> {
    key.strip_prefix(b"files\0")
        .and_then(|p| std::str::from_utf8(p).ok())
}

impl Entry {
    /// True for a symlink: an entry with a non-empty `linkname` (the reference follows only
    /// those; an empty target is no link).
    pub fn is_symlink(&self) -> bool {
        self.linkname.as_deref().is_some_and(|l| !l.is_empty())
    }

    /// The file's size in bytes as the entry records it (0 for a symlink), or `None` for a
    /// deduplicated file: its blob id covers its block map, and the id's byte length is the
    /// map's, not the file's (as in hyperblobs). [`Drive::file_size`](super::Drive::file_size)
    /// gives the size of any entry.
    pub fn size(&self) -> Option<u64> {
        match &self.blob {
            None => Some(0),
            Some(b) if b.block_map => None,
            Some(b) => Some(b.byte_length),
        }
    }

    /// True for a deduplicated file (its content is listed by a block map).
    pub fn is_block_mapped(&self) -> bool {
        self.blob.is_some_and(|b| b.block_map)
    }

    /// The bytes Hyperdrive writes for this entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("executable".into(), Value::Bool(self.executable));
        m.insert(
            "linkname".into(),
            self.linkname.clone().map_or(Value::Null, Value::String),
        );
        m.insert(
            "blob".into(),
            match &self.blob {
                None => Value::Null,
                Some(b) => {
                    let mut o = Map::new();
                    o.insert("blockOffset".into(), b.block_offset.into());
                    o.insert("byteOffset".into(), b.byte_offset.into());
                    o.insert("blockLength".into(), b.block_length.into());
                    o.insert("byteLength".into(), b.byte_length.into());
                    if b.block_map {
                        o.insert("blockMap".into(), Value::Bool(true));
                    }
                    Value::Object(o)
                }
            },
        );
        m.insert(
            "metadata".into(),
            self.metadata.clone().unwrap_or(Value::Null),
        );
        serde_json::to_vec(&Value::Object(m)).expect("JSON values always serialize")
    }

    /// Reads an entry (any key order, extra fields ignored).
    pub fn decode(bytes: &[u8]) -> Result<Entry> {
        let bad = |what: &str| Error::Corrupt(format!("drive entry: {what}"));
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let o = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let executable = match o.get("executable") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("executable is not a boolean")),
        };
        let linkname = match o.get("linkname") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("linkname is not a string")),
        };
        let blob = match o.get("blob") {
            None | Some(Value::Null) => None,
            Some(Value::Object(b)) => {
                let num = |name: &str| -> Result<u64> {
                    b.get(name)
                        .and_then(Value::as_u64)
                        .ok_or_else(|| bad(&format!("blob.{name} is missing or not a count")))
                };
                Some(BlobId {
                    block_offset: num("blockOffset")?,
                    byte_offset: num("byteOffset")?,
                    block_length: num("blockLength")?,
                    byte_length: num("byteLength")?,
                    block_map: b.get("blockMap").and_then(Value::as_bool).unwrap_or(false),
                })
            }
            Some(_) => return Err(bad("blob is not an object")),
        };
        let metadata = match o.get("metadata") {
            None | Some(Value::Null) => None,
            Some(m) => Some(m.clone()),
        };
        Ok(Entry {
            executable,
            linkname,
            blob,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_bytes() {
        // shared/design/hyperbee-hyperdrive13.md §3.2 (hyperdrive 13.3.4)
        let file = Entry {
            blob: Some(BlobId {
                block_length: 1,
                byte_length: 11,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(file.encode()).unwrap(),
            r#"{"executable":false,"linkname":null,"blob":{"blockOffset":0,"byteOffset":0,"blockLength":1,"byteLength":11},"metadata":null}"#
        );
        let empty = Entry {
            executable: true,
            blob: Some(BlobId {
                block_offset: 3,
                byte_offset: 70011,
                ..Default::default()
            }),
            metadata: Some(serde_json::json!({"a": 1})),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(empty.encode()).unwrap(),
            r#"{"executable":true,"linkname":null,"blob":{"blockOffset":3,"byteOffset":70011,"blockLength":0,"byteLength":0},"metadata":{"a":1}}"#
        );
        let link = Entry {
            linkname: Some("/dir/x.bin".into()),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(link.encode()).unwrap(),
            r#"{"executable":false,"linkname":"/dir/x.bin","blob":null,"metadata":null}"#
        );
        let dedup = Entry {
            blob: Some(BlobId {
                block_offset: 1,
                byte_offset: 100000,
                block_length: 1,
                byte_length: 8,
                block_map: true,
            }),
            ..Default::default()
        };
        assert!(
            String::from_utf8(dedup.encode())
                .unwrap()
                .contains(r#""byteLength":8,"blockMap":true},"metadata":null}"#)
        );
        for e in [file, empty, link, dedup] {
            assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        }
        assert!(Entry::decode(b"{\"blob\":{\"blockOffset\":-1}}").is_err());
        assert!(Entry::decode(b"not json").is_err());
        assert_eq!(path_of(&key("/a/b")), Some("/a/b"));
    }
}

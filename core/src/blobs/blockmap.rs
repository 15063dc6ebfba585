//! Block maps (hyperblobs ≥ 2.9, `lib/block-map.js`): a list of `(block index, byte length)` that
//! spells a file out of blocks of the same log, in order, possibly repeating a block or reusing
//! blocks of earlier blobs. This is what deduplication writes.
//!
//! Each map block is compact-encoded as
//!
//! ```text
//! uint version (= 0) || uint count || count × (uint index || uint byteLength)
//! ```
//!
//! with at most [`ENTRIES_PER_BLOCK`] entries per block, and readers refuse maps of more than
//! [`MAX_MAP_BLOCKS`] blocks. An entry can only name a block of the log the map is in: the format
//! has no field for another log.

use crate::encoding::{DecodeError, Decoder, Encoder, MAX_ARRAY};
use crate::error::{Error, Result};

/// Entries per map block (the reference splits at 8192).
pub const ENTRIES_PER_BLOCK: usize = 8192;
/// The most blocks a map may span: the reference refuses to read larger maps.
pub const MAX_MAP_BLOCKS: u64 = 64;
/// The most entries a readable map can hold.
pub const MAX_ENTRIES: usize = ENTRIES_PER_BLOCK * MAX_MAP_BLOCKS as usize;

/// The only block map version.
const VERSION: u64 = 0;

/// One entry of a block map: block `index` of the log, which holds `byte_length` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Block index in the blobs log.
    pub index: u64,
    /// Size of that block.
    pub byte_length: u64,
}

/// A decoded block map: the file is the listed blocks, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockMap {
    /// The entries.
    pub blocks: Vec<BlockRef>,
}

impl BlockMap {
    /// Size of the file the map describes (hyperblobs' `getByteLength`).
    pub fn byte_length(&self) -> u64 {
        self.blocks.iter().map(|b| b.byte_length).sum()
    }

    /// The map blocks, as the reference encodes them: one block per [`ENTRIES_PER_BLOCK`]
    /// entries. An empty map encodes to no blocks at all.
    pub fn encode(&self) -> Vec<Vec<u8>> {
        self.blocks
            .chunks(ENTRIES_PER_BLOCK)
            .map(|entries| {
                let mut e = Encoder::with_capacity(4 + entries.len() * 8);
                e.uint(VERSION).uint(entries.len() as u64);
                for b in entries {
                    e.uint(b.index).uint(b.byte_length);
                }
                e.finish()
            })
            .collect()
    }

    /// Decodes map blocks (concatenating their entries). Like the reference, a version other than
    /// 0 is refused and bytes after the last entry of a block are ignored.
    pub fn decode<B: AsRef<[u8]>>(blocks: &[B]) -> Result<BlockMap> {
        if blocks.len() as u64 > MAX_MAP_BLOCKS {
            return Err(Error::Decode(DecodeError {
                what: "block map over 64 blocks",
            }));
        }
        let mut out = Vec::new();
        for block in blocks {
            let mut d = Decoder::new(block.as_ref());
            if d.uint("block map version")? != VERSION {
                return Err(Error::Decode(DecodeError {
                    what: "block map version (only version 0 exists)",
                }));
            }
            let count = d.len(MAX_ARRAY, "block map entry count")?;
            // Every entry takes at least two bytes: do not trust the count for the allocation.
            out.reserve(count.min(d.remaining() / 2));
            for _ in 0..count {
                let index = d.uint("block map entry index")?;
                let byte_length = d.uint("block map entry byte length")?;
                out.push(BlockRef { index, byte_length });
            }
        }
        Ok(BlockMap { blocks: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_bytes() {
        // hyperblobs 2.12.1, dedup write of a, b, a, "end" (blobs-vector.txt).
        let map = BlockMap {
            blocks: vec![
                BlockRef {
                    index: 9,
                    byte_length: 65536,
                },
                BlockRef {
                    index: 10,
                    byte_length: 65536,
                },
                BlockRef {
                    index: 9,
                    byte_length: 65536,
                },
                BlockRef {
                    index: 11,
                    byte_length: 3,
                },
            ],
        };
        let blocks = map.encode();
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            blocks[0],
            [
                0x00, 0x04, 0x09, 0xfe, 0, 0, 1, 0, 0x0a, 0xfe, 0, 0, 1, 0, 0x09, 0xfe, 0, 0, 1, 0,
                0x0b, 0x03
            ]
        );
        assert_eq!(BlockMap::decode(&blocks).unwrap(), map);
        assert_eq!(map.byte_length(), 196611);
    }

    #[test]
    fn splits_at_8192_entries() {
        let map = BlockMap {
            blocks: (0..8192 * 2 + 5)
                .map(|i| BlockRef {
                    index: i,
                    byte_length: 300,
                })
                .collect(),
        };
        let blocks = map.encode();
        assert_eq!(blocks.len(), 3);
        assert_eq!(&blocks[2][..2], &[0, 5]);
        assert_eq!(BlockMap::decode(&blocks).unwrap(), map);
        assert!(BlockMap::default().encode().is_empty());
    }

    #[test]
    fn refuses_bad_maps() {
        assert!(BlockMap::decode(&[[1u8, 0]]).is_err()); // version 1
        assert!(BlockMap::decode(&[[0u8, 2, 1, 1]]).is_err()); // short
        assert!(
            BlockMap::decode(&[[0u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]])
                .is_err()
        );
        assert!(BlockMap::decode(&vec![vec![0u8, 0]; 65]).is_err());
        // Trailing bytes are ignored, as by the reference.
        assert_eq!(
            BlockMap::decode(&[[0u8, 1, 2, 3, 9, 9]]).unwrap().blocks,
            [BlockRef {
                index: 2,
                byte_length: 3
            }]
        );
    }
}

//! Deduplication: an index from block content to a block already in the log, so that a new file
//! reuses the blocks it shares with earlier ones through a [`BlockMap`](super::BlockMap).
//!
//! A block map can only name blocks of its own log, so an index entry is only reused when it
//! belongs to the log being written, and only after checking it against the log's merkle tree: the
//! key is the block's hypercore leaf hash, `BLAKE2b-256(0x00 || u64le(len) || block)`, and the
//! tree stores the same hash for every block. A stale entry (truncated log, another log, a block
//! written by an abandoned writer) is ignored and replaced; it can never produce a wrong file.

use std::collections::HashMap;

use crate::crypto::{self, Hash};
use crate::error::Result;

/// Where a block with a given content hash is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DedupEntry {
    /// Key of the log holding the block.
    pub log: [u8; 32],
    /// Block index in that log.
    pub index: u64,
    /// Size of the block.
    pub byte_length: u64,
}

/// A content index for deduplication. `hash` is [`block_hash`] of a block.
///
/// A drive keeps one per blobs log (an LMDB table, say); [`MemoryDedupIndex`] is the in-memory
/// one. Writers call `lookup` for every chunk and `insert` for every chunk they append.
pub trait DedupIndex {
    /// The block last recorded for `hash`, if any.
    fn lookup(&mut self, hash: &Hash) -> Result<Option<DedupEntry>>;
    /// Records (or replaces) the block for `hash`.
    fn insert(&mut self, hash: Hash, entry: DedupEntry) -> Result<()>;
}

impl<D: DedupIndex + ?Sized> DedupIndex for &mut D {
    fn lookup(&mut self, hash: &Hash) -> Result<Option<DedupEntry>> {
        (**self).lookup(hash)
    }

    fn insert(&mut self, hash: Hash, entry: DedupEntry) -> Result<()> {
        (**self).insert(hash, entry)
    }
}

/// The content hash a [`DedupIndex`] is keyed by: hypercore's leaf hash of the block.
pub fn block_hash(block: &[u8]) -> Hash {
    crypto::leaf_hash(block)
}

/// A [`DedupIndex`] in a `HashMap`.
#[derive(Debug, Clone, Default)]
pub struct MemoryDedupIndex {
    map: HashMap<Hash, DedupEntry>,
}

impl MemoryDedupIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct blocks recorded.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl DedupIndex for MemoryDedupIndex {
    fn lookup(&mut self, hash: &Hash) -> Result<Option<DedupEntry>> {
        Ok(self.map.get(hash).copied())
    }

    fn insert(&mut self, hash: Hash, entry: DedupEntry) -> Result<()> {
        self.map.insert(hash, entry);
        Ok(())
    }
}

/// What a deduplicating write stored and what it reused. Data blocks only; the map blocks are not
/// counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupReport {
    /// Size of the file written.
    pub bytes_total: u64,
    /// Bytes appended to the log as new blocks.
    pub bytes_new: u64,
    /// Chunks the file was cut into.
    pub blocks_total: u64,
    /// Chunks appended as new blocks.
    pub blocks_new: u64,
    /// Chunks that reuse a block already in the log (or earlier in the same file).
    pub blocks_reused: u64,
}

impl DedupReport {
    /// Bytes not written thanks to reuse.
    pub fn bytes_reused(&self) -> u64 {
        self.bytes_total - self.bytes_new
    }
}

//! Reading committed bee blocks: decoded blocks, a bounded per-bee cache, and a read view of the
//! tree at one version (the root of version `v` is level 0 of block `v - 1`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Entry;
use super::messages::{Level, NodeBlock};
use super::tree::Blocks;
use crate::{Error, Log, Result};

/// Deepest tree a reader follows; deeper means a cycle in hostile or corrupt blocks (a real
/// tree of 2^64 keys is 28 levels deep at the minimum fan-out of 5).
pub(crate) const MAX_DEPTH: usize = 64;

pub(crate) fn too_deep() -> Error {
    Error::Corrupt(format!(
        "bee tree deeper than {MAX_DEPTH} levels (its child pointers form a cycle)"
    ))
}

/// A decoded bee block.
#[derive(Debug)]
pub(crate) struct Block {
    pub seq: u64,
    pub key: Arc<[u8]>,
    pub value: Option<Vec<u8>>,
    pub levels: Vec<Level>,
}

impl Block {
    pub fn decode(seq: u64, bytes: &[u8]) -> Result<Block> {
        let node = NodeBlock::decode(bytes)
            .map_err(|e| Error::Corrupt(format!("bee block {seq} is not a hyperbee node: {e}")))?;
        for (i, l) in node.levels.iter().enumerate() {
            if !l.children.is_empty() && l.children.len() != l.keys.len() + 1 {
                return Err(Error::Corrupt(format!(
                    "bee block {seq}, level {i}: {} keys but {} children",
                    l.keys.len(),
                    l.children.len()
                )));
            }
        }
        Ok(Block {
            seq,
            key: node.key.into(),
            value: node.value,
            levels: node.levels,
        })
    }

    /// A deletion: no value and its own seq not in its index.
    pub fn is_deletion(&self) -> bool {
        self.value.is_none() && !self.levels.iter().any(|l| l.keys.contains(&self.seq))
    }

    pub fn entry(&self) -> Entry {
        Entry {
            seq: self.seq,
            key: self.key.to_vec(),
            value: self.value.clone(),
        }
    }
}

/// Blocks most recently read, bounded by count and bytes; cleared when the log's fork changes.
pub(crate) struct BlockCache {
    fork: u64,
    map: HashMap<u64, Arc<Block>>,
    order: VecDeque<u64>,
    bytes: usize,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("fork", &self.fork)
            .field("blocks", &self.map.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// Most blocks cached per bee.
const CACHE_BLOCKS: usize = 4096;
/// Most key and value bytes cached per bee.
const CACHE_BYTES: usize = 32 << 20;

impl BlockCache {
    pub fn new(fork: u64) -> Self {
        BlockCache {
            fork,
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }

    fn size(b: &Block) -> usize {
        64 + b.key.len() + b.value.as_ref().map_or(0, Vec::len) + 24 * b.levels.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn get(&mut self, fork: u64, seq: u64) -> Option<Arc<Block>> {
        if fork != self.fork {
            *self = BlockCache::new(fork);
            return None;
        }
        self.map.get(&seq).cloned()
    }

    fn insert(&mut self, fork: u64, block: Arc<Block>) {
        if fork != self.fork {
            *self = BlockCache::new(fork);
        }
        self.bytes += Self::size(&block);
        self.order.push_back(block.seq);
        if let Some(old) = self.map.insert(block.seq, block) {
            self.bytes -= Self::size(&old);
        }
        while self.map.len() > CACHE_BLOCKS || self.bytes > CACHE_BYTES {
            let Some(seq) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.map.remove(&seq) {
                self.bytes -= Self::size(&old);
            }
        }
    }
}

/// A node of a committed tree: level `offset` of a decoded block.
#[derive(Debug, Clone)]
pub(crate) struct NodeRef {
    pub block: Arc<Block>,
    pub offset: usize,
}

impl NodeRef {
    pub fn level(&self) -> &Level {
        &self.block.levels[self.offset]
    }

    pub fn keys(&self) -> &[u64] {
        &self.level().keys
    }

    pub fn children(&self) -> &[(u64, u64)] {
        &self.level().children
    }

    pub fn is_leaf(&self) -> bool {
        self.children().is_empty()
    }
}

/// Reads the committed tree of one version. Every block is read through [`Log::get`], so a
/// block that is not stored locally gives [`Error::NotAvailable`].
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub log: Log,
    pub cache: Arc<Mutex<BlockCache>>,
    /// Blocks `1..version` may be referenced.
    pub version: u64,
}

impl Source {
    /// Block `seq`, which must be a node block of this version.
    pub fn block(&self, seq: u64) -> Result<Arc<Block>> {
        if seq == 0 || seq >= self.version {
            return Err(Error::Corrupt(format!(
                "bee version {} references block {seq}, outside 1..{}",
                self.version, self.version
            )));
        }
        self.block_unchecked(seq)
    }

    fn block_unchecked(&self, seq: u64) -> Result<Arc<Block>> {
        let fork = self.log.fork();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = cache.get(fork, seq) {
            return Ok(b);
        }
        drop(cache);
        let block = Arc::new(Block::decode(seq, &self.log.get(seq)?)?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(fork, block.clone());
        Ok(block)
    }

    /// Level `offset` of block `seq`.
    pub fn node(&self, seq: u64, offset: u64) -> Result<NodeRef> {
        let block = self.block(seq)?;
        if offset >= block.levels.len() as u64 {
            return Err(Error::Corrupt(format!(
                "bee block {seq} has {} levels, a pointer names level {offset}",
                block.levels.len()
            )));
        }
        Ok(NodeRef {
            block,
            offset: offset as usize,
        })
    }

    /// The root of this version, `None` for an empty tree (version < 2). A version inside a
    /// batch (whose last block holds no root) is refused with [`Error::InvalidArgument`].
    pub fn root(&self) -> Result<Option<NodeRef>> {
        if self.version < 2 {
            return Ok(None);
        }
        let seq = self.version - 1;
        let block = self.block(seq)?;
        // A block that ends a write holds its root at level 0, and a put's own seq is in its
        // index. Blocks inside a batch lost their root and usually also their own key.
        if block.levels.is_empty() || (block.value.is_some() && !block_has_key(&block, seq)) {
            return Err(Error::InvalidArgument(format!(
                "bee version {} is inside a batch (block {seq} holds no tree root)",
                self.version
            )));
        }
        Ok(Some(NodeRef { block, offset: 0 }))
    }

    /// Child `i` of `node`.
    pub fn child(&self, node: &NodeRef, i: usize) -> Result<NodeRef> {
        let &(seq, offset) = node.children().get(i).ok_or_else(|| {
            Error::Corrupt(format!("bee block {} has no child {i}", node.block.seq))
        })?;
        self.node(seq, offset)
    }

    /// The entry held by block `seq`.
    pub fn entry(&self, seq: u64) -> Result<Entry> {
        Ok(self.block(seq)?.entry())
    }

    /// The seq of the block holding `key`, searching as the reference does (binary search in
    /// each node, then descend). Touches one node block per level plus the compared keys.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<u64>> {
        let Some(mut node) = self.root()? else {
            return Ok(None);
        };
        for _ in 0..MAX_DEPTH {
            let (found, i) = self.search(&node, key)?;
            if found {
                return Ok(Some(node.keys()[i]));
            }
            if node.is_leaf() {
                return Ok(None);
            }
            node = self.child(&node, i)?;
        }
        Err(too_deep())
    }

    /// Binary search in one node: `(true, i)` on a hit, else `(false, child index)`.
    pub fn search(&self, node: &NodeRef, key: &[u8]) -> Result<(bool, usize)> {
        let keys = node.keys();
        let (mut s, mut e) = (0, keys.len());
        while s < e {
            let mid = (s + e) >> 1;
            match key.cmp(&*self.block(keys[mid])?.key) {
                std::cmp::Ordering::Equal => return Ok((true, mid)),
                std::cmp::Ordering::Less => e = mid,
                std::cmp::Ordering::Greater => s = mid + 1,
            }
        }
        Ok((false, s))
    }

    /// The key of block `seq`.
    pub fn key(&self, seq: u64) -> Result<Arc<[u8]>> {
        Ok(self.block(seq)?.key.clone())
    }
}

fn block_has_key(block: &Block, seq: u64) -> bool {
    block.levels.iter().any(|l| l.keys.contains(&seq))
}

impl Blocks for Source {
    fn key(&self, seq: u64) -> Result<Arc<[u8]>> {
        Source::key(self, seq)
    }

    fn level(&self, seq: u64, offset: u64) -> Result<Level> {
        Ok(self.node(seq, offset)?.level().clone())
    }
}

//! Batches: several puts and deletes built in memory on one shared tree and appended at once,
//! laid out as hyperbee 2's `batch()` lays them out (design notes §1.8).
//!
//! Each operation runs exactly like a single write, with the block seq it will get, and keeps
//! its index (the child records it wrote). At flush, every block but the last drops its root and
//! the nodes later operations re-owned or freed ([`Arena::compact`]); the blocks are then
//! encoded from the nodes' final state and appended in one [`crate::Log::append_batch`].

use std::sync::Arc;

use super::messages::{Level, encode_index, encode_node};
use super::node::Source;
use super::tree::{Arena, Blocks, ChildId, NodeId};
use super::{Bee, Entry};
use crate::{Error, Result};

/// One operation waiting in a batch.
#[derive(Debug)]
pub(crate) struct Pending {
    key: Arc<[u8]>,
    value: Option<Vec<u8>>,
    index: Vec<Option<ChildId>>,
}

/// Key and node lookup for writes: committed blocks below `base`, then the batch's pending
/// blocks, then the block being written.
pub(crate) struct WriteBlocks<'a> {
    src: &'a Source,
    base: u64,
    pending: &'a [Pending],
    current: Option<(u64, Arc<[u8]>)>,
}

impl<'a> WriteBlocks<'a> {
    pub(crate) fn new(
        src: &'a Source,
        base: u64,
        pending: &'a [Pending],
        current: Option<(u64, Arc<[u8]>)>,
    ) -> Self {
        WriteBlocks {
            src,
            base,
            pending,
            current,
        }
    }
}

impl Blocks for WriteBlocks<'_> {
    fn key(&self, seq: u64) -> Result<Arc<[u8]>> {
        if let Some((s, k)) = &self.current
            && *s == seq
        {
            return Ok(k.clone());
        }
        if seq >= self.base {
            return self
                .pending
                .get((seq - self.base) as usize)
                .map(|p| p.key.clone())
                .ok_or_else(|| Error::Corrupt(format!("bee batch has no block {seq}")));
        }
        self.src.key(seq)
    }

    fn level(&self, seq: u64, offset: u64) -> Result<Level> {
        if seq >= self.base {
            return Err(Error::Corrupt(format!(
                "bee batch node ({seq}, {offset}) is not in memory"
            )));
        }
        Blocks::level(self.src, seq, offset)
    }
}

/// Puts and deletes applied in memory and appended together by [`Batch::flush`].
///
/// Reads through the batch ([`Batch::get`]) see its pending operations. The header block, if
/// the log is still empty, is appended by the first operation (as the reference does). If the
/// log grows by another write while operations are pending, the batch can no longer be laid
/// out on it: the next operation or the flush fails with [`Error::Conflict`].
#[derive(Debug)]
pub struct Batch {
    bee: Bee,
    arena: Arena,
    /// Log length the pending blocks follow.
    base: u64,
    pending: Vec<Pending>,
    /// Root after the last pending operation.
    root: Option<NodeId>,
    /// The committed root loaded into the arena, with the version it belongs to.
    committed: Option<(u64, Option<NodeId>)>,
    /// An operation failed half-way; the in-memory tree may be inconsistent.
    failed: bool,
}

impl Batch {
    pub(crate) fn new(bee: Bee) -> Self {
        Batch {
            bee,
            arena: Arena::default(),
            base: 0,
            pending: Vec::new(),
            root: None,
            committed: None,
            failed: false,
        }
    }

    /// Number of pending operations (blocks the flush will append).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no operation is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The version the bee will have after the flush.
    pub fn version(&self) -> u64 {
        if self.pending.is_empty() {
            self.bee.inner.log.length().max(1)
        } else {
            self.base + self.pending.len() as u64
        }
    }

    /// Puts `key` = `value` in the batch.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.write(key.as_ref(), Some(value.as_ref()), false)
            .map(drop)
    }

    /// Puts `key` with an optional value (see [`Bee::put_value`]).
    pub fn put_value(&mut self, key: impl AsRef<[u8]>, value: Option<&[u8]>) -> Result<()> {
        self.write(key.as_ref(), value, false).map(drop)
    }

    /// Deletes `key` in the batch; `false` (and no block) when the key is absent.
    pub fn del(&mut self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.write(key.as_ref(), None, true)
    }

    /// The entry for `key` as the batch sees it (pending operations included).
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Entry>> {
        self.check_failed()?;
        let key = key.as_ref();
        let (src, base) = self.source()?;
        let root = match self.root {
            Some(r) if !self.pending.is_empty() => Some(r),
            _ => self.committed_root(&src)?,
        };
        let Some(root) = root else {
            return Ok(None);
        };
        let blocks = WriteBlocks::new(&src, base, &self.pending, None);
        let Some(seq) = self.arena.lookup(&blocks, root, key)? else {
            return Ok(None);
        };
        if seq >= base {
            let p = &self.pending[(seq - base) as usize];
            return Ok(Some(Entry {
                seq,
                key: p.key.to_vec(),
                value: p.value.clone(),
            }));
        }
        src.entry(seq).map(Some)
    }

    /// Appends every pending operation in one batch append, then empties the batch.
    pub fn flush(&mut self) -> Result<()> {
        self.check_failed()?;
        if self.pending.is_empty() {
            self.reset();
            return Ok(());
        }
        let bee = self.bee.clone();
        let _guard = bee.header_locked()?;
        self.check_base()?;
        let n = self.pending.len();
        let mut blocks = Vec::with_capacity(n);
        for i in 0..n {
            let seq = self.base + i as u64;
            let mut index = std::mem::take(&mut self.pending[i].index);
            if i + 1 < n {
                self.arena.compact(&mut index, seq);
            }
            let levels = self.arena.deflate(&index);
            let p = &self.pending[i];
            blocks.push(encode_node(
                &encode_index(&levels),
                &p.key,
                p.value.as_deref(),
            ));
        }
        self.reset();
        bee.inner.log.append_batch(&blocks)?;
        Ok(())
    }

    fn reset(&mut self) {
        self.arena = Arena::default();
        self.pending.clear();
        self.root = None;
        self.committed = None;
        self.base = 0;
        self.failed = false;
    }

    /// The source of committed blocks and the seq of the first pending block.
    fn source(&mut self) -> Result<(Source, u64)> {
        let length = self.bee.inner.log.length();
        if self.pending.is_empty() {
            self.base = length;
        } else {
            self.check_base()?;
        }
        Ok((self.bee.source_at(self.base), self.base))
    }

    fn check_base(&self) -> Result<()> {
        let length = self.bee.inner.log.length();
        if length != self.base {
            return Err(Error::Conflict(format!(
                "the bee's log grew from {} to {length} blocks while a batch was pending",
                self.base
            )));
        }
        Ok(())
    }

    /// The committed root, loaded into the arena once per version.
    fn committed_root(&mut self, src: &Source) -> Result<Option<NodeId>> {
        if let Some((v, root)) = self.committed
            && v == src.version
        {
            return Ok(root);
        }
        let root = match src.root()? {
            Some(_) => {
                let blocks = WriteBlocks::new(src, src.version, &[], None);
                Some(self.arena.load(&blocks, src.version - 1, 0)?)
            }
            None => None,
        };
        self.committed = Some((src.version, root));
        Ok(root)
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>, del: bool) -> Result<bool> {
        self.check_failed()?;
        let r = self.write_inner(key, value, del);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn check_failed(&self) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "an earlier operation of this bee batch failed; drop the batch and start again"
                    .into(),
            ));
        }
        Ok(())
    }

    fn write_inner(&mut self, key: &[u8], value: Option<&[u8]>, del: bool) -> Result<bool> {
        self.bee.check_writable()?;
        drop(self.bee.header_locked()?);
        let (src, base) = self.source()?;
        let seq = base + self.pending.len() as u64;
        let root = match self.root {
            Some(r) if !self.pending.is_empty() => Some(r),
            _ => self.committed_root(&src)?,
        };
        let key: Arc<[u8]> = key.into();
        let blocks = WriteBlocks::new(&src, base, &self.pending, Some((seq, key.clone())));
        let root = if del {
            match root
                .map(|r| self.arena.del(&blocks, r, &key))
                .transpose()?
                .flatten()
            {
                Some(r) => r,
                None => return Ok(false),
            }
        } else {
            self.arena.put(&blocks, root, seq, &key)?
        };
        let index = self.arena.index_changes(root, seq);
        self.pending.push(Pending {
            key,
            value: value.map(<[u8]>::to_vec),
            index,
        });
        self.root = Some(root);
        Ok(true)
    }
}

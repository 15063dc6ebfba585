//! The bee: a B-tree key-value store on a [`Log`], byte-compatible with hyperbee 2 (2.27.3).
//!
//! Block 0 of the log is a header (`"hyperbee"` plus optional [`Metadata`]); every later block
//! holds one key, its value (none for a deletion) and the tree nodes that write rewrote, as
//! `(seq, offset)` references to earlier blocks. The tree at version `v` (a log length) has its
//! root in block `v - 1`, so every past version stays readable: [`Bee::checkout`].
//!
//! Writes lay blocks out exactly as the JavaScript reference does, so a log written here and one
//! written by hyperbee from the same operations are identical, block for block (tested against
//! the reference's golden vectors and against the live reference).
//!
//! Keys are ordered bytewise. Keys and values are raw bytes: encodings (such as hyperdrive's
//! `files\0` prefix and JSON values) belong to the layer above.
//!
//! ```
//! use dat_core::bee::{Bee, RangeOptions};
//! # fn main() -> Result<(), dat_core::Error> {
//! # let dir = tempfile::tempdir()?;
//! let log = dat_core::Store::open(dir.path())?.named_log("db")?;
//! let bee = Bee::open(log);
//! bee.put(b"a", b"1")?;
//! let mut batch = bee.batch();
//! batch.put(b"b", b"2")?;
//! batch.put(b"c", b"3")?;
//! batch.flush()?; // one append for the whole batch
//! assert_eq!(bee.get(b"b")?.unwrap().value.as_deref(), Some(&b"2"[..]));
//! let old = bee.checkout(2)?; // the version right after the first put
//! assert!(old.get(b"b")?.is_none());
//! let keys: Vec<_> = bee.range(RangeOptions::new().gt(b"a"))?.map(|e| e.map(|e| e.key)).collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
//! # Ok(()) }
//! ```
//!
//! A bee touches O(log n) blocks per lookup; decoded blocks are kept in a bounded cache shared
//! by a bee, its clones and its checkouts. Open one `Bee` per log and clone it: writes through
//! clones are serialized, writes through two independently opened bees on one log are not.

mod batch;
mod diff;
mod iter;
mod messages;
mod node;
mod tree;

use std::sync::{Arc, Mutex, MutexGuard};

pub use batch::Batch;
pub use iter::{
    ChangeKind, DiffEntry, DiffIter, HistoryEntry, HistoryIter, HistoryOptions, RangeIter,
    RangeOptions,
};
pub use messages::{Header, Level, Metadata, NodeBlock};

use node::{BlockCache, Source};
use tree::Arena;

use crate::{Error, Log, Result};

/// One key and its value, as stored in block `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The block holding this entry (its version is `seq + 1`).
    pub seq: u64,
    /// The key.
    pub key: Vec<u8>,
    /// The value; `None` only for a put without a value (see [`Bee::put_value`]).
    pub value: Option<Vec<u8>>,
}

/// How a bee writes its header.
#[derive(Debug, Clone, Default)]
pub struct BeeOptions {
    /// Metadata for the header block, written with the first write to an empty log. Hyperdrive
    /// 13 uses `Some(Metadata::default())`; a plain bee uses `None`.
    pub metadata: Option<Metadata>,
}

#[derive(Debug)]
pub(crate) struct BeeInner {
    pub log: Log,
    pub cache: Arc<Mutex<BlockCache>>,
    /// Serializes writes through this bee and its clones.
    pub write: Mutex<()>,
    pub metadata: Option<Metadata>,
}

/// A B-tree on a log, at the log's current length or at a fixed version (a checkout).
/// Cheap to clone; clones share the block cache and the write lock.
#[derive(Debug, Clone)]
pub struct Bee {
    pub(crate) inner: Arc<BeeInner>,
    checkout: Option<u64>,
}

impl Bee {
    /// A bee on `log` with a header without metadata.
    pub fn open(log: Log) -> Bee {
        Bee::open_with(log, BeeOptions::default())
    }

    /// A bee on `log`. Nothing is written until the first write; reading an empty log gives an
    /// empty tree.
    pub fn open_with(log: Log, opts: BeeOptions) -> Bee {
        let cache = Arc::new(Mutex::new(BlockCache::new(log.fork())));
        Bee {
            inner: Arc::new(BeeInner {
                log,
                cache,
                write: Mutex::new(()),
                metadata: opts.metadata,
            }),
            checkout: None,
        }
    }

    /// True when block 0 of `log` is a hyperbee header. Fails with [`Error::NotAvailable`] or
    /// [`Error::OutOfBounds`] if block 0 cannot be read.
    pub fn is_hyperbee(log: &Log) -> Result<bool> {
        let block = log.get(0)?;
        Ok(Header::decode(&block).is_ok_and(|h| h.protocol == "hyperbee"))
    }

    /// The log under this bee.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// The version: the log length this view reads (at least 1; 1 means an empty tree).
    pub fn version(&self) -> u64 {
        self.checkout
            .unwrap_or_else(|| self.inner.log.length())
            .max(1)
    }

    /// True for a checkout (a read-only view at a fixed version).
    pub fn is_checkout(&self) -> bool {
        self.checkout.is_some()
    }

    /// True when puts and deletes are possible: not a checkout, and the log has its secret key.
    pub fn writable(&self) -> bool {
        self.checkout.is_none() && self.inner.log.writable()
    }

    /// The decoded header (block 0), `None` while the log is empty.
    pub fn header(&self) -> Result<Option<Header>> {
        if self.inner.log.length() == 0 {
            return Ok(None);
        }
        let block = self.inner.log.get(0)?;
        Header::decode(&block)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("bee header (block 0): {e}")))
    }

    pub(crate) fn source(&self) -> Source {
        self.source_at(self.version())
    }

    pub(crate) fn source_at(&self, version: u64) -> Source {
        Source {
            log: self.inner.log.clone(),
            cache: self.inner.cache.clone(),
            version,
        }
    }

    /// The entry for `key`, or `None`. Reads one node block per tree level plus the keys it
    /// compares.
    ///
    /// Unlike hyperbee 2.27.3 this never returns a deleted key: the reference's shortcut ("the
    /// node's own block has this key") can return a stale entry after certain deletions.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Entry>> {
        let src = self.source();
        match src.lookup(key.as_ref())? {
            Some(seq) => src.entry(seq).map(Some),
            None => Ok(None),
        }
    }

    /// The entry written by block `seq` (a put or a deletion), whether or not it is still in the
    /// tree.
    pub fn get_by_seq(&self, seq: u64) -> Result<Entry> {
        self.source().entry(seq)
    }

    /// Puts `key` = `value`: appends one block. Putting an identical value again still appends
    /// (as the reference does by default).
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.write(key.as_ref(), Some(value.as_ref()), false)
            .map(drop)
    }

    /// Puts `key` with an optional value; `None` stores the key without a value (hyperbee's
    /// `put(key)`), which reads back as an entry whose value is `None`.
    pub fn put_value(&self, key: impl AsRef<[u8]>, value: Option<&[u8]>) -> Result<()> {
        self.write(key.as_ref(), value, false).map(drop)
    }

    /// Deletes `key`: appends one block, or nothing when the key is absent (returns `false`).
    pub fn del(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.write(key.as_ref(), None, true)
    }

    /// A batch: puts and deletes kept in memory, readable through the batch, and appended in
    /// one [`Log::append_batch`] by [`Batch::flush`]. Dropping it discards them.
    pub fn batch(&self) -> Batch {
        Batch::new(self.clone())
    }

    /// A read-only view at `version` (0 reads as 1). Fails with [`Error::OutOfBounds`] past the
    /// log length, and with [`Error::InvalidArgument`] for a version inside a batch: one whose
    /// last block holds no tree root (the reference throws there too), or whose last block is a
    /// put missing from its own index (the reference reads a wrong tree there). A version that
    /// ends on a deletion inside a batch cannot be told apart and reads a partial tree, as in the
    /// reference.
    pub fn checkout(&self, version: u64) -> Result<Bee> {
        let version = version.max(1);
        let length = self.inner.log.length();
        if version > length.max(1) {
            return Err(Error::OutOfBounds(format!(
                "bee version {version} is past the log length {length}"
            )));
        }
        self.source_at(version).root()?;
        Ok(Bee {
            inner: self.inner.clone(),
            checkout: Some(version),
        })
    }

    /// A read-only view at the current version.
    pub fn snapshot(&self) -> Bee {
        Bee {
            inner: self.inner.clone(),
            checkout: Some(self.version()),
        }
    }

    /// Entries in key order (or reverse) within the bounds of `opts`, read from this version.
    pub fn range(&self, opts: RangeOptions) -> Result<RangeIter> {
        RangeIter::new(self.source(), opts)
    }

    /// The first entry of [`Bee::range`], if any.
    pub fn peek(&self, opts: RangeOptions) -> Result<Option<Entry>> {
        self.range(opts.limit(1))?.next().transpose()
    }

    /// Every put and deletion, block by block, as of this version.
    pub fn history(&self, opts: HistoryOptions) -> Result<HistoryIter> {
        Ok(HistoryIter::new(self.source(), opts))
    }

    /// Differences between this version (`left`) and `other_version` (`right`), in key order:
    /// every key whose entry differs (a different block) or exists on one side only, within the
    /// bounds of `range` (`reverse` is ignored, `limit` counts pairs). Subtrees both versions
    /// share are skipped without being read.
    ///
    /// Bounds read as in [`Bee::range`]. (With both `gt` and `gte` set, hyperbee 2.27.3's diff
    /// starts at `gt`'s key inclusively, unlike its own range read; libdat lets `gt` win in both.)
    pub fn diff(&self, other_version: u64, range: RangeOptions) -> Result<DiffIter> {
        let right = self.checkout(other_version)?;
        DiffIter::new(self.source(), right.source(), range)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.inner.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.checkout.is_some() {
            return Err(Error::NotWritable("a bee checkout is read-only".into()));
        }
        if !self.inner.log.writable() {
            return Err(Error::NotWritable(
                "the bee's log has no secret key on this side".into(),
            ));
        }
        Ok(())
    }

    /// Appends the header if the log is empty. The caller holds the write lock.
    fn ensure_header(&self) -> Result<()> {
        if self.inner.log.length() == 0 {
            let header = Header::hyperbee(self.inner.metadata.clone());
            self.inner.log.append(&header.encode())?;
        }
        Ok(())
    }

    /// Takes the write lock and appends the header if needed.
    pub(crate) fn header_locked(&self) -> Result<MutexGuard<'_, ()>> {
        let guard = self.lock();
        self.ensure_header()?;
        Ok(guard)
    }

    fn write(&self, key: &[u8], value: Option<&[u8]>, del: bool) -> Result<bool> {
        self.check_writable()?;
        let _guard = self.header_locked()?;
        let length = self.inner.log.length();
        let src = self.source_at(length);
        let blocks = batch::WriteBlocks::new(&src, length, &[], Some((length, key.into())));
        let mut arena = Arena::default();
        let root = match src.root()? {
            Some(_) => Some(arena.load(&blocks, length - 1, 0)?),
            None => None,
        };
        let root = if del {
            match root
                .map(|r| arena.del(&blocks, r, key))
                .transpose()?
                .flatten()
            {
                Some(r) => r,
                None => return Ok(false),
            }
        } else {
            arena.put(&blocks, root, length, key)?
        };
        let index = arena.index_changes(root, length);
        let levels = arena.deflate(&index);
        let block = messages::encode_node(&messages::encode_index(&levels), key, value);
        self.inner.log.append(&block)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, Store, StoreOptions};

    fn cached(bee: &Bee) -> usize {
        bee.inner.cache.lock().unwrap().len()
    }

    #[test]
    fn lookups_read_a_logarithmic_number_of_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            dir.path(),
            StoreOptions {
                durability: Durability::NoSync,
                ..Default::default()
            },
        )
        .unwrap();
        let log = store.named_log("db").unwrap();
        let bee = Bee::open(log.clone());
        let mut b = bee.batch();
        for i in 0..5000u32 {
            b.put(
                format!("{:08}", i.wrapping_mul(2_654_435_761) % 100_000),
                "v",
            )
            .unwrap();
        }
        b.flush().unwrap();
        for i in 0..200u32 {
            bee.put(format!("{i:05}"), "w").unwrap();
        }
        let depth = {
            let src = bee.source();
            let mut node = src.root().unwrap().unwrap();
            let mut d = 1;
            while !node.is_leaf() {
                node = src.child(&node, 0).unwrap();
                d += 1;
            }
            d
        };
        assert!((4..=7).contains(&depth), "depth {depth}");

        // a fresh bee (empty cache): one node block per level, at most 4 compared keys per node
        let fresh = Bee::open(log.clone());
        assert_eq!(fresh.get("00150").unwrap().unwrap().value.unwrap(), b"w");
        let n = cached(&fresh);
        eprintln!("depth {depth}: get read {n} blocks");
        assert!(
            n <= depth * 5,
            "get read {n} blocks for a tree of depth {depth}"
        );

        let fresh = Bee::open(log.clone());
        let got = fresh
            .range(RangeOptions::new().gte("0005").limit(10))
            .unwrap()
            .count();
        assert_eq!(got, 10);
        let n = cached(&fresh);
        eprintln!("range of 10 read {n} blocks");
        assert!(n <= depth * 5 + 20, "range read {n} blocks");

        // a diff between neighbouring versions reads only the changed paths
        let fresh = Bee::open(log.clone());
        let v = fresh.version();
        assert_eq!(fresh.diff(v - 1, RangeOptions::new()).unwrap().count(), 1);
        let n = cached(&fresh);
        eprintln!("diff of neighbouring versions read {n} blocks");
        assert!(n <= depth * 12, "diff read {n} blocks");
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Bee>();
        both::<Batch>();
        both::<RangeIter>();
        both::<HistoryIter>();
        both::<DiffIter>();
    }
}

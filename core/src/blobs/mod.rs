//! Blobs: file contents stored in a [`Log`], byte-compatible with Hyperblobs 2 (2.12.1), which is
//! how Hyperdrive 13 stores its files.
//!
//! - A **plain blob** is a run of consecutive blocks; its [`BlobId`] gives the block range and the
//!   log byte range. [`Blobs::put`] cuts a buffer into 64 KiB blocks, as the reference's `put`;
//!   [`Blobs::writer`] makes one block per `write` call, as its write stream.
//! - A **block-mapped blob** (hyperblobs ≥ 2.9) is a [`BlockMap`] appended after the data: a list of
//!   blocks anywhere earlier in the same log. Deduplicating writes use it to reuse blocks
//!   ([`Blobs::put_dedup`], [`WriteOptions::dedup`]); [`FastCdc`] cuts files at content-defined
//!   boundaries so that an edit does not shift every later block.
//! - Reading goes block by block through [`Log::get`]: [`Blobs::get`], [`Blobs::read_range`] (only
//!   the blocks it needs) and [`BlobReader`] (`Read + Seek`, locating a byte in O(log n) through the
//!   log's byte seek or the map's offsets).
//!
//! ```
//! # fn main() -> dat_core::Result<()> {
//! use dat_core::blobs::{Blobs, MemoryDedupIndex};
//! use std::io::Write;
//!
//! let dir = tempfile::tempdir()?;
//! let blobs = Blobs::new(dat_core::Store::open(dir.path())?.named_log("blobs")?);
//! let id = blobs.put(&vec![7u8; 150_000])?; // blocks of 65536, 65536, 18928 bytes
//! assert_eq!(id.to_json(), r#"{"blockOffset":0,"byteOffset":0,"blockLength":3,"byteLength":150000}"#);
//! assert_eq!(blobs.read_range(&id, 65535, 3)?, [7, 7, 7]);
//!
//! let mut w = blobs.writer()?; // one block per write, as hyperblobs' createWriteStream
//! w.write_all(b"hello ")?;
//! w.write_all(b"world")?;
//! let id = w.finish()?;
//! assert_eq!(blobs.get(&id)?, b"hello world");
//!
//! let mut index = MemoryDedupIndex::new();
//! let (a, _) = blobs.put_dedup(&vec![1u8; 200_000], &mut index)?;
//! let (b, report) = blobs.put_dedup(&vec![1u8; 200_000], &mut index)?;
//! assert_eq!(report.bytes_new, 0);
//! assert_eq!(blobs.get(&b)?, blobs.get(&a)?);
//! # Ok(()) }
//! ```

mod appender;
mod blockmap;
mod cdc;
mod dedup;
mod id;
mod stream;

use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;

pub use blockmap::{BlockMap, BlockRef, ENTRIES_PER_BLOCK, MAX_ENTRIES, MAX_MAP_BLOCKS};
pub use cdc::{
    CdcParams, Chunks, DEFAULT_AVG_SIZE, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE, FastCdc,
    MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
pub use dedup::{DedupEntry, DedupIndex, DedupReport, MemoryDedupIndex, block_hash};
pub use id::{BlobId, MAX_SAFE_INTEGER};
pub use stream::{BlobReader, BlobWriter, Chunking, WriteOptions};

use crate::encoding::DecodeError;
use crate::error::{Error, Result};
use crate::log::Log;

/// Block size of [`Blobs::put`] (the reference's `DEFAULT_BLOCK_SIZE`, 2^16).
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 16;

/// The largest block libdat writes: hypercore's `MAX_SUGGESTED_BLOCK_SIZE` (15 MiB). The reference
/// refuses larger blocks from peers, so a bigger `write` is split.
pub const MAX_BLOCK_SIZE: usize = 15 * 1024 * 1024;

/// A blob's data blocks ([`Blobs::data_blocks`]).
pub(crate) struct DataBlocks {
    /// How many data blocks the blob has.
    pub(crate) count: u64,
    /// False when some of them lie past the log length this replica knows (left out below).
    pub(crate) complete: bool,
    /// Their log indexes, in order.
    pub(crate) indexes: Box<dyn Iterator<Item = u64>>,
}

/// A blob store on one log. Cheap to clone; clones share the write lock, so blobs written through
/// any of them are never interleaved.
///
/// Write through a single `Blobs` (or its clones) per log: a plain blob must occupy consecutive
/// blocks, and a writer that finds blocks appended behind its back fails with
/// [`Error::Conflict`].
#[derive(Clone)]
pub struct Blobs {
    log: Log,
    block_size: usize,
    lock: Arc<WriteLock>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("log", &self.log)
            .field("block_size", &self.block_size)
            .finish()
    }
}

impl Blobs {
    /// Blobs on `log`, with 64 KiB blocks for [`put`](Self::put).
    pub fn new(log: Log) -> Blobs {
        Blobs {
            log,
            block_size: DEFAULT_BLOCK_SIZE,
            lock: Arc::default(),
        }
    }

    /// Blobs on `log` whose [`put`](Self::put) cuts `block_size`-byte blocks (1 to 15 MiB).
    pub fn with_block_size(log: Log, block_size: usize) -> Result<Blobs> {
        check_block_size(block_size)?;
        Ok(Blobs {
            block_size,
            ..Blobs::new(log)
        })
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The block size of [`put`](Self::put).
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    // --- writing -------------------------------------------------------------------------------

    /// Stores `data` as a plain blob of [`block_size`](Self::block_size) blocks (the last one
    /// shorter) in one atomic append. An empty `data` appends nothing.
    pub fn put(&self, data: &[u8]) -> Result<BlobId> {
        self.put_with_block_size(data, self.block_size)
    }

    /// [`put`](Self::put) with another block size (the reference's `put(buf, {blockSize})`).
    pub fn put_with_block_size(&self, data: &[u8], block_size: usize) -> Result<BlobId> {
        check_block_size(block_size)?;
        let _guard = self.lock.acquire()?;
        if data.is_empty() {
            return Ok(BlobId::empty(self.log.length(), self.log.byte_length()));
        }
        let blocks: Vec<&[u8]> = data.chunks(block_size).collect();
        let (length, byte_length) = self.log.append_batch(&blocks)?;
        // The batch is atomic, so the blob is the last blocks whatever else was appended before.
        Ok(BlobId {
            block_offset: length - blocks.len() as u64,
            block_length: blocks.len() as u64,
            byte_offset: byte_length - data.len() as u64,
            byte_length: data.len() as u64,
            block_map: false,
        })
    }

    /// Stores several buffers as consecutive plain blobs (each cut as [`put`](Self::put) cuts
    /// it) in one atomic append, so many small files cost one commit; returns their ids in
    /// order. An empty buffer takes no block (its id is empty, at its place in the log).
    pub fn put_many(&self, data: &[&[u8]]) -> Result<Vec<BlobId>> {
        let bs = self.block_size;
        let _guard = self.lock.acquire()?;
        let blocks: Vec<&[u8]> = data.iter().flat_map(|d| d.chunks(bs)).collect();
        let (mut block, mut byte) = if blocks.is_empty() {
            (self.log.length(), self.log.byte_length())
        } else {
            let total: u64 = data.iter().map(|d| d.len() as u64).sum();
            let (length, byte_length) = self.log.append_batch(&blocks)?;
            // the batch is atomic: the blobs are its blocks, whatever came before
            (length - blocks.len() as u64, byte_length - total)
        };
        let mut ids = Vec::with_capacity(data.len());
        for d in data {
            let n = d.len().div_ceil(bs) as u64;
            ids.push(BlobId {
                block_offset: block,
                block_length: n,
                byte_offset: byte,
                byte_length: d.len() as u64,
                block_map: false,
            });
            block += n;
            byte += d.len() as u64;
        }
        Ok(ids)
    }

    /// A writer making one block per `write` call, exactly as the reference's
    /// `createWriteStream()`. Waits while another writer (or `put`) of this `Blobs` is open on
    /// another thread; fails with [`Error::InvalidArgument`] instead of deadlocking if the open
    /// writer was opened by this thread.
    ///
    /// For `std::io::copy` and other small-buffer writers, prefer
    /// [`Chunking::Fixed`]`(DEFAULT_BLOCK_SIZE)` through [`writer_with`](Self::writer_with): per-write
    /// blocks would be as small as the caller's buffer.
    pub fn writer(&self) -> Result<BlobWriter<'static>> {
        self.writer_with(WriteOptions::default())
    }

    /// A writer with other chunking, a block map, or deduplication (see [`WriteOptions`]).
    pub fn writer_with<'a>(&self, opts: WriteOptions<'a>) -> Result<BlobWriter<'a>> {
        let guard = self.lock.acquire()?;
        BlobWriter::open(self.log.clone(), guard, opts)
    }

    /// Stores `data` deduplicated: cut by [`FastCdc`] with the default parameters (16/32/64 KiB),
    /// each chunk found in `index` (and still in this log) is reused, the others are appended, and a
    /// block map of all chunks is appended last. Returns the map's id and what was reused.
    pub fn put_dedup(
        &self,
        data: &[u8],
        index: &mut dyn DedupIndex,
    ) -> Result<(BlobId, DedupReport)> {
        let mut w = self.writer_with(WriteOptions {
            chunking: Chunking::ContentDefined(CdcParams::default()),
            block_map: true,
            dedup: Some(Box::new(index)),
        })?;
        w.write_blob(data)?;
        w.finish_with_report()
    }

    /// Records the blocks of blob `id` in `index`, in order (a later duplicate replaces an
    /// earlier one), without reading them: the hashes come from the log's tree. With a fresh index
    /// this is the reference's `createWriteStream({dedup: true, blob: id})`, which Hyperdrive uses to
    /// deduplicate a new version of a file against the previous one. Blocks whose tree node is not
    /// stored here are skipped.
    pub fn index_blob(&self, id: &BlobId, index: &mut dyn DedupIndex) -> Result<()> {
        let log = self.log.key();
        // on a replica, blocks past the length it knows have no node here: skipped
        let blocks = self.data_blocks(id)?.indexes;
        for i in blocks {
            let Some(node) = self.log.node(i.saturating_mul(2))? else {
                continue;
            };
            let entry = DedupEntry {
                log,
                index: i,
                byte_length: node.size,
            };
            index.insert(node.hash, entry)?;
        }
        Ok(())
    }

    /// The log indexes of blob `id`'s data blocks, in order: its block map's, or its block range.
    /// A range that overflows, or that runs past the end of a log this side writes, is an error;
    /// on a replica, which may not know the newest length yet, the indexes past the length it
    /// knows are left out and [`DataBlocks::complete`] is false.
    pub(crate) fn data_blocks(&self, id: &BlobId) -> Result<DataBlocks> {
        Ok(match self.block_map(id)? {
            Some(map) => DataBlocks {
                count: map.blocks.len() as u64,
                complete: true,
                indexes: Box::new(map.blocks.into_iter().map(|r| r.index)),
            },
            None => {
                let end = checked_block_end(id)?;
                let length = self.log.length();
                if end > length && self.log.writable() {
                    return Err(Error::Corrupt(format!(
                        "blob {id} runs past the end of its log ({length} blocks)"
                    )));
                }
                DataBlocks {
                    count: id.block_length,
                    complete: end <= length,
                    indexes: Box::new(id.block_offset..end.min(length)),
                }
            }
        })
    }

    // --- reading -------------------------------------------------------------------------------

    /// The whole blob.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>> {
        let refs: Vec<BlockRef> = match self.block_map(id)? {
            Some(map) => map.blocks,
            None => {
                let end = checked_block_end(id)?;
                let mut out = Vec::with_capacity(id.byte_length.min(1 << 26) as usize);
                for i in id.block_offset..end {
                    out.extend_from_slice(&self.log.get(i)?);
                }
                if out.len() as u64 != id.byte_length {
                    return Err(mismatch(id));
                }
                return Ok(out);
            }
        };
        let mut out = Vec::new();
        for r in refs {
            let block = self.log.get(r.index)?;
            if block.len() as u64 != r.byte_length {
                return Err(map_mismatch(r));
            }
            out.extend_from_slice(&block);
        }
        Ok(out)
    }

    /// Size of the file (for a block map: the sum of its entries, reading the map).
    pub fn size(&self, id: &BlobId) -> Result<u64> {
        if !id.block_map || id.byte_length == 0 {
            return Ok(id.byte_length);
        }
        Ok(self.block_map(id)?.map_or(0, |m| m.byte_length()))
    }

    /// The block map of a block-mapped blob (reading its blocks); `None` for a plain blob.
    pub fn block_map(&self, id: &BlobId) -> Result<Option<BlockMap>> {
        if !id.block_map {
            return Ok(None);
        }
        if id.block_length > MAX_MAP_BLOCKS {
            return Err(Error::Decode(DecodeError {
                what: "block map over 64 blocks",
            }));
        }
        let blocks = (id.block_offset..checked_block_end(id)?)
            .map(|i| self.log.get(i))
            .collect::<Result<Vec<_>>>()?;
        BlockMap::decode(&blocks).map(Some)
    }

    /// Up to `len` bytes from byte `start` of the blob, fetching only the blocks that hold them.
    /// Shorter than `len` when the blob ends first; `start` past the end is an error.
    pub fn read_range(&self, id: &BlobId, start: u64, len: u64) -> Result<Vec<u8>> {
        self.reader(id)?.read_at(start, len)
    }

    /// A `Read + Seek` cursor over the blob, reading block by block.
    pub fn reader(&self, id: &BlobId) -> Result<BlobReader> {
        BlobReader::open(self.log.clone(), id, self.block_map(id)?)
    }

    /// The blocks of the id itself, `start..end`: all of a plain blob; for a block-mapped blob only
    /// the map (see [`block_ranges`](Self::block_ranges) for its data).
    pub fn block_range(&self, id: &BlobId) -> (u64, u64) {
        (id.block_offset, id.block_end())
    }

    /// The block ranges (`start..end`, sorted, merged) holding bytes `start .. start + len` of the
    /// blob, map blocks included: what to download or prioritize to read that window.
    pub fn block_ranges(&self, id: &BlobId, start: u64, len: u64) -> Result<Vec<(u64, u64)>> {
        let mut ranges = self.reader(id)?.block_ranges(start, len)?;
        if id.block_map && id.block_length > 0 {
            ranges.push(self.block_range(id));
        }
        Ok(merge_ranges(ranges))
    }

    /// Drops the local copy of the blob's blocks (map and mapped blocks too), as the reference's
    /// `clear`. Blocks shared with other blobs through dedup are dropped for them as well; they are
    /// fetched again from peers on the next read. Returns how many blocks were dropped.
    pub fn clear(&self, id: &BlobId) -> Result<u64> {
        let mut cleared = 0;
        if id.block_map {
            match self.block_map(id) {
                Ok(Some(map)) => {
                    for r in
                        merge_ranges(map.blocks.iter().map(|r| (r.index, r.index + 1)).collect())
                    {
                        cleared += self.log.clear(r.0, r.1)?;
                    }
                }
                Ok(None) | Err(Error::NotAvailable(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cleared + self.log.clear(id.block_offset, checked_block_end(id)?)?)
    }
}

fn check_block_size(block_size: usize) -> Result<()> {
    if block_size == 0 || block_size > MAX_BLOCK_SIZE {
        return Err(Error::InvalidArgument(format!(
            "block size {block_size} is not between 1 and {MAX_BLOCK_SIZE}"
        )));
    }
    Ok(())
}

pub(crate) fn checked_block_end(id: &BlobId) -> Result<u64> {
    id.block_offset
        .checked_add(id.block_length)
        .ok_or(Error::Decode(DecodeError {
            what: "blob id: block range overflows",
        }))
}

pub(crate) fn mismatch(id: &BlobId) -> Error {
    Error::Corrupt(format!(
        "blob {id} does not match the log: its blocks do not hold exactly {} bytes",
        id.byte_length
    ))
}

pub(crate) fn map_mismatch(r: BlockRef) -> Error {
    Error::Corrupt(format!(
        "block map entry says block {} holds {} bytes, the log disagrees",
        r.index, r.byte_length
    ))
}

/// Sorts half-open ranges and merges those that overlap or touch; drops empty ones.
pub(crate) fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|r| r.0 < r.1);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The write lock of a [`Blobs`] (the reference's per-Hyperblobs mutex): one writer at a time,
/// so each blob's blocks are contiguous.
#[derive(Default)]
struct WriteLock {
    owner: Mutex<Option<ThreadId>>,
    free: Condvar,
}

/// Holds the write lock until dropped.
pub(crate) struct WriteGuard(Arc<WriteLock>);

impl WriteLock {
    fn acquire(self: &Arc<Self>) -> Result<WriteGuard> {
        let me = std::thread::current().id();
        let mut owner = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        if *owner == Some(me) {
            return Err(Error::InvalidArgument(
                "a blob writer of this log is already open on this thread: finish or drop it first"
                    .into(),
            ));
        }
        while owner.is_some() {
            owner = self.free.wait(owner).unwrap_or_else(|p| p.into_inner());
        }
        *owner = Some(me);
        Ok(WriteGuard(self.clone()))
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        *self.0.owner.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.0.free.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::merge_ranges;

    #[test]
    fn ranges_merge() {
        assert_eq!(
            merge_ranges(vec![(5, 6), (1, 3), (3, 4), (9, 9), (2, 3), (7, 8)]),
            [(1, 4), (5, 6), (7, 8)]
        );
    }
}

//! Streaming: [`BlobWriter`] (`std::io::Write`, the reference's `BlobWriteStream`) and
//! [`BlobReader`] (`Read + Seek`, its `BlobReadStream` / `BlockMapReadStream`).

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::appender::{Appender, Batch, conflict};
use super::blockmap::{BlockMap, BlockRef, MAX_ENTRIES};
use super::cdc::{CdcParams, FastCdc};
use super::dedup::{DedupEntry, DedupIndex, DedupReport, block_hash};
use super::id::BlobId;
use super::{
    MAX_BLOCK_SIZE, WriteGuard, check_block_size, checked_block_end, map_mismatch, mismatch,
};
use crate::crypto::Hash;
use crate::error::{Error, Result};
use crate::log::Log;

/// Blocks per append, as the reference (`_batch.length >= 16`).
const BATCH_BLOCKS: usize = 16;
/// Also append once this many bytes are waiting, so large writes do not pile up in memory.
const BATCH_BYTES: usize = 4 << 20;

/// How a [`BlobWriter`] cuts what is written into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// Each `write` call becomes one block, as the reference's write stream (a call over 15 MiB
    /// takes the first 15 MiB). The block sizes are the caller's write sizes.
    #[default]
    PerWrite,
    /// Blocks of this many bytes whatever the write sizes, the last one shorter (as `put`).
    Fixed(usize),
    /// Content-defined blocks ([`FastCdc`]), for deduplication.
    ContentDefined(CdcParams),
}

/// Options of [`Blobs::writer_with`](super::Blobs::writer_with).
#[derive(Default)]
pub struct WriteOptions<'a> {
    /// How the data is cut into blocks.
    pub chunking: Chunking,
    /// Append a block map after the data and return its id (the reference's `blockMap: true`).
    pub block_map: bool,
    /// Deduplicate against this index (implies `block_map`): a chunk already in the log is
    /// referenced instead of appended, and new chunks are recorded. With a fresh index (or one
    /// filled by [`Blobs::index_blob`](super::Blobs::index_blob)) and [`Chunking::PerWrite`] this is
    /// the reference's `createWriteStream({dedup: true[, blob]})`, byte for byte.
    pub dedup: Option<Box<dyn DedupIndex + 'a>>,
}

impl std::fmt::Debug for WriteOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("chunking", &self.chunking)
            .field("block_map", &self.block_map)
            .field("dedup", &self.dedup.is_some())
            .finish()
    }
}

enum Cutter {
    PerWrite,
    Fixed(usize),
    Cdc(FastCdc),
}

impl Cutter {
    /// The most bytes a block can hold (the buffer is cut once it holds this many).
    fn max(&self) -> usize {
        match self {
            Cutter::PerWrite => MAX_BLOCK_SIZE,
            Cutter::Fixed(n) => *n,
            Cutter::Cdc(c) => c.params().max_size,
        }
    }

    fn cut(&self, data: &[u8]) -> usize {
        match self {
            Cutter::PerWrite => data.len().min(MAX_BLOCK_SIZE),
            Cutter::Fixed(n) => data.len().min(*n),
            Cutter::Cdc(c) => c.cut(data),
        }
    }
}

/// Writes one blob. Blocks are appended in batches as they fill (memory stays around one batch
/// plus one block), and [`finish`](Self::finish) appends the rest (and the block map) and returns
/// the id. Dropping a writer without finishing abandons the blob: blocks already appended stay
/// in the log, unreferenced.
///
/// Holds the [`Blobs`](super::Blobs) write lock until finished or dropped.
pub struct BlobWriter<'a> {
    /// Appends batches in the background when [`BlobWriter::append_in_background`] asked for it;
    /// declared first so it is dropped (and its last batch stored) before the write lock is.
    appender: Option<Appender>,
    background: bool,
    log: Log,
    _guard: WriteGuard,
    cutter: Cutter,
    /// Bytes written but not yet cut (fixed and content-defined chunking).
    buf: Vec<u8>,
    dedup: Option<Box<dyn DedupIndex + 'a>>,
    map: Option<Vec<BlockRef>>,
    /// Log length and byte length when the writer opened.
    start: (u64, u64),
    /// Log length after this writer's last append.
    committed: u64,
    /// Bytes this writer appended (data blocks).
    appended_bytes: u64,
    /// Blocks cut but not appended yet, back to back (`pending_ends[i]` is where block `i` ends).
    pending: Vec<u8>,
    pending_ends: Vec<usize>,
    report: DedupReport,
    failed: bool,
    /// Append once this many blocks or bytes wait (the reference's 16 blocks by default).
    batch: (usize, usize),
}

impl std::fmt::Debug for BlobWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("log", &self.log)
            .field("start", &self.start)
            .field("report", &self.report)
            .finish()
    }
}

impl<'a> BlobWriter<'a> {
    pub(super) fn open(log: Log, guard: WriteGuard, opts: WriteOptions<'a>) -> Result<Self> {
        let cutter = match opts.chunking {
            Chunking::PerWrite => Cutter::PerWrite,
            Chunking::Fixed(n) => {
                check_block_size(n)?;
                Cutter::Fixed(n)
            }
            Chunking::ContentDefined(p) => Cutter::Cdc(FastCdc::new(p)?),
        };
        let start = (log.length(), log.byte_length());
        Ok(BlobWriter {
            appender: None,
            background: false,
            log,
            _guard: guard,
            cutter,
            buf: Vec::new(),
            map: (opts.block_map || opts.dedup.is_some()).then(Vec::new),
            dedup: opts.dedup,
            start,
            committed: start.0,
            appended_bytes: 0,
            pending: Vec::new(),
            pending_ends: Vec::new(),
            report: DedupReport::default(),
            failed: false,
            batch: (BATCH_BLOCKS, BATCH_BYTES),
        })
    }

    /// Appends once `blocks` blocks or `bytes` bytes wait instead of the reference's 16 blocks
    /// (4 MiB): fewer, larger commits for a large file (the blocks are the same).
    pub(crate) fn set_append_batch(&mut self, blocks: usize, bytes: usize) {
        self.batch = (blocks.max(1), bytes.max(1));
    }

    /// Appends each batch on a thread of its own while the next one is cut (for a large file).
    /// Only for plain blobs: a writer with a block map or a dedup index appends in line. An error
    /// of a background append comes back from a later write, `flush` or `finish`.
    pub(crate) fn append_in_background(&mut self) {
        self.background = self.map.is_none() && self.dedup.is_none();
    }

    /// What was stored and reused so far (chunks still buffered are not counted yet).
    pub fn report(&self) -> DedupReport {
        self.report
    }

    /// Writes all of `data`, returning crate errors rather than `io::Error`.
    pub fn write_blob(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let n = self.accept(data)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Appends everything left (and the block map) and returns the blob's id.
    pub fn finish(self) -> Result<BlobId> {
        self.finish_with_report().map(|(id, _)| id)
    }

    /// [`finish`](Self::finish), with what was stored and reused.
    pub fn finish_with_report(mut self) -> Result<(BlobId, DedupReport)> {
        self.check_usable()?;
        let result = self.finish_inner();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn finish_inner(&mut self) -> Result<(BlobId, DedupReport)> {
        let buf = std::mem::take(&mut self.buf);
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let n = self.cutter.cut(rest);
            self.block(&rest[..n])?;
            rest = &rest[n..];
        }
        self.append_pending()?;
        self.wait_appended()?;
        let Some(entries) = self.map.take() else {
            let id = BlobId {
                block_offset: self.start.0,
                block_length: self.committed - self.start.0,
                byte_offset: self.start.1,
                byte_length: self.appended_bytes,
                block_map: false,
            };
            return Ok((id, self.report));
        };
        if entries.is_empty() {
            // The reference would write a block-map id with no map blocks, which its own
            // `get` cannot read; an empty plain id reads as the same empty file everywhere.
            return Ok((
                BlobId::empty(self.log.length(), self.log.byte_length()),
                self.report,
            ));
        }
        let blocks = BlockMap { blocks: entries }.encode();
        let map_bytes: usize = blocks.iter().map(Vec::len).sum();
        let (length, byte_length) = self.log.append_batch(&blocks)?;
        let id = BlobId {
            block_offset: length - blocks.len() as u64,
            block_length: blocks.len() as u64,
            byte_offset: byte_length - map_bytes as u64,
            byte_length: map_bytes as u64,
            block_map: true,
        };
        Ok((id, self.report))
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "this blob writer failed earlier; start a new one".into(),
            ));
        }
        Ok(())
    }

    /// Takes some of `data` (at least one byte of non-empty input), cutting and appending what
    /// fills blocks. Returns how many bytes were taken.
    fn accept(&mut self, data: &[u8]) -> Result<usize> {
        self.check_usable()?;
        let r = self.accept_inner(data);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn accept_inner(&mut self, data: &[u8]) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if let Cutter::PerWrite = self.cutter {
            let n = self.cutter.cut(data);
            self.block(&data[..n])?;
            return Ok(n);
        }
        let max = self.cutter.max();
        if let Cutter::Fixed(size) = self.cutter {
            // Fixed blocks are cut straight from `data` (no copy through the buffer): first the
            // buffered start of a block is completed, then whole blocks, then the rest is kept.
            let mut off = 0;
            if !self.buf.is_empty() {
                off = (size - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..off]);
                if self.buf.len() < size {
                    return Ok(off);
                }
                let block = std::mem::take(&mut self.buf);
                self.block(&block)?;
                self.buf = block;
                self.buf.clear();
            }
            while data.len() - off >= size {
                self.block(&data[off..off + size])?;
                off += size;
            }
            self.buf.extend_from_slice(&data[off..]);
            return Ok(data.len());
        }
        // The buffer holds less than `max` between calls and never more than `2 * max`.
        let n = data.len().min(2 * max - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        let buf = std::mem::take(&mut self.buf);
        let mut off = 0;
        while buf.len() - off >= max {
            let cut = self.cutter.cut(&buf[off..]);
            self.block(&buf[off..off + cut])?;
            off += cut;
        }
        self.buf = buf;
        self.buf.drain(..off);
        Ok(n)
    }

    /// One chunk: reused from the index, or queued for appending.
    fn block(&mut self, data: &[u8]) -> Result<()> {
        let len = data.len() as u64;
        if self.map.as_ref().is_some_and(|m| m.len() >= MAX_ENTRIES) {
            return Err(Error::InvalidArgument(format!(
                "a block-mapped blob can hold at most {MAX_ENTRIES} blocks (readers refuse \
                 larger maps); use larger chunks"
            )));
        }
        self.report.blocks_total += 1;
        self.report.bytes_total += len;
        let index = self.committed + self.pending_ends.len() as u64;
        let mut entry = BlockRef {
            index,
            byte_length: len,
        };
        let mut reused = false;
        if let Some(dedup) = self.dedup.as_mut() {
            let hash = block_hash(data);
            let found = dedup.lookup(&hash)?;
            let valid = match found {
                Some(e) if self.still_valid(&e, &hash)? => Some(e),
                _ => None,
            };
            if let Some(e) = valid {
                entry = BlockRef {
                    index: e.index,
                    byte_length: e.byte_length,
                };
                reused = true;
            } else if let Some(dedup) = self.dedup.as_mut() {
                let e = DedupEntry {
                    log: self.log.key(),
                    index,
                    byte_length: len,
                };
                dedup.insert(hash, e)?;
            }
        }
        if let Some(map) = &mut self.map {
            map.push(entry);
        }
        if reused {
            self.report.blocks_reused += 1;
            return Ok(());
        }
        self.report.blocks_new += 1;
        self.report.bytes_new += len;
        self.pending.extend_from_slice(data);
        self.pending_ends.push(self.pending.len());
        if self.pending_ends.len() >= self.batch.0 || self.pending.len() >= self.batch.1 {
            self.append_pending()?;
        }
        Ok(())
    }

    /// True if `e` names a block of this log that holds the content hashed `hash`.
    fn still_valid(&self, e: &DedupEntry, hash: &Hash) -> Result<bool> {
        if e.log != self.log.key() {
            return Ok(false);
        }
        if e.index >= self.committed {
            // Queued by this writer, not appended yet.
            let Some(block) = self.pending_block((e.index - self.committed) as usize) else {
                return Ok(false);
            };
            return Ok(block.len() as u64 == e.byte_length && block_hash(block) == *hash);
        }
        Ok(match self.log.node(2 * e.index)? {
            Some(node) => node.hash == *hash && node.size == e.byte_length,
            None => false,
        })
    }

    /// Block `i` of the ones waiting to be appended.
    fn pending_block(&self, i: usize) -> Option<&[u8]> {
        let end = *self.pending_ends.get(i)?;
        let start = if i == 0 { 0 } else { self.pending_ends[i - 1] };
        Some(&self.pending[start..end])
    }

    fn append_pending(&mut self) -> Result<()> {
        if self.pending_ends.is_empty() {
            return Ok(());
        }
        let n = self.pending_ends.len() as u64;
        if self.background {
            // hashed here, while the batch before this one is being stored
            let hashes = {
                let blocks: Vec<&[u8]> = (0..self.pending_ends.len())
                    .filter_map(|i| self.pending_block(i))
                    .collect();
                crate::crypto::leaf_hashes_simd(&blocks)
            };
            let appender = match &mut self.appender {
                Some(a) => a,
                None => self.appender.insert(Appender::start(self.log.clone())?),
            };
            let batch = Batch {
                data: std::mem::take(&mut self.pending),
                ends: std::mem::take(&mut self.pending_ends),
                hashes,
                start: self.committed,
            };
            let bytes = batch.data.len() as u64;
            // the previous batch's emptied buffers take this one's place
            (self.pending, self.pending_ends) = appender.send(batch)?;
            self.committed += n;
            self.appended_bytes += bytes;
            return Ok(());
        }
        if self.log.length() != self.committed {
            return Err(conflict());
        }
        let blocks: Vec<&[u8]> = (0..self.pending_ends.len())
            .filter_map(|i| self.pending_block(i))
            .collect();
        let (length, _) = self.log.append_batch(&blocks)?;
        if length != self.committed + n {
            return Err(conflict());
        }
        self.committed = length;
        self.appended_bytes += self.pending.len() as u64;
        // the buffer keeps its capacity for the next batch
        self.pending.clear();
        self.pending_ends.clear();
        Ok(())
    }

    /// Waits until the batch being appended in the background (if any) is stored.
    fn wait_appended(&mut self) -> Result<()> {
        if let Some(a) = &mut self.appender {
            a.wait()?;
        }
        Ok(())
    }
}

impl Write for BlobWriter<'_> {
    /// Takes bytes from `buf`: with [`Chunking::PerWrite`] the call makes exactly one block (of
    /// at most 15 MiB); otherwise bytes are buffered and cut. An empty `buf` does nothing.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.accept(buf).map_err(io::Error::other)
    }

    /// Appends the complete blocks waiting in memory. A partial chunk stays buffered: cutting it
    /// here would change the blocks.
    fn flush(&mut self) -> io::Result<()> {
        self.check_usable().map_err(io::Error::other)?;
        self.append_pending()
            .and_then(|()| self.wait_appended())
            .map_err(|e| {
                self.failed = true;
                io::Error::other(e)
            })
    }
}

/// How a blob's bytes are laid out over blocks.
#[derive(Debug, Clone)]
enum Layout {
    /// Consecutive blocks `first..end` starting at log byte `byte_offset`.
    Plain {
        first: u64,
        end: u64,
        byte_offset: u64,
    },
    /// The map's entries, with `ends[k]` = blob offset just past entry `k`.
    Mapped {
        blocks: Vec<BlockRef>,
        ends: Vec<u64>,
    },
}

/// One block in the reader's hands.
#[derive(Debug)]
struct Current {
    /// Log index (plain) or map entry number (mapped).
    slot: u64,
    /// Blob offset of the block's first byte.
    start: u64,
    data: Vec<u8>,
}

/// A `Read + Seek` cursor over one blob. It holds one block at a time, fetched through
/// [`Log::get`] when the position enters it; a seek locates the block in O(log n) (the log's byte
/// seek for a plain blob, a binary search over the map's offsets for a block map).
#[derive(Debug)]
pub struct BlobReader {
    log: Log,
    layout: Layout,
    size: u64,
    pos: u64,
    current: Option<Current>,
    /// Blocks read ahead (plain blobs read sequentially), the first one at `ahead_slot`.
    ahead: std::collections::VecDeque<Vec<u8>>,
    ahead_slot: u64,
    /// Consecutive loads that continued from the end of the previous block.
    streak: u32,
}

/// What a sequential reader reads ahead, once it has moved on to a second consecutive block.
const READ_AHEAD_BLOCKS: u64 = 64;
const READ_AHEAD_BYTES: usize = 1 << 20;

impl BlobReader {
    pub(super) fn open(log: Log, id: &BlobId, map: Option<BlockMap>) -> Result<BlobReader> {
        let (layout, size) = match map {
            None => {
                let end = checked_block_end(id)?;
                id.byte_offset
                    .checked_add(id.byte_length)
                    .ok_or_else(|| mismatch(id))?;
                let layout = Layout::Plain {
                    first: id.block_offset,
                    end,
                    byte_offset: id.byte_offset,
                };
                (layout, id.byte_length)
            }
            Some(map) => {
                let mut ends = Vec::with_capacity(map.blocks.len());
                let mut total: u64 = 0;
                for b in &map.blocks {
                    total = total
                        .checked_add(b.byte_length)
                        .ok_or_else(|| map_mismatch(*b))?;
                    ends.push(total);
                }
                let layout = Layout::Mapped {
                    blocks: map.blocks,
                    ends,
                };
                (layout, total)
            }
        };
        Ok(BlobReader {
            log,
            layout,
            size,
            pos: 0,
            current: None,
            ahead: std::collections::VecDeque::new(),
            ahead_slot: 0,
            streak: 0,
        })
    }

    /// Size of the blob in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// True for an empty blob.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Up to `len` bytes at `start` (fewer if the blob ends first); moves the position past them.
    pub fn read_at(&mut self, start: u64, len: u64) -> Result<Vec<u8>> {
        if start > self.size {
            return Err(Error::OutOfBounds(format!(
                "byte {start} of a blob of {} bytes",
                self.size
            )));
        }
        let n = len.min(self.size - start);
        let mut out = vec![
            0u8;
            usize::try_from(n).map_err(|_| {
                Error::InvalidArgument(format!("{n} bytes do not fit in memory"))
            })?
        ];
        self.read_at_into(start, &mut out)?;
        Ok(out)
    }

    /// Fills `out` with the bytes at `start` (fewer if the blob ends first; returns how many);
    /// moves the position past them. [`BlobReader::read_at`] without the allocation.
    pub fn read_at_into(&mut self, start: u64, out: &mut [u8]) -> Result<usize> {
        if start > self.size {
            return Err(Error::OutOfBounds(format!(
                "byte {start} of a blob of {} bytes",
                self.size
            )));
        }
        let n = out
            .len()
            .min(usize::try_from(self.size - start).unwrap_or(usize::MAX));
        self.pos = start;
        let mut filled = 0;
        while filled < n {
            let k = self.read_some(&mut out[filled..n])?;
            if k == 0 {
                return Err(Error::Corrupt("a blob ended before its size".into()));
            }
            filled += k;
        }
        Ok(n)
    }

    /// Block ranges holding `start .. start + len` (data blocks only), sorted and merged.
    pub(super) fn block_ranges(&mut self, start: u64, len: u64) -> Result<Vec<(u64, u64)>> {
        if start > self.size {
            return Err(Error::OutOfBounds(format!(
                "byte {start} of a blob of {} bytes",
                self.size
            )));
        }
        let end = start + len.min(self.size - start);
        if start == end {
            return Ok(Vec::new());
        }
        match &self.layout {
            Layout::Plain { .. } => {
                let (first, _) = self.locate(start)?;
                let (last, _) = self.locate(end - 1)?;
                Ok(vec![(first, last + 1)])
            }
            Layout::Mapped { blocks, ends } => {
                let first = ends.partition_point(|&e| e <= start);
                let last = ends.partition_point(|&e| e < end);
                let out = blocks[first..=last]
                    .iter()
                    .map(|b| (b.index, b.index.saturating_add(1)))
                    .collect();
                Ok(super::merge_ranges(out))
            }
        }
    }

    /// `(slot, blob offset where that block starts)` for the block holding byte `pos < size`.
    fn locate(&self, pos: u64) -> Result<(u64, u64)> {
        match &self.layout {
            Layout::Plain {
                first,
                end,
                byte_offset,
            } => {
                if pos == 0 {
                    return Ok((*first, 0));
                }
                let (index, offset) = match self.log.seek(byte_offset + pos) {
                    // a replica missing the nodes, or not yet knowing the length: fetch blocks
                    Err(Error::MissingNode(_)) => {
                        return self.locate_remote(*first, *end, *byte_offset, pos);
                    }
                    Err(Error::OutOfBounds(_)) if !self.log.writable() => {
                        return self.locate_remote(*first, *end, *byte_offset, pos);
                    }
                    other => other?,
                };
                match pos.checked_sub(offset) {
                    Some(start) if (*first..*end).contains(&index) => Ok((index, start)),
                    _ => Err(Error::Corrupt(format!(
                        "blob byte {pos} falls in log block {index}, outside the blob's blocks \
                         {first}..{end}"
                    ))),
                }
            }
            Layout::Mapped { ends, .. } => {
                let k = ends.partition_point(|&e| e <= pos);
                let start = if k == 0 { 0 } else { ends[k - 1] };
                Ok((k as u64, start))
            }
        }
    }

    /// Locates byte `pos` of a plain blob whose tree nodes are not all local (a sparse copy):
    /// guesses the block by interpolation, fetches it (its proof brings the nodes that give its
    /// byte offset) and narrows down; with equal-sized blocks the first guess is right.
    fn locate_remote(
        &self,
        first: u64,
        end: u64,
        byte_offset: u64,
        pos: u64,
    ) -> Result<(u64, u64)> {
        let (mut lo, mut hi) = (first, end); // the block is in lo..hi
        let (mut lo_byte, mut hi_byte) = (0u64, self.size);
        for _ in 0..64 {
            if hi - lo <= 1 {
                // lo_byte is where block lo starts: the blob's start, or the end of a block read
                return Ok((lo, lo_byte));
            }
            let span = (hi_byte - lo_byte).max(1) as u128;
            let guess = lo + (((pos - lo_byte) as u128 * (hi - lo) as u128) / span) as u64;
            let guess = guess.clamp(lo, hi - 1);
            let block = self.log.get(guess)?;
            // the block's place in the blob: it must lie inside the id's byte range
            let start = self
                .log
                .byte_offset(guess)?
                .checked_sub(byte_offset)
                .filter(|&s| s <= self.size)
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "log block {guess} lies outside the bytes of its blob (byte offset \
                         {byte_offset}, {} bytes)",
                        self.size
                    ))
                })?;
            let stop = start + block.len() as u64;
            if stop > self.size {
                return Err(Error::Corrupt(format!(
                    "log block {guess} runs past the end of its blob"
                )));
            }
            if pos < start {
                (hi, hi_byte) = (guess, start);
            } else if pos >= stop {
                (lo, lo_byte) = (guess + 1, stop);
            } else {
                return Ok((guess, start));
            }
        }
        Err(Error::Corrupt(format!(
            "could not locate byte {pos} of a blob in blocks {first}..{end}"
        )))
    }

    fn load(&mut self, slot: u64, start: u64) -> Result<()> {
        // a single `get` (not a ranged read, which counts itself) is counted as streamed below
        let mut single = true;
        let data = match &self.layout {
            Layout::Plain { end, .. } => {
                if slot >= *end {
                    return Err(Error::Corrupt(format!(
                        "a blob of {} bytes ends before its blocks do",
                        self.size
                    )));
                }
                let data = match self.ahead.front() {
                    Some(_) if self.ahead_slot == slot => {
                        self.ahead_slot += 1;
                        single = false;
                        self.ahead.pop_front().expect("front checked")
                    }
                    _ => {
                        self.ahead.clear();
                        let stop = slot.saturating_add(READ_AHEAD_BLOCKS).min(*end);
                        let batch = (self.streak > 0 && stop > slot + 1)
                            .then(|| self.log.get_range_local(slot, stop, READ_AHEAD_BYTES).ok())
                            .flatten();
                        match batch {
                            Some(blocks) => {
                                self.ahead = blocks.into();
                                self.ahead_slot = slot + 1;
                                single = false;
                                self.ahead.pop_front().expect("at least one block")
                            }
                            // not every block is here (or one is bad): this one alone, as `get`
                            // reads it (waiting for it on a remote log)
                            None => self.log.get(slot)?,
                        }
                    }
                };
                if start.saturating_add(data.len() as u64) > self.size {
                    return Err(Error::Corrupt(format!(
                        "log block {slot} runs past the end of its blob"
                    )));
                }
                data
            }
            Layout::Mapped { blocks, .. } => {
                let r = blocks[slot as usize];
                let data = self.log.get(r.index)?;
                if data.len() as u64 != r.byte_length {
                    return Err(map_mismatch(r));
                }
                data
            }
        };
        if single {
            self.log.note_streamed(data.len() as u64);
        }
        self.current = Some(Current { slot, start, data });
        Ok(())
    }

    fn read_some(&mut self, out: &mut [u8]) -> Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(c) = &self.current {
                let end = c.start + c.data.len() as u64;
                if c.start <= self.pos && self.pos < end {
                    let from = (self.pos - c.start) as usize;
                    let n = out.len().min(c.data.len() - from);
                    out[..n].copy_from_slice(&c.data[from..from + n]);
                    self.pos += n as u64;
                    return Ok(n);
                }
            }
            // Reading on from the end of the current block needs no seek.
            let (slot, start) = match &self.current {
                Some(c) if c.start + c.data.len() as u64 == self.pos => {
                    self.streak = self.streak.saturating_add(1);
                    (c.slot + 1, self.pos)
                }
                _ => {
                    self.streak = 0;
                    let (slot, start) = self.locate(self.pos)?;
                    self.load(slot, start)?;
                    // the block located must hold `pos` (or end at it, when reading on from
                    // there moves forward): otherwise locating again would give it again
                    let c = self.current.as_ref().expect("just loaded");
                    let end = c.start.saturating_add(c.data.len() as u64);
                    if !(c.start <= self.pos && self.pos <= end) {
                        return Err(Error::Corrupt(format!(
                            "blob byte {} is not in log block {slot}, where the blob's blocks \
                             place it",
                            self.pos
                        )));
                    }
                    continue;
                }
            };
            self.load(slot, start)?;
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_some(buf).map_err(io::Error::other)
    }
}

impl Seek for BlobReader {
    /// Any position is allowed, past the end too (reads there return 0 bytes).
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        Ok(self.pos)
    }
}

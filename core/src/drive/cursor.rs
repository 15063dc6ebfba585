//! Random access to a file: a byte cursor, and read streams over a byte range built on it.
//!
//! On a remote drive each read fetches the block it needs at the top priority (a `get`), and
//! the cursor keeps a linear prefetch range ahead of its position; a seek moves (withdraws and
//! re-adds) that range, so blocks the cursor left behind stop being fetched.

use std::io::{Read, Seek, SeekFrom};

use super::entry::Entry;
use crate::blobs::{BlobId, BlobReader, Blobs};
use crate::error::{Error, Result};
use crate::replication::Prioritized;
use crate::scheduler::{Order, Prioritize};

/// How far ahead of its position a cursor prefetches.
pub const PREFETCH_BYTES: u64 = 1 << 20;

/// A byte cursor on one file ([`super::Drive::cursor`]): `seek`, `read`, `tell`; also
/// `std::io::Read + Seek`.
pub struct Cursor {
    blobs: Blobs,
    path: String,
    blob: BlobId,
    reader: BlobReader,
    /// The prefetch range ahead of the position (remote logs only) and where it starts.
    prefetch: Option<(u64, Vec<Prioritized>)>,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("path", &self.path)
            .field("position", &self.reader.position())
            .field("size", &self.reader.len())
            .finish()
    }
}

impl Cursor {
    pub(super) fn new(blobs: Blobs, path: String, entry: Entry) -> Result<Cursor> {
        let blob = entry
            .blob
            .ok_or_else(|| Error::InvalidArgument(format!("{path} is not a file")))?;
        let reader = blobs.reader(&blob)?;
        Ok(Cursor {
            blobs,
            path,
            blob,
            reader,
            prefetch: None,
        })
    }

    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.reader.len()
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.reader.is_empty()
    }

    /// The position.
    pub fn tell(&self) -> u64 {
        self.reader.position()
    }

    /// Moves to byte `pos` (at most the size; past it is an error).
    pub fn seek_to(&mut self, pos: u64) -> Result<u64> {
        if pos > self.len() {
            return Err(Error::OutOfBounds(format!(
                "seek to byte {pos} of {} ({} bytes)",
                self.path,
                self.len()
            )));
        }
        self.reader
            .seek(SeekFrom::Start(pos))
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        Ok(pos)
    }

    /// Reads up to `n` bytes from the position (fewer at the end of the file).
    pub fn read_bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let pos = self.tell();
        self.prefetch_from(pos)?;
        let out = self.reader.read_at(pos, n as u64)?;
        Ok(out)
    }

    /// Reads into `buf` from the position; returns the bytes read (0 at the end).
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let bytes = self.read_bytes(buf.len())?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// Keeps a linear prefetch range over `[pos, pos + PREFETCH_BYTES)` on a remote log; a
    /// position outside the current range replaces it.
    fn prefetch_from(&mut self, pos: u64) -> Result<()> {
        let log = self.blobs.log();
        if log.writable() || pos >= self.len() {
            return Ok(());
        }
        if let Some((start, _)) = &self.prefetch
            && pos >= *start
            && pos < start + PREFETCH_BYTES / 2
        {
            return Ok(());
        }
        let ranges = self.blobs.block_ranges(&self.blob, pos, PREFETCH_BYTES)?;
        let handles = ranges
            .into_iter()
            .map(|(a, b)| {
                log.prioritize(
                    Prioritize::range(a, b)
                        .order(Order::Linear)
                        .priority(6)
                        .hotswap(true),
                )
            })
            .collect();
        // the old range is withdrawn as it is replaced
        self.prefetch = Some((pos, handles));
        Ok(())
    }
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_into(buf).map_err(std::io::Error::other)
    }
}

impl Seek for Cursor {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.tell().checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        self.seek_to(target).map_err(std::io::Error::other)
    }
}

/// The bytes of a range of one file, in chunks ([`super::Drive::read_stream`]). Its range is
/// prioritized (linear) on a remote drive while the stream lives.
pub struct ReadStream {
    cursor: Cursor,
    end: u64,
    _range: Vec<Prioritized>,
}

impl std::fmt::Debug for ReadStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadStream")
            .field("cursor", &self.cursor)
            .field("end", &self.end)
            .finish()
    }
}

/// Largest chunk a read stream yields.
const CHUNK: usize = 64 * 1024;

impl ReadStream {
    pub(super) fn new(
        blobs: Blobs,
        path: String,
        entry: Entry,
        start: u64,
        end_inclusive: Option<u64>,
    ) -> Result<ReadStream> {
        let mut cursor = Cursor::new(blobs, path, entry)?;
        let size = cursor.len();
        let end = match end_inclusive {
            Some(e) => e.saturating_add(1).min(size),
            None => size,
        };
        if start > size {
            return Err(Error::OutOfBounds(format!(
                "a read from byte {start} of {} ({size} bytes)",
                cursor.path
            )));
        }
        let mut range = Vec::new();
        let log = cursor.blobs.log().clone();
        if !log.writable() && end > start {
            for (a, b) in cursor
                .blobs
                .block_ranges(&cursor.blob, start, end - start)?
            {
                range.push(
                    log.prioritize(
                        Prioritize::range(a, b)
                            .order(Order::Linear)
                            .priority(5)
                            .hotswap(true),
                    ),
                );
            }
        }
        cursor.seek_to(start)?;
        Ok(ReadStream {
            cursor,
            end: end.max(start),
            _range: range,
        })
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.end - self.cursor.tell()
    }

    /// The next bytes of the range, at most `buf.len()` (0 at its end), written into `buf`: what
    /// [`Iterator::next`] yields, without allocating a chunk.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = usize::try_from(self.remaining())
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let at = self.cursor.tell();
        self.cursor.reader.read_at_into(at, &mut buf[..n])
    }

    /// Size of the chunks [`Iterator::next`] yields (the last one may be shorter).
    pub const CHUNK: usize = CHUNK;
}

impl Iterator for ReadStream {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let left = self.remaining();
        if left == 0 {
            return None;
        }
        let n = (left as usize).min(CHUNK);
        match self.cursor.reader.read_at(self.cursor.tell(), n as u64) {
            Ok(b) if b.is_empty() => None,
            other => Some(other),
        }
    }
}

//! Many writes with few commits ([`Drive::batch`]): the reference's `drive.batch()`.

use super::entry::{self, Entry};
use super::{Drive, PutOptions, path};
use crate::bee::Batch;
use crate::blobs::DedupReport;
use crate::error::Result;

/// File contents waiting in a batch are appended once they reach this many bytes...
const CONTENT_BYTES: usize = 8 << 20;
/// ...or this many files.
const CONTENT_FILES: usize = 4096;

/// Writes staged together ([`Drive::batch`]): puts, deletions and symlinks.
///
/// File contents are appended to the content log several files per append (one commit for
/// up to 8 MiB or 4,096 files), and every entry goes into one bee batch that
/// [`flush`](Self::flush) appends in one commit, so the batch's changes appear together, at
/// consecutive versions, as with the reference's `drive.batch()`. Dropping a batch without
/// flushing discards its entries (content already appended stays in the log, unreferenced,
/// as in the reference).
///
/// While a batch has pending entries, no other write may go to the drive's metadata log: the
/// flush fails with [`crate::Error::Conflict`] if one did.
pub struct DriveBatch {
    drive: Drive,
    bee: Batch,
    /// Contents of the files not appended yet, back to back.
    content: Vec<u8>,
    /// The files whose contents wait in `content`: path, end offset in `content`, options.
    files: Vec<(String, usize, bool, Option<serde_json::Value>)>,
}

impl std::fmt::Debug for DriveBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveBatch")
            .field("drive", &self.drive)
            .field("pending_entries", &self.bee.len())
            .field("pending_files", &self.files.len())
            .finish()
    }
}

impl Drive {
    /// A batch of writes appended with few commits (see [`DriveBatch`]).
    pub fn batch(&self) -> Result<DriveBatch> {
        self.check_writable()?;
        Ok(DriveBatch {
            drive: self.clone(),
            bee: self.db.batch(),
            content: Vec::new(),
            files: Vec::new(),
        })
    }
}

impl DriveBatch {
    /// Writes a file (whole).
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.put_with(path, data, &PutOptions::default()).map(drop)
    }

    /// Writes a file with options. A deduplicated write is stored at once (as
    /// [`Drive::put_with`] stores it) and returns its report; other files wait to be appended
    /// with the next ones.
    pub fn put_with(
        &mut self,
        path: &str,
        data: &[u8],
        opts: &PutOptions,
    ) -> Result<Option<DedupReport>> {
        let path = path::normalize(path)?;
        if opts.dedup {
            self.append_content()?;
            let mut w = self.drive.writer(&path, opts.clone())?;
            w.write_all_bytes(data)?;
            let (e, report) = w.finish_content()?;
            self.bee.put(entry::key(&path), e.encode())?;
            return Ok(report);
        }
        self.content.extend_from_slice(data);
        self.files.push((
            path,
            self.content.len(),
            opts.executable,
            opts.metadata.clone(),
        ));
        if self.content.len() >= CONTENT_BYTES || self.files.len() >= CONTENT_FILES {
            self.append_content()?;
        }
        Ok(None)
    }

    /// Deletes a file or symlink (as the batch sees the drive); `false` if there was none.
    pub fn del(&mut self, path: &str) -> Result<bool> {
        let path = path::normalize(path)?;
        self.append_content()?;
        self.bee.del(entry::key(&path))
    }

    /// Makes `path` a symlink to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<Entry> {
        let path = path::normalize(path)?;
        self.append_content()?;
        let e = Entry {
            linkname: Some(target.to_string()),
            ..Default::default()
        };
        self.bee.put(entry::key(&path), e.encode())?;
        Ok(e)
    }

    /// Entries staged and not flushed yet.
    pub fn len(&self) -> usize {
        self.bee.len() + self.files.len()
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends what is staged: the waiting contents (one commit), then every entry (one
    /// commit). The batch stays usable for more writes.
    pub fn flush(&mut self) -> Result<()> {
        self.append_content()?;
        self.bee.flush()
    }

    /// Appends the waiting contents in one append and stages their entries, in order.
    fn append_content(&mut self) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let files = std::mem::take(&mut self.files);
        let content = std::mem::take(&mut self.content);
        let mut start = 0;
        let slices: Vec<&[u8]> = files
            .iter()
            .map(|(_, end, _, _)| {
                let s = &content[start..*end];
                start = *end;
                s
            })
            .collect();
        let ids = self.drive.blobs.put_many(&slices)?;
        for ((path, _, executable, metadata), id) in files.into_iter().zip(ids) {
            let e = Entry {
                executable,
                linkname: None,
                blob: Some(id),
                metadata,
            };
            self.bee.put(entry::key(&path), e.encode())?;
        }
        Ok(())
    }
}

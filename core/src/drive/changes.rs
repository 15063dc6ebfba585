//! A drive's history as a stream of changes, and diffs between versions and between drives.

use std::time::Duration;

use super::entry::{self, Entry};
use super::{Drive, folder_range, path};
use crate::bee::{ChangeKind as BeeKind, HistoryOptions};
use crate::error::{Error, Result};

/// Whether a change wrote or removed a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A file or symlink was written.
    Put,
    /// A name was deleted.
    Del,
}

/// One change of a drive.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The version the change made (the drive's version right after it).
    pub version: u64,
    /// Put or delete.
    pub kind: ChangeKind,
    /// The path.
    pub path: String,
    /// The entry written (`None` for a deletion).
    pub entry: Option<Entry>,
}

/// Every change of a drive in order ([`Drive::changes`]); an iterator that ends at the version
/// it was made at, or, live, waits for new changes (local writes and replicated ones).
#[derive(Debug)]
pub struct Changes {
    drive: Drive,
    next: u64,
    live: bool,
}

impl Changes {
    /// The version of the next change this stream yields.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next change, waiting for at most `timeout` for one (live streams only; `Ok(None)`
    /// when none came, or at the end of a stream that is not live).
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<Change>> {
        let log = self.drive.db.log().clone();
        loop {
            let length = if self.drive.db.is_checkout() {
                self.drive.version()
            } else {
                log.length()
            };
            if self.next <= length {
                let seq = self.next - 1;
                let bee = if self.drive.db.is_checkout() {
                    self.drive.db.clone()
                } else {
                    self.drive.db.snapshot()
                };
                let mut it = bee.history(HistoryOptions {
                    gte: Some(seq as i64),
                    lt: Some(seq as i64 + 1),
                    ..Default::default()
                })?;
                self.next += 1;
                let Some(c) = it.next().transpose()? else {
                    continue;
                };
                let Some(p) = entry::path_of(&c.key) else {
                    continue; // not a file key (a foreign bee entry)
                };
                let entry = match c.kind {
                    BeeKind::Put => c.value.as_deref().map(Entry::decode).transpose()?,
                    BeeKind::Del => None,
                };
                return Ok(Some(Change {
                    version: c.seq + 1,
                    kind: if c.kind == BeeKind::Put {
                        ChangeKind::Put
                    } else {
                        ChangeKind::Del
                    },
                    path: p.to_string(),
                    entry,
                }));
            }
            if !self.live || self.drive.db.is_checkout() {
                return Ok(None);
            }
            let reached = log.wait_length(self.next, timeout);
            if reached < self.next {
                return Ok(None);
            }
        }
    }
}

impl Iterator for Changes {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_timeout(None).transpose()
    }
}

/// How a name differs between two sides of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// Only on the left (this drive or version).
    Added,
    /// Only on the right (the other drive or version).
    Removed,
    /// On both, with different content or attributes.
    Changed,
}

/// One name that differs, with both entries.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveDiff {
    /// The path.
    pub path: String,
    /// How it differs.
    pub kind: DiffKind,
    /// The entry on the left (`None` when removed).
    pub left: Option<Entry>,
    /// The entry on the right (`None` when added).
    pub right: Option<Entry>,
}

impl Drive {
    /// The changes from `from_version` on (a change's version is the drive version right
    /// after it; version 2 is the first change). Live: the iterator waits for new changes.
    pub fn changes(&self, from_version: u64, live: bool) -> Changes {
        Changes {
            drive: self.clone(),
            next: from_version.max(2),
            live,
        }
    }

    /// The names under `folder` that differ between this drive (left) and its version
    /// `other_version` (right). Shared subtrees of the two versions are skipped unread.
    pub fn diff(&self, other_version: u64, folder: &str) -> Result<Vec<DriveDiff>> {
        let current = self.db.log().length().max(1);
        if other_version > current {
            return Err(Error::OutOfBounds(format!(
                "version {other_version} is past the drive's current version {current}"
            )));
        }
        let folder = path::normalize_folder(folder)?;
        let mut out = Vec::new();
        for d in self.db.diff(other_version, folder_range(&folder, "/"))? {
            let d = d?;
            let decode = |e: Option<crate::bee::Entry>| -> Result<Option<(String, Entry)>> {
                match e {
                    None => Ok(None),
                    Some(e) => match e.value {
                        None => Ok(None),
                        Some(v) => {
                            let p = entry::path_of(&e.key).unwrap_or_default().to_string();
                            Ok(Some((p, Entry::decode(&v)?)))
                        }
                    },
                }
            };
            let (l, r) = (decode(d.left)?, decode(d.right)?);
            let path = l
                .as_ref()
                .or(r.as_ref())
                .map(|(p, _)| p.clone())
                .unwrap_or_default();
            let (left, right) = (l.map(|x| x.1), r.map(|x| x.1));
            let kind = match (&left, &right) {
                (Some(_), None) => DiffKind::Added,
                (None, Some(_)) => DiffKind::Removed,
                (Some(a), Some(b)) if a == b => continue,
                (Some(_), Some(_)) => DiffKind::Changed,
                (None, None) => continue,
            };
            out.push(DriveDiff {
                path,
                kind,
                left,
                right,
            });
        }
        Ok(out)
    }

    /// The names under `folder` that differ between this drive (left) and `other`, a different
    /// drive (right). Files are compared by content (block hashes, then bytes where the blocks
    /// were cut differently) and attributes, not by where their bytes are stored.
    pub fn diff_drive(&self, other: &Drive, folder: &str) -> Result<Vec<DriveDiff>> {
        let a = self.list(folder, true)?;
        let b = other.list(folder, true)?;
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    out.push(DriveDiff {
                        path: a[i].0.clone(),
                        kind: DiffKind::Added,
                        left: Some(a[i].1.clone()),
                        right: None,
                    });
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(DriveDiff {
                        path: b[j].0.clone(),
                        kind: DiffKind::Removed,
                        left: None,
                        right: Some(b[j].1.clone()),
                    });
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if !self.same_file(&a[i].1, other, &b[j].1)? {
                        out.push(DriveDiff {
                            path: a[i].0.clone(),
                            kind: DiffKind::Changed,
                            left: Some(a[i].1.clone()),
                            right: Some(b[j].1.clone()),
                        });
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(out)
    }

    fn same_file(&self, a: &Entry, other: &Drive, b: &Entry) -> Result<bool> {
        if a.executable != b.executable || a.linkname != b.linkname || a.metadata != b.metadata {
            return Ok(false);
        }
        let (Some(x), Some(y)) = (&a.blob, &b.blob) else {
            return Ok(a.blob.is_none() && b.blob.is_none());
        };
        let (sx, sy) = (self.blobs.size(x)?, other.blobs.size(y)?);
        if sx != sy {
            return Ok(false);
        }
        if self.same_block_hashes(x, other, y)? {
            return Ok(true);
        }
        // cut differently (or hashes not local): compare the bytes, a block at a time
        let (mut rx, mut ry) = (self.blobs.reader(x)?, other.blobs.reader(y)?);
        let mut pos = 0;
        while pos < sx {
            let n = (sx - pos).min(1 << 20);
            if rx.read_at(pos, n)? != ry.read_at(pos, n)? {
                return Ok(false);
            }
            pos += n;
        }
        Ok(true)
    }

    /// True when both blobs' data blocks have the same leaf hashes, in order, all from the
    /// trees (no block is read). False when they differ, or when a hash is not local.
    fn same_block_hashes(
        &self,
        x: &crate::blobs::BlobId,
        other: &Drive,
        y: &crate::blobs::BlobId,
    ) -> Result<bool> {
        let (bx, by) = (self.blobs.data_blocks(x)?, other.blobs.data_blocks(y)?);
        // blocks past the length a replica knows are not local
        if !bx.complete || !by.complete {
            return Ok(false);
        }
        if bx.count != by.count {
            return Ok(false);
        }
        let (lx, ly) = (self.blobs.log(), other.blobs.log());
        for (i, j) in bx.indexes.zip(by.indexes) {
            let (Some(i), Some(j)) = (i.checked_mul(2), j.checked_mul(2)) else {
                return Ok(false);
            };
            match (lx.node(i)?, ly.node(j)?) {
                (Some(a), Some(b)) if a.hash == b.hash => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

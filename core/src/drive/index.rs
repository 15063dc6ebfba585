//! The drive's indexes in the store's LMDB table `index-v1`:
//!
//! - **file names**: `dn ‖ dk ‖ u32be len ‖ path` → `u64be version ‖ kind` (the version of the
//!   name's latest change, 1 put, 0 delete);
//! - **per-file history**: `dh ‖ dk ‖ u32be len ‖ path ‖ u64be version` → `kind`;
//! - **progress**: `dm ‖ dk` → `u64be` blocks of the metadata log indexed so far `‖ u64be` the
//!   log's fork then (absent in stores from before it was recorded: fork 0);
//! - **content hashes** for deduplication: `dd ‖ content log key ‖ leaf hash` →
//!   `u64be index ‖ u64be size`.
//!
//! The name indexes are derived data: they are brought up to date lazily, from the metadata
//! log's contiguous local prefix (local writes and replicated changes alike), before a lookup
//! uses them, and rebuilt from the log when missing or when the log has moved to another fork
//! since (a truncation: what they say of the blocks past it may be gone). A lookup only trusts
//! them when they cover the version it reads; otherwise it walks the bee.

use std::collections::HashMap;

use super::entry::{self, Entry};
use super::{Drive, path};
use crate::bee::{ChangeKind, HistoryOptions};
use crate::blobs::{DedupEntry, DedupIndex};
use crate::crypto::Hash;
use crate::error::{Error, Result};
use crate::store::Store;

/// One change of one file: the version it made and the entry it left (`None`: deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct FileVersion {
    /// The drive version the change made.
    pub version: u64,
    /// The entry written, or `None` for a deletion.
    pub entry: Option<Entry>,
}

fn name_key(tag: &[u8; 2], dk: &Hash, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + 32 + 4 + path.len() + 8);
    k.extend_from_slice(tag);
    k.extend_from_slice(dk);
    k.extend_from_slice(&(path.len() as u32).to_be_bytes());
    k.extend_from_slice(path.as_bytes());
    k
}

fn progress_key(dk: &Hash) -> Vec<u8> {
    let mut k = b"dm".to_vec();
    k.extend_from_slice(dk);
    k
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
}

/// What the index covers: blocks of the metadata log indexed, and the log's fork then.
fn progress_value(v: &[u8]) -> Option<(u64, u64)> {
    Some((u64_at(v, 0)?, u64_at(v, 8).unwrap_or(0)))
}

impl Drive {
    /// Indexes the metadata changes not indexed yet (those stored locally, in order). An index
    /// made on another fork of the log (before a truncation) is dropped and made again. Returns
    /// how many blocks of the metadata log the index covers now (1: none, the header block).
    pub(crate) fn index_catch_up(&self) -> Result<u64> {
        let dk = self.discovery_key();
        let st = self.store.storage();
        loop {
            let log = self.db.log();
            let fork = log.fork();
            let end = log.contiguous_length().min(log.length());
            let progress = {
                let txn = st.read()?;
                st.index_get(&txn, &progress_key(&dk))?
                    .and_then(|v| progress_value(&v))
            };
            let stale = progress.is_some_and(|(n, f)| f != fork || n > log.length());
            let upto = match progress {
                Some((n, _)) if !stale => n,
                _ => 1,
            };
            if end <= upto && !stale {
                return Ok(upto);
            }
            let head = self
                .db
                .checkout(end)
                .or_else(|_| Ok::<_, Error>(self.db.snapshot()))?;
            let changes = head.history(HistoryOptions {
                gte: Some(upto as i64),
                lt: Some(end as i64),
                ..Default::default()
            })?;
            #[cfg(test)]
            if let Some(hook) = tests::BEFORE_WRITE.with(|h| h.borrow_mut().take()) {
                hook();
            }
            let mut txn = st.write()?;
            // Another catch-up may have committed since `progress` was read (LMDB has one
            // writer, so this read is the last word): writing now could put older records back
            // and lower the progress. Start over from what it left.
            let now = st
                .index_get(&txn, &progress_key(&dk))?
                .and_then(|v| progress_value(&v));
            if now != progress {
                drop(txn);
                continue;
            }
            if stale {
                delete_name_indexes(st, &mut txn, &dk)?;
            }
            let mut done = upto;
            for change in changes {
                let c = change?;
                done = c.seq + 1;
                let Some(p) = entry::path_of(&c.key) else {
                    continue;
                };
                let version = c.seq + 1;
                let kind = u8::from(c.kind == ChangeKind::Put);
                let mut v = version.to_be_bytes().to_vec();
                v.push(kind);
                st.index_put(&mut txn, &name_key(b"dn", &dk, p), &v)?;
                let mut hk = name_key(b"dh", &dk, p);
                hk.extend_from_slice(&version.to_be_bytes());
                st.index_put(&mut txn, &hk, &[kind])?;
            }
            let done = done.max(end.min(self.db.log().length()));
            let mut progress = done.to_be_bytes().to_vec();
            progress.extend_from_slice(&fork.to_be_bytes());
            st.index_put(&mut txn, &progress_key(&dk), &progress)?;
            txn.commit()?;
            return Ok(done);
        }
    }

    /// The entry of `path` through the index: `None` when the index does not cover this
    /// version (the caller walks the bee), `Some(None)` when the name has no entry.
    pub(crate) fn indexed_entry(&self, path: &str) -> Result<Option<Option<Entry>>> {
        if self.db.is_checkout() {
            return Ok(None);
        }
        let upto = self.index_catch_up()?;
        let version = self.db.log().length();
        if upto < version {
            return Ok(None);
        }
        let st = self.store.storage();
        let txn = st.read()?;
        let Some(v) = st.index_get(&txn, &name_key(b"dn", &self.discovery_key(), path))? else {
            return Ok(Some(None));
        };
        drop(txn);
        let (Some(changed), Some(&kind)) = (u64_at(&v, 0), v.get(8)) else {
            return Err(Error::Corrupt(format!("the name index entry of {path}")));
        };
        if kind == 0 {
            return Ok(Some(None));
        }
        let e = self.db.get_by_seq(changed - 1)?;
        if entry::path_of(&e.key) != Some(path) {
            return Err(Error::Corrupt(format!(
                "the name index points {path} at block {} which holds another key",
                changed - 1
            )));
        }
        match e.value {
            None => Ok(Some(None)),
            Some(v) => Entry::decode(&v).map(|e| Some(Some(e))),
        }
    }

    /// The versions at which `path` changed, oldest first, each with the entry it left
    /// (`None` for a deletion), up to this drive's version. (The reference has no such call.)
    pub fn file_history(&self, path: &str) -> Result<Vec<FileVersion>> {
        let path = path::normalize(path)?;
        let upto = self.index_catch_up()?;
        let version = self.version();
        let st = self.store.storage();
        let prefix = name_key(b"dh", &self.discovery_key(), &path);
        let rows = {
            let txn = st.read()?;
            st.index_prefix(&txn, &prefix)?
        };
        let mut out = Vec::new();
        for (k, v) in rows {
            let changed = u64_at(&k, prefix.len())
                .ok_or_else(|| Error::Corrupt(format!("a history index key of {path}")))?;
            // past `upto` the walk below gives the changes (another catch-up may have indexed
            // more since this one returned)
            if changed > version.min(upto) {
                break;
            }
            let entry = match v.first() {
                Some(1) => {
                    let e = self.db.get_by_seq(changed - 1)?;
                    e.value.as_deref().map(Entry::decode).transpose()?
                }
                _ => None,
            };
            out.push(FileVersion {
                version: changed,
                entry,
            });
        }
        // changes past the indexed prefix (a sparse drive): walk the rest of the history
        if upto < version {
            for change in self.db.history(HistoryOptions {
                gte: Some(upto as i64),
                ..Default::default()
            })? {
                let c = change?;
                if entry::path_of(&c.key) != Some(path.as_str()) {
                    continue;
                }
                let entry = match c.kind {
                    ChangeKind::Put => c.value.as_deref().map(Entry::decode).transpose()?,
                    ChangeKind::Del => None,
                };
                out.push(FileVersion {
                    version: c.seq + 1,
                    entry,
                });
            }
        }
        Ok(out)
    }

    /// Drops this drive's name indexes; the next lookup rebuilds them from the metadata log.
    pub fn rebuild_index(&self) -> Result<()> {
        let st = self.store.storage();
        let mut txn = st.write()?;
        delete_name_indexes(st, &mut txn, &self.discovery_key())?;
        txn.commit()?;
        self.index_catch_up().map(drop)
    }
}

/// Deletes the name, history and progress records of the drive with metadata log `dk`.
fn delete_name_indexes(
    st: &crate::storage::Storage,
    txn: &mut dat_lmdb::heed::RwTxn<'_>,
    dk: &Hash,
) -> Result<()> {
    for tag in [b"dn", b"dh"] {
        let mut p = tag.to_vec();
        p.extend_from_slice(dk);
        st.index_delete_prefix(txn, &p)?;
    }
    st.index_delete_prefix(txn, &progress_key(dk))
}

/// The content-hash index of one content log, in the store (so it covers every file and
/// version ever written to that log, across sessions). Inserts are kept in memory until
/// [`LmdbDedupIndex::commit`], which a drive calls once a file's blocks are stored.
#[derive(Debug)]
pub struct LmdbDedupIndex {
    store: Store,
    log: [u8; 32],
    pending: HashMap<Hash, DedupEntry>,
}

impl LmdbDedupIndex {
    /// The index of the content log with key `log`.
    pub fn new(store: Store, log: [u8; 32]) -> Self {
        LmdbDedupIndex {
            store,
            log,
            pending: HashMap::new(),
        }
    }

    fn key(&self, hash: &Hash) -> Vec<u8> {
        let mut k = b"dd".to_vec();
        k.extend_from_slice(&self.log);
        k.extend_from_slice(hash);
        k
    }

    /// Stores the recorded hashes (one transaction).
    pub fn commit(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let st = self.store.storage();
        let mut txn = st.write()?;
        for (h, e) in self.pending.drain() {
            let mut v = e.index.to_be_bytes().to_vec();
            v.extend_from_slice(&e.byte_length.to_be_bytes());
            let mut k = b"dd".to_vec();
            k.extend_from_slice(&self.log);
            k.extend_from_slice(&h);
            st.index_put(&mut txn, &k, &v)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl DedupIndex for LmdbDedupIndex {
    fn lookup(&mut self, hash: &Hash) -> Result<Option<DedupEntry>> {
        if let Some(e) = self.pending.get(hash) {
            return Ok(Some(*e));
        }
        let st = self.store.storage();
        let txn = st.read()?;
        Ok(st
            .index_get(&txn, &self.key(hash))?
            .and_then(|v| Some((u64_at(&v, 0)?, u64_at(&v, 8)?)))
            .map(|(index, byte_length)| DedupEntry {
                log: self.log,
                index,
                byte_length,
            }))
    }

    fn insert(&mut self, hash: Hash, entry: DedupEntry) -> Result<()> {
        if entry.log == self.log {
            self.pending.insert(hash, entry);
        }
        Ok(())
    }
}

/// A [`LmdbDedupIndex`] shared between a writer and the drive that commits it.
#[derive(Debug, Clone)]
pub(crate) struct SharedDedup(pub std::sync::Arc<std::sync::Mutex<LmdbDedupIndex>>);

impl DedupIndex for SharedDedup {
    fn lookup(&mut self, hash: &Hash) -> Result<Option<DedupEntry>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lookup(hash)
    }

    fn insert(&mut self, hash: Hash, entry: DedupEntry) -> Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, entry)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::mpsc;

    use super::*;

    thread_local! {
        /// Runs once, in this thread's next catch-up, between reading the progress and opening
        /// the write transaction: a test interleaves two catch-ups with it.
        pub(super) static BEFORE_WRITE: RefCell<Option<Box<dyn FnOnce()>>> =
            const { RefCell::new(None) };
    }

    /// Two catch-ups at once: B read the progress and the log's length, then A (which saw a
    /// longer log) committed first. B used to write the older records and the lower progress
    /// anyway, so that a lookup trusting A's progress read an older entry.
    #[test]
    fn a_catch_up_that_read_an_older_progress_does_not_undo_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let drive = Drive::create(&store).unwrap();
        drive.put("/x", b"1").unwrap();
        assert_eq!(drive.get("/x").unwrap().unwrap(), b"1");
        drive.put("/x", b"2").unwrap();
        let (at_write, wait_b) = mpsc::channel();
        let (go, wait_go) = mpsc::channel::<()>();
        let b = {
            let drive = drive.clone();
            std::thread::spawn(move || {
                BEFORE_WRITE.with(|h| {
                    *h.borrow_mut() = Some(Box::new(move || {
                        at_write.send(()).unwrap();
                        wait_go.recv().unwrap();
                    }))
                });
                drive.index_catch_up()
            })
        };
        wait_b.recv().unwrap(); // B has read the progress, and the log up to "2"
        drive.put("/x", b"3").unwrap();
        let version = drive.version();
        assert_eq!(drive.index_catch_up().unwrap(), version); // A, to "3"
        go.send(()).unwrap();
        assert_eq!(b.join().unwrap().unwrap(), version, "what the index covers");
        let st = store.storage();
        let txn = st.read().unwrap();
        let dk = drive.discovery_key();
        let progress = st.index_get(&txn, &progress_key(&dk)).unwrap().unwrap();
        assert_eq!(progress_value(&progress).unwrap().0, version);
        let record = st
            .index_get(&txn, &name_key(b"dn", &dk, "/x"))
            .unwrap()
            .unwrap();
        assert_eq!(
            u64_at(&record, 0),
            Some(version),
            "the name record of \"3\""
        );
        drop(txn);
        assert_eq!(drive.get("/x").unwrap().unwrap(), b"3");
    }
}

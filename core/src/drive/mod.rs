//! Hyperdrive 13: a versioned filesystem over two logs, a [`Bee`] of entries (the metadata log)
//! and [`Blobs`] of file contents (the content log), byte-compatible with the JavaScript
//! reference (hyperdrive 13.3.4), so that either side reads what the other wrote.
//!
//! ```
//! use dat_core::drive::Drive;
//! # fn main() -> Result<(), dat_core::Error> {
//! # let dir = tempfile::tempdir()?;
//! let store = dat_core::Store::open(dir.path())?;
//! let drive = Drive::create(&store)?;
//! drive.put("/hello.txt", b"hello world")?;
//! let v = drive.version();
//! drive.put("/hello.txt", b"hello again")?;
//! assert_eq!(drive.get("/hello.txt")?.unwrap(), b"hello again");
//! assert_eq!(drive.checkout(v)?.get("/hello.txt")?.unwrap(), b"hello world");
//! assert_eq!(drive.file_history("/hello.txt")?.len(), 2);
//! # Ok(()) }
//! ```
//!
//! Reads of a remote drive fetch what they need from peers (the metadata blocks on a name's
//! lookup path, the content blocks of the bytes read) and wait for at most
//! [`DriveOptions::timeout`]. A drive that is not sparse fetches all of its metadata first
//! and then all of its content.

mod batch;
mod changes;
mod cursor;
pub mod entry;
mod index;
pub mod keys;
pub mod path;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use batch::DriveBatch;
pub use changes::{Change, ChangeKind, Changes, DiffKind, DriveDiff};
pub use cursor::{Cursor, ReadStream};
pub use entry::{Entry, key};
pub use index::{FileVersion, LmdbDedupIndex};

use crate::bee::{Bee, BeeOptions, Metadata, RangeOptions};
use crate::blobs::{BlobId, Blobs, Chunking, DedupReport, WriteOptions};
use crate::crypto::Hash;
use crate::error::{Error, Result};
use crate::log::Log;
use crate::replication::Replicator;
use crate::store::{DEFAULT_NAMESPACE, Store};

/// How a drive is opened.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// Fetch only what is read (true), or the whole drive, metadata first (false, the default).
    pub sparse: bool,
    /// How long a read waits for blocks from peers; `None` waits without limit.
    pub timeout: Option<Duration>,
}

impl Default for DriveOptions {
    fn default() -> Self {
        DriveOptions {
            sparse: false,
            timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Options of a file write.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The executable bit.
    pub executable: bool,
    /// Arbitrary JSON stored with the entry.
    pub metadata: Option<serde_json::Value>,
    /// Cut the content into content-defined chunks and reference the chunks the drive already
    /// holds (in any file or version) instead of storing them again; the file is stored as a
    /// block map, which JS hyperdrive 13.3 reads.
    pub dedup: bool,
}

/// A versioned filesystem. Cheap to clone; clones share state. Checkouts are read-only.
#[derive(Clone)]
pub struct Drive {
    store: Store,
    db: Bee,
    blobs: Blobs,
    opts: DriveOptions,
}

impl std::fmt::Debug for Drive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drive")
            .field("key", &crate::storage::hex(&self.key()))
            .field("version", &self.version())
            .field("writable", &self.writable())
            .finish()
    }
}

impl Drive {
    /// The store's drive (its metadata log is the store's log named `db`, as Hyperdrive's default
    /// corestore name), created on first use.
    pub fn create(store: &Store) -> Result<Drive> {
        Self::create_in(store, &DEFAULT_NAMESPACE)
    }

    /// A writable drive of its own, in the store namespace called `name` (corestore's
    /// `store.namespace(name)`), so a store can hold many drives.
    pub fn create_named(store: &Store, name: &str) -> Result<Drive> {
        let ns = crate::crypto::hash(&[&DEFAULT_NAMESPACE, name.as_bytes()]);
        Self::create_in(store, &ns)
    }

    fn create_in(store: &Store, ns: &Hash) -> Result<Drive> {
        let db = store.named_log_in(ns, "db")?;
        let kp = db
            .key_pair()
            .cloned()
            .ok_or_else(|| Error::NotWritable("the drive's metadata log has no key pair".into()))?;
        let manifest = db
            .manifest()
            .ok_or_else(|| Error::InvalidManifest("a drive needs a manifest-keyed log".into()))?;
        let content =
            store.create_log_with_manifest(keys::content_manifest(&db.key(), &manifest), kp)?;
        Ok(Self::assemble(store, db, content, DriveOptions::default()))
    }

    /// Opens the drive with `key`: a local one, or a remote one that fills from peers (connect
    /// the store to them with [`crate::replication::driver`]; logs opened later join every
    /// connection). A remote drive's content key comes from its metadata log's manifest, so
    /// this waits (up to `opts.timeout`) until a peer has sent the first signed length.
    pub fn open(store: &Store, key: &[u8; 32], opts: DriveOptions) -> Result<Drive> {
        let db = store.open_log(key, None)?;
        if !db.writable() {
            db.set_sparse(true);
            db.set_wait(Some(opts.timeout.unwrap_or(Duration::MAX)));
        }
        if db.writable() {
            if db.manifest().is_none() || db.is_compat() {
                return Err(Error::InvalidManifest(
                    "a drive needs a manifest-keyed log".into(),
                ));
            }
        } else if db.manifest().is_none() || db.length() == 0 {
            db.wait_length(1, opts.timeout);
        }
        let manifest = match db.manifest() {
            Some(m) if !db.is_compat() => m,
            _ if db.length() == 0 => {
                return Err(Error::Timeout(format!(
                    "no peer sent drive {} within {:?}",
                    crate::storage::hex(key),
                    opts.timeout.unwrap_or_default()
                )));
            }
            _ => {
                return Err(Error::InvalidManifest(
                    "this log has no manifest: hyperdrive 10 compat drives are not supported"
                        .into(),
                ));
            }
        };
        let cm = keys::content_manifest(key, &manifest);
        let content = match db.key_pair() {
            Some(kp) => store.create_log_with_manifest(cm, kp.clone())?,
            None => store.open_log(&cm.hash(), Some(cm))?,
        };
        let drive = Self::assemble(store, db, content, opts);
        if !drive.writable() {
            drive.start_download_order();
        }
        Ok(drive)
    }

    fn assemble(store: &Store, db: Log, content: Log, opts: DriveOptions) -> Drive {
        if !content.writable() {
            content.set_sparse(true);
            content.set_wait(Some(opts.timeout.unwrap_or(Duration::MAX)));
        }
        Drive {
            store: store.clone(),
            db: Bee::open_with(
                db,
                BeeOptions {
                    metadata: Some(Metadata::default()),
                },
            ),
            blobs: Blobs::new(content),
            opts,
        }
    }

    /// Not sparse: the metadata log syncs whole first, then the content log.
    fn start_download_order(&self) {
        if self.opts.sparse {
            return;
        }
        let db = self.db.log().clone();
        db.set_sparse(false);
        let content = self.blobs.log().clone();
        let first = db.prioritize(crate::scheduler::Prioritize::range(0, db.length()).priority(6));
        first.on_done(move |_| content.set_sparse(false));
        first.detach();
    }

    /// The store holding the drive.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The drive's key (its metadata log's key).
    pub fn key(&self) -> [u8; 32] {
        self.db.log().key()
    }

    /// The discovery key peers find the drive by.
    pub fn discovery_key(&self) -> Hash {
        self.db.log().discovery_key()
    }

    /// The metadata log (a [`Bee`] of entries).
    pub fn metadata_log(&self) -> &Log {
        self.db.log()
    }

    /// The content log.
    pub fn content_log(&self) -> &Log {
        self.blobs.log()
    }

    /// The bee of entries.
    pub fn bee(&self) -> &Bee {
        &self.db
    }

    /// The version: the metadata log's length (1 for an empty drive).
    pub fn version(&self) -> u64 {
        self.db.version()
    }

    /// True for a drive this side writes (and not a checkout).
    pub fn writable(&self) -> bool {
        self.db.writable() && !self.db.is_checkout()
    }

    /// True for a checkout.
    pub fn is_checkout(&self) -> bool {
        self.db.is_checkout()
    }

    fn check_writable(&self) -> Result<()> {
        if self.db.is_checkout() {
            return Err(Error::NotWritable(format!(
                "a checkout (version {}) is read-only",
                self.version()
            )));
        }
        if !self.db.writable() {
            return Err(Error::NotWritable(
                "this drive is written by another peer".into(),
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ writes

    /// Writes a file (whole).
    pub fn put(&self, path: &str, data: &[u8]) -> Result<Entry> {
        self.put_with(path, data, &PutOptions::default())
            .map(|(e, _)| e)
    }

    /// Writes a file with options; returns its entry and, for a deduplicated write, what it
    /// saved.
    pub fn put_with(
        &self,
        path: &str,
        data: &[u8],
        opts: &PutOptions,
    ) -> Result<(Entry, Option<DedupReport>)> {
        let mut w = self.writer(path, opts.clone())?;
        w.write_all_bytes(data)?;
        w.finish()
    }

    /// A write stream for a file: write it in pieces (bounded memory), then
    /// [`FileWriter::finish`] puts the entry.
    pub fn writer(&self, path: &str, opts: PutOptions) -> Result<FileWriter> {
        self.check_writable()?;
        let path = path::normalize(path)?;
        Ok(FileWriter {
            drive: self.clone(),
            path,
            opts,
            buf: Vec::new(),
            inner: None,
            report: None,
        })
    }

    fn put_entry(&self, path: &str, entry: &Entry) -> Result<()> {
        // the name index catches up at the next lookup (one transaction for many writes)
        self.db.put(entry::key(path), entry.encode())
    }

    /// Stores `entry` for `path` as is (its blob must already be in the content log).
    pub fn put_entry_raw(&self, path: &str, entry: &Entry) -> Result<()> {
        self.check_writable()?;
        let path = path::normalize(path)?;
        self.put_entry(&path, entry)
    }

    /// Deletes a file or symlink; `false` if there was none. The content stays in the log
    /// (older versions still read it).
    pub fn del(&self, path: &str) -> Result<bool> {
        self.check_writable()?;
        let path = path::normalize(path)?;
        self.db.del(entry::key(&path))
    }

    /// Makes `path` a symlink to `target` (stored as given, resolved on reads that follow it).
    pub fn symlink(&self, path: &str, target: &str) -> Result<Entry> {
        self.check_writable()?;
        let path = path::normalize(path)?;
        let e = Entry {
            linkname: Some(target.to_string()),
            ..Default::default()
        };
        self.put_entry(&path, &e)?;
        Ok(e)
    }

    // ------------------------------------------------------------------ reads

    /// The size in bytes of the file `entry` describes (0 for a symlink). For a deduplicated
    /// file ([`Entry::size`] is `None`) this reads its block map, fetching it from peers when it
    /// is not here (within the drive's timeout). `entry` may come from any version of this
    /// drive.
    pub fn file_size(&self, entry: &Entry) -> Result<u64> {
        match (entry.size(), &entry.blob) {
            (Some(n), _) => Ok(n),
            (None, Some(b)) => self.blobs.size(b),
            (None, None) => Ok(0),
        }
    }

    /// The entry of `path` (no symlink following), if any.
    pub fn entry(&self, path: &str) -> Result<Option<Entry>> {
        let path = path::normalize(path)?;
        if let Some(found) = self.indexed_entry(&path)? {
            return Ok(found);
        }
        match self.db.get(entry::key(&path))? {
            None => Ok(None),
            Some(e) => match e.value {
                None => Ok(None),
                Some(v) => Entry::decode(&v).map(Some).map_err(|err| {
                    Error::Corrupt(format!(
                        "the entry of {path} (version {}): {err}",
                        e.seq + 1
                    ))
                }),
            },
        }
    }

    /// The entry of `path`, following symlinks (at most 16 hops) as the reference does.
    pub fn entry_follow(&self, path: &str) -> Result<Option<(String, Entry)>> {
        let mut p = path::normalize(path)?;
        for _ in 0..16 {
            match self.entry(&p)? {
                None => return Ok(None),
                // as the reference, an empty target is no link (`!node.value.linkname`)
                Some(e) => match &e.linkname {
                    Some(target) if !target.is_empty() => p = path::resolve_link(&p, target)?,
                    _ => return Ok(Some((p, e))),
                },
            }
        }
        Err(Error::InvalidArgument(format!(
            "too many symlinks resolving {path}"
        )))
    }

    /// True when `path` has an entry.
    pub fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.entry(path)?.is_some())
    }

    /// The content of the file at `path` (`None` without an entry or for a symlink).
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.entry(path)? {
            Some(Entry { blob: Some(b), .. }) => self.blobs.get(&b).map(Some),
            _ => Ok(None),
        }
    }

    /// The blobs store of the content log.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Every file and symlink under `folder` (`"/"` for all), in path order; `recursive` false
    /// gives the first entry under each name directly in the folder (as the reference's
    /// `list(folder, {recursive: false})`).
    pub fn list(&self, folder: &str, recursive: bool) -> Result<Vec<(String, Entry)>> {
        let folder = path::normalize_folder(folder)?;
        let mut out = Vec::new();
        if recursive {
            for item in self.db.range(folder_range(&folder, "/"))? {
                let e = item?;
                out.push(decode_item(&e.key, e.value.as_deref())?);
            }
            return Ok(out);
        }
        let mut prev = String::from("/");
        let mut prev_name = String::new();
        loop {
            let Some(e) = self.db.peek(folder_range(&folder, &prev))? else {
                break;
            };
            let (p, entry) = decode_item(&e.key, e.value.as_deref())?;
            let rest = &p[folder.len() + 1..];
            let (name, deeper) = match rest.find('/') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            prev = format!("/{name}{}", if deeper { "0" } else { "" });
            // a name that is a file and a folder too (`/a` and `/a/b`) is listed once, with
            // what comes first (the file), as the reference does
            if name == prev_name {
                continue;
            }
            prev_name = name.to_string();
            out.push((p.clone(), entry));
        }
        Ok(out)
    }

    /// The names directly in `folder` (files and sub-folders), in order.
    pub fn readdir(&self, folder: &str) -> Result<Vec<String>> {
        let folder_n = path::normalize_folder(folder)?;
        Ok(self
            .list(folder, false)?
            .into_iter()
            .filter_map(|(p, _)| {
                p[folder_n.len() + 1..]
                    .split('/')
                    .next()
                    .map(str::to_string)
            })
            .collect())
    }

    /// A read-only drive as it was at `version`, files included.
    pub fn checkout(&self, version: u64) -> Result<Drive> {
        let current = self.db.log().length().max(1);
        if version > current {
            return Err(Error::OutOfBounds(format!(
                "version {version} is past the drive's current version {current}"
            )));
        }
        Ok(Drive {
            store: self.store.clone(),
            db: self.db.checkout(version)?,
            blobs: self.blobs.clone(),
            opts: self.opts.clone(),
        })
    }

    /// A byte cursor on the file at `path`: seek anywhere, read, tell. On a remote drive a seek
    /// fetches the block it lands on first and prefetches ahead.
    pub fn cursor(&self, path: &str) -> Result<Cursor> {
        let (p, e) = self.file_entry(path)?;
        Cursor::new(self.blobs.clone(), p, e)
    }

    /// The bytes `start..=end` of the file at `path` (`end` inclusive, as the reference; `None`
    /// to the end) in chunks of at most one block; the range is prioritized (linear) while the
    /// stream lives.
    pub fn read_stream(&self, path: &str, start: u64, end: Option<u64>) -> Result<ReadStream> {
        let (p, e) = self.file_entry(path)?;
        ReadStream::new(self.blobs.clone(), p, e, start, end)
    }

    fn file_entry(&self, path: &str) -> Result<(String, Entry)> {
        match self.entry_follow(path)? {
            Some((p, e)) if e.blob.is_some() => Ok((p, e)),
            Some((p, _)) => Err(Error::InvalidArgument(format!("{p} is not a file"))),
            None => Err(Error::NotFound(format!("no file at {path}"))),
        }
    }

    /// Fetches the files under `path` (a file or a folder) from peers, reporting progress
    /// (`(blocks done, blocks total)`) as it goes; returns the number of blocks fetched. A block
    /// that several files share (deduplicated) counts once.
    pub fn download(&self, path: &str, progress: impl FnMut(u64, u64)) -> Result<u64> {
        self.download_until(path, &CancelToken::new(), progress)
    }

    /// [`Drive::download`] that stops early, with [`Error::Cancelled`], once `cancel` is
    /// cancelled (from another thread; within a few milliseconds). The blocks that arrived stay;
    /// the download's priorities are withdrawn either way.
    pub fn download_until(
        &self,
        path: &str,
        cancel: &CancelToken,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64> {
        let entries = match self.entry(path) {
            Ok(Some(e)) => vec![(path::normalize(path)?, e)],
            _ => self.list(path, true)?,
        };
        let log = self.blobs.log().clone();
        // a block map is read (fetched) to learn its file's blocks: count what that fetches
        let maps = crate::blobs::merge_ranges(
            entries
                .iter()
                .filter_map(|(_, e)| e.blob.as_ref().filter(|b| b.block_map))
                .map(|b| Ok((b.block_offset, crate::blobs::checked_block_end(b)?)))
                .collect::<Result<_>>()?,
        );
        let mut maps_fetched = 0;
        for &(a, b) in &maps {
            maps_fetched += (b - a) - log.has_count(a, b)?;
        }
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for (_, e) in &entries {
            match &e.blob {
                Some(b) if b.block_map => {
                    ranges.extend(self.blobs.block_ranges(b, 0, self.blobs.size(b)?)?);
                }
                Some(b) if b.block_length > 0 => ranges.push(self.blobs.block_range(b)),
                _ => {}
            }
        }
        // One range per run of blocks: a folder's files usually lie back to back in the content
        // log, and files that share deduplicated blocks must not count them twice.
        let ranges = crate::blobs::merge_ranges(ranges);
        let total: u64 = ranges.iter().map(|(a, b)| b - a).sum();
        // what each range still misses; a range once complete is not counted again
        let mut left_in: Vec<u64> = ranges.iter().map(|(a, b)| b - a).collect();
        let mut missing = |ranges: &[(u64, u64)]| -> Result<u64> {
            let mut n = 0;
            for (&(a, b), left) in ranges.iter().zip(left_in.iter_mut()) {
                if *left > 0 {
                    *left = (b - a) - log.has_count(a, b)?;
                    n += *left;
                }
            }
            Ok(n)
        };
        let before = missing(&ranges)? + maps_fetched;
        let handles: Vec<_> = ranges
            .iter()
            .map(|&(a, b)| {
                log.prioritize(
                    crate::scheduler::Prioritize::range(a, b)
                        .order(crate::scheduler::Order::Linear)
                        .priority(5),
                )
            })
            .collect();
        // woken by every change to the content log's blocks, and by `cancel`
        let replicator = log.replicator();
        let _woken = cancel.wakes(&replicator);
        let mut seen = replicator.changes();
        loop {
            let left = missing(&ranges)?;
            progress(total - left, total);
            if left == 0 {
                break;
            }
            if cancel.is_cancelled() {
                return Err(Error::Cancelled(format!(
                    "the download of {path} was cancelled with {} of {total} blocks here",
                    total - left
                )));
            }
            let wait = self.opts.timeout;
            match replicator.wait_changed(seen, wait, &|| cancel.is_cancelled()) {
                // what else has arrived by the time this thread runs is counted with it
                Some(changes) => seen = changes,
                None => {
                    return Err(Error::Timeout(format!(
                        "{left} of {total} blocks of {path} did not arrive within {:?}",
                        wait.unwrap_or_default()
                    )));
                }
            }
        }
        drop(handles);
        Ok(before)
    }
}

/// Stops a [`Drive::download_until`] from another thread. Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: AtomicBool,
    /// What the downloads waiting on this token wait on: woken when it is cancelled.
    waiting: Mutex<Vec<Weak<Replicator>>>,
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels whatever waits on this token (and on its clones): a download waiting for blocks
    /// stops at once. Cancelling twice does nothing.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Release);
        let waiting: Vec<_> = self
            .lock_waiting()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for r in waiting {
            r.wake_waiters();
        }
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Replicator>>> {
        self.0.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Has [`cancel`](Self::cancel) wake the waiters of `replicator` until the guard is
    /// dropped.
    fn wakes(&self, replicator: &Arc<Replicator>) -> CancelWakes<'_> {
        let weak = Arc::downgrade(replicator);
        self.lock_waiting().push(weak.clone());
        CancelWakes { token: self, weak }
    }
}

/// Registration of a waiting download with its [`CancelToken`]; removed on drop.
struct CancelWakes<'a> {
    token: &'a CancelToken,
    weak: Weak<Replicator>,
}

impl Drop for CancelWakes<'_> {
    fn drop(&mut self) {
        let mut waiting = self.token.lock_waiting();
        if let Some(i) = waiting.iter().position(|w| w.ptr_eq(&self.weak)) {
            waiting.swap_remove(i);
        }
    }
}

/// The bee range of the entries under `folder` after `after` (a path suffix starting with `/`).
fn folder_range(folder: &str, after: &str) -> RangeOptions {
    RangeOptions::new()
        .gt(entry::key(&format!("{folder}{after}")))
        .lt(entry::key(&format!("{folder}0")))
}

fn decode_item(key: &[u8], value: Option<&[u8]>) -> Result<(String, Entry)> {
    let p = entry::path_of(key)
        .ok_or_else(|| Error::Corrupt("a drive key without the files prefix".into()))?
        .to_string();
    let e = match value {
        Some(v) => {
            Entry::decode(v).map_err(|err| Error::Corrupt(format!("the entry of {p}: {err}")))?
        }
        None => Entry::default(),
    };
    Ok((p, e))
}

/// A file being written ([`Drive::writer`]): `std::io::Write`, then [`FileWriter::finish`].
pub struct FileWriter {
    drive: Drive,
    path: String,
    opts: PutOptions,
    /// Bytes not yet handed to the blob writer (the writer borrows the dedup index, so it is
    /// created at the first write that fills a block).
    buf: Vec<u8>,
    inner: Option<WriterState>,
    report: Option<DedupReport>,
}

struct WriterState {
    writer: crate::blobs::BlobWriter<'static>,
    dedup: Option<index::SharedDedup>,
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const WRITE_BLOCK: usize = 64 * 1024;
/// A file writer appends its blocks to the content log this many at a time (or this many bytes).
const APPEND_BLOCKS: usize = 256;
const APPEND_BYTES: usize = 16 << 20;

impl FileWriter {
    fn state(&mut self) -> Result<&mut WriterState> {
        if self.inner.is_none() {
            let shared = self.opts.dedup.then(|| {
                index::SharedDedup(std::sync::Arc::new(std::sync::Mutex::new(
                    LmdbDedupIndex::new(self.drive.store.clone(), self.drive.blobs.log().key()),
                )))
            });
            let dedup = shared
                .clone()
                .map(|s| Box::new(s) as Box<dyn crate::blobs::DedupIndex>);
            let chunking = if self.opts.dedup {
                Chunking::ContentDefined(crate::blobs::CdcParams::default())
            } else {
                Chunking::Fixed(WRITE_BLOCK)
            };
            let mut writer = self.drive.blobs.writer_with(WriteOptions {
                chunking,
                block_map: self.opts.dedup,
                dedup,
            })?;
            // a large file: 16 MiB per commit rather than 1 MiB (each commit may fsync)
            writer.set_append_batch(APPEND_BLOCKS, APPEND_BYTES);
            // and the next 16 MiB are read and cut while the last are hashed and stored
            writer.append_in_background();
            self.inner = Some(WriterState {
                writer,
                dedup: shared,
            });
        }
        Ok(self.inner.as_mut().expect("just set"))
    }

    fn write_all_bytes(&mut self, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() < 16 * WRITE_BLOCK {
            // small writes gather here until there is enough to be worth a blob writer
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        // the writer first: if it cannot be had, the buffered bytes stay for a retry
        self.state()?;
        let buf = std::mem::take(&mut self.buf);
        let st = self.inner.as_mut().expect("state() made it");
        st.writer.write_blob(&buf)?;
        // a large write goes to the blob writer as it is (no copy through `buf`)
        st.writer.write_blob(data)
    }

    /// Stores the rest and puts the entry; returns it with the dedup report (for dedup writes).
    pub fn finish(self) -> Result<(Entry, Option<DedupReport>)> {
        let drive = self.drive.clone();
        let path = self.path.clone();
        let (e, report) = self.finish_content()?;
        drive.put_entry(&path, &e)?;
        Ok((e, report))
    }

    /// Stores the rest of the content; returns the entry to put (not put yet).
    fn finish_content(mut self) -> Result<(Entry, Option<DedupReport>)> {
        let buf = std::mem::take(&mut self.buf);
        let st = self.state()?;
        st.writer.write_blob(&buf)?;
        let state = self.inner.take().expect("created above");
        let (id, report): (BlobId, DedupReport) = state.writer.finish_with_report()?;
        if let Some(d) = &state.dedup {
            // the blocks are stored: their hashes may now be offered to later writes
            d.0.lock().unwrap_or_else(|p| p.into_inner()).commit()?;
        }
        if self.opts.dedup {
            self.report = Some(report);
        }
        let e = Entry {
            executable: self.opts.executable,
            linkname: None,
            blob: Some(id),
            metadata: self.opts.metadata.clone(),
        };
        Ok((e, self.report))
    }
}

impl std::io::Write for FileWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_all_bytes(data).map_err(std::io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

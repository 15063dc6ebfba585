//! `Drive`: a versioned filesystem (a Hyperdrive 13), its byte cursors and streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dat_core::drive::{
    self, Change, ChangeKind, Cursor, DiffKind, DriveDiff, Entry as CoreEntry, FileVersion,
    PutOptions as CorePutOptions,
};
use napi::Status;
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use tokio::sync::{OnceCell, watch};

use crate::error::{Result, blocking, coded, index, invalid, js, key32, num};
use crate::feed::Feed;
use crate::life::Life;
use crate::store::StoreShared;

/// Options of `store.drive()`.
#[napi(object)]
#[derive(Default)]
pub struct DriveOptions {
    /// A writable drive of its own, in the store namespace of this name.
    pub name: Option<String>,
    /// The drive with this key: local, or filled from peers.
    pub key: Option<Buffer>,
    /// For a drive filled from peers: fetch only what is read (default false: all metadata,
    /// then all content).
    pub sparse: Option<bool>,
    /// How long reads of a drive filled from peers wait for blocks, in ms (default 30000;
    /// -1: no limit). `ready()` waits as long for a peer to send the drive.
    pub timeout: Option<i64>,
}

/// Options of `drive.put()`.
#[napi(object)]
pub struct PutOptions {
    /// The executable bit.
    pub executable: Option<bool>,
    /// Any JSON value stored with the entry.
    pub metadata: Option<serde_json::Value>,
    /// Store the file as content-defined chunks, reusing chunks the drive already holds.
    pub dedup: Option<bool>,
}

/// Where a file's bytes are in the content log.
#[napi(object)]
pub struct Blob {
    /// First block.
    pub block_offset: i64,
    /// Number of blocks.
    pub block_length: i64,
    /// Byte offset of the first block in the content log.
    pub byte_offset: i64,
    /// Number of bytes (of the block map, for a deduplicated file).
    pub byte_length: i64,
    /// `true` for a deduplicated file: these blocks hold a block map listing the file's blocks
    /// (absent otherwise, as in Hyperdrive).
    pub block_map: Option<bool>,
}

/// The value of an entry, as Hyperdrive's.
#[napi(object, use_nullable = true)]
pub struct EntryValue {
    /// The executable bit.
    pub executable: bool,
    /// A symlink's target (null for a file).
    pub linkname: Option<String>,
    /// A file's content (null for a symlink).
    pub blob: Option<Blob>,
    /// The JSON stored with the entry.
    pub metadata: Option<serde_json::Value>,
}

/// A file or symlink: `{ key: path, value: { executable, linkname, blob, metadata }, size }`.
#[napi(object, use_nullable = true)]
pub struct Entry {
    /// The path.
    pub key: String,
    /// The entry itself.
    pub value: EntryValue,
    /// The file's size in bytes (0 for a symlink), or null for a deduplicated file: its entry
    /// holds the size of its block map (`drive.fileSize(entry)` reads the file's).
    pub size: Option<i64>,
}

/// One change of a drive's history (`createChangesStream`).
#[napi(object, use_nullable = true)]
pub struct DriveChange {
    /// The drive version this change made.
    pub version: i64,
    /// `put` or `del`.
    #[napi(js_name = "type")]
    pub kind: String,
    /// The path.
    pub name: String,
    /// The entry written (null for `del`).
    pub entry: Option<Entry>,
}

/// One difference between two versions or drives (`drive.diff()`).
#[napi(object, use_nullable = true)]
pub struct DriveDifference {
    /// The path.
    pub name: String,
    /// `added` (only in this drive), `removed` (only in the other) or `changed`.
    #[napi(js_name = "type")]
    pub kind: String,
    /// The entry in this drive.
    pub left: Option<Entry>,
    /// The entry in the other version or drive.
    pub right: Option<Entry>,
}

/// One version of a file (`drive.history()`).
#[napi(object, use_nullable = true)]
pub struct FileHistoryItem {
    /// The drive version the change made.
    pub version: i64,
    /// The entry written, or null for a deletion.
    pub entry: Option<Entry>,
}

/// Download progress: blocks here out of the blocks wanted.
#[napi(object)]
pub struct DownloadProgress {
    /// Blocks here.
    pub blocks: i64,
    /// Blocks of the files asked for.
    pub total: i64,
}

/// Options of `drive.list()`.
#[napi(object)]
pub struct ListOptions {
    /// Every entry below the folder (default true) or the first under each name in it.
    pub recursive: Option<bool>,
}

/// Options of `drive.entry()`.
#[napi(object)]
pub struct EntryOptions {
    /// Follow symlinks (default false).
    pub follow: Option<bool>,
}

/// Options of `drive.createReadStream()` (and `drive.readChunks()`).
#[napi(object)]
pub struct ReadStreamOptions {
    /// First byte (default 0).
    pub start: Option<i64>,
    /// Last byte, inclusive (default: the end of the file).
    pub end: Option<i64>,
}

/// Options of `drive.createChangesStream()` (and `drive.changes()`).
#[napi(object)]
pub struct ChangesOptions {
    /// The first version to report (default 0: from the start).
    pub since: Option<i64>,
    /// Keep going with changes made later, here or by a peer.
    pub live: Option<bool>,
}

/// Options of `drive.diff()`.
#[napi(object)]
pub struct DiffOptions {
    /// Only under this folder (default `/`).
    pub folder: Option<String>,
}

fn entry(path: String, e: CoreEntry) -> Entry {
    let size = e.size().map(num);
    Entry {
        key: path,
        value: EntryValue {
            executable: e.executable,
            linkname: e.linkname,
            blob: e.blob.map(|b| Blob {
                block_offset: num(b.block_offset),
                block_length: num(b.block_length),
                byte_offset: num(b.byte_offset),
                byte_length: num(b.byte_length),
                block_map: b.block_map.then_some(true),
            }),
            metadata: e.metadata,
        },
        size,
    }
}

/// The core entry an [`Entry`] object describes (as an entry, list, change, history or diff gave
/// it).
fn core_entry(e: Entry) -> Result<CoreEntry> {
    let blob = match e.value.blob {
        None => None,
        Some(b) => Some(dat_core::drive::entry::BlobId {
            block_offset: index(b.block_offset, "blob.blockOffset")?,
            block_length: index(b.block_length, "blob.blockLength")?,
            byte_offset: index(b.byte_offset, "blob.byteOffset")?,
            byte_length: index(b.byte_length, "blob.byteLength")?,
            block_map: b.block_map.unwrap_or(false),
        }),
    };
    Ok(CoreEntry {
        executable: e.value.executable,
        linkname: e.value.linkname,
        blob,
        metadata: e.value.metadata,
    })
}

fn change(c: Change) -> DriveChange {
    DriveChange {
        version: num(c.version),
        kind: match c.kind {
            ChangeKind::Put => "put",
            ChangeKind::Del => "del",
        }
        .into(),
        entry: c.entry.map(|e| entry(c.path.clone(), e)),
        name: c.path,
    }
}

fn difference(d: DriveDiff) -> DriveDifference {
    DriveDifference {
        kind: match d.kind {
            DiffKind::Added => "added",
            DiffKind::Removed => "removed",
            DiffKind::Changed => "changed",
        }
        .into(),
        left: d.left.map(|e| entry(d.path.clone(), e)),
        right: d.right.map(|e| entry(d.path.clone(), e)),
        name: d.path,
    }
}

enum Spec {
    Default,
    Named(String),
    Key([u8; 32], drive::DriveOptions),
    Checkout(Arc<DriveShared>, u64),
}

/// What a drive shares with its checkouts, cursors and streams.
pub(crate) struct DriveShared {
    store: Arc<StoreShared>,
    spec: Spec,
    cell: OnceCell<drive::Drive>,
    life: Arc<Life>,
}

type DriveFuture<'a> = Pin<Box<dyn Future<Output = Result<drive::Drive>> + Send + 'a>>;

impl DriveShared {
    /// The opened drive (opened on first use; a remote one waits for a peer to send it).
    fn drive(&self) -> DriveFuture<'_> {
        Box::pin(async move {
            self.life.check()?;
            let d = self
                .cell
                .get_or_try_init(|| async {
                    match &self.spec {
                        Spec::Checkout(parent, version) => {
                            let d = parent.drive().await?;
                            let v = *version;
                            blocking(move || d.checkout(v)).await
                        }
                        spec => {
                            let store = self.store.store().await?;
                            let spec = match spec {
                                Spec::Default => Spec::Default,
                                Spec::Named(n) => Spec::Named(n.clone()),
                                Spec::Key(k, o) => Spec::Key(*k, o.clone()),
                                Spec::Checkout(..) => unreachable!("matched above"),
                            };
                            let open = blocking(move || match spec {
                                Spec::Named(n) => drive::Drive::create_named(&store, &n),
                                Spec::Key(k, o) => drive::Drive::open(&store, &k, o),
                                _ => drive::Drive::create(&store),
                            });
                            self.life.guard(open).await
                        }
                    }
                })
                .await?;
            Ok(d.clone())
        })
    }

    fn now(&self) -> Option<&drive::Drive> {
        self.cell.get()
    }

    /// True when every block of the drive is on this side, so a read never waits for a peer:
    /// a drive this store writes, or a checkout of one.
    fn local(&self) -> bool {
        match &self.spec {
            Spec::Default | Spec::Named(_) => true,
            Spec::Key(..) => self.now().is_some_and(drive::Drive::writable),
            Spec::Checkout(parent, _) => parent.local(),
        }
    }

    /// A future of the opened drive that owns what it needs (for producers started later).
    fn opening(self: &Arc<Self>) -> impl Future<Output = Result<drive::Drive>> + Send + 'static {
        let me = self.clone();
        async move { me.drive().await }
    }
}

/// A versioned filesystem (a Hyperdrive 13). From `store.drive()` or `drive.checkout()`.
#[napi]
pub struct Drive {
    shared: Arc<DriveShared>,
}

impl Drive {
    pub(crate) fn new(store: Arc<StoreShared>, o: DriveOptions) -> Result<Drive> {
        let spec = match (o.name, o.key) {
            (Some(_), Some(_)) => return Err(invalid("give a drive either a name or a key")),
            (Some(n), None) => Spec::Named(n),
            (None, Some(k)) => Spec::Key(
                key32(&k)?,
                drive::DriveOptions {
                    sparse: o.sparse.unwrap_or(false),
                    timeout: match o.timeout {
                        None => drive::DriveOptions::default().timeout,
                        Some(-1) => None,
                        Some(t) => Some(Duration::from_millis(index(t, "timeout")?)),
                    },
                },
            ),
            (None, None) => Spec::Default,
        };
        let life = store.life.child("drive");
        Ok(Drive {
            shared: Arc::new(DriveShared {
                store,
                spec,
                cell: OnceCell::new(),
                life,
            }),
        })
    }
}

#[napi]
impl Drive {
    /// Opens the drive (every other async call does so too; the getters need it). A drive
    /// filled from peers waits (up to its timeout) for a peer to send it.
    #[napi]
    pub async fn ready(&self) -> Result<()> {
        self.shared.drive().await.map(drop)
    }

    /// The drive's key (null before `ready()`).
    #[napi(getter)]
    pub fn key(&self) -> Option<Buffer> {
        self.shared.now().map(|d| Buffer::from(d.key().to_vec()))
    }

    /// The discovery key peers find the drive by.
    #[napi(getter)]
    pub fn discovery_key(&self) -> Option<Buffer> {
        self.shared
            .now()
            .map(|d| Buffer::from(d.discovery_key().to_vec()))
    }

    /// The version: the metadata log's length (1 for an empty drive; 0 before `ready()`).
    #[napi(getter)]
    pub fn version(&self) -> i64 {
        self.shared.now().map_or(0, |d| num(d.version()))
    }

    /// True for a drive this side writes (and not a checkout).
    #[napi(getter)]
    pub fn writable(&self) -> bool {
        self.shared.now().is_some_and(|d| d.writable())
    }

    /// True once the drive or its store is closed.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.life.is_closed()
    }

    /// Writes a file; resolves with its entry.
    #[napi]
    pub async fn put(
        &self,
        path: String,
        data: Buffer,
        options: Option<PutOptions>,
    ) -> Result<Entry> {
        let data = data.to_vec();
        let opts = options.map_or_else(CorePutOptions::default, |o| CorePutOptions {
            executable: o.executable.unwrap_or(false),
            metadata: o.metadata,
            dedup: o.dedup.unwrap_or(false),
        });
        let d = self.shared.drive().await?;
        blocking(move || {
            let (e, _) = d.put_with(&path, &data, &opts)?;
            Ok(entry(path, e))
        })
        .await
    }

    /// A file's content, or null when there is no file at `path`.
    #[napi]
    pub async fn get(&self, path: String) -> Result<Option<Buffer>> {
        let d = self.shared.drive().await?;
        let data = blocking(move || d.get(&path)).await?;
        Ok(data.map(Buffer::from))
    }

    /// The size in bytes of the file `entry` describes (0 for a symlink); `entry` comes from
    /// this drive, any version. For a deduplicated file this reads its block map (fetching it
    /// from peers if it is not here, within the drive's timeout).
    #[napi]
    pub async fn file_size(&self, entry: Entry) -> Result<i64> {
        let e = core_entry(entry)?;
        let d = self.shared.drive().await?;
        blocking(move || d.file_size(&e)).await.map(num)
    }

    /// The entry at `path` (null if none); `{ follow: true }` follows symlinks.
    #[napi]
    pub async fn entry(
        &self,
        path: String,
        options: Option<EntryOptions>,
    ) -> Result<Option<Entry>> {
        let follow = options.and_then(|o| o.follow).unwrap_or(false);
        let d = self.shared.drive().await?;
        blocking(move || {
            Ok(if follow {
                d.entry_follow(&path)?.map(|(p, e)| entry(p, e))
            } else {
                d.entry(&path)?.map(|e| entry(path, e))
            })
        })
        .await
    }

    /// True when `path` has an entry.
    #[napi]
    pub async fn exists(&self, path: String) -> Result<bool> {
        let d = self.shared.drive().await?;
        blocking(move || d.exists(&path)).await
    }

    /// Deletes a file or symlink; false if there was none.
    #[napi]
    pub async fn del(&self, path: String) -> Result<bool> {
        let d = self.shared.drive().await?;
        blocking(move || d.del(&path)).await
    }

    /// Makes `path` a symlink to `target`.
    #[napi]
    pub async fn symlink(&self, path: String, target: String) -> Result<Entry> {
        let d = self.shared.drive().await?;
        blocking(move || d.symlink(&path, &target).map(|e| entry(path, e))).await
    }

    /// The entries under `folder` (default `/`), in path order: every one below it, or with
    /// `{ recursive: false }` the first under each name in it. Async iterable.
    #[napi]
    pub fn list(
        &self,
        folder: Option<String>,
        options: Option<ListOptions>,
    ) -> Result<EntryIterator> {
        self.shared.life.check()?;
        let folder = folder.unwrap_or_else(|| "/".into());
        let recursive = options.and_then(|o| o.recursive).unwrap_or(true);
        let feed = Feed::list_after(
            self.shared.life.child("list"),
            self.shared.opening(),
            move |d: drive::Drive| {
                Ok(d.list(&folder, recursive)?
                    .into_iter()
                    .map(|(p, e)| entry(p, e))
                    .collect())
            },
        );
        Ok(EntryIterator { feed })
    }

    /// The names directly in `folder` (files and sub-folders). Async iterable.
    #[napi]
    pub fn readdir(&self, folder: Option<String>) -> Result<NameIterator> {
        self.shared.life.check()?;
        let folder = folder.unwrap_or_else(|| "/".into());
        let feed = Feed::list_after(
            self.shared.life.child("readdir"),
            self.shared.opening(),
            move |d: drive::Drive| d.readdir(&folder),
        );
        Ok(NameIterator { feed })
    }

    /// A byte cursor on the file at `path`: `seek`, `read`, `position`.
    #[napi]
    pub fn create_byte_cursor(&self, path: String) -> Result<ByteCursor> {
        self.shared.life.check()?;
        Ok(ByteCursor {
            drive: self.shared.clone(),
            path,
            cursor: Arc::new(Mutex::new(None)),
            position: Arc::new(AtomicU64::new(0)),
            length: Arc::new(AtomicU64::new(0)),
            life: self.shared.life.child("byte cursor"),
        })
    }

    /// The bytes `start..=end` of the file at `path` in chunks (the native side of
    /// `createReadStream`; on a drive filled from peers the range is fetched in order).
    #[napi]
    pub fn read_chunks(
        &self,
        path: String,
        options: Option<ReadStreamOptions>,
    ) -> Result<ChunkIterator> {
        self.shared.life.check()?;
        let (start, end) = match options {
            None => (0, None),
            Some(o) => (
                index(o.start.unwrap_or(0), "start")?,
                o.end.map(|e| index(e, "end")).transpose()?,
            ),
        };
        let produced = Arc::new(AtomicU64::new(0));
        let counted = produced.clone();
        let feed = Feed::blocking_after(
            self.shared.life.child("read stream"),
            READ_AHEAD,
            self.shared.opening(),
            move |d: drive::Drive, sink| {
                for chunk in d.read_stream(&path, start, end)? {
                    let chunk = chunk?;
                    // counted before the hand-over: a chunk waiting for room is in memory too
                    counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if !sink.send(chunk) {
                        break;
                    }
                }
                Ok(())
            },
        );
        Ok(ChunkIterator {
            feed,
            produced,
            consumed: AtomicU64::new(0),
        })
    }

    /// The drive's changes from version `since` on, oldest first; `live` waits for more (the
    /// native side of `createChangesStream`). Async iterable.
    #[napi]
    pub fn changes(&self, options: Option<ChangesOptions>) -> Result<ChangeIterator> {
        self.shared.life.check()?;
        let (since, live) = match options {
            None => (0, false),
            Some(o) => (
                index(o.since.unwrap_or(0), "since")?,
                o.live.unwrap_or(false),
            ),
        };
        let feed = Feed::blocking_after(
            self.shared.life.child("changes stream"),
            64,
            self.shared.opening(),
            move |d: drive::Drive, sink| {
                let live = live && !d.is_checkout();
                let mut changes = d.changes(since, live);
                loop {
                    match changes.next_timeout(Some(Duration::from_millis(200)))? {
                        Some(c) => {
                            if !sink.send(change(c)) {
                                return Ok(());
                            }
                        }
                        // live: no change in time; go on while someone reads
                        None if live && !sink.is_closed() => {}
                        None => return Ok(()),
                    }
                }
            },
        );
        Ok(ChangeIterator { feed })
    }

    /// A read-only view of the drive at `version` (files included).
    #[napi]
    pub fn checkout(&self, version: i64) -> Result<Drive> {
        self.shared.life.check()?;
        let v = index(version, "version")?;
        Ok(Drive {
            shared: Arc::new(DriveShared {
                store: self.shared.store.clone(),
                spec: Spec::Checkout(self.shared.clone(), v),
                cell: OnceCell::new(),
                life: self.shared.life.child("checkout"),
            }),
        })
    }

    /// What differs between this drive and another version of it (a number) or another drive,
    /// under `folder`: `{ name, type, left, right }` with `left` this drive's entry. Async
    /// iterable.
    #[napi]
    pub fn diff(
        &self,
        other: Either<i64, &Drive>,
        options: Option<DiffOptions>,
    ) -> Result<DiffIterator> {
        self.shared.life.check()?;
        let folder = options.and_then(|o| o.folder).unwrap_or_else(|| "/".into());
        let me = self.shared.opening();
        let life = self.shared.life.child("diff");
        let feed = match other {
            Either::A(version) => {
                let v = index(version, "version")?;
                Feed::list_after(life, me, move |d: drive::Drive| {
                    Ok(d.diff(v, &folder)?.into_iter().map(difference).collect())
                })
            }
            Either::B(other) => {
                let them = other.shared.opening();
                let both = async move { Ok((me.await?, them.await?)) };
                Feed::list_after(life, both, move |(a, b): (drive::Drive, drive::Drive)| {
                    Ok(a.diff_drive(&b, &folder)?
                        .into_iter()
                        .map(difference)
                        .collect())
                })
            }
        };
        Ok(DiffIterator { feed })
    }

    /// Every version of the file at `path`, oldest first (`entry` null for a deletion).
    #[napi]
    pub async fn history(&self, path: String) -> Result<Vec<FileHistoryItem>> {
        let d = self.shared.drive().await?;
        blocking(move || {
            Ok(d.file_history(&path)?
                .into_iter()
                .map(|FileVersion { version, entry: e }| FileHistoryItem {
                    version: num(version),
                    entry: e.map(|e| entry(path.clone(), e)),
                })
                .collect())
        })
        .await
    }

    /// Fetches the files under `path` (a file or folder, default `/`) from peers: `await
    /// dl.done()` for the number of blocks fetched, `for await (const p of dl)` for progress,
    /// `dl.cancel()` to stop.
    #[napi]
    pub fn download(&self, path: Option<String>) -> Result<Download> {
        self.shared.life.check()?;
        let path = path.unwrap_or_else(|| "/".into());
        let (progress_tx, progress) = watch::channel((0u64, 0u64));
        let (result_tx, result) = watch::channel(None);
        let opening = self.shared.opening();
        let cancel = dat_core::drive::CancelToken::new();
        let token = cancel.clone();
        napi::bindgen_prelude::spawn(async move {
            let r = match opening.await {
                Err(e) => Err(e.reason),
                Ok(d) => blocking(move || {
                    d.download_until(&path, &token, |done, total| {
                        progress_tx.send_replace((done, total));
                    })
                })
                .await
                .map_err(|e| e.reason),
            };
            result_tx.send_replace(Some(r));
        });
        Ok(Download {
            reported: tokio::sync::Mutex::new((0, 0)),
            progress,
            result,
            life: self.shared.life.child("download"),
            cancel,
        })
    }

    /// Closes this drive (and its checkouts, cursors and streams).
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.shared.life.close();
        Ok(())
    }
}

/// A running download (`drive.download()`).
#[napi]
pub struct Download {
    progress: watch::Receiver<(u64, u64)>,
    /// The last progress the iterator reported.
    reported: tokio::sync::Mutex<(u64, u64)>,
    result: watch::Receiver<Option<std::result::Result<u64, String>>>,
    life: Arc<Life>,
    cancel: dat_core::drive::CancelToken,
}

#[napi]
impl Download {
    /// Stops the download (the blocks already here stay): `done()` then rejects with code
    /// `ECANCELED`, unless it had finished. Cancelling twice does nothing.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Resolves with the number of blocks fetched once every block is here.
    #[napi]
    pub async fn done(&self) -> Result<i64> {
        let mut rx = self.result.clone();
        self.life
            .guard(async move {
                match rx.wait_for(Option::is_some).await {
                    Ok(v) => match v.as_ref() {
                        Some(Ok(n)) => Ok(num(*n)),
                        Some(Err(msg)) => Err(napi::Error::new(Status::GenericFailure, msg)),
                        None => unreachable!("waited for Some"),
                    },
                    Err(_) => Err(coded("ECANCELED", "cancelled: the download stopped")),
                }
            })
            .await
    }

    /// Progress so far.
    #[napi(getter)]
    pub fn progress(&self) -> DownloadProgress {
        let (blocks, total) = *self.progress.borrow();
        DownloadProgress {
            blocks: num(blocks),
            total: num(total),
        }
    }

    /// The next progress report, or null once the download has finished (the last report is
    /// all blocks here).
    #[napi]
    pub async fn next(&self) -> Result<Option<DownloadProgress>> {
        let mut last = self.reported.lock().await;
        loop {
            let mut progress = self.progress.clone();
            let now = *progress.borrow_and_update();
            if now != *last {
                *last = now;
                return Ok(Some(DownloadProgress {
                    blocks: num(now.0),
                    total: num(now.1),
                }));
            }
            let mut result = self.result.clone();
            if result.borrow().is_some() || self.life.is_closed() {
                return Ok(None);
            }
            let ended = tokio::select! {
                r = progress.changed() => r.is_err(),
                r = result.wait_for(Option::is_some) => r.is_err(),
                () = self.life.wait() => return Ok(None),
            };
            if ended {
                // the download ended: its result follows at once
                tokio::task::yield_now().await;
            }
        }
    }
}

/// A byte cursor on a file (`drive.createByteCursor()`).
#[napi]
pub struct ByteCursor {
    drive: Arc<DriveShared>,
    path: String,
    cursor: Arc<Mutex<Option<Cursor>>>,
    position: Arc<AtomicU64>,
    length: Arc<AtomicU64>,
    life: Arc<Life>,
}

/// The most a cursor reads on the runtime's own thread (see `ByteCursor::with`).
const INLINE_READ: usize = 256 * 1024;

impl ByteCursor {
    /// Runs `f` on the cursor (opening it first). A short call on a local drive, which never
    /// waits for a peer, runs on the runtime thread that serves the call (a hop fewer for each
    /// small random read); anything else runs on the blocking pool.
    async fn with<T, F>(&self, small: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Cursor) -> dat_core::Result<T> + Send + 'static,
    {
        self.life.check()?;
        let d = self.drive.drive().await?;
        let (cursor, position, length) = (
            self.cursor.clone(),
            self.position.clone(),
            self.length.clone(),
        );
        let path = self.path.clone();
        let run = move || {
            let mut g = cursor.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_none() {
                let c = d.cursor(&path)?;
                length.store(c.len(), Ordering::Relaxed);
                *g = Some(c);
            }
            let c = g.as_mut().expect("just opened");
            let r = f(c);
            position.store(c.tell(), Ordering::Relaxed);
            r
        };
        if small && self.drive.local() {
            return run().map_err(js);
        }
        self.life.guard(blocking(run)).await
    }
}

#[napi]
impl ByteCursor {
    /// Opens the file (the first `seek` or `read` does so too; `length` needs it).
    #[napi]
    pub async fn open(&self) -> Result<()> {
        self.with(true, |_| Ok(())).await
    }

    /// Moves to byte `position`; resolves with it. On a drive filled from peers the block
    /// there is fetched first.
    #[napi]
    pub async fn seek(&self, position: i64) -> Result<i64> {
        let p = index(position, "position")?;
        self.with(true, move |c| c.seek_to(p).map(num)).await
    }

    /// Reads up to `length` bytes from the position on and moves past them (an empty buffer
    /// at the end of the file).
    #[napi]
    pub async fn read(&self, length: u32) -> Result<Buffer> {
        let n = length as usize;
        let bytes = self
            .with(n <= INLINE_READ, move |c| c.read_bytes(n))
            .await?;
        Ok(bytes.into())
    }

    /// The current position.
    #[napi(getter)]
    pub fn position(&self) -> i64 {
        num(self.position.load(Ordering::Relaxed))
    }

    /// The file's size (0 before the cursor opened it).
    #[napi(getter)]
    pub fn length(&self) -> i64 {
        num(self.length.load(Ordering::Relaxed))
    }

    /// Closes the cursor.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.life.close();
        self.cursor.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }
}

macro_rules! iterator {
    ($doc:literal, $name:ident, $item:ty, $ts:literal) => {
        #[doc = $doc]
        #[napi]
        pub struct $name {
            feed: Feed<$item>,
        }

        #[napi]
        impl $name {
            /// The next item, or null at the end (or once closed).
            #[napi(ts_return_type = $ts)]
            pub async fn next(&self) -> Result<Option<$item>> {
                self.feed.next().await
            }

            /// Stops early.
            #[napi]
            pub fn close(&self) {
                self.feed.close();
            }
        }
    };
}

iterator!(
    "Entries of `drive.list()`.",
    EntryIterator,
    Entry,
    "Promise<Entry | null>"
);
iterator!(
    "Names of `drive.readdir()`.",
    NameIterator,
    String,
    "Promise<string | null>"
);
iterator!(
    "Changes of `drive.changes()`.",
    ChangeIterator,
    DriveChange,
    "Promise<DriveChange | null>"
);
iterator!(
    "Differences of `drive.diff()`.",
    DiffIterator,
    DriveDifference,
    "Promise<DriveDifference | null>"
);

/// Chunks (of at most 64 KiB) a read stream reads ahead of its consumer (plus the one waiting
/// for room); `nextBatch()` takes all that are ready, so a consumer slower than the drive pays
/// its per-call cost once per batch, not per chunk.
const READ_AHEAD: usize = 16;

/// Chunks of a file (`drive.readChunks()`, behind `createReadStream`).
#[napi]
pub struct ChunkIterator {
    feed: Feed<Vec<u8>>,
    /// Bytes read from the file so far.
    produced: Arc<AtomicU64>,
    /// Bytes handed to JavaScript so far.
    consumed: AtomicU64,
}

#[napi]
impl ChunkIterator {
    /// The next chunk (at most 64 KiB), or null at the end (or once closed).
    #[napi]
    pub async fn next(&self) -> Result<Option<Buffer>> {
        let chunk = self.feed.next().await?;
        if let Some(c) = &chunk {
            self.consumed.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        Ok(chunk.map(Buffer::from))
    }

    /// The next chunk and every chunk already read ahead (an array of at most 16 buffers of at
    /// most 64 KiB each), waiting for the first; empty at the end (or once closed).
    #[napi]
    pub async fn next_batch(&self) -> Result<Vec<Buffer>> {
        let chunks = self.feed.next_batch(READ_AHEAD).await?;
        let n: usize = chunks.iter().map(Vec::len).sum();
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(chunks.into_iter().map(Buffer::from).collect())
    }

    /// Bytes read from the file and not yet handed to JavaScript: the native read-ahead, at
    /// most 17 chunks of 64 KiB (16 buffered, 1 waiting for room) however slow the consumer
    /// is.
    #[napi(getter)]
    pub fn buffered_bytes(&self) -> i64 {
        let consumed = self.consumed.load(Ordering::Relaxed);
        num(self
            .produced
            .load(Ordering::Relaxed)
            .saturating_sub(consumed))
    }

    /// Stops early.
    #[napi]
    pub fn close(&self) {
        self.feed.close();
    }
}

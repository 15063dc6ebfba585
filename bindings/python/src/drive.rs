//! `libdat.Drive` (a Hyperdrive 13) and what it hands out: entries, changes, diffs, file
//! versions, byte cursors, read streams, downloads and file writers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dat_core::drive::{ChangeKind, DiffKind, Drive as CoreDrive, Entry as CoreEntry, PutOptions};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple};

use crate::completion::{self, Completion};
use crate::errors::{Error, Result, invalid};
use crate::log::{Bytes, Log, bytes_arg, hex};
use crate::runtime::{self, dispatch, runtime};
use crate::store::{Release, Slot, StoreState};

/// What `Store.close()` releases for `value`.
fn held<T: Send + 'static>(value: &Arc<Mutex<Option<T>>>) -> std::sync::Weak<dyn Release> {
    Arc::downgrade(value) as std::sync::Weak<dyn Release>
}

fn json_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static JSON: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    JSON.get_or_try_init(py, || Ok::<_, PyErr>(py.import("json")?.unbind()))
        .map(|m| m.bind(py))
}

/// A JSON-serializable Python value as JSON.
fn to_json(value: &Bound<'_, PyAny>) -> Result<serde_json::Value> {
    let text: String = json_module(value.py())?
        .call_method1("dumps", (value,))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| invalid(format!("metadata is not JSON: {e}")))
}

/// JSON as a Python value.
fn from_json<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    json_module(py)?.call_method1("loads", (value.to_string(),))
}

fn put_options(
    executable: bool,
    metadata: Option<&Bound<'_, PyAny>>,
    dedup: bool,
) -> Result<PutOptions> {
    Ok(PutOptions {
        executable,
        metadata: match metadata {
            Some(m) if !m.is_none() => Some(to_json(m)?),
            _ => None,
        },
        dedup,
    })
}

/// A versioned file system (a Hyperdrive 13 drive), from `store.drive()`.
#[pyclass(frozen, module = "libdat", name = "Drive")]
pub struct Drive {
    state: Arc<StoreState>,
    drive: Slot<CoreDrive>,
}

impl Drive {
    pub fn new(state: Arc<StoreState>, drive: CoreDrive) -> Drive {
        let drive = state.slot(drive);
        Drive { state, drive }
    }

    fn drive(&self) -> Result<CoreDrive> {
        self.state.check()?;
        self.drive.get()
    }
}

#[pymethods]
impl Drive {
    /// Writes the file at `path`; returns its entry. `metadata`: any JSON-serializable value
    /// stored with the entry; `dedup`: store only the content-defined chunks the drive does not
    /// hold yet.
    #[pyo3(signature = (path, data, *, executable=false, metadata=None, dedup=false))]
    fn put(
        &self,
        py: Python<'_>,
        path: String,
        data: &Bound<'_, PyAny>,
        executable: bool,
        metadata: Option<&Bound<'_, PyAny>>,
        dedup: bool,
    ) -> Result<Entry> {
        let drive = self.drive()?;
        let opts = put_options(executable, metadata, dedup)?;
        let data = bytes_arg(data)?;
        let (entry, _) = py.detach(move || drive.put_with(&path, &data, &opts))?;
        Ok(Entry(entry))
    }

    /// The bytes of the file at `path`, or `None` if there is none (or it is a symlink). On a
    /// remote drive the blocks are fetched from peers (waiting up to the drive's timeout).
    fn get<'py>(&self, py: Python<'py>, path: String) -> Result<Option<Bound<'py, PyBytes>>> {
        let drive = self.drive()?;
        let data = py.detach(move || drive.get(&path))?;
        Ok(data.map(|d| PyBytes::new(py, &d)))
    }

    /// `get` for asyncio: `await drive.get_async(path)`.
    fn get_async<'py>(&self, py: Python<'py>, path: String) -> Result<Bound<'py, PyAny>> {
        let drive = self.drive()?;
        let register = pyo3::types::PyCFunction::new_closure(
            py,
            None,
            None,
            move |args: &Bound<'_, PyTuple>, _kw| -> PyResult<()> {
                let done: Py<PyAny> = args.get_item(0)?.unbind();
                let (drive, path) = (drive.clone(), path.clone());
                crate::aio::spawn_blocking(done, move || Ok(drive.get(&path)?.map(Bytes)))?;
                Ok(())
            },
        )?;
        Ok(crate::aio::bridge(register.as_any())?)
    }

    /// The size in bytes of the file `entry` describes (0 for a symlink); `entry` comes from
    /// this drive, any version. For a deduplicated file this reads its block map (fetching it
    /// from peers if it is not here, within the drive's timeout).
    fn file_size(&self, py: Python<'_>, entry: PyRef<'_, Entry>) -> Result<u64> {
        let drive = self.drive()?;
        let entry = entry.0.clone();
        Ok(py.detach(move || drive.file_size(&entry))?)
    }

    /// The entry at `path`, or `None`. A symlink's own entry, unless `follow`: then the entry
    /// of the file it leads to.
    #[pyo3(signature = (path, *, follow=false))]
    fn entry(&self, py: Python<'_>, path: String, follow: bool) -> Result<Option<Entry>> {
        let drive = self.drive()?;
        let entry = py.detach(move || {
            if follow {
                drive.entry_follow(&path).map(|e| e.map(|(_, e)| e))
            } else {
                drive.entry(&path)
            }
        })?;
        Ok(entry.map(Entry))
    }

    /// True if there is an entry at `path`.
    fn exists(&self, py: Python<'_>, path: String) -> Result<bool> {
        let drive = self.drive()?;
        Ok(py.detach(move || drive.exists(&path))?)
    }

    /// Deletes the entry at `path`; returns whether there was one.
    fn delete(&self, py: Python<'_>, path: String) -> Result<bool> {
        let drive = self.drive()?;
        Ok(py.detach(move || drive.del(&path))?)
    }

    /// Makes `path` a symlink to `target`; returns its entry.
    fn symlink(&self, py: Python<'_>, path: String, target: String) -> Result<Entry> {
        let drive = self.drive()?;
        Ok(Entry(py.detach(move || drive.symlink(&path, &target))?))
    }

    /// The entries under `folder` as an iterator of `(path, Entry)`, sorted by path; only
    /// the folder's own entries unless `recursive`.
    #[pyo3(signature = (folder=String::from("/"), recursive=true))]
    fn list<'py>(
        &self,
        py: Python<'py>,
        folder: String,
        recursive: bool,
    ) -> Result<Bound<'py, pyo3::types::PyIterator>> {
        let drive = self.drive()?;
        let items = py.detach(move || drive.list(&folder, recursive))?;
        let items: Vec<(String, Entry)> = items.into_iter().map(|(p, e)| (p, Entry(e))).collect();
        let list = pyo3::types::PyList::new(py, items)?;
        Ok(list.try_iter()?)
    }

    /// The names directly under `folder` (files and sub-folders).
    #[pyo3(signature = (folder=String::from("/")))]
    fn readdir(&self, py: Python<'_>, folder: String) -> Result<Vec<String>> {
        let drive = self.drive()?;
        Ok(py.detach(move || drive.readdir(&folder))?)
    }

    /// A read-only drive as this one was at `version`.
    fn checkout(&self, py: Python<'_>, version: u64) -> Result<Drive> {
        let drive = self.drive()?;
        let old = py.detach(move || drive.checkout(version))?;
        Ok(Drive::new(self.state.clone(), old))
    }

    /// The names under `folder` that differ between this drive (left) and `other` (right): a
    /// version of this drive (an `int`) or another `Drive`. A list of `Diff`.
    #[pyo3(signature = (other, folder=String::from("/")))]
    fn diff(&self, py: Python<'_>, other: &Bound<'_, PyAny>, folder: String) -> Result<Vec<Diff>> {
        let drive = self.drive()?;
        let diffs = if let Ok(o) = other.cast::<Drive>() {
            let o = o.get().drive()?;
            py.detach(move || drive.diff_drive(&o, &folder))?
        } else if let Ok(v) = other.extract::<u64>() {
            py.detach(move || drive.diff(v, &folder))?
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "diff() takes a version (int) or a Drive",
            )
            .into());
        };
        Ok(diffs
            .into_iter()
            .map(|d| Diff {
                name: d.path,
                kind: match d.kind {
                    DiffKind::Added => "added",
                    DiffKind::Removed => "removed",
                    DiffKind::Changed => "changed",
                },
                left: d.left.map(Entry),
                right: d.right.map(Entry),
            })
            .collect())
    }

    /// The changes made after version `since`, oldest first, as an iterator of `Change`
    /// (`async for` too). `live`: after the last one, wait for new changes (local writes and
    /// replicated ones) instead of ending.
    #[pyo3(signature = (since=0, live=false))]
    fn changes(&self, since: u64, live: bool) -> Result<Changes> {
        let drive = self.drive()?;
        // a checkout never changes: its stream ends like a stream that is not live
        let live = live && !drive.is_checkout();
        let changes = Arc::new(Mutex::new(Some(
            drive.changes(since.saturating_add(1), live),
        )));
        self.state.hold(held(&changes));
        Ok(Changes {
            state: self.state.clone(),
            changes,
            live,
            pending: Arc::default(),
            ended: Arc::default(),
        })
    }

    /// Every version of the file at `path`, oldest first: a list of `FileVersion` (`entry` is
    /// `None` for a deletion).
    fn history(&self, py: Python<'_>, path: String) -> Result<Vec<FileVersion>> {
        let drive = self.drive()?;
        let versions = py.detach(move || drive.file_history(&path))?;
        Ok(versions
            .into_iter()
            .map(|v| FileVersion {
                version: v.version,
                entry: v.entry.map(Entry),
            })
            .collect())
    }

    /// The file at `path` as a binary file object (an `io.RawIOBase`: `read`, `readinto`,
    /// `seek`, `tell`; wrap it in `io.BufferedReader` for buffered reads). On a remote drive
    /// reads fetch the blocks they need and prefetch ahead.
    fn open<'py>(&self, py: Python<'py>, path: String) -> Result<Bound<'py, PyAny>> {
        let cursor = self.cursor(py, path.clone())?;
        static FILE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let class = FILE.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("libdat._file")?.getattr("DriveFile")?.unbind())
        })?;
        Ok(class.bind(py).call1((cursor, path))?)
    }

    /// A byte cursor on the file at `path` (the raw object behind `open()`).
    fn cursor(&self, py: Python<'_>, path: String) -> Result<Cursor> {
        let drive = self.drive()?;
        let p = path.clone();
        let cursor = py.detach(move || drive.cursor(&p))?;
        let size = cursor.len();
        let cursor = Arc::new(Mutex::new(Some(cursor)));
        self.state.hold(held(&cursor));
        Ok(Cursor {
            state: self.state.clone(),
            size,
            cursor,
            path,
        })
    }

    /// The bytes `start..=end` of the file at `path` (`end` inclusive, as Hyperdrive;
    /// `None`: to the end) as an iterator of chunks of at most 64 KiB. On a remote drive the
    /// range is prioritized while the stream lives.
    #[pyo3(signature = (path, start=0, end=None))]
    fn read_stream(
        &self,
        py: Python<'_>,
        path: String,
        start: u64,
        end: Option<u64>,
    ) -> Result<ReadStream> {
        let drive = self.drive()?;
        let stream = py.detach(move || drive.read_stream(&path, start, end))?;
        let stream = Arc::new(Mutex::new(Some(stream)));
        self.state.hold(held(&stream));
        Ok(ReadStream {
            state: self.state.clone(),
            stream,
        })
    }

    /// Fetches the files under `path` (a file or a folder) from peers, in the background.
    /// Returns a `Download`: `wait()` or `await` it for the number of blocks fetched; `progress`
    /// is `(blocks done, blocks total)`; `progress=callback(done, total)` is called as blocks
    /// arrive (on libdat's callback thread; updates may be merged). `cancel()` stops it.
    #[pyo3(signature = (path=String::from("/"), *, progress=None))]
    fn download(&self, path: String, progress: Option<Py<PyAny>>) -> Result<Download> {
        let drive = self.drive()?;
        let dl = Download {
            state: self.state.clone(),
            completion: Completion::new(),
            progress: Arc::new(Mutex::new((0, 0))),
            fetched: Arc::new(AtomicU64::new(0)),
            cancel: dat_core::drive::CancelToken::new(),
        };
        let cancel = dl.cancel.clone();
        let (completion, shared, fetched) = (
            dl.completion.clone(),
            dl.progress.clone(),
            dl.fetched.clone(),
        );
        let callback = progress.map(Arc::new);
        let queued = Arc::new(AtomicBool::new(false));
        runtime()?.spawn_blocking(move || {
            let report = |done: u64, total: u64| {
                *shared.lock().unwrap_or_else(|p| p.into_inner()) = (done, total);
                // one queued call at a time, reading the latest progress when it runs
                if let Some(cb) = &callback
                    && !queued.swap(true, Ordering::AcqRel)
                {
                    let (cb, shared, queued) = (cb.clone(), shared.clone(), queued.clone());
                    dispatch(move |py| {
                        queued.store(false, Ordering::Release);
                        let (d, t) = *shared.lock().unwrap_or_else(|p| p.into_inner());
                        runtime::call_reporting(py, &cb, (d, t));
                    });
                }
            };
            let r = drive.download_until(&path, &cancel, report);
            let r = r.map(|n| fetched.store(n, Ordering::Release));
            let fetched = fetched.clone();
            let value: completion::ValueFn = Arc::new(move |py| {
                fetched
                    .load(Ordering::Acquire)
                    .into_pyobject(py)
                    .map(|v| v.into_any().unbind())
                    .unwrap_or_else(|_| py.None())
            });
            completion.complete(r, value);
        });
        Ok(dl)
    }

    /// The version: the number of changes + 1 (1 for an empty drive).
    #[getter]
    fn version(&self) -> Result<u64> {
        Ok(self.drive()?.version())
    }

    /// The drive's key (its metadata log's key, 32 bytes): share it with readers.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.drive()?.key()))
    }

    /// The key peers find the drive by.
    #[getter]
    fn discovery_key<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.drive()?.discovery_key()))
    }

    /// True for a drive this side writes (not a remote drive, not a checkout).
    #[getter]
    fn writable(&self) -> Result<bool> {
        Ok(self.drive()?.writable())
    }

    /// True for a checkout (`drive.checkout(version)`).
    #[getter]
    fn is_checkout(&self) -> Result<bool> {
        Ok(self.drive()?.is_checkout())
    }

    /// The metadata log (the drive's entries, a Hyperbee).
    #[getter]
    fn metadata_log(&self) -> Result<Log> {
        let drive = self.drive()?;
        self.state.adopt_log(drive.metadata_log().clone())
    }

    /// The content log (the files' bytes, Hyperblobs).
    #[getter]
    fn content_log(&self) -> Result<Log> {
        let drive = self.drive()?;
        self.state.adopt_log(drive.content_log().clone())
    }

    fn __repr__(&self) -> String {
        let Ok(drive) = self.drive.get() else {
            return "<libdat.Drive closed>".into();
        };
        let kind = if drive.is_checkout() { " checkout" } else { "" };
        format!(
            "<libdat.Drive {}{kind} version={}>",
            hex(&drive.key()[..8]),
            drive.version()
        )
    }
}

// ------------------------------------------------------------------------------- values

/// A file or symlink entry.
#[pyclass(frozen, module = "libdat", name = "Entry")]
#[derive(Clone)]
pub struct Entry(CoreEntry);

#[pymethods]
impl Entry {
    /// The executable bit.
    #[getter]
    fn executable(&self) -> bool {
        self.0.executable
    }

    /// The target of a symlink (`None` for a file).
    #[getter]
    fn linkname(&self) -> Option<String> {
        self.0.linkname.clone()
    }

    /// The file's size in bytes (0 for a symlink), or `None` for a deduplicated file: its entry
    /// holds the size of its block map, not the file's (`Drive.file_size(entry)` reads it).
    #[getter]
    fn size(&self) -> Option<u64> {
        self.0.size()
    }

    /// True for a deduplicated file (written with `dedup=True`: a block map lists its blocks).
    #[getter]
    fn is_deduplicated(&self) -> bool {
        self.0.is_block_mapped()
    }

    /// True for a symlink.
    #[getter]
    fn is_symlink(&self) -> bool {
        self.0.is_symlink()
    }

    /// True for a file.
    #[getter]
    fn is_file(&self) -> bool {
        self.0.blob.is_some()
    }

    /// The JSON value stored with the entry (`None` if none).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0.metadata {
            None => Ok(py.None().into_bound(py)),
            Some(v) => from_json(py, v),
        }
    }

    /// Where the content is in the content log (`None` for a symlink).
    #[getter]
    fn blob(&self) -> Option<Blob> {
        self.0.blob.map(|b| Blob {
            block_offset: b.block_offset,
            block_length: b.block_length,
            byte_offset: b.byte_offset,
            byte_length: b.byte_length,
            block_map: b.block_map,
        })
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Entry>().is_ok_and(|o| o.get().0 == self.0)
    }

    fn __repr__(&self) -> String {
        match &self.0.linkname {
            Some(l) => format!("Entry(symlink to {l:?})"),
            None => format!(
                "Entry(size={}, executable={})",
                self.0
                    .size()
                    .map_or_else(|| "None (deduplicated)".to_string(), |n| n.to_string()),
                if self.0.executable { "True" } else { "False" }
            ),
        }
    }
}

/// Where a file's content is stored in the drive's content log.
#[pyclass(frozen, module = "libdat", name = "Blob")]
#[derive(Clone)]
pub struct Blob {
    /// First block.
    #[pyo3(get)]
    block_offset: u64,
    /// Number of blocks.
    #[pyo3(get)]
    block_length: u64,
    /// Byte offset of the first block in the log.
    #[pyo3(get)]
    byte_offset: u64,
    /// Number of bytes.
    #[pyo3(get)]
    byte_length: u64,
    /// The blocks hold a block map (a deduplicated file) rather than the bytes.
    #[pyo3(get)]
    block_map: bool,
}

#[pymethods]
impl Blob {
    fn __repr__(&self) -> String {
        format!(
            "Blob(block_offset={}, block_length={}, byte_offset={}, byte_length={})",
            self.block_offset, self.block_length, self.byte_offset, self.byte_length
        )
    }
}

/// One change of a drive (`drive.changes()`).
#[pyclass(frozen, module = "libdat", name = "Change")]
pub struct Change {
    /// The drive version right after the change (2 for the first change).
    #[pyo3(get)]
    version: u64,
    /// `"put"` or `"del"`.
    #[pyo3(get, name = "type")]
    kind: &'static str,
    /// The path.
    #[pyo3(get)]
    name: String,
    /// The entry written (`None` for a deletion).
    #[pyo3(get)]
    entry: Option<Entry>,
}

impl Change {
    fn from_core(c: dat_core::drive::Change) -> Change {
        Change {
            version: c.version,
            kind: match c.kind {
                ChangeKind::Put => "put",
                ChangeKind::Del => "del",
            },
            name: c.path,
            entry: c.entry.map(Entry),
        }
    }
}

#[pymethods]
impl Change {
    fn __repr__(&self) -> String {
        format!(
            "Change(version={}, type={:?}, name={:?})",
            self.version, self.kind, self.name
        )
    }
}

/// One name that differs between two sides of `drive.diff()`.
#[pyclass(frozen, module = "libdat", name = "Diff")]
pub struct Diff {
    /// The path.
    #[pyo3(get)]
    name: String,
    /// `"added"` (only on the left), `"removed"` (only on the right) or `"changed"`.
    #[pyo3(get, name = "type")]
    kind: &'static str,
    /// The entry on the left (the drive `diff` was called on), or `None`.
    #[pyo3(get)]
    left: Option<Entry>,
    /// The entry on the right (the other side), or `None`.
    #[pyo3(get)]
    right: Option<Entry>,
}

#[pymethods]
impl Diff {
    fn __repr__(&self) -> String {
        format!("Diff(type={:?}, name={:?})", self.kind, self.name)
    }
}

/// One version of one file (`drive.history()`).
#[pyclass(frozen, module = "libdat", name = "FileVersion")]
pub struct FileVersion {
    /// The drive version the change made.
    #[pyo3(get)]
    version: u64,
    /// The entry written, or `None` for a deletion.
    #[pyo3(get)]
    entry: Option<Entry>,
}

#[pymethods]
impl FileVersion {
    /// True if this version deleted the file.
    #[getter]
    fn deleted(&self) -> bool {
        self.entry.is_none()
    }

    fn __repr__(&self) -> String {
        match &self.entry {
            Some(e) => format!(
                "FileVersion(version={}, size={})",
                self.version,
                e.0.size()
                    .map_or_else(|| "None".to_string(), |n| n.to_string())
            ),
            None => format!("FileVersion(version={}, deleted)", self.version),
        }
    }
}

// ------------------------------------------------------------------------------- streams

/// A drive's changes as an iterator (`drive.changes()`; `async for` too).
#[pyclass(frozen, module = "libdat", name = "Changes")]
pub struct Changes {
    state: Arc<StoreState>,
    changes: Arc<Mutex<Option<dat_core::drive::Changes>>>,
    live: bool,
    pending: Arc<Mutex<VecDeque<Change>>>,
    ended: Arc<AtomicBool>,
}

impl Changes {
    fn take(&self) -> Option<Change> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire) || self.state.is_closed()
    }

    fn next_until(
        &self,
        py: Python<'_>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<Change>> {
        loop {
            if let Some(c) = self.take() {
                return Ok(Some(c));
            }
            if self.is_ended() {
                return Ok(None);
            }
            let wait = if self.live {
                match runtime::next_slice(deadline) {
                    Some(s) => Some(s),
                    None => return Ok(None),
                }
            } else {
                None
            };
            let changes = self.changes.clone();
            let next = py.detach(move || {
                match changes.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    Some(c) => c.next_timeout(wait),
                    None => Ok(None),
                }
            })?;
            match next {
                Some(c) => return Ok(Some(Change::from_core(c))),
                None if !self.live => self.ended.store(true, Ordering::Release),
                None => py.check_signals()?,
            }
        }
    }
}

#[pymethods]
impl Changes {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Result<Option<Change>> {
        self.next_until(py, None)
    }

    /// The next change, waiting up to `timeout` seconds for one on a live stream (`None`: no
    /// limit); `None` when none came in time or the stream ended.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> Result<Option<Change>> {
        let t = runtime::timeout_arg(timeout)?;
        self.next_until(py, runtime::deadline(t))
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::anext(slf.as_any())
    }

    /// Ends the stream.
    fn close(&self) {
        self.ended.store(true, Ordering::Release);
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) {
        self.close();
    }

    // --- the protocol of libdat._aio.anext

    fn _take(&self) -> Option<Change> {
        self.take()
    }

    #[getter]
    fn _ended(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            && self.is_ended()
    }

    fn _poll(&self, wait: f64, done: Py<PyAny>) -> Result<()> {
        let wait = runtime::timeout_arg(Some(wait))?;
        let (changes, pending, ended, live) = (
            self.changes.clone(),
            self.pending.clone(),
            self.ended.clone(),
            self.live,
        );
        crate::aio::spawn_blocking(done, move || {
            let mut guard = changes.lock().unwrap_or_else(|p| p.into_inner());
            let Some(c) = guard.as_mut() else {
                ended.store(true, Ordering::Release);
                return Ok(());
            };
            match c.next_timeout(if live { wait } else { None })? {
                Some(c) => pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back(Change::from_core(c)),
                None if !live => ended.store(true, Ordering::Release),
                None => {}
            }
            Ok(())
        })
    }
}

/// A byte cursor on one file (`drive.cursor()`; `drive.open()` wraps it in an `io.RawIOBase`).
#[pyclass(frozen, module = "libdat", name = "Cursor")]
pub struct Cursor {
    state: Arc<StoreState>,
    cursor: Arc<Mutex<Option<dat_core::drive::Cursor>>>,
    /// The file's size.
    #[pyo3(get)]
    size: u64,
    /// The file's path.
    #[pyo3(get)]
    path: String,
}

impl Cursor {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dat_core::drive::Cursor) -> dat_core::Result<T> + Send,
    ) -> Result<T> {
        self.state.check()?;
        py.detach(|| {
            let mut guard = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(c) => f(c).map_err(Error::Core),
                None => Err(Error::Closed(format!(
                    "the cursor on {} is closed",
                    self.path
                ))),
            }
        })
    }
}

#[pymethods]
impl Cursor {
    /// Reads up to `size` bytes from the position (`-1`: to the end); `b""` at the end.
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&self, py: Python<'py>, size: i64) -> Result<Bound<'py, PyBytes>> {
        let data = self.with(py, |c| {
            let n = if size < 0 {
                c.len() - c.tell()
            } else {
                size as u64
            };
            c.read_bytes(n.min(usize::MAX as u64) as usize)
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// Moves to byte `position` (at most the size); returns it.
    fn seek(&self, py: Python<'_>, position: u64) -> Result<u64> {
        self.with(py, |c| c.seek_to(position))
    }

    /// The position.
    fn tell(&self, py: Python<'_>) -> Result<u64> {
        self.with(py, |c| Ok(c.tell()))
    }

    /// Releases the cursor (and its prefetch range).
    fn close(&self) {
        self.cursor.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn __len__(&self) -> usize {
        self.size as usize
    }
}

/// The chunks of a byte range of one file (`drive.read_stream()`).
#[pyclass(frozen, module = "libdat", name = "ReadStream")]
pub struct ReadStream {
    state: Arc<StoreState>,
    stream: Arc<Mutex<Option<dat_core::drive::ReadStream>>>,
}

#[pymethods]
impl ReadStream {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> Result<Option<Bound<'py, PyBytes>>> {
        self.state.check()?;
        // The stream's lock is only taken with the GIL released, and let go before the GIL is
        // taken back (another thread may hold the GIL while it waits for the lock).
        let lock = || self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let n = py.detach(|| {
            let mut guard = lock();
            let n = guard.as_ref().map_or(0, |s| {
                usize::try_from(s.remaining())
                    .unwrap_or(usize::MAX)
                    .min(dat_core::drive::ReadStream::CHUNK)
            });
            if n == 0 {
                // the range is withdrawn as soon as the stream ends
                guard.take();
            }
            n
        });
        if n == 0 {
            return Ok(None);
        }
        // the chunk is read straight into the new bytes object, without the GIL
        let mut outcome = Ok(());
        let bytes = PyBytes::new_with(py, n, |buf| {
            outcome = py.detach(|| match lock().as_mut().map(|s| s.read_into(buf)) {
                Some(Ok(k)) if k == n => Ok(()),
                Some(Err(e)) => Err(e),
                // another thread read from this stream (or closed it) in between
                _ => Err(dat_core::Error::InvalidArgument(
                    "a read stream was read from two threads at once".into(),
                )),
            });
            Ok(())
        })?;
        outcome?;
        Ok(Some(bytes))
    }

    /// Bytes left to read.
    #[getter]
    fn remaining(&self) -> u64 {
        self.stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |s| s.remaining())
    }

    /// Ends the stream (withdrawing its range).
    fn close(&self) {
        self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) {
        self.close();
    }
}

/// A download running in the background (`drive.download()`): `wait()` or `await` it for the
/// number of blocks fetched.
#[pyclass(frozen, module = "libdat", name = "Download")]
pub struct Download {
    state: Arc<StoreState>,
    completion: Arc<Completion>,
    progress: Arc<Mutex<(u64, u64)>>,
    fetched: Arc<AtomicU64>,
    cancel: dat_core::drive::CancelToken,
}

#[pymethods]
impl Download {
    /// Stops the download (the blocks already here stay): `wait()` then raises
    /// `libdat.CancelledError`, unless it had finished. Cancelling twice does nothing.
    fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the download to finish, for at most `timeout` seconds (`None`: no limit);
    /// returns the number of blocks fetched. Raises what made it fail (`libdat.TimeoutError`
    /// when blocks stopped arriving for the drive's timeout, `libdat.CancelledError` after
    /// `cancel()`).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> Result<u64> {
        self.state.check()?;
        let t = runtime::timeout_arg(timeout)?;
        self.completion.wait(py, t, "the download")?;
        Ok(self.fetched.load(Ordering::Acquire))
    }

    /// True once the download finished (or failed).
    #[getter]
    fn done(&self) -> bool {
        self.completion.outcome().is_some()
    }

    /// `(blocks done, blocks total)`.
    #[getter]
    fn progress(&self) -> (u64, u64) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn __await__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::await_(&slf.getattr("_register")?)
    }

    /// Calls `done(blocks fetched, error)` when the download ends (the asyncio bridge).
    fn _register(&self, done: Py<PyAny>) {
        let fetched = self.fetched.clone();
        let value: completion::ValueFn = Arc::new(move |py| {
            fetched
                .load(Ordering::Acquire)
                .into_pyobject(py)
                .map(|v| v.into_any().unbind())
                .unwrap_or_else(|_| py.None())
        });
        self.completion.on_done_bridge(done, value);
    }

    fn __repr__(&self) -> String {
        let (d, t) = self.progress();
        format!("<libdat.Download {d}/{t} blocks done={}>", self.done())
    }
}

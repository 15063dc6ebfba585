//! `libdat.Log` (a Hypercore) and `libdat.Range` (a prioritized range of it).

use std::sync::{Arc, Mutex};

use dat_core::replication::Prioritized;
use dat_core::scheduler::{Order, Prioritize};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyTuple};

use crate::completion::{self, Completion};
use crate::errors::{Result, invalid};
use crate::events::{Events, Filter, Source, Subscription};
use crate::runtime;
use crate::store::{Slot, StoreState};

/// A 32-byte key from `bytes` or a 64-character hex string.
pub fn key_arg(key: &Bound<'_, PyAny>) -> Result<[u8; 32]> {
    let bytes: Vec<u8> = if let Ok(s) = key.extract::<String>() {
        hex_decode(&s)
            .ok_or_else(|| invalid(format!("a key is 32 bytes or 64 hex digits, not {s:?}")))?
    } else {
        bytes_arg(key)?
    };
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| invalid(format!("a key is 32 bytes, not {}", bytes.len())))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The bytes of a `bytes`, `bytearray` or other buffer (`memoryview`, ...); not a `str`.
pub fn bytes_arg(data: &Bound<'_, PyAny>) -> Result<Vec<u8>> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = data.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if data.is_instance_of::<pyo3::types::PyString>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "expected bytes, not str (encode it first)",
        )
        .into());
    }
    let b = data.py().get_type::<PyBytes>().call1((data,))?;
    Ok(b.cast::<PyBytes>()
        .map_err(PyErr::from)?
        .as_bytes()
        .to_vec())
}

/// A signed append-only log (a Hypercore 11 core), from `store.core()`.
///
/// `len(log)` is its length in blocks. Reads are verified against the log's merkle tree.
#[pyclass(frozen, module = "libdat", name = "Log")]
pub struct Log {
    state: Arc<StoreState>,
    log: Slot<dat_core::Log>,
}

impl Log {
    pub fn new(state: Arc<StoreState>, log: dat_core::Log) -> Log {
        let log = state.slot(log);
        Log { state, log }
    }

    /// The core log, while the store is open.
    fn log(&self) -> Result<dat_core::Log> {
        self.state.check()?;
        self.log.get()
    }
}

#[pymethods]
impl Log {
    /// Appends one block (`bytes`) or a batch (a list of `bytes`, under one signature). Returns
    /// the index of the (first) block written.
    fn append(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<u64> {
        let log = self.log()?;
        let blocks: Vec<Vec<u8>> =
            if data.is_instance_of::<PyList>() || data.is_instance_of::<PyTuple>() {
                data.try_iter()?
                    .map(|b| bytes_arg(&b?))
                    .collect::<Result<_>>()?
            } else {
                vec![bytes_arg(data)?]
            };
        let n = blocks.len() as u64;
        let (length, _) = py.detach(move || log.append_batch(&blocks))?;
        Ok(length - n)
    }

    /// Block `index`. A block that is not here (on a log this side does not write) is fetched
    /// from peers, waiting at most `timeout` seconds (`None`: no limit; `0`: not at all, raising
    /// `NotAvailable`); raises `libdat.TimeoutError` when no peer delivered it in time.
    #[pyo3(signature = (index, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        index: u64,
        timeout: Option<f64>,
    ) -> Result<Bound<'py, PyBytes>> {
        let log = self.log()?;
        let t = runtime::timeout_arg(timeout)?;
        let block = py.detach(move || {
            if t.is_some_and(|t| t.is_zero()) {
                log.get_local(index)
            } else {
                log.get_wait(index, t)
            }
        })?;
        Ok(PyBytes::new(py, &block))
    }

    /// `get` for asyncio: `await log.get_async(i, timeout=5.0)`.
    #[pyo3(signature = (index, timeout=None))]
    fn get_async<'py>(
        slf: &Bound<'py, Self>,
        index: u64,
        timeout: Option<f64>,
    ) -> Result<Bound<'py, PyAny>> {
        let log = slf.get().log()?;
        let t = runtime::timeout_arg(timeout)?;
        let register = pyo3::types::PyCFunction::new_closure(
            slf.py(),
            None,
            None,
            move |args: &Bound<'_, PyTuple>, _kw| -> PyResult<()> {
                let done: Py<PyAny> = args.get_item(0)?.unbind();
                let log = log.clone();
                crate::aio::spawn_blocking(done, move || {
                    let block = if t.is_some_and(|t| t.is_zero()) {
                        log.get_local(index)
                    } else {
                        log.get_wait(index, t)
                    }?;
                    Ok(Bytes(block))
                })?;
                Ok(())
            },
        )?;
        Ok(crate::aio::bridge(register.as_any())?)
    }

    /// Waits until the log has at least `length` blocks (verified from a peer), for at most
    /// `timeout` seconds (`None`: no limit); returns the length reached.
    #[pyo3(signature = (length, timeout=None))]
    fn wait_length(&self, py: Python<'_>, length: u64, timeout: Option<f64>) -> Result<u64> {
        let log = self.log()?;
        let t = runtime::timeout_arg(timeout)?;
        Ok(py.detach(move || log.wait_length(length, t)))
    }

    /// True if block `index` is stored here.
    fn has(&self, index: u64) -> Result<bool> {
        Ok(self.log()?.has(index)?)
    }

    /// `(block index, offset in that block)` of byte `byte_offset` of the log.
    fn seek(&self, py: Python<'_>, byte_offset: u64) -> Result<(u64, u64)> {
        let log = self.log()?;
        Ok(py.detach(move || log.seek(byte_offset))?)
    }

    /// The byte offset at which block `index` starts.
    fn byte_offset(&self, index: u64) -> Result<u64> {
        Ok(self.log()?.byte_offset(index)?)
    }

    /// Truncates the log to `length` blocks (a new fork).
    fn truncate(&self, py: Python<'_>, length: u64) -> Result<()> {
        let log = self.log()?;
        Ok(py.detach(move || log.truncate(length))?)
    }

    /// Drops the local copies of blocks `start..end` (the tree stays); returns how many were
    /// dropped.
    fn clear(&self, py: Python<'_>, start: u64, end: u64) -> Result<u64> {
        let log = self.log()?;
        Ok(py.detach(move || log.clear(start, end))?)
    }

    /// The merkle tree hash at `length` (the current length if `None`).
    #[pyo3(signature = (length=None))]
    fn tree_hash<'py>(&self, py: Python<'py>, length: Option<u64>) -> Result<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.log()?.tree_hash(length)?))
    }

    /// Fetches blocks `start..end` (`end=None`: the live log from `start` on, never complete)
    /// from peers, at `priority` 0-7 (7 most urgent), in random order unless `linear` or
    /// `bisect`; `hotswap` allows duplicate requests to faster peers. Returns a `Range`:
    /// `wait()`, `await`, `done`; cancelling it (or dropping it, or leaving its `with` block)
    /// withdraws the range. `callback(error)` is called once when the range completes (`error`
    /// is `None`) or is cancelled first.
    #[pyo3(signature = (start=0, end=None, *, priority=0, linear=false, bisect=false, hotswap=false, callback=None))]
    #[allow(clippy::too_many_arguments)]
    fn prioritize(
        &self,
        py: Python<'_>,
        start: u64,
        end: Option<u64>,
        priority: u8,
        linear: bool,
        bisect: bool,
        hotswap: bool,
        callback: Option<Py<PyAny>>,
    ) -> Result<Range> {
        let log = self.log()?;
        let order = match (linear, bisect) {
            (true, true) => return Err(invalid("a range is linear or bisect, not both")),
            (true, false) => Order::Linear,
            (false, true) => Order::Bisect,
            (false, false) => Order::Random,
        };
        let spec = Prioritize {
            start,
            end,
            priority,
            order,
            hotswap,
        };
        let completion = Completion::new();
        if let Some(cb) = callback {
            completion.on_done(cb, completion::none());
        }
        let c = completion.clone();
        let handle = py.detach(move || {
            let handle = log.prioritize(spec);
            handle.on_done(move |r| c.complete(r, completion::none()));
            handle
        });
        Ok(Range {
            state: self.state.clone(),
            handle: Mutex::new(Some(handle)),
            completion,
            start,
            end,
        })
    }

    /// Withdraws `range` (the same as `range.cancel()`).
    fn unprioritize(&self, py: Python<'_>, range: &Range) {
        range.cancel(py);
    }

    /// Calls `callback(event)` for each event named `event` of this log ("append",
    /// "download", "truncate", "clear"; "*" for all), on a thread of the subscription's own.
    fn on(&self, event: String, callback: Py<PyAny>) -> Result<Subscription> {
        let log = self.log()?;
        let names = if event == "*" { vec![] } else { vec![event] };
        let source = Source::Log(log.discovery_key(), log.subscribe());
        Subscription::start(&self.state, source, Filter::new(names)?, callback)
    }

    /// This log's events as an iterator (only those named in `types`, if any).
    #[pyo3(signature = (*types))]
    fn events(&self, types: Vec<String>) -> Result<Events> {
        let log = self.log()?;
        let source = Source::Log(log.discovery_key(), log.subscribe());
        Ok(Events::new(self.state.clone(), source, Filter::new(types)?))
    }

    fn __len__(&self) -> Result<usize> {
        Ok(self.log()?.length() as usize)
    }

    /// The number of blocks.
    #[getter]
    fn length(&self) -> Result<u64> {
        Ok(self.log()?.length())
    }

    /// The number of bytes in all blocks.
    #[getter]
    fn byte_length(&self) -> Result<u64> {
        Ok(self.log()?.byte_length())
    }

    /// The length of the prefix of blocks all stored here.
    #[getter]
    fn contiguous_length(&self) -> Result<u64> {
        Ok(self.log()?.contiguous_length())
    }

    /// The log's public key (32 bytes).
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.log()?.key()))
    }

    /// The key peers find the log by (32 bytes; the key itself never goes on the wire).
    #[getter]
    fn discovery_key<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.log()?.discovery_key()))
    }

    /// The fork id (grows with each truncation).
    #[getter]
    fn fork(&self) -> Result<u64> {
        Ok(self.log()?.fork())
    }

    /// True if this side can append (it holds the secret key).
    #[getter]
    fn writable(&self) -> Result<bool> {
        Ok(self.log()?.writable())
    }

    fn __repr__(&self) -> String {
        match self.log.get() {
            Ok(log) => format!(
                "<libdat.Log {} length={}>",
                hex(&log.key()[..8]),
                log.length()
            ),
            Err(_) => "<libdat.Log closed>".into(),
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A block, returned to Python as `bytes`.
pub struct Bytes(pub Vec<u8>);

impl<'py> IntoPyObject<'py> for Bytes {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> std::result::Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

// ---------------------------------------------------------------------------------- range

/// A prioritized range of a log (`log.prioritize()`): wait for it with `wait(timeout)` or
/// `await range`; `done` tells whether every block is here. `cancel()` (also `close()`, the end
/// of a `with` block, or dropping the object) withdraws it.
#[pyclass(frozen, module = "libdat", name = "Range")]
pub struct Range {
    state: Arc<StoreState>,
    handle: Mutex<Option<Prioritized>>,
    completion: Arc<Completion>,
    #[pyo3(get)]
    start: u64,
    #[pyo3(get)]
    end: Option<u64>,
}

#[pymethods]
impl Range {
    /// Waits until every block of the range is here, for at most `timeout` seconds (`None`: no
    /// limit). Raises `libdat.TimeoutError` when time runs out, `CancelledError` if the range
    /// was cancelled.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> Result<()> {
        self.state.check()?;
        let t = runtime::timeout_arg(timeout)?;
        self.completion.wait(py, t, "the range")
    }

    /// True once every block of the range is here.
    #[getter]
    fn done(&self) -> bool {
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        match handle.as_ref() {
            Some(h) => h.is_done(),
            None => matches!(self.completion.outcome(), Some(Ok(()))),
        }
    }

    /// True once the range was cancelled (or its store closed).
    #[getter]
    fn cancelled(&self) -> bool {
        self.handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Withdraws the range: requests no other range wants are cancelled, waiters get
    /// `CancelledError` (unless it completed). Cancelling twice does nothing.
    fn cancel(&self, py: Python<'_>) {
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            py.detach(move || h.unprioritize());
        }
    }

    /// The same as `cancel()`.
    fn close(&self, py: Python<'_>) {
        self.cancel(py);
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) {
        self.cancel(py);
    }

    fn __await__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::await_(&slf.getattr("_register")?)
    }

    /// Calls `done(None, error)` when the range ends (the asyncio bridge).
    fn _register(&self, done: Py<PyAny>) {
        self.completion.on_done_bridge(done, completion::none());
    }

    fn __repr__(&self) -> String {
        let end = self.end.map_or("live".to_string(), |e| e.to_string());
        format!("<libdat.Range {}..{end} done={}>", self.start, self.done())
    }
}

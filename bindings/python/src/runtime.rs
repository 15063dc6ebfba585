//! The tokio runtime behind replication and events, and the thread that runs Python callbacks.
//!
//! One multi-thread runtime for the process, built on first use and never shut down (several
//! stores in one process replicate with each other over it). Its workers run only libdat's own
//! tasks and never touch Python. Callbacks into Python run one at a time on the "libdat-callback"
//! thread (completions of ranges and downloads, asyncio wake-ups) or on a subscription's own thread
//! (events), holding the GIL; an exception a callback raises goes to `sys.unraisablehook`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use tokio::runtime::{Builder, Runtime};

use crate::errors::{Error, Result};

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The process's libdat runtime.
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
            Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("libdat-worker")
                .enable_all()
                .build()
                .map_err(|e| format!("could not start libdat's runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| Error::Core(dat_core::Error::Io(std::io::Error::other(e.clone()))))
}

/// Runs `fut` on the runtime with the GIL released, and waits for it.
pub fn block_on<F>(py: Python<'_>, fut: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    Ok(py.detach(|| rt.block_on(fut)))
}

/// How long a blocking wait sleeps before it checks for signals (Ctrl-C) and closed handles.
pub const SLICE: Duration = Duration::from_millis(100);

/// `timeout` in seconds as a duration (`None`: no limit); negative or NaN is an error.
pub fn timeout_arg(timeout: Option<f64>) -> Result<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(crate::errors::invalid(format!(
            "timeout must be a number of seconds >= 0 or None, not {t}"
        ))),
        Some(t) => Ok(Some(
            Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX),
        )),
    }
}

/// The deadline `timeout` from now (`None`: never).
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The next slice of a wait that ends at `deadline`; `None` once it has passed.
pub fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

// ------------------------------------------------------------------------------ callbacks

static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// True once the interpreter is exiting: no callback runs any more.
pub fn shutting_down() -> bool {
    SHUTDOWN.load(Ordering::Acquire)
}

/// Called at interpreter exit (`atexit`): callbacks and subscriptions stop calling into Python.
#[pyfunction]
pub fn _shutdown() {
    SHUTDOWN.store(true, Ordering::Release);
}

type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

static QUEUE: Mutex<Option<Sender<Job>>> = Mutex::new(None);

/// Runs `job` on the callback thread, holding the GIL, after the jobs queued before it.
pub fn dispatch(job: impl for<'py> FnOnce(Python<'py>) + Send + 'static) {
    let job: Job = Box::new(job);
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let job = match queue.as_ref() {
        Some(q) => match q.send(job) {
            Ok(()) => return,
            Err(e) => e.0,
        },
        None => job,
    };
    let (tx, rx) = channel::<Job>();
    let started = std::thread::Builder::new()
        .name("libdat-callback".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                if !shutting_down() {
                    let _ = Python::try_attach(job);
                }
            }
        });
    if started.is_ok() && tx.send(job).is_ok() {
        *queue = Some(tx);
    }
}

/// Calls `callback(*args)`; an exception it raises is reported through `sys.unraisablehook`
/// (printed with its traceback by default), never lost and never propagated into libdat.
pub fn call_reporting<'py>(
    py: Python<'py>,
    callback: &Py<PyAny>,
    args: impl pyo3::call::PyCallArgs<'py>,
) {
    let callback = callback.bind(py);
    if let Err(e) = callback.call1(args) {
        e.write_unraisable(py, Some(callback));
    }
}

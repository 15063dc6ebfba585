//! The tokio runtime behind replication and events.
//!
//! One multi-thread runtime for the whole process, built on first use (the first listen, connect
//! or subscription) and never shut down: several stores in one process replicate with each other
//! over it, and handles may be freed in any order. Its worker threads ("dat-worker") only run
//! libdat's own tasks; callbacks into C run on other library threads (see `callbacks`), so a
//! callback that blocks or calls back into libdat never stalls replication.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::status::Failure;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process's libdat runtime.
pub(crate) fn runtime() -> Result<&'static Runtime, Failure> {
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
            Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("dat-worker")
                .enable_all()
                .build()
                .map_err(|e| format!("could not start libdat's runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| Failure::new(crate::status::dat_status::DAT_IO, e.clone()))
}

/// Runs `fut` to completion on the calling (non-runtime) thread.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output, Failure> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Failure::invalid(
            "this call blocks and cannot be made from inside libdat's runtime",
        ));
    }
    Ok(runtime()?.block_on(fut))
}

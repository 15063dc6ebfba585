//! `dat_range`: a prioritized range of a log, its completion callback, and waiting on it.

use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;

use dat_core::Log;
use dat_core::replication::Prioritized;
use dat_core::scheduler::{Order, Prioritize};

use crate::handle::{Castable, OwnershipBox, UserData, box_handle, out_ref, take_box, try_ref};
use crate::log::{dat_log, log_ref, timeout};
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};

/// What to fetch with `dat_log_prioritize`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct dat_range_options {
    /// First block.
    pub start: u64,
    /// One past the last block; `UINT64_MAX` follows the live log (the range never completes).
    pub end: u64,
    /// 0–7, 7 the most urgent (`dat_log_get` waits at 7).
    pub priority: u8,
    /// Fetch in order from the first missing block (a sliding window), e.g. for streaming.
    pub linear: bool,
    /// Fetch the middle first, then the middles of the halves, ... (for a binary search).
    /// Neither `linear` nor `bisect`: random order (the best for spreading load over peers).
    pub bisect: bool,
    /// Also ask faster peers for blocks a slow peer holds up, before its request times out.
    pub hotswap: bool,
}

/// Called once when a range ends: `userdata` first, then `DAT_OK` (every block of the range is
/// local) or `DAT_CANCELLED` (the range was freed first).
pub type dat_done_cb = Option<unsafe extern "C" fn(userdata: *mut c_void, status: dat_status)>;

/// A prioritized range. Thread-safe, except that `dat_range_free` must be its last use.
pub struct dat_range {
    _private: [u8; 0],
}

impl Castable for dat_range {
    type Ownership = OwnershipBox;
    type RustType = RangeHandle;
}

/// What a `dat_range` points at.
pub(crate) struct RangeHandle {
    range: Prioritized,
    /// Keeps the log (and so its scheduler) alive while the range is.
    _log: Log,
    once: Arc<Once>,
}

/// The caller's callback, called exactly once, and who is calling it now.
struct Once {
    slot: Mutex<Slot>,
    finished: Condvar,
}

struct Slot {
    callback: Option<(unsafe extern "C" fn(*mut c_void, dat_status), UserData)>,
    /// The thread running the callback at the moment.
    running: Option<ThreadId>,
}

impl Once {
    /// Calls the callback with `status` unless it already ran.
    fn fire(&self, status: dat_status) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let Some((cb, userdata)) = slot.callback.take() else {
            return;
        };
        slot.running = Some(std::thread::current().id());
        drop(slot);
        // SAFETY: `cb` is the caller's function pointer, called with the userdata they gave and a
        // valid status, once (the slot is empty now), as the header documents.
        unsafe { cb(userdata.0, status) };
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.running = None;
        drop(slot);
        self.finished.notify_all();
    }

    /// Waits until no other thread is running the callback.
    fn wait_idle(&self) {
        let me = std::thread::current().id();
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        while slot.running.is_some_and(|t| t != me) {
            slot = self.finished.wait(slot).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Fetches blocks `opts->start .. opts->end` of `log` from its peers with the given priority,
/// order and hotswap setting, and writes a range handle to `*out`. A sparse log fetches only what
/// is prioritized like this (or read with `dat_log_get`). Prioritizing before the log is
/// replicated is fine: the range waits for peers.
///
/// `cb` (may be NULL) is called exactly once with `userdata`: with `DAT_OK` on libdat's callback
/// thread ("dat-callback", one for the process, running callbacks one at a time) when every block
/// of the range is local (at once if they already are), or with `DAT_CANCELLED` on the thread
/// calling `dat_range_free` if the range is freed first. When `dat_range_free` returns, the
/// callback has finished and will not run again, so `userdata` may be released then.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_prioritize(
    log: *const dat_log,
    opts: *const dat_range_options,
    cb: dat_done_cb,
    userdata: *mut c_void,
    out: *mut *mut dat_range,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        // SAFETY: `opts` is NULL or points at a dat_range_options (header contract).
        let opts = *unsafe { opts.as_ref() }.ok_or_else(|| Failure::null("opts"))?;
        let out = out_ref(out, "out")?;
        let spec = spec(&opts)?;
        let range = log.prioritize(spec);
        let once = Arc::new(Once {
            slot: Mutex::new(Slot {
                callback: cb.map(|cb| (cb, UserData(userdata))),
                running: None,
            }),
            finished: Condvar::new(),
        });
        if cb.is_some() {
            let fire = once.clone();
            range.on_done(move |result| {
                if result.is_ok() {
                    crate::callbacks::dispatch(Box::new(move || fire.fire(dat_status::DAT_OK)));
                }
            });
        }
        out.write(box_handle(RangeHandle {
            range,
            _log: log.clone(),
            once,
        }));
        Ok(())
    })
}

fn spec(o: &dat_range_options) -> Result<Prioritize, Failure> {
    if o.priority > 7 {
        return Err(Failure::invalid(format!(
            "priority {} is above 7",
            o.priority
        )));
    }
    if o.linear && o.bisect {
        return Err(Failure::invalid("a range is linear or bisect, not both"));
    }
    if o.end != u64::MAX && o.end < o.start {
        return Err(Failure::invalid(format!(
            "the range ends ({}) before it starts ({})",
            o.end, o.start
        )));
    }
    let base = if o.end == u64::MAX {
        Prioritize::live(o.start)
    } else {
        Prioritize::range(o.start, o.end)
    };
    let order = match (o.linear, o.bisect) {
        (true, _) => Order::Linear,
        (_, true) => Order::Bisect,
        _ => Order::Random,
    };
    Ok(base.priority(o.priority).order(order).hotswap(o.hotswap))
}

fn range_ref<'a>(range: *const dat_range) -> Result<&'a RangeHandle, Failure> {
    // SAFETY: `range` is NULL or a live range handle for the duration of the call.
    unsafe { try_ref(range, "range") }
}

/// Waits until every block of the range is local (`DAT_OK`), for at most `timeout_ms`
/// (negative: no limit; `DAT_TIMEOUT` after it). A live range never completes. Blocks the
/// calling thread.
#[unsafe(no_mangle)]
pub extern "C" fn dat_range_wait(range: *const dat_range, timeout_ms: i64) -> dat_status {
    catch_status(|| {
        let range = range_ref(range)?;
        range.range.wait(timeout(timeout_ms))?;
        Ok(())
    })
}

/// True once every block of the range is local; false for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn dat_range_is_done(range: *const dat_range) -> bool {
    catch_or(false, || range_ref(range).is_ok_and(|r| r.range.is_done()))
}

/// Withdraws the range (blocks no other range wants are no longer fetched) and frees the handle.
/// If the callback has not run yet it runs now, on this thread, with `DAT_OK` if the range is
/// complete or `DAT_CANCELLED` if not; if it is running on the callback thread, this waits for it
/// to return (unless called from inside that callback). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_range_free(range: *mut dat_range) {
    catch_or((), || {
        // SAFETY: `range` is NULL or a live range handle, freed once (header contract).
        let Some(handle) = (unsafe { take_box(range) }) else {
            return;
        };
        let status = if handle.range.is_done() {
            dat_status::DAT_OK
        } else {
            dat_status::DAT_CANCELLED
        };
        handle.once.fire(status);
        handle.once.wait_idle();
        handle.range.unprioritize();
    })
}

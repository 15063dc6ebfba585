//! The panic boundary. Every exported function runs its body inside one of these plain functions
//! (closures, so rustfmt keeps formatting the bodies): a panic becomes `DAT_PANIC` (or the given
//! fallback value) instead of unwinding into C, which would abort the process.
//!
//! A test (`tests/exports_use_panic_boundary.rs`) checks that every `extern "C" fn` in `src/`
//! starts with one of them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{Failure, dat_status, set_last_error};

/// Runs a fallible body: `Ok` → `DAT_OK`; `Err` → its status, with its detail recorded for
/// `dat_last_error` (except `DAT_END`, which is not a failure); a panic → `DAT_PANIC`, with the
/// panic message recorded.
pub(crate) fn catch_status(body: impl FnOnce() -> Result<(), Failure>) -> dat_status {
    // AssertUnwindSafe: after a panic the handles involved are reported as possibly inconsistent
    // (DAT_PANIC's documentation); the locks inside dat-core recover from poisoning.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => dat_status::DAT_OK,
        Ok(Err(f)) => {
            // the end of an iterator is not a failure: the last failure's detail stays
            if f.status != dat_status::DAT_END {
                set_last_error(f.detail);
            }
            f.status
        }
        Err(payload) => {
            set_last_error(format!("libdat panicked: {}", panic_message(&*payload)));
            dat_status::DAT_PANIC
        }
    }
}

/// Runs an infallible body (a free function, a getter of a flag): a panic gives `fallback`.
pub(crate) fn catch_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(format!("libdat panicked: {}", panic_message(&*payload)));
            fallback
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_dat_panic_with_its_message() {
        let s = catch_status(|| panic!("boom {}", 42));
        assert_eq!(s, dat_status::DAT_PANIC);
        let mut buf = [0 as std::ffi::c_char; 64];
        let mut n = 0;
        crate::status::dat_last_error(buf.as_mut_ptr(), buf.len(), &mut n);
        let got: Vec<u8> = buf[..n].iter().map(|c| *c as u8).collect();
        assert_eq!(got, b"libdat panicked: boom 42");
        assert_eq!(catch_or(7, || panic!("x")), 7);
    }
}

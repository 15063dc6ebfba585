//! # dat-ffi: libdat's C ABI
//!
//! `libdat.so` / `libdat.a` and `include/dat.h` (generated from this crate by cbindgen 0.29.4 and
//! committed). Every function is `dat_<object>_<verb>`, takes its handle first, then its inputs,
//! then its out-parameters, and returns a [`dat_status`](status::dat_status). The conventions
//! (ownership, threads, buffers) are written in the header's preamble (`ffi/cbindgen.toml`) and in
//! the README's "C API" section.
//!
//! Modules, each one object of the API:
//! - [`status`]: `dat_status`, `dat_status_message`, `dat_last_error`;
//! - [`panic`]: the panic boundary every export runs inside;
//! - [`handle`]: typed `Box`/`Arc` ownership of handles and the argument checks;
//! - [`bytes`]: `dat_bytes`, data the library allocates for the caller;
//! - [`store`], [`log`], [`prioritize`], [`replication`], [`events`]: the API of logs;
//! - [`drive`], [`entry`], [`list`], [`diff`], [`history`], [`cursor`] (byte cursor and read
//!   stream), [`changes`]: the API of drives;
//! - [`runtime`], [`callbacks`]: the library's threads.

// The C names (`dat_log`, `DAT_OK`) are the API; cbindgen copies them into the header as they are.
#![allow(non_camel_case_types)]
// The exports take raw pointers from C and are declared safe, as rustls-ffi's are: the contract
// (NULL or a live handle of the right type, buffers of the stated length) is the C caller's and
// the header states it; each dereference is an `unsafe` block with its SAFETY comment.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod bytes;
pub(crate) mod callbacks;
pub mod changes;
pub mod cursor;
pub mod diff;
pub mod drive;
pub mod entry;
pub mod events;
pub(crate) mod handle;
pub mod history;
pub mod list;
pub mod log;
pub(crate) mod panic;
pub mod prioritize;
pub mod replication;
pub(crate) mod runtime;
pub mod status;
pub mod store;

use std::ffi::c_char;

use crate::panic::catch_or;

/// NUL-terminated `CARGO_PKG_VERSION`.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// libdat's version, e.g. "0.1.0": a static NUL-terminated string (never freed). Matches the
/// `DAT_VERSION_*` macros of the header the program was compiled with when both come from the
/// same release.
#[unsafe(no_mangle)]
pub extern "C" fn dat_version() -> *const c_char {
    catch_or(std::ptr::null(), || VERSION.as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_define(header: &str, name: &str) -> u64 {
        let prefix = format!("#define {name} ");
        let line = header
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("include/dat.h has no {name}"));
        line[prefix.len()..].trim().parse().unwrap()
    }

    #[test]
    fn handles_documented_as_thread_safe_are_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        fn movable<T: Send>() {}
        shared::<store::StoreHandle>();
        shared::<dat_core::Log>();
        shared::<prioritize::RangeHandle>();
        shared::<replication::ServerHandle>();
        shared::<std::sync::Arc<replication::Conn>>();
        shared::<events::Subscription>();
        movable::<replication::Pump>();
        shared::<dat_core::drive::Drive>();
        shared::<dat_core::drive::Entry>();
        shared::<dat_core::drive::Change>();
        movable::<dat_core::drive::Cursor>();
        movable::<cursor::StreamHandle>();
        movable::<changes::ChangesHandle>();
        movable::<std::vec::IntoIter<dat_core::drive::DriveDiff>>();
        movable::<std::vec::IntoIter<dat_core::drive::FileVersion>>();
    }

    #[test]
    fn version_macros_and_dat_version_match_cargo_toml() {
        // SAFETY: dat_version returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(dat_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let header = include_str!("../../include/dat.h");
        let major: u64 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
        let minor: u64 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
        let patch: u64 = env!("CARGO_PKG_VERSION_PATCH").parse().unwrap();
        assert_eq!(header_define(header, "DAT_VERSION_MAJOR"), major);
        assert_eq!(header_define(header, "DAT_VERSION_MINOR"), minor);
        assert_eq!(header_define(header, "DAT_VERSION_PATCH"), patch);
        assert_eq!(
            header_define(header, "DAT_VERSION_NUMBER"),
            major * 1_000_000 + minor * 1_000 + patch
        );
    }
}

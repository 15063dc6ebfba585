//! `dat_store`: a directory of logs.

use dat_core::{Durability, Store, StoreOptions};
use std::ffi::c_char;

use crate::handle::{Castable, OwnershipArc, arc_handle, free_arc, out_ref, str_arg, try_ref};
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};

/// A store: one directory holding many logs. Thread-safe. Logs, ranges, servers and
/// connections made from it keep it open after `dat_store_free`; it closes when the last is
/// freed.
pub struct dat_store {
    _private: [u8; 0],
}

impl Castable for dat_store {
    type Ownership = OwnershipArc;
    type RustType = StoreHandle;
}

/// What a `dat_store` points at.
pub(crate) struct StoreHandle {
    pub(crate) store: Store,
}

/// How durable each commit of a store is (`dat_store_options.durability`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum dat_durability {
    /// fsync data and meta pages on every commit: a commit survives power loss (the default).
    DAT_DURABILITY_FULL = 0,
    /// fsync data but not the meta page: survives process crashes; a power loss may undo the
    /// last commit but never corrupts the store.
    DAT_DURABILITY_NO_META_SYNC = 1,
    /// No fsync: survives process crashes, not power loss: that may lose recent commits and, on a
    /// file system that does not keep the order of writes, leave the store unreadable (the
    /// JavaScript reference's guarantee: it does not fsync either).
    DAT_DURABILITY_NO_SYNC = 2,
}

/// Options of `dat_store_open_with`. A zeroed struct means the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct dat_store_options {
    /// A `dat_durability` value.
    pub durability: u32,
    /// The largest size the store may grow to, in bytes: address space reserved, not disk used.
    /// 0 means the default (1 TiB on 64-bit targets, 1 GiB on 32-bit ones).
    pub map_size: u64,
}

/// Opens (or creates) the store in directory `path` (created if missing) with the default
/// options, and writes its handle to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_store_open(path: *const c_char, out: *mut *const dat_store) -> dat_status {
    catch_status(|| open(path, None, out))
}

/// Opens (or creates) the store in directory `path` with `options` (NULL: the defaults), and
/// writes its handle to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_store_open_with(
    path: *const c_char,
    options: *const dat_store_options,
    out: *mut *const dat_store,
) -> dat_status {
    catch_status(|| {
        // SAFETY: a non-NULL `options` points at a dat_store_options (header contract).
        let options = unsafe { options.as_ref() }.copied();
        open(path, options, out)
    })
}

fn open(
    path: *const c_char,
    options: Option<dat_store_options>,
    out: *mut *const dat_store,
) -> Result<(), Failure> {
    // SAFETY: `path` is NULL or a NUL-terminated string (header contract).
    let path = unsafe { str_arg(path, "path") }?;
    let out = out_ref(out, "out")?;
    let mut opts = StoreOptions::default();
    if let Some(o) = options {
        opts.durability = match o.durability {
            0 => Durability::Full,
            1 => Durability::NoMetaSync,
            2 => Durability::NoSync,
            d => return Err(Failure::invalid(format!("unknown durability {d}"))),
        };
        if o.map_size != 0 {
            opts.map_size = usize::try_from(o.map_size)
                .map_err(|_| Failure::invalid("map_size does not fit this platform"))?;
        }
    }
    let store = Store::open_with(path, opts)?;
    out.write(arc_handle(StoreHandle { store }));
    Ok(())
}

/// Releases the caller's handle to a store. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_store_free(store: *const dat_store) {
    catch_or((), || {
        // SAFETY: `store` is NULL or a live store handle, freed once (header contract).
        unsafe { free_arc(store) }
    })
}

/// Borrows the handle behind `store`.
pub(crate) fn store_ref<'a>(store: *const dat_store) -> Result<&'a StoreHandle, Failure> {
    // SAFETY: `store` is NULL or a live store handle for the duration of the call (contract of
    // every function taking a `const dat_store *`).
    unsafe { try_ref(store, "store") }
}

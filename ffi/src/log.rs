//! `dat_log`: a signed append-only log (a Hypercore).

use std::ffi::c_char;
use std::time::Duration;

use dat_core::{Log, LogOptions};

use crate::bytes::dat_bytes;
use crate::handle::{
    Castable, OwnershipBox, box_handle, bytes_arg, free_box, key_arg, out_ref, str_arg, try_ref,
    write_bytes,
};
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};
use crate::store::{dat_store, store_ref};

/// A handle to a log. Thread-safe: any thread may call any function on it, at the same time.
/// It keeps its store open.
pub struct dat_log {
    _private: [u8; 0],
}

impl Castable for dat_log {
    type Ownership = OwnershipBox;
    type RustType = Log;
}

/// Borrows the log behind `log`.
pub(crate) fn log_ref<'a>(log: *const dat_log) -> Result<&'a Log, Failure> {
    // SAFETY: `log` is NULL or a live log handle for the duration of the call (contract of every
    // function taking a `const dat_log *`).
    unsafe { try_ref(log, "log") }
}

/// A timeout in milliseconds: negative waits forever.
pub(crate) fn timeout(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// Creates a new writable log with a fresh key pair in `store`, and writes its handle to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_create(store: *const dat_store, out: *mut *mut dat_log) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        let out = out_ref(out, "out")?;
        let log = store.store.create_log(LogOptions::default())?;
        out.write(box_handle(log));
        Ok(())
    })
}

/// Opens the writable log named `name` (a NUL-terminated UTF-8 string) in `store`, creating it
/// on first use. Its key derives from the store's primary key and the name exactly as corestore 7
/// derives it.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_open_named(
    store: *const dat_store,
    name: *const c_char,
    out: *mut *mut dat_log,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        // SAFETY: `name` is NULL or a NUL-terminated string (header contract).
        let name = unsafe { str_arg(name, "name") }?;
        let out = out_ref(out, "out")?;
        let log = store.store.named_log(name)?;
        out.write(box_handle(log));
        Ok(())
    })
}

/// Opens the log with key `key` (`key_len` must be 32): the store's own copy if it has one, or a
/// new empty one that fills from peers, verified block by block. `sparse`: fetch only what is
/// prioritized or read (`dat_log_prioritize`, `dat_log_get` with a timeout); not sparse: download
/// the whole log and follow its appends while it is replicated. The setting lasts while the log
/// is open in this process. A log opened while the store has connections joins them.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_open_key(
    store: *const dat_store,
    key: *const u8,
    key_len: usize,
    sparse: bool,
    out: *mut *mut dat_log,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        // SAFETY: `key` is NULL or points at `key_len` readable bytes (header contract).
        let key = unsafe { key_arg(key, key_len, "key") }?;
        let out = out_ref(out, "out")?;
        let log = store.store.open_log(&key, None)?;
        // the mode is chosen here; connections keep it
        log.set_sparse(sparse);
        out.write(box_handle(log));
        Ok(())
    })
}

/// Frees a log handle. NULL is ignored. Ranges and subscriptions made from it stay valid.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_free(log: *mut dat_log) {
    catch_or((), || {
        // SAFETY: `log` is NULL or a live log handle, freed once (header contract).
        unsafe { free_box(log) }
    })
}

/// Appends one block of `len` bytes (`data` may be NULL when `len` is 0). When this returns the
/// block is durable (per the store's durability); `*out_length` (may be NULL) gets the new
/// length.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_append(
    log: *const dat_log,
    data: *const u8,
    len: usize,
    out_length: *mut u64,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        // SAFETY: `data` is NULL or points at `len` readable bytes (header contract).
        let data = unsafe { bytes_arg(data, len, "data") }?;
        let (length, _) = log.append(data)?;
        if !out_length.is_null() {
            out_ref(out_length, "out_length")?.write(length);
        }
        Ok(())
    })
}

/// Appends `count` blocks atomically under one signature: block `i` is `datas[i]` of `lens[i]`
/// bytes. `*out_length` (may be NULL) gets the new length.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_append_batch(
    log: *const dat_log,
    datas: *const *const u8,
    lens: *const usize,
    count: usize,
    out_length: *mut u64,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        let mut blocks: Vec<&[u8]> = Vec::with_capacity(count.min(1 << 20));
        if count > 0 {
            if datas.is_null() {
                return Err(Failure::null("datas"));
            }
            if lens.is_null() {
                return Err(Failure::null("lens"));
            }
            for i in 0..count {
                // SAFETY: `datas` and `lens` point at `count` elements each (header contract).
                let (ptr, len) = unsafe { (*datas.add(i), *lens.add(i)) };
                // SAFETY: `datas[i]` is NULL or points at `lens[i]` readable bytes.
                blocks.push(unsafe { bytes_arg(ptr, len, "datas[i]") }?);
            }
        }
        let (length, _) = log.append_batch(&blocks)?;
        if !out_length.is_null() {
            out_ref(out_length, "out_length")?.write(length);
        }
        Ok(())
    })
}

/// Reads block `index`, verified against the log's tree, into `*out` (free it with
/// `dat_bytes_free`). `timeout_ms` 0: local blocks only (`DAT_NOT_AVAILABLE` or
/// `DAT_OUT_OF_BOUNDS` otherwise); above 0: a missing block is fetched from peers at the top
/// priority, waiting at most that long (`DAT_TIMEOUT`); below 0: waits as long as it takes. The
/// wait blocks the calling thread. A writable log never waits.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_get(
    log: *const dat_log,
    index: u64,
    timeout_ms: i64,
    out: *mut dat_bytes,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        let out = out_ref(out, "out")?;
        let block = if timeout_ms == 0 {
            // never waits, even for a drive's log (whose plain reads fetch from peers)
            log.get_local(index)?
        } else {
            log.get_wait(index, timeout(timeout_ms))?
        };
        out.write(dat_bytes::from_vec(block));
        Ok(())
    })
}

/// Writes the number of blocks (the signed length) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_length(log: *const dat_log, out: *mut u64) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        out_ref(out, "out")?.write(log.length());
        Ok(())
    })
}

/// Writes the number of bytes in all blocks to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_byte_length(log: *const dat_log, out: *mut u64) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        out_ref(out, "out")?.write(log.byte_length());
        Ok(())
    })
}

/// Waits until the log has at least `length` blocks (verified from a peer), for at most
/// `timeout_ms` (negative: no limit), and writes the length reached to `*out`. Reaching it is
/// `DAT_OK`; running out of time is `DAT_TIMEOUT`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_wait_length(
    log: *const dat_log,
    length: u64,
    timeout_ms: i64,
    out: *mut u64,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        let out = out_ref(out, "out")?;
        let reached = log.wait_length(length, timeout(timeout_ms));
        if reached < length {
            return Err(Failure::new(
                dat_status::DAT_TIMEOUT,
                format!("the log has {reached} blocks, not {length}, after {timeout_ms} ms"),
            ));
        }
        out.write(reached);
        Ok(())
    })
}

/// Writes the log's 32-byte key into `out` (`len` at least 32).
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_key(log: *const dat_log, out: *mut u8, len: usize) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        // SAFETY: `out` is NULL or points at `len` writable bytes (header contract).
        unsafe { write_bytes(out, len, &log.key()) }
    })
}

/// Writes the log's 32-byte discovery key (what peers find it by; it does not reveal the key)
/// into `out` (`len` at least 32).
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_discovery_key(
    log: *const dat_log,
    out: *mut u8,
    len: usize,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        // SAFETY: `out` is NULL or points at `len` writable bytes (header contract).
        unsafe { write_bytes(out, len, &log.discovery_key()) }
    })
}

/// Writes whether this process can append to the log (it holds the secret key) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_writable(log: *const dat_log, out: *mut bool) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        out_ref(out, "out")?.write(log.writable());
        Ok(())
    })
}

/// Maps byte offset `byte` of the log's contents to the block holding it (`*out_index`) and the
/// offset inside that block (`*out_offset`). Needs the tree nodes on the way, which a sparse
/// reader may not hold yet (`DAT_MISSING_NODE`).
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_seek(
    log: *const dat_log,
    byte: u64,
    out_index: *mut u64,
    out_offset: *mut u64,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        let out_index = out_ref(out_index, "out_index")?;
        let out_offset = out_ref(out_offset, "out_offset")?;
        let (index, offset) = log.seek(byte)?;
        out_index.write(index);
        out_offset.write(offset);
        Ok(())
    })
}

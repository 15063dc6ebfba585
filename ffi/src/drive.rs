//! `dat_drive`: a Hyperdrive 13 versioned filesystem (a metadata log of entries and a content
//! log of file bytes) in a store: create, open (local or remote), write, read, versions.

use std::ffi::{c_char, c_void};

use dat_core::drive::{CancelToken, Drive, DriveOptions, PutOptions};

use crate::bytes::dat_bytes;
use crate::entry::{dat_entry, entry_handle};
use crate::handle::{
    Castable, OwnershipBox, UserData, box_handle, bytes_arg, free_box, key_arg, out_ref, str_arg,
    try_ref, write_bytes,
};
use crate::log::{dat_log, timeout};
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};
use crate::store::{dat_store, store_ref};

/// A drive: a versioned filesystem over two logs of a store. Thread-safe: any thread may call any
/// function on it, at the same time (writes are serialized). It keeps its store open. Paths are
/// normalized as Hyperdrive 13 does (`a/./b` is `/a/b`); one that climbs above the root
/// (`/..`) or names the root where a file is meant gives `DAT_INVALID_ARGUMENT`.
pub struct dat_drive {
    _private: [u8; 0],
}

impl Castable for dat_drive {
    type Ownership = OwnershipBox;
    type RustType = Drive;
}

/// Borrows the drive behind `drive`.
pub(crate) fn drive_ref<'a>(drive: *const dat_drive) -> Result<&'a Drive, Failure> {
    // SAFETY: `drive` is NULL or a live drive handle for the duration of the call (contract of
    // every function taking a `const dat_drive *`).
    unsafe { try_ref(drive, "drive") }
}

/// A NUL-terminated path argument (normalized by the drive).
pub(crate) fn path_arg<'a>(path: *const c_char, name: &str) -> Result<&'a str, Failure> {
    // SAFETY: `path` is NULL or a NUL-terminated string (contract of every path argument).
    unsafe { str_arg(path, name) }
}

/// Creates (or reopens) the store's default drive, writable here: its metadata log is the
/// store's log named "db", as Hyperdrive's default corestore name. Writes its handle to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_create(
    store: *const dat_store,
    out: *mut *mut dat_drive,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        let out = out_ref(out, "out")?;
        let drive = Drive::create(&store.store)?;
        out.write(box_handle(drive));
        Ok(())
    })
}

/// Creates (or reopens) a writable drive of its own named `name` in `store` (corestore's
/// `store.namespace(name)`), so that a store can hold many drives. Writes its handle to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_create_named(
    store: *const dat_store,
    name: *const c_char,
    out: *mut *mut dat_drive,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        // SAFETY: `name` is NULL or a NUL-terminated string (header contract).
        let name = unsafe { str_arg(name, "name") }?;
        let out = out_ref(out, "out")?;
        let drive = Drive::create_named(&store.store, name)?;
        out.write(box_handle(drive));
        Ok(())
    })
}

/// Opens the drive with key `key` (`key_len` must be 32): a drive of this store, or a remote
/// one that fills from the peers the store replicates with (open it after
/// `dat_replicator_connect` or while a server runs: its logs join the connections). For a remote
/// drive this blocks the calling thread until a peer has sent the drive's first signed length,
/// for at most `timeout_ms` (`DAT_TIMEOUT`; negative: no limit). `timeout_ms` also bounds every
/// later read of the drive that waits for blocks from peers.
///
/// `sparse`: fetch only what is read (the entries on a name's lookup path, the bytes read); not
/// sparse: download the whole drive, its metadata first, then its content, and follow it.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_open(
    store: *const dat_store,
    key: *const u8,
    key_len: usize,
    sparse: bool,
    timeout_ms: i64,
    out: *mut *mut dat_drive,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        // SAFETY: `key` is NULL or points at `key_len` readable bytes (header contract).
        let key = unsafe { key_arg(key, key_len, "key") }?;
        let out = out_ref(out, "out")?;
        let opts = DriveOptions {
            sparse,
            timeout: timeout(timeout_ms),
        };
        let drive = Drive::open(&store.store, &key, opts)?;
        out.write(box_handle(drive));
        Ok(())
    })
}

/// Frees a drive handle. NULL is ignored. Entries, cursors, streams and iterators made from it
/// stay valid (each holds what it needs).
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_free(drive: *mut dat_drive) {
    catch_or((), || {
        // SAFETY: `drive` is NULL or a live drive handle, freed once (header contract).
        unsafe { free_box(drive) }
    })
}

/// Writes the drive's 32-byte key (its metadata log's key; what `dat_drive_open` takes) into
/// `out` (`len` at least 32).
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_key(drive: *const dat_drive, out: *mut u8, len: usize) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        // SAFETY: `out` is NULL or points at `len` writable bytes (header contract).
        unsafe { write_bytes(out, len, &drive.key()) }
    })
}

/// Writes the drive's 32-byte discovery key into `out` (`len` at least 32).
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_discovery_key(
    drive: *const dat_drive,
    out: *mut u8,
    len: usize,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        // SAFETY: `out` is NULL or points at `len` writable bytes (header contract).
        unsafe { write_bytes(out, len, &drive.discovery_key()) }
    })
}

/// Writes the drive's version to `*out`: its metadata log's length, 1 for an empty drive; each
/// put, delete or symlink adds 1. A checkout's version is the one it was made at.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_version(drive: *const dat_drive, out: *mut u64) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        out_ref(out, "out")?.write(drive.version());
        Ok(())
    })
}

/// Writes whether this process can write the drive to `*out` (false for a remote drive and for a
/// checkout).
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_writable(drive: *const dat_drive, out: *mut bool) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        out_ref(out, "out")?.write(drive.writable());
        Ok(())
    })
}

/// Writes a new handle to the drive's metadata log (a Hyperbee of entries) to `*out`, e.g. to
/// subscribe to its events. Free it with `dat_log_free`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_metadata_log(
    drive: *const dat_drive,
    out: *mut *mut dat_log,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let out = out_ref(out, "out")?;
        out.write(box_handle(drive.metadata_log().clone()));
        Ok(())
    })
}

/// Writes a new handle to the drive's content log (the file bytes) to `*out`, e.g. to prioritize
/// a range of it (`dat_log_prioritize`) or follow its downloads. Free it with `dat_log_free`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_content_log(
    drive: *const dat_drive,
    out: *mut *mut dat_log,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let out = out_ref(out, "out")?;
        out.write(box_handle(drive.content_log().clone()));
        Ok(())
    })
}

/// Writes the file `path` with the `len` bytes at `data` (`data` may be NULL when `len` is 0),
/// replacing any file or symlink there. A drive that is not writable here gives
/// `DAT_NOT_WRITABLE`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_put(
    drive: *const dat_drive,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        // SAFETY: `data` is NULL or points at `len` readable bytes (header contract).
        let data = unsafe { bytes_arg(data, len, "data") }?;
        drive.put(path, data)?;
        Ok(())
    })
}

/// Options of `dat_drive_put_with`. A zeroed struct means the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct dat_put_options {
    /// The executable bit.
    pub executable: bool,
    /// JSON text stored with the entry (any JSON value; read back with `dat_entry_metadata`), or
    /// NULL for none. Text that is not JSON gives `DAT_INVALID_ARGUMENT`.
    pub metadata: *const c_char,
    /// Cut the content into content-defined chunks and reference the chunks the drive already
    /// holds (in any file or version) instead of storing them again (stored as a block map,
    /// which hyperdrive 13.3 reads).
    pub dedup: bool,
}

/// What a deduplicated write saved (`dat_drive_put_with`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct dat_dedup_report {
    /// The size of the file written.
    pub bytes_total: u64,
    /// The bytes appended to the content log as new blocks.
    pub bytes_new: u64,
    /// The chunks the file was cut into.
    pub blocks_total: u64,
    /// The chunks appended as new blocks.
    pub blocks_new: u64,
    /// The chunks that reuse a block the log already held (or one earlier in the same file).
    pub blocks_reused: u64,
}

/// Writes the file `path` as `dat_drive_put` does, with `opts` (NULL: the defaults). For a
/// deduplicated write, `*out_report` (may be NULL) gets what it saved; for one without dedup it
/// is zeroed.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_put_with(
    drive: *const dat_drive,
    path: *const c_char,
    data: *const u8,
    len: usize,
    opts: *const dat_put_options,
    out_report: *mut dat_dedup_report,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        // SAFETY: `data` is NULL or points at `len` readable bytes (header contract).
        let data = unsafe { bytes_arg(data, len, "data") }?;
        // SAFETY: a non-NULL `opts` points at a dat_put_options (header contract).
        let put = match unsafe { opts.as_ref() } {
            None => PutOptions::default(),
            Some(o) => PutOptions {
                executable: o.executable,
                metadata: if o.metadata.is_null() {
                    None
                } else {
                    // SAFETY: a non-NULL `metadata` is a NUL-terminated string (header contract).
                    let text = unsafe { str_arg(o.metadata, "opts->metadata") }?;
                    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                        Failure::invalid(format!("opts->metadata is not JSON: {e}"))
                    })?;
                    (!value.is_null()).then_some(value)
                },
                dedup: o.dedup,
            },
        };
        let (_, report) = drive.put_with(path, data, &put)?;
        if !out_report.is_null() {
            let r = report.map_or_else(dat_dedup_report::default, |r| dat_dedup_report {
                bytes_total: r.bytes_total,
                bytes_new: r.bytes_new,
                blocks_total: r.blocks_total,
                blocks_new: r.blocks_new,
                blocks_reused: r.blocks_reused,
            });
            out_ref(out_report, "out_report")?.write(r);
        }
        Ok(())
    })
}

/// Reads the whole file `path` into `*out` (free it with `dat_bytes_free`). No file there (or a
/// symlink: this does not follow links) gives `DAT_NOT_FOUND`. On a remote drive the blocks it
/// needs are fetched from peers, waiting at most the drive's timeout.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_get(
    drive: *const dat_drive,
    path: *const c_char,
    out: *mut dat_bytes,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let out = out_ref(out, "out")?;
        let data = drive.get(path)?.ok_or_else(|| {
            Failure::new(
                dat_status::DAT_NOT_FOUND,
                format!("no file at {path} (nothing, or a symlink)"),
            )
        })?;
        out.write(dat_bytes::from_vec(data));
        Ok(())
    })
}

/// Writes the size in bytes of the file `entry` describes to `*out` (0 for a symlink). `entry`
/// comes from this drive (any version of it: an entry, a list, a change, a history or a diff).
/// For a deduplicated file this reads its block map, fetching it from peers if it is not here
/// (within the drive's timeout: `DAT_TIMEOUT`); for any other entry it is `dat_entry_size`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_file_size(
    drive: *const dat_drive,
    entry: *const dat_entry,
    out: *mut u64,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let entry = crate::entry::entry_arg(entry)?;
        let out = out_ref(out, "out")?;
        out.write(drive.file_size(entry)?);
        Ok(())
    })
}

/// Writes the entry of `path` (a file or a symlink, not followed) to `*out` as a new handle
/// (free it with `dat_entry_free`). Nothing there gives `DAT_NOT_FOUND`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_entry(
    drive: *const dat_drive,
    path: *const c_char,
    out: *mut *mut dat_entry,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let out = out_ref(out, "out")?;
        let entry = drive
            .entry(path)?
            .ok_or_else(|| Failure::new(dat_status::DAT_NOT_FOUND, format!("nothing at {path}")))?;
        out.write(entry_handle(entry));
        Ok(())
    })
}

/// Writes whether `path` has an entry (a file or a symlink) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_exists(
    drive: *const dat_drive,
    path: *const c_char,
    out: *mut bool,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let out = out_ref(out, "out")?;
        out.write(drive.exists(path)?);
        Ok(())
    })
}

/// Deletes the file or symlink `path`; `*out_existed` (may be NULL) gets whether there was one
/// (deleting nothing is not an error). Older versions still read the file.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_del(
    drive: *const dat_drive,
    path: *const c_char,
    out_existed: *mut bool,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let existed = drive.del(path)?;
        if !out_existed.is_null() {
            out_ref(out_existed, "out_existed")?.write(existed);
        }
        Ok(())
    })
}

/// Makes `path` a symlink to `target` (stored as given; a relative target resolves against the
/// link's own path when followed, as Hyperdrive does).
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_symlink(
    drive: *const dat_drive,
    path: *const c_char,
    target: *const c_char,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let target = path_arg(target, "target")?;
        drive.symlink(path, target)?;
        Ok(())
    })
}

/// Writes a read-only handle to the drive as it was at `version` (1 ..= the current version;
/// files included) to `*out`; free it with `dat_drive_free`. A version past the current one gives
/// `DAT_OUT_OF_BOUNDS`; writing to the checkout gives `DAT_NOT_WRITABLE`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_checkout(
    drive: *const dat_drive,
    version: u64,
    out: *mut *mut dat_drive,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let out = out_ref(out, "out")?;
        let old = drive.checkout(version)?;
        out.write(box_handle(old));
        Ok(())
    })
}

/// Called as a download progresses: `userdata` first, then the blocks of content local so far and
/// the blocks in all.
pub type dat_progress_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, done: u64, total: u64)>;

/// Fetches the content of the file or folder `path` ("/" for the whole drive) from peers and
/// blocks the calling thread until it is all local; `*out_blocks` gets the number of blocks that
/// were missing. `cb` (may be NULL) is called with `userdata` on the calling thread, before this
/// returns, each time the count changes (first with what is already local, last with
/// `done == total`). A block that does not arrive within the drive's timeout gives `DAT_TIMEOUT`.
/// A path with nothing under it downloads nothing.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_download(
    drive: *const dat_drive,
    path: *const c_char,
    cb: dat_progress_cb,
    userdata: *mut c_void,
    out_blocks: *mut u64,
) -> dat_status {
    catch_status(|| download(drive, path, std::ptr::null(), cb, userdata, out_blocks))
}

/// `dat_drive_download` that stops early, with `DAT_CANCELLED`, once `cancel` is cancelled
/// (`dat_cancel_cancel`, from any thread, or from `cb`; it stops within a few milliseconds). The
/// blocks that arrived stay. `cancel` may be NULL (never cancelled) and must stay alive until this
/// returns.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_download_until(
    drive: *const dat_drive,
    path: *const c_char,
    cancel: *const dat_cancel,
    cb: dat_progress_cb,
    userdata: *mut c_void,
    out_blocks: *mut u64,
) -> dat_status {
    catch_status(|| download(drive, path, cancel, cb, userdata, out_blocks))
}

fn download(
    drive: *const dat_drive,
    path: *const c_char,
    cancel: *const dat_cancel,
    cb: dat_progress_cb,
    userdata: *mut c_void,
    out_blocks: *mut u64,
) -> Result<(), Failure> {
    let drive = drive_ref(drive)?;
    let path = path_arg(path, "path")?;
    let out_blocks = out_ref(out_blocks, "out_blocks")?;
    let never = CancelToken::new();
    let cancel = if cancel.is_null() {
        &never
    } else {
        // SAFETY: `cancel` is a live cancel handle for the duration of the call (contract).
        unsafe { try_ref(cancel, "cancel") }?
    };
    let userdata = UserData(userdata);
    let mut last = None;
    let fetched = drive.download_until(path, cancel, |done, total| {
        if last == Some((done, total)) {
            return;
        }
        last = Some((done, total));
        if let Some(cb) = cb {
            // SAFETY: the caller's callback, called with their userdata on their own thread
            // during this call, as the header documents.
            unsafe { cb(userdata.0, done, total) };
        }
    })?;
    out_blocks.write(fetched);
    Ok(())
}

/// A flag that stops a `dat_drive_download_until` from another thread. Thread-safe: any thread
/// may cancel it while another downloads with it. Free it after the download returned.
pub struct dat_cancel {
    _private: [u8; 0],
}

impl Castable for dat_cancel {
    type Ownership = OwnershipBox;
    type RustType = CancelToken;
}

/// Makes a cancel flag, not cancelled yet, at `*out`; free it with `dat_cancel_free`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cancel_new(out: *mut *mut dat_cancel) -> dat_status {
    catch_status(|| {
        let out = out_ref(out, "out")?;
        out.write(box_handle(CancelToken::new()));
        Ok(())
    })
}

/// Cancels what waits on `cancel` (now and later). Cancelling twice does nothing.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cancel_cancel(cancel: *const dat_cancel) -> dat_status {
    catch_status(|| {
        // SAFETY: `cancel` is NULL or a live cancel handle (header contract).
        let cancel = unsafe { try_ref(cancel, "cancel") }?;
        cancel.cancel();
        Ok(())
    })
}

/// Frees a cancel flag (after any download using it returned). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cancel_free(cancel: *mut dat_cancel) {
    catch_or((), || {
        // SAFETY: `cancel` is NULL or a live cancel handle, freed once (header contract).
        unsafe { free_box(cancel) }
    })
}

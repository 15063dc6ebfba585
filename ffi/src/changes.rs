//! `dat_changes`: a drive's history as a stream of changes (optionally live), and `dat_change`,
//! one change handed to the caller.

use std::ffi::c_char;

use dat_core::drive::{Change, ChangeKind, Changes};

use crate::drive::{dat_drive, drive_ref};
use crate::entry::{dat_entry, entry_handle_or_null};
use crate::handle::{
    Castable, OwnershipBox, box_handle, free_box, out_ref, try_mut, try_ref, write_text,
};
use crate::list::end;
use crate::log::timeout;
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};

/// Whether a change wrote or removed a name (`dat_change_kind`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum dat_change_type {
    /// A file or symlink was written.
    DAT_CHANGE_PUT = 1,
    /// A name was deleted.
    DAT_CHANGE_DEL = 2,
}

/// A stream of a drive's changes, in order. Use it from one thread at a time.
pub struct dat_changes {
    _private: [u8; 0],
}

impl Castable for dat_changes {
    type Ownership = OwnershipBox;
    type RustType = ChangesHandle;
}

/// What a `dat_changes` points at.
pub(crate) struct ChangesHandle {
    changes: Changes,
    /// Whether the stream waits for new changes (a checkout's stream never does).
    live: bool,
}

/// One change of a drive: its version, its kind, its path and the entry it wrote. Owned by the
/// caller (valid after the stream is freed), immutable, thread-safe; free it with
/// `dat_change_free`.
pub struct dat_change {
    _private: [u8; 0],
}

impl Castable for dat_change {
    type Ownership = OwnershipBox;
    type RustType = Change;
}

/// A stream of the changes of `drive` from version `from_version` on (a change's version is the
/// drive's version right after it, so 2 is the first change and `dat_drive_version() + 1` the
/// next one to come). `live`: at the end the stream waits for new changes, written here or
/// replicated from the drive's writer; not live (or on a checkout): it ends at the version the
/// drive has when it gets there. Writes its handle to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_changes(
    drive: *const dat_drive,
    from_version: u64,
    live: bool,
    out: *mut *mut dat_changes,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let out = out_ref(out, "out")?;
        out.write(box_handle(ChangesHandle {
            changes: drive.changes(from_version, live),
            live: live && !drive.is_checkout(),
        }));
        Ok(())
    })
}

/// The next change, as a new handle to `*out` (free it with `dat_change_free`). At the end of a
/// live stream this blocks the calling thread until a change comes, for at most `timeout_ms`
/// (0: do not wait; negative: no limit), and gives `DAT_TIMEOUT` if none came (call again
/// later); at the end of a stream that is not live it gives `DAT_END`. Nothing is written unless
/// `DAT_OK`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_changes_next(
    changes: *mut dat_changes,
    timeout_ms: i64,
    out: *mut *mut dat_change,
) -> dat_status {
    catch_status(|| {
        // SAFETY: `changes` is NULL or a live changes handle used by one thread at a time.
        let h = unsafe { try_mut(changes, "changes") }?;
        let out = out_ref(out, "out")?;
        match h.changes.next_timeout(timeout(timeout_ms))? {
            Some(change) => {
                out.write(box_handle(change));
                Ok(())
            }
            None if h.live => Err(Failure::new(
                dat_status::DAT_TIMEOUT,
                format!("no change in {timeout_ms} ms"),
            )),
            None => Err(end()),
        }
    })
}

/// Frees a changes stream. NULL is ignored. Changes it gave stay valid.
#[unsafe(no_mangle)]
pub extern "C" fn dat_changes_free(changes: *mut dat_changes) {
    catch_or((), || {
        // SAFETY: `changes` is NULL or a live changes handle, freed once (header contract).
        unsafe { free_box(changes) }
    })
}

fn change_ref<'a>(change: *const dat_change) -> Result<&'a Change, Failure> {
    // SAFETY: `change` is NULL or a live change handle for the duration of the call.
    unsafe { try_ref(change, "change") }
}

/// Writes the drive version the change made to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_change_version(change: *const dat_change, out: *mut u64) -> dat_status {
    catch_status(|| {
        let change = change_ref(change)?;
        out_ref(out, "out")?.write(change.version);
        Ok(())
    })
}

/// Writes the kind of the change, a put or a delete, to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_change_kind(
    change: *const dat_change,
    out: *mut dat_change_type,
) -> dat_status {
    catch_status(|| {
        let change = change_ref(change)?;
        out_ref(out, "out")?.write(match change.kind {
            ChangeKind::Put => dat_change_type::DAT_CHANGE_PUT,
            ChangeKind::Del => dat_change_type::DAT_CHANGE_DEL,
        });
        Ok(())
    })
}

/// Writes the changed path (normalized, e.g. "/dir/a.txt") into `buf` (`len` bytes) as a
/// NUL-terminated string and its length without the NUL to `*written`. `buf` NULL with `len` 0
/// only writes the length; a buffer too small gives `DAT_BUFFER_TOO_SMALL`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_change_path(
    change: *const dat_change,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> dat_status {
    catch_status(|| {
        let change = change_ref(change)?;
        // SAFETY: `buf` is NULL or points at `len` writable bytes (header contract).
        unsafe { write_text(buf, len, written, &change.path) }
    })
}

/// Writes the entry a put wrote to `*out` as a new handle (free it with `dat_entry_free`), or
/// NULL for a delete.
#[unsafe(no_mangle)]
pub extern "C" fn dat_change_entry(
    change: *const dat_change,
    out: *mut *mut dat_entry,
) -> dat_status {
    catch_status(|| {
        let change = change_ref(change)?;
        out_ref(out, "out")?.write(entry_handle_or_null(change.entry.clone()));
        Ok(())
    })
}

/// Frees a change. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_change_free(change: *mut dat_change) {
    catch_or((), || {
        // SAFETY: `change` is NULL or a live change handle, freed once (header contract).
        unsafe { free_box(change) }
    })
}

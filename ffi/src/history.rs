//! `dat_history`: the versions of one path of a drive.

use std::ffi::c_char;

use dat_core::drive::FileVersion;

use crate::drive::{dat_drive, drive_ref, path_arg};
use crate::entry::{dat_entry, entry_handle_or_null};
use crate::handle::{Castable, OwnershipBox, box_handle, free_box, out_ref, try_mut};
use crate::list::end;
use crate::panic::{catch_or, catch_status};
use crate::status::dat_status;

/// An iterator over the changes of one path, oldest first, up to the drive's version when the
/// history was made. Use it from one thread at a time.
pub struct dat_history {
    _private: [u8; 0],
}

impl Castable for dat_history {
    type Ownership = OwnershipBox;
    type RustType = std::vec::IntoIter<FileVersion>;
}

/// The history of `path`: every put and delete of it, oldest first (from the drive's name index,
/// not a walk of the whole drive). Writes an iterator to `*out`; a path never written gives an
/// empty one.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_file_history(
    drive: *const dat_drive,
    path: *const c_char,
    out: *mut *mut dat_history,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let out = out_ref(out, "out")?;
        let versions = drive.file_history(path)?;
        out.write(box_handle(versions.into_iter()));
        Ok(())
    })
}

/// The next change of the path: the drive version it made to `*out_version`, and the entry it
/// wrote to `*out_entry` (free it with `dat_entry_free`), or NULL for a deletion. `DAT_END` when
/// there are no more (nothing is written).
#[unsafe(no_mangle)]
pub extern "C" fn dat_history_next(
    history: *mut dat_history,
    out_version: *mut u64,
    out_entry: *mut *mut dat_entry,
) -> dat_status {
    catch_status(|| {
        // SAFETY: `history` is NULL or a live history handle used by one thread at a time.
        let history = unsafe { try_mut(history, "history") }?;
        let out_version = out_ref(out_version, "out_version")?;
        let out_entry = out_ref(out_entry, "out_entry")?;
        let v = history.next().ok_or_else(end)?;
        out_version.write(v.version);
        out_entry.write(entry_handle_or_null(v.entry));
        Ok(())
    })
}

/// Frees a history iterator. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_history_free(history: *mut dat_history) {
    catch_or((), || {
        // SAFETY: `history` is NULL or a live history handle, freed once (header contract).
        unsafe { free_box(history) }
    })
}

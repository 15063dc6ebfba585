//! `dat_list`: the files and symlinks under a folder of a drive.

use std::ffi::c_char;

use dat_core::drive::Entry;

use crate::bytes::dat_bytes;
use crate::drive::{dat_drive, drive_ref, path_arg};
use crate::entry::{dat_entry, entry_handle};
use crate::handle::{Castable, OwnershipBox, box_handle, free_box, out_ref, try_mut};
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};

/// An iterator over the entries under a folder, in path order, as they were when
/// `dat_drive_list` was called. Use it from one thread at a time.
pub struct dat_list {
    _private: [u8; 0],
}

impl Castable for dat_list {
    type Ownership = OwnershipBox;
    type RustType = std::vec::IntoIter<(String, Entry)>;
}

/// The end of an iterator: `DAT_END`.
pub(crate) fn end() -> Failure {
    Failure::new(dat_status::DAT_END, "no more items")
}

/// Lists the files and symlinks under `folder` ("/" for the whole drive): every one at any depth
/// (`recursive`), or only the first entry under each name directly in the folder (a file, or the
/// first file of a sub-folder, as Hyperdrive's `list(folder, { recursive: false })`). Writes an
/// iterator to `*out`; `dat_list_next` gives the items.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_list(
    drive: *const dat_drive,
    folder: *const c_char,
    recursive: bool,
    out: *mut *mut dat_list,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let folder = path_arg(folder, "folder")?;
        let out = out_ref(out, "out")?;
        let items = drive.list(folder, recursive)?;
        out.write(box_handle(items.into_iter()));
        Ok(())
    })
}

/// The next item: its path (normalized, e.g. "/dir/a.txt"; not NUL-terminated) to `*out_path`
/// (free it with `dat_bytes_free`) and its entry to `*out_entry` (free it with `dat_entry_free`).
/// Both stay valid after the iterator is freed. `DAT_END` when there are no more (nothing is
/// written).
#[unsafe(no_mangle)]
pub extern "C" fn dat_list_next(
    list: *mut dat_list,
    out_path: *mut dat_bytes,
    out_entry: *mut *mut dat_entry,
) -> dat_status {
    catch_status(|| {
        // SAFETY: `list` is NULL or a live list handle used by one thread at a time.
        let list = unsafe { try_mut(list, "list") }?;
        let out_path = out_ref(out_path, "out_path")?;
        let out_entry = out_ref(out_entry, "out_entry")?;
        let (path, entry) = list.next().ok_or_else(end)?;
        out_path.write(dat_bytes::from_vec(path.into_bytes()));
        out_entry.write(entry_handle(entry));
        Ok(())
    })
}

/// Frees a list iterator. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_list_free(list: *mut dat_list) {
    catch_or((), || {
        // SAFETY: `list` is NULL or a live list handle, freed once (header contract).
        unsafe { free_box(list) }
    })
}

//! `dat_entry`: a drive entry (a file or a symlink) handed to the caller, and its getters.

use std::ffi::c_char;

use dat_core::drive::Entry;

use crate::handle::{
    Castable, OwnershipBox, box_handle, check_text_out, free_box, out_ref, try_ref, write_text,
};
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};

/// A drive entry: a file (with its size) or a symlink (with its target), its executable bit and
/// its metadata. A copy owned by the caller: it stays valid after the drive, iterator or change
/// it came from is freed, and does not change when the drive does. Immutable, so thread-safe.
/// Free it with `dat_entry_free`.
pub struct dat_entry {
    _private: [u8; 0],
}

impl Castable for dat_entry {
    type Ownership = OwnershipBox;
    type RustType = Entry;
}

/// Moves `entry` into a new handle.
pub(crate) fn entry_handle(entry: Entry) -> *mut dat_entry {
    box_handle::<dat_entry>(entry)
}

/// A new handle for `entry`, or NULL for `None`.
pub(crate) fn entry_handle_or_null(entry: Option<Entry>) -> *mut dat_entry {
    entry.map_or(std::ptr::null_mut(), entry_handle)
}

fn entry_ref<'a>(entry: *const dat_entry) -> Result<&'a Entry, Failure> {
    // SAFETY: `entry` is NULL or a live entry handle for the duration of the call.
    unsafe { try_ref(entry, "entry") }
}

/// Writes the file's size in bytes to `*out` (0 for a symlink). A deduplicated file's entry
/// does not hold its size (its blob id covers its block map; see `dat_entry_is_deduplicated`):
/// that gives `DAT_NOT_AVAILABLE` and leaves `*out` alone; `dat_drive_file_size` gives the size of
/// any entry.
#[unsafe(no_mangle)]
pub extern "C" fn dat_entry_size(entry: *const dat_entry, out: *mut u64) -> dat_status {
    catch_status(|| {
        let entry = entry_ref(entry)?;
        let out = out_ref(out, "out")?;
        let size = entry.size().ok_or_else(|| {
            Failure::new(
                dat_status::DAT_NOT_AVAILABLE,
                "a deduplicated file's size is in its block map: use dat_drive_file_size",
            )
        })?;
        out.write(size);
        Ok(())
    })
}

/// Writes whether the entry is a deduplicated file (its content listed by a block map, as
/// `dat_put_options.dedup` writes it) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_entry_is_deduplicated(entry: *const dat_entry, out: *mut bool) -> dat_status {
    catch_status(|| {
        let entry = entry_ref(entry)?;
        out_ref(out, "out")?.write(entry.is_block_mapped());
        Ok(())
    })
}

pub(crate) fn entry_arg<'a>(entry: *const dat_entry) -> Result<&'a Entry, Failure> {
    entry_ref(entry)
}

/// Writes the executable bit to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_entry_executable(entry: *const dat_entry, out: *mut bool) -> dat_status {
    catch_status(|| {
        let entry = entry_ref(entry)?;
        out_ref(out, "out")?.write(entry.executable);
        Ok(())
    })
}

/// Writes whether the entry is a symlink (true) or a file (false) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_entry_is_symlink(entry: *const dat_entry, out: *mut bool) -> dat_status {
    catch_status(|| {
        let entry = entry_ref(entry)?;
        out_ref(out, "out")?.write(entry.is_symlink());
        Ok(())
    })
}

/// Writes a symlink's target (as it was given to `dat_drive_symlink`) into `buf` (`len` bytes)
/// as a NUL-terminated string and its length without the NUL to `*written`. `buf` NULL with `len`
/// 0 only writes the length. A buffer too small gives `DAT_BUFFER_TOO_SMALL`; a file (no target)
/// gives `DAT_NOT_FOUND`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_entry_linkname(
    entry: *const dat_entry,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> dat_status {
    catch_status(|| {
        let entry = entry_ref(entry)?;
        check_text_out(buf, len, written)?;
        let target = entry
            .linkname
            .as_deref()
            .ok_or_else(|| Failure::new(dat_status::DAT_NOT_FOUND, "the entry is not a symlink"))?;
        // SAFETY: `buf` is NULL or points at `len` writable bytes (header contract).
        unsafe { write_text(buf, len, written, target) }
    })
}

/// Writes the entry's metadata as JSON text (what `dat_put_options.metadata` gave) into `buf`
/// (`len` bytes), NUL-terminated, and its length without the NUL to `*written`. `buf` NULL with
/// `len` 0 only writes the length. A buffer too small gives `DAT_BUFFER_TOO_SMALL`; an entry
/// without metadata gives `DAT_NOT_FOUND`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_entry_metadata(
    entry: *const dat_entry,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> dat_status {
    catch_status(|| {
        let entry = entry_ref(entry)?;
        check_text_out(buf, len, written)?;
        let json = entry
            .metadata
            .as_ref()
            .ok_or_else(|| Failure::new(dat_status::DAT_NOT_FOUND, "the entry has no metadata"))?
            .to_string();
        // SAFETY: `buf` is NULL or points at `len` writable bytes (header contract).
        unsafe { write_text(buf, len, written, &json) }
    })
}

/// Frees an entry. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_entry_free(entry: *mut dat_entry) {
    catch_or((), || {
        // SAFETY: `entry` is NULL or a live entry handle, freed once (header contract).
        unsafe { free_box(entry) }
    })
}

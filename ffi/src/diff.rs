//! `dat_diff`: the names that differ between two versions of a drive, or between two drives.

use std::ffi::c_char;

use dat_core::drive::{DiffKind, DriveDiff};

use crate::bytes::{dat_bytes, dat_bytes_free};
use crate::drive::{dat_drive, drive_ref, path_arg};
use crate::entry::{dat_entry, dat_entry_free, entry_handle_or_null};
use crate::handle::{Castable, OwnershipBox, box_handle, free_box, out_ref, try_mut, try_ref};
use crate::list::end;
use crate::panic::{catch_or, catch_status};
use crate::status::dat_status;

/// How a name differs between the two sides of a diff.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum dat_diff_kind {
    /// Only on the left (the drive the diff was called on): `left` is set, `right` is NULL.
    DAT_DIFF_ADDED = 1,
    /// Only on the right (the other version or drive): `left` is NULL, `right` is set.
    DAT_DIFF_REMOVED = 2,
    /// On both sides, with different content or attributes: both are set.
    DAT_DIFF_CHANGED = 3,
}

/// One name that differs. The caller owns what it holds: free it with `dat_diff_item_free`
/// (or `path` with `dat_bytes_free` and each entry with `dat_entry_free`).
#[repr(C)]
#[derive(Debug)]
pub struct dat_diff_item {
    /// The path (normalized; not NUL-terminated).
    pub path: dat_bytes,
    /// How it differs.
    pub kind: dat_diff_kind,
    /// The entry on the left, or NULL.
    pub left: *mut dat_entry,
    /// The entry on the right, or NULL.
    pub right: *mut dat_entry,
}

/// An iterator over the names that differ, in path order, computed when the diff was made. Use
/// it from one thread at a time.
pub struct dat_diff {
    _private: [u8; 0],
}

impl Castable for dat_diff {
    type Ownership = OwnershipBox;
    type RustType = std::vec::IntoIter<DriveDiff>;
}

/// The names under `folder` ("/" for all) that differ between `drive` (the left side) and its own
/// version `other_version` (the right side); subtrees the versions share are skipped unread.
/// Writes an iterator to `*out`. A version past the current one gives `DAT_OUT_OF_BOUNDS`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_diff(
    drive: *const dat_drive,
    other_version: u64,
    folder: *const c_char,
    out: *mut *mut dat_diff,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let folder = path_arg(folder, "folder")?;
        let out = out_ref(out, "out")?;
        let diffs = drive.diff(other_version, folder)?;
        out.write(box_handle(diffs.into_iter()));
        Ok(())
    })
}

/// The names under `folder` that differ between `drive` (left) and `other`, another drive
/// (right): files are compared by content and attributes, not by where their bytes are stored.
/// Writes an iterator to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_drive_diff_drive(
    drive: *const dat_drive,
    other: *const dat_drive,
    folder: *const c_char,
    out: *mut *mut dat_diff,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        // SAFETY: `other` is NULL or a live drive handle for the duration of the call.
        let other = unsafe { try_ref(other, "other") }?;
        let folder = path_arg(folder, "folder")?;
        let out = out_ref(out, "out")?;
        let diffs = drive.diff_drive(other, folder)?;
        out.write(box_handle(diffs.into_iter()));
        Ok(())
    })
}

/// The next name that differs, into `*out` (the caller's struct; free what it holds with
/// `dat_diff_item_free`; it stays valid after the iterator is freed). `DAT_END` when there are
/// no more (nothing is written).
#[unsafe(no_mangle)]
pub extern "C" fn dat_diff_next(diff: *mut dat_diff, out: *mut dat_diff_item) -> dat_status {
    catch_status(|| {
        // SAFETY: `diff` is NULL or a live diff handle used by one thread at a time.
        let diff = unsafe { try_mut(diff, "diff") }?;
        let out = out_ref(out, "out")?;
        let d = diff.next().ok_or_else(end)?;
        let kind = match d.kind {
            DiffKind::Added => dat_diff_kind::DAT_DIFF_ADDED,
            DiffKind::Removed => dat_diff_kind::DAT_DIFF_REMOVED,
            DiffKind::Changed => dat_diff_kind::DAT_DIFF_CHANGED,
        };
        out.write(dat_diff_item {
            path: dat_bytes::from_vec(d.path.into_bytes()),
            kind,
            left: entry_handle_or_null(d.left),
            right: entry_handle_or_null(d.right),
        });
        Ok(())
    })
}

/// Frees what a `dat_diff_item` filled by `dat_diff_next` holds (its path and entries) and zeroes
/// its pointers, so a second call does nothing. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_diff_item_free(item: *mut dat_diff_item) {
    catch_or((), || {
        if item.is_null() {
            return;
        }
        // Only the fields freed here are touched (through raw place projections, never a
        // reference to the whole struct): a zeroed struct's `kind` is no valid dat_diff_kind.
        // SAFETY: a non-NULL `item` points at a dat_diff_item the caller owns (header contract),
        // whose `path` came from libdat or is zeroed, and whose entries are NULL or live handles.
        unsafe {
            dat_bytes_free(&raw mut (*item).path);
            dat_entry_free(std::ptr::replace(
                &raw mut (*item).left,
                std::ptr::null_mut(),
            ));
            dat_entry_free(std::ptr::replace(
                &raw mut (*item).right,
                std::ptr::null_mut(),
            ));
        }
    })
}

/// Frees a diff iterator. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_diff_free(diff: *mut dat_diff) {
    catch_or((), || {
        // SAFETY: `diff` is NULL or a live diff handle, freed once (header contract).
        unsafe { free_box(diff) }
    })
}

//! Typed ownership of the opaque handles, and the argument checks every export uses.
//!
//! Each C handle type (`dat_log`, `dat_store`, ...) is a zero-sized marker that C only ever sees
//! behind a pointer. [`Castable`] says which Rust value it stands for and whether that value is
//! held in a `Box` (one owner: the handle is freed once) or an `Arc` (reference-counted: the free
//! function releases the caller's reference). The helpers below only type-check
//! for the ownership the marker declares, so a `Box` handle cannot be freed as an `Arc`.
//! Every check of a pointer argument returns a [`Failure`] (NULL → `DAT_NULL_ARGUMENT`) instead of
//! crashing.

use std::ffi::{CStr, c_char};
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::status::Failure;

/// Ownership of a handle held in a `Box`.
pub(crate) struct OwnershipBox;
/// Ownership of a handle held in an `Arc`.
pub(crate) struct OwnershipArc;

/// A C handle type and the Rust value behind it.
pub(crate) trait Castable {
    /// [`OwnershipBox`] or [`OwnershipArc`].
    type Ownership;
    /// The value a pointer to this handle points at.
    type RustType;
}

/// Moves `value` into a new `Box` handle.
pub(crate) fn box_handle<C: Castable<Ownership = OwnershipBox>>(value: C::RustType) -> *mut C {
    Box::into_raw(Box::new(value)).cast()
}

/// Moves `value` into a new `Arc` handle.
pub(crate) fn arc_handle<C: Castable<Ownership = OwnershipArc>>(value: C::RustType) -> *const C {
    Arc::into_raw(Arc::new(value)).cast()
}

/// Borrows the value behind a `Box` or `Arc` handle.
///
/// # Safety
/// `ptr` is NULL or a handle of type `C` that libdat returned and that has not been freed, and it
/// stays valid for `'a`.
pub(crate) unsafe fn try_ref<'a, C: Castable>(
    ptr: *const C,
    name: &str,
) -> Result<&'a C::RustType, Failure> {
    // SAFETY: per this function's contract, a non-NULL `ptr` points at a live `C::RustType`
    // (both `Box::into_raw` and `Arc::into_raw` point at the value itself).
    unsafe { ptr.cast::<C::RustType>().as_ref() }.ok_or_else(|| Failure::null(name))
}

/// Borrows the value behind a `Box` handle mutably.
///
/// # Safety
/// As [`try_ref`], and no other reference to the value exists while the borrow lives (the
/// caller uses the handle from one thread at a time, as the header documents for such handles).
pub(crate) unsafe fn try_mut<'a, C: Castable<Ownership = OwnershipBox>>(
    ptr: *mut C,
    name: &str,
) -> Result<&'a mut C::RustType, Failure> {
    // SAFETY: per this function's contract, a non-NULL `ptr` is a live, unaliased `Box` value.
    unsafe { ptr.cast::<C::RustType>().as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Frees a `Box` handle; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or a `Box` handle of type `C` that libdat returned and that has not been freed.
pub(crate) unsafe fn free_box<C: Castable<Ownership = OwnershipBox>>(ptr: *mut C) {
    if !ptr.is_null() {
        // SAFETY: per the contract, `ptr` came from `Box::into_raw` of a `C::RustType`.
        drop(unsafe { Box::from_raw(ptr.cast::<C::RustType>()) });
    }
}

/// Takes the value out of a `Box` handle, freeing the handle; NULL gives `None`.
///
/// # Safety
/// As [`free_box`].
pub(crate) unsafe fn take_box<C: Castable<Ownership = OwnershipBox>>(
    ptr: *mut C,
) -> Option<C::RustType> {
    // SAFETY: per the contract, a non-NULL `ptr` came from `Box::into_raw` of a `C::RustType`.
    (!ptr.is_null()).then(|| *unsafe { Box::from_raw(ptr.cast::<C::RustType>()) })
}

/// Releases the caller's reference of an `Arc` handle; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or an `Arc` handle of type `C` that libdat returned and that has not been freed.
pub(crate) unsafe fn free_arc<C: Castable<Ownership = OwnershipArc>>(ptr: *const C) {
    if !ptr.is_null() {
        // SAFETY: per the contract, `ptr` came from `Arc::into_raw` and holds one reference.
        drop(unsafe { Arc::from_raw(ptr.cast::<C::RustType>()) });
    }
}

/// An out-parameter, checked for NULL before any work is done and written only on success.
pub(crate) fn out_ref<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut MaybeUninit<T>, Failure> {
    // SAFETY: a non-NULL out-parameter points at writable (possibly uninitialized) storage for a
    // `T`, which is what `MaybeUninit<T>` describes; the caller does not touch it during the call.
    unsafe { ptr.cast::<MaybeUninit<T>>().as_mut() }.ok_or_else(|| Failure::null(name))
}

/// The bytes of an input buffer; NULL is allowed only with `len` 0.
///
/// # Safety
/// A non-NULL `ptr` points at `len` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Failure::null(name))
        };
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "`{name}` is longer than isize::MAX"
        )));
    }
    // SAFETY: per the contract, `ptr` points at `len` readable bytes; `len` fits an isize.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A 32-byte key given as a buffer and its length.
///
/// # Safety
/// As [`bytes_arg`].
pub(crate) unsafe fn key_arg(ptr: *const u8, len: usize, name: &str) -> Result<[u8; 32], Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes_arg(ptr, len, name) }?;
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    bytes
        .try_into()
        .map_err(|_| Failure::invalid(format!("`{name}` must be 32 bytes, not {len}")))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `ptr` points at a NUL-terminated string that stays unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: per the contract, `ptr` is a live NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("`{name}` is not UTF-8")))
}

/// Copies `bytes` into the caller's buffer `buf` of `len` bytes, or fails with
/// `DAT_BUFFER_TOO_SMALL` (writing nothing).
///
/// # Safety
/// A non-NULL `buf` points at `len` writable bytes.
pub(crate) unsafe fn write_bytes(buf: *mut u8, len: usize, bytes: &[u8]) -> Result<(), Failure> {
    if buf.is_null() {
        return Err(Failure::null("buf"));
    }
    if len < bytes.len() {
        return Err(Failure::new(
            crate::status::dat_status::DAT_BUFFER_TOO_SMALL,
            format!("{} bytes needed, the buffer has {len}", bytes.len()),
        ));
    }
    // SAFETY: `buf` has room for `bytes.len()` bytes (checked), and a caller buffer cannot
    // overlap libdat's own `bytes`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
    Ok(())
}

/// Writes `s` into `buf` (`len` bytes) as a NUL-terminated string truncated to fit at a UTF-8
/// character boundary; returns the length written without the NUL. `len` 0 writes nothing.
///
/// # Safety
/// A non-NULL `buf` points at `len` writable bytes.
pub(crate) unsafe fn write_c_str(buf: *mut c_char, len: usize, s: &str) -> Result<usize, Failure> {
    if buf.is_null() {
        return Err(Failure::null("buf"));
    }
    if len == 0 {
        return Ok(0);
    }
    let mut n = s.len().min(len - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `buf` has `len` > `n` bytes: room for `n` bytes and the NUL.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    Ok(n)
}

/// Writes `s` whole into `buf` (`len` bytes) with a NUL, or fails with `DAT_BUFFER_TOO_SMALL`
/// (writing nothing); returns the length without the NUL.
///
/// # Safety
/// A non-NULL `buf` points at `len` writable bytes.
pub(crate) unsafe fn write_c_str_whole(
    buf: *mut c_char,
    len: usize,
    s: &str,
) -> Result<usize, Failure> {
    if !buf.is_null() && len <= s.len() {
        return Err(Failure::new(
            crate::status::dat_status::DAT_BUFFER_TOO_SMALL,
            format!(
                "{} bytes needed with the NUL, the buffer has {len}",
                s.len() + 1
            ),
        ));
    }
    // SAFETY: forwarded contract; the string fits.
    unsafe { write_c_str(buf, len, s) }
}

/// A string getter's output: writes `s` whole with a NUL into `buf` (`len` bytes) and its length
/// without the NUL to `*written`; or, when `buf` is NULL and `len` is 0, writes nothing but the
/// length (a size query: a buffer of `*written + 1` bytes holds the string). A buffer that is too
/// small gives `DAT_BUFFER_TOO_SMALL`, writing nothing.
///
/// # Safety
/// A non-NULL `buf` points at `len` writable bytes.
pub(crate) unsafe fn write_text(
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
    s: &str,
) -> Result<(), Failure> {
    check_text_out(buf, len, written)?;
    let written = out_ref(written, "written")?;
    let n = if buf.is_null() && len == 0 {
        s.len()
    } else {
        // SAFETY: forwarded contract.
        unsafe { write_c_str_whole(buf, len, s) }?
    };
    written.write(n);
    Ok(())
}

/// The NULL checks of [`write_text`]'s arguments, for a getter to make before any other work.
pub(crate) fn check_text_out(
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> Result<(), Failure> {
    if written.is_null() {
        return Err(Failure::null("written"));
    }
    if buf.is_null() && len > 0 {
        return Err(Failure::null("buf"));
    }
    Ok(())
}

/// A raw `userdata` pointer handed back to a callback on a library thread. The caller promises
/// (the header says so) that their userdata may be used from another thread.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut std::ffi::c_void);

// SAFETY: libdat never dereferences the pointer; it only passes it back to the caller's callback,
// and the header documents that callbacks run on library threads.
unsafe impl Send for UserData {}
// SAFETY: as above; the pointer is only copied.
unsafe impl Sync for UserData {}

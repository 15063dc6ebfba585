//! `dat_bytes`: a byte buffer the library allocated for the caller (a block, a pump's output),
//! freed by `dat_bytes_free`.

use crate::panic::catch_or;

/// Bytes owned by libdat. Read `data[0..len]`; do not change either field; give it back with
/// `dat_bytes_free`, which frees the bytes and zeroes the struct (so a second free, or a free of
/// a zeroed struct, does nothing). `data` is never NULL in a filled struct, even when `len` is 0.
#[repr(C)]
#[derive(Debug)]
pub struct dat_bytes {
    /// The first byte.
    pub data: *mut u8,
    /// The number of bytes.
    pub len: usize,
}

impl dat_bytes {
    /// Hands `bytes` to the caller.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> dat_bytes {
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        dat_bytes {
            data: Box::into_raw(boxed).cast::<u8>(),
            len,
        }
    }
}

/// Frees the bytes of `bytes` (filled by libdat) and zeroes the struct. NULL, and a zeroed
/// struct, are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_bytes_free(bytes: *mut dat_bytes) {
    catch_or((), || {
        // SAFETY: a non-NULL `bytes` points at a dat_bytes the caller owns (header contract).
        let Some(b) = (unsafe { bytes.as_mut() }) else {
            return;
        };
        if b.data.is_null() {
            return;
        }
        let slice = std::ptr::slice_from_raw_parts_mut(b.data, b.len);
        // SAFETY: `data` and `len` are those `from_vec` produced from a boxed slice (the caller
        // must not change them), and the struct is zeroed below, so this happens once.
        drop(unsafe { Box::from_raw(slice) });
        b.data = std::ptr::null_mut();
        b.len = 0;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_double_free_is_a_no_op() {
        let mut b = dat_bytes::from_vec(b"hello".to_vec());
        assert_eq!(b.len, 5);
        dat_bytes_free(&mut b);
        assert!(b.data.is_null());
        dat_bytes_free(&mut b);
        dat_bytes_free(std::ptr::null_mut());
        let mut empty = dat_bytes::from_vec(Vec::new());
        assert!(!empty.data.is_null());
        dat_bytes_free(&mut empty);
    }
}

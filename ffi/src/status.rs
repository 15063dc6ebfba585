//! `dat_status`: the one result of every fallible call, with stable numbers, its messages, and
//! the calling thread's detail string of its last failure.

use std::cell::RefCell;
use std::ffi::c_char;

use dat_core::Error;

use crate::handle::{out_ref, write_c_str};
use crate::panic::catch_status;

/// The result of a call. The numbers are stable: a number, once given, keeps its meaning.
///
/// 0 is success; 1–99 are misuse of the API (caught before any work is done); 100–199 are
/// failures of the operation, one per kind of `dat_core::Error`; 200 (`DAT_END`) is not a failure
/// but the end of an iterator.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum dat_status {
    /// Success.
    DAT_OK = 0,
    /// A bug in libdat: a panic was caught at the API boundary. The handles involved may be in an
    /// inconsistent state; `dat_last_error` has the panic message.
    DAT_PANIC = 1,
    /// A required pointer argument was NULL.
    DAT_NULL_ARGUMENT = 2,
    /// An argument has a wrong value (a key that is not 32 bytes, a string that is not UTF-8, an
    /// address that does not parse, a priority above 7, a drive path that climbs above the root,
    /// ...).
    DAT_INVALID_ARGUMENT = 3,
    /// The caller's output buffer is too small; nothing was written.
    DAT_BUFFER_TOO_SMALL = 4,
    /// The storage layer (LMDB) failed.
    DAT_STORAGE = 100,
    /// A file-system or network operation failed.
    DAT_IO = 101,
    /// Stored bytes do not match what was written (bit rot, a tampered or foreign file).
    DAT_CORRUPT = 102,
    /// The store was written by a newer, incompatible version of libdat.
    DAT_UNSUPPORTED_VERSION = 103,
    /// Bytes from a peer or a caller could not be decoded.
    DAT_DECODE = 104,
    /// A proof's hashes do not chain to a trusted node.
    DAT_INVALID_PROOF = 105,
    /// A proof was made against an older state of the log; nothing was applied.
    DAT_STALE_PROOF = 106,
    /// A signature does not verify against the log's key.
    DAT_INVALID_SIGNATURE = 107,
    /// A manifest does not match the log key or is not supported.
    DAT_INVALID_MANIFEST = 108,
    /// A proof or block request that cannot be answered.
    DAT_INVALID_REQUEST = 109,
    /// A tree node needed for the operation is not stored locally.
    DAT_MISSING_NODE = 110,
    /// A block is not stored locally (never downloaded, or cleared).
    DAT_NOT_AVAILABLE = 111,
    /// An index or byte offset beyond the log.
    DAT_OUT_OF_BOUNDS = 112,
    /// The log cannot be written here (no secret key, or a snapshot).
    DAT_NOT_WRITABLE = 113,
    /// A snapshot's blocks were replaced by a truncation.
    DAT_SNAPSHOT_STALE = 114,
    /// A proof is for another fork of the log.
    DAT_FORK_MISMATCH = 115,
    /// A verified signed state conflicts with the local one (the writer forked the log).
    DAT_CONFLICT = 116,
    /// No log with that key or name in the store; no file or entry at a drive path.
    DAT_NOT_FOUND = 117,
    /// The Noise handshake or the transport encryption failed.
    DAT_HANDSHAKE = 118,
    /// A peer broke the wire protocol.
    DAT_PROTOCOL = 119,
    /// A frame over the size limit.
    DAT_FRAME_TOO_LARGE = 120,
    /// A wait ran out of time.
    DAT_TIMEOUT = 121,
    /// A wait was abandoned (its range was freed, the log or connection closed).
    DAT_CANCELLED = 122,
    /// A failure of a kind this version of the C API does not name yet.
    DAT_OTHER = 199,
    /// Not a failure: the iterator has no more items (`dat_list_next`, `dat_diff_next`,
    /// `dat_history_next`, and `dat_changes_next` on a stream that is not live). Nothing was
    /// written, and `dat_last_error` keeps the detail of the last real failure.
    DAT_END = 200,
}

/// Every status, for tests and for `dat_status_message`'s table.
pub(crate) const ALL: &[dat_status] = {
    use dat_status::*;
    &[
        DAT_OK,
        DAT_PANIC,
        DAT_NULL_ARGUMENT,
        DAT_INVALID_ARGUMENT,
        DAT_BUFFER_TOO_SMALL,
        DAT_STORAGE,
        DAT_IO,
        DAT_CORRUPT,
        DAT_UNSUPPORTED_VERSION,
        DAT_DECODE,
        DAT_INVALID_PROOF,
        DAT_STALE_PROOF,
        DAT_INVALID_SIGNATURE,
        DAT_INVALID_MANIFEST,
        DAT_INVALID_REQUEST,
        DAT_MISSING_NODE,
        DAT_NOT_AVAILABLE,
        DAT_OUT_OF_BOUNDS,
        DAT_NOT_WRITABLE,
        DAT_SNAPSHOT_STALE,
        DAT_FORK_MISMATCH,
        DAT_CONFLICT,
        DAT_NOT_FOUND,
        DAT_HANDSHAKE,
        DAT_PROTOCOL,
        DAT_FRAME_TOO_LARGE,
        DAT_TIMEOUT,
        DAT_CANCELLED,
        DAT_OTHER,
        DAT_END,
    ]
};

impl dat_status {
    /// A short, fixed description of the status.
    pub fn message(self) -> &'static str {
        use dat_status::*;
        match self {
            DAT_OK => "success",
            DAT_PANIC => "internal error: libdat panicked (a bug; see dat_last_error)",
            DAT_NULL_ARGUMENT => "a required pointer argument was NULL",
            DAT_INVALID_ARGUMENT => "invalid argument",
            DAT_BUFFER_TOO_SMALL => "the output buffer is too small",
            DAT_STORAGE => "storage error",
            DAT_IO => "i/o error",
            DAT_CORRUPT => "corrupt store",
            DAT_UNSUPPORTED_VERSION => "the store was written by an unsupported version",
            DAT_DECODE => "malformed encoding",
            DAT_INVALID_PROOF => "invalid proof",
            DAT_STALE_PROOF => "stale proof",
            DAT_INVALID_SIGNATURE => "invalid signature",
            DAT_INVALID_MANIFEST => "invalid manifest",
            DAT_INVALID_REQUEST => "invalid request",
            DAT_MISSING_NODE => "a tree node is not stored locally",
            DAT_NOT_AVAILABLE => "the block is not available locally",
            DAT_OUT_OF_BOUNDS => "out of bounds",
            DAT_NOT_WRITABLE => "the log is not writable here",
            DAT_SNAPSHOT_STALE => "the snapshot is stale",
            DAT_FORK_MISMATCH => "fork mismatch",
            DAT_CONFLICT => "conflict: the writer forked the log",
            DAT_NOT_FOUND => "not found",
            DAT_HANDSHAKE => "handshake failed",
            DAT_PROTOCOL => "protocol error",
            DAT_FRAME_TOO_LARGE => "frame too large",
            DAT_TIMEOUT => "timed out",
            DAT_CANCELLED => "cancelled",
            DAT_OTHER => "error",
            DAT_END => "no more items",
        }
    }
}

/// A failed call: its status and a detail for `dat_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: dat_status,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn new(status: dat_status, detail: impl Into<String>) -> Self {
        Failure {
            status,
            detail: detail.into(),
        }
    }

    /// A NULL pointer where `name` is required.
    pub(crate) fn null(name: &str) -> Self {
        Self::new(
            dat_status::DAT_NULL_ARGUMENT,
            format!("argument `{name}` is NULL"),
        )
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(dat_status::DAT_INVALID_ARGUMENT, detail)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        use dat_status::*;
        let status = match &e {
            Error::Storage(_) => DAT_STORAGE,
            Error::Io(_) => DAT_IO,
            Error::Corrupt(_) => DAT_CORRUPT,
            Error::UnsupportedVersion { .. } => DAT_UNSUPPORTED_VERSION,
            Error::Decode(_) => DAT_DECODE,
            Error::InvalidProof(_) => DAT_INVALID_PROOF,
            Error::StaleProof(_) => DAT_STALE_PROOF,
            Error::InvalidSignature(_) => DAT_INVALID_SIGNATURE,
            Error::InvalidManifest(_) => DAT_INVALID_MANIFEST,
            Error::InvalidRequest(_) => DAT_INVALID_REQUEST,
            Error::MissingNode(_) => DAT_MISSING_NODE,
            Error::NotAvailable(_) => DAT_NOT_AVAILABLE,
            Error::OutOfBounds(_) => DAT_OUT_OF_BOUNDS,
            Error::NotWritable(_) => DAT_NOT_WRITABLE,
            Error::SnapshotStale(_) => DAT_SNAPSHOT_STALE,
            Error::ForkMismatch { .. } => DAT_FORK_MISMATCH,
            Error::Conflict(_) => DAT_CONFLICT,
            Error::NotFound(_) => DAT_NOT_FOUND,
            Error::Handshake(_) => DAT_HANDSHAKE,
            Error::Protocol(_) => DAT_PROTOCOL,
            Error::FrameTooLarge { .. } => DAT_FRAME_TOO_LARGE,
            Error::InvalidArgument(_) => DAT_INVALID_ARGUMENT,
            Error::Timeout(_) => DAT_TIMEOUT,
            Error::Cancelled(_) => DAT_CANCELLED,
            _ => DAT_OTHER,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::from(Error::Io(e))
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `detail` as the calling thread's last failure.
pub(crate) fn set_last_error(detail: String) {
    // `try_with`: a call during thread teardown simply leaves no detail.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = detail);
}

/// Writes the fixed message of `status` into `buf` (`len` bytes) as a NUL-terminated string,
/// truncated to fit (a message is for people), and its length without the NUL to `*written`.
/// An unknown number gives "unknown status". Returns DAT_NULL_ARGUMENT when `buf` or `written`
/// is NULL; `len` 0 writes nothing and sets `*written` to 0.
#[unsafe(no_mangle)]
pub extern "C" fn dat_status_message(
    status: u32,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> dat_status {
    catch_status(|| {
        let msg = ALL
            .iter()
            .find(|s| **s as u32 == status)
            .map_or("unknown status", |s| s.message());
        let written = out_ref(written, "written")?;
        // SAFETY: the caller promises `buf` points to `len` writable bytes (checked for NULL).
        let n = unsafe { write_c_str(buf, len, msg) }?;
        written.write(n);
        Ok(())
    })
}

/// Writes the detail of the calling thread's last failed call (empty if none failed yet) into
/// `buf` (`len` bytes) as a NUL-terminated string, truncated to fit, and its length without the
/// NUL to `*written`. Successful calls leave the detail as it was, like `errno`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_last_error(buf: *mut c_char, len: usize, written: *mut usize) -> dat_status {
    catch_status(|| {
        let detail = LAST_ERROR.with(|e| e.borrow().clone());
        let written = out_ref(written, "written")?;
        // SAFETY: the caller promises `buf` points to `len` writable bytes (checked for NULL).
        let n = unsafe { write_c_str(buf, len, &detail) }?;
        written.write(n);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn status_numbers_are_unique_and_each_has_a_message() {
        let mut numbers = HashSet::new();
        let mut messages = HashSet::new();
        for s in ALL {
            assert!(numbers.insert(*s as u32), "{s:?} reuses a number");
            assert!(!s.message().is_empty(), "{s:?} has no message");
            assert!(messages.insert(s.message()), "{s:?} shares its message");
        }
        assert_eq!(dat_status::DAT_OK as u32, 0);
        assert_eq!(dat_status::DAT_PANIC as u32, 1);
    }

    #[test]
    fn every_status_is_listed() {
        // A variant missing from ALL would have no entry in dat_status_message: count the
        // variants in the source to catch it.
        let src = include_str!("status.rs");
        let start = src.find("pub enum dat_status {").unwrap();
        let end = start + src[start..].find("\n}").unwrap();
        let variants = src[start..end]
            .lines()
            .filter(|l| l.trim_start().starts_with("DAT_"))
            .count();
        assert_eq!(variants, ALL.len());
    }

    #[test]
    fn status_message_writes_a_terminated_string_and_truncates() {
        let mut buf = [0x55 as c_char; 64];
        let mut n = 0usize;
        let s = dat_status_message(
            dat_status::DAT_TIMEOUT as u32,
            buf.as_mut_ptr(),
            buf.len(),
            &mut n,
        );
        assert_eq!(s, dat_status::DAT_OK);
        assert_eq!(n, "timed out".len());
        assert_eq!(buf[n], 0);
        let mut small = [0x55 as c_char; 4];
        let s = dat_status_message(
            dat_status::DAT_TIMEOUT as u32,
            small.as_mut_ptr(),
            small.len(),
            &mut n,
        );
        assert_eq!(s, dat_status::DAT_OK);
        assert_eq!((n, small[3]), (3, 0));
        let s = dat_status_message(9999, buf.as_mut_ptr(), buf.len(), std::ptr::null_mut());
        assert_eq!(s, dat_status::DAT_NULL_ARGUMENT);
    }
}

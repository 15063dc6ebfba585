//! Core errors → JavaScript errors with a stable code.
//!
//! The message of every error this addon raises starts with its code, as Node's own errors do
//! (`ENOENT: not found: no file at /a.txt`); `index.js` sets `err.code` from it.

use dat_core::Error;
use napi::Status;

/// Result of a call into the addon.
pub(crate) type Result<T> = napi::Result<T>;

/// The stable code of a core error.
pub(crate) fn code(e: &Error) -> &'static str {
    match e {
        Error::Storage(_) => "ESTORAGE",
        Error::Io(io) => io_code(io.kind()),
        Error::Corrupt(_) => "ECORRUPT",
        Error::UnsupportedVersion { .. } => "EVERSION",
        Error::Decode(_) => "EDECODE",
        Error::InvalidProof(_) => "EPROOF",
        Error::StaleProof(_) => "ESTALE",
        Error::InvalidSignature(_) => "ESIGNATURE",
        Error::InvalidManifest(_) => "EMANIFEST",
        Error::InvalidRequest(_) => "EREQUEST",
        Error::MissingNode(_) => "ENODE",
        Error::NotAvailable(_) => "ENOTAVAILABLE",
        Error::OutOfBounds(_) => "ERANGE",
        Error::NotWritable(_) => "ENOTWRITABLE",
        Error::SnapshotStale(_) => "ESNAPSHOT",
        Error::ForkMismatch { .. } => "EFORK",
        Error::Conflict(_) => "ECONFLICT",
        Error::NotFound(_) => "ENOENT",
        Error::Handshake(_) => "EHANDSHAKE",
        Error::Protocol(_) => "EPROTO",
        Error::FrameTooLarge { .. } => "EMSGSIZE",
        Error::InvalidArgument(_) => "EINVAL",
        Error::Timeout(_) => "ETIMEDOUT",
        Error::Cancelled(_) => "ECANCELED",
        _ => "EUNKNOWN",
    }
}

fn io_code(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind as K;
    match kind {
        K::NotFound => "ENOENT",
        K::PermissionDenied => "EACCES",
        K::ConnectionRefused => "ECONNREFUSED",
        K::ConnectionReset => "ECONNRESET",
        K::ConnectionAborted => "ECONNABORTED",
        K::AddrInUse => "EADDRINUSE",
        K::AddrNotAvailable => "EADDRNOTAVAIL",
        K::TimedOut => "ETIMEDOUT",
        K::InvalidInput => "EINVAL",
        _ => "EIO",
    }
}

/// A JavaScript error for a core error.
pub(crate) fn js(e: Error) -> napi::Error {
    coded(code(&e), e)
}

/// A JavaScript error with `code` and a message.
pub(crate) fn coded(code: &str, msg: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("{code}: {msg}"))
}

/// `EINVAL`: a bad argument.
pub(crate) fn invalid(msg: impl std::fmt::Display) -> napi::Error {
    coded("EINVAL", format!("invalid argument: {msg}"))
}

/// `ECLOSED`: the object (or its store) was closed.
pub(crate) fn closed(what: &str) -> napi::Error {
    coded("ECLOSED", format!("the {what} is closed"))
}

/// A non-negative integer argument (JavaScript numbers arrive as `i64`).
pub(crate) fn index(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| invalid(format!("{what} must be >= 0, got {v}")))
}

/// A `u64` as a JavaScript number.
pub(crate) fn num(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A 32-byte key.
pub(crate) fn key32(b: &[u8]) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| invalid(format!("a key is 32 bytes, got {}", b.len())))
}

/// Runs a blocking core call on the runtime's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> dat_core::Result<T> + Send + 'static,
{
    napi::bindgen_prelude::spawn_blocking(f)
        .await
        .map_err(|e| coded("EPANIC", format!("libdat failed: {e}")))?
        .map_err(js)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_with_the_code() {
        let e = js(Error::NotFound("no file at /a".into()));
        assert_eq!(e.reason, "ENOENT: not found: no file at /a");
        let e = js(Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(e.reason.starts_with("ECONNREFUSED: "));
    }
}

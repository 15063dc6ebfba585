//! Core errors as the exception classes of `libdat.errors`, with the core's message.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyType};

/// What a binding call can fail with; converts into the right Python exception.
#[derive(Debug)]
pub enum Error {
    /// An error of the core: mapped by variant.
    Core(dat_core::Error),
    /// The core error a shared handle (a range, a download) ended with.
    Shared(std::sync::Arc<dat_core::Error>),
    /// A closed store or handle (`libdat.ClosedError`).
    Closed(String),
    /// A Python exception raised while converting arguments or calling back.
    Py(PyErr),
}

/// Result of a binding call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<dat_core::Error> for Error {
    fn from(e: dat_core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Py(e) => e,
            Error::Core(e) => Python::attach(|py| core_err(py, &e)),
            Error::Shared(e) => Python::attach(|py| core_err(py, &e)),
            Error::Closed(m) => Python::attach(|py| raise(py, "ClosedError", m)),
        }
    }
}

/// The `libdat.errors` class for a core error.
fn class_of(e: &dat_core::Error) -> &'static str {
    use dat_core::Error as E;
    match e {
        E::NotFound(_) => "NotFound",
        E::NotAvailable(_) | E::MissingNode(_) => "NotAvailable",
        E::Timeout(_) => "TimeoutError",
        E::Cancelled(_) => "CancelledError",
        E::InvalidArgument(_) | E::InvalidRequest(_) => "InvalidArgument",
        E::OutOfBounds(_) => "OutOfBounds",
        E::NotWritable(_) => "NotWritable",
        E::Corrupt(_) | E::UnsupportedVersion { .. } => "CorruptionError",
        E::InvalidProof(_)
        | E::StaleProof(_)
        | E::InvalidSignature(_)
        | E::InvalidManifest(_)
        | E::ForkMismatch { .. }
        | E::Conflict(_)
        | E::SnapshotStale(_) => "VerificationError",
        E::Protocol(_) | E::Handshake(_) | E::FrameTooLarge { .. } | E::Decode(_) => {
            "ProtocolError"
        }
        E::Storage(_) => "StorageError",
        E::Io(_) => "IoError",
        // a kind this version does not know yet
        _ => "DatError",
    }
}

/// The exception for a core error: its class, and the core's message.
pub fn core_err(py: Python<'_>, e: &dat_core::Error) -> PyErr {
    raise(py, class_of(e), e.to_string())
}

/// An instance of `libdat.errors.<name>` carrying `message`.
pub fn raise(py: Python<'_>, name: &str, message: String) -> PyErr {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let class = ERRORS
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("libdat.errors")?.unbind()))
        .and_then(|m| m.bind(py).getattr(name))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(class) => PyErr::from_type(class, (message,)),
        Err(e) => PyTypeError::new_err(format!(
            "libdat.errors.{name} is missing ({e}); the error was: {message}"
        )),
    }
}

/// A closed-store error.
pub fn closed() -> Error {
    Error::Closed("the store is closed".into())
}

/// `InvalidArgument` from the binding's own argument checks.
pub fn invalid(message: impl Into<String>) -> Error {
    Error::Core(dat_core::Error::InvalidArgument(message.into()))
}

//! libdat's Python package: the private native module `libdat._native`, re-exported by the
//! `libdat` package (`python/libdat/`).
//!
//! This crate only converts types, maps core errors to exception classes and bridges blocking,
//! callback and asyncio styles; everything else is `dat-core`. Blocking calls release the GIL.

mod aio;
mod completion;
mod drive;
mod errors;
mod events;
mod log;
mod runtime;
mod store;

use pyo3::prelude::*;

/// The native part of libdat. Use the `libdat` package; this module is private.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::drive::{
        Blob, Change, Changes, Cursor, Diff, Download, Drive, Entry, FileVersion, ReadStream,
    };
    #[pymodule_export]
    use super::events::{Event, Events, Subscription};
    #[pymodule_export]
    use super::log::{Log, Range};
    #[pymodule_export]
    use super::runtime::_shutdown;
    #[pymodule_export]
    use super::store::{Connection, Server, Store};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}

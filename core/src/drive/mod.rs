//! Hyperdrive 13: a versioned filesystem over two logs, a [`crate::bee`] of entries (the
//! metadata log) and [`crate::blobs`] of file contents (the content log).

pub mod entry;
pub mod keys;
pub mod path;

pub use entry::{BlobRef, Entry};

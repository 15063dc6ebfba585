//! # dat-core
//!
//! The core of libdat: a Hypercore 11 compatible signed append-only log, stored on LMDB.
//!
//! - [`Store`]: one directory holding many logs, with named logs derived as corestore 7 derives them.
//! - [`Log`]: append, get (verified), seek, proofs, snapshot, truncate, clear.
//! - [`proof`]: the `data` message proofs, generated and verified byte-compatibly with the reference.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bee;
pub mod blobs;
pub mod crypto;
pub mod drive;
pub mod encoding;
mod error;
pub mod flat_tree;
pub mod log;
pub mod manifest;
pub mod proof;
pub mod replication;
pub mod scheduler;
mod storage;
pub mod store;
pub mod tree;
pub mod wire;

pub use crypto::KeyPair;
pub use error::{Error, Result};
pub use log::{Applied, Log, LogEvent, Snapshot};
pub use manifest::{Manifest, Verifier};
pub use store::{Durability, LogOptions, Store, StoreOptions};
pub use tree::Node;

/// The README's examples run as doctests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

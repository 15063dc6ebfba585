//! Errors of the log and its storage.

use crate::encoding::DecodeError;

/// Result with libdat's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Messages name the log, block or node concerned where one is known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage layer (LMDB) failed.
    #[error("storage error: {0}")]
    Storage(#[from] dat_lmdb::heed::Error),
    /// A file-system operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not match what was written (bit rot, a tampered file, a foreign file).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The store was written by a newer, incompatible version of libdat.
    #[error("unsupported store version {found} (this libdat reads version {supported})")]
    UnsupportedVersion {
        /// Version found on disk.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// Bytes from a peer or a caller could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A proof's hashes do not chain to a trusted node.
    #[error("invalid proof: {0}")]
    InvalidProof(String),
    /// A proof is valid but was made against an older state of this log; nothing was applied.
    #[error("stale proof: {0}")]
    StaleProof(String),
    /// A signature does not verify against the log's key.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// A manifest does not match the log key or is not supported.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A proof or block request that cannot be answered.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A tree node needed for the operation is not stored.
    #[error("tree node {0} is not stored locally")]
    MissingNode(u64),
    /// A block is not stored locally (never downloaded, or cleared).
    #[error("block {0} is not available locally")]
    NotAvailable(u64),
    /// An index or byte offset beyond the log.
    #[error("out of bounds: {0}")]
    OutOfBounds(String),
    /// The log cannot be written (no secret key, or a snapshot).
    #[error("not writable: {0}")]
    NotWritable(String),
    /// A snapshot's blocks were replaced by a truncation.
    #[error(
        "snapshot is stale: the log was truncated below block {0} after the snapshot was taken"
    )]
    SnapshotStale(u64),
    /// The proof is for another fork of the log.
    #[error("fork mismatch: the proof is for fork {remote}, this log is at fork {local}")]
    ForkMismatch {
        /// The local fork.
        local: u64,
        /// The proof's fork.
        remote: u64,
    },
    /// A verified signed state conflicts with the local one (the writer forked the log).
    #[error("conflict: {0}")]
    Conflict(String),
    /// No log with that key or name in the store.
    #[error("not found: {0}")]
    NotFound(String),
    /// The Noise handshake or the transport encryption failed (wrong key, tampered or replayed
    /// bytes, a peer speaking something else).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A peer broke the wire protocol (malformed frame or message, unknown channel, bad capability).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A frame over the size limit.
    #[error("frame of {size} bytes is over the {max} byte limit")]
    FrameTooLarge {
        /// The announced size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A bad argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A wait ran out of time (a block or range that no peer delivered in time).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A wait was abandoned (its range was withdrawn, or the log closed).
    #[error("cancelled: {0}")]
    Cancelled(String),
}

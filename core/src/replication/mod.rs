//! Replication: logs kept in sync with peers over the hypercore 11 wire protocol.
//!
//! [`Connection`] is the sans-IO state machine of one connection (usable from any event loop, and
//! from C through a byte pump); [`driver`] runs connections over tokio streams (TCP, Unix sockets,
//! in-memory pipes).
mod channel;
mod connection;
pub mod driver;
mod replicator;
mod transport;

pub use channel::PeerLimits;
pub use connection::{
    Connection, ConnectionEvent, ConnectionOptions, MAX_DEFERRED_REQUESTS, PROTOCOL, Received,
};
pub use replicator::{Prioritized, Replicator};
pub use transport::SecureTransport;

//! The hypercore 11 wire stack as sans-IO state machines (bytes and events in, frames and actions
//! out), so it can be driven without sockets in tests and from C by a caller with its own loop:
//!
//! ```text
//! byte stream
//!  └─ framing: uint24le length-prefixed frames
//!      ├─ noise: Noise XX handshake (Ed25519 DH, BLAKE2b, ChaChaPoly)
//!      └─ secret_stream: libsodium secretstream (XChaCha20-Poly1305) per frame
//!          └─ protomux: channels (open, reject, close, batch)
//!              └─ messages: the hypercore/alpha channel's ten messages
//! ```
pub mod framing;
pub mod messages;
pub mod noise;
pub mod protomux;
pub mod secret_stream;

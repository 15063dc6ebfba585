//! The `hypercore/alpha` protomux channel: its open handshake, the replication capability and the
//! ten channel messages, laid out byte for byte as `hypercore/lib/messages.js` (`wire.*`) does.
//!
//! Decoding follows the reference's leniency where it matters for compatibility (trailing bytes are
//! ignored, `noData`/`want`/`unwant` may omit their trailing flags) and never panics: malformed
//! input is an error, and every allocation is bounded by the input's length.

use crate::crypto::{caps, keyed_hash};
use crate::encoding::{DecodeError, Decoder, Encoder};
use crate::error::{Error, Result};
use crate::proof::{Data, RequestBlock, RequestSeek, RequestUpgrade};

/// Protocol name of the replication channel.
pub const PROTOCOL: &str = "hypercore/alpha";

/// The older protocol name the reference registers as an alias of [`PROTOCOL`].
pub const PROTOCOL_ALIAS: &str = "hypercore";

/// Number of message types on the channel. The reference's protomux silently drops messages whose
/// type is at or past this (so a newer peer may add types); [`Message::decode`] refuses them, so a
/// caller wanting the same forward compatibility checks the type first.
pub const MESSAGE_TYPES: u64 = 10;

/// `noData` reason: the block is not available.
pub const NO_DATA_NOT_AVAILABLE: u64 = 1;
/// `noData` reason: the request was invalid.
pub const NO_DATA_INVALID_REQUEST: u64 = 2;

/// The channel handshake carried in the protomux `open`: `uint flags (bit0 seeks) || fixed32 capability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The sender can answer seek requests.
    pub seeks: bool,
    /// Proof that the sender knows the log key, bound to this connection: see [`capability`].
    pub capability: [u8; 32],
}

impl Handshake {
    /// The compact encoding (33 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(34);
        e.uint(u64::from(self.seeks)).raw(&self.capability);
        e.finish()
    }

    /// Decodes a handshake; trailing bytes are ignored, as the reference does.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(bytes);
        let flags = d.uint("handshake flags")?;
        let capability = d.fixed32("handshake capability")?;
        Ok(Handshake {
            seeks: flags & 1 != 0,
            capability,
        })
    }
}

/// The replication capability (`lib/caps.js replicate`): keyed BLAKE2b-256 with the Noise handshake
/// hash (64 bytes) as key, over `REPLICATE_INITIATOR || key` for the initiator and
/// `REPLICATE_RESPONDER || key` for the responder. Each side sends the one for its own role.
pub fn capability(is_initiator: bool, key: &[u8; 32], handshake_hash: &[u8; 64]) -> [u8; 32] {
    let ns = if is_initiator {
        caps::replicate_initiator()
    } else {
        caps::replicate_responder()
    };
    keyed_hash(handshake_hash, &[ns, key])
}

/// Checks the capability a remote sent: it must be the one for the remote's role, i.e. the
/// opposite of `local_is_initiator`. A mismatch is a [`Error::Protocol`] error (the reference
/// throws `INVALID_CAPABILITY`).
pub fn verify_capability(
    local_is_initiator: bool,
    key: &[u8; 32],
    handshake_hash: &[u8; 64],
    remote: &[u8; 32],
) -> Result<()> {
    let expected = capability(!local_is_initiator, key, handshake_hash);
    // Constant-time comparison: fold the differences.
    let diff = expected
        .iter()
        .zip(remote.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(Error::Protocol(
            "remote sent an invalid replication capability".into(),
        ))
    }
}

/// `sync` (type 0): the sender's state of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sync {
    /// The sender's fork.
    pub fork: u64,
    /// The sender's verified length.
    pub length: u64,
    /// How much of the receiver's log the sender has verified (`lengthAcked`).
    pub remote_length: u64,
    /// Flag 1: the sender may be asked for an upgrade.
    pub can_upgrade: bool,
    /// Flag 2: the sender uploads.
    pub uploading: bool,
    /// Flag 4: the sender downloads.
    pub downloading: bool,
    /// Flag 8: the sender has the manifest.
    pub has_manifest: bool,
    /// Flag 16: the sender accepts pushed (unsolicited) data.
    pub allow_push: bool,
}

/// `request` (type 1): a proof request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request {
    /// Request id (1-based, reused after the answer).
    pub id: u64,
    /// The requester's fork.
    pub fork: u64,
    /// Flag 1: a block with its proof.
    pub block: Option<RequestBlock>,
    /// Flag 2: a tree node with its proof.
    pub hash: Option<RequestBlock>,
    /// Flag 4: the block holding a byte offset.
    pub seek: Option<RequestSeek>,
    /// Flag 8: a signed upgrade.
    pub upgrade: Option<RequestUpgrade>,
    /// Flag 16: send the manifest too.
    pub manifest: bool,
    /// Flag 32 when non-zero: the request's priority.
    pub priority: u64,
}

impl Request {
    /// The proof-relevant part, as [`crate::proof::generate`] takes it.
    pub fn proof_request(&self) -> crate::proof::ProofRequest {
        crate::proof::ProofRequest {
            fork: self.fork,
            block: self.block,
            hash: self.hash,
            seek: self.seek,
            upgrade: self.upgrade,
        }
    }
}

/// `cancel` (type 2): the requester no longer wants an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancel {
    /// Id of the request cancelled.
    pub request: u64,
}

/// `noData` (type 4): a request cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoData {
    /// Id of the request answered.
    pub request: u64,
    /// Why, 0 when unspecified: [`NO_DATA_NOT_AVAILABLE`], [`NO_DATA_INVALID_REQUEST`].
    pub reason: u64,
}

/// `want` (type 5) and `unwant` (type 6): a range of blocks the sender (no longer) wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
    /// Flag 1: any block of the range will do.
    pub any: bool,
}

/// `bitfield` (type 7): which blocks of a range the sender has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    /// First block (a multiple of 32).
    pub start: u64,
    /// One bit per block from `start`, little-endian 32-bit words.
    pub bitfield: Vec<u32>,
}

/// `range` (type 8): the sender has (or dropped) a contiguous range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// Flag 1: the blocks were dropped rather than added.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks (sent as flag 2 rather than a number when it is 1).
    pub length: u64,
}

/// `extension` (type 9): an application extension message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    /// Extension name (`""` means the same name as the previous one).
    pub name: String,
    /// The extension's bytes (everything after the name).
    pub message: Vec<u8>,
}

/// One message of the `hypercore/alpha` channel.
// `Data` is much bigger than the rest; messages are built and consumed one at a time, never stored
// in bulk, so boxing it would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 0.
    Sync(Sync),
    /// Type 1.
    Request(Request),
    /// Type 2.
    Cancel(Cancel),
    /// Type 3: a proof, see [`crate::proof`].
    Data(Data),
    /// Type 4.
    NoData(NoData),
    /// Type 5.
    Want(Want),
    /// Type 6.
    Unwant(Want),
    /// Type 7.
    Bitfield(Bitfield),
    /// Type 8.
    Range(Range),
    /// Type 9.
    Extension(Extension),
}

/// Type numbers of the channel messages (their index in the reference's `messages` array).
pub mod types {
    /// `sync`.
    pub const SYNC: u64 = 0;
    /// `request`.
    pub const REQUEST: u64 = 1;
    /// `cancel`.
    pub const CANCEL: u64 = 2;
    /// `data`.
    pub const DATA: u64 = 3;
    /// `noData`.
    pub const NO_DATA: u64 = 4;
    /// `want`.
    pub const WANT: u64 = 5;
    /// `unwant`.
    pub const UNWANT: u64 = 6;
    /// `bitfield`.
    pub const BITFIELD: u64 = 7;
    /// `range`.
    pub const RANGE: u64 = 8;
    /// `extension`.
    pub const EXTENSION: u64 = 9;
}

impl Message {
    /// The message's type number.
    pub fn message_type(&self) -> u64 {
        match self {
            Message::Sync(_) => types::SYNC,
            Message::Request(_) => types::REQUEST,
            Message::Cancel(_) => types::CANCEL,
            Message::Data(_) => types::DATA,
            Message::NoData(_) => types::NO_DATA,
            Message::Want(_) => types::WANT,
            Message::Unwant(_) => types::UNWANT,
            Message::Bitfield(_) => types::BITFIELD,
            Message::Range(_) => types::RANGE,
            Message::Extension(_) => types::EXTENSION,
        }
    }

    /// The reference's name of the message.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Sync(_) => "sync",
            Message::Request(_) => "request",
            Message::Cancel(_) => "cancel",
            Message::Data(_) => "data",
            Message::NoData(_) => "noData",
            Message::Want(_) => "want",
            Message::Unwant(_) => "unwant",
            Message::Bitfield(_) => "bitfield",
            Message::Range(_) => "range",
            Message::Extension(_) => "extension",
        }
    }

    /// The type number and the payload (what follows the type in a protomux message).
    pub fn encode(&self) -> (u64, Vec<u8>) {
        let mut e = Encoder::new();
        self.encode_into(&mut e);
        (self.message_type(), e.finish())
    }

    /// Appends the payload (what follows the type in a protomux message) to `e`.
    pub fn encode_into(&self, e: &mut Encoder) {
        match self {
            Message::Sync(m) => {
                let flags = u64::from(m.can_upgrade)
                    | u64::from(m.uploading) << 1
                    | u64::from(m.downloading) << 2
                    | u64::from(m.has_manifest) << 3
                    | u64::from(m.allow_push) << 4;
                e.uint(flags)
                    .uint(m.fork)
                    .uint(m.length)
                    .uint(m.remote_length);
            }
            Message::Request(m) => {
                let flags = u64::from(m.block.is_some())
                    | u64::from(m.hash.is_some()) << 1
                    | u64::from(m.seek.is_some()) << 2
                    | u64::from(m.upgrade.is_some()) << 3
                    | u64::from(m.manifest) << 4
                    | u64::from(m.priority != 0) << 5;
                e.uint(flags).uint(m.id).uint(m.fork);
                if let Some(b) = &m.block {
                    e.uint(b.index).uint(b.nodes);
                }
                if let Some(h) = &m.hash {
                    e.uint(h.index).uint(h.nodes);
                }
                if let Some(s) = &m.seek {
                    e.uint(s.bytes).uint(s.padding);
                }
                if let Some(u) = &m.upgrade {
                    e.uint(u.start).uint(u.length);
                }
                if m.priority != 0 {
                    e.uint(m.priority);
                }
            }
            Message::Cancel(m) => {
                e.uint(m.request);
            }
            Message::Data(m) => m.encode_into(e),
            Message::NoData(m) => {
                e.uint(m.request).uint(u64::from(m.reason != 0));
                if m.reason != 0 {
                    e.uint(m.reason);
                }
            }
            Message::Want(m) | Message::Unwant(m) => {
                e.uint(m.start).uint(m.length);
                if m.any {
                    e.uint(1);
                }
            }
            Message::Bitfield(m) => {
                e.buf.reserve(10 + 4 * m.bitfield.len());
                e.uint(m.start).uint(m.bitfield.len() as u64);
                for w in &m.bitfield {
                    e.u32_le(*w);
                }
            }
            Message::Range(m) => {
                let flags = u64::from(m.drop) | u64::from(m.length == 1) << 1;
                e.uint(flags).uint(m.start);
                if m.length != 1 {
                    e.uint(m.length);
                }
            }
            Message::Extension(m) => {
                e.string(&m.name).raw(&m.message);
            }
        }
    }

    /// Decodes the payload of a message of type `message_type`. Trailing bytes are ignored, as the
    /// reference does. A type past 9 is an [`Error::Protocol`] error; malformed bytes are
    /// [`Error::Decode`] errors.
    pub fn decode(message_type: u64, payload: &[u8]) -> Result<Message> {
        let mut d = Decoder::new(payload);
        let m = match message_type {
            types::SYNC => {
                let flags = d.uint("sync flags")?;
                Message::Sync(Sync {
                    fork: d.uint("sync fork")?,
                    length: d.uint("sync length")?,
                    remote_length: d.uint("sync remote length")?,
                    can_upgrade: flags & 1 != 0,
                    uploading: flags & 2 != 0,
                    downloading: flags & 4 != 0,
                    has_manifest: flags & 8 != 0,
                    allow_push: flags & 16 != 0,
                })
            }
            types::REQUEST => {
                let flags = d.uint("request flags")?;
                let id = d.uint("request id")?;
                let fork = d.uint("request fork")?;
                let block = if flags & 1 != 0 {
                    Some(request_block(&mut d, "request block")?)
                } else {
                    None
                };
                let hash = if flags & 2 != 0 {
                    Some(request_block(&mut d, "request hash")?)
                } else {
                    None
                };
                let seek = if flags & 4 != 0 {
                    Some(RequestSeek {
                        bytes: d.uint("request seek bytes")?,
                        padding: d.uint("request seek padding")?,
                    })
                } else {
                    None
                };
                let upgrade = if flags & 8 != 0 {
                    Some(RequestUpgrade {
                        start: d.uint("request upgrade start")?,
                        length: d.uint("request upgrade length")?,
                    })
                } else {
                    None
                };
                let priority = if flags & 32 != 0 {
                    d.uint("request priority")?
                } else {
                    0
                };
                Message::Request(Request {
                    id,
                    fork,
                    block,
                    hash,
                    seek,
                    upgrade,
                    manifest: flags & 16 != 0,
                    priority,
                })
            }
            types::CANCEL => Message::Cancel(Cancel {
                request: d.uint("cancel request")?,
            }),
            types::DATA => Message::Data(Data::decode(payload)?),
            types::NO_DATA => {
                let request = d.uint("noData request")?;
                let flags = if d.is_empty() {
                    0
                } else {
                    d.uint("noData flags")?
                };
                let reason = if flags & 1 != 0 {
                    d.uint("noData reason")?
                } else {
                    0
                };
                Message::NoData(NoData { request, reason })
            }
            types::WANT => Message::Want(want(&mut d)?),
            types::UNWANT => Message::Unwant(want(&mut d)?),
            types::BITFIELD => {
                let start = d.uint("bitfield start")?;
                let words = d.uint("bitfield length")?;
                // Bound the allocation by the bytes actually present.
                let available = (d.remaining() / 4) as u64;
                if words > available {
                    return Err(DecodeError {
                        what: "bitfield words (more than the message holds)",
                    }
                    .into());
                }
                let mut bitfield = Vec::with_capacity(words as usize);
                for _ in 0..words {
                    bitfield.push(d.u32_le("bitfield word")?);
                }
                Message::Bitfield(Bitfield { start, bitfield })
            }
            types::RANGE => {
                let flags = d.uint("range flags")?;
                let start = d.uint("range start")?;
                let length = if flags & 2 != 0 {
                    1
                } else {
                    d.uint("range length")?
                };
                Message::Range(Range {
                    drop: flags & 1 != 0,
                    start,
                    length,
                })
            }
            types::EXTENSION => {
                // The reference decodes names with replacement characters rather than failing.
                let name = String::from_utf8_lossy(d.buffer("extension name")?).into_owned();
                Message::Extension(Extension {
                    name,
                    message: d.rest().to_vec(),
                })
            }
            t => {
                return Err(Error::Protocol(format!(
                    "unknown hypercore message type {t}"
                )));
            }
        };
        Ok(m)
    }
}

fn request_block(
    d: &mut Decoder<'_>,
    what: &'static str,
) -> std::result::Result<RequestBlock, DecodeError> {
    Ok(RequestBlock {
        index: d.uint(what)?,
        nodes: d.uint(what)?,
    })
}

fn want(d: &mut Decoder<'_>) -> std::result::Result<Want, DecodeError> {
    let start = d.uint("want start")?;
    let length = d.uint("want length")?;
    let flags = if d.is_empty() {
        0
    } else {
        d.uint("want flags")?
    };
    Ok(Want {
        start,
        length,
        any: flags & 1 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(m: Message) -> Vec<u8> {
        let (t, bytes) = m.encode();
        assert_eq!(t, m.message_type());
        assert_eq!(Message::decode(t, &bytes).unwrap(), m, "{}", m.name());
        bytes
    }

    #[test]
    fn optional_fields_follow_the_reference() {
        // want: flags omitted when 0.
        assert_eq!(
            rt(Message::Want(Want {
                start: 3,
                length: 4,
                any: false
            })),
            vec![3, 4]
        );
        assert_eq!(
            rt(Message::Unwant(Want {
                start: 3,
                length: 4,
                any: true
            })),
            vec![3, 4, 1]
        );
        // range: length omitted when 1 (flag 2).
        assert_eq!(
            rt(Message::Range(Range {
                drop: true,
                start: 7,
                length: 1
            })),
            vec![3, 7]
        );
        assert_eq!(
            rt(Message::Range(Range {
                drop: false,
                start: 0,
                length: 3
            })),
            vec![0, 0, 3]
        );
        // noData: flags always written, reason only when non-zero.
        assert_eq!(
            rt(Message::NoData(NoData {
                request: 5,
                reason: 0
            })),
            vec![5, 0]
        );
        assert_eq!(
            rt(Message::NoData(NoData {
                request: 5,
                reason: NO_DATA_NOT_AVAILABLE
            })),
            vec![5, 1, 1]
        );
        // Lenient decodes: noData/want without their trailing flags.
        assert_eq!(
            Message::decode(types::NO_DATA, &[9]).unwrap(),
            Message::NoData(NoData {
                request: 9,
                reason: 0
            })
        );
        assert_eq!(
            Message::decode(types::WANT, &[1, 2]).unwrap(),
            Message::Want(Want {
                start: 1,
                length: 2,
                any: false
            })
        );
        // request: priority only with flag 32.
        assert_eq!(
            rt(Message::Request(Request {
                id: 1,
                block: Some(RequestBlock { index: 1, nodes: 1 }),
                priority: 1,
                ..Request::default()
            })),
            vec![0x21, 1, 0, 1, 1, 1]
        );
        // bitfield: uint32array.
        assert_eq!(
            rt(Message::Bitfield(Bitfield {
                start: 32,
                bitfield: vec![1, 0x8000_0000]
            })),
            vec![32, 2, 1, 0, 0, 0, 0, 0, 0, 0x80]
        );
        // extension: string + raw.
        assert_eq!(
            rt(Message::Extension(Extension {
                name: "ab".into(),
                message: vec![1, 2, 3]
            })),
            vec![2, b'a', b'b', 1, 2, 3]
        );
    }

    #[test]
    fn hostile_bitfield_is_bounded() {
        // 2^30 words claimed in 10 bytes.
        let bytes = [0, 0xfe, 0, 0, 0, 0x40, 1, 2, 3, 4];
        assert!(matches!(
            Message::decode(types::BITFIELD, &bytes),
            Err(Error::Decode(_))
        ));
        let bytes = [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(Message::decode(types::BITFIELD, &bytes).is_err());
    }

    #[test]
    fn unknown_type_is_a_protocol_error() {
        assert!(matches!(Message::decode(10, &[]), Err(Error::Protocol(_))));
        assert!(matches!(
            Message::decode(u64::MAX, &[1, 2]),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn handshake_round_trip() {
        let h = Handshake {
            seeks: true,
            capability: [7; 32],
        };
        let b = h.encode();
        assert_eq!(b.len(), 33);
        assert_eq!(b[0], 1);
        assert_eq!(Handshake::decode(&b).unwrap(), h);
        assert!(Handshake::decode(&b[..32]).is_err());
    }
}

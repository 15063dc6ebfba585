//! Protomux: many channels over one message stream, as `protomux` 3.x (`index.js`) lays them out.
//!
//! [`Mux`] is a sans-IO state machine for one connection. Its input is the stream's messages (the
//! plaintexts of the secret stream, one protomux frame each) given to [`Mux::receive`]; its outputs
//! are [`Event`]s ([`Mux::next_event`]) and frames to send ([`Mux::next_frame`]).
//!
//! ```text
//! channel message   uint channelId (the sender's own id, ≥ 1) || uint type || payload
//! open              00 01 || uint localId || string protocol || optionalBuffer id || handshake
//! reject            00 02 || uint remoteId (the id the rejected open used)
//! close             00 03 || uint localId
//! batch             00 00 || uint channelId || { uint len || uint type || payload }*
//!                   (a zero len switches channel: the next uint is the new id; id 0 carries
//!                   control messages)
//! ```
//!
//! Channel ids are per direction: each side numbers the channels it opens (1, 2, …, reusing the
//! ids of closed channels) and writes its own id on everything it sends; the receiver maps the
//! remote's ids to its channels. A channel is paired once both sides have sent `open` with the same
//! `(protocol, id)`. An open nobody has asked for becomes [`Event::OpenRequest`], which the
//! application accepts by opening the same channel or refuses with [`Mux::reject`].
//!
//! While [corked](Mux::cork), everything sent (control messages included) is queued and goes out
//! as one batch frame on the last [`uncork`](Mux::uncork), byte for byte as protomux builds it.
//! The reference also corks by itself while it handles a received batch holding more than one
//! message, so its answers go out batched; a caller wanting the same wraps its handling of the
//! events of such a frame in `cork`/`uncork`.

use std::collections::{HashMap, VecDeque};

use super::framing::MAX_FRAME;
use crate::encoding::{DecodeError, Decoder, Encoder};
use crate::error::{Error, Result};

/// A batch frame is sent before it grows past this many bytes (protomux `MAX_BATCH`, 8 MiB).
pub const MAX_BATCH: usize = 8 * 1024 * 1024;

/// Bytes the secret stream adds to each message (libsodium secretstream `ABYTES`).
pub const SECRET_STREAM_ABYTES: usize = 17;

/// The default largest protomux frame: what fits in one secret-stream frame of [`MAX_FRAME`] bytes.
pub const DEFAULT_MAX_FRAME: usize = MAX_FRAME - SECRET_STREAM_ABYTES;

/// Accounting overhead per buffered message, as protomux counts it (`byteSize`).
const BUFFERED_OVERHEAD: usize = 512;

/// A channel opened on this [`Mux`]. Unlike the wire ids, which are reused after a close, a handle
/// is never reused, so a stale handle cannot reach a newer channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(u64);

impl ChannelId {
    /// The handle's number (unique within its `Mux`; not a wire id).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Resource limits on what a remote can make a [`Mux`] hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame sent or accepted, 64 bytes to [`MAX_FRAME`]. Default [`DEFAULT_MAX_FRAME`].
    pub max_frame: usize,
    /// Highest channel id the remote may open. Default 2²⁰.
    pub max_remote_channels: u64,
    /// Remote opens waiting for the application to accept or reject them. Default 16 384.
    pub max_pending_opens: usize,
    /// Bytes held for those (their handshakes and the messages that arrive on them before they are
    /// accepted, 512 bytes of overhead counted per item as protomux does). Default 32 MiB.
    pub max_pending_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_remote_channels: 1 << 20,
            max_pending_opens: 16_384,
            max_pending_bytes: 32 << 20,
        }
    }
}

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A channel opened locally is paired: the remote opened it too. `handshake` is the rest of
    /// the remote's `open` after the id (for `hypercore/alpha`, a
    /// [`Handshake`](super::messages::Handshake)).
    Opened {
        /// The channel.
        channel: ChannelId,
        /// The remote's handshake bytes.
        handshake: Vec<u8>,
    },
    /// The remote opened a channel not opened here. Accept it with [`Mux::open`] with the same
    /// protocol and id (it pairs at once, giving [`Event::Opened`]), or refuse it with
    /// [`Mux::reject`]. Messages the remote sends on it meanwhile are held (up to
    /// [`Limits::max_pending_bytes`]) and delivered after the `Opened`.
    OpenRequest {
        /// The remote's id for the channel (what [`Mux::reject`] takes).
        remote_id: u64,
        /// Protocol name.
        protocol: String,
        /// Channel id bytes (empty when none).
        id: Vec<u8>,
        /// The remote's handshake bytes.
        handshake: Vec<u8>,
    },
    /// The remote closed a channel it had asked to open before it was accepted or rejected. The
    /// request is gone (and has been answered with a reject so the remote can reuse its id).
    OpenRequestClosed {
        /// The remote's id of the withdrawn request.
        remote_id: u64,
    },
    /// A message on a paired channel.
    Message {
        /// The channel.
        channel: ChannelId,
        /// The message type (index in the channel's message list).
        message_type: u64,
        /// The payload after the type.
        payload: Vec<u8>,
    },
    /// The remote closed a paired channel. It is closed here too (no close is sent back).
    Closed {
        /// The channel.
        channel: ChannelId,
    },
    /// The remote refused a channel opened here. It is closed.
    Rejected {
        /// The channel.
        channel: ChannelId,
    },
}

type Key = (String, Vec<u8>);

#[derive(Debug, Default)]
struct Info {
    /// Local channels open with this key.
    opened: usize,
    /// Local ids whose `open` the remote has not answered yet, oldest first.
    outgoing: VecDeque<u64>,
    /// Remote ids of unanswered remote opens, oldest first.
    incoming: VecDeque<u64>,
}

#[derive(Debug)]
struct ChannelState {
    key: Key,
    local_id: u64,
    /// 0 until paired.
    remote_id: u64,
}

#[derive(Debug)]
struct PendingOpen {
    key: Key,
    handshake: Vec<u8>,
    messages: Vec<(u64, Vec<u8>)>,
    /// Accounted bytes (open record and messages).
    bytes: usize,
}

#[derive(Debug)]
enum Remote {
    Paired(ChannelId),
    Pending(Box<PendingOpen>),
}

#[derive(Debug, Default)]
struct Batch {
    buf: Vec<u8>,
    /// Channel id of the last entry.
    last: Option<u64>,
}

/// What [`Mux::receive_with`] hands each message to: (channel, message type, payload).
pub type OnMessage<'a> = dyn FnMut(ChannelId, u64, &[u8]) -> Result<()> + 'a;

/// Where messages go while a frame is read: the caller's [`OnMessage`], or the event queue.
type Sink<'a, 'b> = Option<&'a mut OnMessage<'b>>;

/// Entries of at least this many bytes have a 5-byte length in a batch (compact-encoding uses
/// 1 byte below 0xfd, 3 bytes to 0xffff, then 5 bytes to 2³²−1).
const LARGE_ENTRY: usize = 0x10000;

/// Capacity a batch that starts with a large entry gets at once (bounded by the frame size).
const LARGE_BATCH_RESERVE: usize = 512 << 10;

fn uint_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn malformed(e: DecodeError) -> Error {
    Error::Protocol(format!("malformed protomux frame: {e}"))
}

/// One connection's protomux state. See the [module docs](self).
#[derive(Debug)]
pub struct Mux {
    limits: Limits,
    next_handle: u64,
    channels: HashMap<ChannelId, ChannelState>,
    /// Index = local id − 1.
    local: Vec<Option<ChannelId>>,
    /// Free local indexes (local id − 1), reused last-freed first like protomux.
    free: Vec<u64>,
    /// Index = remote id − 1; `None` for ids closed or rejected.
    remote: Vec<Option<Remote>>,
    infos: HashMap<Key, Info>,
    /// Local id → key, for the ids in some `Info::outgoing`.
    awaiting: HashMap<u64, Key>,
    corked: u32,
    batch: Option<Batch>,
    frames: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    pending_opens: usize,
    pending_bytes: usize,
}

impl Default for Mux {
    fn default() -> Self {
        Self::new()
    }
}

impl Mux {
    /// A mux with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A mux with the given limits (`max_frame` is kept between 64 bytes and [`MAX_FRAME`]).
    pub fn with_limits(mut limits: Limits) -> Self {
        limits.max_frame = limits.max_frame.clamp(64, MAX_FRAME);
        Mux {
            limits,
            next_handle: 1,
            channels: HashMap::new(),
            local: Vec::new(),
            free: Vec::new(),
            remote: Vec::new(),
            infos: HashMap::new(),
            awaiting: HashMap::new(),
            corked: 0,
            batch: None,
            frames: VecDeque::new(),
            events: VecDeque::new(),
            pending_opens: 0,
            pending_bytes: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    // -----------------------------------------------------------------------------------------
    // Outputs
    // -----------------------------------------------------------------------------------------

    /// The next event, oldest first.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True when received events wait for [`Mux::next_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Bytes queued for sending: the frames waiting for [`Mux::next_frame`] and the open batch.
    pub fn queued_bytes(&self) -> usize {
        self.frames.iter().map(Vec::len).sum::<usize>()
            + self.batch.as_ref().map_or(0, |b| b.buf.len())
    }

    /// Every queued event, oldest first.
    pub fn drain_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// The next frame to send (one secret-stream message), oldest first.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// Every frame queued for sending, oldest first.
    pub fn drain_frames(&mut self) -> Vec<Vec<u8>> {
        self.frames.drain(..).collect()
    }

    // -----------------------------------------------------------------------------------------
    // Local actions
    // -----------------------------------------------------------------------------------------

    /// Opens a channel: sends `open` with `handshake` as the channel handshake bytes. If the
    /// remote already asked for this `(protocol, id)` ([`Event::OpenRequest`]), the channel pairs
    /// with the oldest such request at once ([`Event::Opened`] is queued, then any messages held
    /// for it); otherwise it pairs when the remote's `open` arrives.
    ///
    /// `id` `None` and `Some(&[])` are the same id. Only one channel per `(protocol, id)` may be
    /// open at a time ([`Error::InvalidArgument`] otherwise).
    pub fn open(
        &mut self,
        protocol: &str,
        id: Option<&[u8]>,
        handshake: &[u8],
    ) -> Result<ChannelId> {
        let key: Key = (protocol.to_owned(), id.unwrap_or_default().to_vec());
        if self.infos.get(&key).is_some_and(|i| i.opened > 0) {
            return Err(Error::InvalidArgument(format!(
                "channel {protocol:?} with this id is already open"
            )));
        }
        let index = match self.free.last() {
            Some(&i) => i,
            None => self.local.len() as u64,
        };
        let local_id = index + 1;
        let mut e = Encoder::with_capacity(8 + protocol.len() + key.1.len() + handshake.len());
        e.byte(0)
            .byte(1)
            .uint(local_id)
            .string(protocol)
            .optional_buffer(Some(&key.1))
            .raw(handshake);
        let frame = e.finish();
        // Corked, it goes out as a batch entry on channel 0: `00 00 00 || uint len || 01 …`.
        let size = if self.batch.is_some() {
            3 + uint_len(frame.len() as u64 - 1) + frame.len() - 1
        } else {
            frame.len()
        };
        self.check_frame(size)?;

        // Commit.
        if self.free.pop().is_none() {
            self.local.push(None);
        }
        let channel = ChannelId(self.next_handle);
        self.next_handle += 1;
        self.local[index as usize] = Some(channel);
        let info = self.infos.entry(key.clone()).or_default();
        info.opened += 1;
        let paired_with = info.incoming.pop_front();
        if paired_with.is_none() {
            info.outgoing.push_back(local_id);
            self.awaiting.insert(local_id, key.clone());
        }
        self.channels.insert(
            channel,
            ChannelState {
                key,
                local_id,
                remote_id: 0,
            },
        );
        if let Some(remote_id) = paired_with {
            let slot = &mut self.remote[(remote_id - 1) as usize];
            let Some(Remote::Pending(pending)) = slot.take() else {
                unreachable!("incoming ids always name pending remote opens")
            };
            *slot = Some(Remote::Paired(channel));
            self.pending_opens -= 1;
            self.pending_bytes -= pending.bytes;
            if let Some(c) = self.channels.get_mut(&channel) {
                c.remote_id = remote_id;
            }
            let PendingOpen {
                handshake,
                messages,
                ..
            } = *pending;
            self.events.push_back(Event::Opened { channel, handshake });
            for (message_type, payload) in messages {
                self.events.push_back(Event::Message {
                    channel,
                    message_type,
                    payload,
                });
            }
        }
        self.write0(frame)?;
        Ok(channel)
    }

    /// Sends a message on an open channel (paired or not yet: the remote holds messages for an
    /// open it has not answered). While corked it joins the batch.
    pub fn send(&mut self, channel: ChannelId, message_type: u64, payload: &[u8]) -> Result<()> {
        self.send_with(channel, message_type, payload.len(), |e| {
            e.raw(payload);
        })
    }

    /// Like [`send`](Self::send), with the payload written by `encode` straight into the frame,
    /// or into the batch while corked: a large payload (a block) is not copied on its way.
    /// `min_len` is a lower bound of the payload's length (0 if unknown).
    pub fn send_with(
        &mut self,
        channel: ChannelId,
        message_type: u64,
        min_len: usize,
        encode: impl FnOnce(&mut Encoder),
    ) -> Result<()> {
        let local_id = self.channel(channel)?.local_id;
        if self.batch.is_none() {
            let mut e =
                Encoder::with_capacity(uint_len(local_id) + uint_len(message_type) + min_len + 64);
            e.uint(local_id).uint(message_type);
            encode(&mut e);
            let frame = e.finish();
            self.check_frame(frame.len())?;
            self.frames.push_back(frame);
            return Ok(());
        }
        if min_len < LARGE_ENTRY {
            let mut e = Encoder::with_capacity(uint_len(message_type) + min_len + 64);
            e.uint(message_type);
            encode(&mut e);
            return self.push_batch(local_id, &e.finish());
        }
        self.push_large(local_id, message_type, min_len, encode)
    }

    /// [`Mux::send_with`] of an entry of at least [`LARGE_ENTRY`] bytes while corked. Its length
    /// then always takes 5 bytes (`0xfe`, u32 LE), so the entry is encoded after a placeholder
    /// that is filled in afterwards.
    fn push_large(
        &mut self,
        id: u64,
        message_type: u64,
        min_len: usize,
        encode: impl FnOnce(&mut Encoder),
    ) -> Result<()> {
        let max_frame = self.limits.max_frame;
        let switch = 1 + uint_len(id);
        let Some(batch) = self.batch.as_mut() else {
            unreachable!("push_large is only called while corked")
        };
        // a batch that is full, or that this entry cannot join, goes out first
        if !batch.buf.is_empty()
            && (batch.buf.len() >= MAX_BATCH || batch.buf.len() + switch + 5 + min_len > max_frame)
        {
            let full = std::mem::take(&mut batch.buf);
            batch.last = None;
            self.frames.push_back(full);
        }
        let Some(batch) = self.batch.as_mut() else {
            unreachable!("still corked")
        };
        let last = batch.last;
        let mut e = Encoder {
            buf: std::mem::take(&mut batch.buf),
        };
        let mark = e.buf.len();
        if e.buf.is_empty() {
            // room for a few such entries at once: growing by doubling would copy them again
            let room = (2 + switch + 5 + min_len + 64).max(LARGE_BATCH_RESERVE.min(max_frame));
            e.buf.reserve(room);
            e.byte(0).byte(0).uint(id);
        } else {
            e.buf.reserve(switch + 5 + min_len + 64);
            if last != Some(id) {
                e.byte(0).uint(id);
            }
        }
        let len_at = e.buf.len();
        e.buf.extend_from_slice(&[0xfe, 0, 0, 0, 0]);
        let entry_at = e.buf.len();
        e.uint(message_type);
        encode(&mut e);
        let entry_len = e.buf.len() - entry_at;
        let mut buf = e.finish();
        if buf.len() <= max_frame {
            debug_assert!(entry_len >= LARGE_ENTRY, "min_len overstated the payload");
            buf[len_at + 1..entry_at].copy_from_slice(&(entry_len as u32).to_le_bytes());
            batch.buf = buf;
            batch.last = Some(id);
            return Ok(());
        }
        // too large for the frame: take the entry back out; alone in a batch it fails there
        let entry = buf[entry_at..].to_vec();
        buf.truncate(mark);
        batch.buf = buf;
        batch.last = last;
        self.push_batch(id, &entry)
    }

    /// Closes a channel: sends `close`. Closing a closed (or unknown) channel does nothing.
    pub fn close(&mut self, channel: ChannelId) -> Result<()> {
        let Some(state) = self.channels.remove(&channel) else {
            return Ok(());
        };
        let mut e = Encoder::with_capacity(2 + uint_len(state.local_id));
        e.byte(0).byte(3).uint(state.local_id);
        if state.remote_id > 0 {
            self.remote[(state.remote_id - 1) as usize] = None;
            // Paired: the remote has acknowledged the id, it can be reused now. Otherwise it is
            // reused once the remote answers the open (reject or open).
            self.free.push(state.local_id - 1);
        }
        self.local[(state.local_id - 1) as usize] = None;
        self.closed_local(&state.key);
        self.write0(e.finish())
    }

    /// Refuses a remote open ([`Event::OpenRequest`]): sends `reject` and drops what was held for it.
    pub fn reject(&mut self, remote_id: u64) -> Result<()> {
        let index = remote_id
            .checked_sub(1)
            .filter(|&i| i < self.remote.len() as u64)
            .ok_or_else(|| Error::InvalidArgument(format!("no open request {remote_id}")))?;
        if !matches!(self.remote[index as usize], Some(Remote::Pending(_))) {
            return Err(Error::InvalidArgument(format!(
                "no open request {remote_id}"
            )));
        }
        self.drop_pending(remote_id);
        let mut e = Encoder::with_capacity(2 + uint_len(remote_id));
        e.byte(0).byte(2).uint(remote_id);
        self.write0(e.finish())
    }

    /// Starts (or nests) a batch: until the matching [`uncork`](Self::uncork), everything sent is
    /// queued into one batch frame.
    pub fn cork(&mut self) {
        self.corked += 1;
        if self.corked == 1 {
            self.batch = Some(Batch::default());
        }
    }

    /// Ends a [`cork`](Self::cork); the last one sends the batch (if anything was queued). An
    /// uncork without a cork does nothing.
    pub fn uncork(&mut self) {
        if self.corked == 0 {
            return;
        }
        self.corked -= 1;
        if self.corked == 0
            && let Some(batch) = self.batch.take()
            && !batch.buf.is_empty()
        {
            self.frames.push_back(batch.buf);
        }
    }

    /// True between a `cork` and its matching `uncork`.
    pub fn is_corked(&self) -> bool {
        self.corked > 0
    }

    // -----------------------------------------------------------------------------------------
    // Queries
    // -----------------------------------------------------------------------------------------

    /// True while the channel is open locally (paired or not).
    pub fn is_open(&self, channel: ChannelId) -> bool {
        self.channels.contains_key(&channel)
    }

    /// True once the channel is paired (both sides opened it).
    pub fn is_paired(&self, channel: ChannelId) -> bool {
        self.channels.get(&channel).is_some_and(|c| c.remote_id > 0)
    }

    /// The id this side writes on the channel's messages.
    pub fn local_id(&self, channel: ChannelId) -> Option<u64> {
        self.channels.get(&channel).map(|c| c.local_id)
    }

    /// The id the remote writes on the channel's messages, once paired.
    pub fn remote_id(&self, channel: ChannelId) -> Option<u64> {
        self.channels
            .get(&channel)
            .and_then(|c| (c.remote_id > 0).then_some(c.remote_id))
    }

    /// The channel's protocol and id bytes.
    pub fn channel_key(&self, channel: ChannelId) -> Option<(&str, &[u8])> {
        self.channels
            .get(&channel)
            .map(|c| (c.key.0.as_str(), c.key.1.as_slice()))
    }

    /// True when a channel with this protocol and id is open locally (protomux `opened`).
    pub fn opened(&self, protocol: &str, id: Option<&[u8]>) -> bool {
        let key: Key = (protocol.to_owned(), id.unwrap_or_default().to_vec());
        self.infos.get(&key).is_some_and(|i| i.opened > 0)
    }

    /// Number of channels open locally.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// True when no local id is in use (protomux `isIdle`).
    pub fn is_idle(&self) -> bool {
        self.local.len() == self.free.len()
    }

    // -----------------------------------------------------------------------------------------
    // Input
    // -----------------------------------------------------------------------------------------

    /// Processes one incoming frame (one secret-stream message). Empty frames (keep-alives) are
    /// ignored. Events are queued in order; on error, the events of the frame's earlier messages
    /// stay queued and the connection should be closed.
    pub fn receive(&mut self, frame: &[u8]) -> Result<()> {
        self.receive_inner(frame, &mut None)
    }

    /// Like [`receive`](Self::receive), but while no event is queued the messages of paired
    /// channels go to `on_message` (channel, type, payload) as they are read, without being
    /// copied out of the frame; from the first queued event on they are queued as
    /// [`Event::Message`] so that order is kept. An error from `on_message` ends the frame.
    pub fn receive_with(&mut self, frame: &[u8], on_message: &mut OnMessage<'_>) -> Result<()> {
        self.receive_inner(frame, &mut Some(on_message))
    }

    fn receive_inner(&mut self, frame: &[u8], sink: &mut Sink<'_, '_>) -> Result<()> {
        if frame.is_empty() {
            return Ok(());
        }
        if frame.len() > self.limits.max_frame {
            return Err(Error::FrameTooLarge {
                size: frame.len(),
                max: self.limits.max_frame,
            });
        }
        let mut d = Decoder::new(frame);
        let remote_id = d.uint("channel id").map_err(malformed)?;
        self.dispatch(remote_id, &mut d, false, sink)
    }

    /// Handles `uint type || payload` received on `remote_id` (0 = control).
    fn dispatch(
        &mut self,
        remote_id: u64,
        d: &mut Decoder<'_>,
        in_batch: bool,
        sink: &mut Sink<'_, '_>,
    ) -> Result<()> {
        let message_type = d.uint("message type").map_err(malformed)?;
        if remote_id != 0 {
            return self.on_message(remote_id, message_type, d.rest(), sink);
        }
        match message_type {
            0 if in_batch => Err(Error::Protocol("batch inside a batch".into())),
            0 => self.on_batch(d, sink),
            1 => self.on_open(d),
            2 => self.on_reject(d),
            3 => self.on_close(d),
            // Unknown control messages are ignored, as protomux does.
            _ => Ok(()),
        }
    }

    fn on_batch(&mut self, d: &mut Decoder<'_>, sink: &mut Sink<'_, '_>) -> Result<()> {
        let mut remote_id = d.uint("batch channel id").map_err(malformed)?;
        while !d.is_empty() {
            let len = d.uint("batch entry length").map_err(malformed)?;
            if len == 0 {
                remote_id = d.uint("batch channel id").map_err(malformed)?;
                continue;
            }
            if len > d.remaining() as u64 {
                return Err(Error::Protocol(format!(
                    "batch entry of {len} bytes past the end of the frame"
                )));
            }
            let entry = d.take(len as usize, "batch entry").map_err(malformed)?;
            self.dispatch(remote_id, &mut Decoder::new(entry), true, sink)?;
        }
        Ok(())
    }

    fn on_open(&mut self, d: &mut Decoder<'_>) -> Result<()> {
        let remote_id = d.uint("open channel id").map_err(malformed)?;
        let protocol = d.string("open protocol").map_err(malformed)?;
        let id = d
            .optional_buffer("open id")
            .map_err(malformed)?
            .unwrap_or_default();
        let handshake = d.rest();
        if remote_id == 0 {
            return Err(Error::Protocol("remote opened channel 0".into()));
        }
        if remote_id > self.limits.max_remote_channels {
            return Err(Error::Protocol(format!(
                "remote opened channel {remote_id}, over the limit of {}",
                self.limits.max_remote_channels
            )));
        }
        let index = usize::try_from(remote_id - 1).unwrap_or(usize::MAX);
        // The remote may grow its ids by one at a time, or reuse a closed one.
        let grows = index == self.remote.len();
        if !grows && self.remote.get(index).is_none_or(Option::is_some) {
            return Err(Error::Protocol(format!(
                "invalid open: channel id {remote_id} is in use or skips ids"
            )));
        }
        let key: Key = (protocol.to_owned(), id.to_vec());

        if let Some(info) = self.infos.get_mut(&key)
            && let Some(local_id) = info.outgoing.pop_front()
        {
            if grows {
                self.remote.push(None);
            }
            self.awaiting.remove(&local_id);
            match self.local[(local_id - 1) as usize] {
                // Closed here before the remote answered: the id is free now, the open is moot
                // (and the remote's messages on it will be ignored).
                None => {
                    self.free.push(local_id - 1);
                    self.gc(&key);
                }
                Some(channel) => {
                    self.remote[index] = Some(Remote::Paired(channel));
                    if let Some(c) = self.channels.get_mut(&channel) {
                        c.remote_id = remote_id;
                    }
                    self.events.push_back(Event::Opened {
                        channel,
                        handshake: handshake.to_vec(),
                    });
                }
            }
            return Ok(());
        }

        let bytes = BUFFERED_OVERHEAD + protocol.len() + id.len() + handshake.len();
        if self.pending_opens >= self.limits.max_pending_opens {
            return Err(Error::Protocol(format!(
                "more than {} channel opens awaiting an answer",
                self.limits.max_pending_opens
            )));
        }
        self.account_pending(bytes)?;
        self.pending_opens += 1;
        if grows {
            self.remote.push(None);
        }
        self.remote[index] = Some(Remote::Pending(Box::new(PendingOpen {
            key: key.clone(),
            handshake: handshake.to_vec(),
            messages: Vec::new(),
            bytes,
        })));
        self.infos
            .entry(key)
            .or_default()
            .incoming
            .push_back(remote_id);
        self.events.push_back(Event::OpenRequest {
            remote_id,
            protocol: protocol.to_owned(),
            id: id.to_vec(),
            handshake: handshake.to_vec(),
        });
        Ok(())
    }

    fn on_reject(&mut self, d: &mut Decoder<'_>) -> Result<()> {
        let local_id = d.uint("reject channel id").map_err(malformed)?;
        let Some(key) = self.awaiting.remove(&local_id) else {
            return Err(Error::Protocol(format!(
                "invalid reject of channel {local_id}, which awaits no answer"
            )));
        };
        if let Some(info) = self.infos.get_mut(&key)
            && let Some(pos) = info.outgoing.iter().position(|&i| i == local_id)
        {
            info.outgoing.remove(pos);
        }
        self.free.push(local_id - 1);
        let slot = &mut self.local[(local_id - 1) as usize];
        if let Some(channel) = slot.take() {
            self.channels.remove(&channel);
            self.closed_local(&key);
            self.events.push_back(Event::Rejected { channel });
        } else {
            self.gc(&key);
        }
        Ok(())
    }

    fn on_close(&mut self, d: &mut Decoder<'_>) -> Result<()> {
        let remote_id = d.uint("close channel id").map_err(malformed)?;
        if remote_id == 0 {
            return Ok(());
        }
        let index = usize::try_from(remote_id - 1).unwrap_or(usize::MAX);
        match self.remote.get(index) {
            // Unknown or already closed here: nothing to do (protomux ignores these too).
            None | Some(None) => Ok(()),
            Some(Some(Remote::Paired(channel))) => {
                let channel = *channel;
                self.remote[index] = None;
                if let Some(state) = self.channels.remove(&channel) {
                    self.free.push(state.local_id - 1);
                    self.local[(state.local_id - 1) as usize] = None;
                    self.closed_local(&state.key);
                }
                self.events.push_back(Event::Closed { channel });
                Ok(())
            }
            Some(Some(Remote::Pending(_))) => {
                // Protomux leaves such a request for the application to answer; answering it with
                // a reject right away lets the remote reuse its id and spares the application.
                self.drop_pending(remote_id);
                self.events
                    .push_back(Event::OpenRequestClosed { remote_id });
                let mut e = Encoder::with_capacity(2 + uint_len(remote_id));
                e.byte(0).byte(2).uint(remote_id);
                self.write0(e.finish())
            }
        }
    }

    fn on_message(
        &mut self,
        remote_id: u64,
        message_type: u64,
        payload: &[u8],
        sink: &mut Sink<'_, '_>,
    ) -> Result<()> {
        let index = usize::try_from(remote_id - 1).unwrap_or(usize::MAX);
        let limit = self.limits.max_pending_bytes;
        match self.remote.get_mut(index) {
            None => Err(Error::Protocol(format!(
                "message on channel {remote_id}, which the remote never opened"
            ))),
            // Closed here: the remote may not know yet, ignore (as protomux does).
            Some(None) => Ok(()),
            Some(Some(Remote::Paired(channel))) => {
                let channel = *channel;
                if self.events.is_empty()
                    && let Some(f) = sink.as_mut()
                {
                    return f(channel, message_type, payload);
                }
                self.events.push_back(Event::Message {
                    channel,
                    message_type,
                    payload: payload.to_vec(),
                });
                Ok(())
            }
            Some(Some(Remote::Pending(pending))) => {
                let bytes = BUFFERED_OVERHEAD + payload.len();
                if self.pending_bytes + bytes > limit {
                    return Err(Error::Protocol(format!(
                        "more than {limit} bytes held for unanswered channel opens"
                    )));
                }
                self.pending_bytes += bytes;
                pending.bytes += bytes;
                pending.messages.push((message_type, payload.to_vec()));
                Ok(())
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------------

    fn channel(&self, channel: ChannelId) -> Result<&ChannelState> {
        self.channels
            .get(&channel)
            .ok_or_else(|| Error::InvalidArgument("channel is closed".into()))
    }

    fn check_frame(&self, size: usize) -> Result<()> {
        if size > self.limits.max_frame {
            Err(Error::FrameTooLarge {
                size,
                max: self.limits.max_frame,
            })
        } else {
            Ok(())
        }
    }

    fn account_pending(&mut self, bytes: usize) -> Result<()> {
        if self.pending_bytes + bytes > self.limits.max_pending_bytes {
            return Err(Error::Protocol(format!(
                "more than {} bytes held for unanswered channel opens",
                self.limits.max_pending_bytes
            )));
        }
        self.pending_bytes += bytes;
        Ok(())
    }

    /// Forgets a pending remote open (rejected or withdrawn).
    fn drop_pending(&mut self, remote_id: u64) {
        let index = (remote_id - 1) as usize;
        let Some(Remote::Pending(pending)) = self.remote[index].take() else {
            return;
        };
        self.pending_opens -= 1;
        self.pending_bytes -= pending.bytes;
        if let Some(info) = self.infos.get_mut(&pending.key)
            && let Some(pos) = info.incoming.iter().position(|&i| i == remote_id)
        {
            info.incoming.remove(pos);
        }
        self.gc(&pending.key);
    }

    /// Bookkeeping after a local channel with `key` closed.
    fn closed_local(&mut self, key: &Key) {
        if let Some(info) = self.infos.get_mut(key) {
            info.opened = info.opened.saturating_sub(1);
        }
        self.gc(key);
    }

    fn gc(&mut self, key: &Key) {
        if self
            .infos
            .get(key)
            .is_some_and(|i| i.opened == 0 && i.outgoing.is_empty() && i.incoming.is_empty())
        {
            self.infos.remove(key);
        }
    }

    /// Sends a control frame (`00 type …`), into the batch on channel 0 when corked.
    fn write0(&mut self, frame: Vec<u8>) -> Result<()> {
        if self.batch.is_some() {
            return self.push_batch(0, &frame[1..]);
        }
        self.frames.push_back(frame);
        Ok(())
    }

    /// Appends `entry` (`uint type || payload`) for channel `id` to the batch, as protomux
    /// `_pushBatch` / `_sendBatch` lay it out.
    fn push_batch(&mut self, id: u64, entry: &[u8]) -> Result<()> {
        let max_frame = self.limits.max_frame;
        let Some(batch) = self.batch.as_mut() else {
            unreachable!("push_batch is only called while corked")
        };
        let body = uint_len(entry.len() as u64) + entry.len();
        let switch = 1 + uint_len(id);
        if 1 + switch + body > max_frame {
            return Err(Error::FrameTooLarge {
                size: 1 + switch + body,
                max: max_frame,
            });
        }
        if !batch.buf.is_empty() {
            let grow = if batch.last == Some(id) {
                body
            } else {
                switch + body
            };
            // Protomux starts a new batch once one reaches MAX_BATCH; also keep every batch
            // within one frame.
            if batch.buf.len() >= MAX_BATCH || batch.buf.len() + grow > max_frame {
                let full = std::mem::take(&mut batch.buf);
                batch.last = None;
                self.frames.push_back(full);
            }
        }
        let mut e = Encoder {
            buf: std::mem::take(&mut batch.buf),
        };
        if e.buf.is_empty() {
            e.buf.reserve(2 + switch + body);
            e.byte(0).byte(0).uint(id);
        } else if batch.last != Some(id) {
            e.byte(0).uint(id);
        }
        e.uint(entry.len() as u64).raw(entry);
        batch.buf = e.finish();
        batch.last = Some(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Mux, Mux) {
        (Mux::new(), Mux::new())
    }

    /// Delivers every frame queued on `from` to `to`.
    fn pump(from: &mut Mux, to: &mut Mux) {
        for f in from.drain_frames() {
            to.receive(&f).unwrap();
        }
    }

    #[test]
    fn open_frame_layout() {
        let mut m = Mux::new();
        let c = m.open("p", Some(&[0xaa, 0xbb]), &[9, 9]).unwrap();
        assert_eq!(m.local_id(c), Some(1));
        assert_eq!(
            m.drain_frames(),
            vec![vec![0, 1, 1, 1, b'p', 2, 0xaa, 0xbb, 9, 9]]
        );
        let c2 = m.open("q", None, &[]).unwrap();
        assert_eq!(m.drain_frames(), vec![vec![0, 1, 2, 1, b'q', 0]]);
        assert_eq!(m.local_id(c2), Some(2));
    }

    #[test]
    fn crossing_opens_pair() {
        let (mut a, mut b) = pair();
        let ca = a.open("x", None, b"ha").unwrap();
        let cb = b.open("x", None, b"hb").unwrap();
        pump(&mut a, &mut b);
        pump(&mut b, &mut a);
        assert_eq!(
            a.drain_events(),
            vec![Event::Opened {
                channel: ca,
                handshake: b"hb".to_vec()
            }]
        );
        assert_eq!(
            b.drain_events(),
            vec![Event::Opened {
                channel: cb,
                handshake: b"ha".to_vec()
            }]
        );
        a.send(ca, 4, b"hi").unwrap();
        assert_eq!(a.frames.back().unwrap(), &vec![1, 4, b'h', b'i']);
        pump(&mut a, &mut b);
        assert_eq!(
            b.drain_events(),
            vec![Event::Message {
                channel: cb,
                message_type: 4,
                payload: b"hi".to_vec()
            }]
        );
    }

    #[test]
    fn batch_layout_matches_protomux() {
        let mut m = Mux::new();
        m.cork();
        let c1 = m.open("a", None, &[]).unwrap();
        let c2 = m.open("b", None, &[]).unwrap();
        m.send(c1, 0, &[1]).unwrap();
        m.send(c1, 1, &[]).unwrap();
        m.send(c2, 2, &[7, 7]).unwrap();
        m.close(c1).unwrap();
        m.uncork();
        let frames = m.drain_frames();
        assert_eq!(
            frames,
            vec![vec![
                0, 0, 0, // batch, channel 0
                5, 1, 1, 1, b'a', 0, // open a (local 1)
                5, 1, 2, 1, b'b', 0, // open b (local 2)
                0, 1, // switch to 1
                2, 0, 1, // type 0, [1]
                1, 1, // type 1, []
                0, 2, // switch to 2
                3, 2, 7, 7, // type 2, [7,7]
                0, 0, // switch to 0
                2, 3, 1, // close 1
            ]]
        );
    }

    /// Large entries (≥ 64 KiB) are written straight into the batch after a 5-byte length; the
    /// layout is protomux's (`0xfe` and a u32 is how compact-encoding writes such a length), a
    /// batch that cannot take one goes out first, and one too large for a frame is an error that
    /// leaves the batch as it was.
    #[test]
    fn large_entries_join_the_batch_in_protomux_layout() {
        let mut m = Mux::with_limits(Limits {
            max_frame: 200_000,
            ..Limits::default()
        });
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        m.cork();
        let c1 = m.open("a", None, &[]).unwrap();
        m.drain_frames();
        m.send(c1, 0, &[1]).unwrap();
        m.send(c1, 3, &big).unwrap();
        m.send_with(c1, 4, 65_536, |e| {
            e.raw(&big);
        })
        .unwrap();
        // 3 + 3 + 70,006 + 70,006 bytes so far: a third one does not fit in 200,000
        m.send(c1, 5, &big).unwrap();
        // understated length: found too big only once written, moved to a batch of its own
        let err = m.send_with(c1, 6, 65_536, |e| {
            e.raw(&big).raw(&big).raw(&big);
        });
        assert!(matches!(err, Err(Error::FrameTooLarge { .. })), "{err:?}");
        m.send(c1, 7, &[2]).unwrap();
        m.uncork();
        let frames = m.drain_frames();
        let entry = |t: u8| {
            let mut v = vec![0xfe];
            v.extend_from_slice(&(70_001u32).to_le_bytes());
            v.push(t);
            v.extend_from_slice(&big);
            v
        };
        let mut first = vec![0, 0, 0, 5, 1, 1, 1, b'a', 0, 0, 1, 2, 0, 1];
        first.extend(entry(3));
        first.extend(entry(4));
        let mut second = vec![0, 0, 1];
        second.extend(entry(5));
        second.extend([2, 7, 2]);
        assert_eq!(frames.len(), 2);
        assert!(frames[0] == first, "first batch differs");
        assert!(frames[1] == second, "second batch differs");
        // and the other side reads them back
        let mut r = Mux::with_limits(Limits {
            max_frame: 200_000,
            ..Limits::default()
        });
        let rc = r.open("a", None, &[]).unwrap();
        for f in &frames {
            r.receive(f).unwrap();
        }
        let got: Vec<(u64, usize)> = r
            .drain_events()
            .into_iter()
            .filter_map(|ev| match ev {
                Event::Message {
                    channel,
                    message_type,
                    payload,
                } if channel == rc => Some((message_type, payload.len())),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![(0, 1), (3, 70_000), (4, 70_000), (5, 70_000), (7, 1)]
        );
    }

    /// `receive_with` hands messages to the callback, uncopied, only while no event is queued:
    /// after an event (here a remote open) the frame's later messages are queued behind it.
    #[test]
    fn receive_with_keeps_messages_in_order_with_events() {
        let (mut a, mut b) = pair();
        let ca = a.open("x", None, &[]).unwrap();
        let cb = b.open("x", None, &[]).unwrap();
        pump(&mut a, &mut b);
        pump(&mut b, &mut a);
        a.drain_events();
        b.drain_events();
        a.cork();
        a.send(ca, 4, b"one").unwrap();
        a.open("y", None, &[]).unwrap();
        a.send(ca, 5, b"two").unwrap();
        a.uncork();
        let frames = a.drain_frames();
        assert_eq!(frames.len(), 1, "one batch");
        let mut seen = Vec::new();
        b.receive_with(&frames[0], &mut |channel, t, payload| {
            seen.push((channel, t, payload.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(cb, 4, b"one".to_vec())]);
        let events = b.drain_events();
        assert!(
            matches!(&events[0], Event::OpenRequest { protocol, .. } if protocol == "y"),
            "{events:?}"
        );
        assert_eq!(
            events[1],
            Event::Message {
                channel: cb,
                message_type: 5,
                payload: b"two".to_vec()
            }
        );
        // an error from the callback ends the frame
        a.send(ca, 6, b"x").unwrap();
        let f = a.drain_frames();
        let err = b.receive_with(&f[0], &mut |_, _, _| Err(Error::Protocol("no".into())));
        assert!(matches!(err, Err(Error::Protocol(_))));
    }
}

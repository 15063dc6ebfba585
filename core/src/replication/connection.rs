//! One replication connection, sans IO: the secure transport, protomux, and a `hypercore/alpha`
//! channel per log. Feed socket bytes to [`Connection::receive`], write what
//! [`Connection::take_output`] returns, and tell it about local log changes with
//! [`Connection::on_log_changed`]. Any `Err` from these means the peer must be dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::crypto::{Hash, KeyPair};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::scheduler::PeerId;
use crate::store::Store;
use crate::wire::messages::{self, Message};
use crate::wire::protomux::{ChannelId, Event, Mux};

use super::channel::{Channel, Outbox, PeerLimits, open_handshake};
use super::transport::SecureTransport;

/// The protocol name of hypercore replication channels.
pub const PROTOCOL: &str = "hypercore/alpha";

/// Options of a connection.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Largest frame accepted from the peer (the protocol's own limit is 2^24 - 1 bytes).
    pub max_frame: usize,
    /// For logs the peer opens: fetch only what is prioritized (true), or the whole log (false,
    /// the default).
    pub sparse: bool,
    /// Limits on the peer's behaviour.
    pub limits: PeerLimits,
    /// Open a channel for a log this side holds when the peer asks for it (as corestore does).
    pub accept_unannounced: bool,
    /// How long the peer has to complete the Noise handshake before the connection fails with
    /// [`Error::Timeout`] (checked by [`Connection::tick`]).
    pub handshake_timeout: std::time::Duration,
    /// After this long without sending anything, [`Connection::tick`] sends a keep-alive (an
    /// empty message the peer drops), as the reference does every 5 s, so that a peer which
    /// times out quiet streams keeps this one. `None`: never.
    pub keep_alive: Option<std::time::Duration>,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            max_frame: (1 << 24) - 1,
            sparse: false,
            limits: PeerLimits::default(),
            accept_unannounced: true,
            handshake_timeout: std::time::Duration::from_secs(20),
            keep_alive: Some(std::time::Duration::from_secs(5)),
        }
    }
}

/// What happened on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The handshake completed; the peer's static public key.
    Connected {
        /// The peer's Noise static key.
        remote_public_key: [u8; 32],
    },
    /// A log's channel paired with the peer.
    PeerAdd {
        /// The log's discovery key.
        discovery_key: Hash,
    },
    /// A log's channel closed.
    PeerRemove {
        /// The log's discovery key.
        discovery_key: Hash,
    },
    /// This side sent a block to the peer.
    Upload {
        /// The log's discovery key.
        discovery_key: Hash,
        /// The block index.
        index: u64,
    },
}

static NEXT_PEER_ID: AtomicU64 = AtomicU64::new(1);

/// Blocks received on a connection, not yet verified and stored ([`Connection::take_received`]).
#[derive(Debug, Default)]
pub struct Received {
    /// Per log: the blocks.
    work: Vec<(Log, Vec<crate::proof::Data>)>,
    peer: u64,
}

impl Received {
    /// True when there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.work.is_empty()
    }

    /// Verifies and stores the blocks, one transaction per log. An `Err` means the peer sent
    /// something invalid and must be dropped (what was valid before it is kept). The requests
    /// these blocks answered made room for the next ones when they were received; once stored,
    /// the blocks are local (a block that could not be stored is wanted again).
    pub fn apply(self) -> Result<()> {
        self.apply_kept().0
    }

    /// [`Received::apply`], handing the blocks back: a caller that stores on another thread
    /// frees them where they were allocated (a thread freeing another's allocations contends for
    /// the allocator's lock with it).
    pub fn apply_kept(self) -> (Result<()>, Self) {
        let mut result = Ok(());
        for (log, batch) in &self.work {
            // hashed here, on the storing thread: the connection's thread goes on reading and
            // asking (the requests these blocks answered are already free)
            let leaves = crate::log::leaf_hashes(batch);
            result = super::channel::apply_data(log, batch, leaves, self.peer);
            if result.is_err() {
                break;
            }
        }
        (result, self)
    }
}

/// Decodes a channel message; `None` for a type this version does not know (ignored, as
/// protomux does).
fn decode_known(message_type: u64, payload: &[u8]) -> Result<Option<Message>> {
    if message_type >= messages::MESSAGE_TYPES {
        return Ok(None);
    }
    Ok(Some(Message::decode(message_type, payload)?))
}

/// One replication connection.
pub struct Connection {
    store: Store,
    opts: ConnectionOptions,
    transport: SecureTransport,
    mux: Mux,
    peer_id: u64,
    channels: HashMap<ChannelId, Channel>,
    by_dk: HashMap<Hash, ChannelId>,
    pending_logs: Vec<Log>,
    events: VecDeque<ConnectionEvent>,
    /// Channel messages decoded from a frame, not handled yet (they precede the mux's events).
    decoded: VecDeque<(ChannelId, Message)>,
    connected: bool,
    /// When this connection was made (the handshake deadline counts from here).
    started: std::time::Instant,
    /// Notified when a scheduler has requests for this connection's peers.
    wake: Arc<Notify>,
    /// The peer's requests are not served for now (its answers wait unwritten): they queue in
    /// `deferred` (see [`Connection::set_output_blocked`]).
    output_blocked: bool,
    /// The peer's requests received while serving was paused, in arrival order.
    deferred: VecDeque<(ChannelId, messages::Request)>,
    /// The ids of the queued requests, and those of them the peer cancelled (not served, as
    /// the reference drops a cancelled request from its queue).
    deferred_ids: HashSet<(ChannelId, u64)>,
    deferred_cancelled: HashSet<(ChannelId, u64)>,
}

/// Requests queued while serving is paused before [`Connection::wants_input`] turns false.
pub const MAX_DEFERRED_REQUESTS: usize = 1 << 18;

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer_id", &self.peer_id)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection for one side; `key_pair` is this side's Noise static key.
    pub fn new(
        store: Store,
        is_initiator: bool,
        key_pair: &KeyPair,
        opts: ConnectionOptions,
    ) -> Result<Self> {
        Ok(Connection {
            transport: SecureTransport::new(is_initiator, key_pair, opts.max_frame)?,
            store,
            opts,
            mux: Mux::new(),
            peer_id: NEXT_PEER_ID.fetch_add(1, Ordering::Relaxed),
            channels: HashMap::new(),
            by_dk: HashMap::new(),
            decoded: VecDeque::new(),
            pending_logs: Vec::new(),
            events: VecDeque::new(),
            connected: false,
            started: std::time::Instant::now(),
            wake: Arc::new(Notify::new()),
            output_blocked: false,
            deferred: VecDeque::new(),
            deferred_ids: HashSet::new(),
            deferred_cancelled: HashSet::new(),
        })
    }

    /// The store this connection serves.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The id this connection reports in [`crate::LogEvent::Download`].
    pub fn peer_id(&self) -> u64 {
        self.peer_id
    }

    /// True once the handshake completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Replicates `log` on this connection (opens its channel now or once connected). Not
    /// `sparse`: the whole log is fetched at priority 0 (from every peer replicating it), unless
    /// the log was already set sparse ([`Log::set_sparse`]). Sparse: only what
    /// [`Log::prioritize`] or [`Log::get_wait`] asks for.
    pub fn replicate(&mut self, log: &Log, sparse: bool) -> Result<()> {
        // a log whose mode its owner already chose (a sparse drive, say) keeps it
        if !sparse {
            log.replicator().default_whole();
        }
        if self.by_dk.contains_key(&log.discovery_key()) {
            return Ok(());
        }
        if !self.connected {
            self.pending_logs.push(log.clone());
            return Ok(());
        }
        self.open_channel(log.clone())?;
        self.flush()
    }

    /// Notified whenever a log's scheduler queued requests or cancels for this connection:
    /// call [`Connection::poll_scheduler`] then.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Sends what the schedulers queued for this connection's peers.
    pub fn poll_scheduler(&mut self) -> Result<()> {
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        self.mux.cork();
        let mut result = Ok(());
        for ch in ids {
            let mut out = Outbox::new();
            if let Some(c) = self.channels.get_mut(&ch) {
                c.pump(&mut out);
            }
            result = self.send_all(ch, out);
            if result.is_err() {
                break;
            }
        }
        self.mux.uncork();
        result?;
        self.flush()
    }

    /// Lets time pass for the schedulers (request timeouts), the channels' stall watchdogs and
    /// the handshake deadline ([`ConnectionOptions::handshake_timeout`]); call it every
    /// [`crate::scheduler::SchedulerOptions::tick`] (100 ms). [`Connection::tick_at`] with
    /// `Instant::now()`.
    pub fn tick(&mut self) -> Result<()> {
        self.tick_at(std::time::Instant::now())
    }

    /// [`Connection::tick`] at time `now`, for a caller that brings its own clock or event loop
    /// (a loop's cached time, or a test that lets seconds pass without sleeping). `now`
    /// decides the handshake deadline and when a channel's stall watchdog re-asks a quiet
    /// peer; the schedulers' request timeouts and the keep-alive go by the system clock (a
    /// log's scheduler is shared by every connection replicating it, each of which may bring
    /// its own clock). A `now` earlier than this connection's own timestamps counts as no
    /// time passed.
    pub fn tick_at(&mut self, now: std::time::Instant) -> Result<()> {
        if !self.connected
            && now.saturating_duration_since(self.started) > self.opts.handshake_timeout
        {
            return Err(Error::Timeout(format!(
                "the peer did not complete the handshake within {} s",
                self.opts.handshake_timeout.as_secs_f64()
            )));
        }
        let mut seen = HashSet::new();
        for c in self.channels.values() {
            if c.paired && seen.insert(c.log.discovery_key()) {
                c.log.replicator().tick();
            }
        }
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for ch in ids {
            let mut out = Outbox::new();
            if let Some(c) = self.channels.get_mut(&ch) {
                c.tick(now, &mut out);
            }
            self.send_all(ch, out)?;
        }
        self.poll_scheduler()?;
        // after the ticks' own messages (a quiet connection only)
        if let Some(idle) = self.opts.keep_alive {
            self.transport.keep_alive(idle)?;
        }
        Ok(())
    }

    fn open_channel(&mut self, log: Log) -> Result<()> {
        let hh = self
            .transport
            .handshake()
            .ok_or_else(|| Error::Protocol("not connected".into()))?;
        let hs = open_handshake(hh.is_initiator, &log.key(), &hh.handshake_hash);
        let dk = log.discovery_key();
        let ch = self.mux.open(PROTOCOL, Some(&dk), &hs)?;
        let mut c = Channel::new(log, PeerId(self.peer_id), self.wake.clone());
        c.limits = self.opts.limits;
        self.channels.insert(ch, c);
        self.by_dk.insert(dk, ch);
        Ok(())
    }

    /// Feeds bytes read from the socket and applies the data they carried.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<()> {
        self.receive_deferred(bytes)?;
        self.apply_received()
    }

    /// Like [`Connection::receive`], but keeps received blocks until [`Connection::apply_received`]:
    /// a caller that has several reads at hand stores them in one transaction (one fsync).
    pub fn receive_deferred(&mut self, bytes: &[u8]) -> Result<()> {
        self.receive_bounded(bytes, usize::MAX).map(|_| ())
    }

    /// Like [`Connection::receive_deferred`], but stops handling the peer's messages once about
    /// `budget` bytes of replies are queued for sending, so that a driver can write them out (and
    /// the peer start on them) before this side serves the rest: a read holding hundreds of block
    /// requests then streams its answers instead of sending them all at the end. Returns true
    /// while received messages wait for [`Connection::resume`].
    pub fn receive_bounded(&mut self, bytes: &[u8], budget: usize) -> Result<bool> {
        self.transport.receive(bytes)?;
        if !self.connected && self.transport.is_established() {
            self.connected = true;
            let pk = self
                .transport
                .handshake()
                .map(|h| h.remote_public_key)
                .unwrap_or_default();
            self.events.push_back(ConnectionEvent::Connected {
                remote_public_key: pk,
            });
            for log in std::mem::take(&mut self.pending_logs) {
                if !self.by_dk.contains_key(&log.discovery_key()) {
                    self.open_channel(log)?;
                }
            }
        }
        // everything sent in answer to this read goes out in protomux batches (one encrypted
        // message each instead of one per reply)
        self.resume(budget)
    }

    /// Handles more of the messages received earlier (see [`Connection::receive_bounded`]).
    /// Returns true while some still wait.
    pub fn resume(&mut self, budget: usize) -> Result<bool> {
        self.mux.cork();
        let result = self.receive_frames(budget);
        let reported = match result {
            Ok(_) => self.report_received(),
            Err(_) => Ok(()),
        };
        self.mux.uncork();
        let more = result?;
        reported?;
        self.flush()?;
        Ok(more)
    }

    /// Tells the schedulers which requests the blocks received so far answered, and sends the
    /// requests that makes room for, while those blocks wait to be stored.
    fn report_received(&mut self) -> Result<()> {
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for id in ids {
            let mut out = Outbox::new();
            if let Some(c) = self.channels.get_mut(&id) {
                c.report_received(&mut out);
            }
            if !out.is_empty() {
                self.send_all(id, out)?;
            }
        }
        Ok(())
    }

    /// True when received messages wait to be handled ([`Connection::resume`]): also requests
    /// queued while serving was paused, once it no longer is.
    pub fn has_pending_input(&self) -> bool {
        !self.decoded.is_empty()
            || self.mux.has_events()
            || self.transport.has_messages()
            || (!self.output_blocked && !self.deferred.is_empty())
    }

    /// Pauses (true) or resumes serving the peer's requests. A driver whose writes to the
    /// peer are not keeping up (the peer does not read) pauses serving: the requests that
    /// arrive meanwhile are queued, in arrival order, and every other message is handled as
    /// usual (so this side goes on reading, and two peers that send to each other cannot
    /// deadlock). Once resumed, [`Connection::has_pending_input`] is true until
    /// [`Connection::resume`] has served the queue. This is the reference's `drained` check
    /// (its `Peer.onrequest` queues requests while the stream is not drained).
    pub fn set_output_blocked(&mut self, blocked: bool) {
        self.output_blocked = blocked;
    }

    /// False while more than [`MAX_DEFERRED_REQUESTS`] requests wait for serving to resume: a
    /// driver then stops reading until its output drains (the queue grows with what the peer
    /// sends, and this bounds it).
    pub fn wants_input(&self) -> bool {
        self.deferred.len() < MAX_DEFERRED_REQUESTS
    }

    /// Requests queued while serving was paused.
    pub fn deferred_requests(&self) -> usize {
        self.deferred.len()
    }

    fn receive_frames(&mut self, budget: usize) -> Result<bool> {
        loop {
            // requests queued while serving was paused come before anything received later
            while !self.output_blocked
                && let Some((channel, r)) = self.deferred.pop_front()
            {
                self.deferred_ids.remove(&(channel, r.id));
                let cancelled = self.deferred_cancelled.remove(&(channel, r.id));
                if self.deferred.is_empty() {
                    self.deferred_ids.clear();
                    self.deferred_cancelled.clear();
                }
                // a channel closed meanwhile takes its requests with it
                if !cancelled && self.channels.contains_key(&channel) {
                    self.serve_request(channel, r)?;
                }
                if self.mux.queued_bytes() >= budget {
                    return Ok(self.has_pending_input());
                }
            }
            // decoded messages came before any queued event
            while let Some((channel, msg)) = self.decoded.pop_front() {
                self.on_channel_message(channel, msg)?;
                if self.mux.queued_bytes() >= budget {
                    return Ok(self.has_pending_input());
                }
            }
            while let Some(ev) = self.mux.next_event() {
                self.on_mux_event(ev)?;
                if self.mux.queued_bytes() >= budget {
                    return Ok(self.has_pending_input());
                }
            }
            let Some(frame) = self.transport.next_message() else {
                return Ok(false);
            };
            // messages are decoded straight from the frame (a block is copied out of it once)
            let decoded = &mut self.decoded;
            self.mux.receive_with(&frame, &mut |channel, t, payload| {
                if let Some(msg) = decode_known(t, payload)? {
                    decoded.push_back((channel, msg));
                }
                Ok(())
            })?;
        }
    }

    fn on_mux_event(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Opened { channel, handshake } => {
                let hh = self
                    .transport
                    .handshake()
                    .ok_or_else(|| Error::Protocol("not connected".into()))?
                    .clone();
                let Some(c) = self.channels.get_mut(&channel) else {
                    return Err(Error::Protocol(
                        "an open for a channel this side does not know".into(),
                    ));
                };
                let remote = messages::Handshake::decode(&handshake)?;
                messages::verify_capability(
                    hh.is_initiator,
                    &c.log.key(),
                    &hh.handshake_hash,
                    &remote.capability,
                )?;
                let mut out = Outbox::new();
                c.on_paired(&mut out);
                let dk = c.log.discovery_key();
                self.events
                    .push_back(ConnectionEvent::PeerAdd { discovery_key: dk });
                self.mux.cork();
                self.send_all(channel, out)?;
                self.mux.uncork();
            }
            Event::OpenRequest {
                remote_id,
                protocol,
                id,
                ..
            } => {
                let log = match <[u8; 32]>::try_from(id.as_slice()) {
                    // a second open of a log already open here is refused, as protomux does
                    Ok(dk) if self.by_dk.contains_key(&dk) => None,
                    Ok(dk) if protocol == PROTOCOL && self.opts.accept_unannounced => {
                        self.store.by_discovery_key(&dk)?
                    }
                    _ => None,
                };
                match log {
                    Some(log) => {
                        if !self.opts.sparse {
                            log.replicator().default_whole();
                        }
                        self.open_channel(log)?
                    }
                    None => self.mux.reject(remote_id)?,
                }
            }
            Event::OpenRequestClosed { .. } => {}
            Event::Message {
                channel,
                message_type,
                payload,
            } => {
                if let Some(msg) = decode_known(message_type, &payload)? {
                    self.on_channel_message(channel, msg)?;
                }
            }
            Event::Closed { channel } | Event::Rejected { channel } => self.drop_channel(channel),
        }
        Ok(())
    }

    fn on_channel_message(&mut self, channel: ChannelId, msg: Message) -> Result<()> {
        if let Message::Request(r) = msg
            && (self.output_blocked || !self.deferred.is_empty())
            && self.channels.contains_key(&channel)
        {
            self.deferred.push_back((channel, r));
            self.deferred_ids.insert((channel, r.id));
            return Ok(());
        }
        if let Message::Cancel(c) = &msg
            && self.deferred_ids.contains(&(channel, c.request))
        {
            self.deferred_cancelled.insert((channel, c.request));
        }
        self.handle_channel_message(channel, msg)
    }

    fn serve_request(&mut self, channel: ChannelId, r: messages::Request) -> Result<()> {
        self.handle_channel_message(channel, Message::Request(r))
    }

    fn handle_channel_message(&mut self, channel: ChannelId, msg: Message) -> Result<()> {
        let limits = self.opts.limits;
        let Some(c) = self.channels.get_mut(&channel) else {
            return Err(Error::Protocol("a message on an unknown channel".into()));
        };
        let mut out = Outbox::new();
        let uploaded = c.on_message(msg, &limits, &mut out)?;
        let dk = c.log.discovery_key();
        if let Some(index) = uploaded {
            self.events.push_back(ConnectionEvent::Upload {
                discovery_key: dk,
                index,
            });
        }
        self.send_all(channel, out)
    }

    /// Verifies and stores the data received so far, one transaction per log, and sends the
    /// requests that frees up.
    pub fn apply_received(&mut self) -> Result<()> {
        self.flush_data()?;
        self.flush()
    }

    fn flush_data(&mut self) -> Result<()> {
        let peer = self.peer_id;
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        self.mux.cork();
        let mut result = Ok(());
        for ch in ids {
            let mut out = Outbox::new();
            if let Some(c) = self.channels.get_mut(&ch) {
                result = c.flush_data(peer, &mut out);
                c.pump(&mut out);
            }
            if result.is_ok() {
                result = self.send_all(ch, out);
            }
            if result.is_err() {
                break;
            }
        }
        self.mux.uncork();
        result
    }

    /// Takes the blocks received so far, to be verified and stored by [`Received::apply`] on
    /// another thread while this connection goes on reading (the next batch accumulates during
    /// the commit, so commits, and fsyncs, grow with the load).
    pub fn take_received(&mut self) -> Received {
        let work = self
            .channels
            .values_mut()
            .map(|c| (c.log.clone(), c.take_pending()))
            .filter(|(_, d)| !d.is_empty())
            .collect();
        Received {
            work,
            peer: self.peer_id,
        }
    }

    fn send_all(&mut self, channel: ChannelId, out: Outbox) -> Result<()> {
        for m in out {
            let t = m.message_type();
            // A block's length is read only once the message is known to be `data`: computed
            // for every message and selected afterwards (as the optimizer did with a shared
            // helper), it read bytes other messages leave unset, which valgrind reports.
            match &m {
                Message::Data(d) => {
                    let len = d.block.as_ref().map_or(0, |b| b.value.len());
                    self.mux.send_with(channel, t, len, |e| d.encode_into(e))?;
                }
                _ => self.mux.send_with(channel, t, 0, |e| m.encode_into(e))?,
            }
        }
        Ok(())
    }

    /// A local log changed (append, truncate, download by another peer): send what the peer needs.
    pub fn on_log_changed(&mut self, dk: &Hash) -> Result<()> {
        let Some(&ch) = self.by_dk.get(dk) else {
            return Ok(());
        };
        let mut out = Outbox::new();
        if let Some(c) = self.channels.get_mut(&ch) {
            c.on_local_change(&mut out);
        }
        self.mux.cork();
        self.send_all(ch, out)?;
        self.mux.uncork();
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        while let Some(frame) = self.mux.next_frame() {
            self.transport.send(&frame)?;
        }
        Ok(())
    }

    /// Bytes to write to the socket.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.transport.take_output()
    }

    /// The next connection event.
    pub fn next_event(&mut self) -> Option<ConnectionEvent> {
        self.events.pop_front()
    }

    /// Ends the connection's channels: every log still shared with the peer is reported with
    /// [`ConnectionEvent::PeerRemove`] (as the reference reports when a replication stream
    /// closes) and leaves its scheduler. Call it once the byte stream has ended; the connection
    /// takes no more bytes afterwards.
    pub fn end(&mut self) {
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for ch in ids {
            self.drop_channel(ch);
        }
        self.pending_logs.clear();
    }

    /// Forgets a channel (its log leaves the scheduler); a paired one is reported removed.
    fn drop_channel(&mut self, channel: ChannelId) {
        if let Some(c) = self.channels.remove(&channel) {
            let dk = c.log.discovery_key();
            self.by_dk.remove(&dk);
            if c.paired {
                self.events
                    .push_back(ConnectionEvent::PeerRemove { discovery_key: dk });
            }
        }
    }

    /// The discovery keys of the logs paired on this connection.
    pub fn paired_logs(&self) -> Vec<Hash> {
        self.channels
            .values()
            .filter(|c| c.paired)
            .map(|c| c.log.discovery_key())
            .collect()
    }
}

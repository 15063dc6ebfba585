//! One log replicated with one peer: the `hypercore/alpha` channel's state and message handling.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::proof::{RequestBlock, RequestUpgrade};
use crate::scheduler::{PeerId, RequestId};
use crate::wire::messages::{
    self, Cancel, Message, NO_DATA_INVALID_REQUEST, NO_DATA_NOT_AVAILABLE, NoData, Range, Request,
    Sync, Want,
};

use super::replicator::{PeerCommand, Replicator};

/// What a request we sent was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inflight {
    Upgrade,
    /// A block, with the scheduler's id for the request.
    Block(u64, RequestId),
    /// A block whose request was cancelled: an answer may still cross the cancel.
    Cancelled(u64),
}

/// How long without any data from a peer before the watchdog starts its exchange over.
const STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// Cancelled requests remembered, the oldest forgotten first (an answer to a forgotten one is
/// ignored, as an answer to any unknown request is).
const MAX_CANCELLED: usize = 4096;

/// Wants go out as aligned segments of this many blocks: the reference accepts a non-`any`
/// want only when its length is a power of two of at most 2^21 blocks and its start a multiple
/// of it (`RemoteWants.add` ignores longer ones, and then tells nothing of the range).
const WANT_SEGMENT_BITS: u32 = 21;

/// Segment wants sent per peer at most (the reference holds 512, then takes the peer to want
/// everything).
const MAX_WANT_SEGMENTS: usize = 512;

/// Most separate ranges kept per set (bounds memory and time against hostile availability claims).
const MAX_RANGES: usize = 4096;

/// A sorted set of half-open block ranges.
#[derive(Debug, Default, Clone)]
pub(crate) struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end || self.0.len() >= MAX_RANGES {
            // a peer describing its blocks in more pieces than this is not believed further
            return;
        }
        // ranges lo..hi overlap or touch [start, end]
        let lo = self.0.partition_point(|&(_, b)| b < start);
        let hi = self.0.partition_point(|&(a, _)| a <= end);
        if lo < hi {
            let s = start.min(self.0[lo].0);
            let e = end.max(self.0[hi - 1].1);
            self.0.splice(lo..hi, [(s, e)]);
        } else {
            self.0.insert(lo, (start, end));
        }
    }

    /// Removes `[start, end)`. In place (only the ranges it touches are rewritten), and never
    /// past [`MAX_RANGES`]: a split that would pass it keeps the longer piece only (believing a
    /// peer has fewer blocks than it does costs only a block not asked of it).
    pub(crate) fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // ranges lo..hi overlap [start, end)
        let lo = self.0.partition_point(|&(_, b)| b <= start);
        let hi = self.0.partition_point(|&(a, _)| a < end);
        if lo >= hi {
            return;
        }
        let left = (self.0[lo].0 < start).then(|| (self.0[lo].0, start));
        let right = (self.0[hi - 1].1 > end).then(|| (end, self.0[hi - 1].1));
        let pieces: Vec<(u64, u64)> = match (left, right) {
            (Some(l), Some(r)) if self.0.len() - (hi - lo) + 2 > MAX_RANGES => {
                vec![if l.1 - l.0 >= r.1 - r.0 { l } else { r }]
            }
            (l, r) => l.into_iter().chain(r).collect(),
        };
        self.0.splice(lo..hi, pieces);
    }

    /// True when every block of `[start, end)` is in the set.
    pub(crate) fn covers(&self, start: u64, end: u64) -> bool {
        let pos = self.0.partition_point(|&(a, _)| a <= start);
        pos > 0 && self.0[pos - 1].1 >= end
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, i: u64) -> bool {
        let pos = self.0.partition_point(|&(a, _)| a <= i);
        pos > 0 && self.0[pos - 1].1 > i
    }
}

/// Limits that protect this side from a hostile or broken peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerLimits {
    /// Invalid requests (unanswerable proofs) tolerated before the peer is dropped.
    pub max_invalid_requests: u32,
    /// Requests for blocks this side does not have, tolerated before the peer is dropped.
    pub max_unavailable_requests: u32,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            max_invalid_requests: 64,
            max_unavailable_requests: 4096,
        }
    }
}

/// The state of one log on one connection.
pub(crate) struct Channel {
    pub(crate) log: Log,
    pub(crate) paired: bool,
    pub(crate) remote: Option<Sync>,
    pub(crate) remote_has: RangeSet,
    /// The log's scheduler, shared with the other connections replicating it.
    replicator: Arc<Replicator>,
    /// This channel's peer, as the scheduler knows it (registered once paired).
    peer: PeerId,
    registered: bool,
    /// Notified when the scheduler has commands for this channel.
    wake: Arc<Notify>,
    inflight: HashMap<u64, Inflight>,
    /// Wire request id of each scheduler request in flight.
    wire_ids: HashMap<RequestId, u64>,
    /// Wire ids of the cancelled requests, oldest first (some may have been answered since).
    cancelled: std::collections::VecDeque<u64>,
    upgrade_inflight: bool,
    /// The remote's `(fork, length)` claim it refused an upgrade to (noData): not asked again
    /// until it claims something else.
    upgrade_refused: Option<(u64, u64)>,
    next_id: u64,
    sent_length: Option<(u64, u64)>,
    invalid_requests: u32,
    unavailable_requests: u32,
    pub(crate) limits: PeerLimits,
    pending_data: Vec<crate::proof::Data>,
    /// Blocks `(index, bytes)` of `pending_data` that answered requests, not yet reported to
    /// the scheduler ([`Channel::report_received`]).
    received: Vec<(u64, u64)>,
    /// When data last arrived, and when the scheduler was last re-told about this peer.
    last_arrival: std::time::Instant,
    last_kick: std::time::Instant,
    /// The start of an open-ended want (the whole log): its segments go out as far as this
    /// side's or the peer's length reaches.
    want_open: Option<u64>,
    /// The want segments sent to this peer (segment index), at most [`MAX_WANT_SEGMENTS`].
    wants_sent: std::collections::HashSet<u64>,
    /// Scheduler requests for this peer made while it could not be asked (no sync from it
    /// yet, or another fork): sent once it can.
    held: Vec<(RequestId, u64, u8)>,
}

/// Messages a channel wants sent.
pub(crate) type Outbox = Vec<Message>;

impl Channel {
    pub(crate) fn new(log: Log, peer: PeerId, wake: Arc<Notify>) -> Self {
        Channel {
            replicator: log.replicator(),
            log,
            paired: false,
            remote: None,
            remote_has: RangeSet::default(),
            peer,
            registered: false,
            wake,
            inflight: HashMap::new(),
            wire_ids: HashMap::new(),
            cancelled: std::collections::VecDeque::new(),
            upgrade_inflight: false,
            upgrade_refused: None,
            next_id: 1,
            sent_length: None,
            invalid_requests: 0,
            unavailable_requests: 0,
            limits: PeerLimits::default(),
            pending_data: Vec::new(),
            received: Vec::new(),
            last_arrival: std::time::Instant::now(),
            last_kick: std::time::Instant::now(),
            want_open: None,
            wants_sent: std::collections::HashSet::new(),
            held: Vec::new(),
        }
    }

    /// Sends `want`s for the segments that hold blocks `[start, end)` and were not sent yet.
    fn want_segments(&mut self, start: u64, end: u64, out: &mut Outbox) {
        if start >= end {
            return;
        }
        let (first, last) = (start >> WANT_SEGMENT_BITS, (end - 1) >> WANT_SEGMENT_BITS);
        for k in first..=last {
            if self.wants_sent.len() >= MAX_WANT_SEGMENTS {
                return;
            }
            if self.wants_sent.insert(k) {
                out.push(Message::Want(Want {
                    start: k << WANT_SEGMENT_BITS,
                    length: 1 << WANT_SEGMENT_BITS,
                    ..Default::default()
                }));
            }
        }
    }

    /// Sends the segments of the open-ended want up to the longer of this side's and the
    /// peer's length (at least the segment where it starts).
    fn extend_open_want(&mut self, out: &mut Outbox) {
        let Some(start) = self.want_open else { return };
        let known = self.log.length().max(self.remote.map_or(0, |r| r.length));
        self.want_segments(start, known.max(start.saturating_add(1)), out);
    }

    /// A watchdog against a stalled exchange: when nothing arrived from this peer for
    /// [`STALL_AFTER`] before `now` while this side still lacks blocks, the scheduler forgets
    /// the peer's in-flight requests and hears its availability again (answers still on the
    /// way are accepted as they come), so a lost or overtaken answer cannot stop a download.
    pub(crate) fn tick(&mut self, now: std::time::Instant, out: &mut Outbox) {
        if !self.registered || !self.paired {
            return;
        }
        // (saturating: a caller's clock may be behind the arrival stamps taken from the
        // system clock, which is then no time passed, not a panic)
        if now.saturating_duration_since(self.last_arrival) < STALL_AFTER
            || now.saturating_duration_since(self.last_kick) < STALL_AFTER
        {
            return;
        }
        let waiting = self
            .inflight
            .values()
            .any(|f| matches!(f, Inflight::Block(..)));
        // (a sparse log is never contiguous: only a range still waiting counts)
        let incomplete =
            || self.log.contiguous_length() < self.log.length() && self.replicator.wants_blocks();
        if !waiting && !incomplete() {
            return;
        }
        self.last_kick = now;
        let waiting: Vec<(u64, u64)> = self
            .inflight
            .iter()
            .filter_map(|(&id, f)| match *f {
                Inflight::Block(b, _) => Some((id, b)),
                _ => None,
            })
            .collect();
        for (id, b) in waiting {
            self.mark_cancelled(id, b);
        }
        self.wire_ids.clear();
        self.held.clear();
        // the peer's wants are sent again with the reset; what was measured of the peer (rate,
        // round trip, depth) stays, as a quiet peer is not a new one
        self.wants_sent.clear();
        self.replicator
            .reset_peer(self.peer, self.remote_has.0.iter().copied());
        self.pump(out);
    }

    /// Remembers request `id` (for `block`) as cancelled, forgetting the oldest cancelled one
    /// past [`MAX_CANCELLED`].
    fn mark_cancelled(&mut self, id: u64, block: u64) {
        self.inflight.insert(id, Inflight::Cancelled(block));
        self.cancelled.push_back(id);
        while self.cancelled.len() > MAX_CANCELLED {
            if let Some(old) = self.cancelled.pop_front()
                && matches!(self.inflight.get(&old), Some(Inflight::Cancelled(_)))
            {
                self.inflight.remove(&old);
            }
        }
    }

    fn sync_message(&self) -> Sync {
        let remote = self.remote.unwrap_or_default();
        let fork = self.log.fork();
        Sync {
            fork,
            length: self.log.length(),
            remote_length: if remote.fork == fork {
                remote.length.min(self.log.length())
            } else {
                0
            },
            can_upgrade: true,
            uploading: true,
            downloading: true,
            has_manifest: self.log.manifest().is_some() && !self.log.is_compat(),
            allow_push: false,
        }
    }

    /// The messages that follow a paired open: our sync and what we hold.
    pub(crate) fn on_paired(&mut self, out: &mut Outbox) {
        self.paired = true;
        self.send_sync(out);
        self.announce_range(out);
        self.replicator.add_peer(self.peer, self.wake.clone());
        self.registered = true;
        self.pump(out);
    }

    fn send_sync(&mut self, out: &mut Outbox) {
        let s = self.sync_message();
        self.sent_length = Some((s.fork, s.length));
        out.push(Message::Sync(s));
    }

    fn announce_range(&mut self, out: &mut Outbox) {
        let contiguous = self.log.contiguous_length();
        if contiguous > 0 {
            out.push(Message::Range(Range {
                drop: false,
                start: 0,
                length: contiguous,
            }));
        }
    }

    /// The log changed locally (append, truncate, download): tell the peer.
    pub(crate) fn on_local_change(&mut self, out: &mut Outbox) {
        if !self.paired {
            return;
        }
        if self.sent_length != Some((self.log.fork(), self.log.length())) {
            self.send_sync(out);
            self.announce_range(out);
        }
        self.extend_open_want(out);
        self.schedule(out);
    }

    fn next_request_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends an upgrade request when the peer is ahead, then the scheduler's commands.
    pub(crate) fn schedule(&mut self, out: &mut Outbox) {
        let Some(remote) = self.remote else { return };
        if !self.paired {
            return;
        }
        let (length, fork) = (self.log.length(), self.log.fork());
        let same_fork = remote.fork == fork || length == 0;
        // The writer rewrote history (a newer fork): ask for its whole signed state from length
        // 0; the log keeps what both forks share and downloads the rest again.
        // (the remote's `can_upgrade` is about upgrading this side on the same fork: the
        // reference sends false across forks)
        let reorg = remote.fork > fork && length > 0;
        let refused = self.upgrade_refused == Some((remote.fork, remote.length));
        // the peer could not prove a claim it refused: wait for a new one
        let start = if reorg && !self.log.writable() {
            Some(0)
        } else {
            (same_fork && remote.length > length).then_some(length)
        };
        if let Some(start) = start.filter(|_| !refused && !self.upgrade_inflight) {
            let id = self.next_request_id();
            self.upgrade_inflight = true;
            self.inflight.insert(id, Inflight::Upgrade);
            out.push(Message::Request(Request {
                id,
                fork: remote.fork,
                upgrade: Some(RequestUpgrade {
                    start,
                    length: remote.length - start,
                }),
                manifest: self.log.manifest().is_none() && remote.has_manifest,
                ..Default::default()
            }));
        }
        self.pump(out);
    }

    /// True when block requests can go to the peer: it sent its sync, on this side's fork.
    fn peer_usable(&self) -> bool {
        let fork = self.log.fork();
        self.remote.is_some_and(|r| r.fork == fork)
    }

    fn send_request(&mut self, sid: RequestId, block: u64, priority: u8, out: &mut Outbox) {
        let nodes = self
            .log
            .missing_nodes_hinted(2 * block, |a, b| self.replicator.any_local(a, b))
            .unwrap_or(0);
        let id = self.next_request_id();
        self.inflight.insert(id, Inflight::Block(block, sid));
        self.wire_ids.insert(sid, id);
        out.push(Message::Request(Request {
            id,
            fork: self.log.fork(),
            block: Some(RequestBlock {
                index: block,
                nodes,
            }),
            priority: u64::from(priority),
            ..Default::default()
        }));
    }

    /// Turns the scheduler's commands for this peer into wire messages.
    pub(crate) fn pump(&mut self, out: &mut Outbox) {
        if !self.registered {
            return;
        }
        // requests that waited for the peer to become usable
        if !self.held.is_empty() && self.peer_usable() {
            let length = self.log.length();
            let mut failed = Vec::new();
            for (sid, block, priority) in std::mem::take(&mut self.held) {
                if block < length {
                    self.send_request(sid, block, priority, out);
                } else {
                    failed.push(block);
                }
            }
            for block in failed {
                self.replicator.request_failed(self.peer, block, false);
            }
        }
        // blocks this side downloaded meanwhile, announced together below
        let mut haves: Vec<(u64, u64)> = Vec::new();
        // a failed request makes the scheduler pick again, possibly this peer: bounded rounds
        for _ in 0..4 {
            let commands = self.replicator.take_commands(self.peer);
            if commands.is_empty() {
                break;
            }
            let mut failed = Vec::new();
            for cmd in commands {
                match cmd {
                    PeerCommand::Request {
                        id: sid,
                        block,
                        priority,
                    } => {
                        if block >= self.log.length() {
                            failed.push(block);
                        } else if self.peer_usable() {
                            self.send_request(sid, block, priority, out);
                        } else {
                            // no sync from the peer yet, or it is on another fork: the request
                            // waits for it (failing it would make the scheduler avoid the
                            // block at this peer until the watchdog resets it)
                            self.held.push((sid, block, priority));
                        }
                    }
                    PeerCommand::Cancel { id: sid } => {
                        if let Some(pos) = self.held.iter().position(|h| h.0 == sid) {
                            self.held.remove(pos);
                            continue;
                        }
                        let Some(id) = self.wire_ids.remove(&sid) else {
                            continue;
                        };
                        if let Some(Inflight::Block(block, _)) = self.inflight.get(&id).copied() {
                            self.mark_cancelled(id, block);
                            out.push(Message::Cancel(Cancel { request: id }));
                        }
                    }
                    PeerCommand::Want { start, end } if end == u64::MAX => {
                        // the whole log from `start`: as far as a length is known, and further
                        // as the log grows
                        self.want_open = Some(self.want_open.map_or(start, |s| s.min(start)));
                        self.extend_open_want(out);
                    }
                    PeerCommand::Want { start, end } => self.want_segments(start, end, out),
                    PeerCommand::Have { start, end } => haves.push((start, end)),
                }
            }
            for block in failed {
                self.replicator.request_failed(self.peer, block, false);
            }
        }
        self.announce_haves(haves, out);
    }

    /// Sends `range` for blocks this side got since the last call: one message per run (runs
    /// that touch are merged), none for what the peer itself says it has.
    fn announce_haves(&mut self, mut haves: Vec<(u64, u64)>, out: &mut Outbox) {
        if haves.is_empty() {
            return;
        }
        haves.sort_unstable();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (a, b) in haves {
            match runs.last_mut() {
                Some(r) if a <= r.1 => r.1 = r.1.max(b),
                _ => runs.push((a, b)),
            }
        }
        for (start, end) in runs {
            if self.remote_has.covers(start, end) {
                continue;
            }
            out.push(Message::Range(Range {
                drop: false,
                start,
                length: end - start,
            }));
        }
    }

    /// Handles one message from the peer. An `Err` means the peer misbehaved and must be dropped.
    pub(crate) fn on_message(
        &mut self,
        msg: Message,
        limits: &PeerLimits,
        out: &mut Outbox,
    ) -> Result<Option<u64>> {
        let mut uploaded = None;
        match msg {
            Message::Sync(s) => {
                self.remote = Some(s);
                // Answer when the peer is behind on this fork (as the reference does): our
                // sync tells it how much of its log we acknowledge, which it needs before it
                // asks us for an upgrade (it may have just moved to our fork).
                let behind = s.fork == self.log.fork() && s.length < self.log.length();
                if behind
                    || (s.remote_length != self.log.length()
                        && self.sent_length != Some((self.log.fork(), self.log.length())))
                {
                    self.send_sync(out);
                }
                self.extend_open_want(out);
                self.schedule(out);
            }
            Message::Request(r) => uploaded = self.serve(r, limits, out)?,
            Message::Cancel(_) => {} // requests are answered as they arrive
            Message::Data(d) => {
                self.last_arrival = std::time::Instant::now();
                let what = self.inflight.remove(&d.request);
                match what {
                    Some(Inflight::Upgrade) => self.upgrade_inflight = false,
                    Some(Inflight::Block(i, sid)) => {
                        self.wire_ids.remove(&sid);
                        if let Some(b) = d.block.as_ref().filter(|b| b.index == i) {
                            self.received.push((i, b.value.len() as u64));
                        }
                    }
                    Some(Inflight::Cancelled(_)) => {}
                    // an answer to a request this side no longer remembers (one cancelled
                    // long ago), or an unsolicited push: ignored, as the reference ignores it
                    // (dropping the peer would punish an answer that crossed a cancel)
                    None => return Ok(None),
                }
                // applied in batches (one commit) by `flush_data`, which reports the arrivals
                // to the scheduler
                self.pending_data.push(d);
            }
            Message::NoData(n) => {
                match self.inflight.remove(&n.request) {
                    Some(Inflight::Upgrade) => {
                        self.upgrade_inflight = false;
                        self.upgrade_refused = self.remote.map(|r| (r.fork, r.length));
                    }
                    Some(Inflight::Block(i, sid)) => {
                        self.wire_ids.remove(&sid);
                        self.remote_has.remove(i, i + 1);
                        self.replicator.request_failed(self.peer, i, true);
                    }
                    Some(Inflight::Cancelled(_)) | None => {}
                }
                self.schedule(out);
            }
            Message::Want(w) => {
                let end = w.start.saturating_add(w.length);
                for (a, b) in self.log.local_ranges(w.start, end)? {
                    out.push(Message::Range(Range {
                        drop: false,
                        start: a,
                        length: b - a,
                    }));
                }
            }
            Message::Unwant(_) | Message::Extension(_) => {}
            Message::Bitfield(b) => {
                // runs of set bits become ranges (indexes past any possible log are ignored),
                // handed to the scheduler as one batch: one planning pass per message
                let remote_has = &mut self.remote_has;
                let runs = bit_runs(&b.bitfield)
                    .filter_map(|(s, e)| Some((b.start.checked_add(s)?, b.start.checked_add(e)?)))
                    .inspect(|&(a, e)| remote_has.insert(a, e));
                self.replicator.peer_have_runs(self.peer, runs);
                self.schedule(out);
            }
            Message::Range(r) => {
                let end = r.start.saturating_add(r.length);
                if r.drop {
                    self.remote_has.remove(r.start, end);
                    self.replicator.peer_dropped(self.peer, r.start, end);
                } else {
                    self.remote_has.insert(r.start, end);
                    self.replicator.peer_have(self.peer, r.start, end);
                }
                self.schedule(out);
            }
        }
        Ok(uploaded)
    }

    /// Verifies and stores the data received since the last call, in one transaction. An `Err`
    /// means the peer sent something invalid and must be dropped (what was valid is kept).
    pub(crate) fn flush_data(&mut self, peer: u64, out: &mut Outbox) -> Result<()> {
        let batch = self.take_pending();
        let leaves = crate::log::leaf_hashes(&batch);
        apply_data(&self.log, &batch, leaves, peer)?;
        self.schedule(out);
        Ok(())
    }

    /// Tells the scheduler which requests the data received since the last call answered (its
    /// blocks are still to be stored), and sends the requests that makes room for.
    pub(crate) fn report_received(&mut self, out: &mut Outbox) {
        if self.received.is_empty() {
            return;
        }
        let received = std::mem::take(&mut self.received);
        self.replicator.on_received(self.peer, &received);
        self.schedule(out);
    }

    /// The data received and not yet stored (for a caller that stores it on another thread).
    pub(crate) fn take_pending(&mut self) -> Vec<crate::proof::Data> {
        std::mem::take(&mut self.pending_data)
    }

    /// Answers a request with a proof, or noData. Returns the block index uploaded, if any.
    fn serve(&mut self, r: Request, limits: &PeerLimits, out: &mut Outbox) -> Result<Option<u64>> {
        let not_available = |out: &mut Outbox, this: &mut Self| -> Result<()> {
            this.unavailable_requests += 1;
            if this.unavailable_requests > limits.max_unavailable_requests {
                return Err(Error::Protocol(
                    "too many requests for blocks this side does not have".into(),
                ));
            }
            out.push(Message::NoData(NoData {
                request: r.id,
                reason: NO_DATA_NOT_AVAILABLE,
            }));
            Ok(())
        };
        // A request made on another fork (the peer has not heard of a truncation yet) is not
        // available rather than invalid, as the reference answers it: a peer that was asking
        // for upgrades when the log was truncated is not taken for a misbehaving one.
        let missing = match r.block {
            Some(b) => !self.log.has(b.index)?,
            None => false,
        };
        if r.fork != self.log.fork() || missing {
            not_available(out, self)?;
            return Ok(None);
        }
        match self.log.proof(&r.proof_request()) {
            Ok(mut data) => {
                data.request = r.id;
                if r.manifest && !self.log.is_compat() {
                    data.manifest = self.log.manifest();
                }
                let uploaded = data.block.as_ref().map(|b| b.index);
                out.push(Message::Data(data));
                Ok(uploaded)
            }
            Err(Error::NotAvailable(_)) => {
                not_available(out, self)?;
                Ok(None)
            }
            Err(Error::Storage(e)) => Err(Error::Storage(e)),
            Err(Error::Corrupt(m)) => Err(Error::Corrupt(m)),
            Err(_) => {
                self.invalid_requests += 1;
                if self.invalid_requests > limits.max_invalid_requests {
                    return Err(Error::Protocol("too many invalid requests".into()));
                }
                out.push(Message::NoData(NoData {
                    request: r.id,
                    reason: NO_DATA_INVALID_REQUEST,
                }));
                Ok(None)
            }
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.registered {
            self.replicator.remove_peer(self.peer);
        }
    }
}

/// Verifies and stores `batch` from `peer` in one transaction. An `Err` means the peer sent
/// something invalid and must be dropped (what was valid before it is kept).
pub(crate) fn apply_data(
    log: &Log,
    batch: &[crate::proof::Data],
    leaves: Vec<crate::crypto::Hash>,
    peer: u64,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let (_, err) = log.apply_batch_hashed(batch, leaves, peer);
    if err.is_some() {
        // blocks whose answers were overtaken go back to the scheduler, to be asked again
        let r = log.replicator();
        for d in batch {
            if let Some(b) = &d.block
                && !log.has(b.index).unwrap_or(false)
            {
                r.request_failed_retry(crate::scheduler::PeerId(peer), b.index);
            }
        }
    }
    match err {
        None | Some(Error::StaleProof(_) | Error::ForkMismatch { .. } | Error::Conflict(_)) => {
            Ok(())
        }
        Some(
            e @ (Error::InvalidProof(_)
            | Error::InvalidSignature(_)
            | Error::InvalidManifest(_)
            | Error::MissingNode(_)
            | Error::Decode(_)
            | Error::OutOfBounds(_)),
        ) => Err(Error::Protocol(format!("peer sent bad data: {e}"))),
        Some(e) => Err(e),
    }
}

/// The runs of set bits of a bitfield of 32-bit words, as half-open bit ranges, found a word
/// at a time (empty and full words cost one step each).
fn bit_runs(words: &[u32]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut run: Option<u64> = None;
    let mut word = 0usize;
    let mut bit = 0u32;
    std::iter::from_fn(move || {
        while word < words.len() {
            let base = word as u64 * 32;
            // the bits of this word from `bit` on, inverted when inside a run (looking for its end)
            let w = words[word] >> bit;
            let looking = if run.is_some() {
                !words[word] >> bit
            } else {
                w
            };
            let rest = 32 - bit;
            let tz = if looking == 0 {
                rest
            } else {
                looking.trailing_zeros().min(rest)
            };
            if tz >= rest {
                word += 1;
                bit = 0;
                continue;
            }
            bit += tz;
            let at = base + u64::from(bit);
            match run.take() {
                Some(s) => return Some((s, at)),
                None => run = Some(at),
            }
        }
        run.take().map(|s| (s, words.len() as u64 * 32))
    })
}

/// The `open` handshake payload for a log on a connection with handshake hash `hh`.
pub(crate) fn open_handshake(is_initiator: bool, key: &[u8; 32], hh: &[u8; 64]) -> Vec<u8> {
    messages::Handshake {
        seeks: true,
        capability: messages::capability(is_initiator, key, hh),
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::RangeSet;

    #[test]
    fn bit_runs_finds_every_run() {
        let words = [
            0xffff_ffffu32,
            0x8000_0001,
            0,
            0x0000_ff00,
            0xffff_ffff,
            0x5555_5555,
        ];
        let naive: Vec<(u64, u64)> = {
            let bits = words.len() as u64 * 32;
            let mut out = Vec::new();
            let mut run = None;
            for k in 0..=bits {
                let set = k < bits && words[(k / 32) as usize] & (1 << (k % 32)) != 0;
                match (set, run) {
                    (true, None) => run = Some(k),
                    (false, Some(s)) => {
                        out.push((s, k));
                        run = None;
                    }
                    _ => {}
                }
            }
            out
        };
        assert_eq!(super::bit_runs(&words).collect::<Vec<_>>(), naive);
        assert_eq!(super::bit_runs(&[]).count(), 0);
        assert_eq!(super::bit_runs(&[!0; 3]).collect::<Vec<_>>(), vec![(0, 96)]);
    }

    #[test]
    fn range_set_merges_and_splits() {
        let mut r = RangeSet::default();
        r.insert(5, 10);
        r.insert(0, 2);
        r.insert(9, 12);
        r.insert(2, 3);
        assert_eq!(r.0, vec![(0, 3), (5, 12)]);
        assert!(r.contains(0) && r.contains(11) && !r.contains(3) && !r.contains(12));
        r.remove(6, 8);
        assert_eq!(r.0, vec![(0, 3), (5, 6), (8, 12)]);
        r.remove(0, 100);
        assert!(r.0.is_empty());
    }

    /// A peer's `range{drop}` messages that each split a range cannot grow its set past
    /// MAX_RANGES (insert already kept to it).
    #[test]
    fn drops_cannot_grow_a_set_past_its_limit() {
        let mut r = RangeSet::default();
        r.insert(0, 1 << 40);
        for k in 0..(2 * super::MAX_RANGES as u64) {
            r.remove(2 * k + 1, 2 * k + 2);
        }
        assert!(r.0.len() <= super::MAX_RANGES, "{} ranges", r.0.len());
        assert!(r.contains(1 << 39), "the longer piece of a split is kept");
    }

    /// Inserts and removes agree with a set of block indexes (below the range limit).
    #[test]
    fn range_set_matches_a_model() {
        let mut r = RangeSet::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x = 12345u64;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = (x >> 33) % 200;
            let b = a + (x >> 20) % 12;
            if x & 1 == 0 {
                r.insert(a, b);
                model.extend(a..b);
            } else {
                r.remove(a, b);
                for i in a..b {
                    model.remove(&i);
                }
            }
            assert!(r.0.windows(2).all(|w| w[0].1 < w[1].0), "{:?}", r.0);
            assert!(r.0.iter().all(|&(a, b)| a < b));
            for i in 0..220 {
                assert_eq!(r.contains(i), model.contains(&i), "block {i}");
            }
        }
    }
}

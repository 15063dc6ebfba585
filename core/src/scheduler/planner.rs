//! The planner's state and event handling. Picking lives in `pick.rs`, invariants in
//! `invariants.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::order::BisectCursor;
use super::{
    Action, Availability, Bitfield, Event, Failure, Order, PeerId, PeerStats, Prioritize,
    RangeHandle, RequestId, SchedulerOptions, SchedulerStats,
};

/// A far-future offset used for the ETA of copies nobody expects to arrive.
pub(crate) const NEVER: Duration = Duration::from_secs(3600);

/// One request in a peer's FIFO queue (send order).
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) id: RequestId,
    pub(crate) block: u64,
    pub(crate) bytes: u64,
    pub(crate) wire: u8,
    pub(crate) level: u8,
    pub(crate) sent_at: Duration,
}

/// One in-flight copy of a block.
#[derive(Clone, Debug)]
pub(crate) struct Copy {
    pub(crate) peer: PeerId,
    pub(crate) id: RequestId,
    pub(crate) sent_at: Duration,
    pub(crate) expected_at: Duration,
    pub(crate) late: bool,
}

/// A block in flight somewhere.
#[derive(Clone, Debug)]
pub(crate) struct Inflight {
    pub(crate) copies: Vec<Copy>,
    /// Estimated size (fixed when first requested).
    pub(crate) bytes: u64,
    /// Effective level: max over the ranges wanting it.
    pub(crate) level: u8,
    /// OR of the wanting ranges' hotswap flags.
    pub(crate) hotswap: bool,
}

/// Per-peer state.
#[derive(Clone, Debug)]
pub(crate) struct PeerState {
    pub(crate) contig: u64,
    pub(crate) bits: Bitfield,
    pub(crate) no_data: BTreeSet<u64>,
    pub(crate) queue: VecDeque<Req>,
    pub(crate) outstanding: u64,
    pub(crate) by_wire: [u64; 3],
    /// Requests below [`URGENT_PRIORITY`].
    pub(crate) low: usize,
    /// Desired depth: no request is issued while the queue is this long.
    pub(crate) depth: usize,
    /// Hard limit, `≥ depth`. When the desired depth shrinks the queue is not cut (cancelling
    /// requests the responder may already have committed to the connection would only turn
    /// them into duplicates); the cap follows the queue down to the new depth instead.
    pub(crate) cap: usize,
    pub(crate) srtt: Option<Duration>,
    pub(crate) rttvar: Duration,
    pub(crate) backoff: u32,
    pub(crate) min_rtt: Option<Duration>,
    pub(crate) ewma_bytes: f64,
    pub(crate) ewma_secs: f64,
    pub(crate) last_arrival: Option<Duration>,
    /// Throughput window: when it started and the blocks that arrived in it since.
    pub(crate) win_start: Option<Duration>,
    pub(crate) win_blocks: u64,
    /// Blocks per second the peer delivered, averaged over windows of at least
    /// [`THROUGHPUT_WINDOW`] (0 until the first window closes). Unlike [`PeerState::rate`],
    /// which follows head-of-line service times, it is not fooled by blocks arriving in bursts.
    pub(crate) throughput: f64,
    /// Before the first arrival: when the first request was sent.
    pub(crate) silent_since: Option<Duration>,
    pub(crate) snubbed: bool,
    /// Blocks not to give this peer again (timed out or failed there).
    pub(crate) avoid: BTreeSet<u64>,
    pub(crate) stats: PeerStats,
}

impl PeerState {
    fn new(av: Availability, depth: usize) -> Self {
        Self {
            contig: av.contiguous,
            bits: av.bits,
            no_data: BTreeSet::new(),
            queue: VecDeque::new(),
            outstanding: 0,
            by_wire: [0; 3],
            low: 0,
            depth,
            cap: depth,
            srtt: None,
            rttvar: Duration::ZERO,
            backoff: 1,
            min_rtt: None,
            ewma_bytes: 0.0,
            ewma_secs: 0.0,
            last_arrival: None,
            win_start: None,
            win_blocks: 0,
            throughput: 0.0,
            silent_since: None,
            snubbed: false,
            avoid: BTreeSet::new(),
            stats: PeerStats::default(),
        }
    }

    /// Whether the peer has block `b`.
    pub(crate) fn has(&self, b: u64) -> bool {
        (b < self.contig || self.bits.get(b))
            && (self.no_data.is_empty() || !self.no_data.contains(&b))
    }

    /// Whether the peer may be given block `b`.
    pub(crate) fn eligible(&self, b: u64) -> bool {
        self.has(b) && (self.avoid.is_empty() || !self.avoid.contains(&b))
    }

    /// Sets the desired depth; the cap follows (see [`PeerState::cap`]).
    pub(crate) fn set_depth(&mut self, d: usize) {
        self.depth = d;
        self.cap = d.max(self.queue.len());
    }

    pub(crate) fn rate(&self) -> Option<f64> {
        (self.ewma_secs > 0.0).then(|| self.ewma_bytes / self.ewma_secs)
    }

    /// Counts an arrival at `now` for a request sent at `sent_at` in the throughput window.
    /// A window restarts when the peer was idle (the request went out after its last
    /// arrival), so idle time is not taken for slowness.
    fn count_throughput(&mut self, now: Duration, sent_at: Duration) {
        let idle = self.last_arrival.is_none_or(|l| sent_at > l);
        match self.win_start {
            Some(start) if !idle => {
                self.win_blocks += 1;
                let elapsed = now.saturating_sub(start);
                if elapsed >= THROUGHPUT_WINDOW {
                    let t = self.win_blocks as f64 / elapsed.as_secs_f64();
                    self.throughput = if self.throughput == 0.0 {
                        t
                    } else {
                        (self.throughput + t) / 2.0
                    };
                    self.win_start = Some(now);
                    self.win_blocks = 0;
                }
            }
            _ => {
                self.win_start = Some(sent_at);
                self.win_blocks = 1;
            }
        }
    }

    /// The most requests this peer may have in flight: [`SchedulerOptions::max_depth`], or for
    /// a peer that drains that many within [`SchedulerOptions::fast_queue_time`], what it
    /// delivers in that time (at most [`SchedulerOptions::max_depth_fast`]).
    fn depth_limit(&self, opts: &SchedulerOptions) -> usize {
        let fast = (self.throughput * opts.fast_queue_time.as_secs_f64()) as usize;
        opts.max_depth.max(fast.min(opts.max_depth_fast))
    }
}

/// Shortest window over which [`PeerState::throughput`] is measured.
pub(crate) const THROUGHPUT_WINDOW: Duration = Duration::from_millis(50);

/// A registered range.
#[derive(Clone, Debug)]
pub(crate) struct RangeState {
    pub(crate) start: u64,
    pub(crate) end: Option<u64>,
    pub(crate) level: u8,
    pub(crate) order: Order,
    pub(crate) hotswap: bool,
    /// No block below this (within the range) is missing.
    pub(crate) first_missing: u64,
    /// Linear: the far edge of every window the planner has picked from.
    pub(crate) window_end: u64,
    pub(crate) cursor: BisectCursor,
    pub(crate) bisect_n: u64,
    /// Bisect: blocks released after the cursor passed them.
    pub(crate) revisit: VecDeque<u64>,
    pub(crate) done: bool,
    /// Some block of this range was cleared after it was reported done.
    pub(crate) lost_after_done: bool,
}

impl RangeState {
    pub(crate) fn eff_end(&self, length: u64) -> u64 {
        self.end.map_or(length, |e| e.min(length))
    }

    pub(crate) fn contains(&self, b: u64, length: u64) -> bool {
        b >= self.start && b < self.eff_end(length)
    }
}

/// What the planner decided to do with a block for a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PickKind {
    /// Not in flight anywhere.
    Fresh,
    /// Duplicate of an in-flight request.
    Dup,
    /// Cancel the in-flight copies and re-issue here.
    Move,
}

/// The replication planner. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct Scheduler {
    pub(crate) opts: SchedulerOptions,
    pub(crate) length: u64,
    pub(crate) have: Bitfield,
    pub(crate) reserved: Bitfield,
    /// `have ∪ reserved ∪ storing`.
    pub(crate) busy: Bitfield,
    /// Blocks received from a peer and being stored ([`Event::BlockReceived`]), with their
    /// bytes; the sum of those is `storing_bytes`.
    pub(crate) storing: BTreeMap<(u64, PeerId), u64>,
    pub(crate) storing_bytes: u64,
    /// The blocks of `storing`.
    pub(crate) storing_bits: Bitfield,
    pub(crate) inflight: BTreeMap<u64, Inflight>,
    /// Blocks with a late copy and no timely copy.
    pub(crate) late: BTreeSet<u64>,
    pub(crate) peers: BTreeMap<PeerId, PeerState>,
    pub(crate) ranges: BTreeMap<u64, RangeState>,
    pub(crate) levels: [Vec<u64>; 8],
    pub(crate) rr: [usize; 8],
    pub(crate) next_handle: u64,
    pub(crate) next_req: u64,
    pub(crate) rng: u64,
    pub(crate) avg_block: f64,
    pub(crate) dup_inflight_bytes: u64,
    pub(crate) stats: SchedulerStats,
    pub(crate) default_range: Option<RangeHandle>,
    pub(crate) now: Duration,
    // Per planning pass.
    pub(crate) pass_window: u64,
    pub(crate) pass_max_rate: f64,
    pub(crate) pass_urgent_exists: bool,
    pub(crate) pass_urgent_waiting: Option<bool>,
}

impl Scheduler {
    /// A planner for a log of `length` blocks of which `local` are already stored.
    pub fn new(opts: SchedulerOptions, length: u64, local: Bitfield) -> Self {
        let busy = local.clone();
        let mut s = Self {
            rng: opts.seed ^ 0x5DEE_CE66_D1CE_4E5B,
            avg_block: opts.default_block_size as f64,
            opts,
            length,
            have: local,
            reserved: Bitfield::new(),
            busy,
            storing: BTreeMap::new(),
            storing_bytes: 0,
            storing_bits: Bitfield::new(),
            inflight: BTreeMap::new(),
            late: BTreeSet::new(),
            peers: BTreeMap::new(),
            ranges: BTreeMap::new(),
            levels: Default::default(),
            rr: [0; 8],
            next_handle: 1,
            next_req: 1,
            dup_inflight_bytes: 0,
            stats: SchedulerStats::default(),
            default_range: None,
            now: Duration::ZERO,
            pass_window: 0,
            pass_max_rate: 0.0,
            pass_urgent_exists: false,
            pass_urgent_waiting: None,
        };
        if !s.opts.sparse {
            let (h, _) = s.prioritize(
                Duration::ZERO,
                Prioritize {
                    start: 0,
                    end: None,
                    priority: 0,
                    order: Order::Random,
                    hotswap: true,
                },
            );
            s.default_range = Some(h);
        }
        s
    }

    // ---------------------------------------------------------------- public API

    /// Registers a range; returns its handle and the resulting actions (possibly
    /// [`Action::RangeDone`] right away if every block is already local).
    pub fn prioritize(&mut self, now: Duration, spec: Prioritize) -> (RangeHandle, Vec<Action>) {
        let mut out = Vec::new();
        self.now = self.now.max(now);
        let now = self.now;
        let h = self.next_handle;
        self.next_handle += 1;
        let level = spec.priority.min(super::MAX_PRIORITY);
        let end = spec.end.map(|e| e.max(spec.start));
        let r = RangeState {
            start: spec.start,
            end,
            level,
            order: spec.order,
            hotswap: spec.hotswap,
            first_missing: self.have.next_unset(spec.start),
            window_end: spec.start,
            cursor: BisectCursor::default(),
            bisect_n: 0,
            revisit: VecDeque::new(),
            done: false,
            lost_after_done: false,
        };
        let lo = r.start;
        let hi = r.end.unwrap_or(u64::MAX);
        self.ranges.insert(h, r);
        self.levels[level as usize].push(h);
        // Blocks already in flight for other ranges now also serve this one.
        let keys: Vec<u64> = self.inflight.range(lo..hi).map(|(b, _)| *b).collect();
        for b in keys {
            self.refresh_meta(b, &mut out);
        }
        self.check_done(h, &mut out);
        self.check_timeouts(now, &mut out);
        self.plan(now, &mut out);
        (RangeHandle(h), out)
    }

    /// Withdraws a range (same as [`Event::Unprioritize`]).
    pub fn unprioritize(&mut self, now: Duration, handle: RangeHandle) -> Vec<Action> {
        self.handle(now, Event::Unprioritize { handle })
    }

    /// Applies one event at virtual time `now` and returns the actions to perform.
    /// `now` earlier than a previous call is treated as that previous time.
    pub fn handle(&mut self, now: Duration, event: Event) -> Vec<Action> {
        self.handle_all(now, std::iter::once(event))
    }

    /// Feeds several events, then checks timeouts and plans once (for a batch of announcements
    /// such as the runs of one `bitfield` message: one planning pass, not one per run).
    pub fn handle_all(
        &mut self,
        now: Duration,
        events: impl IntoIterator<Item = Event>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        self.now = self.now.max(now);
        let now = self.now;
        for event in events {
            self.apply_event(now, event, &mut out);
        }
        self.check_timeouts(now, &mut out);
        self.plan(now, &mut out);
        out
    }

    fn apply_event(&mut self, now: Duration, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::PeerAdded { peer, availability } => self.on_peer_added(peer, availability),
            Event::PeerRemoved { peer } => self.on_peer_removed(peer, out),
            Event::PeerReset { peer } => self.on_peer_reset(peer, out),
            Event::PeerHave {
                peer,
                start,
                length,
            } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    let end = start.saturating_add(length);
                    if start <= p.contig {
                        p.contig = p.contig.max(end);
                    } else {
                        p.bits.set_range(start, end, true);
                    }
                    // Fold a bitfield run that now touches the prefix into it.
                    if p.bits.get(p.contig) {
                        let e = p.bits.next_unset(p.contig);
                        p.contig = e;
                    }
                    let gone: Vec<u64> = p.no_data.range(start..end).copied().collect();
                    for b in gone {
                        p.no_data.remove(&b);
                    }
                }
            }
            Event::PeerDropped {
                peer,
                start,
                length,
            } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    let end = start.saturating_add(length);
                    if start < p.contig {
                        let old = p.contig;
                        p.bits.set_range(end, old, true);
                        p.contig = start;
                    }
                    p.bits.set_range(start, end, false);
                }
            }
            Event::Unprioritize { handle } => self.on_unprioritize(handle.0, out),
            Event::BlockReceived { peer, block, bytes } => {
                self.on_received(now, peer, block, bytes, out)
            }
            Event::BlockArrived { peer, block, bytes } => {
                self.on_arrival(now, peer, block, bytes, out)
            }
            Event::RequestFailed {
                peer,
                block,
                reason,
            } => {
                self.release_storing(block, peer);
                self.remove_copy(block, peer, false, out);
                if let Some(p) = self.peers.get_mut(&peer) {
                    match reason {
                        Failure::NoData => {
                            p.no_data.insert(block);
                        }
                        Failure::Error => {
                            p.avoid.insert(block);
                        }
                        Failure::Retry => {}
                    }
                }
            }
            Event::LocalHave { start, length } => {
                let end = start.saturating_add(length);
                let mut b = self.have.next_unset(start);
                while b < end {
                    self.mark_local(b, out);
                    b = self.have.next_unset(b + 1);
                }
            }
            Event::LocalLost { start, length } => {
                let end = start.saturating_add(length);
                let mut b = self.have.next_set(start);
                while let Some(i) = b.filter(|&i| i < end) {
                    self.unmark_local(i);
                    b = self.have.next_set(i + 1);
                }
            }
            Event::Truncated { length } => {
                let lost: Vec<u64> = self.inflight.range(length..).map(|(b, _)| *b).collect();
                for b in lost {
                    let peers: Vec<PeerId> =
                        self.inflight[&b].copies.iter().map(|c| c.peer).collect();
                    for p in peers {
                        self.remove_copy(b, p, true, out);
                    }
                }
                let mut b = self.have.next_set(length);
                while let Some(i) = b {
                    self.unmark_local(i);
                    b = self.have.next_set(i + 1);
                }
                self.length = self.length.min(length);
            }
            Event::LengthGrew { length } => {
                if length > self.length {
                    self.length = length;
                    let hs: Vec<u64> = self.ranges.keys().copied().collect();
                    for h in hs {
                        self.check_done(h, out);
                    }
                }
            }
            Event::Tick => {}
        }
    }

    /// The built-in whole-log range (non-sparse schedulers only).
    pub fn default_range(&self) -> Option<RangeHandle> {
        self.default_range
    }

    /// The options.
    pub fn options(&self) -> &SchedulerOptions {
        &self.opts
    }

    /// Known log length.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Local blocks.
    pub fn local(&self) -> &Bitfield {
        &self.have
    }

    /// Whether block `b` is local.
    pub fn has(&self, b: u64) -> bool {
        self.have.get(b)
    }

    /// Peers holding an in-flight request for `b`.
    pub fn holders(&self, b: u64) -> Vec<PeerId> {
        self.inflight
            .get(&b)
            .map(|i| i.copies.iter().map(|c| c.peer).collect())
            .unwrap_or_default()
    }

    /// Number of blocks in flight.
    pub fn inflight_blocks(&self) -> usize {
        self.inflight.len()
    }

    /// Duplicate bytes in flight.
    pub fn dup_inflight_bytes(&self) -> u64 {
        self.dup_inflight_bytes
    }

    /// Connected peers.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// A peer's counters.
    pub fn peer_stats(&self, peer: PeerId) -> Option<&PeerStats> {
        self.peers.get(&peer).map(|p| &p.stats)
    }

    /// A peer's current timeout (`rto × backoff`).
    pub fn request_timeout(&self, peer: PeerId) -> Option<Duration> {
        self.peers.get(&peer).map(|p| self.rto(p))
    }

    /// A peer's in-flight request count and depth limit.
    pub fn peer_load(&self, peer: PeerId) -> Option<(usize, usize)> {
        self.peers.get(&peer).map(|p| (p.queue.len(), p.depth))
    }

    /// Whether the peer is snubbed.
    pub fn is_snubbed(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.snubbed)
    }

    /// Global counters.
    pub fn stats(&self) -> &SchedulerStats {
        &self.stats
    }

    /// The first block of the range not yet local (`None` for unknown handles).
    pub fn first_missing(&self, handle: RangeHandle) -> Option<u64> {
        self.ranges
            .get(&handle.0)
            .map(|r| self.have.next_unset(r.first_missing))
    }

    /// Whether the range is complete.
    pub fn is_done(&self, handle: RangeHandle) -> bool {
        self.ranges.get(&handle.0).is_some_and(|r| r.done)
    }

    // ---------------------------------------------------------------- events

    fn on_peer_added(&mut self, peer: PeerId, av: Availability) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.contig = av.contiguous;
            p.bits = av.bits;
            p.no_data.clear();
        } else {
            let depth = self.opts.initial_depth.clamp(1, self.opts.max_depth.max(1));
            self.peers.insert(peer, PeerState::new(av, depth));
        }
    }

    fn on_peer_removed(&mut self, peer: PeerId, out: &mut Vec<Action>) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let blocks: Vec<u64> = p.queue.iter().map(|r| r.block).collect();
        for b in blocks {
            self.remove_copy(b, peer, false, out);
        }
        // its blocks still being stored are wanted again (if they are stored after all, their
        // arrival makes them local as any arrival does)
        let storing: Vec<u64> = self
            .storing
            .keys()
            .filter(|(_, p)| *p == peer)
            .map(|(b, _)| *b)
            .collect();
        for b in storing {
            self.release_storing(b, peer);
        }
        self.peers.remove(&peer);
    }

    /// [`Event::PeerReset`]: the request and availability state of a peer go, its estimators
    /// stay.
    fn on_peer_reset(&mut self, peer: PeerId, out: &mut Vec<Action>) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        // (as at a removal: each block is released, or stays with its other copies)
        let blocks: Vec<u64> = p.queue.iter().map(|r| r.block).collect();
        for b in blocks {
            self.remove_copy(b, peer, false, out);
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.contig = 0;
        p.bits = Bitfield::new();
        p.no_data.clear();
        p.avoid.clear();
    }

    fn on_unprioritize(&mut self, h: u64, out: &mut Vec<Action>) {
        let Some(r) = self.ranges.remove(&h) else {
            return;
        };
        let lvl = r.level as usize;
        if let Some(pos) = self.levels[lvl].iter().position(|&x| x == h) {
            self.levels[lvl].remove(pos);
            if self.rr[lvl] > pos {
                self.rr[lvl] -= 1;
            }
            let n = self.levels[lvl].len();
            if n == 0 || self.rr[lvl] >= n {
                self.rr[lvl] = 0;
            }
        }
        if self.default_range == Some(RangeHandle(h)) {
            self.default_range = None;
        }
        // Other linear ranges may now be the ones wanting these blocks.
        self.refresh_windows();
        let hi = r.end.unwrap_or(u64::MAX);
        let keys: Vec<u64> = self.inflight.range(r.start..hi).map(|(b, _)| *b).collect();
        for b in keys {
            self.refresh_meta(b, out);
        }
    }

    fn on_arrival(
        &mut self,
        now: Duration,
        peer: Option<PeerId>,
        b: u64,
        bytes: u64,
        out: &mut Vec<Action>,
    ) {
        let useful = !self.have.get(b);
        if useful {
            // Mark first so that removing the arriving copy does not release the block.
            self.have.set(b, true);
            self.busy.set(b, true);
        }
        let mut requested = false;
        if let Some(pid) = peer {
            // answered (and sampled) when it was received
            if self.take_storing(b, pid).is_some() {
                requested = true;
            } else if let Some(req) = self.take_request(b, pid) {
                requested = true;
                self.sample(now, pid, &req, bytes, out);
            }
            if let Some(p) = self.peers.get_mut(&pid) {
                if useful {
                    p.stats.bytes += bytes;
                    p.stats.blocks += 1;
                } else {
                    p.stats.wasted_bytes += bytes;
                }
            }
        }
        if !requested {
            self.stats.unrequested_arrivals += 1;
        }
        if useful {
            self.stats.useful_bytes += bytes;
            self.avg_block = self.avg_block * 0.875 + bytes as f64 * 0.125;
            self.finish_local(b, out);
        } else {
            self.stats.wasted_bytes += bytes;
        }
    }

    /// `peer` answered its request for `b`; the block is being stored.
    fn on_received(
        &mut self,
        now: Duration,
        pid: PeerId,
        b: u64,
        bytes: u64,
        out: &mut Vec<Action>,
    ) {
        // a block already local, or one this peer was not asked for (cancelled meanwhile), is
        // dealt with when it arrives
        let asked = self
            .inflight
            .get(&b)
            .is_some_and(|i| i.copies.iter().any(|c| c.peer == pid));
        if self.have.get(b) || !asked || self.storing.contains_key(&(b, pid)) {
            return;
        }
        // marked first so that removing the answered copy does not release the block
        self.storing.insert((b, pid), bytes);
        self.storing_bytes += bytes;
        self.storing_bits.set(b, true);
        self.busy.set(b, true);
        if let Some(req) = self.take_request(b, pid) {
            self.sample(now, pid, &req, bytes, out);
        }
        // the first answer wins: other copies in flight are cancelled (if the store fails,
        // the block is wanted again like any other)
        if let Some(inf) = self.inflight.get(&b) {
            let peers: Vec<PeerId> = inf.copies.iter().map(|c| c.peer).collect();
            for p in peers {
                self.remove_copy(b, p, true, out);
            }
        }
    }

    /// Whether some peer's copy of `b` is being stored.
    pub(crate) fn is_storing(&self, b: u64) -> bool {
        self.storing_bits.get(b)
    }

    /// The first block from `b` on that is neither local nor being stored: where a linear
    /// window starts (a block being stored has arrived, as far as asking peers goes).
    pub(crate) fn next_unsettled(&self, mut b: u64) -> u64 {
        loop {
            b = self.have.next_unset(b);
            if !self.storing_bits.get(b) {
                return b;
            }
            b = self.storing_bits.next_unset(b);
        }
    }

    /// The peers whose copy of `b` is being stored.
    pub(crate) fn storing_peers(&self, b: u64) -> impl Iterator<Item = PeerId> + '_ {
        self.storing
            .range((b, PeerId(0))..=(b, PeerId(u64::MAX)))
            .map(|(&(_, p), _)| p)
    }

    /// Forgets `peer`'s copy of `b` being stored; its bytes if there was one.
    fn take_storing(&mut self, b: u64, peer: PeerId) -> Option<u64> {
        let bytes = self.storing.remove(&(b, peer))?;
        self.storing_bytes -= bytes;
        if self.storing_peers(b).next().is_none() {
            self.storing_bits.set(b, false);
        }
        Some(bytes)
    }

    /// `peer`'s copy of `b` is no longer being stored (it failed, or the peer left): the block
    /// is wanted again unless it is local, in flight or stored from another peer.
    fn release_storing(&mut self, b: u64, peer: PeerId) {
        if self.take_storing(b, peer).is_none() {
            return;
        }
        if !self.have.get(b) && !self.inflight.contains_key(&b) && !self.is_storing(b) {
            self.busy.set(b, false);
            self.on_released(b);
        }
    }

    /// Removes `peer`'s copy of `b` (the request completed); `None` if it had none.
    fn take_request(&mut self, b: u64, peer: PeerId) -> Option<Req> {
        let mut sink = Vec::new();
        self.remove_copy(b, peer, false, &mut sink)
    }

    /// Updates the peer's estimators from a completed request.
    fn sample(&mut self, now: Duration, pid: PeerId, req: &Req, bytes: u64, out: &mut Vec<Action>) {
        let opts_min = self.opts.min_depth;
        let avg_block = self.avg_block.max(1.0);
        let queue_time = self.opts.queue_time;
        let Some(p) = self.peers.get_mut(&pid) else {
            return;
        };
        p.count_throughput(now, req.sent_at);
        // the byte bound counts this block too, so the first large blocks bound it at once
        // (the average moves slowly); never below the smallest depth (clamp needs min <= max)
        let max_depth = p
            .depth_limit(&self.opts)
            .min((self.opts.max_depth_bytes as f64 / avg_block.max(bytes as f64)) as usize)
            .max(opts_min);
        let start = req.sent_at.max(p.last_arrival.unwrap_or(Duration::ZERO));
        let interval = now.saturating_sub(start).max(Duration::from_micros(1));
        match p.srtt {
            None => {
                p.srtt = Some(interval);
                p.rttvar = interval / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(interval);
                p.rttvar = p.rttvar * 3 / 4 + diff / 4;
                p.srtt = Some(s * 7 / 8 + interval / 8);
            }
        }
        let rtt = now.saturating_sub(req.sent_at);
        p.min_rtt = Some(p.min_rtt.map_or(rtt, |m| m.min(rtt)));
        if p.ewma_secs == 0.0 {
            p.ewma_bytes = bytes as f64;
            p.ewma_secs = interval.as_secs_f64();
        } else {
            p.ewma_bytes = p.ewma_bytes * 0.875 + bytes as f64 * 0.125;
            p.ewma_secs = p.ewma_secs * 0.875 + interval.as_secs_f64() * 0.125;
        }
        p.last_arrival = Some(now);
        p.silent_since = None;
        p.backoff = 1;
        let rate = p.rate().unwrap_or(1.0);
        let horizon = p.min_rtt.unwrap_or(Duration::ZERO) + queue_time;
        let target = ((rate * horizon.as_secs_f64() / avg_block) as usize)
            .clamp(opts_min.max(1), max_depth.max(1));
        if p.snubbed {
            p.snubbed = false;
            p.avoid.clear();
            p.set_depth(target);
            out.push(Action::Unsnub { peer: pid });
        } else if target > p.depth || target * 4 < p.depth * 3 {
            p.set_depth(target);
        }
    }

    /// Cancels the most recent requests of `pid` beyond its depth (snubbing).
    pub(crate) fn trim(&mut self, pid: PeerId, out: &mut Vec<Action>) {
        loop {
            let Some(p) = self.peers.get_mut(&pid) else {
                return;
            };
            if p.queue.len() <= p.depth {
                p.cap = p.depth;
                return;
            }
            let b = p.queue.back().map(|r| r.block).unwrap_or_default();
            self.remove_copy(b, pid, true, out);
        }
    }

    /// Block `b` became local: cancel its copies, advance ranges, report completions.
    pub(crate) fn mark_local(&mut self, b: u64, out: &mut Vec<Action>) {
        if !self.have.set(b, true) {
            return;
        }
        self.busy.set(b, true);
        self.finish_local(b, out);
    }

    /// `b` is no longer local: it is wanted again by the unfinished ranges covering it.
    fn unmark_local(&mut self, b: u64) {
        if !self.have.set(b, false) {
            return;
        }
        // a local block is never in flight (busy == have ∪ reserved, disjoint)
        self.busy.set(b, false);
        for r in self.ranges.values_mut() {
            if b >= r.start {
                // (`first_missing` may run past the range's end)
                r.first_missing = r.first_missing.min(b);
                r.lost_after_done |= r.done && r.end.is_none_or(|e| b < e);
            }
        }
        self.on_released(b);
    }

    /// `b` was just marked local: cancel its remaining copies, advance ranges.
    fn finish_local(&mut self, b: u64, out: &mut Vec<Action>) {
        if let Some(inf) = self.inflight.get(&b) {
            let peers: Vec<PeerId> = inf.copies.iter().map(|c| c.peer).collect();
            for p in peers {
                self.remove_copy(b, p, true, out);
            }
        }
        // other peers' copies being stored are duplicates now (their arrival, if any, counts
        // as wasted)
        let storing: Vec<PeerId> = self.storing_peers(b).collect();
        for p in storing {
            self.take_storing(b, p);
        }
        self.late.remove(&b);
        let hs: Vec<u64> = self
            .ranges
            .iter()
            .filter(|(_, r)| !r.done && b >= r.start && r.end.is_none_or(|e| b < e))
            .map(|(h, _)| *h)
            .collect();
        for h in hs {
            if let Some(r) = self.ranges.get_mut(&h)
                && r.first_missing == b
            {
                r.first_missing = self.have.next_unset(b);
            }
            self.check_done(h, out);
        }
    }

    pub(crate) fn check_done(&mut self, h: u64, out: &mut Vec<Action>) {
        let length = self.length;
        let Some(r) = self.ranges.get_mut(&h) else {
            return;
        };
        if r.done {
            return;
        }
        r.first_missing = self.have.next_unset(r.first_missing.max(r.start));
        if let Some(e) = r.end
            && e <= length
            && r.first_missing >= e
        {
            r.done = true;
            out.push(Action::RangeDone {
                handle: RangeHandle(h),
            });
        }
    }

    /// Head-of-line timeouts: snub the peer, trim it to one request, mark the head late.
    pub(crate) fn check_timeouts(&mut self, now: Duration, out: &mut Vec<Action>) {
        let pids: Vec<PeerId> = self.peers.keys().copied().collect();
        for pid in pids {
            let p = &self.peers[&pid];
            let Some(head) = p.queue.front() else {
                continue;
            };
            let (hb, hid) = (head.block, head.id);
            let started = head.sent_at.max(p.last_arrival.unwrap_or(Duration::ZERO));
            let already = self
                .inflight
                .get(&hb)
                .and_then(|i| i.copies.iter().find(|c| c.id == hid))
                .is_some_and(|c| c.late);
            if already || now.saturating_sub(started) <= self.rto(p) {
                continue;
            }
            let p = self.peers.get_mut(&pid).expect("peer");
            p.stats.timeouts += 1;
            p.backoff = (p.backoff * 2).min(64);
            p.avoid.insert(hb);
            if !p.snubbed {
                p.snubbed = true;
                p.stats.snubs += 1;
                p.depth = 1;
                out.push(Action::Snub { peer: pid });
            }
            if let Some(c) = self
                .inflight
                .get_mut(&hb)
                .and_then(|inf| inf.copies.iter_mut().find(|c| c.id == hid))
            {
                c.late = true;
            }
            self.refresh_late(hb);
            self.trim(pid, out);
        }
    }

    /// Keeps `late` = blocks with a late copy and no timely copy.
    pub(crate) fn refresh_late(&mut self, b: u64) {
        let is_late = self
            .inflight
            .get(&b)
            .is_some_and(|i| i.copies.iter().any(|c| c.late) && i.copies.iter().all(|c| c.late));
        if is_late {
            self.late.insert(b);
        } else {
            self.late.remove(&b);
        }
    }

    pub(crate) fn rto(&self, p: &PeerState) -> Duration {
        let base = match p.srtt {
            None => self.opts.rto_initial,
            Some(s) => (s + (p.rttvar * 4).max(Duration::from_millis(1)))
                .clamp(self.opts.rto_min, self.opts.rto_max),
        };
        (base * p.backoff).min(self.opts.rto_max.max(base))
    }
}

//! Replication scheduler: which block to request from which peer, and when.
//!
//! The planner ([`Scheduler`]) is a pure, deterministic state machine with no I/O and no clock:
//! it consumes [`Event`]s stamped with a virtual `now` (a [`Duration`] since any fixed origin)
//! and returns [`Action`]s. The same input sequence always yields the same output (its only
//! randomness is a seeded generator in its state). The wire layer maps
//! [`Action::Request`] to a hypercore `request` message (one block per message, as JS
//! hypercore does), [`Action::Cancel`] to `cancel`, and feeds `data` / `noData` / `range` /
//! `bitfield` messages back as events. [`sim`] drives the same planner in a discrete-event
//! simulation in virtual time.
//!
//! # Ranges
//! [`Scheduler::prioritize`] registers a [`Prioritize`] range and returns a [`RangeHandle`];
//! [`Action::RangeDone`] reports when every block of it is local. [`Scheduler::unprioritize`]
//! withdraws it and cancels in-flight requests that no other range still wants (an async
//! wrapper turns the handle into a future that unprioritizes on drop). A `get(i)` is
//! [`Prioritize::get`]: `i..i+1`, priority 7, linear, hotswap.
//!
//! * **Priority**: levels 0–7 are strict: every pick at level 7 is attempted before level 6,
//!   and so on; ranges of one level are served round-robin. A block covered by several ranges
//!   takes the highest level and the OR of their `hotswap` flags. While a range of level ≥ 6
//!   has blocks a connected peer could serve but nobody is fetching, a peer with depth *C* may
//!   hold at most ⌈C/4⌉ requests below level 6 (libtorrent's zero-sum rule); an urgent block
//!   may preempt (cancel) the most recent low-level request of a full peer to get a slot.
//! * **Orders**: [`Order::Random`] (a fresh random start offset per pick, scan with
//!   wrap-around, as hypercore v4), [`Order::Linear`] (a sliding window
//!   `[first_missing, first_missing + Σ peer depths)`; peers are visited by expected delivery
//!   time so the lowest missing block goes to the peer expected to deliver first; snubbed and
//!   slow peers (rate < ¼ of the fastest) take from the far end of the window, and only blocks
//!   the faster peers would not reach before the slow peer could deliver them
//!   (`offset ≥ (eta(slow) − now) × Σ rate(faster) / block size`); one of the first
//!   [`SchedulerOptions::critical_scan`] missing blocks held only by a peer that another
//!   peer is expected to beat by a margin is duplicated (hotswap) or moved (cancel +
//!   re-issue)), [`Order::Bisect`] (midpoint-first breadth-first order, see [`order`], then a
//!   linear sweep).
//! * **Hotswap**: an in-flight block may be duplicated to a peer expected to beat the holder
//!   (`eta(p) + margin < eta(best copy)`, `margin = max(rtt(p), 0.2·(eta(copy) − now))`) and at
//!   least 1.25× as fast as every timely holder (so a slow peer never duplicates a fast peer's
//!   queue tail), with at most [`SchedulerOptions::max_copies`] copies and at most
//!   [`SchedulerOptions::dup_budget_bytes`] duplicate bytes in flight; duplicates also stop while
//!   the bytes actually wasted exceed `max(dup_budget_bytes, waste_ratio × useful bytes)`. The
//!   first arrival wins and the other copies are cancelled. Duplicates go on the wire at
//!   priority ≥ 1 so the helper serves them ahead of its bulk queue.
//! * **Timeouts**: per peer, RFC 6298 `srtt`/`rttvar` over head-of-line service times
//!   (`now − max(sent_at, last arrival from that peer)`), `rto = clamp(srtt + 4·rttvar)` with
//!   exponential backoff. A late head request snubs the peer (depth 1, its other requests are
//!   cancelled) and its block becomes eligible for another peer whatever the range's hotswap
//!   flag: duplicated if hotswap and the budget allow, otherwise moved. The peer is unsnubbed by
//!   its next arrival. Timeouts are checked on every event ([`Event::Tick`] just advances time).
//! * **Estimates**: `eta(p) = now + rtt(p) + (bytes queued at p at the same or higher wire
//!   priority + up to queue_time worth of lower-priority bytes the responder may already have
//!   committed + one block) / rate(p)`. Rates are EWMAs of bytes over head-of-line service
//!   time; `rtt` is the minimum request→arrival time. Before its first arrival a peer is
//!   assumed to have [`SchedulerOptions::default_rate`] / [`SchedulerOptions::default_rtt`],
//!   degraded by how long it has been silent since its first request (a peer whose requests
//!   are always moved away before it answers is thereby recognised as slow).
//! * **Depth**: `clamp(rate × (rtt + queue_time) / block, min_depth, max_depth)`, and at most
//!   `max_depth_bytes / block` (small blocks may have many requests in flight, large ones not
//!   many bytes). A fast peer, whose throughput (blocks per second, measured over windows of at
//!   least 50 ms) would drain `max_depth` requests within `fast_queue_time`, may go up to
//!   `throughput × fast_queue_time`, at most `max_depth_fast`: a libdat peer serving 1 KiB
//!   blocks gains from 2,000 requests in flight, the JS reference serves worse from them
//!   ([`SchedulerOptions::initial_depth`] before the first arrival, 1 when snubbed). Growth is
//!   immediate; a shrink is applied by not issuing until the queue has drained (cancelling
//!   requests the responder may already have sent would only create duplicates). Only
//!   snubbing cancels.
//! * **Received, then stored**: a driver that verifies and stores blocks apart from receiving
//!   them reports each answer as it arrives ([`Event::BlockReceived`]): the request is answered
//!   and sampled then, so the peer's queue refills while the block is stored, and the block is
//!   asked of nobody until its [`Event::BlockArrived`] (stored) or a failure (wanted again). At
//!   most [`SchedulerOptions::max_storing_bytes`] wait to be stored; past that no request goes
//!   out. A linear window starts after them.
//! * **Whole-log default**: unless [`SchedulerOptions::sparse`] is set, the scheduler starts
//!   with a live range `0..` at priority 0, random order, hotswap on
//!   ([`Scheduler::default_range`]).
//!
//! # Wire priority
//! [`wire_priority`] maps levels to hypercore's request priority: level 7 (a `get`) →
//! 2 (`VERY_HIGH`), levels 5–6 → 1 (`HIGH`), levels 0–4 → 0 (`NORMAL`, flag omitted).
//! Hotswap duplicates and moves are sent at least at 1. JS hypercore's `ReceiverQueue` serves
//! priority requests first, which the simulator models.

use std::time::Duration;

pub mod bitfield;
mod invariants;
pub mod order;
mod pick;
mod planner;
mod requests;
pub mod sim;

pub use bitfield::Bitfield;
pub use order::{BisectCursor, BisectSearch, bisect_index, bisect_order};
pub use planner::Scheduler;

/// A connected peer, as numbered by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

/// Identifies a prioritized range; returned by [`Scheduler::prioritize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RangeHandle(pub(crate) u64);

impl RangeHandle {
    /// The handle's number (unique per scheduler, never reused).
    pub fn id(self) -> u64 {
        self.0
    }
}

/// A request's identity, unique per scheduler. The wire layer may use it as the hypercore
/// request id or map it to its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Highest priority level.
pub const MAX_PRIORITY: u8 = 7;
/// Levels at or above this are "urgent" for the zero-sum rule and preemption.
pub const URGENT_PRIORITY: u8 = 6;

/// Maps a priority level (0–7) to hypercore's wire request priority: 7 → 2 (`VERY_HIGH`),
/// 5–6 → 1 (`HIGH`), else 0 (`NORMAL`).
pub fn wire_priority(level: u8) -> u8 {
    match level {
        7.. => 2,
        5 | 6 => 1,
        _ => 0,
    }
}

/// Order in which a range's blocks are picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Random start offset per pick, scanning with wrap-around (the default).
    #[default]
    Random,
    /// Sliding window from the first missing block.
    Linear,
    /// Midpoint-first, breadth-first over the range, then a linear sweep.
    Bisect,
}

/// A range to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prioritize {
    /// First block.
    pub start: u64,
    /// One past the last block; `None` follows the live log (never completes).
    pub end: Option<u64>,
    /// 0–7, 7 most urgent (values above 7 are clamped).
    pub priority: u8,
    /// Pick order.
    pub order: Order,
    /// Allow duplicate requests to faster peers before a timeout.
    pub hotswap: bool,
}

impl Prioritize {
    /// `[start, end)` at priority 4, random order, no hotswap.
    pub fn range(start: u64, end: u64) -> Self {
        Self {
            start,
            end: Some(end),
            priority: 4,
            order: Order::Random,
            hotswap: false,
        }
    }

    /// A live range `[start, ∞)` at priority 4, random order, no hotswap.
    pub fn live(start: u64) -> Self {
        Self {
            start,
            end: None,
            priority: 4,
            order: Order::Random,
            hotswap: false,
        }
    }

    /// A single-block get: `i..i+1`, priority 7, linear, hotswap.
    pub fn get(i: u64) -> Self {
        Self {
            start: i,
            end: Some(i + 1),
            priority: 7,
            order: Order::Linear,
            hotswap: true,
        }
    }

    /// Sets the priority level.
    pub fn priority(mut self, p: u8) -> Self {
        self.priority = p;
        self
    }

    /// Sets the order.
    pub fn order(mut self, o: Order) -> Self {
        self.order = o;
        self
    }

    /// Sets the hotswap flag.
    pub fn hotswap(mut self, h: bool) -> Self {
        self.hotswap = h;
        self
    }
}

/// What a peer has: a contiguous prefix plus (for sparse peers) a bitfield of further blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Availability {
    /// Blocks `[0, contiguous)`.
    pub contiguous: u64,
    /// Further blocks.
    pub bits: Bitfield,
}

impl Availability {
    /// A peer with blocks `[0, n)`.
    pub fn contiguous(n: u64) -> Self {
        Self {
            contiguous: n,
            bits: Bitfield::new(),
        }
    }

    /// A peer with exactly the blocks in `bits`.
    pub fn bitfield(bits: Bitfield) -> Self {
        Self {
            contiguous: 0,
            bits,
        }
    }
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// `noData`: the peer does not have the block (it is marked missing at that peer).
    NoData,
    /// Any other failure (invalid data, protocol error): the block is avoided at that peer
    /// until its next arrival.
    Error,
    /// The answer was overtaken (a stale proof): the block may be asked again, of any peer.
    Retry,
}

/// An input to the planner.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A peer connected (or re-announced everything it has).
    PeerAdded {
        /// The peer.
        peer: PeerId,
        /// What it has.
        availability: Availability,
    },
    /// A peer disconnected; its requests are gone (no cancels are sent).
    PeerRemoved {
        /// The peer.
        peer: PeerId,
    },
    /// A peer's exchange starts over (a stall watchdog: nothing arrived from it for a while):
    /// its requests are forgotten as at [`Event::PeerRemoved`] (no cancels are sent; an answer
    /// still on the way counts as an unrequested arrival, or answers the block's new request
    /// if it was asked of the peer again), and so is what it has, including the blocks it had
    /// no data for or that are avoided at it (announce its availability again with
    /// [`Event::PeerHave`], in the same batch to plan once). Unlike removing and adding it
    /// again, what was measured of it stays: its rate, round trip, timeout, throughput, depth
    /// (and snub) and its counters; and its blocks being stored stay stored from it (their
    /// store ends as any other). Its blocks are then picked again, by it or by others. An
    /// unknown peer is ignored.
    PeerReset {
        /// The peer.
        peer: PeerId,
    },
    /// A peer announced blocks `[start, start + length)` (`range` / `bitfield` messages).
    PeerHave {
        /// The peer.
        peer: PeerId,
        /// First block.
        start: u64,
        /// Number of blocks.
        length: u64,
    },
    /// A peer dropped blocks `[start, start + length)` (`range` with the drop flag).
    PeerDropped {
        /// The peer.
        peer: PeerId,
        /// First block.
        start: u64,
        /// Number of blocks.
        length: u64,
    },
    /// Withdraw a range.
    Unprioritize {
        /// The range.
        handle: RangeHandle,
    },
    /// A block answering `peer`'s request was received and is being verified and stored: the
    /// request is answered (the peer's queue has room again and its estimators take the
    /// sample), and the block is not asked of anyone while it is stored. [`Event::BlockArrived`]
    /// follows once it is stored, or [`Event::RequestFailed`] if it was not (the block is then
    /// wanted again); removing the peer also gives up its blocks being stored. Without this
    /// event the request is answered at [`Event::BlockArrived`], so a driver that stores
    /// blocks before asking for more holds its queue for the time of a store.
    BlockReceived {
        /// The sender.
        peer: PeerId,
        /// The block.
        block: u64,
        /// Payload bytes.
        bytes: u64,
    },
    /// A verified block arrived (`peer: None` for blocks obtained by other means).
    BlockArrived {
        /// The sender.
        peer: Option<PeerId>,
        /// The block.
        block: u64,
        /// Payload bytes (used for rate and waste accounting).
        bytes: u64,
    },
    /// A request failed.
    RequestFailed {
        /// The peer asked.
        peer: PeerId,
        /// The block.
        block: u64,
        /// Why.
        reason: Failure,
    },
    /// Blocks `[start, start + length)` became local by other means (local append, another
    /// session); in-flight copies are cancelled.
    LocalHave {
        /// First block.
        start: u64,
        /// Number of blocks.
        length: u64,
    },
    /// Blocks `[start, start + length)` are no longer local (cleared): they are wanted again by
    /// every range not yet reported done that covers them (a range already done stays done).
    LocalLost {
        /// First block.
        start: u64,
        /// Number of blocks.
        length: u64,
    },
    /// The log was truncated to `length` (a new fork): blocks from `length` on are no longer
    /// local (send [`Event::LocalLost`] for them too) and requests for them are cancelled, as
    /// they were asked on the old fork; [`Event::LengthGrew`] follows with the new fork's length.
    Truncated {
        /// Blocks kept.
        length: u64,
    },
    /// The log grew (a verified upgrade); live ranges extend to the new length.
    LengthGrew {
        /// New length.
        length: u64,
    },
    /// Time passed (drivers send this every [`SchedulerOptions::tick`]).
    Tick,
}

/// An output of the planner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a request for one block.
    Request {
        /// To whom.
        peer: PeerId,
        /// Request identity (needed for [`Action::Cancel`]).
        id: RequestId,
        /// The block.
        block: u64,
        /// Hypercore wire priority (0–2), see [`wire_priority`].
        priority: u8,
        /// Whether this is a hotswap duplicate of a request in flight elsewhere.
        duplicate: bool,
    },
    /// Cancel a request.
    Cancel {
        /// To whom.
        peer: PeerId,
        /// The request.
        id: RequestId,
        /// Its block.
        block: u64,
    },
    /// The peer stalled (a request timed out); it now gets one request at a time.
    Snub {
        /// The peer.
        peer: PeerId,
    },
    /// A snubbed peer delivered again.
    Unsnub {
        /// The peer.
        peer: PeerId,
    },
    /// Every block of the range is local.
    RangeDone {
        /// The range.
        handle: RangeHandle,
    },
}

/// Planner configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerOptions {
    /// `false` (the default): the whole log is fetched at priority 0 by a built-in live range.
    /// `true`: only prioritized ranges are fetched.
    pub sparse: bool,
    /// Seed of the planner's random generator (random order).
    pub seed: u64,
    /// Maximum in-flight copies of one block.
    pub max_copies: usize,
    /// Maximum duplicate bytes in flight (bytes of every copy beyond the first).
    pub dup_budget_bytes: u64,
    /// No new duplicates while wasted bytes exceed `max(dup_budget_bytes, waste_ratio × useful)`.
    pub waste_ratio: f64,
    /// Smallest request depth of an unsnubbed peer.
    pub min_depth: usize,
    /// Largest request depth of a peer that is not fast (see [`SchedulerOptions::max_depth_fast`]).
    pub max_depth: usize,
    /// Largest request depth of a fast peer: one whose measured throughput would drain
    /// `max_depth` requests within [`SchedulerOptions::fast_queue_time`] may have up to that
    /// time's worth of its throughput in flight, up to this many. Small blocks from a fast
    /// peer need the deeper queue (each round of requests and answers costs per message), while
    /// a slower peer, such as the JS reference, serves worse from a deeper queue.
    pub max_depth_fast: usize,
    /// See [`SchedulerOptions::max_depth_fast`].
    pub fast_queue_time: Duration,
    /// Largest number of bytes a peer's requests in flight may ask for (with the average block
    /// size): bounds the memory of large blocks in flight while small blocks get a deep queue.
    pub max_depth_bytes: u64,
    /// Largest number of bytes of received blocks being stored (see [`Event::BlockReceived`])
    /// before no more requests go out: bounds the memory of blocks waiting for a slow disk.
    pub max_storing_bytes: u64,
    /// Depth of a peer before its first arrival.
    pub initial_depth: usize,
    /// Depth target: `rate × (rtt + queue_time) / block size`.
    pub queue_time: Duration,
    /// Timeout before any sample (RFC 6298's initial RTO).
    pub rto_initial: Duration,
    /// Lower clamp of the timeout.
    pub rto_min: Duration,
    /// Upper clamp of the timeout (also caps the backoff).
    pub rto_max: Duration,
    /// Block size assumed before any arrival.
    pub default_block_size: u64,
    /// Rate (bytes/s) assumed for a peer before its first arrival.
    pub default_rate: f64,
    /// Round trip assumed for a peer before its first arrival.
    pub default_rtt: Duration,
    /// In a linear window, how many reserved blocks from the head a peer may duplicate/move.
    pub critical_scan: usize,
    /// A peer below this fraction of the fastest peer's rate is "slow" (far end of windows).
    pub slow_ratio: f64,
    /// Suggested tick interval for drivers.
    pub tick: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            sparse: false,
            seed: 0,
            max_copies: 2,
            dup_budget_bytes: 1 << 20,
            waste_ratio: 0.10,
            min_depth: 2,
            max_depth: 512,
            max_depth_fast: 4096,
            fast_queue_time: Duration::from_millis(50),
            max_depth_bytes: 32 << 20,
            max_storing_bytes: 32 << 20,
            initial_depth: 4,
            queue_time: Duration::from_millis(250),
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_secs(1),
            rto_max: Duration::from_secs(30),
            default_block_size: 64 * 1024,
            default_rate: 1_000_000.0,
            default_rtt: Duration::from_millis(100),
            critical_scan: 4,
            slow_ratio: 0.25,
            tick: Duration::from_millis(100),
        }
    }
}

/// Per-peer counters kept by the planner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Requests sent (all kinds).
    pub requests: u64,
    /// Hotswap duplicates sent to this peer (JS `stats.hotswaps`).
    pub hotswaps: u64,
    /// Blocks moved to this peer (cancel elsewhere + re-issue here).
    pub moves: u64,
    /// Cancels sent to this peer.
    pub cancels_sent: u64,
    /// Head-of-line timeouts.
    pub timeouts: u64,
    /// Times snubbed.
    pub snubs: u64,
    /// Useful payload bytes received.
    pub bytes: u64,
    /// Payload bytes received for blocks already local.
    pub wasted_bytes: u64,
    /// Useful blocks received.
    pub blocks: u64,
}

/// Global planner counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Useful payload bytes received.
    pub useful_bytes: u64,
    /// Payload bytes received for blocks already local.
    pub wasted_bytes: u64,
    /// Hotswap duplicates issued.
    pub duplicates: u64,
    /// Moves issued.
    pub moves: u64,
    /// Cancels issued.
    pub cancels: u64,
    /// Requests preempted by urgent blocks.
    pub preemptions: u64,
    /// Arrivals with no matching request (cancelled earlier or pushed).
    pub unrequested_arrivals: u64,
    /// Planning passes run: one per [`Scheduler::handle`], [`Scheduler::handle_all`] or
    /// [`Scheduler::prioritize`] call, however many events it carries. A pass visits every
    /// peer with room, so this counts the work a batch of events saves (the runs of one
    /// `bitfield` message are one pass, not one each).
    pub plans: u64,
}

//! The per-log side of replication: one [`Scheduler`] for a log, shared by every connection
//! that replicates it, and the user's prioritized ranges.
//!
//! Connections register each paired channel as a peer and report what the peer has; the log
//! reports what arrives, what is appended locally and how its length grows. The planner's
//! actions are queued per peer and the owning connection is woken to send them. Ranges resolve
//! through a [`Prioritized`] handle that can be waited on (blocking or `async`) or given a
//! callback, and that withdraws its range when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::scheduler::{
    Action, Availability, Bitfield, Event, Failure, PeerId, Prioritize, RangeHandle, RequestId,
    Scheduler, SchedulerOptions,
};

/// What the scheduler asks a connection to send to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerCommand {
    /// Request one block at a wire priority.
    Request {
        id: RequestId,
        block: u64,
        priority: u8,
    },
    /// Cancel an earlier request.
    Cancel { id: RequestId },
    /// Tell the peer which blocks this side is interested in (it answers with what it has).
    Want { start: u64, end: u64 },
    /// Tell the peer this side now has blocks `[start, end)` (downloaded from another peer),
    /// so that a relay passes on what it gets (the reference's onhave → broadcastRange).
    Have { start: u64, end: u64 },
}

type Callback = Box<dyn FnOnce(Result<()>) + Send>;

/// How far past the verified length a peer's availability claims are believed.
const AVAILABILITY_SLACK: u64 = 1 << 24;

/// The completion state of one prioritized range.
struct Signal {
    done: bool,
    callbacks: Vec<Callback>,
    notify: Arc<Notify>,
}

struct PeerQueue {
    commands: Vec<PeerCommand>,
    wake: Arc<Notify>,
}

struct State {
    sched: Scheduler,
    origin: Instant,
    peers: HashMap<PeerId, PeerQueue>,
    signals: HashMap<RangeHandle, Signal>,
    /// The built-in range that fetches the whole log (absent when the log is sparse).
    whole: Option<RangeHandle>,
    /// Ranges announced to peers with `want` (so peers that join later hear of them too), with
    /// the range each is for (forgotten when it is withdrawn).
    wants: Vec<(RangeHandle, u64, u64)>,
    /// The owner chose sparse or whole ([`Replicator::set_sparse`]); a connection's default no
    /// longer applies.
    chosen: bool,
    length: u64,
    /// Counts the changes to the local blocks (arrivals, appends, losses), for
    /// [`Replicator::wait_changed`].
    changes: u64,
}

/// Replication state of one log, shared by the connections that replicate it.
pub struct Replicator {
    state: Mutex<State>,
    /// Woken whenever a range completes or the length grows (blocking waiters).
    changed: Condvar,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Replicator")
            .field("length", &s.length)
            .field("peers", &s.peers.len())
            .field("ranges", &s.signals.len())
            .field("whole", &s.whole.is_some())
            .finish()
    }
}

fn poisoned<T>(p: std::sync::PoisonError<T>) -> T {
    p.into_inner()
}

impl Replicator {
    /// A replicator for a log of `length` blocks whose local blocks are `local` (half-open
    /// ranges). It starts sparse: nothing is fetched until a range is prioritized or
    /// [`Replicator::set_sparse`]`(false)` adds the whole-log range.
    pub(crate) fn new(length: u64, local: &[(u64, u64)]) -> Self {
        let mut bits = Bitfield::new();
        for &(a, b) in local {
            bits.set_range(a, b, true);
        }
        let opts = SchedulerOptions {
            sparse: true,
            ..SchedulerOptions::default()
        };
        Replicator {
            state: Mutex::new(State {
                sched: Scheduler::new(opts, length, bits),
                origin: Instant::now(),
                peers: HashMap::new(),
                signals: HashMap::new(),
                whole: None,
                wants: Vec::new(),
                chosen: false,
                length,
                changes: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(poisoned)
    }

    /// Sparse (`true`): only prioritized ranges are fetched. Not sparse (`false`): the whole
    /// log, live, at priority 0 in linear order with hotswap, besides any prioritized range.
    pub fn set_sparse(&self, sparse: bool) {
        self.lock().chosen = true;
        self.apply_sparse(sparse);
    }

    /// A connection's default (fetch the whole log) for a log whose owner has not chosen.
    pub(crate) fn default_whole(&self) {
        if !self.lock().chosen {
            self.apply_sparse(false);
        }
    }

    fn apply_sparse(&self, sparse: bool) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        match (sparse, s.whole) {
            (false, None) => {
                let (h, actions) = s.sched.prioritize(now, whole_log());
                s.whole = Some(h);
                s.signals.insert(h, Signal::new());
                s.want(h, 0, u64::MAX);
                self.dispatch(s, actions);
            }
            (true, Some(h)) => {
                s.whole = None;
                s.signals.remove(&h);
                s.wants.retain(|w| w.0 != h);
                let actions = s.sched.unprioritize(now, h);
                self.dispatch(s, actions);
            }
            _ => {}
        }
    }

    /// True unless the whole log is being fetched.
    pub fn is_sparse(&self) -> bool {
        self.lock().whole.is_none()
    }

    /// Fetches `spec`'s range; the returned handle resolves when every block of it is local
    /// and withdraws the range when dropped.
    pub fn prioritize(self: &Arc<Self>, spec: Prioritize) -> Prioritized {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let (h, actions) = s.sched.prioritize(now, spec);
        s.signals.insert(h, Signal::new());
        s.want(h, spec.start, spec.end.unwrap_or(u64::MAX));
        let notify = s.signals[&h].notify.clone();
        self.dispatch(s, actions);
        Prioritized {
            replicator: Arc::downgrade(self),
            handle: h,
            notify,
            withdrawn: false,
        }
    }

    fn unprioritize(&self, h: RangeHandle) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        if let Some(sig) = s.signals.remove(&h) {
            s.wants.retain(|w| w.0 != h);
            let callbacks = sig.callbacks;
            let actions = s.sched.unprioritize(now, h);
            self.dispatch(s, actions);
            for cb in callbacks {
                cb(Err(unprioritized()));
            }
        }
    }

    /// Counters of the planner (useful, wasted and duplicate bytes, cancels, …).
    pub fn stats(&self) -> crate::scheduler::SchedulerStats {
        self.lock().sched.stats().clone()
    }

    /// Per-peer counters of the peers currently registered (blocks and bytes each delivered,
    /// requests, hotswaps, timeouts, snubs).
    pub fn peer_stats(&self) -> Vec<(PeerId, crate::scheduler::PeerStats)> {
        let s = self.lock();
        let mut out: Vec<_> = s
            .peers
            .keys()
            .filter_map(|p| s.sched.peer_stats(*p).map(|st| (*p, st.clone())))
            .collect();
        out.sort_by_key(|(p, _)| *p);
        out
    }

    /// True when any block in `[start, end)` is local (as the scheduler knows it).
    pub(crate) fn any_local(&self, start: u64, end: u64) -> bool {
        self.lock()
            .sched
            .local()
            .next_set(start)
            .is_some_and(|i| i < end)
    }

    /// True while some prioritized range (or the whole log) is not complete: what a stalled
    /// peer may still be asked for.
    pub(crate) fn wants_blocks(&self) -> bool {
        self.lock().signals.values().any(|sig| !sig.done)
    }

    /// Peers currently registered.
    pub fn peer_count(&self) -> usize {
        self.lock().peers.len()
    }

    /// The length the scheduler knows (the log's verified length).
    pub fn length(&self) -> u64 {
        self.lock().length
    }

    // ------------------------------------------------------------ connections

    /// A channel paired: register the peer; `wake` is notified when it has commands to send.
    pub(crate) fn add_peer(&self, peer: PeerId, wake: Arc<Notify>) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let wants: Vec<PeerCommand> = s
            .wants
            .iter()
            .map(|&(_, start, end)| PeerCommand::Want { start, end })
            .collect();
        s.peers.insert(
            peer,
            PeerQueue {
                commands: wants,
                wake,
            },
        );
        let actions = s.sched.handle(
            now,
            Event::PeerAdded {
                peer,
                availability: Availability::contiguous(0),
            },
        );
        self.dispatch(s, actions);
    }

    /// A channel closed or its connection ended.
    pub(crate) fn remove_peer(&self, peer: PeerId) {
        let mut s = self.lock();
        if s.peers.remove(&peer).is_none() {
            return;
        }
        let now = s.origin.elapsed();
        let actions = s.sched.handle(now, Event::PeerRemoved { peer });
        self.dispatch(s, actions);
    }

    /// The stall watchdog starts `peer`'s exchange over ([`Event::PeerReset`]): the scheduler
    /// forgets its requests and hears what it has again, `runs` (cut as in
    /// [`Replicator::peer_have`]), in one batch with one planning pass; its rate, round trip
    /// and depth estimates stay. The commands queued for it that were for its forgotten
    /// requests go, and it hears the live ranges' wants again (as a peer that registers does);
    /// announcements of blocks this side got stay queued. The caller sends what is queued.
    pub(crate) fn reset_peer(&self, peer: PeerId, runs: impl Iterator<Item = (u64, u64)>) {
        let mut s = self.lock();
        let wants: Vec<PeerCommand> = s
            .wants
            .iter()
            .map(|&(_, start, end)| PeerCommand::Want { start, end })
            .collect();
        let Some(q) = s.peers.get_mut(&peer) else {
            return;
        };
        q.commands
            .retain(|c| matches!(c, PeerCommand::Have { .. } | PeerCommand::Want { .. }));
        q.commands.extend(wants);
        let haves = have_events(peer, s.length, runs);
        let events = std::iter::once(Event::PeerReset { peer }).chain(haves);
        let now = s.origin.elapsed();
        let actions = s.sched.handle_all(now, events);
        self.dispatch(s, actions);
    }

    /// The peer announced blocks `[start, end)`. Claims far past the verified length are cut
    /// (nothing there can be requested yet, and a hostile peer must not make this side allocate
    /// a bitfield for 2^60 blocks); peers announce again as logs grow.
    pub(crate) fn peer_have(&self, peer: PeerId, start: u64, end: u64) {
        self.peer_have_runs(peer, std::iter::once((start, end)));
    }

    /// The peer announced the half-open runs `runs` (one `bitfield` message): one locked
    /// scheduler batch with one planning pass (cut as in [`Replicator::peer_have`]).
    pub(crate) fn peer_have_runs(&self, peer: PeerId, runs: impl Iterator<Item = (u64, u64)>) {
        let mut runs = runs.peekable();
        if runs.peek().is_none() {
            return;
        }
        let mut s = self.lock();
        let events = have_events(peer, s.length, runs);
        let now = s.origin.elapsed();
        let actions = s.sched.handle_all(now, events);
        self.dispatch(s, actions);
    }

    /// The peer dropped blocks `[start, end)` (cut as in [`Replicator::peer_have`]).
    pub(crate) fn peer_dropped(&self, peer: PeerId, start: u64, end: u64) {
        self.availability(start, end, |start, length| Event::PeerDropped {
            peer,
            start,
            length,
        });
    }

    fn availability(&self, start: u64, end: u64, event: impl FnOnce(u64, u64) -> Event) {
        let mut s = self.lock();
        let end = end.min(s.length.saturating_add(AVAILABILITY_SLACK));
        if start >= end {
            return;
        }
        let now = s.origin.elapsed();
        let actions = s.sched.handle(now, event(start, end - start));
        self.dispatch(s, actions);
    }

    /// A request failed (`noData`, or it could not be sent).
    pub(crate) fn request_failed(&self, peer: PeerId, block: u64, no_data: bool) {
        let reason = if no_data {
            Failure::NoData
        } else {
            Failure::Error
        };
        self.peer_event(Event::RequestFailed {
            peer,
            block,
            reason,
        });
    }

    /// An answer was overtaken (a stale proof): the block may be asked again.
    pub(crate) fn request_failed_retry(&self, peer: PeerId, block: u64) {
        self.peer_event(Event::RequestFailed {
            peer,
            block,
            reason: Failure::Retry,
        });
    }

    /// Blocks `(index, bytes)` answering `peer`'s requests were received and are being
    /// verified and stored: the peer's queue has room for the next requests now, not only once
    /// they are stored ([`crate::scheduler::Event::BlockReceived`]). Their storing ends in
    /// [`Replicator::on_downloaded`] or [`Replicator::request_failed_retry`].
    pub(crate) fn on_received(&self, peer: PeerId, blocks: &[(u64, u64)]) {
        if blocks.is_empty() {
            return;
        }
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let actions = s.sched.handle_all(
            now,
            blocks
                .iter()
                .map(|&(block, bytes)| Event::BlockReceived { peer, block, bytes }),
        );
        self.dispatch(s, actions);
    }

    /// Advances time (timeouts are checked).
    pub(crate) fn tick(&self) {
        self.peer_event(Event::Tick);
    }

    fn peer_event(&self, event: Event) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let actions = s.sched.handle(now, event);
        self.dispatch(s, actions);
    }

    /// Takes the commands queued for `peer`.
    pub(crate) fn take_commands(&self, peer: PeerId) -> Vec<PeerCommand> {
        let mut s = self.lock();
        s.peers
            .get_mut(&peer)
            .map(|q| std::mem::take(&mut q.commands))
            .unwrap_or_default()
    }

    // ------------------------------------------------------------ the log

    /// Blocks arrived from `peer` and were stored; the log's verified length is `length`.
    pub(crate) fn on_downloaded(&self, peer: u64, blocks: &[(u64, u64)], length: u64) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let grew = (length > s.length).then(|| {
            s.length = length;
            Event::LengthGrew { length }
        });
        // one planning pass for the whole batch
        let arrived = blocks.iter().map(|&(block, bytes)| Event::BlockArrived {
            peer: (peer != 0).then_some(PeerId(peer)),
            block,
            bytes,
        });
        let actions = s.sched.handle_all(now, grew.into_iter().chain(arrived));
        // the other peers hear of the new blocks, one range per run of them
        let mut indexes: Vec<u64> = blocks.iter().map(|&(b, _)| b).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for b in indexes {
            match runs.last_mut() {
                Some(r) if r.1 == b => r.1 = b + 1,
                _ => runs.push((b, b + 1)),
            }
        }
        if !runs.is_empty() {
            let source = PeerId(peer);
            for (&id, q) in s.peers.iter_mut() {
                if id == source {
                    continue;
                }
                q.commands.extend(
                    runs.iter()
                        .map(|&(start, end)| PeerCommand::Have { start, end }),
                );
                q.wake.notify_one();
            }
        }
        s.changes += 1;
        self.dispatch(s, actions);
        self.changed.notify_all();
    }

    /// Blocks `[start, end)` were appended locally.
    pub(crate) fn on_local_append(&self, start: u64, end: u64) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let mut actions = Vec::new();
        if end > s.length {
            s.length = end;
            actions.extend(s.sched.handle(now, Event::LengthGrew { length: end }));
        }
        actions.extend(s.sched.handle(
            now,
            Event::LocalHave {
                start,
                length: end.saturating_sub(start),
            },
        ));
        s.changes += 1;
        self.dispatch(s, actions);
        self.changed.notify_all();
    }

    /// The log moved to a new fork keeping its first `length` blocks (it had `old_length`).
    pub(crate) fn on_truncated(&self, length: u64, old_length: u64) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let mut actions = s.sched.handle(now, Event::Truncated { length });
        if old_length > length {
            actions.extend(s.sched.handle(
                now,
                Event::LocalLost {
                    start: length,
                    length: old_length - length,
                },
            ));
        }
        s.length = s.length.min(length);
        s.changes += 1;
        self.dispatch(s, actions);
        self.changed.notify_all();
    }

    /// Blocks `[start, end)` were cleared locally.
    pub(crate) fn on_local_lost(&self, start: u64, end: u64) {
        let mut s = self.lock();
        let now = s.origin.elapsed();
        let actions = s.sched.handle(
            now,
            Event::LocalLost {
                start,
                length: end.saturating_sub(start),
            },
        );
        s.changes += 1;
        self.dispatch(s, actions);
        self.changed.notify_all();
    }

    /// How many times the local blocks have changed so far (blocks arrived, appended or lost):
    /// take it before looking at the blocks, then [`Replicator::wait_changed`] for what follows.
    pub(crate) fn changes(&self) -> u64 {
        self.lock().changes
    }

    /// Waits (blocking) until the local blocks change after `seen` (a value of
    /// [`Replicator::changes`]) or `stop` returns true; `None` when `timeout` passes first.
    /// Returns the count of changes then. Whatever sets what `stop` reads must then call
    /// [`Replicator::wake_waiters`], or the wait only ends with the next change.
    pub(crate) fn wait_changed(
        &self,
        seen: u64,
        timeout: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Option<u64> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.lock();
        while s.changes == seen && !stop() {
            s = match deadline {
                None => self.changed.wait(s).unwrap_or_else(poisoned),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.changed
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(poisoned)
                        .0
                }
            };
        }
        Some(s.changes)
    }

    /// Wakes every blocking waiter so that it checks its conditions again (taking the lock
    /// first: a waiter between its check and its wait is not missed).
    pub(crate) fn wake_waiters(&self) {
        let _s = self.lock();
        self.changed.notify_all();
    }

    /// Waits (blocking) until the verified length is at least `length`, for at most `timeout`.
    /// Returns the length reached.
    pub fn wait_length(&self, length: u64, timeout: Option<Duration>) -> u64 {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.lock();
        while s.length < length {
            match deadline {
                None => s = self.changed.wait(s).unwrap_or_else(poisoned),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    s = self
                        .changed
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(poisoned)
                        .0;
                }
            }
        }
        s.length
    }

    fn dispatch(&self, mut s: MutexGuard<'_, State>, actions: Vec<Action>) {
        let mut callbacks = Vec::new();
        let mut wake: Vec<Arc<Notify>> = Vec::new();
        for a in actions {
            match a {
                Action::Request {
                    peer,
                    id,
                    block,
                    priority,
                    ..
                } => s.push(
                    peer,
                    PeerCommand::Request {
                        id,
                        block,
                        priority,
                    },
                    &mut wake,
                ),
                Action::Cancel { peer, id, .. } => {
                    s.push(peer, PeerCommand::Cancel { id }, &mut wake)
                }
                Action::RangeDone { handle } => {
                    if let Some(sig) = s.signals.get_mut(&handle) {
                        sig.done = true;
                        callbacks.append(&mut sig.callbacks);
                        sig.notify.notify_waiters();
                    }
                }
                Action::Snub { .. } | Action::Unsnub { .. } => {}
            }
        }
        drop(s);
        for w in wake {
            w.notify_one();
        }
        if !callbacks.is_empty() {
            self.changed.notify_all();
        }
        for cb in callbacks {
            cb(Ok(()));
        }
    }

    fn signal_state(&self, h: RangeHandle) -> Option<Result<()>> {
        let s = self.lock();
        match s.signals.get(&h) {
            Some(sig) => sig.done.then_some(Ok(())),
            None => Some(Err(unprioritized())),
        }
    }
}

/// The built-in range of a non-sparse log: all of it, live, at priority 0, with hotswap. In
/// linear order: blocks then arrive mostly in sequence, which stores them as appends (random
/// order scatters every commit over the whole B-tree and costs several times the disk writes),
/// and a reader of the log's start gets it first.
/// `PeerHave` events for the runs a peer announced, cut at `length` +
/// [`AVAILABILITY_SLACK`] (see [`Replicator::peer_have`]).
fn have_events(
    peer: PeerId,
    length: u64,
    runs: impl Iterator<Item = (u64, u64)>,
) -> impl Iterator<Item = Event> {
    let cap = length.saturating_add(AVAILABILITY_SLACK);
    runs.map(move |(a, e)| (a, e.min(cap)))
        .filter(|&(a, e)| a < e)
        .map(move |(start, end)| Event::PeerHave {
            peer,
            start,
            length: end - start,
        })
}

fn whole_log() -> Prioritize {
    Prioritize::live(0)
        .priority(0)
        .order(crate::scheduler::Order::Linear)
        .hotswap(true)
}

fn unprioritized() -> Error {
    Error::Cancelled("the range was unprioritized".into())
}

impl Signal {
    fn new() -> Self {
        Signal {
            done: false,
            callbacks: Vec::new(),
            notify: Arc::new(Notify::new()),
        }
    }
}

impl State {
    fn push(&mut self, peer: PeerId, cmd: PeerCommand, wake: &mut Vec<Arc<Notify>>) {
        if let Some(q) = self.peers.get_mut(&peer) {
            q.commands.push(cmd);
            if !wake.iter().any(|w| Arc::ptr_eq(w, &q.wake)) {
                wake.push(q.wake.clone());
            }
        }
    }

    fn want(&mut self, h: RangeHandle, start: u64, end: u64) {
        if self.wants.len() < 256 {
            self.wants.push((h, start, end));
        }
        let cmd = PeerCommand::Want { start, end };
        for q in self.peers.values_mut() {
            q.commands.push(cmd);
            q.wake.notify_one();
        }
    }
}

/// A prioritized range (from [`crate::Log::prioritize`]). Wait for it with
/// [`Prioritized::wait`] (blocking), [`Prioritized::done`] (`async`) or
/// [`Prioritized::on_done`] (a callback). Dropping it, or [`Prioritized::unprioritize`],
/// withdraws the range and cancels the requests no other range still wants.
#[must_use = "dropping a Prioritized withdraws its range"]
pub struct Prioritized {
    replicator: Weak<Replicator>,
    handle: RangeHandle,
    notify: Arc<Notify>,
    withdrawn: bool,
}

impl std::fmt::Debug for Prioritized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prioritized")
            .field("handle", &self.handle.id())
            .finish()
    }
}

impl Prioritized {
    /// True once every block of the range is local.
    pub fn is_done(&self) -> bool {
        matches!(self.state(), Some(Ok(())))
    }

    fn state(&self) -> Option<Result<()>> {
        match self.replicator.upgrade() {
            Some(r) => r.signal_state(self.handle),
            None => Some(Err(Error::Cancelled("the log was closed".into()))),
        }
    }

    /// Blocks until every block of the range is local, or `timeout` passes
    /// ([`Error::Timeout`]). A live range (no end) never completes.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<()> {
        let Some(r) = self.replicator.upgrade() else {
            return Err(Error::Cancelled("the log was closed".into()));
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = r.lock();
        loop {
            match s.signals.get(&self.handle) {
                None => return Err(unprioritized()),
                Some(sig) if sig.done => return Ok(()),
                Some(_) => {}
            }
            s = match deadline {
                None => r.changed.wait(s).unwrap_or_else(poisoned),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Error::Timeout(format!(
                            "the range was not complete after {:?}",
                            timeout.unwrap_or_default()
                        )));
                    }
                    r.changed
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(poisoned)
                        .0
                }
            };
        }
    }

    /// Resolves when every block of the range is local.
    pub async fn done(&self) -> Result<()> {
        loop {
            let notified = self.notify.notified();
            if let Some(res) = self.state() {
                return res;
            }
            notified.await;
        }
    }

    /// Calls `callback` once the range completes (at once if it already has), with `Err` if
    /// it is withdrawn first. It runs on the thread that completes the range: keep it short.
    pub fn on_done(&self, callback: impl FnOnce(Result<()>) + Send + 'static) {
        let Some(r) = self.replicator.upgrade() else {
            callback(Err(Error::Cancelled("the log was closed".into())));
            return;
        };
        let mut s = r.lock();
        let now = match s.signals.get_mut(&self.handle) {
            None => Some(Err(unprioritized())),
            Some(sig) if sig.done => Some(Ok(())),
            Some(sig) => {
                sig.callbacks.push(Box::new(callback));
                return;
            }
        };
        drop(s);
        if let Some(res) = now {
            callback(res);
        }
    }

    /// Withdraws the range (the same as dropping the handle).
    pub fn unprioritize(mut self) {
        self.withdraw();
    }

    /// Keeps the range for as long as the log is open, without a handle.
    pub fn detach(mut self) {
        self.withdrawn = true;
    }

    fn withdraw(&mut self) {
        if !self.withdrawn {
            self.withdrawn = true;
            if let Some(r) = self.replicator.upgrade() {
                r.unprioritize(self.handle);
            }
        }
    }
}

impl Drop for Prioritized {
    fn drop(&mut self) {
        self.withdraw();
    }
}

impl crate::log::Log {
    /// Fetches blocks `spec.start..spec.end` from peers with the given priority, order and
    /// hotswap setting. The returned handle resolves when every block of the range is local;
    /// dropping it (or [`Prioritized::unprioritize`]) withdraws the range.
    pub fn prioritize(&self, spec: Prioritize) -> Prioritized {
        self.replicator().prioritize(spec)
    }

    /// Sparse (`true`): only what is prioritized or read is fetched. Not sparse: the whole log
    /// follows its peers at priority 0 (the default when a log is replicated non-sparse).
    pub fn set_sparse(&self, sparse: bool) {
        self.replicator().set_sparse(sparse)
    }

    /// Reads block `index`, fetching it from peers at the top priority if it is not local and
    /// waiting for at most `timeout` (`None`: no limit). Waits for the log to reach
    /// `index + 1` blocks first. A writable log never waits: its missing blocks are gone.
    pub fn get_wait(&self, index: u64, timeout: Option<Duration>) -> Result<Vec<u8>> {
        match self.get_local(index) {
            Err(Error::NotAvailable(_) | Error::OutOfBounds(_)) if !self.writable() => {}
            other => return other,
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let r = self.replicator();
        if self.length() <= index {
            let reached = r.wait_length(index + 1, left());
            if reached <= index {
                return Err(Error::Timeout(format!(
                    "block {index}: the log has {reached} blocks and no peer had more in time"
                )));
            }
        }
        if let Ok(b) = self.get_local(index) {
            return Ok(b);
        }
        let handle = r.prioritize(Prioritize::get(index));
        match handle.wait(left()) {
            Ok(()) => self.get_local(index),
            Err(Error::Timeout(_)) => Err(Error::Timeout(format!(
                "block {index} did not arrive within {:?}",
                timeout.unwrap_or_default()
            ))),
            Err(e) => Err(e),
        }
    }

    /// [`Log::get_wait`](Self::get_wait) for `async` callers (the wait does not block the executor).
    pub async fn get_async(&self, index: u64, timeout: Option<Duration>) -> Result<Vec<u8>> {
        match self.get_local(index) {
            Err(Error::NotAvailable(_) | Error::OutOfBounds(_)) if !self.writable() => {}
            other => return other,
        }
        let handle = self.prioritize(Prioritize::get(index));
        let wait = handle.done();
        match timeout {
            None => wait.await?,
            Some(t) => tokio::time::timeout(t, wait).await.map_err(|_| {
                Error::Timeout(format!("block {index} did not arrive within {t:?}"))
            })??,
        }
        self.get_local(index)
    }

    /// Waits until the log has at least `length` blocks (verified from a peer), for at most
    /// `timeout`. Returns the length reached.
    pub fn wait_length(&self, length: u64, timeout: Option<Duration>) -> u64 {
        if self.length() >= length {
            return self.length();
        }
        self.replicator()
            .wait_length(length, timeout)
            .max(self.length())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn requests(cmds: &[PeerCommand]) -> Vec<u64> {
        cmds.iter()
            .filter_map(|c| match c {
                PeerCommand::Request { block, .. } => Some(*block),
                _ => None,
            })
            .collect()
    }

    fn setup(length: u64) -> (Arc<Replicator>, PeerId) {
        let r = Arc::new(Replicator::new(length, &[]));
        let p = PeerId(7);
        r.add_peer(p, Arc::new(Notify::new()));
        r.peer_have(p, 0, length);
        (r, p)
    }

    #[test]
    fn a_range_requests_only_its_blocks_and_resolves_when_they_arrive() {
        let (r, p) = setup(1000);
        assert!(
            requests(&r.take_commands(p)).is_empty(),
            "sparse: nothing yet"
        );
        let range = r.prioritize(Prioritize::range(100, 110));
        let cmds = r.take_commands(p);
        assert!(cmds.contains(&PeerCommand::Want {
            start: 100,
            end: 110
        }));
        let asked = requests(&cmds);
        assert!(!asked.is_empty() && asked.iter().all(|b| (100..110).contains(b)));
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        range.on_done(move |res| {
            assert!(res.is_ok());
            f.fetch_add(1, Ordering::SeqCst);
        });
        let mut got = 0;
        let mut pending = asked;
        while !range.is_done() {
            assert!(!pending.is_empty(), "the scheduler keeps asking");
            let blocks: Vec<(u64, u64)> = pending.iter().map(|&b| (b, 1024)).collect();
            got += blocks.len();
            r.on_downloaded(p.0, &blocks, 1000);
            assert!(got <= 10, "no block is asked twice");
            pending = requests(&r.take_commands(p));
        }
        assert_eq!(got, 10);
        assert_eq!(fired.load(Ordering::SeqCst), 1, "the callback ran once");
        assert!(range.wait(Some(Duration::ZERO)).is_ok());
    }

    #[test]
    fn dropping_a_range_cancels_its_requests_and_a_get_goes_first() {
        let (r, p) = setup(1000);
        let range = r.prioritize(Prioritize::range(0, 1000).priority(1));
        let first = requests(&r.take_commands(p));
        assert!(!first.is_empty());
        // an urgent get is requested even while the peer is busy with the bulk range
        let get = r.prioritize(Prioritize::get(999));
        let cmds = r.take_commands(p);
        assert!(
            cmds.iter().any(|c| matches!(
                c,
                PeerCommand::Request {
                    block: 999,
                    priority: 2,
                    ..
                }
            )),
            "the get goes out at the top wire priority: {cmds:?}"
        );
        // a full peer: the get preempted one bulk request
        let cancel = |c: &&PeerCommand| matches!(c, PeerCommand::Cancel { .. });
        let preempted = cmds.iter().filter(cancel).count();
        drop(range);
        let cancels = r.take_commands(p).iter().filter(cancel).count();
        assert_eq!(
            preempted + cancels,
            first.len(),
            "every request of the withdrawn range is cancelled"
        );
        assert!(!get.is_done());
        r.on_downloaded(p.0, &[(999, 10)], 1000);
        assert!(get.is_done());
    }

    #[test]
    fn a_wait_times_out_and_a_withdrawn_range_reports_cancelled() {
        let (r, _) = setup(10);
        let range = r.prioritize(Prioritize::range(0, 10));
        let err = range.wait(Some(Duration::from_millis(1))).unwrap_err();
        assert!(matches!(err, Error::Timeout(_)), "{err}");
        let (tx, rx) = std::sync::mpsc::channel();
        range.on_done(move |res| tx.send(res.is_err()).unwrap());
        range.unprioritize();
        assert!(rx.recv().unwrap(), "the callback hears of the withdrawal");
    }

    #[test]
    fn not_sparse_fetches_the_whole_log_and_follows_it() {
        let (r, p) = setup(50);
        r.set_sparse(false);
        assert!(!r.is_sparse());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let asked = requests(&r.take_commands(p));
            if asked.is_empty() {
                break;
            }
            let blocks: Vec<(u64, u64)> = asked.iter().map(|&b| (b, 100)).collect();
            seen.extend(asked);
            r.on_downloaded(p.0, &blocks, 50);
        }
        assert_eq!(seen.len(), 50);
        r.peer_have(p, 50, 60);
        r.on_downloaded(0, &[], 60);
        let asked = requests(&r.take_commands(p));
        assert!(!asked.is_empty() && asked.iter().all(|b| (50..60).contains(b)));
    }

    /// The stall watchdog's reset: the commands queued for the peer's forgotten requests go
    /// (announcements stay), it hears the live ranges' wants again, is asked again for what it
    /// announces, and its counters stay.
    #[test]
    fn a_reset_peer_is_asked_again_and_keeps_its_counters() {
        let (r, p) = setup(100);
        let q = PeerId(8);
        r.add_peer(q, Arc::new(Notify::new()));
        let range = r.prioritize(Prioritize::range(0, 10));
        let first = requests(&r.take_commands(p));
        assert!(!first.is_empty());
        r.on_downloaded(p.0, &[(first[0], 100)], 100);
        // block 50 from the other peer: an announcement queued for p, not taken yet, with the
        // requests made for p since
        r.on_downloaded(q.0, &[(50, 100)], 100);
        let delivered = |r: &Replicator| -> Vec<(PeerId, u64, u64)> {
            let stats = r.peer_stats();
            stats.iter().map(|(p, s)| (*p, s.blocks, s.bytes)).collect()
        };
        let counters = delivered(&r);
        assert_eq!(counters[0], (p, 1, 100));
        r.reset_peer(p, [(0, 100)].into_iter());
        let cmds = r.take_commands(p);
        assert!(!cmds.iter().any(|c| matches!(c, PeerCommand::Cancel { .. })));
        assert!(cmds.contains(&PeerCommand::Have { start: 50, end: 51 }));
        assert!(cmds.contains(&PeerCommand::Want { start: 0, end: 10 }));
        let mut again = requests(&cmds);
        again.sort_unstable();
        let expect: Vec<u64> = (0..10).filter(|&b| b != first[0]).collect();
        assert_eq!(again, expect, "asked again for the blocks it held");
        assert_eq!(delivered(&r), counters, "its counters stay");
        drop(range);
    }

    /// A peer that registers (or re-registers) hears the wants of the live ranges only.
    #[test]
    fn a_withdrawn_range_is_not_wanted_of_peers_that_join_later() {
        let (r, _) = setup(100);
        let kept = r.prioritize(Prioritize::range(10, 20));
        drop(r.prioritize(Prioritize::range(50, 60)));
        let q = PeerId(9);
        r.add_peer(q, Arc::new(Notify::new()));
        let wants: Vec<PeerCommand> = r
            .take_commands(q)
            .into_iter()
            .filter(|c| matches!(c, PeerCommand::Want { .. }))
            .collect();
        assert_eq!(wants, vec![PeerCommand::Want { start: 10, end: 20 }]);
        drop(kept);
    }

    /// Blocks downloaded from one peer are announced to the others, one command per run of
    /// them, and not to the peer they came from.
    #[test]
    fn downloads_are_announced_to_the_other_peers_by_runs() {
        let (r, p) = setup(20);
        let q = PeerId(8);
        r.add_peer(q, Arc::new(Notify::new()));
        r.take_commands(p);
        r.take_commands(q);
        r.on_downloaded(p.0, &[(5, 10), (3, 10), (4, 10), (9, 10)], 20);
        let haves = |cmds: Vec<PeerCommand>| -> Vec<(u64, u64)> {
            cmds.into_iter()
                .filter_map(|c| match c {
                    PeerCommand::Have { start, end } => Some((start, end)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(haves(r.take_commands(q)), vec![(3, 6), (9, 10)]);
        assert!(haves(r.take_commands(p)).is_empty(), "not to the source");
    }

    /// A blocking waiter wakes for a change that came after the count it took (also one that
    /// came before it waited), for its stop condition once woken, and otherwise times out.
    #[test]
    fn a_waiter_wakes_for_changes_and_for_its_stop_condition() {
        let (r, p) = setup(10);
        let never = || false;
        let seen = r.changes();
        assert_eq!(
            r.wait_changed(seen, Some(Duration::from_millis(1)), &never),
            None
        );
        // a change between taking the count and waiting is not missed
        r.on_downloaded(p.0, &[(3, 10)], 10);
        let after = r.wait_changed(seen, Some(Duration::ZERO), &never);
        assert_eq!(after, Some(seen + 1));
        // a change from another thread ends a wait with no timeout
        let (waiting_tx, waiting_rx) = std::sync::mpsc::channel();
        let waiter = {
            let r = r.clone();
            std::thread::spawn(move || {
                waiting_tx.send(()).unwrap();
                r.wait_changed(seen + 1, None, &|| false)
            })
        };
        waiting_rx.recv().unwrap();
        r.on_local_append(10, 12);
        assert_eq!(waiter.join().unwrap(), Some(seen + 2));
        // a stop condition set from another thread, then `wake_waiters`
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let (r, stop) = (r.clone(), stop.clone());
            std::thread::spawn(move || {
                r.wait_changed(seen + 2, None, &|| stop.load(Ordering::SeqCst))
            })
        };
        stop.store(true, Ordering::SeqCst);
        r.wake_waiters();
        assert_eq!(
            waiter.join().unwrap(),
            Some(seen + 2),
            "stopped, nothing changed"
        );
    }
}

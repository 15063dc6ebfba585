//! A discrete-event simulation of one downloader and its peers, in virtual time.
//!
//! No threads, no sleeps, no wall clock (except the optional planner CPU measurement, which
//! does not influence the run): events sit in a priority queue ordered by `(time, sequence)`,
//! and all randomness comes from one seeded generator, so a run is a pure function of its
//! configuration.
//!
//! **Links** follow the SimLink model of the design note (§A4.1), one per direction:
//! `depart = max(now, free_at) + len / rate`, `arrive = max(depart + latency + U(0, jitter),
//! last_arrive)` (FIFO, TCP-like). A peer's server puts the next response on its uplink only
//! while the link's backlog is at most [`PeerSpec::queue_limit`] (backpressure).
//!
//! **Peers** serve requests priority first, then FIFO (JS `ReceiverQueue`). A `cancel` that
//! arrives while its request is still queued removes it; once a response is on the link it is
//! delivered anyway ("cancel too late"). Faults: `stall_after_bytes` (accepts requests, never
//! answers again), `disconnect_at`, `slow_down_at`.
//!
//! Workloads are [`Driver`]s (see [`super::sim::workload`]); they call
//! [`Sim::prioritize`] / [`Sim::unprioritize`], set timers and read the state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use super::{
    Action, Availability, Event, PeerId, Prioritize, RangeHandle, RequestId, Scheduler,
    SchedulerOptions,
};

mod link;
pub mod workload;

use link::SimLink;
pub use link::{LinkProfile, PeerSpec};

/// Simulation parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the simulation's generator (jitter); the planner's seed is in `scheduler`.
    pub seed: u64,
    /// Initial log length.
    pub length: u64,
    /// Payload bytes of every block.
    pub block_size: u64,
    /// Planner options.
    pub scheduler: SchedulerOptions,
    /// Tick interval.
    pub tick: Duration,
    /// Run [`Scheduler::check_invariants`] after every planner call; a violation ends the run.
    pub check_invariants: bool,
    /// Measure the planner's CPU time (wall clock around planner calls; never affects the run).
    pub measure_cpu: bool,
    /// Bytes of a request or cancel message.
    pub request_bytes: u64,
    /// Extra bytes per data message (proof nodes etc.).
    pub data_overhead: u64,
    /// The run fails if virtual time passes this.
    pub time_limit: Duration,
    /// After the driver is done, events keep being processed for this long (so cancels and
    /// late responses still in flight are counted).
    pub drain: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            length: 1000,
            block_size: 64 * 1024,
            scheduler: SchedulerOptions {
                sparse: true,
                ..SchedulerOptions::default()
            },
            tick: Duration::from_millis(50),
            check_invariants: false,
            measure_cpu: false,
            request_bytes: 32,
            data_overhead: 0,
            time_limit: Duration::from_secs(600),
            drain: Duration::from_millis(500),
        }
    }
}

/// A workload: reacts to the simulation.
pub trait Driver {
    /// Called once at time 0 after the peers are scheduled to join.
    fn start(&mut self, sim: &mut Sim);
    /// Called after every processed event.
    fn on_event(&mut self, _sim: &mut Sim) {}
    /// Called when a timer set with [`Sim::set_timer`] fires.
    fn on_timer(&mut self, _sim: &mut Sim, _token: u64) {}
    /// Whether the run is over.
    fn done(&self, sim: &Sim) -> bool;
}

/// Server-side counters of one simulated peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimPeerStats {
    /// Requests that reached the peer.
    pub requests_received: u64,
    /// Cancels that reached the peer.
    pub cancels_received: u64,
    /// Cancels that removed a still-queued request.
    pub cancels_effective: u64,
    /// Payload bytes put on the link.
    pub bytes_sent: u64,
    /// Responses put on the link.
    pub blocks_sent: u64,
}

/// Client-side measurements.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Requests sent.
    pub requests: u64,
    /// Cancels sent.
    pub cancels_sent: u64,
    /// Responses that arrived for requests already cancelled.
    pub cancels_too_late: u64,
    /// Useful payload bytes.
    pub useful_bytes: u64,
    /// Payload bytes of blocks already local.
    pub dup_bytes: u64,
    /// `(time, block)` of every useful arrival.
    pub arrivals: Vec<(Duration, u64)>,
    /// Request → arrival latency of every useful arrival.
    pub latencies: Vec<Duration>,
    /// Completion time of each range (by handle id).
    pub range_done: BTreeMap<u64, Duration>,
    /// Snub actions.
    pub snubs: u64,
    /// Planner calls and their total CPU time (if measured).
    pub planner_calls: u64,
    /// Nanoseconds spent in the planner.
    pub planner_nanos: u128,
    /// Events processed.
    pub events: u64,
    /// Invariant checks that ran.
    pub invariant_checks: u64,
}

#[derive(Clone, Debug)]
struct SimPeer {
    spec: PeerSpec,
    up: SimLink,
    down: SimLink,
    connected: bool,
    gone: bool,
    /// `(Reverse(priority), seq) → (id, block)`.
    pending: BTreeMap<(Reverse<u8>, u64), (RequestId, u64)>,
    pending_ids: BTreeMap<RequestId, (Reverse<u8>, u64)>,
    served: u64,
    stalled: bool,
    wake_at: Option<Duration>,
    stats: SimPeerStats,
}

#[derive(Clone, Debug)]
enum Ev {
    Join(usize),
    ReqArrive {
        peer: usize,
        id: RequestId,
        block: u64,
        prio: u8,
    },
    CancelArrive {
        peer: usize,
        id: RequestId,
    },
    Wake(usize),
    Data {
        peer: usize,
        id: RequestId,
        block: u64,
        bytes: u64,
    },
    NoData {
        peer: usize,
        block: u64,
    },
    Tick,
    Timer(u64),
    Disconnect(usize),
    SlowDown(usize, f64),
}

struct Scheduled {
    at: Duration,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Clone, Copy, Debug)]
struct ReqInfo {
    sent_at: Duration,
    cancelled: bool,
}

/// The simulation.
pub struct Sim {
    cfg: SimConfig,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    sched: Scheduler,
    peers: Vec<SimPeer>,
    rng: u64,
    requests: BTreeMap<RequestId, ReqInfo>,
    metrics: Metrics,
    error: Option<String>,
    length: u64,
}

impl Sim {
    /// A simulation of `peers` (peer `i` is [`PeerId`]`(i)`) serving a log of `cfg.length`
    /// blocks to a downloader that has none of them.
    pub fn new(cfg: SimConfig, peers: Vec<PeerSpec>) -> Self {
        let sched = Scheduler::new(cfg.scheduler.clone(), cfg.length, super::Bitfield::new());
        let peers = peers
            .into_iter()
            .map(|spec| SimPeer {
                up: SimLink::new(spec.link),
                down: SimLink::new(spec.link),
                spec,
                connected: false,
                gone: false,
                pending: BTreeMap::new(),
                pending_ids: BTreeMap::new(),
                served: 0,
                stalled: false,
                wake_at: None,
                stats: SimPeerStats::default(),
            })
            .collect();
        Self {
            rng: cfg.seed ^ 0xA076_1D64_78BD_642F,
            length: cfg.length,
            cfg,
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            sched,
            peers,
            requests: BTreeMap::new(),
            metrics: Metrics::default(),
            error: None,
        }
    }

    /// Runs until the driver is done (plus [`SimConfig::drain`]), the queue is empty or a
    /// failure (invariant violation, time limit).
    pub fn run(&mut self, driver: &mut dyn Driver) -> Result<(), String> {
        for i in 0..self.peers.len() {
            let s = self.peers[i].spec.clone();
            self.push(s.join_at, Ev::Join(i));
            if let Some(t) = s.disconnect_at {
                self.push(t, Ev::Disconnect(i));
            }
            if let Some((t, f)) = s.slow_down_at {
                self.push(t, Ev::SlowDown(i, f));
            }
        }
        self.push(self.cfg.tick, Ev::Tick);
        driver.start(self);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut done_at: Option<Duration> = None;
        loop {
            if done_at.is_none() && driver.done(self) {
                done_at = Some(self.now);
            }
            let Some(Reverse(s)) = self.queue.pop() else {
                break;
            };
            if done_at.is_some_and(|d| s.at > d + self.cfg.drain) {
                break;
            }
            if s.at > self.cfg.time_limit {
                return Err(format!("time limit {:?} reached", self.cfg.time_limit));
            }
            self.now = s.at;
            self.metrics.events += 1;
            self.process(s.ev, driver);
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            driver.on_event(self);
            if let Some(e) = self.error.take() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Current virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The planner.
    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    /// Measurements so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Number of simulated peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// A peer's class.
    pub fn peer_class(&self, i: usize) -> &'static str {
        self.peers[i].spec.class
    }

    /// A peer's server-side counters.
    pub fn peer_stats(&self, i: usize) -> &SimPeerStats {
        &self.peers[i].stats
    }

    /// Whether block `b` is local.
    pub fn has(&self, b: u64) -> bool {
        self.sched.has(b)
    }

    /// Records a failure; the run stops after the current event.
    pub fn fail(&mut self, msg: String) {
        if self.error.is_none() {
            self.error = Some(msg);
        }
    }

    /// Fires [`Driver::on_timer`] with `token` at `at` (not before now).
    pub fn set_timer(&mut self, at: Duration, token: u64) {
        let at = at.max(self.now);
        self.push(at, Ev::Timer(token));
    }

    /// Registers a range now.
    pub fn prioritize(&mut self, spec: Prioritize) -> RangeHandle {
        let now = self.now;
        let (h, actions) = self.timed(|s| s.prioritize(now, spec));
        self.after_planner(actions, "prioritize");
        h
    }

    /// Withdraws a range now.
    pub fn unprioritize(&mut self, h: RangeHandle) {
        self.feed(Event::Unprioritize { handle: h });
    }

    /// The writer appended `n` blocks: seeders without an explicit availability get them at
    /// once, and the downloader learns the new length.
    pub fn append(&mut self, n: u64) {
        let start = self.length;
        self.length += n;
        for i in 0..self.peers.len() {
            if self.peers[i].connected && self.peers[i].spec.has.is_none() {
                self.feed(Event::PeerHave {
                    peer: PeerId(i as u64),
                    start,
                    length: n,
                });
            }
        }
        let length = self.length;
        self.feed(Event::LengthGrew { length });
    }

    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn timed<T>(&mut self, f: impl FnOnce(&mut Scheduler) -> T) -> T {
        self.metrics.planner_calls += 1;
        if self.cfg.measure_cpu {
            let t = std::time::Instant::now();
            let r = f(&mut self.sched);
            self.metrics.planner_nanos += t.elapsed().as_nanos();
            r
        } else {
            f(&mut self.sched)
        }
    }

    fn feed(&mut self, ev: Event) {
        let now = self.now;
        let what = if self.cfg.check_invariants {
            format!("{ev:?}")
        } else {
            String::new()
        };
        let actions = self.timed(|s| s.handle(now, ev));
        self.after_planner(actions, &what);
    }

    fn after_planner(&mut self, actions: Vec<Action>, what: &str) {
        if self.cfg.check_invariants {
            self.metrics.invariant_checks += 1;
            if let Err(e) = self.sched.check_invariants() {
                let what = if what.len() > 200 { &what[..200] } else { what };
                self.fail(format!(
                    "invariant violated at {:?} after {what}: {e}",
                    self.now
                ));
            }
        }
        for a in actions {
            self.apply(a);
        }
    }

    fn apply(&mut self, a: Action) {
        let now = self.now;
        match a {
            Action::Request {
                peer,
                id,
                block,
                priority,
                ..
            } => {
                self.metrics.requests += 1;
                self.requests.insert(
                    id,
                    ReqInfo {
                        sent_at: now,
                        cancelled: false,
                    },
                );
                let i = peer.0 as usize;
                let u = self.uniform();
                let bytes = self.cfg.request_bytes;
                let at = self.peers[i].up.send(now, bytes, u);
                self.push(
                    at,
                    Ev::ReqArrive {
                        peer: i,
                        id,
                        block,
                        prio: priority,
                    },
                );
            }
            Action::Cancel { peer, id, .. } => {
                self.metrics.cancels_sent += 1;
                if let Some(r) = self.requests.get_mut(&id) {
                    r.cancelled = true;
                }
                let i = peer.0 as usize;
                let u = self.uniform();
                let bytes = self.cfg.request_bytes;
                let at = self.peers[i].up.send(now, bytes, u);
                self.push(at, Ev::CancelArrive { peer: i, id });
            }
            Action::RangeDone { handle } => {
                self.metrics.range_done.insert(handle.id(), now);
            }
            Action::Snub { .. } => self.metrics.snubs += 1,
            Action::Unsnub { .. } => {}
        }
    }

    fn server_has(&self, i: usize, b: u64) -> bool {
        match &self.peers[i].spec.has {
            None => b < self.length,
            Some(av) => b < av.contiguous || av.bits.get(b),
        }
    }

    fn process(&mut self, ev: Ev, driver: &mut dyn Driver) {
        let now = self.now;
        match ev {
            Ev::Join(i) => {
                if self.peers[i].gone {
                    return;
                }
                self.peers[i].connected = true;
                let availability = self.peers[i]
                    .spec
                    .has
                    .clone()
                    .unwrap_or_else(|| Availability::contiguous(self.length));
                self.feed(Event::PeerAdded {
                    peer: PeerId(i as u64),
                    availability,
                });
            }
            Ev::ReqArrive {
                peer,
                id,
                block,
                prio,
            } => {
                if !self.peers[peer].connected {
                    return;
                }
                self.peers[peer].stats.requests_received += 1;
                if !self.server_has(peer, block) {
                    let u = self.uniform();
                    let bytes = self.cfg.request_bytes;
                    let at = self.peers[peer].down.send(now, bytes, u);
                    self.push(at, Ev::NoData { peer, block });
                    return;
                }
                self.seq += 1;
                let key = (Reverse(prio), self.seq);
                let p = &mut self.peers[peer];
                p.pending.insert(key, (id, block));
                p.pending_ids.insert(id, key);
                self.serve(peer);
            }
            Ev::CancelArrive { peer, id } => {
                let p = &mut self.peers[peer];
                if !p.connected {
                    return;
                }
                p.stats.cancels_received += 1;
                if let Some(key) = p.pending_ids.remove(&id) {
                    p.pending.remove(&key);
                    p.stats.cancels_effective += 1;
                }
            }
            Ev::Wake(i) => {
                self.peers[i].wake_at = None;
                if self.peers[i].connected {
                    self.serve(i);
                }
            }
            Ev::Data {
                peer,
                id,
                block,
                bytes,
            } => {
                if !self.peers[peer].connected {
                    return;
                }
                let useful = !self.sched.has(block);
                let info = self.requests.remove(&id);
                if info.is_some_and(|r| r.cancelled) {
                    self.metrics.cancels_too_late += 1;
                }
                if useful {
                    self.metrics.useful_bytes += bytes;
                    self.metrics.arrivals.push((now, block));
                    if let Some(r) = info {
                        self.metrics.latencies.push(now - r.sent_at);
                    }
                } else {
                    self.metrics.dup_bytes += bytes;
                }
                self.feed(Event::BlockArrived {
                    peer: Some(PeerId(peer as u64)),
                    block,
                    bytes,
                });
            }
            Ev::NoData { peer, block } => {
                if self.peers[peer].connected {
                    self.feed(Event::RequestFailed {
                        peer: PeerId(peer as u64),
                        block,
                        reason: super::Failure::NoData,
                    });
                }
            }
            Ev::Tick => {
                self.feed(Event::Tick);
                let next = now + self.cfg.tick;
                self.push(next, Ev::Tick);
            }
            Ev::Timer(token) => driver.on_timer(self, token),
            Ev::Disconnect(i) => {
                let p = &mut self.peers[i];
                p.gone = true;
                if p.connected {
                    p.connected = false;
                    p.pending.clear();
                    p.pending_ids.clear();
                    self.feed(Event::PeerRemoved {
                        peer: PeerId(i as u64),
                    });
                }
            }
            Ev::SlowDown(i, f) => {
                let p = &mut self.peers[i];
                p.down.rate /= f.max(1e-9);
                p.up.rate /= f.max(1e-9);
            }
        }
    }

    /// Puts responses on peer `i`'s link while its backlog allows.
    fn serve(&mut self, i: usize) {
        let now = self.now;
        loop {
            let p = &self.peers[i];
            if p.stalled || p.pending.is_empty() {
                return;
            }
            let backlog = p.down.backlog(now);
            if backlog > p.spec.queue_limit {
                let at = now + (backlog - p.spec.queue_limit);
                if p.wake_at.is_none_or(|w| w > at) {
                    self.peers[i].wake_at = Some(at);
                    self.push(at, Ev::Wake(i));
                }
                return;
            }
            if p.spec.stall_after_bytes.is_some_and(|s| p.served >= s) {
                self.peers[i].stalled = true;
                return;
            }
            let size = self.cfg.block_size;
            let wire = size + self.cfg.data_overhead;
            let u = self.uniform();
            let p = &mut self.peers[i];
            let (_, (id, block)) = p.pending.pop_first().expect("non-empty");
            p.pending_ids.remove(&id);
            let at = p.down.send(now, wire, u);
            p.served += size;
            p.stats.bytes_sent += size;
            p.stats.blocks_sent += 1;
            self.push(
                at,
                Ev::Data {
                    peer: i,
                    id,
                    block,
                    bytes: size,
                },
            );
        }
    }
}

/// Percentile (nearest rank) of a sample; `None` when empty.
pub fn percentile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

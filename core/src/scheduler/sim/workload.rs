//! Workload drivers for the simulator: plain downloads, streaming with a seek, and binary
//! searches over a bisect-prefetched log.

use std::time::Duration;

use super::{Driver, Sim};
use crate::scheduler::{BisectCursor, BisectSearch, Order, Prioritize, RangeHandle};

/// Registers ranges at given times and finishes when all of them are complete.
#[derive(Clone, Debug, Default)]
pub struct Download {
    /// `(when, range)`, registered in this order.
    pub plan: Vec<(Duration, Prioritize)>,
    /// Handles, in `plan` order, once registered.
    pub handles: Vec<Option<RangeHandle>>,
    /// Registration times.
    pub started: Vec<Option<Duration>>,
}

impl Download {
    /// All ranges at time 0.
    pub fn new(ranges: Vec<Prioritize>) -> Self {
        Self::timed(ranges.into_iter().map(|r| (Duration::ZERO, r)).collect())
    }

    /// Ranges at the given times.
    pub fn timed(plan: Vec<(Duration, Prioritize)>) -> Self {
        let n = plan.len();
        Self {
            plan,
            handles: vec![None; n],
            started: vec![None; n],
        }
    }

    /// Completion time of range `i` measured from its registration.
    pub fn completion(&self, sim: &Sim, i: usize) -> Option<Duration> {
        let h = self.handles[i]?;
        let done = *sim.metrics().range_done.get(&h.id())?;
        Some(done - self.started[i]?)
    }

    fn register_due(&mut self, sim: &mut Sim) {
        for i in 0..self.plan.len() {
            if self.handles[i].is_none() && self.plan[i].0 <= sim.now() {
                self.started[i] = Some(sim.now());
                self.handles[i] = Some(sim.prioritize(self.plan[i].1));
            }
        }
    }
}

impl Driver for Download {
    fn start(&mut self, sim: &mut Sim) {
        for (i, (t, _)) in self.plan.iter().enumerate() {
            if *t > Duration::ZERO {
                sim.set_timer(*t, i as u64);
            }
        }
        self.register_due(sim);
    }

    fn on_timer(&mut self, sim: &mut Sim, _token: u64) {
        self.register_due(sim);
    }

    fn done(&self, sim: &Sim) -> bool {
        self.handles
            .iter()
            .all(|h| h.is_some_and(|h| sim.scheduler().is_done(h)))
    }
}

/// Time from 95 % to 100 % of the blocks `[start, end)` being local, from the arrival log.
pub fn tail_time(sim: &Sim, start: u64, end: u64) -> Option<Duration> {
    let times: Vec<Duration> = sim
        .metrics()
        .arrivals
        .iter()
        .filter(|(_, b)| *b >= start && *b < end)
        .map(|(t, _)| *t)
        .collect();
    let n = (end - start) as usize;
    if times.len() < n || n == 0 {
        return None;
    }
    let i95 = ((n as f64 * 0.95).ceil() as usize).clamp(1, n);
    Some(times[n - 1] - times[i95 - 1])
}

/// Streaming with a seek (workload S2): fetch `[0, before_end)` linearly at priority 6, then at
/// `seek_at` withdraw that range and prioritize `[seek_to, total)` with the strategy under
/// test; play from `seek_to` at `bitrate` once `startup_blocks` are contiguous.
#[derive(Clone, Debug)]
pub struct Streaming {
    /// Blocks in the file.
    pub total: u64,
    /// Playback rate, bytes per second.
    pub bitrate: f64,
    /// Seek time.
    pub seek_at: Duration,
    /// Seek target block.
    pub seek_to: u64,
    /// Blocks that must be contiguous before playback starts.
    pub startup_blocks: u64,
    /// The range used after the seek (its `start`/`end` are overwritten).
    pub strategy: Prioritize,
    /// End of the linear range fetched before the seek (`None`: the whole file).
    pub before_end: Option<u64>,
    before: Option<RangeHandle>,
    after: Option<RangeHandle>,
    /// Time of the seek.
    pub t_seek: Option<Duration>,
    /// First block at the seek point local.
    pub t_first: Option<Duration>,
    /// Playback start.
    pub t_start: Option<Duration>,
    pos: u64,
    next_at: Duration,
    stall_start: Option<Duration>,
    /// Stall events.
    pub stalls: u64,
    /// Total stalled time.
    pub stalled: Duration,
    /// Playback finished.
    pub finished: Option<Duration>,
    timer_at: Option<Duration>,
}

impl Streaming {
    /// A streaming run; `strategy` gives the order, priority and hotswap flag after the seek.
    pub fn new(
        total: u64,
        bitrate: f64,
        seek_at: Duration,
        seek_to: u64,
        startup_blocks: u64,
        strategy: Prioritize,
    ) -> Self {
        Self {
            total,
            bitrate,
            seek_at,
            seek_to,
            startup_blocks,
            strategy,
            before_end: None,
            before: None,
            after: None,
            t_seek: None,
            t_first: None,
            t_start: None,
            pos: seek_to,
            next_at: Duration::ZERO,
            stall_start: None,
            stalls: 0,
            stalled: Duration::ZERO,
            finished: None,
            timer_at: None,
        }
    }

    /// Duration of one block of media.
    pub fn block_time(&self, block_size: u64) -> Duration {
        Duration::from_secs_f64(block_size as f64 / self.bitrate)
    }

    /// Fraction of blocks after the seek that arrived after their playback instant on the
    /// stall-free schedule `t_start + (i − seek_to)·d`.
    pub fn deadline_miss_ratio(&self, sim: &Sim) -> Option<f64> {
        let t0 = self.t_start?;
        let d = self.block_time(sim.config().block_size);
        let n = self.total - self.seek_to;
        let mut missed = 0;
        for &(t, b) in &sim.metrics().arrivals {
            if b >= self.seek_to && b < self.total && t > t0 + d * (b - self.seek_to) as u32 {
                missed += 1;
            }
        }
        Some(missed as f64 / n as f64)
    }

    fn step(&mut self, sim: &mut Sim) {
        if self.t_seek.is_none() {
            return;
        }
        if self.t_first.is_none() && sim.has(self.seek_to) {
            self.t_first = Some(sim.now());
        }
        if self.t_start.is_none() {
            let need = (self.seek_to + self.startup_blocks).min(self.total);
            if sim.scheduler().local().next_unset(self.seek_to) < need {
                return;
            }
            self.t_start = Some(sim.now());
            self.next_at = sim.now();
        }
        let d = self.block_time(sim.config().block_size);
        while self.finished.is_none() {
            if self.pos >= self.total {
                self.finished = Some(self.next_at.max(sim.now()));
                return;
            }
            if sim.now() < self.next_at {
                if self.timer_at != Some(self.next_at) {
                    self.timer_at = Some(self.next_at);
                    sim.set_timer(self.next_at, 1);
                }
                return;
            }
            if sim.has(self.pos) {
                let play = match self.stall_start.take() {
                    Some(s) => {
                        self.stalled += sim.now() - s;
                        sim.now()
                    }
                    None => self.next_at,
                };
                self.pos += 1;
                self.next_at = play + d;
            } else {
                if self.stall_start.is_none() {
                    self.stall_start = Some(sim.now());
                    self.stalls += 1;
                }
                return;
            }
        }
    }
}

impl Driver for Streaming {
    fn start(&mut self, sim: &mut Sim) {
        let end = self.before_end.unwrap_or(self.total).min(self.total);
        let first = Prioritize::range(0, end).priority(6).order(Order::Linear);
        self.before = Some(sim.prioritize(first));
        sim.set_timer(self.seek_at, 0);
    }

    fn on_event(&mut self, sim: &mut Sim) {
        self.step(sim);
    }

    fn on_timer(&mut self, sim: &mut Sim, token: u64) {
        if token == 0 && self.t_seek.is_none() {
            if let Some(h) = self.before.take() {
                sim.unprioritize(h);
            }
            self.t_seek = Some(sim.now());
            let mut r = self.strategy;
            r.start = self.seek_to;
            r.end = Some(self.total);
            self.after = Some(sim.prioritize(r));
        }
        self.step(sim);
    }

    fn done(&self, _sim: &Sim) -> bool {
        self.finished.is_some()
    }
}

/// One finished binary search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchResult {
    /// Probes made.
    pub probes: u32,
    /// Probes not local when needed (each a serial round trip).
    pub serial: u32,
    /// Time the search took.
    pub time: Duration,
}

/// Binary searches for random keys over `[0, n)` (workload S3). An optional prefetch range
/// runs in the background; searches start once the first `2^depth − 1` blocks of the bisect
/// order are local (`wait_depth`), or at `start_at`. Each probe that is not local is fetched
/// with a `get` (priority 7) and waited for.
#[derive(Clone, Debug)]
pub struct BisectSearches {
    /// Blocks in the log.
    pub n: u64,
    /// Background prefetch.
    pub prefetch: Option<Prioritize>,
    /// Start searching once this many bisect levels are local.
    pub wait_depth: Option<u32>,
    /// Otherwise start at this time.
    pub start_at: Duration,
    /// Number of searches.
    pub searches: usize,
    /// Finished searches.
    pub results: Vec<SearchResult>,
    /// When searching began.
    pub began: Option<Duration>,
    rng: u64,
    cur: Option<(BisectSearch, u64, Duration, u32, u32)>,
    waiting: Option<RangeHandle>,
}

impl BisectSearches {
    /// `searches` searches over `[0, n)` with keys from `seed`.
    pub fn new(
        n: u64,
        prefetch: Option<Prioritize>,
        wait_depth: Option<u32>,
        start_at: Duration,
        searches: usize,
        seed: u64,
    ) -> Self {
        Self {
            n,
            prefetch,
            wait_depth,
            start_at,
            searches,
            results: Vec::new(),
            began: None,
            rng: seed,
            cur: None,
            waiting: None,
        }
    }

    fn key(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.rng >> 11) % self.n
    }

    fn levels_local(&self, sim: &Sim, depth: u32) -> bool {
        let mut c = BisectCursor::default();
        for _ in 0..((1u64 << depth) - 1) {
            match c.index(0, self.n) {
                Some(i) if sim.has(i) => c.advance(self.n),
                Some(_) => return false,
                None => return true,
            }
        }
        true
    }

    fn step(&mut self, sim: &mut Sim) {
        if self.began.is_none() {
            let ready = match self.wait_depth {
                Some(d) => self.levels_local(sim, d),
                None => sim.now() >= self.start_at,
            };
            if !ready {
                return;
            }
            self.began = Some(sim.now());
        }
        if let Some(h) = self.waiting {
            if !sim.scheduler().is_done(h) {
                return;
            }
            sim.unprioritize(h);
            self.waiting = None;
        }
        loop {
            if self.cur.is_none() {
                if self.results.len() >= self.searches {
                    return;
                }
                let key = self.key();
                self.cur = Some((BisectSearch::new(0, self.n), key, sim.now(), 0, 0));
            }
            let (search, key, t0, probes, serial) = self.cur.as_mut().expect("search");
            match search.probe() {
                None => {
                    self.results.push(SearchResult {
                        probes: *probes,
                        serial: *serial,
                        time: sim.now() - *t0,
                    });
                    self.cur = None;
                }
                Some(p) => {
                    if sim.has(p) {
                        *probes += 1;
                        let right = *key >= p;
                        search.step(right);
                    } else {
                        // Not local: one serial round trip. The probe itself is counted
                        // when it is evaluated after the get completes.
                        *serial += 1;
                        let h = sim.prioritize(Prioritize::get(p));
                        if sim.scheduler().is_done(h) {
                            sim.unprioritize(h);
                            continue;
                        }
                        self.waiting = Some(h);
                        return;
                    }
                }
            }
        }
    }
}

impl Driver for BisectSearches {
    fn start(&mut self, sim: &mut Sim) {
        if let Some(p) = self.prefetch {
            sim.prioritize(p);
        }
        if self.wait_depth.is_none() {
            sim.set_timer(self.start_at, 0);
        }
        self.step(sim);
    }

    fn on_event(&mut self, sim: &mut Sim) {
        self.step(sim);
    }

    fn on_timer(&mut self, sim: &mut Sim, _token: u64) {
        self.step(sim);
    }

    fn done(&self, _sim: &Sim) -> bool {
        self.results.len() >= self.searches
    }
}

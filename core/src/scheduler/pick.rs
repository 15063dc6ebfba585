//! The planning pass: which peer gets which block.
//!
//! Peers with free capacity are visited in order of expected delivery time (`eta`, the
//! libtorrent "download queue time" plus one block); each visit picks one block:
//! 1. a *late* block (its only copies timed out) the peer can take (moved, or duplicated if
//!    the block's ranges allow hotswap and the budget has room);
//! 2. levels 7..0, strictly; ranges of a level round-robin; the range's order picks the block
//!    (linear ranges may also duplicate/move a head block the peer is expected to beat);
//! 3. a hotswap duplicate of an in-flight block this peer is expected to beat.

use std::time::Duration;

use super::planner::{PickKind, Scheduler};
use super::{Action, Order, PeerId, URGENT_PRIORITY, wire_priority};

/// A peer must be this much faster than a block's holder to duplicate or move it early.
const FASTER: f64 = 1.25;

impl Scheduler {
    /// Runs one planning pass.
    pub(crate) fn plan(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.stats.plans += 1;
        self.prepare_pass();
        let mut cands: Vec<PeerId> = self
            .peers
            .keys()
            .copied()
            .filter(|p| self.may_take(*p))
            .collect();
        let total_depth: usize = self.peers.values().map(|p| p.depth).sum();
        let limit = 4 * total_depth + 4 * self.peers.len() + 64;
        let mut iters = 0;
        while !cands.is_empty() && iters < limit {
            iters += 1;
            let avg = self.avg_block as u64;
            let (i, pid) = cands
                .iter()
                .enumerate()
                .map(|(i, p)| (i, *p, self.eta(now, &self.peers[p], 0, avg)))
                .min_by(|a, b| a.2.cmp(&b.2).then(a.1.cmp(&b.1)))
                .map(|(i, p, _)| (i, p))
                .expect("non-empty");
            match self.pick_for(now, pid) {
                None => {
                    cands.swap_remove(i);
                }
                Some((b, kind)) => {
                    let level = self
                        .inflight
                        .get(&b)
                        .map(|x| x.level)
                        .or_else(|| self.block_meta(b).map(|m| m.0));
                    if level.is_some_and(|l| l >= URGENT_PRIORITY) {
                        self.pass_urgent_waiting = None;
                    }
                    let freed = self.issue(now, pid, b, kind, out);
                    for q in freed {
                        if q != pid && !cands.contains(&q) && self.may_take(q) {
                            cands.push(q);
                        }
                    }
                    if !self.may_take(pid)
                        && let Some(pos) = cands.iter().position(|x| *x == pid)
                    {
                        cands.swap_remove(pos);
                    }
                }
            }
        }
    }

    fn prepare_pass(&mut self) {
        self.pass_window = self
            .peers
            .values()
            .map(|p| p.depth as u64)
            .sum::<u64>()
            .max(1);
        self.refresh_windows();
        self.pass_max_rate = self
            .peers
            .values()
            .filter_map(|p| p.rate())
            .fold(0.0, f64::max);
        self.pass_urgent_exists = self
            .ranges
            .values()
            .any(|r| !r.done && r.level >= URGENT_PRIORITY);
        self.pass_urgent_waiting = None;
    }

    /// Slides every linear range's window edge to `first_missing + Σ depths` (never back), and
    /// re-derives the level/hotswap of in-flight blocks that entered a window.
    pub(crate) fn refresh_windows(&mut self) {
        let w = self
            .peers
            .values()
            .map(|p| p.depth as u64)
            .sum::<u64>()
            .max(1);
        let length = self.length;
        let mut grown = Vec::new();
        let handles: Vec<u64> = self.ranges.keys().copied().collect();
        for h in handles {
            let Some(r) = self.ranges.get(&h) else {
                continue;
            };
            if r.order != Order::Linear || r.done {
                continue;
            }
            let fm = self.have.next_unset(r.first_missing.max(r.start));
            // measured from the first missing block a peer has and none is sending, as
            // `pick_in_range` picks
            let anchor = self.first_available(self.next_unsettled(fm), r.eff_end(length));
            let Some(r) = self.ranges.get_mut(&h) else {
                continue;
            };
            r.first_missing = fm;
            let edge = r.eff_end(length).min(anchor.saturating_add(w));
            if edge > r.window_end {
                grown.push((r.window_end, edge));
                r.window_end = edge;
            }
        }
        for (lo, hi) in grown {
            let keys: Vec<u64> = self.inflight.range(lo..hi).map(|(b, _)| *b).collect();
            let mut sink = Vec::new();
            for b in keys {
                self.refresh_meta(b, &mut sink);
            }
            debug_assert!(sink.is_empty());
        }
    }

    /// ⌈depth/4⌉: low-level requests a peer may keep while urgent work waits.
    fn low_cap(depth: usize) -> usize {
        depth.div_ceil(4)
    }

    fn may_take(&self, pid: PeerId) -> bool {
        let Some(p) = self.peers.get(&pid) else {
            return false;
        };
        if self.storing_bytes >= self.opts.max_storing_bytes {
            return false;
        }
        p.queue.len() < p.depth || (self.pass_urgent_exists && p.low > Self::low_cap(p.depth))
    }

    /// Whether an urgent range has an unrequested block some peer could serve (bounded scan).
    fn urgent_waiting(&mut self) -> bool {
        if let Some(w) = self.pass_urgent_waiting {
            return w;
        }
        let mut waiting = false;
        'ranges: for r in self.ranges.values() {
            if r.done || r.level < URGENT_PRIORITY {
                continue;
            }
            let end = r.eff_end(self.length);
            let mut b = self.busy.next_unset(r.first_missing.max(r.start));
            for _ in 0..16 {
                if b >= end {
                    break;
                }
                if self.peers.values().any(|p| p.eligible(b)) {
                    waiting = true;
                    break 'ranges;
                }
                b = self.busy.next_unset(b + 1);
            }
        }
        self.pass_urgent_waiting = Some(waiting);
        waiting
    }

    fn is_slow(&self, pid: PeerId) -> bool {
        let p = &self.peers[&pid];
        p.snubbed || self.rate_of(p) < self.opts.slow_ratio * self.pass_max_rate
    }

    /// Blocks the peers that are not slow are expected to fetch before slow peer `pid` could
    /// deliver a new request: `(eta(pid) − now) × Σ their rates / block size`.
    fn reach_before(&self, now: Duration, pid: PeerId) -> u64 {
        let p = &self.peers[&pid];
        let wait = self
            .eta(now, p, 0, self.avg_block as u64)
            .saturating_sub(now)
            .as_secs_f64();
        let others: f64 = self
            .peers
            .iter()
            .filter(|(q, qs)| {
                **q != pid
                    && !qs.snubbed
                    && qs
                        .rate()
                        .is_some_and(|r| r >= self.opts.slow_ratio * self.pass_max_rate)
            })
            .map(|(_, qs)| self.rate_of(qs))
            .sum();
        (wait * others / self.avg_block.max(1.0)) as u64
    }

    /// One block for `pid`, or `None` if it has nothing useful to do.
    fn pick_for(&mut self, now: Duration, pid: PeerId) -> Option<(u64, PickKind)> {
        let (full, low, depth) = {
            let p = &self.peers[&pid];
            (p.queue.len() >= p.depth, p.low, p.depth)
        };
        if !full && let Some(pk) = self.pick_late(pid) {
            return Some(pk);
        }
        for level in (0..8u8).rev() {
            let urgent = level >= URGENT_PRIORITY;
            if full && !urgent {
                break;
            }
            if !urgent
                && low >= Self::low_cap(depth)
                && self.pass_urgent_exists
                && self.urgent_waiting()
            {
                break;
            }
            let n = self.levels[level as usize].len();
            if n == 0 {
                continue;
            }
            let start = self.rr[level as usize] % n;
            for k in 0..n {
                let idx = (start + k) % n;
                let h = self.levels[level as usize][idx];
                if let Some(pk) = self.pick_in_range(now, h, pid) {
                    self.rr[level as usize] = (idx + 1) % n;
                    return Some(pk);
                }
            }
        }
        if !full && self.peers.len() >= 2 {
            return self.pick_hotswap(now, pid);
        }
        None
    }

    fn pick_late(&self, pid: PeerId) -> Option<(u64, PickKind)> {
        let p = &self.peers[&pid];
        for &b in &self.late {
            let Some(inf) = self.inflight.get(&b) else {
                continue;
            };
            if !p.eligible(b) || inf.copies.iter().any(|c| c.peer == pid) {
                continue;
            }
            let kind = if inf.hotswap
                && inf.copies.len() < self.opts.max_copies
                && self.dup_budget_ok(inf.bytes)
            {
                PickKind::Dup
            } else {
                PickKind::Move
            };
            return Some((b, kind));
        }
        None
    }

    fn pick_in_range(&mut self, now: Duration, h: u64, pid: PeerId) -> Option<(u64, PickKind)> {
        let length = self.length;
        let (start, eff_end, order, fm0) = {
            let r = self.ranges.get(&h)?;
            if r.done {
                return None;
            }
            (r.start, r.eff_end(length), r.order, r.first_missing)
        };
        let fm = self.have.next_unset(fm0.max(start));
        if let Some(r) = self.ranges.get_mut(&h) {
            r.first_missing = fm;
        }
        if fm >= eff_end {
            return None;
        }
        match order {
            Order::Linear => {
                // the window starts at the first missing block some peer has: a hole no peer
                // can fill (a block every peer cleared) must not hold the window shut; nor do
                // blocks that arrived and are being stored
                let fm = self.first_available(self.next_unsettled(fm), eff_end);
                let hi = eff_end.min(fm.saturating_add(self.pass_window));
                if self.is_slow(pid) {
                    // Far end only, and only blocks the faster peers would not reach before
                    // this peer could deliver them (libtorrent's time-critical idea).
                    let lo = fm.saturating_add(self.reach_before(now, pid)).min(hi);
                    self.find_back(pid, lo, hi).map(|b| (b, PickKind::Fresh))
                } else {
                    let mut found = None;
                    let mut b = fm;
                    let mut seen = 0;
                    while b < hi && seen < self.opts.critical_scan {
                        if !self.busy.get(b) {
                            break;
                        }
                        if let Some(kind) = self.can_beat(now, pid, b, true) {
                            found = Some((b, kind));
                            break;
                        }
                        seen += 1;
                        b = self.have.next_unset(b + 1);
                    }
                    found.or_else(|| self.find_fwd(pid, fm, hi).map(|b| (b, PickKind::Fresh)))
                }
            }
            Order::Random => {
                let span = eff_end - fm;
                let off = fm + self.next_random() % span;
                self.find_fwd(pid, off, eff_end)
                    .or_else(|| self.find_fwd(pid, fm, off))
                    .map(|b| (b, PickKind::Fresh))
            }
            Order::Bisect => self
                .pick_bisect(h, pid, start, fm, eff_end)
                .map(|b| (b, PickKind::Fresh)),
        }
    }

    fn pick_bisect(
        &mut self,
        h: u64,
        pid: PeerId,
        start: u64,
        fm: u64,
        eff_end: u64,
    ) -> Option<u64> {
        let n = eff_end - start;
        let mut r = self.ranges.remove(&h)?;
        let picked = (|| {
            if r.bisect_n != n {
                r.bisect_n = n;
                r.cursor = Default::default();
            }
            // Blocks released after the cursor passed them.
            while let Some(&b) = r.revisit.front() {
                if self.busy.get(b) || b >= eff_end || b < start {
                    r.revisit.pop_front();
                } else {
                    break;
                }
            }
            let p = &self.peers[&pid];
            if let Some(pos) = r
                .revisit
                .iter()
                .take(64)
                .position(|&b| !self.busy.get(b) && b < eff_end && p.eligible(b))
            {
                return r.revisit.remove(pos);
            }
            // Tree levels: advance the shared cursor over busy blocks, then scan ahead.
            let mut steps = 0;
            while let Some(i) = r.cursor.index(start, n) {
                if !self.busy.get(i) || steps >= 4096 {
                    break;
                }
                r.cursor.advance(n);
                steps += 1;
            }
            let mut probe = r.cursor;
            let mut misses = 0;
            let mut steps = 0;
            while let Some(i) = probe.index(start, n) {
                if !self.busy.get(i) {
                    if p.eligible(i) {
                        return Some(i);
                    }
                    misses += 1;
                    if misses > 256 {
                        break;
                    }
                }
                probe.advance(n);
                steps += 1;
                if steps > 8192 {
                    break;
                }
            }
            // Linear sweep (or a peer that has none of the next tree blocks).
            self.find_fwd(pid, fm, eff_end)
        })();
        self.ranges.insert(h, r);
        picked
    }

    /// Whether `pid` is expected to beat every copy of in-flight `b` by a margin; the kind of
    /// request to issue (duplicate if allowed, else move if `allow_move`).
    fn can_beat(&self, now: Duration, pid: PeerId, b: u64, allow_move: bool) -> Option<PickKind> {
        let inf = self.inflight.get(&b)?;
        let p = self.peers.get(&pid)?;
        // Only a peer that has delivered something has an ETA worth acting on.
        if p.min_rtt.is_none() || !p.eligible(b) || inf.copies.iter().any(|c| c.peer == pid) {
            return None;
        }
        if !self.not_slower_than_holders(p, inf) {
            return None;
        }
        let best = self.best_copy_eta(now, inf);
        let mine = self.eta(now, p, wire_priority(inf.level).max(1), inf.bytes);
        let margin = self.rtt_of(now, p).max(best.saturating_sub(now) / 5);
        if mine + margin >= best {
            return None;
        }
        if inf.hotswap && inf.copies.len() < self.opts.max_copies && self.dup_budget_ok(inf.bytes) {
            Some(PickKind::Dup)
        } else if allow_move {
            Some(PickKind::Move)
        } else {
            None
        }
    }

    /// Speculative duplicates and moves only go to a peer clearly faster (by
    /// [`FASTER`]) than every timely holder: a slower or equal peer can look better only
    /// because the holder's queue is deep, and the holder drains that queue at least as fast
    /// (late copies are exempt).
    fn not_slower_than_holders(
        &self,
        p: &super::planner::PeerState,
        inf: &super::planner::Inflight,
    ) -> bool {
        let mine = self.rate_of(p);
        inf.copies.iter().all(|c| {
            c.late
                || self
                    .peers
                    .get(&c.peer)
                    .is_none_or(|q| q.snubbed || self.rate_of(q) * FASTER <= mine)
        })
    }

    /// The in-flight block `pid` can best help with: highest level, then latest best-copy ETA.
    fn pick_hotswap(&self, now: Duration, pid: PeerId) -> Option<(u64, PickKind)> {
        let p = &self.peers[&pid];
        if p.snubbed || p.min_rtt.is_none() || self.inflight.is_empty() || !self.dup_budget_ok(1) {
            return None;
        }
        let rtt = self.rtt_of(now, p);
        let mut mine_by_wire = [None; 3];
        let mut best: Option<(u8, Duration, u64)> = None;
        for (&b, inf) in &self.inflight {
            if !inf.hotswap || inf.copies.len() >= self.opts.max_copies || !p.eligible(b) {
                continue;
            }
            if inf.copies.iter().any(|c| c.peer == pid) || !self.dup_budget_ok(inf.bytes) {
                continue;
            }
            if !self.not_slower_than_holders(p, inf) {
                continue;
            }
            let copy = self.best_copy_eta(now, inf);
            let w = wire_priority(inf.level).max(1) as usize;
            let mine = *mine_by_wire[w].get_or_insert_with(|| self.eta(now, p, w as u8, inf.bytes));
            let margin = rtt.max(copy.saturating_sub(now) / 5);
            if mine + margin >= copy {
                continue;
            }
            let better = match best {
                None => true,
                Some((l, e, _)) => inf.level > l || (inf.level == l && copy > e),
            };
            if better {
                best = Some((inf.level, copy, b));
            }
        }
        best.map(|(_, _, b)| (b, PickKind::Dup))
    }

    /// The lowest block in `[from, to)` not local, not in flight, that `pid` may be given.
    pub(crate) fn find_fwd(&self, pid: PeerId, from: u64, to: u64) -> Option<u64> {
        let p = &self.peers[&pid];
        let mut i = from;
        loop {
            i = self.busy.next_unset(i);
            if i >= to {
                return None;
            }
            if p.has(i) {
                if p.eligible(i) {
                    return Some(i);
                }
                i += 1;
                continue;
            }
            if i < p.contig || p.bits.get(i) {
                i += 1;
                continue;
            }
            match p.bits.next_set(i) {
                Some(j) if j < to => i = j,
                _ => return None,
            }
        }
    }

    /// The first block in `[from, to)` not local that some peer has (`from` when none is found
    /// within a bounded scan): a linear window starts there, not at a hole no peer can fill.
    pub(crate) fn first_available(&self, from: u64, to: u64) -> u64 {
        let mut best = to;
        for p in self.peers.values() {
            let mut i = from;
            for _ in 0..64 {
                i = self.have.next_unset(i);
                if i >= best {
                    break;
                }
                if p.has(i) {
                    best = i;
                    break;
                }
                if i < p.contig || p.bits.get(i) {
                    i += 1;
                    continue;
                }
                match p.bits.next_set(i) {
                    Some(j) if j < best => i = j,
                    _ => break,
                }
            }
        }
        if best >= to { from } else { best }
    }

    /// The highest block in `[from, to)` not local, not in flight, that `pid` may be given.
    pub(crate) fn find_back(&self, pid: PeerId, from: u64, to: u64) -> Option<u64> {
        if to <= from {
            return None;
        }
        let p = &self.peers[&pid];
        let mut i = to - 1;
        loop {
            let j = self.busy.prev_unset(i)?;
            if j < from {
                return None;
            }
            i = j;
            if p.eligible(i) {
                return Some(i);
            }
            let next = if i < p.contig || p.bits.get(i) {
                i.checked_sub(1)
            } else {
                match (p.bits.prev_set(i), p.contig.checked_sub(1)) {
                    (Some(a), Some(c)) => Some(a.max(c)),
                    (a, c) => a.or(c),
                }
            };
            match next {
                Some(n) if n >= from => i = n,
                _ => return None,
            }
        }
    }
}

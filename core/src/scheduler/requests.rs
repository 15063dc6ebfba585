//! The planner's bookkeeping: estimates (rates, round trips, ETAs, budgets), which ranges
//! want a block, and issuing / cancelling requests.

use std::time::Duration;

use super::planner::{Copy, Inflight, NEVER, PeerState, PickKind, Req, Scheduler};
use super::{Action, Order, PeerId, RequestId, URGENT_PRIORITY};

impl Scheduler {
    // ---------------------------------------------------------------- estimates

    /// Rate estimate. Before the first arrival: the default, or less if the peer has been
    /// silent for longer than a block at the default rate would take (at most one block per
    /// silent period).
    pub(crate) fn rate_of(&self, p: &PeerState) -> f64 {
        match p.rate() {
            Some(r) => r.max(1.0),
            None => {
                let silent = p
                    .silent_since
                    .map_or(0.0, |t| self.now.saturating_sub(t).as_secs_f64());
                let bound = if silent > 0.0 {
                    self.avg_block / silent
                } else {
                    f64::INFINITY
                };
                self.opts.default_rate.min(bound).max(1.0)
            }
        }
    }

    /// Round-trip estimate (including one block's transfer) used for ETAs. Before the first
    /// arrival: the default, or the time the peer has been silent since its first request.
    pub(crate) fn rtt_of(&self, now: Duration, p: &PeerState) -> Duration {
        match p.min_rtt {
            Some(m) => m,
            None => {
                let silent = p
                    .silent_since
                    .map_or(Duration::ZERO, |t| now.saturating_sub(t));
                self.opts.default_rtt.max(silent)
            }
        }
    }

    /// Expected arrival of a new request of `bytes` at wire priority `wire` sent to `p` now.
    ///
    /// The responder serves higher priorities first, but responses it has already committed to
    /// its connection cannot be overtaken: up to `queue_time` worth of lower-priority bytes
    /// count as ahead too.
    pub(crate) fn eta(&self, now: Duration, p: &PeerState, wire: u8, bytes: u64) -> Duration {
        let rate = self.rate_of(p);
        let w = (wire as usize).min(2);
        let ahead: u64 = p.by_wire[w..].iter().sum();
        let lower: u64 = p.by_wire[..w].iter().sum();
        let committed = (lower as f64).min(rate * self.opts.queue_time.as_secs_f64());
        let xfer = (ahead as f64 + committed + bytes as f64) / rate;
        now + self.rtt_of(now, p) + Duration::from_secs_f64(xfer.min(1e6))
    }

    /// Expected arrival of an in-flight copy.
    pub(crate) fn copy_eta(&self, now: Duration, c: &Copy, bytes: u64) -> Duration {
        let Some(q) = self.peers.get(&c.peer) else {
            return now + NEVER;
        };
        if c.late || q.snubbed {
            return now + NEVER;
        }
        let xfer = Duration::from_secs_f64((bytes as f64 / self.rate_of(q)).min(1e6));
        let mut e = c.expected_at.max(now + xfer);
        if q.min_rtt.is_none() {
            // Nothing has arrived yet: assume at most half of the wait is over.
            e = e.max(c.sent_at + self.rtt_of(now, q) * 2);
        }
        e
    }

    /// The ETA of the best copy of an in-flight block.
    pub(crate) fn best_copy_eta(&self, now: Duration, inf: &Inflight) -> Duration {
        inf.copies
            .iter()
            .map(|c| self.copy_eta(now, c, inf.bytes))
            .min()
            .unwrap_or(now + NEVER)
    }

    /// Whether one more duplicate of `bytes` fits both budgets.
    pub(crate) fn dup_budget_ok(&self, bytes: u64) -> bool {
        let waste_cap = (self.opts.dup_budget_bytes as f64)
            .max(self.opts.waste_ratio * self.stats.useful_bytes as f64);
        self.dup_inflight_bytes + bytes <= self.opts.dup_budget_bytes
            && (self.stats.wasted_bytes as f64) <= waste_cap
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    // ---------------------------------------------------------------- wants

    /// `(level, hotswap)` of `b` over the ranges that currently want it, or `None`.
    /// A linear range wants only blocks inside windows it has picked from.
    pub(crate) fn block_meta(&self, b: u64) -> Option<(u8, bool)> {
        let mut best: Option<(u8, bool)> = None;
        for r in self.ranges.values() {
            if r.done || !r.contains(b, self.length) {
                continue;
            }
            if r.order == Order::Linear && b >= r.window_end {
                continue;
            }
            best = Some(match best {
                None => (r.level, r.hotswap),
                Some((l, h)) => (l.max(r.level), h || r.hotswap),
            });
        }
        best
    }

    /// Re-derives an in-flight block's level/hotswap from the ranges; cancels it if unwanted.
    pub(crate) fn refresh_meta(&mut self, b: u64, out: &mut Vec<Action>) {
        match self.block_meta(b) {
            Some((l, h)) => {
                if let Some(inf) = self.inflight.get_mut(&b) {
                    inf.level = l;
                    inf.hotswap = h;
                }
            }
            None => {
                let peers: Vec<PeerId> = self
                    .inflight
                    .get(&b)
                    .map(|i| i.copies.iter().map(|c| c.peer).collect())
                    .unwrap_or_default();
                for p in peers {
                    self.remove_copy(b, p, true, out);
                }
            }
        }
    }

    // ---------------------------------------------------------------- requests

    /// Issues `b` to `pid`. Returns peers whose capacity was freed (moves, preemption).
    pub(crate) fn issue(
        &mut self,
        now: Duration,
        pid: PeerId,
        b: u64,
        kind: PickKind,
        out: &mut Vec<Action>,
    ) -> Vec<PeerId> {
        let mut freed = Vec::new();
        let (level, hotswap, bytes) = match self.inflight.get(&b) {
            Some(inf) => (inf.level, inf.hotswap, inf.bytes),
            None => {
                let (l, h) = self.block_meta(b).unwrap_or((0, false));
                (l, h, self.avg_block.round().max(1.0) as u64)
            }
        };
        // Preempt the most recent low-level request if the peer is full (urgent picks only).
        let full = self
            .peers
            .get(&pid)
            .is_some_and(|p| p.queue.len() >= p.depth);
        if full {
            let victim = self.peers[&pid]
                .queue
                .iter()
                .rev()
                .find(|r| r.level < URGENT_PRIORITY)
                .map(|r| r.block);
            if let Some(v) = victim {
                self.remove_copy(v, pid, true, out);
                self.stats.preemptions += 1;
            }
        }
        if kind == PickKind::Move {
            let holders: Vec<PeerId> = self
                .inflight
                .get(&b)
                .map(|i| i.copies.iter().map(|c| c.peer).collect())
                .unwrap_or_default();
            for q in holders {
                self.cancel_keep_entry(b, q, out);
                freed.push(q);
            }
        }
        let wire = if kind == PickKind::Fresh {
            super::wire_priority(level)
        } else {
            super::wire_priority(level).max(1)
        };
        let id = RequestId(self.next_req);
        self.next_req += 1;
        let expected_at = self.eta(now, &self.peers[&pid], wire, bytes);
        let p = self.peers.get_mut(&pid).expect("peer");
        if p.min_rtt.is_none() && p.silent_since.is_none() {
            p.silent_since = Some(now);
        }
        p.queue.push_back(Req {
            id,
            block: b,
            bytes,
            wire,
            level,
            sent_at: now,
        });
        // A preemption swaps one request for another: the queue did not grow.
        p.cap = p.cap.max(p.queue.len());
        p.outstanding += bytes;
        p.by_wire[wire as usize] += bytes;
        if level < URGENT_PRIORITY {
            p.low += 1;
        }
        p.stats.requests += 1;
        match kind {
            PickKind::Dup => {
                p.stats.hotswaps += 1;
                self.stats.duplicates += 1;
            }
            PickKind::Move => {
                p.stats.moves += 1;
                self.stats.moves += 1;
            }
            PickKind::Fresh => {}
        }
        let inf = self.inflight.entry(b).or_insert_with(|| Inflight {
            copies: Vec::new(),
            bytes,
            level,
            hotswap,
        });
        if !inf.copies.is_empty() {
            self.dup_inflight_bytes += inf.bytes;
        }
        inf.copies.push(Copy {
            peer: pid,
            id,
            sent_at: now,
            expected_at,
            late: false,
        });
        self.reserved.set(b, true);
        self.busy.set(b, true);
        self.refresh_late(b);
        out.push(Action::Request {
            peer: pid,
            id,
            block: b,
            priority: wire,
            duplicate: kind == PickKind::Dup,
        });
        freed
    }

    /// Cancels `q`'s copy of `b` but keeps the in-flight entry (used by moves).
    fn cancel_keep_entry(&mut self, b: u64, q: PeerId, out: &mut Vec<Action>) {
        let Some(inf) = self.inflight.get_mut(&b) else {
            return;
        };
        let Some(pos) = inf.copies.iter().position(|c| c.peer == q) else {
            return;
        };
        let c = inf.copies.remove(pos);
        if !inf.copies.is_empty() {
            self.dup_inflight_bytes -= inf.bytes;
        }
        self.dequeue(q, c.id);
        if let Some(p) = self.peers.get_mut(&q) {
            p.stats.cancels_sent += 1;
        }
        self.stats.cancels += 1;
        out.push(Action::Cancel {
            peer: q,
            id: c.id,
            block: b,
        });
    }

    fn dequeue(&mut self, q: PeerId, id: RequestId) -> Option<Req> {
        let p = self.peers.get_mut(&q)?;
        let pos = p.queue.iter().position(|r| r.id == id)?;
        let r = p.queue.remove(pos)?;
        p.cap = p.cap.min(p.queue.len().max(p.depth));
        p.outstanding -= r.bytes;
        p.by_wire[r.wire as usize] -= r.bytes;
        if r.level < URGENT_PRIORITY {
            p.low -= 1;
        }
        Some(r)
    }

    /// Removes `peer`'s copy of `b`, optionally sending a cancel; unreserves `b` if it was the
    /// last copy. Returns the peer's request.
    pub(crate) fn remove_copy(
        &mut self,
        b: u64,
        peer: PeerId,
        cancel: bool,
        out: &mut Vec<Action>,
    ) -> Option<Req> {
        let inf = self.inflight.get_mut(&b)?;
        let pos = inf.copies.iter().position(|c| c.peer == peer)?;
        let c = inf.copies.remove(pos);
        let empty = inf.copies.is_empty();
        if !empty {
            self.dup_inflight_bytes -= inf.bytes;
        }
        let req = self.dequeue(peer, c.id);
        if cancel {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.stats.cancels_sent += 1;
            }
            self.stats.cancels += 1;
            out.push(Action::Cancel {
                peer,
                id: c.id,
                block: b,
            });
        }
        if empty {
            self.inflight.remove(&b);
            self.reserved.set(b, false);
            if !self.have.get(b) && !self.is_storing(b) {
                self.busy.set(b, false);
                self.on_released(b);
            }
        }
        self.refresh_late(b);
        req
    }

    /// A block went back to "wanted, not in flight": bisect ranges revisit it.
    pub(crate) fn on_released(&mut self, b: u64) {
        let length = self.length;
        for r in self.ranges.values_mut() {
            if r.order == Order::Bisect
                && !r.done
                && r.contains(b, length)
                && r.revisit.len() < 4096
            {
                r.revisit.push_back(b);
            }
        }
    }
}

//! The planner invariants (design §A3.5), checked in tests after every event.

use std::collections::BTreeSet;

use super::planner::Scheduler;
use super::{MAX_PRIORITY, Order, URGENT_PRIORITY};

impl Scheduler {
    /// Checks the planner's invariants; returns a description of the first violation.
    ///
    /// * no peer has more requests in flight than its depth (1 when snubbed), except that a
    ///   shrunken depth is reached by draining, not cancelling: then the queue may stay at its
    ///   length at the time of the shrink (the cap) and only decreases;
    /// * no block is in flight twice to the same peer; copies ≤ `max_copies`;
    /// * `reserved == {b : inflight[b] non-empty}` and `busy == have ∪ reserved ∪ storing`;
    ///   a block being stored is neither local nor in flight, is stored from a known peer, and
    ///   the bytes being stored sum to `storing_bytes`;
    ///   peer queues and in-flight copies agree one to one;
    /// * every in-flight block is missing, below the log length and wanted by a live range
    ///   (for a linear range: inside a window the planner picked from);
    /// * duplicate bytes in flight match their sum and stay within the budget;
    /// * every peer's `outstanding_bytes` (total, per wire priority, low-level count) agrees
    ///   with its queue;
    /// * the late set, the priority lists and the completed ranges are consistent.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut copies_seen = 0usize;
        for (pid, p) in &self.peers {
            if p.queue.len() > p.cap || p.depth > p.cap {
                return Err(format!(
                    "peer {pid:?}: {} requests, depth {}, cap {}",
                    p.queue.len(),
                    p.depth,
                    p.cap
                ));
            }
            if p.cap > p.depth && p.cap != p.queue.len() {
                return Err(format!(
                    "peer {pid:?}: cap {} above depth {} but queue {}",
                    p.cap,
                    p.depth,
                    p.queue.len()
                ));
            }
            if p.snubbed && (p.depth != 1 || p.cap != 1) {
                return Err(format!(
                    "peer {pid:?}: snubbed with depth {} cap {}",
                    p.depth, p.cap
                ));
            }
            if p.depth == 0 {
                return Err(format!("peer {pid:?}: depth 0"));
            }
            let mut blocks = BTreeSet::new();
            let (mut total, mut by_wire, mut low) = (0u64, [0u64; 3], 0usize);
            for r in &p.queue {
                if !blocks.insert(r.block) {
                    return Err(format!("peer {pid:?}: block {} requested twice", r.block));
                }
                total += r.bytes;
                by_wire[r.wire as usize] += r.bytes;
                if r.level < URGENT_PRIORITY {
                    low += 1;
                }
                let inf = self.inflight.get(&r.block).ok_or_else(|| {
                    format!("peer {pid:?}: block {} queued but not in flight", r.block)
                })?;
                if !inf.copies.iter().any(|c| c.peer == *pid && c.id == r.id) {
                    return Err(format!(
                        "peer {pid:?}: block {} queued without a matching copy",
                        r.block
                    ));
                }
                copies_seen += 1;
            }
            if total != p.outstanding || by_wire != p.by_wire || low != p.low {
                return Err(format!(
                    "peer {pid:?}: outstanding {} / {:?} / low {} but queue sums {} / {:?} / {}",
                    p.outstanding, p.by_wire, p.low, total, by_wire, low
                ));
            }
        }
        let mut dup = 0u64;
        let mut copies_total = 0usize;
        for (&b, inf) in &self.inflight {
            if inf.copies.is_empty() {
                return Err(format!("block {b}: in flight with no copies"));
            }
            if inf.copies.len() > self.opts.max_copies {
                return Err(format!(
                    "block {b}: {} copies > {}",
                    inf.copies.len(),
                    self.opts.max_copies
                ));
            }
            let peers: BTreeSet<_> = inf.copies.iter().map(|c| c.peer).collect();
            if peers.len() != inf.copies.len() {
                return Err(format!("block {b}: two copies at one peer"));
            }
            for c in &inf.copies {
                let p = self
                    .peers
                    .get(&c.peer)
                    .ok_or_else(|| format!("block {b}: copy at unknown peer {:?}", c.peer))?;
                if !p.queue.iter().any(|r| r.id == c.id && r.block == b) {
                    return Err(format!(
                        "block {b}: copy at {:?} missing from its queue",
                        c.peer
                    ));
                }
            }
            copies_total += inf.copies.len();
            dup += (inf.copies.len() as u64 - 1) * inf.bytes;
            if !self.reserved.get(b) || !self.busy.get(b) {
                return Err(format!("block {b}: in flight but not reserved/busy"));
            }
            if self.have.get(b) {
                return Err(format!("block {b}: in flight but already local"));
            }
            if b >= self.length {
                return Err(format!(
                    "block {b}: in flight beyond length {}",
                    self.length
                ));
            }
            match self.block_meta(b) {
                None => return Err(format!("block {b}: in flight but no live range wants it")),
                Some((l, h)) => {
                    if l != inf.level || h != inf.hotswap {
                        return Err(format!(
                            "block {b}: meta ({}, {}) but ranges say ({l}, {h})",
                            inf.level, inf.hotswap
                        ));
                    }
                }
            }
            let is_late = inf.copies.iter().all(|c| c.late);
            if is_late != self.late.contains(&b) {
                return Err(format!("block {b}: late set disagrees"));
            }
        }
        if copies_total != copies_seen {
            return Err(format!(
                "{copies_total} copies but {copies_seen} queued requests"
            ));
        }
        if self.reserved.count_ones() != self.inflight.len() as u64 {
            return Err(format!(
                "reserved has {} bits, {} blocks in flight",
                self.reserved.count_ones(),
                self.inflight.len()
            ));
        }
        let mut storing_only = BTreeSet::new();
        let mut storing_bytes = 0u64;
        for (&(b, pid), &bytes) in &self.storing {
            storing_bytes += bytes;
            if self.have.get(b) {
                return Err(format!("block {b}: being stored but already local"));
            }
            if !self.peers.contains_key(&pid) {
                return Err(format!("block {b}: being stored from unknown peer {pid:?}"));
            }
            if !self.busy.get(b) {
                return Err(format!("block {b}: being stored but not busy"));
            }
            if self.inflight.contains_key(&b) {
                return Err(format!("block {b}: being stored and in flight"));
            }
            storing_only.insert(b);
        }
        let mut bits = 0u64;
        let mut i = 0;
        while let Some(b) = self.storing_bits.next_set(i) {
            if self.storing_peers(b).next().is_none() {
                return Err(format!(
                    "block {b}: storing bit set but no copy is being stored"
                ));
            }
            bits += 1;
            i = b + 1;
        }
        let blocks: BTreeSet<u64> = self.storing.keys().map(|(b, _)| *b).collect();
        if bits != blocks.len() as u64 {
            return Err(format!(
                "{bits} storing bits for {} blocks being stored",
                blocks.len()
            ));
        }
        if storing_bytes != self.storing_bytes {
            return Err(format!(
                "storing bytes {} but blocks sum to {storing_bytes}",
                self.storing_bytes
            ));
        }
        if self.busy.count_ones()
            != self.have.count_ones() + self.reserved.count_ones() + storing_only.len() as u64
        {
            return Err("busy != have ∪ reserved ∪ storing (count)".into());
        }
        let mut i = 0;
        while let Some(s) = self.have.next_set(i) {
            let e = self.have.next_unset(s);
            if self.busy.next_unset(s) < e {
                return Err(format!("busy misses local block in [{s}, {e})"));
            }
            i = e;
        }
        if dup != self.dup_inflight_bytes {
            return Err(format!(
                "dup bytes in flight {} but copies sum to {dup}",
                self.dup_inflight_bytes
            ));
        }
        if dup > self.opts.dup_budget_bytes {
            return Err(format!(
                "dup bytes in flight {dup} > budget {}",
                self.opts.dup_budget_bytes
            ));
        }
        for b in &self.late {
            if !self.inflight.contains_key(b) {
                return Err(format!("late block {b} not in flight"));
            }
        }
        let mut listed = 0;
        for (lvl, hs) in self.levels.iter().enumerate() {
            for h in hs {
                let r = self
                    .ranges
                    .get(h)
                    .ok_or_else(|| format!("level {lvl} lists unknown range {h}"))?;
                if r.level as usize != lvl || r.level > MAX_PRIORITY {
                    return Err(format!("range {h}: level {} listed at {lvl}", r.level));
                }
                listed += 1;
            }
            if !hs.is_empty() && self.rr[lvl] >= hs.len() {
                return Err(format!("level {lvl}: round-robin cursor out of range"));
            }
        }
        if listed != self.ranges.len() {
            return Err("ranges and priority lists disagree".into());
        }
        for (h, r) in &self.ranges {
            // (a done range stays done when its blocks are cleared later)
            if r.done && !r.lost_after_done {
                let e = r.end.unwrap_or(u64::MAX);
                if self.have.next_unset(r.start) < e {
                    return Err(format!(
                        "range {h}: done but block {} missing",
                        self.have.next_unset(r.start)
                    ));
                }
            }
            if r.order == Order::Linear && r.window_end < r.start {
                return Err(format!("range {h}: window below start"));
            }
            let actual = self.have.next_unset(r.start);
            if actual < r.first_missing {
                return Err(format!(
                    "range {h}: first_missing {} past missing block {actual}",
                    r.first_missing
                ));
            }
        }
        Ok(())
    }
}

//! Block orders inside a range: the bisect (midpoint-first, breadth-first) order and its cursor.
//!
//! Bisect yields the nodes of the implicit binary-search tree over `[s, e)` level by level:
//! level `k` holds `idx(k, j) = s + ((2j+1)·n) >> (k+1)` for `j < 2^k`, `n = e − s`. Once
//! `2^k ≥ n` every block has been covered except possibly some that coincide or `s` itself, and
//! the order falls back to a linear sweep. The state is O(1): `(k, j)`.
//!
//! A binary search that takes its midpoints from the same formula (walk down the tree: left child
//! `(k+1, 2j)`, right child `(k+1, 2j+1)`) finds its first `d` probes local once the first
//! `2^d − 1` blocks of the order have arrived; see [`BisectSearch`].

/// The bisect index `idx(k, j) = s + ((2j+1)·n) >> (k+1)` over `[s, s + n)`.
pub fn bisect_index(s: u64, n: u64, k: u32, j: u64) -> u64 {
    let v = ((2 * u128::from(j) + 1) * u128::from(n)) >> (k + 1);
    s + v as u64
}

/// Position of a bisect range's shared cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BisectCursor {
    /// Tree level.
    pub k: u32,
    /// Node within the level, `< 2^k`.
    pub j: u64,
    /// Whether the tree levels are exhausted (`2^k ≥ n`) and the linear sweep has begun.
    pub sweep: bool,
}

impl BisectCursor {
    /// The block at the cursor over `[s, s + n)`, or `None` in the sweep phase.
    pub fn index(&self, s: u64, n: u64) -> Option<u64> {
        if self.sweep || n == 0 || (1u128 << self.k.min(127)) >= u128::from(n) {
            None
        } else {
            Some(bisect_index(s, n, self.k, self.j))
        }
    }

    /// Advances by one position of the breadth-first order over a range of `n` blocks.
    pub fn advance(&mut self, n: u64) {
        if self.sweep {
            return;
        }
        self.j += 1;
        if u128::from(self.j) >= 1u128 << self.k {
            self.k += 1;
            self.j = 0;
        }
        if self.k >= 64 || (1u128 << self.k) >= u128::from(n) {
            self.sweep = true;
        }
    }

    /// The cursor after `steps` advances, without changing `self`.
    pub fn peek(&self, n: u64, steps: usize) -> BisectCursor {
        let mut c = *self;
        for _ in 0..steps {
            c.advance(n);
        }
        c
    }
}

/// The full bisect order over `[s, e)`: tree levels, then the linear sweep of what the levels
/// did not yield. Allocates; for tests and reports, not for the planner.
pub fn bisect_order(s: u64, e: u64) -> Vec<u64> {
    let n = e.saturating_sub(s);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let mut c = BisectCursor::default();
    if n == 0 {
        return out;
    }
    if n == 1 {
        c.sweep = true;
    }
    while let Some(i) = c.index(s, n) {
        if seen.insert(i) {
            out.push(i);
        }
        c.advance(n);
    }
    for i in s..e {
        if seen.insert(i) {
            out.push(i);
        }
    }
    out
}

/// A binary search over `[s, s + n)` that takes its probes from the bisect tree, so it shares
/// its midpoints with [`crate::scheduler::Order::Bisect`] prefetching.
///
/// Probe `idx(k, j)`; when the key is below the probed block go left (`j ← 2j`), else right
/// (`j ← 2j + 1`); `k ← k + 1`. It ends when `2^k ≥ n` (interval of size ≤ 1).
#[derive(Clone, Debug)]
pub struct BisectSearch {
    s: u64,
    n: u64,
    k: u32,
    j: u64,
}

impl BisectSearch {
    /// A search over `[s, s + n)`.
    pub fn new(s: u64, n: u64) -> Self {
        Self { s, n, k: 0, j: 0 }
    }

    /// The next block to probe, or `None` once the search is finished.
    pub fn probe(&self) -> Option<u64> {
        if self.n == 0 || self.k >= 64 || (1u128 << self.k) >= u128::from(self.n) {
            None
        } else {
            Some(bisect_index(self.s, self.n, self.k, self.j))
        }
    }

    /// Feeds the comparison result for the current probe: `go_right` when the key is at or
    /// after the probed block.
    pub fn step(&mut self, go_right: bool) {
        self.j = 2 * self.j + u64::from(go_right);
        self.k += 1;
    }

    /// Number of probes a full search over `n` blocks makes (`⌈log₂ n⌉`).
    pub fn probes_for(n: u64) -> u32 {
        if n <= 1 {
            0
        } else {
            64 - (n - 1).leading_zeros()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_sixteen() {
        let o = bisect_order(0, 16);
        assert_eq!(
            o,
            vec![8, 4, 12, 2, 6, 10, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0]
        );
        let o = bisect_order(100, 107);
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (100..107).collect::<Vec<_>>());
        assert_eq!(o[0], 103);
    }

    #[test]
    fn search_probes_follow_the_prefetch_order() {
        let n = 1u64 << 20;
        let prefetched: std::collections::BTreeSet<u64> = {
            let mut c = BisectCursor::default();
            let mut s = std::collections::BTreeSet::new();
            for _ in 0..31 {
                s.insert(c.index(0, n).unwrap());
                c.advance(n);
            }
            s
        };
        for key in [0u64, 1, 777_777, n - 1, n / 2, 12345] {
            let mut search = BisectSearch::new(0, n);
            let mut probes = 0;
            let mut local = 0;
            while let Some(p) = search.probe() {
                probes += 1;
                if prefetched.contains(&p) {
                    local += 1;
                }
                search.step(key >= p);
            }
            assert_eq!(probes, 20);
            assert_eq!(local, 5, "key {key}");
        }
        assert_eq!(BisectSearch::probes_for(n), 20);
    }
}

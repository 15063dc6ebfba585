//! A growable two-level bitset: `u64` words plus a population count per 4096-bit page.
//!
//! The page counts answer "is this page all set / all unset?" in O(1), so
//! [`Bitfield::next_set`] / [`Bitfield::next_unset`] (and their `prev_*` twins) cost
//! O(words in one page + pages skipped). Bits past the stored words read as unset: the set is
//! conceptually infinite, which is what a live log needs.

/// Words per summary page (64 × 64 = 4096 bits).
const PAGE_WORDS: usize = 64;
/// Bits per summary page.
const PAGE_BITS: u64 = (PAGE_WORDS * 64) as u64;

/// A growable bitset with a per-page summary for fast "next set / unset bit" scans.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bitfield {
    /// Always a whole number of pages long.
    words: Vec<u64>,
    /// Set bits per page, `0..=4096`.
    pages: Vec<u16>,
    /// Total set bits.
    ones: u64,
}

fn mask_from(bit: u64) -> u64 {
    !0u64 << (bit % 64)
}

fn mask_upto(bit: u64) -> u64 {
    let r = bit % 64;
    if r == 63 { !0 } else { (1u64 << (r + 1)) - 1 }
}

impl Bitfield {
    /// An empty bitset (every bit unset).
    pub fn new() -> Self {
        Self::default()
    }

    /// A bitset with bits `[0, n)` set.
    pub fn with_prefix(n: u64) -> Self {
        let mut b = Self::new();
        b.set_range(0, n, true);
        b
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        self.ones
    }

    /// Number of set bits in `[start, end)`.
    pub fn count_range(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        let mut i = start;
        while i < end {
            match self.next_set(i) {
                Some(s) if s < end => {
                    let e = self.next_unset(s).min(end);
                    n += e - s;
                    i = e;
                }
                _ => break,
            }
        }
        n
    }

    /// Whether bit `i` is set.
    pub fn get(&self, i: u64) -> bool {
        let w = (i / 64) as usize;
        w < self.words.len() && self.words[w] & (1u64 << (i % 64)) != 0
    }

    fn grow_to_word(&mut self, w: usize) {
        if w >= self.words.len() {
            let pages = w / PAGE_WORDS + 1;
            self.words.resize(pages * PAGE_WORDS, 0);
            self.pages.resize(pages, 0);
        }
    }

    /// Sets bit `i` to `v`; returns whether it changed.
    pub fn set(&mut self, i: u64, v: bool) -> bool {
        let w = (i / 64) as usize;
        if !v && w >= self.words.len() {
            return false;
        }
        self.grow_to_word(w);
        let bit = 1u64 << (i % 64);
        let old = self.words[w] & bit != 0;
        if old == v {
            return false;
        }
        if v {
            self.words[w] |= bit;
            self.pages[w / PAGE_WORDS] += 1;
            self.ones += 1;
        } else {
            self.words[w] &= !bit;
            self.pages[w / PAGE_WORDS] -= 1;
            self.ones -= 1;
        }
        true
    }

    /// Sets bits `[start, end)` to `v`.
    pub fn set_range(&mut self, start: u64, end: u64, v: bool) {
        if start >= end {
            return;
        }
        let mut end = end;
        if !v {
            end = end.min(self.words.len() as u64 * 64);
            if start >= end {
                return;
            }
        } else {
            self.grow_to_word(((end - 1) / 64) as usize);
        }
        let mut i = start;
        while i < end {
            let w = (i / 64) as usize;
            let word_end = (w as u64 + 1) * 64;
            let hi = end.min(word_end);
            let mask = mask_from(i) & mask_upto(hi - 1);
            let before = self.words[w].count_ones();
            if v {
                self.words[w] |= mask;
            } else {
                self.words[w] &= !mask;
            }
            let after = self.words[w].count_ones();
            let page = &mut self.pages[w / PAGE_WORDS];
            if after >= before {
                *page += (after - before) as u16;
                self.ones += u64::from(after - before);
            } else {
                *page -= (before - after) as u16;
                self.ones -= u64::from(before - after);
            }
            i = hi;
        }
    }

    /// The first set bit `>= i`, if any.
    pub fn next_set(&self, i: u64) -> Option<u64> {
        let mut w = (i / 64) as usize;
        if w >= self.words.len() {
            return None;
        }
        let bits = self.words[w] & mask_from(i);
        if bits != 0 {
            return Some(w as u64 * 64 + u64::from(bits.trailing_zeros()));
        }
        w += 1;
        while w < self.words.len() {
            if w.is_multiple_of(PAGE_WORDS) {
                // Skip empty pages via the summary.
                let mut p = w / PAGE_WORDS;
                while p < self.pages.len() && self.pages[p] == 0 {
                    p += 1;
                }
                if p == self.pages.len() {
                    return None;
                }
                w = p * PAGE_WORDS;
            }
            if self.words[w] != 0 {
                return Some(w as u64 * 64 + u64::from(self.words[w].trailing_zeros()));
            }
            w += 1;
        }
        None
    }

    /// The first unset bit `>= i` (always exists: the set is conceptually infinite).
    pub fn next_unset(&self, i: u64) -> u64 {
        let mut w = (i / 64) as usize;
        if w >= self.words.len() {
            return i;
        }
        let bits = !self.words[w] & mask_from(i);
        if bits != 0 {
            return w as u64 * 64 + u64::from(bits.trailing_zeros());
        }
        w += 1;
        while w < self.words.len() {
            if w.is_multiple_of(PAGE_WORDS) {
                let mut p = w / PAGE_WORDS;
                while p < self.pages.len() && u64::from(self.pages[p]) == PAGE_BITS {
                    p += 1;
                }
                if p == self.pages.len() {
                    return self.words.len() as u64 * 64;
                }
                w = p * PAGE_WORDS;
            }
            if self.words[w] != !0 {
                return w as u64 * 64 + u64::from((!self.words[w]).trailing_zeros());
            }
            w += 1;
        }
        self.words.len() as u64 * 64
    }

    /// The last set bit `<= i`, if any.
    pub fn prev_set(&self, i: u64) -> Option<u64> {
        if self.words.is_empty() {
            return None;
        }
        let (mut w, bits) = if (i / 64) as usize >= self.words.len() {
            let w = self.words.len() - 1;
            (w, self.words[w])
        } else {
            let w = (i / 64) as usize;
            (w, self.words[w] & mask_upto(i))
        };
        if bits != 0 {
            return Some(w as u64 * 64 + 63 - u64::from(bits.leading_zeros()));
        }
        while w > 0 {
            w -= 1;
            if w % PAGE_WORDS == PAGE_WORDS - 1 {
                let mut p = w / PAGE_WORDS + 1;
                while p > 0 && self.pages[p - 1] == 0 {
                    p -= 1;
                }
                if p == 0 {
                    return None;
                }
                w = p * PAGE_WORDS - 1;
            }
            if self.words[w] != 0 {
                return Some(w as u64 * 64 + 63 - u64::from(self.words[w].leading_zeros()));
            }
        }
        None
    }

    /// The last unset bit `<= i`, if any.
    pub fn prev_unset(&self, i: u64) -> Option<u64> {
        let mut w = (i / 64) as usize;
        if w >= self.words.len() {
            return Some(i);
        }
        let bits = !self.words[w] & mask_upto(i);
        if bits != 0 {
            return Some(w as u64 * 64 + 63 - u64::from(bits.leading_zeros()));
        }
        while w > 0 {
            w -= 1;
            if w % PAGE_WORDS == PAGE_WORDS - 1 {
                let mut p = w / PAGE_WORDS + 1;
                while p > 0 && u64::from(self.pages[p - 1]) == PAGE_BITS {
                    p -= 1;
                }
                if p == 0 {
                    return None;
                }
                w = p * PAGE_WORDS - 1;
            }
            if self.words[w] != !0 {
                return Some(w as u64 * 64 + 63 - u64::from((!self.words[w]).leading_zeros()));
            }
        }
        None
    }

    /// Iterates the set bits in ascending order.
    pub fn iter_ones(&self) -> impl Iterator<Item = u64> + '_ {
        let mut next = self.next_set(0);
        std::iter::from_fn(move || {
            let cur = next?;
            next = self.next_set(cur + 1);
            Some(cur)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_next_set(v: &[bool], i: u64) -> Option<u64> {
        (i as usize..v.len()).find(|&k| v[k]).map(|k| k as u64)
    }

    #[test]
    fn basic_and_pages() {
        let mut b = Bitfield::new();
        assert_eq!(b.next_set(0), None);
        assert_eq!(b.next_unset(5), 5);
        assert!(b.set(10_000, true));
        assert!(!b.set(10_000, true));
        assert_eq!(b.next_set(0), Some(10_000));
        assert_eq!(b.prev_set(20_000), Some(10_000));
        assert_eq!(b.prev_set(9_999), None);
        b.set_range(0, 9000, true);
        assert_eq!(b.next_unset(0), 9000);
        assert_eq!(b.prev_unset(8999), None);
        assert_eq!(b.prev_unset(9500), Some(9500));
        assert_eq!(b.count_ones(), 9001);
        assert_eq!(b.count_range(100, 200), 100);
        b.set_range(50, 60, false);
        assert_eq!(b.next_unset(0), 50);
        assert_eq!(b.next_set(50), Some(60));
        assert_eq!(b.count_ones(), 8991);
    }

    #[test]
    fn matches_naive_model() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut step = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 20_000usize;
        let mut v = vec![false; n];
        let mut b = Bitfield::new();
        for round in 0..400 {
            let s = step() % n as u64;
            let len = step() % 700;
            let val = step() % 3 != 0;
            let e = (s + len).min(n as u64);
            b.set_range(s, e, val);
            for k in s..e {
                v[k as usize] = val;
            }
            for _ in 0..20 {
                let i = step() % n as u64;
                assert_eq!(
                    b.next_set(i),
                    naive_next_set(&v, i),
                    "round {round} next_set {i}"
                );
                let nu = (i as usize..n).find(|&k| !v[k]).unwrap_or(n) as u64;
                assert_eq!(b.next_unset(i).min(n as u64), nu, "next_unset {i}");
                let ps = (0..=i as usize).rev().find(|&k| v[k]).map(|k| k as u64);
                assert_eq!(b.prev_set(i), ps, "prev_set {i}");
                let pu = (0..=i as usize).rev().find(|&k| !v[k]).map(|k| k as u64);
                assert_eq!(b.prev_unset(i), pu, "prev_unset {i}");
                assert_eq!(b.get(i), v[i as usize]);
            }
            assert_eq!(b.count_ones(), v.iter().filter(|&&x| x).count() as u64);
        }
    }
}

//! Flat-tree indexing: a binary tree laid out in one array.
//!
//! Leaves (blocks) sit at even indices (block `i` is node `2i`), parents at odd ones; the depth of a
//! node is the number of trailing one bits of its index. This is the scheme of the `flat-tree` package.

/// Depth of a node (0 for leaves).
pub fn depth(index: u64) -> u32 {
    (!index).trailing_zeros()
}

/// Offset of a node within its depth.
pub fn offset(index: u64) -> u64 {
    index >> (depth(index) + 1)
}

/// Index of the node at `depth` and `offset`.
pub fn index(depth: u32, offset: u64) -> u64 {
    (1 + 2 * offset) * (1u64 << depth) - 1
}

/// Parent of a node.
pub fn parent(i: u64) -> u64 {
    index(depth(i) + 1, offset(i) >> 1)
}

/// Sibling of a node.
pub fn sibling(i: u64) -> u64 {
    index(depth(i), offset(i) ^ 1)
}

/// Leftmost leaf under a node.
pub fn left_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 { i } else { offset(i) << (d + 1) }
}

/// Rightmost leaf under a node.
pub fn right_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 {
        i
    } else {
        ((offset(i) + 1) << (d + 1)) - 2
    }
}

/// Left child (None for a leaf).
pub fn left_child(i: u64) -> Option<u64> {
    let d = depth(i);
    (d > 0).then(|| index(d - 1, offset(i) * 2))
}

/// Right child (None for a leaf).
pub fn right_child(i: u64) -> Option<u64> {
    let d = depth(i);
    (d > 0).then(|| index(d - 1, offset(i) * 2 + 1))
}

/// Number of leaves under a node.
pub fn count_leaves(i: u64) -> u64 {
    1u64 << depth(i)
}

/// The roots of a tree whose next free leaf index is `head` (= 2 × length), biggest first.
pub fn full_roots(head: u64) -> Vec<u64> {
    debug_assert!(head & 1 == 0, "full_roots takes a leaf index");
    let mut out = Vec::new();
    let mut remaining = head / 2;
    let mut off = 0u64;
    while remaining > 0 {
        let factor = 1u64 << (63 - remaining.leading_zeros());
        out.push(off + factor - 1);
        off += 2 * factor;
        remaining -= factor;
    }
    out
}

/// A cursor over the flat tree with the moves of the reference's iterator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iter {
    /// Current node index.
    pub index: u64,
    /// Offset of the current node within its depth.
    pub offset: u64,
    /// `2^(depth + 1)`: the span of the current node in flat indices, plus one.
    pub factor: u64,
}

impl Iter {
    /// A cursor at `index`.
    pub fn new(index: u64) -> Self {
        let mut it = Iter {
            index: 0,
            offset: 0,
            factor: 0,
        };
        it.seek(index);
        it
    }

    /// Moves to `index`.
    pub fn seek(&mut self, index: u64) {
        self.index = index;
        if index & 1 == 1 {
            self.offset = offset(index);
            self.factor = 1u64 << (depth(index) + 1);
        } else {
            self.offset = index / 2;
            self.factor = 2;
        }
    }

    /// True if the current node is a left child.
    pub fn is_left(&self) -> bool {
        self.offset & 1 == 0
    }

    /// True if `index` lies under the current node (or is it).
    pub fn contains(&self, index: u64) -> bool {
        if index > self.index {
            index < self.index + self.factor / 2
        } else if index < self.index {
            index + self.factor / 2 > self.index
        } else {
            true
        }
    }

    /// Number of leaves under the current node.
    pub fn count_leaves(&self) -> u64 {
        self.factor / 2
    }

    /// Moves to the sibling.
    pub fn sibling(&mut self) -> u64 {
        if self.is_left() {
            self.offset += 1;
            self.index += self.factor;
        } else if self.offset > 0 {
            self.offset -= 1;
            self.index -= self.factor;
        }
        self.index
    }

    /// Moves to the parent.
    pub fn parent(&mut self) -> u64 {
        if self.offset & 1 == 1 {
            self.index -= self.factor / 2;
            self.offset = (self.offset - 1) / 2;
        } else {
            self.index += self.factor / 2;
            self.offset /= 2;
        }
        self.factor *= 2;
        self.index
    }

    /// Moves to the left child (stays on a leaf).
    pub fn left_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index -= self.factor / 2;
        self.offset *= 2;
        self.index
    }

    /// Moves to the right child (stays on a leaf).
    pub fn right_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index += self.factor / 2;
        self.offset = 2 * self.offset + 1;
        self.index
    }

    /// The rightmost leaf under the current node, without moving.
    pub fn peek_right_span(&self) -> u64 {
        self.index + self.factor / 2 - 1
    }

    /// Moves to the first leaf after the current subtree.
    pub fn next_tree(&mut self) -> u64 {
        self.index = self.index + self.factor / 2 + 1;
        self.offset = self.index / 2;
        self.factor = 2;
        self.index
    }

    /// Grows the current leaf into the biggest full root of a tree with head `head`; false when done.
    pub fn full_root(&mut self, head: u64) -> bool {
        if head <= self.index || self.index & 1 == 1 {
            return false;
        }
        while head > self.index + self.factor + self.factor / 2 {
            self.index += self.factor / 2;
            self.factor *= 2;
            self.offset /= 2;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert_eq!(depth(0), 0);
        assert_eq!(depth(1), 1);
        assert_eq!(depth(3), 2);
        assert_eq!(depth(7), 3);
        assert_eq!(parent(0), 1);
        assert_eq!(parent(2), 1);
        assert_eq!(parent(1), 3);
        assert_eq!(parent(5), 3);
        assert_eq!(sibling(0), 2);
        assert_eq!(sibling(5), 1);
        assert_eq!(left_span(3), 0);
        assert_eq!(right_span(3), 6);
        assert_eq!(left_span(11), 8);
        assert_eq!(right_span(11), 14);
        assert_eq!(left_child(3), Some(1));
        assert_eq!(right_child(3), Some(5));
        assert_eq!(left_child(4), None);
        assert_eq!(full_roots(6), vec![1, 4]);
        assert_eq!(full_roots(16), vec![7]);
        assert_eq!(full_roots(0), Vec::<u64>::new());
        assert_eq!(full_roots(2 * 7), vec![3, 9, 12]);
    }

    #[test]
    fn iterator_matches_functions() {
        for i in 0..2000u64 {
            let mut it = Iter::new(i);
            assert_eq!(it.parent(), parent(i));
            let mut it = Iter::new(i);
            if offset(i) > 0 || i & 1 == 0 || it.is_left() {
                assert_eq!(it.sibling(), sibling(i));
            }
            let mut it = Iter::new(i);
            assert!(it.contains(i));
            assert_eq!(it.peek_right_span(), right_span(i));
            if let Some(l) = left_child(i) {
                assert_eq!(it.left_child(), l);
            }
        }
    }

    #[test]
    fn full_root_walk_gives_full_roots() {
        for len in 0..300u64 {
            let mut got = Vec::new();
            let mut it = Iter::new(0);
            while it.full_root(2 * len) {
                got.push(it.index);
                it.next_tree();
            }
            assert_eq!(got, full_roots(2 * len), "len {len}");
        }
    }
}

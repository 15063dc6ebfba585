//! The diff iterator (hyperbee's `createDiffStream`): two versions of one bee walked side by
//! side in key order, skipping every subtree and key both versions share.
//!
//! Each side is a cursor whose head is either a key (a block seq) or a not-yet-opened subtree
//! (a `(seq, offset)` child pointer, with the key that follows it as its upper bound). Blocks are
//! immutable, so equal heads on both sides are equal content and are skipped unread. Otherwise a
//! subtree head is opened (when both are subtrees: the one reaching further, or both when they
//! end at the same key), and two key heads are merged: the smaller key is emitted on its side
//! alone, an equal key with a different block on both. This gives exactly "every key whose
//! block differs between the versions, in key order", which is what the reference outputs.

use std::cmp::Ordering;

use super::Entry;
use super::iter::{RangeOptions, above};
use super::node::{MAX_DEPTH, NodeRef, Source, too_deep};
use crate::Result;

/// One difference: the entry on this bee's side (`left`) and on the other version's side
/// (`right`); `None` where the key is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// The entry in the bee `diff` was called on.
    pub left: Option<Entry>,
    /// The entry in the other version.
    pub right: Option<Entry>,
}

#[derive(Debug)]
struct Frame {
    node: NodeRef,
    /// Even: child `p / 2`; odd: key `p / 2`.
    p: usize,
    /// Seq of the key right after this subtree (`None`: the end of the tree).
    bound: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Head {
    Key(u64),
    Sub {
        seq: u64,
        offset: u64,
        bound: Option<u64>,
    },
}

#[derive(Debug)]
struct Cursor {
    src: Source,
    stack: Vec<Frame>,
}

impl Cursor {
    fn open(src: Source, lower: Option<(&[u8], bool)>) -> Result<Cursor> {
        let mut c = Cursor {
            src,
            stack: Vec::new(),
        };
        let Some(root) = c.src.root()? else {
            return Ok(c);
        };
        if root.keys().is_empty() {
            return Ok(c);
        }
        c.stack.push(Frame {
            node: root,
            p: 0,
            bound: None,
        });
        if let Some((key, incl)) = lower {
            c.seek(key, incl)?;
        }
        c.normalize();
        Ok(c)
    }

    /// Moves past everything below the lower bound, opening the subtrees on its path.
    fn seek(&mut self, key: &[u8], incl: bool) -> Result<()> {
        for _ in 0..MAX_DEPTH {
            let depth = self.stack.len();
            let Some(top) = self.stack.last_mut() else {
                return Ok(());
            };
            let (found, i) = self.src.search(&top.node, key)?;
            if found {
                top.p = if incl { 2 * i + 1 } else { 2 * i + 2 };
                return Ok(());
            }
            if top.node.is_leaf() {
                top.p = 2 * i + 1;
                return Ok(());
            }
            top.p = 2 * i;
            self.descend()?;
            if self.stack.len() <= depth {
                // the child was empty (only in corrupt trees): nothing more to seek in
                return Ok(());
            }
        }
        Err(too_deep())
    }

    /// Pops finished frames and moves leaves onto key positions.
    fn normalize(&mut self) {
        while let Some(top) = self.stack.last_mut() {
            let len = top.node.keys().len();
            if top.node.is_leaf() && top.p % 2 == 0 {
                top.p += 1;
            }
            if top.p > 2 * len || (top.node.is_leaf() && top.p >= 2 * len) {
                self.stack.pop();
                continue;
            }
            return;
        }
    }

    fn head(&self) -> Option<Head> {
        let top = self.stack.last()?;
        let n = top.p / 2;
        let keys = top.node.keys();
        Some(if top.p % 2 == 1 {
            Head::Key(keys[n])
        } else {
            let (seq, offset) = top.node.children()[n];
            Head::Sub {
                seq,
                offset,
                bound: keys.get(n).copied().or(top.bound),
            }
        })
    }

    fn advance(&mut self) {
        if let Some(top) = self.stack.last_mut() {
            top.p += 1;
        }
        self.normalize();
    }

    /// Opens the subtree at the head.
    fn descend(&mut self) -> Result<()> {
        let Some(Head::Sub { seq, offset, bound }) = self.head() else {
            return Ok(());
        };
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep());
        }
        let node = self.src.node(seq, offset)?;
        self.stack.last_mut().expect("a head").p += 1;
        self.stack.push(Frame { node, p: 0, bound });
        self.normalize();
        Ok(())
    }

    fn key(&self, seq: u64) -> Result<std::sync::Arc<[u8]>> {
        self.src.key(seq)
    }
}

/// Both heads name the same key block or the same subtree.
fn same(a: Head, b: Head) -> bool {
    match (a, b) {
        (Head::Key(x), Head::Key(y)) => x == y,
        (
            Head::Sub { seq, offset, .. },
            Head::Sub {
                seq: s, offset: o, ..
            },
        ) => seq == s && offset == o,
        _ => false,
    }
}

/// Compares two upper bounds (`None` is the end of the tree).
fn cmp_bounds(a: &Cursor, x: Option<u64>, b: &Cursor, y: Option<u64>) -> Result<Ordering> {
    Ok(match (x, y) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if x == y => Ordering::Equal,
        (Some(x), Some(y)) => a.key(x)?.cmp(&b.key(y)?),
    })
}

/// Differences between two versions; see [`super::Bee::diff`].
#[derive(Debug)]
pub struct DiffIter {
    left: Cursor,
    right: Cursor,
    upper: Option<(Vec<u8>, bool)>,
    remaining: Option<usize>,
    done: bool,
}

impl DiffIter {
    pub(crate) fn new(left: Source, right: Source, range: RangeOptions) -> Result<Self> {
        let lower = range.lower();
        Ok(DiffIter {
            left: Cursor::open(left, lower)?,
            right: Cursor::open(right, lower)?,
            upper: range.upper().map(|(k, i)| (k.to_vec(), i)),
            remaining: range.limit,
            done: false,
        })
    }

    /// The entry of a key head, or `None` (ending that side) when it is past the upper bound.
    fn entry_within(&self, c: &Cursor, seq: u64) -> Result<Option<Entry>> {
        let e = c.src.entry(seq)?;
        let upper = self.upper.as_ref().map(|(k, i)| (k.as_slice(), *i));
        Ok((!above(&e.key, upper)).then_some(e))
    }

    fn step(&mut self) -> Result<Option<DiffEntry>> {
        loop {
            let (l, r) = (self.left.head(), self.right.head());
            let (l, r) = match (l, r) {
                (None, None) => return Ok(None),
                (Some(h), None) | (None, Some(h)) => {
                    let left_side = l.is_some();
                    let c = if left_side {
                        &mut self.left
                    } else {
                        &mut self.right
                    };
                    let Head::Key(seq) = h else {
                        c.descend()?;
                        continue;
                    };
                    let c = if left_side { &self.left } else { &self.right };
                    let Some(e) = self.entry_within(c, seq)? else {
                        return Ok(None);
                    };
                    let (left, right) = if left_side {
                        self.left.advance();
                        (Some(e), None)
                    } else {
                        self.right.advance();
                        (None, Some(e))
                    };
                    return Ok(Some(DiffEntry { left, right }));
                }
                (Some(l), Some(r)) => (l, r),
            };
            if same(l, r) {
                // the same key block, or the same subtree: identical on both sides
                self.left.advance();
                self.right.advance();
                continue;
            }
            match (l, r) {
                (Head::Key(_), Head::Sub { .. }) => self.right.descend()?,
                (Head::Sub { .. }, Head::Key(_)) => self.left.descend()?,
                (Head::Key(a), Head::Key(b)) => {
                    let ord = self.left.key(a)?.cmp(&self.right.key(b)?);
                    let left = match ord {
                        Ordering::Greater => None,
                        _ => Some(self.entry_within(&self.left, a)?),
                    };
                    let right = match ord {
                        Ordering::Less => None,
                        _ => Some(self.entry_within(&self.right, b)?),
                    };
                    // a side whose key is past the bound ends the diff: the other side's key
                    // is at least as large
                    let (Some(left), Some(right)) = (
                        left.map_or(Some(None), |e| e.map(Some)),
                        right.map_or(Some(None), |e| e.map(Some)),
                    ) else {
                        return Ok(None);
                    };
                    if left.is_some() {
                        self.left.advance();
                    }
                    if right.is_some() {
                        self.right.advance();
                    }
                    return Ok(Some(DiffEntry { left, right }));
                }
                (Head::Sub { bound: x, .. }, Head::Sub { bound: y, .. }) => {
                    match cmp_bounds(&self.left, x, &self.right, y)? {
                        Ordering::Equal => {
                            self.left.descend()?;
                            self.right.descend()?;
                        }
                        Ordering::Less => self.right.descend()?,
                        Ordering::Greater => self.left.descend()?,
                    }
                }
            }
        }
    }
}

impl Iterator for DiffIter {
    type Item = Result<DiffEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.remaining == Some(0) {
            return None;
        }
        match self.step() {
            Ok(Some(d)) => {
                if let Some(r) = &mut self.remaining {
                    *r -= 1;
                }
                Some(Ok(d))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

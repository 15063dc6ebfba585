//! Range and history iterators (hyperbee's `createReadStream` and `createHistoryStream`).

use std::cmp::Ordering;

use super::Entry;
use super::node::{MAX_DEPTH, NodeRef, Source, too_deep};
use crate::Result;

pub use super::diff::{DiffEntry, DiffIter};

/// Key bounds, direction and limit of a range read (hyperbee's `gt`/`gte`/`lt`/`lte`,
/// `reverse`, `limit`). When both `gt` and `gte` are set `gt` wins, likewise `lt` over `lte`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Keys strictly greater than this.
    pub gt: Option<Vec<u8>>,
    /// Keys greater than or equal to this.
    pub gte: Option<Vec<u8>>,
    /// Keys strictly less than this.
    pub lt: Option<Vec<u8>>,
    /// Keys less than or equal to this.
    pub lte: Option<Vec<u8>>,
    /// Iterate from the largest key down.
    pub reverse: bool,
    /// At most this many entries.
    pub limit: Option<usize>,
}

impl RangeOptions {
    /// No bounds, ascending, no limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `gt`.
    pub fn gt(mut self, key: impl AsRef<[u8]>) -> Self {
        self.gt = Some(key.as_ref().to_vec());
        self
    }

    /// Sets `gte`.
    pub fn gte(mut self, key: impl AsRef<[u8]>) -> Self {
        self.gte = Some(key.as_ref().to_vec());
        self
    }

    /// Sets `lt`.
    pub fn lt(mut self, key: impl AsRef<[u8]>) -> Self {
        self.lt = Some(key.as_ref().to_vec());
        self
    }

    /// Sets `lte`.
    pub fn lte(mut self, key: impl AsRef<[u8]>) -> Self {
        self.lte = Some(key.as_ref().to_vec());
        self
    }

    /// Sets `reverse`.
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }

    /// Sets `limit`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The lower bound as `(key, inclusive)`.
    pub(crate) fn lower(&self) -> Option<(&[u8], bool)> {
        match (&self.gt, &self.gte) {
            (Some(k), _) => Some((k, false)),
            (None, Some(k)) => Some((k, true)),
            _ => None,
        }
    }

    /// The upper bound as `(key, inclusive)`.
    pub(crate) fn upper(&self) -> Option<(&[u8], bool)> {
        match (&self.lt, &self.lte) {
            (Some(k), _) => Some((k, false)),
            (None, Some(k)) => Some((k, true)),
            _ => None,
        }
    }
}

/// True when `key` is past the upper bound.
pub(crate) fn above(key: &[u8], upper: Option<(&[u8], bool)>) -> bool {
    match upper {
        Some((u, incl)) => match key.cmp(u) {
            Ordering::Greater => true,
            Ordering::Equal => !incl,
            Ordering::Less => false,
        },
        None => false,
    }
}

/// True when `key` is below the lower bound.
pub(crate) fn below(key: &[u8], lower: Option<(&[u8], bool)>) -> bool {
    match lower {
        Some((l, incl)) => match key.cmp(l) {
            Ordering::Less => true,
            Ordering::Equal => !incl,
            Ordering::Greater => false,
        },
        None => false,
    }
}

/// A node and a position in it: even positions are children (`p / 2`), odd ones keys
/// (`p / 2`), so positions `0..=2 * keys` walk the node in order.
#[derive(Debug)]
struct Frame {
    node: NodeRef,
    p: isize,
}

/// Entries of one version in key order; see [`super::Bee::range`]. Yields errors from block
/// reads (for example [`crate::Error::NotAvailable`] for a block not stored locally).
#[derive(Debug)]
pub struct RangeIter {
    src: Source,
    stack: Vec<Frame>,
    opts: RangeOptions,
    remaining: Option<usize>,
    done: bool,
}

impl RangeIter {
    pub(crate) fn new(src: Source, opts: RangeOptions) -> Result<Self> {
        let mut it = RangeIter {
            src,
            stack: Vec::new(),
            remaining: opts.limit,
            opts,
            done: false,
        };
        it.seek()?;
        Ok(it)
    }

    /// Positions the stack just before the first entry in range.
    fn seek(&mut self) -> Result<()> {
        let Some(mut node) = self.src.root()? else {
            return Ok(());
        };
        let reverse = self.opts.reverse;
        let start = if reverse {
            self.opts.upper()
        } else {
            self.opts.lower()
        };
        let Some((key, incl)) = start else {
            let p = if reverse {
                2 * node.keys().len() as isize
            } else {
                0
            };
            self.stack.push(Frame { node, p });
            return Ok(());
        };
        let key = key.to_vec();
        loop {
            if self.stack.len() >= MAX_DEPTH {
                return Err(too_deep());
            }
            let len = node.keys().len() as isize;
            let (found, i) = self.src.search(&node, &key)?;
            let i = i as isize;
            if found {
                let p = match (incl, reverse) {
                    (true, _) => 2 * i + 1,
                    (false, false) => 2 * i + 2,
                    (false, true) => 2 * i,
                };
                self.stack.push(Frame { node, p });
                return Ok(());
            }
            // the key would sit in child i: continue after it (forward) or before it (reverse)
            let p = if reverse { 2 * i - 1 } else { 2 * i + 1 };
            let leaf = node.is_leaf();
            let child = if leaf {
                None
            } else {
                Some(self.src.child(&node, i as usize)?)
            };
            if (0..=2 * len).contains(&p) {
                self.stack.push(Frame { node, p });
            }
            match child {
                Some(c) => node = c,
                None => return Ok(()),
            }
        }
    }

    fn step(&mut self) -> Result<Option<Entry>> {
        let reverse = self.opts.reverse;
        while let Some(top) = self.stack.last_mut() {
            let len = top.node.keys().len() as isize;
            let p = top.p;
            if p < 0 || p > 2 * len {
                self.stack.pop();
                continue;
            }
            top.p += if reverse { -1 } else { 1 };
            if p % 2 == 0 {
                if top.node.is_leaf() {
                    continue;
                }
                let child = self.src.child(&top.node, (p / 2) as usize)?;
                if self.stack.len() >= MAX_DEPTH {
                    return Err(too_deep());
                }
                let p = if reverse {
                    2 * child.keys().len() as isize
                } else {
                    0
                };
                self.stack.push(Frame { node: child, p });
                continue;
            }
            let seq = top.node.keys()[(p / 2) as usize];
            let entry = self.src.entry(seq)?;
            let out = if reverse {
                below(&entry.key, self.opts.lower())
            } else {
                above(&entry.key, self.opts.upper())
            };
            if out {
                return Ok(None);
            }
            return Ok(Some(entry));
        }
        Ok(None)
    }
}

impl Iterator for RangeIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.remaining == Some(0) {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => {
                if let Some(r) = &mut self.remaining {
                    *r -= 1;
                }
                Some(Ok(e))
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

/// Which blocks a history read covers (hyperbee's `createHistoryStream` options). Versions are
/// block seqs; a negative number counts back from the bee's version. `gt` wins over `gte`,
/// `lt` over `lte`. By default: every block from 1 (block 0 is the header) to the version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryOptions {
    /// Blocks after this seq.
    pub gt: Option<i64>,
    /// Blocks from this seq on.
    pub gte: Option<i64>,
    /// Blocks before this seq.
    pub lt: Option<i64>,
    /// Blocks up to and including this seq.
    pub lte: Option<i64>,
    /// Newest first.
    pub reverse: bool,
    /// At most this many changes.
    pub limit: Option<usize>,
}

/// Whether a history change put or deleted its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A put (possibly without a value).
    Put,
    /// A deletion.
    Del,
}

/// One block of the history: the change it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Put or deletion.
    pub kind: ChangeKind,
    /// The block (the change's version is `seq + 1`).
    pub seq: u64,
    /// The key.
    pub key: Vec<u8>,
    /// The value put; `None` for a deletion.
    pub value: Option<Vec<u8>>,
}

/// The changes of a version, block by block; see [`super::Bee::history`].
#[derive(Debug)]
pub struct HistoryIter {
    src: Source,
    /// Next seq forward (`start`) and one past the next seq backward (`end`).
    start: u64,
    end: u64,
    reverse: bool,
    remaining: Option<usize>,
}

impl HistoryIter {
    pub(crate) fn new(src: Source, opts: HistoryOptions) -> Self {
        let v = i64::try_from(src.version).unwrap_or(i64::MAX);
        let rel = |n: i64| if n < 0 { n.saturating_add(v) } else { n };
        let start = match (opts.gt, opts.gte) {
            (Some(gt), _) => rel(gt).saturating_add(1),
            (None, Some(gte)) => rel(gte),
            _ => 1,
        };
        let end = match (opts.lt, opts.lte) {
            (Some(lt), _) => rel(lt),
            (None, Some(lte)) => rel(lte).saturating_add(1),
            _ => v,
        };
        HistoryIter {
            start: start.max(1) as u64,
            end: end.clamp(0, v) as u64,
            reverse: opts.reverse,
            remaining: opts.limit,
            src,
        }
    }
}

impl Iterator for HistoryIter {
    type Item = Result<HistoryEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == Some(0) || self.start >= self.end {
            return None;
        }
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        let seq = if self.reverse {
            self.end -= 1;
            self.end
        } else {
            self.start += 1;
            self.start - 1
        };
        Some(self.src.block(seq).map(|b| HistoryEntry {
            kind: if b.is_deletion() {
                ChangeKind::Del
            } else {
                ChangeKind::Put
            },
            seq,
            key: b.key.to_vec(),
            value: b.value.clone(),
        }))
    }
}

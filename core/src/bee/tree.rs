//! The write side of the B-tree: nodes loaded into an arena, changed in place by `put` and
//! `del` exactly as hyperbee 2 changes them, then serialized as the levels of one block.
//!
//! The layout of a written block depends on details that are easy to get wrong, so this follows
//! the reference step by step (design notes §1.6–1.8):
//!
//! - `T = 5`: a node splits when it reaches 9 keys, into 4 + median + 4; non-root nodes keep at
//!   least 4 keys. Deleting a key from an internal node takes the predecessor unless the
//!   successor's leaf is bigger; an underfull node borrows from its left sibling, then its
//!   right one, then merges (with the left sibling when there is one).
//! - Only changed nodes are written, in pre-order, the root first.
//! - A child pointer is a shared record ([`ChildRec`]): the same record sits in the parent's
//!   child list and in the index of the pending block that owns the child. Writing a node again
//!   in a later operation of a batch re-owns the record (its `seq` changes), which is how
//!   [`compact`] later drops it from the earlier block. Merged-away children get `seq = 0`.

use std::cmp::Ordering;
use std::sync::Arc;

use super::messages::Level;
use crate::{Error, Result};

/// Keys a node holds at most before it splits (`MAX_CHILDREN` in the reference).
const MAX_KEYS: usize = 9;
/// Keys a non-root node holds at least (`MIN_KEYS`).
const MIN_KEYS: usize = 4;

/// Index of a node in the [`Arena`].
pub(crate) type NodeId = usize;
/// Index of a child pointer record in the [`Arena`].
pub(crate) type ChildId = usize;

/// Where keys and not-yet-loaded nodes come from (committed blocks, pending batch blocks and the
/// block being written).
pub(crate) trait Blocks {
    /// The key stored in block `seq`.
    fn key(&self, seq: u64) -> Result<Arc<[u8]>>;
    /// Level `offset` of committed block `seq`.
    fn level(&self, seq: u64, offset: u64) -> Result<Level>;
}

/// A B-tree node being read or changed.
#[derive(Debug, Clone)]
pub(crate) struct TNode {
    /// Seqs of the key blocks, in key order.
    pub keys: Vec<u64>,
    /// Child pointer records; empty for a leaf.
    pub children: Vec<ChildId>,
    /// Changed since it was last serialized.
    pub changed: bool,
}

/// A child pointer: `(seq, offset)` of the node, and the node itself once loaded.
#[derive(Debug, Clone)]
pub(crate) struct ChildRec {
    pub seq: u64,
    pub offset: u64,
    pub node: Option<NodeId>,
}

/// Nodes and child records of one write (or of a whole batch).
#[derive(Debug, Default)]
pub(crate) struct Arena {
    pub nodes: Vec<TNode>,
    pub childs: Vec<ChildRec>,
}

impl Arena {
    fn new_node(&mut self, keys: Vec<u64>, children: Vec<ChildId>, changed: bool) -> NodeId {
        self.nodes.push(TNode {
            keys,
            children,
            changed,
        });
        self.nodes.len() - 1
    }

    fn new_child(&mut self, seq: u64, offset: u64, node: Option<NodeId>) -> ChildId {
        self.childs.push(ChildRec { seq, offset, node });
        self.childs.len() - 1
    }

    /// Loads level `offset` of committed block `seq` as an unchanged node.
    pub fn load(&mut self, blocks: &dyn Blocks, seq: u64, offset: u64) -> Result<NodeId> {
        let level = blocks.level(seq, offset)?;
        let children = level
            .children
            .iter()
            .map(|&(s, o)| self.new_child(s, o, None))
            .collect();
        Ok(self.new_node(level.keys, children, false))
    }

    /// The node child `i` of `node` points at, loading it if needed.
    pub fn child(&mut self, blocks: &dyn Blocks, node: NodeId, i: usize) -> Result<NodeId> {
        let cid = *self.nodes[node]
            .children
            .get(i)
            .ok_or_else(|| Error::Corrupt(format!("bee node has no child {i}")))?;
        if let Some(n) = self.childs[cid].node {
            return Ok(n);
        }
        let ChildRec { seq, offset, .. } = self.childs[cid];
        let n = self.load(blocks, seq, offset)?;
        self.childs[cid].node = Some(n);
        Ok(n)
    }

    fn is_leaf(&self, node: NodeId) -> bool {
        self.nodes[node].children.is_empty()
    }

    /// Binary search as the reference does it: `(true, i)` when `keys[i]` is `key`, else
    /// `(false, i)` with `i` the child to descend into (or the insert position).
    pub fn search(&self, blocks: &dyn Blocks, node: NodeId, key: &[u8]) -> Result<(bool, usize)> {
        let keys = &self.nodes[node].keys;
        let (mut s, mut e) = (0, keys.len());
        while s < e {
            let mid = (s + e) >> 1;
            match key.cmp(&*blocks.key(keys[mid])?) {
                Ordering::Equal => return Ok((true, mid)),
                Ordering::Less => e = mid,
                Ordering::Greater => s = mid + 1,
            }
        }
        Ok((false, s))
    }

    /// The seq of the block holding `key` in the tree under `root`, if any.
    pub fn lookup(&mut self, blocks: &dyn Blocks, root: NodeId, key: &[u8]) -> Result<Option<u64>> {
        let mut node = root;
        for _ in 0..super::node::MAX_DEPTH {
            let (found, i) = self.search(blocks, node, key)?;
            if found {
                return Ok(Some(self.nodes[node].keys[i]));
            }
            if self.is_leaf(node) {
                return Ok(None);
            }
            node = self.child(blocks, node, i)?;
        }
        Err(super::node::too_deep())
    }

    /// Puts block `seq` (whose key is `key`) into the tree; returns the new root.
    pub fn put(
        &mut self,
        blocks: &dyn Blocks,
        root: Option<NodeId>,
        seq: u64,
        key: &[u8],
    ) -> Result<NodeId> {
        let mut root = match root {
            Some(r) => r,
            None => self.new_node(Vec::new(), Vec::new(), true),
        };
        let mut stack = Vec::new();
        let mut node = root;
        while !self.is_leaf(node) {
            if stack.len() >= super::node::MAX_DEPTH {
                return Err(super::node::too_deep());
            }
            stack.push(node);
            self.nodes[node].changed = true;
            let (found, i) = self.search(blocks, node, key)?;
            if found {
                self.nodes[node].keys[i] = seq;
                return Ok(root);
            }
            node = self.child(blocks, node, i)?;
        }

        let (found, i) = self.search(blocks, node, key)?;
        self.nodes[node].changed = true;
        if found {
            self.nodes[node].keys[i] = seq;
            return Ok(root);
        }
        self.nodes[node].keys.insert(i, seq);

        while self.nodes[node].keys.len() >= MAX_KEYS {
            let (median, right) = self.split(node);
            match stack.pop() {
                Some(parent) => {
                    let median_key = blocks.key(median)?;
                    let (_, i) = self.search(blocks, parent, &median_key)?;
                    let child = self.new_child(0, 0, Some(right));
                    let p = &mut self.nodes[parent];
                    p.keys.insert(i, median);
                    p.children.insert(i + 1, child);
                    p.changed = true;
                    node = parent;
                }
                None => {
                    let l = self.new_child(0, 0, Some(node));
                    let r = self.new_child(0, 0, Some(right));
                    root = self.new_node(vec![median], vec![l, r], true);
                }
            }
        }
        Ok(root)
    }

    /// Splits a node of 9 keys into itself (4 keys), a median and a new right node (4 keys).
    fn split(&mut self, node: NodeId) -> (u64, NodeId) {
        let n = &mut self.nodes[node];
        let len = n.keys.len() >> 1;
        let right_keys = n.keys.split_off(n.keys.len() - len);
        let median = n.keys.pop().expect("a full node has a median");
        let right_children = if n.children.is_empty() {
            Vec::new()
        } else {
            n.children.split_off(n.children.len() - (len + 1))
        };
        n.changed = true;
        let right = self.new_node(right_keys, right_children, true);
        (median, right)
    }

    /// Deletes `key`; returns the new root, or `None` when the key is not in the tree (nothing
    /// changed).
    pub fn del(&mut self, blocks: &dyn Blocks, root: NodeId, key: &[u8]) -> Result<Option<NodeId>> {
        let mut stack = Vec::new();
        let mut node = root;
        loop {
            if stack.len() >= super::node::MAX_DEPTH {
                return Err(super::node::too_deep());
            }
            stack.push(node);
            let (found, i) = self.search(blocks, node, key)?;
            if found {
                if self.is_leaf(node) {
                    self.nodes[node].keys.remove(i);
                } else {
                    self.set_key_to_nearest_leaf(blocks, node, i, &mut stack)?;
                }
                // marked this late so that deleting a missing key rewrites nothing
                for &n in &stack {
                    self.nodes[n].changed = true;
                }
                return self.rebalance(blocks, stack).map(Some);
            }
            if self.is_leaf(node) {
                return Ok(None);
            }
            node = self.child(blocks, node, i)?;
        }
    }

    /// Number of keys in the leftmost (`go_left`) or rightmost leaf under `node`.
    fn leaf_size(&mut self, blocks: &dyn Blocks, mut node: NodeId, go_left: bool) -> Result<usize> {
        for _ in 0..super::node::MAX_DEPTH {
            if self.is_leaf(node) {
                return Ok(self.nodes[node].keys.len());
            }
            let i = if go_left {
                0
            } else {
                self.nodes[node].children.len() - 1
            };
            node = self.child(blocks, node, i)?;
        }
        Err(super::node::too_deep())
    }

    /// Replaces internal key `i` of `node` by its predecessor or successor, pushing the path to
    /// that leaf on `stack`.
    fn set_key_to_nearest_leaf(
        &mut self,
        blocks: &dyn Blocks,
        node: NodeId,
        i: usize,
        stack: &mut Vec<NodeId>,
    ) -> Result<()> {
        let left = self.child(blocks, node, i)?;
        let right = self.child(blocks, node, i + 1)?;
        let ls = self.leaf_size(blocks, left, false)?;
        let rs = self.leaf_size(blocks, right, true)?;
        let key = if ls < rs {
            let mut n = right;
            stack.push(n);
            while !self.is_leaf(n) {
                n = self.child(blocks, n, 0)?;
                stack.push(n);
            }
            if self.nodes[n].keys.is_empty() {
                return Err(Error::Corrupt("bee leaf without keys".into()));
            }
            self.nodes[n].keys.remove(0)
        } else {
            let mut n = left;
            stack.push(n);
            while !self.is_leaf(n) {
                let last = self.nodes[n].children.len() - 1;
                n = self.child(blocks, n, last)?;
                stack.push(n);
            }
            self.nodes[n]
                .keys
                .pop()
                .ok_or_else(|| Error::Corrupt("bee leaf without keys".into()))?
        };
        self.nodes[node].keys[i] = key;
        Ok(())
    }

    /// Restores the minimum fill bottom-up along `stack`; returns the (possibly new) root.
    fn rebalance(&mut self, blocks: &dyn Blocks, mut stack: Vec<NodeId>) -> Result<NodeId> {
        let root = stack[0];
        while stack.len() > 1 {
            let node = stack.pop().expect("len > 1");
            let parent = *stack.last().expect("len > 1");
            if self.nodes[node].keys.len() >= MIN_KEYS {
                return Ok(root);
            }
            let mut index = self.nodes[parent]
                .children
                .iter()
                .position(|&c| self.childs[c].node == Some(node))
                .ok_or_else(|| Error::Corrupt("bee node is not a child of its parent".into()))?;
            let mut left = match index {
                0 => None,
                _ => Some(self.child(blocks, parent, index - 1)?),
            };
            let mut right = if index + 1 < self.nodes[parent].children.len() {
                Some(self.child(blocks, parent, index + 1)?)
            } else {
                None
            };

            if let Some(l) = left.filter(|&l| self.nodes[l].keys.len() > MIN_KEYS) {
                self.nodes[l].changed = true;
                let sep = self.nodes[parent].keys[index - 1];
                self.nodes[node].keys.insert(0, sep);
                if let Some(c) = self.nodes[l].children.pop() {
                    self.nodes[node].children.insert(0, c);
                }
                let k = self.nodes[l].keys.pop().expect("more than MIN_KEYS");
                self.nodes[parent].keys[index - 1] = k;
                return Ok(root);
            }
            if let Some(r) = right.filter(|&r| self.nodes[r].keys.len() > MIN_KEYS) {
                self.nodes[r].changed = true;
                let sep = self.nodes[parent].keys[index];
                self.nodes[node].keys.push(sep);
                if !self.nodes[r].children.is_empty() {
                    let c = self.nodes[r].children.remove(0);
                    self.nodes[node].children.push(c);
                }
                let k = self.nodes[r].keys.remove(0);
                self.nodes[parent].keys[index] = k;
                return Ok(root);
            }

            if left.is_some() {
                index -= 1;
                right = Some(node);
            } else {
                left = Some(node);
            }
            let (l, r) = match (left, right) {
                (Some(l), Some(r)) => (l, r),
                _ => return Err(Error::Corrupt("bee node without siblings".into())),
            };
            // merge r and the separator into l
            let median = self.nodes[parent].keys[index];
            let TNode { keys, children, .. } = std::mem::replace(
                &mut self.nodes[r],
                TNode {
                    keys: Vec::new(),
                    children: Vec::new(),
                    changed: true,
                },
            );
            let ln = &mut self.nodes[l];
            ln.changed = true;
            ln.keys.push(median);
            ln.keys.extend(keys);
            ln.children.extend(children);
            // remove the separator and the merged child from the parent
            let p = &mut self.nodes[parent];
            p.keys.remove(index);
            let freed = p.children.remove(index + 1);
            p.changed = true;
            self.childs[freed].seq = 0;
        }
        if self.nodes[root].keys.is_empty() && !self.is_leaf(root) {
            return self.child(blocks, root, 0);
        }
        Ok(root)
    }

    /// Serializes the changed nodes under `root` for block `seq`: pre-order, the root at 0.
    /// Changed children are re-owned by `seq`. Returns the block's index (child records).
    pub fn index_changes(&mut self, root: NodeId, seq: u64) -> Vec<Option<ChildId>> {
        let mut index = Vec::new();
        self.index_node(root, seq, &mut index);
        index[0] = Some(self.new_child(seq, 0, Some(root)));
        index
    }

    fn index_node(&mut self, node: NodeId, seq: u64, index: &mut Vec<Option<ChildId>>) -> u64 {
        let offset = index.len();
        index.push(None);
        self.nodes[node].changed = false;
        for k in 0..self.nodes[node].children.len() {
            let cid = self.nodes[node].children[k];
            let Some(child) = self.childs[cid].node else {
                continue;
            };
            if !self.nodes[child].changed {
                continue;
            }
            self.childs[cid].seq = seq;
            let off = self.index_node(child, seq, index);
            self.childs[cid].offset = off;
            index[off as usize] = Some(cid);
        }
        offset as u64
    }

    /// Drops the root and every node no longer owned by `seq` from a non-final batch block,
    /// with the reference's swap-remove (offsets of kept nodes are updated in place).
    pub fn compact(&mut self, index: &mut Vec<Option<ChildId>>, seq: u64) {
        if let Some(first) = index.first_mut() {
            *first = None;
        }
        let mut j = 0;
        while j < index.len() {
            if let Some(c) = index[j].filter(|&c| self.childs[c].seq == seq) {
                self.childs[c].offset = j as u64;
                j += 1;
                continue;
            }
            let last = index.pop().expect("j < len");
            if j < index.len() {
                index[j] = last;
            }
        }
    }

    /// The levels of a block from its index, with the nodes' current state.
    pub fn deflate(&self, index: &[Option<ChildId>]) -> Vec<Level> {
        index
            .iter()
            .map(|c| {
                let node = c.and_then(|c| self.childs[c].node).map(|n| &self.nodes[n]);
                match node {
                    Some(n) => Level {
                        keys: n.keys.clone(),
                        children: n
                            .children
                            .iter()
                            .map(|&c| (self.childs[c].seq, self.childs[c].offset))
                            .collect(),
                    },
                    None => Level::default(),
                }
            })
            .collect()
    }
}

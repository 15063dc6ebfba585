//! The merkle tree of a log: nodes, roots, appending, and byte seeks.
//!
//! Nothing here does I/O. Reads of stored nodes go through [`NodeReader`]; appends return the new
//! nodes for the caller to store.

use crate::crypto::{self, Hash};
use crate::encoding::{DecodeError, Decoder, Encoder};
use crate::error::{Error, Result};
use crate::flat_tree::{self, Iter};

/// A tree node: a block (even index) or a parent (odd index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Flat-tree index.
    pub index: u64,
    /// Bytes of data under the node.
    pub size: u64,
    /// BLAKE2b-256 hash.
    pub hash: Hash,
}

impl Node {
    /// A node from its parts.
    pub fn new(index: u64, size: u64, hash: Hash) -> Self {
        Node { index, size, hash }
    }

    /// The leaf node of a block stored at flat index `index`.
    pub fn leaf(index: u64, data: &[u8]) -> Self {
        Node::new(index, data.len() as u64, crypto::leaf_hash(data))
    }

    /// The parent (at `index`) of two sibling nodes.
    pub fn parent(index: u64, a: &Node, b: &Node) -> Self {
        Node::new(index, a.size + b.size, crypto::parent_hash(a, b))
    }

    /// Wire encoding: `uint index, uint size, fixed32 hash`.
    pub fn encode_into(&self, e: &mut Encoder) {
        e.uint(self.index).uint(self.size).raw(&self.hash);
    }

    /// Decodes the wire encoding.
    pub fn decode_from(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Node {
            index: d.uint("node index")?,
            size: d.uint("node size")?,
            hash: d.fixed32("node hash")?,
        })
    }
}

/// Read access to stored tree nodes.
pub trait NodeReader {
    /// The stored node at `index`, if any.
    fn node(&self, index: u64) -> Result<Option<Node>>;

    /// The stored node at `index`, or [`Error::MissingNode`].
    fn require(&self, index: u64) -> Result<Node> {
        self.node(index)?.ok_or(Error::MissingNode(index))
    }
}

impl NodeReader for std::collections::HashMap<u64, Node> {
    fn node(&self, index: u64) -> Result<Option<Node>> {
        Ok(self.get(&index).copied())
    }
}

/// The signed state of a tree: its roots at a length and fork, with the signature over them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeState {
    /// Fork id (bumped by each truncation).
    pub fork: u64,
    /// Number of blocks.
    pub length: u64,
    /// Bytes in all blocks.
    pub byte_length: u64,
    /// Roots, biggest (leftmost) first.
    pub roots: Vec<Node>,
    /// Signature over this state, as stored and sent (empty for an empty log).
    pub signature: Vec<u8>,
}

impl TreeState {
    /// The tree hash of the roots.
    pub fn hash(&self) -> Hash {
        crypto::tree_hash(&self.roots)
    }

    /// Appends one block; returns nothing, pushes every new node onto `nodes`.
    pub fn append(&mut self, data: &[u8], nodes: &mut Vec<Node>) {
        let head = self.length * 2;
        let mut ite = Iter::new(head);
        self.append_root(Node::leaf(head, data), &mut ite, nodes);
    }

    /// Appends blocks whose leaf hashes are already known (`hashes[i]` for `blocks[i]`).
    pub fn append_hashed<B: AsRef<[u8]>>(
        &mut self,
        blocks: &[B],
        hashes: &[Hash],
        nodes: &mut Vec<Node>,
    ) {
        for (b, h) in blocks.iter().zip(hashes) {
            let head = self.length * 2;
            let mut ite = Iter::new(head);
            self.append_root(
                Node::new(head, b.as_ref().len() as u64, *h),
                &mut ite,
                nodes,
            );
        }
    }

    /// Adds a root at `ite` (positioned on `node.index`) and merges sibling roots into parents.
    pub fn append_root(&mut self, node: Node, ite: &mut Iter, nodes: &mut Vec<Node>) {
        self.length += ite.factor / 2;
        self.byte_length += node.size;
        self.roots.push(node);
        nodes.push(node);
        while self.roots.len() > 1 {
            let a = self.roots[self.roots.len() - 1];
            let b = self.roots[self.roots.len() - 2];
            if ite.sibling() != b.index {
                ite.sibling();
                break;
            }
            let p = Node::parent(ite.parent(), &a, &b);
            nodes.push(p);
            self.roots.pop();
            self.roots.pop();
            self.roots.push(p);
        }
    }

    /// Loads the roots of `length` blocks from storage.
    pub fn roots_at(reader: &impl NodeReader, length: u64) -> Result<Vec<Node>> {
        flat_tree::full_roots(2 * length)
            .into_iter()
            .map(|i| reader.require(i))
            .collect()
    }

    /// Byte offset at which the node `index` (a block or a subtree) starts.
    pub fn byte_offset(&self, reader: &impl NodeReader, index: u64) -> Result<u64> {
        if index == 2 * self.length {
            return Ok(self.byte_length);
        }
        let index = if index & 1 == 1 {
            flat_tree::left_span(index)
        } else {
            index
        };
        let mut head = 0u64;
        let mut offset = 0u64;
        for root in &self.roots {
            head += 2 * (root.index - head + 1);
            if index >= head {
                offset += root.size;
                continue;
            }
            let mut ite = Iter::new(root.index);
            let mut guard = 0;
            while ite.index != index {
                guard += 1;
                if guard > 128 {
                    return Err(Error::OutOfBounds(format!("node {index}")));
                }
                if index < ite.index {
                    ite.left_child();
                } else {
                    offset += reader.require(ite.left_child())?.size;
                    ite.sibling();
                }
            }
            return Ok(offset);
        }
        Err(Error::OutOfBounds(format!(
            "node {index} is past the length {}",
            self.length
        )))
    }

    /// Maps a byte offset to `(block index, offset inside the block)`, in O(log n) node reads.
    ///
    /// An offset on a block boundary maps to the next block at offset 0; `byte_length` maps to
    /// `(length, 0)`. Fails with [`Error::MissingNode`] when a node on the way is not stored.
    pub fn seek(&self, reader: &impl NodeReader, bytes: u64) -> Result<(u64, u64)> {
        if bytes == 0 {
            return Ok((0, 0));
        }
        let mut bytes = bytes;
        for root in &self.roots {
            if bytes == root.size {
                return Ok(((flat_tree::right_span(root.index) + 2) / 2, 0));
            }
            if bytes > root.size {
                bytes -= root.size;
                continue;
            }
            let mut ite = Iter::new(root.index);
            while ite.index & 1 == 1 {
                let left = reader.require(ite.left_child())?;
                if left.size == bytes {
                    return Ok(((ite.peek_right_span() + 2) / 2, 0));
                }
                if left.size > bytes {
                    continue;
                }
                bytes -= left.size;
                ite.sibling();
            }
            return Ok((ite.index / 2, bytes));
        }
        Err(Error::OutOfBounds(format!(
            "byte offset is past the byte length {}",
            self.byte_length
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(sizes: &[usize]) -> (TreeState, HashMap<u64, Node>) {
        let mut t = TreeState::default();
        let mut nodes = Vec::new();
        for (i, s) in sizes.iter().enumerate() {
            t.append(&vec![i as u8; *s], &mut nodes);
        }
        (t, nodes.into_iter().map(|n| (n.index, n)).collect())
    }

    #[test]
    fn roots_follow_full_roots() {
        for n in 0..70usize {
            let (t, map) = build(&vec![3; n]);
            let idx: Vec<u64> = t.roots.iter().map(|r| r.index).collect();
            assert_eq!(idx, flat_tree::full_roots(2 * n as u64));
            assert_eq!(TreeState::roots_at(&map, n as u64).unwrap(), t.roots);
            assert_eq!(t.byte_length, 3 * n as u64);
        }
    }

    #[test]
    fn seek_and_offset_agree_with_a_linear_scan() {
        let sizes = [5usize, 0, 7, 1, 0, 0, 12, 3, 9, 0, 4];
        let (t, map) = build(&sizes);
        let starts: Vec<u64> = sizes
            .iter()
            .scan(0u64, |acc, s| {
                let st = *acc;
                *acc += *s as u64;
                Some(st)
            })
            .collect();
        let mut start = 0u64;
        for (i, s) in sizes.iter().enumerate() {
            assert_eq!(t.byte_offset(&map, 2 * i as u64).unwrap(), start);
            for off in 0..*s as u64 {
                let (bi, bo) = t.seek(&map, start + off).unwrap();
                if off == 0 {
                    // a boundary maps to offset 0 of a block starting there (maybe an empty one)
                    assert_eq!(bo, 0);
                    assert_eq!(starts[bi as usize], start);
                } else {
                    assert_eq!((bi, bo), (i as u64, off));
                }
            }
            start += *s as u64;
        }
        assert_eq!(t.seek(&map, start).unwrap(), (sizes.len() as u64, 0));
        assert!(t.seek(&map, start + 1).is_err());
    }
}

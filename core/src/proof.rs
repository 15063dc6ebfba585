//! Merkle proofs exactly as the hypercore 11 `data` message carries them: generation for a remote
//! request, and verification of what a remote sent.
//!
//! Generation follows the reference's node order so that the bytes are identical; verification
//! rebuilds the tree from the untrusted nodes and yields a [`VerifiedProof`] that the log applies only
//! after the signature checks out.

use crate::encoding::{DecodeError, Decoder, Encoder, MAX_ARRAY};
use crate::error::{Error, Result};
use crate::flat_tree::{self, Iter};
use crate::manifest::Manifest;
use crate::tree::{Node, NodeReader, TreeState};

/// `block` / `hash` part of a request: an index and how many ancestor nodes the requester lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBlock {
    /// Block index (for `block`) or flat-tree node index (for `hash`).
    pub index: u64,
    /// Number of missing ancestors to include.
    pub nodes: u64,
}

/// `seek` part of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSeek {
    /// The byte offset to locate.
    pub bytes: u64,
    /// Per-block padding (0 unless encrypted).
    pub padding: u64,
}

/// `upgrade` part of a request: the requester has `start` blocks and wants `length` more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestUpgrade {
    /// The requester's verified length.
    pub start: u64,
    /// How many blocks past `start` to prove.
    pub length: u64,
}

/// What a proof should cover: the proof-relevant fields of a wire `request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProofRequest {
    /// The fork the requester is on.
    pub fork: u64,
    /// A block with its value.
    pub block: Option<RequestBlock>,
    /// A tree node without a value.
    pub hash: Option<RequestBlock>,
    /// A byte offset.
    pub seek: Option<RequestSeek>,
    /// A new signed length.
    pub upgrade: Option<RequestUpgrade>,
}

/// `block` part of a data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataBlock {
    /// Block index.
    pub index: u64,
    /// Block bytes.
    pub value: Vec<u8>,
    /// Sibling path, leaf upward.
    pub nodes: Vec<Node>,
}

/// `hash` part of a data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataHash {
    /// Flat-tree index.
    pub index: u64,
    /// The node itself then its sibling path.
    pub nodes: Vec<Node>,
}

/// `seek` part of a data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSeek {
    /// The byte offset asked for.
    pub bytes: u64,
    /// The node found then its sibling path.
    pub nodes: Vec<Node>,
}

/// `upgrade` part of a data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUpgrade {
    /// The requester's length.
    pub start: u64,
    /// Blocks proven past `start`.
    pub length: u64,
    /// Nodes to build the roots of `start + length`.
    pub nodes: Vec<Node>,
    /// Nodes to go on to the sender's length.
    pub additional_nodes: Vec<Node>,
    /// The signature over the sender's length.
    pub signature: Vec<u8>,
}

/// The hypercore `data` message (type 3): a proof, maybe with a block value and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    /// Id of the request answered (0 = unsolicited).
    pub request: u64,
    /// The sender's fork.
    pub fork: u64,
    /// A block with its proof.
    pub block: Option<DataBlock>,
    /// A node with its proof.
    pub hash: Option<DataHash>,
    /// A seek result with its proof.
    pub seek: Option<DataSeek>,
    /// A signed upgrade.
    pub upgrade: Option<DataUpgrade>,
    /// The log's manifest.
    pub manifest: Option<Manifest>,
}

fn encode_nodes(e: &mut Encoder, nodes: &[Node]) {
    e.uint(nodes.len() as u64);
    for n in nodes {
        n.encode_into(e);
    }
}

fn decode_nodes(d: &mut Decoder<'_>) -> std::result::Result<Vec<Node>, DecodeError> {
    let n = d.len(MAX_ARRAY, "node array")?;
    let mut out = Vec::with_capacity(n.min(128));
    for _ in 0..n {
        out.push(Node::decode_from(d)?);
    }
    Ok(out)
}

impl Data {
    /// The compact encoding (the payload of a `data` channel message).
    pub fn encode(&self) -> Vec<u8> {
        let cap = 64
            + self
                .block
                .as_ref()
                .map_or(0, |b| b.value.len() + 48 * b.nodes.len());
        let mut e = Encoder::with_capacity(cap);
        self.encode_into(&mut e);
        e.finish()
    }

    /// Appends the compact encoding to `e`.
    pub fn encode_into(&self, e: &mut Encoder) {
        let flags = u64::from(self.block.is_some())
            | u64::from(self.hash.is_some()) << 1
            | u64::from(self.seek.is_some()) << 2
            | u64::from(self.upgrade.is_some()) << 3
            | u64::from(self.manifest.is_some()) << 4;
        e.uint(flags).uint(self.request).uint(self.fork);
        if let Some(b) = &self.block {
            e.uint(b.index).buffer(&b.value);
            encode_nodes(e, &b.nodes);
        }
        if let Some(h) = &self.hash {
            e.uint(h.index);
            encode_nodes(e, &h.nodes);
        }
        if let Some(s) = &self.seek {
            e.uint(s.bytes);
            encode_nodes(e, &s.nodes);
        }
        if let Some(u) = &self.upgrade {
            e.uint(u.start).uint(u.length);
            encode_nodes(e, &u.nodes);
            encode_nodes(e, &u.additional_nodes);
            e.optional_buffer(Some(&u.signature));
        }
        if let Some(m) = &self.manifest {
            m.encode_into(e);
        }
    }

    /// Decodes a `data` message; trailing bytes are ignored as the reference does.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let flags = d.uint("data flags")?;
        let request = d.uint("data request")?;
        let fork = d.uint("data fork")?;
        let block = if flags & 1 != 0 {
            Some(DataBlock {
                index: d.uint("block index")?,
                value: d.buffer("block value")?.to_vec(),
                nodes: decode_nodes(&mut d)?,
            })
        } else {
            None
        };
        let hash = if flags & 2 != 0 {
            Some(DataHash {
                index: d.uint("hash index")?,
                nodes: decode_nodes(&mut d)?,
            })
        } else {
            None
        };
        let seek = if flags & 4 != 0 {
            Some(DataSeek {
                bytes: d.uint("seek bytes")?,
                nodes: decode_nodes(&mut d)?,
            })
        } else {
            None
        };
        let upgrade = if flags & 8 != 0 {
            Some(DataUpgrade {
                start: d.uint("upgrade start")?,
                length: d.uint("upgrade length")?,
                nodes: decode_nodes(&mut d)?,
                additional_nodes: decode_nodes(&mut d)?,
                signature: d
                    .optional_buffer("upgrade signature")?
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
            })
        } else {
            None
        };
        let manifest = if flags & 16 != 0 {
            Some(Manifest::decode_from(&mut d)?)
        } else {
            None
        };
        Ok(Data {
            request,
            fork,
            block,
            hash,
            seek,
            upgrade,
            manifest,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// Guard against walks that cannot end (a tree is at most 64 levels deep).
const MAX_WALK: usize = 128;

fn invalid(msg: &str) -> Error {
    Error::InvalidRequest(msg.to_string())
}

#[derive(Default)]
struct Pending {
    node: Option<Vec<Node>>,
    seek: Option<Vec<Node>>,
    upgrade: Option<Vec<Node>>,
    additional: Option<Vec<Node>>,
}

struct Indexed {
    value: bool,
    index: u64,
    nodes: u64,
    last_index: u64,
}

/// Builds the proof answering `req` from a log in state `tree` (blocks not filled in: the
/// caller reads the block value). Node order is the reference's, so the encoding is identical.
pub fn generate(tree: &TreeState, reader: &impl NodeReader, req: &ProofRequest) -> Result<Data> {
    let head = 2 * tree.length;
    // Everything a remote names must lie inside this tree before any flat-tree arithmetic.
    if let Some(u) = req.upgrade
        && (u.start > tree.length || u.length > tree.length)
    {
        return Err(invalid("Invalid upgrade"));
    }
    if req.block.is_some_and(|b| b.index >= tree.length)
        || req.hash.is_some_and(|h| h.index >= head)
        || req.block.or(req.hash).is_some_and(|b| b.nodes > 64)
    {
        return Err(invalid("Invalid block request"));
    }
    let from = req.upgrade.map_or(0, |u| u.start * 2);
    let to = req
        .upgrade
        .map_or(Some(head), |u| from.checked_add(u.length.checked_mul(2)?))
        .ok_or_else(|| invalid("Invalid upgrade"))?;
    let node = if let Some(b) = req.block {
        Some(Indexed {
            value: true,
            index: b
                .index
                .checked_mul(2)
                .ok_or_else(|| invalid("block index out of range"))?,
            nodes: b.nodes,
            last_index: b.index,
        })
    } else {
        req.hash.map(|h| Indexed {
            value: false,
            index: h.index,
            nodes: h.nodes,
            last_index: flat_tree::right_span(h.index) / 2,
        })
    };

    let mut out = Data {
        request: 0,
        fork: tree.fork,
        ..Data::default()
    };
    if head == 0 {
        if req.block.is_some() || req.hash.is_some() {
            return Err(invalid("Invalid block request"));
        }
        return Ok(out);
    }
    if from >= to || to > head {
        return Err(invalid("Invalid upgrade"));
    }
    if req.seek.is_some() && req.upgrade.is_some() && node.as_ref().is_some_and(|n| n.index >= from)
    {
        return Err(invalid(
            "Cannot both do a seek and block/hash request when upgrading",
        ));
    }

    let mut p = Pending::default();
    let mut sub_tree = head;
    let seek = req.seek;

    match (&node, req.upgrade) {
        (Some(n), up) if up.is_none_or(|u| n.last_index < u.start) => {
            sub_tree = nodes_to_root(n.index, n.nodes, to)?;
            let seek_root = match seek {
                Some(s) => seek_untrusted_tree(tree, reader, sub_tree, s.bytes)?,
                None => head,
            };
            block_and_seek_proof(
                reader,
                node.as_ref(),
                seek.is_some(),
                seek_root,
                sub_tree,
                &mut p,
            )?;
        }
        (n, Some(_)) if n.is_some() || seek.is_some() => {
            sub_tree = match (seek, n) {
                (Some(s), _) => seek_from_head(reader, to, s.bytes)?,
                (None, Some(n)) => n.index,
                (None, None) => unreachable!("guarded above"),
            };
        }
        _ => {}
    }

    if req.upgrade.is_some() {
        upgrade_proof(
            reader,
            node.as_ref(),
            seek.is_some(),
            from,
            to,
            sub_tree,
            &mut p,
        )?;
        if head > to {
            additional_upgrade_proof(reader, to, head, &mut p)?;
        }
    }

    if let Some(b) = req.block {
        let nodes = p
            .node
            .take()
            .ok_or_else(|| invalid("Invalid block request"))?;
        out.block = Some(DataBlock {
            index: b.index,
            value: Vec::new(),
            nodes,
        });
    } else if let Some(h) = req.hash {
        let nodes = p
            .node
            .take()
            .ok_or_else(|| invalid("Invalid block request"))?;
        out.hash = Some(DataHash {
            index: h.index,
            nodes,
        });
    }
    if let (Some(s), Some(nodes)) = (seek, p.seek.take()) {
        out.seek = Some(DataSeek {
            bytes: s.bytes,
            nodes,
        });
    }
    if let Some(u) = req.upgrade {
        out.upgrade = Some(DataUpgrade {
            start: u.start,
            length: u.length,
            nodes: p.upgrade.take().unwrap_or_default(),
            additional_nodes: p.additional.take().unwrap_or_default(),
            signature: tree.signature.clone(),
        });
    }
    Ok(out)
}

fn nodes_to_root(index: u64, nodes: u64, head: u64) -> Result<u64> {
    let mut ite = Iter::new(index);
    for _ in 0..nodes.min(64) {
        ite.parent();
        if ite.contains(head) {
            return Err(invalid("Nodes is out of bounds"));
        }
    }
    if nodes > 64 {
        return Err(invalid("Nodes is out of bounds"));
    }
    Ok(ite.index)
}

fn seek_trusted_tree(reader: &impl NodeReader, root: u64, bytes: u64) -> Result<u64> {
    if bytes == 0 {
        return Ok(root);
    }
    let mut bytes = bytes;
    let mut ite = Iter::new(root);
    while ite.index & 1 == 1 {
        match reader.node(ite.left_child())? {
            Some(l) => {
                if l.size == bytes {
                    return Ok(ite.index);
                }
                if l.size > bytes {
                    continue;
                }
                bytes -= l.size;
                ite.sibling();
            }
            None => {
                ite.parent();
                return Ok(ite.index);
            }
        }
    }
    Ok(ite.index)
}

fn seek_untrusted_tree(
    tree: &TreeState,
    reader: &impl NodeReader,
    root: u64,
    bytes: u64,
) -> Result<u64> {
    let offset = tree.byte_offset(reader, root)?;
    if offset > bytes {
        return Err(invalid("Invalid seek"));
    }
    if offset == bytes {
        return Ok(root);
    }
    let bytes = bytes - offset;
    let node = reader.require(root)?;
    if node.size <= bytes {
        return Err(invalid("Invalid seek"));
    }
    seek_trusted_tree(reader, root, bytes)
}

fn seek_from_head(reader: &impl NodeReader, head: u64, bytes: u64) -> Result<u64> {
    let mut bytes = bytes;
    for root in flat_tree::full_roots(head) {
        let node = reader.require(root)?;
        if bytes == node.size {
            return Ok(root);
        }
        if bytes > node.size {
            bytes -= node.size;
            continue;
        }
        return seek_trusted_tree(reader, root, bytes);
    }
    Ok(head)
}

fn seek_proof(reader: &impl NodeReader, seek_root: u64, root: u64, p: &mut Pending) -> Result<()> {
    let mut ite = Iter::new(seek_root);
    let mut out = vec![reader.require(ite.index)?];
    let mut n = 0;
    while ite.index != root {
        n += 1;
        if n > MAX_WALK {
            return Err(invalid("Bad seek proof"));
        }
        ite.sibling();
        out.push(reader.require(ite.index)?);
        ite.parent();
    }
    p.seek = Some(out);
    Ok(())
}

fn block_and_seek_proof(
    reader: &impl NodeReader,
    node: Option<&Indexed>,
    seek: bool,
    seek_root: u64,
    root: u64,
    p: &mut Pending,
) -> Result<()> {
    let Some(node) = node else {
        return seek_proof(reader, seek_root, root, p);
    };
    let mut ite = Iter::new(node.index);
    let mut out = Vec::new();
    if !node.value {
        out.push(reader.require(ite.index)?);
    }
    let mut n = 0;
    while ite.index != root {
        n += 1;
        if n > MAX_WALK {
            return Err(invalid("Bad block proof"));
        }
        ite.sibling();
        if seek && ite.contains(seek_root) && ite.index != seek_root {
            seek_proof(reader, seek_root, ite.index, p)?;
        } else {
            out.push(reader.require(ite.index)?);
        }
        ite.parent();
    }
    p.node = Some(out);
    Ok(())
}

fn upgrade_proof(
    reader: &impl NodeReader,
    node: Option<&Indexed>,
    seek: bool,
    from: u64,
    to: u64,
    sub_tree: u64,
    p: &mut Pending,
) -> Result<()> {
    if from == 0 {
        p.upgrade = Some(Vec::new());
    }
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if ite.index + ite.factor / 2 < from {
            ite.next_tree();
            continue;
        }
        if p.upgrade.is_none() && ite.contains(from - 2) {
            let mut up = Vec::new();
            let root = ite.index;
            let target = from - 2;
            ite.seek(target);
            let mut n = 0;
            while ite.index != root {
                n += 1;
                if n > MAX_WALK {
                    return Err(invalid("Bad upgrade proof"));
                }
                ite.sibling();
                if ite.index > target {
                    if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
                        block_and_seek_proof(reader, node, seek, sub_tree, ite.index, p)?;
                    } else {
                        up.push(reader.require(ite.index)?);
                    }
                }
                ite.parent();
            }
            p.upgrade = Some(up);
            ite.next_tree();
            continue;
        }
        let up = p.upgrade.get_or_insert_with(Vec::new);
        if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
            block_and_seek_proof(reader, node, seek, sub_tree, ite.index, p)?;
            ite.next_tree();
            continue;
        }
        up.push(reader.require(ite.index)?);
        ite.next_tree();
    }
    Ok(())
}

fn additional_upgrade_proof(
    reader: &impl NodeReader,
    from: u64,
    to: u64,
    p: &mut Pending,
) -> Result<()> {
    if from == 0 {
        p.additional = Some(Vec::new());
    }
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if ite.index + ite.factor / 2 < from {
            ite.next_tree();
            continue;
        }
        if p.additional.is_none() && ite.contains(from - 2) {
            let mut out = Vec::new();
            let root = ite.index;
            let target = from - 2;
            ite.seek(target);
            let mut n = 0;
            while ite.index != root {
                n += 1;
                if n > MAX_WALK {
                    return Err(invalid("Bad additional upgrade proof"));
                }
                ite.sibling();
                if ite.index > target {
                    out.push(reader.require(ite.index)?);
                }
                ite.parent();
            }
            p.additional = Some(out);
            ite.next_tree();
            continue;
        }
        p.additional
            .get_or_insert_with(Vec::new)
            .push(reader.require(ite.index)?);
        ite.next_tree();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// The outcome of checking a proof's hashes against a local state. Nothing is trusted yet: an
/// upgraded state still needs its signature checked, and an unconsumed block root must match a
/// stored node (see [`crate::log::Log::apply`]).
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// The tree state after the proof (equal to the input state when not upgraded).
    pub tree: TreeState,
    /// True when the proof moves the state to a new signed length.
    pub upgraded: bool,
    /// Every node the proof proves, to be stored.
    pub nodes: Vec<Node>,
    /// A node that must equal the stored node at its index (the top of a block/hash/seek proof
    /// that the upgrade did not consume).
    pub unverified: Option<Node>,
}

struct NodeQueue<'a> {
    nodes: &'a [Node],
    i: usize,
    extra: Option<Node>,
}

impl<'a> NodeQueue<'a> {
    fn new(nodes: &'a [Node], extra: Option<Node>) -> Self {
        NodeQueue { nodes, i: 0, extra }
    }

    fn len(&self) -> usize {
        self.nodes.len() - self.i + usize::from(self.extra.is_some())
    }

    fn shift(&mut self, index: u64) -> Result<Node> {
        if let Some(e) = self.extra
            && e.index == index
        {
            self.extra = None;
            return Ok(e);
        }
        let Some(node) = self.nodes.get(self.i) else {
            return Err(Error::InvalidProof(format!(
                "expected node {index}, the proof has no more nodes"
            )));
        };
        if node.index != index {
            return Err(Error::InvalidProof(format!(
                "expected node {index}, got node {}",
                node.index
            )));
        }
        self.i += 1;
        Ok(*node)
    }
}

fn chain(start: Node, mut ite: Iter, q: &mut NodeQueue<'_>, nodes: &mut Vec<Node>) -> Result<Node> {
    let mut root = start;
    nodes.push(root);
    while q.len() > 0 {
        let sib = q.shift(ite.sibling())?;
        root = Node::parent(ite.parent(), &root, &sib);
        nodes.push(sib);
        nodes.push(root);
    }
    Ok(root)
}

/// A block or node to prove: flat index, value (blocks only), sibling path.
type Untrusted<'a> = (u64, Option<&'a [u8]>, &'a [Node]);

/// Rebuilds the block/hash/seek part of a proof up to its top node.
fn verify_tree(
    data: &Data,
    leaf: Option<crate::crypto::Hash>,
    nodes: &mut Vec<Node>,
) -> Result<Option<Node>> {
    let untrusted: Option<Untrusted<'_>> = if let Some(b) = &data.block {
        let index = b
            .index
            .checked_mul(2)
            .ok_or_else(|| Error::InvalidProof("block index out of range".into()))?;
        Some((index, Some(b.value.as_slice()), b.nodes.as_slice()))
    } else {
        data.hash
            .as_ref()
            .map(|h| (h.index, None, h.nodes.as_slice()))
    };
    let seek_nodes = data.seek.as_ref().map_or(&[][..], |s| s.nodes.as_slice());
    if untrusted.is_none() && seek_nodes.is_empty() {
        return Ok(None);
    }
    let mut root = None;
    if !seek_nodes.is_empty() {
        let ite = Iter::new(seek_nodes[0].index);
        let mut q = NodeQueue::new(seek_nodes, None);
        let first = q.shift(ite.index)?;
        root = Some(chain(first, ite, &mut q, nodes)?);
    }
    let Some((index, value, proof_nodes)) = untrusted else {
        return Ok(root);
    };
    if proof_nodes.len() > 64 {
        return Err(Error::InvalidProof(
            "a proof path longer than 64 nodes".into(),
        ));
    }
    let ite = Iter::new(index);
    let mut q = NodeQueue::new(proof_nodes, root);
    let first = match (value, leaf) {
        (Some(v), Some(h)) => Node::new(index, v.len() as u64, h),
        (Some(v), None) => Node::leaf(index, v),
        (None, _) => q.shift(ite.index)?,
    };
    Ok(Some(chain(first, ite, &mut q, nodes)?))
}

fn verify_upgrade(
    up: &DataUpgrade,
    fork: u64,
    block_root: Option<Node>,
    tree: &mut TreeState,
    nodes: &mut Vec<Node>,
    prologue: Option<&crate::manifest::Prologue>,
) -> Result<bool> {
    if let Some(p) = prologue
        && up.start < p.length
        && (up.start != 0 || up.length < p.length)
    {
        return Err(Error::InvalidProof(
            "upgrade does not satisfy the prologue".into(),
        ));
    }
    let to = up
        .start
        .checked_add(up.length)
        .and_then(|l| l.checked_mul(2))
        .filter(|t| *t < (1u64 << 62))
        .ok_or_else(|| Error::InvalidProof("upgrade length out of range".into()))?;
    if up.start != tree.length {
        return Err(Error::StaleProof(format!(
            "upgrade starts at {} but the local length is {}",
            up.start, tree.length
        )));
    }
    let mut q = NodeQueue::new(&up.nodes, block_root);
    let mut grow = !tree.roots.is_empty();
    let mut i = 0;
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if i < tree.roots.len() && tree.roots[i].index == ite.index {
            i += 1;
            ite.next_tree();
            continue;
        }
        if grow {
            grow = false;
            let root = ite.index;
            if i < tree.roots.len() {
                ite.seek(tree.roots[tree.roots.len() - 1].index);
                let mut n = 0;
                while ite.index != root {
                    n += 1;
                    if n > MAX_WALK {
                        return Err(Error::InvalidProof("upgrade does not connect".into()));
                    }
                    let next = q.shift(ite.sibling())?;
                    tree.append_root(next, &mut ite, nodes);
                }
                ite.next_tree();
                continue;
            }
        }
        let next = q.shift(ite.index)?;
        tree.append_root(next, &mut ite, nodes);
        ite.next_tree();
    }
    if let Some(p) = prologue
        && tree.length == p.length
        && tree.hash() != p.hash
    {
        return Err(Error::InvalidProof("prologue hash mismatch".into()));
    }
    let extra = &up.additional_nodes;
    let last = tree
        .roots
        .last()
        .ok_or_else(|| Error::InvalidProof("empty upgrade".into()))?;
    ite.seek(last.index);
    let mut i = 0;
    while i < extra.len() && extra[i].index == ite.sibling() {
        tree.append_root(extra[i], &mut ite, nodes);
        i += 1;
    }
    while i < extra.len() {
        let node = extra[i];
        i += 1;
        let mut n = 0;
        while node.index != ite.index {
            n += 1;
            if ite.factor == 2 || n > MAX_WALK {
                return Err(Error::InvalidProof(format!(
                    "unexpected node {}",
                    node.index
                )));
            }
            ite.left_child();
        }
        tree.append_root(node, &mut ite, nodes);
        ite.sibling();
    }
    tree.signature = up.signature.clone();
    tree.fork = fork;
    Ok(q.extra.is_none())
}

/// Largest flat index a proof node may have (a tree of 2^61 blocks), so that flat-tree arithmetic
/// on untrusted indices cannot overflow.
const MAX_NODE_INDEX: u64 = 1 << 62;
/// Largest byte size a proof node may claim (the reference's numbers stop at 2^53), so that sums of
/// sizes cannot overflow.
const MAX_NODE_SIZE: u64 = 1 << 53;

fn check_nodes(data: &Data) -> Result<()> {
    let lists = [
        data.block.as_ref().map(|b| &b.nodes[..]),
        data.hash.as_ref().map(|h| &h.nodes[..]),
        data.seek.as_ref().map(|s| &s.nodes[..]),
        data.upgrade.as_ref().map(|u| &u.nodes[..]),
        data.upgrade.as_ref().map(|u| &u.additional_nodes[..]),
    ];
    for nodes in lists.into_iter().flatten() {
        if nodes.len() > 128 {
            return Err(Error::InvalidProof(
                "a proof with more than 128 nodes in one part".into(),
            ));
        }
        if let Some(n) = nodes
            .iter()
            .find(|n| n.index >= MAX_NODE_INDEX || n.size > MAX_NODE_SIZE)
        {
            return Err(Error::InvalidProof(format!(
                "node {} of size {} is outside any possible tree",
                n.index, n.size
            )));
        }
    }
    if data
        .block
        .as_ref()
        .is_some_and(|b| b.index >= MAX_NODE_INDEX / 2)
        || data
            .hash
            .as_ref()
            .is_some_and(|h| h.index >= MAX_NODE_INDEX)
        || data
            .upgrade
            .as_ref()
            .is_some_and(|u| u.start >= MAX_NODE_INDEX / 4 || u.length >= MAX_NODE_INDEX / 4)
    {
        return Err(Error::InvalidProof(
            "an index outside any possible tree".into(),
        ));
    }
    Ok(())
}

/// Checks the hashes of a proof against `state` (the verifier's current signed state).
pub fn verify(
    state: &TreeState,
    data: &Data,
    prologue: Option<&crate::manifest::Prologue>,
) -> Result<VerifiedProof> {
    verify_hashed(state, data, prologue, None)
}

/// [`verify`] with the block's leaf hash already computed (`crypto::leaf_hash` of the block's
/// value: callers hash many blocks at once with [`crate::crypto::leaf_hashes_simd`]).
pub(crate) fn verify_hashed(
    state: &TreeState,
    data: &Data,
    prologue: Option<&crate::manifest::Prologue>,
    leaf: Option<crate::crypto::Hash>,
) -> Result<VerifiedProof> {
    check_nodes(data)?;
    let mut nodes = Vec::new();
    let mut unverified = verify_tree(data, leaf, &mut nodes)?;
    let mut tree = state.clone();
    let mut upgraded = false;
    if let Some(up) = &data.upgrade {
        let consumed = verify_upgrade(up, data.fork, unverified, &mut tree, &mut nodes, prologue)?;
        if consumed {
            unverified = None;
        }
        upgraded = true;
    }
    Ok(VerifiedProof {
        tree,
        upgraded,
        nodes,
        unverified,
    })
}

/// Verifies a proof that carries an upgrade from length 0 against nothing but the log's
/// [`Verifier`](crate::manifest::Verifier): every hash and the signature. Stateless; nothing is stored.
pub fn verify_fully_remote(
    verifier: &crate::manifest::Verifier,
    data: &Data,
) -> Result<VerifiedProof> {
    let empty = TreeState {
        fork: data.fork,
        ..TreeState::default()
    };
    let prologue = verifier.manifest().prologue.clone();
    let v = verify(&empty, data, prologue.as_ref())?;
    if !v.upgraded {
        return Err(Error::InvalidProof(
            "a stateless check needs a proof with an upgrade from length 0".into(),
        ));
    }
    if v.unverified.is_some() {
        return Err(Error::InvalidProof(
            "the block does not connect to the upgrade".into(),
        ));
    }
    let t = &v.tree;
    if !verifier.verify(&t.hash(), t.length, t.fork, &t.signature) {
        return Err(Error::InvalidSignature(format!(
            "the signature for length {} does not verify",
            t.length
        )));
    }
    Ok(v)
}

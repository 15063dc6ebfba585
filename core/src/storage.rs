//! LMDB tables and record encodings. See `core/DESIGN.md` for what is stored where and why a
//! committed write survives a crash.

use std::path::Path;

use dat_lmdb::heed::types::Bytes;
use dat_lmdb::heed::{CommitOrAbort, Database, Env, RoTxn, RwTxn, WithoutTls};

use crate::crypto::Hash;
use crate::encoding::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::tree::{Node, NodeReader};

/// Version of the on-disk layout; bumped (with a migration) whenever a record format changes.
pub(crate) const STORE_VERSION: u32 = 1;

/// Table names carry their layout version so that a future layout can live beside this one.
const TABLES: [&str; 7] = [
    "meta-v1",
    "cores-v1",
    "names-v1",
    "heads-v1",
    "nodes-v1",
    "blocks-v1",
    "index-v1",
];

type Table = Database<'static, Bytes, Bytes>;

pub(crate) type ReadTxn<'e> = RoTxn<'e, WithoutTls>;

/// The open LMDB environment and its tables.
pub(crate) struct Storage {
    pub(crate) env: Env<WithoutTls>,
    meta: Table,
    cores: Table,
    names: Table,
    heads: Table,
    nodes: Table,
    blocks: Table,
    /// Indexes kept by the layers above the log (drive file names and history, dedup hashes),
    /// under keys each layer prefixes with its own tag.
    index: Table,
    /// The environment's memory map (found on first use), reads counted since the resident set
    /// was last checked, and the shared resident bytes after the last check
    /// ([`Storage::note_read`]).
    mapped: std::sync::OnceLock<Option<dat_lmdb::MappedPages>>,
    reads_since_check: std::sync::atomic::AtomicU64,
    shared_baseline: std::sync::Mutex<u64>,
}

/// Block bytes read between two looks at the resident set, and how much LMDB's map may add to it
/// before its pages are released ([`Storage::note_read`]).
const CHECK_EVERY: u64 = 4 << 20;
const MAPPED_BUDGET: u64 = 40 << 20;

/// What the store knows about one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CoreRecord {
    pub id: u64,
    pub key: Hash,
    /// The manifest, when known (always for logs made here; for remote logs once received).
    pub manifest: Option<Manifest>,
    /// The Ed25519 seed of a writable log.
    pub secret_seed: Option<[u8; 32]>,
}

/// The signed head of one log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HeadRecord {
    pub fork: u64,
    pub length: u64,
    pub byte_length: u64,
    pub tree_hash: Hash,
    pub signature: Vec<u8>,
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt(what.to_string())
}

pub(crate) fn pos_key(id: u64, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

impl CoreRecord {
    fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(160);
        let flags = u64::from(self.manifest.is_some()) | u64::from(self.secret_seed.is_some()) << 1;
        e.uint(1).uint(self.id).raw(&self.key).uint(flags);
        if let Some(m) = &self.manifest {
            e.buffer(&m.encode());
        }
        if let Some(s) = &self.secret_seed {
            e.raw(s);
        }
        e.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(bytes);
        let version = d.uint("core record version")?;
        if version != 1 {
            return Err(corrupt(format!("core record version {version} is unknown")));
        }
        let id = d.uint("core record id")?;
        let key = d.fixed32("core record key")?;
        let flags = d.uint("core record flags")?;
        let manifest = if flags & 1 != 0 {
            Some(Manifest::decode(d.buffer("core record manifest")?)?)
        } else {
            None
        };
        let secret_seed = if flags & 2 != 0 {
            Some(d.fixed32("core record secret key")?)
        } else {
            None
        };
        d.finish("core record: trailing bytes")?;
        Ok(CoreRecord {
            id,
            key,
            manifest,
            secret_seed,
        })
    }
}

impl HeadRecord {
    fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(128);
        e.uint(1)
            .uint(self.fork)
            .uint(self.length)
            .uint(self.byte_length)
            .raw(&self.tree_hash)
            .buffer(&self.signature);
        e.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(bytes);
        let version = d.uint("head version")?;
        if version != 1 {
            return Err(corrupt(format!("head record version {version} is unknown")));
        }
        let h = HeadRecord {
            fork: d.uint("head fork")?,
            length: d.uint("head length")?,
            byte_length: d.uint("head byte length")?,
            tree_hash: d.fixed32("head tree hash")?,
            signature: d.buffer("head signature")?.to_vec(),
        };
        d.finish("head record: trailing bytes")?;
        Ok(h)
    }
}

fn encode_node(n: &Node) -> [u8; 41] {
    // fixed width: u64le size, hash; index is in the key
    let mut out = [0u8; 41];
    out[0] = 1;
    out[1..9].copy_from_slice(&n.size.to_le_bytes());
    out[9..].copy_from_slice(&n.hash);
    out
}

fn decode_node(index: u64, bytes: &[u8]) -> Result<Node> {
    if bytes.len() != 41 || bytes[0] != 1 {
        return Err(corrupt(format!(
            "tree node {index}: a {} byte record is not a node",
            bytes.len()
        )));
    }
    let size = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let hash: Hash = bytes[9..].try_into().expect("32 bytes");
    Ok(Node::new(index, size, hash))
}

impl Storage {
    pub(crate) fn open(path: &Path, map_size: usize, sync: dat_lmdb::Sync) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let env = dat_lmdb::open(path, map_size, 16, sync)?;
        let wtxn = env.write_txn()?;
        let tables: [Table; 7] = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let mut out = Vec::with_capacity(TABLES.len());
                for name in TABLES {
                    out.push(opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?);
                }
                let arr: [Database<'_, Bytes, Bytes>; 7] = out
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("seven tables"));
                Ok::<_, Error>(CommitOrAbort::<_, ()>::Commit(arr))
            })?
            .unwrap_commit();
        let [meta, cores, names, heads, nodes, blocks, index] = tables;
        Ok(Storage {
            env,
            meta,
            cores,
            names,
            heads,
            nodes,
            blocks,
            index,
            mapped: std::sync::OnceLock::new(),
            reads_since_check: std::sync::atomic::AtomicU64::new(0),
            shared_baseline: std::sync::Mutex::new(dat_lmdb::shared_resident_bytes().unwrap_or(0)),
        })
    }

    /// Counts a read of `bytes` of blocks through the memory map. Every [`CHECK_EVERY`] bytes
    /// (each read weighing at least [`CHECK_EVERY`] / 16) the process looks at its shared
    /// resident memory (`/proc/self/statm`), and when LMDB's map made it grow by more than
    /// [`MAPPED_BUDGET`] since the last look, unmaps the pages it touched (they stay in the page
    /// cache; see [`dat_lmdb::MappedPages`]). Streaming through a big log thereby does not grow
    /// the resident set by the log's size (a kernel with large page-cache folios maps a whole
    /// folio per fault, often far more than the bytes read).
    pub(crate) fn note_read(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let weight = bytes.max(CHECK_EVERY / 16);
        let total = self.reads_since_check.fetch_add(weight, Ordering::Relaxed) + weight;
        if total < CHECK_EVERY {
            return;
        }
        let Ok(mut baseline) = self.shared_baseline.try_lock() else {
            return; // another thread is checking
        };
        self.reads_since_check.store(0, Ordering::Relaxed);
        let Some(now) = dat_lmdb::shared_resident_bytes() else {
            return;
        };
        if now <= baseline.saturating_add(MAPPED_BUDGET) {
            *baseline = (*baseline).min(now);
            return;
        }
        let mapped = self
            .mapped
            .get_or_init(|| dat_lmdb::MappedPages::find(&self.env).ok());
        if let Some(m) = mapped {
            // best effort: a failure only leaves the pages mapped
            let _ = m.release();
        }
        *baseline = dat_lmdb::shared_resident_bytes().unwrap_or(now);
    }

    pub(crate) fn read(&self) -> Result<ReadTxn<'_>> {
        Ok(self.env.read_txn()?)
    }

    pub(crate) fn write(&self) -> Result<RwTxn<'_>> {
        Ok(self.env.write_txn()?)
    }

    // --- meta ---------------------------------------------------------------------------------

    pub(crate) fn meta_get(&self, txn: &RoTxn, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(txn, key.as_bytes())?.map(<[u8]>::to_vec))
    }

    pub(crate) fn meta_put(&self, txn: &mut RwTxn, key: &str, value: &[u8]) -> Result<()> {
        Ok(self.meta.put(txn, key.as_bytes(), value)?)
    }

    // --- indexes of the layers above ------------------------------------------------------------

    pub(crate) fn index_get(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.index.get(txn, key)?.map(<[u8]>::to_vec))
    }

    pub(crate) fn index_put(&self, txn: &mut RwTxn, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.index.put(txn, key, value)?)
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    pub(crate) fn index_prefix(
        &self,
        txn: &RoTxn,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.index.prefix_iter(txn, prefix)? {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Removes every key that starts with `prefix`.
    pub(crate) fn index_delete_prefix(&self, txn: &mut RwTxn, prefix: &[u8]) -> Result<()> {
        let keys: Vec<Vec<u8>> = self
            .index
            .prefix_iter(txn, prefix)?
            .map(|i| i.map(|(k, _)| k.to_vec()))
            .collect::<std::result::Result<_, _>>()?;
        for k in keys {
            self.index.delete(txn, &k)?;
        }
        Ok(())
    }

    // --- cores and names ----------------------------------------------------------------------

    pub(crate) fn core_get(&self, txn: &RoTxn, dk: &Hash) -> Result<Option<CoreRecord>> {
        match self.cores.get(txn, dk)? {
            Some(b) => CoreRecord::decode(b)
                .map(Some)
                .map_err(|e| corrupt(format!("record of log {}: {e}", hex(dk)))),
            None => Ok(None),
        }
    }

    pub(crate) fn core_put(&self, txn: &mut RwTxn, dk: &Hash, rec: &CoreRecord) -> Result<()> {
        Ok(self.cores.put(txn, dk, &rec.encode())?)
    }

    pub(crate) fn core_list(&self, txn: &RoTxn) -> Result<Vec<(Hash, CoreRecord)>> {
        let mut out = Vec::new();
        for item in self.cores.iter(txn)? {
            let (k, v) = item?;
            let dk: Hash = k
                .try_into()
                .map_err(|_| corrupt("a log record key is not 32 bytes"))?;
            out.push((dk, CoreRecord::decode(v)?));
        }
        Ok(out)
    }

    pub(crate) fn name_get(&self, txn: &RoTxn, ns: &Hash, name: &str) -> Result<Option<Hash>> {
        let key = [&ns[..], name.as_bytes()].concat();
        match self.names.get(txn, &key)? {
            Some(b) => Ok(Some(b.try_into().map_err(|_| {
                corrupt(format!("name record {name:?} is not 32 bytes"))
            })?)),
            None => Ok(None),
        }
    }

    pub(crate) fn name_put(&self, txn: &mut RwTxn, ns: &Hash, name: &str, dk: &Hash) -> Result<()> {
        let key = [&ns[..], name.as_bytes()].concat();
        Ok(self.names.put(txn, &key, dk)?)
    }

    // --- heads, nodes, blocks -----------------------------------------------------------------

    pub(crate) fn head_get(&self, txn: &RoTxn, id: u64) -> Result<Option<HeadRecord>> {
        match self.heads.get(txn, &id.to_be_bytes())? {
            Some(b) => HeadRecord::decode(b).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn head_put(&self, txn: &mut RwTxn, id: u64, head: &HeadRecord) -> Result<()> {
        Ok(self.heads.put(txn, &id.to_be_bytes(), &head.encode())?)
    }

    pub(crate) fn node_get(&self, txn: &RoTxn, id: u64, index: u64) -> Result<Option<Node>> {
        match self.nodes.get(txn, &pos_key(id, index))? {
            Some(b) => decode_node(index, b).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn node_put(&self, txn: &mut RwTxn, id: u64, node: &Node) -> Result<()> {
        Ok(self
            .nodes
            .put(txn, &pos_key(id, node.index), &encode_node(node))?)
    }

    /// Puts nodes sorted by index; keys past the end of the table are appended without a search.
    pub(crate) fn nodes_put_sorted(&self, txn: &mut RwTxn, id: u64, nodes: &[Node]) -> Result<()> {
        put_sorted(
            &self.nodes,
            txn,
            nodes.iter().map(|n| (pos_key(id, n.index), encode_node(n))),
        )
    }

    pub(crate) fn node_delete(&self, txn: &mut RwTxn, id: u64, index: u64) -> Result<()> {
        self.nodes.delete(txn, &pos_key(id, index))?;
        Ok(())
    }

    pub(crate) fn node_delete_range(
        &self,
        txn: &mut RwTxn,
        id: u64,
        from: u64,
        to: u64,
    ) -> Result<()> {
        if from < to {
            let (start, end) = (pos_key(id, from), pos_key(id, to));
            let r: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) = (
                std::ops::Bound::Included(&start[..]),
                std::ops::Bound::Excluded(&end[..]),
            );
            self.nodes.delete_range(txn, &r)?;
        }
        Ok(())
    }

    /// The run of blocks holding block `index`, if stored: `(first index, run bytes)`.
    fn run_at<'t>(&self, txn: &'t RoTxn, id: u64, index: u64) -> Result<Option<(u64, Run<'t>)>> {
        let Some((k, v)) = self
            .blocks
            .get_lower_than_or_equal_to(txn, &pos_key(id, index))?
        else {
            return Ok(None);
        };
        let (kid, first) = split_key(k)?;
        if kid != id {
            return Ok(None);
        }
        let run = Run::parse(v).map_err(|e| corrupt(format!("blocks from {first}: {e}")))?;
        Ok((index < first + run.count()).then_some((first, run)))
    }

    pub(crate) fn block_get<'t>(
        &self,
        txn: &'t RoTxn,
        id: u64,
        index: u64,
    ) -> Result<Option<&'t [u8]>> {
        match self.run_at(txn, id, index)? {
            None => Ok(None),
            Some((first, run)) => run
                .block((index - first) as usize)
                .map(Some)
                .map_err(|e| corrupt(format!("blocks from {first}: {e}"))),
        }
    }

    pub(crate) fn block_has(&self, txn: &RoTxn, id: u64, index: u64) -> Result<bool> {
        Ok(self.run_at(txn, id, index)?.is_some())
    }

    /// Stores consecutive blocks starting at `first`, none of which may be stored yet.
    pub(crate) fn blocks_put_run<B: AsRef<[u8]>>(
        &self,
        txn: &mut RwTxn,
        id: u64,
        first: u64,
        blocks: &[B],
    ) -> Result<()> {
        let mut runs = Vec::new();
        let mut start = 0usize;
        while start < blocks.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while end < blocks.len()
                && end - start < MAX_RUN_BLOCKS
                && (end == start || bytes + blocks[end].as_ref().len() <= MAX_RUN_BYTES)
            {
                bytes += blocks[end].as_ref().len();
                end += 1;
            }
            runs.push((pos_key(id, first + start as u64), &blocks[start..end]));
            start = end;
        }
        let Some((first_key, _)) = runs.first() else {
            return Ok(());
        };
        let last: Option<Vec<u8>> = self.blocks.last(txn)?.map(|(k, _)| k.to_vec());
        if last.is_some_and(|l| first_key.as_slice() <= l.as_slice()) {
            // not at the table's end (rare: a log appended behind another one's blocks)
            let encoded = runs.into_iter().map(|(k, run)| (k, Run::encode(run)));
            return put_sorted(&self.blocks, txn, encoded);
        }
        // each run written straight into the space LMDB reserves for it (no encoded copy)
        let items = runs.into_iter().map(|(key, run)| {
            (
                key,
                Run::encoded_len(run),
                move |w: &mut dat_lmdb::heed::ReservedSpace| Run::write(run, w),
            )
        });
        Ok(dat_lmdb::append_sorted_reserved(&self.blocks, txn, items)?)
    }

    /// Stores one block (from a peer) unless it is already stored.
    pub(crate) fn block_put(
        &self,
        txn: &mut RwTxn,
        id: u64,
        index: u64,
        data: &[u8],
    ) -> Result<()> {
        if self.block_has(txn, id, index)? {
            return Ok(());
        }
        // written straight into the page LMDB reserves (no intermediate copy of the block)
        let one = [data];
        Ok(self
            .blocks
            .put_reserved(txn, &pos_key(id, index), Run::encoded_len(&one), |w| {
                Run::write(&one, w)
            })?)
    }

    /// The end of the stored blocks that follow `from` without a gap (at most `to`); reads only
    /// as far as the first gap.
    pub(crate) fn contiguous_end(&self, txn: &RoTxn, id: u64, from: u64, to: u64) -> Result<u64> {
        if from >= to {
            return Ok(from.min(to));
        }
        let mut end = match self.run_at(txn, id, from)? {
            Some((first, run)) => first + run.count(),
            None => return Ok(from),
        };
        let start = pos_key(id, end.saturating_sub(1));
        let stop = pos_key(id, to);
        let r: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) = (
            std::ops::Bound::Excluded(&start[..]),
            std::ops::Bound::Excluded(&stop[..]),
        );
        for item in self.blocks.range(txn, &r)? {
            let (k, v) = item?;
            let (_, first) = split_key(k)?;
            if first > end {
                break;
            }
            let run = Run::parse(v).map_err(|e| corrupt(format!("blocks from {first}: {e}")))?;
            // each run's header is a read of the map (see `note_read`)
            self.note_read(0);
            end = end.max(first + run.count());
            if end >= to {
                break;
            }
        }
        Ok(end.min(to))
    }

    /// The runs of a log that hold any block in `[from, to)`: `(first, count)`.
    pub(crate) fn runs_in(
        &self,
        txn: &RoTxn,
        id: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        if let Some((first, run)) = self.run_at(txn, id, from)? {
            out.push((first, run.count()));
        }
        let start = pos_key(id, from);
        let end = pos_key(id, to);
        let r: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) = (
            std::ops::Bound::Excluded(&start[..]),
            std::ops::Bound::Excluded(&end[..]),
        );
        for item in self.blocks.range(txn, &r)? {
            let (k, v) = item?;
            let (_, first) = split_key(k)?;
            let run = Run::parse(v).map_err(|e| corrupt(format!("blocks from {first}: {e}")))?;
            out.push((first, run.count()));
        }
        Ok(out)
    }

    /// Removes the stored blocks in `[from, to)`; returns how many there were.
    pub(crate) fn block_delete_range(
        &self,
        txn: &mut RwTxn,
        id: u64,
        from: u64,
        to: u64,
    ) -> Result<usize> {
        let mut removed = 0usize;
        for (first, count) in self.runs_in(txn, id, from, to)? {
            let end = first + count;
            let (cut_from, cut_to) = (from.max(first), to.min(end));
            removed += (cut_to - cut_from) as usize;
            // keep the parts of the run outside the range, as runs of their own
            let (keep_before, keep_after): (Vec<Vec<u8>>, Vec<Vec<u8>>) = {
                let (_, run) = self.run_at(txn, id, first)?.expect("listed above");
                let before = (first..cut_from)
                    .map(|i| run.block((i - first) as usize).map(<[u8]>::to_vec))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(corrupt)?;
                let after = (cut_to..end)
                    .map(|i| run.block((i - first) as usize).map(<[u8]>::to_vec))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(corrupt)?;
                (before, after)
            };
            self.blocks.delete(txn, &pos_key(id, first))?;
            if !keep_before.is_empty() {
                self.blocks
                    .put(txn, &pos_key(id, first), &Run::encode(&keep_before))?;
            }
            if !keep_after.is_empty() {
                self.blocks
                    .put(txn, &pos_key(id, cut_to), &Run::encode(&keep_after))?;
            }
        }
        Ok(removed)
    }

    /// Number of stored blocks of a log in `[from, to)`.
    pub(crate) fn block_count(&self, txn: &RoTxn, id: u64, from: u64, to: u64) -> Result<u64> {
        Ok(self
            .runs_in(txn, id, from, to)?
            .into_iter()
            .map(|(first, count)| (first + count).min(to) - first.max(from))
            .sum())
    }
}

/// Writes `items` (sorted by key). Once a key sorts after the table's last key, it and every
/// following item go through one cursor in LMDB's append mode.
fn put_sorted<V: AsRef<[u8]>>(
    table: &Table,
    txn: &mut RwTxn,
    items: impl Iterator<Item = ([u8; 16], V)>,
) -> Result<()> {
    let last: Option<Vec<u8>> = table.last(txn)?.map(|(k, _)| k.to_vec());
    let mut items = items.peekable();
    // the items that sort before the table's end go through ordinary puts
    while let Some((key, _)) = items.peek() {
        if last.as_deref().is_none_or(|l| key.as_slice() > l) {
            break;
        }
        let (key, value) = items.next().expect("peeked");
        table.put(txn, &key, value.as_ref())?;
    }
    dat_lmdb::append_sorted(table, txn, items)?;
    Ok(())
}

/// Most blocks one run record holds, and most bytes (a single bigger block gets a run of its own).
const MAX_RUN_BLOCKS: usize = 4096;
const MAX_RUN_BYTES: usize = 4 << 20;

/// A run of consecutive blocks stored as one record: `u32le count, u32le end[count], data`.
/// Storing a batch's blocks together packs LMDB pages and so the bytes each commit syncs.
struct Run<'a> {
    ends: &'a [u8],
    data: &'a [u8],
}

impl<'a> Run<'a> {
    fn encode<B: AsRef<[u8]>>(blocks: &[B]) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(blocks));
        Self::write(blocks, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// The length of [`Run::encode`]'s output.
    fn encoded_len<B: AsRef<[u8]>>(blocks: &[B]) -> usize {
        4 + 4 * blocks.len() + blocks.iter().map(|b| b.as_ref().len()).sum::<usize>()
    }

    /// Writes the encoding to `w` (straight into LMDB's reserved space, say).
    fn write<B: AsRef<[u8]>>(blocks: &[B], w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(&(blocks.len() as u32).to_le_bytes())?;
        let mut end = 0u32;
        for b in blocks {
            end += b.as_ref().len() as u32;
            w.write_all(&end.to_le_bytes())?;
        }
        for b in blocks {
            w.write_all(b.as_ref())?;
        }
        Ok(())
    }

    fn parse(bytes: &'a [u8]) -> std::result::Result<Self, String> {
        let count = bytes
            .get(..4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
            .ok_or("a block run shorter than its header")?;
        let head = 4 + 4 * count;
        if count == 0 || bytes.len() < head {
            return Err(format!(
                "a block run of {} bytes cannot hold {count} blocks",
                bytes.len()
            ));
        }
        let run = Run {
            ends: &bytes[4..head],
            data: &bytes[head..],
        };
        // O(1): the other offsets are checked as blocks are read
        if run.end(count - 1) != run.data.len() {
            return Err("block run offsets do not match its data".into());
        }
        Ok(run)
    }

    fn count(&self) -> u64 {
        (self.ends.len() / 4) as u64
    }

    fn end(&self, i: usize) -> usize {
        u32::from_le_bytes(self.ends[4 * i..4 * i + 4].try_into().expect("4 bytes")) as usize
    }

    fn block(&self, i: usize) -> std::result::Result<&'a [u8], String> {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        let end = self.end(i);
        self.data
            .get(start..end)
            .ok_or_else(|| format!("block run offsets {start}..{end} are out of order"))
    }
}

fn split_key(k: &[u8]) -> Result<(u64, u64)> {
    if k.len() != 16 {
        return Err(corrupt(format!(
            "a {} byte key in a position table",
            k.len()
        )));
    }
    Ok((
        u64::from_be_bytes(k[..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(k[8..].try_into().expect("8 bytes")),
    ))
}

/// Reads the nodes of one log inside one transaction.
pub(crate) struct TxnNodes<'a, 't> {
    pub storage: &'a Storage,
    pub txn: &'a RoTxn<'t>,
    pub id: u64,
}

impl NodeReader for TxnNodes<'_, '_> {
    fn node(&self, index: u64) -> Result<Option<Node>> {
        self.storage.node_get(self.txn, self.id, index)
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let rec = CoreRecord {
            id: 7,
            key: [3; 32],
            manifest: Some(Manifest::default_signer([9; 32])),
            secret_seed: Some([4; 32]),
        };
        assert_eq!(CoreRecord::decode(&rec.encode()).unwrap(), rec);
        let head = HeadRecord {
            fork: 2,
            length: 300,
            byte_length: 1 << 40,
            tree_hash: [5; 32],
            signature: vec![1, 2, 3],
        };
        assert_eq!(HeadRecord::decode(&head.encode()).unwrap(), head);
        assert!(HeadRecord::decode(&head.encode()[..10]).is_err());
        let n = Node::new(9, 1234, [8; 32]);
        assert_eq!(decode_node(9, &encode_node(&n)).unwrap(), n);
        assert!(decode_node(9, &[1, 2]).is_err());
    }

    #[test]
    fn runs_round_trip_and_reject_garbage() {
        let blocks: Vec<Vec<u8>> = vec![vec![], vec![1, 2, 3], vec![], vec![9; 10]];
        let bytes = Run::encode(&blocks);
        let run = Run::parse(&bytes).unwrap();
        assert_eq!(run.count(), 4);
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(run.block(i).unwrap(), &b[..]);
        }
        assert!(Run::parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(Run::parse(&[0, 0, 0, 0]).is_err());
        assert!(Run::parse(&[255, 255, 255, 255, 1]).is_err());
        let mut bad = bytes.clone();
        bad[8] = 200; // second end offset beyond the data: found when that block is read
        let run = Run::parse(&bad).unwrap();
        assert!(run.block(1).is_err() && run.block(2).is_err());
    }
}

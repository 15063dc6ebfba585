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
const TABLES: [&str; 6] = [
    "meta-v1",
    "cores-v1",
    "names-v1",
    "heads-v1",
    "nodes-v1",
    "blocks-v1",
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
}

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
        let tables: [Table; 6] = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let mut out = Vec::with_capacity(TABLES.len());
                for name in TABLES {
                    out.push(opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?);
                }
                let arr: [Database<'_, Bytes, Bytes>; 6] = out
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("six tables"));
                Ok::<_, Error>(CommitOrAbort::<_, ()>::Commit(arr))
            })?
            .unwrap_commit();
        let [meta, cores, names, heads, nodes, blocks] = tables;
        Ok(Storage {
            env,
            meta,
            cores,
            names,
            heads,
            nodes,
            blocks,
        })
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
            let range = pos_key(id, from)[..].to_vec()..pos_key(id, to)[..].to_vec();
            let r: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) = (
                std::ops::Bound::Included(&range.start[..]),
                std::ops::Bound::Excluded(&range.end[..]),
            );
            self.nodes.delete_range(txn, &r)?;
        }
        Ok(())
    }

    pub(crate) fn block_get<'t>(
        &self,
        txn: &'t RoTxn,
        id: u64,
        index: u64,
    ) -> Result<Option<&'t [u8]>> {
        Ok(self.blocks.get(txn, &pos_key(id, index))?)
    }

    pub(crate) fn block_has(&self, txn: &RoTxn, id: u64, index: u64) -> Result<bool> {
        Ok(self
            .blocks
            .remap_data_type::<dat_lmdb::heed::types::LazyDecode<Bytes>>()
            .get(txn, &pos_key(id, index))?
            .is_some())
    }

    pub(crate) fn block_put(
        &self,
        txn: &mut RwTxn,
        id: u64,
        index: u64,
        data: &[u8],
    ) -> Result<()> {
        Ok(self.blocks.put(txn, &pos_key(id, index), data)?)
    }

    pub(crate) fn block_delete_range(
        &self,
        txn: &mut RwTxn,
        id: u64,
        from: u64,
        to: u64,
    ) -> Result<usize> {
        if from >= to {
            return Ok(0);
        }
        let start = pos_key(id, from);
        let end = pos_key(id, to);
        let r: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) = (
            std::ops::Bound::Included(&start[..]),
            std::ops::Bound::Excluded(&end[..]),
        );
        Ok(self.blocks.delete_range(txn, &r)?)
    }

    /// Number of stored blocks of a log in `[from, to)`.
    pub(crate) fn block_count(&self, txn: &RoTxn, id: u64, from: u64, to: u64) -> Result<u64> {
        if from >= to {
            return Ok(0);
        }
        let start = pos_key(id, from);
        let end = pos_key(id, to);
        let r: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) = (
            std::ops::Bound::Included(&start[..]),
            std::ops::Bound::Excluded(&end[..]),
        );
        let mut n = 0;
        for item in self
            .blocks
            .remap_data_type::<dat_lmdb::heed::types::LazyDecode<Bytes>>()
            .range(txn, &r)?
        {
            item?;
            n += 1;
        }
        Ok(n)
    }
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
}

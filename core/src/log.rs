//! A log: a signed, append-only sequence of blocks verified by a merkle tree (a Hypercore).

use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use crate::crypto::{self, Hash, KeyPair};
use crate::error::{Error, Result};
use crate::flat_tree::{self, Iter};
use crate::manifest::{Manifest, Verifier};
use crate::proof::{self, Data, ProofRequest};
use crate::replication::Replicator;
use crate::storage::{CoreRecord, HeadRecord, ReadTxn, TxnNodes, hex};
use crate::store::StoreInner;
use crate::tree::{Node, NodeReader, TreeState};
use dat_lmdb::heed::RwTxn;

/// Largest block this implementation stores (run offsets are 32-bit). Blocks over 15 MiB cannot
/// cross the wire in one frame anyway; the reference suggests staying under that.
pub const MAX_BLOCK_SIZE: usize = u32::MAX as usize;

/// Something that happened to a log, for subscribers ([`Log::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogEvent {
    /// The signed length grew (a local append, or a verified upgrade from a peer).
    Append {
        /// New length.
        length: u64,
        /// New byte length.
        byte_length: u64,
    },
    /// The log was truncated to `length` on a new fork.
    Truncate {
        /// New length.
        length: u64,
        /// New fork id.
        fork: u64,
    },
    /// A block arrived from a peer and was verified and stored.
    Download {
        /// Block index.
        index: u64,
        /// Block size in bytes.
        bytes: u64,
        /// The peer it came from (an id given by the replication layer; 0 if unknown).
        peer: u64,
    },
    /// Blocks were cleared locally.
    Clear {
        /// First cleared index.
        start: u64,
        /// One past the last cleared index.
        end: u64,
    },
}

/// The state of a log shared by every handle to it.
pub(crate) struct LogInner {
    store: Arc<StoreInner>,
    id: u64,
    key: Hash,
    discovery_key: Hash,
    key_pair: Option<KeyPair>,
    verifier: RwLock<VerifierState>,
    state: RwLock<TreeState>,
    /// Serializes writers of this log (appends, applied proofs, truncations, clears).
    write: Mutex<()>,
    /// `(fork after, length truncated to)` of every truncation since the log was opened.
    truncations: RwLock<Vec<(u64, u64)>>,
    /// Length of the prefix of blocks all stored locally.
    contiguous: std::sync::atomic::AtomicU64,
    events: tokio::sync::broadcast::Sender<LogEvent>,
    /// The replication scheduler of this log, created when it is first replicated or waited on.
    replicator: std::sync::OnceLock<Arc<Replicator>>,
    /// How long `get` waits for a remote block, in ms (0: not at all, u64::MAX: forever).
    wait_ms: std::sync::atomic::AtomicU64,
}

struct VerifierState {
    verifier: Verifier,
    /// False while a remote log's manifest is unknown (the verifier then assumes compat mode).
    manifest_known: bool,
}

/// A handle to a log. Cheap to clone; clones share state. `Send + Sync`.
#[derive(Clone)]
pub struct Log {
    inner: Arc<LogInner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state();
        f.debug_struct("Log")
            .field("key", &hex(&self.inner.key))
            .field("length", &s.length)
            .field("fork", &s.fork)
            .finish()
    }
}

/// What applying a remote proof changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new signed length, if the proof moved it forward.
    pub upgraded_to: Option<u64>,
    /// The block index stored, if the proof carried a block.
    pub block: Option<u64>,
}

fn poisoned<T>(p: std::sync::PoisonError<T>) -> T {
    p.into_inner()
}

impl Log {
    pub(crate) fn from_inner(inner: Arc<LogInner>) -> Self {
        Log { inner }
    }

    pub(crate) fn downgrade(&self) -> Weak<LogInner> {
        Arc::downgrade(&self.inner)
    }

    /// Loads a log from its record and head, checking that the stored head is intact.
    pub(crate) fn load(
        store: Arc<StoreInner>,
        dk: Hash,
        rec: CoreRecord,
        txn: &ReadTxn<'_>,
    ) -> Result<Log> {
        let key_pair = rec.secret_seed.map(|s| KeyPair::from_seed(&s));
        let (verifier, manifest_known) = match rec.manifest {
            Some(m) => (Verifier::new(rec.key, m)?, true),
            None => (Verifier::compat(rec.key), false),
        };
        if crypto::discovery_key(&rec.key) != dk {
            return Err(Error::Corrupt(
                "the log record's key does not match its discovery key".into(),
            ));
        }
        let head = store.storage.head_get(txn, rec.id)?.unwrap_or_default();
        let reader = TxnNodes {
            storage: &store.storage,
            txn,
            id: rec.id,
        };
        let roots = TreeState::roots_at(&reader, head.length).map_err(|e| match e {
            Error::MissingNode(i) => Error::Corrupt(format!(
                "root node {i} of the signed length {} is missing",
                head.length
            )),
            e => e,
        })?;
        let state = TreeState {
            fork: head.fork,
            length: head.length,
            byte_length: roots.iter().map(|r| r.size).sum(),
            roots,
            signature: head.signature,
        };
        if head.length > 0 {
            let th = state.hash();
            if th != head.tree_hash || state.byte_length != head.byte_length {
                return Err(Error::Corrupt(
                    "the stored roots do not hash to the signed tree hash".into(),
                ));
            }
            if !verifier.verify(&th, state.length, state.fork, &state.signature) {
                return Err(Error::Corrupt(format!(
                    "the signature of the stored head (length {}) does not verify",
                    state.length
                )));
            }
        }
        let contiguous = contiguous_from(&store.storage, txn, rec.id, 0, state.length)?;
        Ok(Log {
            inner: Arc::new(LogInner {
                store,
                id: rec.id,
                key: rec.key,
                discovery_key: dk,
                key_pair,
                verifier: RwLock::new(VerifierState {
                    verifier,
                    manifest_known,
                }),
                state: RwLock::new(state),
                write: Mutex::new(()),
                truncations: RwLock::new(Vec::new()),
                contiguous: std::sync::atomic::AtomicU64::new(contiguous),
                events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
                replicator: std::sync::OnceLock::new(),
                wait_ms: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, TreeState> {
        self.inner.state.read().unwrap_or_else(poisoned)
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.inner.write.lock().unwrap_or_else(poisoned)
    }

    fn storage(&self) -> &crate::storage::Storage {
        &self.inner.store.storage
    }

    fn dk_hex(&self) -> String {
        hex(&self.inner.discovery_key)
    }

    // --- identity ------------------------------------------------------------------------------

    /// The log key (manifest hash, or public key in compat mode).
    pub fn key(&self) -> [u8; 32] {
        self.inner.key
    }

    /// The discovery key: what goes on the wire instead of the key.
    pub fn discovery_key(&self) -> [u8; 32] {
        self.inner.discovery_key
    }

    /// The manifest, when known.
    pub fn manifest(&self) -> Option<Manifest> {
        let v = self.inner.verifier.read().unwrap_or_else(poisoned);
        v.manifest_known.then(|| v.verifier.manifest().clone())
    }

    /// True when the log is keyed by its public key (hypercore 10 style).
    pub fn is_compat(&self) -> bool {
        self.inner
            .verifier
            .read()
            .unwrap_or_else(poisoned)
            .verifier
            .is_compat()
    }

    /// True when this store holds the secret key.
    pub fn writable(&self) -> bool {
        self.inner.key_pair.is_some()
    }

    /// The signing key pair, if writable.
    pub fn key_pair(&self) -> Option<&KeyPair> {
        self.inner.key_pair.as_ref()
    }

    /// Records the manifest of a remote log (it must hash to the key).
    pub fn set_manifest(&self, manifest: Manifest) -> Result<()> {
        let mut v = self.inner.verifier.write().unwrap_or_else(poisoned);
        if v.manifest_known {
            if *v.verifier.manifest() != manifest {
                return Err(Error::InvalidManifest(
                    "a different manifest is already known for this log".into(),
                ));
            }
            return Ok(());
        }
        let verifier = Verifier::new(self.inner.key, manifest.clone())?;
        let _w = self.lock_writes();
        let mut txn = self.storage().write()?;
        self.store_manifest(&mut txn, manifest)?;
        txn.commit()?;
        *v = VerifierState {
            verifier,
            manifest_known: true,
        };
        Ok(())
    }

    /// Records the manifest in the log's store record (inside the caller's transaction).
    fn store_manifest(&self, txn: &mut RwTxn<'_>, manifest: Manifest) -> Result<()> {
        let dk = &self.inner.discovery_key;
        let mut rec = self
            .storage()
            .core_get(txn, dk)?
            .ok_or_else(|| Error::NotFound(format!("log {}", self.dk_hex())))?;
        rec.manifest = Some(manifest);
        self.storage().core_put(txn, dk, &rec)
    }

    // --- state ---------------------------------------------------------------------------------

    /// Number of blocks (the signed length).
    pub fn length(&self) -> u64 {
        self.state().length
    }

    /// Bytes in all blocks.
    pub fn byte_length(&self) -> u64 {
        self.state().byte_length
    }

    /// The fork id (incremented by each truncation).
    pub fn fork(&self) -> u64 {
        self.state().fork
    }

    /// The signed tree state (roots, length, fork, signature).
    pub fn tree(&self) -> TreeState {
        self.state().clone()
    }

    /// The signature over the current state, as stored and sent.
    pub fn signature(&self) -> Vec<u8> {
        self.state().signature.clone()
    }

    /// The tree hash at the current length, or at any shorter `length`.
    pub fn tree_hash(&self, length: Option<u64>) -> Result<Hash> {
        let state = self.state().clone();
        let length = length.unwrap_or(state.length);
        if length == state.length {
            return Ok(state.hash());
        }
        if length > state.length {
            return Err(Error::OutOfBounds(format!(
                "length {length} is past the log length {}",
                state.length
            )));
        }
        let txn = self.storage().read()?;
        let roots = TreeState::roots_at(&self.nodes(&txn), length)?;
        Ok(crypto::tree_hash(&roots))
    }

    fn nodes<'a, 't>(&'a self, txn: &'a ReadTxn<'t>) -> TxnNodes<'a, 't> {
        TxnNodes {
            storage: self.storage(),
            txn,
            id: self.inner.id,
        }
    }

    /// The stored tree node at flat index `index`, if any.
    pub fn node(&self, index: u64) -> Result<Option<Node>> {
        let txn = self.storage().read()?;
        self.nodes(&txn).node(index)
    }

    /// Number of blocks from 0 that are all stored locally.
    pub fn contiguous_length(&self) -> u64 {
        self.inner
            .contiguous
            .load(std::sync::atomic::Ordering::Acquire)
            .min(self.length())
    }

    /// The stored blocks in `start..end` as half-open intervals, in order.
    pub fn local_ranges(&self, start: u64, end: u64) -> Result<Vec<(u64, u64)>> {
        let end = end.min(self.length());
        let txn = self.storage().read()?;
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (first, count) in self.storage().runs_in(&txn, self.inner.id, start, end)? {
            let (a, b) = (first.max(start), (first + count).min(end));
            match out.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => out.push((a, b)),
            }
        }
        Ok(out)
    }

    /// Subscribes to this log's events. Every handle of the log shares one event stream.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LogEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: LogEvent) {
        // no subscribers is fine
        let _ = self.inner.events.send(event);
    }

    fn refresh_contiguous(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let length = self.length();
        let from = self.inner.contiguous.load(Ordering::Acquire).min(length);
        let txn = self.storage().read()?;
        let end = contiguous_from(self.storage(), &txn, self.inner.id, from, length)?;
        self.inner.contiguous.store(end, Ordering::Release);
        Ok(())
    }

    // --- writing -------------------------------------------------------------------------------

    /// Appends one block. Returns `(length, byte_length)` after the append; when this returns the
    /// block is durable (per the store's durability).
    pub fn append(&self, block: &[u8]) -> Result<(u64, u64)> {
        self.append_batch(&[block])
    }

    /// Appends blocks atomically under one signature. Returns `(length, byte_length)` after.
    pub fn append_batch<B: AsRef<[u8]> + Sync>(&self, blocks: &[B]) -> Result<(u64, u64)> {
        self.append_batch_with(blocks, None)
    }

    /// [`Log::append_batch`] with the blocks' leaf hashes ([`crypto::leaf_hashes`]) computed
    /// beforehand, so a pipelined writer can hash its next batch while this one is stored.
    pub(crate) fn append_batch_hashed<B: AsRef<[u8]> + Sync>(
        &self,
        blocks: &[B],
        hashes: &[Hash],
    ) -> Result<(u64, u64)> {
        if hashes.len() != blocks.len() {
            return Err(Error::InvalidArgument(format!(
                "{} leaf hashes for {} blocks",
                hashes.len(),
                blocks.len()
            )));
        }
        self.append_batch_with(blocks, Some(hashes))
    }

    fn append_batch_with<B: AsRef<[u8]> + Sync>(
        &self,
        blocks: &[B],
        hashed: Option<&[Hash]>,
    ) -> Result<(u64, u64)> {
        let kp = self.inner.key_pair.as_ref().ok_or_else(|| {
            Error::NotWritable(format!("log {} has no secret key here", self.dk_hex()))
        })?;
        if let Some(b) = blocks.iter().find(|b| b.as_ref().len() > MAX_BLOCK_SIZE) {
            return Err(Error::InvalidArgument(format!(
                "a block of {} bytes is over the {MAX_BLOCK_SIZE} byte limit",
                b.as_ref().len()
            )));
        }
        let _w = self.lock_writes();
        let old = self.state().clone();
        if blocks.is_empty() {
            return Ok((old.length, old.byte_length));
        }
        let id = self.inner.id;
        let mut txn = self.storage().write()?;
        // Hash the leaves while the blocks go into the B-tree: a helper thread hashes the first
        // half, this thread writes the blocks and then hashes the second half.
        let total: usize = blocks.iter().map(|b| b.as_ref().len()).sum();
        let hashes = if let Some(h) = hashed {
            self.storage()
                .blocks_put_run(&mut txn, id, old.length, blocks)?;
            h.to_vec()
        } else if total >= 1 << 18 && blocks.len() >= 16 {
            let (first, second) = blocks.split_at(blocks.len() / 2);
            std::thread::scope(|s| {
                let helper = s.spawn(|| crypto::leaf_hashes_simd(first));
                self.storage()
                    .blocks_put_run(&mut txn, id, old.length, blocks)?;
                let mut h = helper.join().expect("hashing does not panic");
                h.extend(crypto::leaf_hashes_simd(second));
                Ok::<_, Error>(h)
            })?
        } else {
            self.storage()
                .blocks_put_run(&mut txn, id, old.length, blocks)?;
            crypto::leaf_hashes(blocks)
        };
        let mut next = old.clone();
        let mut nodes = Vec::with_capacity(blocks.len() * 2 + 8);
        next.append_hashed(blocks, &hashes, &mut nodes);
        let tree_hash = next.hash();
        next.signature = self
            .inner
            .verifier
            .read()
            .unwrap_or_else(poisoned)
            .verifier
            .sign(kp, &tree_hash, next.length, next.fork)?;
        nodes.sort_unstable_by_key(|n| n.index);
        self.storage().nodes_put_sorted(&mut txn, id, &nodes)?;
        self.storage()
            .head_put(&mut txn, id, &head_record(&next, tree_hash))?;
        txn.commit()?;
        let out = (next.length, next.byte_length);
        let was_contiguous = self
            .inner
            .contiguous
            .load(std::sync::atomic::Ordering::Acquire)
            >= old.length;
        *self.inner.state.write().unwrap_or_else(poisoned) = next;
        if was_contiguous {
            self.inner
                .contiguous
                .store(out.0, std::sync::atomic::Ordering::Release);
        }
        self.emit(LogEvent::Append {
            length: out.0,
            byte_length: out.1,
        });
        if let Some(r) = self.inner.replicator.get() {
            r.on_local_append(old.length, out.0);
        }
        Ok(out)
    }

    /// Truncates to `length` blocks, moving to fork `fork + 1`.
    pub fn truncate(&self, length: u64) -> Result<()> {
        let fork = self.fork() + 1;
        self.truncate_to_fork(length, fork)
    }

    /// Truncates to `length` blocks on the given fork id (which must grow).
    pub fn truncate_to_fork(&self, length: u64, fork: u64) -> Result<()> {
        let kp = self.inner.key_pair.as_ref().ok_or_else(|| {
            Error::NotWritable(format!("log {} has no secret key here", self.dk_hex()))
        })?;
        let _w = self.lock_writes();
        let old = self.state().clone();
        if length > old.length {
            return Err(Error::OutOfBounds(format!(
                "cannot truncate to {length}: the log has {} blocks",
                old.length
            )));
        }
        if fork <= old.fork {
            return Err(Error::InvalidArgument(format!(
                "the new fork {fork} must be greater than the current fork {}",
                old.fork
            )));
        }
        let id = self.inner.id;
        let mut txn = self.storage().write()?;
        let roots = TreeState::roots_at(&self.nodes(&txn), length)?;
        let mut next = TreeState {
            fork,
            length,
            byte_length: roots.iter().map(|r| r.size).sum(),
            roots,
            signature: Vec::new(),
        };
        let tree_hash = next.hash();
        next.signature = self
            .inner
            .verifier
            .read()
            .unwrap_or_else(poisoned)
            .verifier
            .sign(kp, &tree_hash, length, fork)?;
        self.cut(&mut txn, length, old.length)?;
        self.storage()
            .head_put(&mut txn, id, &head_record(&next, tree_hash))?;
        txn.commit()?;
        self.inner
            .truncations
            .write()
            .unwrap_or_else(poisoned)
            .push((fork, length));
        *self.inner.state.write().unwrap_or_else(poisoned) = next;
        self.inner
            .contiguous
            .fetch_min(length, std::sync::atomic::Ordering::AcqRel);
        self.emit(LogEvent::Truncate { length, fork });
        Ok(())
    }

    /// Removes the blocks `length..old_length` and every tree node that covers any of them.
    fn cut(&self, txn: &mut RwTxn<'_>, length: u64, old_length: u64) -> Result<()> {
        let id = self.inner.id;
        self.storage()
            .block_delete_range(txn, id, length, old_length)?;
        let head = 2 * length;
        self.storage()
            .node_delete_range(txn, id, head, 2 * old_length.max(length))?;
        if length > 0 {
            // parents that span the cut
            let mut ite = Iter::new(head - 2);
            for _ in 0..64 {
                if ite.contains(head) && ite.index < head {
                    self.storage().node_delete(txn, id, ite.index)?;
                }
                if ite.offset == 0 {
                    break;
                }
                ite.parent();
            }
        }
        Ok(())
    }

    /// Drops the stored bytes of blocks `start..end` (the tree stays, so they can be fetched and
    /// verified again). Returns how many blocks were removed. A later [`Log::get_wait`], a new
    /// [`Log::prioritize`] or a live range (a non-sparse log's whole-log range) downloads them
    /// again; a range already reported done does not.
    pub fn clear(&self, start: u64, end: u64) -> Result<u64> {
        let _w = self.lock_writes();
        let end = end.min(self.length());
        if start >= end {
            return Ok(0);
        }
        let mut txn = self.storage().write()?;
        let n = self
            .storage()
            .block_delete_range(&mut txn, self.inner.id, start, end)?;
        txn.commit()?;
        self.inner
            .contiguous
            .fetch_min(start, std::sync::atomic::Ordering::AcqRel);
        // a read or a live range that wants these blocks again fetches them
        if let Some(r) = self.inner.replicator.get() {
            r.on_local_lost(start, end);
        }
        self.emit(LogEvent::Clear { start, end });
        Ok(n as u64)
    }

    // --- reading -------------------------------------------------------------------------------

    /// True if block `index` is stored locally.
    pub fn has(&self, index: u64) -> Result<bool> {
        if index >= self.length() {
            return Ok(false);
        }
        let txn = self.storage().read()?;
        self.storage().block_has(&txn, self.inner.id, index)
    }

    /// Number of blocks in `start..end` stored locally.
    pub fn has_count(&self, start: u64, end: u64) -> Result<u64> {
        let end = end.min(self.length());
        let txn = self.storage().read()?;
        self.storage().block_count(&txn, self.inner.id, start, end)
    }

    /// The replication state of this log, shared by every connection replicating it (created on
    /// first use; sparse until [`Log::set_sparse`]`(false)` or a non-sparse replication).
    pub fn replicator(&self) -> Arc<Replicator> {
        self.inner
            .replicator
            .get_or_init(|| {
                let _w = self.lock_writes();
                let length = self.length();
                let local = self.local_ranges(0, length).unwrap_or_default();
                Arc::new(Replicator::new(length, &local))
            })
            .clone()
    }

    /// True when the log already has a replicator (it is or was replicated, or waited on).
    pub fn is_replicating(&self) -> bool {
        self.inner.replicator.get().is_some()
    }

    /// Reads block `index`, checking its bytes against the tree. When the block is not local
    /// (or past the length known here) and a wait is set ([`Log::set_wait`]) on a log this side
    /// does not write, it is fetched from peers at the top priority ([`Log::get_wait`]).
    pub fn get(&self, index: u64) -> Result<Vec<u8>> {
        match self.get_local(index) {
            Err(e @ (Error::NotAvailable(_) | Error::OutOfBounds(_))) if !self.writable() => {
                use std::sync::atomic::Ordering;
                match self.inner.wait_ms.load(Ordering::Relaxed) {
                    0 => Err(e),
                    u64::MAX => self.get_wait(index, None),
                    ms => self.get_wait(index, Some(std::time::Duration::from_millis(ms))),
                }
            }
            other => other,
        }
    }

    /// How long [`Log::get`] waits for a block that is not local: `None` never (the default,
    /// [`Error::NotAvailable`] at once), `Some(Duration::MAX)` without limit.
    pub fn set_wait(&self, timeout: Option<std::time::Duration>) {
        let ms = match timeout {
            None => 0,
            Some(d) if d == std::time::Duration::MAX => u64::MAX,
            Some(d) => (d.as_millis() as u64).clamp(1, u64::MAX - 1),
        };
        self.inner
            .wait_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads block `index` if it is stored here, checking its bytes against the tree; never waits.
    pub fn get_local(&self, index: u64) -> Result<Vec<u8>> {
        let length = self.length();
        if index >= length {
            return Err(Error::OutOfBounds(format!(
                "block {index} of a log with {length} blocks"
            )));
        }
        let txn = self.storage().read()?;
        self.get_in(&txn, index)
    }

    /// Reads the stored blocks `start..end`, stopping after the block that reaches `max_bytes`
    /// (at least one block), in one read transaction, checking them against the tree several per
    /// SIMD pass. Never waits: a block not stored here is [`Error::NotAvailable`].
    pub fn get_range_local(&self, start: u64, end: u64, max_bytes: usize) -> Result<Vec<Vec<u8>>> {
        let length = self.length();
        let end = end.min(length);
        if start >= end {
            return Err(Error::OutOfBounds(format!(
                "blocks {start}..{end} of a log with {length} blocks"
            )));
        }
        let txn = self.storage().read()?;
        let (mut blocks, mut nodes, mut total) = (Vec::new(), Vec::new(), 0usize);
        for index in start..end {
            let (data, node) = self.stored_block(&txn, index)?;
            total += data.len();
            blocks.push(data);
            nodes.push(node);
            if total >= max_bytes {
                break;
            }
        }
        let hashes = crypto::leaf_hashes_simd(&blocks);
        for (k, (node, hash)) in nodes.iter().zip(&hashes).enumerate() {
            self.check_leaf(start + k as u64, blocks[k], node, hash)?;
        }
        let out = blocks.iter().map(|b| b.to_vec()).collect();
        drop(txn);
        self.storage().note_read(total as u64);
        Ok(out)
    }

    fn get_in(&self, txn: &ReadTxn<'_>, index: u64) -> Result<Vec<u8>> {
        let (data, node) = self.stored_block(txn, index)?;
        self.check_leaf(index, data, &node, &crypto::leaf_hash(data))?;
        Ok(data.to_vec())
    }

    /// The stored bytes of block `index` (unchecked) and its leaf node.
    fn stored_block<'t>(&self, txn: &'t ReadTxn<'_>, index: u64) -> Result<(&'t [u8], Node)> {
        let id = self.inner.id;
        let data = self
            .storage()
            .block_get(txn, id, index)?
            .ok_or(Error::NotAvailable(index))?;
        let node = self
            .storage()
            .node_get(txn, id, 2 * index)?
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "log {}: block {index} is stored but its tree node is missing",
                    self.dk_hex()
                ))
            })?;
        Ok((data, node))
    }

    /// Checks stored block bytes (whose leaf hash is `hash`) against the block's leaf node.
    fn check_leaf(&self, index: u64, data: &[u8], node: &Node, hash: &Hash) -> Result<()> {
        if node.size != data.len() as u64 || node.hash != *hash {
            return Err(Error::Corrupt(format!(
                "log {}: the stored bytes of block {index} do not match its hash",
                self.dk_hex()
            )));
        }
        Ok(())
    }

    /// Counts `bytes` read through a stream or cursor over this log's blocks (blob readers), so
    /// that the store releases the memory-map pages such reads leave mapped (see
    /// `Storage::note_read`). Plain `get`s are not counted: random reads of small blocks would
    /// pay for re-faulting the pages a release drops.
    pub(crate) fn note_streamed(&self, bytes: u64) {
        self.storage().note_read(bytes);
    }

    /// Maps a byte offset to `(block index, offset inside that block)` in O(log n).
    pub fn seek(&self, bytes: u64) -> Result<(u64, u64)> {
        let state = self.state().clone();
        let txn = self.storage().read()?;
        state.seek(&self.nodes(&txn), bytes)
    }

    /// Byte offset at which block `index` starts.
    pub fn byte_offset(&self, index: u64) -> Result<u64> {
        let state = self.state().clone();
        if index > state.length {
            return Err(Error::OutOfBounds(format!(
                "block {index} of a log with {} blocks",
                state.length
            )));
        }
        let txn = self.storage().read()?;
        state.byte_offset(&self.nodes(&txn), 2 * index)
    }

    /// A read view frozen at the current length.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            log: self.clone(),
            tree: self.tree(),
        }
    }

    // --- proofs --------------------------------------------------------------------------------

    /// Builds the `data` message answering a remote request (block value included).
    pub fn proof(&self, req: &ProofRequest) -> Result<Data> {
        let state = self.state().clone();
        if req.fork != state.fork {
            return Err(Error::ForkMismatch {
                local: state.fork,
                remote: req.fork,
            });
        }
        let txn = self.storage().read()?;
        let mut data = proof::generate(&state, &self.nodes(&txn), req)?;
        if let Some(b) = data.block.as_mut() {
            // Not re-hashed here: the peer verifies every block it receives (and drops a peer
            // that sends a bad one), and local reads (`get`) verify theirs.
            let value = self
                .storage()
                .block_get(&txn, self.inner.id, b.index)?
                .ok_or(Error::NotAvailable(b.index))?;
            b.value = value.to_vec();
        }
        Ok(data)
    }

    /// How many ancestors of node `index` a request should ask for: those not stored locally, up to
    /// a root of the current length.
    pub fn missing_nodes(&self, index: u64) -> Result<u64> {
        // every node looked up
        self.missing_nodes_hinted(index, |_, _| true)
    }

    /// [`Log::missing_nodes`] without a storage read per level: `any_local(start, end)` tells
    /// whether any block in `[start, end)` is stored (the scheduler's bitfield). A node whose
    /// parent covers no stored block is counted missing without looking (a stored block's proof
    /// stored its whole chain and its uncles, so a present node nearly always has a stored block
    /// under it or under its sibling; when it does not, the request asks for a node more than it
    /// needs, which is harmless). A node that may be present, and every root, is looked up, so
    /// the count never falls short (the peer's proof would not verify) nor runs past a root (the
    /// peer could not answer).
    pub fn missing_nodes_hinted(
        &self,
        index: u64,
        any_local: impl Fn(u64, u64) -> bool,
    ) -> Result<u64> {
        let head = 2 * self.length();
        let mut ite = Iter::new(index);
        if ite.peek_right_span() >= head {
            return Ok(0);
        }
        let mut txn = None;
        let mut count = 0;
        while !ite.contains(head) {
            let parent = crate::flat_tree::parent(ite.index);
            let (left, right) = (
                crate::flat_tree::left_span(parent),
                crate::flat_tree::right_span(parent),
            );
            // a root of this length is stored without blocks (the upgrade proved it): always
            // looked up, so the count never runs past a root
            if right >= head || any_local(left / 2, right / 2 + 1) {
                if txn.is_none() {
                    txn = Some(self.storage().read()?);
                }
                let t = txn.as_ref().expect("just set");
                if self.nodes(t).node(ite.index)?.is_some() {
                    break;
                }
            }
            count += 1;
            if count > 64 {
                break;
            }
            ite.parent();
        }
        Ok(count)
    }

    /// Verifies a `data` message from a peer and stores what it proves. Nothing is stored unless
    /// every hash chains to a trusted node or a correctly signed root set.
    pub fn apply(&self, data: &Data) -> Result<Applied> {
        self.apply_from(data, 0)
    }

    /// [`Log::apply`] for data from the peer with id `peer` (reported in [`LogEvent::Download`]).
    pub fn apply_from(&self, data: &Data, peer: u64) -> Result<Applied> {
        let (mut applied, err) = self.apply_batch(std::slice::from_ref(data), peer);
        match (err, applied.pop()) {
            (Some(e), _) => Err(e),
            (None, Some(a)) => Ok(a),
            (None, None) => Err(Error::InvalidArgument("nothing was applied".into())),
        }
    }

    /// Verifies and stores several `data` messages from one peer in one transaction (one commit,
    /// one fsync). Messages are checked in order, each against the state the previous ones left;
    /// the first one that fails stops the batch. Returns what the applied ones changed and that
    /// first error. Everything applied before the error is stored.
    pub fn apply_batch(&self, datas: &[Data], peer: u64) -> (Vec<Applied>, Option<Error>) {
        self.apply_batch_hashed(datas, leaf_hashes(datas), peer)
    }

    /// [`Log::apply_batch`] with the blocks' leaf hashes already computed ([`leaf_hashes`]), so
    /// that a connection hashes on its own thread while the previous batch is being stored.
    pub(crate) fn apply_batch_hashed(
        &self,
        datas: &[Data],
        leaves: Vec<Hash>,
        peer: u64,
    ) -> (Vec<Applied>, Option<Error>) {
        debug_assert_eq!(
            leaves.len(),
            datas.iter().filter(|d| d.block.is_some()).count()
        );
        let _w = self.lock_writes();
        let before = self.state().clone();
        let mut ctx = {
            let v = self.inner.verifier.read().unwrap_or_else(poisoned);
            ApplyCtx {
                state: before.clone(),
                verifier: v.verifier.clone(),
                manifest_known: v.manifest_known,
                manifest_learned: false,
                upgraded: false,
                downloads: Vec::new(),
                reorg: None,
                nodes: std::collections::BTreeMap::new(),
            }
        };
        let mut wtxn = match self.storage().write() {
            Ok(t) => t,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut leaves = leaves.into_iter();
        let mut out = Vec::new();
        let mut err = None;
        for data in datas {
            let leaf = data.block.as_ref().and_then(|_| leaves.next());
            match self.apply_one(&mut wtxn, &mut ctx, data, leaf) {
                Ok(a) => out.push(a),
                // an answer overtaken by another (a second upgrade, a fork): skip it and keep
                // the rest of the batch
                Err(
                    e @ (Error::StaleProof(_) | Error::ForkMismatch { .. } | Error::Conflict(_)),
                ) => {
                    err.get_or_insert(e);
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if out.is_empty() {
            return (out, err);
        }
        if let Err(e) = self.flush_nodes(&mut wtxn, &mut ctx) {
            return (Vec::new(), Some(e));
        }
        if let Err(e) = wtxn.commit() {
            return (Vec::new(), Some(e.into()));
        }
        if ctx.manifest_learned {
            *self.inner.verifier.write().unwrap_or_else(poisoned) = VerifierState {
                verifier: ctx.verifier,
                manifest_known: true,
            };
        }
        let reorg = ctx.reorg;
        if ctx.upgraded {
            let (length, byte_length) = (ctx.state.length, ctx.state.byte_length);
            *self.inner.state.write().unwrap_or_else(poisoned) = ctx.state;
            if let Some(r) = reorg {
                self.inner
                    .truncations
                    .write()
                    .unwrap_or_else(poisoned)
                    .push((r.fork, r.ancestor));
                self.inner
                    .contiguous
                    .fetch_min(r.ancestor, std::sync::atomic::Ordering::AcqRel);
                if let Some(rep) = self.inner.replicator.get() {
                    rep.on_truncated(r.ancestor, r.old_length);
                }
                self.emit(LogEvent::Truncate {
                    length: r.ancestor,
                    fork: r.fork,
                });
            }
            self.emit(LogEvent::Append {
                length,
                byte_length,
            });
        }
        if let Some(r) = self.inner.replicator.get()
            && (ctx.upgraded || !ctx.downloads.is_empty())
        {
            r.on_downloaded(peer, &ctx.downloads, self.length());
        }
        if !ctx.downloads.is_empty() {
            if let Err(e) = self.refresh_contiguous() {
                return (out, Some(e));
            }
            for (index, bytes) in ctx.downloads {
                self.emit(LogEvent::Download { index, bytes, peer });
            }
        }
        (out, err)
    }

    fn apply_one(
        &self,
        wtxn: &mut RwTxn<'_>,
        ctx: &mut ApplyCtx,
        data: &Data,
        leaf: Option<Hash>,
    ) -> Result<Applied> {
        let mut state = ctx.state.clone();
        if data.fork != state.fork {
            // An empty log has nothing to reconcile: it takes the fork of the first signed upgrade
            // (the signature covers the fork). Otherwise forks are resolved by replication.
            if state.length == 0 && data.upgrade.as_ref().is_some_and(|u| u.start == 0) {
                state.fork = data.fork;
            } else if data.fork > state.fork
                && data.upgrade.as_ref().is_some_and(|u| u.start == 0)
                && data.block.is_none()
                && data.hash.is_none()
                && data.seek.is_none()
            {
                return self.apply_reorg(wtxn, ctx, data);
            } else {
                return Err(Error::ForkMismatch {
                    local: state.fork,
                    remote: data.fork,
                });
            }
        }
        // A manifest in the proof may tell us how to check signatures.
        let mut new_manifest = None;
        let verifier = match (&data.manifest, ctx.manifest_known) {
            (Some(m), false) => {
                let ver = Verifier::new(self.inner.key, m.clone())?;
                new_manifest = Some(m.clone());
                ver
            }
            _ => ctx.verifier.clone(),
        };
        let prologue = verifier.manifest().prologue.clone();
        let verified = proof::verify_hashed(&state, data, prologue.as_ref(), leaf)?;
        let id = self.inner.id;
        {
            let reader = PendingNodes {
                pending: &ctx.nodes,
                stored: TxnNodes {
                    storage: self.storage(),
                    txn: wtxn,
                    id,
                },
            };
            if let Some(top) = verified.unverified {
                match reader.node(top.index)? {
                    Some(n) if n.hash == top.hash => {}
                    Some(_) => {
                        return Err(Error::InvalidProof(format!(
                            "node {} does not match the stored tree",
                            top.index
                        )));
                    }
                    None => {
                        return Err(Error::InvalidProof(format!(
                            "node {} does not connect to anything verified locally",
                            top.index
                        )));
                    }
                }
            }
            if verified.upgraded {
                let t = &verified.tree;
                if !verifier.verify(&t.hash(), t.length, t.fork, &t.signature) {
                    return Err(Error::InvalidSignature(format!(
                        "the signature for length {} of log {} does not verify",
                        t.length,
                        self.dk_hex()
                    )));
                }
                if t.length <= state.length {
                    for r in &t.roots {
                        match reader.node(r.index)? {
                            Some(n) if n.hash == r.hash => {}
                            _ => {
                                return Err(Error::Conflict(format!(
                                    "a signed state of length {} does not match the local tree",
                                    t.length
                                )));
                            }
                        }
                    }
                }
            }
        }
        let tree = verified.tree;
        let upgraded_to = (verified.upgraded && tree.length > state.length).then_some(tree.length);
        let new_length = upgraded_to.unwrap_or(state.length);
        let block = match &data.block {
            Some(b) if b.index < new_length => Some(b.index),
            Some(b) => {
                return Err(Error::InvalidProof(format!(
                    "block {} is past the verified length {new_length}",
                    b.index
                )));
            }
            None => None,
        };
        // stored sorted and once each at the end of the batch (proofs of neighbouring blocks
        // repeat nodes)
        for n in &verified.nodes {
            if flat_tree::right_span(n.index) < 2 * new_length {
                ctx.nodes.insert(n.index, *n);
            }
        }
        if let (Some(i), Some(b)) = (block, &data.block) {
            self.storage().block_put(wtxn, id, i, &b.value)?;
            ctx.downloads.push((i, b.value.len() as u64));
        }
        if let Some(m) = new_manifest {
            self.store_manifest(wtxn, m)?;
            ctx.verifier = verifier;
            ctx.manifest_known = true;
            ctx.manifest_learned = true;
        }
        if upgraded_to.is_some() {
            self.storage()
                .head_put(wtxn, id, &head_record(&tree, tree.hash()))?;
            ctx.state = tree;
            ctx.upgraded = true;
        }
        Ok(Applied { upgraded_to, block })
    }
}

impl Log {
    fn flush_nodes(&self, wtxn: &mut RwTxn<'_>, ctx: &mut ApplyCtx) -> Result<()> {
        if ctx.nodes.is_empty() {
            return Ok(());
        }
        let nodes: Vec<Node> = std::mem::take(&mut ctx.nodes).into_values().collect();
        self.storage().nodes_put_sorted(wtxn, self.inner.id, &nodes)
    }

    /// The writer rewrote history: `data` is a signed upgrade from length 0 on a newer fork.
    /// Keeps the longest prefix of local blocks whose subtrees the new tree's roots still cover
    /// with the same hashes (the common ancestor, to a root's granularity), drops the rest and
    /// moves to the new signed state; the dropped blocks are downloaded again on the new fork.
    fn apply_reorg(
        &self,
        wtxn: &mut RwTxn<'_>,
        ctx: &mut ApplyCtx,
        data: &Data,
    ) -> Result<Applied> {
        let verified = proof::verify_fully_remote(&ctx.verifier, data)?;
        let tree = verified.tree;
        let old = ctx.state.clone();
        let id = self.inner.id;
        // what this batch proved so far is stored first, so that the cut applies to it too
        self.flush_nodes(wtxn, ctx)?;
        let mut ancestor = 0;
        {
            let reader = TxnNodes {
                storage: self.storage(),
                txn: wtxn,
                id,
            };
            for r in &tree.roots {
                let end = flat_tree::right_span(r.index) / 2 + 1;
                if end > old.length {
                    break;
                }
                match reader.node(r.index)? {
                    Some(n) if n.hash == r.hash && n.size == r.size => ancestor = end,
                    _ => break,
                }
            }
        }
        self.cut(wtxn, ancestor, old.length)?;
        for n in &verified.nodes {
            if flat_tree::right_span(n.index) < 2 * tree.length {
                self.storage().node_put(wtxn, id, n)?;
            }
        }
        self.storage()
            .head_put(wtxn, id, &head_record(&tree, tree.hash()))?;
        let length = tree.length;
        ctx.reorg = Some(Reorg {
            fork: tree.fork,
            ancestor,
            old_length: old.length,
        });
        ctx.state = tree;
        ctx.upgraded = true;
        Ok(Applied {
            upgraded_to: Some(length),
            block: None,
        })
    }
}

/// A move to a newer fork made while applying proofs.
#[derive(Debug, Clone, Copy)]
struct Reorg {
    fork: u64,
    /// Blocks kept (below this every block is the same on both forks).
    ancestor: u64,
    old_length: u64,
}

/// What a batch of applied proofs has changed so far (committed only at the end).
struct ApplyCtx {
    state: TreeState,
    verifier: Verifier,
    manifest_known: bool,
    /// The manifest became known in this batch.
    manifest_learned: bool,
    upgraded: bool,
    downloads: Vec<(u64, u64)>,
    reorg: Option<Reorg>,
    /// Nodes proven by the batch so far, stored (sorted) before it commits.
    nodes: std::collections::BTreeMap<u64, Node>,
}

/// The nodes a batch has proven but not stored yet, in front of the stored tree.
struct PendingNodes<'a, 'b, 't> {
    pending: &'a std::collections::BTreeMap<u64, Node>,
    stored: TxnNodes<'b, 't>,
}

impl NodeReader for PendingNodes<'_, '_, '_> {
    fn node(&self, index: u64) -> Result<Option<Node>> {
        match self.pending.get(&index) {
            Some(n) => Ok(Some(*n)),
            None => self.stored.node(index),
        }
    }
}

/// Events buffered per subscriber before a slow one starts missing them (it then sees `Lagged`).
const EVENT_BUFFER: usize = 1024;

/// The end of the run of stored blocks that starts at `from` (capped at `length`).
fn contiguous_from(
    storage: &crate::storage::Storage,
    txn: &ReadTxn<'_>,
    id: u64,
    from: u64,
    length: u64,
) -> Result<u64> {
    storage.contiguous_end(txn, id, from, length)
}

fn head_record(t: &TreeState, tree_hash: Hash) -> HeadRecord {
    HeadRecord {
        fork: t.fork,
        length: t.length,
        byte_length: t.byte_length,
        tree_hash,
        signature: t.signature.clone(),
    }
}

/// A read-only view of a log frozen at one length. Reads fail with [`Error::SnapshotStale`] once
/// a truncation has replaced blocks the snapshot covers.
#[derive(Clone, Debug)]
pub struct Snapshot {
    log: Log,
    tree: TreeState,
}

impl Snapshot {
    /// Length at the time of the snapshot.
    pub fn length(&self) -> u64 {
        self.tree.length
    }

    /// Byte length at the time of the snapshot.
    pub fn byte_length(&self) -> u64 {
        self.tree.byte_length
    }

    /// Fork at the time of the snapshot.
    pub fn fork(&self) -> u64 {
        self.tree.fork
    }

    /// The tree hash at the snapshot's length.
    pub fn tree_hash(&self) -> Hash {
        self.tree.hash()
    }

    fn valid_below(&self) -> u64 {
        let t = self.log.inner.truncations.read().unwrap_or_else(poisoned);
        t.iter()
            .filter(|(fork, _)| *fork > self.tree.fork)
            .map(|(_, len)| *len)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Reads block `index` as of the snapshot.
    pub fn get(&self, index: u64) -> Result<Vec<u8>> {
        if index >= self.tree.length {
            return Err(Error::OutOfBounds(format!(
                "block {index} of a snapshot with {} blocks",
                self.tree.length
            )));
        }
        let valid = self.valid_below();
        if index >= valid {
            return Err(Error::SnapshotStale(valid));
        }
        self.log.get(index)
    }

    /// Maps a byte offset to `(block, offset)` as of the snapshot.
    pub fn seek(&self, bytes: u64) -> Result<(u64, u64)> {
        if self.valid_below() < self.tree.length {
            return Err(Error::SnapshotStale(self.valid_below()));
        }
        let txn = self.log.storage().read()?;
        self.tree.seek(&self.log.nodes(&txn), bytes)
    }
}

/// The leaf hash of every block `datas` carry, in order, several per SIMD pass.
pub(crate) fn leaf_hashes(datas: &[Data]) -> Vec<Hash> {
    let values: Vec<&[u8]> = datas
        .iter()
        .filter_map(|d| d.block.as_ref().map(|b| b.value.as_slice()))
        .collect();
    crypto::leaf_hashes_simd(&values)
}

#[cfg(test)]
mod tests {
    use crate::store::{Durability, Store, StoreOptions};

    #[test]
    fn a_batch_hashed_beforehand_makes_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            dir.path(),
            StoreOptions {
                durability: Durability::NoSync,
                ..Default::default()
            },
        )
        .unwrap();
        let blocks: Vec<Vec<u8>> = (0..40u32)
            .map(|i| vec![i as u8; 1000 + i as usize * 37])
            .collect();
        let plain = store.named_log("plain").unwrap();
        let hashed = store.named_log("hashed").unwrap();
        plain.append_batch(&blocks[..25]).unwrap();
        plain.append_batch(&blocks[25..]).unwrap();
        let hashes = crate::crypto::leaf_hashes(&blocks);
        hashed
            .append_batch_hashed(&blocks[..25], &hashes[..25])
            .unwrap();
        // a count that does not match is refused and changes nothing
        let err = hashed
            .append_batch_hashed(&blocks[25..], &hashes[25..39])
            .unwrap_err();
        assert!(
            err.to_string().contains("14 leaf hashes for 15 blocks"),
            "{err}"
        );
        assert_eq!(hashed.length(), 25);
        hashed
            .append_batch_hashed(&blocks[25..], &hashes[25..])
            .unwrap();
        assert_eq!(hashed.length(), plain.length());
        assert_eq!(hashed.byte_length(), plain.byte_length());
        // the same tree: equal hashes at every length, and proofs that verify
        for len in [1, 24, 25, 26, 40] {
            assert_eq!(
                hashed.tree_hash(Some(len)).unwrap(),
                plain.tree_hash(Some(len)).unwrap()
            );
        }
        assert_eq!(hashed.get(33).unwrap(), blocks[33]);
    }
}

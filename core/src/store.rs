//! A store: one directory, one LMDB environment, many logs.
//!
//! Like the reference's corestore, a store has a primary key from which named logs derive their
//! key pairs, so a log named `"db"` in a store with a given primary key has the same key here and in
//! corestore 7.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::crypto::{self, Hash, KeyPair};
use crate::error::{Error, Result};
use crate::log::{Log, LogInner};
use crate::manifest::{Manifest, Verifier};
use crate::storage::{CoreRecord, STORE_VERSION, Storage, hex};

/// How durable a commit is. See `core/DESIGN.md`.
pub use dat_lmdb::Sync as Durability;

/// Options for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Durability of each commit (default: [`Durability::Full`], survives power loss).
    pub durability: Durability,
    /// Largest size the store may grow to, in bytes (address space reserved, not disk used).
    pub map_size: usize,
    /// The primary key to use when the store is created (random otherwise). Ignored when the store
    /// exists and already has one; a mismatch is an error.
    pub primary_key: Option<[u8; 32]>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            map_size: if cfg!(target_pointer_width = "64") {
                1 << 40
            } else {
                1 << 30
            },
            primary_key: None,
        }
    }
}

/// Options for a new writable log.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Key the log by the Ed25519 public key (hypercore 10 style) instead of a manifest hash.
    pub compat: bool,
    /// The key pair to sign with (random when absent).
    pub key_pair: Option<KeyPair>,
}

pub(crate) struct StoreInner {
    pub(crate) storage: Storage,
    pub(crate) path: PathBuf,
    primary_key: [u8; 32],
    open: Mutex<HashMap<Hash, Weak<LogInner>>>,
    /// Discovery keys of logs as they are opened (replication attaches them to connections).
    opened: tokio::sync::broadcast::Sender<Hash>,
}

/// A directory of logs. Cheap to clone; all clones share one environment.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// `crypto.namespace('corestore', 1)[0]`.
fn corestore_ns() -> Hash {
    crypto::namespace("corestore", 1)[0]
}

/// The default namespace of a corestore (32 zero bytes).
pub const DEFAULT_NAMESPACE: Hash = [0u8; 32];

/// The key pair corestore 7 derives for `name` in namespace `ns` from `primary_key`.
pub fn derive_key_pair(primary_key: &[u8; 32], ns: &Hash, name: &str) -> KeyPair {
    let seed = crypto::keyed_hash(primary_key, &[&corestore_ns(), ns, name.as_bytes()]);
    KeyPair::from_seed(&seed)
}

impl Store {
    /// Opens (or creates) the store in directory `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the store in directory `path`.
    pub fn open_with(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let storage = Storage::open(&path, opts.map_size, opts.durability)?;
        let mut txn = storage.write()?;
        match storage.meta_get(&txn, "version")? {
            Some(v) => {
                let found = u32::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                    Error::Corrupt("the store version record is not 4 bytes".into())
                })?);
                if found != STORE_VERSION {
                    return Err(Error::UnsupportedVersion {
                        found,
                        supported: STORE_VERSION,
                    });
                }
            }
            None => storage.meta_put(&mut txn, "version", &STORE_VERSION.to_le_bytes())?,
        }
        let primary_key = match storage.meta_get(&txn, "primary-key")? {
            Some(k) => {
                let k: [u8; 32] = k
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Corrupt("the primary key record is not 32 bytes".into()))?;
                if let Some(want) = opts.primary_key
                    && want != k
                {
                    return Err(Error::InvalidArgument(
                        "the store already has a different primary key".into(),
                    ));
                }
                k
            }
            None => {
                let k = opts
                    .primary_key
                    .unwrap_or_else(|| KeyPair::generate().seed());
                storage.meta_put(&mut txn, "primary-key", &k)?;
                k
            }
        };
        txn.commit()?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                storage,
                path,
                primary_key,
                open: Mutex::new(HashMap::new()),
                opened: tokio::sync::broadcast::channel(1024).0,
            }),
        })
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The primary key from which named logs derive their keys.
    pub fn primary_key(&self) -> [u8; 32] {
        self.inner.primary_key
    }

    /// Creates a new writable log with a fresh (or the given) key pair.
    pub fn create_log(&self, opts: LogOptions) -> Result<Log> {
        let kp = opts.key_pair.unwrap_or_else(KeyPair::generate);
        self.writable(kp, opts.compat, None)
    }

    /// The writable log named `name` in the default namespace, created on first use.
    pub fn named_log(&self, name: &str) -> Result<Log> {
        self.named_log_in(&DEFAULT_NAMESPACE, name)
    }

    /// The writable log named `name` in namespace `ns`, created on first use.
    pub fn named_log_in(&self, ns: &Hash, name: &str) -> Result<Log> {
        let txn = self.inner.storage.read()?;
        if let Some(dk) = self.inner.storage.name_get(&txn, ns, name)? {
            drop(txn);
            return self
                .by_discovery_key(&dk)?
                .ok_or_else(|| Error::Corrupt(format!("name {name:?} points at a missing log")));
        }
        drop(txn);
        let kp = derive_key_pair(&self.inner.primary_key, ns, name);
        self.writable(kp, false, Some((ns, name)))
    }

    /// A writable log keyed by the hash of `manifest`, signed with `kp` (which must be one of
    /// its signers). Hyperdrive's content log is made this way: the drive's key pair under a
    /// manifest with its own signer namespace. Opening it again returns the same log.
    pub fn create_log_with_manifest(&self, manifest: Manifest, kp: KeyPair) -> Result<Log> {
        if !manifest
            .signers
            .iter()
            .any(|s| s.public_key == kp.public_key())
        {
            return Err(Error::InvalidManifest(
                "the key pair is not one of the manifest's signers".into(),
            ));
        }
        Verifier::new(manifest.hash(), manifest.clone())?;
        self.writable_with(kp, false, None, manifest)
    }

    fn writable(&self, kp: KeyPair, compat: bool, name: Option<(&Hash, &str)>) -> Result<Log> {
        let manifest = Manifest::default_signer(kp.public_key());
        self.writable_with(kp, compat, name, manifest)
    }

    fn writable_with(
        &self,
        kp: KeyPair,
        compat: bool,
        name: Option<(&Hash, &str)>,
        manifest: Manifest,
    ) -> Result<Log> {
        let key = if compat {
            kp.public_key()
        } else {
            manifest.hash()
        };
        let dk = crypto::discovery_key(&key);
        if let Some(log) = self.by_discovery_key(&dk)? {
            return Ok(log);
        }
        let mut txn = self.inner.storage.write()?;
        if self.inner.storage.core_get(&txn, &dk)?.is_some() {
            // another handle created it meanwhile
            drop(txn);
            return self
                .by_discovery_key(&dk)?
                .ok_or_else(|| Error::Corrupt("a log vanished right after creation".into()));
        }
        let id = self.next_id(&mut txn)?;
        let rec = CoreRecord {
            id,
            key,
            manifest: Some(manifest),
            secret_seed: Some(kp.seed()),
        };
        self.inner.storage.core_put(&mut txn, &dk, &rec)?;
        if let Some((ns, name)) = name {
            self.inner.storage.name_put(&mut txn, ns, name, &dk)?;
        }
        txn.commit()?;
        self.by_discovery_key(&dk)?
            .ok_or_else(|| Error::Corrupt("a log vanished right after creation".into()))
    }

    /// Opens the log with `key`: the local one if the store has it, or else a new, empty, read-only
    /// log that fills by verified proofs from peers. `manifest` is needed to verify a
    /// manifest-keyed log's signatures; it may also arrive later inside a proof.
    pub fn open_log(&self, key: &[u8; 32], manifest: Option<Manifest>) -> Result<Log> {
        let dk = crypto::discovery_key(key);
        if let Some(log) = self.by_discovery_key(&dk)? {
            if let Some(m) = manifest {
                log.set_manifest(m)?;
            }
            return Ok(log);
        }
        if let Some(m) = &manifest {
            Verifier::new(*key, m.clone())?;
        }
        let mut txn = self.inner.storage.write()?;
        if self.inner.storage.core_get(&txn, &dk)?.is_some() {
            // another handle created it meanwhile
            drop(txn);
            return self
                .by_discovery_key(&dk)?
                .ok_or_else(|| Error::Corrupt("a log vanished right after creation".into()));
        }
        let id = self.next_id(&mut txn)?;
        let rec = CoreRecord {
            id,
            key: *key,
            manifest,
            secret_seed: None,
        };
        self.inner.storage.core_put(&mut txn, &dk, &rec)?;
        txn.commit()?;
        self.by_discovery_key(&dk)?
            .ok_or_else(|| Error::Corrupt("a log vanished right after creation".into()))
    }

    /// Discovery keys of logs as they are opened in this store (not reopened while a handle to
    /// them is alive). Connections made with [`crate::replication::driver`] use it to
    /// replicate logs opened after they started, as corestore does.
    pub fn subscribe_opened(&self) -> tokio::sync::broadcast::Receiver<Hash> {
        self.inner.opened.subscribe()
    }

    /// The log with discovery key `dk`, if the store holds it.
    pub fn by_discovery_key(&self, dk: &Hash) -> Result<Option<Log>> {
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(inner) = open.get(dk).and_then(Weak::upgrade) {
            return Ok(Some(Log::from_inner(inner)));
        }
        let txn = self.inner.storage.read()?;
        let Some(rec) = self.inner.storage.core_get(&txn, dk)? else {
            return Ok(None);
        };
        let log = Log::load(self.inner.clone(), *dk, rec, &txn).map_err(|e| match e {
            Error::Corrupt(m) => Error::Corrupt(format!("log {}: {m}", hex(dk))),
            e => e,
        })?;
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(*dk, log.downgrade());
        drop(open);
        let _ = self.inner.opened.send(*dk);
        Ok(Some(log))
    }

    /// The keys of every log in the store.
    pub fn keys(&self) -> Result<Vec<[u8; 32]>> {
        let txn = self.inner.storage.read()?;
        Ok(self
            .inner
            .storage
            .core_list(&txn)?
            .into_iter()
            .map(|(_, r)| r.key)
            .collect())
    }

    fn next_id(&self, txn: &mut dat_lmdb::heed::RwTxn) -> Result<u64> {
        let id = match self.inner.storage.meta_get(txn, "next-id")? {
            Some(b) => u64::from_le_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| Error::Corrupt("the next-id record is not 8 bytes".into()))?,
            ),
            None => 1,
        };
        self.inner
            .storage
            .meta_put(txn, "next-id", &(id + 1).to_le_bytes())?;
        Ok(id)
    }
}

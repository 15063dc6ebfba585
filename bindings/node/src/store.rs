//! `Store`: a directory of logs and drives, and its replication (`listen`, `connect`).

use std::sync::{Arc, Mutex};

use dat_core::replication::driver::{self, ReplicationHandle};
use dat_core::replication::{ConnectionEvent, ConnectionOptions};
use dat_core::{Durability, StoreOptions as CoreStoreOptions};
use napi::Status;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use tokio::sync::{broadcast, watch};

use crate::drive::{Drive, DriveOptions};
use crate::error::{Result, blocking, coded, invalid, js, key32};
use crate::life::Life;
use crate::log::{Core, CoreOptions};

/// Options of `new Store(path, options)`.
#[napi(object)]
pub struct StoreOptions {
    /// `'full'` (default: every commit survives power loss), `'nometasync'` or `'nosync'`
    /// (survives process crashes, as the JavaScript reference's storage).
    pub durability: Option<String>,
    /// The primary key named logs and drives derive their keys from (random for a new store).
    pub primary_key: Option<Buffer>,
}

/// Options of `store.listen()` and `store.connect()`.
#[napi(object)]
pub struct ReplicateOptions {
    /// For logs the peer opens here: fetch only what is read or prioritized (default false).
    pub sparse: Option<bool>,
}

/// What a store shares with the cores, drives and connections made from it.
pub(crate) struct StoreShared {
    path: String,
    opts: std::result::Result<CoreStoreOptions, String>,
    cell: tokio::sync::OnceCell<dat_core::Store>,
    pub(crate) life: Arc<Life>,
    /// Events of every connection of the store (cores pick theirs by discovery key).
    pub(crate) events: broadcast::Sender<ConnectionEvent>,
    conns: Mutex<Vec<Arc<ConnShared>>>,
}

impl StoreShared {
    /// The opened core store (opened on first use).
    pub(crate) async fn store(&self) -> Result<dat_core::Store> {
        self.life.check()?;
        let store = self
            .cell
            .get_or_try_init(|| async {
                let opts = self.opts.clone().map_err(invalid)?;
                let path = self.path.clone();
                blocking(move || dat_core::Store::open_with(path, opts)).await
            })
            .await?;
        Ok(store.clone())
    }

    fn add_conn(&self, handle: ReplicationHandle) -> Arc<ConnShared> {
        let life = self.life.child("connection");
        let (ended_tx, ended) = watch::channel(None);
        let conn = Arc::new(ConnShared {
            life: life.clone(),
            ended,
        });
        // subscribed now, before this returns: the connection's first events are not missed
        let rx = handle.subscribe();
        napi::bindgen_prelude::spawn(run_conn(handle, rx, life, self.events.clone(), ended_tx));
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| !c.life.is_closed() && c.ended.borrow().is_none());
        conns.push(conn.clone());
        conn
    }
}

/// Owns one connection: forwards its events to the store's stream until it ends (closed here,
/// by the peer, or failed; the core then reports `peer-remove` for the logs still paired on it),
/// then reports how it ended.
async fn run_conn(
    mut handle: ReplicationHandle,
    mut rx: broadcast::Receiver<ConnectionEvent>,
    life: Arc<Life>,
    tx: broadcast::Sender<ConnectionEvent>,
    ended: watch::Sender<Option<std::result::Result<(), String>>>,
) {
    let forward = |ev: ConnectionEvent| {
        let _ = tx.send(ev);
    };
    let result = loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => forward(ev),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                // the handle holds a sender: not before it is consumed below
                Err(broadcast::error::RecvError::Closed) => {}
            },
            () = life.wait() => {
                if handle.is_finished() {
                    break handle.join().await.map_err(|e| js(e).reason);
                }
                // closed here: an error now only says how the peer behaved before the close
                let _ = handle.close().await;
                break Ok(());
            }
            // ended on its own (the peer closed it, or it failed)
            () = handle.finished() => break handle.join().await.map_err(|e| js(e).reason),
        }
    };
    // the events the connection sent before it ended
    while let Ok(ev) = rx.try_recv() {
        forward(ev);
    }
    ended.send_replace(Some(result));
}

/// A directory holding many logs and drives (one LMDB environment). Opened on first use; call
/// `await store.ready()` to open it now, `await store.close()` when done.
#[napi]
pub struct Store {
    shared: Arc<StoreShared>,
}

#[napi]
impl Store {
    /// A store in directory `path` (created if missing).
    #[napi(constructor)]
    pub fn new(path: String, options: Option<StoreOptions>) -> Self {
        let opts = parse_options(options);
        Store {
            shared: Arc::new(StoreShared {
                path,
                opts,
                cell: tokio::sync::OnceCell::new(),
                life: Life::root("store"),
                events: broadcast::channel(1024).0,
                conns: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Opens the store (every other call does so too).
    #[napi]
    pub async fn ready(&self) -> Result<()> {
        self.shared.store().await.map(drop)
    }

    /// The store's directory.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.shared.path.clone()
    }

    /// The primary key (null before `ready()`).
    #[napi(getter)]
    pub fn primary_key(&self) -> Option<Buffer> {
        self.shared
            .cell
            .get()
            .map(|s| Buffer::from(s.primary_key().to_vec()))
    }

    /// True once `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.life.is_closed()
    }

    /// A log (a Hypercore): `{ name }` for the writable log of that name, `{ key }` for a log
    /// of this store or one that fills from peers (`sparse: true` to fetch only what is read
    /// or prioritized), nothing for a new writable log with a random key.
    #[napi]
    pub fn core(&self, options: Option<CoreOptions>) -> Result<Core> {
        self.shared.life.check()?;
        Core::new(self.shared.clone(), options.unwrap_or_default())
    }

    /// A drive (a Hyperdrive): nothing for the store's own drive, `{ name }` for a writable
    /// drive of that name, `{ key, sparse, timeout }` for a drive of this store or a remote
    /// one.
    #[napi]
    pub fn drive(&self, options: Option<DriveOptions>) -> Result<Drive> {
        self.shared.life.check()?;
        Drive::new(self.shared.clone(), options.unwrap_or_default())
    }

    /// Listens for peers on `address` (default `127.0.0.1:0`) and replicates every log of
    /// the store with each one that connects.
    #[napi]
    pub async fn listen(
        &self,
        address: Option<String>,
        options: Option<ReplicateOptions>,
    ) -> Result<Server> {
        let store = self.shared.store().await?;
        let addr = address.unwrap_or_else(|| "127.0.0.1:0".into());
        let mut server = driver::listen(&store, &addr, conn_options(options))
            .await
            .map_err(js)?;
        let address = server.local_addr().to_string();
        let life = self.shared.life.child("server");
        let shared = self.shared.clone();
        let until = life.clone();
        napi::bindgen_prelude::spawn(async move {
            loop {
                tokio::select! {
                    h = server.accept() => match h {
                        Some(h) => { shared.add_conn(h); }
                        None => break,
                    },
                    () = until.wait() => break,
                }
            }
            server.close().await;
        });
        Ok(Server { address, life })
    }

    /// Connects to a peer at `address` (`host:port`) and replicates every log of the store
    /// with it (logs opened later join too).
    #[napi]
    pub async fn connect(
        &self,
        address: String,
        options: Option<ReplicateOptions>,
    ) -> Result<Connection> {
        let store = self.shared.store().await?;
        let h = self
            .shared
            .life
            .guard(async {
                driver::connect(&store, &address, conn_options(options))
                    .await
                    .map_err(js)
            })
            .await?;
        let shared = self.shared.add_conn(h);
        Ok(Connection {
            shared,
            remote_address: address,
        })
    }

    /// Closes the store: its connections and servers end, and every call on it or on what
    /// was made from it fails with `ECLOSED` (streams end).
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.shared.life.close();
        let conns: Vec<_> =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for c in conns {
            c.close().await;
        }
        Ok(())
    }
}

fn parse_options(options: Option<StoreOptions>) -> std::result::Result<CoreStoreOptions, String> {
    let mut opts = CoreStoreOptions::default();
    let Some(o) = options else {
        return Ok(opts);
    };
    if let Some(d) = o.durability {
        opts.durability = match d.as_str() {
            "full" => Durability::Full,
            "nometasync" => Durability::NoMetaSync,
            "nosync" => Durability::NoSync,
            other => {
                return Err(format!(
                    "durability is 'full', 'nometasync' or 'nosync', not {other:?}"
                ));
            }
        };
    }
    if let Some(k) = o.primary_key {
        opts.primary_key = Some(key32(&k).map_err(|e| e.reason)?);
    }
    Ok(opts)
}

fn conn_options(options: Option<ReplicateOptions>) -> ConnectionOptions {
    ConnectionOptions {
        sparse: options.and_then(|o| o.sparse).unwrap_or(false),
        ..Default::default()
    }
}

/// A listening replication server (`store.listen()`).
#[napi]
pub struct Server {
    address: String,
    life: Arc<Life>,
}

#[napi]
impl Server {
    /// The bound address, `host:port` (pass it to `store.connect()`).
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// The bound port.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Stops accepting peers (connections already made go on until the store closes).
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.life.close();
        Ok(())
    }
}

pub(crate) struct ConnShared {
    life: Arc<Life>,
    /// How the connection ended (`None` while it runs): `Err` with the error that ended it.
    ended: watch::Receiver<Option<std::result::Result<(), String>>>,
}

impl ConnShared {
    async fn close(&self) {
        self.life.close();
        let _ = self.ended.clone().wait_for(Option::is_some).await;
    }
}

/// A replication connection to a peer (`store.connect()`).
#[napi]
pub struct Connection {
    shared: Arc<ConnShared>,
    remote_address: String,
}

#[napi]
impl Connection {
    /// The address connected to.
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.remote_address.clone()
    }

    /// True once the connection ended (closed here, by the peer, or by a failure).
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.life.is_closed() || self.shared.ended.borrow().is_some()
    }

    /// Resolves when the connection ends: closed here or by the peer; rejects with the error
    /// that ended it when the peer misbehaved or the link failed (`EPROTO`, `EHANDSHAKE`,
    /// `ECONNRESET`, ...).
    #[napi]
    pub async fn done(&self) -> Result<()> {
        let mut rx = self.shared.ended.clone();
        let ended = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| coded("ECLOSED", "the connection is closed"))?;
        match ended.as_ref() {
            Some(Err(msg)) => Err(napi::Error::new(Status::GenericFailure, msg.clone())),
            _ => Ok(()),
        }
    }

    /// Closes the connection (the peer sees it end); resolves once it has.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.shared.close().await;
        Ok(())
    }
}

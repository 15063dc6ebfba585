//! `libdat.Store`, and replication over TCP: `Server` (`store.listen`) and `Connection`
//! (`store.connect`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};

use dat_core::drive::{Drive as CoreDrive, DriveOptions};
use dat_core::replication::ConnectionOptions;
use dat_core::replication::driver::{self, ReplicationHandle};
use dat_core::{Durability, LogOptions, StoreOptions};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::drive::Drive;
use crate::errors::{Result, closed, invalid};
use crate::events::{Events, Filter, Hub, Source, Subscription};
use crate::log::{Log, key_arg};
use crate::runtime::{self, block_on, runtime};

/// Something `Store.close()` releases: a core object held by a Python object, so that the store's
/// files are closed (and the directory can be opened again) even while Python objects remain.
pub trait Release: Send + Sync {
    fn release(&self);
}

impl<T: Send + Sync> Release for RwLock<Option<T>> {
    fn release(&self) {
        self.write().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl<T: Send> Release for Mutex<Option<T>> {
    fn release(&self) {
        self.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// A core object of a Python object, until the store closes.
pub struct Slot<T>(Arc<RwLock<Option<T>>>);

impl<T: Clone> Slot<T> {
    /// The object; `ClosedError` once the store is closed.
    pub fn get(&self) -> Result<T> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(closed)
    }
}

/// What every object made from one `libdat.Store` shares: the core store while it is open, its
/// connections and servers, and its events.
pub struct StoreState {
    store: Mutex<Option<dat_core::Store>>,
    path: PathBuf,
    closed: watch::Sender<bool>,
    pub hub: Hub,
    connections: Mutex<Vec<Arc<ConnInner>>>,
    servers: Mutex<Vec<Arc<ServerInner>>>,
    /// What `close()` releases.
    held: Mutex<Vec<Weak<dyn Release>>>,
}

impl StoreState {
    /// Holds `value` for a Python object until the store closes.
    pub fn slot<T: Send + Sync + 'static>(&self, value: T) -> Slot<T> {
        let slot = Arc::new(RwLock::new(Some(value)));
        self.hold(Arc::downgrade(&slot) as Weak<dyn Release>);
        Slot(slot)
    }

    /// Releases `held` when the store closes.
    pub fn hold(&self, held: Weak<dyn Release>) {
        let mut all = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= 64 && all.len().is_power_of_two() {
            all.retain(|w| w.strong_count() > 0);
        }
        all.push(held);
    }

    /// The core store; `ClosedError` after `close()`.
    pub fn store(&self) -> Result<dat_core::Store> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(closed)
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// `ClosedError` once the store is closed.
    pub fn check(&self) -> Result<()> {
        if self.is_closed() {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// Becomes true when the store closes.
    pub fn closed_watch(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// A log opened through this store: its events join the store's.
    pub fn adopt_log(self: &Arc<Self>, log: dat_core::Log) -> Result<Log> {
        self.hub.watch_log(&log)?;
        Ok(Log::new(self.clone(), log))
    }

    /// A drive opened through this store: the events of both its logs join the store's.
    pub fn adopt_drive(self: &Arc<Self>, drive: CoreDrive) -> Result<Drive> {
        for log in [drive.metadata_log(), drive.content_log()] {
            self.hub.watch_log(log)?;
        }
        Ok(Drive::new(self.clone(), drive))
    }

    fn add_connection(&self, handle: ReplicationHandle) -> Result<Arc<ConnInner>> {
        let events = handle.subscribe();
        let conn = Arc::new(ConnInner {
            handle: Mutex::new(Some(handle)),
        });
        let weak = Arc::downgrade(&conn);
        self.hub
            .watch_connection(events, move || weak.upgrade().is_some_and(|c| c.ended()))?;
        let mut conns = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| !c.is_finished());
        conns.push(conn.clone());
        Ok(conn)
    }
}

/// Connection options of the binding: each log's own mode (chosen when it is opened: `sparse`)
/// decides what it downloads, so a connection never turns a sparse log into a full one.
fn options() -> ConnectionOptions {
    ConnectionOptions {
        sparse: true,
        ..ConnectionOptions::default()
    }
}

/// A directory of logs and drives, stored in one LMDB environment.
///
/// `Store(path)` opens (or creates) the store in directory `path`. Use it as a context manager,
/// or call `close()`: that closes its connections and servers, and every log, drive and handle
/// made from it raises `ClosedError` afterwards.
#[pyclass(frozen, module = "libdat", name = "Store")]
pub struct Store {
    state: Arc<StoreState>,
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (path, *, durability="full", map_size=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        durability: &str,
        map_size: Option<usize>,
    ) -> Result<Self> {
        let durability = match durability {
            "full" => Durability::Full,
            "no-meta-sync" => Durability::NoMetaSync,
            "no-sync" => Durability::NoSync,
            other => {
                return Err(invalid(format!(
                    "durability must be \"full\", \"no-meta-sync\" or \"no-sync\", not {other:?}"
                )));
            }
        };
        let mut opts = StoreOptions {
            durability,
            ..StoreOptions::default()
        };
        if let Some(m) = map_size {
            opts.map_size = m;
        }
        let p = path.clone();
        let store = py.detach(move || dat_core::Store::open_with(&p, opts))?;
        Ok(Store {
            state: Arc::new(StoreState {
                store: Mutex::new(Some(store)),
                path,
                closed: watch::channel(false).0,
                hub: Hub::new(),
                connections: Mutex::default(),
                servers: Mutex::default(),
                held: Mutex::default(),
            }),
        })
    }

    /// The store's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.state.path.clone()
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.state.is_closed()
    }

    /// The keys of every log in the store.
    fn keys<'py>(&self, py: Python<'py>) -> Result<Vec<Bound<'py, PyBytes>>> {
        let store = self.state.store()?;
        let keys = py.detach(move || store.keys())?;
        Ok(keys.iter().map(|k| PyBytes::new(py, k)).collect())
    }

    /// A log. `name`: the writable log of that name (the key corestore 7 derives for it);
    /// `key`: the log with that key, local or remote (filled from peers; `sparse` fetches only
    /// what is read or prioritized, else the whole log); neither: a new writable log.
    #[pyo3(signature = (name=None, *, key=None, sparse=false))]
    fn core(
        &self,
        py: Python<'_>,
        name: Option<String>,
        key: Option<&Bound<'_, PyAny>>,
        sparse: bool,
    ) -> Result<Log> {
        let store = self.state.store()?;
        let key = key.map(key_arg).transpose()?;
        let log = py.detach(move || match (name, key) {
            (Some(_), Some(_)) => Err(dat_core::Error::InvalidArgument(
                "pass a name or a key, not both".into(),
            )),
            (Some(name), None) => store.named_log(&name),
            (None, Some(key)) => {
                let log = store.open_log(&key, None)?;
                if !log.writable() {
                    log.set_sparse(sparse);
                }
                Ok(log)
            }
            (None, None) => store.create_log(LogOptions::default()),
        })?;
        self.state.adopt_log(log)
    }

    /// A drive. No argument: the store's own writable drive (the same one every time, as
    /// Hyperdrive's default); `name`: a writable drive of its own under that name; `key`: the
    /// drive with that key, local or remote (a remote one waits up to `timeout` seconds for a
    /// peer to send its first version; `sparse` fetches only what is read). `timeout` is also how
    /// long reads of a remote drive wait for blocks (`None`: no limit).
    #[pyo3(signature = (name=None, *, key=None, sparse=false, timeout=30.0))]
    fn drive(
        &self,
        py: Python<'_>,
        name: Option<String>,
        key: Option<&Bound<'_, PyAny>>,
        sparse: bool,
        timeout: Option<f64>,
    ) -> Result<Drive> {
        let store = self.state.store()?;
        let key = key.map(key_arg).transpose()?;
        let timeout = runtime::timeout_arg(timeout)?;
        let drive = py.detach(move || match (name, key) {
            (Some(_), Some(_)) => Err(dat_core::Error::InvalidArgument(
                "pass a name or a key, not both".into(),
            )),
            (Some(name), None) => CoreDrive::create_named(&store, &name),
            // (the store's connections pick the drive's logs up as they open)
            (None, Some(key)) => CoreDrive::open(&store, &key, DriveOptions { sparse, timeout }),
            (None, None) => CoreDrive::create(&store),
        })?;
        self.state.adopt_drive(drive)
    }

    /// Listens on `address` ("host:port"; port 0 picks a free one) and replicates every log of
    /// the store with each peer that connects, until the server or the store is closed.
    #[pyo3(signature = (address="127.0.0.1:0"))]
    fn listen(&self, py: Python<'_>, address: &str) -> Result<Server> {
        let store = self.state.store()?;
        let mut server = block_on(py, driver::listen(&store, address, options()))??;
        let bound = server.local_addr().to_string();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let state = self.state.clone();
        let task = runtime()?.spawn(async move {
            let mut accepted: Vec<Arc<ConnInner>> = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    h = server.accept() => match h {
                        Some(h) => {
                            accepted.retain(|c| !c.is_finished());
                            if let Ok(c) = state.add_connection(h) {
                                accepted.push(c);
                            }
                        }
                        None => break,
                    },
                }
            }
            server.close().await;
            for c in accepted {
                if let Some(h) = c.take() {
                    let _ = h.close().await;
                }
            }
        });
        let inner = Arc::new(ServerInner {
            address: bound,
            running: Mutex::new(Some((stop, task))),
        });
        self.state
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(inner.clone());
        Ok(Server { inner })
    }

    /// Connects to `address` ("host:port") and replicates every log of the store with that peer
    /// (logs opened later join too), until the connection or the store is closed. Returns once
    /// the TCP connection is made; the handshake goes on in the background.
    fn connect(&self, py: Python<'_>, address: &str) -> Result<Connection> {
        let store = self.state.store()?;
        let handle = block_on(py, driver::connect(&store, address, options()))??;
        let inner = self.state.add_connection(handle)?;
        Ok(Connection { inner })
    }

    /// Calls `callback(event)` for each event named `event` ("download", "upload", "append",
    /// "peer-add", "peer-remove", "connected", "truncate", "clear"; "*" for all) of the logs
    /// opened through this store and of its connections, on a thread of the subscription's own.
    /// "peer-remove" comes for a log the peer stopped sharing, and for every log still shared
    /// when a connection ends.
    fn on(&self, event: String, callback: Py<PyAny>) -> Result<Subscription> {
        self.state.check()?;
        let names = if event == "*" { vec![] } else { vec![event] };
        let filter = Filter::new(names)?;
        let source = Source::Store(self.state.hub.subscribe());
        Subscription::start(&self.state, source, filter, callback)
    }

    /// The events of the logs opened through this store and of its connections, as an
    /// iterator (only those named in `types`, if any).
    #[pyo3(signature = (*types))]
    fn events(&self, types: Vec<String>) -> Result<Events> {
        self.state.check()?;
        let filter = Filter::new(types)?;
        let source = Source::Store(self.state.hub.subscribe());
        Ok(Events::new(self.state.clone(), source, filter))
    }

    /// Closes the store: its servers and connections end (waiting for them), event iterators and
    /// subscriptions stop, its files are closed (the directory may be opened again), and the
    /// store's objects raise `ClosedError` from now on. Closing a closed store does nothing.
    fn close(&self, py: Python<'_>) -> Result<()> {
        if self.state.closed.send_replace(true) {
            return Ok(());
        }
        let servers =
            std::mem::take(&mut *self.state.servers.lock().unwrap_or_else(|p| p.into_inner()));
        for s in servers {
            s.close(py)?;
        }
        let conns = std::mem::take(
            &mut *self
                .state
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for c in conns {
            if let Some(h) = c.take() {
                let _ = block_on(py, h.close())?;
            }
        }
        self.state
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let held = std::mem::take(&mut *self.state.held.lock().unwrap_or_else(|p| p.into_inner()));
        py.detach(|| {
            for h in held.iter().filter_map(Weak::upgrade) {
                h.release();
            }
        });
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> Result<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        let state = if self.state.is_closed() {
            " closed"
        } else {
            ""
        };
        format!("<libdat.Store {:?}{state}>", self.state.path)
    }
}

// ------------------------------------------------------------------------------ server

struct ServerInner {
    address: String,
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl ServerInner {
    fn close(&self, py: Python<'_>) -> Result<()> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, task)) = running {
            let _ = stop.send(());
            let _ = block_on(py, task)?;
        }
        Ok(())
    }
}

/// A TCP listener replicating its store with whoever connects (`store.listen()`).
#[pyclass(frozen, module = "libdat", name = "Server")]
pub struct Server {
    inner: Arc<ServerInner>,
}

#[pymethods]
impl Server {
    /// The address the server is bound to, "127.0.0.1:40123": give it to `store.connect()`.
    #[getter]
    fn address(&self) -> String {
        self.inner.address.clone()
    }

    /// Stops listening and closes the connections the server accepted (waiting for them).
    fn close(&self, py: Python<'_>) -> Result<()> {
        self.inner.close(py)
    }

    /// True after `close()` (or once the store closed).
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> Result<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        format!("<libdat.Server {}>", self.inner.address)
    }
}

// -------------------------------------------------------------------------- connection

/// One running connection of a store (connected, or accepted by a server).
pub struct ConnInner {
    handle: Mutex<Option<ReplicationHandle>>,
}

impl ConnInner {
    fn take(&self) -> Option<ReplicationHandle> {
        self.handle.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// True if the connection ended (the peer went away, or it failed) while its handle is
    /// still here.
    fn ended(&self) -> bool {
        self.handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(ReplicationHandle::is_finished)
    }

    fn is_finished(&self) -> bool {
        self.handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(ReplicationHandle::is_finished)
    }
}

/// An outgoing replication connection (`store.connect()`). It stays up until `close()` or the
/// store closes, whether or not this object is kept.
#[pyclass(frozen, module = "libdat", name = "Connection")]
pub struct Connection {
    inner: Arc<ConnInner>,
}

#[pymethods]
impl Connection {
    /// Closes the connection and waits for it to end; raises why it failed if it did (a peer
    /// that broke the protocol, ...). Closing a closed connection does nothing.
    fn close(&self, py: Python<'_>) -> Result<()> {
        match self.inner.take() {
            Some(h) => Ok(block_on(py, h.close())??),
            None => Ok(()),
        }
    }

    /// True once the connection ended (closed, or the peer went away).
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_finished()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> Result<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        let state = if self.inner.is_finished() {
            "closed"
        } else {
            "open"
        };
        format!("<libdat.Connection {state}>")
    }
}

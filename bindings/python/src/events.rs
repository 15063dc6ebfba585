//! Events as Python objects: an iterator with a bounded buffer (`store.events()`,
//! `log.events()`) and callbacks on a thread of their own (`store.on()`, `log.on()`).
//!
//! A store's events come from the logs opened through it and from its connections, merged into
//! one broadcast channel (the [`Hub`]). Every buffer is a tokio broadcast ring (1024 events); a
//! reader that falls behind gets one `"lagged"` event with the number of events it missed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use dat_core::crypto::Hash;
use dat_core::replication::ConnectionEvent;
use dat_core::{Log, LogEvent};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, oneshot};

use crate::errors::{Error, Result, invalid};
use crate::runtime::{self, block_on, dispatch, runtime};
use crate::store::StoreState;

/// An event of a log or of a connection, as the core reports it.
#[derive(Debug, Clone)]
pub enum Ev {
    /// From the log with this discovery key.
    Log(Hash, LogEvent),
    /// From a connection.
    Conn(ConnectionEvent),
    /// The reader missed this many events.
    Lagged(u64),
}

/// The names `on()` and `events()` accept.
pub const NAMES: [&str; 9] = [
    "append",
    "download",
    "truncate",
    "clear",
    "connected",
    "peer-add",
    "peer-remove",
    "upload",
    "lagged",
];

/// Something that happened to a log or a connection. Attributes that the event's `type` does
/// not use are `None`.
#[pyclass(frozen, module = "libdat", name = "Event")]
#[derive(Debug, Clone)]
pub struct Event {
    /// `"append"`, `"download"`, `"truncate"`, `"clear"`, `"connected"`, `"peer-add"`,
    /// `"peer-remove"`, `"upload"` or `"lagged"`.
    #[pyo3(get, name = "type")]
    kind: &'static str,
    key: Option<Hash>,
    #[pyo3(get)]
    index: Option<u64>,
    #[pyo3(get)]
    bytes: Option<u64>,
    #[pyo3(get)]
    length: Option<u64>,
    #[pyo3(get)]
    byte_length: Option<u64>,
    #[pyo3(get)]
    fork: Option<u64>,
    #[pyo3(get)]
    peer: Option<u64>,
    #[pyo3(get)]
    start: Option<u64>,
    #[pyo3(get)]
    end: Option<u64>,
    #[pyo3(get)]
    count: Option<u64>,
}

impl Event {
    fn new(kind: &'static str, key: Option<Hash>) -> Self {
        Event {
            kind,
            key,
            index: None,
            bytes: None,
            length: None,
            byte_length: None,
            fork: None,
            peer: None,
            start: None,
            end: None,
            count: None,
        }
    }

    /// The Python event for `ev`; `None` for kinds this version does not know.
    fn from_ev(ev: &Ev) -> Option<Event> {
        Some(match ev {
            Ev::Log(dk, ev) => {
                let key = Some(*dk);
                match *ev {
                    LogEvent::Append {
                        length,
                        byte_length,
                    } => Event {
                        length: Some(length),
                        byte_length: Some(byte_length),
                        ..Event::new("append", key)
                    },
                    LogEvent::Download { index, bytes, peer } => Event {
                        index: Some(index),
                        bytes: Some(bytes),
                        peer: Some(peer),
                        ..Event::new("download", key)
                    },
                    LogEvent::Truncate { length, fork } => Event {
                        length: Some(length),
                        fork: Some(fork),
                        ..Event::new("truncate", key)
                    },
                    LogEvent::Clear { start, end } => Event {
                        start: Some(start),
                        end: Some(end),
                        ..Event::new("clear", key)
                    },
                    _ => return None,
                }
            }
            Ev::Conn(ev) => match *ev {
                ConnectionEvent::Connected { remote_public_key } => {
                    Event::new("connected", Some(remote_public_key))
                }
                ConnectionEvent::PeerAdd { discovery_key } => {
                    Event::new("peer-add", Some(discovery_key))
                }
                ConnectionEvent::PeerRemove { discovery_key } => {
                    Event::new("peer-remove", Some(discovery_key))
                }
                ConnectionEvent::Upload {
                    discovery_key,
                    index,
                } => Event {
                    index: Some(index),
                    ..Event::new("upload", Some(discovery_key))
                },
                _ => return None,
            },
            Ev::Lagged(n) => Event {
                count: Some(*n),
                ..Event::new("lagged", None)
            },
        })
    }
}

#[pymethods]
impl Event {
    /// The discovery key of the log concerned; for `"connected"`, the peer's public key.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.key.map(|k| PyBytes::new(py, &k))
    }

    fn __repr__(&self) -> String {
        let mut parts = vec![format!("type={:?}", self.kind)];
        let fields = [
            ("index", self.index),
            ("bytes", self.bytes),
            ("length", self.length),
            ("byte_length", self.byte_length),
            ("fork", self.fork),
            ("peer", self.peer),
            ("start", self.start),
            ("end", self.end),
            ("count", self.count),
        ];
        for (name, v) in fields {
            if let Some(v) = v {
                parts.push(format!("{name}={v}"));
            }
        }
        format!("Event({})", parts.join(", "))
    }
}

// ------------------------------------------------------------------------------------ hub

/// How often a connection's event forwarder checks whether the connection ended on its own.
const ENDED_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The events of a store: its logs' and its connections', in one channel.
pub struct Hub {
    tx: broadcast::Sender<Ev>,
    /// One receiver per watched log, only to recognise its channel (a log reopened after all
    /// its handles were dropped has a new channel).
    watched: Mutex<Vec<broadcast::Receiver<LogEvent>>>,
}

impl Hub {
    pub fn new() -> Self {
        Hub {
            tx: broadcast::channel(1024).0,
            watched: Mutex::new(Vec::new()),
        }
    }

    /// Forwards `log`'s events (once per log, however often it is opened).
    pub fn watch_log(&self, log: &Log) -> Result<()> {
        let rx = log.subscribe();
        {
            let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            watched.retain(|w| !w.is_closed());
            if watched.iter().any(|w| w.same_channel(&rx)) {
                return Ok(());
            }
            watched.push(rx.resubscribe());
        }
        let dk = log.discovery_key();
        let tx = self.tx.clone();
        forward(rx, tx, move |ev| Ev::Log(dk, ev))
    }

    /// Forwards a connection's events, until it ends (closed here, by the peer, or failed; the
    /// core then reports `peer-remove` for each log still paired on it). `ended()` tells whether the connection ended while its handle is still held; once the
    /// handle is dropped (`close()`), the channel closing says so.
    pub fn watch_connection(
        &self,
        mut rx: broadcast::Receiver<ConnectionEvent>,
        ended: impl Fn() -> bool + Send + 'static,
    ) -> Result<()> {
        let tx = self.tx.clone();
        runtime()?.spawn(async move {
            let send = |ev: ConnectionEvent| {
                // no subscriber is fine
                let _ = tx.send(Ev::Conn(ev));
            };
            let mut poll = tokio::time::interval(ENDED_POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(ev) => send(ev),
                        Err(RecvError::Lagged(n)) => {
                            let _ = tx.send(Ev::Lagged(n));
                        }
                        Err(RecvError::Closed) => break,
                    },
                    _ = poll.tick() => if ended() {
                        // the events the connection sent before it ended
                        loop {
                            match rx.try_recv() {
                                Ok(ev) => send(ev),
                                Err(TryRecvError::Lagged(n)) => {
                                    let _ = tx.send(Ev::Lagged(n));
                                }
                                Err(_) => break,
                            }
                        }
                        break;
                    },
                }
            }
        });
        Ok(())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Ev> {
        self.tx.subscribe()
    }
}

fn forward<E: Clone + Send + 'static>(
    mut rx: broadcast::Receiver<E>,
    tx: broadcast::Sender<Ev>,
    wrap: impl Fn(E) -> Ev + Send + 'static,
) -> Result<()> {
    runtime()?.spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => wrap(ev),
                Err(RecvError::Lagged(n)) => Ev::Lagged(n),
                Err(RecvError::Closed) => break,
            };
            // no subscriber is fine
            let _ = tx.send(ev);
        }
    });
    Ok(())
}

// --------------------------------------------------------------------------------- source

/// Where a reader takes its events from.
pub enum Source {
    /// A store's hub.
    Store(broadcast::Receiver<Ev>),
    /// One log.
    Log(Hash, broadcast::Receiver<LogEvent>),
}

impl Source {
    async fn recv(&mut self) -> Option<Ev> {
        let r = match self {
            Source::Store(rx) => rx.recv().await,
            Source::Log(dk, rx) => rx.recv().await.map(|ev| Ev::Log(*dk, ev)),
        };
        match r {
            Ok(ev) => Some(ev),
            Err(RecvError::Lagged(n)) => Some(Ev::Lagged(n)),
            Err(RecvError::Closed) => None,
        }
    }
}

/// Which event names a reader wants (`None`: all).
#[derive(Clone)]
pub struct Filter(Option<Vec<&'static str>>);

impl Filter {
    pub fn new(names: Vec<String>) -> Result<Filter> {
        if names.is_empty() {
            return Ok(Filter(None));
        }
        let mut out = Vec::new();
        for n in names {
            match NAMES.iter().find(|k| **k == n) {
                Some(k) => out.push(*k),
                None => {
                    return Err(invalid(format!(
                        "unknown event {n:?} (known: {})",
                        NAMES.join(", ")
                    )));
                }
            }
        }
        Ok(Filter(Some(out)))
    }

    fn pass(&self, ev: &Ev) -> Option<Event> {
        let e = Event::from_ev(ev)?;
        match &self.0 {
            Some(names) if !names.contains(&e.kind) => None,
            _ => Some(e),
        }
    }
}

// ------------------------------------------------------------------------------ iterator

/// Events as an iterator (`for event in store.events(): ...`, also `async for`). It ends when
/// it or its store is closed.
#[pyclass(frozen, module = "libdat", name = "Events")]
pub struct Events {
    state: Arc<StoreState>,
    source: Arc<tokio::sync::Mutex<Source>>,
    filter: Filter,
    pending: Arc<Mutex<VecDeque<Event>>>,
    ended: Arc<AtomicBool>,
}

impl Events {
    pub fn new(state: Arc<StoreState>, source: Source, filter: Filter) -> Events {
        Events {
            state,
            source: Arc::new(tokio::sync::Mutex::new(source)),
            filter,
            pending: Arc::default(),
            ended: Arc::default(),
        }
    }

    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire) || self.state.is_closed()
    }

    fn take(&self) -> Option<Event> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Waits up to `wait` for an event that passes the filter.
    async fn receive(
        source: &tokio::sync::Mutex<Source>,
        filter: &Filter,
        wait: std::time::Duration,
    ) -> std::result::Result<Option<Event>, ()> {
        let mut source = source.lock().await;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, source.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(()),
                Ok(Some(ev)) => {
                    if let Some(e) = filter.pass(&ev) {
                        return Ok(Some(e));
                    }
                }
            }
        }
    }

    fn next_until(
        &self,
        py: Python<'_>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<Event>> {
        loop {
            if let Some(e) = self.take() {
                return Ok(Some(e));
            }
            if self.is_ended() {
                return Ok(None);
            }
            let Some(slice) = runtime::next_slice(deadline) else {
                return Ok(None);
            };
            match block_on(py, Self::receive(&self.source, &self.filter, slice))? {
                Ok(Some(e)) => return Ok(Some(e)),
                Ok(None) => {}
                Err(()) => self.ended.store(true, Ordering::Release),
            }
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl Events {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Result<Option<Event>> {
        self.next_until(py, None)
    }

    /// The next event, waiting up to `timeout` seconds for one (`None`: no limit); `None` when
    /// none came in time or the iterator ended.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> Result<Option<Event>> {
        let t = runtime::timeout_arg(timeout)?;
        self.next_until(py, runtime::deadline(t))
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::anext(slf.as_any())
    }

    /// Stops the iterator (it then ends).
    fn close(&self) {
        self.ended.store(true, Ordering::Release);
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }

    // --- the protocol of libdat._aio.anext

    fn _take(&self) -> Option<Event> {
        self.take()
    }

    #[getter]
    fn _ended(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            && self.is_ended()
    }

    fn _poll(&self, wait: f64, done: Py<PyAny>) -> Result<()> {
        let wait = runtime::timeout_arg(Some(wait))?.unwrap_or(runtime::SLICE);
        let (source, filter, pending, ended) = (
            self.source.clone(),
            self.filter.clone(),
            self.pending.clone(),
            self.ended.clone(),
        );
        runtime()?.spawn(async move {
            match Self::receive(&source, &filter, wait).await {
                Ok(Some(e)) => pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back(e),
                Ok(None) => {}
                Err(()) => ended.store(true, Ordering::Release),
            }
            dispatch(move |py| runtime::call_reporting(py, &done, (py.None(), py.None())));
        });
        Ok(())
    }
}

// --------------------------------------------------------------------------- callbacks

/// A callback subscription (`store.on(...)`, `log.on(...)`). The callback runs on a thread of
/// the subscription's own, in event order, until `close()` or the store closes; dropping the
/// handle does not stop it.
#[pyclass(frozen, module = "libdat", name = "Subscription")]
pub struct Subscription {
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Subscription {
    pub fn start(
        state: &Arc<StoreState>,
        mut source: Source,
        filter: Filter,
        callback: Py<PyAny>,
    ) -> Result<Subscription> {
        let rt = runtime()?.handle().clone();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let mut closed = state.closed_watch();
        let thread = std::thread::Builder::new()
            .name("libdat-events".into())
            .spawn(move || {
                loop {
                    // The wait runs on the runtime; the callback runs here, holding the GIL, so
                    // it may call anything in libdat, blocking calls included.
                    let next = rt.block_on(async {
                        tokio::select! {
                            biased;
                            _ = &mut stopped => None,
                            _ = closed.wait_for(|c| *c) => None,
                            ev = source.recv() => ev,
                        }
                    });
                    let Some(ev) = next else { break };
                    let Some(event) = filter.pass(&ev) else {
                        continue;
                    };
                    if runtime::shutting_down() {
                        break;
                    }
                    let called = Python::try_attach(|py| {
                        runtime::call_reporting(py, &callback, (event,));
                    });
                    if called.is_none() {
                        break;
                    }
                }
                // the callback is released with the GIL held, or leaked at interpreter exit
                if !runtime::shutting_down() {
                    let _ = Python::try_attach(move |_py| drop(callback));
                }
            })
            .map_err(|e| Error::Core(dat_core::Error::Io(e)))?;
        Ok(Subscription {
            running: Mutex::new(Some((stop, thread))),
        })
    }
}

#[pymethods]
impl Subscription {
    /// Stops the callbacks. When this returns the callback is not running and will not be
    /// called again (unless this is called from inside the callback, which may do so).
    fn close(&self, py: Python<'_>) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, thread)) = running {
            let _ = stop.send(());
            if thread.thread().id() != std::thread::current().id() {
                // the thread may be waiting for the GIL to call back: release it while joining
                py.detach(|| {
                    let _ = thread.join();
                });
            }
        }
    }

    /// True until `close()` (or the store closed).
    #[getter]
    fn active(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(_, t)| !t.is_finished())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) {
        self.close(py);
    }
}

//! `Core`: a log (a Hypercore), its prioritized ranges, block streams and events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dat_core::replication::{ConnectionEvent, Prioritized};
use dat_core::scheduler::{Order, Prioritize};
use dat_core::{Log, LogEvent, LogOptions};
use napi::Status;
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use tokio::sync::{OnceCell, broadcast, watch};

use crate::error::{Result, blocking, coded, index, invalid, js, key32, num};
use crate::feed::Feed;
use crate::life::Life;
use crate::store::StoreShared;

/// Options of `store.core()`.
#[napi(object)]
#[derive(Default)]
pub struct CoreOptions {
    /// The writable log of this name (keys derived from the store's primary key, as corestore 7).
    pub name: Option<String>,
    /// The log with this key: local, or filled from peers.
    pub key: Option<Buffer>,
    /// For a log filled from peers: fetch only what is read or prioritized (default false:
    /// download all of it and follow it).
    pub sparse: Option<bool>,
    /// Default wait, in ms, of `get()` for a block not here yet (default: no limit).
    pub timeout: Option<i64>,
}

enum Spec {
    New,
    Named(String),
    Key([u8; 32], bool),
}

/// What a core shares with its ranges, streams and event iterators.
pub(crate) struct CoreShared {
    store: Arc<StoreShared>,
    spec: Spec,
    cell: OnceCell<Log>,
    pub(crate) life: Arc<Life>,
    timeout: Option<Duration>,
}

impl CoreShared {
    /// The opened log (opened on first use).
    pub(crate) async fn log(&self) -> Result<Log> {
        self.life.check()?;
        let log = self
            .cell
            .get_or_try_init(|| async {
                let store = self.store.store().await?;
                let spec = match &self.spec {
                    Spec::New => Spec::New,
                    Spec::Named(n) => Spec::Named(n.clone()),
                    Spec::Key(k, s) => Spec::Key(*k, *s),
                };
                blocking(move || match spec {
                    Spec::New => store.create_log(LogOptions::default()),
                    Spec::Named(name) => store.named_log(&name),
                    Spec::Key(key, sparse) => {
                        let log = store.open_log(&key, None)?;
                        if !log.writable() {
                            log.set_sparse(sparse);
                        }
                        Ok(log)
                    }
                })
                .await
            })
            .await?;
        Ok(log.clone())
    }

    fn opened(&self) -> Result<Log> {
        self.life.check()?;
        self.cell.get().cloned().ok_or_else(|| {
            coded(
                "ENOTREADY",
                "the core is not open yet: await core.ready() first",
            )
        })
    }
}

/// Waits until `log` has at least `n` blocks (a local append or a verified upgrade from a peer).
async fn wait_length(log: &Log, n: u64) {
    let mut events = log.subscribe();
    while log.length() < n {
        match events.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Reads block `i`; on a log filled from peers, fetches it when `wait` (the core asks the peers
/// for it, past the length it knows too, and waits for the log to reach it), for at most
/// `timeout`. A writable log never waits: what it lacks is gone.
async fn read_block(log: &Log, i: u64, wait: bool, timeout: Option<Duration>) -> Result<Vec<u8>> {
    if !wait || log.writable() {
        let log = log.clone();
        return blocking(move || log.get_local(i)).await;
    }
    log.get_async(i, timeout).await.map_err(js)
}

/// `{ length, byteLength }` after an append.
#[napi(object)]
pub struct AppendResult {
    /// The log's length after the append.
    pub length: i64,
    /// The log's byte length after the append.
    pub byte_length: i64,
}

/// Options of `core.get()`.
#[napi(object)]
pub struct GetOptions {
    /// Wait for a block that is not here yet (default true: fetch it from peers).
    pub wait: Option<bool>,
    /// How long to wait, in ms (default: the core's `timeout`, else no limit).
    pub timeout: Option<i64>,
}

/// Options of `core.prioritize()`.
#[napi(object)]
pub struct PrioritizeOptions {
    /// First block (default 0).
    pub start: Option<i64>,
    /// One past the last block; absent or -1: follow the log (the range never completes).
    pub end: Option<i64>,
    /// 0-7, 7 most urgent (default 4).
    pub priority: Option<u32>,
    /// Fetch in order from the first missing block.
    pub linear: Option<bool>,
    /// Midpoint first, then halves (for a search).
    pub bisect: Option<bool>,
    /// Also ask faster peers for blocks already requested from a slow one.
    pub hotswap: Option<bool>,
}

/// Options of `core.createReadStream()` (and `core.blocks()`).
#[napi(object)]
pub struct BlockStreamOptions {
    /// First block (default 0).
    pub start: Option<i64>,
    /// One past the last block (default: the length when the stream starts, or none if live).
    pub end: Option<i64>,
    /// Keep going as the log grows.
    pub live: Option<bool>,
    /// Wait for each missing block at most this long, in ms (default: the core's timeout).
    pub timeout: Option<i64>,
}

/// One event of a core (`core.on(name, ...)`).
#[napi(object)]
pub struct CoreEvent {
    /// `append`, `truncate`, `download`, `clear`, `upload`, `peer-add` or `peer-remove`.
    pub name: String,
    /// The block (download, upload).
    pub index: Option<i64>,
    /// The block's size (download).
    pub bytes: Option<i64>,
    /// The new length (append, truncate).
    pub length: Option<i64>,
    /// The new byte length (append).
    pub byte_length: Option<i64>,
    /// The new fork (truncate).
    pub fork: Option<i64>,
    /// First cleared block (clear).
    pub start: Option<i64>,
    /// One past the last cleared block (clear).
    pub end: Option<i64>,
    /// The peer a block came from (download; an id, 0 if unknown).
    pub peer: Option<i64>,
}

impl CoreEvent {
    fn named(name: &str) -> Self {
        CoreEvent {
            name: name.into(),
            index: None,
            bytes: None,
            length: None,
            byte_length: None,
            fork: None,
            start: None,
            end: None,
            peer: None,
        }
    }
}

fn ms(v: Option<i64>, what: &str) -> Result<Option<Duration>> {
    v.map(|t| index(t, what).map(Duration::from_millis))
        .transpose()
}

/// A log: a signed append-only list of blocks (a Hypercore 11). From `store.core()`.
#[napi]
pub struct Core {
    shared: Arc<CoreShared>,
}

impl Core {
    pub(crate) fn new(store: Arc<StoreShared>, o: CoreOptions) -> Result<Core> {
        let spec = match (o.name, o.key) {
            (Some(_), Some(_)) => return Err(invalid("give a core either a name or a key")),
            (Some(n), None) => Spec::Named(n),
            (None, Some(k)) => Spec::Key(key32(&k)?, o.sparse.unwrap_or(false)),
            (None, None) => Spec::New,
        };
        let life = store.life.child("core");
        Ok(Core {
            shared: Arc::new(CoreShared {
                store,
                spec,
                cell: OnceCell::new(),
                life,
                timeout: ms(o.timeout, "timeout")?,
            }),
        })
    }

    fn now(&self) -> Option<&Log> {
        self.shared.cell.get()
    }
}

#[napi]
impl Core {
    /// Opens the log (every other async call does so too; the getters need it).
    #[napi]
    pub async fn ready(&self) -> Result<()> {
        self.shared.log().await.map(drop)
    }

    /// Appends a block, or an array of blocks under one signature.
    #[napi]
    pub async fn append(&self, data: Either<Buffer, Vec<Buffer>>) -> Result<AppendResult> {
        let blocks: Vec<Vec<u8>> = match data {
            Either::A(b) => vec![b.to_vec()],
            Either::B(bs) => bs.iter().map(|b| b.to_vec()).collect(),
        };
        let log = self.shared.log().await?;
        let (length, byte_length) = blocking(move || log.append_batch(&blocks)).await?;
        Ok(AppendResult {
            length: num(length),
            byte_length: num(byte_length),
        })
    }

    /// Block `index`, verified. A block that is not here is fetched from peers (waiting for
    /// the log to reach it), unless `{ wait: false }` (`ENOTAVAILABLE`); `{ timeout }` in ms.
    #[napi]
    pub async fn get(&self, index_: i64, options: Option<GetOptions>) -> Result<Buffer> {
        let i = index(index_, "index")?;
        let wait = options.as_ref().and_then(|o| o.wait).unwrap_or(true);
        let timeout = ms(options.and_then(|o| o.timeout), "timeout")?.or(self.shared.timeout);
        let log = self.shared.log().await?;
        let block = self
            .shared
            .life
            .guard(read_block(&log, i, wait, timeout))
            .await?;
        Ok(block.into())
    }

    /// True when block `index` is stored here.
    #[napi]
    pub async fn has(&self, index_: i64) -> Result<bool> {
        let i = index(index_, "index")?;
        let log = self.shared.log().await?;
        if i >= log.length() {
            return Ok(false);
        }
        blocking(move || log.has(i)).await
    }

    /// `[block, offset]` of byte `byteOffset`.
    #[napi(ts_return_type = "Promise<[number, number]>")]
    pub async fn seek(&self, byte_offset: i64) -> Result<Vec<i64>> {
        let b = index(byte_offset, "byteOffset")?;
        let log = self.shared.log().await?;
        let (i, off) = blocking(move || log.seek(b)).await?;
        Ok(vec![num(i), num(off)])
    }

    /// Number of blocks (0 before `ready()`).
    #[napi(getter)]
    pub fn length(&self) -> i64 {
        self.now().map_or(0, |l| num(l.length()))
    }

    /// Number of bytes in all blocks.
    #[napi(getter)]
    pub fn byte_length(&self) -> i64 {
        self.now().map_or(0, |l| num(l.byte_length()))
    }

    /// Length of the prefix of blocks all stored here.
    #[napi(getter)]
    pub fn contiguous_length(&self) -> i64 {
        self.now().map_or(0, |l| num(l.contiguous_length()))
    }

    /// The fork id (grows with each truncation).
    #[napi(getter)]
    pub fn fork(&self) -> i64 {
        self.now().map_or(0, |l| num(l.fork()))
    }

    /// The log's key (null before `ready()`).
    #[napi(getter)]
    pub fn key(&self) -> Option<Buffer> {
        self.now().map(|l| Buffer::from(l.key().to_vec()))
    }

    /// The discovery key peers find the log by.
    #[napi(getter)]
    pub fn discovery_key(&self) -> Option<Buffer> {
        self.now().map(|l| Buffer::from(l.discovery_key().to_vec()))
    }

    /// True when this side can append.
    #[napi(getter)]
    pub fn writable(&self) -> bool {
        self.now().is_some_and(|l| l.writable())
    }

    /// True once the core or its store is closed.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.life.is_closed()
    }

    /// Fetches blocks `start..end` from peers; `await range.done()` resolves when all are
    /// here, `range.destroy()` (or `core.unprioritize(range)`) withdraws it. The core must be
    /// ready.
    #[napi(js_name = "prioritize")]
    pub fn prioritize_range(&self, options: Option<PrioritizeOptions>) -> Result<Range> {
        let log = self.shared.opened()?;
        let o = options.unwrap_or(PrioritizeOptions {
            start: None,
            end: None,
            priority: None,
            linear: None,
            bisect: None,
            hotswap: None,
        });
        let start = index(o.start.unwrap_or(0), "start")?;
        let end = match o.end {
            None | Some(-1) => None,
            Some(e) => Some(index(e, "end")?),
        };
        if end.is_some_and(|e| e < start) {
            return Err(invalid("end is before start"));
        }
        let priority = o.priority.unwrap_or(4);
        if priority > 7 {
            return Err(invalid("priority is 0-7"));
        }
        let order = match (o.linear.unwrap_or(false), o.bisect.unwrap_or(false)) {
            (true, true) => return Err(invalid("a range is linear or bisect, not both")),
            (true, false) => Order::Linear,
            (false, true) => Order::Bisect,
            (false, false) => Order::Random,
        };
        let p = log.prioritize(Prioritize {
            start,
            end,
            priority: priority as u8,
            order,
            hotswap: o.hotswap.unwrap_or(false),
        });
        let (tx, result) = watch::channel(None);
        p.on_done(move |r| {
            tx.send_replace(Some(r.map_err(|e| js(e).reason)));
        });
        Ok(Range {
            handle: Mutex::new(Some(p)),
            result,
            life: self.shared.life.child("range"),
        })
    }

    /// Withdraws a range (the same as `range.destroy()`).
    #[napi]
    pub fn unprioritize(&self, range: &Range) {
        range.destroy();
    }

    /// The blocks `start..end` in order (the native side of `createReadStream`); a block not
    /// here is fetched from peers.
    #[napi]
    pub fn blocks(&self, options: Option<BlockStreamOptions>) -> Result<BlockIterator> {
        self.shared.life.check()?;
        let (start, end, live, timeout) = match options {
            None => (0, None, false, None),
            Some(o) => (
                index(o.start.unwrap_or(0), "start")?,
                o.end.map(|e| index(e, "end")).transpose()?,
                o.live.unwrap_or(false),
                ms(o.timeout, "timeout")?,
            ),
        };
        Ok(BlockIterator {
            core: self.shared.clone(),
            state: tokio::sync::Mutex::new(BlockState {
                next: start,
                end,
                started: false,
                range: None,
            }),
            live,
            timeout: timeout.or(self.shared.timeout),
            life: self.shared.life.child("stream"),
        })
    }

    /// The core's events, from now on (the native side of `core.on()`). The core must be
    /// ready.
    #[napi]
    pub fn events(&self) -> Result<CoreEventIterator> {
        let log = self.shared.opened()?;
        let mut log_rx = log.subscribe();
        let mut conn_rx = self.shared.store.events.subscribe();
        let dk = log.discovery_key();
        let feed = Feed::new(
            self.shared.life.child("event stream"),
            256,
            Box::new(move |tx| {
                napi::bindgen_prelude::spawn(async move {
                    use broadcast::error::RecvError;
                    loop {
                        let ev = tokio::select! {
                            ev = log_rx.recv() => match ev {
                                Ok(ev) => log_event(ev),
                                Err(RecvError::Lagged(_)) => None,
                                Err(RecvError::Closed) => break,
                            },
                            ev = conn_rx.recv() => match ev {
                                Ok(ev) => conn_event(ev, &dk),
                                Err(RecvError::Lagged(_)) => None,
                                Err(RecvError::Closed) => break,
                            },
                            () = tx.closed() => break,
                        };
                        if let Some(ev) = ev
                            && tx.send(Ok(ev)).await.is_err()
                        {
                            break;
                        }
                    }
                });
            }),
        );
        Ok(CoreEventIterator { feed })
    }

    /// Closes this core: its streams end, its calls fail with `ECLOSED`.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.shared.life.close();
        Ok(())
    }
}

fn log_event(ev: LogEvent) -> Option<CoreEvent> {
    Some(match ev {
        LogEvent::Append {
            length,
            byte_length,
        } => CoreEvent {
            length: Some(num(length)),
            byte_length: Some(num(byte_length)),
            ..CoreEvent::named("append")
        },
        LogEvent::Truncate { length, fork } => CoreEvent {
            length: Some(num(length)),
            fork: Some(num(fork)),
            ..CoreEvent::named("truncate")
        },
        LogEvent::Download { index, bytes, peer } => CoreEvent {
            index: Some(num(index)),
            bytes: Some(num(bytes)),
            peer: Some(num(peer)),
            ..CoreEvent::named("download")
        },
        LogEvent::Clear { start, end } => CoreEvent {
            start: Some(num(start)),
            end: Some(num(end)),
            ..CoreEvent::named("clear")
        },
        _ => return None,
    })
}

fn conn_event(ev: ConnectionEvent, dk: &[u8; 32]) -> Option<CoreEvent> {
    match ev {
        ConnectionEvent::PeerAdd { discovery_key } if &discovery_key == dk => {
            Some(CoreEvent::named("peer-add"))
        }
        ConnectionEvent::PeerRemove { discovery_key } if &discovery_key == dk => {
            Some(CoreEvent::named("peer-remove"))
        }
        ConnectionEvent::Upload {
            discovery_key,
            index,
        } if &discovery_key == dk => Some(CoreEvent {
            index: Some(num(index)),
            ..CoreEvent::named("upload")
        }),
        _ => None,
    }
}

/// A prioritized range of a core (`core.prioritize()`).
#[napi]
pub struct Range {
    handle: Mutex<Option<Prioritized>>,
    result: watch::Receiver<Option<std::result::Result<(), String>>>,
    life: Arc<Life>,
}

#[napi]
impl Range {
    /// Resolves when every block of the range is here; rejects with `ECANCELED` if the range
    /// is withdrawn first (`ECLOSED` if the core closes).
    #[napi]
    pub async fn done(&self) -> Result<()> {
        let mut rx = self.result.clone();
        self.life
            .guard(async move {
                match rx.wait_for(Option::is_some).await {
                    Ok(v) => match v.as_ref() {
                        Some(Err(msg)) => Err(napi::Error::new(Status::GenericFailure, msg)),
                        _ => Ok(()),
                    },
                    Err(_) => Err(coded("ECANCELED", "cancelled: the range was withdrawn")),
                }
            })
            .await
    }

    /// True once every block of the range is here.
    #[napi(getter)]
    pub fn is_done(&self) -> bool {
        matches!(*self.result.borrow(), Some(Ok(())))
    }

    /// Withdraws the range: blocks no other range wants are no longer fetched; `done()`
    /// rejects with `ECANCELED` if it had not resolved.
    #[napi]
    pub fn destroy(&self) {
        let p = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(p) = p {
            p.unprioritize();
        }
    }
}

struct BlockState {
    next: u64,
    end: Option<u64>,
    started: bool,
    /// Prefetches the stream's blocks on a log filled from peers.
    range: Option<Prioritized>,
}

/// Blocks of a core in order (`core.blocks()`, behind `createReadStream`).
#[napi]
pub struct BlockIterator {
    core: Arc<CoreShared>,
    state: tokio::sync::Mutex<BlockState>,
    live: bool,
    timeout: Option<Duration>,
    life: Arc<Life>,
}

#[napi]
impl BlockIterator {
    /// The next block, or null at the end (or once closed).
    #[napi]
    pub async fn next(&self) -> Result<Option<Buffer>> {
        let mut st = self.state.lock().await;
        if self.life.is_closed() {
            st.range = None;
            return Ok(None);
        }
        let log = self.core.log().await?;
        if !st.started {
            st.started = true;
            if !self.live && st.end.is_none() {
                st.end = Some(log.length());
            }
            if !log.writable() {
                let spec = match st.end {
                    Some(e) => Prioritize::range(st.next, e.max(st.next)),
                    None => Prioritize::live(st.next),
                };
                st.range = Some(log.prioritize(spec.order(Order::Linear)));
            }
        }
        let i = st.next;
        if st.end.is_some_and(|e| i >= e) {
            st.range = None;
            return Ok(None);
        }
        let read = async {
            if self.live && log.writable() {
                wait_length(&log, i + 1).await;
            }
            read_block(&log, i, true, self.timeout).await
        };
        let block = tokio::select! {
            b = read => b?,
            () = self.life.wait() => {
                st.range = None;
                return Ok(None);
            }
        };
        st.next = i + 1;
        Ok(Some(block.into()))
    }

    /// Ends the stream.
    #[napi]
    pub fn close(&self) {
        self.life.close();
    }
}

/// A core's events (`core.events()`, behind `core.on()`); a slow reader loses the oldest.
#[napi]
pub struct CoreEventIterator {
    feed: Feed<CoreEvent>,
}

#[napi]
impl CoreEventIterator {
    /// The next event, or null once closed.
    #[napi]
    pub async fn next(&self) -> Result<Option<CoreEvent>> {
        self.feed.next().await
    }

    /// Stops the events.
    #[napi]
    pub fn close(&self) {
        self.feed.close();
    }
}

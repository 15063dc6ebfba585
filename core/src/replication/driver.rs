//! Runs [`Connection`]s over tokio byte streams: TCP, Unix sockets, in-memory pipes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::crypto::{Hash, KeyPair};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::store::Store;

use super::connection::{Connection, ConnectionEvent, ConnectionOptions, Received};

enum Command {
    Replicate(Log, bool),
    Close,
}

/// A running connection: send it commands, watch its events, wait for it to end.
#[derive(Debug)]
pub struct ReplicationHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<ConnectionEvent>,
    /// Subscribed at the start; handed to the first [`ReplicationHandle::subscribe`].
    first: std::sync::Mutex<Option<broadcast::Receiver<ConnectionEvent>>>,
    task: JoinHandle<Result<()>>,
    /// How the connection ended, once [`ReplicationHandle::finished`] saw it end.
    outcome: Option<Result<()>>,
}

impl ReplicationHandle {
    /// Replicates one more log on this connection.
    pub fn replicate(&self, log: &Log, sparse: bool) {
        let _ = self.commands.send(Command::Replicate(log.clone(), sparse));
    }

    /// Subscribes to the connection's events. The first subscriber gets every event since the
    /// connection started (the last [`EVENT_BUFFER`] of them, if it subscribes late), so a
    /// `PeerAdd` that comes before the caller subscribes is not lost; later subscribers get the
    /// events from the moment they subscribe.
    pub fn subscribe(&self) -> broadcast::Receiver<ConnectionEvent> {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first.take().unwrap_or_else(|| self.events.subscribe())
    }

    /// Closes the connection and waits for it to end.
    pub async fn close(self) -> Result<()> {
        let _ = self.commands.send(Command::Close);
        self.join().await
    }

    /// Waits for the connection to end (the peer closed it, or it failed).
    pub async fn join(mut self) -> Result<()> {
        self.finished().await;
        self.outcome.take().unwrap_or(Ok(()))
    }

    /// Waits for the connection to end without giving up the handle (so a caller can wait for
    /// the end and for something else at once, then still [`close`](Self::close) it); `join`
    /// then returns at once with how it ended. Cancel-safe.
    pub async fn finished(&mut self) {
        if self.outcome.is_none() {
            let r = (&mut self.task).await;
            self.outcome =
                Some(r.unwrap_or_else(|e| Err(Error::Io(std::io::Error::other(e.to_string())))));
        }
    }

    /// True once the connection has ended.
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some() || self.task.is_finished()
    }
}

/// How many connection events a subscriber that falls behind can have queued before it misses
/// the oldest (its next `recv` then reports how many it missed).
pub const EVENT_BUFFER: usize = 1024;

/// Starts replicating `logs` over `stream`. The returned handle ends when the stream closes or
/// the peer misbehaves (its error says why).
pub fn spawn<S>(conn: Connection, stream: S, logs: Vec<(Log, bool)>) -> ReplicationHandle
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (commands, rx) = mpsc::unbounded_channel();
    let (events, first) = broadcast::channel(EVENT_BUFFER);
    // subscribed before the task starts: a log opened right after `spawn` returns is not missed
    let opened = conn.store().subscribe_opened();
    let task = tokio::spawn(run(conn, stream, logs, rx, events.clone(), opened));
    ReplicationHandle {
        commands,
        events,
        first: std::sync::Mutex::new(Some(first)),
        task,
        outcome: None,
    }
}

async fn run<S>(
    mut conn: Connection,
    stream: S,
    logs: Vec<(Log, bool)>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: broadcast::Sender<ConnectionEvent>,
    mut opened: broadcast::Receiver<Hash>,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    // Writes go through their own task so a peer that is slow to read never stops this side
    // from reading (which could deadlock two peers sending to each other). The bytes handed to
    // it and not yet written are counted: past MAX_UNSENT, the peer's requests wait (see
    // `Connection::set_output_blocked`), so a peer that asks and never reads cannot make this
    // side hold its answers in memory.
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let unsent = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Notify::new());
    let writer = {
        let (unsent, drained) = (unsent.clone(), drained.clone());
        tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                let written = wr.write_all(&bytes).await;
                unsent.fetch_sub(bytes.len(), Ordering::AcqRel);
                drained.notify_one();
                written?;
            }
            wr.shutdown().await
        })
    };
    // hands the connection's output to the writer and pauses or resumes serving; false once
    // the writer is gone
    let send_out = |conn: &mut Connection| -> bool {
        let out = conn.take_output();
        if !out.is_empty() {
            unsent.fetch_add(out.len(), Ordering::AcqRel);
            if out_tx.send(out).is_err() {
                return false;
            }
        }
        conn.set_output_blocked(unsent.load(Ordering::Acquire) > MAX_UNSENT);
        true
    };
    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<Hash>();
    let mut watched = HashSet::new();
    let watch = |log: &Log, watched: &mut HashSet<Hash>| {
        let dk = log.discovery_key();
        if watched.insert(dk) {
            let mut sub = log.subscribe();
            let tx = changed_tx.clone();
            tokio::spawn(async move {
                loop {
                    // a download needs nothing from the connection (the scheduler already
                    // knows of it): only length, fork and clears do; what queued meanwhile goes
                    // into one notification
                    let mut changed = false;
                    match sub.recv().await {
                        Ok(ev) => changed |= !matches!(ev, crate::log::LogEvent::Download { .. }),
                        // lagging only means several changes were merged into one
                        Err(broadcast::error::RecvError::Lagged(_)) => changed = true,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    loop {
                        match sub.try_recv() {
                            Ok(ev) => {
                                changed |= !matches!(ev, crate::log::LogEvent::Download { .. })
                            }
                            Err(broadcast::error::TryRecvError::Lagged(_)) => changed = true,
                            Err(_) => break,
                        }
                    }
                    if changed && tx.send(dk).is_err() {
                        break;
                    }
                }
            });
        }
    };
    for (log, sparse) in &logs {
        conn.replicate(log, *sparse)?;
        watch(log, &mut watched);
    }
    // logs opened in the store later join this connection (as corestore does)
    let wake = conn.waker();
    let mut applying: Option<JoinHandle<(Result<()>, Received)>> = None;
    let mut ticks = tokio::time::interval(crate::scheduler::SchedulerOptions::default().tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 64 * 1024];
    let result: Result<()> = loop {
        if !send_out(&mut conn) {
            break Ok(());
        }
        while let Some(ev) = conn.next_event() {
            if let ConnectionEvent::PeerAdd { discovery_key } = &ev
                && !watched.contains(discovery_key)
                && let Some(log) = conn_store_log(&conn, discovery_key)
            {
                watch(&log, &mut watched);
            }
            let _ = events.send(ev);
        }
        // Input already read and not yet handled is handled before more is read: a peer whose
        // requests come faster than they are served (while it reads its answers, so serving
        // never pauses) is read no faster than it is served, at most `MAX_DEFERRED` ahead.
        let reading = conn.wants_input() && !conn.has_pending_input();
        let blocked = unsent.load(Ordering::Acquire) > MAX_UNSENT;
        tokio::select! {
            // the writer made progress: serving may resume (or reading, if it had stopped)
            () = drained.notified(), if blocked => {}
            n = rd.read(&mut buf), if reading => match n {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if let Err(e) = conn.receive_bounded(&buf[..n], SERVE_BUDGET) {
                        break Err(e);
                    }
                    // Take whatever else is already readable, so that the blocks of many reads
                    // are stored in one transaction.
                    let mut eof = false;
                    let mut failed = None;
                    let mut taken = n;
                    while taken < MAX_DEFERRED {
                        tokio::select! {
                            biased;
                            r = rd.read(&mut buf) => match r {
                                Ok(0) => { eof = true; break }
                                Ok(n) => {
                                    taken += n;
                                    if let Err(e) = conn.receive_bounded(&buf[..n], SERVE_BUDGET) {
                                        failed = Some(e);
                                        break;
                                    }
                                    // the answers go out as they are made, and count
                                    if !send_out(&mut conn) {
                                        eof = true;
                                        break;
                                    }
                                    if !conn.wants_input() {
                                        break;
                                    }
                                }
                                Err(_) => { eof = true; break }
                            },
                            () = std::future::ready(()) => break,
                        }
                    }
                    if let Some(e) = failed {
                        break Err(e);
                    }
                    if !send_out(&mut conn) {
                        break Ok(());
                    }
                    // Verify and store on a blocking thread while this task goes on reading:
                    // what arrives during one commit goes into the next.
                    if applying.is_none() {
                        applying = start_apply(&mut conn);
                    }
                    if eof {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e.into()),
            },
            // serve what an earlier read left, a budget at a time (its answers are already out)
            () = std::future::ready(()), if conn.has_pending_input() => {
                if let Err(e) = conn.resume(SERVE_BUDGET) {
                    break Err(e);
                }
                if applying.is_none() {
                    applying = start_apply(&mut conn);
                }
                tokio::task::yield_now().await;
            }
            done = async { applying.as_mut().expect("guarded").await }, if applying.is_some() => {
                applying = None;
                match done {
                    // the blocks are freed here, on the thread that read them
                    Ok((Ok(()), stored)) => drop(stored),
                    Ok((Err(e), _)) => break Err(e),
                    Err(e) => break Err(Error::Io(std::io::Error::other(e.to_string()))),
                }
                applying = start_apply(&mut conn);
                if let Err(e) = conn.poll_scheduler() {
                    break Err(e);
                }
            }
            dk = opened.recv() => match dk {
                Ok(dk) if !watched.contains(&dk) => {
                    if let Some(log) = conn_store_log(&conn, &dk) {
                        watch(&log, &mut watched);
                        if let Err(e) = conn.replicate(&log, true) {
                            break Err(e);
                        }
                    }
                }
                _ => {}
            },
            () = wake.notified() => {
                if let Err(e) = conn.poll_scheduler() {
                    break Err(e);
                }
            }
            _ = ticks.tick() => {
                if let Err(e) = conn.tick() {
                    break Err(e);
                }
            }
            Some(dk) = changed_rx.recv() => {
                if let Err(e) = conn.on_log_changed(&dk) {
                    break Err(e);
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Replicate(log, sparse)) => {
                    watch(&log, &mut watched);
                    if let Err(e) = conn.replicate(&log, sparse) {
                        break Err(e);
                    }
                }
                Some(Command::Close) | None => break Ok(()),
            },
        }
    };
    // what was received is still stored (a peer that failed is not trusted further)
    if let Some(h) = applying.take() {
        let _ = h.await;
    }
    if result.is_ok() {
        let rest = conn.take_received();
        if !rest.is_empty() {
            let _ = tokio::task::spawn_blocking(move || rest.apply()).await;
        }
    }
    send_out(&mut conn);
    drop(out_tx);
    let _ = writer.await;
    // the logs still shared are no longer: their `PeerRemove` goes out before the handle ends
    conn.end();
    while let Some(ev) = conn.next_event() {
        let _ = events.send(ev);
    }
    result
}

fn start_apply(conn: &mut Connection) -> Option<JoinHandle<(Result<()>, Received)>> {
    let work = conn.take_received();
    (!work.is_empty()).then(|| tokio::task::spawn_blocking(move || work.apply_kept()))
}

/// Bytes of replies (blocks served) queued before they are written out and the rest of a read's
/// requests served.
const SERVE_BUDGET: usize = 256 << 10;

/// Bytes handed to the writer and not yet written past which the peer's requests wait (a
/// peer that does not read its answers stops being served, not this side reading).
const MAX_UNSENT: usize = 16 << 20;

/// Bytes read before the received blocks are stored.
const MAX_DEFERRED: usize = 8 << 20;

fn conn_store_log(conn: &Connection, dk: &Hash) -> Option<Log> {
    conn.store().by_discovery_key(dk).ok().flatten()
}

/// A TCP listener replicating every log of a store with whoever connects.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
    connections: mpsc::UnboundedReceiver<ReplicationHandle>,
}

impl Server {
    /// The address the server is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next accepted connection.
    pub async fn accept(&mut self) -> Option<ReplicationHandle> {
        self.connections.recv().await
    }

    /// Stops accepting connections and waits until the listening socket is closed (the address
    /// can be bound again when this returns). Connections already accepted go on.
    pub async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Listens on `addr` and replicates every log of `store` with each peer that connects.
pub async fn listen(store: &Store, addr: &str, opts: ConnectionOptions) -> Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (tx, connections) = mpsc::unbounded_channel();
    let store = store.clone();
    let key_pair = KeyPair::generate();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let Ok(conn) = Connection::new(store.clone(), false, &key_pair, opts.clone()) else {
                continue;
            };
            let logs = all_logs(&store, opts.sparse);
            if tx.send(spawn(conn, stream, logs)).is_err() {
                break;
            }
        }
    });
    Ok(Server {
        local_addr,
        task,
        connections,
    })
}

/// Connects to `addr` and replicates every log of `store` with that peer.
pub async fn connect(
    store: &Store,
    addr: &str,
    opts: ConnectionOptions,
) -> Result<ReplicationHandle> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let conn = Connection::new(store.clone(), true, &KeyPair::generate(), opts.clone())?;
    Ok(spawn(conn, stream, all_logs(store, opts.sparse)))
}

fn all_logs(store: &Store, sparse: bool) -> Vec<(Log, bool)> {
    store
        .keys()
        .unwrap_or_default()
        .iter()
        .filter_map(|k| {
            store
                .by_discovery_key(&crate::crypto::discovery_key(k))
                .ok()
                .flatten()
        })
        .map(|l| (l, sparse))
        .collect()
}

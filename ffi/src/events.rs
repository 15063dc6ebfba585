//! Event subscriptions: a log's appends, downloads, truncations and clears, and a connection's
//! handshake, peers and uploads, delivered to a C callback from a library thread.

use std::ffi::c_void;
use std::thread::JoinHandle;

use dat_core::LogEvent;
use dat_core::replication::ConnectionEvent;
use tokio::sync::{broadcast, oneshot};

use crate::handle::{Castable, OwnershipBox, UserData, box_handle, out_ref, take_box, try_ref};
use crate::log::{dat_log, log_ref};
use crate::panic::{catch_or, catch_status};
use crate::replication::dat_connection;
use crate::runtime::runtime;
use crate::status::{Failure, dat_status};

/// What an event is about; the fields of `dat_event` it fills are listed with each.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum dat_event_kind {
    /// The signed length grew (a local append, or a verified upgrade from a peer):
    /// `length`, `byte_length`.
    DAT_EVENT_APPEND = 1,
    /// A block arrived from a peer and was verified and stored: `index`, `bytes` (its size),
    /// `peer` (an id of the connection it came from).
    DAT_EVENT_DOWNLOAD = 2,
    /// The log was truncated on a new fork: `length`, `fork`.
    DAT_EVENT_TRUNCATE = 3,
    /// Blocks `start .. end` were cleared locally: `start`, `end`.
    DAT_EVENT_CLEAR = 4,
    /// The subscriber fell behind and `count` events were dropped (it keeps receiving the
    /// newer ones).
    DAT_EVENT_LAGGED = 5,
    /// A connection's handshake completed: `key` is the peer's public key.
    DAT_EVENT_CONNECTED = 6,
    /// A log's channel paired with the peer: `key` is the log's discovery key.
    DAT_EVENT_PEER_ADD = 7,
    /// A log's channel closed: `key` is the log's discovery key.
    DAT_EVENT_PEER_REMOVE = 8,
    /// A block was sent to the peer: `key` (the log's discovery key), `index`.
    DAT_EVENT_UPLOAD = 9,
}

/// One event. Fields that its kind does not list are 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct dat_event {
    /// What happened.
    pub kind: dat_event_kind,
    /// A block index.
    pub index: u64,
    /// A length in blocks.
    pub length: u64,
    /// A length in bytes.
    pub byte_length: u64,
    /// A fork id.
    pub fork: u64,
    /// A block's size in bytes.
    pub bytes: u64,
    /// The id of the connection a block came from (0 if unknown).
    pub peer: u64,
    /// The first block of a range.
    pub start: u64,
    /// One past the last block of a range.
    pub end: u64,
    /// How many events were dropped.
    pub count: u64,
    /// A discovery key or a public key.
    pub key: [u8; 32],
}

impl dat_event {
    fn new(kind: dat_event_kind) -> Self {
        dat_event {
            kind,
            index: 0,
            length: 0,
            byte_length: 0,
            fork: 0,
            bytes: 0,
            peer: 0,
            start: 0,
            end: 0,
            count: 0,
            key: [0; 32],
        }
    }
}

fn from_log_event(ev: &LogEvent) -> Option<dat_event> {
    use dat_event_kind::*;
    Some(match *ev {
        LogEvent::Append {
            length,
            byte_length,
        } => dat_event {
            length,
            byte_length,
            ..dat_event::new(DAT_EVENT_APPEND)
        },
        LogEvent::Download { index, bytes, peer } => dat_event {
            index,
            bytes,
            peer,
            ..dat_event::new(DAT_EVENT_DOWNLOAD)
        },
        LogEvent::Truncate { length, fork } => dat_event {
            length,
            fork,
            ..dat_event::new(DAT_EVENT_TRUNCATE)
        },
        LogEvent::Clear { start, end } => dat_event {
            start,
            end,
            ..dat_event::new(DAT_EVENT_CLEAR)
        },
        // kinds this version does not know are not delivered
        _ => return None,
    })
}

fn from_connection_event(ev: &ConnectionEvent) -> Option<dat_event> {
    use dat_event_kind::*;
    Some(match *ev {
        ConnectionEvent::Connected { remote_public_key } => dat_event {
            key: remote_public_key,
            ..dat_event::new(DAT_EVENT_CONNECTED)
        },
        ConnectionEvent::PeerAdd { discovery_key } => dat_event {
            key: discovery_key,
            ..dat_event::new(DAT_EVENT_PEER_ADD)
        },
        ConnectionEvent::PeerRemove { discovery_key } => dat_event {
            key: discovery_key,
            ..dat_event::new(DAT_EVENT_PEER_REMOVE)
        },
        ConnectionEvent::Upload {
            discovery_key,
            index,
        } => dat_event {
            key: discovery_key,
            index,
            ..dat_event::new(DAT_EVENT_UPLOAD)
        },
        _ => return None,
    })
}

/// Called for each event: `userdata` first, then the event (valid during the call only).
pub type dat_event_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const dat_event)>;

/// An event subscription. Free it to unsubscribe.
pub struct dat_subscription {
    _private: [u8; 0],
}

impl Castable for dat_subscription {
    type Ownership = OwnershipBox;
    type RustType = Subscription;
}

/// What a `dat_subscription` points at.
pub(crate) struct Subscription {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread that delivers `rx`'s events to `cb`.
fn subscribe<E: Clone + Send + 'static>(
    mut rx: broadcast::Receiver<E>,
    convert: fn(&E) -> Option<dat_event>,
    cb: unsafe extern "C" fn(*mut c_void, *const dat_event),
    userdata: UserData,
) -> Result<Subscription, Failure> {
    let rt = runtime()?.handle().clone();
    let (stop, mut stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("dat-events".into())
        .spawn(move || {
            let userdata = userdata;
            loop {
                // The wait runs on the runtime; the callback runs outside it, so it may call any
                // libdat function, blocking ones included.
                let next = rt.block_on(async {
                    tokio::select! {
                        biased;
                        _ = &mut stopped => None,
                        r = rx.recv() => Some(r),
                    }
                });
                let ev = match next {
                    None | Some(Err(broadcast::error::RecvError::Closed)) => break,
                    Some(Ok(ev)) => match convert(&ev) {
                        Some(ev) => ev,
                        None => continue,
                    },
                    Some(Err(broadcast::error::RecvError::Lagged(n))) => dat_event {
                        count: n,
                        ..dat_event::new(dat_event_kind::DAT_EVENT_LAGGED)
                    },
                };
                // SAFETY: the caller's callback, called with their userdata and an event that
                // lives for the call, as the header documents.
                unsafe { cb(userdata.0, &ev) };
            }
        })
        .map_err(|e| Failure::from(std::io::Error::other(format!("no event thread: {e}"))))?;
    Ok(Subscription {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Subscribes to `log`'s events: `cb(userdata, event)` is called for each append, download,
/// truncation and clear, in order, on a thread of this subscription's own ("dat-events"); a
/// subscriber that falls far behind gets `DAT_EVENT_LAGGED`. Writes the subscription's handle to
/// `*out`; `dat_subscription_free` unsubscribes.
#[unsafe(no_mangle)]
pub extern "C" fn dat_log_subscribe(
    log: *const dat_log,
    cb: dat_event_cb,
    userdata: *mut c_void,
    out: *mut *mut dat_subscription,
) -> dat_status {
    catch_status(|| {
        let log = log_ref(log)?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let out = out_ref(out, "out")?;
        let sub = subscribe(log.subscribe(), from_log_event, cb, UserData(userdata))?;
        out.write(box_handle(sub));
        Ok(())
    })
}

/// Subscribes to `conn`'s events: the handshake (`DAT_EVENT_CONNECTED`), logs pairing and closing
/// (`DAT_EVENT_PEER_ADD`, `DAT_EVENT_PEER_REMOVE`) and blocks sent (`DAT_EVENT_UPLOAD`), on a
/// thread of this subscription's own, as `dat_log_subscribe`. The first subscription to a
/// connection gets its events from the start (the handshake and the first pairings are not missed
/// when it subscribes after `dat_replicator_connect` returns); later ones get the events from the
/// moment they subscribe. A closed connection gives `DAT_CANCELLED`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_connection_subscribe(
    conn: *const dat_connection,
    cb: dat_event_cb,
    userdata: *mut c_void,
    out: *mut *mut dat_subscription,
) -> dat_status {
    catch_status(|| {
        // SAFETY: `conn` is NULL or a live connection handle.
        let conn = unsafe { try_ref(conn, "conn") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let out = out_ref(out, "out")?;
        let rx = conn
            .subscribe()
            .ok_or_else(|| Failure::new(dat_status::DAT_CANCELLED, "the connection is closed"))?;
        let sub = subscribe(rx, from_connection_event, cb, UserData(userdata))?;
        out.write(box_handle(sub));
        Ok(())
    })
}

/// Unsubscribes and frees the handle. When this returns the callback is not running and will not
/// be called again (unless this is called from inside the callback itself, which is allowed: the
/// callback then just returns as the last one). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_subscription_free(sub: *mut dat_subscription) {
    catch_or((), || {
        // SAFETY: `sub` is NULL or a live subscription handle, freed once (header contract).
        let Some(mut sub) = (unsafe { take_box(sub) }) else {
            return;
        };
        drop(sub.stop.take());
        if let Some(t) = sub.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    })
}

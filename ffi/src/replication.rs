//! Replication: a TCP server and client run on libdat's runtime (`dat_server`,
//! `dat_connection`), and a byte pump for callers that bring their own transport (`dat_pump`).

use std::collections::HashSet;
use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use dat_core::crypto::Hash;
use dat_core::replication::driver::{self, ReplicationHandle};
use dat_core::replication::{Connection, ConnectionEvent, ConnectionOptions};
use dat_core::{KeyPair, Log, LogEvent};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::bytes::dat_bytes;
use crate::handle::{
    Castable, OwnershipBox, box_handle, bytes_arg, free_box, out_ref, str_arg, take_box, try_mut,
    try_ref, write_c_str_whole,
};
use crate::log::{dat_log, log_ref};
use crate::panic::{catch_or, catch_status};
use crate::runtime::{block_on, runtime};
use crate::status::{Failure, dat_status};
use crate::store::{dat_store, store_ref};

/// Connection options of the C API: each log's own sparse setting decides what it fetches
/// (`dat_log_open_key` chooses it), so connections never turn a sparse log into a full one.
fn options() -> ConnectionOptions {
    ConnectionOptions {
        sparse: true,
        ..ConnectionOptions::default()
    }
}

/// One running connection of a store (connected, or accepted by a server).
pub(crate) struct Conn {
    handle: Mutex<Option<ReplicationHandle>>,
}

impl Conn {
    fn new(handle: ReplicationHandle) -> Arc<Conn> {
        Arc::new(Conn {
            handle: Mutex::new(Some(handle)),
        })
    }

    /// The connection's events, while it is open.
    pub(crate) fn subscribe(&self) -> Option<broadcast::Receiver<ConnectionEvent>> {
        let guard = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(ReplicationHandle::subscribe)
    }

    fn take(&self) -> Option<ReplicationHandle> {
        self.handle.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Closes the connection without waiting for it to end.
    fn close_in_background(&self) {
        if let Some(h) = self.take()
            && let Ok(rt) = runtime()
        {
            rt.spawn(async move {
                let _ = h.close().await;
            });
        }
    }
}

// ------------------------------------------------------------------------------------- server

/// A TCP listener replicating every log of its store with whoever connects. Thread-safe.
pub struct dat_server {
    _private: [u8; 0],
}

impl Castable for dat_server {
    type Ownership = OwnershipBox;
    type RustType = ServerHandle;
}

/// What a `dat_server` points at.
pub(crate) struct ServerHandle {
    address: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Listens on `address` ("host:port"; port 0 picks a free port) and replicates every log of
/// `store` with each peer that connects, on libdat's runtime, until `dat_server_free`. Writes the
/// server's handle to `*out`; `dat_server_address` tells the bound address.
#[unsafe(no_mangle)]
pub extern "C" fn dat_replicator_listen(
    store: *const dat_store,
    address: *const c_char,
    out: *mut *mut dat_server,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        // SAFETY: `address` is NULL or a NUL-terminated string (header contract).
        let address = unsafe { str_arg(address, "address") }?;
        let out = out_ref(out, "out")?;
        let mut server = block_on(driver::listen(&store.store, address, options()))??;
        let bound = server.local_addr().to_string();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = runtime()?.spawn(async move {
            let mut accepted: Vec<Arc<Conn>> = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    h = server.accept() => match h {
                        Some(h) => {
                            accepted.retain(|c| {
                                let guard = c.handle.lock().unwrap_or_else(|p| p.into_inner());
                                guard.as_ref().is_some_and(|h| !h.is_finished())
                            });
                            accepted.push(Conn::new(h));
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
        out.write(box_handle(ServerHandle {
            address: bound,
            stop: Some(stop),
            task: Some(task),
        }));
        Ok(())
    })
}

/// Writes the address the server is bound to ("127.0.0.1:40123") into `buf` (`len` bytes) as a
/// NUL-terminated string, and its length without the NUL to `*written`. 64 bytes always suffice;
/// a smaller buffer that cannot hold it gives `DAT_BUFFER_TOO_SMALL`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_server_address(
    server: *const dat_server,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> dat_status {
    catch_status(|| {
        // SAFETY: `server` is NULL or a live server handle.
        let server = unsafe { try_ref(server, "server") }?;
        let written = out_ref(written, "written")?;
        // SAFETY: `buf` is NULL or points at `len` writable bytes (header contract).
        let n = unsafe { write_c_str_whole(buf, len, &server.address) }?;
        written.write(n);
        Ok(())
    })
}

/// Stops listening, closes the connections the server accepted (waiting for them to end), and
/// frees the handle; the address can be bound again when this returns. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_server_free(server: *mut dat_server) {
    catch_or((), || {
        // SAFETY: `server` is NULL or a live server handle, freed once (header contract).
        let Some(mut server) = (unsafe { take_box(server) }) else {
            return;
        };
        if let Some(stop) = server.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = server.task.take() {
            // an Err means a call from inside the runtime (not from C): the task ends on its own
            let _ = block_on(task);
        }
    })
}

// --------------------------------------------------------------------------------- connection

/// An outgoing connection replicating every log of its store with one peer. Thread-safe.
pub struct dat_connection {
    _private: [u8; 0],
}

impl Castable for dat_connection {
    type Ownership = OwnershipBox;
    type RustType = Arc<Conn>;
}

/// Connects to `address` ("host:port") and replicates every log of `store` with that peer, on
/// libdat's runtime, until closed. Returns once the TCP connection is made (the handshake goes
/// on in the background) and writes the connection's handle to `*out`. Logs opened in `store`
/// later are replicated on the connection too.
#[unsafe(no_mangle)]
pub extern "C" fn dat_replicator_connect(
    store: *const dat_store,
    address: *const c_char,
    out: *mut *mut dat_connection,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        // SAFETY: `address` is NULL or a NUL-terminated string (header contract).
        let address = unsafe { str_arg(address, "address") }?;
        let out = out_ref(out, "out")?;
        let handle = block_on(driver::connect(&store.store, address, options()))??;
        out.write(box_handle(Conn::new(handle)));
        Ok(())
    })
}

/// Closes the connection and waits for it to end. `DAT_OK` if it ended cleanly, else why it
/// failed (a peer that broke the protocol, ...). Closing a closed connection is `DAT_OK`. Blocks
/// the calling thread.
#[unsafe(no_mangle)]
pub extern "C" fn dat_connection_close(conn: *const dat_connection) -> dat_status {
    catch_status(|| {
        // SAFETY: `conn` is NULL or a live connection handle.
        let conn = unsafe { try_ref(conn, "conn") }?;
        match conn.take() {
            Some(h) => Ok(block_on(h.close())??),
            None => Ok(()),
        }
    })
}

/// Frees a connection handle, closing the connection (without waiting) if it is open. NULL is
/// ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_connection_free(conn: *mut dat_connection) {
    catch_or((), || {
        // SAFETY: `conn` is NULL or a live connection handle, freed once (header contract).
        if let Some(conn) = unsafe { take_box(conn) } {
            conn.close_in_background();
        }
    })
}

// ------------------------------------------------------------------------------------ pump

/// One replication connection driven by the caller: feed it the bytes received from the peer
/// with `dat_pump_receive`, send the peer what `dat_pump_take_output` returns, and call
/// `dat_pump_tick` about every 100 ms. No libdat thread touches it. Not thread-safe: use it from
/// one thread at a time.
pub struct dat_pump {
    _private: [u8; 0],
}

impl Castable for dat_pump {
    type Ownership = OwnershipBox;
    type RustType = Pump;
}

/// What a `dat_pump` points at.
pub(crate) struct Pump {
    conn: Connection,
    /// The event streams of the logs on this connection: a change is sent to the peer.
    watched: Vec<(Hash, broadcast::Receiver<LogEvent>)>,
    watched_keys: HashSet<Hash>,
    /// The first error; the pump is dead after it.
    failed: Option<String>,
}

impl Pump {
    fn watch(&mut self, log: &Log) {
        let dk = log.discovery_key();
        if self.watched_keys.insert(dk) {
            self.watched.push((dk, log.subscribe()));
        }
    }

    fn alive(&self) -> Result<(), Failure> {
        match &self.failed {
            Some(e) => Err(Failure::new(
                dat_status::DAT_CANCELLED,
                format!("the pump failed earlier: {e}"),
            )),
            None => Ok(()),
        }
    }

    /// Records the first error: the connection is over after any.
    fn check<T>(&mut self, r: dat_core::Result<T>) -> Result<T, Failure> {
        r.map_err(|e| {
            self.failed = Some(e.to_string());
            Failure::from(e)
        })
    }

    /// Sends what local changes and the schedulers call for, and watches logs the peer opened.
    fn poll(&mut self) -> Result<(), Failure> {
        while let Some(ev) = self.conn.next_event() {
            if let ConnectionEvent::PeerAdd { discovery_key } = ev
                && !self.watched_keys.contains(&discovery_key)
                && let Ok(Some(log)) = self.conn.store().by_discovery_key(&discovery_key)
            {
                self.watch(&log);
            }
        }
        let mut changed = Vec::new();
        for (dk, rx) in &mut self.watched {
            let mut any = false;
            // lagging only means several changes merged into one
            while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {
                any = true;
            }
            if any {
                changed.push(*dk);
            }
        }
        for dk in changed {
            let r = self.conn.on_log_changed(&dk);
            self.check(r)?;
        }
        let r = self.conn.poll_scheduler();
        self.check(r)
    }
}

fn pump_mut<'a>(pump: *mut dat_pump) -> Result<&'a mut Pump, Failure> {
    // SAFETY: `pump` is NULL or a live pump handle used by one thread at a time (header contract).
    let pump = unsafe { try_mut(pump, "pump") }?;
    pump.alive()?;
    Ok(pump)
}

/// A new connection of `store` driven by the caller; `is_initiator` is true on the side that
/// opened the transport (exactly one side must be). The peer may open any log `store` holds.
/// Writes the pump's handle to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_pump_new(
    store: *const dat_store,
    is_initiator: bool,
    out: *mut *mut dat_pump,
) -> dat_status {
    catch_status(|| {
        let store = store_ref(store)?;
        let out = out_ref(out, "out")?;
        let conn = Connection::new(
            store.store.clone(),
            is_initiator,
            &KeyPair::generate(),
            options(),
        )?;
        out.write(box_handle(Pump {
            conn,
            watched: Vec::new(),
            watched_keys: HashSet::new(),
            failed: None,
        }));
        Ok(())
    })
}

/// Replicates `log` on the pump's connection (its channel opens once the handshake is done).
/// `sparse` false also makes the log download everything (as `dat_log_open_key` with sparse
/// false); true leaves the log's setting as it is.
#[unsafe(no_mangle)]
pub extern "C" fn dat_pump_replicate(
    pump: *mut dat_pump,
    log: *const dat_log,
    sparse: bool,
) -> dat_status {
    catch_status(|| {
        let pump = pump_mut(pump)?;
        let log = log_ref(log)?;
        pump.watch(log);
        let r = pump.conn.replicate(log, sparse);
        pump.check(r)
    })
}

/// Feeds `len` bytes received from the peer: verified blocks are stored before this returns.
/// Any error means the peer broke the protocol (or the store failed): drop the transport and free
/// the pump; every later call on it fails with `DAT_CANCELLED`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_pump_receive(
    pump: *mut dat_pump,
    bytes: *const u8,
    len: usize,
) -> dat_status {
    catch_status(|| {
        let pump = pump_mut(pump)?;
        // SAFETY: `bytes` is NULL or points at `len` readable bytes (header contract).
        let bytes = unsafe { bytes_arg(bytes, len, "bytes") }?;
        let r = pump.conn.receive(bytes);
        pump.check(r)
    })
}

/// Writes the bytes to send to the peer into `*out` (possibly none: `out->len` 0; free it with
/// `dat_bytes_free` either way). Call it after every `dat_pump_receive`, `dat_pump_replicate`
/// and `dat_pump_tick`, and whenever a log of the connection changed (an append).
#[unsafe(no_mangle)]
pub extern "C" fn dat_pump_take_output(pump: *mut dat_pump, out: *mut dat_bytes) -> dat_status {
    catch_status(|| {
        let pump = pump_mut(pump)?;
        let out = out_ref(out, "out")?;
        pump.poll()?;
        out.write(dat_bytes::from_vec(pump.conn.take_output()));
        Ok(())
    })
}

/// Lets time pass for the request schedulers (timeouts, retries on other peers): call it about
/// every 100 ms, then `dat_pump_take_output`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_pump_tick(pump: *mut dat_pump) -> dat_status {
    catch_status(|| {
        let pump = pump_mut(pump)?;
        let r = pump.conn.tick();
        pump.check(r)
    })
}

/// Frees a pump. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_pump_free(pump: *mut dat_pump) {
    catch_or((), || {
        // SAFETY: `pump` is NULL or a live pump handle, freed once (header contract).
        unsafe { free_box(pump) }
    })
}

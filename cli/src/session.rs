//! Opening stores, drives and peers for a command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dat_core::Store;
use dat_core::drive::{Drive, DriveOptions};
use dat_core::replication::{ConnectionOptions, driver};
use tokio::runtime::Runtime;

use crate::{Failure, exit};

/// How long a command waits for a peer.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// `$XDG_DATA_HOME/libdat`, or `~/.local/share/libdat`.
pub fn default_store() -> Result<PathBuf, Failure> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("libdat"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/libdat")),
        None => Err(Failure::new(
            exit::USAGE,
            "no HOME or XDG_DATA_HOME to put the default store in; give --store PATH",
        )),
    }
}

/// Opens the store at `path`.
pub fn store(path: &Path) -> Result<Store, Failure> {
    Store::open(path).map_err(|e| {
        Failure::new(
            exit::ERROR,
            format!("cannot open the store at {}: {e}", path.display()),
        )
    })
}

/// The drive shared from folder `dir` (one drive per folder, named by its absolute path).
pub fn folder_drive(store: &Store, dir: &Path) -> Result<Drive, Failure> {
    let abs = std::fs::canonicalize(dir)
        .map_err(|e| Failure::new(exit::NOT_FOUND, format!("no folder {}: {e}", dir.display())))?;
    Ok(Drive::create_named(store, &abs.to_string_lossy())?)
}

/// A 32-byte key from 64 hex characters.
pub fn parse_key(s: &str) -> Result<[u8; 32], Failure> {
    let bytes = hex::decode(s.trim()).map_err(|_| {
        Failure::new(
            exit::USAGE,
            format!("bad key {s:?}: a drive key is 64 hexadecimal characters"),
        )
    })?;
    bytes.try_into().map_err(|_| {
        Failure::new(
            exit::USAGE,
            format!("bad key {s:?}: a drive key is 64 hexadecimal characters"),
        )
    })
}

/// A connection kept for the life of a command.
pub struct Peer {
    /// Held so the connection stays open (dropping it closes the connection).
    _handle: driver::ReplicationHandle,
}

/// Connects the store to `addr`.
pub fn connect(rt: &Runtime, store: &Store, addr: &str) -> Result<Peer, Failure> {
    let store = store.clone();
    let a = addr.to_string();
    let handle = rt
        .block_on(async move {
            tokio::time::timeout(
                PEER_TIMEOUT,
                driver::connect(
                    &store,
                    &a,
                    ConnectionOptions {
                        sparse: true,
                        ..Default::default()
                    },
                ),
            )
            .await
        })
        .map_err(|_| Failure::new(exit::NETWORK, format!("peer {addr} did not answer")))?
        .map_err(|e| Failure::new(exit::NETWORK, format!("cannot reach peer {addr}: {e}")))?;
    Ok(Peer { _handle: handle })
}

/// A drive named on the command line: a key (local, or fetched from `peer`) or a shared folder.
pub fn drive(
    rt: &Runtime,
    store: &Store,
    arg: &str,
    peer: Option<&str>,
    sparse: bool,
) -> Result<(Drive, Option<Peer>), Failure> {
    let looks_like_key = arg.len() == 64 && arg.chars().all(|c| c.is_ascii_hexdigit());
    if !looks_like_key {
        let p = Path::new(arg);
        if p.is_dir() {
            let d = folder_drive(store, p)?;
            if d.version() <= 1 {
                return Err(Failure::new(
                    exit::NOT_FOUND,
                    format!("{arg} has not been shared yet (run `dat share {arg}`)"),
                ));
            }
            return Ok((d, None));
        }
        parse_key(arg)?;
    }
    let key = parse_key(arg)?;
    let local = store
        .by_discovery_key(&dat_core::crypto::discovery_key(&key))?
        .is_some_and(|l| l.length() > 0);
    let conn = match peer {
        Some(addr) => Some(connect(rt, store, addr)?),
        None if local => None,
        None => {
            return Err(Failure::new(
                exit::NOT_FOUND,
                format!(
                    "no drive {arg} in the store at {}; give --peer HOST:PORT to fetch it",
                    store.path().display()
                ),
            ));
        }
    };
    // without a peer nothing can arrive: reads of blocks not stored here fail at once
    let timeout = if conn.is_some() {
        PEER_TIMEOUT
    } else {
        Duration::from_millis(1)
    };
    let d = Drive::open(
        store,
        &key,
        DriveOptions {
            sparse,
            timeout: Some(timeout),
        },
    )
    .map_err(|e| match e {
        dat_core::Error::Timeout(_) => Failure::new(
            exit::NETWORK,
            format!(
                "no peer sent drive {arg} within {}s",
                PEER_TIMEOUT.as_secs()
            ),
        ),
        e => e.into(),
    })?;
    // (the first signed length a peer sends is its latest: opening waited for it)
    Ok((d, conn))
}

/// Prints a JSON value as one line.
pub fn print_json(v: serde_json::Value) {
    outln!("{v}");
}

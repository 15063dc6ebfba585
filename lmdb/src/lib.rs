//! Opens LMDB environments for libdat.
//!
//! `heed` marks environment opening `unsafe` because LMDB memory-maps the file: undefined behaviour
//! follows if the file is changed behind LMDB's back. `dat-core` forbids unsafe code, so the single
//! call lives here, with the conditions under which it is sound written down.
#![deny(missing_docs)]

use std::path::Path;

pub use heed;
use heed::{Env, EnvFlags, EnvOpenOptions, WithoutTls};

/// How hard a commit pushes data to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// fsync data and meta pages on every commit: a committed write survives power loss.
    #[default]
    Full,
    /// fsync data but not the meta page: survives process crashes; a power loss may undo the last
    /// commit but never corrupts the store.
    NoMetaSync,
    /// No fsync at all: survives process crashes (the OS has the pages); a power loss may lose recent
    /// commits. The durability of the JavaScript reference's default storage.
    NoSync,
}

/// Opens (creating if needed) the LMDB environment in directory `path`.
///
/// Reads are opened without thread-local storage so that read transactions may move between threads
/// and several may be open on one thread.
pub fn open(
    path: &Path,
    map_size: usize,
    max_dbs: u32,
    sync: Sync,
) -> heed::Result<Env<WithoutTls>> {
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(map_size).max_dbs(max_dbs).max_readers(1022);
    let flags = match sync {
        Sync::Full => EnvFlags::empty(),
        Sync::NoMetaSync => EnvFlags::NO_META_SYNC,
        Sync::NoSync => EnvFlags::NO_SYNC,
    };
    // SAFETY:
    // - `NO_META_SYNC` / `NO_SYNC` only weaken durability against power loss (documented on `Sync`);
    //   they never let LMDB read a torn page after a process crash.
    // - The memory map is only sound if nobody modifies the data file outside LMDB while it is open.
    //   libdat never does; LMDB's own lock file coordinates other processes using LMDB. A user who
    //   edits `data.mdb` by hand while a store is open is outside what any mmap-based store can
    //   defend against (libdat still verifies every block hash on read).
    // - heed keeps a process-wide registry so opening the same path twice returns the same env.
    unsafe {
        opts.flags(flags);
        opts.open(path)
    }
}

/// Writes `items` at the end of `db` through one cursor in LMDB's append mode (no B-tree search
/// per item, pages filled completely).
///
/// Every key must sort after the table's last key and after the previous item; otherwise LMDB
/// refuses the item with `MDB_KEYEXIST` and nothing is corrupted.
pub fn append_sorted<K, V>(
    db: &heed::Database<heed::types::Bytes, heed::types::Bytes>,
    txn: &mut heed::RwTxn,
    items: impl Iterator<Item = (K, V)>,
) -> heed::Result<()>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut cursor = db.iter_mut(txn)?;
    for (key, value) in items {
        // SAFETY: `put_current_with_options` is unsafe because a value borrowed from this database
        // must not be alive while it is modified. `items` cannot borrow from the database: any such
        // borrow would hold the transaction, which this function has mutably borrowed.
        unsafe {
            cursor.put_current_with_options::<heed::types::Bytes>(
                heed::PutFlags::APPEND,
                key.as_ref(),
                value.as_ref(),
            )?;
        }
    }
    Ok(())
}

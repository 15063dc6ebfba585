//! Opens LMDB environments for libdat.
//!
//! `heed` marks environment opening `unsafe` because LMDB memory-maps the file: undefined behaviour
//! follows if the file is changed behind LMDB's back. `dat-core` forbids unsafe code, so the unsafe
//! calls live here, each with the conditions under which it is sound written down: opening an
//! environment, appending sorted records through a cursor, and `madvise` over the read-only map
//! ([`release_mapped_pages`]).
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

/// Unmaps, from this process only, the pages of LMDB's read-only memory map of `data_file` (the
/// environment's `data.mdb`): `madvise(MADV_DONTNEED)` over each read-only shared mapping of that
/// file listed in `/proc/self/maps`. The pages stay in the kernel's page cache; the next read of
/// one faults it back in with the same bytes. A process that streams through a big store thereby
/// does not keep every page it read counted in its resident set. Returns the bytes released;
/// does nothing (and returns 0) on systems other than Linux.
pub fn release_mapped_pages(data_file: &Path) -> std::io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        let want = std::fs::canonicalize(data_file)?;
        let want = want.to_string_lossy();
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut released = 0u64;
        for line in maps.lines() {
            // start-end perms offset dev inode pathname
            let mut fields = line.splitn(6, ' ');
            let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                continue;
            };
            let path = fields.nth(3).map(str::trim_start).unwrap_or("");
            if path != want || perms != "r--s" {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            if end <= start {
                continue;
            }
            // SAFETY: the range is a mapping the kernel reports for this process, read-only and
            // shared, of LMDB's data file (LMDB maps it so when `MDB_WRITEMAP` is off, which libdat
            // never sets). For a shared file mapping MADV_DONTNEED only drops this process's
            // page-table entries: no memory is freed or changed, and any later access (including
            // through slices LMDB handed out) faults the same page-cache page back in.
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            released += (end - start) as u64;
        }
        Ok(released)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = data_file;
        Ok(0)
    }
}

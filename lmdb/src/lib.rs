//! Opens LMDB environments for libdat.
//!
//! `heed` marks environment opening `unsafe` because LMDB memory-maps the file: undefined behaviour
//! follows if the file is changed behind LMDB's back. `dat-core` forbids unsafe code, so the unsafe
//! calls live here, each with the conditions under which it is sound written down: opening an
//! environment, appending sorted records through a cursor (copied or written in place), and
//! `madvise` over the read-only map
//! ([`MappedPages::release`]).
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
    /// No fsync at all: survives process crashes (the OS has the pages). A power loss may lose
    /// recent commits and, on a file system that does not keep the order of writes, leave the
    /// store unreadable (LMDB's own warning for `MDB_NOSYNC`). The durability of the JavaScript
    /// reference's default storage, which does not fsync either.
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

/// [`append_sorted`] for values written in place: each item gives its key, its value's length,
/// and a function that writes exactly that many bytes straight into the space LMDB reserves for
/// it (no intermediate buffer holding the value).
///
/// The same ordering rule applies. A write function that fails, or writes fewer bytes than it
/// announced, fails the call; the transaction then holds a partly written value and must be
/// aborted (dropped), which libdat's callers do on any error.
pub fn append_sorted_reserved<K, F>(
    db: &heed::Database<heed::types::Bytes, heed::types::Bytes>,
    txn: &mut heed::RwTxn,
    items: impl Iterator<Item = (K, usize, F)>,
) -> heed::Result<()>
where
    K: AsRef<[u8]>,
    F: FnOnce(&mut heed::ReservedSpace) -> std::io::Result<()>,
{
    let mut cursor = db.iter_mut(txn)?;
    for (key, len, write) in items {
        // SAFETY: as in `append_sorted`: nothing borrowed from the database can be alive here,
        // since the transaction is mutably borrowed by this function; `write` only gets the
        // reserved space of the value being put.
        unsafe {
            cursor.put_current_reserved_with_flags(
                heed::PutFlags::APPEND,
                key.as_ref(),
                len,
                write,
            )?;
        }
    }
    Ok(())
}

/// LMDB's read-only memory map of an environment's data file, as this process has it mapped:
/// [`MappedPages::release`] unmaps, from this process only, the pages it has touched
/// (`madvise(MADV_DONTNEED)`). The pages stay in the kernel's page cache; the next read of one
/// faults it back in with the same bytes. A process that streams through a big store thereby does
/// not keep every page it read counted in its resident set.
///
/// It holds a clone of the environment, so the mapping it found stays in place while it exists
/// (libdat never resizes a map after opening it, the only other way LMDB moves it).
pub struct MappedPages {
    _env: Env<WithoutTls>,
    ranges: Vec<(usize, usize)>,
}

impl MappedPages {
    /// Finds the read-only shared mappings of `env`'s `data.mdb` in `/proc/self/maps` (none on
    /// systems other than Linux, or when the map is writable).
    pub fn find(env: &Env<WithoutTls>) -> std::io::Result<MappedPages> {
        let mut ranges = Vec::new();
        #[cfg(target_os = "linux")]
        {
            let want = std::fs::canonicalize(env.path().join("data.mdb"))?;
            let want = want.to_string_lossy();
            let maps = std::fs::read_to_string("/proc/self/maps")?;
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
                if let (Ok(start), Ok(end)) =
                    (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    && end > start
                {
                    ranges.push((start, end));
                }
            }
        }
        Ok(MappedPages {
            _env: env.clone(),
            ranges,
        })
    }

    /// Unmaps the touched pages from this process (see the type's documentation).
    pub fn release(&self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        for &(start, end) in &self.ranges {
            // SAFETY: the range is a mapping the kernel listed for this process, read-only and
            // shared, of LMDB's data file (LMDB maps it so when `MDB_WRITEMAP` is off, which
            // libdat never sets), and it is still that mapping: `_env` keeps the environment,
            // and so its map, open. For a shared file mapping MADV_DONTNEED only drops this
            // process's page-table entries: no memory is freed or changed, and any later access
            // (including through slices LMDB handed out) faults the same page-cache page back.
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Bytes of this process's resident memory that are shared or file-backed (`/proc/self/statm`,
/// third field, in pages): what LMDB's memory map adds to the resident set. `None` on systems
/// other than Linux.
pub fn shared_resident_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(2)?.parse().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * u64::try_from(page).ok()?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

//! The commands that read a drive: clone, cat, ls, log, checkout, diff, history, info.

use std::io::Write;
use std::path::Path;

use dat_core::drive::{ChangeKind, DiffKind, Drive, Entry};
use serde_json::json;
use tokio::runtime::Runtime;

use crate::progress::Progress;
use crate::session::{self, print_json};
use crate::{Failure, exit};

/// An entry as JSON, with the file's size (`drive` reads a deduplicated file's block map).
fn entry_json(drive: &Drive, e: &Entry) -> Result<serde_json::Value, Failure> {
    Ok(json!({
        "size": drive.file_size(e)?,
        "executable": e.executable,
        "linkname": e.linkname,
        "metadata": e.metadata,
    }))
}

/// [`entry_json`] of an entry that may be absent.
fn maybe_entry_json(drive: &Drive, e: Option<&Entry>) -> Result<serde_json::Value, Failure> {
    e.map_or(Ok(serde_json::Value::Null), |e| entry_json(drive, e))
}

/// Writes the files of `drive` into `dest` (creating folders; symlinks as symlinks).
fn write_tree(
    drive: &Drive,
    dest: &Path,
    mut progress: Option<&mut Progress>,
) -> Result<(u64, u64), Failure> {
    std::fs::create_dir_all(dest)?;
    let (mut files, mut bytes) = (0u64, 0u64);
    for (name, e) in drive.list("/", true)? {
        let rel = name.trim_start_matches('/');
        if rel.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(Failure::new(
                exit::CORRUPT,
                format!("refusing the path {name}"),
            ));
        }
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if e.blob.is_none() && !e.is_symlink() {
            // an entry with neither content nor a link target (the reference reads it as no file)
            eprintln!("dat: skipping {name}: its entry has no content and no link target");
            continue;
        }
        if let Some(link) = e.linkname.as_deref().filter(|_| e.is_symlink()) {
            let _ = std::fs::remove_file(&target);
            #[cfg(unix)]
            std::os::unix::fs::symlink(link, &target)?;
            #[cfg(not(unix))]
            std::fs::write(&target, link)?;
        } else {
            let mut out = std::fs::File::create(&target)?;
            let mut c = drive.cursor(&name)?;
            loop {
                let chunk = c.read_bytes(1 << 16)?;
                if chunk.is_empty() {
                    break;
                }
                bytes += chunk.len() as u64;
                out.write_all(&chunk)?;
                if let Some(p) = progress.as_deref_mut() {
                    p.update(files, bytes, false);
                }
            }
            #[cfg(unix)]
            if e.executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        files += 1;
    }
    Ok((files, bytes))
}

/// `dat clone KEY DEST --peer ADDR [--sparse]`.
pub fn clone(
    rt: &Runtime,
    store_path: &Path,
    key: &str,
    dest: &Path,
    peer: &str,
    sparse: bool,
    json_out: bool,
) -> Result<(), Failure> {
    session::parse_key(key)?;
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, key, Some(peer), true)?;
    // all the metadata first, in one prioritized range (not block by block as the list reads)
    let meta = drive.metadata_log();
    meta.prioritize(
        dat_core::scheduler::Prioritize::range(0, meta.length())
            .order(dat_core::scheduler::Order::Linear)
            .priority(6),
    )
    .wait(Some(session::PEER_TIMEOUT))?;
    let entries = drive.list("/", true)?;
    // a deduplicated file's size is in its block map (fetched here if need be)
    let sizes = entries
        .iter()
        .map(|(_, e)| drive.file_size(e))
        .collect::<Result<Vec<u64>, _>>()?;
    let total_bytes: u64 = sizes.iter().sum();
    if sparse {
        // the metadata only: every entry is now local (the list read it)
        for ((name, e), size) in entries.iter().zip(&sizes) {
            if json_out {
                print_json(json!({"path": name, "entry": entry_json(&drive, e)?}));
            } else {
                outln!("{name}\t{size}");
            }
        }
        eprintln!(
            "dat: fetched the metadata of {} files ({} bytes of content not fetched), version {}",
            entries.len(),
            total_bytes,
            drive.version()
        );
        return Ok(());
    }
    let mut progress = Progress::new(entries.len() as u64, total_bytes);
    let fetched = drive.download("/", |_, _| {})?;
    let (files, bytes) = write_tree(&drive, dest, Some(&mut progress))?;
    progress.finish(files, bytes);
    eprintln!(
        "dat: cloned {files} files ({bytes} bytes, {fetched} blocks fetched) at version {} into {}",
        drive.version(),
        dest.display()
    );
    Ok(())
}

/// `dat cat DRIVE PATH [--start N] [--end M]`.
#[allow(clippy::too_many_arguments)]
pub fn cat(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    path: &str,
    start: Option<u64>,
    end: Option<u64>,
    peer: Option<&str>,
    stats: bool,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    let meta_before = drive
        .metadata_log()
        .has_count(0, drive.metadata_log().length())?;
    let content = drive.content_log().clone();
    let content_before = content.has_count(0, content.length())?;
    let mut out = std::io::stdout().lock();
    for chunk in drive.read_stream(path, start.unwrap_or(0), end)? {
        if let Err(e) = out.write_all(&chunk?) {
            crate::stdout_failed(e);
        }
    }
    if let Err(e) = out.flush() {
        crate::stdout_failed(e);
    }
    if stats {
        let meta = drive.metadata_log();
        eprintln!(
            "dat: fetched {} metadata and {} content blocks (the drive has {} and {})",
            meta.has_count(0, meta.length())? - meta_before,
            content.has_count(0, content.length())? - content_before,
            meta.length(),
            content.length()
        );
    }
    Ok(())
}

/// `dat ls DRIVE [FOLDER]`.
pub fn ls(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    folder: &str,
    peer: Option<&str>,
    json_out: bool,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    for (name, e) in drive.list(folder, true)? {
        if json_out {
            print_json(json!({"path": name, "entry": entry_json(&drive, &e)?}));
        } else if let Some(l) = e.linkname.as_deref().filter(|_| e.is_symlink()) {
            outln!("{name} -> {l}");
        } else {
            outln!(
                "{name}\t{}{}",
                drive.file_size(&e)?,
                if e.executable { "\t(executable)" } else { "" }
            );
        }
    }
    Ok(())
}

fn print_change(drive: &Drive, c: &dat_core::drive::Change, json_out: bool) -> Result<(), Failure> {
    let kind = match c.kind {
        ChangeKind::Put => "put",
        ChangeKind::Del => "del",
    };
    if json_out {
        print_json(json!({
            "version": c.version,
            "kind": kind,
            "path": c.path,
            "entry": maybe_entry_json(drive, c.entry.as_ref())?,
        }));
    } else {
        let size = match &c.entry {
            Some(e) => drive.file_size(e)?.to_string(),
            None => String::new(),
        };
        outln!("{}\t{kind}\t{}\t{size}", c.version, c.path);
    }
    Ok(())
}

/// `dat log DRIVE [--follow]`: changes newest first; following prints new ones as they come.
#[allow(clippy::too_many_arguments)]
pub fn log(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    peer: Option<&str>,
    follow: bool,
    count: Option<usize>,
    json_out: bool,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    let changes: Vec<_> = drive.changes(2, false).collect::<Result<_, _>>()?;
    for c in changes.iter().rev() {
        print_change(&drive, c, json_out)?;
    }
    std::io::stdout().flush()?;
    if follow {
        let mut live = drive.changes(drive.version() + 1, true);
        let mut seen = 0;
        while count.is_none_or(|n| seen < n) {
            if let Some(c) = live.next_timeout(None)? {
                print_change(&drive, &c, json_out)?;
                std::io::stdout().flush()?;
                seen += 1;
            }
        }
    }
    Ok(())
}

/// `dat checkout DRIVE VERSION DEST`.
pub fn checkout(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    version: u64,
    dest: &Path,
    peer: Option<&str>,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    let old = drive.checkout(version)?;
    let (files, bytes) = write_tree(&old, dest, None).map_err(|f| {
        if conn.is_none() && f.code == exit::NETWORK {
            Failure::new(
                exit::NOT_FOUND,
                format!(
                    "{}; give --peer HOST:PORT to fetch what is missing",
                    f.message
                ),
            )
        } else {
            f
        }
    })?;
    eprintln!(
        "dat: wrote version {version} ({files} files, {bytes} bytes) into {}",
        dest.display()
    );
    Ok(())
}

fn parse_version(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// `dat diff DRIVE A [B]`: versions A and B of one drive, or two drives.
#[allow(clippy::too_many_arguments)]
pub fn diff(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    a: &str,
    b: Option<&str>,
    peer: Option<&str>,
    json_out: bool,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    // the drive each side's entries come from (for the sizes of deduplicated files)
    let mut _other_conn = None;
    let (diffs, right_drive) = match (parse_version(a), b.map(parse_version)) {
        (Some(va), Some(Some(vb))) => (
            drive.checkout(va.max(vb))?.diff(va.min(vb), "/")?,
            drive.clone(),
        ),
        (Some(va), None) => (drive.diff(va, "/")?, drive.clone()),
        (None, None) => {
            let (other, c2) = session::drive(rt, &store, a, peer, true)?;
            _other_conn = c2;
            (drive.diff_drive(&other, "/")?, other)
        }
        _ => {
            return Err(Failure::new(
                exit::USAGE,
                "give two versions (dat diff DRIVE 3 7), one version (against the latest), or another drive",
            ));
        }
    };
    for d in diffs {
        let kind = match d.kind {
            DiffKind::Added => "+",
            DiffKind::Removed => "-",
            DiffKind::Changed => "~",
        };
        if json_out {
            print_json(json!({
                "path": d.path,
                "kind": kind,
                "left": maybe_entry_json(&drive, d.left.as_ref())?,
                "right": maybe_entry_json(&right_drive, d.right.as_ref())?,
            }));
        } else {
            outln!("{kind} {}", d.path);
        }
    }
    Ok(())
}

/// `dat history DRIVE PATH`.
pub fn history(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    path: &str,
    peer: Option<&str>,
    json_out: bool,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    let h = drive.file_history(path)?;
    if h.is_empty() {
        return Err(Failure::new(
            exit::NOT_FOUND,
            format!("{path} never existed in this drive"),
        ));
    }
    for v in h {
        if json_out {
            print_json(
                json!({"version": v.version, "entry": maybe_entry_json(&drive, v.entry.as_ref())?}),
            );
        } else {
            match &v.entry {
                Some(e) => outln!("{}\tput\t{}", v.version, drive.file_size(e)?),
                None => outln!("{}\tdel", v.version),
            }
        }
    }
    Ok(())
}

/// `dat info DRIVE`.
pub fn info(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    peer: Option<&str>,
    json_out: bool,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    let (m, c) = (drive.metadata_log(), drive.content_log());
    let peers = m.replicator().peer_count();
    let v = json!({
        "key": hex::encode(drive.key()),
        "discovery_key": hex::encode(drive.discovery_key()),
        "version": drive.version(),
        "writable": drive.writable(),
        "metadata": {"blocks": m.length(), "bytes": m.byte_length(), "local_blocks": m.has_count(0, m.length())?},
        "content": {"key": hex::encode(c.key()), "blocks": c.length(), "bytes": c.byte_length(), "local_blocks": c.has_count(0, c.length())?},
        "peers": peers,
    });
    if json_out {
        print_json(v);
    } else {
        outln!("key            {}", v["key"].as_str().unwrap_or_default());
        outln!(
            "discovery key  {}",
            v["discovery_key"].as_str().unwrap_or_default()
        );
        outln!("version        {}", drive.version());
        outln!("writable       {}", drive.writable());
        outln!(
            "metadata       {} blocks, {} bytes ({} local)",
            m.length(),
            m.byte_length(),
            v["metadata"]["local_blocks"]
        );
        outln!(
            "content        {} blocks, {} bytes ({} local)",
            c.length(),
            c.byte_length(),
            v["content"]["local_blocks"]
        );
        outln!("peers          {peers}");
    }
    Ok(())
}

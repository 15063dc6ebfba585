//! `dat share`: import a folder into its drive (only what changed), then serve it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dat_core::drive::{Drive, Entry, PutOptions};
use dat_core::replication::{ConnectionOptions, driver};
use tokio::runtime::Runtime;

use crate::{Failure, exit, session};

/// What an import changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub bytes: u64,
}

impl Imported {
    fn any(&self) -> bool {
        self.added + self.changed + self.removed > 0
    }
}

enum Local {
    File {
        path: PathBuf,
        size: u64,
        executable: bool,
    },
    Link(String),
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Local>) -> Result<(), Failure> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Failure::new(exit::ERROR, format!("cannot read {}: {e}", dir.display())))?;
    for item in rd {
        let item = item?;
        let p = item.path();
        let meta = std::fs::symlink_metadata(&p)?;
        let rel = p
            .strip_prefix(root)
            .map_err(|_| Failure::new(exit::ERROR, "a path outside the shared folder"))?;
        let name = format!(
            "/{}",
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        );
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p)?;
            out.insert(name, Local::Link(target.to_string_lossy().into_owned()));
        } else if meta.is_dir() {
            walk(root, &p, out)?;
        } else if meta.is_file() {
            #[cfg(unix)]
            let executable = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            };
            #[cfg(not(unix))]
            let executable = false;
            out.insert(
                name,
                Local::File {
                    path: p,
                    size: meta.len(),
                    executable,
                },
            );
        }
    }
    Ok(())
}

/// True when the file at `path` has exactly the content of `entry`'s blob.
fn same_content(
    drive: &Drive,
    name: &str,
    entry: &Entry,
    path: &Path,
    size: u64,
) -> Result<bool, Failure> {
    if drive.file_size(entry)? != size {
        return Ok(false);
    }
    let mut file = std::fs::File::open(path)?;
    let mut cursor = drive.cursor(name)?;
    let mut a = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut a)?;
        if n == 0 {
            return Ok(cursor.tell() == cursor.len());
        }
        let b = cursor.read_bytes(n)?;
        if b != a[..n] {
            return Ok(false);
        }
    }
}

/// Brings the drive in line with the folder: new and changed files are written, files gone
/// from the folder are deleted, the rest is left alone (no new version).
pub fn import(drive: &Drive, dir: &Path) -> Result<Imported, Failure> {
    let mut local = BTreeMap::new();
    walk(dir, dir, &mut local)?;
    let mut stats = Imported::default();
    let existing: BTreeMap<String, Entry> = drive.list("/", true)?.into_iter().collect();
    for (name, item) in &local {
        let old = existing.get(name);
        match item {
            Local::Link(target) => {
                if old.and_then(|e| e.linkname.as_deref()) == Some(target.as_str()) {
                    stats.unchanged += 1;
                    continue;
                }
                drive.symlink(name, target)?;
            }
            Local::File {
                path,
                size,
                executable,
            } => {
                if let Some(e) = old
                    && e.linkname.is_none()
                    && e.executable == *executable
                    && same_content(drive, name, e, path, *size)?
                {
                    stats.unchanged += 1;
                    continue;
                }
                let mut w = drive.writer(
                    name,
                    PutOptions {
                        executable: *executable,
                        ..Default::default()
                    },
                )?;
                let mut f = std::fs::File::open(path)?;
                stats.bytes += std::io::copy(&mut f, &mut w)?;
                w.flush()?;
                w.finish()?;
            }
        }
        if old.is_some() {
            stats.changed += 1;
        } else {
            stats.added += 1;
        }
    }
    for name in existing.keys() {
        if !local.contains_key(name) {
            drive.del(name)?;
            stats.removed += 1;
        }
    }
    Ok(stats)
}

fn report(drive: &Drive, s: &Imported) {
    eprintln!(
        "dat: {} added, {} changed, {} removed, {} unchanged ({} bytes written); version {}",
        s.added,
        s.changed,
        s.removed,
        s.unchanged,
        s.bytes,
        drive.version()
    );
}

/// `dat share DIR`.
pub fn share(
    rt: &Runtime,
    store_path: &Path,
    dir: &Path,
    listen: &str,
    watch: bool,
    no_serve: bool,
) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::new(
            exit::NOT_FOUND,
            format!("no folder {}", dir.display()),
        ));
    }
    let store = session::store(store_path)?;
    let drive = session::folder_drive(&store, dir)?;
    let stats = import(&drive, dir)?;
    report(&drive, &stats);
    outln!("key {}", hex::encode(drive.key()));
    if no_serve {
        std::io::stdout().flush()?;
        return Ok(());
    }
    let st = store.clone();
    let l = listen.to_string();
    let mut server = rt
        .block_on(async move { driver::listen(&st, &l, ConnectionOptions::default()).await })
        .map_err(|e| Failure::new(exit::NETWORK, format!("cannot listen on {listen}: {e}")))?;
    outln!("listening {}", server.local_addr());
    std::io::stdout().flush()?;
    rt.spawn(async move {
        // connections stay open while their handles live
        let mut peers = Vec::new();
        while let Some(h) = server.accept().await {
            peers.retain(|p: &driver::ReplicationHandle| !p.is_finished());
            peers.push(h);
        }
    });
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if watch {
            match import(&drive, dir) {
                Ok(s) if s.any() => report(&drive, &s),
                Ok(_) => {}
                Err(f) => eprintln!("dat: re-import failed: {}", f.message),
            }
        }
    }
}

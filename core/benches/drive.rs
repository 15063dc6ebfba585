//! `cargo bench -p dat-core --bench drive [-- --quick]`: the drive workloads of `make bench`, the
//! same as `tests/interop/drive-bench.js` runs on the JavaScript reference (hyperdrive 13.3.4):
//!
//! - `drive_import_files`: import a folder of 100,000 files of 1 KiB (read each file, put it),
//!   through a [`dat_core::drive::DriveBatch`] flushed every 1,000 files (as the reference's
//!   `drive.batch()` in the JS bench), ending with one lookup so the name index is up to date;
//! - `drive_import_1gib`: import one 1 GiB file, streamed from disk into a drive writer;
//! - the imports again with names ending in `_nosync`: on a store with `Durability::NoSync`, the
//!   reference's guarantee (no fsync; the default `Durability::Full` fsyncs every commit);
//! - `drive_stat`: `entry()` of 100,000 random names of the imported folder;
//! - `drive_read_files`: full read of every file of the imported folder (list, then read each);
//! - `drive_read_1gib`: full read of the imported 1 GiB file (a read stream);
//! - `drive_cursor_4k`: 10,000 random 4 KiB reads in the 1 GiB file (a cursor).
//!
//! `--quick` divides the counts by 10 and uses a 100 MiB file. The source folder and file are made
//! once under `target/bench/drive-src[-quick]/` (the same bytes the JS bench makes). Every run is
//! its own child process (this binary with `--child NAME --store DIR`), so its peak memory is its
//! own: imports write into a fresh store (the store's default durability, an fsync per commit);
//! the read workloads open the store the last import run left. A child prints `{"secs",
//! "vmhwm_kib"}` (the timed part; VmHWM from /proc/self/status at its end); the parent also samples
//! the child's RssAnon every 10 ms. One JSON line per workload, as the JS bench prints:
//! `{"impl":"libdat","name":...,"ops":N,"unit":...,"secs":[...],"median_ops_per_sec":X,
//!   "peak_rss_kib":[...],"peak_anon_kib":[...]}`. `BENCH_ONLY=name,...` selects workloads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dat_core::drive::{Drive, PutOptions};
use dat_core::{Durability, Store, StoreOptions};

const RUNS: usize = 3;
const FILES_PER_DIR: usize = 1000;
const FILE_SIZE: usize = 1024;
const CHUNK: usize = 1 << 20;

struct Sizes {
    files: usize,
    big: usize,
    stats: usize,
    cursor_reads: usize,
    src: PathBuf,
    work: PathBuf,
}

fn sizes(quick: bool) -> Sizes {
    let div = if quick { 10 } else { 1 };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let tag = if quick { "-quick" } else { "" };
    Sizes {
        files: 100_000 / div,
        big: if quick { 100 } else { 1024 } << 20,
        stats: 100_000 / div,
        cursor_reads: 10_000 / div,
        src: root.join(format!("drive-src{tag}")),
        work: root.join(format!("drive-libdat{tag}")),
    }
}

struct Mulberry(u32);
impl Mulberry {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x6D2B_79F5);
        let mut t = self.0;
        t = (t ^ (t >> 15)).wrapping_mul(t | 1);
        t ^= t.wrapping_add((t ^ (t >> 7)).wrapping_mul(t | 61));
        t ^ (t >> 14)
    }
}

/// `n` bytes (a multiple of 4) of xorshift32 output from `seed`, as drive-bench.js's `noise`.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = if seed == 0 { 1 } else { seed };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n / 4 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// The drive path of source file `i` (also its path under `src/files`).
fn file_path(i: usize) -> String {
    format!("/d{:03}/f{i:06}.bin", i / FILES_PER_DIR)
}

fn make_source(s: &Sizes) {
    let done = s.src.join("complete");
    if done.exists() {
        return;
    }
    eprintln!(
        "[drive-bench] making {} files of {FILE_SIZE} bytes and a {}-byte file in {} ...",
        s.files,
        s.big,
        s.src.display()
    );
    let _ = std::fs::remove_dir_all(&s.src);
    for i in 0..s.files {
        let p = s.src.join("files").join(&file_path(i)[1..]);
        if i % FILES_PER_DIR == 0 {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        }
        std::fs::write(&p, noise(FILE_SIZE, i as u32 + 1)).unwrap();
    }
    let mut f = std::fs::File::create(s.src.join("big.bin")).unwrap();
    for c in 0..s.big.div_ceil(CHUNK) {
        let n = CHUNK.min(s.big - c * CHUNK);
        f.write_all(&noise(n, 0x9e37_79b9 ^ c as u32)).unwrap();
    }
    f.sync_all().unwrap();
    std::fs::write(done, b"").unwrap();
}

fn status_kib(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

// ------------------------------------------------------------------------------ child workloads

fn child(name: &str, store_dir: &Path, s: &Sizes) -> f64 {
    // `_nosync`: the same workload on a store with Durability::NoSync (the reference's guarantee)
    let (name, durability) = match name.strip_suffix("_nosync") {
        Some(n) => (n, Durability::NoSync),
        None => (name, Durability::Full),
    };
    let opts = StoreOptions {
        durability,
        ..Default::default()
    };
    let store = Store::open_with(store_dir, opts).unwrap();
    let drive = Drive::create(&store).unwrap();
    let t = Instant::now();
    match name {
        "drive_import_files" => {
            let root = s.src.join("files");
            let mut batch = drive.batch().unwrap();
            let mut n = 0;
            let mut dirs: Vec<_> = std::fs::read_dir(&root)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            dirs.sort();
            for d in dirs {
                let mut names: Vec<_> = std::fs::read_dir(root.join(&d))
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                names.sort();
                for f in names {
                    let data = std::fs::read(root.join(&d).join(&f)).unwrap();
                    let p = format!("/{}/{}", d.to_str().unwrap(), f.to_str().unwrap());
                    batch.put(&p, &data).unwrap();
                    n += 1;
                    if n % 1000 == 0 {
                        batch.flush().unwrap();
                    }
                }
            }
            batch.flush().unwrap();
            // the name index is brought up to date at the first lookup: count it here
            assert!(drive.exists(&file_path(0)).unwrap());
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(n, s.files);
            assert_eq!(drive.version(), s.files as u64 + 1);
            secs
        }
        "drive_import_1gib" => {
            let mut f = std::fs::File::open(s.src.join("big.bin")).unwrap();
            let mut w = drive.writer("/big.bin", PutOptions::default()).unwrap();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).unwrap();
            }
            let (e, _) = w.finish().unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(e.size(), Some(s.big as u64));
            secs
        }
        "drive_stat" => {
            let mut rng = Mulberry(7);
            let names: Vec<String> = (0..s.stats)
                .map(|_| file_path(rng.next() as usize % s.files))
                .collect();
            let t = Instant::now();
            for name in &names {
                let e = drive.entry(name).unwrap().expect("an entry");
                assert_eq!(e.size(), Some(FILE_SIZE as u64));
            }
            t.elapsed().as_secs_f64()
        }
        "drive_read_files" => {
            let (mut n, mut bytes) = (0, 0);
            for (_, e) in drive.list("/", true).unwrap() {
                let data = drive.blobs().get(&e.blob.unwrap()).unwrap();
                n += 1;
                bytes += data.len();
            }
            let secs = t.elapsed().as_secs_f64();
            assert_eq!((n, bytes), (s.files, s.files * FILE_SIZE));
            secs
        }
        "drive_read_1gib" => {
            let mut bytes = 0;
            for chunk in drive.read_stream("/big.bin", 0, None).unwrap() {
                bytes += chunk.unwrap().len();
            }
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(bytes, s.big);
            secs
        }
        "drive_cursor_4k" => {
            let mut rng = Mulberry(9);
            let pos: Vec<u64> = (0..s.cursor_reads)
                .map(|_| u64::from(rng.next()) % (s.big as u64 - 4096))
                .collect();
            let t = Instant::now();
            let mut c = drive.cursor("/big.bin").unwrap();
            let mut buf = vec![0u8; 4096];
            for p in pos {
                c.seek_to(p).unwrap();
                assert_eq!(c.read_into(&mut buf).unwrap(), 4096);
            }
            t.elapsed().as_secs_f64()
        }
        other => panic!("unknown workload {other}"),
    }
}

// ------------------------------------------------------------------------------ parent

struct RunResult {
    secs: f64,
    vmhwm_kib: u64,
    anon_kib: u64,
}

fn run_child(name: &str, dir: &Path, quick: bool) -> Result<RunResult, String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--child", name, "--store"])
        .arg(dir)
        .stdout(Stdio::piped());
    if quick {
        cmd.arg("--quick");
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let status = format!("/proc/{}/status", child.id());
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = status_kib(&status, "RssAnon:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    let st = child.wait().map_err(|e| e.to_string())?;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    if !st.success() {
        return Err(format!("{name} child failed: {st}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(out.lines().last().unwrap_or("")).map_err(|e| e.to_string())?;
    Ok(RunResult {
        secs: v["secs"].as_f64().unwrap(),
        vmhwm_kib: v["vmhwm_kib"].as_u64().unwrap_or(0),
        anon_kib: peak.load(Ordering::Relaxed),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let s = sizes(quick);
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    if let Some(name) = arg("--child") {
        let dir = PathBuf::from(arg("--store").unwrap());
        let secs = child(&name, &dir, &s);
        let vmhwm = status_kib("/proc/self/status", "VmHWM:").unwrap_or(0);
        println!("{}", serde_json::json!({"secs": secs, "vmhwm_kib": vmhwm}));
        return;
    }

    make_source(&s);
    std::fs::create_dir_all(&s.work).unwrap();
    let mib = (s.big >> 20) as u64;
    // name, ops, unit, the store it runs on ("fresh" for imports), where an import's store stays
    let workloads: [(&str, u64, &str, &str, &str); 8] = [
        (
            "drive_import_files",
            s.files as u64,
            "files",
            "fresh",
            "files",
        ),
        (
            "drive_import_files_nosync",
            s.files as u64,
            "files",
            "fresh",
            "",
        ),
        ("drive_import_1gib", mib, "MiB", "fresh", "big"),
        ("drive_import_1gib_nosync", mib, "MiB", "fresh", ""),
        ("drive_stat", s.stats as u64, "stats", "files", ""),
        ("drive_read_files", s.files as u64, "files", "files", ""),
        ("drive_read_1gib", mib, "MiB", "big", ""),
        ("drive_cursor_4k", s.cursor_reads as u64, "reads", "big", ""),
    ];
    for (name, ops, unit, on, keep) in workloads {
        if let Ok(only) = std::env::var("BENCH_ONLY")
            && !only.split(',').any(|o| o == name)
        {
            continue;
        }
        let mut runs = Vec::new();
        let mut failure = None;
        for r in 0..RUNS {
            let dir = if on == "fresh" {
                let d = s.work.join(format!("run-{name}"));
                let _ = std::fs::remove_dir_all(&d);
                d
            } else {
                s.work.join(on)
            };
            match run_child(name, &dir, quick) {
                Ok(res) => {
                    eprintln!(
                        "[drive-bench libdat] {name} run {}/{RUNS}: {:.3} s, {:.0} {unit}/s, peak RSS {} MiB, anon {} MiB",
                        r + 1,
                        res.secs,
                        ops as f64 / res.secs,
                        res.vmhwm_kib / 1024,
                        res.anon_kib / 1024
                    );
                    runs.push(res);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if on == "fresh" && keep.is_empty() {
                let _ = std::fs::remove_dir_all(&dir);
            } else if on == "fresh" {
                let target = s.work.join(keep);
                let _ = std::fs::remove_dir_all(&target);
                std::fs::rename(&dir, &target).unwrap();
            }
        }
        if let Some(e) = failure {
            eprintln!("[drive-bench libdat] {name} FAILED: {e}");
            println!(
                "{}",
                serde_json::json!({"impl": "libdat", "name": name, "ops": ops, "unit": unit, "error": e})
            );
            continue;
        }
        let secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
        let mut sorted = secs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "{}",
            serde_json::json!({
                "impl": "libdat",
                "name": name,
                "ops": ops,
                "unit": unit,
                "secs": secs.iter().map(|s| (s * 1e6).round() / 1e6).collect::<Vec<_>>(),
                "median_ops_per_sec": (ops as f64 / median * 10.0).round() / 10.0,
                "peak_rss_kib": runs.iter().map(|r| r.vmhwm_kib).collect::<Vec<_>>(),
                "peak_anon_kib": runs.iter().map(|r| r.anon_kib).collect::<Vec<_>>(),
            })
        );
    }
}

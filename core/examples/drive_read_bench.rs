//! `cargo run --release -p dat-core --example drive_read_bench -- --store DIR --key HEX
//! [--path /big.bin] [--runs 3]`: the Rust side of the Python package's read benchmark
//! (`make bench-py`, `bindings/python/bench/read_bench.py`).
//!
//! Opens the store in `DIR` and the drive with key `HEX` (made by the Python script), and reads
//! the file at `--path` whole, `--runs` times each (after one untimed pass that warms the page
//! cache), in the two ways the Python script does:
//!
//! - `drive_cursor_64k`: a [`dat_core::drive::Cursor`] read in 64 KiB reads into one buffer
//!   (`std::io::Read`), what `drive.open(path).read(65536)` calls in Python;
//! - `drive_read_stream`: the chunks of [`dat_core::drive::Drive::read_stream`] (at most 64 KiB
//!   each), what `drive.read_stream(path)` iterates in Python.
//!
//! One JSON line per workload on stdout: `{"impl":"rust","name":...,"ops":MiB,"unit":"MiB",
//! "secs":[...],"median_ops_per_sec":MiB/s,"bytes":N}`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use dat_core::Store;
use dat_core::drive::{Drive, DriveOptions};

const READ: usize = 64 * 1024;

struct Args {
    store: PathBuf,
    key: [u8; 32],
    path: String,
    runs: usize,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "drive_read_bench: {msg}\nusage: drive_read_bench --store DIR --key HEX [--path /big.bin] [--runs 3]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let (mut store, mut key, mut path, mut runs) = (None, None, "/big.bin".to_string(), 3);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--store" => store = Some(PathBuf::from(value())),
            "--key" => {
                let k = hex::decode(value()).unwrap_or_else(|e| usage(&format!("--key: {e}")));
                key = Some(
                    <[u8; 32]>::try_from(k.as_slice())
                        .unwrap_or_else(|_| usage("--key is 32 bytes (64 hex digits)")),
                );
            }
            "--path" => path = value(),
            "--runs" => {
                runs = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--runs: a number"))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    Args {
        store: store.unwrap_or_else(|| usage("--store is required")),
        key: key.unwrap_or_else(|| usage("--key is required")),
        path,
        runs: runs.max(1),
    }
}

/// Reads the whole file through a cursor in 64 KiB reads; returns the bytes read.
fn cursor_64k(drive: &Drive, path: &str, buf: &mut [u8]) -> u64 {
    let mut cursor = drive.cursor(path).expect("a cursor on the file");
    let mut total = 0u64;
    loop {
        let n = cursor.read(buf).expect("a cursor read");
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

/// Reads the whole file through a read stream; returns the bytes read.
fn read_stream(drive: &Drive, path: &str) -> u64 {
    let mut total = 0u64;
    for chunk in drive.read_stream(path, 0, None).expect("a read stream") {
        total += chunk.expect("a chunk").len() as u64;
    }
    total
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn main() {
    let a = args();
    let store = Store::open(&a.store).expect("the store opens");
    let drive = Drive::open(&store, &a.key, DriveOptions::default()).expect("the drive opens");
    let size = drive.cursor(&a.path).expect("the file exists").len();
    let mut buf = vec![0u8; READ];
    // one untimed pass of each: the store's pages in the page cache, as for the Python side
    assert_eq!(cursor_64k(&drive, &a.path, &mut buf), size);
    assert_eq!(read_stream(&drive, &a.path), size);
    let mib = size as f64 / (1024.0 * 1024.0);
    for name in ["drive_cursor_64k", "drive_read_stream"] {
        let mut secs = Vec::with_capacity(a.runs);
        for _ in 0..a.runs {
            let t = Instant::now();
            let n = match name {
                "drive_cursor_64k" => cursor_64k(&drive, &a.path, &mut buf),
                _ => read_stream(&drive, &a.path),
            };
            secs.push(t.elapsed().as_secs_f64());
            assert_eq!(n, size, "{name} read the whole file");
        }
        println!(
            "{}",
            serde_json::json!({
                "impl": "rust",
                "name": name,
                "ops": mib,
                "unit": "MiB",
                "secs": secs,
                "median_ops_per_sec": mib / median(&secs),
                "bytes": size,
            })
        );
    }
}

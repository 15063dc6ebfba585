//! `cargo bench -p dat-core --bench replication [-- --quick]`: the replication workloads of
//! `make bench`.
//!
//! Full download over loopback TCP of 64 KiB × 2,000 and 1 KiB × 100,000 blocks (`--quick`: ÷10),
//! writer → reader, for libdat → libdat, JS → libdat and libdat → JS (JS → JS is
//! `tests/interop/repl-bench.js`, which this bench also drives as the JS peer). Each workload runs
//! 3 times, each time into a fresh, empty reader store; the writer is built (untimed) once per block
//! size and writer implementation and serves every run of those rows. A run is timed from the TCP connect until the reader holds
//! every block (`contiguous_length() == N`, waited for on the log's events). The libdat reader
//! commits what it downloads, so it is measured with the store's default `Durability::Full` and
//! with `Durability::NoSync` (the reference's guarantee; names end in `_nosync`).
//!
//! Prints one JSON line per workload, in the shape `tests/interop/bench.js` uses:
//! `{"impl":"libdat","name":"repl_64k_libdat_libdat","ops":N,"secs":[t1,t2,t3],
//!   "median_ops_per_sec":X,"block_size":S}`; a workload that failed prints
//! `{"impl":"libdat","name":...,"error":"..."}` instead. `BENCH_ONLY=name,...` selects workloads.
//! Needs `tests/interop/node_modules` (`make interop-deps`) and `node` (or `$NODE`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use dat_core::replication::{ConnectionOptions, driver};
use dat_core::{Durability, Log, LogOptions, Store, StoreOptions};
use tokio::sync::broadcast::error::RecvError;

/// Longest a single run may take before it counts as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
const RUNS: usize = 3;

type Res<T> = std::result::Result<T, String>;

fn block(i: usize, size: usize) -> Vec<u8> {
    vec![(i & 0xff) as u8; size]
}

fn selected(name: &str) -> bool {
    match std::env::var("BENCH_ONLY") {
        Ok(only) => only.split(',').any(|o| o == name),
        Err(_) => true,
    }
}

fn report(name: &str, ops: usize, size: usize, result: Res<Vec<f64>>) {
    match result {
        Ok(mut secs) => {
            let shown: Vec<String> = secs.iter().map(|s| format!("{s:.6}")).collect();
            secs.sort_by(f64::total_cmp);
            let median = secs[secs.len() / 2];
            eprintln!(
                "[replication] {name}: median {median:.3} s, {:.0} blocks/s",
                ops as f64 / median
            );
            println!(
                "{{\"impl\":\"libdat\",\"name\":\"{name}\",\"ops\":{ops},\"secs\":[{}],\"median_ops_per_sec\":{:.1},\"block_size\":{size}}}",
                shown.join(","),
                ops as f64 / median
            );
        }
        Err(e) => {
            eprintln!("[replication] {name} FAILED: {e}");
            println!(
                "{}",
                serde_json::json!({"impl": "libdat", "name": name, "ops": ops, "block_size": size, "error": e})
            );
        }
    }
}

fn open_store(dir: &std::path::Path, durability: Durability) -> Res<Store> {
    Store::open_with(
        dir,
        StoreOptions {
            durability,
            ..Default::default()
        },
    )
    .map_err(|e| format!("open store: {e}"))
}

/// A libdat writer store holding `n` blocks of `size` bytes, serving on 127.0.0.1:0.
struct LibdatWriter {
    _dir: tempfile::TempDir,
    _store: Store,
    log: Log,
    server: driver::Server,
}

impl LibdatWriter {
    async fn build(size: usize, n: usize) -> Res<LibdatWriter> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = open_store(dir.path(), Durability::Full)?;
        let log = store
            .create_log(LogOptions::default())
            .map_err(|e| format!("create log: {e}"))?;
        let per = (1 << 20) / size;
        for start in (0..n).step_by(per) {
            let batch: Vec<Vec<u8>> = (start..n.min(start + per))
                .map(|i| block(i, size))
                .collect();
            log.append_batch(&batch)
                .map_err(|e| format!("append: {e}"))?;
        }
        let server = driver::listen(&store, "127.0.0.1:0", ConnectionOptions::default())
            .await
            .map_err(|e| format!("listen: {e}"))?;
        Ok(LibdatWriter {
            _dir: dir,
            _store: store,
            log,
            server,
        })
    }

    fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }

    /// Waits for the writer side of the next accepted connection to end (after its reader closed).
    async fn finish_connection(&mut self) {
        if let Ok(Some(h)) =
            tokio::time::timeout(Duration::from_secs(10), self.server.accept()).await
        {
            let _ = tokio::time::timeout(Duration::from_secs(10), h.join()).await;
        }
    }
}

/// One timed full download of `n` blocks from `addr` into a fresh libdat store. Returns seconds.
async fn libdat_download(
    addr: &str,
    key: &[u8; 32],
    n: usize,
    size: usize,
    durability: Durability,
) -> Res<f64> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = open_store(dir.path(), durability)?;
    let log = store
        .open_log(key, None)
        .map_err(|e| format!("open log: {e}"))?;
    let mut events = log.subscribe();
    let want = n as u64;

    let t = Instant::now();
    let conn = driver::connect(&store, addr, ConnectionOptions::default())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let waited = tokio::time::timeout(RUN_TIMEOUT, async {
        while log.contiguous_length() < want {
            match events.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err("log events ended".to_string()),
            }
            if conn.is_finished() && log.contiguous_length() < want {
                return Err("connection ended early".to_string());
            }
        }
        Ok(())
    })
    .await;
    let secs = t.elapsed().as_secs_f64();
    let state = format!(
        "length {} contiguous {} of {want}",
        log.length(),
        log.contiguous_length()
    );
    match waited {
        Err(_) => {
            let _ = conn.close().await;
            return Err(format!("timed out after {RUN_TIMEOUT:?}: {state}"));
        }
        Ok(Err(e)) => {
            let err = conn.close().await.err();
            return Err(format!("{e}: {state}; connection: {err:?}"));
        }
        Ok(Ok(())) => {}
    }
    conn.close().await.map_err(|e| format!("close: {e}"))?;

    // untimed checks
    if log.length() != want {
        return Err(format!("reader length {} != {want}", log.length()));
    }
    for i in (0..n).step_by((n / 64).max(1)) {
        let got = log.get(i as u64).map_err(|e| format!("get {i}: {e}"))?;
        if got != block(i, size) {
            return Err(format!("block {i} differs"));
        }
    }
    drop(log);
    drop(store);
    Ok(secs)
}

/// The JS peer: `node tests/interop/repl-bench.js MODE ...`.
struct JsPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl JsPeer {
    fn spawn(args: &[String]) -> Res<JsPeer> {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/repl-bench.js");
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(node)
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn node {}: {e}", script.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(JsPeer {
            child,
            stdin,
            lines,
        })
    }

    /// The next JSON line the peer prints (waits on this worker thread; the others keep serving).
    fn line(&self, timeout: Duration) -> Res<serde_json::Value> {
        let line =
            tokio::task::block_in_place(|| self.lines.recv_timeout(timeout)).map_err(|e| {
                if e == std::sync::mpsc::RecvTimeoutError::Timeout {
                    format!("no answer from the JS peer in {timeout:?}")
                } else {
                    "the JS peer exited without answering (its stderr is above)".to_string()
                }
            })?;
        serde_json::from_str(&line).map_err(|e| format!("bad line from the JS peer {line:?}: {e}"))
    }

    /// Closes its stdin (the writer's signal to exit) and waits for it to exit.
    fn finish(mut self) -> Res<()> {
        drop(self.stdin.take());
        let status =
            tokio::task::block_in_place(|| self.child.wait()).map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the JS peer exited with {status}"))
        }
    }
}

impl Drop for JsPeer {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // not finished (an error path): make sure it does not outlive the bench
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn runs(name: &str, n: usize, mut run: impl AsyncFnMut() -> Res<f64>) -> Res<Vec<f64>> {
    let mut secs = Vec::new();
    for r in 0..RUNS {
        let s = run().await?;
        eprintln!(
            "[replication] {name} run {}/{RUNS}: {s:.3} s, {:.0} blocks/s",
            r + 1,
            n as f64 / s
        );
        secs.push(s);
    }
    Ok(secs)
}

async fn workload(tag: &str, size: usize, n: usize) {
    let name = |pair: &str| format!("repl_{tag}_{pair}");
    let readers = [
        ("libdat_libdat", Durability::Full),
        ("libdat_libdat_nosync", Durability::NoSync),
    ];

    // libdat writer: libdat readers, then a JS reader
    let any_libdat_writer =
        readers.iter().any(|(p, _)| selected(&name(p))) || selected(&name("libdat_js"));
    if any_libdat_writer {
        eprintln!("[replication] repl_{tag}: building the libdat writer ({n} × {size} B) ...");
        match LibdatWriter::build(size, n).await {
            Err(e) => {
                for (p, _) in readers.iter().chain(&[("libdat_js", Durability::Full)]) {
                    if selected(&name(p)) {
                        report(&name(p), n, size, Err(e.clone()));
                    }
                }
            }
            Ok(mut w) => {
                let (addr, key) = (w.addr(), w.log.key());
                for (pair, durability) in readers {
                    if !selected(&name(pair)) {
                        continue;
                    }
                    let secs = runs(&name(pair), n, async || {
                        let secs = libdat_download(&addr, &key, n, size, durability).await?;
                        // untimed: the writer's side of the connection ends after the reader's
                        w.finish_connection().await;
                        Ok(secs)
                    })
                    .await;
                    report(&name(pair), n, size, secs);
                }
                if selected(&name("libdat_js")) {
                    let secs = js_reader(&w, n, size).await;
                    report(&name("libdat_js"), n, size, secs);
                }
                w.server.close().await;
            }
        }
    }

    // JS writer: libdat readers
    let js_readers = [
        ("js_libdat", Durability::Full),
        ("js_libdat_nosync", Durability::NoSync),
    ];
    if js_readers.iter().any(|(p, _)| selected(&name(p))) {
        eprintln!("[replication] repl_{tag}: building the JS writer ({n} × {size} B) ...");
        let writer = async {
            let js = JsPeer::spawn(&[
                "writer".into(),
                "--size".into(),
                size.to_string(),
                "--blocks".into(),
                n.to_string(),
            ])?;
            let hello = js.line(Duration::from_secs(600))?;
            let port = hello["port"].as_u64().ok_or("no port from the JS writer")?;
            let key: [u8; 32] = hex::decode(hello["key"].as_str().ok_or("no key")?)
                .map_err(|e| e.to_string())?
                .try_into()
                .map_err(|_| "bad key length".to_string())?;
            if hello["length"].as_u64() != Some(n as u64) {
                return Err(format!("JS writer length {}", hello["length"]));
            }
            Ok((js, format!("127.0.0.1:{port}"), key))
        }
        .await;
        match writer {
            Err(e) => {
                for (p, _) in js_readers {
                    if selected(&name(p)) {
                        report(&name(p), n, size, Err(e.clone()));
                    }
                }
            }
            Ok((js, addr, key)) => {
                for (pair, durability) in js_readers {
                    if !selected(&name(pair)) {
                        continue;
                    }
                    let secs = runs(&name(pair), n, async || {
                        libdat_download(&addr, &key, n, size, durability).await
                    })
                    .await;
                    report(&name(pair), n, size, secs);
                }
                if let Err(e) = js.finish() {
                    eprintln!("[replication] repl_{tag}: JS writer: {e}");
                }
            }
        }
    }
}

/// libdat → JS: a JS reader process downloads from `w` 3 times and reports its own timings.
async fn js_reader(w: &LibdatWriter, n: usize, size: usize) -> Res<Vec<f64>> {
    let js = JsPeer::spawn(&[
        "reader".into(),
        "--port".into(),
        w.server.local_addr().port().to_string(),
        "--key".into(),
        hex::encode(w.log.key()),
        "--blocks".into(),
        n.to_string(),
        "--size".into(),
        size.to_string(),
        "--runs".into(),
        RUNS.to_string(),
    ])?;
    let mut secs = Vec::new();
    for _ in 0..RUNS {
        let line = js.line(RUN_TIMEOUT)?;
        let s = line["secs"]
            .as_f64()
            .ok_or(format!("bad reader line {line}"))?;
        eprintln!(
            "[replication] libdat_js run {}: {s:.3} s, {:.0} blocks/s",
            line["run"],
            n as f64 / s
        );
        secs.push(s);
    }
    js.finish()?;
    Ok(secs)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let div = if quick { 10 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        workload("64k", 64 * 1024, 2000 / div).await;
        workload("1k", 1024, 100_000 / div).await;
    });
}

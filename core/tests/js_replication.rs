//! Replication with the JavaScript reference (hypercore 11.39.5, `tests/interop/repl-peer.js`) over
//! TCP on 127.0.0.1, both directions: full sync, a sparse range, live appends, two logs on one
//! connection, default (manifest) and compat logs, a JS reader behind a libdat relay.
//!
//! Needs `npm ci` in `tests/interop` (done by `make test`); `LIBDAT_SKIP_INTEROP=1` skips.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dat_core::replication::{ConnectionOptions, driver};
use dat_core::{Log, LogOptions, Store};
use serde_json::Value;
use sha2::{Digest, Sha256};

struct JsPeer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl JsPeer {
    fn spawn(args: &[&str]) -> Option<JsPeer> {
        if std::env::var_os("LIBDAT_SKIP_INTEROP").is_some() {
            eprintln!("LIBDAT_SKIP_INTEROP is set: skipping");
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
        assert!(
            dir.join("node_modules/hypercore").is_dir(),
            "tests/interop/node_modules is missing: run `npm ci` in tests/interop (make test does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("repl-peer.js"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node must be installed");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Some(JsPeer {
            child,
            stdin,
            lines,
        })
    }

    async fn line(&self) -> Value {
        let rx = &self.lines;
        let line = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(90)))
            .expect("the JavaScript peer answered in time");
        serde_json::from_str(&line).unwrap()
    }

    async fn command(&mut self, cmd: &str) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.line().await
    }

    fn finish(mut self) {
        let _ = writeln!(self.stdin, "exit");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the JavaScript peer failed: {status}");
    }
}

/// The block the JS writer puts at `i` of the log with `seed` (see repl-peer.js `blockOf`).
fn js_block(seed: u64, i: u64) -> Vec<u8> {
    format!("log {seed} block {i} ")
        .repeat((i % 97) as usize)
        .into_bytes()
}

fn key(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

async fn until(log: &Log, pred: impl Fn(&Log) -> bool) {
    let mut events = log.subscribe();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !pred(log) {
            match events.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("log events ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "timed out: length {} contiguous {}",
            log.length(),
            log.contiguous_length()
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_writer_to_libdat_reader_two_logs_and_live_append() {
    let Some(mut js) = JsPeer::spawn(&["writer", "--seed", "5", "--blocks", "300", "--logs", "2"])
    else {
        return;
    };
    let hello = js.line().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let logs: Vec<Log> = hello["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| store.open_log(&key(k), None).unwrap())
        .collect();
    let addr = format!("127.0.0.1:{}", hello["port"]);
    let conn = driver::connect(&store, &addr, ConnectionOptions::default())
        .await
        .unwrap();
    for (k, log) in logs.iter().enumerate() {
        until(log, |l| l.length() == 300 && l.contiguous_length() == 300).await;
        for i in 0..300 {
            assert_eq!(
                log.get(i).unwrap(),
                js_block(5 + k as u64, i),
                "log {k} block {i}"
            );
        }
        assert!(
            log.manifest().is_some(),
            "the manifest came from the JS writer"
        );
    }
    // a live append in JS arrives here
    let r = js.command("append 1 hello-from-javascript").await;
    assert_eq!(r["length"], 301);
    until(&logs[1], |l| l.contiguous_length() == 301).await;
    assert_eq!(logs[1].get(300).unwrap(), b"hello-from-javascript");
    conn.close().await.unwrap();
    js.finish();
}

/// A whole-log (non-sparse) libdat reader hears of the blocks a JS peer holds past a hole: its
/// wants go out as the 2^21-block segments the reference accepts (a longer want is ignored by
/// it, and a JS peer then announces only its contiguous prefix, here nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_sparse_reader_gets_the_blocks_of_a_js_peer_with_a_hole() {
    let Some(mut js) = JsPeer::spawn(&["writer", "--seed", "11", "--blocks", "100"]) else {
        return;
    };
    let hello = js.line().await;
    let r = js.command("clear 0 0 1").await;
    assert_eq!(r["contiguous"], 0, "the JS writer lost block 0");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = store.open_log(&key(&hello["keys"][0]), None).unwrap();
    let addr = format!("127.0.0.1:{}", hello["port"]);
    let conn = driver::connect(&store, &addr, ConnectionOptions::default())
        .await
        .unwrap();
    until(&log, |l| {
        l.length() == 100 && l.has_count(1, 100).unwrap_or(0) == 99
    })
    .await;
    for i in 1..100 {
        assert_eq!(log.get(i).unwrap(), js_block(11, i), "block {i}");
    }
    assert!(!log.has(0).unwrap(), "nobody has block 0");
    conn.close().await.unwrap();
    js.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libdat_reader_follows_a_js_writer_that_truncates_onto_a_new_fork() {
    let Some(mut js) = JsPeer::spawn(&["writer", "--seed", "9", "--blocks", "120"]) else {
        return;
    };
    let hello = js.line().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = store.open_log(&key(&hello["keys"][0]), None).unwrap();
    let addr = format!("127.0.0.1:{}", hello["port"]);
    let conn = driver::connect(&store, &addr, ConnectionOptions::default())
        .await
        .unwrap();
    until(&log, |l| l.length() == 120 && l.contiguous_length() == 120).await;

    let r = js.command("truncate 0 70 one two three").await;
    assert_eq!(
        (r["length"].as_u64(), r["fork"].as_u64()),
        (Some(73), Some(1))
    );
    until(&log, |l| {
        l.fork() == 1 && l.length() == 73 && l.contiguous_length() == 73
    })
    .await;
    for i in 0..70 {
        assert_eq!(log.get(i).unwrap(), js_block(9, i), "block {i}");
    }
    assert_eq!(log.get(70).unwrap(), b"one");
    assert_eq!(log.get(72).unwrap(), b"three");
    // and it keeps following: a live append on the new fork
    let r = js.command("append 0 after-the-fork").await;
    assert_eq!(r["length"], 74);
    until(&log, |l| l.contiguous_length() == 74).await;
    assert_eq!(log.get(73).unwrap(), b"after-the-fork");
    conn.close().await.unwrap();
    js.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_reader_follows_a_libdat_writer_that_truncates_onto_a_new_fork() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = store.create_log(LogOptions::default()).unwrap();
    let old: Vec<Vec<u8>> = (0..120).map(|i| js_block(3, i)).collect();
    log.append_batch(&old).unwrap();
    let mut server = driver::listen(&store, "127.0.0.1:0", ConnectionOptions::default())
        .await
        .unwrap();
    let port = server.local_addr().port().to_string();
    let Some(mut js) =
        JsPeer::spawn(&["reader", "--port", &port, "--key", &hex::encode(log.key())])
    else {
        return;
    };
    let served = server.accept().await.unwrap();
    let result = js.line().await;
    assert_eq!(result["logs"][0]["contiguous"], 120);

    log.truncate(70).unwrap();
    log.append_batch(&[b"one".as_slice(), b"two", b"three"])
        .unwrap();
    let r = js.command("fork 0 1 73").await;
    assert_eq!(
        (r["fork"].as_u64(), r["length"].as_u64()),
        (Some(1), Some(73))
    );
    for i in 0..73u64 {
        let want = log.get(i).unwrap();
        assert_eq!(
            r["blocks"][i as usize],
            hex::encode(Sha256::digest(&want)).as_str(),
            "block {i}"
        );
    }
    js.finish();
    served.join().await.unwrap();
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libdat_sparse_reader_of_a_js_compat_writer_fetches_a_range() {
    let Some(js) = JsPeer::spawn(&["writer", "--seed", "9", "--blocks", "600", "--compat"]) else {
        return;
    };
    let hello = js.line().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = store.open_log(&key(&hello["keys"][0]), None).unwrap();
    let addr = format!("127.0.0.1:{}", hello["port"]);
    let opts = ConnectionOptions {
        sparse: true,
        ..Default::default()
    };
    let conn = driver::connect(&store, &addr, opts).await.unwrap();
    until(&log, |l| l.length() == 600).await;
    assert!(log.is_compat());
    let range = log.prioritize(dat_core::scheduler::Prioritize::range(250, 270));
    tokio::time::timeout(std::time::Duration::from_secs(30), range.done())
        .await
        .expect("the range arrives")
        .unwrap();
    assert_eq!(log.has_count(250, 270).unwrap(), 20);
    assert_eq!(
        log.has_count(0, 600).unwrap(),
        20,
        "only the range was downloaded"
    );
    for i in 250..270 {
        assert_eq!(log.get(i).unwrap(), js_block(9, i));
    }
    conn.close().await.unwrap();
    js.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libdat_writer_to_js_reader_full_sparse_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.create_log(LogOptions::default()).unwrap();
    let b = store
        .create_log(LogOptions {
            compat: true,
            key_pair: None,
        })
        .unwrap();
    let blocks =
        |seed: u64, n: u64| -> Vec<Vec<u8>> { (0..n).map(|i| js_block(seed, i)).collect() };
    for chunk in blocks(1, 400).chunks(33) {
        a.append_batch(chunk).unwrap();
    }
    b.append_batch(&blocks(2, 120)).unwrap();
    let mut server = driver::listen(&store, "127.0.0.1:0", ConnectionOptions::default())
        .await
        .unwrap();
    let port = server.local_addr().port().to_string();
    let keys = format!("{},{}", hex::encode(a.key()), hex::encode(b.key()));

    // full sync of two logs on one connection
    let Some(mut js) = JsPeer::spawn(&["reader", "--port", &port, "--key", &keys]) else {
        return;
    };
    let served = server.accept().await.unwrap();
    let result = js.line().await;
    for (n, (log, seed)) in [(&a, 1u64), (&b, 2u64)].into_iter().enumerate() {
        let r = &result["logs"][n];
        assert_eq!(r["length"], log.length());
        assert_eq!(r["contiguous"], log.length());
        for i in 0..log.length() {
            let want = hex::encode(Sha256::digest(js_block(seed, i)));
            assert_eq!(
                r["blocks"][i.to_string()],
                want.as_str(),
                "log {n} block {i}"
            );
        }
    }
    // a live append here arrives in JS
    a.append(b"hello-from-libdat").unwrap();
    let r = js.command("wait 0 401").await;
    assert_eq!(r["last"], "hello-from-libdat");
    js.finish();
    served.join().await.unwrap();

    // a sparse range: the JS reader downloads only what it asked for
    let Some(js) = JsPeer::spawn(&[
        "reader",
        "--port",
        &port,
        "--key",
        &hex::encode(a.key()),
        "--range",
        "100-140",
    ]) else {
        return;
    };
    let result = js.line().await;
    let r = &result["logs"][0];
    assert_eq!(r["held"], 40);
    assert_eq!(
        r["blocks"]["120"],
        hex::encode(Sha256::digest(js_block(1, 120))).as_str()
    );
    js.finish();
    server.close().await;
}

/// A JS reader behind a libdat relay: writer W (libdat) -> relay R (libdat, its own store,
/// non-sparse) -> JS reader J, which never meets W. J pairs with R while R holds nothing, so it
/// hears of R's blocks as R downloads them: the `range` R sends per run of blocks it stored (the
/// replicator's `PeerCommand::Have`), without which J never asks for them (the JS reference asks a
/// peer only for blocks it announced). A live append on W then reaches J the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_reader_behind_a_libdat_relay_gets_every_block_of_the_writer() {
    use dat_core::replication::ConnectionEvent;
    const N: u64 = 300;
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wstore = Store::open(wd.path()).unwrap();
    let wlog = wstore.create_log(LogOptions::default()).unwrap();
    let blocks: Vec<Vec<u8>> = (0..N).map(|i| js_block(4, i)).collect();
    for chunk in blocks.chunks(25) {
        wlog.append_batch(chunk).unwrap();
    }
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let mut relay = driver::listen(&rstore, "127.0.0.1:0", ConnectionOptions::default())
        .await
        .unwrap();
    let port = relay.local_addr().port().to_string();
    let Some(mut js) = JsPeer::spawn(&[
        "reader",
        "--port",
        &port,
        "--key",
        &hex::encode(wlog.key()),
        "--length",
        &N.to_string(),
    ]) else {
        return;
    };
    let downstream = relay.accept().await.unwrap();
    let mut events = downstream.subscribe();
    let dk = wlog.discovery_key();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(ConnectionEvent::PeerAdd { discovery_key }) if discovery_key == dk => break,
                Ok(_) => {}
                Err(e) => panic!("relay events: {e}"),
            }
        }
    })
    .await
    .expect("the JS reader paired with the relay");
    assert_eq!(rlog.length(), 0, "the relay has nothing yet");

    // only now does the relay meet the writer
    let mut server = driver::listen(&wstore, "127.0.0.1:0", ConnectionOptions::default())
        .await
        .unwrap();
    let upstream = driver::connect(
        &rstore,
        &server.local_addr().to_string(),
        ConnectionOptions::default(),
    )
    .await
    .unwrap();
    let served = server.accept().await.unwrap();
    let result = js.line().await;
    let r = &result["logs"][0];
    assert_eq!(r["length"], N);
    assert_eq!(r["contiguous"], N);
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(
            r["blocks"][i.to_string()],
            hex::encode(Sha256::digest(block)).as_str(),
            "block {i}"
        );
    }

    // a live append on the writer: the relay fetches it and announces it, and J gets it from there
    wlog.append(b"live-through-the-relay").unwrap();
    let r = js.command(&format!("wait 0 {}", N + 1)).await;
    assert_eq!(r["length"], N + 1);
    assert_eq!(r["last"], "live-through-the-relay");
    assert!(rlog.has(N).unwrap(), "J's copy came from the relay's");
    js.finish();
    downstream.join().await.unwrap();
    upstream.close().await.unwrap();
    served.join().await.unwrap();
    server.close().await;
    relay.close().await;
}

//! Drives with the JavaScript reference (hyperdrive 13.3.4 on corestore 7.12.5,
//! `tests/interop/drive-peer.js`) over TCP on 127.0.0.1, both directions:
//!
//! - JS writes a drive (files, a multi-block file, a write stream, symlinks, an executable with
//!   metadata, a delete, an empty file, a unicode name, several versions); libdat opens it by key,
//!   whole and sparse, and reads every file, a byte range (read stream and cursor), old versions
//!   (checkout), diffs, the changes stream and a file's history, and compares with what JS reports;
//!   a live JS write arrives in libdat's live changes stream.
//! - libdat writes a drive (deduplicated files stored as block maps, a big file written through a
//!   writer, symlinks, metadata, a delete, several versions) and serves it; JS opens it by key and
//!   reads every file, a range, an old version, a diff and the listings; a live libdat write
//!   arrives in JS's `drive.watch()`.
//!
//! Needs `npm ci` in `tests/interop` (done by `make test`); `LIBDAT_SKIP_INTEROP=1` skips.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dat_core::Store;
use dat_core::drive::{ChangeKind, DiffKind, Drive, DriveOptions, Entry, PutOptions};
use dat_core::replication::{ConnectionOptions, driver};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(90);

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
            dir.join("node_modules/hyperdrive").is_dir(),
            "tests/interop/node_modules is missing: run `npm ci` in tests/interop (make test does)"
        );
        let mut child = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
            .arg(dir.join("drive-peer.js"))
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

    /// The next JSON line (blocking: call from a blocking thread).
    fn line(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .expect("the JavaScript peer answered in time");
        serde_json::from_str(&line).unwrap()
    }

    fn command(&mut self, cmd: &str) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.line()
    }

    fn finish(mut self) {
        let _ = writeln!(self.stdin, "exit");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the JavaScript peer failed: {status}");
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn key32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// Waits (blocking) until `pred` holds, polling.
fn until(what: &str, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file as drive-peer.js reports it.
fn file_json(drive: &Drive, path: &str, e: &Entry) -> Value {
    let content = e
        .blob
        .map(|_| drive.get(path).unwrap().expect("a file has content"));
    json!({
        "executable": e.executable,
        "linkname": e.linkname,
        "metadata": e.metadata.clone().unwrap_or(Value::Null),
        "size": content.as_ref().map_or(0, Vec::len),
        "blockMap": e.blob.is_some_and(|b| b.block_map),
        "sha256": content.as_deref().map(sha),
    })
}

/// Every file of `drive` (read through libdat), as drive-peer.js reports them.
fn files_json(drive: &Drive) -> BTreeMap<String, Value> {
    drive
        .list("/", true)
        .unwrap()
        .into_iter()
        .map(|(p, e)| {
            let f = file_json(drive, &p, &e);
            (p, f)
        })
        .collect()
}

fn as_map(v: &Value) -> BTreeMap<String, Value> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn kind_name(k: DiffKind) -> &'static str {
    match k {
        DiffKind::Added => "added",
        DiffKind::Removed => "removed",
        DiffKind::Changed => "changed",
    }
}

/// A diff as (path, kind, left entry, right entry): libdat's, or from JS's `{path, left, right}`.
type DiffRow = (String, &'static str, Option<Entry>, Option<Entry>);

fn libdat_diff(drive: &Drive, version: u64, folder: &str) -> Vec<DiffRow> {
    drive
        .diff(version, folder)
        .unwrap()
        .into_iter()
        .map(|d| (d.path, kind_name(d.kind), d.left, d.right))
        .collect()
}

fn js_diff(items: &Value) -> Vec<DiffRow> {
    let entry = |v: &Value| -> Option<Entry> {
        (!v.is_null()).then(|| Entry::decode(&serde_json::to_vec(v).unwrap()).unwrap())
    };
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|it| {
            let (l, r) = (entry(&it["left"]), entry(&it["right"]));
            let kind = match (&l, &r) {
                (Some(_), None) => "added",
                (None, Some(_)) => "removed",
                _ => "changed",
            };
            (it["path"].as_str().unwrap().to_string(), kind, l, r)
        })
        .collect()
}

fn range_via_stream(drive: &Drive, path: &str, start: u64, end: u64) -> String {
    let bytes: Vec<u8> = drive
        .read_stream(path, start, Some(end))
        .unwrap()
        .map(|c| c.unwrap())
        .collect::<Vec<_>>()
        .concat();
    hex::encode(bytes)
}

fn range_via_cursor(drive: &Drive, path: &str, start: u64, end: u64) -> String {
    let mut c = drive.cursor(path).unwrap();
    c.seek(SeekFrom::Start(start)).unwrap();
    let mut buf = vec![0u8; (end - start + 1) as usize];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(c.tell(), end + 1);
    hex::encode(buf)
}

/// Everything the JS writer reported, read back through libdat.
fn check_js_drive(drive: &Drive, want: &Value) {
    assert_eq!(drive.version(), want["version"].as_u64().unwrap());
    assert_eq!(files_json(drive), as_map(&want["files"]), "every file");
    assert_eq!(drive.readdir("/").unwrap(), strings(&want["readdir"]));
    let shallow: Vec<String> = drive
        .list("/", false)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(shallow, strings(&want["shallow"]));
    for (link, target) in want["follow"].as_object().unwrap() {
        let (p, e) = drive.entry_follow(link).unwrap().unwrap();
        assert_eq!(p, target.as_str().unwrap(), "{link} follows to");
        assert!(e.blob.is_some());
    }
    let r = &want["range"];
    let (path, start, end) = (
        r["path"].as_str().unwrap(),
        r["start"].as_u64().unwrap(),
        r["end"].as_u64().unwrap(),
    );
    assert_eq!(range_via_stream(drive, path, start, end), r["hex"]);
    assert_eq!(range_via_cursor(drive, path, start, end), r["hex"]);
    for (v, files) in want["checkouts"].as_object().unwrap() {
        let old = drive.checkout(v.parse().unwrap()).unwrap();
        assert!(old.is_checkout());
        assert_eq!(files_json(&old), as_map(files), "checkout {v}");
    }
    for d in want["diffs"].as_array().unwrap() {
        let (v, folder) = (
            d["version"].as_u64().unwrap(),
            d["folder"].as_str().unwrap(),
        );
        assert_eq!(
            libdat_diff(drive, v, folder),
            js_diff(&d["items"]),
            "diff against version {v} in {folder}"
        );
    }
    // the changes stream and per-file history follow the JS writer's operations
    let ops: Vec<(u64, ChangeKind, String)> = want["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let kind = if o["op"] == "del" {
                ChangeKind::Del
            } else {
                ChangeKind::Put
            };
            (
                o["version"].as_u64().unwrap(),
                kind,
                o["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let changes: Vec<(u64, ChangeKind, String)> = drive
        .changes(2, false)
        .map(|c| {
            let c = c.unwrap();
            (c.version, c.kind, c.path)
        })
        .collect();
    assert_eq!(changes, ops);
    let history: Vec<u64> = drive
        .file_history("/hello.txt")
        .unwrap()
        .iter()
        .map(|h| h.version)
        .collect();
    let want_history: Vec<u64> = ops
        .iter()
        .filter(|o| o.2 == "/hello.txt")
        .map(|o| o.0)
        .collect();
    assert_eq!(history, want_history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_writes_a_drive_libdat_syncs_it_whole_and_follows_live_changes() {
    let Some(js) = JsPeer::spawn(&["writer"]) else {
        return;
    };
    let want = tokio::task::block_in_place(|| js.line());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let addr = format!("127.0.0.1:{}", want["port"]);
    let conn = driver::connect(&store, &addr, ConnectionOptions::default())
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut js = js;
        let drive = Drive::open(&store, &key32(&want["key"]), DriveOptions::default()).unwrap();
        assert!(!drive.writable());
        // not sparse: metadata, then all of the content, arrive without any read
        let blobs_length = want["blobsLength"].as_u64().unwrap();
        let (meta, content) = (drive.metadata_log().clone(), drive.content_log().clone());
        until("the whole drive", || {
            meta.length() == want["version"].as_u64().unwrap()
                && meta.contiguous_length() == meta.length()
                && content.length() == blobs_length
                && content.contiguous_length() == blobs_length
        });
        check_js_drive(&drive, &want);

        // a live write in JS arrives in the live changes stream
        let mut live = drive.changes(drive.version() + 1, true);
        let r = js.command("put /live/new.txt hello-from-javascript");
        let change = live.next_timeout(Some(WAIT)).unwrap().expect("a change");
        assert_eq!(change.path, "/live/new.txt");
        assert_eq!(change.kind, ChangeKind::Put);
        assert_eq!(change.version, r["version"].as_u64().unwrap());
        assert_eq!(
            drive.get("/live/new.txt").unwrap().unwrap(),
            b"hello-from-javascript"
        );
        let r = js.command("put /hello.txt third");
        let change = live.next_timeout(Some(WAIT)).unwrap().expect("a change");
        assert_eq!(
            (change.version, change.path.as_str()),
            (r["version"].as_u64().unwrap(), "/hello.txt")
        );
        assert_eq!(drive.get("/hello.txt").unwrap().unwrap(), b"third");
        js.finish();
    })
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_writes_a_drive_libdat_reads_it_sparse_fetching_only_what_it_reads() {
    let Some(js) = JsPeer::spawn(&["writer"]) else {
        return;
    };
    let want = tokio::task::block_in_place(|| js.line());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let addr = format!("127.0.0.1:{}", want["port"]);
    let opts = ConnectionOptions {
        sparse: true,
        ..Default::default()
    };
    let conn = driver::connect(&store, &addr, opts).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let drive = Drive::open(
            &store,
            &key32(&want["key"]),
            DriveOptions {
                sparse: true,
                timeout: Some(WAIT),
            },
        )
        .unwrap();
        // a byte range across a block boundary of a 5-block file: its two blocks, and the
        // metadata blocks on the name's lookup path
        let r = &want["range"];
        let (path, start, end) = (
            r["path"].as_str().unwrap(),
            r["start"].as_u64().unwrap(),
            r["end"].as_u64().unwrap(),
        );
        assert_eq!(range_via_stream(&drive, path, start, end), r["hex"]);
        let (meta, content) = (drive.metadata_log(), drive.content_log());
        let content_held = content.has_count(0, content.length()).unwrap();
        let meta_held = meta.has_count(0, meta.length()).unwrap();
        println!(
            "sparse range read: {meta_held} of {} metadata blocks, {content_held} of {} content blocks",
            meta.length(),
            content.length()
        );
        assert_eq!(content_held, 2, "only the range's two blocks");
        assert!(
            meta_held < meta.length(),
            "not all of the metadata: {meta_held}"
        );
        // the same checks as the whole sync, each read fetching what it needs
        check_js_drive(&drive, &want);
        js.finish();
    })
    .await
    .unwrap();
    conn.close().await.unwrap();
}

fn xorshift_bytes(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libdat_writes_a_drive_with_block_maps_js_reads_it_and_watches_a_live_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let drive = Drive::create(&store).unwrap();
    let dedup = PutOptions {
        dedup: true,
        ..Default::default()
    };
    // the model: path -> (content or link target, executable, metadata), at each version
    let mut model: BTreeMap<String, Value> = BTreeMap::new();
    let file = |data: &[u8], exec: bool, meta: Value, block_map: bool| {
        json!({"executable": exec, "linkname": null, "metadata": meta, "size": data.len(),
               "blockMap": block_map, "sha256": sha(data)})
    };
    let link = |target: &str| {
        json!({"executable": false, "linkname": target, "metadata": null, "size": 0,
               "blockMap": false, "sha256": null})
    };

    drive.put("/readme.txt", b"hello from libdat").unwrap();
    model.insert(
        "/readme.txt".into(),
        file(b"hello from libdat", false, Value::Null, false),
    );
    // a big file through a writer, in pieces that are not block-sized
    let big = xorshift_bytes(3 << 20, 11);
    let mut w = drive.writer("/big.bin", PutOptions::default()).unwrap();
    for piece in big.chunks(100_000) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap();
    model.insert("/big.bin".into(), file(&big, false, Value::Null, false));
    drive.put("/old.txt", b"soon gone").unwrap();
    model.insert(
        "/old.txt".into(),
        file(b"soon gone", false, Value::Null, false),
    );
    let v_early = drive.version();
    let early = model.clone();

    // deduplicated files: block maps, the second and third reusing the first one's blocks
    let a = xorshift_bytes(1_000_000, 3);
    let (_, ra) = drive.put_with("/dedup/a.bin", &a, &dedup).unwrap();
    assert_eq!(ra.unwrap().blocks_reused, 0);
    let (_, rb) = drive.put_with("/dedup/b.bin", &a, &dedup).unwrap();
    assert_eq!(rb.unwrap().bytes_new, 0, "a copy stores no new bytes");
    let mut c = a.clone();
    c.splice(
        400_000..400_000,
        b"an insertion in the middle".iter().copied(),
    );
    let (_, rc) = drive.put_with("/dedup/c.bin", &c, &dedup).unwrap();
    let rc = rc.unwrap();
    assert!(rc.bytes_new * 4 < rc.bytes_total, "mostly reused: {rc:?}");
    let big_dedup = xorshift_bytes(4 << 20, 5);
    let mut w = drive.writer("/dedup/big.bin", dedup.clone()).unwrap();
    for piece in big_dedup.chunks(77_777) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap();
    for (p, d) in [
        ("/dedup/a.bin", &a),
        ("/dedup/b.bin", &a),
        ("/dedup/c.bin", &c),
        ("/dedup/big.bin", &big_dedup),
    ] {
        model.insert(p.into(), file(d, false, Value::Null, true));
    }
    let meta = json!({"mode": 493, "owner": "libdat", "list": [1, 2.5, "x"], "n": null});
    drive
        .put_with(
            "/bin/tool",
            b"#!/bin/sh\nexit 0\n",
            &PutOptions {
                executable: true,
                metadata: Some(meta.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    model.insert(
        "/bin/tool".into(),
        file(b"#!/bin/sh\nexit 0\n", true, meta, false),
    );
    drive.symlink("/link", "/big.bin").unwrap();
    model.insert("/link".into(), link("/big.bin"));
    let v_mid = drive.version();
    let mid = model.clone();

    assert!(drive.del("/old.txt").unwrap());
    model.remove("/old.txt");
    drive
        .put("/readme.txt", b"hello again, version two")
        .unwrap();
    model.insert(
        "/readme.txt".into(),
        file(b"hello again, version two", false, Value::Null, false),
    );
    drive.put("/nested/a/b/c.txt", b"deep").unwrap();
    model.insert(
        "/nested/a/b/c.txt".into(),
        file(b"deep", false, Value::Null, false),
    );
    drive.put("/empty.bin", b"").unwrap();
    model.insert("/empty.bin".into(), file(b"", false, Value::Null, false));
    // a batch: many small files in one content append and one bee append, a deletion, a
    // symlink and a deduplicated file among them
    let mut batch = drive.batch().unwrap();
    for i in 0..300 {
        let data = xorshift_bytes(i * 7, i as u64 + 100);
        let p = format!("/batch/{i:03}.bin");
        batch.put(&p, &data).unwrap();
        model.insert(p, file(&data, false, Value::Null, false));
    }
    assert!(batch.del("/batch/007.bin").unwrap());
    model.remove("/batch/007.bin");
    batch.symlink("/batch/link", "../big.bin").unwrap();
    model.insert("/batch/link".into(), link("../big.bin"));
    batch.put_with("/batch/dedup.bin", &c, &dedup).unwrap();
    model.insert(
        "/batch/dedup.bin".into(),
        file(&c, false, Value::Null, true),
    );
    batch.flush().unwrap();
    // libdat itself agrees with the model before JS looks
    assert_eq!(files_json(&drive), model);
    assert_eq!(files_json(&drive.checkout(v_mid).unwrap()), mid);
    assert_eq!(files_json(&drive.checkout(v_early).unwrap()), early);

    let mut server = driver::listen(&store, "127.0.0.1:0", ConnectionOptions::default())
        .await
        .unwrap();
    let port = server.local_addr().port().to_string();
    let key = hex::encode(drive.key());
    let (r_start, r_end) = (65_000u64, 200_000u64);
    let range_arg = format!("/dedup/c.bin:{r_start}:{r_end}");
    let Some(mut js) = JsPeer::spawn(&[
        "reader",
        "--port",
        &port,
        "--key",
        &key,
        "--checkout",
        &v_mid.to_string(),
        "--diff",
        &v_early.to_string(),
        "--range",
        &range_arg,
    ]) else {
        return;
    };
    let served = server.accept().await.unwrap();
    let d = drive.clone();
    let js = tokio::task::spawn_blocking(move || {
        let drive = d;
        let got = js.line();
        assert_eq!(got["key"], key.as_str());
        assert_eq!(got["version"], drive.version());
        assert_eq!(
            as_map(&got["files"]),
            model,
            "JS read every file as libdat wrote it"
        );
        assert_eq!(
            as_map(&got["checkouts"][v_mid.to_string()]),
            mid,
            "checkout {v_mid}"
        );
        assert_eq!(strings(&got["readdir"]), drive.readdir("/").unwrap());
        assert_eq!(
            strings(&got["readdir"]),
            [
                "batch",
                "big.bin",
                "bin",
                "dedup",
                "empty.bin",
                "link",
                "nested",
                "readme.txt"
            ]
        );
        let shallow: Vec<String> = drive
            .list("/", false)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(strings(&got["shallow"]), shallow);
        assert_eq!(
            got["range"]["hex"],
            hex::encode(&c[r_start as usize..=r_end as usize]).as_str()
        );
        let jd = &got["diffs"][0];
        assert_eq!(jd["version"], v_early);
        let js_rows = js_diff(&jd["items"]);
        assert_eq!(js_rows, libdat_diff(&drive, v_early, "/"));
        assert!(js_rows.len() >= 8, "{js_rows:?}");

        // a live write here arrives in JS's drive.watch()
        drive.put("/live.txt", b"hello-from-libdat").unwrap();
        let r = js.command(&format!("wait {} /live.txt", drive.version()));
        assert_eq!(r["text"], "hello-from-libdat");
        assert_eq!(r["version"], drive.version());
        js.finish();
    });
    js.await.unwrap();
    served.join().await.unwrap();
    server.close().await;
}

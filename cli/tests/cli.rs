//! The real `dat` binary against temporary stores and folders, over 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const DAT: &str = env!("CARGO_BIN_EXE_dat");

fn dat(store: &Path, args: &[&str]) -> Output {
    Command::new(DAT)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run dat")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "dat failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output, code: i32, message: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(message), "{message:?} not in {err:?}");
}

fn sample(dir: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir.join("docs/deep")).unwrap();
    for i in 0..120 {
        std::fs::write(
            dir.join(format!("docs/note-{i:03}.txt")),
            format!("note {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    std::fs::write(dir.join("docs/deep/readme.md"), "# deep\n").unwrap();
    let big: Vec<u8> = (0..2_500_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("docs/deep/readme.md", dir.join("readme-link")).unwrap();
    big
}

/// Files under `dir` (relative path → bytes; symlinks → their target).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if m.file_type().is_symlink() {
                out.push((
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                ));
            } else if m.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

struct Sharer {
    child: Child,
    key: String,
    addr: String,
}

impl Drop for Sharer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn share(store: &Path, dir: &Path, extra: &[&str]) -> Sharer {
    let mut child = Command::new(DAT)
        .arg("--store")
        .arg(store)
        .arg("share")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut key, mut addr) = (String::new(), String::new());
    while addr.is_empty() {
        let line = lines
            .next()
            .expect("share prints its key and address")
            .unwrap();
        if let Some(k) = line.strip_prefix("key ") {
            key = k.to_string();
        } else if let Some(a) = line.strip_prefix("listening ") {
            addr = a.to_string();
        }
    }
    Sharer { child, key, addr }
}

#[test]
fn share_clone_cat_log_checkout_diff_history_and_failures() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let big = sample(&src);
    let (s1, s2, s3) = (
        t.path().join("s1"),
        t.path().join("s2"),
        t.path().join("s3"),
    );

    // the first import, then a re-import after one change: only that file makes a version
    let first = dat(&s1, &["share", src.to_str().unwrap(), "--no-serve"]);
    ok(&first);
    let v1 = {
        let info = ok(&dat(&s1, &["--json", "info", src.to_str().unwrap()]));
        serde_json::from_str::<serde_json::Value>(&info).unwrap()["version"]
            .as_u64()
            .unwrap()
    };
    std::fs::write(src.join("docs/note-007.txt"), "changed\n").unwrap();
    let again = dat(&s1, &["share", src.to_str().unwrap(), "--no-serve"]);
    ok(&again);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 added, 1 changed, 0 removed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let sharer = share(&s1, &src, &[]);
    let peer = ["--peer", sharer.addr.as_str()];

    // clone: the folder comes back identical
    let dst = t.path().join("dst");
    let mut args = vec!["clone", sharer.key.as_str(), dst.to_str().unwrap()];
    args.extend(peer);
    ok(&dat(&s2, &args));
    assert_eq!(tree(&src), tree(&dst));

    // cat of a byte range, fetching only what it needs, from a fresh store
    let mut args = vec![
        "cat",
        sharer.key.as_str(),
        "/big.bin",
        "--start",
        "1200000",
        "--end",
        "1200999",
        "--stats",
    ];
    args.extend(peer);
    let out = dat(&s3, &args);
    assert_eq!(out.stdout, &big[1_200_000..1_201_000]);
    let err = String::from_utf8_lossy(&out.stderr);
    let fetched: u64 = err
        .split_whitespace()
        .skip_while(|w| *w != "metadata")
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        fetched <= 18,
        "content blocks fetched for a 1000-byte range: {err}"
    );

    // log (newest first), history, checkout, diff: from the clone's store, offline
    let log = ok(&dat(&s2, &["log", &sharer.key]));
    let first_line = log.lines().next().unwrap();
    assert!(first_line.contains("/docs/note-007.txt"), "{first_line}");
    let newest: u64 = first_line.split('\t').next().unwrap().parse().unwrap();
    assert_eq!(newest, v1 + 1);
    let history = ok(&dat(&s2, &["history", &sharer.key, "/docs/note-007.txt"]));
    assert_eq!(history.lines().count(), 2, "{history}");
    let old = t.path().join("old");
    // offline, the old content is not in the clone's store: a clear failure
    fails(
        &dat(
            &s2,
            &[
                "checkout",
                &sharer.key,
                &v1.to_string(),
                t.path().join("o2").to_str().unwrap(),
            ],
        ),
        3,
        "give --peer",
    );
    ok(&dat(
        &s2,
        &[
            "checkout",
            &sharer.key,
            &v1.to_string(),
            old.to_str().unwrap(),
            "--peer",
            &sharer.addr,
        ],
    ));
    assert_eq!(
        std::fs::read(old.join("docs/note-007.txt")).unwrap(),
        "note 7\n".repeat(8).as_bytes()
    );
    let diff = ok(&dat(&s2, &["diff", &sharer.key, &v1.to_string()]));
    assert_eq!(diff.trim(), "~ /docs/note-007.txt");
    let listing = ok(&dat(&s2, &["--json", "ls", &sharer.key, "/docs/deep"]));
    let row: serde_json::Value = serde_json::from_str(listing.lines().next().unwrap()).unwrap();
    assert_eq!(row["path"], "/docs/deep/readme.md");

    // failures: a clear message and the documented exit code
    fails(&dat(&s2, &["ls", "not-a-key"]), 2, "bad key");
    fails(&dat(&s3, &["ls", &"ab".repeat(32)]), 3, "no drive");
    fails(
        &dat(&s3, &["ls", &"ab".repeat(32), "--peer", "127.0.0.1:1"]),
        4,
        "cannot reach peer",
    );
    fails(
        &dat(&s2, &["cat", &sharer.key, "/missing.txt"]),
        3,
        "no file at /missing.txt",
    );
    fails(
        &dat(
            &s2,
            &[
                "checkout",
                &sharer.key,
                "9999",
                t.path().join("x").to_str().unwrap(),
            ],
        ),
        3,
        "past the drive's current version",
    );
    fails(
        &dat(&s1, &["share", t.path().join("nope").to_str().unwrap()]),
        3,
        "no folder",
    );
    fails(
        &dat(&s2, &["history", &sharer.key, "/never.txt"]),
        3,
        "never existed",
    );
}

#[test]
fn a_change_on_the_sharer_arrives_live() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "one").unwrap();
    let (s1, s2) = (t.path().join("s1"), t.path().join("s2"));
    let sharer = share(&s1, &src, &["--watch"]);
    let mut follow = Command::new(DAT)
        .arg("--store")
        .arg(&s2)
        .args([
            "log",
            &sharer.key,
            "--peer",
            &sharer.addr,
            "--follow",
            "--count",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // the existing log comes first
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("/a.txt"), "{first}");
    std::fs::write(src.join("b.txt"), "two").unwrap();
    let live = lines.next().expect("the live change").unwrap();
    assert!(live.contains("put\t/b.txt"), "{live}");
    assert!(follow.wait().unwrap().success());
}

/// A deduplicated file (written through the library) is listed, logged and shown in its history
/// with its own size, not the size of the block map its entry points at.
#[test]
fn a_deduplicated_files_size_is_its_own_not_its_block_maps() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let key = {
        let s = dat_core::Store::open(&store).unwrap();
        let drive = dat_core::drive::Drive::create(&s).unwrap();
        let dedup = dat_core::drive::PutOptions {
            dedup: true,
            ..Default::default()
        };
        drive.put_with("/d.bin", &data, &dedup).unwrap();
        let e = drive.entry("/d.bin").unwrap().unwrap();
        assert!(e.blob.unwrap().byte_length < 1000, "the id covers the map");
        drive
            .key()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let listing = ok(&dat(&store, &["ls", &key]));
    assert_eq!(listing.trim(), format!("/d.bin\t{}", data.len()));
    let json = ok(&dat(&store, &["--json", "ls", &key]));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["entry"]["size"], data.len(), "{json}");
    let log = ok(&dat(&store, &["log", &key]));
    assert!(log.trim().ends_with(&format!("\t{}", data.len())), "{log}");
    let history = ok(&dat(&store, &["history", &key, "/d.bin"]));
    assert_eq!(history.trim(), format!("2\tput\t{}", data.len()));
}

/// A running `dat http`, killed when dropped.
struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway(store: &Path, drive: &str, extra: &[&str]) -> Gateway {
    let mut child = Command::new(DAT)
        .arg("--store")
        .arg(store)
        .args(["http", drive, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("dat http prints its address").unwrap();
        if let Some(a) = line.strip_prefix("listening http://") {
            break a.trim_end_matches('/').to_string();
        }
    };
    Gateway { child, addr }
}

/// One HTTP exchange: the response head and body.
fn http(addr: &str, request: &[u8]) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let split = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8(got[..split].to_vec()).unwrap();
    (head, got[split + 4..].to_vec())
}

fn get(addr: &str, target: &str, headers: &str) -> (String, Vec<u8>) {
    http(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(),
    )
}

#[test]
fn http_serves_files_ranges_folders_and_versions_fetching_only_what_requests_need() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let big = sample(&src);
    std::fs::create_dir_all(src.join("site")).unwrap();
    std::fs::write(src.join("site/index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(src.join("site/a b.txt"), "spaced").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/docs/deep/readme.md", src.join("site/abs-link")).unwrap();
    let (s1, s2) = (t.path().join("s1"), t.path().join("s2"));
    ok(&dat(&s1, &["share", src.to_str().unwrap(), "--no-serve"]));
    let info = |store: &Path, drive: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&dat(store, &["--json", "info", drive]))).unwrap()
    };
    let v1 = info(&s1, src.to_str().unwrap())["version"]
        .as_u64()
        .unwrap();
    std::fs::write(src.join("site/index.html"), "<h1>home, v2</h1>").unwrap();
    ok(&dat(&s1, &["share", src.to_str().unwrap(), "--no-serve"]));
    let sharer = share(&s1, &src, &[]);
    let gw = gateway(&s2, &sharer.key, &["--peer", sharer.addr.as_str()]);
    let a = gw.addr.as_str();

    // a byte range of a 2.5 MB file
    let (head, body) = get(a, "/big.bin", "Range: bytes=1200000-1200999\r\n");
    assert!(head.starts_with("HTTP/1.1 206 Partial Content"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 1200000-1200999/2500000"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 1000"), "{head}");
    assert_eq!(body, &big[1_200_000..1_201_000]);
    // the last bytes, and a range past the end
    let (head, body) = get(a, "/big.bin", "range: bytes=-5\r\n");
    assert!(
        head.contains("Content-Range: bytes 2499995-2499999/2500000"),
        "{head}"
    );
    assert_eq!(body, &big[2_499_995..]);
    let (head, _) = get(a, "/big.bin", "Range: bytes=2500000-\r\n");
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert!(head.contains("Content-Range: bytes */2500000"), "{head}");
    // HEAD: the size, no body, nothing fetched for it
    let (head, body) = http(a, b"HEAD /big.bin HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Length: 2500000"), "{head}");
    assert!(head.contains("Accept-Ranges: bytes"), "{head}");
    assert!(body.is_empty());

    // folders: a redirect to the slash, index.html, an older version, a listing
    let (head, _) = get(a, "/site", "");
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(head.contains("Location: /site/\r\n"), "{head}");
    let (head, body) = get(a, "/site/", "");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert_eq!(body, b"<h1>home, v2</h1>");
    let (_, body) = get(a, &format!("/site/?version={v1}"), "");
    assert_eq!(body, b"<h1>home</h1>");
    let (head, body) = get(a, "/docs/", "");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("<a href=\"deep/\">deep/</a>"), "{body}");
    assert!(
        body.contains("<a href=\"note-119.txt\">note-119.txt</a>"),
        "{body}"
    );
    assert!(body.contains("<a href=\"../\">../</a>"), "{body}");
    let (_, body) = get(a, "/site/a%20b.txt", "");
    assert_eq!(body, b"spaced");
    // a symlink is followed, resolved as the reference resolves it: against the link's own
    // path, so the folder-relative `docs/deep/readme.md` of /readme-link names
    // /readme-link/docs/deep/readme.md, which is not there
    #[cfg(unix)]
    {
        let (head, body) = get(a, "/site/abs-link", "");
        assert!(
            head.contains("Content-Type: text/markdown; charset=utf-8"),
            "{head}"
        );
        assert_eq!(body, b"# deep\n");
        let (head, _) = get(a, "/readme-link", "");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    }

    // errors
    let status = |head: &str| head.split(' ').nth(1).unwrap_or_default().to_string();
    assert_eq!(status(&get(a, "/nothing-here", "").0), "404");
    assert_eq!(status(&get(a, "/?version=999999", "").0), "404");
    assert_eq!(status(&get(a, "/?version=x", "").0), "400");
    assert_eq!(status(&get(a, "/../../etc/passwd", "").0), "400");
    assert_eq!(status(&http(a, b"POST / HTTP/1.1\r\n\r\n").0), "405");
    assert_eq!(status(&http(a, b"\x00\x01 garbage\r\n\r\n").0), "400");
    let huge = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(status(&http(a, huge.as_bytes()).0), "431");
    // the gateway still serves after all that
    assert_eq!(get(a, "/site/a%20b.txt", "").1, b"spaced");

    // what the gateway's store holds: the blocks those requests needed, not the drive
    drop(gw);
    let held = info(&s2, &sharer.key);
    let (local, total) = (
        held["content"]["local_blocks"].as_u64().unwrap(),
        held["content"]["blocks"].as_u64().unwrap(),
    );
    assert!(total > 150, "{held}");
    assert!(
        local <= 10,
        "the gateway fetched {local} of {total} content blocks"
    );
}

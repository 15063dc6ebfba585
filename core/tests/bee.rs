//! The bee against hyperbee 2.27.3's golden vectors, byte for byte.
//!
//! `vectors/hyperbee-2.27.3.txt` is `vectors/out/bee-vector.txt` of the project's shared research
//! folder, the output of `vectors/scripts/bee-vector.js` (Node v20.20.2, hyperbee 2.27.3,
//! hypercore 11.39.5; core key pair `crypto.keyPair(0x01 × 32)`). `hyperbee-2.27.3-edge-cases.txt`
//! is `bee-edge-cases.txt`, from `bee-edge-cases.js`. To regenerate: install those packages next
//! to the scripts and run `node bee-vector.js > bee-vector.txt` (the output is deterministic).

use dat_core::bee::{
    Bee, BeeOptions, ChangeKind, DiffEntry, Entry, Header, HistoryOptions, Metadata, NodeBlock,
    RangeOptions,
};
use dat_core::{Durability, Error, KeyPair, Log, LogOptions, Store, StoreOptions};

const VECTOR: &str = include_str!("vectors/hyperbee-2.27.3.txt");
const EDGE: &str = include_str!("vectors/hyperbee-2.27.3-edge-cases.txt");

/// The block hexes of the section whose title starts with `title`.
fn section(title: &str) -> Vec<Vec<u8>> {
    let mut lines = VECTOR
        .lines()
        .skip_while(|l| !l.starts_with(&format!("== {title}")));
    lines.next().expect("section");
    lines
        .take_while(|l| !l.starts_with("== "))
        .filter_map(|l| l.strip_prefix("hex: "))
        .map(|h| hex::decode(h).unwrap())
        .collect()
}

/// The value after `prefix` on the vector line starting with it.
fn line(prefix: &str) -> &'static str {
    VECTOR
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix}"))
        .trim()
}

fn tree_hash_after(title: &str) -> String {
    let mut lines = VECTOR
        .lines()
        .skip_while(|l| !l.starts_with(&format!("== {title}")));
    lines.next();
    lines
        .find_map(|l| l.strip_prefix("treeHash(length="))
        .map(|l| l.split(" = ").nth(1).unwrap().to_string())
        .unwrap()
}

fn new_log(dir: &tempfile::TempDir) -> Log {
    let store = Store::open(dir.path()).unwrap();
    let log = store
        .create_log(LogOptions {
            compat: false,
            key_pair: Some(KeyPair::from_seed(&[1; 32])),
        })
        .unwrap();
    assert_eq!(
        hex::encode(log.key()),
        "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72"
    );
    log
}

fn blocks(log: &Log) -> Vec<Vec<u8>> {
    (0..log.length()).map(|i| log.get(i).unwrap()).collect()
}

fn assert_blocks(log: &Log, expected: &[Vec<u8>], what: &str) {
    let got = blocks(log);
    assert_eq!(got.len(), expected.len(), "{what}: block count");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(hex::encode(g), hex::encode(e), "{what}: block {i}");
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn show(e: &Entry) -> String {
    let v = e.value.as_deref().map_or("null".into(), s);
    format!("{}={}@{}", s(&e.key), v, e.seq)
}

fn all(bee: &Bee, opts: RangeOptions) -> Vec<String> {
    bee.range(opts)
        .unwrap()
        .map(|e| show(&e.unwrap()))
        .collect()
}

fn json_side(e: &Option<Entry>) -> String {
    match e {
        None => "null".into(),
        Some(e) => format!(
            "[\"{}\",\"{}\",{}]",
            s(&e.key),
            s(e.value.as_deref().unwrap()),
            e.seq
        ),
    }
}

#[test]
fn v1_sequential_puts_deletes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(&dir);
    let bee = Bee::open(log.clone());
    assert_eq!(bee.version(), 1);
    assert!(bee.header().unwrap().is_none());
    for k in 'a'..='o' {
        bee.put(k.to_string(), format!("v{k}")).unwrap();
    }
    assert_eq!(bee.version(), 16);
    assert_blocks(&log, &section("V1 sequential"), "V1");
    assert_eq!(
        hex::encode(log.tree_hash(None).unwrap()),
        tree_hash_after("V1 sequential")
    );
    for k in ["a", "e", "i", "o", "zz"] {
        let got = match bee.get(k).unwrap() {
            Some(e) => format!(
                "{{\"seq\":{},\"key\":\"{}\",\"value\":\"{}\"}}",
                e.seq,
                s(&e.key),
                s(e.value.as_deref().unwrap())
            ),
            None => "null".into(),
        };
        assert_eq!(got, line(&format!("get {k} -> ")), "get {k}");
    }

    bee.put("e", "E2").unwrap();
    assert!(bee.del("a").unwrap());
    assert!(bee.del("i").unwrap());
    assert!(!bee.del("nope").unwrap(), "a missing key appends nothing");
    assert_eq!(bee.version(), 19);
    assert_blocks(&log, &section("V1b"), "V1b");
    assert_eq!(
        hex::encode(log.tree_hash(None).unwrap()),
        tree_hash_after("V1b")
    );

    assert_eq!(
        all(&bee, RangeOptions::new()).join(" "),
        line("readStream:")
    );
    let history: Vec<String> = bee
        .history(HistoryOptions::default())
        .unwrap()
        .map(|h| {
            let h = h.unwrap();
            let kind = match h.kind {
                ChangeKind::Put => "put",
                ChangeKind::Del => "del",
            };
            let v = h.value.as_deref().map_or("null".into(), s);
            format!("{kind}:{}={v}@{}", s(&h.key), h.seq)
        })
        .collect();
    assert_eq!(history.join(" "), line("historyStream:"));

    let co = bee.checkout(4).unwrap();
    assert_eq!(co.version(), 4);
    assert_eq!(
        format!(
            "version 4 entries: {}",
            all(&co, RangeOptions::new()).join(" ")
        ),
        line("checkout(4)")
    );
    assert!(co.put("x", "y").is_err(), "a checkout is read-only");

    let diff: Vec<String> = bee
        .diff(10, RangeOptions::new())
        .unwrap()
        .map(|d| {
            let DiffEntry { left, right } = d.unwrap();
            format!(
                "{{\"left\":{},\"right\":{}}}",
                json_side(&left),
                json_side(&right)
            )
        })
        .collect();
    let expected: Vec<&str> = VECTOR
        .lines()
        .skip_while(|l| !l.starts_with("createDiffStream(10)"))
        .skip(1)
        .take_while(|l| l.starts_with("  {"))
        .map(str::trim)
        .collect();
    assert_eq!(diff, expected);

    // the header
    let h = bee.header().unwrap().unwrap();
    assert_eq!(h, Header::hyperbee(None));
    assert!(Bee::is_hyperbee(&log).unwrap());
}

#[test]
fn v1_reads_with_bounds_history_options_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(&dir);
    let bee = Bee::open(log.clone());
    for k in 'a'..='o' {
        bee.put(k.to_string(), format!("v{k}")).unwrap();
    }
    bee.put("e", "E2").unwrap();
    bee.del("a").unwrap();
    bee.del("i").unwrap();

    let keys = |opts| -> String {
        bee.range(opts)
            .unwrap()
            .map(|e| s(&e.unwrap().key))
            .collect()
    };
    assert_eq!(keys(RangeOptions::new().gte("c").lt("g")), "cdef");
    assert_eq!(keys(RangeOptions::new().gt("c").lte("g")), "defg");
    assert_eq!(keys(RangeOptions::new().gt("h").lt("k")), "j");
    assert_eq!(keys(RangeOptions::new().gte("i").lte("i")), "");
    assert_eq!(keys(RangeOptions::new().reverse(true).limit(3)), "onm");
    assert_eq!(
        keys(RangeOptions::new().reverse(true).gt("b").lte("f")),
        "fedc"
    );
    assert_eq!(
        keys(RangeOptions::new().reverse(true).lt("j").gte("h")),
        "h"
    );
    assert_eq!(keys(RangeOptions::new().gte("zz")), "");
    assert_eq!(keys(RangeOptions::new().lt("a")), "");
    assert_eq!(keys(RangeOptions::new().gt("c").gte("a").limit(2)), "de");
    assert_eq!(
        bee.peek(RangeOptions::new().gt("k")).unwrap().unwrap().key,
        b"l"
    );

    // design notes §1.12: {gte: -3} → del@4 put@5 put@6 (of a 7-block bee), reverse+limit
    let hist = |opts: HistoryOptions| -> Vec<(ChangeKind, u64)> {
        bee.history(opts)
            .unwrap()
            .map(|h| h.map(|h| (h.kind, h.seq)).unwrap())
            .collect()
    };
    assert_eq!(
        hist(HistoryOptions {
            gte: Some(-3),
            ..Default::default()
        }),
        vec![
            (ChangeKind::Put, 16),
            (ChangeKind::Del, 17),
            (ChangeKind::Del, 18)
        ]
    );
    assert_eq!(
        hist(HistoryOptions {
            reverse: true,
            limit: Some(2),
            ..Default::default()
        }),
        vec![(ChangeKind::Del, 18), (ChangeKind::Del, 17)]
    );
    assert_eq!(
        hist(HistoryOptions {
            gt: Some(2),
            lte: Some(4),
            ..Default::default()
        }),
        vec![(ChangeKind::Put, 3), (ChangeKind::Put, 4)]
    );
    assert!(
        hist(HistoryOptions {
            lt: Some(0),
            ..Default::default()
        })
        .is_empty()
    );
    // out-of-range numbers are clamped, never overflow
    assert!(
        hist(HistoryOptions {
            gt: Some(i64::MAX),
            lte: Some(i64::MAX),
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(
        hist(HistoryOptions {
            gte: Some(i64::MIN),
            lte: Some(i64::MIN),
            ..Default::default()
        }),
        vec![]
    );
    assert_eq!(
        hist(HistoryOptions {
            gte: Some(-1000),
            lt: Some(1000),
            ..Default::default()
        })
        .len(),
        18
    );
    assert!(format!("{bee:?}").len() < 1000, "Debug stays short");

    // a reopened store reads the same tree (through a fresh cache)
    let key = log.key();
    drop((bee, log));
    let log = Store::open(dir.path())
        .unwrap()
        .open_log(&key, None)
        .unwrap();
    let bee = Bee::open(log);
    assert_eq!(
        all(&bee, RangeOptions::new()).join(" "),
        line("readStream:")
    );
    assert_eq!(bee.get_by_seq(17).unwrap().value, None);
}

#[test]
fn v2_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(&dir);
    let bee = Bee::open(log.clone());
    let mut b = bee.batch();
    for k in 'a'..='o' {
        b.put(k.to_string(), format!("v{k}")).unwrap();
    }
    assert_eq!(b.len(), 15);
    assert_eq!(b.version(), 16);
    // the header was appended by the first operation; the puts wait for the flush
    assert_eq!(log.length(), 1);
    assert_eq!(b.get("h").unwrap().unwrap().seq, 8);
    assert!(b.get("z").unwrap().is_none());
    b.flush().unwrap();
    assert_blocks(&log, &section("V2"), "V2");
    assert_eq!(
        hex::encode(log.tree_hash(None).unwrap()),
        tree_hash_after("V2")
    );
    let keys: String = all(&bee, RangeOptions::new())
        .iter()
        .map(|e| e[..1].to_string())
        .collect();
    assert_eq!(keys, "abcdefghijklmno");
    // a deletion inside a batch reads as a deletion in the history
    let mut b = bee.batch();
    b.del("c").unwrap();
    b.put("c2", "x").unwrap();
    b.flush().unwrap();
    let h: Vec<_> = bee
        .history(HistoryOptions {
            gte: Some(16),
            ..Default::default()
        })
        .unwrap()
        .map(|h| h.unwrap().kind)
        .collect();
    assert_eq!(h, vec![ChangeKind::Del, ChangeKind::Put]);
}

#[test]
fn v3_binary_keys_and_sub_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(&dir);
    let bee = Bee::open(log.clone());
    bee.put("a", "1").unwrap();
    bee.put("b", "2").unwrap();
    bee.put("c", "3").unwrap();
    bee.put(b"files\0x", "y").unwrap(); // sub('files').put('x') is this key
    assert_blocks(&log, &section("V3"), "V3");
    let got = bee
        .peek(RangeOptions::new().gt(b"files\0").lt(b"files\x01"))
        .unwrap()
        .unwrap();
    assert_eq!(got.key, b"files\0x");
}

#[test]
fn v4_v5_headers_with_metadata() {
    for (title, metadata) in [
        ("V4", Some(Metadata::default())),
        (
            "V5",
            Some(Metadata {
                content_feed: Some(vec![0xab; 32]),
                user_data: Some(b"hi".to_vec()),
            }),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = new_log(&dir);
        let bee = Bee::open_with(
            log.clone(),
            BeeOptions {
                metadata: metadata.clone(),
            },
        );
        bee.put("k", "v").unwrap();
        assert_blocks(&log, &section(title), title);
        assert_eq!(bee.header().unwrap().unwrap().metadata, metadata);
    }
}

#[test]
fn edge_cases_checkout_inside_a_batch_and_put_without_value() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(&dir);
    let bee = Bee::open(log.clone());
    let mut b = bee.batch();
    for (k, v) in [("x", "1"), ("y", "2"), ("z", "3")] {
        b.put(k, v).unwrap();
    }
    b.flush().unwrap();
    // the reference throws for versions 2 and 3 (inside the batch) and reads version 4
    for v in [2, 3] {
        assert!(EDGE.contains(&format!("checkout {v} get x threw")));
        assert!(matches!(bee.checkout(v), Err(Error::InvalidArgument(_))));
    }
    let co = bee.checkout(4).unwrap();
    assert_eq!(
        co.get("x").unwrap(),
        Some(Entry {
            seq: 1,
            key: b"x".to_vec(),
            value: Some(b"1".to_vec())
        })
    );
    assert!(EDGE.contains("checkout 4 get x -> {\"seq\":1,\"key\":\"x\",\"value\":\"1\"}"));
    assert!(matches!(bee.checkout(5), Err(Error::OutOfBounds(_))));
    assert_eq!(bee.checkout(0).unwrap().version(), 1);

    bee.put_value("novalue", None).unwrap();
    let e = bee.get("novalue").unwrap().unwrap();
    assert_eq!((e.seq, e.value), (4, None));
    let hex_line = EDGE.lines().find(|l| l.contains("novalue")).unwrap();
    let expected = hex_line.rsplit(' ').next().unwrap();
    assert_eq!(hex::encode(log.get(4).unwrap()), expected);
    let h = bee.history(HistoryOptions::default()).unwrap().last();
    assert_eq!(h.unwrap().unwrap().kind, ChangeKind::Put);
}

#[test]
fn empty_bee_and_deleting_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(&dir);
    let bee = Bee::open(log.clone());
    assert!(bee.get("a").unwrap().is_none());
    assert_eq!(bee.range(RangeOptions::new()).unwrap().count(), 0);
    assert_eq!(bee.history(HistoryOptions::default()).unwrap().count(), 0);
    // a delete on an empty bee appends the header only
    assert!(!bee.del("a").unwrap());
    assert_eq!(log.length(), 1);
    assert_eq!(bee.version(), 1);

    for i in 0..40u32 {
        bee.put(format!("key{i:03}"), i.to_be_bytes()).unwrap();
    }
    for i in 0..40u32 {
        assert!(bee.del(format!("key{i:03}")).unwrap());
    }
    // the last deletion leaves a root with no keys: one empty level
    let last = NodeBlock::decode(&log.get(log.length() - 1).unwrap()).unwrap();
    assert_eq!(last.levels.len(), 1);
    assert!(last.levels[0].keys.is_empty());
    assert!(bee.get("key000").unwrap().is_none());
    assert_eq!(bee.range(RangeOptions::new()).unwrap().count(), 0);
    let d: Vec<_> = bee
        .diff(41, RangeOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(d.len(), 40);
    assert!(d.iter().all(|d| d.left.is_none() && d.right.is_some()));
    bee.put("again", "1").unwrap();
    assert_eq!(
        all(&bee, RangeOptions::new()),
        vec![format!("again=1@{}", log.length() - 1)]
    );
}

#[test]
fn read_only_and_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(&dir);
    let bee = Bee::open(log.clone());
    bee.put("a", "1").unwrap();
    // a reader without the secret key cannot write
    let other = tempfile::tempdir().unwrap();
    let other_store = Store::open(other.path()).unwrap();
    let reader = other_store.open_log(&log.key(), log.manifest()).unwrap();
    let rb = Bee::open(reader);
    assert!(!rb.writable());
    assert!(matches!(rb.put("a", "1"), Err(Error::NotWritable(_))));
    assert!(matches!(
        rb.batch().put("a", "1"),
        Err(Error::NotWritable(_))
    ));
    // a batch cannot be laid out on a log that grew under it
    let mut b = bee.batch();
    b.put("b", "2").unwrap();
    bee.put("c", "3").unwrap();
    assert!(matches!(b.flush(), Err(Error::Conflict(_))));
    // a dropped batch writes nothing
    let len = log.length();
    let mut b = bee.batch();
    b.put("d", "4").unwrap();
    drop(b);
    assert_eq!(log.length(), len);
    // a log that is not a bee
    let plain = other_store.create_log(LogOptions::default()).unwrap();
    plain.append(b"not a bee").unwrap();
    assert!(!Bee::is_hyperbee(&plain).unwrap());
    plain.append(b"\x0a\x05garbage").unwrap();
    let pb = Bee::open(plain);
    assert!(matches!(pb.get("a"), Err(Error::Corrupt(_))));
}

/// Blocks that decode but describe no valid tree (random pointers, cycles, wrong child counts,
/// pointers past the version, garbage): every read and write returns a value or an error; none
/// panics or loops.
#[test]
fn hostile_blocks_never_panic() {
    use dat_core::bee::Level;
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    for case in 0..60 {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            durability: Durability::NoSync,
            ..Default::default()
        };
        let store = Store::open_with(dir.path(), opts).unwrap();
        let log = store.create_log(LogOptions::default()).unwrap();
        log.append(&Header::hyperbee(None).encode()).unwrap();
        let n = 2 + rnd(30);
        for seq in 1..=n {
            if rnd(20) == 0 {
                log.append(&[0x0a, 0x05, 0xff]).unwrap(); // undecodable
                continue;
            }
            let levels = (0..rnd(5))
                .map(|_| {
                    let k = rnd(10) as usize;
                    let keys = (0..k).map(|_| rnd(n + 3)).collect();
                    let children = match rnd(3) {
                        0 => vec![],
                        1 => (0..=k).map(|_| (rnd(seq + 2), rnd(5))).collect(),
                        _ => (0..rnd(12)).map(|_| (rnd(n + 3), rnd(5))).collect(),
                    };
                    Level { keys, children }
                })
                .collect();
            let block = NodeBlock {
                levels,
                key: vec![b'a' + rnd(8) as u8],
                value: (rnd(3) > 0).then(|| vec![1]),
            };
            log.append(&block.encode()).unwrap();
        }
        let bee = Bee::open(log.clone());
        for v in 0..=log.length() + 1 {
            let Ok(co) = bee.checkout(v) else { continue };
            for k in [&b"a"[..], b"d", b"h", b""] {
                let _ = co.get(k);
            }
            if let Ok(it) = co.range(RangeOptions::new().reverse(case % 2 == 0)) {
                let _ = it.take(2000).count();
            }
            if let Ok(it) = co.range(RangeOptions::new().gt("b").lte("f")) {
                let _ = it.take(2000).count();
            }
            let _ = co.history(HistoryOptions::default()).map(|h| h.count());
            if let Ok(d) = co.diff(rnd(log.length() + 1), RangeOptions::new().gte("c")) {
                let _ = d.take(2000).count();
            }
        }
        let _ = bee.put("c", "x");
        let _ = bee.del("d");
        let mut b = bee.batch();
        let _ = b.put("e", "y");
        let _ = b.del("a");
        let _ = b.get("e");
        let _ = b.flush();
    }
}

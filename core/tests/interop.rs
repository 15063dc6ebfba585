//! Interop with the JavaScript reference: `tests/interop/make-logs.js` builds logs with the pinned
//! hypercore 11 (random block sizes, empty blocks, one of ~3 MiB); libdat rebuilds the same logs from
//! the same seeds and must produce the same hashes, signatures and proof bytes, and must verify every
//! block, proof and signature the reference produced.
//!
//! Needs `npm ci` in `tests/interop` (done by `make test`). Set `LIBDAT_SKIP_INTEROP=1` to skip
//! on a machine without Node; without it a missing Node or `node_modules` fails the test.

use std::path::PathBuf;
use std::process::Command;

use dat_core::proof::{self, Data, ProofRequest, RequestBlock, RequestSeek, RequestUpgrade};
use dat_core::{KeyPair, LogOptions, Manifest, Store, Verifier};
use serde_json::Value;

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

/// The generator of make-logs.js, in Rust.
struct Generated {
    sizes: Vec<usize>,
    batches: Vec<(usize, usize)>,
}

fn generate(seed: u32, count: usize, big: bool) -> Generated {
    let mut rng = Mulberry(seed);
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        let r = rng.next() % 100;
        let size = if r < 10 {
            0
        } else if r < 80 {
            rng.next() % 1024
        } else if r < 98 {
            rng.next() % 65536
        } else {
            65536 + rng.next() % 200_000
        };
        sizes.push(size as usize);
    }
    if big {
        sizes[count >> 1] = 3 * 1_048_576 + (rng.next() % 1000) as usize;
    }
    let mut batches = Vec::new();
    let mut start = 0;
    while start < count {
        let n = 1 + (rng.next() % 16) as usize;
        batches.push((start, (start + n).min(count)));
        start += n;
    }
    Generated { sizes, batches }
}

fn content(seed: u32, i: usize, size: usize) -> Vec<u8> {
    let mut rng = Mulberry(seed ^ ((i as u32).wrapping_add(1)).wrapping_mul(0x9E37_79B1));
    let mut out = Vec::with_capacity(size + 4);
    while out.len() < size {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size);
    out
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex")).expect("hex")
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("number")
}

fn request(r: &Value) -> ProofRequest {
    let idx = |v: &Value| {
        (!v.is_null()).then(|| RequestBlock {
            index: u(&v["index"]),
            nodes: u(&v["nodes"]),
        })
    };
    ProofRequest {
        fork: u(&r["fork"]),
        block: idx(&r["block"]),
        hash: idx(&r["hash"]),
        seek: (!r["seek"].is_null()).then(|| RequestSeek {
            bytes: u(&r["seek"]["bytes"]),
            padding: u(&r["seek"]["padding"]),
        }),
        upgrade: (!r["upgrade"].is_null()).then(|| RequestUpgrade {
            start: u(&r["upgrade"]["start"]),
            length: u(&r["upgrade"]["length"]),
        }),
    }
}

fn reference_output() -> Option<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    if std::env::var_os("LIBDAT_SKIP_INTEROP").is_some() {
        eprintln!("LIBDAT_SKIP_INTEROP is set: skipping the interop test");
        return None;
    }
    assert!(
        dir.join("node_modules/hypercore").is_dir(),
        "tests/interop/node_modules is missing: run `npm ci` in tests/interop (make test does), \
         or set LIBDAT_SKIP_INTEROP=1"
    );
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("logs.json");
    let status = Command::new("node")
        .arg(dir.join("make-logs.js"))
        .arg(&file)
        .status()
        .expect("node must be installed to run the interop test");
    assert!(status.success(), "make-logs.js failed");
    Some(serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap())
}

#[test]
fn libdat_matches_and_verifies_hypercore_11() {
    let Some(out) = reference_output() else {
        return;
    };
    assert_eq!(out["hypercore"], "11.39.5");
    let logs = out["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 4);
    let (mut proofs_checked, mut errors_matched, mut blocks_verified) = (0, 0, 0);

    for l in logs {
        let seed = u(&l["seed"]) as u32;
        let compat = l["compat"].as_bool().unwrap();
        let count = u(&l["count"]) as usize;
        let g = generate(seed, count, l["big"].as_bool().unwrap());
        let sizes: Vec<usize> = l["sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| u(s) as usize)
            .collect();
        assert_eq!(g.sizes, sizes, "log {seed}: the generators disagree");
        assert!(sizes.contains(&0), "log {seed} has empty blocks");

        // libdat builds the same log from the same seed
        let key_seed: [u8; 32] = std::array::from_fn(|j| (seed as usize * 7 + j) as u8);
        let kp = KeyPair::from_seed(&key_seed);
        assert_eq!(kp.public_key().to_vec(), h(&l["publicKey"]));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = store
            .create_log(LogOptions {
                compat,
                key_pair: Some(kp.clone()),
            })
            .unwrap();
        assert_eq!(log.key().to_vec(), h(&l["key"]), "log {seed}: key");
        assert_eq!(log.discovery_key().to_vec(), h(&l["discoveryKey"]));
        let manifest = Manifest::default_signer(kp.public_key());
        assert_eq!(manifest.encode(), h(&l["manifest"]));
        let verifier = Verifier::new(log.key(), manifest.clone()).unwrap();

        let batches = l["batches"].as_array().unwrap();
        assert_eq!(batches.len(), g.batches.len());
        for (b, (start, end)) in batches.iter().zip(&g.batches) {
            assert_eq!(
                (u(&b["start"]) as usize, u(&b["end"]) as usize),
                (*start, *end)
            );
            let blocks: Vec<Vec<u8>> = (*start..*end).map(|i| content(seed, i, sizes[i])).collect();
            let (len, bl) = log.append_batch(&blocks).unwrap();
            assert_eq!(len, u(&b["length"]));
            assert_eq!(bl, u(&b["byteLength"]));
            let th = log.tree_hash(None).unwrap();
            assert_eq!(
                th.to_vec(),
                h(&b["treeHash"]),
                "log {seed} at length {len}: tree hash"
            );
            assert_eq!(
                log.signature(),
                h(&b["signature"]),
                "log {seed} at length {len}: signature"
            );
            // the reference's signature verifies on its own
            assert!(verifier.verify(&th, len, 0, &h(&b["signature"])));
        }
        for (i, bh) in l["blockHashes"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                log.node(2 * i as u64).unwrap().unwrap().hash.to_vec(),
                h(bh)
            );
        }

        // every proof: same bytes from libdat, and the reference's bytes verify here
        let reader_dir = tempfile::tempdir().unwrap();
        let reader_store = Store::open(reader_dir.path()).unwrap();
        let reader = reader_store.open_log(&log.key(), None).unwrap();
        for p in l["proofs"].as_array().unwrap() {
            let req = request(&p["request"]);
            let ours = log.proof(&req);
            if let Some(e) = p.get("error") {
                assert!(
                    ours.is_err(),
                    "log {seed}: the reference refused {req:?} ({e}), libdat answered"
                );
                errors_matched += 1;
                continue;
            }
            let js_bytes = h(&p["data"]);
            let ours = ours.unwrap_or_else(|e| panic!("log {seed}: libdat refused {req:?}: {e}"));
            assert_eq!(
                hex::encode(ours.encode()),
                hex::encode(&js_bytes),
                "log {seed}: proof bytes for {req:?}"
            );
            let theirs = Data::decode(&js_bytes).unwrap();
            assert_eq!(theirs, ours);
            if req.upgrade.is_some_and(|up| up.start == 0) {
                // fully remote: hashes and signature from nothing but the key and manifest
                let v = proof::verify_fully_remote(&verifier, &theirs).unwrap();
                assert_eq!(v.tree.length, log.length());
                if theirs.block.is_some() {
                    blocks_verified += 1;
                }
                // a sparse reader (knowing only the key) stores the first; it learns the manifest
                if reader.length() == 0 {
                    let mut with_manifest = theirs.clone();
                    with_manifest.manifest = (!compat).then(|| manifest.clone());
                    reader.apply(&with_manifest).unwrap();
                }
            } else if let Some(up) = req.upgrade {
                // an upgrade from a shorter length: verify against the tree as it was at that length
                let roots: Vec<_> = dat_core::flat_tree::full_roots(2 * up.start)
                    .into_iter()
                    .map(|i| log.node(i).unwrap().unwrap())
                    .collect();
                let state = dat_core::tree::TreeState {
                    fork: 0,
                    length: up.start,
                    byte_length: roots.iter().map(|r| r.size).sum(),
                    roots,
                    signature: vec![],
                };
                let v = proof::verify(&state, &theirs, None).unwrap();
                assert!(v.upgraded && v.unverified.is_none());
                let t = &v.tree;
                assert_eq!(t.length, log.length());
                assert!(verifier.verify(&t.hash(), t.length, t.fork, &t.signature));
            } else {
                // against the trusted tree of a full copy
                log.apply(&theirs).unwrap();
            }
            proofs_checked += 1;
        }
        // the sparse reader verifies further blocks against its signed length
        assert_eq!(reader.length(), log.length());
        for i in (0..log.length()).step_by(7) {
            let data = log
                .proof(&ProofRequest {
                    fork: 0,
                    block: Some(RequestBlock {
                        index: i,
                        nodes: reader.missing_nodes(2 * i).unwrap(),
                    }),
                    ..Default::default()
                })
                .unwrap();
            reader.apply(&data).unwrap();
            assert_eq!(
                reader.get(i).unwrap(),
                content(seed, i as usize, sizes[i as usize])
            );
        }
        for s in l["seeks"].as_array().unwrap() {
            assert_eq!(
                log.seek(u(&s["bytes"])).unwrap(),
                (u(&s["index"]), u(&s["offset"])),
                "log {seed}: seek"
            );
        }
    }
    eprintln!(
        "interop: {proofs_checked} proofs byte-identical and verified ({blocks_verified} blocks fully remote), {errors_matched} refusals matched"
    );
    assert!(blocks_verified >= 1360);
}

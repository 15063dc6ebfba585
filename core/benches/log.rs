//! `cargo bench -p dat-core --bench log [-- --quick]`: the log workloads of `make bench`.
//!
//! Prints one JSON line per workload, in the same shape as `tests/interop/bench.js` prints for the
//! JavaScript reference, so `scripts/bench-table.py` can put them side by side:
//! `{"impl":"libdat","name":...,"ops":N,"secs":[t1,t2,t3],"median_ops_per_sec":X}`.

use std::time::Instant;

use dat_core::proof::{self, ProofRequest, RequestBlock, RequestUpgrade};
use dat_core::{Durability, KeyPair, Log, LogOptions, Store, StoreOptions};

/// Each append workload runs with the store's default durability and with the others.
const DURABILITIES: [(&str, Durability); 3] = [
    ("", Durability::Full),
    ("_nometasync", Durability::NoMetaSync),
    ("_nosync", Durability::NoSync),
];

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

fn store(dir: &std::path::Path, durability: Durability) -> (Store, Log) {
    let s = Store::open_with(
        dir,
        StoreOptions {
            durability,
            ..Default::default()
        },
    )
    .unwrap();
    let log = s
        .create_log(LogOptions {
            compat: false,
            key_pair: Some(KeyPair::from_seed(&[1; 32])),
        })
        .unwrap();
    (s, log)
}

fn block(i: usize, size: usize) -> Vec<u8> {
    vec![(i & 0xff) as u8; size]
}

fn report(name: &str, ops: usize, secs: &mut [f64]) {
    let shown: Vec<String> = secs.iter().map(|s| format!("{s:.6}")).collect();
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    println!(
        "{{\"impl\":\"libdat\",\"name\":\"{name}\",\"ops\":{ops},\"secs\":[{}],\"median_ops_per_sec\":{:.1}}}",
        shown.join(","),
        ops as f64 / median
    );
}

/// Runs `f` three times on fresh state made by `setup`; times only `f`.
fn bench<S>(name: &str, ops: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(&mut S)) {
    if let Ok(only) = std::env::var("BENCH_ONLY")
        && !only.split(',').any(|o| o == name)
    {
        return;
    }
    let mut secs = Vec::new();
    for _ in 0..3 {
        let mut s = setup();
        let t = Instant::now();
        f(&mut s);
        secs.push(t.elapsed().as_secs_f64());
        eprint!(".");
    }
    eprintln!(" {name}");
    report(name, ops, &mut secs);
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = |n: usize| if quick { n / 10 } else { n };
    let kib = vec![7u8; 1024];

    for (suffix, durability) in DURABILITIES {
        let n = scale(5000);
        bench(
            &format!("append_1k_single{suffix}"),
            n,
            || {
                let d = tempfile::tempdir().unwrap();
                let (s, l) = store(d.path(), durability);
                (d, s, l)
            },
            |(_, _, log)| {
                for i in 0..n {
                    let mut b = kib.clone();
                    b[0] = i as u8;
                    log.append(&b).unwrap();
                }
            },
        );
    }
    let n = scale(100_000);
    for (suffix, durability) in DURABILITIES {
        bench(
            &format!("append_1k_batch1000{suffix}"),
            n,
            // as in the reference's bench.js, the batches are built before the clock starts
            || {
                let d = tempfile::tempdir().unwrap();
                let (s, l) = store(d.path(), durability);
                let batches: Vec<Vec<Vec<u8>>> = (0..n / 1000)
                    .map(|b| (0..1000).map(|i| block(b * 1000 + i, 1024)).collect())
                    .collect();
                (d, s, l, batches)
            },
            |(_, _, log, batches)| {
                for batch in batches.iter() {
                    log.append_batch(batch).unwrap();
                }
            },
        );
    }
    for (suffix, durability) in DURABILITIES {
        let n = scale(2000);
        bench(
            &format!("append_64k{suffix}"),
            n,
            || {
                let d = tempfile::tempdir().unwrap();
                let (s, l) = store(d.path(), durability);
                (d, s, l)
            },
            |(_, _, log)| {
                for i in 0..n {
                    log.append(&block(i, 65536)).unwrap();
                }
            },
        );
    }

    // A log of 100,000 x 1 KiB for the read workloads (built untimed, once).
    let d = tempfile::tempdir().unwrap();
    let (_s, log) = store(d.path(), Durability::NoSync);
    let len = scale(100_000);
    for b in 0..len / 1000 {
        let batch: Vec<Vec<u8>> = (0..1000).map(|i| block(b * 1000 + i, 1024)).collect();
        log.append_batch(&batch).unwrap();
    }
    let len = log.length();
    let n = scale(100_000);
    bench(
        "get_seq",
        n,
        || (),
        |_| {
            for i in 0..n as u64 {
                std::hint::black_box(log.get(i % len).unwrap());
            }
        },
    );
    bench(
        "get_random",
        n,
        || Mulberry(42),
        |rng| {
            for _ in 0..n {
                std::hint::black_box(log.get(rng.next() as u64 % len).unwrap());
            }
        },
    );
    let bl = log.byte_length();
    bench(
        "seek",
        n,
        || Mulberry(43),
        |rng| {
            for _ in 0..n {
                std::hint::black_box(log.seek(rng.next() as u64 % bl).unwrap());
            }
        },
    );
    let req = |i: u64| ProofRequest {
        fork: 0,
        block: Some(RequestBlock { index: i, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: len,
        }),
        ..Default::default()
    };
    let n = scale(10_000);
    bench(
        "proof_gen",
        n,
        || Mulberry(44),
        |rng| {
            for _ in 0..n {
                std::hint::black_box(log.proof(&req(rng.next() as u64 % len)).unwrap());
            }
        },
    );
    let mut rng = Mulberry(44);
    let proofs: Vec<_> = (0..n)
        .map(|_| log.proof(&req(rng.next() as u64 % len)).unwrap())
        .collect();
    let verifier = dat_core::Verifier::new(log.key(), log.manifest().unwrap()).unwrap();
    bench(
        "proof_verify",
        n,
        || (),
        |_| {
            for p in &proofs {
                std::hint::black_box(proof::verify_fully_remote(&verifier, p).unwrap());
            }
        },
    );
}

//! Model-based property test: the log against a plain `Vec` of blocks.

use dat_core::proof::{ProofRequest, RequestBlock, RequestSeek, RequestUpgrade};
use dat_core::{Error, KeyPair, LogOptions, Manifest, Store};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    Get(u64),
    Seek(u64),
    Truncate(u64),
    Clear(u64, u64),
    Reopen,
    Snapshot,
}

fn block() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(vec![]),
        6 => prop::collection::vec(any::<u8>(), 1..40),
        1 => prop::collection::vec(any::<u8>(), 200..3000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(block(), 1..12).prop_map(Op::Append),
        4 => any::<u64>().prop_map(Op::Get),
        4 => any::<u64>().prop_map(Op::Seek),
        1 => any::<u64>().prop_map(Op::Truncate),
        1 => (any::<u64>(), 0u64..8).prop_map(|(s, n)| Op::Clear(s, n)),
        1 => Just(Op::Reopen),
        1 => Just(Op::Snapshot),
    ]
}

struct Model {
    blocks: Vec<Option<Vec<u8>>>,
    sizes: Vec<u64>,
    fork: u64,
}

impl Model {
    fn byte_length(&self) -> u64 {
        self.sizes.iter().sum()
    }
    fn start_of(&self, i: usize) -> u64 {
        self.sizes[..i].iter().sum()
    }
}

fn check_seek(m: &Model, bytes: u64, got: Result<(u64, u64), Error>) {
    let total = m.byte_length();
    if bytes > total {
        assert!(
            matches!(got, Err(Error::OutOfBounds(_))),
            "seek {bytes} past {total}: {got:?}"
        );
        return;
    }
    let (bi, off) = got.unwrap();
    if bytes == 0 {
        assert_eq!(
            (bi, off),
            (0, 0),
            "offset 0 is block 0, as in the reference"
        );
        return;
    }
    if bytes == total {
        // the end, or (as in the reference) a trailing empty block that starts there
        assert_eq!(off, 0);
        assert!(
            bi == m.sizes.len() as u64 || m.start_of(bi as usize) == total,
            "{bi}"
        );
        return;
    }
    let start = m.start_of(bi as usize);
    assert_eq!(start + off, bytes, "seek {bytes} -> ({bi}, {off})");
    assert!(off < m.sizes[bi as usize].max(1), "offset inside the block");
    if off > 0 {
        assert!(start < bytes);
    }
}

fn run(ops: Vec<Op>, compat: bool) {
    let dir = tempfile::tempdir().unwrap();
    let kp = KeyPair::from_seed(&[7; 32]);
    let mut store = Store::open(dir.path()).unwrap();
    let mut log = store
        .create_log(LogOptions {
            compat,
            key_pair: Some(kp.clone()),
        })
        .unwrap();
    let key = log.key();
    let mut m = Model {
        blocks: vec![],
        sizes: vec![],
        fork: 0,
    };
    // (snapshot, the model's blocks when it was taken, the fork then)
    type Snap = (dat_core::Snapshot, Vec<Option<Vec<u8>>>, u64);
    let mut snaps: Vec<Snap> = vec![];

    for op in ops {
        match op {
            Op::Append(bs) => {
                let (len, bl) = log.append_batch(&bs).unwrap();
                for b in bs {
                    m.sizes.push(b.len() as u64);
                    m.blocks.push(Some(b));
                }
                assert_eq!(len, m.blocks.len() as u64);
                assert_eq!(bl, m.byte_length());
            }
            Op::Get(i) => {
                let len = m.blocks.len() as u64;
                let i = if len > 0 && i % 4 != 0 {
                    i % len
                } else {
                    i % (len + 3)
                };
                match (m.blocks.get(i as usize), log.get(i)) {
                    (Some(Some(b)), Ok(got)) => assert_eq!(&got, b),
                    (Some(None), Err(Error::NotAvailable(j))) => assert_eq!(j, i),
                    (None, Err(Error::OutOfBounds(_))) => {}
                    (want, got) => panic!("get {i}: model {want:?}, log {got:?}"),
                }
                assert_eq!(
                    log.has(i).unwrap(),
                    matches!(m.blocks.get(i as usize), Some(Some(_)))
                );
            }
            Op::Seek(b) => {
                let total = m.byte_length();
                let b = if b % 5 == 0 {
                    total + b % 3
                } else {
                    b % (total + 1)
                };
                check_seek(&m, b, log.seek(b));
            }
            Op::Truncate(n) => {
                let n = n % (m.blocks.len() as u64 + 1);
                log.truncate(n).unwrap();
                m.blocks.truncate(n as usize);
                m.sizes.truncate(n as usize);
                m.fork += 1;
            }
            Op::Clear(s, n) => {
                let len = m.blocks.len() as u64;
                let s = if len > 0 { s % len } else { 0 };
                let e = (s + n).min(len);
                log.clear(s, e).unwrap();
                for b in &mut m.blocks[s as usize..e as usize] {
                    *b = None;
                }
            }
            Op::Reopen => {
                drop(log);
                drop(store);
                snaps.clear();
                store = Store::open(dir.path()).unwrap();
                log = store.open_log(&key, None).unwrap();
                assert!(log.writable());
            }
            Op::Snapshot => snaps.push((log.snapshot(), m.blocks.clone(), m.fork)),
        }
        assert_eq!(log.length(), m.blocks.len() as u64);
        assert_eq!(log.byte_length(), m.byte_length());
        assert_eq!(log.fork(), m.fork);
        let contiguous = m.blocks.iter().take_while(|b| b.is_some()).count() as u64;
        assert_eq!(log.contiguous_length(), contiguous);
        let mut ranges: Vec<(u64, u64)> = vec![];
        for (i, b) in m.blocks.iter().enumerate() {
            if b.is_some() {
                match ranges.last_mut() {
                    Some(r) if r.1 == i as u64 => r.1 += 1,
                    _ => ranges.push((i as u64, i as u64 + 1)),
                }
            }
        }
        assert_eq!(log.local_ranges(0, u64::MAX).unwrap(), ranges);
        for (snap, blocks, fork) in &snaps {
            assert_eq!(snap.length(), blocks.len() as u64);
            for (i, b) in blocks.iter().enumerate() {
                let still_there = *fork == m.fork || i < m.blocks.len();
                match (snap.get(i as u64), b, still_there) {
                    (Ok(got), Some(b), true) => {
                        if m.blocks.get(i).is_some_and(|x| x.is_some()) {
                            assert_eq!(&got, b)
                        }
                    }
                    (Err(Error::NotAvailable(_)), _, _) => {}
                    (Err(Error::SnapshotStale(_)), _, _) => assert!(*fork != m.fork),
                    (got, want, st) => panic!("snapshot get {i}: {got:?} vs {want:?} ({st})"),
                }
            }
        }
    }

    // A reader holding only the key verifies any block of the final log with a proof.
    let len = log.length();
    if len > 0 {
        let rdir = tempfile::tempdir().unwrap();
        let rstore = Store::open(rdir.path()).unwrap();
        let manifest = (!compat).then(|| Manifest::default_signer(kp.public_key()));
        let reader = rstore.open_log(&key, manifest).unwrap();
        let mut upgraded = false;
        for i in (0..len).rev().step_by(3) {
            if !log.has(i).unwrap() {
                continue;
            }
            let req = ProofRequest {
                fork: log.fork(),
                block: Some(RequestBlock {
                    index: i,
                    nodes: if upgraded {
                        reader.missing_nodes(2 * i).unwrap()
                    } else {
                        0
                    },
                }),
                upgrade: (!upgraded).then_some(RequestUpgrade {
                    start: 0,
                    length: len,
                }),
                ..Default::default()
            };
            // the reader is on fork 0 until its first upgrade; a forked writer serves fork >0
            if !upgraded && log.fork() != 0 {
                break;
            }
            let data = log.proof(&req).unwrap();
            reader.apply(&data).unwrap();
            upgraded = true;
            assert_eq!(reader.get(i).unwrap(), log.get(i).unwrap());
        }
        if upgraded {
            assert_eq!(
                reader.tree_hash(None).unwrap(),
                log.tree_hash(None).unwrap()
            );
            // seek proofs land on the right block
            let total = log.byte_length();
            if total > 0 {
                let bytes = total / 2;
                let req = ProofRequest {
                    fork: log.fork(),
                    seek: Some(RequestSeek { bytes, padding: 0 }),
                    ..Default::default()
                };
                if let Ok(data) = log.proof(&req) {
                    reader.apply(&data).unwrap();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn log_matches_vec_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops, false);
    }

    #[test]
    fn compat_log_matches_vec_model(ops in prop::collection::vec(op(), 1..25)) {
        run(ops, true);
    }
}

/// `Log::missing_nodes_hinted` (the count a replicating reader asks for, from the scheduler's
/// bitfield instead of a storage read per level) never asks for fewer nodes than
/// `missing_nodes`, never runs past a root, and every proof asked for with it verifies: on a
/// reader filling a 300-block log in a seeded random order, with cleared blocks along the way.
#[test]
fn hinted_missing_nodes_ask_for_enough_and_their_proofs_verify() {
    let wdir = tempfile::tempdir().unwrap();
    let wstore = Store::open(wdir.path()).unwrap();
    let kp = KeyPair::from_seed(&[7; 32]);
    let log = wstore
        .create_log(LogOptions {
            key_pair: Some(kp.clone()),
            ..Default::default()
        })
        .unwrap();
    let len = 300u64;
    let blocks: Vec<Vec<u8>> = (0..len)
        .map(|i| vec![i as u8; (i % 7) as usize * 5])
        .collect();
    log.append_batch(&blocks).unwrap();

    let rdir = tempfile::tempdir().unwrap();
    let rstore = Store::open(rdir.path()).unwrap();
    let reader = rstore
        .open_log(&log.key(), Some(Manifest::default_signer(kp.public_key())))
        .unwrap();
    // the upgrade (with block 0): the roots are stored, no other block
    let data = log
        .proof(&ProofRequest {
            fork: 0,
            block: Some(RequestBlock { index: 0, nodes: 0 }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: len,
            }),
            ..Default::default()
        })
        .unwrap();
    reader.apply(&data).unwrap();

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut over, mut asked) = (0u64, 0u64);
    for _ in 0..1500 {
        let i = next() % len;
        if reader.has(i).unwrap() {
            if next() % 8 == 0 {
                reader.clear(i, i + 1).unwrap(); // the tree stays, the bitfield forgets
            }
            continue;
        }
        let exact = reader.missing_nodes(2 * i).unwrap();
        let hinted = reader
            .missing_nodes_hinted(2 * i, |a, b| (a..b).any(|j| reader.has(j).unwrap()))
            .unwrap();
        assert!(
            hinted >= exact,
            "block {i}: hinted {hinted} < exact {exact}"
        );
        over += hinted - exact;
        asked += 1;
        let data = log
            .proof(&ProofRequest {
                fork: 0,
                block: Some(RequestBlock {
                    index: i,
                    nodes: hinted,
                }),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("block {i}, {hinted} nodes: {e}"));
        reader.apply(&data).unwrap();
        assert_eq!(reader.get(i).unwrap(), blocks[i as usize]);
    }
    assert!(asked > 200, "{asked} blocks asked for");
    // nodes asked for beyond need: only where cleared blocks left nodes the bitfield forgot
    assert!(over < asked, "{over} extra nodes over {asked} requests");
}

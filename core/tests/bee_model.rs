//! Model-based property test: the bee against a `BTreeMap`, with a fixed proptest seed.
//!
//! Puts, deletes and batches (flushed or dropped) run on both; after every operation a lookup of
//! the key agrees, and range reads (random bounds, reverse, limit), checkouts of random earlier
//! versions and diffs between random versions agree with the model's snapshots. At the end the
//! whole history agrees block by block.

use std::collections::{BTreeMap, BTreeSet};

use dat_core::bee::{Bee, ChangeKind, DiffEntry, Entry, HistoryOptions, RangeOptions};
use dat_core::{Durability, Store, StoreOptions};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

type Key = Vec<u8>;
/// key → (seq, value)
type Map = BTreeMap<Key, (u64, Vec<u8>)>;

#[derive(Debug, Clone)]
struct Range {
    lower: Option<(Key, bool)>,
    upper: Option<(Key, bool)>,
    reverse: bool,
    limit: Option<usize>,
}

#[derive(Debug, Clone)]
enum Op {
    Put(Key, Vec<u8>),
    Del(Key),
    /// Operations (`None` deletes), then flush (true) or drop.
    Batch(Vec<(Key, Option<Vec<u8>>)>, bool),
    Get(Key),
    Range(Range),
    /// A recorded version (index modulo their count), read whole.
    Checkout(usize),
    /// Two recorded versions and a range.
    Diff(usize, usize, Range),
}

/// Keys with shared prefixes and different lengths: hex of a number below 600, sometimes empty.
fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        50 => (0u32..600).prop_map(|n| format!("{n:x}").into_bytes()),
        1 => Just(Vec::new()),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        8 => prop::collection::vec(any::<u8>(), 1..8),
    ]
}

fn bound() -> impl Strategy<Value = Option<(Key, bool)>> {
    prop::option::weighted(0.6, (key(), any::<bool>()))
}

fn range() -> impl Strategy<Value = Range> {
    (
        bound(),
        bound(),
        any::<bool>(),
        prop::option::weighted(0.3, 0usize..30),
    )
        .prop_map(|(lower, upper, reverse, limit)| Range {
            lower,
            upper,
            reverse,
            limit,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        10 => key().prop_map(Op::Del),
        4 => (
            prop::collection::vec((key(), prop::option::weighted(0.75, value())), 1..60),
            prop::bool::weighted(0.85)
        )
            .prop_map(|(ops, flush)| Op::Batch(ops, flush)),
        6 => key().prop_map(Op::Get),
        3 => range().prop_map(Op::Range),
        2 => any::<usize>().prop_map(Op::Checkout),
        3 => (any::<usize>(), any::<usize>(), range()).prop_map(|(a, b, r)| Op::Diff(a, b, r)),
    ]
}

fn options(r: &Range) -> RangeOptions {
    let mut o = RangeOptions::new().reverse(r.reverse);
    if let Some((k, incl)) = &r.lower {
        o = if *incl { o.gte(k) } else { o.gt(k) };
    }
    if let Some((k, incl)) = &r.upper {
        o = if *incl { o.lte(k) } else { o.lt(k) };
    }
    o.limit = r.limit;
    o
}

fn in_range(r: &Range, k: &[u8]) -> bool {
    let lower_ok = match &r.lower {
        Some((l, true)) => k >= l.as_slice(),
        Some((l, false)) => k > l.as_slice(),
        None => true,
    };
    let upper_ok = match &r.upper {
        Some((u, true)) => k <= u.as_slice(),
        Some((u, false)) => k < u.as_slice(),
        None => true,
    };
    lower_ok && upper_ok
}

fn entry(k: &Key, (seq, v): &(u64, Vec<u8>)) -> Entry {
    Entry {
        seq: *seq,
        key: k.clone(),
        value: Some(v.clone()),
    }
}

fn expected_range(m: &Map, r: &Range) -> Vec<Entry> {
    let it = m.iter().filter(|(k, _)| in_range(r, k));
    let all: Vec<Entry> = if r.reverse {
        it.rev().map(|(k, v)| entry(k, v)).collect()
    } else {
        it.map(|(k, v)| entry(k, v)).collect()
    };
    all.into_iter()
        .take(r.limit.unwrap_or(usize::MAX))
        .collect()
}

fn expected_diff(left: &Map, right: &Map, r: &Range) -> Vec<DiffEntry> {
    let keys: BTreeSet<&Key> = left.keys().chain(right.keys()).collect();
    keys.into_iter()
        .filter(|k| in_range(r, k))
        .filter_map(|k| {
            let (l, rr) = (left.get(k), right.get(k));
            if l.map(|e| e.0) == rr.map(|e| e.0) {
                return None;
            }
            Some(DiffEntry {
                left: l.map(|e| entry(k, e)),
                right: rr.map(|e| entry(k, e)),
            })
        })
        .take(r.limit.unwrap_or(usize::MAX))
        .collect()
}

struct Model {
    map: Map,
    /// Log length.
    length: u64,
    /// (version, map) after every committed write.
    versions: Vec<(u64, Map)>,
    /// Every block after the header: (kind, key, value).
    history: Vec<(ChangeKind, Key, Option<Vec<u8>>)>,
}

impl Model {
    fn header(&mut self) {
        if self.length == 0 {
            self.length = 1;
        }
    }

    /// Applies one write at `seq`; returns whether it appends a block.
    fn apply(map: &mut Map, seq: u64, k: &Key, v: &Option<Vec<u8>>) -> bool {
        match v {
            Some(v) => {
                map.insert(k.clone(), (seq, v.clone()));
                true
            }
            None => map.remove(k).is_some(),
        }
    }

    fn commit(&mut self) {
        self.versions.push((self.length, self.map.clone()));
    }
}

fn collect<T>(it: impl Iterator<Item = Result<T, dat_core::Error>>) -> Vec<T> {
    it.collect::<Result<_, _>>().unwrap()
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            durability: Durability::NoSync,
            ..Default::default()
        },
    )
    .unwrap();
    let bee = Bee::open(store.named_log("model").unwrap());
    let mut m = Model {
        map: Map::new(),
        length: 0,
        versions: vec![(1, Map::new())],
        history: Vec::new(),
    };

    for op in ops {
        match op {
            Op::Put(k, v) => {
                bee.put(&k, &v).unwrap();
                m.header();
                Model::apply(&mut m.map, m.length, &k, &Some(v.clone()));
                m.history.push((ChangeKind::Put, k.clone(), Some(v)));
                m.length += 1;
                m.commit();
                let got = bee.get(&k).unwrap().unwrap();
                assert_eq!(got, entry(&k, &m.map[&k]));
            }
            Op::Del(k) => {
                let appended = bee.del(&k).unwrap();
                m.header();
                assert_eq!(appended, Model::apply(&mut m.map, m.length, &k, &None));
                if appended {
                    m.history.push((ChangeKind::Del, k.clone(), None));
                    m.length += 1;
                    m.commit();
                }
                assert_eq!(bee.get(&k).unwrap(), None);
            }
            Op::Batch(ops, flush) => {
                let mut b = bee.batch();
                let mut map = m.map.clone();
                let mut hist = Vec::new();
                for (k, v) in &ops {
                    if let Some(v) = v {
                        b.put(k, v).unwrap();
                    } else {
                        let appended = b.del(k).unwrap();
                        assert_eq!(appended, map.contains_key(k));
                    }
                    m.header();
                    let seq = m.length + hist.len() as u64;
                    if Model::apply(&mut map, seq, k, v) {
                        let kind = if v.is_some() {
                            ChangeKind::Put
                        } else {
                            ChangeKind::Del
                        };
                        hist.push((kind, k.clone(), v.clone()));
                    }
                    let got = b.get(k).unwrap();
                    assert_eq!(got, map.get(k).map(|e| entry(k, e)), "batch read");
                    assert_eq!(b.len(), hist.len());
                }
                if flush {
                    b.flush().unwrap();
                    if !hist.is_empty() {
                        m.length += hist.len() as u64;
                        m.map = map;
                        m.history.extend(hist);
                        m.commit();
                    }
                } else {
                    drop(b);
                }
                assert_eq!(bee.version(), m.length.max(1));
            }
            Op::Get(k) => {
                assert_eq!(bee.get(&k).unwrap(), m.map.get(&k).map(|e| entry(&k, e)));
            }
            Op::Range(r) => {
                let got = collect(bee.range(options(&r)).unwrap());
                assert_eq!(got, expected_range(&m.map, &r), "range {r:?}");
            }
            Op::Checkout(i) => {
                let (v, map) = &m.versions[i % m.versions.len()];
                let co = bee.checkout(*v).unwrap();
                let all = Range {
                    lower: None,
                    upper: None,
                    reverse: false,
                    limit: None,
                };
                let got = collect(co.range(RangeOptions::new()).unwrap());
                assert_eq!(got, expected_range(map, &all), "checkout {v}");
                for k in map.keys().take(5) {
                    assert_eq!(co.get(k).unwrap(), Some(entry(k, &map[k])));
                }
            }
            Op::Diff(a, b, r) => {
                let n = m.versions.len();
                let (va, left) = &m.versions[a % n];
                let (vb, right) = &m.versions[b % n];
                let lb = if a % 3 == 0 {
                    bee.clone()
                } else {
                    bee.checkout(*va).unwrap()
                };
                let left = if a % 3 == 0 { &m.map } else { left };
                let got = collect(lb.diff(*vb, options(&r)).unwrap());
                assert_eq!(got, expected_diff(left, right, &r), "diff {va} {vb} {r:?}");
            }
        }
    }

    // the full history and the final state
    let hist: Vec<_> = collect(bee.history(HistoryOptions::default()).unwrap())
        .into_iter()
        .map(|h| (h.kind, h.key, h.value))
        .collect();
    assert_eq!(hist, m.history);
    let everything = Range {
        lower: None,
        upper: None,
        reverse: false,
        limit: None,
    };
    assert_eq!(
        collect(bee.range(RangeOptions::new()).unwrap()),
        expected_range(&m.map, &everything)
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        rng_seed: RngSeed::Fixed(0xbee),
        ..ProptestConfig::default()
    })]

    #[test]
    fn bee_matches_btreemap(ops in prop::collection::vec(op(), 1..400)) {
        run(ops);
    }
}

/// A long deterministic run that grows a tree several levels deep, shrinks it and grows it again.
#[test]
fn bee_matches_btreemap_long_run() {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut ops = Vec::new();
    for phase in 0..3 {
        for _ in 0..1500 {
            let k = format!("{:x}", rnd(3000)).into_bytes();
            let r = rnd(100);
            ops.push(match (phase, r) {
                (1, 0..70) => Op::Del(k),
                (_, 0..10) => Op::Del(k),
                (_, 10..13) => Op::Batch(
                    (0..rnd(80))
                        .map(|i| {
                            let k = format!("{:x}", rnd(3000)).into_bytes();
                            (k, (i % 4 != 0).then(|| vec![i as u8]))
                        })
                        .collect(),
                    true,
                ),
                (_, 13..15) => Op::Diff(
                    rnd(1000) as usize,
                    rnd(1000) as usize,
                    Range {
                        lower: None,
                        upper: None,
                        reverse: false,
                        limit: None,
                    },
                ),
                (_, 15..16) => Op::Checkout(rnd(1000) as usize),
                _ => Op::Put(k, rnd(1 << 30).to_le_bytes().to_vec()),
            });
        }
    }
    run(ops);
}

//! Replication scheduler: planner unit tests, a proptest of random event sequences, and the
//! CI scenario tests (design note §A4.5) run in the discrete-event simulator in virtual time.
//! Every simulated scenario checks the planner invariants after every planner call.

use std::time::Duration;

use dat_core::scheduler::sim::workload::{BisectSearches, Download, tail_time};
use dat_core::scheduler::sim::{Driver, PeerSpec, Sim, SimConfig};
use dat_core::scheduler::{
    Action, Availability, Bitfield, Event, Failure, Order, PeerId, Prioritize, RangeHandle,
    Scheduler, SchedulerOptions, bisect_order,
};

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sparse(seed: u64) -> SchedulerOptions {
    SchedulerOptions {
        sparse: true,
        seed,
        ..SchedulerOptions::default()
    }
}

fn sim_cfg(seed: u64, length: u64, block_size: u64) -> SimConfig {
    SimConfig {
        seed,
        length,
        block_size,
        scheduler: sparse(seed),
        check_invariants: true,
        ..SimConfig::default()
    }
}

fn requests(actions: &[Action]) -> Vec<(PeerId, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request { peer, block, .. } => Some((*peer, *block)),
            _ => None,
        })
        .collect()
}

fn cancels(actions: &[Action]) -> Vec<(PeerId, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Cancel { peer, block, .. } => Some((*peer, *block)),
            _ => None,
        })
        .collect()
}

fn checked(s: &Scheduler) {
    if let Err(e) = s.check_invariants() {
        panic!("invariant: {e}");
    }
}

fn add_peer(s: &mut Scheduler, now: Duration, p: u64, contiguous: u64) -> Vec<Action> {
    let a = s.handle(
        now,
        Event::PeerAdded {
            peer: PeerId(p),
            availability: Availability::contiguous(contiguous),
        },
    );
    checked(s);
    a
}

// ------------------------------------------------------------------------------------------
// Unit tests of the pieces.

#[test]
fn bitfield_next_set_and_unset() {
    let mut b = Bitfield::new();
    assert_eq!(b.next_set(0), None);
    assert_eq!(b.next_unset(0), 0);
    b.set_range(10, 5000, true);
    b.set(9000, true);
    assert_eq!(b.next_set(0), Some(10));
    assert_eq!(b.next_set(4999), Some(4999));
    assert_eq!(b.next_set(5000), Some(9000));
    assert_eq!(b.next_set(9001), None);
    assert_eq!(b.next_unset(10), 5000);
    assert_eq!(b.next_unset(9000), 9001);
    assert_eq!(b.prev_set(8999), Some(4999));
    assert_eq!(b.prev_unset(4999), Some(9));
    // A full page summary is skipped in one step.
    let mut big = Bitfield::with_prefix(1 << 20);
    assert_eq!(big.next_unset(0), 1 << 20);
    big.set(777_777, false);
    assert_eq!(big.next_unset(0), 777_777);
    assert_eq!(big.next_set(777_777), Some(777_778));
    assert_eq!(big.count_ones(), (1 << 20) - 1);
}

#[test]
fn bisect_order_is_midpoint_first() {
    assert_eq!(bisect_order(0, 8), vec![4, 2, 6, 1, 3, 5, 7, 0]);
    let o = bisect_order(0, 1 << 10);
    assert_eq!(&o[..3], &[512, 256, 768]);
    assert_eq!(o.len(), 1 << 10);
}

#[test]
fn cleared_blocks_are_wanted_again_by_unfinished_ranges_only() {
    let mut local = Bitfield::new();
    for b in 0..100 {
        local.set(b, true);
    }
    let mut s = Scheduler::new(sparse(3), 100, local);
    let (done, a) = s.prioritize(Duration::ZERO, Prioritize::range(0, 50));
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::RangeDone { handle } if *handle == done)),
        "a range over local blocks is done at once"
    );
    let (live, _) = s.prioritize(Duration::ZERO, Prioritize::live(60));
    assert!(requests(&add_peer(&mut s, MS, 1, 100)).is_empty());

    let a = s.handle(
        2 * MS,
        Event::LocalLost {
            start: 10,
            length: 5,
        },
    );
    checked(&s);
    assert!(requests(&a).is_empty(), "the done range stays done: {a:?}");
    let a = s.handle(
        3 * MS,
        Event::LocalLost {
            start: 70,
            length: 3,
        },
    );
    checked(&s);
    let mut got: Vec<u64> = requests(&a).into_iter().map(|(_, b)| b).collect();
    got.sort();
    assert_eq!(
        got,
        vec![70, 71, 72],
        "the live range fetches its cleared blocks"
    );
    let _ = live;
    let (_again, a) = s.prioritize(4 * MS, Prioritize::range(10, 15));
    checked(&s);
    // the peer's depth (4) has one free slot left by the live range's three requests
    let got: Vec<u64> = requests(&a).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got.len(), 1, "{a:?}");
    assert!(
        (10..15).contains(&got[0]),
        "a new range fetches them: {got:?}"
    );
}

#[test]
fn bisect_range_requests_midpoints_first() {
    let mut s = Scheduler::new(sparse(1), 1024, Bitfield::new());
    let (_h, _) = s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 1024).order(Order::Bisect).priority(3),
    );
    let a = add_peer(&mut s, Duration::ZERO, 1, 1024);
    let got: Vec<u64> = requests(&a).into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        got,
        vec![512, 256, 768, 128],
        "initial depth 4 takes the first four of the order"
    );
}

#[test]
fn round_robin_within_a_level_and_strict_between_levels() {
    let mut s = Scheduler::new(sparse(2), 1000, Bitfield::new());
    let (_a, _) = s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 100).order(Order::Linear).priority(3),
    );
    let (_b, _) = s.prioritize(
        Duration::ZERO,
        Prioritize::range(500, 600).order(Order::Linear).priority(3),
    );
    let (_low, _) = s.prioritize(
        Duration::ZERO,
        Prioritize::range(900, 1000)
            .order(Order::Linear)
            .priority(1),
    );
    let a = add_peer(&mut s, Duration::ZERO, 1, 1000);
    let got: Vec<u64> = requests(&a).into_iter().map(|(_, b)| b).collect();
    // Depth 4: alternating between the two level-3 ranges, nothing from level 1.
    assert_eq!(got, vec![0, 500, 1, 501]);
    // Complete the first range's picks: the alternation continues as slots free up.
    let a = s.handle(
        MS,
        Event::BlockArrived {
            peer: Some(PeerId(1)),
            block: 0,
            bytes: 1000,
        },
    );
    checked(&s);
    let got: Vec<u64> = requests(&a).into_iter().map(|(_, b)| b).collect();
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|b| *b < 900),
        "level 1 must wait for level 3: {got:?}"
    );
}

#[test]
fn unprioritize_cancels_only_unwanted_requests() {
    let mut s = Scheduler::new(sparse(3), 100, Bitfield::new());
    let (a, _) = s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 10).order(Order::Linear),
    );
    let (_b, _) = s.prioritize(
        Duration::ZERO,
        Prioritize::range(2, 4).order(Order::Linear).priority(2),
    );
    let reqs = requests(&add_peer(&mut s, Duration::ZERO, 7, 100));
    assert_eq!(reqs.len(), 4);
    let acts = s.unprioritize(ms(1), a);
    checked(&s);
    let mut c: Vec<u64> = cancels(&acts).into_iter().map(|(_, b)| b).collect();
    c.sort_unstable();
    // Blocks 2 and 3 are still wanted by the second range.
    let expect: Vec<u64> = reqs
        .iter()
        .map(|(_, b)| *b)
        .filter(|b| !(2..4).contains(b))
        .collect();
    assert_eq!(c, expect);
    assert!(s.holders(2) == vec![PeerId(7)] || s.has(2));
}

#[test]
fn get_completes_and_wire_priority_is_very_high() {
    let mut s = Scheduler::new(sparse(4), 100, Bitfield::new());
    add_peer(&mut s, Duration::ZERO, 1, 100);
    let (h, a) = s.prioritize(Duration::ZERO, Prioritize::get(42));
    assert!(matches!(
        a.as_slice(),
        [Action::Request {
            block: 42,
            priority: 2,
            ..
        }]
    ));
    let a = s.handle(
        ms(10),
        Event::BlockArrived {
            peer: Some(PeerId(1)),
            block: 42,
            bytes: 100,
        },
    );
    assert!(a.contains(&Action::RangeDone { handle: h }));
    assert!(s.is_done(h));
    // A range that is already local completes at once.
    let (h2, a) = s.prioritize(ms(11), Prioritize::get(42));
    assert!(a.contains(&Action::RangeDone { handle: h2 }));
    assert_eq!(dat_core::scheduler::wire_priority(5), 1);
    assert_eq!(dat_core::scheduler::wire_priority(4), 0);
}

#[test]
fn live_range_follows_appends() {
    let mut s = Scheduler::new(sparse(5), 4, Bitfield::new());
    let (h, _) = s.prioritize(Duration::ZERO, Prioritize::live(0).order(Order::Linear));
    let a = add_peer(&mut s, Duration::ZERO, 1, 4);
    assert_eq!(requests(&a).len(), 4);
    for b in 0..4 {
        s.handle(
            ms(1),
            Event::BlockArrived {
                peer: Some(PeerId(1)),
                block: b,
                bytes: 10,
            },
        );
        checked(&s);
    }
    assert!(!s.is_done(h), "live ranges never complete");
    s.handle(
        ms(2),
        Event::PeerHave {
            peer: PeerId(1),
            start: 4,
            length: 2,
        },
    );
    let a = s.handle(ms(2), Event::LengthGrew { length: 6 });
    checked(&s);
    let got: Vec<u64> = requests(&a).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, vec![4, 5]);
    // A finite range beyond the length waits for it.
    let (f, _) = s.prioritize(ms(3), Prioritize::range(6, 8));
    assert!(!s.is_done(f));
    s.handle(
        ms(4),
        Event::LocalHave {
            start: 4,
            length: 4,
        },
    );
    assert!(!s.is_done(f), "blocks 6..8 are not part of the log yet");
    let a = s.handle(ms(5), Event::LengthGrew { length: 8 });
    assert!(a.contains(&Action::RangeDone { handle: f }));
    checked(&s);
}

#[test]
fn sparse_and_non_sparse_defaults() {
    let mut full = Scheduler::new(SchedulerOptions::default(), 50, Bitfield::new());
    assert!(full.default_range().is_some());
    let a = add_peer(&mut full, Duration::ZERO, 1, 50);
    assert_eq!(
        requests(&a).len(),
        4,
        "a non-sparse log syncs everything at priority 0"
    );
    assert!(requests(&a).iter().all(|(_, b)| *b < 50));

    let mut sp = Scheduler::new(sparse(0), 50, Bitfield::new());
    assert!(sp.default_range().is_none());
    let a = add_peer(&mut sp, Duration::ZERO, 1, 50);
    assert!(
        requests(&a).is_empty(),
        "a sparse log fetches only what is prioritized"
    );

    // Withdrawing the default range cancels its requests.
    let h = full.default_range().expect("default");
    let a = full.unprioritize(ms(1), h);
    assert_eq!(cancels(&a).len(), 4);
    checked(&full);
}

#[test]
fn nodata_and_disconnect_move_work_elsewhere() {
    let mut s = Scheduler::new(sparse(6), 20, Bitfield::new());
    let (h, _) = s.prioritize(Duration::ZERO, Prioritize::range(0, 2).order(Order::Linear));
    let a = add_peer(&mut s, Duration::ZERO, 1, 20);
    assert_eq!(requests(&a), vec![(PeerId(1), 0), (PeerId(1), 1)]);
    add_peer(&mut s, Duration::ZERO, 2, 20);
    let a = s.handle(
        ms(5),
        Event::RequestFailed {
            peer: PeerId(1),
            block: 0,
            reason: Failure::NoData,
        },
    );
    checked(&s);
    assert_eq!(
        requests(&a),
        vec![(PeerId(2), 0)],
        "block 0 goes to the other peer"
    );
    let a = s.handle(ms(6), Event::PeerRemoved { peer: PeerId(1) });
    checked(&s);
    assert_eq!(requests(&a), vec![(PeerId(2), 1)]);
    s.handle(
        ms(7),
        Event::BlockArrived {
            peer: Some(PeerId(2)),
            block: 0,
            bytes: 1,
        },
    );
    let a = s.handle(
        ms(8),
        Event::BlockArrived {
            peer: Some(PeerId(2)),
            block: 1,
            bytes: 1,
        },
    );
    assert!(a.contains(&Action::RangeDone { handle: h }));
}

fn received(s: &mut Scheduler, now: Duration, peer: u64, block: u64) -> Vec<Action> {
    let a = s.handle(
        now,
        Event::BlockReceived {
            peer: PeerId(peer),
            block,
            bytes: 1000,
        },
    );
    checked(s);
    a
}

fn stored(s: &mut Scheduler, now: Duration, peer: u64, block: u64) -> Vec<Action> {
    let a = s.handle(
        now,
        Event::BlockArrived {
            peer: Some(PeerId(peer)),
            block,
            bytes: 1000,
        },
    );
    checked(s);
    a
}

#[test]
fn a_received_block_frees_its_request_slot_before_it_is_stored() {
    let opts = SchedulerOptions {
        default_block_size: 1000,
        min_depth: 4,
        max_depth: 4,
        max_depth_fast: 4,
        ..sparse(11)
    };
    let mut s = Scheduler::new(opts, 100, Bitfield::new());
    let (h, _) = s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 100).order(Order::Linear),
    );
    let a = add_peer(&mut s, Duration::ZERO, 1, 100);
    let first = requests(&a);
    assert_eq!(first.len(), 4, "the initial depth");

    // block 0 is received, not stored yet: the peer is asked for the next block at once, and
    // block 0 is asked of nobody
    let a = received(&mut s, ms(1), 1, 0);
    assert_eq!(requests(&a), vec![(PeerId(1), 4)]);
    assert!(!s.has(0) && s.holders(0).is_empty());
    // its store fails (an overtaken answer): it is wanted again, first in the window
    let a = s.handle(
        ms(2),
        Event::RequestFailed {
            peer: PeerId(1),
            block: 0,
            reason: Failure::Retry,
        },
    );
    checked(&s);
    assert!(requests(&a).is_empty(), "the peer's queue is full");
    let a = received(&mut s, ms(3), 1, 1);
    assert_eq!(requests(&a), vec![(PeerId(1), 0)], "block 0 is asked again");
    // block 1 is stored: it counts as the answer to a request, sampled once
    stored(&mut s, ms(4), 1, 1);
    assert!(s.has(1));
    assert_eq!(s.stats().unrequested_arrivals, 0);
    assert_eq!(s.peer_stats(PeerId(1)).map(|p| p.blocks), Some(1));

    // the peer leaves with block 2 received and not stored: another peer is asked for it
    received(&mut s, ms(5), 1, 2);
    let a = add_peer(&mut s, ms(6), 2, 100);
    assert!(!requests(&a).contains(&(PeerId(2), 2)));
    let a = s.handle(ms(7), Event::PeerRemoved { peer: PeerId(1) });
    checked(&s);
    assert!(requests(&a).contains(&(PeerId(2), 2)), "{a:?}");
    // ... and if it is stored after all, that counts as any arrival
    stored(&mut s, ms(8), 1, 2);
    assert!(s.has(2) && s.holders(2).is_empty());
    assert!(!s.is_done(h));
}

#[test]
fn blocks_being_stored_bound_the_requests_in_flight() {
    let opts = SchedulerOptions {
        default_block_size: 1000,
        min_depth: 4,
        max_depth: 4,
        max_depth_fast: 4,
        max_storing_bytes: 2000,
        ..sparse(12)
    };
    let mut s = Scheduler::new(opts, 100, Bitfield::new());
    s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 100).order(Order::Linear),
    );
    add_peer(&mut s, Duration::ZERO, 1, 100);
    assert_eq!(requests(&received(&mut s, ms(1), 1, 0)).len(), 1);
    // 2000 bytes being stored: no more requests until some are stored
    assert!(requests(&received(&mut s, ms(2), 1, 1)).is_empty());
    assert!(requests(&received(&mut s, ms(3), 1, 2)).is_empty());
    let a = stored(&mut s, ms(4), 1, 0);
    assert!(requests(&a).is_empty(), "still 2000 bytes being stored");
    let a = stored(&mut s, ms(5), 1, 1);
    assert_eq!(
        requests(&a).len(),
        2,
        "room for the peer's depth again: {a:?}"
    );
}

#[test]
fn timeout_snubs_and_moves_without_hotswap() {
    let mut s = Scheduler::new(sparse(7), 100, Bitfield::new());
    s.prioritize(Duration::ZERO, Prioritize::range(0, 1).order(Order::Linear));
    let a = add_peer(&mut s, Duration::ZERO, 1, 100);
    assert_eq!(requests(&a), vec![(PeerId(1), 0)]);
    // A second peer joins; the first never answers. Nothing moves before the timeout.
    let a = add_peer(&mut s, ms(10), 2, 100);
    assert!(requests(&a).is_empty(), "{a:?}");
    let a = s.handle(ms(900), Event::Tick);
    assert!(requests(&a).is_empty());
    let a = s.handle(ms(1100), Event::Tick);
    checked(&s);
    assert!(a.contains(&Action::Snub { peer: PeerId(1) }));
    assert_eq!(requests(&a), vec![(PeerId(2), 0)]);
    assert_eq!(
        cancels(&a),
        vec![(PeerId(1), 0)],
        "without hotswap the late copy is moved"
    );
    assert!(s.is_snubbed(PeerId(1)));
    assert_eq!(s.peer_load(PeerId(1)).map(|l| l.1), Some(1));
}

#[test]
fn urgent_get_preempts_the_most_recent_low_priority_request() {
    let mut s = Scheduler::new(sparse(8), 100, Bitfield::new());
    s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 50).order(Order::Linear).priority(1),
    );
    let a = add_peer(&mut s, Duration::ZERO, 1, 100);
    assert_eq!(
        requests(&a),
        vec![
            (PeerId(1), 0),
            (PeerId(1), 1),
            (PeerId(1), 2),
            (PeerId(1), 3)
        ]
    );
    let (_h, a) = s.prioritize(ms(1), Prioritize::get(90));
    checked(&s);
    // Depth 4, so at most ⌈4/4⌉ = 1 low request may stay while urgent work waits; the get
    // takes the slot of the most recent low request.
    assert_eq!(cancels(&a), vec![(PeerId(1), 3)]);
    assert!(matches!(
        a.last(),
        Some(Action::Request {
            block: 90,
            priority: 2,
            ..
        })
    ));
    assert_eq!(s.stats().preemptions, 1);
}

/// A stall watchdog's reset ([`Event::PeerReset`]) forgets a peer's requests and what it has,
/// blocks avoided at it included, and keeps what was measured of it: its depth, its timeout
/// and its counters (removing and adding it again starts it over at the initial depth and
/// timeout). Once it announces its blocks again it is asked for the same blocks as before,
/// the one avoided at it too.
#[test]
fn a_reset_peer_keeps_its_estimates_and_is_asked_again() {
    let opts = SchedulerOptions {
        default_block_size: 1000,
        initial_depth: 2,
        min_depth: 2,
        max_depth: 8,
        max_depth_fast: 8,
        rto_min: ms(10),
        ..sparse(13)
    };
    let mut s = Scheduler::new(opts, 100, Bitfield::new());
    s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 100).order(Order::Linear),
    );
    let a = add_peer(&mut s, Duration::ZERO, 1, 100);
    assert_eq!(requests(&a), vec![(PeerId(1), 0), (PeerId(1), 1)]);
    // two answers in 5 ms: the depth grows to its maximum and the timeout falls below the
    // initial one
    stored(&mut s, ms(5), 1, 0);
    stored(&mut s, ms(10), 1, 1);
    // block 2 fails there: avoided at the peer, and asked of nobody (no other peer)
    let a = s.handle(
        ms(11),
        Event::RequestFailed {
            peer: PeerId(1),
            block: 2,
            reason: Failure::Error,
        },
    );
    checked(&s);
    assert!(requests(&a).is_empty());
    let held =
        |s: &Scheduler| -> Vec<u64> { (0..100).filter(|&b| !s.holders(b).is_empty()).collect() };
    assert_eq!(held(&s), (3..10).collect::<Vec<_>>());
    let timeout = s.request_timeout(PeerId(1)).expect("peer");
    assert!(timeout < ms(100), "{timeout:?}");
    assert_eq!(s.peer_load(PeerId(1)), Some((7, 8)));
    let counters = s.peer_stats(PeerId(1)).cloned().expect("peer");
    assert_eq!((counters.blocks, counters.requests), (2, 10));

    // removing and adding it again would start it over
    let mut again = s.clone();
    again.handle(ms(20), Event::PeerRemoved { peer: PeerId(1) });
    let a = add_peer(&mut again, ms(20), 1, 100);
    assert_eq!(again.peer_load(PeerId(1)), Some((2, 2)));
    assert_eq!(
        again.request_timeout(PeerId(1)),
        Some(Duration::from_secs(1))
    );
    assert_eq!(requests(&a), vec![(PeerId(1), 2), (PeerId(1), 3)]);

    // the reset: no cancels, its blocks are released, and it has nothing until it says so
    let a = s.handle(ms(20), Event::PeerReset { peer: PeerId(1) });
    checked(&s);
    assert!(a.is_empty(), "{a:?}");
    assert!(held(&s).is_empty());
    assert_eq!(s.peer_load(PeerId(1)), Some((0, 8)), "the depth stays");
    assert_eq!(
        s.request_timeout(PeerId(1)),
        Some(timeout),
        "so does the timeout"
    );
    assert_eq!(s.peer_stats(PeerId(1)), Some(&counters), "and the counters");
    // it announces its blocks again (as the watchdog does in the same batch): asked for
    // the blocks it held, at its depth, and for block 2 no longer avoided at it
    let a = s.handle_all(
        ms(20),
        [Event::PeerHave {
            peer: PeerId(1),
            start: 0,
            length: 100,
        }],
    );
    checked(&s);
    let asked: Vec<(PeerId, u64)> = (2..10).map(|b| (PeerId(1), b)).collect();
    assert_eq!(requests(&a), asked);
    assert_eq!(s.peer_load(PeerId(1)), Some((8, 8)));
    assert_eq!(s.request_timeout(PeerId(1)), Some(timeout));
    assert_eq!(
        s.peer_stats(PeerId(1)).map(|p| (p.blocks, p.requests)),
        Some((2, 18))
    );
}

/// A reset leaves the peer's blocks being stored alone: they are not asked again, and their
/// store ends as any other (the answer counts as requested).
#[test]
fn a_reset_keeps_the_peers_blocks_being_stored() {
    let opts = SchedulerOptions {
        default_block_size: 1000,
        min_depth: 4,
        max_depth: 4,
        max_depth_fast: 4,
        ..sparse(14)
    };
    let mut s = Scheduler::new(opts, 100, Bitfield::new());
    s.prioritize(
        Duration::ZERO,
        Prioritize::range(0, 100).order(Order::Linear),
    );
    add_peer(&mut s, Duration::ZERO, 1, 100);
    received(&mut s, ms(1), 1, 0);
    let a = s.handle_all(
        ms(2),
        [
            Event::PeerReset { peer: PeerId(1) },
            Event::PeerHave {
                peer: PeerId(1),
                start: 0,
                length: 100,
            },
        ],
    );
    checked(&s);
    assert!(!requests(&a).contains(&(PeerId(1), 0)), "{a:?}");
    assert!(cancels(&a).is_empty());
    stored(&mut s, ms(3), 1, 0);
    assert!(s.has(0));
    assert_eq!(s.stats().unrequested_arrivals, 0);
}

/// `plans` counts planning passes: one per call, however many events a batch carries.
#[test]
fn a_batch_of_events_is_one_planning_pass() {
    let mut s = Scheduler::new(sparse(9), 1000, Bitfield::new());
    assert_eq!(s.stats().plans, 0);
    s.prioritize(Duration::ZERO, Prioritize::range(0, 1000));
    add_peer(&mut s, Duration::ZERO, 1, 0);
    assert_eq!(s.stats().plans, 2);
    // 500 one-block runs, as one bitfield message brings them
    s.handle_all(
        ms(1),
        (0..500).map(|k| Event::PeerHave {
            peer: PeerId(1),
            start: 2 * k,
            length: 1,
        }),
    );
    checked(&s);
    assert_eq!(s.stats().plans, 3);
    s.handle(ms(2), Event::Tick);
    assert_eq!(s.stats().plans, 4);
}

#[test]
fn simulation_is_deterministic_per_seed() {
    let go = |seed| {
        let mut d = Download::new(vec![Prioritize::range(0, 300).hotswap(true)]);
        let sim = run(
            sim_cfg(seed, 300, 64 * 1024),
            vec![PeerSpec::fast(), PeerSpec::slow(), PeerSpec::medium()],
            &mut d,
        );
        (
            sim.metrics().arrivals.clone(),
            sim.metrics().requests,
            sim.metrics().cancels_sent,
        )
    };
    assert_eq!(go(5), go(5));
    assert_ne!(go(5).0, go(6).0, "the seed matters");
}

// ------------------------------------------------------------------------------------------
// Property test: random event sequences keep every invariant.

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        AddPeer(u64, u64, Vec<u64>),
        RemovePeer(u64),
        ResetPeer(u64),
        Prioritize(u64, u64, bool, u8, u8, bool),
        Unprioritize(usize),
        Arrive(usize),
        Receive(usize),
        Stored(usize),
        StoreFailed(usize),
        ArriveAny(u64, u64),
        Fail(usize, bool),
        Advance(u64),
        Grow(u64),
        LocalHave(u64, u64),
        LocalLost(u64, u64),
        Truncate(u64),
        PeerHave(u64, u64, u64),
        PeerDrop(u64, u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0u64..5,
                0u64..80,
                proptest::collection::vec(0u64..120, 0..10)
            )
                .prop_map(|(p, c, v)| Op::AddPeer(p, c, v)),
            (0u64..5).prop_map(Op::RemovePeer),
            (0u64..5).prop_map(Op::ResetPeer),
            (
                0u64..100,
                1u64..40,
                any::<bool>(),
                0u8..8,
                0u8..3,
                any::<bool>()
            )
                .prop_map(|(s, l, live, p, o, h)| Op::Prioritize(s, l, live, p, o, h)),
            (0usize..8).prop_map(Op::Unprioritize),
            (0usize..64).prop_map(Op::Arrive),
            (0usize..64).prop_map(Op::Arrive),
            (0usize..64).prop_map(Op::Receive),
            (0usize..64).prop_map(Op::Stored),
            (0usize..64).prop_map(Op::StoreFailed),
            (0u64..5, 0u64..120).prop_map(|(p, b)| Op::ArriveAny(p, b)),
            (0usize..64, any::<bool>()).prop_map(|(i, n)| Op::Fail(i, n)),
            (1u64..3000).prop_map(Op::Advance),
            (1u64..20).prop_map(Op::Grow),
            (0u64..120, 1u64..10).prop_map(|(s, l)| Op::LocalHave(s, l)),
            (0u64..120, 1u64..10).prop_map(|(s, l)| Op::LocalLost(s, l)),
            (0u64..120).prop_map(Op::Truncate),
            (0u64..5, 0u64..120, 1u64..30).prop_map(|(p, s, l)| Op::PeerHave(p, s, l)),
            (0u64..5, 0u64..120, 1u64..10).prop_map(|(p, s, l)| Op::PeerDrop(p, s, l)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
            failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"))),
            ..ProptestConfig::default()
        })]
        #[test]
        fn random_events_keep_invariants(seed in any::<u64>(), sparse_log in any::<bool>(), ops in proptest::collection::vec(op(), 1..120)) {
            run_ops(seed, sparse_log, ops)?;
        }
    }

    /// The failures proptest recorded (the persisted seeds stand for other cases once the
    /// strategy changes, as it did with `ResetPeer`), replayed as they were shrunk.
    #[test]
    fn recorded_event_sequences_keep_invariants() {
        use Op::*;
        let cases: [(u64, Vec<Op>); 4] = [
            (
                0,
                vec![
                    LocalHave(58, 8),
                    Prioritize(58, 1, false, 0, 0, false),
                    Arrive(0),
                    LocalLost(56, 3),
                ],
            ),
            (
                0,
                vec![
                    LocalHave(8, 4),
                    Prioritize(8, 1, false, 0, 0, false),
                    LocalLost(9, 1),
                ],
            ),
            (
                5256272048042168564,
                vec![
                    Grow(9),
                    Grow(17),
                    AddPeer(0, 46, vec![]),
                    Arrive(13),
                    Fail(21, false),
                    ArriveAny(0, 53),
                    Fail(21, false),
                    ArriveAny(0, 6),
                    AddPeer(2, 35, vec![46, 47]),
                    RemovePeer(0),
                    AddPeer(0, 9, vec![36]),
                    Truncate(36),
                    Arrive(62),
                    Arrive(2),
                    Receive(8),
                ],
            ),
            (
                13207450903634867241,
                vec![
                    AddPeer(0, 25, vec![25, 26]),
                    Arrive(41),
                    Arrive(26),
                    Receive(11),
                    AddPeer(0, 22, vec![]),
                    ArriveAny(0, 21),
                    LocalLost(13, 9),
                ],
            ),
        ];
        for (seed, ops) in cases {
            if let Err(e) = run_ops(seed, false, ops.clone()) {
                panic!("{ops:?}: {e}");
            }
        }
    }

    /// Feeds `ops` to a planner, checking its invariants and its requests against a model
    /// after each.
    fn run_ops(seed: u64, sparse_log: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let opts = SchedulerOptions {
            sparse: sparse_log,
            seed,
            dup_budget_bytes: 3000,
            default_block_size: 1000,
            ..SchedulerOptions::default()
        };
        let mut s = Scheduler::new(opts, 60, Bitfield::new());
        let mut now = Duration::ZERO;
        let mut handles: Vec<RangeHandle> = Vec::new();
        let mut outstanding: Vec<(PeerId, u64)> = Vec::new();
        // answered requests whose blocks are being stored
        let mut storing: Vec<(PeerId, u64)> = Vec::new();
        let mut length = 60u64;
        for op in ops {
            let actions = match op {
                Op::AddPeer(p, c, v) => {
                    let mut bits = Bitfield::new();
                    for b in v {
                        bits.set(b, true);
                    }
                    s.handle(
                        now,
                        Event::PeerAdded {
                            peer: PeerId(p),
                            availability: Availability {
                                contiguous: c,
                                bits,
                            },
                        },
                    )
                }
                Op::RemovePeer(p) => {
                    outstanding.retain(|(q, _)| *q != PeerId(p));
                    storing.retain(|(q, _)| *q != PeerId(p));
                    s.handle(now, Event::PeerRemoved { peer: PeerId(p) })
                }
                Op::ResetPeer(p) => {
                    // its requests are forgotten (no cancels); its blocks being stored stay
                    outstanding.retain(|(q, _)| *q != PeerId(p));
                    s.handle(now, Event::PeerReset { peer: PeerId(p) })
                }
                Op::Prioritize(st, l, live, p, o, h) => {
                    let order = [Order::Random, Order::Linear, Order::Bisect][o as usize];
                    let spec = Prioritize {
                        start: st,
                        end: if live { None } else { Some(st + l) },
                        priority: p,
                        order,
                        hotswap: h,
                    };
                    let (hd, a) = s.prioritize(now, spec);
                    handles.push(hd);
                    a
                }
                Op::Unprioritize(i) => {
                    if handles.is_empty() {
                        continue;
                    }
                    let h = handles.remove(i % handles.len());
                    s.unprioritize(now, h)
                }
                Op::Arrive(i) => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let (p, b) = outstanding.remove(i % outstanding.len());
                    s.handle(
                        now,
                        Event::BlockArrived {
                            peer: Some(p),
                            block: b,
                            bytes: 900 + b * 7,
                        },
                    )
                }
                Op::Receive(i) => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let (p, b) = outstanding.remove(i % outstanding.len());
                    storing.push((p, b));
                    s.handle(
                        now,
                        Event::BlockReceived {
                            peer: p,
                            block: b,
                            bytes: 900 + b * 7,
                        },
                    )
                }
                Op::Stored(i) => {
                    if storing.is_empty() {
                        continue;
                    }
                    let (p, b) = storing.remove(i % storing.len());
                    s.handle(
                        now,
                        Event::BlockArrived {
                            peer: Some(p),
                            block: b,
                            bytes: 900 + b * 7,
                        },
                    )
                }
                Op::StoreFailed(i) => {
                    if storing.is_empty() {
                        continue;
                    }
                    let (p, b) = storing.remove(i % storing.len());
                    s.handle(
                        now,
                        Event::RequestFailed {
                            peer: p,
                            block: b,
                            reason: Failure::Retry,
                        },
                    )
                }
                Op::ArriveAny(p, b) => {
                    outstanding.retain(|x| *x != (PeerId(p), b));
                    s.handle(
                        now,
                        Event::BlockArrived {
                            peer: Some(PeerId(p)),
                            block: b,
                            bytes: 1000,
                        },
                    )
                }
                Op::Fail(i, nodata) => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let (p, b) = outstanding.remove(i % outstanding.len());
                    let reason = if nodata {
                        Failure::NoData
                    } else {
                        Failure::Error
                    };
                    s.handle(
                        now,
                        Event::RequestFailed {
                            peer: p,
                            block: b,
                            reason,
                        },
                    )
                }
                Op::Advance(d) => {
                    now += Duration::from_millis(d);
                    s.handle(now, Event::Tick)
                }
                Op::Grow(n) => {
                    length += n;
                    s.handle(now, Event::LengthGrew { length })
                }
                Op::LocalHave(st, l) => s.handle(
                    now,
                    Event::LocalHave {
                        start: st,
                        length: l,
                    },
                ),
                Op::LocalLost(st, l) => s.handle(
                    now,
                    Event::LocalLost {
                        start: st,
                        length: l,
                    },
                ),
                Op::Truncate(n) => {
                    let old = length;
                    length = length.min(n);
                    let mut a = s.handle(now, Event::Truncated { length });
                    if old > length {
                        a.extend(s.handle(
                            now,
                            Event::LocalLost {
                                start: length,
                                length: old - length,
                            },
                        ));
                    }
                    a
                }
                Op::PeerHave(p, st, l) => s.handle(
                    now,
                    Event::PeerHave {
                        peer: PeerId(p),
                        start: st,
                        length: l,
                    },
                ),
                Op::PeerDrop(p, st, l) => s.handle(
                    now,
                    Event::PeerDropped {
                        peer: PeerId(p),
                        start: st,
                        length: l,
                    },
                ),
            };
            if let Err(e) = s.check_invariants() {
                prop_assert!(false, "invariant after {:?}: {}", actions, e);
            }
            for a in &actions {
                match a {
                    Action::Request { peer, block, .. } => {
                        prop_assert!(
                            !outstanding.contains(&(*peer, *block)),
                            "duplicate request to one peer"
                        );
                        prop_assert!(*block < length);
                        outstanding.push((*peer, *block));
                    }
                    Action::Cancel { peer, block, .. } => {
                        let pos = outstanding.iter().position(|x| *x == (*peer, *block));
                        prop_assert!(pos.is_some(), "cancel of a request not outstanding");
                        outstanding.remove(pos.unwrap_or_default());
                    }
                    _ => {}
                }
            }
            // The model's outstanding set is exactly the planner's.
            let mut model = outstanding.clone();
            model.sort();
            let mut real: Vec<(PeerId, u64)> = Vec::new();
            for b in 0..length + 200 {
                for p in s.holders(b) {
                    real.push((p, b));
                }
            }
            real.sort();
            prop_assert_eq!(model, real);
            // a block being stored is never asked of a peer again
            for (p, b) in &storing {
                if !s.has(*b) {
                    prop_assert!(
                        !outstanding.contains(&(*p, *b)),
                        "block {} asked again while being stored",
                        b
                    );
                }
            }
            // a block made local (by whichever arrival) is no longer being stored from anyone:
            // the planner forgot its other copies being stored, and may ask for it again
            // once it is lost
            storing.retain(|(_, b)| !s.has(*b));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// Scenario tests in the simulator (§A4.5). Each returns its figure so failures print it.

fn run(cfg: SimConfig, peers: Vec<PeerSpec>, driver: &mut dyn Driver) -> Sim {
    let mut sim = Sim::new(cfg, peers);
    if let Err(e) = sim.run(driver) {
        panic!("simulation failed: {e}");
    }
    assert!(sim.metrics().invariant_checks > 0);
    sim
}

fn mbs(rate: f64, latency_ms: u64, class: &'static str) -> PeerSpec {
    PeerSpec::new(class, rate, ms(latency_ms), ms(1))
}

/// Scenario 1: JS "uses hotswaps to avoid long download tail": fast 10 MB/s + slow 1 MB/s, 100 × 60 KB.
#[test]
fn scenario_hotswap_fast_and_slow() {
    for seed in 1..=3 {
        // JS hypercore keeps at least 16 requests in flight per peer, so the slow peer holds
        // about a second of work when the fast one runs dry: the tail hotswap exists to cut.
        let js_depth = |seed| {
            let mut cfg = sim_cfg(seed, 100, 60_000);
            cfg.scheduler.min_depth = 16;
            cfg.scheduler.initial_depth = 16;
            cfg
        };
        let peers = || vec![mbs(10e6, 10, "fast"), mbs(1e6, 10, "slow")];
        let mut without = Download::new(vec![Prioritize::range(0, 100).hotswap(false)]);
        let sim = run(js_depth(seed), peers(), &mut without);
        let t_without = without.completion(&sim, 0).expect("done");
        let mut d = Download::new(vec![Prioritize::range(0, 100).hotswap(true)]);
        let sim = run(js_depth(seed), peers(), &mut d);
        let t = d.completion(&sim, 0).expect("done");
        assert!(t < t_without, "hotswap {t:?} vs none {t_without:?}");
        let s = sim.scheduler();
        let fast = s.peer_stats(PeerId(0)).expect("fast");
        let slow = s.peer_stats(PeerId(1)).expect("slow");
        let m = sim.metrics();
        let dup = m.dup_bytes as f64 / m.useful_bytes as f64;
        eprintln!(
            "hotswap seed {seed}: completion {t:?} (without hotswap {t_without:?}), fast hotswaps {}, slow hotswaps {}, \
             slow cancels received {}, fast {} B, slow {} B, dup {:.1} %",
            fast.hotswaps,
            slow.hotswaps,
            sim.peer_stats(1).cancels_received,
            fast.bytes,
            slow.bytes,
            dup * 100.0
        );
        assert!(fast.hotswaps > 0);
        assert_eq!(slow.hotswaps, 0);
        assert!(sim.peer_stats(1).cancels_received > 0);
        assert!(fast.bytes > slow.bytes && slow.bytes > 0);
        assert!(dup <= 0.10, "duplicate bytes {:.1} %", dup * 100.0);
    }
}

/// Scenario 2: Priority isolation (S6): A prio 7 (50 blocks) inside B prio 1 (1000 blocks), 2 medium
/// peers; A's completion with B present over A's completion alone.
#[test]
fn scenario_priority_isolation() {
    let a = Prioritize::range(400, 450)
        .priority(7)
        .order(Order::Linear)
        .hotswap(true);
    let b = Prioritize::range(0, 1000).priority(1);
    for seed in 1..=3 {
        let peers = || vec![PeerSpec::medium(), PeerSpec::medium()];
        let mut alone = Download::new(vec![a]);
        let sim = run(sim_cfg(seed, 1000, 64 * 1024), peers(), &mut alone);
        let t_alone = alone.completion(&sim, 0).expect("A alone");
        // B registered first, A right after (same instant).
        let mut both = Download::new(vec![b, a]);
        let mut sim = Sim::new(sim_cfg(seed, 1000, 64 * 1024), peers());
        struct UntilA<'a>(&'a mut Download);
        impl Driver for UntilA<'_> {
            fn start(&mut self, sim: &mut Sim) {
                self.0.start(sim)
            }
            fn done(&self, sim: &Sim) -> bool {
                self.0.handles[1].is_some_and(|h| sim.scheduler().is_done(h))
            }
        }
        sim.run(&mut UntilA(&mut both)).expect("run");
        let t_both = both.completion(&sim, 1).expect("A with B");
        let ratio = t_both.as_secs_f64() / t_alone.as_secs_f64();
        eprintln!(
            "isolation seed {seed}: A alone {t_alone:?}, A with B {t_both:?}, ratio {ratio:.3}"
        );
        assert!(ratio <= 1.1, "ratio {ratio:.3}");
    }
}

/// Scenario 3: Bisect: after a bisect prefetch of depth 5, binary searches over 2^20 blocks need at most
/// 15 serial fetches (probes not local when needed).
#[test]
fn scenario_bisect_search() {
    let n = 1u64 << 20;
    let mut cfg = sim_cfg(3, n, 4096);
    cfg.time_limit = Duration::from_secs(120);
    let prefetch = Prioritize::range(0, n).priority(1).order(Order::Bisect);
    let mut d = BisectSearches::new(n, Some(prefetch), Some(5), Duration::ZERO, 8, 99);
    let sim = run(cfg, vec![PeerSpec::medium(), PeerSpec::medium()], &mut d);
    let serial: Vec<u32> = d.results.iter().map(|r| r.serial).collect();
    eprintln!(
        "bisect: began at {:?}, serial fetches per search {serial:?}",
        d.began
    );
    assert_eq!(d.results.len(), 8);
    assert!(d.results.iter().all(|r| r.probes == 20));
    assert!(serial.iter().all(|&s| s <= 15), "{serial:?}");
    let _ = sim;

    // Without the prefetch the first search fetches every probe serially.
    let mut d = BisectSearches::new(n, None, None, Duration::ZERO, 2, 99);
    run(
        sim_cfg(3, n, 4096),
        vec![PeerSpec::medium(), PeerSpec::medium()],
        &mut d,
    );
    assert_eq!(d.results[0].serial, 20);
}

/// Scenario 4: A peer stalling at 90 % (3 medium + 1 stalled, 1000 × 64 KiB): completion ≤ 2 × the
/// no-stall completion, duplicate bytes within budget, with and without hotswap.
#[test]
fn scenario_stalled_peer() {
    let bs = 64 * 1024u64;
    for hotswap in [true, false] {
        let range = Prioritize::range(0, 1000).hotswap(hotswap);
        let mut base = Download::new(vec![range]);
        let sim = run(sim_cfg(4, 1000, bs), vec![PeerSpec::medium(); 4], &mut base);
        let t_base = base.completion(&sim, 0).expect("baseline");
        let stall_at = 1000 * bs * 9 / 10 / 4;
        let peers = vec![
            PeerSpec::medium(),
            PeerSpec::medium(),
            PeerSpec::medium(),
            PeerSpec::medium().stall_after(stall_at).class("stalled"),
        ];
        let mut d = Download::new(vec![range]);
        let sim = run(sim_cfg(4, 1000, bs), peers, &mut d);
        let t = d.completion(&sim, 0).expect("stall");
        let m = sim.metrics();
        let budget = sim.scheduler().options().waste_ratio * m.useful_bytes as f64;
        eprintln!(
            "stall hotswap={hotswap}: no-stall {t_base:?}, stalled {t:?} ({:.2}×), tail {:?}, dup {} B (budget {budget:.0} B), snubs {}",
            t.as_secs_f64() / t_base.as_secs_f64(),
            tail_time(&sim, 0, 1000),
            m.dup_bytes,
            m.snubs
        );
        assert!(t.as_secs_f64() <= 2.0 * t_base.as_secs_f64());
        assert!(m.dup_bytes as f64 <= budget);
        assert!(
            sim.scheduler()
                .peer_stats(PeerId(3))
                .expect("stalled")
                .timeouts
                > 0
        );
    }
}

/// Wraps a download and watches the first missing block of range 0.
struct HeadWatch {
    inner: Download,
    slow: PeerId,
    since: Option<Duration>,
    worst: Duration,
    worst_ratio: f64,
    error: Option<String>,
}

impl Driver for HeadWatch {
    fn start(&mut self, sim: &mut Sim) {
        self.inner.start(sim)
    }
    fn on_event(&mut self, sim: &mut Sim) {
        let Some(h) = self.inner.handles[0] else {
            return;
        };
        let s = sim.scheduler();
        let only_slow = s
            .first_missing(h)
            .is_some_and(|b| !s.has(b) && s.holders(b) == vec![self.slow]);
        if !only_slow {
            self.since = None;
            return;
        }
        let since = *self.since.get_or_insert(sim.now());
        let held = sim.now() - since;
        let timeout = s.request_timeout(self.slow).expect("slow peer");
        self.worst = self.worst.max(held);
        self.worst_ratio = self
            .worst_ratio
            .max(held.as_secs_f64() / timeout.as_secs_f64());
        if held > timeout && self.error.is_none() {
            self.error = Some(format!(
                "block held only by the slow peer for {held:?} > timeout {timeout:?}"
            ));
        }
    }
    fn done(&self, sim: &Sim) -> bool {
        self.inner.done(sim)
    }
}

/// Scenario 5: Linear with {1 fast, 1 slow}: the first missing block is never held only by the slow
/// peer for longer than the slow peer's timeout.
#[test]
fn scenario_linear_head_never_stuck_on_slow_peer() {
    // The design note's profiles (100 : 1) and the JS hotswap test's pair (10 : 1); with the
    // latter the slow peer does take window blocks.
    type Swarm = fn() -> Vec<PeerSpec>;
    let pairs: [(&str, Swarm); 2] = [
        ("100:1", || vec![PeerSpec::fast(), PeerSpec::slow()]),
        ("10:1", || vec![mbs(10e6, 10, "fast"), mbs(1e6, 10, "slow")]),
    ];
    for (pair, peers) in pairs {
        for hotswap in [true, false] {
            for seed in 1..=3 {
                let range = Prioritize::range(0, 400)
                    .priority(6)
                    .order(Order::Linear)
                    .hotswap(hotswap);
                let mut w = HeadWatch {
                    inner: Download::new(vec![range]),
                    slow: PeerId(1),
                    since: None,
                    worst: Duration::ZERO,
                    worst_ratio: 0.0,
                    error: None,
                };
                let sim = run(sim_cfg(seed, 400, 64 * 1024), peers(), &mut w);
                let slow = sim.scheduler().peer_stats(PeerId(1)).expect("slow");
                eprintln!(
                    "linear {pair} hotswap={hotswap} seed {seed}: completion {:?}, head held only by slow ≤ {:?} ({:.2} of timeout), \
                 slow useful blocks {}, slow requests {}",
                    w.inner.completion(&sim, 0).expect("done"),
                    w.worst,
                    w.worst_ratio,
                    slow.blocks,
                    slow.requests
                );
                assert!(slow.requests > 0, "the slow peer takes part");
                if let Some(e) = w.error {
                    panic!("{e}");
                }
                if pair == "10:1" {
                    assert!(slow.blocks > 0, "the slow peer contributes");
                }
            }
        }
    }
}

/// Scenario 6: JS "hotswap works for a download with many slow peers": 20 seeders at 10 s latency plus
/// one fast seeder, 500 blocks: done in under 2 s of virtual time.
#[test]
fn scenario_many_far_seeders() {
    for seed in 1..=3 {
        let mut peers = vec![PeerSpec::far(); 20];
        peers.push(PeerSpec::fast());
        let mut d = Download::new(vec![Prioritize::range(0, 500).hotswap(true)]);
        let sim = run(sim_cfg(seed, 500, 16 * 1024), peers, &mut d);
        let t = d.completion(&sim, 0).expect("done");
        let fast = sim.scheduler().peer_stats(PeerId(20)).expect("fast");
        eprintln!(
            "far seeders seed {seed}: completion {t:?}, fast blocks {} (hotswaps {}, moves {}), cancels {}",
            fast.blocks,
            fast.hotswaps,
            fast.moves,
            sim.metrics().cancels_sent
        );
        assert!(t < Duration::from_secs(2), "{t:?}");
    }
}

/// A peer's request depth grows with its rate: up to `max_depth` requests for a peer that is not
/// fast; for a fast one up to `fast_queue_time` of its measured throughput (at most
/// `max_depth_fast`); and never beyond `max_depth_bytes` of large blocks in flight (512 requests
/// of 1 MiB would be 512 MiB).
#[test]
fn request_depth_is_bounded_by_count_and_by_bytes() {
    // the deepest queue of one peer answering in order, one block per `per_block`
    let deepest = |block: u64, per_block: Duration| {
        let n = 40_000;
        let mut s = Scheduler::new(SchedulerOptions::default(), n, Bitfield::new());
        let mut queue: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
        let mut now = Duration::ZERO;
        queue.extend(
            requests(&add_peer(&mut s, now, 1, n))
                .into_iter()
                .map(|(_, b)| b),
        );
        let mut deepest = 0;
        while let Some(b) = queue.pop_front() {
            now += per_block;
            let a = s.handle(
                now,
                Event::BlockArrived {
                    peer: Some(PeerId(1)),
                    block: b,
                    bytes: block,
                },
            );
            queue.extend(requests(&a).into_iter().map(|(_, b)| b));
            deepest = deepest.max(s.peer_load(PeerId(1)).unwrap().1);
        }
        checked(&s);
        deepest
    };
    let opts = SchedulerOptions::default();
    // 100,000 blocks/s: 50 ms of it is more than a fast peer may have in flight
    let fastest = deepest(1024, Duration::from_micros(10));
    assert_eq!(fastest, opts.max_depth_fast, "1 KiB blocks at 100,000/s");
    // 5,000 blocks/s drains max_depth in ~100 ms, more than fast_queue_time: not fast
    let slow = deepest(1024, Duration::from_micros(200));
    assert_eq!(slow, opts.max_depth, "1 KiB blocks at 5,000/s");
    // 40,000 blocks/s: fast_queue_time (50 ms) of it is about 2,000 requests
    let fast = deepest(1024, Duration::from_micros(25));
    let expect = 40_000.0 * opts.fast_queue_time.as_secs_f64();
    assert!(
        (fast as f64) > expect * 0.8 && (fast as f64) < expect * 1.2,
        "1 KiB blocks at 40,000/s: depth {fast}, expected about {expect}"
    );
    let mib = deepest(1 << 20, Duration::from_nanos(1 << 20));
    assert!(
        mib as u64 * (1 << 20) <= opts.max_depth_bytes && mib >= opts.min_depth,
        "1 MiB blocks: depth {mib}"
    );
}

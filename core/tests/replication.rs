//! Replication between libdat peers over in-memory pipes and TCP on 127.0.0.1.

use std::time::Duration;

use dat_core::replication::{Connection, ConnectionOptions, driver};
use dat_core::{KeyPair, Log, LogEvent, LogOptions, Store};

fn writer_with(dir: &std::path::Path, blocks: usize) -> (Store, Log) {
    let store = Store::open(dir).unwrap();
    let log = store.create_log(LogOptions::default()).unwrap();
    let data: Vec<Vec<u8>> = (0..blocks)
        .map(|i| format!("block {i}").repeat(i % 50 + 1).into_bytes())
        .collect();
    for chunk in data.chunks(17) {
        log.append_batch(chunk).unwrap();
    }
    (store, log)
}

/// Waits (on events, bounded by a generous timeout) until `log` holds `length` contiguous blocks.
async fn until_complete(log: &Log, length: u64) {
    let mut events = log.subscribe();
    let wait = async {
        while !(log.length() >= length && log.contiguous_length() >= length) {
            match events.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out at length {} / contiguous {} (want {length}); {:?} {:?} {:?}",
                log.length(),
                log.contiguous_length(),
                log.replicator(),
                log.replicator().stats(),
                log.replicator().peer_stats()
            )
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_and_live_append_over_a_pipe() {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wstore, wlog) = writer_with(wd.path(), 300);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();

    let (a, b) = tokio::io::duplex(64 * 1024);
    let wconn = Connection::new(
        wstore.clone(),
        true,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    let rconn = Connection::new(
        rstore.clone(),
        false,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    let wh = driver::spawn(wconn, a, vec![(wlog.clone(), false)]);
    let rh = driver::spawn(rconn, b, vec![(rlog.clone(), false)]);

    until_complete(&rlog, 300).await;
    assert_eq!(rlog.tree_hash(None).unwrap(), wlog.tree_hash(None).unwrap());
    assert!(
        rlog.manifest().is_some(),
        "the manifest arrived with the first upgrade"
    );
    for i in (0..300).step_by(7) {
        assert_eq!(rlog.get(i).unwrap(), wlog.get(i).unwrap());
    }

    // a live append on the writer arrives at the reader
    let mut revents = rlog.subscribe();
    wlog.append(b"live!").unwrap();
    until_complete(&rlog, 301).await;
    assert_eq!(rlog.get(300).unwrap(), b"live!");
    let mut saw_download = false;
    while let Ok(ev) = revents.try_recv() {
        saw_download |= matches!(ev, LogEvent::Download { index: 300, .. });
    }
    assert!(saw_download);

    wh.close().await.unwrap();
    rh.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logs_on_one_tcp_connection_and_unannounced_logs() {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wstore, a) = writer_with(wd.path(), 50);
    let b = wstore.named_log("second").unwrap();
    b.append_batch(&[b"x".as_slice(), b"y", b"z"]).unwrap();
    let rstore = Store::open(rd.path()).unwrap();
    let ra = rstore.open_log(&a.key(), None).unwrap();
    let rb = rstore.open_log(&b.key(), None).unwrap();
    // an unrelated log on the reader: the writer does not hold it and rejects its channel
    let _other = rstore.create_log(LogOptions::default()).unwrap();

    let mut server = driver::listen(&wstore, "127.0.0.1:0", ConnectionOptions::default())
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let client = driver::connect(&rstore, &addr, ConnectionOptions::default())
        .await
        .unwrap();
    let served = server.accept().await.unwrap();
    until_complete(&ra, 50).await;
    until_complete(&rb, 3).await;
    assert_eq!(rb.get(2).unwrap(), b"z");
    client.close().await.unwrap();
    served.join().await.unwrap();
    server.close().await;
}

/// Once `Server::close` returns, the listening socket is closed and its address can be bound
/// again. (On a single-threaded runtime an aborted accept task would otherwise keep the socket
/// open until the runtime next ran it.)
#[tokio::test]
async fn a_closed_server_frees_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = driver::listen(&store, "127.0.0.1:0", ConnectionOptions::default())
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    assert!(
        tokio::net::TcpListener::bind(&addr).await.is_err(),
        "in use while open"
    );
    server.close().await;
    let again = tokio::net::TcpListener::bind(&addr).await;
    assert!(again.is_ok(), "rebinding {addr}: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_reader_fetches_only_what_it_wants() {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wstore, wlog) = writer_with(wd.path(), 1000);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let (x, y) = tokio::io::duplex(64 * 1024);
    let opts = ConnectionOptions {
        sparse: true,
        ..Default::default()
    };
    let wh = driver::spawn(
        Connection::new(
            wstore,
            true,
            &KeyPair::generate(),
            ConnectionOptions::default(),
        )
        .unwrap(),
        x,
        vec![(wlog.clone(), false)],
    );
    let rh = driver::spawn(
        Connection::new(rstore, false, &KeyPair::generate(), opts).unwrap(),
        y,
        vec![(rlog.clone(), true)],
    );
    // wait for the signed length, then ask for 10 blocks
    let mut events = rlog.subscribe();
    tokio::time::timeout(Duration::from_secs(30), async {
        while rlog.length() < 1000 {
            events.recv().await.expect("log events");
        }
    })
    .await
    .unwrap();
    let range = rlog.prioritize(dat_core::scheduler::Prioritize::range(500, 510));
    tokio::time::timeout(Duration::from_secs(30), range.done())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rlog.has_count(500, 510).unwrap(), 10);
    assert_eq!(
        rlog.has_count(0, 1000).unwrap(),
        10,
        "nothing else was downloaded"
    );
    assert_eq!(rlog.get(505).unwrap(), wlog.get(505).unwrap());
    rh.close().await.unwrap();
    wh.join().await.unwrap();
}

/// Connects `a` (initiator) and `b` over an in-memory pipe, replicating `la` and `lb`.
fn pipe(
    a: &Store,
    la: &Log,
    sparse_a: bool,
    b: &Store,
    lb: &Log,
    sparse_b: bool,
) -> (driver::ReplicationHandle, driver::ReplicationHandle) {
    let (x, y) = tokio::io::duplex(256 * 1024);
    let opts = ConnectionOptions::default();
    let ca = Connection::new(a.clone(), true, &KeyPair::generate(), opts.clone()).unwrap();
    let cb = Connection::new(b.clone(), false, &KeyPair::generate(), opts).unwrap();
    (
        driver::spawn(ca, x, vec![(la.clone(), sparse_a)]),
        driver::spawn(cb, y, vec![(lb.clone(), sparse_b)]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scheduler_spreads_a_log_over_two_peers_and_a_get_jumps_the_queue() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (s1, w) = writer_with(dirs[0].path(), 3000);
    // a second full copy of the log, made by replication
    let s2 = Store::open(dirs[1].path()).unwrap();
    let copy = s2.open_log(&w.key(), None).unwrap();
    let (h1, h2) = pipe(&s1, &w, false, &s2, &copy, false);
    until_complete(&copy, 3000).await;
    h2.close().await.unwrap();
    h1.join().await.unwrap();

    // a reader connected to both copies fetches the whole log through one scheduler
    let s3 = Store::open(dirs[2].path()).unwrap();
    let r = s3.open_log(&w.key(), None).unwrap();
    let (a1, b1) = pipe(&s1, &w, false, &s3, &r, false);
    let (a2, b2) = pipe(&s2, &copy, false, &s3, &r, false);
    // an urgent read of a late block while the bulk download runs
    r.wait_length(3000, Some(Duration::from_secs(30)));
    let urgent = r
        .get_async(2999, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(urgent, w.get(2999).unwrap());
    until_complete(&r, 3000).await;
    let per_peer = r.replicator().peer_stats();
    assert_eq!(per_peer.len(), 2);
    assert!(
        per_peer.iter().all(|(_, st)| st.blocks > 0),
        "both peers served blocks: {per_peer:?}"
    );
    assert_eq!(
        per_peer.iter().map(|(_, st)| st.blocks).sum::<u64>(),
        3000,
        "each block is counted once as useful"
    );
    // hotswap duplicates stop while waste exceeds max(budget, 10% of useful bytes); copies
    // already in flight may still land (at most the budget again)
    let stats = r.replicator().stats();
    let budget = dat_core::scheduler::SchedulerOptions::default().dup_budget_bytes;
    assert!(
        stats.wasted_bytes <= 2 * budget.max(stats.useful_bytes / 10),
        "duplicates stay within the budget: {stats:?}"
    );
    for i in (0..3000).step_by(97) {
        assert_eq!(r.get(i).unwrap(), w.get(i).unwrap());
    }
    for h in [b1, b2] {
        h.close().await.unwrap();
    }
    for h in [a1, a2] {
        h.join().await.unwrap();
    }
}

/// Waits until `cond` holds, re-checking on every event of `log` (bounded by a timeout).
async fn until(log: &Log, what: &str, cond: impl Fn() -> bool) {
    let mut events = log.subscribe();
    let wait = async {
        while !cond() {
            match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("event stream ended: {e}"),
                Err(_) => {} // re-check: the condition may not come with an event of this log
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {what}: length {} / contiguous {} / fork {}; {:?}",
                log.length(),
                log.contiguous_length(),
                log.fork(),
                log.replicator().stats()
            )
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_follows_the_writer_onto_a_new_fork_and_downloads_the_rewritten_blocks() {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wstore, wlog) = writer_with(wd.path(), 100);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let (wh, rh) = pipe(&wstore, &wlog, false, &rstore, &rlog, false);
    until_complete(&rlog, 100).await;

    // the writer rewrites history from block 50 on: a new fork with other bytes there
    wlog.truncate(50).unwrap();
    let rewritten: Vec<Vec<u8>> = (0..30)
        .map(|i| format!("fork 1 block {i}").into_bytes())
        .collect();
    wlog.append_batch(&rewritten).unwrap();
    until(&rlog, "the new fork", || {
        rlog.fork() == 1 && rlog.length() == 80 && rlog.contiguous_length() == 80
    })
    .await;
    assert_eq!(rlog.tree_hash(None).unwrap(), wlog.tree_hash(None).unwrap());
    for i in 0..80u64 {
        assert_eq!(
            rlog.get_local(i).unwrap(),
            wlog.get(i).unwrap(),
            "block {i}"
        );
    }
    wh.close().await.unwrap();
    rh.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_block_is_downloaded_again_when_read() {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wstore, wlog) = writer_with(wd.path(), 60);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let (wh, rh) = pipe(&wstore, &wlog, false, &rstore, &rlog, true);
    let range = rlog.prioritize(dat_core::scheduler::Prioritize::range(0, 60));
    tokio::task::spawn_blocking(move || range.wait(Some(Duration::from_secs(30))))
        .await
        .unwrap()
        .unwrap();

    rlog.clear(10, 20).unwrap();
    assert!(matches!(
        rlog.get_local(15),
        Err(dat_core::Error::NotAvailable(15))
    ));
    let l = rlog.clone();
    let got = tokio::task::spawn_blocking(move || l.get_wait(15, Some(Duration::from_secs(20))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, wlog.get(15).unwrap());
    wh.close().await.unwrap();
    rh.join().await.unwrap();
}

/// When a connection ends, each side reports `PeerRemove` for every log still shared on it (as
/// the reference does when a replication stream closes), whichever side closed it, and the
/// writer's scheduler no longer counts the peer. The first subscriber to a connection's events
/// sees them from the start, even when it subscribes after the logs were paired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_ends_reports_peer_remove_for_the_logs_it_shared() {
    use dat_core::replication::ConnectionEvent;
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wstore, wlog) = writer_with(wd.path(), 20);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let (wh, rh) = pipe(&wstore, &wlog, false, &rstore, &rlog, false);
    until_complete(&rlog, 20).await;
    assert_eq!(wlog.replicator().peer_count(), 1);
    // subscribed after the logs were paired: the first subscriber still sees the PeerAdd
    let (mut wev, mut rev) = (wh.subscribe(), rh.subscribe());
    let mut late = wh.subscribe(); // a second subscriber sees only what comes from now on

    // waiting for the end can be given up without losing the handle
    let mut wh = wh;
    assert!(
        tokio::time::timeout(Duration::from_millis(10), wh.finished())
            .await
            .is_err(),
        "the connection is still up"
    );
    assert!(!wh.is_finished());
    rh.close().await.unwrap(); // the reader closes; the writer sees the stream end
    tokio::time::timeout(Duration::from_secs(20), wh.finished())
        .await
        .expect("the writer's side ends when the reader closes");
    assert!(wh.is_finished());
    wh.join().await.unwrap();
    let removed = |rx: &mut tokio::sync::broadcast::Receiver<ConnectionEvent>| {
        let mut adds = 0;
        let mut removes = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            match ev {
                ConnectionEvent::PeerAdd { .. } => adds += 1,
                ConnectionEvent::PeerRemove { discovery_key } => removes.push(discovery_key),
                _ => {}
            }
        }
        (adds, removes)
    };
    let dk = wlog.discovery_key();
    assert_eq!(removed(&mut wev), (1, vec![dk]), "writer side");
    assert_eq!(removed(&mut rev), (1, vec![dk]), "reader side");
    assert_eq!(removed(&mut late), (0, vec![dk]), "late subscriber");
    assert_eq!(wlog.replicator().peer_count(), 0);
}

fn sans_io(store: &Store, log: &Log, initiator: bool) -> Connection {
    let mut c = Connection::new(
        store.clone(),
        initiator,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    c.replicate(log, false).unwrap();
    c
}

/// One round of bytes both ways between two sans-IO connections; true if any moved.
fn exchange(a: &mut Connection, b: &mut Connection) -> bool {
    a.poll_scheduler().unwrap();
    b.poll_scheduler().unwrap();
    let x = a.take_output();
    let y = b.take_output();
    if !x.is_empty() {
        b.receive(&x).unwrap();
    }
    if !y.is_empty() {
        a.receive(&y).unwrap();
    }
    !x.is_empty() || !y.is_empty()
}

/// A relay announces the blocks it downloads to its other peers (as the reference's onhave →
/// broadcastRange does): B pairs with C while both are empty, then downloads A's log, and C
/// gets every block from B without waiting for a watchdog (no `tick` is called here) or for
/// B's length to change again. B's length changes are reported to its connection to C, as the
/// driver reports them.
#[test]
fn a_relay_announces_the_blocks_it_downloads() {
    let (ad, bd, cd) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (astore, alog) = writer_with(ad.path(), 50);
    let bstore = Store::open(bd.path()).unwrap();
    let blog = bstore.open_log(&alog.key(), None).unwrap();
    let cstore = Store::open(cd.path()).unwrap();
    let clog = cstore.open_log(&alog.key(), None).unwrap();
    // B and C pair first (both empty)
    let mut bc_b = sans_io(&bstore, &blog, true);
    let mut bc_c = sans_io(&cstore, &clog, false);
    while exchange(&mut bc_b, &mut bc_c) {}
    // then B meets the writer
    let mut ab_a = sans_io(&astore, &alog, false);
    let mut ab_b = sans_io(&bstore, &blog, true);
    let dk = alog.discovery_key();
    for _ in 0..10_000 {
        let moved = exchange(&mut ab_a, &mut ab_b);
        bc_b.on_log_changed(&dk).unwrap();
        let moved2 = exchange(&mut bc_b, &mut bc_c);
        if !moved && !moved2 {
            break;
        }
    }
    assert_eq!(blog.contiguous_length(), 50, "B has the whole log");
    assert_eq!(clog.length(), 50, "C learned the length from B");
    assert_eq!(
        clog.contiguous_length(),
        50,
        "C got every block from B, which announced them"
    );
    assert_eq!(clog.tree_hash(None).unwrap(), alog.tree_hash(None).unwrap());
}

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
                "timed out at length {} / contiguous {} (want {length})",
                log.length(),
                log.contiguous_length()
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
    server.close();
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

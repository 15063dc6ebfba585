//! Hostile peers: a bad proof, a bad signature, a wrong capability, garbage bytes, a frame over
//! the size limit, a flood of requests for missing blocks. Each ends with that peer dropped (the
//! honest side's connection returns an error), nothing wrong stored, and other peers unaffected.
//! Also what a peer may do without being dropped, and what it must not cost this side: a peer
//! that never reads, answers crossing cancels, messages in an unusual order, large bitfields.

use dat_core::proof::{RequestBlock, RequestUpgrade};
use dat_core::replication::{Connection, ConnectionOptions, PROTOCOL, PeerLimits, SecureTransport};
use dat_core::wire::messages::{self, Message, Range, Request, Sync};
use dat_core::wire::protomux::{ChannelId, Event, Mux};
use dat_core::{Error, KeyPair, Log, LogOptions, Store};

/// A peer speaking the protocol by hand, so it can lie.
struct Evil {
    t: SecureTransport,
    mux: Mux,
    ch: Option<ChannelId>,
    received: Vec<Message>,
}

impl Evil {
    fn new() -> Self {
        Evil {
            t: SecureTransport::new(true, &KeyPair::generate(), 1 << 24).unwrap(),
            mux: Mux::new(),
            ch: None,
            received: vec![],
        }
    }

    /// Exchanges bytes with `honest` until both are quiet; returns the honest side's verdict.
    fn pump(&mut self, honest: &mut Connection) -> Result<(), Error> {
        for _ in 0..64 {
            while let Some(f) = self.mux.next_frame() {
                self.t.send(&f).unwrap();
            }
            let out = self.t.take_output();
            if !out.is_empty() {
                honest.receive(&out)?;
            }
            let back = honest.take_output();
            if out.is_empty() && back.is_empty() {
                return Ok(());
            }
            self.take_replies(&back);
        }
        Ok(())
    }

    /// Decrypts and decodes the honest side's bytes into `received`.
    fn take_replies(&mut self, bytes: &[u8]) {
        self.t.receive(bytes).unwrap();
        while let Some(m) = self.t.next_message() {
            self.mux.receive(&m).unwrap();
            while let Some(ev) = self.mux.next_event() {
                if let Event::Message {
                    message_type,
                    payload,
                    ..
                } = ev
                {
                    self.received
                        .push(Message::decode(message_type, &payload).unwrap());
                }
            }
        }
    }

    fn open(&mut self, log_key: &[u8; 32], capability_ok: bool) {
        let hh = self.t.handshake().unwrap().handshake_hash;
        let mut cap = messages::capability(true, log_key, &hh);
        if !capability_ok {
            cap[0] ^= 1;
        }
        let hs = messages::Handshake {
            seeks: true,
            capability: cap,
        }
        .encode();
        let dk = dat_core::crypto::discovery_key(log_key);
        self.ch = Some(self.mux.open(PROTOCOL, Some(&dk), &hs).unwrap());
    }

    fn send(&mut self, m: &Message) {
        let (t, p) = m.encode();
        self.mux.send(self.ch.unwrap(), t, &p).unwrap();
    }

    fn requests(&self) -> Vec<Request> {
        self.received
            .iter()
            .filter_map(|m| {
                if let Message::Request(r) = m {
                    Some(*r)
                } else {
                    None
                }
            })
            .collect()
    }
}

fn writer(dir: &std::path::Path, n: usize) -> (Store, Log) {
    let store = Store::open(dir).unwrap();
    let log = store.create_log(LogOptions::default()).unwrap();
    let blocks: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 100 + i]).collect();
    log.append_batch(&blocks).unwrap();
    (store, log)
}

fn honest(store: &Store, log: &Log, opts: ConnectionOptions) -> Connection {
    let mut c = Connection::new(store.clone(), false, &KeyPair::generate(), opts).unwrap();
    c.replicate(log, false).unwrap();
    c
}

/// Runs a malicious writer against an honest reader; `tamper` edits the data answering the upgrade.
fn lying_writer(tamper: impl Fn(&mut dat_core::proof::Data)) -> (Error, Log) {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ws, wlog) = writer(wd.path(), 40);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let mut reader = honest(&rstore, &rlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut reader).unwrap();
    evil.open(&wlog.key(), true);
    evil.send(&Message::Sync(Sync {
        fork: 0,
        length: 40,
        can_upgrade: true,
        uploading: true,
        has_manifest: true,
        ..Default::default()
    }));
    evil.send(&Message::Range(Range {
        drop: false,
        start: 0,
        length: 40,
    }));
    evil.pump(&mut reader).unwrap();
    let up = evil
        .requests()
        .into_iter()
        .find(|r| r.upgrade.is_some())
        .expect("the reader asks for an upgrade");
    let mut data = wlog.proof(&up.proof_request()).unwrap();
    data.request = up.id;
    data.manifest = wlog.manifest();
    tamper(&mut data);
    evil.send(&Message::Data(data));
    let err = evil.pump(&mut reader).unwrap_err();
    (err, rlog)
}

#[test]
fn a_bad_proof_drops_the_peer_and_stores_nothing() {
    let (err, rlog) = lying_writer(|d| d.upgrade.as_mut().unwrap().nodes[0].hash[3] ^= 1);
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    assert!(err.to_string().contains("bad data"), "{err}");
    assert_eq!(rlog.length(), 0);
    assert_eq!(rlog.node(0).unwrap(), None);
}

#[test]
fn a_bad_signature_drops_the_peer_and_stores_nothing() {
    let (err, rlog) = lying_writer(|d| {
        let s = &mut d.upgrade.as_mut().unwrap().signature;
        let n = s.len();
        s[n - 8] ^= 1;
    });
    assert!(err.to_string().contains("signature"), "{err}");
    assert_eq!(rlog.length(), 0);
}

#[test]
fn a_wrong_capability_drops_the_peer() {
    let (wd, _) = (tempfile::tempdir().unwrap(), ());
    let (ws, wlog) = writer(wd.path(), 5);
    let mut w = honest(&ws, &wlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut w).unwrap();
    evil.open(&wlog.key(), false);
    let err = evil.pump(&mut w).unwrap_err();
    assert!(err.to_string().contains("capability"), "{err}");
    assert!(
        evil.received.iter().all(|m| !matches!(m, Message::Data(_))),
        "nothing was served"
    );
}

#[test]
fn garbage_bytes_and_oversize_frames_drop_the_peer() {
    let (wd, _) = (tempfile::tempdir().unwrap(), ());
    let (ws, wlog) = writer(wd.path(), 5);
    // garbage instead of a handshake
    let mut w = honest(&ws, &wlog, ConnectionOptions::default());
    let garbage: Vec<u8> = (0..500u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    let mut framed = vec![32, 0, 0];
    framed.extend_from_slice(&garbage[..32]);
    assert!(w.receive(&framed).is_err() || w.receive(&garbage).is_err());
    // garbage after a good handshake
    let mut w = honest(&ws, &wlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut w).unwrap();
    let mut bad = vec![40, 0, 0];
    bad.extend_from_slice(&garbage[..40]);
    assert!(matches!(w.receive(&bad).unwrap_err(), Error::Handshake(_)));
    // a frame over the limit is refused from its length prefix alone
    let mut w = honest(
        &ws,
        &wlog,
        ConnectionOptions {
            max_frame: 1 << 20,
            ..Default::default()
        },
    );
    let err = w.receive(&[0xff, 0xff, 0x7f]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::FrameTooLarge {
                size: 0x7fffff,
                max: 1048576
            }
        ),
        "{err}"
    );
}

#[test]
fn a_flood_of_requests_for_missing_blocks_drops_the_peer_while_others_replicate() {
    let wd = tempfile::tempdir().unwrap();
    let (ws, wlog) = writer(wd.path(), 30);
    wlog.clear(10, 30).unwrap(); // the writer lacks blocks 10..30
    let limits = PeerLimits {
        max_unavailable_requests: 200,
        ..Default::default()
    };
    let opts = ConnectionOptions {
        limits,
        ..Default::default()
    };
    let mut w = honest(&ws, &wlog, opts.clone());
    let mut evil = Evil::new();
    evil.pump(&mut w).unwrap();
    evil.open(&wlog.key(), true);
    evil.pump(&mut w).unwrap();
    let mut dropped = None;
    for id in 1..=1000u64 {
        evil.send(&Message::Request(Request {
            id,
            fork: 0,
            block: Some(RequestBlock {
                index: 10 + id % 20,
                nodes: 0,
            }),
            ..Default::default()
        }));
        if let Err(e) = evil.pump(&mut w) {
            dropped = Some((id, e));
            break;
        }
    }
    let (after, err) = dropped.expect("the flooding peer was dropped");
    assert!(after <= 201, "dropped after {after} requests");
    assert!(err.to_string().contains("does not have"), "{err}");
    let no_data = evil
        .received
        .iter()
        .filter(|m| matches!(m, Message::NoData(_)))
        .count();
    assert_eq!(no_data, 200);

    // another peer of the same writer is unaffected
    let rd = tempfile::tempdir().unwrap();
    let rs = Store::open(rd.path()).unwrap();
    let rlog = rs.open_log(&wlog.key(), None).unwrap();
    let mut reader = Connection::new(
        rs.clone(),
        true,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    reader.replicate(&rlog, false).unwrap();
    let mut w2 = honest(&ws, &wlog, opts);
    for _ in 0..64 {
        let a = reader.take_output();
        if !a.is_empty() {
            w2.receive(&a).unwrap();
        }
        let b = w2.take_output();
        if a.is_empty() && b.is_empty() {
            break;
        }
        reader.receive(&b).unwrap();
    }
    assert_eq!(rlog.length(), 30);
    assert_eq!(
        rlog.has_count(0, 30).unwrap(),
        10,
        "the blocks the writer has"
    );
    assert_eq!(rlog.get(9).unwrap(), wlog.get(9).unwrap());
}

/// Requests made on a fork the log has left (a peer that has not heard of the truncation yet)
/// are answered not available, as the reference answers them, and do not count as invalid: 100
/// stale upgrade requests (over the limit of 64 invalid ones) leave the peer connected.
#[test]
fn requests_on_an_old_fork_are_not_available_not_invalid() {
    let wd = tempfile::tempdir().unwrap();
    let (ws, wlog) = writer(wd.path(), 8);
    wlog.truncate(6).unwrap();
    assert_eq!(wlog.fork(), 1);
    let mut w = honest(&ws, &wlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut w).unwrap();
    evil.open(&wlog.key(), true);
    evil.pump(&mut w).unwrap();
    for id in 1..=100u64 {
        evil.send(&Message::Request(Request {
            id,
            fork: 0,
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 8,
            }),
            ..Default::default()
        }));
        evil.pump(&mut w)
            .expect("a stale request does not drop the peer");
    }
    let reasons: Vec<u64> = evil
        .received
        .iter()
        .filter_map(|m| match m {
            Message::NoData(n) => Some(n.reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 100);
    assert!(
        reasons
            .iter()
            .all(|&r| r == messages::NO_DATA_NOT_AVAILABLE)
    );
    // on the current fork the same request is answered
    evil.send(&Message::Request(Request {
        id: 101,
        fork: 1,
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 6,
        }),
        ..Default::default()
    }));
    evil.pump(&mut w).unwrap();
    assert!(matches!(evil.received.last(), Some(Message::Data(d)) if d.request == 101));
}

#[test]
fn upgrade_requests_beyond_the_log_are_invalid_and_counted() {
    let wd = tempfile::tempdir().unwrap();
    let (ws, wlog) = writer(wd.path(), 8);
    let limits = PeerLimits {
        max_invalid_requests: 10,
        ..Default::default()
    };
    let mut w = honest(
        &ws,
        &wlog,
        ConnectionOptions {
            limits,
            ..Default::default()
        },
    );
    let mut evil = Evil::new();
    evil.pump(&mut w).unwrap();
    evil.open(&wlog.key(), true);
    evil.pump(&mut w).unwrap();
    let mut result = Ok(());
    for id in 1..=20u64 {
        evil.send(&Message::Request(Request {
            id,
            fork: 0,
            upgrade: Some(RequestUpgrade {
                start: 5,
                length: 100,
            }),
            ..Default::default()
        }));
        result = evil.pump(&mut w);
        if result.is_err() {
            break;
        }
    }
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("too many invalid requests")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stalls_in_the_handshake_is_dropped_after_the_deadline() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (store, _log) = writer(dir.path(), 3);
    let opts = ConnectionOptions {
        handshake_timeout: std::time::Duration::from_millis(500),
        ..ConnectionOptions::default()
    };
    let mut server = dat_core::replication::driver::listen(&store, "127.0.0.1:0", opts)
        .await
        .unwrap();
    let mut sock = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    // the first two bytes of a frame header, then nothing
    sock.write_all(&[0x30, 0x00]).await.unwrap();
    let served = server.accept().await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), served.join())
        .await
        .expect("the stalled connection ended by itself");
    match ended {
        Err(Error::Timeout(m)) => assert!(m.contains("handshake"), "{m}"),
        other => panic!("expected a handshake timeout, got {other:?}"),
    }
    drop(sock);
}

/// A peer that claims more (a longer log, a newer fork) than it can prove and refuses every
/// upgrade: asked once per claim, not in a loop.
#[test]
fn an_upgrade_the_peer_refuses_is_not_asked_again_for_the_same_claim() {
    for fork in [0u64, 3] {
        let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_ws, wlog) = writer(wd.path(), 5);
        let rs = Store::open(rd.path()).unwrap();
        let rlog = rs.open_log(&wlog.key(), None).unwrap();
        if fork > 0 {
            // the reader holds the log (fork 0) and the peer claims a newer fork
            let mut data = wlog
                .proof(&dat_core::proof::ProofRequest {
                    fork: 0,
                    upgrade: Some(RequestUpgrade {
                        start: 0,
                        length: 5,
                    }),
                    ..Default::default()
                })
                .unwrap();
            data.request = 0;
            data.manifest = wlog.manifest();
            rlog.apply(&data).unwrap();
            assert_eq!(rlog.length(), 5);
        }
        let mut r = honest(&rs, &rlog, ConnectionOptions::default());
        let mut evil = Evil::new();
        evil.pump(&mut r).unwrap();
        evil.open(&wlog.key(), true);
        evil.send(&Message::Sync(Sync {
            fork,
            length: 100,
            remote_length: 0,
            can_upgrade: true,
            uploading: true,
            downloading: true,
            has_manifest: true,
            allow_push: false,
        }));
        let mut asked = 0;
        for _ in 0..10 {
            evil.pump(&mut r).unwrap();
            let upgrades: Vec<u64> = evil
                .requests()
                .iter()
                .filter(|q| q.upgrade.is_some())
                .map(|q| q.id)
                .collect();
            evil.received.clear();
            asked += upgrades.len();
            for id in upgrades {
                evil.send(&Message::NoData(messages::NoData {
                    request: id,
                    reason: 0,
                }));
            }
        }
        assert_eq!(
            asked, 1,
            "fork {fork}: the refused upgrade was asked {asked} times"
        );
        // a new claim is asked about again
        evil.send(&Message::Sync(Sync {
            fork,
            length: 101,
            remote_length: 0,
            can_upgrade: true,
            uploading: true,
            downloading: true,
            has_manifest: true,
            allow_push: false,
        }));
        evil.pump(&mut r).unwrap();
        assert_eq!(
            evil.requests()
                .iter()
                .filter(|q| q.upgrade.is_some())
                .count(),
            1,
            "fork {fork}"
        );
    }
}

/// A read holding many requests is answered a budget at a time (`receive_bounded`, `resume`), so
/// a driver can write the first answers out before it serves the rest; every request is still
/// answered, in order.
#[test]
fn a_read_full_of_requests_is_answered_a_budget_at_a_time() {
    let wd = tempfile::tempdir().unwrap();
    let (ws, wlog) = writer(wd.path(), 64);
    let mut w = honest(&ws, &wlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut w).unwrap();
    evil.open(&wlog.key(), true);
    evil.pump(&mut w).unwrap();
    evil.received.clear();

    // 64 requests in one batch frame, one read
    evil.mux.cork();
    for id in 1..=64u64 {
        evil.send(&Message::Request(Request {
            id,
            fork: 0,
            block: Some(RequestBlock {
                index: id - 1,
                nodes: 0,
            }),
            ..Default::default()
        }));
    }
    evil.mux.uncork();
    while let Some(f) = evil.mux.next_frame() {
        evil.t.send(&f).unwrap();
    }
    let budget = 1024;
    let mut more = w.receive_bounded(&evil.t.take_output(), budget).unwrap();
    let mut rounds = 0;
    let mut per_round = Vec::new();
    loop {
        // what this round produced, decoded on the peer's side
        let before = evil.received.len();
        evil.take_replies(&w.take_output());
        per_round.push(evil.received.len() - before);
        rounds += 1;
        assert_eq!(more, w.has_pending_input());
        if !more {
            break;
        }
        more = w.resume(budget).unwrap();
    }
    let served: Vec<u64> = evil
        .received
        .iter()
        .filter_map(|m| match m {
            Message::Data(d) => Some(d.request),
            _ => None,
        })
        .collect();
    assert_eq!(
        served,
        (1..=64).collect::<Vec<_>>(),
        "every request, in order"
    );
    // blocks of 100..164 bytes with their proofs: a 1 KiB budget holds a few per round
    assert!(rounds >= 8, "{rounds} rounds: {per_round:?}");
    assert!(per_round.iter().all(|&n| n <= 10), "{per_round:?}");
}

/// Keep-alives, both ways: a connection quiet for its `keep_alive` time sends one on its next
/// tick (an empty message: a 3-byte header and the 17-byte tag), the peer drops it, and one
/// arriving here is dropped too. With `keep_alive: None` a quiet tick sends nothing.
#[test]
fn a_quiet_connection_sends_keep_alives_and_drops_the_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = writer(dir.path(), 3);
    for (keep_alive, expect) in [
        (Some(std::time::Duration::ZERO), 3 + 17),
        (Some(std::time::Duration::from_secs(3600)), 0),
        (None, 0),
    ] {
        let opts = ConnectionOptions {
            keep_alive,
            ..ConnectionOptions::default()
        };
        let mut h = honest(&store, &log, opts);
        let mut evil = Evil::new();
        evil.pump(&mut h).unwrap();
        evil.open(&log.key(), true);
        evil.pump(&mut h).unwrap();
        let received = evil.received.len();
        assert!(received > 0, "the channel is open and synced");
        // quiet now: a tick sends a keep-alive, or nothing
        h.tick().unwrap();
        let out = h.take_output();
        assert_eq!(out.len(), expect, "{keep_alive:?}");
        evil.take_replies(&out);
        assert_eq!(evil.received.len(), received, "no message came of it");
        // the peer's keep-alive is dropped here, and the connection goes on
        evil.t.send(&[]).unwrap();
        let out = evil.t.take_output();
        h.receive(&out).unwrap();
        assert!(h.take_output().is_empty(), "nothing to answer");
        evil.pump(&mut h).unwrap();
    }
}

/// Wants go out as the reference takes them: 2^21-aligned segments of 2^21 blocks (a longer
/// want is ignored by it), the whole log's as far as a length is known and more as a longer log
/// is claimed, a sparse range split the same way, and no more than 512 segments per peer (the
/// reference's cap), whatever length a peer claims.
#[test]
fn wants_go_out_as_aligned_segments_of_at_most_2_pow_21_blocks() {
    const SEG: u64 = 1 << 21;
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ws, wlog) = writer(wd.path(), 5);
    let rs = Store::open(rd.path()).unwrap();
    let rlog = rs.open_log(&wlog.key(), None).unwrap();
    let mut r = honest(&rs, &rlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut r).unwrap();
    evil.open(&wlog.key(), true);
    evil.pump(&mut r).unwrap();
    let wants = |evil: &mut Evil| -> Vec<(u64, u64)> {
        let w = evil
            .received
            .iter()
            .filter_map(|m| match m {
                Message::Want(w) => Some((w.start, w.length)),
                _ => None,
            })
            .collect();
        evil.received.clear();
        w
    };
    assert_eq!(
        wants(&mut evil),
        vec![(0, SEG)],
        "the whole log, as far as known"
    );
    let sync = |length| {
        Message::Sync(Sync {
            fork: 0,
            length,
            remote_length: 0,
            can_upgrade: true,
            uploading: true,
            downloading: true,
            has_manifest: true,
            allow_push: false,
        })
    };
    evil.send(&sync(5_000_000));
    evil.pump(&mut r).unwrap();
    assert_eq!(
        wants(&mut evil),
        vec![(SEG, SEG), (2 * SEG, SEG)],
        "more of the whole log as the peer's length reveals it"
    );
    let range = rlog.prioritize(dat_core::scheduler::Prioritize::range(
        20_000_000, 25_000_000,
    ));
    r.poll_scheduler().unwrap();
    evil.pump(&mut r).unwrap();
    assert_eq!(
        wants(&mut evil),
        vec![(9 * SEG, SEG), (10 * SEG, SEG), (11 * SEG, SEG)],
        "a range, split into the segments that hold it"
    );
    // a peer claiming a huge log gets at most 512 segment wants in all
    evil.send(&sync(u64::MAX / 2));
    evil.pump(&mut r).unwrap();
    let more = wants(&mut evil);
    assert_eq!(more.len(), 512 - 6, "512 segments per peer at most");
    let mut starts: Vec<u64> = more.iter().map(|w| w.0).collect();
    starts.dedup();
    assert_eq!(starts.len(), more.len(), "no segment twice");
    assert!(more.iter().all(|&(s, l)| l == SEG && s % SEG == 0));
    drop(range);
}

/// A peer that sends requests and never reads its answers cannot make this side hold them in
/// memory: once 16 MiB of answers wait unwritten, its requests are queued (not served) while
/// every other message is still handled; when the peer reads again, the queued requests are
/// answered, in the order they came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_not_served_past_a_bound_of_unwritten_answers() {
    use dat_core::replication::ConnectionEvent;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BLOCK: usize = 64 * 1024;
    const REQUESTS: u64 = 1000; // 64 MiB of answers
    let wd = tempfile::tempdir().unwrap();
    let store = Store::open(wd.path()).unwrap();
    let log = store.create_log(LogOptions::default()).unwrap();
    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; BLOCK]).collect();
    log.append_batch(&blocks).unwrap();
    // a second log: its channel's pairing marks where the honest side has read to
    let marker = store.create_log(LogOptions::default()).unwrap();
    marker.append(b"marker").unwrap();
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let conn = Connection::new(
        store.clone(),
        false,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    let handle = dat_core::replication::driver::spawn(
        conn,
        ours,
        vec![(log.clone(), false), (marker.clone(), false)],
    );
    let mut events = handle.subscribe();
    let mut evil = Evil::new();
    let mut buf = vec![0u8; 256 * 1024];
    while !evil.t.is_established() {
        let out = evil.t.take_output();
        if !out.is_empty() {
            theirs.write_all(&out).await.unwrap();
        }
        let n = theirs.read(&mut buf).await.unwrap();
        evil.t.receive(&buf[..n]).unwrap();
    }
    let out = evil.t.take_output();
    theirs.write_all(&out).await.unwrap();
    evil.open(&log.key(), true);
    for id in 1..=REQUESTS {
        evil.send(&Message::Request(Request {
            id,
            fork: 0,
            block: Some(RequestBlock {
                index: id % 64,
                nodes: 0,
            }),
            ..Default::default()
        }));
    }
    // the peer gives up on its last 100 requests (queued here by now): they are not served
    for id in REQUESTS - 99..=REQUESTS {
        evil.send(&Message::Cancel(messages::Cancel { request: id }));
    }
    evil.open(&marker.key(), true);
    while let Some(f) = evil.mux.next_frame() {
        evil.t.send(&f).unwrap();
    }
    let out = evil.t.take_output();
    theirs.write_all(&out).await.unwrap();
    // every request was read before the marker's channel paired; count what was served by then
    let (dk, marker_dk) = (log.discovery_key(), marker.discovery_key());
    let mut served = 0u64;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(ConnectionEvent::Upload { discovery_key, .. }) if discovery_key == dk => {
                    served += 1
                }
                Ok(ConnectionEvent::PeerAdd { discovery_key }) if discovery_key == marker_dk => {
                    break;
                }
                Ok(_) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .expect("the honest side read on while the peer did not");
    let bound = (16 << 20) / BLOCK as u64 + 64;
    assert!(
        served > 0 && served <= bound,
        "{served} of {REQUESTS} requests served to a peer that reads nothing (at most {bound})"
    );
    // the peer reads again: every request it did not cancel is answered, in order
    evil.received.clear();
    let mut answered = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while (answered.len() as u64) < REQUESTS - 100 {
            let n = theirs.read(&mut buf).await.unwrap();
            assert!(n > 0, "the honest side closed");
            evil.take_replies(&buf[..n]);
            for m in evil.received.drain(..) {
                if let Message::Data(d) = m {
                    answered.push(d.request);
                }
            }
        }
    })
    .await
    .expect("the queued requests were answered once the peer read");
    assert_eq!(answered, (1..=REQUESTS - 100).collect::<Vec<_>>());
    // and no cancelled one: a `want` sent now is answered (with `range`) with no `data` before
    // it
    evil.send(&Message::Want(messages::Want {
        start: 0,
        length: 1 << 21,
        any: false,
    }));
    while let Some(f) = evil.mux.next_frame() {
        evil.t.send(&f).unwrap();
    }
    let out = evil.t.take_output();
    theirs.write_all(&out).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let n = theirs.read(&mut buf).await.unwrap();
            assert!(n > 0, "the honest side closed");
            evil.take_replies(&buf[..n]);
            let mut ranged = false;
            for m in evil.received.drain(..) {
                match m {
                    Message::Data(d) => panic!("a cancelled request was answered: {}", d.request),
                    Message::Range(_) => ranged = true,
                    _ => {}
                }
            }
            if ranged {
                break;
            }
        }
    })
    .await
    .expect("the want was answered");
    drop(theirs);
    let _ = handle.join().await;
}

/// A sparse libdat reader of a log of `n` blocks, and an `Evil` peer that opened the log with
/// it, announced all `n` blocks and answered its upgrade request (the reader knows the length).
struct SparseReader {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    _wstore: Store,
    wlog: Log,
    rlog: Log,
    reader: Connection,
    evil: Evil,
}

fn sparse_reader_upgraded_by_evil(n: u64) -> SparseReader {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ws, wlog) = writer(wd.path(), n as usize);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let opts = ConnectionOptions {
        sparse: true,
        ..ConnectionOptions::default()
    };
    let mut reader = Connection::new(rstore, false, &KeyPair::generate(), opts).unwrap();
    reader.replicate(&rlog, true).unwrap();
    let mut evil = Evil::new();
    evil.pump(&mut reader).unwrap();
    evil.open(&wlog.key(), true);
    evil.send(&Message::Sync(Sync {
        fork: 0,
        length: n,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        has_manifest: true,
        ..Default::default()
    }));
    evil.send(&Message::Range(Range {
        drop: false,
        start: 0,
        length: n,
    }));
    evil.pump(&mut reader).unwrap();
    let up = evil
        .requests()
        .into_iter()
        .find(|r| r.upgrade.is_some())
        .expect("an upgrade request");
    let mut data = wlog.proof(&up.proof_request()).unwrap();
    data.request = up.id;
    data.manifest = wlog.manifest();
    evil.send(&Message::Data(data));
    evil.pump(&mut reader).unwrap();
    SparseReader {
        _dirs: (wd, rd),
        _wstore: ws,
        wlog,
        rlog,
        reader,
        evil,
    }
}

/// An answer that crosses its cancel is not a protocol error, also after thousands of cancels
/// (a JS peer never answers requests it saw cancelled, so they pile up over a long download):
/// the oldest cancelled requests are forgotten one by one, and an answer to a request this side
/// no longer knows is ignored, as the reference ignores it.
#[test]
fn an_answer_crossing_a_cancel_does_not_drop_an_honest_peer() {
    use dat_core::scheduler::Prioritize;
    let n = 5000u64;
    let SparseReader {
        wlog,
        rlog,
        mut reader,
        mut evil,
        ..
    } = sparse_reader_upgraded_by_evil(n);
    assert_eq!(rlog.length(), n);
    evil.received.clear();
    // the application reads blocks with a short timeout and gives up on each: get + cancel
    for i in 0..4200 {
        let h = rlog.prioritize(Prioritize::get(i));
        reader.poll_scheduler().unwrap();
        drop(h);
        reader.poll_scheduler().unwrap();
    }
    evil.pump(&mut reader).unwrap();
    let reqs: Vec<Request> = evil
        .requests()
        .into_iter()
        .filter(|r| r.block.is_some())
        .collect();
    assert!(reqs.len() > 4096, "{} block requests", reqs.len());
    let cancels = evil
        .received
        .iter()
        .filter(|m| matches!(m, Message::Cancel(_)))
        .count();
    assert!(cancels > 4096, "{cancels} cancels");
    // answers sent before the peer saw the cancels: one to a request this side has forgotten
    // (the oldest), one to a request it still remembers as cancelled
    for r in [reqs[0], reqs[4090]] {
        let mut d = wlog.proof(&r.proof_request()).unwrap();
        d.request = r.id;
        evil.send(&Message::Data(d));
        evil.pump(&mut reader)
            .expect("an answer that crossed a cancel is not a protocol error");
    }
    let first = reqs[0].block.unwrap().index;
    assert!(
        !rlog.has(first).unwrap(),
        "an answer to a forgotten request is not stored"
    );
}

/// Blocks the scheduler picks for a peer that cannot be asked yet (its range came before its
/// `sync`) are asked once it can be, not avoided at it until a watchdog resets it.
#[test]
fn a_peer_that_syncs_after_its_range_is_asked_for_blocks() {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n = 40u64;
    let (_ws, wlog) = writer(wd.path(), n as usize);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let mut up = wlog
        .proof(&dat_core::proof::ProofRequest {
            fork: 0,
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: n,
            }),
            ..Default::default()
        })
        .unwrap();
    up.request = 0;
    up.manifest = wlog.manifest();
    rlog.apply(&up).unwrap();
    assert_eq!(rlog.length(), n);
    let mut reader = honest(&rstore, &rlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut reader).unwrap();
    evil.open(&wlog.key(), true);
    evil.send(&Message::Range(Range {
        drop: false,
        start: 0,
        length: n,
    }));
    evil.pump(&mut reader).unwrap();
    assert!(
        evil.requests().iter().all(|r| r.block.is_none()),
        "no block is asked before the peer's sync"
    );
    evil.send(&Message::Sync(Sync {
        fork: 0,
        length: n,
        remote_length: n,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        has_manifest: true,
        allow_push: false,
    }));
    evil.pump(&mut reader).unwrap();
    let asked = evil.requests().iter().filter(|r| r.block.is_some()).count();
    assert!(asked > 0, "the peer has every block and was asked for none");
}

/// The stall watchdog leaves an idle sparse channel alone (a sparse log is never contiguous,
/// but nothing is wanted once its reads are done), and a withdrawn range's want is not sent
/// again. The watchdog's 3 s pass twice while the done read is still held (a watchdog that
/// fired would re-send its want), then twice more once it is withdrawn, on the clock given to
/// `tick_at`, with no sleep.
#[test]
fn an_idle_sparse_channel_does_not_resend_its_wants_every_three_seconds() {
    use dat_core::scheduler::Prioritize;
    use std::time::{Duration, Instant};
    let n = 100u64;
    let SparseReader {
        wlog,
        rlog,
        mut reader,
        mut evil,
        ..
    } = sparse_reader_upgraded_by_evil(n);
    // a read of block 5 that is answered
    let h = rlog.prioritize(Prioritize::get(5));
    evil.received.clear();
    reader.poll_scheduler().unwrap();
    evil.pump(&mut reader).unwrap();
    for r in evil.requests() {
        let mut d = wlog.proof(&r.proof_request()).unwrap();
        d.request = r.id;
        evil.send(&Message::Data(d));
    }
    evil.pump(&mut reader).unwrap();
    assert!(h.is_done());
    // after the channel's last arrival and its creation, the watchdog's two timestamps
    let start = Instant::now();
    let mut h = Some(h);
    let mut resent = Vec::new();
    for k in 1..=4 {
        if k == 3 {
            drop(h.take());
        }
        evil.received.clear();
        reader
            .tick_at(start + k * Duration::from_millis(3200))
            .unwrap();
        evil.pump(&mut reader).unwrap();
        let wants = evil
            .received
            .iter()
            .filter(|m| matches!(m, Message::Want(_)))
            .count();
        resent.push(wants);
    }
    assert_eq!(
        resent,
        vec![0, 0, 0, 0],
        "wants re-sent by an idle channel after each 3 s"
    );
}

/// One `bitfield` message is handled in time proportional to its size: its runs go to the
/// scheduler as one batch with one planning pass (it was one locked event and planning pass
/// per run: 5 s for this 2 MiB message of 8 Mi one-block runs). Counted in planning passes
/// (the scheduler's `plans`), not timed: a pass visits every peer with room, and one per run
/// would be 8 Mi of them.
#[test]
fn a_bitfield_message_is_handled_in_time_proportional_to_its_size() {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ws, wlog) = writer(wd.path(), 10);
    let rstore = Store::open(rd.path()).unwrap();
    let rlog = rstore.open_log(&wlog.key(), None).unwrap();
    let mut reader = honest(&rstore, &rlog, ConnectionOptions::default());
    let mut evil = Evil::new();
    evil.pump(&mut reader).unwrap();
    evil.open(&wlog.key(), true);
    evil.pump(&mut reader).unwrap();
    // 512 Ki words = 2 MiB: 8 Mi runs of one block, all below the 2^24 availability cap
    evil.send(&Message::Bitfield(messages::Bitfield {
        start: 0,
        bitfield: vec![0x5555_5555; 1 << 19],
    }));
    let before = rlog.replicator().stats().plans;
    evil.pump(&mut reader).unwrap();
    let plans = rlog.replicator().stats().plans - before;
    assert!(
        (1..=4).contains(&plans),
        "{plans} planning passes for one bitfield message"
    );
}

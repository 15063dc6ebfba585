//! The driver's stop-reading path: a peer that sends requests and never reads its answers first
//! has its requests queued (serving pauses once the unwritten answers pass a bound), and once
//! [`MAX_DEFERRED_REQUESTS`] of them are queued the driver stops reading from the socket, so the
//! queue stays bounded whatever the peer sends. When the peer reads again, every request is
//! answered in the order it came and the connection goes on.
//!
//! The test runs on tokio's paused clock (current-thread runtime): the clock only moves when every
//! task is idle, so "the peer's write is still pending after a minute" means nothing on either
//! side could make progress (there is no real IO, only an in-memory pipe): a deterministic stall,
//! not a wall-clock bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dat_core::proof::RequestBlock;
use dat_core::replication::{
    Connection, ConnectionEvent, ConnectionOptions, MAX_DEFERRED_REQUESTS, PROTOCOL,
    SecureTransport, driver,
};
use dat_core::wire::messages::{self, Message, Request};
use dat_core::wire::protomux::{ChannelId, Event, Mux};
use dat_core::{KeyPair, LogOptions, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A peer speaking the protocol by hand (as hostile.rs's `Evil`), so it can ask without reading.
struct Peer {
    t: SecureTransport,
    mux: Mux,
    ch: Option<ChannelId>,
}

impl Peer {
    fn new() -> Self {
        Peer {
            t: SecureTransport::new(true, &KeyPair::generate(), 1 << 24).unwrap(),
            mux: Mux::new(),
            ch: None,
        }
    }

    fn open(&mut self, log_key: &[u8; 32]) {
        let hh = self.t.handshake().unwrap().handshake_hash;
        let hs = messages::Handshake {
            seeks: true,
            capability: messages::capability(true, log_key, &hh),
        }
        .encode();
        let dk = dat_core::crypto::discovery_key(log_key);
        self.ch = Some(self.mux.open(PROTOCOL, Some(&dk), &hs).unwrap());
    }

    fn send(&mut self, m: &Message) {
        let (t, p) = m.encode();
        self.mux.send(self.ch.unwrap(), t, &p).unwrap();
    }

    /// The encrypted bytes of everything sent so far.
    fn wire(&mut self) -> Vec<u8> {
        while let Some(f) = self.mux.next_frame() {
            self.t.send(&f).unwrap();
        }
        self.t.take_output()
    }

    /// Decrypts the writer's bytes; hands over each `data` message.
    fn take_data(&mut self, bytes: &[u8], mut on_data: impl FnMut(dat_core::proof::Data)) {
        self.t.receive(bytes).unwrap();
        while let Some(m) = self.t.next_message() {
            self.mux.receive(&m).unwrap();
            while let Some(ev) = self.mux.next_event() {
                if let Event::Message {
                    message_type,
                    payload,
                    ..
                } = ev
                    && let Message::Data(d) = Message::decode(message_type, &payload).unwrap()
                {
                    on_data(d);
                }
            }
        }
    }
}

fn request(id: u64, index: u64) -> Message {
    Message::Request(Request {
        id,
        fork: 0,
        block: Some(RequestBlock { index, nodes: 0 }),
        ..Default::default()
    })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_peer_that_asks_and_never_reads_stops_the_driver_reading_until_it_reads() {
    // 64 KiB blocks: the answers to the first requests pass the driver's bound of unwritten
    // bytes (16 MiB), and serving pauses; the rest ask for a one-byte block, so that the 2^18
    // queued requests are cheap to answer at the end
    const BIG: u64 = 64;
    const BLOCK: usize = 64 * 1024;
    const BIG_REQUESTS: u64 = 400; // 25 MiB of answers
    const TINY: u64 = BIG; // the index of the one-byte block
    // How much further than the 2^18th queued request the driver may have read when it stops:
    // its last read (64 KiB), plus what it read ahead while it was still serving.
    const SLACK: usize = 512 << 10;
    // The pipe between the two: small, so that a peer whose bytes are not read stalls at once.
    const PIPE: usize = 16 << 10;
    // enough past the limit that the peer's bytes outlast what the driver may take (checked)
    let total = BIG_REQUESTS + MAX_DEFERRED_REQUESTS as u64 + 80_000;

    let wd = tempfile::tempdir().unwrap();
    let store = Store::open(wd.path()).unwrap();
    let log = store.create_log(LogOptions::default()).unwrap();
    let mut blocks: Vec<Vec<u8>> = (0..BIG).map(|i| vec![i as u8; BLOCK]).collect();
    blocks.push(b"x".to_vec());
    log.append_batch(&blocks).unwrap();
    let dk = log.discovery_key();

    let (ours, mut theirs) = tokio::io::duplex(PIPE);
    let conn = Connection::new(
        store.clone(),
        false,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    let handle = driver::spawn(conn, ours, vec![(log.clone(), false)]);
    let mut events = handle.subscribe();

    // the Noise handshake, then the channel
    let mut peer = Peer::new();
    let mut buf = vec![0u8; 256 * 1024];
    while !peer.t.is_established() {
        let out = peer.t.take_output();
        if !out.is_empty() {
            theirs.write_all(&out).await.unwrap();
        }
        let n = theirs.read(&mut buf).await.unwrap();
        peer.t.receive(&buf[..n]).unwrap();
    }
    peer.open(&log.key());
    let open = peer.wire();
    theirs.write_all(&open).await.unwrap();

    // Every request, encrypted up front in batches of 500 (one frame each), so that a task can
    // write them while this one reads; `ends` holds each frame's last request id and where the
    // frame ends in `wire`.
    let mut wire = Vec::new();
    let mut ends: Vec<(u64, usize)> = Vec::new();
    let mut id = 1;
    while id <= total {
        peer.mux.cork();
        let last = (id + 499).min(total);
        for id in id..=last {
            let index = if id <= BIG_REQUESTS { id % BIG } else { TINY };
            peer.send(&request(id, index));
        }
        peer.mux.uncork();
        wire.extend(peer.wire());
        ends.push((last, wire.len()));
        id = last + 1;
    }
    let (mut rd, mut wr) = tokio::io::split(theirs);
    // how much of `wire` the pipe took, i.e. the driver read (up to the pipe's capacity)
    let taken = Arc::new(AtomicUsize::new(0));
    let mut writing = {
        let taken = taken.clone();
        tokio::spawn(async move {
            let mut at = 0;
            while at < wire.len() {
                let n = wr.write(&wire[at..]).await.unwrap();
                at += n;
                taken.store(at, Ordering::Release);
            }
            wr
        })
    };

    // The peer never reads: its writes stop making progress, for good.
    let stalled = tokio::time::timeout(Duration::from_secs(60), &mut writing)
        .await
        .is_err();
    let taken_at_stall = taken.load(Ordering::Acquire);
    let wire_len = ends.last().unwrap().1;
    assert!(
        stalled,
        "the driver read all {total} requests ({wire_len} bytes) of a peer that reads nothing"
    );
    // What was served by then: the first requests, until serving paused (the rest are queued).
    let mut served = 0u64;
    loop {
        match events.try_recv() {
            Ok(ConnectionEvent::Upload { discovery_key, .. }) if discovery_key == dk => served += 1,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
            Err(e) => panic!("connection events: {e}"),
        }
    }
    assert!(
        served > 0 && served < BIG_REQUESTS,
        "serving paused while the large answers were pending ({served} served)"
    );
    // The driver reads until MAX_DEFERRED_REQUESTS are queued (the one that makes it so ends
    // in the frame at `threshold`), and stops within a read of it.
    let queued_last = served + MAX_DEFERRED_REQUESTS as u64;
    let threshold = ends
        .iter()
        .find(|&&(last, _)| last >= queued_last)
        .unwrap()
        .1;
    assert!(
        threshold + SLACK + PIPE < wire_len,
        "the peer sends more than the driver may take"
    );
    assert!(
        taken_at_stall >= threshold,
        "the driver stopped reading before {MAX_DEFERRED_REQUESTS} requests were queued \
         ({taken_at_stall} of {threshold} bytes taken)"
    );
    assert!(
        taken_at_stall <= threshold + SLACK + PIPE,
        "the driver read on past {MAX_DEFERRED_REQUESTS} queued requests: {taken_at_stall} \
         bytes taken, {threshold} held the limit"
    );
    assert!(!handle.is_finished(), "the connection is still up");
    eprintln!(
        "{served} served; stalled at {taken_at_stall} of {wire_len} bytes, the limit at {threshold}"
    );

    // The peer reads again: every request is answered, in the order it came, and the driver
    // reads the rest of them.
    drop(events);
    let mut next = 1u64;
    tokio::time::timeout(Duration::from_secs(600), async {
        while next <= total {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "the writer closed the connection");
            peer.take_data(&buf[..n], |d| {
                assert_eq!(d.request, next, "answers in request order");
                let b = d.block.expect("a block");
                if next <= BIG_REQUESTS {
                    assert_eq!((b.index, b.value.len()), (next % BIG, BLOCK));
                    assert_eq!(b.value[0], (next % BIG) as u8);
                } else {
                    assert_eq!((b.index, b.value.as_slice()), (TINY, b"x".as_slice()));
                }
                next += 1;
            });
        }
    })
    .await
    .unwrap_or_else(|_| panic!("answers stopped at request {next} of {total}"));
    let mut wr = tokio::time::timeout(Duration::from_secs(60), writing)
        .await
        .expect("the driver read every request")
        .unwrap();

    // and the connection goes on: a block appended now is served when asked for
    log.append(b"after the flood").unwrap();
    peer.send(&request(total + 1, BIG + 1));
    let bytes = peer.wire();
    wr.write_all(&bytes).await.unwrap();
    let mut answer = None;
    tokio::time::timeout(Duration::from_secs(60), async {
        while answer.is_none() {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "the writer closed the connection");
            peer.take_data(&buf[..n], |d| answer = Some(d));
        }
    })
    .await
    .expect("the new block was served");
    let d = answer.unwrap();
    assert_eq!(d.request, total + 1);
    assert_eq!(d.block.unwrap().value, b"after the flood");
    drop((rd, wr));
    handle.join().await.unwrap();
}

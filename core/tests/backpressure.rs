//! The driver's stop-reading path: a peer that sends requests and never reads its answers first
//! has its requests queued (serving pauses once the unwritten answers pass a bound), and once
//! [`MAX_DEFERRED_REQUESTS`] of them are queued the driver stops reading from the socket, so the
//! queue stays bounded whatever the peer sends. When the peer reads again, every request is
//! answered in the order it came and the connection goes on.
//!
//! And its read-no-faster-than-served path: a peer that reads its answers (so serving never
//! pauses) but asks faster than it is served is read at most one pass of reads (`MAX_DEFERRED`)
//! ahead of the answers, however much it sends.
//!
//! The tests run on tokio's paused clock (current-thread runtime): the clock only moves when every
//! task is idle, so "the peer's write is still pending after a minute" means nothing on either
//! side could make progress (there is no real IO, only in-memory pipes): a deterministic stall,
//! not a wall-clock bound.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use dat_core::proof::RequestBlock;
use dat_core::replication::{
    Connection, ConnectionEvent, ConnectionOptions, MAX_DEFERRED_REQUESTS, PROTOCOL,
    SecureTransport, driver,
};
use dat_core::wire::messages::{self, Message, Request};
use dat_core::wire::protomux::{ChannelId, Event, Mux};
use dat_core::{KeyPair, LogOptions, Store};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A peer speaking the protocol by hand (as hostile.rs's `Evil`), so it can ask without reading.
struct Peer {
    t: SecureTransport,
    mux: Mux,
    ch: Option<ChannelId>,
    /// Bytes written by [`Peer::connect`] (the handshake and the channel's open).
    connected: usize,
}

impl Peer {
    fn new() -> Self {
        Peer {
            t: SecureTransport::new(true, &KeyPair::generate(), 1 << 24).unwrap(),
            mux: Mux::new(),
            ch: None,
            connected: 0,
        }
    }

    /// The Noise handshake over `rd`/`wr`, then a channel for `log_key` (its open sent).
    async fn connect(
        rd: &mut (impl AsyncRead + Unpin),
        wr: &mut (impl AsyncWrite + Unpin),
        log_key: &[u8; 32],
    ) -> Self {
        let mut peer = Peer::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !peer.t.is_established() {
            let out = peer.t.take_output();
            if !out.is_empty() {
                wr.write_all(&out).await.unwrap();
                peer.connected += out.len();
            }
            let n = rd.read(&mut buf).await.unwrap();
            peer.t.receive(&buf[..n]).unwrap();
        }
        peer.open(log_key);
        let open = peer.wire();
        wr.write_all(&open).await.unwrap();
        peer.connected += open.len();
        peer
    }

    /// Requests 1..=`total` (request `id` asks for block `index(id)`), encrypted in batches of
    /// [`BATCH`] (one frame each): the bytes, and each frame's last request id and where the
    /// frame ends in them.
    fn requests(&mut self, total: u64, index: impl Fn(u64) -> u64) -> (Vec<u8>, Vec<(u64, usize)>) {
        let mut wire = Vec::new();
        let mut ends = Vec::new();
        let mut id = 1;
        while id <= total {
            self.mux.cork();
            let last = (id + BATCH - 1).min(total);
            for id in id..=last {
                self.send(&request(id, index(id)));
            }
            self.mux.uncork();
            wire.extend(self.wire());
            ends.push((last, wire.len()));
            id = last + 1;
        }
        (wire, ends)
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

/// Requests per frame the peer sends.
const BATCH: u64 = 500;

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

    let (ours, theirs) = tokio::io::duplex(PIPE);
    let conn = Connection::new(
        store.clone(),
        false,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    let handle = driver::spawn(conn, ours, vec![(log.clone(), false)]);
    let mut events = handle.subscribe();

    let (mut rd, mut wr) = tokio::io::split(theirs);
    let mut peer = Peer::connect(&mut rd, &mut wr, &log.key()).await;
    let mut buf = vec![0u8; 256 * 1024];

    // Every request, encrypted up front, so that a task can write them while this one reads.
    let (wire, ends) = peer.requests(total, |id| if id <= BIG_REQUESTS { id % BIG } else { TINY });
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

/// The driver's end of the pipe, counting the bytes the driver has read from it.
struct Counted<S> {
    inner: S,
    read: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read
            .fetch_add(buf.filled().len() - before, Ordering::AcqRel);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the flooding peer watches: how far the driver has read ahead of the answers.
struct Flood {
    /// Each request frame's last request id and where it ends in the peer's bytes.
    ends: Vec<(u64, usize)>,
    /// Bytes the driver has read, and how many of them came before the requests.
    read: Arc<AtomicUsize>,
    connected: usize,
    /// Requests answered (to the peer: it has their answers), in order.
    answered: AtomicU64,
    /// The most request bytes seen read by the driver and not answered, and where the driver
    /// had read to then.
    worst: std::sync::Mutex<(usize, usize)>,
    samples: AtomicUsize,
}

impl Flood {
    /// Bytes the driver has read past the last frame whose requests are all answered.
    fn sample(&self) {
        // the answers first: an answer counted comes from bytes already counted as read
        let answered = self.answered.load(Ordering::Acquire);
        let read = self
            .read
            .load(Ordering::Acquire)
            .saturating_sub(self.connected);
        let done = self.ends.partition_point(|&(last, _)| last <= answered);
        let answered_bytes = done.checked_sub(1).map_or(0, |i| self.ends[i].1);
        let ahead = read.saturating_sub(answered_bytes);
        let mut worst = self.worst.lock().unwrap();
        if ahead > worst.0 {
            *worst = (ahead, read);
        }
        self.samples.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_peer_that_reads_but_asks_faster_than_it_is_served_is_read_no_faster_than_served() {
    // The driver's limits (private to driver.rs, restated): bytes read in one pass before the
    // received blocks are stored, its read buffer, its unwritten bytes past which serving
    // pauses, and the replies it makes before writing them out.
    const MAX_DEFERRED: usize = 8 << 20;
    const READ_BUF: usize = 64 << 10;
    const MAX_UNSENT: usize = 16 << 20;
    const SERVE_BUDGET: usize = 256 << 10;
    // 1 KiB blocks: an answer is some 90 times its request (about 11 bytes), so a read of
    // requests makes far more answers than one serving budget, and what is not served waits.
    const BLOCKS: u64 = 4;
    const BLOCK: usize = 1024;
    // The pipe of requests: small, so that the peer fills it and waits for the driver.
    const PIPE: usize = 256 << 10;
    // The pipe of answers (and the peer's read buffer): large, so that the driver's writer never
    // waits for the peer: its unwritten bytes stay far under MAX_UNSENT and serving never pauses
    // (the stop-reading path of the test above is not involved).
    const ANSWER_PIPE: usize = 32 << 20;
    const PEER_BUF: usize = 1 << 20;
    // about 31 MiB of requests (checked: more than three times MAX_DEFERRED)
    const TOTAL: u64 = 3_000_000;

    let wd = tempfile::tempdir().unwrap();
    let store = Store::open(wd.path()).unwrap();
    let log = store.create_log(LogOptions::default()).unwrap();
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; BLOCK]).collect();
    log.append_batch(&blocks).unwrap();

    let (driver_rd, mut wr) = tokio::io::simplex(PIPE);
    let (mut rd, driver_wr) = tokio::io::simplex(ANSWER_PIPE);
    let read = Arc::new(AtomicUsize::new(0));
    let ours = Counted {
        inner: tokio::io::join(driver_rd, driver_wr),
        read: read.clone(),
    };
    let conn = Connection::new(
        store.clone(),
        false,
        &KeyPair::generate(),
        ConnectionOptions::default(),
    )
    .unwrap();
    let handle = driver::spawn(conn, ours, vec![(log.clone(), false)]);
    let mut peer = Peer::connect(&mut rd, &mut wr, &log.key()).await;
    let (wire, ends) = peer.requests(TOTAL, |id| id % BLOCKS);
    let wire_len = wire.len();
    let frame = ends
        .iter()
        .scan(0, |start, &(_, end)| {
            Some(end - std::mem::replace(start, end))
        })
        .max()
        .unwrap();
    assert!(
        wire_len > 3 * MAX_DEFERRED,
        "the peer sends far more than the driver reads in one pass"
    );

    // How far the driver may read ahead of the answers the peer has, in request bytes:
    //   - what it read and has not handled yet: it reads only once everything read before is
    //     handled, and a pass of reads ends once it has taken MAX_DEFERRED bytes, its last read
    //     adding at most READ_BUF;
    //   - requests served whose answers the peer does not have yet: the answers unwritten in the
    //     driver (serving pauses past MAX_UNSENT, after at most one more serving budget), in the
    //     answer pipe and in the peer's buffer; each is at least BLOCK bytes, so they answer at
    //     most that many requests, spread over that many / BATCH frames plus the two at the ends;
    //   - the answered bytes are counted by whole frames: one more frame.
    // (No request waits in the queue of the stop-reading path: serving never pauses here.) The
    // driver's read counter is exact, so the requests still in the pipe are not counted.
    // Without the check that input already read is handled before more is read, a pass of reads
    // can start while earlier input still waits, and what waits grows with every pass: the
    // driver then reads nearly all the peer sends before it has answered much of it.
    let in_flight = (MAX_UNSENT + SERVE_BUDGET + ANSWER_PIPE + PEER_BUF) / BLOCK;
    let bound = MAX_DEFERRED + READ_BUF + (in_flight / BATCH as usize + 3) * frame;

    let flood = Arc::new(Flood {
        ends,
        read,
        connected: peer.connected,
        answered: AtomicU64::new(0),
        worst: std::sync::Mutex::new((0, 0)),
        samples: AtomicUsize::new(0),
    });
    // The peer writes its requests as fast as the pipe takes them, and looks each time it has
    // written some and each time the pipe is full.
    let writing = {
        let flood = flood.clone();
        tokio::spawn(async move {
            let mut at = 0;
            let mut stalls = 0;
            while at < wire.len() {
                let first = std::future::poll_fn(|cx| {
                    Poll::Ready(Pin::new(&mut wr).poll_write(cx, &wire[at..]))
                })
                .await;
                let n = match first {
                    Poll::Ready(n) => n.unwrap(),
                    Poll::Pending => {
                        stalls += 1;
                        flood.sample();
                        wr.write(&wire[at..]).await.unwrap()
                    }
                };
                at += n;
                flood.sample();
            }
            (wr, stalls)
        })
    };

    // This task reads the answers as they come (and looks after each read), checking each is
    // the next one asked for.
    let mut buf = vec![0u8; PEER_BUF];
    let mut next = 1u64;
    tokio::time::timeout(Duration::from_secs(600), async {
        while next <= TOTAL {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "the writer closed the connection");
            peer.take_data(&buf[..n], |d| {
                assert_eq!(d.request, next, "answers in request order");
                let b = d.block.expect("a block");
                assert_eq!(b.index, next % BLOCKS);
                assert_eq!(b.value, vec![(next % BLOCKS) as u8; BLOCK]);
                next += 1;
            });
            flood.answered.store(next - 1, Ordering::Release);
            flood.sample();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("answers stopped at request {next} of {TOTAL}"));
    let (mut wr, stalls) = tokio::time::timeout(Duration::from_secs(60), writing)
        .await
        .expect("the driver read every request")
        .unwrap();

    let (worst, at) = *flood.worst.lock().unwrap();
    let samples = flood.samples.load(Ordering::Relaxed);
    eprintln!(
        "{TOTAL} requests in {wire_len} bytes ({frame}-byte frames); {samples} samples, the \
         peer's writes waited {stalls} times; at most {worst} bytes read ahead of the answers \
         (at {at} read), bound {bound}"
    );
    assert!(stalls > 100, "the peer asked faster than it was served");
    assert!(
        worst <= bound,
        "the driver read {worst} bytes of requests ahead of their answers (at {at} of \
         {wire_len} bytes read), more than {bound}"
    );
    // the peer hangs up (a simplex half ends its direction only when shut down)
    wr.shutdown().await.unwrap();
    drop((rd, wr));
    tokio::time::timeout(Duration::from_secs(60), handle.join())
        .await
        .expect("the connection ended")
        .unwrap();
}

//! `make demo`: libdat's main job today. A writer shares a 64 MiB file as a signed log over TCP on
//! 127.0.0.1; a sparse reader that knows only the log's key seeks to a byte offset and fetches just
//! the block it lands on, verified against the writer's signature; a live append arrives; a second
//! reader syncs everything; a tampered proof is refused.

use std::time::{Duration, Instant};

use dat_core::proof::{ProofRequest, RequestBlock, RequestUpgrade};
use dat_core::replication::{ConnectionOptions, driver};
use dat_core::{Log, LogEvent, LogOptions, Store};

fn block(i: u64) -> Vec<u8> {
    (0..65536u32)
        .map(|j| (i as u32).wrapping_mul(31).wrapping_add(j) as u8)
        .collect()
}

async fn until(log: &Log, what: &str, pred: impl Fn(&Log) -> bool) -> Result<(), String> {
    let mut events = log.subscribe();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !pred(log) {
            if events.recv().await.is_err() && !pred(log) {
                return Err(format!("the log closed while waiting for {what}"));
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| format!("timed out waiting for {what}"))?
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let writer_store = Store::open(root.path().join("writer"))?;

    // 1. The writer appends a 64 MiB "file" in 64 KiB blocks, 256 blocks per signed batch.
    let log = writer_store.create_log(LogOptions::default())?;
    let t = Instant::now();
    for b in 0..4 {
        let batch: Vec<Vec<u8>> = (b * 256..(b + 1) * 256).map(block).collect();
        log.append_batch(&batch)?;
    }
    println!(
        "writer: {} blocks, {} bytes, appended in {:.2?}\n  key           {}\n  discovery key {}",
        log.length(),
        log.byte_length(),
        t.elapsed(),
        hex(&log.key()),
        hex(&log.discovery_key())
    );
    let server = driver::listen(&writer_store, "127.0.0.1:0", ConnectionOptions::default()).await?;
    println!("writer: serving on {}", server.local_addr());

    // 2. A sparse reader opens the log by key alone and connects.
    let reader_store = Store::open(root.path().join("sparse-reader"))?;
    let reader = reader_store.open_log(&log.key(), None)?;
    let sparse = ConnectionOptions {
        sparse: true,
        ..Default::default()
    };
    let conn = driver::connect(&reader_store, &server.local_addr().to_string(), sparse).await?;
    until(&reader, "the signed length", |l| l.length() == 1024).await?;
    println!(
        "sparse reader: verified the signed length {} (manifest learned from the writer: {})",
        reader.length(),
        reader.manifest().is_some()
    );
    // The file's blocks are 64 KiB, so the reader knows where a byte offset lands. (A byte seek
    // over the network, for variable-sized blocks, comes with the drive's cursor.)
    let offset = 40_000_000u64;
    let (index, within) = (offset / 65536, offset % 65536);
    assert_eq!(
        log.seek(offset)?,
        (index, within),
        "the writer's own byte seek agrees"
    );
    // a read of a block that is not local fetches it at the top priority
    let got = reader
        .get_async(index, Some(std::time::Duration::from_secs(30)))
        .await?;
    assert_eq!(got, block(index));
    println!(
        "sparse reader: byte {offset} is block {index} offset {within}: {:#04x}; it holds {} of {} blocks",
        got[within as usize],
        reader.has_count(0, reader.length())?,
        reader.length()
    );

    // 3. A live append on the writer reaches the reader.
    log.append(b"a line appended while the reader watches")?;
    until(&reader, "the live append", |l| l.length() == 1025).await?;
    reader
        .get_async(1024, Some(std::time::Duration::from_secs(30)))
        .await?;
    println!(
        "sparse reader: live append arrived: {:?}",
        String::from_utf8_lossy(&reader.get(1024)?)
    );
    conn.close().await?;

    // 4. A full reader syncs every block.
    let full_store = Store::open(root.path().join("full-reader"))?;
    let full = full_store.open_log(&log.key(), None)?;
    let mut downloads = full.subscribe();
    let t = Instant::now();
    let conn = driver::connect(
        &full_store,
        &server.local_addr().to_string(),
        ConnectionOptions::default(),
    )
    .await?;
    until(&full, "a full sync", |l| l.contiguous_length() == 1025).await?;
    let mut n = 0;
    loop {
        match downloads.try_recv() {
            Ok(ev) => n += u64::from(matches!(ev, LogEvent::Download { .. })),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(missed)) => n += missed,
            Err(_) => break,
        }
    }
    println!(
        "full reader: {} blocks ({} MiB) verified and stored in {:.2?} (~{n} download events)",
        full.length(),
        full.byte_length() >> 20,
        t.elapsed()
    );
    conn.close().await?;
    server.close().await;

    // 5. A tampered proof is refused and changes nothing.
    let mut bad = log.proof(&ProofRequest {
        fork: 0,
        block: Some(RequestBlock { index, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: log.length(),
        }),
        ..Default::default()
    })?;
    if let Some(b) = bad.block.as_mut() {
        b.value[0] ^= 1;
    }
    let other_store = Store::open(root.path().join("another-reader"))?;
    let other = other_store.open_log(&log.key(), log.manifest())?;
    match other.apply(&bad) {
        Err(e) => println!(
            "tampered proof refused: {e}; that reader still has length {}",
            other.length()
        ),
        Ok(_) => return Err("a tampered proof was accepted".into()),
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

//! `make demo`: libdat's main job today. A writer shares a file as a signed log; a reader that
//! knows only the log's key verifies and reads one block from the middle, seeking by byte offset,
//! without holding anything else.

use dat_core::proof::{ProofRequest, RequestBlock, RequestUpgrade};
use dat_core::{LogOptions, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let writer_store = Store::open(root.path().join("writer"))?;
    let reader_store = Store::open(root.path().join("reader"))?;

    // 1. The writer appends a 64 MiB "file" in 64 KiB blocks, 256 blocks per signed batch.
    let log = writer_store.create_log(LogOptions::default())?;
    let t = std::time::Instant::now();
    let block = |i: u64| -> Vec<u8> {
        (0..65536u32)
            .map(|j| (i as u32).wrapping_mul(31).wrapping_add(j) as u8)
            .collect()
    };
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

    // 2. The reader opens the log by key (the manifest comes with the first proof).
    let reader = reader_store.open_log(&log.key(), None)?;
    let offset = 40_000_000u64;
    let (index, within) = log.seek(offset)?;
    println!("seek: byte {offset} is block {index}, offset {within}");
    let mut data = log.proof(&ProofRequest {
        fork: 0,
        block: Some(RequestBlock { index, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: log.length(),
        }),
        ..Default::default()
    })?;
    data.manifest = log.manifest();
    let wire = data.encode();
    let applied = reader.apply(&dat_core::proof::Data::decode(&wire)?)?;
    println!(
        "reader: verified a {} byte proof (signature and {} hashes): length {:?}, block {:?}",
        wire.len(),
        data.block.as_ref().map_or(0, |b| b.nodes.len())
            + data.upgrade.as_ref().map_or(0, |u| u.nodes.len()),
        applied.upgraded_to,
        applied.block
    );
    let got = reader.get(index)?;
    assert_eq!(got, block(index));
    println!(
        "reader: holds {} of {} blocks; byte {offset} = {:#04x}",
        reader.has_count(0, reader.length())?,
        reader.length(),
        got[within as usize]
    );

    // 3. A tampered proof is refused and changes nothing.
    let mut bad = data.clone();
    if let Some(b) = bad.block.as_mut() {
        b.value[0] ^= 1;
    }
    let other_store = Store::open(root.path().join("another-reader"))?;
    let other = other_store.open_log(&log.key(), None)?;
    match other.apply(&bad) {
        Err(e) => println!(
            "tampered proof refused: {e}; the reader still has length {}",
            other.length()
        ),
        Ok(_) => return Err("a tampered proof was accepted".into()),
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

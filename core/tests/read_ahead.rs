//! Ranged local reads (`Log::get_range_local`, checked several blocks per SIMD pass) and the blob
//! reader's read-ahead that uses them: same bytes as single `get`s, corruption and missing blocks
//! reported, a sequential read across a cleared block falls back to reading block by block.

use std::io::{Read, Seek, SeekFrom};

use dat_core::blobs::Blobs;
use dat_core::{Error, LogOptions, Store};

fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn a_ranged_local_read_equals_single_gets_and_stops_at_its_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = store.create_log(LogOptions::default()).unwrap();
    let blocks: Vec<Vec<u8>> = (0..50)
        .map(|i| bytes(i * 37 % 3000, i as u32 + 1))
        .collect();
    log.append_batch(&blocks).unwrap();

    let all = log.get_range_local(0, 50, usize::MAX).unwrap();
    assert_eq!(all, blocks);
    let some = log.get_range_local(5, 50, 4000).unwrap();
    let want: usize = some.iter().map(Vec::len).sum();
    assert!(want >= 4000 && some.len() < 45, "stops after the budget");
    assert_eq!(some, blocks[5..5 + some.len()].to_vec());
    assert!(matches!(
        log.get_range_local(50, 60, 1),
        Err(Error::OutOfBounds(_))
    ));

    log.clear(20, 21).unwrap();
    assert!(matches!(
        log.get_range_local(10, 30, usize::MAX),
        Err(Error::NotAvailable(20))
    ));
    assert_eq!(
        log.get_range_local(21, 30, usize::MAX).unwrap(),
        blocks[21..30].to_vec()
    );
}

#[test]
fn the_blob_reader_reads_ahead_and_falls_back_around_a_cleared_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let blobs = Blobs::new(store.named_log("blobs").unwrap());
    let data = bytes(40 * 65536 + 1234, 7);
    let id = blobs.put(&data).unwrap();

    let mut all = Vec::new();
    blobs.reader(&id).unwrap().read_to_end(&mut all).unwrap();
    assert_eq!(all, data);

    // small sequential reads after a seek, then a seek back
    let mut r = blobs.reader(&id).unwrap();
    r.seek(SeekFrom::Start(100_000)).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    for _ in 0..200 {
        r.read_exact(&mut buf).unwrap();
        got.extend_from_slice(&buf);
    }
    assert_eq!(got, data[100_000..100_000 + 200 * 4096]);
    r.seek(SeekFrom::Start(10)).unwrap();
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[10..10 + 4096]);

    // a cleared block in the middle: reads before it succeed, the read of it fails clearly
    blobs.log().clear(25, 26).unwrap();
    let mut r = blobs.reader(&id).unwrap();
    let mut head = vec![0u8; 25 * 65536];
    r.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..25 * 65536]);
    let err = r.read_exact(&mut buf).unwrap_err();
    assert!(err.to_string().contains("25"), "{err}");
}

/// Resident kilobytes of this process's mappings of `file` (from /proc/self/smaps).
#[cfg(target_os = "linux")]
fn mapped_rss_kib(file: &std::path::Path) -> u64 {
    let want = std::fs::canonicalize(file).unwrap();
    let want = want.to_string_lossy();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let (mut inside, mut kib) = (false, 0);
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = line.trim_end().ends_with(want.as_ref());
        } else if inside && first == "Rss:" {
            kib += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    kib
}

#[cfg(target_os = "linux")]
#[test]
fn streaming_a_big_blob_does_not_keep_the_store_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let blobs = Blobs::new(store.named_log("blobs").unwrap());
    let data = bytes(160 << 20, 11);
    let id = blobs.put(&data).unwrap();
    let data_file = dir.path().join("data.mdb");

    let mut r = blobs.reader(&id).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut peak, mut read) = (0, 0usize);
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(buf[..n], data[read..read + n]);
        read += n;
        peak = peak.max(mapped_rss_kib(&data_file));
    }
    assert_eq!(read, data.len());
    // 160 MiB read; the map's pages are released once they add 40 MiB to the resident set
    // (checked every 4 MiB read)
    assert!(
        peak < 100 * 1024,
        "{peak} KiB of the store stayed mapped while reading 160 MiB"
    );
}

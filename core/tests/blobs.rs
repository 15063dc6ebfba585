//! The blobs layer against hyperblobs 2.12.1.
//!
//! - Golden vector: `vectors/hyperblobs-2.12.1.txt` is `vectors/out/blobs-vector.txt` from the
//!   project's shared research folder, the output of `vectors/scripts/blobs-vector.js` run with
//!   Node v20.20.2, hyperblobs 2.12.1, hypercore 11.39.5 and hyperdrive 13.3.4 (key pair
//!   `crypto.keyPair(0x01 × 32)`). libdat repeats the same writes and must print the same ids,
//!   block sizes, block map bytes and ranged reads.
//! - Live interop: `tests/interop/blobs-interop.js` runs the pinned hyperblobs on inputs made here:
//!   the same writes (plain, write stream, block map, dedup within a stream and against a previous
//!   blob, content-defined chunks) must give the same ids, blocks, tree hash and signature; and
//!   hyperblobs must read the blobs libdat wrote with a dedup index shared across files.
//!   Needs `npm ci` in `tests/interop` (`make test` does it); `LIBDAT_SKIP_INTEROP=1` skips it.
//! - A `Read + Seek` property test against a `Vec`, dedup figures, writer chunking and misuse.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use dat_core::blobs::{
    BlobId, Blobs, BlockMap, BlockRef, Chunking, DedupIndex, DedupReport, FastCdc,
    MemoryDedupIndex, WriteOptions,
};
use dat_core::{Durability, Error, KeyPair, Log, LogOptions, Store, StoreOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const VECTOR: &str = include_str!("vectors/hyperblobs-2.12.1.txt");

fn store(dir: &Path) -> Store {
    Store::open_with(
        dir,
        StoreOptions {
            durability: Durability::NoSync,
            ..Default::default()
        },
    )
    .unwrap()
}

fn seeded_log(dir: &Path, seed: u8) -> Log {
    store(dir)
        .create_log(LogOptions {
            key_pair: Some(KeyPair::from_seed(&[seed; 32])),
            ..Default::default()
        })
        .unwrap()
}

fn pat(n: usize, off: usize) -> Vec<u8> {
    (0..n).map(|i| ((i + off) & 0xff) as u8).collect()
}

/// xorshift64*: deterministic test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// The rest of the vector line starting with `prefix`.
fn vector_line(prefix: &str) -> &'static str {
    VECTOR
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("vector line {prefix:?}"))
}

/// The first flat JSON object in `s`.
fn first_object(s: &str) -> &str {
    let start = s.find('{').unwrap();
    &s[start..=start + s[start..].find('}').unwrap()]
}

fn block_lengths(log: &Log) -> Vec<usize> {
    (0..log.length())
        .map(|i| log.get(i).unwrap().len())
        .collect()
}

fn map_json(map: &BlockMap) -> String {
    let entries: Vec<String> = map
        .blocks
        .iter()
        .map(|b| format!(r#"{{"index":{},"byteLength":{}}}"#, b.index, b.byte_length))
        .collect();
    format!("[{}]", entries.join(","))
}

fn dedup_writer<'a>(
    blobs: &Blobs,
    index: &'a mut dyn DedupIndex,
) -> dat_core::blobs::BlobWriter<'a> {
    blobs
        .writer_with(WriteOptions {
            dedup: Some(Box::new(index)),
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn golden_vector() {
    let dir = tempfile::tempdir().unwrap();
    let log = seeded_log(dir.path(), 1);
    let blobs = Blobs::new(log.clone());

    let id1 = blobs.put(&pat(150000, 0)).unwrap();
    assert_eq!(
        id1.to_json(),
        vector_line("put 150000 bytes (default blockSize 65536) -> ")
    );
    let id2 = blobs.put(b"tiny").unwrap();
    assert_eq!(id2.to_json(), vector_line("put \"tiny\" -> "));
    let id3 = blobs.put_with_block_size(&pat(10, 0), 4).unwrap();
    assert_eq!(id3.to_json(), vector_line("put 10 bytes blockSize 4 -> "));
    let id0 = blobs.put(b"").unwrap();
    assert_eq!(id0.to_json(), vector_line("put empty -> "));

    // Write stream: each write is one block, never re-split.
    let mut w = blobs.writer().unwrap();
    w.write_all(&pat(100000, 0)).unwrap();
    w.write_all(&pat(3, 0)).unwrap();
    let ws = w.finish().unwrap();
    assert_eq!(
        ws.to_json(),
        first_object(vector_line("createWriteStream write(100000)+write(3) -> "))
    );
    let lens: Vec<usize> = serde_json::from_str(vector_line("block lengths so far ")).unwrap();
    assert_eq!(block_lengths(&log), lens);

    // Dedup within one stream: a, b, a, "end".
    let (a, b) = (pat(65536, 0), pat(65536, 7));
    let mut index = MemoryDedupIndex::new();
    let mut w = dedup_writer(&blobs, &mut index);
    for chunk in [&a[..], &b, &a, b"end"] {
        w.write_all(chunk).unwrap();
    }
    let (ws2, report) = w.finish_with_report().unwrap();
    assert_eq!(ws2.to_json(), vector_line("dedup write a,b,a,\"end\" -> "));
    assert_eq!(
        report,
        DedupReport {
            bytes_total: 196611,
            bytes_new: 131075,
            blocks_total: 4,
            blocks_new: 3,
            blocks_reused: 1
        }
    );
    assert_eq!(
        hex::encode(log.get(ws2.block_offset).unwrap()),
        vector_line("blockMap block hex ")
    );
    let map = blobs.block_map(&ws2).unwrap().unwrap();
    let decoded = vector_line("decoded blockMap ");
    assert_eq!(map_json(&map), decoded.split(' ').next().unwrap());
    assert!(decoded.ends_with(&format!("getByteLength {}", blobs.size(&ws2).unwrap())));
    let full = blobs.get(&ws2).unwrap();
    assert_eq!(full, [&a[..], &b, &a, b"end"].concat());
    assert_eq!(
        vector_line("get via blockMap length "),
        format!("{} equal true", full.len())
    );
    assert_eq!(
        hex::encode(blobs.read_range(&ws2, 65534, 4).unwrap()),
        vector_line("get via blockMap start=65534 length=4 -> ")
    );

    // Dedup against a previous blob (createWriteStream({dedup: true, blob: ws2.id})).
    let mut index = MemoryDedupIndex::new();
    blobs.index_blob(&ws2, &mut index).unwrap();
    let mut w = dedup_writer(&blobs, &mut index);
    w.write_all(&b).unwrap();
    w.write_all(b"new").unwrap();
    let ws3 = w.finish().unwrap();
    let line = vector_line("dedup against previous blob, write b,\"new\" -> ");
    assert_eq!(ws3.to_json(), first_object(line));
    let map3 = blobs.block_map(&ws3).unwrap().unwrap();
    assert!(line.ends_with(&format!("map {}", map_json(&map3))));

    // Ranged reads on a plain blob (`end` is inclusive in the reference).
    assert_eq!(
        hex::encode(blobs.read_range(&id1, 65535, 65537 - 65535 + 1).unwrap()),
        vector_line("get id1 start=65535 end=65537 (end inclusive) -> ")
    );
    assert_eq!(
        hex::encode(blobs.read_range(&id1, 149998, u64::MAX).unwrap()),
        vector_line("get id1 start=149998 -> ")
    );
    assert_eq!(
        format!("{} byteLength {}", log.length(), log.byte_length()),
        vector_line("core.length ")
    );
}

#[test]
fn drive_vector_blobs() {
    // The blobs side of Hyperdrive's createWriteStream, then createWriteStream(path, {dedup: true})
    // of the same content: the new version is a one-entry map onto the old block.
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    let mut w = blobs.writer().unwrap();
    w.write_all(&pat(100000, 0)).unwrap();
    let first = w.finish().unwrap();
    let line = vector_line("drive.createWriteStream single 100000-byte write -> entry ");
    let blob = |line: &str| first_object(&line[line.find("\"blob\":").unwrap()..]).to_string();
    assert_eq!(first.to_json(), blob(line));

    let mut index = MemoryDedupIndex::new();
    blobs.index_blob(&first, &mut index).unwrap();
    let mut w = dedup_writer(&blobs, &mut index);
    w.write_all(&pat(100000, 0)).unwrap();
    let second = w.finish().unwrap();
    let line = vector_line("drive.createWriteStream dedup:true -> entry ");
    assert_eq!(second.to_json(), blob(line));
    assert_eq!(BlobId::from_json(&blob(line)).unwrap(), second);
    // The entry in the db block embeds exactly these bytes.
    let db_block = hex::decode(vector_line("db block hex ")).unwrap();
    let id_json = second.to_json();
    assert!(
        db_block
            .windows(id_json.len())
            .any(|w| w == id_json.as_bytes())
    );
    let lens: Vec<usize> = serde_json::from_str(vector_line("blob block lengths ")).unwrap();
    assert_eq!(block_lengths(blobs.log()), lens);
    assert_eq!(blobs.get(&second).unwrap(), pat(100000, 0));
}

/// Writes one blob of `writes` in `mode`: 0 plain write stream, 1 dedup write stream,
/// 2 content-defined dedup, 3 fixed 1000-byte blocks.
fn write_blob(blobs: &Blobs, writes: &[Vec<u8>], mode: u8) -> BlobId {
    let mut index = MemoryDedupIndex::new();
    let opts = match mode {
        0 => WriteOptions::default(),
        1 => WriteOptions {
            dedup: Some(Box::new(&mut index)),
            ..Default::default()
        },
        2 => WriteOptions {
            chunking: Chunking::ContentDefined(dat_core::blobs::CdcParams {
                min_size: 256,
                avg_size: 1024,
                max_size: 4096,
            }),
            dedup: Some(Box::new(&mut index)),
            ..Default::default()
        },
        _ => WriteOptions {
            chunking: Chunking::Fixed(1000),
            ..Default::default()
        },
    };
    let mut w = blobs.writer_with(opts).unwrap();
    for chunk in writes {
        w.write_all(chunk).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn reader_matches_a_vec() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    // A first blob so that later ones start at a non-zero block and byte offset.
    blobs.put(&pat(1234, 5)).unwrap();
    let mut runner = TestRunner::new(Config::with_cases(64));
    let strategy = (
        0u8..4,
        any::<u64>(),
        prop::collection::vec((0usize..6, 1usize..9000), 0..14),
        prop::collection::vec((0u64..1 << 20, 0usize..12000, 0u8..3), 1..24),
    );
    runner
        .run(&strategy, |(mode, seed, writes, ops)| {
            // Writes drawn from six pieces, so dedup finds repeats.
            let mut rng = Rng(seed | 1);
            let pieces: Vec<Vec<u8>> = (0..6).map(|_| rng.bytes(9000)).collect();
            let writes: Vec<Vec<u8>> = writes
                .iter()
                .map(|&(p, len)| pieces[p][..len].to_vec())
                .collect();
            let model = writes.concat();
            let id = write_blob(&blobs, &writes, mode);
            prop_assert_eq!(blobs.size(&id).unwrap(), model.len() as u64);
            prop_assert_eq!(&blobs.get(&id).unwrap(), &model);
            let mut r = blobs.reader(&id).unwrap();
            prop_assert_eq!(r.len(), model.len() as u64);
            let size = model.len() as u64;
            for (at, len, how) in ops {
                let at = at % (size + 10);
                let pos = match how {
                    0 => r.seek(SeekFrom::Start(at)).unwrap(),
                    1 => {
                        let d = at as i64 - r.position() as i64;
                        r.seek(SeekFrom::Current(d)).unwrap()
                    }
                    _ => r.seek(SeekFrom::End(at as i64 - size as i64)).unwrap(),
                };
                prop_assert_eq!(pos, at);
                let mut buf = vec![0u8; len];
                let mut got = Vec::new();
                // read() may return less than asked (one block at a time); read until full or EOF.
                loop {
                    let n = r.read(&mut buf[..len - got.len()]).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.len() == len {
                        break;
                    }
                }
                let s = (at as usize).min(model.len());
                let e = (at as usize + len).min(model.len());
                prop_assert_eq!(&got[..], &model[s..e]);
                prop_assert_eq!(r.position(), at.max(e as u64));
                if at <= size {
                    let want = &model[s..e];
                    prop_assert_eq!(&blobs.read_range(&id, at, len as u64).unwrap()[..], want);
                } else {
                    prop_assert!(matches!(
                        blobs.read_range(&id, at, len as u64),
                        Err(Error::OutOfBounds(_))
                    ));
                }
            }
            let mut all = Vec::new();
            r.seek(SeekFrom::Start(0)).unwrap();
            r.read_to_end(&mut all).unwrap();
            prop_assert_eq!(all, model);
            Ok(())
        })
        .unwrap();
}

#[test]
fn reader_skips_empty_blocks() {
    // hyperblobs' write stream turns an empty write into an empty block; read around them.
    let dir = tempfile::tempdir().unwrap();
    let log = store(dir.path()).named_log("blobs").unwrap();
    log.append_batch(&[&b"xy"[..], b"ab", b"", b"", b"cd", b"", b"e"])
        .unwrap();
    let blobs = Blobs::new(log);
    let id = BlobId {
        block_offset: 1,
        block_length: 6,
        byte_offset: 2,
        byte_length: 5,
        block_map: false,
    };
    assert_eq!(blobs.get(&id).unwrap(), b"abcde");
    for start in 0..=5 {
        for len in 0..=6 {
            let want = &b"abcde"[start..(start + len).min(5)];
            assert_eq!(
                blobs.read_range(&id, start as u64, len as u64).unwrap(),
                want
            );
        }
    }
    assert_eq!(blobs.block_ranges(&id, 2, 1).unwrap(), [(4, 5)]);
    assert_eq!(blobs.block_ranges(&id, 0, 5).unwrap(), [(1, 7)]);
}

#[test]
fn block_ranges_name_the_needed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    blobs.put(b"before").unwrap();
    let id = blobs.put(&pat(150000, 0)).unwrap();
    assert_eq!(blobs.block_range(&id), (1, 4));
    assert_eq!(blobs.block_ranges(&id, 0, 1).unwrap(), [(1, 2)]);
    assert_eq!(blobs.block_ranges(&id, 65530, 10).unwrap(), [(1, 3)]);
    assert_eq!(blobs.block_ranges(&id, 140000, 99999).unwrap(), [(3, 4)]);
    assert_eq!(blobs.block_ranges(&id, 0, u64::MAX).unwrap(), [(1, 4)]);
    assert!(blobs.block_ranges(&id, 0, 0).unwrap().is_empty());

    let (a, b) = (pat(65536, 0), pat(65536, 9));
    let mut index = MemoryDedupIndex::new();
    blobs.index_blob(&id, &mut index).unwrap();
    let mut w = dedup_writer(&blobs, &mut index);
    for chunk in [&b[..], &a, &b] {
        w.write_all(chunk).unwrap();
    }
    let mapped = w.finish().unwrap();
    // b is new (block 4); a reuses block 2 (blocks 1 and 2 of the pattern are equal, and the
    // later one wins, as in the reference); the map is block 5.
    assert_eq!(blobs.block_range(&mapped), (5, 6));
    assert_eq!(
        blobs.block_ranges(&mapped, 65536, 1).unwrap(),
        [(2, 3), (5, 6)]
    );
    assert_eq!(
        blobs.block_ranges(&mapped, 0, u64::MAX).unwrap(),
        [(2, 3), (4, 6)]
    );
}

#[test]
fn dedup_reuses_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    let log = blobs.log().clone();
    let mut rng = Rng(42);
    let data = rng.bytes(4 << 20);
    let mut index = MemoryDedupIndex::new();

    let (first, r1) = blobs.put_dedup(&data, &mut index).unwrap();
    assert_eq!(r1.bytes_total, data.len() as u64);
    assert_eq!(r1.bytes_new, r1.bytes_total);
    assert_eq!(r1.blocks_reused, 0);
    eprintln!("first write: {r1:?}");

    // The same content again: nothing but a new map block.
    let before = log.length();
    let (second, r2) = blobs.put_dedup(&data, &mut index).unwrap();
    assert_eq!(log.length(), before + 1);
    assert_eq!(r2.bytes_new, 0);
    assert_eq!(r2.blocks_reused, r2.blocks_total);
    assert_eq!(blobs.get(&second).unwrap(), data);
    assert_eq!(
        blobs.block_map(&second).unwrap(),
        blobs.block_map(&first).unwrap()
    );
    eprintln!("same content again: {r2:?}");

    // An insertion in the middle: only the chunks around it are new.
    let mut edited = data[..2_000_000].to_vec();
    edited.extend_from_slice(&rng.bytes(1000));
    edited.extend_from_slice(&data[2_000_000..]);
    let (third, r3) = blobs.put_dedup(&edited, &mut index).unwrap();
    eprintln!("1000 bytes inserted in the middle: {r3:?}");
    assert_eq!(blobs.get(&third).unwrap(), edited);
    assert!(r3.blocks_new <= 3, "{r3:?}");
    assert!(r3.bytes_new <= 3 * 65536 + 1000, "{r3:?}");
    assert!(r3.blocks_reused * 10 >= r3.blocks_total * 9, "{r3:?}");

    // Repeats inside one file.
    let piece = rng.bytes(300_000);
    let repeated = [&piece[..], &piece, &piece].concat();
    let (fourth, r4) = blobs
        .put_dedup(&repeated, &mut MemoryDedupIndex::new())
        .unwrap();
    eprintln!("a 300 kB piece three times: {r4:?}");
    assert_eq!(blobs.get(&fourth).unwrap(), repeated);
    assert!(r4.bytes_new < 300_000 + 3 * 65536, "{r4:?}");
    assert_eq!(r4.bytes_reused(), r4.bytes_total - r4.bytes_new);

    // An empty file is a plain empty id (readable by every hyperblobs version).
    let (empty, r5) = blobs.put_dedup(b"", &mut index).unwrap();
    assert!(!empty.block_map && empty.byte_length == 0 && empty.block_length == 0);
    assert_eq!(r5, DedupReport::default());
    assert!(blobs.get(&empty).unwrap().is_empty());
}

#[test]
fn dedup_only_reuses_blocks_of_the_same_log_that_still_hold_the_content() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = Blobs::new(store(d1.path()).named_log("blobs").unwrap());
    let two = Blobs::new(store(d2.path()).named_log("blobs").unwrap());
    let data = Rng(7).bytes(500_000);
    let mut index = MemoryDedupIndex::new();
    one.put_dedup(&data, &mut index).unwrap();
    // Another log: a block map cannot point there, so everything is written.
    let (id, r) = two.put_dedup(&data, &mut index).unwrap();
    assert_eq!(r.bytes_new, data.len() as u64);
    assert_eq!(two.get(&id).unwrap(), data);

    // A truncated log: the indexed blocks are gone (or replaced), nothing stale is reused.
    let log = two.log();
    log.truncate(0).unwrap();
    two.put(&Rng(8).bytes(300_000)).unwrap();
    let (id, r) = two.put_dedup(&data, &mut index).unwrap();
    assert_eq!(r.bytes_new, data.len() as u64);
    assert_eq!(two.get(&id).unwrap(), data);
    // And now the index points at the new blocks.
    let (_, r) = two.put_dedup(&data, &mut index).unwrap();
    assert_eq!(r.bytes_new, 0);

    // An index entry with a wrong hash is not trusted either.
    struct Liar(dat_core::blobs::DedupEntry);
    impl DedupIndex for Liar {
        fn lookup(
            &mut self,
            _: &dat_core::crypto::Hash,
        ) -> dat_core::Result<Option<dat_core::blobs::DedupEntry>> {
            Ok(Some(self.0))
        }
        fn insert(
            &mut self,
            _: dat_core::crypto::Hash,
            _: dat_core::blobs::DedupEntry,
        ) -> dat_core::Result<()> {
            Ok(())
        }
    }
    let mut liar = Liar(dat_core::blobs::DedupEntry {
        log: log.key(),
        index: 0,
        byte_length: log.get(0).unwrap().len() as u64,
    });
    let other = Rng(9).bytes(100_000);
    let (id, r) = two.put_dedup(&other, &mut liar).unwrap();
    assert_eq!(r.blocks_reused, 0);
    assert_eq!(two.get(&id).unwrap(), other);
}

#[test]
fn writer_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    let log = blobs.log().clone();
    let data = Rng(3).bytes(1_000_000);
    let mut rng = Rng(4);
    let random_writes = |w: &mut dat_core::blobs::BlobWriter<'_>, rng: &mut Rng| {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(150_000) as usize).min(rest.len());
            w.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
    };

    // Fixed chunking gives put's blocks whatever the write sizes.
    let put = blobs.put(&data).unwrap();
    let mut w = blobs
        .writer_with(WriteOptions {
            chunking: Chunking::Fixed(65536),
            ..Default::default()
        })
        .unwrap();
    random_writes(&mut w, &mut rng);
    let fixed = w.finish().unwrap();
    assert_eq!(fixed.block_length, put.block_length);
    for i in 0..put.block_length {
        assert_eq!(
            log.get(put.block_offset + i).unwrap(),
            log.get(fixed.block_offset + i).unwrap()
        );
    }

    // Content-defined chunking while streaming cuts exactly where one-shot chunking does.
    let mut index = MemoryDedupIndex::new();
    let mut w = blobs
        .writer_with(WriteOptions {
            chunking: Chunking::ContentDefined(Default::default()),
            dedup: Some(Box::new(&mut index)),
            ..Default::default()
        })
        .unwrap();
    random_writes(&mut w, &mut rng);
    let cdc = w.finish().unwrap();
    let lens: Vec<u64> = FastCdc::default()
        .chunks(&data)
        .map(|c| c.len() as u64)
        .collect();
    let map = blobs.block_map(&cdc).unwrap().unwrap();
    assert_eq!(
        map.blocks.iter().map(|b| b.byte_length).collect::<Vec<_>>(),
        lens
    );
    assert_eq!(blobs.get(&cdc).unwrap(), data);

    // A block map without dedup lists every write, duplicates included.
    let mut w = blobs
        .writer_with(WriteOptions {
            block_map: true,
            ..Default::default()
        })
        .unwrap();
    let start = log.length();
    for _ in 0..3 {
        w.write_all(b"same").unwrap();
    }
    let mapped = w.finish().unwrap();
    assert_eq!(
        blobs.block_map(&mapped).unwrap().unwrap().blocks,
        (start..start + 3)
            .map(|index| BlockRef {
                index,
                byte_length: 4
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn writer_appends_as_it_goes_and_holds_a_lock() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    let log = blobs.log().clone();

    let mut w = blobs.writer().unwrap();
    for i in 0..40 {
        w.write_all(&pat(65536, i)).unwrap();
    }
    // Batches of 16 are already in the log; the rest waits for the next batch or finish.
    assert_eq!(log.length(), 32);
    // One writer per thread at a time (a second would wait forever).
    assert!(matches!(blobs.writer(), Err(Error::InvalidArgument(_))));
    assert!(matches!(blobs.put(b"x"), Err(Error::InvalidArgument(_))));
    w.flush().unwrap();
    assert_eq!(log.length(), 40);
    let id = w.finish().unwrap();
    assert_eq!(id.block_length, 40);

    // Dropping a writer abandons its blob and releases the lock.
    let mut w = blobs.writer().unwrap();
    w.write_all(b"abandoned").unwrap();
    drop(w);
    let id = blobs.put(b"next").unwrap();
    assert_eq!(blobs.get(&id).unwrap(), b"next");

    // Writers on several threads are serialized: each blob is contiguous.
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let blobs = blobs.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|k| {
                        let mut w = blobs.writer().unwrap();
                        let mut want = Vec::new();
                        for j in 0..20 {
                            let chunk = vec![t * 16 + k; 1000 + j];
                            w.write_all(&chunk).unwrap();
                            want.extend_from_slice(&chunk);
                        }
                        (w.finish().unwrap(), want)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for (id, want) in h.join().unwrap() {
            assert_eq!(blobs.get(&id).unwrap(), want);
        }
    }

    // A plain blob cannot survive someone else appending in the middle of it.
    let mut w = blobs.writer().unwrap();
    w.write_all(b"one").unwrap();
    w.flush().unwrap();
    log.append(b"intruder").unwrap();
    w.write_all(b"two").unwrap();
    assert!(matches!(w.finish(), Err(Error::Conflict(_))));
}

#[test]
fn block_map_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    let mut index = MemoryDedupIndex::new();
    let mut w = dedup_writer(&blobs, &mut index);
    // Every write after the first reuses block 0, so only the map grows.
    for _ in 0..dat_core::blobs::MAX_ENTRIES {
        w.write_all(b"z").unwrap();
    }
    let err = w.write_all(b"z").unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    assert!(w.finish().is_err());
    assert_eq!(blobs.log().length(), 0); // the one new block was still waiting for its batch
}

#[test]
fn bad_ids_and_maps() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    let log = blobs.log().clone();
    let id = blobs.put(&pat(100, 0)).unwrap();
    log.append(&[1, 0]).unwrap(); // a map of version 1
    log.append(&[0, 1, 0, 99]).unwrap(); // a map whose entry has the wrong length
    let v1 = BlobId {
        block_offset: 1,
        block_length: 1,
        byte_offset: 100,
        byte_length: 2,
        block_map: true,
    };
    assert!(matches!(blobs.get(&v1), Err(Error::Decode(_))));
    assert!(matches!(blobs.reader(&v1), Err(Error::Decode(_))));
    let wrong = BlobId {
        block_offset: 2,
        byte_offset: 102,
        byte_length: 4,
        ..v1
    };
    assert!(matches!(blobs.get(&wrong), Err(Error::Corrupt(_))));
    assert!(matches!(
        blobs.read_range(&wrong, 0, 1),
        Err(Error::Corrupt(_))
    ));
    let huge = BlobId {
        block_length: 65,
        ..v1
    };
    assert!(matches!(blobs.get(&huge), Err(Error::Decode(_))));
    let short = BlobId {
        byte_length: 99,
        ..id
    };
    assert!(matches!(blobs.get(&short), Err(Error::Corrupt(_))));
    let beyond = BlobId {
        block_length: 10,
        byte_length: 1000,
        ..id
    };
    assert!(matches!(blobs.get(&beyond), Err(Error::OutOfBounds(_))));
    let overflow = BlobId {
        block_offset: u64::MAX,
        block_length: 2,
        ..id
    };
    assert!(blobs.get(&overflow).is_err());
    assert!(blobs.reader(&overflow).is_err());
    assert!(matches!(
        blobs.read_range(&id, 101, 1),
        Err(Error::OutOfBounds(_))
    ));
    assert!(blobs.read_range(&id, 100, 1).unwrap().is_empty());
    assert!(matches!(
        Blobs::with_block_size(log.clone(), 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        blobs.writer_with(WriteOptions {
            chunking: Chunking::ContentDefined(dat_core::blobs::CdcParams {
                min_size: 10,
                avg_size: 5,
                max_size: 1
            }),
            ..Default::default()
        }),
        Err(Error::InvalidArgument(_))
    ));

    // Cleared blocks are reported as not available (a replicating reader would fetch them).
    let (mapped, _) = blobs
        .put_dedup(&Rng(5).bytes(100_000), &mut MemoryDedupIndex::new())
        .unwrap();
    let n = blobs.clear(&mapped).unwrap();
    assert!(n >= 3, "{n}");
    assert!(matches!(blobs.get(&mapped), Err(Error::NotAvailable(_))));
    assert_eq!(blobs.clear(&id).unwrap(), 1);
    assert!(matches!(blobs.get(&id), Err(Error::NotAvailable(_))));
}

// --- live interop with hyperblobs 2.12.1 ---------------------------------------------------------

fn interop_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    if std::env::var_os("LIBDAT_SKIP_INTEROP").is_some() {
        eprintln!("LIBDAT_SKIP_INTEROP is set: skipping the hyperblobs interop test");
        return None;
    }
    assert!(
        dir.join("node_modules/hyperblobs").is_dir(),
        "tests/interop/node_modules is missing: run `npm ci` in tests/interop (make test does), \
         or set LIBDAT_SKIP_INTEROP=1"
    );
    Some(dir)
}

/// One write of the interop run.
enum Op {
    /// `put(data, {blockSize})`.
    Put(Vec<u8>, Option<usize>),
    /// `createWriteStream({dedup, blockMap, blob: ids[prev]})` with these writes.
    Stream {
        writes: Vec<Vec<u8>>,
        dedup: bool,
        block_map: bool,
        prev: Option<usize>,
        /// libdat cuts the data itself with FastCDC (`put_dedup`); the reference gets the chunks.
        cdc: bool,
    },
}

fn stream(writes: Vec<Vec<u8>>, dedup: bool, prev: Option<usize>) -> Op {
    Op::Stream {
        writes,
        dedup,
        block_map: false,
        prev,
        cdc: false,
    }
}

fn cdc_stream(data: &[u8], prev: Option<usize>) -> Op {
    Op::Stream {
        writes: FastCdc::default()
            .chunks(data)
            .map(<[u8]>::to_vec)
            .collect(),
        dedup: true,
        block_map: false,
        prev,
        cdc: true,
    }
}

fn interop_ops() -> Vec<Op> {
    let mut rng = Rng(2024);
    let big = rng.bytes(150_000);
    let (a, b) = (rng.bytes(65536), rng.bytes(65536));
    let file = rng.bytes(700_000);
    let mut edited = file[..300_000].to_vec();
    edited.extend_from_slice(&rng.bytes(777));
    edited.extend_from_slice(&file[300_000..650_000]);
    let piece = rng.bytes(120_000);
    let mut sizes = Vec::new();
    for _ in 0..40 {
        let n = 1 + rng.below(20_000) as usize;
        sizes.push(rng.bytes(n));
    }
    vec![
        Op::Put(big.clone(), None),                                  // 0
        Op::Put(rng.bytes(10), Some(4)),                             // 1
        Op::Put(Vec::new(), None),                                   // 2
        stream(vec![rng.bytes(100_000), rng.bytes(3)], false, None), // 3
        stream(
            vec![a.clone(), b.clone(), a.clone(), b"end".to_vec()],
            true,
            None,
        ), // 4
        stream(vec![b.clone(), b"new".to_vec(), a.clone()], true, Some(4)), // 5
        stream(vec![big[..65536].to_vec(), b"x".to_vec()], true, Some(0)), // 6
        Op::Stream {
            writes: vec![b"same".to_vec(), b"same".to_vec(), rng.bytes(300)],
            dedup: false,
            block_map: true,
            prev: None,
            cdc: false,
        }, // 7
        cdc_stream(&file, None),                                     // 8
        cdc_stream(&edited, Some(8)),                                // 9
        cdc_stream(&[&piece[..], &piece, &piece].concat(), None),    // 10
        stream(sizes, false, None),                                  // 11
        stream(vec![rng.bytes(3_000_000)], false, None),             // 12
    ]
}

/// Performs `ops` with libdat; returns the ids.
fn run_ops(blobs: &Blobs, ops: &[Op]) -> Vec<BlobId> {
    let mut ids: Vec<BlobId> = Vec::new();
    for op in ops {
        let id = match op {
            Op::Put(data, None) => blobs.put(data).unwrap(),
            Op::Put(data, Some(bs)) => blobs.put_with_block_size(data, *bs).unwrap(),
            Op::Stream {
                writes,
                dedup,
                block_map,
                prev,
                cdc,
            } => {
                let mut index = MemoryDedupIndex::new();
                if let Some(p) = prev {
                    blobs.index_blob(&ids[*p], &mut index).unwrap();
                }
                if *cdc {
                    blobs.put_dedup(&writes.concat(), &mut index).unwrap().0
                } else {
                    let mut w = blobs
                        .writer_with(WriteOptions {
                            block_map: *block_map,
                            dedup: dedup.then(|| Box::new(&mut index) as Box<dyn DedupIndex + '_>),
                            ..Default::default()
                        })
                        .unwrap();
                    for chunk in writes {
                        w.write_all(chunk).unwrap();
                    }
                    w.finish().unwrap()
                }
            }
        };
        ids.push(id);
    }
    ids
}

fn ops_json(seed: u8, ops: &[Op]) -> Value {
    let ops: Vec<Value> = ops
        .iter()
        .map(|op| match op {
            Op::Put(data, bs) => json!({"kind": "put", "data": hex::encode(data), "blockSize": bs}),
            Op::Stream {
                writes,
                dedup,
                block_map,
                prev,
                ..
            } => json!({
                "kind": "stream",
                "writes": writes.iter().map(hex::encode).collect::<Vec<_>>(),
                "dedup": dedup,
                "blockMap": block_map,
                "prev": prev,
            }),
        })
        .collect();
    json!({"seed": hex::encode([seed; 32]), "ops": ops})
}

/// Blobs written the libdat way: one dedup index across files, content-defined chunks, plus
/// plain blobs. Returns (id, file) pairs.
fn libdat_files(blobs: &Blobs) -> Vec<(BlobId, Vec<u8>)> {
    let mut rng = Rng(77);
    let mut index = MemoryDedupIndex::new();
    let v1 = rng.bytes(600_000);
    let mut v2 = v1[..200_000].to_vec();
    v2.extend_from_slice(&rng.bytes(5000));
    v2.extend_from_slice(&v1[200_000..]);
    let mut v3 = v2[100_000..].to_vec();
    v3.extend_from_slice(&v1[..150_000]);
    let mut out = Vec::new();
    for file in [v1, v2, v3, Vec::new(), rng.bytes(1000)] {
        let (id, _) = blobs.put_dedup(&file, &mut index).unwrap();
        out.push((id, file));
    }
    let plain = rng.bytes(200_001);
    out.push((blobs.put(&plain).unwrap(), plain));
    let mut w = blobs
        .writer_with(WriteOptions {
            chunking: Chunking::Fixed(10_000),
            block_map: true,
            ..Default::default()
        })
        .unwrap();
    let mapped = rng.bytes(55_555);
    w.write_all(&mapped).unwrap();
    out.push((w.finish().unwrap(), mapped));
    out
}

#[test]
fn interop_with_hyperblobs() {
    let Some(dir) = interop_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();

    // 1. The same writes on both sides.
    let ops = interop_ops();
    let write_log = seeded_log(&tmp.path().join("write"), 3);
    let write_blobs = Blobs::new(write_log.clone());
    let ids = run_ops(&write_blobs, &ops);

    // 2. Blobs libdat wrote its own way, for hyperblobs to read.
    let read_log = seeded_log(&tmp.path().join("read"), 4);
    let read_blobs = Blobs::new(read_log.clone());
    let files = libdat_files(&read_blobs);
    let mut rng = Rng(5);
    let mut reads = Vec::new();
    let mut expected = Vec::new();
    for (id, file) in &files {
        let size = file.len() as u64;
        let mut windows: Vec<(Option<u64>, Option<u64>, Option<u64>)> = vec![(None, None, None)];
        if size > 0 {
            for _ in 0..6 {
                let start = rng.below(size);
                let len = 1 + rng.below(size - start);
                windows.push((Some(start), Some(len), None));
            }
            let start = rng.below(size);
            windows.push((Some(start), None, Some(start + rng.below(size - start))));
            windows.push((Some(size - 1), None, None));
        }
        for (start, length, end) in windows {
            let s = start.unwrap_or(0);
            let e = match (length, end) {
                (Some(l), _) => s + l,
                (None, Some(e)) => e + 1,
                _ => size,
            };
            let want = &file[s as usize..e as usize];
            assert_eq!(read_blobs.read_range(id, s, e - s).unwrap(), want);
            reads.push(json!({
                "id": serde_json::from_str::<Value>(&id.to_json()).unwrap(),
                "start": start, "length": length, "end": end,
            }));
            expected.push(json!({
                "byteLength": size,
                "length": want.len(),
                "hash": hex::encode(dat_core::crypto::hash(&[want])),
            }));
        }
    }
    let blocks: Vec<String> = (0..read_log.length())
        .map(|i| hex::encode(read_log.get(i).unwrap()))
        .collect();

    let input = json!({
        "write": ops_json(3, &ops),
        "read": {"seed": hex::encode([4u8; 32]), "blocks": blocks, "reads": reads},
    });
    let (in_file, out_file) = (tmp.path().join("in.json"), tmp.path().join("out.json"));
    std::fs::write(&in_file, serde_json::to_vec(&input).unwrap()).unwrap();
    let status = Command::new("node")
        .arg(dir.join("blobs-interop.js"))
        .arg(&in_file)
        .arg(&out_file)
        .status()
        .expect("node must be installed to run the interop test");
    assert!(status.success(), "blobs-interop.js failed");
    let out: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();

    let w = &out["write"];
    let js_ids: Vec<&str> = w["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (k, (id, js)) in ids.iter().zip(&js_ids).enumerate() {
        assert_eq!(id.to_json(), *js, "op {k}");
    }
    assert_eq!(ids.len(), js_ids.len());
    let leaf_hashes: Vec<String> = (0..write_log.length())
        .map(|i| hex::encode(dat_core::crypto::leaf_hash(&write_log.get(i).unwrap())))
        .collect();
    let js_blocks: Vec<&str> = w["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(leaf_hashes.len(), js_blocks.len(), "block count");
    for (i, (a, b)) in leaf_hashes.iter().zip(&js_blocks).enumerate() {
        assert_eq!(a, b, "block {i}");
    }
    assert_eq!(w["key"], hex::encode(write_log.key()));
    assert_eq!(w["length"], write_log.length());
    assert_eq!(w["byteLength"], write_log.byte_length());
    assert_eq!(
        w["treeHash"],
        hex::encode(write_log.tree_hash(None).unwrap())
    );
    assert_eq!(w["signature"], hex::encode(write_log.signature()));

    let r = &out["read"];
    assert_eq!(
        r["treeHash"],
        hex::encode(read_log.tree_hash(None).unwrap())
    );
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), expected.len());
    for (k, (got, want)) in results.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "read {k}: {}", reads[k]);
    }
    let mapped = files.iter().filter(|(id, _)| id.block_map).count();
    eprintln!(
        "interop: {} ids, {} blocks identical; hyperblobs read {} windows of {} libdat blobs ({mapped} block-mapped)",
        ids.len(),
        leaf_hashes.len(),
        expected.len(),
        files.len()
    );
}

/// `index_blob` collected a plain blob's block range into a `Vec`: an id with a huge
/// `block_length` aborted the process (a failed allocation). A range past the end of a log this
/// side writes is corrupt; one that overflows is an error.
#[test]
fn index_blob_with_an_impossible_block_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(store(dir.path()).named_log("blobs").unwrap());
    let id = blobs.put(&pat(100, 0)).unwrap();
    let mut index = MemoryDedupIndex::new();
    let huge = BlobId {
        block_length: 1 << 50,
        ..id
    };
    assert!(matches!(
        blobs.index_blob(&huge, &mut index),
        Err(Error::Corrupt(_))
    ));
    let overflow = BlobId {
        block_offset: u64::MAX - 1,
        block_length: 5,
        ..id
    };
    assert!(blobs.index_blob(&overflow, &mut index).is_err());
    blobs.index_blob(&id, &mut index).unwrap();
}

//! Bad input: corrupted store files, tampered blocks, invalid proofs and signatures, wrong keys.
//! Each gives a clear error naming what is wrong and leaves the log as it was.

use dat_core::proof::{Data, ProofRequest, RequestBlock, RequestUpgrade};
use dat_core::{Error, KeyPair, Log, LogOptions, Manifest, Store};

fn writer(dir: &std::path::Path, seed: u8, blocks: usize) -> (Store, Log) {
    let store = Store::open(dir).unwrap();
    let log = store
        .create_log(LogOptions {
            compat: false,
            key_pair: Some(KeyPair::from_seed(&[seed; 32])),
        })
        .unwrap();
    let data: Vec<Vec<u8>> = (0..blocks)
        .map(|i| format!("block number {i:04} ").repeat(20).into_bytes())
        .collect();
    log.append_batch(&data).unwrap();
    (store, log)
}

fn reader_for(log: &Log) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let manifest = Manifest::default_signer(log.key_pair().unwrap().public_key());
    let r = store.open_log(&log.key(), Some(manifest)).unwrap();
    (dir, r)
}

fn full_proof(log: &Log, index: u64) -> Data {
    log.proof(&ProofRequest {
        fork: 0,
        block: Some(RequestBlock { index, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: log.length(),
        }),
        ..Default::default()
    })
    .unwrap()
}

/// Flips one byte in every occurrence of `needle` in the store's data file.
fn tamper(dir: &std::path::Path, needle: &[u8], at: usize) -> usize {
    let path = dir.join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i + at] ^= 0x55;
            hits += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(&path, bytes).unwrap();
    hits
}

#[test]
fn tampered_block_bytes_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = writer(dir.path(), 1, 10);
    let key = log.key();
    drop((log, store));
    assert!(tamper(dir.path(), b"block number 0007 block number 0007", 3) > 0);
    let store = Store::open(dir.path()).unwrap();
    let log = store.open_log(&key, None).unwrap();
    let err = log.get(7).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("block 7") && msg.contains("do not match its hash"),
        "{msg}"
    );
    // the other blocks are intact
    assert!(log.get(6).is_ok() && log.get(8).is_ok());
}

#[test]
fn tampered_tree_node_is_detected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = writer(dir.path(), 2, 8);
    let key = log.key();
    let root = log.tree().roots[0];
    drop((log, store));
    assert!(tamper(dir.path(), &root.hash, 0) > 0);
    let store = Store::open(dir.path()).unwrap();
    let err = store.open_log(&key, None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert!(msg.contains("do not hash to the signed tree hash"), "{msg}");
}

#[test]
fn tampered_signature_is_detected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = writer(dir.path(), 3, 5);
    let key = log.key();
    let sig = log.signature();
    drop((log, store));
    assert!(tamper(dir.path(), &sig[2..34], 5) > 0);
    let store = Store::open(dir.path()).unwrap();
    let msg = store.open_log(&key, None).unwrap_err().to_string();
    assert!(msg.contains("signature of the stored head"), "{msg}");
}

#[test]
fn a_file_that_is_not_a_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("data.mdb"), garbage).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert!(err.to_string().starts_with("storage error"), "{err}");
}

#[test]
fn invalid_proofs_are_rejected_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, log) = writer(dir.path(), 4, 21);
    let good = full_proof(&log, 9);

    let (_rdir, reader) = reader_for(&log);
    let check_untouched = |r: &Log| {
        assert_eq!(r.length(), 0);
        assert!(!r.has(9).unwrap());
        assert_eq!(r.node(18).unwrap(), None);
    };

    // a tampered block value
    let mut bad = good.clone();
    bad.block.as_mut().unwrap().value[0] ^= 1;
    let err = reader.apply(&bad).unwrap_err();
    assert!(matches!(err, Error::InvalidSignature(_)), "{err:?}");
    check_untouched(&reader);

    // a tampered sibling hash
    let mut bad = good.clone();
    bad.block.as_mut().unwrap().nodes[0].hash[4] ^= 1;
    assert!(matches!(
        reader.apply(&bad).unwrap_err(),
        Error::InvalidSignature(_)
    ));
    check_untouched(&reader);

    // a wrong node index in the path
    let mut bad = good.clone();
    bad.block.as_mut().unwrap().nodes[0].index += 2;
    let err = reader.apply(&bad).unwrap_err();
    assert!(matches!(err, Error::InvalidProof(_)), "{err:?}");
    check_untouched(&reader);

    // a bad signature
    let mut bad = good.clone();
    let sig = &mut bad.upgrade.as_mut().unwrap().signature;
    let n = sig.len();
    sig[n - 10] ^= 1;
    let err = reader.apply(&bad).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    check_untouched(&reader);

    // a lying size
    let mut bad = good.clone();
    bad.upgrade.as_mut().unwrap().nodes[0].size += 1;
    assert!(reader.apply(&bad).is_err());
    check_untouched(&reader);

    // a proof claiming another fork: the signature covers the fork
    let mut bad = good.clone();
    bad.fork = 3;
    assert!(matches!(
        reader.apply(&bad).unwrap_err(),
        Error::InvalidSignature(_)
    ));
    check_untouched(&reader);
    assert_eq!(reader.fork(), 0);

    // missing nodes
    let mut bad = good.clone();
    bad.upgrade.as_mut().unwrap().nodes.pop();
    assert!(matches!(
        reader.apply(&bad).unwrap_err(),
        Error::InvalidProof(_)
    ));
    check_untouched(&reader);

    // the good one applies
    reader.apply(&good).unwrap();
    assert_eq!(reader.length(), 21);
    assert_eq!(reader.get(9).unwrap(), log.get(9).unwrap());

    // once it has data, a proof for another fork is refused outright
    let mut other_fork = good.clone();
    other_fork.fork = 3;
    assert!(matches!(
        reader.apply(&other_fork).unwrap_err(),
        Error::ForkMismatch {
            local: 0,
            remote: 3
        }
    ));

    // after the upgrade, a block proof that does not connect to the verified tree is rejected
    let mut bad = log
        .proof(&ProofRequest {
            fork: 0,
            block: Some(RequestBlock { index: 2, nodes: 1 }),
            ..Default::default()
        })
        .unwrap();
    bad.block.as_mut().unwrap().value.push(0);
    let err = reader.apply(&bad).unwrap_err();
    assert!(err.to_string().contains("does not"), "{err}");
    assert!(!reader.has(2).unwrap());
}

#[test]
fn a_proof_from_another_log_is_rejected() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (_s1, a) = writer(d1.path(), 5, 4);
    let (_s2, b) = writer(d2.path(), 6, 4);
    let (_rd, reader_of_a) = reader_for(&a);
    let err = reader_of_a.apply(&full_proof(&b, 1)).unwrap_err();
    assert!(matches!(err, Error::InvalidSignature(_)), "{err:?}");
    assert_eq!(reader_of_a.length(), 0);
}

#[test]
fn a_manifest_that_does_not_match_the_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let other = Manifest::default_signer([9; 32]);
    let err = store.open_log(&[1; 32], Some(other.clone())).unwrap_err();
    assert!(matches!(err, Error::InvalidManifest(_)), "{err:?}");
    // and a proof carrying a foreign manifest is refused too
    let d1 = tempfile::tempdir().unwrap();
    let (_s, log) = writer(d1.path(), 7, 3);
    let reader = store.open_log(&log.key(), None).unwrap();
    let mut data = full_proof(&log, 0);
    data.manifest = Some(other);
    assert!(matches!(
        reader.apply(&data).unwrap_err(),
        Error::InvalidManifest(_)
    ));
    assert_eq!(reader.manifest(), None);
    // the right manifest inside the proof is learned and used
    data.manifest = Some(Manifest::default_signer(
        log.key_pair().unwrap().public_key(),
    ));
    reader.apply(&data).unwrap();
    assert!(reader.manifest().is_some());
    assert_eq!(reader.length(), 3);
}

#[test]
fn garbage_data_messages_do_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, log) = writer(dir.path(), 8, 5);
    let bytes = full_proof(&log, 2).encode();
    for cut in 0..bytes.len() {
        // every truncation is either an error or decodes to something that fails to verify
        if let Ok(d) = Data::decode(&bytes[..cut]) {
            let (_rd, r) = reader_for(&log);
            assert!(r.apply(&d).is_err() || d.block.is_none());
        }
    }
    assert!(Data::decode(&[0xff, 0xff, 0xff]).is_err());
    assert!(Data::decode(&[1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x7f]).is_err());
}

#[test]
fn misuse_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = writer(dir.path(), 9, 3);
    assert_eq!(
        log.get(3).unwrap_err().to_string(),
        "out of bounds: block 3 of a log with 3 blocks"
    );
    assert!(matches!(
        log.truncate(4).unwrap_err(),
        Error::OutOfBounds(_)
    ));
    assert!(matches!(
        log.seek(1 << 40).unwrap_err(),
        Error::OutOfBounds(_)
    ));
    let remote = store.open_log(&[7; 32], None).unwrap();
    let err = remote.append(b"x").unwrap_err();
    assert!(err.to_string().starts_with("not writable"), "{err}");
    let err = log
        .proof(&ProofRequest {
            fork: 0,
            upgrade: Some(RequestUpgrade {
                start: 2,
                length: 5,
            }),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid request: Invalid upgrade");
    log.clear(1, 2).unwrap();
    assert_eq!(
        log.get(1).unwrap_err().to_string(),
        "block 1 is not available locally"
    );
    let err = log
        .proof(&ProofRequest {
            fork: 0,
            block: Some(RequestBlock { index: 1, nodes: 0 }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 3,
            }),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::NotAvailable(1)));
}

#[test]
fn events_report_appends_downloads_truncations_and_clears() {
    use dat_core::LogEvent;
    let dir = tempfile::tempdir().unwrap();
    let (_s, log) = writer(dir.path(), 10, 4);
    let mut events = log.subscribe();
    log.append(b"x").unwrap();
    assert_eq!(
        events.try_recv().unwrap(),
        LogEvent::Append {
            length: 5,
            byte_length: log.byte_length()
        }
    );
    log.clear(1, 3).unwrap();
    assert_eq!(
        events.try_recv().unwrap(),
        LogEvent::Clear { start: 1, end: 3 }
    );
    assert_eq!(log.contiguous_length(), 1);
    log.truncate(2).unwrap();
    assert_eq!(
        events.try_recv().unwrap(),
        LogEvent::Truncate { length: 2, fork: 1 }
    );
    let (_rd, reader) = reader_for(&log);
    let mut revents = reader.subscribe();
    let proof = log
        .proof(&ProofRequest {
            fork: 1,
            block: Some(RequestBlock { index: 0, nodes: 0 }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 2,
            }),
            ..Default::default()
        })
        .unwrap();
    // an empty reader takes the fork of its first signed upgrade
    reader.apply(&proof).unwrap();
    assert_eq!(reader.fork(), 1);
    assert_eq!(
        revents.try_recv().unwrap(),
        LogEvent::Append {
            length: 2,
            byte_length: log.byte_length()
        }
    );
    assert!(matches!(
        revents.try_recv().unwrap(),
        LogEvent::Download {
            index: 0,
            peer: 0,
            ..
        }
    ));
    assert_eq!(reader.contiguous_length(), 1);
}

//! Golden vectors from the JavaScript reference (hypercore 11.39.5), reproduced byte for byte.

use dat_core::crypto::{self, caps};
use dat_core::manifest::MultiSignature;
use dat_core::proof::{Data, ProofRequest, RequestBlock, RequestUpgrade};
use dat_core::store::derive_key_pair;
use dat_core::{KeyPair, LogOptions, Manifest, Store};
use serde_json::Value;

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn vectors() -> Vec<Value> {
    let text = include_str!("vectors/hypercore-11.39.5.json");
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn seed(v: &Value) -> [u8; 32] {
    h(&v["seed"]).try_into().unwrap()
}

#[test]
fn namespaces() {
    for v in vectors() {
        let ns = &v["namespaces"];
        assert_eq!(caps::tree().to_vec(), h(&ns["TREE"]));
        assert_eq!(
            caps::replicate_initiator().to_vec(),
            h(&ns["REPLICATE_INITIATOR"])
        );
        assert_eq!(
            caps::replicate_responder().to_vec(),
            h(&ns["REPLICATE_RESPONDER"])
        );
        assert_eq!(caps::manifest().to_vec(), h(&ns["MANIFEST"]));
        assert_eq!(
            caps::default_namespace().to_vec(),
            h(&ns["DEFAULT_NAMESPACE"])
        );
        assert_eq!(
            caps::default_encryption().to_vec(),
            h(&ns["DEFAULT_ENCRYPTION"])
        );
    }
}

#[test]
fn keys_manifest_and_discovery_key() {
    for v in vectors() {
        let kp = KeyPair::from_seed(&seed(&v));
        assert_eq!(kp.public_key().to_vec(), h(&v["publicKey"]));
        assert_eq!(kp.secret_key().to_vec(), h(&v["secretKey"]));
        let m = Manifest::default_signer(kp.public_key());
        assert_eq!(m.encode(), h(&v["manifestEncoded"]));
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.hash().to_vec(), h(&v["manifestHash"]));
        let key: [u8; 32] = h(&v["key"]).try_into().unwrap();
        assert_eq!(crypto::discovery_key(&key).to_vec(), h(&v["discoveryKey"]));
        if v["compat"].as_bool().unwrap() {
            assert_eq!(key, kp.public_key());
        } else {
            assert_eq!(key, m.hash());
        }
    }
}

fn build(v: &Value, dir: &std::path::Path) -> dat_core::Log {
    let store = Store::open(dir).unwrap();
    let log = store
        .create_log(LogOptions {
            compat: v["compat"].as_bool().unwrap(),
            key_pair: Some(KeyPair::from_seed(&seed(v))),
        })
        .unwrap();
    log.append_batch(&[b"a", b"b", b"c"]).unwrap();
    log
}

#[test]
fn tree_nodes_roots_hash_and_signature() {
    for v in vectors() {
        let dir = tempfile::tempdir().unwrap();
        let log = build(&v, dir.path());
        assert_eq!(log.key().to_vec(), h(&v["key"]), "{}", v["label"]);
        assert_eq!(log.discovery_key().to_vec(), h(&v["discoveryKey"]));
        assert_eq!(log.length(), v["length"].as_u64().unwrap());
        assert_eq!(log.byte_length(), v["byteLength"].as_u64().unwrap());
        assert_eq!(log.fork(), v["fork"].as_u64().unwrap());
        for n in v["nodes"].as_array().unwrap() {
            let node = log.node(n["index"].as_u64().unwrap()).unwrap().unwrap();
            assert_eq!(node.size, n["size"].as_u64().unwrap());
            assert_eq!(node.hash.to_vec(), h(&n["hash"]));
        }
        for (i, bh) in v["blockHashes"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                log.node(2 * i as u64).unwrap().unwrap().hash.to_vec(),
                h(bh)
            );
        }
        let roots = log.tree().roots;
        let want: Vec<(u64, u64, Vec<u8>)> = v["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["index"].as_u64().unwrap(),
                    r["size"].as_u64().unwrap(),
                    h(&r["hash"]),
                )
            })
            .collect();
        let got: Vec<(u64, u64, Vec<u8>)> = roots
            .iter()
            .map(|r| (r.index, r.size, r.hash.to_vec()))
            .collect();
        assert_eq!(got, want);
        let th = log.tree_hash(None).unwrap();
        assert_eq!(th.to_vec(), h(&v["treeHash"]));
        assert_eq!(th.to_vec(), h(&v["recomputedTreeHash"]));
        assert_eq!(log.signature(), h(&v["signature"]));
        assert_eq!(
            log.signature().len() as u64,
            v["signatureLen"].as_u64().unwrap()
        );
        assert_eq!(
            crypto::signable_compat(&th, 3, 0).to_vec(),
            h(&v["signableCompat80"])
        );
        let mh = Manifest::default_signer(log.key_pair().unwrap().public_key()).hash();
        assert_eq!(
            crypto::signable(&mh, &th, 3, 0).to_vec(),
            h(&v["signable112"])
        );
        if !v["compat"].as_bool().unwrap() {
            let ms = MultiSignature::decode(&log.signature()).unwrap();
            let d = &v["multisigDecoded"];
            assert_eq!(ms.proofs.len(), d["proofs"].as_array().unwrap().len());
            assert_eq!(
                ms.proofs[0].signer,
                d["proofs"][0]["signer"].as_u64().unwrap()
            );
            assert_eq!(
                ms.proofs[0].signature.to_vec(),
                h(&d["proofs"][0]["signature"])
            );
            assert_eq!(
                ms.proofs[0].patch,
                d["proofs"][0]["patch"].as_u64().unwrap()
            );
            assert!(ms.patch.is_empty());
            assert_eq!(ms.encode(), log.signature());
        }
        assert_eq!(log.get(1).unwrap(), v["get1"].as_str().unwrap().as_bytes());
        // tree hash at shorter lengths is the hash of those roots
        let r1 = [log.node(0).unwrap().unwrap()];
        assert_eq!(log.tree_hash(Some(1)).unwrap(), crypto::tree_hash(&r1));
    }
}

#[test]
fn proof_of_block_1_with_upgrade() {
    for v in vectors() {
        let dir = tempfile::tempdir().unwrap();
        let log = build(&v, dir.path());
        let req = ProofRequest {
            fork: 0,
            block: Some(RequestBlock { index: 1, nodes: 0 }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 3,
            }),
            ..Default::default()
        };
        let data = log.proof(&req).unwrap();
        let p = &v["proofBlock1"];
        let b = data.block.as_ref().unwrap();
        assert_eq!(b.index, 1);
        assert_eq!(b.value, h(&p["block"]["value"]));
        let nodes = |arr: &Value| -> Vec<(u64, u64, Vec<u8>)> {
            arr.as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    (
                        n["index"].as_u64().unwrap(),
                        n["size"].as_u64().unwrap(),
                        h(&n["hash"]),
                    )
                })
                .collect()
        };
        let ours = |ns: &[dat_core::Node]| -> Vec<(u64, u64, Vec<u8>)> {
            ns.iter()
                .map(|n| (n.index, n.size, n.hash.to_vec()))
                .collect()
        };
        assert_eq!(ours(&b.nodes), nodes(&p["block"]["nodes"]));
        let u = data.upgrade.as_ref().unwrap();
        assert_eq!((u.start, u.length), (0, 3));
        assert_eq!(ours(&u.nodes), nodes(&p["upgrade"]["nodes"]));
        assert_eq!(
            ours(&u.additional_nodes),
            nodes(&p["upgrade"]["additionalNodes"])
        );
        assert_eq!(u.signature, h(&p["upgrade"]["signature"]));
        assert!(data.hash.is_none() && data.seek.is_none() && data.manifest.is_none());
        assert_eq!(Data::decode(&data.encode()).unwrap(), data);

        // a reader that knows only the key (and the manifest) verifies and stores it
        let rdir = tempfile::tempdir().unwrap();
        let reader_store = Store::open(rdir.path()).unwrap();
        let manifest = (!v["compat"].as_bool().unwrap())
            .then(|| Manifest::default_signer(log.key_pair().unwrap().public_key()));
        let reader = reader_store.open_log(&log.key(), manifest).unwrap();
        let applied = reader.apply(&data).unwrap();
        assert_eq!(applied.upgraded_to, Some(3));
        assert_eq!(applied.block, Some(1));
        assert_eq!(reader.get(1).unwrap(), b"b");
        assert!(!reader.has(0).unwrap());
        assert_eq!(reader.tree_hash(None).unwrap().to_vec(), h(&v["treeHash"]));
    }
}

#[test]
fn corestore_named_key_derivation() {
    // drive-vector.txt: primary key 0x01 x 32, name "db", default namespace
    let pk = [1u8; 32];
    let kp = derive_key_pair(&pk, &[0u8; 32], "db");
    assert_eq!(
        hex::encode(kp.seed()),
        "1be1f22ac749a687cb98d3b29f132fb0fb7ed03985b82116d555e6a666222ef2"
    );
    assert_eq!(
        hex::encode(kp.public_key()),
        "dd2ef22ba2233dc30925057ed042a7db5fe4c035dbde620b95900e8885c5020d"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        dat_core::StoreOptions {
            primary_key: Some(pk),
            ..Default::default()
        },
    )
    .unwrap();
    let log = store.named_log("db").unwrap();
    assert_eq!(
        hex::encode(log.key()),
        "765ce6f1b788dd123061c6a1b74730c45a93e403af97e391b98c87291e6602b6"
    );
    // the same name gives the same log, also after reopening
    assert_eq!(store.named_log("db").unwrap().key(), log.key());
    drop((log, store));
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.primary_key(), pk);
    assert_eq!(
        hex::encode(store.named_log("db").unwrap().key()),
        "765ce6f1b788dd123061c6a1b74730c45a93e403af97e391b98c87291e6602b6"
    );
}

//! The `seed-*` files of `fuzz/regressions/`: golden bytes of real sessions, valid messages of
//! every kind, and the classic hostile shapes (truncations, oversize length prefixes, huge counts,
//! out-of-order messages). `write_seeds` writes them; `seeds_are_current` checks them.
//!
//! Golden sources (copied here so that the seeds are reproducible on their own):
//! - `CAPTURE`, `JS_*`: `core/tests/wire_codec.rs` (the plaintext protomux frames of a JS hypercore
//!   11.39.5 replication session, as logged by the shared `vectors/scripts/wire.js`, and frames
//!   protomux 3.12.1 wrote for scripted scenarios).
//! - `RAW_FRAMES`: the complete raw (encrypted, uint24le-framed) frames of that session in the
//!   shared `vectors/out/wire.out.txt` (the log cuts longer frames at 40 bytes).
//! - `NOISE_*`, `I2R_*`, `R2I_*`: `core/tests/vectors/noise-secretstream.json` (Noise XX between
//!   fixed keys, secret-stream ciphertexts under fixed headers).

use std::collections::HashMap;

use dat_core::Verifier;
use dat_core::crypto::{self, KeyPair};
use dat_core::encoding::Decoder;
use dat_core::manifest::{Manifest, ManifestSigner, MultiSignature, Prologue, SignatureProof};
use dat_core::proof::{
    self, Data, DataBlock, DataUpgrade, ProofRequest, RequestBlock, RequestSeek, RequestUpgrade,
};
use dat_core::tree::{Node, TreeState};
use dat_core::wire::framing::encode_frame;
use dat_core::wire::messages::{
    Bitfield, Cancel, Extension, Message, NoData, Range, Request, Sync, Want, types,
};
use dat_fuzz::{chunks, unhex};

/// Every plaintext protomux frame of the captured session, in order: (sender, hex).
const CAPTURE: &[(char, &str)] = &[
    (
        'I',
        "0001010f6879706572636f72652f616c70686120fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a01b9bc2805a8d08b47db0a54712ebd6b62dfbfb0dd324815592c5fc33be327d82c",
    ),
    (
        'R',
        "0001010f6879706572636f72652f616c70686120fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a0167264bfe7550fe823107b200231515d34892fbad3133579af7381915966eecb4",
    ),
    ('R', "000001050007000000"),
    ('I', "00000105000f0003000408000003"),
    ('I', "01000f000300"),
    ('R', "00000106011801000003"),
    (
        'I',
        "010318010000030201029cac92aaed9e7d11eb629465684582ce39cb496303998de123533b09e16f2f0604019435aca782b6bc40e253392d45c885f3b1ad47f23e7b6c3f9daf5b0868c438c500440100ffc0d71651d8c0c24962a662c90f411f371945e3514669899d3189b832a1bd960415ee04d8ccb4c4159506ad230d223f33ca3dce6aa6d16d27e9fbd47efa250500000100000101004144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    ),
    ('R', "01000e000003"),
    ('I', "01000f000300"),
    ('R', "01000e000303"),
    ('R', "0101210100010101"),
    (
        'I',
        "0103010100010162010001423177bd3da55c6ac57419beff9c763bab05e12a6d8908b38b7fc14360228d4a",
    ),
];

const JS_BATCH_SWITCHES: &str =
    "000000050101016100050102016200000102000101010002030207070000020301";
const JS_OPEN_UNKNOWN: &str = "00010107756e6b6e6f776e026964";
const JS_REJECT: &str = "000201";

const RAW_FRAMES: &[&str] = &[
    "2000009fdbfe4eeea8e8ace0f4908f118ffb5fee265e941b78557179247852a165f553",
    "1a0000612a109dca7748a5788457b01b68a5beac0bc4e5a884e54e714d",
    "1f0000efd07fb7501c70cba2ee2241aab4c1d32b2ffa2ab4ccca7e538470f1f8118d",
    "170000517504e9961369b31732626df5eea9a878e066950e3997",
    "1b00008e9026a31a4f41bf70188997db907166f05c716431c79c8bf7a23e",
    "1700002beb0d476d3e3f5a8cf7e007389d0aef0aeb9dfe40ca1e",
    "1700008e5186b1e50c8aee1b94e996f9db10235863218c444b2b",
    "170000a51997695e51e107ef5d78e03cc940f31604ff8ea322b3",
    "190000eb862ef657ff58cd54e19531c3a85dd1f9b4761528cd06f157",
];

const NOISE_MESSAGE1: &str = "17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce";
const NOISE_MESSAGE2: &str = "d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c4857fad62264e58c462cf599a3a94f59ffe686a8603c1b6f8c0bc07f4de6db04a566c1bcd64d53fd78a7cc6a6a4efb20f0f6725cbf580bc37f7bc1503773389b42";
const NOISE_MESSAGE3: &str = "adec8846a8bb239fabc493e519ea5dc1e69ef015935a5cdcbf5f8bff6794c6e657548e0c16588a228ab22e2061e6292b06e83bf6efacbf95c1899f9c8f630f8c";
const I2R_HEADER_PAYLOAD: &str = "81db16addd83a7be6d290f46957a17f55a8e18008cdfb6ad6a2a00198919b670000102030405060708090a0b0c0d0e0f1011121314151617";
const I2R_CIPHERTEXTS: [&str; 3] = [
    "4803f1b8d463153b27b5367ff63caed4fc",
    "aa611fad72aa357d0390b24d2b7f7700d57de8601945",
    "310b5ca1ddf0642b867af482ce8820c3fdfffb0489e196c8bf273c1524efdf263c207ba0878e1cd8b62d78282f16297323d9cc413cf22618d40802c59fe0f69f034ef1b0e43fd63ecae05bd85b1fce6ad9582decbfabbd59fb03cd6798e3c4657b41b65fd85fef2a6fbf5f08670b92c4c61b690ff6",
];
const R2I_HEADER_PAYLOAD: &str = "33bdb0e5fa9b7df6f0636ab020c5adba68e3ca9719dd8ad144bb231ec85c843cf0efeeedecebeae9e8e7e6e5e4e3e2e1e0dfdedddcdbdad9";
const R2I_CIPHERTEXTS: [&str; 3] = [
    "55c3c454ae514134f226069a516ef575b6",
    "04e666dfcb521a11b98bc3e63d9846329fec21351397",
    "b1725d727353668b4a755c9b44c8dcfe032c52ddfce7a8558c98bbab3e7d8478582d135582950d78a7fbeb88e021f860d3c616b9ed1b4598282b50c841792fb5b6439b996d9a2f9f4101c02baa8a9c53e935cad4f0520e91433caa5b32bd8251bc35d66d3fc944031baaa2a4fe3e7ece552bc9e536",
];

type Seeds = Vec<(String, Vec<u8>)>;

/// A chunk of the "honest peer" modes: a control byte, then the message.
fn hm(ctrl: u8, message: &[u8]) -> Vec<u8> {
    [&[ctrl][..], message].concat()
}

fn frames<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    parts
        .iter()
        .flat_map(|p| encode_frame(p.as_ref()).expect("frame"))
        .collect()
}

fn capture(who: char) -> Vec<Vec<u8>> {
    CAPTURE
        .iter()
        .filter(|(w, _)| *w == who)
        .map(|(_, h)| unhex(h))
        .collect()
}

/// The captured frames after the sender's channel open.
fn capture_after_open(who: char) -> Vec<Vec<u8>> {
    capture(who).into_iter().skip(1).collect()
}

/// `(type, payload)` of every channel message in the capture (plain and batched).
fn capture_messages() -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for (_, h) in CAPTURE {
        let f = unhex(h);
        let mut d = Decoder::new(&f);
        let channel = d.uint("channel").expect("channel");
        let t = d.uint("type").expect("type");
        match (channel, t) {
            (0, 0) => {
                let _ = d.uint("batch channel");
                while !d.is_empty() {
                    let len = d.uint("len").expect("len") as usize;
                    let entry = d.take(len, "entry").expect("entry");
                    let mut e = Decoder::new(entry);
                    let t = e.uint("type").expect("type");
                    out.push((t, e.rest().to_vec()));
                }
            }
            (0, _) => {}
            (_, t) => out.push((t, d.rest().to_vec())),
        }
    }
    out
}

fn node(index: u64, size: u64, fill: u8) -> Node {
    Node::new(index, size, [fill; 32])
}

/// A 17-block tree signed by the vectors' log key pair: (nodes, state per length, blocks).
struct Signed {
    nodes: HashMap<u64, Node>,
    states: Vec<TreeState>,
    blocks: Vec<Vec<u8>>,
    verifier: Verifier,
    kp: KeyPair,
}

fn signed_tree() -> Signed {
    let kp = KeyPair::from_seed(&[1; 32]);
    let manifest = Manifest::default_signer(kp.public_key());
    let verifier = Verifier::new(manifest.hash(), manifest).expect("verifier");
    let blocks: Vec<Vec<u8>> = (0..17u8).map(|i| vec![b'a' + i; 1 + i as usize]).collect();
    let mut state = TreeState::default();
    let mut states = vec![state.clone()];
    let mut nodes = HashMap::new();
    for b in &blocks {
        let mut new = Vec::new();
        state.append(b, &mut new);
        nodes.extend(new.into_iter().map(|n| (n.index, n)));
        states.push(state.clone());
    }
    Signed {
        nodes,
        states,
        blocks,
        verifier,
        kp,
    }
}

impl Signed {
    /// A proof from the state at `length`, signed, block value filled in.
    fn proof(&self, length: usize, req: ProofRequest) -> Data {
        let mut state = self.states[length].clone();
        state.signature = self
            .verifier
            .sign(&self.kp, &state.hash(), state.length, 0)
            .expect("sign");
        let mut d = proof::generate(&state, &self.nodes, &req)
            .unwrap_or_else(|e| panic!("generate {req:?}: {e}"));
        if let Some(b) = d.block.as_mut() {
            b.value = self.blocks[b.index as usize].clone();
        }
        d
    }
}

fn request(id: u64) -> Request {
    Request {
        id,
        ..Request::default()
    }
}

fn sample_requests() -> Vec<(&'static str, Request)> {
    let b = |index, nodes| Some(RequestBlock { index, nodes });
    let up = |start, length| Some(RequestUpgrade { start, length });
    vec![
        (
            "block",
            Request {
                block: b(1, 1),
                priority: 1,
                ..request(1)
            },
        ),
        (
            "block-nodes0",
            Request {
                block: b(16, 0),
                ..request(2)
            },
        ),
        (
            "block-upgrade",
            Request {
                block: b(2, 0),
                upgrade: up(0, 17),
                ..request(3)
            },
        ),
        (
            "hash",
            Request {
                hash: b(5, 2),
                ..request(4)
            },
        ),
        (
            "seek",
            Request {
                seek: Some(RequestSeek {
                    bytes: 40,
                    padding: 0,
                }),
                ..request(5)
            },
        ),
        (
            "seek-upgrade",
            Request {
                seek: Some(RequestSeek {
                    bytes: 3,
                    padding: 0,
                }),
                upgrade: up(0, 3),
                ..request(6)
            },
        ),
        (
            "upgrade",
            Request {
                upgrade: up(3, 14),
                manifest: true,
                ..request(7)
            },
        ),
        (
            "upgrade-partial",
            Request {
                upgrade: up(5, 4),
                ..request(8)
            },
        ),
        (
            "everything",
            Request {
                block: b(3, 2),
                hash: b(7, 1),
                seek: Some(RequestSeek {
                    bytes: 9,
                    padding: 1,
                }),
                upgrade: up(1, 2),
                manifest: true,
                priority: 9,
                ..request(9)
            },
        ),
        (
            "huge",
            Request {
                block: b(u64::MAX, u64::MAX),
                upgrade: up(u64::MAX, u64::MAX),
                ..request(u64::MAX)
            },
        ),
    ]
}

fn sample_messages(signed: &Signed) -> Vec<(&'static str, Message)> {
    let data = signed.proof(
        17,
        ProofRequest {
            block: Some(RequestBlock { index: 4, nodes: 3 }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 17,
            }),
            ..ProofRequest::default()
        },
    );
    let mut out = vec![
        (
            "sync",
            Message::Sync(Sync {
                fork: 1,
                length: 300,
                remote_length: 70_000,
                can_upgrade: true,
                uploading: true,
                downloading: false,
                has_manifest: true,
                allow_push: true,
            }),
        ),
        (
            "cancel",
            Message::Cancel(Cancel {
                request: 0x1_0000_0000,
            }),
        ),
        ("data", Message::Data(data)),
        (
            "no-data",
            Message::NoData(NoData {
                request: 3,
                reason: 2,
            }),
        ),
        (
            "want",
            Message::Want(Want {
                start: 32,
                length: 1 << 40,
                any: true,
            }),
        ),
        (
            "unwant",
            Message::Unwant(Want {
                start: 0,
                length: 5,
                any: false,
            }),
        ),
        (
            "bitfield",
            Message::Bitfield(Bitfield {
                start: 64,
                bitfield: vec![0xaaaa_5555, 0, u32::MAX],
            }),
        ),
        (
            "range-drop",
            Message::Range(Range {
                drop: true,
                start: 7,
                length: 1,
            }),
        ),
        (
            "range",
            Message::Range(Range {
                drop: false,
                start: 0,
                length: 1000,
            }),
        ),
        (
            "extension",
            Message::Extension(Extension {
                name: "ext/é".into(),
                message: vec![0, 1, 2],
            }),
        ),
    ];
    for (name, r) in sample_requests() {
        out.push((name, Message::Request(r)));
    }
    out
}

fn named(prefix: &str, items: Vec<(&str, Vec<u8>)>) -> Seeds {
    items
        .into_iter()
        .map(|(n, b)| (format!("seed-{prefix}{n}"), b))
        .collect()
}

fn framing() -> Seeds {
    let raw: Vec<u8> = RAW_FRAMES.iter().flat_map(|h| unhex(h)).collect();
    let noise = frames(&[
        unhex(NOISE_MESSAGE1),
        unhex(NOISE_MESSAGE2),
        unhex(NOISE_MESSAGE3),
        unhex(I2R_HEADER_PAYLOAD),
        unhex(I2R_CIPHERTEXTS[0]),
        unhex(I2R_CIPHERTEXTS[2]),
    ]);
    let limit16 = (16 << 2) | 1;
    let with = |control: [u8; 2], stream: &[u8]| [&control[..], stream].concat();
    named(
        "",
        vec![
            ("golden-session", with([0, 1], &raw)),
            ("golden-session-bytewise", with([0, 2], &raw)),
            ("noise-frames", with([0, 3], &noise)),
            ("empty-frames", with([0, 0], &[0; 9])),
            ("truncated", with([0, 4], &noise[..60])),
            (
                "max-prefix-then-stall",
                with([0, 0], &[0xff, 0xff, 0xff, 1, 2, 3]),
            ),
            (
                "limit16-exact-then-over",
                with(
                    [limit16, 5],
                    &[frames(&[vec![7; 16]]), vec![17, 0, 0, 1]].concat(),
                ),
            ),
            ("limit0", with([1, 0], &[0, 0, 0, 1, 0, 0, 9])),
            ("limit-64k", with([3, 9], &[0, 0, 1, 5])),
        ],
    )
}

fn open_frame(id: u64, protocol: &str, channel_id: &[u8], handshake: &[u8]) -> Vec<u8> {
    let mut e = dat_core::encoding::Encoder::new();
    e.byte(0)
        .byte(1)
        .uint(id)
        .string(protocol)
        .optional_buffer(Some(channel_id))
        .raw(handshake);
    e.finish()
}

fn protomux() -> Seeds {
    let i = capture('I');
    let r = capture('R');
    let mut wide = Vec::new();
    for n in 0..300u64 {
        wide.push(open_frame(n + 1, "p", &[n as u8, (n >> 8) as u8], b""));
    }
    let mut s = String::from("0000fd2c0102017800fdfd0003027979fd2d0100");
    s.push_str(&"05".repeat(300));
    s.push_str("000102007a00000403fd2c01");
    wide.push(unhex(&s));
    let many: Vec<Vec<u8>> = (1..=8)
        .map(|n| open_frame(n, &format!("proto{n}"), b"", &[n as u8; 40]))
        .collect();
    named(
        "",
        vec![
            ("capture-as-responder", chunks(&[1], &i)),
            ("capture-as-initiator", chunks(&[1], &r)),
            ("capture-unpaired", chunks(&[0], &i)),
            ("capture-corked", chunks(&[5], &i)),
            ("capture-small-limits", chunks(&[3], &r)),
            (
                "js-batch-switches",
                chunks(&[4], &[unhex(JS_BATCH_SWITCHES)]),
            ),
            ("js-batch-wide-ids", chunks(&[0], &wide)),
            (
                "js-open-unknown-reject",
                chunks(&[1], &[unhex(JS_OPEN_UNKNOWN), unhex(JS_REJECT)]),
            ),
            ("many-opens-small-limits", chunks(&[2], &many)),
            ("many-opens", chunks(&[4], &many)),
            (
                "open-close-reopen",
                chunks(
                    &[0],
                    &[
                        open_frame(1, "x", b"", b"hs"),
                        unhex("010007"),
                        unhex("000301"),
                        open_frame(1, "x", b"", b"hs"),
                        unhex("0100ff"),
                    ],
                ),
            ),
            (
                "open-channel-0",
                chunks(&[0], &[open_frame(0, "x", b"", b"")]),
            ),
            (
                "open-skips-ids",
                chunks(&[0], &[open_frame(5, "x", b"", b"")]),
            ),
            (
                "open-huge-id",
                chunks(&[0], &[unhex("0001ffffffffffffffffff0178")]),
            ),
            (
                "batch-entry-too-long",
                chunks(&[0], &[unhex("000001ff0000000100")]),
            ),
            ("batch-nested", chunks(&[0], &[unhex("0000000300000000")])),
            (
                "batch-zero-len-switch",
                chunks(&[1], &[i[0].clone(), unhex("00000100010200000102000000")]),
            ),
            ("message-unopened", chunks(&[0], &[unhex("0700")])),
            ("reject-unknown", chunks(&[1], &[unhex("000209")])),
            (
                "close-unknown",
                chunks(&[1], &[unhex("000309"), unhex("000300")]),
            ),
            (
                "unknown-control",
                chunks(&[0], &[unhex("0009"), unhex("00ff01")]),
            ),
            ("truncated-uint", chunks(&[0], &[unhex("fdff")])),
        ],
    )
}

fn messages(signed: &Signed) -> Seeds {
    let mut out = Vec::new();
    for (n, (t, payload)) in capture_messages().into_iter().enumerate() {
        out.push((format!("seed-capture-{n:02}-type{t}"), payload));
    }
    for (name, m) in sample_messages(signed) {
        let (_, bytes) = m.encode();
        out.push((format!("seed-{name}"), bytes));
    }
    out.extend(named(
        "",
        vec![
            ("empty", vec![]),
            (
                "bitfield-claims-2p30-words",
                unhex("00fe00000040010203 04".replace(' ', "").as_str()),
            ),
            ("bitfield-claims-max-words", unhex("00ffffffffffffffffff")),
            (
                "request-all-flags-max",
                [vec![0x3f], vec![0xff; 108]].concat(),
            ),
            (
                "extension-bad-utf8",
                unhex("03ff fe80 0102".replace(' ', "").as_str()),
            ),
            ("extension-name-too-long", unhex("fdff7f61")),
            ("uint-9-bytes", unhex("ffffffffffffffffff")),
            ("uint-truncated", unhex("fe0102")),
        ],
    ));
    out
}

fn channel_handshake() -> Seeds {
    let i = unhex(CAPTURE[0].1);
    let r = unhex(CAPTURE[1].1);
    named(
        "",
        vec![
            ("capture-initiator", i[52..].to_vec()),
            ("capture-responder", r[52..].to_vec()),
            ("truncated", i[52..84].to_vec()),
            ("trailing", [&r[52..], b"more"].concat()),
            ("flags-u64", [vec![0xff; 9], vec![3; 32]].concat()),
            ("empty", vec![]),
        ],
    )
}

fn data(signed: &Signed) -> Seeds {
    let mut out: Vec<(String, Vec<u8>)> = capture_messages()
        .into_iter()
        .filter(|(t, _)| *t == types::DATA)
        .enumerate()
        .map(|(n, (_, p))| (format!("seed-capture-{n}"), p))
        .collect();
    let b = |index, nodes| Some(RequestBlock { index, nodes });
    let up = |start, length| Some(RequestUpgrade { start, length });
    let cases: Vec<(&str, usize, ProofRequest)> = vec![
        (
            "block",
            17,
            ProofRequest {
                block: b(6, 4),
                ..Default::default()
            },
        ),
        (
            "block-upgrade-from-0",
            17,
            ProofRequest {
                block: b(6, 0),
                upgrade: up(0, 17),
                ..Default::default()
            },
        ),
        (
            "upgrade-from-0",
            5,
            ProofRequest {
                upgrade: up(0, 5),
                ..Default::default()
            },
        ),
        (
            "upgrade-from-5",
            17,
            ProofRequest {
                upgrade: up(5, 12),
                ..Default::default()
            },
        ),
        (
            "upgrade-additional",
            17,
            ProofRequest {
                upgrade: up(0, 9),
                ..Default::default()
            },
        ),
        (
            "hash",
            17,
            ProofRequest {
                hash: b(11, 2),
                ..Default::default()
            },
        ),
        (
            "seek",
            17,
            ProofRequest {
                seek: Some(RequestSeek {
                    bytes: 30,
                    padding: 0,
                }),
                ..Default::default()
            },
        ),
        (
            "seek-upgrade",
            17,
            ProofRequest {
                seek: Some(RequestSeek {
                    bytes: 2,
                    padding: 0,
                }),
                upgrade: up(0, 17),
                ..Default::default()
            },
        ),
    ];
    for (name, length, req) in cases {
        let mut d = signed.proof(length, req);
        d.request = 1;
        if name.starts_with("upgrade-from-0") {
            d.manifest = Some(signed.verifier.manifest().clone());
        }
        out.push((format!("seed-{name}"), d.encode()));
    }
    // a manifest with a prologue the upgrade must satisfy
    let mut with_prologue = signed.proof(
        5,
        ProofRequest {
            upgrade: up(0, 5),
            ..Default::default()
        },
    );
    let mut m = signed.verifier.manifest().clone();
    m.prologue = Some(Prologue {
        hash: signed.states[3].hash(),
        length: 3,
    });
    with_prologue.manifest = Some(m);
    out.push(("seed-manifest-prologue".into(), with_prologue.encode()));

    let hostile = |d: Data| d.encode();
    let leaf = |i| node(i, 1, 1);
    out.extend(named(
        "",
        vec![
            (
                "block-index-max",
                hostile(Data {
                    block: Some(DataBlock {
                        index: u64::MAX,
                        value: b"x".to_vec(),
                        nodes: vec![],
                    }),
                    ..Data::default()
                }),
            ),
            (
                "upgrade-from-max",
                hostile(Data {
                    upgrade: Some(DataUpgrade {
                        start: 0,
                        length: u64::MAX / 2,
                        nodes: vec![leaf(0)],
                        additional_nodes: vec![],
                        signature: vec![0; 64],
                    }),
                    ..Data::default()
                }),
            ),
            (
                "upgrade-nodes-out-of-order",
                hostile(Data {
                    upgrade: Some(DataUpgrade {
                        start: 0,
                        length: 4,
                        nodes: vec![node(1, 2, 2), node(3, 4, 3)],
                        additional_nodes: vec![node(11, 4, 4), node(9, 2, 5)],
                        signature: vec![],
                    }),
                    ..Data::default()
                }),
            ),
            ("node-count-huge", unhex("01000000020100fe00001000")),
            (
                "node-count-too-big",
                unhex("0100000002010001ffffffffffffffffff"),
            ),
            ("truncated-manifest", unhex("1000000101")),
            ("empty", vec![]),
        ],
    ));
    out
}

fn proof_generate() -> Seeds {
    let mut out = Vec::new();
    for (name, r) in sample_requests() {
        let (_, payload) = Message::Request(r).encode();
        for length in [17u8, 3, 0] {
            out.push((
                format!("seed-{name}-len{length}"),
                [&[length][..], &payload].concat(),
            ));
        }
    }
    for (n, (t, payload)) in capture_messages().into_iter().enumerate() {
        if t == types::REQUEST {
            out.push((format!("seed-capture-{n}"), [&[3u8][..], &payload].concat()));
        }
    }
    out
}

fn manifest(signed: &Signed) -> Seeds {
    let m = signed.verifier.manifest().clone();
    let signer = |n: u8| ManifestSigner {
        signature: 0,
        namespace: *crypto::caps::default_namespace(),
        public_key: KeyPair::from_seed(&[n; 32]).public_key(),
    };
    let multi = Manifest {
        version: 2,
        hash: 0,
        allow_patch: true,
        quorum: 2,
        signers: vec![signer(1), signer(2), signer(3)],
        prologue: Some(Prologue {
            hash: [9; 32],
            length: 4,
        }),
        linked: Some(vec![[5; 32], [6; 32]]),
        user_data: Some(b"user".to_vec()),
    };
    let sig = signed
        .verifier
        .sign(&signed.kp, &signed.states[3].hash(), 3, 0)
        .expect("sign");
    let two = MultiSignature {
        proofs: vec![
            SignatureProof {
                signer: 0,
                signature: [1; 64],
                patch: 0,
            },
            SignatureProof {
                signer: 2,
                signature: [2; 64],
                patch: 3,
            },
        ],
        patch: vec![node(1, 2, 7)],
    };
    let compat = Manifest {
        quorum: 1,
        signers: vec![signer(1)],
        ..multi.clone()
    };
    named(
        "",
        vec![
            ("vector-log", m.encode()),
            ("multi-signer", multi.encode()),
            ("compat-shaped", compat.encode()),
            ("multisig-one", sig),
            ("multisig-two-patched", two.encode()),
            ("multisig-empty", vec![0, 0]),
            ("version-4", unhex("0400000000")),
            ("signers-claim-max", unhex("010000010000001000")),
            ("linked-claim-huge", unhex("0104000000fe00001000")),
            ("multisig-claims-1025", unhex("fd0104")),
            ("trailing", [m.encode(), vec![0]].concat()),
        ],
    )
}

fn noise() -> Seeds {
    let (m1, m2, m3) = (
        unhex(NOISE_MESSAGE1),
        unhex(NOISE_MESSAGE2),
        unhex(NOISE_MESSAGE3),
    );
    let mut bad_tag = m2.clone();
    *bad_tag.last_mut().expect("m2") ^= 1;
    let mut bad_m3 = m3.clone();
    bad_m3[0] ^= 0x40;
    named(
        "",
        vec![
            ("responder-golden", chunks(&[0], &[&m1[..], &m3[..]])),
            ("initiator-golden", chunks(&[1], &[&m2[..]])),
            (
                "responder-after-done",
                chunks(&[0], &[&m1[..], &m3[..], &m3[..]]),
            ),
            ("initiator-after-done", chunks(&[1], &[&m2[..], &m2[..]])),
            ("responder-message3-first", chunks(&[0], &[&m3[..]])),
            (
                "responder-bad-message3",
                chunks(&[0], &[&m1[..], &bad_m3[..]]),
            ),
            ("initiator-bad-tag", chunks(&[1], &[&bad_tag[..]])),
            ("initiator-truncated", chunks(&[1], &[&m2[..95]])),
            ("responder-short", chunks(&[0], &[&m1[..31]])),
            (
                "responder-non-canonical-point",
                chunks(&[0], &[&[0xff; 32][..]]),
            ),
            ("responder-zero-point", chunks(&[0], &[&[0; 32][..]])),
            (
                "initiator-low-order-point",
                chunks(&[1], &[[vec![1], vec![0; 31], m2[32..].to_vec()].concat()]),
            ),
        ],
    )
}

fn secret_stream() -> Seeds {
    let i2r: Vec<Vec<u8>> = std::iter::once(I2R_HEADER_PAYLOAD)
        .chain(I2R_CIPHERTEXTS)
        .map(unhex)
        .collect();
    let r2i: Vec<Vec<u8>> = std::iter::once(R2I_HEADER_PAYLOAD)
        .chain(R2I_CIPHERTEXTS)
        .map(unhex)
        .collect();
    named(
        "",
        vec![
            ("responder-golden", chunks(&[0], &i2r)),
            ("initiator-golden", chunks(&[1], &r2i)),
            ("wrong-stream-id", chunks(&[0], &r2i)),
            (
                "out-of-order",
                chunks(&[0], &[i2r[0].clone(), i2r[2].clone(), i2r[1].clone()]),
            ),
            (
                "replayed",
                chunks(&[1], &[r2i[0].clone(), r2i[1].clone(), r2i[1].clone()]),
            ),
            ("short-header", chunks(&[0], &[i2r[0][..55].to_vec()])),
            (
                "short-ciphertext",
                chunks(&[0], &[i2r[0].clone(), i2r[1][..16].to_vec()]),
            ),
            (
                "honest",
                chunks(&[2], &[hm(0, b""), hm(0, b"hello"), hm(0, &[171; 100])]),
            ),
            (
                "honest-corrupt",
                chunks(&[3], &[hm(0, b"ok"), hm(0x15, b"flip"), hm(0, b"after")]),
            ),
            (
                "honest-dropped",
                chunks(&[2], &[hm(2, b"lost"), hm(0, b"next")]),
            ),
        ],
    )
}

fn transport() -> Seeds {
    let (m1, m2, m3) = (
        unhex(NOISE_MESSAGE1),
        unhex(NOISE_MESSAGE2),
        unhex(NOISE_MESSAGE3),
    );
    let raw: Vec<Vec<u8>> = RAW_FRAMES.iter().map(|h| unhex(h)).collect();
    named(
        "",
        vec![
            ("raw-responder-message1", chunks(&[0], &[frames(&[&m1])])),
            (
                "raw-responder-message1-3",
                chunks(&[0], &[frames(&[&m1]), frames(&[&m3])]),
            ),
            ("raw-initiator-message2", chunks(&[1], &[frames(&[&m2])])),
            ("raw-golden-session", chunks(&[0], &raw)),
            (
                "raw-oversize-prefix",
                chunks(&[0], &[vec![0xff, 0xff, 0xff]]),
            ),
            ("raw-small-limit", chunks(&[4], &[frames(&[vec![0; 300]])])),
            ("raw-keepalive-handshake", chunks(&[0], &[vec![0, 0, 0]])),
            (
                "honest-messages",
                chunks(
                    &[2],
                    &[
                        hm(0, b"hello"),
                        hm(3, b"back"),
                        hm(0, b""),
                        hm(4 << 2, b"split"),
                    ],
                ),
            ),
            (
                "honest-initiator",
                chunks(&[3], &[hm(0, &[7; 300]), hm(3, b"")]),
            ),
            (
                "honest-corrupt",
                chunks(&[2], &[hm(2 | 8 << 2, b"corrupt"), hm(0, b"after")]),
            ),
            (
                "honest-raw-junk",
                chunks(&[2], &[hm(1, b"\x05\x00\x00junk!"), hm(0, b"after")]),
            ),
            ("honest-small-limit", chunks(&[6], &[hm(0, &[1; 300])])),
        ],
    )
}

fn connection() -> Seeds {
    let (m1, m2) = (unhex(NOISE_MESSAGE1), unhex(NOISE_MESSAGE2));
    let raw: Vec<Vec<u8>> = RAW_FRAMES.iter().map(|h| unhex(h)).collect();
    let r = capture_after_open('R');
    let i = capture_after_open('I');
    let want = |start: u64, length: u64| {
        let (_, p) = Message::Want(Want {
            start,
            length,
            any: false,
        })
        .encode();
        [vec![1, 5], p].concat()
    };
    let channel_msg = |m: Message| {
        let (t, p) = m.encode();
        [vec![1, t as u8], p].concat()
    };
    let sync_ahead = channel_msg(Message::Sync(Sync {
        fork: 0,
        length: 20,
        remote_length: 3,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        has_manifest: true,
        allow_push: false,
    }));
    let invalid_requests: Vec<Vec<u8>> = (1..6)
        .map(|id| {
            channel_msg(Message::Request(Request {
                id,
                hash: Some(RequestBlock {
                    index: 1001,
                    nodes: 0,
                }),
                ..Request::default()
            }))
        })
        .collect();
    let bitfield = channel_msg(Message::Bitfield(Bitfield {
        start: 0,
        bitfield: vec![0x5555_5555; 4],
    }));
    named(
        "",
        vec![
            ("raw-responder-message1", chunks(&[0], &[frames(&[m1])])),
            ("raw-initiator-message2", chunks(&[1], &[frames(&[m2])])),
            ("raw-golden-session", chunks(&[0], &raw)),
            ("honest-writer-capture", chunks(&[1 | 2 | 8], &r)),
            ("honest-writer-capture-responder", chunks(&[2 | 8], &r)),
            ("honest-writer-replicated", chunks(&[1 | 2 | 4 | 8], &r)),
            ("honest-reader-capture", chunks(&[2 | 16], &i)),
            (
                "honest-both-logs",
                chunks(&[1 | 2 | 8 | 16], &[r.clone(), i.clone()].concat()),
            ),
            (
                "honest-sparse",
                chunks(&[2 | 8 | 32], &[want(0, 3), want(1, u64::MAX)]),
            ),
            (
                "honest-tight-invalid-requests",
                chunks(&[2 | 8 | 64], &invalid_requests),
            ),
            (
                "honest-reader-sync-ahead",
                chunks(&[2 | 16], &[sync_ahead.clone(), bitfield]),
            ),
            (
                "honest-open-unknown",
                chunks(&[2], &[unhex(JS_OPEN_UNKNOWN), unhex("0100")]),
            ),
            ("honest-not-announced", chunks(&[2 | 128], &[sync_ahead])),
        ],
    )
}

/// Every target's seed files: (target, [(file name, bytes)]).
pub fn all() -> Vec<(&'static str, Seeds)> {
    let signed = signed_tree();
    vec![
        ("framing", framing()),
        ("protomux", protomux()),
        ("messages", messages(&signed)),
        ("channel_handshake", channel_handshake()),
        ("data", data(&signed)),
        ("proof_generate", proof_generate()),
        ("manifest", manifest(&signed)),
        ("noise", noise()),
        ("secret_stream", secret_stream()),
        ("transport", transport()),
        ("connection", connection()),
    ]
}

//! The wire codecs (uint24le framing, protomux, the hypercore/alpha messages) against the bytes the
//! JavaScript reference produced, plus round trips, hostile input and two muxes talking.
//!
//! Golden bytes:
//! - `CAPTURE`: every plaintext protomux frame of one real JS replication session (hypercore
//!   11.39.5, protomux 3.12.1: writer = initiator I, reader = responder R calling `get(1)`), as
//!   logged by the shared `vectors/scripts/wire.js` into `vectors/out/wire.out.txt`. That log cuts
//!   frames at 120 bytes; the one longer frame (the 216-byte `data` with upgrade and manifest) is
//!   given whole here from a re-run of the same script (it holds no per-run value: same seed, same
//!   blocks), and its first 120 bytes are checked against the shared log's.
//! - `JS_*`: frames written by protomux 3.12.1 itself for scripted scenarios (corked batches with
//!   channel switches and control messages, channel ids past 252, a reject).

use dat_core::crypto::{self, caps};
use dat_core::encoding::Decoder;
use dat_core::manifest::{ManifestSigner, Prologue};
use dat_core::proof::{
    Data, DataBlock, DataHash, DataSeek, DataUpgrade, RequestBlock, RequestSeek, RequestUpgrade,
};
use dat_core::tree::Node;
use dat_core::wire::framing::{self, FrameDecoder, MAX_FRAME};
use dat_core::wire::messages::{
    self, Bitfield, Cancel, Extension, Handshake, Message, NoData, PROTOCOL, Range, Request, Sync,
    Want, capability, types, verify_capability,
};
use dat_core::wire::protomux::{ChannelId, Event, Limits, MAX_BATCH, Mux};
use dat_core::{Error, Manifest};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Golden data
// ---------------------------------------------------------------------------------------------

/// `handshakeHash(I)` of the captured session (both sides have the same).
const HANDSHAKE_HASH: &str = "9b899e359d3f350ea7f889b37813aa230dcc70d8a551d16ef17268429831b6c3c5840cb5f05af300b62c344c3bb83ba13d67ebd1ab929bff30f7577071828385";

/// The log key and discovery key of the captured session (the vector log, v11 default mode).
const KEY: &str = "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72";
const DISCOVERY_KEY: &str = "fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a";

/// The 216-byte frame as `wire.out.txt` has it (first 120 bytes).
const DATA_UPGRADE_PREFIX_120: &str = "010318010000030201029cac92aaed9e7d11eb629465684582ce39cb496303998de123533b09e16f2f0604019435aca782b6bc40e253392d45c885f3b1ad47f23e7b6c3f9daf5b0868c438c500440100ffc0d71651d8c0c24962a662c90f411f371945e3514669899d3189b832a1bd960415ee04d8ccb4c4";

/// Every plaintext protomux frame of the session, in order: (sender, hex).
const CAPTURE: &[(char, &str)] = &[
    // open hypercore/alpha, channel 1, id = discovery key, handshake {seeks, capability(I)}
    (
        'I',
        "0001010f6879706572636f72652f616c70686120fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a01b9bc2805a8d08b47db0a54712ebd6b62dfbfb0dd324815592c5fc33be327d82c",
    ),
    (
        'R',
        "0001010f6879706572636f72652f616c70686120fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a0167264bfe7550fe823107b200231515d34892fbad3133579af7381915966eecb4",
    ),
    // batch(ch1): sync flags=7 fork 0 length 0 remoteLength 0
    ('R', "000001050007000000"),
    // batch(ch1): sync (flags 0x0f, length 3) + range {start 0, length 3}
    ('I', "00000105000f0003000408000003"),
    // sync
    ('I', "01000f000300"),
    // batch(ch1): request id 1, upgrade {0, 3} + manifest
    ('R', "00000106011801000003"),
    // data: upgrade (2 nodes, 68-byte multisig) + manifest
    (
        'I',
        "010318010000030201029cac92aaed9e7d11eb629465684582ce39cb496303998de123533b09e16f2f0604019435aca782b6bc40e253392d45c885f3b1ad47f23e7b6c3f9daf5b0868c438c500440100ffc0d71651d8c0c24962a662c90f411f371945e3514669899d3189b832a1bd960415ee04d8ccb4c4159506ad230d223f33ca3dce6aa6d16d27e9fbd47efa250500000100000101004144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    ),
    ('R', "01000e000003"),
    ('I', "01000f000300"),
    ('R', "01000e000303"),
    // request id 1: block {index 1, nodes 1}, priority 1
    ('R', "0101210100010101"),
    // data: block 1 = "b", proof [node 0]
    (
        'I',
        "0103010100010162010001423177bd3da55c6ac57419beff9c763bab05e12a6d8908b38b7fc14360228d4a",
    ),
];

/// protomux 3.12.1, corked: open "a", open "b", a.messages[0]([1]), a.messages[1]([]),
/// b.messages[2]([7,7]), a.close(), uncork.
const JS_BATCH_SWITCHES: &str =
    "000000050101016100050102016200000102000101010002030207070000020301";

/// protomux 3.12.1: 300 channels "p" (ids [i & 255, i >> 8]) opened; then corked: #299 type 1 "x",
/// #252 type 2 "yy", #252 type 0 (300 × 0x05), #0 type 0 "z", close #299, uncork.
fn js_batch_wide_ids() -> Vec<u8> {
    let mut s = String::from("0000fd2c0102017800fdfd0003027979fd2d0100");
    s.push_str(&"05".repeat(300));
    s.push_str("000102007a00000403fd2c01");
    hex::decode(s).unwrap()
}

/// protomux 3.12.1: A opens "unknown" with id "id"; B (no pair handler) answers with a reject.
const JS_OPEN_UNKNOWN: &str = "00010107756e6b6e6f776e026964";
const JS_REJECT: &str = "000201";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

fn hh() -> [u8; 64] {
    h(HANDSHAKE_HASH).try_into().unwrap()
}

fn vector() -> Value {
    let text = include_str!("vectors/hypercore-11.39.5.json");
    let v: Value = serde_json::from_str(text).unwrap();
    v.as_array().unwrap()[0].clone()
}

fn jh(v: &Value) -> Vec<u8> {
    h(v.as_str().unwrap())
}

fn node(v: &Value) -> Node {
    Node::new(
        v["index"].as_u64().unwrap(),
        v["size"].as_u64().unwrap(),
        jh(&v["hash"]).try_into().unwrap(),
    )
}

fn events(m: &mut Mux) -> Vec<Event> {
    m.drain_events()
}

/// Delivers every frame queued on `from` to `to`; returns how many.
fn pump(from: &mut Mux, to: &mut Mux) -> usize {
    let frames = from.drain_frames();
    for f in &frames {
        to.receive(f).unwrap();
    }
    frames.len()
}

fn opened_handshake(ev: &[Event], ch: ChannelId) -> Vec<u8> {
    match ev {
        [Event::Opened { channel, handshake }] if *channel == ch => handshake.clone(),
        other => panic!("expected one Opened on {ch:?}, got {other:?}"),
    }
}

fn messages_on(ev: Vec<Event>, ch: ChannelId) -> Vec<Message> {
    ev.into_iter()
        .map(|e| match e {
            Event::Message {
                channel,
                message_type,
                payload,
            } => {
                assert_eq!(channel, ch);
                Message::decode(message_type, &payload).unwrap()
            }
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Golden: the captured JS session
// ---------------------------------------------------------------------------------------------

#[test]
fn capability_matches_the_capture() {
    let key = h32(KEY);
    let i_open = h(CAPTURE[0].1);
    let r_open = h(CAPTURE[1].1);
    assert_eq!(capability(true, &key, &hh()).to_vec(), i_open[53..85]);
    assert_eq!(capability(false, &key, &hh()).to_vec(), r_open[53..85]);
    // Each side checks the other's role.
    let cap_i: [u8; 32] = i_open[53..85].try_into().unwrap();
    let cap_r: [u8; 32] = r_open[53..85].try_into().unwrap();
    verify_capability(false, &key, &hh(), &cap_i).unwrap();
    verify_capability(true, &key, &hh(), &cap_r).unwrap();
    assert!(matches!(
        verify_capability(true, &key, &hh(), &cap_i),
        Err(Error::Protocol(_))
    ));
    // The namespaces it uses are the vector's.
    let v = vector();
    assert_eq!(
        caps::replicate_initiator().to_vec(),
        jh(&v["namespaces"]["REPLICATE_INITIATOR"])
    );
}

#[test]
fn captured_open_decodes_to_the_vector_discovery_key() {
    let key = h32(KEY);
    assert_eq!(crypto::discovery_key(&key).to_vec(), h(DISCOVERY_KEY));
    assert_eq!(jh(&vector()["discoveryKey"]), h(DISCOVERY_KEY));
    for (who, hex) in &CAPTURE[..2] {
        let mut m = Mux::new();
        m.receive(&h(hex)).unwrap();
        match events(&mut m).as_slice() {
            [
                Event::OpenRequest {
                    remote_id,
                    protocol,
                    id,
                    handshake,
                },
            ] => {
                assert_eq!(*remote_id, 1);
                assert_eq!(protocol, PROTOCOL);
                assert_eq!(id, &h(DISCOVERY_KEY));
                let hs = Handshake::decode(handshake).unwrap();
                assert!(hs.seeks);
                assert_eq!(hs.capability, capability(*who == 'I', &key, &hh()));
                assert_eq!(hs.encode(), *handshake);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn captured_long_frame_is_the_shared_logs() {
    let full = h(CAPTURE[6].1);
    assert_eq!(full.len(), 216);
    assert_eq!(full[..120], h(DATA_UPGRADE_PREFIX_120)[..]);
    // And it is what the vector log's state encodes to: roots, multisig, manifest.
    let v = vector();
    let roots: Vec<Node> = v["roots"].as_array().unwrap().iter().map(node).collect();
    let manifest = Manifest::decode(&jh(&v["manifestEncoded"])).unwrap();
    let data = Data {
        request: 1,
        fork: 0,
        upgrade: Some(DataUpgrade {
            start: 0,
            length: 3,
            nodes: roots,
            additional_nodes: vec![],
            signature: jh(&v["signature"]),
        }),
        manifest: Some(manifest),
        ..Data::default()
    };
    let (t, payload) = Message::Data(data).encode();
    let mut frame = vec![1u8, t as u8];
    frame.extend(payload);
    assert_eq!(frame, full);
}

/// Replays the session through two muxes: each captured frame is received by the other side and
/// decoded into messages, then those messages are sent again by the sender's mux (corked when the
/// capture shows a batch) and must give the captured bytes.
#[test]
fn capture_replays_byte_for_byte() {
    let key = h32(KEY);
    let dk = h(DISCOVERY_KEY);
    let mut mi = Mux::new();
    let mut mr = Mux::new();
    let hs_i = Handshake {
        seeks: true,
        capability: capability(true, &key, &hh()),
    };
    let hs_r = Handshake {
        seeks: true,
        capability: capability(false, &key, &hh()),
    };
    let ci = mi.open(PROTOCOL, Some(&dk), &hs_i.encode()).unwrap();
    let cr = mr.open(PROTOCOL, Some(&dk), &hs_r.encode()).unwrap();
    assert_eq!(mi.drain_frames(), vec![h(CAPTURE[0].1)]);
    assert_eq!(mr.drain_frames(), vec![h(CAPTURE[1].1)]);
    mr.receive(&h(CAPTURE[0].1)).unwrap();
    mi.receive(&h(CAPTURE[1].1)).unwrap();
    let got_r = Handshake::decode(&opened_handshake(&events(&mut mi), ci)).unwrap();
    let got_i = Handshake::decode(&opened_handshake(&events(&mut mr), cr)).unwrap();
    verify_capability(true, &key, &hh(), &got_r.capability).unwrap();
    verify_capability(false, &key, &hh(), &got_i.capability).unwrap();
    assert_eq!((mi.local_id(ci), mi.remote_id(ci)), (Some(1), Some(1)));
    assert_eq!(mi.channel_key(ci), Some((PROTOCOL, &dk[..])));

    let mut decoded = Vec::new();
    for (who, hex) in &CAPTURE[2..] {
        let bytes = h(hex);
        let (sender, receiver, sch, rch) = if *who == 'I' {
            (&mut mi, &mut mr, ci, cr)
        } else {
            (&mut mr, &mut mi, cr, ci)
        };
        receiver.receive(&bytes).unwrap();
        let msgs = messages_on(events(receiver), rch);
        let batched = bytes[..2] == [0, 0];
        if batched {
            sender.cork();
        }
        for m in &msgs {
            let (t, p) = m.encode();
            sender.send(sch, t, &p).unwrap();
        }
        if batched {
            sender.uncork();
        }
        assert_eq!(sender.drain_frames(), vec![bytes], "re-encoding {msgs:?}");
        decoded.push((*who, msgs));
    }

    // The fields, message by message.
    let sync = |flags: u8, length, remote_length| {
        Message::Sync(Sync {
            fork: 0,
            length,
            remote_length,
            can_upgrade: flags & 1 != 0,
            uploading: flags & 2 != 0,
            downloading: flags & 4 != 0,
            has_manifest: flags & 8 != 0,
            allow_push: flags & 16 != 0,
        })
    };
    let v = vector();
    assert_eq!(decoded[0].1, vec![sync(7, 0, 0)]);
    assert_eq!(
        decoded[1].1,
        vec![
            sync(0x0f, 3, 0),
            Message::Range(Range {
                drop: false,
                start: 0,
                length: 3
            })
        ]
    );
    assert_eq!(decoded[2].1, vec![sync(0x0f, 3, 0)]);
    assert_eq!(
        decoded[3].1,
        vec![Message::Request(Request {
            id: 1,
            fork: 0,
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 3
            }),
            manifest: true,
            ..Request::default()
        })]
    );
    let [Message::Data(data)] = decoded[4].1.as_slice() else {
        panic!("{:?}", decoded[4].1)
    };
    assert_eq!(data.request, 1);
    let up = data.upgrade.as_ref().unwrap();
    assert_eq!((up.start, up.length), (0, 3));
    let roots: Vec<Node> = v["roots"].as_array().unwrap().iter().map(node).collect();
    assert_eq!(up.nodes, roots);
    assert!(up.additional_nodes.is_empty());
    assert_eq!(up.signature, jh(&v["signature"]));
    assert_eq!(data.manifest.as_ref().unwrap().hash().to_vec(), h(KEY));
    assert!(data.block.is_none());
    assert_eq!(decoded[5].1, vec![sync(0x0e, 0, 3)]);
    assert_eq!(decoded[6].1, vec![sync(0x0f, 3, 0)]);
    assert_eq!(decoded[7].1, vec![sync(0x0e, 3, 3)]);
    assert_eq!(
        decoded[8].1,
        vec![Message::Request(Request {
            id: 1,
            fork: 0,
            block: Some(RequestBlock { index: 1, nodes: 1 }),
            priority: 1,
            ..Request::default()
        })]
    );
    let [Message::Data(data)] = decoded[9].1.as_slice() else {
        panic!("{:?}", decoded[9].1)
    };
    let block = data.block.as_ref().unwrap();
    assert_eq!((data.request, block.index), (1, 1));
    assert_eq!(block.value, b"b");
    assert_eq!(block.nodes, vec![node(&v["nodes"][0])]);
    assert!(data.upgrade.is_none() && data.manifest.is_none());
}

// ---------------------------------------------------------------------------------------------
// Golden: protomux's own batches
// ---------------------------------------------------------------------------------------------

#[test]
fn batch_with_switches_and_control_matches_protomux() {
    let mut m = Mux::new();
    m.cork();
    let a = m.open("a", None, &[]).unwrap();
    let b = m.open("b", None, &[]).unwrap();
    m.send(a, 0, &[1]).unwrap();
    m.send(a, 1, &[]).unwrap();
    m.send(b, 2, &[7, 7]).unwrap();
    m.close(a).unwrap();
    assert!(m.drain_frames().is_empty(), "nothing leaves while corked");
    m.uncork();
    assert_eq!(m.drain_frames(), vec![h(JS_BATCH_SWITCHES)]);

    // And the receiving side decodes it: two opens (requests), then messages held until accepted.
    let mut r = Mux::new();
    r.receive(&h(JS_BATCH_SWITCHES)).unwrap();
    let ev = events(&mut r);
    assert!(matches!(&ev[0], Event::OpenRequest { remote_id: 1, protocol, .. } if protocol == "a"));
    assert!(matches!(&ev[1], Event::OpenRequest { remote_id: 2, protocol, .. } if protocol == "b"));
    // "a" was closed by the remote before being answered: withdrawn (and answered with a reject).
    assert_eq!(ev[2], Event::OpenRequestClosed { remote_id: 1 });
    assert_eq!(ev.len(), 3);
    assert_eq!(r.drain_frames(), vec![vec![0, 2, 1]]);
    let rb = r.open("b", None, &[]).unwrap();
    assert_eq!(
        events(&mut r),
        vec![
            Event::Opened {
                channel: rb,
                handshake: vec![]
            },
            Event::Message {
                channel: rb,
                message_type: 2,
                payload: vec![7, 7]
            }
        ]
    );
    // The remote takes the reject of its closed channel quietly and pairs "b".
    pump(&mut r, &mut m);
    assert_eq!(
        events(&mut m),
        vec![Event::Opened {
            channel: b,
            handshake: vec![]
        }]
    );
}

#[test]
fn batch_with_wide_ids_matches_protomux() {
    let mut m = Mux::new();
    let chans: Vec<ChannelId> = (0..300u32)
        .map(|i| {
            m.open("p", Some(&[(i & 255) as u8, (i >> 8) as u8]), &[])
                .unwrap()
        })
        .collect();
    let opens = m.drain_frames();
    assert_eq!(opens.len(), 300);
    // Open #252 has local id 253: a 3-byte uint.
    assert_eq!(&opens[252][..5], &[0, 1, 0xfd, 0xfd, 0]);
    m.cork();
    m.send(chans[299], 1, b"x").unwrap();
    m.send(chans[252], 2, b"yy").unwrap();
    m.send(chans[252], 0, &[5; 300]).unwrap();
    m.send(chans[0], 0, b"z").unwrap();
    m.close(chans[299]).unwrap();
    m.uncork();
    assert_eq!(m.drain_frames(), vec![js_batch_wide_ids()]);

    // Decoded by a peer that opened the same channels.
    let mut r = Mux::new();
    let rchans: Vec<ChannelId> = (0..300u32)
        .map(|i| {
            r.open("p", Some(&[(i & 255) as u8, (i >> 8) as u8]), &[])
                .unwrap()
        })
        .collect();
    for f in &opens {
        r.receive(f).unwrap();
    }
    assert_eq!(events(&mut r).len(), 300);
    r.receive(&js_batch_wide_ids()).unwrap();
    let ev = events(&mut r);
    assert_eq!(
        ev,
        vec![
            Event::Message {
                channel: rchans[299],
                message_type: 1,
                payload: b"x".to_vec()
            },
            Event::Message {
                channel: rchans[252],
                message_type: 2,
                payload: b"yy".to_vec()
            },
            Event::Message {
                channel: rchans[252],
                message_type: 0,
                payload: vec![5; 300]
            },
            Event::Message {
                channel: rchans[0],
                message_type: 0,
                payload: b"z".to_vec()
            },
            Event::Closed {
                channel: rchans[299]
            },
        ]
    );
    assert!(!r.is_open(rchans[299]));
}

#[test]
fn reject_matches_protomux() {
    let mut a = Mux::new();
    let x = a.open("unknown", Some(b"id"), &[]).unwrap();
    assert_eq!(a.drain_frames(), vec![h(JS_OPEN_UNKNOWN)]);
    let mut b = Mux::new();
    b.receive(&h(JS_OPEN_UNKNOWN)).unwrap();
    let Some(Event::OpenRequest { remote_id, .. }) = b.next_event() else {
        panic!()
    };
    b.reject(remote_id).unwrap();
    assert_eq!(b.drain_frames(), vec![h(JS_REJECT)]);
    a.receive(&h(JS_REJECT)).unwrap();
    assert_eq!(events(&mut a), vec![Event::Rejected { channel: x }]);
    assert!(!a.is_open(x));
    assert!(a.is_idle());
    // The id is free again.
    let y = a.open("unknown", Some(b"id"), &[]).unwrap();
    assert_eq!(a.local_id(y), Some(1));
}

#[test]
fn batches_split_at_max_batch_like_protomux() {
    // protomux 3.12.1 with these sends (one channel, corked) wrote frames of
    // 8388623, 12582939 and 6 bytes: a batch is cut once it has reached MAX_BATCH, not before.
    let mut m = Mux::new();
    let c = m.open("big", None, &[]).unwrap();
    m.drain_frames();
    m.cork();
    for n in [4 << 20, 4 << 20, 4 << 20, 10, 8 << 20, 1] {
        m.send(c, 0, &vec![0u8; n]).unwrap();
    }
    m.uncork();
    let sizes: Vec<usize> = m.drain_frames().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![8388623, 12582939, 6]);
    assert!(sizes[0] >= MAX_BATCH);
}

// ---------------------------------------------------------------------------------------------
// Two muxes wired together
// ---------------------------------------------------------------------------------------------

#[test]
fn two_muxes_open_hypercore_channel_and_talk() {
    let key = [3u8; 32];
    let dk = crypto::discovery_key(&key);
    let hhash = [9u8; 64];
    let mut a = Mux::new(); // initiator
    let mut b = Mux::new();
    // A few unrelated channels first on B so the ids differ per direction.
    let _other1 = b.open("other", Some(b"1"), &[]).unwrap();
    let _other2 = b.open("other", Some(b"2"), &[]).unwrap();
    let ca = a
        .open(
            PROTOCOL,
            Some(&dk),
            &Handshake {
                seeks: true,
                capability: capability(true, &key, &hhash),
            }
            .encode(),
        )
        .unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    // A got B's two unknown opens; it rejects them.
    let ev = events(&mut a);
    assert_eq!(ev.len(), 2);
    for e in ev {
        let Event::OpenRequest { remote_id, .. } = e else {
            panic!()
        };
        a.reject(remote_id).unwrap();
    }
    // B got A's open: a request it accepts by opening the same channel.
    let ev = events(&mut b);
    let [
        Event::OpenRequest {
            remote_id,
            protocol,
            id,
            handshake,
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (*remote_id, protocol.as_str(), &id[..]),
        (1, PROTOCOL, &dk[..])
    );
    verify_capability(
        false,
        &key,
        &hhash,
        &Handshake::decode(handshake).unwrap().capability,
    )
    .unwrap();
    let cb = b
        .open(
            PROTOCOL,
            Some(&dk),
            &Handshake {
                seeks: false,
                capability: capability(false, &key, &hhash),
            }
            .encode(),
        )
        .unwrap();
    assert!(matches!(events(&mut b).as_slice(), [Event::Opened { channel, .. }] if *channel == cb));
    // A's rejects reach B, B's open reaches A.
    pump(&mut a, &mut b);
    let ev = events(&mut b);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| matches!(e, Event::Rejected { .. })));
    pump(&mut b, &mut a);
    let hs = Handshake::decode(&opened_handshake(&events(&mut a), ca)).unwrap();
    assert!(!hs.seeks);
    verify_capability(true, &key, &hhash, &hs.capability).unwrap();
    // Ids: A is 1 both ways on its side; B's channel got id 3 (after its two others), and after
    // the rejects its id 1 and 2 are free again.
    assert_eq!((a.local_id(ca), a.remote_id(ca)), (Some(1), Some(3)));
    assert_eq!((b.local_id(cb), b.remote_id(cb)), (Some(3), Some(1)));

    // Uncorked messages A → B.
    let sent = vec![
        Message::Sync(Sync {
            length: 5,
            can_upgrade: true,
            ..Sync::default()
        }),
        Message::Want(Want {
            start: 0,
            length: 1024,
            any: false,
        }),
    ];
    for m in &sent {
        let (t, p) = m.encode();
        a.send(ca, t, &p).unwrap();
    }
    assert_eq!(pump(&mut a, &mut b), 2);
    assert_eq!(messages_on(events(&mut b), cb), sent);

    // Corked (nested) B → A: one frame.
    let reply = vec![
        Message::Sync(Sync {
            remote_length: 5,
            downloading: true,
            ..Sync::default()
        }),
        Message::Bitfield(Bitfield {
            start: 0,
            bitfield: vec![u32::MAX; 32],
        }),
        Message::Range(Range {
            drop: false,
            start: 0,
            length: 1,
        }),
        Message::Request(Request {
            id: 1,
            fork: 0,
            block: Some(RequestBlock { index: 4, nodes: 2 }),
            ..Request::default()
        }),
    ];
    b.cork();
    b.cork();
    for m in &reply[..2] {
        let (t, p) = m.encode();
        b.send(cb, t, &p).unwrap();
    }
    b.uncork();
    assert!(b.drain_frames().is_empty());
    for m in &reply[2..] {
        let (t, p) = m.encode();
        b.send(cb, t, &p).unwrap();
    }
    b.uncork();
    assert_eq!(pump(&mut b, &mut a), 1);
    assert_eq!(messages_on(events(&mut a), ca), reply);

    // B closes; A sees Closed and its messages are refused locally, B's id is reusable.
    b.close(cb).unwrap();
    pump(&mut b, &mut a);
    assert_eq!(events(&mut a), vec![Event::Closed { channel: ca }]);
    assert!(matches!(a.send(ca, 0, &[]), Err(Error::InvalidArgument(_))));
    assert!(!a.opened(PROTOCOL, Some(&dk)));
    // Re-open both ways (crossing this time): fresh handles, ids reused.
    let ca2 = a.open(PROTOCOL, Some(&dk), &[0; 33]).unwrap();
    let cb2 = b.open(PROTOCOL, Some(&dk), &[0; 33]).unwrap();
    assert_ne!(ca2, ca);
    assert_eq!(a.local_id(ca2), Some(1));
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    assert!(
        matches!(events(&mut a).as_slice(), [Event::Opened { channel, .. }] if *channel == ca2)
    );
    assert!(
        matches!(events(&mut b).as_slice(), [Event::Opened { channel, .. }] if *channel == cb2)
    );
    assert_eq!(a.remote_id(ca2), b.local_id(cb2));
    assert_eq!(b.remote_id(cb2), a.local_id(ca2));
}

#[test]
fn messages_before_accept_are_held_then_delivered() {
    let mut a = Mux::new();
    let mut b = Mux::new();
    let ca = a.open("p", Some(b"k"), b"hs").unwrap();
    a.send(ca, 1, b"early").unwrap();
    a.cork();
    a.send(ca, 2, b"batched").unwrap();
    a.uncork();
    pump(&mut a, &mut b);
    assert!(matches!(
        events(&mut b).as_slice(),
        [Event::OpenRequest { remote_id: 1, .. }]
    ));
    let cb = b.open("p", Some(b"k"), b"hs2").unwrap();
    assert_eq!(
        events(&mut b),
        vec![
            Event::Opened {
                channel: cb,
                handshake: b"hs".to_vec()
            },
            Event::Message {
                channel: cb,
                message_type: 1,
                payload: b"early".to_vec()
            },
            Event::Message {
                channel: cb,
                message_type: 2,
                payload: b"batched".to_vec()
            },
        ]
    );
}

#[test]
fn closed_channels_ignore_late_messages_and_unknown_ones_fail() {
    let mut a = Mux::new();
    let mut b = Mux::new();
    let ca = a.open("p", None, &[]).unwrap();
    let cb = b.open("p", None, &[]).unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    events(&mut a);
    events(&mut b);
    // A sends while B closes: the message crosses the close and is dropped quietly.
    a.send(ca, 0, b"late").unwrap();
    b.close(cb).unwrap();
    pump(&mut a, &mut b);
    assert!(events(&mut b).is_empty());
    pump(&mut b, &mut a);
    assert_eq!(events(&mut a), vec![Event::Closed { channel: ca }]);
    // A message on an id the remote never opened is a protocol error.
    assert!(matches!(b.receive(&[7, 0, 1]), Err(Error::Protocol(_))));
    // So is a reject for an id we are not waiting on, and an open that skips ids.
    assert!(matches!(b.receive(&[0, 2, 9]), Err(Error::Protocol(_))));
    assert!(matches!(
        b.receive(&[0, 1, 5, 1, b'q', 0]),
        Err(Error::Protocol(_))
    ));
    // Or reuses an id still in use.
    let mut c = Mux::new();
    c.receive(&[0, 1, 1, 1, b'q', 0]).unwrap();
    assert!(matches!(
        c.receive(&[0, 1, 1, 1, b'r', 0]),
        Err(Error::Protocol(_))
    ));
    // Opening channel 0 is refused.
    assert!(matches!(
        c.receive(&[0, 1, 0, 1, b'q', 0]),
        Err(Error::Protocol(_))
    ));
    // Empty frames are keep-alives; unknown control types and closes of unknown ids are ignored.
    c.receive(&[]).unwrap();
    c.receive(&[0, 9, 1, 2, 3]).unwrap();
    c.receive(&[0, 3, 77]).unwrap();
    // A batch nested in a batch is refused; a truncated batch entry too.
    assert!(matches!(
        c.receive(&[0, 0, 0, 2, 0, 0]),
        Err(Error::Protocol(_))
    ));
    assert!(matches!(
        c.receive(&[0, 0, 1, 5, 1]),
        Err(Error::Protocol(_))
    ));
    // Local misuse.
    assert!(matches!(a.send(ca, 0, &[]), Err(Error::InvalidArgument(_))));
    assert!(matches!(c.reject(5), Err(Error::InvalidArgument(_))));
    assert!(matches!(c.reject(0), Err(Error::InvalidArgument(_))));
    a.close(ca).unwrap(); // closing twice is a no-op
    let p = a.open("dup", None, &[]).unwrap();
    assert!(matches!(
        a.open("dup", Some(&[]), &[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(a.is_open(p));
}

#[test]
fn close_before_answer_frees_the_id_on_the_answer() {
    let mut a = Mux::new();
    let mut b = Mux::new();
    let x = a.open("x", None, &[]).unwrap();
    a.close(x).unwrap();
    // Not yet answered: id 1 stays taken.
    let y = a.open("y", None, &[]).unwrap();
    assert_eq!(a.local_id(y), Some(2));
    // B opened "x" itself meanwhile: its open answers A's closed one, which frees id 1.
    let _bx = b.open("x", None, &[]).unwrap();
    pump(&mut b, &mut a);
    assert!(events(&mut a).is_empty());
    let z = a.open("z", None, &[]).unwrap();
    assert_eq!(a.local_id(z), Some(1));
}

#[test]
fn oversize_frames_are_refused() {
    // Framing: the prefix alone is enough to fail.
    let mut d = FrameDecoder::with_max_frame(1024);
    assert!(matches!(
        d.push(&[0x01, 0x04, 0x00]),
        Err(Error::FrameTooLarge {
            size: 1025,
            max: 1024
        })
    ));
    assert_eq!(d.buffered(), 0);
    let mut d = FrameDecoder::new();
    d.push(&[0xff, 0xff, 0xff]).unwrap(); // exactly MAX_FRAME is allowed
    assert_eq!(d.max_frame(), MAX_FRAME);
    // Mux: frames in and out are bounded by its limit.
    let mut m = Mux::with_limits(Limits {
        max_frame: 64,
        ..Limits::default()
    });
    assert!(matches!(
        m.receive(&[1; 65]),
        Err(Error::FrameTooLarge { size: 65, max: 64 })
    ));
    let c = m.open("p", None, &[]).unwrap();
    assert!(matches!(
        m.send(c, 0, &[0; 63]),
        Err(Error::FrameTooLarge { .. })
    ));
    m.send(c, 0, &[0; 62]).unwrap();
    assert!(matches!(
        m.open("q", None, &[0; 64]),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(!m.opened("q", None));
    // An open that fits alone but not as a batch entry is refused while corked, and nothing
    // changes.
    m.cork();
    assert!(matches!(
        m.open("q", None, &[0; 58]),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(!m.opened("q", None));
    m.uncork();
    let q = m.open("q", None, &[0; 58]).unwrap();
    assert_eq!(m.drain_frames().last().unwrap().len(), 64);
    m.close(q).unwrap();
    // A corked batch is cut to stay within the limit.
    m.drain_frames();
    m.cork();
    for _ in 0..10 {
        m.send(c, 0, &[0; 20]).unwrap();
    }
    m.uncork();
    let frames = m.drain_frames();
    assert!(frames.len() > 1);
    assert!(frames.iter().all(|f| f.len() <= 64 && f[..2] == [0, 0]));
}

#[test]
fn pending_limits_hold() {
    let mut m = Mux::with_limits(Limits {
        max_pending_opens: 2,
        max_pending_bytes: 4096,
        max_remote_channels: 3,
        ..Limits::default()
    });
    m.receive(&[0, 1, 1, 1, b'a', 0]).unwrap();
    m.receive(&[0, 1, 2, 1, b'b', 0]).unwrap();
    assert!(matches!(
        m.receive(&[0, 1, 3, 1, b'c', 0]),
        Err(Error::Protocol(_))
    ));
    m.reject(2).unwrap();
    m.receive(&[0, 1, 2, 1, b'b', 0]).unwrap(); // id 2 reusable after the reject
    assert!(matches!(
        m.receive(&[0, 1, 4, 1, b'd', 0]),
        Err(Error::Protocol(_))
    ));
    // Messages held for an unaccepted open count against the byte limit.
    m.receive(&[1, 0, 1, 2, 3]).unwrap();
    let mut big = vec![1u8, 0];
    big.extend([0u8; 3000]);
    assert!(matches!(m.receive(&big), Err(Error::Protocol(_))));
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

fn arb_hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn arb_nodes() -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec(
        (any::<u64>(), any::<u64>(), arb_hash()).prop_map(|(i, s, h)| Node::new(i, s, h)),
        0..4,
    )
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    (
        1u64..=3,
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
        prop::collection::vec((any::<u64>(), arb_hash(), arb_hash()), 0..3),
        prop::option::of((arb_hash(), any::<u64>())),
        prop::option::of(prop::collection::vec(arb_hash(), 0..3)),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
    )
        .prop_map(
            |(version, hash, allow_patch, quorum, signers, prologue, linked, user_data)| Manifest {
                version,
                hash,
                allow_patch,
                quorum,
                signers: signers
                    .into_iter()
                    .map(|(signature, namespace, public_key)| ManifestSigner {
                        signature,
                        namespace,
                        public_key,
                    })
                    .collect(),
                prologue: prologue.map(|(hash, length)| Prologue { hash, length }),
                linked,
                user_data,
            },
        )
}

fn arb_data() -> impl Strategy<Value = Data> {
    (
        any::<u64>(),
        any::<u64>(),
        prop::option::of((
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..100),
            arb_nodes(),
        )),
        prop::option::of((any::<u64>(), arb_nodes())),
        prop::option::of((any::<u64>(), arb_nodes())),
        prop::option::of((
            any::<u64>(),
            any::<u64>(),
            arb_nodes(),
            arb_nodes(),
            prop::collection::vec(any::<u8>(), 0..100),
        )),
        prop::option::of(arb_manifest()),
    )
        .prop_map(
            |(request, fork, block, hash, seek, upgrade, manifest)| Data {
                request,
                fork,
                block: block.map(|(index, value, nodes)| DataBlock {
                    index,
                    value,
                    nodes,
                }),
                hash: hash.map(|(index, nodes)| DataHash { index, nodes }),
                seek: seek.map(|(bytes, nodes)| DataSeek { bytes, nodes }),
                upgrade: upgrade.map(|(start, length, nodes, additional_nodes, signature)| {
                    DataUpgrade {
                        start,
                        length,
                        nodes,
                        additional_nodes,
                        signature,
                    }
                }),
                manifest,
            },
        )
}

fn arb_request_block() -> impl Strategy<Value = RequestBlock> {
    (any::<u64>(), any::<u64>()).prop_map(|(index, nodes)| RequestBlock { index, nodes })
}

fn arb_u64() -> impl Strategy<Value = u64> {
    // Favour the varint boundaries.
    prop_oneof![
        0u64..300,
        Just(0xfc),
        Just(0xfd),
        Just(0xffff),
        Just(0x1_0000),
        Just(0xffff_ffff),
        Just(0x1_0000_0000),
        any::<u64>(),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (arb_u64(), arb_u64(), arb_u64(), any::<[bool; 5]>()).prop_map(
            |(fork, length, remote_length, f)| {
                Message::Sync(Sync {
                    fork,
                    length,
                    remote_length,
                    can_upgrade: f[0],
                    uploading: f[1],
                    downloading: f[2],
                    has_manifest: f[3],
                    allow_push: f[4],
                })
            }
        ),
        (
            arb_u64(),
            arb_u64(),
            prop::option::of(arb_request_block()),
            prop::option::of(arb_request_block()),
            prop::option::of(
                (any::<u64>(), any::<u64>())
                    .prop_map(|(bytes, padding)| RequestSeek { bytes, padding })
            ),
            prop::option::of(
                (any::<u64>(), any::<u64>())
                    .prop_map(|(start, length)| RequestUpgrade { start, length })
            ),
            any::<bool>(),
            arb_u64(),
        )
            .prop_map(
                |(id, fork, block, hash, seek, upgrade, manifest, priority)| {
                    Message::Request(Request {
                        id,
                        fork,
                        block,
                        hash,
                        seek,
                        upgrade,
                        manifest,
                        priority,
                    })
                }
            ),
        arb_u64().prop_map(|request| Message::Cancel(Cancel { request })),
        arb_data().prop_map(Message::Data),
        (arb_u64(), arb_u64())
            .prop_map(|(request, reason)| Message::NoData(NoData { request, reason })),
        (arb_u64(), arb_u64(), any::<bool>())
            .prop_map(|(start, length, any)| Message::Want(Want { start, length, any })),
        (arb_u64(), arb_u64(), any::<bool>())
            .prop_map(|(start, length, any)| Message::Unwant(Want { start, length, any })),
        (arb_u64(), prop::collection::vec(any::<u32>(), 0..80))
            .prop_map(|(start, bitfield)| Message::Bitfield(Bitfield { start, bitfield })),
        (any::<bool>(), arb_u64(), prop_oneof![Just(1u64), arb_u64()]).prop_map(
            |(drop, start, length)| Message::Range(Range {
                drop,
                start,
                length
            })
        ),
        (".{0,12}", prop::collection::vec(any::<u8>(), 0..60))
            .prop_map(|(name, message)| Message::Extension(Extension { name, message })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(m in arb_message()) {
        let (t, bytes) = m.encode();
        prop_assert_eq!(t, m.message_type());
        prop_assert!(t < messages::MESSAGE_TYPES);
        let back = Message::decode(t, &bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode().1, bytes);
        if let Message::Data(d) = &m {
            prop_assert_eq!(d.encode(), Message::Data(d.clone()).encode().1);
        }
    }

    #[test]
    fn handshakes_round_trip(seeks in any::<bool>(), cap in arb_hash()) {
        let hs = Handshake { seeks, capability: cap };
        prop_assert_eq!(Handshake::decode(&hs.encode()).unwrap(), hs);
    }

    #[test]
    fn framing_survives_any_chunking(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let mut stream = Vec::new();
        for p in &payloads {
            framing::encode_frame_into(p, &mut stream).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for w in cuts.windows(2) {
            d.push(&stream[w[0]..w[1]]).unwrap();
            while let Some(f) = d.next_frame() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, payloads);
        prop_assert!(d.is_idle());
    }

    #[test]
    fn mux_traffic_round_trips(
        channels in 1usize..6,
        ops in prop::collection::vec(
            prop_oneof![
                4 => (any::<prop::sample::Index>(), 0u64..300, prop::collection::vec(any::<u8>(), 0..300))
                    .prop_map(|(c, t, p)| Op::Send(c, t, p)),
                1 => Just(Op::Cork),
                1 => Just(Op::Uncork),
            ],
            0..60,
        ),
    ) {
        let mut a = Mux::new();
        let mut b = Mux::new();
        let ca: Vec<ChannelId> = (0..channels).map(|i| a.open("p", Some(&[i as u8]), &[i as u8]).unwrap()).collect();
        // B answers half the channels by opening first, the other half by accepting the request.
        let mut cb: Vec<Option<ChannelId>> = (0..channels)
            .map(|i| (i % 2 == 0).then(|| b.open("p", Some(&[i as u8]), &[]).unwrap()))
            .collect();
        pump(&mut a, &mut b);
        for e in events(&mut b) {
            if let Event::OpenRequest { id, .. } = e {
                let i = id[0] as usize;
                cb[i] = Some(b.open("p", Some(&id), &[]).unwrap());
            }
        }
        let cb: Vec<ChannelId> = cb.into_iter().map(Option::unwrap).collect();
        pump(&mut b, &mut a);
        prop_assert_eq!(events(&mut a).len(), channels);
        events(&mut b);

        let mut sent = Vec::new();
        let mut depth = 0;
        for op in ops {
            match op {
                Op::Send(c, t, p) => {
                    let i = c.index(channels);
                    a.send(ca[i], t, &p).unwrap();
                    sent.push((cb[i], t, p));
                }
                Op::Cork => { a.cork(); depth += 1; }
                Op::Uncork => { a.uncork(); depth = (depth - 1).max(0); }
            }
            if depth > 0 {
                prop_assert!(a.drain_frames().is_empty());
            } else {
                pump(&mut a, &mut b);
            }
        }
        while a.is_corked() {
            a.uncork();
        }
        pump(&mut a, &mut b);
        let got: Vec<(ChannelId, u64, Vec<u8>)> = events(&mut b)
            .into_iter()
            .map(|e| match e {
                Event::Message { channel, message_type, payload } => (channel, message_type, payload),
                other => panic!("{other:?}"),
            })
            .collect();
        prop_assert_eq!(got, sent);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send(prop::sample::Index, u64, Vec<u8>),
    Cork,
    Uncork,
}

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

/// Frame starts that reach each branch of the mux decoder.
fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 0],
        vec![0, 0, 1],
        vec![0, 0, 0],
        vec![0, 1],
        vec![0, 1, 1],
        vec![0, 1, 1, 1, b'p', 0],
        vec![0, 1, 2, 1, b'p', 1, 7],
        vec![0, 2],
        vec![0, 3],
        vec![1],
        vec![2],
        vec![0xfd],
    ];
    (
        prop::sample::select(prefixes),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(mut p, rest)| {
            p.extend(rest);
            p
        })
}

#[derive(Debug, Clone)]
enum Action {
    Receive(Vec<u8>),
    Open(u8),
    Send(u64, u64, Vec<u8>),
    Close(u64),
    Reject(u64),
    Cork,
    Uncork,
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => arb_frame().prop_map(Action::Receive),
        2 => (0u8..3).prop_map(Action::Open),
        2 => (0u64..8, 0u64..12, prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(c, t, p)| Action::Send(c, t, p)),
        1 => (0u64..8).prop_map(Action::Close),
        1 => (0u64..6).prop_map(Action::Reject),
        1 => Just(Action::Cork),
        1 => Just(Action::Uncork),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(t in 0u64..12, bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let _ = Message::decode(t, &bytes);
        let _ = Handshake::decode(&bytes);
        let _ = Data::decode(&bytes);
        let mut m = Mux::new();
        let _ = m.receive(&bytes);
        let mut d = FrameDecoder::with_max_frame(32);
        let _ = d.push(&bytes);
        while d.next_frame().is_some() {}
    }

    #[test]
    fn mux_survives_any_input_and_calls(actions in prop::collection::vec(arb_action(), 0..30)) {
        let mut m = Mux::with_limits(Limits { max_pending_opens: 4, max_pending_bytes: 3000, ..Limits::default() });
        let mut handles: Vec<ChannelId> = Vec::new();
        for a in actions {
            match a {
                Action::Receive(f) => { let _ = m.receive(&f); }
                Action::Open(p) => {
                    if let Ok(c) = m.open(["p", "q", "r"][p as usize], None, &[1, 2]) {
                        handles.push(c);
                    }
                }
                Action::Send(c, t, p) => {
                    if let Some(&h) = handles.get(c as usize) {
                        let _ = m.send(h, t, &p);
                    }
                }
                Action::Close(c) => {
                    if let Some(&h) = handles.get(c as usize) {
                        m.close(h).unwrap();
                    }
                }
                Action::Reject(r) => { let _ = m.reject(r); }
                Action::Cork => m.cork(),
                Action::Uncork => m.uncork(),
            }
            // Whatever it emits must itself decode.
            for f in m.drain_frames() {
                let mut d = Decoder::new(&f);
                prop_assert!(d.uint("id").is_ok());
            }
            m.drain_events();
        }
    }
}

#[test]
fn random_frames_into_a_live_session_never_panic() {
    // A deterministic stream of junk (xorshift), fed after a real pairing.
    let mut a = Mux::new();
    let mut b = Mux::new();
    let ca = a.open(PROTOCOL, Some(&[1; 32]), &[0; 33]).unwrap();
    let _cb = b.open(PROTOCOL, Some(&[1; 32]), &[0; 33]).unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    a.send(ca, types::SYNC, &[0, 0, 0, 0]).unwrap();
    pump(&mut a, &mut b);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if next() % 2 == 0 && !f.is_empty() {
            f[0] = 1; // aim at the live channel
        }
        if b.receive(&f).is_ok() {
            for e in b.drain_events() {
                if let Event::Message {
                    message_type,
                    payload,
                    ..
                } = e
                {
                    let _ = Message::decode(message_type, &payload);
                }
            }
        }
    }
}

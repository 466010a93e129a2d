//! The login driver over an in-memory stream: stages, CHAP, discovery, continued text and
//! every refusal's status.

use std::sync::Arc;

use tokio::io::{AsyncWriteExt, DuplexStream};

use super::*;
use crate::device::MemDevice;
use crate::iscsi::chap::{expected, hex};
use crate::iscsi::pdu::{read_pdu, Framing};
use crate::iscsi::targets::{ChapCredentials, StaticTargets};

const TARGET: &str = "iqn.2026-12.io.photoncloud:t";

fn targets() -> StaticTargets {
    let dev = Arc::new(MemDevice::new(1 << 20));
    let chap = Access { chap: Some(ChapCredentials { user: "alice".into(), secret: b"secret-secret".to_vec() }) };
    StaticTargets::new().with(TARGET, dev.clone()).with_access("iqn.2026-12.io.photoncloud:chap", dev, chap)
}

fn request(flags: u8, pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut h = pdu::header(OP_LOGIN_REQ | pdu::IMMEDIATE, flags);
    h[8..14].copy_from_slice(&[0x80, 1, 2, 3, 4, 5]);
    pdu::put_u32(&mut h, 16, 0x77);
    pdu::put_u32(&mut h, 24, 1000);
    let data = text::encode(pairs);
    pdu::put_data_len(&mut h, data.len());
    pdu::encode(&h, &data, false, false)
}

struct Reply {
    flags: u8,
    tsih: u16,
    status: Status,
    stat_sn: u32,
    keys: Vec<(String, String)>,
}

async fn exchange(client: &mut DuplexStream, bytes: &[u8]) -> Reply {
    client.write_all(bytes).await.unwrap();
    let framing = Framing { max_data: 1 << 16, header_digest: false, data_digest: false };
    let p = read_pdu(client, &framing).await.unwrap().unwrap();
    assert_eq!(p.bhs.opcode(), OP_LOGIN_RESP);
    assert_eq!(p.bhs.itt(), 0x77);
    Reply {
        flags: p.bhs.flags(),
        tsih: p.bhs.u16(14),
        status: Status(p.bhs.0[36], p.bhs.0[37]),
        stat_sn: p.bhs.u32(24),
        keys: text::parse(&p.data).unwrap(),
    }
}

fn key<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.keys.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Runs the target's side of a login on a duplex stream.
fn start() -> (DuplexStream, tokio::task::JoinHandle<Result<LoggedIn, LoginError>>) {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(async move {
        let targets = targets();
        login(&mut server, &targets, 9, 32).await
    });
    (client, task)
}

const NAMES: [(&str, &str); 2] = [("InitiatorName", "iqn.2026-12.io.photoncloud:i"), ("TargetName", TARGET)];

#[tokio::test]
async fn operational_login_goes_straight_to_full_feature() {
    let (mut client, task) = start();
    let mut pairs = NAMES.to_vec();
    pairs.extend([("MaxRecvDataSegmentLength", "65536"), ("ImmediateData", "Yes"), ("X-vendor", "1")]);
    let reply = exchange(&mut client, &request(0x80 | (1 << 2) | 3, &pairs)).await;
    assert_eq!(reply.status, Status::SUCCESS);
    assert_eq!(reply.flags, 0x80 | (1 << 2) | 3, "transit from operational to full feature");
    assert_eq!(reply.tsih, 9);
    assert_eq!(key(&reply, "TargetPortalGroupTag"), Some("1"));
    assert_eq!(key(&reply, "MaxRecvDataSegmentLength"), Some("262144"));
    assert_eq!(key(&reply, "X-vendor"), Some("NotUnderstood"));
    let logged_in = task.await.unwrap().unwrap();
    assert!(matches!(logged_in.kind, SessionKind::Normal { ref target, .. } if target == TARGET));
    assert_eq!((logged_in.exp_cmd_sn, logged_in.stat_sn, logged_in.tsih), (1000, reply.stat_sn + 1, 9));
    assert_eq!(logged_in.params.max_send_segment, 65536);
    assert_eq!(logged_in.isid, [0x80, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn security_stage_without_chap_then_operational() {
    let (mut client, task) = start();
    let mut pairs = NAMES.to_vec();
    pairs.push(("AuthMethod", "CHAP,None"));
    let reply = exchange(&mut client, &request(0x80 | 1, &pairs)).await;
    assert_eq!((reply.status, reply.flags), (Status::SUCCESS, 0x80 | 1));
    assert_eq!(key(&reply, "AuthMethod"), Some("None"));
    let reply = exchange(&mut client, &request(0x80 | (1 << 2) | 3, &[])).await;
    assert_eq!((reply.status, reply.tsih), (Status::SUCCESS, 9));
    assert_eq!(key(&reply, "MaxRecvDataSegmentLength"), Some("262144"), "declared before full feature");
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test]
async fn chap_authenticates_with_the_right_secret_only() {
    for (secret, ok) in [(&b"secret-secret"[..], true), (&b"guess"[..], false)] {
        let (mut client, task) = start();
        let pairs = [
            ("InitiatorName", "iqn.2026-12.io.photoncloud:i"),
            ("TargetName", "iqn.2026-12.io.photoncloud:chap"),
            ("AuthMethod", "None,CHAP"),
        ];
        let reply = exchange(&mut client, &request(0x80 | 1, &pairs)).await;
        assert_eq!((key(&reply, "AuthMethod"), reply.flags & 0x80), (Some("CHAP"), 0), "no transit before CHAP");
        let reply = exchange(&mut client, &request(1, &[("CHAP_A", "5")])).await;
        let id: u8 = key(&reply, "CHAP_I").unwrap().parse().unwrap();
        let challenge = chap::decode(key(&reply, "CHAP_C").unwrap()).unwrap();
        let response = format!("0x{}", hex(&expected(id, secret, &challenge)));
        let reply = exchange(&mut client, &request(0x80 | 1, &[("CHAP_N", "alice"), ("CHAP_R", &response)])).await;
        if ok {
            assert_eq!((reply.status, reply.flags), (Status::SUCCESS, 0x80 | 1));
            let reply = exchange(&mut client, &request(0x80 | (1 << 2) | 3, &[])).await;
            assert_eq!(reply.status, Status::SUCCESS);
            assert!(task.await.unwrap().is_ok());
        } else {
            assert_eq!(reply.status, Status::AUTHENTICATION_FAILED);
            assert!(matches!(task.await.unwrap(), Err(LoginError::Refused { .. })));
        }
    }
}

#[tokio::test]
async fn chap_cannot_be_skipped() {
    let (mut client, task) = start();
    let pairs = [("InitiatorName", "iqn.2026-12.io.photoncloud:i"), ("TargetName", "iqn.2026-12.io.photoncloud:chap")];
    let reply = exchange(&mut client, &request(0x80 | (1 << 2) | 3, &pairs)).await;
    assert_eq!(reply.status, Status::AUTHENTICATION_FAILED);
    assert!(task.await.unwrap().is_err());
}

#[tokio::test]
async fn discovery_needs_no_target_and_continued_text_is_joined() {
    let (mut client, task) = start();
    let all = text::encode(&[("InitiatorName", "iqn.2026-12.io.photoncloud:i"), ("SessionType", "Discovery")]);
    let (first, second) = all.split_at(10);
    let mut h = pdu::header(OP_LOGIN_REQ | pdu::IMMEDIATE, FLAG_CONTINUE | (1 << 2) | 3);
    pdu::put_u32(&mut h, 16, 0x77);
    pdu::put_data_len(&mut h, first.len());
    let reply = exchange(&mut client, &pdu::encode(&h, first, false, false)).await;
    assert_eq!((reply.status, reply.flags, reply.keys.len()), (Status::SUCCESS, 1 << 2, 0), "wait for the rest");
    let mut h = pdu::header(OP_LOGIN_REQ | pdu::IMMEDIATE, 0x80 | (1 << 2) | 3);
    pdu::put_u32(&mut h, 16, 0x77);
    pdu::put_data_len(&mut h, second.len());
    let reply = exchange(&mut client, &pdu::encode(&h, second, false, false)).await;
    assert_eq!(reply.status, Status::SUCCESS);
    assert_eq!(key(&reply, "TargetPortalGroupTag"), None, "only normal sessions declare it");
    assert!(matches!(task.await.unwrap().unwrap().kind, SessionKind::Discovery));
}

#[tokio::test]
async fn refusals_carry_their_status() {
    let cases: [(Vec<u8>, Status); 6] = [
        (request(0x87, &[("TargetName", TARGET)]), Status::MISSING_PARAMETER),
        (request(0x87, &[("InitiatorName", "i"), ("TargetName", "iqn.nope")]), Status::NOT_FOUND),
        (request(0x87, &[("InitiatorName", "i"), ("SessionType", "Odd")]), Status::SESSION_TYPE_UNSUPPORTED),
        (request(0xc7, &NAMES), Status::INITIATOR_ERROR),
        (request(0x8f, &NAMES), Status::INITIATOR_ERROR),
        (request(0x80 | 2, &NAMES), Status::INITIATOR_ERROR),
    ];
    for (bytes, status) in cases {
        let (mut client, task) = start();
        let reply = exchange(&mut client, &bytes).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.tsih, 0);
        assert!(task.await.unwrap().is_err());
    }
    let (mut client, task) = start();
    let mut h = pdu::header(pdu::OP_SCSI_CMD, 0x80);
    pdu::put_u32(&mut h, 16, 0x77);
    let reply = exchange(&mut client, &pdu::encode(&h, &[], false, false)).await;
    assert_eq!(reply.status, Status::INVALID_DURING_LOGIN);
    assert!(task.await.unwrap().is_err());
}

//! Malformed initiator byte streams for the iSCSI target: a hand-written corpus of broken
//! logins and full-feature-phase PDUs, and seeded random sessions. Each stream is a whole
//! connection from its first byte. None may change the read-write target `vol`: every write
//! they carry to it is one the target must refuse, ignore or never complete.

use photon_testkit::seeded::Rng;

use super::iscsi_raw::*;

pub const VOL: &str = "iqn.2026-12.io.photoncloud:vol";
pub const RO: &str = "iqn.2026-12.io.photoncloud:ro";
pub const CHAP: &str = "iqn.2026-12.io.photoncloud:chap";

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A login to `target` with CmdSN 1, then `rest`.
fn after_login(target: &str, extra: &[(&str, &str)], rest: &[&[u8]]) -> Vec<u8> {
    let mut out = login_bytes(Some(target), extra, 1);
    for part in rest {
        out.extend_from_slice(part);
    }
    out
}

fn cmd(flags: u8, itt: u32, edtl: u32, cmd_sn: u32, cdb: &[u8], data: &[u8]) -> Vec<u8> {
    pdu(command_header(flags | FINAL, itt, edtl, cmd_sn, cdb), data)
}

fn header(opcode: u8, flags: u8, itt: u32, cmd_sn: u32) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[0] = opcode;
    h[1] = flags;
    put32(&mut h, 16, itt);
    put32(&mut h, 24, cmd_sn);
    h
}

/// The hand-written corpus, against `vol` of `blocks` 512-byte blocks: (what, bytes).
pub fn malformed(blocks: u32) -> Vec<(&'static str, Vec<u8>)> {
    let block = vec![0xee; 512];
    let two = vec![0xee; 1024];
    let mut big_dsl = command_header(FINAL | WRITE, 1, 4096, 1, &write10(0, 8));
    big_dsl[5..8].copy_from_slice(&[0x04, 0x00, 0x01]);
    let mut ahs_garbage = command_header(FINAL | READ, 1, 512, 1, &read10(0, 1));
    ahs_garbage[4] = 2;
    let mut ahs_pdu = ahs_garbage.to_vec();
    ahs_pdu.extend_from_slice(&[0xff, 0xff, 0x07, 0, 1, 2, 3, 4]);
    let mut ahs_lying = command_header(FINAL | WRITE, 1, 512, 1, &write10(0, 1));
    ahs_lying[4] = 255;
    let mut login_big = login_header(0x87, 0, 1, 1);
    login_big[5..8].copy_from_slice(&[0, 0x40, 0x00]);
    let mut version = login_header(0x87, 0, 1, 1);
    version[3] = 2;
    let continued: Vec<u8> = (0..20).flat_map(|_| pdu(login_header(0x40 | 0x07, 0, 1, 1), &[b'A'; 4096])).collect();
    let names = keys(&[("InitiatorName", "iqn.x"), ("TargetName", VOL)]);
    let endless: Vec<u8> = (0..80).flat_map(|_| pdu(login_header(0x04, 0, 1, 1), &names)).collect();
    let mut isid_change = pdu(login_header(0x04, 0, 1, 1), &keys(&[("InitiatorName", "iqn.x"), ("TargetName", VOL)]));
    let mut other_isid = login_header(0x87, 0, 1, 1);
    other_isid[13] = 9;
    isid_change.extend(pdu(other_isid, &[]));
    let unsolicited_disallowed = cmd(WRITE, 1, 1024, 1, &write10(0, 2), &[]);
    let mut unsolicited_open = command_header(WRITE, 1, 1024, 1, &write10(0, 2));
    unsolicited_open[1] = WRITE | 0x01;
    let mut corpus: Vec<(&'static str, Vec<u8>)> = vec![
        ("nothing", vec![]),
        ("half a header", vec![0x43; 20]),
        ("a SCSI command before login", cmd(WRITE, 1, 512, 1, &write10(0, 1), &block)),
        ("login with a 16 KiB data segment", pdu(login_big, &[])),
        ("login with an unsupported version", pdu(version, &keys(&[("InitiatorName", "iqn.x")]))),
        ("login with T and C set", pdu(login_header(0xc7, 0, 1, 1), &keys(&[("InitiatorName", "iqn.x")]))),
        ("login to the full feature stage", pdu(login_header(0x8f, 0, 1, 1), &keys(&[("InitiatorName", "iqn.x")]))),
        (
            "login with TSIH set",
            login_bytes(Some(VOL), &[], 1).iter().enumerate().map(|(i, &b)| if i == 15 { 7 } else { b }).collect(),
        ),
        ("login without an initiator name", pdu(login_header(0x87, 0, 1, 1), &keys(&[("TargetName", VOL)]))),
        ("login to an unknown target", login_bytes(Some("iqn.2026-12.io.photoncloud:nope"), &[], 1)),
        ("login with a bogus session type", login_bytes(Some(VOL), &[("SessionType", "Bogus")], 1)),
        ("login text without '='", pdu(login_header(0x87, 0, 1, 1), b"InitiatorName\0")),
        ("login text not UTF-8", pdu(login_header(0x87, 0, 1, 1), &[b'A', b'=', 0xff, 0xfe, 0])),
        ("login key too long", pdu(login_header(0x87, 0, 1, 1), &keys(&[(&"K".repeat(100), "1")]))),
        ("login text continued past 64 KiB", continued),
        ("eighty login PDUs without transit", endless),
        ("login changing its ISID", isid_change),
        ("login with bad AHS", join(&[&login_header(0x87, 0, 1, 1)[..4], &[255], &[0; 43], &[0; 64]])),
        ("CHAP target without CHAP", login_bytes(Some(CHAP), &[], 1)),
        (
            "CHAP response before the challenge",
            pdu(
                login_header(0x81, 0, 1, 1),
                &keys(&[
                    ("InitiatorName", "iqn.x"),
                    ("TargetName", CHAP),
                    ("AuthMethod", "CHAP"),
                    ("CHAP_N", "u"),
                    ("CHAP_R", "0x00"),
                ]),
            ),
        ),
        (
            "CHAP with an unknown algorithm",
            join(&[
                &pdu(
                    login_header(0x01, 0, 1, 1),
                    &keys(&[("InitiatorName", "iqn.x"), ("TargetName", CHAP), ("AuthMethod", "CHAP")]),
                ),
                &pdu(login_header(0x01, 0, 1, 1), &keys(&[("CHAP_A", "99")])),
            ]),
        ),
    ];
    let ffp: Vec<(&'static str, Vec<u8>)> = vec![
        ("an unknown opcode", pdu(header(0x1f, FINAL, 1, 1), &[1, 2, 3])),
        ("a target opcode", pdu(header(SCSI_RESP, FINAL, 1, 1), &[])),
        ("a SNACK", pdu(header(SNACK, FINAL, 1, 1), &[])),
        ("a login request after login", login_bytes(Some(VOL), &[], 1)),
        ("a data segment past the negotiated maximum", join(&[&big_dsl, &[0xee; 4096]])),
        ("AHS garbage", ahs_pdu),
        ("AHS longer than what follows", join(&[&ahs_lying, &[0xee; 512]])),
        ("a write past the end", cmd(WRITE, 1, 1024, 1, &write10(blocks - 1, 2), &two)),
        ("a write at LBA 2^32-1", cmd(WRITE, 1, 512, 1, &write10(u32::MAX, 1), &block)),
        ("a write with CmdSN too high", cmd(WRITE, 1, 512, 100, &write10(0, 1), &block)),
        ("a write with CmdSN too low", cmd(WRITE, 1, 512, 0, &write10(0, 1), &block)),
        ("a write with CmdSN far away", cmd(WRITE, 1, 512, 0x8000_0000, &write10(0, 1), &block)),
        ("immediate data without the W bit", cmd(READ, 1, 512, 1, &write10(0, 1), &block)),
        ("unsolicited data when InitialR2T is Yes", unsolicited_disallowed),
        ("immediate data beyond the transfer length", cmd(WRITE, 1, 100, 1, &write10(0, 1), &block)),
        (
            "a write whose Data-Out has the wrong DataSN",
            join(&[&cmd(WRITE, 1, 1024, 1, &write10(0, 2), &[]), &data_out(1, 0, 1, 0, true, &two)]),
        ),
        (
            "Data-Out for a transfer tag never issued",
            join(&[&cmd(WRITE, 1, 1024, 1, &write10(0, 2), &[]), &data_out(1, 0x1234, 0, 0, true, &two)]),
        ),
        ("Data-Out for no command", data_out(77, RESERVED, 0, 0, true, &two)),
        ("a write cut short", join(&[&cmd(WRITE, 1, 1024, 1, &write10(0, 2), &block[..100])])),
        ("a write with a partial block", cmd(WRITE, 1, 200, 1, &write10(0, 1), &block[..200])),
        (
            "two commands with one ITT",
            join(&[&cmd(WRITE, 5, 1024, 1, &write10(0, 2), &[]), &cmd(READ, 5, 512, 2, &read10(0, 1), &[])]),
        ),
        ("ITT 0xffffffff", cmd(READ, RESERVED, 512, 1, &read10(0, 1), &[])),
        ("WRITE SAME with a short block", cmd(WRITE, 1, 100, 1, &[0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0], &block[..100])),
        ("UNMAP past the end", cmd(WRITE, 1, 24, 1, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &unmap_past(blocks))),
        ("UNMAP with lying lengths", cmd(WRITE, 1, 24, 1, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &[0xff; 24])),
        ("COMPARE AND WRITE that miscompares", cmd(WRITE, 1, 1024, 1, &caw(0, 1), &[0x77; 1024])),
        ("a 32-byte CDB", cmd(WRITE, 1, 512, 1, &[0x7f, 0, 0, 0, 0, 0, 0, 0x18], &block)),
        ("NOP-Out with ping data", pdu(header(NOP_OUT | IMMEDIATE, FINAL, 9, 1), &[0xab; 300])),
        ("NOP-Out without a tag, not immediate", pdu(header(NOP_OUT, FINAL, RESERVED, 1), &[])),
        ("task management with an unknown function", pdu(header(TMF_REQ | IMMEDIATE, FINAL | 0x33, 1, 1), &[])),
        ("ABORT TASK of nothing", pdu(header(TMF_REQ | IMMEDIATE, FINAL | 1, 1, 1), &[])),
        ("LUN RESET of LUN 5", {
            let mut h = header(TMF_REQ | IMMEDIATE, FINAL | 5, 1, 1);
            h[9] = 5;
            pdu(h, &[])
        }),
        ("Text with garbage", pdu(header(TEXT_REQ | IMMEDIATE, FINAL, 1, 1), &[0xff, 0, b'x', 0])),
        ("Text continuing a tag never issued", {
            let mut h = header(TEXT_REQ | IMMEDIATE, FINAL, 1, 1);
            put32(&mut h, 20, 42);
            pdu(h, &[])
        }),
        ("Logout for recovery", pdu(header(LOGOUT_REQ | IMMEDIATE, FINAL | 2, 1, 1), &[])),
        (
            "many immediate commands",
            (0..40)
                .flat_map(|i| {
                    cmd(READ, 100 + i, 512, 1, &read10(0, 1), &[])
                        .into_iter()
                        .enumerate()
                        .map(|(j, b)| if j == 0 { b | IMMEDIATE } else { b })
                        .collect::<Vec<_>>()
                })
                .collect(),
        ),
    ];
    for (what, bytes) in ffp {
        corpus.push((what, after_login(VOL, &[], &[&bytes])));
    }
    corpus.push((
        "unsolicited data beyond FirstBurstLength",
        after_login(
            VOL,
            &[("InitialR2T", "No"), ("FirstBurstLength", "512")],
            &[&unsolicited_open_then(&unsolicited_open, &two)],
        ),
    ));
    corpus.push((
        "a bad header digest",
        after_login(
            VOL,
            &[("HeaderDigest", "CRC32C")],
            &[&pdu(header(NOP_OUT | IMMEDIATE, FINAL, 1, 1), &[]), &[0; 4]],
        ),
    ));
    corpus.push((
        "a bad data digest",
        after_login(VOL, &[("DataDigest", "CRC32C")], &[&cmd(WRITE, 1, 512, 1, &write10(0, 1), &block), &[0; 4]]),
    ));
    corpus
}

fn unsolicited_open_then(command: &[u8; 48], data: &[u8]) -> Vec<u8> {
    join(&[&pdu(*command, &[]), &data_out(1, RESERVED, 0, 0, true, data)])
}

fn unmap_past(blocks: u32) -> Vec<u8> {
    let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
    p.extend_from_slice(&u64::from(blocks - 1).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0]);
    p
}

fn caw(lba: u64, blocks: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

/// Opcodes a random session may put in a CDB for `vol`: everything that cannot change it.
const SAFE: [u8; 16] = [0x00, 0x03, 0x08, 0x12, 0x1a, 0x25, 0x28, 0x2f, 0x35, 0x5a, 0x5e, 0x88, 0x9e, 0xa0, 0xa3, 0xa8];

/// A seeded random session: a valid login (to `vol` or `ro`) of random depth, then random
/// PDUs and bytes. PDUs to `vol` never carry a command that writes; `ro` gets anything,
/// bit flips included.
pub fn random_session(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let target = if rng.below(2) == 0 { VOL } else { RO };
    let mut out = Vec::new();
    let depth = rng.below(4);
    if depth >= 1 {
        out.extend(login_bytes(Some(target), &[], 1));
    }
    if depth >= 2 {
        for i in 0..rng.below(12) {
            out.extend(random_pdu(&mut rng, target == RO, i as u32 + 1));
        }
    }
    if target == RO && depth >= 2 && rng.below(2) == 0 {
        let start = login_bytes(Some(target), &[], 1).len();
        for _ in 0..1 + rng.below(4) {
            if out.len() > start {
                let at = start + rng.below((out.len() - start) as u64) as usize;
                out[at] ^= 1 << rng.below(8);
            }
        }
    }
    out.extend((0..rng.below(300)).map(|_| rng.next() as u8));
    out
}

fn random_pdu(rng: &mut Rng, anything: bool, cmd_sn: u32) -> Vec<u8> {
    let mut h = [0u8; 48];
    for b in h.iter_mut() {
        *b = rng.next() as u8;
    }
    let opcodes = [NOP_OUT, SCSI_CMD, TMF_REQ, TEXT_REQ, DATA_OUT, LOGOUT_REQ, SNACK, LOGIN_REQ, 0x3f];
    let opcode = opcodes[rng.below(opcodes.len() as u64) as usize];
    h[0] = opcode | if rng.below(2) == 0 { IMMEDIATE } else { 0 };
    h[4] = if rng.below(8) == 0 { rng.next() as u8 & 3 } else { 0 };
    if rng.below(2) == 0 {
        put32(&mut h, 24, cmd_sn);
    }
    if opcode == SCSI_CMD && !anything {
        h[32] = SAFE[rng.below(SAFE.len() as u64) as usize];
        h[1] &= !WRITE;
    }
    let len = match rng.below(4) {
        0 => 0,
        1 => rng.below(64) as usize,
        _ => rng.below(2048) as usize,
    };
    if opcode == DATA_OUT && !anything {
        // Data-Out to `vol` can only meet commands that take none.
        put32(&mut h, 20, rng.next() as u32);
    }
    let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let mut bytes = pdu(h, &data);
    if h[4] > 0 {
        // Honour the AHS length the header claims, with random content.
        let ahs: Vec<u8> = (0..usize::from(h[4]) * 4).map(|_| rng.next() as u8).collect();
        bytes.splice(48..48, ahs);
    }
    bytes
}

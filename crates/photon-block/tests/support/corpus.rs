//! Malformed client byte streams: a hand-written corpus of broken handshakes and
//! transmissions, and seeded random sessions. Each stream starts where the client speaks
//! (its flags, right after the server's greeting). None of them may change a device: every
//! write they carry is one the server must refuse or never complete.

use photon_testkit::seeded::Rng;

use super::raw::*;

/// Client flags: fixed newstyle and no zeroes.
const FLAGS: [u8; 4] = [0, 0, 0, 3];

/// Flags then GO on `export` (with structured replies and `base:allocation` if asked).
pub fn go(export: &str, structured: bool) -> Vec<u8> {
    let mut out = FLAGS.to_vec();
    if structured {
        out.extend(option_bytes(OPT_STRUCTURED_REPLY, &[]));
        out.extend(option_bytes(OPT_SET_META_CONTEXT, &meta_payload(export, &["base:allocation"])));
    }
    out.extend(option_bytes(OPT_GO, &info_payload(export, &[])));
    out
}

fn with(mut prefix: Vec<u8>, parts: &[&[u8]]) -> Vec<u8> {
    for p in parts {
        prefix.extend_from_slice(p);
    }
    prefix
}

/// The hand-written corpus against a read-write export `vol` of `size` bytes: (what, bytes).
pub fn malformed(size: u64) -> Vec<(&'static str, Vec<u8>)> {
    let flags = FLAGS.to_vec();
    let mut huge_name = 0xffff_ffffu32.to_be_bytes().to_vec();
    huge_name.extend_from_slice(&[0, 0]);
    let mut short_count = info_payload("vol", &[]);
    let at = short_count.len() - 2;
    short_count[at..].copy_from_slice(&50u16.to_be_bytes());
    let mut many_queries = 3u32.to_be_bytes().to_vec();
    many_queries.extend_from_slice(b"vol");
    many_queries.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut long_query = meta_payload("vol", &["base:allocation"]);
    let at = 3 + 4 + 4 + 4;
    long_query[at..at + 4].copy_from_slice(&1_000_000u32.to_be_bytes());
    let req = |flags: u16, kind: u16, offset: u64, len: u32| request_bytes(flags, kind, 1, offset, len);
    let mut corpus: Vec<(&'static str, Vec<u8>)> = vec![
        ("nothing", vec![]),
        ("truncated client flags", vec![0, 0]),
        ("no fixed newstyle", with(vec![0, 0, 0, 0], &[&option_bytes(OPT_EXPORT_NAME, b"vol")])),
        ("unknown client flags", with(vec![0xff; 4], &[&option_bytes(OPT_GO, &info_payload("vol", &[]))])),
        ("oldstyle magic from the client", b"NBDMAGIC\x00\x00\x42\x02\x81\x86\x12\x53".to_vec()),
        ("bad option magic", with(flags.clone(), &[b"IHAVEOPX\0\0\0\x07\0\0\0\0"])),
        ("truncated option header", with(flags.clone(), &[b"IHAVEOPT\0\0"])),
        ("option length 4 GiB", with(flags.clone(), &[b"IHAVEOPT\0\0\0\x07\xff\xff\xff\xff"])),
        ("option length just over the limit", with(flags.clone(), &[b"IHAVEOPT\0\0\0\x03\0\x01\0\x01", &[0; 100]])),
        ("truncated option data", with(flags.clone(), &[b"IHAVEOPT\0\0\0\x07\0\0\0\x40", &[0; 10]])),
        ("GO name longer than the data", with(flags.clone(), &[&option_bytes(OPT_GO, &huge_name)])),
        ("GO request count beyond the data", with(flags.clone(), &[&option_bytes(OPT_GO, &short_count)])),
        ("GO without data", with(flags.clone(), &[&option_bytes(OPT_GO, &[])])),
        ("GO on an unknown export", with(flags.clone(), &[&option_bytes(OPT_GO, &info_payload("nope", &[]))])),
        ("INFO on an unknown export", with(flags.clone(), &[&option_bytes(OPT_INFO, &info_payload("nope", &[]))])),
        ("EXPORT_NAME unknown", with(flags.clone(), &[&option_bytes(OPT_EXPORT_NAME, b"nope")])),
        ("EXPORT_NAME not UTF-8", with(flags.clone(), &[&option_bytes(OPT_EXPORT_NAME, &[0xff, 0xfe, 0])])),
        ("LIST with data", with(flags.clone(), &[&option_bytes(OPT_LIST, b"junk")])),
        (
            "meta context before structured replies",
            with(flags.clone(), &[&option_bytes(OPT_SET_META_CONTEXT, &meta_payload("vol", &["base:allocation"]))]),
        ),
        (
            "meta context query count 2^32-1",
            with(
                flags.clone(),
                &[&option_bytes(OPT_STRUCTURED_REPLY, &[]), &option_bytes(OPT_SET_META_CONTEXT, &many_queries)],
            ),
        ),
        (
            "meta context query longer than the data",
            with(
                flags.clone(),
                &[&option_bytes(OPT_STRUCTURED_REPLY, &[]), &option_bytes(OPT_SET_META_CONTEXT, &long_query)],
            ),
        ),
        (
            "STARTTLS without TLS, then garbage",
            with(flags.clone(), &[&option_bytes(OPT_STARTTLS, &[]), b"\x16\x03\x01\x02\x00garbage"]),
        ),
        (
            "unknown options then abort",
            with(
                flags.clone(),
                &[
                    &option_bytes(0, &[]),
                    &option_bytes(4, b"x"),
                    &option_bytes(11, &[]),
                    &option_bytes(0xffff_ffff, &[1; 300]),
                    &option_bytes(OPT_ABORT, &[]),
                ],
            ),
        ),
        ("requests sent during haggling", with(flags.clone(), &[&req(0, CMD_WRITE, 0, 8), &[0xee; 8]])),
    ];
    let transmission: Vec<(&'static str, Vec<u8>)> = vec![
        ("bad request magic", b"\x25\x60\x95\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec()),
        ("extended request magic", b"\x21\xe4\x1c\x71\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x08".to_vec()),
        ("truncated request header", req(0, CMD_READ, 0, 512)[..20].to_vec()),
        ("write past the end", with(req(0, CMD_WRITE, size - 1, 4096), &[&[0xee; 4096]])),
        ("write at offset 2^64-10 (overflow)", with(req(0, CMD_WRITE, u64::MAX - 10, 512), &[&[0xee; 512]])),
        ("write of 4 GiB", with(req(0, CMD_WRITE, 0, u32::MAX), &[&[0xee; 4096]])),
        ("write just over 32 MiB", with(req(0, CMD_WRITE, 0, (32 << 20) + 1), &[&[0xee; 4096]])),
        ("write with a truncated payload", with(req(0, CMD_WRITE, 0, 4096), &[&[0xee; 100]])),
        ("write with an unknown flag", with(req(1 << 9, CMD_WRITE, 0, 512), &[&[0xee; 512]])),
        ("write with NO_HOLE (not valid for writes)", with(req(FLAG_NO_HOLE, CMD_WRITE, 0, 512), &[&[0xee; 512]])),
        ("zero-length write", req(FLAG_FUA, CMD_WRITE, 0, 0)),
        ("trim past the end", req(0, CMD_TRIM, size, 1)),
        ("trim at offset 2^64-1", req(0, CMD_TRIM, u64::MAX, 4096)),
        ("write zeroes past the end", req(0, CMD_WRITE_ZEROES, size - 512, 1024)),
        ("fast zero (refused)", req(FLAG_FAST_ZERO, CMD_WRITE_ZEROES, 0, 65536)),
        ("zero-length trim and write zeroes", with(req(0, CMD_TRIM, 0, 0), &[&req(0, CMD_WRITE_ZEROES, 0, 0)])),
        ("read past the end", req(0, CMD_READ, size - 1, 2)),
        ("read at offset 2^64-1", req(0, CMD_READ, u64::MAX, 1)),
        ("read of 4 GiB", req(0, CMD_READ, 0, u32::MAX)),
        ("zero-length read", req(0, CMD_READ, 0, 0)),
        ("unknown commands", with(req(0, 8, 0, 0), &[&req(0, 9, 0, 512), &req(0, 0xffff, 0, 0)])),
        ("block status without a context", req(0, CMD_BLOCK_STATUS, 0, 4096)),
        ("disconnect with offset and length", req(0, CMD_DISC, 77, 99)),
        ("cache past the end", req(0, CMD_CACHE, size, 4096)),
        (
            "reads then garbage",
            with(
                req(0, CMD_READ, 0, 4096),
                &[&req(0, CMD_READ, 4096, 4096), b"garbage that is long enough for a header"],
            ),
        ),
    ];
    for (what, bytes) in transmission {
        corpus.push((what, with(go("vol", false), &[&bytes])));
        corpus.push((what, with(go("vol", true), &[&bytes])));
    }
    corpus.push((
        "block status past the end (structured)",
        with(go("vol", true), &[&req(FLAG_REQ_ONE, CMD_BLOCK_STATUS, size - 1, 4096)]),
    ));
    corpus.push(("zero-length block status (structured)", with(go("vol", true), &[&req(0, CMD_BLOCK_STATUS, 0, 0)])));
    corpus
}

/// A seeded random session against `vol` (read-write, `size` bytes) or `ro` (read-only):
/// a valid prefix of random depth, then random requests and bytes. Writes to `vol` are only
/// ever out of range, so the device must not change; `ro` gets anything, bit flips included.
pub fn random_session(seed: u64, size: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Vec::new();
    let depth = rng.below(5);
    let export = if rng.below(2) == 0 { "vol" } else { "ro" };
    let structured = rng.below(2) == 0;
    match depth {
        0 => {}
        1 => out.extend_from_slice(&FLAGS),
        2 => {
            out.extend_from_slice(&FLAGS);
            let option =
                [OPT_GO, OPT_INFO, OPT_LIST, OPT_SET_META_CONTEXT, 9, 0, 12, rng.next() as u32][rng.below(8) as usize];
            let data = bytes(&mut rng, 64);
            out.extend(option_bytes(option, &data));
        }
        _ => out.extend(go(export, structured)),
    }
    if depth >= 3 {
        for _ in 0..rng.below(8) {
            out.extend(random_request(&mut rng, size, export == "ro"));
        }
    }
    if export == "ro" && depth >= 3 && rng.below(2) == 0 {
        // Flip a few bits after the handshake: anything may come of it on a read-only export.
        let start = go(export, structured).len();
        for _ in 0..1 + rng.below(4) {
            if out.len() > start {
                let at = start + rng.below((out.len() - start) as u64) as usize;
                out[at] ^= 1 << rng.below(8);
            }
        }
    }
    out.extend(bytes(&mut rng, 512));
    out
}

fn bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    (0..rng.below(max + 1)).map(|_| rng.next() as u8).collect()
}

fn random_request(rng: &mut Rng, size: u64, read_only: bool) -> Vec<u8> {
    let kinds = [CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_WRITE_ZEROES, CMD_BLOCK_STATUS];
    let kind = if rng.below(8) == 0 { rng.next() as u16 } else { kinds[rng.below(8) as usize] };
    let flags = if rng.below(2) == 0 { 0 } else { rng.next() as u16 };
    let writes = matches!(kind, CMD_WRITE | CMD_TRIM | CMD_WRITE_ZEROES);
    let offset = match rng.below(3) {
        _ if writes && !read_only => size + rng.below(u64::MAX - size),
        0 => rng.below(size),
        1 => size - rng.below(8),
        _ => rng.next(),
    };
    let len = match rng.below(3) {
        0 => rng.below(8192) as u32,
        1 => rng.next() as u32,
        _ => 0,
    };
    let mut out = request_bytes(flags, kind, rng.next(), offset, len);
    if kind == CMD_WRITE {
        out.extend(bytes(rng, u64::from(len.min(4096))));
    }
    out
}

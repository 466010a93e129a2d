//! The NBD server against real clients (nbdinfo, qemu-io, qemu-img, nbdcopy; install them with
//! scripts/setup), plain and over TLS, and against a raw client sending what real clients
//! would not: bad requests, pipelined bursts, a corpus of malformed and random sessions.

mod support;

use std::sync::Arc;
use std::time::Duration;

use photon_block::MemDevice;
use support::raw::*;
use support::{content, exports, fill, random_bytes, run, run_ok, send_session, Server, TestPki};

const MIB: usize = 1 << 20;

fn device(size: usize) -> Arc<MemDevice> {
    Arc::new(MemDevice::new(size as u64))
}

/// `nbdinfo --map` lines as (offset, length, type).
fn map(output: &str) -> Vec<(u64, u64, u32)> {
    output
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdinfo_shows_size_lists_exports_and_maps_allocation() {
    let vol = device(16 * MIB);
    let other = device(MIB);
    let server = Server::start(exports(&[("vol", &vol), ("other", &other)]), None).await;

    let info = run_ok("nbdinfo", &[&server.uri("vol")]).await;
    assert!(info.contains("export-size: 16777216"), "{info}");
    assert!(info.contains("is_read_only: false"), "{info}");
    assert!(info.contains("can_multi_conn: true"), "{info}");

    let list = run_ok("nbdinfo", &["--list", &server.uri("")]).await;
    assert!(list.contains("export=\"vol\"") && list.contains("export=\"other\""), "{list}");
    assert!(list.contains("export-size: 1048576"), "{list}");

    fill(&vol, MIB as u64, MIB, 0xab).await;
    let mapped = map(&run_ok("nbdinfo", &["--map", &server.uri("vol")]).await);
    assert_eq!(
        mapped,
        vec![(0, MIB as u64, 3), (MIB as u64, MIB as u64, 0), (2 * MIB as u64, 14 * MIB as u64, 3)],
        "holes read as zeroes (3), the written MiB as data (0)"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_writes_reads_zeroes_discards_and_flushes() {
    let vol = device(16 * MIB);
    let server = Server::start(exports(&[("vol", &vol)]), None).await;
    let uri = server.uri("vol");
    let out = run_ok(
        "qemu-io",
        &[
            "-f",
            "raw",
            &uri,
            "-c",
            "write -P 0xab 0 1M",
            "-c",
            "read -P 0xab 0 1M",
            "-c",
            "write -f -P 0xcd 1M 1M",
            "-c",
            "write -z 1M 64k",
            "-c",
            "write -z -u 1088k 64k",
            "-c",
            "read -P 0 1M 128k",
            "-c",
            "read -P 0xcd 1152k 896k",
            "-c",
            "discard 2M 64k",
            "-c",
            "write -P 0x11 3M 4k",
            "-c",
            "aio_write -P 0x22 4M 64k",
            "-c",
            "aio_write -P 0x33 5M 64k",
            "-c",
            "aio_flush",
            "-c",
            "read -P 0x22 4M 64k",
            "-c",
            "read -P 0x33 5M 64k",
            "-c",
            "flush",
        ],
    )
    .await;
    assert!(!out.contains("Pattern verification failed"), "{out}");
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(out.matches("wrote ").count(), 7, "{out}");
    assert_eq!(out.matches("read ").count(), 5, "{out}");
    assert!(out.contains("discard 65536/65536 bytes"), "{out}");

    let bytes = content(&vol).await;
    assert!(bytes[..MIB].iter().all(|&b| b == 0xab));
    assert!(bytes[MIB..MIB + 128 * 1024].iter().all(|&b| b == 0));
    assert!(bytes[MIB + 128 * 1024..2 * MIB].iter().all(|&b| b == 0xcd));
    assert!(bytes[3 * MIB..3 * MIB + 4096].iter().all(|&b| b == 0x11));
    assert!(bytes[4 * MIB..4 * MIB + 65536].iter().all(|&b| b == 0x22));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_img_and_nbdcopy_round_trip_8_mib_byte_for_byte() {
    let a = device(8 * MIB);
    let b = device(8 * MIB);
    let server = Server::start(exports(&[("a", &a), ("b", &b)]), None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut data = random_bytes(42, 8 * MIB);
    // A zero run in the middle, so sparse-aware copies skip (or zero) it.
    data[3 * MIB..4 * MIB].fill(0);
    let src = dir.path().join("src.raw");
    std::fs::write(&src, &data).unwrap();
    let src = src.to_str().unwrap();

    run_ok("qemu-img", &["convert", "-n", "-f", "raw", "-O", "raw", src, &server.uri("a")]).await;
    assert!(content(&a).await == data, "qemu-img wrote the file into the export");
    let back = dir.path().join("back.raw");
    run_ok("qemu-img", &["convert", "-f", "raw", "-O", "raw", &server.uri("a"), back.to_str().unwrap()]).await;
    assert!(std::fs::read(&back).unwrap() == data, "qemu-img read the export back");

    run_ok("nbdcopy", &[src, &server.uri("b")]).await;
    assert!(content(&b).await == data, "nbdcopy wrote the file into the export");
    let back = dir.path().join("back2.raw");
    std::fs::write(&back, b"").unwrap();
    run_ok("nbdcopy", &[&server.uri("b"), back.to_str().unwrap()]).await;
    assert!(std::fs::read(&back).unwrap() == data, "nbdcopy read the export back");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_required_and_works_with_nbdinfo_and_qemu_io() {
    let pki = TestPki::new();
    let vol = device(4 * MIB);
    fill(&vol, 0, 64 * 1024, 0x5a).await;
    let server = Server::start(exports(&[("vol", &vol)]), Some(pki.server.clone())).await;
    let port = server.addr.port();
    let dir = pki.client_dir().to_str().unwrap();

    let tls_uri = format!("nbds://127.0.0.1:{port}/vol?tls-certificates={dir}");
    let info = run_ok("nbdinfo", &[&tls_uri]).await;
    assert!(info.contains("export-size: 4194304"), "{info}");
    assert!(info.contains("with TLS"), "{info}");
    let list = run_ok("nbdinfo", &["--list", &format!("nbds://127.0.0.1:{port}/?tls-certificates={dir}")]).await;
    assert!(list.contains("export=\"vol\""), "{list}");

    let object = format!("tls-creds-x509,id=tls0,endpoint=client,dir={dir}");
    let image = format!("driver=nbd,host=127.0.0.1,port={port},export=vol,tls-creds=tls0");
    let out = run_ok(
        "qemu-io",
        &[
            "--object",
            &object,
            "--image-opts",
            &image,
            "-c",
            "read -P 0x5a 0 64k",
            "-c",
            "write -P 0x77 1M 256k",
            "-c",
            "read -P 0x77 1M 256k",
            "-c",
            "flush",
        ],
    )
    .await;
    assert!(!out.contains("Pattern verification failed") && !out.contains("failed"), "{out}");
    assert!(content(&vol).await[MIB..MIB + 256 * 1024].iter().all(|&b| b == 0x77));

    // Plaintext clients are refused: nothing but STARTTLS (and ABORT) is answered before TLS.
    let plain = run("nbdinfo", &[&server.uri("vol")]).await;
    assert!(!plain.status.success(), "{plain:?}");
    let plain = run("qemu-io", &["-f", "raw", &server.uri("vol"), "-c", "read 0 4k"]).await;
    assert!(!plain.status.success(), "{plain:?}");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("TLS negotiation required"), "{plain:?}");

    let mut raw = Raw::connect(server.addr).await;
    for option in [OPT_LIST, OPT_GO, OPT_INFO, OPT_STRUCTURED_REPLY, 42] {
        let data = if matches!(option, OPT_GO | OPT_INFO) { info_payload("vol", &[]) } else { vec![] };
        let replies = raw.option(option, &data).await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(replies[0].0, REP_ERR_TLS_REQD, "option {option}");
    }
    raw.send(&option_bytes(OPT_EXPORT_NAME, b"vol")).await;
    assert!(raw.closed_within(Duration::from_secs(5)).await, "EXPORT_NAME before TLS hangs up");

    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.option(OPT_STARTTLS, &[]).await, vec![(REP_ACK, vec![])]);
    raw.send(b"this is not a TLS ClientHello, not even close").await;
    assert!(raw.closed_within(Duration::from_secs(5)).await, "a failed TLS handshake hangs up");
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.option(OPT_ABORT, &[]).await, vec![(REP_ACK, vec![])]);
    assert!(raw.closed_within(Duration::from_secs(5)).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_export_refuses_writes_and_serves_reads() {
    let ro = Arc::new(MemDevice::read_only(4 * MIB as u64));
    let server = Server::start(exports(&[("ro", &ro)]), None).await;
    let uri = server.uri("ro");

    let info = run_ok("nbdinfo", &[&uri]).await;
    assert!(info.contains("is_read_only: true"), "{info}");
    let out = run_ok("qemu-io", &["-r", "-f", "raw", &uri, "-c", "read -P 0 0 1M"]).await;
    assert!(out.contains("read 1048576/1048576 bytes"), "{out}");
    let write = run("qemu-io", &["-f", "raw", &uri, "-c", "write -P 0xab 0 4k"]).await;
    let said = format!("{}{}", String::from_utf8_lossy(&write.stdout), String::from_utf8_lossy(&write.stderr));
    assert!(!said.contains("wrote "), "{said}");
    assert!(said.contains("Permission denied") || said.contains("read-only"), "{said}");

    // What a client that ignores NBD_FLAG_READ_ONLY gets: EPERM, for every kind of write.
    for structured in [false, true] {
        let mut raw = Raw::connect(server.addr).await;
        let (_, flags) = raw.go("ro", structured).await;
        assert_ne!(flags & TFLAG_READ_ONLY, 0);
        raw.request(FLAG_FUA, CMD_WRITE, 1, 0, 512).await;
        raw.send(&[0xab; 512]).await;
        raw.request(0, CMD_TRIM, 2, 0, 512).await;
        raw.request(0, CMD_WRITE_ZEROES, 3, 0, 512).await;
        for _ in 0..3 {
            let error = if structured { raw.chunk().await.error() } else { raw.simple_reply(0).await.0 };
            assert_eq!(error, EPERM);
        }
        raw.request(0, CMD_READ, 4, 0, 512).await;
        if structured {
            let chunk = raw.chunk().await;
            assert_eq!((chunk.kind, chunk.cookie, chunk.payload.len()), (REPLY_TYPE_OFFSET_DATA, 4, 8 + 512));
        } else {
            assert_eq!(raw.simple_reply(512).await, (0, 4, vec![0; 512]));
        }
        raw.request(0, CMD_DISC, 5, 0, 0).await;
        assert!(raw.closed_within(Duration::from_secs(5)).await);
    }
    assert!(content(&ro).await.iter().all(|&b| b == 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_requests_get_the_errors_the_spec_asks_for() {
    let size = MIB as u64;
    let vol = device(MIB);
    let server = Server::start(exports(&[("vol", &vol)]), None).await;
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.go("vol", false).await.0, size);

    let cases: [(u16, u16, u64, u32, u32); 10] = [
        (0, CMD_READ, size - 1, 2, EINVAL),
        (0, CMD_READ, u64::MAX, 1, EINVAL),
        (0, CMD_READ, 0, (32 << 20) + 1, EINVAL),
        (0, CMD_TRIM, u64::MAX - 1, 4096, EINVAL),
        (0, CMD_WRITE_ZEROES, size, 1, ENOSPC),
        (FLAG_FAST_ZERO, CMD_WRITE_ZEROES, 0, 4096, ENOTSUP),
        (FLAG_REQ_ONE, CMD_READ, 0, 4096, EINVAL),
        (0, CMD_BLOCK_STATUS, 0, 4096, EINVAL),
        (0, 8, 0, 0, EINVAL),
        (0, 0x7777, 0, 0, EINVAL),
    ];
    for (i, (flags, kind, offset, len, error)) in cases.into_iter().enumerate() {
        raw.request(flags, kind, i as u64, offset, len).await;
        assert_eq!(raw.simple_reply(0).await, (error, i as u64, vec![]), "case {i}");
    }
    raw.request(0, CMD_WRITE, 100, u64::MAX - 100, 512).await;
    raw.send(&[1; 512]).await;
    assert_eq!(raw.simple_reply(0).await.0, ENOSPC);
    for (kind, cookie) in [
        (CMD_READ, 101),
        (CMD_WRITE, 102),
        (CMD_TRIM, 103),
        (CMD_WRITE_ZEROES, 104),
        (CMD_FLUSH, 105),
        (CMD_CACHE, 106),
    ] {
        raw.request(0, kind, cookie, size, 0).await;
        assert_eq!(raw.simple_reply(0).await, (0, cookie, vec![]), "zero-length {kind} at the end");
    }
    // The connection is still good after all of that.
    raw.request(0, CMD_WRITE, 200, 4096, 4).await;
    raw.send(b"abcd").await;
    assert_eq!(raw.simple_reply(0).await.0, 0);
    raw.request(0, CMD_READ, 201, 4096, 4).await;
    assert_eq!(raw.simple_reply(4).await, (0, 201, b"abcd".to_vec()));

    // An oversized write cannot be skipped safely: the server hangs up without reading it.
    raw.request(0, CMD_WRITE, 300, 0, (32 << 20) + 1).await;
    assert!(raw.closed_within(Duration::from_secs(5)).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_replies_carry_data_errors_and_block_status() {
    let vol = device(MIB);
    fill(&vol, 8192, 4096, 0x42).await;
    let server = Server::start(exports(&[("vol", &vol)]), None).await;
    let mut raw = Raw::connect(server.addr).await;
    raw.go("vol", true).await;

    raw.request(0, CMD_READ, 1, 8192, 4096).await;
    let chunk = raw.chunk().await;
    assert_eq!((chunk.flags, chunk.kind, chunk.cookie), (1, REPLY_TYPE_OFFSET_DATA, 1));
    assert_eq!(chunk.payload[..8], 8192u64.to_be_bytes());
    assert!(chunk.payload[8..].iter().all(|&b| b == 0x42));

    raw.request(0, CMD_READ, 2, MIB as u64, 1).await;
    let chunk = raw.chunk().await;
    assert_eq!((chunk.flags, chunk.kind, chunk.error()), (1, REPLY_TYPE_ERROR, EINVAL));

    raw.request(0, CMD_READ, 3, 0, 0).await;
    let chunk = raw.chunk().await;
    assert_eq!((chunk.flags, chunk.kind, chunk.payload.len()), (1, REPLY_TYPE_NONE, 0));

    raw.request(0, CMD_BLOCK_STATUS, 4, 0, 65536).await;
    let chunk = raw.chunk().await;
    assert_eq!((chunk.flags, chunk.kind), (1, REPLY_TYPE_BLOCK_STATUS));
    let words: Vec<u32> = chunk.payload.chunks(4).map(|w| u32::from_be_bytes(w.try_into().unwrap())).collect();
    assert_eq!(words[1..], [8192, 3, 4096, 0, 65536 - 12288, 3], "hole, data, hole");

    raw.request(FLAG_REQ_ONE, CMD_BLOCK_STATUS, 5, 4096, 65536).await;
    let chunk = raw.chunk().await;
    assert_eq!(chunk.payload.len(), 4 + 8, "one extent");
    assert_eq!(chunk.payload[4..], [0, 0, 16, 0, 0, 0, 0, 3]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_all_answered_whole() {
    let vol = device(4 * MIB);
    let server = Server::start(exports(&[("vol", &vol)]), None).await;
    let mut raw = Raw::connect(server.addr).await;
    raw.go("vol", false).await;

    // 100 writes of 64 KiB in one burst, then 100 reads, then a flush: more than the server
    // keeps in flight, so TCP backpressure and the budget are exercised too.
    let block = 64 * 1024;
    let mut burst = Vec::new();
    for i in 0..100u64 {
        burst.extend(request_bytes(0, CMD_WRITE, i, (i % 64) * block as u64, block as u32));
        burst.extend(vec![(i % 64) as u8 + 1; block]);
    }
    let (mut rd, mut wr) = raw.stream.into_split();
    let sender = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        wr.write_all(&burst).await.unwrap();
        wr
    });
    let mut seen = std::collections::BTreeSet::new();
    let mut raw_rd = ReadHalfReplies(&mut rd);
    for _ in 0..100 {
        let (error, cookie) = raw_rd.simple().await;
        assert_eq!(error, 0);
        assert!(seen.insert(cookie), "cookie {cookie} answered twice");
    }
    let mut wr = sender.await.unwrap();
    let mut reads = Vec::new();
    for i in 0..64u64 {
        reads.extend(request_bytes(0, CMD_READ, 1000 + i, i * block as u64, block as u32));
    }
    reads.extend(request_bytes(0, CMD_FLUSH, 2000, 0, 0));
    tokio::io::AsyncWriteExt::write_all(&mut wr, &reads).await.unwrap();
    let mut flushed = false;
    for _ in 0..65 {
        let (error, cookie) = raw_rd.simple().await;
        assert_eq!(error, 0);
        if cookie == 2000 {
            flushed = true;
            continue;
        }
        let i = cookie - 1000;
        let data = raw_rd.data(block).await;
        assert!(data.iter().all(|&b| b == i as u8 + 1), "read {i} got its own data, whole");
    }
    assert!(flushed);
    server.stop().await;
}

/// Reads simple replies off a read half.
struct ReadHalfReplies<'a>(&'a mut tokio::net::tcp::OwnedReadHalf);

impl ReadHalfReplies<'_> {
    async fn simple(&mut self) -> (u32, u64) {
        use tokio::io::AsyncReadExt;
        assert_eq!(self.0.read_u32().await.unwrap(), SIMPLE_REPLY_MAGIC);
        (self.0.read_u32().await.unwrap(), self.0.read_u64().await.unwrap())
    }

    async fn data(&mut self, len: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut data = vec![0; len];
        self.0.read_exact(&mut data).await.unwrap();
        data
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haggling_answers_each_option_and_keeps_going() {
    let vol = device(MIB);
    let server = Server::start(exports(&[("vol", &vol), ("b", &device(MIB))]), None).await;
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.option(42, b"whatever").await[0].0, REP_ERR_UNSUP);
    assert_eq!(raw.option(OPT_STARTTLS, &[]).await[0].0, REP_ERR_POLICY);
    assert_eq!(raw.option(OPT_LIST, b"x").await[0].0, REP_ERR_INVALID);
    let list = raw.option(OPT_LIST, &[]).await;
    assert_eq!(list.iter().filter(|(k, _)| *k == REP_SERVER).count(), 2);
    assert_eq!(raw.option(OPT_GO, &info_payload("nope", &[])).await[0].0, REP_ERR_UNKNOWN);
    assert_eq!(raw.option(OPT_GO, &[0, 0, 0, 9, b'v']).await[0].0, REP_ERR_INVALID);
    let info = raw.option(OPT_INFO, &info_payload("vol", &[1, 3])).await;
    let kinds: Vec<u16> =
        info.iter().filter(|(k, _)| *k == REP_INFO).map(|(_, p)| u16::from_be_bytes([p[0], p[1]])).collect();
    assert_eq!(kinds, vec![0, 3, 1], "EXPORT, BLOCK_SIZE, NAME");
    let sizes = &info.iter().find(|(k, p)| *k == REP_INFO && p[..2] == [0, 3]).unwrap().1;
    assert_eq!(sizes[2..], [0, 0, 0, 1, 0, 0, 16, 0, 2, 0, 0, 0], "min 1, preferred 4096, max 32 MiB");
    assert_eq!(
        raw.option(OPT_SET_META_CONTEXT, &meta_payload("vol", &["base:allocation"])).await[0].0,
        REP_ERR_INVALID
    );
    // EXPORT_NAME still works after all that, with zero padding omitted as negotiated.
    raw.send(&option_bytes(OPT_EXPORT_NAME, b"vol")).await;
    let mut reply = [0u8; 10];
    tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut reply).await.unwrap();
    assert_eq!(reply[..8], (MIB as u64).to_be_bytes());
    raw.request(0, CMD_READ, 1, 0, 16).await;
    assert_eq!(raw.simple_reply(16).await, (0, 1, vec![0; 16]));

    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.option(OPT_ABORT, &[]).await[0].0, REP_ACK);
    assert!(raw.closed_within(Duration::from_secs(5)).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_sessions_and_serve_returns() {
    let vol = device(MIB);
    let server = Server::start(exports(&[("vol", &vol)]), None).await;
    let mut idle = Raw::connect(server.addr).await;
    let mut busy = Raw::connect(server.addr).await;
    busy.go("vol", false).await;
    busy.request(0, CMD_READ, 1, 0, 512).await;
    assert_eq!(busy.simple_reply(512).await.0, 0);
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(3), "sessions ended promptly");
    assert!(idle.closed_within(Duration::from_secs(1)).await);
    assert!(busy.closed_within(Duration::from_secs(1)).await);
}

/// A well-behaved client still gets served: GO, write, read back, and nbdinfo.
async fn still_serving(server: &Server) {
    let mut raw = Raw::connect(server.addr).await;
    raw.go("scratch", true).await;
    raw.request(0, CMD_WRITE, 1, 0, 4).await;
    raw.send(b"okay").await;
    assert_eq!(raw.simple_reply(0).await.0, 0);
    raw.request(0, CMD_READ, 2, 0, 4).await;
    assert_eq!(raw.chunk().await.payload[8..], *b"okay");
}

async fn robustness_server() -> (Server, Arc<MemDevice>, Arc<MemDevice>) {
    let vol = device(MIB);
    for (i, byte) in [0x11u8, 0x22, 0x33, 0x44].iter().enumerate() {
        fill(&vol, (i * 128 * 1024) as u64, 64 * 1024, *byte).await;
    }
    let ro = Arc::new(MemDevice::read_only(MIB as u64));
    let scratch = device(MIB);
    let server = Server::start(exports(&[("vol", &vol), ("ro", &ro), ("scratch", &scratch)]), None).await;
    (server, vol, ro)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sessions_change_nothing_and_break_nothing() {
    let (server, vol, ro) = robustness_server().await;
    let before = (content(&vol).await, content(&ro).await);
    for (what, bytes) in support::corpus::malformed(MIB as u64) {
        assert!(send_session(server.addr, &bytes).await, "the server closed after: {what}");
        still_serving(&server).await;
    }
    assert!((content(&vol).await, content(&ro).await) == before, "no malformed session changed a device");
    assert_eq!(support::panics(), 0);
    run_ok("nbdinfo", &[&server.uri("vol")]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_byte_streams_change_nothing_and_break_nothing() {
    let (server, vol, ro) = robustness_server().await;
    let before = (content(&vol).await, content(&ro).await);
    let sessions = photon_testkit::seeded::env_u64("NBD_RANDOM_SESSIONS", 1000);
    let seed = photon_testkit::seeded::env_u64("NBD_RANDOM_SEED", 7);
    for i in 0..sessions {
        let bytes = support::corpus::random_session(seed + i, MIB as u64);
        assert!(send_session(server.addr, &bytes).await, "seed {}: the server did not close", seed + i);
        if i % 50 == 0 {
            still_serving(&server).await;
        }
    }
    still_serving(&server).await;
    assert!((content(&vol).await, content(&ro).await) == before, "no random session changed a device");
    assert_eq!(support::panics(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_share_a_device() {
    let vol = device(8 * MIB);
    let server = Server::start(exports(&[("vol", &vol)]), None).await;
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..4u8 {
        let uri = server.uri("vol");
        clients.spawn(async move {
            let pattern = format!("0x{:x}", 0x10 + i);
            let at = format!("{}M", 2 * i as usize);
            let write = format!("write -P {pattern} {at} 2M");
            let read = format!("read -P {pattern} {at} 2M");
            run_ok("qemu-io", &["-f", "raw", &uri, "-c", &write, "-c", &read]).await
        });
    }
    while let Some(out) = clients.join_next().await {
        let out = out.unwrap();
        assert!(!out.contains("Pattern verification failed"), "{out}");
    }
    let bytes = content(&vol).await;
    for i in 0..4usize {
        assert!(bytes[2 * i * MIB..2 * (i + 1) * MIB].iter().all(|&b| b == 0x10 + i as u8));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeroed_and_trimmed_ranges_read_back_as_zeroes() {
    let vol = device(4 * MIB);
    let server = Server::start(exports(&[("vol", &vol)]), None).await;
    let mut raw = Raw::connect(server.addr).await;
    raw.go("vol", false).await;
    raw.request(FLAG_FUA, CMD_WRITE, 1, MIB as u64, MIB as u32).await;
    raw.send(&vec![0xcd; MIB]).await;
    assert_eq!(raw.simple_reply(0).await.0, 0);
    raw.request(FLAG_FUA | FLAG_NO_HOLE, CMD_WRITE_ZEROES, 2, MIB as u64, 65536).await;
    assert_eq!(raw.simple_reply(0).await.0, 0);
    raw.request(FLAG_FUA, CMD_WRITE_ZEROES, 3, MIB as u64 + 65536 + 100, 1000).await;
    assert_eq!(raw.simple_reply(0).await.0, 0);
    raw.request(FLAG_FUA, CMD_TRIM, 4, MIB as u64 + 131072, 65536).await;
    assert_eq!(raw.simple_reply(0).await.0, 0);
    let bytes = content(&vol).await;
    let region = &bytes[MIB..MIB + 262144];
    let expect: Vec<u8> = (0..262144)
        .map(|i| if i < 65536 || (65636..66636).contains(&i) || (131072..196608).contains(&i) { 0 } else { 0xcd })
        .collect();
    let first_bad = region.iter().zip(&expect).position(|(a, b)| a != b);
    assert_eq!(first_bad, None);
    server.stop().await;
}

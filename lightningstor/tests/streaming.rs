//! Streaming end to end: a 256 MiB object goes up in one PUT and comes back in one GET, and
//! the server's peak memory stays far below the object's size (at most a few chunks in memory).

mod common;

use common::Stack;

/// The peak resident memory of process `pid`, in MiB (`VmHWM`).
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_does_not_grow_with_object_size() {
    let stack = Stack::start(&[]).await;
    let pid = stack.storage.process.pid().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    let size: u64 = 256 << 20;
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        for n in 0..(size >> 20) {
            let mut block = block.clone();
            block[0] = n as u8;
            out.write_all(&block).unwrap();
        }
    }
    let before = peak_mib(pid);
    let file_arg = file.to_string_lossy().into_owned();
    let (ok, out, err) = stack.python("streaming.py", &[], &[("FILE", file_arg.as_str())]).await;
    assert!(ok && out.contains("streamed"), "{out}\n{err}");
    let peak = peak_mib(pid);
    eprintln!("lightningstor peak memory: {before} MiB before, {peak} MiB after a 256 MiB PUT and GET");
    assert!(peak < 160, "peak memory {peak} MiB grew with the 256 MiB object (before: {before} MiB)");
}

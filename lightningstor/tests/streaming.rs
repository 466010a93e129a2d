//! Streaming end to end: a 256 MiB object goes up in one PUT and comes back in one GET, and
//! the server's peak memory stays far below the object's size (at most a few chunks in memory).

mod common;

use std::path::Path;

use common::{run, Stack};

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
    let script = r#"
import hashlib, os, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], aws_access_key_id=os.environ["KEY_ID"],
    aws_secret_access_key=os.environ["SECRET"], region_name="us-east-1", verify=os.environ["S3_CA"],
    config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="stream")
with open(os.environ["FILE"], "rb") as f:
    s3.put_object(Bucket="stream", Key="big", Body=f)
want = hashlib.md5(open(os.environ["FILE"], "rb").read()).hexdigest()
got = hashlib.md5()
body = s3.get_object(Bucket="stream", Key="big")["Body"]
for piece in iter(lambda: body.read(1 << 20), b""):
    got.update(piece)
assert got.hexdigest() == want, "the object reads back byte-identical"
print("streamed")
"#;
    let ca = stack.ca.to_string_lossy().into_owned();
    let (endpoint, key) = (stack.endpoint.clone(), stack.tenant.clone());
    let file_arg = file.to_string_lossy().into_owned();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run(
            "python3",
            &["-c", script],
            &[
                ("S3_ENDPOINT", endpoint.as_str()),
                ("S3_CA", ca.as_str()),
                ("KEY_ID", key.0.as_str()),
                ("SECRET", key.1.as_str()),
                ("FILE", file_arg.as_str()),
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok && out.contains("streamed"), "{out}\n{err}");
    let peak = peak_mib(pid);
    eprintln!("lightningstor peak memory: {before} MiB before, {peak} MiB after a 256 MiB PUT and GET");
    assert!(peak < 160, "peak memory {peak} MiB grew with the 256 MiB object (before: {before} MiB)");
    assert!(Path::new(&file).exists());
}

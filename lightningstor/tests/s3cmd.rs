//! LightningStor against s3cmd, unchanged: a bucket, a small and a multipart upload, listing
//! with prefix and delimiter, a ranged download (`get --continue` resumes with a Range), a
//! server-side copy, a presigned URL (`signurl`, SigV2) fetched with curl, deletes, and the
//! errors for a missing key and a bad signature.

mod common;

use common::{data, run, Key, Stack};

struct S3cmd {
    config: tempfile::NamedTempFile,
}

impl S3cmd {
    fn new(stack: &Stack, key: &Key) -> Self {
        let config = tempfile::NamedTempFile::new().unwrap();
        let text = format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {listen}\nhost_bucket = {listen}\nuse_https = True\n\
             ca_certs_file = {}\ncheck_ssl_certificate = True\nsignature_v2 = False\nbucket_location = us-east-1\n\
             multipart_chunk_size_mb = 5\nprogress_meter = False\nsignurl_use_https = True\n",
            key.0,
            key.1,
            stack.ca.display(),
            listen = stack.listen,
        );
        std::fs::write(config.path(), text).unwrap();
        Self { config }
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let config = self.config.path().to_str().unwrap();
        let mut all = vec!["-c", config];
        all.extend_from_slice(args);
        run("s3cmd", &all, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "s3cmd {args:?} failed: {out}\n{err}");
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3cmd_works_unchanged() {
    let stack = Stack::start(&[]).await;
    let s3cmd = S3cmd::new(&stack, &stack.tenant);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("small.txt"), "hello from s3cmd").unwrap();
    let large = data(12 << 20, 5);
    std::fs::write(path("large.bin"), &large).unwrap();

    s3cmd.ok(&["mb", "s3://cmd"]);
    s3cmd.ok(&["put", &path("small.txt"), "s3://cmd/docs/small.txt"]);
    let put =
        s3cmd.ok(&["put", "--progress", "--multipart-chunk-size-mb=5", &path("large.bin"), "s3://cmd/media/large.bin"]);
    assert!(put.contains("part 3 of 3"), "a 12 MiB upload goes in 5 MiB parts: {put}");
    let top = s3cmd.ok(&["ls", "s3://cmd/"]);
    assert!(top.contains("DIR  s3://cmd/docs/") && top.contains("DIR  s3://cmd/media/"), "{top}");
    let docs = s3cmd.ok(&["ls", "s3://cmd/docs/"]);
    assert!(docs.contains("s3://cmd/docs/small.txt") && !docs.contains("large"), "{docs}");
    let info = s3cmd.ok(&["info", "s3://cmd/media/large.bin"]);
    assert!(info.contains(&format!("{}", large.len())), "{info}");

    s3cmd.ok(&["get", "s3://cmd/media/large.bin", &path("whole.bin")]);
    assert!(std::fs::read(path("whole.bin")).unwrap() == large, "the multipart object reads back byte-identical");
    // A partial local copy resumes with a ranged GET from its length.
    std::fs::write(path("partial.bin"), &large[..3_000_000]).unwrap();
    let resumed = s3cmd.ok(&["get", "--continue", "s3://cmd/media/large.bin", &path("partial.bin")]);
    assert!(std::fs::read(path("partial.bin")).unwrap() == large, "resumed download is whole: {resumed}");

    s3cmd.ok(&["cp", "s3://cmd/docs/small.txt", "s3://cmd/docs/copy.txt"]);
    s3cmd.ok(&["get", "s3://cmd/docs/copy.txt", &path("copy.txt")]);
    assert_eq!(std::fs::read_to_string(path("copy.txt")).unwrap(), "hello from s3cmd");

    let url = s3cmd.ok(&["signurl", "s3://cmd/docs/small.txt", "+300"]);
    let url = url.trim();
    assert!(url.contains("Signature="), "{url}");
    let (status, body) = stack.curl("GET", url);
    assert_eq!((status, body.as_slice()), (200, b"hello from s3cmd".as_slice()), "{url}");
    let (status, _) = stack.curl("GET", &url.replace("small.txt", "copy.txt"));
    assert_eq!(status, 403, "a presigned URL is for its own key only");

    let (ok, out, err) = s3cmd.run(&["get", "s3://cmd/docs/missing.txt", &path("missing.txt")]);
    assert!(!ok && format!("{out}{err}").contains("does not exist"), "{out}{err}");
    let forged = S3cmd::new(&stack, &(stack.tenant.0.clone(), "wrong-secret".into()));
    let (ok, out, err) = forged.run(&["ls", "s3://cmd/"]);
    assert!(!ok && format!("{out}{err}").contains("SignatureDoesNotMatch"), "{out}{err}");
    let stranger = S3cmd::new(&stack, &stack.stranger);
    let (ok, out, err) = stranger.run(&["get", "s3://cmd/docs/small.txt", &path("theirs.txt")]);
    assert!(!ok && format!("{out}{err}").contains("403"), "{out}{err}");

    s3cmd.ok(&["del", "s3://cmd/docs/copy.txt"]);
    let docs = s3cmd.ok(&["ls", "s3://cmd/docs/"]);
    assert!(!docs.contains("copy.txt"), "{docs}");
    let (ok, out, err) = s3cmd.run(&["rb", "s3://cmd"]);
    assert!(!ok && format!("{out}{err}").contains("BucketNotEmpty"), "{out}{err}");
    s3cmd.ok(&["del", "--recursive", "--force", "s3://cmd/"]);
    s3cmd.ok(&["rb", "s3://cmd"]);
    let buckets = s3cmd.ok(&["ls"]);
    assert!(!buckets.contains("s3://cmd"), "{buckets}");
}

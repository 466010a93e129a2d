//! LightningStor against rclone, unchanged: a bucket, a small and a multipart upload, listing
//! with prefix and delimiter, a ranged read (`cat --offset --count`), a server-side copy, a
//! presigned URL (`link`) fetched with curl, deletes, and the errors for a missing key and a
//! bad signature.

mod common;

use common::{data, run_raw, Key, Stack};

struct Rclone {
    env: Vec<(String, String)>,
    config: tempfile::NamedTempFile,
}

impl Rclone {
    fn new(stack: &Stack, key: &Key) -> Self {
        let env = [
            ("TYPE", "s3".to_string()),
            ("PROVIDER", "Other".into()),
            ("ACCESS_KEY_ID", key.0.clone()),
            ("SECRET_ACCESS_KEY", key.1.clone()),
            ("ENDPOINT", stack.endpoint.clone()),
            ("REGION", "us-east-1".into()),
            ("FORCE_PATH_STYLE", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("RCLONE_CONFIG_LS_{k}"), v))
        .chain([("RCLONE_CA_CERT".to_string(), stack.ca.to_string_lossy().into_owned())])
        .collect();
        Self { env, config: tempfile::NamedTempFile::new().unwrap() }
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let (ok, out, err) = self.run_raw(args);
        (ok, String::from_utf8_lossy(&out).into_owned(), err)
    }

    fn run_raw(&self, args: &[&str]) -> (bool, Vec<u8>, String) {
        let config = self.config.path().to_str().unwrap();
        let mut all = vec!["--config", config, "--retries", "1", "--low-level-retries", "1"];
        all.extend_from_slice(args);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_raw("rclone", &all, &env)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "rclone {args:?} failed: {out}\n{err}");
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_works_unchanged() {
    let stack = Stack::start(&[("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536")]).await;
    let rclone = Rclone::new(&stack, &stack.tenant);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("small.txt"), "hello from rclone").unwrap();
    let large = data(12 << 20, 9);
    std::fs::write(path("large.bin"), &large).unwrap();
    let multipart = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"];

    rclone.ok(&["mkdir", "ls:clone"]);
    rclone.ok(&["copyto", &path("small.txt"), "ls:clone/docs/small.txt"]);
    let mut args = vec!["copyto", "-vv"];
    args.extend_from_slice(&multipart);
    let large_path = path("large.bin");
    args.extend_from_slice(&[&large_path, "ls:clone/media/large.bin"]);
    let (ok, out, err) = rclone.run(&args);
    assert!(ok && err.contains("multipart upload"), "a 12 MiB upload goes multipart: {out}{err}");
    let top = rclone.ok(&["lsf", "ls:clone"]);
    assert_eq!(top.lines().collect::<Vec<_>>(), ["docs/", "media/"], "{top}");
    let docs = rclone.ok(&["lsf", "ls:clone/docs"]);
    assert_eq!(docs.trim(), "small.txt");
    let sizes = rclone.ok(&["ls", "ls:clone"]);
    assert!(sizes.contains(&format!("{} media/large.bin", large.len())), "{sizes}");

    rclone.ok(&["copyto", "ls:clone/media/large.bin", &path("whole.bin")]);
    assert!(std::fs::read(path("whole.bin")).unwrap() == large, "the multipart object reads back byte-identical");
    let (ok, range, err) = rclone.run_raw(&["cat", "--offset", "65530", "--count", "16", "ls:clone/media/large.bin"]);
    assert!(ok, "{err}");
    assert_eq!(range, &large[65530..65546], "a range across a chunk boundary");
    // rclone checks every transfer against the object's MD5 (its ETag for single parts).
    let local = dir.path().to_str().unwrap();
    rclone.ok(&["check", "--one-way", "--include", "small.txt", local, "ls:clone/docs"]);

    rclone.ok(&["copyto", "ls:clone/docs/small.txt", "ls:clone/docs/copy.txt"]);
    assert_eq!(rclone.ok(&["cat", "ls:clone/docs/copy.txt"]), "hello from rclone");

    let url = rclone.ok(&["link", "--expire", "5m", "ls:clone/docs/small.txt"]);
    let (status, body) = stack.curl("GET", url.trim());
    assert_eq!((status, body.as_slice()), (200, b"hello from rclone".as_slice()), "{url}");

    // rclone reads a HEAD's 404 (NoSuchKey) as "no such object here, maybe a directory"; any
    // other answer (403, 500, a malformed body) fails the command.
    let stat: serde_json::Value =
        serde_json::from_str(&rclone.ok(&["lsjson", "--stat", "ls:clone/docs/small.txt"])).unwrap();
    assert_eq!((stat["IsDir"].as_bool(), stat["Size"].as_u64()), (Some(false), Some(17)), "{stat}");
    let stat: serde_json::Value =
        serde_json::from_str(&rclone.ok(&["lsjson", "--stat", "ls:clone/docs/missing.txt"])).unwrap();
    assert_eq!(stat["IsDir"], true, "{stat}");
    let (ok, out, err) = rclone.run(&["copyto", "--error-on-no-transfer", "ls:clone/docs/missing.txt", &path("x")]);
    assert!(!ok && !std::path::Path::new(&path("x")).exists(), "{out}{err}");
    let forged = Rclone::new(&stack, &(stack.tenant.0.clone(), "wrong-secret".into()));
    let (ok, out, err) = forged.run(&["lsf", "ls:clone"]);
    assert!(!ok && format!("{out}{err}").contains("SignatureDoesNotMatch"), "{out}{err}");
    let stranger = Rclone::new(&stack, &stack.stranger);
    let (ok, out, err) = stranger.run(&["cat", "ls:clone/docs/small.txt"]);
    assert!(!ok && format!("{out}{err}").contains("AccessDenied"), "{out}{err}");

    rclone.ok(&["deletefile", "ls:clone/docs/copy.txt"]);
    assert_eq!(rclone.ok(&["lsf", "ls:clone/docs"]).trim(), "small.txt");
    rclone.ok(&["purge", "ls:clone"]);
    let buckets = rclone.ok(&["lsd", "ls:"]);
    assert!(!buckets.contains("clone"), "{buckets}");
}

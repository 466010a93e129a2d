//! LightningStor against aws-cli (`s3api` and `s3`), a real S3 client nobody here wrote:
//! buckets, objects, listing with prefix and delimiter, ranged reads, metadata, deletes; S3
//! errors for a missing key, a bad signature and another project's key (tenant isolation);
//! copies (UploadPartCopy too), a presigned GET through curl, DeleteObjects.
//! Behind it: real chainfire, flaredb and IAM processes; LightningStor acts as a service account.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Key, Stack};

struct Aws<'a> {
    endpoint: String,
    ca: std::path::PathBuf,
    config: &'a Path,
}

impl Aws<'_> {
    fn run(&self, key: &Key, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("aws")
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &key.0)
            .env("AWS_SECRET_ACCESS_KEY", &key.1)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CA_BUNDLE", &self.ca)
            .env("AWS_CONFIG_FILE", self.config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("aws runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, key: &Key, args: &[&str]) -> String {
        let (ok, out, err) = self.run(key, args);
        assert!(ok, "aws {args:?} failed: {err}");
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_buckets_objects_listing_ranges_and_errors() {
    let stack = Stack::start(&[("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536")]).await;
    let (tenant, stranger) = (stack.tenant.clone(), stack.stranger.clone());
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[default]\ns3 =\n    addressing_style = path\n").unwrap();
    let aws = Aws { endpoint: stack.endpoint.clone(), ca: stack.ca.clone(), config: config.path() };

    aws.ok(&tenant, &["s3api", "create-bucket", "--bucket", "photos"]);
    let (ok, _, err) = aws.run(&tenant, &["s3api", "create-bucket", "--bucket", "photos"]);
    assert!(!ok && err.contains("BucketAlreadyOwnedByYou"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.txt");
    std::fs::write(&small, "hello, lightningstor").unwrap();
    let big = dir.path().join("big.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    let put = aws.ok(
        &tenant,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "photos",
            "--key",
            "notes/a.txt",
            "--body",
            small.to_str().unwrap(),
            "--content-type",
            "text/plain",
            "--metadata",
            "owner=alice",
        ],
    );
    assert!(put.contains("ETag"), "{put}");
    aws.ok(&tenant, &["s3", "cp", big.to_str().unwrap(), "s3://photos/raw/big.bin"]);
    aws.ok(&tenant, &["s3", "cp", small.to_str().unwrap(), "s3://photos/top.txt"]);

    let listed: serde_json::Value =
        serde_json::from_str(&aws.ok(&tenant, &["s3api", "list-objects-v2", "--bucket", "photos", "--delimiter", "/"]))
            .unwrap();
    let prefixes: Vec<&str> =
        listed["CommonPrefixes"].as_array().unwrap().iter().map(|p| p["Prefix"].as_str().unwrap()).collect();
    assert_eq!(prefixes, ["notes/", "raw/"], "{listed}");
    assert_eq!(listed["Contents"][0]["Key"], "top.txt");
    let within: serde_json::Value =
        serde_json::from_str(&aws.ok(&tenant, &["s3api", "list-objects-v2", "--bucket", "photos", "--prefix", "raw/"]))
            .unwrap();
    assert_eq!(within["Contents"][0]["Size"], 300_000, "{within}");
    let everything = aws.ok(&tenant, &["s3", "ls", "--recursive", "s3://photos/"]);
    assert_eq!(everything.lines().count(), 3, "{everything}");

    let out = dir.path().join("out.bin");
    aws.ok(&tenant, &["s3", "cp", "s3://photos/raw/big.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), data, "the big object reads back byte-identical");
    let part = dir.path().join("part.bin");
    aws.ok(
        &tenant,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "photos",
            "--key",
            "raw/big.bin",
            "--range",
            "bytes=65530-65545",
            part.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&part).unwrap(), &data[65530..=65545], "a range across a chunk boundary");
    let head: serde_json::Value =
        serde_json::from_str(&aws.ok(&tenant, &["s3api", "head-object", "--bucket", "photos", "--key", "notes/a.txt"]))
            .unwrap();
    assert_eq!(
        (head["ContentType"].as_str(), head["Metadata"]["owner"].as_str()),
        (Some("text/plain"), Some("alice")),
        "{head}"
    );
    assert_eq!(head["ContentLength"], 20);

    // Multipart: aws s3 cp splits 20 MiB into 8 MiB parts; the object reads back whole with
    // S3's multipart ETag.
    let huge = dir.path().join("huge.bin");
    let huge_data: Vec<u8> = (0..20u32 << 20).map(|i| (i % 253) as u8 ^ (i >> 16) as u8).collect();
    std::fs::write(&huge, &huge_data).unwrap();
    aws.ok(&tenant, &["s3", "cp", huge.to_str().unwrap(), "s3://photos/raw/huge.bin"]);
    let head: serde_json::Value = serde_json::from_str(
        &aws.ok(&tenant, &["s3api", "head-object", "--bucket", "photos", "--key", "raw/huge.bin"]),
    )
    .unwrap();
    assert!(head["ETag"].as_str().unwrap().ends_with("-3\""), "{head}");
    let back = dir.path().join("huge.out");
    aws.ok(&tenant, &["s3", "cp", "s3://photos/raw/huge.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == huge_data, "the multipart object reads back byte-identical");
    // A part under 5 MiB that is not the last is refused at completion; abort cleans up.
    let upload: serde_json::Value = serde_json::from_str(
        &aws.ok(&tenant, &["s3api", "create-multipart-upload", "--bucket", "photos", "--key", "tiny-parts"]),
    )
    .unwrap();
    let id = upload["UploadId"].as_str().unwrap().to_string();
    let mut parts = Vec::new();
    for n in ["1", "2"] {
        let part: serde_json::Value = serde_json::from_str(&aws.ok(
            &tenant,
            &[
                "s3api",
                "upload-part",
                "--bucket",
                "photos",
                "--key",
                "tiny-parts",
                "--upload-id",
                &id,
                "--part-number",
                n,
                "--body",
                small.to_str().unwrap(),
            ],
        ))
        .unwrap();
        parts.push(format!("{{\"PartNumber\":{n},\"ETag\":{}}}", part["ETag"]));
    }
    let listed =
        aws.ok(&tenant, &["s3api", "list-parts", "--bucket", "photos", "--key", "tiny-parts", "--upload-id", &id]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&listed).unwrap()["Parts"].as_array().unwrap().len(), 2);
    let layout = format!("{{\"Parts\":[{}]}}", parts.join(","));
    let (ok, _, err) = aws.run(
        &tenant,
        &[
            "s3api",
            "complete-multipart-upload",
            "--bucket",
            "photos",
            "--key",
            "tiny-parts",
            "--upload-id",
            &id,
            "--multipart-upload",
            &layout,
        ],
    );
    assert!(!ok && err.contains("EntityTooSmall"), "{err}");
    let pending = aws.ok(&tenant, &["s3api", "list-multipart-uploads", "--bucket", "photos"]);
    assert!(pending.contains(&id), "{pending}");
    aws.ok(
        &tenant,
        &["s3api", "abort-multipart-upload", "--bucket", "photos", "--key", "tiny-parts", "--upload-id", &id],
    );
    let (ok, _, err) =
        aws.run(&tenant, &["s3api", "list-parts", "--bucket", "photos", "--key", "tiny-parts", "--upload-id", &id]);
    assert!(!ok && err.contains("NoSuchUpload"), "{err}");

    // Copies: one object with its metadata, and a large one through UploadPartCopy (aws s3 cp
    // copies over 8 MiB in parts on the server).
    aws.ok(
        &tenant,
        &["s3api", "copy-object", "--bucket", "photos", "--key", "notes/b.txt", "--copy-source", "photos/notes/a.txt"],
    );
    let head: serde_json::Value =
        serde_json::from_str(&aws.ok(&tenant, &["s3api", "head-object", "--bucket", "photos", "--key", "notes/b.txt"]))
            .unwrap();
    assert_eq!(head["Metadata"]["owner"], "alice", "{head}");
    aws.ok(&tenant, &["s3", "cp", "s3://photos/raw/huge.bin", "s3://photos/copy/huge.bin"]);
    let copied = dir.path().join("copied.bin");
    aws.ok(&tenant, &["s3", "cp", "s3://photos/copy/huge.bin", copied.to_str().unwrap()]);
    assert!(std::fs::read(&copied).unwrap() == huge_data, "the server-side copy is byte-identical");

    // A presigned GET fetched with curl.
    let url = aws.ok(&tenant, &["s3", "presign", "s3://photos/notes/a.txt", "--expires-in", "300"]);
    let (status, body) = stack.curl("GET", url.trim());
    assert_eq!((status, body.as_slice()), (200, b"hello, lightningstor".as_slice()), "{url}");

    // DeleteObjects.
    let batch = r#"{"Objects":[{"Key":"notes/b.txt"},{"Key":"copy/huge.bin"}]}"#;
    let deleted = aws.ok(&tenant, &["s3api", "delete-objects", "--bucket", "photos", "--delete", batch]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&deleted).unwrap()["Deleted"].as_array().unwrap().len(), 2);
    let rest = aws.ok(&tenant, &["s3", "ls", "--recursive", "s3://photos/"]);
    assert!(!rest.contains("notes/b.txt") && !rest.contains("copy/huge.bin"), "{rest}");

    // S3 errors a client understands.
    let (ok, _, err) = aws.run(&tenant, &["s3api", "head-object", "--bucket", "photos", "--key", "missing"]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) =
        aws.run(&tenant, &["s3api", "get-object", "--bucket", "photos", "--key", "missing", out.to_str().unwrap()]);
    assert!(!ok && err.contains("NoSuchKey"), "{err}");
    let forged = (tenant.0.clone(), "not-the-secret".to_string());
    let (ok, _, err) = aws.run(&forged, &["s3api", "list-objects-v2", "--bucket", "photos"]);
    assert!(!ok && err.contains("SignatureDoesNotMatch"), "{err}");
    for args in [
        vec!["s3api", "list-objects-v2", "--bucket", "photos"],
        vec!["s3api", "get-object", "--bucket", "photos", "--key", "top.txt", out.to_str().unwrap()],
        vec!["s3api", "delete-object", "--bucket", "photos", "--key", "top.txt"],
        vec!["s3api", "put-object", "--bucket", "photos", "--key", "x", "--body", small.to_str().unwrap()],
        vec!["s3api", "delete-bucket", "--bucket", "photos"],
    ] {
        let (ok, _, err) = aws.run(&stranger, &args);
        assert!(!ok && err.contains("AccessDenied"), "another project's key: {args:?}: {err}");
    }
    let theirs = aws.ok(&stranger, &["s3api", "list-buckets"]);
    assert!(!theirs.contains("photos"), "{theirs}");

    // Deletes: a bucket with objects is refused; emptied, it goes.
    let (ok, _, err) = aws.run(&tenant, &["s3api", "delete-bucket", "--bucket", "photos"]);
    assert!(!ok && err.contains("BucketNotEmpty"), "{err}");
    aws.ok(&tenant, &["s3", "rm", "--recursive", "s3://photos/"]);
    aws.ok(&tenant, &["s3api", "delete-bucket", "--bucket", "photos"]);
    let (ok, _, err) = aws.run(&tenant, &["s3api", "head-bucket", "--bucket", "photos"]);
    assert!(!ok && err.contains("404"), "{err}");
}

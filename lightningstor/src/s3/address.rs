//! Which bucket and key a request names: path style (`/bucket/key`) or virtual-host style
//! (`bucket.<s3 domain>/key`), with S3's rules for bucket names.

use super::error::S3Error;

/// A request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `GET /`: the caller's buckets.
    Service,
    Bucket(String),
    Object {
        bucket: String,
        key: String,
    },
}

/// S3's bucket naming rules: 3–63 characters of lowercase letters, digits, `.` and `-`,
/// starting and ending with a letter or digit, no `..`, not an IP address.
pub fn validate_bucket(name: &str) -> Result<(), S3Error> {
    let bad = |why: &str| S3Error::invalid_bucket_name(format!("bucket name {name:?} {why}"));
    if !(3..=63).contains(&name.len()) {
        return Err(bad("must be 3 to 63 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Err(bad("may hold only lowercase letters, digits, '.' and '-'"));
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(name.as_bytes()[0]) || !edge(name.as_bytes()[name.len() - 1]) {
        return Err(bad("must start and end with a letter or digit"));
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err(bad("must not contain '..', '.-' or '-.'"));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(bad("must not be an IP address"));
    }
    Ok(())
}

/// An object key: at most 1024 bytes of UTF-8, without NUL (metadata keys use it as a
/// separator).
pub fn validate_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() {
        return Err(S3Error::invalid_argument("the key is empty"));
    }
    if key.len() > 1024 {
        return Err(S3Error::key_too_long(format!("the key is {} bytes; the limit is 1024", key.len())));
    }
    if key.contains('\0') {
        return Err(S3Error::invalid_argument("the key contains a NUL character"));
    }
    Ok(())
}

/// Percent-decodes a path segment (keys may hold any UTF-8).
pub fn decode(text: &str) -> Result<String, S3Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = hex.ok_or_else(|| S3Error::invalid_argument(format!("bad percent-encoding in {text:?}")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| S3Error::invalid_argument("the key is not UTF-8"))
}

/// The bucket a virtual-host-style request to `host` (`<bucket>.<domain>[:port]`) names.
pub fn virtual_bucket(host: &str, domain: &str) -> Option<String> {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    if domain.is_empty() {
        return None;
    }
    host.strip_suffix(domain).and_then(|b| b.strip_suffix('.')).filter(|b| !b.is_empty()).map(str::to_string)
}

/// The target of a request to `host` (without port) with raw `path`; `domain` is the S3
/// endpoint's own domain for virtual-host style (empty: path style only).
pub fn target(host: &str, path: &str, domain: &str) -> Result<Target, S3Error> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = match virtual_bucket(host, domain) {
        Some(bucket) => (bucket.to_string(), path.to_string()),
        None => match path.split_once('/') {
            Some((bucket, key)) => (bucket.to_string(), key.to_string()),
            None => (path.to_string(), String::new()),
        },
    };
    if bucket.is_empty() {
        return Ok(Target::Service);
    }
    let bucket = decode(&bucket)?;
    validate_bucket(&bucket)?;
    if key.is_empty() {
        return Ok(Target::Bucket(bucket));
    }
    let key = decode(&key)?;
    validate_key(&key)?;
    Ok(Target::Object { bucket, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_virtual_host_styles() {
        let domain = "s3.photon.test";
        assert_eq!(target("127.0.0.1:9000", "/", domain).unwrap(), Target::Service);
        assert_eq!(target("127.0.0.1", "/photos", domain).unwrap(), Target::Bucket("photos".into()));
        assert_eq!(target("127.0.0.1", "/photos/", domain).unwrap(), Target::Bucket("photos".into()));
        assert_eq!(
            target("127.0.0.1", "/photos/2024/a%20b.jpg", domain).unwrap(),
            Target::Object { bucket: "photos".into(), key: "2024/a b.jpg".into() }
        );
        assert_eq!(
            target("photos.s3.photon.test:9000", "/2024/x", domain).unwrap(),
            Target::Object { bucket: "photos".into(), key: "2024/x".into() }
        );
        assert_eq!(target("photos.s3.photon.test", "/", domain).unwrap(), Target::Bucket("photos".into()));
        assert_eq!(target("s3.photon.test", "/photos", domain).unwrap(), Target::Bucket("photos".into()));
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket.2024", "a1b"] {
            assert!(validate_bucket(good).is_ok(), "{good}");
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a..b", "a.-b", "192.168.1.1", &"a".repeat(64), "a_b"] {
            let e = validate_bucket(bad).unwrap_err();
            assert_eq!(e.code, "InvalidBucketName", "{bad}");
        }
        assert_eq!(target("h", "/ok-bucket/%zz", "").unwrap_err().code, "InvalidArgument");
        assert_eq!(target("h", &format!("/ok-bucket/{}", "k".repeat(1025)), "").unwrap_err().code, "KeyTooLongError");
        assert_eq!(target("h", "/ok-bucket/a%00b", "").unwrap_err().code, "InvalidArgument");
    }
}

//! Bucket policies, the subset LightningStor supports, and the operations requests are
//! authorized as (`Op`: IAM's action and S3's).
//!
//! A policy is S3's JSON: `Statement`s with `Effect` (`Allow`/`Deny`), `Principal` (`"*"` or
//! `{"AWS": ...}` naming PhotonCloud principals such as `sa:acme/web/app` or `user:alice`),
//! `Action` (`s3:GetObject`, wildcards allowed) and `Resource` (`arn:aws:s3:::<this bucket>`
//! or `arn:aws:s3:::<this bucket>/<key pattern>`). `Condition`, `NotPrincipal`, `NotAction`
//! and `NotResource` are refused rather than ignored, so a policy never means less than it says.
//!
//! Decision: a matching `Deny` refuses the request whoever asks (the owner included); else a
//! matching `Allow` grants it, to anonymous callers too when the principal is `"*"` (public
//! read); else IAM decides for signed callers and anonymous ones are refused.

use serde_json::Value;

use super::error::S3Error;

/// What a request does: the IAM action asked about and the S3 action a policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub iam: &'static str,
    pub s3: &'static str,
}

impl Op {
    pub const CREATE_BUCKET: Op = Op { iam: "lightningstor:buckets:create", s3: "s3:CreateBucket" };
    pub const HEAD_BUCKET: Op = Op { iam: "lightningstor:buckets:get", s3: "s3:ListBucket" };
    pub const GET_BUCKET_LOCATION: Op = Op { iam: "lightningstor:buckets:get", s3: "s3:GetBucketLocation" };
    pub const DELETE_BUCKET: Op = Op { iam: "lightningstor:buckets:delete", s3: "s3:DeleteBucket" };
    pub const GET_VERSIONING: Op = Op { iam: "lightningstor:buckets:get", s3: "s3:GetBucketVersioning" };
    pub const PUT_VERSIONING: Op = Op { iam: "lightningstor:buckets:configure", s3: "s3:PutBucketVersioning" };
    pub const GET_POLICY: Op = Op { iam: "lightningstor:buckets:get", s3: "s3:GetBucketPolicy" };
    pub const PUT_POLICY: Op = Op { iam: "lightningstor:buckets:configure", s3: "s3:PutBucketPolicy" };
    pub const DELETE_POLICY: Op = Op { iam: "lightningstor:buckets:configure", s3: "s3:DeleteBucketPolicy" };
    pub const LIST_OBJECTS: Op = Op { iam: "lightningstor:objects:list", s3: "s3:ListBucket" };
    pub const LIST_VERSIONS: Op = Op { iam: "lightningstor:objects:list", s3: "s3:ListBucketVersions" };
    pub const LIST_UPLOADS: Op = Op { iam: "lightningstor:objects:list", s3: "s3:ListBucketMultipartUploads" };
    pub const LIST_PARTS: Op = Op { iam: "lightningstor:objects:list", s3: "s3:ListMultipartUploadParts" };
    pub const GET_OBJECT: Op = Op { iam: "lightningstor:objects:get", s3: "s3:GetObject" };
    pub const GET_OBJECT_VERSION: Op = Op { iam: "lightningstor:objects:get", s3: "s3:GetObjectVersion" };
    pub const PUT_OBJECT: Op = Op { iam: "lightningstor:objects:put", s3: "s3:PutObject" };
    pub const DELETE_OBJECT: Op = Op { iam: "lightningstor:objects:delete", s3: "s3:DeleteObject" };
    pub const DELETE_OBJECT_VERSION: Op = Op { iam: "lightningstor:objects:delete", s3: "s3:DeleteObjectVersion" };
    pub const ABORT_UPLOAD: Op = Op { iam: "lightningstor:objects:delete", s3: "s3:AbortMultipartUpload" };
}

/// The largest policy accepted (S3's limit).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Deny,
    Allow,
    /// The policy says nothing about it.
    Silent,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    allow: bool,
    /// `None`: everyone (`"*"`), anonymous callers included.
    principals: Option<Vec<String>>,
    actions: Vec<String>,
    resources: Vec<String>,
}

/// A parsed bucket policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// One string or a list of strings (`"s3:GetObject"` or `["s3:GetObject", ...]`).
fn strings(value: &Value, field: &str) -> Result<Vec<String>, S3Error> {
    let bad = || S3Error::malformed_policy(format!("{field} must be a string or a list of strings"));
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(bad)).collect::<Result<_, _>>()?
        }
        _ => return Err(bad()),
    };
    if list.is_empty() {
        return Err(bad());
    }
    Ok(list)
}

fn statement(value: &Value, bucket: &str) -> Result<Statement, S3Error> {
    let fields = value.as_object().ok_or_else(|| S3Error::malformed_policy("each Statement must be an object"))?;
    for key in fields.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Resource" => {}
            "Condition" | "NotPrincipal" | "NotAction" | "NotResource" => {
                return Err(S3Error::malformed_policy(format!("{key} is not supported in bucket policies here")))
            }
            other => return Err(S3Error::malformed_policy(format!("unknown field {other:?} in a Statement"))),
        }
    }
    let allow = match fields.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err(S3Error::malformed_policy("Effect must be \"Allow\" or \"Deny\"")),
    };
    let principals = match fields.get("Principal") {
        Some(Value::String(s)) if s == "*" => None,
        Some(Value::Object(map)) if map.len() == 1 && map.contains_key("AWS") => {
            let names = strings(&map["AWS"], "Principal.AWS")?;
            if names.iter().any(|n| n == "*") {
                None
            } else {
                Some(names)
            }
        }
        _ => return Err(S3Error::malformed_policy("Principal must be \"*\" or {\"AWS\": <principal or list>}")),
    };
    let actions = strings(fields.get("Action").unwrap_or(&Value::Null), "Action")?;
    if let Some(bad) = actions.iter().find(|a| !a.starts_with("s3:") && a.as_str() != "*") {
        return Err(S3Error::malformed_policy(format!("action {bad:?} is not an s3: action")));
    }
    let resources = strings(fields.get("Resource").unwrap_or(&Value::Null), "Resource")?;
    let own = format!("arn:aws:s3:::{bucket}");
    if let Some(bad) = resources.iter().find(|r| **r != own && !r.starts_with(&format!("{own}/"))) {
        return Err(S3Error::malformed_policy(format!("resource {bad:?} is not this bucket ({own}) or its objects")));
    }
    Ok(Statement { allow, principals, actions, resources })
}

/// `*` matches any run of characters, `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Policy {
    /// `text` as a policy of `bucket`, or MalformedPolicy naming what is wrong.
    pub fn parse(text: &str, bucket: &str) -> Result<Self, S3Error> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(S3Error::malformed_policy(format!("the policy is over {MAX_POLICY_BYTES} bytes")));
        }
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| S3Error::malformed_policy(format!("the policy is not JSON: {e}")))?;
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.iter().map(|s| statement(s, bucket)).collect::<Result<Vec<_>, _>>()?,
            Some(one @ Value::Object(_)) => vec![statement(one, bucket)?],
            _ => return Err(S3Error::malformed_policy("the policy has no Statement")),
        };
        if statements.is_empty() {
            return Err(S3Error::malformed_policy("the policy's Statement list is empty"));
        }
        if let Some(version) = doc.get("Version") {
            if !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17")) {
                return Err(S3Error::malformed_policy("Version must be \"2012-10-17\" or \"2008-10-17\""));
            }
        }
        Ok(Self { statements })
    }

    /// What the policy says about `principal` (`None`: anonymous) doing `action` on `arn`.
    pub fn decide(&self, principal: Option<&str>, action: &str, arn: &str) -> Decision {
        let mut decision = Decision::Silent;
        for s in &self.statements {
            let who = match (&s.principals, principal) {
                (None, _) => true,
                (Some(names), Some(p)) => names.iter().any(|n| n == p),
                (Some(_), None) => false,
            };
            let matches = who && s.actions.iter().any(|a| glob(a, action)) && s.resources.iter().any(|r| glob(r, arn));
            if matches {
                if !s.allow {
                    return Decision::Deny;
                }
                decision = Decision::Allow;
            }
        }
        decision
    }
}

/// The ARN a policy names for `bucket` or one of its objects.
pub fn arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_READ: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"public","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"},
        {"Effect":"Deny","Principal":{"AWS":["sa:acme/web/intern"]},"Action":["s3:*"],"Resource":["arn:aws:s3:::site","arn:aws:s3:::site/*"]}]}"#;

    #[test]
    fn public_read_and_deny_by_principal() {
        let policy = Policy::parse(PUBLIC_READ, "site").unwrap();
        let object = arn("site", Some("index.html"));
        assert_eq!(policy.decide(None, "s3:GetObject", &object), Decision::Allow);
        assert_eq!(policy.decide(None, "s3:PutObject", &object), Decision::Silent);
        assert_eq!(policy.decide(None, "s3:ListBucket", &arn("site", None)), Decision::Silent);
        assert_eq!(policy.decide(Some("sa:acme/web/app"), "s3:GetObject", &object), Decision::Allow);
        assert_eq!(policy.decide(Some("sa:acme/web/intern"), "s3:GetObject", &object), Decision::Deny);
        assert_eq!(policy.decide(Some("sa:acme/web/intern"), "s3:ListBucket", &arn("site", None)), Decision::Deny);
    }

    #[test]
    fn malformed_policies_name_the_problem() {
        let cases = [
            ("not json", "not JSON"),
            (r#"{"Statement":[]}"#, "empty"),
            (
                r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#,
                "Effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
                "not this bucket",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ec2:Run","Resource":"arn:aws:s3:::site/*"}]}"#,
                "not an s3: action",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*","Condition":{}}]}"#,
                "Condition",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":7},"Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}}"#,
                "Principal.AWS",
            ),
        ];
        for (text, why) in cases {
            let e = Policy::parse(text, "site").unwrap_err();
            assert_eq!(e.code, "MalformedPolicy");
            assert!(e.message.contains(why), "{text}: {}", e.message);
        }
        assert!(Policy::parse(&format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_POLICY_BYTES)), "site").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("s3:Get*", "s3:GetObject"));
        assert!(glob("arn:aws:s3:::b/photos/*.jpg", "arn:aws:s3:::b/photos/2024/a.jpg"));
        assert!(!glob("arn:aws:s3:::b/photos/*", "arn:aws:s3:::b/docs/a"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
    }
}

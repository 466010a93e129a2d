//! Bucket and object metadata in flaredb (`flaredb_client::records`):
//! - `bucket/<name>`: a bucket (its project, versioning state and policy);
//! - `obj/<bucket>/<key>`: the current version of an object (perhaps a delete marker);
//! - `ver/<bucket>/<key>\0<version id>`: its noncurrent versions (versioned buckets).
//!
//! A small object's data lives in its current record itself (`Object::inline`).
//!
//! An object becomes visible when its current record is written, which happens only after every
//! chunk of its data is durable; a replaced version is archived under `ver/` first (versioned
//! buckets) or its chunks removed after (unversioned), so a crash between the two steps leaves a
//! duplicate record, never a lost version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chunks::ChunkRef;

mod record;

/// The version id of objects written while versioning was never enabled or is suspended.
pub const NULL_VERSION: &str = "null";

/// A bucket's versioning state (S3's three).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub name: String,
    pub org: String,
    pub project: String,
    pub created_ms: i64,
    /// The principal that created it.
    pub owner: String,
    #[serde(default)]
    pub versioning: Versioning,
    /// The bucket policy as the owner gave it (JSON); `crate::s3::policy` reads it.
    #[serde(default)]
    pub policy: Option<String>,
}

flaredb_client::json_record!(Bucket);

impl Bucket {
    /// The resource path IAM decides on.
    pub fn resource(&self) -> String {
        format!("orgs/{}/projects/{}/buckets/{}", self.org, self.project, self.name)
    }
}

fn null_version() -> String {
    NULL_VERSION.to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// Hex MD5 of the data (S3's ETag for single-part objects).
    pub etag: String,
    pub content_type: String,
    /// Headers kept as given: `x-amz-meta-*`, cache-control, content-disposition,
    /// content-encoding, content-language, expires.
    pub headers: BTreeMap<String, String>,
    pub modified_ms: i64,
    pub chunks: Vec<ChunkRef>,
    /// The data itself, for an object small enough to live in its record (`chunks` is then
    /// empty); RocksDB's block checksums and Raft's replication guard it as chunks' own guard
    /// them. Records of the JSON form never carry it.
    #[serde(skip)]
    pub inline: Option<bytes::Bytes>,
    #[serde(default = "null_version")]
    pub version_id: String,
    /// A delete marker: the key reads as absent while this is its current version.
    #[serde(default)]
    pub delete_marker: bool,
}

impl Object {
    /// A delete marker for `key`.
    pub fn marker(key: &str, modified_ms: i64) -> Self {
        Self {
            key: key.to_string(),
            size: 0,
            etag: String::new(),
            content_type: String::new(),
            headers: BTreeMap::new(),
            modified_ms,
            chunks: Vec::new(),
            inline: None,
            version_id: null_version(),
            delete_marker: true,
        }
    }
}

/// An object record as a listing reads it: the head of the stored form (`record`); the key is
/// the record's own.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Listed {
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    #[serde(default)]
    pub delete_marker: bool,
}

pub fn bucket_key(name: &str) -> String {
    format!("bucket/{name}")
}

/// Objects of a bucket sort by key under this prefix.
pub fn objects_prefix(bucket: &str) -> String {
    format!("obj/{bucket}/")
}

pub fn object_key(bucket: &str, key: &str) -> String {
    format!("obj/{bucket}/{key}")
}

/// Noncurrent versions of a bucket sort by key, then version id, under this prefix.
pub fn versions_prefix(bucket: &str) -> String {
    format!("ver/{bucket}/")
}

/// The noncurrent versions of one key (keys never hold NUL: `s3::address` refuses it).
pub fn key_versions_prefix(bucket: &str, key: &str) -> String {
    format!("ver/{bucket}/{key}\0")
}

pub fn version_key(bucket: &str, key: &str, version_id: &str) -> String {
    format!("ver/{bucket}/{key}\0{version_id}")
}

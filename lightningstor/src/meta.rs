//! Bucket and object metadata in flaredb (`flaredb_client::records`): `bucket/<name>` and
//! `obj/<bucket>/<key>`. An object becomes visible when its record is written, which happens
//! only after every chunk of its data is durable; replacing an object writes the new record
//! first and removes the old chunks after.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chunks::ChunkRef;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub name: String,
    pub org: String,
    pub project: String,
    pub created_ms: i64,
    /// The principal that created it.
    pub owner: String,
}

impl Bucket {
    /// The resource path IAM decides on.
    pub fn resource(&self) -> String {
        format!("orgs/{}/projects/{}/buckets/{}", self.org, self.project, self.name)
    }
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

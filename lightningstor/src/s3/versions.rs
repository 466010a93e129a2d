//! Object versions: making a new version current (archiving the one before in a versioned
//! bucket, replacing it otherwise), finding a version for a read, deleting (a delete marker, or
//! one version for good, promoting the next newest), and ListObjectVersions.
//!
//! Version ids sort newest first (the inverted write time in microseconds, then randomness);
//! `null` is the version written while versioning was never enabled or is suspended, and a new
//! `null` version replaces the previous one, as in S3.

use axum::response::Response;
use flaredb_client::records::RecordError;
use ring::rand::{SecureRandom, SystemRandom};

use super::address::Target;
use super::bucket::xml_response;
use super::error::S3Error;
use super::list::{common_prefix, max_keys, url_encode};
use super::policy::Op;
use super::service::{Call, S3};
use super::xml::Xml;
use crate::chunks::ChunkRef;
use crate::meta::{
    key_versions_prefix, object_key, objects_prefix, version_key, versions_prefix, Bucket, Object, Versioning,
    NULL_VERSION,
};
use photon_runtime::time::{iso8601, now_ms};

/// A new version id: 32 hex digits that sort newest first.
fn new_version_id() -> Result<String, S3Error> {
    let micros =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    let mut random = [0u8; 8];
    SystemRandom::new().fill(&mut random).map_err(|_| S3Error::internal_error("no randomness for a version id"))?;
    Ok(format!("{:016x}{:016x}", u64::MAX - micros, u64::from_be_bytes(random)))
}

/// `id` is `null` or one of ours, or InvalidArgument.
pub(super) fn check_version_id(id: &str) -> Result<(), S3Error> {
    if id == NULL_VERSION || (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())) {
        Ok(())
    } else {
        Err(S3Error::invalid_argument(format!("Invalid version id specified: {id:?}")))
    }
}

/// What a DeleteObject did, for its response headers.
pub(super) struct Removed {
    /// The version removed or the delete marker created (`None` in an unversioned bucket).
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

impl S3 {
    /// Makes `object` the current version of its key in `bucket`, giving it its version id (new
    /// when versioning is enabled, `null` otherwise). The chunks of a version it replaces go;
    /// on failure `object`'s own chunks are left to the caller.
    pub(super) async fn publish(&self, bucket: &Bucket, object: &mut Object) -> Result<(), S3Error> {
        object.version_id =
            if bucket.versioning == Versioning::Enabled { new_version_id()? } else { NULL_VERSION.to_string() };
        let garbage = self.make_current(bucket, object).await?;
        self.chunks.remove_later(garbage);
        Ok(())
    }

    /// The current-record swap behind `publish`; answers the chunks no version holds any more.
    async fn make_current(&self, bucket: &Bucket, object: &Object) -> Result<Vec<ChunkRef>, S3Error> {
        let record = object_key(&bucket.name, &object.key);
        for _ in 0..16 {
            let Some(old) = self.records.get::<Object>(&record).await? else {
                match self.records.create(&record, object, || record.clone()).await {
                    Ok(()) => return Ok(Vec::new()),
                    Err(RecordError::AlreadyExists(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let overwrite = old.value.version_id == NULL_VERSION && object.version_id == NULL_VERSION;
            if !overwrite {
                // Archived before the current record moves on: a crash in between leaves a
                // duplicate (listings skip it), never a lost version.
                let archived = version_key(&bucket.name, &object.key, &old.value.version_id);
                self.records.put_with_ttl(&archived, &old.value, 0).await?;
            }
            if !self.records.update(&record, object, old.version).await? {
                continue;
            }
            if overwrite {
                return Ok(old.value.chunks);
            }
            if object.version_id == NULL_VERSION {
                // Versioning suspended: the new null version replaces an older noncurrent one.
                let null = version_key(&bucket.name, &object.key, NULL_VERSION);
                if let Some(previous) = self.records.get::<Object>(&null).await? {
                    self.records.delete(&null).await?;
                    return Ok(previous.value.chunks);
                }
            }
            return Ok(Vec::new());
        }
        Err(S3Error::service_unavailable("the key kept changing under concurrent writes; try again"))
    }

    /// The version `id` of `key` (the current one when `None`), as a read sees it: NoSuchKey
    /// behind a delete marker, NoSuchVersion for an unknown id, MethodNotAllowed on a marker.
    pub(super) async fn find(&self, bucket: &Bucket, key: &str, id: Option<&str>) -> Result<Object, S3Error> {
        let current = self.records.get::<Object>(&object_key(&bucket.name, key)).await?.map(|v| v.value);
        let Some(id) = id else {
            return match current {
                Some(marker) if marker.delete_marker => Err(S3Error::no_such_key("The specified key does not exist.")
                    .with_header("x-amz-delete-marker", "true")
                    .with_header("x-amz-version-id", marker.version_id)),
                Some(object) => Ok(object),
                None => Err(S3Error::no_such_key("The specified key does not exist.")),
            };
        };
        check_version_id(id)?;
        let found = match current {
            Some(object) if object.version_id == id => Some(object),
            _ => self.records.get::<Object>(&version_key(&bucket.name, key, id)).await?.map(|v| v.value),
        };
        match found {
            Some(marker) if marker.delete_marker => {
                Err(S3Error::method_not_allowed("The specified version is a delete marker.")
                    .with_header("x-amz-delete-marker", "true")
                    .with_header("x-amz-version-id", id.to_string()))
            }
            Some(object) => Ok(object),
            None => Err(S3Error::no_such_version(format!("version {id} of this key does not exist"))),
        }
    }

    /// DeleteObject: without a version id, a delete marker in a versioned bucket and the key
    /// itself in an unversioned one; with one, that version for good (the next newest becomes
    /// current when it was). Deleting what does not exist succeeds, as in S3.
    pub(super) async fn remove(&self, bucket: &Bucket, key: &str, id: Option<&str>) -> Result<Removed, S3Error> {
        let record = object_key(&bucket.name, key);
        let Some(id) = id else {
            if bucket.versioning == Versioning::Unversioned {
                // The record removed names the chunks to drop, even if a PUT raced the delete.
                if let Some(object) = self.records.take::<Object>(&record).await? {
                    self.chunks.remove_later(object.value.chunks);
                }
                return Ok(Removed { version_id: None, delete_marker: false });
            }
            let mut marker = Object::marker(key, now_ms());
            self.publish(bucket, &mut marker).await?;
            return Ok(Removed { version_id: Some(marker.version_id), delete_marker: true });
        };
        check_version_id(id)?;
        for _ in 0..16 {
            match self.records.get::<Object>(&record).await? {
                Some(current) if current.value.version_id == id => {
                    let older = self.records.list::<Object>(&key_versions_prefix(&bucket.name, key)).await?;
                    let next = older.into_iter().max_by_key(|(_, o)| (o.modified_ms, o.version_id.clone()));
                    match next {
                        Some((archived, next)) => {
                            if !self.records.update(&record, &next, current.version).await? {
                                continue;
                            }
                            self.records.delete(&archived).await?;
                        }
                        None => {
                            self.records.delete(&record).await?;
                        }
                    }
                    self.chunks.remove_later(current.value.chunks.clone());
                    let delete_marker = current.value.delete_marker;
                    return Ok(Removed { version_id: Some(id.to_string()), delete_marker });
                }
                _ => {
                    let archived = version_key(&bucket.name, key, id);
                    let mut delete_marker = false;
                    if let Some(old) = self.records.take::<Object>(&archived).await? {
                        self.chunks.remove_later(old.value.chunks.clone());
                        delete_marker = old.value.delete_marker;
                    }
                    return Ok(Removed { version_id: Some(id.to_string()), delete_marker });
                }
            }
        }
        Err(S3Error::service_unavailable("the key kept changing under concurrent writes; try again"))
    }

    /// ListObjectVersions: every version and delete marker under `prefix`, by key and newest
    /// first, grouped at `delimiter`, paged by `key-marker` and `version-id-marker`.
    pub async fn list_versions(&self, call: &Call) -> Result<Response, S3Error> {
        let Target::Bucket(name) = &call.target else { return Err(S3Error::invalid_request("no bucket")) };
        let bucket = self.bucket_for_read(name).await?;
        self.allow(call, &bucket, Op::LIST_VERSIONS, None).await?;
        let get = |k: &str| call.query.get(k).cloned().unwrap_or_default();
        let (prefix, delimiter) = (get("prefix"), get("delimiter"));
        let (key_marker, version_marker) = (get("key-marker"), get("version-id-marker"));
        let max = max_keys(call)?;
        let url = call.query.get("encoding-type").is_some_and(|e| e == "url");
        let enc = |text: &str| if url { url_encode(text) } else { text.to_string() };

        let current: Vec<Object> = self
            .records
            .list::<Object>(&format!("{}{prefix}", objects_prefix(name)))
            .await?
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        let mut all: Vec<(Object, bool)> = current.iter().cloned().map(|o| (o, true)).collect();
        for (_, older) in self.records.list::<Object>(&format!("{}{prefix}", versions_prefix(name))).await? {
            // A duplicate of the current version (a crash between archive and swap) is skipped.
            let duplicate = current.iter().any(|c| c.key == older.key && c.version_id == older.version_id);
            if !duplicate {
                all.push((older, false));
            }
        }
        all.sort_by(|(a, a_latest), (b, b_latest)| {
            a.key
                .cmp(&b.key)
                .then(b_latest.cmp(a_latest))
                .then(b.modified_ms.cmp(&a.modified_ms))
                .then(a.version_id.cmp(&b.version_id))
        });

        // Skip up to and including the marker: a key marker alone skips that whole key.
        let mut start = 0;
        if !key_marker.is_empty() {
            start = all.iter().position(|(o, _)| o.key > key_marker).unwrap_or(all.len());
            if !version_marker.is_empty() {
                if let Some(i) = all.iter().position(|(o, _)| o.key == key_marker && o.version_id == version_marker) {
                    start = i + 1;
                }
            }
        }
        let mut xml = Xml::new("ListVersionsResult");
        xml.field("Name", name)
            .field("Prefix", enc(&prefix))
            .field("KeyMarker", enc(&key_marker))
            .field("VersionIdMarker", &version_marker)
            .field("MaxKeys", max);
        if !delimiter.is_empty() {
            xml.field("Delimiter", enc(&delimiter));
        }
        let mut entries = Xml::default();
        let mut prefixes: Vec<String> = Vec::new();
        let (mut count, mut next, mut truncated) = (0, None, false);
        for (object, latest) in &all[start..] {
            let rolled = common_prefix(&object.key, &prefix, &delimiter);
            if let Some(common) = &rolled {
                if prefixes.last() == Some(common) || (!key_marker.is_empty() && common.as_str() <= key_marker.as_str())
                {
                    continue;
                }
            }
            if count == max {
                truncated = true;
                break;
            }
            count += 1;
            match rolled {
                Some(common) => {
                    next = Some((common.clone(), String::new()));
                    prefixes.push(common);
                }
                None => {
                    next = Some((object.key.clone(), object.version_id.clone()));
                    let element = if object.delete_marker { "DeleteMarker" } else { "Version" };
                    entries
                        .open(element)
                        .field("Key", enc(&object.key))
                        .field("VersionId", &object.version_id)
                        .field("IsLatest", latest);
                    entries.field("LastModified", iso8601(object.modified_ms));
                    if !object.delete_marker {
                        entries
                            .field("ETag", format!("\"{}\"", object.etag))
                            .field("Size", object.size)
                            .field("StorageClass", "STANDARD");
                    }
                    entries.close(element);
                }
            }
        }
        xml.field("IsTruncated", truncated);
        if let (true, Some((key, version))) = (truncated, next) {
            xml.field("NextKeyMarker", enc(&key));
            if !version.is_empty() {
                xml.field("NextVersionIdMarker", version);
            }
        }
        if url {
            xml.field("EncodingType", "url");
        }
        xml.raw(&entries.into_inner());
        for common in &prefixes {
            xml.open("CommonPrefixes").field("Prefix", enc(common)).close("CommonPrefixes");
        }
        Ok(xml_response(xml.finish("ListVersionsResult")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_sort_newest_first_and_are_checked() {
        let first = new_version_id().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_version_id().unwrap();
        assert!(second < first, "{second} sorts before {first}");
        assert!(check_version_id(&first).is_ok() && check_version_id("null").is_ok());
        for bad in ["", "abc", "../x", &"g".repeat(32)] {
            assert_eq!(check_version_id(bad).unwrap_err().code, "InvalidArgument");
        }
    }
}

//! Typed records over FlareDB: values under keys with a common prefix in one namespace,
//! created with compare-and-swap so a key is taken exactly once, and updated only at the version
//! that was read. Services keep their metadata this way (IAM, LightningStor). Each record type
//! says how it is stored ([`ToRecord`], [`FromRecord`]): JSON ([`json_record!`]) unless it is hot
//! enough to want a compact form of its own.

use crate::{Client, Error};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("record {key} does not decode: {reason}")]
    Decode { key: String, reason: String },
    #[error("encoding a record: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] Error),
}

/// As gRPC services answer it: NOT_FOUND, ALREADY_EXISTS, UNAVAILABLE (flaredb could not be
/// reached), INTERNAL (a record that does not decode, a refusal).
impl From<RecordError> for tonic::Status {
    fn from(e: RecordError) -> Self {
        let code = match &e {
            RecordError::NotFound(_) => tonic::Code::NotFound,
            RecordError::AlreadyExists(_) => tonic::Code::AlreadyExists,
            RecordError::Db(Error::Refused(_)) | RecordError::Decode { .. } | RecordError::Encode(_) => {
                tracing::error!(error = %e, "record storage failed");
                tonic::Code::Internal
            }
            RecordError::Db(_) => tonic::Code::Unavailable,
        };
        tonic::Status::new(code, e.to_string())
    }
}

/// A service's `[flaredb]` config section: where its records live.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlaredbSection {
    /// flaredb API URLs (one is enough; the rest are learned).
    pub endpoints: Vec<String>,
    /// CA that signs flaredb's certificates; defaults to the API port's CA.
    pub ca: Option<std::path::PathBuf>,
    /// The flaredb namespace (must be `strong`) and the key prefix the records live under.
    pub namespace: String,
    pub prefix: String,
    /// How long to wait for flaredb at start before giving up.
    pub connect_timeout_ms: u64,
}

impl FlaredbSection {
    /// The defaults a service starts from: flaredb on this node, namespace `default`, records
    /// under `prefix`.
    pub fn local(prefix: &str) -> Self {
        Self {
            endpoints: vec!["https://127.0.0.1:2479".into()],
            ca: None,
            namespace: "default".into(),
            prefix: prefix.into(),
            connect_timeout_ms: 10_000,
        }
    }

    /// Connects (with `ca` unless the section names one) and proves flaredb answers with a
    /// read, so a service that Requires flaredb can refuse to start with a clear message.
    pub async fn connect(&self, ca: Option<std::path::PathBuf>) -> Result<Records, String> {
        let endpoints = self.endpoints.join(", ");
        let mut config = crate::Config::new(self.endpoints.clone());
        config.ca = self.ca.clone().or(ca);
        config.retry_for = std::time::Duration::from_millis(self.connect_timeout_ms);
        let client = Client::connect(config)
            .await
            .map_err(|e| format!("cannot reach flaredb at {endpoints} (flaredb.endpoints): {e}"))?;
        let records = Records::new(client, self.namespace.clone(), self.prefix.clone());
        records.get::<serde_json::Value>("probe").await.map_err(|e| {
            format!("flaredb at {endpoints} (flaredb.endpoints) does not answer: {e}; it must be running first")
        })?;
        Ok(records)
    }
}

#[derive(Clone)]
pub struct Records {
    client: Client,
    namespace: String,
    prefix: String,
}

/// A record and the version a later compare-and-swap must name.
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// A value as a record stores it.
pub trait ToRecord {
    fn to_record(&self) -> Result<Vec<u8>, String>;
}

/// A value read back from a record's bytes (perhaps only the part of it a caller needs).
pub trait FromRecord: Sized {
    /// How many leading bytes of a record `from_record` needs, when it reads only a head (a
    /// listing of records whose tails are large): scans then bring values cut to this length.
    /// A cut value that does not decode is read again whole. 0: whole values.
    const HEAD: usize = 0;

    fn from_record(bytes: &[u8]) -> Result<Self, String>;
}

/// Stores the named serde types as JSON records: `json_record!(User, Role);`.
#[macro_export]
macro_rules! json_record {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::records::ToRecord for $t {
            fn to_record(&self) -> Result<Vec<u8>, String> {
                $crate::serde_json::to_vec(self).map_err(|e| e.to_string())
            }
        }
        impl $crate::records::FromRecord for $t {
            fn from_record(bytes: &[u8]) -> Result<Self, String> {
                $crate::serde_json::from_slice(bytes).map_err(|e| e.to_string())
            }
        }
    )+};
}

json_record!(serde_json::Value);

fn encode<T: ToRecord>(value: &T) -> Result<Vec<u8>, RecordError> {
    value.to_record().map_err(RecordError::Encode)
}

fn decode<T: FromRecord>(key: &str, bytes: &[u8]) -> Result<T, RecordError> {
    T::from_record(bytes).map_err(|reason| RecordError::Decode { key: key.to_string(), reason })
}

/// A stored record as `T` with its version (`key` names it in a decoding error).
fn versioned<T: FromRecord>(key: &str, record: Option<crate::Record>) -> Result<Option<Versioned<T>>, RecordError> {
    match record {
        Some(record) => Ok(Some(Versioned { value: decode(key, &record.value)?, version: record.version })),
        None => Ok(None),
    }
}

impl Records {
    pub fn new(client: Client, namespace: String, prefix: String) -> Self {
        Self { client, namespace, prefix }
    }

    fn key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    pub async fn get<T: FromRecord>(&self, key: &str) -> Result<Option<Versioned<T>>, RecordError> {
        versioned(key, self.client.get(&self.namespace, &self.key(key)).await?)
    }

    /// The record at `key`, or `NotFound` naming `what`.
    pub async fn fetch<T: FromRecord>(
        &self,
        key: &str,
        what: impl FnOnce() -> String,
    ) -> Result<Versioned<T>, RecordError> {
        self.get(key).await?.ok_or_else(|| RecordError::NotFound(what()))
    }

    /// Writes `value` only if `key` is absent; `AlreadyExists` naming `what` otherwise.
    pub async fn create<T: ToRecord>(
        &self,
        key: &str,
        value: &T,
        what: impl FnOnce() -> String,
    ) -> Result<(), RecordError> {
        let (written, _) = self.client.compare_and_swap(&self.namespace, &self.key(key), 0, &encode(value)?).await?;
        if !written {
            return Err(RecordError::AlreadyExists(what()));
        }
        Ok(())
    }

    /// Writes `value` only if `key` is still at `version`; `false` if it changed meanwhile.
    pub async fn update<T: ToRecord>(&self, key: &str, value: &T, version: u64) -> Result<bool, RecordError> {
        let (written, _) =
            self.client.compare_and_swap(&self.namespace, &self.key(key), version, &encode(value)?).await?;
        Ok(written)
    }

    pub async fn put_with_ttl<T: ToRecord>(&self, key: &str, value: &T, ttl_seconds: u64) -> Result<(), RecordError> {
        self.client.put_with_ttl(&self.namespace, &self.key(key), &encode(value)?, ttl_seconds).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<bool, RecordError> {
        Ok(self.client.delete(&self.namespace, &self.key(key)).await?)
    }

    /// Deletes the record at `key` and returns what it held (one round trip, and the very
    /// record removed even under concurrent writers).
    pub async fn take<T: FromRecord>(&self, key: &str) -> Result<Option<Versioned<T>>, RecordError> {
        versioned(key, self.client.take(&self.namespace, &self.key(key)).await?)
    }

    /// Every record under `prefix`, in key order, with its key (prefix included).
    pub async fn list<T: FromRecord>(&self, prefix: &str) -> Result<Vec<(String, T)>, RecordError> {
        self.list_from(prefix, "", 0).await
    }

    /// At most `limit` records (0: all) under `prefix` whose keys are at or after `from` (a key
    /// under `prefix`; empty: from the first), in key order: one range scan, so listings page
    /// through large prefixes without reading them whole.
    pub async fn list_from<T: FromRecord>(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, T)>, RecordError> {
        let first = self.key(prefix);
        let mut end = first.clone();
        // The first key after every key that starts with `prefix`.
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                break;
            }
        }
        let start = if from.is_empty() { first } else { self.key(from).max(first) };
        if !end.is_empty() && start >= end {
            return Ok(Vec::new());
        }
        let options = crate::client::ScanOptions { limit, value_prefix: T::HEAD, ..Default::default() };
        let records = self.client.scan(&self.namespace, &start, &end, options).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let key = String::from_utf8_lossy(&r.key[self.prefix.len()..]).into_owned();
            match T::from_record(&r.value) {
                Ok(value) => out.push((key, value)),
                // Its head is not where `T` looks (a record in an older form): read it whole.
                Err(_) if T::HEAD > 0 && r.value.len() == T::HEAD => {
                    if let Some(whole) = self.get::<T>(&key).await? {
                        out.push((key, whole.value));
                    }
                }
                Err(reason) => return Err(RecordError::Decode { key, reason }),
            }
        }
        Ok(out)
    }

    /// The flaredb client and namespace (for watching changes).
    pub fn client(&self) -> (&Client, &str, &str) {
        (&self.client, &self.namespace, &self.prefix)
    }
}

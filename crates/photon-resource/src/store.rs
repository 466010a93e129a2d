//! Resources in chainfire, through the etcd v3 API: JSON values under a service's prefix,
//! read with their revision, changed only by transactions that compare it, so two writers
//! never overwrite each other unseen.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, TlsOptions, Txn, TxnOp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ResourceError;

/// `[chainfire]`: where a service's resources live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainfireSection {
    /// chainfire's API URLs (any member; the client balances and fails over).
    pub endpoints: Vec<String>,
    /// CA of chainfire's certificate; defaults to the API port's CA.
    pub ca: Option<PathBuf>,
    /// How long one call may take.
    pub timeout_ms: u64,
}

impl Default for ChainfireSection {
    fn default() -> Self {
        Self { endpoints: vec!["https://127.0.0.1:2379".into()], ca: None, timeout_ms: 3000 }
    }
}

/// A stored value with its key's revision (what a change must name).
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub key: String,
    pub value: T,
    pub version: i64,
}

/// A page of a listing and where the next starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<Versioned<T>>,
    /// The key to continue after, when there may be more.
    pub next: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    connected: Arc<AtomicBool>,
}

/// How often an HTTP/2 ping checks each chainfire connection, and how long its answer may take.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_millis(500);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_millis(1000);

/// The largest value stored (chainfire's request limit is larger; resources stay small).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

impl Store {
    /// A client for `section`; it connects lazily, so a service starts while chainfire is
    /// down and its calls fail with `Unavailable` until it is back.
    pub async fn connect(section: &ChainfireSection, default_ca: Option<PathBuf>) -> Result<Self, ResourceError> {
        if section.endpoints.is_empty() {
            return Err(ResourceError::Unavailable("chainfire.endpoints is empty".into()));
        }
        let timeout = Duration::from_millis(section.timeout_ms.max(1));
        // HTTP/2 pings find a member that went silent (cut off, not closed) within about
        // KEEP_ALIVE_TIMEOUT: its connection is closed, its streams (watches, lease keep-alives)
        // fail and are opened again on a member that answers, instead of hanging.
        let mut options = ConnectOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(true);
        if let Some(ca) = section.ca.clone().or(default_ca) {
            let pem = std::fs::read(&ca)
                .map_err(|e| ResourceError::Unavailable(format!("cannot read chainfire CA {}: {e}", ca.display())))?;
            options = options.with_tls(TlsOptions::new().ca_certificate(Certificate::from_pem(pem)));
        }
        let client = Client::connect(&section.endpoints, Some(options))
            .await
            .map_err(|e| ResourceError::Unavailable(format!("{}: {e}", section.endpoints.join(", "))))?;
        Ok(Self { client, connected: Arc::new(AtomicBool::new(false)) })
    }

    /// Whether the last call reached chainfire.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn mark(&self, ok: bool) {
        self.connected.store(ok, Ordering::Relaxed);
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// A call's result: chainfire unreachable is `Unavailable`; a request it refused
    /// (a bug on our side, never the caller's) is `Backend`.
    fn outcome<T>(&self, result: Result<T, etcd_client::Error>) -> Result<T, ResourceError> {
        match result {
            Ok(value) => {
                self.mark(true);
                Ok(value)
            }
            Err(etcd_client::Error::GRpcStatus(status))
                if !matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown | tonic::Code::Cancelled
                ) =>
            {
                self.mark(true);
                Err(ResourceError::Backend(format!("chainfire refused the request: {}", status.message())))
            }
            Err(e) => {
                self.mark(false);
                Err(ResourceError::Unavailable(e.to_string()))
            }
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, ResourceError> {
        let mut client = self.client.clone();
        let response = self.outcome(client.get(key, None).await)?;
        match response.kvs().first() {
            Some(kv) => Ok(Some(decode(kv)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` values under `prefix`, in key order, starting after `after` if given.
    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<T>, ResourceError> {
        let start = match after {
            Some(after) => format!("{after}\0"),
            None => prefix.to_string(),
        };
        let options = GetOptions::new().with_range(prefix_end(prefix)).with_limit(limit as i64);
        let mut client = self.client.clone();
        let response = self.outcome(client.get(start, Some(options)).await)?;
        let items = response.kvs().iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let next = if response.more() { items.last().map(|i: &Versioned<T>| i.key.clone()) } else { None };
        Ok(Page { items, next })
    }

    /// Every value under `prefix` (for small sets, such as one zone's records).
    pub async fn list_all<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<Versioned<T>>, ResourceError> {
        let mut client = self.client.clone();
        let response = self.outcome(client.get(prefix, Some(GetOptions::new().with_prefix())).await)?;
        response.kvs().iter().map(decode).collect()
    }

    /// Commits `tx`: `Ok(Some(revision))` if every condition held and all writes happened,
    /// `Ok(None)` if a condition failed and nothing was written.
    pub async fn commit(&self, tx: Tx) -> Result<Option<i64>, ResourceError> {
        let txn = Txn::new().when(tx.compares).and_then(tx.ops);
        let mut client = self.client.clone();
        let response = self.outcome(client.txn(txn).await)?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        Ok(response.succeeded().then_some(revision))
    }
}

fn decode<T: DeserializeOwned>(kv: &etcd_client::KeyValue) -> Result<Versioned<T>, ResourceError> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let value =
        serde_json::from_slice(kv.value()).map_err(|e| ResourceError::Corrupt(format!("value at {key} does not decode: {e}")))?;
    Ok(Versioned { key, value, version: kv.mod_revision() })
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Conditions and writes committed together.
#[derive(Default)]
pub struct Tx {
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
}

impl Tx {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `key`, which must not exist.
    pub fn create<T: Serialize>(self, key: &str, value: &T) -> Result<Self, ResourceError> {
        self.when_absent(key).put(key, value)
    }

    /// Writes `value` at `key`, which must still be at `version`.
    pub fn update<T: Serialize>(self, key: &str, value: &T, version: i64) -> Result<Self, ResourceError> {
        self.when_version(key, version).put(key, value)
    }

    /// Deletes `key`, which must still be at `version`.
    pub fn delete(mut self, key: &str, version: i64) -> Self {
        self = self.when_version(key, version);
        self.ops.push(TxnOp::delete(key, None));
        self
    }

    /// Deletes every key under `prefix`, unconditionally.
    pub fn delete_prefix(mut self, prefix: &str) -> Self {
        self.ops.push(TxnOp::delete(prefix, Some(etcd_client::DeleteOptions::new().with_prefix())));
        self
    }

    /// Deletes `key` whatever it holds.
    pub fn remove(mut self, key: &str) -> Self {
        self.ops.push(TxnOp::delete(key, None));
        self
    }

    pub fn when_absent(mut self, key: &str) -> Self {
        self.compares.push(Compare::create_revision(key, CompareOp::Equal, 0));
        self
    }

    /// `key` must exist (a parent that a new child needs).
    pub fn when_present(mut self, key: &str) -> Self {
        self.compares.push(Compare::create_revision(key, CompareOp::Greater, 0));
        self
    }

    pub fn when_version(mut self, key: &str, version: i64) -> Self {
        self.compares.push(Compare::mod_revision(key, CompareOp::Equal, version));
        self
    }

    /// Writes `value` at `key` whatever it holds.
    pub fn put<T: Serialize>(mut self, key: &str, value: &T) -> Result<Self, ResourceError> {
        let bytes = serde_json::to_vec(value).map_err(|e| ResourceError::Corrupt(format!("cannot encode {key}: {e}")))?;
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(ResourceError::TooLarge(format!(
                "{key} would be {} bytes, more than the {MAX_VALUE_BYTES} allowed",
                bytes.len()
            )));
        }
        self.ops.push(TxnOp::put(key, bytes, None));
        Ok(self)
    }
}

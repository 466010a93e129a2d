//! IAM's records in flaredb: JSON values under `<prefix><kind>/...` keys of one namespace,
//! created with compare-and-swap so a name is taken exactly once.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::IamError;

#[derive(Clone)]
pub struct Db {
    client: flaredb_client::Client,
    namespace: String,
    prefix: String,
}

/// A record and the version a later compare-and-swap must name.
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, IamError> {
    serde_json::to_vec(value).map_err(|e| IamError::Internal(format!("encoding a record: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, IamError> {
    serde_json::from_slice(bytes).map_err(|e| IamError::Internal(format!("record {key} does not decode: {e}")))
}

impl Db {
    pub fn new(client: flaredb_client::Client, namespace: String, prefix: String) -> Self {
        Self { client, namespace, prefix }
    }

    fn key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, IamError> {
        match self.client.get(&self.namespace, &self.key(key)).await? {
            Some(record) => Ok(Some(Versioned { value: decode(key, &record.value)?, version: record.version })),
            None => Ok(None),
        }
    }

    /// The record at `key`, or `NotFound` naming `what`.
    pub async fn fetch<T: DeserializeOwned>(
        &self,
        key: &str,
        what: impl FnOnce() -> String,
    ) -> Result<Versioned<T>, IamError> {
        self.get(key).await?.ok_or_else(|| IamError::NotFound(what()))
    }

    /// Writes `value` only if `key` is absent; `AlreadyExists` naming `what` otherwise.
    pub async fn create<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        what: impl FnOnce() -> String,
    ) -> Result<(), IamError> {
        let (written, _) = self.client.compare_and_swap(&self.namespace, &self.key(key), 0, &encode(value)?).await?;
        if !written {
            return Err(IamError::AlreadyExists(what()));
        }
        Ok(())
    }

    /// Writes `value` only if `key` is still at `version`; `false` if it changed meanwhile.
    pub async fn update<T: Serialize>(&self, key: &str, value: &T, version: u64) -> Result<bool, IamError> {
        let (written, _) =
            self.client.compare_and_swap(&self.namespace, &self.key(key), version, &encode(value)?).await?;
        Ok(written)
    }

    pub async fn put_with_ttl<T: Serialize>(&self, key: &str, value: &T, ttl_seconds: u64) -> Result<(), IamError> {
        self.client.put_with_ttl(&self.namespace, &self.key(key), &encode(value)?, ttl_seconds).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<bool, IamError> {
        Ok(self.client.delete(&self.namespace, &self.key(key)).await?)
    }

    /// Every record under `prefix`, in key order, with its key (prefix included).
    pub async fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, IamError> {
        let start = self.key(prefix);
        let mut end = start.clone();
        // The first key after every key that starts with `prefix`.
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                break;
            }
        }
        let records = self.client.scan(&self.namespace, &start, &end, Default::default()).await?;
        records
            .into_iter()
            .map(|r| {
                let key = String::from_utf8_lossy(&r.key[self.prefix.len()..]).into_owned();
                let value = decode(&key, &r.value)?;
                Ok((key, value))
            })
            .collect()
    }

    /// The flaredb client and namespace (for watching changes).
    pub fn client(&self) -> (&flaredb_client::Client, &str, &str) {
        (&self.client, &self.namespace, &self.prefix)
    }
}

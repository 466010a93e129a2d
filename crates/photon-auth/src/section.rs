//! `[iam]`, the configuration section every service that IAM authorizes shares: where IAM is,
//! whom to trust for its certificate, how long decisions are reused, and (for services that
//! call IAM as themselves) the service account's credentials.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::AuthConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSection {
    /// IAM's API URL.
    pub url: String,
    /// CA of IAM's certificate; defaults to chainfire's CA, then the API port's CA (a cluster
    /// has one CA).
    pub ca: Option<PathBuf>,
    /// The service account's credentials (`{"key_id","secret"}`, as IAM's
    /// `bootstrap.services` writes it), for services that call IAM as themselves.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// How long an authorization decision is reused.
    pub cache_ttl_ms: u64,
}

impl Default for IamSection {
    fn default() -> Self {
        Self { url: "https://127.0.0.1:8080".into(), ca: None, credentials_file: None, cache_ttl_ms: 10_000 }
    }
}

/// A service account's access key, as IAM's `bootstrap.services` writes it.
#[derive(Clone)]
pub struct AccountKey {
    pub key_id: String,
    pub secret: String,
}

impl IamSection {
    /// The service account's key from `credentials_file`; `None` when the file is not set, or
    /// holds nothing or `{}` (a unit's `SetCredential=` default on a node where no key was
    /// installed).
    pub fn account(&self) -> Result<Option<AccountKey>, String> {
        let Some(file) = &self.credentials_file else { return Ok(None) };
        let text = std::fs::read_to_string(file).map_err(|e| format!("iam.credentials_file {}: {e}", file.display()))?;
        if matches!(text.trim(), "" | "{}") {
            return Ok(None);
        }
        let doc: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("iam.credentials_file {} is not JSON: {e}", file.display()))?;
        match (doc["key_id"].as_str(), doc["secret"].as_str()) {
            (Some(key_id), Some(secret)) => Ok(Some(AccountKey { key_id: key_id.into(), secret: secret.into() })),
            _ => Err(format!("iam.credentials_file {} lacks key_id or secret", file.display())),
        }
    }

    /// The auth client's configuration; `fallbacks` are the CAs tried, in order, when `ca` is
    /// unset.
    pub fn auth_config<'a>(&self, fallbacks: impl IntoIterator<Item = Option<&'a Path>>) -> AuthConfig {
        let mut auth = AuthConfig::new(self.url.clone());
        auth.ca = self.ca.clone().or_else(|| fallbacks.into_iter().flatten().next().map(Path::to_path_buf));
        auth.decision_ttl = Duration::from_millis(self.cache_ttl_ms);
        auth
    }
}

/// `--iam URL`, the flag of every service IAM authorizes (sets `iam.url`).
#[derive(Debug, Clone, clap::Args)]
pub struct IamArgs {
    /// IAM's API URL (iam.url).
    #[arg(long, value_name = "URL")]
    pub iam: Option<String>,
}

impl IamArgs {
    /// Adds the flag, if given, to `overrides`.
    pub fn apply(&self, overrides: &mut photon_runtime::cli::Overrides) {
        if let Some(url) = &self.iam {
            overrides.flags.push(("iam.url".to_string(), photon_runtime::ConfigValue::from(url.clone())));
        }
    }
}

//! `photonctl kv`: get, put, del and watch keys in chainfire (its etcd v3 API).

use std::path::PathBuf;

use anyhow::Context as _;
use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::watch_client::WatchClient;
use photon_api::etcd::etcdserverpb::{
    watch_request, DeleteRangeRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
};
use photon_api::etcd::mvccpb;
use photon_client::{channel, ChannelOptions};
use serde_json::json;
use tonic::transport::Channel;

use crate::OutputFormat;

#[derive(Debug, clap::Subcommand)]
pub enum KvCommand {
    /// Print a key's value (or every key under a prefix).
    Get {
        key: String,
        /// Treat KEY as a prefix.
        #[arg(long)]
        prefix: bool,
        /// Read as of this revision (0: the latest).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
    /// Set a key.
    Put {
        key: String,
        value: String,
        /// Attach the key to this lease (hex, as etcdctl prints it).
        #[arg(long)]
        lease: Option<String>,
    },
    /// Delete a key (or every key under a prefix); prints how many went.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
    /// Print changes as they happen until interrupted.
    Watch {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// Replay history from this revision first.
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

/// The key range of `key`, or of everything under it.
fn range_end(key: &str, prefix: bool) -> Vec<u8> {
    if !prefix {
        return Vec::new();
    }
    let mut end = key.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every byte was 0xff (or the key was empty): to the end of the key space
}

fn kv_json(kv: &mvccpb::KeyValue) -> serde_json::Value {
    json!({
        "key": String::from_utf8_lossy(&kv.key),
        "value": String::from_utf8_lossy(&kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": format!("{:x}", kv.lease),
    })
}

pub async fn run(endpoint: &str, ca: PathBuf, command: KvCommand, output: OutputFormat) -> anyhow::Result<()> {
    let options = ChannelOptions { ca: Some(ca), ..Default::default() };
    let channel: Channel =
        channel(endpoint, &options).await.with_context(|| format!("cannot reach chainfire at {endpoint}"))?;
    let mut kv = KvClient::new(channel.clone());
    match command {
        KvCommand::Get { key, prefix, rev } => {
            let request = RangeRequest {
                range_end: range_end(&key, prefix),
                key: key.into_bytes(),
                revision: rev,
                ..Default::default()
            };
            let response = kv.range(request).await.map_err(status)?.into_inner();
            match output {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&response.kvs.iter().map(kv_json).collect::<Vec<_>>())?)
                }
                OutputFormat::Table => {
                    for item in &response.kvs {
                        println!("{} = {}", String::from_utf8_lossy(&item.key), String::from_utf8_lossy(&item.value));
                    }
                }
            }
        }
        KvCommand::Put { key, value, lease } => {
            let lease = match lease {
                Some(hex) => {
                    i64::from_str_radix(&hex, 16).with_context(|| format!("--lease {hex:?} is not a hex lease id"))?
                }
                None => 0,
            };
            let request = PutRequest { key: key.into_bytes(), value: value.into_bytes(), lease, ..Default::default() };
            let response = kv.put(request).await.map_err(status)?.into_inner();
            println!("OK (revision {})", response.header.map_or(0, |h| h.revision));
        }
        KvCommand::Del { key, prefix } => {
            let request =
                DeleteRangeRequest { range_end: range_end(&key, prefix), key: key.into_bytes(), ..Default::default() };
            println!("{}", kv.delete_range(request).await.map_err(status)?.into_inner().deleted);
        }
        KvCommand::Watch { key, prefix, rev } => watch(channel, key, prefix, rev, output).await?,
    }
    Ok(())
}

async fn watch(channel: Channel, key: String, prefix: bool, rev: i64, output: OutputFormat) -> anyhow::Result<()> {
    let create = WatchCreateRequest {
        range_end: range_end(&key, prefix),
        key: key.into_bytes(),
        start_revision: rev,
        ..Default::default()
    };
    let request = WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) };
    // The request stream stays open (the sender lives in this frame) for as long as we watch.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(request).await.context("cannot start the watch")?;
    let mut responses = WatchClient::new(channel)
        .watch(tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status)?
        .into_inner();
    while let Some(response) = responses.message().await.map_err(status)? {
        if response.canceled {
            anyhow::bail!("the watch was canceled: {}", response.cancel_reason);
        }
        for event in response.events {
            let kind = if event.r#type == mvccpb::event::EventType::Delete as i32 { "DELETE" } else { "PUT" };
            let kv = event.kv.unwrap_or_default();
            match output {
                OutputFormat::Json => println!("{}", json!({ "type": kind, "kv": kv_json(&kv) })),
                OutputFormat::Table if kind == "PUT" => {
                    println!(
                        "PUT {} = {} (revision {})",
                        String::from_utf8_lossy(&kv.key),
                        String::from_utf8_lossy(&kv.value),
                        kv.mod_revision
                    )
                }
                OutputFormat::Table => {
                    println!("DELETE {} (revision {})", String::from_utf8_lossy(&kv.key), kv.mod_revision)
                }
            }
        }
    }
    drop(tx);
    Ok(())
}

/// etcd's error message, without tonic's decoration.
fn status(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", s.message())
}

#[cfg(test)]
mod tests {
    use super::range_end;

    #[test]
    fn prefixes_end_at_the_next_key() {
        assert_eq!(range_end("a/", true), b"a0".to_vec());
        assert_eq!(range_end("a\u{7f}", true), vec![b'a', 0x80], "only 0xff bytes carry over");
        assert_eq!(range_end("", true), vec![0]);
        assert!(range_end("a", false).is_empty());
    }
}

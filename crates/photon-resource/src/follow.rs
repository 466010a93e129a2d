//! Following a prefix in chainfire: a full read, then the watch from the revision after it,
//! in one loop that starts over (read again, watch again) whenever the watch breaks or the
//! revision it needs was compacted. The caller gets a snapshot and then batches of changes,
//! each batch one revision's, in order; after a restart it gets a fresh snapshot.

use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio_util::sync::CancellationToken;

use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Everything under the prefix at `revision`; replaces whatever the caller held.
    Snapshot { items: Vec<(String, Vec<u8>)>, revision: i64 },
    Put { key: String, value: Vec<u8>, revision: i64 },
    Delete { key: String, revision: i64 },
}

/// Feeds `apply` with the prefix's contents and changes until `shutdown`. Each call of
/// `apply` gets one snapshot or all the changes of one watch response.
pub async fn follow(store: Store, prefix: String, shutdown: CancellationToken, mut apply: impl FnMut(Vec<Change>)) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = follow_once(&store, &prefix, &mut apply, &mut backoff) => result,
        };
        store.mark(false);
        if let Err(e) = result {
            tracing::warn!(%prefix, error = %e, retry_ms = backoff.as_millis() as u64, "lost chainfire; answering from the last copy");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn follow_once(
    store: &Store,
    prefix: &str,
    apply: &mut impl FnMut(Vec<Change>),
    backoff: &mut Duration,
) -> Result<(), String> {
    let mut client = store.client();
    let snapshot = client.get(prefix, Some(GetOptions::new().with_prefix())).await.map_err(|e| e.to_string())?;
    let revision = snapshot.header().map(|h| h.revision()).unwrap_or(0);
    let items = snapshot.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec())).collect();
    store.mark(true);
    apply(vec![Change::Snapshot { items, revision }]);
    let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1).with_progress_notify();
    let mut stream = client.watch(prefix, Some(options)).await.map_err(|e| e.to_string())?;
    *backoff = Duration::from_millis(100);
    loop {
        let Some(response) = stream.message().await.map_err(|e| e.to_string())? else {
            return Err("the watch stream ended".into());
        };
        if response.canceled() {
            return Err(format!("the watch was cancelled: {}", response.cancel_reason()));
        }
        store.mark(true);
        let mut batch = Vec::with_capacity(response.events().len());
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let revision = kv.mod_revision();
            batch.push(match event.event_type() {
                EventType::Put => Change::Put { key, value: kv.value().to_vec(), revision },
                EventType::Delete => Change::Delete { key, revision },
            });
        }
        if !batch.is_empty() {
            apply(batch);
        }
    }
}

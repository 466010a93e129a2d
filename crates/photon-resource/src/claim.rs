//! Holding a key for this node alone — election per key, as etcd clients do it: the key is
//! created under a lease only if absent, the lease is kept alive while held, and when the
//! holder dies (or loses chainfire) the lease expires, chainfire deletes the key, and whoever
//! is waiting on it takes it. What is held (a load balancer's address, a gateway) follows.
//!
//! A holder that cannot renew its lease for a whole TTL lets go on its own side first, so two
//! nodes never both believe they hold the key for long.

use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, WatchOptions};
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Holds `key` (with `value`, usually this node's name) whenever it is free, until `shutdown`.
/// `changed(true)` when it is taken, `changed(false)` when it is lost or given up.
pub async fn hold(store: Store, key: String, value: String, ttl: Duration, shutdown: CancellationToken, mut changed: impl FnMut(bool)) {
    let ttl_secs = ttl.as_secs().max(1) as i64;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match try_hold(&store, &key, &value, ttl_secs, &shutdown, &mut changed).await {
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(%key, error = %e, "claim: chainfire call failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
        }
    }
}

/// One attempt: take the key and hold it as long as the lease lives, or wait until it is free.
async fn try_hold(
    store: &Store,
    key: &str,
    value: &str,
    ttl_secs: i64,
    shutdown: &CancellationToken,
    changed: &mut impl FnMut(bool),
) -> Result<(), String> {
    let mut client = store.client();
    let lease = match put_if_absent(store, key, value, ttl_secs).await? {
        Ok((lease, _)) => lease,
        Err((revision, _)) => return wait_free(store, key, revision, shutdown).await,
    };
    tracing::info!(%key, holder = %value, "claim taken");
    changed(true);
    let held = keep(store, lease, ttl_secs, shutdown).await;
    changed(false);
    if shutdown.is_cancelled() {
        // Let the next holder take over at once instead of after the TTL.
        let _ = client.lease_revoke(lease).await;
        tracing::info!(%key, "claim released on shutdown");
    } else {
        tracing::warn!(%key, reason = %held.err().unwrap_or_default(), "claim lost");
    }
    Ok(())
}

/// Keeps `lease` alive every third of its TTL; returns when `shutdown`, or with the reason
/// when it could not be renewed for a whole TTL (or chainfire says it expired). A failing
/// keep-alive stream (chainfire between leaders, say) is opened again: only a whole TTL without
/// a renewal loses the claim.
async fn keep(store: &Store, lease: i64, ttl_secs: i64, shutdown: &CancellationToken) -> Result<(), String> {
    keep_noting(store, lease, ttl_secs, shutdown, &Renewals::default()).await
}

/// When a lease was last renewed, for a holder that must know between keep-alives.
#[derive(Clone)]
pub struct Renewals(std::sync::Arc<std::sync::Mutex<Instant>>);

impl Default for Renewals {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Instant::now())))
    }
}

impl Renewals {
    fn note(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub fn since(&self) -> Duration {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

async fn keep_noting(store: &Store, lease: i64, ttl_secs: i64, shutdown: &CancellationToken, renewals: &Renewals) -> Result<(), String> {
    let ttl = Duration::from_secs(ttl_secs as u64);
    let mut renewed = Instant::now();
    let mut last_error = String::new();
    loop {
        if renewed.elapsed() >= ttl {
            return Err(format!("the lease was not renewed for a whole TTL ({last_error})"));
        }
        let mut client = store.client();
        let (mut keeper, mut stream) = match client.lease_keep_alive(lease).await {
            Ok(pair) => pair,
            Err(e) => {
                last_error = e.to_string();
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let mut every = tokio::time::interval(ttl / 4);
        // The first keep-alive still unanswered: a stream to a member that went silent (cut
        // off, not closed) is given up after half a TTL and opened again, most likely to
        // another member, while the lease still has time left.
        let mut unanswered: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = every.tick() => {
                    if renewed.elapsed() >= ttl {
                        break;
                    }
                    if unanswered.is_some_and(|asked| asked.elapsed() >= ttl / 2) {
                        last_error = "no answer to keep-alives for half a TTL".into();
                        break;
                    }
                    if let Err(e) = keeper.keep_alive().await {
                        last_error = e.to_string();
                        break;
                    }
                    unanswered.get_or_insert_with(Instant::now);
                }
                message = stream.message() => match message {
                    Ok(Some(answer)) if answer.ttl() > 0 => {
                        renewed = Instant::now();
                        renewals.note();
                        unanswered = None;
                    }
                    Ok(Some(_)) => return Err("the lease expired".into()),
                    Ok(None) => {
                        last_error = "the keep-alive stream ended".into();
                        break;
                    }
                    Err(e) => {
                        last_error = e.to_string();
                        break;
                    }
                },
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// Waits until `key` is deleted after `revision` (its holder's lease expired or was revoked),
/// or a few seconds pass (then the caller simply tries again).
async fn wait_free(store: &Store, key: &str, revision: i64, shutdown: &CancellationToken) -> Result<(), String> {
    let mut client = store.client();
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let mut stream = client.watch(key, Some(options)).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = &mut deadline => return Ok(()),
            message = stream.message() => match message.map_err(|e| e.to_string())? {
                Some(response) if response.events().iter().any(|e| e.event_type() == EventType::Delete) => return Ok(()),
                Some(_) => {}
                None => return Err("the watch ended".into()),
            },
        }
    }
}

/// A key held by `take`: its lease kept alive until the holding is dropped (then released at
/// once) or lost (`lost` fires: chainfire could not renew it for a whole TTL).
pub struct Holding {
    pub lost: CancellationToken,
    /// The key's revision when taken: higher for every later holder (a fencing token).
    pub revision: i64,
    ttl: Duration,
    renewals: Renewals,
    release: CancellationToken,
}

impl Holding {
    /// Whether the key is surely still held: renewed within the last three quarters of its TTL
    /// (chainfire counts the TTL from its own renewal, a little before this side hears of it).
    /// A holder frozen past that (a stopped process, a long pause) knows at once on waking,
    /// before its keep-alive task runs again.
    pub fn valid(&self) -> bool {
        !self.lost.is_cancelled() && self.renewals.since() < self.ttl * 3 / 4
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.release.cancel();
    }
}

/// Takes `key` now if it is free, without waiting: the holding, or who holds it (its value).
/// What one session may do alone (write a volume) is fenced this way: a second is refused
/// while the first holds the key, and takes it once the first's lease expires.
pub async fn take(store: &Store, key: &str, value: &str, ttl: Duration) -> Result<Result<Holding, String>, String> {
    let ttl_secs = ttl.as_secs().max(1) as i64;
    let (lease, revision) = match put_if_absent(store, key, value, ttl_secs).await? {
        Ok(taken) => taken,
        Err((_, holder)) => return Ok(Err(holder)),
    };
    let (lost, release, renewals) = (CancellationToken::new(), CancellationToken::new(), Renewals::default());
    let (keeper, signal, store, noted) = (release.clone(), lost.clone(), store.clone(), renewals.clone());
    let key = key.to_string();
    // The keeper lives exactly as long as the holding (dropping it releases the key).
    tokio::spawn(async move {
        let held = keep_noting(&store, lease, ttl_secs, &keeper, &noted).await;
        if keeper.is_cancelled() {
            let _ = store.client().lease_revoke(lease).await;
        } else {
            tracing::warn!(%key, reason = %held.err().unwrap_or_default(), "held key lost");
        }
        signal.cancel();
    });
    Ok(Ok(Holding { lost, revision, ttl: Duration::from_secs(ttl_secs as u64), renewals, release }))
}

/// Puts `key` = `value` under a new lease of `ttl_secs` if the key is absent: the lease and the
/// revision of the put, or (the store's revision, the present holder's value) when it is taken.
async fn put_if_absent(store: &Store, key: &str, value: &str, ttl_secs: i64) -> Result<Result<(i64, i64), (i64, String)>, String> {
    let mut client = store.client();
    let lease = client.lease_grant(ttl_secs, None).await.map_err(|e| e.to_string())?.id();
    let put = TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)));
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([put])
        .or_else([TxnOp::get(key, None)]);
    let response = client.txn(txn).await.map_err(|e| e.to_string())?;
    let revision = response.header().map(|h| h.revision()).unwrap_or(0);
    if response.succeeded() {
        return Ok(Ok((lease, revision)));
    }
    let _ = client.lease_revoke(lease).await;
    let holder = response
        .op_responses()
        .into_iter()
        .find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        })
        .unwrap_or_default();
    Ok(Err((revision, holder)))
}

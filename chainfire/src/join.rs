//! Joining a running cluster: ask the leader to add this member as a learner, remember the id
//! it was given (so a restart does not ask again), and once caught up ask to be promoted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use photon_api::etcd::etcdserverpb::cluster_client::ClusterClient;
use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::{MemberAddRequest, MemberListRequest, MemberPromoteRequest, RangeRequest};
use photon_client::{channel, ChannelOptions};
use photon_raft::NodeId;
use tokio_util::sync::CancellationToken;

use crate::node::ChainRaft;

/// File in the Raft directory holding the id this member was given when it joined.
const MEMBER_ID_FILE: &str = "member_id";
/// How long a join waits for another node's membership change to finish.
const CHANGE_IN_PROGRESS_WAIT: Duration = Duration::from_secs(60);

pub fn stored_id(raft_dir: &Path) -> anyhow::Result<Option<NodeId>> {
    match std::fs::read_to_string(raft_dir.join(MEMBER_ID_FILE)) {
        Ok(text) => Ok(Some(
            text.trim().parse().with_context(|| format!("{} is corrupt", raft_dir.join(MEMBER_ID_FILE).display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("cannot read the stored member id"),
    }
}

/// Asks the member at `leader_url` to add `peer_addr` as a learner; returns the new id, stored.
/// Refused before anything changes when `peer_addr` is a member already or `node_record` (this
/// node's key in the membership table) names a node that is not dead: a node id collision.
pub async fn add_self(
    raft_dir: &Path,
    leader_url: &str,
    peer_addr: &str,
    node_record: Option<&str>,
    ca: Option<PathBuf>,
) -> anyhow::Result<NodeId> {
    let options = ChannelOptions { ca, ..Default::default() };
    let ch = channel(leader_url, &options).await.with_context(|| format!("cannot reach {leader_url} to join"))?;
    let peer_url = format!("https://{peer_addr}");
    let mut cluster = ClusterClient::new(ch.clone());
    let members = cluster
        .member_list(MemberListRequest { linearizable: true })
        .await
        .map_err(|s| anyhow::anyhow!("{leader_url} cannot list the cluster's members: {}", s.message()))?
        .into_inner()
        .members;
    if let Some(member) = members.iter().find(|m| m.peer_ur_ls.contains(&peer_url)) {
        anyhow::bail!(
            "{peer_url} is already member {:x} of the cluster at {leader_url}: this node id or address is taken \
             (a node that was a member keeps its id in {}; a new node needs its own node_id)",
            member.id,
            raft_dir.join(MEMBER_ID_FILE).display()
        );
    }
    if let Some(key) = node_record {
        let found = KvClient::new(ch)
            .range(RangeRequest { key: key.as_bytes().to_vec(), ..Default::default() })
            .await
            .map_err(|s| anyhow::anyhow!("{leader_url} cannot read {key}: {}", s.message()))?
            .into_inner()
            .kvs;
        if let Some(kv) = found.first() {
            let record: serde_json::Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            if record["state"] != "dead" {
                anyhow::bail!(
                    "node id {} is already taken by a live node (gossip address {}); give this node its own node_id",
                    record["node_id"].as_str().unwrap_or(key),
                    record["gossip_addr"].as_str().unwrap_or("?")
                );
            }
        }
    }
    let request = MemberAddRequest { peer_ur_ls: vec![peer_url.clone()], is_learner: true };
    // Another node joining at the same moment makes the leader refuse a second membership
    // change until the first is done: that one is waited out, anything else is final.
    let deadline = std::time::Instant::now() + CHANGE_IN_PROGRESS_WAIT;
    let mut pause = Duration::from_millis(100);
    let member = loop {
        match cluster.member_add(request.clone()).await {
            Ok(answer) => break answer.into_inner().member.context("member add answered no member")?,
            Err(status)
                if status.message().contains("undergoing a configuration change")
                    && std::time::Instant::now() < deadline =>
            {
                tracing::info!(leader = leader_url, "another membership change is in progress; joining after it");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(status) => anyhow::bail!("{leader_url} refused to add this member: {}", status.message()),
        }
    };
    std::fs::create_dir_all(raft_dir)?;
    std::fs::write(raft_dir.join(MEMBER_ID_FILE), member.id.to_string()).context("cannot store the member id")?;
    tracing::info!(member_id = member.id, leader = leader_url, "joined the cluster as a learner");
    Ok(member.id)
}

/// Waits until this learner has caught up with the leader, then asks to be promoted; retries
/// until it is a voter or the server stops.
pub async fn promote_when_caught_up(
    raft: ChainRaft,
    id: NodeId,
    leader_url: String,
    ca: Option<PathBuf>,
    shutdown: CancellationToken,
) {
    let mut pause = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let metrics = raft.metrics().borrow().clone();
        if metrics.membership_config.membership().voter_ids().any(|v| v == id) {
            return;
        }
        let caught_up =
            metrics.current_leader.is_some() && metrics.last_applied.map(|l| l.index) == metrics.last_log_index;
        if caught_up {
            let options = ChannelOptions { ca: ca.clone(), ..Default::default() };
            match channel(&leader_url, &options).await {
                Ok(ch) => match ClusterClient::new(ch).member_promote(MemberPromoteRequest { id }).await {
                    Ok(_) => {
                        tracing::info!(member_id = id, "promoted from learner to voter");
                        return;
                    }
                    Err(status) if status.message().contains("can only promote a learner") => return,
                    Err(status) => {
                        tracing::info!(member_id = id, reason = status.message(), "promotion not possible yet")
                    }
                },
                Err(e) => tracing::info!(member_id = id, error = %e, "cannot reach {leader_url} to be promoted yet"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

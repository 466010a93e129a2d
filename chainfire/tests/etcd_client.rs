//! The etcd-client crate (a Rust etcd client nobody on this team wrote) against chainfire,
//! exercising KV, Watch, Lease, Cluster and Maintenance.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    LeaseTimeToLiveOptions, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use photon_testkit::{free_port, TestServer};

async fn connect() -> (TestServer, Client) {
    let raft = format!("127.0.0.1:{}", free_port());
    let mut server = TestServer::start("chainfire-server", &["--raft-listen", &raft]);
    server.wait_healthy(Duration::from_secs(30)).await;
    let ca = Certificate::from_pem(std::fs::read(server.ca()).unwrap());
    let options = ConnectOptions::new().with_tls(TlsOptions::new().ca_certificate(ca));
    let client = Client::connect([server.url()], Some(options)).await.expect("etcd-client connects over TLS");
    (server, client)
}

#[tokio::test]
async fn kv_and_transactions() {
    let (_server, mut client) = connect().await;
    client.put("svc/a", "1", None).await.unwrap();
    client.put("svc/b", "2", None).await.unwrap();
    let got = client.get("svc/", Some(GetOptions::new().with_prefix())).await.unwrap();
    assert_eq!(got.count(), 2);
    assert_eq!(got.kvs()[1].value(), b"2");

    let txn = Txn::new()
        .when([Compare::value("svc/a", CompareOp::Equal, "1")])
        .and_then([TxnOp::put("svc/a", "one", None), TxnOp::get("svc/a", None)])
        .or_else([]);
    let done = client.txn(txn).await.unwrap();
    assert!(done.succeeded());

    let deleted = client.delete("svc/", Some(DeleteOptions::new().with_prefix().with_prev_key())).await.unwrap();
    assert_eq!(deleted.deleted(), 2);
    assert_eq!(deleted.prev_kvs().len(), 2);
    let revision = deleted.header().unwrap().revision();
    client.compact(revision, None).await.unwrap();
    let old = client.get("svc/a", Some(GetOptions::new().with_revision(revision - 1))).await;
    assert!(old.unwrap_err().to_string().contains("required revision has been compacted"));
}

#[tokio::test]
async fn watch_streams_changes() {
    let (_server, mut client) = connect().await;
    let mut stream = client.watch("w/", Some(WatchOptions::new().with_prefix().with_prev_key())).await.unwrap();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());
    client.put("w/x", "1", None).await.unwrap();
    client.delete("w/x", None).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
        seen.extend(response.events().iter().map(|e| (e.event_type(), e.prev_kv().map(|p| p.value().to_vec()))));
    }
    assert_eq!(seen, vec![(EventType::Put, None), (EventType::Delete, Some(b"1".to_vec()))]);
    stream.cancel(created.watch_id()).await.unwrap();
}

#[tokio::test]
async fn leases_keep_alive_and_revoke() {
    let (_server, mut client) = connect().await;
    let lease = client.lease_grant(30, None).await.unwrap();
    client.put("leased", "x", Some(PutOptions::new().with_lease(lease.id()))).await.unwrap();
    let (mut keeper, mut responses) = client.lease_keep_alive(lease.id()).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let kept = responses.message().await.unwrap().unwrap();
    assert_eq!((kept.id(), kept.ttl()), (lease.id(), 30));
    let ttl = client.lease_time_to_live(lease.id(), Some(LeaseTimeToLiveOptions::new().with_keys())).await.unwrap();
    assert_eq!(ttl.keys(), [b"leased".to_vec()]);
    assert!(client.leases().await.unwrap().leases().iter().any(|l| l.id() == lease.id()));
    client.lease_revoke(lease.id()).await.unwrap();
    assert_eq!(client.get("leased", None).await.unwrap().count(), 0);
}

#[tokio::test]
async fn cluster_and_maintenance() {
    let (_server, mut client) = connect().await;
    client.put("m", "1", None).await.unwrap();
    let members = client.member_list().await.unwrap();
    assert_eq!(members.members().len(), 1);
    let status = client.status().await.unwrap();
    assert_eq!(status.leader(), members.members()[0].id());
    assert!(status.db_size() > 0);
    let first = client.hash_kv(0).await.unwrap().hash();
    assert_eq!(first, client.hash_kv(0).await.unwrap().hash());
    client.defragment().await.unwrap();
    let mut snapshot = client.snapshot().await.unwrap();
    let mut bytes = 0usize;
    while let Some(chunk) = snapshot.message().await.unwrap() {
        bytes += chunk.blob().len();
    }
    assert_eq!(bytes % 512, 32, "etcd's snapshot framing");
}

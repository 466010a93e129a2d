//! Malformed and oversized requests get etcd's errors and change nothing.

use std::time::Duration;

use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::{compare, request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use photon_client::{channel, ChannelOptions};
use photon_testkit::{free_port, TestServer};
use tonic::Code;

async fn start() -> (TestServer, KvClient<tonic::transport::Channel>) {
    let raft = format!("127.0.0.1:{}", free_port());
    let mut server = TestServer::start("chainfire-server", &["--raft-listen", &raft]);
    server.wait_healthy(Duration::from_secs(30)).await;
    let options = ChannelOptions { ca: Some(server.ca()), ..Default::default() };
    let client = KvClient::new(channel(&server.url(), &options).await.unwrap()).max_encoding_message_size(8 << 20);
    (server, client)
}

fn put(key: &str, value: Vec<u8>) -> PutRequest {
    PutRequest { key: key.into(), value, ..Default::default() }
}

fn put_op(key: &str) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(put(key, b"v".to_vec()))) }
}

async fn revision(client: &mut KvClient<tonic::transport::Channel>) -> i64 {
    let response = client
        .range(RangeRequest { key: b"\0".to_vec(), range_end: b"\0".to_vec(), count_only: true, ..Default::default() })
        .await
        .unwrap();
    response.into_inner().header.unwrap().revision
}

#[tokio::test]
async fn bad_requests_get_etcd_errors_and_change_nothing() {
    let (_server, mut client) = start().await;
    client.put(put("seed", b"1".to_vec())).await.unwrap();
    let before = revision(&mut client).await;

    let cases: Vec<(&str, tonic::Status, Code, &str)> = vec![
        (
            "empty key",
            client.put(put("", b"x".to_vec())).await.unwrap_err(),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        // Over --max-request-bytes (1.5 MiB) but within gRPC's 512 KiB framing allowance:
        // etcd's own error. Past the allowance the transport refuses it, as etcd's does.
        (
            "oversized put",
            client.put(put("big", vec![7u8; 1800 * 1024])).await.unwrap_err(),
            Code::InvalidArgument,
            "etcdserver: request is too large",
        ),
        (
            "far oversized put",
            client.put(put("big", vec![7u8; 3 << 20])).await.unwrap_err(),
            Code::OutOfRange,
            "message length too large",
        ),
        (
            "value with ignore_value",
            client
                .put(PutRequest {
                    key: b"seed".to_vec(),
                    value: b"x".to_vec(),
                    ignore_value: true,
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "etcdserver: value is provided",
        ),
        (
            "too many txn ops",
            client
                .txn(TxnRequest { success: (0..129).map(|i| put_op(&format!("k{i}"))).collect(), ..Default::default() })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        (
            "duplicate key in txn",
            client
                .txn(TxnRequest { success: vec![put_op("dup"), put_op("dup")], ..Default::default() })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ),
        (
            "unknown compare target",
            client
                .txn(TxnRequest {
                    compare: vec![Compare {
                        key: b"seed".to_vec(),
                        target: 42,
                        target_union: Some(compare::TargetUnion::Version(1)),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "compare target",
        ),
        (
            "range of empty key",
            client.range(RangeRequest::default()).await.unwrap_err(),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            "lease that does not exist",
            client
                .put(PutRequest { key: b"leased".to_vec(), value: b"v".to_vec(), lease: 12345, ..Default::default() })
                .await
                .unwrap_err(),
            Code::NotFound,
            "etcdserver: requested lease not found",
        ),
    ];
    for (what, status, code, message) in cases {
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(status.message().contains(message), "{what}: {status:?}");
    }
    assert_eq!(revision(&mut client).await, before, "no refused request changed the store");
    for key in ["big", "dup", "leased", "k0"] {
        let found = client.range(RangeRequest { key: key.into(), ..Default::default() }).await.unwrap().into_inner();
        assert_eq!(found.count, 0, "{key} must not exist");
    }
}

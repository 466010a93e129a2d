//! One FlareDB store (with a real chainfire) through gRPC and REST: CRUD, batches, scans, CAS
//! races, TTL expiry, watch events, and bad input that changes nothing.

mod common;

use std::time::{Duration, Instant};

use common::{curl, Env};
use futures_util::StreamExt;
use photon_api::flaredb::v1::{
    BatchGetRequest, BatchPutRequest, CompareAndSwapRequest, DeleteRequest, Entry, GetRequest, PutRequest, ScanRequest,
    WatchRequest,
};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { namespace: "default".into(), key: key.into(), value: value.into(), ttl_seconds: 0, region: None }
}

fn get(key: &str) -> GetRequest {
    GetRequest { namespace: "default".into(), key: key.into(), region: None }
}

#[tokio::test]
async fn crud_batches_and_versions_through_grpc() {
    let env = Env::start(1, &[]).await;
    let mut kv = env.kv(0);
    assert_eq!(kv.put(put("a", "1")).await.unwrap().into_inner().version, 1);
    assert_eq!(kv.put(put("a", "2")).await.unwrap().into_inner().version, 2);
    let record = kv.get(get("a")).await.unwrap().into_inner().record.unwrap();
    assert_eq!((&record.value[..], record.version), (b"2".as_slice(), 2));
    assert!(kv.get(get("missing")).await.unwrap().into_inner().record.is_none());

    let entries = ["x", "y", "x2"].map(|k| Entry { key: k.into(), value: format!("v-{k}").into(), ttl_seconds: 0 });
    let batch = BatchPutRequest { namespace: "default".into(), entries: entries.to_vec(), ..Default::default() };
    assert_eq!(kv.batch_put(batch).await.unwrap().into_inner().versions, vec![1, 1, 1]);
    let keys = ["x", "nope", "y"].map(|k| k.as_bytes().to_vec()).to_vec();
    let found =
        kv.batch_get(BatchGetRequest { namespace: "default".into(), keys, region: None }).await.unwrap().into_inner();
    assert_eq!(found.records.iter().map(|r| r.key.as_slice()).collect::<Vec<_>>(), vec![b"x".as_slice(), b"y"]);

    let deleted = kv
        .delete(DeleteRequest { namespace: "default".into(), key: "a".into(), region: None })
        .await
        .unwrap()
        .into_inner();
    // The answer carries the record the delete removed.
    let previous = deleted.previous.expect("the removed record");
    assert!(deleted.deleted);
    assert_eq!((previous.key.as_slice(), previous.version), (b"a".as_slice(), 2), "{previous:?}");
    assert!(kv.get(get("a")).await.unwrap().into_inner().record.is_none());
    let again = kv.delete(DeleteRequest { namespace: "default".into(), key: "a".into(), region: None }).await.unwrap();
    let again = again.into_inner();
    assert!(!again.deleted && again.previous.is_none(), "{again:?}");
    // Re-created after a delete, a key starts again at version 1.
    assert_eq!(kv.put(put("a", "3")).await.unwrap().into_inner().version, 1);
}

#[tokio::test]
async fn scans_page_in_order_both_ways() {
    let env = Env::start(1, &[]).await;
    let mut kv = env.kv(0);
    let entries: Vec<Entry> = (0..25)
        .map(|i| Entry { key: format!("k{i:02}").into(), value: format!("{i}").into(), ttl_seconds: 0 })
        .collect();
    kv.batch_put(BatchPutRequest { namespace: "default".into(), entries, ..Default::default() }).await.unwrap();
    kv.put(put("other", "x")).await.unwrap();

    for reverse in [false, true] {
        let mut seen = Vec::new();
        let mut continuation = Vec::new();
        loop {
            let request = ScanRequest {
                namespace: "default".into(),
                start: b"k05".to_vec(),
                end: b"k20".to_vec(),
                limit: 4,
                reverse,
                keys_only: true,
                continuation: continuation.clone(),
                ..Default::default()
            };
            let page = kv.scan(request).await.unwrap().into_inner();
            assert!(page.records.len() <= 4);
            assert!(page.records.iter().all(|r| r.value.is_empty()), "keys_only");
            seen.extend(page.records.into_iter().map(|r| String::from_utf8(r.key).unwrap()));
            if page.continuation.is_empty() {
                break;
            }
            continuation = page.continuation;
        }
        let mut expected: Vec<String> = (5..20).map(|i| format!("k{i:02}")).collect();
        if reverse {
            expected.reverse();
        }
        assert_eq!(seen, expected, "reverse {reverse}");
    }

    // Values cut to a prefix: longer ones to its length, shorter ones whole.
    kv.put(put("k30", "abcdefgh")).await.unwrap();
    let request = ScanRequest {
        namespace: "default".into(),
        start: b"k24".to_vec(),
        end: b"k31".to_vec(),
        value_prefix: 3,
        ..Default::default()
    };
    let values: Vec<Vec<u8>> =
        kv.scan(request).await.unwrap().into_inner().records.into_iter().map(|r| r.value.to_vec()).collect();
    assert_eq!(values, [b"24".to_vec(), b"abc".to_vec()]);
}

#[tokio::test]
async fn exactly_one_of_racing_compare_and_swaps_wins() {
    let env = Env::start(1, &[]).await;
    let racers: Vec<_> = (0..12)
        .map(|i| {
            let mut kv = env.kv(0);
            tokio::spawn(async move {
                let request = CompareAndSwapRequest {
                    namespace: "default".into(),
                    key: "lock".into(),
                    expected_version: 0,
                    value: format!("owner-{i}").into(),
                    ttl_seconds: 0,
                    region: None,
                };
                kv.compare_and_swap(request).await.unwrap().into_inner()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let answer = racer.await.unwrap();
        let record = answer.record.expect("the record, new or current");
        if answer.succeeded {
            winners.push(record.value);
        } else {
            assert_eq!(record.version, 1, "a loser sees the winner's record");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creator wins");
    let mut kv = env.kv(0);
    let stored = kv.get(get("lock")).await.unwrap().into_inner().record.unwrap();
    assert_eq!(stored.value, winners[0]);
    // Swapping from the current version works once.
    let swap = |expected| CompareAndSwapRequest {
        namespace: "default".into(),
        key: "lock".into(),
        expected_version: expected,
        value: "next".into(),
        ttl_seconds: 0,
        region: None,
    };
    assert!(kv.compare_and_swap(swap(1)).await.unwrap().into_inner().succeeded);
    assert!(!kv.compare_and_swap(swap(1)).await.unwrap().into_inner().succeeded);
}

#[tokio::test]
async fn keys_with_a_ttl_expire_and_watchers_see_every_change() {
    let env = Env::start(1, &[]).await;
    let mut kv = env.kv(0);
    let mut events =
        kv.watch(WatchRequest { namespace: "default".into(), prefix: b"w/".to_vec() }).await.unwrap().into_inner();
    kv.put(put("w/a", "1")).await.unwrap();
    kv.put(put("elsewhere", "not watched")).await.unwrap();
    kv.put(PutRequest {
        namespace: "default".into(),
        key: "w/ttl".into(),
        value: "brief".into(),
        ttl_seconds: 1,
        region: None,
    })
    .await
    .unwrap();
    kv.delete(DeleteRequest { namespace: "default".into(), key: "w/a".into(), region: None }).await.unwrap();
    assert!(kv.get(get("w/ttl")).await.unwrap().into_inner().record.is_some());

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 4 {
        let next = tokio::time::timeout_at(deadline.into(), events.next()).await.expect("watch events in time");
        let event = next.expect("stream open").expect("no error");
        let record = event.record.unwrap();
        seen.push((event.kind, String::from_utf8(record.key).unwrap()));
    }
    // put w/a, put w/ttl, delete w/a, then the expiry of w/ttl (a delete) from the sweeper.
    assert_eq!(
        seen,
        vec![(0, "w/a".to_string()), (0, "w/ttl".to_string()), (1, "w/a".to_string()), (1, "w/ttl".to_string())]
    );
    assert!(kv.get(get("w/ttl")).await.unwrap().into_inner().record.is_none(), "expired");
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let env = Env::start(1, &[]).await;
    let mut kv = env.kv(0);
    kv.put(put("keep", "v")).await.unwrap();
    let cases: Vec<(PutRequest, tonic::Code, &str)> = vec![
        (put("", "v"), tonic::Code::InvalidArgument, "key must not be empty"),
        (
            PutRequest {
                namespace: "default".into(),
                key: vec![b'k'; 5000],
                value: "v".into(),
                ttl_seconds: 0,
                region: None,
            },
            tonic::Code::InvalidArgument,
            "limit is 4096",
        ),
        (
            PutRequest {
                namespace: "default".into(),
                key: "big".into(),
                value: vec![0; (1 << 20) + 1],
                ttl_seconds: 0,
                region: None,
            },
            tonic::Code::InvalidArgument,
            "max_value_bytes",
        ),
        (
            PutRequest { namespace: "nosuch".into(), key: "k".into(), value: "v".into(), ttl_seconds: 0, region: None },
            tonic::Code::NotFound,
            "unknown namespace \"nosuch\"",
        ),
    ];
    for (request, code, message) in cases {
        let status = kv.put(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{status:?}");
    }
    let inverted =
        ScanRequest { namespace: "default".into(), start: b"z".to_vec(), end: b"a".to_vec(), ..Default::default() };
    let status = kv.scan(inverted).await.unwrap_err();
    assert!(status.code() == tonic::Code::InvalidArgument && status.message().contains("inverted"), "{status:?}");
    let duplicate = BatchPutRequest {
        namespace: "default".into(),
        entries: vec![
            Entry { key: "d".into(), value: "1".into(), ttl_seconds: 0 },
            Entry { key: "d".into(), value: "2".into(), ttl_seconds: 0 },
        ],
        ..Default::default()
    };
    let status = kv.batch_put(duplicate.clone()).await.unwrap_err();
    assert!(status.message().contains("listed twice"), "{status:?}");
    // Nothing changed: only the key written first exists.
    let all = kv.scan(ScanRequest { namespace: "default".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(all.records.iter().map(|r| r.key.as_slice()).collect::<Vec<_>>(), vec![b"keep".as_slice()]);
    // Asked to, a key listed twice is written twice, in order.
    let versions = kv.batch_put(BatchPutRequest { in_order: true, ..duplicate }).await.unwrap().into_inner().versions;
    assert_eq!(versions, [1, 2]);
    let d = kv.get(GetRequest { namespace: "default".into(), key: b"d".to_vec(), region: None }).await.unwrap();
    let d = d.into_inner().record.unwrap();
    assert_eq!((&d.value[..], d.version), (&b"2"[..], 2));
}

#[tokio::test]
async fn rest_serves_keys_scans_regions_members_and_health() {
    let env = Env::start(1, &[]).await;
    let store = &env.stores[0];
    let (code, body) = curl(store, "PUT", "/api/v1/kv/users/alice", Some(r#"{"value":"admin"}"#));
    assert_eq!((code, body["version"].as_u64()), (200, Some(1)), "{body}");
    let (code, body) = curl(store, "GET", "/api/v1/kv/users/alice", None);
    assert_eq!((code, body["value"].as_str()), (200, Some("admin")), "{body}");
    // Compare-and-swap over REST: a stale version is refused with 409 and the current record.
    let (code, body) = curl(store, "PUT", "/api/v1/kv/users/alice", Some(r#"{"value":"x","expected_version":7}"#));
    assert_eq!((code, body["record"]["version"].as_u64()), (409, Some(1)), "{body}");
    curl(store, "PUT", "/api/v1/kv/users/bob", Some(r#"{"value":"dev"}"#));
    let (code, body) = curl(store, "GET", "/api/v1/scan?start=users/&end=users0&limit=1", None);
    assert_eq!((code, body["records"][0]["key"].as_str()), (200, Some("users/alice")), "{body}");
    let next = body["continuation"].as_str().expect("a continuation").to_string();
    let (_, body) =
        curl(store, "GET", &format!("/api/v1/scan?start=users/&end=users0&limit=1&continuation={next}"), None);
    assert_eq!(body["records"][0]["key"].as_str(), Some("users/bob"), "{body}");
    let (code, body) = curl(store, "DELETE", "/api/v1/kv/users/alice", None);
    assert_eq!((code, body["deleted"].as_bool()), (200, Some(true)), "{body}");
    let (code, body) = curl(store, "GET", "/api/v1/kv/users/alice", None);
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let (code, body) = curl(store, "PUT", "/api/v1/kv/k", Some(r#"{"value": 5}"#));
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("invalid_argument")), "{body}");
    let (code, body) = curl(store, "GET", "/api/v1/kv/k?namespace=nosuch", None);
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("unknown_namespace")), "{body}");

    let (code, body) = curl(store, "GET", "/api/v1/regions", None);
    assert_eq!(
        (code, body["regions"][0]["id"].as_u64(), body["regions"][0]["leader"].as_u64()),
        (200, Some(1), Some(1))
    );
    let (code, _) = curl(store, "GET", "/api/v1/regions/1", None);
    assert_eq!(code, 200);
    let (code, body) = curl(store, "GET", "/api/v1/regions/9", None);
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("no_such_region")), "{body}");
    let (code, body) = curl(store, "GET", "/admin/cluster/members", None);
    assert_eq!((code, body["members"][0]["id"].as_u64()), (200, Some(1)), "{body}");
    let (code, body) = curl(store, "GET", "/health", None);
    assert_eq!((code, body["status"].as_str(), body["chainfire"].as_str()), (200, Some("healthy"), Some("connected")));
    assert_eq!(body["raft"].as_str(), Some("leader"), "{body}");

    // The region map and the store entry are in chainfire, where clients and stores find them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", env.chainfire.url()))
            .arg(format!("--cacert={}", env.chainfire.ca().display()))
            .args(["get", "/flaredb/", "--prefix"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if listed.contains("/flaredb/regions/1") && listed.contains("/flaredb/stores/1") {
            assert!(listed.contains(r#""leader":1"#) && listed.contains(&store.url()), "{listed}");
            break;
        }
        assert!(Instant::now() < deadline, "region map not in chainfire: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

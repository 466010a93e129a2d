//! The Watch service: etcdctl watching live and from history, and the gRPC stream's finer
//! points (many watchers per stream, cancel, filters, progress) through the generated client.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::watch_client::WatchClient;
use photon_api::etcd::etcdserverpb::watch_create_request::FilterType;
use photon_api::etcd::etcdserverpb::{
    watch_request, PutRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use photon_client::{channel, ChannelOptions};
use photon_testkit::TestServer;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

async fn start(env: &[(&str, &str)]) -> TestServer {
    common::single(env).await
}

fn etcdctl(server: &TestServer) -> Command {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.url()))
        .arg(format!("--cacert={}", server.ca().display()));
    command
}

fn run(server: &TestServer, args: &[&str]) -> String {
    let out = etcdctl(server).args(args).output().unwrap();
    assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `etcdctl watch args`, performs `act`, and returns the first `lines` lines it printed.
fn watch_lines(server: &TestServer, args: &[&str], lines: usize, act: impl FnOnce()) -> Vec<String> {
    let mut child =
        etcdctl(server).arg("watch").args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500)); // let the watch register before acting
    act();
    let mut got = Vec::new();
    while got.len() < lines {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    got
}

#[tokio::test]
async fn etcdctl_watch_sees_live_changes_with_prev_kv() {
    let server = start(&[]).await;
    let lines = watch_lines(&server, &["app/", "--prefix", "--prev-kv"], 10, || {
        run(&server, &["put", "app/x", "1"]);
        run(&server, &["put", "elsewhere", "ignored"]);
        run(&server, &["put", "app/x", "2"]);
        run(&server, &["del", "app/x"]);
    });
    assert_eq!(lines, ["PUT", "app/x", "1", "PUT", "app/x", "1", "app/x", "2", "DELETE", "app/x"], "{lines:?}");
}

#[tokio::test]
async fn etcdctl_watch_replays_history_and_refuses_a_compacted_start() {
    let server = start(&[]).await;
    run(&server, &["put", "k", "a"]); // rev 2
    run(&server, &["put", "k", "b"]); // rev 3
    run(&server, &["put", "k", "c"]); // rev 4
    let lines = watch_lines(&server, &["k", "--rev=3"], 6, || {});
    assert_eq!(lines, ["PUT", "k", "b", "PUT", "k", "c"]);

    run(&server, &["compaction", "4"]);
    let out = etcdctl(&server).args(["watch", "k", "--rev=2"]).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("required revision has been compacted"), "{all}");
}

struct Session {
    requests: mpsc::Sender<WatchRequest>,
    responses: tonic::Streaming<WatchResponse>,
}

impl Session {
    async fn open(channel: Channel) -> Self {
        let (requests, rx) = mpsc::channel(16);
        let responses = WatchClient::new(channel).watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
        Self { requests, responses }
    }

    async fn send(&self, request: watch_request::RequestUnion) {
        self.requests.send(WatchRequest { request_union: Some(request) }).await.unwrap();
    }

    async fn create(&mut self, create: WatchCreateRequest) -> i64 {
        self.send(watch_request::RequestUnion::CreateRequest(create)).await;
        let created = self.next().await;
        assert!(created.created, "{created:?}");
        created.watch_id
    }

    async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(Duration::from_secs(10), self.responses.message())
            .await
            .expect("a watch response in time")
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn one_stream_many_watchers_cancel_filters_and_progress() {
    let server = start(&[("CHAINFIRE_WATCH_PROGRESS_NOTIFY_MS", "300")]).await;
    let channel =
        channel(&server.url(), &ChannelOptions { ca: Some(server.ca()), ..Default::default() }).await.unwrap();
    let mut kv = KvClient::new(channel.clone());
    let mut session = Session::open(channel).await;

    let a = session.create(WatchCreateRequest { key: b"a".to_vec(), ..Default::default() }).await;
    let b = session
        .create(WatchCreateRequest {
            key: b"b".to_vec(),
            filters: vec![FilterType::Noput as i32],
            ..Default::default()
        })
        .await;
    assert_ne!(a, b);

    kv.put(PutRequest { key: b"b".to_vec(), value: b"filtered".to_vec(), ..Default::default() }).await.unwrap();
    kv.put(PutRequest { key: b"a".to_vec(), value: b"1".to_vec(), ..Default::default() }).await.unwrap();
    let event = session.next().await;
    assert_eq!(event.watch_id, a, "the NOPUT watcher on b stays silent: {event:?}");
    assert_eq!(event.events[0].kv.as_ref().unwrap().value, b"1");

    session.send(watch_request::RequestUnion::CancelRequest(WatchCancelRequest { watch_id: a })).await;
    let canceled = session.next().await;
    assert!(canceled.canceled && canceled.watch_id == a);
    kv.put(PutRequest { key: b"a".to_vec(), value: b"2".to_vec(), ..Default::default() }).await.unwrap();

    session.send(watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {})).await;
    let progress = session.next().await;
    assert_eq!(progress.watch_id, -1, "a canceled watcher gets nothing, the progress reply comes: {progress:?}");
    assert_eq!(progress.header.unwrap().revision, 4);

    let duplicate = WatchCreateRequest { key: b"x".to_vec(), watch_id: b, ..Default::default() };
    session.send(watch_request::RequestUnion::CreateRequest(duplicate)).await;
    let refused = session.next().await;
    assert!(refused.canceled && refused.cancel_reason.contains("duplicate watch ID"), "{refused:?}");

    let quiet = session
        .create(WatchCreateRequest { key: b"quiet".to_vec(), progress_notify: true, ..Default::default() })
        .await;
    let notification = session.next().await;
    assert_eq!(notification.watch_id, quiet);
    assert!(notification.events.is_empty() && notification.header.unwrap().revision == 4, "{notification:?}");
}

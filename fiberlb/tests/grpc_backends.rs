//! L7 to backends that speak HTTP/2 (a pool with `backend_protocol: http2`): a real gRPC server
//! (tonic) behind fiberlb, called by a gRPC client over h2c (answers and error statuses, which
//! travel in trailers, come through) and by curl over HTTP/1.1 (fiberlb speaks HTTP/2 to the
//! backend whatever the client speaks); the forwarding headers reach the backend.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{wait_for, Stack};
use photon_api::testing::v1 as pb;
use photon_api::testing::v1::demo_client::DemoClient;
use photon_api::testing::v1::demo_server::{Demo, DemoServer};
use photon_testkit::free_port;
use tonic::{Request, Response, Status};

/// Answers with the `x-forwarded-for` it was sent, or NOT_FOUND when asked (`x-fail`).
struct Echo;

#[tonic::async_trait]
impl Demo for Echo {
    async fn list_items(&self, request: Request<pb::ListItemsRequest>) -> Result<Response<pb::ListItemsResponse>, Status> {
        if request.metadata().contains_key("x-fail") {
            return Err(Status::not_found("no such items"));
        }
        let forwarded = request.metadata().get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or("none");
        Ok(Response::new(pb::ListItemsResponse { caller: format!("forwarded for {forwarded}") }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_goes_through_to_an_http2_pool_from_grpc_and_http1_clients() {
    let stack = Stack::start().await;
    let grpc_port = free_port();
    let server = tokio::spawn(
        tonic::transport::Server::builder().add_service(DemoServer::new(Echo)).serve(([127, 0, 0, 1], grpc_port).into()),
    );
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"grpc","spec":{"backend_protocol":"http2"}}"#));
    let backend = format!(r#"{{"name":"g1","spec":{{"address":"127.0.0.1","port":{grpc_port}}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/pools/grpc/backends", Some(&backend));
    let listener = format!(r#"{{"name":"http","spec":{{"protocol":"http","port":{port},"default_pool":"grpc"}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let bad = stack.api("POST", "/loadbalancers/front/pools", Some(r#"{"name":"x","spec":{"backend_protocol":"spdy"}}"#), &stack.tenant);
    assert_eq!(bad.0, 400, "an unknown backend protocol is refused: {}", bad.1);

    // A gRPC client over h2c.
    let url = format!("http://127.0.0.1:{port}");
    let mut client = None;
    wait_for("the listener takes gRPC", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    for _ in 0..50 {
        let mut c = DemoClient::connect(url.clone()).await.expect("a channel");
        if c.list_items(pb::ListItemsRequest {}).await.is_ok() {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = client.expect("gRPC answers through fiberlb");
    let answer = client.list_items(pb::ListItemsRequest {}).await.expect("an answer").into_inner();
    assert_eq!(answer.caller, "forwarded for 127.0.0.1", "the backend saw the forwarding headers");
    let mut failing = Request::new(pb::ListItemsRequest {});
    failing.metadata_mut().insert("x-fail", "1".parse().expect("a header"));
    let e = client.list_items(failing).await.expect_err("the backend's error status");
    assert_eq!((e.code(), e.message()), (tonic::Code::NotFound, "no such items"), "the status in the trailers came through");

    // curl over HTTP/1.1: an empty gRPC message in, the answer's message out.
    let body = std::env::temp_dir().join(format!("fiberlb-grpc-{port}.bin"));
    std::fs::write(&body, [0u8, 0, 0, 0, 0]).expect("write the request body");
    let out = Command::new("curl")
        .args(["-s", "--http1.1", "--max-time", "5", "-o", "-", "-w", "\n%{http_code} %{http_version}"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(format!("{url}/photon.testing.v1.Demo/ListItems"))
        .output()
        .expect("curl runs");
    let _ = std::fs::remove_file(&body);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("200 1.1"), "HTTP/1.1 to the client: {text:?}");
    assert!(text.contains("forwarded for 127.0.0.1"), "the gRPC answer through HTTP/1.1: {text:?}");
    server.abort();
}

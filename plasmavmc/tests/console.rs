//! Serial consoles over gRPC and WebSocket (Python's websocket-client) with a real guest:
//! attached through the node running the VM and through the other node (relayed), output
//! replayed then followed, input typed into the guest's shell; refused to another project's
//! member, for an unknown VM and a stopped one.

mod common;

use std::time::{Duration, Instant};

use common::Stack;
use photon_api::plasmavmc::v1::console_client::ConsoleClient;
use photon_api::plasmavmc::v1::ConsoleInput;
use tonic::Code;

struct Attached {
    input: tokio::sync::mpsc::Sender<ConsoleInput>,
    output: tonic::Streaming<photon_api::plasmavmc::v1::ConsoleOutput>,
    seen: String,
}

async fn attach(stack: &Stack, node: usize, token: &str, vm: &str, backlog: u32) -> Result<Attached, tonic::Status> {
    let options = photon_client::ChannelOptions { ca: Some(stack.nodes[node].ca()), ..Default::default() };
    let channel = photon_client::lazy_channel(&stack.nodes[node].url(), &options).expect("a channel");
    let (input, rx) = tokio::sync::mpsc::channel(16);
    let first = ConsoleInput { org: "acme".into(), project: "web".into(), vm: vm.into(), backlog, data: Vec::new() };
    input.send(first).await.expect("the first message");
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut request = tonic::Request::new(stream);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("a header"));
    let output = ConsoleClient::new(channel).attach(request).await?.into_inner();
    Ok(Attached { input, output, seen: String::new() })
}

impl Attached {
    /// Reads output until it holds `text`.
    async fn expect(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.output.message()).await {
                Ok(Ok(Some(chunk))) => self.seen.push_str(&String::from_utf8_lossy(&chunk.data)),
                other => panic!("console: {text:?} never came ({other:?}); saw:\n{}", self.seen),
            }
        }
    }

    async fn type_line(&self, line: &str) {
        let data = format!("{line}\n").into_bytes();
        self.input.send(ConsoleInput { data, ..Default::default() }).await.expect("typed");
    }
}

/// The console of `vm` over WebSocket through `node` as `token`, typing `line`: "SAW" and what
/// came back when `want` came, "MISSED ..." when not, or "STATUS <code>" when the upgrade was
/// refused.
fn websocket(stack: &Stack, node: usize, token: &str, vm: &str, line: &str, want: &str) -> String {
    const CLIENT: &str = r#"
import sys, time, websocket
url, token, ca, line, want = sys.argv[1:6]
try:
    ws = websocket.create_connection(url, header=["Authorization: Bearer " + token], sslopt={"ca_certs": ca}, timeout=20)
except websocket.WebSocketBadStatusException as e:
    print("STATUS %d" % e.status_code)
    sys.exit(0)
ws.send_binary((line + "\n").encode())
seen, deadline = b"", time.time() + 20
while want.encode() not in seen and time.time() < deadline:
    opcode, data = ws.recv_data()
    seen += data
print(("SAW " if want.encode() in seen else "MISSED ") + seen.decode(errors="replace")[-400:])
ws.close()
"#;
    let url = format!("{}/api/v1/orgs/acme/projects/web/vms/{vm}/console?backlog=4096", stack.nodes[node].url().replacen("https", "wss", 1));
    let out = std::process::Command::new("python3")
        .args(["-c", CLIENT, &url, token])
        .arg(stack.nodes[node].ca())
        .args([line, want])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "the WebSocket client failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_reached_through_any_node_and_only_by_the_owner() {
    let stack = Stack::start(2).await;
    stack.flavor_and_image("small", 1, 256);
    let created = stack.expect(201, "POST", "/vms", Some(r#"{"name":"c1","spec":{"flavor":"small","image":"guest"}}"#));
    let uid = created["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let vm = stack.wait_state("c1", "running", Duration::from_secs(90));
    let here: usize = if vm["status"]["node"] == "node-0" { 0 } else { 1 };
    stack.wait_console(here, &uid, "PLASMAVMC-GUEST-READY", 1, Duration::from_secs(90));

    for (node, how) in [(here, "local"), (1 - here, "relayed")] {
        let mut console = attach(&stack, node, &stack.tenant, "c1", 64 * 1024).await.unwrap_or_else(|e| panic!("{how}: {e}"));
        console.expect("PLASMAVMC-GUEST-READY", Duration::from_secs(10)).await;
        let count = console.seen.matches("guest: count").count();
        console.expect(&format!("guest: count {}", count + 1), Duration::from_secs(10)).await;
        console.type_line(&format!("echo {how}-$((6*7))")).await;
        console.expect(&format!("{how}-42"), Duration::from_secs(20)).await;
    }

    // The same console over WebSocket, on its node and relayed.
    for (node, how) in [(here, "ws-local"), (1 - here, "ws-relayed")] {
        let said = websocket(&stack, node, &stack.tenant, "c1", &format!("echo {how}-$((6*7))"), &format!("{how}-42"));
        assert!(said.starts_with("SAW"), "{how}: {said}");
    }
    assert_eq!(websocket(&stack, 0, &stack.stranger, "c1", "", "x"), "STATUS 403", "another project's member");
    assert_eq!(websocket(&stack, 0, &stack.tenant, "nope", "", "x"), "STATUS 404", "an unknown VM");
    assert_eq!(websocket(&stack, 0, "not-a-token", "c1", "", "x"), "STATUS 401", "no valid token");

    let refused = attach(&stack, 0, &stack.stranger, "c1", 0).await.err().map(|e| e.code());
    assert_eq!(refused, Some(Code::PermissionDenied), "another project's member");
    let unknown = attach(&stack, 0, &stack.tenant, "nope", 0).await.err().map(|e| e.code());
    assert_eq!(unknown, Some(Code::NotFound));
    stack.expect(202, "POST", "/vms/c1/stop", None);
    stack.wait_state("c1", "stopped", Duration::from_secs(30));
    let stopped = attach(&stack, here, &stack.tenant, "c1", 0).await.err().map(|e| e.code());
    assert_eq!(stopped, Some(Code::FailedPrecondition));
}

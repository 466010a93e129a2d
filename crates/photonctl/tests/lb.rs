//! `photonctl lb` as a tenant uses it: the built binary, logged in to IAM as a user of one
//! project, against real chainfire, flaredb, IAM and fiberlb-server (FiberLB's test stack):
//! a load balancer built with it carries traffic (curl through it), and `lb health` shows the
//! backends' live state.

#[path = "../../../fiberlb/tests/common/mod.rs"]
mod stack;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use photon_api::iam::v1 as pb;
use photon_testkit::{binary, free_port, output_with_stdin};
use stack::iam_env::bearer;
use stack::{backend, through, wait_for, Stack};

const PASSWORD: &str = "alice-long-password";

fn photonctl(config: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut command = Command::new(binary("photonctl"));
    command.args(args).env("PHOTONCTL_CONFIG_DIR", config);
    let out = output_with_stdin(&mut command, stdin.unwrap_or_default());
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_builds_a_load_balancer_with_photonctl_lb() {
    let stack = Stack::start().await;
    let mut admin = stack.env.admin();
    let user = pb::CreateUserRequest { org: "acme".into(), name: "alice".into(), display_name: String::new(), password: PASSWORD.into() };
    admin.create_user(bearer(&stack.root, user)).await.unwrap();
    let binding = pb::CreateBindingRequest {
        scope: "orgs/acme/projects/web".into(),
        principal: "user:alice".into(),
        role: "member".into(),
        ..Default::default()
    };
    admin.create_binding(bearer(&stack.root, binding)).await.unwrap();
    let config = tempfile::tempdir().unwrap();
    let (iam, ca) = (stack.env.iam.url(), stack.env.iam.ca().display().to_string());
    let (ok, text) = photonctl(config.path(), &["login", "alice", "--endpoint", &iam, "--ca", &ca], Some(PASSWORD));
    assert!(ok, "{text}");
    let (url, lb_ca) = (stack.lb.url(), stack.lb.ca().display().to_string());
    let lb = |args: &[&str]| {
        let mut line = vec!["lb", "--endpoint", &url, "--ca", &lb_ca, "--project", "web"];
        line.extend_from_slice(args);
        let (ok, text) = photonctl(config.path(), &line, None);
        assert!(ok, "photonctl lb {args:?}: {text}");
        text
    };

    let (b1, b2) = (backend("b1").await, backend("b2").await);
    let port = free_port();
    let created = lb(&["create", "front", "--vip", "127.0.0.1"]);
    assert!(created.starts_with("NAME") && created.contains("front") && created.contains("127.0.0.1"), "{created}");
    lb(&["pool", "add", "front", "web", "--algorithm", "round_robin"]);
    lb(&["backend", "add", "front", "web", "b1", &format!("127.0.0.1:{}", b1.port)]);
    lb(&["backend", "add", "front", "web", "b2", &format!("127.0.0.1:{}", b2.port), "--weight", "2"]);
    lb(&["check", "add", "front", "web", "tcp", "--probe", "tcp", "--interval-ms", "200"]);
    lb(&["listener", "add", "front", "tcp", "--protocol", "tcp", "--port", &port.to_string(), "--pool", "web"]);
    let listeners = lb(&["listener", "ls", "front"]);
    assert!(listeners.contains("tcp") && listeners.contains(&port.to_string()) && listeners.contains("web"), "{listeners}");
    wait_for("traffic through the load balancer", Duration::from_secs(2), || through(port).is_some()).await;

    // The live view: both up; then b1 disabled shows as such and gets nothing.
    let health = lb(&["health", "front", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&health).unwrap();
    let up: Vec<bool> = doc["backends"].as_array().unwrap().iter().map(|b| b["up"].as_bool().unwrap()).collect();
    assert_eq!(up, [true, true], "{health}");
    let set = lb(&["backend", "set", "front", "web", "b1", "--state", "disabled"]);
    assert!(set.contains("disabled"), "{set}");
    wait_for("b1 gets nothing", Duration::from_secs(2), || (0..4).all(|_| through(port).as_deref() == Some("b2"))).await;
    let table = lb(&["health", "front"]);
    assert!(table.starts_with("POOL") && table.lines().any(|l| l.contains("b1") && l.contains("disabled")), "{table}");
    let backends = lb(&["backend", "ls", "front", "web"]);
    assert!(backends.lines().any(|l| l.contains("b2") && l.contains('2')), "{backends}");

    // Deleting the load balancer takes everything; the port closes.
    assert!(lb(&["rm", "front"]).contains("deleted load balancer front"));
    wait_for("the port closes", Duration::from_secs(2), || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()).await;
    let none = lb(&["ls"]);
    assert!(!none.contains("front"), "{none}");
}

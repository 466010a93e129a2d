//! FlashDNS on a cluster of test hosts (network namespaces, one address each; the Operations I
//! harness): three control-plane nodes each run flashdns beside chainfire, flaredb and IAM, as
//! their units would. A record changed through one node's API is answered by all three within a
//! second; with chainfire stopped everywhere they keep answering from their last copy. Needs
//! root (network namespaces), as CI has.

use std::time::{Duration, Instant};

use photon_testkit::cluster::Cluster;
use serde_json::{json, Value};

/// The administrator's password, from whichever node's IAM created it.
fn admin_password(cluster: &Cluster) -> String {
    for node in &cluster.nodes {
        if let Ok(text) = std::fs::read_to_string(node.data.path().join("iam/initial-admin-password")) {
            return text.trim().to_string();
        }
    }
    panic!("no node's IAM wrote the first administrator's password")
}

/// curl inside node `i` with the cluster CA: (status, body as JSON).
fn curl(cluster: &Cluster, i: usize, args: &[&str]) -> (u16, Value) {
    let ca = cluster.ca().display().to_string();
    let mut all = vec!["-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}", "--cacert", ca.as_str()];
    all.extend_from_slice(args);
    let out = cluster.lab.exec(i, "curl", &all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::String(body.into())))
}

fn admin_token(cluster: &Cluster, password: &str) -> String {
    let body = json!({"user": "admin", "password": password}).to_string();
    let (status, answer) = curl(
        cluster,
        0,
        &["-H", "content-type: application/json", "--data-binary", &body, "https://127.0.0.1:8080/api/v1/auth/token"],
    );
    assert_eq!(status, 200, "admin logs in: {answer}");
    answer["access_token"].as_str().expect("a token").to_string()
}

/// The answer section of `dig @127.0.0.1 name A` run inside node `i`.
fn answer(cluster: &Cluster, i: usize, name: &str) -> Vec<String> {
    let out = cluster.lab.exec(i, "dig", &["@127.0.0.1", "+time=1", "+tries=1", "+short", name, "A"]);
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn three_flashdns_nodes_answer_a_change_within_a_second_and_outlive_chainfire() {
    let mut cluster = Cluster::new(3);
    cluster.start_nodes(&[0, 1, 2]);
    for i in 0..3 {
        cluster.wait_healthy(i, Duration::from_secs(60));
    }
    eprintln!("the control plane is healthy on three nodes");
    for i in 0..3 {
        cluster.add_service(i, "flashdns");
        cluster.start_service(i, "flashdns");
    }
    eprintln!("flashdns started on three nodes");
    for i in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.health(i, "flashdns").0 != 200 {
            assert!(Instant::now() < deadline, "flashdns on node {i}: {:?}", cluster.health(i, "flashdns"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let token = admin_token(&cluster, &admin_password(&cluster));
    let bearer = format!("authorization: Bearer {token}");
    let json = "content-type: application/json";
    // IAM replicas reload bindings every second: the node that did not bootstrap may not know
    // the administrator's yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let org = ["-H", &bearer, "-H", json, "--data-binary", r#"{"name":"acme"}"#, "https://127.0.0.1:8080/api/v1/orgs"];
        let (status, body) = curl(&cluster, 0, &org);
        if status / 100 == 2 {
            break;
        }
        assert!(status == 403 && Instant::now() < deadline, "create org acme: {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let projects = "https://127.0.0.1:8080/api/v1/orgs/acme/projects";
    let (status, body) = curl(&cluster, 0, &["-H", &bearer, "-H", json, "--data-binary", r#"{"name":"web"}"#, projects]);
    assert_eq!(status / 100, 2, "create project acme/web: {body}");
    let zones = "https://127.0.0.1:853/api/v1/orgs/acme/projects/web/zones";
    let (status, body) = curl(
        &cluster,
        0,
        &["-H", &bearer, "-H", "content-type: application/json", "--data-binary", r#"{"name":"cluster.test"}"#, zones],
    );
    assert_eq!(status, 201, "{body}");

    for round in 0..3 {
        let address = format!("192.0.2.{}", 50 + round);
        let node = round % 3;
        let url = format!("{zones}/cluster.test/records/www/A");
        let data = format!(r#"{{"ttl":60,"data":["{address}"]}}"#);
        let (status, body) = curl(
            &cluster,
            node,
            &["-X", "PUT", "-H", &bearer, "-H", "content-type: application/json", "--data-binary", &data, &url],
        );
        let changed = Instant::now();
        assert_eq!(status, 200, "{body}");
        for i in 0..3 {
            while answer(&cluster, i, "www.cluster.test.") != vec![address.clone()] {
                assert!(
                    changed.elapsed() < Duration::from_secs(1),
                    "round {round}: node {i} did not answer {address} within 1 s of node {node}'s API"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        println!("round {round}: changed through node {node}, answered by all three after {:?}", changed.elapsed());
    }

    // Chainfire stopped on every node: the last copy keeps answering, /health says degraded.
    for i in 0..3 {
        cluster.nodes[i].service("chainfire").kill9();
    }
    for i in 0..3 {
        assert_eq!(answer(&cluster, i, "www.cluster.test."), vec!["192.0.2.52".to_string()], "node {i}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..3 {
        loop {
            let (status, health) = cluster.health(i, "flashdns");
            if status == 503 && health["chainfire"] == "unreachable" {
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {status} {health}");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(answer(&cluster, i, "www.cluster.test."), vec!["192.0.2.52".to_string()], "node {i}");
    }
}

//! FlashDNS on a cluster of test hosts (network namespaces, one address each; the Operations I
//! harness): three control-plane nodes each run flashdns beside chainfire, flaredb and IAM, as
//! their units would. A record changed through one node's API is answered by all three within a
//! second; with chainfire stopped everywhere they keep answering from their last copy. Needs
//! root (network namespaces), as CI has.

use std::time::{Duration, Instant};

use photon_testkit::cluster::Cluster;
use serde_json::Value;

/// curl inside node `i` with the cluster CA: (status, body as JSON).
fn curl(cluster: &Cluster, i: usize, args: &[&str]) -> (u16, Value) {
    cluster.curl_with(i, args)
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
    let token = cluster.admin_token();
    let bearer = format!("authorization: Bearer {token}");
    cluster.org_with_project(&token, "acme", "web");
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
        // IAM replicas pick up the new project's bindings within their policy refresh: a
        // flashdns asking another node's IAM may be refused until then.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = curl(
                &cluster,
                node,
                &["-X", "PUT", "-H", &bearer, "-H", "content-type: application/json", "--data-binary", &data, &url],
            );
            if status == 200 {
                break;
            }
            assert!(status == 403 && Instant::now() < deadline, "PUT {url}: {status} {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let changed = Instant::now();
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

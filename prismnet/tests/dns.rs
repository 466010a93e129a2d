//! Ports' names in FlashDNS, with real chainfire, IAM, flashdns-server and prismnet-server
//! processes and `dig`: a port's name answers within seconds of its create and is gone after its
//! delete; a VPC's zone goes with the VPC; FlashDNS coming late, a record changed by hand there
//! and the registrar's node dying are all repaired; tenants can neither change the platform's
//! zones nor take its domain.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{api_server, Stack};
use photon_testkit::{free_port, TestServer};

const ZONE: &str = "blue.web.acme.photon.internal.";

/// `dig +short name type` against FlashDNS on `port`: the answer's lines, or the rcode when
/// it is not NOERROR.
fn dig(port: u16, name: &str, rtype: &str) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=1", "+tries=1", "+norecurse", name, rtype])
        .output()
        .expect("dig runs (scripts/setup installs bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("no answer");
    if status != "NOERROR" {
        return status.to_string();
    }
    let answer: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    answer.join(" ")
}

/// Waits (up to `within`) until `dig` says `expected`; how long it took.
async fn until_dig(port: u16, name: &str, expected: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = dig(port, name, "A");
        if got == expected {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{name}: {got:?}, not {expected:?} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A flashdns-server on the stack's chainfire and IAM (not started), DNS on `dns_port`.
fn flashdns(stack: &Stack, dns_port: u16) -> TestServer {
    let (chainfire, iam) = (stack.env.chainfire.url(), stack.env.iam.url());
    let listen = format!("127.0.0.1:{dns_port}");
    TestServer::with_shared_ca(
        "flashdns-server",
        stack.env.ca.path(),
        &["--chainfire", &chainfire, "--iam", &iam, "--dns-listen", &listen],
    )
}

fn free_udp_tcp_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

async fn health(net: &TestServer) -> serde_json::Value {
    net.health().await.map(|a| a.body).unwrap_or_default()
}

#[tokio::test]
async fn ports_are_named_in_flashdns_from_create_to_delete_whoever_registers_them() {
    let dns_port = free_udp_tcp_port();
    let stack = Stack::start_with(&[("IAM_BOOTSTRAP_SERVICES", "[\"prismnet\"]")], &[]).await;
    // FlashDNS is prepared, not started: prismnet starts first, as after a cold boot where
    // FlashDNS is late.
    let mut dns = flashdns(&stack, dns_port);
    let flashdns_url = dns.url();
    let credentials = stack.env.iam.dir().join("data/services/prismnet.json");
    assert!(credentials.exists(), "IAM wrote PrismNET's credentials");
    let named_env = |node: &str| {
        vec![
            ("PRISMNET_DNS_FLASHDNS", flashdns_url.clone()),
            ("PRISMNET_DNS_RESYNC_MS", "500".to_string()),
            ("PRISMNET_IAM_CREDENTIALS_FILE", credentials.display().to_string()),
            ("PRISMNET_DATAPLANE_NODE", node.to_string()),
        ]
    };
    let mut first = api_server(&stack.env, &named_env("n1"));
    first.process.start();
    first.wait_healthy(Duration::from_secs(30)).await;

    stack.expect(201, "POST", "/vpcs", Some(r#"{"name": "blue", "spec": {"cidr": "10.0.0.0/16"}}"#));
    stack.expect(201, "POST", "/vpcs/blue/subnets", Some(r#"{"name": "front", "spec": {"cidr": "10.0.1.0/24"}}"#));
    let port = stack.expect(201, "POST", "/vpcs/blue/subnets/front/ports", Some(r#"{"name": "db", "spec": {}}"#));
    let ip = port["spec"]["ip"].as_str().expect("an address").to_string();

    // FlashDNS is not there: the registrar says so and keeps trying.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(&first).await;
        if h["dns"].as_str().is_some_and(|s| s.contains("failing")) {
            assert_eq!(h["status"], "healthy", "names are optional: {h}");
            break;
        }
        assert!(Instant::now() < deadline, "health never said names fail: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    dns.process.start();
    dns.wait_healthy(Duration::from_secs(30)).await;
    let name = format!("db.front.{ZONE}");
    let late = until_dig(dns_port, &name, &ip, Duration::from_secs(15)).await;
    eprintln!("named {late:?} after FlashDNS came up");

    // A new port: named within a second or two (the registrar follows chainfire's watch).
    let web = stack.expect(201, "POST", "/vpcs/blue/subnets/front/ports", Some(r#"{"name": "web", "spec": {}}"#));
    let web_ip = web["spec"]["ip"].as_str().expect("an address").to_string();
    let took = until_dig(dns_port, &format!("web.front.{ZONE}"), &web_ip, Duration::from_secs(5)).await;
    eprintln!("a new port named in {took:?}");
    let h = health(&first).await;
    assert_eq!(h["dns"], "zones registered: 1", "{h}");

    // Another tenant's VPC of the same name and addresses: its own zone.
    let (status, body) = stack.net.project_call(("beta", "web"), "POST", "/vpcs", Some(r#"{"name": "blue", "spec": {"cidr": "10.0.0.0/16"}}"#), &stack.stranger);
    assert_eq!(status, 201, "{body}");
    let beta_zone = "blue.web.beta.photon.internal.";
    until_dig(dns_port, beta_zone, "", Duration::from_secs(5)).await;

    // Tenants cannot touch the platform's zones, nor take a zone in its domain.
    let auth = format!("authorization: Bearer {}", stack.tenant);
    let records = format!("/api/v1/orgs/platform/projects/services/zones/{ZONE}/records/evil/A");
    let (status, body) = dns.curl("PUT", &records, Some(r#"{"ttl": 60, "data": ["192.0.2.66"]}"#), &[&auth]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = dns.curl("POST", "/api/v1/orgs/acme/projects/web/zones", Some(r#"{"name": "x.photon.internal"}"#), &[&auth]);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("overlaps"), "{body}");

    // A record added by hand in FlashDNS (by an administrator) is taken out again.
    let root = format!("authorization: Bearer {}", stack.root);
    let (status, body) = dns.curl("PUT", &records, Some(r#"{"ttl": 60, "data": ["192.0.2.66"]}"#), &[&root]);
    assert_eq!(status, 200, "{body}");
    until_dig(dns_port, &format!("evil.{ZONE}"), "NXDOMAIN", Duration::from_secs(5)).await;

    // The registrar's node dies: another takes its claim and carries on.
    let mut second = api_server(&stack.env, &named_env("n2"));
    second.process.start();
    second.wait_healthy(Duration::from_secs(30)).await;
    let h = health(&second).await;
    assert!(h["dns"].as_str().is_some_and(|s| s.starts_with("standby")), "{h}");
    first.process.kill9();
    stack.expect(204, "DELETE", "/vpcs/blue/subnets/front/ports/db", None);
    let took = until_dig(dns_port, &name, "NXDOMAIN", Duration::from_secs(20)).await;
    eprintln!("a deleted port unnamed {took:?} after its registrar was killed");
    assert!(until_dig(dns_port, &format!("web.front.{ZONE}"), &web_ip, Duration::from_secs(1)).await < Duration::from_secs(1));

    // The VPC deleted: its zone goes (its names fall to the platform's zone, which has none).
    stack.expect(204, "DELETE", "/vpcs/blue", None);
    until_dig(dns_port, &format!("web.front.{ZONE}"), "NXDOMAIN", Duration::from_secs(5)).await;
    let (status, body) = dns.curl("GET", &format!("/api/v1/orgs/platform/projects/services/zones/{ZONE}"), None, &[&root]);
    assert_eq!(status, 404, "the zone is deleted, not emptied: {body}");
}

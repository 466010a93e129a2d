//! VIP failover on test hosts (network namespaces on one bridge, the Operations I harness): a
//! three-node control plane and two worker nodes running fiberlb; two load balancers, one with
//! an IPv4 and one with an IPv6 address, each held by one of the workers (a chainfire lease),
//! which adds it to its link and announces it (gratuitous ARP, unsolicited neighbour
//! advertisement); a client on the segment reaches a backend through both. The holder's link
//! is cut, and the client reaches the backend through both addresses again within 3 s — only
//! the announcement moves its cached neighbour entry, which would otherwise point at the dead
//! node for tens of seconds. Twice, so each family's holder is cut at least once. And a holder
//! that is also chainfire's Raft leader: its lease is carried on by the next leader (lease
//! checkpoints), so the failover still takes under 3 s. Needs root.

use std::path::Path;
use std::time::{Duration, Instant};

use photon_testkit::cluster::Cluster;

const VIP4: &str = "10.213.0.200";
const VIP6: &str = "fd13::200";
/// The IPv6 prefix the test gives every node's link (the harness's addresses are IPv4).
const PREFIX6: &str = "fd13::";

/// Whether node `i` has `vip` on its link.
fn holds(cluster: &Cluster, i: usize, vip: &str) -> bool {
    let out = cluster.lab.exec(i, "ip", &["addr", "show", "dev", "eth0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().any(|line| line.trim().starts_with("inet") && line.contains(&format!(" {vip}/")))
}

fn url(vip: &str) -> String {
    if vip.contains(':') {
        format!("http://[{vip}]:8000/")
    } else {
        format!("http://{vip}:8000/")
    }
}

/// Whether curl from node `i` reaches the backend through `vip` (short timeouts).
fn through(cluster: &Cluster, i: usize, vip: &str) -> bool {
    let out = cluster.lab.exec(i, "curl", &["-s", "--connect-timeout", "0.3", "-m", "0.8", &url(vip)]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("vip-backend")
}


/// A web server on node `i` (python's, as any host has) answering "vip-backend" on port 9999.
fn backend(cluster: &Cluster, i: usize) -> (photon_testkit::Process, tempfile::TempDir) {
    let site = tempfile::tempdir().expect("a temp dir");
    std::fs::write(site.path().join("index.html"), "vip-backend").expect("the page");
    let mut web = cluster.lab.process(i, "backend web server", Path::new("python3"), &site.path().join("web.log"));
    for arg in ["-m", "http.server", "9999", "--bind", "0.0.0.0", "--directory"] {
        web.arg(arg);
    }
    web.arg(site.path());
    web.start();
    (web, site)
}

/// Creates, through node `api`'s fiberlb, a load balancer per (name, VIP) with a TCP listener
/// on 8000 to the backend on node `backend_node`.
fn create_lbs(cluster: &Cluster, api: usize, backend_node: usize, lbs: &[(&str, &str)]) {
    let token = cluster.admin_token();
    cluster.org_with_project(&token, "acme", "web");
    let bearer = format!("authorization: Bearer {token}");
    let base = "https://127.0.0.1:9092/api/v1/orgs/acme/projects/web/loadbalancers";
    let backend_addr = cluster.lab.addr(backend_node);
    for (lb, vip) in lbs {
        for (path, body) in [
            (String::new(), format!(r#"{{"name":"{lb}","spec":{{"vip":"{vip}"}}}}"#)),
            (format!("/{lb}/pools"), r#"{"name":"web","spec":{}}"#.to_string()),
            (format!("/{lb}/pools/web/backends"), format!(r#"{{"name":"py","spec":{{"address":"{backend_addr}","port":9999}}}}"#)),
            (format!("/{lb}/listeners"), r#"{"name":"tcp","spec":{"protocol":"tcp","port":8000,"default_pool":"web"}}"#.to_string()),
        ] {
            let url = format!("{base}{path}");
            // IAM replicas pick up the new project's bindings within their policy refresh: a
            // fiberlb asking another node's IAM may be refused until then.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (status, answer) = cluster.curl_with(api, &["-H", &bearer, "-H", "content-type: application/json", "--data-binary", &body, &url]);
                if status == 201 {
                    break;
                }
                assert!(status == 403 && Instant::now() < deadline, "POST {url}: {status} {answer}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

#[test]
fn the_vips_move_to_the_other_node_within_three_seconds_when_their_holder_is_cut_off() {
    let mut cluster = Cluster::new(3);
    let workers = [cluster.add_node(false, false, None), cluster.add_node(false, false, None)];
    cluster.start_nodes(&[0, 1, 2]);
    for i in 0..3 {
        cluster.wait_healthy(i, Duration::from_secs(60));
    }
    for i in 0..cluster.lab.len() {
        let out = cluster.lab.exec(i, "ip", &["addr", "add", &format!("{PREFIX6}{}/64", i + 1), "dev", "eth0", "nodad"]);
        assert!(out.status.success(), "an IPv6 address on node {i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    cluster.start_nodes(&workers);
    for i in workers {
        cluster.wait_healthy(i, Duration::from_secs(60));
        cluster.add_service(i, "fiberlb");
        cluster.start_service(i, "fiberlb");
    }
    let _web = backend(&cluster, 2);
    create_lbs(&cluster, workers[0], 2, &[("front4", VIP4), ("front6", VIP6)]);

    // Each VIP is held by one node; the client reaches the backend through both.
    let took = cluster.wait_for("a node holds each VIP and serves it", Duration::from_secs(15), |c| {
        through(c, 2, VIP4) && through(c, 2, VIP6)
    });
    eprintln!("the VIPs served {took:?} after the load balancers were created");

    for round in 0..2 {
        for vip in [VIP4, VIP6] {
            let holders: Vec<usize> = workers.iter().copied().filter(|&i| holds(&cluster, i, vip)).collect();
            assert_eq!(holders.len(), 1, "round {round}: exactly one node holds {vip}: {holders:?}");
        }
        // Round 0 cuts the IPv6 holder; round 1 the node holding both by then (the other one).
        let holder = workers.iter().copied().find(|&i| holds(&cluster, i, VIP6)).expect("a holder");
        let other = if holder == workers[0] { workers[1] } else { workers[0] };
        let moved: Vec<&str> = [VIP4, VIP6].into_iter().filter(|vip| holds(&cluster, holder, vip)).collect();

        cluster.lab.cut(holder);
        let cut = Instant::now();
        let mut pending = vec![VIP4, VIP6];
        while !pending.is_empty() {
            pending.retain(|vip| !through(&cluster, 2, vip));
            assert!(
                cut.elapsed() < Duration::from_secs(3),
                "round {round}: the client did not reach the backend through {pending:?} within 3 s of the cut:\n{}",
                cluster.log(other, "fiberlb")
            );
        }
        eprintln!("round {round}: {moved:?} failed over; the client reached the backend through both {:?} after the cut", cut.elapsed());
        for vip in [VIP4, VIP6] {
            assert!(holds(&cluster, other, vip), "round {round}: the other node holds {vip} now");
        }

        // The cut-off node gives the VIPs up on its own (it cannot renew its leases).
        let deadline = Instant::now() + Duration::from_secs(10);
        while moved.iter().any(|vip| holds(&cluster, holder, vip)) {
            assert!(Instant::now() < deadline, "round {round}: the cut-off node still has a VIP:\n{}", cluster.log(holder, "fiberlb"));
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster.lab.heal(holder);
        // Back on the segment, it competes again (as the standby) before the next round.
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// fiberlb on the three control-plane nodes, the client and backend on a worker; the VIP is
/// taken first by the chainfire leader's fiberlb (the others start after), then that node is
/// cut off: Raft elects another leader, which carries on the holder's lease countdown from its
/// last checkpoint instead of granting it a whole TTL, and another node serves the VIP.
#[test]
fn a_vip_held_by_the_chainfire_leader_moves_within_three_seconds_when_that_node_is_cut_off() {
    let mut cluster = Cluster::new(3);
    let client = cluster.add_node(false, false, None);
    cluster.start_nodes(&[0, 1, 2]);
    for i in 0..3 {
        cluster.wait_healthy(i, Duration::from_secs(60));
    }
    cluster.start_nodes(&[client]);
    cluster.wait_healthy(client, Duration::from_secs(60));
    let leader = (0..3).find(|&i| cluster.health(i, "chainfire").1["raft"] == "leader").expect("a chainfire leader");
    cluster.add_service(leader, "fiberlb");
    cluster.start_service(leader, "fiberlb");
    let _web = backend(&cluster, client);
    create_lbs(&cluster, leader, client, &[("front", VIP4)]);
    cluster.wait_for("the leader's node serves the VIP", Duration::from_secs(15), |c| through(c, client, VIP4));
    assert!(holds(&cluster, leader, VIP4), "the only fiberlb holds the VIP");
    for i in (0..3).filter(|&i| i != leader) {
        cluster.add_service(i, "fiberlb");
        cluster.start_service(i, "fiberlb");
    }
    // The standbys are waiting on the claim; the leader's lease has been checkpointed.
    std::thread::sleep(Duration::from_secs(2));
    assert!(holds(&cluster, leader, VIP4), "the VIP stays where it is when standbys start");

    cluster.lab.cut(leader);
    let cut = Instant::now();
    while !through(&cluster, client, VIP4) {
        assert!(cut.elapsed() < Duration::from_secs(3), "the client did not reach the backend within 3 s of cutting the leader and holder");
    }
    eprintln!("failover with the chainfire leader: the client reached the backend again {:?} after the cut", cut.elapsed());
    let now = (0..3).filter(|&i| i != leader && holds(&cluster, i, VIP4)).count();
    assert_eq!(now, 1, "exactly one of the other nodes holds the VIP");
    cluster.lab.heal(leader);
}

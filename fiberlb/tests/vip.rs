//! VIP failover on test hosts (network namespaces on one bridge, the Operations I harness): a
//! three-node control plane and two worker nodes running fiberlb; a load balancer's address is
//! held by one of them (a chainfire lease), which adds it to its link and announces it; a
//! client on the segment reaches a backend through it; the holder's link is cut, and the other
//! node takes the address over and the client reaches the backend again within 3 s. Needs root.

use std::path::Path;
use std::time::{Duration, Instant};

use photon_testkit::cluster::Cluster;

const VIP: &str = "10.213.0.200";

/// Whether node `i` has the VIP on its link.
fn holds(cluster: &Cluster, i: usize) -> bool {
    let out = cluster.lab.exec(i, "ip", &["-4", "addr", "show", "dev", "eth0"]);
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/32"))
}

/// curl from node `i` through the VIP, with short timeouts: the body, or None.
fn through_vip(cluster: &Cluster, i: usize) -> Option<String> {
    let out = cluster.lab.exec(i, "curl", &["-s", "--connect-timeout", "0.3", "-m", "0.8", &format!("http://{VIP}:8000/")]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_vip_moves_to_the_other_node_within_three_seconds_when_its_holder_is_cut_off() {
    let mut cluster = Cluster::new(3);
    let workers = [cluster.add_node(false, false, None), cluster.add_node(false, false, None)];
    cluster.start_nodes(&[0, 1, 2]);
    for i in 0..3 {
        cluster.wait_healthy(i, Duration::from_secs(60));
    }
    cluster.start_nodes(&workers);
    for i in workers {
        cluster.wait_healthy(i, Duration::from_secs(60));
        cluster.add_service(i, "fiberlb");
        cluster.start_service(i, "fiberlb");
    }
    // The backend: a web server on node 2 (python's, as any host has), the client on node 2 too.
    let site = tempfile::tempdir().expect("a temp dir");
    std::fs::write(site.path().join("index.html"), "vip-backend").expect("the page");
    let mut web = cluster.lab.process(2, "backend web server", Path::new("python3"), &site.path().join("web.log"));
    for arg in ["-m", "http.server", "9999", "--bind", "0.0.0.0", "--directory"] {
        web.arg(arg);
    }
    web.arg(site.path());
    web.start();

    let token = cluster.admin_token();
    cluster.org_with_project(&token, "acme", "web");
    let bearer = format!("authorization: Bearer {token}");
    let api = "https://127.0.0.1:9092/api/v1/orgs/acme/projects/web/loadbalancers";
    let backend_addr = cluster.lab.addr(2);
    for (path, body) in [
        (String::new(), format!(r#"{{"name":"front","spec":{{"vip":"{VIP}"}}}}"#)),
        ("/front/pools".into(), r#"{"name":"web","spec":{}}"#.to_string()),
        ("/front/pools/web/backends".into(), format!(r#"{{"name":"py","spec":{{"address":"{backend_addr}","port":9999}}}}"#)),
        ("/front/listeners".into(), r#"{"name":"tcp","spec":{"protocol":"tcp","port":8000,"default_pool":"web"}}"#.to_string()),
    ] {
        let url = format!("{api}{path}");
        let (status, answer) =
            cluster.curl_with(workers[0], &["-H", &bearer, "-H", "content-type: application/json", "--data-binary", &body, &url]);
        assert_eq!(status, 201, "POST {url}: {answer}");
    }

    // One of the two holds the VIP; the client reaches the backend through it.
    let took = cluster.wait_for("a node holds the VIP and serves it", Duration::from_secs(15), |c| {
        through_vip(c, 2).is_some_and(|body| body.contains("vip-backend"))
    });
    eprintln!("the VIP served {took:?} after the load balancer was created");
    let holders: Vec<usize> = workers.iter().copied().filter(|&i| holds(&cluster, i)).collect();
    assert_eq!(holders.len(), 1, "exactly one node holds the VIP: {holders:?}");
    let (holder, other) = (holders[0], if holders[0] == workers[0] { workers[1] } else { workers[0] });

    // The holder is cut off: the other node takes the VIP and the client gets through again.
    cluster.lab.cut(holder);
    let cut = Instant::now();
    while through_vip(&cluster, 2).is_none_or(|body| !body.contains("vip-backend")) {
        assert!(cut.elapsed() < Duration::from_secs(3), "the client did not reach the backend within 3 s of the cut:\n{}", cluster.log(other, "fiberlb"));
    }
    let failover = cut.elapsed();
    eprintln!("failover: the client reached the backend again {failover:?} after the holder was cut off");
    assert!(holds(&cluster, other), "the other node holds the VIP now");

    // The cut-off node gives the VIP up on its own (it cannot renew its lease).
    let deadline = Instant::now() + Duration::from_secs(10);
    while holds(&cluster, holder) {
        assert!(Instant::now() < deadline, "the cut-off node still has the VIP:\n{}", cluster.log(holder, "fiberlb"));
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.lab.heal(holder);
}

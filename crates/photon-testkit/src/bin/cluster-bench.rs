//! `cluster-bench`: cold formations of a three-node cluster on test hosts (network namespaces),
//! timed from process start to every service healthy on every node; then, in each, the time to
//! declare a killed node dead and the time for a joining node to be healthy. One JSON line per
//! run on stdout (`scripts/bench-cluster` turns them into docs/benchmarks.md). Needs root.
//! Usage: cluster-bench [RUNS]   (binaries from $PHOTON_BIN_DIR)

use std::time::{Duration, Instant};

use photon_testkit::cluster::Cluster;

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    for run in 1..=runs {
        let mut cluster = Cluster::new(3);
        let started = Instant::now();
        cluster.start_nodes(&[0, 1, 2]);
        for i in 0..3 {
            cluster.wait_healthy(i, Duration::from_secs(120));
        }
        let formation = started.elapsed();
        // Every node alive in the membership table before the failure is timed.
        cluster.wait_for("three alive nodes", Duration::from_secs(30), |c| {
            c.node_table(0).iter().filter(|n| n["state"] == "alive").count() == 3
        });
        cluster.kill(2);
        let death = cluster.wait_for("node 3 declared dead", Duration::from_secs(30), |c| c.state_of(0, 2) == "dead");
        let joiner = cluster.add_node(true, false, None);
        let joining = Instant::now();
        cluster.start(joiner);
        cluster.wait_healthy(joiner, Duration::from_secs(120));
        let join = joining.elapsed();
        println!(
            "{{\"run\":{run},\"formation_ms\":{:.1},\"death_ms\":{:.1},\"join_ms\":{:.1}}}",
            formation.as_secs_f64() * 1000.0,
            death.as_secs_f64() * 1000.0,
            join.as_secs_f64() * 1000.0
        );
        eprintln!(
            "cluster-bench: run {run}/{runs}: formation {formation:.2?}, death declared {death:.2?}, join {join:.2?}"
        );
    }
    workers();
}

/// Why a worker's chainfire is a learner (ARCHITECTURE.md): etcd-bench, inside the nodes, reading
/// and writing through a control-plane follower and through a worker's learner, one client.
fn workers() {
    let mut cluster = Cluster::new(3);
    cluster.start_nodes(&[0, 1, 2]);
    let worker = cluster.add_node(false, false, None);
    cluster.start(worker);
    for i in 0..=worker {
        cluster.wait_healthy(i, Duration::from_secs(120));
    }
    let follower = (0..3).find(|&i| cluster.health(i, "chainfire").1["raft"] == "follower").unwrap_or(1);
    let bench = photon_testkit::binary("etcd-bench").display().to_string();
    let ca = cluster.ca().display().to_string();
    for (node, role) in [(follower, "control-plane follower"), (worker, "worker learner")] {
        for (workload, extra) in [("put", None), ("range", Some("l")), ("range", Some("s"))] {
            let mut args = vec!["--cacert", ca.as_str(), "--total", "2000", workload];
            if let Some(c) = extra {
                args.extend(["--consistency", c]);
            }
            let out = cluster.lab.exec(node, &bench, &args);
            let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let name = match extra {
                Some("l") => "range (linearizable)",
                Some(_) => "range (serializable)",
                None => "put",
            };
            println!("{{\"via\":\"{role}\",\"workload\":\"{name}\",\"report\":{report}}}");
            eprintln!("cluster-bench: {role}, {name}: {report}");
        }
    }
}

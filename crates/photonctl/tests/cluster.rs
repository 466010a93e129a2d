//! A cluster on test hosts (network namespaces, one address each), as an operator would run it:
//! the real binaries with each node's cluster-config.json. Three control-plane nodes started at
//! once form one cluster (one chainfire leader, flaredb's regions on three replicas, IAM logging
//! in on every node); a fourth joins with `bootstrap: false`, a worker joins as a learner; a
//! killed node is declared dead within the gossip bound while the others keep serving writes,
//! and catches up when it restarts; a node cut off is suspected, then dead, and alive once healed.
//! Needs root (network namespaces), as CI has.

use std::time::{Duration, Instant};

use photon_testkit::cluster::Cluster;
use serde_json::{json, Value};

/// What the issue promises for declaring a dead node, plus the time to see it in the table.
const DEATH_BOUND: Duration = Duration::from_secs(3);

fn ok(out: std::process::Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{what}: {}{}", text, String::from_utf8_lossy(&out.stderr));
    text
}

/// The administrator's password, from whichever node's IAM created it.
fn admin_password(cluster: &Cluster) -> String {
    for node in &cluster.nodes {
        let path = node.data.path().join("iam/initial-admin-password");
        if let Ok(text) = std::fs::read_to_string(path) {
            return text.trim().to_string();
        }
    }
    panic!("no node's IAM wrote the first administrator's password")
}

/// Logs in as admin on node `i`'s IAM: the token answer.
fn token(cluster: &Cluster, i: usize, password: &str) -> Result<Value, String> {
    let ca = cluster.ca().display().to_string();
    let body = json!({"user": "admin", "password": password}).to_string();
    let out = cluster.lab.exec(
        i,
        "curl",
        &[
            "-s",
            "-m",
            "5",
            "--cacert",
            &ca,
            "-H",
            "content-type: application/json",
            "--data-binary",
            &body,
            "https://127.0.0.1:8080/api/v1/auth/token",
        ],
    );
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Logs in as admin on node `i`'s IAM; the token's principal.
fn login(cluster: &Cluster, i: usize, password: &str) -> Result<String, String> {
    let answer = token(cluster, i, password)?;
    answer["principal"].as_str().map(str::to_string).ok_or_else(|| answer.to_string())
}

/// Creates org `name` through node `i`'s IAM as admin: (HTTP status, answer).
fn create_org(cluster: &Cluster, i: usize, password: &str, name: &str) -> (u16, Value) {
    let ca = cluster.ca().display().to_string();
    let token = token(cluster, i, password).unwrap_or_default();
    let bearer = format!("authorization: Bearer {}", token["access_token"].as_str().unwrap_or_default());
    let org = json!({"name": name}).to_string();
    let out = cluster.lab.exec(
        i,
        "curl",
        &[
            "-s",
            "-m",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
            &ca,
            "-H",
            "content-type: application/json",
            "-H",
            &bearer,
            "--data-binary",
            &org,
            "https://127.0.0.1:8080/api/v1/orgs",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::String(body.into())))
}

/// Starts node `i`'s chainfire and waits for it to exit (a refusal): its status and log.
fn refused(cluster: &mut Cluster, i: usize, within: Duration, otherwise: &str) -> (std::process::ExitStatus, String) {
    let chainfire = cluster.nodes[i].service("chainfire");
    chainfire.start();
    let status = chainfire.wait_exit(within).expect(otherwise);
    (status, chainfire.logs())
}

fn wait_all_healthy(cluster: &Cluster, nodes: std::ops::Range<usize>, timeout: Duration) {
    for i in nodes {
        cluster.wait_healthy(i, timeout);
    }
}

#[test]
fn three_nodes_form_one_cluster_and_more_join() {
    let mut cluster = Cluster::new(3);
    let started = Instant::now();
    cluster.start_nodes(&[0, 1, 2]);
    wait_all_healthy(&cluster, 0..3, Duration::from_secs(60));
    eprintln!("formation: every service healthy on three nodes after {:?}", started.elapsed());

    let leaders = (0..3).filter(|&i| cluster.health(i, "chainfire").1["raft"] == "leader").count();
    assert_eq!(leaders, 1, "exactly one chainfire leader");
    for i in 0..3 {
        assert_eq!(cluster.health(i, "chainfire").1["cluster_size"], 3);
    }
    let (_, regions) = cluster.curl(0, "https://127.0.0.1:2479/api/v1/regions");
    let regions = regions["regions"].as_array().cloned().unwrap_or_default();
    assert!(!regions.is_empty(), "flaredb lists no region");
    for region in &regions {
        let replicas = region["peers"].as_array().or(region["voters"].as_array()).map_or(0, |p| p.len());
        assert_eq!(replicas, 3, "a region on three replicas: {region}");
    }
    let password = admin_password(&cluster);
    for i in 0..3 {
        assert_eq!(login(&cluster, i, &password), Ok("user:admin".to_string()), "IAM login on node {i}");
    }
    // Every node, with its services, in the membership table every node reads.
    cluster.wait_for("three alive nodes with their services healthy", Duration::from_secs(15), |c| {
        let table = c.node_table(2);
        let healthy = |n: &Value| {
            n["services"].as_array().is_some_and(|s| s.len() == 3 && s.iter().all(|s| s["status"] == "healthy"))
        };
        table.len() == 3 && table.iter().all(|n| n["state"] == "alive" && healthy(n))
    });
    eprintln!("membership: three nodes alive with healthy services after {:?}", started.elapsed());
    let listing = ok(cluster.photonctl(1, &["node", "ls"]), "node ls");
    assert!(listing.contains("control-plane") && listing.contains("chainfire:healthy"), "{listing}");
    // `status` from one node covers the cluster: its own probes, then the others' services.
    // (It exits 1 while anything is unhealthy, which a loaded machine can show for a moment.)
    let mut status = Value::Null;
    cluster.wait_for("photonctl status exits 0", Duration::from_secs(15), |c| {
        let out = c.photonctl(0, &["status", "--output", "json"]);
        status = serde_json::from_slice(&out.stdout).unwrap_or_default();
        out.status.success()
    });
    let mut nodes: Vec<String> =
        status.as_array().unwrap().iter().filter_map(|r| r["node"].as_str().map(str::to_string)).collect();
    nodes.sort();
    nodes.dedup();
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    assert_eq!(nodes, addrs, "{status}");

    // First boot on every node at once, as the units run it: each step leaves its marker, the
    // node whose IAM made the administrator keeps the password, the others say where it is.
    let state: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    std::thread::scope(|scope| {
        for (i, dir) in state.iter().enumerate() {
            let cluster = &cluster;
            scope.spawn(move || {
                let config = cluster.nodes[i].config.display().to_string();
                let state_dir = dir.path().display().to_string();
                let iam_dir = cluster.nodes[i].data.path().join("iam").display().to_string();
                let credentials = dir.path().join("credentials").display().to_string();
                for step in ["chainfire-join", "flaredb-join", "iam-setup", "health-check"] {
                    let args = [
                        "firstboot",
                        step,
                        "--cluster-config",
                        &config,
                        "--state-dir",
                        &state_dir,
                        "--iam-data-dir",
                        &iam_dir,
                        "--credentials-dir",
                        &credentials,
                        "--timeout",
                        "60",
                    ];
                    let out = ok(cluster.photonctl(i, &args), &format!("node {i} firstboot {step}"));
                    assert!(out.contains("done"), "{out}");
                    assert!(dir.path().join(format!("firstboot/{step}.done")).is_file());
                }
            });
        }
    });
    let holders: Vec<usize> = (0..3).filter(|&i| state[i].path().join("initial-admin-password").is_file()).collect();
    assert_eq!(holders.len(), 1, "exactly one node keeps the administrator's password");
    let kept = std::fs::read_to_string(state[holders[0]].path().join("initial-admin-password")).unwrap();
    assert_eq!(kept.trim(), password);
    // A step run again says it was done and changes nothing.
    let config = cluster.nodes[0].config.display().to_string();
    let again = ok(
        cluster.photonctl(
            0,
            &[
                "firstboot",
                "chainfire-join",
                "--cluster-config",
                &config,
                "--state-dir",
                &state[0].path().display().to_string(),
            ],
        ),
        "firstboot again",
    );
    assert!(again.contains("already done"), "{again}");
    eprintln!("first boot: every step done on three nodes after {:?}", started.elapsed());

    // A fourth control-plane node joins through the leader URL; a worker joins as a learner.
    let joiner = cluster.add_node(true, false, None);
    let worker = cluster.add_node(false, false, None);
    let joining = Instant::now();
    cluster.start_nodes(&[joiner, worker]);
    eprintln!("join: the fourth node and the worker started after {:?}", joining.elapsed());
    wait_all_healthy(&cluster, joiner..worker + 1, Duration::from_secs(45));
    eprintln!("join: the fourth node and the worker healthy after {:?}", joining.elapsed());
    cluster.wait_for("four voters and a learner", Duration::from_secs(30), |c| {
        let members = String::from_utf8_lossy(&c.etcdctl(0, &["member", "list"]).stdout).to_string();
        members.lines().filter(|l| l.ends_with(", false")).count() == 4
            && members.lines().filter(|l| l.ends_with(", true")).count() == 1
    });
    ok(cluster.etcdctl(0, &["put", "joined", "yes"]), "put");
    let read = ok(cluster.etcdctl(worker, &["get", "joined", "--print-value-only"]), "worker get");
    assert_eq!(read.trim(), "yes", "the worker's local chainfire serves reads");
    ok(cluster.etcdctl(worker, &["put", "from-worker", "1"]), "the worker's chainfire forwards writes");
    // A node is in the table as soon as gossip knows it; its roles once its advert arrives.
    let worker_addr = cluster.nodes[worker].addr.clone();
    cluster.wait_for("five alive nodes, the worker advertised as one", Duration::from_secs(15), |c| {
        let table = c.node_table(0);
        let worker_row = table.iter().find(|n| n["node_id"] == worker_addr.as_str());
        table.len() == 5
            && table.iter().all(|n| n["state"] == "alive")
            && worker_row.is_some_and(|r| r["roles"] == json!(["worker"]))
    });
}

#[test]
fn a_killed_node_is_declared_dead_and_catches_up_and_a_cut_node_comes_back() {
    let mut cluster = Cluster::new(3);
    cluster.start_nodes(&[0, 1, 2]);
    wait_all_healthy(&cluster, 0..3, Duration::from_secs(60));
    cluster.wait_for("three alive nodes", Duration::from_secs(15), |c| {
        c.node_table(0).iter().filter(|n| n["state"] == "alive").count() == 3
    });
    let password = admin_password(&cluster);

    // Kill node 2 (every process): the others keep serving writes, and gossip declares it dead.
    cluster.kill(2);
    let killed = Instant::now();
    let took = cluster.wait_for("node 2 declared dead", Duration::from_secs(10), |c| c.state_of(0, 2) == "dead");
    eprintln!("killed node declared dead after {:?}", killed.elapsed());
    assert!(took <= DEATH_BOUND, "death took {took:?}, more than {DEATH_BOUND:?}");
    ok(cluster.etcdctl(0, &["put", "while-down", "1"]), "chainfire write with one node down");
    let db_put = cluster.photonctl(1, &["db", "put", "while-down", "1"]);
    ok(db_put, "flaredb write with one node down");
    assert_eq!(login(&cluster, 0, &password), Ok("user:admin".into()));
    let (code, created) = create_org(&cluster, 1, &password, "while-down");
    assert_eq!(code, 200, "an IAM write with one node down: {created}");
    let (_, iam_health) = cluster.health(1, "iam");
    assert_eq!(iam_health["status"], "healthy", "{iam_health}");

    // It restarts from its disk and catches up.
    cluster.start(2);
    cluster.wait_healthy(2, Duration::from_secs(60));
    cluster.wait_for("node 2 caught up", Duration::from_secs(20), |c| {
        let out = c.etcdctl(2, &["get", "while-down", "--print-value-only", "--consistency=s"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    });
    cluster.wait_for("node 2 alive again", Duration::from_secs(15), |c| c.state_of(0, 2) == "alive");
    assert_eq!(login(&cluster, 2, &password), Ok("user:admin".into()));

    // Cut a node off (not chainfire's leader, which writes the table: its successor would be
    // elected while the suspicion runs): suspected, then dead; healed: alive.
    let cut = (0..3).find(|&i| cluster.health(i, "chainfire").1["raft"] == "follower").expect("a follower");
    let observer = (0..3).find(|&i| i != cut).unwrap_or(0);
    cluster.lab.cut(cut);
    let mut seen = Vec::new();
    cluster.wait_for("the cut node dead", Duration::from_secs(10), |c| {
        let state = c.state_of(observer, cut);
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        state == "dead"
    });
    assert!(seen.contains(&"suspect".to_string()), "the cut node went {seen:?}, never suspect");
    cluster.lab.heal(cut);
    cluster.wait_for("the cut node alive after healing", Duration::from_secs(20), |c| {
        c.state_of(observer, cut) == "alive"
    });
    cluster.wait_healthy(cut, Duration::from_secs(30));
}

#[test]
fn bad_cluster_configs_are_refused_and_leave_nothing_behind() {
    let mut cluster = Cluster::new(1);
    cluster.start(0);
    cluster.wait_healthy(0, Duration::from_secs(60));

    // A config with a field wrong: chainfire refuses to start (status 2), naming it.
    let bad = cluster.add_node(false, false, Some(json!({"leader_url": "10.213.0.1:2379"})));
    let (status, logs) = refused(&mut cluster, bad, Duration::from_secs(10), "chainfire did not refuse a bad config");
    assert_eq!(status.code(), Some(2));
    assert!(logs.contains("leader_url"), "{logs}");

    // A join to a wrong leader_url: a clear error, and no half-joined member left behind.
    let members_before = ok(cluster.etcdctl(0, &["member", "list"]), "member list");
    let wrong = cluster.add_node(false, false, Some(json!({"leader_url": "https://10.213.0.1:2999"})));
    let (status, logs) =
        refused(&mut cluster, wrong, Duration::from_secs(30), "chainfire did not give up on a wrong leader_url");
    assert!(!status.success());
    assert!(logs.contains("10.213.0.1:2999"), "{logs}");
    assert_eq!(ok(cluster.etcdctl(0, &["member", "list"]), "member list"), members_before);

    // A stranger without the cluster's gossip key: its chainfire may join Raft through the API
    // it was given, but gossip never lets it in, so it never appears in the membership table.
    std::fs::write(cluster.secrets().join("stranger.key"), "f".repeat(64)).unwrap();
    let stranger = cluster.add_node(false, false, Some(json!({"gossip_key": "stranger.key"})));
    cluster.start(stranger);
    cluster.wait_healthy(stranger, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let addr = cluster.nodes[stranger].addr.clone();
    let table = cluster.node_table(0);
    assert!(!table.iter().any(|n| n["node_id"] == addr.as_str()), "a node without the key got in: {table:?}");
    assert_eq!(table.len(), 1, "{table:?}");
    cluster.kill(stranger);
    let members_before = ok(cluster.etcdctl(0, &["member", "list"]), "member list");

    // A second node claiming a node id that is taken (node 0's address as its node_id).
    let taken = cluster.nodes[0].addr.clone();
    let collision = cluster.add_node(false, false, Some(json!({"node_id": taken, "roles": ["worker"]})));
    let (status, logs) =
        refused(&mut cluster, collision, Duration::from_secs(30), "chainfire accepted a node id that is taken");
    assert!(!status.success());
    assert!(logs.contains("already"), "{logs}");
    assert_eq!(ok(cluster.etcdctl(0, &["member", "list"]), "member list"), members_before);
}

//! FiberLB's management API over REST with curl: every kind created, read, listed, updated and
//! deleted by its tenant; bad input answered with the field at fault; nothing created under a
//! missing parent; a delete taking everything under it; and another tenant refused everywhere.

mod common;

use common::Stack;

const LB: &str = "/loadbalancers/front";
const LISTENER: &str = "/loadbalancers/front/listeners/http";
const POOL: &str = "/loadbalancers/front/pools/web";
const BACKEND: &str = "/loadbalancers/front/pools/web/backends/b1";
const CHECK: &str = "/loadbalancers/front/pools/web/healthchecks/probe";
const RULE: &str = "/loadbalancers/front/listeners/http/rules/api";

/// Every resource of the test, created as the tenant.
fn create_all(stack: &Stack) {
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"10.0.0.10"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{"algorithm":"least_connections"}}"#));
    stack.expect(
        201,
        "POST",
        "/loadbalancers/front/pools/web/backends",
        Some(r#"{"name":"b1","spec":{"address":"127.0.0.1","port":8080,"weight":3}}"#),
    );
    stack.expect(
        201,
        "POST",
        "/loadbalancers/front/pools/web/healthchecks",
        Some(r#"{"name":"probe","spec":{"probe":"http","path":"/healthz"}}"#),
    );
    stack.expect(
        201,
        "POST",
        "/loadbalancers/front/listeners",
        Some(r#"{"name":"http","spec":{"protocol":"http","port":8000,"default_pool":"web"}}"#),
    );
    stack.expect(
        201,
        "POST",
        "/loadbalancers/front/listeners/http/rules",
        Some(r#"{"name":"api","spec":{"priority":10,"match":{"path_prefix":"/api"},"action":{"forward":{"pool":"web"}}}}"#),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_manages_every_kind_and_a_delete_takes_what_it_holds() {
    let stack = Stack::start().await;
    create_all(&stack);

    // Read back with defaults filled in and a resource version.
    let backend = stack.expect(200, "GET", BACKEND, None);
    assert_eq!(backend["spec"]["weight"], 3);
    assert_eq!(backend["spec"]["admin_state"], "enabled");
    assert_eq!(backend["parents"], serde_json::json!(["front", "web"]));
    let version = backend["metadata"]["resource_version"].as_i64().expect("a resource version");
    let check = stack.expect(200, "GET", CHECK, None);
    assert_eq!((check["spec"]["rise"].as_u64(), check["spec"]["fall"].as_u64()), (Some(2), Some(3)));
    let listeners = stack.expect(200, "GET", "/loadbalancers/front/listeners", None);
    assert_eq!(listeners["items"].as_array().map(Vec::len), Some(1), "{listeners}");
    // (More listeners come below: the port checks.)

    // Update: with the current version it applies; with a stale one it is a conflict.
    let drained = format!(r#"{{"spec":{{"address":"127.0.0.1","port":8080,"admin_state":"drain"}},"resource_version":{version}}}"#);
    let updated = stack.expect(200, "PUT", BACKEND, Some(&drained));
    assert_eq!(updated["spec"]["admin_state"], "drain");
    assert_eq!(updated["metadata"]["generation"], 2);
    let conflict = stack.expect(409, "PUT", BACKEND, Some(&drained));
    assert_eq!(conflict["error"]["code"], "conflict", "{conflict}");

    // One port per transport on a load balancer: another TCP-family listener on 8000 is
    // refused, a UDP one is not; a listener moved to another port frees its old one.
    let (status, json) =
        stack.api("POST", "/loadbalancers/front/listeners", Some(r#"{"name":"dup","spec":{"protocol":"tcp","port":8000}}"#), &stack.tenant);
    assert_eq!(status, 409, "{json}");
    assert!(json["error"]["message"].as_str().unwrap_or("").contains("tcp-8000"), "{json}");
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(r#"{"name":"dns","spec":{"protocol":"udp","port":8000}}"#));
    stack.expect(200, "PUT", LISTENER, Some(r#"{"spec":{"protocol":"http","port":8001,"default_pool":"web"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(r#"{"name":"dup","spec":{"protocol":"tcp","port":8000}}"#));

    // A name is taken once; nothing is created under a parent that does not exist.
    stack.expect(409, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{}}"#));
    stack.expect(404, "POST", "/loadbalancers/ghost/pools", Some(r#"{"name":"web","spec":{}}"#));
    stack.expect(404, "GET", "/loadbalancers/front/pools/ghost/backends/b1", None);

    // Paging: two load balancers, one per page.
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"second","spec":{}}"#));
    let first = stack.expect(200, "GET", "/loadbalancers?limit=1", None);
    // (Two so far: front and second.)
    let token = first["next_page_token"].as_str().expect("a next page").to_string();
    let next = stack.expect(200, "GET", &format!("/loadbalancers?limit=1&page_token={token}"), None);
    assert_eq!(next["items"][0]["metadata"]["name"], "second", "{next}");

    // Deleting the load balancer takes its listeners, rules, pools, backends and checks.
    stack.expect(204, "DELETE", LB, None);
    for path in [LB, LISTENER, RULE, POOL, BACKEND, CHECK] {
        stack.expect(404, "GET", path, None);
    }
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"10.0.0.12"}}"#));
    // Its address went with it, and its listeners' ports.
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"again","spec":{"vip":"10.0.0.10"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(r#"{"name":"http","spec":{"protocol":"http","port":8001}}"#));
    let pools = stack.expect(200, "GET", "/loadbalancers/front/pools", None);
    assert_eq!(pools["items"], serde_json::json!([]), "a re-created load balancer starts empty");

    // /health counts what the node follows.
    let (status, health) = stack.lb.curl("GET", "/health", None, &[]);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy", "{health}");
    // The re-created load balancer's listener (on an address this host does not have: bound
    // with IP_FREEBIND, as a standby node does).
    assert_eq!(health["listeners"], 1, "{health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_names_the_field_and_writes_nothing() {
    let stack = Stack::start().await;
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{}}"#));
    let cases: &[(&str, &str, &str)] = &[
        ("/loadbalancers", r#"{"name":"Bad_Name","spec":{}}"#, "name"),
        ("/loadbalancers", r#"{"name":"x","spec":{"vip":"not-an-ip"}}"#, "spec.vip"),
        ("/loadbalancers", r#"{"name":"x","spec":{"colour":"red"}}"#, "spec"),
        ("/loadbalancers", r#"{"name":"x""#, "body"),
        ("/loadbalancers/front/listeners", r#"{"name":"x","spec":{"protocol":"https","port":443}}"#, "spec.certificates"),
        ("/loadbalancers/front/listeners", r#"{"name":"x","spec":{"protocol":"tcp","port":0}}"#, "spec.port"),
        ("/loadbalancers/front/listeners", r#"{"name":"x","spec":{"protocol":"sctp","port":1}}"#, "spec.protocol"),
        ("/loadbalancers/front/pools", r#"{"name":"x","spec":{"algorithm":"maglev"}}"#, "spec.hash_on"),
        ("/loadbalancers/front/pools/web/backends", r#"{"name":"x","spec":{"address":"10.0.0.1","port":80,"weight":0}}"#, "spec.weight"),
        ("/loadbalancers/front/pools/web/backends", r#"{"name":"x","spec":{"address":"10.0.0.1","port":"80"}}"#, "spec.port"),
        ("/loadbalancers/front/pools/web/healthchecks", r#"{"name":"x","spec":{"probe":"tcp","interval_ms":1000,"timeout_ms":5000}}"#, "spec.timeout_ms"),
        ("/loadbalancers/front/listeners/x/rules", r#"{"name":"x","spec":{"priority":1,"action":{"forward":{"pool":"web"}},"match":{"path_regex":"("}}}"#, "spec.match.path_regex"),
    ];
    for (path, body, field) in cases {
        let (status, json) = stack.api("POST", path, Some(body), &stack.tenant);
        assert_eq!(status, 400, "{path} {body}: {json}");
        let named = json["error"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{path} {body}: the error names {named:?}, not {field}: {json}");
    }
    // Nothing of it was written.
    let lbs = stack.expect(200, "GET", "/loadbalancers", None);
    assert_eq!(lbs["items"].as_array().map(Vec::len), Some(1), "{lbs}");
    let backends = stack.expect(200, "GET", "/loadbalancers/front/pools/web/backends", None);
    assert_eq!(backends["items"], serde_json::json!([]));
    // A name with an encoded slash names nothing; an oversized body is refused before reading.
    stack.expect(404, "GET", "/loadbalancers/front%2Fpools", None);
    let huge = format!(r#"{{"name":"x","spec":{{"description":"{}"}}}}"#, "a".repeat(2 << 20));
    let (status, _) = stack.api("POST", "/loadbalancers", Some(&huge), &stack.tenant);
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_is_refused_on_every_route() {
    let stack = Stack::start().await;
    create_all(&stack);
    let collections = [
        "/loadbalancers",
        "/loadbalancers/front/listeners",
        "/loadbalancers/front/listeners/http/rules",
        "/loadbalancers/front/pools",
        "/loadbalancers/front/pools/web/backends",
        "/loadbalancers/front/pools/web/healthchecks",
    ];
    let items = [LB, LISTENER, RULE, POOL, BACKEND, CHECK];
    for path in collections {
        for method in ["GET", "POST"] {
            let (status, json) = stack.api(method, path, Some(r#"{"name":"evil","spec":{}}"#), &stack.stranger);
            assert_eq!(status, 403, "{method} {path} as another tenant: {json}");
        }
    }
    for path in items {
        for method in ["GET", "PUT", "DELETE"] {
            let (status, json) = stack.api(method, path, Some(r#"{"spec":{}}"#), &stack.stranger);
            assert_eq!(status, 403, "{method} {path} as another tenant: {json}");
        }
    }
    // A VIP is one load balancer's, whatever the project: the stranger cannot take acme's, and
    // gets it once acme's load balancer gave it up (moved to another address).
    let (status, json) = stack.api(
        "POST",
        "/api/v1/orgs/beta/projects/web/loadbalancers",
        Some(r#"{"name":"mine","spec":{"vip":"10.0.0.10"}}"#),
        &stack.stranger,
    );
    assert_eq!(status, 409, "another project's VIP: {json}");
    assert!(json["error"]["message"].as_str().unwrap_or("").contains("10.0.0.10"), "{json}");
    stack.expect(200, "PUT", LB, Some(r#"{"spec":{"vip":"10.0.0.11"}}"#));
    let (status, json) = stack.api(
        "POST",
        "/api/v1/orgs/beta/projects/web/loadbalancers",
        Some(r#"{"name":"mine","spec":{"vip":"10.0.0.10"}}"#),
        &stack.stranger,
    );
    assert_eq!(status, 201, "a VIP given up is free: {json}");
    let (status, _) = stack.api("PUT", LB, Some(r#"{"spec":{"vip":"10.0.0.10"}}"#), &stack.tenant);
    assert_eq!(status, 409, "and acme cannot take it back");

    // No token at all: 401. The stranger's own project is theirs and empty.
    let (status, _) = stack.lb.curl("GET", "/api/v1/orgs/acme/projects/web/loadbalancers", None, &[]);
    assert_eq!(status, 401);
    let (status, json) = stack.api("GET", "/api/v1/orgs/beta/projects/web/loadbalancers", None, &stack.stranger);
    assert_eq!((status, json["items"].as_array().map(Vec::len)), (200, Some(1)), "only the stranger's own: {json}");
    // Everything of acme is still there.
    for path in items {
        stack.expect(200, "GET", path, None);
    }
}

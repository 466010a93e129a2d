//! The management API over gRPC (`photon.resource.v1.Resources`) with the generated client:
//! the same resources as REST (what one writes the other reads), the same decisions (another
//! tenant refused on every call, no token unauthenticated), errors as gRPC codes naming the
//! field, and a delete that takes what the resource holds.

mod common;

use common::Stack;
use photon_api::resource::v1 as pb;
use photon_api::resource::v1::resources_client::ResourcesClient;
use tonic::transport::Channel;
use tonic::Code;

fn client(stack: &Stack) -> ResourcesClient<Channel> {
    let options = photon_client::ChannelOptions { ca: Some(stack.lb.ca()), ..Default::default() };
    ResourcesClient::new(photon_client::lazy_channel(&stack.lb.url(), &options).expect("a channel"))
}

fn call<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if !token.is_empty() {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("a header"));
    }
    request
}

fn collection(org: &str, kind: &str, parents: &[&str]) -> Option<pb::Collection> {
    Some(pb::Collection {
        org: org.into(),
        project: "web".into(),
        kind: kind.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    })
}

fn create(org: &str, kind: &str, parents: &[&str], name: &str, spec: &str) -> pb::CreateRequest {
    pb::CreateRequest { collection: collection(org, kind, parents), name: name.into(), spec_json: spec.into() }
}

fn item(org: &str, kind: &str, parents: &[&str], name: &str) -> pb::ItemRequest {
    pb::ItemRequest { collection: collection(org, kind, parents), name: name.into() }
}

#[tokio::test(flavor = "multi_thread")]
async fn resources_over_grpc_are_the_rest_apis_and_stay_the_tenants_own() {
    let stack = Stack::start().await;
    let mut api = client(&stack);
    let t = stack.tenant.clone();

    // Created over gRPC, read over REST, and the other way round.
    let created = api
        .create(call(create("acme", "loadbalancers", &[], "front", r#"{"vip":"10.1.0.1"}"#), &t))
        .await
        .expect("create a load balancer")
        .into_inner();
    let created: serde_json::Value = serde_json::from_str(&created.json).expect("JSON");
    assert_eq!(created["spec"]["vip"], "10.1.0.1", "{created}");
    let rest = stack.expect(200, "GET", "/loadbalancers/front", None);
    assert_eq!(rest["metadata"]["uid"], created["metadata"]["uid"]);
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{}}"#));
    let backend = r#"{"address":"10.1.0.10","port":8080,"weight":3}"#;
    api.create(call(create("acme", "loadbalancers.pools.backends", &["front", "web"], "b1", backend), &t))
        .await
        .expect("create a backend under the REST-made pool");
    let listed = api
        .list(call(pb::ListRequest { collection: collection("acme", "loadbalancers.pools.backends", &["front", "web"]), limit: 0, page_token: String::new() }, &t))
        .await
        .expect("list")
        .into_inner();
    let listed: serde_json::Value = serde_json::from_str(&listed.json).expect("JSON");
    assert_eq!(listed["items"][0]["spec"]["weight"], 3, "{listed}");

    // Update with the version read; a stale version is refused.
    let got = api.get(call(item("acme", "loadbalancers.pools.backends", &["front", "web"], "b1"), &t)).await.expect("get").into_inner();
    let got: serde_json::Value = serde_json::from_str(&got.json).expect("JSON");
    let version = got["metadata"]["resource_version"].as_i64().expect("a version");
    let update = |weight: u32, version: i64| pb::UpdateRequest {
        collection: collection("acme", "loadbalancers.pools.backends", &["front", "web"]),
        name: "b1".into(),
        spec_json: format!(r#"{{"address":"10.1.0.10","port":8080,"weight":{weight}}}"#),
        resource_version: Some(version),
    };
    api.update(call(update(5, version), &t)).await.expect("update with the version read");
    let stale = api.update(call(update(6, version), &t)).await.expect_err("a stale version");
    assert!(matches!(stale.code(), Code::FailedPrecondition | Code::Aborted), "{stale:?}");
    assert_eq!(stack.expect(200, "GET", "/loadbalancers/front/pools/web/backends/b1", None)["spec"]["weight"], 5);

    // Errors name the field.
    let bad = api
        .create(call(create("acme", "loadbalancers.pools.backends", &["front", "web"], "b2", r#"{"address":"10.1.0.11","port":0}"#), &t))
        .await
        .expect_err("port 0");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("spec.port"), "{bad:?}");
    for (request, field) in [
        (create("acme", "loadbalancers.nope", &["front"], "x", "{}"), "collection.kind"),
        (create("acme", "loadbalancers.pools", &[], "x", "{}"), "collection.parents"),
        (create("acme", "loadbalancers.pools", &["front"], "Bad_Name", "{}"), "name"),
        (create("acme", "loadbalancers.pools", &["front"], "x", "not json"), "spec_json"),
        (create("acme", "loadbalancers.pools", &["fr/ont"], "x", "{}"), "collection.parents[0]"),
        (create("ac/me", "loadbalancers.pools", &["front"], "x", "{}"), "collection.org"),
    ] {
        let e = api.create(call(request, &t)).await.expect_err(field);
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {e:?}");
    }

    // Another tenant: every call refused, whatever it names; no token: unauthenticated.
    let s = stack.stranger.clone();
    let kinds: [(&str, &[&str], &str); 3] =
        [("loadbalancers", &[], "front"), ("loadbalancers.pools", &["front"], "web"), ("loadbalancers.pools.backends", &["front", "web"], "b1")];
    for (kind, parents, name) in kinds {
        let refused = [
            api.create(call(create("acme", kind, parents, "evil", "{}"), &s)).await.map(|_| ()),
            api.get(call(item("acme", kind, parents, name), &s)).await.map(|_| ()),
            api.list(call(pb::ListRequest { collection: collection("acme", kind, parents), limit: 0, page_token: String::new() }, &s))
                .await
                .map(|_| ()),
            api.update(call(pb::UpdateRequest { collection: collection("acme", kind, parents), name: name.into(), spec_json: "{}".into(), resource_version: None }, &s))
                .await
                .map(|_| ()),
            api.delete(call(item("acme", kind, parents, name), &s)).await.map(|_| ()),
        ];
        for (i, outcome) in refused.into_iter().enumerate() {
            let e = outcome.expect_err("another tenant");
            assert_eq!(e.code(), Code::PermissionDenied, "{kind} call {i}: {e:?}");
        }
    }
    let e = api.get(call(item("acme", "loadbalancers", &[], "front"), "")).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // A delete over gRPC takes what the load balancer holds, as over REST.
    api.delete(call(item("acme", "loadbalancers", &[], "front"), &t)).await.expect("delete");
    let (status, _) = stack.api("GET", "/loadbalancers/front/pools/web/backends/b1", None, &t);
    assert_eq!(status, 404);
    let e = api.get(call(item("acme", "loadbalancers", &[], "front"), &t)).await.expect_err("gone");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
}

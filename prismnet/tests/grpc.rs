//! PrismNET's resources over gRPC (`photon.resource.v1.Resources`) with the generated client:
//! the values the server assigns are assigned there too, REST reads what gRPC wrote, errors are
//! gRPC codes naming the field, and another tenant (or no token) is refused on every call.

mod common;

use common::Stack;
use photon_api::resource::v1 as pb;
use photon_api::resource::v1::resources_client::ResourcesClient;
use tonic::transport::Channel;
use tonic::Code;

fn client(stack: &Stack) -> ResourcesClient<Channel> {
    let options = photon_client::ChannelOptions { ca: Some(stack.net.ca()), ..Default::default() };
    ResourcesClient::new(photon_client::lazy_channel(&stack.net.url(), &options).expect("a channel"))
}

fn call<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if !token.is_empty() {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("a header"));
    }
    request
}

fn collection(kind: &str, parents: &[&str]) -> Option<pb::Collection> {
    Some(pb::Collection {
        org: "acme".into(),
        project: "web".into(),
        kind: kind.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    })
}

fn create(kind: &str, parents: &[&str], name: &str, spec: &str) -> pb::CreateRequest {
    pb::CreateRequest { collection: collection(kind, parents), name: name.into(), spec_json: spec.into() }
}

fn item(kind: &str, parents: &[&str], name: &str) -> pb::ItemRequest {
    pb::ItemRequest { collection: collection(kind, parents), name: name.into() }
}

#[tokio::test(flavor = "multi_thread")]
async fn networks_over_grpc_are_the_rest_apis_and_stay_the_tenants_own() {
    let stack = Stack::start().await;
    let mut api = client(&stack);
    let t = stack.tenant.clone();

    // A VPC, a subnet and a port over gRPC: the VNI, gateway, address and MAC are assigned.
    api.create(call(create("vpcs", &[], "blue", r#"{"cidr":"10.0.0.0/16"}"#), &t)).await.expect("create a VPC");
    api.create(call(create("vpcs.subnets", &["blue"], "front", r#"{"cidr":"10.0.1.0/24"}"#), &t)).await.expect("create a subnet");
    let port = api.create(call(create("vpcs.subnets.ports", &["blue", "front"], "a", "{}"), &t)).await.expect("create a port").into_inner();
    let port: serde_json::Value = serde_json::from_str(&port.json).expect("JSON");
    let ip = port["spec"]["ip"].as_str().expect("an address").to_string();
    assert!(ip.starts_with("10.0.1.") && ip != "10.0.1.1", "{port}");
    assert!(port["spec"]["mac"].as_str().unwrap_or("").starts_with("02:7e:0a:00:01:"), "{port}");
    // REST reads it.
    let rest = stack.expect(200, "GET", "/vpcs/blue/subnets/front/ports/a", None);
    assert_eq!(rest["spec"]["ip"], ip.as_str());
    assert!(stack.expect(200, "GET", "/vpcs/blue", None)["spec"]["vni"].as_u64().is_some());

    // Bad input: the code and the field.
    let bad = api
        .create(call(create("vpcs.subnets", &["blue"], "x", r#"{"cidr":"10.9.0.0/24"}"#), &t))
        .await
        .expect_err("a subnet outside its VPC");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("spec.cidr"), "{bad:?}");
    let taken = api
        .create(call(create("vpcs.subnets.ports", &["blue", "front"], "b", &format!(r#"{{"ip":"{ip}"}}"#)), &t))
        .await
        .expect_err("an address taken");
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");

    // Another tenant, and no token, are refused on every call.
    for token in [stack.stranger.as_str(), ""] {
        let want = if token.is_empty() { Code::Unauthenticated } else { Code::PermissionDenied };
        let port = || item("vpcs.subnets.ports", &["blue", "front"], "a");
        let outcomes = [
            api.get(call(port(), token)).await.map(|_| ()),
            api.delete(call(port(), token)).await.map(|_| ()),
            api.list(call(pb::ListRequest { collection: collection("vpcs", &[]), limit: 0, page_token: String::new() }, token))
                .await
                .map(|_| ()),
            api.create(call(create("vpcs.subnets.ports", &["blue", "front"], "z", "{}"), token)).await.map(|_| ()),
            api.create(call(create("floatingips", &[], "z", "{}"), token)).await.map(|_| ()),
        ];
        for (i, outcome) in outcomes.into_iter().enumerate() {
            assert_eq!(outcome.expect_err("refused").code(), want, "call {i} with token {token:?}");
        }
    }
    // Deleting the VPC over gRPC takes its port with it.
    api.delete(call(item("vpcs", &[], "blue"), &t)).await.expect("delete the VPC");
    stack.expect(404, "GET", "/vpcs/blue/subnets/front/ports/a", None);
}

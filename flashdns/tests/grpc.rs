//! The management API over gRPC (`photon.flashdns.v1.Zones`) with the generated client: the
//! same operations as REST, every RPC closed to other tenants, errors as gRPC codes.

mod common;

use common::{dig, Stack};
use photon_api::flashdns::v1 as pb;
use photon_api::flashdns::v1::zones_client::ZonesClient;
use tonic::transport::Channel;
use tonic::Code;

fn client(stack: &Stack) -> ZonesClient<Channel> {
    let options = photon_client::ChannelOptions { ca: Some(stack.dns.ca()), ..Default::default() };
    ZonesClient::new(photon_client::lazy_channel(&stack.dns.url(), &options).expect("a channel"))
}

fn call<T>(message: T, token: &str, org: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("authorization", format!("Bearer {token}").parse().expect("a header"));
    metadata.insert("x-photon-org", org.parse().expect("a header"));
    metadata.insert("x-photon-project", "web".parse().expect("a header"));
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn zones_and_records_over_grpc_answer_in_dns_and_stay_the_tenants_own() {
    let stack = Stack::start(&[]).await;
    let mut zones = client(&stack);
    let t = stack.tenant.clone();
    let created = zones
        .create_zone(call(pb::CreateZoneRequest { name: "grpc.test".into(), ..Default::default() }, &t, "acme"))
        .await
        .expect("create the zone")
        .into_inner();
    assert_eq!((created.name.as_str(), created.serial), ("grpc.test.", 1));
    let set = pb::SetRecordsRequest {
        zone: "grpc.test".into(),
        name: "www".into(),
        r#type: "A".into(),
        ttl: 60,
        data: vec!["192.0.2.42".into()],
    };
    let stored = zones.set_records(call(set, &t, "acme")).await.expect("set records").into_inner();
    assert_eq!(stored.name, "www.grpc.test.");
    let listed = zones.list_zones(call(pb::ListZonesRequest::default(), &t, "acme")).await.expect("list").into_inner();
    assert_eq!(listed.zones.len(), 1);
    let exported =
        zones.export_zone(call(pb::ZoneRef { zone: "grpc.test".into() }, &t, "acme")).await.expect("export").into_inner();
    assert!(exported.text.contains("192.0.2.42"), "{}", exported.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !dig(stack.dns_addr, &["www.grpc.test.", "A"]).contains("192.0.2.42") {
        assert!(std::time::Instant::now() < deadline, "the record set over gRPC is answered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Errors are gRPC codes that name the problem.
    let bad = pb::SetRecordsRequest { zone: "grpc.test".into(), name: "www".into(), r#type: "A".into(), ttl: 60, data: vec!["300.0.0.1".into()] };
    let e = zones.set_records(call(bad, &t, "acme")).await.expect_err("bad data");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("data[0]"), "{e:?}");
    let e = zones.get_zone(call(pb::ZoneRef { zone: "nope.test".into() }, &t, "acme")).await.expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = zones
        .create_zone(call(pb::CreateZoneRequest { name: "grpc.test".into(), ..Default::default() }, &t, "acme"))
        .await
        .expect_err("taken");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");

    // Another tenant: denied on acme's project for every RPC; through its own project, acme's
    // zone does not exist.
    let s = stack.stranger.clone();
    for (method, _) in flashdns::grpc::METHODS {
        let denied = match *method {
            "CreateZone" => zones.create_zone(call(pb::CreateZoneRequest { name: "x.test".into(), ..Default::default() }, &s, "acme")).await.err(),
            "GetZone" => zones.get_zone(call(pb::ZoneRef { zone: "grpc.test".into() }, &s, "acme")).await.err(),
            "ListZones" => zones.list_zones(call(pb::ListZonesRequest::default(), &s, "acme")).await.err(),
            "DeleteZone" => zones.delete_zone(call(pb::ZoneRef { zone: "grpc.test".into() }, &s, "acme")).await.err(),
            "SetRecords" => zones.set_records(call(pb::SetRecordsRequest { zone: "grpc.test".into(), name: "www".into(), r#type: "A".into(), ttl: 60, data: vec!["203.0.113.1".into()] }, &s, "acme")).await.err(),
            "ListRecords" => zones.list_records(call(pb::ZoneRef { zone: "grpc.test".into() }, &s, "acme")).await.err(),
            "DeleteRecords" => zones.delete_records(call(pb::RecordRef { zone: "grpc.test".into(), name: "www".into(), r#type: "A".into() }, &s, "acme")).await.err(),
            "ImportZone" => zones.import_zone(call(pb::ImportZoneRequest { zone: "grpc.test".into(), text: String::new() }, &s, "acme")).await.err(),
            "ExportZone" => zones.export_zone(call(pb::ZoneRef { zone: "grpc.test".into() }, &s, "acme")).await.err(),
            other => panic!("{other} has no isolation case here: add one"),
        };
        let e = denied.unwrap_or_else(|| panic!("{method} as another tenant on acme's project succeeded"));
        assert_eq!(e.code(), Code::PermissionDenied, "{method}: {e:?}");
    }
    let e = zones.get_zone(call(pb::ZoneRef { zone: "grpc.test".into() }, &s, "beta")).await.expect_err("not theirs");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = zones.delete_zone(call(pb::ZoneRef { zone: "grpc.test".into() }, &s, "beta")).await.expect_err("not theirs");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    // Without a token.
    let mut anonymous = tonic::Request::new(pb::ListZonesRequest::default());
    anonymous.metadata_mut().insert("x-photon-org", "acme".parse().expect("a header"));
    anonymous.metadata_mut().insert("x-photon-project", "web".parse().expect("a header"));
    let e = zones.list_zones(anonymous).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // Still served, unchanged.
    assert!(dig(stack.dns_addr, &["www.grpc.test.", "A"]).contains("192.0.2.42"));
}

//! The management API: tenant isolation on every route, authentication, and bad input — each
//! refused with an error that names the problem, and nothing half-written.

mod common;

use common::{dig, Stack};

/// A concrete path for a route template, in `org`/`project`, on zone `zone`.
fn path(template: &str, org: &str, zone: &str) -> String {
    template
        .replace("{org}", org)
        .replace("{project}", "web")
        .replace("{zone}", zone)
        .replace("{name}", "www")
        .replace("{type}", "A")
        .replace("{ip}", "10.1.2.3")
        .replace("{tag}", "12345")
}

fn body_for(method: &str, template: &str) -> Option<&'static str> {
    match (method, template.rsplit('/').next()) {
        ("POST", Some("zones")) => Some(r#"{"name":"intruder.test"}"#),
        ("PUT", _) => Some(r#"{"ttl":60,"data":["203.0.113.66"]}"#),
        ("POST", Some("import")) => Some("$ORIGIN iso.test.\n@ 60 IN SOA a. b. 1 1 1 1 1\n@ 60 IN NS ns.\n"),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_is_closed_to_other_tenants_and_to_strangers_without_a_token() {
    let stack = Stack::start(&[]).await;
    let (status, body) = stack.api("POST", "/zones", Some(r#"{"name":"iso.test"}"#), &stack.tenant);
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        stack.api("PUT", "/zones/iso.test/records/www/A", Some(r#"{"ttl":60,"data":["192.0.2.1"]}"#), &stack.tenant);
    assert_eq!(status, 200, "{body}");

    for (method, template, action, _) in flashdns::api::ROUTES {
        let on_acme = path(template, "acme", "iso.test");
        // Another tenant, on the owner's project: IAM refuses.
        let (status, body) = stack.api(method, &on_acme, body_for(method, template), &stack.stranger);
        assert_eq!(status, 403, "{method} {on_acme} ({action}) as another tenant: {body}");
        // No token at all.
        let (status, body) = stack.dns.curl(method, &on_acme, body_for(method, template), &[]);
        assert_eq!(status, 401, "{method} {on_acme} without a token: {body}");
        // Another tenant naming the zone under its own project: not found, nothing revealed.
        if template.contains("{zone}") {
            let on_beta = path(template, "beta", "iso.test");
            let (status, body) = stack.api(method, &on_beta, body_for(method, template), &stack.stranger);
            assert_eq!(status, 404, "{method} {on_beta} ({action}) through another project: {body}");
        }
    }
    // The zone and its record are untouched by all of that.
    let out = dig(stack.dns_addr, &["www.iso.test.", "A"]);
    assert!(out.contains("192.0.2.1") && !out.contains("203.0.113.66"), "{out}");

    // A zone name is claimed once across tenants; a zone inside another project's zone is refused.
    let (status, body) = stack.api("POST", "/api/v1/orgs/beta/projects/web/zones", Some(r#"{"name":"iso.test."}"#), &stack.stranger);
    assert_eq!(status, 409, "{body}");
    let (status, body) =
        stack.api("POST", "/api/v1/orgs/beta/projects/web/zones", Some(r#"{"name":"sub.iso.test"}"#), &stack.stranger);
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("name")), "{body}");
    let (status, body) = stack.api("POST", "/api/v1/orgs/beta/projects/web/zones", Some(r#"{"name":"test"}"#), &stack.stranger);
    assert_eq!(status, 400, "a zone around another project's zone: {body}");
    // The other tenant lists only its own zones.
    let (status, body) = stack.api("GET", "/api/v1/orgs/beta/projects/web/zones", None, &stack.stranger);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["zones"].as_array().map(Vec::len), Some(0), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_an_error_naming_the_problem_and_changes_nothing() {
    let stack = Stack::start(&[]).await;
    let t = &stack.tenant;
    let (status, body) = stack.api("POST", "/zones", Some(r#"{"name":"bad.test"}"#), t);
    assert_eq!(status, 201, "{body}");
    let (status, body) = stack.api("PUT", "/zones/bad.test/records/www/A", Some(r#"{"ttl":60,"data":["192.0.2.1"]}"#), t);
    assert_eq!(status, 200, "{body}");

    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/zones", "{not json", 400, "body"),
        ("POST", "/zones", r#"{"name":"x.test","ttl":"soon"}"#, 400, "ttl"),
        ("POST", "/zones", r#"{"name":"x.test","colour":"red"}"#, 400, "colour"),
        ("POST", "/zones", r#"{"name":"bad..name"}"#, 400, "name"),
        ("POST", "/zones", r#"{"name":"."}"#, 400, "name"),
        ("POST", "/zones", r#"{"name":"x.test","ttl":99999999}"#, 400, "ttl"),
        ("POST", "/zones", r#"{"name":"x.test","soa":{"mname":"a.","rname":"b.","refresh":0,"retry":1,"expire":1,"minimum":1}}"#, 400, "soa.refresh"),
        ("PUT", "/zones/bad.test/records/www/A", r#"{"ttl":60,"data":["300.1.2.3"]}"#, 400, "data[0]"),
        ("PUT", "/zones/bad.test/records/www/A", r#"{"ttl":60,"data":["192.0.2.1","192.0.2.x"]}"#, 400, "data[1]"),
        ("PUT", "/zones/bad.test/records/www/A", r#"{"ttl":60,"data":[]}"#, 400, "data"),
        ("PUT", "/zones/bad.test/records/www/A", r#"{"ttl":60,"data":["192.0.2.1\nevil A 192.0.2.66"]}"#, 400, "data[0]"),
        ("PUT", "/zones/bad.test/records/www/MX", r#"{"ttl":60,"data":["preference mail"]}"#, 400, "data[0]"),
        ("PUT", "/zones/bad.test/records/www/MX", r#"{"ttl":60,"data":["70000 mail"]}"#, 400, "data[0]"),
        ("PUT", "/zones/bad.test/records/www/SRV", r#"{"ttl":60,"data":["1 2 99999 host"]}"#, 400, "data[0]"),
        ("PUT", "/zones/bad.test/records/www/AAAA", r#"{"ttl":60,"data":["192.0.2.1"]}"#, 400, "data[0]"),
        ("PUT", "/zones/bad.test/records/www/BOGUS", r#"{"ttl":60,"data":["x"]}"#, 400, "type"),
        ("PUT", "/zones/bad.test/records/www/SOA", r#"{"ttl":60,"data":["a. b. 1 1 1 1 1"]}"#, 400, "type"),
        ("PUT", "/zones/bad.test/records/www/CNAME", r#"{"ttl":60,"data":["other"]}"#, 400, "type"),
        ("PUT", "/zones/bad.test/records/www.elsewhere.org./A", r#"{"ttl":60,"data":["192.0.2.9"]}"#, 400, "name"),
        ("PUT", "/zones/bad.test/records/www/TXT", r#"{"ttl":"x","data":["a"]}"#, 400, "ttl"),
    ];
    for (method, path, body, want, field) in cases {
        let (status, reply) = stack.api(method, path, Some(body), t);
        assert_eq!(status, *want, "{method} {path} {body}: {reply}");
        assert_eq!(reply["error"]["field"].as_str(), Some(*field), "{method} {path} {body}: {reply}");
        assert!(!reply["error"]["message"].as_str().unwrap_or("").is_empty(), "{reply}");
    }
    // Unknown ids.
    for (method, path) in [("GET", "/zones/nope.test"), ("GET", "/zones/bad.test/records/nope/A"), ("DELETE", "/zones/bad.test/records/nope/A")] {
        let (status, reply) = stack.api(method, path, None, t);
        assert_eq!(status, 404, "{method} {path}: {reply}");
        assert_eq!(reply["error"]["code"], "not_found", "{reply}");
    }
    // An oversized body. Over HTTP/1.1 curl asks `Expect: 100-continue` first and gets the
    // refusal before sending 3 MiB; over HTTP/2 the refusal arrives mid-upload as a stream reset.
    let huge = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(huge.path(), format!(r#"{{"ttl":60,"data":["{}"]}}"#, "a".repeat(3 << 20))).expect("write it");
    let out = std::process::Command::new("curl")
        .args(["-s", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--cacert"])
        .arg(stack.dns.ca())
        .args(["-H", &format!("authorization: Bearer {t}"), "-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", huge.path().display()))
        .arg(format!("{}/api/v1/orgs/acme/projects/web/zones/bad.test/records/www/TXT", stack.dns.url()))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413", "a 3 MiB body is refused as too large");
    // A zone file with an error on line 4 names the line and leaves the zone as it was.
    let file = "$ORIGIN bad.test.\n@ 60 IN SOA ns. h. 5 1 1 1 1\n@ 60 IN NS ns.\nwww 60 IN A 1.2.3\n";
    let (status, reply) = stack.api("POST", "/zones/bad.test/import", Some(file), t);
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap_or("").contains("line 4"), "{reply}");
    let file = "$ORIGIN bad.test.\n$INCLUDE /etc/passwd\n";
    let (status, reply) = stack.api("POST", "/zones/bad.test/import", Some(file), t);
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap_or("").contains("$INCLUDE"), "{reply}");

    let (status, reply) = stack.api("GET", "/zones/bad.test/records", None, t);
    assert_eq!(status, 200, "{reply}");
    let sets = reply["record_sets"].as_array().cloned().unwrap_or_default();
    assert_eq!(sets.len(), 1, "only the first record set exists: {reply}");
    assert_eq!(sets[0]["data"][0], "192.0.2.1", "{reply}");
    let out = dig(stack.dns_addr, &["www.bad.test.", "A"]);
    assert!(out.contains("192.0.2.1"), "{out}");
    let (_, zone) = stack.api("GET", "/zones/bad.test", None, t);
    assert_eq!(zone["serial"], 2, "one successful change, one serial step: {zone}");

    // The zone's own settings change with PUT; its name does not.
    let (status, reply) = stack.api("PUT", "/zones/bad.test", Some(r#"{"name":"other.test","ttl":600}"#), t);
    assert_eq!((status, reply["error"]["field"].as_str()), (400, Some("name")), "{reply}");
    let (status, reply) = stack.api("PUT", "/zones/bad.test", Some(r#"{"name":"bad.test","ttl":600,"nameservers":["ns9.bad.test."]}"#), t);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["serial"], 3, "{reply}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let out = dig(stack.dns_addr, &["bad.test.", "NS"]);
        if out.contains("bad.test.\t\t600\tIN\tNS\tns9.bad.test.") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

//! Reverse zones made from a subnet: the zones a CIDR needs, PTR names synthesized from a
//! pattern for every address, and addresses registered by name (what the network service
//! does when it hands one out).

mod common;

use common::{answer, dig, status, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn subnets_get_reverse_zones_with_synthesized_and_registered_names() {
    let stack = Stack::start(&[]).await;
    let t = &stack.tenant;
    let (status_code, body) = stack.api(
        "POST",
        "/reverse-zones",
        Some(r#"{"cidr":"10.1.2.0/24","ptr_pattern":"ip-{ip}.vms.example.com."}"#),
        t,
    );
    assert_eq!(status_code, 201, "{body}");
    assert_eq!(body["zones"][0]["spec"]["name"], "2.1.10.in-addr.arpa.", "{body}");
    let (status_code, body) = stack.api(
        "POST",
        "/reverse-zones",
        Some(r#"{"cidr":"2001:db8:1::/48","ptr_pattern":"v6-{ip}.vms.example.com."}"#),
        t,
    );
    assert_eq!(status_code, 201, "{body}");
    assert_eq!(body["zones"][0]["spec"]["name"], "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "{body}");
    // A /20 takes the sixteen /24 zones under it.
    let (status_code, body) = stack.api("POST", "/reverse-zones", Some(r#"{"cidr":"10.9.16.0/20"}"#), t);
    assert_eq!(status_code, 201, "{body}");
    assert_eq!(body["zones"].as_array().map(Vec::len), Some(16), "{body}");
    stack.wait_served("2.1.10.in-addr.arpa.").await;
    stack.wait_served("1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.").await;
    stack.wait_served("31.9.10.in-addr.arpa.").await;

    // Every address has a name from the pattern...
    let out = dig(stack.dns_addr, &["-x", "10.1.2.3"]);
    assert_eq!(answer(&out), vec!["3.2.1.10.in-addr.arpa. 300 IN PTR ip-10-1-2-3.vms.example.com."], "{out}");
    let out = dig(stack.dns_addr, &["-x", "2001:db8:1::5"]);
    let want = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6-2001-db8-1-0-0-0-0-5.vms.example.com.";
    assert_eq!(answer(&out), vec![want], "{out}");
    // ...an address registered by name answers that name instead...
    let (status_code, body) =
        stack.api("PUT", "/reverse-zones/addresses/10.1.2.7", Some(r#"{"name":"vm1.example.com.","ttl":120}"#), t);
    assert_eq!(status_code, 200, "{body}");
    let out = dig(stack.dns_addr, &["-x", "10.1.2.7"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut out = out;
    while answer(&out) != vec!["7.2.1.10.in-addr.arpa. 120 IN PTR vm1.example.com."] {
        assert!(std::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        out = dig(stack.dns_addr, &["-x", "10.1.2.7"]);
    }
    // ...and after it is forgotten, the pattern's name again.
    let (status_code, body) = stack.api("DELETE", "/reverse-zones/addresses/10.1.2.7", None, t);
    assert_eq!(status_code, 204, "{body}");
    // Other types at an address: NODATA; the zone apex: its SOA; a /20's zone with no
    // pattern: NXDOMAIN for an address; outside every subnet: REFUSED.
    let out = dig(stack.dns_addr, &["3.2.1.10.in-addr.arpa.", "A"]);
    assert_eq!((status(&out), answer(&out).len()), ("NOERROR", 0), "{out}");
    let out = dig(stack.dns_addr, &["-x", "10.9.17.4"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    let out = dig(stack.dns_addr, &["-x", "10.200.0.1"]);
    assert_eq!(status(&out), "REFUSED", "{out}");

    // Bad subnets and patterns are refused, naming the field.
    for (body, field) in [
        (r#"{"cidr":"10.1.2.0/26"}"#, "cidr"),
        (r#"{"cidr":"10.1.2.5/24"}"#, "cidr"),
        (r#"{"cidr":"not-a-net"}"#, "cidr"),
        (r#"{"cidr":"10.3.0.0/24","ptr_pattern":"static.example.com."}"#, "ptr_pattern"),
        (r#"{"cidr":"10.3.0.0/24","ptr_pattern":"ip-{ip}.{zone}.example.com."}"#, "ptr_pattern"),
    ] {
        let (status_code, reply) = stack.api("POST", "/reverse-zones", Some(body), t);
        assert_eq!((status_code, reply["error"]["field"].as_str()), (400, Some(field)), "{body}: {reply}");
    }
    // Registering an address no reverse zone of the project holds.
    let (status_code, reply) =
        stack.api("PUT", "/reverse-zones/addresses/192.0.2.1", Some(r#"{"name":"x.example.com."}"#), t);
    assert_eq!(status_code, 404, "{reply}");
    // Another tenant cannot claim the same subnet.
    let (status_code, reply) =
        stack.api("POST", "/api/v1/orgs/beta/projects/web/reverse-zones", Some(r#"{"cidr":"10.1.2.0/24"}"#), &stack.stranger);
    assert_eq!(status_code, 409, "{reply}");
}

//! PlasmaVMC's API with curl: bad input refused with the field named and nothing created,
//! and every route closed to another project's members.

mod common;

use std::time::Duration;

use common::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_naming_the_field_and_creates_nothing() {
    let stack = Stack::start(1).await;
    stack.flavor_and_image("small", 1, 256);
    stack.expect(
        201,
        "POST",
        "/flavors",
        Some(r#"{"name":"huge","spec":{"vcpus":64,"memory_mib":65536,"disk_gib":10}}"#),
    );
    stack.refused("POST", "/vms", r#"{"name":"a","spec":{"flavor":"small","image":"nope"}}"#, "spec.image");
    stack.refused("POST", "/vms", r#"{"name":"a","spec":{"flavor":"nope","image":"guest"}}"#, "spec.flavor");
    let message =
        stack.refused("POST", "/vms", r#"{"name":"a","spec":{"flavor":"huge","image":"guest"}}"#, "spec.flavor");
    assert!(message.contains("no node is that large"), "{message}");
    let big = "x".repeat(70 * 1024);
    stack.refused(
        "POST",
        "/vms",
        &format!(r#"{{"name":"a","spec":{{"flavor":"small","image":"guest","user_data":"{big}"}}}}"#),
        "spec.user_data",
    );
    stack.refused(
        "POST",
        "/vms",
        r#"{"name":"a","spec":{"flavor":"small","image":"guest","ssh_keys":["not a key"]}}"#,
        "spec.ssh_keys[0]",
    );
    stack.refused(
        "POST",
        "/vms",
        r#"{"name":"a","spec":{"flavor":"small","image":"guest","power":"dancing"}}"#,
        "power",
    );
    stack.refused("POST", "/images", r#"{"name":"i","spec":{"kernel":{"url":"ftp://x/y"}}}"#, "spec.kernel.url");
    stack.refused(
        "POST",
        "/images",
        r#"{"name":"i","spec":{"disk":{"url":"http://x/y","sha256":"abc"}}}"#,
        "spec.disk.sha256",
    );
    stack.refused("POST", "/images", r#"{"name":"i","spec":{}}"#, "spec.disk");
    stack.refused("POST", "/flavors", r#"{"name":"f","spec":{"vcpus":0,"memory_mib":256,"disk_gib":1}}"#, "spec.vcpus");
    let listed = stack.expect(200, "GET", "/vms", None);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0), "nothing half-created: {listed}");

    // A VM created stopped is placed but never started; a reboot of it is refused.
    stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"idle","spec":{"flavor":"small","image":"guest","power":"stopped"}}"#),
    );
    stack.wait_state("idle", "stopped", Duration::from_secs(20));
    let (status, body) = stack.api("POST", "/vms/idle/reboot", None, &stack.tenant);
    assert_eq!(status, 409, "{body}");
    let (status, body) = stack.api("POST", "/vms/idle/explode", None, &stack.tenant);
    assert_eq!(status, 400, "{body}");
    // The image cannot change under a VM; a resize needs the VM stopped.
    let vm = stack.vm("idle");
    let mut spec = vm["spec"].clone();
    spec["image"] = "other".into();
    stack.refused("PUT", "/vms/idle", &serde_json::json!({ "spec": spec }).to_string(), "spec.image");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_projects_members_reach_nothing() {
    let stack = Stack::start(1).await;
    stack.flavor_and_image("small", 1, 256);
    stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"mine","spec":{"flavor":"small","image":"guest","power":"stopped"}}"#),
    );
    for (method, path) in [
        ("GET", "/vms"),
        ("GET", "/vms/mine"),
        ("DELETE", "/vms/mine"),
        ("POST", "/vms/mine/start"),
        ("POST", "/vms/mine/stop"),
        ("POST", "/vms/mine/reboot"),
        ("GET", "/flavors/small"),
        ("GET", "/images/guest"),
        ("DELETE", "/images/guest"),
    ] {
        let (status, body) = stack.api(method, path, None, &stack.stranger);
        assert_eq!(status, 403, "{method} {path} as another project's member: {body}");
    }
    // In its own project the stranger sees none of it.
    let (status, body) = stack.nodes[0].project_call(("beta", "web"), "GET", "/vms/mine", None, &stack.stranger);
    assert_eq!(status, 404, "{body}");
    // No token at all.
    let (status, _) = stack.nodes[0].curl("GET", "/api/v1/orgs/acme/projects/web/vms", None, &[]);
    assert_eq!(status, 401);
    stack.vm("mine");
}

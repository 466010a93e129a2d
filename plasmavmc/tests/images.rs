//! Images imported into the platform bucket (a real lightningstor-server's S3, as PlasmaVMC's
//! service account): registered from a URL, each part is copied in once and checked; a VM of
//! it boots after the URL has gone (a presigned URL expires); a part whose bytes differ from
//! its SHA-256 fails the image, and VMs of it, saying why; parts declared without a URL are
//! uploaded (checked, refused for another tenant, never replaced); the platform's public
//! images are made by administrators and booted by every project; a deleted image's parts
//! leave the bucket.

mod common;

use std::time::Duration;

use common::Stack;
use photon_s3::S3Client;

/// Objects in the platform bucket, as PlasmaVMC's account sees them.
async fn platform_objects(stack: &Stack) -> Vec<String> {
    let file = stack.env.iam.dir().join("data/services/plasmavmc.json");
    let account: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap_or_default()).unwrap_or_default();
    let key = (account["key_id"].as_str().unwrap_or_default().to_string(), account["secret"].as_str().unwrap_or_default().to_string());
    let endpoint = stack.s3.as_deref().expect("a stack with storage");
    let s3 = S3Client::new(endpoint, Some(stack.env.ca.path().join("ca.crt").as_path()), key, "us-east-1").expect("an S3 client");
    let xml = s3.xml(hyper::Method::GET, "/plasmavmc-images", "list-type=2").await.unwrap_or_default();
    photon_s3::texts(&xml, "Contents", "Key").unwrap_or_default()
}

/// `PUT .../images/{image}/parts/{part}` with the guest's `file` as the body, as `token`.
fn upload_as(stack: &Stack, token: &str, image: &str, part: &str, file: &str) -> (u16, serde_json::Value) {
    let node = &stack.nodes[0];
    let url = format!("{}/api/v1/orgs/acme/projects/web/images/{image}/parts/{part}", node.url());
    let out = std::process::Command::new("curl")
        .args(["-s", "--http1.1", "-o", "-", "-w", "\n%{http_code}", "-X", "PUT", "--cacert"])
        .arg(node.ca())
        .args(["-H", &format!("authorization: Bearer {token}"), "--data-binary"])
        .arg(format!("@{}", stack.guest.dir.join(file).display()))
        .arg(&url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.trim_end().rsplit_once('\n').unwrap_or(("", text.trim()));
    let json = serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::from(format!("{text} {}", String::from_utf8_lossy(&out.stderr))));
    (code.parse().unwrap_or(0), json)
}

fn upload(stack: &Stack, image: &str, part: &str, file: &str) -> (u16, serde_json::Value) {
    upload_as(stack, &stack.tenant, image, part, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_image_boots_after_its_url_is_gone_and_a_bad_one_says_why() {
    let mut stack = Stack::start_with_storage(1).await;
    stack.expect(201, "POST", "/flavors", Some(r#"{"name":"one","spec":{"vcpus":1,"memory_mib":256,"disk_gib":1}}"#));
    let image = stack.expect(201, "POST", "/images", Some(&stack.guest.image_body("guest")));
    let uid = image["metadata"]["uid"].as_str().unwrap_or_default().to_string();

    // A part whose bytes are not what the image says: the image is in error, naming the part.
    let (kernel, initrd) = (stack.guest.sha256("vmlinuz"), stack.guest.sha256("initrd.img"));
    let bad = stack.guest.image_body("bad").replace(&kernel, &initrd);
    stack.expect(201, "POST", "/images", Some(&bad));

    stack.wait_for("the image imported", Duration::from_secs(60), |s| s.expect(200, "GET", "/images/guest", None)["status"]["state"] == "ready");
    let image = stack.expect(200, "GET", "/images/guest", None);
    let parts = &image["status"]["parts"];
    assert_eq!(parts["kernel"]["object"], format!("{uid}/kernel-{}", &kernel[..16]), "{image}");
    assert_eq!(parts["kernel"]["sha256"], kernel.as_str(), "{image}");
    assert_eq!(parts["initrd"]["sha256"], initrd.as_str(), "{image}");
    let size = std::fs::metadata(stack.guest.dir.join("initrd.img")).map(|m| m.len()).unwrap_or_default();
    assert_eq!(parts["initrd"]["bytes"], size, "{image}");
    let objects = platform_objects(&stack).await;
    let stored: Vec<&str> = ["kernel", "initrd"].iter().filter_map(|p| parts[*p]["object"].as_str()).collect();
    assert!(stored.len() == 2 && stored.iter().all(|o| objects.iter().any(|x| x == o)), "{objects:?}");

    stack.wait_for("the bad image in error", Duration::from_secs(60), |s| s.expect(200, "GET", "/images/bad", None)["status"]["state"] == "error");
    let reason = stack.expect(200, "GET", "/images/bad", None)["status"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("kernel's SHA-256 is") && reason.contains(&initrd), "{reason}");
    stack.expect(201, "POST", "/vms", Some(r#"{"name":"doomed","spec":{"flavor":"one","image":"bad"}}"#));
    let doomed = stack.wait_state("doomed", "error", Duration::from_secs(30));
    assert!(doomed["status"]["reason"].as_str().unwrap_or_default().contains("image bad could not be imported"), "{doomed}");

    // Uploaded: parts declared without a URL are the bodies of PUT .../parts/{part}.
    let declared = format!(
        r#"{{"name":"uploaded","spec":{{"kernel":{{"sha256":"{kernel}"}},"initrd":{{}},"cmdline":"console=ttyS0 quiet panic=-1"}}}}"#
    );
    stack.expect(201, "POST", "/images", Some(&declared));
    stack.wait_for("the image waits for its uploads", Duration::from_secs(30), |s| {
        let image = s.expect(200, "GET", "/images/uploaded", None);
        image["status"]["reason"].as_str().unwrap_or_default().contains("waiting for the upload of its kernel, initrd")
    });
    let (status, body) = upload(&stack, "uploaded", "kernel", "initrd.img");
    assert_eq!(status, 400, "bytes that are not the kernel's: {body}");
    assert!(body.to_string().contains("SHA-256"), "{body}");
    let (status, body) = upload(&stack, "uploaded", "disk", "initrd.img");
    assert_eq!(status, 400, "a part the image does not have: {body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("has no part \"disk\""), "{body}");
    let (status, body) = upload(&stack, "guest", "kernel", "vmlinuz");
    assert_eq!(status, 409, "a part imported from its URL: {body}");
    let (status, body) = upload(&stack, "uploaded", "kernel", "vmlinuz");
    assert_eq!((status, body["status"]["state"].as_str()), (200, Some("importing")), "{body}");
    let (status, body) = upload(&stack, "uploaded", "initrd", "initrd.img");
    assert_eq!((status, body["status"]["state"].as_str()), (200, Some("ready")), "{body}");
    assert_eq!(body["status"]["parts"]["initrd"]["sha256"], initrd.as_str(), "{body}");
    let (status, body) = upload(&stack, "uploaded", "initrd", "initrd.img");
    assert_eq!(status, 409, "an image never changes: {body}");
    let (status, _) = upload_as(&stack, &stack.stranger, "uploaded", "kernel", "vmlinuz");
    assert_eq!(status, 403, "another tenant uploads nothing");

    // Public: an image of the platform's `platform/public`, made by an administrator (a tenant
    // may not), listed for every tenant signed in, booted as `public/<name>` by any project.
    let public = "/api/v1/orgs/platform/projects/public/images";
    let (status, body) = stack.api("POST", public, Some(&stack.guest.image_body("shared")), &stack.tenant);
    assert_eq!(status, 403, "a tenant makes no public image: {body}");
    let (status, body) = stack.api("POST", public, Some(&stack.guest.image_body("shared")), &stack.root);
    assert_eq!(status, 201, "{body}");
    stack.wait_for("the public image imported", Duration::from_secs(60), |s| {
        s.api("GET", "/api/v1/public/images/shared", None, &s.stranger).1["status"]["state"] == "ready"
    });
    let (status, listed) = stack.api("GET", "/api/v1/public/images", None, &stack.stranger);
    assert_eq!((status, listed["items"][0]["metadata"]["name"].as_str()), (200, Some("shared")), "{listed}");
    let (status, _) = stack.api("GET", "/api/v1/public/images", None, "not-a-token");
    assert_eq!(status, 401, "signed in only");
    let missing = r#"{"name":"x","spec":{"flavor":"one","image":"public/none"}}"#;
    let message = stack.refused("POST", "/vms", missing, "spec.image");
    assert!(message.contains("platform/projects/public"), "{message}");

    // The URL goes away; the node, which has never read the images, boots them from the
    // bucket: the imported one, the uploaded one and the public one.
    stack.guest.stop();
    // One at a time: the node holds two.
    for (vm, image) in [("web", "guest"), ("up", "uploaded"), ("pub", "public/shared")] {
        let body = format!(r#"{{"name":"{vm}","spec":{{"flavor":"one","image":"{image}"}}}}"#);
        let made = stack.expect(201, "POST", "/vms", Some(&body));
        let uid = made["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        stack.wait_state(vm, "running", Duration::from_secs(90));
        stack.wait_console(0, &uid, "PLASMAVMC-GUEST-READY", 1, Duration::from_secs(90));
        stack.expect(204, "DELETE", &format!("/vms/{vm}"), None);
    }

    // Deleted, the image's parts leave the bucket.
    stack.expect(204, "DELETE", "/vms/doomed", None);
    stack.expect(204, "DELETE", "/images/guest", None);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let objects = platform_objects(&stack).await;
        if !objects.iter().any(|o| o.starts_with(&uid)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the deleted image's parts stay: {objects:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

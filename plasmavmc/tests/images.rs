//! Images imported into the platform bucket (a real lightningstor-server's S3, as PlasmaVMC's
//! service account): registered from a URL, each part is copied in once and checked; a VM of
//! it boots after the URL has gone (a presigned URL expires); a part whose bytes differ from
//! its SHA-256 fails the image, and VMs of it, saying why; a deleted image's parts leave the
//! bucket.

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
    assert_eq!(parts["kernel"]["object"], format!("{uid}/kernel"), "{image}");
    assert_eq!(parts["kernel"]["sha256"], kernel.as_str(), "{image}");
    assert_eq!(parts["initrd"]["sha256"], initrd.as_str(), "{image}");
    let size = std::fs::metadata(stack.guest.dir.join("initrd.img")).map(|m| m.len()).unwrap_or_default();
    assert_eq!(parts["initrd"]["bytes"], size, "{image}");
    let objects = platform_objects(&stack).await;
    assert!(objects.contains(&format!("{uid}/kernel")) && objects.contains(&format!("{uid}/initrd")), "{objects:?}");

    stack.wait_for("the bad image in error", Duration::from_secs(60), |s| s.expect(200, "GET", "/images/bad", None)["status"]["state"] == "error");
    let reason = stack.expect(200, "GET", "/images/bad", None)["status"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("kernel's SHA-256 is") && reason.contains(&initrd), "{reason}");
    stack.expect(201, "POST", "/vms", Some(r#"{"name":"doomed","spec":{"flavor":"one","image":"bad"}}"#));
    let doomed = stack.wait_state("doomed", "error", Duration::from_secs(30));
    assert!(doomed["status"]["reason"].as_str().unwrap_or_default().contains("image bad could not be imported"), "{doomed}");

    // The URL goes away; the node, which has never read the image, boots it from the bucket.
    stack.guest.stop();
    let vm = stack.expect(201, "POST", "/vms", Some(r#"{"name":"web","spec":{"flavor":"one","image":"guest"}}"#));
    let vm_uid = vm["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    stack.wait_state("web", "running", Duration::from_secs(90));
    stack.wait_console(0, &vm_uid, "PLASMAVMC-GUEST-READY", 1, Duration::from_secs(90));

    // Deleted, the image's parts leave the bucket.
    stack.expect(204, "DELETE", "/vms/web", None);
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

//! The HTTP request path, bytes in and bytes out: whatever a client sends, FiberLB's HTTP
//! listener (its HTTP/1.1 head parser and body framing, hyper for HTTP/2 and HTTP/1.0, then
//! routing by rules, forwarding with retries, our own error answers) must not panic, and what it sends back is an HTTP/1.1 response (or nothing, or
//! HTTP/2 frames after the HTTP/2 preface). The listener is a real plan built from resources:
//! rules by host, path prefix, regex and header, a redirect, and a pool whose backend refuses
//! connections (so forwarding and its retries run to their end).

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fiberlb::config::DataplaneSection;
use fiberlb::dataplane::{http, Dataplane};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    dataplane: Arc<Dataplane>,
    key: String,
}

fn resource(name: &str, parents: &[&str], spec: serde_json::Value) -> Vec<u8> {
    let metadata = json!({"name": name, "org": "acme", "project": "web", "uid": "0", "created_ms": 0, "updated_ms": 0, "generation": 1});
    json!({"metadata": metadata, "parents": parents, "spec": spec}).to_string().into_bytes()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fiberlb-fuzz-{}", std::process::id()));
        let keys = photon_tls::seal::SealKey::load_or_create(&dir.join("master.key"), "the fuzz master key").expect("a key");
        let root = "/photoncloud/fiberlb/r/acme/web";
        let key = format!("{root}/loadbalancers.listeners/front/http");
        let items = [
            (format!("{root}/loadbalancers/front"), resource("front", &[], json!({"vip": "127.0.0.1"}))),
            (format!("{root}/loadbalancers.pools/front/web"), resource("web", &["front"], json!({}))),
            (
                format!("{root}/loadbalancers.pools.backends/front/web/down"),
                resource("down", &["front", "web"], json!({"address": "127.0.0.1", "port": 1})),
            ),
            (
                key.clone(),
                resource("http", &["front"], json!({"protocol": "http", "port": 80, "default_pool": "web", "max_body_bytes": 4096,
                    "timeouts": {"request_ms": 1000, "connect_ms": 100}})),
            ),
            (
                format!("{root}/loadbalancers.listeners.rules/front/http/api"),
                resource("api", &["front", "http"], json!({"priority": 1, "match": {"path_prefix": "/api", "headers": {"x-a": "1"}},
                    "action": {"forward": {"pool": "web"}}, "set_headers": {"x-set": "v"}, "remove_headers": ["cookie"]})),
            ),
            (
                format!("{root}/loadbalancers.listeners.rules/front/http/old"),
                resource("old", &["front", "http"], json!({"priority": 2, "match": {"host": "*.old.example", "path_regex": "/v[0-9]+/.*"},
                    "action": {"redirect": {"location": "https://new.example/", "status": 308}}})),
            ),
        ]
        .into_iter()
        .collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let dataplane = runtime.block_on(async {
            let dataplane = Dataplane::new(fiberlb::model::layout(), Arc::new(keys), &DataplaneSection { access_log: false, threads: 1 })
                .expect("a dataplane");
            dataplane.apply(&items);
            dataplane
        });
        assert!(dataplane.shared().listener(&key).is_some(), "the fixture's listener is planned");
        Fixture { runtime, dataplane, key }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let output = fixture.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let peer = "192.0.2.7:40000".parse().expect("an address");
        let serve = http::connection(server, peer, fixture.key.clone(), fixture.dataplane.shared().clone());
        let talk = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut out)).await;
            out
        };
        let ((), out) = tokio::join!(serve, talk);
        out
    });
    let h2 = data.starts_with(b"PRI * HTTP/2.0");
    assert!(
        output.is_empty() || h2 || output.starts_with(b"HTTP/1.1 ") || output.starts_with(b"HTTP/1.0 "),
        "not an HTTP response: {:?}",
        String::from_utf8_lossy(&output[..output.len().min(200)])
    );
});

//! The HTTP request path, bytes in and bytes out: whatever a client sends, FiberLB's HTTP
//! listener (its HTTP/1.1 head parser and body framing, hyper for HTTP/2 and HTTP/1.0, then
//! routing by rules, forwarding with retries, our own error answers) must not panic, and what it sends back is an HTTP/1.1 response (or nothing, or
//! HTTP/2 frames after the HTTP/2 preface). The listener is a real plan built from resources:
//! rules by host, path prefix, regex and header, a redirect, a pool whose backend refuses
//! connections (so forwarding and its retries run to their end), and a default pool whose
//! backend answers every connection with bytes the input also chooses (its first byte, doubled,
//! is how many of its last bytes are the backend's), so response heads, framing and relaying
//! are fuzzed as much as requests.

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fiberlb::config::DataplaneSection;
use fiberlb::dataplane::{http, Dataplane};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    /// What the live backend sends on each connection.
    script: Arc<Mutex<Vec<u8>>>,
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
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let script = Arc::new(Mutex::new(Vec::new()));
        let port = runtime.block_on(backend(script.clone()));
        let root = "/photoncloud/fiberlb/r/acme/web";
        let key = format!("{root}/loadbalancers.listeners/front/http");
        let items = [
            (format!("{root}/loadbalancers/front"), resource("front", &[], json!({"vip": "127.0.0.1"}))),
            (format!("{root}/loadbalancers.pools/front/web"), resource("web", &["front"], json!({}))),
            (format!("{root}/loadbalancers.pools/front/dead"), resource("dead", &["front"], json!({}))),
            (
                format!("{root}/loadbalancers.pools.backends/front/dead/down"),
                resource("down", &["front", "dead"], json!({"address": "127.0.0.1", "port": 1})),
            ),
            (
                format!("{root}/loadbalancers.pools.backends/front/web/up"),
                resource("up", &["front", "web"], json!({"address": "127.0.0.1", "port": port})),
            ),
            (
                key.clone(),
                resource("http", &["front"], json!({"protocol": "http", "port": 80, "default_pool": "web", "max_body_bytes": 4096,
                    "timeouts": {"request_ms": 1000, "connect_ms": 100}})),
            ),
            (
                format!("{root}/loadbalancers.listeners.rules/front/http/api"),
                resource("api", &["front", "http"], json!({"priority": 1, "match": {"path_prefix": "/api", "headers": {"x-a": "1"}},
                    "action": {"forward": {"pool": "dead"}}, "set_headers": {"x-set": "v"}, "remove_headers": ["cookie"]})),
            ),
            (
                format!("{root}/loadbalancers.listeners.rules/front/http/old"),
                resource("old", &["front", "http"], json!({"priority": 2, "match": {"host": "*.old.example", "path_regex": "/v[0-9]+/.*"},
                    "action": {"redirect": {"location": "https://new.example/", "status": 308}}})),
            ),
        ]
        .into_iter()
        .collect();
        let dataplane = runtime.block_on(async {
            let dataplane = Dataplane::new(fiberlb::model::layout(), Arc::new(keys), &DataplaneSection { access_log: false, threads: 1 })
                .expect("a dataplane");
            dataplane.apply(&items);
            dataplane
        });
        assert!(dataplane.shared().listener(&key).is_some(), "the fixture's listener is planned");
        Fixture { runtime, script, dataplane, key }
    })
}

/// A backend that sends `script` on every connection, then reads what comes until the other
/// side is done (so nothing unread turns the close into a reset).
async fn backend(script: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the backend");
    let port = listener.local_addr().expect("its address").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let bytes = script.lock().map(|s| s.clone()).unwrap_or_default();
            tokio::spawn(async move {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 4096];
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut sink)).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    port
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let backend_len = data.first().map_or(0, |n| usize::from(*n) * 2).min(data.len().saturating_sub(1));
    let (data, answer) = data.get(1..).unwrap_or_default().split_at(data.len().saturating_sub(1) - backend_len);
    if let Ok(mut script) = fixture.script.lock() {
        *script = answer.to_vec();
    }
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

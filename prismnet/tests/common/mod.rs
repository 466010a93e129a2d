//! What PrismNET's API tests stand on: real chainfire, flaredb and IAM processes (IAM's test
//! environment), a prismnet-server with its dataplane off (the API alone), and two tenants.

#![allow(dead_code)] // Each test binary uses a different part.

#[path = "../../../iam/tests/common/mod.rs"]
pub mod iam_env;

pub mod hosts;

use std::time::Duration;

use iam_env::Env;
use photon_testkit::TestServer;

/// The external pool floating IPs come from in these tests (TEST-NET-3).
pub const FLOATING_CIDR: &str = "203.0.113.0/28";

pub struct Stack {
    pub env: Env,
    pub root: String,
    pub net: TestServer,
    /// A member of project acme/web.
    pub tenant: String,
    /// A member of project beta/web.
    pub stranger: String,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// With `iam_env` (IAM's `IAM_*`) and `net_env` (prismnet's `PRISMNET_*`) besides the defaults.
    pub async fn start_with(iam_env: &[(&str, &str)], net_env: &[(&str, String)]) -> Self {
        let env = Env::start(iam_env).await;
        let root = env.admin_token().await;
        env.org(&root, "acme", &["web"]).await;
        env.org(&root, "beta", &["web"]).await;
        let tenant = env.member_token(&root, "acme", "net", "member").await;
        let stranger = env.member_token(&root, "beta", "net", "member").await;
        let mut net = api_server(&env, net_env);
        net.process.start();
        net.wait_healthy(Duration::from_secs(30)).await;
        Self { env, root, net, tenant, stranger }
    }

    /// The API under `/api/v1/orgs/acme/projects/web` (or the full path if it starts with
    /// `/api/`) as `token`: (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>, token: &str) -> (u16, serde_json::Value) {
        self.net.project_call(("acme", "web"), method, path, body, token)
    }

    /// `api` as the tenant, asserting `status`.
    pub fn expect(&self, status: u16, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let (got, json) = self.api(method, path, body, &self.tenant);
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }

    /// `api` as the tenant expecting 400 naming `field`; the message.
    pub fn refused(&self, method: &str, path: &str, body: &str, field: &str) -> String {
        let (got, json) = self.api(method, path, Some(body), &self.tenant);
        assert_eq!(got, 400, "{method} {path} {body}: {json}");
        let message = json["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(field), "{body}: the error names {field}: {json}");
        message
    }
}

/// A prismnet-server with its dataplane off on `env`'s chainfire and IAM (not started), with
/// `net_env` besides the test pools.
pub fn api_server(env: &Env, net_env: &[(&str, String)]) -> TestServer {
    let (chainfire, iam) = (env.chainfire.url(), env.iam.url());
    let mut net = TestServer::with_shared_ca("prismnet-server", env.ca.path(), &["--chainfire", &chainfire, "--iam", &iam]);
    net.process.env("PRISMNET_DATAPLANE_ENABLED", "false");
    net.process.env("PRISMNET_EXTERNAL_FLOATING_CIDR", FLOATING_CIDR);
    net.process.env("PRISMNET_IPAM_SERVICE_CIDR", "10.96.0.0/28");
    for (k, v) in net_env {
        net.process.env(k, v);
    }
    net
}

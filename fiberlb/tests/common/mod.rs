//! What FiberLB's tests stand on: real chainfire, flaredb and IAM processes (IAM's test
//! environment), a fiberlb-server on free ports, and two tenants with their tokens.

#![allow(dead_code)] // Each test binary uses a different part.

#[path = "../../../iam/tests/common/mod.rs"]
pub mod iam_env;

use std::time::Duration;

use iam_env::Env;
use photon_testkit::TestServer;

pub struct Stack {
    pub env: Env,
    pub root: String,
    pub lb: TestServer,
    /// A member of project acme/web.
    pub tenant: String,
    /// A member of project beta/web.
    pub stranger: String,
}

impl Stack {
    pub async fn start() -> Self {
        let env = Env::start(&[]).await;
        let root = env.admin_token().await;
        env.org(&root, "acme", &["web"]).await;
        env.org(&root, "beta", &["web"]).await;
        let tenant = env.member_token(&root, "acme", "lb", "member").await;
        let stranger = env.member_token(&root, "beta", "lb", "member").await;
        let (chainfire, iam) = (env.chainfire.url(), env.iam.url());
        let mut lb = TestServer::with_shared_ca("fiberlb-server", env.ca.path(), &["--chainfire", &chainfire, "--iam", &iam]);
        lb.process.start();
        lb.wait_healthy(Duration::from_secs(30)).await;
        Self { env, root, lb, tenant, stranger }
    }

    /// The API under `/api/v1/orgs/acme/projects/web` (or the full path if it starts with
    /// `/api/`) as `token`: (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>, token: &str) -> (u16, serde_json::Value) {
        let path = if path.starts_with("/api/") { path.to_string() } else { format!("/api/v1/orgs/acme/projects/web{path}") };
        let auth = format!("authorization: Bearer {token}");
        self.lb.curl(method, &path, body, &[&auth])
    }

    /// `api` as the tenant, asserting `status`.
    pub fn expect(&self, status: u16, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let (got, json) = self.api(method, path, body, &self.tenant);
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }
}

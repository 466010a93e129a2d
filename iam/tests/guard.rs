//! The shared auth guard in front of a demo service (photon-test-service with `[auth]`):
//! missing, malformed and expired tokens get 401, disallowed calls 403, undeclared routes are
//! refused; revocation reaches the service within the decision TTL; with IAM killed, cached
//! decisions keep answering until the token expires, and new logins and new questions fail
//! cleanly.

mod common;

use std::time::{Duration, Instant};

use common::{bearer, Env};
use photon_api::iam::v1 as pb;
use photon_api::testing::v1::demo_client::DemoClient;
use photon_api::testing::v1::ListItemsRequest;
use photon_testkit::TestServer;

async fn setup(env: &Env) {
    let root = env.admin_token().await;
    let mut admin = env.admin();
    env.org(&root, "a", &["p"]).await;
    env.org(&root, "b", &["q"]).await;
    let alice = pb::CreateUserRequest {
        org: "a".into(),
        name: "alice".into(),
        display_name: String::new(),
        password: "alice-long-password".into(),
    };
    admin.create_user(bearer(&root, alice)).await.unwrap();
    let binding = pb::CreateBindingRequest {
        scope: "orgs/a/projects/p".into(),
        principal: "user:alice".into(),
        role: "member".into(),
        ..Default::default()
    };
    admin.create_binding(bearer(&root, binding)).await.unwrap();
}

fn demo(env: &Env) -> TestServer {
    let mut demo = TestServer::with_shared_ca("photon-test-service", env.ca.path(), &[]);
    demo.process.env("PHOTON_TEST_AUTH_IAM_URL", env.iam.url()).env("PHOTON_TEST_AUTH_DECISION_TTL_MS", "1000");
    demo.process.start();
    demo
}

fn get(demo: &TestServer, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let header = token.map(|t| format!("authorization: Bearer {t}"));
    let headers: Vec<&str> = header.iter().map(String::as_str).collect();
    demo.curl("GET", path, None, &headers)
}

const MINE: &str = "/api/v1/demo/orgs/a/projects/p/items";
const THEIRS: &str = "/api/v1/demo/orgs/b/projects/q/items";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_answers_401_403_and_outlives_an_iam_outage_until_tokens_expire() {
    let mut env = Env::start(&[("IAM_TOKENS_ACCESS_TTL_SECONDS", "8")]).await;
    setup(&env).await;
    let mut demo = demo(&env);
    demo.wait_healthy(Duration::from_secs(30)).await;

    let (code, body) = get(&demo, MINE, None);
    assert_eq!((code, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    let (code, body) = get(&demo, MINE, Some("not.a.token"));
    assert_eq!(code, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("malformed"), "{body}");
    assert_eq!(get(&demo, "/api/v1/echo/hi", None).0, 200, "public routes stay open");
    let (code, body) = demo.curl("POST", "/api/v1/echo/hi", None, &[]);
    assert_eq!(code, 403, "an undeclared route is refused: {body}");

    let issued = Instant::now();
    let alice = env.login("alice", "alice-long-password").await.unwrap().access_token;
    let (code, body) = get(&demo, MINE, Some(&alice));
    assert_eq!((code, body["caller"].as_str()), (200, Some("user:alice")), "{body}");
    let (code, body) = get(&demo, THEIRS, Some(&alice));
    assert_eq!((code, body["error"]["code"].as_str()), (403, Some("permission_denied")), "{body}");

    // The same guard answers gRPC calls with gRPC statuses.
    let list = |token: Option<&str>, org: &str, project: &str| {
        let mut request = tonic::Request::new(ListItemsRequest {});
        request.metadata_mut().insert("x-org", org.parse().unwrap());
        request.metadata_mut().insert("x-project", project.parse().unwrap());
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let options = photon_client::ChannelOptions { ca: Some(demo.ca()), ..Default::default() };
        let mut client = DemoClient::new(photon_client::lazy_channel(&demo.url(), &options).unwrap());
        async move { client.list_items(request).await.map(|r| r.into_inner()) }
    };
    assert_eq!(list(None, "a", "p").await.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert_eq!(list(Some("garbage"), "a", "p").await.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert_eq!(list(Some(&alice), "a", "p").await.unwrap().caller, "user:alice");
    assert_eq!(list(Some(&alice), "b", "q").await.unwrap_err().code(), tonic::Code::PermissionDenied);

    // The tonic interceptor (for services serving tonic directly) authenticates the same way.
    let mut config = photon_auth::AuthConfig::new(env.iam.url());
    config.ca = Some(env.iam.ca());
    let client = std::sync::Arc::new(photon_auth::AuthClient::new(config).unwrap());
    client.prefetch_keys().await.unwrap();
    let mut intercept = photon_auth::interceptor::authenticate(client);
    assert_eq!(intercept(tonic::Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(());
    request.metadata_mut().insert("authorization", format!("Bearer {alice}").parse().unwrap());
    let passed = intercept(request).unwrap();
    assert_eq!(passed.extensions().get::<photon_auth::Caller>().unwrap().principal, "user:alice");

    // Revocation reaches the service once its cached decision is older than the TTL (1 s).
    let second = env.login("alice", "alice-long-password").await.unwrap().access_token;
    assert_eq!(get(&demo, MINE, Some(&second)).0, 200);
    env.tokens().revoke_token(bearer(&second, pb::RevokeTokenRequest { token: second.clone() })).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(&demo, MINE, Some(&second)).0 != 401 {
        assert!(Instant::now() < deadline, "the revoked token kept working past the decision TTL");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // IAM goes away: alice's cached decision keeps working; anything new fails cleanly.
    env.iam.process.kill9();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (code, body) = get(&demo, MINE, Some(&alice));
    assert_eq!(code, 200, "a cached decision for a valid token survives the outage: {body}");
    let (code, body) = get(&demo, "/api/v1/demo/orgs/a/projects/other/items", Some(&alice));
    assert_eq!((code, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("IAM is unreachable"), "{body}");
    let login = env.login("alice", "alice-long-password").await.unwrap_err();
    assert_eq!(login.code(), tonic::Code::Unavailable, "{login:?}");

    // Until the token itself expires.
    let expiry = Duration::from_secs(8).saturating_sub(issued.elapsed()) + Duration::from_millis(1200);
    tokio::time::sleep(expiry).await;
    let (code, body) = get(&demo, MINE, Some(&alice));
    assert_eq!(code, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
}

//! chainfire, one flaredb store and iam-server as real processes on loopback, and clients that
//! carry bearer tokens, for IAM's tests.

#![allow(dead_code)] // Each test binary uses a different part.

use std::time::Duration;

use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_client::AdminClient;
use photon_api::iam::v1::authz_client::AuthzClient;
use photon_api::iam::v1::tokens_client::TokensClient;
use photon_testkit::{free_port, TestServer};
use tonic::transport::Channel;

pub const ADMIN_PASSWORD: &str = "first-admin-password";

pub struct Env {
    pub ca: tempfile::TempDir,
    pub chainfire: TestServer,
    pub flaredb: TestServer,
    pub iam: TestServer,
    pub password_file: tempfile::NamedTempFile,
}

impl Env {
    /// The whole chain, iam-server started with `env` set; waits until IAM is healthy.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let ca = tempfile::tempdir().unwrap();
        let raft = format!("127.0.0.1:{}", free_port());
        let mut chainfire = TestServer::with_shared_ca("chainfire-server", ca.path(), &["--raft-listen", &raft]);
        chainfire.process.start();
        chainfire.wait_healthy(Duration::from_secs(30)).await;
        let raft = format!("127.0.0.1:{}", free_port());
        let url = chainfire.url();
        let mut flaredb =
            TestServer::with_shared_ca("flaredb-server", ca.path(), &["--raft-listen", &raft, "--chainfire", &url]);
        flaredb.process.start();
        flaredb.wait_healthy(Duration::from_secs(30)).await;
        let password_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(password_file.path(), ADMIN_PASSWORD).unwrap();
        let password = password_file.path().to_string_lossy().into_owned();
        let url = flaredb.url();
        let mut iam = TestServer::with_shared_ca(
            "iam-server",
            ca.path(),
            &["--flaredb", &url, "--admin-password-file", &password],
        );
        for (k, v) in env {
            iam.process.env(k, v);
        }
        iam.process.start();
        iam.wait_healthy(Duration::from_secs(30)).await;
        Self { ca, chainfire, flaredb, iam, password_file }
    }

    fn channel(&self) -> Channel {
        let options = photon_client::ChannelOptions { ca: Some(self.iam.ca()), ..Default::default() };
        photon_client::lazy_channel(&self.iam.url(), &options).unwrap()
    }

    pub fn tokens(&self) -> TokensClient<Channel> {
        TokensClient::new(self.channel())
    }

    pub fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel())
    }

    pub fn authz(&self) -> AuthzClient<Channel> {
        AuthzClient::new(self.channel())
    }

    /// Logs in with a password; the whole answer.
    pub async fn login(&self, user: &str, password: &str) -> Result<pb::TokenResponse, tonic::Status> {
        let credentials = pb::issue_token_request::Credentials::Password(pb::PasswordCredentials {
            user: user.into(),
            password: password.into(),
        });
        self.tokens()
            .issue_token(pb::IssueTokenRequest { credentials: Some(credentials) })
            .await
            .map(|r| r.into_inner())
    }

    /// Creates `org` and its `projects` as `root`.
    pub async fn org(&self, root: &str, org: &str, projects: &[&str]) {
        let mut admin = self.admin();
        admin
            .create_org(bearer(root, pb::CreateOrgRequest { name: org.into(), display_name: String::new() }))
            .await
            .unwrap();
        for project in projects {
            let create =
                pb::CreateProjectRequest { org: org.into(), name: project.to_string(), display_name: String::new() };
            admin.create_project(bearer(root, create)).await.unwrap();
        }
    }

    /// The first administrator's access token.
    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await.expect("the bootstrap admin logs in").access_token
    }

    /// A service account `name` of `org/web` with `role` there, made by `root`: its access
    /// key (id, secret).
    pub async fn member_key(&self, root: &str, org: &str, name: &str, role: &str) -> (String, String) {
        let mut admin = self.admin();
        let sa = pb::CreateServiceAccountRequest { org: org.into(), project: "web".into(), name: name.into() };
        admin.create_service_account(bearer(root, sa)).await.expect("create the service account");
        let principal = format!("sa:{org}/web/{name}");
        let binding = pb::CreateBindingRequest {
            scope: format!("orgs/{org}/projects/web"),
            principal: principal.clone(),
            role: role.into(),
            ..Default::default()
        };
        admin.create_binding(bearer(root, binding)).await.expect("bind the role");
        let key = admin
            .create_access_key(bearer(root, pb::CreateAccessKeyRequest { principal }))
            .await
            .expect("an access key")
            .into_inner();
        (key.key.expect("the key").key_id, key.secret)
    }

    /// `member_key`'s service account logged in with its key: its access token (a service's
    /// tests' tenant).
    pub async fn member_token(&self, root: &str, org: &str, name: &str, role: &str) -> String {
        let (key_id, secret) = self.member_key(root, org, name, role).await;
        let credentials = pb::issue_token_request::Credentials::AccessKey(pb::AccessKeyCredentials { key_id, secret });
        self.tokens()
            .issue_token(pb::IssueTokenRequest { credentials: Some(credentials) })
            .await
            .expect("a token for the access key")
            .into_inner()
            .access_token
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

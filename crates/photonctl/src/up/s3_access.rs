//! Once LightningStor is healthy, `photonctl up` makes S3 usable at once: it provisions (the
//! first time) a service account `sa:default/default/s3` with an access key, writes an AWS
//! credentials and config file for it under `<data>/lightningstor/aws/` (0600), and prints an
//! aws-cli command that works as printed. A service account, because a bucket belongs to the
//! project of the key that creates it (docs/lightningstor.md).

use std::path::Path;

use anyhow::Context as _;
use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_client::AdminClient;
use photon_api::iam::v1::tokens_client::TokensClient;
use tonic::transport::Channel;

use crate::private_file::write_private;

const ORG: &str = "default";
const PROJECT: &str = "default";
const ACCOUNT: &str = "s3";
const PROFILE: &str = "photon";

fn bearer<T>(token: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// `Ok` also when it already existed (a second `up` on the same data).
fn created<T>(result: Result<T, tonic::Status>, what: &str) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(status) => Err(anyhow::anyhow!("creating {what}: {}", status.message())),
    }
}

/// The access key, created as the first administrator (whose password IAM's first boot wrote).
async fn provision(iam: Channel, data_dir: &Path) -> anyhow::Result<(String, String)> {
    let password_file = data_dir.join("iam/initial-admin-password");
    let password = std::fs::read_to_string(&password_file)
        .with_context(|| format!("reading the first administrator's password from {}", password_file.display()))?;
    let credentials = pb::issue_token_request::Credentials::Password(pb::PasswordCredentials {
        user: "admin".into(),
        password: password.trim().to_string(),
    });
    let token = TokensClient::new(iam.clone())
        .issue_token(pb::IssueTokenRequest { credentials: Some(credentials) })
        .await
        .map_err(|s| anyhow::anyhow!("logging in as admin: {}", s.message()))?
        .into_inner()
        .access_token;
    let mut admin = AdminClient::new(iam);
    let org = pb::CreateOrgRequest { name: ORG.into(), display_name: "Default".into() };
    created(admin.create_org(bearer(&token, org)?).await, "org default")?;
    let project = pb::CreateProjectRequest { org: ORG.into(), name: PROJECT.into(), display_name: "Default".into() };
    created(admin.create_project(bearer(&token, project)?).await, "project default/default")?;
    let account = pb::CreateServiceAccountRequest { org: ORG.into(), project: PROJECT.into(), name: ACCOUNT.into() };
    created(admin.create_service_account(bearer(&token, account)?).await, "service account s3")?;
    let principal = format!("sa:{ORG}/{PROJECT}/{ACCOUNT}");
    let binding = pb::CreateBindingRequest {
        scope: format!("orgs/{ORG}/projects/{PROJECT}"),
        principal: principal.clone(),
        role: "member".into(),
        ..Default::default()
    };
    created(admin.create_binding(bearer(&token, binding)?).await, "the s3 account's binding")?;
    let key = admin
        .create_access_key(bearer(&token, pb::CreateAccessKeyRequest { principal })?)
        .await
        .map_err(|s| anyhow::anyhow!("creating an access key: {}", s.message()))?
        .into_inner();
    let id = key.key.map(|k| k.key_id).context("IAM answered no key id")?;
    Ok((id, key.secret))
}

/// Makes sure the S3 credentials exist; answers the aws-cli command to print.
pub async fn ensure(iam_url: &str, ca: &Path, data_dir: &Path, s3_url: &str) -> anyhow::Result<String> {
    let dir = data_dir.join("lightningstor/aws");
    let (credentials, config) = (dir.join("credentials"), dir.join("config"));
    if !credentials.exists() {
        let options = photon_client::ChannelOptions { ca: Some(ca.to_path_buf()), ..Default::default() };
        let iam = photon_client::lazy_channel(iam_url, &options)?;
        let (key_id, secret) = provision(iam, data_dir).await?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_private(
            &config,
            &format!("[profile {PROFILE}]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"),
        )?;
        write_private(
            &credentials,
            &format!("[{PROFILE}]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"),
        )?;
    }
    Ok(command(&credentials, &config, ca, s3_url))
}

fn command(credentials: &Path, config: &Path, ca: &Path, s3_url: &str) -> String {
    format!(
        "AWS_SHARED_CREDENTIALS_FILE={} AWS_CONFIG_FILE={} AWS_PROFILE={PROFILE} AWS_CA_BUNDLE={} aws \
         --endpoint-url {s3_url} s3 ls",
        credentials.display(),
        config.display(),
        ca.display()
    )
}

//! `photonctl login`, `whoami` and `photonctl iam ...`: IAM from the command line. `login`
//! keeps the tokens in the user's config dir (`$PHOTONCTL_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/photoncloud`, else `~/.config/photoncloud`, file mode 0600); every other
//! command uses them, refreshing the access token when it has expired.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_client::AdminClient;
use photon_api::iam::v1::tokens_client::TokensClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tonic::transport::Channel;

use crate::table::print;
use crate::OutputFormat;

/// What `login` saves.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Credentials {
    endpoint: String,
    /// The CA IAM's certificate was trusted with (the platform's, as a rule).
    pub(crate) ca: PathBuf,
    pub(crate) principal: String,
    access_token: String,
    expires_at: i64,
    refresh_token: String,
    refresh_expires_at: i64,
}

fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PHOTONCTL_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("photoncloud"));
    }
    let home =
        std::env::var_os("HOME").context("no HOME, XDG_CONFIG_HOME or PHOTONCTL_CONFIG_DIR to keep the login in")?;
    Ok(PathBuf::from(home).join(".config").join("photoncloud"))
}

fn credentials_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials.json"))
}

fn save(credentials: &Credentials) -> anyhow::Result<PathBuf> {
    let path = credentials_path()?;
    crate::private_file::write_private(&path, &serde_json::to_string_pretty(credentials)?)?;
    Ok(path)
}

fn channel(endpoint: &str, ca: &std::path::Path) -> anyhow::Result<Channel> {
    let options = photon_client::ChannelOptions { ca: Some(ca.to_path_buf()), ..Default::default() };
    photon_client::lazy_channel(endpoint, &options).with_context(|| format!("IAM endpoint {endpoint}"))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn read_password(file: Option<PathBuf>) -> anyhow::Result<String> {
    let text = match file {
        Some(path) => std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            eprint!("password: ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line
        }
    };
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Tokens for `user` with `password` from IAM at `endpoint`.
pub async fn password_token(
    endpoint: &str,
    ca: &std::path::Path,
    user: &str,
    password: String,
) -> anyhow::Result<pb::TokenResponse> {
    let credentials =
        pb::issue_token_request::Credentials::Password(pb::PasswordCredentials { user: user.into(), password });
    Ok(TokensClient::new(channel(endpoint, ca)?)
        .issue_token(pb::IssueTokenRequest { credentials: Some(credentials) })
        .await
        .map_err(|s| anyhow::anyhow!("login failed: {}", s.message()))?
        .into_inner())
}

pub async fn login(endpoint: &str, ca: PathBuf, user: &str, password_file: Option<PathBuf>) -> anyhow::Result<()> {
    let password = read_password(password_file)?;
    let answer = password_token(endpoint, &ca, user, password).await?;
    let path = save(&Credentials {
        endpoint: endpoint.to_string(),
        ca,
        principal: answer.principal.clone(),
        access_token: answer.access_token,
        expires_at: answer.expires_at,
        refresh_token: answer.refresh_token,
        refresh_expires_at: answer.refresh_expires_at,
    })?;
    println!("logged in as {} (token kept in {})", answer.principal, path.display());
    Ok(())
}

/// The saved login, with a fresh access token (refreshed and saved again when expired).
pub(crate) async fn session() -> anyhow::Result<(Channel, String, Credentials)> {
    let path = credentials_path()?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("not logged in ({} missing): run photonctl login", path.display()))?;
    let mut credentials: Credentials =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged; log in again", path.display()))?;
    let channel = channel(&credentials.endpoint, &credentials.ca)?;
    if credentials.expires_at <= now() + 5 {
        if credentials.refresh_expires_at <= now() {
            bail!("the login has expired; run photonctl login again");
        }
        let answer = TokensClient::new(channel.clone())
            .refresh_token(pb::RefreshTokenRequest { refresh_token: credentials.refresh_token.clone() })
            .await
            .map_err(|s| anyhow::anyhow!("refreshing the login failed ({}); run photonctl login again", s.message()))?
            .into_inner();
        credentials.access_token = answer.access_token;
        credentials.expires_at = answer.expires_at;
        save(&credentials)?;
    }
    let token = credentials.access_token.clone();
    Ok((channel, token, credentials))
}

/// What `token` says of its holder, read without verifying it: only to pick defaults (the
/// org of the login); the services verify every token they are sent.
pub(crate) fn claims(token: &str) -> anyhow::Result<photon_auth::Claims> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).context("the saved access token is not a JWT; log in again")?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("the saved access token does not decode; log in again")?;
    serde_json::from_slice(&json).context("the saved access token's claims do not parse; log in again")
}

fn bearer<T>(token: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().context("token is not a header value")?);
    Ok(request)
}

pub async fn whoami(output: OutputFormat) -> anyhow::Result<()> {
    let (channel, token, _) = session().await?;
    let answer = TokensClient::new(channel)
        .validate_token(pb::ValidateTokenRequest { token })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let value = serde_json::to_value(&answer)?;
    print(output, &[value], &["principal", "org", "groups", "expires_at"]);
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum IamCommand {
    /// Organizations: ls | create NAME | rm NAME.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Projects of an org: ls ORG | create ORG NAME | rm ORG NAME.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Users: ls [--org ORG] | create NAME [--org ORG] [--password-file F] | rm NAME | disable NAME | enable NAME.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Groups: ls ORG | create ORG NAME | add ORG NAME PRINCIPAL | remove ORG NAME PRINCIPAL | rm ORG NAME.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Roles: ls SCOPE | create SCOPE NAME --permission P... | rm ID.
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Bindings: ls SCOPE | create SCOPE PRINCIPAL ROLE [--deny] [--source-cidr C...] | rm SCOPE ID.
    Binding {
        #[command(subcommand)]
        command: BindingCommand,
    },
    /// Service accounts: ls ORG PROJECT | create ORG PROJECT NAME | rm ORG PROJECT NAME.
    ServiceAccount {
        #[command(subcommand)]
        command: ServiceAccountCommand,
    },
    /// Access keys for S3 tools: ls PRINCIPAL | create PRINCIPAL (prints the secret once) | rm KEY_ID.
    AccessKey {
        #[command(subcommand)]
        command: AccessKeyCommand,
    },
    /// The audit log under a scope, newest first.
    Audit {
        #[arg(default_value = "system")]
        scope: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    Ls,
    Create {
        name: String,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    Rm {
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ProjectCommand {
    Ls { org: String },
    Create { org: String, name: String },
    Rm { org: String, name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    Ls {
        #[arg(long, default_value = "")]
        org: String,
    },
    Create {
        name: String,
        #[arg(long, default_value = "")]
        org: String,
        /// File holding the password (default: read from stdin).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    Rm {
        name: String,
    },
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    Ls { org: String },
    Create { org: String, name: String },
    Add { org: String, name: String, principal: String },
    Remove { org: String, name: String, principal: String },
    Rm { org: String, name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum RoleCommand {
    Ls {
        scope: String,
    },
    Create {
        scope: String,
        name: String,
        /// A permission pattern (repeatable): service:resource:verb with '*', '!' to exclude.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    Rm {
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum BindingCommand {
    Ls {
        scope: String,
    },
    Create {
        scope: String,
        principal: String,
        role: String,
        #[arg(long)]
        deny: bool,
        /// Only from these source addresses (repeatable).
        #[arg(long = "source-cidr")]
        source_cidrs: Vec<String>,
    },
    Rm {
        scope: String,
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ServiceAccountCommand {
    Ls { org: String, project: String },
    Create { org: String, project: String, name: String },
    Rm { org: String, project: String, name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum AccessKeyCommand {
    Ls { principal: String },
    Create { principal: String },
    Rm { key_id: String },
}

/// Prints rows as a table of `columns`, or as JSON.
fn rows<T: Serialize>(items: &[T]) -> anyhow::Result<Vec<Value>> {
    items.iter().map(|i| serde_json::to_value(i).map_err(anyhow::Error::from)).collect()
}

fn refused(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} ({:?})", status.message(), status.code())
}

pub async fn run(command: IamCommand, output: OutputFormat) -> anyhow::Result<()> {
    let (channel, token, _) = session().await?;
    let mut admin = AdminClient::new(channel);
    macro_rules! t {
        ($m:expr) => {
            bearer(&token, $m)
        };
    }
    macro_rules! call {
        ($e:expr) => {
            $e.await.map_err(refused)?.into_inner()
        };
    }
    let done = |what: String| {
        if output == OutputFormat::Json {
            println!("{}", serde_json::json!({ "ok": what }));
        } else {
            println!("{what}");
        }
    };
    match command {
        IamCommand::Org { command } => match command {
            OrgCommand::Ls => {
                let orgs = call!(admin.list_orgs(t!(pb::ListOrgsRequest {})?)).orgs;
                print(output, &rows(&orgs)?, &["name", "display_name", "created_at"]);
            }
            OrgCommand::Create { name, display_name } => {
                let org = call!(admin.create_org(t!(pb::CreateOrgRequest { name, display_name })?));
                print(output, &rows(&[org])?, &["name", "display_name", "created_at"]);
            }
            OrgCommand::Rm { name } => {
                call!(admin.delete_org(t!(pb::DeleteOrgRequest { name: name.clone() })?));
                done(format!("deleted org {name}"));
            }
        },
        IamCommand::Project { command } => match command {
            ProjectCommand::Ls { org } => {
                let projects = call!(admin.list_projects(t!(pb::ListProjectsRequest { org })?)).projects;
                print(output, &rows(&projects)?, &["org", "name", "created_at"]);
            }
            ProjectCommand::Create { org, name } => {
                let project = call!(admin.create_project(t!(pb::CreateProjectRequest {
                    org,
                    name,
                    display_name: String::new()
                })?));
                print(output, &rows(&[project])?, &["org", "name", "created_at"]);
            }
            ProjectCommand::Rm { org, name } => {
                call!(admin.delete_project(t!(pb::DeleteProjectRequest { org: org.clone(), name: name.clone() })?));
                done(format!("deleted project {org}/{name}"));
            }
        },
        IamCommand::User { command } => match command {
            UserCommand::Ls { org } => {
                let users = call!(admin.list_users(t!(pb::ListUsersRequest { org })?)).users;
                print(output, &rows(&users)?, &["name", "org", "disabled", "created_at"]);
            }
            UserCommand::Create { name, org, password_file } => {
                let password = read_password(password_file)?;
                let user = call!(admin.create_user(t!(pb::CreateUserRequest {
                    org,
                    name,
                    display_name: String::new(),
                    password
                })?));
                print(output, &rows(&[user])?, &["name", "org", "disabled", "created_at"]);
            }
            UserCommand::Rm { name } => {
                call!(admin.delete_user(t!(pb::DeleteUserRequest { name: name.clone() })?));
                done(format!("deleted user {name}"));
            }
            UserCommand::Disable { name } => {
                let user =
                    call!(admin.update_user(t!(pb::UpdateUserRequest { name, password: None, disabled: Some(true) })?));
                print(output, &rows(&[user])?, &["name", "org", "disabled"]);
            }
            UserCommand::Enable { name } => {
                let user = call!(admin.update_user(t!(pb::UpdateUserRequest {
                    name,
                    password: None,
                    disabled: Some(false)
                })?));
                print(output, &rows(&[user])?, &["name", "org", "disabled"]);
            }
        },
        IamCommand::Group { command } => match command {
            GroupCommand::Ls { org } => {
                let groups = call!(admin.list_groups(t!(pb::ListGroupsRequest { org })?)).groups;
                print(output, &rows(&groups)?, &["org", "name", "members"]);
            }
            GroupCommand::Create { org, name } => {
                let group = call!(admin.create_group(t!(pb::CreateGroupRequest { org, name })?));
                print(output, &rows(&[group])?, &["org", "name", "members"]);
            }
            GroupCommand::Add { org, name, principal } => {
                let group = call!(admin.add_group_member(t!(pb::GroupMemberRequest { org, name, member: principal })?));
                print(output, &rows(&[group])?, &["org", "name", "members"]);
            }
            GroupCommand::Remove { org, name, principal } => {
                let group =
                    call!(admin.remove_group_member(t!(pb::GroupMemberRequest { org, name, member: principal })?));
                print(output, &rows(&[group])?, &["org", "name", "members"]);
            }
            GroupCommand::Rm { org, name } => {
                call!(admin.delete_group(t!(pb::DeleteGroupRequest { org: org.clone(), name: name.clone() })?));
                done(format!("deleted group {org}/{name}"));
            }
        },
        IamCommand::Role { command } => match command {
            RoleCommand::Ls { scope } => {
                let roles = call!(admin.list_roles(t!(pb::ListRolesRequest { scope })?)).roles;
                print(output, &rows(&roles)?, &["id", "permissions", "description"]);
            }
            RoleCommand::Create { scope, name, permissions, description } => {
                let role =
                    call!(admin.create_role(t!(pb::CreateRoleRequest { scope, name, description, permissions })?));
                print(output, &rows(&[role])?, &["id", "permissions", "description"]);
            }
            RoleCommand::Rm { id } => {
                call!(admin.delete_role(t!(pb::DeleteRoleRequest { id: id.clone() })?));
                done(format!("deleted role {id}"));
            }
        },
        IamCommand::Binding { command } => match command {
            BindingCommand::Ls { scope } => {
                let bindings = call!(admin.list_bindings(t!(pb::ListBindingsRequest { scope })?)).bindings;
                print(output, &rows(&bindings)?, &["id", "scope", "principal", "role", "effect"]);
            }
            BindingCommand::Create { scope, principal, role, deny, source_cidrs } => {
                let condition =
                    (!source_cidrs.is_empty()).then(|| pb::Condition { source_cidrs, ..Default::default() });
                let effect = if deny { "deny" } else { "allow" }.to_string();
                let binding = call!(admin.create_binding(t!(pb::CreateBindingRequest {
                    scope,
                    principal,
                    role,
                    effect,
                    condition
                })?));
                print(output, &rows(&[binding])?, &["id", "scope", "principal", "role", "effect"]);
            }
            BindingCommand::Rm { scope, id } => {
                call!(admin.delete_binding(t!(pb::DeleteBindingRequest { scope, id: id.clone() })?));
                done(format!("deleted binding {id}"));
            }
        },
        IamCommand::ServiceAccount { command } => match command {
            ServiceAccountCommand::Ls { org, project } => {
                let accounts = call!(admin.list_service_accounts(t!(pb::ListServiceAccountsRequest { org, project })?))
                    .service_accounts;
                print(output, &rows(&accounts)?, &["org", "project", "name", "disabled"]);
            }
            ServiceAccountCommand::Create { org, project, name } => {
                let account =
                    call!(admin.create_service_account(t!(pb::CreateServiceAccountRequest { org, project, name })?));
                print(output, &rows(&[account])?, &["org", "project", "name", "disabled"]);
            }
            ServiceAccountCommand::Rm { org, project, name } => {
                call!(admin.delete_service_account(t!(pb::DeleteServiceAccountRequest {
                    org,
                    project,
                    name: name.clone()
                })?));
                done(format!("deleted service account {name}"));
            }
        },
        IamCommand::AccessKey { command } => match command {
            AccessKeyCommand::Ls { principal } => {
                let keys = call!(admin.list_access_keys(t!(pb::ListAccessKeysRequest { principal })?)).keys;
                print(output, &rows(&keys)?, &["key_id", "principal", "disabled", "created_at"]);
            }
            AccessKeyCommand::Create { principal } => {
                let created = call!(admin.create_access_key(t!(pb::CreateAccessKeyRequest { principal })?));
                let key = created.key.unwrap_or_default();
                let row =
                    serde_json::json!({ "key_id": key.key_id, "principal": key.principal, "secret": created.secret });
                print(output, &[row], &["key_id", "principal", "secret"]);
                if output == OutputFormat::Table {
                    eprintln!("the secret is shown only now; keep it (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for S3 tools)");
                }
            }
            AccessKeyCommand::Rm { key_id } => {
                call!(admin.delete_access_key(t!(pb::DeleteAccessKeyRequest { key_id: key_id.clone() })?));
                done(format!("deleted access key {key_id}"));
            }
        },
        IamCommand::Audit { scope, limit } => {
            let entries =
                call!(admin.query_audit(t!(pb::QueryAuditRequest { scope, since_ms: 0, until_ms: 0, limit })?)).entries;
            print(output, &rows(&entries)?, &["at_ms", "principal", "action", "resource", "outcome", "detail"]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    #[test]
    fn the_login_org_is_read_from_the_token() {
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let claims = serde_json::json!({
            "iss": "iam", "sub": "user:alice", "aud": "photoncloud", "iat": 1, "exp": 2, "jti": "j",
            "typ": "access", "org": "acme",
        });
        let token = format!("{}.{}.signature", encode(r#"{"alg":"EdDSA"}"#), encode(&claims.to_string()));
        let read = super::claims(&token).unwrap();
        assert_eq!((read.sub.as_str(), read.org.as_str()), ("user:alice", "acme"));
        assert!(super::claims("not-a-token").is_err());
    }
}

//! First boot: the first system administrator, and the accounts of platform services. Runs at
//! every start and changes nothing once done: user `admin` (a system user) bound to the
//! built-in `admin` role at system scope, with the password from `--admin-password-file`, or a
//! generated one written once to `<data_dir>/initial-admin-password` (mode 0600); and for each
//! service in `bootstrap.services`, an account whose credentials go to
//! `<data_dir>/services/<name>.json`.

use std::path::{Path, PathBuf};

use flaredb_client::records::RecordError;

use crate::addr::Addr;
use crate::error::IamError;
use crate::model::{Binding, Effect, User, SYSTEM};
use crate::state::Iam;
use crate::tokens::now;

pub const ADMIN: &str = "admin";
/// The binding that makes `admin` a system administrator.
const ADMIN_BINDING: &str = "bootstrap-admin";

/// Creates the first administrator if there is none; answers where its password is when it
/// was generated now.
pub async fn run(iam: &Iam, password_file: Option<&Path>, data_dir: &Path) -> Result<Option<PathBuf>, IamError> {
    if iam.db.get::<User>(&format!("user/{ADMIN}")).await?.is_some() {
        tracing::info!("bootstrap: the first administrator exists; nothing to do");
        return Ok(None);
    }
    let (password, generated) = match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| IamError::Internal(format!("bootstrap.password_file {}: {e}", path.display())))?;
            (text.trim().to_string(), None)
        }
        None => {
            let password = crate::secrets::hex(&iam.server_key.random(12)?);
            (password, Some(data_dir.join("initial-admin-password")))
        }
    };
    crate::password::validate(&password)?;
    let user = User {
        name: ADMIN.into(),
        org: String::new(),
        display_name: "First administrator".into(),
        password_hash: crate::password::hash(&password)?,
        disabled: false,
        created_at: now(),
    };
    let binding = Binding {
        id: ADMIN_BINDING.into(),
        scope: SYSTEM.into(),
        principal: format!("user:{ADMIN}"),
        role: "admin".into(),
        effect: Effect::Allow,
        condition: None,
        created_at: now(),
    };
    // The binding first: a crash between the two leaves a binding to no one, which the next
    // start completes; never an administrator without rights.
    let binding_key = Addr::binding(SYSTEM, ADMIN_BINDING)?.key;
    match iam.db.create(&binding_key, &binding, || "the bootstrap binding".into()).await {
        Ok(()) | Err(RecordError::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match iam.db.create(&format!("user/{ADMIN}"), &user, || format!("user {ADMIN}")).await {
        Ok(()) => {}
        // Another replica bootstrapped at the same moment: its password stands.
        Err(RecordError::AlreadyExists(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    if let Some(path) = &generated {
        crate::secrets::write_private(path, &format!("{password}\n"))
            .map_err(|e| IamError::Internal(format!("cannot write {}: {e}", path.display())))?;
    }
    iam.audit("system:bootstrap", "iam:users:create", &format!("users/{ADMIN}"), "ok", "first administrator").await;
    iam.reload_policies().await?;
    match &generated {
        Some(path) => tracing::warn!(
            password_file = %path.display(),
            "bootstrap: created the first administrator 'admin'; its password is in this file (readable by root only)"
        ),
        None => tracing::info!("bootstrap: created the first administrator 'admin' with the configured password"),
    }
    Ok(generated)
}

/// The org and project platform services' accounts live in.
const PLATFORM_ORG: &str = "platform";
const PLATFORM_PROJECT: &str = "services";
/// What a platform service may do: resolve S3 access keys and ask about other principals.
const SERVICE_ROLE: &str = "platform-service";

/// What a platform service does in the platform project beyond the common role, as a role of
/// its own bound there: PrismNET keeps its VPCs' names in FlashDNS zones the platform owns
/// (docs/ARCHITECTURE.md, "Names of ports"); PlasmaVMC keeps imported images in a LightningStor
/// bucket of the platform's. Nothing here reaches into tenants' projects.
fn own_project_permissions(service: &str) -> &'static [&'static str] {
    match service {
        "prismnet" => &["flashdns:zones:*", "flashdns:records:*"],
        "plasmavmc" => &["lightningstor:buckets:create", "lightningstor:buckets:get", "lightningstor:objects:*"],
        _ => &[],
    }
}

/// What a platform service does in tenants' projects, on their behalf, bound at the system
/// scope: PlasmaVMC plugs VMs' NICs in as PrismNET ports in the VM's own project (it makes,
/// binds and deletes them, and reads the subnet they join) and attaches the project's
/// LightningStor volumes to them. Nothing else reaches that far.
fn tenant_permissions(service: &str) -> &'static [&'static str] {
    match service {
        "plasmavmc" => &[
            "prismnet:ports:*",
            "prismnet:subnets:get",
            "prismnet:vpcs:get",
            "lightningstor:attachments:*",
            "lightningstor:volumes:get",
        ],
        _ => &[],
    }
}

/// Provisions platform service `name` (see `[bootstrap] services`): its account, the system
/// role and binding it needs (and its own role in the platform project, if it has one), and,
/// when `<data_dir>/services/<name>.json` does not exist yet, a new access key written there.
/// Running it again changes nothing.
pub async fn service_account(iam: &Iam, name: &str, data_dir: &Path) -> Result<(), IamError> {
    use crate::model::{AccessKey, Org, Project, Role, ServiceAccount};
    let file = data_dir.join("services").join(format!("{name}.json"));
    let account = Addr::service_account(PLATFORM_ORG, PLATFORM_PROJECT, name)?;
    let principal = format!("sa:{PLATFORM_ORG}/{PLATFORM_PROJECT}/{name}");
    let org = Org { name: PLATFORM_ORG.into(), display_name: "PhotonCloud platform".into(), created_at: now() };
    let project = Project {
        org: PLATFORM_ORG.into(),
        name: PLATFORM_PROJECT.into(),
        display_name: "Platform services".into(),
        created_at: now(),
    };
    let role = Role {
        scope: SYSTEM.into(),
        name: SERVICE_ROLE.into(),
        description: "Platform services: resolve access keys, authorize other principals".into(),
        permissions: vec!["iam:access-keys:resolve".into(), "iam:principals:authorize".into()],
        created_at: now(),
    };
    let sa = ServiceAccount {
        org: PLATFORM_ORG.into(),
        project: PLATFORM_PROJECT.into(),
        name: name.into(),
        disabled: false,
        created_at: now(),
    };
    let binding = Binding {
        id: format!("bootstrap-{name}"),
        scope: SYSTEM.into(),
        principal: principal.clone(),
        role: role.id(),
        effect: Effect::Allow,
        condition: None,
        created_at: now(),
    };
    let json = |value: serde_json::Result<serde_json::Value>| value.unwrap_or_default();
    // Each step tolerates an earlier run (or another replica) having done it.
    let mut steps: Vec<(String, serde_json::Value, String)> = vec![
        (Addr::org(PLATFORM_ORG)?.key, json(serde_json::to_value(&org)), "org".into()),
        (Addr::project(PLATFORM_ORG, PLATFORM_PROJECT)?.key, json(serde_json::to_value(&project)), "project".into()),
        (Addr::role_at(SYSTEM, SERVICE_ROLE)?.key, json(serde_json::to_value(&role)), "role".into()),
        (account.key.clone(), json(serde_json::to_value(&sa)), "service account".into()),
        (Addr::binding(SYSTEM, &binding.id)?.key, json(serde_json::to_value(&binding)), "binding".into()),
    ];
    // Its own project's role, bound there; its role in tenants' projects, bound at the system
    // scope (each only if the service has one).
    let extra = [
        (own_project_permissions(name), Addr::project(PLATFORM_ORG, PLATFORM_PROJECT)?.path, "", "the platform's own project"),
        (tenant_permissions(name), SYSTEM.to_string(), "-tenants", "tenants' projects on their behalf"),
    ];
    for (permissions, scope, suffix, where_) in extra {
        if permissions.is_empty() {
            continue;
        }
        let role = Role {
            scope: SYSTEM.into(),
            name: format!("platform-{name}{suffix}"),
            description: format!("What platform service {name} does in {where_}"),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            created_at: now(),
        };
        let own = if suffix.is_empty() { "-own" } else { suffix };
        let binding = Binding {
            id: format!("bootstrap-{name}{own}"),
            scope: scope.clone(),
            principal: principal.clone(),
            role: role.id(),
            effect: Effect::Allow,
            condition: None,
            created_at: now(),
        };
        steps.push((Addr::role_at(SYSTEM, &role.name)?.key, json(serde_json::to_value(&role)), format!("role {}", role.name)));
        steps.push((Addr::binding(&scope, &binding.id)?.key, json(serde_json::to_value(&binding)), format!("binding {}", binding.id)));
    }
    for (key, value, what) in steps {
        match iam.db.create(&key, &value, || what.clone()).await {
            Ok(()) | Err(RecordError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    iam.reload_policies().await?;
    if file.exists() {
        return Ok(());
    }
    let key_id = format!("PK{}", crate::secrets::hex(&iam.server_key.random(9)?).to_uppercase());
    let secret =
        base64::engine::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, iam.server_key.random(30)?);
    let key = AccessKey {
        key_id: key_id.clone(),
        principal: principal.clone(),
        sealed_secret: iam.server_key.seal(secret.as_bytes())?,
        disabled: false,
        created_at: now(),
    };
    iam.db.create(&Addr::access_key(&account.path, &key_id)?.key, &key, || format!("access key {key_id}")).await?;
    let credentials = serde_json::json!({ "principal": principal, "key_id": key_id, "secret": secret });
    crate::secrets::write_private(&file, &credentials.to_string())
        .map_err(|e| IamError::Internal(format!("cannot write {}: {e}", file.display())))?;
    iam.audit("system:bootstrap", "iam:access-keys:create", &account.path, "ok", &format!("platform service {name}"))
        .await;
    tracing::info!(service = name, credentials = %file.display(), "bootstrap: provisioned a platform service's account");
    Ok(())
}

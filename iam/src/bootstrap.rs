//! First boot: the first system administrator. Runs at every start and changes nothing once an
//! administrator exists: user `admin` (a system user) bound to the built-in `admin` role at
//! system scope, with the password from `bootstrap.password_file`, or a generated one written
//! once to `<data_dir>/initial-admin-password` (mode 0600).

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

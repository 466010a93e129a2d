//! Every resource's metadata, after Kubernetes' `ObjectMeta`: who owns it, when it was made,
//! how often its spec changed (`generation`), and the version a change must name to succeed
//! (`resource_version`, chainfire's revision of its key; read back, never stored).

use serde::{Deserialize, Serialize};

/// The org/project a resource belongs to: its place in IAM's resource tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub org: String,
    pub project: String,
}

impl Owner {
    pub fn new(org: impl Into<String>, project: impl Into<String>) -> Self {
        Self { org: org.into(), project: project.into() }
    }

    /// IAM's path of the project (`orgs/<org>/projects/<project>`).
    pub fn path(&self) -> String {
        format!("orgs/{}/projects/{}", self.org, self.project)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub org: String,
    pub project: String,
    /// Unique for the resource's whole life: a deleted and re-created name gets a new one.
    pub uid: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Bumped on every change of the spec.
    pub generation: u64,
    /// Chainfire's revision of the stored resource; a change must name it (optimistic
    /// concurrency). Filled in on reading.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resource_version: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Metadata {
    /// Metadata of a resource being created now.
    pub fn new(name: impl Into<String>, owner: &Owner) -> Self {
        let now = now_ms();
        Self {
            name: name.into(),
            org: owner.org.clone(),
            project: owner.project.clone(),
            uid: uid(),
            created_ms: now,
            updated_ms: now,
            generation: 1,
            resource_version: 0,
        }
    }

    pub fn owner(&self) -> Owner {
        Owner::new(self.org.clone(), self.project.clone())
    }

    /// Records a change of the spec.
    pub fn touch(&mut self) {
        self.generation += 1;
        self.updated_ms = now_ms();
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A random 128-bit id in hex (from the kernel's generator, through std's hasher seeds would
/// not be random enough across processes).
fn uid() -> String {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).is_err() {
        // Fall back to time and a counter: unique within this process, which is what matters.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&now_ms().to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! PlasmaVMC's own failures (the API's are photon-resource's `ResourceError`): what the node
//! agent could not do — talk to QEMU, start it, fetch or check an image, build a disk — named
//! by what it was doing. A reconcile that fails is retried with a backoff, and the VM's status
//! says why.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum PlasmavmcError {
    /// QEMU's machine protocol: no answer, or an error QEMU gave.
    #[error("{what}: {message}")]
    Qmp { what: String, message: String },
    /// QEMU (or qemu-img) refused to start or failed; `message` is what it printed.
    #[error("{what}: {message}")]
    Qemu { what: String, message: String },
    /// An image could not be fetched or does not match its checksum.
    #[error("image {what}: {message}")]
    Image { what: String, message: String },
    /// A NIC's port could not be made or plugged in (PrismNET's answer, or no account).
    #[error("network: {0}")]
    Network(String),
    /// A volume could not be attached (LightningStor's answer, or no account).
    #[error("storage: {0}")]
    Storage(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error(transparent)]
    Store(#[from] photon_resource::ResourceError),
}

impl PlasmavmcError {
    pub fn qmp(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Qmp { what: what.into(), message: message.into() }
    }

    pub fn qemu(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Qemu { what: what.into(), message: message.into() }
    }

    pub fn image(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Image { what: what.into(), message: message.into() }
    }

    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, PlasmavmcError>;

//! PrismNET's resources, each a spec and its `Kind` (photon-resource's tenant resource shape):
//! a VPC holds its subnets (each with its ports), its security groups (each with its rules)
//! and its routers; floating IPs and service IPs stand alone, claimed across every project.
//! Deleting a resource deletes what it holds. IPv4 only for now (docs/ARCHITECTURE.md).

#[cfg(test)]
pub(crate) mod fixture;
pub mod floating_ip;
pub mod port;
pub mod router;
pub mod security_group;
pub mod service_ip;
pub mod subnet;
pub mod vpc;

use photon_resource::{FieldError, Kind, Layout};

pub use floating_ip::FloatingIp;
pub use port::Port;
pub use router::Router;
pub use security_group::{SecurityGroup, SecurityGroupRule};
pub use service_ip::ServiceIp;
pub use subnet::Subnet;
pub use vpc::Vpc;

/// Where PrismNET's resources live in chainfire.
pub const ROOT: &str = "/photoncloud/prismnet";

pub fn layout() -> Layout {
    Layout::new(
        ROOT,
        &[
            Vpc::PATH,
            Subnet::PATH,
            Port::PATH,
            SecurityGroup::PATH,
            SecurityGroupRule::PATH,
            Router::PATH,
            FloatingIp::PATH,
            ServiceIp::PATH,
        ],
    )
}

/// A field that cannot change after create: kept when the update leaves it out, refused when
/// it names another value.
pub(crate) fn immutable<T: PartialEq + Clone + std::fmt::Debug>(
    field: &str,
    new: &mut Option<T>,
    current: &Option<T>,
) -> Result<(), FieldError> {
    match (new.as_ref(), current) {
        (None, _) => {
            *new = current.clone();
            Ok(())
        }
        (Some(n), Some(c)) if n != c => Err(FieldError::new(field, format!("cannot change ({c:?} to {n:?}); create a new one instead"))),
        _ => Ok(()),
    }
}

/// A description: free text up to 255 bytes.
pub(crate) fn check_description(description: &str) -> Result<(), FieldError> {
    if description.len() > 255 {
        return Err(FieldError::new("spec.description", "at most 255 bytes"));
    }
    Ok(())
}

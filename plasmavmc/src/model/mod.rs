//! PlasmaVMC's resources, each a spec and its `Kind` (photon-resource's tenant resource shape):
//! flavours (a VM's size), images (what it boots, read from LightningStor objects) and VMs,
//! whose status (`status`) the scheduler and the node agents write.

pub mod flavor;
pub mod image;
pub mod status;
pub mod vm;

use photon_resource::{FieldError, Layout, Mirror, Resource};
use serde::de::DeserializeOwned;

pub use flavor::Flavor;
pub use image::Image;
pub use status::{State, VmStatus};
pub use vm::Vm;

/// Where PlasmaVMC's resources live in chainfire.
pub const ROOT: &str = "/photoncloud/plasmavmc";

pub fn layout() -> Layout {
    Layout::new(ROOT, &[Flavor::PATH, Image::PATH, Vm::PATH])
}

use photon_resource::Kind;

/// The value at `key` in a followed copy, decoded (`None` if absent or not a `T`).
pub fn followed<T: DeserializeOwned>(copy: &Mirror, key: &str) -> Option<T> {
    copy.items().get(key).and_then(|value| serde_json::from_slice(value).ok())
}

/// Every VM in a followed copy of PlasmaVMC's keys, with its key.
pub fn followed_vms(copy: &Mirror) -> impl Iterator<Item = (&String, Resource<vm::VmSpec>)> + '_ {
    followed_kind::<Vm>(copy)
}

/// Every image in a followed copy, with its key.
pub fn followed_images(copy: &Mirror) -> impl Iterator<Item = (&String, Resource<image::ImageSpec>)> + '_ {
    followed_kind::<Image>(copy)
}

fn followed_kind<K: Kind>(copy: &Mirror) -> impl Iterator<Item = (&String, Resource<K::Spec>)> + '_ {
    let plural = format!("/{}/", K::PATH[0]);
    let resources = format!("{ROOT}/r/");
    copy.items()
        .iter()
        .filter(move |(key, _)| key.starts_with(&resources) && key.contains(&plural))
        .filter_map(|(key, value)| Some((key, serde_json::from_slice(value).ok()?)))
}

/// A description: free text up to 255 bytes.
pub(crate) fn check_description(description: &str) -> Result<(), FieldError> {
    if description.len() > 255 {
        return Err(FieldError::new("spec.description", "at most 255 bytes"));
    }
    Ok(())
}

/// A field that cannot change after create.
pub(crate) fn fixed<T: PartialEq + std::fmt::Debug>(field: &str, new: &T, current: &T) -> Result<(), FieldError> {
    if new != current {
        return Err(FieldError::new(
            field,
            format!("cannot change ({current:?} to {new:?}); create a new one instead"),
        ));
    }
    Ok(())
}

//! An image: what a VM boots — a disk (raw or qcow2), and for direct kernel boot a kernel, an
//! initramfs and a command line (as OpenStack's kernel and ramdisk images). Each part is
//! registered from a URL: a LightningStor object's presigned URL (the tenant's own signature is
//! what grants the read, so no image can name another tenant's object) or any web address, and
//! imported once into the platform bucket (`status.parts`), where nodes read it whatever became
//! of the URL. No node boots bytes that differ from the part's `sha256`.

use photon_resource::{check_name, FieldError, Kind, Owner};
use serde::{Deserialize, Serialize};

use super::{check_description, fixed};

pub struct Image;

/// Where one part of an image comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `https://...` (trusted by the platform's CA) or `http://...`; none: the part is
    /// uploaded (`PUT .../images/{name}/parts/{part}`).
    #[serde(default)]
    pub url: Option<String>,
    /// The part's SHA-256 (hex); bytes that differ are refused.
    #[serde(default)]
    pub sha256: Option<String>,
}
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The root disk's contents (unset: a blank disk, for images that boot a kernel).
    #[serde(default)]
    pub disk: Option<Source>,
    #[serde(default)]
    pub format: DiskFormat,
    /// Direct kernel boot: the kernel QEMU loads.
    #[serde(default)]
    pub kernel: Option<Source>,
    /// Direct kernel boot: the initramfs beside the kernel.
    #[serde(default)]
    pub initrd: Option<Source>,
    /// Direct kernel boot: the kernel's command line (the serial console is `ttyS0`).
    #[serde(default)]
    pub cmdline: Option<String>,
    /// Only `x86_64` for now; VMs are placed on nodes of their image's architecture.
    #[serde(default = "x86_64")]
    pub architecture: String,
    #[serde(default)]
    pub description: String,
}

/// The project whose images every project's VMs may boot, as `public/<name>`: the platform's
/// own, where only its administrators make images.
pub const PUBLIC_ORG: &str = "platform";
pub const PUBLIC_PROJECT: &str = "public";
const PUBLIC_PREFIX: &str = "public/";

/// The project and name a VM of `owner`'s names by `reference`: `<name>` (its project's own)
/// or `public/<name>`.
pub fn locate<'a>(owner: &Owner, reference: &'a str) -> (Owner, &'a str) {
    match reference.strip_prefix(PUBLIC_PREFIX) {
        Some(name) => (Owner::new(PUBLIC_ORG, PUBLIC_PROJECT), name),
        None => (owner.clone(), reference),
    }
}

/// Checks an image reference (`<name>` or `public/<name>`) as `field`.
pub fn check_reference(field: &str, reference: &str) -> Result<(), FieldError> {
    check_name(field, reference.strip_prefix(PUBLIC_PREFIX).unwrap_or(reference))
}

impl ImageSpec {
    /// The parts the image has, by name (`disk`, `kernel`, `initrd`).
    pub fn parts(&self) -> Vec<(&'static str, &Source)> {
        [("disk", &self.disk), ("kernel", &self.kernel), ("initrd", &self.initrd)]
            .into_iter()
            .filter_map(|(name, source)| source.as_ref().map(|s| (name, s)))
            .collect()
    }
}

/// Where an image stands: its parts being copied into the platform bucket, all there
/// (VMs may boot it), or not (the reason says why; register the image again).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    #[default]
    Importing,
    Ready,
    Error,
}

/// A part as the platform bucket keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredPart {
    pub object: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ImageStatus {
    pub state: ImageState,
    /// Why it is in error, or why the last attempt to import failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Imports tried and failed (a failing source is tried a few times, then the image is in
    /// error).
    #[serde(default)]
    pub attempts: u32,
    /// When the last attempt failed (the next waits 2 s, 4 s, 8 s, ... after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_ms: Option<u64>,
    /// Parts imported so far, by name.
    #[serde(default)]
    pub parts: std::collections::BTreeMap<String, StoredPart>,
}

impl crate::model::status::Observed for ImageStatus {
    type Spec = ImageSpec;
    const KIND: &'static str = "image";
}

fn x86_64() -> String {
    "x86_64".into()
}

fn check_source(field: &str, source: &Source) -> Result<(), FieldError> {
    if let Some(url) = &source.url {
        check_url(field, url)?;
    }
    if let Some(sum) = &source.sha256 {
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FieldError::new(
                format!("{field}.sha256"),
                format!("{sum:?} is not a SHA-256 in hex (64 digits)"),
            ));
        }
    }
    Ok(())
}

fn check_url(field: &str, url: &str) -> Result<(), FieldError> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let host = url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default();
    if !scheme_ok
        || host.is_empty()
        || url.len() > 4096
        || url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(FieldError::new(format!("{field}.url"), format!("{url:?} is not an http:// or https:// URL")));
    }
    Ok(())
}

impl Kind for Image {
    type Spec = ImageSpec;
    const NAME: &'static str = "image";
    const PATH: &'static [&'static str] = &["images"];

    fn validate(spec: &ImageSpec) -> Result<(), FieldError> {
        if spec.disk.is_none() && spec.kernel.is_none() {
            return Err(FieldError::new("spec.disk", "an image needs a disk, a kernel, or both"));
        }
        for (field, source) in [("spec.disk", &spec.disk), ("spec.kernel", &spec.kernel), ("spec.initrd", &spec.initrd)]
        {
            if let Some(source) = source {
                check_source(field, source)?;
            }
        }
        if spec.kernel.is_none() && (spec.initrd.is_some() || spec.cmdline.is_some()) {
            return Err(FieldError::new("spec.kernel", "an initrd or a command line needs a kernel"));
        }
        if spec.cmdline.as_ref().is_some_and(|c| c.len() > 2048) {
            return Err(FieldError::new("spec.cmdline", "at most 2048 bytes"));
        }
        if spec.architecture != "x86_64" {
            return Err(FieldError::new(
                "spec.architecture",
                format!("{:?}: only x86_64 is supported", spec.architecture),
            ));
        }
        check_description(&spec.description)
    }

    /// An image's bytes never change under VMs that booted it: register a new image instead.
    fn update(new: &mut ImageSpec, current: &ImageSpec) -> Result<(), FieldError> {
        fixed("spec.disk", &new.disk, &current.disk)?;
        fixed("spec.format", &new.format, &current.format)?;
        fixed("spec.kernel", &new.kernel, &current.kernel)?;
        fixed("spec.initrd", &new.initrd, &current.initrd)?;
        fixed("spec.cmdline", &new.cmdline, &current.cmdline)
    }
}

//! A project's volumes and their snapshots as tenant resources (photon-resource's shape, in
//! chainfire under `/photoncloud/lightningstor`): a volume's size, copies and source; a
//! snapshot's epoch. Their data is elsewhere (the extent map in flaredb, extents on the storage
//! nodes), keyed by the volume's uid.

use photon_resource::{check_name, check_range, FieldError, Kind, Layout};
use serde::{Deserialize, Serialize};

/// Where the resources live in chainfire.
pub const ROOT: &str = "/photoncloud/lightningstor";
/// Sizes are whole 4 KiB blocks, from 1 MiB to 64 TiB.
pub const MIN_BYTES: u64 = 1 << 20;
pub const MAX_BYTES: u64 = 64 << 40;

pub fn layout() -> Layout {
    Layout::new(ROOT, &[Volume::PATH, Snapshot::PATH, Attachment::PATH])
}

pub struct Volume;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// The size in bytes, a multiple of 4096; it may grow, never shrink.
    pub size_bytes: u64,
    /// How many nodes hold each extent (1 to 3), fixed for the volume's life.
    #[serde(default = "three")]
    pub replicas: u8,
    /// What it starts as (empty when left out): a snapshot of another volume of the project, or
    /// an image in one of its buckets.
    #[serde(default)]
    pub source: Option<Source>,
    /// Where a clone reads what it has not written: its source's data (assigned from `source`).
    #[serde(default)]
    pub origin: Option<crate::volumes::map::Parent>,
    #[serde(default)]
    pub description: String,
}

fn three() -> u8 {
    3
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Source {
    /// `{"snapshot": {"volume": "db", "snapshot": "before-upgrade"}}`
    Snapshot { volume: String, snapshot: String },
    /// `{"image": {"bucket": "images", "key": "debian-12.raw"}}`: a raw disk image in one of the
    /// project's buckets, copied in before the volume can be attached.
    Image { bucket: String, key: String },
}

impl Kind for Volume {
    type Spec = VolumeSpec;
    const NAME: &'static str = "volume";
    const PATH: &'static [&'static str] = &["volumes"];
    /// Snapshots are not lost with a careless delete.
    const CASCADE: bool = false;

    fn validate(spec: &VolumeSpec) -> Result<(), FieldError> {
        check_size(spec.size_bytes)?;
        check_range("spec.replicas", spec.replicas, 1..=3)?;
        match &spec.source {
            Some(Source::Snapshot { volume, snapshot }) => {
                check_name("spec.source.snapshot.volume", volume)?;
                check_name("spec.source.snapshot.snapshot", snapshot)?;
            }
            Some(Source::Image { bucket, key }) if bucket.is_empty() || key.is_empty() || key.len() > 1024 => {
                return Err(FieldError::new("spec.source.image", "names a bucket and a key (at most 1024 bytes)"));
            }
            Some(Source::Image { .. }) | None => {}
        }
        check_description(&spec.description)
    }

    fn update(new: &mut VolumeSpec, current: &VolumeSpec) -> Result<(), FieldError> {
        if new.size_bytes < current.size_bytes {
            return Err(FieldError::new(
                "spec.size_bytes",
                format!("a volume only grows ({} is less than its {} bytes)", new.size_bytes, current.size_bytes),
            ));
        }
        if new.replicas != current.replicas {
            return Err(FieldError::new("spec.replicas", format!("cannot change ({} to {})", current.replicas, new.replicas)));
        }
        if new.source.is_none() {
            new.source = current.source.clone();
        } else if new.source != current.source {
            return Err(FieldError::new("spec.source", "cannot change: a volume is made from its source once"));
        }
        if new.origin.is_some() && new.origin != current.origin {
            return Err(FieldError::new("spec.origin", "is assigned from spec.source and cannot change"));
        }
        new.origin = current.origin.clone();
        Ok(())
    }
}

pub fn check_size(size: u64) -> Result<(), FieldError> {
    check_range("spec.size_bytes", size, MIN_BYTES..=MAX_BYTES)?;
    if !size.is_multiple_of(4096) {
        return Err(FieldError::new("spec.size_bytes", format!("{size} is not a whole number of 4096-byte blocks")));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), FieldError> {
    if description.len() > 255 {
        return Err(FieldError::new("spec.description", "at most 255 bytes"));
    }
    Ok(())
}

pub struct Snapshot;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// The volume's epoch the snapshot holds: assigned when it is taken.
    #[serde(default)]
    pub epoch: Option<u32>,
    /// The volume's size when it was taken (assigned).
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub description: String,
}

impl Kind for Snapshot {
    type Spec = SnapshotSpec;
    const NAME: &'static str = "snapshot";
    const PATH: &'static [&'static str] = &["volumes", "snapshots"];

    fn validate(spec: &SnapshotSpec) -> Result<(), FieldError> {
        check_description(&spec.description)
    }

    fn update(new: &mut SnapshotSpec, current: &SnapshotSpec) -> Result<(), FieldError> {
        for (field, n, c) in [("spec.epoch", new.epoch.map(u64::from), current.epoch.map(u64::from)), ("spec.size_bytes", new.size_bytes, current.size_bytes)] {
            if n.is_some() && n != c {
                return Err(FieldError::new(field, "is the snapshot's own and cannot change"));
            }
        }
        new.epoch = current.epoch;
        new.size_bytes = current.size_bytes;
        Ok(())
    }
}

/// Leave to one host to use a volume (or one of its snapshots) over NBD: the export name is the
/// attachment's token, a secret the server picks. Only one host at a time writes a volume: the
/// session that opens it for writing holds its writer lease, and a second is refused until the
/// first lets go or its lease expires.
pub struct Attachment;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    /// The host that attaches (a hypervisor's name; shown to whoever is refused).
    pub host: String,
    /// Read only: no writer lease taken, writes refused.
    #[serde(default)]
    pub read_only: bool,
    /// A snapshot of the volume instead of the volume itself (always read only).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// The iSCSI initiator name (`iqn.…`) that may log in to the volume's target with this
    /// attachment's CHAP credentials (user: the attachment's name, secret: its token).
    #[serde(default)]
    pub initiator: Option<String>,
    /// The NBD export name: assigned, 64 hex digits.
    #[serde(default)]
    pub token: Option<String>,
}

impl Kind for Attachment {
    type Spec = AttachmentSpec;
    const NAME: &'static str = "attachment";
    const PATH: &'static [&'static str] = &["volumes", "attachments"];

    fn validate(spec: &AttachmentSpec) -> Result<(), FieldError> {
        if spec.host.is_empty() || spec.host.len() > 253 || spec.host.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(FieldError::new("spec.host", "1 to 253 characters, no spaces"));
        }
        if let Some(snapshot) = &spec.snapshot {
            check_name("spec.snapshot", snapshot)?;
        }
        if let Some(initiator) = &spec.initiator {
            let named = initiator.starts_with("iqn.") || initiator.starts_with("eui.") || initiator.starts_with("naa.");
            if !named || initiator.len() > 223 || initiator.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(FieldError::new("spec.initiator", format!("{initiator:?} is not an iSCSI name (iqn.…, eui.… or naa.…, at most 223 characters)")));
            }
        }
        Ok(())
    }

    fn update(new: &mut AttachmentSpec, current: &AttachmentSpec) -> Result<(), FieldError> {
        if new.token.is_some() && new.token != current.token {
            return Err(FieldError::new("spec.token", "is assigned and cannot change"));
        }
        new.token = current.token.clone();
        if new.snapshot != current.snapshot {
            return Err(FieldError::new("spec.snapshot", "cannot change; make another attachment"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: u64) -> VolumeSpec {
        VolumeSpec { size_bytes: size, replicas: 3, source: None, origin: None, description: String::new() }
    }

    #[test]
    fn sizes_are_whole_blocks_within_limits_and_only_grow() {
        assert!(Volume::validate(&spec(10 << 30)).is_ok());
        for bad in [0, 4096, (10 << 30) + 512, MAX_BYTES + 4096] {
            let e = Volume::validate(&spec(bad)).unwrap_err();
            assert_eq!(e.field, "spec.size_bytes", "{bad}: {e:?}");
        }
        let mut smaller = spec(1 << 30);
        assert!(Volume::update(&mut smaller, &spec(2 << 30)).unwrap_err().message.contains("only grows"));
        let mut more = VolumeSpec { replicas: 1, ..spec(2 << 30) };
        assert_eq!(Volume::update(&mut more, &spec(1 << 30)).unwrap_err().field, "spec.replicas");
        assert!(Volume::validate(&VolumeSpec { replicas: 4, ..spec(1 << 30) }).is_err());
    }
}

//! This node's copy of image parts: each read once into the cache directory — from the platform
//! bucket where the image was imported, else from the URL the image names — hashed while it
//! streams to disk, and kept only if it matches (named by its SHA-256, or by its URL's when an
//! unimported part has none). A part is shared by every VM booting it; a VM's own disk is a
//! qcow2 overlay on it (`disks`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::digest;

use crate::bucket::Bucket;
use crate::error::{PlasmavmcError, Result};
use crate::model::image::{Source, StoredPart};
use crate::parts::{hex, redact, Fetcher};

pub struct ImageCache {
    dir: PathBuf,
    fetcher: Fetcher,
    /// Where imported parts are read (`None`: images are not imported).
    bucket: Option<Arc<Bucket>>,
    /// One fetch of a part at a time.
    fetching: tokio::sync::Mutex<()>,
    /// The group that reads parts (QEMUs running as users of their own), if any.
    group: Option<u32>,
}

/// Makes a part readable by `group` (the QEMUs') and nobody else.
fn share(part: &Path, group: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(part, std::fs::Permissions::from_mode(0o640))?;
    std::os::unix::fs::chown(part, None, Some(group))
}

impl ImageCache {
    pub fn new(dir: PathBuf, fetcher: Fetcher, bucket: Option<Arc<Bucket>>, group: Option<u32>) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&dir)?;
        if let Some(group) = group {
            // Parts fetched while QEMU ran as the agent become the QEMUs' group's too.
            for entry in std::fs::read_dir(&dir)?.filter_map(|e| e.ok()) {
                share(&entry.path(), group)?;
            }
        }
        Ok(Arc::new(Self { dir, fetcher, bucket, fetching: tokio::sync::Mutex::new(()), group }))
    }

    /// The local file of a part registered as `source` (and imported as `stored`, if it was),
    /// read first if this node has none.
    pub async fn get(&self, source: &Source, stored: Option<&StoredPart>) -> Result<PathBuf> {
        let sum = stored.map(|s| s.sha256.as_str()).or(source.sha256.as_deref());
        let name = match (sum, &source.url) {
            (Some(sum), _) => sum.to_ascii_lowercase(),
            (None, Some(url)) => format!("url-{}", hex(digest::digest(&digest::SHA256, url.as_bytes()).as_ref())),
            (None, None) => return Err(PlasmavmcError::image("part", "it was never uploaded")),
        };
        let path = self.dir.join(name);
        if path.exists() {
            return Ok(path);
        }
        let _one = self.fetching.lock().await;
        if path.exists() {
            return Ok(path);
        }
        let started = std::time::Instant::now();
        let partial = path.with_extension("partial");
        let (whence, outcome) = match (stored, &self.bucket, &source.url) {
            (Some(stored), Some(bucket), _) => (stored.object.clone(), bucket.get(&stored.object, &partial).await),
            (_, _, Some(url)) => (redact(url), self.fetcher.fetch(url, &partial).await),
            (_, _, None) => return Err(PlasmavmcError::image("part", "it was uploaded, but this node cannot read the platform bucket")),
        };
        let (size, got) = match outcome {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        if let Some(expected) = sum.filter(|s| !s.eq_ignore_ascii_case(&got)) {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(PlasmavmcError::image(whence, format!("its SHA-256 is {got}, the image says {expected}")));
        }
        if let Some(group) = self.group {
            share(&partial, group).map_err(|e| PlasmavmcError::io(format!("sharing {} with QEMU", partial.display()), e))?;
        }
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| PlasmavmcError::io(format!("keeping {}", path.display()), e))?;
        tracing::info!(from = %whence, bytes = size, sha256 = %got, ms = started.elapsed().as_millis() as u64, "fetched an image part");
        Ok(path)
    }
}

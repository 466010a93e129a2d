//! Images imported into the platform bucket: run by the scheduler (on whichever node holds its
//! claim), it copies each part of a newly registered image from the URL the image names into
//! the bucket, hashed on the way (a part whose bytes differ from its `sha256` fails the image),
//! and records each part in the image's status; the image is `ready` once all are there, and
//! VMs of it are placed only then. A source that fails is tried again a few times, then the
//! image is in `error`, saying why. Objects of images deleted since are swept from the bucket.
//! Without a bucket (`[images] import = false`), images are ready at once and nodes fetch
//! from the URLs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use photon_reconcile::Requeue;
use photon_resource::{FieldError, Kind, Resource, ResourceError, Store};

use crate::bucket::Bucket;
use crate::error::{PlasmavmcError, Result};
use crate::model::image::{ImageSpec, ImageState, ImageStatus, StoredPart};
use crate::model::status::{self, Observed};
use crate::model::{Image, ROOT};
use crate::parts::{redact, Fetcher, Saved};

/// The largest part an upload may bring.
pub const MAX_UPLOAD: u64 = 64 << 30;

/// Imports tried before an image is in error.
const ATTEMPTS: u32 = 5;
/// The wait after the first failed import (doubled after each next one).
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The bucket is swept of deleted images' objects at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

pub struct Importer {
    store: Store,
    /// `None`: images are not imported.
    bucket: Option<Arc<Bucket>>,
    fetcher: Fetcher,
    /// Where parts wait between their source and the bucket.
    work_dir: PathBuf,
    /// Imports under way, by image key.
    running: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    /// When the bucket was last swept.
    swept: Mutex<Option<Instant>>,
    /// Uploads under way on this node, by `<image key>/<part>`.
    uploading: Arc<Mutex<BTreeSet<String>>>,
    me: Weak<Importer>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// How an import failed: worth another try, or not.
enum Failure {
    Again(PlasmavmcError),
    Final(String),
}

impl From<PlasmavmcError> for Failure {
    fn from(e: PlasmavmcError) -> Self {
        Self::Again(e)
    }
}

impl Importer {
    pub fn new(store: Store, bucket: Option<Arc<Bucket>>, fetcher: Fetcher, work_dir: PathBuf) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            store,
            bucket,
            fetcher,
            work_dir,
            running: Mutex::new(BTreeMap::new()),
            swept: Mutex::new(None),
            uploading: Arc::default(),
            me: me.clone(),
        })
    }

    /// One look at the image at `key`: an import started (or still running) until it is ready
    /// or in error.
    pub async fn reconcile(&self, key: &str, image: &Resource<ImageSpec>) -> Result<Requeue> {
        let status = ImageStatus::of(image);
        if status.state != ImageState::Importing {
            return Ok(Requeue::Done);
        }
        let Some(bucket) = &self.bucket else {
            let uploaded = image.spec.parts().into_iter().find(|(_, source)| source.url.is_none()).map(|(name, _)| name);
            self.write(key, &image.metadata.uid, |s| match uploaded {
                Some(part) => {
                    s.state = ImageState::Error;
                    s.reason = Some(format!("its {part} is to be uploaded, but images are not imported here ([images] import = false)"));
                }
                None => s.state = ImageState::Ready,
            })
            .await?;
            return Ok(Requeue::Done);
        };
        let missing: Vec<&str> = image.spec.parts().into_iter().filter(|(name, _)| !status.parts.contains_key(*name)).map(|(n, _)| n).collect();
        let awaited: Vec<&str> =
            image.spec.parts().into_iter().filter(|(name, s)| s.url.is_none() && missing.contains(name)).map(|(n, _)| n).collect();
        if !missing.is_empty() && missing == awaited {
            // Nothing to fetch: the rest comes by upload, which finishes the image.
            let reason = format!("waiting for the upload of its {}", awaited.join(", "));
            self.write(key, &image.metadata.uid, |s| s.reason = Some(reason.clone())).await?;
            return Ok(Requeue::Done);
        }
        if let Some(failed) = status.failed_ms {
            // Backed off by how often it failed, so a source (or LightningStor) that is down
            // for a while is not tried 5 times in a second.
            let wait = RETRY_FIRST.saturating_mul(1 << status.attempts.saturating_sub(1).min(8));
            let since = Duration::from_millis(photon_resource::meta::now_ms().saturating_sub(failed));
            if since < wait {
                return Ok(Requeue::After(wait - since));
            }
        }
        let mut running = locked(&self.running);
        if running.get(key).is_some_and(|task| !task.is_finished()) {
            return Ok(Requeue::After(Duration::from_millis(500)));
        }
        let Some(me) = self.me.upgrade() else { return Ok(Requeue::Done) };
        let (key, image, bucket) = (key.to_string(), image.clone(), bucket.clone());
        let task_key = key.clone();
        running.insert(
            task_key,
            tokio::spawn(async move {
                let outcome = me.import(&key, &image, &bucket).await;
                if let Err(e) = me.settle(&key, &image, outcome).await {
                    tracing::warn!(image = %key, error = %e, "cannot record how an import went (tried again)");
                }
            }),
        );
        Ok(Requeue::After(Duration::from_millis(500)))
    }

    /// Copies each part not yet in the bucket there, recording it.
    async fn import(&self, key: &str, image: &Resource<ImageSpec>, bucket: &Bucket) -> std::result::Result<(), Failure> {
        let uid = &image.metadata.uid;
        std::fs::create_dir_all(&self.work_dir)
            .map_err(|e| PlasmavmcError::io(format!("creating {}", self.work_dir.display()), e))?;
        for (name, source) in image.spec.parts() {
            let Some(url) = &source.url else { continue };
            if ImageStatus::of(image).parts.contains_key(name) {
                continue;
            }
            let started = Instant::now();
            let file = self.work_dir.join(format!("{uid}-{name}"));
            let fetched = self.fetcher.fetch(url, &file).await;
            let stored = match fetched {
                Ok(got) => keep(bucket, uid, name, &file, got, source.sha256.as_deref()).await,
                Err(e) => Err(Kept::Failed(e)),
            };
            let _ = std::fs::remove_file(&file);
            let stored = stored.map_err(|e| match e {
                Kept::Differs(why) => Failure::Final(format!("its {name}'s {why}")),
                Kept::Failed(e) => Failure::Again(e),
            })?;
            tracing::info!(image = %key, part = name, url = %redact(url), bytes = stored.bytes, sha256 = %stored.sha256, ms = started.elapsed().as_millis() as u64, "imported an image part");
            self.record(key, image, name, stored).await?;
        }
        Ok(())
    }

    /// Records `stored` as `part` of `image` (a part is never replaced); the image is ready once
    /// every part it declares is there.
    async fn record(&self, key: &str, image: &Resource<ImageSpec>, part: &str, stored: StoredPart) -> Result<()> {
        let declared: Vec<&str> = image.spec.parts().into_iter().map(|(name, _)| name).collect();
        let part = part.to_string();
        self.write(key, &image.metadata.uid, move |s| {
            s.parts.entry(part.clone()).or_insert_with(|| stored.clone());
            ready_if_complete(s, &declared);
        })
        .await
    }

    /// Records how an import ended: ready, tried again later, or in error.
    async fn settle(&self, key: &str, image: &Resource<ImageSpec>, outcome: std::result::Result<(), Failure>) -> Result<()> {
        let uid = &image.metadata.uid;
        match outcome {
            Ok(()) => {
                let declared: Vec<&str> = image.spec.parts().into_iter().map(|(name, _)| name).collect();
                self.write(key, uid, |s| ready_if_complete(s, &declared)).await?;
                tracing::info!(image = %key, "image imported");
                Ok(())
            }
            Err(failure) => {
                let (reason, last) = match failure {
                    Failure::Final(reason) => (reason, true),
                    Failure::Again(e) => (e.to_string(), false),
                };
                tracing::warn!(image = %key, %reason, "an image import failed");
                let now = photon_resource::meta::now_ms();
                self.write(key, uid, move |s| {
                    s.attempts += 1;
                    s.failed_ms = Some(now);
                    s.reason = Some(reason.clone());
                    if last || s.attempts >= ATTEMPTS {
                        s.state = ImageState::Error;
                    }
                })
                .await
            }
        }
    }

    /// Whether part `part` of `image` may be uploaded now (where to, and as what), or why not.
    pub fn may_upload<'a>(&'a self, image: &'a Resource<ImageSpec>, part: &str) -> std::result::Result<(&'a Bucket, &'a crate::model::image::Source), ResourceError> {
        let name = &image.metadata.name;
        let Some(bucket) = &self.bucket else {
            return Err(ResourceError::Precondition("images are not imported here ([images] import = false): nothing can be uploaded".into()));
        };
        let parts = image.spec.parts();
        let Some((part, source)) = parts.into_iter().find(|(p, _)| *p == part) else {
            let declared: Vec<&str> = image.spec.parts().iter().map(|(p, _)| *p).collect();
            return Err(FieldError::new("part", format!("image {name} has no part {part:?} (it has {})", declared.join(", "))).into());
        };
        if source.url.is_some() {
            return Err(ResourceError::Precondition(format!("image {name}'s {part} is imported from its URL, not uploaded")));
        }
        if ImageStatus::of(image).parts.contains_key(part) {
            return Err(ResourceError::Precondition(format!("image {name}'s {part} was uploaded already (an image never changes)")));
        }
        Ok((bucket, source))
    }

    /// Stores `body` as part `part` of the image at `key`, which is to be uploaded; the image
    /// is ready once every part is there.
    pub async fn upload<E: std::fmt::Display>(
        &self,
        key: &str,
        image: &Resource<ImageSpec>,
        part: &str,
        body: impl futures_util::Stream<Item = std::result::Result<hyper::body::Bytes, E>> + Unpin,
    ) -> std::result::Result<StoredPart, ResourceError> {
        let (bucket, source) = self.may_upload(image, part)?;
        let _only = Uploading::start(&self.uploading, format!("{key}/{part}"))
            .ok_or_else(|| ResourceError::Precondition(format!("an upload of image {}'s {part} is under way", image.metadata.name)))?;
        let backend = |e: PlasmavmcError| ResourceError::Backend(e.to_string());
        std::fs::create_dir_all(&self.work_dir)
            .map_err(|e| backend(PlasmavmcError::io(format!("creating {}", self.work_dir.display()), e)))?;
        let uid = &image.metadata.uid;
        let file = self.work_dir.join(format!("{uid}-{part}.upload"));
        let stored = match crate::parts::save(body, &file, MAX_UPLOAD).await {
            Ok(got) => keep(bucket, uid, part, &file, got, source.sha256.as_deref()).await.map_err(|e| match e {
                Kept::Differs(why) => FieldError::new("body", why).into(),
                Kept::Failed(e) => backend(e),
            }),
            Err(Saved::Read(message)) => Err(FieldError::new("body", format!("the upload broke off: {message}")).into()),
            Err(Saved::Write(e)) => Err(backend(e)),
        };
        let _ = std::fs::remove_file(&file);
        let stored = stored?;
        self.record(key, image, part, stored.clone()).await.map_err(backend)?;
        tracing::info!(image = %key, %part, bytes = stored.bytes, sha256 = %stored.sha256, "an image part was uploaded");
        Ok(stored)
    }

    /// Changes the status of the image at `key` (unless it was replaced meanwhile).
    async fn write(&self, key: &str, uid: &str, update: impl Fn(&mut ImageStatus) + Send + Sync) -> Result<()> {
        let mut change = |current: &Resource<ImageSpec>, s: &ImageStatus| {
            if current.metadata.uid != uid {
                return None;
            }
            let mut next = s.clone();
            update(&mut next);
            (next != *s).then_some(next)
        };
        match status::write(&self.store, key, &mut change, &status::unguarded).await {
            Ok(_) | Err(photon_resource::ResourceError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes objects of images that no longer exist, at most every `SWEEP_EVERY`. Which do is
    /// read from the store itself (not a followed copy, which may not be loaded yet), after the
    /// listing, so an image imported meanwhile is among them.
    pub async fn sweep(&self) -> Result<()> {
        let Some(bucket) = &self.bucket else { return Ok(()) };
        {
            let mut swept = locked(&self.swept);
            if swept.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
                return Ok(());
            }
            *swept = Some(Instant::now());
        }
        let objects = bucket.list().await?;
        let images: BTreeSet<String> = self
            .store
            .list_all::<serde_json::Value>(&format!("{ROOT}/r/"))
            .await?
            .into_iter()
            .filter(|found| found.key.contains(&format!("/{}/", Image::PATH[0])))
            .filter_map(|found| found.value["metadata"]["uid"].as_str().map(String::from))
            .collect();
        for object in objects {
            let uid = object.split('/').next().unwrap_or_default();
            if !images.contains(uid) {
                bucket.delete(&object).await?;
                tracing::info!(bucket = %bucket.name(), %object, "deleted a deleted image's part");
            }
        }
        Ok(())
    }
}

/// Why a part read into `file` was not kept.
enum Kept {
    /// Its bytes are not what the image declares (the reason says how).
    Differs(String),
    Failed(PlasmavmcError),
}

/// Stores the part read into `file` (`got`: its bytes and SHA-256) as image `uid`'s `part`,
/// unless it differs from the `expected` SHA-256.
async fn keep(bucket: &Bucket, uid: &str, part: &str, file: &std::path::Path, got: (u64, String), expected: Option<&str>) -> std::result::Result<StoredPart, Kept> {
    let (bytes, sha256) = got;
    if let Some(expected) = expected.filter(|e| !e.eq_ignore_ascii_case(&sha256)) {
        return Err(Kept::Differs(format!("SHA-256 is {sha256}, the image says {expected}")));
    }
    let object = Bucket::object(uid, part, &sha256);
    bucket.put(&object, file, bytes).await.map_err(Kept::Failed)?;
    Ok(StoredPart { object, sha256, bytes })
}

/// An image whose every declared part is stored is ready.
fn ready_if_complete(s: &mut ImageStatus, declared: &[&str]) {
    if declared.iter().all(|part| s.parts.contains_key(*part)) {
        s.state = ImageState::Ready;
        s.reason = None;
    }
}

/// One upload of a part under way: the next waits its end (refused meanwhile).
struct Uploading {
    set: Arc<Mutex<BTreeSet<String>>>,
    what: String,
}

impl Uploading {
    fn start(set: &Arc<Mutex<BTreeSet<String>>>, what: String) -> Option<Self> {
        locked(set).insert(what.clone()).then(|| Self { set: set.clone(), what })
    }
}

impl Drop for Uploading {
    fn drop(&mut self) {
        locked(&self.set).remove(&self.what);
    }
}

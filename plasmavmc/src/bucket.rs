//! The platform bucket images are imported into: LightningStor's S3 as PlasmaVMC's service
//! account (the bucket lives in that account's own project, so no tenant reads or changes
//! it), one object per part, `<image uid>/<part>-<sha256 prefix>`. The importer copies parts in once; every
//! agent reads them out into its cache, whatever became of the URL they were registered from.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use photon_s3::{empty, encode_key, S3Client};

use crate::error::{PlasmavmcError, Result};
use crate::parts::{self, Saved};

pub struct Bucket {
    s3: S3Client,
    name: String,
    /// The bucket is known to exist.
    made: AtomicBool,
}

fn failed(what: String) -> impl Fn(anyhow::Error) -> PlasmavmcError {
    move |e| PlasmavmcError::Storage(format!("{what}: {e:#}"))
}

impl Bucket {
    /// Bucket `name` at the S3 endpoint `url` (trusting `ca`), as the account `key`.
    pub fn new(url: &str, ca: Option<&Path>, key: (String, String), name: &str) -> anyhow::Result<Self> {
        let s3 = S3Client::new(url, ca, key, "us-east-1")?;
        Ok(Self { s3, name: name.to_string(), made: AtomicBool::new(false) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object of image `uid`'s `part` with these bytes (named by them too, so two uploads
    /// of one part racing on two nodes never write one object: the first recorded wins).
    pub fn object(uid: &str, part: &str, sha256: &str) -> String {
        format!("{uid}/{part}-{}", &sha256[..sha256.len().min(16)])
    }

    fn path(&self, object: &str) -> String {
        format!("/{}/{}", self.name, encode_key(object))
    }

    /// Makes the bucket unless it exists.
    async fn ensure(&self) -> Result<()> {
        if self.made.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.s3.send(Method::PUT, &format!("/{}", self.name), "", &[], empty()).await {
            Ok(_) => {}
            Err(e) if e.to_string().starts_with("BucketAlreadyOwnedByYou") => {}
            Err(e) => return Err(failed(format!("making the platform bucket {}", self.name))(e)),
        }
        self.made.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Stores the file `from` (`bytes` long) as `object`.
    pub async fn put(&self, object: &str, from: &Path, bytes: u64) -> Result<()> {
        self.ensure().await?;
        let file = tokio::fs::File::open(from).await.map_err(|e| PlasmavmcError::io(format!("opening {}", from.display()), e))?;
        let frames = tokio_util::io::ReaderStream::new(file).map(|chunk| chunk.map(Frame::data));
        let body = BodyExt::boxed(StreamBody::new(frames));
        let headers = [("content-length", bytes.to_string())];
        let what = format!("storing {object} in {}", self.name);
        let (response, sender) = self.s3.send_keep(Method::PUT, &self.path(object), "", &headers, body).await.map_err(failed(what))?;
        let _ = response.into_body().collect().await;
        self.s3.release(sender);
        Ok(())
    }

    /// Reads `object` into the new file `to`: (bytes, SHA-256).
    pub async fn get(&self, object: &str, to: &Path) -> Result<(u64, String)> {
        let what = format!("reading {object} from {}", self.name);
        let response = self.s3.send(Method::GET, &self.path(object), "", &[], empty()).await.map_err(failed(what.clone()))?;
        parts::save(response.into_body().into_data_stream(), to, u64::MAX).await.map_err(|e| match e {
            Saved::Read(message) => PlasmavmcError::Storage(format!("{what}: {message}")),
            Saved::Write(e) => e,
        })
    }

    /// Every object's name.
    pub async fn list(&self) -> Result<Vec<String>> {
        self.ensure().await?;
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let query = match &token {
                Some(t) => format!("continuation-token={}&list-type=2", photon_auth::sigv4::encode(t)),
                None => "list-type=2".to_string(),
            };
            let what = format!("listing {}", self.name);
            let xml = self.s3.xml(Method::GET, &format!("/{}", self.name), &query).await.map_err(failed(what.clone()))?;
            names.extend(photon_s3::texts(&xml, "Contents", "Key").map_err(failed(what.clone()))?);
            token = photon_s3::texts(&xml, "ListBucketResult", "NextContinuationToken").map_err(failed(what))?.pop();
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// Deletes `object` (gone already is fine).
    pub async fn delete(&self, object: &str) -> Result<()> {
        let what = format!("deleting {object} from {}", self.name);
        let (response, sender) =
            self.s3.send_keep(Method::DELETE, &self.path(object), "", &[], empty()).await.map_err(failed(what))?;
        let _ = response.into_body().collect().await;
        self.s3.release(sender);
        Ok(())
    }
}

//! The digests of an upload's body (MD5 for its ETag; SHA-256 when the request signed its
//! payload hash) computed on a thread of their own while the body is cut into chunks. MD5 runs
//! at about 650 MB/s on one core, no faster than a large upload arrives on loopback: on the
//! task that receives the body it halved a lone 64 MiB upload's rate. The channel between them
//! is bounded, so a slow digest slows the upload instead of letting memory grow.

use bytes::Bytes;
use md5::{Digest, Md5};
use ring::digest::{Context, SHA256};
use tokio::sync::mpsc;

use super::error::S3Error;

/// Pieces of the body waiting for the digest thread (hyper's are 16-64 KiB).
const QUEUED: usize = 32;

/// What the digest thread measured.
pub(super) struct Digested {
    pub size: u64,
    pub md5: [u8; 16],
    /// Zero unless asked for.
    pub sha256: [u8; 32],
}

/// The digests of everything `feed` was given, measured elsewhere.
pub(super) struct BodyDigest {
    pieces: mpsc::Sender<Bytes>,
    worker: tokio::task::JoinHandle<Digested>,
}

impl BodyDigest {
    /// Starts the thread; `sha256` also computes the body's SHA-256.
    pub fn start(sha256: bool) -> Self {
        let (pieces, mut queue) = mpsc::channel::<Bytes>(QUEUED);
        let worker = tokio::task::spawn_blocking(move || {
            let mut md5 = Md5::new();
            let mut sha = sha256.then(|| Context::new(&SHA256));
            let mut size = 0u64;
            while let Some(piece) = queue.blocking_recv() {
                md5.update(&piece);
                if let Some(sha) = &mut sha {
                    sha.update(&piece);
                }
                size += piece.len() as u64;
            }
            finish(size, md5, sha)
        });
        Self { pieces, worker }
    }

    /// Hands the thread `piece` (a reference to it, not a copy), waiting while it is behind.
    pub async fn feed(&self, piece: &Bytes) -> std::io::Result<()> {
        self.pieces.send(piece.clone()).await.map_err(|_| std::io::Error::other("the body digest thread ended early"))
    }

    /// The digests, once the thread has seen every piece fed.
    pub async fn finish(self) -> Result<Digested, S3Error> {
        drop(self.pieces);
        self.worker.await.map_err(|e| S3Error::internal_error(format!("the body digest thread failed: {e}")))
    }
}

/// The digests of a body held whole in memory (a small one, kept inline): no thread needed.
pub(super) fn of(data: &[u8], sha256: bool) -> Digested {
    let mut md5 = Md5::new();
    md5.update(data);
    let sha = sha256.then(|| {
        let mut sha = Context::new(&SHA256);
        sha.update(data);
        sha
    });
    finish(data.len() as u64, md5, sha)
}

fn finish(size: u64, md5: Md5, sha: Option<Context>) -> Digested {
    let sha256 = sha.map(|sha| sha.finish().as_ref().try_into().unwrap_or([0; 32])).unwrap_or([0; 32]);
    Digested { size, md5: md5.finalize().into(), sha256 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fed_body_digests_as_the_whole_does() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let digest = BodyDigest::start(true);
        for piece in data.chunks(65_536) {
            digest.feed(&Bytes::copy_from_slice(piece)).await.unwrap();
        }
        let fed = digest.finish().await.unwrap();
        let whole = of(&data, true);
        assert_eq!((fed.size, fed.md5, fed.sha256), (whole.size, whole.md5, whole.sha256));
        assert_eq!(fed.md5, <[u8; 16]>::from(Md5::digest(&data)));
        assert_ne!(fed.sha256, [0; 32]);
        assert_eq!(of(&data, false).sha256, [0; 32]);
    }
}

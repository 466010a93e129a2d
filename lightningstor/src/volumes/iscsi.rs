//! What this node serves over iSCSI: one target per volume (`iqn.2026-12.io.photoncloud:
//! <org>.<project>.<volume>`, LUN 0), which an initiator may log in to when one of the volume's
//! attachments names it (`spec.initiator`), with that attachment's CHAP credentials (user: its
//! name; secret: its token). The session then gets what the attachment opens, as over NBD: the
//! head fenced by the writer lease, the head read only, or a snapshot.

use std::sync::Arc;

use photon_block::iscsi::{Access, ChapCredentials, Targets};
use photon_block::{BlockDevice, BlockFuture};

use super::exports::VolumeExports;

pub struct VolumeTargets(pub Arc<VolumeExports>);

impl Targets for VolumeTargets {
    fn discover(&self, initiator: &str) -> BlockFuture<'_, Vec<String>> {
        let targets = self.0.catalog.targets_for(initiator);
        Box::pin(async move { Ok(targets) })
    }

    fn access(&self, target: &str, initiator: &str) -> BlockFuture<'_, Option<Access>> {
        let found = self.0.catalog.token_for(target, initiator).and_then(|token| Some((self.0.catalog.get(&token)?, token)));
        Box::pin(async move {
            Ok(found.map(|(attachment, token)| Access {
                chap: Some(ChapCredentials { user: attachment.attachment, secret: token.into_bytes() }),
            }))
        })
    }

    fn open(&self, target: &str, initiator: &str) -> BlockFuture<'_, Option<Arc<dyn BlockDevice>>> {
        let token = self.0.catalog.token_for(target, initiator);
        Box::pin(async move {
            match token {
                Some(token) => self.0.open_token(&token).await,
                None => Ok(None),
            }
        })
    }
}

//! LightningStor: S3-compatible object storage. Object data lives in checksummed chunks on local
//! disk (`chunks`), metadata in flaredb (`meta`); the S3 endpoint (`s3`) authenticates with
//! SigV4 against IAM's access keys and asks IAM to authorize each request on the bucket's
//! project. Chunks are replicated to peer nodes (`replication`) with repair of missed and
//! corrupt copies. Block volumes (`volumes`) live on the same nodes, as extents written in place.

pub mod admin;
pub mod chunks;
pub mod config;
pub mod direct_io;
pub mod meta;
pub mod replication;
pub mod s3;
pub mod server;
pub mod volumes;

//! LightningStor: S3-compatible object storage. Built so far: the chunk store that keeps object
//! data on local disk (`chunks`), and the S3 protocol's addressing and errors (`s3`). The S3
//! endpoint, metadata in flaredb and replication come next (docs/lightningstor.md).

pub mod chunks;
pub mod s3;

//! The S3 protocol surface: how requests name buckets and keys (`address`) and how errors are
//! answered (`error`). Handlers come with the server.

pub mod address;
pub mod error;

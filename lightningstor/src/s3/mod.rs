//! The S3 protocol surface: how requests name buckets and keys (`address`), errors (`error`),
//! XML documents (`xml`), bucket policies and the operations requests are authorized as
//! (`policy`), upload digests (`digest`), and the endpoint (`service`) with its bucket, bucket settings, object, version,
//! copy, batch delete, listing and multipart operations.

pub mod address;
mod bucket;
mod bucket_config;
mod copy;
mod delete_many;
pub mod digest;
pub mod error;
mod list;
mod multipart;
mod object;
pub mod policy;
pub mod service;
mod versions;
mod xml;

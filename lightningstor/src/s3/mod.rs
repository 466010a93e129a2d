//! The S3 protocol surface: how requests name buckets and keys (`address`), errors (`error`),
//! response documents (`xml`), and the endpoint (`service`) with its bucket, object and listing
//! operations.

pub mod address;
mod bucket;
pub mod error;
mod list;
mod multipart;
mod object;
pub mod service;
mod xml;

//! IAM: organizations, projects and principals, roles and bindings, signed tokens and the
//! authorization decisions every PhotonCloud service asks for; everything stored in flaredb.
//! See docs/iam.md.

pub mod addr;
pub mod api;
pub mod authz;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod login;
pub mod model;
pub mod password;
pub mod rest;
pub mod secrets;
pub mod server;
pub mod state;
pub mod tokens;

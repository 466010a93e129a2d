//! The gRPC services: Admin, Tokens and Authz, and the action each RPC declares.

pub mod actions;
pub mod admin;
pub mod authz;
mod convert;
pub mod tokens;

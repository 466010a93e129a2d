//! The one auth layer every PhotonCloud service uses: a bearer token is verified locally
//! against IAM's published keys (JWKS), and the action a route or RPC declares is authorized by
//! IAM, whose answers are cached for a short time and keep serving, for tokens still valid,
//! while IAM is unreachable. S3 requests are verified by `sigv4` against IAM's access keys. No
//! service writes its own auth.

pub mod claims;
pub mod client;
pub mod error;
pub mod guard;
pub mod interceptor;
pub mod jwks;
pub mod rules;
pub mod section;
pub mod service;
pub mod sigv2;
pub mod sigv4;
pub mod sigv4_stream;
pub mod verified;

pub use claims::{Caller, Claims, TokenType};
pub use client::{AuthClient, AuthConfig};
pub use error::AuthError;
pub use guard::Guard;
pub use rules::Rule;
pub use section::{IamArgs, IamSection};

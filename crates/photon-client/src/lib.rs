//! How a client reaches a PhotonCloud service: a tonic channel that trusts the platform's CA
//! (optionally presenting a client certificate), and a small HTTPS GET used for `/health`
//! probes by `photonctl` and the test kit. Generated stubs live in `photon-api`.

mod error;
mod grpc;
mod http_get;

pub use error::ClientError;
pub use grpc::{channel, lazy_channel, never_sent, ChannelOptions};
pub use http_get::{get, probe_health, HealthAnswer, HttpAnswer};

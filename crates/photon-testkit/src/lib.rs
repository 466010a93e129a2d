//! The integration-test harness for PhotonCloud binaries. It spawns real server binaries on
//! free loopback ports with temporary data dirs, waits for `/health`, kills (`-9`), terminates
//! and restarts them, and prints their logs when a test fails. Every service's integration
//! tests use it; nothing here is a mock. It also checks recorded histories for
//! linearizability, and runs multi-node clusters on test hosts in network namespaces
//! ([`netns::Lab`], [`cluster::Cluster`]).

mod binary;
pub mod cluster;
pub mod linearizability;
pub mod netns;
mod process;
pub mod seeded;
mod server;

pub use binary::{binary, free_port, output_with_stdin};
pub use netns::Lab;
pub use process::Process;
pub use server::TestServer;

//! PhotonCloud's protobuf API: the `.proto` files under `proto/` and the tonic servers and client
//! stubs generated from them. Services and `photonctl` share these stubs; nothing here knows about
//! transport, TLS or any service's logic.

/// `photon.runtime.v1`: the identity-and-health API every server answers.
pub mod runtime {
    pub mod v1 {
        tonic::include_proto!("photon.runtime.v1");
    }
}

/// `photon.raft.v1`: Raft peer traffic (opaque, versioned openraft payloads).
pub mod raft {
    pub mod v1 {
        tonic::include_proto!("photon.raft.v1");
    }
}

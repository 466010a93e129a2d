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

/// `photon.iam.v1`: IAM's admin, token and authorization API.
pub mod iam {
    pub mod v1 {
        tonic::include_proto!("photon.iam.v1");
    }
}

/// `photon.testing.v1`: the test fixture's demo service (never served by a real node).
pub mod testing {
    pub mod v1 {
        tonic::include_proto!("photon.testing.v1");
    }
}

/// `photon.lightningstor.v1`: LightningStor's node-to-node chunk replication.
pub mod lightningstor {
    pub mod v1 {
        tonic::include_proto!("photon.lightningstor.v1");
    }
}

/// `photon.flashdns.v1`: FlashDNS's zones and record sets.
pub mod flashdns {
    pub mod v1 {
        tonic::include_proto!("photon.flashdns.v1");
    }
}

/// `photon.resource.v1`: any application service's tenant resources, beside their REST routes.
pub mod resource {
    pub mod v1 {
        tonic::include_proto!("photon.resource.v1");
    }
}

/// `photon.plasmavmc.v1`: PlasmaVMC's serial consoles (a bidirectional stream per attach).
pub mod plasmavmc {
    pub mod v1 {
        tonic::include_proto!("photon.plasmavmc.v1");
    }
}

/// `photon.flaredb.v1`: FlareDB's key-value and region API.
pub mod flaredb {
    pub mod v1 {
        tonic::include_proto!("photon.flaredb.v1");
    }
}

/// The etcd v3 API from etcd's own protos (`proto/vendor/etcd`), which chainfire serves
/// unchanged so `etcdctl` and every etcd client library work against it.
pub mod etcd {
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
}

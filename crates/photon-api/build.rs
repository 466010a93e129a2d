//! Compiles the platform's protos with a vendored protoc, so a fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let well_known = protoc_bin_vendored::include_path()?;
    let includes = [std::path::PathBuf::from("proto"), std::path::PathBuf::from("proto/vendor"), well_known];
    let protos = [
        "proto/photon/runtime/v1/runtime.proto",
        "proto/photon/raft/v1/raft.proto",
        "proto/photon/flaredb/v1/flaredb.proto",
        "proto/photon/iam/v1/iam.proto",
        "proto/photon/testing/v1/testing.proto",
        "proto/photon/lightningstor/v1/replication.proto",
        "proto/photon/lightningstor/v1/buckets.proto",
        "proto/photon/flashdns/v1/zones.proto",
        "proto/photon/resource/v1/resources.proto",
        "proto/photon/plasmavmc/v1/console.proto",
        "proto/vendor/etcd/api/etcdserverpb/rpc.proto",
    ]
    .map(std::path::PathBuf::from);
    // IAM's messages double as its REST bodies (JSON), so they derive serde.
    // Chunk replicas travel as `bytes::Bytes`: sent to several peers without a copy each.
    tonic_prost_build::configure()
        .bytes(".photon.lightningstor.v1")
        // Scanned values are sliced out of the response buffer instead of copied one by one.
        .bytes(".photon.flaredb.v1.Record.value")
        // LightningStor's management messages double as its REST bodies.
        .message_attribute(".photon.lightningstor.v1.BucketInfo", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(
            ".photon.lightningstor.v1.ListBucketsResponse",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .message_attribute(".photon.iam.v1", "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]")
        .enum_attribute(
            ".photon.iam.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")]",
        )
        .compile_protos(&protos, &includes)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

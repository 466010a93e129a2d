//! Encoding openraft messages into the opaque payloads of `photon.raft.v1`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Status;

use crate::keys;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    keys::encode(value).map_err(|e| Status::internal(format!("cannot encode raft message: {e}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    keys::decode(bytes).map_err(|e| Status::invalid_argument(format!("malformed raft message: {e}")))
}

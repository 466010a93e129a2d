//! Attaching through a node that does not run the VM: the same call made to the node that
//! does (its API URL from its record), with the caller's token, both streams piped through.

use std::path::Path;

use photon_api::plasmavmc::v1::console_client::ConsoleClient;
use photon_api::plasmavmc::v1::ConsoleInput;
use photon_resource::Store;
use tonic::Status;

use super::{Input, Output};
use crate::nodes::{self, NodeRecord};

pub async fn attach(
    store: &Store,
    trust: Option<&Path>,
    node: &str,
    token: &str,
    first: ConsoleInput,
    mut input: Input,
) -> Result<Output, Status> {
    let key = format!("{}{node}", nodes::records_prefix());
    let record = store.get::<NodeRecord>(&key).await.map_err(|e| Status::unavailable(e.to_string()))?;
    let url = record
        .and_then(|r| r.value.api)
        .ok_or_else(|| Status::unavailable(format!("node {node} has not said where its API is")))?;
    let options = photon_client::ChannelOptions { ca: trust.map(Path::to_path_buf), ..Default::default() };
    let channel = photon_client::lazy_channel(&url, &options).map_err(|e| Status::unavailable(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<ConsoleInput>(16);
    let _ = tx.send(first).await;
    tokio::spawn(async move {
        while let Some(data) = input.recv().await {
            if tx.send(ConsoleInput { data, ..Default::default() }).await.is_err() {
                return;
            }
        }
    });
    let outbound = super::stream(rx);
    let mut request = tonic::Request::new(outbound);
    let bearer = format!("Bearer {token}").parse().map_err(|_| Status::unauthenticated("the token is not a header value"))?;
    request.metadata_mut().insert("authorization", bearer);
    let response = ConsoleClient::new(channel)
        .attach(request)
        .await
        .map_err(|e| Status::new(e.code(), format!("node {node}: {}", e.message())))?;
    Ok(Box::pin(response.into_inner()))
}

//! The serial console over WebSocket: `GET .../vms/{name}/console[?backlog=N]` upgraded, for
//! browsers and any WebSocket client. The same console as the gRPC stream (`ConsoleService::
//! open`: authorized as `plasmavmc:vms:console`, attached here or relayed to the VM's node),
//! refused with the REST error document before the upgrade when it cannot be had (no such VM,
//! not running, not allowed). Then binary (or text) messages from the client are what it types,
//! and what the guest prints comes back as binary messages; closing either side ends it.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use photon_api::plasmavmc::v1::ConsoleInput;
use serde::Deserialize;

use super::{ConsoleService, Output};

#[derive(Debug, Deserialize)]
pub struct Params {
    /// Bytes of what the console printed before to replay first (default 16 KiB).
    #[serde(default = "default_backlog")]
    backlog: u32,
}

fn default_backlog() -> u32 {
    16 * 1024
}

pub async fn console(
    State(service): State<Arc<ConsoleService>>,
    Path((org, project, vm)): Path<(String, String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let token = match photon_auth::guard::bearer(&headers) {
        Ok(token) => token,
        Err(e) => return photon_runtime::rest::status_response(&e.status()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let first = ConsoleInput { org, project, vm, backlog: params.backlog, data: Vec::new() };
    match service.open(&token, first, rx).await {
        Ok(output) => upgrade.on_upgrade(move |socket| pump(socket, output, tx)),
        Err(status) => photon_runtime::rest::status_response(&status),
    }
}

/// Carries the console both ways until either side ends.
async fn pump(socket: WebSocket, mut output: Output, input: tokio::sync::mpsc::Sender<Vec<u8>>) {
    let (mut to_client, mut from_client) = socket.split();
    let typing = async move {
        while let Some(Ok(message)) = from_client.next().await {
            let data = match message {
                Message::Binary(bytes) => bytes.to_vec(),
                Message::Text(text) => text.as_str().as_bytes().to_vec(),
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if input.send(data).await.is_err() {
                return;
            }
        }
    };
    let printing = async move {
        while let Some(item) = output.next().await {
            let Ok(chunk) = item else { break };
            if to_client.send(Message::Binary(chunk.data.into())).await.is_err() {
                return;
            }
        }
        let _ = to_client.send(Message::Close(None)).await;
    };
    tokio::select! {
        _ = typing => {}
        _ = printing => {}
    }
}

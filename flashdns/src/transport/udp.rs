//! DNS over UDP: a few tasks share one socket, each receiving a datagram, answering it and
//! sending the response before taking the next.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Answerer;

/// Serves `socket` with `workers` tasks until `shutdown`.
pub fn serve(socket: UdpSocket, workers: usize, answerer: Answerer, shutdown: CancellationToken, tasks: &TaskTracker) {
    let socket = Arc::new(socket);
    for _ in 0..workers.max(1) {
        let socket = socket.clone();
        let answerer = answerer.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let (len, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = socket.recv_from(&mut buf) => match received {
                        Ok(received) => received,
                        Err(e) => {
                            // ICMP errors from earlier sends surface here on Linux; keep serving.
                            tracing::debug!(error = %e, "UDP receive failed");
                            continue;
                        }
                    },
                };
                if let Some(response) = answerer.answer_udp(&buf[..len], peer.ip()) {
                    send(&socket, &response, peer).await;
                }
            }
        });
    }
}

async fn send(socket: &UdpSocket, response: &[u8], peer: SocketAddr) {
    if let Err(e) = socket.send_to(response, peer).await {
        tracing::debug!(%peer, error = %e, "UDP send failed");
    }
}

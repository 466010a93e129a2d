//! DNS over UDP: one socket per worker thread on the same port (SO_REUSEPORT, so the kernel
//! spreads clients over them), each thread receiving the datagrams waiting (`mmsg`), answering
//! them and sending the responses before taking more, with blocking calls: an answer takes
//! microseconds, and an async runtime's readiness round trips would cost more than the answer
//! itself.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::mmsg::Batch;
use super::Answerer;

/// How often an idle worker looks at the shutdown signal.
const SHUTDOWN_POLL: Duration = Duration::from_millis(200);

/// The sockets for `workers` threads on `listen` (bound now, so a taken port fails the start).
pub fn bind(listen: SocketAddr, workers: usize) -> std::io::Result<Vec<UdpSocket>> {
    (0..workers.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(listen), Type::DGRAM, Some(Protocol::UDP))?;
            socket.set_reuse_port(true)?;
            socket.set_recv_buffer_size(4 << 20).ok();
            socket.bind(&listen.into())?;
            socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
            Ok(socket.into())
        })
        .collect()
}

/// Serves `sockets`, a thread each, until `shutdown`; the threads are joined on the tracker.
pub fn serve(sockets: Vec<UdpSocket>, answerer: Answerer, shutdown: CancellationToken, tasks: &TaskTracker) {
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let (answerer, shutdown) = (answerer.clone(), shutdown.clone());
        let spawned = std::thread::Builder::new().name(format!("dns-udp-{i}")).spawn(move || {
            let mut batch = Batch::default();
            let mut view = answerer.view();
            while !shutdown.is_cancelled() {
                let received = match batch.receive(&socket) {
                    Ok(received) => received,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        continue;
                    }
                    Err(e) => {
                        // ICMP errors from earlier sends surface here on Linux; keep serving.
                        tracing::debug!(error = %e, "UDP receive failed");
                        continue;
                    }
                };
                for i in 0..received {
                    let (query, peer, response) = batch.query_and_response(i);
                    let Some(peer) = peer else { continue };
                    if !answerer.answer_udp(&mut view, query, peer, response) {
                        response.clear();
                    }
                }
                batch.send(&socket);
            }
        });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => tracing::error!(error = %e, "cannot start a UDP worker thread"),
        }
    }
    // Shutdown waits for the workers, which notice it within SHUTDOWN_POLL.
    tasks.spawn(async move {
        shutdown_join(threads).await;
    });
}

async fn shutdown_join(threads: Vec<std::thread::JoinHandle<()>>) {
    let _ = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    })
    .await;
}

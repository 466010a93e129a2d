//! `never_sent` recognises a call that could not connect, as tonic reports it today (the check
//! reads tonic's messages, so a tonic upgrade that changes them fails here first).

use photon_api::runtime::v1::runtime_client::RuntimeClient;
use photon_client::{lazy_channel, never_sent, ChannelOptions};

#[tokio::test]
async fn a_refused_connection_is_never_sent() {
    // Bind and drop: the port is then closed, and a connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let channel = lazy_channel(&format!("http://127.0.0.1:{port}"), &ChannelOptions::default()).unwrap();
    let request = photon_api::runtime::v1::GetServerInfoRequest {};
    let status = RuntimeClient::new(channel).get_server_info(request).await.unwrap_err();
    assert!(never_sent(&status), "{status:?}");
    assert!(!never_sent(&tonic::Status::unavailable("Connection reset by peer (os error 104)")));
}

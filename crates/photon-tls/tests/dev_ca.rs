//! The development CA end to end: creation, reuse, and real TLS handshakes (one-way and mutual).

use std::sync::Arc;

use photon_tls::{client_config, load_identity, local_names, server_config, DevCa, ALPN_H2};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[test]
fn ca_is_created_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let (first, created) = DevCa::load_or_create(&ca_dir).unwrap();
    assert!(created);
    let pem = std::fs::read_to_string(first.cert_path()).unwrap();
    let (second, created_again) = DevCa::load_or_create(&ca_dir).unwrap();
    assert!(!created_again);
    assert_eq!(pem, std::fs::read_to_string(second.cert_path()).unwrap());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ca_dir.join(photon_tls::CA_KEY_FILE)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the CA key must be readable by its owner only");
}

#[test]
fn concurrent_creators_agree_on_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ca_dir = ca_dir.clone();
            std::thread::spawn(move || {
                let (ca, _) = DevCa::load_or_create(&ca_dir).unwrap();
                std::fs::read_to_string(ca.cert_path()).unwrap()
            })
        })
        .collect();
    let pems: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(pems.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn server_cert_is_reused_until_names_change_or_ca_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = DevCa::load_or_create(&dir.path().join("ca")).unwrap();
    let out = dir.path().join("tls");
    let names = local_names();
    assert!(names.contains(&"localhost".to_string()) && names.contains(&"127.0.0.1".to_string()));
    let first = ca.issue_or_reuse(&out, "svc", &names).unwrap();
    assert!(!first.reused);
    assert!(ca.issue_or_reuse(&out, "svc", &names).unwrap().reused);

    let mut more = names.clone();
    more.push("extra.example".into());
    assert!(!ca.issue_or_reuse(&out, "svc", &more).unwrap().reused, "a new name needs a new cert");

    let (other_ca, _) = DevCa::load_or_create(&dir.path().join("other-ca")).unwrap();
    assert!(!other_ca.issue_or_reuse(&out, "svc", &more).unwrap().reused, "another CA must reissue");
}

async fn echo_once(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> std::io::Result<()> {
    let (tcp, _) = listener.accept().await?;
    let mut tls = acceptor.accept(tcp).await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    tls.write_all(&buf).await?;
    tls.shutdown().await
}

#[tokio::test]
async fn one_way_and_mutual_tls_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = DevCa::load_or_create(&dir.path().join("ca")).unwrap();
    let server = ca.issue(&dir.path().join("tls"), "server", &local_names()).unwrap();
    let client = ca.issue(&dir.path().join("tls"), "client", &["client".into()]).unwrap();
    let server_id = load_identity(&server.cert_path, &server.key_path).unwrap();
    let client_id = load_identity(&client.cert_path, &client.key_path).unwrap();

    for mutual in [false, true] {
        let config = server_config(server_id.clone(), mutual.then(|| ca.roots())).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server_task = tokio::spawn(echo_once(listener, acceptor));

        let identity = mutual.then(|| client_id.clone());
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(client_config(ca.roots(), identity, &[ALPN_H2]).unwrap()));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(ALPN_H2));
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server_task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn mutual_tls_rejects_a_client_without_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = DevCa::load_or_create(&dir.path().join("ca")).unwrap();
    let server = ca.issue(&dir.path().join("tls"), "server", &local_names()).unwrap();
    let config = server_config(load_identity(&server.cert_path, &server.key_path).unwrap(), Some(ca.roots())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_task = tokio::spawn(echo_once(listener, tokio_rustls::TlsAcceptor::from(Arc::new(config))));

    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca.roots(), None, &[]).unwrap()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    // TLS 1.3 reports a missing client certificate after the client's handshake completes, so the
    // failure may surface on the first read rather than on connect.
    let outcome = async {
        let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await
    }
    .await;
    assert!(outcome.is_err(), "a client without a certificate must be refused");
    assert!(server_task.await.unwrap().is_err());
}

#[test]
fn missing_and_garbage_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.crt");
    let err = photon_tls::load_certs(&missing).unwrap_err().to_string();
    assert!(err.contains("nope.crt"), "{err}");
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a pem").unwrap();
    let err = photon_tls::load_certs(&garbage).unwrap_err().to_string();
    assert!(err.contains("garbage.crt"), "{err}");
}

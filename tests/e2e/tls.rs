//! TLS to the upstream, as with every real provider: the gateway verifies the upstream's certificate
//! against webpki roots plus `SSL_CERT_FILE`, speaks HTTP/1.1 over rustls, and pools the TLS connections.
//! A TLS front (rustls, test CA) terminates in front of the mock upstream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aibridged::mock::MockUpstream;
use monoio::io::{AsyncWriteRent, Splitable};

use crate::support::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

/// Starts a TLS-terminating front for `upstream` on 127.0.0.1, serving the `localhost` test certificate;
/// returns its address and a count of the TLS handshakes it completed.
fn spawn_tls_front(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(fixture("localhost.pem")).unwrap()))
            .collect::<Result<_, _>>()
            .unwrap();
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(fixture("localhost.key")).unwrap(),
    ))
    .unwrap()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = monoio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    std::thread::spawn(move || {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async move {
            let listener = monoio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                monoio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Ok(up) = monoio::net::TcpStream::connect_addr(upstream).await else { return };
                    let (mut tls_r, mut tls_w) = tls.into_split();
                    let (mut up_r, mut up_w) = up.into_split();
                    let to_upstream = async {
                        let _ = monoio::io::copy(&mut tls_r, &mut up_w).await;
                        let _ = up_w.shutdown().await;
                    };
                    let to_client = async {
                        let _ = monoio::io::copy(&mut up_r, &mut tls_w).await;
                        let _ = tls_w.shutdown().await;
                    };
                    monoio::join!(to_upstream, to_client);
                });
            }
        });
    });
    (addr, handshakes)
}

const MSG: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi over tls"}]}"#;

#[test]
fn tls_upstreams_are_verified_relayed_and_pooled() {
    let mock = MockUpstream::start().unwrap();
    let (front, handshakes) = spawn_tls_front(mock.addr());
    let base = format!("https://localhost:{}", front.port());
    let ca = fixture("ca.pem").display().to_string();
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_WORKERS", "1"),
        ("SSL_CERT_FILE", &ca),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", "sk-ant-over-tls-0123456789"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &base),
    ]);
    let token = gw.token("alice");
    let mut c = Client::connect(gw.addr);
    for _ in 0..5 {
        let r = c.request("POST", "/api/v2/aibridge/anthropic/v1/messages", &[("X-Api-Key", &token)], MSG.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.complete);
        assert!(r.text().contains("event: message_stop"));
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|q| q.header("x-api-key") == Some("sk-ant-over-tls-0123456789")));
    assert_eq!(seen[0].header("host"), Some(format!("localhost:{}", front.port()).as_str()));
    assert_eq!(handshakes.load(Ordering::SeqCst), 1, "one worker reuses one pooled TLS connection");
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_token_usages", 5), 5);

    // Without the test CA the upstream's certificate is refused: 502, and nothing reaches the mock.
    mock.clear();
    let untrusting = Gateway::start(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", "sk-ant-over-tls-0123456789"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &base),
    ]);
    let token = untrusting.token("bob");
    let r = request(
        untrusting.addr,
        "POST",
        "/api/v2/aibridge/anthropic/v1/messages",
        &[("X-Api-Key", &token)],
        MSG.as_bytes(),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("TLS"), "{}", r.text());
    assert!(mock.requests().is_empty());
}

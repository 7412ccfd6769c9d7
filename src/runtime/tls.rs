//! The upstream TLS client configuration: ring provider, webpki roots plus any extra CAs named by
//! `SSL_CERT_FILE`, ALPN `http/1.1`. Built once at start-up (it reads a file); workers share the `Arc`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use thiserror::Error;

/// Environment variable naming a PEM file of extra trusted CAs (the OpenSSL convention), used for private
/// upstreams and for tests against a local TLS mock.
pub(crate) const SSL_CERT_FILE_VAR: &str = "SSL_CERT_FILE";

/// The only protocol we speak upstream. Advertising it lets servers that default to h2 pick HTTP/1.1.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why the TLS client configuration could not be built. Every variant names the file and the variable so
/// the operator knows what to fix.
#[derive(Debug, Error)]
pub(crate) enum TlsError {
    #[error("{var}={path}: cannot read the CA file: {source}", path = .path.display())]
    ReadCaFile { var: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{var}={path}: invalid PEM: {source}", path = .path.display())]
    BadPem { var: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{var}={path}: no CERTIFICATE blocks found", path = .path.display())]
    NoCertificates { var: &'static str, path: PathBuf },
    #[error("{var}={path}: certificate {index} is not a usable CA: {source}", path = .path.display())]
    BadCertificate { var: &'static str, path: PathBuf, index: usize, source: rustls::Error },
    /// The provider rejected the protocol versions (cannot happen with ring; kept typed rather than unwrapped).
    #[error("TLS provider setup failed: {0}")]
    Provider(rustls::Error),
}

/// The client configuration for upstream connections, with extra CAs from `$SSL_CERT_FILE` when set
/// (an empty value counts as unset).
pub(crate) fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let extra = std::env::var_os(SSL_CERT_FILE_VAR).filter(|v| !v.is_empty()).map(PathBuf::from);
    client_config_with(extra.as_deref())
}

/// The client configuration with extra CAs from `extra_ca_file` (a PEM file) when given; the path is
/// reported in errors as the value of `SSL_CERT_FILE`.
pub(crate) fn client_config_with(extra_ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Make ring the process default too, so any rustls use that does not take a provider explicitly
    // (e.g. inside a dependency) agrees with ours. Fails harmlessly if a default is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = extra_ca_file {
        for (index, cert) in read_pem_certs(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|source| TlsError::BadCertificate {
                var: SSL_CERT_FILE_VAR,
                path: path.to_owned(),
                index,
                source,
            })?;
        }
    }

    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
        var: SSL_CERT_FILE_VAR,
        path: path.to_owned(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::BadPem { var: SSL_CERT_FILE_VAR, path: path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates { var: SSL_CERT_FILE_VAR, path: path.to_owned() });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 CA made offline with `openssl req -x509` for these tests (valid until 2126).
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjzCCATWgAwIBAgIUXuxmzuRafYswVw8CGFCTAXkZAJgwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRYWlicmlkZ2VkIHRlc3QgQ0EwIBcNMjYxMTI3MDYwMTI1WhgP
MjEyNjExMDMwNjAxMjVaMBwxGjAYBgNVBAMMEWFpYnJpZGdlZCB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEA5bC98lkYyt6mK5qCXFV41VIbhnEpDbM
ohFmY3PhfmzDN67IkXLiTe0HQmQX/ckFlaL4BPiPRyBOUBXqBrh6IKNTMFEwHQYD
VR0OBBYEFCFOCqHhro/bX0y74GaSiT91g7zZMB8GA1UdIwQYMBaAFCFOCqHhro/b
X0y74GaSiT91g7zZMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIh
ANLHMfiLqqAJqB8gLiFYYB8SOe+xvSn7K3Zu1mrk0yvZAiA8IOCN+SwnGa9xRmuV
aHFZnoLE1xy9aKWAJAs3X3S75w==
-----END CERTIFICATE-----
";

    /// A leaf for `localhost` signed by `TEST_CA_PEM`, and its key: test-only material made with openssl,
    /// trusted nowhere else.
    const TEST_LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBujCCAWGgAwIBAgIUWGe5f6QW4cJVgttVOQ0Fyhl8+tQwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRYWlicmlkZ2VkIHRlc3QgQ0EwIBcNMjYxMTI3MDYwNDQ2WhgP
MjEyNjExMDMwNjA0NDZaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABD4qgtir1zDoTSBUSujFpi6GI4xwzC44Rqt5SuHmaj51
2f6j5x+7xQVQu5EDVP1VvAqQSipm7BeYH7YkwrESuDejgYYwgYMwFAYDVR0RBA0w
C4IJbG9jYWxob3N0MAkGA1UdEwQCMAAwCwYDVR0PBAQDAgeAMBMGA1UdJQQMMAoG
CCsGAQUFBwMBMB0GA1UdDgQWBBRFUWUlyOUbznzPNg8Ju+vzWQ9kSjAfBgNVHSME
GDAWgBQhTgqh4a6P219Mu+Bmkok/dYO82TAKBggqhkjOPQQDAgNHADBEAiA7+4/I
o3Nj+40+GBsPR9/N1JtEnllS9QZXQY/B6wElPAIgROJgAP5sZ9sSEAgu8+tD/FHx
bPAUox1sStnhZCLbEfs=
-----END CERTIFICATE-----
";
    const TEST_LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbiv/qkhZQWE7weV0
ZgxGp6ik/rtQXi+hUQ59hpQmWlChRANCAAQ+KoLYq9cw6E0gVEroxaYuhiOMcMwu
OEareUrh5mo+ddn+o+cfu8UFULuRA1T9VbwKkEoqZuwXmB+2JMKxErg3
-----END PRIVATE KEY-----
";

    /// A server for `localhost` offering `versions` and ALPN h2 + http/1.1.
    fn test_server(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ServerConfig> {
        let certs = rustls_pemfile::certs(&mut TEST_LEAF_PEM.as_bytes()).collect::<Result<Vec<_>, _>>().expect("leaf");
        let key = rustls_pemfile::private_key(&mut TEST_LEAF_KEY.as_bytes()).expect("key pem").expect("a key");
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server cert");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Runs a full handshake in memory; returns the negotiated version and ALPN protocol.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<rustls::ServerConfig>,
    ) -> Result<(Option<rustls::ProtocolVersion>, Option<Vec<u8>>), rustls::Error> {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut c = rustls::ClientConnection::new(client, name)?;
        let mut s = rustls::ServerConnection::new(server)?;
        for _ in 0..16 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).expect("to memory");
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("from memory");
            }
            s.process_new_packets()?;
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).expect("to memory");
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("from memory");
            }
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
        }
        Ok((c.protocol_version(), c.alpn_protocol().map(<[u8]>::to_vec)))
    }

    #[test]
    fn handshakes_with_the_extra_ca_over_tls13_and_tls12_choosing_http11() {
        let f = TempFile::new("hs-ca.pem", TEST_CA_PEM.as_bytes());
        let client = client_config_with(Some(&f.0)).expect("config");
        let tls13 = handshake(client.clone(), test_server(&[&rustls::version::TLS13])).expect("TLS 1.3 handshake");
        assert_eq!(tls13, (Some(rustls::ProtocolVersion::TLSv1_3), Some(b"http/1.1".to_vec())));
        let tls12 = handshake(client, test_server(&[&rustls::version::TLS12])).expect("TLS 1.2 handshake");
        assert_eq!(tls12, (Some(rustls::ProtocolVersion::TLSv1_2), Some(b"http/1.1".to_vec())));
    }

    #[test]
    fn without_the_extra_ca_the_test_server_is_untrusted() {
        let client = client_config_with(None).expect("config");
        let e = handshake(client, test_server(&[&rustls::version::TLS13])).expect_err("must fail");
        assert!(matches!(e, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)), "{e:?}");
    }

    /// A file in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!("aibridged-tls-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).expect("write temp file");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn count_roots(extra: Option<&Path>) -> usize {
        // The root store is not readable back from a ClientConfig, so count what we would add.
        webpki_roots::TLS_SERVER_ROOTS.len() + extra.map_or(0, |p| read_pem_certs(p).map_or(0, |c| c.len()))
    }

    #[test]
    fn default_config_speaks_http11_over_tls12_and_13() {
        let config = client_config_with(None).expect("default config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(config.crypto_provider().cipher_suites.iter().any(|s| s.version() == &rustls::version::TLS13));
        assert!(config.crypto_provider().cipher_suites.iter().any(|s| s.version() == &rustls::version::TLS12));
        assert!(count_roots(None) > 100, "webpki roots present");
    }

    #[test]
    fn extra_ca_from_pem_file_is_added() {
        let f = TempFile::new("ca.pem", TEST_CA_PEM.as_bytes());
        let certs = read_pem_certs(&f.0).expect("parses");
        assert_eq!(certs.len(), 1);
        let mut store = RootCertStore::empty();
        store.add(certs[0].clone()).expect("usable as a trust anchor");
        assert_eq!(store.len(), 1);
        assert!(client_config_with(Some(&f.0)).is_ok());
    }

    #[test]
    fn ssl_cert_file_env_is_honoured() {
        // The only test that touches the variable, so it cannot race another reader in this binary.
        let f = TempFile::new("env-ca.pem", TEST_CA_PEM.as_bytes());
        std::env::set_var(SSL_CERT_FILE_VAR, &f.0);
        let ok = client_config();
        let missing = TempFile::new("env-missing.pem", b"");
        std::env::set_var(SSL_CERT_FILE_VAR, &missing.0);
        let empty = client_config();
        std::env::remove_var(SSL_CERT_FILE_VAR);
        assert!(ok.is_ok(), "{:?}", ok.err());
        assert!(matches!(empty, Err(TlsError::NoCertificates { .. })), "{:?}", empty.err());
        assert!(client_config().is_ok(), "unset variable: webpki roots only");
    }

    #[test]
    fn bad_files_are_clear_errors_naming_the_variable() {
        let missing = std::env::temp_dir().join("aibridged-tls-definitely-missing.pem");
        let e = client_config_with(Some(&missing)).expect_err("missing file fails");
        assert!(matches!(e, TlsError::ReadCaFile { .. }));
        assert!(e.to_string().starts_with("SSL_CERT_FILE="), "{e}");

        let not_pem = TempFile::new("not.pem", b"hello, not a certificate\n");
        let e = client_config_with(Some(&not_pem.0)).expect_err("no certs fails");
        assert!(matches!(e, TlsError::NoCertificates { .. }), "{e:?}");

        let truncated = TempFile::new("trunc.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n");
        let e = client_config_with(Some(&truncated.0)).expect_err("truncated PEM fails");
        assert!(matches!(e, TlsError::BadPem { .. }), "{e:?}");

        let garbage = TempFile::new("garbage.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let e = client_config_with(Some(&garbage.0)).expect_err("garbage DER fails");
        assert!(matches!(e, TlsError::BadCertificate { index: 0, .. }), "{e:?}");
    }
}

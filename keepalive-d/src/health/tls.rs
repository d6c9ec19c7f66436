//! TLS client configurations for `https` checks: built once per distinct `ca` (and once
//! for all checks without one), shared by every probe that uses them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use crate::config::HttpCheck;

use super::{HealthError, ServerId};

/// What an https probe needs to start TLS: the shared configuration and the server name
/// (SNI, and the name the certificate is checked against when there is a `ca`).
pub(crate) struct TlsTarget {
    pub(crate) connector: TlsConnector,
    pub(crate) name: ServerName<'static>,
}

/// The client configurations built so far.
pub(crate) struct TlsConfigs {
    provider: Arc<CryptoProvider>,
    unverified: Option<Arc<ClientConfig>>,
    by_ca: HashMap<PathBuf, Arc<ClientConfig>>,
}

impl TlsConfigs {
    pub(crate) fn new() -> Self {
        Self {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            unverified: None,
            by_ca: HashMap::new(),
        }
    }

    /// The connector and server name for an https check of the server at `ip`.
    pub(crate) fn connector(
        &mut self,
        id: ServerId,
        ip: IpAddr,
        http: &HttpCheck,
    ) -> Result<TlsTarget, HealthError> {
        let name =
            server_name(http.host.as_deref(), ip).ok_or_else(|| HealthError::ServerName {
                id,
                host: http.host.clone().unwrap_or_default(),
            })?;
        let config = match &http.ca {
            None => match &self.unverified {
                Some(config) => config.clone(),
                None => {
                    let config = unverified_config(id, &self.provider)?;
                    self.unverified = Some(config.clone());
                    config
                }
            },
            Some(path) => match self.by_ca.get(path) {
                Some(config) => config.clone(),
                None => {
                    let config = verified_config(id, &self.provider, path)?;
                    self.by_ca.insert(path.clone(), config.clone());
                    config
                }
            },
        };
        Ok(TlsTarget {
            connector: TlsConnector::from(config),
            name,
        })
    }
}

/// The TLS server name: `host` without a port (`www.example.test:8443` →
/// `www.example.test`; an address gives an address, for which no SNI is sent), or the
/// server's address when there is no `host`. `None` when `host` is not a valid name.
pub(crate) fn server_name(host: Option<&str>, ip: IpAddr) -> Option<ServerName<'static>> {
    let Some(host) = host else {
        return Some(ServerName::IpAddress(ip.into()));
    };
    ServerName::try_from(strip_port(host).to_owned()).ok()
}

/// `name:port` → `name`, `[v6]:port` or `[v6]` → `v6`; anything else unchanged.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(inside, _)| inside);
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

fn tls_error(id: ServerId, e: rustls::Error) -> HealthError {
    HealthError::Tls {
        id,
        reason: e.to_string(),
    }
}

/// Accepts any certificate, like keepalived's `SSL_GET`, but still checks that the server
/// holds the key of the certificate it sent (handshake signatures).
fn unverified_config(
    id: ServerId,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ClientConfig>, HealthError> {
    let verifier = Arc::new(AcceptAnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(id, e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Verifies the chain against the certificates of the PEM file at `path` only, and the
/// name against the server name.
fn verified_config(
    id: ServerId,
    provider: &Arc<CryptoProvider>,
    path: &Path,
) -> Result<Arc<ClientConfig>, HealthError> {
    let roots = load_roots(id, path)?;
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(id, e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file as trust anchors.
fn load_roots(id: ServerId, path: &Path) -> Result<RootCertStore, HealthError> {
    let read_error = |source| HealthError::CaRead {
        id,
        path: path.to_owned(),
        source,
    };
    let invalid = |reason: String| HealthError::CaInvalid {
        id,
        path: path.to_owned(),
        reason,
    };
    let pem_error = |e: pem::Error| match e {
        pem::Error::Io(source) => read_error(source),
        other => invalid(format!("bad PEM: {other}")),
    };
    let mut roots = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .enumerate()
    {
        let cert = cert.map_err(pem_error)?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("certificate {}: {e}", n + 1)))?;
    }
    if roots.is_empty() {
        return Err(HealthError::CaEmpty {
            id,
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// A verifier that accepts every certificate chain and name, and verifies handshake
/// signatures with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    fn name(host: Option<&str>) -> Option<String> {
        server_name(host, IP).map(|n| n.to_str().into_owned())
    }

    #[test]
    fn server_names() {
        assert_eq!(name(None).as_deref(), Some("10.0.0.1"));
        assert_eq!(
            name(Some("www.example.test")).as_deref(),
            Some("www.example.test")
        );
        assert_eq!(
            name(Some("www.example.test:8443")).as_deref(),
            Some("www.example.test")
        );
        assert_eq!(name(Some("192.0.2.1:443")).as_deref(), Some("192.0.2.1"));
        assert_eq!(
            name(Some("[2001:db8::1]:443")).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(name(Some("2001:db8::1")).as_deref(), Some("2001:db8::1"));
        assert_eq!(name(Some("bad name!")), None);
        assert!(matches!(
            server_name(None, IP),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(Some("a.test"), IP),
            Some(ServerName::DnsName(_))
        ));
    }

    #[test]
    fn ca_errors_name_the_file() {
        let id = ServerId {
            service: 1,
            server: 2,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let missing = Path::new("/nonexistent/keepalive-d-test-ca.pem");
        let err = verified_config(id, &provider, missing)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, HealthError::CaRead { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "https check of virtual_servers[1].real_servers[2]: cannot read CA file /nonexistent/keepalive-d-test-ca.pem: "
            ),
            "{text}"
        );

        let dir = std::env::temp_dir().join(format!("keepalive-d-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = verified_config(id, &provider, &empty)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, HealthError::CaEmpty { .. }), "{err:?}");
        assert!(
            err.to_string().contains("empty.pem: no PEM certificate"),
            "{err}"
        );

        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = verified_config(id, &provider, &garbage)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, HealthError::CaInvalid { .. }), "{err:?}");
        assert!(
            err.to_string().contains("garbage.pem: certificate 1: "),
            "{err}"
        );

        // A directory is not a file.
        let err = verified_config(id, &provider, &dir)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, HealthError::CaRead { .. }), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

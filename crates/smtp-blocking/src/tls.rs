//! rustls configurations for both sides, with the `ring` provider (it builds without
//! cmake or nasm) chosen explicitly, so nothing depends on a process-wide default.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::info;

use crate::session::ServerStream;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {error}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: rustls::pki_types::pem::Error,
    },
    /// A PEM file held no certificate (or no private key).
    #[error("{0}: no certificate or key found")]
    Empty(PathBuf),
    /// rustls refused the configuration (a bad key, a certificate it cannot use).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How a client checks the server's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Verification {
    /// Against the Mozilla root store (`webpki-roots`).
    #[default]
    WebPki,
    /// Against the certificates of this PEM file only (a private CA, a self-signed
    /// certificate).
    CaFile(PathBuf),
    /// Accept any certificate for any name (handshake signatures are still checked).
    /// For tests and for debugging a server you control: it gives no protection against
    /// an active attacker.
    Insecure,
}

/// The `ring` provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that verifies certificates as `verification` says.
pub fn client_config(verification: &Verification) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let config = match verification {
        Verification::WebPki => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verification::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verification::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1).
pub fn server_config_from_pem(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty(key.to_owned()),
        error => TlsError::Pem {
            path: key.to_owned(),
            error,
        },
    })?;
    server_config(chain, key)
}

/// A server configuration from DER values (e.g. a certificate generated at start).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |error| TlsError::Pem {
        path: path.to_owned(),
        error,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.to_owned()));
    }
    Ok(certs)
}

/// [`Verification::Insecure`]: any certificate, any name; signatures still checked so
/// the handshake itself is sound.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The server's side of a handshake, implicit (RFC 8314) or after STARTTLS (RFC 3207),
/// on the raw TCP stream, bounded by `deadline`. The adapter holds no buffered bytes
/// (reads go straight into the machine, which refuses anything pipelined after
/// STARTTLS), so no plaintext can leak into the TLS session.
pub(crate) fn accept(
    stream: &mut ServerStream,
    config: Option<&Arc<rustls::ServerConfig>>,
    deadline: Instant,
) -> io::Result<()> {
    let Some(config) = config else {
        return Err(io::Error::other("TLS without a TLS configuration"));
    };
    let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    stream.upgrade(conn, deadline)?;
    if let Some(conn) = stream.tls() {
        info!(
            version = ?conn.protocol_version(),
            cipher = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
            "TLS established"
        );
    }
    Ok(())
}

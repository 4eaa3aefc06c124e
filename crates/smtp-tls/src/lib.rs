//! rustls configurations for both sides of the smtp adapters, written once and
//! re-exported by `smtp_tokio::tls` and `smtp_blocking::tls`.
//!
//! The `ring` provider (it builds without cmake or nasm) is chosen explicitly, so nothing
//! depends on a process-wide default. Clients verify against the webpki roots, a CA
//! file, or — only when asked by name — nothing ([`Verification::Insecure`]); servers load
//! PEM files or a self-signed certificate generated at start.
//!
//! ```
//! use smtp_tls::{Verification, client_config, self_signed, server_config};
//!
//! let client = client_config(&Verification::WebPki).unwrap();
//! let (chain, key) = self_signed(&["mx.example.org"]).unwrap();
//! let server = server_config(chain, key).unwrap();
//! # let _ = (client, server);
//! ```
//!
//! A server configuration goes to the adapters' listener builder (`smtp_tokio::Server::
//! builder(...).tls(server)`, the same in `smtp_blocking`), which then offers STARTTLS
//! and serves implicit-TLS listeners; a client's [`Verification`] goes to their
//! `Connector::builder(...).verification(...)`, which calls [`client_config`]. A
//! certificate and key from files:
//!
//! ```no_run
//! use std::path::Path;
//! let server = smtp_tls::server_config_from_pem(
//!     Path::new("/etc/ssl/mx.example.org.pem"),
//!     Path::new("/etc/ssl/private/mx.example.org.key"),
//! )?;
//! # let _ = server;
//! # Ok::<(), smtp_tls::TlsError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

pub use smtp_proto::client::host::Verification;

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
        #[source]
        error: rustls::pki_types::pem::Error,
    },
    /// A PEM file held no certificate (or no private key).
    #[error("{0}: no certificate or key found")]
    Empty(PathBuf),
    /// A self-signed certificate could not be generated (a name it cannot hold).
    #[error("self-signed certificate: {0}")]
    SelfSigned(#[source] rcgen::Error),
    /// rustls refused the configuration (a bad key, a certificate it cannot use).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
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

/// A server configuration from DER values (e.g. from [`self_signed`]).
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

/// A self-signed certificate for `names` (domains or IP addresses; the first is the
/// subject) and its key, for a server that has no certificate of its own: clients
/// reach it with [`Verification::Insecure`] or with the certificate as their CA file.
pub fn self_signed(
    names: &[&str],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let cert = rcgen::generate_simple_self_signed(names).map_err(TlsError::SelfSigned)?;
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    Ok((vec![cert.cert.der().clone()], PrivateKeyDer::Pkcs8(key)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_serves_and_insecure_client_builds() {
        let (chain, key) = self_signed(&["localhost", "127.0.0.1"]).unwrap();
        server_config(chain, key).unwrap();
        client_config(&Verification::Insecure).unwrap();
        client_config(&Verification::WebPki).unwrap();
    }

    #[test]
    fn missing_ca_file_names_the_file() {
        let err = client_config(&Verification::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}

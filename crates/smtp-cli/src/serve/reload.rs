//! SIGHUP: `smtp serve` reads its `--auth-file` and its `--tls-cert` and `--tls-key`
//! again (a renewed certificate goes in without a restart), and logs what changed.
//!
//! Sessions in progress are not dropped: a session takes the users at each AUTH, and a
//! TLS handshake takes the certificate when it starts ([`CertStore`] is the rustls
//! certificate resolver), so only what comes after the reload sees the new files. A
//! reload that fails keeps what was loaded before and logs why. A signal-hook thread
//! catches SIGHUP for both `--io tokio` and `--io blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

use super::session::Shared;
use crate::passwords::PasswordFile;

/// The server's certificate and key, from `--tls-cert` and `--tls-key`, replaced on
/// reload; each handshake takes the one current when it starts.
#[derive(Debug)]
pub(crate) struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads the certificate chain and key; `Err` says what is wrong with them.
    pub(crate) fn load(cert: PathBuf, key: PathBuf) -> Result<CertStore, String> {
        let current = RwLock::new(Arc::new(read(&cert, &key)?));
        Ok(CertStore { cert, key, current })
    }

    /// A server configuration, as `smtp_tls::server_config` makes, whose certificate
    /// comes from this store.
    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let config = rustls::ServerConfig::builder_with_provider(smtp_tokio::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(Arc::new(config))
    }

    fn get(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the files again; the new certificate is served from the next handshake on.
    /// Logs what changed, or why nothing did.
    fn reload(&self) {
        let old = fingerprint(&self.get());
        match read(&self.cert, &self.key) {
            Ok(new) => {
                let fp = fingerprint(&new);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
                if fp == old {
                    info!(cert = %self.cert.display(), "TLS certificate unchanged: sha256 {fp}");
                } else {
                    info!(
                        cert = %self.cert.display(),
                        "reloaded TLS certificate: sha256 {fp} (was {old})"
                    );
                }
            }
            Err(e) => error!(
                cert = %self.cert.display(),
                "TLS certificate reload failed, still serving sha256 {old}: {e}"
            ),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// A PEM certificate chain and its PEM private key (PKCS#8, PKCS#1 or SEC1), which must
/// belong together.
fn read(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate or key found", cert.display()));
    }
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("{}: no certificate or key found", key.display())
        }
        e => format!("{}: {e}", key.display()),
    })?;
    let provider: Arc<CryptoProvider> = smtp_tokio::tls::provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            format!("{}: not the key of {}", key_path.display(), cert.display())
        }
        e => format!("tls: {e}"),
    })
}

/// The SHA-256 of the end-entity certificate, `AB:CD:...`, as `openssl x509
/// -fingerprint -sha256` prints it.
fn fingerprint(key: &CertifiedKey) -> String {
    let der = key.cert.first().map_or(&[][..], |c| c.as_ref());
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// What SIGHUP reloads: only the files that were given.
pub(super) struct Reload {
    /// The `--auth-file`, and the policy that holds its users.
    auth: Option<(PathBuf, Arc<Shared>)>,
    /// The certificate and key from `--tls-cert` and `--tls-key`.
    tls: Option<Arc<CertStore>>,
}

impl Reload {
    /// Reloads `auth_file` into `shared`'s policy and `tls`'s files, when given.
    pub(super) fn new(
        auth_file: Option<PathBuf>,
        shared: &Arc<Shared>,
        tls: Option<Arc<CertStore>>,
    ) -> Reload {
        Reload {
            auth: auth_file.map(|path| (path, Arc::clone(shared))),
            tls,
        }
    }

    fn reload(&self) {
        if self.auth.is_none() && self.tls.is_none() {
            info!("SIGHUP: nothing to reload (no --auth-file, no --tls-cert)");
            return;
        }
        info!("SIGHUP: reloading");
        if let Some((path, shared)) = &self.auth {
            reload_users(path, shared);
        }
        if let Some(tls) = &self.tls {
            tls.reload();
        }
    }
}

/// Reads the auth file again; its users answer the next AUTH of every session.
fn reload_users(path: &Path, shared: &Shared) {
    let policy = &shared.policy;
    let was = policy.users();
    match PasswordFile::load(path) {
        Ok(users) => {
            if users.any_clear() != was.any_clear() {
                // The EHLO keywords are fixed at start (RFC 2195 §2: CRAM-MD5 needs the
                // password in clear).
                warn!(
                    "--auth-file: CRAM-MD5 is {} until a restart, though passwords in clear \
                     text are now {}",
                    if was.any_clear() {
                        "offered"
                    } else {
                        "not offered"
                    },
                    if users.any_clear() { "there" } else { "gone" }
                );
            }
            super::warn_weak_passwords(&users);
            let (now, before) = (users.len(), was.len());
            policy.set_users(users);
            info!(auth_file = %path.display(), "reloaded auth file: {now} users (was {before})");
        }
        Err(e) => error!(
            auth_file = %path.display(),
            "auth file reload failed, keeping its {} users: {e}",
            was.len()
        ),
    }
}

/// Starts the thread that reloads on SIGHUP; the handler is in place when this returns.
pub(super) fn on_sighup(reload: Reload) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP])?;
    std::thread::Builder::new()
        .name("smtp-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                reload.reload();
            }
        })?;
    Ok(())
}

//! rustls configurations for both sides: [`smtp_tls`], the one implementation the
//! blocking adapter re-exports too. The `ring` provider is chosen explicitly; client
//! configurations check certificates against the webpki roots, a CA file, or — only when
//! asked by name — nothing; server ones come from PEM files or a self-signed certificate.

pub use smtp_tls::{
    TlsError, Verification, client_config, provider, self_signed, server_config,
    server_config_from_pem,
};

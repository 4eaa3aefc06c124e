//! rustls configurations for both sides: [`smtp_tls`], the one implementation the tokio
//! adapter re-exports too (`ring` provider chosen explicitly; client configurations from
//! the webpki roots, a CA file or an explicit insecure mode; server ones from PEM files
//! or a self-signed certificate), and the server's blocking handshake.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::session::ServerStream;

pub use smtp_tls::{
    TlsError, Verification, client_config, provider, self_signed, server_config,
    server_config_from_pem,
};

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

//! Server behaviour every adapter must show, written once against [`Harness`].
//!
//! An adapter's test file includes this module, implements [`Harness`] (start a server
//! with [`server_config`], a handler that calls [`Store`], and the TLS configuration of
//! [`Certs`]) and runs every scenario in [`SCENARIOS`]:
//!
//! ```ignore
//! #[path = "../../smtp-blocking/tests/behaviour/mod.rs"]
//! mod behaviour;
//! ```
//!
//! The client side is the blocking client (any adapter's server must serve it) and, for
//! misbehaving clients, raw sockets. Every server is stopped by its scenario.
#![allow(dead_code, unreachable_pub)]

use std::io::{Cursor, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use smtp_blocking::{Connector, ConnectorBuilder, Verification};
use smtp_proto::client::{
    ClientConfig, DeliveryStatus, Envelope, Recipient, RecipientStatus, StartTls,
};
use smtp_proto::sasl::{ClientCredentials, Credentials, Mechanism};
use smtp_proto::server::ServerConfig;
use smtp_proto::{ForwardPath, Mailbox, Reply, ReversePath};

/// The server's hostname in every scenario.
pub const HOSTNAME: &str = "mx.test";
/// The one account AUTH accepts.
pub const USER: &str = "alice";
/// Its password.
pub const PASSWORD: &str = "secret";

/// How a scenario wants its server.
#[derive(Clone, Debug)]
pub struct Options {
    /// STARTTLS on the plain listener, and an implicit-TLS listener beside it.
    pub tls: bool,
    /// Offer AUTH PLAIN LOGIN CRAM-MD5 ([`USER`], [`PASSWORD`]).
    pub auth: bool,
    /// The command timeout, when not the default.
    pub command_timeout: Option<Duration>,
    /// The connection limit, when not the default.
    pub max_connections: Option<usize>,
    /// How long sessions may go on after shutdown starts.
    pub shutdown_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: false,
            auth: false,
            command_timeout: None,
            max_connections: None,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// The session configuration for `options` (the adapter turns STARTTLS on when it has
/// TLS).
pub fn server_config(options: &Options) -> ServerConfig {
    let mut config = ServerConfig::new(HOSTNAME).unwrap();
    if options.auth {
        config.extensions.auth = vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()];
    }
    if let Some(t) = options.command_timeout {
        config.timeouts.command = t;
        config.timeouts.data_block = t;
    }
    config
}

/// Starts servers for the scenarios.
pub trait Harness {
    /// Starts a server on 127.0.0.1 port 0 (and a second, implicit-TLS listener when
    /// `options.tls`), with TLS from [`Certs::server_tls`].
    fn start(&self, options: Options, certs: &Certs) -> Box<dyn Running>;
}

/// A started server.
pub trait Running {
    /// The plain listener.
    fn addr(&self) -> SocketAddr;
    /// The implicit-TLS listener.
    fn tls_addr(&self) -> Option<SocketAddr>;
    /// What the handlers saw.
    fn store(&self) -> Arc<Store>;
    /// Starts the graceful shutdown and returns at once.
    fn begin_shutdown(&self);
    /// Blocks until the server has stopped (starting the shutdown if needed).
    fn stop(self: Box<Self>);
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The reverse-path.
    pub from: String,
    /// The accepted recipients.
    pub to: Vec<String>,
    /// The body as received, dot-unstuffed.
    pub body: Vec<u8>,
    /// The session was under TLS.
    pub tls: bool,
    /// The authenticated user.
    pub auth: Option<String>,
}

/// What every adapter's handler does, so that scenarios can check it: refuse the
/// recipient `nobody@...` (550 5.1.1), accept [`USER`]/[`PASSWORD`], store messages, count
/// aborts.
#[derive(Debug, Default)]
pub struct Store {
    messages: Mutex<Vec<Stored>>,
    aborted: AtomicUsize,
}

impl Store {
    /// RCPT policy.
    pub fn rcpt(&self, to: &ForwardPath<'_>) -> Result<(), Reply> {
        match to.mailbox() {
            Some(m) if m.local_part() == "nobody" => {
                Err(Reply::fixed(550, Some((5, 1, 1)), "No such user"))
            }
            _ => Ok(()),
        }
    }

    /// AUTH policy.
    pub fn auth(&self, credentials: &Credentials) -> Result<(), Reply> {
        if credentials.identity() == Some(USER) && credentials.verify(PASSWORD) {
            Ok(())
        } else {
            Err(Reply::fixed(
                535,
                Some((5, 7, 8)),
                "Authentication credentials invalid",
            ))
        }
    }

    /// A message was stored (call before accepting it).
    pub fn store(&self, message: Stored) {
        self.messages.lock().unwrap().push(message);
    }

    /// A message was aborted.
    pub fn abort(&self) {
        self.aborted.fetch_add(1, Ordering::SeqCst);
    }

    /// The stored messages.
    pub fn messages(&self) -> Vec<Stored> {
        self.messages.lock().unwrap().clone()
    }

    /// Aborted messages.
    pub fn aborted(&self) -> usize {
        self.aborted.load(Ordering::SeqCst)
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, and its PEM file for the
/// client's [`Verification::CaFile`].
pub struct Certs {
    dir: PathBuf,
    /// The certificate, PEM.
    pub ca_file: PathBuf,
    /// The key, PEM.
    pub key_file: PathBuf,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Certs {
    /// Generates the certificate and writes its files into a fresh directory.
    pub fn new() -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "smtp-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&ca_file, ck.cert.pem()).unwrap();
        std::fs::write(&key_file, ck.signing_key.serialize_pem()).unwrap();
        Certs {
            dir,
            ca_file,
            key_file,
            cert: ck.cert.der().clone(),
            key: ck.signing_key.serialize_der(),
        }
    }

    /// The server's rustls configuration.
    pub fn server_tls(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        smtp_blocking::tls::server_config(vec![self.cert.clone()], key).unwrap()
    }

    /// A client that trusts this certificate only.
    pub fn connector(&self, config: ClientConfig) -> ConnectorBuilder {
        Connector::builder(config)
            .verification(Verification::CaFile(self.ca_file.clone()))
            .server_name("localhost")
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// A mailbox.
pub fn mailbox(s: &str) -> Mailbox<'static> {
    Mailbox::parse(s).unwrap().into_owned()
}

/// An envelope from `from` to `to`.
pub fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(
        ReversePath::Mailbox(mailbox(from)),
        to.iter()
            .map(|t| Recipient::new(ForwardPath::Mailbox(mailbox(t))))
            .collect(),
    )
}

/// A client configuration with short timeouts.
pub fn client_config(starttls: StartTls) -> ClientConfig {
    let mut config = ClientConfig::new("client.test").unwrap();
    config.starttls = starttls;
    config.timeouts = Duration::from_secs(10).into();
    config
}

/// Waits (polling) until `f` holds, for at most five seconds.
pub fn eventually(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A raw client: lines out, replies in.
pub struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects.
    pub fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &str) {
        self.tcp.write_all(bytes.as_bytes()).unwrap();
    }

    /// Reads one whole reply (all its lines); `None` at end of input.
    pub fn reply(&mut self) -> Option<String> {
        loop {
            if let Some(end) = reply_end(&self.buf) {
                let reply: Vec<u8> = self.buf.drain(..end).collect();
                return Some(String::from_utf8_lossy(&reply).into_owned());
            }
            let mut chunk = [0u8; 4096];
            match self.tcp.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads a reply and checks that it starts with `prefix`.
    pub fn expect(&mut self, prefix: &str) -> String {
        let reply = self.reply().unwrap_or_default();
        assert!(
            reply.starts_with(prefix),
            "expected {prefix:?}, got {reply:?}"
        );
        reply
    }

    /// Whether the server closed the connection (end of input, or a reset).
    pub fn closed(&mut self) -> bool {
        self.reply().is_none()
    }

    /// Closes abruptly.
    pub fn drop_connection(self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

/// The end of the first complete reply in `buf` (the line with a space after the code).
fn reply_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl + 1];
        start += nl + 1;
        if line.len() >= 4 && line[3] == b' ' {
            return Some(start);
        }
    }
    None
}

// ---- scenarios -------------------------------------------------------------------------

/// A scenario: runs against any adapter's [`Harness`].
pub type Scenario = fn(&dyn Harness);

/// Every scenario, by name.
pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("plain_end_to_end", plain_end_to_end),
    ("starttls", starttls),
    ("implicit_tls", implicit_tls),
    ("auth_plain_over_tls", auth_plain_over_tls),
    ("command_timeout", command_timeout),
    ("client_disappears_mid_data", client_disappears_mid_data),
    ("connection_limit", connection_limit),
    (
        "shutdown_lets_sessions_finish",
        shutdown_lets_sessions_finish,
    ),
    (
        "shutdown_closes_idle_sessions",
        shutdown_closes_idle_sessions,
    ),
    ("starttls_injection_refused", starttls_injection_refused),
];

/// Several messages on one connection, per-recipient results, dot-stuffing both ways.
pub fn plain_end_to_end(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(Options::default(), &certs);
    let connector = Connector::builder(client_config(StartTls::Never))
        .build()
        .unwrap();
    let mut conn = connector.connect(&server.addr().to_string()).unwrap();
    assert!(!conn.is_tls());
    assert!(
        conn.greeting()
            .unwrap()
            .to_string()
            .starts_with("220 mx.test")
    );
    let body = b"Subject: one\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n".to_vec();
    let first = conn
        .send(
            envelope(
                "alice@example.org",
                &["bob@example.org", "nobody@example.org"],
            ),
            Cursor::new(body.clone()),
        )
        .unwrap();
    assert_eq!(first.status, DeliveryStatus::Partial);
    assert_eq!(first.recipients[0].status, RecipientStatus::Accepted);
    assert_eq!(first.recipients[1].status, RecipientStatus::Permanent);
    assert_eq!(
        first.recipients[1].reply.as_ref().unwrap().code().get(),
        550
    );
    for i in 0..5 {
        let b = format!("Subject: {i}\r\n\r\nbody {i}\r\n");
        let o = conn
            .send(
                envelope("alice@example.org", &["carol@example.org"]),
                b.as_bytes(),
            )
            .unwrap();
        assert_eq!(o.status, DeliveryStatus::Sent, "{o:?}");
    }
    let refused = conn
        .send(
            envelope("alice@example.org", &["nobody@example.org"]),
            &b"x\r\n"[..],
        )
        .unwrap();
    assert_eq!(refused.status, DeliveryStatus::Permanent);
    conn.quit().unwrap();
    let stored = server.store().messages();
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[0].body, body);
    assert_eq!(stored[0].to, vec!["<bob@example.org>".to_string()]);
    assert_eq!(stored[0].from, "<alice@example.org>");
    assert!(!stored[0].tls);
    server.stop();
}

/// STARTTLS, verified against the test CA; the session starts over under TLS.
pub fn starttls(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            tls: true,
            ..Options::default()
        },
        &certs,
    );
    let mut conn = certs
        .connector(client_config(StartTls::Required))
        .build()
        .unwrap()
        .connect(&server.addr().to_string())
        .unwrap();
    assert!(conn.is_tls());
    let o = conn
        .send(
            envelope("a@example.org", &["b@example.org"]),
            &b"Subject: tls\r\n\r\nhi\r\n"[..],
        )
        .unwrap();
    assert_eq!(o.status, DeliveryStatus::Sent);
    conn.quit().unwrap();
    // A client that does not trust the certificate fails the handshake.
    let err = Connector::builder(client_config(StartTls::Required))
        .build()
        .unwrap()
        .connect(&server.addr().to_string())
        .unwrap_err();
    assert!(matches!(err, smtp_blocking::Error::Tls(_)), "{err:?}");
    let stored = server.store().messages();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].tls);
    server.stop();
}

/// TLS from the first byte (RFC 8314).
pub fn implicit_tls(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            tls: true,
            ..Options::default()
        },
        &certs,
    );
    let addr = server.tls_addr().unwrap();
    let mut conn = certs
        .connector(client_config(StartTls::Never))
        .implicit_tls(true)
        .build()
        .unwrap()
        .connect(&addr.to_string())
        .unwrap();
    assert!(conn.is_tls());
    assert!(conn.tls_info().is_some());
    // No STARTTLS offered under TLS.
    assert!(!conn.capabilities().unwrap().starttls);
    let o = conn
        .send(
            envelope("a@example.org", &["b@example.org"]),
            &b"hi\r\n"[..],
        )
        .unwrap();
    assert_eq!(o.status, DeliveryStatus::Sent);
    conn.quit().unwrap();
    assert!(server.store().messages()[0].tls);
    server.stop();
}

/// AUTH PLAIN after STARTTLS; a wrong password is refused.
pub fn auth_plain_over_tls(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            tls: true,
            auth: true,
            ..Options::default()
        },
        &certs,
    );
    let mut config = client_config(StartTls::Required);
    config.credentials = Some(ClientCredentials::password(USER, PASSWORD));
    config.mechanism = Some(Mechanism::Plain);
    let mut conn = certs
        .connector(config.clone())
        .build()
        .unwrap()
        .connect(&server.addr().to_string())
        .unwrap();
    assert_eq!(conn.authenticated(), Some(&Mechanism::Plain));
    let o = conn
        .send(
            envelope("a@example.org", &["b@example.org"]),
            &b"hi\r\n"[..],
        )
        .unwrap();
    assert_eq!(o.status, DeliveryStatus::Sent);
    conn.quit().unwrap();
    assert_eq!(server.store().messages()[0].auth.as_deref(), Some(USER));

    config.credentials = Some(ClientCredentials::password(USER, "wrong"));
    let err = certs
        .connector(config)
        .build()
        .unwrap()
        .connect(&server.addr().to_string())
        .unwrap_err();
    let smtp_blocking::Error::Session(smtp_proto::client::ClientError::AuthFailed(r)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(r.code().get(), 535);
    server.stop();
}

/// A silent client gets `421 4.4.2` after the command timeout, and the connection closes.
pub fn command_timeout(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            command_timeout: Some(Duration::from_secs(1)),
            ..Options::default()
        },
        &certs,
    );
    let mut raw = Raw::connect(server.addr());
    raw.expect("220 ");
    raw.send("EHLO client.test\r\n");
    raw.expect("250");
    let start = Instant::now();
    let reply = raw.expect("421 4.4.2 mx.test");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?} {reply}"
    );
    assert!(raw.closed());
    server.stop();
}

/// A client that vanishes in the middle of DATA: the handler hears `message_aborted` and
/// nothing is stored.
pub fn client_disappears_mid_data(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(Options::default(), &certs);
    let mut raw = Raw::connect(server.addr());
    raw.expect("220 ");
    raw.send("EHLO client.test\r\n");
    raw.expect("250");
    raw.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    raw.expect("250");
    raw.expect("250");
    raw.expect("354");
    raw.send("Subject: cut\r\n\r\nhalf a mess");
    raw.drop_connection();
    let store = server.store();
    eventually("message_aborted", || store.aborted() == 1);
    assert!(store.messages().is_empty());
    server.stop();
}

/// Over the connection limit: `421 4.3.2` and close; a slot freed is usable again.
pub fn connection_limit(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            max_connections: Some(1),
            ..Options::default()
        },
        &certs,
    );
    let mut first = Raw::connect(server.addr());
    first.expect("220 mx.test");
    let mut second = Raw::connect(server.addr());
    second.expect("421 4.3.2 mx.test");
    assert!(second.closed());
    first.send("QUIT\r\n");
    first.expect("221");
    assert!(first.closed());
    // The slot is given back when the first session's thread ends.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let mut third = Raw::connect(server.addr());
        let reply = third.reply().unwrap_or_default();
        if reply.starts_with("220 ") {
            third.send("QUIT\r\n");
            third.expect("221");
            break;
        }
        assert!(Instant::now() < until, "slot never freed: {reply}");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
}

/// After shutdown starts, no new session is served, and one in progress may finish its
/// message within the grace period, then gets `421 4.3.2`; the server then stops.
pub fn shutdown_lets_sessions_finish(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            shutdown_timeout: Duration::from_secs(10),
            ..Options::default()
        },
        &certs,
    );
    let addr = server.addr();
    let store = server.store();
    let mut raw = Raw::connect(addr);
    raw.expect("220 ");
    raw.send("EHLO client.test\r\n");
    raw.expect("250");
    raw.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    raw.expect("250");
    raw.expect("250");
    raw.expect("354");
    server.begin_shutdown();
    // New connections are no longer served (refused, or closed without a greeting).
    eventually("the listener to close", || match TcpStream::connect(addr) {
        Err(_) => true,
        Ok(tcp) => {
            let mut raw = Raw {
                tcp,
                buf: Vec::new(),
            };
            raw.tcp
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            raw.reply().is_none()
        }
    });
    raw.send("Subject: last\r\n\r\nmade it\r\n.\r\n");
    raw.expect("250");
    // The transaction is over: no new one, the machine closes with 421 at once.
    raw.expect("421 4.3.2 ");
    assert!(raw.closed());
    let start = Instant::now();
    server.stop();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(store.messages().len(), 1);
    assert_eq!(
        store.messages()[0].body,
        b"Subject: last\r\n\r\nmade it\r\n"
    );
}

/// Sessions still open when the grace period ends get `421 4.3.2` from their machine.
pub fn shutdown_closes_idle_sessions(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            shutdown_timeout: Duration::from_millis(300),
            ..Options::default()
        },
        &certs,
    );
    let store = server.store();
    let mut idle = Raw::connect(server.addr());
    idle.expect("220 ");
    let mut busy = Raw::connect(server.addr());
    busy.expect("220 ");
    busy.send("EHLO client.test\r\n");
    busy.expect("250");
    busy.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    busy.expect("250");
    busy.expect("250");
    busy.expect("354");
    busy.send("Subject: never finished\r\n");
    let start = Instant::now();
    server.begin_shutdown();
    idle.expect("421 4.3.2 mx.test");
    assert!(idle.closed());
    busy.expect("421 4.3.2 mx.test");
    assert!(busy.closed());
    assert!(start.elapsed() >= Duration::from_millis(250));
    server.stop();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(store.aborted(), 1);
    assert!(store.messages().is_empty());
}

/// Commands pipelined after STARTTLS are never processed (CVE-2011-0411).
pub fn starttls_injection_refused(h: &dyn Harness) {
    let certs = Certs::new();
    let server = h.start(
        Options {
            tls: true,
            ..Options::default()
        },
        &certs,
    );
    let mut raw = Raw::connect(server.addr());
    raw.expect("220 ");
    raw.send("EHLO client.test\r\n");
    let ehlo = raw.expect("250");
    assert!(ehlo.contains("STARTTLS"));
    raw.send("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n");
    raw.expect("554 5.5.0");
    assert!(raw.closed());
    server.stop();
}

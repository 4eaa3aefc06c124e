//! The client: a [`Connector`] opens [`Connection`]s, each a loop around
//! [`smtp_proto::client::Client::poll_output`] on a blocking socket.
//!
//! ```no_run
//! use std::io::Cursor;
//! use smtp_blocking::{Connector, Verification};
//! use smtp_proto::client::{ClientConfig, Envelope, Recipient};
//! use smtp_proto::{ForwardPath, Mailbox, ReversePath};
//!
//! let config = ClientConfig::new("client.example.org").unwrap();
//! let connector = Connector::new(config).verification(&Verification::WebPki).unwrap();
//! let mut conn = connector.connect("mx.example.org:25").unwrap();
//! let to = Mailbox::parse("bob@example.org").unwrap().into_owned();
//! let from = Mailbox::parse("alice@example.org").unwrap().into_owned();
//! let envelope = Envelope::new(
//!     ReversePath::Mailbox(from),
//!     vec![Recipient::new(ForwardPath::Mailbox(to))],
//! );
//! let body = Cursor::new(b"Subject: hi\r\n\r\nHello.\r\n".to_vec());
//! let outcome = conn.send(envelope, body).unwrap();
//! println!("{:?}", outcome.status);
//! conn.quit().unwrap();
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use smtp_proto::client::{
    Client, ClientConfig, ClientError, ClientEvent, ClientOutput, Envelope, MessageOutcome,
    StartTls, UsageError,
};
use smtp_proto::sasl::Mechanism;
use smtp_proto::{Capabilities, Reply};

use crate::stream::{READ_CHUNK, ReadResult, Stream};
use crate::tls::{TlsError, Verification, client_config};

/// A client-side connection, plain or upgraded.
type ClientStream = Stream<rustls::ClientConnection>;

/// Default size of the pieces a body is read and sent in.
pub const DEFAULT_BODY_CHUNK: usize = 64 * 1024;

/// Why a connection or a message failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server address is not `HOST:PORT`, or did not resolve.
    #[error("cannot resolve {server}: {error}")]
    Resolve {
        /// What was asked for.
        server: String,
        /// Why.
        error: io::Error,
    },
    /// No address of the server accepted the connection in time.
    #[error("cannot connect to {server}: {error}")]
    Connect {
        /// What was asked for.
        server: String,
        /// The last address's error.
        error: io::Error,
    },
    /// The server's name cannot be a TLS server name.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// The TLS handshake failed (certificate refused, protocol error, timeout).
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    /// Reading from or writing to the server failed.
    #[error("connection: {0}")]
    Io(io::Error),
    /// The SMTP session failed (greeting, EHLO, STARTTLS, AUTH refused, 421, timeout,
    /// malformed or injected replies).
    #[error(transparent)]
    Session(#[from] ClientError),
    /// The machine refused a call (the session is closed).
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Reading the message body failed; the message was abandoned without its final dot
    /// and the connection closed, so the server discarded what it got.
    #[error("reading the message body: {0}")]
    Body(io::Error),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}

/// A callback for the protocol transcript (`C: `/`S: ` lines, AUTH payloads redacted).
pub type Transcript = Arc<dyn Fn(&str) + Send + Sync>;

/// Opens client connections with one configuration; cheap to clone, so that several
/// threads can open connections of their own.
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    implicit_tls: bool,
    server_name: Option<String>,
    connect_timeout: Duration,
    write_timeout: Option<Duration>,
    body_chunk: usize,
    transcript: Option<Transcript>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("implicit_tls", &self.implicit_tls)
            .field("server_name", &self.server_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("body_chunk", &self.body_chunk)
            .field("transcript", &self.transcript.is_some())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `config` (EHLO name, STARTTLS policy, credentials, mechanism,
    /// timeouts). Certificates are checked against the webpki roots unless
    /// [`Connector::verification`] or [`Connector::tls`] says otherwise; the connect
    /// timeout is the greeting timeout.
    pub fn new(config: ClientConfig) -> Connector {
        let connect_timeout = config.timeouts.greeting;
        Connector {
            config: Arc::new(config),
            tls: None,
            implicit_tls: false,
            server_name: None,
            connect_timeout,
            write_timeout: None,
            body_chunk: DEFAULT_BODY_CHUNK,
            transcript: None,
        }
    }

    /// How to check the server's certificate (webpki roots, a CA file, or insecure).
    pub fn verification(mut self, verification: &Verification) -> Result<Self, TlsError> {
        self.tls = Some(client_config(verification)?);
        Ok(self)
    }

    /// A rustls configuration of the caller's own (client certificates, ALPN, ...).
    pub fn tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// TLS from the first byte (RFC 8314, port 465) instead of STARTTLS.
    pub fn implicit_tls(mut self, on: bool) -> Self {
        self.implicit_tls = on;
        self
    }

    /// The name to send in SNI and to check the certificate against; default: the host
    /// part of the server address.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// How long to wait for the TCP connection, per address tried.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest one write may block on a server that does not read; default: no bound
    /// of its own. Every write is bounded by the session's deadline anyway (the reply
    /// waited for, or the body's data-block timeout, RFC 5321 §4.5.3.2.5).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// The size of the pieces a message body is read and sent in (at least 1); default
    /// [`DEFAULT_BODY_CHUNK`]. At most one piece is held in memory.
    pub fn body_chunk(mut self, size: usize) -> Self {
        self.body_chunk = size.max(1);
        self
    }

    /// Calls `hook` with every transcript line (`C: ...`, `S: ...`), for a `-v` mode.
    /// Turns the configuration's `transcript` on.
    pub fn transcript(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        if !self.config.transcript {
            let mut config = (*self.config).clone();
            config.transcript = true;
            self.config = Arc::new(config);
        }
        self.transcript = Some(Arc::new(hook));
        self
    }

    /// The session configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Connects to `server` (`HOST:PORT`, `[IPv6]:PORT`; port 25 when missing), trying
    /// each resolved address in turn, and runs the session until it is ready for a
    /// message: greeting, EHLO, STARTTLS as the policy says, AUTH when credentials are
    /// configured.
    pub fn connect(&self, server: &str) -> Result<Connection, Error> {
        let (host, port) = split_host_port(server);
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|error| Error::Resolve {
                server: server.to_owned(),
                error,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let Some(tcp) = tcp else {
            return Err(Error::Connect {
                server: server.to_owned(),
                error: last,
            });
        };
        let name = self.server_name.as_deref().unwrap_or(host);
        self.start(tcp, name)
    }

    /// Runs the session on a TCP connection the caller opened; `server_name` is for
    /// TLS.
    pub fn start(&self, tcp: TcpStream, server_name: &str) -> Result<Connection, Error> {
        let io = |e| Error::Io(e);
        // Commands are small and already batched per pipelined group (RFC 2920).
        tcp.set_nodelay(true).map_err(io)?;
        let wants_tls = self.implicit_tls || self.config.starttls != StartTls::Never;
        let tls = match (&self.tls, wants_tls) {
            (Some(tls), _) => Some(Arc::clone(tls)),
            (None, true) => Some(client_config(&Verification::WebPki)?),
            (None, false) => None,
        };
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::ServerName(server_name.to_owned()))?;
        let mut conn = Connection {
            machine: Client::new(Arc::clone(&self.config), self.implicit_tls, Instant::now()),
            stream: Stream::Plain(tcp),
            tls,
            server_name,
            transcript: self.transcript.clone(),
            greeting: None,
            outcomes: VecDeque::new(),
            failure: None,
            io_error: None,
            ready: false,
            closed: false,
            broken: false,
            body_chunk: self.body_chunk,
            write_timeout: self.write_timeout,
        };
        if self.implicit_tls {
            // Implicit TLS (RFC 8314): the handshake comes out of the greeting's time.
            let deadline = conn.machine.deadline();
            conn.handshake(deadline).map_err(Error::Tls)?;
        }
        conn.drive(None, Until::Ready)?;
        if conn.ready {
            Ok(conn)
        } else {
            Err(conn.take_error())
        }
    }
}

/// Splits `HOST:PORT`; a bare host gets port 25, a bracketed IPv6 literal loses its
/// brackets.
fn split_host_port(server: &str) -> (&str, u16) {
    if let Some(rest) = server.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port.unwrap_or(25));
        }
    }
    match server.rsplit_once(':') {
        // More than one colon and no brackets: an IPv6 literal without a port.
        Some((host, _)) if host.contains(':') => (server, 25),
        Some((host, port)) => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => (server, 25),
        },
        None => (server, 25),
    }
}

/// What [`Connection::drive`] runs until.
#[derive(Clone, Copy)]
enum Until {
    Ready,
    Message(u64),
    Closed,
}

/// One SMTP session on one connection; send any number of messages, then
/// [`Connection::quit`].
pub struct Connection {
    machine: Client,
    stream: ClientStream,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: ServerName<'static>,
    transcript: Option<Transcript>,
    greeting: Option<Reply>,
    outcomes: VecDeque<MessageOutcome>,
    failure: Option<ClientError>,
    io_error: Option<Error>,
    ready: bool,
    closed: bool,
    /// A write failed: nothing more is written.
    broken: bool,
    body_chunk: usize,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("machine", &self.machine)
            .field("tls", &self.is_tls())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The server's greeting.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The server's capabilities (after TLS, the ones it gave then).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.machine.capabilities()
    }

    /// Whether TLS is active (STARTTLS or implicit).
    pub fn is_tls(&self) -> bool {
        self.machine.is_tls()
    }

    /// The mechanism AUTH succeeded with.
    pub fn authenticated(&self) -> Option<&Mechanism> {
        self.machine.authenticated()
    }

    /// The negotiated TLS version and cipher suite, for logs.
    pub fn tls_info(&self) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
        let conn = self.stream.tls()?;
        Some((
            conn.protocol_version()?,
            conn.negotiated_cipher_suite()?.suite(),
        ))
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.tcp().and_then(|t| t.peer_addr().ok())
    }

    /// Whether the session has ended (QUIT, or a failure).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Why the session failed, once it has.
    pub fn error(&self) -> Option<&ClientError> {
        self.failure.as_ref()
    }

    /// Sends one message, its body read from `body` in pieces (never whole in memory),
    /// and returns its outcome: per recipient and overall, with the server's replies.
    ///
    /// A session that fails during the message still gives the message's outcome
    /// (temporary, or unknown when the final dot went out unanswered); the next call
    /// then returns the failure. A failing `body` abandons the message without its final
    /// dot and closes the connection ([`Error::Body`]).
    pub fn send(
        &mut self,
        envelope: Envelope,
        mut body: impl Read,
    ) -> Result<MessageOutcome, Error> {
        if self.closed {
            return Err(self.take_error());
        }
        let id = self.machine.send_mail(envelope)?;
        self.drive(Some(&mut body as &mut dyn Read), Until::Message(id))?;
        match self.outcomes.iter().position(|o| o.id == id) {
            Some(i) => Ok(self.outcomes.remove(i).unwrap_or_else(|| unreachable!())),
            None => Err(self.take_error()),
        }
    }

    /// Ends the session with QUIT and closes the connection.
    pub fn quit(mut self) -> Result<(), Error> {
        if self.closed {
            return match self.failure.take() {
                Some(f) => Err(Error::Session(f)),
                None => Ok(()),
            };
        }
        self.machine.quit();
        self.drive(None, Until::Closed)?;
        match self.failure.take() {
            Some(f) => Err(Error::Session(f)),
            None => Ok(()),
        }
    }

    fn take_error(&mut self) -> Error {
        if let Some(e) = self.io_error.take() {
            return e;
        }
        match self.failure.clone() {
            Some(f) => Error::Session(f),
            None => Error::Closed,
        }
    }

    fn satisfied(&self, until: Until) -> bool {
        match until {
            Until::Ready => self.ready,
            Until::Message(id) => self.outcomes.iter().any(|o| o.id == id),
            Until::Closed => self.closed,
        }
    }

    /// The loop: write what the machine transmits, handle its events, upgrade when it
    /// asks, and read (bounded by its deadline) when it waits, until `until` holds or
    /// the session closes. Errors here are the body's; everything else is recorded for
    /// [`Connection::take_error`].
    fn drive(&mut self, mut body: Option<&mut dyn Read>, until: Until) -> Result<(), Error> {
        loop {
            let Some(deadline) = self.pump(&mut body)? else {
                return Ok(());
            };
            if self.closed || self.satisfied(until) {
                return Ok(());
            }
            let mut buf = [0u8; READ_CHUNK];
            match self.stream.read(&mut buf, deadline) {
                ReadResult::Data(n) => self.machine.handle_input(&buf[..n], Instant::now()),
                ReadResult::Timeout => self.machine.handle_timeout(Instant::now()),
                ReadResult::Eof => self.machine.handle_eof(Instant::now()),
                ReadResult::Failed(e) => self.lost(Error::Io(e)),
            }
        }
    }

    /// Handles outputs until the machine waits; returns its deadline, or `None` once
    /// closed.
    fn pump(&mut self, body: &mut Option<&mut dyn Read>) -> Result<Option<Option<Instant>>, Error> {
        loop {
            match self.machine.poll_output() {
                ClientOutput::Transmit(bytes) => self.write(&bytes),
                ClientOutput::Event(event) => self.event(event, body)?,
                ClientOutput::StartTls => {
                    // The machine's deadline for the handshake (its TLS timeout).
                    let deadline = self.machine.deadline();
                    match self.handshake(deadline) {
                        Ok(()) => self.machine.handle_tls_established(Instant::now()),
                        Err(e) => self.lost(Error::Tls(e)),
                    }
                }
                ClientOutput::Close => {
                    if !self.broken {
                        self.stream.close(false);
                    }
                    self.closed = true;
                }
                ClientOutput::Wait { deadline } => {
                    return Ok(if self.closed { None } else { Some(deadline) });
                }
            }
        }
    }

    /// Writes what the machine transmitted, within its deadline: a server that stops
    /// reading fails the session with a timeout instead of holding it forever.
    fn write(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let start = Instant::now();
        self.machine.handle_sending(start);
        let deadline = self.machine.deadline();
        // Whether the caller's own write bound comes before the session's deadline.
        let capped = self
            .write_timeout
            .is_some_and(|cap| deadline.is_none_or(|d| start + cap < d));
        let Err(e) = self
            .stream
            .write_all_until(bytes, deadline, self.write_timeout)
        else {
            return;
        };
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        match deadline {
            Some(d) if timed_out && !capped => {
                // The socket may hold half of what was written: nothing more goes out.
                self.broken = true;
                self.machine.handle_timeout(d.max(Instant::now()));
            }
            _ => self.lost(Error::Io(e)),
        }
    }

    /// The connection broke (or TLS failed): remember why, and let the machine end the
    /// session (it reports every unfinished message).
    fn lost(&mut self, error: Error) {
        if self.io_error.is_none() {
            self.io_error = Some(error);
        }
        self.broken = true;
        self.machine.handle_eof(Instant::now());
        // Whatever the machine says next, nothing more goes out.
        self.closed = true;
    }

    fn handshake(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        // The machine always has a deadline for the greeting and the handshake.
        let deadline = deadline
            .unwrap_or_else(|| Instant::now() + self.machine.config().timeouts.tls_handshake);
        let Some(tls) = &self.tls else {
            return Err(io::Error::other("TLS without a TLS configuration"));
        };
        let conn = rustls::ClientConnection::new(Arc::clone(tls), self.server_name.clone())
            .map_err(io::Error::other)?;
        self.stream.upgrade(conn, deadline)
    }

    fn event(&mut self, event: ClientEvent, body: &mut Option<&mut dyn Read>) -> Result<(), Error> {
        match event {
            ClientEvent::Transcript(line) => {
                if let Some(hook) = &self.transcript {
                    hook(&line);
                }
            }
            ClientEvent::Connected(reply) => self.greeting = Some(reply),
            ClientEvent::Ready => self.ready = true,
            ClientEvent::MessageDone(outcome) => self.outcomes.push_back(outcome),
            ClientEvent::Failed(error) => self.failure = Some(error),
            ClientEvent::BodyWanted { .. } => match body.take() {
                Some(reader) => self.send_body(reader)?,
                // Only `send` queues messages, always with a body.
                None => {
                    let _ = self.machine.end_body();
                }
            },
            _ => {}
        }
        Ok(())
    }

    /// Streams the body: one piece read, handed to the machine, and written, at a time.
    fn send_body(&mut self, reader: &mut dyn Read) -> Result<(), Error> {
        let mut buf = vec![0u8; self.body_chunk];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // No final dot may follow a partial body: drop the connection, so the
                    // server discards the message (RFC 5321 §4.1.1.4).
                    if !self.broken {
                        self.stream.close(false);
                    }
                    self.broken = true;
                    self.machine.handle_eof(Instant::now());
                    self.closed = true;
                    let _ = self.pump(&mut None);
                    return Err(Error::Body(e));
                }
            };
            if self.machine.send_body(&buf[..n]).is_err() {
                // The machine refused the body (a line over 998 octets) and ended the
                // session; its outcome says why.
                return Ok(());
            }
            if self.closed {
                return Ok(());
            }
            // Write this piece before reading the next, so memory stays bounded.
            self.pump(&mut None)?;
            if self.closed {
                return Ok(());
            }
        }
        let _ = self.machine.end_body();
        Ok(())
    }
}

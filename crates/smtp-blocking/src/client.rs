//! The client: a [`Connector`] opens [`Connection`]s, each a loop around
//! [`Driver::poll`](smtp_proto::client::host::Driver::poll) on a blocking socket. The
//! builder, its checks and the error type are [`smtp_proto::client::host`]'s, shared with
//! the tokio adapter; this file holds only the sockets, TLS and timers.
//!
//! The example is in the crate docs: this module is private, and its docs are not rendered.

use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use smtp_proto::client::host::{self, Connect, Driver, Setup, Step, Until, Verification};
use smtp_proto::client::{ClientConfig, ClientError, Envelope, MessageOutcome};
use smtp_proto::sasl::Mechanism;
use smtp_proto::{Capabilities, Reply};

use crate::stream::{READ_CHUNK, ReadResult, Stream};

pub use smtp_proto::client::host::{DEFAULT_BODY_CHUNK, Error, Transcript};

/// A client-side connection, plain or upgraded.
type ClientStream = Stream<rustls::ClientConnection>;

/// Configures a [`Connector`]: [`smtp_proto::client::host::Builder`], the same on both
/// adapters.
pub type ConnectorBuilder = host::Builder<Connector>;

/// Opens client connections with one checked configuration; cheap to clone, so that
/// several threads can open connections of their own.
#[derive(Clone, Debug)]
pub struct Connector {
    setup: Setup<Connector>,
}

impl Connect for Connector {
    type Tls = Arc<rustls::ClientConfig>;

    fn tls_config(verification: &Verification) -> Result<Self::Tls, Error> {
        crate::tls::client_config(verification).map_err(Error::tls_config)
    }

    fn start(setup: Setup<Self>) -> Self {
        Connector { setup }
    }
}

impl Connector {
    /// Starts configuring connections for `config` (EHLO name, STARTTLS policy,
    /// credentials, mechanism, timeouts): TLS verification, implicit TLS, server name,
    /// connect and write timeouts, body chunk size and a transcript hook, then
    /// [`build`](host::Builder::build). Certificates are checked against the webpki
    /// roots unless the builder says otherwise.
    ///
    /// ```
    /// use std::time::Duration;
    /// use smtp_proto::client::{ClientConfig, StartTls};
    /// use smtp_proto::sasl::ClientCredentials;
    /// use smtp_blocking::{Connector, Error, Verification};
    ///
    /// let config = ClientConfig::new("client.example.org").unwrap();
    /// let connector = Connector::builder(config.clone())
    ///     .starttls(StartTls::Required)
    ///     .verification(Verification::WebPki)
    ///     .credentials(ClientCredentials::password("alice", "secret"))
    ///     .connect_timeout(Duration::from_secs(30))
    ///     .transcript(|line| eprintln!("{line}"))
    ///     .build()
    ///     .unwrap();
    /// assert!(connector.setup().tls.is_some());
    ///
    /// // A CA file that cannot be read is refused when building, with its cause.
    /// let err = Connector::builder(config)
    ///     .verification(Verification::CaFile("/nonexistent/ca.pem".into()))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::TlsConfig(_)));
    /// assert!(err.to_string().contains("/nonexistent/ca.pem"));
    /// ```
    pub fn builder(config: ClientConfig) -> ConnectorBuilder {
        host::Builder::new(config)
    }

    /// The checked configuration.
    pub fn setup(&self) -> &Setup<Connector> {
        &self.setup
    }

    /// The session configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.setup.config
    }

    /// Connects to `server` (`HOST:PORT`, `[IPv6]:PORT`; port 25 when missing), trying
    /// each resolved address in turn, and runs the session until it is ready for a
    /// message: greeting, EHLO, STARTTLS as the policy says, AUTH when credentials are
    /// configured.
    pub fn connect(&self, server: &str) -> Result<Connection, Error> {
        let target = self.setup.target(server);
        let addrs: Vec<SocketAddr> = (target.host, target.port)
            .to_socket_addrs()
            .map_err(|error| Error::Resolve {
                server: server.to_owned(),
                error: Arc::new(error),
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.setup.connect_timeout) {
                Ok(tcp) => return self.start(tcp, target.server_name),
                Err(e) => last = e,
            }
        }
        Err(Error::Connect {
            server: server.to_owned(),
            error: Arc::new(last),
        })
    }

    /// Runs the session on a TCP connection the caller opened; `server_name` is for
    /// TLS.
    pub fn start(&self, tcp: TcpStream, server_name: &str) -> Result<Connection, Error> {
        // Commands are small and already batched per pipelined group (RFC 2920).
        tcp.set_nodelay(true).map_err(|e| Error::Io(Arc::new(e)))?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::ServerName(server_name.to_owned()))?;
        let mut conn = Connection {
            driver: self.setup.driver(Instant::now()),
            stream: Stream::Plain(tcp),
            tls: self.setup.tls.clone(),
            server_name,
            body_chunk: self.setup.body_chunk,
            write_timeout: self.setup.write_timeout,
        };
        if self.setup.implicit_tls {
            // Implicit TLS (RFC 8314): the handshake comes out of the greeting's time.
            let deadline = conn.driver.implicit_tls_deadline();
            conn.handshake(deadline)
                .map_err(|e| Error::Tls(Arc::new(e)))?;
        }
        conn.drive(None, Until::Ready);
        conn.driver.ready()?;
        Ok(conn)
    }
}

/// One SMTP session on one connection; send any number of messages, then
/// [`Connection::quit`].
pub struct Connection {
    driver: Driver,
    stream: ClientStream,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: ServerName<'static>,
    body_chunk: usize,
    write_timeout: Option<std::time::Duration>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("driver", &self.driver)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The server's greeting.
    pub fn greeting(&self) -> Option<&Reply> {
        self.driver.greeting()
    }

    /// The server's capabilities (after TLS, the ones it gave then).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.driver.client().capabilities()
    }

    /// Whether TLS is active (STARTTLS or implicit).
    pub fn is_tls(&self) -> bool {
        self.driver.client().is_tls()
    }

    /// The mechanism AUTH succeeded with.
    pub fn authenticated(&self) -> Option<&Mechanism> {
        self.driver.client().authenticated()
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
        self.driver.is_closed()
    }

    /// Why the session failed, once it has (a message's outcome may come first, then
    /// the failure: an unsolicited reply, a timeout). The connection's own error, with
    /// an I/O or TLS cause, is what the next call returns.
    pub fn error(&self) -> Option<&ClientError> {
        self.driver.client().error()
    }

    /// Sends one message, its body read from `body` in pieces (never whole in memory),
    /// and returns its outcome: per recipient and overall, with the server's replies.
    ///
    /// A session that fails during the message still gives the message's outcome
    /// (temporary, or unknown when the final dot went out unanswered); the next call
    /// then returns the failure, and so does every call after it. A failing `body`
    /// abandons the message without its final dot and closes the connection
    /// ([`Error::Body`]).
    pub fn send(
        &mut self,
        envelope: Envelope,
        mut body: impl Read,
    ) -> Result<MessageOutcome, Error> {
        let id = self.driver.send_mail(envelope)?;
        self.drive(Some(&mut body as &mut dyn Read), Until::Message(id));
        if let Some(e @ Error::Body(_)) = self.driver.error() {
            return Err(e);
        }
        self.driver.outcome(id)
    }

    /// Ends the session with QUIT and closes the connection; the session's failure, if
    /// it failed.
    pub fn quit(mut self) -> Result<(), Error> {
        if self.driver.quit() {
            self.drive(None, Until::Closed);
        }
        self.driver.quit_result()
    }

    /// The loop: carry out the driver's steps until `until` holds or the session
    /// closes. What goes wrong is recorded in the driver, for its result.
    fn drive(&mut self, mut body: Option<&mut dyn Read>, until: Until) {
        loop {
            match self.driver.poll(until) {
                Step::Transmit(bytes) => self.write(&bytes),
                Step::Body(_) => match body.take() {
                    Some(reader) => self.send_body(reader),
                    // Only `send` queues messages, always with a body.
                    None => self.driver.end_body(),
                },
                Step::StartTls { deadline } => match self.handshake(deadline) {
                    Ok(()) => self.driver.handle_tls_established(Instant::now()),
                    Err(e) => self
                        .driver
                        .handle_broken(Error::Tls(Arc::new(e)), Instant::now()),
                },
                Step::Close => self.stream.close(false),
                Step::Read { deadline } => {
                    let mut buf = [0u8; READ_CHUNK];
                    match self.stream.read(&mut buf, deadline) {
                        ReadResult::Data(n) => self.driver.handle_input(&buf[..n], Instant::now()),
                        ReadResult::Timeout => self.driver.handle_timeout(Instant::now()),
                        ReadResult::Eof => self.driver.handle_eof(Instant::now()),
                        ReadResult::Failed(e) => self
                            .driver
                            .handle_broken(Error::Io(Arc::new(e)), Instant::now()),
                    }
                }
                Step::Done => return,
            }
        }
    }

    /// Writes what the machine transmitted, within its deadline: a server that stops
    /// reading fails the session with a timeout instead of holding it forever.
    fn write(&mut self, bytes: &[u8]) {
        let start = Instant::now();
        self.driver.handle_sending(start);
        let deadline = self.driver.deadline();
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
            Some(d) if timed_out && !capped => self.driver.handle_write_timeout(d, Instant::now()),
            _ => self
                .driver
                .handle_broken(Error::Io(Arc::new(e)), Instant::now()),
        }
    }

    fn handshake(&mut self, deadline: Instant) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            // The builder makes one whenever TLS may be used.
            return Err(io::Error::other("TLS without a TLS configuration"));
        };
        let conn = rustls::ClientConnection::new(Arc::clone(tls), self.server_name.clone())
            .map_err(io::Error::other)?;
        self.stream.upgrade(conn, deadline)
    }

    /// Streams the body: one piece read, handed to the machine, and written, at a time.
    fn send_body(&mut self, reader: &mut dyn Read) {
        let mut buf = vec![0u8; self.body_chunk];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // No final dot may follow a partial body: the machine abandons the
                    // message and closes, so the server discards it (RFC 5321 §4.1.1.4).
                    self.driver.abort_body(e);
                    return;
                }
            };
            if !self.driver.send_body(&buf[..n]) {
                // The machine refused the body (a line over 998 octets) or the session
                // failed meanwhile; the outcome says why.
                return;
            }
            // Write this piece before reading the next, so memory stays bounded.
            if !self.flush_body() {
                return;
            }
        }
        self.driver.end_body();
    }

    /// Writes what the last piece of body produced; `false` when the session ended
    /// meanwhile or something other than bytes came out (a reply: the main loop handles
    /// it, and the next piece is refused if the message failed).
    fn flush_body(&mut self) -> bool {
        loop {
            match self.driver.poll(Until::Closed) {
                Step::Transmit(bytes) => self.write(&bytes),
                Step::Read { .. } => return !self.driver.is_closed(),
                Step::Close => {
                    self.stream.close(false);
                    return false;
                }
                Step::Done => return false,
                Step::StartTls { .. } | Step::Body(_) => return false,
            }
        }
    }
}

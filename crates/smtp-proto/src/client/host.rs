//! What every adapter's client shows its application and does the same way around the
//! machine, whatever runs it (tokio tasks, threads): the builder of a connector
//! ([`Builder`], checked into a [`Setup`] by [`Builder::build`]), how certificates are
//! checked ([`Verification`]), the one error type of both adapters ([`Error`]), and the
//! machine with the state adapters keep beside it ([`Driver`]), whose [`Step`]s are all
//! an adapter's loop has to carry out.
//!
//! Nothing here does I/O: the adapter resolves names, opens sockets, runs TLS and reads
//! the clock; these types only carry and check what it passes in. It mirrors
//! [`crate::server::host`], which does the same for the server side.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    Client, ClientConfig, ClientError, ClientEvent, ClientOutput, Envelope, MessageOutcome,
    StartTls, UsageError,
};
use crate::reply::Reply;
use crate::sasl::ClientCredentials;

/// Default size of the pieces a body is read and sent in.
pub const DEFAULT_BODY_CHUNK: usize = 64 * 1024;

/// A callback for the protocol transcript (`C: `/`S: ` lines, AUTH payloads redacted).
pub type Transcript = Arc<dyn Fn(&str) + Send + Sync>;

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
    /// an active attacker, so it is never a default.
    Insecure,
}

/// Why a connection or a message failed: the same type on every adapter, always with
/// its cause ([`std::error::Error::source`] gives the I/O or TLS error underneath).
///
/// Once a connection has failed, every later call returns the same error again.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server address did not resolve.
    #[error("cannot resolve {server}: {error}")]
    Resolve {
        /// What was asked for.
        server: String,
        /// Why.
        #[source]
        error: Arc<io::Error>,
    },
    /// No address of the server accepted the connection in time.
    #[error("cannot connect to {server}: {error}")]
    Connect {
        /// What was asked for.
        server: String,
        /// The last address's error.
        #[source]
        error: Arc<io::Error>,
    },
    /// The server's name cannot be a TLS server name.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The TLS configuration could not be built (a CA file missing or empty).
    #[error("TLS configuration: {0}")]
    TlsConfig(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The TLS handshake failed (certificate refused, protocol error, timeout).
    #[error("TLS handshake: {0}")]
    Tls(#[source] Arc<io::Error>),
    /// Reading from or writing to the server failed.
    #[error("connection: {0}")]
    Io(#[source] Arc<io::Error>),
    /// Reading the message body failed; the message was abandoned without its final dot
    /// ([`Client::abort_body`]) and the connection closed, so the server discarded what
    /// it got.
    #[error("reading the message body: {0}")]
    Body(#[source] Arc<io::Error>),
    /// The SMTP session failed (greeting, EHLO, STARTTLS, AUTH refused, 421, timeout,
    /// malformed or injected replies).
    #[error(transparent)]
    Session(ClientError),
    /// The machine refused a call (the session was closed by QUIT).
    #[error(transparent)]
    Usage(UsageError),
}

impl Error {
    /// [`Error::TlsConfig`] from the adapter's TLS error.
    pub fn tls_config(error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::TlsConfig(Arc::new(error))
    }

    /// [`Error::Resolve`]: `server`'s name did not resolve.
    pub fn resolve(server: &str, error: io::Error) -> Error {
        let server = server.to_owned();
        Error::Resolve {
            server,
            error: Arc::new(error),
        }
    }

    /// [`Error::Connect`]: no address of `server` took the connection (`error` is the
    /// last address's).
    pub fn connect(server: &str, error: io::Error) -> Error {
        let server = server.to_owned();
        Error::Connect {
            server,
            error: Arc::new(error),
        }
    }

    /// The session's failure, if that is what this is: its reply, whether it is
    /// permanent ([`ClientError::is_permanent`]).
    pub fn session(&self) -> Option<&ClientError> {
        match self {
            Error::Session(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Error {
        Error::Session(error)
    }
}

impl From<UsageError> for Error {
    /// A sticky failure ([`UsageError::Failed`]) is the session's error again.
    fn from(error: UsageError) -> Error {
        match error {
            UsageError::Failed(e) => Error::Session(e),
            e => Error::Usage(e),
        }
    }
}

/// An adapter's connector, as the [`Builder`] sees it: what its TLS configuration is,
/// how to build one, and how to start from a checked [`Setup`].
pub trait Connect: Sized {
    /// The TLS client configuration (rustls').
    type Tls: Clone;

    /// Builds the TLS configuration that checks certificates as `verification` says
    /// ([`Error::TlsConfig`] when it cannot).
    fn tls_config(verification: &Verification) -> Result<Self::Tls, Error>;

    /// The connector, from a configuration that [`Builder::build`] checked.
    fn start(setup: Setup<Self>) -> Self;
}

/// A checked client configuration, for [`Connect::start`]: everything a connection
/// needs besides the server's address.
pub struct Setup<C: Connect> {
    /// The session configuration (transcript on exactly when there is a hook).
    pub config: Arc<ClientConfig>,
    /// TLS, present whenever it may be used (implicit, or STARTTLS not `Never`).
    pub tls: Option<C::Tls>,
    /// TLS from the first byte (RFC 8314, port 465) instead of STARTTLS.
    pub implicit_tls: bool,
    /// The name for SNI and the certificate; `None`: the host part of the address.
    pub server_name: Option<String>,
    /// How long to wait for the TCP connection, per address tried.
    pub connect_timeout: Duration,
    /// The longest one write may block, besides the session's own deadline.
    pub write_timeout: Option<Duration>,
    /// The size of the pieces a body is read and sent in (at least 1).
    pub body_chunk: usize,
    /// The transcript hook.
    pub transcript: Option<Transcript>,
}

impl<C: Connect> Clone for Setup<C> {
    fn clone(&self) -> Self {
        Setup {
            config: Arc::clone(&self.config),
            tls: self.tls.clone(),
            implicit_tls: self.implicit_tls,
            server_name: self.server_name.clone(),
            connect_timeout: self.connect_timeout,
            write_timeout: self.write_timeout,
            body_chunk: self.body_chunk,
            transcript: self.transcript.clone(),
        }
    }
}

impl<C: Connect> fmt::Debug for Setup<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("implicit_tls", &self.implicit_tls)
            .field("server_name", &self.server_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("body_chunk", &self.body_chunk)
            .field("transcript", &self.transcript.is_some())
            .finish()
    }
}

impl<C: Connect> Setup<C> {
    /// Where to connect for `server` (`HOST:PORT`, `[IPv6]:PORT`, `HOST` for port 25),
    /// and the TLS server name: the configured one, or the host.
    pub fn target<'a>(&'a self, server: &'a str) -> Target<'a> {
        let (host, port) = split_host_port(server);
        Target {
            host,
            port,
            server_name: self.server_name.as_deref().unwrap_or(host),
        }
    }

    /// The machine and its bookkeeping for a new connection, started at `now`.
    pub fn driver(&self, now: Instant) -> Driver {
        Driver::new(
            Arc::clone(&self.config),
            self.implicit_tls,
            self.transcript.clone(),
            now,
        )
    }
}

/// Where a connection goes, from [`Setup::target`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The host to resolve (brackets of an IPv6 literal removed).
    pub host: &'a str,
    /// The port (25 when the address has none).
    pub port: u16,
    /// The name for SNI and the certificate check.
    pub server_name: &'a str,
}

/// Splits `HOST:PORT`; a bare host gets port 25, a bracketed IPv6 literal loses its
/// brackets.
pub fn split_host_port(server: &str) -> (&str, u16) {
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

/// Configures an adapter's connector (`C`, e.g. `smtp_tokio::Connector`); the adapter's
/// `Connector::builder` starts one. Certificates are checked against the webpki roots
/// unless [`Builder::verification`] or [`Builder::tls`] says otherwise.
///
/// One switch per concern: TLS policy ([`starttls`](Builder::starttls),
/// [`implicit_tls`](Builder::implicit_tls), [`verification`](Builder::verification) or
/// [`tls`](Builder::tls), [`server_name`](Builder::server_name), which defaults to the
/// host of the address), [`timeouts`](Builder::timeouts),
/// [`connect_timeout`](Builder::connect_timeout),
/// [`write_timeout`](Builder::write_timeout), [`credentials`](Builder::credentials),
/// [`transcript`](Builder::transcript), [`body_chunk`](Builder::body_chunk); then
/// [`build`](Builder::build). The adapters' `Connector::builder` documentation has a
/// runnable example.
pub struct Builder<C: Connect> {
    config: ClientConfig,
    tls: Option<C::Tls>,
    verification: Option<Verification>,
    implicit_tls: bool,
    server_name: Option<String>,
    connect_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    body_chunk: usize,
    transcript: Option<Transcript>,
}

impl<C: Connect> fmt::Debug for Builder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("verification", &self.verification)
            .field("implicit_tls", &self.implicit_tls)
            .field("server_name", &self.server_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("body_chunk", &self.body_chunk)
            .field("transcript", &self.transcript.is_some())
            .finish()
    }
}

impl<C: Connect> Builder<C> {
    /// Starts from `config` (EHLO name, STARTTLS policy, credentials, mechanism,
    /// timeouts).
    pub fn new(config: ClientConfig) -> Self {
        Builder {
            config,
            tls: None,
            verification: None,
            implicit_tls: false,
            server_name: None,
            connect_timeout: None,
            write_timeout: None,
            body_chunk: DEFAULT_BODY_CHUNK,
            transcript: None,
        }
    }

    /// How to check the server's certificate; default [`Verification::WebPki`].
    pub fn verification(mut self, verification: Verification) -> Self {
        self.verification = Some(verification);
        self
    }

    /// A TLS configuration of the caller's own (client certificates, ALPN, ...); it
    /// wins over [`Builder::verification`].
    pub fn tls(mut self, tls: C::Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// When to use STARTTLS (RFC 3207); default [`StartTls::Opportunistic`].
    pub fn starttls(mut self, policy: StartTls) -> Self {
        self.config.starttls = policy;
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

    /// Credentials for AUTH (RFC 4954), sent once the connection is secure (or at once
    /// with [`ClientConfig::allow_cleartext_auth`]).
    pub fn credentials(mut self, credentials: ClientCredentials) -> Self {
        self.config.credentials = Some(credentials);
        self
    }

    /// Every session timeout ([`ClientConfig::timeouts`]) at once.
    pub fn timeouts(mut self, timeouts: super::ClientTimeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// How long to wait for the TCP connection, per address tried; default: the
    /// greeting timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
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

    /// Calls `hook` with every transcript line (`C: ...`, `S: ...`, AUTH redacted), for
    /// a `-v` mode. Turns the configuration's `transcript` on.
    pub fn transcript(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.config.transcript = true;
        self.transcript = Some(Arc::new(hook));
        self
    }

    /// Checks the configuration and builds the connector: the TLS configuration is made
    /// here (webpki roots by default) whenever TLS may be used, so that a server offering
    /// STARTTLS is never met without one.
    pub fn build(self) -> Result<C, Error> {
        let wants_tls = self.implicit_tls || self.config.starttls != StartTls::Never;
        let tls = match (self.tls, &self.verification) {
            (Some(tls), _) => Some(tls),
            (None, Some(v)) => Some(C::tls_config(v)?),
            (None, None) if wants_tls => Some(C::tls_config(&Verification::WebPki)?),
            (None, None) => None,
        };
        let connect_timeout = self
            .connect_timeout
            .unwrap_or(self.config.timeouts.greeting);
        Ok(C::start(Setup {
            config: Arc::new(self.config),
            tls,
            implicit_tls: self.implicit_tls,
            server_name: self.server_name,
            connect_timeout,
            write_timeout: self.write_timeout,
            body_chunk: self.body_chunk.max(1),
            transcript: self.transcript,
        }))
    }
}

/// What [`Driver::poll`] runs until.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// The session is ready for a message (greeting, EHLO, STARTTLS, AUTH done).
    Ready,
    /// This message has its outcome.
    Message(u64),
    /// The session has closed.
    Closed,
}

/// What an adapter's loop does next, from [`Driver::poll`].
#[derive(Debug)]
#[must_use]
pub enum Step {
    /// Write these bytes, within [`Driver::deadline`] (call
    /// [`Driver::handle_sending`] first).
    Transmit(Bytes),
    /// Run the TLS handshake on the raw socket, bounded by `deadline` (the machine's TLS
    /// timeout), then call [`Driver::handle_tls_established`] or
    /// [`Driver::handle_broken`] with [`Error::Tls`].
    StartTls {
        /// When the handshake times out.
        deadline: Instant,
    },
    /// Send the body of message `id`: read a piece, [`Driver::send_body`], poll and write
    /// until [`Step::Read`], repeat; then [`Driver::end_body`], or
    /// [`Driver::abort_body`] if reading failed.
    Body(u64),
    /// Close the connection (TLS close_notify, then a TCP half-close).
    Close,
    /// Read, until `deadline`: then [`Driver::handle_input`], [`Driver::handle_eof`],
    /// [`Driver::handle_timeout`] or [`Driver::handle_broken`].
    Read {
        /// When to call [`Driver::handle_timeout`].
        deadline: Option<Instant>,
    },
    /// What the call waited for happened, or the session closed: stop and ask for the
    /// result ([`Driver::ready`], [`Driver::outcome`], [`Driver::quit_result`]).
    Done,
}

/// One connection's machine as an adapter drives it: the [`Client`], and what every
/// adapter tracks around it the same way: the greeting, finished messages, whether the
/// connection broke, and the first error of the connection (I/O, TLS, body) that the
/// machine cannot know, kept like the machine keeps its own.
pub struct Driver {
    client: Client,
    transcript: Option<Transcript>,
    greeting: Option<Reply>,
    outcomes: VecDeque<MessageOutcome>,
    ready: bool,
    closed: bool,
    /// A write or read failed (or timed out): nothing more is written.
    broken: bool,
    lost: Option<Error>,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("client", &self.client)
            .field("ready", &self.ready)
            .field("closed", &self.closed)
            .field("broken", &self.broken)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Starts the machine of a connection; `implicit_tls` says TLS is already active.
    pub fn new(
        config: Arc<ClientConfig>,
        implicit_tls: bool,
        transcript: Option<Transcript>,
        now: Instant,
    ) -> Driver {
        Driver {
            client: Client::new(config, implicit_tls, now),
            transcript,
            greeting: None,
            outcomes: VecDeque::new(),
            ready: false,
            closed: false,
            broken: false,
            lost: None,
        }
    }

    // ---- getters ---------------------------------------------------------------------

    /// The machine, read-only (capabilities, TLS, AUTH, configuration).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server's greeting.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// Whether the session has ended (QUIT, or a failure).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether nothing more may be written (a write failed or timed out).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// When the machine times out: every read, write and handshake is bounded by it.
    pub fn deadline(&self) -> Option<Instant> {
        self.client.deadline()
    }

    /// Why the connection failed, once it has: the first I/O, TLS or body error, else
    /// the machine's own ([`Client::error`]). Asked again, it answers the same.
    pub fn error(&self) -> Option<Error> {
        self.lost
            .clone()
            .or_else(|| self.client.error().cloned().map(Error::Session))
    }

    /// [`Driver::error`], or [`UsageError::Closed`] for a session closed by QUIT.
    fn failure(&self) -> Error {
        self.error().unwrap_or(Error::Usage(UsageError::Closed))
    }

    // ---- results ---------------------------------------------------------------------

    /// After [`Until::Ready`]: whether the session is ready, or why not.
    pub fn ready(&self) -> Result<(), Error> {
        if self.ready && !self.closed {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// After [`Until::Message`]: the message's outcome, or why it has none.
    pub fn outcome(&mut self, id: u64) -> Result<MessageOutcome, Error> {
        match self.outcomes.iter().position(|o| o.id == id) {
            Some(i) => Ok(self.outcomes.remove(i).unwrap_or_else(|| unreachable!())),
            None => Err(self.failure()),
        }
    }

    /// After [`Until::Closed`] following [`Driver::quit`]: `Ok` unless the session
    /// failed.
    pub fn quit_result(&self) -> Result<(), Error> {
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    // ---- application calls -----------------------------------------------------------

    /// Queues a message ([`Client::send_mail`]); after a failure, its error again.
    pub fn send_mail(&mut self, envelope: Envelope) -> Result<u64, Error> {
        if let Some(e) = &self.lost {
            return Err(e.clone());
        }
        self.ready = false;
        Ok(self.client.send_mail(envelope)?)
    }

    /// A piece of the body ([`Client::send_body`]); `false` when the machine refused it
    /// (the message failed, say a line over 998 octets): stop reading the body.
    pub fn send_body(&mut self, chunk: &[u8]) -> bool {
        !self.closed && self.client.send_body(chunk).is_ok()
    }

    /// The end of the body ([`Client::end_body`]).
    pub fn end_body(&mut self) {
        let _ = self.client.end_body();
    }

    /// Reading the body failed: the message is abandoned without its final dot
    /// ([`Client::abort_body`]), the session closes, and `error` becomes the
    /// connection's error ([`Error::Body`]).
    pub fn abort_body(&mut self, error: io::Error) {
        if self.client.abort_body().is_ok() && self.lost.is_none() {
            self.lost = Some(Error::Body(Arc::new(error)));
        }
    }

    /// One read from the body's source: a piece goes to the machine ([`send_body`](Self::send_body)),
    /// the end of the source ends the message ([`end_body`](Self::end_body)), a failure
    /// abandons it ([`abort_body`](Self::abort_body): no final dot may follow a partial
    /// body, so the server discards it, RFC 5321 §4.1.1.4), an interrupted read is tried
    /// again. What the adapter does next.
    pub fn handle_body_read(&mut self, read: io::Result<&[u8]>) -> BodyRead {
        match read {
            Ok([]) => {
                self.end_body();
                BodyRead::Done
            }
            // Refused (a line over 998 octets) or the session failed: the outcome says why.
            Ok(piece) if !self.send_body(piece) => BodyRead::Done,
            Ok(_) => BodyRead::Sent,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => BodyRead::Again,
            Err(e) => {
                self.abort_body(e);
                BodyRead::Done
            }
        }
    }

    /// Ends the session with QUIT; `false` when it has already closed.
    pub fn quit(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.client.quit();
        true
    }

    // ---- inputs ----------------------------------------------------------------------

    /// Bytes read from the server.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.client.handle_input(bytes, now);
    }

    /// The server closed the connection.
    pub fn handle_eof(&mut self, now: Instant) {
        self.client.handle_eof(now);
    }

    /// The deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
    }

    /// About to write what [`Step::Transmit`] gave ([`Client::handle_sending`]).
    pub fn handle_sending(&mut self, now: Instant) {
        self.client.handle_sending(now);
    }

    /// A write did not finish by `deadline`: the socket may hold half of it, so nothing
    /// more goes out, and the session fails with a timeout.
    pub fn handle_write_timeout(&mut self, deadline: Instant, now: Instant) {
        self.broken = true;
        self.client.handle_timeout(deadline.max(now));
    }

    /// The TLS handshake asked for by [`Step::StartTls`] completed.
    pub fn handle_tls_established(&mut self, now: Instant) {
        self.client.handle_tls_established(now);
    }

    /// The connection broke (a read or write failed, the TLS handshake failed): `error`
    /// is kept as the connection's error (the first one wins), nothing more goes out, and
    /// the machine ends the session as at the end of input, reporting every unfinished
    /// message.
    pub fn handle_broken(&mut self, error: Error, now: Instant) {
        if self.lost.is_none() {
            self.lost = Some(error);
        }
        self.broken = true;
        self.client.handle_eof(now);
        // Whatever the machine says next, nothing more is read.
        self.closed = true;
    }

    // ---- output ----------------------------------------------------------------------

    /// The next step towards `until`: events are handled here (greeting, readiness,
    /// outcomes, transcript), and once the connection broke nothing is transmitted.
    pub fn poll(&mut self, until: Until) -> Step {
        loop {
            match self.client.poll_output() {
                ClientOutput::Transmit(_) if self.broken => {}
                ClientOutput::Transmit(bytes) => return Step::Transmit(bytes),
                ClientOutput::Event(ClientEvent::BodyWanted { id }) => return Step::Body(id),
                ClientOutput::Event(event) => self.event(event),
                ClientOutput::StartTls => {
                    // The machine always has a deadline for the handshake (its TLS
                    // timeout), counted from the 220 to STARTTLS.
                    let deadline = self.client.deadline().unwrap_or_else(|| {
                        self.client.now + self.client.config().timeouts.tls_handshake
                    });
                    return Step::StartTls { deadline };
                }
                ClientOutput::Close => {
                    let was = self.closed;
                    self.closed = true;
                    if !self.broken && !was {
                        return Step::Close;
                    }
                }
                ClientOutput::Wait { deadline } => {
                    // Only once the machine has handled everything it was given: a reply
                    // that came with the one awaited is read (and refused if nothing
                    // asked for it) before the caller hears that the session is ready.
                    if self.closed || self.satisfied(until) {
                        return Step::Done;
                    }
                    return Step::Read { deadline };
                }
            }
        }
    }

    /// The deadline for an implicit-TLS handshake (RFC 8314): it comes out of the
    /// greeting's time.
    pub fn implicit_tls_deadline(&self) -> Instant {
        self.client
            .deadline()
            .unwrap_or_else(|| self.client.now + self.client.config().timeouts.greeting)
    }

    fn satisfied(&self, until: Until) -> bool {
        match until {
            Until::Ready => self.ready,
            Until::Message(id) => self.outcomes.iter().any(|o| o.id == id),
            Until::Closed => self.closed,
        }
    }

    fn event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Transcript(line) => {
                if let Some(hook) = &self.transcript {
                    hook(&line);
                }
            }
            ClientEvent::Connected(reply) => self.greeting = Some(reply),
            ClientEvent::Ready => self.ready = true,
            ClientEvent::MessageDone(outcome) => self.outcomes.push_back(outcome),
            // Kept by the machine itself ([`Client::error`]).
            _ => {}
        }
    }
}

/// What an adapter does after [`Driver::handle_body_read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyRead {
    /// A piece went to the machine: write what it produced, then read the next.
    Sent,
    /// The read was interrupted: read again.
    Again,
    /// The body has ended (or was abandoned, or refused): stop reading.
    Done,
}

/// Defines an adapter's `Connector` (and `ConnectorBuilder`) around [`Setup`]: the struct,
/// its [`Connect`] implementation with the adapter's rustls configuration, and the
/// `builder`, `setup` and `config` methods with their documentation, written once for
/// both adapters (`$krate` names the adapter in the example).
#[macro_export]
macro_rules! connector {
    ($krate:ident, $tls_config:path) => {
        /// Configures a [`Connector`]: [`smtp_proto::client::host::Builder`], the same on
        /// both adapters.
        pub type ConnectorBuilder = $crate::client::host::Builder<Connector>;

        /// Opens client connections with one checked configuration; cheap to clone, so
        /// that several tasks or threads can open connections of their own.
        #[derive(Clone, Debug)]
        pub struct Connector {
            setup: $crate::client::host::Setup<Connector>,
        }

        impl $crate::client::host::Connect for Connector {
            type Tls = ::std::sync::Arc<rustls::ClientConfig>;

            fn tls_config(
                verification: &$crate::client::host::Verification,
            ) -> Result<Self::Tls, $crate::client::host::Error> {
                $tls_config(verification).map_err($crate::client::host::Error::tls_config)
            }

            fn start(setup: $crate::client::host::Setup<Self>) -> Self {
                Connector { setup }
            }
        }

        impl Connector {
            /// Starts configuring connections for `config` (EHLO name, STARTTLS policy,
            /// credentials, mechanism, timeouts): TLS verification, implicit TLS, server
            /// name, connect and write timeouts, body chunk size and a transcript hook,
            /// then [`build`]($crate::client::host::Builder::build). Certificates are
            /// checked against the webpki roots unless the builder says otherwise.
            ///
            /// ```
            /// use std::time::Duration;
            /// use smtp_proto::client::{ClientConfig, StartTls};
            /// use smtp_proto::sasl::ClientCredentials;
            #[doc = concat!("use ", stringify!($krate), "::{Connector, Error, Verification};")]
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
            pub fn builder(config: $crate::client::ClientConfig) -> ConnectorBuilder {
                $crate::client::host::Builder::new(config)
            }

            /// The checked configuration.
            pub fn setup(&self) -> &$crate::client::host::Setup<Connector> {
                &self.setup
            }

            /// The session configuration.
            pub fn config(&self) -> &$crate::client::ClientConfig {
                &self.setup.config
            }
        }
    };
}

/// The read-only side of an adapter's `Connection` (which holds a [`Driver`] in a field
/// named `driver`): greeting, capabilities, TLS, AUTH and failure, written once for both
/// adapters.
#[macro_export]
macro_rules! connection_getters {
    () => {
        impl Connection {
            /// The server's greeting.
            pub fn greeting(&self) -> Option<&$crate::Reply> {
                self.driver.greeting()
            }

            /// The server's capabilities (after TLS, the ones it gave then).
            pub fn capabilities(&self) -> Option<&$crate::Capabilities> {
                self.driver.client().capabilities()
            }

            /// Whether TLS is active (STARTTLS or implicit).
            pub fn is_tls(&self) -> bool {
                self.driver.client().is_tls()
            }

            /// The mechanism AUTH succeeded with.
            pub fn authenticated(&self) -> Option<&$crate::sasl::Mechanism> {
                self.driver.client().authenticated()
            }

            /// Whether the session has ended (QUIT, or a failure).
            pub fn is_closed(&self) -> bool {
                self.driver.is_closed()
            }

            /// Why the session failed, once it has (a message's outcome may come first,
            /// then the failure: an unsolicited reply, a timeout). The connection's own
            /// error, with an I/O or TLS cause, is what the next call returns.
            pub fn error(&self) -> Option<&$crate::client::ClientError> {
                self.driver.client().error()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        let cases: &[(&str, (&str, u16))] = &[
            ("mx.example.org:587", ("mx.example.org", 587)),
            ("mx.example.org", ("mx.example.org", 25)),
            ("[::1]:2525", ("::1", 2525)),
            ("[::1]", ("::1", 25)),
            ("::1", ("::1", 25)),
            ("127.0.0.1:25", ("127.0.0.1", 25)),
            ("host:x", ("host:x", 25)),
        ];
        for (input, want) in cases {
            assert_eq!(split_host_port(input), *want, "{input}");
        }
    }

    #[test]
    fn usage_failed_is_the_session_error() {
        let e = Error::from(UsageError::Failed(ClientError::Timeout));
        assert!(matches!(e, Error::Session(ClientError::Timeout)));
        let e = Error::from(UsageError::Closed);
        assert!(matches!(e, Error::Usage(UsageError::Closed)));
    }

    #[test]
    fn io_errors_are_the_source() {
        let e = Error::Tls(Arc::new(io::Error::other("invalid peer certificate")));
        let source = std::error::Error::source(&e).unwrap();
        assert!(source.to_string().contains("certificate"));
    }
}

//! What every adapter's server shows its application, whatever runs it (tokio tasks,
//! threads), and what they all do the same way around the machine: who connected
//! ([`ConnectInfo`]), what a handler sees of its session ([`Context`]), the answers a
//! handler gives when it does not say ([`LMTP_NOT_IMPLEMENTED`], [`CREDENTIALS_INVALID`]),
//! the machine with the state adapters keep beside it ([`Driver`]), what becomes of a
//! handler's answer and what to log about it ([`settle`], [`Note`]), and the
//! configuration of listeners ([`Builder`], [`Listening`], [`ListenerAddr`],
//! [`SetupError`]).
//!
//! Nothing here does I/O: the adapter binds the sockets, draws randomness and reads the
//! clock; these types only carry and check what it passes in. The handler traits
//! themselves are written once, in [`handler_traits!`](crate::handler_traits), because
//! one adapter's are `async` and the other's are not.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Decision, Event, HostError, Output, PeerInfo, Refusal, ServerConfig, Session, replies,
};
use crate::reply::Reply;
use crate::sasl;

/// Who connected, given to the host's `connect` before the session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The session's identifier, unique within the adapter's server.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// The connection came in on an implicit-TLS listener (RFC 8314).
    pub implicit_tls: bool,
}

impl ConnectInfo {
    /// What the machine knows of the peer, for [`Session::new`].
    pub fn peer_info(&self) -> PeerInfo {
        PeerInfo {
            addr: Some(self.peer.ip()),
            name: None,
            tls: self.implicit_tls,
        }
    }

    /// What a handler sees of this connection's session.
    pub fn context<'a>(&self, session: &'a Session) -> Context<'a> {
        Context {
            id: self.id,
            peer: self.peer,
            local: self.local,
            session,
            tls_version: None,
            body: None,
        }
    }
}

/// What a handler sees of its session at each call: who the peer is, and the
/// protocol machine's getters ([`Session::reverse_path`], [`Session::recipients`],
/// [`Session::authenticated`], [`Session::is_tls`], [`Session::received_header`], ...),
/// and the whole body of the message when the handler asked for it ([`Context::body`]).
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The session's identifier, unique within the adapter's server.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// The session's state machine, read-only.
    pub session: &'a Session,
    /// The negotiated TLS protocol version (its wire value, RFC 8446 §4.2.1: `0x0304`
    /// for TLS 1.3) once TLS is up, as the adapter set it ([`Driver::set_tls_version`]).
    pub tls_version: Option<u16>,
    body: Option<&'a [u8]>,
}

impl<'a> Context<'a> {
    /// The whole body of the message, dot-unstuffed (DATA) or as sent (BDAT), once it has
    /// arrived: at `message_end` (SMTP) and from `lmtp_message_end` to the last
    /// `lmtp_delivery` (LMTP), when the handler's `buffer_message` asked for it at the
    /// message start. `None` otherwise: the body then only streams through
    /// `message_chunk`.
    pub fn body(&self) -> Option<&'a [u8]> {
        self.body
    }
}

/// One connection's machine as an adapter drives it: the [`Session`], and what every
/// adapter tracks around it the same way: whether the connection broke, whether the
/// machine was told of a shutdown, the body of the message when the handler wants it
/// whole, and whether the handler heard that the session ended. It derefs to the machine
/// for the getters and inputs.
///
/// Its [`poll_output`](Driver::poll_output) adds one event to the machine's:
/// [`Event::Closed`], exactly once, just before [`Output::Close`].
#[derive(Debug)]
pub struct Driver {
    server: Session,
    broken: bool,
    drained: bool,
    body: Body,
    /// [`Event::Closed`] went out; `Output::Close` is next.
    closed: Closed,
    /// What [`Driver::set_tls_version`] said.
    tls_version: Option<u16>,
}

/// The message body a handler asked to have whole.
#[derive(Debug, Default)]
enum Body {
    /// Not asked for (or dropped after the message's verdict).
    #[default]
    Off,
    /// Being kept: at most [`Driver::body_limit`] octets.
    Kept(Vec<u8>),
    /// It outgrew the limit: the message is refused with `552 5.3.4`.
    TooBig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Open,
    /// The machine said `Close`; the adapter has heard [`Event::Closed`] and gets
    /// `Output::Close` next.
    Telling,
    Told,
}

/// How much of a message body a [`Driver`] keeps for a handler when the configuration
/// sets no SIZE limit ([`Limits::max_message_size`](super::Limits::max_message_size)
/// `None`): 25 MiB, the default limit.
pub const DEFAULT_BODY_LIMIT: u64 = 26_214_400;

impl Driver {
    /// Starts the machine of a connection. With `refusal` (over the connection limit,
    /// refused by the host) the machine says that reply instead of its greeting and
    /// closes, so that even then every byte is the machine's.
    pub fn new(
        config: Arc<ServerConfig>,
        info: &ConnectInfo,
        refusal: Option<Reply>,
        now: Instant,
    ) -> Driver {
        let mut server = Session::new(config, info.peer_info(), now);
        if let Some(reply) = refusal {
            server.close_with(reply);
        }
        Driver {
            server,
            broken: false,
            drained: false,
            body: Body::Off,
            closed: Closed::Open,
            tls_version: None,
        }
    }

    /// TLS is up (a STARTTLS handshake, or the implicit-TLS one before the session)
    /// with this protocol version, its wire value: handlers see it in
    /// [`Context::tls_version`] (for logs and metrics). The adapter calls it before
    /// [`Session::handle_tls_established`], or before the first output.
    pub fn set_tls_version(&mut self, version: Option<u16>) {
        self.tls_version = version;
    }

    /// [`Session::poll_output`], but once the connection broke nothing more is transmitted
    /// and the wait that follows becomes [`Output::Close`]: the machine still tells the
    /// handler first ([`Event::MessageAborted`]). The first `Output::Close`, however the
    /// session ends, is preceded by [`Event::Closed`]. Body pieces are kept on their way
    /// out when [`Driver::keep_body`] asked for it.
    pub fn poll_output(&mut self) -> Output {
        match self.closed {
            Closed::Telling => {
                self.closed = Closed::Told;
                return Output::Close;
            }
            Closed::Told => return Output::Close,
            Closed::Open => {}
        }
        loop {
            let output = match self.server.poll_output() {
                Output::Transmit(_) if self.broken => continue,
                Output::Wait { .. } if self.broken => Output::Close,
                output => output,
            };
            return match output {
                Output::Close => {
                    self.body = Body::Off;
                    self.closed = Closed::Telling;
                    Output::Event(Event::Closed)
                }
                Output::Event(event) => {
                    self.watch(&event);
                    Output::Event(event)
                }
                output => output,
            };
        }
    }

    /// Keeps the body of a message as it goes out in [`Event::Body`] pieces.
    fn watch(&mut self, event: &Event) {
        match event {
            Event::MessageStart | Event::MessageAborted { .. } | Event::Reset => {
                self.body = Body::Off
            }
            Event::Body(piece) => {
                let limit = self.body_limit();
                if let Body::Kept(body) = &mut self.body {
                    if (body.len() + piece.len()) as u64 > limit {
                        self.body = Body::TooBig;
                    } else {
                        body.extend_from_slice(piece);
                    }
                }
            }
            _ => {}
        }
    }

    /// Keeps the body of the message that just started ([`Event::MessageStart`]), so
    /// that [`Driver::body`] gives it whole once it has arrived, up to
    /// [`Driver::body_limit`] octets. The adapters' `dispatch` calls this when the
    /// handler's `buffer_message` says so.
    pub fn keep_body(&mut self) {
        self.body = Body::Kept(Vec::new());
    }

    /// The body kept since [`Driver::keep_body`], complete once [`Event::MessageEnd`] or
    /// [`Event::LmtpMessageEnd`] went out; `None` when none is kept or it outgrew the
    /// limit.
    pub fn body(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Kept(body) => Some(body),
            _ => None,
        }
    }

    /// Whether the body being kept outgrew [`Driver::body_limit`]: the message must be
    /// refused with [`BODY_TOO_BIG`] (RFC 1870 §4) rather than handed over cut short.
    pub fn body_too_big(&self) -> bool {
        matches!(self.body, Body::TooBig)
    }

    /// The most a kept body may hold: the SIZE limit, or [`DEFAULT_BODY_LIMIT`] without
    /// one, so that memory stays bounded whatever the client sends.
    pub fn body_limit(&self) -> u64 {
        let limits = &self.server.config().limits;
        limits.max_message_size.unwrap_or(DEFAULT_BODY_LIMIT)
    }

    /// Frees the kept body: the message has its verdict.
    pub fn drop_body(&mut self) {
        self.body = Body::Off;
    }

    /// What a handler sees of this session now: `info`, the machine, and the kept body.
    pub fn context<'a>(&'a self, info: &ConnectInfo) -> Context<'a> {
        Context {
            body: self.body(),
            tls_version: self.tls_version,
            ..info.context(&self.server)
        }
    }

    /// A write, a read or a TLS handshake failed: the session ends as at the end of
    /// input, and nothing more goes out.
    pub fn handle_broken(&mut self, now: Instant) {
        self.broken = true;
        self.server.handle_eof(now);
    }

    /// Whether the connection broke, so that closing it has nothing to send.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The server started shutting down: the machine closes with
    /// [`ServerConfig::shutdown_reply`] at its next command boundary outside a
    /// transaction (RFC 5321 §3.8). Only the first call tells it.
    pub fn drain(&mut self) {
        if !self.drained {
            self.drained = true;
            let reply = self.server.config().shutdown_reply();
            self.server.shutdown(reply);
        }
    }

    /// Whether [`Driver::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.drained
    }

    /// The shutdown's grace period is over: the machine says
    /// [`ServerConfig::shutdown_reply`] now and closes.
    pub fn force_close(&mut self) {
        let reply = self.server.config().shutdown_reply();
        self.server.close_with(reply);
    }
}

impl std::ops::Deref for Driver {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.server
    }
}

impl std::ops::DerefMut for Driver {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.server
    }
}

// ---- default answers -----------------------------------------------------------------

/// A handler's answer to an LMTP delivery when it does not implement them (RFC 2033
/// §4.2): `451 4.3.0`, so that a host that forgot loses nothing.
pub const LMTP_NOT_IMPLEMENTED: Decision =
    Decision::Reject(Refusal::constant(replies::LMTP_NOT_IMPLEMENTED));

/// A handler's answer to credentials when it does not check them: `535 5.7.8` (RFC 4954
/// §6).
pub const CREDENTIALS_INVALID: Decision =
    Decision::Reject(Refusal::constant(sasl::AUTH_INVALID_CREDENTIALS));

/// The answer of the handler of a session refused before its greeting (over the
/// connection limit, refused by the host), which is never asked anything:
/// `451 4.3.0`, should it be.
pub const REFUSED: Decision = Decision::Reject(Refusal::constant(replies::LOCAL_ERROR));

/// The answer to a message whose body a handler wanted whole and that outgrew
/// [`Driver::body_limit`]: `552 5.3.4` (RFC 1870 §4), given without asking the handler.
pub const BODY_TOO_BIG: Decision = Decision::Reject(Refusal::constant(replies::SIZE_OVER_LIMIT));

// ---- logging -------------------------------------------------------------------------

/// What an adapter writes to its log about an event and the handler's answer: the core
/// has no logger, and every adapter should say the same. Credentials never appear, only
/// the identity they claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// How much it matters.
    pub level: Level,
    /// The line.
    pub text: String,
}

/// How much a [`Note`] matters, as log levels say it; ordered from `Debug` to `Warn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A detail of the session (debug).
    Debug,
    /// A fact of the session (info).
    Info,
    /// A bug in the handler: the machine refused its answer (warn).
    Warn,
}

impl Note {
    fn new(level: Level, text: impl Into<String>) -> Note {
        Note {
            level,
            text: text.into(),
        }
    }

    /// The machine refused a CRAM-MD5 challenge (and answered `454 4.7.0` if it still
    /// could).
    pub fn challenge_refused(error: HostError) -> Note {
        Note::new(Level::Warn, format!("CRAM-MD5 challenge refused: {error}"))
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Gives the handler's `decision` on `event`, if it asked for one, to the machine, and
/// says what to log: the decision, a notable event, or a decision the machine refused
/// (given when none was pending, or after the session closed).
///
/// The levels follow Postfix's: at [`Level::Info`] what an operator reads, which is one
/// line a message (its envelope, TLS, the AUTH identity and the final reply, which names
/// the queue id) and every refusal; each accepted command at [`Level::Debug`]. A server
/// logging at info thus writes about three lines a session, whatever the client sends.
pub fn settle(server: &mut Session, event: &Event, decision: Option<Decision>) -> Option<Note> {
    settle_at(server, event, decision, Level::Debug)
}

/// [`settle`] for a log that prints nothing below `quietest`: a note below it is not even
/// built (what the adapters pass is the lowest level their log prints, so that a server
/// logging at info does not format a line for every command only to drop it). The
/// decision is given to the machine all the same.
pub fn settle_at(
    server: &mut Session,
    event: &Event,
    decision: Option<Decision>,
    quietest: Level,
) -> Option<Note> {
    let Some(decision) = decision else {
        return note(event).filter(|n| n.level >= quietest);
    };
    let level = match (&decision, event) {
        (Decision::Reject(_), _) | (_, Event::MessageEnd | Event::LmtpDelivery { .. }) => {
            Level::Info
        }
        _ => Level::Debug,
    };
    if level < quietest {
        // Only a refused decision (a warning) is still worth a line.
        return match server.decide(decision) {
            Err(error) => Some(Note::new(
                Level::Warn,
                format!("handler decision refused by the session: {error}"),
            )),
            Ok(()) => None,
        };
    }
    // Read before the decision, which ends the transaction.
    let summary = matches!(event, Event::MessageEnd).then(|| message_summary(server));
    let what = match event {
        Event::Hello { verb, host } => format!("{verb} {host}"),
        Event::Mail { from, .. } => format!("MAIL FROM:{from}"),
        Event::Rcpt { to, .. } => format!("RCPT TO:{to}"),
        Event::MessageEnd => "message".to_owned(),
        Event::LmtpDelivery { to } => format!("LMTP delivery to {to}"),
        Event::Auth {
            mechanism,
            credentials,
        } => {
            let user = credentials.identity().unwrap_or("");
            format!("AUTH {mechanism} user={user:?}")
        }
        _ => String::new(),
    };
    let answer = match &decision {
        Decision::Accept => "accepted".to_owned(),
        Decision::AcceptWith(r) => r.to_string().trim_end().to_owned(),
        Decision::Reject(r) => r.to_string().trim_end().to_owned(),
    };
    match server.decide(decision) {
        Err(error) => Some(Note::new(
            Level::Warn,
            format!("handler decision refused by the session: {error}: {what}: {answer}"),
        )),
        Ok(()) if what.is_empty() => None,
        Ok(()) => Some(Note::new(
            level,
            match summary {
                Some(summary) => format!("{what} {summary}: {answer}"),
                None => format!("{what}: {answer}"),
            },
        )),
    }
}

/// The envelope of the message about to be decided, for its summary line:
/// `from=<a@example.org> to=<b@example.org>,<c@example.org> size=2048 tls=yes user="tim"`
/// (the user only after AUTH; the size is the body's, dot-stuffing removed). Every
/// recipient listed was accepted; the final reply that follows is the outcome for all of
/// them (refused recipients have their own lines). The client is in the adapter's span.
fn message_summary(server: &Session) -> String {
    use std::fmt::Write;
    let mut line = String::with_capacity(96);
    let _ = match server.reverse_path() {
        Some(from) => write!(line, "from={from}"),
        None => write!(line, "from=<>"),
    };
    for (i, to) in server.recipients().iter().enumerate() {
        let _ = write!(line, "{}{to}", if i == 0 { " to=" } else { "," });
    }
    let _ = write!(line, " size={}", server.body_size());
    line.push_str(if server.is_tls() {
        " tls=yes"
    } else {
        " tls=no"
    });
    if let Some(user) = server.authenticated() {
        let _ = write!(line, " user={user:?}");
    }
    line
}

/// What to log about an event that asks for no decision.
fn note(event: &Event) -> Option<Note> {
    Some(match event {
        Event::Connected => Note::new(Level::Info, "connected"),
        Event::TlsEstablished => Note::new(Level::Info, "STARTTLS done"),
        Event::ProtocolError(error) => Note::new(Level::Info, format!("client error: {error}")),
        Event::Timeout => Note::new(Level::Info, "timeout"),
        Event::MessageAborted { reason } => {
            Note::new(Level::Info, format!("message aborted: {reason:?}"))
        }
        Event::MessageStart => Note::new(Level::Debug, "message started"),
        Event::Quit => Note::new(Level::Debug, "QUIT"),
        Event::Reset => Note::new(Level::Debug, "transaction reset"),
        Event::Closed => Note::new(Level::Debug, "session ended"),
        _ => return None,
    })
}

// ---- listeners -----------------------------------------------------------------------

/// Why an adapter's server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// No listener was given.
    #[error("no listener")]
    NoListener,
    /// An implicit-TLS listener was given without a TLS configuration.
    #[error("implicit TLS listener without a TLS configuration")]
    TlsRequired,
    /// A listener could not be set up (its address, its blocking mode).
    #[error("listener: {0}")]
    Io(#[from] io::Error),
}

/// A bound listener and what it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerAddr {
    /// The address, with the real port when bound to port 0.
    pub addr: SocketAddr,
    /// TLS from the first byte (RFC 8314, port 465 style) rather than plain text with
    /// STARTTLS.
    pub implicit_tls: bool,
}

/// An adapter's server, as its [`Builder`] sees it: what a listener and a TLS
/// configuration are, and how to start from a checked [`Setup`].
pub trait Listen: Sized {
    /// The application's side, asked about every connection.
    type Backend;
    /// A bound listener (`tokio::net::TcpListener`, `std::net::TcpListener`).
    type Listener;
    /// The TLS configuration (rustls').
    type Tls;

    /// Readies a listener for the adapter's accept loop and reads its address.
    fn prepare(listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// The server, from a configuration that [`Builder::build`] checked.
    fn start(setup: Setup<Self>) -> Self;
}

/// A checked server configuration, for [`Listen::start`]: what the sessions share, and
/// the [`Listening`] part that the accept loop keeps.
pub struct Setup<S: Listen> {
    /// The session configuration, `extensions.starttls` on exactly when there is TLS.
    pub config: Arc<ServerConfig>,
    /// The application.
    pub backend: S::Backend,
    /// TLS, for STARTTLS and implicit-TLS listeners.
    pub tls: Option<S::Tls>,
    /// Concurrent sessions at most.
    pub max_connections: usize,
    /// How long one write may block on a client that does not read.
    pub write_timeout: Duration,
    /// The listeners and the shutdown's grace period.
    pub listening: Listening<S::Listener>,
}

/// The listeners of an adapter's server and how long its shutdown waits.
#[derive(Debug)]
pub struct Listening<L> {
    /// The listeners, each with whether it is implicit-TLS, in the order given.
    pub listeners: Vec<(L, bool)>,
    /// Their addresses, in the same order.
    pub addrs: Vec<ListenerAddr>,
    /// How long sessions may go on after the shutdown started.
    pub shutdown_timeout: Duration,
}

/// Configures an adapter's server (`S`, e.g. `smtp_tokio::Server<H>`); the adapter's
/// `Server::builder` starts one.
pub struct Builder<S: Listen> {
    config: ServerConfig,
    backend: S::Backend,
    tls: Option<S::Tls>,
    listeners: Vec<(S::Listener, bool)>,
    max_connections: usize,
    shutdown_timeout: Duration,
    write_timeout: Option<Duration>,
}

impl<S: Listen> Builder<S> {
    /// Starts configuring: `config` is shared by every session, `backend` is asked about
    /// every connection.
    pub fn new(config: ServerConfig, backend: S::Backend) -> Self {
        Builder {
            config,
            backend,
            tls: None,
            listeners: Vec::new(),
            max_connections: 1000,
            shutdown_timeout: Duration::from_secs(10),
            write_timeout: None,
        }
    }

    /// TLS for STARTTLS on plain listeners and for implicit-TLS listeners. With it, the
    /// session configuration's `extensions.starttls` is turned on; without it, off.
    pub fn tls(mut self, tls: S::Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A plain listener (STARTTLS offered when [`Builder::tls`] is set).
    pub fn listener(mut self, listener: S::Listener) -> Self {
        self.listeners.push((listener, false));
        self
    }

    /// An implicit-TLS listener (RFC 8314).
    pub fn implicit_tls_listener(mut self, listener: S::Listener) -> Self {
        self.listeners.push((listener, true));
        self
    }

    /// Concurrent sessions at most; a client over the limit gets
    /// `421 4.3.2 <hostname> Error: too many connections` and is disconnected.
    /// Default: 1000.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Once the shutdown has started, how long sessions may go on before they get
    /// `421 4.3.2` and are closed. Default: 10 seconds.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long one write may block on a client that does not read. Default: the
    /// session's command timeout.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Checks the configuration and starts the server (it accepts once run).
    pub fn build(self) -> Result<S, SetupError> {
        if self.listeners.is_empty() {
            return Err(SetupError::NoListener);
        }
        if self.tls.is_none() && self.listeners.iter().any(|(_, implicit)| *implicit) {
            return Err(SetupError::TlsRequired);
        }
        let mut addrs = Vec::with_capacity(self.listeners.len());
        for (listener, implicit_tls) in &self.listeners {
            let addr = S::prepare(listener)?;
            addrs.push(ListenerAddr {
                addr,
                implicit_tls: *implicit_tls,
            });
        }
        let mut config = self.config;
        config.extensions.starttls = self.tls.is_some();
        let write_timeout = self.write_timeout.unwrap_or(config.timeouts.command);
        Ok(S::start(Setup {
            config: Arc::new(config),
            backend: self.backend,
            tls: self.tls,
            max_connections: self.max_connections,
            write_timeout,
            listening: Listening {
                listeners: self.listeners,
                addrs,
                shutdown_timeout: self.shutdown_timeout,
            },
        }))
    }
}

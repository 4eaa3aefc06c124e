//! The server side of an SMTP or LMTP session, Sans-I/O.
//!
//! A [`Server`] is one connection's session. The host moves bytes and decisions in and
//! drains outputs until the session says it waits:
//!
//! ```
//! use std::time::Instant;
//! use smtp_proto::server::{Output, PeerInfo, Server, ServerConfig};
//!
//! let config = ServerConfig::new("mx.example.org").unwrap();
//! let now = Instant::now();
//! let mut server = Server::new(config.into(), PeerInfo::default(), now);
//! let mut sent = Vec::new();
//! // EHLO must be answered before the client goes on (RFC 2920 §3.1), so two rounds.
//! for input in [&b"EHLO client.example\r\n"[..], b"QUIT\r\n"] {
//!     server.handle_input(input, now);
//!     loop {
//!         match server.poll_output() {
//!             Output::Transmit(bytes) => sent.extend_from_slice(&bytes),
//!             Output::Event(event) if event.needs_decision() => server.accept().unwrap(),
//!             Output::Event(_) => {}
//!             Output::Close | Output::Wait { .. } => break,
//!             Output::StartTls => unreachable!(),
//!         }
//!     }
//! }
//! let text = String::from_utf8(sent).unwrap();
//! assert!(text.starts_with("220 mx.example.org ESMTP\r\n250-mx.example.org\r\n"));
//! assert!(text.ends_with("221 2.0.0 Bye\r\n"));
//! ```
//!
//! # Methods
//! - Getters (`&self`): [`state`](Server::state), [`is_tls`](Server::is_tls),
//!   [`authenticated`](Server::authenticated), [`helo`](Server::helo),
//!   [`reverse_path`](Server::reverse_path), [`recipients`](Server::recipients),
//!   [`lmtp_recipients`](Server::lmtp_recipients),
//!   [`received_header`](Server::received_header).
//! - Inputs: [`handle_input`](Server::handle_input), [`handle_eof`](Server::handle_eof),
//!   [`handle_timeout`](Server::handle_timeout),
//!   [`handle_tls_established`](Server::handle_tls_established).
//! - Decisions: [`accept`](Server::accept), [`accept_with`](Server::accept_with),
//!   [`reject`](Server::reject), [`auth_challenge`](Server::auth_challenge),
//!   [`close_with`](Server::close_with).
//! - Output: [`poll_output`](Server::poll_output), until [`Output::Wait`].
//!
//! The session answers everything that is pure protocol itself, with the reply and
//! enhanced status code the RFCs give; the host decides only policy (HELO, MAIL, RCPT,
//! the message, credentials, VRFY/EXPN/ETRN). `docs/state-machines.md` draws the table.

mod anvil;
mod config;
mod event;
mod received;
mod replies;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf as _, Bytes, BytesMut};

pub use anvil::{Anvil, AnvilLimits};
pub use config::{Extensions, Limits, ServerConfig, SyncPolicy, Timeouts};
pub use event::{AbortReason, Event, HostError, Output, ProtocolError};

use crate::address::{ForwardPath, Host, ReversePath};
use crate::command::{Command, Verb};
use crate::data::{DataDecoder, DataError, DecodeStep};
use crate::ehlo::Capabilities;
use crate::error::CommandError;
use crate::line::{Line, LineFramer};
use crate::params::{BodyType, MailParams, RcptParams};
use crate::reply::{EnhancedCode, Reply};
use crate::sasl::{Mechanism, ServerExchange, Step};

/// Where the session stands, for a host that wants to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// The greeting has not been produced yet.
    Start,
    /// Reading commands.
    Command,
    /// Waiting for the host to decide.
    Decision,
    /// Reading a DATA body.
    Data,
    /// Reading a BDAT chunk.
    Bdat,
    /// Reading AUTH continuation lines.
    Auth,
    /// Waiting for the TLS handshake.
    Tls,
    /// Closed.
    Closed,
}

/// What the host knows about the peer, for trace headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// The client's IP address.
    pub addr: Option<IpAddr>,
    /// Its verified reverse DNS name, if the host looked it up.
    pub name: Option<String>,
    /// TLS is already active (implicit TLS, RFC 8314).
    pub tls: bool,
}

/// What the session is waiting for the host to decide.
#[derive(Debug)]
enum Pending {
    Hello {
        verb: Verb,
        host: Host<'static>,
    },
    Mail {
        from: ReversePath<'static>,
        params: MailParams<'static>,
    },
    Rcpt {
        to: ForwardPath<'static>,
    },
    /// End of message; `left` replies still to give (LMTP: one per recipient).
    Message {
        left: usize,
    },
    Auth {
        exchange: ServerExchange,
        identity: Option<String>,
    },
    Challenge,
    Vrfy,
    Expn,
    Etrn,
}

#[derive(Debug)]
enum Phase {
    Start,
    Command,
    Decide(Pending),
    Data(DataDecoder),
    Bdat {
        remaining: u64,
        last: bool,
        discard: bool,
    },
    Auth {
        exchange: ServerExchange,
        reject: Option<Reply>,
    },
    Tls,
    Closed,
}

/// The open mail transaction (RFC 5321 §3.3).
#[derive(Debug)]
struct Transaction {
    from: ReversePath<'static>,
    body: Option<BodyType>,
    smtputf8: bool,
    recipients: Vec<ForwardPath<'static>>,
    /// RCPT commands tried, accepted or not.
    rcpt_attempts: usize,
    /// RCPT commands refused for being over the recipient limit.
    overshoot: usize,
    /// Octets received in BDAT chunks so far.
    bdat_size: u64,
    /// BDAT chunks have been received.
    bdat_started: bool,
    /// A BDAT chunk failed; the rest of the transaction is refused with this reply.
    bdat_failed: Option<Reply>,
}

/// One server session. See the [module documentation](self).
#[derive(Debug)]
pub struct Server {
    config: Arc<ServerConfig>,
    peer: PeerInfo,
    phase: Phase,
    inbuf: BytesMut,
    outbuf: BytesMut,
    queue: VecDeque<Output>,
    framer: LineFramer,
    helo: Option<(Verb, Host<'static>)>,
    tls: bool,
    auth: Option<String>,
    txn: Option<Transaction>,
    errors: u32,
    /// HELO, EHLO, RSET, NOOP, VRFY, EXPN, ETRN and HELP commands since the last message.
    junk: u32,
    auth_failures: u32,
    /// The latest time the host has passed in.
    now: Instant,
    /// What the deadline counts from: the first octet of the command line being read,
    /// the start of a body pushed back by what has arrived of it, or the time the
    /// session last changed phase on its own.
    last_activity: Instant,
    /// Replies are held until then (the error delay).
    hold_until: Option<Instant>,
    /// `Output::Close` has been queued.
    closing: bool,
    /// The reply for a BDAT chunk being discarded outside any transaction.
    pending_bdat_reply: Option<Reply>,
    /// [`Server::shutdown`] was called: close with this at the next command boundary.
    shutdown: Option<Reply>,
}

/// Commands after which a client must wait for the reply (RFC 2920 §3.1; RFC 3207 §4 for
/// STARTTLS; RFC 4954 §4 for AUTH).
fn ends_group(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Helo | Verb::Ehlo | Verb::Lhlo | Verb::Data | Verb::Auth | Verb::StartTls
    )
}

impl Server {
    /// Starts a session. The greeting is produced by the first
    /// [`poll_output`](Server::poll_output).
    pub fn new(config: Arc<ServerConfig>, peer: PeerInfo, now: Instant) -> Server {
        let framer = LineFramer::new(config.limits.max_line);
        let tls = peer.tls;
        Server {
            config,
            peer,
            phase: Phase::Start,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            queue: VecDeque::new(),
            framer,
            helo: None,
            tls,
            auth: None,
            txn: None,
            errors: 0,
            junk: 0,
            auth_failures: 0,
            now,
            last_activity: now,
            hold_until: None,
            closing: false,
            pending_bdat_reply: None,
            shutdown: None,
        }
    }

    // ---- getters ---------------------------------------------------------------------

    /// Where the session stands.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Start => State::Start,
            Phase::Command => State::Command,
            Phase::Decide(_) => State::Decision,
            Phase::Data(_) => State::Data,
            Phase::Bdat { .. } => State::Bdat,
            Phase::Auth { .. } => State::Auth,
            Phase::Tls => State::Tls,
            Phase::Closed => State::Closed,
        }
    }

    /// Octets received and not yet processed (bounded by the line limit, or by
    /// [`Limits::max_buffered`] while a decision is pending and the adapter honours
    /// `read: false`).
    pub fn buffered(&self) -> usize {
        self.inbuf.len()
    }

    /// Whether the session is between transactions, waiting for a command: a
    /// [`shutdown`](Server::shutdown) now closes it at once. An adapter uses this to
    /// wake only such sessions when it starts shutting down.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Command) && self.txn.is_none()
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The authenticated identity, after a successful AUTH.
    pub fn authenticated(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    /// The HELO/EHLO/LHLO verb and name the client gave.
    pub fn helo(&self) -> Option<(Verb, &Host<'static>)> {
        self.helo.as_ref().map(|(v, h)| (*v, h))
    }

    /// The reverse-path of the open transaction.
    pub fn reverse_path(&self) -> Option<&ReversePath<'static>> {
        self.txn.as_ref().map(|t| &t.from)
    }

    /// The accepted recipients of the open transaction.
    pub fn recipients(&self) -> &[ForwardPath<'static>] {
        self.txn.as_ref().map_or(&[], |t| &t.recipients)
    }

    /// In LMTP mode after the end of a message: the recipients still waiting for their
    /// reply, the next one first.
    pub fn lmtp_recipients(&self) -> &[ForwardPath<'static>] {
        match (&self.phase, &self.txn) {
            (Phase::Decide(Pending::Message { left }), Some(t)) if self.config.lmtp => {
                &t.recipients[t.recipients.len() - left..]
            }
            _ => &[],
        }
    }

    /// A `Received:` trace header for the current transaction (RFC 5321 §4.4), with
    /// CRLF line endings and folding, for the host to prepend to the stored message.
    /// `id` is the host's queue identifier; `date` an RFC 5322 `date-time` the host
    /// formats (the core reads no clock). The `with` protocol follows RFC 3848 and
    /// RFC 6531 (ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP..., LMTP...). `for` is given only
    /// for a single recipient, so that a message does not disclose its other recipients.
    pub fn received_header(&self, id: &str, date: &str) -> String {
        let only = match self.recipients() {
            [only] => Some(only),
            _ => None,
        };
        self.trace(only).header(id, date)
    }

    /// The `Received:` header of a copy stored for `recipient` alone (a mailbox of its
    /// own): as [`received_header`](Server::received_header), with `for` that recipient
    /// whatever the others.
    pub fn received_header_for(
        &self,
        id: &str,
        date: &str,
        recipient: &ForwardPath<'static>,
    ) -> String {
        self.trace(Some(recipient)).header(id, date)
    }

    fn trace<'a>(&'a self, recipient: Option<&'a ForwardPath<'static>>) -> received::Trace<'a> {
        received::Trace {
            helo: self.helo.as_ref(),
            peer: &self.peer,
            hostname: &self.config.hostname,
            lmtp: self.config.lmtp,
            utf8: self.txn.as_ref().is_some_and(|t| t.smtputf8),
            tls: self.tls,
            authenticated: self.auth.is_some(),
            recipient,
        }
    }

    // ---- inputs ----------------------------------------------------------------------

    /// Bytes received from the peer.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if matches!(self.phase, Phase::Closed) || bytes.is_empty() {
            return;
        }
        self.now = now;
        match self.phase {
            Phase::Data(_) | Phase::Bdat { .. } => {
                // Postfix's smtpd_min_data_rate: each piece buys time by its size.
                let rate = self.config.timeouts.min_data_rate;
                self.last_activity = if rate == 0 {
                    now
                } else {
                    let bought = Duration::from_secs_f64(bytes.len() as f64 / rate as f64);
                    (self.last_activity + bought).min(now)
                };
            }
            // A new record starts: its whole line must arrive within the timeout.
            _ if self.inbuf.is_empty() && !self.framer.is_skipping() => self.last_activity = now,
            _ => {}
        }
        if matches!(self.phase, Phase::Tls) {
            // The adapter runs the handshake on the raw socket: anything that still comes
            // through here is plaintext sent after STARTTLS (CVE-2011-0411).
            self.fatal(ProtocolError::StartTlsInjection);
            return;
        }
        self.inbuf.extend_from_slice(bytes);
    }

    /// The peer closed its side (or the connection broke).
    pub fn handle_eof(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.now = now;
        if self.in_message() {
            self.event(Event::MessageAborted {
                reason: AbortReason::Disconnected,
            });
        }
        self.txn = None;
        self.close();
    }

    /// Time passed; if the deadline from [`Output::Wait`] is reached, the session sends
    /// `421 4.4.2` and closes (RFC 5321 §4.5.3.2).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        match self.deadline() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        if self.in_message() {
            self.event(Event::MessageAborted {
                reason: AbortReason::Disconnected,
            });
        }
        self.send(replies::timeout(&self.config.hostname));
        self.event(Event::Timeout);
        self.txn = None;
        self.close();
    }

    /// The TLS handshake the session asked for with [`Output::StartTls`] completed. The
    /// session starts over (RFC 3207 §4.2): no HELO, no AUTH, no transaction.
    pub fn handle_tls_established(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Tls) {
            return;
        }
        self.now = now;
        self.last_activity = now;
        self.tls = true;
        self.helo = None;
        self.auth = None;
        self.txn = None;
        self.phase = Phase::Command;
        self.event(Event::TlsEstablished);
    }

    // ---- decisions -------------------------------------------------------------------

    /// Applies a host's [`Decision`]. A reply of the wrong class is a bug in the host; the
    /// session then answers `451 4.3.0` rather than stall, and the error is returned for
    /// the host to log.
    pub fn decide(&mut self, decision: Decision) -> Result<(), HostError> {
        let result = match decision {
            Decision::Accept => self.accept(),
            Decision::AcceptWith(r) => self.accept_with(r),
            Decision::Reject(r) => self.reject(r),
        };
        if let Err(HostError::WrongReplyClass) = result {
            let _ = self.reject(replies::LOCAL_ERROR);
        }
        result
    }

    /// Goes on with the default positive reply for the pending decision.
    pub fn accept(&mut self) -> Result<(), HostError> {
        self.verdict(Verdict::Accept(None))
    }

    /// Goes on with the host's own positive (2xx) reply, e.g. `250 2.0.0 Ok: queued as
    /// ABC123` after a message.
    pub fn accept_with(&mut self, reply: Reply) -> Result<(), HostError> {
        if !reply.code().is_positive() {
            return Err(HostError::WrongReplyClass);
        }
        self.verdict(Verdict::Accept(Some(reply)))
    }

    /// Refuses with a 4xx or 5xx reply.
    pub fn reject(&mut self, reply: Reply) -> Result<(), HostError> {
        let code = reply.code();
        if !(code.is_transient() || code.is_permanent()) {
            return Err(HostError::WrongReplyClass);
        }
        self.verdict(Verdict::Reject(reply))
    }

    /// Supplies the challenge [`Event::AuthChallengeNeeded`] asked for:
    /// `<random.timestamp@hostname>` (RFC 2195 §2), unique per attempt.
    pub fn auth_challenge(&mut self, challenge: &str) -> Result<(), HostError> {
        if !matches!(self.phase, Phase::Decide(Pending::Challenge)) {
            return Err(HostError::Challenge);
        }
        let (exchange, step) =
            ServerExchange::start(Mechanism::CramMd5, None, || challenge.to_owned());
        match step {
            Step::Challenge(c) => {
                self.send_challenge(&c);
                self.enter_auth(exchange);
                Ok(())
            }
            _ => Err(HostError::Challenge),
        }
    }

    /// Sends `reply` and closes, whatever the session is doing: a 554 instead of the
    /// greeting, or `421 4.3.2` when the host shuts down.
    pub fn close_with(&mut self, reply: Reply) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        if self.in_message() {
            self.event(Event::MessageAborted {
                reason: AbortReason::Disconnected,
            });
        }
        self.send(reply);
        self.txn = None;
        self.close();
    }

    /// Closes gracefully (RFC 5321 §3.8): at once if no mail transaction is open,
    /// otherwise after the reply that ends the current one (its final reply, a refusal of
    /// MAIL, or RSET), always at a command boundary and with `reply` (usually
    /// [`ServerConfig::shutdown_reply`]). An adapter that cannot wait longer calls
    /// [`Server::close_with`] at the end of its grace period.
    pub fn shutdown(&mut self, reply: Reply) {
        if !matches!(self.phase, Phase::Closed) {
            self.shutdown = Some(reply);
        }
    }

    // ---- output ----------------------------------------------------------------------

    /// The next thing to do. Call until it returns [`Output::Wait`] after every input and
    /// decision.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(output) = self.queue.pop_front() {
                return output;
            }
            if self.step() {
                continue;
            }
            // No progress without the outside world: flush the replies of the whole
            // pipelined batch in one write (RFC 2920 §3.2).
            if !self.outbuf.is_empty() {
                match self.hold_until {
                    Some(until) if self.now < until => {
                        return Output::Wait {
                            deadline: Some(until),
                            read: false,
                        };
                    }
                    _ => self.hold_until = None,
                }
                return Output::Transmit(self.outbuf.split().freeze());
            }
            let read = match self.phase {
                Phase::Closed | Phase::Tls => false,
                Phase::Decide(_) => self.inbuf.len() < self.config.limits.max_buffered,
                _ => true,
            };
            return Output::Wait {
                deadline: self.deadline(),
                read,
            };
        }
    }

    /// When the session times out, if nothing happens before.
    pub fn deadline(&self) -> Option<Instant> {
        let t = &self.config.timeouts;
        let timeout = match self.phase {
            Phase::Start | Phase::Command | Phase::Auth { .. } => t.command,
            Phase::Data(_) | Phase::Bdat { .. } => t.data_block,
            Phase::Tls => t.tls_handshake,
            Phase::Decide(_) | Phase::Closed => return None,
        };
        Some(self.last_activity + timeout)
    }

    // ---- the state table -------------------------------------------------------------

    /// One step of progress on buffered input; false when none is possible.
    fn step(&mut self) -> bool {
        match self.phase {
            Phase::Start => {
                self.send(replies::greeting(
                    &self.config.hostname,
                    &self.config.greeting,
                ));
                self.phase = Phase::Command;
                self.event(Event::Connected);
                true
            }
            Phase::Command if self.shutdown.is_some() && self.txn.is_none() => {
                if let Some(r) = self.shutdown.take() {
                    self.send(r);
                    self.close();
                }
                true
            }
            Phase::Command => self.read_command(),
            Phase::Data(_) => self.read_data(),
            Phase::Bdat { .. } => self.read_bdat(),
            Phase::Auth { .. } => self.read_auth_line(),
            Phase::Decide(_) | Phase::Tls | Phase::Closed => false,
        }
    }

    /// Takes the next framed line out of the buffer, CRLF excluded: `None` when more
    /// input is needed.
    fn next_line(&mut self) -> Option<Result<Bytes, CommandError>> {
        match self.framer.next_line(&self.inbuf) {
            Line::NeedMore { discarded } => {
                self.inbuf.advance(discarded);
                None
            }
            Line::Error { error, consumed } => {
                self.inbuf.advance(consumed);
                Some(Err(error))
            }
            Line::Complete { line, consumed } => {
                // What precedes the line is the skipped tail of an over-long line: drop
                // it, never parse it (a smuggled command would hide there).
                let len = line.len();
                self.inbuf.advance(consumed - len - 2);
                let mut line = self.inbuf.split_to(len + 2).freeze();
                line.truncate(len);
                Some(Ok(line))
            }
        }
    }

    fn read_command(&mut self) -> bool {
        if self.too_many_errors() {
            return true;
        }
        let line = match self.next_line() {
            None => return false,
            Some(Err(error)) => {
                self.command_error(error);
                return true;
            }
            Some(Ok(line)) => line,
        };
        let options = crate::ParseOptions {
            utf8: self.config.extensions.smtputf8 && self.txn.as_ref().is_none_or(|t| t.smtputf8),
        };
        match Command::parse_with(&line, options) {
            Ok(command) => self.handle_command(command),
            Err(error) => self.command_error(error),
        }
        true
    }

    /// A command line that did not parse.
    fn command_error(&mut self, error: CommandError) {
        let fatal = matches!(
            error,
            CommandError::BareLf | CommandError::BareCr | CommandError::Syntax { verb: Verb::Bdat }
        );
        let mut r = error.reply();
        if let CommandError::Address {
            verb: Verb::Mail,
            error: crate::AddressError::Utf8NotPermitted,
        } = error
        {
            if !self.config.extensions.smtputf8 {
                r = replies::UTF8_NOT_OFFERED;
            }
        }
        // A BDAT whose size cannot be read leaves the stream unframed: nothing after it
        // can be trusted to be a command, so the session ends.
        self.send(r);
        self.violation(ProtocolError::Command(error));
        if fatal {
            self.abort_message();
            self.close();
        }
    }

    fn handle_command(&mut self, command: Command<'_>) {
        let Some(verb) = command.verb() else {
            if command.is_forbidden() {
                self.send(replies::FORBIDDEN);
                self.event(Event::ProtocolError(ProtocolError::ForbiddenCommand));
                self.abort_message();
                self.close();
            } else {
                self.send(replies::NOT_RECOGNIZED);
                self.violation(ProtocolError::UnknownCommand);
            }
            return;
        };
        // RFC 2920 §3.1: commands that end a group must be the last in what was sent.
        let pipelined = !self.inbuf.is_empty();
        let pipelining = self.config.extensions.pipelining
            && self.helo.as_ref().is_some_and(|h| h.0 != Verb::Helo);
        if verb == Verb::StartTls && pipelined {
            // CVE-2011-0411: never process what was sent before the TLS handshake.
            self.fatal(ProtocolError::StartTlsInjection);
            return;
        }
        let must_wait =
            ends_group(verb) || (!pipelining && verb != Verb::Quit && verb != Verb::Bdat);
        if pipelined && must_wait && self.config.sync == SyncPolicy::Reject {
            self.fatal(ProtocolError::Synchronization);
            return;
        }
        // Postfix's smtpd_junk_command_limit: what does not move mail along.
        let junk = matches!(
            verb,
            Verb::Helo
                | Verb::Ehlo
                | Verb::Lhlo
                | Verb::Rset
                | Verb::Noop
                | Verb::Vrfy
                | Verb::Expn
                | Verb::Etrn
                | Verb::Help
        );
        if junk {
            self.junk += 1;
            if self.junk > self.config.limits.max_junk_commands {
                self.count_error();
            }
        }
        match command {
            Command::Helo(host) | Command::Ehlo(host) | Command::Lhlo(host) => {
                if self.config.lmtp != (verb == Verb::Lhlo) {
                    self.send(replies::NOT_RECOGNIZED);
                    self.violation(ProtocolError::UnknownCommand);
                    return;
                }
                self.ask(
                    Pending::Hello {
                        verb,
                        host: host.clone().into_owned(),
                    },
                    Event::Hello {
                        verb,
                        host: host.into_owned(),
                    },
                );
            }
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset();
                self.send(replies::OK);
            }
            Command::Noop(_) => self.send(replies::OK),
            Command::Help(_) => self.send(replies::HELP),
            Command::Quit => {
                self.send(replies::BYE);
                self.event(Event::Quit);
                self.reset_quietly();
                self.close();
            }
            Command::Vrfy(text) => self.ask(Pending::Vrfy, Event::Vrfy(text.into_owned())),
            Command::Expn(text) => self.ask(Pending::Expn, Event::Expn(text.into_owned())),
            Command::Etrn(text) => {
                if self.config.extensions.etrn {
                    self.ask(Pending::Etrn, Event::Etrn(text.into_owned()));
                } else {
                    self.not_implemented();
                }
            }
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(
                mechanism.as_str(),
                initial_response.as_ref().map(|r| r.expose().as_slice()),
            ),
            Command::Unknown(_) => {}
        }
    }

    fn mail(&mut self, from: ReversePath<'_>, params: MailParams<'_>) {
        let ext = &self.config.extensions;
        if self.helo.is_none() && self.config.helo_required {
            return self.bad_sequence(Verb::Mail, replies::SEND_HELO_FIRST);
        }
        if self.txn.is_some() {
            return self.bad_sequence(Verb::Mail, replies::NESTED_MAIL);
        }
        if self.config.require_tls && !self.tls {
            return self.send(replies::STARTTLS_FIRST);
        }
        if self.config.require_auth && self.auth.is_none() {
            return self.send(replies::AUTH_REQUIRED);
        }
        // RFC 5321 §4.1.1.11: parameters of extensions not offered are refused with 555.
        let unsupported = [
            (
                "BODY",
                matches!(params.body, Some(BodyType::EightBitMime)) && !ext.eight_bit_mime,
            ),
            (
                "BODY",
                matches!(params.body, Some(BodyType::BinaryMime))
                    && !(ext.binary_mime && ext.chunking),
            ),
            ("SMTPUTF8", params.smtputf8 && !ext.smtputf8),
            ("RET", params.ret.is_some() && !ext.dsn),
            ("ENVID", params.envid.is_some() && !ext.dsn),
            ("AUTH", params.auth.is_some() && ext.auth.is_empty()),
            (
                "REQUIRETLS",
                params.requiretls && !(ext.requiretls && self.tls),
            ),
            (
                "MT-PRIORITY",
                params.mt_priority.is_some() && !ext.mt_priority,
            ),
            ("BY", params.by.is_some() && !ext.deliver_by),
        ];
        if let Some(name) = first_unsupported(&unsupported, &params.other, ext) {
            return self.unsupported_param(&name);
        }
        // RFC 1870 §6.2: a declared size over the limit is refused at once.
        if let (Some(size), Some(max)) = (params.size, self.config.limits.max_message_size) {
            if size > max {
                return self.send(replies::SIZE_OVER_LIMIT);
            }
        }
        let (from, params) = (from.into_owned(), params.into_owned());
        self.ask(
            Pending::Mail {
                from: from.clone(),
                params: params.clone(),
            },
            Event::Mail { from, params },
        );
    }

    fn rcpt(&mut self, to: ForwardPath<'_>, params: RcptParams<'_>) {
        let ext = &self.config.extensions;
        let Some(txn) = &mut self.txn else {
            return self.bad_sequence(Verb::Rcpt, replies::NEED_MAIL);
        };
        if txn.bdat_started {
            return self.bad_sequence(Verb::Rcpt, replies::RCPT_AFTER_BDAT);
        }
        let unsupported = [
            ("NOTIFY", params.notify.is_some() && !ext.dsn),
            ("ORCPT", params.orcpt.is_some() && !ext.dsn),
        ];
        if let Some(name) = first_unsupported(&unsupported, &params.other, ext) {
            return self.unsupported_param(&name);
        }
        txn.rcpt_attempts += 1;
        // RFC 5321 §4.5.3.1.10: 452 for too many recipients, so the client retries the
        // rest later.
        if txn.recipients.len() >= self.config.limits.max_recipients {
            txn.overshoot += 1;
            if txn.overshoot > self.config.limits.recipient_overshoot {
                self.count_error();
            }
            return self.send(replies::TOO_MANY_RECIPIENTS);
        }
        let (to, params) = (to.into_owned(), params.into_owned());
        self.ask(Pending::Rcpt { to: to.clone() }, Event::Rcpt { to, params });
    }

    /// Checks common to DATA and BDAT; the reply to refuse with, if any.
    fn body_refusal(&self, verb: Verb) -> Option<Reply> {
        let Some(txn) = &self.txn else {
            return Some(replies::NEED_MAIL);
        };
        if let Some(r) = &txn.bdat_failed {
            return Some(r.clone());
        }
        if verb == Verb::Data && txn.body == Some(BodyType::BinaryMime) {
            // RFC 3030 §3: BINARYMIME bodies go only with BDAT.
            return Some(replies::BDAT_REQUIRED);
        }
        if verb == Verb::Data && txn.bdat_started {
            return Some(replies::DATA_AFTER_BDAT);
        }
        if txn.recipients.is_empty() {
            return Some(if txn.rcpt_attempts == 0 {
                replies::NEED_RCPT
            } else {
                replies::NO_VALID_RECIPIENTS
            });
        }
        None
    }

    fn data(&mut self) {
        if let Some(r) = self.body_refusal(Verb::Data) {
            self.send(r);
            return self.violation(ProtocolError::BadSequence(Verb::Data));
        }
        self.send(replies::START_DATA);
        let decoder = DataDecoder::new()
            .with_bare_line_endings(self.config.bare_line_endings)
            .with_long_lines(self.config.long_lines)
            .with_max_size(self.config.limits.max_message_size);
        self.phase = Phase::Data(decoder);
        self.last_activity = self.now;
        self.event(Event::MessageStart);
    }

    fn bdat(&mut self, size: u64, last: bool) {
        if !self.config.extensions.chunking {
            // The chunk that follows will be read as commands; they fail in turn and
            // the error limit ends the session. RFC 3030 gives no way to skip it.
            return self.not_implemented();
        }
        if let Some(r) = self.body_refusal(Verb::Bdat) {
            // RFC 3030 §2: the chunk is read and discarded, then refused.
            self.phase = Phase::Bdat {
                remaining: size,
                last,
                discard: true,
            };
            match &mut self.txn {
                Some(txn) => {
                    let was_running = txn.bdat_started && txn.bdat_failed.is_none();
                    txn.bdat_failed.get_or_insert(r);
                    if was_running {
                        self.event(Event::MessageAborted {
                            reason: AbortReason::Bdat,
                        });
                    }
                }
                None => self.pending_bdat_reply = Some(r),
            }
            return;
        }
        let Some(txn) = &mut self.txn else { return };
        let total = txn.bdat_size.saturating_add(size);
        let first = !txn.bdat_started;
        txn.bdat_started = true;
        txn.bdat_size = total;
        if first {
            self.event(Event::MessageStart);
        }
        if self
            .config
            .limits
            .max_message_size
            .is_some_and(|max| total > max)
        {
            let r = data_reply(DataError::SizeExceeded);
            if let Some(txn) = &mut self.txn {
                txn.bdat_failed = Some(r);
            }
            self.event(Event::MessageAborted {
                reason: AbortReason::Data(DataError::SizeExceeded),
            });
            self.phase = Phase::Bdat {
                remaining: size,
                last,
                discard: true,
            };
            return;
        }
        self.phase = Phase::Bdat {
            remaining: size,
            last,
            discard: false,
        };
    }

    fn read_data(&mut self) -> bool {
        let Phase::Data(decoder) = &mut self.phase else {
            return false;
        };
        if self.inbuf.is_empty() {
            return false;
        }
        let base = self.inbuf.as_ptr() as usize;
        let end = base + self.inbuf.len();
        let step = match decoder.decode(&self.inbuf) {
            DecodeStep::Data { data, consumed } => {
                // `data` is a slice of the buffer (zero-copy) or a constant CRLF.
                let start = data.as_ptr() as usize;
                if start >= base && start + data.len() <= end {
                    Body::Slice(start - base, data.len(), consumed)
                } else {
                    Body::Copy(Bytes::copy_from_slice(data), consumed)
                }
            }
            DecodeStep::Failed { error, consumed } => Body::Failed(error, consumed),
            DecodeStep::NeedMore { consumed } => Body::More(consumed),
            DecodeStep::Done { outcome, consumed } => Body::Done(outcome, consumed),
        };
        match step {
            Body::Slice(offset, len, consumed) => {
                let mut taken = self.inbuf.split_to(consumed).freeze();
                taken.truncate(offset + len);
                self.event(Event::Body(taken.split_off(offset)));
            }
            Body::Copy(chunk, consumed) => {
                let _ = self.inbuf.split_to(consumed);
                self.event(Event::Body(chunk));
            }
            Body::Failed(error, consumed) => {
                let _ = self.inbuf.split_to(consumed);
                self.event(Event::MessageAborted {
                    reason: AbortReason::Data(error),
                });
            }
            Body::More(consumed) => {
                let _ = self.inbuf.split_to(consumed);
                return false;
            }
            Body::Done(outcome, consumed) => {
                let _ = self.inbuf.split_to(consumed);
                match outcome {
                    Ok(()) => self.ask_message(),
                    Err(error) => {
                        // Already reported as MessageAborted by `Failed`. LMTP: one reply
                        // per accepted recipient after the final dot, whatever the outcome
                        // (RFC 2033 §4.2), here the same refusal for each.
                        let replies = match &self.txn {
                            Some(t) if self.config.lmtp => t.recipients.len().max(1),
                            _ => 1,
                        };
                        for _ in 0..replies {
                            self.send(data_reply(error));
                        }
                        self.txn = None;
                        self.phase = Phase::Command;
                    }
                }
            }
        }
        true
    }

    fn read_bdat(&mut self) -> bool {
        let Phase::Bdat {
            remaining,
            last,
            discard,
        } = &mut self.phase
        else {
            return false;
        };
        if *remaining > 0 {
            if self.inbuf.is_empty() {
                return false;
            }
            let n =
                usize::try_from(*remaining).map_or(self.inbuf.len(), |r| r.min(self.inbuf.len()));
            *remaining -= n as u64;
            let chunk = self.inbuf.split_to(n).freeze();
            if !*discard {
                self.event(Event::Body(chunk));
            }
            return true;
        }
        let (last, discard) = (*last, *discard);
        if discard {
            let r = match (&self.txn, self.pending_bdat_reply.take()) {
                (_, Some(r)) => r,
                (Some(t), None) => t.bdat_failed.clone().unwrap_or(replies::TRANSACTION_FAILED),
                (None, None) => replies::NEED_MAIL,
            };
            // LMTP: BDAT LAST, like the final dot of DATA, gets one reply per accepted
            // recipient (RFC 2033 §4.2 with RFC 3030), here the same refusal for each.
            let replies = match &self.txn {
                Some(t) if self.config.lmtp && last => t.recipients.len().max(1),
                _ => 1,
            };
            for _ in 1..replies {
                self.send(r.clone());
            }
            self.send(r);
            if last {
                // RFC 3030 §2: BDAT LAST ends the transaction, refused or not, as the
                // final dot of DATA does.
                self.txn = None;
            }
            self.phase = Phase::Command;
            return true;
        }
        if last {
            self.ask_message();
        } else {
            let size = self.txn.as_ref().map_or(0, |t| t.bdat_size);
            self.send(replies::octets_received(size));
            self.phase = Phase::Command;
        }
        true
    }

    fn ask_message(&mut self) {
        if self.config.lmtp {
            let left = self.txn.as_ref().map_or(0, |t| t.recipients.len());
            self.event(Event::LmtpMessageEnd { recipients: left });
            self.ask_lmtp(left);
        } else {
            self.ask(Pending::Message { left: 1 }, Event::MessageEnd);
        }
    }

    /// RFC 2033 §4.2: one decision, and one reply, per accepted recipient.
    fn ask_lmtp(&mut self, left: usize) {
        let to = self
            .txn
            .as_ref()
            .and_then(|t| t.recipients.get(t.recipients.len() - left))
            .cloned();
        match to {
            Some(to) if left > 0 => self.ask(Pending::Message { left }, Event::LmtpDelivery { to }),
            _ => {
                self.txn = None;
                self.phase = Phase::Command;
            }
        }
    }

    fn starttls(&mut self) {
        if !self.config.extensions.starttls {
            return self.not_implemented();
        }
        if self.tls {
            self.send(replies::TLS_ALREADY_ACTIVE);
            return self.violation(ProtocolError::BadSequence(Verb::StartTls));
        }
        self.send(replies::READY_FOR_TLS);
        self.reset_quietly();
        self.flush();
        self.queue.push_back(Output::StartTls);
        self.phase = Phase::Tls;
    }

    /// The mechanisms offered now: password mechanisms wait for TLS when required.
    fn offered_mechanisms(&self) -> Vec<Mechanism> {
        self.config
            .extensions
            .auth
            .iter()
            .filter_map(|m| Mechanism::parse(m).ok())
            .filter(|m| self.tls || !self.config.auth_requires_tls || !m.sends_password_in_clear())
            .collect()
    }

    fn auth(&mut self, mechanism: &str, initial: Option<&[u8]>) {
        if self.config.extensions.auth.is_empty() {
            return self.not_implemented();
        }
        if !self.helo.as_ref().is_some_and(|h| h.0 != Verb::Helo) {
            return self.bad_sequence(Verb::Auth, replies::SEND_EHLO_FIRST);
        }
        if self.auth.is_some() {
            return self.bad_sequence(Verb::Auth, replies::ALREADY_AUTHENTICATED);
        }
        if self.txn.is_some() {
            return self.bad_sequence(Verb::Auth, replies::AUTH_IN_TRANSACTION);
        }
        let mech = match Mechanism::parse(mechanism) {
            Ok(m)
                if self
                    .config
                    .extensions
                    .auth
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(m.as_str())) =>
            {
                m
            }
            _ => return self.send(replies::UNKNOWN_MECHANISM),
        };
        if !self.offered_mechanisms().contains(&mech) {
            // RFC 4954 §6: 538 when the mechanism needs an encrypted channel first.
            return self.send(replies::ENCRYPTION_REQUIRED);
        }
        if mech == Mechanism::CramMd5 && initial.is_none() {
            self.ask(
                Pending::Challenge,
                Event::AuthChallengeNeeded { mechanism: mech },
            );
            return;
        }
        let (exchange, step) = ServerExchange::start(mech, initial, String::new);
        self.auth_step(exchange, step, None);
    }

    fn enter_auth(&mut self, exchange: ServerExchange) {
        self.framer.set_max_len(self.config.limits.max_auth_line);
        self.phase = Phase::Auth {
            exchange,
            reject: None,
        };
    }

    fn send_challenge(&mut self, challenge: &[u8]) {
        // RFC 4954 §4: `"334" SP [base64] CRLF` — the space is there even when empty,
        // and no enhanced status code goes on a 334.
        self.outbuf.extend_from_slice(b"334 ");
        self.outbuf
            .extend_from_slice(STANDARD.encode(challenge).as_bytes());
        self.outbuf.extend_from_slice(b"\r\n");
    }

    fn auth_step(&mut self, exchange: ServerExchange, step: Step, reject: Option<Reply>) {
        match step {
            Step::Challenge(c) => {
                self.send_challenge(&c);
                self.enter_auth(exchange);
                if let Phase::Auth { reject: r, .. } = &mut self.phase {
                    *r = reject;
                }
            }
            Step::Done(credentials) => {
                self.end_auth();
                let identity = credentials.identity().map(str::to_owned);
                let mechanism = exchange.mechanism().clone();
                self.ask(
                    Pending::Auth { exchange, identity },
                    Event::Auth {
                        mechanism,
                        credentials,
                    },
                );
            }
            Step::Failed(error) => {
                self.end_auth();
                let cancelled = matches!(error, crate::sasl::SaslError::Cancelled);
                let r = match reject {
                    Some(r) if matches!(error, crate::sasl::SaslError::Rejected) => r,
                    _ => {
                        let (code, e, text) = error.reply();
                        reply(code, e, text)
                    }
                };
                self.send(r);
                if !cancelled {
                    self.auth_failed();
                }
            }
        }
    }

    fn end_auth(&mut self) {
        self.framer.set_max_len(self.config.limits.max_line);
        self.phase = Phase::Command;
    }

    fn auth_failed(&mut self) {
        self.auth_failures += 1;
        self.event(Event::ProtocolError(ProtocolError::AuthFailed));
        if self.auth_failures >= self.config.limits.max_auth_failures {
            self.send(replies::too_many_auth_failures(&self.config.hostname));
            self.abort_message();
            self.close();
        }
    }

    fn read_auth_line(&mut self) -> bool {
        let line = match self.next_line() {
            None => return false,
            Some(Err(error)) => {
                self.end_auth();
                if error == CommandError::LineTooLong {
                    // RFC 4954 §6.
                    let (code, e, text) = crate::sasl::AUTH_LINE_TOO_LONG;
                    self.send(reply(code, e, text));
                    self.violation(ProtocolError::AuthFailed);
                } else {
                    self.command_error(error);
                }
                return true;
            }
            Some(Ok(line)) => line,
        };
        if !self.inbuf.is_empty() && self.config.sync == SyncPolicy::Reject {
            // RFC 4954 §4: the client waits for each challenge.
            self.fatal(ProtocolError::Synchronization);
            return true;
        }
        let Phase::Auth {
            mut exchange,
            reject,
        } = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return false;
        };
        let step = exchange.handle_line(&line);
        self.auth_step(exchange, step, reject);
        true
    }

    // ---- decisions -------------------------------------------------------------------

    fn verdict(&mut self, decision: Verdict) -> Result<(), HostError> {
        let Phase::Decide(pending) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Err(HostError::NoDecisionPending);
        };
        let (accepted, custom) = match decision {
            Verdict::Accept(r) => (true, r),
            Verdict::Reject(r) => (false, Some(r)),
        };
        // As Postfix counts them: a refused command is an error (relay denied, unknown
        // user, ...), and a message taken forgives the errors and junk commands before
        // it. AUTH failures have their own count; an LMTP recipient's delivery result is
        // not the client's error.
        let is_message = matches!(pending, Pending::Message { .. });
        let own_count = matches!(pending, Pending::Auth { .. } | Pending::Challenge);
        let counts = !(own_count || is_message && self.config.lmtp);
        match pending {
            Pending::Hello { verb, host } => {
                if accepted {
                    self.reset();
                    self.helo = Some((verb, host));
                    let r = match (custom, verb) {
                        (Some(r), _) => r,
                        (None, Verb::Helo) => replies::helo(&self.config.hostname),
                        (None, _) => self.ehlo_reply(),
                    };
                    self.send(r);
                } else if let Some(r) = custom {
                    self.send(r);
                }
            }
            Pending::Mail { from, params } => {
                if accepted {
                    self.txn = Some(Transaction {
                        from,
                        body: params.body,
                        smtputf8: params.smtputf8,
                        recipients: Vec::new(),
                        rcpt_attempts: 0,
                        overshoot: 0,
                        bdat_size: 0,
                        bdat_started: false,
                        bdat_failed: None,
                    });
                }
                self.send(custom.unwrap_or(replies::MAIL_OK));
            }
            Pending::Rcpt { to } => {
                if accepted {
                    if let Some(txn) = &mut self.txn {
                        txn.recipients.push(to);
                    }
                }
                self.send(custom.unwrap_or(replies::RCPT_OK));
            }
            Pending::Message { left } => {
                self.send(custom.unwrap_or(replies::QUEUED));
                if self.config.lmtp {
                    self.ask_lmtp(left - 1);
                } else {
                    self.txn = None;
                }
            }
            Pending::Auth {
                mut exchange,
                identity,
            } => {
                if accepted {
                    self.auth = identity;
                    self.send(custom.unwrap_or(replies::AUTH_OK));
                } else {
                    // XOAUTH2 and OAUTHBEARER send an error challenge first (RFC 7628 §3.2.2).
                    let step = exchange.reject(None);
                    let r = custom.unwrap_or(replies::AUTH_INVALID);
                    match step {
                        Step::Challenge(_) => self.auth_step(exchange, step, Some(r)),
                        _ => {
                            self.send(r);
                            self.auth_failed();
                        }
                    }
                }
            }
            Pending::Challenge => {
                // Only `auth_challenge` answers this; put it back.
                self.phase = Phase::Decide(Pending::Challenge);
                if let Some(r) = custom.filter(|_| !accepted) {
                    self.phase = Phase::Command;
                    self.send(r);
                    return Ok(());
                }
                return Err(HostError::Challenge);
            }
            Pending::Vrfy => self.send(custom.unwrap_or(replies::CANNOT_VRFY)),
            Pending::Expn => self.send(custom.unwrap_or(replies::EXPN_NOT_AVAILABLE)),
            Pending::Etrn => self.send(custom.unwrap_or(replies::QUEUING_STARTED)),
        }
        if is_message && accepted {
            self.errors = 0;
            self.junk = 0;
        } else if counts && !accepted {
            self.count_error();
        }
        Ok(())
    }

    /// The EHLO/LHLO reply: extensions allowed in the current state.
    fn ehlo_reply(&self) -> Reply {
        let ext = &self.config.extensions;
        // The hostname was checked when the configuration was built.
        let Ok(mut caps) = Capabilities::new(self.config.hostname.clone()) else {
            return replies::helo(&self.config.hostname);
        };
        caps.pipelining = ext.pipelining;
        caps.size = Some(self.config.limits.max_message_size);
        caps.vrfy = ext.vrfy;
        caps.etrn = ext.etrn;
        caps.starttls = ext.starttls && !self.tls;
        for mechanism in self.offered_mechanisms() {
            let _ = caps.add_auth(mechanism.as_str());
        }
        caps.enhanced_status_codes = ext.enhanced_status_codes;
        caps.eight_bit_mime = ext.eight_bit_mime;
        caps.dsn = ext.dsn;
        caps.smtputf8 = ext.smtputf8;
        caps.chunking = ext.chunking;
        // RFC 3030 §3: BINARYMIME only with CHUNKING.
        caps.binary_mime = ext.chunking && ext.binary_mime;
        // RFC 8689 §4: REQUIRETLS only over TLS.
        caps.requiretls = ext.requiretls && self.tls;
        let _ = caps.set_mt_priority(ext.mt_priority.then_some(None));
        caps.deliver_by = ext.deliver_by.then_some(None);
        caps.help = ext.help;
        caps.to_reply()
    }

    // ---- helpers ---------------------------------------------------------------------

    fn ask(&mut self, pending: Pending, event: Event) {
        self.phase = Phase::Decide(pending);
        self.event(event);
    }

    fn event(&mut self, event: Event) {
        self.queue.push_back(Output::Event(event));
    }

    /// Queues a reply; enhanced codes are dropped unless ENHANCEDSTATUSCODES is on.
    fn send(&mut self, reply: Reply) {
        let reply = if self.config.extensions.enhanced_status_codes {
            reply
        } else {
            reply.with_enhanced(None)
        };
        reply.encode(&mut self.outbuf);
        // Postfix's smtpd_error_sleep_time: past the soft limit every reply waits, one
        // delay after the other for a pipelined batch.
        let delay = self.config.timeouts.error_delay;
        if self.errors >= self.config.limits.soft_errors && !delay.is_zero() {
            self.hold_until = Some(self.hold_until.unwrap_or(self.now).max(self.now) + delay);
        }
    }

    fn flush(&mut self) {
        if !self.outbuf.is_empty() {
            self.queue
                .push_back(Output::Transmit(self.outbuf.split().freeze()));
        }
    }

    fn close(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.phase = Phase::Closed;
        self.inbuf.clear();
        self.flush();
        self.queue.push_back(Output::Close);
    }

    /// Before a close that the peer's error caused: the message in progress (a BDAT
    /// transaction between chunks, say) is lost, and the host must hear so, as it does
    /// for an EOF or a timeout.
    fn abort_message(&mut self) {
        if self.in_message() {
            self.event(Event::MessageAborted {
                reason: AbortReason::Disconnected,
            });
        }
        self.txn = None;
    }

    /// Synchronization errors and STARTTLS injection end the session.
    fn fatal(&mut self, error: ProtocolError) {
        if self.in_message() {
            self.event(Event::MessageAborted {
                reason: AbortReason::Disconnected,
            });
        }
        self.send(replies::SYNCHRONIZATION);
        self.event(Event::ProtocolError(error));
        self.txn = None;
        self.close();
    }

    /// A client error: reported, counted, and the session closes at the limit.
    fn violation(&mut self, error: ProtocolError) {
        self.event(Event::ProtocolError(error));
        self.count_error();
    }

    /// A command that failed, for whatever reason: the session closes at the limit.
    /// The limit is checked before the next command is read
    /// ([`too_many_errors`](Self::too_many_errors)), as Postfix does.
    fn count_error(&mut self) {
        self.errors += 1;
    }

    /// At the error limit, `421 4.7.0` and close (Postfix's `smtpd_hard_error_limit`).
    fn too_many_errors(&mut self) -> bool {
        if self.errors < self.config.limits.max_errors || self.closing {
            return false;
        }
        self.send(replies::too_many_errors(&self.config.hostname));
        self.event(Event::ProtocolError(ProtocolError::TooManyErrors));
        self.abort_message();
        self.close();
        true
    }

    fn bad_sequence(&mut self, verb: Verb, reply: Reply) {
        self.send(reply);
        self.violation(ProtocolError::BadSequence(verb));
    }

    fn not_implemented(&mut self) {
        self.send(replies::NOT_IMPLEMENTED);
        self.violation(ProtocolError::UnknownCommand);
    }

    fn unsupported_param(&mut self, name: &str) {
        self.send(replies::unsupported_option(name));
        self.violation(ProtocolError::Command(CommandError::Param {
            verb: Verb::Mail,
            keyword: name.to_owned(),
            error: crate::ParamError::Syntax,
        }));
    }

    /// Whether a message body is being received or awaits its verdict.
    fn in_message(&self) -> bool {
        matches!(
            self.phase,
            Phase::Data(_)
                | Phase::Bdat { discard: false, .. }
                | Phase::Decide(Pending::Message { .. })
        ) || self
            .txn
            .as_ref()
            .is_some_and(|t| t.bdat_started && t.bdat_failed.is_none())
    }

    /// RSET semantics (RFC 5321 §4.1.1.5): drop the transaction, tell the host.
    fn reset(&mut self) {
        if self.txn.is_some() {
            if self
                .txn
                .as_ref()
                .is_some_and(|t| t.bdat_started && t.bdat_failed.is_none())
            {
                self.event(Event::MessageAborted {
                    reason: AbortReason::Reset,
                });
            }
            self.txn = None;
            self.event(Event::Reset);
        }
    }

    fn reset_quietly(&mut self) {
        if self
            .txn
            .as_ref()
            .is_some_and(|t| t.bdat_started && t.bdat_failed.is_none())
        {
            self.event(Event::MessageAborted {
                reason: AbortReason::Reset,
            });
        }
        self.txn = None;
    }
}

/// What one step of the DATA decoder asks for, detached from the input buffer.
enum Body {
    Slice(usize, usize, usize),
    Copy(Bytes, usize),
    Failed(DataError, usize),
    More(usize),
    Done(Result<(), DataError>, usize),
}

fn data_reply(error: DataError) -> Reply {
    let (code, e, text) = error.reply();
    reply(code, (e.0, e.1.into(), e.2.into()), text)
}

/// A host's answer to a question the session asked (HELO, MAIL, RCPT, the end of a
/// message, AUTH, VRFY, ...), for [`Server::decide`]: adapters pass their handlers'
/// answers through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the protocol's default positive reply.
    Accept,
    /// Go on with this positive (2xx) reply, e.g. `250 2.0.0 Ok: queued as ABC`.
    AcceptWith(Reply),
    /// Refuse with this 4xx or 5xx reply.
    Reject(Reply),
}

impl Decision {
    /// A refusal built from parts; text holding CR, LF or NUL becomes `Error`, so this
    /// never fails.
    pub fn reject(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Decision {
        Decision::Reject(reply(code, enhanced, text.into()))
    }

    /// Whether the session goes on.
    pub fn is_accept(&self) -> bool {
        !matches!(self, Decision::Reject(_))
    }
}

/// What [`Server::decide`] does inside: a default or a custom reply.
enum Verdict {
    Accept(Option<Reply>),
    Reject(Reply),
}

/// A reply from parts known to be valid.
fn reply(
    code: u16,
    enhanced: (u8, u16, u16),
    text: impl Into<std::borrow::Cow<'static, str>>,
) -> Reply {
    let text = text.into();
    let e = EnhancedCode::of(enhanced.0, enhanced.1, enhanced.2);
    Reply::new(code, Some(e), text).unwrap_or_else(|_| Reply::fixed(code, Some(enhanced), "Error"))
}

/// RFC 5321 §4.1.1.11: the first parameter of an extension not offered (`typed` pairs a
/// keyword with "sent but not offered"), or unknown to the host's `extra_params`.
fn first_unsupported(
    typed: &[(&str, bool)],
    other: &[crate::Param<'_>],
    ext: &Extensions,
) -> Option<String> {
    if let Some((name, _)) = typed.iter().find(|(_, bad)| *bad) {
        return Some((*name).to_owned());
    }
    other
        .iter()
        .find(|p| {
            !ext.extra_params
                .iter()
                .any(|e| e.eq_ignore_ascii_case(p.keyword()))
        })
        .map(|p| p.keyword().to_ascii_uppercase())
}

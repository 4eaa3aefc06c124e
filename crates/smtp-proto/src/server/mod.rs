//! The server side of an SMTP or LMTP session, Sans-I/O.
//!
//! A [`Session`] is the server side of one SMTP session (one connection). The host moves
//! bytes and decisions in and drains outputs until the session says it waits:
//!
//! ```
//! use std::time::Instant;
//! use smtp_proto::server::{Output, PeerInfo, Session, ServerConfig};
//!
//! let config = ServerConfig::new("mx.example.org").unwrap();
//! let now = Instant::now();
//! let mut server = Session::new(config.into(), PeerInfo::default(), now);
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
//! - Getters (`&self`): [`state`](Session::state), [`is_idle`](Session::is_idle),
//!   [`is_tls`](Session::is_tls), [`authenticated`](Session::authenticated),
//!   [`helo`](Session::helo), [`reverse_path`](Session::reverse_path),
//!   [`recipients`](Session::recipients), [`lmtp_recipients`](Session::lmtp_recipients),
//!   [`received_header`](Session::received_header),
//!   [`received_header_for`](Session::received_header_for),
//!   [`deadline`](Session::deadline), [`buffered`](Session::buffered).
//! - Inputs: [`handle_input`](Session::handle_input), [`handle_eof`](Session::handle_eof),
//!   [`handle_timeout`](Session::handle_timeout),
//!   [`handle_tls_established`](Session::handle_tls_established).
//! - Decisions: [`decide`](Session::decide) (or [`accept`](Session::accept),
//!   [`accept_with`](Session::accept_with), [`reject`](Session::reject)),
//!   [`auth_challenge`](Session::auth_challenge) (or
//!   [`auth_challenge_from`](Session::auth_challenge_from)), [`close_with`](Session::close_with),
//!   [`shutdown`](Session::shutdown).
//! - Output: [`poll_output`](Session::poll_output), until [`Output::Wait`].
//!
//! The session answers everything that is pure protocol itself, with the reply and
//! enhanced status code the RFCs give; the host decides only policy (HELO, MAIL, RCPT,
//! the message, credentials, VRFY/EXPN/ETRN).
//!
//! # Layout
//! - `state.rs`: the one phase value, pending decisions, the transaction.
//! - `transitions.rs`: the state table (`step`), the only code that changes the phase
//!   (`enter`), and the one way a session ends (`end_session`).
//! - `commands.rs`, `body.rs`, `auth.rs`, `verdict.rs`: what commands, bodies, AUTH
//!   exchanges and the host's decisions do; each returns where to go next.
//! - `decision.rs`: a host's answer, checked when it is built.
//! - `host.rs`, `handler.rs`: what every adapter shows its application (connection
//!   info, context, handler traits, listener configuration), written once.
//! - `replies.rs`: every reply the session sends on its own; `received.rs`: the
//!   `Received:` header; `anvil.rs`: per-client limits for the host.
//!
//! `docs/state-machines.md` draws the table.

mod anvil;
mod auth;
mod body;
mod commands;
mod config;
mod decision;
mod event;
mod handler;
pub mod host;
mod received;
mod replies;
mod state;
mod transitions;
mod verdict;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes, BytesMut};

pub use anvil::{Anvil, AnvilLimits};
pub use config::{Extensions, Limits, ServerConfig, SyncPolicy, Timeouts};
pub use decision::{Acceptance, Decision, Refusal};
pub use event::{AbortReason, Event, HostError, Output, ProtocolError};
#[doc(hidden)]
pub use handler::__private;

use crate::address::{ForwardPath, Host, ReversePath};
use crate::command::CommandDecoder;
use crate::command::Verb;
use crate::error::CommandError;
use crate::line::Line;
use crate::reply::Reply;
use crate::sasl::{Mechanism, ServerExchange, Step};
use state::{AuthExchange, Chunks, Next, Pending, Phase, Transaction};
use verdict::Verdict;

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

/// One server session. See the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    config: Arc<ServerConfig>,
    peer: PeerInfo,
    phase: Phase,
    inbuf: BytesMut,
    outbuf: BytesMut,
    queue: VecDeque<Output>,
    /// Frames and parses command lines (its framer frames AUTH lines too, so that the
    /// tail of an over-long line is skipped whichever phase reads it).
    decoder: CommandDecoder,
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
    /// [`Session::shutdown`] was called: close with this at the next command boundary
    /// outside a transaction.
    shutdown: Option<Reply>,
}

impl Session {
    /// Starts a session. The greeting is produced by the first
    /// [`poll_output`](Session::poll_output).
    pub fn new(config: Arc<ServerConfig>, peer: PeerInfo, now: Instant) -> Session {
        let decoder = CommandDecoder::new(config.limits.max_line);
        let tls = peer.tls;
        Session {
            config,
            peer,
            phase: Phase::Greeting,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            queue: VecDeque::new(),
            decoder,
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
            shutdown: None,
        }
    }

    // ---- getters ---------------------------------------------------------------------

    /// Where the session stands.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Greeting => State::Start,
            Phase::Command => State::Command,
            Phase::Decide(_) => State::Decision,
            Phase::Data(_) => State::Data,
            Phase::Bdat(_) => State::Bdat,
            Phase::Auth(_) => State::Auth,
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
    /// [`shutdown`](Session::shutdown) now closes it at once. An adapter uses this to
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

    /// Octets of the open transaction's message body received so far, as handed to the
    /// host in [`Event::Body`] (dot-stuffing removed).
    pub fn body_size(&self) -> u64 {
        self.txn.as_ref().map_or(0, |t| t.size)
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
    /// own): as [`received_header`](Session::received_header), with `for` that recipient
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
            _ if self.inbuf.is_empty() && !self.decoder.framer.is_skipping() => {
                self.last_activity = now
            }
            _ => {}
        }
        if matches!(self.phase, Phase::Tls) {
            // The adapter runs the handshake on the raw socket: anything that still comes
            // through here is plaintext sent after STARTTLS (CVE-2011-0411).
            let event = Event::ProtocolError(ProtocolError::StartTlsInjection);
            let next = self.end_session(Some(replies::SYNCHRONIZATION), Some(event));
            self.enter(next);
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
        let next = self.end_session(None, None);
        self.enter(next);
    }

    /// Time passed; if the deadline from [`Output::Wait`] is reached, the session sends
    /// `421 4.4.2` and closes (RFC 5321 §4.5.3.2).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        match self.deadline() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        let reply = replies::timeout(&self.config.hostname);
        let next = self.end_session(Some(reply), Some(Event::Timeout));
        self.enter(next);
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
        self.enter(Next::Command);
        self.event(Event::TlsEstablished);
    }

    // ---- decisions -------------------------------------------------------------------

    /// Applies a host's [`Decision`]. Its reply was checked when it was built (an
    /// [`Acceptance`] is 2xx, a [`Refusal`] 4xx or 5xx), so this fails only when no
    /// decision is pending or the session has closed.
    pub fn decide(&mut self, decision: Decision) -> Result<(), HostError> {
        match decision {
            Decision::Accept => self.accept(),
            Decision::AcceptWith(r) => self.verdict(Verdict::Accept(Some(r.into_reply()))),
            Decision::Reject(r) => self.verdict(Verdict::Reject(r.into_reply())),
        }
    }

    /// Goes on with the default positive reply for the pending decision.
    pub fn accept(&mut self) -> Result<(), HostError> {
        self.verdict(Verdict::Accept(None))
    }

    /// Goes on with the host's own positive (2xx) reply, e.g. `250 2.0.0 Ok: queued as
    /// ABC123` after a message; any other class is [`HostError::WrongReplyClass`] and
    /// changes nothing.
    pub fn accept_with(&mut self, reply: Reply) -> Result<(), HostError> {
        if !reply.code().is_positive() {
            return Err(HostError::WrongReplyClass);
        }
        self.verdict(Verdict::Accept(Some(reply)))
    }

    /// Refuses with a 4xx or 5xx reply; any other class is [`HostError::WrongReplyClass`]
    /// and changes nothing.
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
        if matches!(self.phase, Phase::Closed) {
            return Err(HostError::Closed);
        }
        if !self.is_deciding(|p| matches!(p, Pending::Challenge)) {
            return Err(HostError::Challenge);
        }
        let (exchange, step) =
            ServerExchange::start(Mechanism::CramMd5, None, || challenge.to_owned());
        match step {
            Step::Challenge(c) => {
                self.send_challenge(&c);
                let reject = None;
                self.enter(Next::Auth(AuthExchange { exchange, reject }));
                Ok(())
            }
            _ => Err(HostError::Challenge),
        }
    }

    /// Supplies the challenge [`Event::AuthChallengeNeeded`] asked for, built from
    /// randomness and the time (seconds since the Unix epoch) that the host draws:
    /// `<random.timestamp@hostname>` (RFC 2195 §2), with `localhost` should the host name
    /// not fit a msg-id. Should the challenge still be refused, the client gets
    /// `454 4.7.0` (RFC 4954 §6) and the error is returned for the host to log.
    pub fn auth_challenge_from(&mut self, random: u64, unix_time: u64) -> Result<(), HostError> {
        let challenge = crate::sasl::cram_md5_challenge(random, unix_time, &self.config.hostname)
            .or_else(|_| crate::sasl::cram_md5_challenge(random, unix_time, "localhost"))
            .unwrap_or_default();
        let result = self.auth_challenge(&challenge);
        if result.is_err() && self.is_deciding(|p| matches!(p, Pending::Challenge)) {
            let _ = self.reject(crate::sasl::AUTH_TEMPORARY_FAILURE);
        }
        result
    }

    /// Sends `reply` and closes, whatever the session is doing: a 554 instead of the
    /// greeting, or `421 4.3.2` when the host shuts down.
    pub fn close_with(&mut self, reply: Reply) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let next = self.end_session(Some(reply), None);
        self.enter(next);
    }

    /// Closes gracefully (RFC 5321 §3.8): at once if no mail transaction is open,
    /// otherwise after the reply that ends the current one (its final reply, a refusal of
    /// MAIL, or RSET), always at a command boundary and with `reply` (usually
    /// [`ServerConfig::shutdown_reply`]). An adapter that cannot wait longer calls
    /// [`Session::close_with`] at the end of its grace period.
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
            Phase::Greeting | Phase::Command | Phase::Auth(_) => t.command,
            Phase::Data(_) | Phase::Bdat(_) => t.data_block,
            Phase::Tls => t.tls_handshake,
            Phase::Decide(_) | Phase::Closed => return None,
        };
        Some(self.last_activity + timeout)
    }

    // ---- reading -------------------------------------------------------------------

    /// Takes the next framed line out of the buffer, CRLF excluded: `None` when more
    /// input is needed.
    fn next_line(&mut self) -> Option<Result<Bytes, CommandError>> {
        match self.decoder.framer.next_line(&self.inbuf) {
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

    // ---- helpers ---------------------------------------------------------------------

    /// Queues an event for the host.
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

    /// Queues the replies written so far for transmission.
    fn flush(&mut self) {
        if !self.outbuf.is_empty() {
            self.queue
                .push_back(Output::Transmit(self.outbuf.split().freeze()));
        }
    }

    /// A command that failed, for whatever reason. The limit is checked before the next
    /// command is read, as Postfix does.
    fn count_error(&mut self) {
        self.errors += 1;
    }

    /// Whether a message body is being received or awaits its verdict.
    fn in_message(&self) -> bool {
        let receiving = match &self.phase {
            Phase::Data(_) | Phase::Decide(Pending::Message { .. }) => true,
            Phase::Bdat(chunk) => chunk.refusal.is_none(),
            _ => false,
        };
        receiving || self.bdat_receiving()
    }

    /// BDAT chunks of the open transaction are being received.
    fn bdat_receiving(&self) -> bool {
        self.txn
            .as_ref()
            .is_some_and(|t| matches!(t.chunks, Chunks::Receiving))
    }

    /// RSET semantics (RFC 5321 §4.1.1.5): drop the transaction, tell the host.
    fn reset(&mut self) {
        if self.txn.is_some() {
            if self.bdat_receiving() {
                self.event(Event::MessageAborted {
                    reason: AbortReason::Reset,
                });
            }
            self.txn = None;
            self.event(Event::Reset);
        }
    }

    /// RSET without its event, before QUIT and STARTTLS.
    fn reset_quietly(&mut self) {
        if self.bdat_receiving() {
            self.event(Event::MessageAborted {
                reason: AbortReason::Reset,
            });
        }
        self.txn = None;
    }
}

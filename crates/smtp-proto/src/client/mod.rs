//! The client side of an SMTP or LMTP session, Sans-I/O: one connection, one or many
//! messages, pipelined when the server allows it.
//!
//! The host (an adapter, a test) moves bytes in with [`Client::handle_input`], hands over
//! messages with [`Client::send_mail`] and their bodies with [`Client::send_body`] /
//! [`Client::end_body`] when asked ([`ClientEvent::BodyWanted`]), and drains
//! [`Client::poll_output`] until [`ClientOutput::Wait`].
//!
//! # Methods
//! - Getters: [`capabilities`](Client::capabilities), [`is_tls`](Client::is_tls),
//!   [`authenticated`](Client::authenticated), [`is_ready`](Client::is_ready),
//!   [`error`](Client::error) (a failure is sticky: later calls return it again).
//! - Inputs: [`handle_input`](Client::handle_input), [`handle_eof`](Client::handle_eof),
//!   [`handle_timeout`](Client::handle_timeout), [`handle_sending`](Client::handle_sending),
//!   [`handle_tls_established`](Client::handle_tls_established).
//! - Application calls: [`send_mail`](Client::send_mail), [`send_body`](Client::send_body),
//!   [`end_body`](Client::end_body), [`abort_body`](Client::abort_body),
//!   [`quit`](Client::quit).
//! - Output: [`poll_output`](Client::poll_output).
//!
//! # What it guarantees
//! - Replies are parsed strictly and with bounded memory; anything malformed, unsolicited
//!   or injected (bytes after the `220` to STARTTLS, CVE-2021-38371 family) ends the
//!   session, and is never read as success.
//! - The dot-stuffer normalises line endings to CRLF, so no smuggling sequence can leave.
//! - PLAIN and LOGIN never go over a connection without TLS unless the caller allows it.
//! - Every message ends in exactly one [`MessageOutcome`], per recipient and overall,
//!   with the server's full reply; a message whose final dot was sent but not answered is
//!   [`DeliveryStatus::Unknown`], never "sent".

mod config;
pub mod host;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

pub use config::{ClientConfig, ClientTimeouts, Envelope, Recipient, StartTls};

use crate::address::ForwardPath;
use crate::command::Command;
use crate::data::{DotStuffer, EncodeError, LineNormalizer, LongLines};
use crate::ehlo::Capabilities;
use crate::params::{BodyType, MailParams, RcptParams};
use crate::reply::{Reply, ReplyDecoder, ReplyError};
use crate::sasl::{self, ClientExchange, Mechanism, SaslError};
use crate::secret::Secret;

/// The verdict on one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientStatus {
    /// Accepted (and, after the final reply, delivered or queued).
    Accepted,
    /// A 4xx: try again later. 552 to RCPT counts here (RFC 5321 §4.5.3.1.10).
    Temporary,
    /// A 5xx: give up.
    Permanent,
    /// The final dot was sent and no reply came: it may or may not have been delivered.
    Unknown,
}

/// One recipient's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The recipient.
    pub to: ForwardPath<'static>,
    /// The verdict.
    pub status: RecipientStatus,
    /// The reply that decided it (RCPT, or in LMTP the per-recipient final reply).
    pub reply: Option<Reply>,
}

/// The verdict on a whole message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Accepted for every recipient.
    Sent,
    /// Accepted for some recipients, refused for others.
    Partial,
    /// Not accepted; try again later (4xx, connection lost before the final dot).
    Temporary,
    /// Not accepted and never will be (5xx, or refused locally).
    Permanent,
    /// The final dot went out and no reply came (timeout, disconnect): do not assume
    /// either way (RFC 5321 §6.1: the duplicate-delivery problem).
    Unknown,
}

/// Why a message was refused before anything was sent for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalRefusal {
    /// Bigger than the server's SIZE (RFC 1870 §6.1).
    #[error("message size {size} exceeds the server's limit of {limit}")]
    TooBig {
        /// The message size.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// An address needs SMTPUTF8 and the server does not offer it (RFC 6531 §3.5).
    #[error("the server does not support SMTPUTF8")]
    Smtputf8Unsupported,
    /// A binary body and no BINARYMIME with CHUNKING (RFC 3030).
    #[error("the server does not support BINARYMIME")]
    BinaryUnsupported,
    /// REQUIRETLS asked and not available (RFC 8689 §4.1).
    #[error("REQUIRETLS is not available on this connection")]
    RequireTlsUnavailable,
    /// A line over 998 octets in a DATA body (RFC 5321 §4.5.3.1.6).
    #[error("body line longer than 998 octets")]
    LineTooLong,
    /// The envelope has no recipients.
    #[error("no recipients")]
    NoRecipients,
    /// The caller abandoned the body ([`Client::abort_body`]), e.g. its source failed.
    #[error("message body abandoned")]
    Aborted,
}

/// The result of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageOutcome {
    /// The identifier [`Client::send_mail`] returned.
    pub id: u64,
    /// The overall verdict.
    pub status: DeliveryStatus,
    /// Per recipient, in envelope order.
    pub recipients: Vec<RecipientOutcome>,
    /// The reply that decided the message: the final reply, or the one that ended it
    /// early (MAIL, DATA, a BDAT chunk, a 421).
    pub reply: Option<Reply>,
    /// Set when the message was refused locally.
    pub refused: Option<LocalRefusal>,
    /// Lines over 998 octets that were sent anyway ([`LongLines::Accept`]).
    pub long_lines: u64,
}

/// Why the session failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The greeting was not 220 (RFC 5321 §3.1: 554 means no service here).
    #[error("{}", refused_or_unexpected("unexpected greeting", "greeting refused", .0))]
    Greeting(Reply),
    /// EHLO (and HELO) refused: a 4yz or 5yz (a 500 or 502 to EHLO first falls back to
    /// HELO), or a 3yz that nothing asked for.
    #[error("{}", refused_or_unexpected("unexpected reply to EHLO", "EHLO refused", .0))]
    Ehlo(Reply),
    /// STARTTLS required and not offered.
    #[error("STARTTLS required but not offered")]
    TlsUnavailable,
    /// STARTTLS required and not started: refused (RFC 3207 §4: 454), or answered with
    /// anything but 220.
    #[error("{}", refused_or_unexpected("unexpected reply to STARTTLS", "STARTTLS refused", .0))]
    TlsRefused(Reply),
    /// Bytes after the 220 to STARTTLS, before the handshake (response injection).
    #[error("plaintext injected after STARTTLS")]
    TlsInjection,
    /// Credentials were given and no mechanism can be used (none in common, or only
    /// cleartext ones without TLS).
    #[error("no usable authentication mechanism")]
    AuthUnavailable,
    /// AUTH refused (or answered with a 3yz other than 334).
    #[error("{}", refused_or_unexpected("unexpected reply to AUTH", "authentication failed", .0))]
    AuthFailed(Reply),
    /// The exchange could not go on.
    #[error("authentication error: {0}")]
    Sasl(#[from] SaslError),
    /// The server closes (421, RFC 5321 §3.8).
    #[error("service closing: {0}")]
    ServiceClosing(Reply),
    /// The server sent bytes that are not a reply.
    #[error("malformed reply: {0}")]
    Reply(#[from] ReplyError),
    /// A reply when no command was waiting for one, or that began before the command it
    /// would answer was sent: the server is out of step.
    #[error("unsolicited reply: {0}")]
    UnsolicitedReply(Reply),
    /// A reply of a kind the command cannot get: DATA answered with a 2yz (or a 3yz
    /// other than 354). No body was sent, so the message was not delivered; the server
    /// is out of step.
    #[error("unexpected reply to {command}: {reply}")]
    UnexpectedReply {
        /// The command.
        command: &'static str,
        /// What came.
        reply: Reply,
    },
    /// No reply within the timeout.
    #[error("timeout waiting for the server")]
    Timeout,
    /// The connection closed.
    #[error("connection closed by the server")]
    Disconnected,
    /// The body could not be sent ([`LocalRefusal::LineTooLong`], or the caller's
    /// [`Client::abort_body`]): the client closed the connection without the final dot,
    /// so that the server discards what it got.
    #[error("message abandoned: connection closed without the final dot")]
    BodyAbandoned,
}

/// Says what a reply that ended the session means: a refusal when it is one (4yz, 5yz),
/// otherwise a reply of the wrong kind (a 2yz is never a refusal).
fn refused_or_unexpected(unexpected: &str, refused: &str, reply: &Reply) -> String {
    let code = reply.code();
    if code.is_transient() || code.is_permanent() {
        format!("{refused}: {reply}")
    } else {
        format!("{unexpected}: {reply}")
    }
}

impl ClientError {
    /// Whether retrying later cannot help: a 5xx greeting, EHLO or AUTH refusal, or no
    /// usable AUTH mechanism. Everything else (4xx, 421, timeouts, lost connections, TLS
    /// trouble, malformed replies) is worth a later try.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Greeting(r) | ClientError::Ehlo(r) | ClientError::AuthFailed(r) => {
                r.code().is_permanent()
            }
            ClientError::AuthUnavailable => true,
            _ => false,
        }
    }

    /// The server's reply that caused the failure, if one did.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::Greeting(r)
            | ClientError::Ehlo(r)
            | ClientError::AuthFailed(r)
            | ClientError::ServiceClosing(r)
            | ClientError::TlsRefused(r)
            | ClientError::UnexpectedReply { reply: r, .. } => Some(r),
            _ => None,
        }
    }
}

/// A caller used the session wrongly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The session is closed or closing.
    #[error("the session is closed")]
    Closed,
    /// No body is wanted now.
    #[error("no message body is wanted now")]
    NoBodyWanted,
    /// The body cannot be sent ([`EncodeError`]); the message fails and the session
    /// closes without the final dot, so the server discards what it got.
    #[error("body: {0}")]
    Body(#[from] EncodeError),
    /// The session failed earlier, for this reason ([`Client::error`]); every call after
    /// the failure returns it again, as rustls does, so that no caller is left with an
    /// error that does not say why.
    #[error(transparent)]
    Failed(ClientError),
}

/// What the session tells its host.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server's greeting.
    Connected(Reply),
    /// The server's capabilities after EHLO (again after TLS).
    Capabilities(Capabilities),
    /// TLS is active.
    TlsEstablished,
    /// AUTH succeeded.
    Authenticated(Mechanism),
    /// Ready for a message ([`Client::send_mail`]) or [`Client::quit`].
    Ready,
    /// Send the body of message `id` now: [`Client::send_body`] any number of times,
    /// then [`Client::end_body`].
    BodyWanted {
        /// The message.
        id: u64,
    },
    /// A message is finished.
    MessageDone(MessageOutcome),
    /// A transcript line (`C: ...` or `S: ...`), when configured.
    Transcript(String),
    /// The session failed; every unfinished message was reported, and it closes.
    Failed(ClientError),
}

/// What the session wants done next.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum ClientOutput {
    /// Write these bytes.
    Transmit(Bytes),
    /// Handle an event.
    Event(ClientEvent),
    /// Start TLS on the raw socket now, then call
    /// [`Client::handle_tls_established`].
    StartTls,
    /// Close the connection after writing everything.
    Close,
    /// Nothing to do until input, a call, or the deadline.
    Wait {
        /// Call [`Client::handle_timeout`] then.
        deadline: Option<Instant>,
    },
}

/// The reply the session waits for, in the order the commands went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    /// The `.` sent to end a DATA that should not have been accepted; its reply is ignored.
    AbortDot,
    Bdat {
        last: bool,
    },
    /// The final reply (to the dot or to BDAT LAST).
    Final,
    /// LMTP: the final reply for the n-th accepted recipient.
    LmtpFinal(usize),
    Quit,
}

#[derive(Debug)]
enum Body {
    /// Not yet asked for.
    NotYet,
    /// DATA: the stuffer.
    Data(DotStuffer),
    /// BDAT: the chunk held back, to send with LAST if it is the last, and the CRLF
    /// normaliser for text bodies (`None` for BINARYMIME, which goes as it is).
    Bdat(Option<Bytes>, Option<LineNormalizer>),
    /// The body is complete (or abandoned).
    Done,
}

/// The message being sent.
#[derive(Debug)]
struct Current {
    id: u64,
    env: Envelope,
    pipelined: bool,
    bdat: bool,
    mail_ok: bool,
    rcpt: Vec<Option<Reply>>,
    /// Indexes of accepted recipients.
    accepted: Vec<usize>,
    body: Body,
    /// The reply that failed the message, if any.
    failed: Option<Reply>,
    /// The final dot (or BDAT LAST) went out.
    final_sent: bool,
    final_reply: Option<Reply>,
    lmtp: Vec<Option<Reply>>,
    long_lines: u64,
    /// When the host last started writing the body (or was asked for it): each piece
    /// must be on its way within the data-block timeout (RFC 5321 §4.5.3.2.5).
    body_at: Option<Instant>,
}

impl Current {
    /// A message about to start (or that never will: its body is then never asked for).
    fn new(id: u64, env: Envelope, pipelined: bool, bdat: bool) -> Current {
        Current {
            id,
            rcpt: vec![None; env.recipients.len()],
            env,
            pipelined,
            bdat,
            mail_ok: false,
            accepted: Vec::new(),
            body: Body::NotYet,
            failed: None,
            final_sent: false,
            final_reply: None,
            lmtp: Vec::new(),
            long_lines: 0,
            body_at: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Greeting, EHLO, STARTTLS, AUTH.
    Setup,
    /// Waiting for the TLS handshake.
    Tls,
    /// Idle or sending messages.
    Mail,
    /// QUIT sent or the session failed.
    Closing,
    Closed,
}

/// One client session. See the [module documentation](self).
#[derive(Debug)]
pub struct Client {
    config: Arc<ClientConfig>,
    stage: Stage,
    inbuf: BytesMut,
    outbuf: BytesMut,
    queue: VecDeque<ClientOutput>,
    decoder: ReplyDecoder,
    /// The replies waited for, in order: what each answers, when its command went out,
    /// and how many octets the server had sent by then. A reply that began before its
    /// command was sent cannot be its answer.
    expected: VecDeque<(Expect, Instant, u64)>,
    /// Octets received from the server so far.
    received: u64,
    /// Octets of them read as replies.
    consumed: u64,
    /// The mark of the command whose reply is being handled: further replies that the
    /// same command earns (LMTP, one per recipient) are matched against it.
    answering: u64,
    caps: Option<Capabilities>,
    tls: bool,
    auth: Option<ClientExchange>,
    authenticated: Option<Mechanism>,
    pending: VecDeque<(u64, Envelope)>,
    current: Option<Current>,
    next_id: u64,
    /// The server holds an open transaction (MAIL accepted, no final reply yet).
    server_txn: bool,
    /// A MAIL has been sent on this session (for [`ClientConfig::reset_between`]).
    mailed: bool,
    quit_requested: bool,
    ready_announced: bool,
    now: Instant,
    /// When the STARTTLS handshake started.
    tls_since: Option<Instant>,
    /// Why the session failed: kept, and returned by every later call.
    error: Option<ClientError>,
}

impl Client {
    /// Starts a session on a fresh connection; `tls` says whether TLS is already active
    /// (implicit TLS, RFC 8314).
    pub fn new(config: Arc<ClientConfig>, tls: bool, now: Instant) -> Client {
        let decoder = ReplyDecoder::new(config.reply_limits);
        let mut expected = VecDeque::new();
        expected.push_back((Expect::Greeting, now, 0));
        Client {
            config,
            stage: Stage::Setup,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            queue: VecDeque::new(),
            decoder,
            expected,
            received: 0,
            consumed: 0,
            answering: 0,
            caps: None,
            tls,
            auth: None,
            authenticated: None,
            pending: VecDeque::new(),
            current: None,
            next_id: 0,
            server_txn: false,
            mailed: false,
            quit_requested: false,
            ready_announced: false,
            now,
            tls_since: None,
            error: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ---- getters ---------------------------------------------------------------------

    /// The server's capabilities, after EHLO.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The mechanism AUTH succeeded with.
    pub fn authenticated(&self) -> Option<&Mechanism> {
        self.authenticated.as_ref()
    }

    /// Whether the session is idle and ready for a message.
    pub fn is_ready(&self) -> bool {
        self.stage == Stage::Mail && self.current.is_none() && self.pending.is_empty()
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Closed
    }

    /// Why the session failed, once it has: the error of [`ClientEvent::Failed`], kept
    /// for good. Every later [`send_mail`](Client::send_mail),
    /// [`send_body`](Client::send_body), [`end_body`](Client::end_body) and
    /// [`abort_body`](Client::abort_body) returns it again as [`UsageError::Failed`].
    pub fn error(&self) -> Option<&ClientError> {
        self.error.as_ref()
    }

    /// The sticky failure as a [`UsageError`], or `None` while the session is sound.
    fn failed(&self) -> Option<UsageError> {
        self.error.clone().map(UsageError::Failed)
    }

    // ---- inputs ----------------------------------------------------------------------

    /// Bytes received from the server.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.now = now;
        match self.stage {
            Stage::Closed => {}
            Stage::Tls => self.fail(ClientError::TlsInjection, false),
            // Replies are read one at a time by `poll_output`, so that no event goes out
            // stale (a BodyWanted followed by a 421 in the same read).
            _ => {
                self.received += bytes.len() as u64;
                self.inbuf.extend_from_slice(bytes);
            }
        }
    }

    /// The server closed the connection.
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        // What the server said before closing still counts (a 221, or a final reply).
        while self.stage != Stage::Closed && self.read_reply() {}
        match self.stage {
            Stage::Closed => {}
            // After QUIT, or with nothing outstanding, a close is the normal end.
            _ if self.expected.is_empty() && self.current.is_none() && self.pending.is_empty() => {
                self.close()
            }
            Stage::Closing if self.expected.iter().all(|(e, ..)| *e == Expect::Quit) => {
                self.close()
            }
            _ => self.fail(ClientError::Disconnected, false),
        }
    }

    /// Time passed; past the deadline of the reply waited for, the session fails.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.deadline().is_some_and(|d| now >= d) {
            let quitting = self.stage == Stage::Closing;
            if quitting {
                self.close();
            } else {
                self.fail(ClientError::Timeout, false);
            }
        }
    }

    /// The host starts writing what the machine transmitted: while a body is being
    /// sent, its data-block timer restarts from `now` (RFC 5321 §4.5.3.2.5: each send
    /// of a piece of the body within 3 minutes), so that [`Client::deadline`] bounds the
    /// write. Replies keep their own deadlines.
    pub fn handle_sending(&mut self, now: Instant) {
        self.now = now;
        if let Some(cur) = self.current.as_mut() {
            if cur.body_at.is_some() {
                cur.body_at = Some(now);
            }
        }
    }

    /// The TLS handshake asked for with [`ClientOutput::StartTls`] completed. Everything
    /// learnt before is forgotten and EHLO is sent again (RFC 3207 §4.2).
    pub fn handle_tls_established(&mut self, now: Instant) {
        self.now = now;
        if self.stage != Stage::Tls {
            return;
        }
        self.tls = true;
        self.caps = None;
        self.decoder.reset();
        self.stage = Stage::Setup;
        self.event(ClientEvent::TlsEstablished);
        self.send_ehlo();
    }

    // ---- application calls -----------------------------------------------------------

    /// Queues a message; returns its id. Its body is asked for with
    /// [`ClientEvent::BodyWanted`] and its result is [`ClientEvent::MessageDone`].
    pub fn send_mail(&mut self, envelope: Envelope) -> Result<u64, UsageError> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        if matches!(self.stage, Stage::Closing | Stage::Closed) || self.quit_requested {
            return Err(UsageError::Closed);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push_back((id, envelope));
        self.ready_announced = false;
        self.start_next();
        Ok(id)
    }

    /// A piece of the body of the message that asked for it. For DATA it is dot-stuffed
    /// with line endings normalised to CRLF; for BDAT it goes as it is.
    pub fn send_body(&mut self, chunk: &[u8]) -> Result<(), UsageError> {
        let long_lines = self.config.long_lines;
        let Some(cur) = self.current.as_mut() else {
            return Err(self.failed().unwrap_or(UsageError::NoBodyWanted));
        };
        match &mut cur.body {
            Body::Data(stuffer) => {
                let before = self.outbuf.len();
                if let Err(e) = stuffer.encode(chunk, &mut self.outbuf) {
                    self.outbuf.truncate(before);
                    self.abandon_body(LocalRefusal::LineTooLong);
                    return Err(UsageError::Body(e));
                }
                if long_lines == LongLines::Accept {
                    cur.long_lines = stuffer.long_lines();
                }
                Ok(())
            }
            Body::Bdat(held, normalizer) => {
                let chunk = match normalizer {
                    Some(n) => {
                        let mut text = BytesMut::with_capacity(chunk.len() + chunk.len() / 32);
                        n.encode(chunk, &mut text);
                        if n.long_lines() > 0 {
                            if long_lines == LongLines::Reject {
                                // Nothing of it went out with LAST: the server discards it.
                                self.abandon_body(LocalRefusal::LineTooLong);
                                return Err(UsageError::Body(EncodeError::LineTooLong));
                            }
                            cur.long_lines = n.long_lines();
                        }
                        text.freeze()
                    }
                    None => Bytes::copy_from_slice(chunk),
                };
                if chunk.is_empty() {
                    return Ok(());
                }
                if let Some(prev) = held.replace(chunk) {
                    self.send_bdat(prev, false);
                }
                Ok(())
            }
            // The message already failed (a BDAT chunk was refused): drop the rest.
            Body::Done if cur.failed.is_some() && !cur.final_sent => Ok(()),
            _ => Err(UsageError::NoBodyWanted),
        }
    }

    /// The end of the body: the final dot, or the last BDAT chunk.
    pub fn end_body(&mut self) -> Result<(), UsageError> {
        let Some(cur) = self.current.as_mut() else {
            return Err(self.failed().unwrap_or(UsageError::NoBodyWanted));
        };
        let deadline_kind = match std::mem::replace(&mut cur.body, Body::Done) {
            Body::Data(stuffer) => {
                let before = self.outbuf.len();
                if let Err(e) = stuffer.finish(&mut self.outbuf) {
                    self.outbuf.truncate(before);
                    self.abandon_body(LocalRefusal::LineTooLong);
                    return Err(UsageError::Body(e));
                }
                cur.final_sent = true;
                Expect::Final
            }
            Body::Bdat(held, normalizer) => {
                let mut last = BytesMut::from(held.unwrap_or_default().as_ref());
                if let Some(n) = normalizer {
                    n.finish(&mut last);
                }
                self.send_bdat(last.freeze(), true);
                return Ok(());
            }
            Body::Done if cur.failed.is_some() && !cur.final_sent => {
                // Refused mid-BDAT: nothing more to send; finish once replies are in.
                self.maybe_finish();
                return Ok(());
            }
            other => {
                cur.body = other;
                return Err(UsageError::NoBodyWanted);
            }
        };
        self.transcript_body();
        self.expect(deadline_kind);
        Ok(())
    }

    /// Abandons the body being sent (its source failed): the message fails as temporary
    /// and the session closes without the final dot, so the server discards what it
    /// received (RFC 5321 §4.1.1.4); the other queued messages fail as temporary too.
    pub fn abort_body(&mut self) -> Result<(), UsageError> {
        let wanted = self
            .current
            .as_ref()
            .is_some_and(|c| !matches!(c.body, Body::NotYet) && !c.final_sent);
        if !wanted {
            return Err(self.failed().unwrap_or(UsageError::NoBodyWanted));
        }
        let Some(cur) = self.current.take() else {
            return Err(UsageError::NoBodyWanted);
        };
        let outcome = outcome_for(
            cur,
            DeliveryStatus::Temporary,
            None,
            Some(LocalRefusal::Aborted),
        );
        self.event(ClientEvent::MessageDone(outcome));
        self.fail(ClientError::BodyAbandoned, false);
        Ok(())
    }

    /// Ends the session with QUIT once the queued messages are done.
    pub fn quit(&mut self) {
        self.quit_requested = true;
        if self.stage == Stage::Mail && self.current.is_none() && self.pending.is_empty() {
            self.send_quit();
        }
    }

    // ---- output ----------------------------------------------------------------------

    /// The next thing to do; call until [`ClientOutput::Wait`].
    pub fn poll_output(&mut self) -> ClientOutput {
        loop {
            if let Some(o) = self.queue.pop_front() {
                return o;
            }
            if !self.outbuf.is_empty() {
                return ClientOutput::Transmit(self.outbuf.split().freeze());
            }
            if !self.read_reply() {
                return ClientOutput::Wait {
                    deadline: self.deadline(),
                };
            }
        }
    }

    /// When the session times out: the TLS handshake, the reply waited for, or the
    /// write of the body under way, whichever comes first. The host bounds every wait by
    /// it, reads and writes alike.
    pub fn deadline(&self) -> Option<Instant> {
        if self.stage == Stage::Tls {
            return self
                .tls_since
                .map(|t| t + self.config.timeouts.tls_handshake);
        }
        let reply = self.reply_deadline();
        // RFC 5321 §4.5.3.2.5: each send of the body must complete within the data-block
        // timeout, or a server that stops reading would hold the client forever.
        let body = self
            .current
            .as_ref()
            .filter(|c| matches!(c.body, Body::Data(_) | Body::Bdat(..)))
            .and_then(|c| c.body_at)
            .map(|t| t + self.config.timeouts.data_block);
        match (reply, body) {
            (Some(r), Some(b)) => Some(r.min(b)),
            (r, b) => r.or(b),
        }
    }

    /// When the reply waited for times out.
    fn reply_deadline(&self) -> Option<Instant> {
        let (expect, since, _) = self.expected.front()?;
        let t = &self.config.timeouts;
        let timeout = match expect {
            Expect::Greeting => t.greeting,
            Expect::Mail => t.mail,
            Expect::Rcpt(_) => t.rcpt,
            Expect::Data => t.data_init,
            Expect::Bdat { last: false } | Expect::AbortDot => t.data_block,
            Expect::Bdat { last: true } | Expect::Final | Expect::LmtpFinal(_) => t.data_end,
            Expect::Ehlo
            | Expect::Helo
            | Expect::StartTls
            | Expect::Auth
            | Expect::Rset
            | Expect::Quit => t.command,
        };
        Some(*since + timeout)
    }

    // ---- replies ---------------------------------------------------------------------

    /// Reads and handles one reply; false when none is complete.
    fn read_reply(&mut self) -> bool {
        if matches!(self.stage, Stage::Closed | Stage::Tls) || self.inbuf.is_empty() {
            return false;
        }
        let (reply, used) = match self.decoder.decode(&self.inbuf) {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(e) => {
                self.fail(ClientError::Reply(e), false);
                return true;
            }
        };
        let _ = self.inbuf.split_to(used);
        let start = self.consumed;
        self.consumed += used as u64;
        if self.config.transcript {
            let last = reply.lines().len() - 1;
            for (i, line) in reply.lines().iter().enumerate() {
                let sep = if i == last { ' ' } else { '-' };
                let enh = reply
                    .enhanced()
                    .map(|e| format!("{e} "))
                    .unwrap_or_default();
                self.event(ClientEvent::Transcript(format!(
                    "S: {}{sep}{enh}{line}",
                    reply.code()
                )));
            }
        }
        let closing = reply.code().get() == 421;
        match self.expected.pop_front() {
            // A reply that began before its command went out answers something else: the
            // server is out of step (or lying), and matching it to the command would
            // shift every later reply by one. 421 may come at any time (RFC 5321 §3.8).
            Some((expect, _, sent)) if start >= sent || closing => {
                self.answering = sent;
                self.handle_reply(expect, reply);
            }
            _ if closing => self.fail(ClientError::ServiceClosing(reply), false),
            _ => self.fail(ClientError::UnsolicitedReply(reply), false),
        }
        true
    }

    fn handle_reply(&mut self, expect: Expect, reply: Reply) {
        let code = reply.code();
        // RFC 5321 §3.8: 421 may come at any time; the server is closing.
        if code.get() == 421 && expect != Expect::Quit {
            return self.fail(ClientError::ServiceClosing(reply), false);
        }
        match expect {
            Expect::Greeting => {
                if code.get() == 220 {
                    self.event(ClientEvent::Connected(reply));
                    self.send_ehlo();
                } else {
                    // RFC 5321 §3.1: after a 554 greeting the client sends QUIT.
                    self.fail(ClientError::Greeting(reply), true);
                }
            }
            Expect::Ehlo => {
                if code.is_positive() {
                    // Any 2yz is success, even without text (RFC 5321 §4.2).
                    let caps = Capabilities::from_positive_reply(&reply);
                    self.caps = Some(caps.clone());
                    self.event(ClientEvent::Capabilities(caps));
                    self.after_ehlo();
                } else if !self.config.lmtp && matches!(code.get(), 500 | 502) {
                    // RFC 5321 §3.2: fall back to HELO for servers that predate EHLO.
                    let host =
                        crate::Host::parse(&self.config.helo_name, false).map(|h| h.into_owned());
                    if let Ok(host) = host {
                        self.command(&Command::Helo(host), Expect::Helo);
                    }
                } else {
                    self.fail(ClientError::Ehlo(reply), true);
                }
            }
            Expect::Helo => {
                if code.is_positive() {
                    self.caps = Capabilities::new(self.config.helo_name.clone()).ok();
                    self.after_ehlo();
                } else {
                    self.fail(ClientError::Ehlo(reply), true);
                }
            }
            Expect::StartTls => {
                if code.get() == 220 {
                    if !self.inbuf.is_empty() {
                        // Anything after the 220 was sent in plaintext before the handshake
                        // and must never be read (response injection).
                        return self.fail(ClientError::TlsInjection, false);
                    }
                    self.stage = Stage::Tls;
                    self.tls_since = Some(self.now);
                    self.queue_transmit();
                    self.queue.push_back(ClientOutput::StartTls);
                } else if self.config.starttls == StartTls::Required {
                    self.fail(ClientError::TlsRefused(reply), true);
                } else {
                    self.after_tls_decision();
                }
            }
            Expect::Auth => self.auth_reply(reply),
            Expect::Rset => {
                self.server_txn = false;
                self.start_next();
            }
            Expect::Mail => self.mail_reply(reply),
            Expect::Rcpt(i) => self.rcpt_reply(i, reply),
            Expect::Data => self.data_reply(reply),
            Expect::AbortDot => {
                self.server_txn = false;
                self.maybe_finish();
            }
            Expect::Bdat { last } => self.bdat_reply(last, reply),
            Expect::Final => {
                self.server_txn = false;
                if let Some(cur) = self.current.as_mut() {
                    cur.final_reply = Some(reply);
                }
                self.maybe_finish();
            }
            Expect::LmtpFinal(n) => {
                if let Some(cur) = self.current.as_mut() {
                    if let Some(slot) = cur.lmtp.get_mut(n) {
                        *slot = Some(reply);
                    }
                }
                if !self
                    .expected
                    .iter()
                    .any(|(e, ..)| matches!(e, Expect::LmtpFinal(_)))
                {
                    self.server_txn = false;
                }
                self.maybe_finish();
            }
            Expect::Quit => self.close(),
        }
    }

    fn after_ehlo(&mut self) {
        let offered = self.caps.as_ref().is_some_and(|c| c.starttls);
        if !self.tls {
            match self.config.starttls {
                StartTls::Required if !offered => {
                    return self.fail(ClientError::TlsUnavailable, true);
                }
                StartTls::Required | StartTls::Opportunistic if offered => {
                    self.command(&Command::StartTls, Expect::StartTls);
                    return;
                }
                _ => {}
            }
        }
        self.after_tls_decision();
    }

    fn after_tls_decision(&mut self) {
        let Some(creds) = self.config.credentials.clone() else {
            return self.enter_mail_stage();
        };
        if self.authenticated.is_some() {
            return self.enter_mail_stage();
        }
        let offered: Vec<Mechanism> = self
            .caps
            .as_ref()
            .map(|c| c.auth().filter_map(|m| Mechanism::parse(m).ok()).collect())
            .unwrap_or_default();
        let cleartext_ok = self.tls || self.config.allow_cleartext_auth;
        let mechanism = match &self.config.mechanism {
            Some(m) => offered
                .contains(m)
                .then(|| m.clone())
                .filter(|m| cleartext_ok || !m.requires_tls()),
            None => sasl::select_mechanism(&offered, &creds, cleartext_ok),
        };
        let Some(mechanism) = mechanism else {
            return self.fail(ClientError::AuthUnavailable, true);
        };
        let mut exchange = match ClientExchange::new(mechanism.clone(), &creds) {
            Ok(x) => x,
            Err(e) => return self.fail(ClientError::Sasl(e), true),
        };
        let initial = exchange.initial_response();
        let mut line = format!("AUTH {}", mechanism.as_str());
        if let Some(ir) = &initial {
            line.push(' ');
            line.push_str(ir.expose());
        }
        self.raw_line(
            &line,
            if initial.is_some() {
                "AUTH [redacted]"
            } else {
                &line
            },
        );
        self.auth = Some(exchange);
        self.expect(Expect::Auth);
    }

    fn auth_reply(&mut self, reply: Reply) {
        let code = reply.code();
        if code.get() == 334 {
            let Some(exchange) = self.auth.as_mut() else {
                return self.fail(ClientError::UnsolicitedReply(reply), false);
            };
            let text = reply
                .lines()
                .first()
                .map(|l| l.trim().to_owned())
                .unwrap_or_default();
            let response = sasl::decode_base64(text.as_bytes())
                .map_err(|_| ())
                .and_then(|challenge| exchange.challenge(&challenge).map_err(|_| ()));
            match response {
                Ok(r) => {
                    let encoded = Secret::new(sasl::encode_base64(r.expose()));
                    self.raw_line(encoded.expose(), "[redacted]");
                }
                // RFC 4954 §4: a client that cannot go on answers `*`.
                Err(()) => self.raw_line("*", "*"),
            }
            self.expect(Expect::Auth);
        } else if code.is_positive() {
            let exchange = self.auth.take();
            let mechanism = exchange
                .map(|x| x.mechanism().clone())
                .unwrap_or(Mechanism::Plain);
            self.authenticated = Some(mechanism.clone());
            self.event(ClientEvent::Authenticated(mechanism));
            self.enter_mail_stage();
        } else {
            self.auth = None;
            self.fail(ClientError::AuthFailed(reply), true);
        }
    }

    fn enter_mail_stage(&mut self) {
        self.stage = Stage::Mail;
        self.start_next();
    }

    // ---- transactions ----------------------------------------------------------------

    fn start_next(&mut self) {
        let rset_pending = self.expected.iter().any(|(e, ..)| *e == Expect::Rset);
        if self.stage != Stage::Mail || self.current.is_some() || rset_pending {
            return;
        }
        let Some((id, env)) = self.pending.pop_front() else {
            if self.quit_requested {
                self.send_quit();
            } else if !self.ready_announced {
                self.ready_announced = true;
                self.event(ClientEvent::Ready);
            }
            return;
        };
        let caps = self
            .caps
            .clone()
            .unwrap_or_else(|| Capabilities::new("unknown").unwrap_or_else(|_| unreachable!()));
        if let Some(refusal) = self.local_refusal(&env, &caps) {
            self.report_refused(id, env, refusal);
            return self.start_next();
        }
        let utf8 = env.needs_smtputf8();
        let binary = env.body == BodyType::BinaryMime;
        let pipelined = self.config.pipelining && caps.pipelining;
        let bdat = binary || (self.config.chunking && caps.chunking && pipelined);
        let mut params = MailParams {
            size: env.size.filter(|_| caps.size.is_some()),
            smtputf8: utf8,
            requiretls: env.requiretls,
            ..MailParams::default()
        };
        params.body = match env.body {
            BodyType::BinaryMime => Some(BodyType::BinaryMime),
            BodyType::EightBitMime if caps.eight_bit_mime => Some(BodyType::EightBitMime),
            _ => None,
        };
        if caps.dsn {
            params.ret = env.ret;
            params.envid = env.envid.clone();
        }
        // RSET after a transaction left open, or before every transaction but the first
        // when asked (a relay reusing a connection checks it so, as Postfix does).
        if self.server_txn || (self.config.reset_between && self.mailed) {
            self.mailed = false;
            self.command(&Command::Rset, Expect::Rset);
            if !pipelined {
                // Without PIPELINING, MAIL waits for the RSET reply (RFC 2920 §3.1).
                self.pending.push_front((id, env));
                return;
            }
        }
        self.command(
            &Command::Mail {
                from: env.from.clone(),
                params,
            },
            Expect::Mail,
        );
        self.mailed = true;
        let n = env.recipients.len();
        self.current = Some(Current::new(id, env, pipelined, bdat));
        if pipelined {
            // RFC 2920 §3.1: MAIL, every RCPT and DATA in one group.
            for i in 0..n {
                self.send_rcpt(i);
            }
            if !bdat {
                self.command(&Command::Data, Expect::Data);
            }
        }
    }

    fn local_refusal(&self, env: &Envelope, caps: &Capabilities) -> Option<LocalRefusal> {
        if env.recipients.is_empty() {
            return Some(LocalRefusal::NoRecipients);
        }
        if let (Some(size), Some(limit)) = (env.size, caps.size_limit()) {
            if size > limit {
                return Some(LocalRefusal::TooBig { size, limit });
            }
        }
        if env.needs_smtputf8() && !caps.smtputf8 {
            return Some(LocalRefusal::Smtputf8Unsupported);
        }
        if env.body == BodyType::BinaryMime && !(caps.binary_mime && caps.chunking) {
            return Some(LocalRefusal::BinaryUnsupported);
        }
        if env.requiretls && !(self.tls && caps.requiretls) {
            return Some(LocalRefusal::RequireTlsUnavailable);
        }
        None
    }

    fn send_rcpt(&mut self, i: usize) {
        let dsn = self.caps.as_ref().is_some_and(|c| c.dsn);
        let Some(cur) = &self.current else { return };
        let r = &cur.env.recipients[i];
        let params = RcptParams {
            notify: r.notify.filter(|_| dsn),
            orcpt: r.orcpt.clone().filter(|_| dsn),
            ..RcptParams::default()
        };
        let cmd = Command::Rcpt {
            to: r.to.clone(),
            params,
        };
        self.command(&cmd, Expect::Rcpt(i));
    }

    fn mail_reply(&mut self, reply: Reply) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if reply.code().is_positive() {
            cur.mail_ok = true;
            self.server_txn = true;
            if !cur.pipelined {
                self.send_rcpt(0);
            }
        } else {
            cur.failed.get_or_insert(reply);
            self.maybe_finish();
        }
    }

    fn rcpt_reply(&mut self, i: usize, reply: Reply) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if reply.code().is_positive() && cur.mail_ok {
            cur.accepted.push(i);
        }
        cur.rcpt[i] = Some(reply);
        let last = i + 1 == cur.env.recipients.len();
        if !cur.pipelined && cur.mail_ok && !last {
            return self.send_rcpt(i + 1);
        }
        if !last {
            return;
        }
        if cur.accepted.is_empty() || !cur.mail_ok {
            // No body for nobody (the pipelined DATA's reply still comes).
            return self.maybe_finish();
        }
        if cur.bdat {
            let text = cur.env.body != BodyType::BinaryMime;
            cur.body = Body::Bdat(None, text.then(LineNormalizer::new));
            let id = cur.id;
            cur.body_at = Some(self.now);
            self.event(ClientEvent::BodyWanted { id });
        } else if !cur.pipelined {
            self.command(&Command::Data, Expect::Data);
        }
    }

    fn data_reply(&mut self, reply: Reply) {
        let long_lines = self.config.long_lines;
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if reply.code().get() == 354 {
            if cur.mail_ok && !cur.accepted.is_empty() {
                cur.body = Body::Data(DotStuffer::new().with_long_lines(long_lines));
                let id = cur.id;
                cur.body_at = Some(self.now);
                self.event(ClientEvent::BodyWanted { id });
            } else {
                // RFC 2920 §3.1: a 354 that should not have come is ended with an empty
                // message, which the server must refuse for lack of recipients.
                self.raw_line(".", ".");
                self.expect(Expect::AbortDot);
            }
        } else if reply.code().is_transient() || reply.code().is_permanent() {
            if cur.failed.is_none() && !cur.accepted.is_empty() {
                cur.failed = Some(reply);
            }
            self.maybe_finish();
        } else {
            // A 250 or a 221 to DATA: no body went out, so nothing was delivered, and
            // the server is out of step. Only the reply to the final dot (or to BDAT
            // LAST) can make a message sent.
            let error = ClientError::UnexpectedReply {
                command: "DATA",
                reply,
            };
            self.fail(error, false);
        }
    }

    fn send_bdat(&mut self, chunk: Bytes, last: bool) {
        let cmd = Command::Bdat {
            size: chunk.len() as u64,
            last,
        };
        cmd.encode(&mut self.outbuf);
        self.outbuf.put_slice(&chunk);
        if self.config.transcript {
            self.event(ClientEvent::Transcript(format!("C: {cmd}")));
            self.event(ClientEvent::Transcript(format!(
                "C: [{} octets of message data]",
                chunk.len()
            )));
        }
        if last {
            if let Some(cur) = self.current.as_mut() {
                cur.final_sent = true;
            }
        }
        self.expect(Expect::Bdat { last });
    }

    fn bdat_reply(&mut self, last: bool, reply: Reply) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if last {
            self.server_txn = false;
            if self.config.lmtp && !cur.accepted.is_empty() {
                // RFC 2033 §4.2 with RFC 3030: the per-recipient replies start here, for a
                // refused BDAT LAST as for an accepted one.
                cur.lmtp = vec![None; cur.accepted.len()];
                cur.lmtp[0] = Some(reply);
                for n in 1..cur.accepted.len() {
                    self.expect_more(Expect::LmtpFinal(n));
                }
            } else {
                cur.final_reply = Some(reply);
            }
            return self.maybe_finish();
        }
        if !reply.code().is_positive() && cur.failed.is_none() {
            cur.failed = Some(reply);
            // Stop sending chunks; the server's transaction stays open until RSET.
            cur.body = Body::Done;
        }
    }

    /// The message cannot be sent as is: close without the final dot (the server
    /// discards a message whose end never came, RFC 5321 §4.1.1.4).
    fn abandon_body(&mut self, refusal: LocalRefusal) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let outcome = outcome_for(cur, DeliveryStatus::Permanent, None, Some(refusal));
        self.event(ClientEvent::MessageDone(outcome));
        self.fail(ClientError::BodyAbandoned, false);
    }

    /// Finishes the current message once all its replies are in.
    fn maybe_finish(&mut self) {
        let Some(cur) = &self.current else { return };
        let waiting = self.expected.iter().any(|(e, ..)| {
            matches!(
                e,
                Expect::Mail
                    | Expect::Rcpt(_)
                    | Expect::Data
                    | Expect::AbortDot
                    | Expect::Bdat { .. }
                    | Expect::Final
                    | Expect::LmtpFinal(_)
            )
        });
        if waiting {
            return;
        }
        // A BDAT body being sent after a refusal: wait for end_body.
        if cur.failed.is_some() && matches!(cur.body, Body::Bdat(..)) {
            return;
        }
        let lmtp = self.config.lmtp;
        // LMTP after the final dot: one reply per accepted recipient (RFC 2033 §4.2).
        // (After BDAT LAST, `bdat_reply` has set that up already.)
        if lmtp && !cur.bdat && cur.final_sent && cur.lmtp.is_empty() && cur.final_reply.is_some() {
            let n = cur.accepted.len();
            if let Some(cur) = self.current.as_mut() {
                cur.lmtp = vec![None; n];
                cur.lmtp[0] = cur.final_reply.take();
                for k in 1..n {
                    self.expect_more(Expect::LmtpFinal(k));
                }
            }
            if n > 1 {
                return;
            }
        }
        let Some(cur) = self.current.take() else {
            return;
        };
        let outcome = decide(cur, lmtp);
        self.event(ClientEvent::MessageDone(outcome));
        self.start_next();
    }

    fn report_refused(&mut self, id: u64, env: Envelope, refusal: LocalRefusal) {
        let cur = Current::new(id, env, false, false);
        let outcome = outcome_for(cur, DeliveryStatus::Permanent, None, Some(refusal));
        self.event(ClientEvent::MessageDone(outcome));
    }

    // ---- writing -----------------------------------------------------------------------

    fn send_ehlo(&mut self) {
        let Ok(host) = crate::Host::parse(&self.config.helo_name, false).map(|h| h.into_owned())
        else {
            return;
        };
        if self.config.lmtp {
            self.command(&Command::Lhlo(host), Expect::Ehlo);
        } else {
            self.command(&Command::Ehlo(host), Expect::Ehlo);
        }
    }

    fn send_quit(&mut self) {
        if matches!(self.stage, Stage::Closing | Stage::Closed) {
            return;
        }
        self.command(&Command::Quit, Expect::Quit);
        self.stage = Stage::Closing;
    }

    fn command(&mut self, cmd: &Command<'_>, expect: Expect) {
        cmd.encode(&mut self.outbuf);
        if self.config.transcript {
            self.event(ClientEvent::Transcript(format!("C: {cmd}")));
        }
        self.expect(expect);
    }

    /// A line that is not a [`Command`] (AUTH continuations, the lone dot).
    fn raw_line(&mut self, line: &str, shown: &str) {
        self.outbuf.put_slice(line.as_bytes());
        self.outbuf.put_slice(b"\r\n");
        if self.config.transcript {
            self.event(ClientEvent::Transcript(format!("C: {shown}")));
        }
    }

    fn transcript_body(&mut self) {
        if self.config.transcript {
            self.event(ClientEvent::Transcript("C: [message data]".into()));
            self.event(ClientEvent::Transcript("C: .".into()));
        }
    }

    /// Waits for the reply to a command sent now: only what the server sends from now on
    /// can answer it.
    fn expect(&mut self, expect: Expect) {
        self.expected.push_back((expect, self.now, self.received));
    }

    /// Waits for one more reply to the command being answered (LMTP: one reply per
    /// recipient after the final dot, RFC 2033 §4.2), which may have arrived with the
    /// first.
    fn expect_more(&mut self, expect: Expect) {
        self.expected.push_back((expect, self.now, self.answering));
    }

    fn event(&mut self, event: ClientEvent) {
        self.queue_transmit();
        if let ClientEvent::MessageDone(done) = &event {
            // A message that ended (say, the session failed) before the host saw its
            // BodyWanted no longer wants a body: the host must not be asked for one that
            // `send_body` would then refuse.
            self.queue.retain(|o| {
                !matches!(o, ClientOutput::Event(ClientEvent::BodyWanted { id }) if *id == done.id)
            });
        }
        self.queue.push_back(ClientOutput::Event(event));
    }

    /// Keeps bytes and events in order: what was written before an event goes first.
    fn queue_transmit(&mut self) {
        if !self.outbuf.is_empty() {
            self.queue
                .push_back(ClientOutput::Transmit(self.outbuf.split().freeze()));
        }
    }

    fn close(&mut self) {
        if self.stage == Stage::Closed {
            return;
        }
        self.stage = Stage::Closed;
        self.expected.clear();
        self.inbuf.clear();
        self.queue_transmit();
        self.queue.push_back(ClientOutput::Close);
    }

    /// The session failed: every unfinished message is reported, then QUIT (when the
    /// connection is still in step) and close.
    fn fail(&mut self, error: ClientError, polite: bool) {
        if matches!(self.stage, Stage::Closed) {
            return;
        }
        let permanent = error.is_permanent();
        let reply = error.reply().cloned();
        if let Some(cur) = self.current.take() {
            let status = if cur.final_sent
                && cur.final_reply.is_none()
                && cur.lmtp.iter().all(Option::is_none)
            {
                DeliveryStatus::Unknown
            } else if permanent {
                DeliveryStatus::Permanent
            } else {
                DeliveryStatus::Temporary
            };
            let outcome = outcome_for(cur, status, reply.clone(), None);
            self.event(ClientEvent::MessageDone(outcome));
        }
        while let Some((id, env)) = self.pending.pop_front() {
            let cur = Current::new(id, env, false, false);
            let status = if permanent {
                DeliveryStatus::Permanent
            } else {
                DeliveryStatus::Temporary
            };
            let outcome = outcome_for(cur, status, reply.clone(), None);
            self.event(ClientEvent::MessageDone(outcome));
        }
        if self.error.is_none() {
            self.error = Some(error.clone());
        }
        self.event(ClientEvent::Failed(error));
        self.expected.clear();
        if polite && self.stage != Stage::Tls {
            self.stage = Stage::Mail;
            self.send_quit();
        } else {
            self.close();
        }
    }
}

/// The recipient verdict for a reply (RFC 5321 §4.5.3.1.10: 552 to RCPT is temporary).
fn rcpt_status(reply: &Reply, from_rcpt: bool) -> RecipientStatus {
    let code = reply.code();
    if code.is_positive() {
        RecipientStatus::Accepted
    } else if code.is_transient() || (from_rcpt && code.get() == 552) {
        RecipientStatus::Temporary
    } else {
        RecipientStatus::Permanent
    }
}

fn status_of(reply: &Reply) -> DeliveryStatus {
    if reply.code().is_transient() {
        DeliveryStatus::Temporary
    } else {
        DeliveryStatus::Permanent
    }
}

/// The outcome of a message whose replies are all in.
fn decide(cur: Current, lmtp: bool) -> MessageOutcome {
    let final_reply = cur.final_reply.clone();
    let mut recipients: Vec<RecipientOutcome> = cur
        .env
        .recipients
        .iter()
        .zip(&cur.rcpt)
        .map(|(r, reply)| RecipientOutcome {
            to: r.to.clone(),
            status: match reply {
                Some(reply) => rcpt_status(reply, true),
                None => RecipientStatus::Temporary,
            },
            reply: reply.clone(),
        })
        .collect();
    if !cur.mail_ok {
        // MAIL refused: every recipient shares its fate.
        let reply = cur.failed.clone();
        let status = reply.as_ref().map_or(DeliveryStatus::Temporary, status_of);
        for r in &mut recipients {
            r.status = if status == DeliveryStatus::Temporary {
                RecipientStatus::Temporary
            } else {
                RecipientStatus::Permanent
            };
            r.reply = reply.clone();
        }
        return finish_outcome(cur, recipients, status, reply);
    }
    if lmtp && !cur.lmtp.is_empty() {
        for (k, &i) in cur.accepted.iter().enumerate() {
            let reply = cur.lmtp.get(k).cloned().flatten();
            recipients[i].status = reply
                .as_ref()
                .map_or(RecipientStatus::Unknown, |r| rcpt_status(r, false));
            recipients[i].reply = reply;
        }
        let status = overall(&recipients);
        let last = cur.lmtp.iter().rev().flatten().next().cloned();
        return finish_outcome(cur, recipients, status, last);
    }
    let decisive = final_reply.or_else(|| cur.failed.clone());
    let delivered = cur.final_sent && cur.final_reply.is_some();
    for &i in &cur.accepted {
        match &decisive {
            Some(reply) if !reply.code().is_positive() => {
                recipients[i].status = rcpt_status(reply, false);
                recipients[i].reply = Some(reply.clone());
            }
            // Only a reply to the final dot (or BDAT LAST) delivers a message.
            _ if !delivered => recipients[i].status = RecipientStatus::Temporary,
            _ => {}
        }
    }
    let status = overall(&recipients);
    finish_outcome(cur, recipients, status, decisive)
}

/// Sent when all are accepted, Partial when some, otherwise Temporary if any recipient
/// may succeed later, else Permanent.
fn overall(recipients: &[RecipientOutcome]) -> DeliveryStatus {
    let accepted = recipients
        .iter()
        .filter(|r| r.status == RecipientStatus::Accepted)
        .count();
    if accepted == recipients.len() && accepted > 0 {
        DeliveryStatus::Sent
    } else if accepted > 0 {
        DeliveryStatus::Partial
    } else if recipients
        .iter()
        .any(|r| r.status == RecipientStatus::Unknown)
    {
        DeliveryStatus::Unknown
    } else if recipients
        .iter()
        .any(|r| r.status == RecipientStatus::Temporary)
    {
        DeliveryStatus::Temporary
    } else {
        DeliveryStatus::Permanent
    }
}

fn finish_outcome(
    cur: Current,
    recipients: Vec<RecipientOutcome>,
    status: DeliveryStatus,
    reply: Option<Reply>,
) -> MessageOutcome {
    MessageOutcome {
        id: cur.id,
        status,
        recipients,
        reply,
        refused: None,
        long_lines: cur.long_lines,
    }
}

/// The outcome of a message ended from outside its replies (session failure, local
/// refusal): recipients without a verdict share the message's.
fn outcome_for(
    cur: Current,
    status: DeliveryStatus,
    reply: Option<Reply>,
    refused: Option<LocalRefusal>,
) -> MessageOutcome {
    let shared = match status {
        DeliveryStatus::Permanent => RecipientStatus::Permanent,
        DeliveryStatus::Unknown => RecipientStatus::Unknown,
        _ => RecipientStatus::Temporary,
    };
    let recipients = cur
        .env
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rcpt_reply = cur.rcpt.get(i).cloned().flatten();
            let refused_here = rcpt_reply.as_ref().is_some_and(|r| !r.code().is_positive());
            RecipientOutcome {
                to: r.to.clone(),
                status: if refused_here {
                    rcpt_reply.as_ref().map_or(shared, |r| rcpt_status(r, true))
                } else {
                    shared
                },
                reply: if refused_here {
                    rcpt_reply
                } else {
                    reply.clone().or(rcpt_reply)
                },
            }
        })
        .collect();
    MessageOutcome {
        id: cur.id,
        status,
        recipients,
        reply,
        refused,
        long_lines: cur.long_lines,
    }
}

impl From<Duration> for ClientTimeouts {
    fn from(t: Duration) -> ClientTimeouts {
        ClientTimeouts::all(t)
    }
}

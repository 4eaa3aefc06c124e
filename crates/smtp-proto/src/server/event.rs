//! What a server session tells its host: events, outputs, and the errors of a host that
//! drives it wrongly.

use std::time::Instant;

use bytes::Bytes;

use crate::address::{ForwardPath, Host, ReversePath};
use crate::command::{Text, Verb};
use crate::data::DataError;
use crate::error::CommandError;
use crate::params::{MailParams, RcptParams};
use crate::sasl::{Credentials, Mechanism};

/// Something the host must know or decide. Events marked *decision* leave the session
/// waiting until the host calls [`Session::decide`](super::Session::decide) (or
/// [`accept`](super::Session::accept), [`accept_with`](super::Session::accept_with),
/// [`reject`](super::Session::reject)), or for [`Event::AuthChallengeNeeded`]
/// [`Session::auth_challenge`](super::Session::auth_challenge).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The greeting was queued; the session has started.
    Connected,
    /// *Decision*: HELO, EHLO or LHLO. Accepting sends the greeting reply with the
    /// extensions allowed now.
    Hello {
        /// Which of the three.
        verb: Verb,
        /// The client's name for itself.
        host: Host<'static>,
    },
    /// *Decision*: MAIL FROM, after every protocol check passed (sequence, size, known
    /// parameters). Accepting opens a transaction.
    Mail {
        /// The reverse-path.
        from: ReversePath<'static>,
        /// Its parameters.
        params: MailParams<'static>,
    },
    /// *Decision*: RCPT TO (relay control is the host's). Accepting adds the recipient.
    Rcpt {
        /// The forward-path.
        to: ForwardPath<'static>,
        /// Its parameters.
        params: RcptParams<'static>,
    },
    /// The message body starts (after `354`, or with the first BDAT chunk): open storage.
    MessageStart,
    /// A piece of the body, dot-unstuffed (DATA) or as sent (BDAT). Pieces are slices of
    /// the received bytes, not copies.
    Body(Bytes),
    /// *Decision* (SMTP): the whole body has arrived and is clean. Accept only once the
    /// message is stored (RFC 5321 §6.1).
    MessageEnd,
    /// LMTP (RFC 2033 §4.2): the whole body has arrived and is clean; one
    /// [`Event::LmtpDelivery`] follows for each accepted recipient.
    LmtpMessageEnd {
        /// How many deliveries follow.
        recipients: usize,
    },
    /// *Decision* (LMTP, RFC 2033 §4.2): the verdict for one accepted recipient, in the
    /// order they were accepted; one reply goes out per decision.
    LmtpDelivery {
        /// The recipient.
        to: ForwardPath<'static>,
    },
    /// The message will not be accepted (client aborted, smuggling attempt, too big,
    /// connection lost): discard whatever was stored.
    MessageAborted {
        /// Why.
        reason: AbortReason,
    },
    /// *Decision*: credentials to verify. Accepting sends `235 2.7.0`; rejecting counts a
    /// failure.
    Auth {
        /// The mechanism used.
        mechanism: Mechanism,
        /// What the client sent; secrets inside never print.
        credentials: Credentials,
    },
    /// *Decision*: a CRAM-MD5 exchange needs a fresh challenge
    /// (`<random.timestamp@hostname>`, RFC 2195 §2); the core has no clock or randomness.
    AuthChallengeNeeded {
        /// The mechanism asking.
        mechanism: Mechanism,
    },
    /// *Decision*: VRFY. Accepting sends `252 2.0.0` (RFC 5321 §3.5.3: no user
    /// enumeration); a host that wants to confirm users replies with its own 250.
    Vrfy(Text<'static>),
    /// *Decision*: EXPN. Accepting sends `502 5.5.1` (disabled); a host may reply 250.
    Expn(Text<'static>),
    /// *Decision*: ETRN (RFC 1985). Accepting sends `250 2.0.0 Queuing started`.
    Etrn(Text<'static>),
    /// The client reset the transaction (RSET, or a new EHLO).
    Reset,
    /// TLS is now active (after STARTTLS); the session starts over.
    TlsEstablished,
    /// The client sent QUIT.
    Quit,
    /// The client broke the protocol; the reply has been queued.
    ProtocolError(ProtocolError),
    /// No input within the deadline; `421 4.4.2` has been queued and the session closes.
    Timeout,
    /// The session has ended, however it ended (QUIT, end of input, timeout, shutdown, a
    /// broken connection, a refusal before the greeting): the last event of a session.
    /// [`host::Driver`](super::host::Driver) gives it exactly once, just before
    /// [`Output::Close`]; a bare [`Session`](super::Session) says only `Output::Close`.
    Closed,
}

impl Event {
    /// Whether the session waits for the host to decide.
    pub fn needs_decision(&self) -> bool {
        matches!(
            self,
            Event::Hello { .. }
                | Event::Mail { .. }
                | Event::Rcpt { .. }
                | Event::MessageEnd
                | Event::LmtpDelivery { .. }
                | Event::Auth { .. }
                | Event::AuthChallengeNeeded { .. }
                | Event::Vrfy(_)
                | Event::Expn(_)
                | Event::Etrn(_)
        )
    }
}

/// Why a message was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// The body broke a rule ([`DataError`]): bare CR/LF, long line, size.
    Data(DataError),
    /// The connection closed or timed out before the end of the body.
    Disconnected,
    /// The client sent RSET or QUIT between BDAT chunks.
    Reset,
    /// A BDAT chunk after a failed one, or a malformed BDAT.
    Bdat,
}

/// A protocol violation by the client, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A command line that could not be parsed.
    #[error("{0}")]
    Command(#[from] CommandError),
    /// A verb this server does not know.
    #[error("unknown command")]
    UnknownCommand,
    /// A command out of sequence (`503 5.5.1`).
    #[error("{0} out of sequence")]
    BadSequence(Verb),
    /// Commands pipelined where RFC 2920 forbids it.
    #[error("pipelining synchronization error")]
    Synchronization,
    /// Plaintext after STARTTLS (CVE-2011-0411).
    #[error("plaintext injected after STARTTLS")]
    StartTlsInjection,
    /// An HTTP request or header line (cross-protocol attack).
    #[error("forbidden command")]
    ForbiddenCommand,
    /// Too many errors; the session closes.
    #[error("too many errors")]
    TooManyErrors,
    /// An AUTH exchange failed.
    #[error("authentication failed")]
    AuthFailed,
}

/// What the session wants done next. Drain with
/// [`Session::poll_output`](super::Session::poll_output) until [`Output::Wait`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Write these bytes to the peer.
    Transmit(Bytes),
    /// Handle an event (and decide, if it asks for a decision).
    Event(Event),
    /// Everything before was plaintext: start the TLS handshake on the raw socket now,
    /// then call [`Session::handle_tls_established`](super::Session::handle_tls_established).
    StartTls,
    /// Close the connection after writing everything transmitted.
    Close,
    /// Nothing to do until more input, a decision, or the deadline.
    Wait {
        /// Call [`Session::handle_timeout`](super::Session::handle_timeout) at this instant.
        deadline: Option<Instant>,
        /// Whether the session wants more input now (false while a decision is pending
        /// and enough input is buffered: backpressure).
        read: bool,
    },
}

/// A host drove the session wrongly. These are bugs in the host, not the peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// A decision was given while none was pending.
    #[error("no decision is pending")]
    NoDecisionPending,
    /// `reject` was given a positive reply, or `accept_with` a negative one.
    #[error("reply class does not fit the decision")]
    WrongReplyClass,
    /// `auth_challenge` was called when the session did not ask for one, or the
    /// challenge is not `<random.timestamp@hostname>`.
    #[error("unexpected or invalid challenge")]
    Challenge,
    /// A decision or a challenge given after the session closed (the peer left, or it
    /// timed out, while the host was deciding).
    #[error("the session is closed")]
    Closed,
}

//! What the session is: its one phase value, what a pending decision is about, the
//! open transaction, and [`Next`], what a handler asks the state table for.
//!
//! The phase changes in one place only, [`Session::enter`](super::Session) in
//! `transitions.rs`; handlers say where to go by returning a [`Next`].

use crate::address::Host;
use crate::address::{ForwardPath, ReversePath};
use crate::command::Verb;
use crate::data::{BdatDecoder, DataDecoder};
use crate::params::{BodyType, MailParams};
use crate::reply::Reply;
use crate::sasl::ServerExchange;

/// The session's phase: what it reads next, or what it waits for.
#[derive(Debug)]
pub(super) enum Phase {
    /// The greeting has not been sent.
    Greeting,
    /// Reading command lines.
    Command,
    /// Waiting for the host's decision.
    Decide(Pending),
    /// Reading a DATA body.
    Data(DataDecoder),
    /// Reading a BDAT chunk.
    Bdat(Chunk),
    /// Reading AUTH continuation lines.
    Auth(AuthExchange),
    /// Waiting for the TLS handshake.
    Tls,
    /// Nothing more: `Output::Close` was queued.
    Closed,
}

/// What the session is waiting for the host to decide.
#[derive(Debug)]
pub(super) enum Pending {
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

/// A BDAT chunk being read (RFC 3030 §2), through the transaction's [`BdatDecoder`].
#[derive(Debug)]
pub(super) struct Chunk {
    /// `BDAT n LAST`: the message, or (refused) the transaction, ends with this chunk.
    pub(super) last: bool,
    /// The chunk is read and thrown away, then refused with this reply.
    pub(super) refusal: Option<Reply>,
    /// A decoder of its own, that only discards, for a chunk refused outside any
    /// transaction.
    pub(super) outside: Option<BdatDecoder>,
}

/// An AUTH exchange between challenges (RFC 4954 §4).
#[derive(Debug)]
pub(super) struct AuthExchange {
    pub(super) exchange: ServerExchange,
    /// The host's refusal, held while XOAUTH2 or OAUTHBEARER sends its error challenge
    /// first (RFC 7628 §3.2.2).
    pub(super) reject: Option<Reply>,
}

/// Where the BDAT chunks of a transaction stand (RFC 3030).
#[derive(Debug)]
pub(super) enum Chunks {
    /// No BDAT yet.
    None,
    /// Chunks are being received.
    Receiving,
    /// A BDAT failed: every later one, and DATA, is refused with `reply`. `started`
    /// says whether chunks had been received (RCPT is then refused too).
    Failed { reply: Reply, started: bool },
}

impl Chunks {
    /// Chunks have been received (RCPT and DATA are over).
    pub(super) fn started(&self) -> bool {
        matches!(
            self,
            Chunks::Receiving | Chunks::Failed { started: true, .. }
        )
    }

    /// The refusal of a BDAT that failed.
    pub(super) fn failure(&self) -> Option<&Reply> {
        match self {
            Chunks::Failed { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// The open mail transaction (RFC 5321 §3.3).
#[derive(Debug)]
pub(super) struct Transaction {
    pub(super) from: ReversePath<'static>,
    pub(super) body: Option<BodyType>,
    pub(super) smtputf8: bool,
    pub(super) recipients: Vec<ForwardPath<'static>>,
    /// RCPT commands tried, accepted or not.
    pub(super) rcpt_attempts: usize,
    /// RCPT commands refused for being over the recipient limit.
    pub(super) overshoot: usize,
    /// Counts out the BDAT chunks of the message, within its size limit.
    pub(super) bdat: BdatDecoder,
    pub(super) chunks: Chunks,
    /// Octets of the message body handed to the host so far.
    pub(super) size: u64,
}

impl Transaction {
    pub(super) fn new(
        from: ReversePath<'static>,
        params: &MailParams<'static>,
        max_size: Option<u64>,
    ) -> Transaction {
        Transaction {
            from,
            body: params.body,
            smtputf8: params.smtputf8,
            recipients: Vec::new(),
            rcpt_attempts: 0,
            overshoot: 0,
            bdat: BdatDecoder::new(max_size),
            chunks: Chunks::None,
            size: 0,
        }
    }
}

/// Where a handler asks the state table to go.
#[derive(Debug)]
pub(super) enum Next {
    /// Stay in the phase the session is in (more of the same to read).
    Stay,
    /// Read commands.
    Command,
    /// Wait for the host's decision (the event asking for it is queued).
    Decide(Pending),
    /// Read a DATA body.
    Data(DataDecoder),
    /// Read a BDAT chunk.
    Bdat(Chunk),
    /// Read AUTH continuation lines.
    Auth(AuthExchange),
    /// Wait for the TLS handshake (`Output::StartTls` is queued).
    Tls,
    /// Close after what was queued.
    Close,
}

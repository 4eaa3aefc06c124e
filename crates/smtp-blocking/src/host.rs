//! What the application supplies: a [`Host`] that is asked about each new connection and
//! hands out one [`Handler`] per session, which decides policy and stores messages.
//!
//! The shape is the tokio adapter's, with plain methods instead of futures: a host
//! written for one adapter moves to the other by adding or removing `async`.

use std::net::SocketAddr;

use bytes::Bytes;
use smtp_proto::sasl::{Credentials, Mechanism};
use smtp_proto::server::{AbortReason, Event, Server};
use smtp_proto::{
    EnhancedCode, ForwardPath, Host as HeloHost, MailParams, RcptParams, Reply, ReversePath, Text,
    Verb,
};

pub use smtp_proto::server::Decision;

/// Builds a reply from parts; text with CR, LF or NUL is replaced, so this never fails.
pub(crate) fn reply(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Reply {
    let e = EnhancedCode::of(enhanced.0, enhanced.1, enhanced.2);
    Reply::new(code, Some(e), text.into())
        .unwrap_or_else(|_| Reply::fixed(code, Some(enhanced), "Error"))
}

/// Who connected, given to [`Host::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The session's identifier, unique within the [`Server`](crate::Server).
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// The connection came in on an implicit-TLS listener (RFC 8314).
    pub implicit_tls: bool,
}

/// What a [`Handler`] sees of its session at each call: who the peer is, and the
/// protocol machine's getters ([`Server::reverse_path`], [`Server::recipients`],
/// [`Server::authenticated`], [`Server::is_tls`], [`Server::received_header`], ...).
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The session's identifier, unique within the [`Server`](crate::Server).
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// The session's state machine, read-only.
    pub session: &'a Server,
}

/// The application's side of the whole server: one per [`Server`](crate::Server), shared
/// by every connection thread.
pub trait Host: Send + Sync + 'static {
    /// The per-session handler.
    type Handler: Handler + 'static;

    /// A client connected (and, on an implicit-TLS listener, finished the handshake).
    /// `Err(reply)` refuses the session: the reply (e.g. `554 5.7.1`) goes out instead of
    /// the greeting and the connection closes.
    fn connect(&self, info: &ConnectInfo) -> Result<Self::Handler, Reply>;
}

/// Policy and delivery for one session, called on the session's own thread. Every method
/// has the session's [`Context`]; the ones that return a [`Decision`] are asked while the
/// session waits for it.
///
/// Defaults accept what is pure policy (HELO, MAIL, RCPT, VRFY's `252`, EXPN's `502`,
/// ETRN), refuse credentials, and ignore notifications; [`Handler::message_end`] has no
/// default, because a message must be accepted only once it is stored (RFC 5321 §6.1).
pub trait Handler: Send {
    /// HELO, EHLO or LHLO.
    fn hello(&mut self, ctx: &Context<'_>, verb: Verb, host: &HeloHost<'static>) -> Decision {
        let _ = (ctx, verb, host);
        Decision::Accept
    }

    /// MAIL FROM, after every protocol check passed.
    fn mail(
        &mut self,
        ctx: &Context<'_>,
        from: &ReversePath<'static>,
        params: &MailParams<'static>,
    ) -> Decision {
        let _ = (ctx, from, params);
        Decision::Accept
    }

    /// RCPT TO: relay control and mailbox lookup belong here.
    fn rcpt(
        &mut self,
        ctx: &Context<'_>,
        to: &ForwardPath<'static>,
        params: &RcptParams<'static>,
    ) -> Decision {
        let _ = (ctx, to, params);
        Decision::Accept
    }

    /// The body starts: open storage. The reverse-path and the recipients are final.
    fn message_start(&mut self, ctx: &Context<'_>) {
        let _ = ctx;
    }

    /// A piece of the body, dot-unstuffed. A storage error should be remembered and
    /// turned into a `451 4.3.0` at [`Handler::message_end`].
    fn message_chunk(&mut self, ctx: &Context<'_>, chunk: Bytes) {
        let _ = (ctx, chunk);
    }

    /// SMTP: the whole body arrived and is clean. Accept only once the message is stored.
    fn message_end(&mut self, ctx: &Context<'_>) -> Decision;

    /// The message will not be accepted (client gone, timeout, smuggling, size, RSET
    /// between BDAT chunks, shutdown): discard what was stored.
    fn message_aborted(&mut self, ctx: &Context<'_>, reason: AbortReason) {
        let _ = (ctx, reason);
    }

    /// LMTP: the whole body arrived and is clean; `recipients` calls to
    /// [`Handler::lmtp_delivery`] follow.
    fn lmtp_message_end(&mut self, ctx: &Context<'_>, recipients: usize) {
        let _ = (ctx, recipients);
    }

    /// LMTP (RFC 2033 §4.2): the verdict for one recipient, in the order they were
    /// accepted. The default refuses with `451 4.3.0`, so a host that forgot to implement
    /// it loses nothing.
    fn lmtp_delivery(&mut self, ctx: &Context<'_>, to: &ForwardPath<'static>) -> Decision {
        let _ = (ctx, to);
        Decision::reject(451, (4, 3, 0), "LMTP delivery not implemented")
    }

    /// Credentials to check (their `Debug` is redacted). The default refuses (`535 5.7.8`).
    fn auth(
        &mut self,
        ctx: &Context<'_>,
        mechanism: &Mechanism,
        credentials: &Credentials,
    ) -> Decision {
        let _ = (ctx, mechanism, credentials);
        Decision::reject(535, (5, 7, 8), "Authentication credentials invalid")
    }

    /// VRFY. Accepting sends `252 2.0.0` (no user enumeration).
    fn vrfy(&mut self, ctx: &Context<'_>, arg: &Text<'static>) -> Decision {
        let _ = (ctx, arg);
        Decision::Accept
    }

    /// EXPN. Accepting sends `502 5.5.1`.
    fn expn(&mut self, ctx: &Context<'_>, arg: &Text<'static>) -> Decision {
        let _ = (ctx, arg);
        Decision::Accept
    }

    /// ETRN (RFC 1985). Accepting sends `250 2.0.0 Queuing started`.
    fn etrn(&mut self, ctx: &Context<'_>, arg: &Text<'static>) -> Decision {
        let _ = (ctx, arg);
        Decision::Accept
    }

    /// Every other event, for logs and metrics: [`Event::Connected`], [`Event::Reset`],
    /// [`Event::TlsEstablished`], [`Event::Quit`], [`Event::ProtocolError`],
    /// [`Event::Timeout`].
    fn event(&mut self, ctx: &Context<'_>, event: &Event) {
        let _ = (ctx, event);
    }
}

/// The handler of a session that is refused before it starts: it never decides anything.
pub(crate) struct Refused;

impl Handler for Refused {
    fn message_end(&mut self, _: &Context<'_>) -> Decision {
        Decision::reject(451, (4, 3, 0), "Error: session refused")
    }
}

//! What a client session may do, and the envelopes it sends.

use std::time::Duration;

use crate::address::{ForwardPath, ReversePath};
use crate::data::LongLines;
use crate::params::{BodyType, Notify, Orcpt, Ret, XText};
use crate::reply::ReplyLimits;
use crate::sasl::{ClientCredentials, Mechanism};

/// When to use STARTTLS (RFC 3207).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartTls {
    /// Use it, and fail (with QUIT) if the server does not offer it or refuses it.
    Required,
    /// Use it when offered; go on in plaintext otherwise, and after a 454 refusal.
    #[default]
    Opportunistic,
    /// Never.
    Never,
}

/// Client timeouts, RFC 5321 §4.5.3.2 defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// Initial 220 message: 5 minutes (§4.5.3.2.1).
    pub greeting: Duration,
    /// EHLO, STARTTLS, AUTH, RSET, QUIT replies (the spirit of §4.5.3.2: 5 minutes).
    pub command: Duration,
    /// MAIL command: 5 minutes (§4.5.3.2.2).
    pub mail: Duration,
    /// RCPT command: 5 minutes (§4.5.3.2.3).
    pub rcpt: Duration,
    /// DATA initiation (the 354): 2 minutes (§4.5.3.2.4).
    pub data_init: Duration,
    /// Data block, and each BDAT chunk's reply: 3 minutes (§4.5.3.2.5).
    pub data_block: Duration,
    /// DATA termination (the reply to the final dot): 10 minutes (§4.5.3.2.6).
    pub data_end: Duration,
    /// The TLS handshake after the `220` to STARTTLS, run by the adapter: 1 minute.
    pub tls_handshake: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        ClientTimeouts {
            greeting: min(5),
            command: min(5),
            mail: min(5),
            rcpt: min(5),
            data_init: min(2),
            data_block: min(3),
            data_end: min(10),
            tls_handshake: min(1),
        }
    }
}

impl ClientTimeouts {
    /// Every timeout set to `t` (the `--timeout` of a command-line client).
    pub fn all(t: Duration) -> ClientTimeouts {
        ClientTimeouts {
            greeting: t,
            command: t,
            mail: t,
            rcpt: t,
            data_init: t,
            data_block: t,
            data_end: t,
            tls_handshake: t,
        }
    }
}

/// The configuration of a client session.
///
/// ```
/// use smtp_proto::client::{ClientConfig, StartTls};
/// let mut config = ClientConfig::new("client.example.org").unwrap();
/// config.starttls = StartTls::Required;
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) helo_name: String,
    /// Speak LMTP (RFC 2033): LHLO, and a reply per recipient after the message.
    pub lmtp: bool,
    /// STARTTLS policy. With implicit TLS (port 465) the adapter says so at start.
    pub starttls: StartTls,
    /// Credentials for AUTH (RFC 4954); `None`: do not authenticate.
    pub credentials: Option<ClientCredentials>,
    /// Use this mechanism rather than the best one both sides support.
    pub mechanism: Option<Mechanism>,
    /// Allow PLAIN and LOGIN (and tokens) on a connection without TLS.
    pub allow_cleartext_auth: bool,
    /// Pipeline MAIL, RCPT and DATA when the server offers PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Send with BDAT when the server offers CHUNKING (RFC 3030).
    pub chunking: bool,
    /// Lines over 998 octets in a DATA body: refuse the message (default) or send them
    /// and count them in the outcome.
    pub long_lines: LongLines,
    /// Limits on server replies.
    pub reply_limits: ReplyLimits,
    /// Timeouts.
    pub timeouts: ClientTimeouts,
    /// Emit [`ClientEvent::Transcript`](super::ClientEvent::Transcript) lines (`C: `/`S: `,
    /// AUTH payloads redacted), for a `-v` mode.
    pub transcript: bool,
    /// Send RSET before every transaction after the first on a connection (pipelined
    /// with MAIL when the server offers PIPELINING), so that a kept connection is known
    /// to be in a clean state; a relay's connection cache does this. Off by default: after
    /// a completed transaction RFC 5321 §4.1.4 needs none.
    pub reset_between: bool,
}

impl ClientConfig {
    /// A configuration with RFC defaults; `helo_name` is the name given in EHLO, a domain
    /// or an address literal.
    pub fn new(helo_name: &str) -> Result<ClientConfig, crate::BuildError> {
        crate::Host::parse(helo_name, false)?;
        Ok(ClientConfig {
            helo_name: helo_name.to_owned(),
            lmtp: false,
            starttls: StartTls::default(),
            credentials: None,
            mechanism: None,
            allow_cleartext_auth: false,
            pipelining: true,
            chunking: true,
            long_lines: LongLines::Reject,
            reply_limits: ReplyLimits::default(),
            timeouts: ClientTimeouts::default(),
            transcript: false,
            reset_between: false,
        })
    }

    /// The EHLO name.
    pub fn helo_name(&self) -> &str {
        &self.helo_name
    }
}

/// One recipient of an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The forward-path.
    pub to: ForwardPath<'static>,
    /// DSN `NOTIFY` (RFC 3461), sent only when the server offers DSN.
    pub notify: Option<Notify>,
    /// DSN `ORCPT` (RFC 3461), sent only when the server offers DSN.
    pub orcpt: Option<Orcpt<'static>>,
}

impl Recipient {
    /// A recipient with no DSN parameters.
    pub fn new(to: ForwardPath<'static>) -> Recipient {
        Recipient {
            to,
            notify: None,
            orcpt: None,
        }
    }
}

/// What a message needs besides its body: the SMTP envelope and what is known about the
/// body in advance (its size and kind go in MAIL, before the body is sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path (`<>` for bounces).
    pub from: ReversePath<'static>,
    /// The recipients, at least one.
    pub recipients: Vec<Recipient>,
    /// The body's size in octets, if known: sent as `SIZE=` and checked against the
    /// server's SIZE before anything is sent (RFC 1870).
    pub size: Option<u64>,
    /// What the body holds ([`crate::data::scan_body`] tells): 8-bit text goes with
    /// `BODY=8BITMIME` when offered, binary needs BINARYMIME and CHUNKING.
    pub body: BodyType,
    /// DSN `RET` (RFC 3461).
    pub ret: Option<Ret>,
    /// DSN `ENVID` (RFC 3461).
    pub envid: Option<XText<'static>>,
    /// Refuse to send unless the whole path is TLS (RFC 8689).
    pub requiretls: bool,
}

impl Envelope {
    /// An envelope for a 7-bit body of unknown size.
    pub fn new(from: ReversePath<'static>, recipients: Vec<Recipient>) -> Envelope {
        Envelope {
            from,
            recipients,
            size: None,
            body: BodyType::SevenBit,
            ret: None,
            envid: None,
            requiretls: false,
        }
    }

    /// Whether any address needs SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        self.from.is_utf8() || self.recipients.iter().any(|r| r.to.is_utf8())
    }
}

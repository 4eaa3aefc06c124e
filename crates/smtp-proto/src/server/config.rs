//! What a server session is allowed to do: extensions, limits and timeouts, each with the
//! RFC that sets its default.

use std::time::Duration;

use crate::data::{BareLineEndings, LongLines};

/// The ESMTP extensions a server advertises (RFC 5321 §4.1.1.1). Each is offered only
/// where it makes sense in the session's state: STARTTLS only before TLS, password
/// mechanisms only after TLS unless [`ServerConfig::auth_requires_tls`] is off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// CHUNKING, the BDAT command (RFC 3030).
    pub chunking: bool,
    /// BINARYMIME (RFC 3030); only advertised together with CHUNKING.
    pub binary_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// DSN (RFC 3461): RET, ENVID, NOTIFY, ORCPT.
    pub dsn: bool,
    /// STARTTLS (RFC 3207): the host can start TLS on this connection.
    pub starttls: bool,
    /// AUTH (RFC 4954) mechanisms, in the order advertised (upper case). Empty: no AUTH.
    pub auth: Vec<String>,
    /// ENHANCEDSTATUSCODES (RFC 2034): replies carry `x.y.z` codes.
    pub enhanced_status_codes: bool,
    /// REQUIRETLS (RFC 8689); only advertised once TLS is active.
    pub requiretls: bool,
    /// MT-PRIORITY (RFC 6710).
    pub mt_priority: bool,
    /// DELIVERBY (RFC 2852).
    pub deliver_by: bool,
    /// VRFY is listed (RFC 5321 §3.5.2 lets servers offer it; it is answered 252 anyway
    /// unless the host decides otherwise).
    pub vrfy: bool,
    /// ETRN (RFC 1985); the host decides what to do with each request.
    pub etrn: bool,
    /// HELP is listed.
    pub help: bool,
    /// MAIL/RCPT parameters of private extensions the host handles itself (upper case);
    /// any other unknown parameter gets `555 5.5.4` (RFC 5321 §4.1.1.11).
    pub extra_params: Vec<String>,
}

impl Default for Extensions {
    /// Everything a modern MTA offers, no AUTH mechanisms and no STARTTLS (those need the
    /// host to have credentials and a certificate).
    fn default() -> Self {
        Extensions {
            pipelining: true,
            eight_bit_mime: true,
            chunking: true,
            binary_mime: true,
            smtputf8: true,
            dsn: true,
            starttls: false,
            auth: Vec::new(),
            enhanced_status_codes: true,
            requiretls: false,
            mt_priority: false,
            deliver_by: false,
            vrfy: false,
            etrn: false,
            help: false,
            extra_params: Vec::new(),
        }
    }
}

/// Limits; exceeding one gets the reply its RFC names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message in octets, advertised in SIZE (RFC 1870); `None`: no limit
    /// (`SIZE` with no number). Over it: `552 5.3.4`.
    pub max_message_size: Option<u64>,
    /// Recipients per transaction; RFC 5321 §4.5.3.1.8 says at least 100 must be
    /// accepted. Beyond it: `452 4.5.3` (§4.5.3.1.10).
    pub max_recipients: usize,
    /// Command line length with CRLF, at least 512 (RFC 5321 §4.5.3.1.4).
    pub max_line: usize,
    /// AUTH lines (RFC 4954 §4: 12288).
    pub max_auth_line: usize,
    /// Errors before `421 4.7.0` and close (Postfix's `smtpd_hard_error_limit`, 20).
    /// Errors are commands that fail: bad syntax or sequence, unknown commands, and
    /// the host's refusals (relay denied, unknown recipient, ...). A message accepted
    /// forgives them.
    pub max_errors: u32,
    /// Errors after which every reply is delayed by [`Timeouts::error_delay`]
    /// (Postfix's `smtpd_soft_error_limit`, 10).
    pub soft_errors: u32,
    /// HELO, EHLO, RSET, NOOP, VRFY, EXPN, ETRN and HELP commands allowed before each
    /// one more counts as an error (Postfix's `smtpd_junk_command_limit`, 100). A
    /// message accepted resets the count.
    pub max_junk_commands: u32,
    /// RCPT commands refused with `452 4.5.3` over [`max_recipients`](Self::max_recipients)
    /// before each one more counts as an error (Postfix's
    /// `smtpd_recipient_overshoot_limit`, 1000).
    pub recipient_overshoot: usize,
    /// Failed AUTH attempts before `421 4.7.0` and close.
    pub max_auth_failures: u32,
    /// Input held while waiting for a decision before the session stops asking for more
    /// (backpressure against a client that pipelines without end).
    pub max_buffered: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: Some(26_214_400),
            max_recipients: 100,
            max_line: crate::line::MAX_COMMAND_LINE,
            max_auth_line: crate::line::MAX_AUTH_LINE,
            max_errors: 20,
            soft_errors: 10,
            max_junk_commands: 100,
            recipient_overshoot: 1000,
            max_auth_failures: 3,
            max_buffered: 64 * 1024,
        }
    }
}

/// Server timeouts (RFC 5321 §4.5.3.2.7: "the server timeout SHOULD be at least 5
/// minutes" while awaiting the next command; §4.5.3.2.5 data block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Waiting for the next command (§4.5.3.2.7: 5 minutes), counted from the first
    /// octet of a command line to its end, so that a client trickling a line one octet
    /// at a time cannot hold the session open (Postfix's `smtpd_per_record_deadline`).
    pub command: Duration,
    /// Waiting for the next piece of a DATA or BDAT body (§4.5.3.2.5: 3 minutes on the
    /// client side; the server uses the same). Each piece received pushes the deadline
    /// back by its size at [`min_data_rate`](Self::min_data_rate), never beyond this
    /// from now.
    pub data_block: Duration,
    /// Octets per second a body must arrive at, on average, for the session to go on
    /// (Postfix's `smtpd_min_data_rate`, 500); 0: any rate, each piece restarts
    /// [`data_block`](Self::data_block).
    pub min_data_rate: u64,
    /// How long each reply is held back once the client has made
    /// [`Limits::soft_errors`] errors (Postfix's `smtpd_error_sleep_time`, 1 s). The
    /// session asks for the wait ([`Output::Wait`](super::Output::Wait) with `read:
    /// false`); nothing blocks.
    pub error_delay: Duration,
    /// Waiting for the TLS handshake after `220 Ready to start TLS`.
    pub tls_handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(300),
            data_block: Duration::from_secs(180),
            min_data_rate: 500,
            error_delay: Duration::from_secs(1),
            tls_handshake: Duration::from_secs(60),
        }
    }
}

/// What to do when a client sends more commands after one that must end a pipelined
/// group (RFC 2920 §3.1: EHLO, DATA, VRFY, EXPN, QUIT, NOOP; RFC 3207 STARTTLS; RFC 4954
/// AUTH), or pipelines at all without PIPELINING.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Answer `554 5.5.0 Error: SMTP protocol synchronization` and close, as Postfix does
    /// (`smtpd_forbid_unauth_pipelining`). Spammware does this; real clients do not.
    #[default]
    Reject,
    /// Process the commands in order anyway. STARTTLS is still refused: bytes after it
    /// are never processed (CVE-2011-0411).
    Allow,
}

/// The whole configuration of a server session. Cheap to share: wrap it in an `Arc`.
///
/// ```
/// use smtp_proto::server::ServerConfig;
/// let mut config = ServerConfig::new("mx.example.org").unwrap();
/// config.extensions.starttls = true;
/// config.limits.max_message_size = Some(10 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// This server's name, used in the greeting, EHLO and trace headers.
    pub(crate) hostname: String,
    /// Text after the hostname in the greeting (`220 <hostname> <text>`).
    pub(crate) greeting: String,
    /// Serve LMTP (RFC 2033) instead of SMTP: LHLO, and one reply per recipient after the
    /// message.
    pub lmtp: bool,
    /// Advertised extensions.
    pub extensions: Extensions,
    /// Limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Offer and accept PLAIN and LOGIN only once TLS is active (RFC 4954 §4: a server
    /// SHOULD NOT advertise plaintext mechanisms without a security layer).
    pub auth_requires_tls: bool,
    /// MAIL before STARTTLS gets `530 5.7.0` (RFC 3207 §4).
    pub require_tls: bool,
    /// MAIL before AUTH gets `530 5.7.0` (RFC 4954 §6).
    pub require_auth: bool,
    /// Bare CR or LF in a DATA body (SMTP smuggling): reject the message with `550 5.5.2`
    /// (default) or convert to CRLF.
    pub bare_line_endings: BareLineEndings,
    /// Body lines over 1000 octets (RFC 5321 §4.5.3.1.6): accept (default) or reject.
    pub long_lines: LongLines,
    /// Commands pipelined where the protocol forbids it.
    pub sync: SyncPolicy,
    /// Require HELO/EHLO before MAIL (RFC 5321 §4.1.4 allows servers to; Postfix's
    /// `smtpd_helo_required`). On by default.
    pub helo_required: bool,
}

impl ServerConfig {
    /// A configuration with RFC defaults. `hostname` must be a domain or an address
    /// literal (it appears in every greeting and trace header).
    pub fn new(hostname: &str) -> Result<ServerConfig, crate::BuildError> {
        crate::Host::parse(hostname, true)?;
        Ok(ServerConfig {
            hostname: hostname.to_owned(),
            greeting: "ESMTP".to_owned(),
            lmtp: false,
            extensions: Extensions::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            auth_requires_tls: true,
            require_tls: false,
            require_auth: false,
            bare_line_endings: BareLineEndings::default(),
            long_lines: LongLines::Accept,
            sync: SyncPolicy::default(),
            helo_required: true,
        })
    }

    /// The hostname.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Sets the greeting text; refuses CR, LF and NUL.
    pub fn set_greeting(&mut self, text: &str) -> Result<(), crate::BuildError> {
        if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(crate::BuildError::ControlCharacter);
        }
        self.greeting = text.to_owned();
        Ok(())
    }

    /// The greeting text.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// `421 4.3.2 <hostname> Error: too many connections`: what an adapter sends (through
    /// [`Session::close_with`](super::Session::close_with)) to a connection over its limit,
    /// so that every adapter says the same (RFC 5321 §3.8, RFC 3463 X.3.2 "system not
    /// accepting network messages").
    pub fn too_many_connections_reply(&self) -> crate::Reply {
        let text = format!("{} Error: too many connections", self.hostname);
        crate::Reply::new(421, Some(crate::EnhancedCode::of(4, 3, 2)), text).unwrap_or_else(|_| {
            crate::Reply::fixed(421, Some((4, 3, 2)), "Error: too many connections")
        })
    }

    /// `421 4.3.2 <hostname> Service shutting down, closing transmission channel`: the reply
    /// for [`Session::shutdown`](super::Session::shutdown) (RFC 5321 §3.8).
    pub fn shutdown_reply(&self) -> crate::Reply {
        let text = format!(
            "{} Service shutting down, closing transmission channel",
            self.hostname
        );
        crate::Reply::new(421, Some(crate::EnhancedCode::of(4, 3, 2)), text)
            .unwrap_or_else(|_| crate::Reply::fixed(421, Some((4, 3, 2)), "Service shutting down"))
    }
}

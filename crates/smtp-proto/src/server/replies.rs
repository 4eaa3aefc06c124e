//! Every reply the server session sends on its own, in one place: named constants, and
//! functions for the few that carry the host name or a number. Replies to commands that
//! do not parse come from [`CommandError::reply`](crate::CommandError::reply), to bodies
//! that fail from [`DataError::reply`](crate::DataError::reply), to AUTH exchanges that
//! fail from [`SaslError::reply`](crate::sasl::SaslError::reply); the AUTH replies are
//! the [`sasl`](crate::sasl) module's constants; the host's defaults for its decisions
//! are here.
//!
//! Texts follow Postfix's where Postfix has one, so that logs and scripts written for it
//! read ours; codes and enhanced codes are the RFCs' (RFC 5321 §4.2.2, RFC 3463).

use crate::reply::{EnhancedCode, Reply};
use crate::sasl;

/// A constant reply with an enhanced status code.
const fn reply(code: u16, enhanced: (u8, u16, u16), text: &'static str) -> Reply {
    Reply::constant(
        code,
        Some(EnhancedCode::of(enhanced.0, enhanced.1, enhanced.2)),
        text,
    )
}

// ---- positive ------------------------------------------------------------------------

/// RSET, NOOP (RFC 5321 §4.1.1.5, §4.1.1.9).
pub(crate) const OK: Reply = reply(250, (2, 0, 0), "Ok");
/// MAIL accepted (RFC 3463 X.1.0: other address status).
pub(crate) const MAIL_OK: Reply = reply(250, (2, 1, 0), "Ok");
/// RCPT accepted (X.1.5: destination address valid).
pub(crate) const RCPT_OK: Reply = reply(250, (2, 1, 5), "Ok");
/// The message was taken.
pub(crate) const QUEUED: Reply = reply(250, (2, 0, 0), "Ok: queued");
/// QUIT (RFC 5321 §4.1.1.10).
pub(crate) const BYE: Reply = reply(221, (2, 0, 0), "Bye");
/// HELP (RFC 5321 §4.1.1.8).
pub(crate) const HELP: Reply = reply(
    214,
    (2, 0, 0),
    "See RFC 5321: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH",
);
/// DATA (RFC 5321 §4.1.1.4); no enhanced code on a 354, as Postfix sends it.
pub(crate) const START_DATA: Reply = Reply::constant(354, None, "End data with <CR><LF>.<CR><LF>");
/// STARTTLS (RFC 3207 §4).
pub(crate) const READY_FOR_TLS: Reply = reply(220, (2, 0, 0), "Ready to start TLS");
/// AUTH succeeded (RFC 4954 §6).
pub(crate) const AUTH_OK: Reply = sasl::AUTH_SUCCEEDED;
/// VRFY without an answer (RFC 5321 §3.5.3: 252).
pub(crate) const CANNOT_VRFY: Reply = reply(
    252,
    (2, 0, 0),
    "Cannot VRFY user, but will accept message and attempt delivery",
);
/// ETRN (RFC 1985 §5).
pub(crate) const QUEUING_STARTED: Reply = reply(250, (2, 0, 0), "Queuing started");

// ---- sequence and syntax ---------------------------------------------------------------

/// A command this server does not know (RFC 5321 §4.2.4).
pub(crate) const NOT_RECOGNIZED: Reply = reply(500, (5, 5, 2), "Error: command not recognized");
/// A command known but not offered (RFC 5321 §4.2.4: 502).
pub(crate) const NOT_IMPLEMENTED: Reply = reply(502, (5, 5, 1), "Error: command not implemented");
/// A mail header or an HTTP request where a command should be: Postfix's answer.
pub(crate) const FORBIDDEN: Reply = reply(221, (2, 7, 0), "Error: forbidden command, closing");
/// Pipelining where a client must wait (RFC 2920 §3.1), or plaintext after STARTTLS.
pub(crate) const SYNCHRONIZATION: Reply =
    reply(554, (5, 5, 0), "Error: SMTP protocol synchronization");
/// MAIL before HELO or EHLO.
pub(crate) const SEND_HELO_FIRST: Reply = reply(503, (5, 5, 1), "Error: send HELO/EHLO first");
/// AUTH before EHLO (RFC 4954 §4).
pub(crate) const SEND_EHLO_FIRST: Reply = reply(503, (5, 5, 1), "Error: send EHLO first");
/// MAIL inside a transaction (RFC 5321 §4.1.4).
pub(crate) const NESTED_MAIL: Reply = reply(503, (5, 5, 1), "Error: nested MAIL command");
/// RCPT, DATA or BDAT without a transaction.
pub(crate) const NEED_MAIL: Reply = reply(503, (5, 5, 1), "Error: need MAIL command");
/// DATA or BDAT before any RCPT.
pub(crate) const NEED_RCPT: Reply = reply(503, (5, 5, 1), "Error: need RCPT command");
/// RCPT once BDAT chunks have started (RFC 3030 §2).
pub(crate) const RCPT_AFTER_BDAT: Reply = reply(503, (5, 5, 1), "Error: RCPT after BDAT");
/// DATA once BDAT chunks have started (RFC 3030 §2).
pub(crate) const DATA_AFTER_BDAT: Reply = reply(503, (5, 5, 1), "Error: DATA after BDAT");
/// DATA for a BINARYMIME body (RFC 3030 §3).
pub(crate) const BDAT_REQUIRED: Reply =
    reply(503, (5, 5, 1), "Error: BDAT required for BINARYMIME");
/// STARTTLS inside TLS (RFC 3207 §4).
pub(crate) const TLS_ALREADY_ACTIVE: Reply = reply(554, (5, 5, 1), "Error: TLS already active");
/// AUTH after a successful AUTH (RFC 4954 §4).
pub(crate) const ALREADY_AUTHENTICATED: Reply = sasl::AUTH_ALREADY_AUTHENTICATED;
/// AUTH inside a mail transaction (RFC 4954 §4).
pub(crate) const AUTH_IN_TRANSACTION: Reply =
    reply(503, (5, 5, 1), "Error: MAIL transaction in progress");

// ---- refusals --------------------------------------------------------------------------

/// Every recipient was refused (RFC 5321 §3.3: DATA then gets 554).
pub(crate) const NO_VALID_RECIPIENTS: Reply = reply(554, (5, 5, 1), "Error: no valid recipients");
/// Over the recipient limit (RFC 5321 §4.5.3.1.10: 452, so the client retries later).
pub(crate) const TOO_MANY_RECIPIENTS: Reply = reply(452, (4, 5, 3), "Error: too many recipients");
/// A declared SIZE over the limit (RFC 1870 §6.2).
pub(crate) const SIZE_OVER_LIMIT: Reply = reply(552, (5, 3, 4), "Message size exceeds fixed limit");
/// MAIL before STARTTLS when TLS is required (RFC 3207 §4).
pub(crate) const STARTTLS_FIRST: Reply =
    reply(530, (5, 7, 0), "Must issue a STARTTLS command first");
/// MAIL before AUTH when AUTH is required (RFC 4954 §6).
pub(crate) const AUTH_REQUIRED: Reply = sasl::AUTH_REQUIRED;
/// A non-ASCII reverse-path when SMTPUTF8 is not offered (RFC 6531 §3.7.4.1, RFC 6533).
pub(crate) const UTF8_NOT_OFFERED: Reply = reply(
    553,
    (5, 6, 7),
    "Non-ASCII addresses not permitted; SMTPUTF8 not offered",
);
/// A mechanism not offered (RFC 4954 §6: 504).
pub(crate) const UNKNOWN_MECHANISM: Reply = sasl::AUTH_UNRECOGNIZED_MECHANISM;
/// A password mechanism before TLS (RFC 4954 §6: 538).
pub(crate) const ENCRYPTION_REQUIRED: Reply = sasl::AUTH_ENCRYPTION_REQUIRED;
/// The host's default refusal of credentials (RFC 4954 §6: 535).
pub(crate) const AUTH_INVALID: Reply = sasl::AUTH_INVALID_CREDENTIALS;
/// EXPN, unless the host answers it.
pub(crate) const EXPN_NOT_AVAILABLE: Reply = reply(502, (5, 5, 1), "EXPN not available");
/// The handler's default for an LMTP delivery it does not implement (RFC 2033 §4.2).
pub(crate) const LMTP_NOT_IMPLEMENTED: Reply =
    reply(451, (4, 3, 0), "LMTP delivery not implemented");
/// What the host's decision of the wrong class turns into: the session must answer
/// something, and it is the server's error, not the client's.
pub(crate) const LOCAL_ERROR: Reply = reply(451, (4, 3, 0), "Error: local error in processing");

// ---- with a name or a number -----------------------------------------------------------

/// A reply whose text is built at run time; the parts are the session's own, so it is
/// valid, and a fallback keeps the code should the text not be.
fn dynamic(code: u16, enhanced: (u8, u16, u16), text: String, fallback: &'static str) -> Reply {
    let e = EnhancedCode::of(enhanced.0, enhanced.1, enhanced.2);
    Reply::new(code, Some(e), text).unwrap_or_else(|_| Reply::constant(code, Some(e), fallback))
}

/// The greeting (RFC 5321 §4.3.1): `220 host text`.
pub(crate) fn greeting(hostname: &str, text: &str) -> Reply {
    let line = format!("{hostname} {text}");
    Reply::new(220, None, line.trim_end().to_owned())
        .unwrap_or_else(|_| Reply::constant(220, None, "ESMTP"))
}

/// The HELO reply (RFC 5321 §4.1.1.1): the server's name.
pub(crate) fn helo(hostname: &str) -> Reply {
    Reply::new(250, None, hostname.to_owned()).unwrap_or_else(|_| Reply::constant(250, None, "Ok"))
}

/// The deadline passed (RFC 5321 §4.5.3.2: 421).
pub(crate) fn timeout(hostname: &str) -> Reply {
    let text = format!("{hostname} Error: timeout exceeded");
    dynamic(421, (4, 4, 2), text, "Error: timeout exceeded")
}

/// The error limit (Postfix's `smtpd_hard_error_limit`).
pub(crate) fn too_many_errors(hostname: &str) -> Reply {
    let text = format!("{hostname} Error: too many errors");
    dynamic(421, (4, 7, 0), text, "Error: too many errors")
}

/// The limit of failed AUTH attempts in one session.
pub(crate) fn too_many_auth_failures(hostname: &str) -> Reply {
    let text = format!("{hostname} Error: too many failed authentication attempts");
    dynamic(
        421,
        (4, 7, 0),
        text,
        "Error: too many failed authentication attempts",
    )
}

/// A BDAT chunk that was not the last (RFC 3030 §2).
pub(crate) fn octets_received(total: u64) -> Reply {
    dynamic(250, (2, 0, 0), format!("{total} octets received"), "Ok")
}

/// A MAIL or RCPT parameter of an extension not offered (RFC 5321 §4.1.1.11: 555).
pub(crate) fn unsupported_option(name: &str) -> Reply {
    dynamic(
        555,
        (5, 5, 4),
        format!("Unsupported option: {name}"),
        "Unsupported option",
    )
}

//! Errors, split by who erred: the peer ([`CommandError`], and the reply, data and SASL
//! errors beside their codecs) or the caller ([`BuildError`]).
//!
//! Every peer error knows the exact reply an RFC-conforming server sends for it, so a
//! server built on this crate never has to invent one. For [`CommandError`] that reply
//! ([`CommandError::reply`]) is written in `command.rs`, beside the grammar it reports on,
//! so that this module depends on nothing but the verbs and sits below every codec.

use crate::verb::Verb;

/// Why an address (path, mailbox, domain) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not the grammar of RFC 5321 §4.1.2.
    #[error("address syntax error")]
    Syntax,
    /// An empty string where an address was expected (the null reverse-path is `<>`).
    #[error("empty address (the null reverse-path is written <>)")]
    Empty,
    /// A mailbox in angle brackets: `<bob@example.org>` is a path (RFC 5321 §4.1.2
    /// `Path`), parsed by [`ForwardPath`](crate::ForwardPath) or
    /// [`ReversePath`](crate::ReversePath); a [`Mailbox`](crate::Mailbox) has none.
    #[error("angle brackets: this is a path, use ForwardPath or ReversePath, not Mailbox")]
    AngleBrackets,
    /// No `@` between a local part and a domain (RFC 5321 §4.1.2 `Mailbox`).
    #[error("no @ between local part and domain")]
    MissingAt,
    /// `<>` where a mailbox is needed: only a reverse-path may be null (RFC 5321
    /// §4.5.5).
    #[error("null path <> where a mailbox is needed (only a reverse-path may be null)")]
    NullPath,
    /// Something after the path's closing `>`.
    #[error("characters after the closing >")]
    TrailingInput,
    /// Local part longer than 64 octets (RFC 5321 §4.5.3.1.1).
    #[error("local part longer than 64 octets")]
    LocalPartTooLong,
    /// Domain longer than 255 octets (RFC 5321 §4.5.3.1.2).
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    /// Path longer than 256 octets (RFC 5321 §4.5.3.1.3).
    #[error("path longer than 256 octets")]
    PathTooLong,
    /// UTF-8 in an address without SMTPUTF8 (RFC 6531 §3.3).
    #[error("non-ASCII address without SMTPUTF8")]
    Utf8NotPermitted,
    /// A control character: CR, LF or NUL given to a builder (it could never be sent),
    /// or a C1 control or a Unicode line or paragraph separator (U+2028, U+2029) in a
    /// UTF-8 address, which would break a header line or a terminal (RFC 5198 §2).
    #[error("control character in address")]
    ControlCharacter,
}

/// Why a MAIL or RCPT parameter was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// Not `esmtp-keyword ["=" esmtp-value]` (RFC 5321 §4.1.2).
    #[error("malformed parameter")]
    Syntax,
    /// The same keyword twice on one command.
    #[error("duplicate parameter")]
    Duplicate,
    /// A value outside what the defining RFC allows.
    #[error("invalid parameter value")]
    InvalidValue,
    /// A keyword that needs a value was given none.
    #[error("missing parameter value")]
    MissingValue,
    /// A keyword that takes no value was given one.
    #[error("unexpected parameter value")]
    UnexpectedValue,
    /// A number that does not fit (`SIZE=184467440737095516160`).
    #[error("numeric parameter overflow")]
    Overflow,
    /// CR, LF or NUL after xtext decoding, or in a value given to a builder.
    #[error("control character in parameter")]
    ControlCharacter,
    /// xtext that is not `+` followed by two upper-case hex digits (RFC 3461 §4).
    #[error("malformed xtext")]
    XText,
}

/// A command line the peer sent that cannot be accepted.
///
/// [`CommandError::reply`] gives the reply to send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The line exceeded the configured limit (512 octets by default, RFC 5321 §4.5.3.1.4).
    /// Reported once; the rest of the line up to its LF is skipped.
    #[error("command line too long")]
    LineTooLong,
    /// A LF not preceded by CR inside a command line.
    #[error("bare LF in command line")]
    BareLf,
    /// A CR not followed by LF inside a command line.
    #[error("bare CR in command line")]
    BareCr,
    /// A NUL octet in a command line (RFC 5321 §2.3.1: commands are US-ASCII text).
    #[error("NUL in command line")]
    Nul,
    /// The arguments do not follow the command's grammar.
    #[error("syntax error in {verb} arguments")]
    Syntax {
        /// The command that was recognised.
        verb: Verb,
    },
    /// The path of MAIL or RCPT was refused.
    #[error("{verb}: {error}")]
    Address {
        /// `Verb::Mail` or `Verb::Rcpt`.
        verb: Verb,
        /// What was wrong.
        error: AddressError,
    },
    /// A parameter of MAIL or RCPT was refused.
    #[error("{verb} parameter {keyword}: {error}")]
    Param {
        /// `Verb::Mail` or `Verb::Rcpt`.
        verb: Verb,
        /// The keyword as sent (upper-cased).
        keyword: String,
        /// What was wrong.
        error: ParamError,
    },
    /// An AUTH initial response that is not valid base64 (RFC 4954 §4).
    #[error("invalid base64 in AUTH")]
    Base64,
}

/// A value given by the caller that cannot be sent: building it was refused so that no
/// line with CR, LF or NUL, or against the grammar, can ever be produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// CR, LF or NUL in text.
    #[error("control character in value")]
    ControlCharacter,
    /// A reply code outside 200..=599.
    #[error("reply code {0} outside 200..=599")]
    ReplyCode(u16),
    /// An enhanced status code with a bad class or a part over 999.
    #[error("invalid enhanced status code")]
    EnhancedCode,
    /// An enhanced status code whose class differs from the reply code's first digit.
    #[error("enhanced status code class differs from reply code class")]
    EnhancedClassMismatch,
    /// A refusal whose reply code is not 4xx or 5xx (a `250` cannot refuse).
    #[error("reply code {0} is not a refusal (4xx or 5xx)")]
    NotRefusal(u16),
    /// An acceptance whose reply code is not 2xx.
    #[error("reply code {0} is not positive (2xx)")]
    NotPositive(u16),
    /// An address that does not follow RFC 5321 §4.1.2.
    #[error("invalid address: {0}")]
    Address(#[from] AddressError),
    /// A parameter value that does not follow its RFC.
    #[error("invalid parameter: {0}")]
    Param(#[from] ParamError),
    /// Text that does not follow the grammar of the command it is for.
    #[error("invalid argument")]
    Argument,
}

//! Message bodies: DATA dot-stuffing in both directions, and BDAT chunk framing.
//!
//! - [`DataDecoder`] is the server side of DATA (RFC 5321 §4.1.1.4, §4.5.2): it finds the
//!   end of data and removes the dots added for transparency, over input that arrives in
//!   pieces of any size, and hands back slices of that input rather than copies.
//! - [`BdatDecoder`] is the server side of BDAT (RFC 3030 §2): it counts out exactly the
//!   declared number of octets and passes them through untouched.
//! - [`DotStuffer`] is the client side of DATA: it normalises line endings to CRLF,
//!   doubles leading dots and appends the end-of-data line.
//! - [`BodyScanner`] tells a client which `BODY=` a message needs (RFC 6152, RFC 3030).
//!
//! # Files
//! Here: [`DataError`] (with its reply), [`LongLines`] and the line limit, which both
//! directions share. Beside it: `decoder.rs` ([`DataDecoder`]), `bdat.rs`
//! ([`BdatDecoder`]), `stuffer.rs` ([`DotStuffer`]), `normalize.rs` ([`LineNormalizer`] and
//! [`normalize_line_endings`], for text sent with BDAT) and `body.rs` ([`BodyScanner`]).
//!
//! # SMTP smuggling
//! The only end of data is `CRLF . CRLF` (RFC 5321 §4.1.1.4). Servers that also accepted
//! `LF . LF`, `CR . CR` or `LF . CRLF` let a sender hide a second message, with its own
//! envelope, inside the first one, to be cut out by the receiver but passed on intact by a
//! relay that reads the body differently (CVE-2023-51764 Postfix, CVE-2023-51765 Sendmail,
//! CVE-2023-51766 Exim). Here a CR or LF that is not part of a CRLF never takes part in the
//! end of data, whatever the chunking, and is either refused or turned into CRLF
//! ([`BareLineEndings`]); the encoder never emits one at all.
//!
//! # Replies
//! Every [`DataError`] carries the reply a server sends at the end of data
//! ([`DataError::reply`]), so the host never has to choose one.

mod bdat;
mod body;
mod decoder;
mod normalize;
mod stuffer;

pub use bdat::{BdatDecoder, BdatStep};
pub use body::{BodyInfo, BodyKind, BodyScanner, scan_body};
pub use decoder::{BareLineEndings, Content, DataDecoder, DecodeStatus, DecodeStep};
pub use normalize::{LineNormalizer, normalize_line_endings};
pub use stuffer::{DotStuffer, EncodeError};

use crate::reply::{EnhancedCode, Reply};

/// Longest text line RFC 5321 §4.5.3.1.6 allows: 1000 octets counting the CRLF but not a
/// dot added for transparency.
pub const MAX_LINE_LEN: usize = 1000;

/// The longest line content (without its CRLF) that fits in [`MAX_LINE_LEN`].
const MAX_CONTENT: usize = MAX_LINE_LEN - 2;

const CRLF: &[u8] = b"\r\n";
const LF: &[u8] = b"\n";
const DOT_CRLF: &[u8] = b".\r\n";

/// A message body the peer sent that cannot be accepted.
///
/// The decoders report it as soon as it is seen, then keep reading to the real end of the
/// body (the peer is still sending it, and the next command follows it); the reply goes out
/// only then, as the answer to the end of data or to the BDAT chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A CR or LF that is not part of a CRLF, refused under [`BareLineEndings::Reject`].
    /// RFC 5321 §2.3.8 allows CR and LF only as a pair; a lone one is what SMTP smuggling
    /// (CVE-2023-51764, CVE-2023-51765, CVE-2023-51766) is made of.
    #[error("bare CR or LF in message body")]
    BareLineEnding,
    /// A line over [`MAX_LINE_LEN`] octets, refused under [`LongLines::Reject`]
    /// (RFC 5321 §4.5.3.1.6).
    #[error("message body line longer than 1000 octets")]
    LineTooLong,
    /// More octets than the configured maximum (RFC 1870 §4).
    #[error("message size exceeds the limit")]
    SizeExceeded,
}

impl DataError {
    /// The reply to send at the end of data (or for the BDAT chunk): `(code, enhanced
    /// status, text)`.
    ///
    /// - [`BareLineEnding`](Self::BareLineEnding): `550 5.5.2`, the code Postfix sends for
    ///   the same refusal (RFC 3463 §3.6: X.5.2 "syntax error", the transport framing was
    ///   broken). 550 is among the end-of-data replies of RFC 5321 §4.3.2.
    /// - [`LineTooLong`](Self::LineTooLong): `554 5.6.0`. RFC 5321 §4.5.3.1.9 suggests
    ///   `500 Line too long`, but 500 is not an end-of-data reply (§4.3.2 lists 250, 552,
    ///   554, 451, 452, 450, 550), so the transaction fails with 554, and the detail is
    ///   X.6.0 because it is the message content that cannot be carried (RFC 3463 §3.7).
    /// - [`SizeExceeded`](Self::SizeExceeded): `552 5.3.4` (RFC 1870 §4: a message over
    ///   the fixed maximum is refused with 552; RFC 3463 §3.4 X.3.4 "message too big for
    ///   system").
    #[must_use]
    pub const fn reply(self) -> Reply {
        let (code, enhanced, text) = match self {
            DataError::BareLineEnding => (550, (5, 5, 2), "Bare CR or LF in message body"),
            DataError::LineTooLong => (554, (5, 6, 0), "Message has lines longer than 1000 octets"),
            DataError::SizeExceeded => (
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ),
        };
        let (class, subject, detail) = enhanced;
        Reply::constant(code, Some(EnhancedCode::of(class, subject, detail)), text)
    }
}

/// Whether a line longer than RFC 5321 §4.5.3.1.6 allows is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LongLines {
    /// Pass long lines through (the default of [`DataDecoder`]): RFC 5321 §4.5.3.1 asks
    /// servers to accept objects larger than the limits "wherever possible", and many
    /// clients send them.
    Accept,
    /// Refuse them: [`DataError::LineTooLong`] for [`DataDecoder`],
    /// [`EncodeError::LineTooLong`] for [`DotStuffer`] (its default).
    Reject,
}

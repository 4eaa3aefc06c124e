//! Server replies: reply codes (RFC 5321 §4.2), enhanced status codes (RFC 2034, RFC 3463),
//! single and multi-line replies.
//!
//! A [`Reply`] is built from validated parts, so it can never serialize to a line that
//! breaks the framing: text that holds CR, LF or NUL is refused by the constructors.

use std::borrow::Cow;
use std::fmt;

use bytes::BufMut;

use crate::error::BuildError;

/// A three-digit reply code in the range 200..=599 (RFC 5321 §4.2).
///
/// Codes of class 1 (positive preliminary) are not used by SMTP, so they are refused
/// together with everything else outside the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// 211 System status.
    pub const SYSTEM_STATUS: ReplyCode = ReplyCode(211);
    /// 214 Help message.
    pub const HELP: ReplyCode = ReplyCode(214);
    /// 220 Service ready.
    pub const SERVICE_READY: ReplyCode = ReplyCode(220);
    /// 221 Service closing transmission channel.
    pub const CLOSING: ReplyCode = ReplyCode(221);
    /// 235 Authentication succeeded (RFC 4954).
    pub const AUTH_OK: ReplyCode = ReplyCode(235);
    /// 250 Requested mail action okay, completed.
    pub const OK: ReplyCode = ReplyCode(250);
    /// 251 User not local; will forward.
    pub const USER_NOT_LOCAL: ReplyCode = ReplyCode(251);
    /// 252 Cannot VRFY user, but will accept message and attempt delivery.
    pub const CANNOT_VRFY: ReplyCode = ReplyCode(252);
    /// 334 Server challenge (RFC 4954).
    pub const AUTH_CHALLENGE: ReplyCode = ReplyCode(334);
    /// 354 Start mail input.
    pub const START_MAIL_INPUT: ReplyCode = ReplyCode(354);
    /// 421 Service not available, closing transmission channel.
    pub const SERVICE_NOT_AVAILABLE: ReplyCode = ReplyCode(421);
    /// 451 Requested action aborted: local error in processing.
    pub const LOCAL_ERROR: ReplyCode = ReplyCode(451);
    /// 452 Requested action not taken: insufficient system storage.
    pub const INSUFFICIENT_STORAGE: ReplyCode = ReplyCode(452);
    /// 454 TLS not available / temporary authentication failure.
    pub const TLS_NOT_AVAILABLE: ReplyCode = ReplyCode(454);
    /// 500 Syntax error, command unrecognized.
    pub const SYNTAX_ERROR: ReplyCode = ReplyCode(500);
    /// 501 Syntax error in parameters or arguments.
    pub const PARAM_SYNTAX_ERROR: ReplyCode = ReplyCode(501);
    /// 502 Command not implemented.
    pub const NOT_IMPLEMENTED: ReplyCode = ReplyCode(502);
    /// 503 Bad sequence of commands.
    pub const BAD_SEQUENCE: ReplyCode = ReplyCode(503);
    /// 504 Command parameter not implemented.
    pub const PARAM_NOT_IMPLEMENTED: ReplyCode = ReplyCode(504);
    /// 530 Authentication required (RFC 4954).
    pub const AUTH_REQUIRED: ReplyCode = ReplyCode(530);
    /// 535 Authentication credentials invalid (RFC 4954).
    pub const AUTH_INVALID: ReplyCode = ReplyCode(535);
    /// 550 Requested action not taken: mailbox unavailable.
    pub const MAILBOX_UNAVAILABLE: ReplyCode = ReplyCode(550);
    /// 552 Requested mail action aborted: exceeded storage allocation.
    pub const EXCEEDED_STORAGE: ReplyCode = ReplyCode(552);
    /// 553 Requested action not taken: mailbox name not allowed.
    pub const MAILBOX_NAME_NOT_ALLOWED: ReplyCode = ReplyCode(553);
    /// 554 Transaction failed.
    pub const TRANSACTION_FAILED: ReplyCode = ReplyCode(554);
    /// 555 MAIL FROM/RCPT TO parameters not recognized or not implemented.
    pub const PARAMS_NOT_RECOGNIZED: ReplyCode = ReplyCode(555);

    /// Checks that `code` is in 200..=599.
    pub const fn new(code: u16) -> Result<ReplyCode, BuildError> {
        if code >= 200 && code <= 599 {
            Ok(ReplyCode(code))
        } else {
            Err(BuildError::ReplyCode(code))
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The first digit: 2 (positive completion), 3 (positive intermediate),
    /// 4 (transient negative) or 5 (permanent negative).
    pub const fn class(self) -> u8 {
        (self.0 / 100) as u8
    }

    /// 2yz.
    pub const fn is_positive(self) -> bool {
        self.class() == 2
    }

    /// 3yz.
    pub const fn is_intermediate(self) -> bool {
        self.class() == 3
    }

    /// 4yz.
    pub const fn is_transient(self) -> bool {
        self.class() == 4
    }

    /// 5yz.
    pub const fn is_permanent(self) -> bool {
        self.class() == 5
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463), as carried
/// at the start of reply text when ENHANCEDSTATUSCODES is in use (RFC 2034).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnhancedCode {
    class: u8,
    subject: u16,
    detail: u16,
}

impl EnhancedCode {
    /// Builds a code; `class` must be 2, 4 or 5 and `subject` and `detail` at most 999
    /// (RFC 3463 §2: one to three digits each).
    pub const fn new(class: u8, subject: u16, detail: u16) -> Result<EnhancedCode, BuildError> {
        if (class == 2 || class == 4 || class == 5) && subject <= 999 && detail <= 999 {
            Ok(EnhancedCode {
                class,
                subject,
                detail,
            })
        } else {
            Err(BuildError::EnhancedCode)
        }
    }

    /// Builds a code known to be valid at compile time.
    ///
    /// # Panics
    /// When the parts are out of range; use it only with literals.
    pub const fn of(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        match EnhancedCode::new(class, subject, detail) {
            Ok(code) => code,
            Err(_) => panic!("invalid enhanced status code"),
        }
    }

    /// The class digit: 2 success, 4 persistent transient failure, 5 permanent failure.
    pub const fn class(self) -> u8 {
        self.class
    }

    /// The subject number.
    pub const fn subject(self) -> u16 {
        self.subject
    }

    /// The detail number.
    pub const fn detail(self) -> u16 {
        self.detail
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete server reply: one code, an optional enhanced status code, one or more
/// lines of text (possibly empty).
///
/// ```
/// use smtp_proto::{EnhancedCode, Reply};
/// let reply = Reply::new(250, Some(EnhancedCode::of(2, 1, 5)), "Recipient ok").unwrap();
/// assert_eq!(reply.to_bytes(), b"250 2.1.5 Recipient ok\r\n");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reply {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    lines: Vec<Cow<'static, str>>,
}

/// Text allowed on a reply line: RFC 5321 §4.2 `textstring = 1*(%d09 / %d32-126)`,
/// widened to UTF-8 (RFC 6531 §3.7.4.2) since hosts put names in replies. What can never
/// appear is CR, LF or NUL.
fn check_reply_text(text: &str) -> Result<(), BuildError> {
    if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        Err(BuildError::ControlCharacter)
    } else {
        Ok(())
    }
}

impl Reply {
    /// A single-line reply. `text` must not contain CR, LF or NUL.
    pub fn new(
        code: u16,
        enhanced: Option<EnhancedCode>,
        text: impl Into<Cow<'static, str>>,
    ) -> Result<Reply, BuildError> {
        Reply::with_lines(code, enhanced, [text])
    }

    /// A reply of several lines (sent as a multi-line reply when there is more than one).
    /// No line may contain CR, LF or NUL; an empty list gives one empty line.
    pub fn with_lines<I, S>(
        code: u16,
        enhanced: Option<EnhancedCode>,
        lines: I,
    ) -> Result<Reply, BuildError>
    where
        I: IntoIterator<Item = S>,
        S: Into<Cow<'static, str>>,
    {
        let code = ReplyCode::new(code)?;
        if let Some(e) = enhanced {
            if e.class() != code.class() {
                return Err(BuildError::EnhancedClassMismatch);
            }
        }
        let mut out = Vec::new();
        for line in lines {
            let line = line.into();
            check_reply_text(&line)?;
            out.push(line);
        }
        if out.is_empty() {
            out.push(Cow::Borrowed(""));
        }
        Ok(Reply {
            code,
            enhanced,
            lines: out,
        })
    }

    /// A fixed reply from literals, for the protocol's own answers.
    ///
    /// # Panics
    /// When the parts are invalid; use it only with literals that tests cover.
    pub fn fixed(code: u16, enhanced: Option<(u8, u16, u16)>, text: &'static str) -> Reply {
        let enhanced = enhanced.map(|(c, s, d)| EnhancedCode::of(c, s, d));
        match Reply::new(code, enhanced, text) {
            Ok(reply) => reply,
            Err(e) => panic!("invalid fixed reply {code} {text:?}: {e}"),
        }
    }

    /// Builds a reply from parts already validated by the parser.
    #[allow(dead_code)] // used by the decoder
    pub(crate) fn from_parts(
        code: ReplyCode,
        enhanced: Option<EnhancedCode>,
        lines: Vec<Cow<'static, str>>,
    ) -> Reply {
        debug_assert!(!lines.is_empty());
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// The reply code.
    pub fn code(&self) -> ReplyCode {
        self.code
    }

    /// The enhanced status code, if the reply carries one.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text lines, without code, separator or enhanced code. Never empty.
    pub fn lines(&self) -> &[Cow<'static, str>] {
        &self.lines
    }

    /// The text lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The same reply with another enhanced code (`None` removes it), for servers that
    /// do not advertise ENHANCEDSTATUSCODES.
    pub fn with_enhanced(mut self, enhanced: Option<EnhancedCode>) -> Reply {
        if enhanced.is_none_or(|e| e.class() == self.code.class()) {
            self.enhanced = enhanced;
        }
        self
    }

    /// Adds a line at the end (useful for EHLO replies).
    pub fn push_line(&mut self, line: impl Into<Cow<'static, str>>) -> Result<(), BuildError> {
        let line = line.into();
        check_reply_text(&line)?;
        self.lines.push(line);
        Ok(())
    }

    /// Serializes the reply: `code-text` for every line but the last, `code SP text`
    /// for the last, each line ending in CRLF (RFC 5321 §4.2.1). The enhanced code, when
    /// present, starts every line (RFC 2034 §4).
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        let code = self.code.0;
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            out.put_slice(&digits);
            if i != last {
                out.put_u8(b'-');
            } else if self.enhanced.is_some() || !line.is_empty() {
                // A code-only last line is `250\r\n` (RFC 5321 §4.2: `[ SP textstring ]`).
                out.put_u8(b' ');
            }
            if let Some(e) = self.enhanced {
                out.put_slice(e.to_string().as_bytes());
                if !line.is_empty() {
                    out.put_u8(b' ');
                }
            }
            out.put_slice(line.as_bytes());
            out.put_slice(b"\r\n");
        }
    }

    /// The serialized reply.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 16).sum());
        self.encode(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(String::from_utf8_lossy(&bytes).trim_end())
    }
}

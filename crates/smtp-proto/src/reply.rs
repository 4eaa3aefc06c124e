//! Server replies: reply codes (RFC 5321 §4.2), enhanced status codes (RFC 2034, RFC 3463),
//! single and multi-line replies, in both directions.
//!
//! A [`Reply`] is built from validated parts, so it can never serialize to a line that
//! breaks the framing: text that holds CR, LF or NUL is refused by the constructors.
//!
//! Decoding ([`Reply::decode`], [`ReplyDecoder`]) is incremental: give it the bytes received
//! so far and it answers "need more", a complete reply and how many bytes it used, or an
//! error. It is strict about framing (a bare LF, a bare CR or a NUL is an error, never a
//! line end) so that a client can never be fooled into seeing a reply the server did not
//! send, and it enforces [`ReplyLimits`] without waiting for a CRLF that may never come.

use std::borrow::Cow;
use std::fmt;

use bytes::BufMut;
use memchr::{memchr3, memrchr};

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

    /// Builds a code from literals, for a `const` (as [`Reply::constant`]): the checks of
    /// [`EnhancedCode::new`] then run at compile time, so a bad constant does not build.
    /// Parts that come from anywhere else go to [`EnhancedCode::new`].
    ///
    /// # Panics
    /// When the parts are out of range (at compile time when used in a `const`).
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

impl EnhancedCode {
    /// Writes `class.subject.detail` into `buf` (at most 11 octets) and returns the length,
    /// so that encoding needs no allocation.
    fn write_to(self, buf: &mut [u8; 11]) -> usize {
        let mut len = 0;
        let mut put = |b: u8| {
            buf[len] = b;
            len += 1;
        };
        put(b'0' + self.class);
        for n in [self.subject, self.detail] {
            put(b'.');
            if n >= 100 {
                put(b'0' + (n / 100) as u8);
            }
            if n >= 10 {
                put(b'0' + (n / 10 % 10) as u8);
            }
            put(b'0' + (n % 10) as u8);
        }
        len
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
/// Encoding and decoding are inverse: `decode(encode(r)) == r` for every reply whose
/// lines fit [`ReplyLimits`], with one exception that no decoder can resolve: a reply
/// *without* an enhanced code whose first line starts with text shaped like one of the
/// same class followed by a space or nothing (`Reply::new(250, None, "2.0.0 ok")`) sends
/// the same bytes as the reply *with* that code, and decodes as the latter. RFC 2034 §4
/// puts the code at the start of the text, so a server that wants such text verbatim must
/// not start it that way.
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
    lines: Lines,
}

/// The text lines of a reply, never none. Most replies have one, kept without a vector
/// of its own: one allocation less for every reply built or read. Compares, hashes and
/// prints as the slice of lines, however they are kept.
#[derive(Clone)]
enum Lines {
    One([Cow<'static, str>; 1]),
    Many(Vec<Cow<'static, str>>),
}

impl Lines {
    fn as_slice(&self) -> &[Cow<'static, str>] {
        match self {
            Lines::One(line) => line,
            Lines::Many(lines) => lines,
        }
    }

    fn push(&mut self, line: Cow<'static, str>) {
        match self {
            Lines::One([first]) => {
                let first = std::mem::take(first);
                *self = Lines::Many(vec![first, line]);
            }
            Lines::Many(lines) => lines.push(line),
        }
    }
}

impl From<Vec<Cow<'static, str>>> for Lines {
    fn from(mut lines: Vec<Cow<'static, str>>) -> Lines {
        match lines.pop() {
            Some(line) if lines.is_empty() => Lines::One([line]),
            Some(line) => {
                lines.push(line);
                Lines::Many(lines)
            }
            None => Lines::One([Cow::Borrowed("")]),
        }
    }
}

impl PartialEq for Lines {
    fn eq(&self, other: &Lines) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Lines {}

impl std::hash::Hash for Lines {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
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
        let mut out: Option<Lines> = None;
        for line in lines {
            let line = line.into();
            check_reply_text(&line)?;
            match &mut out {
                None => out = Some(Lines::One([line])),
                Some(lines) => lines.push(line),
            }
        }
        Ok(Reply {
            code,
            enhanced,
            lines: out.unwrap_or(Lines::One([Cow::Borrowed("")])),
        })
    }

    /// A reply known when the program is compiled, for a `const`: the checks of
    /// [`Reply::new`] run at compile time, so a bad constant does not build.
    ///
    /// ```
    /// use smtp_proto::{EnhancedCode, Reply};
    /// const BUSY: Reply = Reply::constant(451, Some(EnhancedCode::of(4, 3, 0)), "Try later");
    /// assert_eq!(BUSY.to_string(), "451 4.3.0 Try later");
    /// ```
    ///
    /// # Panics
    /// When the parts are invalid (at compile time when used in a `const`).
    pub const fn constant(code: u16, enhanced: Option<EnhancedCode>, text: &'static str) -> Reply {
        let code = match ReplyCode::new(code) {
            Ok(code) => code,
            Err(_) => panic!("reply code out of 200..=599"),
        };
        if let Some(e) = enhanced {
            if e.class() != code.class() {
                panic!("enhanced status code of another class");
            }
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if matches!(bytes[i], b'\r' | b'\n' | 0) {
                panic!("CR, LF or NUL in reply text");
            }
            i += 1;
        }
        Reply {
            code,
            enhanced,
            lines: Lines::One([Cow::Borrowed(text)]),
        }
    }

    /// A fixed reply from literals, for the protocol's own answers: [`Reply::constant`]
    /// with the enhanced code as a tuple. Parts that come from anywhere else go to
    /// [`Reply::new`] and [`EnhancedCode::new`], which return errors.
    ///
    /// # Panics
    /// When the parts are invalid (at compile time when used in a `const`).
    pub const fn fixed(code: u16, enhanced: Option<(u8, u16, u16)>, text: &'static str) -> Reply {
        let enhanced = match enhanced {
            Some((c, s, d)) => Some(EnhancedCode::of(c, s, d)),
            None => None,
        };
        Reply::constant(code, enhanced, text)
    }

    /// Builds a reply from parts already validated by the parser.
    pub(crate) fn from_parts(
        code: ReplyCode,
        enhanced: Option<EnhancedCode>,
        lines: Vec<Cow<'static, str>>,
    ) -> Reply {
        debug_assert!(!lines.is_empty());
        Reply {
            code,
            enhanced,
            lines: lines.into(),
        }
    }

    /// A one-line reply from parts already validated by the parser.
    fn from_line(
        code: ReplyCode,
        enhanced: Option<EnhancedCode>,
        line: Cow<'static, str>,
    ) -> Reply {
        Reply {
            code,
            enhanced,
            lines: Lines::One([line]),
        }
    }

    /// A reply whose long `text` is split at spaces into as many lines as needed so that
    /// no encoded line, code, separator, enhanced code and CRLF included, is longer than
    /// `width` octets. RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets and says longer
    /// information goes into a multi-line reply; `width` above 512 is lowered to 512, and a
    /// width too small for one character per line still puts one character on each line.
    ///
    /// A word longer than a line is cut (at a character boundary). A `\n` in `text` starts
    /// a new line, so `Reply::wrap(r.code().get(), r.enhanced(), &r.text(), 512)` rebuilds
    /// a reply `r` whose lines are short enough. CR and NUL are refused.
    ///
    /// ```
    /// use smtp_proto::{EnhancedCode, Reply};
    /// let text = "word ".repeat(200);
    /// let reply = Reply::wrap(550, Some(EnhancedCode::of(5, 7, 1)), text.trim_end(), 80).unwrap();
    /// assert!(reply.lines().len() > 1);
    /// assert!(reply.to_bytes().split(|&b| b == b'\n').all(|line| line.len() < 80));
    /// ```
    pub fn wrap(
        code: u16,
        enhanced: Option<EnhancedCode>,
        text: &str,
        width: usize,
    ) -> Result<Reply, BuildError> {
        if text.bytes().any(|b| b == b'\r' || b == 0) {
            return Err(BuildError::ControlCharacter);
        }
        // Validates the code and the enhanced code's class.
        let mut reply = Reply::new(code, enhanced, "")?;
        // Fixed part of each line: code, separator, CRLF, and "x.y.z " when present.
        let overhead = 3 + 1 + 2 + enhanced.map_or(0, |e| e.write_to(&mut [0; 11]) + 1);
        let room = width.min(MAX_REPLY_LINE).saturating_sub(overhead).max(1);
        let mut lines: Vec<Cow<'static, str>> = Vec::new();
        for paragraph in text.split('\n') {
            let mut rest = paragraph;
            while rest.len() > room {
                // A space at index `room` is a fine break: it is dropped, not sent.
                let (line, next) = match memrchr(b' ', &rest.as_bytes()[..=room]) {
                    Some(space) if space > 0 => (&rest[..space], &rest[space + 1..]),
                    _ => {
                        let mut cut = room;
                        while !rest.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        if cut == 0 {
                            // One character wider than the room: send it alone.
                            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
                        }
                        rest.split_at(cut)
                    }
                };
                lines.push(Cow::Owned(line.to_owned()));
                rest = next;
            }
            lines.push(Cow::Owned(rest.to_owned()));
        }
        reply.lines = lines.into();
        Ok(reply)
    }

    /// Decodes one reply from the start of `buf`, the bytes received so far.
    ///
    /// Answers `Ok(None)` when `buf` holds no complete reply yet, or the reply and how many
    /// bytes of `buf` it used (bytes after it, such as the next pipelined reply, are left
    /// alone). This call starts from scratch each time; when feeding a growing buffer,
    /// [`ReplyDecoder`] remembers how far it got so that the work stays linear.
    ///
    /// ```
    /// use smtp_proto::reply::{Reply, ReplyLimits};
    /// let limits = ReplyLimits::default();
    /// assert_eq!(Reply::decode(b"250-mx.example.org\r\n250 SIZ", &limits), Ok(None));
    /// let (reply, used) = Reply::decode(b"250 2.1.5 Ok\r\n354 ", &limits).unwrap().unwrap();
    /// assert_eq!((reply.code().get(), reply.text().as_str(), used), (250, "Ok", 14));
    /// assert_eq!(reply.enhanced().map(|e| e.to_string()), Some("2.1.5".into()));
    /// ```
    pub fn decode(buf: &[u8], limits: &ReplyLimits) -> Result<Option<(Reply, usize)>, ReplyError> {
        ReplyDecoder::new(*limits).decode(buf)
    }

    /// Decodes `input` that must hold exactly one complete reply, with the default limits:
    /// for transcripts, tests and fuzzing, where the whole reply is at hand.
    ///
    /// ```
    /// use smtp_proto::Reply;
    /// let reply = Reply::parse(b"250-first\r\n250 last\r\n").unwrap();
    /// assert_eq!(reply.lines(), ["first", "last"]);
    /// ```
    pub fn parse(input: &[u8]) -> Result<Reply, ReplyError> {
        match Reply::decode(input, &ReplyLimits::default())? {
            None => Err(ReplyError::Incomplete),
            Some((reply, used)) if used == input.len() => Ok(reply),
            Some(_) => Err(ReplyError::TrailingBytes),
        }
    }

    /// The reply code.
    pub const fn code(&self) -> ReplyCode {
        self.code
    }

    /// The enhanced status code, if the reply carries one.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text lines, without code, separator or enhanced code. Never empty.
    pub fn lines(&self) -> &[Cow<'static, str>] {
        self.lines.as_slice()
    }

    /// The text lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines().join("\n")
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
        // Formatted once, not once per line: EHLO replies repeat it on every line.
        let mut enhanced_buf = [0u8; 11];
        let enhanced_len = self.enhanced.map_or(0, |e| e.write_to(&mut enhanced_buf));
        let last = self.lines().len() - 1;
        for (i, line) in self.lines().iter().enumerate() {
            out.put_slice(&digits);
            if i != last {
                out.put_u8(b'-');
            } else if self.enhanced.is_some() || !line.is_empty() {
                // A code-only last line is `250\r\n` (RFC 5321 §4.2: `[ SP textstring ]`).
                out.put_u8(b' ');
            }
            if self.enhanced.is_some() {
                out.put_slice(&enhanced_buf[..enhanced_len]);
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
        let mut out = Vec::with_capacity(self.lines().iter().map(|l| l.len() + 16).sum());
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

/// The longest reply line, reply code and CRLF included: "The maximum total length of a
/// reply line including the reply code and the `<CRLF>` is 512 octets" (RFC 5321 §4.5.3.1.5).
pub const MAX_REPLY_LINE: usize = 512;

/// The default cap on a whole multi-line reply. RFC 5321 sets no limit on the number of
/// lines (§4.5.3.1.5: "More information may be conveyed through multiple-line replies"),
/// so a client must pick one or be fed `250-` lines forever; 64 KiB is far above any EHLO
/// or HELP reply seen in practice.
pub const DEFAULT_MAX_REPLY: usize = 64 * 1024;

/// How much a reply may hold before decoding gives up; both counts include every CRLF.
///
/// The decoder checks them as bytes arrive, so an endless line or an endless run of
/// continuation lines is refused after at most this many bytes, not when (if ever) the
/// next CRLF shows up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplyLimits {
    /// The longest line, reply code and CRLF included ([`MAX_REPLY_LINE`] by default).
    pub max_line: usize,
    /// The longest reply, all lines and CRLFs included ([`DEFAULT_MAX_REPLY`] by default).
    pub max_total: usize,
}

impl ReplyLimits {
    /// The RFC 5321 line limit and a 64 KiB reply limit.
    pub const DEFAULT: ReplyLimits = ReplyLimits {
        max_line: MAX_REPLY_LINE,
        max_total: DEFAULT_MAX_REPLY,
    };
}

impl Default for ReplyLimits {
    fn default() -> ReplyLimits {
        ReplyLimits::DEFAULT
    }
}

/// Why bytes from the server are not a reply. Every one of them is fatal for the
/// connection: after it the client can no longer tell where the next reply starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line longer than [`ReplyLimits::max_line`] (RFC 5321 §4.5.3.1.5).
    #[error("reply line too long")]
    LineTooLong,
    /// A reply longer than [`ReplyLimits::max_total`].
    #[error("reply too long")]
    ReplyTooLong,
    /// A line shorter than a reply code (RFC 5321 §4.2).
    #[error("reply line shorter than a reply code")]
    TooShort,
    /// The first three octets are not a reply code in 200..=599 (RFC 5321 §4.2).
    #[error("invalid reply code")]
    BadCode,
    /// A line of a multi-line reply with another code than the first line: RFC 5321
    /// §4.2.1 requires the same code on every line.
    #[error("reply line code {found} differs from {expected}")]
    CodeMismatch {
        /// The code of the first line.
        expected: ReplyCode,
        /// The code of the offending line.
        found: ReplyCode,
    },
    /// The code is followed by something other than SP, `-` or CRLF (RFC 5321 §4.2).
    #[error("reply line syntax error")]
    Syntax,
    /// A LF not preceded by CR (RFC 5321 §2.3.8: lines end in CRLF only).
    #[error("bare LF in reply")]
    BareLf,
    /// A CR not followed by LF (RFC 5321 §2.3.8).
    #[error("bare CR in reply")]
    BareCr,
    /// A NUL octet, which no reply text may contain (RFC 5321 §4.2 `textstring`).
    #[error("NUL in reply")]
    Nul,
    /// [`Reply::parse`] was given bytes that end before the reply does.
    #[error("incomplete reply")]
    Incomplete,
    /// [`Reply::parse`] was given bytes after the end of the reply.
    #[error("trailing bytes after reply")]
    TrailingBytes,
}

/// An incremental reply decoder for a client reading from a socket.
///
/// Call [`ReplyDecoder::decode`] with everything received and not yet consumed, each time
/// more arrives. It remembers how far it already looked and the lines it already decoded,
/// so feeding a reply in `n` pieces costs O(length), not O(length × n), and its memory is
/// bounded by [`ReplyLimits`]. When it returns a reply with `used` bytes, drop those bytes
/// from the front of the buffer before the next call (pipelined replies follow each other
/// in one read). If the buffer handed in is shorter than what the decoder has already
/// seen, it starts that reply over.
///
/// Errors are sticky: once the framing is lost there is nothing left to decode, and every
/// later call returns the same error until [`ReplyDecoder::reset`].
///
/// ```
/// use smtp_proto::reply::{ReplyDecoder, ReplyLimits};
/// let mut decoder = ReplyDecoder::new(ReplyLimits::default());
/// let mut buf = Vec::new();
/// buf.extend_from_slice(b"250-mx.example.org\r\n250-PIPEL");
/// assert_eq!(decoder.decode(&buf), Ok(None));
/// buf.extend_from_slice(b"INING\r\n250 8BITMIME\r\n");
/// let (reply, used) = decoder.decode(&buf).unwrap().unwrap();
/// assert_eq!(reply.lines(), ["mx.example.org", "PIPELINING", "8BITMIME"]);
/// buf.drain(..used);
/// assert!(buf.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ReplyDecoder {
    reader: LineReader,
    lines: Vec<Cow<'static, str>>,
}

impl ReplyDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: ReplyLimits) -> ReplyDecoder {
        ReplyDecoder {
            reader: LineReader::new(limits),
            lines: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> ReplyLimits {
        self.reader.limits
    }

    /// Forgets the reply in progress and any error, for a fresh start (a new connection,
    /// or after STARTTLS, when nothing received in plaintext may be kept, RFC 3207 §4.2).
    pub fn reset(&mut self) {
        self.reader = LineReader::new(self.reader.limits);
        self.lines.clear();
    }

    /// Decodes the reply at the start of `buf`: `Ok(None)` until it is complete, then the
    /// reply and the number of bytes it took. See the type's documentation for the
    /// contract on `buf`.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        while let Some(line) = self.reader.next_line(buf)? {
            if line.index == 0 {
                // Lines of a reply that was started over are not part of this one.
                self.lines.clear();
                if line.last {
                    // Most replies are one line, kept without a vector.
                    let reply = Reply::from_line(line.code, line.enhanced, reply_text(line.text));
                    return Ok(Some((reply, line.end)));
                }
            }
            self.lines.push(reply_text(line.text));
            if line.last {
                let lines = std::mem::take(&mut self.lines);
                return Ok(Some((
                    Reply::from_parts(line.code, line.enhanced, lines),
                    line.end,
                )));
            }
        }
        Ok(None)
    }
}

/// One line found by [`LineReader`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplyLine<'b> {
    /// The reply code, the same on every line.
    pub(crate) code: ReplyCode,
    /// The enhanced code of the reply (the first line's), if any.
    pub(crate) enhanced: Option<EnhancedCode>,
    /// The text, without code, separator, CRLF, or the reply's enhanced code.
    pub(crate) text: &'b [u8],
    /// 0 for the first line of a reply.
    pub(crate) index: usize,
    /// True for the last line of a reply.
    pub(crate) last: bool,
    /// Offset just after this line's CRLF, from the start of the reply.
    pub(crate) end: usize,
}

/// The framing and line grammar of replies, without keeping any text: hands out one
/// checked line at a time, borrowed from the input. [`ReplyDecoder`] collects them into a
/// [`Reply`]; the EHLO parser reads capabilities straight from them.
#[derive(Clone, Debug, Default)]
pub(crate) struct LineReader {
    limits: ReplyLimits,
    /// Offset of the current line's first octet, from the start of the reply; also the
    /// size of the lines already read.
    line_start: usize,
    /// Offset up to which the current line was searched for CR, LF and NUL.
    scanned: usize,
    /// Lines of the current reply already read.
    index: usize,
    code: Option<ReplyCode>,
    enhanced: Option<EnhancedCode>,
    error: Option<ReplyError>,
}

impl LineReader {
    pub(crate) fn new(limits: ReplyLimits) -> LineReader {
        LineReader {
            limits,
            ..LineReader::default()
        }
    }

    /// The next complete line of the reply at the start of `buf`, or `Ok(None)` when it
    /// has not fully arrived. After the last line the reader is ready for the next reply,
    /// which the caller must hand in with the previous one removed.
    pub(crate) fn next_line<'b>(
        &mut self,
        buf: &'b [u8],
    ) -> Result<Option<ReplyLine<'b>>, ReplyError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if buf.len() < self.scanned {
            // Not the bytes seen before: what was read cannot be trusted.
            self.restart();
        }
        // The current line may use octets line_start..line_start + room, its LF included.
        let room = self
            .limits
            .max_line
            .min(self.limits.max_total.saturating_sub(self.line_start));
        let limit = self.line_start.saturating_add(room);
        let end = buf.len().min(limit);
        let from = self.scanned.min(end);
        let Some(hit) = memchr3(b'\r', b'\n', 0, &buf[from..end]).map(|i| from + i) else {
            if buf.len() > self.line_start && end == limit {
                return Err(self.fail(self.limit_error()));
            }
            self.scanned = end;
            return Ok(None);
        };
        match buf[hit] {
            0 => return Err(self.fail(ReplyError::Nul)),
            b'\n' => return Err(self.fail(ReplyError::BareLf)),
            _ if hit + 1 == end => {
                // A CR with no room left for its LF, or whose LF has not arrived yet.
                if end == limit {
                    return Err(self.fail(self.limit_error()));
                }
                self.scanned = hit;
                return Ok(None);
            }
            _ if buf[hit + 1] != b'\n' => return Err(self.fail(ReplyError::BareCr)),
            _ => {}
        }
        let line = match self.line(&buf[self.line_start..hit], hit + 2) {
            Ok(line) => line,
            Err(error) => return Err(self.fail(error)),
        };
        if line.last {
            self.restart();
        } else {
            self.line_start = line.end;
            self.scanned = line.end;
            self.index += 1;
        }
        Ok(Some(line))
    }

    /// Which limit a line that does not fit breaks: the one that bites first as the bytes
    /// arrive, so that the answer does not depend on how the input was split.
    fn limit_error(&self) -> ReplyError {
        if self.limits.max_line <= self.limits.max_total.saturating_sub(self.line_start) {
            ReplyError::LineTooLong
        } else {
            ReplyError::ReplyTooLong
        }
    }

    fn fail(&mut self, error: ReplyError) -> ReplyError {
        self.error = Some(error);
        error
    }

    fn restart(&mut self) {
        *self = LineReader::new(self.limits);
    }

    /// Checks one line (CRLF removed, known free of CR, LF and NUL) against the ones
    /// before it; `end` is where it ends, CRLF included.
    fn line<'b>(&mut self, line: &'b [u8], end: usize) -> Result<ReplyLine<'b>, ReplyError> {
        let (code, last, text) = reply_line(line)?;
        let text = match (self.code, self.enhanced) {
            (None, _) => {
                self.code = Some(code);
                match enhanced_prefix(text, code.class()) {
                    Some((enhanced, rest)) => {
                        self.enhanced = Some(enhanced);
                        rest
                    }
                    None => text,
                }
            }
            (Some(expected), _) if expected != code => {
                return Err(ReplyError::CodeMismatch {
                    expected,
                    found: code,
                });
            }
            // RFC 2034 §4 puts the code on every line; the reply keeps the first line's,
            // so only that code is stripped from the others. Any other code is text, kept
            // so that nothing the server said is lost.
            (Some(_), Some(first)) => match enhanced_prefix(text, code.class()) {
                Some((enhanced, rest)) if enhanced == first => rest,
                _ => text,
            },
            (Some(_), None) => text,
        };
        Ok(ReplyLine {
            code,
            enhanced: self.enhanced,
            text,
            index: self.index,
            last,
            end,
        })
    }
}

/// Reply text as a string. Not valid UTF-8 is converted lossily (U+FFFD), never refused:
/// RFC 5321 §4.2 says clients act on the code alone, real servers do send Latin-1 in
/// greetings, and SMTPUTF8 servers send UTF-8 (RFC 6531 §3.7.4.2); refusing a reply for
/// its human-readable text would break mail for nothing.
///
/// The texts that most replies carry are not copied: a client reads `Ok` after nearly every
/// MAIL, RCPT and message from Postfix and from this crate's server, so those few texts come
/// from a table, borrowed, with no allocation and no UTF-8 check. Anything else is copied.
fn reply_text(text: &[u8]) -> Cow<'static, str> {
    if let Some(text) = known_text(text) {
        return Cow::Borrowed(text);
    }
    match std::str::from_utf8(text) {
        Ok(text) => Cow::Owned(text.to_owned()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(text).into_owned()),
    }
}

/// The reply texts kept as `'static` strings (their enhanced codes already removed): what
/// Postfix and this crate's server say to a transaction that goes well (`server::replies`).
fn known_text(text: &[u8]) -> Option<&'static str> {
    Some(match text {
        b"" => "",
        b"Ok" => "Ok",
        b"Bye" => "Bye",
        b"Ok: queued" => "Ok: queued",
        b"End data with <CR><LF>.<CR><LF>" => "End data with <CR><LF>.<CR><LF>",
        b"Ready to start TLS" => "Ready to start TLS",
        b"Authentication successful" => "Authentication successful",
        _ => return None,
    })
}

/// ```text
/// Reply-code = %x32-35 %x30-35 %x30-39
/// ```
/// (RFC 5321 §4.2). The second digit is not checked beyond being a digit: RFC 5321 §4.2.1
/// tells clients to act on the first digit, and 200..=599 is what [`ReplyCode`] holds.
fn reply_code(digits: [u8; 3]) -> Option<ReplyCode> {
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let [a, b, c] = digits.map(|d| u16::from(d - b'0'));
    ReplyCode::new(a * 100 + b * 10 + c).ok()
}

/// One line of
/// ```text
/// Reply-line = *( Reply-code "-" [ textstring ] CRLF )
///              Reply-code [ SP textstring ] CRLF
/// ```
/// (RFC 5321 §4.2), CRLF already removed: the code, whether it is the last line, the text.
/// `250 ` (SP and no text) is taken as a last line with empty text. Written out by hand
/// rather than with nom: every line of every reply goes through it.
fn reply_line(line: &[u8]) -> Result<(ReplyCode, bool, &[u8]), ReplyError> {
    let [a, b, c, rest @ ..] = line else {
        return Err(ReplyError::TooShort);
    };
    let code = reply_code([*a, *b, *c]).ok_or(ReplyError::BadCode)?;
    match rest {
        [] => Ok((code, true, rest)),
        [b' ', text @ ..] => Ok((code, true, text)),
        [b'-', text @ ..] => Ok((code, false, text)),
        _ => Err(ReplyError::Syntax),
    }
}

/// ```text
/// status-code = class "." subject "." detail
/// class       = "2" / "4" / "5"
/// subject     = 1*3digit
/// detail      = 1*3digit
/// ```
/// (RFC 3463 §2), at the start of `input`: the code and what follows it. Written out by
/// hand rather than with nom, like [`reply_line`]: every line of most replies starts with
/// one.
fn status_code(input: &[u8]) -> Option<(EnhancedCode, &[u8])> {
    /// One to three digits; a fourth is left for the caller to trip over.
    fn number(input: &[u8]) -> Option<(u16, &[u8])> {
        let digit = |i: usize| {
            input
                .get(i)
                .filter(|b| b.is_ascii_digit())
                .map(|b| u16::from(b - b'0'))
        };
        let a = digit(0)?;
        let Some(b) = digit(1) else {
            return Some((a, &input[1..]));
        };
        let Some(c) = digit(2) else {
            return Some((a * 10 + b, &input[2..]));
        };
        Some((a * 100 + b * 10 + c, &input[3..]))
    }
    let [class @ (b'2' | b'4' | b'5'), b'.', rest @ ..] = input else {
        return None;
    };
    let (subject, rest) = number(rest)?;
    let [b'.', rest @ ..] = rest else {
        return None;
    };
    let (detail, rest) = number(rest)?;
    let code = EnhancedCode {
        class: class - b'0',
        subject,
        detail,
    };
    Some((code, rest))
}

/// The enhanced status code at the start of reply text, and the text after it (RFC 2034
/// §4: `status-code SP text`; exactly one SP is removed, so text that itself starts with
/// spaces keeps them). Only a code followed by SP or the end of the line, and whose class
/// is the reply code's class, counts: anything else is plain text. RFC 3463 §2 gives the
/// class the meaning of the reply code's first digit (2 success, 4 transient, 5
/// permanent), so a code of another class cannot be this reply's.
#[inline]
fn enhanced_prefix(text: &[u8], class: u8) -> Option<(EnhancedCode, &[u8])> {
    // Cheap test first: most lines of most replies are not enhanced codes.
    if text.first() != Some(&(b'0' + class)) {
        return None;
    }
    // The usual shape, one digit each for subject and detail (`2.1.5 Ok`), without the
    // general parser's three-digit loops.
    if let [
        b'2' | b'4' | b'5',
        b'.',
        subject @ b'0'..=b'9',
        b'.',
        detail @ b'0'..=b'9',
        b' ',
        rest @ ..,
    ] = text
    {
        let code = EnhancedCode {
            class,
            subject: u16::from(subject - b'0'),
            detail: u16::from(detail - b'0'),
        };
        return Some((code, rest));
    }
    match status_code(text)? {
        (code, []) => Some((code, &[])),
        (code, [b' ', rest @ ..]) => Some((code, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `enhanced_prefix` as it was written with nom: the model for the hand-written one.
    fn enhanced_prefix_nom(text: &[u8], class: u8) -> Option<(EnhancedCode, &[u8])> {
        use nom::branch::alt;
        use nom::bytes::complete::take_while_m_n;
        use nom::character::complete::{char, one_of};
        use nom::combinator::eof;
        use nom::sequence::terminated;
        use nom::{IResult, Parser};

        fn status_code(input: &[u8]) -> IResult<&[u8], EnhancedCode> {
            fn number(input: &[u8]) -> IResult<&[u8], u16> {
                take_while_m_n(1, 3, |b: u8| b.is_ascii_digit())
                    .map(|digits: &[u8]| {
                        digits.iter().fold(0, |n, &d| n * 10 + u16::from(d - b'0'))
                    })
                    .parse(input)
            }
            (one_of("245"), char('.'), number, char('.'), number)
                .map(|(class, _, subject, _, detail)| EnhancedCode {
                    class: class as u8 - b'0',
                    subject,
                    detail,
                })
                .parse(input)
        }
        if text.first() != Some(&(b'0' + class)) {
            return None;
        }
        let (rest, code) = terminated(status_code, alt((char(' ').map(|_| ()), eof.map(|_| ()))))
            .parse(text)
            .ok()?;
        Some((code, rest))
    }

    const LIMITS: ReplyLimits = ReplyLimits::DEFAULT;

    fn decode(input: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        Reply::decode(input, &LIMITS)
    }

    /// Feeds `input` to one decoder in pieces cut at `cuts` (each taken modulo the length),
    /// draining replies as they come: every reply with its size, then the error if any.
    fn feed(
        input: &[u8],
        cuts: &[usize],
        limits: ReplyLimits,
    ) -> (Vec<(Reply, usize)>, Option<ReplyError>) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.push(input.len());
        points.sort_unstable();
        let mut decoder = ReplyDecoder::new(limits);
        let mut buf = Vec::new();
        let mut replies = Vec::new();
        let mut fed = 0;
        for point in points {
            buf.extend_from_slice(&input[fed..point]);
            fed = point;
            loop {
                match decoder.decode(&buf) {
                    Ok(Some((reply, used))) => {
                        buf.drain(..used);
                        replies.push((reply, used));
                    }
                    Ok(None) => break,
                    Err(e) => return (replies, Some(e)),
                }
            }
        }
        (replies, None)
    }

    fn whole(input: &[u8], limits: ReplyLimits) -> (Vec<(Reply, usize)>, Option<ReplyError>) {
        feed(input, &[], limits)
    }

    fn byte_by_byte(
        input: &[u8],
        limits: ReplyLimits,
    ) -> (Vec<(Reply, usize)>, Option<ReplyError>) {
        feed(input, &(0..input.len()).collect::<Vec<_>>(), limits)
    }

    /// `ok!(input => code, enhanced, [lines], used)`: decodes to that reply, using `used`
    /// bytes, fed whole and byte by byte.
    macro_rules! ok {
        ($input:expr => $code:expr, $enhanced:expr, [$($line:expr),*], $used:expr) => {
            check_ok($input, $code, $enhanced, &[$($line),*], $used)
        };
    }

    fn check_ok(input: &[u8], code: u16, enhanced: Option<&str>, lines: &[&str], used: usize) {
        let shown = String::from_utf8_lossy(input);
        let (reply, n) = decode(input)
            .unwrap_or_else(|e| panic!("{shown:?}: {e}"))
            .unwrap_or_else(|| panic!("{shown:?}: incomplete"));
        assert_eq!(reply.code().get(), code, "{shown:?}");
        assert_eq!(
            reply.enhanced().map(|e| e.to_string()).as_deref(),
            enhanced,
            "{shown:?}"
        );
        assert_eq!(reply.lines(), lines, "{shown:?}");
        assert_eq!(n, used, "{shown:?}");
        assert_eq!(
            byte_by_byte(&input[..n], LIMITS),
            (vec![(reply, n)], None),
            "{shown:?}"
        );
    }

    #[test]
    #[rustfmt::skip]
    fn decodes_valid_replies() {
        ok!(b"250 ok\r\n" => 250, None, ["ok"], 8); // RFC 5321 §4.2 single line
        ok!(b"220 mx.example.org ESMTP\r\n" => 220, None, ["mx.example.org ESMTP"], 26); // §4.2 greeting
        ok!(b"250-a\r\n250-b\r\n250 c\r\n" => 250, None, ["a", "b", "c"], 21); // §4.2.1 multi-line
        ok!(b"250-234 Text beginning with numbers\r\n250 x\r\n" => 250, None, ["234 Text beginning with numbers", "x"], 44); // §4.2.1 example
        ok!(b"250\r\n" => 250, None, [""], 5); // §4.2 `[ SP textstring ]` omitted
        ok!(b"250 \r\n" => 250, None, [""], 6); // §4.2 SP and no text: empty text
        ok!(b"250-\r\n250 ok\r\n" => 250, None, ["", "ok"], 14); // §4.2 `"-" [ textstring ]`
        ok!(b"250-\r\n250\r\n" => 250, None, ["", ""], 11); // §4.2 code-only lines throughout
        ok!(b"354 End data with <CR><LF>.<CR><LF>\r\n" => 354, None, ["End data with <CR><LF>.<CR><LF>"], 37); // §4.2 3yz
        ok!(b"250 2.1.5 Ok\r\n" => 250, Some("2.1.5"), ["Ok"], 14); // RFC 2034 §4 code stripped
        ok!(b"550 5.7.1 Relay denied\r\n" => 550, Some("5.7.1"), ["Relay denied"], 24); // RFC 3463 §3.8
        ok!(b"250 2.0.0\r\n" => 250, Some("2.0.0"), [""], 11); // RFC 2034 §4 code and no text
        ok!(b"250 2.0.0  two spaces\r\n" => 250, Some("2.0.0"), [" two spaces"], 23); // RFC 2034 §4 one SP stripped
        ok!(b"452 4.123.999 x\r\n" => 452, Some("4.123.999"), ["x"], 17); // RFC 3463 §2 1*3digit
        ok!(b"250 2.01.005 x\r\n" => 250, Some("2.1.5"), ["x"], 16); // RFC 3463 §2 leading zeros are digits
        ok!(b"250-2.1.0 a\r\n250 2.1.0 b\r\n" => 250, Some("2.1.0"), ["a", "b"], 26); // RFC 2034 §4 on every line
        ok!(b"250-2.1.0 a\r\n250 b\r\n" => 250, Some("2.1.0"), ["a", "b"], 20); // RFC 2034 §4 later line without it
        ok!(b"250-2.1.0 a\r\n250 2.1.5 b\r\n" => 250, Some("2.1.0"), ["a", "2.1.5 b"], 26); // another code is text
        ok!(b"250-a\r\n250 2.1.5 b\r\n" => 250, None, ["a", "2.1.5 b"], 20); // the first line decides
        ok!(b"250 5.1.1 odd\r\n" => 250, None, ["5.1.1 odd"], 15); // RFC 3463 §2 class mismatch: text
        ok!(b"550 2.0.0 odd\r\n" => 550, None, ["2.0.0 odd"], 15); // RFC 3463 §2 class mismatch: text
        ok!(b"354 3.0.0 x\r\n" => 354, None, ["3.0.0 x"], 13); // RFC 3463 §2 no class 3
        ok!(b"250 2.0.0x\r\n" => 250, None, ["2.0.0x"], 12); // RFC 2034 §4 SP must follow: text
        ok!(b"250 2.1234.5 x\r\n" => 250, None, ["2.1234.5 x"], 16); // RFC 3463 §2 at most 3 digits
        ok!(b"250 2.0. x\r\n" => 250, None, ["2.0. x"], 12); // RFC 3463 §2 detail missing: text
        ok!(b"250 ok\r\n250 next\r\n" => 250, None, ["ok"], 8); // RFC 2920 §3.1 next reply left alone
        ok!(b"250 ok\r\nXYZ" => 250, None, ["ok"], 8); // trailing bytes left alone
        ok!(b"250 tab\there\r\n" => 250, None, ["tab\there"], 14); // §4.2 textstring has HT
        ok!(b"220 caf\xc3\xa9\r\n" => 220, None, ["caf\u{e9}"], 11); // RFC 6531 §3.7.4.2 UTF-8
        ok!(b"220 caf\xe9 ok\r\n" => 220, None, ["caf\u{fffd} ok"], 13); // Latin-1: lossy, never refused
        ok!(b"599 x\r\n" => 599, None, ["x"], 7); // §4.2 highest code
        ok!(b"200 x\r\n" => 200, None, ["x"], 7); // §4.2 lowest code
    }

    /// `err!(input => error)`: refused with that error, fed whole and byte by byte.
    macro_rules! err {
        ($input:expr => $error:expr) => {
            check_err($input, $error)
        };
    }

    fn check_err(input: &[u8], error: ReplyError) {
        let shown = String::from_utf8_lossy(input);
        assert_eq!(decode(input).map(|_| ()), Err(error), "{shown:?}");
        assert_eq!(
            byte_by_byte(input, LIMITS).1,
            Some(error),
            "{shown:?} byte by byte"
        );
    }

    #[test]
    #[rustfmt::skip]
    fn refuses_invalid_replies() {
        use ReplyError::*;
        let mismatch = CodeMismatch { expected: ReplyCode::OK, found: ReplyCode::new(251).unwrap() };
        err!(b"199 x\r\n" => BadCode); // RFC 5321 §4.2 no 1yz in SMTP
        err!(b"600 x\r\n" => BadCode); // §4.2 Reply-code starts with 2-5
        err!(b"abc x\r\n" => BadCode); // §4.2 digits only
        err!(b"25a x\r\n" => BadCode); // §4.2 digits only
        err!(b"-50 x\r\n" => BadCode); // §4.2 no sign
        err!(b"25\r\n" => TooShort); // §4.2 a line starts with three digits
        err!(b"\r\n" => TooShort); // §4.2 empty line
        err!(b"250x\r\n" => Syntax); // §4.2 SP, "-" or CRLF after the code
        err!(b"2500 x\r\n" => Syntax); // §4.2 four digits
        err!(b"250\tx\r\n" => Syntax); // §4.2 HT is not SP
        err!(b"250-a\r\n251 b\r\n" => mismatch); // §4.2.1 same code on every line
        err!(b"250 a\nb\r\n" => BareLf); // §2.3.8 lines end in CRLF
        err!(b"250 ok\n" => BareLf); // §2.3.8
        err!(b"\n" => BareLf); // §2.3.8
        err!(b"250-a\r\n250 b\n" => BareLf); // §2.3.8 on a later line
        err!(b"250 a\rb\r\n" => BareCr); // §2.3.8
        err!(b"250 a\r\r\n" => BareCr); // §2.3.8
        err!(b"250 a\0b\r\n" => Nul); // §4.2 textstring
        err!(b"2\x0050 a\r\n" => Nul); // §4.2 NUL anywhere
    }

    #[test]
    fn every_prefix_needs_more() {
        let replies: &[&[u8]] = &[
            b"250 ok\r\n",
            b"250\r\n",
            b"250-mx.example.org\r\n250-PIPELINING\r\n250 2.0.0 8BITMIME\r\n",
            b"250-\r\n250 ok\r\n",
        ];
        for reply in replies {
            for end in 0..reply.len() {
                assert_eq!(decode(&reply[..end]), Ok(None), "{:?}", &reply[..end]);
            }
        }
    }

    #[test]
    fn pieces_equal_whole() {
        let input: &[u8] = b"220 mx ESMTP\r\n250-mx\r\n250-2.0.0 PIPELINING\r\n250 SIZE 10\r\n\
                             250 2.1.0 Ok\r\n354 go\r\n550 5.1.1 no\r\n";
        let (replies, error) = whole(input, LIMITS);
        assert_eq!(error, None);
        assert_eq!(replies.len(), 5);
        assert_eq!(replies.iter().map(|(_, n)| n).sum::<usize>(), input.len());
        assert_eq!(byte_by_byte(input, LIMITS), (replies.clone(), None));
        for cut in 0..input.len() {
            assert_eq!(
                feed(input, &[cut], LIMITS),
                (replies.clone(), None),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn line_limit() {
        // RFC 5321 §4.5.3.1.5: 512 octets with code and CRLF.
        let line = |len: usize| {
            let mut line = b"250 ".to_vec();
            line.resize(len - 2, b'x');
            line.extend_from_slice(b"\r\n");
            line
        };
        assert!(decode(&line(512)).unwrap().is_some());
        assert_eq!(decode(&line(513)), Err(ReplyError::LineTooLong));
        // 511 octets and a CR: the LF would make 513.
        assert_eq!(decode(&line(513)[..512]), Err(ReplyError::LineTooLong));
        assert_eq!(decode(&line(513)[..511]), Ok(None));
        // No CRLF in 100 KB: refused once the line cannot fit, whatever follows.
        let endless = [b"250 ".as_slice(), &[b'x'; 100_000]].concat();
        assert_eq!(decode(&endless), Err(ReplyError::LineTooLong));
        assert_eq!(decode(&endless[..512]), Err(ReplyError::LineTooLong));
        assert_eq!(
            byte_by_byte(&endless[..600], LIMITS).1,
            Some(ReplyError::LineTooLong)
        );
        // A configured limit.
        let wide = ReplyLimits {
            max_line: 1000,
            ..ReplyLimits::DEFAULT
        };
        assert!(Reply::decode(&line(1000), &wide).unwrap().is_some());
    }

    #[test]
    fn reply_limit() {
        let endless = b"250-continued\r\n".repeat(10_000);
        assert_eq!(decode(&endless), Err(ReplyError::ReplyTooLong));
        let small = ReplyLimits {
            max_line: 512,
            max_total: 40,
        };
        let three = b"250-aaaaaaaaa\r\n250-bbbbbbbbb\r\n250 c\r\n"; // 15 + 15 + 7 = 37
        assert!(Reply::decode(three, &small).unwrap().is_some());
        let four = b"250-aaaaaaaaa\r\n250-bbbbbbbbb\r\n250-c\r\n250 d\r\n";
        assert_eq!(Reply::decode(four, &small), Err(ReplyError::ReplyTooLong));
        assert_eq!(byte_by_byte(four, small).1, Some(ReplyError::ReplyTooLong));
        // Decided as soon as the fourth line starts and cannot fit.
        assert_eq!(
            Reply::decode(&four[..40], &small),
            Err(ReplyError::ReplyTooLong)
        );
        assert_eq!(Reply::decode(&four[..39], &small), Ok(None));
    }

    #[test]
    fn growing_buffer_costs_linear_time() {
        // 56 KB fed one byte at a time: rescanning from the start each time would take
        // some 1.6 billion steps; the decoder resumes where it stopped.
        let mut input = b"250-0123456789\r\n".repeat(3_500);
        input.extend_from_slice(b"250 end\r\n");
        let (replies, error) = byte_by_byte(&input, LIMITS);
        assert_eq!(error, None);
        assert_eq!(replies[0].0.lines().len(), 3_501);
        assert_eq!(replies[0].1, input.len());
    }

    #[test]
    fn decoder_errors_are_sticky_until_reset() {
        let mut decoder = ReplyDecoder::default();
        assert_eq!(decoder.decode(b"250 a\nb"), Err(ReplyError::BareLf));
        assert_eq!(decoder.decode(b"250 ok\r\n"), Err(ReplyError::BareLf));
        decoder.reset();
        assert_eq!(decoder.decode(b"250 ok\r\n").unwrap().unwrap().1, 8);
    }

    #[test]
    fn decoder_restarts_on_a_shorter_buffer() {
        let mut decoder = ReplyDecoder::default();
        assert_eq!(decoder.decode(b"250-first\r\n250 sec"), Ok(None));
        let (reply, used) = decoder.decode(b"220 new\r\n").unwrap().unwrap();
        assert_eq!(
            (reply.code().get(), reply.text().as_str(), used),
            (220, "new", 9)
        );
    }

    #[test]
    fn parse_needs_exactly_one_reply() {
        assert_eq!(Reply::parse(b"250 ok\r\n").unwrap().text(), "ok");
        assert_eq!(Reply::parse(b"250 ok"), Err(ReplyError::Incomplete));
        assert_eq!(
            Reply::parse(b"250 ok\r\n250 ok\r\n"),
            Err(ReplyError::TrailingBytes)
        );
    }

    #[test]
    fn round_trips_known_answers() {
        let replies = [
            Reply::fixed(250, None, "ok"),
            Reply::fixed(250, None, ""),
            Reply::fixed(250, Some((2, 0, 0)), ""),
            Reply::fixed(250, Some((2, 0, 0)), "  spaced"),
            Reply::fixed(250, Some((2, 1, 5)), "2.1.5 repeated"),
            Reply::fixed(550, Some((5, 999, 999)), "max"),
            Reply::with_lines(250, None, ["", "", ""]).unwrap(),
            Reply::with_lines(250, Some(EnhancedCode::of(2, 0, 0)), ["a", "", "2.0.0 c"]).unwrap(),
            Reply::with_lines(214, None, ["a", "2.0.0 b"]).unwrap(),
        ];
        for reply in replies {
            let bytes = reply.to_bytes();
            assert_eq!(Reply::parse(&bytes), Ok(reply.clone()), "{reply}");
            assert_eq!(Reply::parse(&bytes).unwrap().to_bytes(), bytes);
        }
    }

    #[test]
    fn lines_compare_hash_and_print_alike_however_kept() {
        use std::hash::{BuildHasher, RandomState};
        let hasher = RandomState::new();
        let mut one = Reply::new(250, None, "a").unwrap();
        let decoded = Reply::parse(b"250 a\r\n").unwrap();
        let wrapped = Reply::wrap(250, None, "a", 512).unwrap();
        for other in [&decoded, &wrapped] {
            assert_eq!(&one, other);
            assert_eq!(hasher.hash_one(&one), hasher.hash_one(other));
        }
        assert_eq!(
            format!("{one:?}"),
            "Reply { code: ReplyCode(250), enhanced: None, lines: [\"a\"] }"
        );
        one.push_line("b").unwrap();
        let two = Reply::with_lines(250, None, ["a", "b"]).unwrap();
        assert_eq!(one, two);
        assert_eq!(hasher.hash_one(&one), hasher.hash_one(&two));
        assert_eq!(one, Reply::parse(b"250-a\r\n250 b\r\n").unwrap());
        assert_eq!(one.lines(), ["a", "b"]);
        assert_eq!(Reply::with_lines(250, None, [""; 0]).unwrap().lines(), [""]);
    }

    #[test]
    fn encodes_enhanced_codes_without_formatting() {
        for (class, subject, detail) in [(2, 0, 0), (4, 7, 12), (5, 100, 999), (2, 10, 1)] {
            let code = EnhancedCode::of(class, subject, detail);
            let mut buf = [0; 11];
            let len = code.write_to(&mut buf);
            assert_eq!(&buf[..len], code.to_string().as_bytes());
        }
    }

    #[test]
    fn wraps_long_text() {
        let text = "lorem ipsum dolor ".repeat(100);
        let text = text.trim_end();
        let reply = Reply::wrap(550, Some(EnhancedCode::of(5, 7, 1)), text, 512).unwrap();
        assert!(reply.lines().len() > 1);
        assert_eq!(reply.lines().join(" "), text);
        for line in reply.to_bytes().split_inclusive(|&b| b == b'\n') {
            assert!(line.len() <= MAX_REPLY_LINE);
        }
        assert_eq!(Reply::parse(&reply.to_bytes()), Ok(reply));
        // Wider than the RFC allows is lowered to 512.
        let reply = Reply::wrap(250, None, text, 10_000).unwrap();
        assert!(reply.lines().iter().all(|l| l.len() <= 512 - 6));
        // A word longer than a line is cut; characters are never split.
        let reply = Reply::wrap(250, None, &"\u{e9}".repeat(20), 16).unwrap();
        assert_eq!(reply.lines().concat(), "\u{e9}".repeat(20));
        assert!(reply.lines().iter().all(|l| l.len() <= 10));
        // Newlines start lines; short text stays one line; CR is refused.
        assert_eq!(
            Reply::wrap(250, None, "a\nb", 512).unwrap().lines(),
            ["a", "b"]
        );
        assert_eq!(Reply::wrap(250, None, "", 512).unwrap().lines(), [""]);
        assert_eq!(
            Reply::wrap(250, None, "a\rb", 512),
            Err(BuildError::ControlCharacter)
        );
        assert_eq!(
            Reply::wrap(250, Some(EnhancedCode::of(5, 0, 0)), "a", 512),
            Err(BuildError::EnhancedClassMismatch)
        );
        // Absurdly narrow: one character per line, still valid.
        assert_eq!(
            Reply::wrap(250, None, "ab c", 1).unwrap().lines(),
            ["a", "b", "c"]
        );
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[\t -~]{0,40}",
            "[\t -~\u{e9}\u{20ac}\u{1f600}]{0,40}",
            // Shaped like enhanced codes, valid or not.
            "[2-5]\\.[0-9]{1,4}\\.[0-9]{1,4}[ .x]?[ -~]{0,10}",
            " {1,3}[ -~]{0,10}",
        ]
    }

    prop_compose! {
        fn reply()(code in 200u16..=599)(
            code in Just(code),
            enhanced in proptest::option::of((0u16..=999, 0u16..=999)),
            lines in proptest::collection::vec(text(), 1..6),
        ) -> Reply {
            let class = (code / 100) as u8;
            let enhanced = enhanced
                .filter(|_| class != 3)
                .map(|(s, d)| EnhancedCode::of(class, s, d));
            Reply::with_lines(code, enhanced, lines).unwrap()
        }
    }

    /// The one case where bytes cannot tell two replies apart (see [`Reply`]).
    fn ambiguous(reply: &Reply) -> bool {
        reply.enhanced().is_none()
            && enhanced_prefix(reply.lines()[0].as_bytes(), reply.code().class()).is_some()
    }

    proptest! {
        #[test]
        fn valid_replies_round_trip(reply in reply().prop_filter("ambiguous", |r| !ambiguous(r))) {
            let bytes = reply.to_bytes();
            prop_assert_eq!(decode(&bytes), Ok(Some((reply.clone(), bytes.len()))));
            prop_assert_eq!(Reply::parse(&bytes).unwrap().to_bytes(), bytes.clone());
            let (replies, error) = byte_by_byte(&bytes, LIMITS);
            prop_assert_eq!(error, None);
            prop_assert_eq!(replies, vec![(reply, bytes.len())]);
        }

        #[test]
        fn ambiguous_replies_decode_with_the_code(
            code in prop_oneof![200u16..300, 400u16..600],
            (subject, detail) in (0u16..1000, 0u16..1000),
            first in proptest::option::of(text()),
            more in proptest::collection::vec(text(), 0..3),
        ) {
            let class = code / 100;
            let first = match first {
                Some(text) => format!("{class}.{subject}.{detail} {text}"),
                None => format!("{class}.{subject}.{detail}"),
            };
            let reply = Reply::with_lines(code, None, [first].into_iter().chain(more)).unwrap();
            prop_assert!(ambiguous(&reply));
            let decoded = Reply::parse(&reply.to_bytes()).unwrap();
            prop_assert!(decoded.enhanced().is_some());
            // Once decoded, the reply is stable.
            prop_assert_eq!(Reply::parse(&decoded.to_bytes()), Ok(decoded));
        }

        #[test]
        fn wrapped_lines_fit(words in proptest::collection::vec("[!-~\u{e9}]{1,30}", 0..80), width in 1usize..600) {
            let text = words.join(" ");
            let reply = Reply::wrap(250, Some(EnhancedCode::of(2, 0, 0)), &text, width).unwrap();
            // Below the fixed part plus one character, lines hold one character.
            let width = width.clamp(3 + 1 + 6 + 2 + 2, MAX_REPLY_LINE);
            for line in reply.to_bytes().split_inclusive(|&b| b == b'\n') {
                prop_assert!(line.len() <= width, "{} > {}", line.len(), width);
            }
            prop_assert_eq!(reply.lines().concat().replace(' ', ""), text.replace(' ', ""));
        }

        #[test]
        fn enhanced_prefix_agrees_with_the_nom_grammar(
            text in prop_oneof![
                "[2-5]\\.[0-9]{0,4}\\.[0-9]{0,4}( .{0,3}|[ -~]{0,2})",
                "[0-9. ]{0,12}",
                proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ],
            class in 2u8..=5,
        ) {
            prop_assert_eq!(
                enhanced_prefix(text.as_bytes(), class),
                enhanced_prefix_nom(text.as_bytes(), class)
            );
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(any::<u8>(), 0..700),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            max_line in 0usize..40,
            max_total in 0usize..120,
        ) {
            for limits in [LIMITS, ReplyLimits { max_line, max_total }] {
                let _ = Reply::decode(&input, &limits);
                prop_assert_eq!(feed(&input, &cuts, limits), whole(&input, limits));
            }
        }

        #[test]
        fn near_valid_bytes_split_anywhere_decode_alike(
            pieces in proptest::collection::vec(prop_oneof![
                Just(b"250-".to_vec()), Just(b"250 ".to_vec()), Just(b"251 ".to_vec()),
                Just(b"\r\n".to_vec()), Just(b"\r".to_vec()), Just(b"\n".to_vec()),
                Just(b"2.0.0 ".to_vec()), "[ -~]{0,12}".prop_map(String::into_bytes),
            ], 0..40),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            max_line in 1usize..40,
            max_total in 1usize..120,
        ) {
            let input = pieces.concat();
            for limits in [LIMITS, ReplyLimits { max_line, max_total }] {
                prop_assert_eq!(feed(&input, &cuts, limits), whole(&input, limits));
                prop_assert_eq!(byte_by_byte(&input, limits), whole(&input, limits));
            }
        }
    }
}

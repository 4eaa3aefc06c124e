//! Commands (RFC 5321 §4.1 and extensions): parsing one complete line, serializing, and
//! incremental decoding of a byte stream with [`CommandDecoder`].
//!
//! Leniencies, all deliberate and common among servers (Postfix accepts the same):
//! - verbs and the `FROM:`/`TO:` keywords are case-insensitive (RFC 5321 §2.4);
//! - spaces between `FROM:`/`TO:` and the path (`MAIL FROM: <a@b>`), several spaces between
//!   parameters, and trailing spaces are tolerated: they carry no ambiguity.
//!
//! Everything else follows the ABNF: paths need angle brackets, HELO/EHLO take a domain or
//! an address literal, and commands without arguments take none.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::BufMut;

use crate::address::{self, ForwardPath, Host, ReversePath};
use crate::error::{AddressError, BuildError, CommandError};
use crate::line::{Line, LineFramer};
use crate::params::{MailParams, RcptParams};
use crate::reply::{EnhancedCode, Reply};
use crate::sasl;
use crate::secret::Secret;
pub use crate::verb::Verb;

mod fast;

/// Free text of an argument (VRFY, EXPN, HELP, NOOP, ETRN, an unknown command): never
/// holds CR, LF or NUL, so it cannot break a line.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text<'a>(Cow<'a, str>);

impl<'a> Text<'a> {
    /// Wraps text; refuses CR, LF and NUL.
    pub fn new(text: impl Into<Cow<'a, str>>) -> Result<Text<'a>, BuildError> {
        let text = text.into();
        if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(BuildError::ControlCharacter);
        }
        Ok(Text(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The AUTH initial response (RFC 4954 §4): absent, `=` for empty, or base64 data. Kept
/// decoded and secret.
pub type InitialResponse = Secret<Vec<u8>>;

/// One SMTP, ESMTP or LMTP command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `HELO domain`
    Helo(Host<'a>),
    /// `EHLO domain / address-literal`
    Ehlo(Host<'a>),
    /// `LHLO domain / address-literal` (LMTP)
    Lhlo(Host<'a>),
    /// `MAIL FROM:<reverse-path> [params]`
    Mail {
        /// The reverse-path.
        from: ReversePath<'a>,
        /// Its parameters.
        params: MailParams<'a>,
    },
    /// `RCPT TO:<forward-path> [params]`
    Rcpt {
        /// The forward-path.
        to: ForwardPath<'a>,
        /// Its parameters.
        params: RcptParams<'a>,
    },
    /// `DATA`
    Data,
    /// `BDAT size [LAST]` (RFC 3030)
    Bdat {
        /// Octets in the chunk that follows.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET`
    Rset,
    /// `VRFY string`
    Vrfy(Text<'a>),
    /// `EXPN string`
    Expn(Text<'a>),
    /// `HELP [string]`
    Help(Option<Text<'a>>),
    /// `NOOP [string]`
    Noop(Option<Text<'a>>),
    /// `QUIT`
    Quit,
    /// `STARTTLS` (RFC 3207)
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954)
    Auth {
        /// The SASL mechanism name as sent (`1*20 (ALPHA / DIGIT / "-" / "_")`).
        mechanism: Text<'a>,
        /// The decoded initial response; `Some(empty)` for `=`.
        initial_response: Option<InitialResponse>,
    },
    /// `ETRN node-name` (RFC 1985)
    Etrn(Text<'a>),
    /// A line whose verb is not known: the whole line, for the server to answer
    /// `500 5.5.2` (RFC 5321 §4.2.4) and for logging.
    Unknown(Text<'a>),
}

/// How to parse: what the session allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Allow UTF-8 (RFC 6531). For MAIL, it means the server offers SMTPUTF8, and a
    /// non-ASCII reverse-path is then accepted only if the same command carries the
    /// `SMTPUTF8` parameter. For RCPT and the other commands, it means the transaction was
    /// opened with `SMTPUTF8`.
    pub utf8: bool,
}

impl CommandError {
    /// The reply an RFC-conforming server sends for this error.
    ///
    /// ```
    /// use smtp_proto::Command;
    /// let err = Command::parse(b"MAIL FROM:<a@b> SIZE=184467440737095516160\r\n").unwrap_err();
    /// assert_eq!(err.reply().to_bytes(), b"501 5.5.4 Syntax error in parameter SIZE\r\n");
    /// ```
    pub fn reply(&self) -> Reply {
        match self {
            // RFC 5321 §4.5.3.1.4 "500 Line too long"; RFC 3463 X.5.2 syntax error.
            CommandError::LineTooLong => Reply::fixed(500, Some((5, 5, 2)), "Error: line too long"),
            CommandError::BareLf => Reply::fixed(500, Some((5, 5, 2)), "Error: bare <LF> received"),
            CommandError::BareCr => Reply::fixed(500, Some((5, 5, 2)), "Error: bare <CR> received"),
            CommandError::Nul => Reply::fixed(500, Some((5, 5, 2)), "Error: NUL in command"),
            CommandError::Syntax { verb } => Reply::fixed(501, Some((5, 5, 4)), verb.usage()),
            CommandError::Address { verb, error } => address_reply(*verb, *error),
            CommandError::Param { keyword, .. } => {
                let text = format!("Syntax error in parameter {keyword}");
                Reply::new(501, Some(EnhancedCode::of(5, 5, 4)), text).unwrap_or_else(|_| {
                    Reply::fixed(501, Some((5, 5, 4)), "Syntax error in parameters")
                })
            }
            CommandError::Base64 => sasl::AUTH_INVALID_BASE64,
        }
    }
}

fn address_reply(verb: Verb, error: AddressError) -> Reply {
    let sender = verb == Verb::Mail;
    match (error, sender) {
        // RFC 6531 §3.7.4.1 (via RFC 6533 X.6.7).
        (AddressError::Utf8NotPermitted, true) => Reply::fixed(
            553,
            Some((5, 6, 7)),
            "Non-ASCII addresses not permitted for that sender",
        ),
        (AddressError::Utf8NotPermitted, false) => Reply::fixed(
            553,
            Some((5, 6, 7)),
            "Non-ASCII addresses not permitted for that recipient",
        ),
        // RFC 5321 §3.6.2, §4.2.5: 553 for a mailbox name not allowed; RFC 3463 X.1.7
        // and X.1.3 for bad sender and recipient syntax.
        (AddressError::ControlCharacter, true) => Reply::fixed(
            553,
            Some((5, 1, 7)),
            "Control or line separator character in sender address",
        ),
        (AddressError::ControlCharacter, false) => Reply::fixed(
            553,
            Some((5, 1, 3)),
            "Control or line separator character in recipient address",
        ),
        // RFC 5321 §4.5.3.1: "501 Path too long".
        (
            AddressError::PathTooLong
            | AddressError::LocalPartTooLong
            | AddressError::DomainTooLong,
            true,
        ) => Reply::fixed(501, Some((5, 1, 7)), "Path too long"),
        (
            AddressError::PathTooLong
            | AddressError::LocalPartTooLong
            | AddressError::DomainTooLong,
            false,
        ) => Reply::fixed(501, Some((5, 1, 3)), "Path too long"),
        // RFC 3463: X.1.7 bad sender mailbox syntax, X.1.3 bad destination mailbox syntax.
        (_, true) => Reply::fixed(501, Some((5, 1, 7)), "Bad sender address syntax"),
        (_, false) => Reply::fixed(501, Some((5, 1, 3)), "Bad recipient address syntax"),
    }
}

fn syntax(verb: Verb) -> CommandError {
    CommandError::Syntax { verb }
}

fn trim_trailing_spaces(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

/// Splits `VERB[ SP rest]`.
fn split_verb(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    }
}

fn text(input: &[u8], utf8: bool, verb: Verb) -> Result<Text<'_>, CommandError> {
    if input.is_empty() || !address::is_text(input, utf8) {
        return Err(syntax(verb));
    }
    // is_text checked UTF-8 and the absence of controls.
    let s = std::str::from_utf8(input).map_err(|_| syntax(verb))?;
    Ok(Text(Cow::Borrowed(s)))
}

/// `sasl-mech = 1*20mech-char`, `mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE`
/// (RFC 4422 §3.1); lower case is accepted since clients send it.
fn is_sasl_mech(m: &[u8]) -> bool {
    (1..=20).contains(&m.len())
        && m.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `1*DIGIT` as u64.
fn chunk_size(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn put_u64<B: BufMut>(out: &mut B, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

impl<'a> Command<'a> {
    /// Parses one command line (with or without its final CRLF), ASCII only.
    ///
    /// ```
    /// use smtp_proto::{Command, Verb};
    /// assert_eq!(Command::parse(b"noop\r\n").unwrap(), Command::Noop(None));
    /// assert!(matches!(Command::parse(b"XYZZY\r\n").unwrap(), Command::Unknown(_)));
    /// ```
    pub fn parse(line: &'a [u8]) -> Result<Command<'a>, CommandError> {
        Command::parse_with(line, ParseOptions::default())
    }

    /// Parses one command line (with or without its final CRLF).
    pub fn parse_with(line: &'a [u8], options: ParseOptions) -> Result<Command<'a>, CommandError> {
        let line = line.strip_suffix(b"\r\n").unwrap_or(line);
        match fast::parse(line) {
            // A CR inside the line stops the fast path early: the full parser reports it.
            Some((command, end)) if end == line.len() => Ok(command),
            _ => Command::full(line, options),
        }
    }

    /// The full parser alone, without the fast path for common lines that
    /// [`Command::parse_with`] tries first. Both give the same answer; this one is public
    /// for the fuzz target and the tests that check so.
    #[doc(hidden)]
    pub fn parse_full(line: &'a [u8], options: ParseOptions) -> Result<Command<'a>, CommandError> {
        Command::full(line.strip_suffix(b"\r\n").unwrap_or(line), options)
    }

    /// The full parser, on a line whose CRLF is removed.
    fn full(line: &'a [u8], options: ParseOptions) -> Result<Command<'a>, CommandError> {
        // The framer never hands over a line with CR or LF in it, but a caller might. One
        // pass for CR, LF and NUL; a CR or LF anywhere is reported before a NUL.
        if let Some(i) = memchr::memchr3(b'\r', b'\n', 0, line) {
            let at = match line[i] {
                0 => memchr::memchr2(b'\r', b'\n', &line[i..]).map(|j| i + j),
                _ => Some(i),
            };
            return Err(match at.map(|i| line[i]) {
                Some(b'\n') => CommandError::BareLf,
                Some(_) => CommandError::BareCr,
                None => CommandError::Nul,
            });
        }
        let (verb_bytes, args) = split_verb(line);
        let Some(verb) = Verb::from_bytes(verb_bytes) else {
            let text = String::from_utf8_lossy(line);
            return Ok(Command::Unknown(Text(text)));
        };
        let utf8 = options.utf8;
        let args = args.map(trim_trailing_spaces).filter(|a| !a.is_empty());
        let no_args = |cmd: Command<'a>| match args {
            None => Ok(cmd),
            Some(_) => Err(syntax(verb)),
        };
        match verb {
            Verb::Helo | Verb::Ehlo | Verb::Lhlo => {
                let arg = args.ok_or(syntax(verb))?;
                let host = match address::host(arg, utf8) {
                    Ok((b"", host)) if !host.is_unsafe() => host,
                    _ => return Err(syntax(verb)),
                };
                Ok(match verb {
                    Verb::Helo => Command::Helo(host),
                    Verb::Ehlo => Command::Ehlo(host),
                    _ => Command::Lhlo(host),
                })
            }
            Verb::Mail => {
                let arg = args.ok_or(syntax(verb))?;
                let rest = strip_keyword(arg, b"FROM:").ok_or(syntax(verb))?;
                let rest = address::skip_spaces(rest);
                // SMTPUTF8 on the same line is what allows a UTF-8 reverse-path.
                let (rest, from) = match address::reverse_path(rest, false) {
                    Err(AddressError::Utf8NotPermitted) if utf8 => {
                        let (after, from) = address::reverse_path(rest, true)
                            .map_err(|error| CommandError::Address { verb, error })?;
                        let params = params_part(after, verb)?;
                        let parsed = MailParams::parse(params, utf8)?;
                        if !parsed.smtputf8 {
                            return Err(CommandError::Address {
                                verb,
                                error: AddressError::Utf8NotPermitted,
                            });
                        }
                        return Ok(Command::Mail {
                            from,
                            params: parsed,
                        });
                    }
                    other => other.map_err(|error| CommandError::Address { verb, error })?,
                };
                let params = MailParams::parse(params_part(rest, verb)?, utf8)?;
                Ok(Command::Mail { from, params })
            }
            Verb::Rcpt => {
                let arg = args.ok_or(syntax(verb))?;
                let rest = strip_keyword(arg, b"TO:").ok_or(syntax(verb))?;
                let rest = address::skip_spaces(rest);
                let (rest, to) = address::forward_path(rest, utf8)
                    .map_err(|error| CommandError::Address { verb, error })?;
                let params = RcptParams::parse(params_part(rest, verb)?, utf8)?;
                Ok(Command::Rcpt { to, params })
            }
            Verb::Data => no_args(Command::Data),
            Verb::Rset => no_args(Command::Rset),
            Verb::Quit => no_args(Command::Quit),
            Verb::StartTls => no_args(Command::StartTls),
            Verb::Bdat => {
                // "BDAT" SP chunk-size [ SP end-marker ]
                let arg = args.ok_or(syntax(verb))?;
                let (size, marker) = split_verb(arg);
                let size = chunk_size(size).ok_or(syntax(verb))?;
                let last = match marker.map(trim_trailing_spaces) {
                    None => false,
                    Some(m) if m.eq_ignore_ascii_case(b"LAST") => true,
                    Some(_) => return Err(syntax(verb)),
                };
                Ok(Command::Bdat { size, last })
            }
            Verb::Vrfy => Ok(Command::Vrfy(text(args.ok_or(syntax(verb))?, utf8, verb)?)),
            Verb::Expn => Ok(Command::Expn(text(args.ok_or(syntax(verb))?, utf8, verb)?)),
            Verb::Help => Ok(Command::Help(
                args.map(|a| text(a, utf8, verb)).transpose()?,
            )),
            Verb::Noop => Ok(Command::Noop(
                args.map(|a| text(a, utf8, verb)).transpose()?,
            )),
            Verb::Etrn => {
                // node-name = domain / "@" domain / "#" queue-name: one word.
                let arg = args.ok_or(syntax(verb))?;
                if arg.contains(&b' ') {
                    return Err(syntax(verb));
                }
                Ok(Command::Etrn(text(arg, false, verb)?))
            }
            Verb::Auth => {
                let arg = args.ok_or(syntax(verb))?;
                let (mech, initial) = split_verb(arg);
                if !is_sasl_mech(mech) {
                    return Err(syntax(verb));
                }
                let initial_response = match initial.map(trim_trailing_spaces) {
                    None | Some(b"") => None,
                    Some(b"=") => Some(Secret::new(Vec::new())),
                    Some(b64) => Some(Secret::new(
                        STANDARD.decode(b64).map_err(|_| CommandError::Base64)?,
                    )),
                };
                let mech = std::str::from_utf8(mech).map_err(|_| syntax(verb))?;
                Ok(Command::Auth {
                    mechanism: Text(Cow::Borrowed(mech)),
                    initial_response,
                })
            }
        }
    }

    /// The verb, or `None` for [`Command::Unknown`].
    pub fn verb(&self) -> Option<Verb> {
        Some(match self {
            Command::Helo(_) => Verb::Helo,
            Command::Ehlo(_) => Verb::Ehlo,
            Command::Lhlo(_) => Verb::Lhlo,
            Command::Mail { .. } => Verb::Mail,
            Command::Rcpt { .. } => Verb::Rcpt,
            Command::Data => Verb::Data,
            Command::Bdat { .. } => Verb::Bdat,
            Command::Rset => Verb::Rset,
            Command::Vrfy(_) => Verb::Vrfy,
            Command::Expn(_) => Verb::Expn,
            Command::Help(_) => Verb::Help,
            Command::Noop(_) => Verb::Noop,
            Command::Quit => Verb::Quit,
            Command::StartTls => Verb::StartTls,
            Command::Auth { .. } => Verb::Auth,
            Command::Etrn(_) => Verb::Etrn,
            Command::Unknown(_) => return None,
        })
    }

    /// Whether this line is an HTTP request or header rather than SMTP (`GET / HTTP/1.1`,
    /// `POST`, `CONNECT`, `Host: x`): a cross-protocol attack that a server should answer by
    /// closing at once (Postfix's `smtpd_forbidden_commands`).
    pub fn is_forbidden(&self) -> bool {
        let Command::Unknown(line) = self else {
            return false;
        };
        let line = line.as_str();
        let verb = line.split(' ').next().unwrap_or("");
        const HTTP: [&str; 8] = [
            "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE", "PATCH",
        ];
        HTTP.iter().any(|m| m.eq_ignore_ascii_case(verb))
            || (verb.len() > 1 && verb.ends_with(':') && !verb.contains('@'))
    }

    /// Builds a [`Command::Unknown`], refusing text that would parse as a known verb or
    /// that holds CR, LF or NUL.
    pub fn unknown(line: &str) -> Result<Command<'static>, BuildError> {
        let (verb, _) = split_verb(line.as_bytes());
        if Verb::from_bytes(verb).is_some() {
            return Err(BuildError::Argument);
        }
        Ok(Command::Unknown(Text::new(line.to_owned())?))
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Command<'static> {
        match self {
            Command::Helo(h) => Command::Helo(h.into_owned()),
            Command::Ehlo(h) => Command::Ehlo(h.into_owned()),
            Command::Lhlo(h) => Command::Lhlo(h.into_owned()),
            Command::Mail { from, params } => Command::Mail {
                from: from.into_owned(),
                params: params.into_owned(),
            },
            Command::Rcpt { to, params } => Command::Rcpt {
                to: to.into_owned(),
                params: params.into_owned(),
            },
            Command::Data => Command::Data,
            Command::Bdat { size, last } => Command::Bdat { size, last },
            Command::Rset => Command::Rset,
            Command::Vrfy(t) => Command::Vrfy(t.into_owned()),
            Command::Expn(t) => Command::Expn(t.into_owned()),
            Command::Help(t) => Command::Help(t.map(Text::into_owned)),
            Command::Noop(t) => Command::Noop(t.map(Text::into_owned)),
            Command::Quit => Command::Quit,
            Command::StartTls => Command::StartTls,
            Command::Auth {
                mechanism,
                initial_response,
            } => Command::Auth {
                mechanism: mechanism.into_owned(),
                initial_response,
            },
            Command::Etrn(t) => Command::Etrn(t.into_owned()),
            Command::Unknown(t) => Command::Unknown(t.into_owned()),
        }
    }

    /// Writes the canonical form, CRLF included: upper-case verb, single spaces,
    /// parameters in a fixed order.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        if let Some(verb) = self.verb() {
            out.put_slice(verb.as_str().as_bytes());
        }
        let with_text = |out: &mut B, t: &Text<'_>| {
            out.put_u8(b' ');
            out.put_slice(t.0.as_bytes());
        };
        match self {
            Command::Helo(h) | Command::Ehlo(h) | Command::Lhlo(h) => {
                out.put_u8(b' ');
                out.put_slice(h.to_string().as_bytes());
            }
            Command::Mail { from, params } => {
                out.put_slice(b" FROM:");
                from.encode(out);
                params.encode(out);
            }
            Command::Rcpt { to, params } => {
                out.put_slice(b" TO:");
                to.encode(out);
                params.encode(out);
            }
            Command::Bdat { size, last } => {
                out.put_u8(b' ');
                put_u64(out, *size);
                if *last {
                    out.put_slice(b" LAST");
                }
            }
            Command::Vrfy(t) | Command::Expn(t) | Command::Etrn(t) => with_text(out, t),
            Command::Help(t) | Command::Noop(t) => {
                if let Some(t) = t {
                    with_text(out, t);
                }
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                with_text(out, mechanism);
                match initial_response.as_ref().map(|r| r.expose()) {
                    None => {}
                    Some(r) if r.is_empty() => out.put_slice(b" ="),
                    Some(r) => {
                        out.put_u8(b' ');
                        out.put_slice(STANDARD.encode(r).as_bytes());
                    }
                }
            }
            Command::Unknown(t) => out.put_slice(t.0.as_bytes()),
            Command::Data | Command::Rset | Command::Quit | Command::StartTls => {}
        }
        out.put_slice(b"\r\n");
    }

    /// The canonical bytes, CRLF included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out);
        out
    }
}

/// `MAIL FROM:` / `RCPT TO:` keywords, case-insensitive.
fn strip_keyword<'i>(arg: &'i [u8], keyword: &[u8]) -> Option<&'i [u8]> {
    (arg.len() >= keyword.len() && arg[..keyword.len()].eq_ignore_ascii_case(keyword))
        .then(|| &arg[keyword.len()..])
}

/// After a path: nothing, or SP then parameters.
fn params_part(rest: &[u8], verb: Verb) -> Result<&[u8], CommandError> {
    match rest.first() {
        None => Ok(rest),
        Some(b' ') => Ok(&rest[1..]),
        Some(_) => Err(CommandError::Address {
            verb,
            error: AddressError::Syntax,
        }),
    }
}

impl fmt::Display for Command<'_> {
    /// The line without CRLF, with AUTH responses redacted (for logs and transcripts).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Command::Auth {
            mechanism,
            initial_response,
        } = self
        {
            return match initial_response {
                Some(_) => write!(f, "AUTH {mechanism} [redacted]"),
                None => write!(f, "AUTH {mechanism}"),
            };
        }
        let bytes = self.to_bytes();
        f.write_str(String::from_utf8_lossy(&bytes[..bytes.len() - 2]).as_ref())
    }
}

/// What [`CommandDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// No complete command yet; drop `discarded` octets (the tail of an over-long line).
    NeedMore {
        /// Octets to drop from the start of the buffer.
        discarded: usize,
    },
    /// A command; drop `consumed` octets.
    Command {
        /// The command.
        command: Command<'a>,
        /// Octets to drop from the start of the buffer.
        consumed: usize,
    },
    /// A bad line; drop `consumed` octets and answer [`CommandError::reply`].
    Error {
        /// What was wrong.
        error: CommandError,
        /// Octets to drop from the start of the buffer.
        consumed: usize,
    },
}

/// Incremental command decoding: a [`LineFramer`] and the parser.
///
/// ```
/// use smtp_proto::{Command, CommandDecoder, Decoded};
/// let mut decoder = CommandDecoder::default();
/// let input = b"RSET\r\nQUI";
/// let Decoded::Command { command, consumed } = decoder.decode(input) else { panic!() };
/// assert_eq!((command, consumed), (Command::Rset, 6));
/// assert_eq!(decoder.decode(&input[6..]), Decoded::NeedMore { discarded: 0 });
/// ```
#[derive(Clone, Debug, Default)]
pub struct CommandDecoder {
    /// The line framer (its limit can be raised for AUTH).
    pub framer: LineFramer,
    /// What the session allows.
    pub options: ParseOptions,
}

impl CommandDecoder {
    /// A decoder with a given line limit (512 by RFC 5321 §4.5.3.1.4).
    pub fn new(max_line: usize) -> CommandDecoder {
        CommandDecoder {
            framer: LineFramer::new(max_line),
            options: ParseOptions::default(),
        }
    }

    /// Decodes the next command at the start of `buf`.
    ///
    /// Between calls, drop the octets the result says and append what is read, nothing
    /// else (see [`LineFramer`]): a command that arrives in pieces is then scanned once,
    /// the framer resuming where the last piece ended, and parsed once, when its CRLF is
    /// in.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Decoded<'a> {
        if self.framer.is_mid_line() {
            return self.decode_rest(buf);
        }
        // The fast path reads the common commands straight from the buffer and finds the
        // CRLF on the way; the line it accepts holds no CR or LF, so the framer would have
        // found the same line. It must end within the line limit, as the framer requires.
        if !self.framer.is_skipping() {
            let window = &buf[..buf.len().min(self.framer.max_len())];
            if let Some((command, end)) = fast::parse(window) {
                if window.get(end..end + 2) == Some(b"\r\n") {
                    return Decoded::Command {
                        command,
                        consumed: end + 2,
                    };
                }
            }
        }
        let line = self.framer.next_line(buf);
        self.parse_line(line)
    }

    /// [`decode`](Self::decode) once part of the line has been seen without its end: the
    /// framer goes first, looking only at what was appended since, and the fast path then
    /// reads the whole line once. Apart so that the usual path stays as it was.
    #[cold]
    #[inline(never)]
    fn decode_rest<'a>(&mut self, buf: &'a [u8]) -> Decoded<'a> {
        match self.framer.next_line(buf) {
            // Nothing skipped before the line: it starts the buffer.
            Line::Complete { line, consumed } if consumed == line.len() + 2 => {
                if let Some((command, end)) = fast::parse(&buf[..consumed]) {
                    if end == line.len() {
                        return Decoded::Command { command, consumed };
                    }
                }
                self.parse_line(Line::Complete { line, consumed })
            }
            other => self.parse_line(other),
        }
    }

    /// The full parser on what the framer found.
    fn parse_line<'a>(&self, line: Line<'a>) -> Decoded<'a> {
        match line {
            Line::NeedMore { discarded } => Decoded::NeedMore { discarded },
            Line::Error { error, consumed } => Decoded::Error { error, consumed },
            Line::Complete { line, consumed } => match Command::full(line, self.options) {
                Ok(command) => Decoded::Command { command, consumed },
                Err(error) => Decoded::Error { error, consumed },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_a_line() {
        // A CR or LF is reported before a NUL, wherever they are.
        let cases: [(&[u8], CommandError); 6] = [
            (b"NOOP a\0b", CommandError::Nul),
            (b"NOOP \0a\rb", CommandError::BareCr),
            (b"NOOP \0a\nb", CommandError::BareLf),
            (b"NOOP a\nb\0", CommandError::BareLf),
            (b"NO\rOP\0\n", CommandError::BareCr),
            (b"\0\0\0\n\r\n", CommandError::BareLf),
        ];
        for (line, error) in cases {
            assert_eq!(Command::parse(line), Err(error), "{line:?}");
        }
    }
}

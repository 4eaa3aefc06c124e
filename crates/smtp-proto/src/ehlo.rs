//! EHLO and LHLO capabilities: the service extensions a server announces in its 250 reply
//! (RFC 5321 §4.1.1.1, LMTP RFC 2033 §4.1), as typed fields.
//!
//! A client reads them with [`Capabilities::from_reply`] to decide what it may send
//! (PIPELINING, SIZE, STARTTLS, AUTH, ...); a server describes itself with the builder
//! and sends [`Capabilities::to_reply`]. Both directions agree:
//! `from_reply(&c.to_reply()) == c`.
//!
//! ```text
//! ehlo-ok-rsp  = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
//!              / ( "250-" Domain [ SP ehlo-greet ] CRLF
//!                  *( "250-" ehlo-line CRLF )
//!                  "250" SP ehlo-line CRLF )
//! ehlo-line    = ehlo-keyword *( SP ehlo-param )
//! ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
//! ehlo-param   = 1*(%d33-126)
//! ```

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use crate::error::BuildError;
use crate::reply::{LineReader, Reply, ReplyCode, ReplyError, ReplyLimits};

mod fast;

/// Why a reply is not an EHLO capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EhloError {
    /// Only 250 carries capabilities (RFC 5321 §4.1.1.1 `ehlo-ok-rsp`); anything else is a
    /// refusal, and a client falls back to HELO or gives up (RFC 5321 §3.2).
    #[error("ehlo reply code {0} is not 250")]
    NotOk(ReplyCode),
    /// The first line does not start with the server's domain (RFC 5321 §4.1.1.1).
    #[error("ehlo reply has no domain")]
    MissingDomain,
    /// [`Capabilities::parse`] was given bytes that are not one well-formed reply.
    #[error("malformed ehlo reply: {0}")]
    Reply(#[from] ReplyError),
}

/// The capabilities a server announced in its EHLO (or LHLO) reply.
///
/// Keywords are case-insensitive (RFC 5321 §2.4); known ones become typed fields, the
/// rest are kept in [`Capabilities::other`] with their parameters, keyword upper-cased.
/// Flags and numbers are public fields, as no value of theirs can break a line; names and
/// text sit behind setters that refuse CR, LF and NUL, spaces inside keywords and
/// parameters, and keywords outside the `ehlo-keyword` grammar.
///
/// ```
/// use smtp_proto::Reply;
/// use smtp_proto::ehlo::Capabilities;
/// let reply = Reply::parse(b"250-mx.example.org Hello\r\n250-SIZE 35882577\r\n\
///                            250-AUTH=LOGIN\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n").unwrap();
/// let caps = Capabilities::from_reply(&reply).unwrap();
/// assert_eq!(caps.domain(), "mx.example.org");
/// assert_eq!(caps.size_limit(), Some(35882577));
/// assert_eq!(caps.auth().collect::<Vec<_>>(), ["LOGIN", "PLAIN"]);
/// assert!(caps.pipelining && caps.has("pipelining") && caps.supports_auth("plain"));
///
/// // A server builds its own.
/// let mut caps = Capabilities::new("mx.example.org").unwrap();
/// caps.pipelining = true;
/// caps.size = Some(Some(10_240_000));
/// caps.add_auth("plain").unwrap().add_other("X-DEMO", ["on"]).unwrap();
/// assert_eq!(
///     caps.to_reply().to_bytes(),
///     b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN\r\n250 X-DEMO on\r\n"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// The first line of the reply, less its code: the domain, then, if there is a
    /// greeting, one space and the greeting. One string for both, so that reading a reply
    /// allocates once for them; never a space at the end, so that equal capabilities are
    /// stored alike.
    first_line: String,
    /// Where the domain ends in `first_line`.
    domain_len: usize,
    /// PIPELINING: commands may be sent in groups (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870 §4): `None` when not announced, `Some(Some(n))` for a fixed limit
    /// of `n` octets, `Some(None)` for SIZE without a number. SIZE 0 (`Some(Some(0))`)
    /// also means "no fixed limit" (RFC 1870 §4); both are kept as sent so that a reply
    /// round-trips, and [`Capabilities::size_limit`] reads them as one. A parameter that is
    /// not a number reads as `Some(None)`.
    pub size: Option<Option<u64>>,
    /// 8BITMIME: `BODY=8BITMIME` is accepted (RFC 6152).
    pub eight_bit_mime: bool,
    /// BINARYMIME: `BODY=BINARYMIME` is accepted, with BDAT (RFC 3030).
    pub binary_mime: bool,
    /// CHUNKING: BDAT is accepted (RFC 3030).
    pub chunking: bool,
    /// SMTPUTF8: UTF-8 addresses and headers are accepted (RFC 6531).
    pub smtputf8: bool,
    /// DSN: delivery status notification parameters are accepted (RFC 3461).
    pub dsn: bool,
    /// STARTTLS: the session may be upgraded to TLS (RFC 3207).
    pub starttls: bool,
    /// The AUTH mechanisms, upper-case, each followed by nothing or one space: one
    /// allocation for the whole list, which a client reads once per session.
    auth: String,
    /// ENHANCEDSTATUSCODES: replies carry RFC 3463 codes (RFC 2034).
    pub enhanced_status_codes: bool,
    /// REQUIRETLS: the `REQUIRETLS` MAIL parameter is accepted (RFC 8689).
    pub requiretls: bool,
    mt_priority: Option<Option<String>>,
    /// DELIVERBY (RFC 2852 §4): `None` when not announced, `Some(Some(n))` with the
    /// minimum by-time in seconds, `Some(None)` without one (or with a parameter that is
    /// not a number).
    pub deliver_by: Option<Option<u64>>,
    /// ETRN: remote queue start is accepted (RFC 1985).
    pub etrn: bool,
    /// VRFY is announced (RFC 5321 §3.5).
    pub vrfy: bool,
    /// EXPN is announced (RFC 5321 §3.5).
    pub expn: bool,
    /// HELP is announced (RFC 5321 §4.1.1.8).
    pub help: bool,
    other: Vec<(String, Vec<String>)>,
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As derived, with the domain and greeting apart, as they read.
        f.debug_struct("Capabilities")
            .field("domain", &self.domain())
            .field("greeting", &self.greeting())
            .field("pipelining", &self.pipelining)
            .field("size", &self.size)
            .field("eight_bit_mime", &self.eight_bit_mime)
            .field("binary_mime", &self.binary_mime)
            .field("chunking", &self.chunking)
            .field("smtputf8", &self.smtputf8)
            .field("dsn", &self.dsn)
            .field("starttls", &self.starttls)
            .field("auth", &self.auth().collect::<Vec<_>>())
            .field("enhanced_status_codes", &self.enhanced_status_codes)
            .field("requiretls", &self.requiretls)
            .field("mt_priority", &self.mt_priority)
            .field("deliver_by", &self.deliver_by)
            .field("etrn", &self.etrn)
            .field("vrfy", &self.vrfy)
            .field("expn", &self.expn)
            .field("help", &self.help)
            .field("other", &self.other)
            .finish()
    }
}

/// The keywords with a typed field, in the order [`Capabilities::to_reply`] sends them
/// (Postfix's order, which clients are used to; RFC 5321 §4.1.1.1 imposes none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keyword {
    Pipelining,
    Size,
    Vrfy,
    Etrn,
    Expn,
    StartTls,
    Auth,
    EnhancedStatusCodes,
    EightBitMime,
    BinaryMime,
    Chunking,
    Dsn,
    SmtpUtf8,
    RequireTls,
    MtPriority,
    DeliverBy,
    Help,
}

impl Keyword {
    const ALL: [Keyword; 17] = [
        Keyword::Pipelining,
        Keyword::Size,
        Keyword::Vrfy,
        Keyword::Etrn,
        Keyword::Expn,
        Keyword::StartTls,
        Keyword::Auth,
        Keyword::EnhancedStatusCodes,
        Keyword::EightBitMime,
        Keyword::Dsn,
        Keyword::SmtpUtf8,
        Keyword::Chunking,
        Keyword::BinaryMime,
        Keyword::RequireTls,
        Keyword::MtPriority,
        Keyword::DeliverBy,
        Keyword::Help,
    ];

    const fn name(self) -> &'static str {
        match self {
            Keyword::Pipelining => "PIPELINING",
            Keyword::Size => "SIZE",
            Keyword::Vrfy => "VRFY",
            Keyword::Etrn => "ETRN",
            Keyword::Expn => "EXPN",
            Keyword::StartTls => "STARTTLS",
            Keyword::Auth => "AUTH",
            Keyword::EnhancedStatusCodes => "ENHANCEDSTATUSCODES",
            Keyword::EightBitMime => "8BITMIME",
            Keyword::BinaryMime => "BINARYMIME",
            Keyword::Chunking => "CHUNKING",
            Keyword::Dsn => "DSN",
            Keyword::SmtpUtf8 => "SMTPUTF8",
            Keyword::RequireTls => "REQUIRETLS",
            Keyword::MtPriority => "MT-PRIORITY",
            Keyword::DeliverBy => "DELIVERBY",
            Keyword::Help => "HELP",
        }
    }

    /// Case-insensitive lookup without allocating or a loop over octets: the word is read
    /// as 8-octet windows, folded to lower case eight octets at a time and compared with
    /// the names of its length, folded at compile time. Every line of every EHLO reply
    /// goes through here.
    fn lookup(word: &[u8]) -> Option<Keyword> {
        let head = match word.len() {
            3 => pack(&[word[0], word[1], word[2]]),
            4 => pack(&[word[0], word[1], word[2], word[3]]),
            8..=19 => window(word, 0),
            _ => return None,
        };
        Keyword::lookup_with_head(word, fold(head))
    }

    /// [`Keyword::lookup`] of `word`, given `eight`, the eight octets from the start of
    /// the word on (past its end when it is shorter), as one little-endian word: the
    /// octets the search for the word's end has already read.
    #[inline]
    fn lookup_eight(word: &[u8], eight: u64) -> Option<Keyword> {
        let n = word.len();
        let head = if n < 8 {
            eight & ((1 << (8 * n)) - 1)
        } else {
            eight
        };
        Keyword::lookup_with_head(word, fold(head))
    }

    /// [`Keyword::lookup`] with `head`, the word's first eight octets (zero-padded past its
    /// end) folded, already at hand.
    #[inline]
    fn lookup_with_head(word: &[u8], head: u64) -> Option<Keyword> {
        use Keyword::*;
        let n = word.len();
        // Names of eight octets or fewer are told apart by `head` alone.
        let found = match n {
            3 if head == const { short_key(Dsn) } => Dsn,
            4 if head == const { short_key(Size) } => Size,
            4 if head == const { short_key(Vrfy) } => Vrfy,
            4 if head == const { short_key(Etrn) } => Etrn,
            4 if head == const { short_key(Expn) } => Expn,
            4 if head == const { short_key(Auth) } => Auth,
            4 if head == const { short_key(Help) } => Help,
            8 if head == const { short_key(StartTls) } => StartTls,
            8 if head == const { short_key(SmtpUtf8) } => SmtpUtf8,
            8 if head == const { short_key(EightBitMime) } => EightBitMime,
            8 if head == const { short_key(Chunking) } => Chunking,
            9..=19 => {
                // Past eight octets, the last eight too, and for the one name longer than
                // sixteen the middle.
                let tail = fold(window(word, n - 8));
                let is = |(h, t): (u64, u64)| head == h && tail == t;
                match n {
                    9 if is(const { long_key(DeliverBy) }) => DeliverBy,
                    10 if is(const { long_key(Pipelining) }) => Pipelining,
                    10 if is(const { long_key(BinaryMime) }) => BinaryMime,
                    10 if is(const { long_key(RequireTls) }) => RequireTls,
                    11 if is(const { long_key(MtPriority) }) => MtPriority,
                    19 if is(const { long_key(EnhancedStatusCodes) })
                        && fold(window(word, 8))
                            == const { fold(window(EnhancedStatusCodes.name().as_bytes(), 8)) } =>
                    {
                        EnhancedStatusCodes
                    }
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(found)
    }
}

/// What [`Keyword::lookup`] compares a word of at most eight octets with.
const fn short_key(keyword: Keyword) -> u64 {
    fold(pack(keyword.name().as_bytes()))
}

/// What [`Keyword::lookup`] compares a word of more than eight octets with: its first and
/// last eight octets.
const fn long_key(keyword: Keyword) -> (u64, u64) {
    let name = keyword.name().as_bytes();
    (fold(window(name, 0)), fold(window(name, name.len() - 8)))
}

/// Octets `at..at + 8` of `bytes` as one little-endian word.
const fn window(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    let mut i = 0;
    while i < 8 {
        word[i] = bytes[at + i];
        i += 1;
    }
    u64::from_le_bytes(word)
}

/// Up to eight octets as one little-endian word, zero-padded.
const fn pack(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    let mut i = 0;
    while i < bytes.len() {
        word[i] = bytes[i];
        i += 1;
    }
    u64::from_le_bytes(word)
}

/// The eight octets of `word` with ASCII upper-case letters turned to lower case and
/// everything else untouched, without a branch (the 0x20 bit is set only where an octet
/// is 'A'..='Z', so a control character can never be taken for a digit).
const fn fold(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    // No octet overflows into the next: at most 0x7f + 0x3f.
    let low7 = word & !HIGH;
    let at_least_a = low7 + ONES * (0x80 - b'A' as u64);
    let above_z = low7 + ONES * (0x80 - b'Z' as u64 - 1);
    let upper = at_least_a & !above_z & !word & HIGH;
    word | (upper >> 2)
}

/// One line of an EHLO reply as the parser reads it: octets, in which words are found
/// eight at a time and keywords looked up, and text, for the words that are kept.
struct Line<'a> {
    /// The line's text, without code, separator or CRLF.
    bytes: &'a [u8],
    /// `bytes` and whatever follows them in the same buffer (the CRLF, the next lines),
    /// so that the last word of a line can be searched eight octets at a time too.
    readable: &'a [u8],
    /// The whole buffer as text and where `bytes` starts in it, when the buffer is UTF-8
    /// (nearly always: EHLO replies are ASCII). One check for the buffer instead of one
    /// per word kept.
    text: Option<(&'a str, usize)>,
}

impl<'a> Line<'a> {
    /// A line of a decoded [`Reply`].
    fn of_str(line: &'a str) -> Line<'a> {
        Line {
            bytes: line.as_bytes(),
            readable: line.as_bytes(),
            text: Some((line, 0)),
        }
    }

    /// The words from offset `at` of `bytes` on, as ranges of `bytes`.
    fn words(&self, at: usize) -> Words<'a> {
        Words {
            bytes: self.readable,
            end: self.bytes.len(),
            at,
        }
    }

    /// `bytes[range]` as text. As in [`Reply`], octets that are not UTF-8 are read
    /// lossily (U+FFFD), never refused. Converting word by word reads the same as
    /// converting the line and splitting it: a broken UTF-8 sequence never holds an ASCII
    /// octet, so neither white space nor any other separator can be lost or made up.
    #[inline]
    fn text(&self, range: Range<usize>) -> Cow<'a, str> {
        let whole = self
            .text
            .and_then(|(text, start)| text.get(start + range.start..start + range.end));
        match whole {
            Some(text) => Cow::Borrowed(text),
            None => String::from_utf8_lossy(&self.bytes[range]),
        }
    }
}

/// The words of a line, as ranges, split at ASCII white space the way
/// `str::split_ascii_whitespace` splits (runs count as one, no empty words); the ends of
/// words are found eight octets at a time.
struct Words<'a> {
    /// The line's text and what may follow it (see [`Line::readable`]).
    bytes: &'a [u8],
    /// The end of the line's text in `bytes`.
    end: usize,
    /// Where the next word may start.
    at: usize,
}

impl Iterator for Words<'_> {
    type Item = Range<usize>;

    #[inline(always)]
    fn next(&mut self) -> Option<Range<usize>> {
        let line = self.bytes.get(..self.end)?;
        let start = self.at
            + line
                .get(self.at..)?
                .iter()
                .position(|b| !b.is_ascii_whitespace())?;
        self.at = start + word_len(&self.bytes[start..], self.end - start);
        Some(start..self.at)
    }
}

/// The first word of a line and the keyword it names, found together in the common case:
/// the line starts with a word (not with white space) and eight octets can be read from
/// its start, in which the end of a short word and the octets to look up are both found
/// with one load. `None` leaves it to [`Words`] and [`Keyword::lookup`], which give the
/// same answer.
fn quick_keyword(line: &Line<'_>) -> Option<(Range<usize>, Option<Keyword>)> {
    let eight = load(line.readable.get(..8)?);
    let end = line.bytes.len();
    let low = below(eight, 0x21);
    let n = if low == 0 {
        // A word of more than eight octets, which all start it.
        8 + word_len(&line.readable[8..], end.checked_sub(8)?)
    } else {
        // The lowest mark is the first octet below 0x21.
        let n = (low.trailing_zeros() / 8) as usize;
        if n == 0 || n > end || !line.readable[n].is_ascii_whitespace() {
            // White space first, or a control character: the general path.
            return None;
        }
        n
    };
    Some((0..n, Keyword::lookup_eight(&line.bytes[..n], eight)))
}

/// The length of the word at the start of `bytes`: up to the first ASCII white space, or
/// `len` (at most `bytes.len()`), whichever comes first. White space octets are all below
/// 0x21, and a word rarely holds another octet that low (a control character), so eight
/// octets at a time are tested for one such, and only a hit is looked at.
#[inline]
fn word_len(bytes: &[u8], len: usize) -> usize {
    let mut at = 0;
    for eight in bytes.chunks_exact(8) {
        let mut low = below(load(eight), 0x21);
        while low != 0 {
            let i = (low.trailing_zeros() / 8) as usize;
            if at + i >= len || eight[i].is_ascii_whitespace() {
                return len.min(at + i);
            }
            low &= low - 1;
        }
        at += 8;
        if at >= len {
            return len;
        }
    }
    bytes[at..len]
        .iter()
        .position(u8::is_ascii_whitespace)
        .map_or(len, |i| at + i)
}

/// The offset of the first space in `bytes[..len]`, where `bytes` may go on past `len`:
/// how the domain ends on the first line. Searched eight octets at a time, like
/// [`word_len`], for an octet below 0x21 that is a space.
fn find_space(bytes: &[u8], len: usize) -> Option<usize> {
    let mut at = 0;
    for eight in bytes.chunks_exact(8) {
        let mut low = below(load(eight), 0x21);
        while low != 0 {
            let i = (low.trailing_zeros() / 8) as usize;
            if at + i >= len {
                return None;
            }
            if eight[i] == b' ' {
                return Some(at + i);
            }
            low &= low - 1;
        }
        at += 8;
        if at >= len {
            return None;
        }
    }
    bytes[at..len]
        .iter()
        .position(|&b| b == b' ')
        .map(|i| at + i)
}

/// A mark (0x80) on each of the eight octets of `eight` (little-endian) that is below `n`
/// (at most 0x80): a search eight octets at a time, for the short
/// lines of EHLO replies where a vector search costs more to set up than it saves. The
/// lowest mark is exact; marks above it may be false, so any octet found past the first
/// must be checked.
fn below(eight: u64, n: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    eight.wrapping_sub(ONES * u64::from(n)) & !eight & (ONES * 0x80)
}

/// Eight octets as one little-endian word (`eight` holds eight; anything else reads as
/// octets that are never below anything).
fn load(eight: &[u8]) -> u64 {
    u64::from_le_bytes(eight.try_into().unwrap_or([0xff; 8]))
}

/// ```text
/// ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
/// ```
/// (RFC 5321 §4.1.1.1).
fn is_ehlo_keyword(word: &[u8]) -> bool {
    word.first().is_some_and(u8::is_ascii_alphanumeric)
        && word.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// ```text
/// ehlo-param = 1*(%d33-126)
/// ```
/// (RFC 5321 §4.1.1.1): printable ASCII, no space. What the builder accepts; the parser
/// keeps whatever a whitespace-separated word holds, so as not to drop a server's oddities.
fn is_ehlo_param(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| (33..=126).contains(&b))
}

fn has_control(text: &str) -> bool {
    text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// A parameter checked for the builder: CR, LF and NUL are control characters, anything
/// else outside `ehlo-param` is a grammar error.
fn check_param(param: &str) -> Result<(), BuildError> {
    if has_control(param) {
        Err(BuildError::ControlCharacter)
    } else if is_ehlo_param(param) {
        Ok(())
    } else {
        Err(BuildError::Argument)
    }
}

/// A decimal number made of digits only (no sign, no space); `None` on overflow.
fn number(word: &[u8]) -> Option<u64> {
    if word.is_empty() {
        return None;
    }
    word.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

impl Capabilities {
    /// Capabilities of a server named `domain`, announcing nothing yet.
    ///
    /// `domain` must be non-empty and hold no space or control character: it is the first
    /// word of the reply (RFC 5321 §4.1.1.1).
    pub fn new(domain: impl Into<String>) -> Result<Capabilities, BuildError> {
        let domain = domain.into();
        if has_control(&domain) {
            return Err(BuildError::ControlCharacter);
        }
        if domain.is_empty() || domain.bytes().any(|b| b == b' ' || b.is_ascii_control()) {
            return Err(BuildError::Argument);
        }
        Ok(Capabilities::empty(domain))
    }

    /// A server named `domain`, without greeting, announcing nothing.
    fn empty(domain: String) -> Capabilities {
        Capabilities {
            domain_len: domain.len(),
            first_line: domain,
            pipelining: false,
            size: None,
            eight_bit_mime: false,
            binary_mime: false,
            chunking: false,
            smtputf8: false,
            dsn: false,
            starttls: false,
            auth: String::new(),
            enhanced_status_codes: false,
            requiretls: false,
            mt_priority: None,
            deliver_by: None,
            etrn: false,
            vrfy: false,
            expn: false,
            help: false,
            other: Vec::new(),
        }
    }

    /// The server's name, the first word of the reply.
    pub fn domain(&self) -> &str {
        &self.first_line[..self.domain_len]
    }

    /// The free text after the domain on the first line (`ehlo-greet`), empty when none.
    pub fn greeting(&self) -> &str {
        self.first_line.get(self.domain_len + 1..).unwrap_or("")
    }

    /// Sets the text after the domain; it must not contain CR, LF or NUL.
    pub fn set_greeting(&mut self, greeting: impl Into<String>) -> Result<&mut Self, BuildError> {
        let greeting = greeting.into();
        if has_control(&greeting) {
            return Err(BuildError::ControlCharacter);
        }
        self.put_greeting(&greeting);
        Ok(self)
    }

    fn put_greeting(&mut self, greeting: &str) {
        self.first_line.truncate(self.domain_len);
        if !greeting.is_empty() {
            self.first_line.push(' ');
            self.first_line.push_str(greeting);
        }
    }

    /// The SASL mechanisms of AUTH (RFC 4954 §3), upper-case, each once, in the order
    /// first announced; none when AUTH is not announced (or announced with no mechanism,
    /// which offers nothing to use).
    ///
    /// ```
    /// use smtp_proto::ehlo::Capabilities;
    /// let caps = Capabilities::parse(b"250-mx\r\n250 AUTH plain LOGIN\r\n").unwrap();
    /// assert_eq!(caps.auth().collect::<Vec<_>>(), ["PLAIN", "LOGIN"]);
    /// ```
    pub fn auth(&self) -> std::str::SplitAsciiWhitespace<'_> {
        self.auth.split_ascii_whitespace()
    }

    /// Announces a SASL mechanism. Names are case-insensitive (RFC 4954 §3) and stored
    /// upper-case; adding one twice keeps one. It must be an `ehlo-param`: printable
    /// ASCII, no space.
    pub fn add_auth(&mut self, mechanism: &str) -> Result<&mut Self, BuildError> {
        check_param(mechanism)?;
        self.push_auth(mechanism);
        Ok(self)
    }

    /// Stops announcing AUTH (say, before STARTTLS, when passwords must not travel in
    /// plaintext, RFC 4954 §4).
    pub fn clear_auth(&mut self) -> &mut Self {
        self.auth.clear();
        self
    }

    /// Adds a mechanism unless it is there already, allocating only for a new one.
    fn push_auth(&mut self, mechanism: &str) {
        // The same test as `supports_auth`: every name is stored upper-case, so only the
        // new one needs folding.
        let (list, new) = (self.auth.as_bytes(), mechanism.as_bytes());
        let mut known = false;
        let mut i = 0;
        while i < list.len() {
            let end = list[i..]
                .iter()
                .position(|&b| b == b' ')
                .map_or(list.len(), |n| i + n);
            if end - i == new.len()
                && list[i..end]
                    .iter()
                    .zip(new)
                    .all(|(k, m)| *k == m.to_ascii_uppercase())
            {
                known = true;
                break;
            }
            i = end + 1;
        }
        if !known {
            if self.auth.capacity() == 0 {
                // Room for the usual few mechanisms in one allocation, without the
                // general growth path.
                self.auth = String::with_capacity(32);
            } else {
                self.auth.push(' ');
            }
            let start = self.auth.len();
            self.auth.push_str(mechanism);
            self.auth[start..].make_ascii_uppercase();
        }
    }

    /// MT-PRIORITY (RFC 6710 §3): `None` when not announced, else the priority
    /// assignment policy name if one was given (`MIXER`, `STANAG4406`, `NSEP`).
    pub fn mt_priority(&self) -> Option<Option<&str>> {
        self.mt_priority.as_ref().map(Option::as_deref)
    }

    /// Sets MT-PRIORITY: `None` to not announce it, `Some(None)` without a policy name,
    /// `Some(Some(name))` with one, which must be an `ehlo-param`.
    pub fn set_mt_priority(
        &mut self,
        value: Option<Option<&str>>,
    ) -> Result<&mut Self, BuildError> {
        if let Some(Some(policy)) = value {
            check_param(policy)?;
        }
        self.mt_priority = value.map(|policy| policy.map(str::to_owned));
        Ok(self)
    }

    /// Keywords without a typed field, upper-case, with their parameters as sent, in the
    /// order announced. Kept so that a client can act on extensions this crate does not
    /// know (`XCLIENT`, `X-EXPS`, ...) and a server can announce them.
    pub fn other(&self) -> &[(String, Vec<String>)] {
        &self.other
    }

    /// The parameters of the first unknown `keyword` (case-insensitive), if announced.
    pub fn other_params(&self, keyword: &str) -> Option<&[String]> {
        self.other
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
            .map(|(_, params)| params.as_slice())
    }

    /// Announces an extension without a typed field. The keyword must follow
    /// `ehlo-keyword` and not be one with a typed field (set that field instead, so that
    /// the value reads back the same); each parameter must be an `ehlo-param`.
    pub fn add_other<I, S>(&mut self, keyword: &str, params: I) -> Result<&mut Self, BuildError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if has_control(keyword) {
            return Err(BuildError::ControlCharacter);
        }
        if !is_ehlo_keyword(keyword.as_bytes()) || Keyword::lookup(keyword.as_bytes()).is_some() {
            return Err(BuildError::Argument);
        }
        let params = params
            .into_iter()
            .map(|param| {
                let param = param.into();
                check_param(&param).map(|()| param)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.other.push((keyword.to_ascii_uppercase(), params));
        Ok(self)
    }

    /// Whether `keyword` (case-insensitive) was announced. AUTH counts only with at least
    /// one mechanism.
    pub fn has(&self, keyword: &str) -> bool {
        match Keyword::lookup(keyword.as_bytes()) {
            Some(known) => self.has_known(known),
            None => self.other_params(keyword).is_some(),
        }
    }

    fn has_known(&self, keyword: Keyword) -> bool {
        match keyword {
            Keyword::Pipelining => self.pipelining,
            Keyword::Size => self.size.is_some(),
            Keyword::Vrfy => self.vrfy,
            Keyword::Etrn => self.etrn,
            Keyword::Expn => self.expn,
            Keyword::StartTls => self.starttls,
            Keyword::Auth => !self.auth.is_empty(),
            Keyword::EnhancedStatusCodes => self.enhanced_status_codes,
            Keyword::EightBitMime => self.eight_bit_mime,
            Keyword::BinaryMime => self.binary_mime,
            Keyword::Chunking => self.chunking,
            Keyword::Dsn => self.dsn,
            Keyword::SmtpUtf8 => self.smtputf8,
            Keyword::RequireTls => self.requiretls,
            Keyword::MtPriority => self.mt_priority.is_some(),
            Keyword::DeliverBy => self.deliver_by.is_some(),
            Keyword::Help => self.help,
        }
    }

    /// Whether AUTH offers `mechanism` (case-insensitive, RFC 4954 §3).
    pub fn supports_auth(&self, mechanism: &str) -> bool {
        self.auth().any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// The fixed message size limit in octets, if the server declared one: SIZE with a
    /// number above zero. SIZE 0 and SIZE alone mean "no fixed maximum" (RFC 1870 §4).
    pub fn size_limit(&self) -> Option<u64> {
        self.size.flatten().filter(|&n| n > 0)
    }

    /// Reads the capabilities from an EHLO or LHLO reply.
    ///
    /// The first line is the domain and an optional greeting; each further line is
    /// `keyword *(SP param)` (RFC 5321 §4.1.1.1). Lenient where leniency cannot mislead:
    /// runs of spaces (or tabs) separate like one space, empty lines and lines that do not start with an
    /// `ehlo-keyword` are skipped (a client ignores what it does not understand), the
    /// pre-RFC 4954 `AUTH=PLAIN LOGIN` form still sent for old Outlook clients is merged
    /// into [`Capabilities::auth`], and for a keyword with a typed value announced twice
    /// the first value wins.
    pub fn from_reply(reply: &Reply) -> Result<Capabilities, EhloError> {
        if reply.code() != ReplyCode::OK {
            return Err(EhloError::NotOk(reply.code()));
        }
        let lines = reply.lines();
        let mut caps = Capabilities::from_first_line(&Line::of_str(&lines[0]))?;
        for line in &lines[1..] {
            caps.ehlo_line(&Line::of_str(line));
        }
        Ok(caps)
    }

    /// The capabilities a client reads from any positive reply to EHLO or LHLO. RFC 5321
    /// §4.2 makes the text after the code optional, so `250\r\n` is a successful EHLO
    /// that announces nothing: a first line without a domain gives an empty
    /// [`Capabilities::domain`], and the lines after it are read as usual.
    pub(crate) fn from_positive_reply(reply: &Reply) -> Capabilities {
        let lines = reply.lines();
        let mut caps = lines
            .first()
            .and_then(|first| Capabilities::from_first_line(&Line::of_str(first)).ok())
            .unwrap_or_else(|| Capabilities::empty(String::new()));
        for line in lines.iter().skip(1) {
            caps.ehlo_line(&Line::of_str(line));
        }
        caps
    }

    /// Reads the capabilities straight from the bytes of one complete EHLO or LHLO reply,
    /// with the default [`ReplyLimits`]: the same result as [`Reply::parse`] followed by
    /// [`Capabilities::from_reply`], without building the intermediate [`Reply`] (no
    /// allocation per line), for hosts that frame replies themselves and for benchmarks.
    ///
    /// ```
    /// use smtp_proto::ehlo::Capabilities;
    /// let caps = Capabilities::parse(b"250-mx.example.org\r\n250 STARTTLS\r\n").unwrap();
    /// assert!(caps.starttls);
    /// ```
    pub fn parse(input: &[u8]) -> Result<Capabilities, EhloError> {
        fast::parse(input).map_or_else(|| Capabilities::parse_full(input), Ok)
    }

    /// [`Capabilities::parse`] for any input; [`fast::parse`] reads the common shape
    /// faster, and agrees with this.
    fn parse_full(input: &[u8]) -> Result<Capabilities, EhloError> {
        let mut reader = LineReader::new(ReplyLimits::default());
        // One UTF-8 check for the whole reply; the words kept are slices of it.
        let whole = std::str::from_utf8(input).ok();
        // Framing errors anywhere win over what the lines say, as with `Reply::parse`.
        let mut caps: Result<Option<Capabilities>, EhloError> = Ok(None);
        loop {
            let line = reader.next_line(input)?.ok_or(ReplyError::Incomplete)?;
            // The text ends the line, just before its CRLF.
            let start = line.end - 2 - line.text.len();
            let text = Line {
                bytes: line.text,
                readable: &input[start..],
                text: whole.map(|whole| (whole, start)),
            };
            match &mut caps {
                Ok(Some(caps)) => caps.ehlo_line(&text),
                Ok(None) if line.code != ReplyCode::OK => caps = Err(EhloError::NotOk(line.code)),
                Ok(None) => caps = Capabilities::from_first_line(&text).map(Some),
                // The first line decided; the rest is only read for framing errors.
                Err(_) => {}
            }
            if line.last {
                if line.end != input.len() {
                    return Err(ReplyError::TrailingBytes.into());
                }
                return caps.and_then(|caps| caps.ok_or(EhloError::MissingDomain));
            }
        }
    }

    /// ```text
    /// "250" ( SP / "-" ) Domain [ SP ehlo-greet ]
    /// ```
    /// (RFC 5321 §4.1.1.1), after the code: leading spaces are skipped, the domain runs to
    /// the next space, the greeting is the rest.
    fn from_first_line(line: &Line<'_>) -> Result<Capabilities, EhloError> {
        let bytes = line.bytes;
        let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
        let space = find_space(&line.readable[start..], bytes.len() - start);
        let (domain, greeting) = match space {
            Some(space) => (start..start + space, start + space + 1..bytes.len()),
            None => (start..bytes.len(), bytes.len()..bytes.len()),
        };
        if domain.is_empty() {
            return Err(EhloError::MissingDomain);
        }
        let domain_text = line.text(domain.clone());
        if greeting.is_empty() {
            return Ok(Capabilities::empty(domain_text.into_owned()));
        }
        // Domain, space and greeting as one string; read lossily, they read the same as
        // when read apart, split at an ASCII space.
        let domain_len = domain_text.len();
        let mut caps = Capabilities::empty(line.text(domain.start..greeting.end).into_owned());
        caps.domain_len = domain_len;
        Ok(caps)
    }

    /// ```text
    /// ehlo-line = ehlo-keyword *( SP ehlo-param )
    /// ```
    /// (RFC 5321 §4.1.1.1), applied to the capabilities. Read as octets: only the words
    /// kept become text (see [`Line::text`]).
    fn ehlo_line(&mut self, line: &Line<'_>) {
        // No `ehlo-param` holds white space, so splitting at any of it reads the same
        // and tolerates tabs and runs of spaces.
        let (first, known) = match quick_keyword(line) {
            Some(found) => found,
            None => {
                let Some(first) = line.words(0).next() else {
                    return;
                };
                let known = Keyword::lookup(&line.bytes[first.clone()]);
                (first, known)
            }
        };
        self.keyword_line(line, first, known);
    }

    /// [`Capabilities::ehlo_line`] once the keyword is found: `first`, the range of the
    /// line's first word, names the keyword `known`.
    #[inline]
    fn keyword_line(&mut self, line: &Line<'_>, first: Range<usize>, known: Option<Keyword>) {
        if let Some(flag) = known.and_then(|known| self.flag_mut(known)) {
            // Whatever parameters come with a flag are ignored.
            *flag = true;
            return;
        }
        let mut words = line.words(first.end);
        let keyword = &line.bytes[first.clone()];
        let Some(known) = known else {
            if keyword.len() > 5 && keyword[..5].eq_ignore_ascii_case(b"AUTH=") {
                // `AUTH=LOGIN PLAIN`: the first mechanism is glued to the keyword.
                self.push_auth(&line.text(first.start + 5..first.end));
                words.for_each(|mechanism| self.push_auth(&line.text(mechanism)));
            } else if is_ehlo_keyword(keyword) {
                let params = words.map(|param| line.text(param).into_owned()).collect();
                self.other
                    .push((line.text(first).to_ascii_uppercase(), params));
            }
            return;
        };
        // For a value announced twice, the first wins.
        match known {
            Keyword::Size if self.size.is_none() => {
                self.size = Some(words.next().and_then(|n| number(&line.bytes[n])));
            }
            Keyword::Auth => words.for_each(|mechanism| self.push_auth(&line.text(mechanism))),
            Keyword::MtPriority if self.mt_priority.is_none() => {
                self.mt_priority = Some(words.next().map(|policy| line.text(policy).into_owned()));
            }
            Keyword::DeliverBy if self.deliver_by.is_none() => {
                self.deliver_by = Some(words.next().and_then(|n| number(&line.bytes[n])));
            }
            // Values announced before, and flags, set above.
            _ => {}
        }
    }

    /// The field of a keyword that is a flag, announced alone; `None` for the keywords
    /// with parameters (SIZE, AUTH, MT-PRIORITY, DELIVERBY).
    #[inline]
    fn flag_mut(&mut self, keyword: Keyword) -> Option<&mut bool> {
        Some(match keyword {
            Keyword::Pipelining => &mut self.pipelining,
            Keyword::Vrfy => &mut self.vrfy,
            Keyword::Etrn => &mut self.etrn,
            Keyword::Expn => &mut self.expn,
            Keyword::StartTls => &mut self.starttls,
            Keyword::EnhancedStatusCodes => &mut self.enhanced_status_codes,
            Keyword::EightBitMime => &mut self.eight_bit_mime,
            Keyword::BinaryMime => &mut self.binary_mime,
            Keyword::Chunking => &mut self.chunking,
            Keyword::Dsn => &mut self.dsn,
            Keyword::SmtpUtf8 => &mut self.smtputf8,
            Keyword::RequireTls => &mut self.requiretls,
            Keyword::Help => &mut self.help,
            Keyword::Size | Keyword::Auth | Keyword::MtPriority | Keyword::DeliverBy => {
                return None;
            }
        })
    }

    /// The 250 reply announcing these capabilities: the domain line, then one line per
    /// announced keyword, upper-case, known ones first in a fixed order, then the others
    /// in the order added (RFC 5321 §4.1.1.1). Lines are not wrapped: keep AUTH lists and
    /// other parameters within the 512-octet line limit (RFC 5321 §4.5.3.1.5).
    pub fn to_reply(&self) -> Reply {
        let mut lines: Vec<Cow<'static, str>> = Vec::with_capacity(1 + Keyword::ALL.len());
        lines.push(Cow::Owned(self.first_line.clone()));
        for keyword in Keyword::ALL {
            if !self.has_known(keyword) {
                continue;
            }
            let name = keyword.name();
            let value: Option<String> = match keyword {
                Keyword::Size => self.size.flatten().map(|n| n.to_string()),
                Keyword::DeliverBy => self.deliver_by.flatten().map(|n| n.to_string()),
                Keyword::MtPriority => self.mt_priority.clone().flatten(),
                Keyword::Auth => Some(self.auth.clone()),
                _ => None,
            };
            lines.push(match value {
                Some(value) => Cow::Owned(format!("{name} {value}")),
                None => Cow::Borrowed(name),
            });
        }
        for (keyword, params) in &self.other {
            let mut line = keyword.clone();
            for param in params {
                line.push(' ');
                line.push_str(param);
            }
            lines.push(Cow::Owned(line));
        }
        // Every part was checked by the builder or came out of a decoded reply, so no
        // line holds CR, LF or NUL.
        Reply::from_parts(ReplyCode::OK, None, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both ways of reading capabilities from bytes, which must agree.
    fn caps(input: &[u8]) -> Result<Capabilities, EhloError> {
        let via_reply = Reply::parse(input)
            .map_err(EhloError::from)
            .and_then(|reply| Capabilities::from_reply(&reply));
        assert_eq!(
            Capabilities::parse(input),
            via_reply,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        via_reply
    }

    /// The text of an EHLO line: keywords in any case, parameters, AUTH in both forms,
    /// runs of spaces and tabs, control characters, octets that are not UTF-8.
    fn ehlo_text() -> impl Strategy<Value = Vec<u8>> {
        let piece = proptest::sample::select(vec![
            &b" "[..],
            b"  ",
            b"\t",
            b"\x0b",
            b"\x0c",
            b"\x01",
            b"\x18",
            b"AUTH",
            b"auth",
            b"AUTH=",
            b"Auth=Login",
            b"PLAIN",
            b"plain",
            b"CRAM-MD5",
            b"SIZE",
            b"size",
            b"0",
            b"1234",
            b"99999999999999999999",
            b"+5",
            b"PIPELINING",
            b"pipelininG",
            b"8BITMIME",
            b"\x188BITMIME",
            b"DSN",
            b"dsn",
            b"ENHANCEDSTATUSCODES",
            b"enhancedSTATUScodes",
            b"MT-PRIORITY",
            b"MIXER",
            b"DELIVERBY",
            b"STARTTLS",
            b"SMTPUTF8",
            b"HELP",
            b"X-EXPS",
            b"x-link2state",
            b"-x",
            b"=junk",
            b"mx.example.org",
            b"\xc3\xa9",
            b"\xff",
            b"\xc3",
        ])
        .prop_map(<[u8]>::to_vec);
        let piece = prop_oneof![
            6 => piece,
            1 => "[ -~]{0,10}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..4),
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    /// `from_reply` as it was written on text before it read octets: the model the octet
    /// reader must agree with.
    mod reference {
        use super::*;

        pub(super) fn from_reply(reply: &Reply) -> Result<Capabilities, EhloError> {
            if reply.code() != ReplyCode::OK {
                return Err(EhloError::NotOk(reply.code()));
            }
            let first = reply.lines()[0].trim_start_matches(' ');
            let (domain, greeting) = first.split_once(' ').unwrap_or((first, ""));
            if domain.is_empty() {
                return Err(EhloError::MissingDomain);
            }
            let mut caps = Capabilities::empty(domain.to_owned());
            caps.put_greeting(greeting);
            for line in &reply.lines()[1..] {
                ehlo_line(&mut caps, line);
            }
            Ok(caps)
        }

        fn push_auth(caps: &mut Capabilities, mechanism: &str) {
            if !caps.supports_auth(mechanism) {
                if !caps.auth.is_empty() {
                    caps.auth.push(' ');
                }
                caps.auth.push_str(&mechanism.to_ascii_uppercase());
            }
        }

        fn number(word: &str) -> Option<u64> {
            if word.bytes().all(|b| b.is_ascii_digit()) {
                word.parse().ok()
            } else {
                None
            }
        }

        fn ehlo_line(caps: &mut Capabilities, line: &str) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                return;
            };
            let known = Keyword::ALL
                .into_iter()
                .find(|k| k.name().eq_ignore_ascii_case(keyword));
            let Some(known) = known else {
                if keyword.len() > 5 && keyword.as_bytes()[..5].eq_ignore_ascii_case(b"AUTH=") {
                    push_auth(caps, &keyword[5..]);
                    words.for_each(|mechanism| push_auth(caps, mechanism));
                } else if is_ehlo_keyword(keyword.as_bytes()) {
                    let params = words.map(str::to_owned).collect();
                    caps.other.push((keyword.to_ascii_uppercase(), params));
                }
                return;
            };
            match known {
                Keyword::Pipelining => caps.pipelining = true,
                Keyword::Size if caps.size.is_none() => {
                    caps.size = Some(words.next().and_then(number))
                }
                Keyword::Vrfy => caps.vrfy = true,
                Keyword::Etrn => caps.etrn = true,
                Keyword::Expn => caps.expn = true,
                Keyword::StartTls => caps.starttls = true,
                Keyword::Auth => words.for_each(|mechanism| push_auth(caps, mechanism)),
                Keyword::EnhancedStatusCodes => caps.enhanced_status_codes = true,
                Keyword::EightBitMime => caps.eight_bit_mime = true,
                Keyword::BinaryMime => caps.binary_mime = true,
                Keyword::Chunking => caps.chunking = true,
                Keyword::Dsn => caps.dsn = true,
                Keyword::SmtpUtf8 => caps.smtputf8 = true,
                Keyword::RequireTls => caps.requiretls = true,
                Keyword::MtPriority if caps.mt_priority.is_none() => {
                    caps.mt_priority = Some(words.next().map(str::to_owned));
                }
                Keyword::DeliverBy if caps.deliver_by.is_none() => {
                    caps.deliver_by = Some(words.next().and_then(number));
                }
                Keyword::Help => caps.help = true,
                Keyword::Size | Keyword::MtPriority | Keyword::DeliverBy => {}
            }
        }
    }

    const POSTFIX: &[u8] = b"250-mail.example.com\r\n\
        250-PIPELINING\r\n\
        250-SIZE 10240000\r\n\
        250-ETRN\r\n\
        250-STARTTLS\r\n\
        250-AUTH PLAIN LOGIN\r\n\
        250-AUTH=PLAIN LOGIN\r\n\
        250-ENHANCEDSTATUSCODES\r\n\
        250-8BITMIME\r\n\
        250-DSN\r\n\
        250-SMTPUTF8\r\n\
        250 CHUNKING\r\n";

    const GMAIL: &[u8] = b"250-smtp.gmail.com at your service, [203.0.113.7]\r\n\
        250-SIZE 35882577\r\n\
        250-8BITMIME\r\n\
        250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n\
        250-ENHANCEDSTATUSCODES\r\n\
        250-PIPELINING\r\n\
        250-CHUNKING\r\n\
        250 SMTPUTF8\r\n";

    #[test]
    fn postfix() {
        let caps = caps(POSTFIX).unwrap();
        assert_eq!(Reply::parse(POSTFIX).unwrap().lines().len(), 12);
        assert_eq!((caps.domain(), caps.greeting()), ("mail.example.com", ""));
        assert!(caps.pipelining && caps.etrn && caps.starttls && caps.enhanced_status_codes);
        assert!(caps.eight_bit_mime && caps.dsn && caps.smtputf8 && caps.chunking);
        assert!(!caps.vrfy && !caps.binary_mime && !caps.requiretls && !caps.help);
        assert_eq!(caps.size, Some(Some(10_240_000)));
        // Both AUTH forms merged, each mechanism once (RFC 4954 §3).
        assert_eq!(caps.auth().collect::<Vec<_>>(), ["PLAIN", "LOGIN"]);
        assert!(caps.other().is_empty());
        assert_eq!(Capabilities::from_reply(&caps.to_reply()), Ok(caps));
    }

    #[test]
    fn gmail() {
        let caps = caps(GMAIL).unwrap();
        assert_eq!(caps.domain(), "smtp.gmail.com");
        assert_eq!(caps.greeting(), "at your service, [203.0.113.7]");
        assert_eq!(caps.size_limit(), Some(35_882_577));
        assert_eq!(
            caps.auth().collect::<Vec<_>>(),
            [
                "LOGIN",
                "PLAIN",
                "XOAUTH2",
                "PLAIN-CLIENTTOKEN",
                "OAUTHBEARER",
                "XOAUTH"
            ]
        );
        assert!(caps.supports_auth("xoauth2") && !caps.supports_auth("CRAM-MD5"));
        assert!(caps.pipelining && caps.chunking && caps.smtputf8 && !caps.starttls && !caps.dsn);
        assert_eq!(Capabilities::from_reply(&caps.to_reply()), Ok(caps));
    }

    /// `has!(input => check)`: the reply parses, `check` holds, and the value round-trips.
    macro_rules! has {
        ($input:expr => $check:expr) => {
            check_caps($input, $check)
        };
    }

    fn check_caps(input: &[u8], check: fn(&Capabilities) -> bool) {
        let shown = String::from_utf8_lossy(input);
        let caps = caps(input).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
        assert!(check(&caps), "{shown:?}: {caps:?}");
        assert_eq!(
            Capabilities::from_reply(&caps.to_reply()),
            Ok(caps),
            "{shown:?}"
        );
    }

    #[test]
    #[rustfmt::skip]
    fn keywords() {
        has!(b"250-mx\r\n250 pipelining\r\n" => |c| c.pipelining); // RFC 5321 §2.4 case-insensitive
        has!(b"250-mx\r\n250 SIZE\r\n" => |c| c.size == Some(None) && c.size_limit().is_none()); // RFC 1870 §4
        has!(b"250-mx\r\n250 SIZE 0\r\n" => |c| c.size == Some(Some(0)) && c.size_limit().is_none()); // RFC 1870 §4
        has!(b"250-mx\r\n250 SIZE big\r\n" => |c| c.size == Some(None)); // RFC 1870 §4 not a number
        has!(b"250-mx\r\n250 SIZE +5\r\n" => |c| c.size == Some(None)); // RFC 1870 §4 digits only
        has!(b"250-mx\r\n250 SIZE 99999999999999999999\r\n" => |c| c.size == Some(None)); // overflow
        has!(b"250-mx\r\n250-SIZE 1\r\n250 SIZE 2\r\n" => |c| c.size == Some(Some(1))); // first wins
        has!(b"250-mx\r\n250 AUTH=LOGIN PLAIN\r\n" => |c| c.auth().collect::<Vec<_>>() == ["LOGIN", "PLAIN"]); // pre-RFC 4954 form
        has!(b"250-mx\r\n250 auth=login\r\n" => |c| c.auth().collect::<Vec<_>>() == ["LOGIN"]); // old form, lower case
        has!(b"250-mx\r\n250 AUTH\r\n" => |c| c.auth().next().is_none() && !c.has("AUTH")); // RFC 4954 §3 no mechanism
        has!(b"250-mx\r\n250 AUTH  cram-md5   plain\r\n" => |c| c.auth().collect::<Vec<_>>() == ["CRAM-MD5", "PLAIN"]); // runs of spaces
        has!(b"250-mx\r\n250 8bitmime\r\n" => |c| c.eight_bit_mime); // RFC 6152
        has!(b"250-mx\r\n250 BINARYMIME\r\n" => |c| c.binary_mime); // RFC 3030
        has!(b"250-mx\r\n250 REQUIRETLS\r\n" => |c| c.requiretls); // RFC 8689
        has!(b"250-mx\r\n250 MT-PRIORITY MIXER\r\n" => |c| c.mt_priority() == Some(Some("MIXER"))); // RFC 6710 §3
        has!(b"250-mx\r\n250 MT-PRIORITY\r\n" => |c| c.mt_priority() == Some(None)); // RFC 6710 §3
        has!(b"250-mx\r\n250 DELIVERBY 240\r\n" => |c| c.deliver_by == Some(Some(240))); // RFC 2852 §4
        has!(b"250-mx\r\n250 DELIVERBY\r\n" => |c| c.deliver_by == Some(None)); // RFC 2852 §4
        has!(b"250-mx\r\n250-VRFY\r\n250-EXPN\r\n250 HELP\r\n" => |c| c.vrfy && c.expn && c.help); // RFC 5321 §3.5
        has!(b"250-mx\r\n250 PIPELINING extra\r\n" => |c| c.pipelining && c.other().is_empty()); // stray parameter
        has!(b"250-mx\r\n250 XCLIENT NAME ADDR\r\n" => |c| c.other_params("xclient") == Some(&["NAME".into(), "ADDR".into()][..])); // unknown kept
        has!(b"250-mx\r\n250 x-exps GSSAPI NTLM\r\n" => |c| c.other() == [("X-EXPS".into(), vec!["GSSAPI".into(), "NTLM".into()])]); // upper-cased keyword
        has!(b"250-mx\r\n250 X-LINK2STATE\r\n" => |c| c.has("x-link2state") && !c.has("X-LINK")); // RFC 5321 §4.1.1.1
        has!(b"250-mx\r\n250-\r\n250 ok\r\n" => |c| c.other().len() == 1); // empty line skipped
        has!(b"250-mx\r\n250 =junk\r\n" => |c| c.other().is_empty()); // RFC 5321 §4.1.1.1 not a keyword: skipped
        has!(b"250 mx\r\n" => |c| c.domain() == "mx" && !c.has("SIZE")); // RFC 5321 §4.1.1.1 one-line reply
        has!(b"250  mx  hi\r\n" => |c| c.domain() == "mx" && c.greeting() == " hi"); // leading spaces
        has!(b"250-2.0.0 mx hi\r\n250 2.0.0 DSN\r\n" => |c| c.domain() == "mx" && c.dsn); // RFC 2034 §4 stripped
    }

    #[test]
    #[rustfmt::skip]
    fn errors() {
        let cases: &[(&[u8], EhloError)] = &[
            (b"502 5.5.1 no EHLO\r\n", EhloError::NotOk(ReplyCode::NOT_IMPLEMENTED)), // RFC 5321 §4.1.1.1
            (b"220 mx\r\n", EhloError::NotOk(ReplyCode::SERVICE_READY)), // §4.1.1.1 only 250
            (b"250\r\n", EhloError::MissingDomain), // §4.1.1.1 Domain required
            (b"250-\r\n250 SIZE\r\n", EhloError::MissingDomain), // §4.1.1.1
            (b"250   \r\n", EhloError::MissingDomain), // spaces only
            (b"250-mx\r\n250 SIZE", EhloError::Reply(ReplyError::Incomplete)), // RFC 5321 §4.2 CRLF ends a line
            (b"250-mx\r\n250 SIZE\n", EhloError::Reply(ReplyError::BareLf)), // RFC 5321 §2.3.8
            (b"250-mx\r\n251 SIZE\r\n", EhloError::Reply(ReplyError::CodeMismatch { expected: ReplyCode::OK, found: ReplyCode::USER_NOT_LOCAL })), // §4.2.1
            (b"550-no\r\n250 SIZE\r\n", EhloError::Reply(ReplyError::CodeMismatch { expected: ReplyCode::MAILBOX_UNAVAILABLE, found: ReplyCode::OK })), // framing first
            (b"250 mx\r\n250 mx\r\n", EhloError::Reply(ReplyError::TrailingBytes)), // one reply only
        ];
        for (input, error) in cases {
            assert_eq!(caps(input), Err(*error), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn every_keyword_is_found() {
        for keyword in Keyword::ALL {
            let name = keyword.name().as_bytes();
            assert_eq!(Keyword::lookup(name), Some(keyword));
            assert_eq!(Keyword::lookup(&name.to_ascii_lowercase()), Some(keyword));
            assert_eq!(Keyword::lookup(&name[1..]), None);
            assert_eq!(Keyword::lookup(&[name, b"X"].concat()), None);
            // Octets one bit away from the name's (0x20: case, 0x80: not ASCII) match
            // only when that bit is the case of a letter.
            for i in 0..name.len() {
                for bit in [0x20, 0x80] {
                    let mut near = name.to_vec();
                    near[i] ^= bit;
                    let found = Keyword::lookup(&near);
                    let expected =
                        (bit == 0x20 && name[i].is_ascii_alphabetic()).then_some(keyword);
                    assert_eq!(found, expected, "{:?}", String::from_utf8_lossy(&near));
                }
            }
        }
    }

    #[test]
    fn builder_validates() {
        let mut caps = Capabilities::new("mx.example.org").unwrap();
        assert_eq!(Capabilities::new(""), Err(BuildError::Argument));
        assert_eq!(Capabilities::new("mx example"), Err(BuildError::Argument));
        assert_eq!(
            Capabilities::new("mx\r\n250 x"),
            Err(BuildError::ControlCharacter)
        );
        assert_eq!(
            caps.set_greeting("hi\r\n").err(),
            Some(BuildError::ControlCharacter)
        );
        assert_eq!(caps.add_auth("PL AIN").err(), Some(BuildError::Argument));
        assert_eq!(caps.add_auth("").err(), Some(BuildError::Argument));
        assert_eq!(
            caps.add_auth("X\0").err(),
            Some(BuildError::ControlCharacter)
        );
        assert_eq!(
            caps.add_other("X FOO", [""; 0]).err(),
            Some(BuildError::Argument)
        );
        assert_eq!(
            caps.add_other("-X", [""; 0]).err(),
            Some(BuildError::Argument)
        );
        assert_eq!(
            caps.add_other("size", ["1"]).err(),
            Some(BuildError::Argument)
        );
        assert_eq!(
            caps.add_other("X-A", ["a b"]).err(),
            Some(BuildError::Argument)
        );
        assert_eq!(
            caps.add_other("X-A", ["a\nb"]).err(),
            Some(BuildError::ControlCharacter)
        );
        assert_eq!(
            caps.set_mt_priority(Some(Some("A B"))).err(),
            Some(BuildError::Argument)
        );
        assert_eq!(
            caps,
            Capabilities::new("mx.example.org").unwrap(),
            "a refused value changes nothing"
        );

        caps.set_greeting("ESMTP ready").unwrap();
        caps.add_auth("login")
            .unwrap()
            .add_auth("PLAIN")
            .unwrap()
            .add_auth("Login")
            .unwrap();
        caps.set_mt_priority(Some(Some("MIXER"))).unwrap();
        caps.add_other("xclient", ["NAME", "ADDR"]).unwrap();
        caps.pipelining = true;
        caps.starttls = true;
        caps.size = Some(None);
        caps.deliver_by = Some(Some(60));
        assert_eq!(caps.auth().collect::<Vec<_>>(), ["LOGIN", "PLAIN"]);
        assert_eq!(
            String::from_utf8(caps.to_reply().to_bytes()).unwrap(),
            "250-mx.example.org ESMTP ready\r\n250-PIPELINING\r\n250-SIZE\r\n250-STARTTLS\r\n\
             250-AUTH LOGIN PLAIN\r\n250-MT-PRIORITY MIXER\r\n250-DELIVERBY 60\r\n\
             250 XCLIENT NAME ADDR\r\n"
        );
        caps.clear_auth();
        assert!(!caps.has("auth"));
    }

    #[test]
    fn domain_and_greeting_read_and_compare_apart() {
        let mut caps = Capabilities::new("mx").unwrap();
        assert_eq!((caps.domain(), caps.greeting()), ("mx", ""));
        caps.set_greeting("  hi ").unwrap();
        assert_eq!((caps.domain(), caps.greeting()), ("mx", "  hi "));
        caps.set_greeting("").unwrap();
        assert_eq!(caps, Capabilities::new("mx").unwrap());
        // A space after the domain and nothing else is no greeting.
        assert_eq!(Capabilities::parse(b"250 mx \r\n"), Ok(caps.clone()));
        assert!(
            format!("{caps:?}").starts_with(
                "Capabilities { domain: \"mx\", greeting: \"\", pipelining: false, size: None,"
            ),
            "{caps:?}"
        );
    }

    prop_compose! {
        fn capabilities()(
            domain in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}|\\[[0-9.]{7,15}\\]",
            greeting in "[ -~\u{e9}]{0,30}",
            flags in proptest::collection::vec(any::<bool>(), 14),
            size in any::<Option<Option<u64>>>(),
            deliver_by in any::<Option<Option<u64>>>(),
            auth in proptest::collection::vec("[A-Za-z0-9_-]{1,20}", 0..6),
            mt_priority in proptest::option::of(proptest::option::of("[!-~]{1,10}")),
            other in proptest::collection::vec(
                ("[xX]-[a-zA-Z0-9-]{1,8}", proptest::collection::vec("[!-~]{1,8}", 0..3)),
                0..4,
            ),
        ) -> Capabilities {
            let mut caps = Capabilities::new(domain).unwrap();
            caps.set_greeting(greeting).unwrap();
            [
                caps.pipelining, caps.eight_bit_mime, caps.binary_mime, caps.chunking,
                caps.smtputf8, caps.dsn, caps.starttls, caps.enhanced_status_codes,
                caps.requiretls, caps.etrn, caps.vrfy, caps.expn, caps.help, _,
            ] = flags.try_into().unwrap();
            caps.size = size;
            caps.deliver_by = deliver_by;
            for mechanism in &auth {
                caps.add_auth(mechanism).unwrap();
            }
            caps.set_mt_priority(mt_priority.as_ref().map(|p| p.as_deref())).unwrap();
            for (keyword, params) in other {
                caps.add_other(&keyword, params).unwrap();
            }
            caps
        }
    }

    proptest! {
        #[test]
        fn capabilities_round_trip(caps in capabilities()) {
            let reply = caps.to_reply();
            prop_assert_eq!(Capabilities::from_reply(&reply), Ok(caps.clone()));
            // And through the wire, both ways.
            let bytes = reply.to_bytes();
            let decoded = Reply::parse(&bytes).unwrap();
            prop_assert_eq!(Capabilities::from_reply(&decoded), Ok(caps.clone()));
            prop_assert_eq!(Capabilities::parse(&bytes), Ok(caps));
        }

        #[test]
        fn lookup_agrees_with_a_linear_search(
            word in prop_oneof![
                proptest::sample::select(Keyword::ALL.map(Keyword::name).to_vec())
                    .prop_flat_map(|name| proptest::collection::vec(any::<bool>(), name.len())
                        .prop_map(move |upper| name.chars().zip(upper)
                            .map(|(c, u)| if u { c } else { c.to_ascii_lowercase() })
                            .collect::<String>().into_bytes())),
                "[A-Za-z0-9-]{0,20}".prop_map(String::into_bytes),
                "[SEAHDCPBRM8][A-Z0-9-]{2,10}".prop_map(String::into_bytes),
                // A name with one octet changed to anything: control characters next to
                // digits, octets above 0x7f, the other case.
                (
                    proptest::sample::select(Keyword::ALL.map(Keyword::name).to_vec()),
                    any::<prop::sample::Index>(),
                    any::<u8>(),
                ).prop_map(|(name, at, octet)| {
                    let mut word = name.as_bytes().to_vec();
                    word[at.index(name.len())] = octet;
                    word
                }),
                proptest::collection::vec(any::<u8>(), 0..24),
            ],
        ) {
            let linear = Keyword::ALL
                .into_iter()
                .find(|k| k.name().as_bytes().eq_ignore_ascii_case(&word));
            prop_assert_eq!(Keyword::lookup(&word), linear);
        }

        #[test]
        fn parse_agrees_with_reply_then_from_reply(
            pieces in proptest::collection::vec(prop_oneof![
                Just(b"250-".to_vec()), Just(b"250 ".to_vec()), Just(b"550 ".to_vec()),
                Just(b"\r\n".to_vec()), Just(b"\n".to_vec()), Just(b" ".to_vec()),
                Just(b"2.0.0 ".to_vec()), Just(b"AUTH=".to_vec()), Just(b"SIZE".to_vec()),
                "[ -~]{0,12}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..4),
            ], 0..30),
        ) {
            let _ = caps(&pieces.concat());
        }

        #[test]
        fn words_split_like_split_ascii_whitespace(
            line in ehlo_text(),
            after in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            // Whatever follows the line in its buffer changes nothing.
            let readable = [&line[..], &after].concat();
            let lossy = String::from_utf8_lossy(&line);
            let expected: Vec<&str> = lossy.split_ascii_whitespace().collect();
            for readable in [&line[..], &readable] {
                let text = Line { bytes: &line, readable, text: None };
                let words: Vec<String> = text.words(0).map(|w| text.text(w).into_owned()).collect();
                prop_assert_eq!(&words, &expected);
                prop_assert_eq!(
                    find_space(readable, line.len()),
                    line.iter().position(|&b| b == b' ')
                );
                if let Some((first, known)) = quick_keyword(&text) {
                    prop_assert_eq!(Some(first.clone()), text.words(0).next());
                    prop_assert_eq!(known, Keyword::lookup(&line[first]));
                }
            }
        }

        #[test]
        fn from_reply_agrees_with_a_reference_reading(
            lines in proptest::collection::vec(ehlo_text(), 1..8),
        ) {
            let lines = lines.iter().map(|line| String::from_utf8_lossy(line).replace(['\r', '\n', '\0'], " "));
            let reply = Reply::with_lines(250, None, lines).unwrap();
            prop_assert_eq!(Capabilities::from_reply(&reply), reference::from_reply(&reply));
        }

        #[test]
        fn any_reply_parses_or_errs_and_round_trips(
            lines in proptest::collection::vec("[ -~]{0,30}", 1..8),
        ) {
            let reply = Reply::with_lines(250, None, lines).unwrap();
            if let Ok(caps) = Capabilities::from_reply(&reply) {
                prop_assert_eq!(Capabilities::from_reply(&caps.to_reply()), Ok(caps));
            }
        }
    }
}

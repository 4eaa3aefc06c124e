//! Addresses: domains, address literals, mailboxes and paths (RFC 5321 §4.1.2, §4.1.3),
//! with UTF-8 per RFC 6531 when the caller allows it.
//!
//! Parsed values borrow from the input where nothing needs unescaping. The local part is
//! kept decoded (a quoted `"a b"` becomes `a b`); serializing chooses the Dot-string form
//! when it is valid and the Quoted-string form otherwise, which RFC 5321 §4.1.2 says are
//! equivalent. Limits of §4.5.3.1 are enforced on the wire form.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BufMut;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::sequence::delimited;

use crate::error::AddressError;

/// RFC 5321 §4.5.3.1.1: "The maximum total length of a user name or other local-part is
/// 64 octets."
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: "The maximum total length of a domain name or number is 255
/// octets."
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: "The maximum total length of a reverse-path or forward-path is 256
/// octets (including the punctuation and element separators)."
pub const MAX_PATH: usize = 256;

type PResult<'a, T> = IResult<&'a [u8], T>;

fn fail(input: &[u8]) -> nom::Err<nom::error::Error<&[u8]>> {
    nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Verify))
}

/// `Let-dig = ALPHA / DIGIT`
fn is_let_dig(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// RFC 5322 `atext`, widened by RFC 6531 §3.3 with `UTF8-non-ascii` when `utf8`.
pub(crate) fn is_atext(b: u8, utf8: bool) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'/'
        | b'=' | b'?' | b'^' | b'_' | b'`' | b'{' | b'|' | b'}' | b'~')
        || (utf8 && b >= 0x80)
}

/// `qtextSMTP = %d32-33 / %d35-91 / %d93-126` (+ `UTF8-non-ascii`, RFC 6531).
fn is_qtext(b: u8, utf8: bool) -> bool {
    matches!(b, 32..=33 | 35..=91 | 93..=126) || (utf8 && b >= 0x80)
}

/// Turns validated bytes into `&str`; non-ASCII bytes only get here in UTF-8 mode, where
/// a broken sequence is a syntax error.
/// Whether UTF-8 text holds what must never reach a header or a terminal: C1 controls
/// (NEL, U+0085, ends a line for some readers) and the line and paragraph separators
/// U+2028 and U+2029. RFC 5198 §2 keeps C1 controls out of Net-Unicode and says the two
/// separators SHOULD NOT be used. C0 controls never get past the grammar.
pub(crate) fn has_unsafe_unicode(s: &str) -> bool {
    !s.is_ascii()
        && s.chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

fn utf8_str(input: &[u8]) -> Result<&str, AddressError> {
    std::str::from_utf8(input).map_err(|_| AddressError::Syntax)
}

/// A domain name (RFC 5321 §4.1.2 `Domain`), kept as sent; compare with
/// [`Domain::eq_ignore_case`] since DNS names are case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Domain<'a>(Cow<'a, str>);

impl<'a> Domain<'a> {
    /// Parses a whole string as a domain. UTF-8 labels (U-labels) only when `utf8`.
    ///
    /// ```
    /// use smtp_proto::Domain;
    /// assert!(Domain::parse("mail.example.org", false).is_ok());
    /// assert!(Domain::parse("-bad.example", false).is_err());
    /// ```
    pub fn parse(s: &'a str, utf8: bool) -> Result<Domain<'a>, AddressError> {
        match domain(s.as_bytes(), utf8) {
            Ok((b"", d)) if has_unsafe_unicode(d.as_str()) => Err(AddressError::ControlCharacter),
            Ok((b"", d)) => Ok(d),
            _ => Err(non_ascii_or(s.as_bytes(), utf8, AddressError::Syntax)),
        }
    }

    /// A name the caller has checked against the grammar.
    pub(crate) fn borrowed(s: &'a str) -> Domain<'a> {
        Domain(Cow::Borrowed(s))
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the domain holds non-ASCII characters (needs SMTPUTF8).
    pub fn is_utf8(&self) -> bool {
        !self.0.is_ascii()
    }

    /// ASCII-case-insensitive comparison.
    pub fn eq_ignore_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Domain<'static> {
        Domain(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Display for Domain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `sub-domain = Let-dig [Ldh-str]`, or a U-label in UTF-8 mode (RFC 6531 §3.3).
fn sub_domain(input: &[u8], utf8: bool) -> PResult<'_, &[u8]> {
    // A plain loop rather than `take_while1`: it runs for every label of every path.
    let n = input
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || (utf8 && b >= 0x80)))
        .unwrap_or(input.len());
    if n == 0 {
        return Err(fail(input));
    }
    let (label, rest) = input.split_at(n);
    let first = label[0];
    let last = label[n - 1];
    // Ldh-str ends in Let-dig; a label cannot start with '-' either.
    if first == b'-' || last == b'-' {
        return Err(fail(input));
    }
    if !(utf8 || is_let_dig(first) && is_let_dig(last)) {
        return Err(fail(input));
    }
    Ok((rest, label))
}

/// `Domain = sub-domain *("." sub-domain)`
pub(crate) fn domain(input: &[u8], utf8: bool) -> PResult<'_, Domain<'_>> {
    let (mut rest, _) = sub_domain(input, utf8)?;
    while rest.first() == Some(&b'.') {
        match sub_domain(&rest[1..], utf8) {
            Ok((r, _)) => rest = r,
            Err(_) => break,
        }
    }
    let raw = &input[..input.len() - rest.len()];
    if raw.len() > MAX_DOMAIN {
        return Err(nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    let s = std::str::from_utf8(raw).map_err(|_| fail(input))?;
    Ok((rest, Domain(Cow::Borrowed(s))))
}

/// An address literal (RFC 5321 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressLiteral<'a> {
    /// `[192.0.2.1]`
    Ipv4(Ipv4Addr),
    /// `[IPv6:2001:db8::1]`
    Ipv6(Ipv6Addr),
    /// `[tag:content]` (`General-address-literal`), for tags other than `IPv6`.
    General(GeneralLiteral<'a>),
}

/// `General-address-literal = Standardized-tag ":" 1*dcontent` (RFC 5321 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GeneralLiteral<'a> {
    tag: Cow<'a, str>,
    content: Cow<'a, str>,
}

impl GeneralLiteral<'_> {
    /// `Standardized-tag = Ldh-str`
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `1*dcontent`
    pub fn content(&self) -> &str {
        &self.content
    }
}

impl AddressLiteral<'_> {
    /// Detaches from the input buffer.
    pub fn into_owned(self) -> AddressLiteral<'static> {
        match self {
            AddressLiteral::Ipv4(a) => AddressLiteral::Ipv4(a),
            AddressLiteral::Ipv6(a) => AddressLiteral::Ipv6(a),
            AddressLiteral::General(g) => AddressLiteral::General(GeneralLiteral {
                tag: Cow::Owned(g.tag.into_owned()),
                content: Cow::Owned(g.content.into_owned()),
            }),
        }
    }
}

impl fmt::Display for AddressLiteral<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressLiteral::Ipv4(a) => write!(f, "[{a}]"),
            AddressLiteral::Ipv6(a) => write!(f, "[IPv6:{a}]"),
            AddressLiteral::General(g) => write!(f, "[{}:{}]", g.tag, g.content),
        }
    }
}

/// `Snum = 1*3DIGIT` representing 0 through 255.
fn snum(input: &[u8]) -> PResult<'_, u8> {
    let (rest, digits) = take_while1(|b: u8| b.is_ascii_digit()).parse(input)?;
    if digits.len() > 3 {
        return Err(fail(input));
    }
    let n = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    u8::try_from(n).map(|n| (rest, n)).map_err(|_| fail(input))
}

/// `IPv4-address-literal = Snum 3("." Snum)`
fn ipv4_literal(input: &[u8]) -> PResult<'_, Ipv4Addr> {
    let (rest, (a, _, b, _, c, _, d)) = (
        snum,
        tag(&b"."[..]),
        snum,
        tag(&b"."[..]),
        snum,
        tag(&b"."[..]),
        snum,
    )
        .parse(input)?;
    Ok((rest, Ipv4Addr::new(a, b, c, d)))
}

/// `dcontent = %d33-90 / %d94-126`
fn is_dcontent(b: u8) -> bool {
    matches!(b, 33..=90 | 94..=126)
}

/// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
/// General-address-literal ) "]"`
pub(crate) fn address_literal(input: &[u8]) -> PResult<'_, AddressLiteral<'_>> {
    let (rest, inner) =
        delimited(tag(&b"["[..]), take_while1(is_dcontent), tag(&b"]"[..])).parse(input)?;
    if let Ok((r, v4)) = ipv4_literal(inner) {
        if r.is_empty() {
            return Ok((rest, AddressLiteral::Ipv4(v4)));
        }
    }
    // General-address-literal: Standardized-tag ":" 1*dcontent
    let colon = inner
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| fail(input))?;
    let (tag_part, content) = (&inner[..colon], &inner[colon + 1..]);
    if tag_part.is_empty()
        || content.is_empty()
        || !tag_part
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        || !is_let_dig(tag_part[0])
        || !is_let_dig(tag_part[tag_part.len() - 1])
    {
        return Err(fail(input));
    }
    // All bytes are ASCII (dcontent), so these conversions cannot fail.
    let tag_str = std::str::from_utf8(tag_part).map_err(|_| fail(input))?;
    let content_str = std::str::from_utf8(content).map_err(|_| fail(input))?;
    if tag_str.eq_ignore_ascii_case("IPv6") {
        // IPv6-addr per RFC 5321 §4.1.3; std's parser accepts the same full, compressed
        // and IPv4-embedded forms (and no zone identifiers).
        let addr: Ipv6Addr = content_str.parse().map_err(|_| fail(input))?;
        return Ok((rest, AddressLiteral::Ipv6(addr)));
    }
    Ok((
        rest,
        AddressLiteral::General(GeneralLiteral {
            tag: Cow::Borrowed(tag_str),
            content: Cow::Borrowed(content_str),
        }),
    ))
}

/// The part after `@`: a domain or an address literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name.
    Domain(Domain<'a>),
    /// An address literal.
    Literal(AddressLiteral<'a>),
}

impl<'a> Host<'a> {
    /// Parses a whole string as a domain or address literal (the HELO/EHLO argument).
    pub fn parse(s: &'a str, utf8: bool) -> Result<Host<'a>, AddressError> {
        match host(s.as_bytes(), utf8) {
            Ok((b"", h)) if h.is_unsafe() => Err(AddressError::ControlCharacter),
            Ok((b"", h)) => Ok(h),
            Err(nom::Err::Failure(_)) => Err(AddressError::DomainTooLong),
            _ => Err(non_ascii_or(s.as_bytes(), utf8, AddressError::Syntax)),
        }
    }

    /// Whether the host needs SMTPUTF8.
    pub fn is_utf8(&self) -> bool {
        matches!(self, Host::Domain(d) if d.is_utf8())
    }

    /// Whether the name holds a C1 control or a line or paragraph separator (see
    /// [`has_unsafe_unicode`]): never accepted in a HELO name or an address.
    pub(crate) fn is_unsafe(&self) -> bool {
        matches!(self, Host::Domain(d) if has_unsafe_unicode(d.as_str()))
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Host<'static> {
        match self {
            Host::Domain(d) => Host::Domain(d.into_owned()),
            Host::Literal(l) => Host::Literal(l.into_owned()),
        }
    }

    /// The wire form's length in octets.
    fn wire_len(&self) -> usize {
        match self {
            Host::Domain(d) => d.0.len(),
            Host::Literal(l) => l.to_string().len(),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => d.fmt(f),
            Host::Literal(l) => l.fmt(f),
        }
    }
}

/// `( Domain / address-literal )`
pub(crate) fn host(input: &[u8], utf8: bool) -> PResult<'_, Host<'_>> {
    if input.first() == Some(&b'[') {
        let (rest, l) = address_literal(input)?;
        Ok((rest, Host::Literal(l)))
    } else {
        let (rest, d) = domain(input, utf8)?;
        Ok((rest, Host::Domain(d)))
    }
}

/// A mailbox, `Local-part "@" ( Domain / address-literal )`.
///
/// ```
/// use smtp_proto::Mailbox;
/// let m = Mailbox::new("John Smith", "example.com").unwrap();
/// assert_eq!(m.to_string(), "\"John Smith\"@example.com");
/// // A value that would inject a command cannot be built.
/// assert!(Mailbox::parse("a@b>\r\nRCPT TO:<c@d").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox<'a> {
    local: Cow<'a, str>,
    host: Host<'a>,
}

impl<'a> Mailbox<'a> {
    /// Builds a mailbox from a decoded local part and a domain or address literal.
    /// Non-ASCII is allowed (the caller must then use SMTPUTF8); CR, LF, NUL and other
    /// control characters are not, nor are parts over the §4.5.3.1 limits.
    pub fn new(local: &str, host: &str) -> Result<Mailbox<'static>, AddressError> {
        if local
            .bytes()
            .chain(host.bytes())
            .any(|b| b < 32 || b == 127)
        {
            return Err(AddressError::ControlCharacter);
        }
        let host = Host::parse(host, true)?.into_owned();
        if has_unsafe_unicode(local) {
            return Err(AddressError::ControlCharacter);
        }
        let mailbox = Mailbox {
            local: Cow::Owned(local.to_owned()),
            host,
        };
        mailbox.check_limits()?;
        Ok(mailbox)
    }

    /// Parses `local@host` (RFC 5321 §4.1.2 `Mailbox`: no angle brackets), allowing
    /// UTF-8. The error says what is wrong: a path in angle brackets (parse it as a
    /// [`ForwardPath`] or [`ReversePath`]), no `@`, an empty string, a limit.
    ///
    /// ```
    /// use smtp_proto::{AddressError, Mailbox};
    /// let m = Mailbox::parse("bob@example.org").unwrap();
    /// assert_eq!((m.local_part(), m.domain().unwrap().as_str()), ("bob", "example.org"));
    /// assert_eq!(Mailbox::parse("<bob@example.org>"), Err(AddressError::AngleBrackets));
    /// assert_eq!(Mailbox::parse("bob"), Err(AddressError::MissingAt));
    /// ```
    pub fn parse(s: &'a str) -> Result<Mailbox<'a>, AddressError> {
        if s.bytes().any(|b| b < 32 || b == 127) {
            return Err(AddressError::ControlCharacter);
        }
        match mailbox(s.as_bytes(), true) {
            Ok((b"", m)) if m.is_unsafe() => Err(AddressError::ControlCharacter),
            Ok((b"", m)) => {
                m.check_limits()?;
                Ok(m)
            }
            Err(nom::Err::Failure(_)) => Err(AddressError::DomainTooLong),
            _ if s.is_empty() => Err(AddressError::Empty),
            _ if s == "<>" => Err(AddressError::NullPath),
            _ if s.starts_with('<') && s.ends_with('>') => Err(AddressError::AngleBrackets),
            _ if !s.contains('@') => Err(AddressError::MissingAt),
            _ => Err(AddressError::Syntax),
        }
    }

    /// A mailbox the caller has checked against the grammar and the limits, with a
    /// Dot-string local part.
    pub(crate) fn borrowed(local: &'a str, host: Host<'a>) -> Mailbox<'a> {
        Mailbox {
            local: Cow::Borrowed(local),
            host,
        }
    }

    /// See [`Host::is_unsafe`].
    fn is_unsafe(&self) -> bool {
        has_unsafe_unicode(&self.local) || self.host.is_unsafe()
    }

    fn check_limits(&self) -> Result<(), AddressError> {
        let local = self.local_wire_len();
        if local > MAX_LOCAL_PART {
            return Err(AddressError::LocalPartTooLong);
        }
        let host = self.host.wire_len();
        if host > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        // "<" local "@" host ">"
        if local + host + 3 > MAX_PATH {
            return Err(AddressError::PathTooLong);
        }
        Ok(())
    }

    /// The decoded local part (quotes and quoted-pairs removed).
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain or address literal.
    pub fn host(&self) -> &Host<'a> {
        &self.host
    }

    /// The domain, unless the mailbox is at an address literal (`bob@[192.0.2.1]`).
    pub fn domain(&self) -> Option<&Domain<'a>> {
        match &self.host {
            Host::Domain(d) => Some(d),
            Host::Literal(_) => None,
        }
    }

    /// Whether the mailbox needs SMTPUTF8 (RFC 6531).
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || self.host.is_utf8()
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Mailbox<'static> {
        Mailbox {
            local: Cow::Owned(self.local.into_owned()),
            host: self.host.into_owned(),
        }
    }

    /// Whether the local part can go out as a Dot-string (no quoting needed).
    fn is_dot_string(&self) -> bool {
        // `Atom *("." Atom)`: atext runs separated by single dots, in one pass (it runs on
        // every path parsed, for the length limits).
        let mut after_dot = true; // at the start, as after a dot: an atom must follow
        for b in self.local.bytes() {
            if b == b'.' {
                if after_dot {
                    return false;
                }
                after_dot = true;
            } else if is_atext(b, true) {
                after_dot = false;
            } else {
                return false;
            }
        }
        !after_dot
    }

    fn local_wire_len(&self) -> usize {
        if self.is_dot_string() {
            self.local.len()
        } else {
            2 + self.local.len()
                + self
                    .local
                    .bytes()
                    .filter(|&b| b == b'"' || b == b'\\')
                    .count()
        }
    }

    /// Writes the wire form `local@host`.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        if self.is_dot_string() {
            out.put_slice(self.local.as_bytes());
        } else {
            out.put_u8(b'"');
            for &b in self.local.as_bytes() {
                if b == b'"' || b == b'\\' {
                    out.put_u8(b'\\');
                }
                out.put_u8(b);
            }
            out.put_u8(b'"');
        }
        out.put_u8(b'@');
        match &self.host {
            Host::Domain(d) => out.put_slice(d.0.as_bytes()),
            Host::Literal(l) => out.put_slice(l.to_string().as_bytes()),
        }
    }
}

impl fmt::Display for Mailbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.encode(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// `Dot-string = Atom *("." Atom)`
fn dot_string(input: &[u8], utf8: bool) -> PResult<'_, &[u8]> {
    // One pass: atext runs separated by single dots, neither first nor last.
    let mut after_dot = true; // an atom must come first
    let mut end = input.len();
    for (i, &b) in input.iter().enumerate() {
        if is_atext(b, utf8) {
            after_dot = false;
        } else if b == b'.' && !after_dot {
            after_dot = true;
        } else {
            end = i;
            break;
        }
    }
    if after_dot {
        // Nothing, or a dot not followed by an atom.
        return Err(fail(input));
    }
    Ok((&input[end..], &input[..end]))
}

/// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`, returning the unescaped content.
fn quoted_string(input: &[u8], utf8: bool) -> PResult<'_, Cow<'_, [u8]>> {
    let (mut rest, _) = tag(&b"\""[..]).parse(input)?;
    let start = rest;
    let mut owned: Option<Vec<u8>> = None;
    loop {
        match rest.first() {
            Some(b'"') => {
                let content = match owned {
                    Some(v) => Cow::Owned(v),
                    None => Cow::Borrowed(&start[..start.len() - rest.len()]),
                };
                return Ok((&rest[1..], content));
            }
            // quoted-pairSMTP = %d92 %d32-126
            Some(b'\\') => match rest.get(1) {
                Some(&c) if (32..=126).contains(&c) => {
                    let v = owned.get_or_insert_with(|| start[..start.len() - rest.len()].to_vec());
                    v.push(c);
                    rest = &rest[2..];
                }
                _ => return Err(fail(input)),
            },
            Some(&c) if is_qtext(c, utf8) => {
                if let Some(v) = owned.as_mut() {
                    v.push(c);
                }
                rest = &rest[1..];
            }
            _ => return Err(fail(input)),
        }
    }
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`
pub(crate) fn mailbox(input: &[u8], utf8: bool) -> PResult<'_, Mailbox<'_>> {
    let (rest, local) = if input.first() == Some(&b'"') {
        quoted_string(input, utf8)?
    } else {
        let (rest, l) = dot_string(input, utf8)?;
        (rest, Cow::Borrowed(l))
    };
    let (rest, _) = tag(&b"@"[..]).parse(rest)?;
    let (rest, host) = host(rest, utf8)?;
    let local = match local {
        Cow::Borrowed(b) => Cow::Borrowed(utf8_str(b).map_err(|_| fail(input))?),
        Cow::Owned(v) => Cow::Owned(String::from_utf8(v).map_err(|_| fail(input))?),
    };
    Ok((rest, Mailbox { local, host }))
}

/// `A-d-l = At-domain *( "," At-domain )`, `At-domain = "@" Domain`: a source route,
/// parsed and dropped (RFC 5321 §4.1.1.3, Appendix C: "SHOULD ignore").
fn source_route(input: &[u8], utf8: bool) -> PResult<'_, ()> {
    let at_domain = |i| {
        let (i, _) = tag(&b"@"[..]).parse(i)?;
        domain(i, utf8)
    };
    let (mut rest, _) = at_domain(input)?;
    while rest.first() == Some(&b',') {
        let (r, _) = at_domain(&rest[1..])?;
        rest = r;
    }
    let (rest, _) = tag(&b":"[..]).parse(rest)?;
    Ok((rest, ()))
}

/// `Path = "<" [ A-d-l ":" ] Mailbox ">"`
fn path(input: &[u8], utf8: bool) -> PResult<'_, Mailbox<'_>> {
    let (rest, _) = tag(&b"<"[..]).parse(input)?;
    let rest = if rest.first() == Some(&b'@') {
        source_route(rest, utf8)?.0
    } else {
        rest
    };
    let (rest, m) = mailbox(rest, utf8)?;
    let (rest, _) = tag(&b">"[..]).parse(rest)?;
    Ok((rest, m))
}

/// The MAIL FROM argument: `Reverse-path = Path / "<>"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReversePath<'a> {
    /// `<>`: the null reverse-path of bounces (RFC 5321 §4.5.5).
    Null,
    /// A mailbox.
    Mailbox(Mailbox<'a>),
}

impl<'a> ReversePath<'a> {
    /// Parses a MAIL FROM path as written, UTF-8 allowed (RFC 5321 §4.1.2
    /// `Reverse-path = Path / "<>"`, RFC 6531): `<bob@example.org>`, `<>` for the null
    /// reverse-path, a source route (`<@relay.example:bob@example.org>`, dropped as
    /// §4.1.1.3 says). For convenience a bare mailbox (`bob@example.org`) is accepted
    /// too, since nothing else could be meant; an empty string is not (write `<>`), nor
    /// spaces around the path.
    ///
    /// ```
    /// use smtp_proto::ReversePath;
    /// let from: ReversePath = "<alice@example.org>".parse().unwrap();
    /// assert_eq!(from.domain().unwrap().as_str(), "example.org");
    /// assert_eq!("<>".parse::<ReversePath>(), Ok(ReversePath::Null));
    /// assert_eq!(ReversePath::parse("alice@example.org").unwrap(), from);
    /// ```
    pub fn parse(s: &'a str) -> Result<ReversePath<'a>, AddressError> {
        if !s.starts_with('<') {
            return Mailbox::parse(s).map(ReversePath::Mailbox);
        }
        whole_path(s, reverse_path)
    }

    /// The domain of the mailbox, unless null or at an address literal.
    pub fn domain(&self) -> Option<&Domain<'a>> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => m.domain(),
        }
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> ReversePath<'static> {
        match self {
            ReversePath::Null => ReversePath::Null,
            ReversePath::Mailbox(m) => ReversePath::Mailbox(m.into_owned()),
        }
    }

    /// The mailbox, unless null.
    pub fn mailbox(&self) -> Option<&Mailbox<'_>> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }

    /// Whether the path needs SMTPUTF8.
    pub fn is_utf8(&self) -> bool {
        self.mailbox().is_some_and(Mailbox::is_utf8)
    }

    /// Writes `<...>`.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(b'<');
        if let ReversePath::Mailbox(m) = self {
            m.encode(out);
        }
        out.put_u8(b'>');
    }
}

impl fmt::Display for ReversePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// The RCPT TO argument: `Forward-path = Path`, or the special `<Postmaster>`
/// (RFC 5321 §4.1.1.3) that every server must accept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ForwardPath<'a> {
    /// `<Postmaster>` with no domain (case-insensitive).
    Postmaster,
    /// A mailbox (`<Postmaster@domain>` is an ordinary mailbox).
    Mailbox(Mailbox<'a>),
}

impl<'a> ForwardPath<'a> {
    /// Parses a RCPT TO path as written, UTF-8 allowed (RFC 5321 §4.1.2
    /// `Forward-path = Path`, RFC 6531): `<bob@example.org>`, `<Postmaster>` (any case,
    /// §4.1.1.3), a source route (`<@relay.example:bob@example.org>`, dropped). For
    /// convenience a bare mailbox (`bob@example.org`) or `Postmaster` is accepted too,
    /// since nothing else could be meant; `<>` is not (only a reverse-path may be null),
    /// nor spaces around the path.
    ///
    /// ```
    /// use smtp_proto::{AddressError, ForwardPath};
    /// let to: ForwardPath = "<bob@example.org>".parse().unwrap();
    /// assert_eq!(to.domain().unwrap().as_str(), "example.org");
    /// assert_eq!("<postmaster>".parse::<ForwardPath>(), Ok(ForwardPath::Postmaster));
    /// assert_eq!(ForwardPath::parse("<>"), Err(AddressError::NullPath));
    /// ```
    pub fn parse(s: &'a str) -> Result<ForwardPath<'a>, AddressError> {
        if s.eq_ignore_ascii_case("postmaster") {
            return Ok(ForwardPath::Postmaster);
        }
        if !s.starts_with('<') {
            return Mailbox::parse(s).map(ForwardPath::Mailbox);
        }
        if s == "<>" {
            return Err(AddressError::NullPath);
        }
        whole_path(s, forward_path)
    }

    /// The domain of the mailbox, unless `<Postmaster>` or at an address literal: what
    /// relay control looks at.
    pub fn domain(&self) -> Option<&Domain<'a>> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => m.domain(),
        }
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> ForwardPath<'static> {
        match self {
            ForwardPath::Postmaster => ForwardPath::Postmaster,
            ForwardPath::Mailbox(m) => ForwardPath::Mailbox(m.into_owned()),
        }
    }

    /// The mailbox, unless `<Postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox<'_>> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }

    /// Whether the path needs SMTPUTF8.
    pub fn is_utf8(&self) -> bool {
        self.mailbox().is_some_and(Mailbox::is_utf8)
    }

    /// Writes `<...>`.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(b'<');
        match self {
            ForwardPath::Postmaster => out.put_slice(b"Postmaster"),
            ForwardPath::Mailbox(m) => m.encode(out),
        }
        out.put_u8(b'>');
    }
}

impl fmt::Display for ForwardPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// A path parser: the path at the start of the input, and the rest.
type PathParser<'a, P> = fn(&'a [u8], bool) -> Result<(&'a [u8], P), AddressError>;

/// A whole string as one path, UTF-8 allowed: nothing may follow the `>`.
fn whole_path<'a, P>(s: &'a str, parse: PathParser<'a, P>) -> Result<P, AddressError> {
    if s.bytes().any(|b| b < 32 || b == 127) {
        return Err(AddressError::ControlCharacter);
    }
    match parse(s.as_bytes(), true)? {
        (b"", path) => Ok(path),
        _ => Err(AddressError::TrailingInput),
    }
}

/// `FromStr` (owned) and `TryFrom<&str>` (borrowing) through the type's `parse`.
macro_rules! from_str {
    ($($ty:ident),*) => {$(
        impl std::str::FromStr for $ty<'static> {
            type Err = AddressError;
            #[doc = concat!("As [`", stringify!($ty), "::parse`], detached from `s`.")]
            fn from_str(s: &str) -> Result<$ty<'static>, AddressError> {
                $ty::parse(s).map($ty::into_owned)
            }
        }

        impl<'a> TryFrom<&'a str> for $ty<'a> {
            type Error = AddressError;
            #[doc = concat!("As [`", stringify!($ty), "::parse`].")]
            fn try_from(s: &'a str) -> Result<$ty<'a>, AddressError> {
                $ty::parse(s)
            }
        }
    )*};
}

from_str!(Mailbox, ReversePath, ForwardPath);

/// When parsing in ASCII mode fails on input that has non-ASCII bytes, say so
/// specifically: the server must answer 553 5.6.7, not a generic syntax error.
fn non_ascii_or(input: &[u8], utf8: bool, other: AddressError) -> AddressError {
    if !utf8 && !input.is_ascii() {
        AddressError::Utf8NotPermitted
    } else {
        other
    }
}

/// Parses a reverse-path at the start of `input`; returns it and the rest of the input.
pub(crate) fn reverse_path(
    input: &[u8],
    utf8: bool,
) -> Result<(&[u8], ReversePath<'_>), AddressError> {
    if let Some(rest) = input.strip_prefix(b"<>") {
        return Ok((rest, ReversePath::Null));
    }
    let (rest, m) = checked_path(input, utf8)?;
    Ok((rest, ReversePath::Mailbox(m)))
}

/// Parses a forward-path at the start of `input`; returns it and the rest of the input.
pub(crate) fn forward_path(
    input: &[u8],
    utf8: bool,
) -> Result<(&[u8], ForwardPath<'_>), AddressError> {
    if input.len() >= 12 && input[..12].eq_ignore_ascii_case(b"<postmaster>") {
        return Ok((&input[12..], ForwardPath::Postmaster));
    }
    let (rest, m) = checked_path(input, utf8)?;
    Ok((rest, ForwardPath::Mailbox(m)))
}

fn checked_path(input: &[u8], utf8: bool) -> Result<(&[u8], Mailbox<'_>), AddressError> {
    match path(input, utf8) {
        Ok((rest, m)) => {
            if input.len() - rest.len() > MAX_PATH {
                return Err(AddressError::PathTooLong);
            }
            if m.is_unsafe() {
                return Err(AddressError::ControlCharacter);
            }
            m.check_limits()?;
            Ok((rest, m))
        }
        Err(nom::Err::Failure(_)) => Err(AddressError::DomainTooLong),
        Err(_) => {
            // UTF-8 was the only problem if the path parses with it allowed. (Not by
            // cutting at the first `>`: a quoted local part may hold one.)
            match path(input, true) {
                Ok((rest, _)) if !utf8 && !input[..input.len() - rest.len()].is_ascii() => {
                    Err(AddressError::Utf8NotPermitted)
                }
                _ => Err(AddressError::Syntax),
            }
        }
    }
}

/// A string that stands alone as a VRFY/EXPN/HELP/NOOP/ETRN argument must at least be
/// printable: no controls, and UTF-8 only when allowed.
pub(crate) fn is_text(input: &[u8], utf8: bool) -> bool {
    input
        .iter()
        .all(|&b| (32..127).contains(&b) || b == b'\t' || (utf8 && b >= 0x80))
        && std::str::from_utf8(input).is_ok()
}

/// Used by params: the optional spaces some clients put after `FROM:` (tolerated).
pub(crate) fn skip_spaces(input: &[u8]) -> &[u8] {
    let n = take_while::<_, _, nom::error::Error<&[u8]>>(|b| b == b' ')
        .parse(input)
        .map_or(0, |(_, s)| s.len());
    &input[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(s: &str) -> Result<ReversePath<'_>, AddressError> {
        reverse_path(s.as_bytes(), false).and_then(|(rest, p)| {
            if rest.is_empty() {
                Ok(p)
            } else {
                Err(AddressError::Syntax)
            }
        })
    }

    #[test]
    fn mailbox_forms() {
        // RFC 5321 §4.1.2 Dot-string, Quoted-string with quoted-pairs, address literals.
        let cases: &[(&str, &str, &str)] = &[
            ("<a@b.c>", "a", "b.c"),
            ("<first.last@example.org>", "first.last", "example.org"),
            ("<\"John Smith\"@example.org>", "John Smith", "example.org"),
            ("<\"a\\\"b\"@x>", "a\"b", "x"),
            ("<\"a\\\\b\"@x>", "a\\b", "x"),
            ("<\"\"@x>", "", "x"),
            ("<user@[192.0.2.1]>", "user", "[192.0.2.1]"),
            ("<user@[IPv6:2001:db8::1]>", "user", "[IPv6:2001:db8::1]"),
            ("<user@[x-tag:some-thing]>", "user", "[x-tag:some-thing]"),
            ("<@a,@b:user@c>", "user", "c"),
            ("<!#$%&'*+-/=?^_`{|}~@x>", "!#$%&'*+-/=?^_`{|}~", "x"),
        ];
        for (input, local, host) in cases {
            let p = rp(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let m = p.mailbox().unwrap();
            assert_eq!(m.local_part(), *local, "{input}");
            assert_eq!(m.host().to_string(), *host, "{input}");
        }
    }

    #[test]
    fn bad_mailboxes() {
        for input in [
            "<a@b",
            "a@b",
            "<a@-b>",
            "<a@b->",
            "<a@b.>",
            "<.a@b>",
            "<a.@b>",
            "<a..b@c>",
            "<a@b..c>",
            "<@a:b>",
            "<a b@c>",
            "<\"a@b>",
            "<a@[300.1.1.1]>",
            "<a@[1.2.3]>",
            "<a@[IPv6:zz::1]>",
            "<a@[]>",
            "<a@[:x]>",
            "<a@>",
            "<@b>",
            "<a@b\"c>",
            "<\"a\\\x01\"@b>",
        ] {
            assert!(rp(input).is_err(), "{input:?} should fail");
        }
    }

    #[test]
    fn limits_rfc5321_4_5_3_1() {
        let local64 = "a".repeat(64);
        assert!(rp(&format!("<{local64}@x>")).is_ok());
        assert_eq!(
            rp(&format!("<{local64}a@x>")),
            Err(AddressError::LocalPartTooLong)
        );
        let label = "a".repeat(63);
        let d255 = [label.as_str(); 4].join(".");
        assert_eq!(d255.len(), 255);
        assert!(Domain::parse(&d255, false).is_ok());
        assert_eq!(
            Host::parse(&format!("{d255}a"), false),
            Err(AddressError::DomainTooLong)
        );
        // 256-octet path: "<" + 64 + "@" + 189 + ">" = 256 is fine, one more is not.
        let d189 = format!("{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(61));
        assert!(rp(&format!("<{local64}@{d189}>")).is_ok());
        let d190 = format!("{d189}e");
        assert_eq!(
            rp(&format!("<{local64}@{d190}>")),
            Err(AddressError::PathTooLong)
        );
    }

    #[test]
    fn utf8_only_when_allowed() {
        // RFC 6531 §3.3.
        let input = "<用户@例子.广告>";
        assert_eq!(rp(input), Err(AddressError::Utf8NotPermitted));
        let (rest, p) = reverse_path(input.as_bytes(), true).unwrap();
        assert!(rest.is_empty());
        assert_eq!(p.mailbox().unwrap().local_part(), "用户");
        assert!(p.is_utf8());
        // Broken UTF-8 is a syntax error even in UTF-8 mode.
        assert!(reverse_path(b"<\xff@x>", true).is_err());
    }

    #[test]
    fn postmaster() {
        let (_, p) = forward_path(b"<POSTMASTER>", false).unwrap();
        assert_eq!(p, ForwardPath::Postmaster);
        let (_, p) = forward_path(b"<postmaster@example.org>", false).unwrap();
        assert_eq!(p.mailbox().unwrap().local_part(), "postmaster");
    }

    #[test]
    fn builder_refuses_injection() {
        assert_eq!(
            Mailbox::new("a@b>\r\nRCPT TO:<c", "d"),
            Err(AddressError::ControlCharacter)
        );
        assert_eq!(
            Mailbox::new("a", "d\0"),
            Err(AddressError::ControlCharacter)
        );
        assert_eq!(Mailbox::new("a", "b>c"), Err(AddressError::Syntax));
        let m = Mailbox::new("a\"b\\c", "x.y").unwrap();
        assert_eq!(m.to_string(), "\"a\\\"b\\\\c\"@x.y");
    }

    #[test]
    fn ipv4_leading_zeros_are_canonicalised() {
        let p = rp("<a@[010.000.000.001]>").unwrap();
        assert_eq!(p.to_string(), "<a@[10.0.0.1]>");
    }
}

//! MAIL and RCPT parameters (RFC 5321 §4.1.2 `esmtp-param`) of every extension this
//! crate knows, typed, with unknown ones kept as they came so a host can support private
//! extensions.
//!
//! | keyword | command | RFC |
//! |---|---|---|
//! | `SIZE=n` | MAIL | 1870 |
//! | `BODY=7BIT\|8BITMIME\|BINARYMIME` | MAIL | 6152, 3030 |
//! | `SMTPUTF8` | MAIL | 6531 |
//! | `RET=FULL\|HDRS`, `ENVID=xtext` | MAIL | 3461 |
//! | `AUTH=xtext\|<>` | MAIL | 4954 |
//! | `REQUIRETLS` | MAIL | 8689 |
//! | `MT-PRIORITY=n` | MAIL | 6710 |
//! | `BY=time;mode[T]` | MAIL | 2852 |
//! | `NOTIFY=...`, `ORCPT=type;xtext` | RCPT | 3461 |

use std::borrow::Cow;
use std::fmt;

use bytes::BufMut;

use crate::error::{CommandError, ParamError};
use crate::verb::Verb;

/// A decoded xtext value (RFC 3461 §4): what `ENVID`, `ORCPT` and `AUTH=` carry.
///
/// On the wire, `+`, `=`, controls, space and non-ASCII are sent as `+HH`. The decoded
/// value is UTF-8 and never holds CR, LF or NUL, so it can go into a trace header.
///
/// ```
/// use smtp_proto::XText;
/// let x = XText::new("a+b=c").unwrap();
/// assert_eq!(x.encoded(), "a+2Bb+3Dc");
/// assert_eq!(XText::decode(b"a+2Bb+3Dc").unwrap().as_str(), "a+b=c");
/// assert!(XText::new("a\r\nb").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct XText<'a>(Cow<'a, str>);

/// `xchar = %d33-42 / %d44-60 / %d62-126`: printable ASCII except `+` and `=`.
fn is_xchar(b: u8) -> bool {
    matches!(b, 33..=42 | 44..=60 | 62..=126)
}

fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<'a> XText<'a> {
    /// Wraps a decoded value; refuses CR, LF and NUL.
    pub fn new(value: impl Into<Cow<'a, str>>) -> Result<XText<'a>, ParamError> {
        let value = value.into();
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ParamError::ControlCharacter);
        }
        Ok(XText(value))
    }

    /// Decodes `xtext = *( xchar / hexchar )`, `hexchar = "+" 2(%x30-39 / %x41-46)`.
    /// Zero-copy when nothing is escaped.
    pub fn decode(input: &'a [u8]) -> Result<XText<'a>, ParamError> {
        if input.iter().all(|&b| is_xchar(b)) {
            // All printable ASCII.
            let s = std::str::from_utf8(input).map_err(|_| ParamError::XText)?;
            return Ok(XText(Cow::Borrowed(s)));
        }
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if b == b'+' {
                let hi = input.get(i + 1).copied().and_then(upper_hex);
                let lo = input.get(i + 2).copied().and_then(upper_hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(ParamError::XText),
                }
                i += 3;
            } else if is_xchar(b) {
                out.push(b);
                i += 1;
            } else {
                return Err(ParamError::XText);
            }
        }
        let s = String::from_utf8(out).map_err(|_| ParamError::InvalidValue)?;
        XText::new(s)
    }

    /// A value the caller has checked holds only `xchar`s (nothing to decode).
    pub(crate) fn borrowed(value: &'a str) -> XText<'a> {
        XText(Cow::Borrowed(value))
    }

    /// The decoded value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The wire form.
    pub fn encoded(&self) -> String {
        let mut out = Vec::new();
        self.encode(&mut out);
        // Encoding produces printable ASCII only.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the wire form.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for &b in self.0.as_bytes() {
            if is_xchar(b) {
                out.put_u8(b);
            } else {
                out.put_slice(&[b'+', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> XText<'static> {
        XText(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Display for XText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `BODY=` (RFC 6152 §2, RFC 3030 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// `7BIT`
    SevenBit,
    /// `8BITMIME`
    EightBitMime,
    /// `BINARYMIME` (only with BDAT).
    BinaryMime,
}

impl BodyType {
    /// The keyword value.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        }
    }
}

/// `RET=` (RFC 3461 §4.3): what a DSN returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `FULL`: the whole message.
    Full,
    /// `HDRS`: the headers only.
    Hdrs,
}

/// `AUTH=` on MAIL (RFC 4954 §5): the identity that submitted the message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MailAuth<'a> {
    /// `AUTH=<>`: the identity is unknown or not trusted.
    Unknown,
    /// An addr-spec, xtext-decoded.
    Identity(XText<'a>),
}

/// The mode of `BY=` (RFC 2852 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByMode {
    /// `N`: notify the sender if the time passes.
    Notify,
    /// `R`: return the message if the time passes.
    Return,
}

/// `BY=by-time;by-mode[T]` (RFC 2852 §4): deliver-by time in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeliverBy {
    /// Seconds, `["-" / "+"] 1*9digit`.
    pub time: i32,
    /// N or R.
    pub mode: ByMode,
    /// The `T` trace flag.
    pub trace: bool,
}

/// `NOTIFY=` (RFC 3461 §4.1): `NEVER`, or any of `SUCCESS`, `FAILURE`, `DELAY`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Notify {
    /// Send a DSN on successful delivery.
    pub success: bool,
    /// Send a DSN on failure.
    pub failure: bool,
    /// Send a DSN on delay.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// Whether this is `NEVER`.
    pub fn is_never(self) -> bool {
        self == Notify::NEVER
    }
}

/// `ORCPT=addr-type;xtext` (RFC 3461 §4.2): the original recipient.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Orcpt<'a> {
    addr_type: Cow<'a, str>,
    addr: XText<'a>,
}

/// A parameter this crate does not know, kept for the host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param<'a> {
    keyword: Cow<'a, str>,
    value: Option<Cow<'a, str>>,
}

/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`
fn is_keyword(k: &[u8]) -> bool {
    !k.is_empty()
        && k[0].is_ascii_alphanumeric()
        && k.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `esmtp-value = 1*(%d33-60 / %d62-126)`, plus UTF8-non-ascii (RFC 6531 §3.3).
fn is_value(v: &[u8], utf8: bool) -> bool {
    !v.is_empty()
        && v.iter()
            .all(|&b| matches!(b, 33..=60 | 62..=126) || (utf8 && b >= 0x80))
        && std::str::from_utf8(v).is_ok()
}

impl<'a> Param<'a> {
    /// Builds a parameter, validating keyword and value against the grammar.
    pub fn new(keyword: &str, value: Option<&str>) -> Result<Param<'static>, ParamError> {
        if !is_keyword(keyword.as_bytes()) {
            return Err(ParamError::Syntax);
        }
        if let Some(v) = value {
            if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(ParamError::ControlCharacter);
            }
            if !is_value(v.as_bytes(), true) {
                return Err(ParamError::Syntax);
            }
        }
        Ok(Param {
            keyword: Cow::Owned(keyword.to_owned()),
            value: value.map(|v| Cow::Owned(v.to_owned())),
        })
    }

    /// The keyword as sent.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The value, if any.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Param<'static> {
        Param {
            keyword: Cow::Owned(self.keyword.into_owned()),
            value: self.value.map(|v| Cow::Owned(v.into_owned())),
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_slice(self.keyword.as_bytes());
        if let Some(v) = &self.value {
            out.put_u8(b'=');
            out.put_slice(v.as_bytes());
        }
    }
}

/// The parameters of MAIL FROM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MailParams<'a> {
    /// `SIZE=` declared message size (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152, RFC 3030).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461).
    pub envid: Option<XText<'a>>,
    /// `AUTH=` (RFC 4954).
    pub auth: Option<MailAuth<'a>>,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// `MT-PRIORITY=` -9..=9 (RFC 6710).
    pub mt_priority: Option<i8>,
    /// `BY=` (RFC 2852).
    pub by: Option<DeliverBy>,
    /// Parameters not known here, in the order sent.
    pub other: Vec<Param<'a>>,
}

/// The parameters of RCPT TO.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RcptParams<'a> {
    /// `NOTIFY=` (RFC 3461).
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461).
    pub orcpt: Option<Orcpt<'a>>,
    /// Parameters not known here, in the order sent.
    pub other: Vec<Param<'a>>,
}

/// Splits `Mail-parameters = esmtp-param *(SP esmtp-param)` into keyword/value pairs.
/// Several spaces and trailing spaces are tolerated (documented leniency: common clients
/// emit them and they carry no ambiguity).
fn split_params(input: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    input
        .split(|&b| b == b' ')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
            None => (p, None),
        })
}

fn param_error(verb: Verb, keyword: &[u8], error: ParamError) -> CommandError {
    CommandError::Param {
        verb,
        keyword: String::from_utf8_lossy(keyword).to_ascii_uppercase(),
        error,
    }
}

fn str_of(v: &[u8]) -> Result<&str, ParamError> {
    std::str::from_utf8(v).map_err(|_| ParamError::InvalidValue)
}

fn need(value: Option<&[u8]>) -> Result<&[u8], ParamError> {
    value.ok_or(ParamError::MissingValue)
}

fn none(value: Option<&[u8]>) -> Result<(), ParamError> {
    match value {
        Some(_) => Err(ParamError::UnexpectedValue),
        None => Ok(()),
    }
}

/// `1*20DIGIT` as u64 (RFC 1870 §3 size-value), with overflow as its own error.
fn number(v: &[u8]) -> Result<u64, ParamError> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(ParamError::InvalidValue);
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(ParamError::Overflow)
    })
}

/// The keywords of one command's parameters so far, to refuse a repeated one. A few live
/// on the stack, since every MAIL and RCPT line is checked (no allocation per command).
#[derive(Default)]
struct Seen<'k> {
    first: [&'k [u8]; 8],
    n: usize,
    more: Vec<&'k [u8]>,
}

/// Records a keyword, refusing it the second time (case-insensitive).
fn first_time<'k>(seen: &mut Seen<'k>, keyword: &'k [u8]) -> Result<(), ParamError> {
    let known = &seen.first[..seen.n.min(seen.first.len())];
    if known
        .iter()
        .chain(&seen.more)
        .any(|s| s.eq_ignore_ascii_case(keyword))
    {
        return Err(ParamError::Duplicate);
    }
    match seen.first.get_mut(seen.n) {
        Some(slot) => *slot = keyword,
        None => seen.more.push(keyword),
    }
    seen.n += 1;
    Ok(())
}

fn unknown<'a>(
    keyword: &'a [u8],
    value: Option<&'a [u8]>,
    utf8: bool,
) -> Result<Param<'a>, ParamError> {
    if !is_keyword(keyword) {
        return Err(ParamError::Syntax);
    }
    let value = match value {
        Some(v) if is_value(v, utf8) => Some(Cow::Borrowed(str_of(v)?)),
        Some(_) => return Err(ParamError::Syntax),
        None => None,
    };
    Ok(Param {
        keyword: Cow::Borrowed(str_of(keyword)?),
        value,
    })
}

/// `BY=` value: `by-time ";" by-mode [by-trace]`.
fn deliver_by(v: &[u8]) -> Result<DeliverBy, ParamError> {
    let semi = v
        .iter()
        .position(|&b| b == b';')
        .ok_or(ParamError::InvalidValue)?;
    let (time, rest) = (&v[..semi], &v[semi + 1..]);
    let (negative, digits) = match time.first() {
        Some(b'-') => (true, &time[1..]),
        Some(b'+') => (false, &time[1..]),
        _ => (false, time),
    };
    if digits.is_empty() || digits.len() > 9 {
        return Err(ParamError::InvalidValue);
    }
    let n = i32::try_from(number(digits)?).map_err(|_| ParamError::InvalidValue)?;
    let time = if negative { -n } else { n };
    let (mode, trace) = match rest {
        [m] => (*m, false),
        [m, t] if t.eq_ignore_ascii_case(&b'T') => (*m, true),
        _ => return Err(ParamError::InvalidValue),
    };
    let mode = match mode.to_ascii_uppercase() {
        b'N' => ByMode::Notify,
        b'R' => ByMode::Return,
        _ => return Err(ParamError::InvalidValue),
    };
    // RFC 2852 §4: with mode R the time must be positive.
    if mode == ByMode::Return && time <= 0 {
        return Err(ParamError::InvalidValue);
    }
    Ok(DeliverBy { time, mode, trace })
}

impl<'a> MailParams<'a> {
    /// Parses the text after the reverse-path. `utf8` allows UTF-8 in unknown values.
    pub(crate) fn parse(input: &'a [u8], utf8: bool) -> Result<MailParams<'a>, CommandError> {
        let mut params = MailParams::default();
        let mut seen = Seen::default();
        for (keyword, value) in split_params(input) {
            params
                .add(keyword, value, utf8, &mut seen)
                .map_err(|e| param_error(Verb::Mail, keyword, e))?;
        }
        Ok(params)
    }

    fn add(
        &mut self,
        keyword: &'a [u8],
        value: Option<&'a [u8]>,
        utf8: bool,
        seen: &mut Seen<'a>,
    ) -> Result<(), ParamError> {
        first_time(seen, keyword)?;
        let upper = |k: &[u8], name: &str| k.eq_ignore_ascii_case(name.as_bytes());
        if upper(keyword, "SIZE") {
            self.size = Some(number(need(value)?)?);
        } else if upper(keyword, "BODY") {
            let v = need(value)?;
            self.body = Some(if v.eq_ignore_ascii_case(b"7BIT") {
                BodyType::SevenBit
            } else if v.eq_ignore_ascii_case(b"8BITMIME") {
                BodyType::EightBitMime
            } else if v.eq_ignore_ascii_case(b"BINARYMIME") {
                BodyType::BinaryMime
            } else {
                return Err(ParamError::InvalidValue);
            });
        } else if upper(keyword, "SMTPUTF8") {
            none(value)?;
            self.smtputf8 = true;
        } else if upper(keyword, "RET") {
            let v = need(value)?;
            self.ret = Some(if v.eq_ignore_ascii_case(b"FULL") {
                Ret::Full
            } else if v.eq_ignore_ascii_case(b"HDRS") {
                Ret::Hdrs
            } else {
                return Err(ParamError::InvalidValue);
            });
        } else if upper(keyword, "ENVID") {
            let v = XText::decode(need(value)?)?;
            // RFC 3461 §4.4: at most 100 characters.
            if v.as_str().len() > 100 {
                return Err(ParamError::InvalidValue);
            }
            self.envid = Some(v);
        } else if upper(keyword, "AUTH") {
            let v = need(value)?;
            self.auth = Some(if v == b"<>" {
                MailAuth::Unknown
            } else {
                MailAuth::Identity(XText::decode(v)?)
            });
        } else if upper(keyword, "REQUIRETLS") {
            none(value)?;
            self.requiretls = true;
        } else if upper(keyword, "MT-PRIORITY") {
            // RFC 6710 §3: priority-value = ["-" / "+"] DIGIT, -9..=9.
            let v = need(value)?;
            let p = match v {
                [d] if d.is_ascii_digit() => (d - b'0') as i8,
                [b'+', d] if d.is_ascii_digit() => (d - b'0') as i8,
                [b'-', d] if d.is_ascii_digit() => -((d - b'0') as i8),
                _ => return Err(ParamError::InvalidValue),
            };
            self.mt_priority = Some(p);
        } else if upper(keyword, "BY") {
            self.by = Some(deliver_by(need(value)?)?);
        } else {
            self.other.push(unknown(keyword, value, utf8)?);
        }
        Ok(())
    }

    /// Whether any parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == MailParams::default()
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> MailParams<'static> {
        MailParams {
            size: self.size,
            body: self.body,
            smtputf8: self.smtputf8,
            ret: self.ret,
            envid: self.envid.map(XText::into_owned),
            auth: self.auth.map(|a| match a {
                MailAuth::Unknown => MailAuth::Unknown,
                MailAuth::Identity(x) => MailAuth::Identity(x.into_owned()),
            }),
            requiretls: self.requiretls,
            mt_priority: self.mt_priority,
            by: self.by,
            other: self.other.into_iter().map(Param::into_owned).collect(),
        }
    }

    /// Writes ` KEY=VALUE` for each parameter, in a canonical order.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        if let Some(size) = self.size {
            out.put_slice(b" SIZE=");
            out.put_slice(size.to_string().as_bytes());
        }
        if let Some(body) = self.body {
            out.put_slice(b" BODY=");
            out.put_slice(body.as_str().as_bytes());
        }
        if self.smtputf8 {
            out.put_slice(b" SMTPUTF8");
        }
        if let Some(ret) = self.ret {
            out.put_slice(match ret {
                Ret::Full => b" RET=FULL",
                Ret::Hdrs => b" RET=HDRS",
            });
        }
        if let Some(envid) = &self.envid {
            out.put_slice(b" ENVID=");
            envid.encode(out);
        }
        match &self.auth {
            Some(MailAuth::Unknown) => out.put_slice(b" AUTH=<>"),
            // An identity that is literally `<>` would read back as `AUTH=<>`, the unknown
            // identity (RFC 4954 §5): its first octet goes out as a hexchar instead.
            Some(MailAuth::Identity(x)) if x.as_str() == "<>" => out.put_slice(b" AUTH=+3C>"),
            Some(MailAuth::Identity(x)) => {
                out.put_slice(b" AUTH=");
                x.encode(out);
            }
            None => {}
        }
        if self.requiretls {
            out.put_slice(b" REQUIRETLS");
        }
        if let Some(p) = self.mt_priority {
            out.put_slice(b" MT-PRIORITY=");
            out.put_slice(p.to_string().as_bytes());
        }
        if let Some(by) = self.by {
            out.put_slice(b" BY=");
            out.put_slice(by.time.to_string().as_bytes());
            out.put_u8(b';');
            out.put_u8(match by.mode {
                ByMode::Notify => b'N',
                ByMode::Return => b'R',
            });
            if by.trace {
                out.put_u8(b'T');
            }
        }
        for p in &self.other {
            out.put_u8(b' ');
            p.encode(out);
        }
    }
}

impl<'a> RcptParams<'a> {
    /// Parses the text after the forward-path.
    pub(crate) fn parse(input: &'a [u8], utf8: bool) -> Result<RcptParams<'a>, CommandError> {
        let mut params = RcptParams::default();
        let mut seen = Seen::default();
        for (keyword, value) in split_params(input) {
            params
                .add(keyword, value, utf8, &mut seen)
                .map_err(|e| param_error(Verb::Rcpt, keyword, e))?;
        }
        Ok(params)
    }

    fn add(
        &mut self,
        keyword: &'a [u8],
        value: Option<&'a [u8]>,
        utf8: bool,
        seen: &mut Seen<'a>,
    ) -> Result<(), ParamError> {
        first_time(seen, keyword)?;
        if keyword.eq_ignore_ascii_case(b"NOTIFY") {
            let v = need(value)?;
            let mut n = Notify::default();
            let mut never = false;
            let mut count = 0;
            for item in v.split(|&b| b == b',') {
                count += 1;
                let flag = if item.eq_ignore_ascii_case(b"NEVER") {
                    &mut never
                } else if item.eq_ignore_ascii_case(b"SUCCESS") {
                    &mut n.success
                } else if item.eq_ignore_ascii_case(b"FAILURE") {
                    &mut n.failure
                } else if item.eq_ignore_ascii_case(b"DELAY") {
                    &mut n.delay
                } else {
                    return Err(ParamError::InvalidValue);
                };
                if *flag {
                    return Err(ParamError::InvalidValue);
                }
                *flag = true;
            }
            // RFC 3461 §4.1: NEVER stands alone.
            if never && count > 1 {
                return Err(ParamError::InvalidValue);
            }
            self.notify = Some(n);
        } else if keyword.eq_ignore_ascii_case(b"ORCPT") {
            let v = need(value)?;
            let semi = v
                .iter()
                .position(|&b| b == b';')
                .ok_or(ParamError::InvalidValue)?;
            let (t, a) = (&v[..semi], &v[semi + 1..]);
            // addr-type = atom
            if t.is_empty() || !t.iter().all(|&b| crate::address::is_atext(b, false)) {
                return Err(ParamError::InvalidValue);
            }
            let addr = XText::decode(a)?;
            if addr.as_str().is_empty() {
                return Err(ParamError::InvalidValue);
            }
            self.orcpt = Some(Orcpt {
                addr_type: Cow::Borrowed(str_of(t)?),
                addr,
            });
        } else {
            self.other.push(unknown(keyword, value, utf8)?);
        }
        Ok(())
    }

    /// Whether any parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == RcptParams::default()
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> RcptParams<'static> {
        RcptParams {
            notify: self.notify,
            orcpt: self.orcpt.map(|o| Orcpt {
                addr_type: Cow::Owned(o.addr_type.into_owned()),
                addr: o.addr.into_owned(),
            }),
            other: self.other.into_iter().map(Param::into_owned).collect(),
        }
    }

    /// Writes ` KEY=VALUE` for each parameter, in a canonical order.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        if let Some(n) = self.notify {
            out.put_slice(b" NOTIFY=");
            if n.is_never() {
                out.put_slice(b"NEVER");
            } else {
                let mut first = true;
                for (on, name) in [
                    (n.success, "SUCCESS"),
                    (n.failure, "FAILURE"),
                    (n.delay, "DELAY"),
                ] {
                    if on {
                        if !first {
                            out.put_u8(b',');
                        }
                        out.put_slice(name.as_bytes());
                        first = false;
                    }
                }
            }
        }
        if let Some(o) = &self.orcpt {
            out.put_slice(b" ORCPT=");
            out.put_slice(o.addr_type.as_bytes());
            out.put_u8(b';');
            o.addr.encode(out);
        }
        for p in &self.other {
            out.put_u8(b' ');
            p.encode(out);
        }
    }
}

impl<'a> Orcpt<'a> {
    /// A value the caller has checked: `addr_type` an atom, `addr` not empty.
    pub(crate) fn borrowed(addr_type: &'a str, addr: XText<'a>) -> Orcpt<'a> {
        Orcpt {
            addr_type: Cow::Borrowed(addr_type),
            addr,
        }
    }

    /// `addr-type = atom` (registered: `rfc822`, `utf-8`).
    pub fn addr_type(&self) -> &str {
        &self.addr_type
    }

    /// The original recipient address, xtext-decoded.
    pub fn addr(&self) -> &XText<'a> {
        &self.addr
    }

    /// Builds an ORCPT value; `addr_type` must be an atom (`rfc822`, `utf-8`).
    pub fn new(addr_type: &str, addr: &str) -> Result<Orcpt<'static>, ParamError> {
        if addr_type.is_empty()
            || !addr_type
                .bytes()
                .all(|b| crate::address::is_atext(b, false))
        {
            return Err(ParamError::InvalidValue);
        }
        if addr.is_empty() {
            return Err(ParamError::InvalidValue);
        }
        Ok(Orcpt {
            addr_type: Cow::Owned(addr_type.to_owned()),
            addr: XText::new(addr.to_owned())?,
        })
    }
}

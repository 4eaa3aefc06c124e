//! The fast path of command parsing.
//!
//! Nearly every line a server reads has one of a few shapes: `MAIL FROM:<dot.string@domain>`
//! or `RCPT TO:<...>` with the common parameters, `EHLO domain`, or a verb alone. This
//! module parses exactly those in one pass, straight from the received bytes: each octet
//! is classified with one table lookup, the end of the line is found on the way (so the
//! line is not first searched for its CRLF), and once the whole line is accepted one UTF-8
//! check turns the part the command borrows into a `str` to slice the strings from.
//!
//! It never decides anything on its own: whatever it does not recognise — quoted local
//! parts, address literals, source routes, UTF-8, unknown parameters, and every error —
//! returns `None`, and the framer and the full parser in `command.rs` take the line from
//! the start. The full parser defines the semantics; the property tests below and the
//! `command_decode` fuzz target check that both paths agree wherever this one answers,
//! in `Command::parse_with` and in `CommandDecoder::decode`.

use super::Command;
use crate::address::{
    Domain, ForwardPath, Host, MAX_DOMAIN, MAX_LOCAL_PART, MAX_PATH, Mailbox, ReversePath,
};
use crate::params::{BodyType, MailAuth, MailParams, Notify, Orcpt, RcptParams, Ret, XText};
use crate::verb::Verb;

/// `atext` (RFC 5322 §3.2.3), ASCII only.
const ATEXT: u8 = 1;
/// Letter or digit (`Let-dig`): how a label starts and ends.
const LET_DIG: u8 = 4;
/// `xchar` (RFC 3461 §4): printable ASCII but `+` and `=`.
const XCHAR: u8 = 8;
/// `DIGIT`
const DIGIT: u8 = 16;

/// The class bits of every octet; 0 for controls, space and non-ASCII, so that nothing
/// this module accepts can hold them.
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() {
            class |= ATEXT | LET_DIG;
        }
        if b.is_ascii_digit() {
            class |= DIGIT;
        }
        if b == b'-' {
            class |= ATEXT;
        }
        if matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        ) {
            class |= ATEXT;
        }
        if matches!(b, 33..=42 | 44..=60 | 62..=126) {
            class |= XCHAR;
        }
        table[i] = class;
        i += 1;
    }
    table
}

#[inline(always)]
fn is(b: u8, class: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

/// Where the run of octets of `class` that starts at `i` ends.
#[inline(always)]
fn run(b: &[u8], i: usize, class: u8) -> usize {
    match b[i..].iter().position(|&c| !is(c, class)) {
        Some(n) => i + n,
        None => b.len(),
    }
}

/// A keyword matched case-insensitively with two overlapping word loads: its octets,
/// and for each the bits that must be equal (all but the case bit, for letters).
struct Keyword {
    len: usize,
    octets: [u8; 16],
    mask: [u8; 16],
}

impl Keyword {
    /// `word` in upper case, 4 to 16 octets.
    const fn new(word: &[u8]) -> Keyword {
        assert!(word.len() >= 4 && word.len() <= 16);
        let mut k = Keyword {
            len: word.len(),
            octets: [0; 16],
            mask: [0; 16],
        };
        let mut i = 0;
        while i < word.len() {
            k.octets[i] = word[i];
            k.mask[i] = if word[i].is_ascii_uppercase() {
                0xDF
            } else {
                0xFF
            };
            i += 1;
        }
        k
    }

    /// Whether `b` holds the keyword at `i`.
    #[inline(always)]
    fn at(&self, b: &[u8], i: usize) -> bool {
        let Some(s) = b.get(i..i + self.len) else {
            return false;
        };
        let n = self.len;
        if n >= 8 {
            let word =
                |a: &[u8]| u64::from_le_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
            let (head, tail) = (word(s), word(&s[n - 8..]));
            head & word(&self.mask) == word(&self.octets)
                && tail & word(&self.mask[n - 8..]) == word(&self.octets[n - 8..])
        } else {
            let word = |a: &[u8]| u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
            let (head, tail) = (word(s), word(&s[n - 4..]));
            head & word(&self.mask) == word(&self.octets)
                && tail & word(&self.mask[n - 4..]) == word(&self.octets[n - 4..])
        }
    }
}

/// Whether the line ends at `i`: the end of the input, or a CR. The caller checks that
/// the CR is followed by LF; nothing this module accepts holds a CR or an LF.
#[inline(always)]
fn at_end(b: &[u8], i: usize) -> bool {
    matches!(b.get(i), None | Some(b'\r'))
}

/// Whether a parameter (or a NOTIFY item) ends at `i`: the end of the line or a space.
#[inline(always)]
fn boundary(b: &[u8], i: usize) -> bool {
    matches!(b.get(i), None | Some(b' ' | b'\r'))
}

/// Trailing spaces, tolerated after every command (see `command.rs`), from `i` to the
/// end of the line: where the line ends.
#[inline(always)]
fn line_end(b: &[u8], i: usize) -> Option<usize> {
    let end = match b.get(i) {
        Some(b' ') => {
            i + b[i..]
                .iter()
                .position(|&c| c != b' ')
                .unwrap_or(b.len() - i)
        }
        _ => i,
    };
    at_end(b, end).then_some(end)
}

/// Parses the command at the start of `b` if it has one of the common shapes, and says
/// where its line ends: at the end of `b` or at a CR, which the caller checks.
///
/// ASCII only, so the session's UTF-8 option cannot change the answer. `b` may be one
/// line without its CRLF ([`Command::parse_with`]) or the start of the received bytes
/// ([`CommandDecoder::decode`](super::CommandDecoder::decode)): parsing up to the CR
/// finds the end of the line on the way, so the line is read once instead of being
/// searched for its CRLF first.
#[inline(always)]
pub(super) fn parse(b: &[u8]) -> Option<(Command<'_>, usize)> {
    let verb = Verb::from_bytes(b.get(..4)?)?;
    if let Some(end) = line_end(b, 4) {
        let command = match verb {
            Verb::Data => Command::Data,
            Verb::Rset => Command::Rset,
            Verb::Quit => Command::Quit,
            Verb::Noop => Command::Noop(None),
            Verb::Help => Command::Help(None),
            _ => return None,
        };
        return Some((command, end));
    }
    if b[4] != b' ' {
        return None;
    }
    match verb {
        Verb::Rcpt => rcpt(b),
        Verb::Mail => mail(b),
        Verb::Ehlo => domain_only(b).map(|(h, end)| (Command::Ehlo(h), end)),
        Verb::Helo => domain_only(b).map(|(h, end)| (Command::Helo(h), end)),
        Verb::Lhlo => domain_only(b).map(|(h, end)| (Command::Lhlo(h), end)),
        Verb::Bdat => bdat(b),
        _ => None,
    }
}

/// `Domain = sub-domain *("." sub-domain)`, ASCII, from `i`; returns where it ends.
#[inline(always)]
fn domain(b: &[u8], i: usize) -> Option<usize> {
    // One pass; a label is not empty, and starts and ends with a letter or digit.
    let mut label = i;
    let mut j = i;
    while let Some(&c) = b.get(j) {
        if is(c, LET_DIG) {
        } else if c == b'-' {
            if j == label {
                return None;
            }
        } else if c == b'.' {
            if j == label || b[j - 1] == b'-' {
                return None;
            }
            label = j + 1;
        } else {
            break;
        }
        j += 1;
    }
    if j == label || b[j - 1] == b'-' {
        return None;
    }
    Some(j)
}

/// `Dot-string = Atom *("." Atom)`, ASCII, from `i`; returns where it ends.
#[inline(always)]
fn dot_string(b: &[u8], i: usize) -> Option<usize> {
    // One pass; no dot first, last, or after another.
    let mut atom = i;
    let mut j = i;
    while let Some(&c) = b.get(j) {
        if is(c, ATEXT) {
        } else if c == b'.' {
            if j == atom {
                return None;
            }
            atom = j + 1;
        } else {
            break;
        }
        j += 1;
    }
    (j > atom).then_some(j)
}

/// `HELO`/`EHLO`/`LHLO` with a domain name and nothing else.
fn domain_only(b: &[u8]) -> Option<(Host<'_>, usize)> {
    let end = domain(b, 5)?;
    let line_end = line_end(b, end)?;
    if end - 5 > MAX_DOMAIN {
        return None;
    }
    let text = Text::new(b, 5, end, line_end)?;
    Some((Host::Domain(Domain::borrowed(text.get(5, end))), line_end))
}

/// The part of a line the command borrows strings from, as a `str`, made once the whole
/// line has been checked: every octet the fast path accepts is ASCII, so the one UTF-8
/// check cannot fail, and the strings are sliced from it.
///
/// The check starts at the word boundary at or before the first string, and runs on to a
/// multiple of 16 octets when the line allows (the octets around the strings were
/// checked too, up to the end of the line): the standard library checks aligned pairs of words at a time, but goes
/// octet by octet before the first aligned word and after the last whole pair.
struct Text<'a> {
    text: &'a str,
    /// Where `text` starts in the line.
    base: usize,
}

impl<'a> Text<'a> {
    /// The strings are within `from..to`; the line ends at `line_end`.
    fn new(line: &'a [u8], from: usize, to: usize, line_end: usize) -> Option<Text<'a>> {
        const WORD: usize = std::mem::size_of::<usize>();
        let base = from.saturating_sub((line.as_ptr() as usize + from) % WORD);
        let end = line_end.min(base + ((to - base + 2 * WORD - 1) & !(2 * WORD - 1)));
        let text = std::str::from_utf8(&line[base..end]).ok()?;
        Some(Text { text, base })
    }

    /// The string at `from..to` of the line.
    #[inline(always)]
    fn get(&self, from: usize, to: usize) -> &'a str {
        let (_, rest) = self.text.split_at(from - self.base);
        rest.split_at(to - from).0
    }
}

/// After `MAIL FROM:` or `RCPT TO:` at `i`: optional spaces, then where the path's `<`
/// is.
#[inline(always)]
fn path_start(b: &[u8], i: usize) -> Option<usize> {
    let lt = match b.get(i)? {
        b'<' => i,
        _ => i + b[i..].iter().position(|&c| c != b' ')?,
    };
    (b[lt] == b'<').then_some(lt)
}

/// `local@domain>` from `i` (just after `<`): where the `@` and the `>` are.
fn mailbox(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let at = dot_string(b, i)?;
    if b.get(at) != Some(&b'@') {
        return None;
    }
    let end = domain(b, at + 1)?;
    if b.get(end) != Some(&b'>') {
        return None;
    }
    let (local, host) = (at - i, end - at - 1);
    // The limits of RFC 5321 §4.5.3.1; the full parser reports which was broken.
    if local > MAX_LOCAL_PART || host > MAX_DOMAIN || local + host + 3 > MAX_PATH {
        return None;
    }
    Some((at, end))
}

/// The mailbox found by [`mailbox`] at `from..to` (`<` and `>` excluded).
fn mailbox_str<'a>(text: &Text<'a>, from: usize, at: usize, to: usize) -> Mailbox<'a> {
    let (local, rest) = text.get(from, to).split_at(at - from);
    let host = Host::Domain(Domain::borrowed(rest.split_at(1).1));
    Mailbox::borrowed(local, host)
}

/// What follows a path or a parameter.
enum Next {
    /// Spaces, then a parameter starting here.
    Param(usize),
    /// The end of the line, here (after any trailing spaces).
    End(usize),
    /// Anything else: not the fast path.
    Other,
}

/// What follows a path or a parameter ending at `i`.
#[inline(always)]
fn next_param(b: &[u8], i: usize) -> Next {
    match b.get(i) {
        None | Some(b'\r') => Next::End(i),
        Some(b' ') => {
            let j = i + b[i..]
                .iter()
                .position(|&c| c != b' ')
                .unwrap_or(b.len() - i);
            if at_end(b, j) {
                Next::End(j)
            } else {
                Next::Param(j)
            }
        }
        Some(_) => Next::Other,
    }
}

/// An xtext value without hexchars from `i` to the end of the parameter: where it ends.
/// Hexchars go to the full decoder.
fn plain_xtext(b: &[u8], i: usize) -> Option<usize> {
    let end = run(b, i, XCHAR);
    boundary(b, end).then_some(end)
}

/// `1*DIGIT` from `i` to the end of the parameter as u64, and where it ends. At most 19
/// digits, which cannot overflow; longer numbers go to the full parser.
fn number(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut j = i;
    while let Some(&c) = b.get(j) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if j - i == 19 {
            return None;
        }
        n = n * 10 + u64::from(d);
        j += 1;
    }
    (j > i && boundary(b, j)).then_some((n, j))
}

// Keywords with a value, `=` included.
const SIZE: Keyword = Keyword::new(b"SIZE=");
const BODY: Keyword = Keyword::new(b"BODY=");
const RET: Keyword = Keyword::new(b"RET=");
const ENVID: Keyword = Keyword::new(b"ENVID=");
const AUTH: Keyword = Keyword::new(b"AUTH=");
const NOTIFY: Keyword = Keyword::new(b"NOTIFY=");
const ORCPT: Keyword = Keyword::new(b"ORCPT=");
// Keywords and values standing alone.
const SMTPUTF8: Keyword = Keyword::new(b"SMTPUTF8");
const REQUIRETLS: Keyword = Keyword::new(b"REQUIRETLS");
const EIGHT_BIT_MIME: Keyword = Keyword::new(b"8BITMIME");
const SEVEN_BIT: Keyword = Keyword::new(b"7BIT");
const BINARY_MIME: Keyword = Keyword::new(b"BINARYMIME");
const FULL: Keyword = Keyword::new(b"FULL");
const HDRS: Keyword = Keyword::new(b"HDRS");
const NEVER: Keyword = Keyword::new(b"NEVER");
const SUCCESS: Keyword = Keyword::new(b"SUCCESS");
const FAILURE: Keyword = Keyword::new(b"FAILURE");
const DELAY: Keyword = Keyword::new(b"DELAY");
const LAST: Keyword = Keyword::new(b"LAST");
// After the verb, its space included.
const FROM: Keyword = Keyword::new(b" FROM:");
const TO: Keyword = Keyword::new(b" TO:");
const POSTMASTER: Keyword = Keyword::new(b"<POSTMASTER>");

/// A value standing alone from `i` to the end of the parameter: where it ends.
#[inline(always)]
fn whole(b: &[u8], i: usize, value: &Keyword) -> Option<usize> {
    let end = i + value.len;
    (value.at(b, i) && boundary(b, end)).then_some(end)
}

/// Where a MAIL parameter of string value is, before the strings are made.
#[derive(Clone, Copy)]
enum Value {
    Absent,
    /// `AUTH=<>`
    Unknown,
    At(usize, usize),
}

#[inline(always)]
fn mail(b: &[u8]) -> Option<(Command<'_>, usize)> {
    if !FROM.at(b, 4) {
        return None;
    }
    let lt = path_start(b, 10)?;
    let (path, mut i) = if b.get(lt + 1) == Some(&b'>') {
        (None, lt + 2)
    } else {
        let (at, end) = mailbox(b, lt + 1)?;
        (Some((at, end)), end + 1)
    };
    let (mut size, mut body, mut smtputf8, mut ret) = (None, None, false, None);
    let (mut envid, mut auth, mut requiretls) = (Value::Absent, Value::Absent, false);
    // Where the strings end.
    let mut last = path.map_or(0, |(_, end)| end);
    let line_end = loop {
        let start = match next_param(b, i) {
            Next::Param(start) => start,
            Next::End(end) => break end,
            Next::Other => return None,
        };
        // Each keyword once: a second one is an error, left to the full parser.
        i = match b[start] & 0xDF {
            b'S' if size.is_none() && SIZE.at(b, start) => {
                let (n, end) = number(b, start + 5)?;
                size = Some(n);
                end
            }
            b'S' if !smtputf8 => {
                smtputf8 = true;
                whole(b, start, &SMTPUTF8)?
            }
            b'B' if body.is_none() && BODY.at(b, start) => {
                let v = start + 5;
                let (kind, end) = match *b.get(v)? {
                    b'8' => (BodyType::EightBitMime, whole(b, v, &EIGHT_BIT_MIME)?),
                    b'7' => (BodyType::SevenBit, whole(b, v, &SEVEN_BIT)?),
                    _ => (BodyType::BinaryMime, whole(b, v, &BINARY_MIME)?),
                };
                body = Some(kind);
                end
            }
            b'R' if ret.is_none() && RET.at(b, start) => {
                let v = start + 4;
                let (kind, end) = match b.get(v)? & 0xDF {
                    b'F' => (Ret::Full, whole(b, v, &FULL)?),
                    _ => (Ret::Hdrs, whole(b, v, &HDRS)?),
                };
                ret = Some(kind);
                end
            }
            b'R' if !requiretls => {
                requiretls = true;
                whole(b, start, &REQUIRETLS)?
            }
            b'E' if matches!(envid, Value::Absent) && ENVID.at(b, start) => {
                let end = plain_xtext(b, start + 6)?;
                // RFC 3461 §4.4: at most 100 characters.
                if end - (start + 6) > 100 {
                    return None;
                }
                envid = Value::At(start + 6, end);
                last = end;
                end
            }
            b'A' if matches!(auth, Value::Absent) && AUTH.at(b, start) => {
                let v = start + 5;
                if b.get(v..v + 2) == Some(b"<>") && boundary(b, v + 2) {
                    auth = Value::Unknown;
                    v + 2
                } else {
                    let end = plain_xtext(b, v)?;
                    auth = Value::At(v, end);
                    last = end;
                    end
                }
            }
            _ => return None,
        };
    };
    // Where the strings start: the path comes first; ENVID and AUTH in either order.
    let start = |v| match v {
        Value::At(from, _) => from,
        _ => last,
    };
    let first = match path {
        Some(_) => lt + 1,
        None => start(envid).min(start(auth)),
    };
    let text = Text::new(b, first, last, line_end)?;
    let xtext = |v| match v {
        Value::At(from, to) => Some(XText::borrowed(text.get(from, to))),
        _ => None,
    };
    let command = Command::Mail {
        from: match path {
            Some((at, end)) => ReversePath::Mailbox(mailbox_str(&text, lt + 1, at, end)),
            None => ReversePath::Null,
        },
        params: MailParams {
            size,
            body,
            smtputf8,
            ret,
            envid: xtext(envid),
            auth: match auth {
                Value::Absent => None,
                Value::Unknown => Some(MailAuth::Unknown),
                at => xtext(at).map(MailAuth::Identity),
            },
            requiretls,
            ..MailParams::default()
        },
    };
    Some((command, line_end))
}

#[inline(always)]
fn rcpt(b: &[u8]) -> Option<(Command<'_>, usize)> {
    if !TO.at(b, 4) {
        return None;
    }
    let lt = path_start(b, 8)?;
    let (path, mut i) = if POSTMASTER.at(b, lt) {
        (None, lt + 12)
    } else {
        let (at, end) = mailbox(b, lt + 1)?;
        (Some((at, end)), end + 1)
    };
    let (mut notify, mut orcpt) = (None, None);
    let line_end = loop {
        let start = match next_param(b, i) {
            Next::Param(start) => start,
            Next::End(end) => break end,
            Next::Other => return None,
        };
        i = match b[start] & 0xDF {
            b'N' if notify.is_none() && NOTIFY.at(b, start) => {
                let (value, end) = notify_value(b, start + 7)?;
                notify = Some(value);
                end
            }
            b'O' if orcpt.is_none() && ORCPT.at(b, start) => {
                // addr-type ";" xtext, the type an atom and the address not empty.
                let semi = run(b, start + 6, ATEXT);
                if semi == start + 6 || b.get(semi) != Some(&b';') || boundary(b, semi + 1) {
                    return None;
                }
                let end = plain_xtext(b, semi + 1)?;
                orcpt = Some((start + 6, semi, end));
                end
            }
            _ => return None,
        };
    };
    let first = match (path, orcpt) {
        (Some(_), _) => lt + 1,
        (None, Some((from, _, _))) => from,
        (None, None) => lt,
    };
    let last = match (path, orcpt) {
        (_, Some((_, _, end))) => end,
        (Some((_, end)), None) => end,
        (None, None) => lt,
    };
    let text = Text::new(b, first, last, line_end)?;
    let command = Command::Rcpt {
        to: match path {
            Some((at, end)) => ForwardPath::Mailbox(mailbox_str(&text, lt + 1, at, end)),
            None => ForwardPath::Postmaster,
        },
        params: RcptParams {
            notify,
            orcpt: orcpt.map(|(from, semi, end)| {
                Orcpt::borrowed(
                    text.get(from, semi),
                    XText::borrowed(text.get(semi + 1, end)),
                )
            }),
            other: Vec::new(),
        },
    };
    Some((command, line_end))
}

/// `NOTIFY=NEVER` or a list of SUCCESS, FAILURE, DELAY, each at most once (RFC 3461
/// §4.1), from `i`; and where it ends.
fn notify_value(b: &[u8], mut i: usize) -> Option<(Notify, usize)> {
    if b.get(i)? & 0xDF == b'N' {
        return Some((Notify::NEVER, whole(b, i, &NEVER)?));
    }
    let mut n = Notify::default();
    loop {
        let (flag, word) = match b.get(i)? & 0xDF {
            b'S' => (&mut n.success, &SUCCESS),
            b'F' => (&mut n.failure, &FAILURE),
            b'D' => (&mut n.delay, &DELAY),
            _ => return None,
        };
        if *flag || !word.at(b, i) {
            return None;
        }
        *flag = true;
        i += word.len;
        match b.get(i) {
            Some(b',') => i += 1,
            None | Some(b' ' | b'\r') => return Some((n, i)),
            Some(_) => return None,
        }
    }
}

/// `BDAT chunk-size [SP "LAST"]`.
fn bdat(b: &[u8]) -> Option<(Command<'static>, usize)> {
    let (size, end) = number(b, 5)?;
    let (last, line_end) = match line_end(b, end) {
        Some(line_end) => (false, line_end),
        None if b[end] == b' ' && LAST.at(b, end + 1) => (true, line_end(b, end + 5)?),
        None => return None,
    };
    Some((Command::Bdat { size, last }, line_end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fast path agrees with the full parser wherever it answers, and answers for
    /// the common shapes.
    fn agrees(line: &[u8], utf8: bool) -> bool {
        let options = super::super::ParseOptions { utf8 };
        match parse(line)
            .filter(|&(_, end)| end == line.len())
            .map(|(c, _)| c)
        {
            Some(fast) => {
                assert_eq!(
                    Ok(&fast),
                    Command::parse_full(line, options).as_ref(),
                    "{:?}",
                    String::from_utf8_lossy(line)
                );
                true
            }
            None => false,
        }
    }

    #[test]
    fn common_shapes_take_the_fast_path() {
        for line in [
            &b"MAIL FROM:<alice.sender@example.org> SIZE=65536 BODY=8BITMIME"[..],
            b"mail from: <a@b>  size=1  ",
            b"MAIL FROM:<>",
            b"MAIL FROM:<a@b.c> RET=HDRS ENVID=QQ314159 AUTH=<> SMTPUTF8 REQUIRETLS",
            b"MAIL FROM:<a@b.c> AUTH=e@x.org BODY=binarymime RET=full",
            // Found by the address_params fuzz target: strings after a null path, AUTH
            // (empty) before ENVID.
            b"MAIL FROM:<> AUTH= ENVID=ORCB",
            b"MAIL FROM:<> ENVID=X AUTH=y@z",
            b"RCPT TO:<carol@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@example.com",
            b"RCPT TO:<postmaster>",
            b"RCPT TO:<Postmaster@example.org> NOTIFY=never",
            b"RCPT TO:<a+b-c_d@x-y.example> NOTIFY=DELAY",
            b"EHLO client.example.org",
            b"HELO x",
            b"LHLO a.b",
            b"DATA",
            b"RSET  ",
            b"QUIT",
            b"NOOP",
            b"HELP",
            b"BDAT 1000 LAST",
            b"BDAT 0",
        ] {
            assert!(agrees(line, false), "{:?}", String::from_utf8_lossy(line));
            assert!(agrees(line, true), "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn everything_else_goes_to_the_full_parser() {
        for line in [
            &b"MAIL FROM:<\"quoted\"@example.org>"[..],
            b"MAIL FROM:<a@[192.0.2.1]>",
            b"MAIL FROM:<@route:a@b>",
            b"MAIL FROM:<a@b> SIZE=1 SIZE=2",
            b"MAIL FROM:<a@b> SIZE=184467440737095516160",
            b"MAIL FROM:<a@b> SIZE=",
            b"MAIL FROM:<a@b> BODY=9BIT",
            b"MAIL FROM:<a@b> X-UNKNOWN=1",
            b"MAIL FROM:<a@b> ENVID=a+2Bb",
            b"MAIL FROM:<a@b>X",
            b"MAIL FROM:<a.@b>",
            b"MAIL FROM:<a@-b>",
            b"MAIL FROM:<a@b.>",
            b"MAIL FROM:<a@b..c>",
            b"MAIL  FROM:<a@b>",
            b"RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS",
            b"RCPT TO:<a@b> NOTIFY=SUCCESS,SUCCESS",
            b"RCPT TO:<a@b> ORCPT=rfc822;",
            b"RCPT TO:<a@b> ORCPT=rfc822",
            b"RCPT TO:<\xc3\xa9@b>",
            b"EHLO [192.0.2.1]",
            b"EHLO a b",
            b"DATA x",
            b"NOOP\0",
            b"XYZZY",
            b"STARTTLS",
            b"BDAT 10 FIRST",
        ] {
            assert!(!agrees(line, false), "{:?}", String::from_utf8_lossy(line));
        }
        let long_local = format!("MAIL FROM:<{}@b>", "a".repeat(65));
        assert!(!agrees(long_local.as_bytes(), false));
    }

    /// Lines built from the pieces of the grammar and its near misses.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            "MAIL FROM:",
            "RCPT TO:",
            "mail from:",
            "EHLO ",
            "HELO ",
            "BDAT ",
            "DATA",
            "<",
            ">",
            "<>",
            "@",
            ".",
            "a",
            "Z9",
            "-",
            "_",
            "+",
            " ",
            "  ",
            "\"",
            "[1.2.3.4]",
            "postmaster",
            "Postmaster",
            "SIZE=",
            "size=",
            "BODY=",
            "8BITMIME",
            "7BIT",
            "SMTPUTF8",
            "RET=",
            "FULL",
            "ENVID=",
            "AUTH=",
            "REQUIRETLS",
            "NOTIFY=",
            "SUCCESS",
            "FAILURE",
            "DELAY",
            "NEVER",
            ",",
            "ORCPT=",
            "rfc822;",
            ";",
            "=",
            "123",
            "99999999999999999999999",
            "LAST",
            "\0",
            "\t",
            "é",
            "\u{7f}",
            ":",
        ]);
        prop::collection::vec(piece, 0..16).prop_map(|p| p.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn fast_path_agrees_with_the_full_parser(line in line(), utf8 in any::<bool>()) {
            agrees(&line, utf8);
        }

        #[test]
        fn decoder_agrees_with_the_framer_and_the_full_parser(
            lines in prop::collection::vec((line(), prop::sample::select(vec!["\r\n", "\r\n", "\n", "\r", "\r\r\n", " \r\n"])), 0..6),
            max_line in prop::sample::select(vec![512usize, 24, 40]),
        ) {
            use crate::line::{Line, LineFramer};
            use super::super::{CommandDecoder, Decoded};
            let mut input = Vec::new();
            for (line, end) in &lines {
                input.extend_from_slice(line);
                input.extend_from_slice(end.as_bytes());
            }
            let mut decoder = CommandDecoder::new(max_line);
            let mut framer = LineFramer::new(max_line);
            let (mut rest, mut reference) = (&input[..], &input[..]);
            loop {
                let fast = decoder.decode(rest);
                let slow = match framer.next_line(reference) {
                    Line::NeedMore { discarded } => Decoded::NeedMore { discarded },
                    Line::Error { error, consumed } => Decoded::Error { error, consumed },
                    Line::Complete { line, consumed } => match Command::parse_full(line, Default::default()) {
                        Ok(command) => Decoded::Command { command, consumed },
                        Err(error) => Decoded::Error { error, consumed },
                    },
                };
                prop_assert_eq!(&fast, &slow);
                match fast {
                    Decoded::NeedMore { .. } => break,
                    Decoded::Command { consumed, .. } | Decoded::Error { consumed, .. } => {
                        rest = &rest[consumed..];
                        reference = &reference[consumed..];
                    }
                }
            }
        }

        #[test]
        fn fast_path_agrees_on_any_bytes(line in prop::collection::vec(any::<u8>(), 0..64), utf8 in any::<bool>()) {
            agrees(&line, utf8);
        }
    }
}

//! The fast path of EHLO parsing.
//!
//! Nearly every EHLO reply has one shape: lines of `250-` or `250 `, a domain and
//! greeting, then one keyword per line, alone or followed by space-separated parameters,
//! each line ending in CRLF, all of it UTF-8 (ASCII, in practice). This module reads exactly that shape in one pass: a search
//! eight octets at a time for the first octet below 0x21 finds where the keyword ends,
//! and on a keyword-only line that octet is the CR, so finding the keyword also frames
//! the line. Keywords and parameters then go through the same code as the full parser
//! (`Capabilities::keyword_line`), so only the framing is done twice.
//!
//! It never decides anything on its own: whatever it does not recognise — another code,
//! an enhanced status code, a tab, a bare CR or LF, a NUL, text that is not UTF-8, a line
//! near the length limits, bytes after the reply, every error — returns `None`, and
//! `Capabilities::parse_full` takes the reply from the start. The full parser defines the
//! semantics; the property tests below and the `reply_decode` fuzz target check that both
//! agree wherever this one answers.

use super::{Capabilities, Keyword, Line, below, load};
use crate::reply::{DEFAULT_MAX_REPLY, MAX_REPLY_LINE};

/// How a line that is not the last starts: `250-`, read as one little-endian word.
const MORE: u32 = u32::from_le_bytes(*b"250-");
/// How the last line starts: `250 `.
const LAST: u32 = u32::from_le_bytes(*b"250 ");

/// The capabilities in `input`, one whole EHLO reply of the common shape; `None` for
/// anything else.
pub(super) fn parse(input: &[u8]) -> Option<Capabilities> {
    // Within the reply limit, every line within the line limit cannot break a limit.
    if input.len() > DEFAULT_MAX_REPLY {
        return None;
    }
    // One check for the whole reply; the words kept are slices of it.
    let whole = std::str::from_utf8(input).ok()?;
    let line = |at: &Framed| Line {
        bytes: &input[at.text..at.end],
        readable: &input[at.text..],
        text: Some((whole, at.text)),
    };
    let mut at = frame(input, 0)?;
    // Text that starts with the class digit may start with an enhanced code, and a first
    // line without a domain is an error: both are for the full parser.
    if input[at.text] == b'2' {
        return None;
    }
    let mut caps = Capabilities::from_first_line(&line(&at)).ok()?;
    while !at.last {
        at = frame(input, at.end + 2)?;
        if at.stop > at.text {
            // The keyword starts the text and ends at `stop`, the first white space.
            let word = &input[at.text..at.stop];
            let known = match at.head {
                Some(eight) => Keyword::lookup_eight(word, eight),
                None => Keyword::lookup(word),
            };
            match known.and_then(|known| caps.flag_mut(known)) {
                // Most lines: a flag alone, set without more ado.
                Some(flag) => *flag = true,
                None => caps.keyword_line(&line(&at), 0..at.stop - at.text, known),
            }
        } else {
            // An empty line, or one that starts with white space.
            caps.ehlo_line(&line(&at));
        }
    }
    (at.end + 2 == input.len()).then_some(caps)
}

/// Where the parts of a line of the common shape are, as offsets of the input.
struct Framed {
    /// The line starts with `250 `, not `250-`.
    last: bool,
    /// The text, after `250-` or `250 `.
    text: usize,
    /// The first eight octets of the text, when there are eight: those of the keyword.
    head: Option<u64>,
    /// The first octet of the text below 0x21: a space, or the CR ending the line.
    stop: usize,
    /// The CR ending the line.
    end: usize,
}

/// The line of the common shape starting at `start`, or `None`. Inlined by hand into
/// the loop, which runs once per line.
#[inline(always)]
fn frame(input: &[u8], start: usize) -> Option<Framed> {
    let lead = u32::from_le_bytes(input.get(start..start + 4)?.try_into().ok()?);
    let last = match lead {
        MORE => false,
        LAST => true,
        _ => return None,
    };
    let text = start + 4;
    // The keyword ends at a space before parameters, or at the CR ending the line;
    // anything else below 0x21 (a tab, a control character) is for the full parser. Its
    // first eight octets are read once, to find its end and to look it up.
    let head = input.get(text..text + 8).map(load);
    let stop = match head.map(|eight| below(eight, 0x21)) {
        Some(0) => next_below(input, text + 8, 0x21)?,
        Some(low) => text + (low.trailing_zeros() / 8) as usize,
        None => next_below(input, text, 0x21)?,
    };
    let end = match input[stop] {
        b'\r' => stop,
        b' ' => next_below(input, stop + 1, 0x0e).filter(|&cr| input[cr] == b'\r')?,
        _ => return None,
    };
    if input.get(end + 1) != Some(&b'\n') || end + 2 - start > MAX_REPLY_LINE {
        return None;
    }
    Some(Framed {
        last,
        text,
        head,
        stop,
        end,
    })
}

/// The offset of the first octet below `n` in `input` from `at` on, searched eight
/// octets at a time; `None` when there is none.
#[inline]
fn next_below(input: &[u8], at: usize, n: u8) -> Option<usize> {
    let rest = input.get(at..)?;
    let mut eights = rest.chunks_exact(8);
    let mut base = at;
    for eight in &mut eights {
        let low = below(load(eight), n);
        if low != 0 {
            // The lowest mark is the first octet below `n`.
            return Some(base + (low.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    if eights.remainder().is_empty() {
        return None;
    }
    // Fewer than eight octets left: the last eight, those before `base` masked off.
    let last = input.len().checked_sub(8)?;
    let low = below(load(&input[last..]), n) & (!0 << (8 * (base - last)));
    (low != 0).then(|| last + (low.trailing_zeros() / 8) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ehlo::EhloError;
    use crate::reply::Reply;
    use proptest::prelude::*;

    /// The fast path agrees with the full parser (and with `Reply::parse` followed by
    /// `from_reply`) wherever it answers; says whether it answered.
    fn agrees(input: &[u8]) -> bool {
        let shown = String::from_utf8_lossy(input);
        let via_reply = Reply::parse(input)
            .map_err(EhloError::from)
            .and_then(|reply| Capabilities::from_reply(&reply));
        assert_eq!(Capabilities::parse_full(input), via_reply, "{shown:?}");
        assert_eq!(Capabilities::parse(input), via_reply, "{shown:?}");
        match parse(input) {
            Some(fast) => {
                assert_eq!(Ok(fast), via_reply, "{shown:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn common_shapes_take_the_fast_path() {
        for input in [
            &b"250-mx.example.org Hello client.example.org [192.0.2.7]\r\n250-PIPELINING\r\n\
               250-SIZE 52428800\r\n250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n\
               250-AUTH=PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n\
               250-SMTPUTF8\r\n250 CHUNKING\r\n"[..],
            b"250 mx\r\n",
            b"250 mx.example.org\r\n",
            b"250-mx\r\n250 dsn\r\n",
            b"250-mx\r\n250-\r\n250 8bitmime\r\n",
            b"250-mx h\xc3\xa9\r\n250-auth   plain  login \r\n250 X-EXPS GSSAPI NTLM\r\n",
            b"250-mx\r\n250-SIZE 1\r\n250-SIZE 2\r\n250-MT-PRIORITY MIXER\r\n250 DELIVERBY 60\r\n",
            b"250-mx\r\n250-  leading\r\n250 =junk\r\n",
        ] {
            assert!(agrees(input), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn everything_else_goes_to_the_full_parser() {
        let long = [&b"250-mx\r\n250 X "[..], &[b'a'; 510], b"\r\n"].concat();
        for input in [
            &b"250-2.0.0 mx\r\n250 2.0.0 DSN\r\n"[..],
            b"250-mx\r\n250 AUTH\tPLAIN\r\n",
            b"250-mx\r\n250\tPIPELINING\r\n",
            b"250-mx\r\n250 SIZE\n",
            b"250-mx\r\n250 SIZE\r",
            b"250-mx\r\n250 SIZE\0\r\n",
            b"250-mx\r\n250 SIZE",
            b"250-mx\r\n251 SIZE\r\n",
            b"250-mx\r\n250 SIZE\r\n250 X\r\n",
            b"250-mx \xff\r\n250 SIZE\r\n",
            b"250\r\n",
            b"250 \r\n",
            b"250-mx\r\n250\r\n",
            b"502 5.5.1 no\r\n",
            &long,
        ] {
            assert!(!agrees(input), "{:?}", String::from_utf8_lossy(input));
        }
    }

    /// EHLO-shaped bytes: reply codes and separators, keywords in both cases, parameters,
    /// runs of white space, line ends good and bad, octets that are not UTF-8.
    fn ehlo_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = proptest::sample::select(vec![
            &b"250-"[..],
            &b"250 "[..],
            &b"251-"[..],
            &b"250"[..],
            &b"\r\n"[..],
            &b"\r\n250-"[..],
            &b"\r"[..],
            &b"\n"[..],
            &b" "[..],
            &b"   "[..],
            &b"\t"[..],
            &b"\x0c"[..],
            &b"\0"[..],
            &b"2.0.0 "[..],
            &b"mx.example.org"[..],
            &b"AUTH"[..],
            &b"auth"[..],
            &b"AUTH="[..],
            &b"auth=login"[..],
            &b"PLAIN"[..],
            &b"login"[..],
            &b"SIZE"[..],
            &b"SIZE 1000"[..],
            &b"99999999999999999999"[..],
            &b"PIPELINING"[..],
            &b"pipelining"[..],
            &b"ENHANCEDSTATUSCODES"[..],
            &b"MT-PRIORITY"[..],
            &b"DELIVERBY"[..],
            &b"X-EXPS"[..],
            &b"-x"[..],
            &b"\xc3\xa9"[..],
            &b"\xff"[..],
            &b"\xc3"[..],
        ])
        .prop_map(<[u8]>::to_vec);
        let piece = prop_oneof![
            8 => piece,
            1 => "[ -~]{0,12}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..4),
            // Lines near and over the length limit.
            1 => (500usize..530).prop_map(|n| vec![b'a'; n]),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn fast_path_agrees_with_the_full_parser(input in ehlo_like()) {
            agrees(&input);
        }

        #[test]
        fn fast_path_agrees_on_well_framed_lines(
            lines in proptest::collection::vec(ehlo_like(), 1..14),
            last_separator in any::<bool>(),
        ) {
            // Mostly well-framed replies, so that the fast path answers often.
            let count = lines.len();
            let mut input = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                input.extend_from_slice(if i + 1 < count || !last_separator { b"250-" } else { b"250 " });
                input.extend_from_slice(line);
                input.extend_from_slice(b"\r\n");
            }
            agrees(&input);
        }

        #[test]
        fn fast_path_agrees_on_any_bytes(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            agrees(&input);
        }
    }
}

//! The line framer: finds complete CRLF-terminated lines in what has arrived so far,
//! within the limits of RFC 5321 §4.5.3.1, without buffering more than the limit.
//!
//! Framing comes before parsing, so the parsers only ever see whole lines. An over-long
//! line is reported once and the rest of it, up to its LF, is skipped: the session resumes
//! cleanly at the next line. A bare CR or bare LF inside a line is its own error, since
//! those are how SMTP smuggling and command injection start.

use memchr::{memchr, memchr2};

use crate::error::CommandError;

/// RFC 5321 §4.5.3.1.4: "The maximum total length of a command line including the
/// command word and the `<CRLF>` is 512 octets." SMTP extensions may raise it (RFC 1869 §4.1.2:
/// each keyword's parameters may add to it).
pub const MAX_COMMAND_LINE: usize = 512;

/// RFC 4954 §4: "the SASL line length ... 12288 octets" for AUTH and its continuation
/// lines.
pub const MAX_AUTH_LINE: usize = 12288;

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// No complete line yet; `discarded` octets at the start of the buffer were the tail
    /// of an over-long line and must be dropped by the caller.
    NeedMore {
        /// Octets to drop from the start of the buffer.
        discarded: usize,
    },
    /// A complete line, without its CRLF. `consumed` counts everything to drop from the
    /// buffer, CRLF and any skipped tail of an earlier over-long line included: the line
    /// starts at `consumed - line.len() - 2`, not necessarily at the start of the buffer.
    Complete {
        /// The line, CRLF excluded.
        line: &'a [u8],
        /// Octets to drop from the start of the buffer.
        consumed: usize,
    },
    /// A framing error ([`CommandError::LineTooLong`], [`CommandError::BareCr`],
    /// [`CommandError::BareLf`]).
    Error {
        /// What went wrong.
        error: CommandError,
        /// Octets to drop from the start of the buffer.
        consumed: usize,
    },
}

/// Splits a byte stream into command lines.
///
/// The framer keeps its place: when a line has not ended yet, it remembers how much of it
/// it has looked at, and the next call looks only at what came after (a line arriving in
/// many small reads is scanned once, not once per read). So between two calls the caller
/// must do what the result says and nothing else: drop the `consumed` or `discarded`
/// octets from the start of its buffer, and append what it reads. A buffer shorter than
/// what was looked at starts the scan over; anything else, call [`reset`](Self::reset).
///
/// ```
/// use smtp_proto::{Line, LineFramer};
/// let mut framer = LineFramer::new(512);
/// assert_eq!(framer.next_line(b"NOOP"), Line::NeedMore { discarded: 0 });
/// assert_eq!(framer.next_line(b"NOOP\r\nQUIT\r\n"), Line::Complete { line: b"NOOP", consumed: 6 });
/// ```
#[derive(Clone, Debug)]
pub struct LineFramer {
    max_len: usize,
    /// Inside the tail of an over-long line that was already reported.
    skipping: bool,
    /// Octets at the start of the buffer (once `discarded` is dropped) already found to
    /// hold no CR or LF: the scan resumes there.
    scanned: usize,
}

impl Default for LineFramer {
    fn default() -> Self {
        LineFramer::new(MAX_COMMAND_LINE)
    }
}

impl LineFramer {
    /// A framer for lines of at most `max_len` octets including CRLF (at least 3).
    pub fn new(max_len: usize) -> LineFramer {
        LineFramer {
            max_len: max_len.max(3),
            skipping: false,
            scanned: 0,
        }
    }

    /// The current limit.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Changes the limit, e.g. to [`MAX_AUTH_LINE`] while an AUTH exchange runs.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.max(3);
    }

    /// Whether the framer is skipping the tail of an over-long line.
    pub fn is_skipping(&self) -> bool {
        self.skipping
    }

    /// Whether part of a line has been looked at and the line has not ended yet: the
    /// next call resumes the scan where this one stopped.
    pub fn is_mid_line(&self) -> bool {
        self.scanned > 0
    }

    /// Forgets the line in progress (and the tail of an over-long line being skipped):
    /// the next call scans its buffer from the start. For a caller whose buffer changed
    /// other than by dropping what the framer said and appending.
    pub fn reset(&mut self) {
        self.skipping = false;
        self.scanned = 0;
    }

    /// Looks for the next line at the start of `buf`.
    pub fn next_line<'a>(&mut self, buf: &'a [u8]) -> Line<'a> {
        let mut start = 0;
        if self.skipping {
            match memchr(b'\n', buf) {
                Some(lf) => {
                    self.skipping = false;
                    start = lf + 1;
                }
                None => {
                    return Line::NeedMore {
                        discarded: buf.len(),
                    };
                }
            }
        }
        let rest = &buf[start..];
        // Content may be at most max_len - 2 octets, so the CR must be within the first
        // max_len - 1 octets.
        let window = &rest[..rest.len().min(self.max_len - 1)];
        // Resume after what earlier calls found free of CR and LF (none of it if the
        // buffer is shorter than that: it is not the one they saw).
        let from = match self.scanned {
            n if n <= window.len() => n,
            _ => 0,
        };
        self.scanned = 0;
        match find_cr_or_lf(&window[from..]).map(|i| from + i) {
            Some(i) if rest[i] == b'\n' => Line::Error {
                error: CommandError::BareLf,
                consumed: start + i + 1,
            },
            Some(i) => match rest.get(i + 1) {
                Some(b'\n') => Line::Complete {
                    line: &rest[..i],
                    consumed: start + i + 2,
                },
                Some(_) => Line::Error {
                    error: CommandError::BareCr,
                    consumed: start + i + 1,
                },
                None => {
                    // A CR last: what comes next decides.
                    self.scanned = i;
                    Line::NeedMore { discarded: start }
                }
            },
            None if rest.len() >= self.max_len - 1 => {
                // Report now, with bounded memory; the tail is skipped later.
                self.skipping = true;
                Line::Error {
                    error: CommandError::LineTooLong,
                    consumed: start + self.max_len - 1,
                }
            }
            None => {
                self.scanned = window.len();
                Line::NeedMore { discarded: start }
            }
        }
    }
}

/// The first CR or LF in `hay`. A piece of a few octets (a line arriving in small reads)
/// is looked at octet by octet: `memchr2` costs more to set up than that.
#[inline]
fn find_cr_or_lf(hay: &[u8]) -> Option<usize> {
    if hay.len() < 16 {
        hay.iter().position(|&b| b == b'\r' || b == b'\n')
    } else {
        memchr2(b'\r', b'\n', hay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` through a framer in pieces of `step` octets, buffering like a server
    /// would, and returns what it reported (lines as strings, errors as their names).
    fn frame(input: &[u8], step: usize, max: usize) -> Vec<String> {
        let mut framer = LineFramer::new(max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                match framer.next_line(&buf) {
                    Line::NeedMore { discarded } => {
                        buf.drain(..discarded);
                        break;
                    }
                    Line::Complete { line, consumed } => {
                        out.push(String::from_utf8_lossy(line).into_owned());
                        buf.drain(..consumed);
                    }
                    Line::Error { error, consumed } => {
                        out.push(format!("!{error:?}"));
                        buf.drain(..consumed);
                    }
                }
            }
            // Once the framer waits, what is left is less than one line.
            assert!(buf.len() < max, "framer left {} octets buffered", buf.len());
        }
        out
    }

    #[test]
    fn table() {
        // (input, max, expected) — RFC 5321 §2.3.8 lines end in CRLF; §4.5.3.1.4 limit.
        let long = format!("{}\r\nNOOP\r\n", "x".repeat(600));
        let exact = format!("{}\r\n", "y".repeat(510));
        let over = format!("{}\r\nQUIT\r\n", "z".repeat(511));
        let cases: Vec<(&[u8], usize, Vec<&str>)> = vec![
            (b"NOOP\r\n", 512, vec!["NOOP"]),
            (b"NOOP\r\nQUIT\r\n", 512, vec!["NOOP", "QUIT"]),
            (b"\r\n", 512, vec![""]),
            (b"NOOP\nQUIT\r\n", 512, vec!["!BareLf", "QUIT"]),
            (b"NO\rOP\r\n", 512, vec!["!BareCr", "OP"]),
            (b"NOOP", 512, vec![]),
            (long.as_bytes(), 512, vec!["!LineTooLong", "NOOP"]),
            (exact.as_bytes(), 512, vec![&exact[..510]]),
            (over.as_bytes(), 512, vec!["!LineTooLong", "QUIT"]),
        ];
        for (input, max, expected) in cases {
            for step in [input.len(), 1, 2, 7] {
                assert_eq!(
                    frame(input, step, max),
                    expected,
                    "{:?} step {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn keeps_its_place_and_starts_over_on_a_shorter_buffer() {
        let mut framer = LineFramer::new(512);
        assert_eq!(framer.next_line(b"NOOP x"), Line::NeedMore { discarded: 0 });
        assert!(framer.is_mid_line());
        // Only what was appended is looked at, and the line is found whole.
        assert_eq!(
            framer.next_line(b"NOOP xy\r\n"),
            Line::Complete {
                line: b"NOOP xy",
                consumed: 9
            }
        );
        assert!(!framer.is_mid_line());
        // A CR last is looked at again with what follows it.
        assert_eq!(framer.next_line(b"QUIT\r"), Line::NeedMore { discarded: 0 });
        assert_eq!(
            framer.next_line(b"QUIT\rX"),
            Line::Error {
                error: CommandError::BareCr,
                consumed: 5
            }
        );
        // A buffer shorter than what was looked at is not the same one: scanned afresh.
        assert_eq!(
            framer.next_line(b"RSET and more"),
            Line::NeedMore { discarded: 0 }
        );
        assert_eq!(
            framer.next_line(b"A\nB"),
            Line::Error {
                error: CommandError::BareLf,
                consumed: 2
            }
        );
        // And after reset, from the start whatever the length.
        assert_eq!(framer.next_line(b"RSET"), Line::NeedMore { discarded: 0 });
        framer.reset();
        assert_eq!(
            framer.next_line(b"NO\nP\r\n"),
            Line::Error {
                error: CommandError::BareLf,
                consumed: 3
            }
        );
    }

    #[test]
    fn long_line_reported_once_with_bounded_memory() {
        let mut input = vec![b'a'; 100_000];
        input.extend_from_slice(b"\r\nRSET\r\n");
        for step in [1, 100, 4096, input.len()] {
            assert_eq!(frame(&input, step, 512), vec!["!LineTooLong", "RSET"]);
        }
    }
}

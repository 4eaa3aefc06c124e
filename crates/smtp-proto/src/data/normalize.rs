//! CRLF normalisation without dot-stuffing: [`LineNormalizer`] for text bodies sent with
//! BDAT (RFC 3030), and [`normalize_line_endings`], the line endings
//! [`DotStuffer`](super::DotStuffer) sends and [`DataDecoder`](super::DataDecoder) gives
//! back.

use bytes::BufMut;
use memchr::memchr2;

use super::{CRLF, MAX_LINE_LEN};

/// Streaming CRLF normalisation for text bodies sent with BDAT (RFC 3030): what
/// [`DotStuffer`](super::DotStuffer) does for DATA, without the dot-stuffing. Only a
/// `BODY=BINARYMIME` body may go out with bare CR or LF; a 7BIT or 8BITMIME body is text,
/// whose lines end in CRLF (RFC 5321 §2.3.8), and a client that passed bare line endings on
/// would hand the next hop a smuggling sequence. A CR at the end of one piece and an LF at
/// the start of the next are one CRLF.
///
/// ```
/// use smtp_proto::data::LineNormalizer;
/// let mut n = LineNormalizer::new();
/// let mut out = Vec::new();
/// n.encode(b"a\nb\r", &mut out);
/// n.encode(b"\nc", &mut out);
/// n.finish(&mut out);
/// assert_eq!(out, b"a\r\nb\r\nc\r\n");
/// ```
#[derive(Clone, Debug, Default)]
pub struct LineNormalizer {
    /// The last piece ended in a CR whose partner has not been seen.
    pending_cr: bool,
    /// Something has been written.
    started: bool,
    /// What was written ends in CRLF.
    at_line_end: bool,
    /// Octets of the current line so far.
    line_len: usize,
    /// Lines longer than 998 octets seen (RFC 5321 §4.5.3.1.6).
    long_lines: u64,
}

impl LineNormalizer {
    /// A normaliser at the start of a body.
    #[must_use]
    pub const fn new() -> Self {
        LineNormalizer {
            pending_cr: false,
            started: false,
            at_line_end: false,
            line_len: 0,
            long_lines: 0,
        }
    }

    /// Lines longer than 998 octets (without CRLF) seen so far: RFC 5321 §4.5.3.1.6
    /// holds for 7BIT and 8BITMIME bodies whether they go with DATA or BDAT.
    #[must_use]
    pub const fn long_lines(&self) -> u64 {
        self.long_lines
    }

    fn text(&mut self, n: usize) {
        let before = self.line_len;
        self.line_len += n;
        if before <= MAX_LINE_LEN - 2 && self.line_len > MAX_LINE_LEN - 2 {
            self.long_lines += 1;
        }
    }

    fn line_end(&mut self) {
        self.line_len = 0;
        self.at_line_end = true;
    }

    /// Normalises one piece of the body into `out`.
    pub fn encode<B: BufMut + ?Sized>(&mut self, input: &[u8], out: &mut B) {
        let mut rest = input;
        if self.pending_cr && !rest.is_empty() {
            // CR then LF across pieces is one CRLF; CR then anything else is a bare CR.
            self.pending_cr = false;
            out.put_slice(b"\r\n");
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
            self.line_end();
        }
        while !rest.is_empty() {
            self.started = true;
            match memchr::memchr2(b'\r', b'\n', rest) {
                None => {
                    out.put_slice(rest);
                    self.text(rest.len());
                    self.at_line_end = false;
                    return;
                }
                Some(i) => {
                    out.put_slice(&rest[..i]);
                    self.text(i);
                    if rest[i] == b'\n' {
                        out.put_slice(b"\r\n");
                        rest = &rest[i + 1..];
                    } else {
                        match rest.get(i + 1) {
                            Some(b'\n') => rest = &rest[i + 2..],
                            Some(_) => rest = &rest[i + 1..],
                            None => {
                                // Wait for the next piece to know.
                                self.pending_cr = true;
                                self.at_line_end = false;
                                return;
                            }
                        }
                        out.put_slice(b"\r\n");
                    }
                    self.line_end();
                }
            }
        }
    }

    /// Ends the body: a pending CR becomes CRLF, and a body that does not end in CRLF gets
    /// one (as [`DotStuffer::finish`](super::DotStuffer::finish) does). An empty body stays empty.
    pub fn finish<B: BufMut + ?Sized>(self, out: &mut B) {
        if self.pending_cr || (self.started && !self.at_line_end) {
            out.put_slice(b"\r\n");
        }
    }
}

/// Turns every bare CR and bare LF into CRLF, leaving CRLF alone: the line endings
/// [`DotStuffer`](super::DotStuffer) sends and [`DataDecoder`](super::DataDecoder) (in
/// [`BareLineEndings::Normalize`](super::BareLineEndings::Normalize) mode) hands back. For
/// any message `x`, decoding the encoding of `x` gives `normalize_line_endings(x)` followed
/// by a CRLF if that is not empty and does not already end in one.
#[must_use]
pub fn normalize_line_endings(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let (mut run, mut pos) = (0, 0);
    while let Some(i) = memchr2(b'\r', b'\n', &input[pos..]) {
        let p = pos + i;
        if input[p] == b'\r' && input.get(p + 1) == Some(&b'\n') {
            pos = p + 2;
            continue;
        }
        out.extend_from_slice(&input[run..p]);
        out.extend_from_slice(CRLF);
        pos = p + 1;
        run = pos;
    }
    out.extend_from_slice(&input[run..]);
    out
}

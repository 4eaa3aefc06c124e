//! The client side of DATA: [`DotStuffer`] turns a message into the octets to send after
//! `354`, with CRLF line endings, doubled leading dots and the final `. CRLF`
//! (RFC 5321 §4.5.2).

use bytes::BufMut;
use memchr::memchr2;

use super::{CRLF, DOT_CRLF, LongLines, MAX_CONTENT};

/// A body the caller gave [`DotStuffer`] that cannot be sent as DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A line over 998 octets without its CRLF (RFC 5321 §4.5.3.1.6). Send it with
    /// `BODY=BINARYMIME` over BDAT (RFC 3030) instead, or allow it with
    /// [`LongLines::Accept`].
    #[error("body line longer than 998 octets")]
    LineTooLong,
}

/// The client side of DATA (RFC 5321 §4.5.2): turns a message into the octets to send
/// after the `354` reply, streaming.
///
/// Feed the message in pieces of any size to [`encode`](Self::encode), then call
/// [`finish`](Self::finish). On the way:
/// - every bare CR and bare LF becomes CRLF (a CR ending one piece and an LF starting the
///   next are one CRLF), so the output can never hold a smuggling sequence
///   (CVE-2023-51764/51765/51766) or anything but `CRLF . CRLF` that a server could take
///   for the end;
/// - a line starting with `.` gets a second one;
/// - [`finish`](Self::finish) ends the last line if it is open and adds `. CRLF`;
/// - a line over 998 octets (RFC 5321 §4.5.3.1.6) is [`EncodeError::LineTooLong`], or,
///   with [`LongLines::Accept`], only counted ([`long_lines`](Self::long_lines)).
///
/// Runs between line endings are copied whole (`put_slice`), never octet by octet.
///
/// ```
/// use smtp_proto::data::DotStuffer;
///
/// let mut out = Vec::new();
/// let mut stuffer = DotStuffer::new();
/// stuffer.encode(b"Subject: hi\n\n.hidden\r", &mut out).unwrap();
/// stuffer.encode(b"\nbye", &mut out).unwrap();
/// stuffer.finish(&mut out).unwrap();
/// assert_eq!(out, b"Subject: hi\r\n\r\n..hidden\r\nbye\r\n.\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct DotStuffer {
    /// The next octet starts a line.
    line_start: bool,
    /// The last octet was a CR, already written as CRLF: an LF next belongs to it.
    skip_lf: bool,
    /// Content octets of the current line (no CRLF, no stuffed dot).
    line_len: usize,
    /// The current line has been counted as long.
    line_long: bool,
    long_lines: LongLines,
    long_count: u64,
    error: Option<EncodeError>,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    /// An encoder at the start of a message that refuses lines over 998 octets.
    #[must_use]
    pub const fn new() -> Self {
        DotStuffer {
            line_start: true,
            skip_lf: false,
            line_len: 0,
            line_long: false,
            long_lines: LongLines::Reject,
            long_count: 0,
            error: None,
        }
    }

    /// Sets whether a line over 998 octets is an error ([`LongLines::Reject`], the
    /// default) or only counted ([`LongLines::Accept`]: for a server known to take them,
    /// or when the caller has checked with [`BodyScanner`](super::BodyScanner) and knows
    /// what it does).
    #[must_use]
    pub const fn with_long_lines(mut self, policy: LongLines) -> Self {
        self.long_lines = policy;
        self
    }

    /// How many lines over 998 octets were seen (each counted once).
    #[must_use]
    pub const fn long_lines(&self) -> u64 {
        self.long_count
    }

    /// Encodes the next piece of the message into `out`.
    ///
    /// # Errors
    /// [`EncodeError::LineTooLong`] under [`LongLines::Reject`]. The error is sticky, and
    /// `out` then holds a partial message: abandon the transaction (RSET).
    pub fn encode<B: BufMut + ?Sized>(
        &mut self,
        input: &[u8],
        out: &mut B,
    ) -> Result<(), EncodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let len = input.len();
        let mut pos = 0;
        while pos < len {
            if self.skip_lf {
                self.skip_lf = false;
                if input[pos] == b'\n' {
                    pos += 1;
                    continue;
                }
            }
            if self.line_start && input[pos] == b'.' {
                out.put_u8(b'.'); // RFC 5321 §4.5.2; the original dot follows in the run
            }
            self.line_start = false;
            let mut run = pos;
            loop {
                let Some(i) = memchr2(b'\r', b'\n', &input[pos..]) else {
                    self.measure(len - pos)?;
                    out.put_slice(&input[run..]);
                    return Ok(());
                };
                let p = pos + i;
                self.measure(i)?;
                self.line_len = 0;
                self.line_long = false;
                if input[p] == b'\r' && input.get(p + 1) == Some(&b'\n') {
                    pos = p + 2;
                    match input.get(pos) {
                        None => {
                            out.put_slice(&input[run..]);
                            self.line_start = true;
                            return Ok(());
                        }
                        Some(b'.') => {
                            out.put_slice(&input[run..pos]);
                            out.put_u8(b'.');
                            run = pos;
                        }
                        Some(_) => {}
                    }
                    continue;
                }
                // A bare CR or LF, or a CR whose LF may start the next piece.
                out.put_slice(&input[run..p]);
                out.put_slice(CRLF);
                self.skip_lf = input[p] == b'\r';
                self.line_start = true;
                pos = p + 1;
                break;
            }
        }
        Ok(())
    }

    /// Ends the message: a CRLF if the last line is open, then `. CRLF` (RFC 5321
    /// §4.1.1.4). An empty message gives `. CRLF` alone.
    ///
    /// # Errors
    /// The error [`encode`](Self::encode) returned, if any; nothing is written then.
    pub fn finish<B: BufMut + ?Sized>(self, out: &mut B) -> Result<(), EncodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.line_start {
            out.put_slice(CRLF);
        }
        out.put_slice(DOT_CRLF);
        Ok(())
    }

    /// Adds `n` content octets to the current line.
    #[inline]
    fn measure(&mut self, n: usize) -> Result<(), EncodeError> {
        self.line_len = self.line_len.saturating_add(n);
        if self.line_len > MAX_CONTENT && !self.line_long {
            self.line_long = true;
            self.long_count += 1;
            if self.long_lines == LongLines::Reject {
                self.error = Some(EncodeError::LineTooLong);
                return Err(EncodeError::LineTooLong);
            }
        }
        Ok(())
    }
}

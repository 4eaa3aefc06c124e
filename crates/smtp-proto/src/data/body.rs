//! Which `BODY=` a message needs (RFC 6152 `8BITMIME`, RFC 3030 `BINARYMIME`):
//! [`BodyScanner`] looks for 8-bit octets, NUL and long lines before the client sends MAIL.

use memchr::{memchr, memchr2_iter};

use super::MAX_CONTENT;

/// The `BODY=` a message needs (RFC 1652/6152 `8BITMIME`, RFC 3030 `BINARYMIME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// 7-bit text: no `BODY` parameter, or `BODY=7BIT`.
    SevenBit,
    /// Octets over 127, but lines of at most 998 octets and no NUL (RFC 6152 §3, RFC 2045
    /// §2.8): `BODY=8BITMIME`.
    EightBitMime,
    /// NUL octets or lines over 998 octets: `BODY=BINARYMIME`, which only BDAT can carry
    /// (RFC 3030 §3).
    BinaryMime,
}

/// What [`BodyScanner`] found in a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BodyInfo {
    /// Some octet is over 127.
    pub eight_bit: bool,
    /// Some octet is NUL.
    pub nul: bool,
    /// Some CR or LF is not part of a CRLF ([`DotStuffer`](super::DotStuffer) turns each
    /// into CRLF).
    pub bare_line_endings: bool,
    /// The longest line's length without its line ending, taking bare CR and LF as line
    /// endings as [`DotStuffer`](super::DotStuffer) does.
    pub max_line_len: usize,
}

impl BodyInfo {
    /// The `BODY=` the message needs.
    #[must_use]
    pub const fn kind(&self) -> BodyKind {
        if self.nul || self.max_line_len > MAX_CONTENT {
            BodyKind::BinaryMime
        } else if self.eight_bit {
            BodyKind::EightBitMime
        } else {
            BodyKind::SevenBit
        }
    }
}

/// Scans a message, in pieces of any size, for what decides its `BODY=` parameter: 8-bit
/// octets, NUL, and lines over 998 octets (RFC 5321 §4.5.3.1.6, RFC 6152, RFC 3030).
///
/// ```
/// use smtp_proto::data::{BodyKind, BodyScanner};
///
/// let mut scanner = BodyScanner::new();
/// scanner.update("Subject: café\r\n".as_bytes());
/// assert_eq!(scanner.finish().kind(), BodyKind::EightBitMime);
/// ```
#[derive(Clone, Debug, Default)]
pub struct BodyScanner {
    info: BodyInfo,
    line_len: usize,
    /// The last octet was a CR.
    pending_cr: bool,
}

impl BodyScanner {
    /// A scanner at the start of a message.
    #[must_use]
    pub const fn new() -> Self {
        BodyScanner {
            info: BodyInfo {
                eight_bit: false,
                nul: false,
                bare_line_endings: false,
                max_line_len: 0,
            },
            line_len: 0,
            pending_cr: false,
        }
    }

    /// Scans the next piece of the message.
    pub fn update(&mut self, input: &[u8]) {
        self.info.eight_bit |= !input.is_ascii();
        self.info.nul |= memchr(0, input).is_some();
        let mut start = 0;
        for p in memchr2_iter(b'\r', b'\n', input) {
            if self.pending_cr {
                self.pending_cr = false;
                if p == start && input[p] == b'\n' {
                    start = p + 1; // the LF of a CRLF
                    continue;
                }
                self.info.bare_line_endings = true;
            }
            self.end_line(p - start);
            if input[p] == b'\r' {
                self.pending_cr = true;
            } else {
                self.info.bare_line_endings = true;
            }
            start = p + 1;
        }
        if start < input.len() {
            if self.pending_cr {
                self.pending_cr = false;
                self.info.bare_line_endings = true;
            }
            self.line_len = self.line_len.saturating_add(input.len() - start);
        }
    }

    /// What the whole message holds.
    #[must_use]
    pub fn finish(mut self) -> BodyInfo {
        if self.pending_cr {
            self.info.bare_line_endings = true;
        }
        self.end_line(0);
        self.info
    }

    fn end_line(&mut self, n: usize) {
        let len = self.line_len.saturating_add(n);
        self.info.max_line_len = self.info.max_line_len.max(len);
        self.line_len = 0;
    }
}

/// Scans a whole message at once: [`BodyScanner`] in one piece.
#[must_use]
pub fn scan_body(body: &[u8]) -> BodyInfo {
    let mut scanner = BodyScanner::new();
    scanner.update(body);
    scanner.finish()
}

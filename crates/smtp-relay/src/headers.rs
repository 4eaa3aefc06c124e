//! What a relay must know of a message's header section, read as the body streams by:
//! how many `Received:` lines it has (loop detection, RFC 5321 §6.3: Postfix's
//! `hopcount_limit` of 50, "Too many hops"), whether it says `TLS-Required: No`
//! (RFC 8689 §5), and the header section itself, kept up to a bound for a report that
//! returns only the headers (RFC 3461 §4.3).
//!
//! Pure and streaming: [`HeaderScan::feed`] takes the message in pieces of any size (a
//! line may be split anywhere); nothing after the empty line that ends the header
//! section is looked at.

/// A message with this many `Received:` lines or more has been through too many hops
/// (RFC 5321 §6.3; Postfix's `hopcount_limit`).
pub const HOP_LIMIT: usize = 50;

/// How much of the header section [`HeaderScan::header`] keeps.
pub const HEADER_KEEP: usize = 64 * 1024;

/// The longest field name prefix looked at, with the colon: `TLS-Required:`.
const NAME_MAX: usize = 16;

/// A streaming reader of a message's header section. See the [module
/// documentation](self).
#[derive(Clone, Debug, Default)]
pub struct HeaderScan {
    /// Past the empty line: the body.
    done: bool,
    /// At the start of a line.
    in_line: bool,
    /// The start of the current line (up to [`NAME_MAX`] octets).
    start: Vec<u8>,
    /// The current line's octets so far (its length only matters for the empty line).
    line_len: usize,
    /// The current line is a `TLS-Required:` field: its value, up to a few octets.
    tls_value: Option<Vec<u8>>,
    received: usize,
    tls_required_no: bool,
    header: Vec<u8>,
}

impl HeaderScan {
    /// A scanner at the first octet of a message.
    pub fn new() -> HeaderScan {
        HeaderScan::default()
    }

    /// The next piece of the message (with CRLF or LF line ends).
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.done {
            return;
        }
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'\n' {
                self.end_line();
                if self.done {
                    self.keep(&chunk[..=i]);
                    return;
                }
                continue;
            }
            if !self.in_line {
                self.in_line = true;
                self.start.clear();
                self.line_len = 0;
                self.tls_value = None;
            }
            self.line_len += 1;
            if let Some(v) = &mut self.tls_value {
                if v.len() < 8 {
                    v.push(b);
                }
            } else if self.start.len() < NAME_MAX {
                self.start.push(b);
                if b == b':' {
                    self.field_name();
                }
            }
        }
        self.keep(chunk);
    }

    /// Keeps what is before the end of the header section, up to [`HEADER_KEEP`].
    fn keep(&mut self, part: &[u8]) {
        let room = HEADER_KEEP.saturating_sub(self.header.len());
        self.header.extend_from_slice(&part[..part.len().min(room)]);
    }

    /// The colon of a field name was just read.
    fn field_name(&mut self) {
        let name = &self.start[..self.start.len() - 1];
        if name.eq_ignore_ascii_case(b"Received") {
            self.received += 1;
        } else if name.eq_ignore_ascii_case(b"TLS-Required") {
            self.tls_value = Some(Vec::new());
        }
    }

    fn end_line(&mut self) {
        let len = if self.in_line { self.line_len } else { 0 };
        let cr_only = self.in_line && self.start.first() == Some(&b'\r') && len == 1;
        if len == 0 || cr_only {
            self.done = true;
        }
        if let Some(v) = self.tls_value.take() {
            // RFC 8689 §5: `TLS-Required: No`, any case, with spaces around.
            let v = String::from_utf8_lossy(&v);
            if v.trim().eq_ignore_ascii_case("no") {
                self.tls_required_no = true;
            }
        }
        self.in_line = false;
    }

    /// `Received:` fields so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Whether the message has been through [`HOP_LIMIT`] hops or more.
    pub fn too_many_hops(&self) -> bool {
        self.received >= HOP_LIMIT
    }

    /// Whether the header section says `TLS-Required: No` (RFC 8689 §5).
    pub fn tls_required_no(&self) -> bool {
        self.tls_required_no
    }

    /// The header section read so far, with the empty line that ends it once it has
    /// been read; at most [`HEADER_KEEP`] octets.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Scans a whole message.
    pub fn of(message: &[u8]) -> HeaderScan {
        let mut s = HeaderScan::new();
        s.feed(message);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole_and_byte_by_byte(message: &[u8]) -> HeaderScan {
        let whole = HeaderScan::of(message);
        let mut bytes = HeaderScan::new();
        for b in message {
            bytes.feed(std::slice::from_ref(b));
        }
        assert_eq!(whole.received(), bytes.received());
        assert_eq!(whole.tls_required_no(), bytes.tls_required_no());
        assert_eq!(whole.header(), bytes.header());
        whole
    }

    #[test]
    fn counts_received_in_the_header_only() {
        let mut m = Vec::new();
        for i in 0..3 {
            m.extend_from_slice(format!("Received: from h{i}\r\n\tby x; date\r\n").as_bytes());
        }
        m.extend_from_slice(b"received:lower\r\nX-Received: no\r\nSubject: Received: no\r\n");
        m.extend_from_slice(b"\r\nReceived: in the body\r\n");
        let s = whole_and_byte_by_byte(&m);
        assert_eq!(s.received(), 4);
        assert!(!s.too_many_hops());
        assert!(s.header().ends_with(b"Subject: Received: no\r\n\r\n"));
        let body: Vec<u8> = "Received: x\n".repeat(HOP_LIMIT).into_bytes();
        assert!(whole_and_byte_by_byte(&body).too_many_hops());
    }

    #[test]
    fn tls_required_no() {
        for (m, no) in [
            (&b"TLS-Required: No\r\n\r\n"[..], true),
            (b"tls-required:no\r\n\r\n", true),
            (b"TLS-Required:   NO  \r\n\r\n", true),
            (b"TLS-Required: Yes\r\n\r\n", false),
            (b"TLS-Required: Nope\r\n\r\n", false),
            (b"Subject: x\r\n\r\nTLS-Required: No\r\n", false),
        ] {
            assert_eq!(whole_and_byte_by_byte(m).tls_required_no(), no, "{m:?}");
        }
    }

    #[test]
    fn header_is_bounded() {
        let mut m = b"X: ".to_vec();
        m.extend(std::iter::repeat_n(b'a', HEADER_KEEP * 2));
        m.extend_from_slice(b"\r\n\r\nbody");
        let s = HeaderScan::of(&m);
        assert_eq!(s.header().len(), HEADER_KEEP);
    }
}

//! Message bodies: DATA dot-stuffing in both directions, and BDAT chunk framing.
//!
//! - [`DataDecoder`] is the server side of DATA (RFC 5321 §4.1.1.4, §4.5.2): it finds the
//!   end of data and removes the dots added for transparency, over input that arrives in
//!   pieces of any size, and hands back slices of that input rather than copies.
//! - [`BdatDecoder`] is the server side of BDAT (RFC 3030 §2): it counts out exactly the
//!   declared number of octets and passes them through untouched.
//! - [`DotStuffer`] is the client side of DATA: it normalises line endings to CRLF,
//!   doubles leading dots and appends the end-of-data line.
//! - [`BodyScanner`] tells a client which `BODY=` a message needs (RFC 6152, RFC 3030).
//!
//! # SMTP smuggling
//! The only end of data is `CRLF . CRLF` (RFC 5321 §4.1.1.4). Servers that also accepted
//! `LF . LF`, `CR . CR` or `LF . CRLF` let a sender hide a second message, with its own
//! envelope, inside the first one, to be cut out by the receiver but passed on intact by a
//! relay that reads the body differently (CVE-2023-51764 Postfix, CVE-2023-51765 Sendmail,
//! CVE-2023-51766 Exim). Here a CR or LF that is not part of a CRLF never takes part in the
//! end of data, whatever the chunking, and is either refused or turned into CRLF
//! ([`BareLineEndings`]); the encoder never emits one at all.
//!
//! # Replies
//! Every [`DataError`] carries the reply a server sends at the end of data
//! ([`DataError::reply`]), so the host never has to choose one.

use bytes::BufMut;
use memchr::{memchr, memchr2, memchr2_iter};

/// Longest text line RFC 5321 §4.5.3.1.6 allows: 1000 octets counting the CRLF but not a
/// dot added for transparency.
pub const MAX_LINE_LEN: usize = 1000;

/// The longest line content (without its CRLF) that fits in [`MAX_LINE_LEN`].
const MAX_CONTENT: usize = MAX_LINE_LEN - 2;

const CRLF: &[u8] = b"\r\n";
const LF: &[u8] = b"\n";
const DOT_CRLF: &[u8] = b".\r\n";

/// A message body the peer sent that cannot be accepted.
///
/// The decoders report it as soon as it is seen, then keep reading to the real end of the
/// body (the peer is still sending it, and the next command follows it); the reply goes out
/// only then, as the answer to the end of data or to the BDAT chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A CR or LF that is not part of a CRLF, refused under [`BareLineEndings::Reject`].
    /// RFC 5321 §2.3.8 allows CR and LF only as a pair; a lone one is what SMTP smuggling
    /// (CVE-2023-51764, CVE-2023-51765, CVE-2023-51766) is made of.
    #[error("bare CR or LF in message body")]
    BareLineEnding,
    /// A line over [`MAX_LINE_LEN`] octets, refused under [`LongLines::Reject`]
    /// (RFC 5321 §4.5.3.1.6).
    #[error("message body line longer than 1000 octets")]
    LineTooLong,
    /// More octets than the configured maximum (RFC 1870 §4).
    #[error("message size exceeds the limit")]
    SizeExceeded,
}

impl DataError {
    /// The reply to send at the end of data (or for the BDAT chunk): `(code, enhanced
    /// status, text)`.
    ///
    /// - [`BareLineEnding`](Self::BareLineEnding): `550 5.5.2`, the code Postfix sends for
    ///   the same refusal (RFC 3463 §3.6: X.5.2 "syntax error", the transport framing was
    ///   broken). 550 is among the end-of-data replies of RFC 5321 §4.3.2.
    /// - [`LineTooLong`](Self::LineTooLong): `554 5.6.0`. RFC 5321 §4.5.3.1.9 suggests
    ///   `500 Line too long`, but 500 is not an end-of-data reply (§4.3.2 lists 250, 552,
    ///   554, 451, 452, 450, 550), so the transaction fails with 554, and the detail is
    ///   X.6.0 because it is the message content that cannot be carried (RFC 3463 §3.7).
    /// - [`SizeExceeded`](Self::SizeExceeded): `552 5.3.4` (RFC 1870 §4: a message over
    ///   the fixed maximum is refused with 552; RFC 3463 §3.4 X.3.4 "message too big for
    ///   system").
    #[must_use]
    pub const fn reply(self) -> (u16, (u8, u8, u8), &'static str) {
        match self {
            DataError::BareLineEnding => (550, (5, 5, 2), "Bare CR or LF in message body"),
            DataError::LineTooLong => (554, (5, 6, 0), "Message has lines longer than 1000 octets"),
            DataError::SizeExceeded => (
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ),
        }
    }
}

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

/// What [`DataDecoder`] does with a CR or LF that is not part of a CRLF.
///
/// Whichever is chosen, a bare line ending never ends the message: only `CRLF . CRLF` does
/// (RFC 5321 §4.1.1.4). That alone closes SMTP smuggling (CVE-2023-51764/51765/51766); this
/// choice only decides what happens to the message that contains one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BareLineEndings {
    /// Refuse the message ([`DataError::BareLineEnding`], `550 5.5.2`) once its end has been
    /// read. RFC 5321 §2.3.8 forbids bare CR and LF, and refusing them is the only choice
    /// that cannot be turned against a downstream system that reads them differently.
    #[default]
    Reject,
    /// Accept the message and turn each bare CR and bare LF into CRLF, as if the client had
    /// sent a conforming line ending (Postfix's `smtpd_forbid_bare_newline = normalize`).
    /// A line after a bare ending is still dot-unstuffed, but a lone `.` on it is content,
    /// not the end: it is kept as a `.` line.
    Normalize,
}

/// Whether a line longer than RFC 5321 §4.5.3.1.6 allows is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LongLines {
    /// Pass long lines through (the default of [`DataDecoder`]): RFC 5321 §4.5.3.1 asks
    /// servers to accept objects larger than the limits "wherever possible", and many
    /// clients send them.
    Accept,
    /// Refuse them: [`DataError::LineTooLong`] for [`DataDecoder`],
    /// [`EncodeError::LineTooLong`] for [`DotStuffer`] (its default).
    Reject,
}

/// Where [`DataDecoder`] stands between two pieces of input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line. `clean`: the line before ended in a real CRLF (or this is
    /// the first line), so a `.` line here would be the end of data.
    LineStart { clean: bool },
    /// A `.` at the start of a line, held back and not yet emitted.
    Dot { clean: bool },
    /// `.` CR at the start of a line, both held back.
    DotCr { clean: bool },
    /// Inside a line.
    Text,
    /// Just after a CR, which has been emitted: an LF makes it a line ending.
    Cr,
    /// The end of data has been read.
    Done,
}

/// One step of [`DataDecoder::decode`]. Every variant says how many octets of the input it
/// used ([`consumed`](Self::consumed)); the caller drops them and calls again with the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum DecodeStep<'a> {
    /// Message content, dot-unstuffed, to append to the message. Usually a slice of the
    /// input; in [`BareLineEndings::Normalize`] mode also a constant CRLF (or `.` CRLF).
    Data {
        /// The content: never empty.
        data: &'a [u8],
        /// Input octets used, counted from the start of the input given.
        consumed: usize,
    },
    /// The message cannot be accepted: stop storing it. Reported once, as soon as the
    /// problem is seen; keep feeding input, which is read (and dropped) until the end of
    /// data, where [`Done`](Self::Done) carries the same error.
    Failed {
        /// Why; its [`reply`](DataError::reply) is sent after [`Done`](Self::Done).
        error: DataError,
        /// Input octets used.
        consumed: usize,
    },
    /// All the input was used and the end of data has not been seen: read more.
    NeedMore {
        /// Always the whole input's length.
        consumed: usize,
    },
    /// The end of data (`CRLF . CRLF`) has been read. The octets after `consumed` belong to
    /// the next command (pipelining, RFC 2920 §3.1). Every later call returns `Done` again
    /// with `consumed: 0`.
    Done {
        /// `Ok` to accept the message, or the reply-bearing reason to refuse it.
        outcome: Result<(), DataError>,
        /// Input octets used, including the final `. CRLF`.
        consumed: usize,
    },
}

impl DecodeStep<'_> {
    /// How many octets of the input this step used.
    #[must_use]
    pub const fn consumed(&self) -> usize {
        match *self {
            DecodeStep::Data { consumed, .. }
            | DecodeStep::Failed { consumed, .. }
            | DecodeStep::NeedMore { consumed }
            | DecodeStep::Done { consumed, .. } => consumed,
        }
    }
}

/// What [`DataDecoder::decode_with`] stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum DecodeStatus {
    /// All the input was used; read more.
    NeedMore,
    /// The end of data was read.
    Done {
        /// `Ok` to accept the message, or why it must be refused.
        outcome: Result<(), DataError>,
        /// Input octets used, including the final `. CRLF`; the rest is the next command.
        consumed: usize,
    },
}

/// Where [`DataDecoder::scan`] stopped.
enum Scan {
    /// Input octets used; stopped for the sink or for a new failure.
    Stopped(usize),
    /// All input used.
    Need,
    /// End of data; input octets used.
    End(usize),
}

/// The server side of DATA: finds the end of data and dot-unstuffs the message, streaming
/// and zero-copy (RFC 5321 §4.1.1.4, §4.5.2).
///
/// After the `354` reply, feed every octet read from the connection to
/// [`decode`](Self::decode) (or [`decode_with`](Self::decode_with)) until the end of data;
/// what is left of the input after that is the next command. The decoder holds a few
/// words of state and never buffers: what it returns are slices of the input (or constant
/// CRLFs), found with one `memchr2` scan for CR and LF per line, so its cost per octet is
/// close to that of `memchr` itself (about the same on ordinary mail;
/// [`decode_with`](Self::decode_with) keeps within 2x even when every line is
/// dot-stuffed).
///
/// # Rules
/// - The decoder starts at the start of a line, so `. CRLF` right after the 354 is an
///   empty message.
/// - The end of data is `CRLF . CRLF` and nothing else (§4.1.1.4 forbids taking
///   `LF . LF` for it). A bare CR or LF never ends the message, even next to a dot
///   (`LF . LF`, `CR . CR`, `LF . CRLF`, `CRLF . LF`, `CRLF . CR`, `. LF` first): that is
///   the SMTP smuggling defence (CVE-2023-51764, CVE-2023-51765, CVE-2023-51766). What
///   happens to such a message is [`BareLineEndings`].
/// - A line starting with `.` and holding more has that first dot removed (§4.5.2).
/// - A CR at the end of one piece and an LF at the start of the next are one CRLF: how the
///   input is cut into pieces never changes the output, the outcome, or the total
///   consumed.
/// - Limits: [`LongLines`] (§4.5.3.1.6) and a maximum size on the unstuffed message
///   (RFC 1870). Once the message has failed, no more content is emitted, the rest is
///   only scanned for its end, and memory stays bounded. The first failure is the
///   outcome; the content emitted before it is the message up to the fault (the same
///   whatever the chunking), to be thrown away.
///
/// # Methods
/// - Configuration (builders): [`with_bare_line_endings`](Self::with_bare_line_endings),
///   [`with_long_lines`](Self::with_long_lines), [`with_max_size`](Self::with_max_size).
/// - Input and output: [`decode`](Self::decode) (one step at a time),
///   [`decode_with`](Self::decode_with) (every piece of content to a callback).
/// - Getters: [`size`](Self::size), [`error`](Self::error), [`is_done`](Self::is_done).
///
/// # Example
/// ```
/// use smtp_proto::data::{DataDecoder, DecodeStep};
///
/// let mut decoder = DataDecoder::new().with_max_size(Some(10 << 20));
/// let mut message = Vec::new();
/// // Two reads; the end of data straddles them, and the client pipelined QUIT after it.
/// let reads: [&[u8]; 2] = [b"Subject: hi\r\n\r\n..starts with a dot\r", b"\n.\r\nQUIT\r\n"];
/// let mut next_command: &[u8] = b"";
/// 'reads: for mut input in reads {
///     loop {
///         match decoder.decode(input) {
///             DecodeStep::Data { data, consumed } => {
///                 message.extend_from_slice(data);
///                 input = &input[consumed..];
///             }
///             DecodeStep::Failed { consumed, .. } => {
///                 message.clear(); // it will be refused: stop storing, keep reading
///                 input = &input[consumed..];
///             }
///             DecodeStep::NeedMore { .. } => continue 'reads,
///             DecodeStep::Done { outcome, consumed } => {
///                 assert_eq!(outcome, Ok(()));
///                 next_command = &input[consumed..];
///                 break 'reads;
///             }
///         }
///     }
/// }
/// assert_eq!(message, b"Subject: hi\r\n\r\n.starts with a dot\r\n");
/// assert_eq!(next_command, b"QUIT\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct DataDecoder {
    state: State,
    bare: BareLineEndings,
    max_size: Option<u64>,
    /// Content octets of the current line so far; kept only while `check_long`.
    line_len: usize,
    /// Lines are being measured: [`LongLines::Reject`] and no failure yet.
    check_long: bool,
    /// Content octets emitted.
    size: u64,
    /// The first failure; it is the outcome.
    error: Option<DataError>,
    /// `error` is set and has not been reported as `DecodeStep::Failed` yet.
    fail_pending: bool,
}

impl Default for DataDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataDecoder {
    /// A decoder at the start of the message, with the defaults:
    /// [`BareLineEndings::Reject`], [`LongLines::Accept`], no size limit.
    #[must_use]
    pub const fn new() -> Self {
        DataDecoder {
            state: State::LineStart { clean: true },
            bare: BareLineEndings::Reject,
            max_size: None,
            line_len: 0,
            check_long: false,
            size: 0,
            error: None,
            fail_pending: false,
        }
    }

    /// Sets what a bare CR or LF does to the message.
    #[must_use]
    pub const fn with_bare_line_endings(mut self, policy: BareLineEndings) -> Self {
        self.bare = policy;
        self
    }

    /// Sets whether lines over [`MAX_LINE_LEN`] octets (RFC 5321 §4.5.3.1.6, the stuffed
    /// dot not counted) fail the message with [`DataError::LineTooLong`].
    #[must_use]
    pub const fn with_long_lines(mut self, policy: LongLines) -> Self {
        self.check_long = matches!(policy, LongLines::Reject) && self.error.is_none();
        self
    }

    /// Sets the most octets of content the message may have: the `SIZE` the server
    /// announced in EHLO (RFC 1870 §4), measured as RFC 1870 §5 defines the message size
    /// (CRLFs included, the end-of-data line and the stuffed dots not). Past it the message
    /// fails with [`DataError::SizeExceeded`]; the content emitted stops at exactly `max`
    /// octets.
    #[must_use]
    pub const fn with_max_size(mut self, max: Option<u64>) -> Self {
        self.max_size = max;
        self
    }

    /// Content octets emitted so far (after unstuffing, and normalising in
    /// [`BareLineEndings::Normalize`] mode). Stops growing when the message fails.
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// The failure recorded so far, if any: once set, the message will be refused.
    #[must_use]
    pub const fn error(&self) -> Option<DataError> {
        self.error
    }

    /// Whether the end of data has been read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes the next step from `input`: content, a failure, a request for more input,
    /// or the end of data. Drop `consumed` octets from the input and call again until
    /// [`DecodeStep::NeedMore`] or [`DecodeStep::Done`].
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> DecodeStep<'a> {
        if let Some(step) = self.pending(0) {
            return step;
        }
        let mut got = None;
        match self.scan(input, &mut |data| {
            got = Some(data);
            false
        }) {
            Scan::Stopped(consumed) => match got {
                // A failure found right after this content is reported by the next call.
                Some(data) => DecodeStep::Data { data, consumed },
                None => self
                    .pending(consumed)
                    .expect("stopped without content or failure"),
            },
            Scan::Need => DecodeStep::NeedMore {
                consumed: input.len(),
            },
            Scan::End(consumed) => self.pending(consumed).expect("end of data"),
        }
    }

    /// Decodes all of `input`, handing each piece of content to `sink`, up to the end of
    /// data or the end of the input. A failure is not reported separately: check
    /// [`error`](Self::error) to stop storing early.
    ///
    /// This is the fastest way in: content goes to `sink` from inside the scan.
    pub fn decode_with<'a>(
        &mut self,
        input: &'a [u8],
        mut sink: impl FnMut(&'a [u8]),
    ) -> DecodeStatus {
        let mut off = 0;
        loop {
            self.fail_pending = false; // reported through `error()`
            if self.state == State::Done {
                return DecodeStatus::Done {
                    outcome: self.outcome(),
                    consumed: off,
                };
            }
            match self.scan(&input[off..], &mut |data| {
                sink(data);
                true
            }) {
                Scan::Stopped(n) | Scan::End(n) => off += n,
                Scan::Need => return DecodeStatus::NeedMore,
            }
        }
    }

    fn outcome(&self) -> Result<(), DataError> {
        match self.error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// The step to return before scanning, if any: an unreported failure, or the end.
    fn pending<'a>(&mut self, consumed: usize) -> Option<DecodeStep<'a>> {
        if self.fail_pending {
            self.fail_pending = false;
            if let Some(error) = self.error {
                return Some(DecodeStep::Failed { error, consumed });
            }
        }
        if self.state == State::Done {
            return Some(DecodeStep::Done {
                outcome: self.outcome(),
                consumed,
            });
        }
        None
    }

    /// Records the first failure (a size overrun may replace a long line found in the same
    /// scan, because it lies earlier in the message).
    fn fail(&mut self, error: DataError) {
        self.error = Some(error);
        self.fail_pending = true;
        self.check_long = false;
    }

    /// Hands content to `sink`, unless the message has failed, cutting it at the size
    /// limit. Returns whether to go on scanning.
    #[inline(always)]
    fn deliver<'a>(&mut self, data: &'a [u8], sink: &mut impl FnMut(&'a [u8]) -> bool) -> bool {
        if self.error.is_some() {
            return true; // reading to the end of data only
        }
        let mut data = data;
        let len = data.len() as u64;
        match self.max_size {
            Some(max) if len > max - self.size => {
                // `max - size < len <= usize::MAX`, so the cast is exact.
                data = &data[..(max - self.size) as usize];
                self.size = max;
                self.fail(DataError::SizeExceeded);
            }
            _ => self.size += len,
        }
        let go = data.is_empty() || sink(data);
        go && !self.fail_pending
    }

    /// Adds `n` content octets starting at `from` to the current line; if that takes it
    /// past the limit, returns where the octet that crosses it lies.
    #[inline]
    fn measure(&mut self, from: usize, n: usize) -> Option<usize> {
        let total = self.line_len + n;
        if total > MAX_CONTENT {
            return Some(from + (MAX_CONTENT - self.line_len));
        }
        self.line_len = total;
        None
    }

    /// A bare CR or LF ended a line: whether that fails the message now.
    fn bare_fails(&mut self) -> bool {
        self.line_len = 0;
        if self.bare == BareLineEndings::Reject && self.error.is_none() {
            self.fail(DataError::BareLineEnding);
            return true;
        }
        false
    }

    /// Scans `input`, handing content to `sink`, until the end of the input, the end of
    /// data, a new failure, or `sink` asking to stop.
    ///
    /// Invariant at the top of the loop: `input[run..pos]` is content not yet delivered,
    /// and `self.state` describes position `pos`.
    fn scan<'a>(&mut self, input: &'a [u8], sink: &mut impl FnMut(&'a [u8]) -> bool) -> Scan {
        let len = input.len();
        let mut pos = 0;
        let mut run = 0;
        // Delivers `$data` and resumes the `$scan` loop at `$next`, where `self.state` must
        // already be.
        macro_rules! emit {
            ($scan:lifetime, $data:expr, $next:expr) => {{
                let next = $next;
                if !self.deliver($data, sink) {
                    return Scan::Stopped(next);
                }
                pos = next;
                run = next;
                continue $scan;
            }};
        }
        'scan: loop {
            if pos == len {
                if run < len {
                    emit!('scan, &input[run..], len);
                }
                return Scan::Need;
            }
            match self.state {
                State::Text => loop {
                    // The hot loop: one memchr2 per line; a CRLF followed by anything but a
                    // dot does not even leave it.
                    let Some(i) = memchr2(b'\r', b'\n', &input[pos..]) else {
                        if self.check_long
                            && let Some(cut) = self.measure(pos, len - pos)
                        {
                            return self.cut(&input[run..cut], cut, sink);
                        }
                        emit!('scan, &input[run..], len);
                    };
                    let p = pos + i;
                    if self.check_long {
                        if let Some(cut) = self.measure(pos, i) {
                            return self.cut(&input[run..cut], cut, sink);
                        }
                        self.line_len = 0;
                    }
                    if input[p] == b'\n' {
                        // An LF without a CR before it (the CR of a CRLF takes its LF along).
                        if run < p {
                            emit!('scan, &input[run..p], p); // the LF comes next time round
                        }
                        self.state = State::LineStart { clean: false };
                        if self.bare_fails() {
                            return Scan::Stopped(p + 1);
                        }
                        emit!('scan, CRLF, p + 1);
                    }
                    if input.get(p + 1) == Some(&b'\n') {
                        pos = p + 2;
                        match input.get(pos) {
                            Some(&b) if b != b'.' => continue, // next line, same loop
                            // The common dot line: ". text", its dot removed (§4.5.2) without
                            // the trip through the line-start states.
                            Some(_)
                                if !matches!(input.get(pos + 1), None | Some(b'\r' | b'\n')) =>
                            {
                                emit!('scan, &input[run..pos], pos + 1);
                            }
                            _ => {
                                self.state = State::LineStart { clean: true };
                                continue 'scan;
                            }
                        }
                    }
                    // A CR last in the input or before something else: deliver it, the
                    // next octet decides.
                    pos = p + 1;
                    self.state = State::Cr;
                    continue 'scan;
                },
                State::LineStart { clean } => {
                    if input[pos] == b'.' {
                        self.state = State::Dot { clean };
                        if run < pos {
                            emit!('scan, &input[run..pos], pos + 1);
                        }
                        pos += 1;
                        run = pos;
                    } else {
                        self.state = State::Text;
                    }
                }
                // Here `run == pos`: the dot is held back.
                State::Dot { clean } => match input[pos] {
                    b'\r' => {
                        self.state = State::DotCr { clean };
                        pos += 1;
                        run = pos;
                    }
                    b'\n' => {
                        // ". LF": a "." line ended by a bare LF is content, never the end.
                        self.state = State::LineStart { clean: false };
                        if self.bare_fails() {
                            return Scan::Stopped(pos + 1);
                        }
                        emit!('scan, DOT_CRLF, pos + 1);
                    }
                    // RFC 5321 §4.5.2: the first dot of a line with more on it is removed.
                    _ => self.state = State::Text,
                },
                // Here `run == pos`: ". CR" is held back.
                State::DotCr { clean } => {
                    if input[pos] == b'\n' {
                        if clean {
                            self.state = State::Done;
                            return Scan::End(pos + 1);
                        }
                        // CRLF . CRLF without the first CRLF: a "." line of content.
                        self.state = State::LineStart { clean: true };
                        emit!('scan, DOT_CRLF, pos + 1);
                    }
                    self.state = State::LineStart { clean: false };
                    if self.bare_fails() {
                        return Scan::Stopped(pos);
                    }
                    emit!('scan, DOT_CRLF, pos);
                }
                State::Cr => {
                    if input[pos] == b'\n' {
                        pos += 1;
                        self.state = State::LineStart { clean: true };
                    } else {
                        if run < pos {
                            emit!('scan, &input[run..pos], pos);
                        }
                        self.state = State::LineStart { clean: false };
                        if self.bare_fails() {
                            return Scan::Stopped(pos);
                        }
                        emit!('scan, LF, pos);
                    }
                }
                State::Done => return Scan::End(0),
            }
        }
    }

    /// Fails the message for a long line: its content ends at `cut`, the first octet over
    /// the limit, whatever the chunking. `data` is what comes before it.
    fn cut<'a>(
        &mut self,
        data: &'a [u8],
        cut: usize,
        sink: &mut impl FnMut(&'a [u8]) -> bool,
    ) -> Scan {
        self.state = State::Text;
        self.check_long = false;
        let _ = self.deliver(data, sink); // a size overrun there comes first
        if self.error.is_none() {
            self.fail(DataError::LineTooLong);
        }
        Scan::Stopped(cut)
    }
}

/// One step of [`BdatDecoder::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum BdatStep<'a> {
    /// Chunk content, untouched, to append to the message.
    Data {
        /// The content: a slice of the input, never empty.
        data: &'a [u8],
        /// Input octets used.
        consumed: usize,
    },
    /// All the input was used and the chunk is not complete: read more.
    NeedMore {
        /// Always the whole input's length.
        consumed: usize,
    },
    /// The chunk has been read completely; the octets after `consumed` are the next
    /// command. Reply to the BDAT command now.
    ChunkDone {
        /// Input octets used.
        consumed: usize,
        /// The chunk was declared `LAST`: the message is complete.
        last: bool,
        /// The message so far: `Ok`, or why it is refused (then the reply to this BDAT).
        outcome: Result<(), DataError>,
    },
    /// No chunk is in progress: start one before decoding; the input is a command.
    Idle,
}

/// The server side of BDAT (RFC 3030 §2): counts out exactly the declared number of octets
/// from input that arrives in pieces of any size, and passes them through untouched (no
/// dot-stuffing, no line rules: BDAT carries `BINARYMIME`).
///
/// One decoder serves one message, over all its chunks, so that the size limit applies to
/// the whole message. For each `BDAT <size> [LAST]` command, call
/// [`start_chunk`](Self::start_chunk) (or [`discard_chunk`](Self::discard_chunk) if the
/// command itself was refused), then feed input to [`decode`](Self::decode) until
/// [`BdatStep::ChunkDone`]. The chunk's octets are on the wire whatever the reply, so a
/// refused chunk is still read, and dropped: RFC 3030 §2 has the server "accept and
/// discard" the chunks that follow a failed BDAT, and reading a chunk as commands would
/// let its content inject them.
#[derive(Clone, Debug, Default)]
pub struct BdatDecoder {
    max_size: Option<u64>,
    /// Octets declared by accepted chunks.
    declared: u64,
    /// Content octets emitted.
    size: u64,
    remaining: u64,
    in_chunk: bool,
    last: bool,
    discard: bool,
    error: Option<DataError>,
}

impl BdatDecoder {
    /// A decoder for one message of at most `max_size` octets (the EHLO `SIZE`,
    /// RFC 1870 §4), or unlimited.
    #[must_use]
    pub const fn new(max_size: Option<u64>) -> Self {
        BdatDecoder {
            max_size,
            declared: 0,
            size: 0,
            remaining: 0,
            in_chunk: false,
            last: false,
            discard: false,
            error: None,
        }
    }

    /// A decoder that reads and drops one chunk of `size` octets, for a BDAT command that
    /// was refused outside any message (e.g. before MAIL, or after `BDAT LAST`).
    #[must_use]
    pub const fn discarding(size: u64) -> Self {
        let mut d = Self::new(None);
        d.remaining = size;
        d.in_chunk = true;
        d.discard = true;
        d
    }

    /// Starts a chunk of `size` octets after `BDAT size [LAST]` (RFC 3030 §2).
    ///
    /// Fails with [`DataError::SizeExceeded`] at once if the message would exceed the
    /// limit, before a single octet is read, so the server stores nothing more: the chunk
    /// is then read and dropped, and so is every later one (RFC 3030 §2), and the error is
    /// also the `ChunkDone` outcome, whose reply answers this BDAT. An earlier failure is
    /// returned again the same way.
    ///
    /// # Panics
    /// If the previous chunk has not been read to its end.
    pub fn start_chunk(&mut self, size: u64, last: bool) -> Result<(), DataError> {
        assert!(
            !self.in_chunk,
            "BDAT chunk started before the previous one was read"
        );
        self.in_chunk = true;
        self.remaining = size;
        self.last = last;
        if self.error.is_none() {
            let total = self.declared.checked_add(size);
            match (total, self.max_size) {
                (Some(total), Some(max)) if total <= max => self.declared = total,
                (Some(total), None) => self.declared = total,
                _ => self.error = Some(DataError::SizeExceeded),
            }
        }
        self.discard = self.error.is_some();
        match self.error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Starts a chunk of `size` octets to be read and dropped without touching the message,
    /// for a BDAT command that was refused (bad sequence, syntax): its data is on the wire
    /// all the same, and must not be read as commands.
    ///
    /// # Panics
    /// If the previous chunk has not been read to its end.
    pub fn discard_chunk(&mut self, size: u64) {
        assert!(
            !self.in_chunk,
            "BDAT chunk started before the previous one was read"
        );
        self.in_chunk = true;
        self.remaining = size;
        self.last = false;
        self.discard = true;
    }

    /// Octets of the current chunk not yet read.
    #[must_use]
    pub const fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Content octets emitted so far, over all chunks.
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// The failure recorded so far, if any.
    #[must_use]
    pub const fn error(&self) -> Option<DataError> {
        self.error
    }

    /// Reads the next step of the current chunk from `input`. Drop `consumed` octets and
    /// call again until [`BdatStep::NeedMore`] or [`BdatStep::ChunkDone`].
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> BdatStep<'a> {
        if !self.in_chunk {
            return BdatStep::Idle;
        }
        if self.remaining == 0 {
            return self.chunk_done(0);
        }
        // `n <= input.len()`, so the cast is exact.
        let n = self.remaining.min(input.len() as u64) as usize;
        if n == 0 {
            return BdatStep::NeedMore { consumed: 0 };
        }
        self.remaining -= n as u64;
        if self.discard {
            if self.remaining == 0 {
                return self.chunk_done(n);
            }
            return BdatStep::NeedMore { consumed: n };
        }
        self.size += n as u64;
        BdatStep::Data {
            data: &input[..n],
            consumed: n,
        }
    }

    fn chunk_done<'a>(&mut self, consumed: usize) -> BdatStep<'a> {
        self.in_chunk = false;
        let outcome = match self.error {
            None => Ok(()),
            Some(e) => Err(e),
        };
        BdatStep::ChunkDone {
            consumed,
            last: self.last,
            outcome,
        }
    }
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
    /// or when the caller has checked with [`BodyScanner`] and knows what it does).
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
    /// Some CR or LF is not part of a CRLF ([`DotStuffer`] turns each into CRLF).
    pub bare_line_endings: bool,
    /// The longest line's length without its line ending, taking bare CR and LF as line
    /// endings as [`DotStuffer`] does.
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

/// Streaming CRLF normalisation for text bodies sent with BDAT (RFC 3030): what
/// [`DotStuffer`] does for DATA, without the dot-stuffing. Only a `BODY=BINARYMIME` body may
/// go out with bare CR or LF; a 7BIT or 8BITMIME body is text, whose lines end in CRLF
/// (RFC 5321 §2.3.8), and a client that passed bare line endings on would hand the next hop
/// a smuggling sequence. A CR at the end of one piece and an LF at the start of the next
/// are one CRLF.
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
    /// one (as [`DotStuffer::finish`] does). An empty body stays empty.
    pub fn finish<B: BufMut + ?Sized>(self, out: &mut B) {
        if self.pending_cr || (self.started && !self.at_line_end) {
            out.put_slice(b"\r\n");
        }
    }
}

/// Turns every bare CR and bare LF into CRLF, leaving CRLF alone: the line endings
/// [`DotStuffer`] sends and [`DataDecoder`] (in [`BareLineEndings::Normalize`] mode) hands
/// back. For any message `x`, decoding the encoding of `x` gives `normalize_line_endings(x)`
/// followed by a CRLF if that is not empty and does not already end in one.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn line_normalizer_counts_long_lines_across_pieces() {
        // RFC 5321 §4.5.3.1.6: 998 octets without CRLF is the most a text line may hold.
        for (line, long) in [(998usize, 0u64), (999, 1)] {
            let mut body = vec![b'x'; line];
            body.extend_from_slice(b"\r\nshort\n");
            body.extend(std::iter::repeat_n(b'y', line));
            for piece in [1, 7, 500, body.len()] {
                let mut n = LineNormalizer::new();
                let mut out = Vec::new();
                for chunk in body.chunks(piece) {
                    n.encode(chunk, &mut out);
                }
                assert_eq!(n.long_lines(), 2 * long, "line {line}, piece {piece}");
            }
        }
    }

    proptest! {
        /// The BDAT normaliser agrees with the DATA path: for any body cut anywhere, its
        /// output is `normalize_line_endings(body)` plus a CRLF when that is not empty and
        /// does not end in one.
        #[test]
        fn line_normalizer_matches_normalize(
            body in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..6),
        ) {
            let mut n = LineNormalizer::new();
            let mut out = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut last = 0;
            for c in cuts.into_iter().chain([body.len()]) {
                n.encode(&body[last..c], &mut out);
                last = c;
            }
            let long = n.long_lines();
            n.finish(&mut out);
            let expected_long = normalize_line_endings(&body)
                .split(|&b| b == b'\n')
                .filter(|l| l.strip_suffix(b"\r").unwrap_or(l).len() > 998)
                .count() as u64;
            prop_assert_eq!(long, expected_long);
            let mut want = normalize_line_endings(&body);
            if !want.is_empty() && !want.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(out, want);
        }
    }

    const R: BareLineEndings = BareLineEndings::Reject;
    const N: BareLineEndings = BareLineEndings::Normalize;
    const OK: Result<(), DataError> = Ok(());
    const BARE: Result<(), DataError> = Err(DataError::BareLineEnding);
    const LONG: Result<(), DataError> = Err(DataError::LineTooLong);
    const SIZE: Result<(), DataError> = Err(DataError::SizeExceeded);
    /// `consumed` is the whole input.
    const ALL: usize = usize::MAX;
    /// What a pipelining client sends right after the end of data.
    const TRAIL: &[u8] = b"MAIL FROM:<x>\r\n";

    /// What feeding a decoder gave.
    #[derive(Debug, PartialEq, Eq)]
    struct Run {
        out: Vec<u8>,
        /// `None`: the end of data was not reached.
        outcome: Option<Result<(), DataError>>,
        consumed: usize,
    }

    /// Feeds `pieces` in order until the end of data, checking the step protocol on the
    /// way: consumed within bounds, `Failed` once and before `Done`, no data after it.
    fn feed(mut dec: DataDecoder, pieces: &[&[u8]]) -> Run {
        let (mut out, mut consumed, mut failed) = (Vec::new(), 0, None);
        for piece in pieces {
            let mut input = *piece;
            loop {
                let step = dec.decode(input);
                assert!(step.consumed() <= input.len(), "{step:?}");
                match step {
                    DecodeStep::Data { data, .. } => {
                        assert!(!data.is_empty());
                        assert_eq!(failed, None, "data after failure");
                        out.extend_from_slice(data);
                    }
                    DecodeStep::Failed { error, .. } => {
                        assert_eq!(failed, None, "failed twice");
                        assert_eq!(dec.error(), Some(error));
                        failed = Some(error);
                    }
                    DecodeStep::NeedMore { consumed: n } => assert_eq!(n, input.len()),
                    DecodeStep::Done {
                        outcome,
                        consumed: n,
                    } => {
                        assert_eq!(outcome.err(), failed);
                        assert!(dec.is_done());
                        assert_eq!(
                            dec.decode(b"more"),
                            DecodeStep::Done {
                                outcome,
                                consumed: 0
                            }
                        );
                        return Run {
                            out,
                            outcome: Some(outcome),
                            consumed: consumed + n,
                        };
                    }
                }
                consumed += step.consumed();
                input = &input[step.consumed()..];
                if matches!(step, DecodeStep::NeedMore { .. }) {
                    break;
                }
            }
        }
        assert!(!dec.is_done());
        Run {
            out,
            outcome: None,
            consumed,
        }
    }

    /// Feeds `input` whole, octet by octet, cut in two at every point, and (if it ends)
    /// with pipelined bytes after it: all must agree with the expectation.
    fn check(
        dec: &DataDecoder,
        input: &[u8],
        out: &[u8],
        outcome: Option<Result<(), DataError>>,
        consumed: usize,
    ) {
        let consumed = if consumed == ALL {
            input.len()
        } else {
            consumed
        };
        let want = Run {
            out: out.to_vec(),
            outcome,
            consumed,
        };
        let ctx = String::from_utf8_lossy(input).escape_debug().to_string();
        assert_eq!(feed(dec.clone(), &[input]), want, "whole: {ctx}");
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(dec.clone(), &bytes), want, "byte by byte: {ctx}");
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(feed(dec.clone(), &[a, b]), want, "cut at {cut}: {ctx}");
        }
        if let Some(outcome) = outcome {
            let trailing = [input, TRAIL].concat();
            assert_eq!(feed(dec.clone(), &[&trailing]), want, "trailing: {ctx}");
            let mut d = dec.clone();
            let status = d.decode_with(&trailing, |_| {});
            assert_eq!(status, DecodeStatus::Done { outcome, consumed });
        }
    }

    /// (policy, input, output, outcome, consumed)
    type Case = (
        BareLineEndings,
        &'static [u8],
        &'static [u8],
        Result<(), DataError>,
        usize,
    );

    #[test]
    fn decode_table() {
        // (policy, input, output, outcome, consumed)
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // The end of data, and dot-unstuffing (RFC 5321 §4.1.1.4, §4.5.2).
            (R, b".\r\n",                        b"",                      OK, ALL),
            (R, b"\r\n.\r\n",                    b"\r\n",                  OK, ALL),
            (R, b"a\r\n.\r\n",                   b"a\r\n",                 OK, ALL),
            (R, b"a\r\n\r\n.\r\n",               b"a\r\n\r\n",             OK, ALL),
            (R, b"..\r\n.\r\n",                  b".\r\n",                 OK, ALL),
            (R, b"...\r\n.\r\n",                 b"..\r\n",                OK, ALL),
            (R, b"..a\r\n.\r\n",                 b".a\r\n",                OK, ALL),
            (R, b".a\r\n.\r\n",                  b"a\r\n",                 OK, ALL),
            (R, b". \r\n.\r\n",                  b" \r\n",                 OK, ALL),
            (R, b"a\r\n..\r\nb\r\n.\r\n",        b"a\r\n.\r\nb\r\n",       OK, ALL),
            (R, b"a.\r\n.b.\r\n.\r\n",           b"a.\r\nb.\r\n",          OK, ALL),
            (R, b"a\r\n.\r\nMAIL FROM:<x>\r\n",  b"a\r\n",                 OK, 6),
            (R, b".\r\n.\r\n",                   b"",                      OK, 3),
            (R, b"a\r\n.\r\n.\r\n",              b"a\r\n",                 OK, 6),
            // Smuggling: a bare CR or LF never ends the message (CVE-2023-51764/5/6).
            (R, b"a\n.\nMAIL\r\n.\r\n",          b"a",                     BARE, ALL),
            (R, b"a\r.\rMAIL\r\n.\r\n",          b"a\r",                   BARE, ALL),
            (R, b"a\n.\r\nMAIL\r\n.\r\n",        b"a",                     BARE, ALL),
            (R, b"a\r\n.\rMAIL\r\n.\r\n",        b"a\r\n",                 BARE, ALL),
            (R, b"a\r\n.\nMAIL\r\n.\r\n",        b"a\r\n",                 BARE, ALL),
            (R, b"a\r.\r\nMAIL\r\n.\r\n",        b"a\r",                   BARE, ALL),
            (R, b".\nMAIL\r\n.\r\n",             b"",                      BARE, ALL),
            (R, b".\rMAIL\r\n.\r\n",             b"",                      BARE, ALL),
            (R, b"\n.\r\n.\r\n",                 b"",                      BARE, ALL),
            (R, b"\r.\r\n.\r\n",                 b"\r",                    BARE, ALL),
            (R, b"a\nb\r\n.\r\n",                b"a",                     BARE, ALL),
            (R, b"a\rb\r\n.\r\n",                b"a\r",                   BARE, ALL),
            (R, b"a\r\r\n.\r\n",                 b"a\r",                   BARE, ALL),
            (R, b"a\n\r\n.\r\n",                 b"a",                     BARE, ALL),
            (R, b"a\n\r\n.\r\nMAIL FROM:<x>\r\n", b"a",                    BARE, 7),
            (R, b"a\r\n\n.\n\r\n.\r\n",          b"a\r\n",                 BARE, ALL),
            // Normalize: bare endings become CRLF; a "." line after one is content.
            (N, b"a\nb\r\n.\r\n",                b"a\r\nb\r\n",            OK, ALL),
            (N, b"a\rb\r\n.\r\n",                b"a\r\nb\r\n",            OK, ALL),
            (N, b"a\r\r\n.\r\n",                 b"a\r\n\r\n",             OK, ALL),
            (N, b"a\n.\nMAIL\r\n.\r\n",          b"a\r\n.\r\nMAIL\r\n",    OK, ALL),
            (N, b"a\r.\rMAIL\r\n.\r\n",          b"a\r\n.\r\nMAIL\r\n",    OK, ALL),
            (N, b"a\n.\r\nMAIL\r\n.\r\n",        b"a\r\n.\r\nMAIL\r\n",    OK, ALL),
            (N, b"a\r\n.\rMAIL\r\n.\r\n",        b"a\r\n.\r\nMAIL\r\n",    OK, ALL),
            (N, b"a\r\n.\nMAIL\r\n.\r\n",        b"a\r\n.\r\nMAIL\r\n",    OK, ALL),
            (N, b".\nX\r\n.\r\n",                b".\r\nX\r\n",            OK, ALL),
            (N, b"\n.\r\n.\r\n",                 b"\r\n.\r\n",             OK, ALL),
            (N, b"a\n..b\r\n.\r\n",              b"a\r\n.b\r\n",           OK, ALL),
            (N, b"a\n\n.\r\n.\r\n",              b"a\r\n\r\n.\r\n",        OK, ALL),
            (N, b".\r.\r\n.\r\n",                b".\r\n.\r\n",            OK, ALL),
            (N, b"a\n.\r\nMAIL\r\n.\r\nQUIT\r\n", b"a\r\n.\r\nMAIL\r\n",   OK, 14),
        ];
        for &(policy, input, out, outcome, consumed) in cases {
            let dec = DataDecoder::new().with_bare_line_endings(policy);
            check(&dec, input, out, Some(outcome), consumed);
        }
    }

    #[test]
    fn decode_unfinished() {
        // None of these is the end of data: the decoder waits for more.
        #[rustfmt::skip]
        let cases: &[(BareLineEndings, &[u8], &[u8])] = &[
            (R, b"",                 b""),
            (R, b".",                b""),
            (R, b".\r",              b""),
            (R, b"a\r\n.\r",         b"a\r\n"),
            (R, b"a\r\n.",           b"a\r\n"),
            (R, b"a\r",              b"a\r"),
            (R, b"a\r\n..",          b"a\r\n."),
            (R, b"\r\n",             b"\r\n"),
            (R, b"a\n.\n",           b"a"),
            (R, b"a\r.\r",           b"a\r"),
            (R, b"\n.\r\n",          b""),
            (R, b"a\r\n.\n",         b"a\r\n"),
            (R, b".\n",              b""),
            (N, b"a\n.\n",           b"a\r\n.\r\n"),
            (N, b"a\r.\r",           b"a\r\n"),
            (N, b"\n.\r\n",          b"\r\n.\r\n"),
            (N, b"a\r\n.\n",         b"a\r\n.\r\n"),
            (N, b".\n",              b".\r\n"),
        ];
        for &(policy, input, out) in cases {
            let dec = DataDecoder::new().with_bare_line_endings(policy);
            check(&dec, input, out, None, input.len());
        }
    }

    #[test]
    fn decode_long_lines() {
        let line = |n: usize| [vec![b'x'; n], b"\r\n".to_vec()].concat();
        let reject = DataDecoder::new().with_long_lines(LongLines::Reject);
        // 998 octets + CRLF = 1000, the limit (RFC 5321 §4.5.3.1.6).
        let ok = [line(998), b".\r\n".to_vec()].concat();
        check(&reject, &ok, &line(998), Some(OK), ALL);
        // The stuffed dot does not count.
        let dotted = [b".".to_vec(), line(998), b".\r\n".to_vec()].concat();
        check(&reject, &dotted, &line(998), Some(OK), ALL);
        // One more: content stops at the 998th octet, whatever the chunking.
        let long = [b"a\r\n".to_vec(), line(999), line(5), b".\r\n".to_vec()].concat();
        let want = [b"a\r\n".to_vec(), vec![b'x'; 998]].concat();
        check(&reject, &long, &want, Some(LONG), ALL);
        // A bare LF ends the line too (Normalize), so the next line is measured afresh.
        let norm = reject.clone().with_bare_line_endings(N);
        let split = [
            vec![b'x'; 900],
            b"\n".to_vec(),
            line(900),
            b".\r\n".to_vec(),
        ]
        .concat();
        check(
            &norm,
            &split,
            &normalize_line_endings(&split[..split.len() - 3]),
            Some(OK),
            ALL,
        );
        // Accepted by default.
        check(
            &DataDecoder::new(),
            &[line(5000), b".\r\n".to_vec()].concat(),
            &line(5000),
            Some(OK),
            ALL,
        );
        // A bare line ending seen first wins.
        let both = [b"a\n".to_vec(), line(2000), b".\r\n".to_vec()].concat();
        check(&reject, &both, b"a", Some(BARE), ALL);
    }

    #[test]
    fn decode_size_limit() {
        let body = b"abc\r\n..de\r\n.\r\n";
        // Unstuffed content is "abc\r\n.de\r\n": 10 octets.
        let at = |max| DataDecoder::new().with_max_size(Some(max));
        check(&at(10), body, b"abc\r\n.de\r\n", Some(OK), ALL);
        check(&at(9), body, b"abc\r\n.de\r", Some(SIZE), ALL);
        check(&at(5), body, b"abc\r\n", Some(SIZE), ALL);
        check(&at(0), body, b"", Some(SIZE), ALL);
        check(&at(0), b".\r\n", b"", Some(OK), ALL);
        // The limit is on the normalised content.
        let norm = |max| at(max).with_bare_line_endings(N);
        check(&norm(4), b"a\nb\r\n.\r\n", b"a\r\nb", Some(SIZE), ALL);
        // Size before a bare ending, and the other way round.
        check(&at(1), b"ab\nc\r\n.\r\n", b"a", Some(SIZE), ALL);
        check(&at(3), b"ab\nc\r\n.\r\n", b"ab", Some(BARE), ALL);
        // Size before a long line in the same scan: the earlier one wins.
        let reject = |max| at(max).with_long_lines(LongLines::Reject);
        let long = [vec![b'x'; 1200], b"\r\n.\r\n".to_vec()].concat();
        check(&reject(10), &long, &[b'x'; 10], Some(SIZE), ALL);
        check(&reject(998), &long, &[b'x'; 998], Some(LONG), ALL);
        check(&reject(999), &long, &[b'x'; 998], Some(LONG), ALL);
        assert_eq!(at(9).size(), 0);
    }

    #[test]
    fn decode_keeps_going_after_failure() {
        // A huge failed message is read to its end with no output and bounded memory.
        let mut dec = DataDecoder::new().with_max_size(Some(4));
        let chunk = vec![b'y'; 64 * 1024];
        let mut out = 0;
        let status = dec.decode_with(b"abcdef", |d| out += d.len());
        assert_eq!(status, DecodeStatus::NeedMore);
        assert_eq!(dec.error(), Some(DataError::SizeExceeded));
        for _ in 0..100 {
            assert_eq!(
                dec.decode_with(&chunk, |d| out += d.len()),
                DecodeStatus::NeedMore
            );
        }
        assert_eq!(out, 4);
        assert_eq!(
            dec.decode_with(b"\r\n.\r\nQUIT", |_| {}),
            DecodeStatus::Done {
                outcome: SIZE,
                consumed: 5
            }
        );
        assert_eq!(dec.size(), 4);
    }

    #[test]
    fn replies() {
        assert_eq!(DataError::BareLineEnding.reply().0, 550);
        assert_eq!(DataError::BareLineEnding.reply().1, (5, 5, 2));
        assert_eq!(DataError::LineTooLong.reply().0, 554);
        assert_eq!(DataError::LineTooLong.reply().1, (5, 6, 0));
        assert_eq!(DataError::SizeExceeded.reply().0, 552);
        assert_eq!(DataError::SizeExceeded.reply().1, (5, 3, 4));
        assert_eq!(
            DataError::SizeExceeded.to_string(),
            "message size exceeds the limit"
        );
    }

    fn stuff(pieces: &[&[u8]], policy: LongLines) -> Result<Vec<u8>, EncodeError> {
        let mut enc = DotStuffer::new().with_long_lines(policy);
        let mut out = Vec::new();
        for piece in pieces {
            enc.encode(piece, &mut out)?;
        }
        enc.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn encode_table() {
        // (input pieces, output)
        #[rustfmt::skip]
        let cases: &[(&[&[u8]], &[u8])] = &[
            (&[],                       b".\r\n"),
            (&[b""],                    b".\r\n"),
            (&[b"a"],                   b"a\r\n.\r\n"),
            (&[b"a\r\n"],               b"a\r\n.\r\n"),
            (&[b"\r\n"],                b"\r\n.\r\n"),
            (&[b"."],                   b"..\r\n.\r\n"),
            (&[b".a\r\n"],              b"..a\r\n.\r\n"),
            (&[b"a\r\n", b"."],         b"a\r\n..\r\n.\r\n"),
            (&[b"a\r\n."],              b"a\r\n..\r\n.\r\n"),
            (&[b"\r\n.\r\n"],           b"\r\n..\r\n.\r\n"),
            (&[b"a\n.b"],               b"a\r\n..b\r\n.\r\n"),
            (&[b"\n.\n"],               b"\r\n..\r\n.\r\n"),
            (&[b"a\r.\r"],              b"a\r\n..\r\n.\r\n"),
            (&[b"a\r", b"\nb"],         b"a\r\nb\r\n.\r\n"),
            (&[b"a\r", b"", b"\nb"],    b"a\r\nb\r\n.\r\n"),
            (&[b"a\r", b"\r\n"],        b"a\r\n\r\n.\r\n"),
            (&[b"a\r", b".b"],          b"a\r\n..b\r\n.\r\n"),
            (&[b"a\r", b"\n.b"],        b"a\r\n..b\r\n.\r\n"),
            (&[b"a\n\r"],               b"a\r\n\r\n.\r\n"),
            (&[b"a\r\r"],               b"a\r\n\r\n.\r\n"),
            (&[b"..\r\n...\r\n"],       b"...\r\n....\r\n.\r\n"),
            (&[b"x.\r\ny."],            b"x.\r\ny.\r\n.\r\n"),
        ];
        for &(pieces, want) in cases {
            let got = stuff(pieces, LongLines::Reject).unwrap();
            assert_eq!(got, want, "{pieces:?}");
            // Round trip: the decoder gives back the normalised body.
            let body = pieces.concat();
            let mut expect = normalize_line_endings(&body);
            if !expect.is_empty() && !expect.ends_with(b"\r\n") {
                expect.extend_from_slice(b"\r\n");
            }
            check(&DataDecoder::new(), &got, &expect, Some(OK), ALL);
        }
    }

    #[test]
    fn encode_long_lines() {
        let x = |n| vec![b'x'; n];
        assert!(stuff(&[&x(998)], LongLines::Reject).is_ok());
        assert!(stuff(&[&[b".".to_vec(), x(997)].concat()], LongLines::Reject).is_ok());
        assert_eq!(
            stuff(&[&x(999)], LongLines::Reject),
            Err(EncodeError::LineTooLong)
        );
        assert_eq!(
            stuff(&[&x(500), &x(499)], LongLines::Reject),
            Err(EncodeError::LineTooLong)
        );
        // Bare endings split lines.
        assert!(
            stuff(
                &[&x(998), b"\n", &x(998), b"\r", &x(998)],
                LongLines::Reject
            )
            .is_ok()
        );
        // Counted once per line under Accept.
        let mut enc = DotStuffer::new().with_long_lines(LongLines::Accept);
        let mut out = bytes::BytesMut::new();
        enc.encode(
            &[x(2000), b"\r\nok\r\n".to_vec(), x(1000), b"\n".to_vec()].concat(),
            &mut out,
        )
        .unwrap();
        enc.encode(&x(999), &mut out).unwrap();
        enc.encode(&x(999), &mut out).unwrap();
        assert_eq!(enc.long_lines(), 3);
        enc.finish(&mut out).unwrap();
        // Sticky.
        let mut enc = DotStuffer::new();
        let mut out = Vec::new();
        assert!(enc.encode(&x(1001), &mut out).is_err());
        assert_eq!(enc.encode(b"a", &mut out), Err(EncodeError::LineTooLong));
        assert_eq!(enc.finish(&mut out), Err(EncodeError::LineTooLong));
    }

    #[test]
    fn normalize_table() {
        #[rustfmt::skip]
        let cases: &[(&[u8], &[u8])] = &[
            (b"",           b""),
            (b"a",          b"a"),
            (b"\r",         b"\r\n"),
            (b"\n",         b"\r\n"),
            (b"\r\n",       b"\r\n"),
            (b"\n\r",       b"\r\n\r\n"),
            (b"\r\r\n",     b"\r\n\r\n"),
            (b"a\nb\rc",    b"a\r\nb\r\nc"),
        ];
        for &(input, want) in cases {
            assert_eq!(normalize_line_endings(input), want, "{input:?}");
        }
    }

    #[test]
    fn scan_table() {
        let info = |eight_bit, nul, bare, max| BodyInfo {
            eight_bit,
            nul,
            bare_line_endings: bare,
            max_line_len: max,
        };
        #[rustfmt::skip]
        let cases: &[(&[&[u8]], BodyInfo, BodyKind)] = &[
            (&[],                          info(false, false, false, 0), BodyKind::SevenBit),
            (&[b"ab\r\nc"],                info(false, false, false, 2), BodyKind::SevenBit),
            (&[b"ab\r", b"\nc"],           info(false, false, false, 2), BodyKind::SevenBit),
            (&[b"ab\r", b"c"],             info(false, false, true, 2),  BodyKind::SevenBit),
            (&[b"ab\r"],                   info(false, false, true, 2),  BodyKind::SevenBit),
            (&[b"ab\n\n"],                 info(false, false, true, 2),  BodyKind::SevenBit),
            (&[b"a\r\r\nbcd"],             info(false, false, true, 3),  BodyKind::SevenBit),
            (&["é\r\n".as_bytes()],        info(true, false, false, 2),  BodyKind::EightBitMime),
            (&[b"a\0"],                    info(false, true, false, 2),  BodyKind::BinaryMime),
            (&[&[b'x'; 999]],              info(false, false, false, 999), BodyKind::BinaryMime),
            (&[&[b'x'; 500], &[b'x'; 498]], info(false, false, false, 998), BodyKind::SevenBit),
        ];
        for &(pieces, want, kind) in cases {
            let mut s = BodyScanner::new();
            pieces.iter().for_each(|p| s.update(p));
            let got = s.finish();
            assert_eq!(got, want, "{pieces:?}");
            assert_eq!(got.kind(), kind);
            assert_eq!(scan_body(&pieces.concat()), want);
        }
    }

    /// Feeds a BDAT decoder, returning the content and each chunk's end.
    fn bdat(dec: &mut BdatDecoder, mut input: &[u8]) -> (Vec<u8>, Option<BdatStep<'static>>) {
        let mut out = Vec::new();
        loop {
            match dec.decode(input) {
                BdatStep::Data { data, consumed } => {
                    out.extend_from_slice(data);
                    input = &input[consumed..];
                }
                BdatStep::NeedMore { consumed } => {
                    assert_eq!(consumed, input.len());
                    return (out, None);
                }
                BdatStep::ChunkDone {
                    consumed,
                    last,
                    outcome,
                } => {
                    return (
                        out,
                        Some(BdatStep::ChunkDone {
                            consumed,
                            last,
                            outcome,
                        }),
                    );
                }
                BdatStep::Idle => return (out, Some(BdatStep::Idle)),
            }
        }
    }

    #[test]
    fn bdat_chunks() {
        let mut dec = BdatDecoder::new(Some(10));
        assert_eq!(dec.decode(b"x"), BdatStep::Idle);
        dec.start_chunk(4, false).unwrap();
        // Binary data passes untouched, in pieces, and the next command is left over.
        assert_eq!(
            dec.decode(b"\r\n"),
            BdatStep::Data {
                data: b"\r\n",
                consumed: 2
            }
        );
        assert_eq!(dec.decode(b""), BdatStep::NeedMore { consumed: 0 });
        assert_eq!(
            dec.decode(b".\0BDAT"),
            BdatStep::Data {
                data: b".\0",
                consumed: 2
            }
        );
        assert_eq!(dec.remaining(), 0);
        assert_eq!(
            dec.decode(b"BDAT"),
            BdatStep::ChunkDone {
                consumed: 0,
                last: false,
                outcome: OK
            }
        );
        assert_eq!(dec.decode(b"BDAT"), BdatStep::Idle);
        // Zero-size LAST chunk.
        let mut d0 = dec.clone();
        d0.start_chunk(0, true).unwrap();
        assert_eq!(
            d0.decode(b""),
            BdatStep::ChunkDone {
                consumed: 0,
                last: true,
                outcome: OK
            }
        );
        // Over the limit: refused before reading, then read and dropped.
        assert_eq!(dec.start_chunk(7, false), Err(DataError::SizeExceeded));
        assert_eq!(dec.error(), Some(DataError::SizeExceeded));
        assert_eq!(dec.decode(b"abc"), BdatStep::NeedMore { consumed: 3 });
        assert_eq!(
            dec.decode(b"defgQUIT"),
            BdatStep::ChunkDone {
                consumed: 4,
                last: false,
                outcome: SIZE
            }
        );
        // Later chunks are dropped as well.
        assert_eq!(dec.start_chunk(1, true), Err(DataError::SizeExceeded));
        assert_eq!(
            dec.decode(b"z"),
            BdatStep::ChunkDone {
                consumed: 1,
                last: true,
                outcome: SIZE
            }
        );
        assert_eq!(dec.size(), 4);
        // Exactly at the limit is fine.
        let mut dec = BdatDecoder::new(Some(3));
        dec.start_chunk(3, true).unwrap();
        let done = BdatStep::ChunkDone {
            consumed: 0,
            last: true,
            outcome: OK,
        };
        assert_eq!(bdat(&mut dec, b"abcd"), (b"abc".to_vec(), Some(done)));
        // Overflowing sizes are over any limit.
        let mut dec = BdatDecoder::new(None);
        dec.start_chunk(u64::MAX, false).unwrap();
        assert_eq!(dec.decode(b""), BdatStep::NeedMore { consumed: 0 });
        let mut dec = BdatDecoder::new(None);
        dec.start_chunk(1, false).unwrap();
        let done = BdatStep::ChunkDone {
            consumed: 0,
            last: false,
            outcome: OK,
        };
        assert_eq!(bdat(&mut dec, b"a"), (b"a".to_vec(), Some(done)));
        assert_eq!(
            dec.start_chunk(u64::MAX, true),
            Err(DataError::SizeExceeded)
        );
    }

    #[test]
    fn bdat_discard() {
        // A refused BDAT's chunk is read and dropped, whatever the pieces.
        let mut dec = BdatDecoder::discarding(5);
        assert_eq!(dec.decode(b"ab"), BdatStep::NeedMore { consumed: 2 });
        assert_eq!(
            dec.decode(b"cdeRSET\r\n"),
            BdatStep::ChunkDone {
                consumed: 3,
                last: false,
                outcome: OK
            }
        );
        // Within a message it leaves the message alone.
        let mut dec = BdatDecoder::new(Some(4));
        dec.discard_chunk(100);
        assert_eq!(
            bdat(&mut dec, &[0; 100]),
            (
                vec![],
                Some(BdatStep::ChunkDone {
                    consumed: 100,
                    last: false,
                    outcome: OK
                })
            )
        );
        dec.start_chunk(4, true).unwrap();
        assert_eq!(bdat(&mut dec, b"abcd").0, b"abcd");
        assert_eq!(dec.size(), 4);
    }

    #[test]
    #[should_panic(expected = "previous one")]
    fn bdat_chunk_overlap_panics() {
        let mut dec = BdatDecoder::new(None);
        dec.start_chunk(2, false).unwrap();
        let _ = dec.start_chunk(2, false);
    }

    /// Cuts `data` at the given points (taken modulo its length, in order).
    fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points {
            out.push(&data[last..p]);
            last = p;
        }
        out.push(&data[last..]);
        out
    }

    /// Bodies rich in the octets that matter, with now and then a run of text long enough
    /// to cross the line limit.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => Just(vec![b'\r']),
            4 => Just(vec![b'\n']),
            4 => Just(vec![b'.']),
            2 => Just(vec![b'a']),
            1 => any::<u8>().prop_map(|b| vec![b]),
            1 => (990usize..1010).prop_map(|n| vec![b'x'; n]),
        ];
        prop::collection::vec(piece, 0..120).prop_map(|v| v.concat())
    }

    fn decoder() -> impl Strategy<Value = DataDecoder> {
        (
            any::<bool>(),
            any::<bool>(),
            prop::option::of(prop_oneof![0u64..300, 0u64..5000]),
        )
            .prop_map(|(norm, long, max)| {
                let dec = DataDecoder::new().with_max_size(max);
                let dec = if norm {
                    dec.with_bare_line_endings(N)
                } else {
                    dec
                };
                if long {
                    dec.with_long_lines(LongLines::Reject)
                } else {
                    dec
                }
            })
    }

    proptest! {
        /// decode(encode(x)) == normalise(x) (+ CRLF), with an exact consumed count,
        /// however either side is cut.
        #[test]
        fn round_trip(body in body(), enc_cuts in prop::collection::vec(any::<usize>(), 0..6),
                      dec_cuts in prop::collection::vec(any::<usize>(), 0..6), norm in any::<bool>()) {
            let mut enc = DotStuffer::new().with_long_lines(LongLines::Accept);
            let mut wire = Vec::new();
            for piece in pieces(&body, &enc_cuts) {
                enc.encode(piece, &mut wire).unwrap();
            }
            enc.finish(&mut wire).unwrap();
            let mut want = normalize_line_endings(&body);
            if !want.is_empty() && !want.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            let end = wire.len();
            wire.extend_from_slice(TRAIL);
            let dec = if norm { DataDecoder::new().with_bare_line_endings(N) } else { DataDecoder::new() };
            let run = feed(dec, &pieces(&wire, &dec_cuts));
            prop_assert_eq!(run, Run { out: want, outcome: Some(OK), consumed: end });
        }

        /// Any octets, any cuts: no panic, and without Normalize the output never grows.
        #[test]
        fn arbitrary_input(input in prop::collection::vec(any::<u8>(), 0..300), body in body(),
                           cuts in prop::collection::vec(any::<usize>(), 0..8), dec in decoder()) {
            for input in [&input, &body] {
                let run = feed(dec.clone(), &pieces(input, &cuts));
                prop_assert!(run.consumed <= input.len());
                if dec.bare == R {
                    prop_assert!(run.out.len() <= run.consumed);
                }
                if let Some(max) = dec.max_size {
                    prop_assert!(run.out.len() as u64 <= max);
                }
            }
        }

        /// How the input is cut never changes the output, the outcome or the consumed count.
        #[test]
        fn chunking_invariant(body in body(), cuts in prop::collection::vec(any::<usize>(), 0..8),
                              dec in decoder(), end in any::<bool>()) {
            let input = if end { [&body[..], b"\r\n.\r\n", TRAIL].concat() } else { body };
            let whole = feed(dec.clone(), &[&input]);
            prop_assert_eq!(&feed(dec.clone(), &pieces(&input, &cuts)), &whole);
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(&feed(dec.clone(), &bytes), &whole);
            if end {
                prop_assert!(whole.outcome.is_some());
            }
        }

        /// The scanner agrees with the encoder on long lines, however the body is cut.
        #[test]
        fn scanner_matches_encoder(body in body(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
            let mut s = BodyScanner::new();
            let mut enc = DotStuffer::new().with_long_lines(LongLines::Accept);
            let mut out = Vec::new();
            for piece in pieces(&body, &cuts) {
                s.update(piece);
                enc.encode(piece, &mut out).unwrap();
            }
            let info = s.finish();
            prop_assert_eq!(info, scan_body(&body));
            prop_assert_eq!(info.bare_line_endings, normalize_line_endings(&body) != body);
            let norm = normalize_line_endings(&body);
            let longest = norm.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).len()).max().unwrap_or(0);
            prop_assert_eq!(info.max_line_len, longest);
        }
    }
}

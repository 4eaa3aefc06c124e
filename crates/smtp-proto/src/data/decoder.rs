//! The server side of DATA: [`DataDecoder`] finds `CRLF . CRLF` and undoes the
//! dot-stuffing (RFC 5321 §4.1.1.4, §4.5.2), streaming and zero-copy, and
//! [`BareLineEndings`] says what happens to a bare CR or LF, the stuff of SMTP smuggling.

use std::ops::Range;

use memchr::memchr2;

use super::{CRLF, DOT_CRLF, DataError, LF, LongLines, MAX_CONTENT};

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

/// A piece of message content: where it is, rather than a slice, so that a caller that
/// owns the input (a `Bytes` buffer, say) can take it without copying and without turning
/// a slice back into an offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// These octets of the input given (never empty).
    Input(Range<usize>),
    /// Octets the decoder puts in: the CRLF that ends a line with a bare CR or LF (or `.`
    /// CRLF), in [`BareLineEndings::Normalize`] mode.
    Inserted(&'static [u8]),
}

impl Content {
    /// The octets, given the input the step was decoded from.
    #[must_use]
    pub fn of<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        match self {
            Content::Input(range) => &input[range.clone()],
            Content::Inserted(data) => data,
        }
    }

    /// How many octets.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Content::Input(range) => range.len(),
            Content::Inserted(data) => data.len(),
        }
    }

    /// Never true for content a step returns.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the scan names a piece of content: as a slice for [`DataDecoder::decode_with`]
/// (straight to its sink, nothing in between), as a [`Content`] for
/// [`DataDecoder::decode`]. The scan is written once for both.
trait Pieces<'a> {
    type Piece;
    /// `input[range]`, of the input being scanned.
    fn input(&self, range: Range<usize>) -> Self::Piece;
    /// Octets the decoder puts in.
    fn inserted(&self, data: &'static [u8]) -> Self::Piece;
    fn len(piece: &Self::Piece) -> usize;
    /// The first `n` octets of `piece`.
    fn keep(piece: Self::Piece, n: usize) -> Self::Piece;
}

/// Pieces as slices of the input.
struct Slices<'a>(&'a [u8]);

impl<'a> Pieces<'a> for Slices<'a> {
    type Piece = &'a [u8];
    #[inline(always)]
    fn input(&self, range: Range<usize>) -> &'a [u8] {
        &self.0[range]
    }
    #[inline(always)]
    fn inserted(&self, data: &'static [u8]) -> &'a [u8] {
        data
    }
    #[inline(always)]
    fn len(piece: &&'a [u8]) -> usize {
        piece.len()
    }
    #[inline(always)]
    fn keep(piece: &'a [u8], n: usize) -> &'a [u8] {
        &piece[..n]
    }
}

/// Pieces as [`Content`]: where they are.
struct Ranges;

impl Pieces<'_> for Ranges {
    type Piece = Content;
    fn input(&self, range: Range<usize>) -> Content {
        Content::Input(range)
    }
    fn inserted(&self, data: &'static [u8]) -> Content {
        Content::Inserted(data)
    }
    fn len(piece: &Content) -> usize {
        piece.len()
    }
    fn keep(piece: Content, n: usize) -> Content {
        match piece {
            Content::Input(range) => Content::Input(range.start..range.start + n),
            Content::Inserted(data) => Content::Inserted(&data[..n]),
        }
    }
}

/// One step of [`DataDecoder::decode`]. Every variant says how many octets of the input it
/// used ([`consumed`](Self::consumed)); the caller drops them and calls again with the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum DecodeStep {
    /// Message content, dot-unstuffed, to append to the message: a range of the input, or
    /// a line ending the decoder puts in ([`Content`]).
    Data {
        /// The content: never empty.
        content: Content,
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

impl DecodeStep {
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
/// words of state and never buffers: what it returns are ranges of the input ([`Content`],
/// or constant CRLFs). Ordinary mail goes by 128 octets at a time, each block checked at
/// once for anything out of the ordinary (a CR without its LF, an LF without its CR, a
/// line-leading dot); only the lines where something is found are read one `memchr2` at
/// a time (and every line, while lines are measured for [`LongLines::Reject`]). Every
/// line ending is looked at either way.
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
///             DecodeStep::Data { content, consumed } => {
///                 message.extend_from_slice(content.of(input));
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

    /// Sets whether lines over [`MAX_LINE_LEN`](super::MAX_LINE_LEN) octets (RFC 5321
    /// §4.5.3.1.6, the stuffed dot not counted) fail the message with
    /// [`DataError::LineTooLong`].
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
    pub fn decode(&mut self, input: &[u8]) -> DecodeStep {
        if let Some(step) = self.pending(0) {
            return step;
        }
        let mut got = None;
        match self.scan(input, &Ranges, &mut |content| {
            got = Some(content);
            false
        }) {
            Scan::Stopped(consumed) => match got {
                // A failure found right after this content is reported by the next call.
                Some(content) => DecodeStep::Data { content, consumed },
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
            let rest = &input[off..];
            match self.scan(rest, &Slices(rest), &mut |data| {
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
    fn pending(&mut self, consumed: usize) -> Option<DecodeStep> {
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
    fn deliver<'a, P: Pieces<'a>>(
        &mut self,
        piece: P::Piece,
        sink: &mut impl FnMut(P::Piece) -> bool,
    ) -> bool {
        if self.error.is_some() {
            return true; // reading to the end of data only
        }
        let mut piece = piece;
        let len = P::len(&piece) as u64;
        match self.max_size {
            Some(max) if len > max - self.size => {
                // `max - size < len <= usize::MAX`, so the cast is exact.
                piece = P::keep(piece, (max - self.size) as usize);
                self.size = max;
                self.fail(DataError::SizeExceeded);
            }
            _ => self.size += len,
        }
        let go = P::len(&piece) == 0 || sink(piece);
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
    fn scan<'a, P: Pieces<'a>>(
        &mut self,
        input: &[u8],
        pieces: &P,
        sink: &mut impl FnMut(P::Piece) -> bool,
    ) -> Scan {
        let len = input.len();
        let mut pos = 0;
        let mut run = 0;
        // Before this position the block scan found something to look at: the hot loop
        // goes there line by line before trying whole blocks again.
        let mut probe = 0;
        // How many block scans in a row found something to look at: where every line
        // needs a look (a body of dot lines), blocks are tried ever more rarely.
        let mut misses = 0u32;
        // Delivers `$data` and resumes the `$scan` loop at `$next`, where `self.state` must
        // already be.
        macro_rules! emit {
            ($scan:lifetime, $data:expr, $next:expr) => {{
                let next = $next;
                if !self.deliver::<P>($data, sink) {
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
                    emit!('scan, pieces.input(run..len), len);
                }
                return Scan::Need;
            }
            match self.state {
                State::Text => loop {
                    // The hot loop: one memchr2 per line, and a CRLF followed by anything
                    // but a dot does not even leave it; after such a CRLF, whole blocks with
                    // nothing to do are skipped at once.
                    let Some(i) = memchr2(b'\r', b'\n', &input[pos..]) else {
                        if self.check_long
                            && let Some(cut) = self.measure(pos, len - pos)
                        {
                            return self.cut(pieces, run..cut, cut, sink);
                        }
                        emit!('scan, pieces.input(run..len), len);
                    };
                    let p = pos + i;
                    if self.check_long {
                        if let Some(cut) = self.measure(pos, i) {
                            return self.cut(pieces, run..cut, cut, sink);
                        }
                        self.line_len = 0;
                    }
                    if input[p] == b'\n' {
                        // An LF without a CR before it (the CR of a CRLF takes its LF along).
                        if run < p {
                            emit!('scan, pieces.input(run..p), p); // the LF comes next time round
                        }
                        self.state = State::LineStart { clean: false };
                        if self.bare_fails() {
                            return Scan::Stopped(p + 1);
                        }
                        emit!('scan, pieces.inserted(CRLF), p + 1);
                    }
                    if input.get(p + 1) == Some(&b'\n') {
                        pos = p + 2;
                        match input.get(pos) {
                            // Next line, same loop, skipping what needs no look (not
                            // while lines are measured). A body of dot lines never comes
                            // here, and pays nothing for it.
                            Some(&b) if b != b'.' => {
                                if pos >= probe && !self.check_long {
                                    let next = skip_plain(input, pos);
                                    misses = if next > pos { 0 } else { (misses + 1).min(4) };
                                    probe = next + (BLOCK << misses);
                                    pos = next;
                                }
                                continue;
                            }
                            // The common dot line: ". text", its dot removed (§4.5.2) without
                            // the trip through the line-start states.
                            Some(_)
                                if !matches!(input.get(pos + 1), None | Some(b'\r' | b'\n')) =>
                            {
                                emit!('scan, pieces.input(run..pos), pos + 1);
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
                            emit!('scan, pieces.input(run..pos), pos + 1);
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
                        emit!('scan, pieces.inserted(DOT_CRLF), pos + 1);
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
                        emit!('scan, pieces.inserted(DOT_CRLF), pos + 1);
                    }
                    self.state = State::LineStart { clean: false };
                    if self.bare_fails() {
                        return Scan::Stopped(pos);
                    }
                    emit!('scan, pieces.inserted(DOT_CRLF), pos);
                }
                State::Cr => {
                    if input[pos] == b'\n' {
                        pos += 1;
                        self.state = State::LineStart { clean: true };
                    } else {
                        if run < pos {
                            emit!('scan, pieces.input(run..pos), pos);
                        }
                        self.state = State::LineStart { clean: false };
                        if self.bare_fails() {
                            return Scan::Stopped(pos);
                        }
                        emit!('scan, pieces.inserted(LF), pos);
                    }
                }
                State::Done => return Scan::End(0),
            }
        }
    }

    /// Fails the message for a long line: its content ends at `cut`, the first octet over
    /// the limit, whatever the chunking. `data` is what comes before it.
    fn cut<'a, P: Pieces<'a>>(
        &mut self,
        pieces: &P,
        data: Range<usize>,
        cut: usize,
        sink: &mut impl FnMut(P::Piece) -> bool,
    ) -> Scan {
        self.state = State::Text;
        self.check_long = false;
        let _ = self.deliver::<P>(pieces.input(data), sink); // a size overrun there comes first
        if self.error.is_none() {
            self.fail(DataError::LineTooLong);
        }
        Scan::Stopped(cut)
    }
}

/// Octets per block of [`skip_plain`]: eight SSE2 vectors (fewer instructions a body than
/// 32 or 64; more of a block is read line by line where something needs a look).
const BLOCK: usize = 128;

/// From `pos` inside a line, skips whole blocks where the hot loop of
/// [`DataDecoder::scan`] would do nothing: every CR followed by LF and then by something
/// other than a dot, every LF after a CR. Returns where to resume: inside a line, or just
/// after such a CRLF.
///
/// Bare CR and LF are rare and most blocks of a message hold no line ending at all, so
/// almost all of a body goes by here, a block at a time, and the line-by-line loop only
/// sees the lines that need a closer look: a CR or LF out of pair, a line-leading dot,
/// the end of data. Each pair `(w[k], w[k + 1])` is checked by the block holding `w[k]`,
/// so a CR at the end of one block has its LF checked there, and an LF at the start of
/// the next has its CR checked too; the first octet, which no block pairs with what is
/// before it, must not be an LF (in the middle of a line an LF is bare).
#[inline(never)] // called rarely on a body of short lines; kept out of the loop's registers
fn skip_plain(input: &[u8], pos: usize) -> usize {
    if input.get(pos) == Some(&b'\n') {
        return pos;
    }
    let mut s = pos;
    while let Some(w) = input.get(s..s + BLOCK + 2) {
        if !plain(w) {
            break;
        }
        s += BLOCK;
    }
    // A CR last in the last block skipped: its LF, checked with it, is skipped too.
    if s > pos && input[s - 1] == b'\r' {
        s + 1
    } else {
        s
    }
}

/// Whether the first [`BLOCK`] octets of `w` (which has two more) are plain: no CR, LF or
/// line-leading dot that [`skip_plain`] must stop at. Written as one pass of byte
/// compares with no early exit, which the compiler turns into vector compares (SSE2, in
/// the baseline of x86-64) without any `unsafe`.
#[inline(always)]
fn plain(w: &[u8]) -> bool {
    let (a, b, c) = (&w[..BLOCK], &w[1..=BLOCK], &w[2..BLOCK + 2]);
    let mut bad = 0u8;
    for k in 0..BLOCK {
        let cr = u8::from(a[k] == b'\r');
        // A CR without its LF, an LF without its CR, or "CR LF ." (a dot line).
        bad |= (cr ^ u8::from(b[k] == b'\n')) | (cr & u8::from(c[k] == b'.'));
    }
    bad == 0
}

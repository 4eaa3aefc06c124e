//! The server side of BDAT (RFC 3030 §2): [`BdatDecoder`] counts out each chunk's declared
//! octets and passes them through untouched, under one size limit for the whole message.

use super::DataError;

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

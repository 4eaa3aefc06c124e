//! `DataDecoder` over arbitrary bytes, arbitrary chunking and arbitrary settings.
//!
//! Checks: no panic; every step uses at most what it was given; the content is never
//! larger than the input (or twice the input when bare line endings are normalised to
//! CRLF), nor than the size limit; `size()` counts what was handed out; and how the input
//! is cut changes neither the content, nor the outcome, nor where the end of data is
//! (the decoder's documented promise). `decode_with` agrees with `decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_fuzz::chunks;
use smtp_proto::data::{
    BareLineEndings, DataDecoder, DataError, DecodeStatus, DecodeStep, LongLines,
};

#[derive(Debug, PartialEq)]
struct Outcome {
    content: Vec<u8>,
    /// Octets used up to the end of data, and the outcome, if it was found.
    end: Option<(usize, Result<(), DataError>)>,
    failed: Option<DataError>,
}

fn decode_steps(pieces: &[&[u8]], mut decoder: DataDecoder) -> Outcome {
    let mut content = Vec::new();
    let mut used = 0;
    let mut failed = None;
    for piece in pieces {
        let mut input = *piece;
        loop {
            let step = decoder.decode(input);
            let n = step.consumed();
            assert!(n <= input.len());
            let data = match &step {
                DecodeStep::Data { content, .. } => content.of(input),
                _ => &[],
            };
            used += n;
            input = &input[n..];
            match step {
                DecodeStep::Data { .. } => {
                    assert!(!data.is_empty());
                    assert!(failed.is_none(), "content after the failure");
                    content.extend_from_slice(data);
                }
                DecodeStep::Failed { error, .. } => {
                    assert!(failed.is_none(), "failure reported twice");
                    failed = Some(error);
                }
                DecodeStep::NeedMore { .. } => break,
                DecodeStep::Done { outcome, .. } => {
                    assert_eq!(outcome.err(), failed);
                    assert_eq!(decoder.size(), content.len() as u64);
                    // Done again, using nothing.
                    assert_eq!(decoder.decode(input), DecodeStep::Done { outcome, consumed: 0 });
                    return Outcome {
                        content,
                        end: Some((used, outcome)),
                        failed,
                    };
                }
            }
        }
    }
    assert_eq!(decoder.size(), content.len() as u64);
    assert_eq!(decoder.error(), failed);
    Outcome {
        content,
        end: None,
        failed,
    }
}

fn decode_sink(pieces: &[&[u8]], mut decoder: DataDecoder) -> Outcome {
    let mut content = Vec::new();
    let mut used = 0;
    for piece in pieces {
        match decoder.decode_with(piece, |d| {
            assert!(!d.is_empty());
            content.extend_from_slice(d);
        }) {
            DecodeStatus::NeedMore => used += piece.len(),
            DecodeStatus::Done { outcome, consumed } => {
                used += consumed;
                return Outcome {
                    content,
                    end: Some((used, outcome)),
                    failed: outcome.err(),
                };
            }
        }
    }
    let failed = decoder.error();
    Outcome {
        content,
        end: None,
        failed,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, input) = data.split_at(4);
    let bare = if head[0] & 1 == 0 {
        BareLineEndings::Reject
    } else {
        BareLineEndings::Normalize
    };
    let long = if head[0] & 2 == 0 {
        LongLines::Accept
    } else {
        LongLines::Reject
    };
    let max = (head[0] & 4 != 0).then_some(u64::from(head[1]) * 8);
    let decoder = DataDecoder::new()
        .with_bare_line_endings(bare)
        .with_long_lines(long)
        .with_max_size(max);
    let sizes = &head[2..4];

    let whole = decode_steps(&[input], decoder.clone());
    let limit = match bare {
        BareLineEndings::Reject => input.len(),
        BareLineEndings::Normalize => 2 * input.len(),
    };
    assert!(whole.content.len() <= limit, "{} > {limit}", whole.content.len());
    if let Some(max) = max {
        assert!(whole.content.len() as u64 <= max);
    }
    if let Some((used, _)) = whole.end {
        assert!(used <= input.len());
    }

    let pieces = chunks(input, sizes);
    let cut = decode_steps(&pieces, decoder.clone());
    assert_eq!(whole, cut, "chunking changed the result");
    // No content is handed out after a failure, whichever way in.
    assert_eq!(decode_sink(&pieces, decoder), whole);
});

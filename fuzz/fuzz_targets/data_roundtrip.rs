//! DATA both ways: a body goes through `DotStuffer` in arbitrary pieces, and what it wrote
//! goes through `DataDecoder` in other arbitrary pieces.
//!
//! Checks (the contract on `normalize_line_endings`): the decoder finds the end of data
//! exactly at the end of what the stuffer wrote, accepts the message (the stuffer never
//! writes a bare CR or LF), and hands back `normalise(body)` plus a CRLF when that is not
//! empty and does not end with one. `decode` and `decode_with` agree.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smtp_fuzz::{chunks, data_expected};
use smtp_proto::data::{DataDecoder, DecodeStatus, DecodeStep, DotStuffer, LongLines};

#[derive(Arbitrary, Debug)]
struct Input {
    body: Vec<u8>,
    encode_sizes: Vec<u8>,
    decode_sizes: Vec<u8>,
    /// Refuse lines over 998 octets in both (else accept them).
    reject_long: bool,
}

/// Decodes with `decode`, step by step; returns the content and the octets used.
fn decode_steps(pieces: &[&[u8]], decoder: &mut DataDecoder) -> (Vec<u8>, usize, bool) {
    let mut out = Vec::new();
    let mut used = 0;
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
                    out.extend_from_slice(data);
                }
                DecodeStep::Failed { error, .. } => panic!("stuffed body refused: {error}"),
                DecodeStep::NeedMore { .. } => break,
                DecodeStep::Done { outcome, .. } => {
                    assert_eq!(outcome, Ok(()));
                    return (out, used, true);
                }
            }
        }
    }
    (out, used, false)
}

fn decode_sink(pieces: &[&[u8]], decoder: &mut DataDecoder) -> (Vec<u8>, usize, bool) {
    let mut out = Vec::new();
    let mut used = 0;
    for piece in pieces {
        match decoder.decode_with(piece, |d| out.extend_from_slice(d)) {
            DecodeStatus::NeedMore => used += piece.len(),
            DecodeStatus::Done { outcome, consumed } => {
                assert_eq!(outcome, Ok(()));
                return (out, used + consumed, true);
            }
        }
    }
    (out, used, false)
}

fuzz_target!(|input: Input| {
    let policy = if input.reject_long {
        LongLines::Reject
    } else {
        LongLines::Accept
    };
    let mut stuffer = DotStuffer::new().with_long_lines(policy);
    let mut wire = Vec::new();
    for piece in chunks(&input.body, &input.encode_sizes) {
        if stuffer.encode(piece, &mut wire).is_err() {
            // A line over 998 octets under LongLines::Reject: refused, and sticky.
            assert!(input.reject_long);
            assert!(stuffer.finish(&mut wire).is_err());
            return;
        }
    }
    stuffer.finish(&mut wire).unwrap();
    assert!(wire.ends_with(b".\r\n"));

    let expected = data_expected(&input.body);
    let pieces = chunks(&wire, &input.decode_sizes);
    let mut decoder = DataDecoder::new().with_long_lines(policy);
    let (out, used, done) = decode_steps(&pieces, &mut decoder);
    assert!(done, "no end of data in {:?}", String::from_utf8_lossy(&wire));
    assert_eq!(used, wire.len(), "end of data found early");
    assert_eq!(out, expected);
    assert_eq!(decoder.size(), expected.len() as u64);

    let mut decoder = DataDecoder::new().with_long_lines(policy);
    let (out, used, done) = decode_sink(&pieces, &mut decoder);
    assert!(done);
    assert_eq!(used, wire.len());
    assert_eq!(out, expected);
});

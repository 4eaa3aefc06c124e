//! `BdatDecoder` against a model: arbitrary `BDAT` chunk sizes (accepted, refused, or
//! discarded), an arbitrary size limit, and the data arriving in arbitrary pieces.
//!
//! Checks: no panic; exactly the declared octets of each chunk are taken, the next octet
//! is left for the next command; accepted chunks come out untouched and in order, refused
//! and discarded ones not at all; the size limit is enforced before any octet of the
//! chunk that would cross it (RFC 1870, RFC 3030 §2) and stays failed; `size()` and
//! `remaining()` agree with what was seen.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smtp_fuzz::chunks;
use smtp_proto::data::{BdatDecoder, BdatStep, DataError};

#[derive(Arbitrary, Debug)]
enum Op {
    Start { size: u16, last: bool },
    Discard { size: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_size: Option<u16>,
    ops: Vec<Op>,
    sizes: Vec<u8>,
    stream: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let max = input.max_size.map(u64::from);
    let mut decoder = BdatDecoder::new(max);
    // The model.
    let mut declared = 0u64;
    let mut error: Option<DataError> = None;
    let mut emitted = Vec::new();
    let mut expected = Vec::new();

    let pieces = chunks(&input.stream, &input.sizes);
    let mut pieces = pieces.into_iter();
    let mut buf: Vec<u8> = Vec::new();
    let mut offset = 0usize; // octets of the stream used so far

    assert_eq!(decoder.decode(b"x"), BdatStep::Idle);
    for op in input.ops {
        let (size, last, keep) = match op {
            Op::Start { size, last } => {
                let size = u64::from(size);
                let result = decoder.start_chunk(size, last);
                if error.is_none() {
                    match max {
                        Some(max) if declared + size > max => error = Some(DataError::SizeExceeded),
                        _ => declared += size,
                    }
                }
                assert_eq!(result.err(), error);
                (size, last, error.is_none())
            }
            Op::Discard { size } => {
                let size = u64::from(size);
                decoder.discard_chunk(size);
                (size, false, false)
            }
        };
        let start = offset;
        let size_usize = usize::try_from(size).unwrap();
        loop {
            let before = decoder.remaining();
            match decoder.decode(&buf) {
                BdatStep::Data { data, consumed } => {
                    assert!(keep, "content of a refused chunk");
                    assert!(!data.is_empty() && data.len() == consumed);
                    assert_eq!(data, &buf[..consumed]);
                    assert_eq!(decoder.remaining(), before - consumed as u64);
                    emitted.extend_from_slice(data);
                    offset += consumed;
                    buf.drain(..consumed);
                }
                BdatStep::NeedMore { consumed } => {
                    assert_eq!(consumed, buf.len());
                    offset += consumed;
                    buf.clear();
                    match pieces.next() {
                        Some(p) => buf.extend_from_slice(p),
                        None => {
                            // The stream ended inside the chunk.
                            assert_eq!(decoder.remaining(), (start + size_usize - offset) as u64);
                            return;
                        }
                    }
                }
                BdatStep::ChunkDone {
                    consumed,
                    last: l,
                    outcome,
                } => {
                    assert!(consumed <= buf.len());
                    offset += consumed;
                    buf.drain(..consumed);
                    assert_eq!(offset - start, size_usize, "chunk of the wrong length");
                    assert_eq!(l, last);
                    assert_eq!(outcome.err(), error);
                    assert_eq!(decoder.remaining(), 0);
                    break;
                }
                BdatStep::Idle => panic!("idle inside a chunk"),
            }
        }
        if keep {
            expected.extend_from_slice(&input.stream[start..start + size_usize]);
        }
        assert_eq!(emitted, expected);
        assert_eq!(decoder.size(), emitted.len() as u64);
        assert_eq!(decoder.error(), error);
        assert_eq!(decoder.decode(&buf), BdatStep::Idle);
    }

    // A decoder that only drops one chunk.
    let mut discarding = BdatDecoder::discarding(input.stream.len() as u64 / 2);
    let mut rest = &input.stream[..];
    loop {
        match discarding.decode(rest) {
            BdatStep::NeedMore { consumed } => {
                rest = &rest[consumed..];
                if rest.is_empty() {
                    break;
                }
            }
            BdatStep::ChunkDone { consumed, .. } => {
                assert_eq!(input.stream.len() - rest.len() + consumed, input.stream.len() / 2);
                break;
            }
            other => panic!("{other:?} from a discarding decoder"),
        }
    }
});

//! Message bodies through the public API of `smtp_proto::data`: the DATA decoder fed
//! whole, octet by octet, cut at every point and with pipelined bytes after it; the
//! stuffer, the BDAT decoder, the normaliser and the body scanner; and the round trip
//! decode(encode(x)) = normalise(x) under any chunking.

use proptest::prelude::*;
use smtp_proto::data::*;

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
                DecodeStep::Data { ref content, .. } => {
                    assert!(!content.is_empty());
                    assert_eq!(failed, None, "data after failure");
                    out.extend_from_slice(content.of(input));
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
    assert_eq!(
        DataError::BareLineEnding.reply().to_string(),
        "550 5.5.2 Bare CR or LF in message body"
    );
    assert_eq!(
        DataError::LineTooLong.reply().to_string(),
        "554 5.6.0 Message has lines longer than 1000 octets"
    );
    assert_eq!(
        DataError::SizeExceeded.reply().to_string(),
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
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

/// Bodies shaped like mail: lines of text of any length up to a few blocks, mostly ended
/// by CRLF, now and then by a bare CR or LF, some starting with dots. These are what the
/// decoder skips a block at a time, so the blocks' edges fall everywhere in them.
fn mail_body() -> impl Strategy<Value = Vec<u8>> {
    let line = (
        prop_oneof![8 => Just(&b""[..]), 1 => Just(&b"."[..]), 1 => Just(&b".."[..])],
        0usize..100,
        any::<u8>(),
        prop_oneof![
            20 => Just(&b"\r\n"[..]),
            1 => Just(&b"\r"[..]),
            1 => Just(&b"\n"[..]),
            1 => Just(&b"\n\r"[..]),
            1 => Just(&b""[..]),
        ],
    )
        .prop_map(|(lead, n, c, end)| {
            let mut v = lead.to_vec();
            v.extend((0..n).map(|i| if i % 7 == 3 { c } else { b'a' + (i % 26) as u8 }));
            v.extend_from_slice(end);
            v
        });
    prop::collection::vec(line, 0..40).prop_map(|v| v.concat())
}

/// A decoder with any configuration, and the bare-line-ending policy and size limit it
/// was given.
fn decoder() -> impl Strategy<Value = (DataDecoder, BareLineEndings, Option<u64>)> {
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
            let dec = if long {
                dec.with_long_lines(LongLines::Reject)
            } else {
                dec
            };
            (dec, if norm { N } else { R }, max)
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
                       cuts in prop::collection::vec(any::<usize>(), 0..8), (dec, bare, max_size) in decoder()) {
        for input in [&input, &body] {
            let run = feed(dec.clone(), &pieces(input, &cuts));
            prop_assert!(run.consumed <= input.len());
            if bare == R {
                prop_assert!(run.out.len() <= run.consumed);
            }
            if let Some(max) = max_size {
                prop_assert!(run.out.len() as u64 <= max);
            }
        }
    }

    /// How the input is cut never changes the output, the outcome or the consumed count.
    #[test]
    fn chunking_invariant(body in body(), cuts in prop::collection::vec(any::<usize>(), 0..8),
                          (dec, _, _) in decoder(), end in any::<bool>()) {
        let input = if end { [&body[..], b"\r\n.\r\n", TRAIL].concat() } else { body };
        let whole = feed(dec.clone(), &[&input]);
        prop_assert_eq!(&feed(dec.clone(), &pieces(&input, &cuts)), &whole);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&feed(dec.clone(), &bytes), &whole);
        if end {
            prop_assert!(whole.outcome.is_some());
        }
    }

    /// The block scan (which only runs on pieces longer than a block) gives what the
    /// decoder gives an octet at a time, on bodies shaped like mail.
    #[test]
    fn block_scan_matches_octet_by_octet(body in mail_body(), cuts in prop::collection::vec(any::<usize>(), 0..4),
                                         (dec, _, _) in decoder(), end in any::<bool>()) {
        let input = if end { [&body[..], b"\r\n.\r\n", TRAIL].concat() } else { body };
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let octets = feed(dec.clone(), &bytes);
        prop_assert_eq!(&feed(dec.clone(), &[&input]), &octets);
        prop_assert_eq!(&feed(dec.clone(), &pieces(&input, &cuts)), &octets);
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

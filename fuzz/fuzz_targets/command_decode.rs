//! Command parsing over arbitrary bytes: `Command::parse_with` on the whole input, and
//! `CommandDecoder` over the input cut into arbitrary pieces.
//!
//! Checks: no panic; the fast path for common lines and the full parser agree (the full
//! parser alone is `Command::parse_full`), in `parse_with` and in the decoder, which
//! must find what the framer and the full parser find; whatever parses re-encodes to one CRLF line that parses to the same
//! value; the decoder never consumes more than it was given, holds back less than one
//! line, and finds the same commands and errors however the input is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_fuzz::chunks;
use smtp_proto::{Command, CommandDecoder, Decoded, Line, LineFramer, ParseOptions};

/// Input layout: flags, the number of chunk sizes, the sizes, then the bytes.
fn split(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&flags, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n % 8).min(rest.len());
    let (sizes, input) = rest.split_at(n);
    Some((flags, sizes, input))
}

fn check_roundtrip(cmd: &Command<'_>, options: ParseOptions) {
    let bytes = cmd.to_bytes();
    assert!(bytes.ends_with(b"\r\n"), "{cmd:?}");
    assert_eq!(
        bytes.iter().filter(|&&b| b == b'\n').count(),
        1,
        "{cmd:?} encodes to more than one line"
    );
    match Command::parse_with(&bytes, options) {
        Ok(again) => assert_eq!(&again, cmd, "{:?}", String::from_utf8_lossy(&bytes)),
        Err(e) => panic!(
            "{cmd:?} encodes to {:?}, which does not parse: {e}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// Feeds `pieces` through a decoder the way a server buffers a socket, and returns what
/// it found, as owned values.
fn decode_all(pieces: &[&[u8]], options: ParseOptions, max_line: usize) -> Vec<String> {
    let mut decoder = CommandDecoder::new(max_line);
    decoder.options = options;
    let max = decoder.framer.max_len();
    let mut buf: Vec<u8> = Vec::new();
    let mut found = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let (n, more) = match decoder.decode(&buf) {
                Decoded::NeedMore { discarded } => (discarded, false),
                Decoded::Command { command, consumed } => {
                    check_roundtrip(&command, options);
                    found.push(format!("{:?}", command.into_owned()));
                    (consumed, true)
                }
                Decoded::Error { error, consumed } => {
                    found.push(format!("!{error:?}"));
                    (consumed, true)
                }
            };
            assert!(n <= buf.len(), "consumed {n} of {}", buf.len());
            buf.drain(..n);
            if !more {
                break;
            }
        }
        assert!(buf.len() < max, "decoder held back {} octets", buf.len());
    }
    found
}

/// What a decoder without the fast path finds: the framer, then the full parser.
fn reference_all(input: &[u8], options: ParseOptions, max_line: usize) -> Vec<String> {
    let mut framer = LineFramer::new(max_line);
    let mut rest = input;
    let mut found = Vec::new();
    loop {
        let n = match framer.next_line(rest) {
            Line::NeedMore { .. } => return found,
            Line::Complete { line, consumed } => {
                match Command::parse_full(line, options) {
                    Ok(command) => found.push(format!("{:?}", command.into_owned())),
                    Err(error) => found.push(format!("!{error:?}")),
                }
                consumed
            }
            Line::Error { error, consumed } => {
                found.push(format!("!{error:?}"));
                consumed
            }
        };
        rest = &rest[n..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, sizes, input)) = split(data) else {
        return;
    };
    let options = ParseOptions {
        utf8: flags & 1 != 0,
    };
    let parsed = Command::parse_with(input, options);
    assert_eq!(
        parsed,
        Command::parse_full(input, options),
        "the fast path disagrees with the full parser on {:?}",
        String::from_utf8_lossy(input)
    );
    if let Ok(cmd) = parsed {
        check_roundtrip(&cmd, options);
        let _ = (cmd.verb(), cmd.is_forbidden(), cmd.to_string());
    }
    // A small limit some of the time, so that long lines are reached often.
    let max_line = if flags & 2 != 0 { 16 + usize::from(flags >> 2) } else { 512 };
    let whole = decode_all(&[input], options, max_line);
    assert_eq!(
        whole,
        reference_all(input, options, max_line),
        "the decoder's fast path disagrees with the framer and the full parser"
    );
    let pieces = chunks(input, sizes);
    let cut = decode_all(&pieces, options, max_line);
    assert_eq!(whole, cut, "chunking changed what was decoded");
});

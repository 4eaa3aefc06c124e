//! The server reads exactly the lines its framer finds: after an over-long line, the
//! skipped tail is never parsed (a command hidden there would be smuggled past a filter
//! that saw one long line), whatever way the octets arrive.
//!
//! Each case is fed whole, byte by byte, and split in two at every position; a property
//! checks that the server's reading of an arbitrary stream of lines is the one
//! [`CommandDecoder`] gives for the same stream.

use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use smtp_proto::server::{Output, PeerInfo, ServerConfig, Session, SyncPolicy};
use smtp_proto::{Command, CommandDecoder, CommandError, Decoded};

/// A session after its greeting, with pipelining allowed before EHLO (so that the
/// replies depend on framing alone).
fn session() -> Session {
    let mut config = ServerConfig::new("mx.example.org").unwrap();
    config.sync = SyncPolicy::Allow;
    config.helo_required = false;
    config.limits.max_errors = 10_000;
    config.timeouts.error_delay = std::time::Duration::ZERO;
    config.extensions.auth = vec!["PLAIN".into()];
    config.auth_requires_tls = false;
    let mut server = Session::new(Arc::new(config), PeerInfo::default(), Instant::now());
    let (greeting, _) = drain(&mut server);
    assert_eq!(greeting, "220 mx.example.org ESMTP\r\n");
    server
}

/// Output until the session waits: what it sent, and whether it closed.
fn drain(server: &mut Session) -> (String, bool) {
    let mut out = Vec::new();
    loop {
        match server.poll_output() {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Event(e) if e.needs_decision() => server.accept().unwrap(),
            Output::Event(_) => {}
            Output::Close => return (String::from_utf8(out).unwrap(), true),
            Output::Wait { .. } => return (String::from_utf8(out).unwrap(), false),
            Output::StartTls => panic!("no STARTTLS here"),
        }
    }
}

/// Feeds `pieces` one after the other, draining after each; all that was sent.
fn feed(pieces: &[&[u8]]) -> String {
    let mut server = session();
    let mut sent = String::new();
    for piece in pieces {
        server.handle_input(piece, Instant::now());
        let (out, closed) = drain(&mut server);
        sent.push_str(&out);
        if closed {
            sent.push_str("[closed]");
            break;
        }
    }
    sent
}

/// Runs `input` whole, byte by byte and split at every position: each must give `want`.
fn every_split(prefix: &[u8], input: &[u8], want: &str) {
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let mut ways: Vec<(String, Vec<&[u8]>)> = vec![
        ("whole".into(), vec![prefix, input]),
        ("byte by byte".into(), [&[prefix][..], &bytes].concat()),
    ];
    for at in 1..input.len() {
        ways.push((
            format!("split at {at}"),
            vec![prefix, &input[..at], &input[at..]],
        ));
    }
    for (how, pieces) in ways {
        assert_eq!(feed(&pieces), want, "{how}");
    }
}

const TOO_LONG: &str = "500 5.5.2 Error: line too long\r\n";
const OK: &str = "250 2.0.0 Ok\r\n";

#[test]
fn tail_of_an_over_long_line_is_not_executed() {
    // The case: 511 octets reach the limit, "QUIT" is the skipped tail, and the
    // NOOP after it must run as a NOOP, not as the QUIT hidden in the tail.
    let mut input = vec![b'Z'; 511];
    input.extend_from_slice(b"QUIT\r\nNOOP\r\n");
    every_split(b"", &input, &format!("{TOO_LONG}{OK}"));
}

#[test]
fn hidden_rcpt_in_the_tail_is_not_accepted() {
    let prefix = b"MAIL FROM:<a@example.org>\r\n";
    let mut input = vec![b'X'; 511];
    input.extend_from_slice(b"RCPT TO:<evil@example.net>\r\n");
    // The next line is as long as the tail, so a reader that parses the tail in its place
    // would accept the hidden recipient (and answer 250 2.1.5 twice).
    let noop = format!("NOOP {}\r\n", "X".repeat(21));
    assert_eq!(noop.len(), "RCPT TO:<evil@example.net>\r\n".len());
    input.extend_from_slice(noop.as_bytes());
    input.extend_from_slice(b"RCPT TO:<b@example.org>\r\n");
    let want = format!("250 2.1.0 Ok\r\n{TOO_LONG}{OK}250 2.1.5 Ok\r\n");
    every_split(prefix, &input, &want);
}

#[test]
fn command_after_the_tail_split_across_reads_is_not_a_bare_cr() {
    // The tail and the next command arrive in separate reads: before the fix the next
    // command was read at a shifted offset and failed as a bare CR, closing the session.
    let mut long = vec![b'Z'; 600];
    long.extend_from_slice(b"\r\n");
    let want = format!("{TOO_LONG}{OK}{OK}");
    assert_eq!(feed(&[&long, b"NOOP\r\n", b"RSET\r\n"]), want);
    every_split(b"", &[&long[..], b"NOOP\r\nRSET\r\n"].concat(), &want);
}

#[test]
fn tail_of_an_over_long_auth_line_is_not_read_as_a_response() {
    // RFC 4954 §4: a continuation line longer than the limit ends the exchange with
    // 500 5.5.6; what follows the line is read as commands again, from its real start.
    let prefix = b"EHLO c.example\r\nAUTH PLAIN\r\n";
    let mut input = vec![b'A'; 12_287];
    input.extend_from_slice(b"QUIT\r\nNOOP\r\n");
    let full = feed(&[prefix, &input]);
    let after = full.split_once("334 \r\n").map(|(_, b)| b).unwrap();
    assert_eq!(
        after,
        format!("500 5.5.6 Authentication Exchange line is too long\r\n{OK}")
    );
    for at in [1, 12_286, 12_287, 12_288, 12_290, 12_293] {
        let split = feed(&[prefix, &input[..at], &input[at..]]);
        assert_eq!(split, full, "split at {at}");
    }
}

/// What the server replies to each command `CommandDecoder` finds in `stream`, as the
/// server's own rules give it; `true` once a reply closes the session.
fn model(stream: &[u8]) -> String {
    let mut decoder = CommandDecoder::new(512);
    let mut rest = stream;
    let mut out = String::new();
    loop {
        let (reply, consumed, closes) = match decoder.decode(rest) {
            Decoded::NeedMore { .. } => return out,
            Decoded::Command { command, consumed } => {
                let (reply, closes) = match command {
                    Command::Noop(_) | Command::Rset => (OK.to_owned(), false),
                    Command::Quit => ("221 2.0.0 Bye\r\n".to_owned(), true),
                    Command::Unknown(_) => (
                        "500 5.5.2 Error: command not recognized\r\n".to_owned(),
                        false,
                    ),
                    other => panic!("the stream holds no {other:?}"),
                };
                (reply, consumed, closes)
            }
            Decoded::Error { error, consumed } => {
                let closes = matches!(error, CommandError::BareCr | CommandError::BareLf);
                (format!("{}\r\n", error.reply()), consumed, closes)
            }
        };
        out.push_str(&reply);
        if closes {
            out.push_str("[closed]");
            return out;
        }
        rest = &rest[consumed..];
    }
}

/// Lines that reach the limit, carry commands in their tails, or end badly.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let tail = prop_oneof![
        Just(&b"QUIT"[..]),
        Just(&b"NOOP"[..]),
        Just(&b"RSET"[..]),
        Just(&b"XYZZY"[..]),
        Just(&b""[..])
    ];
    prop_oneof![
        4 => Just(b"NOOP\r\n".to_vec()),
        2 => Just(b"RSET\r\n".to_vec()),
        1 => Just(b"QUIT\r\n".to_vec()),
        1 => Just(b"XYZZY\r\n".to_vec()),
        1 => Just(b"NOOP\rRSET\r\n".to_vec()),
        1 => Just(b"NOOP\nRSET\r\n".to_vec()),
        4 => (500usize..1100, tail).prop_map(|(n, tail)| {
            let mut l = vec![b'Z'; n];
            l.extend_from_slice(tail);
            l.extend_from_slice(b"\r\n");
            l
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The server parses a stream exactly as the framer frames it, in any chunking.
    #[test]
    fn server_reads_what_the_framer_frames(
        lines in proptest::collection::vec(line(), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let stream = lines.concat();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        at.sort_unstable();
        at.dedup();
        let mut pieces = Vec::new();
        let mut from = 0;
        for cut in at {
            pieces.push(&stream[from..cut]);
            from = cut;
        }
        pieces.push(&stream[from..]);
        prop_assert_eq!(feed(&pieces), model(&stream));
    }
}

//! Properties of the server machine: arbitrary byte streams, in arbitrary chunkings, with
//! arbitrary host decisions, never panic, never hold more than the limits, and only ever
//! produce well-formed replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use smtp_proto::Reply;
use smtp_proto::server::{Output, PeerInfo, ServerConfig, Session};

/// Checks that `out` is a sequence of well-formed reply lines (RFC 5321 §4.2): three
/// digits 2xx-5xx, then SP or `-` or CRLF, no bare CR/LF, continuation lines carrying the
/// same code as the last line of their reply.
fn well_formed(out: &[u8]) -> Result<(), String> {
    let mut rest = out;
    let mut continuing: Option<&[u8]> = None;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no CRLF at end")?;
        let line = &rest[..end];
        if line.contains(&b'\r') || line.contains(&b'\n') || line.contains(&0) {
            return Err(format!("control character in {line:?}"));
        }
        if line.len() < 3
            || !line[..3].iter().all(u8::is_ascii_digit)
            || !(b'2'..=b'5').contains(&line[0])
        {
            return Err(format!("bad code in {:?}", String::from_utf8_lossy(line)));
        }
        if line.len() > 512 {
            return Err("reply line over 512 octets".into());
        }
        if let Some(code) = continuing {
            if code != &line[..3] {
                return Err("code changed inside a multi-line reply".into());
            }
        }
        continuing = match line.get(3) {
            Some(b'-') => Some(&line[..3]),
            Some(b' ') | None => None,
            Some(_) => return Err("fourth octet is not SP or -".into()),
        };
        rest = &rest[end + 2..];
    }
    match continuing {
        None => Ok(()),
        Some(_) => Err("unfinished multi-line reply".into()),
    }
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new("mx.example.org").unwrap();
    c.extensions.starttls = true;
    c.extensions.auth = vec![
        "PLAIN".into(),
        "LOGIN".into(),
        "CRAM-MD5".into(),
        "XOAUTH2".into(),
    ];
    c.extensions.etrn = true;
    c.auth_requires_tls = false;
    c.limits.max_message_size = Some(2000);
    c.limits.max_errors = 1000;
    c
}

/// Bytes that look like SMTP often enough to reach deep states.
fn smtp_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"EHLO x.example\r\n".to_vec()),
        Just(b"HELO x.example\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b.example> SIZE=10\r\n".to_vec()),
        Just(b"MAIL FROM:<> BODY=BINARYMIME\r\n".to_vec()),
        Just(b"RCPT TO:<c@d.example>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"BDAT 5\r\n".to_vec()),
        Just(b"BDAT 3 LAST\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"AUTH PLAIN\r\n".to_vec()),
        Just(b"AUTH LOGIN\r\n".to_vec()),
        Just(b"AUTH CRAM-MD5\r\n".to_vec()),
        Just(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n".to_vec()),
        Just(b"AGFsaWNlAHNlY3JldA==\r\n".to_vec()),
        Just(b"*\r\n".to_vec()),
        Just(b"STARTTLS\r\n".to_vec()),
        Just(b"VRFY x\r\n".to_vec()),
        Just(b"ETRN x.example\r\n".to_vec()),
        Just(b".\r\n".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b"\n.\n".to_vec()),
        Just(b"..x\r\n".to_vec()),
        Just(b"QUIT\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(
            prop_oneof![Just(b'x'), Just(b'\r'), Just(b'\n'), Just(b'.')],
            0..700
        ),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn never_panics_and_replies_are_well_formed(
        input in smtp_ish(),
        chunk in 1usize..200,
        decisions in prop::collection::vec(0u8..4, 64),
        tls_after in any::<bool>(),
    ) {
        let start = Instant::now();
        let mut now = start;
        let mut server = Session::new(Arc::new(config()), PeerInfo::default(), now);
        let mut out = Vec::new();
        let mut d = decisions.iter().cycle();
        let mut closed = false;
        let mut challenge_n = 0u32;
        let mut drain = |server: &mut Session, out: &mut Vec<u8>, closed: &mut bool, now: Instant| -> Result<(), TestCaseError> {
            for _ in 0..100_000 {
                match server.poll_output() {
                    Output::Transmit(b) => out.extend_from_slice(&b),
                    Output::Event(e) if e.needs_decision() => {
                        let r = match (d.next().unwrap(), &e) {
                            (_, smtp_proto::server::Event::AuthChallengeNeeded { .. }) => {
                                challenge_n += 1;
                                server.auth_challenge(&format!("<{challenge_n}.1@mx.example.org>"))
                            }
                            (0, _) => server.reject(Reply::fixed(550, Some((5, 7, 1)), "No")),
                            (1, _) => server.reject(Reply::fixed(451, Some((4, 3, 0)), "Later")),
                            _ => server.accept(),
                        };
                        prop_assert!(r.is_ok(), "{r:?} for {e:?}");
                    }
                    Output::Event(_) => {}
                    Output::StartTls => {
                        if tls_after {
                            server.handle_tls_established(now);
                        }
                    }
                    Output::Close => *closed = true,
                    Output::Wait { .. } => return Ok(()),
                }
            }
            Err(TestCaseError::fail("poll_output never waited"))
        };
        for piece in input.chunks(chunk) {
            server.handle_input(piece, now);
            drain(&mut server, &mut out, &mut closed, now)?;
            now += Duration::from_millis(10);
        }
        // Whatever state it is in, a timeout ends it cleanly.
        server.handle_timeout(now + Duration::from_secs(3600));
        drain(&mut server, &mut out, &mut closed, now)?;
        server.handle_eof(now);
        drain(&mut server, &mut out, &mut closed, now)?;
        prop_assert!(closed || matches!(server.state(), smtp_proto::server::State::Closed));
        // 334 challenges are reply lines too (RFC 4954 §4).
        well_formed(&out).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&out))))?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn memory_is_bounded_without_decisions(
        input in prop::collection::vec(any::<u8>(), 0..200_000),
        chunk in 1000usize..20_000,
    ) {
        // A host that never decides: the session stops asking for input once its buffer
        // is full, so an adapter that honours `read: false` holds bounded memory.
        let now = Instant::now();
        let mut server = Session::new(Arc::new(config()), PeerInfo::default(), now);
        let mut fed = 0usize;
        let mut pending: usize = 0;
        for piece in input.chunks(chunk) {
            let read = loop {
                match server.poll_output() {
                    Output::Wait { read, .. } => break read,
                    Output::Close => break false,
                    _ => {}
                }
            };
            if !read { break; }
            server.handle_input(piece, now);
            fed += piece.len();
            pending = pending.max(server.buffered());
        }
        prop_assert!(pending <= 64 * 1024 + 20_000 + 512, "buffered {pending} of {fed}");
    }
}

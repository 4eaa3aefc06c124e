//! A whole server session fed arbitrary bytes (raw, or realistic commands and message
//! pieces picked by the input) in arbitrary chunks, with host decisions, configuration,
//! TLS and the passing of time all drawn from the fuzz input.
//!
//! Checks: no panic; `poll_output` always comes to `Wait`; the session's byte stream is
//! well-formed replies only (334 challenges included) and nothing is sent after `Close`;
//! message content arrives only between `MessageStart` and its end, and never more than
//! the configured maximum; a timeout and an EOF always end the session.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smtp_fuzz::{chunks, well_formed_replies};
use smtp_proto::Reply;
use smtp_proto::server::{Event, Output, PeerInfo, Session, ServerConfig, State};

const CANNED: &[&[u8]] = &[
    b"EHLO client.example\r\n",
    b"HELO client.example\r\n",
    b"LHLO client.example\r\n",
    b"MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME\r\n",
    b"MAIL FROM:<> BODY=BINARYMIME\r\n",
    b"MAIL FROM:<j\xc3\xb6@example.org> SMTPUTF8\r\n",
    b"RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org\r\n",
    b"RCPT TO:<Postmaster>\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY user\r\n",
    b"EXPN list\r\n",
    b"HELP\r\n",
    b"ETRN example.org\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH CRAM-MD5\r\n",
    b"AUTH XOAUTH2\r\n",
    b"YWxpY2U=\r\n",
    b"*\r\n",
    b"=\r\n",
    b"QUIT\r\n",
    b"Subject: hi\r\n\r\nbody\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"..dot\r\n",
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"GET / HTTP/1.1\r\n",
];

#[derive(Arbitrary, Debug)]
enum Piece {
    Canned(u8),
    Raw(Vec<u8>),
    /// Time passes, in seconds.
    Tick(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: u16,
    max_size: Option<u16>,
    pieces: Vec<Piece>,
    sizes: Vec<u8>,
    decisions: Vec<u8>,
}

fn config(flags: u16, max_size: Option<u16>) -> ServerConfig {
    let f = |bit: u16| flags & (1 << bit) != 0;
    let mut c = ServerConfig::new("mx.example.org").unwrap();
    c.lmtp = f(0);
    c.extensions.pipelining = !f(1);
    c.extensions.chunking = !f(2);
    c.extensions.starttls = f(3);
    if f(4) {
        c.extensions.auth = vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into(), "XOAUTH2".into()];
    }
    c.auth_requires_tls = f(5);
    c.require_tls = f(6);
    c.require_auth = f(7);
    c.extensions.vrfy = f(8);
    c.extensions.etrn = f(9);
    c.extensions.enhanced_status_codes = !f(10);
    c.extensions.smtputf8 = !f(11);
    if f(12) {
        c.bare_line_endings = smtp_proto::BareLineEndings::Normalize;
    }
    if f(13) {
        c.long_lines = smtp_proto::LongLines::Reject;
    }
    c.limits.max_message_size = max_size.map(u64::from);
    c.limits.max_recipients = 3;
    c
}

struct Host<'a> {
    server: Session,
    decisions: std::iter::Cycle<std::slice::Iter<'a, u8>>,
    out: Vec<u8>,
    closed: bool,
    tls: bool,
    in_message: bool,
    body: u64,
    max_size: Option<u64>,
    challenge: u32,
}

impl Host<'_> {
    fn drain(&mut self, now: Instant) {
        for _ in 0..100_000 {
            match self.server.poll_output() {
                Output::Transmit(b) => {
                    if std::env::var_os("FUZZ_TRACE").is_some() {
                        eprintln!("S: {:?}", String::from_utf8_lossy(&b));
                    }
                    assert!(!self.closed, "transmit after close");
                    self.out.extend_from_slice(&b);
                }
                Output::Event(e) => self.event(e, now),
                Output::StartTls => {
                    if self.tls {
                        self.server.handle_tls_established(now);
                    }
                }
                Output::Close => self.closed = true,
                Output::Wait { .. } => return,
            }
        }
        panic!("poll_output never waited");
    }

    fn event(&mut self, e: Event, _now: Instant) {
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!("event {e:?}");
        }
        match &e {
            Event::MessageStart => {
                assert!(!self.in_message);
                self.in_message = true;
                self.body = 0;
            }
            Event::Body(b) => {
                assert!(self.in_message, "body outside a message");
                self.body += b.len() as u64;
                if let Some(max) = self.max_size {
                    assert!(self.body <= max, "{} octets over {max}", self.body);
                }
            }
            Event::MessageEnd | Event::LmtpMessageEnd { .. } | Event::MessageAborted { .. } => {
                self.in_message = false;
            }
            _ => {}
        }
        if !e.needs_decision() {
            return;
        }
        let d = self.decisions.next().copied().unwrap_or(0);
        let r = match (&e, d % 5) {
            (Event::AuthChallengeNeeded { .. }, _) => {
                self.challenge += 1;
                self.server
                    .auth_challenge(&format!("<{}.1@mx.example.org>", self.challenge))
            }
            (_, 0) => self.server.reject(Reply::fixed(550, Some((5, 7, 1)), "No")),
            (_, 1) => self.server.reject(Reply::fixed(451, Some((4, 3, 0)), "Later")),
            (_, 2) => self.server.accept_with(Reply::fixed(250, Some((2, 0, 0)), "Fine")),
            (_, 3) if d > 200 => {
                self.server.close_with(Reply::fixed(421, Some((4, 3, 2)), "Shutting down"));
                Ok(())
            }
            _ => self.server.accept(),
        };
        assert!(r.is_ok(), "{r:?} for {e:?}");
    }
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let mut now = start;
    let config = config(input.config, input.max_size);
    let max_size = config.limits.max_message_size;
    let mut host = Host {
        server: Session::new(Arc::new(config), PeerInfo::default(), now),
        decisions: input.decisions.iter().cycle(),
        out: Vec::new(),
        closed: false,
        tls: input.config & (1 << 14) == 0,
        in_message: false,
        body: 0,
        max_size,
        challenge: 0,
    };
    host.drain(now);
    let mut stream = Vec::new();
    for piece in &input.pieces {
        match piece {
            Piece::Canned(i) => stream.extend_from_slice(CANNED[usize::from(*i) % CANNED.len()]),
            Piece::Raw(bytes) => stream.extend_from_slice(bytes),
            Piece::Tick(secs) => {
                for chunk in chunks(&stream, &input.sizes) {
                    host.server.handle_input(chunk, now);
                    host.drain(now);
                }
                stream.clear();
                now += Duration::from_secs(u64::from(*secs));
                host.server.handle_timeout(now);
                host.drain(now);
            }
        }
    }
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("input {:?}", String::from_utf8_lossy(&stream));
    }
    for chunk in chunks(&stream, &input.sizes) {
        host.server.handle_input(chunk, now);
        host.drain(now);
    }
    // Whatever state it is in, a timeout, then an EOF, end it cleanly.
    host.server.handle_timeout(now + Duration::from_secs(86_400));
    host.drain(now);
    host.server.handle_eof(now);
    host.drain(now);
    assert!(host.closed || host.server.state() == State::Closed);
    assert!(!host.in_message, "message neither ended nor aborted");
    if let Err(e) = well_formed_replies(&host.out) {
        panic!("{e}: {:?}", String::from_utf8_lossy(&host.out));
    }
});

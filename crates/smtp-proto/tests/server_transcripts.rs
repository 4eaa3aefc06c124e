//! Replays the transcripts in `tests/transcripts/server/*.txt` against the server machine.
//!
//! Format, one directive per line (`#` starts a comment):
//! - `! key [value]`  configuration (see `configure`), before the first exchange;
//! - `C: text`        the client sends `text` CRLF; `C~ text` sends `text` as is, with
//!   `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` escapes (for smuggling and framing tests);
//! - `S: text`        the next line the server sent (all output is checked, in order);
//! - `H: reject CODE X.Y.Z text` / `H: accept` / `H: accept CODE X.Y.Z text` /
//!   `H: challenge text`  the host's next decision (otherwise: accept);
//! - `E: Name`        an event of that name happened since the previous check (`Delay`:
//!   replies were held back by the error delay, and the harness let the time pass);
//! - `N: Name`        no event of that name happened since the previous check;
//! - `M: text`        a line of the message the host stored last (CRLF-joined);
//! - `X: tls` (the session asked for TLS and the handshake completes), `X: close` (the
//!   session closed), `X: eof` (the client hangs up), `X: timeout` (time passes beyond the
//!   deadline), `X: wait SECONDS` (that much time passes), `X: open` (the session is
//!   still open).
//!
//! Each transcript runs four ways (h11 style): each client burst whole, byte by byte, in
//! 3-byte pieces (unless it says `! whole-only`: pipelining violations depend on what
//! arrives together), and whole with trailing bytes (an unfinished `NOOP` after the last
//! burst, which must change nothing).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::server::{Event, Output, PeerInfo, ServerConfig, Session, SyncPolicy};
use smtp_proto::{EnhancedCode, Reply};

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'0' => out.push(0),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 2;
                }
                other => panic!("bad escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn parse_reply(spec: &str) -> Reply {
    let mut parts = spec.splitn(3, ' ');
    let code: u16 = parts.next().unwrap().parse().unwrap();
    let enh: Vec<u16> = parts
        .next()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    let text = parts.next().unwrap_or("").to_owned();
    Reply::new(
        code,
        Some(EnhancedCode::new(enh[0] as u8, enh[1], enh[2]).unwrap()),
        text,
    )
    .unwrap()
}

fn configure(config: &mut ServerConfig, key: &str, value: &str) -> bool {
    match key {
        "starttls" => config.extensions.starttls = true,
        "auth" => config.extensions.auth = value.split(' ').map(str::to_owned).collect(),
        "insecure-auth" => config.auth_requires_tls = false,
        "lmtp" => config.lmtp = true,
        "max-size" => config.limits.max_message_size = Some(value.parse().unwrap()),
        "max-recipients" => config.limits.max_recipients = value.parse().unwrap(),
        "max-errors" => config.limits.max_errors = value.parse().unwrap(),
        "soft-errors" => config.limits.soft_errors = value.parse().unwrap(),
        "max-junk" => config.limits.max_junk_commands = value.parse().unwrap(),
        "overshoot" => config.limits.recipient_overshoot = value.parse().unwrap(),
        "command-timeout" => config.timeouts.command = Duration::from_secs(value.parse().unwrap()),
        "data-timeout" => config.timeouts.data_block = Duration::from_secs(value.parse().unwrap()),
        "min-data-rate" => config.timeouts.min_data_rate = value.parse().unwrap(),
        "max-auth-failures" => config.limits.max_auth_failures = value.parse().unwrap(),
        "require-tls" => config.require_tls = true,
        "require-auth" => config.require_auth = true,
        "no-pipelining" => config.extensions.pipelining = false,
        "no-enhanced" => config.extensions.enhanced_status_codes = false,
        "no-chunking" => config.extensions.chunking = false,
        "no-smtputf8" => config.extensions.smtputf8 = false,
        "no-8bitmime" => config.extensions.eight_bit_mime = false,
        "no-dsn" => config.extensions.dsn = false,
        "etrn" => config.extensions.etrn = true,
        "requiretls" => config.extensions.requiretls = true,
        "sync-allow" => config.sync = SyncPolicy::Allow,
        "normalize" => config.bare_line_endings = smtp_proto::data::BareLineEndings::Normalize,
        "reject-long-lines" => config.long_lines = smtp_proto::data::LongLines::Reject,
        "no-helo-required" => config.helo_required = false,
        "extra-param" => config.extensions.extra_params.push(value.to_owned()),
        "whole-only" => return true,
        "implicit-tls" => {}
        other => panic!("unknown config {other}"),
    }
    false
}

#[derive(Clone, Copy, Debug)]
enum Feed {
    Whole,
    Bytes(usize),
    /// Whole, and the last burst followed by the start of a command that never ends:
    /// those trailing bytes must change nothing.
    Trailing,
}

struct Harness {
    server: Session,
    now: Instant,
    decisions: VecDeque<String>,
    sent: Vec<u8>,
    events: Vec<String>,
    message: Vec<u8>,
    stored: Vec<u8>,
    closed: bool,
    tls_requested: bool,
    file: String,
}

impl Harness {
    fn drain(&mut self) {
        loop {
            match self.server.poll_output() {
                Output::Transmit(b) => self.sent.extend_from_slice(&b),
                Output::Event(e) => self.event(e),
                Output::StartTls => self.tls_requested = true,
                Output::Close => self.closed = true,
                // Replies held back (the error delay): time passes as an adapter would
                // let it, and the transcript can check for it with `E: Delay`.
                Output::Wait {
                    deadline: Some(until),
                    read: false,
                } if !self.tls_requested && !self.closed => {
                    assert!(until > self.now, "{}: a delay that is over", self.file);
                    self.events.push("Delay".into());
                    self.now = until;
                    self.server.handle_timeout(until);
                }
                Output::Wait { .. } => break,
            }
        }
    }

    fn event(&mut self, e: Event) {
        let name = format!("{e:?}");
        let name = name.split([' ', '(', '{']).next().unwrap().to_owned();
        match &e {
            Event::MessageStart => self.message.clear(),
            Event::Body(b) => self.message.extend_from_slice(b),
            Event::MessageEnd | Event::LmtpMessageEnd { .. } => self.stored = self.message.clone(),
            _ => {}
        }
        if let Event::LmtpDelivery { to } = &e {
            self.events.push(format!("LmtpDelivery:{to}"));
        }
        if let Event::ProtocolError(p) = &e {
            self.events.push(format!("ProtocolError:{p:?}"));
        }
        self.events.push(name);
        if e.needs_decision() {
            let decision = self
                .decisions
                .pop_front()
                .unwrap_or_else(|| "accept".into());
            let result = if let Some(spec) = decision.strip_prefix("reject ") {
                self.server.reject(parse_reply(spec))
            } else if let Some(spec) = decision.strip_prefix("accept ") {
                self.server.accept_with(parse_reply(spec))
            } else if let Some(c) = decision.strip_prefix("challenge ") {
                self.server.auth_challenge(c)
            } else {
                assert_eq!(decision, "accept", "{}", self.file);
                self.server.accept()
            };
            result.unwrap_or_else(|err| panic!("{}: decision {decision}: {err}", self.file));
        }
    }

    fn feed(&mut self, bytes: &[u8], feed: Feed) {
        match feed {
            Feed::Whole | Feed::Trailing => {
                self.server.handle_input(bytes, self.now);
                self.drain();
            }
            Feed::Bytes(n) => {
                for chunk in bytes.chunks(n) {
                    self.server.handle_input(chunk, self.now);
                    self.drain();
                }
            }
        }
    }
}

fn run(file: &str, text: &str, feed: Feed) {
    let mut config = ServerConfig::new("mx.example.org").unwrap();
    let mut whole_only = false;
    let mut implicit_tls = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("! ") {
            let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
            implicit_tls |= k == "implicit-tls";
            whole_only |= configure(&mut config, k, v);
        }
    }
    if whole_only && !matches!(feed, Feed::Whole | Feed::Trailing) {
        return;
    }
    let now = Instant::now();
    let peer = PeerInfo {
        addr: Some("192.0.2.7".parse().unwrap()),
        name: None,
        tls: implicit_tls,
    };
    let mut h = Harness {
        server: Session::new(Arc::new(config), peer, now),
        now,
        decisions: VecDeque::new(),
        sent: Vec::new(),
        events: Vec::new(),
        message: Vec::new(),
        stored: Vec::new(),
        closed: false,
        tls_requested: false,
        file: format!("{file} ({feed:?})"),
    };
    h.drain();
    let mut pending_input: Vec<u8> = Vec::new();
    let mut expected_message: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let ctx = format!("{} line {}", h.file, n + 1);
        // Decisions written after a client burst apply to it: queue them before feeding.
        let is_client = *line == "C:"
            || line.starts_with("C: ")
            || line.starts_with("C~ ")
            || line.starts_with("H: ");
        if !is_client && !pending_input.is_empty() {
            let input = std::mem::take(&mut pending_input);
            h.feed(&input, feed);
        }
        if *line == "C:" {
            pending_input.extend_from_slice(b"\r\n");
        } else if let Some(t) = line.strip_prefix("C: ") {
            pending_input.extend_from_slice(t.as_bytes());
            pending_input.extend_from_slice(b"\r\n");
        } else if let Some(t) = line.strip_prefix("C~ ") {
            pending_input.extend_from_slice(&unescape(t));
        } else if let Some(t) = line.strip_prefix("S: ") {
            let pos = h
                .sent
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or_else(|| {
                    panic!(
                        "{ctx}: expected {t:?}, server sent {:?}",
                        String::from_utf8_lossy(&h.sent)
                    )
                });
            let got = String::from_utf8_lossy(&h.sent[..pos]).into_owned();
            assert_eq!(got, t, "{ctx}");
            h.sent.drain(..pos + 2);
        } else if let Some(t) = line.strip_prefix("H: ") {
            h.decisions.push_back(t.to_owned());
        } else if let Some(t) = line.strip_prefix("E: ") {
            let found = h.events.iter().position(|e| e == t);
            let i = found.unwrap_or_else(|| panic!("{ctx}: no event {t} in {:?}", h.events));
            h.events.drain(..=i);
        } else if let Some(t) = line.strip_prefix("N: ") {
            assert!(
                !h.events.iter().any(|e| e == t),
                "{ctx}: {t} in {:?}",
                h.events
            );
            h.events.clear();
        } else if let Some(t) = line.strip_prefix("M: ") {
            expected_message.push(t.to_owned());
        } else if let Some(t) = line.strip_prefix("X: ") {
            match t {
                "tls" => {
                    assert!(h.tls_requested, "{ctx}: no StartTls output");
                    h.tls_requested = false;
                    h.server.handle_tls_established(h.now);
                    h.drain();
                }
                "close" => assert!(h.closed, "{ctx}: session not closed"),
                "open" => assert!(!h.closed, "{ctx}: session closed"),
                wait if wait.starts_with("wait ") => {
                    let secs: u64 = wait[5..].parse().unwrap();
                    h.now += Duration::from_secs(secs);
                    h.server.handle_timeout(h.now);
                    h.drain();
                }
                "eof" => {
                    h.server.handle_eof(h.now);
                    h.drain();
                }
                "timeout" => {
                    let deadline = match h.server.poll_output() {
                        Output::Wait { deadline, .. } => deadline.expect("a deadline"),
                        other => panic!("{ctx}: {other:?}"),
                    };
                    h.server.handle_timeout(deadline - Duration::from_millis(1));
                    h.drain();
                    assert!(!h.closed, "{ctx}: closed before the deadline");
                    h.now = deadline;
                    h.server.handle_timeout(deadline);
                    h.drain();
                }
                other => panic!("{ctx}: unknown X: {other}"),
            }
        } else if line.starts_with('!') || line.starts_with('#') || line.trim().is_empty() {
        } else {
            panic!("{ctx}: cannot read {line:?}");
        }
    }
    if matches!(feed, Feed::Trailing) {
        pending_input.extend_from_slice(b"NOOP");
    }
    if !pending_input.is_empty() {
        h.feed(&pending_input, feed);
    }
    assert!(
        h.sent.is_empty(),
        "{}: unexpected output {:?}",
        h.file,
        String::from_utf8_lossy(&h.sent)
    );
    if !expected_message.is_empty() {
        let mut want = expected_message.join("\r\n");
        want.push_str("\r\n");
        assert_eq!(
            String::from_utf8_lossy(&h.stored),
            want,
            "{}: stored message",
            h.file
        );
    }
}

#[test]
fn transcripts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/transcripts/server");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "transcripts missing");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for feed in [Feed::Whole, Feed::Bytes(1), Feed::Bytes(3), Feed::Trailing] {
            run(&name, &text, feed);
        }
    }
}

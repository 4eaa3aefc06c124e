//! `docs/state-machines.md` checked against the machines, so that the tables cannot drift
//! from the code.
//!
//! Every row of the server's `### Phases` and `### Transitions` tables and of the client's
//! `### Transitions` table has a key in its first column, and here a replay case of the
//! same key: the case brings a machine to the row's phase, applies the row's input, and
//! the row's own text is then checked against what the machine did:
//! - every reply written in backticks that starts with three digits was sent (a whole
//!   line; `<host>`, `<greeting>`, `<total>`, `<challenge>` and `<name>` stand for text
//!   the session fills in);
//! - every `Event::X`, `Output::X` and `ProtocolError::X` named was output;
//! - the server was in the row's phase before the input and is in its `next` phase after;
//! - for the client, every `ClientEvent` (`Connected`, `Failed(Greeting)`, ...), command
//!   (`EHLO`, `QUIT`, ...) and status (`DeliveryStatus::Temporary`, ...) named in
//!   backticks happened.
//!
//! Each row must be matched by exactly one case, and each case by a row.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::Reply;
use smtp_proto::server::{Event, Output, PeerInfo, Server, ServerConfig, State};

const HOST: &str = "mx.example.org";

// ---- the document ----------------------------------------------------------------------

/// One table row: its key and its cells after the key.
#[derive(Debug)]
struct Row {
    key: String,
    cells: Vec<String>,
}

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/state-machines.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of the first table under `### {sub}` in `## {section}`, keyed in their first
/// column.
fn table(doc: &str, section: &str, sub: &str) -> Vec<Row> {
    let mut lines = doc.lines();
    lines
        .by_ref()
        .find(|l| *l == format!("## {section}"))
        .unwrap_or_else(|| panic!("no section {section}"));
    lines
        .by_ref()
        .find(|l| *l == format!("### {sub}"))
        .unwrap_or_else(|| panic!("no {sub} in {section}"));
    let mut header = lines.by_ref().skip_while(|l| !l.starts_with('|'));
    let head = header
        .next()
        .unwrap_or_else(|| panic!("no table in {section}/{sub}"));
    assert!(
        head.starts_with("| key |"),
        "{section}/{sub}: no key column"
    );
    header
        .skip(1) // |---|
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let mut cells: Vec<String> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect();
            let key = cells.remove(0);
            Row { key, cells }
        })
        .collect()
}

/// The text between backticks.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Each key once, and the keys of the cases those of the rows.
fn check_keys<T>(rows: &[Row], cases: &[(&'static str, T)], what: &str) {
    let mut seen = BTreeMap::new();
    for (key, _) in cases {
        assert!(
            seen.insert(*key, 0).is_none(),
            "{what}: two cases for {key}"
        );
    }
    for row in rows {
        match seen.get_mut(row.key.as_str()) {
            Some(n) => *n += 1,
            None => panic!("{what}: row {} has no replay case", row.key),
        }
    }
    for (key, n) in seen {
        assert!(n > 0, "{what}: case {key} matches no row of the table");
        assert!(n == 1, "{what}: {n} rows have the key {key}");
    }
}

/// Whether a reply line matches a reply written in the table: placeholders match a run of
/// non-space characters (possibly empty).
fn reply_matches(pattern: &str, line: &str) -> bool {
    const HOLES: [&str; 5] = ["<host>", "<greeting>", "<total>", "<challenge>", "<name>"];
    let pattern = pattern
        .replace("<host>", HOST)
        .replace("<greeting>", "ESMTP");
    // Split into literal pieces and holes.
    let mut pieces = vec![String::new()];
    let mut rest = pattern.as_str();
    'outer: while !rest.is_empty() {
        for hole in HOLES {
            if let Some(after) = rest.strip_prefix(hole) {
                pieces.push(String::new());
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        pieces.last_mut().map(|p| p.push(c));
        rest = &rest[c.len_utf8()..];
    }
    fn go(pieces: &[String], line: &str) -> bool {
        match pieces {
            [] => line.is_empty(),
            [first, rest @ ..] => {
                let Some(after) = line.strip_prefix(first.as_str()) else {
                    return false;
                };
                if rest.is_empty() {
                    return after.is_empty();
                }
                // A hole: any run of non-space characters, then the rest.
                let run = after.find(' ').unwrap_or(after.len());
                (0..=run).any(|n| go(rest, &after[n..]))
            }
        }
    }
    go(&pieces, line)
}

// ---- the server harness ----------------------------------------------------------------

/// A server session, what it did since [`Srv::mark`], and the phase it was in then.
struct Srv {
    server: Server,
    now: Instant,
    sent: String,
    events: Vec<String>,
    outputs: Vec<String>,
    before: Option<State>,
}

fn config(f: impl FnOnce(&mut ServerConfig)) -> Arc<ServerConfig> {
    let mut c = ServerConfig::new(HOST).unwrap();
    f(&mut c);
    Arc::new(c)
}

fn reply(code: u16, enhanced: (u8, u16, u16), text: &'static str) -> Reply {
    Reply::fixed(code, Some(enhanced), text)
}

impl Srv {
    /// A session whose greeting has not been asked for.
    fn fresh(f: impl FnOnce(&mut ServerConfig)) -> Srv {
        let now = Instant::now();
        Srv {
            server: Server::new(config(f), PeerInfo::default(), now),
            now,
            sent: String::new(),
            events: Vec::new(),
            outputs: Vec::new(),
            before: None,
        }
    }

    /// A session after its greeting.
    fn with(f: impl FnOnce(&mut ServerConfig)) -> Srv {
        let mut s = Srv::fresh(f);
        s.drain();
        s
    }

    fn new() -> Srv {
        Srv::with(|_| {})
    }

    /// Outputs until the session waits; decisions are the case's.
    fn drain(&mut self) {
        loop {
            match self.server.poll_output() {
                Output::Transmit(b) => self.sent.push_str(&String::from_utf8_lossy(&b)),
                Output::Event(e) => {
                    if let Event::ProtocolError(p) = &e {
                        let p = format!("{p:?}");
                        let p = p.split(['(', ' ', '{']).next().unwrap_or("").to_owned();
                        self.events.push(format!("ProtocolError::{p}"));
                    }
                    let name = format!("{e:?}");
                    let name = name.split([' ', '(', '{']).next().unwrap_or("").to_owned();
                    self.events.push(format!("Event::{name}"));
                }
                Output::StartTls => self.outputs.push("Output::StartTls".into()),
                Output::Close => self.outputs.push("Output::Close".into()),
                Output::Wait { .. } => break,
            }
        }
    }

    /// Sends `bytes`, then drains.
    fn feed(&mut self, bytes: &[u8]) {
        self.server.handle_input(bytes, self.now);
        self.drain();
    }

    /// Sends a command line.
    fn line(&mut self, line: &str) {
        self.feed(format!("{line}\r\n").as_bytes());
    }

    /// Setting up: a command line, every decision it asks for accepted.
    fn up(&mut self, line: &str) {
        self.line(line);
        while self.server.state() == State::Decision {
            self.server.accept().unwrap();
            self.drain();
        }
        assert_ne!(
            self.server.state(),
            State::Closed,
            "setup {line}: {}",
            self.sent
        );
    }

    /// Setting up: a command line the host refuses.
    fn up_refused(&mut self, line: &str) {
        self.line(line);
        assert_eq!(self.server.state(), State::Decision, "setup {line}");
        self.server
            .reject(reply(550, (5, 1, 1), "No such user"))
            .unwrap();
        self.drain();
    }

    fn ehlo(mut self) -> Srv {
        self.up("EHLO client.example");
        self
    }

    /// EHLO, MAIL and one accepted RCPT.
    fn txn(mut self) -> Srv {
        self.up("EHLO client.example");
        self.up("MAIL FROM:<a@example.org>");
        self.up("RCPT TO:<b@example.org>");
        self
    }

    /// A transaction in its DATA body.
    fn data(mut self) -> Srv {
        self = self.txn();
        self.up("DATA");
        assert_eq!(self.server.state(), State::Data);
        self
    }

    /// What follows is the row's input.
    fn mark(mut self) -> Srv {
        self.sent.clear();
        self.events.clear();
        self.outputs.clear();
        self.before = Some(self.server.state());
        self
    }

    fn accept(mut self) -> Srv {
        self.server.accept().unwrap();
        self.drain();
        self
    }

    fn reject(mut self, r: Reply) -> Srv {
        self.server.reject(r).unwrap();
        self.drain();
        self
    }

    fn sent_has(&self, r: &Reply) {
        let mut want = Vec::new();
        r.encode(&mut want);
        let want = String::from_utf8_lossy(&want);
        assert!(
            self.sent.contains(&*want),
            "{want:?} not in {:?}",
            self.sent
        );
    }
}

/// The state a phase of the table is.
fn phase_state(name: &str) -> Option<State> {
    let name = name.trim().trim_matches('`');
    Some(match name.split('(').next().unwrap_or("") {
        "Greeting" | "Start" => State::Start,
        "Command" => State::Command,
        "Decide" => State::Decision,
        "Data" => State::Data,
        "Bdat" => State::Bdat,
        "Auth" => State::Auth,
        "Tls" => State::Tls,
        "Closed" => State::Closed,
        _ => return None,
    })
}

/// Checks what a server case did against its row.
fn check_server_row(row: &Row, s: &Srv) {
    let key = &row.key;
    let [phase, _input, checks, output, next] = &row.cells[..] else {
        panic!("{key}: expected 5 cells after the key, got {:?}", row.cells);
    };
    let context = || {
        format!(
            "{key}: sent {:?}, events {:?}, outputs {:?}, state {:?}",
            s.sent,
            s.events,
            s.outputs,
            s.server.state()
        )
    };
    // The phase before the input: "any", "any but ...", or a list.
    if !phase.starts_with("any") {
        let allowed: Vec<State> = phase
            .split(", ")
            .map(|p| phase_state(p).unwrap_or_else(|| panic!("{key}: unknown phase {p}")))
            .collect();
        let before = s
            .before
            .unwrap_or_else(|| panic!("{key}: the case never marked"));
        assert!(
            allowed.contains(&before),
            "{key}: was in {before:?}, row says {phase}"
        );
    }
    let lines: Vec<&str> = s.sent.split("\r\n").collect();
    for cell in [checks, output] {
        for t in ticked(cell) {
            if t.len() >= 3 && t.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                assert!(
                    lines.iter().any(|l| reply_matches(t, l)),
                    "{key}: `{t}` not sent; {}",
                    context()
                );
            } else if t.starts_with("Event::") || t.starts_with("ProtocolError::") {
                assert!(
                    s.events.iter().any(|e| e == t),
                    "{key}: no {t}; {}",
                    context()
                );
            } else if t.starts_with("Output::") {
                assert!(
                    s.outputs.iter().any(|o| o == t),
                    "{key}: no {t}; {}",
                    context()
                );
            }
        }
    }
    let next = phase_state(next).unwrap_or_else(|| panic!("{key}: unknown next phase {next}"));
    assert_eq!(s.server.state(), next, "{}", context());
}

type ServerCase = (&'static str, fn() -> Srv);

fn case(key: &'static str, run: fn() -> Srv) -> ServerCase {
    (key, run)
}

const MAIL: &str = "MAIL FROM:<a@example.org>";
const RCPT: &str = "RCPT TO:<b@example.org>";
/// `\0bob\0secret`.
const PLAIN_IR: &str = "AGJvYgBzZWNyZXQ=";

fn auth_config(c: &mut ServerConfig) {
    c.extensions.auth = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]
        .map(str::to_owned)
        .to_vec();
    c.auth_requires_tls = false;
}

fn lmtp(c: &mut ServerConfig) {
    c.lmtp = true;
}

fn small(c: &mut ServerConfig) {
    c.limits.max_message_size = Some(10);
}

fn host_reply() -> Reply {
    reply(550, (5, 7, 1), "Host says no")
}

fn server_cases() -> Vec<ServerCase> {
    vec![
        case("S-greeting", || {
            let mut s = Srv::fresh(|_| {}).mark();
            s.drain();
            s
        }),
        case("S-shutdown", || {
            let mut s = Srv::new().ehlo().mark();
            let r = s.server.config().shutdown_reply();
            s.server.shutdown(r.clone());
            s.drain();
            s.sent_has(&r);
            s
        }),
        case("S-shutdown-txn", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            let r = s.server.config().shutdown_reply();
            s.server.shutdown(r.clone());
            s.drain();
            assert!(s.sent.is_empty(), "{}", s.sent);
            assert_eq!(s.server.state(), State::Command);
            s.line("RSET");
            s.sent_has(&r);
            s
        }),
        case("S-close-with", || {
            let mut s = Srv::new().mark();
            let r = s.server.config().too_many_connections_reply();
            s.server.close_with(r.clone());
            s.drain();
            s.sent_has(&r);
            s
        }),
        case("S-close-with-body", || {
            let mut s = Srv::new().data().mark();
            let r = s.server.config().shutdown_reply();
            s.server.close_with(r.clone());
            s.drain();
            s.sent_has(&r);
            s
        }),
        case("S-long-line", || {
            let mut s = Srv::new().ehlo().mark();
            s.line(&format!("NOOP {}", "x".repeat(600)));
            assert_eq!(s.sent.matches("\r\n").count(), 1, "{}", s.sent);
            s
        }),
        case("S-bare-lf", || {
            let mut s = Srv::new().ehlo().mark();
            s.feed(b"NOOP a\nb\r\n");
            s
        }),
        case("S-bare-cr", || {
            let mut s = Srv::new().ehlo().mark();
            s.feed(b"NOOP a\rb\r\n");
            s
        }),
        case("S-nul", || {
            let mut s = Srv::new().ehlo().mark();
            s.feed(b"NOOP a\0b\r\n");
            s
        }),
        case("S-syntax", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("MAIL TO:<a@example.org>");
            s
        }),
        case("S-bad-sender", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("MAIL FROM:<a@@example.org>");
            s
        }),
        case("S-bad-recipient", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            s.line("RCPT TO:<b@@example.org>");
            s
        }),
        case("S-utf8-sender", || {
            let mut s = Srv::with(|c| c.extensions.smtputf8 = false).ehlo().mark();
            s.line("MAIL FROM:<é@example.org>");
            s
        }),
        case("S-unknown", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("FOO bar");
            s
        }),
        case("S-http", || {
            let mut s = Srv::new().mark();
            s.line("GET / HTTP/1.1");
            s
        }),
        case("S-too-many-errors", || {
            let mut s = Srv::with(|c| c.limits.max_errors = 2).ehlo();
            s.line("FOO");
            let mut s = s.mark();
            s.line("FOO");
            s
        }),
        case("S-starttls-pipelined", || {
            let mut s = Srv::with(|c| c.extensions.starttls = true).ehlo().mark();
            s.feed(b"STARTTLS\r\nEHLO client.example\r\n");
            s
        }),
        case("S-sync", || {
            let mut s = Srv::new().mark();
            s.feed(b"EHLO client.example\r\nNOOP\r\n");
            s
        }),
        case("S-hello-wrong-mode", || {
            let mut s = Srv::with(lmtp).mark();
            s.line("EHLO client.example");
            s
        }),
        case("S-hello", || {
            let mut s = Srv::new().mark();
            s.line("EHLO client.example");
            s
        }),
        case("S-helo-accept", || {
            let mut s = Srv::new();
            s.line("HELO client.example");
            s.mark().accept()
        }),
        case("S-ehlo-accept", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            s.line("EHLO client.example");
            let s = s.mark().accept();
            assert!(
                s.events.iter().any(|e| e == "Event::Reset"),
                "{:?}",
                s.events
            );
            assert!(s.server.reverse_path().is_none());
            s
        }),
        case("S-hello-reject", || {
            let mut s = Srv::new();
            s.line("EHLO client.example");
            let s = s.mark().reject(host_reply());
            s.sent_has(&host_reply());
            s
        }),
        case("S-mail-no-helo", || {
            let mut s = Srv::new().mark();
            s.line(MAIL);
            s
        }),
        case("S-mail-nested", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            s.line(MAIL);
            s
        }),
        case("S-mail-require-tls", || {
            let mut s = Srv::with(|c| c.require_tls = true).ehlo().mark();
            s.line(MAIL);
            s
        }),
        case("S-mail-require-auth", || {
            let mut s = Srv::with(|c| c.require_auth = true).ehlo().mark();
            s.line(MAIL);
            s
        }),
        case("S-mail-param", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("MAIL FROM:<a@example.org> MT-PRIORITY=3");
            assert!(s.sent.contains("MT-PRIORITY"), "{}", s.sent);
            s
        }),
        case("S-mail-size", || {
            let mut s = Srv::with(small).ehlo().mark();
            s.line("MAIL FROM:<a@example.org> SIZE=11");
            s
        }),
        case("S-mail", || {
            let mut s = Srv::new().ehlo().mark();
            s.line(MAIL);
            s
        }),
        case("S-mail-accept", || {
            let mut s = Srv::new().ehlo();
            s.line(MAIL);
            let s = s.mark().accept();
            assert!(s.server.reverse_path().is_some());
            s
        }),
        case("S-mail-reject", || {
            let mut s = Srv::new().ehlo();
            s.line(MAIL);
            let s = s.mark().reject(host_reply());
            s.sent_has(&host_reply());
            s
        }),
        case("S-rcpt-no-mail", || {
            let mut s = Srv::new().ehlo().mark();
            s.line(RCPT);
            s
        }),
        case("S-rcpt-after-bdat", || {
            let mut s = Srv::new().txn();
            s.feed(b"BDAT 3\r\nabc");
            let mut s = s.mark();
            s.line("RCPT TO:<c@example.org>");
            s
        }),
        case("S-rcpt-param", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            s.line("RCPT TO:<b@example.org> FOO=bar");
            s
        }),
        case("S-rcpt-452", || {
            let mut s = Srv::with(|c| c.limits.max_recipients = 1).txn().mark();
            s.line("RCPT TO:<c@example.org>");
            s
        }),
        case("S-rcpt", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            s.line(RCPT);
            s
        }),
        case("S-rcpt-accept", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            s.line(RCPT);
            let s = s.mark().accept();
            assert_eq!(s.server.recipients().len(), 1);
            s
        }),
        case("S-rcpt-reject", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            s.line(RCPT);
            let s = s.mark().reject(host_reply());
            s.sent_has(&host_reply());
            assert!(s.server.recipients().is_empty());
            s
        }),
        case("S-data-no-mail", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("DATA");
            s
        }),
        case("S-data-bdat-failed", || {
            let mut s = Srv::with(small).txn();
            s.feed(b"BDAT 11\r\n01234567890");
            let mut s = s.mark();
            s.line("DATA");
            s
        }),
        case("S-data-binarymime", || {
            let mut s = Srv::new().ehlo();
            s.up("MAIL FROM:<a@example.org> BODY=BINARYMIME");
            s.up(RCPT);
            let mut s = s.mark();
            s.line("DATA");
            s
        }),
        case("S-data-after-bdat", || {
            let mut s = Srv::new().txn();
            s.feed(b"BDAT 3\r\nabc");
            let mut s = s.mark();
            s.line("DATA");
            s
        }),
        case("S-data-no-rcpt", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            s.line("DATA");
            s
        }),
        case("S-data-no-valid", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            s.up_refused(RCPT);
            let mut s = s.mark();
            s.line("DATA");
            s
        }),
        case("S-data", || {
            let mut s = Srv::new().txn().mark();
            s.line("DATA");
            s
        }),
        case("S-data-bytes", || {
            let mut s = Srv::new().data().mark();
            s.feed(b"Subject: hi\r\n");
            s
        }),
        case("S-data-bare", || {
            let mut s = Srv::new().data().mark();
            s.feed(b"a\nb\r\n");
            s
        }),
        case("S-data-long", || {
            let mut s = Srv::with(|c| c.long_lines = smtp_proto::data::LongLines::Reject)
                .data()
                .mark();
            s.feed(format!("{}\r\n", "x".repeat(1100)).as_bytes());
            s
        }),
        case("S-data-size", || {
            let mut s = Srv::with(small).data().mark();
            s.feed(b"0123456789abcdef\r\n");
            assert_eq!(
                s.events,
                ["Event::Body"],
                "the limit at the end of the input"
            );
            s.feed(b"more\r\n");
            s
        }),
        case("S-data-end", || {
            let mut s = Srv::new().data();
            s.feed(b"hi\r\n");
            let mut s = s.mark();
            s.feed(b".\r\n");
            s
        }),
        case("S-data-end-lmtp", || {
            let mut s = Srv::with(lmtp);
            s.up("LHLO client.example");
            s.up(MAIL);
            s.up(RCPT);
            s.up("DATA");
            s.feed(b"hi\r\n");
            let mut s = s.mark();
            s.feed(b".\r\n");
            s
        }),
        case("S-data-end-bare", || {
            let mut s = Srv::new().data();
            s.feed(b"a\nb\r\n");
            let mut s = s.mark();
            s.feed(b".\r\n");
            assert!(s.server.reverse_path().is_none());
            s
        }),
        case("S-data-end-long", || {
            let mut s = Srv::with(|c| c.long_lines = smtp_proto::data::LongLines::Reject).data();
            s.feed(format!("{}\r\n", "x".repeat(1100)).as_bytes());
            let mut s = s.mark();
            s.feed(b".\r\n");
            s
        }),
        case("S-data-end-size", || {
            let mut s = Srv::with(small).data();
            s.feed(b"0123456789abcdef\r\n");
            let mut s = s.mark();
            s.feed(b".\r\n");
            s
        }),
        case("S-message-accept", || {
            let mut s = Srv::new().data();
            s.feed(b"hi\r\n.\r\n");
            let s = s.mark().accept();
            assert!(s.server.reverse_path().is_none());
            s
        }),
        case("S-message-reject", || {
            let mut s = Srv::new().data();
            s.feed(b"hi\r\n.\r\n");
            let s = s.mark().reject(host_reply());
            s.sent_has(&host_reply());
            assert!(s.server.reverse_path().is_none());
            s
        }),
        case("S-lmtp-next", || {
            let mut s = Srv::with(lmtp);
            s.up("LHLO client.example");
            s.up(MAIL);
            s.up(RCPT);
            s.up("RCPT TO:<c@example.org>");
            s.up("DATA");
            s.feed(b"hi\r\n.\r\n");
            s.mark().accept()
        }),
        case("S-lmtp-last", || {
            let mut s = Srv::with(lmtp);
            s.up("LHLO client.example");
            s.up(MAIL);
            s.up(RCPT);
            s.up("DATA");
            s.feed(b"hi\r\n.\r\n");
            let s = s.mark().accept();
            assert!(s.server.reverse_path().is_none());
            s
        }),
        case("S-bdat-off", || {
            let mut s = Srv::with(|c| c.extensions.chunking = false).txn().mark();
            s.line("BDAT 3");
            s
        }),
        case("S-bdat-refused", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            s.line("BDAT 3");
            assert!(s.sent.is_empty(), "{}", s.sent);
            s
        }),
        case("S-bdat-over-size", || {
            let mut s = Srv::with(small).txn().mark();
            s.line("BDAT 11");
            s
        }),
        case("S-bdat", || {
            let mut s = Srv::new().txn().mark();
            s.line("BDAT 3");
            s
        }),
        case("S-bdat-bytes", || {
            let mut s = Srv::new().txn();
            s.line("BDAT 6");
            let mut s = s.mark();
            s.feed(b"abc");
            s
        }),
        case("S-bdat-discard", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            s.line("BDAT 6");
            let mut s = s.mark();
            s.feed(b"abc");
            assert!(s.events.is_empty(), "{:?}", s.events);
            s
        }),
        case("S-bdat-chunk", || {
            let mut s = Srv::new().txn();
            s.line("BDAT 3");
            let mut s = s.mark();
            s.feed(b"abc");
            assert!(s.sent.starts_with("250 2.0.0 3 octets"), "{}", s.sent);
            s
        }),
        case("S-bdat-last", || {
            let mut s = Srv::new().txn();
            s.line("BDAT 3 LAST");
            let mut s = s.mark();
            s.feed(b"abc");
            s
        }),
        case("S-bdat-refused-end", || {
            let mut s = Srv::new().ehlo();
            s.up(MAIL);
            s.line("BDAT 3 LAST");
            let mut s = s.mark();
            s.feed(b"abc");
            assert!(s.server.reverse_path().is_none());
            s
        }),
        case("S-bdat-syntax", || {
            let mut s = Srv::new().txn().mark();
            s.line("BDAT x");
            s
        }),
        case("S-rset", || {
            let mut s = Srv::new().txn().mark();
            s.line("RSET");
            s
        }),
        case("S-noop", || {
            let mut s = Srv::new().mark();
            s.line("NOOP");
            s
        }),
        case("S-help", || {
            let mut s = Srv::new().mark();
            s.line("HELP");
            s
        }),
        case("S-vrfy", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("VRFY bob");
            s
        }),
        case("S-expn", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("EXPN staff");
            s
        }),
        case("S-etrn-off", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("ETRN example.org");
            s
        }),
        case("S-etrn", || {
            let mut s = Srv::with(|c| c.extensions.etrn = true).ehlo().mark();
            s.line("ETRN example.org");
            s
        }),
        case("S-vrfy-accept", || {
            let mut s = Srv::new().ehlo();
            s.line("VRFY bob");
            s.mark().accept()
        }),
        case("S-expn-accept", || {
            let mut s = Srv::new().ehlo();
            s.line("EXPN staff");
            s.mark().accept()
        }),
        case("S-etrn-accept", || {
            let mut s = Srv::with(|c| c.extensions.etrn = true).ehlo();
            s.line("ETRN example.org");
            s.mark().accept()
        }),
        case("S-vrfy-host", || {
            let mut s = Srv::new().ehlo();
            s.line("VRFY bob");
            let mut s = s.mark();
            let r = reply(250, (2, 1, 5), "Bob <bob@example.org>");
            s.server.accept_with(r.clone()).unwrap();
            s.drain();
            s.sent_has(&r);
            s
        }),
        case("S-quit", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("QUIT");
            s
        }),
        case("S-starttls-off", || {
            let mut s = Srv::new().ehlo().mark();
            s.line("STARTTLS");
            s
        }),
        case("S-starttls-active", || {
            let mut s = Srv::with(|c| c.extensions.starttls = true).ehlo();
            s.line("STARTTLS");
            s.server.handle_tls_established(s.now);
            s.drain();
            let mut s = s.ehlo().mark();
            s.line("STARTTLS");
            s
        }),
        case("S-starttls", || {
            let mut s = Srv::with(|c| c.extensions.starttls = true).txn().mark();
            s.line("STARTTLS");
            assert!(s.server.reverse_path().is_none());
            s
        }),
        case("S-tls-bytes", || {
            let mut s = Srv::with(|c| c.extensions.starttls = true).ehlo();
            s.line("STARTTLS");
            let mut s = s.mark();
            s.line("EHLO client.example");
            s
        }),
        case("S-tls-established", || {
            let mut s = Srv::with(|c| c.extensions.starttls = true).ehlo();
            s.line("STARTTLS");
            let mut s = s.mark();
            s.server.handle_tls_established(s.now);
            s.drain();
            assert!(s.server.helo().is_none() && s.server.is_tls());
            s
        }),
        case("S-auth-off", || {
            let mut s = Srv::new().ehlo().mark();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            s
        }),
        case("S-auth-no-ehlo", || {
            let mut s = Srv::with(auth_config);
            s.up("HELO client.example");
            let mut s = s.mark();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            s
        }),
        case("S-auth-twice", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.up(&format!("AUTH PLAIN {PLAIN_IR}"));
            assert!(s.server.authenticated().is_some());
            let mut s = s.mark();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            s
        }),
        case("S-auth-txn", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.up(MAIL);
            let mut s = s.mark();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            s
        }),
        case("S-auth-unknown", || {
            let mut s = Srv::with(auth_config).ehlo().mark();
            s.line("AUTH SCRAM-SHA-1");
            s
        }),
        case("S-auth-538", || {
            let mut s = Srv::with(|c| {
                auth_config(c);
                c.auth_requires_tls = true;
            })
            .ehlo()
            .mark();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            s
        }),
        case("S-auth-cram", || {
            let mut s = Srv::with(auth_config).ehlo().mark();
            s.line("AUTH CRAM-MD5");
            s
        }),
        case("S-auth-challenge", || {
            let mut s = Srv::with(auth_config).ehlo().mark();
            s.line("AUTH LOGIN");
            s
        }),
        case("S-auth-ir", || {
            let mut s = Srv::with(auth_config).ehlo().mark();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            s
        }),
        case("S-cram-challenge", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH CRAM-MD5");
            let mut s = s.mark();
            s.server.auth_challenge("<1.2@mx.example.org>").unwrap();
            s.drain();
            s
        }),
        case("S-cram-reject", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH CRAM-MD5");
            let s = s.mark().reject(host_reply());
            s.sent_has(&host_reply());
            s
        }),
        case("S-auth-cancel", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH LOGIN");
            let mut s = s.mark();
            s.line("*");
            s
        }),
        case("S-auth-base64", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH LOGIN");
            let mut s = s.mark();
            s.line("!!!");
            s
        }),
        case("S-auth-long", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH LOGIN");
            let mut s = s.mark();
            s.line(&"A".repeat(13_000));
            s
        }),
        case("S-auth-pipelined", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH LOGIN");
            let mut s = s.mark();
            s.feed(b"Ym9i\r\nc2VjcmV0\r\n");
            s
        }),
        case("S-auth-next", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH LOGIN");
            let mut s = s.mark();
            s.line("Ym9i");
            s
        }),
        case("S-auth-done", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH LOGIN");
            s.line("Ym9i");
            let mut s = s.mark();
            s.line("c2VjcmV0");
            s
        }),
        case("S-auth-accept", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            let s = s.mark().accept();
            assert_eq!(s.server.authenticated(), Some("bob"));
            s
        }),
        case("S-auth-reject", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            let r = reply(535, (5, 7, 8), "Authentication credentials invalid");
            s.mark().reject(r)
        }),
        case("S-auth-reject-oauth", || {
            let mut s = Srv::with(auth_config).ehlo();
            // user=bob^Aauth=Bearer token^A^A
            s.line("AUTH XOAUTH2 dXNlcj1ib2IBYXV0aD1CZWFyZXIgdG9rZW4BAQ==");
            let s = s.mark().reject(host_reply());
            assert!(!s.sent.contains("550"), "{}", s.sent);
            s
        }),
        case("S-auth-limit", || {
            let mut s = Srv::with(|c| {
                auth_config(c);
                c.limits.max_auth_failures = 1;
            })
            .ehlo();
            s.line(&format!("AUTH PLAIN {PLAIN_IR}"));
            let s = s.mark().reject(host_reply());
            s.sent_has(&host_reply());
            s
        }),
        case("S-timeout", || {
            let mut s = Srv::new().ehlo().mark();
            let later = s.now + Duration::from_secs(301);
            s.server.handle_timeout(later);
            s.drain();
            s
        }),
        case("S-timeout-body", || {
            let mut s = Srv::new().data().mark();
            let later = s.now + Duration::from_secs(181);
            s.server.handle_timeout(later);
            s.drain();
            s
        }),
        case("S-eof", || {
            let mut s = Srv::new().ehlo().mark();
            s.server.handle_eof(s.now);
            s.drain();
            assert!(s.sent.is_empty(), "{}", s.sent);
            s
        }),
        case("S-eof-body", || {
            let mut s = Srv::new().data().mark();
            s.server.handle_eof(s.now);
            s.drain();
            s
        }),
    ]
}

#[test]
fn server_transitions() {
    let doc = doc();
    let rows = table(&doc, "Server", "Transitions");
    let cases = server_cases();
    check_keys(&rows, &cases, "server transitions");
    let by_key: BTreeMap<_, _> = cases.into_iter().collect();
    for row in &rows {
        let s = by_key[row.key.as_str()]();
        check_server_row(row, &s);
    }
}

// ---- the server's phases ---------------------------------------------------------------

fn phase_cases() -> Vec<ServerCase> {
    vec![
        case("P-greeting", || Srv::fresh(|_| {})),
        case("P-command", || Srv::new().ehlo()),
        case("P-decide", || {
            let mut s = Srv::new();
            s.line("EHLO client.example");
            s
        }),
        case("P-data", || Srv::new().data()),
        case("P-bdat", || {
            let mut s = Srv::new().txn();
            s.line("BDAT 10");
            s
        }),
        case("P-auth", || {
            let mut s = Srv::with(auth_config).ehlo();
            s.line("AUTH LOGIN");
            s
        }),
        case("P-tls", || {
            let mut s = Srv::with(|c| c.extensions.starttls = true).ehlo();
            s.line("STARTTLS");
            s
        }),
        case("P-closed", || {
            let mut s = Srv::new();
            s.line("QUIT");
            s
        }),
    ]
}

#[test]
fn server_phases() {
    let doc = doc();
    let rows = table(&doc, "Server", "Phases");
    let cases = phase_cases();
    check_keys(&rows, &cases, "server phases");
    let by_key: BTreeMap<_, _> = cases.into_iter().collect();
    for row in &rows {
        let key = &row.key;
        let [phase, _meaning, deadline, reads] = &row.cells[..] else {
            panic!("{key}: expected 4 cells after the key, got {:?}", row.cells);
        };
        let mut s = by_key[key.as_str()]();
        let state = phase_state(phase).unwrap_or_else(|| panic!("{key}: phase {phase}"));
        assert_eq!(s.server.state(), state, "{key}");
        let t = s.server.config().timeouts;
        let timeout = if deadline.starts_with("command timeout") {
            Some(t.command)
        } else if deadline.starts_with("data block") {
            Some(t.data_block)
        } else if deadline.starts_with("TLS handshake") {
            Some(t.tls_handshake)
        } else if deadline.starts_with("none") {
            None
        } else {
            panic!("{key}: unknown deadline {deadline}")
        };
        let deadline = timeout.map(|d| s.now + d);
        assert_eq!(s.server.deadline(), deadline, "{key}: deadline");
        let read = match reads.as_str() {
            "yes" => true,
            "no" => false,
            "until `max_buffered`" => {
                let max = s.server.config().limits.max_buffered;
                assert!(s.server.buffered() < max, "{key}");
                true
            }
            other => panic!("{key}: reads input {other}?"),
        };
        if state == State::Start {
            // The first poll produces the greeting; input given before it is read after.
            s.feed(b"NOOP\r\n");
            assert!(s.sent.ends_with("250 2.0.0 Ok\r\n"), "{key}: {}", s.sent);
            continue;
        }
        match s.server.poll_output() {
            Output::Wait {
                deadline: d,
                read: r,
            } => {
                assert_eq!((d, r), (deadline, read), "{key}: Wait");
            }
            other => panic!("{key}: {other:?} where Wait was due"),
        }
    }
    // A decision pending and `max_buffered` octets held: the session stops reading.
    let mut s = Srv::with(|c| c.limits.max_buffered = 16);
    s.line("EHLO client.example");
    s.feed(b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n");
    assert!(matches!(
        s.server.poll_output(),
        Output::Wait { read: false, .. }
    ));
}

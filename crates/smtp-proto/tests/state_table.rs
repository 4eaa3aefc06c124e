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
//!   backticks happened, and the reply the client was waiting for is the row's (read
//!   from its `Debug`: the queue of expected replies is private);
//! - for the server's phases, `poll_output` waits with the row's deadline and reads
//!   input as the row says.
//!
//! Each row must be matched by exactly one case, and each case by a row.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::client::{
    Client, ClientConfig, ClientError, ClientEvent, ClientOutput, Envelope, MessageOutcome,
    Recipient, StartTls,
};
use smtp_proto::sasl::{ClientCredentials, Mechanism};
use smtp_proto::server::{Event, Output, PeerInfo, ServerConfig, Session, State};
use smtp_proto::{BodyType, ForwardPath, Mailbox, Reply, ReversePath};

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

/// Whether a reply line matches a reply written in the table: `<host>` and `<greeting>`
/// are the test server's, the other placeholders match a run of non-space characters
/// (possibly empty). `<CR>`, `<LF>` and `<address>` are text of the replies themselves.
fn reply_matches(pattern: &str, line: &str) -> bool {
    const HOLES: [&str; 3] = ["<total>", "<challenge>", "<name>"];
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
        if let Some(p) = pieces.last_mut() {
            p.push(c);
        }
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
    server: Session,
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
            server: Session::new(config(f), PeerInfo::default(), now),
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

// ---- the client ------------------------------------------------------------------------

/// A client session, what it did since [`Cl::mark`].
struct Cl {
    client: Client,
    now: Instant,
    sent: String,
    events: Vec<ClientEvent>,
    outputs: Vec<String>,
    /// Answer `BodyWanted` at once with a short body.
    auto_body: bool,
    /// The reply waited for when the case marked (empty: none).
    waiting: Option<String>,
}

const EHLO_PIPE: &str = "250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
const EHLO_PLAIN: &str = "250 mx.example.org\r\n";
const EHLO_CHUNK: &str = "250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n";

/// Client events whose names a row may give.
const CLIENT_EVENTS: [&str; 7] = [
    "Connected",
    "Capabilities",
    "TlsEstablished",
    "Authenticated",
    "Ready",
    "BodyWanted",
    "MessageDone",
];

/// Commands a row may say the client sends (and the AUTH cancellation, and the dot).
const CLIENT_COMMANDS: [&str; 13] = [
    "EHLO", "LHLO", "HELO", "STARTTLS", "AUTH", "RSET", "MAIL", "RCPT", "DATA", "BDAT", "QUIT",
    ".", "*",
];

fn envelope(to: &[&str]) -> Envelope {
    Envelope::new(
        ReversePath::Mailbox(Mailbox::parse("a@example.org").unwrap().into_owned()),
        to.iter()
            .map(|t| {
                Recipient::new(ForwardPath::Mailbox(
                    Mailbox::parse(t).unwrap().into_owned(),
                ))
            })
            .collect(),
    )
}

impl Cl {
    /// A session before its greeting.
    fn with(f: impl FnOnce(&mut ClientConfig)) -> Cl {
        let mut c = ClientConfig::new("client.example").unwrap();
        f(&mut c);
        let now = Instant::now();
        let mut cl = Cl {
            client: Client::new(Arc::new(c), false, now),
            now,
            sent: String::new(),
            events: Vec::new(),
            outputs: Vec::new(),
            auto_body: true,
            waiting: None,
        };
        cl.drain();
        cl
    }

    fn new() -> Cl {
        Cl::with(|_| {})
    }

    /// Greeted, and `ehlo` answered.
    fn ready(f: impl FnOnce(&mut ClientConfig), ehlo: &str) -> Cl {
        let mut c = Cl::with(f);
        c.server("220 mx.example.org ESMTP\r\n");
        c.server(ehlo);
        c
    }

    fn drain(&mut self) {
        loop {
            match self.client.poll_output() {
                ClientOutput::Transmit(b) => self.sent.push_str(&String::from_utf8_lossy(&b)),
                ClientOutput::Event(e) => {
                    let wanted = matches!(e, ClientEvent::BodyWanted { .. });
                    self.events.push(e);
                    if wanted && self.auto_body {
                        self.client.send_body(b"hello\r\n").unwrap();
                        self.client.end_body().unwrap();
                    }
                }
                ClientOutput::StartTls => self.outputs.push("Output::StartTls".into()),
                ClientOutput::Close => self.outputs.push("Output::Close".into()),
                ClientOutput::Wait { .. } => break,
            }
        }
    }

    /// The server says `text`.
    fn server(&mut self, text: &str) {
        self.client.handle_input(text.as_bytes(), self.now);
        self.drain();
    }

    fn send(&mut self, env: Envelope) {
        self.client.send_mail(env).unwrap();
        self.drain();
    }

    fn mark(mut self) -> Cl {
        self.sent.clear();
        self.events.clear();
        self.outputs.clear();
        self.waiting = Some(self.waiting_for());
        self
    }

    /// The reply the session waits for first, as its `Debug` names it (the queue of
    /// expected replies is private; its name is what the table's first column gives).
    fn waiting_for(&self) -> String {
        let debug = format!("{:?}", self.client);
        debug
            .split_once("expected: [(")
            .map(|(_, rest)| {
                let end = rest.find([',', ' ', '(', '{']).unwrap_or(rest.len());
                rest[..end].to_owned()
            })
            .unwrap_or_default()
    }

    fn outcomes(&self) -> impl Iterator<Item = &MessageOutcome> {
        self.events.iter().filter_map(|e| match e {
            ClientEvent::MessageDone(o) => Some(o),
            _ => None,
        })
    }

    fn failure(&self) -> Option<&ClientError> {
        self.events.iter().find_map(|e| match e {
            ClientEvent::Failed(err) => Some(err),
            _ => None,
        })
    }

    fn sent_lines(&self) -> Vec<&str> {
        self.sent.split("\r\n").filter(|l| !l.is_empty()).collect()
    }
}

fn check_client_row(row: &Row, c: &Cl) {
    let key = &row.key;
    let [waiting, _reply, action] = &row.cells[..] else {
        panic!("{key}: expected 3 cells after the key, got {:?}", row.cells);
    };
    // The reply waited for: "any", a parenthesised situation, or a list of replies.
    let front = c
        .waiting
        .as_deref()
        .unwrap_or_else(|| panic!("{key}: never marked"));
    if waiting.starts_with("any") {
        let but: Vec<&str> = waiting.strip_prefix("any but ").into_iter().collect();
        assert!(
            !but.contains(&front),
            "{key}: waiting for {front}, row says {waiting}"
        );
    } else if waiting.starts_with("nothing") {
        // An unsolicited reply: nothing, or a reply that began too early.
    } else if !waiting.starts_with('(') {
        let names: Vec<&str> = waiting
            .split([',', '/'])
            .map(|w| w.trim().split('(').next().unwrap_or(""))
            .collect();
        assert!(
            names.contains(&front),
            "{key}: waiting for {front:?}, row says {waiting}"
        );
    }
    let context = || {
        format!(
            "{key}: sent {:?}, events {:?}, outputs {:?}",
            c.sent, c.events, c.outputs
        )
    };
    let names: Vec<String> = c
        .events
        .iter()
        .map(|e| {
            let name = format!("{e:?}");
            name.split([' ', '(', '{']).next().unwrap_or("").to_owned()
        })
        .collect();
    let lines = c.sent_lines();
    for t in ticked(action) {
        if let Some(error) = t.strip_prefix("Failed(").and_then(|t| t.strip_suffix(')')) {
            let failed = c.failure().map(|e| format!("{e:?}")).unwrap_or_default();
            assert!(
                failed.starts_with(error),
                "{key}: not Failed({error}); {}",
                context()
            );
        } else if CLIENT_EVENTS.contains(&t) {
            assert!(names.iter().any(|n| n == t), "{key}: no {t}; {}", context());
        } else if t.starts_with("Output::") {
            assert!(
                c.outputs.iter().any(|o| o == t),
                "{key}: no {t}; {}",
                context()
            );
        } else if let Some(status) = t.strip_prefix("DeliveryStatus::") {
            assert!(
                c.outcomes().any(|o| format!("{:?}", o.status) == status),
                "{key}: no message {t}; {}",
                context()
            );
        } else if let Some(status) = t.strip_prefix("RecipientStatus::") {
            assert!(
                c.outcomes()
                    .flat_map(|o| &o.recipients)
                    .any(|r| format!("{:?}", r.status) == status),
                "{key}: no recipient {t}; {}",
                context()
            );
        } else {
            let word = t.split(' ').next().unwrap_or("");
            if CLIENT_COMMANDS.contains(&word) {
                let sent = lines.iter().any(|l| match word {
                    "." | "*" => *l == word,
                    _ => l.starts_with(word),
                });
                assert!(sent, "{key}: `{word}` not sent; {}", context());
            }
        }
    }
}

type ClientCase = (&'static str, fn() -> Cl);

fn client_case(key: &'static str, run: fn() -> Cl) -> ClientCase {
    (key, run)
}

fn no_quit(c: &Cl) {
    assert!(!c.sent.contains("QUIT"), "{}", c.sent);
}

fn cleartext_auth(c: &mut ClientConfig) {
    c.credentials = Some(ClientCredentials::password("bob", "secret"));
    c.allow_cleartext_auth = true;
}

fn no_pipelining(c: &mut ClientConfig) {
    c.pipelining = false;
}

fn client_cases() -> Vec<ClientCase> {
    vec![
        client_case("C-greeting", || {
            let mut c = Cl::new().mark();
            c.server("220 mx.example.org ESMTP\r\n");
            c
        }),
        client_case("C-greeting-refused", || {
            let mut c = Cl::new();
            c.send(envelope(&["b@example.org"]));
            let mut c = c.mark();
            c.server("554 5.3.2 No service here\r\n");
            assert!(
                c.failure()
                    .unwrap()
                    .to_string()
                    .starts_with("greeting refused")
            );
            c
        }),
        client_case("C-greeting-unexpected", || {
            let mut c = Cl::new().mark();
            c.server("250 hello\r\n");
            assert!(
                c.failure()
                    .unwrap()
                    .to_string()
                    .starts_with("unexpected greeting")
            );
            c
        }),
        client_case("C-421", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            let mut c = c.mark();
            c.server("421 4.3.2 Shutting down\r\n");
            no_quit(&c);
            c
        }),
        client_case("C-unsolicited", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE).mark();
            c.server("250 what\r\n");
            no_quit(&c);
            c
        }),
        client_case("C-malformed", || {
            let mut c = Cl::new().mark();
            c.server("2x0 what\r\n");
            no_quit(&c);
            c
        }),
        client_case("C-ehlo-2xx", || {
            let mut c = Cl::new();
            c.server("220 mx.example.org ESMTP\r\n");
            let mut c = c.mark();
            c.server(EHLO_PIPE);
            assert!(c.client.capabilities().unwrap().pipelining);
            c
        }),
        client_case("C-ehlo-code-only", || {
            let mut c = Cl::new();
            c.server("220 mx.example.org ESMTP\r\n");
            let mut c = c.mark();
            c.server("250\r\n");
            assert!(!c.client.capabilities().unwrap().pipelining);
            c
        }),
        client_case("C-ehlo-starttls", || {
            let mut c = Cl::new();
            c.server("220 mx.example.org ESMTP\r\n");
            let mut c = c.mark();
            c.server("250-mx.example.org\r\n250 STARTTLS\r\n");
            c
        }),
        client_case("C-ehlo-tls-unavailable", || {
            let mut c = Cl::with(|c| c.starttls = StartTls::Required);
            c.server("220 mx.example.org ESMTP\r\n");
            let mut c = c.mark();
            c.server(EHLO_PIPE);
            c
        }),
        client_case("C-ehlo-helo", || {
            let mut c = Cl::new();
            c.server("220 mx.example.org ESMTP\r\n");
            let mut c = c.mark();
            c.server("502 5.5.1 Error: command not implemented\r\n");
            c
        }),
        client_case("C-ehlo-refused", || {
            let mut c = Cl::with(|c| c.lmtp = true);
            c.server("220 mx.example.org LMTP\r\n");
            let mut c = c.mark();
            c.server("500 5.5.2 Error: command not recognized\r\n");
            c
        }),
        client_case("C-helo-2xx", || {
            let mut c = Cl::new();
            c.server("220 mx.example.org ESMTP\r\n");
            c.server("502 5.5.1 Error: command not implemented\r\n");
            let mut c = c.mark();
            c.server("250 mx.example.org\r\n");
            c
        }),
        client_case("C-helo-refused", || {
            let mut c = Cl::new();
            c.server("220 mx.example.org ESMTP\r\n");
            c.server("502 5.5.1 Error: command not implemented\r\n");
            let mut c = c.mark();
            c.server("550 5.7.1 Go away\r\n");
            c
        }),
        client_case("C-starttls-220", || {
            let mut c = Cl::ready(|_| {}, "250-mx.example.org\r\n250 STARTTLS\r\n").mark();
            c.server("220 2.0.0 Ready to start TLS\r\n");
            let handshake = c.client.config().timeouts.tls_handshake;
            assert_eq!(c.client.deadline(), Some(c.now + handshake));
            c
        }),
        client_case("C-starttls-injection", || {
            let mut c = Cl::ready(|_| {}, "250-mx.example.org\r\n250 STARTTLS\r\n").mark();
            c.server("220 2.0.0 Ready to start TLS\r\n250 AUTH PLAIN\r\n");
            assert!(c.outputs.iter().all(|o| o != "Output::StartTls"));
            no_quit(&c);
            c
        }),
        client_case("C-starttls-required", || {
            let mut c = Cl::ready(
                |c| c.starttls = StartTls::Required,
                "250-mx.example.org\r\n250 STARTTLS\r\n",
            )
            .mark();
            c.server("454 4.7.0 TLS not available\r\n");
            c
        }),
        client_case("C-starttls-opportunistic", || {
            let mut c = Cl::ready(|_| {}, "250-mx.example.org\r\n250 STARTTLS\r\n").mark();
            c.server("454 4.7.0 TLS not available\r\n");
            c
        }),
        client_case("C-tls-bytes", || {
            let mut c = Cl::ready(|_| {}, "250-mx.example.org\r\n250 STARTTLS\r\n");
            c.server("220 2.0.0 Ready to start TLS\r\n");
            let mut c = c.mark();
            c.server("250 fake\r\n");
            no_quit(&c);
            c
        }),
        client_case("C-tls-established", || {
            let mut c = Cl::ready(|_| {}, "250-mx.example.org\r\n250 STARTTLS\r\n");
            c.server("220 2.0.0 Ready to start TLS\r\n");
            let mut c = c.mark();
            c.client.handle_tls_established(c.now);
            c.drain();
            assert!(c.client.capabilities().is_none() && c.client.is_tls());
            c
        }),
        client_case("C-auth-start", || {
            let mut c = Cl::with(cleartext_auth);
            c.server("220 mx.example.org ESMTP\r\n");
            let mut c = c.mark();
            c.server("250-mx.example.org\r\n250 AUTH PLAIN LOGIN\r\n");
            c
        }),
        client_case("C-auth-unavailable", || {
            let mut c = Cl::with(|c| {
                c.credentials = Some(ClientCredentials::password("bob", "secret"));
            });
            c.server("220 mx.example.org ESMTP\r\n");
            let mut c = c.mark();
            c.server("250-mx.example.org\r\n250 AUTH PLAIN LOGIN\r\n");
            c
        }),
        client_case("C-auth-334", || {
            let login = |c: &mut ClientConfig| {
                cleartext_auth(c);
                c.mechanism = Some(Mechanism::Login);
            };
            let mut c = Cl::ready(login, "250-mx.example.org\r\n250 AUTH LOGIN\r\n").mark();
            c.server("334 VXNlcm5hbWU6\r\n");
            assert_eq!(c.sent, "Ym9i\r\n");
            c
        }),
        client_case("C-auth-334-bad", || {
            let login = |c: &mut ClientConfig| {
                cleartext_auth(c);
                c.mechanism = Some(Mechanism::Login);
            };
            let mut c = Cl::ready(login, "250-mx.example.org\r\n250 AUTH LOGIN\r\n").mark();
            c.server("334 !!!\r\n");
            c
        }),
        client_case("C-auth-235", || {
            let mut c =
                Cl::ready(cleartext_auth, "250-mx.example.org\r\n250 AUTH PLAIN\r\n").mark();
            c.server("235 2.7.0 Authentication successful\r\n");
            c
        }),
        client_case("C-auth-refused", || {
            let mut c = Cl::ready(cleartext_auth, "250-mx.example.org\r\n250 AUTH PLAIN\r\n");
            c.send(envelope(&["b@example.org"]));
            let mut c = c.mark();
            c.server("535 5.7.8 Authentication credentials invalid\r\n");
            c
        }),
        client_case("C-send", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE).mark();
            c.client.send_mail(envelope(&["b@example.org"])).unwrap();
            // One write.
            let ClientOutput::Transmit(b) = c.client.poll_output() else {
                panic!("nothing written");
            };
            let group = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n";
            assert_eq!(String::from_utf8_lossy(&b), group);
            c.sent.push_str(group);
            c.drain();
            c
        }),
        client_case("C-send-one-by-one", || {
            let mut c = Cl::ready(no_pipelining, EHLO_PIPE).mark();
            c.send(envelope(&["b@example.org"]));
            assert_eq!(c.sent, "MAIL FROM:<a@example.org>\r\n");
            c
        }),
        client_case("C-send-rset", || {
            let mut c = Cl::ready(|_| {}, EHLO_PLAIN);
            c.send(envelope(&["b@example.org"]));
            c.send(envelope(&["c@example.org"]));
            c.server("250 2.1.0 Ok\r\n");
            let mut c = c.mark();
            c.server("550 5.1.1 No such user\r\n");
            assert_eq!(c.sent, "RSET\r\n");
            c
        }),
        client_case("C-refuse-no-rcpt", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE).mark();
            c.send(envelope(&[]));
            assert!(c.sent.is_empty());
            c
        }),
        client_case("C-refuse-size", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE).mark();
            let mut env = envelope(&["b@example.org"]);
            env.size = Some(2000);
            c.send(env);
            assert!(c.sent.is_empty());
            c
        }),
        client_case("C-refuse-utf8", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE).mark();
            c.send(envelope(&["bé@example.org"]));
            assert!(c.sent.is_empty());
            c
        }),
        client_case("C-refuse-binary", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE).mark();
            let mut env = envelope(&["b@example.org"]);
            env.body = BodyType::BinaryMime;
            c.send(env);
            assert!(c.sent.is_empty());
            c
        }),
        client_case("C-refuse-requiretls", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE).mark();
            let mut env = envelope(&["b@example.org"]);
            env.requiretls = true;
            c.send(env);
            assert!(c.sent.is_empty());
            c
        }),
        client_case("C-mail-2xx", || {
            let mut c = Cl::ready(|_| {}, EHLO_PLAIN);
            c.send(envelope(&["b@example.org"]));
            let mut c = c.mark();
            c.server("250 2.1.0 Ok\r\n");
            c
        }),
        client_case("C-mail-refused", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            let mut c = c.mark();
            c.server("550 5.7.1 Sender refused\r\n");
            c.server("503 5.5.1 Error: need MAIL command\r\n");
            c.server("503 5.5.1 Error: need MAIL command\r\n");
            assert!(c.failure().is_none());
            c
        }),
        client_case("C-rcpt-next", || {
            let mut c = Cl::ready(|_| {}, EHLO_PLAIN);
            c.send(envelope(&["b@example.org", "c@example.org"]));
            c.server("250 2.1.0 Ok\r\n");
            let mut c = c.mark();
            c.server("250 2.1.5 Ok\r\n");
            assert_eq!(c.sent, "RCPT TO:<c@example.org>\r\n");
            c
        }),
        client_case("C-rcpt-data", || {
            let mut c = Cl::ready(|_| {}, EHLO_PLAIN);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n");
            let mut c = c.mark();
            c.server("250 2.1.5 Ok\r\n");
            c
        }),
        client_case("C-rcpt-temporary", || {
            let mut c = Cl::ready(|_| {}, EHLO_PLAIN);
            c.send(envelope(&["b@example.org", "c@example.org"]));
            c.server("250 2.1.0 Ok\r\n");
            c.server("250 2.1.5 Ok\r\n");
            let mut c = c.mark();
            c.server("552 5.2.2 Mailbox full\r\n");
            c.server("354 End data with <CR><LF>.<CR><LF>\r\n");
            c.server("250 2.0.0 Ok: queued\r\n");
            c
        }),
        client_case("C-rcpt-none", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n");
            let mut c = c.mark();
            c.server("550 5.1.1 No such user\r\n");
            assert_eq!(c.outcomes().count(), 0, "the DATA reply is still due");
            c.server("554 5.5.1 Error: no valid recipients\r\n");
            assert!(
                !c.events
                    .iter()
                    .any(|e| matches!(e, ClientEvent::BodyWanted { .. }))
            );
            c
        }),
        client_case("C-bdat", || {
            let mut c = Cl::ready(|_| {}, EHLO_CHUNK);
            c.auto_body = false;
            c.send(envelope(&["b@example.org"]));
            assert!(!c.sent.contains("DATA"), "{}", c.sent);
            c.server("250 2.1.0 Ok\r\n");
            let mut c = c.mark();
            c.server("250 2.1.5 Ok\r\n");
            c.client.send_body(b"hello\r\n").unwrap();
            c.client.send_body(b"world\r\n").unwrap();
            c.client.end_body().unwrap();
            c.drain();
            assert_eq!(c.sent, "BDAT 7\r\nhello\r\nBDAT 7 LAST\r\nworld\r\n");
            c
        }),
        client_case("C-data-354", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.auto_body = false;
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
            let mut c = c.mark();
            c.server("354 Go ahead\r\n");
            c
        }),
        client_case("C-data-354-none", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n");
            let mut c = c.mark();
            c.server("354 Go ahead\r\n");
            assert_eq!(c.sent, ".\r\n");
            c.server("554 5.5.1 Error: no valid recipients\r\n");
            assert!(c.failure().is_none());
            c
        }),
        client_case("C-data-refused", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
            let mut c = c.mark();
            c.server("451 4.3.0 Try later\r\n");
            c
        }),
        client_case("C-data-other", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
            let mut c = c.mark();
            c.server("250 2.0.0 Ok\r\n");
            no_quit(&c);
            c
        }),
        client_case("C-bdat-refused", || {
            let mut c = Cl::ready(|_| {}, EHLO_CHUNK);
            c.auto_body = false;
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
            c.client.send_body(b"hello\r\n").unwrap();
            c.client.send_body(b"world\r\n").unwrap();
            c.drain();
            let mut c = c.mark();
            c.server("554 5.6.0 Refused\r\n");
            c.client.send_body(b"more\r\n").unwrap();
            c.client.end_body().unwrap();
            c.drain();
            assert!(c.sent.is_empty(), "{}", c.sent);
            c
        }),
        client_case("C-final", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n");
            let mut c = c.mark();
            c.server("250 2.0.0 Ok: queued\r\n");
            c
        }),
        client_case("C-final-lmtp", || {
            let mut c = Cl::ready(|c| c.lmtp = true, EHLO_PIPE);
            c.send(envelope(&["b@example.org", "c@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n");
            let mut c = c.mark();
            c.server("250 2.0.0 Ok: delivered to b\r\n");
            assert_eq!(c.outcomes().count(), 0, "one reply per recipient");
            c
        }),
        client_case("C-lmtp-final", || {
            let mut c = Cl::ready(|c| c.lmtp = true, EHLO_PIPE);
            c.send(envelope(&["b@example.org", "c@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n");
            c.server("250 2.0.0 Ok: delivered to b\r\n");
            let mut c = c.mark();
            c.server("452 4.2.2 Mailbox full\r\n");
            c
        }),
        client_case("C-quit", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.client.quit();
            c.drain();
            let mut c = c.mark();
            c.server("221 2.0.0 Bye\r\n");
            c
        }),
        client_case("C-timeout-final", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n");
            let mut c = c.mark();
            c.client.handle_timeout(c.now + Duration::from_secs(3600));
            c.drain();
            c
        }),
        client_case("C-timeout", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            let mut c = c.mark();
            c.client.handle_timeout(c.now + Duration::from_secs(3600));
            c.drain();
            c
        }),
        client_case("C-eof-final", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n");
            let mut c = c.mark();
            c.client.handle_eof(c.now);
            c.drain();
            c
        }),
        client_case("C-eof", || {
            let mut c = Cl::ready(|_| {}, EHLO_PIPE);
            c.send(envelope(&["b@example.org"]));
            let mut c = c.mark();
            c.client.handle_eof(c.now);
            c.drain();
            c
        }),
    ]
}

#[test]
fn client_transitions() {
    let doc = doc();
    let rows = table(&doc, "Client", "Transitions");
    let cases = client_cases();
    check_keys(&rows, &cases, "client transitions");
    let by_key: BTreeMap<_, _> = cases.into_iter().collect();
    for row in &rows {
        let c = by_key[row.key.as_str()]();
        check_client_row(row, &c);
    }
}

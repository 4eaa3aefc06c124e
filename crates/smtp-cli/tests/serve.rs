//! `smtp serve` driven from outside: the built binary on 127.0.0.1 port 0, against
//! Python's smtplib, swaks, lettre and a raw socket. Each test starts its own server and
//! stops it with SIGTERM. python3 and swaks are required: a missing one fails the test
//! (`./test.sh` installs them).
//!
//! Every scenario runs on both adapters: `tokio_io::NAME` with `--io tokio`,
//! `blocking_io::NAME` with `--io blocking`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::process::terminate;
use support::serve::{Serve, ServeCommand};

const HOSTNAME: &str = "mx.test.example";
/// Clear text, a fast hash, and Dovecot passwd-file lines with slow hashes (made by
/// Apache's `htpasswd -B` and argon2-cffi: "battery staple" and "correct horse").
const USERS: &str = "tim:tanstaaf\n# a comment\nbob:{SHA256}32sHF2qbF8xMmvwle9QEcy59CbdkNseJD3t74U5Xl5Q=\n\
carol:{BLF-CRYPT}$2y$05$QqRlEqfZx6e5.hEU4f2NSes.QFOQoAQDFL/YDRZEn6zD7e/n7/vJ6:1000:1000::/home/carol::\n\
dave@example.org:{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$rDZ/g1x3Zbwr5+pj6YP7tw$792Pa4rDa2XgmV2py84jAcsn2qUAgBfmCvw6GDMkPHc::::::\n";

/// A running `smtp serve` and its temporary directory (Maildir, auth file, log).
struct Server {
    serve: Serve,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `smtp serve --io IO` on a free port with a Maildir and an auth file in a
    /// temporary directory (`{auth}` in `args` stands for the auth file's path).
    fn start(io: &str, args: &[&str]) -> Server {
        Server::start_in(io, args, tempfile::tempdir().unwrap())
    }

    /// [`Server::start`] in a directory that may hold an earlier server's Maildir.
    fn start_in(io: &str, args: &[&str], dir: tempfile::TempDir) -> Server {
        let auth = dir.path().join("users");
        std::fs::write(&auth, USERS).unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{auth}", auth.to_str().unwrap()))
            .collect();
        let serve = ServeCommand::loopback(io, HOSTNAME)
            .arg("--maildir")
            .arg(dir.path().join("maildir"))
            .args(&args)
            .stderr_to(dir.path().join("stderr"))
            .start();
        Server { serve, dir }
    }

    fn port(&self) -> u16 {
        self.serve.port()
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// The stored messages, oldest first (by the `Q<seq>` part of the Maildir name).
    fn stored(&self) -> Vec<Vec<u8>> {
        let seq = |p: &PathBuf| -> u64 {
            let name = p.file_name().unwrap().to_str().unwrap();
            let q = &name[name.find('Q').unwrap() + 1..];
            q[..q.find('.').unwrap()].parse().unwrap()
        };
        let mut paths = files(&self.maildir().join("new"));
        paths.sort_by_key(seq);
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    fn stderr(&self) -> String {
        self.serve.log()
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(self) -> ExitStatus {
        self.serve.stop()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs a scenario of `tests/python/client.py`; panics with its output on failure.
fn python(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is required for these tests (CI installs it)");
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs swaks; returns its transcript, panics on failure.
fn swaks(port: u16, args: &[&str]) -> String {
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--helo", "client.example", "--from", "alice@example.org"])
        .args(args)
        .output()
        .expect("swaks is required for these tests (CI installs it: apt-get install swaks)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "swaks {args:?} failed:\n{text}");
    text
}

/// The message `client.py` sends.
const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: 8-bit test\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
caf\xc3\xa9 \xe2\x82\xac \xff\xfe raw octets\r\n\
.a line that starts with a dot\r\n\
..and one with two\r\n\
\r\n\
last line\r\n";

/// Checks a stored file byte for byte: the prepended lines, the Received header (its id
/// and date vary), then the message exactly as sent.
fn check_stored(file: &[u8], from: &str, to: &[&str], with: &str, body: &[u8]) {
    let mut expected = format!("Return-Path: <{from}>\r\n");
    for rcpt in to {
        expected.push_str(&format!("Delivered-To: <{rcpt}>\r\n"));
    }
    expected.push_str(&format!(
        "Received: from client.example ([127.0.0.1])\r\n\tby {HOSTNAME} with {with} id "
    ));
    let text = String::from_utf8_lossy(file);
    assert!(
        file.starts_with(expected.as_bytes()),
        "stored file starts with\n{expected}\n---- got ----\n{text}"
    );
    let rest = &file[expected.len()..];
    let id_end = rest
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap();
    assert!(id_end > 0, "a queue id");
    let rest = &rest[id_end..];
    let for_clause = match to {
        [only] => format!("\r\n\tfor <{only}>"),
        _ => String::new(),
    };
    let rest = rest
        .strip_prefix(format!("{for_clause};\r\n\t").as_bytes())
        .unwrap_or_else(|| panic!("Received header ends with the date:\n{text}"));
    let date_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
    let date = std::str::from_utf8(&rest[..date_end]).unwrap();
    assert!(
        date.ends_with(" +0000") && date.contains(':'),
        "RFC 5322 date: {date}"
    );
    assert_eq!(
        &rest[date_end + 2..],
        body,
        "the message exactly as sent, after dot-unstuffing"
    );
}

// ---- Python smtplib ----------------------------------------------------------------

fn python_plain_8bit_multiple_recipients_byte_for_byte(io: &str) {
    let server = Server::start(io, &[]);
    python(&["plain", &server.port().to_string()]);
    let stored = server.stored();
    assert_eq!(stored.len(), 1);
    check_stored(
        &stored[0],
        "alice@example.org",
        &["bob@example.org", "carol@example.org"],
        "ESMTP",
        MESSAGE,
    );
    assert!(files(&server.maildir().join("tmp")).is_empty());
    assert!(server.maildir().join("cur").is_dir());
    let log = server.stderr();
    assert!(log.contains("message stored"), "{log}");
    // At info, Postfix-style and the same on both adapters: connect, one summary line for
    // the message, disconnect; the accepted commands only at debug.
    let summary = "message from=<alice@example.org> to=<bob@example.org>,<carol@example.org> size=";
    assert!(log.contains(summary), "{log}");
    assert!(log.contains("tls=no: 250 2.0.0 Ok: queued as "), "{log}");
    assert!(
        log.contains("connected") && log.contains("disconnected"),
        "{log}"
    );
    assert!(
        !log.contains("MAIL FROM:") && !log.contains("RCPT TO:"),
        "{log}"
    );
    assert!(server.stop().success());
}

fn python_starttls(io: &str) {
    let server = Server::start(io, &[]);
    python(&["starttls", &server.port().to_string()]);
    let stored = server.stored();
    check_stored(
        &stored[0],
        "alice@example.org",
        &["bob@example.org"],
        "ESMTPS",
        MESSAGE,
    );
    assert!(server.stop().success());
}

fn python_auth_plain_login_cram_md5(io: &str) {
    let server = Server::start(io, &["--auth-file", "{auth}"]);
    let port = server.port().to_string();
    python(&["plain_auth_needs_tls", &port]);
    python(&["auth", &port, "PLAIN", "tim", "tanstaaf", "tls"]);
    python(&["auth", &port, "LOGIN", "tim", "tanstaaf", "tls"]);
    python(&["auth", &port, "CRAM-MD5", "tim", "tanstaaf", "plain"]);
    // A hashed password (SHA-256 of "builder") works with PLAIN.
    python(&["auth", &port, "PLAIN", "bob", "builder", "tls"]);
    let stored = server.stored();
    assert_eq!(stored.len(), 4);
    for (file, with) in stored
        .iter()
        .zip(["ESMTPSA", "ESMTPSA", "ESMTPA", "ESMTPSA"])
    {
        check_stored(
            file,
            "alice@example.org",
            &["bob@example.org"],
            with,
            MESSAGE,
        );
    }
    let log = server.stderr();
    assert!(
        log.contains("tls=no user=\"tim\": 250 2.0.0 Ok: queued as"),
        "{log}"
    );
    assert!(!log.contains("tanstaaf"), "no password in the log");
    assert!(
        !log.contains("AHRpbQB0YW5zdGFhZg"),
        "no AUTH payload in the log"
    );
    assert!(server.stop().success());
}

fn python_auth_slow_hashes_and_the_weak_password_warning(io: &str) {
    let server = Server::start(io, &["--auth-file", "{auth}"]);
    let port = server.port().to_string();
    python(&["auth", &port, "PLAIN", "carol", "battery staple", "tls"]);
    python(&[
        "auth",
        &port,
        "LOGIN",
        "dave@example.org",
        "correct horse",
        "tls",
    ]);
    assert_eq!(server.stored().len(), 2);
    // CRAM-MD5 is offered (tim's password is in clear) but cannot check a hash.
    let mut c = TcpStream::connect(server.serve.addr()).unwrap();
    let reply = ehlo(&mut c);
    assert!(reply.contains("AUTH CRAM-MD5\r\n"), "{reply}");
    c.write_all(b"AUTH CRAM-MD5\r\n").unwrap();
    assert!(read_line(&mut c).starts_with("334 "));
    c.write_all(b"Y2Fyb2wgMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\r\n")
        .unwrap();
    assert!(read_line(&mut c).starts_with("535 5.7.8 "));
    let log = server.stderr();
    assert!(
        log.contains(
            "--auth-file: passwords in clear text or behind a fast hash, which a stolen file \
             gives up quickly, for 2 of 4 users: \"bob\" (SHA256), \"tim\" (clear text); \
             ARGON2ID, SHA512-CRYPT and BLF-CRYPT are slow hashes (CRAM-MD5 still needs the \
             password in clear text)"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "--auth-file: CRAM-MD5 works only for passwords in clear text (1 of 4 users); \
             the others can use PLAIN and LOGIN"
        ),
        "{log}"
    );
    assert!(!log.contains("battery staple"), "{log}");
    drop(c);
    assert!(server.stop().success());
}

fn hashed_passwords_only_no_cram_md5_no_warning(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("dovecot-users");
    let hashed: String = USERS.lines().skip(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&users, hashed).unwrap();
    let server = Server::start(
        io,
        &[
            "--auth-file",
            users.to_str().unwrap(),
            "--no-tls",
            "--allow-insecure-auth",
        ],
    );
    let mut c = TcpStream::connect(server.serve.addr()).unwrap();
    let reply = ehlo(&mut c);
    assert!(
        reply.contains("AUTH PLAIN LOGIN\r\n"),
        "no CRAM-MD5: {reply}"
    );
    // PLAIN for carol with "battery staple".
    c.write_all(b"AUTH PLAIN AGNhcm9sAGJhdHRlcnkgc3RhcGxl\r\n")
        .unwrap();
    assert_eq!(read_line(&mut c), "235 2.7.0 Authentication successful\r\n");
    let log = server.stderr();
    assert!(!log.contains("a stolen file"), "{log}");
    assert!(
        log.contains("--auth-file: no password in clear text, so CRAM-MD5 is not offered"),
        "{log}"
    );
    drop(c);
    assert!(server.stop().success());
}

fn python_auth_insecure_allowed(io: &str) {
    let server = Server::start(
        io,
        &["--auth-file", "{auth}", "--allow-insecure-auth", "--no-tls"],
    );
    python(&[
        "auth",
        &server.port().to_string(),
        "PLAIN",
        "tim",
        "tanstaaf",
        "plain",
    ]);
    check_stored(
        &server.stored()[0],
        "alice@example.org",
        &["bob@example.org"],
        "ESMTPA",
        MESSAGE,
    );
    assert!(server.stop().success());
}

fn python_relay_policy(io: &str) {
    let server = Server::start(
        io,
        &["--auth-file", "{auth}", "--local-domain", "Example.ORG"],
    );
    python(&["relay", &server.port().to_string(), "tim", "tanstaaf"]);
    assert_eq!(server.stored().len(), 1);
    assert!(server.stop().success());
}

fn python_require_tls_and_require_auth(io: &str) {
    let server = Server::start(io, &["--require-tls"]);
    python(&["require", &server.port().to_string(), "STARTTLS"]);
    assert!(server.stop().success());
    let server = Server::start(io, &["--auth-file", "{auth}", "--require-auth"]);
    python(&["require", &server.port().to_string(), "AUTH"]);
    assert!(server.stop().success());
}

fn python_lmtp(io: &str) {
    let server = Server::start(io, &["--lmtp"]);
    python(&["lmtp", &server.port().to_string()]);
    check_stored(
        &server.stored()[0],
        "alice@example.org",
        &["bob@example.org", "carol@example.org"],
        "LMTP",
        MESSAGE,
    );
    assert!(server.stop().success());
}

fn python_max_size(io: &str) {
    let server = Server::start(io, &["--max-size", "1000"]);
    python(&["too_big", &server.port().to_string()]);
    assert!(server.stored().is_empty());
    assert!(server.stop().success());
}

// ---- swaks -----------------------------------------------------------------------------

fn swaks_starttls_auth_and_pipelining(io: &str) {
    let server = Server::start(io, &["--auth-file", "{auth}"]);
    let port = server.port();
    let t = swaks(port, &["--to", "bob@example.org", "--tls"]);
    assert!(t.contains("<-  220 2.0.0 Ready to start TLS"), "{t}");
    assert!(t.contains("=== TLS started"), "{t}");
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        let t = swaks(
            port,
            &[
                "--to",
                "bob@example.org",
                "--tls",
                "--auth",
                mech,
                "--auth-user",
                "tim",
                "--auth-password",
                "tanstaaf",
            ],
        );
        assert!(t.contains("235 2.7.0 Authentication successful"), "{t}");
    }
    // PIPELINING (RFC 2920): MAIL, RCPT, RCPT and DATA in one write.
    let t = swaks(
        port,
        &[
            "--to",
            "bob@example.org,carol@example.org",
            "--pipeline",
            "--body",
            "pipelined\r\n",
        ],
    );
    assert!(t.contains("250 2.0.0 Ok: queued as"), "{t}");
    assert!(t.contains(" -> DATA\n<-  250 2.1.0 Ok\n"), "pipelined: {t}");
    let stored = server.stored();
    assert_eq!(stored.len(), 5);
    assert!(
        stored[4].windows(15).any(|w| w == b"\r\n\r\npipelined\r\n"),
        "{:?}",
        String::from_utf8_lossy(&stored[4])
    );
    assert!(server.stop().success());
}

fn swaks_implicit_tls(io: &str) {
    let server = Server::start(io, &["--implicit-tls", "127.0.0.1:0"]);
    // The second listener, printed with ` (implicit tls)`.
    let addr = server.serve.implicit_tls[0];
    let t = swaks(addr.port(), &["--to", "bob@example.org", "--tlsc"]);
    assert!(t.contains("250 2.0.0 Ok: queued as"), "{t}");
    assert_eq!(server.stored().len(), 1);
    assert!(server.stop().success());
}

// ---- lettre ------------------------------------------------------------------------------

fn lettre_sends_to_smtp_serve(io: &str) {
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::{Message, SmtpTransport, Transport};
    let server = Server::start(
        io,
        &["--auth-file", "{auth}", "--allow-insecure-auth", "--no-tls"],
    );
    let email = Message::builder()
        .from("Alice <alice@example.org>".parse().unwrap())
        .to("Bob <bob@example.org>".parse().unwrap())
        .subject("from lettre")
        .body(String::from("Hello from lettre, café.\r\n.dot\r\n"))
        .unwrap();
    let transport = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .hello_name(lettre::transport::smtp::extension::ClientId::Domain(
            "client.example".into(),
        ))
        .credentials(Credentials::new("tim".into(), "tanstaaf".into()))
        .authentication(vec![Mechanism::Plain])
        .build();
    let response = transport.send(&email).unwrap();
    assert!(response.is_positive());
    let stored = server.stored();
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&stored[0]);
    assert!(
        text.starts_with("Return-Path: <alice@example.org>\r\nDelivered-To: <bob@example.org>\r\n"),
        "{text}"
    );
    assert!(text.contains("with ESMTPA id"), "{text}");
    assert!(text.contains("Subject: from lettre\r\n"), "{text}");
    assert!(server.stop().success());
}

// ---- the command itself ------------------------------------------------------------------

/// Reads one reply line from a raw socket.
fn read_line(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8];
    while !out.ends_with(b"\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => out.push(byte[0]),
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8(out).unwrap()
}

/// Reads the greeting, sends EHLO and returns its reply.
fn ehlo(s: &mut TcpStream) -> String {
    assert!(read_line(s).starts_with("220 "));
    s.write_all(b"EHLO client.example\r\n").unwrap();
    let mut reply = String::new();
    loop {
        let line = read_line(s);
        reply.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

/// Reads one reply, every line of it.
fn read_reply(s: &mut TcpStream) -> String {
    let mut reply = String::new();
    loop {
        let line = read_line(s);
        reply.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

/// Sends each command and reads its reply; after `DATA` sends `body` and the final dot.
/// Returns the replies in order, the greeting first.
fn converse(s: &mut TcpStream, commands: &[&str], body: &[u8]) -> Vec<String> {
    let mut replies = vec![read_reply(s)];
    for cmd in commands {
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        replies.push(read_reply(s));
        if *cmd == "DATA" {
            s.write_all(body).unwrap();
            s.write_all(b".\r\n").unwrap();
            replies.push(read_reply(s));
        }
    }
    replies
}

/// Every file under `dir`, as paths relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap();
                out.push(rel.to_str().unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

/// The one file in a Maildir's `new/` (and nothing in its `tmp/`).
fn only_file(maildir: &Path) -> Vec<u8> {
    assert!(
        files(&maildir.join("tmp")).is_empty(),
        "{}",
        maildir.display()
    );
    assert!(maildir.join("cur").is_dir());
    let new = files(&maildir.join("new"));
    assert_eq!(new.len(), 1, "{}: {new:?}", maildir.display());
    std::fs::read(&new[0]).unwrap()
}

const BODY: &[u8] = b"Subject: per recipient\r\nBcc: carol@other.example\r\n\r\nHello.\r\n";

/// What a copy for `to` holds, id and date aside.
fn copy_for(to: &str, with: &str) -> Vec<u8> {
    let head = format!(
        "Return-Path: <alice@example.org>\r\nDelivered-To: {to}\r\n\
         Received: from client.example ([127.0.0.1])\r\n\tby {HOSTNAME} with {with} id ID\r\n\t\
         for {to};\r\n\tDATE\r\n"
    );
    [head.as_bytes(), BODY].concat()
}

fn maildir_per_recipient_one_copy_each(io: &str) {
    let server = Server::start(io, &["--maildir-per-recipient", "--no-tls"]);
    let mut c = TcpStream::connect(server.serve.addr()).unwrap();
    let replies = converse(
        &mut c,
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.org>",
            "RCPT TO:<Carol@Other.EXAMPLE>",
            "RCPT TO:<bob@example.org>",
            "DATA",
            "QUIT",
        ],
        BODY,
    );
    assert!(
        replies[7].starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
    let md = server.maildir();
    assert_eq!(
        tree(&md).iter().filter(|f| f.contains("/new/")).count(),
        2,
        "one file per distinct recipient: {:?}",
        tree(&md)
    );
    assert!(!md.join("tmp").exists(), "no Maildir of its own at the top");
    let bob = only_file(&md.join("example.org/bob"));
    let carol = only_file(&md.join("other.example/Carol"));
    let show = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
    assert_eq!(
        show(&without_id_and_date(&bob)),
        show(&copy_for("<bob@example.org>", "ESMTP"))
    );
    assert_eq!(
        show(&without_id_and_date(&carol)),
        show(&copy_for("<Carol@Other.EXAMPLE>", "ESMTP"))
    );
    let log = server.stderr();
    assert!(log.contains("mailbox=example.org/bob"), "{log}");
    drop(c);
    assert!(server.stop().success());
}

fn maildir_per_recipient_hostile_local_parts_stay_inside(io: &str) {
    let server = Server::start(io, &["--maildir-per-recipient", "--no-tls"]);
    let mut c = TcpStream::connect(server.serve.addr()).unwrap();
    let rcpts = [
        r#"<"../../../escape"@example.org>"#,
        r#"<".."@example.org>"#,
        r#"<".profile"@example.org>"#,
        r#"<"a/b\\c"@Example.Org>"#,
        "<jörg@Bücher.example>",
        "<Postmaster>",
        &format!("<{}@example.org>", "x".repeat(64)),
    ];
    let mut commands = vec![
        "EHLO client.example".to_owned(),
        "MAIL FROM:<alice@example.org> SMTPUTF8".to_owned(),
    ];
    commands.extend(rcpts.iter().map(|r| format!("RCPT TO:{r}")));
    commands.push("DATA".to_owned());
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    let replies = converse(&mut c, &commands, BODY);
    for (rcpt, reply) in rcpts.iter().zip(&replies[3..]) {
        assert!(reply.starts_with("250 "), "{rcpt}: {reply}");
    }
    assert!(
        replies
            .last()
            .unwrap()
            .starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
    let md = server.maildir();
    let long = format!("example.org/{}", "x".repeat(64));
    for (rcpt, mailbox) in rcpts.iter().zip([
        "example.org/%2E.%2F..%2F..%2Fescape",
        "example.org/%2E.",
        "example.org/%2Eprofile",
        "example.org/a%2Fb%5Cc",
        "bücher.example/jörg",
        "mx.test.example/postmaster",
        &long,
    ]) {
        let copy = only_file(&md.join(mailbox));
        assert_eq!(
            String::from_utf8_lossy(&without_id_and_date(&copy)),
            String::from_utf8_lossy(&copy_for(rcpt, "UTF8SMTP")),
            "{rcpt} in {mailbox}"
        );
    }
    // Nothing outside the Maildir: the temporary directory holds only what the test
    // put there and the Maildir.
    let top: Vec<String> = tree(server.dir.path())
        .into_iter()
        .filter(|f| !f.starts_with("maildir/"))
        .collect();
    assert_eq!(top, ["stderr", "users"]);
    assert_eq!(tree(&md).len(), rcpts.len());
    drop(c);
    assert!(server.stop().success());
}

fn maildir_per_recipient_lmtp_replies_per_copy(io: &str) {
    let server = Server::start(io, &["--maildir-per-recipient", "--no-tls", "--lmtp"]);
    // bob's Maildir cannot be made: a file is in the way.
    let md = server.maildir();
    std::fs::create_dir_all(md.join("example.org")).unwrap();
    std::fs::write(md.join("example.org/bob"), b"in the way").unwrap();
    let mut c = TcpStream::connect(server.serve.addr()).unwrap();
    let replies = converse(
        &mut c,
        &[
            "LHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<carol@other.example>",
            "RCPT TO:<bob@example.org>",
            "DATA",
        ],
        BODY,
    );
    // An LMTP server says so in its greeting, as Cyrus and Dovecot do.
    assert!(
        replies[0].starts_with(&format!("220 {HOSTNAME} LMTP")),
        "{replies:?}"
    );
    assert!(
        replies[6].starts_with("250 2.0.0 Ok: queued as "),
        "carol first: {replies:?}"
    );
    assert_eq!(
        read_reply(&mut c),
        "451 4.3.0 Error: local error in processing: storage failure\r\n",
        "then bob"
    );
    let carol = only_file(&md.join("other.example/carol"));
    assert_eq!(
        String::from_utf8_lossy(&without_id_and_date(&carol)),
        String::from_utf8_lossy(&copy_for("<carol@other.example>", "LMTP"))
    );
    drop(c);
    assert!(server.stop().success());
    // SMTP: the same failure fails the whole message, and no copy is left behind.
    let server2 = Server::start(io, &["--maildir-per-recipient", "--no-tls"]);
    let md2 = server2.maildir();
    std::fs::create_dir_all(md2.join("example.org")).unwrap();
    std::fs::write(md2.join("example.org/bob"), b"in the way").unwrap();
    let mut c = TcpStream::connect(server2.serve.addr()).unwrap();
    let replies = converse(
        &mut c,
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<carol@other.example>",
            "RCPT TO:<bob@example.org>",
            "DATA",
        ],
        BODY,
    );
    assert_eq!(
        replies[6],
        "451 4.3.0 Error: local error in processing: storage failure\r\n"
    );
    assert_eq!(
        tree(&md2),
        ["example.org/bob"],
        "carol's copy not kept either"
    );
    drop(c);
    assert!(server2.stop().success());
}

fn max_connections_and_timeout(io: &str) {
    let server = Server::start(io, &["--max-connections", "1", "--timeout", "1"]);
    let addr = server.serve.addr();
    let mut first = TcpStream::connect(addr).unwrap();
    assert_eq!(read_line(&mut first), format!("220 {HOSTNAME} ESMTP\r\n"));
    let mut second = TcpStream::connect(addr).unwrap();
    assert_eq!(
        read_line(&mut second),
        format!("421 4.3.2 {HOSTNAME} Error: too many connections\r\n")
    );
    assert_eq!(read_line(&mut second), "");
    // The idle first session times out after a second.
    assert_eq!(
        read_line(&mut first),
        format!("421 4.4.2 {HOSTNAME} Error: timeout exceeded\r\n")
    );
    assert!(server.stop().success());
}

/// Sends a message's first bytes and leaves it unfinished.
fn start_data(c: &mut TcpStream) {
    read_line(c);
    for cmd in [
        "EHLO client.example",
        "MAIL FROM:<a@example.org>",
        "RCPT TO:<b@example.org>",
        "DATA",
    ] {
        c.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        loop {
            let line = read_line(c);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
    c.write_all(b"Subject: half\r\n\r\nhalf a mess").unwrap();
}

fn sigterm_mid_data_leaves_nothing_behind(io: &str) {
    let server = Server::start(io, &["--shutdown-timeout", "1"]);
    let mut c = TcpStream::connect(server.serve.addr()).unwrap();
    start_data(&mut c);
    std::thread::sleep(Duration::from_millis(200));
    let maildir = server.maildir();
    assert_eq!(
        files(&maildir.join("tmp")).len(),
        1,
        "being written in tmp/"
    );
    // SIGTERM: the open session gets its grace period, then 421; the exit is clean.
    let started = Instant::now();
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(read_line(&mut c).starts_with("421 4.3.2 "));
    assert!(files(&maildir.join("tmp")).is_empty(), "tmp/ cleaned");
    assert!(
        files(&maildir.join("new")).is_empty(),
        "nothing half-written in new/"
    );
}

fn kill_9_mid_data_leftovers_cleaned_at_next_start(io: &str) {
    let mut first = Server::start(io, &[]);
    let mut c = TcpStream::connect(first.serve.addr()).unwrap();
    start_data(&mut c);
    std::thread::sleep(Duration::from_millis(200));
    let tmp = first.maildir().join("tmp");
    let leftover = files(&tmp);
    assert_eq!(leftover.len(), 1, "being written in tmp/");
    first.serve.kill(); // SIGKILL: no chance to clean up
    assert_eq!(files(&tmp), leftover, "kill -9 leaves the file in tmp/");
    let dir = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    // Another program's files: one 37 hours old, one fresh; and an own-named file
    // 20 hours old from a process that is not running.
    let now = std::time::SystemTime::now();
    let put = |name: &str, hours: u64| {
        let f = std::fs::File::create(tmp.join(name)).unwrap();
        f.set_modified(now - Duration::from_secs(hours * 3600))
            .unwrap();
    };
    put("1700000000.V801I1234M567.other.example", 37);
    put("1700000000.M1P2.mx.test.example", 0);
    put("1700000000.M1P4294967295Q9.mx.test.example", 20);
    let second = Server::start_in(io, &[], dir);
    assert_eq!(
        files(&tmp),
        [tmp.join("1700000000.M1P2.mx.test.example")],
        "only the fresh foreign file stays"
    );
    let log = second.stderr();
    assert!(
        log.contains("leftovers of earlier runs removed from tmp/") && log.contains("removed=3"),
        "{log}"
    );
    assert!(second.stop().success());
}

fn sigint_shuts_down_gracefully(io: &str) {
    let mut server = Server::start(io, &["--no-tls"]);
    server.serve.signal("INT");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.serve.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{io}: still running after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let log = server.stderr();
    assert!(log.contains("SIGINT: shutting down"), "{log}");
}

/// Hardening bug 1: the skipped tail of an over-long line is never run as a command,
/// whether the next line arrives in the same read or later.
fn over_long_line_tail_is_not_executed(io: &str) {
    let server = Server::start(io, &["--no-tls"]);
    let mut c = TcpStream::connect(server.serve.addr()).unwrap();
    read_line(&mut c);
    let mut input = vec![b'Z'; 511];
    input.extend_from_slice(b"QUIT\r\nNOOP\r\n");
    c.write_all(&input).unwrap();
    assert_eq!(read_line(&mut c), "500 5.5.2 Error: line too long\r\n");
    assert_eq!(read_line(&mut c), "250 2.0.0 Ok\r\n");
    // The tail and the next command in separate writes.
    c.write_all(&[b'Y'; 700]).unwrap();
    assert_eq!(read_line(&mut c), "500 5.5.2 Error: line too long\r\n");
    c.write_all(b"RCPT TO:<evil@example.net>\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"RSET\r\n").unwrap();
    assert_eq!(read_line(&mut c), "250 2.0.0 Ok\r\n");
    c.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(read_line(&mut c), "221 2.0.0 Bye\r\n");
    assert!(server.stop().success());
}

/// Sends `cmd` and reads its reply (all lines of it); the last line.
fn command(c: &mut TcpStream, cmd: &str) -> String {
    c.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    loop {
        let line = read_line(c);
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

/// During the shutdown grace period only a transaction already open goes on: a session
/// between transactions gets `421 4.3.2` at once, and the one that finishes its message
/// gets it right after the final reply instead of starting another.
fn shutdown_spares_only_open_transactions(io: &str) {
    let mut server = Server::start(io, &["--no-tls", "--shutdown-timeout", "8"]);
    let addr = server.serve.addr();
    let mut idle = TcpStream::connect(addr).unwrap();
    read_line(&mut idle);
    assert!(command(&mut idle, "EHLO idle.example").starts_with("250 "));
    let mut busy = TcpStream::connect(addr).unwrap();
    read_line(&mut busy);
    assert!(command(&mut busy, "EHLO busy.example").starts_with("250 "));
    assert_eq!(
        command(&mut busy, "MAIL FROM:<a@example.org>"),
        "250 2.1.0 Ok\r\n"
    );
    server.serve.signal("TERM");
    let started = Instant::now();
    let bye =
        format!("421 4.3.2 {HOSTNAME} Service shutting down, closing transmission channel\r\n");
    assert_eq!(read_line(&mut idle), bye);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(read_line(&mut idle), "", "closed after the 421");
    assert_eq!(
        command(&mut busy, "RCPT TO:<b@example.org>"),
        "250 2.1.5 Ok\r\n"
    );
    assert!(command(&mut busy, "DATA").starts_with("354 "));
    let done = command(
        &mut busy,
        "Subject: last\r\n\r\nfinished in the grace period\r\n.",
    );
    assert!(done.starts_with("250 2.0.0 "), "{done}");
    assert_eq!(
        read_line(&mut busy),
        bye,
        "no new transaction after the last"
    );
    let status = loop {
        if let Some(status) = server.serve.try_wait() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let stored = server.stored();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].ends_with(b"\r\n\r\nfinished in the grace period\r\n"));
}

/// Postfix's anvil: connections at once from one client, and AUTH failures per client
/// within ten minutes, across sessions.
fn per_client_limits(io: &str) {
    let server = Server::start(
        io,
        &[
            "--no-tls",
            "--auth-file",
            "{auth}",
            "--allow-insecure-auth",
            "--max-connections-per-ip",
            "2",
            "--max-auth-failures-per-ip",
            "2",
        ],
    );
    let addr = server.serve.addr();
    let greeting = format!("220 {HOSTNAME} ESMTP\r\n");
    let mut first = TcpStream::connect(addr).unwrap();
    assert_eq!(read_line(&mut first), greeting);
    let mut second = TcpStream::connect(addr).unwrap();
    assert_eq!(read_line(&mut second), greeting);
    let mut third = TcpStream::connect(addr).unwrap();
    assert_eq!(
        read_line(&mut third),
        format!("421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1\r\n")
    );
    assert_eq!(read_line(&mut third), "", "closed");
    // A slot given back (once the connection is closed) is free again.
    assert_eq!(command(&mut second, "QUIT"), "221 2.0.0 Bye\r\n");
    drop(second);
    let started = Instant::now();
    let mut again = loop {
        let mut c = TcpStream::connect(addr).unwrap();
        if read_line(&mut c) == greeting {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slot not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Two failures from this client, then even the right password is refused, in this
    // session and in the next.
    assert!(command(&mut first, "EHLO client.example").starts_with("250 "));
    for _ in 0..2 {
        assert_eq!(
            command(&mut first, "AUTH PLAIN AHRpbQB3cm9uZw=="),
            "535 5.7.8 Authentication credentials invalid\r\n"
        );
    }
    let blocked =
        "454 4.7.0 Temporary authentication failure: too many failed attempts from 127.0.0.1\r\n";
    assert_eq!(
        command(&mut first, "AUTH PLAIN AHRpbQB0YW5zdGFhZg=="),
        blocked
    );
    assert!(command(&mut again, "EHLO client.example").starts_with("250 "));
    assert_eq!(
        command(&mut again, "AUTH PLAIN AHRpbQB0YW5zdGFhZg=="),
        blocked
    );
    assert!(server.stop().success());
}

/// Under a low open-file limit, `--max-connections` is lowered to what the limit holds
/// (said at start), so that every client over it still gets `421 4.3.2` rather than
/// nothing (accept failing with EMFILE).
fn low_open_file_limit(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "ulimit -n 256 && exec '{}' serve --io {io} --listen 127.0.0.1:0 --hostname {HOSTNAME} \
         --no-tls --discard --max-connections-per-ip 0",
        env!("CARGO_BIN_EXE_smtp")
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(
        stderr.contains(
            "smtp serve: --max-connections 1000 lowered to 42: the open-file limit is 256 (ulimit -n)"
        ),
        "{stderr}"
    );
    let mut clients = Vec::new();
    let (mut greeted, mut refused) = (0, 0);
    for _ in 0..150 {
        let mut c = TcpStream::connect(addr).unwrap();
        let first = read_line(&mut c);
        if first == format!("220 {HOSTNAME} ESMTP\r\n") {
            greeted += 1;
            clients.push(c);
        } else {
            assert_eq!(
                first,
                format!("421 4.3.2 {HOSTNAME} Error: too many connections\r\n")
            );
            refused += 1;
        }
    }
    assert_eq!((greeted, refused), (42, 108));
    drop(clients);
    terminate(&mut child);
}

#[test]
fn usage_and_config_errors_are_the_same_on_both_adapters() {
    let smtp = env!("CARGO_BIN_EXE_smtp");
    let run = |args: &[&str]| Command::new(smtp).args(args).output().unwrap();
    for args in [
        &["serve", "--io", "nope"][..],
        &["serve", "--no-such-flag"][..],
        &["serve", "--no-tls", "--require-tls"][..],
        &["serve", "--discard", "--maildir-per-recipient"][..],
        &["serve", "--log-format", "xml"][..],
    ] {
        assert_eq!(run(args).status.code(), Some(64), "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    for io in ["tokio", "blocking"] {
        let out = run(&["serve", "--io", io, "--hostname", "not a name", "--no-tls"]);
        assert_eq!(out.status.code(), Some(64), "{io}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("smtp serve: --hostname not a name: ")
        );
        let maildir = maildir.to_str().unwrap();
        let out = run(&[
            "serve",
            "--io",
            io,
            "--no-tls",
            "--maildir",
            maildir,
            "--listen",
            &busy,
        ]);
        assert_eq!(out.status.code(), Some(78), "{io}: an address in use");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("smtp serve: cannot listen on {busy}: ")),
            "{io}: {stderr}"
        );
        assert!(out.stdout.is_empty());
        // Under --log-format json the reason is a JSON log object too, nothing else.
        let out = run(&[
            "serve",
            "--io",
            io,
            "--no-tls",
            "--maildir",
            maildir,
            "--listen",
            &busy,
            "--log-format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(78), "{io}: an address in use");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{io}: {e}: {l}")))
            .collect();
        let last = lines.last().expect("a log line");
        assert_eq!(last["level"], "ERROR", "{io}: {stderr}");
        let message = last["fields"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("cannot listen on {busy}: ")),
            "{io}: {stderr}"
        );
    }
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}

/// `--log-format json`: every stderr line is one JSON object with the level, the message
/// and the session span's fields; no password, right or wrong, appears in the log.
fn json_logs(io: &str) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let server = Server::start(
        io,
        &[
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--auth-file",
            "{auth}",
            "--allow-insecure-auth",
            "--no-tls",
        ],
    );
    let mut c = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let wrong = format!("AUTH PLAIN {}", b64("\0tim\0Wr0ngHorse"));
    let right = format!("AUTH PLAIN {}", b64("\0tim\0tanstaaf"));
    let replies = converse(
        &mut c,
        &[
            "EHLO client.example",
            &wrong,
            &right,
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.org>",
            "DATA",
            "QUIT",
        ],
        MESSAGE,
    );
    assert!(replies[2].starts_with("535 "), "{replies:?}");
    assert!(replies[3].starts_with("235 "), "{replies:?}");
    assert!(replies[7].starts_with("250 "), "{replies:?}");
    drop(c);
    assert_eq!(server.stored().len(), 1);
    // Stopped but kept: the log is in the server's temporary directory.
    let mut server = server;
    assert!(server.serve.terminate().is_some_and(|s| s.success()));
    let log = server.stderr();
    assert!(!log.is_empty());
    let mut in_session = 0;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
        if v["span"]["name"] == "session" {
            assert!(
                v["span"]["id"].is_string() || v["span"]["id"].is_u64(),
                "{line}"
            );
            let peer = v["span"]["peer"].as_str().expect(line);
            assert!(peer.starts_with("127.0.0.1:"), "{line}");
            in_session += 1;
        }
    }
    assert!(in_session > 0, "some lines in the session span:\n{log}");
    for secret in ["tanstaaf", "Wr0ngHorse", &right[11..], &wrong[11..]] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// A stored file with its queue id and date (which vary per message) replaced.
fn without_id_and_date(file: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(file);
    let id = text.find(" id ").expect("a queue id") + 4;
    let id_end = id
        + text[id..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap();
    let date = id_end + text[id_end..].find(";\r\n\t").expect("a date") + 4;
    let date_end = date + text[date..].find("\r\n").unwrap();
    [
        &file[..id],
        b"ID",
        &file[id_end..date],
        b"DATE",
        &file[date_end..],
    ]
    .concat()
}

#[test]
fn stored_files_are_the_same_on_both_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.eml");
    let mut big_message = b"Subject: big\r\n\r\n".to_vec();
    for i in 0..5000 {
        big_message.extend_from_slice(format!(".{i:05} café {}\r\n", "x".repeat(60)).as_bytes());
    }
    std::fs::write(&big, &big_message).unwrap();
    let mut stored = Vec::new();
    for io in ["tokio", "blocking"] {
        let server = Server::start(io, &["--auth-file", "{auth}"]);
        let port = server.port().to_string();
        python(&["plain", &port]);
        python(&["auth", &port, "LOGIN", "tim", "tanstaaf", "tls"]);
        let files: Vec<Vec<u8>> = server
            .stored()
            .iter()
            .map(|f| without_id_and_date(f))
            .collect();
        assert_eq!(files.len(), 2);
        stored.push(files);
        assert!(server.stop().success());
    }
    assert!(stored[0][0].ends_with(MESSAGE));
    assert!(
        stored[0] == stored[1],
        "tokio:\n{}\nblocking:\n{}",
        String::from_utf8_lossy(&stored[0].concat()),
        String::from_utf8_lossy(&stored[1].concat())
    );
}

support::on_both!(
    python_plain_8bit_multiple_recipients_byte_for_byte,
    python_starttls,
    python_auth_plain_login_cram_md5,
    python_auth_slow_hashes_and_the_weak_password_warning,
    hashed_passwords_only_no_cram_md5_no_warning,
    python_auth_insecure_allowed,
    python_relay_policy,
    python_require_tls_and_require_auth,
    python_lmtp,
    python_max_size,
    swaks_starttls_auth_and_pipelining,
    swaks_implicit_tls,
    lettre_sends_to_smtp_serve,
    max_connections_and_timeout,
    sigterm_mid_data_leaves_nothing_behind,
    sigint_shuts_down_gracefully,
    over_long_line_tail_is_not_executed,
    shutdown_spares_only_open_transactions,
    per_client_limits,
    low_open_file_limit,
    kill_9_mid_data_leftovers_cleaned_at_next_start,
    maildir_per_recipient_one_copy_each,
    maildir_per_recipient_hostile_local_parts_stay_inside,
    maildir_per_recipient_lmtp_replies_per_copy,
    json_logs,
);

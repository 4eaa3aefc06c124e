//! `smtp serve` driven from outside: the built binary on 127.0.0.1 port 0, against
//! Python's smtplib, swaks, lettre and a raw socket. Each test starts its own server and
//! stops it with SIGTERM. python3 and swaks are required: a missing one fails the test
//! (`./test.sh` installs them).
//!
//! Every scenario runs on both adapters: `tokio_io::NAME` with `--io tokio`,
//! `blocking_io::NAME` with `--io blocking`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HOSTNAME: &str = "mx.test.example";
const USERS: &str =
    "tim:tanstaaf\n# a comment\nbob:{SHA256}32sHF2qbF8xMmvwle9QEcy59CbdkNseJD3t74U5Xl5Q=\n";

/// A running `smtp serve`.
struct Serve {
    child: Option<Child>,
    addrs: Vec<(SocketAddr, bool)>,
    dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `smtp serve --io IO` on a free port with a Maildir and an auth file in a
    /// temporary directory (`{auth}` in `args` stands for the auth file's path).
    fn start(io: &str, args: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("users");
        std::fs::write(&auth, USERS).unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{auth}", auth.to_str().unwrap()))
            .collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_smtp"))
            .args(["serve", "--io", io])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--hostname",
                HOSTNAME,
                "--maildir",
            ])
            .arg(dir.path().join("maildir"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("the smtp binary starts");
        let listeners = 1 + args.iter().filter(|a| *a == "--implicit-tls").count();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let mut addrs = Vec::new();
        for _ in 0..listeners {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("a 'listening on' line");
            let rest = line.strip_prefix("listening on ").expect(&line);
            let (addr, implicit) = match rest.strip_suffix(" (implicit tls)") {
                Some(a) => (a, true),
                None => (rest, false),
            };
            addrs.push((addr.parse().unwrap(), implicit));
        }
        Serve {
            child: Some(child),
            addrs,
            dir,
        }
    }

    fn port(&self) -> u16 {
        self.addrs[0].0.port()
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
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> ExitStatus {
        let status = terminate(self.child.as_mut().unwrap());
        self.child = None;
        status
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            terminate(child);
        }
    }
}

fn terminate(child: &mut Child) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
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
    let server = Serve::start(io, &[]);
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
    assert!(server.stop().success());
}

fn python_starttls(io: &str) {
    let server = Serve::start(io, &[]);
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
    let server = Serve::start(io, &["--auth-file", "{auth}"]);
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
        log.contains("AUTH CRAM-MD5 user=\"tim\": accepted"),
        "{log}"
    );
    assert!(!log.contains("tanstaaf"), "no password in the log");
    assert!(
        !log.contains("AHRpbQB0YW5zdGFhZg"),
        "no AUTH payload in the log"
    );
    assert!(server.stop().success());
}

fn python_auth_insecure_allowed(io: &str) {
    let server = Serve::start(
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
    let server = Serve::start(
        io,
        &["--auth-file", "{auth}", "--local-domain", "Example.ORG"],
    );
    python(&["relay", &server.port().to_string(), "tim", "tanstaaf"]);
    assert_eq!(server.stored().len(), 1);
    assert!(server.stop().success());
}

fn python_require_tls_and_require_auth(io: &str) {
    let server = Serve::start(io, &["--require-tls"]);
    python(&["require", &server.port().to_string(), "STARTTLS"]);
    assert!(server.stop().success());
    let server = Serve::start(io, &["--auth-file", "{auth}", "--require-auth"]);
    python(&["require", &server.port().to_string(), "AUTH"]);
    assert!(server.stop().success());
}

fn python_lmtp(io: &str) {
    let server = Serve::start(io, &["--lmtp"]);
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
    let server = Serve::start(io, &["--max-size", "1000"]);
    python(&["too_big", &server.port().to_string()]);
    assert!(server.stored().is_empty());
    assert!(server.stop().success());
}

// ---- swaks -----------------------------------------------------------------------------

fn swaks_starttls_auth_and_pipelining(io: &str) {
    let server = Serve::start(io, &["--auth-file", "{auth}"]);
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
    let server = Serve::start(io, &["--implicit-tls", "127.0.0.1:0"]);
    let (addr, implicit) = server.addrs[1];
    assert!(implicit);
    let t = swaks(addr.port(), &["--to", "bob@example.org", "--tlsc"]);
    assert!(t.contains("250 2.0.0 Ok: queued as"), "{t}");
    assert_eq!(server.stored().len(), 1);
    assert!(server.stop().success());
}

// ---- lettre ------------------------------------------------------------------------------

fn lettre_sends_to_smtp_serve(io: &str) {
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::{Message, SmtpTransport, Transport};
    let server = Serve::start(
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

fn max_connections_and_timeout(io: &str) {
    let server = Serve::start(io, &["--max-connections", "1", "--timeout", "1"]);
    let addr = server.addrs[0].0;
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

fn sigterm_mid_data_leaves_nothing_behind(io: &str) {
    let server = Serve::start(io, &["--shutdown-timeout", "1"]);
    let mut c = TcpStream::connect(server.addrs[0].0).unwrap();
    read_line(&mut c);
    for cmd in [
        "EHLO client.example",
        "MAIL FROM:<a@example.org>",
        "RCPT TO:<b@example.org>",
        "DATA",
    ] {
        c.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        loop {
            let line = read_line(&mut c);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
    c.write_all(b"Subject: half\r\n\r\nhalf a mess").unwrap();
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

fn sigint_shuts_down_gracefully(io: &str) {
    let mut server = Serve::start(io, &["--no-tls"]);
    let mut child = server.child.take().unwrap();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
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

#[test]
fn usage_and_config_errors_are_the_same_on_both_adapters() {
    let smtp = env!("CARGO_BIN_EXE_smtp");
    let run = |args: &[&str]| Command::new(smtp).args(args).output().unwrap();
    for args in [
        &["serve", "--io", "nope"][..],
        &["serve", "--no-such-flag"][..],
        &["serve", "--no-tls", "--require-tls"][..],
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
    }
    assert_eq!(run(&["--help"]).status.code(), Some(0));
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
        let server = Serve::start(io, &["--auth-file", "{auth}"]);
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

/// One `#[test]` per scenario and adapter.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod tokio_io {
            $(#[test] fn $name() { super::$name("tokio") })*
        }
        mod blocking_io {
            $(#[test] fn $name() { super::$name("blocking") })*
        }
    };
}

on_both!(
    python_plain_8bit_multiple_recipients_byte_for_byte,
    python_starttls,
    python_auth_plain_login_cram_md5,
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
);

//! The library examples, built and run against real peers: `std_server` (smtp-proto
//! alone) and `tokio_server` (smtp-tokio) against Python's smtplib, swaks and a raw
//! socket; `tokio_send` (smtp-tokio's client) against `smtp serve` and its self-signed
//! STARTTLS. Each test builds the example it needs with the `cargo` that runs the tests,
//! starts every server on 127.0.0.1 port 0 with its output in a temporary directory, and
//! stops it. python3 and swaks are required (`./test.sh` installs them).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use support::process::stop;

/// The message the Python scenarios send: CRLF throughout, and a line that smtplib
/// dot-stuffs and the server unstuffs, so what is stored must equal it.
const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: examples\r\n\
\r\n\
.a line that starts with a dot\r\n\
last line\r\n";

/// Builds example `name` of package `package` with the cargo running these tests, in
/// this test's target directory and profile, and returns its path.
fn example(package: &str, name: &str) -> PathBuf {
    // target/<profile>/deps/examples-<hash>: the profile directory is two levels up.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let target_dir = profile_dir.parent().unwrap();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-q", "-p", package, "--example", name])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building example {name} of {package}");
    let path = profile_dir.join("examples").join(name);
    assert!(path.is_file(), "{} was built", path.display());
    path
}

/// A server started by a test; stopped (SIGTERM) when dropped.
struct Peer {
    child: Option<Child>,
    stdout: Receiver<String>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Peer {
    /// Starts `program` with `args` (`{dir}` stands for the temporary directory) and
    /// waits for its `listening on 127.0.0.1:PORT` line.
    fn start(program: &Path, args: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{dir}", dir.path().to_str().unwrap()))
            .collect();
        let mut child = Command::new(program)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        let out = child.stdout.take().unwrap();
        let (tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let line = stdout
            .recv_timeout(Duration::from_secs(30))
            .expect("a 'listening on' line");
        let port = line
            .strip_prefix("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("{line}"))
            .parse()
            .unwrap();
        Peer {
            child: Some(child),
            stdout,
            port,
            dir,
        }
    }

    /// The next line the server printed.
    fn line(&self) -> String {
        self.stdout
            .recv_timeout(Duration::from_secs(10))
            .expect("a line on standard output")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Sends `signal`, then waits for the server to exit.
    fn stop(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("still running");
        stop(&mut child, signal)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            stop(child, "TERM");
        }
    }
}

/// Runs a Python smtplib script with the port as its argument and [`MESSAGE`] on its
/// standard input; panics with its output if it fails (its assertions) and returns what
/// it printed.
fn python(script: &str, port: u16) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for these tests (./test.sh installs it)");
    child.stdin.take().unwrap().write_all(MESSAGE).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs swaks against 127.0.0.1:`port`; returns its exit status and transcript.
fn swaks(port: u16, to: &str) -> (ExitStatus, String) {
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--helo", "client.example", "--from", "alice@example.org"])
        .args(["--to", to, "--body", "Hello from swaks."])
        .output()
        .expect("swaks is required for these tests (./test.sh installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// The files in `dir` whose name ends in `.eml`, sorted.
fn messages(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    v.sort();
    v
}

/// One reply line from a raw connection.
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => line.push(byte[0]),
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Connects and reads the first line (the greeting, or the refusal that replaces it).
fn connect(port: u16) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let first = read_line(&mut s);
    (s, first)
}

// ---- std_server: smtp-proto alone ---------------------------------------------------

/// smtplib: two recipients at the server's domain (one in upper case) and one
/// elsewhere; then a transaction by hand, to see the `queued as` reply.
const STD_SERVER_SCRIPT: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
MESSAGE = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example") as s:
    refused = s.sendmail("alice@example.org", ["bob@example.org", "carol@EXAMPLE.org", "eve@other.example"], MESSAGE)
    assert refused == {"eve@other.example": (554, b"5.7.1 <eve@other.example>: Relay access denied")}, refused
    assert s.rcpt("postmaster")[0] == 503, "no RCPT outside a transaction"
    assert s.mail("<>")[0] == 250
    assert s.rcpt("<Postmaster>")[0] == 250, "the postmaster is always accepted"
    code, text = s.rcpt("mallory@example.net")
    assert (code, text) == (554, b"5.7.1 <mallory@example.net>: Relay access denied"), (code, text)
    code, text = s.data(MESSAGE)
    assert (code, text) == (250, b"2.0.0 Ok: queued as 2"), (code, text)
"#;

#[test]
fn std_server_takes_local_recipients_refuses_relaying_and_stores() {
    let program = example("smtp-sansio", "std_server");
    let server = Peer::start(&program, &["127.0.0.1:0", "example.org", "--dir", "{dir}"]);
    python(STD_SERVER_SCRIPT, server.port);
    assert_eq!(
        server.line(),
        format!(
            "message 1 from <alice@example.org> to <bob@example.org>, <carol@EXAMPLE.org>: {} octets",
            MESSAGE.len()
        )
    );
    assert_eq!(
        server.line(),
        format!(
            "message 2 from <> to <Postmaster>: {} octets",
            MESSAGE.len()
        )
    );

    let (status, t) = swaks(server.port, "dave@example.org");
    assert!(status.success(), "{t}");
    assert!(t.contains("<-  250 2.0.0 Ok: queued as 3"), "{t}");
    assert!(
        server
            .line()
            .starts_with("message 3 from <alice@example.org> to <dave@example.org>: ")
    );
    let (status, t) = swaks(server.port, "eve@other.example");
    assert!(!status.success(), "{t}");
    assert!(
        t.contains("<** 554 5.7.1 <eve@other.example>: Relay access denied"),
        "{t}"
    );

    let stored = messages(server.dir.path());
    let names: Vec<_> = stored.iter().map(|p| p.file_name().unwrap()).collect();
    assert_eq!(names, ["1.eml", "2.eml", "3.eml"]);
    assert_eq!(
        std::fs::read(&stored[0]).unwrap(),
        MESSAGE,
        "unstuffed, byte for byte"
    );
    assert_eq!(std::fs::read(&stored[1]).unwrap(), MESSAGE);
    let swaks_body = String::from_utf8(std::fs::read(&stored[2]).unwrap()).unwrap();
    assert!(
        swaks_body.contains("\r\n\r\nHello from swaks.\r\n"),
        "{swaks_body}"
    );
}

#[test]
fn std_server_honours_the_command_deadline() {
    let program = example("smtp-sansio", "std_server");
    let server = Peer::start(&program, &["127.0.0.1:0", "example.org", "--timeout", "1"]);
    let (mut s, greeting) = connect(server.port);
    assert_eq!(greeting, "220 example.org ESMTP\r\n");
    let start = Instant::now();
    // Half a command line: the deadline counts from its first octet.
    s.write_all(b"EHLO clie").unwrap();
    assert_eq!(
        read_line(&mut s),
        "421 4.4.2 example.org Error: timeout exceeded\r\n"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(read_line(&mut s), "", "closed after the 421");
    // Other sessions go on.
    let (_s, greeting) = connect(server.port);
    assert_eq!(greeting, "220 example.org ESMTP\r\n");
}

// ---- tokio_server: smtp-tokio -------------------------------------------------------

/// smtplib: a known user, an unknown one and a relay attempt; the data reply by hand.
const TOKIO_SERVER_SCRIPT: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
MESSAGE = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example") as s:
    s.ehlo()
    assert s.mail("alice@example.org")[0] == 250
    assert s.rcpt("bob@example.org")[0] == 250
    assert s.rcpt("dave@example.org") == (550, b"5.1.1 <dave@example.org>: Recipient address rejected: User unknown")
    assert s.rcpt("eve@other.example") == (554, b"5.7.1 <eve@other.example>: Relay access denied")
    code, text = s.data(MESSAGE)
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as "), (code, text)
    print(text[len(b"2.0.0 Ok: queued as "):].decode())
"#;

#[test]
fn tokio_server_checks_recipients_stores_and_shuts_down_on_sigint() {
    let program = example("smtp-tokio", "tokio_server");
    let mut server = Peer::start(
        &program,
        &["127.0.0.1:0", "{dir}", "example.org", "bob", "carol"],
    );
    let id = python(TOKIO_SERVER_SCRIPT, server.port).trim().to_owned();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(
        server.line(),
        format!(
            "stored {id} for <bob@example.org> ({} octets)",
            MESSAGE.len()
        )
    );
    let file = server.dir.path().join(format!("{id}.eml"));
    let mut expected = b"Return-Path: <alice@example.org>\r\n".to_vec();
    expected.extend_from_slice(MESSAGE);
    assert_eq!(std::fs::read(&file).unwrap(), expected);

    let (status, t) = swaks(server.port, "Carol@Example.ORG");
    assert!(status.success(), "{t}");
    assert!(t.contains("<-  250 2.0.0 Ok: queued as "), "{t}");
    assert!(server.line().contains(" for <Carol@Example.ORG> ("));
    let (status, t) = swaks(server.port, "mallory@example.org");
    assert!(!status.success(), "{t}");
    assert!(t.contains("<** 550 5.1.1 <mallory@example.org>: "), "{t}");
    assert_eq!(messages(server.dir.path()).len(), 2);
    let leftovers = std::fs::read_dir(server.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0, "no temporary file left");

    // Ctrl-C: a session between transactions is told at once, and the server exits.
    let (mut idle, greeting) = connect(server.port);
    assert_eq!(greeting, "220 example.org ESMTP\r\n");
    idle.write_all(b"HELO client.example\r\n").unwrap();
    assert!(read_line(&mut idle).starts_with("250 "));
    let status = server.stop("INT");
    assert!(status.success(), "{status:?}");
    let line = read_line(&mut idle);
    assert!(line.starts_with("421 4.3.2 example.org "), "{line}");
    let stderr = server.stderr();
    assert!(stderr.contains("shutting down\nstopped\n"), "{stderr}");
}

#[test]
fn tokio_server_refuses_a_client_over_its_limit() {
    let program = example("smtp-tokio", "tokio_server");
    let server = Peer::start(
        &program,
        &[
            "127.0.0.1:0",
            "{dir}",
            "example.org",
            "bob",
            "--per-client",
            "2",
        ],
    );
    let (first, greeting) = connect(server.port);
    assert_eq!(greeting, "220 example.org ESMTP\r\n");
    let (_second, greeting) = connect(server.port);
    assert_eq!(greeting, "220 example.org ESMTP\r\n");
    let (_third, refusal) = connect(server.port);
    assert_eq!(
        refusal,
        "421 4.7.0 Error: too many connections from you\r\n"
    );
    // A session that ends gives its slot back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_s, line) = connect(server.port);
        if line.starts_with("220 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back: {line}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.stderr().is_empty(), "{}", server.stderr());
}

// ---- tokio_send: smtp-tokio's client against `smtp serve` ---------------------------

fn tokio_send(port: u16, insecure: bool) -> Output {
    let program = example("smtp-tokio", "tokio_send");
    let server = format!("127.0.0.1:{port}");
    let mut args = vec![server.as_str(), "alice@example.org", "<bob@example.org>"];
    if insecure {
        args.push("--insecure");
    }
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MESSAGE).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn tokio_send_over_starttls_to_smtp_serve() {
    let mut server = Peer::start(
        Path::new(env!("CARGO_BIN_EXE_smtp")),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--hostname",
            "mx.test.example",
            "--maildir",
            "{dir}/maildir",
        ],
    );
    let new = server.dir.path().join("maildir/new");

    // The self-signed certificate accepted by name: delivered over TLS.
    let out = tokio_send(server.port, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("Sent (tls: true)\n"), "{stdout}");
    assert!(stdout.contains("250 2.0.0 Ok: queued as "), "{stdout}");
    let stored = messages_in(&new);
    assert_eq!(stored.len(), 1);
    let file = std::fs::read(&stored[0]).unwrap();
    assert!(file.starts_with(b"Return-Path: <alice@example.org>\r\n"));
    assert!(file.ends_with(MESSAGE), "the message as sent");
    let text = String::from_utf8_lossy(&file);
    assert!(text.contains(" with ESMTPS "), "{text}");

    // Verified against the web PKI roots, the same certificate fails the handshake:
    // nothing is sent, and the exit status says so.
    let out = tokio_send(server.port, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert_eq!(messages_in(&new).len(), 1, "nothing more stored");
    assert!(server.stop("TERM").success());
}

/// The files in a Maildir's `new/`.
fn messages_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

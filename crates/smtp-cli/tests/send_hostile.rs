//! `smtp send` against scripted servers that misbehave: replies nothing asked for,
//! code-only replies, DATA answered without 354, a SIZE that shrinks after STARTTLS, a
//! server that stops reading, a handshake that never comes, control characters in reply
//! text. Each server is a thread on 127.0.0.1 playing a transcript; nothing outside the
//! test is needed.
//!
//! Every scenario runs on both adapters (`tokio_io::NAME`, `blocking_io::NAME`), and
//! `every_scenario_same_on_both_adapters` runs them all on both and compares the exit
//! code and standard output.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SMTP: &str = env!("CARGO_BIN_EXE_smtp");

const MESSAGE: &[u8] =
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hostile\r\n\r\nHello.\r\n";

/// One step of a scripted server.
enum Step {
    /// Write these bytes, in one write.
    Send(&'static [u8]),
    /// Write these bytes (built at run time).
    SendOwned(Vec<u8>),
    /// Read one command line.
    Read,
    /// Read a DATA body up to and including the final dot.
    ReadData,
    /// Run the TLS handshake as the server.
    StartTls,
    /// Stop reading, keep the connection open until the client has exited.
    Hold,
}

use Step::{Hold, Read as R, ReadData, Send as S, SendOwned, StartTls};

/// The socket, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap(),
    )
}

/// A server that plays `steps` to one client, then reads until the client closes.
struct Server {
    addr: String,
    /// Set once the client process has exited (ends [`Step::Hold`]).
    client_done: Arc<AtomicBool>,
    /// What the client sent: its command lines, and `[N octets]` for each body.
    thread: JoinHandle<Vec<String>>,
}

impl Server {
    fn start(steps: Vec<Step>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let client_done = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&client_done);
        let thread = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut conn = Conn::Plain(tcp);
            let mut seen = Vec::new();
            for step in steps {
                let ok = match step {
                    Step::Send(b) => conn.write_all(b).and_then(|()| conn.flush()).is_ok(),
                    Step::SendOwned(b) => conn.write_all(&b).and_then(|()| conn.flush()).is_ok(),
                    Step::Read => match read_line(&mut conn) {
                        Some(line) => {
                            seen.push(line);
                            true
                        }
                        None => false,
                    },
                    Step::ReadData => match read_data(&mut conn) {
                        Some(n) => {
                            seen.push(format!("[{n} octets]"));
                            true
                        }
                        None => false,
                    },
                    Step::StartTls => {
                        let Conn::Plain(tcp) = conn else {
                            panic!("TLS twice")
                        };
                        let tls = rustls::ServerConnection::new(tls_config()).unwrap();
                        let mut stream = rustls::StreamOwned::new(tls, tcp);
                        while stream.conn.is_handshaking() {
                            if stream.conn.complete_io(&mut stream.sock).is_err() {
                                return seen;
                            }
                        }
                        conn = Conn::Tls(Box::new(stream));
                        true
                    }
                    Step::Hold => {
                        while !done.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        return seen;
                    }
                };
                if !ok {
                    return seen;
                }
            }
            // Whatever else the client says (QUIT, a body), until it closes.
            while let Some(line) = read_line(&mut conn) {
                seen.push(line);
                if seen.last().is_some_and(|l| l == "QUIT") {
                    let _ = conn.write_all(b"221 2.0.0 bye\r\n");
                    break;
                }
            }
            seen
        });
        Server {
            addr,
            client_done,
            thread,
        }
    }

    /// What the client sent.
    fn seen(self) -> Vec<String> {
        self.client_done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// One line without its CRLF, read octet by octet (nothing read ahead of a handshake).
fn read_line(conn: &mut Conn) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match conn.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

/// A DATA body up to the final dot; its size with the dot line.
fn read_data(conn: &mut Conn) -> Option<usize> {
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while !data.ends_with(b"\r\n.\r\n") {
        let n = conn.read(&mut buf).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
    Some(data.len())
}

/// What an adapter did with a scenario: the exit code and standard output (the outcome)
/// compared across adapters; standard error and the server's view for the scenario's
/// own checks.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    seen: Vec<String>,
    elapsed: Duration,
}

impl Run {
    fn compared(&self) -> (Option<i32>, &str) {
        (self.code, &self.stdout)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\nstdout: {}\nstderr: {}\nserver saw: {:?}",
            self.code, self.elapsed, self.stdout, self.stderr, self.seen
        )
    }
}

/// Runs `smtp send --io IO --server ADDR ARGS` against `steps`, with `stdin`.
fn run(io: &str, steps: Vec<Step>, args: &[&str], stdin: &[u8]) -> Run {
    let server = Server::start(steps);
    let start = Instant::now();
    let mut child = Command::new(SMTP)
        .args(["send", "--io", io, "--server", &server.addr])
        .args(["--from", "a@example.org", "--to", "b@example.org"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    // A client that hangs fails the test instead of hanging it.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let _ = feeder.join();
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        seen: server.seen(),
        elapsed,
    }
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

const GREETING: &[u8] = b"220 mx.example.org ESMTP\r\n";
const EHLO_PIPELINING: &[u8] = b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

// ---- issue 11, point 1: replies that nothing asked for ----------------------------------

fn reply_behind_the_greeting(io: &str) -> Run {
    // The second reply comes in the same write as the greeting, before EHLO was sent.
    let r = run(
        io,
        vec![S(b"220 mx ESMTP\r\n250 mx.example.org\r\n")],
        &["--json"],
        MESSAGE,
    );
    assert_eq!(r.code, Some(75), "{r:?}");
    assert!(
        r.stderr
            .contains("smtp send: unsolicited reply: 250 mx.example.org"),
        "{r:?}"
    );
    assert_eq!(json(&r)["status"], "temporary");
    // EHLO went out, nothing after it: no MAIL, no QUIT.
    assert_eq!(r.seen, ["EHLO localhost"], "{r:?}");
    r
}

fn extra_reply_after_ehlo(io: &str) -> Run {
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(b"250-mx.example.org\r\n250 PIPELINING\r\n250 2.0.0 surprise\r\n"),
        ],
        &["--json"],
        MESSAGE,
    );
    assert_eq!(r.code, Some(75), "{r:?}");
    assert!(
        r.stderr.contains("unsolicited reply: 250 2.0.0 surprise"),
        "{r:?}"
    );
    assert_eq!(json(&r)["status"], "temporary");
    assert!(!r.seen.iter().any(|l| l.starts_with("MAIL")), "{r:?}");
    r
}

fn more_replies_than_pipelined_commands(io: &str) -> Run {
    // MAIL, RCPT, DATA: four replies for three commands, the fourth a 250 that must not
    // be read as the reply to the final dot.
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(EHLO_PIPELINING),
            R,
            R,
            R,
            S(b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued\r\n"),
        ],
        &["--json"],
        MESSAGE,
    );
    assert_eq!(r.code, Some(75), "{r:?}");
    assert!(
        r.stderr.contains("unsolicited reply: 250 2.0.0 queued"),
        "{r:?}"
    );
    let j = json(&r);
    assert_eq!(j["status"], "temporary");
    assert_eq!(j["reply"], serde_json::Value::Null);
    assert!(!r.seen.iter().any(|l| l == "QUIT"), "{r:?}");
    r
}

// ---- issue 11, point 2: code-only replies -------------------------------------------------

fn code_only_replies(io: &str) -> Run {
    let r = run(
        io,
        vec![
            S(b"220\r\n"),
            R,
            S(b"250\r\n"),
            R,
            S(b"250\r\n"),
            R,
            S(b"250\r\n"),
            R,
            S(b"354\r\n"),
            ReadData,
            S(b"250\r\n"),
        ],
        &[],
        MESSAGE,
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout, "b@example.org: 250\nsent (250)\ntls: no, auth: none\n",
        "{r:?}"
    );
    assert_eq!(r.stderr, "");
    // An EHLO that announces nothing: no PIPELINING, no SIZE, no 8BITMIME.
    assert_eq!(
        r.seen,
        [
            "EHLO localhost",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<b@example.org>",
            "DATA",
            &format!("[{} octets]", MESSAGE.len() + 3),
            "QUIT",
        ],
        "{r:?}"
    );
    r
}

// ---- issue 19, B2: DATA answered without 354 ----------------------------------------------

fn data_answered(io: &str, reply: &'static [u8], words: &str) -> Run {
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(EHLO_PIPELINING),
            R,
            R,
            R,
            S(b"250 ok\r\n250 ok\r\n"),
            S(reply),
        ],
        &["--json"],
        MESSAGE,
    );
    assert_eq!(r.code, Some(75), "{r:?}");
    let j = json(&r);
    assert_eq!(j["status"], "temporary", "{r:?}");
    assert!(r.stderr.contains(words), "{r:?}");
    // No body went out.
    assert_eq!(
        r.seen,
        [
            "EHLO localhost",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<b@example.org>",
            "DATA"
        ],
        "{r:?}"
    );
    r
}

fn data_answered_250(io: &str) -> Run {
    data_answered(
        io,
        b"250 2.0.0 Ok: queued\r\n",
        "unexpected reply to DATA: 250 2.0.0 Ok: queued",
    )
}

fn data_answered_221(io: &str) -> Run {
    data_answered(
        io,
        b"221 2.0.0 bye\r\n",
        "unexpected reply to DATA: 221 2.0.0 bye",
    )
}

// ---- issue 11, point 3: SIZE for a message on standard input --------------------------------

const EHLO_SIZE: &[u8] =
    b"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n";

/// The steps of a server that offers SIZE and takes one message.
fn takes_one_message(ehlo: &'static [u8]) -> Vec<Step> {
    vec![
        S(GREETING),
        R,
        S(ehlo),
        R,
        R,
        R,
        S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        ReadData,
        S(b"250 2.0.0 queued\r\n"),
    ]
}

fn stdin_declares_size_and_body(io: &str) -> Run {
    let r = run(io, takes_one_message(EHLO_SIZE), &["--json"], MESSAGE);
    assert_eq!(r.code, Some(0), "{r:?}");
    // 7-bit: SIZE and no BODY=, exactly as with --file.
    assert_eq!(
        r.seen[1],
        format!("MAIL FROM:<a@example.org> SIZE={}", MESSAGE.len())
    );
    let eight_bit = "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n".as_bytes();
    let r8 = run(io, takes_one_message(EHLO_SIZE), &["--json"], eight_bit);
    assert_eq!(r8.code, Some(0), "{r8:?}");
    assert_eq!(
        r8.seen[1],
        format!(
            "MAIL FROM:<a@example.org> SIZE={} BODY=8BITMIME",
            eight_bit.len()
        )
    );
    // The same message from a file says the same.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.eml");
    std::fs::write(&path, eight_bit).unwrap();
    let file = run(
        io,
        takes_one_message(EHLO_SIZE),
        &["--json", "--file", path.to_str().unwrap()],
        b"",
    );
    assert_eq!(file.seen, r8.seen);
    r
}

fn stdin_spooled_beyond_memory(io: &str) -> Run {
    // Over the in-memory bound (1 MiB): spooled to a temporary file, sent whole.
    let big = big_message(3 * 1024 * 1024 / 2);
    let r = run(io, takes_one_message(EHLO_SIZE), &["--json"], &big);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.seen[1],
        format!("MAIL FROM:<a@example.org> SIZE={}", big.len())
    );
    assert_eq!(r.seen[4], format!("[{} octets]", big.len() + 3));
    r
}

fn stdin_bigger_than_size_refused_before_mail(io: &str) -> Run {
    let ehlo = b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
    for message in [big_message(5000), big_message(3 * 1024 * 1024 / 2)] {
        let r = run(io, vec![S(GREETING), R, S(ehlo)], &[], &message);
        assert_eq!(r.code, Some(69), "{r:?}");
        assert!(
            r.stdout.contains(&format!(
                "refused locally: message size {} exceeds the server's limit of 1000",
                message.len()
            )),
            "{r:?}"
        );
        assert_eq!(r.seen, ["EHLO localhost", "QUIT"], "{r:?}");
    }
    let r = run(
        io,
        vec![S(GREETING), R, S(ehlo)],
        &["--json"],
        &big_message(5000),
    );
    assert_eq!(json(&r)["status"], "permanent");
    r
}

/// A 7-bit message of `size` octets in lines of 78.
fn big_message(size: usize) -> Vec<u8> {
    let mut m = b"Subject: big\r\n\r\n".to_vec();
    while m.len() < size {
        let line =
            b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
        m.extend_from_slice(&line[..line.len().min(size - m.len()).max(2)]);
    }
    m.truncate(size - 2);
    m.extend_from_slice(b"\r\n");
    m
}

// ---- issue 11, point 4: the capabilities inside TLS count --------------------------------

fn size_shrinks_after_starttls(io: &str) -> Run {
    // Outside TLS the server takes 100000 octets; inside it, 1000. The message (5000)
    // fits the first and must be refused by the second, before MAIL.
    let message = big_message(5000);
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(b"250-mx.example.org\r\n250-STARTTLS\r\n250-PIPELINING\r\n250 SIZE 100000\r\n"),
            R,
            S(b"220 2.0.0 go ahead\r\n"),
            StartTls,
            R,
            S(b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"),
        ],
        &["--starttls", "required", "--insecure", "--json"],
        &message,
    );
    assert_eq!(r.code, Some(69), "{r:?}");
    let j = json(&r);
    assert_eq!(j["status"], "permanent");
    assert_eq!(j["tls"], true);
    assert_eq!(
        r.seen,
        ["EHLO localhost", "STARTTLS", "EHLO localhost", "QUIT"],
        "{r:?}"
    );
    r
}

// ---- issue 19, B3 and T: every wait bounded by --timeout ---------------------------------

fn server_stops_reading_mid_data(io: &str) -> Run {
    // Far more than the socket buffers hold: the client's writes block.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.eml");
    std::fs::write(&path, big_message(32 * 1024 * 1024)).unwrap();
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(EHLO_PIPELINING),
            R,
            R,
            R,
            S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
            Hold,
        ],
        &["--timeout", "2", "--json", "--file", path.to_str().unwrap()],
        b"",
    );
    assert_eq!(r.code, Some(75), "{r:?}");
    assert_eq!(json(&r)["status"], "temporary");
    assert!(r.stderr.contains("timeout"), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(15), "{r:?}");
    r
}

fn server_stops_reading_mid_bdat(io: &str) -> Run {
    // The same with CHUNKING: BDAT chunks, whose writes block the same way.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.eml");
    std::fs::write(&path, big_message(32 * 1024 * 1024)).unwrap();
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(b"250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
            R,
            R,
            S(b"250 ok\r\n250 ok\r\n"),
            Hold,
        ],
        &["--timeout", "2", "--json", "--file", path.to_str().unwrap()],
        b"",
    );
    assert_eq!(r.code, Some(75), "{r:?}");
    assert_eq!(json(&r)["status"], "temporary");
    assert!(r.stderr.contains("timeout"), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(15), "{r:?}");
    r
}

fn tls_handshake_never_comes(io: &str) -> Run {
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(b"250-mx.example.org\r\n250 STARTTLS\r\n"),
            R,
            S(b"220 2.0.0 go ahead\r\n"),
            Hold,
        ],
        &[
            "--timeout",
            "2",
            "--starttls",
            "required",
            "--insecure",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(r.code, Some(75), "{r:?}");
    assert_eq!(json(&r)["status"], "temporary");
    assert!(r.stderr.contains("TLS: timed out"), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(15), "{r:?}");
    r
}

fn final_reply_never_comes(io: &str) -> Run {
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(EHLO_PIPELINING),
            R,
            R,
            R,
            S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
            ReadData,
            Hold,
        ],
        &["--timeout", "2", "--json"],
        MESSAGE,
    );
    // The dot went out unanswered: not known to be delivered, so retry-worthy.
    assert_eq!(r.code, Some(75), "{r:?}");
    assert_eq!(json(&r)["status"], "temporary");
    assert!(r.stderr.contains("timeout waiting for the server"), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(15), "{r:?}");
    r
}

// ---- issue 19, E: control characters in reply text ----------------------------------------

fn control_characters_are_escaped(io: &str) -> Run {
    let r = run(
        io,
        vec![
            S(GREETING),
            R,
            S(EHLO_PIPELINING),
            R,
            R,
            R,
            S(b"250 ok\r\n250 2.1.5 \x1b[31mred\x1b[0m ok\r\n354 go\r\n"),
            ReadData,
            SendOwned("250 2.0.0 \u{1b}]0;pwned\u{7} queued \u{9b}2J\r\n".into()),
        ],
        &["-v"],
        MESSAGE,
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout,
        "b@example.org: 250 2.1.5 \\x1b[31mred\\x1b[0m ok\n\
         sent (250 2.0.0 \\x1b]0;pwned\\x07 queued \\u{9b}2J)\n\
         tls: no, auth: none\n",
        "{r:?}"
    );
    // The -v transcript too.
    assert!(
        r.stderr.contains("S: 250 2.1.5 \\x1b[31mred\\x1b[0m ok\n"),
        "{r:?}"
    );
    assert!(!r.stdout.contains('\u{1b}') && !r.stderr.contains('\u{1b}'));
    assert!(!r.stderr.contains('\u{9b}') && !r.stderr.contains('\u{7}'));
    r
}

fn control_characters_in_a_failure(io: &str) -> Run {
    let r = run(io, vec![S(b"554 5.7.1 \x1b[2Jgo away\r\n")], &[], MESSAGE);
    assert_eq!(r.code, Some(69), "{r:?}");
    assert_eq!(
        r.stderr, "smtp send: greeting refused: 554 5.7.1 \\x1b[2Jgo away\n",
        "{r:?}"
    );
    r
}

/// Every scenario: a `#[test]` per adapter, and the list the comparison runs.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod tokio_io {
            $(#[test] fn $name() { super::$name("tokio"); })*
        }
        mod blocking_io {
            $(#[test] fn $name() { super::$name("blocking"); })*
        }
        const SCENARIOS: &[(&str, fn(&str) -> Run)] = &[$((stringify!($name), $name)),*];
    };
}

scenarios!(
    reply_behind_the_greeting,
    extra_reply_after_ehlo,
    more_replies_than_pipelined_commands,
    code_only_replies,
    data_answered_250,
    data_answered_221,
    stdin_declares_size_and_body,
    stdin_spooled_beyond_memory,
    stdin_bigger_than_size_refused_before_mail,
    size_shrinks_after_starttls,
    server_stops_reading_mid_data,
    server_stops_reading_mid_bdat,
    tls_handshake_never_comes,
    final_reply_never_comes,
    control_characters_are_escaped,
    control_characters_in_a_failure,
);

#[test]
fn every_scenario_same_on_both_adapters() {
    for (name, scenario) in SCENARIOS {
        let tokio = scenario("tokio");
        let blocking = scenario("blocking");
        assert_eq!(
            tokio.compared(),
            blocking.compared(),
            "{name}\ntokio: {tokio:?}\nblocking: {blocking:?}"
        );
    }
}

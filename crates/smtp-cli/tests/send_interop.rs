//! `smtp send` against servers nobody here wrote: aiosmtpd (PyPI) and Postfix's
//! smtp-sink (Debian `postfix`). Both must be installed (`./test.sh` installs them); a
//! missing peer fails the test rather than skipping it.
//!
//! Every scenario runs on both adapters: `tokio_io::NAME` with `--io tokio`,
//! `blocking_io::NAME` with `--io blocking`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::net::free_port;
use support::process::Peer;
use support::serve::SMTP;

/// Whether `child` is up: still running, and accepting on `port`.
fn listening(child: &mut Child, port: u16) -> bool {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Still ours a moment later (not a process that lost the bind and exited).
            std::thread::sleep(Duration::from_millis(20));
            return child.try_wait().unwrap().is_none();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "peer never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `smtp send --io IO ARGS` with `stdin`.
fn smtp_send(io: &str, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(SMTP)
        .args(["send", "--io", io])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {stdout:?}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A self-signed certificate for 127.0.0.1 / localhost, as PEM files.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

fn aiosmtpd(dir: &Path) -> (Peer, u16, PathBuf, PathBuf) {
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let (cert, key) = certificate(dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/aiosmtpd_server.py"
    );
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new("python3")
            .args([
                script,
                &port.to_string(),
                spool.to_str().unwrap(),
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        // No "ready": the bind failed (port taken meanwhile); a missing aiosmtpd fails
        // every attempt and the panic below says so.
        if line.trim() == "ready" && listening(&mut child, port) {
            return (Peer(child), port, spool, cert);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("aiosmtpd did not start (is it installed? pip install aiosmtpd)");
}

fn smtp_sink(dir: &Path, extra: &[&str]) -> (Peer, u16, PathBuf) {
    // smtp-sink drops to `nobody`, which must be able to write the dump.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let dump = dir.join("sink.dump");
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new("/usr/sbin/smtp-sink")
            .args(extra)
            .args(["-u", "nobody", "-D", dump.to_str().unwrap()])
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("Postfix smtp-sink (apt-get install postfix)");
        if listening(&mut child, port) {
            return (Peer(child), port, dump);
        }
        let _ = child.wait();
    }
    panic!("smtp-sink did not start");
}

const MESSAGE: &[u8] = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: interop\r\n\r\nHello from smtp send.\r\n.leading dot\r\n";

fn aiosmtpd_delivered_starttls_auth(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, spool, cert) = aiosmtpd(dir.path());
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--to",
            "c@example.org",
            "--starttls",
            "required",
            "--ca-file",
            cert.to_str().unwrap(),
            "--auth",
            "alice:s3cret",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(&out);
    assert_eq!(j["status"], "sent");
    assert_eq!(j["tls"], true);
    assert_eq!(j["auth"], "PLAIN");
    assert_eq!(j["reply"]["code"], 250);
    assert_eq!(j["recipients"].as_array().unwrap().len(), 2);
    let stored = std::fs::read(spool.join("1.eml")).unwrap();
    // aiosmtpd stores the message with its line endings as received, dot-unstuffed.
    assert_eq!(stored, MESSAGE);
    let env = std::fs::read_to_string(spool.join("1.env")).unwrap();
    assert_eq!(
        env,
        "a@example.org\nb@example.org,c@example.org\ntls=True auth=True\n"
    );
}

fn aiosmtpd_per_recipient_rejection(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, spool, _) = aiosmtpd(dir.path());
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--to",
            "nobody@example.org",
            "--starttls",
            "never",
            "--json",
        ],
        MESSAGE,
    );
    // A recipient refused permanently: 69, with the message delivered to the others.
    assert_eq!(out.status.code(), Some(69));
    let j = json(&out);
    assert_eq!(j["status"], "partial");
    assert_eq!(j["recipients"][1]["address"], "nobody@example.org");
    assert_eq!(j["recipients"][1]["code"], 550);
    assert_eq!(j["recipients"][1]["enhanced"], "5.1.1");
    assert!(spool.join("1.eml").exists());
}

fn aiosmtpd_wrong_password_and_untrusted_certificate(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, _, cert) = aiosmtpd(dir.path());
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--ca-file",
            cert.to_str().unwrap(),
            "--auth",
            "alice:wrong",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["reply"]["code"], 535);
    // The web PKI does not trust the self-signed certificate: a TLS failure is 75.
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--starttls",
            "required",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(75));
}

fn aiosmtpd_cleartext_auth_refused_locally(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, spool, _) = aiosmtpd(dir.path());
    let server = format!("127.0.0.1:{port}");
    // aiosmtpd offers AUTH only after TLS; without TLS no mechanism may be used.
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--starttls",
            "never",
            "--auth",
            "alice:s3cret",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(69));
    assert!(!spool.join("1.eml").exists());
}

fn smtp_sink_delivered_and_verbose_transcript(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, dump) = smtp_sink(dir.path(), &[]);
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "",
            "--to",
            "b@example.org",
            "-v",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["status"], "sent");
    let transcript = String::from_utf8_lossy(&out.stderr);
    assert!(transcript.contains("C: MAIL FROM:<>"), "{transcript}");
    assert!(
        transcript.lines().any(|l| l.starts_with("S: 220 ")),
        "{transcript}"
    );
    let start = Instant::now();
    loop {
        let dumped = std::fs::read(&dump).unwrap_or_default();
        if String::from_utf8_lossy(&dumped).contains("Hello from smtp send.") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "smtp-sink never dumped the message"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn smtp_sink_rejections(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    // -f RCPT: every RCPT gets a hard error.
    let (_peer, port, _) = smtp_sink(dir.path(), &["-f", "RCPT"]);
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(69));
    let j = json(&out);
    assert_eq!(j["status"], "permanent");
    assert!(j["recipients"][0]["code"].as_u64().unwrap() >= 500);

    // -r RCPT: a soft error, 75.
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, _) = smtp_sink(dir.path(), &["-r", "RCPT"]);
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(json(&out)["status"], "temporary");
}

fn smtp_sink_auth_and_starttls_required(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, _) = smtp_sink(dir.path(), &[]);
    let server = format!("127.0.0.1:{port}");
    // smtp-sink offers AUTH and accepts any credentials; without TLS it takes an explicit
    // --allow-insecure-auth.
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--auth",
            "u:p",
            "--allow-insecure-auth",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(json(&out)["auth"].is_string());
    // smtp-sink has no STARTTLS: required fails with 75.
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--starttls",
            "required",
            "--json",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(json(&out)["status"], "temporary");
}

fn usage_errors_exit_64(io: &str) {
    for args in [
        &["--to", "not an address"][..],
        &["--from", "a@b"][..],
        &["--bogus"][..],
        &["--to", "a@b.example", "--io", "nope"][..],
    ] {
        let out = smtp_send(io, args, b"");
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn load_mode_against_smtp_sink(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, _) = smtp_sink(dir.path(), &[]);
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--count",
            "200",
            "--concurrency",
            "4",
            "--size",
            "2048",
            "--starttls",
            "never",
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("sent 200 messages in ") && first.ends_with(" msg/s)"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().nth(1), Some("0 failed"));
}

#[test]
fn same_output_exit_code_and_transcript_on_both_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, _) = smtp_sink(dir.path(), &["-r", "RCPT"]);
    let dir = tempfile::tempdir().unwrap();
    let (_ok_peer, ok_port, _) = smtp_sink(dir.path(), &[]);
    let closed = free_port();
    let (soft, ok, closed) = (
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{ok_port}"),
        format!("127.0.0.1:{closed}"),
    );
    let from_to = ["--from", "a@example.org", "--to", "b@example.org"];
    let cases: [Vec<&str>; 6] = [
        vec!["--server", &ok, "-v", "--to", "c@example.org"],
        vec![
            "--server",
            &ok,
            "--json",
            "--auth",
            "u:p",
            "--allow-insecure-auth",
        ],
        vec!["--server", &soft, "-v"],
        vec!["--server", &soft, "--json"],
        vec!["--server", &ok, "--starttls", "required", "--json", "-v"],
        vec!["--server", &closed, "--json"],
    ];
    for case in cases {
        let args: Vec<&str> = from_to.iter().copied().chain(case).collect();
        let [tokio, blocking] = ["tokio", "blocking"].map(|io| smtp_send(io, &args, MESSAGE));
        let show = |o: &Output| {
            format!(
                "exit {:?}\n{}{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        assert_eq!(show(&tokio), show(&blocking), "{args:?}");
    }
}

/// Load mode with `--json`: one object with the counts, the rate and the latency
/// percentiles; stderr is not a terminal here, so it carries no progress line.
fn load_mode_json_latency(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, _) = smtp_sink(dir.path(), &[]);
    let server = format!("127.0.0.1:{port}");
    let out = smtp_send(
        io,
        &[
            "--server",
            &server,
            "--count",
            "300",
            "--concurrency",
            "3",
            "--starttls",
            "never",
            "--json",
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        out.stderr.is_empty(),
        "no progress line without a terminal: {stderr:?}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["sent"], 300, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["elapsed_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["msg_per_s"].as_f64().unwrap() > 0.0, "{v}");
    let p = |k: &str| {
        v["latency_ms"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {v}"))
    };
    let (p50, p90, p99) = (p("p50"), p("p90"), p("p99"));
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{v}");
    assert!(p99 < 10_000.0, "{v}");
}

/// On a terminal (`script` gives it one), stderr shows the progress line rewritten with
/// `\r` and ends with the summary and its latency percentiles; stdout is unchanged.
fn load_mode_progress_on_a_terminal(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port, _) = smtp_sink(dir.path(), &[]);
    let stdout = dir.path().join("stdout");
    let command = format!(
        "{SMTP} send --io {io} --server 127.0.0.1:{port} --count 200 --concurrency 2 \
         --starttls never > {}",
        stdout.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    let last = terminal
        .split(['\r', '\n'])
        .rfind(|l| !l.is_empty() && *l != "\x1b[K")
        .unwrap();
    assert!(
        last.starts_with("sent 200, failed 0, ") && last.contains("; latency p50 "),
        "{terminal:?}"
    );
    assert!(
        last.contains(" ms, p90 ") && last.contains(" ms, p99 "),
        "{terminal:?}"
    );
    let stdout = std::fs::read_to_string(stdout).unwrap();
    assert!(stdout.starts_with("sent 200 messages in "), "{stdout}");
    assert!(stdout.ends_with("\n0 failed\n"), "{stdout}");
}

support::on_both!(
    aiosmtpd_delivered_starttls_auth,
    aiosmtpd_per_recipient_rejection,
    aiosmtpd_wrong_password_and_untrusted_certificate,
    aiosmtpd_cleartext_auth_refused_locally,
    smtp_sink_delivered_and_verbose_transcript,
    smtp_sink_rejections,
    smtp_sink_auth_and_starttls_required,
    usage_errors_exit_64,
    load_mode_against_smtp_sink,
    load_mode_json_latency,
    load_mode_progress_on_a_terminal,
);

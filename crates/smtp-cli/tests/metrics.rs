//! `smtp serve --metrics-listen`: real sessions on 127.0.0.1 (Python's smtplib with
//! STARTTLS and AUTH, raw sockets for the connection limit), a relay with a live next
//! hop (Postfix's smtp-sink) and a dead one, then `/metrics` scraped and read by
//! `prometheus_client`'s OpenMetrics parser (Python), every value asserted exactly.
//! Every process is stopped by the test; everything lives in a temporary directory.
//!
//! Both adapters: `tokio_io::NAME` with `--io tokio`, `blocking_io::NAME` with
//! `--io blocking`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::net::{free_port, read_line};
use support::process::smtp_sink;
use support::serve::{SMTP, Serve, ServeCommand};
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/metrics.py");

/// What `metrics.py` sends: 28 octets.
const MESSAGE_SIZE: f64 = 28.0;

/// `smtp serve --io IO --metrics-listen 127.0.0.1:0 ARGS`, files in `dir`.
fn start(io: &str, dir: &Path, args: &[&str]) -> Serve {
    ServeCommand::new()
        .args(["--io", io, "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0", "--log-level", "debug"])
        .args(["--hostname", "mx.local.test"])
        .arg("--maildir")
        .arg(dir.join("maildir"))
        .arg("--queue-dir")
        .arg(dir.join("queue"))
        .args(args)
        .stderr_to(dir.join("stderr"))
        .start()
}

/// The samples of a scrape, as `prometheus_client`'s parser reads them.
fn scrape(server: &Serve) -> Vec<Value> {
    let url = format!("http://{}/metrics", server.metrics.unwrap());
    let out = python(&["scrape", &url]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Runs `metrics.py ARGS`; its standard output, or a panic with both streams.
fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("python3 with prometheus_client is required (./test.sh installs it)");
    assert!(
        out.status.success(),
        "metrics.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the sample `name` with exactly `labels`, if the scrape has it.
fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            let have = s["labels"].as_object().unwrap();
            s["name"] == name
                && have.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| have.get(*k) == Some(&Value::from(*v)))
        })
        .map(|s| s["value"].as_f64().unwrap())
}

/// Scrapes until `done` holds of the samples (20 s at most); the last scrape.
fn until(server: &Serve, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let samples = scrape(server);
        if done(&samples) {
            return samples;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waited for {what}: {samples:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP/1.0 request; the whole response.
fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

fn every_metric_counted(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sink");
    std::fs::create_dir(&sink_dir).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink(&sink_dir, sink_port);
    let dead_port = free_port();
    let users = dir.path().join("users");
    std::fs::write(&users, "tim:tanstaaf\n").unwrap();
    let server = start(
        io,
        dir.path(),
        &[
            "--auth-file",
            users.to_str().unwrap(),
            "--local-domain",
            "local.test",
            "--max-connections",
            "1",
            "--transport",
            &format!("ok.test=127.0.0.1:{sink_port}"),
            "--transport",
            &format!("dead.test=127.0.0.1:{dead_port}"),
            "--retry-min",
            "3600",
            "--retry-max",
            "7200",
        ],
    );
    let port = server.addr().port().to_string();

    // Before anything: every counter without labels at zero.
    let samples = scrape(&server);
    assert_eq!(value(&samples, "smtp_connections_total", &[]), Some(0.0));
    assert_eq!(value(&samples, "smtp_connections_open", &[]), Some(0.0));
    assert_eq!(
        value(&samples, "smtp_messages_accepted_total", &[]),
        Some(0.0)
    );

    // STARTTLS, AUTH PLAIN wrong then right, one message: one recipient stored here,
    // one relayed to smtp-sink, one to a port where nothing listens.
    python(&[
        "session",
        &port,
        "tim",
        "tanstaaf",
        "alice@local.test",
        "bob@local.test",
        "dave@ok.test",
        "carol@dead.test",
    ]);
    // Unauthenticated: relaying refused at RCPT.
    until(&server, "the first session to end", |s| {
        value(s, "smtp_connections_open", &[]) == Some(0.0)
    });
    python(&[
        "refused",
        &port,
        "eve@outside.test",
        "mallory@elsewhere.test",
    ]);
    until(&server, "the second session to end", |s| {
        value(s, "smtp_connections_open", &[]) == Some(0.0)
    });
    // Let the adapter release the sessions' slots too.
    std::thread::sleep(Duration::from_millis(300));

    // --max-connections 1: a second client while one is connected gets 421 4.3.2.
    let mut first = TcpStream::connect(server.addr()).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let greeting = read_line(&mut first);
    assert!(greeting.starts_with("220 "), "{greeting}");
    let mut second = TcpStream::connect(server.addr()).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let refused = read_line(&mut second);
    assert!(refused.starts_with("421 4.3.2 "), "{refused}");
    let samples = scrape(&server);
    assert_eq!(value(&samples, "smtp_connections_open", &[]), Some(1.0));
    first.write_all(b"QUIT\r\n").unwrap();
    assert!(read_line(&mut first).starts_with("221 "));
    drop((first, second));

    let s = until(&server, "two delivery attempts and no session", |s| {
        value(
            s,
            "smtp_delivery_attempts_total",
            &[("outcome", "delivered")],
        ) == Some(1.0)
            && value(
                s,
                "smtp_delivery_attempts_total",
                &[("outcome", "deferred")],
            ) == Some(1.0)
            && value(s, "smtp_queue_deferred_messages", &[]) == Some(1.0)
            && value(s, "smtp_connections_open", &[]) == Some(0.0)
    });
    let v = |name: &str, labels: &[(&str, &str)]| value(&s, name, labels);
    // Connections: two Python sessions, two raw ones, one of them refused.
    assert_eq!(v("smtp_connections_total", &[]), Some(4.0));
    assert_eq!(
        v(
            "smtp_connections_refused_total",
            &[("limit", "max-connections")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v("smtp_connections_refused_total", &[("limit", "per-ip")]),
        None
    );
    assert_eq!(
        v("smtp_tls_sessions_total", &[("version", "TLSv1.3")]),
        Some(1.0)
    );
    assert_eq!(
        v("smtp_auth_failures_total", &[("mechanism", "PLAIN")]),
        Some(1.0)
    );
    assert_eq!(
        v("smtp_auth_successes_total", &[("mechanism", "PLAIN")]),
        Some(1.0)
    );
    assert_eq!(v("smtp_messages_accepted_total", &[]), Some(1.0));
    assert_eq!(
        v(
            "smtp_messages_rejected_total",
            &[("stage", "rcpt"), ("reason", "5.7.1")]
        ),
        Some(1.0)
    );
    let rejected = s
        .iter()
        .filter(|x| x["name"] == "smtp_messages_rejected_total")
        .count();
    assert_eq!(rejected, 1, "{s:?}");
    assert_eq!(v("smtp_received_bytes_total", &[]), Some(MESSAGE_SIZE));
    assert_eq!(v("smtp_message_size_bytes_count", &[]), Some(1.0));
    assert_eq!(v("smtp_message_size_bytes_sum", &[]), Some(MESSAGE_SIZE));
    assert_eq!(
        v("smtp_message_size_bytes_bucket", &[("le", "1024.0")]),
        Some(1.0)
    );
    // The relay: one delivered, one deferred; the message stays queued for the retry.
    assert_eq!(
        v("smtp_delivery_attempts_total", &[("outcome", "bounced")]),
        None
    );
    assert_eq!(v("smtp_queue_messages", &[]), Some(1.0));
    assert_eq!(v("smtp_delivery_delay_seconds_count", &[]), Some(1.0));
    let delay = v("smtp_delivery_delay_seconds_sum", &[]).unwrap();
    assert!((0.0..30.0).contains(&delay), "{delay}");

    // HTTP: only GET /metrics.
    let ok = http(server.metrics.unwrap(), "GET /metrics HTTP/1.0\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.0 200 "), "{ok}");
    assert!(
        ok.contains(
            "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ),
        "{ok}"
    );
    assert!(ok.ends_with("# EOF\n"), "{ok}");
    let other = http(server.metrics.unwrap(), "GET /other HTTP/1.0\r\n\r\n");
    assert!(other.starts_with("HTTP/1.0 404 "), "{other}");
    let post = http(
        server.metrics.unwrap(),
        "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.0 405 "), "{post}");
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    // The metrics thread stops with the server: a clean exit.
    let mut server = server;
    let status = server.terminate().expect("a prompt exit after SIGTERM");
    assert!(status.success(), "{status}");
}

/// `--max-connections-per-ip 1`: a second connection from 127.0.0.1 gets `421 4.7.0`;
/// a session on an implicit-TLS listener counts as a TLS session.
fn per_ip_limit_and_implicit_tls(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        io,
        dir.path(),
        &[
            "--implicit-tls",
            "127.0.0.1:0",
            "--max-connections-per-ip",
            "1",
            "--max-size",
            "100",
        ],
    );
    let implicit = server.implicit_tls[0].port().to_string();
    python(&["implicit", &implicit]);
    until(&server, "the TLS session to end", |s| {
        value(s, "smtp_connections_open", &[]) == Some(0.0)
    });
    // A body over --max-size, refused by the protocol machine itself: counted by its code.
    python(&["too_big", &server.addr().port().to_string()]);
    until(&server, "the refused message's session to end", |s| {
        value(s, "smtp_connections_open", &[]) == Some(0.0)
    });
    // Let the adapter release the sessions' slots too (the per-IP count).
    std::thread::sleep(Duration::from_millis(300));
    let mut first = TcpStream::connect(server.addr()).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(read_line(&mut first).starts_with("220 "));
    let mut second = TcpStream::connect(server.addr()).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let refused = read_line(&mut second);
    assert!(refused.starts_with("421 4.7.0 "), "{refused}");
    let s = scrape(&server);
    let v = |name: &str, labels: &[(&str, &str)]| value(&s, name, labels);
    assert_eq!(v("smtp_connections_total", &[]), Some(4.0));
    assert_eq!(v("smtp_connections_open", &[]), Some(1.0));
    assert_eq!(v("smtp_messages_accepted_total", &[]), Some(0.0));
    assert_eq!(
        v(
            "smtp_messages_rejected_total",
            &[("stage", "data"), ("reason", "5.3.4")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v("smtp_connections_refused_total", &[("limit", "per-ip")]),
        Some(1.0)
    );
    assert_eq!(
        v(
            "smtp_connections_refused_total",
            &[("limit", "max-connections")]
        ),
        None
    );
    assert_eq!(
        v("smtp_tls_sessions_total", &[("version", "TLSv1.3")]),
        Some(1.0)
    );
    // Nothing relays: the queue gauges stay at zero, no attempt is counted.
    assert_eq!(v("smtp_queue_messages", &[]), Some(0.0));
    assert_eq!(v("smtp_delivery_delay_seconds_count", &[]), Some(0.0));
    // HEAD: the headers of GET, no body.
    let head = http(server.metrics.unwrap(), "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.0 200 "), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
}

/// Without `--metrics-listen` nothing listens and no `(metrics)` line is printed; a
/// metrics address that cannot be bound is a configuration error.
fn no_listener_unless_asked(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = Command::new(SMTP)
        .args(["serve", "--io", io, "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", &taken])
        .arg("--maildir")
        .arg(dir.path().join("maildir"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {taken} (--metrics-listen)")),
        "{stderr}"
    );

    let mut child = Command::new(SMTP)
        .args(["serve", "--io", io, "--listen", "127.0.0.1:0", "--no-tls"])
        .arg("--maildir")
        .arg(dir.path().join("maildir"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    assert!(!line.contains("metrics"), "{line}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    // After SIGTERM the rest of standard output: no metrics line came after it.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    assert!(child.wait().unwrap().success());
}

support::on_both!(
    every_metric_counted,
    per_ip_limit_and_implicit_tls,
    no_listener_unless_asked,
);

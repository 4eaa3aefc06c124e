//! `smtp serve` as a relay and `smtp queue`, driven from outside with real components
//! on 127.0.0.1: the built binary, swaks and a raw socket as clients, Postfix's
//! smtp-sink as the next hop, dnsmasq for MX. Every process is stopped by the test that
//! started it; everything lives in temporary directories. swaks, smtp-sink and dnsmasq
//! are required: a missing one fails the test (`./test.sh` installs them).
//!
//! The scenarios that involve the adapters run on both: `tokio_io::NAME` with
//! `--io tokio`, `blocking_io::NAME` with `--io blocking`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::dnsmasq::Dnsmasq;
use support::net::free_port;
use support::process::{Peer, smtp_sink_to, terminate, until};
use support::serve::{SMTP, Serve, ServeCommand};

const HOSTNAME: &str = "mx.local.test";

/// `smtp serve --io IO` on a free port, its Maildir and queue in `dir`.
fn start(io: &str, dir: &Path, args: &[&str]) -> Serve {
    start_env(io, dir, args, &[])
}

/// [`start`] with environment variables.
fn start_env(io: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
    // `--tls` in `args` (not an option of smtp serve) asks for STARTTLS with a
    // self-signed certificate instead of --no-tls.
    let tls = args.contains(&"--tls");
    let args: Vec<&str> = args.iter().copied().filter(|a| *a != "--tls").collect();
    let mut serve = ServeCommand::loopback(io, HOSTNAME)
        .args(["--log-level", "debug"])
        .args(if tls { &[][..] } else { &["--no-tls"][..] })
        .arg("--maildir")
        .arg(dir.join("maildir"))
        .arg("--queue-dir")
        .arg(dir.join("queue"))
        .args(args)
        .stderr_appended_to(dir.join("stderr"));
    for (key, value) in env {
        serve = serve.env(key, value);
    }
    serve.start()
}

/// `smtp queue ARGS`.
fn queue(args: &[&str]) -> Output {
    Command::new(SMTP).arg("queue").args(args).output().unwrap()
}

/// `smtp queue list --json` of `dir`'s queue.
fn list(dir: &Path) -> Vec<serde_json::Value> {
    let q = dir.join("queue");
    let out = queue(&["list", "--json", "--queue-dir", q.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Sends a message with swaks from a client that may relay; returns the queue id of
/// the 250.
fn swaks(port: u16, to: &str, subject: &str) -> String {
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--helo", "client.test", "--from", "alice@origin.test"])
        .args(["--to", to, "--header", &format!("Subject: {subject}")])
        .output()
        .expect("swaks is required for these tests (apt-get install swaks)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "swaks failed:\n{text}");
    let line = text
        .lines()
        .find(|l| l.contains("queued as "))
        .unwrap_or_else(|| panic!("no 250 queued as:\n{text}"));
    line.rsplit(' ').next().unwrap().trim().to_owned()
}

fn dumped(dump: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(dump).unwrap_or_default()).into_owned()
}

fn maildir_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("maildir/new"))
        .map(|d| {
            d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A raw SMTP client: one line out, one reply in.
struct Client(TcpStream);

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Client(s);
        assert!(c.reply().starts_with("220"));
        c
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = Vec::new();
            let mut b = [0u8];
            while !line.ends_with(b"\r\n") {
                match self.0.read(&mut b) {
                    Ok(n) => assert_eq!(n, 1, "connection closed"),
                    // A signal (a child of this test process exiting) is not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("read: {e}"),
                }
                line.push(b[0]);
            }
            let line = String::from_utf8(line).unwrap();
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.0.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }
}

/// Relay control: an unauthenticated client outside --relay-network relays nothing,
/// whatever the address trick; --relay-domain is relayed for anyone; AUTH and
/// --relay-network allow relaying.
fn relay_control(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let users = dir.path().join("users");
    std::fs::write(&users, "tim:tanstaaf\n").unwrap();
    let transport = format!("dest.test=127.0.0.1:{sink_port}");
    let gateway = format!("gw.test=127.0.0.1:{sink_port}");
    let server = start(
        io,
        dir.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-domain",
            "GW.test",
            "--relay-network",
            "10.0.0.0/8",
            "--relay-network",
            "2001:db8::/32",
            "--transport",
            &transport,
            "--transport",
            &gateway,
            "--auth-file",
            users.to_str().unwrap(),
            "--allow-insecure-auth",
        ],
    );
    let mut c = Client::connect(server.port());
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<alice@origin.test>").starts_with("250"));
    for to in [
        "<bob@dest.test>",
        "<user@other.test>",
        "<user%other.test@local.test>",
        "<user%dest.test@gw.test>",
        "<@a.test:user@other.test>",
        "<@local.test:user@other.test>",
        "<\"user@other.test\"@local.test>",
        "<user!other.test@local.test>",
        "<user@[127.0.0.1]>",
        "<user@[IPv6:::1]>",
    ] {
        let reply = c.cmd(&format!("RCPT TO:{to}"));
        assert!(reply.starts_with("554 5.7.1 "), "{to}: {reply}");
    }
    // The core refuses a trailing dot as bad syntax before relay control sees it.
    let reply = c.cmd("RCPT TO:<user@other.test.>");
    assert!(reply.starts_with('5'), "{reply}");
    // Local and relay domains, any case.
    assert!(c.cmd("RCPT TO:<me@Local.TEST>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<carol@gw.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let reply = c.cmd("Subject: gateway\r\n\r\nHello.\r\n.");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    // AUTH allows relaying.
    assert!(c.cmd("AUTH PLAIN AHRpbQB0YW5zdGFhZg==").starts_with("235"));
    assert!(c.cmd("MAIL FROM:<alice@origin.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@dest.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(
        c.cmd("Subject: authenticated\r\n\r\nfor bob\r\n.")
            .starts_with("250")
    );
    c.cmd("QUIT");
    until("both relayed messages", 20, || {
        let d = dumped(&dump);
        d.contains("Subject: gateway") && d.contains("Subject: authenticated")
    });
    let d = dumped(&dump);
    assert!(d.contains("X-Rcpt-Args: <carol@gw.test>"), "{d}");
    assert!(d.contains("X-Rcpt-Args: <bob@dest.test>"), "{d}");
    assert!(!d.contains("other.test>"), "{d}");
    // The local recipient's copy is in the Maildir.
    let stored = maildir_files(dir.path());
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].contains("Delivered-To: <me@Local.TEST>"),
        "{}",
        stored[0]
    );
    assert!(!stored[0].contains("<carol@gw.test>"), "{}", stored[0]);
    until("an empty queue", 20, || list(dir.path()).is_empty());
    assert!(server.stop().success());

    // A client in --relay-network relays without AUTH.
    let dir2 = tempfile::tempdir().unwrap();
    let server = start(
        io,
        dir2.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.0/8",
            "--transport",
            &transport,
        ],
    );
    let mut c = Client::connect(server.port());
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<alice@origin.test>");
    assert!(c.cmd("RCPT TO:<dan@dest.test>").starts_with("250"));
    // A trusted client's percent hack at a local domain is a local mailbox.
    assert!(
        c.cmd("RCPT TO:<user%other.test@local.test>")
            .starts_with("250")
    );
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(
        c.cmd("Subject: network\r\n\r\nfor dan\r\n.")
            .starts_with("250")
    );
    c.cmd("QUIT");
    until("the relayed message", 20, || {
        dumped(&dump).contains("Subject: network")
    });
    assert!(!dumped(&dump).contains("other.test>"));
    assert_eq!(maildir_files(dir2.path()).len(), 1);
    assert!(server.stop().success());
}

/// swaks → smtp serve → smtp-sink: one message for a local and a relayed recipient,
/// each copy showing only its own recipient, the relayed copy with a Received line
/// carrying the id of the 250; the queue empties.
fn mixed_local_and_relayed(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let server = start(
        io,
        dir.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!(".dest.test=127.0.0.1:{sink_port}"),
        ],
    );
    let id = swaks(server.port(), "bob@mail.DEST.test,me@local.test", "mixed");
    until("the relayed copy", 20, || {
        dumped(&dump).contains("Subject: mixed")
    });
    let d = dumped(&dump);
    assert!(d.contains("X-Rcpt-Args: <bob@mail.DEST.test>"), "{d}");
    assert!(
        d.contains(&format!("by {HOSTNAME} with ESMTP id {id}")),
        "{d}"
    );
    assert!(!d.contains("me@local.test>"), "{d}");
    assert!(d.contains("X-Mail-Args: <alice@origin.test>"), "{d}");
    let stored = maildir_files(dir.path());
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains("Delivered-To: <me@local.test>"));
    assert!(!stored[0].contains("Delivered-To: <bob"));
    assert!(stored[0].contains(&id));
    until("an empty queue", 20, || list(dir.path()).is_empty());
    assert!(server.stop().success());
}

/// Another `smtp serve` as the next hop, with its self-signed STARTTLS: the default
/// `--relay-tls opportunistic` encrypts without checking the certificate (Postfix's
/// `may`), and the second server stores the message for its local domain.
fn second_smtp_serve_as_next_hop(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let hop_dir = dir.path().join("hop");
    std::fs::create_dir_all(&hop_dir).unwrap();
    let hop = Command::new(SMTP)
        .args([
            "serve",
            "--io",
            io,
            "--listen",
            "127.0.0.1:0",
            "--hostname",
            "hop.test",
        ])
        .args(["--local-domain", "dest.test", "--log-level", "warn"])
        .arg("--maildir")
        .arg(hop_dir.join("maildir"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut hop = HopGuard(hop);
    let mut first = String::new();
    BufReader::new(hop.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let hop_addr = first
        .trim()
        .strip_prefix("listening on ")
        .expect(&first)
        .to_owned();
    let server = start(
        io,
        dir.path(),
        &[
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!("dest.test={hop_addr}"),
        ],
    );
    let id = swaks(server.port(), "carol@dest.test", "second hop");
    until("the copy at the next hop", 20, || {
        maildir_files(&hop_dir).len() == 1
    });
    let stored = &maildir_files(&hop_dir)[0];
    assert!(stored.contains("Subject: second hop"), "{stored}");
    // Two Received lines: ours (with our queue id), then the next hop's, over TLS.
    assert!(
        stored.contains(&format!("by {HOSTNAME} with ESMTP id {id}")),
        "{stored}"
    );
    assert!(stored.contains("by hop.test with ESMTPS"), "{stored}");
    until("an empty queue", 20, || list(dir.path()).is_empty());
    assert!(server.stop().success());
}

/// Stops a child process when dropped.
struct HopGuard(Child);

impl Drop for HopGuard {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

/// A next hop that says 4xx: the recipient is deferred and `smtp queue list` says so;
/// `show` prints the message, `delete` removes one, and once the next hop takes mail
/// `smtp queue flush` sends the other at once. With no server, `flush` exits 69.
fn deferred_then_flushed(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let sink = smtp_sink_to(&dump, sink_port, &["-r", "RCPT"]);
    let server = start(
        io,
        dir.path(),
        &[
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!("dest.test=127.0.0.1:{sink_port}"),
            "--retry-min",
            "3600",
            "--retry-max",
            "7200",
        ],
    );
    let q = dir.path().join("queue");
    let q = q.to_str().unwrap();
    // With the MAIL and RCPT parameters a relay passes on (RFC 3461, RFC 6152).
    let mut c = Client::connect(server.port());
    c.cmd("EHLO client.test");
    let reply = c.cmd("MAIL FROM:<alice@origin.test> BODY=8BITMIME RET=HDRS ENVID=QQ+2B1");
    assert!(reply.starts_with("250"), "{reply}");
    let reply = c.cmd("RCPT TO:<bob@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@dest.test");
    assert!(reply.starts_with("250"), "{reply}");
    assert!(c.cmd("DATA").starts_with("354"));
    let reply = c.cmd("Subject: keep me\r\n\r\ncaf\u{e9}\r\n.");
    c.cmd("QUIT");
    let keep = reply.trim().rsplit(' ').next().unwrap().to_owned();
    let drop = swaks(server.port(), "carol@dest.test", "drop me");
    until("two deferred messages", 20, || {
        let l = list(dir.path());
        l.len() == 2 && l.iter().all(|m| m["recipients"][0]["status"] == "deferred")
    });
    let l = list(dir.path());
    let m = l.iter().find(|m| m["id"] == keep.as_str()).unwrap();
    assert_eq!(m["from"], "alice@origin.test");
    assert!(m["size"].as_u64().unwrap() > 100);
    assert!(m["arrived"].as_str().unwrap().ends_with('Z'));
    let r = &m["recipients"][0];
    assert_eq!(r["address"], "bob@dest.test");
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["last_reply"]["code"].as_u64().unwrap() / 100, 4, "{r}");
    assert!(r["last_error"].is_null());
    assert!(r["next_attempt"].as_str().unwrap() > m["arrived"].as_str().unwrap());
    // The table.
    let out = queue(&["list", "--queue-dir", q]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&keep) && table.contains("bob@dest.test"),
        "{table}"
    );
    assert!(
        table.contains("-- ") && table.contains("2 Requests."),
        "{table}"
    );

    let out = queue(&["show", "--queue-dir", q, &keep]);
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("Subject: keep me"), "{shown}");
    assert!(shown.contains(&format!("id {keep}")), "{shown}");

    let out = queue(&["delete", "--queue-dir", q, &drop]);
    assert!(out.status.success(), "{out:?}");
    let l = list(dir.path());
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["id"], keep.as_str());
    let out = queue(&["show", "--queue-dir", q, &drop]);
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());

    // The next hop takes mail now; the retry is an hour away, the flush is now.
    drop_peer(sink);
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let out = queue(&["flush", "--queue-dir", q]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    until("the flushed message", 20, || {
        dumped(&dump).contains("Subject: keep me")
    });
    until("an empty queue", 20, || list(dir.path()).is_empty());
    let d = dumped(&dump);
    assert!(!d.contains("Subject: drop me"));
    assert!(
        d.contains("X-Mail-Args: <alice@origin.test> BODY=8BITMIME RET=HDRS ENVID=QQ+2B1"),
        "{d}"
    );
    assert!(
        d.contains(
            "X-Rcpt-Args: <bob@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@dest.test"
        ),
        "{d}"
    );
    assert!(server.stop().success());
    let out = queue(&["flush", "--queue-dir", q]);
    assert_eq!(out.status.code(), Some(69), "{out:?}");
}

fn drop_peer(peer: Peer) {
    drop(peer);
}

/// kill -9 after messages were acknowledged while the next hop was down; restarted with
/// the next hop up, every one of them is delivered.
fn kill_9_loses_nothing(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let transport = format!("dest.test=127.0.0.1:{sink_port}");
    let args = [
        "--local-domain",
        "local.test",
        "--relay-network",
        "127.0.0.1/32",
        "--transport",
        &transport,
        "--retry-min",
        "1",
        "--retry-max",
        "2",
    ];
    let server = start(io, dir.path(), &args);
    let subjects: Vec<String> = (0..5).map(|i| format!("durable {i}")).collect();
    for s in &subjects {
        swaks(server.port(), "bob@dest.test,me@local.test", s);
    }
    server.kill_9();
    assert_eq!(list(dir.path()).len(), 5);
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let server = start(io, dir.path(), &args);
    until("every acknowledged message", 30, || {
        let d = dumped(&dump);
        subjects
            .iter()
            .all(|s| d.contains(&format!("Subject: {s}\n")))
    });
    until("an empty queue", 20, || list(dir.path()).is_empty());
    assert_eq!(maildir_files(dir.path()).len(), 5);
    assert!(server.stop().success());
}

/// `kill -9` while messages are both arriving and going out: after a restart every
/// message the client saw acknowledged reaches the next hop, and only those under way at
/// the kill may arrive twice (RFC 5321 §6.1).
fn kill_9_while_accepting_and_delivering(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let transport = format!("dest.test=127.0.0.1:{sink_port}");
    let args = [
        "--relay-network",
        "127.0.0.1/32",
        "--transport",
        &transport,
        "--retry-min",
        "1",
    ];
    let server = start(io, dir.path(), &args);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let sender = {
        let acked = std::sync::Arc::clone(&acked);
        let port = server.port();
        std::thread::spawn(move || {
            // Until the server dies under it: MAIL, RCPT, DATA, body, and the 250.
            let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let mut out = tcp.try_clone().unwrap();
            let mut lines = BufReader::new(tcp);
            let mut reply = || -> Option<String> {
                let mut all = String::new();
                loop {
                    let mut line = String::new();
                    match lines.read_line(&mut line) {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                    all.push_str(&line);
                    if line.as_bytes().get(3) == Some(&b' ') {
                        return Some(all);
                    }
                }
            };
            let _ = reply();
            let _ = out.write_all(b"EHLO load.test\r\n");
            let _ = reply();
            for k in 0.. {
                // MAIL, RCPT and DATA in one group (RFC 2920); the body after the 354.
                let envelope =
                    "MAIL FROM:<alice@origin.test>\r\nRCPT TO:<bob@dest.test>\r\nDATA\r\n";
                if out.write_all(envelope.as_bytes()).is_err() {
                    return;
                }
                for _ in 0..3 {
                    if reply().is_none() {
                        return;
                    }
                }
                let body = format!("Subject: load {k}\r\n\r\nbody {k}\r\n.\r\n");
                if out.write_all(body.as_bytes()).is_err() {
                    return;
                }
                let last = reply();
                if last.is_none() {
                    return;
                }
                if last.is_some_and(|r| r.starts_with("250")) {
                    acked.lock().unwrap().push(k);
                }
            }
        })
    };
    until("messages under way", 30, || {
        acked.lock().unwrap().len() >= 40
    });
    server.kill_9();
    sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let server = start(io, dir.path(), &args);
    until("an empty queue", 60, || list(dir.path()).is_empty());
    let d = dumped(&dump);
    let mut twice = 0;
    for k in &acked {
        let n = d.matches(&format!("Subject: load {k}\n")).count();
        assert!(n >= 1, "acknowledged message {k} was lost");
        twice += n - 1;
    }
    // At most what was being delivered at the kill (20 deliveries at once, by default).
    assert!(twice <= 20, "{twice} sent twice");
    assert!(server.stop().success());
}

/// `--relay-tls required` never sends without a verified TLS session: a next hop without
/// STARTTLS (smtp-sink) and one whose certificate does not verify (a second `smtp serve`,
/// self-signed) both leave the recipient deferred, and neither receives the message.
fn required_tls_never_sends_in_clear(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let hop_dir = dir.path().join("hop");
    std::fs::create_dir_all(&hop_dir).unwrap();
    let mut hop = Command::new(SMTP)
        .args([
            "serve",
            "--io",
            io,
            "--listen",
            "127.0.0.1:0",
            "--hostname",
            "hop.test",
        ])
        .args(["--local-domain", "tls.test", "--log-level", "warn"])
        .arg("--maildir")
        .arg(hop_dir.join("maildir"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(hop.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _hop = HopGuard(hop);
    let hop_addr = first
        .trim()
        .strip_prefix("listening on ")
        .expect(&first)
        .to_owned();
    let server = start(
        io,
        dir.path(),
        &[
            "--relay-network",
            "127.0.0.1/32",
            "--relay-tls",
            "required",
            "--transport",
            &format!("plain.test=127.0.0.1:{sink_port}"),
            "--transport",
            &format!("tls.test={hop_addr}"),
        ],
    );
    swaks(server.port(), "bob@plain.test", "never in clear");
    swaks(server.port(), "carol@tls.test", "never unverified");
    until("both deferred", 20, || {
        let q = list(dir.path());
        q.len() == 2 && q.iter().all(|m| m["recipients"][0]["status"] == "deferred")
    });
    let q = list(dir.path());
    let errors: Vec<String> = q
        .iter()
        .map(|m| {
            let r = &m["recipients"][0];
            format!("{} {}", r["last_reply"], r["last_error"])
        })
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("STARTTLS") || e.contains("TLS")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("certificate") || e.contains("UnknownIssuer")),
        "{errors:?}"
    );
    assert!(!dumped(&dump).contains("never in clear"));
    assert!(maildir_files(&hop_dir).is_empty());
    assert!(server.stop().success());
}

/// MX through dnsmasq (--dns-server) on --mx-port: the first MX has no server, the
/// second takes the message.
fn mx_via_dnsmasq(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let dns = Dnsmasq::start(&[
        "--mx-host=dest.test,mx1.dest.test,10",
        "--mx-host=dest.test,mx2.dest.test,20",
        "--host-record=mx1.dest.test,127.0.0.2",
        "--host-record=mx2.dest.test,127.0.0.1",
    ]);
    let server = start(
        io,
        dir.path(),
        &[
            "--relay-network",
            "127.0.0.1/32",
            "--dns-server",
            &dns.addr.to_string(),
            "--mx-port",
            &sink_port.to_string(),
        ],
    );
    swaks(server.port(), "bob@dest.test", "by mx");
    until("the message", 30, || {
        dumped(&dump).contains("Subject: by mx")
    });
    until("an empty queue", 20, || list(dir.path()).is_empty());
    assert!(server.stop().success());
}

/// The smarthost (aiosmtpd) with STARTTLS verified against a CA file and AUTH, the
/// password from SMTP_RELAY_PASSWORD.
fn smarthost_starttls_auth(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/aiosmtpd_server.py"
    );
    let port = free_port();
    let mut child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(&spool)
        .arg(&cert_pem)
        .arg(&key_pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with aiosmtpd (pip install aiosmtpd)");
    let mut ready = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready);
    let _peer = Peer(child);
    assert_eq!(ready.trim(), "ready", "aiosmtpd did not start");
    let server = start_env(
        io,
        dir.path(),
        &[
            "--relay-network",
            "127.0.0.1/32",
            "--relay-host",
            &format!("127.0.0.1:{port}"),
            "--relay-tls",
            "required",
            "--relay-ca-file",
            cert_pem.to_str().unwrap(),
            "--relay-auth",
            "alice",
        ],
        &[("SMTP_RELAY_PASSWORD", "s3cret")],
    );
    swaks(server.port(), "bob@anywhere.test", "via smarthost");
    until("the smarthost's copy", 20, || spool.join("1.env").exists());
    let env = std::fs::read_to_string(spool.join("1.env")).unwrap();
    assert!(env.contains("tls=True auth=True"), "{env}");
    assert!(env.contains("bob@anywhere.test"), "{env}");
    let eml = std::fs::read_to_string(spool.join("1.eml")).unwrap();
    assert!(eml.contains("Subject: via smarthost"), "{eml}");
    until("an empty queue", 20, || list(dir.path()).is_empty());
    assert!(server.stop().success());
}

/// Past --queue-lifetime an undelivered recipient fails and leaves the queue, logged,
/// and its sender (local here) gets a bounce.
#[test]
fn queue_lifetime_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let transport = format!("dest.test=127.0.0.1:{}", free_port());
    let server = start(
        "tokio",
        dir.path(),
        &[
            "--local-domain",
            "origin.test",
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &transport,
            "--retry-min",
            "1",
            "--retry-max",
            "1",
            "--queue-lifetime",
            "2",
        ],
    );
    let id = swaks(server.port(), "bob@dest.test", "too late");
    until("the message to leave the queue", 30, || {
        list(dir.path()).is_empty()
    });
    until("the bounce", 10, || !maildir_reports(dir.path()).is_empty());
    assert!(maildir_reports(dir.path())[0].contains("Status: 4.4.7\r\n"));
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(
        log.lines().any(|l| l.contains(&id)
            && l.contains("queue lifetime expired")
            && l.contains("failed")),
        "{log}"
    );
}

#[test]
fn queue_usage_and_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("queue");
    let q = q.to_str().unwrap();
    assert_eq!(queue(&["frobnicate"]).status.code(), Some(64));
    assert_eq!(queue(&["delete", "--queue-dir", q]).status.code(), Some(64));
    assert_eq!(queue(&["flush", "--queue-dir", q]).status.code(), Some(69));
    // A queue never created is empty.
    let out = queue(&["list", "--json", "--queue-dir", q]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = queue(&["show", "--queue-dir", q, "NOSUCHID"]);
    assert!(!out.status.success());
    // Relay options are checked: a bad route or network is a usage error.
    for bad in [
        &["--transport", "dest.test"][..],
        &["--relay-network", "10.0.0.0/33"],
        &["--relay-host", "nowhere"],
        &["--relay-tls", "sometimes"],
        &[
            "--relay-network",
            "10.0.0.0/8",
            "--outbound-helo",
            "bad name",
        ],
        &["--relay-network", "10.0.0.0/8", "--retry-min", "0"],
    ] {
        let out = Command::new(SMTP)
            .args(["serve", "--queue-dir", q])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{bad:?}");
    }
    // Without a relay option no queue is created.
    assert!(!Path::new(q).exists());
}

/// A second server on the same queue is refused; the first keeps it.
#[test]
fn one_server_per_queue() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--relay-network", "127.0.0.1/32"];
    let first = start("tokio", dir.path(), &args);
    let out = Command::new(SMTP)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-tls"])
        .arg("--queue-dir")
        .arg(dir.path().join("queue"))
        .arg("--maildir")
        .arg(dir.path().join("maildir"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let q = dir.path().join("queue");
    let out = queue(&["flush", "--queue-dir", q.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(first.stop().success());
}

/// The reports in the Maildir (every file holding a `multipart/report`).
fn maildir_reports(dir: &Path) -> Vec<String> {
    maildir_files(dir)
        .into_iter()
        .filter(|m| m.contains("multipart/report"))
        .collect()
}

/// What Python's `email` package reads in a report: one fact per line.
fn python_reads(message: &str) -> String {
    let script = r#"
import sys, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
print("type", m.get_content_type(), m.get_param("report-type"))
print("from", m["From"]); print("to", m["To"]); print("subject", m["Subject"])
print("auto", m["Auto-Submitted"]); print("date", m["Date"] is not None)
print("message-id", m["Message-ID"] is not None)
parts = m.get_payload()
print("parts", [p.get_content_type() for p in parts])
blocks = parts[1].get_payload()
for k in ("Reporting-MTA", "Original-Envelope-Id", "Arrival-Date"):
    print("per-message", k, blocks[0][k] is not None and blocks[0][k] or None)
for b in blocks[1:]:
    for k in ("Final-Recipient", "Original-Recipient", "Action", "Status", "Remote-MTA",
              "Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until"):
        if b[k] is not None:
            print("recipient", k, b[k])
third = parts[2]
if third.get_content_type() == "message/rfc822":
    print("returned subject", third.get_payload()[0]["Subject"])
else:
    print("returned headers", [l for l in third.get_payload().splitlines() if l.startswith("Subject:")])
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{message}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn has(seen: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(
            seen.lines().any(|l| l.starts_with(w)),
            "{w:?} not in\n{seen}"
        );
    }
}

/// One message from a local sender through a raw client, with DSN parameters.
fn send_dsn(port: u16, mail: &str, rcpts: &[&str], body: &str) -> String {
    let mut c = Client::connect(port);
    c.cmd("EHLO client.test");
    let reply = c.cmd(mail);
    assert!(reply.starts_with("250"), "{reply}");
    for r in rcpts {
        let reply = c.cmd(r);
        assert!(reply.starts_with("250"), "{r}: {reply}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    let reply = c.cmd(&format!("{body}\r\n."));
    c.cmd("QUIT");
    reply
}

/// A next hop that answers 550: the local sender finds a bounce in its Maildir, which
/// Python reads as a multipart/report with the RFC 3464 fields, ENVID, ORCPT and the
/// whole message (RET=FULL).
fn bounce_after_550(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &["-f", "RCPT"]);
    let server = start(
        io,
        dir.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!("dest.test=127.0.0.1:{sink_port}"),
        ],
    );
    let reply = send_dsn(
        server.port(),
        "MAIL FROM:<alice@local.test> RET=FULL ENVID=QQ+2B1",
        &[
            "RCPT TO:<bob@dest.test> ORCPT=rfc822;Bob@Dest.TEST",
            "RCPT TO:<carol@dest.test> NOTIFY=NEVER",
        ],
        "Subject: refused\r\n\r\nHello Bob.",
    );
    assert!(reply.starts_with("250"), "{reply}");
    until("the bounce", 30, || !maildir_reports(dir.path()).is_empty());
    until("an empty queue", 20, || list(dir.path()).is_empty());
    let reports = maildir_reports(dir.path());
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].starts_with("Return-Path: <>\r\n"),
        "{}",
        reports[0]
    );
    let seen = python_reads(&reports[0]);
    has(
        &seen,
        &[
            "type multipart/report delivery-status",
            &format!("from Mail Delivery System <MAILER-DAEMON@{HOSTNAME}>"),
            "to <alice@local.test>",
            "subject Undelivered Mail Returned to Sender",
            "auto auto-replied",
            "date True",
            "message-id True",
            "parts ['text/plain', 'message/delivery-status', 'message/rfc822']",
            &format!("per-message Reporting-MTA dns; {HOSTNAME}"),
            "per-message Original-Envelope-Id QQ+1",
            "per-message Arrival-Date ",
            "recipient Final-Recipient rfc822; bob@dest.test",
            "recipient Original-Recipient rfc822; Bob@Dest.TEST",
            "recipient Action failed",
            "recipient Status 5.",
            "recipient Remote-MTA dns; 127.0.0.1",
            "recipient Diagnostic-Code smtp; 5",
            "recipient Last-Attempt-Date ",
            "returned subject refused",
        ],
    );
    // NOTIFY=NEVER: carol is not in it.
    assert!(!seen.contains("carol@dest.test"), "{seen}");
    assert!(server.stop().success());
}

/// A next hop that answers 451 until the lifetime runs out: one delay warning
/// (--delay-warning), then a bounce saying 4.4.7; the headers only come back.
#[test]
fn delay_warning_then_lifetime_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &["-r", "RCPT"]);
    let server = start(
        "tokio",
        dir.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!("dest.test=127.0.0.1:{sink_port}"),
            "--retry-min",
            "1",
            "--retry-max",
            "1",
            "--delay-warning",
            "1",
            "--queue-lifetime",
            "4",
        ],
    );
    send_dsn(
        server.port(),
        "MAIL FROM:<alice@local.test>",
        &["RCPT TO:<bob@dest.test>"],
        "Subject: slow\r\n\r\nHello Bob.",
    );
    until("the message to leave the queue", 40, || {
        list(dir.path()).is_empty()
    });
    until("two reports", 10, || maildir_reports(dir.path()).len() == 2);
    let reports = maildir_reports(dir.path());
    let (delay, bounce): (Vec<&String>, Vec<&String>) =
        reports.iter().partition(|r| r.contains("Action: delayed"));
    assert_eq!((delay.len(), bounce.len()), (1, 1), "{reports:#?}");
    let seen = python_reads(delay[0]);
    has(
        &seen,
        &[
            "type multipart/report delivery-status",
            "subject Delayed Mail (still being retried)",
            "parts ['text/plain', 'message/delivery-status', 'text/rfc822-headers']",
            "recipient Action delayed",
            "recipient Status 4.",
            "recipient Diagnostic-Code smtp; 4",
            "recipient Will-Retry-Until ",
            "returned headers ['Subject: slow']",
        ],
    );
    let seen = python_reads(bounce[0]);
    has(
        &seen,
        &[
            "subject Undelivered Mail Returned to Sender",
            "recipient Final-Recipient rfc822; bob@dest.test",
            "recipient Action failed",
            "recipient Status 4.4.7",
            "returned headers ['Subject: slow']",
        ],
    );
    assert!(server.stop().success());
}

/// A null MX (RFC 7505) served by dnsmasq: the recipient fails at once with 5.1.10 and
/// the bounce says so.
#[test]
fn null_mx_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let dns = Dnsmasq::start(&["--mx-host=null.test,.,0"]);
    let server = start(
        "tokio",
        dir.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--dns-server",
            &dns.addr.to_string(),
        ],
    );
    send_dsn(
        server.port(),
        "MAIL FROM:<alice@local.test>",
        &["RCPT TO:<bob@null.test>"],
        "Subject: nowhere\r\n\r\nHello.",
    );
    until("the bounce", 30, || !maildir_reports(dir.path()).is_empty());
    let seen = python_reads(&maildir_reports(dir.path())[0]);
    has(
        &seen,
        &[
            "recipient Final-Recipient rfc822; bob@null.test",
            "recipient Action failed",
            "recipient Status 5.1.10",
            "recipient Diagnostic-Code X-Smtp-Relay; 5.1.10 Domain null.test does not accept mail (null MX)",
        ],
    );
    assert!(!seen.contains("Remote-MTA"), "{seen}");
    assert!(server.stop().success());
}

/// A bounce for a sender elsewhere is queued from <> and relayed like any message; a
/// success report for a local delivery with NOTIFY=SUCCESS is stored for a local sender.
#[test]
fn remote_bounce_and_local_success_report() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let refusing = free_port();
    let taking = free_port();
    let _refusing = smtp_sink_to(&dump, refusing, &["-f", "RCPT"]);
    let dump2 = dir.path().join("sink/dump2");
    let _taking = smtp_sink_to(&dump2, taking, &[]);
    let server = start(
        "tokio",
        dir.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!("dest.test=127.0.0.1:{refusing}"),
            "--transport",
            &format!("origin.test=127.0.0.1:{taking}"),
        ],
    );
    send_dsn(
        server.port(),
        "MAIL FROM:<carol@origin.test>",
        &["RCPT TO:<bob@dest.test>"],
        "Subject: from afar\r\n\r\nHi.",
    );
    until("the bounce at the sender's next hop", 30, || {
        dumped(&dump2).contains("Undelivered Mail Returned to Sender")
    });
    let d = dumped(&dump2);
    assert!(d.contains("X-Mail-Args: <>"), "{d}");
    assert!(d.contains("X-Rcpt-Args: <carol@origin.test>"), "{d}");
    assert!(d.contains("Subject: from afar"), "{d}");
    until("an empty queue", 20, || list(dir.path()).is_empty());

    // Stored locally with NOTIFY=SUCCESS: "delivered", to the local sender.
    send_dsn(
        server.port(),
        "MAIL FROM:<alice@local.test> ENVID=E1",
        &["RCPT TO:<me@local.test> NOTIFY=SUCCESS ORCPT=rfc822;me@local.test"],
        "Subject: keep\r\n\r\nHi.",
    );
    until("the success report", 20, || {
        !maildir_reports(dir.path()).is_empty()
    });
    let seen = python_reads(&maildir_reports(dir.path())[0]);
    has(
        &seen,
        &[
            "subject Successful Mail Delivery Report",
            "per-message Original-Envelope-Id E1",
            "recipient Final-Recipient rfc822; me@local.test",
            "recipient Original-Recipient rfc822; me@local.test",
            "recipient Action delivered",
            "recipient Status 2.0.0",
            "returned headers ['Subject: keep']",
        ],
    );
    assert!(server.stop().success());
}

/// Loops: 50 Received: lines get 554 5.4.6 at the end of data; a route back to one of
/// our own listening addresses (a wildcard listener included) bounces with 5.4.6.
#[test]
fn loops_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let own = free_port();
    let server = start(
        "tokio",
        dir.path(),
        &[
            "--listen",
            &format!("0.0.0.0:{own}"),
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!("dest.test=127.0.0.1:{own}"),
        ],
    );
    let hops = "Received: from a by b; Tue, 1 Jul 2025 09:05:03 +0000\r\n".repeat(50);
    let reply = send_dsn(
        server.port(),
        "MAIL FROM:<alice@local.test>",
        &["RCPT TO:<me@local.test>"],
        &format!("{hops}Subject: loop\r\n\r\nHi."),
    );
    assert!(reply.starts_with("554 5.4.6 "), "{reply}");
    assert!(maildir_files(dir.path()).is_empty());
    // 49 are fine.
    let hops = "Received: from a by b; Tue, 1 Jul 2025 09:05:03 +0000\r\n".repeat(49);
    let reply = send_dsn(
        server.port(),
        "MAIL FROM:<alice@local.test>",
        &["RCPT TO:<me@local.test>"],
        &format!("{hops}Subject: loop\r\n\r\nHi."),
    );
    assert!(reply.starts_with("250"), "{reply}");
    send_dsn(
        server.port(),
        "MAIL FROM:<alice@local.test>",
        &["RCPT TO:<bob@dest.test>"],
        "Subject: to myself\r\n\r\nHi.",
    );
    until("the bounce", 30, || !maildir_reports(dir.path()).is_empty());
    let seen = python_reads(&maildir_reports(dir.path())[0]);
    has(
        &seen,
        &[
            "recipient Status 5.4.6",
            "recipient Diagnostic-Code X-Smtp-Relay; 5.4.6 mail for 127.0.0.1:",
        ],
    );
    assert!(server.stop().success());
}

/// REQUIRETLS (RFC 8689) through the CLI: offered after STARTTLS, taken with MAIL
/// (Python's smtplib as the client), and a next hop without STARTTLS (smtp-sink) means a
/// bounce with 5.7.30 rather than a message in clear.
#[test]
fn requiretls_is_offered_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink/dump");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let sink_port = free_port();
    let _sink = smtp_sink_to(&dump, sink_port, &[]);
    let server = start(
        "tokio",
        dir.path(),
        &[
            "--tls",
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--transport",
            &format!("dest.test=127.0.0.1:{sink_port}"),
        ],
    );
    let script = r#"
import smtplib, ssl, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test")
s.ehlo()
print("before", s.has_extn("requiretls"))
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.ehlo()
print("after", s.has_extn("requiretls"))
s.sendmail("alice@local.test", ["bob@dest.test"],
           b"Subject: secret\r\n\r\nOnly over TLS.\r\n", mail_options=["REQUIRETLS"])
s.quit()
print("sent")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &server.port().to_string()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said, "before False\nafter True\nsent\n");
    until("the bounce", 30, || !maildir_reports(dir.path()).is_empty());
    let seen = python_reads(&maildir_reports(dir.path())[0]);
    has(
        &seen,
        &[
            "recipient Final-Recipient rfc822; bob@dest.test",
            "recipient Status 5.7.30",
            // RFC 8689 §5: only the header comes back.
            "returned headers ['Subject: secret']",
        ],
    );
    assert!(!dumped(&dump).contains("Only over TLS."));
    assert!(server.stop().success());
}

/// --check-recipient-domain: a relayed recipient at a null MX gets 556 5.1.10 at RCPT
/// (RFC 7505), at a domain that does not exist 550 5.1.2; one with MX records, a local
/// one and an address literal are taken.
fn rcpt_time_domain_check(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dns = Dnsmasq::start(&[
        "--mx-host=null.test,.,0",
        "--mx-host=real.test,mx.real.test,10",
        "--host-record=mx.real.test,127.0.0.9",
    ]);
    let server = start(
        io,
        dir.path(),
        &[
            "--local-domain",
            "local.test",
            "--relay-network",
            "127.0.0.1/32",
            "--dns-server",
            &dns.addr.to_string(),
            "--check-recipient-domain",
            "--retry-min",
            "3600",
        ],
    );
    let mut c = Client::connect(server.port());
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<alice@local.test>").starts_with("250"));
    let reply = c.cmd("RCPT TO:<bob@null.test>");
    assert!(reply.starts_with("556 5.1.10 "), "{reply}");
    assert!(reply.contains("null MX"), "{reply}");
    let reply = c.cmd("RCPT TO:<bob@nx.test>");
    assert!(reply.starts_with("550 5.1.2 "), "{reply}");
    for ok in ["<bob@real.test>", "<me@local.test>", "<bob@[127.0.0.9]>"] {
        let reply = c.cmd(&format!("RCPT TO:{ok}"));
        assert!(reply.starts_with("250"), "{ok}: {reply}");
    }
    c.cmd("QUIT");
    assert!(server.stop().success());
}

support::on_both!(
    relay_control,
    mixed_local_and_relayed,
    second_smtp_serve_as_next_hop,
    deferred_then_flushed,
    kill_9_loses_nothing,
    kill_9_while_accepting_and_delivering,
    required_tls_never_sends_in_clear,
    mx_via_dnsmasq,
    smarthost_starttls_auth,
    bounce_after_550,
    rcpt_time_domain_check,
);

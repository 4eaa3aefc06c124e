//! `smtp serve --verify` end to end, with `--io tokio` and `--io blocking`: dnsmasq on
//! loopback serves the SPF, DKIM and DMARC records; a small SMTP client on loopback sends;
//! pyspf judges the same SPF records (`tests/python/sender_auth.py`), dkimpy signs the
//! messages that are checked and verifies those `--dkim-sign` signed
//! (`tests/python/dkim_verify.py`). Every process is stopped by the test; everything lives
//! in a temporary directory. dnsmasq, python3, pyspf, dkimpy and dnspython are required
//! (`./test.sh` installs them).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::dnsmasq::Dnsmasq;
use support::serve::{SMTP, Serve, ServeCommand};

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sender_auth.py");
const DKIM_VERIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/dkim_verify.py");
const HOSTNAME: &str = "mx.example.test";

/// A running `smtp serve --verify` storing in `DIR/NAME`, stopped when dropped.
struct Verifying {
    _serve: Serve,
    port: u16,
    maildir: PathBuf,
}

impl Verifying {
    fn start(io: &str, dir: &Path, name: &str, dns: &Dnsmasq, extra: &[&str]) -> Verifying {
        let maildir = dir.join(name);
        let serve = ServeCommand::loopback(io, HOSTNAME)
            .args(["--no-tls", "--verify", "--dns-server"])
            .arg(dns.addr.to_string())
            .arg("--maildir")
            .arg(&maildir)
            .args(extra)
            .stderr_to(dir.join(format!("{name}.stderr")))
            .start();
        Verifying {
            port: serve.port(),
            _serve: serve,
            maildir,
        }
    }

    /// The stored messages, by Subject.
    fn stored(&self) -> Vec<(String, String)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap()
                    .trim_end()
                    .to_owned();
                (subject, text)
            })
            .collect()
    }

    /// The stored message with this Subject.
    fn message(&self, subject: &str) -> String {
        self.stored()
            .into_iter()
            .find(|(s, _)| s == subject)
            .unwrap_or_else(|| panic!("no message {subject:?} stored"))
            .1
    }
}

/// One SMTP connection, replies read whole.
struct Client {
    read: BufReader<TcpStream>,
    write: TcpStream,
}

impl Client {
    fn connect(port: u16, helo: &str) -> Client {
        Client::greet(port, &format!("EHLO {helo}"))
    }

    fn greet(port: u16, greeting: &str) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut c = Client {
            read: BufReader::new(stream.try_clone().unwrap()),
            write: stream,
        };
        assert!(c.reply().starts_with("220 "));
        assert!(c.command(greeting).starts_with("250"));
        c
    }

    /// A transaction to several recipients: the replies after the end of data (one per
    /// recipient with LMTP).
    fn send_to(&mut self, from: &str, to: &[&str], message: &[u8], replies: usize) -> Vec<String> {
        assert!(
            self.command(&format!("MAIL FROM:<{from}>"))
                .starts_with("250")
        );
        for rcpt in to {
            let reply = self.command(&format!("RCPT TO:<{rcpt}>"));
            assert!(reply.starts_with("250"), "{rcpt}: {reply}");
        }
        assert!(self.command("DATA").starts_with("354"));
        self.write.write_all(message).unwrap();
        self.write.write_all(b".\r\n").unwrap();
        (0..replies).map(|_| self.reply()).collect()
    }

    /// A reply's lines, CRLF-terminated.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(self.read.read_line(&mut line).unwrap() > 0, "closed");
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.write
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    /// MAIL, RCPT, DATA and the message: the reply to MAIL if it is refused, else the
    /// reply to the end of data.
    fn send(&mut self, from: &str, message: &[u8]) -> String {
        let mail = self.command(&format!("MAIL FROM:<{from}>"));
        if !mail.starts_with("250") {
            return mail;
        }
        assert!(
            self.command("RCPT TO:<bob@example.test>")
                .starts_with("250")
        );
        assert!(self.command("DATA").starts_with("354"));
        self.write.write_all(message).unwrap();
        self.write.write_all(b".\r\n").unwrap();
        self.reply()
    }
}

/// The `Authentication-Results:` fields of a stored message, each unfolded into its
/// `;`-separated parts (the authserv-id first).
fn results(stored: &str) -> Vec<Vec<String>> {
    let head = stored
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n", "\n");
    let mut fields: Vec<String> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        } else {
            fields.push(line.to_owned());
        }
    }
    fields
        .iter()
        .filter_map(|f| f.strip_prefix("Authentication-Results: "))
        .map(|v| v.split(";\n\t").map(str::to_owned).collect())
        .collect()
}

/// pyspf's results for `senders` from 127.0.0.1 after `EHLO helo`.
fn pyspf(dns: &Dnsmasq, helo: &str, senders: &[String]) -> Vec<String> {
    let out = Command::new("python3")
        .args([
            PEERS,
            "spf",
            &dns.addr.port().to_string(),
            "127.0.0.1",
            helo,
        ])
        .args(senders)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The SPF records: one domain per result, and a record that needs more than 10 lookups
/// (RFC 7208 §4.6.4).
fn spf_dns(extra: &[String]) -> Dnsmasq {
    let mut records: Vec<String> = [
        "--txt-record=helo.test,v=spf1 ip4:127.0.0.1 -all",
        "--txt-record=pass.test,v=spf1 ip4:127.0.0.1 -all",
        "--txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all",
        "--txt-record=softfail.test,v=spf1 ~all",
        "--txt-record=neutral.test,v=spf1 ?all",
    ]
    .map(str::to_owned)
    .to_vec();
    let includes: Vec<String> = (1..=11).map(|i| format!("include:l{i}.test")).collect();
    records.push(format!(
        "--txt-record=permerror.test,v=spf1 {} -all",
        includes.join(" ")
    ));
    records.extend((1..=11).map(|i| format!("--txt-record=l{i}.test,v=spf1 -all")));
    records.extend_from_slice(extra);
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    Dnsmasq::start(&refs)
}

fn spf_as_pyspf(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dns = spf_dns(&[]);
    let serve = Verifying::start(io, dir.path(), "maildir", &dns, &[]);
    let domains = [
        "pass",
        "fail",
        "softfail",
        "neutral",
        "none",
        "permerror",
        "null",
    ];
    let senders: Vec<String> = domains
        .iter()
        .map(|d| match *d {
            "null" => String::new(),
            d => format!("a@{d}.test"),
        })
        .collect();
    let mut c = Client::connect(serve.port, "helo.test");
    for (domain, sender) in domains.iter().zip(&senders) {
        let message = format!("From: a@example.test\r\nSubject: {domain}\r\n\r\nHello\r\n");
        let reply = c.send(sender, message.as_bytes());
        assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    }
    let expected = pyspf(&dns, "helo.test", &senders);
    assert_eq!(
        expected,
        [
            "pass",
            "fail",
            "softfail",
            "neutral",
            "none",
            "permerror",
            "pass"
        ]
    );
    for ((domain, sender), pyspf) in domains.iter().zip(&senders).zip(&expected) {
        let stored = serve.message(domain);
        let fields = results(&stored);
        assert_eq!(fields.len(), 1, "{stored}");
        let parts = &fields[0];
        assert_eq!(parts[0], HOSTNAME);
        let mailfrom = match sender.as_str() {
            "" => "<>".to_owned(),
            s => s.to_owned(),
        };
        let spf = parts
            .iter()
            .find(|p| p.ends_with(&format!(" smtp.mailfrom={mailfrom}")))
            .unwrap_or_else(|| panic!("no smtp.mailfrom entry: {parts:?}"));
        assert!(
            spf.starts_with(&format!("spf={pyspf} (")),
            "{domain}: {spf}"
        );
        // The HELO identity too.
        assert!(
            parts.contains(
                &"spf=pass (mx.example.test: domain of postmaster@helo.test designates \
                  127.0.0.1 as permitted sender) smtp.helo=helo.test"
                    .to_owned()
            ),
            "{parts:?}"
        );
        // The header is at the top of the message, right after this server's Received.
        let received_end = stored.find("Authentication-Results: ").unwrap();
        assert!(stored[..received_end].contains("Received: "), "{stored}");
        assert!(!stored[..received_end].contains("From: "), "{stored}");
    }
    assert_eq!(
        results(&serve.message("pass"))[0][1],
        "spf=pass (mx.example.test: domain of a@pass.test designates 127.0.0.1 as permitted \
         sender) smtp.mailfrom=a@pass.test"
    );
    assert_eq!(
        results(&serve.message("fail"))[0][1],
        "spf=fail (mx.example.test: domain of a@fail.test does not designate 127.0.0.1 as \
         permitted sender) smtp.mailfrom=a@fail.test"
    );

    // --spf-reject: a fail is refused at MAIL, nothing else.
    let strict = Verifying::start(io, dir.path(), "strict", &dns, &["--spf-reject"]);
    let mut c = Client::connect(strict.port, "helo.test");
    let message = b"From: a@example.test\r\nSubject: strict\r\n\r\nHello\r\n";
    assert_eq!(
        c.send("a@fail.test", message),
        "550 5.7.23 SPF validation failed: fail.test does not designate 127.0.0.1 as \
         permitted sender\r\n"
    );
    for sender in ["a@softfail.test", "a@permerror.test", "a@none.test"] {
        let reply = c.send(sender, message);
        assert!(reply.starts_with("250 2.0.0 "), "{sender}: {reply}");
    }
}

/// An RSA key for `s1._domainkey.example.test` from `smtp dkim keygen`: its file, and
/// the dnsmasq option publishing it.
fn dkim_key(dir: &Path) -> (PathBuf, String) {
    dkim_key_for(dir, "example.test")
}

/// [`dkim_key`] for `s1._domainkey.DOMAIN`.
fn dkim_key_for(dir: &Path, domain: &str) -> (PathBuf, String) {
    let key = dir.join(format!("s1.{domain}.pem"));
    let out = Command::new(SMTP)
        .args(["dkim", "keygen", "--domain", domain, "--selector", "s1"])
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let strings = stdout
        .split_once("( \"")
        .and_then(|(_, s)| s.strip_suffix("\" )\n"))
        .unwrap();
    let strings: Vec<&str> = strings.split("\" \"").collect();
    (
        key,
        format!("--txt-record=s1._domainkey.{domain},{}", strings.join(",")),
    )
}

/// `message` signed by dkimpy with `key` (s1, example.test).
fn dkimpy_sign(key: &Path, message: &str) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg(PEERS)
        .arg("sign")
        .arg(key)
        .args(["s1", "example.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

/// dkimpy's verdict on the message in `file` (`tests/python/dkim_verify.py`), the keys
/// from `dns`.
fn dkimpy_verdict(dns: &Dnsmasq, file: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(DKIM_VERIFY)
        .arg(dns.addr.port().to_string())
        .arg(file)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The signed message, its body changed after signing.
fn changed_in_transit(signed: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(signed.to_vec()).unwrap();
    text.replace("Hello Bob", "Hello Eve").into_bytes()
}

fn dkim_dmarc_and_forged_results(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (key, key_record) = dkim_key(dir.path());
    let dns = Dnsmasq::start(&[
        &key_record,
        "--txt-record=helo.test,v=spf1 ip4:127.0.0.1 -all",
        "--txt-record=other.test,v=spf1 ?all",
        "--txt-record=_dmarc.example.test,v=DMARC1; p=reject",
    ]);
    let serve = Verifying::start(io, dir.path(), "maildir", &dns, &[]);
    let message = |subject: &str| {
        // A forged verdict in our name, and another server's, which stays.
        format!(
            "Authentication-Results: mx.example.test; dkim=pass; dmarc=pass\r\n\
             Authentication-Results: other.example; spf=pass smtp.mailfrom=x@other.example\r\n\
             From: Alice <alice@example.test>\r\n\
             To: Bob <bob@example.test>\r\n\
             Subject: {subject}\r\n\
             Date: Tue, 08 Dec 2026 02:00:00 +0000\r\n\
             \r\n\
             Hello Bob,\r\n\
             this  line has  runs of spaces\r\n"
        )
    };
    let signed = dkimpy_sign(&key, &message("intact"));
    let changed = changed_in_transit(&dkimpy_sign(&key, &message("changed")));
    let mut c = Client::connect(serve.port, "helo.test");
    // SPF of other.test is neutral and not aligned with example.test: DMARC rests on DKIM.
    for m in [&signed, &changed] {
        let reply = c.send("bounce@other.test", m);
        assert!(reply.starts_with("250 2.0.0 "), "{reply}");
    }

    let intact = serve.message("intact");
    let fields = results(&intact);
    assert_eq!(fields.len(), 2, "{intact}");
    let ours = &fields[0];
    assert_eq!(ours[0], HOSTNAME);
    assert_eq!(
        ours[1],
        "spf=neutral (mx.example.test: domain of bounce@other.test reports neutral for \
         127.0.0.1) smtp.mailfrom=bounce@other.test"
    );
    assert!(ours[2].ends_with(" smtp.helo=helo.test"), "{ours:?}");
    assert!(
        ours[3].starts_with("dkim=pass header.d=example.test header.s=s1 header.b="),
        "{ours:?}"
    );
    assert_eq!(
        ours[4],
        "dmarc=pass header.from=example.test policy.dmarc=reject"
    );
    assert_eq!(ours.len(), 5);
    // The forged field is gone; the other server's stays.
    assert_eq!(
        fields[1],
        ["other.example; spf=pass smtp.mailfrom=x@other.example"]
    );
    assert_eq!(
        intact
            .matches("Authentication-Results: mx.example.test")
            .count(),
        1
    );
    assert!(!intact.contains("dkim=pass; dmarc=pass"), "{intact}");

    // Over 1 MiB: the tokio host checks it on its blocking pool; the verdict is the same.
    let mut large = message("large");
    for _ in 0..30_000 {
        large
            .push_str("0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    }
    let large = dkimpy_sign(&key, &large);
    assert!(large.len() > 2 << 20);
    let reply = c.send("bounce@other.test", &large);
    assert!(reply.starts_with("250 2.0.0 "), "{reply}");
    let stored = serve.message("large");
    let ours = &results(&stored)[0];
    assert!(
        ours[3].starts_with("dkim=pass header.d=example.test header.s=s1 header.b="),
        "{ours:?}"
    );
    assert_eq!(
        ours[4],
        "dmarc=pass header.from=example.test policy.dmarc=reject"
    );

    let changed_stored = serve.message("changed");
    let ours = &results(&changed_stored)[0];
    assert!(
        ours[3].starts_with(
            "dkim=fail (body hash did not verify) header.d=example.test header.s=s1 header.b="
        ),
        "{ours:?}"
    );
    assert_eq!(
        ours[4],
        "dmarc=fail (policy not aligned) header.from=example.test policy.dmarc=reject"
    );

    // --dmarc-reject: the changed message is refused at the end of data, the intact one
    // is not.
    let strict = Verifying::start(io, dir.path(), "strict", &dns, &["--dmarc-reject"]);
    let mut c = Client::connect(strict.port, "helo.test");
    assert_eq!(
        c.send("bounce@other.test", &changed),
        "550 5.7.1 Rejected by DMARC policy for example.test\r\n"
    );
    assert!(
        c.send("bounce@other.test", &signed)
            .starts_with("250 2.0.0 ")
    );
    let stored = strict.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "intact");
}

fn auth_clients_signed_not_checked(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (key, key_record) = dkim_key(dir.path());
    let dns = Dnsmasq::start(&[
        &key_record,
        "--txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all",
    ]);
    let auth = dir.path().join("users");
    std::fs::write(&auth, "alice:secret\n").unwrap();
    let spec = format!("example.test:s1:{}", key.display());
    let auth_arg = auth.display().to_string();
    let serve = Verifying::start(
        io,
        dir.path(),
        "maildir",
        &dns,
        &[
            "--spf-reject",
            "--dkim-sign",
            &spec,
            "--auth-file",
            &auth_arg,
            "--allow-insecure-auth",
        ],
    );
    let mut c = Client::connect(serve.port, "client.test");
    // alice / secret
    assert!(
        c.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
            .starts_with("235")
    );
    let message = "From: Alice <alice@example.test>\r\n\
        To: Bob <bob@example.test>\r\n\
        Subject: submitted\r\n\
        \r\n\
        Hello Bob.\r\n";
    // Its SPF would fail: it is not checked.
    let reply = c.send("alice@fail.test", message.as_bytes());
    assert!(reply.starts_with("250 2.0.0 "), "{reply}");
    let stored = serve.message("submitted");
    assert!(!stored.contains("Authentication-Results:"), "{stored}");
    assert_eq!(stored.matches("DKIM-Signature: ").count(), 1, "{stored}");

    let file = std::fs::read_dir(serve.maildir.join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let v = dkimpy_verdict(&dns, &file);
    assert_eq!(v["verify"], serde_json::json!([true]), "{v}");
    assert_eq!(v["tampered"], serde_json::json!([false]), "{v}");

    // An unauthenticated client's MAIL is checked.
    let mut c = Client::connect(serve.port, "client.test");
    assert!(
        c.send("alice@fail.test", message.as_bytes())
            .starts_with("550 5.7.23 ")
    );
}

/// Every file under `dir` (recursively) whose parent directory is named `parent`.
fn files_in(dir: &Path, parent: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_in(&path, parent));
        } else if path.parent().unwrap().file_name().unwrap() == parent {
            found.push(path);
        }
    }
    found
}

/// Our verdict's parts in a stored or queued file, which must hold exactly one, and no
/// forged one.
fn our_verdict(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(!text.contains("dkim=pass; forged"), "{text}");
    let ours: Vec<Vec<String>> = results(&text)
        .into_iter()
        .filter(|r| r[0] == HOSTNAME)
        .collect();
    assert_eq!(ours.len(), 1, "{}: {text}", file.display());
    ours.into_iter().next().unwrap()
}

const FORGED: &[u8] = b"Authentication-Results: mx.example.test; dkim=pass; forged\r\n\
    From: a@pass.test\r\n\
    Subject: copies\r\n\
    \r\n\
    Hello\r\n";

fn every_copy_gets_the_header(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    // Relayed, so signed too.
    let (key, key_record) = dkim_key_for(dir.path(), "pass.test");
    let dns = spf_dns(&[key_record]);
    let spec = format!("pass.test:s1:{}", key.display());
    let queue = dir.path().join("queue");
    let queue_arg = queue.display().to_string();
    // The next hop never answers: the relayed copy stays in the queue.
    let serve = Verifying::start(
        io,
        dir.path(),
        "maildir",
        &dns,
        &[
            "--maildir-per-recipient",
            "--local-domain",
            "example.test",
            "--relay-network",
            "127.0.0.0/8",
            "--relay-host",
            "127.0.0.1:9",
            "--queue-dir",
            &queue_arg,
            "--dkim-sign",
            &spec,
        ],
    );
    let mut c = Client::connect(serve.port, "helo.test");
    let replies = c.send_to(
        "a@pass.test",
        &["bob@example.test", "carol@example.test", "dave@far.test"],
        FORGED,
        1,
    );
    assert!(replies[0].starts_with("250 2.0.0 "), "{replies:?}");
    drop(serve);
    let mut files = files_in(&dir.path().join("maildir"), "new");
    assert_eq!(files.len(), 2, "{files:?}");
    let queued = files_in(&queue, "msg");
    assert_eq!(queued.len(), 1, "{queued:?}");
    files.extend(queued.iter().cloned());
    for file in &files {
        let ours = our_verdict(file);
        assert!(
            ours[1].starts_with("spf=pass (") && ours[1].ends_with(" smtp.mailfrom=a@pass.test"),
            "{ours:?}"
        );
    }
    // The queued message (past its envelope line) carries a signature dkimpy verifies.
    let text = std::fs::read_to_string(&queued[0]).unwrap();
    let message = dir.path().join("queued.eml");
    std::fs::write(&message, text.split_once('\n').unwrap().1).unwrap();
    let v = dkimpy_verdict(&dns, &message);
    assert_eq!(v["signatures"], 1, "{v}");
    assert_eq!(v["verify"], serde_json::json!([true]), "{v}");
}

fn lmtp(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dns = spf_dns(&[]);
    let serve = Verifying::start(io, dir.path(), "maildir", &dns, &["--lmtp"]);
    let mut c = Client::greet(serve.port, "LHLO helo.test");
    let replies = c.send_to(
        "a@pass.test",
        &["bob@example.test", "carol@example.test"],
        FORGED,
        2,
    );
    for reply in &replies {
        assert!(reply.starts_with("250 2.0.0 "), "{replies:?}");
    }
    let files = files_in(&serve.maildir, "new");
    assert_eq!(files.len(), 1, "{files:?}");
    let ours = our_verdict(&files[0]);
    assert!(ours[1].starts_with("spf=pass ("), "{ours:?}");
    // dmarc: no record for pass.test.
    assert_eq!(
        ours.last().unwrap(),
        "dmarc=none header.from=pass.test policy.dmarc=none"
    );
}

/// A DNS server that never answers: every lookup times out (`temperror`), which never
/// refuses for good.
fn dns_time_out_never_refuses(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent.local_addr().unwrap().to_string();
    let maildir = dir.path().join("maildir");
    let mut child = Command::new(SMTP)
        .args(["serve", "--listen", "127.0.0.1:0", "--hostname", HOSTNAME])
        .args([
            "--no-tls",
            "--io",
            io,
            "--verify",
            "--spf-reject",
            "--dmarc-reject",
        ])
        .args(["--dns-server", &dns, "--maildir"])
        .arg(&maildir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim_end().rsplit(':').next().unwrap().parse().unwrap();
    let mut c = Client::connect(port, "helo.test");
    let reply = c.send("a@fail.test", FORGED);
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("250 2.0.0 "), "{reply}");
    let files = files_in(&maildir, "new");
    let ours = our_verdict(&files[0]);
    assert!(ours[1].starts_with("spf=temperror ("), "{ours:?}");
    assert!(
        ours.last().unwrap().starts_with("dmarc=temperror"),
        "{ours:?}"
    );
}

/// The policies need --verify (EX_USAGE without it); a key file that cannot be read is
/// EX_CONFIG, said before anything listens.
#[test]
fn options() {
    for flag in ["--spf-reject", "--dmarc-reject"] {
        let out = Command::new(SMTP)
            .args(["serve", "--listen", "127.0.0.1:0", "--discard", flag])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{flag}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--verify"), "{stderr}");
    }
    let out = Command::new(SMTP)
        .args(["serve", "--listen", "127.0.0.1:0", "--discard", "--verify"])
        .args(["--dkim-sign", "example.test:s1:/nonexistent/s1.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "smtp serve: DKIM key file /nonexistent/s1.pem: No such file or directory (os error 2)\n"
    );
}

support::on_both!(
    spf_as_pyspf,
    dkim_dmarc_and_forged_results,
    auth_clients_signed_not_checked,
    every_copy_gets_the_header,
    lmtp,
    dns_time_out_never_refuses,
);

//! Interop with peers nobody here wrote: Python's `smtplib` as a client of the blocking
//! server, and `aiosmtpd` as a server for the blocking client.
//!
//! Both need `python3`; aiosmtpd is installed by `./test.sh`. A missing peer fails the
//! test, never skips it.

mod behaviour;
mod harness;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use behaviour::{Certs, Harness, Options, PASSWORD, USER, client_config, envelope};
use harness::Blocking;
use smtp_proto::client::{DeliveryStatus, RecipientStatus, StartTls};
use smtp_proto::sasl::{ClientCredentials, Mechanism};

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
        .display()
        .to_string()
}

/// Fails unless python3 can import `module` (`./test.sh` installs what is missing).
fn require_python(module: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with {module} is required (./test.sh installs it)"
    );
}

#[test]
fn smtplib_client_against_blocking_server() {
    require_python("smtplib");
    let certs = Certs::new();
    let server = Blocking.start(
        Options {
            tls: true,
            auth: true,
            ..Options::default()
        },
        &certs,
    );
    let out = Command::new("python3")
        .arg(script("smtplib_client.py"))
        .arg(server.addr().port().to_string())
        .arg(&certs.ca_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "{stdout}\n{stderr}"
    );
    let stored = server.store().messages();
    assert_eq!(stored.len(), 4, "{stored:?}");
    let plain = &stored[0];
    assert_eq!(
        plain.body,
        b"Subject: plain\r\n\r\ncaf\xc3\xa9 8-bit\r\n.leading dot\r\n"
    );
    assert_eq!(plain.to, ["<bob@example.org>", "<carol@example.org>"]);
    assert!(!plain.tls);
    for (m, mech) in stored[1..].iter().zip(["PLAIN", "LOGIN", "CRAM-MD5"]) {
        assert!(m.tls);
        assert_eq!(m.auth.as_deref(), Some(USER));
        assert!(
            m.body
                .starts_with(format!("Subject: {mech}\r\n").as_bytes())
        );
    }
    server.stop();
}

/// The aiosmtpd child: killed (by its own handle) when the test ends, however it ends.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn start(certs: &Certs) -> (Peer, u16) {
        let mut child = Command::new("python3")
            // aiosmtpd warns about its own deprecated attributes.
            .args(["-W", "ignore"])
            .arg(script("aiosmtpd_server.py"))
            .arg(&certs.ca_file)
            .arg(&certs.key_file)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let peer = Peer { child, lines };
        let first = peer.next_line();
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port from aiosmtpd: {first:?}"));
        (peer, port)
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from aiosmtpd")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn blocking_client_against_aiosmtpd() {
    require_python("aiosmtpd");
    let certs = Certs::new();
    let (peer, port) = Peer::start(&certs);
    let server = format!("127.0.0.1:{port}");

    // Plain, several messages on one connection, a recipient refused. aiosmtpd offers
    // no PIPELINING, so the client goes command by command.
    let mut conn = behaviour::Certs::connector(&certs, client_config(StartTls::Never))
        .build()
        .unwrap()
        .connect(&server)
        .unwrap();
    assert!(!conn.capabilities().unwrap().pipelining);
    let o = conn
        .send(
            envelope(
                "alice@example.org",
                &["bob@example.org", "nobody@example.org"],
            ),
            &b"Subject: one\r\n\r\n.dot\r\n"[..],
        )
        .unwrap();
    assert_eq!(o.status, DeliveryStatus::Partial, "{o:?}");
    assert_eq!(o.recipients[1].status, RecipientStatus::Permanent);
    assert_eq!(o.recipients[1].reply.as_ref().unwrap().code().get(), 550);
    let o = conn
        .send(
            envelope("alice@example.org", &["carol@example.org"]),
            &b"Subject: two\r\n\r\nx\r\n"[..],
        )
        .unwrap();
    assert_eq!(o.status, DeliveryStatus::Sent, "{o:?}");
    let o = conn
        .send(
            envelope("alice@example.org", &["nobody@example.org"]),
            &b"x\r\n"[..],
        )
        .unwrap();
    assert_eq!(o.status, DeliveryStatus::Permanent, "{o:?}");
    conn.quit().unwrap();

    // STARTTLS with the test CA, then AUTH PLAIN and LOGIN.
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let mut config = client_config(StartTls::Required);
        config.credentials = Some(ClientCredentials::password(USER, PASSWORD));
        config.mechanism = Some(mechanism.clone());
        let mut conn = certs
            .connector(config)
            .build()
            .unwrap()
            .connect(&server)
            .unwrap();
        assert!(conn.is_tls());
        assert_eq!(conn.authenticated(), Some(&mechanism));
        let o = conn
            .send(
                envelope("alice@example.org", &["dave@example.org"]),
                format!("Subject: {}\r\n\r\nover tls\r\n", mechanism.as_str()).as_bytes(),
            )
            .unwrap();
        assert_eq!(o.status, DeliveryStatus::Sent, "{o:?}");
        conn.quit().unwrap();
    }

    // A wrong password is a session failure with aiosmtpd's 535.
    let mut config = client_config(StartTls::Required);
    config.credentials = Some(ClientCredentials::password(USER, "wrong"));
    let err = certs
        .connector(config)
        .build()
        .unwrap()
        .connect(&server)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            smtp_blocking::Error::Session(smtp_proto::client::ClientError::AuthFailed(r))
                if r.code().get() == 535
        ),
        "{err:?}"
    );

    let got: Vec<String> = (0..4).map(|_| peer.next_line()).collect();
    assert!(got[0].contains(r#""to": ["bob@example.org"]"#), "{got:?}");
    assert!(got[0].contains(r"\r\n.dot\r\n"), "{got:?}");
    assert!(got[1].contains("Subject: two"), "{got:?}");
    assert!(
        got[2].contains(r#""tls": true"#) && got[2].contains("Subject: PLAIN"),
        "{got:?}"
    );
    assert!(
        got[3].contains(r#""auth": true"#) && got[3].contains("Subject: LOGIN"),
        "{got:?}"
    );
}

//! SIGHUP on `smtp serve`, from outside: the built binary on 127.0.0.1 port 0, its
//! certificate swapped on disk and seen by a rustls client after STARTTLS, its auth file
//! rewritten, a session kept open across the reload, and a broken certificate that
//! leaves the old one in service. Both adapters: `reload_tokio`, `reload_blocking`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use support::serve::{Serve, ServeCommand};

const HOSTNAME: &str = "mx.test.example";

/// A certificate for [`HOSTNAME`]: PEM files and the DER a client sees.
struct Cert {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Cert {
    fn new() -> Cert {
        let c = rcgen::generate_simple_self_signed(vec![HOSTNAME.to_owned()]).unwrap();
        Cert {
            cert_pem: c.cert.pem(),
            key_pem: c.signing_key.serialize_pem(),
            der: c.cert.der().to_vec(),
        }
    }

    fn write(&self, cert: &Path, key: &Path) {
        std::fs::write(cert, &self.cert_pem).unwrap();
        std::fs::write(key, &self.key_pem).unwrap();
    }

    /// As the server logs it: SHA-256, `AB:CD:...`.
    fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.der);
        let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }
}

/// A client session over TLS after STARTTLS.
struct Client {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Client {
    /// Connects, EHLO, STARTTLS, the handshake, EHLO again.
    fn starttls(port: u16) -> Client {
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut plain = BufReader::new(tcp.try_clone().unwrap());
        let mut line = String::new();
        plain.read_line(&mut line).unwrap();
        assert!(line.starts_with("220 "), "{line}");
        (&tcp).write_all(b"EHLO client.example\r\n").unwrap();
        loop {
            line.clear();
            plain.read_line(&mut line).unwrap();
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        }
        (&tcp).write_all(b"STARTTLS\r\n").unwrap();
        line.clear();
        plain.read_line(&mut line).unwrap();
        assert!(line.starts_with("220 "), "{line}");
        let config =
            smtp_tokio::tls::client_config(&smtp_tokio::tls::Verification::Insecure).unwrap();
        let conn = rustls::ClientConnection::new(
            Arc::clone(&config),
            HOSTNAME.to_owned().try_into().unwrap(),
        )
        .unwrap();
        let mut client = Client {
            tls: rustls::StreamOwned::new(conn, tcp),
        };
        while client.tls.conn.is_handshaking() {
            client.tls.conn.complete_io(&mut client.tls.sock).unwrap();
        }
        let ehlo = client.command("EHLO client.example");
        assert!(ehlo.contains("250 "), "{ehlo}");
        client
    }

    /// The certificate the server presented.
    fn certificate(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// Sends a line, returns the whole reply.
    fn command(&mut self, line: &str) -> String {
        self.tls
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = Vec::new();
            let mut byte = [0u8];
            while !line.ends_with(b"\r\n") {
                self.tls.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let line = String::from_utf8(line).unwrap();
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// AUTH PLAIN; the reply's first line.
    fn auth(&mut self, user: &str, password: &str) -> String {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.command(&format!("AUTH PLAIN {token}"))
    }
}

/// The running server, its log in `DIR/stderr`.
fn start(io: &str, dir: &Path, cert: &Path, key: &Path, users: &Path) -> Serve {
    ServeCommand::loopback(io, HOSTNAME)
        .arg("--maildir")
        .arg(dir.join("maildir"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .arg("--auth-file")
        .arg(users)
        .stderr_to(dir.join("stderr"))
        .start()
}

fn reload(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, users) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("users"),
    );
    let (a, b) = (Cert::new(), Cert::new());
    a.write(&cert, &key);
    std::fs::write(&users, "alice:old-secret\ncarol:carols\n").unwrap();
    let mut serve = start(io, dir.path(), &cert, &key, &users);

    // A session from before the reload, kept open through it.
    let mut old = Client::starttls(serve.port());
    assert_eq!(old.certificate(), a.der);
    assert!(old.auth("alice", "old-secret").starts_with("235 "));
    assert!(
        old.command("MAIL FROM:<alice@example.org>")
            .starts_with("250 ")
    );

    // Renewal: B on the same paths, alice gone, bob added.
    b.write(&cert, &key);
    std::fs::write(&users, "bob:new-secret\n").unwrap();
    serve.signal("HUP");
    let line = serve.wait_for_log("reloaded TLS certificate");
    assert!(
        line.contains(&format!(
            "reloaded TLS certificate: sha256 {} (was {})",
            b.fingerprint(),
            a.fingerprint()
        )),
        "{line}"
    );
    let line = serve.wait_for_log("reloaded auth file");
    assert!(
        line.contains("reloaded auth file: 1 users (was 2)"),
        "{line}"
    );

    let mut new = Client::starttls(serve.port());
    assert_eq!(
        new.certificate(),
        b.der,
        "a new handshake gets the new certificate"
    );
    assert!(new.auth("alice", "old-secret").starts_with("535 5.7.8 "));
    assert!(new.auth("bob", "new-secret").starts_with("235 "));
    assert!(new.command("QUIT").starts_with("221 "));

    // The old session goes on with its certificate and completes its message.
    assert!(
        old.command("RCPT TO:<rcpt@example.org>")
            .starts_with("250 ")
    );
    assert!(old.command("DATA").starts_with("354 "));
    let end = old.command("Subject: across a reload\r\n\r\nHello.\r\n.");
    assert!(end.starts_with("250 "), "{end}");
    assert!(old.command("QUIT").starts_with("221 "));
    assert_eq!(
        std::fs::read_dir(dir.path().join("maildir/new"))
            .unwrap()
            .count(),
        1
    );

    // A broken certificate and a broken auth file: the reload fails, the old ones stay.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&users, "bob:{MD5}1234\n").unwrap();
    serve.signal("HUP");
    let line = serve.wait_for_log("TLS certificate reload failed");
    assert!(
        line.contains(&format!(
            "TLS certificate reload failed, still serving sha256 {}: {}: no certificate or key \
             found",
            b.fingerprint(),
            cert.display()
        )),
        "{line}"
    );
    let line = serve.wait_for_log("auth file reload failed");
    assert!(
        line.contains("auth file reload failed, keeping its 1 users: line 1:"),
        "{line}"
    );
    let mut after = Client::starttls(serve.port());
    assert_eq!(after.certificate(), b.der);
    assert!(after.auth("bob", "new-secret").starts_with("235 "));
    assert!(after.command("QUIT").starts_with("221 "));

    // A key that is not the certificate's is refused too.
    Cert::new().write(&cert, &key);
    std::fs::write(&key, &b.key_pem).unwrap();
    serve.signal("HUP");
    let line = serve.wait_for_log("not the key of");
    assert!(
        line.contains(&format!(
            "TLS certificate reload failed, still serving sha256 {}: {}: not the key of {}",
            b.fingerprint(),
            key.display(),
            cert.display()
        )),
        "{line}"
    );
    assert_eq!(Client::starttls(serve.port()).certificate(), b.der);
    // SIGTERM, and a clean exit.
    let status = serve.terminate();
    assert!(status.is_some_and(|s| s.success()), "{}", serve.log());
}

#[test]
fn reload_tokio() {
    reload("tokio");
}

#[test]
fn reload_blocking() {
    reload("blocking");
}

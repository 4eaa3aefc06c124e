//! The shared behaviour list (`behaviour/mod.rs`) run against the blocking server, plus
//! what only the blocking adapter has.

mod behaviour;
mod harness;

use std::io::{self, Cursor, Read};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use behaviour::{Certs, Harness, Options, client_config, envelope};
use harness::{Blocking, Session};
use smtp_blocking::{Backend, ConnectInfo, Connector, Server};
use smtp_proto::Reply;
use smtp_proto::client::{DeliveryStatus, StartTls};

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            behaviour::$name(&Blocking);
        }
    )*};
}

scenarios!(
    plain_end_to_end,
    starttls,
    implicit_tls,
    auth_plain_over_tls,
    command_timeout,
    client_disappears_mid_data,
    connection_limit,
    shutdown_lets_sessions_finish,
    shutdown_closes_idle_sessions,
    starttls_injection_refused,
);

#[test]
fn every_shared_scenario_is_run_here() {
    // Keeps the macro list above in step with the shared list.
    let here = [
        "plain_end_to_end",
        "starttls",
        "implicit_tls",
        "auth_plain_over_tls",
        "command_timeout",
        "client_disappears_mid_data",
        "connection_limit",
        "shutdown_lets_sessions_finish",
        "shutdown_closes_idle_sessions",
        "starttls_injection_refused",
    ];
    let shared: Vec<&str> = behaviour::SCENARIOS.iter().map(|(n, _)| *n).collect();
    assert_eq!(shared, here);
}

// ---- the blocking client only ------------------------------------------------------------

/// The transcript hook sees both sides, with AUTH redacted.
#[test]
fn transcript_hook() {
    let certs = Certs::new();
    let server = Blocking.start(
        Options {
            tls: true,
            auth: true,
            ..Options::default()
        },
        &certs,
    );
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&lines);
    let mut config = client_config(StartTls::Required);
    config.credentials = Some(smtp_proto::sasl::ClientCredentials::password(
        behaviour::USER,
        behaviour::PASSWORD,
    ));
    let mut conn = certs
        .connector(config)
        .transcript(move |l| seen.lock().unwrap().push(l.to_owned()))
        .build()
        .unwrap()
        .connect(&server.addr().to_string())
        .unwrap();
    conn.send(
        envelope("a@example.org", &["b@example.org"]),
        &b"hi\r\n"[..],
    )
    .unwrap();
    conn.quit().unwrap();
    let lines = lines.lock().unwrap().join("\n");
    assert!(lines.contains("S: 220 mx.test"), "{lines}");
    assert!(lines.contains("C: STARTTLS"), "{lines}");
    assert!(lines.contains("C: MAIL FROM:<a@example.org>"), "{lines}");
    assert!(lines.contains("S: 221"), "{lines}");
    assert!(!lines.contains(behaviour::PASSWORD), "{lines}");
    server.stop();
}

/// A body reader that fails halfway: the message is abandoned without its final dot, so
/// the server stores nothing.
#[test]
fn failing_body_abandons_the_message() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            self.0 -= 1;
            let line = b"line of the body\r\n";
            buf[..line.len()].copy_from_slice(line);
            Ok(line.len())
        }
    }
    let certs = Certs::new();
    let server = Blocking.start(Options::default(), &certs);
    let mut config = client_config(StartTls::Never);
    config.chunking = false;
    let connector = Connector::builder(config).body_chunk(64).build().unwrap();
    let mut conn = connector.connect(&server.addr().to_string()).unwrap();
    let err = conn
        .send(envelope("a@example.org", &["b@example.org"]), Failing(3))
        .unwrap_err();
    assert!(matches!(err, smtp_blocking::Error::Body(_)), "{err:?}");
    assert!(conn.is_closed());
    let store = server.store();
    behaviour::eventually("message_aborted", || store.aborted() == 1);
    assert!(store.messages().is_empty());
    server.stop();
}

/// A big body goes through in pieces, by DATA and by BDAT.
#[test]
fn large_body_in_pieces() {
    let certs = Certs::new();
    let server = Blocking.start(Options::default(), &certs);
    let body: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("line {i} .with some text\r\n").into_bytes())
        .collect();
    for chunking in [false, true] {
        let mut config = client_config(StartTls::Never);
        config.chunking = chunking;
        let mut conn = Connector::builder(config)
            .body_chunk(1000)
            .build()
            .unwrap()
            .connect(&server.addr().to_string())
            .unwrap();
        let o = conn
            .send(
                envelope("a@example.org", &["b@example.org"]),
                Cursor::new(body.clone()),
            )
            .unwrap();
        assert_eq!(o.status, DeliveryStatus::Sent);
        conn.quit().unwrap();
    }
    let stored = server.store().messages();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|m| m.body == body));
    server.stop();
}

/// Connection errors are reported as such.
#[test]
fn connect_errors() {
    // Nothing listens on a port that was just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Connector::builder(client_config(StartTls::Never))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .connect(&format!("127.0.0.1:{port}"))
        .unwrap_err();
    assert!(
        matches!(err, smtp_blocking::Error::Connect { .. }),
        "{err:?}"
    );
    let err = Connector::builder(client_config(StartTls::Never))
        .build()
        .unwrap()
        .connect("no-such-host.invalid:25")
        .unwrap_err();
    assert!(
        matches!(err, smtp_blocking::Error::Resolve { .. }),
        "{err:?}"
    );
}

/// The host may refuse a session before its greeting.
#[test]
fn host_refuses_a_session() {
    struct No;
    impl Backend for No {
        type Handler = Session;
        fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
            Err(Reply::fixed(554, Some((5, 7, 1)), "Go away"))
        }
    }
    let server = Server::builder(behaviour::server_config(&Options::default()), No)
        .listener(TcpListener::bind("127.0.0.1:0").unwrap())
        .build()
        .unwrap();
    let addr = server.local_addrs()[0].addr;
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    let mut raw = behaviour::Raw::connect(addr);
    raw.expect("554 5.7.1 Go away");
    assert!(raw.closed());
    stop.shutdown();
    thread.join().unwrap();
}

/// `Verification::Insecure` accepts a certificate nobody vouches for; the default
/// (webpki roots) does not.
#[test]
fn insecure_verification() {
    let certs = Certs::new();
    let server = Blocking.start(
        Options {
            tls: true,
            ..Options::default()
        },
        &certs,
    );
    let addr = server.tls_addr().unwrap().to_string();
    let conn = Connector::builder(client_config(StartTls::Never))
        .verification(smtp_blocking::Verification::Insecure)
        .implicit_tls(true)
        .build()
        .unwrap()
        .connect(&addr)
        .unwrap();
    assert!(conn.is_tls());
    conn.quit().unwrap();
    let err = Connector::builder(client_config(StartTls::Never))
        .implicit_tls(true)
        .build()
        .unwrap()
        .connect(&addr)
        .unwrap_err();
    assert!(matches!(err, smtp_blocking::Error::Tls(_)), "{err:?}");
    server.stop();
}

/// LMTP: one verdict per recipient after the message (RFC 2033 §4.2), each from
/// `SessionHandler::lmtp_delivery`.
#[test]
fn lmtp_per_recipient_delivery() {
    use smtp_blocking::{Context, Decision, SessionHandler};
    use smtp_proto::ForwardPath;

    struct Lmtp;
    struct Delivery;
    impl Backend for Lmtp {
        type Handler = Delivery;
        fn connect(&self, _: &ConnectInfo) -> Result<Delivery, Reply> {
            Ok(Delivery)
        }
    }
    impl SessionHandler for Delivery {
        fn message_end(&mut self, _: &Context<'_>) -> Decision {
            unreachable!("LMTP ends with lmtp_delivery")
        }
        fn lmtp_delivery(&mut self, _: &Context<'_>, to: &ForwardPath<'static>) -> Decision {
            match to.mailbox().map(|m| m.local_part().to_owned()).as_deref() {
                Some("full") => Decision::reject(452, (4, 2, 2), "Mailbox full").unwrap(),
                _ => Decision::Accept,
            }
        }
    }
    let mut config = behaviour::server_config(&Options::default());
    config.lmtp = true;
    let server = Server::builder(config, Lmtp)
        .listener(TcpListener::bind("127.0.0.1:0").unwrap())
        .build()
        .unwrap();
    let addr = server.local_addrs()[0].addr;
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    let mut config = client_config(StartTls::Never);
    config.lmtp = true;
    let mut conn = Connector::builder(config)
        .build()
        .unwrap()
        .connect(&addr.to_string())
        .unwrap();
    let o = conn
        .send(
            envelope("a@example.org", &["bob@example.org", "full@example.org"]),
            &b"hi\r\n"[..],
        )
        .unwrap();
    assert_eq!(o.status, DeliveryStatus::Partial, "{o:?}");
    assert_eq!(
        o.recipients[1].status,
        smtp_proto::client::RecipientStatus::Temporary
    );
    conn.quit().unwrap();
    stop.shutdown();
    thread.join().unwrap();
}

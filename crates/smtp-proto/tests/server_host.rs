//! What the adapters share: the CRAM-MD5 challenge built by the machine, what becomes of
//! a handler's answer and what is logged about it, and the builder's checks.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use base64::Engine as _;
use smtp_proto::server::host::{self, Level, Listen, Setup, SetupError};
use smtp_proto::server::{Decision, Event, HostError, Output, PeerInfo, ServerConfig, Session};

/// Feeds `input`, collects what goes out, and stops at the first event that asks for a
/// decision (accepting HELO/EHLO on the way).
fn drive(server: &mut Session, input: &[u8]) -> (String, Option<Event>) {
    server.handle_input(input, Instant::now());
    let mut out = Vec::new();
    loop {
        match server.poll_output() {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Event(Event::Hello { .. }) => server.accept().unwrap(),
            Output::Event(e) if e.needs_decision() => {
                return (String::from_utf8(out).unwrap(), Some(e));
            }
            Output::Event(_) => {}
            Output::StartTls | Output::Close | Output::Wait { .. } => break,
        }
    }
    (String::from_utf8(out).unwrap(), None)
}

fn cram_server() -> Session {
    let mut config = ServerConfig::new("mx.example.org").unwrap();
    config.extensions.auth = vec!["CRAM-MD5".into()];
    config.auth_requires_tls = false;
    Session::new(config.into(), PeerInfo::default(), Instant::now())
}

#[test]
fn cram_md5_challenge_is_built_by_the_machine_rfc2195_2() {
    let mut server = cram_server();
    drive(&mut server, b"EHLO client.example\r\n");
    let (_, event) = drive(&mut server, b"AUTH CRAM-MD5\r\n");
    assert!(matches!(event, Some(Event::AuthChallengeNeeded { .. })));
    server.auth_challenge_from(42, 1_700_000_000).unwrap();
    let (out, _) = drive(&mut server, b"");
    let encoded = out.strip_prefix("334 ").unwrap().trim_end();
    let challenge = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(challenge, b"<42.1700000000@mx.example.org>");
}

#[test]
fn challenge_nobody_asked_for_is_refused_without_a_reply() {
    let mut server = cram_server();
    drive(&mut server, b"EHLO client.example\r\n");
    assert_eq!(server.auth_challenge_from(1, 2), Err(HostError::Challenge));
    let (out, _) = drive(&mut server, b"");
    assert_eq!(out, "");
}

#[test]
fn settle_logs_the_decision_and_a_decision_nobody_asked_for_as_a_warning() {
    let mut server = cram_server();
    drive(&mut server, b"EHLO client.example\r\n");
    let (_, event) = drive(&mut server, b"MAIL FROM:<a@example.org>\r\n");
    let event = event.unwrap();
    let note = host::settle(&mut server, &event, Some(Decision::Accept)).unwrap();
    assert_eq!(
        (note.level, note.text.as_str()),
        (Level::Debug, "MAIL FROM:<a@example.org>: accepted")
    );
    // No decision is pending any more: the machine refuses the second one.
    let refusal = Decision::reject(550, (5, 7, 1), "No").unwrap();
    let note = host::settle(&mut server, &event, Some(refusal)).unwrap();
    assert_eq!(note.level, Level::Warn);
    let (out, _) = drive(&mut server, b"");
    assert_eq!(out, "250 2.1.0 Ok\r\n");
    assert_eq!(
        host::settle(&mut server, &Event::Body(Default::default()), None),
        None
    );
}

/// Postfix-style levels: accepted commands at debug, refusals and one summary line per
/// message at info, the summary naming the envelope, the size, TLS and the final reply.
#[test]
fn settle_logs_one_info_line_a_message_and_every_refusal() {
    let mut server = cram_server();
    drive(&mut server, b"EHLO client.example\r\n");
    let (_, event) = drive(&mut server, b"MAIL FROM:<a@example.org>\r\n");
    let note = host::settle(&mut server, &event.unwrap(), Some(Decision::Accept)).unwrap();
    assert_eq!(note.level, Level::Debug);
    let (_, event) = drive(&mut server, b"RCPT TO:<nobody@example.org>\r\n");
    let refusal = Decision::reject(550, (5, 1, 1), "User unknown").unwrap();
    let note = host::settle(&mut server, &event.unwrap(), Some(refusal)).unwrap();
    assert_eq!(
        (note.level, note.text.as_str()),
        (
            Level::Info,
            "RCPT TO:<nobody@example.org>: 550 5.1.1 User unknown"
        )
    );
    for to in ["b@example.org", "c@example.org"] {
        let (_, event) = drive(&mut server, format!("RCPT TO:<{to}>\r\n").as_bytes());
        let note = host::settle(&mut server, &event.unwrap(), Some(Decision::Accept)).unwrap();
        assert_eq!(note.level, Level::Debug);
    }
    let (out, _) = drive(&mut server, b"DATA\r\n");
    assert!(
        out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{out}"
    );
    let (_, event) = drive(&mut server, b"Subject: x\r\n\r\n..hi\r\n.\r\n");
    let event = event.unwrap();
    assert!(matches!(event, Event::MessageEnd));
    let queued = smtp_proto::Reply::new(
        250,
        Some(smtp_proto::EnhancedCode::of(2, 0, 0)),
        "Ok: queued as 1A2B",
    );
    let queued = Decision::accept_with(queued.unwrap()).unwrap();
    let note = host::settle(&mut server, &event, Some(queued)).unwrap();
    assert_eq!(
        (note.level, note.text.as_str()),
        (
            Level::Info,
            "message from=<a@example.org> to=<b@example.org>,<c@example.org> size=19 tls=no: \
             250 2.0.0 Ok: queued as 1A2B"
        )
    );
}

#[test]
fn a_decision_of_the_wrong_class_cannot_be_built() {
    use smtp_proto::{BuildError, Reply};
    let ok = Reply::new(250, None, "Ok").unwrap();
    let no = Reply::new(550, None, "No").unwrap();
    assert_eq!(
        Decision::reject_with(ok.clone()),
        Err(BuildError::NotRefusal(250))
    );
    assert_eq!(
        Decision::accept_with(no.clone()),
        Err(BuildError::NotPositive(550))
    );
    assert_eq!(
        Decision::reject(250, (2, 0, 0), "Ok"),
        Err(BuildError::NotRefusal(250))
    );
    assert_eq!(
        Decision::reject(451, (5, 1, 1), "No such user"),
        Err(BuildError::EnhancedClassMismatch)
    );
    assert_eq!(
        Decision::reject(650, (5, 1, 1), "x"),
        Err(BuildError::ReplyCode(650))
    );
    assert_eq!(
        Decision::reject(550, (6, 1, 1), "x"),
        Err(BuildError::EnhancedCode)
    );
    assert_eq!(
        Decision::reject(550, (5, 1000, 1), "x"),
        Err(BuildError::EnhancedCode)
    );
    assert_eq!(
        Decision::reject(550, (5, 1, 1), "a\r\nRSET"),
        Err(BuildError::ControlCharacter)
    );
    let decision = Decision::reject(550, (5, 1, 1), "No such user").unwrap();
    assert_eq!(
        decision.reply().unwrap().to_string(),
        "550 5.1.1 No such user"
    );
    assert!(Decision::accept_with(ok).unwrap().is_accept());
    assert!(!Decision::reject_with(no).unwrap().is_accept());
}

#[test]
fn handler_defaults_refuse_with_the_rfc_codes() {
    let text = |d: Decision| match d {
        Decision::Reject(r) => r.to_string(),
        _ => unreachable!(),
    };
    assert!(text(host::LMTP_NOT_IMPLEMENTED).starts_with("451 4.3.0 "));
    assert!(text(host::CREDENTIALS_INVALID).starts_with("535 5.7.8 "));
    assert!(text(host::REFUSED).starts_with("451 4.3.0 "));
}

/// A server of listeners that are only addresses.
struct Fake(Setup<Fake>);

impl Listen for Fake {
    type Backend = ();
    type Listener = SocketAddr;
    type Tls = ();
    fn prepare(listener: &SocketAddr) -> io::Result<SocketAddr> {
        Ok(*listener)
    }
    fn start(setup: Setup<Self>) -> Self {
        Fake(setup)
    }
}

#[test]
fn builder_checks_listeners_and_tls() {
    let config = || ServerConfig::new("mx.example.org").unwrap();
    let addr: SocketAddr = "127.0.0.1:25".parse().unwrap();
    let none = host::Builder::<Fake>::new(config(), ()).build();
    assert!(matches!(none, Err(SetupError::NoListener)));
    let implicit = host::Builder::<Fake>::new(config(), ()).implicit_tls_listener(addr);
    assert!(matches!(implicit.build(), Err(SetupError::TlsRequired)));
    let Ok(Fake(setup)) = host::Builder::<Fake>::new(config(), ())
        .tls(())
        .listener(addr)
        .build()
    else {
        panic!("builds");
    };
    assert!(setup.config.extensions.starttls);
    assert_eq!(setup.listening.addrs[0].addr, addr);
    assert_eq!(setup.max_connections, 1000);
    assert_eq!(setup.write_timeout, setup.config.timeouts.command);
}

fn info() -> host::ConnectInfo {
    host::ConnectInfo {
        id: 1,
        peer: "192.0.2.1:1234".parse().unwrap(),
        local: "192.0.2.2:25".parse().unwrap(),
        implicit_tls: false,
    }
}

#[test]
fn driver_writes_nothing_once_broken_and_closes_instead_of_waiting() {
    let config = std::sync::Arc::new(ServerConfig::new("mx.example.org").unwrap());
    let mut driver = host::Driver::new(config, &info(), None, Instant::now());
    assert!(matches!(
        driver.poll_output(),
        Output::Event(Event::Connected)
    ));
    driver.handle_broken(Instant::now());
    assert!(driver.is_broken());
    loop {
        match driver.poll_output() {
            Output::Transmit(_) => panic!("written after the connection broke"),
            Output::Close => break,
            _ => {}
        }
    }
}

#[test]
fn driver_refusal_and_drain_speak_through_the_machine() {
    let config = std::sync::Arc::new(ServerConfig::new("mx.example.org").unwrap());
    let busy = Some(config.too_many_connections_reply());
    let mut refused = host::Driver::new(config.clone(), &info(), busy, Instant::now());
    let Output::Transmit(bytes) = refused.poll_output() else {
        panic!("the refusal goes out first");
    };
    assert!(bytes.starts_with(b"421 4.3.2 mx.example.org "));
    let mut idle = host::Driver::new(config, &info(), None, Instant::now());
    drive(&mut idle, b"EHLO client.example\r\n");
    idle.drain();
    idle.drain();
    assert!(idle.is_draining());
    let (out, _) = drive(&mut idle, b"");
    assert_eq!(out.matches("421 4.3.2").count(), 1, "{out}");
}

/// Drains the driver, answering every decision with `accept`, keeping the body of a
/// message that starts; returns the events' names.
fn drain_driver(driver: &mut host::Driver, input: &[u8]) -> Vec<String> {
    driver.handle_input(input, Instant::now());
    let mut events = Vec::new();
    loop {
        match driver.poll_output() {
            Output::Event(e) => {
                if e == Event::MessageStart {
                    driver.keep_body();
                }
                if !matches!(e, Event::Body(_)) {
                    events.push(format!("{e:?}"));
                }
                if e.needs_decision() {
                    driver.accept().unwrap();
                }
            }
            Output::Close => {
                events.push("Close".into());
                break;
            }
            Output::Wait { .. } => break,
            _ => {}
        }
    }
    events
}

#[test]
fn driver_says_closed_exactly_once_however_the_session_ends() {
    let config = std::sync::Arc::new(ServerConfig::new("mx.example.org").unwrap());
    type End = fn(&mut host::Driver);
    let ends: [(&str, End); 5] = [
        ("quit", |d| {
            d.handle_input(b"QUIT\r\n", Instant::now());
        }),
        ("eof", |d| d.handle_eof(Instant::now())),
        ("broken", |d| d.handle_broken(Instant::now())),
        ("timeout", |d| {
            let deadline = d.deadline().unwrap();
            d.handle_timeout(deadline);
        }),
        ("forced", |d| d.force_close()),
    ];
    for (name, end) in ends {
        let mut driver = host::Driver::new(config.clone(), &info(), None, Instant::now());
        drain_driver(&mut driver, b"EHLO client.example\r\n");
        end(&mut driver);
        let events = drain_driver(&mut driver, b"");
        assert_eq!(
            events.iter().filter(|e| *e == "Closed").count(),
            1,
            "{name}: {events:?}"
        );
        assert_eq!(
            events.last().map(String::as_str),
            Some("Close"),
            "{name}: {events:?}"
        );
        // Nothing more, however often the adapter asks.
        for _ in 0..3 {
            assert!(matches!(driver.poll_output(), Output::Close), "{name}");
        }
    }
    let busy = Some(config.too_many_connections_reply());
    let mut refused = host::Driver::new(config, &info(), busy, Instant::now());
    let events = drain_driver(&mut refused, b"");
    assert_eq!(events, ["Closed", "Close"]);
}

#[test]
fn driver_keeps_the_body_whole_and_drops_it_after() {
    let config = std::sync::Arc::new(ServerConfig::new("mx.example.org").unwrap());
    let mut driver = host::Driver::new(config, &info(), None, Instant::now());
    drain_driver(&mut driver, b"EHLO client.example\r\n");
    drain_driver(&mut driver, b"MAIL FROM:<a@example.org>\r\n");
    drain_driver(&mut driver, b"RCPT TO:<b@example.org>\r\n");
    drain_driver(&mut driver, b"DATA\r\n");
    assert_eq!(driver.body(), Some(&b""[..]));
    driver.handle_input(b"one\r\n..two\r\n.\r\n", Instant::now());
    loop {
        match driver.poll_output() {
            Output::Event(Event::MessageEnd) => break,
            Output::Event(_) | Output::Transmit(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(driver.body(), Some(&b"one\r\n.two\r\n"[..]));
    let info = info();
    assert_eq!(driver.context(&info).body(), Some(&b"one\r\n.two\r\n"[..]));
    driver.accept().unwrap();
    driver.drop_body();
    assert_eq!(driver.body(), None);
    assert_eq!(
        info.context(&driver).body(),
        None,
        "none unless the driver keeps it"
    );
}

#[test]
fn a_kept_body_without_a_size_limit_stops_at_the_default_limit() {
    let mut config = ServerConfig::new("mx.example.org").unwrap();
    config.limits.max_message_size = None;
    let mut driver = host::Driver::new(config.into(), &info(), None, Instant::now());
    assert_eq!(driver.body_limit(), host::DEFAULT_BODY_LIMIT);
    drain_driver(&mut driver, b"EHLO client.example\r\n");
    drain_driver(&mut driver, b"MAIL FROM:<a@example.org>\r\n");
    drain_driver(&mut driver, b"RCPT TO:<b@example.org>\r\n");
    drain_driver(&mut driver, b"DATA\r\n");
    let line = [b"x".repeat(998), b"\r\n".to_vec()].concat();
    let block = line.repeat(1024);
    let mut sent = 0u64;
    while sent <= host::DEFAULT_BODY_LIMIT {
        drain_driver(&mut driver, &block);
        sent += block.len() as u64;
    }
    assert!(driver.body_too_big());
    assert_eq!(driver.body(), None, "what was kept is freed at once");
    let text = |d: Decision| match d {
        Decision::Reject(r) => r.to_string(),
        _ => unreachable!(),
    };
    assert!(text(host::BODY_TOO_BIG).starts_with("552 5.3.4 "));
}

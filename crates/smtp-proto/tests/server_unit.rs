//! Server behaviour that transcripts do not show: the Received header, host misuse, and
//! the greeting refusal.

use std::sync::Arc;
use std::time::Instant;

use smtp_proto::Reply;
use smtp_proto::server::{Event, HostError, Output, PeerInfo, ServerConfig, Session};

fn drive(server: &mut Session, input: &[u8], now: Instant) -> (String, Vec<Event>) {
    server.handle_input(input, now);
    let mut out = Vec::new();
    let mut events = Vec::new();
    loop {
        match server.poll_output() {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Event(e) => {
                if e.needs_decision() {
                    server.accept().unwrap();
                }
                events.push(e);
            }
            Output::StartTls | Output::Close | Output::Wait { .. } => break,
        }
    }
    (String::from_utf8(out).unwrap(), events)
}

#[test]
fn received_header_rfc5321_4_4() {
    let now = Instant::now();
    let peer = PeerInfo {
        addr: Some("192.0.2.7".parse().unwrap()),
        name: Some("client.example".into()),
        tls: true,
    };
    let mut server = Session::new(
        Arc::new(ServerConfig::new("mx.example.org").unwrap()),
        peer,
        now,
    );
    drive(&mut server, b"", now);
    drive(&mut server, b"EHLO client.example\r\n", now);
    drive(&mut server, b"MAIL FROM:<a@example.org>\r\n", now);
    drive(&mut server, b"RCPT TO:<b@example.org>\r\n", now);
    let header = server.received_header("4Xyz\r\nInjected: 1", "Sat, 28 Nov 2026 23:50:00 +0000");
    assert_eq!(
        header,
        "Received: from client.example (client.example [192.0.2.7])\r\n\tby mx.example.org with ESMTPS id 4XyzInjected: 1;\r\n".replace(";\r\n", "\r\n\tfor <b@example.org>;\r\n\tSat, 28 Nov 2026 23:50:00 +0000\r\n")
    );
    // Two recipients: no `for` clause (it would disclose the other recipients).
    drive(&mut server, b"RCPT TO:<c@example.org>\r\n", now);
    let header = server.received_header("id1", "date");
    assert!(!header.contains("for <"));
    assert!(header.contains("with ESMTPS id id1;\r\n\tdate\r\n"));
    // A copy stored for one of them alone names that one only.
    let c = server.recipients()[1].clone();
    let header = server.received_header_for("id2", "date", &c);
    assert!(
        header.ends_with("with ESMTPS id id2\r\n\tfor <c@example.org>;\r\n\tdate\r\n"),
        "{header}"
    );
}

#[test]
fn received_header_protocols_rfc3848() {
    let now = Instant::now();
    let mut cfg = ServerConfig::new("mx.example.org").unwrap();
    cfg.lmtp = true;
    let mut server = Session::new(Arc::new(cfg), PeerInfo::default(), now);
    drive(&mut server, b"", now);
    drive(&mut server, b"LHLO c.example\r\n", now);
    assert!(server.received_header("i", "d").contains(" with LMTP id i"));
    let mut server = Session::new(
        Arc::new(ServerConfig::new("mx.example.org").unwrap()),
        PeerInfo::default(),
        now,
    );
    drive(&mut server, b"", now);
    drive(&mut server, b"HELO c.example\r\n", now);
    assert!(server.received_header("i", "d").contains(" with SMTP id i"));
    drive(&mut server, b"EHLO c.example\r\n", now);
    drive(
        &mut server,
        b"MAIL FROM:<j\xc3\xb6@example.org> SMTPUTF8\r\n",
        now,
    );
    assert!(
        server
            .received_header("i", "d")
            .contains(" with UTF8SMTP id i")
    );
}

#[test]
fn host_misuse_is_an_error_not_a_panic() {
    let now = Instant::now();
    let mut server = Session::new(
        Arc::new(ServerConfig::new("mx.example.org").unwrap()),
        PeerInfo::default(),
        now,
    );
    drive(&mut server, b"", now);
    assert_eq!(server.accept(), Err(HostError::NoDecisionPending));
    assert_eq!(server.auth_challenge("<1.2@x>"), Err(HostError::Challenge));
    drive(&mut server, b"HELO c.example\r\n", now);
    server.handle_input(b"MAIL FROM:<a@b.example>\r\n", now);
    // Input is processed lazily: nothing is pending until the event has been polled.
    assert_eq!(
        server.reject(Reply::fixed(550, None, "no")),
        Err(HostError::NoDecisionPending)
    );
    loop {
        match server.poll_output() {
            Output::Event(Event::Mail { .. }) => break,
            Output::Wait { .. } => panic!("no MAIL event"),
            _ => {}
        }
    }
    assert_eq!(
        server.reject(Reply::fixed(250, None, "ok")),
        Err(HostError::WrongReplyClass)
    );
    assert_eq!(
        server.accept_with(Reply::fixed(550, None, "no")),
        Err(HostError::WrongReplyClass)
    );
    assert_eq!(server.accept(), Ok(()));
    // The peer leaves while the host decides: a late decision is refused with Closed.
    server.handle_input(b"RCPT TO:<c@d.example>\r\n", now);
    loop {
        match server.poll_output() {
            Output::Event(Event::Rcpt { .. }) => break,
            Output::Wait { .. } => panic!("no RCPT event"),
            _ => {}
        }
    }
    server.handle_eof(now);
    assert_eq!(server.accept(), Err(HostError::Closed));
    assert_eq!(server.auth_challenge("<1.2@x>"), Err(HostError::Closed));
}

#[test]
fn greeting_refused_by_host() {
    // A host that refuses the connection (RFC 5321 §3.1: 554 instead of 220).
    let now = Instant::now();
    let mut server = Session::new(
        Arc::new(ServerConfig::new("mx.example.org").unwrap()),
        PeerInfo::default(),
        now,
    );
    server.close_with(Reply::fixed(
        554,
        Some((5, 7, 1)),
        "mx.example.org No SMTP service here",
    ));
    let mut out = Vec::new();
    let mut closed = false;
    loop {
        match server.poll_output() {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Close => closed = true,
            Output::Wait { .. } => break,
            _ => {}
        }
    }
    assert_eq!(out, b"554 5.7.1 mx.example.org No SMTP service here\r\n");
    assert!(closed);
}

fn drain(server: &mut Session) -> (String, bool) {
    let mut out = Vec::new();
    let mut closed = false;
    loop {
        match server.poll_output() {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Event(e) if e.needs_decision() => server.accept().unwrap(),
            Output::Close => closed = true,
            Output::Wait { .. } => break,
            _ => {}
        }
    }
    (String::from_utf8(out).unwrap(), closed)
}

#[test]
fn graceful_shutdown_waits_for_the_transaction() {
    // RFC 5321 §3.8: 421 at a command boundary, not in the middle of a message.
    let now = Instant::now();
    let config = Arc::new(ServerConfig::new("mx.example.org").unwrap());
    let mut server = Session::new(config.clone(), PeerInfo::default(), now);
    drive(&mut server, b"", now);
    drive(&mut server, b"HELO c.example\r\n", now);
    drive(&mut server, b"MAIL FROM:<a@example.org>\r\n", now);
    server.shutdown(config.shutdown_reply());
    assert_eq!(
        drain(&mut server),
        (String::new(), false),
        "a transaction is open"
    );
    drive(&mut server, b"RCPT TO:<b@example.org>\r\n", now);
    drive(&mut server, b"DATA\r\n", now);
    server.handle_input(b"hi\r\n.\r\n", now);
    let (out, closed) = drain(&mut server);
    assert_eq!(
        out,
        "250 2.0.0 Ok: queued\r\n421 4.3.2 mx.example.org Service shutting down, closing transmission channel\r\n"
    );
    assert!(closed);

    // Idle: at once.
    let mut server = Session::new(config.clone(), PeerInfo::default(), now);
    drive(&mut server, b"", now);
    server.shutdown(config.shutdown_reply());
    let (out, closed) = drain(&mut server);
    assert!(out.starts_with("421 4.3.2 mx.example.org Service shutting down") && closed);
    assert_eq!(
        config.too_many_connections_reply().to_bytes(),
        b"421 4.3.2 mx.example.org Error: too many connections\r\n"
    );
}

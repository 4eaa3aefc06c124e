//! A failed client session keeps its error (as rustls does): every later call returns
//! the same cause, and the adapters' [`Driver`] keeps the connection's own error (I/O,
//! TLS, body) the same way.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::client::host::{Driver, Error, Step, Until};
use smtp_proto::client::{
    Client, ClientConfig, ClientError, ClientEvent, ClientOutput, DeliveryStatus, Envelope,
    LocalRefusal, Recipient, StartTls, UsageError,
};
use smtp_proto::{ForwardPath, Mailbox, ReversePath};

const EHLO: &[u8] = b"250-mx.example.org\r\n250 PIPELINING\r\n";

fn config(starttls: StartTls) -> Arc<ClientConfig> {
    let mut c = ClientConfig::new("client.example").unwrap();
    c.starttls = starttls;
    c.chunking = false;
    Arc::new(c)
}

fn envelope() -> Envelope {
    let from = Mailbox::parse("a@example.org").unwrap().into_owned();
    let to = Mailbox::parse("b@example.org").unwrap().into_owned();
    Envelope::new(
        ReversePath::Mailbox(from),
        vec![Recipient::new(ForwardPath::Mailbox(to))],
    )
}

/// Drains the machine; returns its events, and whether a body was asked for.
fn drain(client: &mut Client) -> (Vec<ClientEvent>, bool) {
    let (mut events, mut body) = (Vec::new(), false);
    loop {
        match client.poll_output() {
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => body = true,
            ClientOutput::Event(e) => events.push(e),
            ClientOutput::Wait { .. } => return (events, body),
            _ => {}
        }
    }
}

/// A session ready for a message.
fn ready(now: Instant) -> Client {
    let mut client = Client::new(config(StartTls::Never), false, now);
    client.handle_input(b"220 mx.example.org ESMTP\r\n", now);
    let _ = drain(&mut client);
    client.handle_input(EHLO, now);
    let _ = drain(&mut client);
    assert!(client.is_ready());
    client
}

#[test]
fn service_closing_is_returned_by_every_later_call() {
    let now = Instant::now();
    let mut client = ready(now);
    client.handle_input(b"421 4.3.2 shutting down\r\n", now);
    let (events, _) = drain(&mut client);
    let failed = events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Failed(e) => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        matches!(failed, ClientError::ServiceClosing(_)),
        "{failed:?}"
    );
    assert_eq!(client.error(), Some(&failed));
    for _ in 0..2 {
        assert_eq!(
            client.send_mail(envelope()),
            Err(UsageError::Failed(failed.clone()))
        );
        assert_eq!(
            client.send_body(b"x"),
            Err(UsageError::Failed(failed.clone()))
        );
        assert_eq!(client.end_body(), Err(UsageError::Failed(failed.clone())));
        assert_eq!(client.abort_body(), Err(UsageError::Failed(failed.clone())));
    }
    // What happens after the failure does not replace it.
    client.handle_eof(now);
    client.handle_timeout(now + Duration::from_secs(3600));
    assert_eq!(client.error(), Some(&failed));
}

#[test]
fn timeout_is_sticky() {
    let now = Instant::now();
    let mut client = ready(now);
    client.send_mail(envelope()).unwrap();
    let _ = drain(&mut client);
    let late = client.deadline().unwrap() + Duration::from_secs(1);
    client.handle_timeout(late);
    let _ = drain(&mut client);
    assert_eq!(client.error(), Some(&ClientError::Timeout));
    let again = client.send_mail(envelope()).unwrap_err();
    assert_eq!(again, UsageError::Failed(ClientError::Timeout));
    // The error says why.
    assert_eq!(again.to_string(), ClientError::Timeout.to_string());
}

#[test]
fn a_session_closed_by_quit_is_just_closed() {
    let now = Instant::now();
    let mut client = ready(now);
    client.quit();
    let _ = drain(&mut client);
    client.handle_input(b"221 2.0.0 bye\r\n", now);
    let _ = drain(&mut client);
    assert_eq!(client.error(), None);
    assert_eq!(client.send_mail(envelope()), Err(UsageError::Closed));
}

#[test]
fn abort_body_fails_the_message_and_sticks() {
    let now = Instant::now();
    let mut client = ready(now);
    client.send_mail(envelope()).unwrap();
    let _ = drain(&mut client);
    client.handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n", now);
    let (_, body) = drain(&mut client);
    assert!(body);
    client.send_body(b"Subject: half\r\n").unwrap();
    client.abort_body().unwrap();
    let (events, _) = drain(&mut client);
    let outcome = events
        .iter()
        .find_map(|e| match e {
            ClientEvent::MessageDone(o) => Some(o),
            _ => None,
        })
        .unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Temporary);
    assert_eq!(outcome.refused, Some(LocalRefusal::Aborted));
    assert_eq!(client.error(), Some(&ClientError::BodyAbandoned));
    assert_eq!(
        client.send_mail(envelope()),
        Err(UsageError::Failed(ClientError::BodyAbandoned))
    );
}

/// Runs the driver until it needs I/O; returns that step.
fn step(driver: &mut Driver, until: Until) -> Step {
    loop {
        match driver.poll(until) {
            Step::Transmit(_) => {}
            other => return other,
        }
    }
}

#[test]
fn driver_keeps_the_tls_error() {
    let now = Instant::now();
    let mut driver = Driver::new(config(StartTls::Opportunistic), false, None, now);
    assert!(matches!(step(&mut driver, Until::Ready), Step::Read { .. }));
    driver.handle_input(b"220 mx.example.org ESMTP\r\n", now);
    assert!(matches!(step(&mut driver, Until::Ready), Step::Read { .. }));
    driver.handle_input(b"250-mx.example.org\r\n250 STARTTLS\r\n", now);
    assert!(matches!(step(&mut driver, Until::Ready), Step::Read { .. }));
    driver.handle_input(b"220 2.0.0 go ahead\r\n", now);
    let Step::StartTls { deadline } = step(&mut driver, Until::Ready) else {
        panic!("no STARTTLS");
    };
    // The handshake's deadline is the machine's TLS timeout.
    assert_eq!(
        deadline,
        now + driver.client().config().timeouts.tls_handshake
    );
    let cause = io::Error::other("invalid peer certificate: UnknownIssuer");
    driver.handle_broken(Error::Tls(Arc::new(cause)), now);
    assert!(matches!(step(&mut driver, Until::Ready), Step::Done));
    for _ in 0..2 {
        let err = driver.ready().unwrap_err();
        assert!(matches!(err, Error::Tls(_)), "{err:?}");
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.to_string().contains("certificate"), "{source}");
        let again = driver.send_mail(envelope()).unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
    }
}

#[test]
fn driver_abort_body_keeps_the_read_error() {
    let now = Instant::now();
    let mut driver = Driver::new(config(StartTls::Never), false, None, now);
    let _ = step(&mut driver, Until::Ready);
    driver.handle_input(b"220 mx.example.org ESMTP\r\n", now);
    let _ = step(&mut driver, Until::Ready);
    driver.handle_input(EHLO, now);
    assert!(matches!(step(&mut driver, Until::Ready), Step::Done));
    driver.ready().unwrap();
    let id = driver.send_mail(envelope()).unwrap();
    let _ = step(&mut driver, Until::Message(id));
    driver.handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n", now);
    assert!(matches!(step(&mut driver, Until::Message(id)), Step::Body(i) if i == id));
    assert!(driver.send_body(b"Subject: half\r\n"));
    driver.abort_body(io::Error::other("disk on fire"));
    // No final dot: the connection closes.
    assert!(matches!(step(&mut driver, Until::Message(id)), Step::Close));
    assert!(matches!(step(&mut driver, Until::Message(id)), Step::Done));
    let outcome = driver.outcome(id).unwrap();
    assert_eq!(outcome.refused, Some(LocalRefusal::Aborted));
    let err = driver.send_mail(envelope()).unwrap_err();
    assert!(matches!(err, Error::Body(_)), "{err:?}");
    assert!(err.to_string().contains("disk on fire"));
}

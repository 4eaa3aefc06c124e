//! `ClientConfig::reset_between`: a relay that keeps connections checks each one with
//! RSET before the next transaction, pipelined with MAIL when the server allows
//! (RFC 2920 §3.1), and waiting for its reply when it does not.

use std::sync::Arc;
use std::time::Instant;

use smtp_proto::client::{Client, ClientConfig, ClientEvent, ClientOutput, Envelope, Recipient};
use smtp_proto::{ForwardPath, ReversePath};

fn envelope() -> Envelope {
    let from: ReversePath = "<a@example.org>".parse().unwrap();
    let to: ForwardPath = "<b@example.org>".parse().unwrap();
    Envelope::new(from, vec![Recipient::new(to)])
}

/// Drains the machine: what it wrote, and whether it asked for a body.
fn drain(client: &mut Client) -> (String, bool) {
    let (mut sent, mut body) = (String::new(), false);
    loop {
        match client.poll_output() {
            ClientOutput::Transmit(bytes) => sent.push_str(std::str::from_utf8(&bytes).unwrap()),
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => body = true,
            ClientOutput::Wait { .. } | ClientOutput::Close => return (sent, body),
            _ => {}
        }
    }
}

fn session(reset_between: bool, ehlo: &[u8]) -> (Client, Instant) {
    let mut config = ClientConfig::new("client.example").unwrap();
    config.starttls = smtp_proto::client::StartTls::Never;
    config.chunking = false;
    config.reset_between = reset_between;
    let now = Instant::now();
    let mut client = Client::new(Arc::new(config), false, now);
    client.handle_input(b"220 mx.example.org ESMTP\r\n", now);
    drain(&mut client);
    client.handle_input(ehlo, now);
    drain(&mut client);
    assert!(client.is_ready());
    (client, now)
}

/// One message through: the commands it sent.
fn one_message(client: &mut Client, now: Instant, replies: &[&[u8]]) -> String {
    client.send_mail(envelope()).unwrap();
    let (mut sent, mut wants_body) = drain(client);
    for reply in replies {
        client.handle_input(reply, now);
        let (more, body) = drain(client);
        sent.push_str(&more);
        wants_body |= body;
        if wants_body {
            wants_body = false;
            client.send_body(b"Subject: x\r\n\r\nhi\r\n").unwrap();
            client.end_body().unwrap();
            sent.push_str(&drain(client).0);
        }
    }
    sent
}

const PIPELINED: &[u8] = b"250-mx.example.org\r\n250 PIPELINING\r\n";
const OK: &[&[u8]] = &[
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n",
    b"250 2.0.0 queued\r\n",
];

#[test]
fn pipelined_rset_before_every_message_but_the_first() {
    let (mut client, now) = session(true, PIPELINED);
    let first = one_message(&mut client, now, OK);
    assert!(
        first.starts_with("MAIL FROM:<a@example.org>\r\n"),
        "{first}"
    );
    let second = one_message(
        &mut client,
        now,
        &[
            b"250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n",
            b"250 2.0.0 queued\r\n",
        ],
    );
    assert!(
        second.starts_with(
            "RSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
        ),
        "{second}"
    );
}

#[test]
fn without_pipelining_mail_waits_for_the_rset_reply() {
    let (mut client, now) = session(true, b"250 mx.example.org\r\n");
    one_message(
        &mut client,
        now,
        &[
            b"250 2.1.0 Ok\r\n",
            b"250 2.1.5 Ok\r\n",
            b"354 Go\r\n",
            b"250 2.0.0 queued\r\n",
        ],
    );
    client.send_mail(envelope()).unwrap();
    assert_eq!(drain(&mut client).0, "RSET\r\n");
    client.handle_input(b"250 2.0.0 Ok\r\n", now);
    assert_eq!(drain(&mut client).0, "MAIL FROM:<a@example.org>\r\n");
}

#[test]
fn off_by_default() {
    let (mut client, now) = session(false, PIPELINED);
    one_message(&mut client, now, OK);
    let second = one_message(&mut client, now, OK);
    assert!(second.starts_with("MAIL FROM:"), "{second}");
}

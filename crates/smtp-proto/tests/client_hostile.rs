//! The client against scripted, hostile or broken servers (byte transcripts): STARTTLS
//! response injection, endless continuations, mismatched multi-line codes, 421 in the
//! middle of a batch, refused recipients in a pipelined group, unsolicited replies, and a
//! server that never answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use smtp_proto::client::{
    Client, ClientConfig, ClientError, ClientEvent, ClientOutput, DeliveryStatus, Envelope,
    MessageOutcome, Recipient, RecipientStatus, StartTls,
};
use smtp_proto::{ForwardPath, Mailbox, ReplyError, ReversePath};

const EHLO: &[u8] = b"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000\r\n";

struct Script {
    client: Client,
    now: Instant,
    sent: Vec<u8>,
    events: Vec<ClientEvent>,
    closed: bool,
    starttls: bool,
}

impl Script {
    fn new(starttls: StartTls) -> Script {
        let mut c = ClientConfig::new("client.example").unwrap();
        c.starttls = starttls;
        c.chunking = false;
        let now = Instant::now();
        Script {
            client: Client::new(Arc::new(c), false, now),
            now,
            sent: Vec::new(),
            events: Vec::new(),
            closed: false,
            starttls: false,
        }
    }

    fn drain(&mut self) {
        loop {
            match self.client.poll_output() {
                ClientOutput::Transmit(b) => self.sent.extend_from_slice(&b),
                ClientOutput::Event(ClientEvent::BodyWanted { .. }) => {
                    self.client.send_body(b"hello\r\n").unwrap();
                    self.client.end_body().unwrap();
                }
                ClientOutput::Event(e) => self.events.push(e),
                ClientOutput::StartTls => self.starttls = true,
                ClientOutput::Close => self.closed = true,
                ClientOutput::Wait { .. } => break,
            }
        }
    }

    /// The server says `bytes`.
    fn server(&mut self, bytes: &[u8]) {
        self.client.handle_input(bytes, self.now);
        self.drain();
    }

    /// The client must have sent exactly `lines` since the last check.
    fn expect_sent(&mut self, lines: &str) {
        assert_eq!(String::from_utf8_lossy(&self.sent), lines);
        self.sent.clear();
    }

    fn outcomes(&self) -> Vec<&MessageOutcome> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::MessageDone(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    fn failure(&self) -> Option<&ClientError> {
        self.events.iter().find_map(|e| match e {
            ClientEvent::Failed(err) => Some(err),
            _ => None,
        })
    }
}

fn env(to: &[&str]) -> Envelope {
    Envelope::new(
        ReversePath::Mailbox(Mailbox::parse("a@example.org").unwrap().into_owned()),
        to.iter()
            .map(|t| {
                Recipient::new(ForwardPath::Mailbox(
                    Mailbox::parse(t).unwrap().into_owned(),
                ))
            })
            .collect(),
    )
}

#[test]
fn starttls_response_injection() {
    // CVE-2021-38371 family: a reply smuggled after the 220 must never be read.
    let mut s = Script::new(StartTls::Required);
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.expect_sent("EHLO client.example\r\n");
    s.server(b"250-mx\r\n250 STARTTLS\r\n");
    s.expect_sent("STARTTLS\r\n");
    s.server(b"220 2.0.0 go ahead\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    assert_eq!(s.failure(), Some(&ClientError::TlsInjection));
    assert!(!s.starttls, "TLS never started");
    assert!(s.closed);
}

#[test]
fn starttls_late_injection() {
    let mut s = Script::new(StartTls::Required);
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250 STARTTLS\r\n");
    s.server(b"220 2.0.0 go ahead\r\n");
    assert!(s.starttls);
    // Plaintext before the handshake finished: fatal.
    s.server(b"250 fake\r\n");
    assert_eq!(s.failure(), Some(&ClientError::TlsInjection));
    assert!(s.closed);
}

#[test]
fn starttls_required_but_missing_or_refused() {
    let mut s = Script::new(StartTls::Required);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250 PIPELINING\r\n");
    assert_eq!(s.failure(), Some(&ClientError::TlsUnavailable));
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Temporary);
    s.expect_sent("EHLO client.example\r\nQUIT\r\n");

    let mut s = Script::new(StartTls::Required);
    s.drain();
    s.server(b"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n");
    s.server(b"454 4.7.0 TLS not available\r\n");
    assert!(matches!(s.failure(), Some(ClientError::TlsRefused(_))));

    // Opportunistic goes on in plaintext after a 454.
    let mut s = Script::new(StartTls::Opportunistic);
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250 STARTTLS\r\n");
    s.server(b"454 4.7.0 TLS not available\r\n");
    assert!(s.failure().is_none());
    assert!(s.events.iter().any(|e| matches!(e, ClientEvent::Ready)));
}

#[test]
fn endless_continuation_is_bounded() {
    let mut s = Script::new(StartTls::Never);
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    for _ in 0..10_000 {
        s.server(b"250-this never ends and keeps going\r\n");
        if s.closed {
            break;
        }
    }
    assert_eq!(
        s.failure(),
        Some(&ClientError::Reply(ReplyError::ReplyTooLong))
    );
}

#[test]
fn mismatched_multiline_codes() {
    let mut s = Script::new(StartTls::Never);
    s.drain();
    s.server(b"220-mx ESMTP\r\n250 ok\r\n");
    assert!(matches!(
        s.failure(),
        Some(ClientError::Reply(ReplyError::CodeMismatch { .. }))
    ));
    assert!(s.closed);
}

#[test]
fn garbage_and_bad_codes() {
    for bad in [
        &b"HTTP/1.1 200 OK\r\n"[..],
        b"199 what\r\n",
        b"600 what\r\n",
        b"22\r\n",
        b"220 ok\n",
        b"220 a\rb\r\n",
    ] {
        let mut s = Script::new(StartTls::Never);
        s.drain();
        s.server(bad);
        assert!(
            matches!(s.failure(), Some(ClientError::Reply(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn greeting_554_and_421() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"554 5.7.1 No SMTP service here\r\n");
    assert!(matches!(s.failure(), Some(ClientError::Greeting(_))));
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Permanent);
    s.expect_sent("QUIT\r\n");

    let mut s = Script::new(StartTls::Never);
    s.drain();
    s.server(b"421 4.3.2 busy\r\n");
    assert!(matches!(s.failure(), Some(ClientError::ServiceClosing(_))));
    assert!(s.closed);
}

#[test]
fn ehlo_falls_back_to_helo() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 old.example\r\n");
    s.expect_sent("EHLO client.example\r\n");
    s.server(b"502 5.5.2 what\r\n");
    s.expect_sent("HELO client.example\r\n");
    s.server(b"250 old.example\r\n");
    // No PIPELINING: one command at a time.
    s.expect_sent("MAIL FROM:<a@example.org>\r\n");
    s.server(b"250 ok\r\n");
    s.expect_sent("RCPT TO:<b@example.org>\r\n");
    s.server(b"250 ok\r\n");
    s.expect_sent("DATA\r\n");
    s.server(b"354 go\r\n");
    s.expect_sent("hello\r\n.\r\n");
    s.server(b"250 queued\r\n");
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Sent);
}

#[test]
fn pipelined_group_with_refused_recipients() {
    let mut s = Script::new(StartTls::Never);
    s.client
        .send_mail(env(&["b@example.org", "c@example.org"]))
        .unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    // RFC 2920: MAIL, every RCPT and DATA in one write.
    s.expect_sent("EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n");
    // Every recipient refused, and the server wrongly says 354 anyway: end it with a dot.
    s.server(b"250 ok\r\n550 5.1.1 no\r\n552 5.2.2 full\r\n354 go ahead\r\n");
    s.expect_sent(".\r\n");
    s.server(b"554 5.5.1 no valid recipients\r\n");
    let o = s.outcomes()[0];
    assert_eq!(o.recipients[0].status, RecipientStatus::Permanent);
    // RFC 5321 §4.5.3.1.10: 552 to RCPT is temporary.
    assert_eq!(o.recipients[1].status, RecipientStatus::Temporary);
    assert_eq!(o.status, DeliveryStatus::Temporary);
    // The dot ended the server's transaction: the next message needs no RSET.
    s.client.send_mail(env(&["d@example.org"])).unwrap();
    s.drain();
    assert!(String::from_utf8_lossy(&s.sent).starts_with("MAIL FROM:"));

    // When DATA is refused instead, MAIL is still open on the server: RSET first.
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.sent.clear();
    s.server(b"250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n");
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Permanent);
    s.client.send_mail(env(&["d@example.org"])).unwrap();
    s.drain();
    assert!(String::from_utf8_lossy(&s.sent).starts_with("RSET\r\nMAIL FROM:"));
}

#[test]
fn rset_waits_for_its_reply_without_pipelining() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.client.send_mail(env(&["c@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250 mx\r\n");
    s.expect_sent("EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n");
    s.server(b"250 ok\r\n");
    s.expect_sent("RCPT TO:<b@example.org>\r\n");
    s.server(b"550 no\r\n");
    // MAIL is open on the server: RSET, and only after its reply the next MAIL.
    s.expect_sent("RSET\r\n");
    s.server(b"250 ok\r\n");
    s.expect_sent("MAIL FROM:<a@example.org>\r\n");
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Permanent);
}

#[test]
fn a_421_mid_batch_fails_the_rest_temporarily() {
    let mut s = Script::new(StartTls::Never);
    for to in ["b@example.org", "c@example.org", "d@example.org"] {
        s.client.send_mail(env(&[to])).unwrap();
    }
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    s.server(b"250 2.0.0 queued\r\n");
    s.server(b"421 4.3.0 shutting down\r\n");
    let o = s.outcomes();
    assert_eq!(o.len(), 3);
    assert_eq!(o[0].status, DeliveryStatus::Sent);
    assert_eq!(o[1].status, DeliveryStatus::Temporary);
    assert_eq!(o[2].status, DeliveryStatus::Temporary);
    assert_eq!(o[2].reply.as_ref().unwrap().code().get(), 421);
    assert!(s.closed);
}

#[test]
fn unsolicited_reply() {
    let mut s = Script::new(StartTls::Never);
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.server(b"250 surprise\r\n");
    assert!(matches!(
        s.failure(),
        Some(ClientError::UnsolicitedReply(_))
    ));
}

#[test]
fn size_refused_locally_from_advertised_size() {
    let mut s = Script::new(StartTls::Never);
    let mut e = env(&["b@example.org"]);
    e.size = Some(5000);
    s.client.send_mail(e).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.expect_sent("EHLO client.example\r\n");
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Permanent);
}

#[test]
fn silent_server_times_out() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    // RFC 5321 §4.5.3.2.1: 5 minutes for the greeting.
    let deadline = match s.client.poll_output() {
        ClientOutput::Wait { deadline } => deadline.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(deadline - s.now, Duration::from_secs(300));
    s.client.handle_timeout(deadline - Duration::from_secs(1));
    s.drain();
    assert!(s.failure().is_none());
    s.client.handle_timeout(deadline);
    s.drain();
    assert_eq!(s.failure(), Some(&ClientError::Timeout));
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Temporary);
}

#[test]
fn timeout_after_final_dot_is_unknown() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    // RFC 5321 §4.5.3.2.6: 10 minutes for the reply to the final dot.
    let deadline = match s.client.poll_output() {
        ClientOutput::Wait { deadline } => deadline.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(deadline - s.now, Duration::from_secs(600));
    s.client.handle_timeout(deadline);
    s.drain();
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Unknown);
    assert_eq!(
        s.outcomes()[0].recipients[0].status,
        RecipientStatus::Unknown
    );
}

#[test]
fn disconnect_after_final_dot_is_unknown_before_is_temporary() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    s.client.handle_eof(s.now);
    s.drain();
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Unknown);

    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.client.handle_eof(s.now);
    s.drain();
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Temporary);
}

#[test]
fn auth_undecodable_challenge_answered_with_star() {
    let mut c = ClientConfig::new("client.example").unwrap();
    c.starttls = StartTls::Never;
    c.allow_cleartext_auth = true;
    c.credentials = Some(smtp_proto::sasl::ClientCredentials::password("alice", "pw"));
    c.mechanism = Some(smtp_proto::sasl::Mechanism::CramMd5);
    let mut s = Script::new(StartTls::Never);
    s.client = Client::new(Arc::new(c), false, s.now);
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250 AUTH CRAM-MD5\r\n");
    s.expect_sent("EHLO client.example\r\nAUTH CRAM-MD5\r\n");
    s.server(b"334 !!!not-base64\r\n");
    s.expect_sent("*\r\n");
    s.server(b"501 5.7.0 cancelled\r\n");
    assert!(matches!(s.failure(), Some(ClientError::AuthFailed(_))));
}

const PLAUSIBLE: &[&[u8]] = &[
    b"220 mx\r\n",
    b"250 ok\r\n",
    b"250-mx\r\n250 PIPELINING\r\n",
    b"354 go\r\n",
    b"550 no\r\n",
    b"452 later\r\n",
    b"421 bye\r\n",
    b"334 \r\n",
    b"235 ok\r\n",
    b"221 bye\r\n",
    b"250-STARTTLS\r\n250 CHUNKING\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Arbitrary server bytes, in arbitrary pieces, never panic the client, and never
    /// produce a "sent" outcome without a positive final reply.
    #[test]
    fn arbitrary_server_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000), piece in 1usize..100) {
        let mut s = Script::new(StartTls::Opportunistic);
        s.client.send_mail(env(&["b@example.org"])).unwrap();
        s.drain();
        for chunk in bytes.chunks(piece) {
            s.server(chunk);
        }
        s.client.handle_timeout(s.now + Duration::from_secs(7200));
        s.drain();
    }

    /// Plausible reply streams reach deeper states.
    #[test]
    fn plausible_server_replies(
        replies in prop::collection::vec(prop::sample::select(PLAUSIBLE), 0..30),
        piece in 1usize..40,
    ) {
        let mut s = Script::new(StartTls::Opportunistic);
        s.client.send_mail(env(&["b@example.org", "c@example.org"])).unwrap();
        s.client.send_mail(env(&["d@example.org"])).unwrap();
        s.drain();
        let all: Vec<u8> = replies.concat();
        for chunk in all.chunks(piece) {
            s.server(chunk);
        }
        s.client.handle_eof(s.now);
        s.drain();
        // Every message ends with exactly one outcome once the session is over.
        prop_assert_eq!(s.outcomes().len(), 2);
    }
}

#[test]
fn tls_handshake_has_a_deadline() {
    let mut s = Script::new(StartTls::Required);
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250 STARTTLS\r\n");
    s.server(b"220 2.0.0 go ahead\r\n");
    assert!(s.starttls);
    let deadline = match s.client.poll_output() {
        ClientOutput::Wait { deadline } => deadline.expect("a handshake deadline"),
        other => panic!("{other:?}"),
    };
    assert_eq!(deadline - s.now, Duration::from_secs(60));
    s.client.handle_timeout(deadline);
    s.drain();
    assert_eq!(s.failure(), Some(&ClientError::Timeout));
}

#[test]
fn abort_body_sends_no_final_dot() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.sent.clear();
    // Answer DATA, but this time the host's body source fails: drive by hand.
    s.client
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n", s.now);
    loop {
        match s.client.poll_output() {
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => {
                s.client.send_body(b"partial line").unwrap();
                s.client.abort_body().unwrap();
            }
            ClientOutput::Transmit(b) => s.sent.extend_from_slice(&b),
            ClientOutput::Event(e) => s.events.push(e),
            ClientOutput::Close => s.closed = true,
            ClientOutput::StartTls => unreachable!(),
            ClientOutput::Wait { .. } => break,
        }
    }
    assert!(s.closed);
    assert!(!String::from_utf8_lossy(&s.sent).contains("\r\n.\r\n"));
    let o = s.outcomes()[0];
    assert_eq!(o.status, DeliveryStatus::Temporary);
    assert_eq!(o.refused, Some(smtp_proto::client::LocalRefusal::Aborted));
}

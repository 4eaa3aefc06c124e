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
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250 STARTTLS\r\n");
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

// ---- replies nothing asked for (issue 11, point 1) --------------------------------------

impl Script {
    fn with(config: ClientConfig) -> Script {
        let mut s = Script::new(StartTls::Never);
        s.client = Client::new(Arc::new(config), false, s.now);
        s
    }
}

fn config(starttls: StartTls) -> ClientConfig {
    let mut c = ClientConfig::new("client.example").unwrap();
    c.starttls = starttls;
    c.chunking = false;
    c
}

#[test]
fn reply_behind_the_greeting_is_unsolicited() {
    // The second reply came in the same read as the greeting, before EHLO was sent: it
    // answers nothing, and must not be taken for the EHLO reply.
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n250 mx\r\n");
    assert_eq!(
        s.failure().map(ToString::to_string).as_deref(),
        Some("unsolicited reply: 250 mx")
    );
    // No QUIT: the session is out of step.
    s.expect_sent("EHLO client.example\r\n");
    assert!(s.closed);
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Temporary);
}

#[test]
fn reply_to_a_command_not_yet_sent_is_unsolicited() {
    // Without PIPELINING, RCPT waits for the MAIL reply: a second reply in the same read
    // came before RCPT was sent.
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250 mx\r\n");
    s.expect_sent("EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n");
    s.server(b"250 sender ok\r\n250 recipient ok\r\n");
    s.expect_sent("RCPT TO:<b@example.org>\r\n");
    assert!(matches!(
        s.failure(),
        Some(ClientError::UnsolicitedReply(r)) if r.text() == "recipient ok"
    ));
    assert!(s.closed);
    let o = s.outcomes()[0];
    assert_eq!(o.status, DeliveryStatus::Temporary);
    assert_eq!(o.recipients[0].status, RecipientStatus::Temporary);
}

#[test]
fn more_replies_than_commands_in_a_pipelined_group() {
    // MAIL, RCPT, DATA: three commands, four replies. The fourth came before the final
    // dot went out and must not be read as its reply (it would make the message "sent").
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.sent.clear();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued\r\n");
    assert!(matches!(
        s.failure(),
        Some(ClientError::UnsolicitedReply(r)) if r.code().get() == 250
    ));
    let o = s.outcomes()[0];
    // The dot went out and no reply to it came: not known to be delivered.
    assert_eq!(o.status, DeliveryStatus::Unknown);
    assert_eq!(o.reply, None);
    assert!(!s.sent.ends_with(b"QUIT\r\n"));
    assert!(s.closed);
}

#[test]
fn replies_in_step_may_share_a_read() {
    // The same bytes as above less the extra reply, and the final reply in its own read:
    // every reply answers a command already sent.
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    s.server(b"250 2.0.0 queued\r\n");
    assert_eq!(s.failure(), None);
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Sent);
}

#[test]
fn lmtp_replies_after_the_dot_may_share_a_read() {
    // RFC 2033 §4.2: one reply per accepted recipient after the dot, all in one read.
    let mut c = config(StartTls::Never);
    c.lmtp = true;
    let mut s = Script::with(c);
    s.client
        .send_mail(env(&["b@example.org", "c@example.org"]))
        .unwrap();
    s.drain();
    s.server(b"220 lmtp ready\r\n");
    s.server(b"250-lmtp\r\n250 PIPELINING\r\n");
    s.server(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    s.server(b"250 2.0.0 b delivered\r\n452 4.2.2 c is full\r\n");
    assert_eq!(s.failure(), None);
    let o = s.outcomes()[0];
    assert_eq!(o.status, DeliveryStatus::Partial);
    assert_eq!(o.recipients[0].status, RecipientStatus::Accepted);
    assert_eq!(o.recipients[1].status, RecipientStatus::Temporary);
}

#[test]
fn a_421_behind_the_greeting_is_the_server_closing() {
    // RFC 5321 §3.8: 421 may come at any time.
    let mut s = Script::new(StartTls::Never);
    s.drain();
    s.server(b"220 mx ESMTP\r\n421 4.3.2 going down\r\n");
    assert!(matches!(s.failure(), Some(ClientError::ServiceClosing(_))));
    assert!(s.closed);
}

// ---- code-only replies (issue 11, point 2) ----------------------------------------------

#[test]
fn code_only_replies_are_replies() {
    // RFC 5321 §4.2: the text after the code is optional, everywhere.
    let mut s = Script::new(StartTls::Opportunistic);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220\r\n");
    s.expect_sent("EHLO client.example\r\n");
    // A successful EHLO announcing nothing: no PIPELINING, so one command at a time.
    s.server(b"250\r\n");
    let caps = s.client.capabilities().expect("capabilities");
    assert_eq!(caps.domain(), "");
    assert!(!caps.pipelining && !caps.starttls);
    s.expect_sent("MAIL FROM:<a@example.org>\r\n");
    s.server(b"250\r\n");
    s.expect_sent("RCPT TO:<b@example.org>\r\n");
    s.server(b"250\r\n");
    s.expect_sent("DATA\r\n");
    s.server(b"354\r\n");
    s.expect_sent("hello\r\n.\r\n");
    s.server(b"250\r\n");
    assert_eq!(s.failure(), None);
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Sent);
    s.client.quit();
    s.drain();
    s.expect_sent("QUIT\r\n");
    s.server(b"221\r\n");
    assert!(s.closed);
}

#[test]
fn code_only_ehlo_then_extensions() {
    // A first line without a domain, and extensions after it.
    let mut s = Script::new(StartTls::Never);
    s.drain();
    s.server(b"220 mx\r\n");
    s.server(b"250-\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
    let caps = s.client.capabilities().expect("capabilities");
    assert!(caps.pipelining);
    assert_eq!(caps.size_limit(), Some(1000));
    assert!(s.events.iter().any(|e| matches!(e, ClientEvent::Ready)));
}

#[test]
fn error_words_say_what_happened() {
    use smtp_proto::Reply;
    let r = |b: &[u8]| Reply::parse(b).unwrap();
    // One line per case: the error and what it prints. A 2yz or 3yz is never "refused".
    let cases: Vec<(ClientError, &str)> = vec![
        (
            ClientError::Greeting(r(b"554 5.7.1 go away\r\n")),
            "greeting refused: 554 5.7.1 go away",
        ),
        (
            ClientError::Greeting(r(b"250 hi\r\n")),
            "unexpected greeting: 250 hi",
        ),
        (ClientError::Ehlo(r(b"550 no\r\n")), "EHLO refused: 550 no"),
        (
            ClientError::Ehlo(r(b"354 what\r\n")),
            "unexpected reply to EHLO: 354 what",
        ),
        (
            ClientError::TlsRefused(r(b"454 4.7.0 later\r\n")),
            "STARTTLS refused: 454 4.7.0 later",
        ),
        (
            ClientError::TlsRefused(r(b"250 ok\r\n")),
            "unexpected reply to STARTTLS: 250 ok",
        ),
        (
            ClientError::AuthFailed(r(b"535 5.7.8 bad\r\n")),
            "authentication failed: 535 5.7.8 bad",
        ),
        (
            ClientError::AuthFailed(r(b"354 go\r\n")),
            "unexpected reply to AUTH: 354 go",
        ),
        (
            ClientError::UnexpectedReply {
                command: "DATA",
                reply: r(b"250 ok\r\n"),
            },
            "unexpected reply to DATA: 250 ok",
        ),
        (
            ClientError::UnsolicitedReply(r(b"250\r\n")),
            "unsolicited reply: 250",
        ),
        (
            ClientError::BodyAbandoned,
            "message abandoned: connection closed without the final dot",
        ),
        (ClientError::Disconnected, "connection closed by the server"),
    ];
    for (error, words) in cases {
        assert_eq!(error.to_string(), words);
    }
}

#[test]
fn a_refused_long_line_says_the_client_closed() {
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.client
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n", s.now);
    loop {
        match s.client.poll_output() {
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => {
                assert!(s.client.send_body(&[b'x'; 1200]).is_err());
            }
            ClientOutput::Event(e) => s.events.push(e),
            ClientOutput::Close => s.closed = true,
            ClientOutput::Wait { .. } => break,
            _ => {}
        }
    }
    assert_eq!(s.failure(), Some(&ClientError::BodyAbandoned));
    assert_eq!(
        s.outcomes()[0].refused,
        Some(smtp_proto::client::LocalRefusal::LineTooLong)
    );
}

// ---- DATA answered without 354 (issue 19, B2) --------------------------------------------

#[test]
fn data_answered_with_250_or_221_is_not_sent() {
    for (reply, code) in [(&b"250 2.0.0 ok\r\n"[..], 250), (b"221 2.0.0 bye\r\n", 221)] {
        let mut s = Script::new(StartTls::Never);
        s.client.send_mail(env(&["b@example.org"])).unwrap();
        s.drain();
        s.server(b"220 mx ESMTP\r\n");
        s.server(EHLO);
        s.sent.clear();
        s.server(b"250 ok\r\n250 ok\r\n");
        s.server(reply);
        let o = s.outcomes()[0];
        assert_eq!(o.status, DeliveryStatus::Temporary, "{code}");
        assert_eq!(o.recipients[0].status, RecipientStatus::Temporary);
        assert_eq!(o.reply.as_ref().map(|r| r.code().get()), Some(code));
        assert!(matches!(
            s.failure(),
            Some(ClientError::UnexpectedReply { command: "DATA", reply }) if reply.code().get() == code
        ));
        // No body went out, nor a dot.
        assert_eq!(s.sent, b"");
        assert!(s.closed);
    }
}

#[test]
fn data_refusals_fail_the_message_by_class() {
    for (reply, status) in [
        (&b"451 4.3.0 later\r\n"[..], DeliveryStatus::Temporary),
        (b"554 5.5.1 no\r\n", DeliveryStatus::Permanent),
    ] {
        let mut s = Script::new(StartTls::Never);
        s.client.send_mail(env(&["b@example.org"])).unwrap();
        s.drain();
        s.server(b"220 mx ESMTP\r\n");
        s.server(EHLO);
        s.server(b"250 ok\r\n250 ok\r\n");
        s.server(reply);
        assert_eq!(s.outcomes()[0].status, status);
        // A refusal leaves the session in step.
        assert_eq!(s.failure(), None);
    }
}

// ---- SIZE: declared, and the limits after STARTTLS (issue 11, points 3 and 4) -----------

#[test]
fn mail_declares_size_and_body_when_offered() {
    let mut s = Script::new(StartTls::Never);
    let mut e = env(&["b@example.org"]);
    e.size = Some(500);
    e.body = smtp_proto::BodyType::EightBitMime;
    s.client.send_mail(e).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.expect_sent(
        "EHLO client.example\r\nMAIL FROM:<a@example.org> SIZE=500 BODY=8BITMIME\r\n\
         RCPT TO:<b@example.org>\r\nDATA\r\n",
    );
}

/// A session through STARTTLS: `before` and `after` are the EHLO replies outside and
/// inside TLS.
fn through_starttls(size: u64, before: &[u8], after: &[u8]) -> Script {
    let mut s = Script::new(StartTls::Required);
    let mut e = env(&["b@example.org"]);
    e.size = Some(size);
    s.client.send_mail(e).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(before);
    s.expect_sent("EHLO client.example\r\nSTARTTLS\r\n");
    s.server(b"220 2.0.0 go ahead\r\n");
    assert!(s.starttls);
    s.client.handle_tls_established(s.now);
    s.drain();
    s.expect_sent("EHLO client.example\r\n");
    s.server(after);
    s
}

#[test]
fn size_that_shrinks_after_starttls_refuses_locally() {
    // RFC 3207 §4.2: what counts is the EHLO reply inside TLS.
    let mut s = through_starttls(
        5000,
        b"250-mx\r\n250-STARTTLS\r\n250-PIPELINING\r\n250 SIZE 100000\r\n",
        b"250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
    );
    let o = s.outcomes()[0];
    assert_eq!(o.status, DeliveryStatus::Permanent);
    assert_eq!(
        o.refused,
        Some(smtp_proto::client::LocalRefusal::TooBig {
            size: 5000,
            limit: 1000
        })
    );
    // Nothing of the message went out.
    s.expect_sent("");
}

#[test]
fn size_that_grows_after_starttls_allows_the_message() {
    let mut s = through_starttls(
        5000,
        b"250-mx\r\n250-STARTTLS\r\n250 SIZE 1000\r\n",
        b"250-mx\r\n250-PIPELINING\r\n250 SIZE 100000\r\n",
    );
    assert!(s.outcomes().is_empty());
    s.expect_sent("MAIL FROM:<a@example.org> SIZE=5000\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
}

// ---- every wait bounded (issue 19, B3 and T) --------------------------------------------

fn wait_deadline(s: &mut Script) -> Instant {
    match s.client.poll_output() {
        ClientOutput::Wait { deadline } => deadline.expect("a deadline"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_timeout_bounds_every_wait() {
    // `--timeout 5`: greeting, commands, DATA, the body's writes, the final reply and the
    // TLS handshake all within 5 s (RFC 5321's defaults are 2 to 10 minutes).
    let five = Duration::from_secs(5);
    let mut c = config(StartTls::Required);
    c.timeouts = smtp_proto::client::ClientTimeouts::all(five);
    let mut s = Script::with(c);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    assert_eq!(wait_deadline(&mut s) - s.now, five, "greeting");
    s.server(b"220 mx ESMTP\r\n");
    assert_eq!(wait_deadline(&mut s) - s.now, five, "EHLO");
    s.server(b"250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    s.server(b"220 go ahead\r\n");
    assert_eq!(wait_deadline(&mut s) - s.now, five, "handshake");
    s.client.handle_tls_established(s.now);
    s.drain();
    s.server(b"250-mx\r\n250 PIPELINING\r\n");
    assert_eq!(wait_deadline(&mut s) - s.now, five, "MAIL, RCPT, DATA");
    // The 354: drive by hand to look at the deadline while the body is being written.
    s.client
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n", s.now);
    let mut wanted = false;
    loop {
        match s.client.poll_output() {
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => wanted = true,
            ClientOutput::Wait { deadline } => {
                assert_eq!(deadline.unwrap() - s.now, five, "body");
                break;
            }
            _ => {}
        }
    }
    assert!(wanted);
    // Each write restarts the data-block timer (RFC 5321 §4.5.3.2.5).
    let later = s.now + Duration::from_secs(4);
    s.client.send_body(b"hello\r\n").unwrap();
    s.client.handle_sending(later);
    assert_eq!(s.client.deadline().unwrap() - later, five);
    s.client.end_body().unwrap();
    s.client.handle_sending(later);
    assert_eq!(s.client.deadline().unwrap() - later, five, "final reply");
}

#[test]
fn a_body_write_that_never_completes_times_out() {
    // A server that stops reading mid-DATA: the host's write is bounded by the
    // machine's deadline, and past it the session fails.
    let mut s = Script::new(StartTls::Never);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(EHLO);
    s.client
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n", s.now);
    loop {
        match s.client.poll_output() {
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => {
                s.client
                    .send_body(b"a piece that the server never reads\r\n")
                    .unwrap();
            }
            ClientOutput::Event(e) => s.events.push(e),
            ClientOutput::Wait { .. } => break,
            _ => {}
        }
    }
    let start = s.now + Duration::from_secs(1);
    s.client.handle_sending(start);
    // RFC 5321 §4.5.3.2.5: 3 minutes per send.
    let deadline = s.client.deadline().unwrap();
    assert_eq!(deadline - start, Duration::from_secs(180));
    s.client.handle_timeout(deadline - Duration::from_millis(1));
    s.drain();
    assert_eq!(s.failure(), None);
    s.client.handle_timeout(deadline);
    s.drain();
    assert_eq!(s.failure(), Some(&ClientError::Timeout));
    let o = s.outcomes()[0];
    // The final dot never went out: temporary, not unknown.
    assert_eq!(o.status, DeliveryStatus::Temporary);
    assert!(s.closed);
}

#[test]
fn one_timeout_bounds_bdat_chunks() {
    // With CHUNKING: the body's writes and every chunk's reply within `--timeout`.
    let five = Duration::from_secs(5);
    let mut c = config(StartTls::Never);
    c.chunking = true;
    c.timeouts = smtp_proto::client::ClientTimeouts::all(five);
    let mut s = Script::with(c);
    s.client.send_mail(env(&["b@example.org"])).unwrap();
    s.drain();
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    s.client.handle_input(b"250 ok\r\n250 ok\r\n", s.now);
    let mut wanted = false;
    loop {
        match s.client.poll_output() {
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => wanted = true,
            ClientOutput::Wait { deadline } => {
                assert_eq!(deadline.unwrap() - s.now, five, "body");
                break;
            }
            _ => {}
        }
    }
    assert!(wanted);
    // Two pieces: the first goes out as a BDAT chunk when the second comes.
    let later = s.now + Duration::from_secs(3);
    s.client.send_body(b"one\r\n").unwrap();
    s.client.send_body(b"two\r\n").unwrap();
    s.client.handle_sending(later);
    // The chunk's reply is due 5 s after it was sent, the write 5 s after `later`.
    assert_eq!(s.client.deadline().unwrap() - s.now, five);
    s.client.end_body().unwrap();
    s.client.handle_timeout(s.now + five);
    s.drain();
    assert_eq!(s.failure(), Some(&ClientError::Timeout));
    assert_eq!(s.outcomes()[0].status, DeliveryStatus::Unknown);
}

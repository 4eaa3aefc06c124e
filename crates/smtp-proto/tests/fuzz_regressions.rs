//! Inputs the fuzz targets (`fuzz/`) found, one test each, named after what went wrong.

use smtp_proto::{AddressError, Command, CommandError, Mailbox, ParseOptions, Verb};

/// command_roundtrip: a quoted local part holding `>` with a UTF-8 domain. The
/// reverse-path was cut at that `>` to decide whether UTF-8 was its only problem, so MAIL
/// with SMTPUTF8 refused it as a syntax error.
#[test]
fn utf8_path_with_gt_in_quoted_local_part() {
    let line = "MAIL FROM:<\"a>b\"@例子.广告> SMTPUTF8\r\n";
    let utf8 = ParseOptions { utf8: true };
    let Command::Mail { from, params } = Command::parse_with(line.as_bytes(), utf8).unwrap() else {
        panic!("not MAIL");
    };
    assert_eq!(
        from.mailbox(),
        Some(&Mailbox::new("a>b", "例子.广告").unwrap())
    );
    assert!(params.smtputf8);
    // Without SMTPUTF8 the error says why.
    for line in [
        "MAIL FROM:<\"a>b\"@例子.广告>\r\n",
        "RCPT TO:<\"a>b\"@例子.广告>\r\n",
    ] {
        let verb = if line.starts_with("MAIL") {
            Verb::Mail
        } else {
            Verb::Rcpt
        };
        assert_eq!(
            Command::parse(line.as_bytes()),
            Err(CommandError::Address {
                verb,
                error: AddressError::Utf8NotPermitted
            }),
            "{line}"
        );
    }
}

/// command_roundtrip: `AUTH=` with the identity `<>` (an xtext value, not the unknown
/// identity) went out as `AUTH=<>` and read back as `MailAuth::Unknown`.
#[test]
fn mail_auth_identity_that_looks_like_unknown() {
    use smtp_proto::{MailAuth, MailParams, ReversePath, XText};
    let identity = Command::Mail {
        from: ReversePath::Null,
        params: MailParams {
            auth: Some(MailAuth::Identity(XText::new("<>").unwrap())),
            ..MailParams::default()
        },
    };
    let bytes = identity.to_bytes();
    assert_eq!(bytes, b"MAIL FROM:<> AUTH=+3C>\r\n");
    assert_eq!(Command::parse(&bytes).unwrap(), identity);
    let unknown = Command::parse(b"MAIL FROM:<> AUTH=<>\r\n").unwrap();
    assert!(matches!(
        unknown,
        Command::Mail {
            params: MailParams {
                auth: Some(MailAuth::Unknown),
                ..
            },
            ..
        }
    ));
    assert_eq!(unknown.to_bytes(), b"MAIL FROM:<> AUTH=<>\r\n");
}

/// Runs a server over `inputs`, each given once the server waits, accepting every
/// decision, then an EOF; returns the events.
fn server_events(
    config: smtp_proto::server::ServerConfig,
    inputs: &[&[u8]],
) -> Vec<smtp_proto::server::Event> {
    use smtp_proto::server::{Output, PeerInfo, Session};
    let now = std::time::Instant::now();
    let mut server = Session::new(std::sync::Arc::new(config), PeerInfo::default(), now);
    let mut events = Vec::new();
    let mut inputs = inputs.iter();
    loop {
        match server.poll_output() {
            Output::Event(e) => {
                if e.needs_decision() {
                    server.accept().unwrap();
                }
                events.push(e);
            }
            Output::Close => return events,
            Output::Wait { .. } => match inputs.next() {
                Some(input) => server.handle_input(input, now),
                None => server.handle_eof(now),
            },
            Output::Transmit(_) | Output::StartTls => {}
        }
    }
}

/// server_session: a BDAT message between two chunks, then an error that closes the
/// session (a bare LF, a forbidden command, too many errors). The message was dropped
/// without `MessageAborted`, so a host would keep the half-received body.
#[test]
fn message_aborted_when_an_error_closes_mid_bdat() {
    use smtp_proto::server::{AbortReason, Event, ServerConfig};
    let start = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nBDAT 5\r\nhello";
    let mut few_errors = ServerConfig::new("mx.example.org").unwrap();
    few_errors.limits.max_errors = 1;
    for (config, tail) in [
        (
            ServerConfig::new("mx.example.org").unwrap(),
            "NOOP\nQUIT\r\n",
        ),
        (
            ServerConfig::new("mx.example.org").unwrap(),
            "GET / HTTP/1.1\r\n",
        ),
        (few_errors, "XYZZY\r\n"),
    ] {
        let events = server_events(
            config,
            &[b"EHLO c.example\r\n", start.as_bytes(), tail.as_bytes()],
        );
        let started = events
            .iter()
            .filter(|e| matches!(e, Event::MessageStart))
            .count();
        let aborted: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::MessageAborted { reason } => Some(*reason),
                _ => None,
            })
            .collect();
        assert_eq!(started, 1, "{tail:?}: {events:?}");
        assert_eq!(aborted, [AbortReason::Disconnected], "{tail:?}: {events:?}");
    }
}

/// paired_session: LMTP, a message refused at the end of DATA (here too big). The server
/// sent one reply where RFC 2033 §4.2 has one per accepted recipient, so the client
/// waited for the others forever.
#[test]
fn lmtp_data_refusal_gets_one_reply_per_recipient() {
    use smtp_proto::server::{Output, PeerInfo, ServerConfig, Session};
    let mut config = ServerConfig::new("mx.example.org").unwrap();
    config.lmtp = true;
    config.limits.max_message_size = Some(4);
    let now = std::time::Instant::now();
    let mut server = Session::new(std::sync::Arc::new(config), PeerInfo::default(), now);
    let mut sent = Vec::new();
    let inputs: [&[u8]; 3] = [
        b"LHLO c.example\r\n",
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
        b"too big\r\n.\r\n",
    ];
    let mut inputs = inputs.iter();
    loop {
        match server.poll_output() {
            Output::Transmit(b) => sent.extend_from_slice(&b),
            Output::Event(e) if e.needs_decision() => server.accept().unwrap(),
            Output::Wait { .. } => match inputs.next() {
                Some(input) => server.handle_input(input, now),
                None => break,
            },
            _ => {}
        }
    }
    let sent = String::from_utf8(sent).unwrap();
    let tail = sent.split_once("354 ").unwrap().1;
    assert_eq!(tail.matches("552 5.3.4").count(), 2, "{sent}");
}

/// paired_session: LMTP over BDAT, the last chunk refused (here too big). A client that
/// read a refused `BDAT LAST` as one reply and the first of per-recipient replies alike
/// cannot tell them apart: the first recipient's 452 ended the message, and the next
/// replies were taken for the next message's. Now `BDAT LAST` gets one reply per accepted
/// recipient whatever the outcome, on both sides (RFC 2033 §4.2 with RFC 3030).
#[test]
fn lmtp_bdat_last_gets_one_reply_per_recipient() {
    use smtp_proto::client::{
        Client, ClientConfig, ClientEvent, ClientOutput, DeliveryStatus, Envelope, Recipient,
        StartTls,
    };
    use smtp_proto::server::{Output, PeerInfo, ServerConfig, Session};
    use smtp_proto::{ForwardPath, ReversePath};

    // The client: two replies after BDAT LAST, the first negative.
    let mut config = ClientConfig::new("client.example.org").unwrap();
    config.lmtp = true;
    config.starttls = StartTls::Never;
    let now = std::time::Instant::now();
    let mut client = Client::new(std::sync::Arc::new(config), false, now);
    let to = |s: &str| {
        Recipient::new(ForwardPath::Mailbox(
            Mailbox::parse(s).unwrap().into_owned(),
        ))
    };
    let env = Envelope::new(
        ReversePath::Mailbox(Mailbox::parse("a@example.org").unwrap().into_owned()),
        vec![to("b@example.org"), to("c@example.org")],
    );
    client.send_mail(env).unwrap();
    let replies: [&[u8]; 5] = [
        b"220 mx\r\n",
        b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n",
        b"452 4.2.2 Mailbox full\r\n",
        b"250 2.0.0 Delivered\r\n",
    ];
    let mut replies = replies.iter();
    let mut done = None;
    loop {
        match client.poll_output() {
            ClientOutput::Event(ClientEvent::BodyWanted { .. }) => {
                client.send_body(b"x\r\n").unwrap();
                client.end_body().unwrap();
            }
            ClientOutput::Event(ClientEvent::MessageDone(o)) => done = Some(o),
            ClientOutput::Wait { .. } => match replies.next() {
                Some(r) => {
                    assert!(done.is_none(), "done before all replies");
                    client.handle_input(r, now);
                }
                None => break,
            },
            _ => {}
        }
    }
    let done = done.expect("the message is reported");
    assert_eq!(done.status, DeliveryStatus::Partial);
    let codes: Vec<u16> = done
        .recipients
        .iter()
        .map(|r| r.reply.as_ref().unwrap().code().get())
        .collect();
    assert_eq!(codes, [452, 250]);

    // The server: a refused BDAT LAST is answered once per recipient.
    let mut config = ServerConfig::new("mx.example.org").unwrap();
    config.lmtp = true;
    config.limits.max_message_size = Some(4);
    let mut server = Session::new(std::sync::Arc::new(config), PeerInfo::default(), now);
    let mut sent = Vec::new();
    let inputs: [&[u8]; 2] = [
        b"LHLO c.example\r\n",
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nBDAT 7 LAST\r\ntoo big",
    ];
    let mut inputs = inputs.iter();
    loop {
        match server.poll_output() {
            Output::Transmit(b) => sent.extend_from_slice(&b),
            Output::Event(e) if e.needs_decision() => server.accept().unwrap(),
            Output::Wait { .. } => match inputs.next() {
                Some(input) => server.handle_input(input, now),
                None => break,
            },
            _ => {}
        }
    }
    let sent = String::from_utf8(sent).unwrap();
    assert_eq!(sent.matches("552 5.3.4").count(), 2, "{sent}");
}

/// `command_decode` found the command fast path taking a second CRLF off a line that
/// ends in two: `parse_with` removes one CRLF, as the full parser does, and a CR left in
/// the line is a bare CR (RFC 5321 §2.3.8), whichever path reads it.
#[test]
fn only_one_crlf_is_removed_from_a_line() {
    use smtp_proto::{Command, CommandError, ParseOptions};
    for line in [
        &b"NOOP\r\n\r\n"[..],
        b"MAIL FROM:<a@b>\r\n\r\n",
        b"RCPT TO:<a@b>\r\n\r\n",
    ] {
        let options = ParseOptions::default();
        assert_eq!(
            Command::parse_with(line, options),
            Err(CommandError::BareCr)
        );
        assert_eq!(
            Command::parse_full(line, options),
            Err(CommandError::BareCr)
        );
    }
}

/// `address_params` found the command fast path slicing a string before the start of the
/// text it had checked: with a null reverse-path, the first string was taken from ENVID
/// even when AUTH came before it.
#[test]
fn mail_strings_after_a_null_path_in_any_order() {
    use smtp_proto::{Command, ParseOptions};
    for line in [
        &b"MAIL FROM:<> AUTH= ENVID=ORCB"[..],
        b"MAIL FROM:<> AUTH=a@b ENVID=x",
        b"MAIL FROM:<> ENVID=x AUTH=a@b",
    ] {
        let options = ParseOptions::default();
        let parsed = Command::parse_with(line, options);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert_eq!(parsed, Command::parse_full(line, options));
    }
}

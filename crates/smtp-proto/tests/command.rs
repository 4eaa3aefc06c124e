//! Command table tests: one line per case, with the RFC section beside it. Every accepted
//! case is also serialized and parsed again (decode, encode, decode).

use smtp_proto::{
    BodyType, ByMode, Command, CommandDecoder, CommandError, Decoded, ForwardPath, Mailbox,
    ParseOptions, Ret, ReversePath,
};

/// Parses `input` (given without CRLF), checks the canonical form, and round-trips it.
fn ok(input: &str, canonical: &str) -> Command<'static> {
    ok_with(input, canonical, false)
}

fn ok_with(input: &str, canonical: &str, utf8: bool) -> Command<'static> {
    let opts = ParseOptions { utf8 };
    let line = format!("{input}\r\n");
    let cmd = Command::parse_with(line.as_bytes(), opts)
        .unwrap_or_else(|e| panic!("{input:?} failed: {e}"))
        .into_owned();
    let bytes = cmd.to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        format!("{canonical}\r\n"),
        "canonical form of {input:?}"
    );
    let again = Command::parse_with(&bytes, opts).expect("canonical form parses");
    assert_eq!(again, cmd, "round trip of {input:?}");
    cmd
}

/// Parses `input` and checks the exact reply a server sends for the error.
fn err(input: &str, reply: &str) {
    err_with(input, reply, false)
}

fn err_with(input: &str, reply: &str, utf8: bool) {
    let line = format!("{input}\r\n");
    match Command::parse_with(line.as_bytes(), ParseOptions { utf8 }) {
        Ok(cmd) => panic!("{input:?} parsed as {cmd:?}"),
        Err(e) => assert_eq!(
            String::from_utf8_lossy(&e.reply().to_bytes()),
            format!("{reply}\r\n"),
            "{input:?}: {e:?}"
        ),
    }
}

fn mail(input: &str, canonical: &str) -> (ReversePath<'static>, smtp_proto::MailParams<'static>) {
    match ok(input, canonical) {
        Command::Mail { from, params } => (from, params),
        other => panic!("not MAIL: {other:?}"),
    }
}

fn rcpt(input: &str, canonical: &str) -> (ForwardPath<'static>, smtp_proto::RcptParams<'static>) {
    match ok(input, canonical) {
        Command::Rcpt { to, params } => (to, params),
        other => panic!("not RCPT: {other:?}"),
    }
}

#[test]
fn hello_commands() {
    ok("HELO relay.example.org", "HELO relay.example.org"); // RFC 5321 §4.1.1.1
    ok("EHLO relay.example.org", "EHLO relay.example.org"); // §4.1.1.1
    ok("ehlo Relay.Example.ORG", "EHLO Relay.Example.ORG"); // §2.4 verbs case-insensitive
    ok("EHLO [192.0.2.1]", "EHLO [192.0.2.1]"); // §4.1.3 IPv4 literal
    ok("EHLO [IPv6:2001:db8::1]", "EHLO [IPv6:2001:db8::1]"); // §4.1.3 IPv6 literal
    ok(
        "EHLO [ipv6:2001:DB8:0:0:0:0:0:1]",
        "EHLO [IPv6:2001:db8::1]",
    ); // ABNF strings are case-insensitive
    ok("EHLO [x-tag:anything]", "EHLO [x-tag:anything]"); // §4.1.3 General-address-literal
    ok("EHLO localhost", "EHLO localhost");
    ok("EHLO host   ", "EHLO host"); // trailing spaces tolerated
    ok("LHLO lmtp.example.org", "LHLO lmtp.example.org"); // RFC 2033 §4.1
    err("EHLO", "501 5.5.4 Syntax: EHLO hostname");
    err("EHLO ", "501 5.5.4 Syntax: EHLO hostname");
    err("HELO", "501 5.5.4 Syntax: HELO hostname");
    err("EHLO bad_host!", "501 5.5.4 Syntax: EHLO hostname");
    err("EHLO a b", "501 5.5.4 Syntax: EHLO hostname");
    err("EHLO [300.0.0.1]", "501 5.5.4 Syntax: EHLO hostname");
    err("LHLO", "501 5.5.4 Syntax: LHLO hostname");
}

#[test]
fn mail_from() {
    // RFC 5321 §4.1.1.2 and §4.1.2.
    let (from, params) = mail(
        "MAIL FROM:<alice@example.org>",
        "MAIL FROM:<alice@example.org>",
    );
    assert_eq!(from.mailbox().unwrap().local_part(), "alice");
    assert!(params.is_empty());
    assert_eq!(mail("MAIL FROM:<>", "MAIL FROM:<>").0, ReversePath::Null); // §4.5.5 null path
    mail("mail from:<a@b>", "MAIL FROM:<a@b>"); // §2.4 case-insensitive
    mail("MAIL FROM: <a@b>", "MAIL FROM:<a@b>"); // space after colon tolerated (documented)
    mail("MAIL FROM:<a@b>  SIZE=10  ", "MAIL FROM:<a@b> SIZE=10"); // extra spaces tolerated
    mail(
        "MAIL FROM:<@hosta.int,@jkl.org:userc@d.bar.org>",
        "MAIL FROM:<userc@d.bar.org>",
    ); // §4.1.1.3, App. C: source route dropped
    mail(
        "MAIL FROM:<\"John \\\"Q\\\" Smith\"@example.org>",
        "MAIL FROM:<\"John \\\"Q\\\" Smith\"@example.org>",
    ); // quoted-pairSMTP
    mail(
        "MAIL FROM:<\"plain\"@example.org>",
        "MAIL FROM:<plain@example.org>",
    ); // unnecessary quoting removed
    mail("MAIL FROM:<a@[IPv6:::1]>", "MAIL FROM:<a@[IPv6:::1]>");
    err("MAIL FROM:a@b", "501 5.1.7 Bad sender address syntax"); // §4.1.2 Path needs <>
    err("MAIL FROM:<a@b", "501 5.1.7 Bad sender address syntax");
    err("MAIL FROM:<a@b>x", "501 5.1.7 Bad sender address syntax");
    err("MAIL FROM:<a b@c>", "501 5.1.7 Bad sender address syntax");
    err("MAIL TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>");
    err("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>");
    err("MAIL FROM", "501 5.5.4 Syntax: MAIL FROM:<address>");
    let long_local = "l".repeat(65);
    err(
        &format!("MAIL FROM:<{long_local}@x>"),
        "501 5.1.7 Path too long",
    ); // §4.5.3.1.1
}

#[test]
fn mail_parameters() {
    // RFC 1870 SIZE, RFC 6152 / 3030 BODY, RFC 6531 SMTPUTF8, RFC 3461 RET/ENVID,
    // RFC 4954 AUTH, RFC 8689 REQUIRETLS, RFC 6710 MT-PRIORITY, RFC 2852 BY.
    let (_, p) = mail(
        "MAIL FROM:<a@b> size=1000 body=8bitmime RET=hdrs ENVID=QQ314159 AUTH=e+3Dmc2@example.com REQUIRETLS MT-PRIORITY=-3 BY=120;R",
        "MAIL FROM:<a@b> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ314159 AUTH=e+3Dmc2@example.com REQUIRETLS MT-PRIORITY=-3 BY=120;R",
    );
    assert_eq!(p.size, Some(1000));
    assert_eq!(p.body, Some(BodyType::EightBitMime));
    assert_eq!(p.ret, Some(Ret::Hdrs));
    assert_eq!(p.envid.as_ref().unwrap().as_str(), "QQ314159");
    let Some(smtp_proto::MailAuth::Identity(auth)) = &p.auth else {
        panic!()
    };
    assert_eq!(auth.as_str(), "e=mc2@example.com"); // RFC 4954 §5 example, xtext-decoded
    assert!(p.requiretls);
    assert_eq!(p.mt_priority, Some(-3));
    assert_eq!(p.by.unwrap().mode, ByMode::Return);
    let (_, p) = mail("MAIL FROM:<a@b> AUTH=<>", "MAIL FROM:<a@b> AUTH=<>");
    assert_eq!(p.auth, Some(smtp_proto::MailAuth::Unknown));
    let (_, p) = mail(
        "MAIL FROM:<a@b> BODY=BINARYMIME",
        "MAIL FROM:<a@b> BODY=BINARYMIME",
    );
    assert_eq!(p.body, Some(BodyType::BinaryMime));
    mail("MAIL FROM:<a@b> BODY=7BIT", "MAIL FROM:<a@b> BODY=7BIT");
    mail("MAIL FROM:<a@b> BY=-60;NT", "MAIL FROM:<a@b> BY=-60;NT");
    mail("MAIL FROM:<a@b> ENVID=a+2Bb", "MAIL FROM:<a@b> ENVID=a+2Bb"); // RFC 3461 §4 xtext
    // Unknown parameters are kept for the host, in order.
    let (_, p) = mail(
        "MAIL FROM:<a@b> X-FOO=bar XBAZ",
        "MAIL FROM:<a@b> X-FOO=bar XBAZ",
    );
    assert_eq!(p.other.len(), 2);
    assert_eq!(
        (p.other[0].keyword(), p.other[0].value()),
        ("X-FOO", Some("bar"))
    );
    assert_eq!((p.other[1].keyword(), p.other[1].value()), ("XBAZ", None));
    // Errors: overflow, bad values, duplicates, control characters after xtext decoding.
    err(
        "MAIL FROM:<a@b> SIZE=184467440737095516160",
        "501 5.5.4 Syntax error in parameter SIZE",
    );
    err(
        "MAIL FROM:<a@b> SIZE=12a",
        "501 5.5.4 Syntax error in parameter SIZE",
    );
    err(
        "MAIL FROM:<a@b> SIZE",
        "501 5.5.4 Syntax error in parameter SIZE",
    );
    err(
        "MAIL FROM:<a@b> SIZE=1 size=2",
        "501 5.5.4 Syntax error in parameter SIZE",
    );
    err(
        "MAIL FROM:<a@b> X-A=1 x-a=2",
        "501 5.5.4 Syntax error in parameter X-A",
    );
    err(
        "MAIL FROM:<a@b> BODY=9BIT",
        "501 5.5.4 Syntax error in parameter BODY",
    );
    err(
        "MAIL FROM:<a@b> SMTPUTF8=yes",
        "501 5.5.4 Syntax error in parameter SMTPUTF8",
    );
    err(
        "MAIL FROM:<a@b> RET=ALL",
        "501 5.5.4 Syntax error in parameter RET",
    );
    err(
        "MAIL FROM:<a@b> ENVID=a+0D+0Ab",
        "501 5.5.4 Syntax error in parameter ENVID",
    );
    err(
        "MAIL FROM:<a@b> ENVID=a+00b",
        "501 5.5.4 Syntax error in parameter ENVID",
    );
    err(
        "MAIL FROM:<a@b> ENVID=a+2bb",
        "501 5.5.4 Syntax error in parameter ENVID",
    ); // hexchar is upper case
    err(
        "MAIL FROM:<a@b> AUTH=x+0D+0A",
        "501 5.5.4 Syntax error in parameter AUTH",
    );
    err(
        "MAIL FROM:<a@b> MT-PRIORITY=10",
        "501 5.5.4 Syntax error in parameter MT-PRIORITY",
    );
    err(
        "MAIL FROM:<a@b> BY=0;R",
        "501 5.5.4 Syntax error in parameter BY",
    ); // RFC 2852 §4
    err(
        "MAIL FROM:<a@b> BY=1234567890;N",
        "501 5.5.4 Syntax error in parameter BY",
    );
    err(
        "MAIL FROM:<a@b> -X=1",
        "501 5.5.4 Syntax error in parameter -X",
    );
    err(
        "MAIL FROM:<a@b> X==",
        "501 5.5.4 Syntax error in parameter X",
    );
}

#[test]
fn rcpt_to() {
    // RFC 5321 §4.1.1.3.
    let (to, _) = rcpt("RCPT TO:<bob@example.org>", "RCPT TO:<bob@example.org>");
    assert_eq!(to.mailbox().unwrap().host().to_string(), "example.org");
    assert_eq!(
        rcpt("RCPT TO:<Postmaster>", "RCPT TO:<Postmaster>").0,
        ForwardPath::Postmaster
    );
    assert_eq!(
        rcpt("rcpt to:<postmaster>", "RCPT TO:<Postmaster>").0,
        ForwardPath::Postmaster
    );
    rcpt(
        "RCPT TO:<Postmaster@example.org>",
        "RCPT TO:<Postmaster@example.org>",
    );
    rcpt("RCPT TO:<@a,@b:user@c>", "RCPT TO:<user@c>");
    // RFC 3461 §4.1, §4.2.
    let (_, p) = rcpt(
        "RCPT TO:<a@b> NOTIFY=failure,delay ORCPT=rfc822;Bob+2Bx@example.org",
        "RCPT TO:<a@b> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Bob+2Bx@example.org",
    );
    let n = p.notify.unwrap();
    assert!(n.failure && n.delay && !n.success);
    assert_eq!(
        p.orcpt.as_ref().unwrap().addr().as_str(),
        "Bob+x@example.org"
    );
    assert!(
        rcpt("RCPT TO:<a@b> NOTIFY=NEVER", "RCPT TO:<a@b> NOTIFY=NEVER")
            .1
            .notify
            .unwrap()
            .is_never()
    );
    err(
        "RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS",
        "501 5.5.4 Syntax error in parameter NOTIFY",
    );
    err(
        "RCPT TO:<a@b> NOTIFY=SUCCESS,SUCCESS",
        "501 5.5.4 Syntax error in parameter NOTIFY",
    );
    err(
        "RCPT TO:<a@b> NOTIFY=",
        "501 5.5.4 Syntax error in parameter NOTIFY",
    );
    err(
        "RCPT TO:<a@b> ORCPT=rfc822",
        "501 5.5.4 Syntax error in parameter ORCPT",
    );
    err(
        "RCPT TO:<a@b> ORCPT=rfc822;",
        "501 5.5.4 Syntax error in parameter ORCPT",
    );
    err(
        "RCPT TO:<a@b> ORCPT=rfc822;a+0Ab",
        "501 5.5.4 Syntax error in parameter ORCPT",
    );
    err("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax");
    err(
        "RCPT TO:bob@example.org",
        "501 5.1.3 Bad recipient address syntax",
    );
    err("RCPT FROM:<a@b>", "501 5.5.4 Syntax: RCPT TO:<address>");
    let long_domain = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(64)
    );
    err(
        &format!("RCPT TO:<x@{long_domain}>"),
        "501 5.1.3 Path too long",
    ); // §4.5.3.1.2
}

#[test]
fn smtputf8() {
    // RFC 6531 §3.3: UTF-8 only with SMTPUTF8, otherwise 553 5.6.7.
    err(
        "MAIL FROM:<用户@例子.广告> SMTPUTF8",
        "553 5.6.7 Non-ASCII addresses not permitted for that sender",
    );
    err_with(
        "MAIL FROM:<用户@例子.广告>",
        "553 5.6.7 Non-ASCII addresses not permitted for that sender",
        true,
    );
    ok_with(
        "MAIL FROM:<用户@例子.广告> SMTPUTF8",
        "MAIL FROM:<用户@例子.广告> SMTPUTF8",
        true,
    );
    ok_with(
        "MAIL FROM:<\"用 户\"@例子.广告> SMTPUTF8",
        "MAIL FROM:<\"用 户\"@例子.广告> SMTPUTF8",
        true,
    );
    err(
        "RCPT TO:<josé@example.org>",
        "553 5.6.7 Non-ASCII addresses not permitted for that recipient",
    );
    ok_with(
        "RCPT TO:<josé@example.org>",
        "RCPT TO:<josé@example.org>",
        true,
    );
    err_with(
        "RCPT TO:<jos\u{0}é@example.org>",
        "500 5.5.2 Error: NUL in command",
        true,
    );
    err("EHLO bücher.example", "501 5.5.4 Syntax: EHLO hostname");
    // Broken UTF-8 is never accepted.
    assert!(Command::parse_with(b"RCPT TO:<\xff@x>\r\n", ParseOptions { utf8: true }).is_err());
}

#[test]
fn simple_commands() {
    // RFC 5321 §4.1.1.4 - §4.1.1.10.
    assert_eq!(ok("DATA", "DATA"), Command::Data);
    assert_eq!(ok("data", "DATA"), Command::Data);
    assert_eq!(ok("RSET", "RSET"), Command::Rset);
    assert_eq!(ok("QUIT", "QUIT"), Command::Quit);
    assert_eq!(ok("QUIT  ", "QUIT"), Command::Quit);
    assert_eq!(ok("NOOP", "NOOP"), Command::Noop(None));
    ok("NOOP hello there", "NOOP hello there");
    ok("HELP", "HELP");
    ok("HELP MAIL", "HELP MAIL");
    ok("VRFY Smith", "VRFY Smith"); // §3.5.3 example
    ok("VRFY <smith@example.org>", "VRFY <smith@example.org>");
    ok("EXPN Example-People", "EXPN Example-People");
    ok("STARTTLS", "STARTTLS"); // RFC 3207 §4
    ok("ETRN @example.org", "ETRN @example.org"); // RFC 1985 §5
    ok("ETRN #queue", "ETRN #queue");
    err("DATA now", "501 5.5.4 Syntax: DATA");
    err("RSET x", "501 5.5.4 Syntax: RSET");
    err("QUIT now", "501 5.5.4 Syntax: QUIT");
    err("STARTTLS x", "501 5.5.4 Syntax: STARTTLS"); // RFC 3207 §4: no parameters
    err("VRFY", "501 5.5.4 Syntax: VRFY address");
    err("EXPN", "501 5.5.4 Syntax: EXPN address");
    err("ETRN", "501 5.5.4 Syntax: ETRN node");
    err("ETRN a b", "501 5.5.4 Syntax: ETRN node");
}

#[test]
fn bdat() {
    // RFC 3030 §2: "BDAT" SP chunk-size [ SP end-marker ]
    assert_eq!(
        ok("BDAT 1000", "BDAT 1000"),
        Command::Bdat {
            size: 1000,
            last: false
        }
    );
    assert_eq!(
        ok("BDAT 0 LAST", "BDAT 0 LAST"),
        Command::Bdat {
            size: 0,
            last: true
        }
    );
    assert_eq!(
        ok("bdat 12 last", "BDAT 12 LAST"),
        Command::Bdat {
            size: 12,
            last: true
        }
    );
    err("BDAT", "501 5.5.4 Syntax: BDAT size [LAST]");
    err("BDAT x", "501 5.5.4 Syntax: BDAT size [LAST]");
    err("BDAT 10 FIRST", "501 5.5.4 Syntax: BDAT size [LAST]");
    err("BDAT -1", "501 5.5.4 Syntax: BDAT size [LAST]");
    err(
        "BDAT 184467440737095516160",
        "501 5.5.4 Syntax: BDAT size [LAST]",
    );
}

#[test]
fn auth() {
    // RFC 4954 §4.
    let cmd = ok(
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
    );
    let Command::Auth {
        mechanism,
        initial_response,
    } = &cmd
    else {
        panic!()
    };
    assert_eq!(mechanism.as_str(), "PLAIN");
    assert_eq!(
        initial_response.as_ref().unwrap().expose(),
        b"\0alice\0secret"
    );
    // Credentials never show in Debug or Display.
    assert!(!format!("{cmd:?}").contains("secret") && !format!("{cmd:?}").contains("AGFsaWNl"));
    assert_eq!(cmd.to_string(), "AUTH PLAIN [redacted]");
    let cmd = ok("AUTH PLAIN =", "AUTH PLAIN =");
    let Command::Auth {
        initial_response, ..
    } = &cmd
    else {
        panic!()
    };
    assert!(initial_response.as_ref().unwrap().expose().is_empty());
    ok("AUTH LOGIN", "AUTH LOGIN");
    ok("auth cram-md5", "AUTH cram-md5");
    ok("AUTH SCRAM-SHA-256", "AUTH SCRAM-SHA-256");
    err(
        "AUTH",
        "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
    );
    err(
        "AUTH PL@IN",
        "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
    );
    err(
        "AUTH ABCDEFGHIJKLMNOPQRSTU",
        "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
    );
    err(
        "AUTH PLAIN !!!",
        "501 5.5.2 Cannot Base64-decode client response",
    );
    err(
        "AUTH PLAIN AGFsaWNlAA",
        "501 5.5.2 Cannot Base64-decode client response",
    ); // padding is required
}

#[test]
fn unknown_and_forbidden() {
    // RFC 5321 §4.2.4: unknown verbs are a value, answered 500 5.5.2 by the server.
    let cmd = ok("XYZZY foo", "XYZZY foo");
    assert!(matches!(&cmd, Command::Unknown(t) if t.as_str() == "XYZZY foo"));
    assert!(!cmd.is_forbidden());
    assert!(matches!(
        Command::parse(b"\r\n").unwrap(),
        Command::Unknown(_)
    ));
    assert!(matches!(
        Command::parse(b"MAILFROM:<a@b>\r\n").unwrap(),
        Command::Unknown(_)
    ));
    for http in [
        "GET / HTTP/1.1",
        "POST /x HTTP/1.0",
        "CONNECT a:443 HTTP/1.1",
        "Host: example.org",
        "User-Agent: curl",
    ] {
        assert!(
            Command::parse(format!("{http}\r\n").as_bytes())
                .unwrap()
                .is_forbidden(),
            "{http}"
        );
    }
    assert!(Command::unknown("NOOP").is_err());
    assert!(Command::unknown("X\r\nRSET").is_err());
    assert!(Command::unknown("XEXCH50 1 2").is_ok());
}

#[test]
fn bare_line_endings_and_nul() {
    assert_eq!(Command::parse(b"NOOP\nRSET\r\n"), Err(CommandError::BareLf));
    assert_eq!(Command::parse(b"NOOP\rRSET\r\n"), Err(CommandError::BareCr));
    assert_eq!(Command::parse(b"NOOP\0\r\n"), Err(CommandError::Nul));
    assert_eq!(
        CommandError::BareLf.reply().to_bytes(),
        b"500 5.5.2 Error: bare <LF> received\r\n"
    );
    assert_eq!(
        CommandError::LineTooLong.reply().to_bytes(),
        b"500 5.5.2 Error: line too long\r\n"
    );
}

#[test]
fn builders_refuse_injection() {
    // A mailbox built from text holding CRLF cannot exist, so no RCPT line can be injected.
    assert!(Mailbox::new("a@b>\r\nRCPT TO:<c", "d").is_err());
    assert!(Mailbox::parse("a@b>\r\nRCPT TO:<c@d").is_err());
    assert!(smtp_proto::Text::new("x\r\nRSET").is_err());
    assert!(smtp_proto::XText::new("x\nb").is_err());
    assert!(smtp_proto::Param::new("X", Some("a b")).is_err());
    assert!(smtp_proto::Param::new("X", Some("a\r\n")).is_err());
    assert!(smtp_proto::Reply::new(250, None, "ok\r\n250 fake").is_err());
}

/// Feeds a pipelined session three ways (h11 style): whole, byte by byte, with trailing
/// bytes, and checks the same commands come out.
#[test]
fn decoder_pipelined_three_ways() {
    let session = b"EHLO client.example\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n";
    let expected = ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"];
    for step in [session.len(), 1, 3] {
        let mut trailing = session.to_vec();
        trailing.extend_from_slice(b"QUI");
        for input in [&session[..], &trailing[..]] {
            let mut dec = CommandDecoder::default();
            let mut buf = Vec::new();
            let mut seen = Vec::new();
            for chunk in input.chunks(step) {
                buf.extend_from_slice(chunk);
                loop {
                    match dec.decode(&buf) {
                        Decoded::NeedMore { discarded } => {
                            buf.drain(..discarded);
                            break;
                        }
                        Decoded::Command { command, consumed } => {
                            seen.push(command.verb().unwrap().as_str());
                            buf.drain(..consumed);
                        }
                        Decoded::Error { error, .. } => panic!("{error}"),
                    }
                }
            }
            assert_eq!(seen, expected);
            assert_eq!(buf.len(), input.len() - session.len());
        }
    }
}

#[test]
fn decoder_limits() {
    let mut dec = CommandDecoder::default();
    let mut line = b"NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 600));
    line.extend_from_slice(b"\r\nRSET\r\n");
    let Decoded::Error { error, consumed } = dec.decode(&line) else {
        panic!()
    };
    assert_eq!((error, consumed), (CommandError::LineTooLong, 511));
    let Decoded::Command { command, .. } = dec.decode(&line[511..]) else {
        panic!()
    };
    assert_eq!(command, Command::Rset);
    // AUTH continuation lines may be longer (RFC 4954 §4: 12288).
    let mut dec = CommandDecoder::new(smtp_proto::line::MAX_AUTH_LINE);
    let mut long = b"AUTH PLAIN ".to_vec();
    long.extend(std::iter::repeat_n(b'A', 4000));
    long.extend_from_slice(b"\r\n");
    assert!(matches!(dec.decode(&long), Decoded::Command { .. }));
}

/// RFC 5198 §2: C1 controls and U+2028/U+2029 are refused in every way an address or a
/// HELO name is built or read, while other non-ASCII text is fine.
#[test]
fn unsafe_unicode_never_makes_an_address_or_a_name() {
    use smtp_proto::{AddressError, Host};
    let utf8 = || ParseOptions { utf8: true };
    for bad in ["\u{85}", "\u{9b}", "\u{2028}", "\u{2029}"] {
        let local = format!("a{bad}b");
        let domain = format!("x{bad}y.example");
        assert_eq!(
            Mailbox::new(&local, "example.org"),
            Err(AddressError::ControlCharacter)
        );
        assert_eq!(
            Mailbox::new("a", &domain),
            Err(AddressError::ControlCharacter)
        );
        assert_eq!(
            Mailbox::parse(&format!("{local}@example.org")),
            Err(AddressError::ControlCharacter)
        );
        assert_eq!(
            Host::parse(&domain, true),
            Err(AddressError::ControlCharacter)
        );
        let line = format!("EHLO {domain}\r\n");
        assert!(
            Command::parse_with(line.as_bytes(), utf8()).is_err(),
            "{line:?}"
        );
        let line = format!("RCPT TO:<{local}@example.org>\r\n");
        let err = Command::parse_with(line.as_bytes(), utf8()).unwrap_err();
        assert_eq!(err.reply().code().get(), 553, "{line:?}");
    }
    assert!(Mailbox::new("jörg", "bücher.example").is_ok());
    assert!(Host::parse("bücher.example", true).is_ok());
}

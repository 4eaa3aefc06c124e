//! Properties: for arbitrary valid commands, serialize then parse is the identity; for
//! arbitrary bytes, parsing and decoding never panic and never over-consume.

use proptest::prelude::*;
use smtp_proto::{
    BodyType, ByMode, Command, CommandDecoder, Decoded, DeliverBy, ForwardPath, MailAuth,
    MailParams, Mailbox, Notify, Orcpt, Param, ParseOptions, RcptParams, Ret, ReversePath, Secret,
    Text, XText,
};

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?"
}

fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..4).prop_map(|l| l.join("."))
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => domain(),
        1 => any::<[u8; 4]>().prop_map(|a| format!("[{}.{}.{}.{}]", a[0], a[1], a[2], a[3])),
        1 => any::<[u16; 8]>().prop_map(|a| format!("[IPv6:{}]", std::net::Ipv6Addr::from(a))),
        1 => ("[a-z][a-z0-9-]{0,5}[a-z0-9]", "[!-Z^-~]{1,12}").prop_map(|(t, c)| format!("[{t}:{c}]")),
    ]
}

fn local_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}){0,2}",
        "[ -~]{0,20}",
    ]
}

fn mailbox() -> impl Strategy<Value = Mailbox<'static>> {
    (local_part(), host()).prop_filter_map("within limits", |(l, h)| Mailbox::new(&l, &h).ok())
}

fn xtext() -> impl Strategy<Value = XText<'static>> {
    "[^\r\n\u{0}]{1,30}".prop_map(|s| XText::new(s).unwrap())
}

fn unknown_params() -> impl Strategy<Value = Vec<Param<'static>>> {
    const KNOWN: [&str; 11] = [
        "SIZE",
        "BODY",
        "SMTPUTF8",
        "RET",
        "ENVID",
        "AUTH",
        "REQUIRETLS",
        "MT-PRIORITY",
        "BY",
        "NOTIFY",
        "ORCPT",
    ];
    prop::collection::vec(
        ("X[A-Z0-9-]{0,6}", prop::option::of("[!-<>-~]{1,10}")),
        0..3,
    )
    .prop_map(|ps| {
        let mut seen: Vec<String> = Vec::new();
        ps.into_iter()
            .filter(|(k, _)| {
                let up = k.to_ascii_uppercase();
                let fresh = !seen.contains(&up) && !KNOWN.contains(&up.as_str());
                seen.push(up);
                fresh
            })
            .map(|(k, v)| Param::new(&k, v.as_deref()).unwrap())
            .collect()
    })
}

fn mail_params() -> impl Strategy<Value = MailParams<'static>> {
    (
        prop::option::of(any::<u64>()),
        prop::option::of(prop_oneof![
            Just(BodyType::SevenBit),
            Just(BodyType::EightBitMime),
            Just(BodyType::BinaryMime)
        ]),
        any::<bool>(),
        prop::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Hdrs)]),
        prop::option::of("[^\r\n\u{0}]{1,25}".prop_map(|s| XText::new(s).unwrap())),
        prop::option::of(prop_oneof![
            Just(MailAuth::Unknown),
            xtext().prop_map(MailAuth::Identity)
        ]),
        any::<bool>(),
        prop::option::of(-9i8..=9),
        prop::option::of((1i32..=999_999_999, any::<bool>(), any::<bool>())),
        unknown_params(),
    )
        .prop_map(
            |(size, body, smtputf8, ret, envid, auth, requiretls, mt_priority, by, other)| {
                MailParams {
                    size,
                    body,
                    smtputf8,
                    ret,
                    envid,
                    auth,
                    requiretls,
                    mt_priority,
                    by: by.map(|(time, r, trace)| DeliverBy {
                        time: if r { time } else { -time },
                        mode: if r { ByMode::Return } else { ByMode::Notify },
                        trace,
                    }),
                    other,
                }
            },
        )
}

fn rcpt_params() -> impl Strategy<Value = RcptParams<'static>> {
    (
        prop::option::of((any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(success, failure, delay)| Notify {
                success,
                failure,
                delay,
            },
        )),
        prop::option::of(
            ("rfc822|utf-8|x-[a-z]{1,4}", "[^\r\n\u{0}]{1,30}")
                .prop_map(|(t, a)| Orcpt::new(&t, &a).unwrap()),
        ),
        unknown_params(),
    )
        .prop_map(|(notify, orcpt, other)| RcptParams {
            notify,
            orcpt,
            other,
        })
}

fn text() -> impl Strategy<Value = Text<'static>> {
    "[!-~][ -~]{0,30}".prop_map(|s| Text::new(s.trim_end().to_owned()).unwrap())
}

fn command() -> impl Strategy<Value = Command<'static>> {
    let host = || host().prop_map(|h| smtp_proto::Host::parse(&h, false).unwrap().into_owned());
    prop_oneof![
        host().prop_map(Command::Helo),
        host().prop_map(Command::Ehlo),
        host().prop_map(Command::Lhlo),
        (prop::option::of(mailbox()), mail_params()).prop_map(|(m, params)| Command::Mail {
            from: m.map_or(ReversePath::Null, ReversePath::Mailbox),
            params,
        }),
        (prop::option::of(mailbox()), rcpt_params()).prop_map(|(m, params)| Command::Rcpt {
            to: m.map_or(ForwardPath::Postmaster, ForwardPath::Mailbox),
            params,
        }),
        Just(Command::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
        Just(Command::Rset),
        text().prop_map(Command::Vrfy),
        text().prop_map(Command::Expn),
        prop::option::of(text()).prop_map(Command::Help),
        prop::option::of(text()).prop_map(Command::Noop),
        Just(Command::Quit),
        Just(Command::StartTls),
        (
            "[A-Z0-9_-]{1,20}",
            prop::option::of(prop::collection::vec(any::<u8>(), 0..64))
        )
            .prop_map(|(m, r)| {
                Command::Auth {
                    mechanism: Text::new(m).unwrap(),
                    initial_response: r.map(Secret::new),
                }
            }),
        "[!-~]{1,20}"
            .prop_filter("one word", |s| !s.contains(' '))
            .prop_map(|s| Command::Etrn(Text::new(s).unwrap())),
        "X[A-Z]{3,8}( [!-~]{1,10})?".prop_map(|s| Command::unknown(&s).unwrap()),
    ]
}

/// UTF-8 mailboxes for SMTPUTF8 sessions (RFC 6531).
fn utf8_mailbox() -> impl Strategy<Value = Mailbox<'static>> {
    ("[a-zé用户ü]{1,8}", "[a-z例子ü]{1,6}\\.[a-z广告]{2,4}")
        .prop_filter_map("valid", |(l, d)| Mailbox::new(&l, &d).ok())
}

fn rcpt_is_utf8(cmd: &Command<'_>) -> bool {
    matches!(cmd, Command::Rcpt { to, .. } if to.is_utf8())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn roundtrip(cmd in command()) {
        let bytes = cmd.to_bytes();
        prop_assert!(bytes.ends_with(b"\r\n"));
        // Exactly one CRLF, at the end: no value can inject a second line.
        prop_assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        let parsed = Command::parse(&bytes).map_err(|e| TestCaseError::fail(format!("{e} for {:?}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(parsed, cmd);
    }

    #[test]
    fn roundtrip_utf8(from in utf8_mailbox(), to in utf8_mailbox()) {
        let opts = ParseOptions { utf8: true };
        let mail = Command::Mail { from: ReversePath::Mailbox(from), params: MailParams { smtputf8: true, ..Default::default() } };
        let bytes = mail.to_bytes();
        prop_assert_eq!(Command::parse_with(&bytes, opts).unwrap(), mail.clone());
        let rcpt = Command::Rcpt { to: ForwardPath::Mailbox(to), params: RcptParams::default() };
        let bytes = rcpt.to_bytes();
        prop_assert_eq!(Command::parse_with(&bytes, opts).unwrap(), rcpt.clone());
        // Without SMTPUTF8 the same lines are refused.
        if rcpt_is_utf8(&rcpt) {
            prop_assert!(Command::parse(&bytes).is_err());
        }
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), utf8 in any::<bool>()) {
        let _ = Command::parse_with(&bytes, ParseOptions { utf8 });
    }

    #[test]
    fn parse_never_panics_near_grammar(
        verb in "(MAIL FROM:|RCPT TO:|EHLO |AUTH |BDAT |VRFY )",
        rest in "[<>@\\[\\]:.,\"\\\\ =+a-zA-Z0-9\u{80}-\u{10ffff}-]{0,80}",
        utf8 in any::<bool>(),
    ) {
        let line = format!("{verb}{rest}\r\n");
        if let Ok(cmd) = Command::parse_with(line.as_bytes(), ParseOptions { utf8 }) {
            // Whatever parses serializes to something that parses to the same value.
            let bytes = cmd.to_bytes();
            let again = Command::parse_with(&bytes, ParseOptions { utf8 }).unwrap();
            prop_assert_eq!(again, cmd);
        }
    }

    #[test]
    fn decoder_never_panics_or_overconsumes(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        step in 1usize..64,
    ) {
        let mut dec = CommandDecoder::default();
        let mut buf: Vec<u8> = Vec::new();
        for chunk in bytes.chunks(step) {
            buf.extend_from_slice(chunk);
            loop {
                let (n, more) = match dec.decode(&buf) {
                    Decoded::NeedMore { discarded } => (discarded, false),
                    Decoded::Command { consumed, .. } | Decoded::Error { consumed, .. } => (consumed, true),
                };
                prop_assert!(n <= buf.len());
                buf.drain(..n);
                if !more { break; }
            }
            // Never more than one line's worth is held back.
            prop_assert!(buf.len() < 512);
        }
    }
}

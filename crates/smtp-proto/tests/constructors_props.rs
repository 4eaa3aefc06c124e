//! No public constructor panics on what a host may hand it: every one that takes
//! values from outside returns an error instead (`Reply::constant`, `Reply::fixed` and
//! `EnhancedCode::of` are for literals in a `const`, where a bad one does not compile).

use proptest::prelude::*;
use smtp_proto::server::{Acceptance, Decision, Refusal, ServerConfig};
use smtp_proto::{
    Capabilities, Domain, EnhancedCode, ForwardPath, Host, Mailbox, Param, Reply, ReplyCode,
    ReversePath, Text, XText,
};

/// Strings with the characters that matter: brackets, `@`, quotes, controls, UTF-8.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,80}",
        "[<>@\"\\\\:,.\\[\\] a-zA-Z0-9\r\n\u{0}\u{85}\u{2028}é-]{0,40}",
        "<[a-z@.]{0,20}>",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reply_constructors_never_panic(
        code in any::<u16>(),
        class in any::<u8>(),
        subject in any::<u16>(),
        detail in any::<u16>(),
        line in text(),
        lines in proptest::collection::vec(text(), 0..4),
        width in any::<usize>(),
    ) {
        let _ = ReplyCode::new(code);
        let enhanced = EnhancedCode::new(class, subject, detail);
        let enhanced = enhanced.ok();
        let _ = Reply::with_lines(code, enhanced, lines);
        let _ = Reply::wrap(code, enhanced, &line, width);
        if let Ok(mut reply) = Reply::new(code, enhanced, line.clone()) {
            let _ = reply.push_line(line.clone());
            let refusal = Refusal::new(reply.clone());
            let acceptance = Acceptance::new(reply.clone());
            // Exactly one kind fits a 4xx or 5xx, the other a 2xx.
            prop_assert_eq!(refusal.is_ok(), matches!(code / 100, 4 | 5));
            prop_assert_eq!(acceptance.is_ok(), code / 100 == 2);
            let _ = Decision::reject_with(reply.clone());
            let _ = Decision::accept_with(reply);
        }
        let _ = Reply::parse(line.as_bytes());
    }

    #[test]
    fn decision_reject_never_panics_and_checks_every_part(
        code in any::<u16>(),
        class in any::<u8>(),
        subject in any::<u16>(),
        detail in any::<u16>(),
        line in text(),
    ) {
        let decision = Decision::reject(code, (class, subject, detail), line.clone());
        let valid = matches!(code, 400..=599)
            && u16::from(class) == code / 100
            && subject <= 999
            && detail <= 999
            && !line.contains(['\r', '\n', '\0']);
        prop_assert_eq!(decision.is_ok(), valid, "{:?}", decision);
    }

    #[test]
    fn address_constructors_never_panic(s in text(), t in text(), utf8 in any::<bool>()) {
        let _ = Mailbox::parse(&s);
        let _ = Mailbox::new(&s, &t);
        let _ = s.parse::<Mailbox>();
        let _ = Domain::parse(&s, utf8);
        let _ = Host::parse(&s, utf8);
        if let Ok(path) = ForwardPath::parse(&s) {
            // What parses shows as a path that parses back to itself.
            let shown = path.to_string();
            prop_assert_eq!(ForwardPath::parse(&shown), Ok(path.clone()));
        }
        if let Ok(path) = ReversePath::parse(&s) {
            let shown = path.to_string();
            prop_assert_eq!(ReversePath::parse(&shown), Ok(path.clone()));
        }
        let _ = s.parse::<ForwardPath>();
        let _ = s.parse::<ReversePath>();
    }

    #[test]
    fn other_builders_never_panic(s in text(), t in text(), n in any::<usize>()) {
        let _ = Text::new(s.clone());
        let _ = XText::new(s.clone());
        let _ = Param::new(&s, Some(&t));
        let _ = Param::new(&s, None);
        let _ = Capabilities::new(s.clone());
        let _ = ServerConfig::new(&s);
        let _ = smtp_proto::server::Anvil::new(&s, Default::default());
        let _ = smtp_proto::LineFramer::new(n % 100_000);
        let _ = smtp_proto::CommandDecoder::new(n % 100_000);
    }
}

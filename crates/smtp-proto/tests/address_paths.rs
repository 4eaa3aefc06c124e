//! Paths and mailboxes from strings, against RFC 5321 §4.1.2:
//!
//! ```text
//! Reverse-path   = Path / "<>"
//! Forward-path   = Path
//! Path           = "<" [ A-d-l ":" ] Mailbox ">"
//! A-d-l          = At-domain *( "," At-domain )
//! At-domain      = "@" Domain
//! Mailbox        = Local-part "@" ( Domain / address-literal )
//! Local-part     = Dot-string / Quoted-string
//! ```
//!
//! plus `<Postmaster>` (§4.1.1.3), the limits of §4.5.3.1 and UTF-8 (RFC 6531).

use smtp_proto::{AddressError, ForwardPath, Mailbox, ReversePath};

/// `Ok(display)` or the error, one line per case.
type Expect = Result<&'static str, AddressError>;

const FORWARD: &[(&str, Expect)] = &[
    ("<bob@example.org>", Ok("<bob@example.org>")),
    ("bob@example.org", Ok("<bob@example.org>")),
    ("<Postmaster>", Ok("<Postmaster>")),
    ("<postmaster>", Ok("<Postmaster>")),
    ("POSTMASTER", Ok("<Postmaster>")),
    ("<postmaster@example.org>", Ok("<postmaster@example.org>")),
    ("<@relay.example:bob@example.org>", Ok("<bob@example.org>")),
    (
        "<@a.example,@b.example:bob@example.org>",
        Ok("<bob@example.org>"),
    ),
    (
        "<\"john smith\"@example.org>",
        Ok("<\"john smith\"@example.org>"),
    ),
    ("<\"a>b\"@example.org>", Ok("<\"a>b\"@example.org>")),
    ("<bob@[192.0.2.1]>", Ok("<bob@[192.0.2.1]>")),
    ("<bob@[IPv6:2001:db8::1]>", Ok("<bob@[IPv6:2001:db8::1]>")),
    (
        "<δοκιμή@παράδειγμα.δοκιμή>",
        Ok("<δοκιμή@παράδειγμα.δοκιμή>"),
    ),
    ("<>", Err(AddressError::NullPath)),
    ("", Err(AddressError::Empty)),
    ("<bob>", Err(AddressError::Syntax)),
    ("bob", Err(AddressError::MissingAt)),
    ("<bob@example.org", Err(AddressError::Syntax)),
    ("<bob@example.org> SIZE=1", Err(AddressError::TrailingInput)),
    ("<bob@example.org>>", Err(AddressError::TrailingInput)),
    (" <bob@example.org>", Err(AddressError::Syntax)),
    ("<bob@-example.org>", Err(AddressError::Syntax)),
    ("<bob..x@example.org>", Err(AddressError::Syntax)),
    (
        "<bob@example.org>\r\nRCPT TO:<x@y>",
        Err(AddressError::ControlCharacter),
    ),
    ("bob@example.org\r\n", Err(AddressError::ControlCharacter)),
];

const REVERSE: &[(&str, Expect)] = &[
    ("<alice@example.org>", Ok("<alice@example.org>")),
    ("alice@example.org", Ok("<alice@example.org>")),
    ("<>", Ok("<>")),
    (
        "<@relay.example:alice@example.org>",
        Ok("<alice@example.org>"),
    ),
    ("", Err(AddressError::Empty)),
    ("<Postmaster>", Err(AddressError::Syntax)),
    ("<> ", Err(AddressError::TrailingInput)),
    ("alice", Err(AddressError::MissingAt)),
];

const MAILBOX: &[(&str, Expect)] = &[
    ("bob@example.org", Ok("bob@example.org")),
    (
        "\"john smith\"@example.org",
        Ok("\"john smith\"@example.org"),
    ),
    ("<bob@example.org>", Err(AddressError::AngleBrackets)),
    ("<>", Err(AddressError::NullPath)),
    ("", Err(AddressError::Empty)),
    ("bob", Err(AddressError::MissingAt)),
    ("bob@", Err(AddressError::Syntax)),
    ("@example.org", Err(AddressError::Syntax)),
];

fn check(
    what: &str,
    cases: &[(&str, Expect)],
    parse: impl Fn(&str) -> Result<String, AddressError>,
) {
    for (input, expected) in cases {
        let got = parse(input);
        assert_eq!(
            got.as_deref(),
            expected.as_ref().map(|s| *s),
            "{what} {input:?}"
        );
    }
}

fn show<T: std::fmt::Display>(parsed: Result<T, AddressError>) -> Result<String, AddressError> {
    parsed.map(|p| p.to_string())
}

#[test]
fn forward_paths_rfc5321_4_1_2() {
    check("ForwardPath::parse", FORWARD, |s| {
        show(ForwardPath::parse(s))
    });
    check("str::parse", FORWARD, |s| show(s.parse::<ForwardPath>()));
    check("TryFrom", FORWARD, |s| show(ForwardPath::try_from(s)));
}

#[test]
fn reverse_paths_rfc5321_4_1_2() {
    check("ReversePath::parse", REVERSE, |s| {
        show(ReversePath::parse(s))
    });
    check("str::parse", REVERSE, |s| show(s.parse::<ReversePath>()));
    check("TryFrom", REVERSE, |s| show(ReversePath::try_from(s)));
}

#[test]
fn mailboxes_rfc5321_4_1_2() {
    check("Mailbox::parse", MAILBOX, |s| show(Mailbox::parse(s)));
    check("str::parse", MAILBOX, |s| show(s.parse::<Mailbox>()));
    check("TryFrom", MAILBOX, |s| show(Mailbox::try_from(s)));
}

#[test]
fn limits_rfc5321_4_5_3_1() {
    let local = "a".repeat(65);
    let to = format!("<{local}@example.org>");
    assert_eq!(ForwardPath::parse(&to), Err(AddressError::LocalPartTooLong));
    let label = "a".repeat(63);
    let domain = [label.as_str(); 4].join(".");
    let to = format!("<bob@{domain}>");
    assert_eq!(ForwardPath::parse(&to), Err(AddressError::PathTooLong));
}

#[test]
fn the_error_says_why() {
    let error = Mailbox::parse("<bob@example.org>").unwrap_err();
    assert_eq!(
        error.to_string(),
        "angle brackets: this is a path, use ForwardPath or ReversePath, not Mailbox"
    );
    let _: &dyn std::error::Error = &error;
}

#[test]
fn domain_without_a_nested_match() {
    let to: ForwardPath = "<bob@Example.ORG>".parse().unwrap();
    assert!(to.domain().unwrap().eq_ignore_case("example.org"));
    assert_eq!(to.mailbox().unwrap().local_part(), "bob");
    assert_eq!(ForwardPath::Postmaster.domain(), None);
    assert_eq!(
        ForwardPath::parse("<bob@[192.0.2.1]>").unwrap().domain(),
        None
    );
    assert_eq!(ReversePath::Null.domain(), None);
    let from = ReversePath::parse("<alice@example.org>").unwrap();
    assert_eq!(from.domain().map(|d| d.as_str()), Some("example.org"));
}

#[test]
fn a_parsed_path_round_trips_through_its_display() {
    for shown in FORWARD.iter().filter_map(|(_, e)| e.ok()) {
        assert_eq!(ForwardPath::parse(shown).unwrap().to_string(), shown);
    }
    for shown in REVERSE.iter().filter_map(|(_, e)| e.ok()) {
        assert_eq!(ReversePath::parse(shown).unwrap().to_string(), shown);
    }
}

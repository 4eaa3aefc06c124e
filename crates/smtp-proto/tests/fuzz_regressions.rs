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

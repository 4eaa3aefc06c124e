//! SASL for AUTH (RFC 4954) through the public API of `smtp_proto::sasl`: every mechanism
//! against its RFC's examples and malformed input, both exchanges alone and against each
//! other, secrets kept out of `Debug`, and property tests that neither side panics.

use proptest::prelude::*;
use smtp_proto::Secret;
use smtp_proto::sasl::*;

/// A [`SaslError::Malformed`], as the parsers build it.
fn malformed(mechanism: &'static str, reason: &'static str) -> SaslError {
    SaslError::Malformed { mechanism, reason }
}

const RFC2195_CHALLENGE: &str = "<1896.697170952@postoffice.reston.mci.net>";

fn start(mech: Mechanism, ir: Option<&[u8]>) -> (ServerExchange, Step) {
    ServerExchange::start(mech, ir, || RFC2195_CHALLENGE.to_owned())
}

fn done(step: Step) -> Credentials {
    match step {
        Step::Done(c) => c,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn failed(step: Step) -> SaslError {
    match step {
        Step::Failed(e) => e,
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn plain_creds(authzid: &str, authcid: &str, password: &str) -> Credentials {
    Credentials::Plain {
        authzid: authzid.into(),
        authcid: authcid.into(),
        password: Secret::new(password.into()),
    }
}

/// Runs a client and a server against each other in memory, through base64 lines as on
/// the wire, and returns the server's last step.
fn pair(mech: Mechanism, creds: &ClientCredentials) -> (ClientExchange, ServerExchange, Step) {
    let mut client = ClientExchange::new(mech.clone(), creds).unwrap();
    let ir = client.initial_response();
    let ir = ir.map(|arg| decode_initial_response(arg.expose().as_bytes()).unwrap());
    let (mut server, mut step) =
        ServerExchange::start(mech, ir.as_ref().map(|s| s.expose().as_slice()), || {
            cram_md5_challenge(1896, 697170952, "postoffice.reston.mci.net").unwrap()
        });
    for _ in 0..5 {
        let Step::Challenge(challenge) = &step else {
            break;
        };
        let line = client
            .challenge_base64(encode_base64(challenge).as_bytes())
            .unwrap();
        step = server.handle_line(line.expose().as_bytes());
    }
    (client, server, step)
}

// --- Mechanism ------------------------------------------------------------------

#[test]
fn mechanism_names() {
    let cases: &[(&str, Result<Mechanism, SaslError>)] = &[
        ("PLAIN", Ok(Mechanism::Plain)),
        ("plain", Ok(Mechanism::Plain)),
        ("Login", Ok(Mechanism::Login)),
        ("cram-md5", Ok(Mechanism::CramMd5)),
        ("xoauth2", Ok(Mechanism::XOAuth2)),
        ("OAuthBearer", Ok(Mechanism::OAuthBearer)),
        (
            "scram-sha-256",
            Ok(Mechanism::Other("SCRAM-SHA-256".into())),
        ),
        ("GS2_KRB5", Ok(Mechanism::Other("GS2_KRB5".into()))),
        (
            "ABCDEFGHIJKLMNOPQRST",
            Ok(Mechanism::Other("ABCDEFGHIJKLMNOPQRST".into())),
        ),
        (
            "ABCDEFGHIJKLMNOPQRSTU",
            Err(SaslError::InvalidMechanismName),
        ),
        ("", Err(SaslError::InvalidMechanismName)),
        ("PLAIN ", Err(SaslError::InvalidMechanismName)),
        ("PL\rAIN", Err(SaslError::InvalidMechanismName)),
        ("X.Y", Err(SaslError::InvalidMechanismName)),
        ("PLAİN", Err(SaslError::InvalidMechanismName)),
    ];
    for (name, expected) in cases {
        assert_eq!(&Mechanism::parse(name), expected, "{name:?}");
        if let Ok(m) = expected {
            assert_eq!(m.as_str(), name.to_ascii_uppercase());
            assert_eq!(m.to_string().parse::<Mechanism>().as_ref(), Ok(m));
        }
    }
}

#[test]
fn mechanism_properties() {
    assert!(Mechanism::Plain.sends_password_in_clear());
    assert!(Mechanism::Login.sends_password_in_clear());
    assert!(!Mechanism::CramMd5.sends_password_in_clear());
    assert!(!Mechanism::XOAuth2.sends_password_in_clear());
    assert!(Mechanism::OAuthBearer.requires_tls());
    assert!(!Mechanism::CramMd5.requires_tls());
    assert!(Mechanism::Plain.is_client_first());
    assert!(!Mechanism::Login.is_client_first());
    assert!(!Mechanism::Other("GSSAPI".into()).is_supported());
}

#[test]
fn selection() {
    use Mechanism::*;
    let pw = ClientCredentials::password("u", "p");
    let tok = ClientCredentials::token("u", "t");
    let all = [Login, Plain, CramMd5, XOAuth2, OAuthBearer];
    assert_eq!(select_mechanism(&all, &pw, true), Some(Plain));
    assert_eq!(select_mechanism(&all, &pw, false), Some(CramMd5));
    assert_eq!(select_mechanism(&[Login, CramMd5], &pw, true), Some(Login));
    assert_eq!(select_mechanism(&[Login, Plain], &pw, false), None);
    assert_eq!(select_mechanism(&all, &tok, true), Some(OAuthBearer));
    assert_eq!(
        select_mechanism(&[XOAuth2, Plain], &tok, true),
        Some(XOAuth2)
    );
    assert_eq!(select_mechanism(&all, &tok, false), None);
    assert_eq!(select_mechanism(&[], &pw, true), None);
}

// --- Wire helpers ---------------------------------------------------------------

#[test]
fn responses() {
    let data = |d: &[u8]| Ok(Response::Data(Secret::new(d.to_vec())));
    let cases: &[(&[u8], Result<Response, SaslError>)] = &[
        (b"*", Ok(Response::Cancel)),
        (b"*\r\n", Ok(Response::Cancel)),
        (b"", data(b"")),
        (b"dGlt", data(b"tim")),
        (b"dGlt\r\n", data(b"tim")),
        (b"dGltIA==", data(b"tim ")),
        (b"dGltIA", Err(SaslError::Base64)), // padding is required
        (b"dGltIA=", Err(SaslError::Base64)),
        (b"dGlt IA==", Err(SaslError::Base64)), // no whitespace
        (b"dGlu", data(b"tin")),
        (b"dGm=", Err(SaslError::Base64)), // non-canonical trailing bits
        (b"=", Err(SaslError::Base64)),    // `=` is special only as initial response
        (b"**", Err(SaslError::Base64)),
        (b"d-lt", Err(SaslError::Base64)), // URL-safe alphabet
    ];
    for (line, expected) in cases {
        assert_eq!(
            &decode_response(line),
            expected,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn initial_responses() {
    assert_eq!(decode_initial_response(b"=").unwrap().expose(), b"");
    assert_eq!(decode_initial_response(b"dGlt").unwrap().expose(), b"tim");
    assert_eq!(decode_initial_response(b""), Err(SaslError::Base64));
    assert_eq!(decode_initial_response(b"*"), Err(SaslError::Base64));
    assert_eq!(decode_initial_response(b"dGlt="), Err(SaslError::Base64));
    assert_eq!(encode_initial_response(b""), "=");
    assert_eq!(encode_initial_response(b"tim"), "dGlt");
    assert_eq!(
        decode_base64(encode_base64(b"\x00\xff\x01").as_bytes()).unwrap(),
        b"\x00\xff\x01"
    );
}

#[test]
fn login_prompts_in_base64() {
    assert_eq!(encode_base64(LOGIN_USERNAME_PROMPT), "VXNlcm5hbWU6");
    assert_eq!(encode_base64(LOGIN_PASSWORD_PROMPT), "UGFzc3dvcmQ6");
}

#[test]
fn replies() {
    assert_eq!(
        AUTH_SUCCEEDED.to_string(),
        "235 2.7.0 Authentication successful"
    );
    assert_eq!(
        SaslError::Cancelled.reply().to_string(),
        "501 5.7.0 Authentication cancelled"
    );
    assert_eq!(
        SaslError::Base64.reply().to_string(),
        "501 5.5.2 Cannot Base64-decode client response"
    );
    assert_eq!(SaslError::Rejected.reply(), AUTH_INVALID_CREDENTIALS);
    assert_eq!(malformed("PLAIN", "x").reply(), AUTH_INVALID_CREDENTIALS);
    assert_eq!(
        SaslError::UnsupportedMechanism("X".into())
            .reply()
            .code()
            .get(),
        504
    );
    assert_eq!(SaslError::InvalidChallenge.reply().code().get(), 454);
    // What the server sends for a second AUTH (RFC 4954 §4), as Postfix words it.
    assert_eq!(
        AUTH_ALREADY_AUTHENTICATED.to_string(),
        "503 5.5.1 Error: already authenticated"
    );
    for reply in [
        AUTH_SUCCEEDED,
        AUTH_INVALID_CREDENTIALS,
        AUTH_CANCELLED,
        AUTH_INVALID_BASE64,
        AUTH_UNRECOGNIZED_MECHANISM,
        AUTH_ENCRYPTION_REQUIRED,
        AUTH_REQUIRED,
        AUTH_TEMPORARY_FAILURE,
        AUTH_MECHANISM_TOO_WEAK,
        AUTH_ALREADY_AUTHENTICATED,
        AUTH_LINE_TOO_LONG,
    ] {
        let enhanced = reply.enhanced().expect("an enhanced status code");
        assert_eq!(enhanced.class(), reply.code().class(), "{reply}");
        assert!(!reply.lines()[0].is_empty());
    }
}

#[test]
fn error_messages_are_lowercase() {
    for e in [
        SaslError::Base64,
        SaslError::Cancelled,
        malformed("PLAIN", "x"),
        SaslError::UnexpectedInitialResponse("CRAM-MD5"),
        SaslError::UnsupportedMechanism("X".into()),
        SaslError::InvalidMechanismName,
        SaslError::Rejected,
        SaslError::UnexpectedChallenge,
        SaslError::MalformedChallenge("x"),
        SaslError::InvalidCredentials("x"),
        SaslError::WrongCredentials("PLAIN"),
        SaslError::InvalidChallenge,
        SaslError::ExchangeFinished,
    ] {
        let text = e.to_string();
        assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
    }
}

// --- PLAIN (RFC 4616) ------------------------------------------------------------

#[test]
fn plain_rfc4616_examples() {
    // RFC 4616 §4: tim / tanstaaftanstaaf, no authzid.
    let ir = decode_initial_response(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
    assert_eq!(ir.expose(), b"\0tim\0tanstaaftanstaaf");
    let creds = done(start(Mechanism::Plain, Some(ir.expose())).1);
    assert_eq!(creds, plain_creds("", "tim", "tanstaaftanstaaf"));
    assert_eq!(creds.identity(), Some("tim"));
    assert_eq!(creds.authorization_identity(), None);
    assert!(creds.verify("tanstaaftanstaaf"));
    assert!(!creds.verify("tanstaaftanstaaF"));
    assert!(!creds.verify(""));

    // RFC 4616 §4: Kurt acting as Ursel.
    let msg = b"Ursel\0Kurt\0xipj3plmq";
    let creds = done(start(Mechanism::Plain, Some(msg)).1);
    assert_eq!(creds, plain_creds("Ursel", "Kurt", "xipj3plmq"));
    assert_eq!(creds.authorization_identity(), Some("Ursel"));

    // Without initial response: an empty challenge first.
    let (mut server, step) = start(Mechanism::Plain, None);
    assert_eq!(step, Step::Challenge(Vec::new()));
    let creds = done(server.handle_line(encode_base64(msg).as_bytes()));
    assert_eq!(creds.identity(), Some("Kurt"));
}

#[test]
fn plain_malformed() {
    let long = "a".repeat(256);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"tim\0tanstaaf".to_vec(), "one NUL"),
        (b"\0tim\0tans\0taaf".to_vec(), "three NULs"),
        (b"".to_vec(), "empty"),
        (b"\0\0secret".to_vec(), "empty authcid"),
        (b"\0tim\0".to_vec(), "empty password"),
        (b"\0ti\rm\0secret".to_vec(), "CR in authcid"),
        (b"\0tim\n\0secret".to_vec(), "LF in authcid"),
        (b"ad\nmin\0tim\0secret".to_vec(), "LF in authzid"),
        (b"\0\xfftim\0secret".to_vec(), "non-UTF-8 authcid"),
        (b"\0tim\0\xff".to_vec(), "non-UTF-8 password"),
        (format!("\0{long}\0pw").into_bytes(), "authcid too long"),
        (format!("{long}\0tim\0pw").into_bytes(), "authzid too long"),
        (format!("\0tim\0{long}").into_bytes(), "password too long"),
    ];
    for (msg, why) in cases {
        let e = failed(start(Mechanism::Plain, Some(&msg)).1);
        assert!(
            matches!(
                e,
                SaslError::Malformed {
                    mechanism: "PLAIN",
                    ..
                }
            ),
            "{why}: {e:?}"
        );
        assert_eq!(e.reply(), AUTH_INVALID_CREDENTIALS);
    }
    // 255 octets is the limit, not past it.
    let max = "a".repeat(255);
    let msg = format!("{max}\0{max}\0{max}");
    assert!(matches!(
        start(Mechanism::Plain, Some(msg.as_bytes())).1,
        Step::Done(_)
    ));
}

#[test]
fn plain_empty_initial_response_is_malformed() {
    // `AUTH PLAIN =` is an empty message, which PLAIN cannot be.
    let ir = decode_initial_response(b"=").unwrap();
    assert!(matches!(
        failed(start(Mechanism::Plain, Some(ir.expose())).1),
        SaslError::Malformed { .. }
    ));
}

// --- Cancel, base64, finished ---------------------------------------------------

#[test]
fn cancel_and_bad_base64_end_the_exchange() {
    for mech in [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::XOAuth2,
        Mechanism::OAuthBearer,
    ] {
        let (mut server, step) = start(mech.clone(), None);
        assert!(matches!(step, Step::Challenge(_)));
        let e = failed(server.handle_line(b"*"));
        assert_eq!(e, SaslError::Cancelled);
        assert_eq!(e.reply(), AUTH_CANCELLED);
        assert!(!server.wants_response());
        assert_eq!(
            failed(server.handle_line(b"dGlt")),
            SaslError::ExchangeFinished
        );

        let (mut server, _) = start(mech, None);
        let e = failed(server.handle_line(b"not base64!"));
        assert_eq!(e, SaslError::Base64);
        assert_eq!(e.reply(), AUTH_INVALID_BASE64);
        assert_eq!(failed(server.respond(b"x")), SaslError::ExchangeFinished);
    }
}

#[test]
fn unsupported_mechanism() {
    let (mut server, step) = start(Mechanism::parse("gssapi").unwrap(), None);
    let e = failed(step);
    assert_eq!(e, SaslError::UnsupportedMechanism("GSSAPI".into()));
    assert_eq!(e.reply(), AUTH_UNRECOGNIZED_MECHANISM);
    assert_eq!(failed(server.respond(b"")), SaslError::ExchangeFinished);
    let creds = ClientCredentials::password("u", "p");
    assert!(matches!(
        ClientExchange::new(Mechanism::Other("GSSAPI".into()), &creds),
        Err(SaslError::UnsupportedMechanism(_))
    ));
}

#[test]
fn done_then_more_input_is_refused() {
    let (mut server, step) = start(Mechanism::Plain, Some(b"\0tim\0pw"));
    let _ = done(step);
    assert_eq!(
        failed(server.respond(b"\0tim\0pw")),
        SaslError::ExchangeFinished
    );
}

#[test]
fn reject_password_mechanisms() {
    let (mut server, step) = start(Mechanism::Plain, Some(b"\0tim\0pw"));
    let _ = done(step);
    assert_eq!(failed(server.reject(None)), SaslError::Rejected);
    assert_eq!(failed(server.reject(None)), SaslError::ExchangeFinished);
}

// --- LOGIN ----------------------------------------------------------------------

#[test]
fn login_server() {
    let (mut server, step) = start(Mechanism::Login, None);
    assert_eq!(step, Step::Challenge(b"Username:".to_vec()));
    assert_eq!(
        server.handle_line(b"dGlt"),
        Step::Challenge(b"Password:".to_vec())
    );
    let creds = done(server.handle_line(encode_base64(b"tanstaaf").as_bytes()));
    assert_eq!(
        creds,
        Credentials::Login {
            username: "tim".into(),
            password: Secret::new("tanstaaf".into())
        }
    );
    assert!(creds.verify("tanstaaf"));

    // Initial response = user name.
    let (mut server, step) = start(Mechanism::Login, Some(b"tim"));
    assert_eq!(step, Step::Challenge(b"Password:".to_vec()));
    assert_eq!(done(server.respond(b"pw")).identity(), Some("tim"));

    // Bad parts.
    assert!(matches!(
        failed(start(Mechanism::Login, Some(b"")).1),
        SaslError::Malformed { .. }
    ));
    assert!(matches!(
        failed(start(Mechanism::Login, Some(b"ti\r\nm")).1),
        SaslError::Malformed { .. }
    ));
    let (mut server, _) = start(Mechanism::Login, Some(b"tim"));
    assert!(matches!(
        failed(server.respond(b"")),
        SaslError::Malformed { .. }
    ));
    let (mut server, _) = start(Mechanism::Login, Some(b"tim"));
    assert!(matches!(
        failed(server.respond(b"p\0w")),
        SaslError::Malformed { .. }
    ));
}

#[test]
fn login_client_by_prompt_and_step() {
    let creds = ClientCredentials::password("tim", "pw");
    let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
    assert!(c.initial_response().is_none());
    assert_eq!(
        c.challenge_base64(b"VXNlcm5hbWU6").unwrap().expose(),
        "dGlt"
    );
    assert_eq!(
        c.challenge_base64(b"UGFzc3dvcmQ6").unwrap().expose(),
        "cHc="
    );
    assert_eq!(
        c.challenge(b"Password:").unwrap_err(),
        SaslError::UnexpectedChallenge
    );

    // Unknown prompts: by step. Lower-case prompts are recognised.
    let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
    assert_eq!(c.challenge(b"").unwrap().expose(), b"tim");
    assert_eq!(c.challenge(b"password:").unwrap().expose(), b"pw");
    let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
    assert_eq!(c.challenge(b"User Name").unwrap().expose(), b"tim");
    assert_eq!(c.challenge(b"???").unwrap().expose(), b"pw");

    // A prompt that contradicts the step.
    let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
    assert_eq!(
        c.challenge(b"Password:").unwrap_err(),
        SaslError::UnexpectedChallenge
    );
    let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
    c.challenge(b"Username:").unwrap();
    assert_eq!(
        c.challenge(b"USERNAME:").unwrap_err(),
        SaslError::UnexpectedChallenge
    );
}

// --- CRAM-MD5 (RFC 2195) --------------------------------------------------------

#[test]
fn cram_md5_rfc2195_example() {
    assert_eq!(
        cram_md5_challenge(1896, 697170952, "postoffice.reston.mci.net").unwrap(),
        RFC2195_CHALLENGE
    );

    // Client.
    let creds = ClientCredentials::password("tim", "tanstaaftanstaaf");
    let mut client = ClientExchange::new(Mechanism::CramMd5, &creds).unwrap();
    assert!(client.initial_response().is_none());
    let response = client.challenge(RFC2195_CHALLENGE.as_bytes()).unwrap();
    assert_eq!(response.expose(), b"tim b913a602c7eda7a495b4e6e7334d3890");
    assert_eq!(
        client.challenge(b"again").unwrap_err(),
        SaslError::UnexpectedChallenge
    );

    // Server, with the RFC's base64 lines.
    let (mut server, step) = start(Mechanism::CramMd5, None);
    let Step::Challenge(ch) = step else { panic!() };
    assert_eq!(
        encode_base64(&ch),
        "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
    );
    let creds = done(server.handle_line(b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"));
    assert_eq!(creds.identity(), Some("tim"));
    assert!(creds.verify("tanstaaftanstaaf"));
    assert!(!creds.verify("tanstaaftanstaa"));
    assert!(!creds.verify(""));
}

#[test]
fn cram_md5_malformed() {
    let cases: &[&[u8]] = &[
        b"tim",
        b"tim ",
        b" b913a602c7eda7a495b4e6e7334d3890",
        b"tim B913A602C7EDA7A495B4E6E7334D3890",
        b"tim b913a602c7eda7a495b4e6e7334d389",
        b"tim b913a602c7eda7a495b4e6e7334d38900",
        b"tim b913a602c7eda7a495b4e6e7334d389g",
        b"t\nim b913a602c7eda7a495b4e6e7334d3890",
    ];
    for resp in cases {
        let (mut server, _) = start(Mechanism::CramMd5, None);
        assert!(
            matches!(failed(server.respond(resp)), SaslError::Malformed { .. }),
            "{resp:?}"
        );
    }
    // A user name with a space is fine: the digest follows the last one.
    let (mut server, _) = start(Mechanism::CramMd5, None);
    let creds = done(server.respond(b"tim smith b913a602c7eda7a495b4e6e7334d3890"));
    assert_eq!(creds.identity(), Some("tim smith"));
    // The digest does not cover the user name (RFC 2195 §2), so it still verifies.
    assert!(creds.verify("tanstaaftanstaaf"));
}

#[test]
fn cram_md5_refuses_initial_response_and_bad_challenges() {
    let e = failed(start(Mechanism::CramMd5, Some(b"tim")).1);
    assert_eq!(e, SaslError::UnexpectedInitialResponse("CRAM-MD5"));
    for bad in [
        "",
        "<>",
        "no-brackets@host",
        "<no-at>",
        "<a b@c>",
        "<a@b\r\n>",
    ] {
        let (_, step) = ServerExchange::start(Mechanism::CramMd5, None, || bad.to_owned());
        assert_eq!(failed(step), SaslError::InvalidChallenge, "{bad:?}");
    }
    for bad in ["", "a b", "a<b", "a@b", "a\r\nb"] {
        assert_eq!(
            cram_md5_challenge(1, 2, bad),
            Err(SaslError::InvalidChallenge),
            "{bad:?}"
        );
    }
    let creds = ClientCredentials::password("tim", "pw");
    let mut client = ClientExchange::new(Mechanism::CramMd5, &creds).unwrap();
    assert!(matches!(
        client.challenge(b""),
        Err(SaslError::MalformedChallenge(_))
    ));
}

#[test]
fn cram_md5_verify_rejects_bad_digest_text() {
    let creds = Credentials::CramMd5 {
        username: "tim".into(),
        challenge: RFC2195_CHALLENGE.into(),
        digest: Secret::new("B913A602C7EDA7A495B4E6E7334D3890".into()),
    };
    assert!(!creds.verify("tanstaaftanstaaf"));
}

#[test]
fn challenge_source_only_called_for_cram_md5() {
    for mech in [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::XOAuth2,
        Mechanism::OAuthBearer,
    ] {
        let _ = ServerExchange::start(mech, None, || panic!("not needed"));
    }
}

// --- XOAUTH2 --------------------------------------------------------------------

const GMAIL_XOAUTH2: &[u8] =
    b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01";

#[test]
fn xoauth2_gmail_example() {
    // Google's XOAUTH2 protocol page, the SMTP example's initial response.
    assert_eq!(
        encode_base64(GMAIL_XOAUTH2),
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    );
    let creds = ClientCredentials::token(
        "someuser@example.com",
        "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
    );
    let mut client = ClientExchange::new(Mechanism::XOAuth2, &creds).unwrap();
    let ir = client.initial_response().unwrap();
    assert_eq!(
        decode_initial_response(ir.expose().as_bytes())
            .unwrap()
            .expose(),
        GMAIL_XOAUTH2
    );

    let (mut server, step) = start(Mechanism::XOAuth2, Some(GMAIL_XOAUTH2));
    let got = done(step);
    assert_eq!(
        got,
        Credentials::XOAuth2 {
            user: "someuser@example.com".into(),
            token: Secret::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg".into()),
        }
    );
    assert!(!got.verify("anything"));

    // The token is refused: JSON error challenge, empty answer, then 535.
    let error = br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
    assert_eq!(server.reject(Some(error)), Step::Challenge(error.to_vec()));
    let answer = client
        .challenge_base64(encode_base64(error).as_bytes())
        .unwrap();
    assert_eq!(answer.expose(), "");
    assert_eq!(client.server_error(), Some(&error[..]));
    let e = failed(server.handle_line(answer.expose().as_bytes()));
    assert_eq!(e, SaslError::Rejected);
    assert_eq!(e.reply(), AUTH_INVALID_CREDENTIALS);
    assert_eq!(
        client.challenge(b"more").unwrap_err(),
        SaslError::UnexpectedChallenge
    );
}

#[test]
fn xoauth2_malformed() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x01\x01",
        b"user=a\x01auth=Bearer t\x01",
        b"user=a\x01auth=Bearer t",
        b"user=a\x01\x01",
        b"auth=Bearer t\x01\x01",
        b"user=a\x01auth=Basic dDp0\x01\x01",
        b"user=a\x01auth=Bearer\x01\x01",
        b"user=a\x01auth=Bearer t t\x01\x01",
        b"user=a\x01user=b\x01auth=Bearer t\x01\x01",
        b"user=\x01auth=Bearer t\x01\x01",
        b"user=a\r\nb\x01auth=Bearer t\x01\x01",
        b"user=a\x01\x01auth=Bearer t\x01\x01",
        b"usera\x01auth=Bearer t\x01\x01",
    ];
    for msg in cases {
        assert!(
            matches!(
                failed(start(Mechanism::XOAuth2, Some(msg)).1),
                SaslError::Malformed { .. }
            ),
            "{:?}",
            String::from_utf8_lossy(msg)
        );
    }
    // Scheme case and extra spaces are tolerated, unknown keys ignored.
    let ok = done(
        start(
            Mechanism::XOAuth2,
            Some(b"user=a\x01x=y\x01auth=bearer  t==\x01\x01"),
        )
        .1,
    );
    assert_eq!(
        ok,
        Credentials::XOAuth2 {
            user: "a".into(),
            token: Secret::new("t==".into())
        }
    );
}

// --- OAUTHBEARER (RFC 7628) -----------------------------------------------------

const RFC7628_EXAMPLE: &[u8] = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";

#[test]
fn oauthbearer_rfc7628_example() {
    // RFC 7628 §4.1, the initial response in base64 and in the clear.
    assert_eq!(
        decode_initial_response(b"bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB")
            .unwrap()
            .expose(),
        RFC7628_EXAMPLE
    );
    let expected = Credentials::OAuthBearer {
        authzid: Some("user@example.com".into()),
        host: Some("server.example.com".into()),
        port: Some(143),
        token: Secret::new("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into()),
    };
    let (mut server, step) = start(Mechanism::OAuthBearer, Some(RFC7628_EXAMPLE));
    assert_eq!(done(step), expected);

    // The client builds the same bytes.
    let creds = ClientCredentials::Token {
        username: "user@example.com".into(),
        token: Secret::new("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into()),
        host: Some("server.example.com".into()),
        port: Some(143),
    };
    let mut client = ClientExchange::new(Mechanism::OAuthBearer, &creds).unwrap();
    let ir = client.initial_response().unwrap();
    assert_eq!(
        decode_initial_response(ir.expose().as_bytes())
            .unwrap()
            .expose(),
        RFC7628_EXAMPLE
    );

    // RFC 7628 §4.3: the failure, with the RFC's error JSON, acknowledged by ^A.
    let error = oauth_error_challenge(
        "invalid_token",
        Some("example_scope"),
        Some("https://example.com/.well-known/openid-configuration"),
    );
    assert_eq!(
        encode_base64(&error),
        "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
    );
    assert_eq!(server.reject(Some(&error)), Step::Challenge(error.clone()));
    let answer = client.challenge(&error).unwrap();
    assert_eq!(answer.expose(), b"\x01");
    assert_eq!(encode_base64(answer.expose()), "AQ==");
    assert_eq!(failed(server.respond(answer.expose())), SaslError::Rejected);
    assert_eq!(client.server_error(), Some(&error[..]));
}

#[test]
fn oauthbearer_variants() {
    let ok = |msg: &[u8]| done(start(Mechanism::OAuthBearer, Some(msg)).1);
    // No authzid, no host or port; `y` flag; escaped authzid.
    assert_eq!(
        ok(b"n,,\x01auth=Bearer abc\x01\x01"),
        Credentials::OAuthBearer {
            authzid: None,
            host: None,
            port: None,
            token: Secret::new("abc".into())
        }
    );
    assert!(matches!(
        ok(b"y,,\x01auth=Bearer abc\x01\x01"),
        Credentials::OAuthBearer { .. }
    ));
    assert_eq!(
        ok(b"n,a=a=3Db=2Cc,\x01auth=Bearer abc\x01\x01").authorization_identity(),
        Some("a=b,c")
    );
    // Unknown keys ignored.
    assert!(matches!(
        ok(b"n,,\x01foo=bar baz\x01auth=Bearer abc\x01\x01"),
        Credentials::OAuthBearer { .. }
    ));
    // Default error challenge.
    let (mut server, step) = start(
        Mechanism::OAuthBearer,
        Some(b"n,,\x01auth=Bearer abc\x01\x01"),
    );
    let _ = done(step);
    assert_eq!(
        server.reject(None),
        Step::Challenge(br#"{"status":"invalid_token"}"#.to_vec())
    );
}

#[test]
fn oauthbearer_malformed() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x01",
        b"p=tls-unique,,\x01auth=Bearer abc\x01\x01",
        b"x,,\x01auth=Bearer abc\x01\x01",
        b"n,\x01auth=Bearer abc\x01\x01",
        b"n,b=x,\x01auth=Bearer abc\x01\x01",
        b"n,a=,\x01auth=Bearer abc\x01\x01",
        b"n,a=x=2y,\x01auth=Bearer abc\x01\x01",
        b"n,,auth=Bearer abc\x01\x01",
        b"n,,\x01auth=Bearer abc\x01",
        b"n,,\x01\x01",
        b"n,,\x01host=h\x01\x01",
        b"n,,\x01auth=Bearer abc\x01auth=Bearer abc\x01\x01",
        b"n,,\x01port=99999\x01auth=Bearer abc\x01\x01",
        b"n,,\x01port=+1\x01auth=Bearer abc\x01\x01",
        b"n,,\x01host=a\r\nb\x01auth=Bearer abc\x01\x01",
        b"n,,\x01x=\x7f\x01auth=Bearer abc\x01\x01",
        b"n,,\x01auth=Basic abc\x01\x01",
        b"n,,\x01auth=Bearer a%c\x01\x01",
        b"n,,\x01=v\x01auth=Bearer abc\x01\x01",
        b"n,,\x01k1=v\x01auth=Bearer abc\x01\x01",
    ];
    for msg in cases {
        assert!(
            matches!(
                failed(start(Mechanism::OAuthBearer, Some(msg)).1),
                SaslError::Malformed { .. }
            ),
            "{:?}",
            String::from_utf8_lossy(msg)
        );
    }
}

#[test]
fn oauth_error_json_is_escaped() {
    assert_eq!(
        oauth_error_challenge("a\"b\\c\n", None, None),
        br#"{"status":"a\"b\\c\u000a"}"#.to_vec()
    );
}

// --- Client validation ----------------------------------------------------------

#[test]
fn client_refuses_bad_credentials() {
    let pw = |u: &str, p: &str| ClientCredentials::password(u, p);
    let cases = [
        (Mechanism::Plain, pw("", "p")),
        (Mechanism::Plain, pw("ti\rm", "p")),
        (Mechanism::Login, pw("ti\nm", "p")),
        (Mechanism::CramMd5, pw("ti\0m", "p")),
        (Mechanism::Plain, pw("tim", "")),
        (Mechanism::Plain, pw("tim", "p\0w")),
        (Mechanism::Plain, pw(&"a".repeat(256), "p")),
        (Mechanism::Plain, pw("tim", &"a".repeat(256))),
        (
            Mechanism::Plain,
            ClientCredentials::Password {
                authzid: Some("ad\nmin".into()),
                username: "tim".into(),
                password: Secret::new("p".into()),
            },
        ),
        (
            Mechanism::Login,
            ClientCredentials::Password {
                authzid: Some("admin".into()),
                username: "tim".into(),
                password: Secret::new("p".into()),
            },
        ),
        (Mechanism::XOAuth2, ClientCredentials::token("a\x01b", "t")),
        (Mechanism::XOAuth2, ClientCredentials::token("a", "t t")),
        (Mechanism::XOAuth2, ClientCredentials::token("a", "")),
        (
            Mechanism::OAuthBearer,
            ClientCredentials::token("a", "t\x01"),
        ),
        (
            Mechanism::OAuthBearer,
            ClientCredentials::Token {
                username: "a".into(),
                token: Secret::new("t".into()),
                host: Some("h\r\n".into()),
                port: None,
            },
        ),
    ];
    for (mech, creds) in cases {
        assert!(
            matches!(
                ClientExchange::new(mech.clone(), &creds),
                Err(SaslError::InvalidCredentials(_))
            ),
            "{mech} {creds:?}"
        );
    }
    assert_eq!(
        ClientExchange::new(Mechanism::XOAuth2, &pw("a", "b")).unwrap_err(),
        SaslError::WrongCredentials("XOAUTH2")
    );
    assert_eq!(
        ClientExchange::new(Mechanism::Plain, &ClientCredentials::token("a", "b")).unwrap_err(),
        SaslError::WrongCredentials("PLAIN")
    );
}

#[test]
fn client_plain_unexpected_challenge_after_initial_response() {
    let mut c =
        ClientExchange::new(Mechanism::Plain, &ClientCredentials::password("tim", "pw")).unwrap();
    assert_eq!(c.initial_response().unwrap().expose(), "AHRpbQBwdw==");
    assert!(c.initial_response().is_none());
    assert_eq!(
        c.challenge(b"").unwrap_err(),
        SaslError::UnexpectedChallenge
    );
}

#[test]
fn client_bad_base64_challenge() {
    let mut c = ClientExchange::new(
        Mechanism::CramMd5,
        &ClientCredentials::password("tim", "pw"),
    )
    .unwrap();
    assert_eq!(c.challenge_base64(b"%%%").unwrap_err(), SaslError::Base64);
    assert_eq!(
        c.challenge(b"<1@h>").unwrap_err(),
        SaslError::UnexpectedChallenge
    );
}

#[test]
fn long_initial_response_waits_for_empty_challenge() {
    // RFC 4954 §4: a token too long for the 512-octet command line goes after `334 `.
    let token = "a".repeat(600);
    let creds = ClientCredentials::token("user@example.com", token.clone());
    let (mut client, _, step) = pair(Mechanism::XOAuth2, &creds);
    assert!(client.initial_response().is_none());
    assert_eq!(
        done(step),
        Credentials::XOAuth2 {
            user: "user@example.com".into(),
            token: Secret::new(token)
        }
    );
    // Just at the limit it still fits.
    let mut c =
        ClientExchange::new(Mechanism::Plain, &ClientCredentials::password("u", "p")).unwrap();
    let arg = c.initial_response().unwrap();
    assert!(4 + 1 + 5 + 1 + arg.expose().len() + 2 <= MAX_AUTH_COMMAND_LEN);
}

// --- Pairs ----------------------------------------------------------------------

#[test]
fn pairs_for_every_mechanism() {
    let pw = ClientCredentials::password("tim", "tanstaaftanstaaf");
    for mech in [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5] {
        let (_, _, step) = pair(mech.clone(), &pw);
        let creds = done(step);
        assert_eq!(creds.mechanism(), mech);
        assert_eq!(creds.identity(), Some("tim"));
        assert!(creds.verify("tanstaaftanstaaf"), "{mech}");
        assert!(!creds.verify("wrong"), "{mech}");
    }
    let proxy = ClientCredentials::Password {
        authzid: Some("Ursel".into()),
        username: "Kurt".into(),
        password: Secret::new("xipj3plmq".into()),
    };
    assert_eq!(
        done(pair(Mechanism::Plain, &proxy).2),
        plain_creds("Ursel", "Kurt", "xipj3plmq")
    );

    let tok = ClientCredentials::Token {
        username: "a,b=c@example.com".into(),
        token: Secret::new("tok/en+==".into()),
        host: Some("mx.example.com".into()),
        port: Some(587),
    };
    assert_eq!(
        done(pair(Mechanism::XOAuth2, &tok).2),
        Credentials::XOAuth2 {
            user: "a,b=c@example.com".into(),
            token: Secret::new("tok/en+==".into())
        }
    );
    assert_eq!(
        done(pair(Mechanism::OAuthBearer, &tok).2),
        Credentials::OAuthBearer {
            authzid: Some("a,b=c@example.com".into()),
            host: Some("mx.example.com".into()),
            port: Some(587),
            token: Secret::new("tok/en+==".into()),
        }
    );
}

#[test]
fn pair_without_initial_response() {
    // A client that does not use the initial response: the server's empty challenge
    // gets the message instead (RFC 4422 §5).
    for (mech, creds) in [
        (Mechanism::Plain, ClientCredentials::password("tim", "pw")),
        (Mechanism::XOAuth2, ClientCredentials::token("tim", "tok")),
        (
            Mechanism::OAuthBearer,
            ClientCredentials::token("tim", "tok"),
        ),
    ] {
        let mut client = ClientExchange::new(mech.clone(), &creds).unwrap();
        let (mut server, step) = start(mech.clone(), None);
        assert_eq!(step, Step::Challenge(Vec::new()));
        let line = client.challenge_base64(b"").unwrap();
        let got = done(server.handle_line(line.expose().as_bytes()));
        assert_eq!(got.identity(), Some("tim"), "{mech}");
    }
}

// --- Secrets stay out of Debug --------------------------------------------------

#[test]
fn debug_never_shows_secrets() {
    let secret = "hunter2-s3cret";
    let all = [
        Credentials::Plain {
            authzid: "z".into(),
            authcid: "c".into(),
            password: Secret::new(secret.into()),
        },
        Credentials::Login {
            username: "u".into(),
            password: Secret::new(secret.into()),
        },
        Credentials::CramMd5 {
            username: "u".into(),
            challenge: "<1@h>".into(),
            digest: Secret::new(secret.into()),
        },
        Credentials::XOAuth2 {
            user: "u".into(),
            token: Secret::new(secret.into()),
        },
        Credentials::OAuthBearer {
            authzid: None,
            host: None,
            port: None,
            token: Secret::new(secret.into()),
        },
    ];
    for creds in all {
        let text = format!("{creds:?} {:?}", Step::Done(creds.clone()));
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("[redacted]"));
    }
    let pw = ClientCredentials::password("tim", secret);
    assert!(!format!("{pw:?}").contains(secret));
    let mut client = ClientExchange::new(Mechanism::Plain, &pw).unwrap();
    assert!(!format!("{client:?}").contains(secret));
    let ir = client.initial_response().unwrap();
    assert!(!format!("{ir:?}").contains(&encode_base64(format!("\0tim\0{secret}").as_bytes())));
    let mut login = ClientExchange::new(Mechanism::Login, &pw).unwrap();
    assert!(!format!("{login:?}").contains(secret));
    login.challenge(b"Username:").unwrap();
    assert!(!format!("{login:?}").contains(secret));
    let resp = decode_response(encode_base64(secret.as_bytes()).as_bytes()).unwrap();
    assert!(!format!("{resp:?}").contains(secret));
    let (server, _) = start(Mechanism::Login, Some(b"tim"));
    assert!(!format!("{server:?}").contains(secret));
}

// --- Properties -----------------------------------------------------------------

fn any_mechanism() -> impl Strategy<Value = Mechanism> {
    prop_oneof![
        Just(Mechanism::Plain),
        Just(Mechanism::Login),
        Just(Mechanism::CramMd5),
        Just(Mechanism::XOAuth2),
        Just(Mechanism::OAuthBearer),
        Just(Mechanism::Other("SCRAM-SHA-1".into())),
    ]
}

/// What a hostile client may do next.
#[derive(Debug, Clone)]
enum Input {
    Respond(Vec<u8>),
    Line(Vec<u8>),
    Reject(Option<Vec<u8>>),
}

fn any_input() -> impl Strategy<Value = Input> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..80);
    // Messages shaped like the real ones reach deeper into the parsers.
    let shaped = proptest::collection::vec(
        prop_oneof![
            Just(b"\0".to_vec()),
            Just(b"\x01".to_vec()),
            Just(b"n,a=".to_vec()),
            Just(b"user=".to_vec()),
            Just(b"auth=Bearer ".to_vec()),
            Just(b"port=".to_vec()),
            Just(b"=2C".to_vec()),
            Just(b" ".to_vec()),
            "[a-z0-9,=]{0,6}".prop_map(String::into_bytes),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat());
    prop_oneof![
        bytes().prop_map(Input::Respond),
        shaped.clone().prop_map(Input::Respond),
        shaped.prop_map(|m| Input::Line(encode_base64(&m).into_bytes())),
        bytes().prop_map(Input::Line),
        proptest::option::of(bytes()).prop_map(Input::Reject),
    ]
}

fn username() -> impl Strategy<Value = String> {
    "[^\\x00-\\x1f\\x7f]{1,40}".prop_filter("at most 255 octets", |s| s.len() <= MAX_IDENTITY_LEN)
}

fn password_text() -> impl Strategy<Value = String> {
    "[^\\x00]{1,40}".prop_filter("at most 255 octets", |s| s.len() <= MAX_PASSWORD_LEN)
}

proptest! {
    #[test]
    fn server_never_panics(
        mech in any_mechanism(),
        initial in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        inputs in proptest::collection::vec(any_input(), 0..6),
    ) {
        let (mut server, _) = ServerExchange::start(mech, initial.as_deref(), || RFC2195_CHALLENGE.to_owned());
        for input in inputs {
            let _ = match input {
                Input::Respond(r) => server.respond(&r),
                Input::Line(l) => server.handle_line(&l),
                Input::Reject(e) => server.reject(e.as_deref()),
            };
        }
    }

    #[test]
    fn client_never_panics(
        mech in any_mechanism(),
        challenges in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5),
    ) {
        let creds = if mech.uses_token() {
            ClientCredentials::token("u", "t")
        } else {
            ClientCredentials::password("u", "p")
        };
        if let Ok(mut client) = ClientExchange::new(mech, &creds) {
            let _ = client.initial_response();
            for c in challenges {
                let _ = client.challenge(&c);
                let _ = client.challenge_base64(&c);
            }
        }
    }

    #[test]
    fn password_round_trip(user in username(), pass in password_text()) {
        let creds = ClientCredentials::password(user.clone(), pass.clone());
        prop_assert_eq!(
            done(pair(Mechanism::Plain, &creds).2),
            plain_creds("", &user, &pass)
        );
        prop_assert_eq!(
            done(pair(Mechanism::Login, &creds).2),
            Credentials::Login { username: user.clone(), password: Secret::new(pass.clone()) }
        );
        let cram = done(pair(Mechanism::CramMd5, &creds).2);
        prop_assert_eq!(cram.identity(), Some(user.as_str()));
        prop_assert!(cram.verify(&pass));
    }

    #[test]
    fn token_round_trip(
        user in username(),
        token in "[A-Za-z0-9._~+/-]{1,60}={0,2}",
        host in proptest::option::of("[a-z0-9.-]{1,30}"),
        port in proptest::option::of(any::<u16>()),
    ) {
        let creds = ClientCredentials::Token {
            username: user.clone(),
            token: Secret::new(token.clone()),
            host: host.clone(),
            port,
        };
        prop_assert_eq!(
            done(pair(Mechanism::XOAuth2, &creds).2),
            Credentials::XOAuth2 { user: user.clone(), token: Secret::new(token.clone()) }
        );
        prop_assert_eq!(
            done(pair(Mechanism::OAuthBearer, &creds).2),
            Credentials::OAuthBearer { authzid: Some(user), host, port, token: Secret::new(token) }
        );
    }

    #[test]
    fn response_base64_round_trip(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        let line = encode_base64(&data);
        prop_assert_eq!(decode_response(line.as_bytes()), Ok(Response::Data(Secret::new(data.clone()))));
        let arg = encode_initial_response(&data);
        prop_assert_eq!(decode_initial_response(arg.as_bytes()), Ok(Secret::new(data)));
    }
}

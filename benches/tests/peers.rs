//! The benchmark drivers do the same work on the fixtures, whoever does it: same counts,
//! same content, same capabilities. Without this the ratios would compare apples with
//! pears.

use smtp_benches::*;

#[test]
fn commands() {
    let buf = repeat(fixtures::COMMANDS, 3);
    assert_eq!(commands_ours(&buf), 60);
    assert_eq!(commands_stalwart(&buf), 60);
}

#[test]
fn commands_in_reads() {
    let buf = repeat(fixtures::COMMANDS, 3);
    for read in [1, 7, 1460, buf.len()] {
        assert_eq!(commands_ours_reads(&buf, read), 60, "{read}");
        assert_eq!(commands_stalwart_reads(&buf, read), 60, "{read}");
    }
}

#[test]
fn server_commands() {
    // EHLO, 17 commands twice, QUIT: every one answered, by one reply line each but the
    // EHLO reply's 9 and the greeting.
    let session = command_session(2);
    let bytes = session.concat();
    assert_eq!(commands_ours(&bytes), 36);
    assert_eq!(commands_stalwart_reads(&bytes, 1460), 36);
    let config = server_commands_config();
    let replies = server_session(&config, &session, 1460);
    assert_eq!(replies, server_session(&config, &session, 7));
    assert!(replies > 35 * "250 2.1.5 Ok\r\n".len());
}

#[test]
fn replies() {
    let buf = repeat(fixtures::REPLIES, 2);
    assert_eq!(replies_ours(&buf), 20);
    assert_eq!(replies_stalwart(&buf), 20);
    assert_eq!(replies_lettre(&split_replies(&buf)), 20);
}

#[test]
fn ehlo() {
    let ours = ehlo_ours(fixtures::EHLO);
    assert_eq!(ours, ehlo_ours_via_reply(fixtures::EHLO));
    assert!(ours.pipelining && ours.chunking && ours.starttls && ours.dsn && ours.smtputf8);
    assert_eq!(ours.size_limit(), Some(52_428_800));
    assert_eq!(
        ours.auth().collect::<Vec<_>>(),
        ["PLAIN", "LOGIN", "CRAM-MD5"]
    );

    let stalwart = ehlo_stalwart(fixtures::EHLO);
    assert_eq!(stalwart.hostname, "mx.example.org");
    assert_eq!(stalwart.size, 52_428_800);
    assert_ne!(stalwart.auth_mechanisms, 0);
    assert_eq!(
        stalwart.capabilities.count_ones(),
        10,
        "{:b}",
        stalwart.capabilities
    );

    let lettre = ehlo_lettre(std::str::from_utf8(fixtures::EHLO).unwrap());
    use lettre::transport::smtp::extension::Extension;
    assert!(lettre.supports_feature(Extension::StartTls));
    assert!(lettre.supports_feature(Extension::EightBitMime));
}

#[test]
fn data() {
    for body in [fixtures::BODY, fixtures::DOTS] {
        let wire = stuffed(body);
        assert!(wire.len() > body.len());
        let mut ours = Vec::new();
        assert_eq!(data_ours(&wire, &mut ours), wire.len());
        assert!(ours == body);
        assert_eq!(data_ours_zero_copy(&wire), body.len());
        let mut stalwart = Vec::new();
        assert_eq!(data_stalwart(&wire, &mut stalwart), wire.len());
        // Stalwart's DataReceiver starts as if inside a line, so it leaves the stuffed dot
        // of the very first line in place; every other line reads the same.
        let expected = if body.starts_with(b".") {
            [b".", body].concat()
        } else {
            body.to_vec()
        };
        assert!(stalwart == expected);
        assert!(memchr2_floor(&wire) > 0 && memchr_floor(&wire) > 0);
        assert_eq!(
            memchr_count(&wire),
            wire.iter().filter(|&&b| b == b'\n').count()
        );
    }
}

#[test]
fn sessions() {
    let rounds = client_rounds(fixtures::BODY, 2);
    let config = server_config();
    let whole = server_session(&config, &rounds, usize::MAX);
    assert!(whole > 2 * fixtures::BODY.len());
    assert_eq!(server_session(&config, &rounds, 4096), whole);
    for chunking in [false, true] {
        assert!(paired_session(fixtures::BODY, 2, chunking) > 2 * fixtures::BODY.len());
    }
}

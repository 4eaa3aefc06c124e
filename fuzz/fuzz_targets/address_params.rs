//! Addresses and MAIL/RCPT parameters over arbitrary input: `Mailbox::parse`,
//! `Host::parse`, `XText::decode`, the builders `Mailbox::new`, `Param::new` and
//! `Orcpt::new`, and MAIL/RCPT lines with an arbitrary path and arbitrary parameters.
//!
//! Checks: no panic; every value that parses or builds writes out a form that parses back
//! to the same value, with no CR, LF or NUL in it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_proto::{Command, Host, Mailbox, Orcpt, Param, ParseOptions, XText};

fn no_controls(s: &str) {
    assert!(
        !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
        "control character in {s:?}"
    );
}

fn check_mailbox(m: &Mailbox<'_>) {
    let wire = m.to_string();
    no_controls(&wire);
    let again = Mailbox::parse(&wire).unwrap_or_else(|e| panic!("{m:?} -> {wire:?}: {e}"));
    assert_eq!(&again, m, "{wire:?}");
}

fn check_command(line: &[u8], utf8: bool) {
    let options = ParseOptions { utf8 };
    if let Ok(cmd) = Command::parse_with(line, options) {
        let bytes = cmd.to_bytes();
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        let again = Command::parse_with(&bytes, options).unwrap_or_else(|e| {
            panic!("{cmd:?} -> {:?}: {e}", String::from_utf8_lossy(&bytes))
        });
        assert_eq!(again, cmd, "{:?}", String::from_utf8_lossy(&bytes));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let utf8 = selector & 0x80 != 0;
    match selector % 8 {
        0 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                if let Ok(m) = Mailbox::parse(s) {
                    check_mailbox(&m);
                }
            }
        }
        1 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                if let Ok(h) = Host::parse(s, utf8) {
                    let wire = h.to_string();
                    no_controls(&wire);
                    let again = Host::parse(&wire, utf8)
                        .unwrap_or_else(|e| panic!("{h:?} -> {wire:?}: {e}"));
                    assert_eq!(again, h);
                }
            }
        }
        2 => {
            if let Ok(x) = XText::decode(rest) {
                no_controls(x.as_str());
                let wire = x.encoded();
                assert!(wire.bytes().all(|b| (33..=126).contains(&b)), "{wire:?}");
                assert_eq!(XText::decode(wire.as_bytes()).as_ref(), Ok(&x));
            }
        }
        3 => {
            // Builders: local part and host split at the first NUL.
            if let Ok(s) = std::str::from_utf8(rest) {
                let (local, host) = s.split_once('\0').unwrap_or((s, "example.org"));
                if let Ok(m) = Mailbox::new(local, host) {
                    assert_eq!(m.local_part(), local);
                    check_mailbox(&m);
                }
                let (keyword, value) = s.split_once('=').map_or((s, None), |(k, v)| (k, Some(v)));
                if let Ok(p) = Param::new(keyword, value) {
                    assert_eq!(p.keyword(), keyword);
                    assert_eq!(p.value(), value);
                }
                let (kind, addr) = s.split_once(';').unwrap_or(("rfc822", s));
                if let Ok(o) = Orcpt::new(kind, addr) {
                    assert_eq!(o.addr().as_str(), addr);
                }
            }
        }
        4 | 5 => {
            // MAIL with a fixed path and arbitrary parameters, then an arbitrary path.
            let mut line = b"MAIL FROM:<a@example.org> ".to_vec();
            line.extend_from_slice(rest);
            check_command(&line, utf8);
            let mut line = b"MAIL FROM:".to_vec();
            line.extend_from_slice(rest);
            check_command(&line, utf8);
        }
        _ => {
            let mut line = b"RCPT TO:<b@example.org> ".to_vec();
            line.extend_from_slice(rest);
            check_command(&line, utf8);
            let mut line = b"RCPT TO:".to_vec();
            line.extend_from_slice(rest);
            check_command(&line, utf8);
        }
    }
});

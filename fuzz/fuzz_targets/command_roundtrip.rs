//! Structured round-trip of commands: valid commands are built from `arbitrary` values
//! through the public builders (`Mailbox::new`, `Host::parse`, `XText::new`, `Param::new`,
//! `Orcpt::new`, `Text::new`, `Command::unknown`); encoding then parsing must give the same
//! command, on exactly one CRLF-terminated line.
//!
//! `MailParams` and `RcptParams` have public fields, so, as a host must, the target keeps
//! them within the ranges their grammar has (MT-PRIORITY -9..=9, a BY time of at most nine
//! digits, positive with mode R, ENVID of at most 100 characters, no unknown parameter named
//! like a known one or twice). Free text must be what the command's grammar carries:
//! non-empty, printable, no trailing space.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smtp_proto::{
    BodyType, ByMode, Command, DeliverBy, ForwardPath, Host, MailAuth, MailParams, Mailbox,
    Notify, Orcpt, Param, ParseOptions, RcptParams, Ret, ReversePath, Secret, Text, XText,
};

#[derive(Arbitrary, Debug)]
enum Input {
    Helo(String),
    Ehlo(String),
    Lhlo(String),
    Mail(Option<(String, String)>, InMailParams),
    Rcpt(Option<(String, String)>, InRcptParams),
    Data,
    Bdat(u64, bool),
    Rset,
    Vrfy(String),
    Expn(String),
    Help(Option<String>),
    Noop(Option<String>),
    Quit,
    StartTls,
    Auth(String, Option<Vec<u8>>),
    Etrn(String),
    Unknown(String),
}

#[derive(Arbitrary, Debug)]
struct InMailParams {
    size: Option<u64>,
    body: Option<u8>,
    smtputf8: bool,
    ret: Option<bool>,
    envid: Option<String>,
    auth: Option<Option<String>>,
    requiretls: bool,
    mt_priority: Option<i8>,
    by: Option<(i32, bool, bool)>,
    other: Vec<(String, Option<String>)>,
}

#[derive(Arbitrary, Debug)]
struct InRcptParams {
    notify: Option<(bool, bool, bool)>,
    orcpt: Option<(String, String)>,
    other: Vec<(String, Option<String>)>,
}

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

/// Unknown parameters, through `Param::new`, dropping known names and repeats.
fn others(input: Vec<(String, Option<String>)>) -> Vec<Param<'static>> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (k, v) in input {
        let up = k.to_ascii_uppercase();
        if KNOWN.contains(&up.as_str()) || seen.contains(&up) {
            continue;
        }
        if let Ok(p) = Param::new(&k, v.as_deref()) {
            seen.push(up);
            out.push(p);
        }
    }
    out
}

fn mail_params(p: InMailParams) -> Option<MailParams<'static>> {
    let by = match p.by {
        None => None,
        Some((time, ret, trace)) => {
            if time.unsigned_abs() > 999_999_999 || (ret && time <= 0) {
                return None;
            }
            let mode = if ret { ByMode::Return } else { ByMode::Notify };
            Some(DeliverBy { time, mode, trace })
        }
    };
    if p.mt_priority.is_some_and(|m| !(-9..=9).contains(&m)) {
        return None;
    }
    let envid = match p.envid {
        Some(e) if e.len() > 100 => return None,
        Some(e) => Some(XText::new(e).ok()?),
        None => None,
    };
    let auth = match p.auth {
        None => None,
        Some(None) => Some(MailAuth::Unknown),
        Some(Some(id)) => Some(MailAuth::Identity(XText::new(id).ok()?)),
    };
    Some(MailParams {
        size: p.size,
        body: p.body.map(|b| match b % 3 {
            0 => BodyType::SevenBit,
            1 => BodyType::EightBitMime,
            _ => BodyType::BinaryMime,
        }),
        smtputf8: p.smtputf8,
        ret: p.ret.map(|full| if full { Ret::Full } else { Ret::Hdrs }),
        envid,
        auth,
        requiretls: p.requiretls,
        mt_priority: p.mt_priority,
        by,
        other: others(p.other),
    })
}

fn rcpt_params(p: InRcptParams) -> Option<RcptParams<'static>> {
    let orcpt = match p.orcpt {
        None => None,
        Some((t, a)) => Some(Orcpt::new(&t, &a).ok()?),
    };
    Some(RcptParams {
        notify: p.notify.map(|(success, failure, delay)| Notify {
            success,
            failure,
            delay,
        }),
        orcpt,
        other: others(p.other),
    })
}

/// Text as a command argument carries it (RFC 5321 §4.1.1: `String`, UTF-8 with
/// SMTPUTF8): non-empty, printable or tab or non-ASCII, no trailing space.
fn text(s: String) -> Option<Text<'static>> {
    let printable = s
        .bytes()
        .all(|b| (32..127).contains(&b) || b == b'\t' || b >= 0x80);
    if s.is_empty() || !printable || s.ends_with(' ') {
        return None;
    }
    Text::new(s).ok()
}

fn host(s: &str) -> Option<Host<'static>> {
    Host::parse(s, true).ok().map(Host::into_owned)
}

fn mailbox(m: Option<(String, String)>) -> Option<Option<Mailbox<'static>>> {
    match m {
        None => Some(None),
        Some((local, host)) => Mailbox::new(&local, &host).ok().map(Some),
    }
}

fn build(input: Input) -> Option<Command<'static>> {
    Some(match input {
        Input::Helo(h) => Command::Helo(host(&h)?),
        Input::Ehlo(h) => Command::Ehlo(host(&h)?),
        Input::Lhlo(h) => Command::Lhlo(host(&h)?),
        Input::Mail(m, p) => Command::Mail {
            from: mailbox(m)?.map_or(ReversePath::Null, ReversePath::Mailbox),
            params: mail_params(p)?,
        },
        Input::Rcpt(m, p) => Command::Rcpt {
            to: mailbox(m)?.map_or(ForwardPath::Postmaster, ForwardPath::Mailbox),
            params: rcpt_params(p)?,
        },
        Input::Data => Command::Data,
        Input::Bdat(size, last) => Command::Bdat { size, last },
        Input::Rset => Command::Rset,
        Input::Vrfy(t) => Command::Vrfy(text(t)?),
        Input::Expn(t) => Command::Expn(text(t)?),
        Input::Help(t) => Command::Help(t.map(text).map_or(Some(None), |t| t.map(Some))?),
        Input::Noop(t) => Command::Noop(t.map(text).map_or(Some(None), |t| t.map(Some))?),
        Input::Quit => Command::Quit,
        Input::StartTls => Command::StartTls,
        Input::Auth(mechanism, initial) => {
            // sasl-mech = 1*20 (ALPHA / DIGIT / "-" / "_") (RFC 4422 §3.1).
            let ok = (1..=20).contains(&mechanism.len())
                && mechanism
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return None;
            }
            Command::Auth {
                mechanism: Text::new(mechanism).ok()?,
                initial_response: initial.map(Secret::new),
            }
        }
        // node-name: one ASCII word (RFC 1985 §5).
        Input::Etrn(t) if t.is_ascii() && !t.contains([' ', '\t']) => Command::Etrn(text(t)?),
        Input::Etrn(_) => return None,
        Input::Unknown(line) => Command::unknown(&line).ok()?,
    })
}

fuzz_target!(|input: Input| {
    let Some(cmd) = build(input) else {
        return;
    };
    let bytes = cmd.to_bytes();
    assert!(bytes.ends_with(b"\r\n"));
    assert_eq!(
        bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count(),
        2,
        "{cmd:?} encodes to {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(!bytes.contains(&0));
    let utf8_mail_without_param = matches!(
        &cmd,
        Command::Mail { from, params } if from.is_utf8() && !params.smtputf8
    );
    let parsed = Command::parse_with(&bytes, ParseOptions { utf8: true });
    if utf8_mail_without_param {
        // RFC 6531 §3.4: a UTF-8 reverse-path needs SMTPUTF8 on the same MAIL.
        assert!(parsed.is_err(), "{cmd:?}");
        return;
    }
    match parsed {
        Ok(again) => assert_eq!(again, cmd, "{:?}", String::from_utf8_lossy(&bytes)),
        Err(e) => panic!(
            "{cmd:?} encodes to {:?}, which does not parse: {e}",
            String::from_utf8_lossy(&bytes)
        ),
    }
    // All-ASCII commands read the same without SMTPUTF8.
    if bytes.is_ascii() {
        assert_eq!(Command::parse(&bytes).as_ref(), Ok(&cmd));
    }
});

//! When a relay sends a delivery status notification, to whom it reports, and what each
//! recipient's lines say (RFC 3461 §4.1, §5.2; RFC 3464).
//!
//! - **Failed**: the recipients that failed at one attempt (a 5xx, a domain that does not
//!   exist, a null MX, a loop, REQUIRETLS that cannot be met, the queue lifetime) go in
//!   one report.
//! - **Delayed**: once per message, when it has waited `delay_warning` (off by default,
//!   like Postfix's `delay_warning_time`), for the recipients still deferred.
//! - **Relayed**: a recipient that asked `NOTIFY=SUCCESS`, taken by a next hop that does
//!   not do DSN; one that does got the parameters instead (the client passes them on
//!   when DSN is offered) and reports itself.
//! - `NOTIFY=NEVER`: nothing; no `NOTIFY`: failures and delays. Never for a message from
//!   the null reverse-path: a bounce is never bounced.
//!
//! Pure: the queue entry, the attempt and the time come in; [`crate::dsn`] composes.

use std::time::{Duration, SystemTime};

use crate::dsn::{Action, RecipientStatus, Report, Return};
use crate::spool::{Entry, Recipient, RecipientState, Status, from_unix_secs};

/// What a recipient asked to be told (`NOTIFY=`, RFC 3461 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wants {
    /// `SUCCESS`.
    pub success: bool,
    /// `FAILURE` (and the default).
    pub failure: bool,
    /// `DELAY` (and the default).
    pub delay: bool,
}

impl Wants {
    /// From the queued `NOTIFY` (`NEVER`, or a comma list); no `NOTIFY` means failures
    /// and delays (RFC 3461 §4.1: "the MTA ... may ... as if FAILURE,DELAY").
    pub fn parse(notify: Option<&str>) -> Wants {
        let Some(list) = notify else {
            return Wants {
                success: false,
                failure: true,
                delay: true,
            };
        };
        let has = |w: &str| list.split(',').any(|x| x.trim().eq_ignore_ascii_case(w));
        Wants {
            success: has("SUCCESS"),
            failure: has("FAILURE"),
            delay: has("DELAY"),
        }
    }
}

/// Which report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Recipients that failed.
    Failure,
    /// Recipients still being tried after the delay warning time.
    Delay,
    /// Recipients delivered or relayed who asked for it.
    Success,
}

/// One report to send: its kind and its recipients' lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Which report.
    pub kind: Kind,
    /// The recipients, in the envelope's order.
    pub recipients: Vec<RecipientStatus>,
}

/// What one attempt did.
#[derive(Clone, Copy, Debug)]
pub struct Occasion<'a> {
    /// The recipients (indices into the envelope) whose state the attempt set.
    pub attempted: &'a [usize],
    /// `host[ip]:port` of the server that answered, if one did.
    pub relay: Option<&'a str>,
    /// The server offered DSN: it took `NOTIFY` and `ORCPT` and reports itself.
    pub dsn: bool,
    /// When.
    pub now: SystemTime,
}

/// The relay's notification settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Send a delay warning once a message has waited this long (`None`: never).
    pub delay_warning: Option<Duration>,
    /// The queue lifetime, for `Will-Retry-Until`.
    pub lifetime: Duration,
}

/// The reports an attempt calls for; marks the message as warned when a delay report is
/// among them (every recipient's `delay_warned`, so the state file says it).
pub fn plan(entry: &mut Entry, occasion: &Occasion<'_>, settings: &Settings) -> Vec<Notice> {
    if entry.envelope.from.is_empty() {
        return Vec::new();
    }
    let mut notices = Vec::new();
    let line = |i: usize, action: Action, entry: &Entry| {
        recipient_status(
            &entry.envelope.recipients[i],
            &entry.states[i],
            action,
            occasion,
            i,
        )
    };
    let mut attempted: Vec<usize> = occasion.attempted.to_vec();
    attempted.sort_unstable();
    attempted.dedup();
    let wants = |i: usize| Wants::parse(entry.envelope.recipients[i].notify.as_deref());
    let failed: Vec<RecipientStatus> = attempted
        .iter()
        .filter(|&&i| entry.states[i].status == Status::Failed && wants(i).failure)
        .map(|&i| line(i, Action::Failed, entry))
        .collect();
    if !failed.is_empty() {
        notices.push(Notice {
            kind: Kind::Failure,
            recipients: failed,
        });
    }
    let relayed: Vec<RecipientStatus> = attempted
        .iter()
        .filter(|&&i| {
            entry.states[i].status == Status::Delivered && wants(i).success && !occasion.dsn
        })
        .map(|&i| line(i, Action::Relayed, entry))
        .collect();
    if !relayed.is_empty() {
        notices.push(Notice {
            kind: Kind::Success,
            recipients: relayed,
        });
    }
    let arrived = from_unix_secs(entry.envelope.arrived);
    let late = settings.delay_warning.is_some_and(|after| {
        occasion
            .now
            .duration_since(arrived)
            .is_ok_and(|waited| waited >= after)
    });
    let warned = entry.states.iter().any(|s| s.delay_warned);
    let deferred = entry.states.iter().any(|s| !s.status.is_final());
    if late && !warned && deferred {
        let delayed: Vec<RecipientStatus> = (0..entry.states.len())
            .filter(|&i| entry.states[i].status == Status::Deferred && wants(i).delay)
            .map(|i| {
                let mut r = line(i, Action::Delayed, entry);
                r.will_retry_until = Some(arrived + settings.lifetime);
                r
            })
            .collect();
        for s in &mut entry.states {
            s.delay_warned = true;
        }
        if !delayed.is_empty() {
            notices.push(Notice {
                kind: Kind::Delay,
                recipients: delayed,
            });
        }
    }
    notices
}

/// A recipient's lines in a report, from its queue state after an attempt.
fn recipient_status(
    recipient: &Recipient,
    state: &RecipientState,
    action: Action,
    occasion: &Occasion<'_>,
    index: usize,
) -> RecipientStatus {
    let this_attempt = occasion.attempted.contains(&index);
    let diagnostic = state.last_reply.as_ref().map(|r| match &r.enhanced {
        Some(e) => format!("{} {e} {}", r.code, r.text),
        None => format!("{} {}", r.code, r.text),
    });
    let remote_mta = match (this_attempt, &state.last_reply, occasion.relay) {
        (true, Some(_), Some(relay)) => Some(host_of(relay).to_owned()),
        _ => None,
    };
    RecipientStatus {
        recipient: recipient.address.clone(),
        original: original(recipient),
        action,
        status: status_code(state, action),
        remote_mta,
        diagnostic,
        detail: state.last_error.clone(),
        last_attempt: this_attempt.then_some(occasion.now),
        will_retry_until: None,
    }
}

/// A local delivery's lines: stored in a mailbox here (`Action: delivered`).
pub fn delivered(recipient: &Recipient) -> RecipientStatus {
    RecipientStatus {
        recipient: recipient.address.clone(),
        original: original(recipient),
        action: Action::Delivered,
        status: (2, 0, 0),
        remote_mta: None,
        diagnostic: None,
        detail: None,
        last_attempt: None,
        will_retry_until: None,
    }
}

/// `ORCPT` as queued (`type;address`), split.
fn original(recipient: &Recipient) -> Option<(String, String)> {
    let (kind, addr) = recipient.orcpt.as_deref()?.split_once(';')?;
    Some((kind.to_owned(), addr.to_owned()))
}

/// `host` of `host[ip]:port`.
fn host_of(relay: &str) -> &str {
    relay.split_once('[').map_or(relay, |(h, _)| h)
}

/// The RFC 3463 status of a recipient: the queue lifetime's `4.4.7`, else the enhanced
/// code of the last reply (or its class), else the code a failure without a reply
/// starts with (`5.1.10 Domain ... does not accept mail`), else by the action.
pub fn status_code(state: &RecipientState, action: Action) -> (u8, u16, u16) {
    let error = state.last_error.as_deref().unwrap_or("");
    if let Some(code) = leading_code(error).filter(|c| *c == (4, 4, 7)) {
        return code;
    }
    if let Some(r) = &state.last_reply {
        if let Some(code) = r.enhanced.as_deref().and_then(parse_code) {
            return code;
        }
        let class = u8::try_from(r.code / 100).unwrap_or(5);
        if (2..=5).contains(&class) {
            return (class, 0, 0);
        }
    }
    if let Some(code) = leading_code(error) {
        return code;
    }
    match action {
        Action::Failed => (5, 0, 0),
        Action::Delayed => (4, 0, 0),
        Action::Delivered | Action::Relayed => (2, 0, 0),
    }
}

fn leading_code(text: &str) -> Option<(u8, u16, u16)> {
    parse_code(text.split_whitespace().next()?)
}

fn parse_code(s: &str) -> Option<(u8, u16, u16)> {
    let mut it = s.split('.');
    let class: u8 = it.next()?.parse().ok()?;
    let subject: u16 = it.next()?.parse().ok()?;
    let detail: u16 = it.next()?.parse().ok()?;
    (it.next().is_none() && matches!(class, 2 | 4 | 5)).then_some((class, subject, detail))
}

/// The report for `notice` about `entry`, `original` being the queued message (or its
/// header section). RET=FULL returns the whole message in a failure report only (RFC
/// 3461 §4.3); a REQUIRETLS message never (RFC 8689 §5: as if RET=HDRS).
pub fn report<'a>(
    entry: &'a Entry,
    notice: &'a Notice,
    hostname: &'a str,
    original: &'a [u8],
) -> Report<'a> {
    let e = &entry.envelope;
    let full = notice.kind == Kind::Failure
        && !e.requiretls
        && e.ret
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("FULL"));
    Report {
        hostname,
        sender: &e.from,
        queue_id: &e.id,
        envid: e.envid.as_deref(),
        arrived: from_unix_secs(e.arrived),
        smtputf8: e.smtputf8,
        ret: if full { Return::Full } else { Return::Headers },
        recipients: notice.recipients.clone(),
        original,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Envelope, ReplyRecord};

    const T0: u64 = 1_700_000_000;

    fn entry(from: &str, notify: &[Option<&str>], status: Status) -> Entry {
        let recipients: Vec<Recipient> = notify
            .iter()
            .enumerate()
            .map(|(i, n)| Recipient {
                notify: n.map(str::to_owned),
                orcpt: None,
                ..Recipient::new(format!("r{i}@dest.example"))
            })
            .collect();
        let states = recipients
            .iter()
            .map(|_| RecipientState {
                status,
                attempts: 1,
                last_reply: Some(ReplyRecord {
                    code: if status == Status::Delivered {
                        250
                    } else {
                        550
                    },
                    enhanced: None,
                    text: "said".into(),
                }),
                ..RecipientState::default()
            })
            .collect();
        Entry {
            envelope: Envelope {
                id: "Q1".into(),
                from: from.into(),
                body: None,
                smtputf8: false,
                ret: None,
                envid: None,
                requiretls: false,
                recipients,
                arrived: T0,
                size: 10,
            },
            states,
        }
    }

    fn occasion(attempted: &[usize], dsn: bool, after: u64) -> Occasion<'_> {
        Occasion {
            attempted,
            relay: Some("mx.dest.example[192.0.2.1]:25"),
            dsn,
            now: from_unix_secs(T0 + after),
        }
    }

    const SETTINGS: Settings = Settings {
        delay_warning: Some(Duration::from_secs(3600)),
        lifetime: Duration::from_secs(86_400),
    };

    /// Every NOTIFY against every event: which report (if any) names the recipient.
    #[test]
    fn notify_table() {
        // (NOTIFY, the next hop has DSN, failure?, delay?, success?)
        let cases: &[(Option<&str>, bool, bool, bool, bool)] = &[
            (None, false, true, true, false),
            (None, true, true, true, false),
            (Some("NEVER"), false, false, false, false),
            (Some("SUCCESS"), false, false, false, true),
            (Some("SUCCESS"), true, false, false, false),
            (Some("FAILURE"), false, true, false, false),
            (Some("DELAY"), false, false, true, false),
            (Some("SUCCESS,FAILURE"), false, true, false, true),
            (Some("FAILURE,DELAY"), false, true, true, false),
            (Some("success,delay"), false, false, true, true),
            (Some("SUCCESS,FAILURE,DELAY"), false, true, true, true),
            (Some("SUCCESS,FAILURE,DELAY"), true, true, true, false),
        ];
        for &(notify, dsn, failure, delay, success) in cases {
            let case = format!("{notify:?} dsn={dsn}");
            let mut e = entry("alice@origin.example", &[notify], Status::Failed);
            let n = plan(&mut e, &occasion(&[0], dsn, 10), &SETTINGS);
            assert_eq!(n.len(), usize::from(failure), "failure {case}");
            if failure {
                assert_eq!(n[0].kind, Kind::Failure);
                assert_eq!(n[0].recipients[0].action, Action::Failed);
                assert_eq!(n[0].recipients[0].status, (5, 0, 0));
            }
            let mut e = entry("alice@origin.example", &[notify], Status::Deferred);
            let n = plan(&mut e, &occasion(&[0], dsn, 3600), &SETTINGS);
            assert_eq!(n.len(), usize::from(delay), "delay {case}");
            if delay {
                assert_eq!(n[0].kind, Kind::Delay);
                let r = &n[0].recipients[0];
                assert_eq!(
                    r.will_retry_until,
                    Some(from_unix_secs(T0 + 86_400)),
                    "{case}"
                );
            }
            // Once per message.
            assert!(e.states.iter().all(|s| s.delay_warned));
            assert!(plan(&mut e, &occasion(&[0], dsn, 7200), &SETTINGS).is_empty());
            let mut e = entry("alice@origin.example", &[notify], Status::Delivered);
            let n = plan(&mut e, &occasion(&[0], dsn, 10), &SETTINGS);
            assert_eq!(n.len(), usize::from(success), "success {case}");
            if success {
                assert_eq!(n[0].recipients[0].action, Action::Relayed);
                assert_eq!(n[0].recipients[0].status, (2, 0, 0));
            }
            // From <>: never.
            for status in [Status::Failed, Status::Deferred, Status::Delivered] {
                let mut e = entry("", &[notify], status);
                assert!(plan(&mut e, &occasion(&[0], dsn, 3600), &SETTINGS).is_empty());
            }
        }
    }

    #[test]
    fn one_report_per_occasion_and_no_delay_warning_by_default() {
        let mut e = entry(
            "alice@origin.example",
            &[None, Some("FAILURE"), None],
            Status::Failed,
        );
        // Only the recipients of this attempt.
        let n = plan(&mut e, &occasion(&[0, 1], false, 10), &SETTINGS);
        assert_eq!(n.len(), 1);
        let who: Vec<&str> = n[0]
            .recipients
            .iter()
            .map(|r| r.recipient.as_str())
            .collect();
        assert_eq!(who, ["r0@dest.example", "r1@dest.example"]);
        assert_eq!(
            n[0].recipients[0].remote_mta.as_deref(),
            Some("mx.dest.example")
        );
        let mut e = entry("alice@origin.example", &[None], Status::Deferred);
        let off = Settings {
            delay_warning: None,
            ..SETTINGS
        };
        assert!(plan(&mut e, &occasion(&[0], false, 1_000_000), &off).is_empty());
        // Not yet late.
        assert!(plan(&mut e, &occasion(&[0], false, 3599), &SETTINGS).is_empty());
    }

    #[test]
    fn status_codes() {
        let with = |reply: Option<(u16, Option<&str>)>, error: Option<&str>| RecipientState {
            last_reply: reply.map(|(code, e)| ReplyRecord {
                code,
                enhanced: e.map(str::to_owned),
                text: String::new(),
            }),
            last_error: error.map(str::to_owned),
            ..RecipientState::default()
        };
        let f = Action::Failed;
        assert_eq!(
            status_code(&with(Some((550, Some("5.1.1"))), None), f),
            (5, 1, 1)
        );
        assert_eq!(status_code(&with(Some((554, None)), None), f), (5, 0, 0));
        let null_mx = "5.1.10 Domain x does not accept mail (null MX)";
        assert_eq!(status_code(&with(None, Some(null_mx)), f), (5, 1, 10));
        let expired = "4.4.7 queue lifetime expired; last error: connection refused";
        assert_eq!(
            status_code(&with(Some((451, Some("4.3.0"))), Some(expired)), f),
            (4, 4, 7)
        );
        assert_eq!(status_code(&with(None, Some("refused")), f), (5, 0, 0));
        assert_eq!(status_code(&with(None, None), Action::Delayed), (4, 0, 0));
    }

    /// RET, ENVID, ORCPT and REQUIRETLS into the report: every combination.
    #[test]
    fn ret_envid_orcpt() {
        for ret in [None, Some("FULL"), Some("HDRS"), Some("full")] {
            for envid in [None, Some("QQ314159")] {
                for orcpt in [
                    None,
                    Some("rfc822;Bob@Example.ORG"),
                    Some("utf-8;bøb@example.org"),
                ] {
                    for requiretls in [false, true] {
                        for kind in [Kind::Failure, Kind::Delay, Kind::Success] {
                            let case = format!("{ret:?} {envid:?} {orcpt:?} {requiretls} {kind:?}");
                            let mut e = entry("alice@origin.example", &[None], Status::Failed);
                            e.envelope.ret = ret.map(str::to_owned);
                            e.envelope.envid = envid.map(str::to_owned);
                            e.envelope.requiretls = requiretls;
                            e.envelope.recipients[0].orcpt = orcpt.map(str::to_owned);
                            let notice = Notice {
                                kind,
                                recipients: vec![recipient_status(
                                    &e.envelope.recipients[0],
                                    &e.states[0],
                                    Action::Failed,
                                    &occasion(&[0], false, 1),
                                    0,
                                )],
                            };
                            let original = b"Subject: s\r\n\r\nbody\r\n";
                            let r = report(&e, &notice, "relay.example", original);
                            let full = ret.is_some_and(|r| r.eq_ignore_ascii_case("FULL"))
                                && !requiretls
                                && kind == Kind::Failure;
                            assert_eq!(r.ret == Return::Full, full, "{case}");
                            assert_eq!(r.envid, envid, "{case}");
                            let expect = orcpt.map(|o| {
                                let (t, a) = o.split_once(';').unwrap();
                                (t.to_owned(), a.to_owned())
                            });
                            assert_eq!(r.recipients[0].original, expect, "{case}");
                            let text =
                                String::from_utf8(r.compose(from_unix_secs(T0), "t").message)
                                    .unwrap();
                            assert_eq!(text.contains("body\r\n"), full, "{case}");
                            assert_eq!(
                                text.contains("Original-Envelope-Id: QQ314159\r\n"),
                                envid.is_some(),
                                "{case}"
                            );
                            if let Some(o) = orcpt {
                                let (t, a) = o.split_once(';').unwrap();
                                assert!(
                                    text.contains(&format!("Original-Recipient: {t}; {a}\r\n")),
                                    "{case}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// RFC 6533: where SMTPUTF8 was used, or an address is UTF-8, the utf-8 address
    /// type and the global types.
    #[test]
    fn utf8_addresses() {
        let mut e = entry("alïce@origin.example", &[None], Status::Failed);
        e.envelope.recipients[0].address = "bøb@dést.example".into();
        e.envelope.smtputf8 = true;
        let n = plan(&mut e, &occasion(&[0], false, 1), &SETTINGS);
        let r = report(&e, &n[0], "relay.example", b"Subject: s\r\n\r\nb\r\n");
        let c = r.compose(from_unix_secs(T0), "t");
        assert!(c.smtputf8);
        let text = String::from_utf8(c.message).unwrap();
        assert!(text.contains("To: <alïce@origin.example>\r\n"));
        assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(text.contains("Final-Recipient: utf-8; bøb@dést.example\r\n"));
        assert!(text.contains("Content-Type: message/global-headers\r\n"));
        // An ASCII message from an ASCII sender keeps the RFC 3464 forms.
        let mut e = entry("alice@origin.example", &[None], Status::Failed);
        let n = plan(&mut e, &occasion(&[0], false, 1), &SETTINGS);
        let c = report(&e, &n[0], "relay.example", b"Subject: s\r\n\r\n")
            .compose(from_unix_secs(T0), "t");
        assert!(!c.smtputf8);
        let text = String::from_utf8(c.message).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; r0@dest.example\r\n"));
    }
}

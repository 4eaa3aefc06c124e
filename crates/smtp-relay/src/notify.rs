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

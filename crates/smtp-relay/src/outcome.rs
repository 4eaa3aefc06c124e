//! What one delivery attempt means for each recipient, and how that changes its queue
//! state: 2xx delivered, 5xx failed, everything else (4xx, no answer, a broken
//! connection, DNS or TLS trouble) deferred and retried on the [`RetrySchedule`] until
//! the queue lifetime is over.
//!
//! A connection lost after the final dot, before the reply, is deferred too: the message
//! may have arrived, but RFC 5321 §6.1 prefers a duplicate to a loss.

use std::time::SystemTime;

use smtp_proto::Reply;
use smtp_proto::client::{
    DeliveryStatus, LocalRefusal, MessageOutcome, RecipientOutcome, RecipientStatus,
};

use crate::schedule::RetrySchedule;
use crate::spool::{RecipientState, ReplyRecord, Status, from_unix_secs, unix_secs};

/// One recipient's result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A server took the message for this recipient.
    Delivered(ReplyRecord),
    /// Try again later.
    Deferred(Why),
    /// Give up.
    Failed(Why),
}

/// What a server said, or what went wrong without a reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Why {
    /// The reply that decided, if a server gave one.
    pub reply: Option<ReplyRecord>,
    /// Otherwise (or besides), what happened.
    pub error: Option<String>,
}

impl Verdict {
    /// Deferred, for a failure with no reply (connection refused, time-out, TLS, DNS).
    pub fn deferred(error: impl Into<String>) -> Verdict {
        Verdict::Deferred(Why {
            reply: None,
            error: Some(error.into()),
        })
    }

    /// Failed, for a failure with no reply (a domain that does not exist).
    pub fn failed(error: impl Into<String>) -> Verdict {
        Verdict::Failed(Why {
            reply: None,
            error: Some(error.into()),
        })
    }

    /// From a reply alone: 2xx delivered, 5xx failed, anything else deferred.
    pub fn from_reply(reply: &Reply) -> Verdict {
        let record = ReplyRecord::from(reply);
        match reply.code().class() {
            2 => Verdict::Delivered(record),
            5 => Verdict::Failed(Why {
                reply: Some(record),
                error: None,
            }),
            _ => Verdict::Deferred(Why {
                reply: Some(record),
                error: None,
            }),
        }
    }

    /// `status=sent|deferred|failed`, as the log says it.
    pub fn status(&self) -> &'static str {
        match self {
            Verdict::Delivered(_) => "sent",
            Verdict::Deferred(_) => "deferred",
            Verdict::Failed(_) => "failed",
        }
    }
}

impl From<&Reply> for ReplyRecord {
    fn from(reply: &Reply) -> ReplyRecord {
        ReplyRecord {
            code: reply.code().get(),
            enhanced: reply.enhanced().map(|e| e.to_string()),
            text: reply.lines().join(" "),
        }
    }
}

/// Each recipient's verdict from the outcome of one message sent to one server, in the
/// order of `outcome.recipients`.
pub fn verdicts(outcome: &MessageOutcome) -> Vec<Verdict> {
    if let Some(refusal) = outcome.refused {
        let v = refused(refusal);
        return vec![v; outcome.recipients.len()];
    }
    outcome
        .recipients
        .iter()
        .map(|r| recipient(r, outcome))
        .collect()
}

/// May have arrived, may not: try again (RFC 5321 §6.1).
const UNKNOWN: &str =
    "lost connection after the end of data, before the reply; may have been delivered";

fn recipient(r: &RecipientOutcome, outcome: &MessageOutcome) -> Verdict {
    let own = r.reply.as_ref();
    match (r.status, own) {
        // LMTP: the recipient's own final reply decides.
        (RecipientStatus::Accepted, Some(own)) if !own.code().is_positive() => {
            Verdict::from_reply(own)
        }
        (RecipientStatus::Accepted, _) => match (outcome.status, outcome.reply.as_ref()) {
            (DeliveryStatus::Sent | DeliveryStatus::Partial, Some(reply)) => {
                Verdict::from_reply(reply)
            }
            (DeliveryStatus::Sent | DeliveryStatus::Partial, None) => {
                let text = String::new();
                Verdict::Delivered(ReplyRecord {
                    code: 250,
                    enhanced: None,
                    text,
                })
            }
            (DeliveryStatus::Permanent, Some(reply)) => Verdict::Failed(why(reply)),
            (DeliveryStatus::Temporary, Some(reply)) => Verdict::Deferred(why(reply)),
            (DeliveryStatus::Unknown, _) => Verdict::deferred(UNKNOWN),
            (_, None) => Verdict::deferred("lost connection"),
        },
        (RecipientStatus::Permanent, Some(own)) => Verdict::Failed(why(own)),
        (RecipientStatus::Permanent, None) => Verdict::failed("refused"),
        (RecipientStatus::Temporary, Some(own)) => Verdict::Deferred(why(own)),
        (RecipientStatus::Temporary, None) => Verdict::deferred("lost connection"),
        (RecipientStatus::Unknown, _) => Verdict::deferred(UNKNOWN),
    }
}

fn why(reply: &Reply) -> Why {
    Why {
        reply: Some(reply.into()),
        error: None,
    }
}

/// What the client refused to send, with the enhanced code a bounce will carry.
fn refused(refusal: LocalRefusal) -> Verdict {
    let code = match refusal {
        LocalRefusal::TooBig { .. } => "5.3.4",
        LocalRefusal::Smtputf8Unsupported => "5.6.7",
        LocalRefusal::BinaryUnsupported => "5.6.3",
        LocalRefusal::RequireTlsUnavailable => "5.7.30",
        LocalRefusal::LineTooLong => "5.6.0",
        // The body could not be read from the queue: ours, so try again.
        LocalRefusal::Aborted => return Verdict::deferred(format!("4.3.0 {refusal}")),
        _ => "5.3.0",
    };
    Verdict::failed(format!("{code} {refusal}"))
}

/// The recipient's state after `verdict` at `now`: attempts counted, the next attempt
/// scheduled, and a deferral past the queue lifetime turned into a failure.
pub fn apply(
    state: &mut RecipientState,
    verdict: Verdict,
    now: SystemTime,
    arrived: SystemTime,
    schedule: &RetrySchedule,
    random: u64,
) {
    state.attempts = state.attempts.saturating_add(1);
    let (status, why) = match verdict {
        Verdict::Delivered(reply) => (
            Status::Delivered,
            Why {
                reply: Some(reply),
                error: None,
            },
        ),
        Verdict::Failed(why) => (Status::Failed, why),
        Verdict::Deferred(why) if schedule.expired(arrived, now) => {
            // 4.4.7 (RFC 3463): the delivery time expired; the last reason after it.
            let error = why
                .error
                .clone()
                .map_or("4.4.7 queue lifetime expired".to_owned(), |e| {
                    format!("4.4.7 queue lifetime expired; last error: {e}")
                });
            (
                Status::Failed,
                Why {
                    error: Some(error),
                    ..why
                },
            )
        }
        Verdict::Deferred(why) => {
            let next = schedule.next_attempt(state.attempts, now, random);
            state.next_attempt = Some(unix_secs(next));
            (Status::Deferred, why)
        }
    };
    if status.is_final() {
        state.next_attempt = None;
    }
    state.status = status;
    state.last_reply = why.reply;
    state.last_error = why.error;
}

/// Whether a recipient is due at `now`.
pub fn is_due(state: &RecipientState, now: SystemTime) -> bool {
    !state.status.is_final() && state.next_attempt.is_none_or(|t| from_unix_secs(t) <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::{ForwardPath, Mailbox};
    use std::time::Duration;

    fn reply(s: &str) -> Reply {
        Reply::parse(format!("{s}\r\n").as_bytes()).unwrap()
    }

    fn rcpt(addr: &str, status: RecipientStatus, r: Option<&str>) -> RecipientOutcome {
        RecipientOutcome {
            to: ForwardPath::Mailbox(Mailbox::parse(addr).unwrap().into_owned()),
            status,
            reply: r.map(reply),
        }
    }

    fn outcome(
        status: DeliveryStatus,
        r: Option<&str>,
        rcpts: Vec<RecipientOutcome>,
    ) -> MessageOutcome {
        MessageOutcome {
            id: 1,
            status,
            recipients: rcpts,
            reply: r.map(reply),
            refused: None,
            long_lines: 0,
        }
    }

    #[test]
    fn per_recipient() {
        let o = outcome(
            DeliveryStatus::Partial,
            Some("250 2.0.0 Ok: queued as X"),
            vec![
                rcpt("a@x", RecipientStatus::Accepted, Some("250 2.1.5 Ok")),
                rcpt("b@x", RecipientStatus::Temporary, Some("450 4.2.0 busy")),
                rcpt(
                    "c@x",
                    RecipientStatus::Permanent,
                    Some("550 5.1.1 no such user"),
                ),
            ],
        );
        let v = verdicts(&o);
        assert_eq!(
            v.iter().map(Verdict::status).collect::<Vec<_>>(),
            ["sent", "deferred", "failed"]
        );
        let Verdict::Delivered(r) = &v[0] else {
            panic!()
        };
        assert_eq!(
            (r.code, r.enhanced.as_deref(), r.text.as_str()),
            (250, Some("2.0.0"), "Ok: queued as X")
        );
        let Verdict::Failed(w) = &v[2] else { panic!() };
        assert_eq!(w.reply.as_ref().unwrap().enhanced.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn message_level_replies_and_lost_connections() {
        let accepted = || vec![rcpt("a@x", RecipientStatus::Accepted, Some("250 ok"))];
        let v = verdicts(&outcome(
            DeliveryStatus::Temporary,
            Some("451 4.3.0 try later"),
            accepted(),
        ));
        assert_eq!(v[0].status(), "deferred");
        let v = verdicts(&outcome(
            DeliveryStatus::Permanent,
            Some("554 5.6.0 bad content"),
            accepted(),
        ));
        assert_eq!(v[0].status(), "failed");
        // After the final dot, no reply: retried (RFC 5321 §6.1), never dropped.
        let v = verdicts(&outcome(DeliveryStatus::Unknown, None, accepted()));
        assert!(
            matches!(&v[0], Verdict::Deferred(w) if w.error.as_deref().unwrap().contains("may have been delivered"))
        );
        // LMTP: each recipient's final reply decides.
        let lmtp = vec![
            rcpt(
                "a@x",
                RecipientStatus::Accepted,
                Some("250 2.0.0 delivered"),
            ),
            rcpt(
                "b@x",
                RecipientStatus::Accepted,
                Some("452 4.2.2 mailbox full"),
            ),
        ];
        let v = verdicts(&outcome(DeliveryStatus::Partial, Some("250 ok"), lmtp));
        assert_eq!(
            v.iter().map(Verdict::status).collect::<Vec<_>>(),
            ["sent", "deferred"]
        );
        let mut o = outcome(DeliveryStatus::Permanent, None, accepted());
        o.refused = Some(LocalRefusal::TooBig { size: 10, limit: 5 });
        assert!(
            matches!(&verdicts(&o)[0], Verdict::Failed(w) if w.error.as_deref().unwrap().starts_with("5.3.4"))
        );
    }

    #[test]
    fn state_changes() {
        let t0 = from_unix_secs(1_700_000_000);
        let s = RetrySchedule::default();
        let mut st = RecipientState::default();
        assert!(is_due(&st, t0));
        apply(
            &mut st,
            Verdict::from_reply(&reply("421 4.3.2 busy")),
            t0,
            t0,
            &s,
            0,
        );
        assert_eq!(
            (st.status, st.attempts, st.next_attempt),
            (Status::Deferred, 1, Some(1_700_000_300))
        );
        assert!(!is_due(&st, t0 + Duration::from_secs(299)));
        assert!(is_due(&st, t0 + Duration::from_secs(300)));
        let t1 = t0 + Duration::from_secs(300);
        apply(
            &mut st,
            Verdict::deferred("connection refused"),
            t1,
            t0,
            &s,
            0,
        );
        assert_eq!((st.attempts, st.next_attempt), (2, Some(1_700_000_900)));
        assert_eq!(
            (st.last_reply.as_ref(), st.last_error.as_deref()),
            (None, Some("connection refused"))
        );
        // Past the lifetime, a deferral is the end.
        let late = t0 + s.lifetime;
        apply(
            &mut st,
            Verdict::deferred("connection refused"),
            late,
            t0,
            &s,
            0,
        );
        assert_eq!((st.status, st.next_attempt), (Status::Failed, None));
        assert!(st.last_error.unwrap().contains("queue lifetime expired"));
        assert!(!is_due(
            &RecipientState {
                status: Status::Delivered,
                ..Default::default()
            },
            late
        ));
    }
}

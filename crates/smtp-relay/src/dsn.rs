//! Delivery status notifications (RFC 3464 inside an RFC 6522 `multipart/report`, status
//! codes from RFC 3463): the bounce, delay warning or success report a relay sends back
//! to a message's sender.
//!
//! Pure: the report is composed from what the queue knows, the time and a unique token
//! passed in; sending it is an ordinary delivery from the null reverse-path `<>`.
//! Internationalized mail (RFC 6533) gets `message/global-delivery-status`, `utf-8`
//! address types and `message/global` for the returned message.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::date::rfc5322;

/// What happened to a recipient, as the report's `Action:` says (RFC 3464 §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Will not be delivered.
    Failed,
    /// Not delivered yet; still being tried.
    Delayed,
    /// Delivered (stored here).
    Delivered,
    /// Passed to a next hop that does not do DSN; no further notification will come.
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// How much of the original message goes back (`RET=`, RFC 3461 §4.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Return {
    /// The whole message (`RET=FULL`).
    Full,
    /// Its header only (`RET=HDRS`, and the default when the sender did not say).
    #[default]
    Headers,
}

/// One recipient's lines in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The recipient's address as it was tried (`Final-Recipient`).
    pub recipient: String,
    /// `ORCPT` as the sender gave it: the address type and the address (decoded).
    pub original: Option<(String, String)>,
    /// What happened.
    pub action: Action,
    /// The RFC 3463 status code, e.g. `(5, 1, 1)`.
    pub status: (u8, u16, u16),
    /// The server that said so (`Remote-MTA`), a host name.
    pub remote_mta: Option<String>,
    /// What it said: an SMTP reply (`Diagnostic-Code: smtp; ...`).
    pub diagnostic: Option<String>,
    /// What went wrong when no server said anything (DNS, TLS, a loop, the queue
    /// lifetime): `Diagnostic-Code: X-Smtp-Relay; ...` when there is no reply.
    pub detail: Option<String>,
    /// When the last attempt was made.
    pub last_attempt: Option<SystemTime>,
    /// For a delay: until when it will be retried.
    pub will_retry_until: Option<SystemTime>,
}

/// A report about one message.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    /// This server's name (`Reporting-MTA`, `MAILER-DAEMON@`).
    pub hostname: &'a str,
    /// The original sender: the report's recipient.
    pub sender: &'a str,
    /// The original message's queue id, for the text.
    pub queue_id: &'a str,
    /// `ENVID` (RFC 3461 §4.4), decoded.
    pub envid: Option<&'a str>,
    /// When the original message arrived.
    pub arrived: SystemTime,
    /// Whether the original was sent with SMTPUTF8 (RFC 6533 forms then).
    pub smtputf8: bool,
    /// How much of the original to return.
    pub ret: Return,
    /// The recipients to report on (all of one kind of action, or mixed).
    pub recipients: Vec<RecipientStatus>,
    /// The original message as queued.
    pub original: &'a [u8],
}

/// A composed report: its content and what sending it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    /// The whole message, CRLF line endings.
    pub message: Vec<u8>,
    /// It holds 8-bit octets (from the original): send with `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// It needs SMTPUTF8 (an internationalized address).
    pub smtputf8: bool,
}

impl Report<'_> {
    /// The report as a message from `MAILER-DAEMON@hostname` to the sender, dated `now`;
    /// `token` (random, letters and digits) makes the Message-ID and MIME boundary unique.
    pub fn compose(&self, now: SystemTime, token: &str) -> Composed {
        let utf8 = self.smtputf8
            || !self.sender.is_ascii()
            || self.recipients.iter().any(|r| !r.recipient.is_ascii());
        let eight_bit = self.ret == Return::Full && !self.original.is_ascii()
            || self.ret == Return::Headers && !headers(self.original).is_ascii();
        let mut boundary = format!("{token}/{}", self.hostname);
        while contains(self.original, boundary.as_bytes()) {
            boundary.push('=');
        }
        let (subject, summary) = self.subject();
        let mut m = String::new();
        let _ = write!(
            m,
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
             To: <{sender}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <{token}.dsn@{host}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"{boundary}\"\r\n\
             \r\n\
             This is a MIME-encapsulated message.\r\n\
             \r\n",
            host = self.hostname,
            sender = self.sender,
            date = rfc5322(now),
        );
        // The text for people.
        let _ = write!(
            m,
            "--{boundary}\r\n\
             Content-Description: Notification\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             This is the mail system at host {host}.\r\n\
             \r\n\
             {summary}\r\n\
             \r\n",
            host = self.hostname,
        );
        for r in &self.recipients {
            let _ = write!(m, "<{}>: ", r.recipient);
            match (&r.remote_mta, r.diagnostic.as_ref().or(r.detail.as_ref())) {
                (Some(mta), Some(d)) => {
                    let _ = write!(m, "host {mta} said: {}\r\n", one_line(d));
                }
                (None, Some(d)) => {
                    let _ = write!(m, "{}\r\n", one_line(d));
                }
                _ => {
                    let _ = write!(m, "{}\r\n", r.action.as_str());
                }
            }
        }
        let _ = write!(m, "\r\nQueue id of your message: {}\r\n\r\n", self.queue_id);
        // The machine-readable part (RFC 3464 §2).
        let (status_type, address_type) = if utf8 {
            ("message/global-delivery-status", "utf-8")
        } else {
            ("message/delivery-status", "rfc822")
        };
        let _ = write!(
            m,
            "--{boundary}\r\n\
             Content-Description: Delivery report\r\n\
             Content-Type: {status_type}\r\n\
             \r\n\
             Reporting-MTA: dns; {host}\r\n",
            host = self.hostname,
        );
        if let Some(envid) = self.envid {
            let _ = write!(m, "Original-Envelope-Id: {}\r\n", one_line(envid));
        }
        let _ = write!(m, "Arrival-Date: {}\r\n", rfc5322(self.arrived));
        for r in &self.recipients {
            let (c, s, d) = r.status;
            let _ = write!(
                m,
                "\r\nFinal-Recipient: {address_type}; {}\r\n",
                r.recipient
            );
            if let Some((kind, addr)) = &r.original {
                let _ = write!(
                    m,
                    "Original-Recipient: {}; {}\r\n",
                    one_line(kind),
                    one_line(addr)
                );
            }
            let _ = write!(
                m,
                "Action: {}\r\nStatus: {c}.{s}.{d}\r\n",
                r.action.as_str()
            );
            if let Some(mta) = &r.remote_mta {
                let _ = write!(m, "Remote-MTA: dns; {}\r\n", one_line(mta));
            }
            match (&r.diagnostic, &r.detail) {
                (Some(d), _) => {
                    let _ = write!(m, "Diagnostic-Code: smtp; {}\r\n", one_line(d));
                }
                (None, Some(d)) => {
                    let _ = write!(m, "Diagnostic-Code: X-Smtp-Relay; {}\r\n", one_line(d));
                }
                (None, None) => {}
            }
            if let Some(t) = r.last_attempt {
                let _ = write!(m, "Last-Attempt-Date: {}\r\n", rfc5322(t));
            }
            if let Some(t) = r.will_retry_until {
                let _ = write!(m, "Will-Retry-Until: {}\r\n", rfc5322(t));
            }
        }
        m.push_str("\r\n");
        // The original, whole or its header.
        let mut message = m.into_bytes();
        let (kind, description, content) = match (self.ret, utf8) {
            (Return::Full, false) => ("message/rfc822", "Undelivered Message", self.original),
            (Return::Full, true) => ("message/global", "Undelivered Message", self.original),
            (Return::Headers, false) => (
                "text/rfc822-headers",
                "Undelivered Message Headers",
                headers(self.original),
            ),
            (Return::Headers, true) => (
                "message/global-headers",
                "Undelivered Message Headers",
                headers(self.original),
            ),
        };
        let encoding = if content.is_ascii() { "7bit" } else { "8bit" };
        let _ = write!(
            Sink(&mut message),
            "--{boundary}\r\n\
             Content-Description: {description}\r\n\
             Content-Type: {kind}\r\n\
             Content-Transfer-Encoding: {encoding}\r\n\
             \r\n"
        );
        message.extend_from_slice(content);
        if !content.ends_with(b"\r\n") {
            message.extend_from_slice(b"\r\n");
        }
        let _ = write!(Sink(&mut message), "\r\n--{boundary}--\r\n");
        Composed {
            message,
            eight_bit,
            smtputf8: utf8,
        }
    }

    /// The subject and the sentence before the list of recipients.
    fn subject(&self) -> (&'static str, &'static str) {
        let any = |a| self.recipients.iter().any(|r| r.action == a);
        if any(Action::Failed) {
            (
                "Undelivered Mail Returned to Sender",
                "I'm sorry to have to inform you that your message could not be delivered\r\n\
                 to one or more recipients. It's attached below.",
            )
        } else if any(Action::Delayed) {
            (
                "Delayed Mail (still being retried)",
                "Your message could not be delivered yet to one or more recipients.\r\n\
                 It will be retried until it is too old; you need not send it again.",
            )
        } else {
            (
                "Successful Mail Delivery Report",
                "Your message was successfully delivered to the destination(s) listed\r\n\
                 below. If the message was delivered to mailbox you will receive no\r\n\
                 further notifications. Otherwise you may still receive notifications of\r\n\
                 mail delivery errors from other systems.",
            )
        }
    }
}

/// The header section of a message (without the empty line).
fn headers(message: &[u8]) -> &[u8] {
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(i) => &message[..i + 2],
        None => message,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A field value on one line: CR and LF (never expected) become spaces.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// `write!` into bytes.
struct Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

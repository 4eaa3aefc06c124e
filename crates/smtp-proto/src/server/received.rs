//! The `Received:` trace header a server adds to every message it takes (RFC 5321 §4.4),
//! from what the session knows: the client's HELO name and address, the protocol (RFC
//! 3848, RFC 6531), this server's name, the host's queue id and the date the host
//! formats (the core reads no clock).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::address::{ForwardPath, Host};
use crate::command::Verb;

use super::PeerInfo;

/// What a `Received:` header says, borrowed from the session.
pub(crate) struct Trace<'a> {
    pub(crate) helo: Option<&'a (Verb, Host<'static>)>,
    pub(crate) peer: &'a PeerInfo,
    pub(crate) hostname: &'a str,
    pub(crate) lmtp: bool,
    /// The transaction asked for SMTPUTF8.
    pub(crate) utf8: bool,
    pub(crate) tls: bool,
    pub(crate) authenticated: bool,
    /// The one recipient the copy is for, if it is for one only.
    pub(crate) recipient: Option<&'a ForwardPath<'static>>,
}

impl Trace<'_> {
    /// The `with` protocol name: RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA, LMTP...) and
    /// RFC 6531 §3.7.3 (UTF8SMTP...).
    fn protocol(&self) -> String {
        let base = match (self.lmtp, self.utf8, self.helo.map(|h| h.0)) {
            (true, _, _) => "LMTP",
            (false, true, _) => "UTF8SMTP",
            (false, false, Some(Verb::Helo)) => "SMTP",
            _ => "ESMTP",
        };
        let mut proto = base.to_owned();
        if base != "SMTP" {
            if self.tls {
                proto.push('S');
            }
            if self.authenticated {
                proto.push('A');
            }
        }
        proto
    }

    /// The header, folded, with CRLF line endings. Control characters in what the host
    /// passes (`id`, `date`, the peer's name) are dropped: none may break the header.
    pub(crate) fn header(&self, id: &str, date: &str) -> String {
        let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
        let mut out = String::from("Received: from ");
        match self.helo {
            Some((_, host)) => {
                let _ = write!(out, "{host}");
            }
            None => out.push_str("unknown"),
        }
        match (&self.peer.name, self.peer.addr) {
            (Some(name), Some(addr)) => {
                let _ = write!(out, " ({} [{}])", clean(name), addr_literal(addr));
            }
            (None, Some(addr)) => {
                let _ = write!(out, " ([{}])", addr_literal(addr));
            }
            _ => {}
        }
        let _ = write!(
            out,
            "\r\n\tby {} with {} id {}",
            self.hostname,
            self.protocol(),
            clean(id)
        );
        if let Some(to) = self.recipient {
            let _ = write!(out, "\r\n\tfor {to}");
        }
        let _ = write!(out, ";\r\n\t{}\r\n", clean(date));
        out
    }
}

/// An address literal as RFC 5321 §4.1.3 writes it, without its brackets.
fn addr_literal(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("IPv6:{a}"),
    }
}

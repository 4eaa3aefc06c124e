//! `smtp serve`'s decisions that need no storage: relay control (`--local-domain`) and
//! AUTH against the `--auth-file`. Pure functions of the session and the configuration,
//! shared by the tokio and the blocking hosts.

use smtp_proto::ForwardPath;
use smtp_proto::Reply;
use smtp_proto::sasl::Credentials;
use smtp_proto::server::{Refusal, Session};

use crate::passwords::PasswordFile;

/// A host's answer: the core's `Decision`, which both adapters take as it is.
pub(crate) use smtp_proto::server::Decision as Verdict;

/// The relay refusal when the recipient cannot be named in it.
const RELAY_DENIED: Verdict = Verdict::Reject(Refusal::constant(Reply::fixed(
    554,
    Some((5, 7, 1)),
    "Relay access denied",
)));

/// Who may send to whom.
#[derive(Default)]
pub(crate) struct Policy {
    users: PasswordFile,
    /// Lower case, no trailing dot; empty: accept every recipient.
    local_domains: Vec<String>,
}

impl Policy {
    pub(crate) fn new(users: PasswordFile, local_domains: &[String]) -> Policy {
        Policy {
            users,
            local_domains: local_domains
                .iter()
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// RCPT TO: with no local domain every recipient is accepted (a sink); otherwise a
    /// recipient elsewhere only from an authenticated session.
    pub(crate) fn rcpt(&self, session: &Session, to: &ForwardPath<'_>) -> Verdict {
        if self.local_domains.is_empty() || self.is_local(to) || session.authenticated().is_some() {
            Verdict::Accept
        } else {
            // The path prints without CR or LF, so only a bug could refuse this reply.
            Verdict::reject(554, (5, 7, 1), format!("{to}: Relay access denied"))
                .unwrap_or(RELAY_DENIED)
        }
    }

    fn is_local(&self, to: &ForwardPath<'_>) -> bool {
        match to.mailbox() {
            // RFC 5321 §4.1.1.3: <Postmaster> is always accepted.
            None => true,
            Some(m) => {
                let domain = m.host().to_string();
                let domain = domain.trim_end_matches('.');
                self.local_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(domain))
            }
        }
    }

    /// Whether [`Policy::auth`] will spend real CPU time on a slow password hash.
    pub(crate) fn auth_is_slow(&self, credentials: &Credentials) -> bool {
        credentials
            .identity()
            .is_some_and(|user| self.users.verify_is_slow(user))
    }

    /// AUTH: the credentials must be the user's own, and an authorization identity other
    /// than one's own is not granted.
    pub(crate) fn auth(&self, credentials: &Credentials) -> Verdict {
        let ok = credentials.identity().is_some_and(|user| {
            credentials
                .authorization_identity()
                .is_none_or(|authz| authz == user)
                && self.users.verify(user, credentials)
        });
        if ok {
            Verdict::Accept
        } else {
            smtp_proto::server::host::CREDENTIALS_INVALID
        }
    }
}

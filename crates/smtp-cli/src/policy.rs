//! `smtp serve`'s decisions that need no storage: relay control (`--local-domain`,
//! `--relay-domain`, `--relay-network`) and AUTH against the `--auth-file`. Pure
//! functions of the session and the configuration, shared by the tokio and the blocking
//! hosts.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

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
    /// Replaced on SIGHUP; each AUTH takes the current users.
    users: RwLock<Arc<PasswordFile>>,
    /// Lower case, no trailing dot; empty: accept every recipient.
    local_domains: Vec<String>,
    /// `None`: no relay option was given, and nothing is relayed.
    relaying: Option<Relaying>,
}

/// Who may relay, when relaying is configured.
#[derive(Debug, Default)]
pub(crate) struct Relaying {
    /// `--relay-domain`: lower case, no trailing dot; relayed for anyone.
    pub(crate) domains: Vec<String>,
    /// `--relay-network`: clients that relay without AUTH.
    pub(crate) networks: Vec<Network>,
}

/// What becomes of an accepted recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    /// Stored in the Maildir.
    Local,
    /// Queued for relay.
    Relay,
}

impl Policy {
    pub(crate) fn new(
        users: PasswordFile,
        local_domains: &[String],
        relaying: Option<Relaying>,
    ) -> Policy {
        Policy {
            users: RwLock::new(Arc::new(users)),
            local_domains: local_domains.iter().map(|d| normalize(d)).collect(),
            relaying,
        }
    }

    /// RCPT TO. Without relaying: with no local domain every recipient is accepted (a
    /// sink), otherwise a recipient elsewhere only from an authenticated session. With
    /// relaying, a recipient elsewhere is accepted (and relayed) from an authenticated
    /// client, a client in a `--relay-network`, or for a `--relay-domain`; and a client
    /// that may not relay cannot route through a local or relay domain either (a `%`,
    /// `!` or `@` in the local part: Postfix's `allow_untrusted_routing = no`). Fail
    /// closed: anything else is `554 5.7.1`.
    pub(crate) fn rcpt(&self, session: &Session, client: IpAddr, to: &ForwardPath<'_>) -> Verdict {
        let trusted = session.authenticated().is_some();
        let allowed = match &self.relaying {
            None => self.local_domains.is_empty() || self.is_local(to) || trusted,
            Some(relaying) => {
                let trusted = trusted || relaying.networks.iter().any(|n| n.contains(client));
                let routed = to
                    .mailbox()
                    .is_some_and(|m| m.local_part().contains(['%', '!', '@']));
                trusted || (!routed && (self.is_local(to) || relaying.is_relay_domain(to)))
            }
        };
        if allowed {
            Verdict::Accept
        } else {
            // The path prints without CR or LF, so only a bug could refuse this reply.
            Verdict::reject(554, (5, 7, 1), format!("{to}: Relay access denied"))
                .unwrap_or(RELAY_DENIED)
        }
    }

    /// Where an accepted recipient goes: relayed when relaying is configured and its
    /// domain is not local, else stored.
    pub(crate) fn destination(&self, to: &ForwardPath<'_>) -> Destination {
        if self.relaying.is_some() && !self.is_local(to) {
            Destination::Relay
        } else {
            Destination::Local
        }
    }

    fn is_local(&self, to: &ForwardPath<'_>) -> bool {
        match to.mailbox() {
            // RFC 5321 §4.1.1.3: <Postmaster> is always accepted.
            None => true,
            Some(m) => {
                let domain = normalize(&m.host().to_string());
                self.local_domains.contains(&domain)
            }
        }
    }

    /// The `--auth-file` users as they are now.
    pub(crate) fn users(&self) -> Arc<PasswordFile> {
        Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the users (a reload of the `--auth-file`); sessions see them at their
    /// next AUTH.
    pub(crate) fn set_users(&self, users: PasswordFile) {
        *self.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
    }

    /// Whether [`Policy::auth`] will spend real CPU time on a slow password hash.
    pub(crate) fn auth_is_slow(&self, credentials: &Credentials) -> bool {
        credentials
            .identity()
            .is_some_and(|user| self.users().verify_is_slow(user))
    }

    /// AUTH: the credentials must be the user's own, and an authorization identity other
    /// than one's own is not granted.
    pub(crate) fn auth(&self, credentials: &Credentials) -> Verdict {
        let ok = credentials.identity().is_some_and(|user| {
            credentials
                .authorization_identity()
                .is_none_or(|authz| authz == user)
                && self.users().verify(user, credentials)
        });
        if ok {
            Verdict::Accept
        } else {
            smtp_proto::server::host::CREDENTIALS_INVALID
        }
    }
}

impl Relaying {
    fn is_relay_domain(&self, to: &ForwardPath<'_>) -> bool {
        to.mailbox().is_some_and(|m| {
            let domain = normalize(&m.host().to_string());
            self.domains.contains(&domain)
        })
    }
}

/// Lower case, without the trailing dot of a fully qualified name.
pub(crate) fn normalize(domain: &str) -> String {
    domain.trim_end_matches('.').to_lowercase()
}

/// An IPv4 or IPv6 network, `192.0.2.0/24` or `2001:db8::/32` (a bare address is the
/// network of that address alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in the network; an IPv4 address mapped into IPv6 (a client on a
    /// dual-stack listener) counts as the IPv4 address.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let bits = usize::from(prefix);
    let whole = bits / 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let bad =
            || format!("{s:?}: expected an address or CIDR network (192.0.2.0/24, 2001:db8::/32)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.0/8", "127.1.2.3", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("192.0.2.128/25", "192.0.2.200", true),
            ("192.0.2.128/25", "192.0.2.100", false),
            ("192.0.2.1", "192.0.2.1", true),
            ("192.0.2.1", "192.0.2.2", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("127.0.0.1/32", "::ffff:127.0.0.1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::1/128", "::1", true),
            ("::/0", "127.0.0.1", false),
        ];
        for (net, ip, inside) in cases {
            let n: Network = net.parse().unwrap();
            assert_eq!(n.contains(ip.parse().unwrap()), *inside, "{net} {ip}");
        }
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "x/8", "10.0.0.0/"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }
}

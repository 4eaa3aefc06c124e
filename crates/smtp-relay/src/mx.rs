//! From a DNS answer for a domain's MX records to the ordered list of hosts to try
//! (RFC 5321 §5.1), or the reason there is none.
//!
//! - Hosts by preference, lowest first; equal preferences in random order, so that load
//!   spreads as the domain's owner meant.
//! - No MX records (the name exists): the domain itself, an implicit MX of preference 0.
//! - A name that does not exist fails for good (`5.1.2`); a lookup that fails (time-out,
//!   SERVFAIL) is temporary (`4.4.3`), so the recipient is deferred, never bounced.
//! - A null MX (RFC 7505: one record, exchange `.`) means the domain takes no mail
//!   (`5.1.10`).
//! - If this server is one of the exchanges, only hosts more preferred than it are
//!   kept, and none left means the mail would loop (§5.1; Postfix's "mail for … loops
//!   back to myself", `5.4.6`).
//!
//! Pure: the lookup result, this server's names and the randomness come in.

use std::collections::HashSet;
use std::fmt;

use crate::route::normalize;

/// One MX record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxRecord {
    /// Lower is tried first.
    pub preference: u16,
    /// The host name (`.` for a null MX).
    pub exchange: String,
}

/// What the MX lookup of a domain gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxAnswer {
    /// Records.
    Records(Vec<MxRecord>),
    /// The name exists and has no MX records (NOERROR, no data).
    NoRecords,
    /// The name does not exist (NXDOMAIN).
    NoSuchDomain,
    /// The lookup failed for now (time-out, SERVFAIL, refused); what the resolver said.
    Failed(String),
}

/// Why a domain has no host to deliver to, as the recipient's status will say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteFailure {
    /// Permanent (the recipient fails) or temporary (it is deferred).
    pub permanent: bool,
    /// The enhanced status code (RFC 3463), e.g. `(5, 1, 2)`.
    pub enhanced: (u8, u16, u16),
    /// What happened, for the log and the bounce.
    pub text: String,
}

impl fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, s, d) = self.enhanced;
        write!(f, "{c}.{s}.{d} {}", self.text)
    }
}

/// The hosts to try for `domain`, in order, given its MX answer, the names this server
/// answers to (its `--hostname`, lower case) and a source of random numbers.
///
/// ```
/// use smtp_relay::mx::{hosts, MxAnswer, MxRecord};
///
/// let answer = MxAnswer::Records(vec![
///     MxRecord { preference: 20, exchange: "backup.example.org.".into() },
///     MxRecord { preference: 10, exchange: "mx1.example.org.".into() },
/// ]);
/// let order = hosts("example.org", &answer, &[], &mut || 7).unwrap();
/// assert_eq!(order, ["mx1.example.org", "backup.example.org"]);
/// ```
pub fn hosts(
    domain: &str,
    answer: &MxAnswer,
    local_names: &[String],
    random: &mut impl FnMut() -> u64,
) -> Result<Vec<String>, RouteFailure> {
    let domain = normalize(domain);
    let mut records = match answer {
        MxAnswer::Records(r) if !r.is_empty() => r.clone(),
        MxAnswer::Records(_) | MxAnswer::NoRecords => return Ok(vec![domain]),
        MxAnswer::NoSuchDomain => {
            let text = format!("Host or domain name not found: {domain}");
            return Err(RouteFailure {
                permanent: true,
                enhanced: (5, 1, 2),
                text,
            });
        }
        MxAnswer::Failed(why) => {
            let text = format!("Host or domain name lookup failed for {domain}: {why}");
            return Err(RouteFailure {
                permanent: false,
                enhanced: (4, 4, 3),
                text,
            });
        }
    };
    for r in &mut records {
        r.exchange = normalize(&r.exchange);
    }
    // RFC 7505 §3: a null MX is the only record; treat one anywhere the same way.
    if records.iter().any(|r| r.exchange.is_empty()) {
        let text = format!("Domain {domain} does not accept mail (null MX)");
        return Err(RouteFailure {
            permanent: true,
            enhanced: (5, 1, 10),
            text,
        });
    }
    records.sort_by_key(|r| r.preference);
    let local = local_names
        .iter()
        .map(|n| normalize(n))
        .collect::<HashSet<_>>();
    if let Some(own) = records.iter().find(|r| local.contains(&r.exchange)) {
        let own = own.preference;
        records.retain(|r| r.preference < own);
        if records.is_empty() {
            let text = format!("mail for {domain} loops back to myself");
            return Err(RouteFailure {
                permanent: true,
                enhanced: (5, 4, 6),
                text,
            });
        }
    }
    // Shuffle each run of equal preference (Fisher-Yates with the caller's randomness).
    let mut start = 0;
    while start < records.len() {
        let pref = records[start].preference;
        let end = start
            + records[start..]
                .iter()
                .take_while(|r| r.preference == pref)
                .count();
        for i in (start + 1..end).rev() {
            let j = start + (random() % (i - start + 1) as u64) as usize;
            records.swap(i, j);
        }
        start = end;
    }
    let mut seen = HashSet::new();
    Ok(records
        .into_iter()
        .map(|r| r.exchange)
        .filter(|h| seen.insert(h.clone()))
        .collect())
}

/// A recipient's domain checked at RCPT time (an opt-in of the server, like Postfix's
/// `reject_unknown_recipient_domain`): `Ok` when mail can be routed there (MX records, or
/// none and the name exists), else the reply code to refuse the recipient with and why:
/// `556 5.1.10` for a null MX (RFC 7505 §4.2), `550 5.1.2` for a domain that does not
/// exist, `450 4.4.3` when the lookup failed (try again later).
///
/// ```
/// use smtp_relay::mx::{rcpt_check, MxAnswer, MxRecord};
///
/// let null = MxAnswer::Records(vec![MxRecord { preference: 0, exchange: ".".into() }]);
/// let refusal = rcpt_check("example.com", &null).unwrap_err();
/// assert_eq!((refusal.0, refusal.1.enhanced), (556, (5, 1, 10)));
/// assert!(rcpt_check("example.com", &MxAnswer::NoRecords).is_ok());
/// ```
pub fn rcpt_check(domain: &str, answer: &MxAnswer) -> Result<(), (u16, RouteFailure)> {
    match hosts(domain, answer, &[], &mut || 0) {
        Ok(_) => Ok(()),
        Err(f) => {
            let code = match (f.permanent, f.enhanced) {
                (true, (5, 1, 10)) => 556,
                (true, _) => 550,
                (false, _) => 450,
            };
            Err((code, f))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(list: &[(u16, &str)]) -> MxAnswer {
        MxAnswer::Records(
            list.iter()
                .map(|(p, e)| MxRecord {
                    preference: *p,
                    exchange: (*e).into(),
                })
                .collect(),
        )
    }

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0u64;
        move || {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            n >> 33
        }
    }

    #[test]
    fn by_preference_then_random_within() {
        let answer = mx(&[
            (20, "c.example."),
            (10, "a.example."),
            (10, "b.example."),
            (30, "d"),
        ]);
        let mut seen = HashSet::new();
        let mut rng = counter();
        for _ in 0..50 {
            let order = hosts("example", &answer, &[], &mut rng).unwrap();
            assert_eq!(order.len(), 4);
            assert_eq!(&order[2..], ["c.example", "d"]);
            seen.insert(order[0].clone());
        }
        // Both equally preferred hosts come first sometimes.
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn implicit_mx_and_failures() {
        let mut r = counter();
        assert_eq!(
            hosts("Example.ORG.", &MxAnswer::NoRecords, &[], &mut r).unwrap(),
            ["example.org"]
        );
        assert_eq!(
            hosts("example.org", &mx(&[]), &[], &mut r).unwrap(),
            ["example.org"]
        );
        let e = hosts("nx.example", &MxAnswer::NoSuchDomain, &[], &mut r).unwrap_err();
        assert!(e.permanent);
        assert_eq!(e.enhanced, (5, 1, 2));
        let e = hosts(
            "x.example",
            &MxAnswer::Failed("SERVFAIL".into()),
            &[],
            &mut r,
        )
        .unwrap_err();
        assert!(!e.permanent);
        assert_eq!(
            e.to_string(),
            "4.4.3 Host or domain name lookup failed for x.example: SERVFAIL"
        );
        let e = hosts("null.example", &mx(&[(0, ".")]), &[], &mut r).unwrap_err();
        assert_eq!((e.permanent, e.enhanced), (true, (5, 1, 10)));
    }

    #[test]
    fn never_to_ourselves() {
        let mut r = counter();
        let me = ["MX2.example.org".to_string()];
        let answer = mx(&[
            (10, "mx1.example.org"),
            (20, "mx2.example.org."),
            (30, "mx3.example.org"),
        ]);
        assert_eq!(
            hosts("example.org", &answer, &me, &mut r).unwrap(),
            ["mx1.example.org"]
        );
        let answer = mx(&[(10, "mx2.example.org"), (20, "mx3.example.org")]);
        let e = hosts("example.org", &answer, &me, &mut r).unwrap_err();
        assert_eq!((e.permanent, e.enhanced), (true, (5, 4, 6)));
    }

    #[test]
    fn duplicates_once() {
        let mut r = counter();
        let answer = mx(&[(10, "a.example"), (20, "A.example.")]);
        assert_eq!(
            hosts("example", &answer, &[], &mut r).unwrap(),
            ["a.example"]
        );
    }
}

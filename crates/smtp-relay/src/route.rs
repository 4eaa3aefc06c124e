//! Which next hop a recipient domain goes to: a static route (`--transport`, Postfix's
//! `transport_maps`), else the smarthost (`--relay-host`), else the domain's MX hosts
//! (RFC 5321 §5.1, see [`crate::mx`]).
//!
//! A route is also the key recipients are grouped by: one transaction carries every
//! recipient of a message that shares a route.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A host and port to connect to, without an MX lookup.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// A host name (resolved to A/AAAA) or an IP address.
    pub host: HopHost,
    /// The TCP port.
    pub port: u16,
}

/// The host part of a [`NextHop`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HopHost {
    /// A name, lower case, without a trailing dot.
    Name(String),
    /// An IP address.
    Ip(IpAddr),
}

/// Why a route or next hop could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Not `HOST:PORT`.
    #[error("{0:?}: expected HOST:PORT ([IPv6]:PORT for an IPv6 address)")]
    NextHop(String),
    /// Not `DOMAIN=HOST:PORT`.
    #[error("{0:?}: expected DOMAIN=HOST:PORT or .DOMAIN=HOST:PORT")]
    Transport(String),
}

impl FromStr for NextHop {
    type Err = RouteError;

    /// `host:port`, `1.2.3.4:port`, `[2001:db8::1]:port`; Postfix's `[host]:port` (the
    /// brackets meaning "no MX lookup", which every next hop is) is read too.
    fn from_str(s: &str) -> Result<NextHop, RouteError> {
        let bad = || RouteError::NextHop(s.to_owned());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => HopHost::Ip(ip),
            Err(_) if is_host_name(host) => HopHost::Name(normalize(host)),
            Err(_) => return Err(bad()),
        };
        Ok(NextHop { host, port })
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HopHost::Name(name) => write!(f, "{name}:{}", self.port),
            HopHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            HopHost::Ip(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}

/// Where one recipient domain's mail goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// Straight to this host (a static route, the smarthost, or an address literal).
    Static(NextHop),
    /// To the MX hosts of this domain (lower case, no trailing dot), on this port.
    Mx {
        /// The domain whose MX records to look up.
        domain: String,
        /// The port for the hosts found (`--mx-port`, 25).
        port: u16,
    },
}

/// The routing table of a relay.
///
/// ```
/// use smtp_relay::{Route, Routes};
///
/// let mut routes = Routes::new(25);
/// routes.add_transport("example.com=10.0.0.1:2525").unwrap();
/// routes.add_transport(".example.com=10.0.0.2:25").unwrap();
/// assert_eq!(routes.route("Example.COM.").to_string(), "10.0.0.1:2525");
/// assert_eq!(routes.route("mx.eu.example.com").to_string(), "10.0.0.2:25");
/// assert_eq!(routes.route("example.net"), Route::Mx { domain: "example.net".into(), port: 25 });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// `example.com=…`: that domain only.
    exact: HashMap<String, NextHop>,
    /// `.example.com=…`: its subdomains (keyed without the dot).
    parents: HashMap<String, NextHop>,
    relay_host: Option<NextHop>,
    mx_port: u16,
}

impl Routes {
    /// An empty table: every domain goes to its MX hosts on `mx_port`.
    pub fn new(mx_port: u16) -> Routes {
        Routes {
            mx_port,
            ..Routes::default()
        }
    }

    /// Adds a static route, `DOMAIN=HOST:PORT` (that domain, any case) or
    /// `.DOMAIN=HOST:PORT` (its subdomains). A later route for the same key replaces an
    /// earlier one.
    pub fn add_transport(&mut self, spec: &str) -> Result<(), RouteError> {
        let bad = || RouteError::Transport(spec.to_owned());
        let (domain, hop) = spec.split_once('=').ok_or_else(bad)?;
        let hop: NextHop = hop.parse()?;
        let (table, domain) = match domain.strip_prefix('.') {
            Some(parent) => (&mut self.parents, parent),
            None => (&mut self.exact, domain),
        };
        if !is_host_name(domain) {
            return Err(bad());
        }
        table.insert(normalize(domain), hop);
        Ok(())
    }

    /// Sends everything that has no static route to this smarthost.
    pub fn set_relay_host(&mut self, hop: NextHop) {
        self.relay_host = Some(hop);
    }

    /// Whether `route` is the smarthost's (AUTH applies to it only).
    pub fn is_smarthost(&self, route: &Route) -> bool {
        matches!((route, &self.relay_host), (Route::Static(hop), Some(relay)) if hop == relay)
    }

    /// Whether any route other than MX is configured.
    pub fn is_static(&self) -> bool {
        self.relay_host.is_some() || !self.exact.is_empty() || !self.parents.is_empty()
    }

    /// The route for a recipient domain (a name, or an address literal such as
    /// `[192.0.2.1]` or `[IPv6:2001:db8::1]`): the exact static route, else the static
    /// route of the closest parent, else the smarthost, else MX. An address literal goes
    /// to that address on the MX port unless a smarthost takes everything.
    pub fn route(&self, domain: &str) -> Route {
        let domain = normalize(domain);
        if let Some(hop) = self.exact.get(&domain) {
            return Route::Static(hop.clone());
        }
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(hop) = self.parents.get(parent) {
                return Route::Static(hop.clone());
            }
            rest = parent;
        }
        if let Some(hop) = &self.relay_host {
            return Route::Static(hop.clone());
        }
        match literal(&domain) {
            Some(ip) => Route::Static(NextHop {
                host: HopHost::Ip(ip),
                port: self.mx_port,
            }),
            None => Route::Mx {
                domain,
                port: self.mx_port,
            },
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Static(hop) => hop.fmt(f),
            Route::Mx { domain, port } => write!(f, "MX {domain}:{port}"),
        }
    }
}

/// Lower case, without the trailing dot of a fully qualified name.
pub(crate) fn normalize(domain: &str) -> String {
    domain.strip_suffix('.').unwrap_or(domain).to_lowercase()
}

/// The address of an RFC 5321 §4.1.3 address literal.
fn literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.strip_prefix("ipv6:") {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// Letters, digits, hyphens and dots (and UTF-8 for internationalized names), with no
/// empty label.
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(s: &str) -> NextHop {
        s.parse().unwrap()
    }

    #[test]
    fn next_hops() {
        assert_eq!(
            hop("mail.example.org:587").host,
            HopHost::Name("mail.example.org".into())
        );
        assert_eq!(
            hop("Mail.Example.ORG.:25").to_string(),
            "mail.example.org:25"
        );
        assert_eq!(hop("127.0.0.1:2525").to_string(), "127.0.0.1:2525");
        assert_eq!(hop("[::1]:2525").to_string(), "[::1]:2525");
        assert_eq!(hop("[relay.example]:25").to_string(), "relay.example:25");
        for bad in [
            "",
            "host",
            "host:",
            ":25",
            "host:0",
            "host:65536",
            "::1:25",
            "a b:25",
            "a..b:25",
            "[::1:25",
        ] {
            assert!(bad.parse::<NextHop>().is_err(), "{bad}");
        }
    }

    #[test]
    fn static_routes_like_transport_maps() {
        let mut r = Routes::new(25);
        r.add_transport("example.com=10.0.0.1:25").unwrap();
        r.add_transport(".example.com=10.0.0.2:25").unwrap();
        r.add_transport(".eu.example.com=10.0.0.3:25").unwrap();
        r.add_transport("EU.example.com=10.0.0.4:25").unwrap();
        let to = |d: &str| r.route(d).to_string();
        assert_eq!(to("example.com"), "10.0.0.1:25");
        assert_eq!(to("EXAMPLE.com."), "10.0.0.1:25");
        assert_eq!(to("a.example.com"), "10.0.0.2:25");
        assert_eq!(to("eu.example.com"), "10.0.0.4:25"); // exact beats the parent's
        assert_eq!(to("x.eu.example.com"), "10.0.0.3:25"); // closest parent wins
        assert_eq!(to("example.com.evil.org"), "MX example.com.evil.org:25");
        assert_eq!(to("notexample.com"), "MX notexample.com:25");
        for bad in [
            "example.com",
            "=h:25",
            "example.com=h",
            ".=h:25",
            "a..b=h:25",
        ] {
            assert!(r.add_transport(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn smarthost_and_literals() {
        let mut r = Routes::new(2525);
        assert_eq!(r.route("[192.0.2.1]").to_string(), "192.0.2.1:2525");
        assert_eq!(
            r.route("[IPv6:2001:db8::1]").to_string(),
            "[2001:db8::1]:2525"
        );
        assert!(!r.is_static());
        r.add_transport("example.com=10.0.0.1:25").unwrap();
        r.set_relay_host(hop("smarthost.example:587"));
        assert!(r.is_static());
        assert_eq!(r.route("example.com").to_string(), "10.0.0.1:25");
        assert_eq!(r.route("example.org").to_string(), "smarthost.example:587");
        assert_eq!(r.route("[192.0.2.1]").to_string(), "smarthost.example:587");
    }
}

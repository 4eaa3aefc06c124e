//! DNS for the relay: MX records and host addresses through `hickory-resolver`, from
//! the servers given (`--dns-server`) or the system's configuration, with answers turned
//! into [`MxAnswer`]s and [`RouteFailure`]s for the pure code in [`crate::mx`].
//!
//! Names are looked up as fully qualified (a trailing dot), so no search domain from
//! `resolv.conf` is ever appended to a recipient's domain.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::mx::{MxAnswer, MxRecord, RouteFailure};

/// A resolver configuration that asks exactly `servers` (`--dns-server`), over UDP and
/// then TCP for truncated answers, with no search domain; for other users of
/// `hickory-resolver` (such as sender authentication) to ask the same servers.
pub fn servers_config(servers: &[SocketAddr]) -> ResolverConfig {
    let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
    for server in servers {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        config.add_name_server(NameServerConfig::new(server.ip(), true, vec![udp, tcp]));
    }
    config
}

/// A resolver for MX and address lookups.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    /// A resolver asking these servers (UDP, then TCP for truncated answers), or the
    /// system's (`/etc/resolv.conf`) when `servers` is empty; each query waits at most
    /// `timeout` per server and attempt.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> io::Result<Dns> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider).map_err(io::Error::other)?
        } else {
            TokioResolver::builder_with_config(servers_config(servers), provider)
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = timeout;
        let resolver = builder.build().map_err(io::Error::other)?;
        Ok(Dns { resolver })
    }

    /// The MX records of `domain`.
    pub async fn mx(&self, domain: &str) -> MxAnswer {
        match self.resolver.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => MxAnswer::Records(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some(MxRecord {
                            preference: mx.preference,
                            exchange: mx.exchange.to_utf8(),
                        }),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(e) if e.is_nx_domain() => MxAnswer::NoSuchDomain,
            Err(e) if e.is_no_records_found() => MxAnswer::NoRecords,
            Err(e) => MxAnswer::Failed(describe(&e)),
        }
    }

    /// The IPv4 and IPv6 addresses of `host`. `implicit` says that `host` is the
    /// recipient domain itself (it had no MX records): then a name without addresses
    /// fails for good, as Postfix bounces it; an MX host without addresses is temporary
    /// (the next host is tried, and the recipient deferred if none is left).
    pub async fn addresses(&self, host: &str, implicit: bool) -> Result<Vec<IpAddr>, RouteFailure> {
        match self.resolver.lookup_ip(fqdn(host)).await {
            Ok(lookup) => {
                let found: Vec<IpAddr> = lookup.iter().collect();
                if found.is_empty() {
                    Err(no_address(host, implicit))
                } else {
                    Ok(found)
                }
            }
            Err(e) if e.is_no_records_found() => Err(no_address(host, implicit)),
            Err(e) => Err(RouteFailure {
                permanent: false,
                enhanced: (4, 4, 3),
                text: format!(
                    "Host or domain name lookup failed for {host}: {}",
                    describe(&e)
                ),
            }),
        }
    }
}

fn no_address(host: &str, implicit: bool) -> RouteFailure {
    RouteFailure {
        permanent: implicit,
        enhanced: if implicit { (5, 1, 2) } else { (4, 4, 3) },
        text: format!("Host or domain name not found: no address for {host}"),
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn describe(e: &NetError) -> String {
    match e {
        NetError::Timeout => "timed out".to_owned(),
        e => e.to_string(),
    }
}

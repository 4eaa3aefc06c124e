//! One delivery attempt: the recipients of one message that share a route, to the first
//! host of that route that takes the message (RFC 5321 §5.1: MX hosts by preference, each
//! address of a host in turn; the next one on a connection failure or a greeting that is
//! not 220), with connections kept a little while for the next message to the same place.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use smtp_proto::client::host::Verification;
use smtp_proto::client::{ClientConfig, ClientTimeouts, Envelope, StartTls};
use smtp_proto::sasl::ClientCredentials;
use smtp_tokio::{Connection, Connector};
use tokio::net::TcpStream;
use tracing::debug;

use crate::dns::Dns;
use crate::mx::{self, MxAnswer, RouteFailure};
use crate::outcome::{Verdict, Why, verdicts};
use crate::route::{HopHost, NextHop, Route};

/// How the relay uses TLS towards the next hop (`--relay-tls`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsPolicy {
    /// STARTTLS with a verified certificate, or nothing is sent.
    Required,
    /// STARTTLS when offered, certificate not checked (Postfix's `may`: encryption
    /// against passive listeners; a check that failed would only make it plaintext).
    #[default]
    Opportunistic,
    /// Never TLS.
    Never,
    /// TLS from the first octet (RFC 8314), verified.
    Implicit,
}

/// How long an idle connection is kept for the next message to the same route.
const IDLE: Duration = Duration::from_secs(5);

/// How a message may travel, from its envelope and header (RFC 8689).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    /// As `--relay-tls` says.
    Policy,
    /// `REQUIRETLS`: STARTTLS (or implicit TLS) with a verified certificate, to a next
    /// hop that offers REQUIRETLS (the client checks that and passes the parameter on),
    /// else it fails with `5.7.30`.
    RequireTls,
    /// `TLS-Required: No` (RFC 8689 §5): TLS when offered, unverified, even when the
    /// policy requires it.
    TlsOptional,
}

/// The connectors of one [`Mode`].
struct Connectors {
    /// For hosts found by MX and static routes.
    direct: Connector,
    /// For the smarthost (with its credentials).
    smarthost: Connector,
}

/// What every attempt shares: DNS, connectors, the idle connections.
pub(crate) struct Outbound {
    pub(crate) dns: Dns,
    policy: Connectors,
    require_tls: Option<Connectors>,
    tls_optional: Connectors,
    local_names: Vec<String>,
    own: Vec<SocketAddr>,
    connect_timeout: Duration,
    idle: Mutex<Idle>,
}

/// Connections kept after a message, per route and mode: the connection,
/// `host[ip]:port`, since.
type Idle = HashMap<(Route, Mode), Vec<(Connection, String, Instant)>>;

/// The result of one attempt.
pub(crate) struct Attempt {
    /// `host[ip]:port` of the server that answered last, if any did.
    pub(crate) relay: Option<String>,
    /// One per recipient of the group, in order.
    pub(crate) verdicts: Vec<Verdict>,
    /// The server that took the message offered DSN (RFC 3461 §5.2: the parameters
    /// went with it, and it reports from now on).
    pub(crate) dsn: bool,
}

impl Attempt {
    /// Every recipient gets `verdict`; no server answered.
    pub(crate) fn all(verdict: Verdict, n: usize) -> Attempt {
        Attempt {
            relay: None,
            verdicts: vec![verdict; n],
            dsn: false,
        }
    }
}

/// What the relay's configuration says about outbound connections.
pub(crate) struct OutboundConfig<'a> {
    pub(crate) helo: &'a str,
    pub(crate) tls: TlsPolicy,
    pub(crate) verification: Verification,
    pub(crate) credentials: Option<ClientCredentials>,
    pub(crate) local_names: Vec<String>,
    /// This server's listening addresses: a next hop there is a loop.
    pub(crate) own: Vec<SocketAddr>,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeouts: ClientTimeouts,
    pub(crate) dns: Dns,
}

impl Outbound {
    pub(crate) fn new(c: OutboundConfig<'_>) -> Result<Outbound, String> {
        let build = |tls: TlsPolicy, credentials: Option<ClientCredentials>| {
            let mut config =
                ClientConfig::new(c.helo).map_err(|e| format!("--outbound-helo: {e}"))?;
            config.starttls = match tls {
                TlsPolicy::Required => StartTls::Required,
                TlsPolicy::Opportunistic => StartTls::Opportunistic,
                TlsPolicy::Never | TlsPolicy::Implicit => StartTls::Never,
            };
            // AUTH only inside TLS, unless the operator said there is none.
            config.allow_cleartext_auth = c.tls == TlsPolicy::Never;
            config.credentials = credentials;
            config.timeouts = c.timeouts;
            // A kept connection is checked with RSET before its next message.
            config.reset_between = true;
            let verification = match tls {
                TlsPolicy::Opportunistic => Verification::Insecure,
                _ => c.verification.clone(),
            };
            Connector::builder(config)
                .verification(verification)
                .implicit_tls(tls == TlsPolicy::Implicit)
                .connect_timeout(c.connect_timeout)
                .build()
                .map_err(|e| e.to_string())
        };
        let connectors = |tls: TlsPolicy| -> Result<Connectors, String> {
            Ok(Connectors {
                direct: build(tls, None)?,
                smarthost: build(tls, c.credentials.clone())?,
            })
        };
        // REQUIRETLS: verified TLS whatever the policy, implicit where the policy is.
        let require_tls = match c.tls {
            TlsPolicy::Never => None,
            TlsPolicy::Implicit => Some(connectors(TlsPolicy::Implicit)?),
            TlsPolicy::Required | TlsPolicy::Opportunistic => {
                Some(connectors(TlsPolicy::Required)?)
            }
        };
        let tls_optional = match c.tls {
            TlsPolicy::Required => TlsPolicy::Opportunistic,
            other => other,
        };
        Ok(Outbound {
            policy: connectors(c.tls)?,
            require_tls,
            tls_optional: connectors(tls_optional)?,
            dns: c.dns,
            local_names: c.local_names,
            own: c.own,
            connect_timeout: c.connect_timeout,
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `addr` is one of this server's listening addresses (one listening on
    /// `0.0.0.0` or `::` listens on every address of the machine).
    fn is_own(&self, addr: SocketAddr) -> bool {
        self.own
            .iter()
            .any(|own| own.port() == addr.port() && same_host(own.ip(), addr.ip()))
    }

    /// Delivers `envelope` (one group) by `route`; `smarthost` says the route is the
    /// `--relay-host` (so AUTH applies).
    pub(crate) async fn attempt(
        &self,
        route: &Route,
        smarthost: bool,
        mode: Mode,
        envelope: &Envelope,
        body: &[u8],
    ) -> Attempt {
        let n = envelope.recipients.len();
        let connectors = match mode {
            Mode::Policy => &self.policy,
            Mode::TlsOptional => &self.tls_optional,
            Mode::RequireTls => match &self.require_tls {
                Some(c) => c,
                None => {
                    return Attempt::all(
                        Verdict::failed(
                            "5.7.30 REQUIRETLS message and --relay-tls never: not sent",
                        ),
                        n,
                    );
                }
            },
        };
        let key = (route.clone(), mode);
        if let Some((mut conn, relay)) = self.take_idle(&key) {
            let mut reader = body;
            match conn.send(envelope.clone(), &mut reader).await {
                // Closed by the server while it was kept (no reply at all, or a 421
                // before the data): nothing was delivered, so a fresh connection.
                Ok(outcome) if stale(&outcome) => {
                    debug!(%relay, "kept connection was closed by the server");
                }
                Ok(outcome) => {
                    let dsn = offers_dsn(&conn);
                    self.keep(&key, conn, relay.clone());
                    let verdicts = verdicts(&outcome);
                    return Attempt {
                        relay: Some(relay),
                        verdicts,
                        dsn,
                    };
                }
                // A kept connection that the server closed meanwhile: a fresh one.
                Err(e) => debug!(%relay, error = %e, "kept connection failed"),
            }
        }
        let hosts = match self.hosts(route).await {
            Ok(hosts) => hosts,
            Err(f) => return Attempt::all(failure(&f), n),
        };
        let connector = if smarthost {
            &connectors.smarthost
        } else {
            &connectors.direct
        };
        let mut last: Option<(Option<String>, Verdict)> = None;
        'hosts: for (name, port, implicit) in hosts {
            let addrs = match self.addresses(&name, implicit).await {
                Ok(addrs) => addrs,
                Err(f) => {
                    last = Some((None, failure(&f)));
                    continue;
                }
            };
            for ip in addrs {
                let addr = SocketAddr::new(ip, port);
                let relay = format!("{name}[{ip}]:{port}");
                if self.is_own(addr) {
                    // RFC 5321 §5.1: never to ourselves; what is after us in the list is
                    // less preferred than us, so the search ends here (Postfix: "mail
                    // for ... loops back to myself").
                    last = last.or_else(|| {
                        let text = format!("5.4.6 mail for {route} loops back to myself ({relay})");
                        Some((None, Verdict::failed(text)))
                    });
                    break 'hosts;
                }
                let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
                    .await
                {
                    Ok(Ok(tcp)) => tcp,
                    Ok(Err(e)) => {
                        last = Some((None, Verdict::deferred(format!("connect to {relay}: {e}"))));
                        continue;
                    }
                    Err(_) => {
                        last = Some((
                            None,
                            Verdict::deferred(format!("connect to {relay}: timed out")),
                        ));
                        continue;
                    }
                };
                let mut conn = match connector.start(tcp, &name).await {
                    Ok(conn) => conn,
                    // A greeting other than 220, a failed STARTTLS or AUTH: the next
                    // host may do better (Postfix also skips 5xx greetings).
                    Err(e) => {
                        let verdict = match e.session().and_then(greeting_reply) {
                            Some(reply) => Verdict::Deferred(Why {
                                reply: Some(reply.into()),
                                error: None,
                            }),
                            // RFC 8689 §4.2.1: no TLS, no REQUIRETLS message.
                            None if mode == Mode::RequireTls && is_tls_failure(&e) => {
                                Verdict::failed(format!(
                                    "5.7.30 REQUIRETLS: {relay} has no usable TLS: {e}"
                                ))
                            }
                            None => Verdict::deferred(format!("{relay}: {e}")),
                        };
                        last = Some((Some(relay), verdict));
                        continue;
                    }
                };
                let mut reader = body;
                return match conn.send(envelope.clone(), &mut reader).await {
                    Ok(outcome) => {
                        let dsn = offers_dsn(&conn);
                        self.keep(&key, conn, relay.clone());
                        Attempt {
                            relay: Some(relay),
                            verdicts: verdicts(&outcome),
                            dsn,
                        }
                    }
                    Err(e) => Attempt {
                        verdicts: vec![Verdict::deferred(format!("{relay}: {e}")); n],
                        relay: Some(relay),
                        dsn: false,
                    },
                };
            }
        }
        let (relay, verdict) = last.unwrap_or((None, Verdict::deferred("no host to deliver to")));
        Attempt {
            relay,
            verdicts: vec![verdict; n],
            dsn: false,
        }
    }

    /// The hosts to try, in order, with their port and whether the name is the
    /// recipient domain itself (an implicit MX).
    async fn hosts(&self, route: &Route) -> Result<Vec<(String, u16, bool)>, RouteFailure> {
        match route {
            Route::Static(NextHop {
                host: HopHost::Name(name),
                port,
            }) => Ok(vec![(name.clone(), *port, false)]),
            Route::Static(NextHop {
                host: HopHost::Ip(ip),
                port,
            }) => Ok(vec![(ip.to_string(), *port, false)]),
            Route::Mx { domain, port } => {
                let answer = self.dns.mx(domain).await;
                let implicit = matches!(answer, MxAnswer::NoRecords);
                let hosts = mx::hosts(domain, &answer, &self.local_names, &mut || rand_u64())?;
                Ok(hosts.into_iter().map(|h| (h, *port, implicit)).collect())
            }
        }
    }

    async fn addresses(&self, name: &str, implicit: bool) -> Result<Vec<IpAddr>, RouteFailure> {
        match name.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![ip]),
            Err(_) => self.dns.addresses(name, implicit).await,
        }
    }

    fn take_idle(&self, key: &(Route, Mode)) -> Option<(Connection, String)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((conn, relay, since)) = list.pop() {
            if since.elapsed() < IDLE && !conn.is_closed() {
                return Some((conn, relay));
            }
            // Too old: let it go (QUIT in the background).
            tokio::spawn(async move { drop(conn.quit().await) });
        }
        None
    }

    fn keep(&self, key: &(Route, Mode), conn: Connection, relay: String) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(key.clone())
            .or_default()
            .push((conn, relay, Instant::now()));
    }

    /// Says QUIT on every kept connection.
    pub(crate) async fn close_idle(&self) {
        let all: Vec<_> = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.drain().flat_map(|(_, list)| list).collect()
        };
        for (conn, _, _) in all {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
        }
    }
}

/// Whether a message sent on a kept connection failed only because the server had
/// closed it meanwhile: temporary, before the data went (the status says so), with no
/// reply or a 421.
fn stale(outcome: &smtp_proto::client::MessageOutcome) -> bool {
    outcome.status == smtp_proto::client::DeliveryStatus::Temporary
        && outcome.refused.is_none()
        && outcome.reply.as_ref().is_none_or(|r| r.code().get() == 421)
}

/// The reply of a refused greeting.
fn greeting_reply(e: &smtp_proto::client::ClientError) -> Option<&smtp_proto::Reply> {
    match e {
        smtp_proto::client::ClientError::Greeting(reply) => Some(reply),
        _ => None,
    }
}

/// Whether the server offered DSN on this connection (RFC 3461: the client then passed
/// `NOTIFY`, `ORCPT`, `RET` and `ENVID` on).
fn offers_dsn(conn: &Connection) -> bool {
    conn.capabilities().is_some_and(|c| c.dsn)
}

/// A connection that failed for want of TLS: STARTTLS not offered or refused, or the
/// handshake (the certificate) failed.
fn is_tls_failure(e: &smtp_tokio::Error) -> bool {
    use smtp_proto::client::ClientError;
    matches!(e, smtp_tokio::Error::Tls(_))
        || matches!(
            e.session(),
            Some(
                ClientError::TlsUnavailable
                    | ClientError::TlsRefused(_)
                    | ClientError::TlsInjection
            )
        )
}

/// Whether `own` (a listening address) is `ip`: the same address, or a wildcard
/// listener and an address of this machine (one a socket can be bound to).
fn same_host(own: IpAddr, ip: IpAddr) -> bool {
    let (own, ip) = (own.to_canonical(), ip.to_canonical());
    if own == ip {
        return true;
    }
    own.is_unspecified()
        && (ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok())
}

fn failure(f: &RouteFailure) -> Verdict {
    if f.permanent {
        Verdict::failed(f.to_string())
    } else {
        Verdict::deferred(f.to_string())
    }
}

/// A random number for shuffling equal MX preferences.
pub(crate) fn rand_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the clock's nanoseconds are good enough to spread load.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into())
    })
}

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

/// What every attempt shares: DNS, connectors, the idle connections.
pub(crate) struct Outbound {
    pub(crate) dns: Dns,
    /// For hosts found by MX and static routes.
    direct: Connector,
    /// For the smarthost (with its credentials).
    smarthost: Connector,
    local_names: Vec<String>,
    connect_timeout: Duration,
    idle: Mutex<Idle>,
}

/// Connections kept after a message, per route: the connection, `host[ip]:port`, since.
type Idle = HashMap<Route, Vec<(Connection, String, Instant)>>;

/// The result of one attempt.
pub(crate) struct Attempt {
    /// `host[ip]:port` of the server that answered last, if any did.
    pub(crate) relay: Option<String>,
    /// One per recipient of the group, in order.
    pub(crate) verdicts: Vec<Verdict>,
}

/// What the relay's configuration says about outbound connections.
pub(crate) struct OutboundConfig<'a> {
    pub(crate) helo: &'a str,
    pub(crate) tls: TlsPolicy,
    pub(crate) verification: Verification,
    pub(crate) credentials: Option<ClientCredentials>,
    pub(crate) local_names: Vec<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeouts: ClientTimeouts,
    pub(crate) dns: Dns,
}

impl Outbound {
    pub(crate) fn new(c: OutboundConfig<'_>) -> Result<Outbound, String> {
        let build = |credentials: Option<ClientCredentials>| {
            let mut config =
                ClientConfig::new(c.helo).map_err(|e| format!("--outbound-helo: {e}"))?;
            config.starttls = match c.tls {
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
            let verification = match c.tls {
                TlsPolicy::Opportunistic => Verification::Insecure,
                _ => c.verification.clone(),
            };
            Connector::builder(config)
                .verification(verification)
                .implicit_tls(c.tls == TlsPolicy::Implicit)
                .connect_timeout(c.connect_timeout)
                .build()
                .map_err(|e| e.to_string())
        };
        Ok(Outbound {
            direct: build(None)?,
            smarthost: build(c.credentials.clone())?,
            dns: c.dns,
            local_names: c.local_names,
            connect_timeout: c.connect_timeout,
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// Delivers `envelope` (one group) by `route`; `smarthost` says the route is the
    /// `--relay-host` (so AUTH applies).
    pub(crate) async fn attempt(
        &self,
        route: &Route,
        smarthost: bool,
        envelope: &Envelope,
        body: &[u8],
    ) -> Attempt {
        let n = envelope.recipients.len();
        if let Some((mut conn, relay)) = self.take_idle(route) {
            let mut reader = body;
            match conn.send(envelope.clone(), &mut reader).await {
                // Closed by the server while it was kept (no reply at all, or a 421
                // before the data): nothing was delivered, so a fresh connection.
                Ok(outcome) if stale(&outcome) => {
                    debug!(%relay, "kept connection was closed by the server");
                }
                Ok(outcome) => {
                    self.keep(route, conn, relay.clone());
                    let verdicts = verdicts(&outcome);
                    return Attempt {
                        relay: Some(relay),
                        verdicts,
                    };
                }
                // A kept connection that the server closed meanwhile: a fresh one.
                Err(e) => debug!(%relay, error = %e, "kept connection failed"),
            }
        }
        let hosts = match self.hosts(route).await {
            Ok(hosts) => hosts,
            Err(f) => {
                return Attempt {
                    relay: None,
                    verdicts: vec![failure(&f); n],
                };
            }
        };
        let connector = if smarthost {
            &self.smarthost
        } else {
            &self.direct
        };
        let mut last: Option<(Option<String>, Verdict)> = None;
        for (name, port, implicit) in hosts {
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
                            None => Verdict::deferred(format!("{relay}: {e}")),
                        };
                        last = Some((Some(relay), verdict));
                        continue;
                    }
                };
                let mut reader = body;
                return match conn.send(envelope.clone(), &mut reader).await {
                    Ok(outcome) => {
                        self.keep(route, conn, relay.clone());
                        Attempt {
                            relay: Some(relay),
                            verdicts: verdicts(&outcome),
                        }
                    }
                    Err(e) => Attempt {
                        verdicts: vec![Verdict::deferred(format!("{relay}: {e}")); n],
                        relay: Some(relay),
                    },
                };
            }
        }
        let (relay, verdict) = last.unwrap_or((None, Verdict::deferred("no host to deliver to")));
        Attempt {
            relay,
            verdicts: vec![verdict; n],
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

    fn take_idle(&self, route: &Route) -> Option<(Connection, String)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(route)?;
        while let Some((conn, relay, since)) = list.pop() {
            if since.elapsed() < IDLE && !conn.is_closed() {
                return Some((conn, relay));
            }
            // Too old: let it go (QUIT in the background).
            tokio::spawn(async move { drop(conn.quit().await) });
        }
        None
    }

    fn keep(&self, route: &Route, conn: Connection, relay: String) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(route.clone())
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

//! `smtp serve`'s relay: the options, the [`RelayConfig`] made from them, and the relay
//! engine running beside the server (on the server's runtime with `--io tokio`, on a
//! runtime of its own with `--io blocking`), with the queue directory locked and the
//! control socket `smtp queue` talks to.
//!
//! ```text
//! queue-dir/
//!   lock      held (flock) while a server runs on the queue: one server per queue
//!   control   the server's Unix socket: `flush`, `delete ID` (mode 0600)
//!   tmp/ msg/ state/   smtp_relay::FsStore's
//! ```

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use smtp_proto::client::host::Verification;
use smtp_proto::sasl::ClientCredentials;
use smtp_relay::{
    FsStore, NextHop, Relay, RelayConfig, RelayHandle, RetrySchedule, Routes, Store as _, TlsPolicy,
};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::delivery::{LocalMailboxes, Queue};
use crate::policy::{Network, Relaying, Verdict, normalize};
use crate::{EX_CONFIG, EX_SOFTWARE, EX_USAGE};
use smtp_relay::dns::Dns;

/// The relay options of `smtp serve`.
#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// The relay queue (created when relaying is configured); what is in it is
    /// delivered after a restart.
    #[arg(long, value_name = "DIR", default_value = "./queue")]
    queue_dir: PathBuf,
    /// A smarthost for every relayed recipient without a --transport (no MX lookup).
    #[arg(long, value_name = "HOST:PORT")]
    relay_host: Option<NextHop>,
    /// TLS towards next hops: required (STARTTLS, verified), opportunistic (STARTTLS
    /// when offered, not verified: Postfix's `may`), never, implicit (TLS from the first
    /// octet, verified).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = RelayTls::Opportunistic)]
    relay_tls: RelayTls,
    /// Trust only the certificates in this PEM file for the next hops.
    #[arg(long, value_name = "PEM", conflicts_with = "relay_insecure")]
    relay_ca_file: Option<PathBuf>,
    /// Accept any certificate from next hops (for tests).
    #[arg(long)]
    relay_insecure: bool,
    /// AUTH to the --relay-host: USER:PASS, or USER with the password in
    /// SMTP_RELAY_PASSWORD. Never in clear text unless --relay-tls never.
    #[arg(long, value_name = "USER:PASS", requires = "relay_host")]
    relay_auth: Option<String>,
    /// A static route, DOMAIN=HOST:PORT (that domain, any case) or .DOMAIN=HOST:PORT
    /// (its subdomains); repeatable. Wins over --relay-host and MX.
    #[arg(long = "transport", value_name = "DOMAIN=HOST:PORT", value_parser = transport)]
    transports: Vec<String>,
    /// Mail for this domain is accepted from anyone and relayed (a backup MX, a
    /// gateway); repeatable.
    #[arg(long = "relay-domain", value_name = "DOMAIN")]
    relay_domains: Vec<String>,
    /// Clients in this network may relay without AUTH (Postfix's mynetworks);
    /// repeatable, IPv4 or IPv6 CIDR.
    #[arg(long = "relay-network", value_name = "CIDR")]
    relay_networks: Vec<Network>,
    /// A DNS server for MX, A and AAAA lookups, and --verify's, instead of the system's
    /// (repeatable).
    #[arg(long = "dns-server", value_name = "IP:PORT", value_parser = dns_server)]
    dns_servers: Vec<SocketAddr>,
    /// The port for hosts found by MX or A/AAAA lookups.
    #[arg(long, value_name = "PORT", default_value_t = 25)]
    mx_port: u16,
    /// Seconds before the first retry of a deferred recipient; doubles up to --retry-max.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    retry_min: u64,
    /// The longest wait between retries, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 4000)]
    retry_max: u64,
    /// Seconds after which an undelivered recipient fails for good (five days), and its
    /// sender gets a bounce.
    #[arg(long, value_name = "SECS", default_value_t = 432_000)]
    queue_lifetime: u64,
    /// Seconds after which the sender of a message still undelivered gets one delay
    /// warning (0: never, like Postfix's delay_warning_time).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    delay_warning: u64,
    /// Deliveries at once, in all.
    #[arg(long, value_name = "N", default_value_t = 20)]
    outbound_concurrency: usize,
    /// Deliveries at once to one destination.
    #[arg(long, value_name = "N", default_value_t = 5)]
    destination_concurrency: usize,
    /// The name in the relay's EHLO. Default: --hostname.
    #[arg(long, value_name = "NAME")]
    outbound_helo: Option<String>,
    /// Look up a relayed recipient's domain at RCPT: a null MX gets 556 5.1.10 (RFC
    /// 7505), a domain that does not exist 550 5.1.2, a failed lookup 450 4.4.3.
    #[arg(long)]
    check_recipient_domain: bool,
}

/// `--check-recipient-domain`: the MX lookup of a relayed recipient's domain during
/// RCPT, on the relay's runtime and resolver.
#[derive(Clone)]
pub(crate) struct DomainCheck {
    dns: Dns,
    runtime: tokio::runtime::Handle,
}

impl DomainCheck {
    /// The refusal for a recipient at `domain`, if it is refused.
    pub(crate) async fn check(&self, domain: &str) -> Option<Verdict> {
        // An address literal names its host: nothing to look up.
        if domain.starts_with('[') {
            return None;
        }
        let answer = self.dns.mx(domain).await;
        let (code, why) = smtp_relay::mx::rcpt_check(domain, &answer).err()?;
        let text = format!("Recipient address rejected: {}", why.text);
        Some(Verdict::reject(code, why.enhanced, text).unwrap_or(CHECK_FAILED))
    }

    /// [`DomainCheck::check`] from a thread outside the runtime (`--io blocking`).
    pub(crate) fn check_blocking(&self, domain: &str) -> Option<Verdict> {
        self.runtime.block_on(self.check(domain))
    }
}

/// When the refusal's text could not be a reply (never expected).
const CHECK_FAILED: Verdict = Verdict::Reject(smtp_proto::server::Refusal::constant(
    smtp_proto::Reply::fixed(450, Some((4, 4, 3)), "Recipient address rejected"),
));

/// `--relay-tls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RelayTls {
    Required,
    Opportunistic,
    Never,
    Implicit,
}

fn transport(s: &str) -> Result<String, String> {
    Routes::new(25)
        .add_transport(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `IP:PORT`, `[IPv6]:PORT`, or an address alone (port 53).
fn dns_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{s:?}: expected IP:PORT"))
}

impl RelayArgs {
    /// Whether any relay option was given: without one, `smtp serve` relays nothing.
    pub(crate) fn enabled(&self) -> bool {
        self.relay_host.is_some()
            || !self.transports.is_empty()
            || !self.relay_domains.is_empty()
            || !self.relay_networks.is_empty()
    }

    /// `--dns-server`: also --verify's, with or without a relay.
    pub(crate) fn dns_servers(&self) -> &[SocketAddr] {
        &self.dns_servers
    }

    /// Who may relay, for the policy; `None` when relaying is not configured.
    pub(crate) fn relaying(&self) -> Option<Relaying> {
        self.enabled().then(|| Relaying {
            domains: self.relay_domains.iter().map(|d| normalize(d)).collect(),
            networks: self.relay_networks.clone(),
        })
    }

    /// The relay engine's configuration; `Err` says what is wrong with the options.
    pub(super) fn config(&self, hostname: &str) -> Result<RelayConfig, String> {
        let mut routes = Routes::new(self.mx_port);
        for t in &self.transports {
            routes
                .add_transport(t)
                .map_err(|e| format!("--transport {e}"))?;
        }
        if let Some(hop) = &self.relay_host {
            routes.set_relay_host(hop.clone());
        }
        let helo = self.outbound_helo.as_deref().unwrap_or(hostname);
        if let Err(e) = smtp_proto::client::ClientConfig::new(helo) {
            return Err(format!("--outbound-helo {helo}: {e}"));
        }
        let mut c = RelayConfig::new(helo);
        c.hostname = hostname.to_owned();
        c.delay_warning = (self.delay_warning > 0).then(|| Duration::from_secs(self.delay_warning));
        c.routes = routes;
        c.local_names = vec![normalize(hostname)];
        if self.retry_min == 0 || self.retry_max < self.retry_min {
            return Err("--retry-min must be at least 1 and --retry-max at least it".into());
        }
        c.schedule = RetrySchedule {
            min: Duration::from_secs(self.retry_min),
            max: Duration::from_secs(self.retry_max),
            lifetime: Duration::from_secs(self.queue_lifetime),
        };
        c.tls = match self.relay_tls {
            RelayTls::Required => TlsPolicy::Required,
            RelayTls::Opportunistic => TlsPolicy::Opportunistic,
            RelayTls::Never => TlsPolicy::Never,
            RelayTls::Implicit => TlsPolicy::Implicit,
        };
        c.verification = match (&self.relay_ca_file, self.relay_insecure) {
            (_, true) => Verification::Insecure,
            (Some(path), false) => Verification::CaFile(path.clone()),
            (None, false) => Verification::WebPki,
        };
        c.credentials = match &self.relay_auth {
            None => None,
            Some(spec) => Some(match spec.split_once(':') {
                Some((user, pass)) => ClientCredentials::password(user, pass),
                None => match std::env::var("SMTP_RELAY_PASSWORD") {
                    Ok(pass) => ClientCredentials::password(spec.as_str(), pass),
                    Err(_) => {
                        return Err(
                            "--relay-auth USER needs the password in SMTP_RELAY_PASSWORD \
                             (or --relay-auth USER:PASS)"
                                .into(),
                        );
                    }
                },
            }),
        };
        c.dns_servers = self.dns_servers.clone();
        c.outbound_concurrency = self.outbound_concurrency.max(1);
        c.destination_concurrency = self.destination_concurrency.max(1);
        Ok(c)
    }
}

/// The path of a queue's control socket.
pub(crate) fn control_path(queue_dir: &Path) -> PathBuf {
    queue_dir.join("control")
}

/// Where the relay runs.
enum RelayRuntime {
    /// A runtime of its own (`--io blocking`).
    Own(tokio::runtime::Runtime),
    /// The server's (`--io tokio`).
    Shared(tokio::runtime::Handle),
}

impl RelayRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            RelayRuntime::Own(rt) => rt.handle(),
            RelayRuntime::Shared(handle) => handle,
        }
    }
}

/// The relay running beside the server: stop it with [`RelayService::stop`].
pub(crate) struct RelayService {
    runtime: RelayRuntime,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    control: PathBuf,
    /// Held while the server runs (flock).
    _lock: File,
}

impl RelayService {
    /// Locks the queue, opens it (what a crash left in `tmp/` goes), and starts the
    /// relay and the control socket on `runtime` (the server's), or on a runtime of its
    /// own. `Ok(None)`: no relay option was given. `Err` is the exit status (the reason
    /// is printed).
    ///
    /// Reports to senders at a local domain go to `mailboxes`; `listen` are the server's
    /// listening addresses, which the relay never sends to.
    pub(crate) fn start(
        args: &RelayArgs,
        hostname: &str,
        runtime: Option<tokio::runtime::Handle>,
        mailboxes: &Arc<LocalMailboxes>,
        listen: Vec<SocketAddr>,
    ) -> Result<Option<(RelayService, Queue, Option<DomainCheck>)>, u8> {
        if !args.enabled() {
            return Ok(None);
        }
        let mut config = args.config(hostname).map_err(|e| {
            super::say_error(format_args!("{e}"));
            EX_USAGE
        })?;
        config.local = Some(Arc::clone(mailboxes) as Arc<dyn smtp_relay::engine::LocalDelivery>);
        config.listen = listen;
        config.observer = crate::metrics::relay_observer();
        let dir = &args.queue_dir;
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            super::say_error(format_args!("--queue-dir {}: {what}{e}", dir.display()));
            EX_CONFIG
        };
        std::fs::create_dir_all(dir).map_err(|e| failed("", &e))?;
        let lock = File::create(dir.join("lock")).map_err(|e| failed("", &e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(failed("", &"another smtp serve runs on this queue"));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(failed("lock: ", &e)),
        }
        let store = FsStore::open(dir).map_err(|e| failed("", &e))?;
        let runtime = match runtime {
            Some(handle) => RelayRuntime::Shared(handle),
            None => RelayRuntime::Own(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("smtp-relay")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        super::say_error(format_args!("cannot start the relay's runtime: {e}"));
                        EX_SOFTWARE
                    })?,
            ),
        };
        let rt = runtime.handle().clone();
        let check = match args.check_recipient_domain {
            false => None,
            true => {
                let _entered = rt.enter();
                let dns = Dns::new(&config.dns_servers, Duration::from_secs(10))
                    .map_err(|e| failed("DNS: ", &e))?;
                Some(DomainCheck {
                    dns,
                    runtime: rt.clone(),
                })
            }
        };
        let (relay, handle) = {
            let _entered = rt.enter();
            Relay::new(Arc::new(store.clone()), config).map_err(|e| failed("relay: ", &e))?
        };
        let control = control_path(dir);
        let listener = {
            let _entered = rt.enter();
            // A socket left by a server that was killed: the lock says none runs now.
            let _ = std::fs::remove_file(&control);
            UnixListener::bind(&control).map_err(|e| failed("control socket: ", &e))?
        };
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o600));
        let (stop, stopped) = oneshot::channel::<()>();
        let commands = rt.spawn(control_loop(listener, store.clone(), handle.clone()));
        let task = rt.spawn(async move {
            relay
                .run(async {
                    let _ = stopped.await;
                })
                .await;
            commands.abort();
        });
        info!(queue = %dir.display(), "relay: started");
        Ok(Some((
            RelayService {
                runtime,
                stop,
                task,
                control,
                _lock: lock,
            },
            Queue { store, handle },
            check,
        )))
    }

    /// Stops the relay (deliveries under way get a few seconds) and removes the control
    /// socket; the lock goes with the service. Called outside any runtime, after the
    /// server stopped.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.runtime.handle().block_on(self.task);
        let _ = std::fs::remove_file(&self.control);
        if let RelayRuntime::Own(rt) = self.runtime {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Serves `smtp queue`: one command per connection, one line each way.
async fn control_loop(listener: UnixListener, store: FsStore, handle: RelayHandle) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "control socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let store = store.clone();
        let handle = handle.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read).take(1024);
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = command(line.trim(), &store, &handle).await;
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// One control command: `flush`, `delete ID`.
async fn command(line: &str, store: &FsStore, handle: &RelayHandle) -> String {
    match line.split_once(' ') {
        None if line == "flush" => {
            info!("relay: flush");
            handle.flush();
            "ok".into()
        }
        Some(("delete", id)) => {
            let id = id.to_owned();
            let store = store.clone();
            // Removed here, before the answer, so that a `smtp queue list` that follows
            // no longer sees it; the relay then forgets it (a delivery under way finishes
            // without its result being recorded).
            let removed = tokio::task::spawn_blocking({
                let id = id.clone();
                move || -> io::Result<bool> {
                    let found = store.load(&id)?.is_some();
                    store.remove(&id)?;
                    Ok(found)
                }
            })
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
            match removed {
                Ok(true) => {
                    handle.delete(&id);
                    info!(queue_id = %id, "relay: deleted");
                    "ok".into()
                }
                Ok(false) => "unknown".into(),
                Err(e) => {
                    error!(queue_id = %id, error = %e, "cannot delete");
                    format!("error {e}")
                }
            }
        }
        _ => "error unknown command".into(),
    }
}

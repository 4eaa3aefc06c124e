//! `smtp serve`: a standalone SMTP (or LMTP) server that stores what it accepts in a
//! Maildir, and relays what is for elsewhere when a relay option is given ([`relay`]).
//!
//! Everything but the I/O is here and in the modules it uses: the options, the session
//! configuration, the TLS configuration, the `listening on` lines, and (in [`session`],
//! [`crate::policy`], [`crate::delivery`]) the handler logic. [`tokio_host`] and
//! [`blocking_host`] bind it to `--io tokio` and `--io blocking`.

mod blocking_host;
pub(crate) mod config;
pub(crate) mod relay;
mod reload;
mod session;
mod tokio_host;
mod verify;

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use smtp_proto::server::{Anvil, AnvilLimits, ServerConfig};

use crate::delivery::{LocalMailboxes, Store};
use crate::maildir::Maildir;
use crate::passwords::PasswordFile;
use crate::policy::Policy;
use crate::{EX_CONFIG, EX_SOFTWARE, EX_USAGE, Io};
use session::Shared;

/// Options of `smtp serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Plain listener with STARTTLS (repeatable; port 0 picks a free port).
    /// Default: 127.0.0.1:2525 when no listener is given.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Implicit-TLS listener, port 465 style (repeatable).
    #[arg(long = "implicit-tls", value_name = "ADDR")]
    implicit_tls: Vec<String>,
    /// This server's name in the greeting, EHLO and Received headers.
    /// Default: the system host name.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Where accepted messages are stored.
    #[arg(long, value_name = "DIR", default_value = "./maildir")]
    maildir: PathBuf,
    /// Store each recipient's copy in a Maildir of its own, `DIR/<domain>/<local-part>/`,
    /// with only its own `Delivered-To:`.
    #[arg(long, conflicts_with = "discard")]
    maildir_per_recipient: bool,
    /// Accept messages and drop them (for benchmarks).
    #[arg(long)]
    discard: bool,
    /// TLS certificate chain (PEM). Without it, a self-signed certificate is generated.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// No TLS at all: no STARTTLS, no implicit TLS.
    #[arg(long, conflicts_with_all = ["tls_cert", "require_tls", "implicit_tls"])]
    no_tls: bool,
    /// MAIL before STARTTLS gets 530 5.7.0.
    #[arg(long)]
    require_tls: bool,
    /// Users for AUTH PLAIN, LOGIN and CRAM-MD5: `user:password` lines, or Dovecot
    /// passwd-file lines with `{ARGON2ID}`, `{ARGON2I}`, `{SHA512-CRYPT}`,
    /// `{SHA256-CRYPT}`, `{BLF-CRYPT}`, `{CRYPT}`, `{SHA256}`, `{SSHA256}`, `{PLAIN}`
    /// passwords (hashed ones work for PLAIN and LOGIN only; CRAM-MD5 is offered when
    /// some password is in clear text).
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Offer PLAIN and LOGIN without TLS.
    #[arg(long, requires = "auth_file")]
    allow_insecure_auth: bool,
    /// MAIL before AUTH gets 530 5.7.0.
    #[arg(long, requires = "auth_file")]
    require_auth: bool,
    /// A domain this server receives mail for (repeatable). With none, every recipient
    /// is accepted; with some, others only from authenticated clients.
    #[arg(long = "local-domain", value_name = "DOMAIN")]
    local_domains: Vec<String>,
    /// Largest message in octets (advertised in SIZE; 0: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 26_214_400)]
    max_size: u64,
    /// Recipients per message.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_recipients: usize,
    /// Idle command timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
    /// Concurrent connections; over it, clients get 421 4.3.2.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_connections: usize,
    /// Concurrent connections from one client (an IPv4 address, an IPv6 /64); over it,
    /// 421 4.7.0. 0: no limit (load tests from one address need that).
    #[arg(long, value_name = "N", default_value_t = 50)]
    max_connections_per_ip: u32,
    /// Failed AUTH attempts one client may make in 10 minutes; after that its AUTH gets
    /// 454 4.7.0 until the 10 minutes are over. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_auth_failures_per_ip: u32,
    /// On SIGINT/SIGTERM, how long open sessions may finish before they get 421 4.3.2.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    shutdown_timeout: u64,
    /// Serve LMTP (RFC 2033) instead of SMTP.
    #[arg(long)]
    lmtp: bool,
    /// The I/O adapter: tokio tasks, or a thread per connection.
    #[arg(long, value_enum, default_value_t = Io::Tokio)]
    io: Io,
    /// Log filter for stderr: error, warn, info, debug, trace, or tracing directives.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Log lines on stderr: text, or JSON (one object per line, with the same fields).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (port 0 picks a free port).
    /// None unless given; a non-loopback address is logged as a warning.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    relay: relay::RelayArgs,
    #[command(flatten)]
    verify: verify::VerifyArgs,
    #[command(flatten)]
    config: config::ConfigArgs,
}

/// What both adapters run: the session configuration, the shared handler state, TLS,
/// the listener addresses and the server's limits.
struct Setup {
    hostname: String,
    config: ServerConfig,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The bound listeners, and whether each is implicit TLS.
    listeners: Vec<(std::net::TcpListener, bool)>,
    max_connections: usize,
    shutdown_timeout: Duration,
    /// The relay, when relaying is configured.
    relay: Option<relay::RelayService>,
    /// The `--tls-cert` and `--tls-key`, which SIGHUP reloads.
    cert_store: Option<Arc<reload::CertStore>>,
}

/// Runs `smtp serve`; returns the exit status.
pub(crate) fn main(args: ServeArgs) -> u8 {
    init_logging(&args.log_level, args.log_format);
    let _metrics = match args.metrics_listen.as_deref().map(crate::metrics::serve) {
        Some(Err(code)) => return code,
        Some(Ok(server)) => Some(server),
        None => None,
    };
    // With --io tokio the relay runs on the server's runtime, so it exists first.
    let runtime = match args.io {
        Io::Tokio => match tokio_host::runtime() {
            Ok(rt) => Some(rt),
            Err(code) => return code,
        },
        Io::Blocking => None,
    };
    let mut setup = match setup(&args, runtime.as_ref().map(|rt| rt.handle().clone())) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let relay = setup.relay.take();
    // Before the hosts print their listening lines: SIGHUP must not kill the server.
    let reload = reload::Reload::new(
        args.auth_file.clone(),
        &setup.shared,
        setup.cert_store.take(),
    );
    if let Err(e) = reload::on_sighup(reload) {
        return signal_error(&e);
    }
    let code = match &runtime {
        Some(rt) => tokio_host::run(rt, setup),
        None => blocking_host::run(setup),
    };
    // After the server: what its last sessions queued is on disk for the next start.
    if let Some(relay) = relay {
        relay.stop();
    }
    code
}

/// The form of the log lines on stderr (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One line per event: time, level, the session span (`session{id=.. peer=..}`), the
    /// message and its fields.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields` (`message` and the event's
    /// fields), `span` (the innermost, with its `name` and fields) and `spans` (all of
    /// them, outermost first).
    Json,
}

/// The `--log-format` in force, for [`say`].
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Says on stderr why the server cannot start or what it changed at start: a plain
/// `smtp serve: ...` line, or under `--log-format json` a log object of that level, so
/// that a JSON log pipeline sees nothing but JSON.
pub(crate) fn say(level: tracing::Level, message: impl std::fmt::Display) {
    if LOG_FORMAT.get() != Some(&LogFormat::Json) {
        eprintln!("smtp serve: {message}");
    } else if level == tracing::Level::ERROR {
        tracing::error!("{message}");
    } else {
        tracing::warn!("{message}");
    }
}

/// [`say`] at the error level.
pub(crate) fn say_error(message: impl std::fmt::Display) {
    say(tracing::Level::ERROR, message);
}

fn init_logging(level: &str, format: LogFormat) {
    use std::io::IsTerminal as _;
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// The system host name if it is a valid domain, else `localhost`.
fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|h| ServerConfig::new(h).is_ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Everything from the options, before any listener is bound, and the relay started
/// (on `runtime` when given); `Err` is the exit status (the reason is printed).
fn setup(args: &ServeArgs, runtime: Option<tokio::runtime::Handle>) -> Result<Setup, u8> {
    let hostname = args.hostname.clone().unwrap_or_else(default_hostname);
    let mut config = match ServerConfig::new(&hostname) {
        Ok(c) => c,
        Err(e) => {
            say_error(format_args!("--hostname {hostname}: {e}"));
            return Err(EX_USAGE);
        }
    };
    config.lmtp = args.lmtp;
    if args.lmtp {
        // RFC 2033 names no greeting text; "ESMTP" would be wrong for LMTP (Cyrus and
        // Dovecot say LMTP).
        config.set_greeting("LMTP").expect("plain text");
    }
    config.limits.max_message_size = (args.max_size > 0).then_some(args.max_size);
    config.limits.max_recipients = args.max_recipients.max(1);
    config.timeouts.command = Duration::from_secs(args.timeout.max(1));
    config.require_tls = args.require_tls;
    config.require_auth = args.require_auth;
    config.auth_requires_tls = !args.allow_insecure_auth;

    let users = match &args.auth_file {
        Some(path) => match PasswordFile::load(path) {
            Ok(users) => {
                config.extensions.auth = vec!["PLAIN".into(), "LOGIN".into()];
                // CRAM-MD5 can only check a password kept in clear (RFC 2195 §2).
                if users.any_clear() {
                    config.extensions.auth.push("CRAM-MD5".into());
                }
                warn_weak_passwords(&users);
                users
            }
            Err(e) => {
                say_error(format_args!("--auth-file {}: {e}", path.display()));
                return Err(EX_CONFIG);
            }
        },
        None => PasswordFile::default(),
    };
    let maildir = if args.discard {
        None
    } else {
        match Maildir::open(&args.maildir, &hostname, args.maildir_per_recipient) {
            Ok(m) => Some(m),
            Err(e) => {
                say_error(format_args!("--maildir {}: {e}", args.maildir.display()));
                return Err(EX_CONFIG);
            }
        }
    };
    let mut cert_store = None;
    let tls = if args.no_tls {
        None
    } else {
        match tls_config(&hostname, args.tls_cert.as_ref().zip(args.tls_key.as_ref())) {
            Ok((config, store)) => {
                cert_store = store;
                Some(config)
            }
            Err(e) => {
                say_error(format_args!("TLS: {e}"));
                return Err(EX_CONFIG);
            }
        }
    };
    // RFC 8689: REQUIRETLS is offered inside TLS (the core offers it only there); the
    // relay sends such a message only over verified TLS to a next hop that offers it.
    config.extensions.requiretls = tls.is_some();
    let plain = if args.listen.is_empty() && args.implicit_tls.is_empty() {
        vec!["127.0.0.1:2525".to_owned()]
    } else {
        args.listen.clone()
    };
    // Bound before the relay starts: it must know them to refuse to send to itself.
    let mut listeners = Vec::new();
    for (addr, implicit) in plain
        .iter()
        .map(|a| (a, false))
        .chain(args.implicit_tls.iter().map(|a| (a, true)))
    {
        match listen(addr) {
            Ok(l) => listeners.push((l, implicit)),
            Err(e) => return Err(bind_error(addr, &e)),
        }
    }
    let own: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|(l, _)| l.local_addr().ok())
        .collect();
    let maildir = maildir.map(Arc::new);
    let mailboxes = Arc::new(LocalMailboxes::new(maildir.clone(), &args.local_domains));
    let (verifier, signers) = args
        .verify
        .load(&hostname, args.relay.dns_servers(), runtime.clone())
        .map_err(|e| {
            eprintln!("smtp serve: {e}");
            EX_CONFIG
        })?;
    let (relay, queue, domain_check) =
        match relay::RelayService::start(&args.relay, &hostname, runtime, &mailboxes, own)? {
            Some((service, queue, check)) => (Some(service), Some(queue), check),
            None => (None, None, None),
        };
    Ok(Setup {
        hostname: hostname.clone(),
        config,
        shared: Arc::new(Shared {
            policy: Policy::new(users, &args.local_domains, args.relay.relaying()),
            store: Store::new(maildir, queue, &hostname, mailboxes),
            domain_check,
            verifier,
            signers,
            anvil: std::sync::Mutex::new(Anvil::new(
                &hostname,
                AnvilLimits {
                    max_connections_per_ip: args.max_connections_per_ip,
                    max_auth_failures: args.max_auth_failures_per_ip,
                    ..AnvilLimits::default()
                },
            )),
        }),
        tls,
        listeners,
        max_connections: fit_max_connections(
            args.max_connections.max(1),
            fds_per_session(args.maildir_per_recipient, args.max_recipients),
        )?,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        relay,
        cert_store,
    })
}

/// File descriptors one session may hold at once: its socket, and while a message is
/// stored its file (one per recipient with `--maildir-per-recipient`) and, for the
/// fsync, a directory.
fn fds_per_session(per_recipient: bool, max_recipients: usize) -> u64 {
    let files = if per_recipient {
        max_recipients.max(1)
    } else {
        1
    };
    2 + u64::try_from(files).unwrap_or(u64::MAX / 4)
}

/// File descriptors kept apart from the sessions: standard streams, listeners, the
/// event queue, log files, and connections over capacity for the moment it takes to
/// answer them `421 4.3.2`.
const FDS_RESERVED: u64 = 128;

/// Raises the soft open-file limit to the hard one, and lowers `--max-connections` to
/// what the limit can hold, saying so: past the limit, accept fails and a client would
/// get neither a greeting nor a `421`. `Err` is the exit status.
fn fit_max_connections(requested: usize, fds_per_session: u64) -> Result<usize, u8> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            say(
                tracing::Level::WARN,
                format_args!("cannot read the open-file limit: {e}"),
            );
            return Ok(requested);
        }
    };
    let capacity = limit.saturating_sub(FDS_RESERVED) / fds_per_session;
    if capacity == 0 {
        say_error(format_args!(
            "the open-file limit ({limit}) is too low to serve any connection \
             (ulimit -n)"
        ));
        return Err(EX_CONFIG);
    }
    let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
    if requested > capacity {
        say(
            tracing::Level::WARN,
            format_args!(
                "--max-connections {requested} lowered to {capacity}: the open-file \
             limit is {limit} (ulimit -n)"
            ),
        );
        return Ok(capacity);
    }
    Ok(requested)
}

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn` (4096 on
/// current Linux). std's 128 let a burst of connects time out.
const BACKLOG: i32 = 4096;

/// Binds a listener (the first of `addr`'s addresses that binds) with [`BACKLOG`].
fn listen(addr: &str) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs as _;
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
    for addr in addr.to_socket_addrs()? {
        let bound = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .and_then(|socket| {
                // As std does on Unix: a restart can bind while old connections linger.
                socket.set_reuse_address(true)?;
                socket.bind(&addr.into())?;
                socket.listen(BACKLOG)?;
                Ok(socket)
            });
        match bound {
            Ok(socket) => return Ok(socket.into()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Logs, at start, the `--auth-file` users whose password a stolen file gives up
/// quickly (in clear text or behind a fast hash), and who can use CRAM-MD5.
fn warn_weak_passwords(users: &PasswordFile) {
    let weak = users.weak();
    if !weak.is_empty() {
        let list: Vec<String> = weak
            .iter()
            .map(|(user, how)| format!("{user:?} ({how})"))
            .collect();
        tracing::warn!(
            "--auth-file: passwords in clear text or behind a fast hash, which a stolen file \
             gives up quickly, for {} of {} users: {}; ARGON2ID, SHA512-CRYPT and BLF-CRYPT \
             are slow hashes (CRAM-MD5 still needs the password in clear text)",
            weak.len(),
            users.len(),
            list.join(", ")
        );
    }
    let clear = weak.iter().filter(|(_, how)| *how == "clear text").count();
    if clear == 0 {
        tracing::info!("--auth-file: no password in clear text, so CRAM-MD5 is not offered");
    } else if clear < users.len() {
        tracing::info!(
            "--auth-file: CRAM-MD5 works only for passwords in clear text ({clear} of {} \
             users); the others can use PLAIN and LOGIN",
            users.len()
        );
    }
}

/// Binds a listener, or says why not (the exit status is EX_CONFIG).
fn bind_error(addr: &str, e: &io::Error) -> u8 {
    say_error(format_args!("cannot listen on {addr}: {e}"));
    EX_CONFIG
}

/// The server could not be built from its listeners.
fn build_error(e: &dyn std::fmt::Display) -> u8 {
    say_error(format_args!("{e}"));
    EX_USAGE
}

/// Signal handlers could not be installed.
fn signal_error(e: &io::Error) -> u8 {
    say_error(format_args!("cannot install signal handlers: {e}"));
    EX_SOFTWARE
}

/// Prints one `listening on <addr>` line per listener (` (implicit tls)` after an
/// implicit-TLS one) and flushes: whoever started the server reads these.
fn announce(hostname: &str, listeners: impl IntoIterator<Item = (SocketAddr, bool)>) {
    let mut out = io::stdout().lock();
    for (addr, implicit_tls) in listeners {
        let suffix = if implicit_tls { " (implicit tls)" } else { "" };
        let _ = writeln!(out, "listening on {addr}{suffix}");
    }
    crate::metrics::announce(&mut out);
    let _ = out.flush();
    drop(out);
    tracing::info!(%hostname, "serving");
}

/// The TLS configuration: the given certificate and key (with the store SIGHUP reloads
/// them into), or a self-signed certificate for `hostname`, from the adapters' shared
/// `tls` module.
fn tls_config(
    hostname: &str,
    files: Option<(&PathBuf, &PathBuf)>,
) -> Result<(Arc<rustls::ServerConfig>, Option<Arc<reload::CertStore>>), String> {
    use smtp_tokio::tls;
    match files {
        Some((cert, key)) => {
            let store = Arc::new(reload::CertStore::load(cert.clone(), key.clone())?);
            Ok((store.server_config()?, Some(store)))
        }
        None => {
            let name = hostname.trim_start_matches('[').trim_end_matches(']');
            let name = name.strip_prefix("IPv6:").unwrap_or(name);
            tls::self_signed(&[name])
                .and_then(|(chain, key)| tls::server_config(chain, key))
                .map(|config| (config, None))
                .map_err(|e| e.to_string())
        }
    }
}

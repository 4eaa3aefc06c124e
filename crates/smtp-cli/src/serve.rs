//! `smtp serve`: a standalone SMTP (or LMTP) server that stores what it accepts in a
//! Maildir, on the tokio adapter.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use smtp_proto::sasl::{Credentials, Mechanism};
use smtp_proto::server::{AbortReason, ServerConfig};
use smtp_proto::{ForwardPath, RcptParams, Reply};
use smtp_tokio::{ConnectInfo, Context, Decision, Handler, Host, Server};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::maildir::{Delivery, Maildir, rfc5322_date};
use crate::passwords::PasswordFile;

/// EX_USAGE (sysexits.h).
pub(crate) const EX_USAGE: u8 = 64;
/// EX_SOFTWARE: the server failed at run time.
const EX_SOFTWARE: u8 = 70;
/// EX_CONFIG: a file given on the command line could not be used.
const EX_CONFIG: u8 = 78;

/// Which I/O adapter runs the sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Io {
    /// The tokio adapter (`smtp-tokio`).
    Tokio,
    /// The blocking adapter (not available yet).
    Blocking,
}

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
    /// Users for AUTH PLAIN, LOGIN and CRAM-MD5: `user:password` lines (`{SHA256}` and
    /// `{SSHA256}` hashed passwords work for PLAIN and LOGIN only).
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
    /// On SIGINT/SIGTERM, how long open sessions may finish before they get 421 4.3.2.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    shutdown_timeout: u64,
    /// Serve LMTP (RFC 2033) instead of SMTP.
    #[arg(long)]
    lmtp: bool,
    /// The I/O adapter.
    #[arg(long, value_enum, default_value_t = Io::Tokio)]
    io: Io,
    /// Log filter for stderr: error, warn, info, debug, trace, or tracing directives.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

/// Runs `smtp serve`; returns the exit status.
pub(crate) fn main(args: ServeArgs) -> u8 {
    if args.io == Io::Blocking {
        eprintln!(
            "smtp serve: --io blocking: the blocking adapter is not available yet; use --io tokio"
        );
        return EX_USAGE;
    }
    init_logging(&args.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smtp serve: cannot start the runtime: {e}");
            return EX_SOFTWARE;
        }
    };
    runtime.block_on(serve(args))
}

fn init_logging(level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The system host name if it is a valid domain, else `localhost`.
fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|h| ServerConfig::new(h).is_ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

async fn serve(args: ServeArgs) -> u8 {
    let hostname = args.hostname.clone().unwrap_or_else(default_hostname);
    let mut config = match ServerConfig::new(&hostname) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("smtp serve: --hostname {hostname}: {e}");
            return EX_USAGE;
        }
    };
    config.lmtp = args.lmtp;
    config.limits.max_message_size = (args.max_size > 0).then_some(args.max_size);
    config.limits.max_recipients = args.max_recipients.max(1);
    config.timeouts.command = Duration::from_secs(args.timeout.max(1));
    config.require_tls = args.require_tls;
    config.require_auth = args.require_auth;
    config.auth_requires_tls = !args.allow_insecure_auth;

    let users = match &args.auth_file {
        Some(path) => match PasswordFile::load(path) {
            Ok(users) => {
                config.extensions.auth = vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()];
                users
            }
            Err(e) => {
                eprintln!("smtp serve: --auth-file {}: {e}", path.display());
                return EX_CONFIG;
            }
        },
        None => PasswordFile::default(),
    };
    let store = if args.discard {
        None
    } else {
        match Maildir::open(&args.maildir, &hostname) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("smtp serve: --maildir {}: {e}", args.maildir.display());
                return EX_CONFIG;
            }
        }
    };
    let tls = if args.no_tls {
        None
    } else {
        match tls_config(&hostname, args.tls_cert.as_ref().zip(args.tls_key.as_ref())) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("smtp serve: TLS: {e}");
                return EX_CONFIG;
            }
        }
    };

    let host = CliHost(Arc::new(Shared {
        store,
        users,
        local_domains: args
            .local_domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        seq: AtomicU64::new(0),
    }));
    let mut builder = Server::builder(config, host)
        .max_connections(args.max_connections.max(1))
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout));
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let plain = if args.listen.is_empty() && args.implicit_tls.is_empty() {
        vec!["127.0.0.1:2525".to_owned()]
    } else {
        args.listen.clone()
    };
    for (addrs, implicit) in [(&plain, false), (&args.implicit_tls, true)] {
        for addr in addrs {
            let listener = match TcpListener::bind(addr.as_str()).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("smtp serve: cannot listen on {addr}: {e}");
                    return EX_CONFIG;
                }
            };
            builder = if implicit {
                builder.implicit_tls_listener(listener)
            } else {
                builder.listener(listener)
            };
        }
    }
    let server = match builder.build() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smtp serve: {e}");
            return EX_USAGE;
        }
    };
    // Signal handlers go in before the listening lines, so that whoever reads them can
    // send SIGTERM at once and get a graceful shutdown.
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smtp serve: cannot install signal handlers: {e}");
            return EX_SOFTWARE;
        }
    };
    let mut out = io::stdout().lock();
    for l in server.local_addrs() {
        let suffix = if l.implicit_tls {
            " (implicit tls)"
        } else {
            ""
        };
        let _ = writeln!(out, "listening on {}{suffix}", l.addr);
    }
    let _ = out.flush();
    drop(out);
    info!(%hostname, "serving");
    server.run(shutdown).await;
    0
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => info!("SIGINT: shutting down"),
            _ = term.recv() => info!("SIGTERM: shutting down"),
        }
    })
}

/// The TLS configuration: the given certificate and key, or a self-signed certificate
/// for `hostname`.
fn tls_config(
    hostname: &str,
    files: Option<(&PathBuf, &PathBuf)>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let (chain, key) = match files {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            (chain, key)
        }
        None => {
            let name = hostname.trim_start_matches('[').trim_end_matches(']');
            let name = name.strip_prefix("IPv6:").unwrap_or(name);
            let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()])
                .map_err(|e| format!("self-signed certificate: {e}"))?;
            let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
            (vec![cert.cert.der().clone()], PrivateKeyDer::Pkcs8(key))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// What every session shares.
struct Shared {
    /// `None`: `--discard`.
    store: Option<Maildir>,
    users: PasswordFile,
    /// Lower case, no trailing dot; empty: accept every recipient.
    local_domains: Vec<String>,
    seq: AtomicU64,
}

impl Shared {
    /// A queue id for `Received:` and the 250 reply: seconds and a counter, in hex.
    fn queue_id(&self) -> String {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{secs:X}{seq:06X}")
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
}

struct CliHost(Arc<Shared>);

impl Host for CliHost {
    type Handler = Session;
    fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
        Ok(Session {
            shared: Arc::clone(&self.0),
            message: None,
        })
    }
}

/// One session's handler.
struct Session {
    shared: Arc<Shared>,
    message: Option<Message>,
}

/// The message being received.
struct Message {
    id: String,
    delivery: Option<Delivery>,
    /// The first storage error; the message then ends in `451 4.3.0`.
    error: Option<io::Error>,
    /// LMTP: the outcome, decided once for every recipient.
    outcome: Option<Result<(), ()>>,
}

impl Session {
    /// Stores the message (or drops it with `--discard`): `Ok` once it is in `new/`.
    async fn finish(&mut self) -> Result<String, ()> {
        let Some(msg) = &mut self.message else {
            return Err(());
        };
        if let Some(e) = msg.error.take() {
            error!(error = %e, "storage failed");
            return Err(());
        }
        match msg.delivery.take() {
            None => {
                info!(id = %msg.id, "message discarded");
                Ok(msg.id.clone())
            }
            Some(d) => match d.commit().await {
                Ok(file) => {
                    info!(id = %msg.id, %file, "message stored");
                    Ok(msg.id.clone())
                }
                Err(e) => {
                    error!(error = %e, "storage failed");
                    Err(())
                }
            },
        }
    }
}

fn storage_failure() -> Decision {
    Decision::reject(
        451,
        (4, 3, 0),
        "Error: local error in processing: storage failure",
    )
}

fn queued(id: &str) -> Decision {
    Reply::new(
        250,
        Some(smtp_proto::EnhancedCode::of(2, 0, 0)),
        format!("Ok: queued as {id}"),
    )
    .map_or(Decision::Accept, Decision::AcceptWith)
}

impl Handler for Session {
    async fn rcpt(
        &mut self,
        ctx: &Context<'_>,
        to: &ForwardPath<'static>,
        _: &RcptParams<'static>,
    ) -> Decision {
        let shared = &self.shared;
        if shared.local_domains.is_empty()
            || shared.is_local(to)
            || ctx.session.authenticated().is_some()
        {
            Decision::Accept
        } else {
            Decision::reject(554, (5, 7, 1), format!("{to}: Relay access denied"))
        }
    }

    async fn message_start(&mut self, ctx: &Context<'_>) {
        let id = self.shared.queue_id();
        let mut msg = Message {
            id,
            delivery: None,
            error: None,
            outcome: None,
        };
        if let Some(store) = &self.shared.store {
            let s = ctx.session;
            let mut head = String::new();
            if let Some(from) = s.reverse_path() {
                head.push_str(&format!("Return-Path: {from}\r\n"));
            }
            for to in s.recipients() {
                head.push_str(&format!("Delivered-To: {to}\r\n"));
            }
            head.push_str(&s.received_header(&msg.id, &rfc5322_date(SystemTime::now())));
            match store.begin(head.as_bytes()).await {
                Ok(d) => msg.delivery = Some(d),
                Err(e) => msg.error = Some(e),
            }
        }
        self.message = Some(msg);
    }

    async fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        let Some(msg) = &mut self.message else { return };
        if msg.error.is_some() {
            return;
        }
        if let Some(d) = &mut msg.delivery {
            if let Err(e) = d.write(&chunk).await {
                msg.error = Some(e);
                msg.delivery = None;
            }
        }
    }

    async fn message_end(&mut self, _: &Context<'_>) -> Decision {
        let decision = match self.finish().await {
            Ok(id) => queued(&id),
            Err(()) => storage_failure(),
        };
        self.message = None;
        decision
    }

    async fn message_aborted(&mut self, _: &Context<'_>, _: AbortReason) {
        // Dropping the delivery removes its file from tmp/.
        self.message = None;
    }

    async fn lmtp_message_end(&mut self, _: &Context<'_>, _: usize) {
        let outcome = self.finish().await.map(drop);
        if let Some(msg) = &mut self.message {
            msg.outcome = Some(outcome);
        }
    }

    async fn lmtp_delivery(&mut self, _: &Context<'_>, _: &ForwardPath<'static>) -> Decision {
        // One file holds the message for every recipient: they share its outcome.
        match self
            .message
            .as_ref()
            .and_then(|m| m.outcome.map(|o| (o, &m.id)))
        {
            Some((Ok(()), id)) => queued(id),
            _ => storage_failure(),
        }
    }

    async fn auth(
        &mut self,
        _: &Context<'_>,
        _: &Mechanism,
        credentials: &Credentials,
    ) -> Decision {
        let ok = credentials.identity().is_some_and(|user| {
            // An authorization identity other than one's own is not granted here.
            credentials
                .authorization_identity()
                .is_none_or(|authz| authz == user)
                && self.shared.users.verify(user, credentials)
        });
        if ok {
            Decision::Accept
        } else {
            Decision::reject(535, (5, 7, 8), "Authentication credentials invalid")
        }
    }
}

//! `smtp send`: a client like swaks, and a load generator like Postfix's smtp-source.
//!
//! Exit status (sysexits.h): 0 every recipient accepted; 75 (EX_TEMPFAIL) any temporary
//! failure, a lost connection or a TLS failure; 69 (EX_UNAVAILABLE) a permanent failure of
//! the message or of any recipient; 64 (EX_USAGE) bad arguments; 78 (EX_CONFIG) a
//! `--dkim-sign` key file cannot be used.
//!
//! Everything but the connections is here, shared by both `--io` values: the options,
//! the session and TLS configurations ([`Plan`]), the envelope and body, the output (human
//! or JSON), exit codes, and the load mode's arithmetic. [`tokio_client`] and
//! [`blocking_client`] only drive connections: one message ([`Sent`] or [`Failure`]), or
//! the load mode's connections ([`Tally`]).

mod blocking_client;
mod progress;
mod tokio_client;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rustls::pki_types::ServerName;
use smtp_proto::client::host::{self, Connect, Error, Verification};
use smtp_proto::client::{
    ClientConfig, ClientError, ClientTimeouts, DeliveryStatus, Envelope, MessageOutcome, Recipient,
    RecipientStatus, StartTls,
};
use smtp_proto::data::BodyScanner;
use smtp_proto::sasl::{ClientCredentials, Mechanism};
use smtp_proto::{BodyType, ForwardPath, Mailbox, Reply, ReversePath};

use crate::{EX_CONFIG, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE, Io};

/// STARTTLS policy on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StartTlsArg {
    /// Fail unless the server offers STARTTLS and the handshake succeeds.
    Required,
    /// Use it when offered.
    Opportunistic,
    /// Never.
    Never,
}

/// Options of `smtp send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The server, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:25")]
    server: String,
    /// The envelope sender; empty for the null reverse-path `<>`.
    #[arg(long, default_value = "")]
    from: String,
    /// A recipient (repeatable).
    #[arg(long = "to", value_name = "ADDR")]
    to: Vec<String>,
    /// The message (RFC 5322, as it should arrive); standard input when absent (read
    /// whole before MAIL, like a file: its SIZE and BODY are declared).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// The name to give in EHLO.
    #[arg(long, default_value = "localhost")]
    helo: String,
    /// TLS from the first byte (port 465).
    #[arg(long)]
    tls: bool,
    /// STARTTLS policy.
    #[arg(long, value_enum, default_value_t = StartTlsArg::Opportunistic)]
    starttls: StartTlsArg,
    /// Trust this CA (PEM) instead of the web PKI roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Accept any certificate (tests only).
    #[arg(long)]
    insecure: bool,
    /// Credentials, USER:PASS, or USER with the password in SMTP_PASSWORD.
    #[arg(long, value_name = "USER:PASS")]
    auth: Option<String>,
    /// The AUTH mechanism (otherwise the best both sides support).
    #[arg(long, value_name = "MECH", value_parser = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"], ignore_case = true)]
    mechanism: Option<String>,
    /// Allow PLAIN and LOGIN on a connection without TLS.
    #[arg(long)]
    allow_insecure_auth: bool,
    /// Seconds for every timeout (connect and each reply); RFC 5321 defaults otherwise.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Speak LMTP.
    #[arg(long)]
    lmtp: bool,
    /// The I/O adapter: tokio tasks, or blocking sockets (a thread per connection in load
    /// mode).
    #[arg(long, value_enum, default_value_t = Io::Tokio)]
    io: Io,
    /// Print one JSON object with the result on stdout (in load mode: sent, failed,
    /// elapsed_s, msg_per_s and latency_ms {p50, p90, p99}).
    #[arg(long)]
    json: bool,
    /// Print the protocol transcript on stderr (AUTH redacted).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Load mode: send this many generated messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Load mode: over this many connections at once.
    #[arg(long, value_name = "C", default_value_t = 1)]
    concurrency: u64,
    /// Load mode: size of each generated message in octets.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    size: usize,
    /// DKIM-sign the message with this key when its From: domain is DOMAIN (repeatable; the
    /// key in PEM, as `smtp dkim keygen` writes it).
    #[arg(long, value_name = "DOMAIN:SELECTOR:KEYFILE", value_parser = crate::dkim::parse_dkim_sign)]
    dkim_sign: Vec<crate::dkim::DkimSpec>,
}

/// Everything a connection needs, built once from the arguments.
#[derive(Clone)]
pub(super) struct Plan {
    /// `HOST:PORT` as given.
    addr: String,
    /// The host part: the TLS server name.
    host: String,
    config: Arc<ClientConfig>,
    /// Present whenever TLS may be used (implicit, or STARTTLS not `never`).
    tls: Option<Arc<rustls::ClientConfig>>,
    implicit_tls: bool,
    connect_timeout: Duration,
    /// `-v`: every connection prints its transcript on stderr.
    verbose: bool,
}

/// `-v`: one transcript line (`C: ...`/`S: ...`, AUTH redacted) on stderr.
fn transcript_line(line: &str) {
    eprintln!("{}", visible(line));
}

/// Server text made safe for a terminal: the lines of a multi-line reply joined with
/// spaces, and every other control character shown as an escape (`\x1b`, `\u{9b}`), so
/// that no reply can move the cursor, recolour or retitle the user's terminal. JSON
/// output needs none of this: its strings escape control characters already.
fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", " ").chars() {
        match c {
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Runs `smtp send`; returns the exit status.
pub(crate) fn main(args: SendArgs) -> u8 {
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("smtp send: {e}");
            return EX_USAGE;
        }
    };
    let signers = match crate::dkim::Signers::load(&args.dkim_sign) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smtp send: {e}");
            return EX_CONFIG;
        }
    };
    if let Some(count) = args.count {
        return load(&plan, &args, count, &signers);
    }
    let mut env = match envelope(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("smtp send: {e}");
            return EX_USAGE;
        }
    };
    let recipients: Vec<String> = env.recipients.iter().map(|r| address(&r.to)).collect();
    let body = match open_body(&args, &mut env) {
        Ok(b) => b,
        Err(BodyError::File(e)) => {
            eprintln!("smtp send: {e}");
            return EX_USAGE;
        }
        Err(BodyError::Stdin(e)) => {
            return report_failure(&Failure::Body(e.to_string()), &recipients, args.json);
        }
    };
    let body = match sign_body(&signers, body, &mut env) {
        Ok(b) => b,
        Err(e) => return report_failure(&Failure::Body(e.to_string()), &recipients, args.json),
    };
    let result = match args.io {
        Io::Tokio => tokio_client::send(&plan, env, body),
        Io::Blocking => blocking_client::send(&plan, env, body),
    };
    match result {
        Ok(sent) => {
            if let Some(error) = &sent.error {
                // The session failed after the message got its outcome (an unsolicited
                // reply, DATA answered with 250): say why.
                eprintln!("smtp send: {}", visible(&error.to_string()));
            }
            report(&sent.outcome, sent.tls, sent.auth.as_deref(), args.json);
            exit_status(&sent.outcome)
        }
        Err(failure) => report_failure(&failure, &recipients, args.json),
    }
}

fn plan(args: &SendArgs) -> Result<Plan, String> {
    let mut config = ClientConfig::new(&args.helo).map_err(|e| format!("--helo: {e}"))?;
    config.lmtp = args.lmtp;
    config.starttls = match args.starttls {
        StartTlsArg::Required => StartTls::Required,
        StartTlsArg::Opportunistic => StartTls::Opportunistic,
        StartTlsArg::Never => StartTls::Never,
    };
    config.allow_cleartext_auth = args.allow_insecure_auth;
    config.transcript = args.verbose;
    if let Some(t) = args.timeout {
        config.timeouts = ClientTimeouts::all(Duration::from_secs(t));
    }
    if let Some(auth) = &args.auth {
        let (user, pass) = match auth.split_once(':') {
            Some((u, p)) => (u.to_owned(), p.to_owned()),
            None => (
                auth.clone(),
                std::env::var("SMTP_PASSWORD")
                    .map_err(|_| "--auth USER needs SMTP_PASSWORD or USER:PASS")?,
            ),
        };
        let mechanism = args
            .mechanism
            .as_deref()
            .map(|m| Mechanism::parse(m).map_err(|e| e.to_string()))
            .transpose()?;
        config.credentials = Some(if mechanism == Some(Mechanism::XOAuth2) {
            ClientCredentials::token(user, pass)
        } else {
            ClientCredentials::password(user, pass)
        });
        config.mechanism = mechanism;
    } else if args.mechanism.is_some() {
        return Err("--mechanism needs --auth".into());
    }
    let host = host_of(&args.server)
        .ok_or_else(|| format!("--server {}: expected HOST:PORT", args.server))?;
    let tls = if args.tls || args.starttls != StartTlsArg::Never {
        ServerName::try_from(host.to_owned()).map_err(|e| format!("--server: {e}"))?;
        Some(tls_config(args)?)
    } else {
        None
    };
    Ok(Plan {
        addr: args.server.clone(),
        host: host.to_owned(),
        config: Arc::new(config),
        tls,
        implicit_tls: args.tls,
        connect_timeout: Duration::from_secs(args.timeout.unwrap_or(30)),
        verbose: args.verbose,
    })
}

/// `host` of `host:port` or `[v6]:port`.
fn host_of(server: &str) -> Option<&str> {
    if let Some(rest) = server.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h);
    }
    server
        .rsplit_once(':')
        .map(|(h, _)| h)
        .filter(|h| !h.is_empty())
}

/// The client TLS configuration of `--insecure`, `--ca-file` or the web PKI roots, from
/// the adapters' shared `tls` module.
fn tls_config(args: &SendArgs) -> Result<Arc<rustls::ClientConfig>, String> {
    let verification = if args.insecure {
        Verification::Insecure
    } else if let Some(path) = &args.ca_file {
        Verification::CaFile(path.clone())
    } else {
        Verification::WebPki
    };
    smtp_tokio::tls::client_config(&verification).map_err(|e| e.to_string())
}

/// A connector of either adapter (`C`) for the plan: the same builder, configured once.
fn connector<C: Connect<Tls = Arc<rustls::ClientConfig>>>(plan: &Plan) -> Result<C, Error> {
    let mut builder = host::Builder::<C>::new(ClientConfig::clone(&plan.config))
        .implicit_tls(plan.implicit_tls)
        .server_name(plan.host.clone())
        .connect_timeout(plan.connect_timeout);
    if let Some(tls) = &plan.tls {
        builder = builder.tls(Arc::clone(tls));
    }
    if plan.verbose {
        builder = builder.transcript(transcript_line);
    }
    builder.build()
}

/// Why a message got no outcome, from the adapters' one error type.
fn failure(e: Error) -> Failure {
    match e {
        Error::Resolve { error, .. } | Error::Connect { error, .. } => {
            Failure::Connect(error.to_string())
        }
        Error::Tls(e) => Failure::Tls(e.to_string()),
        e @ (Error::ServerName(_) | Error::TlsConfig(_)) => Failure::Tls(e.to_string()),
        Error::Io(e) => Failure::Io(e.to_string()),
        Error::Body(e) => Failure::Body(e.to_string()),
        Error::Session(e) => Failure::Session(e),
        Error::Usage(_) => Failure::Closed,
        e => Failure::Io(e.to_string()),
    }
}

fn mailbox(s: &str, what: &str) -> Result<Mailbox<'static>, String> {
    let s = s.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    Mailbox::parse(s)
        .map(Mailbox::into_owned)
        .map_err(|e| format!("{what} {s:?}: {e}"))
}

fn envelope(args: &SendArgs) -> Result<Envelope, String> {
    if args.to.is_empty() {
        return Err("at least one --to is needed".into());
    }
    let from = match args.from.trim() {
        "" | "<>" => ReversePath::Null,
        s => ReversePath::Mailbox(mailbox(s, "--from")?),
    };
    let mut recipients = Vec::new();
    for to in &args.to {
        let path = if to
            .trim()
            .trim_matches(['<', '>'])
            .eq_ignore_ascii_case("postmaster")
        {
            ForwardPath::Postmaster
        } else {
            ForwardPath::Mailbox(mailbox(to, "--to")?)
        };
        recipients.push(Recipient::new(path));
    }
    Ok(Envelope::new(from, recipients))
}

/// A message on standard input is kept in memory up to this size, and spooled to a
/// temporary file beyond it.
const STDIN_IN_MEMORY: usize = 1024 * 1024;

/// What BODY= a scanned message needs.
fn body_type(scanner: BodyScanner) -> BodyType {
    match scanner.finish().kind() {
        smtp_proto::data::BodyKind::SevenBit => BodyType::SevenBit,
        smtp_proto::data::BodyKind::EightBitMime => BodyType::EightBitMime,
        smtp_proto::data::BodyKind::BinaryMime => BodyType::BinaryMime,
    }
}

/// Scans a file once to learn its size and what BODY= it needs.
fn scan_file(path: &PathBuf) -> std::io::Result<(u64, BodyType)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut scanner = BodyScanner::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        scanner.update(&buf[..n]);
    }
    Ok((size, body_type(scanner)))
}

/// Reads a whole message from `input` before anything is sent, so that it is declared
/// like a file (SIZE=, BODY=) and checked against the server's SIZE before MAIL: in
/// memory up to [`STDIN_IN_MEMORY`], beyond that in a temporary file that has no name
/// and goes away when closed.
fn spool(mut input: impl std::io::Read) -> std::io::Result<(Body, u64, BodyType)> {
    use std::io::{Seek, Write};
    let mut scanner = BodyScanner::new();
    let mut memory = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut spill: Option<std::fs::File> = None;
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        size += n as u64;
        scanner.update(&buf[..n]);
        match spill.as_mut() {
            Some(file) => file.write_all(&buf[..n])?,
            None if memory.len() + n <= STDIN_IN_MEMORY => memory.extend_from_slice(&buf[..n]),
            None => {
                let mut file = tempfile::tempfile()?;
                file.write_all(&memory)?;
                file.write_all(&buf[..n])?;
                memory = Vec::new();
                spill = Some(file);
            }
        }
    }
    let body = match spill {
        Some(mut file) => {
            file.rewind()?;
            Body::File(file)
        }
        None => Body::Memory(memory),
    };
    Ok((body, size, body_type(scanner)))
}

/// Where the message comes from: a file, or standard input read whole (in memory, or
/// spooled to a temporary file).
pub(super) enum Body {
    File(std::fs::File),
    Memory(Vec<u8>),
}

/// Why the message could not be read.
enum BodyError {
    /// `--file` cannot be read: a usage error.
    File(String),
    /// Standard input failed.
    Stdin(std::io::Error),
}

/// Reads or opens the body and completes the envelope with what is known of it, the
/// same for a file and for standard input: its size and the BODY= it needs.
fn open_body(args: &SendArgs, env: &mut Envelope) -> Result<Body, BodyError> {
    let Some(path) = &args.file else {
        let (body, size, kind) = spool(std::io::stdin().lock()).map_err(BodyError::Stdin)?;
        env.size = Some(size);
        env.body = kind;
        return Ok(body);
    };
    let failed = |e: std::io::Error| BodyError::File(format!("{}: {e}", path.display()));
    let (size, kind) = scan_file(path).map_err(failed)?;
    env.size = Some(size);
    env.body = kind;
    std::fs::File::open(path).map(Body::File).map_err(failed)
}

/// The message with its DKIM signatures in front, read whole (signing needs all of it) and
/// with CRLF line endings; the envelope's SIZE follows. BODY= does not change: the fields are ASCII.
fn sign_body(
    signers: &crate::dkim::Signers,
    body: Body,
    env: &mut Envelope,
) -> std::io::Result<Body> {
    if signers.is_empty() {
        return Ok(body);
    }
    let message = match body {
        Body::Memory(m) => m,
        Body::File(mut f) => {
            let mut m = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut m)?;
            m
        }
    };
    // Signed as it will travel: the DATA encoder turns bare CR and LF into CRLF.
    let message = signers.signed(smtp_proto::data::normalize_line_endings(&message));
    env.size = Some(message.len() as u64);
    Ok(Body::Memory(message))
}

/// A message the server answered.
pub(super) struct Sent {
    pub(super) outcome: MessageOutcome,
    pub(super) tls: bool,
    /// The AUTH mechanism used.
    pub(super) auth: Option<String>,
    /// Why the session failed after (or while) the message got its outcome.
    pub(super) error: Option<ClientError>,
}

/// Why a message got no outcome, in the same words whichever adapter.
#[derive(Debug)]
pub(super) enum Failure {
    /// No connection: the name did not resolve, the server refused, or time ran out.
    Connect(String),
    /// The TLS handshake failed (certificate, protocol).
    Tls(String),
    /// The connection broke, or the runtime could not start.
    Io(String),
    /// Reading the message failed.
    Body(String),
    /// The session failed (greeting, EHLO, STARTTLS, AUTH, 421, timeout...).
    Session(ClientError),
    /// The session closed.
    Closed,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::Io(e) => write!(f, "connection: {e}"),
            Failure::Body(e) => write!(f, "reading the message: {e}"),
            Failure::Session(e) => write!(f, "{e}"),
            Failure::Closed => f.write_str("the session is closed"),
        }
    }
}

/// A message without an outcome: the reason on stderr, with `--json` one object on
/// stdout that gives every recipient the session's last reply; the exit status.
fn report_failure(failure: &Failure, recipients: &[String], json: bool) -> u8 {
    eprintln!("smtp send: {}", visible(&failure.to_string()));
    let (reply, permanent) = match failure {
        Failure::Session(err) => (err.reply().cloned(), err.is_permanent()),
        _ => (None, false),
    };
    if json {
        let status = if permanent { "permanent" } else { "temporary" };
        let out = serde_json::json!({
            "status": status,
            "recipients": recipients.iter().map(|a| serde_json::json!({
                "address": a, "code": reply.as_ref().map(|r| r.code().get()),
                "enhanced": reply.as_ref().and_then(|r| r.enhanced()).map(|e| e.to_string()),
                "text": reply.as_ref().map(Reply::text),
            })).collect::<Vec<_>>(),
            "reply": reply.as_ref().map(reply_json),
            "tls": false,
            "auth": null,
        });
        println!("{out}");
    }
    if permanent {
        EX_UNAVAILABLE
    } else {
        EX_TEMPFAIL
    }
}

fn address(path: &ForwardPath<'_>) -> String {
    match path {
        ForwardPath::Postmaster => "Postmaster".into(),
        ForwardPath::Mailbox(m) => m.to_string(),
    }
}

fn reply_json(r: &Reply) -> serde_json::Value {
    serde_json::json!({
        "code": r.code().get(),
        "enhanced": r.enhanced().map(|e| e.to_string()),
        "text": r.text(),
    })
}

fn status_word(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Partial => "partial",
        // An unanswered final dot: not known to be delivered, so retry-worthy.
        DeliveryStatus::Temporary | DeliveryStatus::Unknown => "temporary",
        DeliveryStatus::Permanent => "permanent",
    }
}

fn report(o: &MessageOutcome, tls: bool, auth: Option<&str>, json: bool) {
    if json {
        let out = serde_json::json!({
            "status": status_word(o.status),
            "recipients": o.recipients.iter().map(|r| serde_json::json!({
                "address": address(&r.to),
                "code": r.reply.as_ref().map(|x| x.code().get()),
                "enhanced": r.reply.as_ref().and_then(|x| x.enhanced()).map(|e| e.to_string()),
                "text": r.reply.as_ref().map(Reply::text),
            })).collect::<Vec<_>>(),
            "reply": o.reply.as_ref().map(reply_json),
            "tls": tls,
            "auth": auth,
        });
        println!("{out}");
        return;
    }
    for r in &o.recipients {
        let reply = r
            .reply
            .as_ref()
            .map_or_else(|| "no reply".to_owned(), |x| visible(&x.to_string()));
        println!("{}: {reply}", visible(&address(&r.to)));
    }
    if let Some(refused) = o.refused {
        println!("refused locally: {refused}");
    }
    let final_reply = o
        .reply
        .as_ref()
        .map_or_else(String::new, |r| format!(" ({})", visible(&r.to_string())));
    println!("{}{final_reply}", status_word(o.status));
    println!(
        "tls: {}, auth: {}",
        if tls { "yes" } else { "no" },
        auth.unwrap_or("none")
    );
}

fn exit_status(o: &MessageOutcome) -> u8 {
    let permanent = o.status == DeliveryStatus::Permanent
        || o.recipients
            .iter()
            .any(|r| r.status == RecipientStatus::Permanent);
    let temporary = matches!(
        o.status,
        DeliveryStatus::Temporary | DeliveryStatus::Unknown
    ) || o.recipients.iter().any(|r| {
        matches!(
            r.status,
            RecipientStatus::Temporary | RecipientStatus::Unknown
        )
    });
    if permanent {
        EX_UNAVAILABLE
    } else if temporary {
        EX_TEMPFAIL
    } else {
        0
    }
}

/// A generated message of about `size` octets, with CRLF lines of 76 characters.
fn generated_message(size: usize) -> Vec<u8> {
    let mut m =
        b"From: load@localhost\r\nTo: sink@localhost\r\nSubject: smtp send load test\r\n\r\n"
            .to_vec();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

/// What the load mode's connections share.
pub(super) struct LoadJob {
    envelope: Envelope,
    message: Arc<Vec<u8>>,
    /// Messages per connection, one entry per connection.
    shares: Vec<u64>,
    /// What the connections have done so far, for the progress line.
    counters: Arc<progress::Counters>,
}

/// How the load went.
pub(super) struct Tally {
    sent: u64,
    failed: u64,
    elapsed: Duration,
    /// Per message with a final reply: microseconds from MAIL to that reply.
    latencies_us: Vec<u32>,
}

/// What one load connection did.
#[derive(Default)]
pub(super) struct ConnectionTally {
    sent: u64,
    failed: u64,
    latencies_us: Vec<u32>,
}

impl ConnectionTally {
    /// Counts a message, here and in the shared counters; `latency` when it got a final
    /// reply.
    fn record(&mut self, sent: bool, latency: Option<Duration>, counters: &progress::Counters) {
        if sent {
            self.sent += 1;
            counters.sent();
        } else {
            self.failed += 1;
            counters.failed();
        }
        if let Some(d) = latency {
            self.latencies_us.push(progress::micros(d));
        }
    }

    /// Adds `other` to this one.
    fn merge(mut self, other: ConnectionTally) -> ConnectionTally {
        self.sent += other.sent;
        self.failed += other.failed;
        self.latencies_us.extend(other.latencies_us);
        self
    }
}

/// Load mode: `count` generated messages over `--concurrency` connections. Prints
/// `sent N messages in S s (R msg/s)` and the failure count, or with `--json` one object.
/// On a terminal, stderr shows a progress line while it runs and a summary with the
/// latency percentiles at the end.
fn load(plan: &Plan, args: &SendArgs, count: u64, signers: &crate::dkim::Signers) -> u8 {
    let mut envelope = match envelope_or_default(args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("smtp send: {e}");
            return EX_USAGE;
        }
    };
    // Every connection sends the same message: signed once.
    let message = Arc::new(signers.signed(generated_message(args.size)));
    envelope.size = Some(message.len() as u64);
    let concurrency = args.concurrency.clamp(1, count.max(1));
    // Spread `count` over the connections exactly.
    let shares = (0..concurrency)
        .map(|i| count / concurrency + u64::from(i < count % concurrency))
        .collect();
    let job = LoadJob {
        envelope,
        message,
        shares,
        counters: Arc::default(),
    };
    let ticker = std::io::IsTerminal::is_terminal(&std::io::stderr())
        .then(|| progress::Ticker::start(Arc::clone(&job.counters), std::time::Instant::now()));
    let tally = match args.io {
        Io::Tokio => tokio_client::load(plan, &job),
        Io::Blocking => blocking_client::load(plan, &job),
    };
    let Tally {
        sent,
        mut failed,
        elapsed,
        mut latencies_us,
    } = match tally {
        Ok(t) => t,
        Err(e) => {
            if let Some(ticker) = ticker {
                ticker.finish("");
            }
            eprintln!("smtp send: {e}");
            return EX_TEMPFAIL;
        }
    };
    failed += count - sent - failed;
    let latency = progress::Percentiles::of(&mut latencies_us);
    if let Some(ticker) = ticker {
        ticker.finish(&progress::summary_line(sent, failed, elapsed, latency));
    }
    let secs = elapsed.as_secs_f64();
    let rate = sent as f64 / secs.max(1e-9);
    if args.json {
        let out = serde_json::json!({
            "sent": sent,
            "failed": failed,
            "elapsed_s": secs,
            "msg_per_s": rate,
            "latency_ms": latency.as_ref().map(progress::Percentiles::json),
        });
        println!("{out}");
    } else {
        println!("sent {sent} messages in {secs:.2} s ({rate:.1} msg/s)");
        println!("{failed} failed");
    }
    if failed == 0 { 0 } else { EX_TEMPFAIL }
}

fn envelope_or_default(args: &SendArgs) -> Result<Envelope, String> {
    if args.to.is_empty() {
        let to = Recipient::new(ForwardPath::Mailbox(mailbox("sink@localhost", "--to")?));
        let from = match args.from.trim() {
            "" | "<>" => ReversePath::Null,
            s => ReversePath::Mailbox(mailbox(s, "--from")?),
        };
        return Ok(Envelope::new(from, vec![to]));
    }
    envelope(args)
}

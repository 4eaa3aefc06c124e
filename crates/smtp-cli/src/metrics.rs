//! `smtp serve --metrics-listen ADDR`: counters, gauges and histograms of the server and
//! its relay, served at `GET /metrics` in the OpenMetrics text format (which Prometheus
//! scrapes) by the official `prometheus-client` crate.
//!
//! The metrics live in one process-wide [`Metrics`], set once when the flag is given;
//! the free functions here are what the hosts, the session logic and the relay call, and
//! do nothing (one atomic load) without the flag. The HTTP side is `tiny_http` on a thread
//! of its own: it serves `--io tokio` and `--io blocking` alike, and a scrape never waits
//! for a session (the counters are atomics; the encoder only reads them).
//!
//! There is no listener unless the flag is given; a non-loopback address is allowed (a
//! scraper on another machine needs one) but logged as a warning.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use smtp_proto::Reply;
use smtp_proto::sasl::Mechanism;
use smtp_proto::server::host::Context;
use smtp_proto::server::{AbortReason, Event};
use smtp_relay::spool::Status;

use crate::EX_CONFIG;
use crate::policy::Verdict;

/// The `Content-Type` of what [`prometheus_client::encoding::text::encode`] writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which limit refused a connection (`smtp_connections_refused_total{limit}`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Limit {
    /// `--max-connections`: `421 4.3.2`.
    MaxConnections,
    /// `--max-connections-per-ip`: `421 4.7.0`.
    PerIp,
}

/// Where in the transaction a refusal was given (`smtp_messages_rejected_total{stage}`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stage {
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// The end of the message data (or, in LMTP, one recipient's delivery).
    Data,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MechanismLabel {
    mechanism: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    stage: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Every metric `smtp serve` keeps; the README's "Metrics" section lists them.
#[derive(Debug)]
pub(crate) struct Metrics {
    connections_open: Gauge,
    connections: Counter,
    connections_refused: Family<LimitLabel, Counter>,
    tls_sessions: Family<VersionLabel, Counter>,
    auth_successes: Family<MechanismLabel, Counter>,
    auth_failures: Family<MechanismLabel, Counter>,
    messages_accepted: Counter,
    messages_rejected: Family<RejectionLabels, Counter>,
    received: Counter,
    message_size: Histogram,
    queue_messages: Gauge,
    queue_deferred: Gauge,
    delivery_attempts: Family<OutcomeLabel, Counter>,
    delivery_delay: Histogram,
}

impl Metrics {
    /// The metrics, registered in `registry` (names as the README lists them, under the
    /// registry's prefix).
    pub(crate) fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            connections_open: Gauge::default(),
            connections: Counter::default(),
            connections_refused: Family::default(),
            tls_sessions: Family::default(),
            auth_successes: Family::default(),
            auth_failures: Family::default(),
            messages_accepted: Counter::default(),
            messages_rejected: Family::default(),
            received: Counter::default(),
            // 1 KiB to 64 MiB, by fours.
            message_size: Histogram::new(exponential_buckets(1024.0, 4.0, 9)),
            queue_messages: Gauge::default(),
            queue_deferred: Gauge::default(),
            delivery_attempts: Family::default(),
            // 1 second to about 3 days, by fours (a retry schedule's scale).
            delivery_delay: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
        };
        let r = registry;
        r.register(
            "connections_open",
            "Sessions open now",
            m.connections_open.clone(),
        );
        r.register(
            "connections",
            "Connections accepted, including those refused by a limit",
            m.connections.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused by --max-connections or --max-connections-per-ip",
            m.connections_refused.clone(),
        );
        r.register(
            "tls_sessions",
            "TLS handshakes completed (STARTTLS or implicit TLS), by protocol version",
            m.tls_sessions.clone(),
        );
        r.register(
            "auth_successes",
            "Successful AUTH, by SASL mechanism",
            m.auth_successes.clone(),
        );
        r.register(
            "auth_failures",
            "Refused AUTH, by SASL mechanism",
            m.auth_failures.clone(),
        );
        r.register(
            "messages_accepted",
            "Messages accepted (LMTP: recipient deliveries)",
            m.messages_accepted.clone(),
        );
        r.register(
            "messages_rejected",
            "Refusals of MAIL, RCPT and messages, by stage and enhanced status code",
            m.messages_rejected.clone(),
        );
        r.register_with_unit(
            "received",
            "Message data received",
            Unit::Bytes,
            m.received.clone(),
        );
        r.register_with_unit(
            "message_size",
            "Size of accepted messages",
            Unit::Bytes,
            m.message_size.clone(),
        );
        r.register(
            "queue_messages",
            "Messages in the relay queue",
            m.queue_messages.clone(),
        );
        r.register(
            "queue_deferred_messages",
            "Messages in the relay queue waiting for a retry after a failed attempt",
            m.queue_deferred.clone(),
        );
        r.register(
            "delivery_attempts",
            "Relay delivery attempts, one per recipient, by outcome",
            m.delivery_attempts.clone(),
        );
        r.register_with_unit(
            "delivery_delay",
            "From a message's arrival to its delivery to the next hop, per recipient",
            Unit::Seconds,
            m.delivery_delay.clone(),
        );
        m
    }
}

/// The process's metrics, once `--metrics-listen` set them up.
static METRICS: OnceLock<Metrics> = OnceLock::new();

fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// A connection's admission by the host (the per-IP limit); `admitted` is returned.
pub(crate) fn connected<T, E>(admitted: Result<T, E>) -> Result<T, E> {
    if let Some(m) = get() {
        m.connections.inc();
        match &admitted {
            Ok(_) => {
                m.connections_open.inc();
            }
            Err(_) => refused_by(m, Limit::PerIp),
        }
    }
    admitted
}

/// A connection over `--max-connections` was refused by the adapter.
pub(crate) fn refused(limit: Limit) {
    if let Some(m) = get() {
        m.connections.inc();
        refused_by(m, limit);
    }
}

fn refused_by(m: &Metrics, limit: Limit) {
    let limit = match limit {
        Limit::MaxConnections => "max-connections",
        Limit::PerIp => "per-ip",
    };
    m.connections_refused
        .get_or_create(&LimitLabel { limit })
        .inc();
}

/// An admitted session ended.
pub(crate) fn disconnected() {
    if let Some(m) = get() {
        m.connections_open.dec();
    }
}

/// A session's event: TLS is up after STARTTLS, or a session on an implicit-TLS
/// listener started (its handshake came first).
pub(crate) fn event(ctx: &Context<'_>, event: &Event) {
    let Some(m) = get() else { return };
    let tls_up = match event {
        Event::TlsEstablished => true,
        Event::Connected => ctx.tls_version.is_some(),
        _ => false,
    };
    if !tls_up {
        return;
    }
    let version = match ctx.tls_version {
        Some(0x0304) => "TLSv1.3".to_owned(),
        Some(0x0303) => "TLSv1.2".to_owned(),
        Some(v) => format!("0x{v:04x}"),
        None => "unknown".to_owned(),
    };
    m.tls_sessions
        .get_or_create(&VersionLabel { version })
        .inc();
}

/// AUTH with `mechanism` was decided; `verdict` is returned.
pub(crate) fn auth(mechanism: &Mechanism, verdict: Verdict) -> Verdict {
    if let Some(m) = get() {
        let family = if verdict.is_accept() {
            &m.auth_successes
        } else {
            &m.auth_failures
        };
        let mechanism = mechanism.as_str().to_owned();
        family.get_or_create(&MechanismLabel { mechanism }).inc();
    }
    verdict
}

/// MAIL or RCPT was decided; a refusal is counted, `verdict` returned.
pub(crate) fn decided(stage: Stage, verdict: Verdict) -> Verdict {
    if let Some(m) = get() {
        rejected(m, stage, &verdict);
    }
    verdict
}

/// The end of a message of `size` octets was decided: accepted (and its size
/// observed) or refused. `verdict` is returned.
pub(crate) fn message_end(size: u64, verdict: Verdict) -> Verdict {
    if let Some(m) = get() {
        if verdict.is_accept() {
            m.messages_accepted.inc();
            m.message_size.observe(size as f64);
        } else {
            rejected(m, Stage::Data, &verdict);
        }
    }
    verdict
}

fn rejected(m: &Metrics, stage: Stage, verdict: &Verdict) {
    if !verdict.is_accept() {
        rejected_with(m, stage, verdict.reply());
    }
}

/// A refusal at `stage` with `reply`, counted under its enhanced code.
fn rejected_with(m: &Metrics, stage: Stage, reply: Option<&Reply>) {
    let stage = match stage {
        Stage::Mail => "mail",
        Stage::Rcpt => "rcpt",
        Stage::Data => "data",
    };
    // The enhanced code (RFC 3463) says why; a reply without one, its basic code.
    let reason = reply.map_or_else(String::new, |r| {
        r.enhanced()
            .map_or_else(|| r.code().to_string(), |e| e.to_string())
    });
    m.messages_rejected
        .get_or_create(&RejectionLabels { stage, reason })
        .inc();
}

/// A message was aborted: a body the protocol machine refused itself (too big, bare
/// line endings, a line too long) is counted under its reply's code; a client gone, a
/// time-out or a reset is no rejection.
pub(crate) fn aborted(reason: AbortReason) {
    if let (Some(m), AbortReason::Data(e)) = (get(), reason) {
        rejected_with(m, Stage::Data, Some(&e.reply()));
    }
}

/// `len` octets of message data arrived.
pub(crate) fn received(len: usize) {
    if let Some(m) = get() {
        m.received.inc_by(len as u64);
    }
}

/// What the relay reports ([`smtp_relay::engine::RelayObserver`]), into the metrics.
#[derive(Debug)]
pub(crate) struct RelayMetrics;

impl smtp_relay::engine::RelayObserver for RelayMetrics {
    fn attempted(&self, status: Status, delay: Duration) {
        let Some(m) = get() else { return };
        let outcome = match status {
            Status::Delivered => {
                m.delivery_delay.observe(delay.as_secs_f64());
                "delivered"
            }
            Status::Failed => "bounced",
            Status::Deferred | Status::Queued => "deferred",
        };
        m.delivery_attempts
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    fn queue(&self, messages: usize, deferred: usize) {
        if let Some(m) = get() {
            m.queue_messages
                .set(i64::try_from(messages).unwrap_or(i64::MAX));
            m.queue_deferred
                .set(i64::try_from(deferred).unwrap_or(i64::MAX));
        }
    }
}

/// The relay's observer when the metrics are on.
pub(crate) fn relay_observer() -> Option<Arc<dyn smtp_relay::engine::RelayObserver>> {
    get().map(|_| Arc::new(RelayMetrics) as Arc<dyn smtp_relay::engine::RelayObserver>)
}

/// The running `/metrics` listener; dropping it stops it.
pub(crate) struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The bound metrics address, for the `listening on` lines.
static BOUND: OnceLock<SocketAddr> = OnceLock::new();

/// Sets up the metrics and serves them on `addr` (`--metrics-listen`); `Err` is the exit
/// status (the reason is printed).
pub(crate) fn serve(addr: &str) -> Result<MetricsServer, u8> {
    let server = match tiny_http::Server::http(addr) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("smtp serve: cannot listen on {addr} (--metrics-listen): {e}");
            return Err(EX_CONFIG);
        }
    };
    let bound = server.server_addr().to_ip();
    if let Some(bound) = bound {
        if !bound.ip().is_loopback() {
            tracing::warn!(
                %bound,
                "--metrics-listen: not a loopback address; whoever can reach it reads \
                 the server's counts"
            );
        }
        let _ = BOUND.set(bound);
    }
    let mut registry = Registry::with_prefix("smtp");
    let _ = METRICS.set(Metrics::new(&mut registry));
    let registry = Arc::new(registry);
    let serving = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("smtp-metrics".into())
        .spawn(move || {
            for request in serving.incoming_requests() {
                respond(request, &registry);
            }
        })
        .map_err(|e| {
            eprintln!("smtp serve: cannot start the metrics thread: {e}");
            crate::EX_SOFTWARE
        })?;
    Ok(MetricsServer {
        server,
        thread: Some(thread),
    })
}

/// `GET` (or `HEAD`) `/metrics`: the registry encoded; another path, 404; another
/// method, 405.
fn respond(request: tiny_http::Request, registry: &Registry) {
    use tiny_http::{Header, Method, Response};
    let path = request.url().split('?').next().unwrap_or("");
    let get = matches!(request.method(), Method::Get | Method::Head);
    let header = |name: &str, value: &str| {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
    };
    let plain = header("Content-Type", "text/plain; charset=utf-8");
    let response = if path != "/metrics" {
        Response::from_string("not found\n")
            .with_status_code(404)
            .with_header(plain)
    } else if !get {
        Response::from_string("method not allowed\n")
            .with_status_code(405)
            .with_header(plain)
            .with_header(header("Allow", "GET, HEAD"))
    } else {
        let mut body = String::new();
        match prometheus_client::encoding::text::encode(&mut body, registry) {
            Ok(()) => Response::from_string(body).with_header(header("Content-Type", CONTENT_TYPE)),
            Err(_) => Response::from_string("cannot encode the metrics\n")
                .with_status_code(500)
                .with_header(plain),
        }
    };
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "metrics: cannot answer a scrape");
    }
}

/// Prints the `listening on <addr> (metrics)` line, after the SMTP listeners' lines.
pub(crate) fn announce(out: &mut impl io::Write) {
    if let Some(addr) = BOUND.get() {
        let _ = writeln!(out, "listening on {addr} (metrics)");
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

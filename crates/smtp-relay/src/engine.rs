//! The queue manager: what is due is delivered, what comes back is recorded.
//!
//! The disk is the source of truth and memory a cache (Postfix's `qmgr`): at start every
//! queued message is loaded from the [`Store`]; a message the server just acknowledged
//! is announced through a [`RelayHandle`]. Due recipients of a message are grouped by
//! [`Route`] and each group goes out as one transaction, at most
//! `outbound_concurrency` at a time and `destination_concurrency` per route. Each
//! result is recorded in the store before the next decision about that message, one
//! log line per attempt and group says what happened, and a message leaves the queue
//! when every recipient is delivered or has failed.
//!
//! After each attempt [`crate::notify::plan`] says which reports the sender gets
//! (failed, delayed, relayed); they are composed ([`crate::dsn`]) and stored through
//! [`LocalDelivery`] for a local sender or queued here from `<>` ([`submit_report`]),
//! beside the loop and before the attempt's result is recorded, so a crash in between
//! sends one twice rather than never. A message goes as its envelope and header ask:
//! REQUIRETLS only over verified TLS, `TLS-Required: No` over whatever the next hop
//! offers; one with more than [`HOP_LIMIT`] `Received:` lines, or whose next hop is one
//! of this server's listening addresses, fails with `5.4.6`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use smtp_proto::client::host::Verification;
use smtp_proto::client::{
    ClientTimeouts, Envelope as ClientEnvelope, Recipient as ClientRecipient,
};
use smtp_proto::params::{BodyType, Notify, Orcpt, Ret, XText};
use smtp_proto::sasl::ClientCredentials;
use smtp_proto::{ForwardPath, Mailbox, ReversePath};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::deliver::{Attempt, Mode, Outbound, OutboundConfig, TlsPolicy, rand_u64};
use crate::dns::Dns;
use crate::dsn::Composed;
use crate::headers::{HOP_LIMIT, HeaderScan};
use crate::notify::{self, Notice, Occasion, Settings};
use crate::outcome::{self, Verdict};
use crate::route::{Route, Routes};
use crate::schedule::RetrySchedule;
use crate::spool::{
    self, Entry, Envelope, Recipient, SpoolWriter as _, Status, Store, from_unix_secs,
};

/// How a relay delivers.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where each domain goes.
    pub routes: Routes,
    /// When to try again, when to give up.
    pub schedule: RetrySchedule,
    /// The name in our EHLO (`--outbound-helo`).
    pub helo: String,
    /// Names of this server: an MX list that leads back here is a loop.
    pub local_names: Vec<String>,
    /// TLS towards next hops.
    pub tls: TlsPolicy,
    /// How certificates are checked when they are (required and implicit TLS).
    pub verification: Verification,
    /// AUTH to the smarthost.
    pub credentials: Option<ClientCredentials>,
    /// DNS servers (`--dns-server`); the system's when empty.
    pub dns_servers: Vec<SocketAddr>,
    /// Deliveries at once, in all.
    pub outbound_concurrency: usize,
    /// Deliveries at once to one route.
    pub destination_concurrency: usize,
    /// How long a TCP connection may take.
    pub connect_timeout: Duration,
    /// How long each reply may take (RFC 5321 §4.5.3.2 defaults).
    pub timeouts: ClientTimeouts,
    /// This server's name in reports (`Reporting-MTA`, `MAILER-DAEMON@`).
    pub hostname: String,
    /// Warn the sender once a message has waited this long (`--delay-warning`; `None`,
    /// the default, never: Postfix's `delay_warning_time = 0`).
    pub delay_warning: Option<Duration>,
    /// Where reports to local senders go; without it every report is queued.
    pub local: Option<Arc<dyn LocalDelivery>>,
    /// This server's listening addresses: a next hop there is a loop (`5.4.6`).
    pub listen: Vec<SocketAddr>,
    /// Who hears of each attempt and of the queue's size (metrics); nobody when `None`.
    pub observer: Option<Arc<dyn RelayObserver>>,
}

/// What a relay tells whoever watches it, so that this crate knows nothing of the
/// metrics system. Called from the relay's loop, so each call must be cheap and must not
/// block.
pub trait RelayObserver: std::fmt::Debug + Send + Sync + 'static {
    /// One recipient's delivery attempt ended, leaving it `status` (`Delivered`,
    /// `Deferred` or `Failed`), `delay` after the message arrived.
    fn attempted(&self, status: Status, delay: Duration);
    /// The queue holds `messages`, of which `deferred` wait for a retry after a failed
    /// attempt. Said whenever the relay's loop wakes.
    fn queue(&self, messages: usize, deferred: usize);
}

/// The mailboxes of the server the relay runs beside: a report to a sender there is
/// stored, not relayed.
pub trait LocalDelivery: std::fmt::Debug + Send + Sync + 'static {
    /// Whether mail for `address` (`user@domain`) is stored here.
    fn is_local(&self, address: &str) -> bool;
    /// Stores `message` (from `<>`) for `address`, durably. Blocking.
    fn store(&self, address: &str, message: &[u8]) -> io::Result<()>;
}

/// Sends a composed report to the original sender `to`: stored here when `local` says
/// the address is local, else queued in `store` from the null reverse-path (and with
/// `REQUIRETLS` when the original had it, RFC 8689 §5). `Some(id)` when queued: tell the
/// relay. Blocking.
pub fn submit_report<S: Store>(
    store: &S,
    local: Option<&dyn LocalDelivery>,
    to: &str,
    composed: &Composed,
    requiretls: bool,
) -> io::Result<Option<String>> {
    if let Some(local) = local.filter(|l| l.is_local(to)) {
        local.store(to, &composed.message)?;
        return Ok(None);
    }
    let now = SystemTime::now();
    let envelope = Envelope {
        id: spool::new_id(now, rand_u64()),
        from: String::new(),
        body: composed.eight_bit.then(|| "8BITMIME".to_owned()),
        smtputf8: composed.smtputf8,
        ret: None,
        envid: None,
        requiretls,
        recipients: vec![Recipient::new(to)],
        arrived: spool::unix_secs(now),
        size: composed.message.len() as u64,
    };
    let mut w = store.create(&envelope)?;
    io::Write::write_all(&mut w, &composed.message)?;
    w.commit()?;
    Ok(Some(envelope.id))
}

impl RelayConfig {
    /// Defaults as `smtp serve` has them, for a relay that says `helo`.
    pub fn new(helo: impl Into<String>) -> RelayConfig {
        let helo = helo.into();
        RelayConfig {
            hostname: helo.clone(),
            routes: Routes::new(25),
            schedule: RetrySchedule::default(),
            local_names: vec![helo.clone()],
            helo,
            tls: TlsPolicy::Opportunistic,
            verification: Verification::WebPki,
            credentials: None,
            dns_servers: Vec::new(),
            outbound_concurrency: 20,
            destination_concurrency: 5,
            connect_timeout: Duration::from_secs(30),
            timeouts: ClientTimeouts::default(),
            delay_warning: None,
            local: None,
            listen: Vec::new(),
            observer: None,
        }
    }
}

/// Tells a running [`Relay`] what happened outside it.
#[derive(Clone, Debug)]
pub struct RelayHandle {
    tx: mpsc::UnboundedSender<Command>,
}

#[derive(Debug)]
enum Command {
    Queued(String),
    Flush,
    Delete(String),
}

impl RelayHandle {
    /// A message was committed to the store: deliver it.
    pub fn queued(&self, id: &str) {
        let _ = self.tx.send(Command::Queued(id.to_owned()));
    }

    /// Attempts every deferred recipient now (`postqueue -f`).
    pub fn flush(&self) {
        let _ = self.tx.send(Command::Flush);
    }

    /// Removes a message from the queue (`postsuper -d`); a delivery under way finishes
    /// but its result is not recorded.
    pub fn delete(&self, id: &str) {
        let _ = self.tx.send(Command::Delete(id.to_owned()));
    }
}

/// A relay over a store. See the [module documentation](self).
pub struct Relay<S: Store> {
    store: Arc<S>,
    config: Arc<RelayConfig>,
    outbound: Arc<Outbound>,
    rx: mpsc::UnboundedReceiver<Command>,
    /// To announce the reports it queues itself.
    own: RelayHandle,
}

/// A message the manager knows, and which of its recipients are being delivered.
struct Tracked {
    entry: Entry,
    in_flight: HashSet<usize>,
    /// Each recipient's route, worked out once.
    routes: Vec<Route>,
    /// The last write of its state to the store, if one may still be running.
    persisting: Option<tokio::task::JoinHandle<()>>,
}

/// What a delivery task reports.
struct Done {
    id: String,
    recipients: Vec<usize>,
    attempt: Attempt,
    started: Instant,
}

impl<S: Store> Relay<S> {
    /// A relay delivering what `store` holds, and the handle to tell it about new mail.
    pub fn new(store: Arc<S>, config: RelayConfig) -> io::Result<(Relay<S>, RelayHandle)> {
        let dns = Dns::new(&config.dns_servers, Duration::from_secs(10))?;
        let outbound = Outbound::new(OutboundConfig {
            helo: &config.helo,
            tls: config.tls,
            verification: config.verification.clone(),
            credentials: config.credentials.clone(),
            local_names: config.local_names.clone(),
            own: config.listen.clone(),
            connect_timeout: config.connect_timeout,
            timeouts: config.timeouts,
            dns,
        })
        .map_err(io::Error::other)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = RelayHandle { tx };
        let relay = Relay {
            store,
            config: Arc::new(config),
            outbound: Arc::new(outbound),
            rx,
            own: handle.clone(),
        };
        Ok((relay, handle))
    }

    /// Delivers until `shutdown` completes; deliveries under way then get a few seconds
    /// to finish (what they do not finish is tried again after a restart).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut messages: BTreeMap<String, Tracked> = BTreeMap::new();
        for id in blocking(&self.store, |s| s.list())
            .await
            .unwrap_or_else(|e| {
                error!(error = %e, "cannot list the queue");
                Vec::new()
            })
        {
            self.load(&mut messages, &id).await;
        }
        info!(messages = messages.len(), "relay: queue loaded");
        let all = Arc::new(Semaphore::new(self.config.outbound_concurrency.max(1)));
        let mut per_route: HashMap<Route, Arc<Semaphore>> = HashMap::new();
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut removals = Vec::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.observe_queue(&messages);
            let now = SystemTime::now();
            let full = self.dispatch(&mut messages, &mut tasks, &all, &mut per_route, now);
            // What waits for a free slot waits for a delivery to finish, not the clock.
            let next = if full.all {
                None
            } else {
                self.next_due(&messages, &full.routes)
            };
            let sleep = async {
                match next.and_then(|t| t.duration_since(SystemTime::now()).ok()) {
                    Some(wait) => tokio::time::sleep(wait.min(Duration::from_secs(3600))).await,
                    None if next.is_some() => {}
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok(done) => self.finish(&mut messages, &mut removals, done),
                    Err(e) => error!(error = %e, "delivery task failed"),
                },
                Some(command) = self.rx.recv() => match command {
                    Command::Queued(id) => self.load(&mut messages, &id).await,
                    Command::Flush => {
                        for m in messages.values_mut() {
                            for s in &mut m.entry.states {
                                s.next_attempt = None;
                            }
                        }
                    }
                    Command::Delete(id) => {
                        messages.remove(&id);
                        if let Err(e) = blocking(&self.store, move |s| s.remove(&id)).await {
                            warn!(error = %e, "cannot delete a message");
                        }
                    }
                },
                () = sleep => {}
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        while !tasks.is_empty() {
            tokio::select! {
                Some(Ok(done)) = tasks.join_next() => self.finish(&mut messages, &mut removals, done),
                () = &mut deadline => {
                    info!(deliveries = tasks.len(), "relay: stopping with deliveries under way");
                    tasks.abort_all();
                    break;
                }
            }
        }
        // What was delivered is written down before the relay stops.
        for m in messages.values_mut() {
            if let Some(write) = m.persisting.take() {
                let _ = write.await;
            }
        }
        for write in removals {
            let _ = write.await;
        }
        self.outbound.close_idle().await;
        info!("relay: stopped");
    }

    /// Tells the observer, if any, how many messages are queued and deferred.
    fn observe_queue(&self, messages: &BTreeMap<String, Tracked>) {
        if let Some(observer) = &self.config.observer {
            let deferred = (messages.values())
                .filter(|m| m.entry.states.iter().any(|s| s.status == Status::Deferred))
                .count();
            observer.queue(messages.len(), deferred);
        }
    }

    async fn load(&self, messages: &mut BTreeMap<String, Tracked>, id: &str) {
        let owned = id.to_owned();
        match blocking(&self.store, move |s| s.load(&owned)).await {
            Ok(Some(entry)) => {
                let routes = (entry.envelope.recipients.iter())
                    .map(|r| self.config.routes.route(domain(&r.address)))
                    .collect();
                messages.entry(id.to_owned()).or_insert(Tracked {
                    entry,
                    in_flight: HashSet::new(),
                    routes,
                    persisting: None,
                });
            }
            Ok(None) => {}
            Err(e) => error!(queue_id = %id, error = %e, "cannot load a queued message"),
        }
    }

    /// Starts a delivery for every due group that has room; which limits were reached.
    fn dispatch(
        &self,
        messages: &mut BTreeMap<String, Tracked>,
        tasks: &mut JoinSet<Done>,
        all: &Arc<Semaphore>,
        per_route: &mut HashMap<Route, Arc<Semaphore>>,
        now: SystemTime,
    ) -> Full {
        let mut full = Full::default();
        for (id, tracked) in messages.iter_mut() {
            let mut groups: HashMap<Route, Vec<usize>> = HashMap::new();
            for (i, state) in tracked.entry.states.iter().enumerate() {
                if tracked.in_flight.contains(&i) || !outcome::is_due(state, now) {
                    continue;
                }
                let route = &tracked.routes[i];
                if !full.routes.contains(route) {
                    groups.entry(route.clone()).or_default().push(i);
                }
            }
            for (route, recipients) in groups {
                let limit = self.config.destination_concurrency.max(1);
                let sem = per_route
                    .entry(route.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(limit)));
                let Ok(local) = Arc::clone(sem).try_acquire_owned() else {
                    full.routes.insert(route);
                    continue;
                };
                let Ok(global) = Arc::clone(all).try_acquire_owned() else {
                    full.all = true;
                    return full;
                };
                tracked.in_flight.extend(recipients.iter().copied());
                let envelope = match client_envelope(&tracked.entry, &recipients) {
                    Ok(e) => e,
                    Err(why) => {
                        // What the server accepted cannot be sent: fail these recipients.
                        let attempt = Attempt::all(Verdict::failed(why), recipients.len());
                        let done = Done {
                            id: id.clone(),
                            recipients,
                            attempt,
                            started: Instant::now(),
                        };
                        tasks.spawn(async move { done });
                        continue;
                    }
                };
                let smarthost = self.config.routes.is_smarthost(&route);
                let store = Arc::clone(&self.store);
                let outbound = Arc::clone(&self.outbound);
                let id = id.clone();
                let requiretls = tracked.entry.envelope.requiretls;
                tasks.spawn(async move {
                    let started = Instant::now();
                    let body = {
                        let id = id.clone();
                        blocking(&store, move |s| s.body(&id)?.into_bytes()).await
                    };
                    let n = recipients.len();
                    let attempt = match body {
                        Ok(body) => {
                            let header = HeaderScan::of(&body);
                            let mode = if requiretls {
                                Mode::RequireTls
                            } else if header.tls_required_no() {
                                Mode::TlsOptional
                            } else {
                                Mode::Policy
                            };
                            // The queued copy has our own Received: line besides those
                            // counted when it arrived: a loop is one more than the limit.
                            if header.received() > HOP_LIMIT {
                                // Accepted before the count was made (or by another
                                // server): a loop all the same.
                                let why = format!(
                                    "5.4.6 Too many hops ({} Received: lines)",
                                    header.received()
                                );
                                Attempt::all(Verdict::failed(why), n)
                            } else {
                                outbound
                                    .attempt(&route, smarthost, mode, &envelope, &body)
                                    .await
                            }
                        }
                        Err(e) => Attempt::all(
                            Verdict::deferred(format!("4.3.0 cannot read the queued message: {e}")),
                            n,
                        ),
                    };
                    drop((global, local));
                    Done {
                        id,
                        recipients,
                        attempt,
                        started,
                    }
                });
            }
        }
        full
    }

    /// Records what a delivery did, logs it, and removes the message once it is done.
    fn finish(
        &self,
        messages: &mut BTreeMap<String, Tracked>,
        removals: &mut Vec<tokio::task::JoinHandle<()>>,
        done: Done,
    ) {
        let Some(tracked) = messages.get_mut(&done.id) else {
            return; // deleted meanwhile
        };
        let now = SystemTime::now();
        let arrived = from_unix_secs(tracked.entry.envelope.arrived);
        let mut lines: Vec<Line> = Vec::new();
        for (&i, verdict) in done.recipients.iter().zip(done.attempt.verdicts) {
            tracked.in_flight.remove(&i);
            let state = &mut tracked.entry.states[i];
            outcome::apply(
                state,
                verdict,
                now,
                arrived,
                &self.config.schedule,
                rand_u64(),
            );
            if let Some(observer) = &self.config.observer {
                observer.attempted(
                    state.status,
                    now.duration_since(arrived).unwrap_or_default(),
                );
            }
            let to = tracked.entry.envelope.recipients[i].address.clone();
            let said = match (&state.last_reply, &state.last_error) {
                (Some(r), _) => format!(
                    "{} {}{}",
                    r.code,
                    r.enhanced
                        .as_deref()
                        .map_or(String::new(), |e| format!("{e} ")),
                    r.text
                ),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            };
            let status = match state.status {
                Status::Delivered => "sent",
                Status::Failed => "failed",
                _ => "deferred",
            };
            // One line per attempt and group: recipients with the same outcome together.
            match lines
                .iter_mut()
                .find(|l| l.status == status && l.said == said)
            {
                Some(line) => {
                    line.to.push(to);
                    line.attempt = line.attempt.max(state.attempts);
                }
                None => lines.push(Line {
                    to: vec![to],
                    status,
                    said,
                    attempt: state.attempts,
                }),
            }
        }
        let delay = now
            .duration_since(arrived)
            .unwrap_or_default()
            .as_secs_f64();
        for line in lines {
            let to = line.to.join(",");
            info!(
                queue_id = %done.id,
                to = %to,
                relay = done.attempt.relay.as_deref().unwrap_or("none"),
                delay = format!("{delay:.1}"),
                attempt = line.attempt,
                elapsed = format!("{:.2}", done.started.elapsed().as_secs_f64()),
                status = line.status,
                "{}",
                line.said
            );
            if line.status == "failed" {
                warn!(queue_id = %done.id, to = %to, "undeliverable: {}", line.said);
            }
        }
        let occasion = Occasion {
            attempted: &done.recipients,
            relay: done.attempt.relay.as_deref(),
            dsn: done.attempt.dsn,
            now,
        };
        let settings = Settings {
            delay_warning: self.config.delay_warning,
            lifetime: self.config.schedule.lifetime,
        };
        let notices = notify::plan(&mut tracked.entry, &occasion, &settings);
        let reports = (!notices.is_empty()).then(|| {
            let entry = tracked.entry.clone();
            let hostname = self.config.hostname.clone();
            let local = self.config.local.clone();
            let announce = self.own.clone();
            let id = done.id.clone();
            move |s: &S| {
                match send_reports(s, local.as_deref(), &hostname, &id, &entry, &notices) {
                    Ok(queued) => queued.iter().for_each(|r| announce.queued(r)),
                    Err(e) => error!(queue_id = %id, error = %e, "cannot send a report"),
                }
                Ok(())
            }
        });
        // The disk is written beside the loop (each write ends in an fsync), in order
        // for one message: a later state never lands before an earlier one. The
        // reports go first (they read the message, which the last write removes), so
        // a crash in between sends one twice rather than never.
        let previous = tracked.persisting.take();
        let store = Arc::clone(&self.store);
        let id = done.id.clone();
        let finished = tracked.entry.is_done() && tracked.in_flight.is_empty();
        let states = (!finished).then(|| tracked.entry.states.clone());
        let write = tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            if let Some(reports) = reports {
                let _ = blocking(&store, reports).await;
            }
            let name = id.clone();
            let result = match states {
                None => blocking(&store, move |s| s.remove(&name)).await,
                Some(states) => blocking(&store, move |s| s.record(&name, &states)).await,
            };
            if let Err(e) = result {
                error!(queue_id = %id, error = %e, "cannot record a delivery");
            }
        });
        if finished {
            messages.remove(&done.id);
            removals.retain(|r| !r.is_finished());
            removals.push(write);
        } else {
            tracked.persisting = Some(write);
        }
    }
}

/// Composes and sends the reports about `entry` (queue id `id`); the ids of those
/// queued. Blocking: reads the queued message, writes the reports.
fn send_reports<S: Store>(
    store: &S,
    local: Option<&dyn LocalDelivery>,
    hostname: &str,
    id: &str,
    entry: &Entry,
    notices: &[Notice],
) -> io::Result<Vec<String>> {
    let original = store.body(id)?.into_bytes()?;
    let mut queued = Vec::new();
    for notice in notices {
        let report = notify::report(entry, notice, hostname, &original);
        let token = spool::new_id(SystemTime::now(), rand_u64());
        let composed = report.compose(SystemTime::now(), &token);
        let kind = format!("{:?}", notice.kind).to_lowercase();
        let to = &entry.envelope.from;
        match submit_report(store, local, to, &composed, entry.envelope.requiretls)? {
            Some(report) => {
                info!(queue_id = %id, %report, %to, %kind, "report queued");
                queued.push(report);
            }
            None => info!(queue_id = %id, %to, %kind, "report stored"),
        }
    }
    Ok(queued)
}

/// One log line of an attempt: the recipients that came out the same way.
struct Line {
    to: Vec<String>,
    status: &'static str,
    said: String,
    attempt: u32,
}

/// The limits a dispatch ran into.
#[derive(Default)]
struct Full {
    /// Every delivery slot is taken.
    all: bool,
    /// These routes have all theirs taken.
    routes: HashSet<Route>,
}

impl<S: Store> Relay<S> {
    /// The earliest next attempt among recipients not under way whose route has room.
    fn next_due(
        &self,
        messages: &BTreeMap<String, Tracked>,
        full: &HashSet<Route>,
    ) -> Option<SystemTime> {
        let mut next = None;
        for m in messages.values() {
            for (i, s) in m.entry.states.iter().enumerate() {
                if s.status.is_final() || m.in_flight.contains(&i) {
                    continue;
                }
                if full.contains(&m.routes[i]) {
                    continue;
                }
                let at = s
                    .next_attempt
                    .map_or(SystemTime::UNIX_EPOCH, from_unix_secs);
                next = Some(next.map_or(at, |n: SystemTime| n.min(at)));
            }
        }
        next
    }
}

/// The domain part of a queued address (an address literal as written).
fn domain(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

/// The client envelope for some recipients of a queued message.
fn client_envelope(entry: &Entry, recipients: &[usize]) -> Result<ClientEnvelope, String> {
    let e = &entry.envelope;
    let from = if e.from.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(
            Mailbox::parse(&e.from)
                .map_err(|x| format!("5.1.7 bad sender {:?}: {x}", e.from))?
                .into_owned(),
        )
    };
    let mut list = Vec::new();
    for &i in recipients {
        let r = &e.recipients[i];
        let mailbox = Mailbox::parse(&r.address)
            .map_err(|x| format!("5.1.3 bad recipient {:?}: {x}", r.address))?;
        let mut rcpt = ClientRecipient::new(ForwardPath::Mailbox(mailbox.into_owned()));
        rcpt.notify = r.notify.as_deref().map(parse_notify);
        rcpt.orcpt = r.orcpt.as_deref().and_then(|o| {
            let (kind, addr) = o.split_once(';')?;
            Orcpt::new(kind, addr).ok()
        });
        list.push(rcpt);
    }
    let mut envelope = ClientEnvelope::new(from, list);
    envelope.size = Some(e.size);
    envelope.body = match e.body.as_deref() {
        Some(b) if b.eq_ignore_ascii_case("8BITMIME") => BodyType::EightBitMime,
        Some(b) if b.eq_ignore_ascii_case("BINARYMIME") => BodyType::BinaryMime,
        _ => BodyType::SevenBit,
    };
    envelope.ret = match e.ret.as_deref() {
        Some(r) if r.eq_ignore_ascii_case("FULL") => Some(Ret::Full),
        Some(r) if r.eq_ignore_ascii_case("HDRS") => Some(Ret::Hdrs),
        _ => None,
    };
    envelope.envid = e
        .envid
        .as_deref()
        .and_then(|v| XText::new(v.to_owned()).ok());
    envelope.requiretls = e.requiretls;
    Ok(envelope)
}

fn parse_notify(s: &str) -> Notify {
    let mut n = Notify::NEVER;
    for word in s.split(',') {
        match word.trim().to_ascii_uppercase().as_str() {
            "SUCCESS" => n.success = true,
            "FAILURE" => n.failure = true,
            "DELAY" => n.delay = true,
            _ => {}
        }
    }
    n
}

/// Runs a store call on the blocking pool.
async fn blocking<S: Store, T: Send + 'static>(
    store: &Arc<S>,
    f: impl FnOnce(&S) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(io::Error::other)?
}

//! The relay engine end to end on loopback: a queue on disk, a next hop that is a real
//! SMTP server (this workspace's tokio server, scripted per recipient), static routes
//! and MX through a real DNS server (dnsmasq).

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use smtp_proto::server::ServerConfig;
use smtp_proto::{ForwardPath, Reply};
use smtp_relay::engine::LocalDelivery;
use smtp_relay::spool::{Envelope, Recipient, Status, unix_secs};
use smtp_relay::{FsStore, Relay, RelayConfig, RetrySchedule, SpoolWriter, Store, TlsPolicy};
use smtp_tokio::{Backend, ConnectInfo, Context, Decision, Server, SessionHandler};
use support::dnsmasq::Dnsmasq;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One message as the next hop received it: its recipients and body.
type Received = (Vec<String>, Vec<u8>);

/// The next hop's record of what it received, and its script.
#[derive(Clone, Default)]
struct NextHop {
    got: Arc<Mutex<Vec<Received>>>,
    /// RCPT replies to give, per address, in order; then 250.
    script: Arc<Mutex<HashMap<String, Vec<&'static str>>>>,
}

struct Session {
    hop: NextHop,
}

impl Backend for NextHop {
    type Handler = Session;
    fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
        Ok(Session { hop: self.clone() })
    }
}

impl SessionHandler for Session {
    fn buffer_message(&mut self, _: &Context<'_>) -> bool {
        true
    }
    async fn rcpt(
        &mut self,
        _: &Context<'_>,
        to: &ForwardPath<'static>,
        _: &smtp_proto::RcptParams<'static>,
    ) -> Decision {
        let mut script = self.hop.script.lock().unwrap();
        let next = script
            .get_mut(&to.to_string())
            .and_then(|l| (!l.is_empty()).then(|| l.remove(0)));
        match next {
            Some(reply) => {
                let reply = Reply::parse(format!("{reply}\r\n").as_bytes()).unwrap();
                Decision::reject_with(reply).unwrap()
            }
            None => Decision::Accept,
        }
    }
    async fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        let rcpts = ctx
            .session
            .recipients()
            .iter()
            .map(|r| r.to_string())
            .collect();
        self.hop
            .got
            .lock()
            .unwrap()
            .push((rcpts, ctx.body().unwrap().to_vec()));
        Decision::Accept
    }
}

async fn next_hop() -> (NextHop, SocketAddr, oneshot::Sender<()>) {
    next_hop_with(|_| {}).await
}

async fn next_hop_with(
    tweak: impl FnOnce(&mut ServerConfig),
) -> (NextHop, SocketAddr, oneshot::Sender<()>) {
    let hop = NextHop::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut server_config = ServerConfig::new("next.hop.test").unwrap();
    tweak(&mut server_config);
    let server = Server::builder(server_config, hop.clone())
        .listener(listener)
        .build()
        .unwrap();
    let addr = server.local_addrs()[0].addr;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (hop, addr, stop)
}

fn enqueue(store: &FsStore, id: &str, to: &[&str]) {
    let body = b"Subject: relayed\r\n\r\nHello.\r\n";
    let envelope = Envelope {
        id: id.into(),
        from: "alice@origin.test".into(),
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
        requiretls: false,
        recipients: to.iter().map(|a| Recipient::new(*a)).collect(),
        arrived: unix_secs(SystemTime::now()),
        size: body.len() as u64,
    };
    let mut w = store.create(&envelope).unwrap();
    w.write_all(body).unwrap();
    w.commit().unwrap();
}

/// The sender's mailboxes: every report to `origin.test` lands here.
#[derive(Debug, Default)]
struct Mailboxes(Mutex<Vec<(String, String)>>);

impl LocalDelivery for Mailboxes {
    fn is_local(&self, address: &str) -> bool {
        address.ends_with("@origin.test")
    }
    fn store(&self, address: &str, message: &[u8]) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(message).into_owned();
        self.0.lock().unwrap().push((address.to_owned(), text));
        Ok(())
    }
}

impl Mailboxes {
    fn reports(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|r| r.1.clone()).collect()
    }
}

fn config(tweak: impl FnOnce(&mut RelayConfig)) -> RelayConfig {
    let mut c = RelayConfig::new("relay.origin.test");
    c.tls = TlsPolicy::Never;
    c.schedule = RetrySchedule {
        min: Duration::from_secs(60),
        max: Duration::from_secs(120),
        lifetime: Duration::from_secs(600),
    };
    c.connect_timeout = Duration::from_secs(2);
    tweak(&mut c);
    c
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_route_retries_4xx_and_drops_5xx() {
    let (hop, addr, stop_hop) = next_hop().await;
    hop.script
        .lock()
        .unwrap()
        .insert("<later@dest.test>".into(), vec!["450 4.2.0 Mailbox busy"]);
    hop.script
        .lock()
        .unwrap()
        .insert("<nobody@dest.test>".into(), vec!["550 5.1.1 No such user"]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    enqueue(
        &store,
        "A1",
        &["bob@dest.test", "later@dest.test", "nobody@dest.test"],
    );

    let mailboxes = Arc::new(Mailboxes::default());
    let relay_config = config(|c| {
        c.routes
            .add_transport(&format!("dest.test={addr}"))
            .unwrap();
        c.local = Some(mailboxes.clone());
    });
    let (relay, handle) = Relay::new(Arc::clone(&store), relay_config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));

    // First attempt: bob delivered, later deferred, nobody failed (and dropped).
    until("the first delivery", || !hop.got.lock().unwrap().is_empty()).await;
    until("the deferral to be recorded", || {
        store
            .load("A1")
            .unwrap()
            .is_some_and(|e| e.states[1].status == Status::Deferred)
    })
    .await;
    let entry = store.load("A1").unwrap().unwrap();
    assert_eq!(entry.states[0].status, Status::Delivered);
    assert_eq!(entry.states[2].status, Status::Failed);
    assert_eq!(entry.states[1].last_reply.as_ref().unwrap().code, 450);
    assert!(entry.states[1].next_attempt.unwrap() >= unix_secs(SystemTime::now()) + 50);
    // One bounce, for the one that failed, to the sender's mailbox.
    let reports = mailboxes.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains(
            "Final-Recipient: rfc822; nobody@dest.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ),
        "{}",
        reports[0]
    );
    assert!(reports[0].contains("Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n"));
    assert!(reports[0].contains("Remote-MTA: dns; 127.0.0.1\r\n"));
    assert!(!reports[0].contains("bob@dest.test"));
    // A flush retries it now; it is delivered, and the message leaves the queue.
    handle.flush();
    until("the message to leave the queue", || {
        store.load("A1").unwrap().is_none()
    })
    .await;
    let got = hop.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, ["<bob@dest.test>"]);
    assert_eq!(got[1].0, ["<later@dest.test>"]);
    assert_eq!(got[1].1, b"Subject: relayed\r\n\r\nHello.\r\n");

    // A message queued while running is announced and delivered.
    enqueue(&store, "B2", &["carol@dest.test"]);
    handle.queued("B2");
    until("B2", || store.load("B2").unwrap().is_none()).await;
    assert_eq!(hop.got.lock().unwrap().len(), 3);

    stop.send(()).unwrap();
    task.await.unwrap();
    drop(stop_hop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_hosts_in_order_and_a_restart_resumes() {
    let (hop, addr, _stop_hop) = next_hop().await;
    // mx1 has an address where nothing listens; mx2 is the next hop.
    let dns = Dnsmasq::start(&[
        "--mx-host=dest.test,mx1.dest.test,10",
        "--mx-host=dest.test,mx2.dest.test,20",
        "--host-record=mx1.dest.test,127.0.0.2",
        "--host-record=mx2.dest.test,127.0.0.1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    // Queued before the relay starts: found on disk at start.
    enqueue(&store, "C3", &["dan@dest.test", "eve@nx.test"]);
    let mailboxes = Arc::new(Mailboxes::default());
    let relay_config = config(|c| {
        c.routes = smtp_relay::Routes::new(addr.port());
        c.dns_servers = vec![dns.addr];
        c.local = Some(mailboxes.clone());
    });
    let (relay, _handle) = Relay::new(Arc::clone(&store), relay_config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    until("C3 to leave the queue", || {
        store.load("C3").unwrap().is_none()
    })
    .await;
    let got = hop.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, ["<dan@dest.test>"]);
    let reports = mailboxes.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("Status: 5.1.2\r\n"), "{}", reports[0]);
    assert!(
        reports[0].contains("Diagnostic-Code: X-Smtp-Relay; 5.1.2 Host or domain name not found")
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Queues `body` for `to` (address, NOTIFY) from `from`, with `tweak` applied to the
/// envelope.
fn enqueue_with(
    store: &FsStore,
    id: &str,
    from: &str,
    to: &[(&str, Option<&str>)],
    body: &[u8],
    tweak: impl FnOnce(&mut Envelope),
) {
    let mut envelope = Envelope {
        id: id.into(),
        from: from.into(),
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
        requiretls: false,
        recipients: to
            .iter()
            .map(|(a, n)| Recipient {
                notify: n.map(str::to_owned),
                ..Recipient::new(*a)
            })
            .collect(),
        arrived: unix_secs(SystemTime::now()),
        size: body.len() as u64,
    };
    tweak(&mut envelope);
    let mut w = store.create(&envelope).unwrap();
    w.write_all(body).unwrap();
    w.commit().unwrap();
}

/// A relay over a fresh queue; the sender's reports land in the returned mailboxes.
struct Running {
    store: Arc<FsStore>,
    mailboxes: Arc<Mailboxes>,
    handle: smtp_relay::RelayHandle,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn start(tweak: impl FnOnce(&mut RelayConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    let mailboxes = Arc::new(Mailboxes::default());
    let c = config(|c| {
        c.local = Some(mailboxes.clone());
        tweak(c);
    });
    let (relay, handle) = Relay::new(Arc::clone(&store), c).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    Running {
        store,
        mailboxes,
        handle,
        stop,
        task,
        _dir: dir,
    }
}

impl Running {
    async fn queue(
        &self,
        id: &str,
        to: &[(&str, Option<&str>)],
        tweak: impl FnOnce(&mut Envelope),
    ) {
        self.queue_body(id, to, b"Subject: relayed\r\n\r\nHello.\r\n", tweak)
            .await;
    }

    async fn queue_body(
        &self,
        id: &str,
        to: &[(&str, Option<&str>)],
        body: &[u8],
        tweak: impl FnOnce(&mut Envelope),
    ) {
        enqueue_with(&self.store, id, "alice@origin.test", to, body, tweak);
        self.handle.queued(id);
        until(id, || self.store.load(id).unwrap().is_none()).await;
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
    }
}

/// NOTIFY decides: SUCCESS through a next hop without DSN gets a "relayed" report,
/// through one with DSN none (the parameters went on); NEVER gets nothing, FAILURE a
/// bounce; no NOTIFY a bounce; a message from <> never a report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_decides_who_hears_what() {
    let (dsn_hop, dsn_addr, _s1) = next_hop().await;
    let (plain_hop, plain_addr, _s2) = next_hop_with(|c| c.extensions.dsn = false).await;
    for hop in [&dsn_hop, &plain_hop] {
        let mut script = hop.script.lock().unwrap();
        for who in ["never", "failure", "default"] {
            script.insert(format!("<{who}@x.test>"), vec!["550 5.1.1 No such user"]);
            script.insert(format!("<{who}@y.test>"), vec!["550 5.1.1 No such user"]);
        }
    }
    let r = start(|c| {
        c.routes
            .add_transport(&format!("x.test={dsn_addr}"))
            .unwrap();
        c.routes
            .add_transport(&format!("y.test={plain_addr}"))
            .unwrap();
    });
    // Through the DSN next hop: no success report.
    r.queue("D1", &[("ok@x.test", Some("SUCCESS"))], |_| {})
        .await;
    assert!(r.mailboxes.reports().is_empty());
    // Through the one without DSN: "relayed".
    r.queue("D2", &[("ok@y.test", Some("SUCCESS,FAILURE"))], |e| {
        e.envid = Some("ENV-2".into());
    })
    .await;
    let reports = r.mailboxes.reports();
    assert_eq!(reports.len(), 1);
    let relayed = &reports[0];
    assert!(
        relayed.contains("Subject: Successful Mail Delivery Report\r\n"),
        "{relayed}"
    );
    assert!(
        relayed.contains("Action: relayed\r\nStatus: 2.0.0\r\n"),
        "{relayed}"
    );
    assert!(
        relayed.contains("Original-Envelope-Id: ENV-2\r\n"),
        "{relayed}"
    );
    assert!(
        relayed.contains("Content-Type: text/rfc822-headers"),
        "{relayed}"
    );
    // Delivered without NOTIFY=SUCCESS: nothing.
    r.queue(
        "D3",
        &[("ok@y.test", None), ("ok2@y.test", Some("FAILURE"))],
        |_| {},
    )
    .await;
    assert_eq!(r.mailboxes.reports().len(), 1);
    // Failures: NEVER says nothing; FAILURE and no NOTIFY share one bounce.
    r.queue(
        "D4",
        &[
            ("never@y.test", Some("NEVER")),
            ("failure@y.test", Some("FAILURE")),
            ("default@y.test", None),
        ],
        |e| {
            e.ret = Some("FULL".into());
        },
    )
    .await;
    let reports = r.mailboxes.reports();
    assert_eq!(reports.len(), 2);
    let bounce = &reports[1];
    assert!(
        bounce.contains("Final-Recipient: rfc822; failure@y.test\r\n"),
        "{bounce}"
    );
    assert!(
        bounce.contains("Final-Recipient: rfc822; default@y.test\r\n"),
        "{bounce}"
    );
    assert!(!bounce.contains("never@y.test"), "{bounce}");
    assert!(
        bounce.contains("Content-Type: message/rfc822\r\n"),
        "{bounce}"
    );
    assert!(bounce.contains("Hello.\r\n"), "{bounce}");
    // A bounce is never bounced.
    enqueue_with(
        &r.store,
        "D5",
        "",
        &[("default@x.test", None)],
        b"x\r\n",
        |_| {},
    );
    r.handle.queued("D5");
    until("D5", || r.store.load("D5").unwrap().is_none()).await;
    assert_eq!(r.mailboxes.reports().len(), 2);
    r.stop().await;
}

/// A report to a sender elsewhere is queued from <> and delivered like any message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_to_a_remote_sender_is_queued_from_null() {
    let (hop, addr, _s) = next_hop().await;
    hop.script
        .lock()
        .unwrap()
        .insert("<gone@dest.test>".into(), vec!["550 5.1.1 No such user"]);
    let r = start(|c| {
        c.routes.add_transport(&format!(".test={addr}")).unwrap();
    });
    enqueue_with(
        &r.store,
        "Q1",
        "carol@far.test",
        &[("gone@dest.test", None)],
        b"Subject: to nobody\r\n\r\nHi.\r\n",
        |_| {},
    );
    r.handle.queued("Q1");
    until("the bounce to reach the next hop", || {
        hop.got
            .lock()
            .unwrap()
            .iter()
            .any(|(to, _)| to == &["<carol@far.test>".to_owned()])
    })
    .await;
    until("an empty queue", || r.store.list().unwrap().is_empty()).await;
    let got = hop.got.lock().unwrap().clone();
    let (_, bounce) = got
        .iter()
        .find(|(to, _)| to[0] == "<carol@far.test>")
        .unwrap();
    let bounce = String::from_utf8_lossy(bounce);
    assert!(
        bounce.contains("Subject: Undelivered Mail Returned to Sender"),
        "{bounce}"
    );
    assert!(bounce.contains("Subject: to nobody"), "{bounce}");
    r.stop().await;
}

/// REQUIRETLS (RFC 8689): a next hop without STARTTLS fails the recipient with 5.7.30
/// whatever --relay-tls says; `TLS-Required: No` lets a message go in clear under a
/// policy that requires TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiretls_and_tls_required_no() {
    let (hop, addr, _s) = next_hop().await;
    let r = start(|c| {
        c.tls = TlsPolicy::Opportunistic;
        c.routes
            .add_transport(&format!("dest.test={addr}"))
            .unwrap();
    });
    r.queue("T1", &[("bob@dest.test", None)], |e| e.requiretls = true)
        .await;
    assert!(hop.got.lock().unwrap().is_empty());
    let reports = r.mailboxes.reports();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].contains("Status: 5.7.30\r\n"), "{}", reports[0]);
    // RFC 8689 §5: the returned message is its header only, whatever RET says.
    assert!(reports[0].contains("Content-Type: text/rfc822-headers"));
    r.stop().await;

    let r = start(|c| {
        c.tls = TlsPolicy::Required;
        c.routes
            .add_transport(&format!("dest.test={addr}"))
            .unwrap();
    });
    r.queue_body(
        "T2",
        &[("bob@dest.test", None)],
        b"TLS-Required: No\r\nSubject: whatever\r\n\r\nHi.\r\n",
        |_| {},
    )
    .await;
    assert_eq!(hop.got.lock().unwrap().len(), 1);
    // Without the header the policy holds: deferred (no STARTTLS offered).
    enqueue_with(
        &r.store,
        "T3",
        "alice@origin.test",
        &[("bob@dest.test", None)],
        b"Subject: x\r\n\r\nHi.\r\n",
        |_| {},
    );
    r.handle.queued("T3");
    until("T3 deferred", || {
        r.store
            .load("T3")
            .unwrap()
            .is_some_and(|e| e.states[0].status == Status::Deferred)
    })
    .await;
    assert_eq!(hop.got.lock().unwrap().len(), 1);
    r.stop().await;
}

/// Loops: a route to one of our own listening addresses (or a wildcard listener on its
/// port) fails with 5.4.6, and so does a queued message with 51 Received: lines (50 and
/// the one this server added when it took the message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_fail_with_5_4_6() {
    let (hop, addr, _s) = next_hop().await;
    for own in [
        addr,
        SocketAddr::new("0.0.0.0".parse().unwrap(), addr.port()),
    ] {
        let r = start(|c| {
            c.routes
                .add_transport(&format!("dest.test={addr}"))
                .unwrap();
            c.listen = vec![own];
        });
        r.queue("L1", &[("bob@dest.test", None)], |_| {}).await;
        let reports = r.mailboxes.reports();
        assert_eq!(reports.len(), 1);
        assert!(reports[0].contains("Status: 5.4.6\r\n"), "{}", reports[0]);
        assert!(
            reports[0].contains("loops back to myself"),
            "{}",
            reports[0]
        );
        r.stop().await;
    }
    assert!(hop.got.lock().unwrap().is_empty());
    let r = start(|c| {
        c.routes
            .add_transport(&format!("dest.test={addr}"))
            .unwrap();
    });
    let mut body = "Received: from a by b; date\r\n".repeat(51).into_bytes();
    body.extend_from_slice(b"Subject: looping\r\n\r\nHi.\r\n");
    r.queue_body("L2", &[("bob@dest.test", None)], &body, |_| {})
        .await;
    let reports = r.mailboxes.reports();
    assert!(reports[0].contains("Status: 5.4.6\r\n"), "{}", reports[0]);
    assert!(reports[0].contains("Too many hops"), "{}", reports[0]);
    assert!(hop.got.lock().unwrap().is_empty());
    r.stop().await;
}

/// --delay-warning: one delay report per message, with Will-Retry-Until, to recipients
/// that did not say NOTIFY without DELAY; the bounce at the end of the lifetime says
/// 4.4.7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delay_warning_then_the_lifetime() {
    let (hop, addr, _s) = next_hop().await;
    hop.script
        .lock()
        .unwrap()
        .insert("<slow@dest.test>".into(), vec!["451 4.3.0 later"; 100]);
    hop.script
        .lock()
        .unwrap()
        .insert("<quiet@dest.test>".into(), vec!["451 4.3.0 later"; 100]);
    let r = start(|c| {
        c.routes
            .add_transport(&format!("dest.test={addr}"))
            .unwrap();
        c.delay_warning = Some(Duration::from_secs(1));
        c.schedule = RetrySchedule {
            min: Duration::from_secs(1),
            max: Duration::from_secs(1),
            lifetime: Duration::from_secs(4),
        };
    });
    enqueue_with(
        &r.store,
        "W1",
        "alice@origin.test",
        &[
            ("slow@dest.test", None),
            ("quiet@dest.test", Some("FAILURE")),
        ],
        b"Subject: slow\r\n\r\nHi.\r\n",
        |_| {},
    );
    r.handle.queued("W1");
    until("W1 to expire", || r.store.load("W1").unwrap().is_none()).await;
    let reports = r.mailboxes.reports();
    assert_eq!(reports.len(), 2, "{reports:#?}");
    let delay = &reports[0];
    assert!(
        delay.contains("Subject: Delayed Mail (still being retried)"),
        "{delay}"
    );
    assert!(
        delay.contains("Action: delayed\r\nStatus: 4.3.0\r\n"),
        "{delay}"
    );
    assert!(delay.contains("Will-Retry-Until: "), "{delay}");
    assert!(!delay.contains("quiet@dest.test"), "{delay}");
    let bounce = &reports[1];
    assert!(
        bounce.contains("Action: failed\r\nStatus: 4.4.7\r\n"),
        "{bounce}"
    );
    assert!(
        bounce.contains("Final-Recipient: rfc822; quiet@dest.test"),
        "{bounce}"
    );
    assert!(
        bounce.contains("Diagnostic-Code: smtp; 451 4.3.0 later"),
        "{bounce}"
    );
    r.stop().await;
}

/// A next hop that follows a script, one connection after another: each connection
/// gets the next script (the last one repeats). `Say(line)` sends a line, `Expect(verb)`
/// reads a command line starting with it, `Data` reads a body to its final dot, `Close`
/// closes, `Silence` reads nothing and says nothing until the client leaves.
#[derive(Clone, Copy, Debug)]
enum Step {
    Say(&'static str),
    Expect(&'static str),
    Data,
    Close,
    Silence,
}

fn scripted(scripts: Vec<Vec<Step>>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let script = scripts[n.min(scripts.len() - 1)].clone();
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                for step in script {
                    match step {
                        Step::Say(line) => {
                            if conn.write_all(format!("{line}\r\n").as_bytes()).is_err() {
                                return;
                            }
                        }
                        Step::Expect(verb) => {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            assert!(
                                line.to_ascii_uppercase().starts_with(verb),
                                "{verb}: {line:?}"
                            );
                            log.lock().unwrap().push(line.trim_end().to_owned());
                        }
                        Step::Data => loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                                log.lock().unwrap().push("<body>".into());
                                break;
                            }
                        },
                        Step::Close => return,
                        Step::Silence => {
                            let mut sink = Vec::new();
                            let _ = std::io::Read::read_to_end(&mut reader, &mut sink);
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, heard)
}

fn accepting() -> Vec<Step> {
    use Step::*;
    vec![
        Say("220 hop.test ESMTP"),
        Expect("EHLO"),
        Say("250-hop.test\r\n250 PIPELINING"),
        Expect("MAIL"),
        Expect("RCPT"),
        Expect("DATA"),
        Say("250 2.1.0 Ok"),
        Say("250 2.1.5 Ok"),
        Say("354 go ahead"),
        Data,
        Say("250 2.0.0 Ok: queued"),
        Expect("QUIT"),
        Say("221 2.0.0 Bye"),
    ]
}

async fn relay_to(
    addr: SocketAddr,
    store: &Arc<FsStore>,
) -> (smtp_relay::RelayHandle, oneshot::Sender<()>) {
    let relay_config = config(|c| {
        c.routes
            .add_transport(&format!("dest.test={addr}"))
            .unwrap();
        // A silent server is given up on quickly.
        c.timeouts.greeting = Duration::from_secs(1);
        c.timeouts.data_end = Duration::from_secs(1);
    });
    let (relay, handle) = Relay::new(Arc::clone(store), relay_config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    (handle, stop)
}

async fn deferred_with(store: &FsStore, id: &str) -> smtp_relay::spool::RecipientState {
    let mut state = None;
    until("a deferral", || {
        state = store.load(id).unwrap().map(|e| e.states[0].clone());
        state.as_ref().is_some_and(|s| s.status == Status::Deferred)
    })
    .await;
    state.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_421_mid_session_is_retried() {
    use Step::*;
    let closing = vec![
        Say("220 hop.test ESMTP"),
        Expect("EHLO"),
        Say("250 hop.test"),
        Expect("MAIL"),
        Say("421 4.3.2 Service shutting down"),
        Close,
    ];
    let (addr, heard) = scripted(vec![closing, accepting()]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    enqueue(&store, "D4", &["bob@dest.test"]);
    let (handle, stop) = relay_to(addr, &store).await;
    let state = deferred_with(&store, "D4").await;
    let reply = state.last_reply.unwrap();
    assert_eq!(
        (reply.code, reply.enhanced.as_deref()),
        (421, Some("4.3.2"))
    );
    handle.flush();
    until("D4 delivered", || store.load("D4").unwrap().is_none()).await;
    assert!(heard.lock().unwrap().iter().any(|l| l == "<body>"));
    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_given_up_on() {
    let (addr, _) = scripted(vec![vec![Step::Silence]]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    enqueue(&store, "E5", &["bob@dest.test"]);
    let (_handle, stop) = relay_to(addr, &store).await;
    let state = deferred_with(&store, "E5").await;
    assert!(state.last_reply.is_none());
    let error = state.last_error.unwrap();
    assert!(error.contains("tim"), "{error}");
    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_the_dot_is_retried_not_dropped() {
    use Step::*;
    let drop_after_dot = vec![
        Say("220 hop.test ESMTP"),
        Expect("EHLO"),
        Say("250-hop.test\r\n250 PIPELINING"),
        Expect("MAIL"),
        Expect("RCPT"),
        Expect("DATA"),
        Say("250 2.1.0 Ok"),
        Say("250 2.1.5 Ok"),
        Say("354 go ahead"),
        Data,
        Close,
    ];
    let (addr, heard) = scripted(vec![drop_after_dot, accepting()]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    enqueue(&store, "F6", &["bob@dest.test"]);
    let (handle, stop) = relay_to(addr, &store).await;
    let state = deferred_with(&store, "F6").await;
    // RFC 5321 §6.1: it may have arrived; a duplicate is better than a loss.
    assert!(
        state
            .last_error
            .unwrap()
            .contains("may have been delivered")
    );
    handle.flush();
    until("F6 delivered", || store.load("F6").unwrap().is_none()).await;
    let bodies = heard
        .lock()
        .unwrap()
        .iter()
        .filter(|l| *l == "<body>")
        .count();
    assert_eq!(bodies, 2, "sent twice: once lost, once acknowledged");
    stop.send(()).unwrap();
}

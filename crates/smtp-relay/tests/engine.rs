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
    let hop = NextHop::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::builder(ServerConfig::new("next.hop.test").unwrap(), hop.clone())
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

    let relay_config = config(|c| {
        c.routes
            .add_transport(&format!("dest.test={addr}"))
            .unwrap()
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
    let relay_config = config(|c| {
        c.routes = smtp_relay::Routes::new(addr.port());
        c.dns_servers = vec![dns.addr];
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
    stop.send(()).unwrap();
    task.await.unwrap();
}

//! A rough throughput figure: the blocking client sends N small messages over C
//! connections (each reused for many messages) to a blocking server in the same process
//! that accepts and discards them.
//!
//! ```sh
//! cargo run --release -p smtp-blocking --example load -- [COUNT [CONCURRENCY [SIZE]]]
//! ```
//! Defaults: 2000 messages, 4 connections, 1 KiB bodies. Plain TCP on 127.0.0.1.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use smtp_blocking::{Backend, ConnectInfo, Connector, Context, Decision, Server, SessionHandler};
use smtp_proto::client::{ClientConfig, DeliveryStatus, Envelope, Recipient, StartTls};
use smtp_proto::server::ServerConfig;
use smtp_proto::{ForwardPath, Mailbox, Reply, ReversePath};

struct Discard(Arc<AtomicUsize>);
struct Session(Arc<AtomicUsize>);

impl Backend for Discard {
    type Handler = Session;
    fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
        Ok(Session(Arc::clone(&self.0)))
    }
}

impl SessionHandler for Session {
    fn message_end(&mut self, _: &Context<'_>) -> Decision {
        self.0.fetch_add(1, Ordering::Relaxed);
        Decision::Accept
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let count = args.next().unwrap_or(2000);
    let concurrency = args.next().unwrap_or(4).max(1);
    let size = args.next().unwrap_or(1024);

    let received = Arc::new(AtomicUsize::new(0));
    let server = Server::builder(
        ServerConfig::new("load.test").expect("hostname"),
        Discard(Arc::clone(&received)),
    )
    .listener(TcpListener::bind("127.0.0.1:0").expect("bind"))
    .shutdown_timeout(Duration::from_secs(1))
    .build()
    .expect("server");
    let addr = server.local_addrs()[0].addr.to_string();
    let stop = server.shutdown_handle();
    let running = std::thread::spawn(move || server.run());

    let mut config = ClientConfig::new("client.load.test").expect("helo name");
    config.starttls = StartTls::Never;
    let connector = Connector::builder(config).build().expect("connector");
    let mut body = b"Subject: load\r\n\r\n".to_vec();
    while body.len() < size {
        body.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrst\r\n",
        );
    }
    let body = Arc::new(body);
    let failed = Arc::new(AtomicUsize::new(0));

    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let connector = connector.clone();
            let addr = addr.clone();
            let body = Arc::clone(&body);
            let failed = Arc::clone(&failed);
            // Spread the remainder over the first workers.
            let n = count / concurrency + usize::from(w < count % concurrency);
            std::thread::spawn(move || {
                let mut conn = connector.connect(&addr).expect("connect");
                let from = Mailbox::parse("load@example.org").unwrap().into_owned();
                let to = Mailbox::parse("sink@example.org").unwrap().into_owned();
                for _ in 0..n {
                    let mut env = Envelope::new(
                        ReversePath::Mailbox(from.clone()),
                        vec![Recipient::new(ForwardPath::Mailbox(to.clone()))],
                    );
                    env.size = Some(body.len() as u64);
                    match conn.send(env, &body[..]) {
                        Ok(o) if o.status == DeliveryStatus::Sent => {}
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                conn.quit().expect("quit");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.shutdown();
    running.join().expect("server thread");
    println!(
        "sent {count} messages in {elapsed:.2} s ({:.0} msg/s) over {concurrency} connections, \
         {} failed, {} received",
        count as f64 / elapsed,
        failed.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
}

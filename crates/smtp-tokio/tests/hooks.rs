//! The handler's session hooks on the tokio adapter: `reset` on RSET, `closed` exactly
//! once however the session ends, and the whole body in `Context::body` when
//! `buffer_message` asks for it (the pieces still stream through `message_chunk`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use smtp_proto::Reply;
use smtp_proto::server::{AbortReason, ServerConfig};
use smtp_tokio::{Backend, ConnectInfo, Context, Decision, Server, SessionHandler};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<String>>>);

struct Session {
    log: Arc<Mutex<Vec<String>>>,
    streamed: Vec<u8>,
}

impl Backend for Hooks {
    type Handler = Session;
    fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
        Ok(Session {
            log: Arc::clone(&self.0),
            streamed: Vec::new(),
        })
    }
}

impl Session {
    fn note(&self, what: impl Into<String>) {
        self.log.lock().unwrap().push(what.into());
    }
}

impl SessionHandler for Session {
    fn buffer_message(&mut self, _: &Context<'_>) -> bool {
        true
    }
    async fn message_start(&mut self, _: &Context<'_>) {
        self.streamed.clear();
    }
    async fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        self.streamed.extend_from_slice(&chunk);
    }
    async fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        let body = ctx.body().expect("the body, kept whole");
        assert_eq!(body, &self.streamed[..], "the same bytes both ways");
        self.note(format!("body {:?}", String::from_utf8_lossy(body)));
        Decision::Accept
    }
    async fn message_aborted(&mut self, _: &Context<'_>, reason: AbortReason) {
        self.note(format!("aborted {reason:?}"));
    }
    async fn reset(&mut self, ctx: &Context<'_>) {
        assert!(ctx.session.reverse_path().is_none(), "the envelope is gone");
        self.note("reset");
    }
    async fn closed(&mut self, _: &Context<'_>) {
        self.note("closed");
    }
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    host: Hooks,
}

async fn start(config: ServerConfig) -> Running {
    let host = Hooks::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::builder(config, host.clone())
        .listener(listener)
        .shutdown_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let addr = server.local_addrs()[0].addr;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop,
        task,
        host,
    }
}

impl Running {
    fn log(&self) -> Vec<String> {
        self.host.0.lock().unwrap().clone()
    }

    /// Waits until the session has said `closed` (it runs concurrently).
    async fn closed(&self) -> Vec<String> {
        for _ in 0..500 {
            if self.log().iter().any(|e| e == "closed") {
                // Anything said twice would come right after.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return self.log();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never closed: {:?}", self.log());
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server stopped in time")
            .unwrap();
    }
}

fn config() -> ServerConfig {
    ServerConfig::new("mx.test.example").unwrap()
}

struct Client(BufReader<TcpStream>);

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let mut c = Client(BufReader::new(TcpStream::connect(addr).await.unwrap()));
        assert!(c.reply().await.starts_with("220 "));
        c
    }

    /// One whole reply, or "" at the end of the stream.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.0.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            all.push_str(&line);
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        let line = format!("{line}\r\n");
        self.0.get_mut().write_all(line.as_bytes()).await.unwrap();
        self.reply().await
    }
}

#[tokio::test]
async fn reset_buffered_body_and_closed_after_quit() {
    let server = start(config()).await;
    let mut c = Client::connect(server.addr).await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<alice@example.org>").await;
    assert!(c.cmd("RSET").await.starts_with("250"));
    c.cmd("MAIL FROM:<alice@example.org>").await;
    c.cmd("RCPT TO:<bob@example.org>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    let r = c.cmd("Subject: hi\r\n\r\n..dot\r\nend\r\n.").await;
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
    assert_eq!(c.reply().await, "");
    let log = server.closed().await;
    assert_eq!(
        log,
        [
            "reset",
            r#"body "Subject: hi\r\n\r\n.dot\r\nend\r\n""#,
            "closed"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn closed_once_when_the_client_goes_away() {
    let server = start(config()).await;
    let mut c = Client::connect(server.addr).await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<alice@example.org>").await;
    c.cmd("RCPT TO:<bob@example.org>").await;
    c.cmd("DATA").await;
    c.0.get_mut().write_all(b"half a bo").await.unwrap();
    drop(c);
    let log = server.closed().await;
    assert_eq!(log, ["aborted Disconnected", "closed"]);
    server.stop().await;
}

#[tokio::test]
async fn closed_once_after_a_timeout() {
    let mut cfg = config();
    cfg.timeouts.command = Duration::from_millis(300);
    let server = start(cfg).await;
    let mut c = Client::connect(server.addr).await;
    assert!(c.reply().await.starts_with("421 4.4.2"));
    assert_eq!(server.closed().await, ["closed"]);
    server.stop().await;
}

#[tokio::test]
async fn closed_once_at_shutdown() {
    let server = start(config()).await;
    let mut c = Client::connect(server.addr).await;
    c.cmd("EHLO client.example").await;
    let Running {
        addr,
        stop,
        task,
        host,
    } = server;
    let _ = stop.send(());
    assert!(c.reply().await.starts_with("421 4.3.2"));
    let running = Running {
        addr,
        stop: oneshot::channel().0,
        task,
        host,
    };
    assert_eq!(running.closed().await, ["closed"]);
    running.stop().await;
}

#[tokio::test]
async fn a_buffered_body_is_bounded_by_the_size_limit() {
    let mut cfg = config();
    cfg.limits.max_message_size = Some(64);
    let server = start(cfg).await;
    let mut c = Client::connect(server.addr).await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<alice@example.org>").await;
    c.cmd("RCPT TO:<bob@example.org>").await;
    c.cmd("DATA").await;
    let long = "x".repeat(100);
    let r = c.cmd(&format!("{long}\r\n.")).await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    c.cmd("QUIT").await;
    let log = server.closed().await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].starts_with("aborted Data(SizeExceeded"), "{log:?}");
    server.stop().await;
}

//! The handler's session hooks on the blocking adapter: `reset` on RSET, `closed` exactly
//! once however the session ends, and the whole body in `Context::body` when
//! `buffer_message` asks for it (the pieces still stream through `message_chunk`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use smtp_blocking::{
    Backend, ConnectInfo, Context, Decision, Server, SessionHandler, ShutdownHandle,
};
use smtp_proto::Reply;
use smtp_proto::server::{AbortReason, ServerConfig};

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
    fn message_start(&mut self, _: &Context<'_>) {
        self.streamed.clear();
    }
    fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        self.streamed.extend_from_slice(&chunk);
    }
    fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        let body = ctx.body().expect("the body, kept whole");
        assert_eq!(body, &self.streamed[..], "the same bytes both ways");
        self.note(format!("body {:?}", String::from_utf8_lossy(body)));
        Decision::Accept
    }
    fn message_aborted(&mut self, _: &Context<'_>, reason: AbortReason) {
        self.note(format!("aborted {reason:?}"));
    }
    fn lmtp_delivery(
        &mut self,
        ctx: &Context<'_>,
        to: &smtp_proto::ForwardPath<'static>,
    ) -> Decision {
        let body = ctx.body().expect("the body, for every recipient");
        self.note(format!("{to} {}", body.len()));
        Decision::Accept
    }
    fn reset(&mut self, ctx: &Context<'_>) {
        assert!(ctx.session.reverse_path().is_none(), "the envelope is gone");
        self.note("reset");
    }
    fn closed(&mut self, _: &Context<'_>) {
        self.note("closed");
    }
}

struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: JoinHandle<()>,
    host: Hooks,
}

fn start(config: ServerConfig) -> Running {
    let host = Hooks::default();
    let server = Server::builder(config, host.clone())
        .listener(TcpListener::bind("127.0.0.1:0").unwrap())
        .shutdown_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let addr = server.local_addrs()[0].addr;
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    Running {
        addr,
        stop,
        thread,
        host,
    }
}

impl Running {
    fn log(&self) -> Vec<String> {
        self.host.0.lock().unwrap().clone()
    }

    /// Waits until the session has said `closed` (it runs on its own thread).
    fn closed(&self) -> Vec<String> {
        for _ in 0..500 {
            if self.log().iter().any(|e| e == "closed") {
                // Anything said twice would come right after.
                std::thread::sleep(Duration::from_millis(50));
                return self.log();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("never closed: {:?}", self.log());
    }

    fn stop(self) {
        self.stop.shutdown();
        self.thread.join().unwrap();
    }
}

fn config() -> ServerConfig {
    ServerConfig::new("mx.test.example").unwrap()
}

struct Client(BufReader<TcpStream>);

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Client(BufReader::new(tcp));
        assert!(c.reply().starts_with("220 "));
        c
    }

    /// One whole reply, or "" at the end of the stream.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.0.read_line(&mut line).unwrap_or(0);
            all.push_str(&line);
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).unwrap();
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

#[test]
fn reset_buffered_body_and_closed_after_quit() {
    let server = start(config());
    let mut c = Client::connect(server.addr);
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<alice@example.org>");
    assert!(c.cmd("RSET").starts_with("250"));
    c.cmd("MAIL FROM:<alice@example.org>");
    c.cmd("RCPT TO:<bob@example.org>");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: hi\r\n\r\n..dot\r\nend\r\n.");
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye\r\n");
    assert_eq!(c.reply(), "");
    assert_eq!(
        server.closed(),
        [
            "reset",
            r#"body "Subject: hi\r\n\r\n.dot\r\nend\r\n""#,
            "closed"
        ]
    );
    server.stop();
}

#[test]
fn closed_once_when_the_client_goes_away() {
    let server = start(config());
    let mut c = Client::connect(server.addr);
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<alice@example.org>");
    c.cmd("RCPT TO:<bob@example.org>");
    c.cmd("DATA");
    c.send(b"half a bo");
    drop(c);
    assert_eq!(server.closed(), ["aborted Disconnected", "closed"]);
    server.stop();
}

#[test]
fn closed_once_after_a_timeout() {
    let mut cfg = config();
    cfg.timeouts.command = Duration::from_millis(300);
    let server = start(cfg);
    let mut c = Client::connect(server.addr);
    assert!(c.reply().starts_with("421 4.4.2"));
    assert_eq!(server.closed(), ["closed"]);
    server.stop();
}

#[test]
fn closed_once_at_shutdown() {
    let server = start(config());
    let mut c = Client::connect(server.addr);
    c.cmd("EHLO client.example");
    server.stop.shutdown();
    assert!(c.reply().starts_with("421 4.3.2"));
    assert_eq!(server.closed(), ["closed"]);
    server.stop();
}

#[test]
fn a_buffered_body_is_bounded_by_the_size_limit() {
    let mut cfg = config();
    cfg.limits.max_message_size = Some(64);
    let server = start(cfg);
    let mut c = Client::connect(server.addr);
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<alice@example.org>");
    c.cmd("RCPT TO:<bob@example.org>");
    c.cmd("DATA");
    let r = c.cmd(&format!("{}\r\n.", "x".repeat(100)));
    assert!(r.starts_with("552 5.3.4"), "{r}");
    c.cmd("QUIT");
    let log = server.closed();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].starts_with("aborted Data(SizeExceeded"), "{log:?}");
    server.stop();
}

#[test]
fn lmtp_deliveries_all_see_the_kept_body() {
    let mut cfg = config();
    cfg.lmtp = true;
    let server = start(cfg);
    let mut c = Client::connect(server.addr);
    c.cmd("LHLO client.example");
    c.cmd("MAIL FROM:<alice@example.org>");
    c.cmd("RCPT TO:<bob@example.org>");
    c.cmd("RCPT TO:<carol@example.org>");
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c.cmd("Subject: hi\r\n\r\nbody\r\n.").starts_with("250"));
    assert!(c.reply().starts_with("250"), "one reply per recipient");
    c.cmd("QUIT");
    assert_eq!(
        server.closed(),
        ["<bob@example.org> 21", "<carol@example.org> 21", "closed"]
    );
    server.stop();
}

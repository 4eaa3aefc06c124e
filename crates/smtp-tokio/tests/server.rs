//! End-to-end tests of the adapter on 127.0.0.1 (port 0): a raw-socket client for plain
//! text, a rustls client for STARTTLS and implicit TLS. Every server is stopped by its test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use smtp_proto::sasl::{ClientCredentials, ClientExchange, Credentials, Mechanism};
use smtp_proto::server::{AbortReason, ServerConfig};
use smtp_proto::{ForwardPath, RcptParams, Reply};
use smtp_tokio::{Backend, ConnectInfo, Context, Decision, ListenerAddr, Server, SessionHandler};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// What the host saw, shared with the test.
#[derive(Default)]
struct Log {
    events: Vec<String>,
    stored: Vec<Vec<u8>>,
}

#[derive(Clone, Default)]
struct TestHost(Arc<Mutex<Log>>);

struct TestHandler {
    log: Arc<Mutex<Log>>,
    body: Option<Vec<u8>>,
}

impl Backend for TestHost {
    type Handler = TestHandler;
    fn connect(&self, _: &ConnectInfo) -> Result<TestHandler, Reply> {
        Ok(TestHandler {
            log: Arc::clone(&self.0),
            body: None,
        })
    }
}

impl TestHandler {
    fn note(&self, what: impl Into<String>) {
        self.log.lock().unwrap().events.push(what.into());
    }
}

impl SessionHandler for TestHandler {
    async fn rcpt(
        &mut self,
        _: &Context<'_>,
        to: &ForwardPath<'static>,
        _: &RcptParams<'static>,
    ) -> Decision {
        if to.to_string().contains("@elsewhere.example") {
            Decision::reject(554, (5, 7, 1), format!("{to}: Relay access denied")).unwrap()
        } else {
            Decision::Accept
        }
    }
    async fn message_start(&mut self, _: &Context<'_>) {
        self.note("start");
        self.body = Some(Vec::new());
    }
    async fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        if let Some(body) = &mut self.body {
            body.extend_from_slice(&chunk);
        }
    }
    async fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        let body = self.body.take().unwrap_or_default();
        let tls = ctx.session.is_tls();
        let mut log = self.log.lock().unwrap();
        log.events.push(format!("end tls={tls}"));
        log.stored.push(body);
        Decision::accept_with(Reply::new(250, None, "stored").unwrap()).unwrap()
    }
    async fn message_aborted(&mut self, _: &Context<'_>, reason: AbortReason) {
        self.body = None;
        self.note(format!("aborted {reason:?}"));
    }
    async fn auth(
        &mut self,
        _: &Context<'_>,
        _: &Mechanism,
        credentials: &Credentials,
    ) -> Decision {
        if credentials.identity() == Some("tim") && credentials.verify("tanstaaf") {
            Decision::Accept
        } else {
            Decision::reject(535, (5, 7, 8), "Authentication credentials invalid").unwrap()
        }
    }
}

struct Running {
    addrs: Vec<ListenerAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    host: TestHost,
}

impl Running {
    fn addr(&self) -> SocketAddr {
        self.addrs[0].addr
    }
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.host.0.lock().unwrap()
    }
    /// Signals shutdown and waits for `run` to return.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server stopped in time")
            .unwrap();
    }
}

fn config() -> ServerConfig {
    ServerConfig::new("mx.test.example").unwrap()
}

fn tls_pair() -> (Arc<rustls::ServerConfig>, TlsConnector) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), TlsConnector::from(Arc::new(client)))
}

async fn start(
    config: ServerConfig,
    setup: impl FnOnce(smtp_tokio::Builder<TestHost>) -> smtp_tokio::Builder<TestHost>,
) -> Running {
    let host = TestHost::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let builder = Server::builder(config, host.clone()).listener(listener);
    let server = setup(builder).build().unwrap();
    let addrs = server.local_addrs().to_vec();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running {
        addrs,
        stop: Some(stop),
        task,
        host,
    }
}

/// A line-oriented client over any stream.
struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(io: S) -> Self {
        Client {
            io: BufReader::new(io),
        }
    }

    /// One whole reply (all its lines), or "" at end of stream.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            all.push_str(&line);
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.io.get_mut().write_all(bytes.as_bytes()).await.unwrap();
    }

    /// Sends a command and returns its reply.
    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    fn into_inner(self) -> S {
        assert!(self.io.buffer().is_empty(), "no bytes left over");
        self.io.into_inner()
    }
}

async fn connect(addr: SocketAddr) -> Client<TcpStream> {
    Client::new(TcpStream::connect(addr).await.unwrap())
}

async fn send_message<S: AsyncRead + AsyncWrite + Unpin>(c: &mut Client<S>) {
    assert!(
        c.cmd("MAIL FROM:<alice@example.org>")
            .await
            .starts_with("250 2.1.0")
    );
    assert!(
        c.cmd("RCPT TO:<bob@example.org>")
            .await
            .starts_with("250 2.1.5")
    );
    assert!(c.cmd("DATA").await.starts_with("354"));
    let r = c.cmd("Subject: hi\r\n\r\n..dot\r\n8bit \u{e9}\r\n.").await;
    assert_eq!(r, "250 stored\r\n");
}

const STORED: &[u8] = "Subject: hi\r\n\r\n.dot\r\n8bit \u{e9}\r\n".as_bytes();

#[tokio::test]
async fn plain_session_end_to_end() {
    let server = start(config(), |b| b).await;
    let mut c = connect(server.addr()).await;
    assert_eq!(c.reply().await, "220 mx.test.example ESMTP\r\n");
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(ehlo.starts_with("250-mx.test.example\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "no TLS configured: {ehlo}");
    send_message(&mut c).await;
    // Policy from the handler, reply text from it too.
    c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nRSET\r\n")
        .await;
    assert!(c.reply().await.starts_with("250"));
    assert_eq!(
        c.reply().await,
        "554 5.7.1 <x@elsewhere.example>: Relay access denied\r\n"
    );
    assert!(c.reply().await.starts_with("250"));
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
    assert_eq!(c.reply().await, "", "closed after QUIT");
    assert_eq!(server.log().stored, vec![STORED.to_vec()]);
    assert_eq!(server.log().events, ["start", "end tls=false"]);
    server.stop().await;
}

#[tokio::test]
async fn starttls_then_mail_and_auth() {
    let (tls, connector) = tls_pair();
    let server = start(config(), |b| b.tls(tls)).await;
    let mut c = connect(server.addr()).await;
    c.reply().await;
    assert!(
        c.cmd("EHLO client.example")
            .await
            .contains("250-STARTTLS\r\n")
    );
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS\r\n");
    let tcp = c.into_inner();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut c = Client::new(tls);
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    send_message(&mut c).await;
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
    assert_eq!(server.log().events, ["start", "end tls=true"]);
    server.stop().await;
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_refused() {
    let (tls, _) = tls_pair();
    let server = start(config(), |b| b.tls(tls)).await;
    let mut c = connect(server.addr()).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    c.send("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n").await;
    assert_eq!(
        c.reply().await,
        "554 5.5.0 Error: SMTP protocol synchronization\r\n"
    );
    assert_eq!(c.reply().await, "");
    server.stop().await;
}

#[tokio::test]
async fn implicit_tls_listener() {
    let (tls, connector) = tls_pair();
    let implicit = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = start(config(), |b| b.tls(tls).implicit_tls_listener(implicit)).await;
    assert!(!server.addrs[0].implicit_tls);
    assert!(server.addrs[1].implicit_tls);
    let tcp = TcpStream::connect(server.addrs[1].addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = Client::new(connector.connect(name, tcp).await.unwrap());
    assert_eq!(c.reply().await, "220 mx.test.example ESMTP\r\n");
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    send_message(&mut c).await;
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
    assert_eq!(server.log().events, ["start", "end tls=true"]);
    server.stop().await;
}

#[tokio::test]
async fn auth_cram_md5_with_a_fresh_challenge() {
    let mut cfg = config();
    cfg.extensions.auth = vec!["PLAIN".into(), "CRAM-MD5".into()];
    let server = start(cfg, |b| b).await;
    let mut c = connect(server.addr()).await;
    c.reply().await;
    let ehlo = c.cmd("EHLO client.example").await;
    // PLAIN waits for TLS (RFC 4954 §4); CRAM-MD5 does not send the password.
    assert!(ehlo.contains("250-AUTH CRAM-MD5\r\n"), "{ehlo}");
    let creds = ClientCredentials::password("tim", "tanstaaf");
    let mut challenges = Vec::new();
    for password_ok in [false, true] {
        let creds = if password_ok {
            creds.clone()
        } else {
            ClientCredentials::password("tim", "wrong")
        };
        let r = c.cmd("AUTH CRAM-MD5").await;
        let b64 = r.strip_prefix("334 ").unwrap().trim_end().to_owned();
        challenges.push(b64.clone());
        let mut exchange = ClientExchange::new(Mechanism::CramMd5, &creds).unwrap();
        let answer = exchange.challenge_base64(b64.as_bytes()).unwrap();
        let r = c.cmd(answer.expose()).await;
        if password_ok {
            assert_eq!(r, "235 2.7.0 Authentication successful\r\n");
        } else {
            assert_eq!(r, "535 5.7.8 Authentication credentials invalid\r\n");
        }
    }
    assert_ne!(challenges[0], challenges[1], "a challenge is never reused");
    let decoded = smtp_proto::sasl::decode_base64(challenges[0].as_bytes()).unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    assert!(
        decoded.starts_with('<') && decoded.ends_with("@mx.test.example>"),
        "{decoded}"
    );
    assert!(c.cmd("QUIT").await.starts_with("221"));
    server.stop().await;
}

#[tokio::test]
async fn connection_limit_gets_421() {
    let server = start(config(), |b| b.max_connections(1)).await;
    let mut first = connect(server.addr()).await;
    assert!(first.reply().await.starts_with("220 "));
    let mut second = connect(server.addr()).await;
    assert_eq!(
        second.reply().await,
        "421 4.3.2 mx.test.example Error: too many connections\r\n"
    );
    assert_eq!(second.reply().await, "", "closed");
    // The slot comes back when the first session ends.
    assert!(first.cmd("QUIT").await.starts_with("221"));
    assert_eq!(first.reply().await, "");
    let mut third = None;
    for _ in 0..50 {
        let mut c = connect(server.addr()).await;
        if c.reply().await.starts_with("220 ") {
            third = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "a slot freed up");
    drop(third);
    server.stop().await;
}

#[tokio::test]
async fn idle_timeout_from_the_machine() {
    let mut cfg = config();
    cfg.timeouts.command = Duration::from_secs(1);
    let server = start(cfg, |b| b).await;
    let mut c = connect(server.addr()).await;
    c.reply().await;
    let started = std::time::Instant::now();
    assert_eq!(
        c.reply().await,
        "421 4.4.2 mx.test.example Error: timeout exceeded\r\n"
    );
    assert_eq!(c.reply().await, "");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    server.stop().await;
}

/// Polls the host's log until `pred` holds (the session task runs concurrently).
async fn until(server: &Running, pred: impl Fn(&Log) -> bool) {
    for _ in 0..200 {
        if pred(&server.log()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached: events {:?}", server.log().events);
}

#[tokio::test]
async fn client_vanishing_mid_data_aborts_the_message() {
    let server = start(config(), |b| b).await;
    let mut c = connect(server.addr()).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<alice@example.org>").await;
    c.cmd("RCPT TO:<bob@example.org>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send("Subject: cut short\r\n\r\npart of a bo").await;
    drop(c);
    until(&server, |l| {
        l.events.iter().any(|e| e.starts_with("aborted"))
    })
    .await;
    assert_eq!(server.log().events, ["start", "aborted Disconnected"]);
    assert!(server.log().stored.is_empty(), "nothing stored");
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_sessions_finish_then_closes_them() {
    let server = start(config(), |b| b.shutdown_timeout(Duration::from_secs(1))).await;
    let addr = server.addr();
    let mut c = connect(addr).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    assert!(
        c.cmd("MAIL FROM:<alice@example.org>")
            .await
            .starts_with("250 2.1.0")
    );
    let mut idle = connect(addr).await;
    idle.reply().await;
    idle.cmd("EHLO idle.example").await;
    let Running {
        addrs: _,
        mut stop,
        task,
        host,
    } = server;
    let _ = stop.take().unwrap().send(());
    // Accepting stops at once...
    let mut refused = false;
    for _ in 0..50 {
        match TcpStream::connect(addr).await {
            Err(_) => {
                refused = true;
                break;
            }
            Ok(s) => {
                let mut probe = Client::new(s);
                if probe.reply().await.is_empty() {
                    refused = true;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "no new sessions after the shutdown signal");
    // ...a session between transactions is closed at once...
    let bye = "421 4.3.2 mx.test.example Service shutting down, closing transmission channel\r\n";
    assert_eq!(idle.reply().await, bye);
    assert_eq!(idle.reply().await, "");
    // ...one with a transaction open may still deliver within the grace period...
    assert!(
        c.cmd("RCPT TO:<bob@example.org>")
            .await
            .starts_with("250 2.1.5")
    );
    assert!(c.cmd("DATA").await.starts_with("354"));
    let r = c.cmd("Subject: hi\r\n\r\n..dot\r\n8bit \u{e9}\r\n.").await;
    assert_eq!(r, "250 stored\r\n");
    // ...and is then closed by the machine's 421, with no new transaction.
    assert_eq!(c.reply().await, bye);
    assert_eq!(c.reply().await, "");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run returned")
        .unwrap();
    assert_eq!(host.0.lock().unwrap().stored.len(), 1);
}

#[tokio::test]
async fn shutdown_in_the_middle_of_data_aborts_cleanly() {
    let server = start(config(), |b| b.shutdown_timeout(Duration::from_millis(200))).await;
    let mut c = connect(server.addr()).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<alice@example.org>").await;
    c.cmd("RCPT TO:<bob@example.org>").await;
    c.cmd("DATA").await;
    c.send("Subject: never finished\r\n").await;
    until(&server, |l| l.events.iter().any(|e| e == "start")).await;
    let host = server.host.clone();
    server.stop().await;
    assert!(c.reply().await.starts_with("421 4.3.2 "));
    let log = host.0.lock().unwrap();
    assert_eq!(log.events, ["start", "aborted Disconnected"]);
    assert!(log.stored.is_empty());
}

#[tokio::test]
async fn host_can_refuse_a_connection() {
    struct Closed;
    impl Backend for Closed {
        type Handler = TestHandler;
        fn connect(&self, _: &ConnectInfo) -> Result<TestHandler, Reply> {
            Err(Reply::new(554, None, "mx.test.example No SMTP service here").unwrap())
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::builder(config(), Closed)
        .listener(listener)
        .build()
        .unwrap();
    let addr = server.local_addrs()[0].addr;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let mut c = connect(addr).await;
    assert_eq!(
        c.reply().await,
        "554 mx.test.example No SMTP service here\r\n"
    );
    assert_eq!(c.reply().await, "");
    let _ = stop.send(());
    task.await.unwrap();
}

#[test]
fn implicit_tls_needs_a_tls_config() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = Server::builder(config(), TestHost::default())
            .implicit_tls_listener(l)
            .build()
            .err()
            .unwrap();
        assert!(matches!(err, smtp_tokio::SetupError::TlsRequired));
    });
}

//! The tokio client against servers on 127.0.0.1 (port 0): this crate's own server
//! offering STARTTLS with a self-signed certificate, and scripted servers. Default
//! settings deliver once verification is turned off by name, fail with a cause that names
//! the certificate while it is on (web PKI), and a failure is returned again by every
//! later call.

use std::error::Error as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use smtp_proto::client::{
    ClientConfig, ClientError, DeliveryStatus, Envelope, Recipient, StartTls,
};
use smtp_proto::server::{AbortReason, ServerConfig};
use smtp_proto::{ForwardPath, Mailbox, Reply, ReversePath};
use smtp_tokio::{
    Backend, ConnectInfo, Connector, Context, Decision, Error, Server, SessionHandler, Verification,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The bodies stored, and the reasons of messages aborted, by the server.
type Seen = (Vec<Vec<u8>>, Vec<String>);

/// What the server saw, shared with the test.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<Seen>>);

struct Session {
    store: Store,
    body: Vec<u8>,
}

impl Backend for Store {
    type Handler = Session;
    fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
        Ok(Session {
            store: self.clone(),
            body: Vec::new(),
        })
    }
}

impl SessionHandler for Session {
    async fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        self.body.extend_from_slice(&chunk);
    }
    async fn message_end(&mut self, _: &Context<'_>) -> Decision {
        let body = std::mem::take(&mut self.body);
        self.store.0.lock().unwrap().0.push(body);
        Decision::Accept
    }
    async fn message_aborted(&mut self, _: &Context<'_>, reason: AbortReason) {
        self.body.clear();
        self.store.0.lock().unwrap().1.push(format!("{reason:?}"));
    }
}

/// A server offering STARTTLS with a self-signed certificate; its address, what it
/// stored, and its stop switch.
async fn starttls_server() -> (String, Store, oneshot::Sender<()>) {
    let (chain, key) = smtp_tokio::tls::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let tls = smtp_tokio::tls::server_config(chain, key).unwrap();
    let store = Store::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::builder(ServerConfig::new("mx.test.example").unwrap(), store.clone())
        .listener(listener)
        .tls(tls)
        .build()
        .unwrap();
    let addr = server.local_addrs()[0].addr.to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (addr, store, stop)
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::new("client.test.example").unwrap();
    config.timeouts = smtp_proto::client::ClientTimeouts::all(Duration::from_secs(10));
    config
}

fn envelope() -> Envelope {
    let from = Mailbox::parse("alice@example.org").unwrap().into_owned();
    let to = Mailbox::parse("bob@example.org").unwrap().into_owned();
    Envelope::new(
        ReversePath::Mailbox(from),
        vec![Recipient::new(ForwardPath::Mailbox(to))],
    )
}

/// The error and every source under it, as one line.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(" / ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tokio::test]
async fn default_settings_deliver_over_starttls_when_verification_is_off() {
    let (addr, store, stop) = starttls_server().await;
    // Only the verification changes: STARTTLS stays opportunistic, the default.
    let connector = Connector::builder(config())
        .verification(Verification::Insecure)
        .build()
        .unwrap();
    let mut conn = connector.connect(&addr).await.unwrap();
    assert!(conn.is_tls());
    assert!(conn.tls_info().is_some());
    let mut body: &[u8] = b"Subject: hi\r\n\r\nHello.\r\n";
    let outcome = conn.send(envelope(), &mut body).await.unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Sent);
    conn.quit().await.unwrap();
    let stored = store.0.lock().unwrap().0.clone();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].ends_with(b"Hello.\r\n"));
    let _ = stop.send(());
}

#[tokio::test]
async fn default_settings_refuse_a_self_signed_certificate_and_say_why() {
    let (addr, store, stop) = starttls_server().await;
    let connector = Connector::builder(config()).build().unwrap();
    let err = connector.connect(&addr).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("certificate"), "{text}");
    assert!(err.source().is_some(), "{err:?}");
    assert!(store.0.lock().unwrap().0.is_empty());
    let _ = stop.send(());
}

/// A server that greets, answers EHLO, and closes the session at MAIL with a 421.
async fn closing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut io = BufReader::new(socket);
        io.get_mut()
            .write_all(b"220 mx.test.example ESMTP\r\n")
            .await
            .unwrap();
        let mut line = String::new();
        while io.read_line(&mut line).await.unwrap_or(0) > 0 {
            let reply: &[u8] = if line.starts_with("EHLO") {
                b"250 mx.test.example\r\n"
            } else {
                b"421 4.3.2 closing for maintenance\r\n"
            };
            let _ = io.get_mut().write_all(reply).await;
            if reply.starts_with(b"421") {
                return;
            }
            line.clear();
        }
    });
    addr
}

#[tokio::test]
async fn a_failure_is_returned_again() {
    let addr = closing_server().await;
    let connector = Connector::builder(config())
        .starttls(StartTls::Never)
        .build()
        .unwrap();
    let mut conn = connector.connect(&addr).await.unwrap();
    let mut body: &[u8] = b"Subject: hi\r\n\r\nHello.\r\n";
    // The message gets its outcome: the 421.
    let outcome = conn.send(envelope(), &mut body).await.unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Temporary);
    let Some(ClientError::ServiceClosing(reply)) = conn.error().cloned() else {
        panic!("{:?}", conn.error());
    };
    assert_eq!(reply.code().get(), 421);
    // Every later call says the same, with the server's reply.
    for _ in 0..2 {
        let mut body: &[u8] = b"again\r\n";
        let err = conn.send(envelope(), &mut body).await.unwrap_err();
        match &err {
            Error::Session(ClientError::ServiceClosing(r)) => assert_eq!(r, &reply),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("closing for maintenance"), "{err}");
    }
    assert!(conn.quit().await.is_err());
}

/// A body whose source fails after a first piece.
struct Failing(bool);

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.0 {
            return Poll::Ready(Err(io::Error::other("disk on fire")));
        }
        self.0 = true;
        buf.put_slice(b"Subject: half\r\n\r\nthe first half\r\n");
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_failing_body_abandons_the_message() {
    let (addr, store, stop) = starttls_server().await;
    // DATA, so that the first half goes out before the source fails (BDAT holds its
    // last chunk back until it knows it is the last).
    let mut config = config();
    config.chunking = false;
    let connector = Connector::builder(config)
        .starttls(StartTls::Never)
        .body_chunk(1024)
        .build()
        .unwrap();
    let mut conn = connector.connect(&addr).await.unwrap();
    let err = conn
        .send(envelope(), &mut Failing(false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Body(_)), "{err:?}");
    assert!(chain(&err).contains("disk on fire"), "{err}");
    // Sticky: the same cause again.
    let mut body: &[u8] = b"x\r\n";
    let again = conn.send(envelope(), &mut body).await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    assert_eq!(conn.error(), Some(&ClientError::BodyAbandoned));
    // The server never got the final dot: nothing stored.
    let mut waited = 0;
    while store.0.lock().unwrap().1.is_empty() && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let (stored, aborted) = store.0.lock().unwrap().clone();
    assert!(stored.is_empty(), "{stored:?}");
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    let _ = stop.send(());
}

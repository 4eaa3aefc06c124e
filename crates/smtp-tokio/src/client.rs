//! The client side: one connection driving [`smtp_proto::client::Client`].
//!
//! [`Connection::connect`] opens the socket (implicit TLS if asked), then
//! [`Connection::send`] hands over one message at a time: its envelope, and a body read
//! from any [`AsyncRead`] in chunks, never whole. The loop is the usual one around
//! [`Client::poll_output`]: Transmit → write; `BodyWanted` → read a chunk, `send_body`,
//! write, repeat, then `end_body`; StartTls → hand the raw socket to rustls; Wait → read
//! until the machine's deadline. Every wait is bounded by [`Client::deadline`]: reads,
//! writes (a server that stops reading mid-DATA) and TLS handshakes alike.

use std::io;
use std::sync::Arc;

use std::time::{Duration, Instant};

use smtp_proto::client::{
    Client, ClientConfig, ClientError, ClientEvent, ClientOutput, Envelope, MessageOutcome,
};
use smtp_proto::sasl::Mechanism;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// Body bytes read per `send_body` call.
const BODY_CHUNK: usize = 64 * 1024;
/// Bytes read from the socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// Why a connection or a message failed outside the protocol's own verdicts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Connecting, reading or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// No connection within the connect timeout.
    #[error("connect timeout")]
    ConnectTimeout,
    /// The TLS handshake failed (certificate, protocol).
    #[error("tls: {0}")]
    Tls(io::Error),
    /// The session failed ([`ClientError`]: greeting, EHLO, STARTTLS, AUTH, timeout...).
    #[error("{0}")]
    Session(ClientError),
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
}

/// How to secure the connection; STARTTLS itself follows
/// [`ClientConfig::starttls`](smtp_proto::client::ClientConfig::starttls).
#[derive(Clone)]
pub struct TlsOptions {
    /// rustls configuration (roots or an "insecure" verifier chosen by the caller).
    pub config: Arc<rustls::ClientConfig>,
    /// The name the certificate must match (and SNI).
    pub server_name: ServerName<'static>,
    /// TLS from the first byte (port 465, RFC 8314) rather than STARTTLS.
    pub implicit: bool,
}

type Stream = crate::stream::Stream<TlsStream<TcpStream>>;

/// A transcript sink for `-v`: receives `C: ...` and `S: ...` lines (AUTH redacted).
pub type Transcript = Box<dyn FnMut(&str) + Send>;

/// One client connection.
pub struct Connection {
    stream: Stream,
    client: Client,
    tls: Option<TlsOptions>,
    transcript: Option<Transcript>,
    outcomes: Vec<MessageOutcome>,
    failure: Option<ClientError>,
    closed: bool,
    /// A write timed out: nothing more is written.
    broken: bool,
    ready: bool,
    /// Outputs met while pumping a body, handled by the main loop next.
    stash: std::collections::VecDeque<ClientOutput>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The body of the message being sent, if the machine asks for it.
type Body<'a> = Option<&'a mut (dyn AsyncRead + Unpin + Send)>;

impl Connection {
    /// Connects (within `connect_timeout`), runs the greeting, EHLO, STARTTLS and AUTH as
    /// `config` says, and returns once the session is ready for a message.
    pub async fn connect(
        addr: impl ToSocketAddrs,
        config: Arc<ClientConfig>,
        tls: Option<TlsOptions>,
        connect_timeout: Duration,
        transcript: Option<Transcript>,
    ) -> Result<Connection, SendError> {
        let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| SendError::ConnectTimeout)??;
        tcp.set_nodelay(true)?;
        let implicit = tls.as_ref().is_some_and(|t| t.implicit);
        let client = Client::new(config, implicit, Instant::now());
        let stream = if implicit {
            let t = tls.as_ref().ok_or(SendError::Closed)?;
            let connector = TlsConnector::from(t.config.clone());
            // Implicit TLS (RFC 8314): the handshake comes out of the greeting's time.
            let handshake = connector.connect(t.server_name.clone(), tcp);
            let s = bounded(client.deadline(), handshake)
                .await
                .map_err(|_| SendError::Tls(io::ErrorKind::TimedOut.into()))?
                .map_err(SendError::Tls)?;
            Stream::Tls(Box::new(s))
        } else {
            Stream::Plain(tcp)
        };
        let mut conn = Connection {
            stream,
            client,
            tls,
            transcript,
            outcomes: Vec::new(),
            failure: None,
            closed: false,
            broken: false,
            ready: false,
            stash: std::collections::VecDeque::new(),
        };
        conn.drive(None, |c| c.ready).await?;
        Ok(conn)
    }

    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        self.client.is_tls()
    }

    /// The mechanism AUTH succeeded with.
    pub fn authenticated(&self) -> Option<&Mechanism> {
        self.client.authenticated()
    }

    /// Why the session failed, once it has (a message's outcome may come first, then
    /// the failure: an unsolicited reply, a timeout).
    pub fn error(&self) -> Option<&ClientError> {
        self.failure.as_ref()
    }

    /// Sends one message and returns its outcome. The body is read from `body` in
    /// chunks while it is sent.
    pub async fn send(
        &mut self,
        envelope: Envelope,
        body: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<MessageOutcome, SendError> {
        if self.closed {
            return Err(self
                .failure
                .clone()
                .map_or(SendError::Closed, SendError::Session));
        }
        let id = self
            .client
            .send_mail(envelope)
            .map_err(|_| SendError::Closed)?;
        self.ready = false;
        self.drive(Some(body), |c| c.outcomes.iter().any(|o| o.id == id))
            .await?;
        let i = self
            .outcomes
            .iter()
            .position(|o| o.id == id)
            .ok_or(SendError::Closed)?;
        Ok(self.outcomes.remove(i))
    }

    /// Sends QUIT and waits for the server to answer and the connection to close.
    pub async fn quit(mut self) -> Result<(), SendError> {
        if self.closed {
            return Ok(());
        }
        self.client.quit();
        self.drive(None, |c| c.closed).await
    }

    /// Runs the machine until it waits and `done` says so (or the session closes).
    async fn drive(
        &mut self,
        mut body: Body<'_>,
        done: impl Fn(&Connection) -> bool,
    ) -> Result<(), SendError> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let output = match self.stash.pop_front() {
                Some(o) => o,
                None => self.client.poll_output(),
            };
            match output {
                ClientOutput::Transmit(bytes) => self.write(&bytes).await?,
                ClientOutput::Event(event) => self.event(event, &mut body).await?,
                ClientOutput::StartTls => self.upgrade().await?,
                ClientOutput::Close => {
                    if !self.broken {
                        // TLS close_notify is a write too: bounded like the others.
                        let limit = self.client.config().timeouts.command;
                        let _ = tokio::time::timeout(limit, self.stream.shutdown()).await;
                    }
                    self.closed = true;
                }
                ClientOutput::Wait { deadline } => {
                    // Only once the machine has handled everything it was given: a reply
                    // that came with the one awaited is read (and refused if nothing
                    // asked for it) before the caller hears that the session is ready.
                    if done(self) {
                        return Ok(());
                    }
                    if self.closed {
                        return Err(self
                            .failure
                            .clone()
                            .map_or(SendError::Closed, SendError::Session));
                    }
                    match bounded(deadline, self.stream.read(&mut buf)).await {
                        Err(Elapsed) => self.client.handle_timeout(Instant::now()),
                        Ok(Ok(0) | Err(_)) => self.client.handle_eof(Instant::now()),
                        Ok(Ok(n)) => self.client.handle_input(&buf[..n], Instant::now()),
                    }
                }
            }
        }
    }

    async fn event(&mut self, event: ClientEvent, body: &mut Body<'_>) -> Result<(), SendError> {
        match event {
            ClientEvent::Ready => self.ready = true,
            ClientEvent::MessageDone(o) => self.outcomes.push(o),
            ClientEvent::Failed(e) => self.failure = Some(e),
            ClientEvent::Transcript(line) => {
                if let Some(t) = self.transcript.as_mut() {
                    t(&line);
                }
            }
            ClientEvent::BodyWanted { .. } => {
                let Some(reader) = body.as_mut() else {
                    return Err(SendError::Closed);
                };
                let mut chunk = vec![0u8; BODY_CHUNK];
                loop {
                    let n = reader.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    if self.client.send_body(&chunk[..n]).is_err() {
                        // The machine refused the body (a line over 998 octets) and
                        // reported the message; it closes without the final dot.
                        return Ok(());
                    }
                    // Write what the chunk produced before reading more: bounded memory.
                    loop {
                        match self.client.poll_output() {
                            ClientOutput::Transmit(bytes) => self.write(&bytes).await?,
                            ClientOutput::Wait { .. } => break,
                            other => {
                                // A reply arrived meanwhile (a 421, say): the main loop
                                // handles it, and send_body fails from then on.
                                self.stash.push_back(other);
                                break;
                            }
                        }
                    }
                }
                let _ = self.client.end_body();
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes what the machine transmitted, within its deadline: a server that stops
    /// reading fails the session with a timeout instead of holding it forever.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        if self.broken {
            return Ok(());
        }
        self.client.handle_sending(Instant::now());
        let deadline = self.client.deadline();
        match bounded(deadline, self.stream.write_all(bytes)).await {
            Ok(written) => Ok(written?),
            Err(Elapsed) => {
                // The socket may hold half of what was written: nothing more goes out.
                self.broken = true;
                let now = deadline.map_or_else(Instant::now, |d| d.max(Instant::now()));
                self.client.handle_timeout(now);
                Ok(())
            }
        }
    }

    async fn upgrade(&mut self) -> Result<(), SendError> {
        let Some(tls) = self.tls.clone() else {
            self.client.handle_eof(Instant::now());
            return Ok(());
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(SendError::Closed);
        };
        let connector = TlsConnector::from(tls.config);
        // The machine's deadline for the handshake (its TLS timeout).
        let handshake = connector.connect(tls.server_name, tcp);
        let s = bounded(self.client.deadline(), handshake)
            .await
            .map_err(|_| SendError::Tls(io::ErrorKind::TimedOut.into()))?
            .map_err(SendError::Tls)?;
        self.stream = Stream::Tls(Box::new(s));
        self.client.handle_tls_established(Instant::now());
        Ok(())
    }
}

/// The deadline passed first.
struct Elapsed;

/// Runs `future` until `deadline` (forever when `None`).
async fn bounded<F: std::future::Future>(
    deadline: Option<Instant>,
    future: F,
) -> Result<F::Output, Elapsed> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), future)
            .await
            .map_err(|_| Elapsed),
        None => Ok(future.await),
    }
}

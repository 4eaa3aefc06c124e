//! The client side: a [`Connector`] opens [`Connection`]s, each driving
//! [`smtp_proto::client::Client`] through [`Driver`].
//!
//! The builder, its checks and the [`Error`] type are [`smtp_proto::client::host`]'s,
//! the same as the blocking adapter's; this file holds only sockets, TLS and timers. The
//! loop carries out the driver's [`Step`]s: Transmit → write; Body → read a chunk from
//! the caller's [`AsyncRead`], `send_body`, write, repeat, then `end_body` (or
//! `abort_body` when reading fails); StartTls → hand the raw socket to rustls; Read →
//! read until the machine's deadline. Every wait is bounded by the machine's deadline:
//! reads, writes (a server that stops reading mid-DATA) and TLS handshakes alike.
//!
//! The example is in the crate docs: this module is private, and its docs are not rendered.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::client::host::{BodyRead, Driver, Step, Until};
use smtp_proto::client::{Envelope, MessageOutcome};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

pub use smtp_proto::client::host::{DEFAULT_BODY_CHUNK, Error, Transcript};

/// Bytes read from the socket per read.
const READ_CHUNK: usize = 8 * 1024;

type Stream = crate::stream::Stream<TlsStream<TcpStream>>;

smtp_proto::connector!(smtp_tokio, crate::tls::client_config);

impl Connector {
    /// Connects to `server` (`HOST:PORT`, `[IPv6]:PORT`; port 25 when missing), trying
    /// each resolved address in turn within the connect timeout, and runs the session
    /// until it is ready for a message: greeting, EHLO, STARTTLS as the policy says,
    /// AUTH when credentials are configured.
    pub async fn connect(&self, server: &str) -> Result<Connection, Error> {
        let target = self.setup.target(server);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host, target.port))
            .await
            .map_err(|e| Error::resolve(server, e))?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match tokio::time::timeout(self.setup.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => return self.start(tcp, target.server_name).await,
                Ok(Err(e)) => last = e,
                Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "timed out"),
            }
        }
        Err(Error::connect(server, last))
    }

    /// Runs the session on a TCP connection the caller opened; `server_name` is for
    /// TLS.
    pub async fn start(&self, tcp: TcpStream, server_name: &str) -> Result<Connection, Error> {
        // Commands are small and already batched per pipelined group (RFC 2920).
        tcp.set_nodelay(true).map_err(|e| Error::Io(Arc::new(e)))?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::ServerName(server_name.to_owned()))?;
        let mut conn = Connection {
            driver: self.setup.driver(Instant::now()),
            stream: Stream::Plain(tcp),
            tls: self.setup.tls.clone(),
            server_name,
            body_chunk: self.setup.body_chunk,
            write_timeout: self.setup.write_timeout,
        };
        if self.setup.implicit_tls {
            // Implicit TLS (RFC 8314): the handshake comes out of the greeting's time.
            let deadline = conn.driver.implicit_tls_deadline();
            conn.handshake(deadline)
                .await
                .map_err(|e| Error::Tls(Arc::new(e)))?;
        }
        conn.drive(None, Until::Ready).await;
        conn.driver.ready()?;
        Ok(conn)
    }
}

/// One client connection; send any number of messages, then [`Connection::quit`].
pub struct Connection {
    driver: Driver,
    stream: Stream,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: ServerName<'static>,
    body_chunk: usize,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

/// The body of the message being sent, if the machine asks for it.
type Body<'a> = Option<&'a mut (dyn AsyncRead + Unpin + Send)>;

smtp_proto::connection_getters!();

impl Connection {
    /// The negotiated TLS version and cipher suite, for logs.
    pub fn tls_info(&self) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
        let crate::stream::Stream::Tls(tls) = &self.stream else {
            return None;
        };
        let (_, conn) = tls.get_ref();
        Some((
            conn.protocol_version()?,
            conn.negotiated_cipher_suite()?.suite(),
        ))
    }

    /// Sends one message and returns its outcome. The body is read from `body` in
    /// chunks while it is sent.
    ///
    /// A session that fails during the message still gives the message's outcome
    /// (temporary, or unknown when the final dot went out unanswered); the next call
    /// then returns the failure, and so does every call after it. A failing `body`
    /// abandons the message without its final dot and closes the connection
    /// ([`Error::Body`]).
    pub async fn send(
        &mut self,
        envelope: Envelope,
        body: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<MessageOutcome, Error> {
        let id = self.driver.send_mail(envelope)?;
        self.drive(Some(body), Until::Message(id)).await;
        if let Some(e @ Error::Body(_)) = self.driver.error() {
            return Err(e);
        }
        self.driver.outcome(id)
    }

    /// Sends QUIT and waits for the server to answer and the connection to close; the
    /// session's failure, if it failed.
    pub async fn quit(mut self) -> Result<(), Error> {
        if self.driver.quit() {
            self.drive(None, Until::Closed).await;
        }
        self.driver.quit_result()
    }

    /// Carries out the driver's steps until `until` holds or the session closes. What
    /// goes wrong is recorded in the driver, for its result.
    async fn drive(&mut self, mut body: Body<'_>, until: Until) {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            match self.driver.poll(until) {
                Step::Transmit(bytes) => self.write(&bytes).await,
                Step::Body(_) => match body.take() {
                    Some(reader) => self.send_body(reader).await,
                    // Only `send` queues messages, always with a body.
                    None => self.driver.end_body(),
                },
                Step::StartTls { deadline } => match self.handshake(deadline).await {
                    Ok(()) => self.driver.handle_tls_established(Instant::now()),
                    Err(e) => self
                        .driver
                        .handle_broken(Error::Tls(Arc::new(e)), Instant::now()),
                },
                Step::Close => self.close().await,
                Step::Read { deadline } => {
                    match bounded(deadline, self.stream.read(&mut buf)).await {
                        Err(Elapsed) => self.driver.handle_timeout(Instant::now()),
                        Ok(Ok(0)) => self.driver.handle_eof(Instant::now()),
                        // A TLS peer that closes without close_notify: the session
                        // decides whether that lost anything.
                        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            self.driver.handle_eof(Instant::now())
                        }
                        Ok(Err(e)) => self
                            .driver
                            .handle_broken(Error::Io(Arc::new(e)), Instant::now()),
                        Ok(Ok(n)) => self.driver.handle_input(&buf[..n], Instant::now()),
                    }
                }
                Step::Done => return,
            }
        }
    }

    /// Streams the body: a chunk read, handed to the machine and written before the
    /// next is read (bounded memory).
    async fn send_body(&mut self, reader: &mut (dyn AsyncRead + Unpin + Send)) {
        let mut chunk = vec![0u8; self.body_chunk];
        loop {
            let read = reader.read(&mut chunk).await;
            match self.driver.handle_body_read(read.map(|n| &chunk[..n])) {
                BodyRead::Sent => {
                    if !self.flush_body().await {
                        return;
                    }
                }
                BodyRead::Again => continue,
                BodyRead::Done => return,
            }
        }
    }

    /// Writes what the last chunk of body produced; `false` when the session ended
    /// meanwhile.
    async fn flush_body(&mut self) -> bool {
        loop {
            match self.driver.poll(Until::Closed) {
                Step::Transmit(bytes) => self.write(&bytes).await,
                Step::Read { .. } => return !self.driver.is_closed(),
                Step::Close => {
                    self.close().await;
                    return false;
                }
                Step::Done | Step::StartTls { .. } | Step::Body(_) => return false,
            }
        }
    }

    /// TLS close_notify and a TCP half-close; a write too, so bounded like the others.
    async fn close(&mut self) {
        let limit = self.driver.client().config().timeouts.command;
        let _ = tokio::time::timeout(limit, self.stream.shutdown()).await;
    }

    /// Writes what the machine transmitted, within its deadline (and the caller's write
    /// timeout): a server that stops reading fails the session with a timeout instead of
    /// holding it forever.
    async fn write(&mut self, bytes: &[u8]) {
        let start = Instant::now();
        self.driver.handle_sending(start);
        let deadline = self.driver.deadline();
        let cap = self.write_timeout.map(|t| start + t);
        let bound = match (deadline, cap) {
            (Some(d), Some(c)) => Some(d.min(c)),
            (d, c) => d.or(c),
        };
        match bounded(bound, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self
                .driver
                .handle_broken(Error::Io(Arc::new(e)), Instant::now()),
            // The session's own deadline: a timeout of the session.
            Err(Elapsed) if bound == deadline => {
                let d = deadline.unwrap_or_else(Instant::now);
                self.driver.handle_write_timeout(d, Instant::now());
            }
            // The caller's write bound came first: the connection is broken.
            Err(Elapsed) => self.driver.handle_broken(
                Error::Io(Arc::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "write timed out",
                ))),
                Instant::now(),
            ),
        }
    }

    /// The client's side of the handshake on the raw socket, which holds no plaintext
    /// the machine has not seen, bounded by the machine's `deadline`.
    async fn handshake(&mut self, deadline: Instant) -> io::Result<()> {
        let Some(tls) = self.tls.clone() else {
            // The builder makes one whenever TLS may be used.
            return Err(io::Error::other("TLS without a TLS configuration"));
        };
        let crate::stream::Stream::Plain(tcp) =
            std::mem::replace(&mut self.stream, Stream::Upgrading)
        else {
            return Err(io::Error::other("TLS on a stream that is not plain TCP"));
        };
        let connector = TlsConnector::from(tls);
        let handshake = connector.connect(self.server_name.clone(), tcp);
        let s = bounded(Some(deadline), handshake)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        self.stream = Stream::Tls(Box::new(s));
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

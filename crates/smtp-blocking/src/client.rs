//! The client: a [`Connector`] opens [`Connection`]s, each a loop around
//! [`Driver::poll`](smtp_proto::client::host::Driver::poll) on a blocking socket. The
//! builder, its checks and the error type are [`smtp_proto::client::host`]'s, shared with
//! the tokio adapter; this file holds only the sockets, TLS and timers.
//!
//! The example is in the crate docs: this module is private, and its docs are not rendered.

use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use smtp_proto::client::host::{BodyRead, Driver, Setup, Step, Until};
use smtp_proto::client::{Envelope, MessageOutcome};

use crate::stream::{READ_CHUNK, ReadResult, Stream};

pub use smtp_proto::client::host::{DEFAULT_BODY_CHUNK, Error, Transcript};

/// A client-side connection, plain or upgraded.
type ClientStream = Stream<rustls::ClientConnection>;

smtp_proto::connector!(smtp_blocking, crate::tls::client_config);

impl Connector {
    /// Connects to `server` (`HOST:PORT`, `[IPv6]:PORT`; port 25 when missing), trying
    /// each resolved address in turn, and runs the session until it is ready for a
    /// message: greeting, EHLO, STARTTLS as the policy says, AUTH when credentials are
    /// configured.
    pub fn connect(&self, server: &str) -> Result<Connection, Error> {
        let target = self.setup.target(server);
        let addrs: Vec<SocketAddr> = (target.host, target.port)
            .to_socket_addrs()
            .map_err(|e| Error::resolve(server, e))?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.setup.connect_timeout) {
                Ok(tcp) => return self.start(tcp, target.server_name),
                Err(e) => last = e,
            }
        }
        Err(Error::connect(server, last))
    }

    /// Runs the session on a TCP connection the caller opened; `server_name` is for
    /// TLS.
    pub fn start(&self, tcp: TcpStream, server_name: &str) -> Result<Connection, Error> {
        let mut conn = Connection::plain(&self.setup, tcp, server_name)?;
        // Implicit TLS (RFC 8314): the handshake comes out of the greeting's time.
        let implicit = self.setup.implicit_tls;
        let handshake = implicit.then(|| conn.driver.implicit_tls_deadline());
        if let Some(deadline) = handshake {
            conn.handshake(deadline)
                .map_err(|e| Error::Tls(Arc::new(e)))?;
        }
        conn.drive(None, Until::Ready);
        conn.driver.ready().map(|()| conn)
    }
}

/// One SMTP session on one connection; send any number of messages, then
/// [`Connection::quit`].
pub struct Connection {
    /// The machine, and what the loop keeps beside it.
    driver: Driver,
    /// The socket, plain or upgraded.
    stream: ClientStream,
    /// For STARTTLS: the name to verify, then the configuration.
    server_name: ServerName<'static>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Octets read from the body's source at a time.
    body_chunk: usize,
    write_timeout: Option<std::time::Duration>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("driver", &self.driver)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

smtp_proto::connection_getters!();

impl Connection {
    /// A connection on plain TCP, before the greeting; commands are small and already
    /// batched per pipelined group (RFC 2920), so no Nagle delay.
    fn plain(setup: &Setup<Connector>, tcp: TcpStream, name: &str) -> Result<Self, Error> {
        tcp.set_nodelay(true).map_err(|e| Error::Io(Arc::new(e)))?;
        let server_name =
            ServerName::try_from(name.to_owned()).map_err(|_| Error::ServerName(name.into()))?;
        Ok(Connection {
            driver: setup.driver(Instant::now()),
            stream: Stream::Plain(tcp),
            tls: setup.tls.clone(),
            server_name,
            body_chunk: setup.body_chunk,
            write_timeout: setup.write_timeout,
        })
    }

    /// The negotiated TLS version and cipher suite, for logs.
    pub fn tls_info(&self) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
        let conn = self.stream.tls()?;
        Some((
            conn.protocol_version()?,
            conn.negotiated_cipher_suite()?.suite(),
        ))
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.tcp().and_then(|t| t.peer_addr().ok())
    }

    /// Sends one message, its body read from `body` in pieces (never whole in memory),
    /// and returns its outcome: per recipient and overall, with the server's replies.
    ///
    /// A session that fails during the message still gives the message's outcome
    /// (temporary, or unknown when the final dot went out unanswered); the next call
    /// then returns the failure, and so does every call after it. A failing `body`
    /// abandons the message without its final dot and closes the connection
    /// ([`Error::Body`]).
    pub fn send(
        &mut self,
        envelope: Envelope,
        mut body: impl Read,
    ) -> Result<MessageOutcome, Error> {
        let id = self.driver.send_mail(envelope)?;
        self.drive(Some(&mut body as &mut dyn Read), Until::Message(id));
        if let Some(e @ Error::Body(_)) = self.driver.error() {
            return Err(e);
        }
        self.driver.outcome(id)
    }

    /// Ends the session with QUIT and closes the connection; the session's failure, if
    /// it failed.
    pub fn quit(mut self) -> Result<(), Error> {
        if self.driver.quit() {
            self.drive(None, Until::Closed);
        }
        self.driver.quit_result()
    }

    /// The loop: carry out the driver's steps until `until` holds or the session
    /// closes. What goes wrong is recorded in the driver, for its result.
    fn drive(&mut self, mut body: Option<&mut dyn Read>, until: Until) {
        loop {
            match self.driver.poll(until) {
                Step::Transmit(bytes) => self.write(&bytes),
                Step::Body(_) => match body.take() {
                    Some(reader) => self.send_body(reader),
                    // Only `send` queues messages, always with a body.
                    None => self.driver.end_body(),
                },
                Step::StartTls { deadline } => match self.handshake(deadline) {
                    Ok(()) => self.driver.handle_tls_established(Instant::now()),
                    Err(e) => self
                        .driver
                        .handle_broken(Error::Tls(Arc::new(e)), Instant::now()),
                },
                Step::Close => self.stream.close(false),
                Step::Read { deadline } => {
                    let mut buf = [0u8; READ_CHUNK];
                    match self.stream.read(&mut buf, deadline) {
                        ReadResult::Data(n) => self.driver.handle_input(&buf[..n], Instant::now()),
                        ReadResult::Timeout => self.driver.handle_timeout(Instant::now()),
                        ReadResult::Eof => self.driver.handle_eof(Instant::now()),
                        ReadResult::Failed(e) => self
                            .driver
                            .handle_broken(Error::Io(Arc::new(e)), Instant::now()),
                    }
                }
                Step::Done => return,
            }
        }
    }

    /// Writes what the machine transmitted, within its deadline: a server that stops
    /// reading fails the session with a timeout instead of holding it forever.
    fn write(&mut self, bytes: &[u8]) {
        let start = Instant::now();
        self.driver.handle_sending(start);
        let deadline = self.driver.deadline();
        // Whether the caller's own write bound comes before the session's deadline.
        let capped = self
            .write_timeout
            .is_some_and(|cap| deadline.is_none_or(|d| start + cap < d));
        let Err(e) = self
            .stream
            .write_all_until(bytes, deadline, self.write_timeout)
        else {
            return;
        };
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        match deadline {
            Some(d) if timed_out && !capped => self.driver.handle_write_timeout(d, Instant::now()),
            _ => self
                .driver
                .handle_broken(Error::Io(Arc::new(e)), Instant::now()),
        }
    }

    fn handshake(&mut self, deadline: Instant) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            // The builder makes one whenever TLS may be used.
            return Err(io::Error::other("TLS without a TLS configuration"));
        };
        let conn = rustls::ClientConnection::new(Arc::clone(tls), self.server_name.clone())
            .map_err(io::Error::other)?;
        self.stream.upgrade(conn, deadline)
    }

    /// Streams the body: one piece read, handed to the machine, and written, at a time,
    /// so memory stays bounded.
    fn send_body(&mut self, reader: &mut dyn Read) {
        let mut buf = vec![0u8; self.body_chunk];
        loop {
            let read = reader.read(&mut buf).map(|n| &buf[..n]);
            match self.driver.handle_body_read(read) {
                BodyRead::Again => {}
                BodyRead::Sent if self.flush_body() => {}
                BodyRead::Sent | BodyRead::Done => return,
            }
        }
    }

    /// Writes what the last piece of body produced; `false` when the session ended
    /// meanwhile or something other than bytes came out (a reply: the main loop handles
    /// it, and the next piece is refused if the message failed).
    fn flush_body(&mut self) -> bool {
        loop {
            match self.driver.poll(Until::Closed) {
                Step::Transmit(bytes) => self.write(&bytes),
                Step::Read { .. } => return !self.driver.is_closed(),
                Step::Close => {
                    self.stream.close(false);
                    return false;
                }
                Step::Done => return false,
                Step::StartTls { .. } | Step::Body(_) => return false,
            }
        }
    }
}

//! One connection: a loop around [`Driver::poll_output`] (the machine's, with what every
//! adapter keeps beside it).
//!
//! Transmit → write; Event → the handler through `dispatch` (which gives its decision to
//! the machine); StartTls → hand the raw socket to rustls; Close → shut down; Wait → read
//! (when asked), sleep until the deadline, tell the machine a shutdown started, or close
//! on forced shutdown. Nothing here knows SMTP: every byte that goes out was produced by
//! the machine.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smtp_proto::Reply;
use smtp_proto::server::host::{Driver, Level};
use smtp_proto::server::{Output, ServerConfig, Session};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// The server side's socket.
pub(crate) type Stream = crate::stream::Stream<TlsStream<TcpStream>>;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::host::{ConnectInfo, SessionHandler, dispatch};

/// Bytes read from the socket per read call. The buffer lives on the stack only while a
/// read completes, so an idle session holds none (see the crate documentation).
pub(crate) const READ_CHUNK: usize = 8 * 1024;

/// What the adapter needs besides the machine and the handler.
pub(crate) struct SessionLoop {
    pub(crate) info: ConnectInfo,
    pub(crate) tls: Option<TlsAcceptor>,
    /// Cancelled when the server starts shutting down: the session closes at its next
    /// command boundary outside a transaction.
    pub(crate) draining: CancellationToken,
    /// Cancelled when the server's shutdown grace period is over.
    pub(crate) force_close: CancellationToken,
    /// How long a write may block (a client that stops reading).
    pub(crate) write_timeout: Duration,
}

/// Why the wait ended.
enum Wake {
    /// Bytes were read and already handed to the machine.
    Input,
    Eof,
    Failed(io::Error),
    Deadline,
    /// The server started shutting down.
    Drain,
    /// The grace period is over.
    Shutdown,
}

impl SessionLoop {
    /// Drives a new session until the machine says Close (or the connection breaks).
    /// With `refuse`, the machine is told to close with that reply before it greets
    /// (connection limit, host refusal), so even then every byte is the machine's.
    pub(crate) async fn run<H: SessionHandler>(
        &self,
        mut stream: Stream,
        config: Arc<ServerConfig>,
        refuse: Option<Reply>,
        handler: &mut H,
    ) {
        // The machine is built here, not passed in, so the task holds it only once.
        let mut server = Driver::new(config, &self.info, refuse, Instant::now());
        server.set_tls_version(tls_version(&stream));
        loop {
            match server.poll_output() {
                Output::Transmit(bytes) => {
                    let write = async {
                        stream.write_all(&bytes).await?;
                        stream.flush().await
                    };
                    let result = match tokio::time::timeout(self.write_timeout, write).await {
                        Ok(r) => r,
                        Err(_) => Err(io::ErrorKind::TimedOut.into()),
                    };
                    if let Err(error) = result {
                        debug!(%error, "write failed");
                        server.handle_broken(Instant::now());
                    }
                }
                // Boxed: handler futures and the TLS handshake are large and rare, and
                // an idle session should not carry their space (see the crate docs).
                Output::Event(event) => {
                    let quietest = quietest();
                    let dispatch =
                        dispatch(&mut server, &self.info, handler, event, entropy, quietest);
                    match Box::pin(dispatch).await {
                        Some(note) if note.level == Level::Debug => debug!("{note}"),
                        Some(note) if note.level == Level::Info => info!("{note}"),
                        Some(note) => warn!("{note}"),
                        None => {}
                    }
                }
                Output::StartTls => match Box::pin(self.upgrade(&mut stream, &server)).await {
                    Ok(()) => {
                        server.set_tls_version(tls_version(&stream));
                        server.handle_tls_established(Instant::now());
                    }
                    Err(error) => {
                        info!(%error, "STARTTLS handshake failed");
                        server.handle_broken(Instant::now());
                    }
                },
                Output::Close if server.is_broken() => break,
                Output::Close => {
                    let _ = tokio::time::timeout(self.write_timeout, stream.shutdown()).await;
                    break;
                }
                Output::Wait { deadline, read } => {
                    match self.wait(&mut stream, &mut server, deadline, read).await {
                        Wake::Input => {}
                        Wake::Eof => server.handle_eof(Instant::now()),
                        Wake::Failed(error) => {
                            debug!(%error, "read failed");
                            server.handle_broken(Instant::now());
                        }
                        Wake::Deadline => server.handle_timeout(Instant::now()),
                        Wake::Drain => server.drain(),
                        Wake::Shutdown => server.force_close(),
                    }
                }
            }
        }
        info!("disconnected");
    }

    /// Waits for input (only when the machine asks for it), the deadline, or a forced
    /// shutdown. Input is fed to the machine straight from a stack buffer: the adapter
    /// keeps no bytes of its own, so nothing is left behind when STARTTLS swaps the
    /// stream.
    async fn wait(
        &self,
        stream: &mut Stream,
        server: &mut Driver,
        deadline: Option<Instant>,
        read: bool,
    ) -> Wake {
        let drained = server.is_draining();
        let input = poll_fn(|cx| {
            let mut buf = [0u8; READ_CHUNK];
            let mut buf = ReadBuf::new(&mut buf);
            match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Wake::Failed(e)),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    debug!("client closed the connection");
                    Poll::Ready(Wake::Eof)
                }
                Poll::Ready(Ok(())) => {
                    server.handle_input(buf.filled(), Instant::now());
                    Poll::Ready(Wake::Input)
                }
            }
        });
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = self.force_close.cancelled() => Wake::Shutdown,
            () = self.draining.cancelled(), if !drained => Wake::Drain,
            wake = input, if read => wake,
            () = sleep => Wake::Deadline,
        }
    }

    /// STARTTLS: the raw TCP stream goes to rustls as it is. The adapter holds no
    /// buffered bytes (reads go straight into the machine, which refuses anything
    /// pipelined after STARTTLS), so no plaintext can leak into the TLS session.
    async fn upgrade(&self, stream: &mut Stream, server: &Session) -> io::Result<()> {
        let Some(acceptor) = &self.tls else {
            return Err(io::Error::other("STARTTLS without a TLS configuration"));
        };
        let Stream::Plain(tcp) = std::mem::replace(stream, Stream::Upgrading) else {
            return Err(io::Error::other(
                "STARTTLS on a stream that is not plain TCP",
            ));
        };
        let handshake = acceptor.accept(tcp);
        let tls = match server.deadline() {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), handshake)
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??,
            None => handshake.await?,
        };
        log_tls(&tls);
        *stream = Stream::Tls(Box::new(tls));
        Ok(())
    }
}

/// What a CRAM-MD5 challenge is made of and the machine cannot draw: OS randomness and
/// the time since the Unix epoch.
fn entropy() -> (Option<u64>, Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    (getrandom::u64().ok(), now.unwrap_or_default())
}

/// The negotiated TLS version of `stream`, its wire value, once it is TLS.
fn tls_version(stream: &Stream) -> Option<u16> {
    match stream {
        Stream::Tls(tls) => tls.get_ref().1.protocol_version().map(u16::from),
        _ => None,
    }
}

pub(crate) fn log_tls(tls: &TlsStream<TcpStream>) {
    let conn = tls.get_ref().1;
    info!(
        version = ?conn.protocol_version(),
        cipher = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
        "TLS established"
    );
}

/// The lowest level the log prints: notes below it are not even built
/// ([`settle_at`](smtp_proto::server::host::settle_at)).
fn quietest() -> Level {
    if tracing::enabled!(tracing::Level::DEBUG) {
        Level::Debug
    } else if tracing::enabled!(tracing::Level::INFO) {
        Level::Info
    } else {
        Level::Warn
    }
}

//! One server connection: a loop around [`Driver::poll_output`] (the machine's, with what
//! every adapter keeps beside it).
//!
//! Transmit → write; Event → the handler through `dispatch` (which gives its decision to
//! the machine); StartTls → hand the raw socket to rustls; Close → close; Wait → read
//! (only when asked) until the deadline, or close on forced shutdown. Nothing here knows SMTP: every byte that goes out was
//! produced by the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smtp_proto::server::host::{Driver, Level};
use smtp_proto::server::{Output, Server};
use tracing::{debug, info, warn};

use crate::control::Control;
use crate::host::{ConnectInfo, Handler, dispatch};
use crate::stream::{READ_CHUNK, ReadResult, Stream};

/// A server-side connection, plain or upgraded.
pub(crate) type ServerStream = Stream<rustls::ServerConnection>;

/// What the loop needs besides the machine and the handler.
pub(crate) struct Session {
    pub(crate) info: ConnectInfo,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) control: Arc<Control>,
    /// Wait a little for the client to close after our last reply.
    pub(crate) linger: bool,
    /// Set while the machine is between transactions, for the shutdown to see.
    pub(crate) idle: Arc<AtomicBool>,
}

impl Session {
    /// Drives the session until the machine says Close (or the connection breaks).
    pub(crate) fn run<H: Handler>(
        &self,
        mut stream: ServerStream,
        mut server: Driver,
        handler: &mut H,
    ) {
        loop {
            match server.poll_output() {
                Output::Transmit(bytes) => {
                    if let Err(error) = stream.write_all(&bytes) {
                        debug!(%error, "write failed");
                        server.handle_broken(Instant::now());
                    }
                }
                Output::Event(event) => {
                    match dispatch(&mut server, &self.info, handler, event, entropy) {
                        Some(note) if note.level == Level::Debug => debug!("{note}"),
                        Some(note) if note.level == Level::Info => info!("{note}"),
                        Some(note) => warn!("{note}"),
                        None => {}
                    }
                }
                Output::StartTls => match self.starttls(&mut stream, &server) {
                    Ok(()) => server.handle_tls_established(Instant::now()),
                    Err(error) => {
                        info!(%error, "STARTTLS handshake failed");
                        server.handle_broken(Instant::now());
                    }
                },
                Output::Close => {
                    if !server.is_broken() {
                        stream.close(self.linger && !self.control.force_closing());
                    }
                    break;
                }
                Output::Wait { deadline, read } => {
                    self.wait(&mut stream, &mut server, deadline, read);
                }
            }
        }
        info!("disconnected");
    }

    /// STARTTLS, bounded by the machine's deadline for the handshake.
    fn starttls(&self, stream: &mut ServerStream, server: &Server) -> std::io::Result<()> {
        let deadline = server.deadline();
        let deadline =
            deadline.unwrap_or_else(|| Instant::now() + server.config().timeouts.tls_handshake);
        crate::tls::accept(stream, self.tls.as_ref(), deadline)
    }

    /// Waits for what the machine waits for: input (only when it asks), its deadline, or
    /// the shutdown, which closes a session between transactions at once.
    fn wait(
        &self,
        stream: &mut ServerStream,
        server: &mut Driver,
        deadline: Option<Instant>,
        read: bool,
    ) {
        if self.control.force_closing() {
            return server.force_close();
        }
        self.idle.store(server.is_idle(), Ordering::SeqCst);
        if !server.is_draining() && self.control.draining() {
            return server.drain();
        }
        if !read {
            // Backpressure: the machine wants no input now. The loop gives every decision
            // before polling again, so only the deadline or a forced close can move it on.
            if !self.control.sleep_until(deadline) {
                server.handle_timeout(Instant::now());
            }
            return;
        }
        let mut buf = [0u8; READ_CHUNK];
        match stream.read(&mut buf, deadline) {
            ReadResult::Data(n) => {
                // Not idle from the moment input arrives: a shutdown must not take a
                // session that is about to open a transaction (or has, and not yet
                // waited again) for an idle one.
                self.idle.store(false, Ordering::SeqCst);
                server.handle_input(&buf[..n], Instant::now());
            }
            ReadResult::Timeout => server.handle_timeout(Instant::now()),
            // A shutdown shuts the read side: that is not the client.
            _ if self.control.force_closing() || self.control.draining() => server.force_close(),
            ReadResult::Eof => {
                debug!("client closed the connection");
                server.handle_eof(Instant::now());
            }
            ReadResult::Failed(error) => {
                debug!(%error, "read failed");
                server.handle_broken(Instant::now());
            }
        }
    }
}

/// What a CRAM-MD5 challenge is made of and the machine cannot draw: OS randomness and
/// the time since the Unix epoch.
fn entropy() -> (Option<u64>, Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    (getrandom::u64().ok(), now.unwrap_or_default())
}

//! One server connection: a loop around [`Driver::poll_output`] (the machine's, with what
//! every adapter keeps beside it).
//!
//! Transmit → write; Event → the handler through `dispatch`, which gives its decision to
//! the machine; StartTls → hand the raw socket to rustls; Close → close; Wait → read (only
//! when asked) until the deadline, or tell the machine that a shutdown started. Nothing
//! here knows SMTP: every byte that goes out was produced by the machine.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smtp_proto::server::Output;
use smtp_proto::server::host::{Driver, Level};
use tracing::{debug, info, warn};

use crate::control::{Slot, Stage};
use crate::host::{ConnectInfo, SessionHandler, dispatch};
use crate::stream::{READ_CHUNK, ReadResult, Stream};

/// A server-side connection, plain or upgraded.
pub(crate) type ServerStream = Stream<rustls::ServerConnection>;

/// What the loop needs besides the machine and the handler.
pub(crate) struct SessionLoop {
    pub(crate) info: ConnectInfo,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The session's place in the server's counts; it tells the shutdown when the
    /// session is idle.
    pub(crate) slot: Slot,
}

impl SessionLoop {
    /// Drives the session until the machine says Close (or the connection breaks).
    pub(crate) fn run<H: SessionHandler>(
        &self,
        mut stream: ServerStream,
        mut server: Driver,
        handler: &mut H,
    ) {
        let version = stream.tls().and_then(|c| c.protocol_version());
        server.set_tls_version(version.map(u16::from));
        loop {
            match server.poll_output() {
                Output::Transmit(bytes) => {
                    if let Err(error) = stream.write_all(&bytes) {
                        debug!(%error, "write failed");
                        server.handle_broken(Instant::now());
                    }
                }
                Output::Event(event) => {
                    match dispatch(&mut server, &self.info, handler, event, entropy, quietest()) {
                        Some(note) if note.level == Level::Debug => debug!("{note}"),
                        Some(note) if note.level == Level::Info => info!("{note}"),
                        Some(note) => warn!("{note}"),
                        None => {}
                    }
                }
                Output::StartTls => self.starttls(&mut stream, &mut server),
                Output::Close if server.is_broken() => break,
                Output::Close => {
                    // Wait a little for the client to close after our last reply.
                    let closing = self.slot.control.stage() == Stage::Closing;
                    stream.close(!self.slot.refusal && !closing);
                    break;
                }
                Output::Wait { deadline, read } => {
                    self.slot.set_idle(server.is_idle());
                    let control = &self.slot.control;
                    let stage = control.stage();
                    if stage == Stage::Closing {
                        server.force_close();
                    } else if stage == Stage::Draining && !server.is_draining() {
                        server.drain();
                    } else if read {
                        self.read(&mut stream, &mut server, deadline);
                    } else if !control.wait_for(deadline, |_| control.stage() == Stage::Closing) {
                        // Backpressure: the machine wants no input now. The loop gives
                        // every decision before polling again, so only the deadline or a
                        // forced close can move it on.
                        server.handle_timeout(Instant::now());
                    }
                }
            }
        }
        info!("disconnected");
    }

    /// STARTTLS, bounded by the machine's deadline for the handshake (or its own
    /// timeout when the machine set none).
    fn starttls(&self, stream: &mut ServerStream, server: &mut Driver) {
        let timeout = server.config().timeouts.tls_handshake;
        let deadline = server
            .deadline()
            .unwrap_or_else(|| Instant::now() + timeout);
        if let Err(error) = crate::tls::accept(stream, self.tls.as_ref(), deadline) {
            info!(%error, "STARTTLS handshake failed");
            return server.handle_broken(Instant::now());
        }
        let version = stream.tls().and_then(|c| c.protocol_version());
        server.set_tls_version(version.map(u16::from));
        server.handle_tls_established(Instant::now());
    }

    /// Reads what the machine waits for, until its deadline.
    fn read(&self, stream: &mut ServerStream, server: &mut Driver, deadline: Option<Instant>) {
        let mut buf = [0u8; READ_CHUNK];
        match stream.read(&mut buf, deadline) {
            ReadResult::Data(n) => {
                // Not idle from the moment input arrives: a shutdown must not take a
                // session that is about to open a transaction for an idle one.
                self.slot.set_idle(false);
                server.handle_input(&buf[..n], Instant::now());
            }
            ReadResult::Timeout => server.handle_timeout(Instant::now()),
            // A shutdown shuts the read side: that is not the client.
            _ if self.slot.control.stage() >= Stage::Draining => server.force_close(),
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

//! One server connection: a loop around [`Server::poll_output`].
//!
//! Transmit → write; Event → ask the handler, then `accept`/`reject`; StartTls → hand the
//! raw socket to rustls; Close → close; Wait → read (only when asked) until the deadline,
//! or close on forced shutdown. Nothing here knows SMTP: every byte that goes out was
//! produced by the machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use smtp_proto::server::{Event, Output, Server};
use tracing::{debug, info, warn};

use crate::control::Control;
use crate::host::{Context, Decision, Handler, reply};
use crate::stream::{READ_CHUNK, ReadResult, Stream};

/// A server-side connection, plain or upgraded.
pub(crate) type ServerStream = Stream<rustls::ServerConnection>;

/// What the loop needs besides the machine and the handler.
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) control: Arc<Control>,
    /// Wait a little for the client to close after our last reply.
    pub(crate) linger: bool,
    /// Set while the machine is between transactions, for the shutdown to see.
    pub(crate) idle: Arc<AtomicBool>,
}

impl Session {
    fn context<'a>(&self, server: &'a Server) -> Context<'a> {
        Context {
            id: self.id,
            peer: self.peer,
            local: self.local,
            session: server,
        }
    }

    /// Drives the session until the machine says Close (or the connection breaks).
    pub(crate) fn run<H: Handler>(
        &self,
        mut stream: ServerStream,
        mut server: Server,
        handler: &mut H,
    ) {
        // The connection broke: the machine still gets to say goodbye to the handler
        // (MessageAborted), but nothing more is written.
        let mut broken = false;
        // The machine was told about the shutdown.
        let mut drained = false;
        loop {
            match server.poll_output() {
                Output::Transmit(bytes) => {
                    if broken {
                        continue;
                    }
                    if let Err(error) = stream.write_all(&bytes) {
                        debug!(%error, "write failed");
                        broken = true;
                        server.handle_eof(Instant::now());
                    }
                }
                Output::Event(event) => self.dispatch(&mut server, handler, event),
                Output::StartTls => match self.upgrade(&mut stream, &server) {
                    Ok(()) => {
                        log_tls(&stream);
                        server.handle_tls_established(Instant::now());
                    }
                    Err(error) => {
                        info!(%error, "STARTTLS handshake failed");
                        broken = true;
                        server.handle_eof(Instant::now());
                    }
                },
                Output::Close => {
                    if !broken {
                        stream.close(self.linger && !self.control.force_closing());
                    }
                    break;
                }
                Output::Wait { deadline, read } => {
                    if broken {
                        // After handle_eof the machine closes; waiting here would hang.
                        break;
                    }
                    if self.control.force_closing() {
                        self.force_close(&mut server);
                        continue;
                    }
                    self.idle.store(server.is_idle(), Ordering::SeqCst);
                    if !drained && self.control.draining() {
                        drained = true;
                        let reply = server.config().shutdown_reply();
                        server.shutdown(reply);
                        continue;
                    }
                    if !read {
                        // Backpressure: the machine wants no input now. This loop gives
                        // every decision before polling again, so only the deadline or a
                        // forced close can move it on.
                        if !self.control.sleep_until(deadline) {
                            server.handle_timeout(Instant::now());
                        }
                        continue;
                    }
                    let mut buf = [0u8; READ_CHUNK];
                    match stream.read(&mut buf, deadline) {
                        ReadResult::Data(n) => {
                            // Not idle from the moment input arrives: a shutdown must not
                            // take a session that is about to open a transaction (or has,
                            // and not yet waited again) for an idle one.
                            self.idle.store(false, Ordering::SeqCst);
                            server.handle_input(&buf[..n], Instant::now());
                        }
                        ReadResult::Timeout => server.handle_timeout(Instant::now()),
                        // A shutdown shuts the read side: that is not the client.
                        _ if self.control.force_closing() || self.control.draining() => {
                            self.force_close(&mut server)
                        }
                        ReadResult::Eof => {
                            debug!("client closed the connection");
                            server.handle_eof(Instant::now());
                        }
                        ReadResult::Failed(error) => {
                            debug!(%error, "read failed");
                            broken = true;
                            server.handle_eof(Instant::now());
                        }
                    }
                }
            }
        }
        info!("disconnected");
    }

    /// The shutdown grace period is over, or the shutdown woke an idle session: the
    /// machine says 421 and closes.
    fn force_close(&self, server: &mut Server) {
        let reply = server.config().shutdown_reply();
        server.close_with(reply);
    }

    /// STARTTLS: the raw TCP stream goes to rustls as it is. The adapter holds no
    /// buffered bytes (reads go straight into the machine, which refuses anything
    /// pipelined after STARTTLS), so no plaintext can leak into the TLS session.
    fn upgrade(&self, stream: &mut ServerStream, server: &Server) -> std::io::Result<()> {
        let Some(tls) = &self.tls else {
            return Err(std::io::Error::other(
                "STARTTLS without a TLS configuration",
            ));
        };
        let conn = rustls::ServerConnection::new(Arc::clone(tls)).map_err(std::io::Error::other)?;
        let deadline = server
            .deadline()
            .unwrap_or_else(|| Instant::now() + server.config().timeouts.tls_handshake);
        stream.upgrade(conn, deadline)
    }

    /// Hands an event to the handler and its decision to the machine.
    fn dispatch<H: Handler>(&self, server: &mut Server, handler: &mut H, event: Event) {
        let ctx = self.context(server);
        let decision = match &event {
            Event::Hello { verb, host } => {
                let d = handler.hello(&ctx, *verb, host);
                log_decision(&d, format_args!("{verb} {host}"));
                Some(d)
            }
            Event::Mail { from, params } => {
                let d = handler.mail(&ctx, from, params);
                log_decision(&d, format_args!("MAIL FROM:{from}"));
                Some(d)
            }
            Event::Rcpt { to, params } => {
                let d = handler.rcpt(&ctx, to, params);
                log_decision(&d, format_args!("RCPT TO:{to}"));
                Some(d)
            }
            Event::MessageStart => {
                debug!("message started");
                handler.message_start(&ctx);
                None
            }
            Event::Body(chunk) => {
                handler.message_chunk(&ctx, chunk.clone());
                None
            }
            Event::MessageEnd => {
                let d = handler.message_end(&ctx);
                log_decision(&d, format_args!("message"));
                Some(d)
            }
            Event::LmtpMessageEnd { recipients } => {
                handler.lmtp_message_end(&ctx, *recipients);
                None
            }
            Event::LmtpDelivery { to } => {
                let d = handler.lmtp_delivery(&ctx, to);
                log_decision(&d, format_args!("LMTP delivery to {to}"));
                Some(d)
            }
            Event::MessageAborted { reason } => {
                info!(?reason, "message aborted");
                handler.message_aborted(&ctx, *reason);
                None
            }
            Event::Auth {
                mechanism,
                credentials,
            } => {
                let d = handler.auth(&ctx, mechanism, credentials);
                // The identity only: credentials never reach a log.
                let user = credentials.identity().unwrap_or("");
                log_decision(&d, format_args!("AUTH {mechanism} user={user:?}"));
                Some(d)
            }
            Event::AuthChallengeNeeded { .. } => {
                let challenge = cram_md5_challenge(server.config().hostname());
                if let Err(error) = server.auth_challenge(&challenge) {
                    warn!(%error, "CRAM-MD5 challenge refused");
                    let r = reply(454, (4, 7, 0), "Temporary authentication failure");
                    let _ = server.reject(r);
                }
                return;
            }
            Event::Vrfy(arg) => Some(handler.vrfy(&ctx, arg)),
            Event::Expn(arg) => Some(handler.expn(&ctx, arg)),
            Event::Etrn(arg) => Some(handler.etrn(&ctx, arg)),
            other => {
                match other {
                    Event::Connected => info!(peer = %self.peer, "connected"),
                    Event::TlsEstablished => info!("STARTTLS done"),
                    Event::ProtocolError(error) => info!(%error, "client error"),
                    Event::Timeout => info!("timeout"),
                    Event::Quit => debug!("QUIT"),
                    _ => debug!(?other, "event"),
                }
                handler.event(&ctx, other);
                None
            }
        };
        if let Some(decision) = decision {
            apply(server, decision);
        }
    }
}

/// Gives the handler's decision to the machine. A reply of the wrong class is a bug in
/// the handler; the session answers `451 4.3.0` rather than stall.
fn apply(server: &mut Server, decision: Decision) {
    if let Err(error) = server.decide(decision) {
        warn!(%error, "handler decision refused by the session");
    }
}

fn log_decision(decision: &Decision, what: std::fmt::Arguments<'_>) {
    match decision {
        Decision::Accept => info!("{what}: accepted"),
        Decision::AcceptWith(r) | Decision::Reject(r) => {
            let text = r.to_string();
            info!("{what}: {}", text.trim_end())
        }
    }
}

pub(crate) fn log_tls(stream: &ServerStream) {
    if let Some(conn) = stream.tls() {
        info!(
            version = ?conn.protocol_version(),
            cipher = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
            "TLS established"
        );
    }
}

/// `<random.timestamp@hostname>` (RFC 2195 §2), fresh for every attempt.
pub(crate) fn cram_md5_challenge(hostname: &str) -> String {
    let random = getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: fall back on the clock's nanoseconds, still unique per try.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into())
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    smtp_proto::sasl::cram_md5_challenge(random, now, hostname)
        .or_else(|_| smtp_proto::sasl::cram_md5_challenge(random, now, "localhost"))
        .unwrap_or_else(|_| format!("<{random}.{now}@localhost>"))
}

//! Listeners, the accept loop, the connection limit and graceful shutdown.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use smtp_proto::server::ServerConfig;
use smtp_proto::server::host::{self, Listen, ListenerAddr, Listening, Setup};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::host::{Backend, ConnectInfo, Refused};
use crate::session::{SessionLoop, Stream, log_tls};

/// Configures a [`Server`]. See [`Server::builder`].
pub type Builder<H> = host::Builder<Server<H>>;

/// An SMTP (or LMTP) server on one or more listeners, running one
/// [`smtp_proto::server::Session`] machine per connection.
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// use smtp_tokio::{ConnectInfo, Context, Decision, SessionHandler, Backend, Server};
/// use smtp_proto::{Reply, server::ServerConfig};
///
/// struct Sink;
/// struct Session;
/// impl Backend for Sink {
///     type Handler = Session;
///     fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
///         Ok(Session)
///     }
/// }
/// impl SessionHandler for Session {
///     async fn message_end(&mut self, _: &Context<'_>) -> Decision {
///         Decision::Accept // a real host stores the message first
///     }
/// }
///
/// let config = ServerConfig::new("mx.example.org").unwrap();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:2525").await?;
/// let server = Server::builder(config, Sink).listener(listener).build().unwrap();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// server.run(async { let _ = stopped.await; }).await; // e.g. on SIGTERM
/// # Ok(()) }
/// ```
pub struct Server<H> {
    shared: Arc<Shared<H>>,
    listening: Listening<TcpListener>,
}

struct Shared<H> {
    config: Arc<ServerConfig>,
    backend: H,
    tls: Option<TlsAcceptor>,
    limit: Arc<Semaphore>,
    next_id: AtomicU64,
    draining: CancellationToken,
    force_close: CancellationToken,
    write_timeout: Duration,
}

impl<H: Backend> Listen for Server<H> {
    type Backend = H;
    type Listener = TcpListener;
    type Tls = Arc<rustls::ServerConfig>;

    fn prepare(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn start(setup: Setup<Self>) -> Self {
        let shared = Shared {
            config: setup.config,
            backend: setup.backend,
            tls: setup.tls.map(TlsAcceptor::from),
            limit: Arc::new(Semaphore::new(setup.max_connections)),
            next_id: AtomicU64::new(1),
            draining: CancellationToken::new(),
            force_close: CancellationToken::new(),
            write_timeout: setup.write_timeout,
        };
        Server {
            shared: Arc::new(shared),
            listening: setup.listening,
        }
    }
}

impl<H: Backend> Server<H> {
    /// Starts configuring a server: `config` is shared by every session, `backend` is asked
    /// about every connection.
    pub fn builder(config: ServerConfig, backend: H) -> Builder<H> {
        Builder::new(config, backend)
    }

    /// The listeners' addresses, in the order they were added.
    pub fn local_addrs(&self) -> &[ListenerAddr] {
        &self.listening.addrs
    }

    /// The session configuration (with `extensions.starttls` set by the builder).
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Accepts connections until `shutdown` completes, then stops accepting, closes
    /// sessions between transactions with `421 4.3.2 ... shutting down`, lets open
    /// transactions finish for the shutdown timeout, closes the rest the same way, and
    /// returns once every session has ended.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server { shared, listening } = self;
        let Listening {
            listeners,
            shutdown_timeout,
            ..
        } = listening;
        let mut sessions = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accept = poll_fn(|cx| {
                for (listener, implicit) in &listeners {
                    if let Poll::Ready(r) = listener.poll_accept(cx) {
                        return Poll::Ready((r, *implicit));
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                () = &mut shutdown => break,
                (result, implicit_tls) = accept => match result {
                    Ok((tcp, peer)) => {
                        let shared = Arc::clone(&shared);
                        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                        let span = info_span!("session", id, %peer);
                        sessions.spawn(
                            async move { shared.connection(tcp, peer, id, implicit_tls).await }
                                .instrument(span),
                        );
                    }
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        drop(listeners);
        // Sessions between transactions close now; one in a transaction finishes it.
        shared.draining.cancel();
        info!(
            sessions = sessions.len(),
            "shutting down: no longer accepting"
        );
        let grace = tokio::time::sleep(shutdown_timeout);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = sessions.join_next() => if next.is_none() { break },
                () = &mut grace => {
                    info!(sessions = sessions.len(), "shutdown timeout: closing sessions");
                    shared.force_close.cancel();
                    break;
                }
            }
        }
        // Closing sessions only write their 421; a client that does not read is cut off
        // by the write timeout, and anything left after that is aborted.
        let last = tokio::time::timeout(shared.write_timeout + Duration::from_secs(1), async {
            while sessions.join_next().await.is_some() {}
        });
        if last.await.is_err() {
            sessions.abort_all();
            while sessions.join_next().await.is_some() {}
        }
        info!("stopped");
    }
}

impl<H: Backend> Shared<H> {
    async fn connection(&self, tcp: TcpStream, peer: SocketAddr, id: u64, implicit_tls: bool) {
        let local = match tcp.local_addr() {
            Ok(a) => a,
            Err(error) => return debug!(%error, "connection lost"),
        };
        // Replies are small and already batched per pipelined group (RFC 2920 §3.2).
        let _ = tcp.set_nodelay(true);
        // Take the slot before the handshake, so a flood of handshakes counts too.
        let permit: Option<OwnedSemaphorePermit> = Arc::clone(&self.limit).try_acquire_owned().ok();
        let stream = if implicit_tls {
            let Some(acceptor) = &self.tls else { return };
            let handshake = Box::pin(acceptor.accept(tcp));
            match tokio::time::timeout(self.config.timeouts.tls_handshake, handshake).await {
                Ok(Ok(tls)) => {
                    log_tls(&tls);
                    Stream::Tls(Box::new(tls))
                }
                Ok(Err(error)) => return info!(%error, "TLS handshake failed"),
                Err(_) => return info!("TLS handshake timed out"),
            }
        } else {
            Stream::Plain(tcp)
        };
        let info = ConnectInfo {
            id,
            peer,
            local,
            implicit_tls,
        };
        let mut session = SessionLoop {
            info,
            tls: self.tls.clone(),
            draining: self.draining.clone(),
            force_close: self.force_close.clone(),
            write_timeout: self.write_timeout,
        };
        let config = Arc::clone(&self.config);
        if permit.is_none() {
            info!("too many connections");
            self.backend.refused(&info);
            // A refused client gets little patience: it only has to read one line.
            session.write_timeout = session.write_timeout.min(Duration::from_secs(10));
            let busy = Some(config.too_many_connections_reply());
            return session.run(stream, config, busy, &mut Refused).await;
        }
        match self.backend.connect(&info) {
            Ok(mut handler) => session.run(stream, config, None, &mut handler).await,
            Err(r) => {
                info!(reply = %r.to_string().trim_end(), "connection refused by host");
                session.run(stream, config, Some(r), &mut Refused).await
            }
        }
        drop(permit);
    }
}

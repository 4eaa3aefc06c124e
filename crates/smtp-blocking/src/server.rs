//! Listeners, the accept threads, the connection limit and graceful shutdown.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use smtp_proto::server::{PeerInfo, Server as Machine, ServerConfig};
use tracing::{debug, info, info_span, warn};

use crate::control::Control;
use crate::host::{ConnectInfo, Host, Refused};
use crate::session::{ServerStream, Session};

/// Why a [`Server`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No listener was given.
    #[error("no listener")]
    NoListener,
    /// An implicit-TLS listener was given without a TLS configuration.
    #[error("implicit TLS listener without a TLS configuration")]
    TlsRequired,
    /// A listener could not be set up (its address, blocking mode).
    #[error("listener: {0}")]
    Io(#[from] io::Error),
}

/// A bound listener and what it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerAddr {
    /// The address, with the real port when bound to port 0.
    pub addr: SocketAddr,
    /// TLS from the first byte (RFC 8314, port 465 style) rather than plain text with
    /// STARTTLS.
    pub implicit_tls: bool,
}

/// Configures a [`Server`]. See [`Server::builder`].
pub struct Builder<H> {
    config: ServerConfig,
    host: H,
    tls: Option<Arc<rustls::ServerConfig>>,
    listeners: Vec<(TcpListener, bool)>,
    max_connections: usize,
    shutdown_timeout: Duration,
    write_timeout: Option<Duration>,
}

impl<H: Host> Builder<H> {
    /// TLS for STARTTLS on plain listeners and for implicit-TLS listeners. With it, the
    /// session configuration's `extensions.starttls` is turned on; without it, off.
    pub fn tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A plain listener (STARTTLS offered when [`Builder::tls`] is set).
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listeners.push((listener, false));
        self
    }

    /// An implicit-TLS listener (RFC 8314).
    pub fn implicit_tls_listener(mut self, listener: TcpListener) -> Self {
        self.listeners.push((listener, true));
        self
    }

    /// Concurrent sessions (threads) at most; a client over the limit gets
    /// `421 4.3.2 <hostname> Error: too many connections` and is disconnected.
    /// Default: 1000.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// After [`ShutdownHandle::shutdown`], how long sessions may go on before they get
    /// `421 4.3.2` and are closed. Default: 10 seconds.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long one write may block on a client that does not read. Default: the
    /// session's command timeout.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<Server<H>, BuildError> {
        if self.listeners.is_empty() {
            return Err(BuildError::NoListener);
        }
        if self.tls.is_none() && self.listeners.iter().any(|(_, implicit)| *implicit) {
            return Err(BuildError::TlsRequired);
        }
        let mut addrs = Vec::new();
        for (listener, implicit_tls) in &self.listeners {
            // The accept threads block; a listener handed over in non-blocking mode would
            // make them spin.
            listener.set_nonblocking(false)?;
            addrs.push(ListenerAddr {
                addr: listener.local_addr()?,
                implicit_tls: *implicit_tls,
            });
        }
        let mut config = self.config;
        config.extensions.starttls = self.tls.is_some();
        let write_timeout = self
            .write_timeout
            .unwrap_or(config.timeouts.command)
            .max(Duration::from_millis(1));
        Ok(Server {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                host: self.host,
                tls: self.tls,
                max_connections: self.max_connections,
                next_id: AtomicU64::new(1),
                control: Arc::new(Control::default()),
                write_timeout,
            }),
            listeners: self.listeners,
            addrs,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// An SMTP (or LMTP) server on one or more `std::net` listeners: one thread per
/// listener accepts, one thread per connection runs a
/// [`smtp_proto::server::Server`] machine.
///
/// ```no_run
/// use std::net::TcpListener;
/// use smtp_blocking::{ConnectInfo, Context, Decision, Handler, Host, Server};
/// use smtp_proto::{Reply, server::ServerConfig};
///
/// struct Sink;
/// struct Session;
/// impl Host for Sink {
///     type Handler = Session;
///     fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
///         Ok(Session)
///     }
/// }
/// impl Handler for Session {
///     fn message_end(&mut self, _: &Context<'_>) -> Decision {
///         Decision::Accept // a real host stores the message first
///     }
/// }
///
/// let config = ServerConfig::new("mx.example.org").unwrap();
/// let listener = TcpListener::bind("127.0.0.1:2525").unwrap();
/// let server = Server::builder(config, Sink).listener(listener).build().unwrap();
/// let stop = server.shutdown_handle();
/// // Another thread (a signal handler thread, say) calls `stop.shutdown()`.
/// # stop.shutdown();
/// server.run();
/// ```
pub struct Server<H> {
    shared: Arc<Shared<H>>,
    listeners: Vec<(TcpListener, bool)>,
    addrs: Vec<ListenerAddr>,
    shutdown_timeout: Duration,
}

/// Asks a running [`Server`] to shut down; cheap to clone and to send to another thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    control: Arc<Control>,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown and returns at once: the server stops accepting,
    /// sessions between transactions get `421 4.3.2` at once, those with a transaction
    /// open may finish it within the shutdown timeout, and the rest then get the same.
    /// [`Server::run`] returns when every session has ended. Calling it again does
    /// nothing.
    pub fn shutdown(&self) {
        let mut state = self.control.lock();
        state.shutdown = true;
        self.control.changed.notify_all();
    }

    /// Whether a shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.control.lock().shutdown
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

/// Gives a session's slot back when its thread ends, however it ends.
struct Slot<'a> {
    control: &'a Control,
    id: u64,
    refusal: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.control.lock();
        if self.refusal {
            state.refusing -= 1;
        } else {
            state.active -= 1;
            state.sockets.remove(&self.id);
        }
        self.control.changed.notify_all();
    }
}

/// Threads answering over-limit implicit-TLS connections at most (each needs a handshake
/// before it can say 421); beyond this, such connections are dropped.
const MAX_REFUSING: usize = 32;

struct Shared<H> {
    config: Arc<ServerConfig>,
    host: H,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
    next_id: AtomicU64,
    control: Arc<Control>,
    write_timeout: Duration,
}

impl<H: Host> Server<H> {
    /// Starts configuring a server: `config` is shared by every session, `host` is asked
    /// about every connection.
    pub fn builder(config: ServerConfig, host: H) -> Builder<H> {
        Builder {
            config,
            host,
            tls: None,
            listeners: Vec::new(),
            max_connections: 1000,
            shutdown_timeout: Duration::from_secs(10),
            write_timeout: None,
        }
    }

    /// The listeners' addresses, in the order they were added.
    pub fn local_addrs(&self) -> &[ListenerAddr] {
        &self.addrs
    }

    /// The session configuration (with `extensions.starttls` set by the builder).
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// A handle that stops [`Server::run`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            control: Arc::clone(&self.shared.control),
        }
    }

    /// Sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.shared.control.lock().active
    }

    /// Accepts connections until [`ShutdownHandle::shutdown`], then stops accepting,
    /// closes sessions between transactions with `421 4.3.2 ... shutting down`, lets
    /// open transactions finish for the shutdown timeout, closes the rest the same way, and returns once every session has ended (or, for
    /// clients that do not even read that reply, once the write timeout has passed).
    pub fn run(self) {
        let Server {
            shared,
            listeners,
            addrs,
            shutdown_timeout,
        } = self;
        let control = Arc::clone(&shared.control);
        let mut acceptors = Vec::new();
        for (listener, implicit_tls) in listeners {
            let shared = Arc::clone(&shared);
            let spawned = thread::Builder::new()
                .name("smtp-accept".into())
                .spawn(move || shared.accept_loop(listener, implicit_tls));
            match spawned {
                Ok(handle) => acceptors.push(handle),
                Err(error) => warn!(%error, "cannot start an accept thread"),
            }
        }
        {
            let mut state = control.lock();
            while !state.shutdown && !acceptors.is_empty() {
                state = control.wait_timeout(state, Duration::from_secs(3600));
            }
        }
        control.stopping.store(true, Ordering::Release);
        // The accept threads block in accept(): a connection to each listener wakes it.
        for listener in &addrs {
            wake(listener.addr);
        }
        for acceptor in acceptors {
            let _ = acceptor.join();
        }
        control.drain();
        let mut state = control.lock();
        info!(
            sessions = state.active,
            "shutting down: no longer accepting"
        );
        let grace = Instant::now() + shutdown_timeout;
        while state.active > 0 {
            match grace.checked_duration_since(Instant::now()) {
                Some(t) if !t.is_zero() => state = control.wait_timeout(state, t),
                _ => break,
            }
        }
        if state.active > 0 {
            info!(
                sessions = state.active,
                "shutdown timeout: closing sessions"
            );
            control.force_close.store(true, Ordering::Release);
            // Blocked reads return at once (end of input); the sessions see the flag and
            // say 421 through their machines. Their write side stays open for that.
            for session in state.sockets.values() {
                let _ = session.tcp.shutdown(Shutdown::Read);
            }
            control.changed.notify_all();
            // A client that reads nothing is cut off by the write timeout.
            let last = Instant::now() + shared.write_timeout + Duration::from_secs(1);
            while state.active > 0 || state.refusing > 0 {
                match last.checked_duration_since(Instant::now()) {
                    Some(t) if !t.is_zero() => state = control.wait_timeout(state, t),
                    _ => {
                        warn!(sessions = state.active, "sessions still running at exit");
                        break;
                    }
                }
            }
        }
        drop(state);
        info!("stopped");
    }
}

/// Connects to a listener to wake its blocked accept (an unspecified address is reached
/// on loopback).
fn wake(addr: SocketAddr) {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    if let Err(error) =
        TcpStream::connect_timeout(&SocketAddr::new(ip, addr.port()), Duration::from_secs(1))
    {
        warn!(%error, %addr, "cannot wake the accept thread");
    }
}

impl<H: Host> Shared<H> {
    fn accept_loop(self: Arc<Self>, listener: TcpListener, implicit_tls: bool) {
        loop {
            let accepted = listener.accept();
            if self.control.stopping.load(Ordering::Acquire) {
                break;
            }
            match accepted {
                Ok((tcp, peer)) => self.admit(tcp, peer, implicit_tls),
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(%error, "accept failed");
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Takes a slot and starts the session's thread, or refuses the connection.
    fn admit(self: &Arc<Self>, tcp: TcpStream, peer: SocketAddr, implicit_tls: bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let admitted = {
            let mut state = self.control.lock();
            if state.active < self.max_connections {
                state.active += 1;
                true
            } else if implicit_tls && state.refusing < MAX_REFUSING {
                state.refusing += 1;
                false
            } else if implicit_tls {
                debug!(%peer, "too many connections, dropped");
                return;
            } else {
                false
            }
        };
        if !admitted && !implicit_tls {
            // A plain refusal is one short write into an empty socket buffer: done here,
            // no thread needed.
            let _span = info_span!("session", id, %peer).entered();
            self.refuse(ServerStream::Plain(tcp), peer, id, false);
            return;
        }
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name(format!("smtp-session-{id}"))
            .spawn(move || {
                let _span = info_span!("session", id, %peer).entered();
                let _slot = Slot {
                    control: &shared.control,
                    id,
                    refusal: !admitted,
                };
                if admitted {
                    shared.connection(tcp, peer, id, implicit_tls);
                } else {
                    match shared.handshake(tcp) {
                        Ok(stream) => shared.refuse(stream, peer, id, true),
                        Err(error) => debug!(%error, "TLS handshake failed"),
                    }
                }
            });
        if let Err(error) = spawned {
            // The closure (and with it the socket) is gone; give the slot back.
            warn!(%error, "cannot start a session thread");
            let mut state = self.control.lock();
            if admitted {
                state.active -= 1;
            } else {
                state.refusing -= 1;
            }
            self.control.changed.notify_all();
        }
    }

    /// Over the limit: the machine says `421 4.3.2` instead of its greeting.
    fn refuse(&self, stream: ServerStream, peer: SocketAddr, id: u64, implicit_tls: bool) {
        info!(%peer, "too many connections");
        let Some(local) = stream.tcp().and_then(|t| t.local_addr().ok()) else {
            return;
        };
        if let Some(tcp) = stream.tcp() {
            let _ = tcp.set_write_timeout(Some(Duration::from_secs(1)));
        }
        let info = PeerInfo {
            addr: Some(peer.ip()),
            name: None,
            tls: implicit_tls,
        };
        let mut machine = Machine::new(Arc::clone(&self.config), info, Instant::now());
        machine.close_with(self.config.too_many_connections_reply());
        let session = self.session(id, peer, local, false, Arc::default());
        session.run(stream, machine, &mut Refused);
    }

    fn session(
        &self,
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        linger: bool,
        idle: Arc<AtomicBool>,
    ) -> Session {
        Session {
            id,
            peer,
            local,
            tls: self.tls.clone(),
            control: Arc::clone(&self.control),
            linger,
            idle,
        }
    }

    /// Implicit TLS: the handshake comes before anything SMTP.
    fn handshake(&self, tcp: TcpStream) -> io::Result<ServerStream> {
        let _ = tcp.set_write_timeout(Some(self.write_timeout));
        let Some(tls) = &self.tls else {
            return Err(io::Error::other("implicit TLS without a TLS configuration"));
        };
        let conn = rustls::ServerConnection::new(Arc::clone(tls)).map_err(io::Error::other)?;
        let mut stream = ServerStream::Plain(tcp);
        stream.upgrade(conn, Instant::now() + self.config.timeouts.tls_handshake)?;
        Ok(stream)
    }

    fn connection(&self, tcp: TcpStream, peer: SocketAddr, id: u64, implicit_tls: bool) {
        let local = match tcp.local_addr() {
            Ok(a) => a,
            Err(error) => return debug!(%error, "connection lost"),
        };
        // Replies are small and already batched per pipelined group (RFC 2920 §3.2).
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_write_timeout(Some(self.write_timeout));
        let idle = self.control.register(id, &tcp);
        let stream = if implicit_tls {
            match self.handshake(tcp) {
                Ok(stream) => {
                    crate::session::log_tls(&stream);
                    stream
                }
                Err(error) => return info!(%error, "TLS handshake failed"),
            }
        } else {
            ServerStream::Plain(tcp)
        };
        let info = PeerInfo {
            addr: Some(peer.ip()),
            name: None,
            tls: implicit_tls,
        };
        let mut machine = Machine::new(Arc::clone(&self.config), info, Instant::now());
        let session = self.session(id, peer, local, true, idle);
        let connect = ConnectInfo {
            id,
            peer,
            local,
            implicit_tls,
        };
        match self.host.connect(&connect) {
            Ok(mut handler) => session.run(stream, machine, &mut handler),
            Err(r) => {
                info!(reply = %r.to_string().trim_end(), "connection refused by host");
                machine.close_with(r);
                session.run(stream, machine, &mut Refused);
            }
        }
    }
}

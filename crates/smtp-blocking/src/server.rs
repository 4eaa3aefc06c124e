//! Listeners, the accept threads, the connection limit and graceful shutdown.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use smtp_proto::server::ServerConfig;
use smtp_proto::server::host::{self, Driver, Listen, ListenerAddr, Listening, Setup};
use tracing::{debug, info, info_span, warn};

use crate::control::Control;
use crate::host::{ConnectInfo, Host, Refused};
use crate::session::{ServerStream, Session};

/// Configures a [`Server`]. See [`Server::builder`].
pub type Builder<H> = host::Builder<Server<H>>;

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
    listening: Listening<TcpListener>,
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

/// Gives a session's slot back when its thread ends, however it ends (or when the
/// thread could not start).
struct Slot {
    control: Arc<Control>,
    id: u64,
    refusal: bool,
}

impl Drop for Slot {
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
        Builder::new(config, host)
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

    /// The listeners' addresses, in the order they were added.
    pub fn local_addrs(&self) -> &[ListenerAddr] {
        &self.listening.addrs
    }

    /// The session configuration (with `extensions.starttls` set by the builder).
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Accepts connections until [`ShutdownHandle::shutdown`], then stops accepting,
    /// closes sessions between transactions with `421 4.3.2 ... shutting down`, lets
    /// open transactions finish for the shutdown timeout, closes the rest the same way,
    /// and returns once every session has ended (or, for clients that do not even read
    /// that reply, once the write timeout has passed).
    pub fn run(self) {
        let Server { shared, listening } = self;
        let Listening {
            listeners,
            addrs,
            shutdown_timeout,
        } = listening;
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
        drop(control.wait_for(None, |s| s.shutdown || acceptors.is_empty()));
        control.stopping.store(true, Ordering::Release);
        // The accept threads block in accept(): a connection to each listener wakes it.
        for listener in &addrs {
            wake(listener.addr);
        }
        for acceptor in acceptors {
            let _ = acceptor.join();
        }
        control.drain();
        let active = control.lock().active;
        info!(sessions = active, "shutting down: no longer accepting");
        let grace = Instant::now() + shutdown_timeout;
        let (state, finished) = control.wait_for(Some(grace), |s| s.active == 0);
        if !finished {
            info!(
                sessions = state.active,
                "shutdown timeout: closing sessions"
            );
            drop(state);
            control.force_close();
            // A client that reads nothing is cut off by the write timeout.
            let last = Instant::now() + shared.write_timeout + Duration::from_secs(1);
            let (state, finished) =
                control.wait_for(Some(last), |s| s.active == 0 && s.refusing == 0);
            if !finished {
                warn!(sessions = state.active, "sessions still running at exit");
            }
        }
        info!("stopped");
    }
}

impl<H: Host> Listen for Server<H> {
    type Host = H;
    type Listener = TcpListener;
    type Tls = Arc<rustls::ServerConfig>;

    fn prepare(listener: &TcpListener) -> io::Result<SocketAddr> {
        // The accept threads block; a listener handed over in non-blocking mode would
        // make them spin.
        listener.set_nonblocking(false)?;
        listener.local_addr()
    }

    fn start(setup: Setup<Self>) -> Self {
        let shared = Shared {
            config: setup.config,
            host: setup.host,
            tls: setup.tls,
            max_connections: setup.max_connections,
            next_id: AtomicU64::new(1),
            control: Arc::new(Control::default()),
            // A socket's write timeout cannot be zero.
            write_timeout: setup.write_timeout.max(Duration::from_millis(1)),
        };
        Server {
            shared: Arc::new(shared),
            listening: setup.listening,
        }
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
        let slot = Slot {
            control: Arc::clone(&self.control),
            id,
            refusal: !admitted,
        };
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name(format!("smtp-session-{id}"))
            .spawn(move || {
                let _span = info_span!("session", id, %peer).entered();
                let _slot = slot;
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
            // The closure is gone, and with it the socket and the slot.
            warn!(%error, "cannot start a session thread");
        }
    }

    /// Over the limit: the machine says `421 4.3.2` instead of its greeting.
    fn refuse(&self, stream: ServerStream, peer: SocketAddr, id: u64, implicit_tls: bool) {
        info!(%peer, "too many connections");
        let Some(tcp) = stream.tcp() else { return };
        let Ok(local) = tcp.local_addr() else { return };
        // A refused client gets little patience: it only has to read one line.
        let _ = tcp.set_write_timeout(Some(Duration::from_secs(1)));
        let info = ConnectInfo {
            id,
            peer,
            local,
            implicit_tls,
        };
        self.serve(stream, info, true, Arc::default());
    }

    /// Runs a session: the host's handler, or with `busy` (over the limit) the machine's
    /// 421 instead of its greeting.
    fn serve(&self, stream: ServerStream, info: ConnectInfo, busy: bool, idle: Arc<AtomicBool>) {
        let session = Session {
            info,
            tls: self.tls.clone(),
            control: Arc::clone(&self.control),
            linger: !busy,
            idle,
        };
        let start = |refusal| Driver::new(Arc::clone(&self.config), &info, refusal, Instant::now());
        if busy {
            let reply = self.config.too_many_connections_reply();
            return session.run(stream, start(Some(reply)), &mut Refused);
        }
        match self.host.connect(&info) {
            Ok(mut handler) => session.run(stream, start(None), &mut handler),
            Err(r) => {
                info!(reply = %r.to_string().trim_end(), "connection refused by host");
                session.run(stream, start(Some(r)), &mut Refused);
            }
        }
    }

    /// Implicit TLS: the handshake comes before anything SMTP.
    fn handshake(&self, tcp: TcpStream) -> io::Result<ServerStream> {
        let _ = tcp.set_write_timeout(Some(self.write_timeout));
        let mut stream = ServerStream::Plain(tcp);
        let deadline = Instant::now() + self.config.timeouts.tls_handshake;
        crate::tls::accept(&mut stream, self.tls.as_ref(), deadline)?;
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
                Ok(stream) => stream,
                Err(error) => return info!(%error, "TLS handshake failed"),
            }
        } else {
            ServerStream::Plain(tcp)
        };
        let info = ConnectInfo {
            id,
            peer,
            local,
            implicit_tls,
        };
        self.serve(stream, info, false, idle);
    }
}

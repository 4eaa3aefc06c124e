//! Listeners, the accept threads, the connection limit and graceful shutdown.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use smtp_proto::server::ServerConfig;
use smtp_proto::server::host::{self, Driver, Listen, ListenerAddr, Listening, Setup};
use tracing::{debug, info, info_span, warn};

use crate::control::{Control, Slot, Stage};
use crate::host::{Backend, ConnectInfo, Refused};
use crate::session::{ServerStream, SessionLoop};

/// Configures a [`Server`]. See [`Server::builder`].
pub type Builder<H> = host::Builder<Server<H>>;

/// An SMTP (or LMTP) server on one or more `std::net` listeners: one thread per
/// listener accepts, one thread per connection runs a
/// [`smtp_proto::server::Session`] machine (see the [crate] example).
pub struct Server<H> {
    shared: Arc<Shared<H>>,
    listening: Listening<TcpListener>,
}

/// Asks a running [`Server`] to shut down; cheap to clone and to send to another thread.
#[derive(Clone, Debug)]
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
        self.control.advance(Stage::Stopping);
    }

    /// Whether a shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.control.stage() > Stage::Running
    }
}

struct Shared<H> {
    config: Arc<ServerConfig>,
    backend: H,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
    next_id: AtomicU64,
    control: Arc<Control>,
    write_timeout: Duration,
}

impl<H: Backend> Server<H> {
    /// Starts configuring a server: `config` is shared by every session, `backend` is asked
    /// about every connection.
    pub fn builder(config: ServerConfig, backend: H) -> Builder<H> {
        Builder::new(config, backend)
    }

    /// A handle that stops [`Server::run`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            control: Arc::clone(&self.shared.control),
        }
    }

    /// Sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.shared.control.active()
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
        let control = Arc::clone(&shared.control);
        let mut acceptors = Vec::new();
        for (listener, implicit_tls) in listening.listeners {
            let shared = Arc::clone(&shared);
            let spawned = thread::Builder::new()
                .name("smtp-accept".into())
                .spawn(move || shared.accept_loop(listener, implicit_tls));
            match spawned {
                Ok(handle) => acceptors.push(handle),
                Err(error) => warn!(%error, "cannot start an accept thread"),
            }
        }
        let stopping = || control.stage() > Stage::Running || acceptors.is_empty();
        control.wait_for(None, |_| stopping());
        control.advance(Stage::Stopping);
        // The accept threads block in accept(): a connection to each listener wakes it.
        listening
            .addrs
            .iter()
            .for_each(|listener| wake(listener.addr));
        acceptors
            .into_iter()
            .for_each(|acceptor| drop(acceptor.join()));
        control.advance(Stage::Draining);
        info!(
            sessions = control.active(),
            "shutting down: no longer accepting"
        );
        let grace = Instant::now() + listening.shutdown_timeout;
        if !control.wait_for(Some(grace), |s| s.active == 0) {
            info!(
                sessions = control.active(),
                "shutdown timeout: closing sessions"
            );
            control.advance(Stage::Closing);
            // A client that reads nothing is cut off by the write timeout.
            let last = Instant::now() + shared.write_timeout + Duration::from_secs(1);
            if !control.wait_for(Some(last), |s| s.active == 0 && s.refusing == 0) {
                warn!(
                    sessions = control.active(),
                    "sessions still running at exit"
                );
            }
        }
        info!("stopped");
    }
}

impl<H: Backend> Listen for Server<H> {
    type Backend = H;
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
            backend: setup.backend,
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

impl<H: Backend> Shared<H> {
    fn accept_loop(self: Arc<Self>, listener: TcpListener, implicit_tls: bool) {
        loop {
            let accepted = listener.accept();
            if self.control.stage() > Stage::Running {
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
        let max = self.max_connections;
        let Some(slot) = self.control.admit(id, max, implicit_tls) else {
            return debug!(%peer, "too many connections, dropped");
        };
        if slot.refusal && !implicit_tls {
            // A plain refusal is one short write into an empty socket buffer: done here,
            // no thread needed.
            return self.session(tcp, peer, slot, implicit_tls);
        }
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name(format!("smtp-session-{id}"))
            .spawn(move || shared.session(tcp, peer, slot, implicit_tls));
        if let Err(error) = spawned {
            // The closure is gone, and with it the socket and the slot.
            warn!(%error, "cannot start a session thread");
        }
    }

    /// Runs a session: the host's handler, or the machine's 421 instead of its greeting
    /// (the host refused, or the connection is over the limit).
    fn session(&self, tcp: TcpStream, peer: SocketAddr, slot: Slot, implicit_tls: bool) {
        let _span = info_span!("session", id = slot.id, %peer).entered();
        let local = match tcp.local_addr() {
            Ok(a) => a,
            Err(error) => return debug!(%error, "connection lost"),
        };
        // Replies are small and already batched per pipelined group (RFC 2920 §3.2).
        let _ = tcp.set_nodelay(true);
        // A refused client gets little patience: it only has to read one line.
        let busy = slot.refusal.then_some(Duration::from_secs(1));
        let _ = tcp.set_write_timeout(Some(busy.unwrap_or(self.write_timeout)));
        if !slot.refusal {
            slot.register(&tcp);
        }
        let mut stream = ServerStream::Plain(tcp);
        if implicit_tls {
            // The handshake comes before anything SMTP.
            let deadline = Instant::now() + self.config.timeouts.tls_handshake;
            if let Err(error) = crate::tls::accept(&mut stream, self.tls.as_ref(), deadline) {
                return info!(%error, "TLS handshake failed");
            }
        }
        let (id, tls) = (slot.id, self.tls.clone());
        let info = ConnectInfo {
            id,
            peer,
            local,
            implicit_tls,
        };
        let session = SessionLoop { info, tls, slot };
        let start = |refusal| Driver::new(Arc::clone(&self.config), &info, refusal, Instant::now());
        let refusal = if busy.is_some() {
            info!("too many connections");
            self.backend.refused(&info);
            self.config.too_many_connections_reply()
        } else {
            match self.backend.connect(&info) {
                Ok(mut handler) => return session.run(stream, start(None), &mut handler),
                Err(reply) => {
                    info!(reply = %reply.to_string().trim_end(), "connection refused by host");
                    reply
                }
            }
        };
        session.run(stream, start(Some(refusal)), &mut Refused);
    }
}

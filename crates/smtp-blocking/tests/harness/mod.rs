//! The blocking adapter's [`Harness`]: a [`Server`] whose handler writes into the
//! shared [`Store`]. Used by the behaviour list and the interop tests.
#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use smtp_blocking::{
    Backend, ConnectInfo, Context, Decision, Server, SessionHandler, ShutdownHandle,
};
use smtp_proto::sasl::{Credentials, Mechanism};
use smtp_proto::server::AbortReason;
use smtp_proto::{ForwardPath, RcptParams, Reply};

use crate::behaviour::{self, Certs, Harness, Options, Running, Store, Stored};

/// The test host: every session writes into one [`Store`].
pub struct TestHost(Arc<Store>);

pub struct Session {
    store: Arc<Store>,
    body: Vec<u8>,
}

impl Backend for TestHost {
    type Handler = Session;
    fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
        Ok(Session {
            store: Arc::clone(&self.0),
            body: Vec::new(),
        })
    }
}

fn decision(r: Result<(), Reply>) -> Decision {
    match r {
        Ok(()) => Decision::Accept,
        Err(r) => Decision::reject_with(r).expect("a refusal"),
    }
}

impl SessionHandler for Session {
    fn rcpt(
        &mut self,
        _: &Context<'_>,
        to: &ForwardPath<'static>,
        _: &RcptParams<'static>,
    ) -> Decision {
        decision(self.store.rcpt(to))
    }

    fn message_start(&mut self, _: &Context<'_>) {
        self.body.clear();
    }

    fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        self.body.extend_from_slice(&chunk);
    }

    fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        let s = ctx.session;
        self.store.store(Stored {
            from: s.reverse_path().map(|p| p.to_string()).unwrap_or_default(),
            to: s.recipients().iter().map(|r| r.to_string()).collect(),
            body: std::mem::take(&mut self.body),
            tls: s.is_tls(),
            auth: s.authenticated().map(str::to_owned),
        });
        Decision::Accept
    }

    fn message_aborted(&mut self, _: &Context<'_>, _: AbortReason) {
        self.body.clear();
        self.store.abort();
    }

    fn auth(&mut self, _: &Context<'_>, _: &Mechanism, credentials: &Credentials) -> Decision {
        decision(self.store.auth(credentials))
    }
}

/// Starts blocking servers.
pub struct Blocking;

struct RunningServer {
    addrs: Vec<SocketAddr>,
    store: Arc<Store>,
    stop: ShutdownHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Harness for Blocking {
    fn start(&self, options: Options, certs: &Certs) -> Box<dyn Running> {
        let store = Arc::new(Store::default());
        let mut builder = Server::builder(
            behaviour::server_config(&options),
            TestHost(Arc::clone(&store)),
        )
        .listener(TcpListener::bind("127.0.0.1:0").unwrap())
        .shutdown_timeout(options.shutdown_timeout)
        .write_timeout(Duration::from_secs(5));
        if options.tls {
            builder = builder
                .tls(certs.server_tls())
                .implicit_tls_listener(TcpListener::bind("127.0.0.1:0").unwrap());
        }
        if let Some(max) = options.max_connections {
            builder = builder.max_connections(max);
        }
        let server = builder.build().unwrap();
        let addrs = server.local_addrs().iter().map(|l| l.addr).collect();
        let stop = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        Box::new(RunningServer {
            addrs,
            store,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl Running for RunningServer {
    fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }
    fn tls_addr(&self) -> Option<SocketAddr> {
        self.addrs.get(1).copied()
    }
    fn store(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }
    fn begin_shutdown(&self) {
        self.stop.shutdown();
    }
    fn stop(self: Box<Self>) {
        drop(self);
    }
}

impl Drop for RunningServer {
    /// Every server is stopped, even by a failing test.
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(t) = self.thread.lock().unwrap().take() {
            t.join().unwrap();
        }
    }
}

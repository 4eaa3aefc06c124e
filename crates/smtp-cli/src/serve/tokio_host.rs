//! `smtp serve --io tokio`: the shared handler logic on the `smtp-tokio` adapter.
//!
//! Policy decisions run in place, but for the check of a password behind a slow hash,
//! which runs on tokio's blocking pool. Calls that reach the disk (opening the file, a write
//! that overflows its buffer, the fsyncs and renames of the end of data, removing an
//! aborted file) run on tokio's blocking pool, so the reactor threads never wait on the
//! file system; `--discard` never leaves them.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use smtp_proto::sasl::{Credentials, Mechanism};
use smtp_proto::server::{AbortReason, Event};
use smtp_proto::{ForwardPath, MailParams, RcptParams, Reply, ReversePath};
use smtp_tokio::{Backend, ConnectInfo, Context, Decision, Server, SessionHandler};
use tokio::net::TcpListener;
use tracing::info;

use super::session::{Session, Shared};
use super::{EX_SOFTWARE, Setup, announce, bind_error, build_error, signal_error};
use crate::metrics::{self, Stage};

/// The runtime the server (and the relay, when there is one) runs on; `Err` is the exit
/// status.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            super::say_error(format_args!("cannot start the runtime: {e}"));
            EX_SOFTWARE
        })
}

/// Runs the server on `runtime` until SIGINT or SIGTERM; returns the exit status.
pub(super) fn run(runtime: &tokio::runtime::Runtime, setup: Setup) -> u8 {
    runtime.block_on(serve(setup))
}

async fn serve(setup: Setup) -> u8 {
    let mut builder = Server::builder(setup.config, TokioHost(setup.shared))
        .max_connections(setup.max_connections)
        .shutdown_timeout(setup.shutdown_timeout);
    if let Some(tls) = setup.tls {
        builder = builder.tls(tls);
    }
    for (listener, implicit) in setup.listeners {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let bound = listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener));
        let listener = match bound {
            Ok(l) => l,
            Err(e) => return bind_error(&addr, &e),
        };
        builder = if implicit {
            builder.implicit_tls_listener(listener)
        } else {
            builder.listener(listener)
        };
    }
    let server = match builder.build() {
        Ok(s) => s,
        Err(e) => return build_error(&e),
    };
    // Signal handlers go in before the listening lines, so that whoever reads them can
    // send SIGTERM at once and get a graceful shutdown.
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => return signal_error(&e),
    };
    let addrs = server
        .local_addrs()
        .iter()
        .map(|l| (l.addr, l.implicit_tls));
    announce(&setup.hostname, addrs);
    server.run(shutdown).await;
    0
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => info!("SIGINT: shutting down"),
            _ = term.recv() => info!("SIGTERM: shutting down"),
        }
    })
}

struct TokioHost(Arc<Shared>);

impl Backend for TokioHost {
    type Handler = TokioSession;
    fn connect(&self, info: &ConnectInfo) -> Result<TokioSession, Reply> {
        let session = metrics::connected(Session::connect(Arc::clone(&self.0), info.peer.ip()))?;
        Ok(TokioSession(Some(session)))
    }

    fn refused(&self, _: &ConnectInfo) {
        metrics::refused(metrics::Limit::MaxConnections);
    }
}

/// One session's handler. The session is lent to the blocking pool for the calls that
/// reach the disk, hence the `Option` (always `Some` between calls).
struct TokioSession(Option<Session>);

impl TokioSession {
    fn session(&mut self) -> &mut Session {
        self.0
            .as_mut()
            .expect("the session is back from the blocking pool")
    }

    /// Runs `f` on the session: on the blocking pool when `blocks`, in place otherwise.
    /// Logs from the pool keep the session's span.
    async fn with<R: Send + 'static>(
        &mut self,
        blocks: bool,
        f: impl FnOnce(&mut Session) -> R + Send + 'static,
    ) -> R {
        if !blocks {
            return f(self.session());
        }
        let mut session = self.0.take().expect("the session is here");
        let (session, r) = on_blocking_pool(move || {
            let r = f(&mut session);
            (session, r)
        })
        .await;
        self.0 = Some(session);
        r
    }

    /// RCPT: relay control, then the domain check, which awaits on the runtime (the
    /// session waits for it alone), then the recipient kept.
    async fn rcpt_decision(
        &mut self,
        ctx: &Context<'_>,
        to: &ForwardPath<'static>,
        params: &RcptParams<'static>,
    ) -> Decision {
        match self.session().rcpt_policy(ctx.session, to) {
            Err(refused) => refused,
            Ok(check) => {
                if let Some((check, domain)) = check
                    && let Some(refused) = check.check(&domain).await
                {
                    return refused;
                }
                self.session().rcpt_accept(to, params)
            }
        }
    }

    /// MAIL: SPF (--verify), which awaits on the runtime like the RCPT domain check, then
    /// the transaction.
    async fn mail_decision(
        &mut self,
        ctx: &Context<'_>,
        from: &ReversePath<'static>,
        params: &MailParams<'static>,
    ) -> Decision {
        let spf = match self.session().spf_query(ctx.session, from) {
            Some((verifier, query)) => Some(verifier.spf(query).await),
            None => None,
        };
        self.session().mail_checked(ctx.session, from, params, spf)
    }

    /// End of data, `--verify`: DKIM and DMARC await on the runtime; a large message
    /// is hashed on the blocking pool, so that other sessions on this thread go on.
    async fn verify(&mut self) {
        if let Some(job) = self.session().verify_job() {
            let (message, checked) = if job.is_large() {
                on_blocking_pool(move || job.run_blocking()).await
            } else {
                job.run().await
            };
            self.session().verified(message, checked);
        }
    }
}

/// Runs `f` on the blocking pool, in the session's span; a panic there goes on here.
async fn on_blocking_pool<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        f()
    })
    .await
    .unwrap_or_else(|e| match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(e) => panic!("blocking task: {e}"),
    })
}

impl SessionHandler for TokioSession {
    async fn mail(
        &mut self,
        ctx: &Context<'_>,
        from: &ReversePath<'static>,
        params: &MailParams<'static>,
    ) -> Decision {
        metrics::decided(Stage::Mail, self.mail_decision(ctx, from, params).await)
    }

    async fn rcpt(
        &mut self,
        ctx: &Context<'_>,
        to: &ForwardPath<'static>,
        params: &RcptParams<'static>,
    ) -> Decision {
        metrics::decided(Stage::Rcpt, self.rcpt_decision(ctx, to, params).await)
    }

    async fn message_start(&mut self, ctx: &Context<'_>) {
        let new = self.session().prepare(ctx.session);
        self.with(new.open_blocks(), move |s| s.open(new)).await;
    }

    async fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        metrics::received(chunk.len());
        let blocks = self.session().chunk_blocks(chunk.len());
        self.with(blocks, move |s| s.chunk(&chunk)).await;
    }

    async fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        self.verify().await;
        let blocks = self.session().end_blocks();
        metrics::message_end(
            ctx.session.body_size(),
            self.with(blocks, Session::end).await,
        )
    }

    async fn message_aborted(&mut self, _: &Context<'_>, reason: AbortReason) {
        metrics::aborted(reason);
        let blocks = self.session().end_blocks();
        self.with(blocks, Session::aborted).await;
    }

    async fn lmtp_message_end(&mut self, _: &Context<'_>, _: usize) {
        self.verify().await;
        let blocks = self.session().end_blocks();
        self.with(blocks, Session::lmtp_end).await;
    }

    async fn lmtp_delivery(&mut self, ctx: &Context<'_>, to: &ForwardPath<'static>) -> Decision {
        metrics::message_end(ctx.session.body_size(), self.session().lmtp_delivery(to))
    }

    async fn auth(
        &mut self,
        _: &Context<'_>,
        mechanism: &Mechanism,
        credentials: &Credentials,
    ) -> Decision {
        // A slow password hash (Argon2, bcrypt, SHA-crypt) takes milliseconds of CPU:
        // on the blocking pool, so that other sessions on this reactor thread go on.
        let verdict = if self.session().auth_blocks(credentials) {
            let credentials = credentials.clone();
            self.with(true, move |s| s.auth(&credentials)).await
        } else {
            self.session().auth(credentials)
        };
        metrics::auth(mechanism, verdict)
    }

    fn event(&mut self, ctx: &Context<'_>, event: &Event) {
        metrics::event(ctx, event);
    }
}

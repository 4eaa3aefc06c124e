//! `smtp serve --io blocking`: the shared handler logic on the `smtp-blocking` adapter,
//! a thread per connection. Storage calls block the session's own thread, which is what
//! it is for.
//!
//! SIGINT and SIGTERM are caught by a thread of their own (`signal-hook`), which asks
//! the server to shut down through its `ShutdownHandle`.

use std::sync::Arc;

use bytes::Bytes;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use smtp_blocking::{
    Backend, ConnectInfo, Context, Decision, Server, SessionHandler, ShutdownHandle,
};
use smtp_proto::sasl::{Credentials, Mechanism};
use smtp_proto::server::{AbortReason, Event};
use smtp_proto::{ForwardPath, MailParams, RcptParams, Reply, ReversePath};
use tracing::info;

use super::session::{Session, Shared};
use super::{Setup, announce, build_error, signal_error};
use crate::metrics::{self, Stage};

/// Runs the server until SIGINT or SIGTERM; returns the exit status.
pub(super) fn run(setup: Setup) -> u8 {
    let mut builder = Server::builder(setup.config, BlockingHost(setup.shared))
        .max_connections(setup.max_connections)
        .shutdown_timeout(setup.shutdown_timeout);
    if let Some(tls) = setup.tls {
        builder = builder.tls(tls);
    }
    for (listener, implicit) in setup.listeners {
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
    // As with tokio: the handlers are in place before the listening lines.
    if let Err(e) = on_signal(server.shutdown_handle()) {
        return signal_error(&e);
    }
    let addrs = server
        .local_addrs()
        .iter()
        .map(|l| (l.addr, l.implicit_tls));
    announce(&setup.hostname, addrs);
    server.run();
    0
}

/// Starts the thread that turns SIGINT and SIGTERM into a graceful shutdown. It keeps
/// the handlers installed for the life of the process, so a second signal does not kill
/// the server in the middle of its shutdown (tokio's signal handling does the same).
fn on_signal(stop: ShutdownHandle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("smtp-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                if !stop.is_shutting_down() {
                    info!("{name}: shutting down");
                }
                stop.shutdown();
            }
        })?;
    Ok(())
}

struct BlockingHost(Arc<Shared>);

impl Backend for BlockingHost {
    type Handler = BlockingSession;
    fn connect(&self, info: &ConnectInfo) -> Result<BlockingSession, Reply> {
        metrics::connected(Session::connect(Arc::clone(&self.0), info.peer.ip()))
            .map(BlockingSession)
    }

    fn refused(&self, _: &ConnectInfo) {
        metrics::refused(metrics::Limit::MaxConnections);
    }
}

/// One session's handler: the shared logic, called in place.
struct BlockingSession(Session);

impl SessionHandler for BlockingSession {
    fn mail(
        &mut self,
        ctx: &Context<'_>,
        from: &ReversePath<'static>,
        params: &MailParams<'static>,
    ) -> Decision {
        metrics::decided(Stage::Mail, self.0.mail(ctx.session, from, params))
    }

    fn rcpt(
        &mut self,
        ctx: &Context<'_>,
        to: &ForwardPath<'static>,
        params: &RcptParams<'static>,
    ) -> Decision {
        metrics::decided(Stage::Rcpt, self.0.rcpt(ctx.session, to, params))
    }

    fn message_start(&mut self, ctx: &Context<'_>) {
        let new = self.0.prepare(ctx.session);
        self.0.open(new);
    }

    fn message_chunk(&mut self, _: &Context<'_>, chunk: Bytes) {
        metrics::received(chunk.len());
        self.0.chunk(&chunk);
    }

    fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        metrics::message_end(ctx.session.body_size(), self.0.end())
    }

    fn message_aborted(&mut self, _: &Context<'_>, reason: AbortReason) {
        metrics::aborted(reason);
        self.0.aborted();
    }

    fn lmtp_message_end(&mut self, _: &Context<'_>, _: usize) {
        self.0.lmtp_end();
    }

    fn lmtp_delivery(&mut self, ctx: &Context<'_>, to: &ForwardPath<'static>) -> Decision {
        metrics::message_end(ctx.session.body_size(), self.0.lmtp_delivery(to))
    }

    fn auth(&mut self, _: &Context<'_>, mechanism: &Mechanism, creds: &Credentials) -> Decision {
        metrics::auth(mechanism, self.0.auth(creds))
    }

    fn event(&mut self, ctx: &Context<'_>, event: &Event) {
        metrics::event(ctx, event);
    }
}

//! The application traits of the adapters, written once: [`handler_traits!`](crate::handler_traits).
//!
//! The tokio adapter's `Handler` returns futures and the blocking adapter's returns
//! values; everything else (the methods, their arguments, their defaults, their docs, and
//! which event goes to which method) is the same, so it is stated here and each adapter
//! expands it with its mode. A host written for one adapter moves to the other by adding
//! or removing `async`.

/// What the traits' expansion names, whatever the adapter depends on.
#[doc(hidden)]
pub mod __private {
    pub use bytes::Bytes;
    pub use core::future::{Future, ready};
}

/// Defines an adapter's `Host` and `Handler` traits and its `dispatch` function (an
/// [`Event`] to the handler method that hears it, the handler's decision to the machine).
///
/// `handler_traits!(async)` gives methods that return `impl Future + Send` and an
/// `async fn dispatch` (the tokio adapter); `handler_traits!(blocking)` plain methods
/// and a plain `dispatch` (the blocking adapter). Attributes after the mode
/// (`#[doc = ...]`) go on the `Handler` trait. [`Event::AuthChallengeNeeded`] is not a
/// handler's business: `dispatch` answers it with [`Server::auth_challenge_from`].
///
/// [`Event`]: crate::server::Event
/// [`Event::AuthChallengeNeeded`]: crate::server::Event::AuthChallengeNeeded
/// [`Server::auth_challenge_from`]: crate::server::Server::auth_challenge_from
#[macro_export]
macro_rules! handler_traits {
    (async $(#[$attr:meta])*) => {
        $crate::handler_traits!(@emit future [async] [.await] $(#[$attr])*);
    };
    (blocking $(#[$attr:meta])*) => {
        $crate::handler_traits!(@emit plain [] [] $(#[$attr])*);
    };
    (@ret future $t:ty) => { impl $crate::server::__private::Future<Output = $t> + Send };
    (@ret plain $t:ty) => { $t };
    (@val future $e:expr) => { $crate::server::__private::ready($e) };
    (@val plain $e:expr) => { $e };
    (@emit $mode:ident [$($async:tt)*] [$($await:tt)*] $(#[$attr:meta])*) => {
        /// The application's side of the whole server: one per server, shared by every
        /// connection.
        pub trait Host: Send + Sync + 'static {
            /// The per-session handler.
            type Handler: Handler + 'static;

            /// A client connected (and, on an implicit-TLS listener, finished the
            /// handshake). `Err(reply)` refuses the session: the reply (e.g. `554 5.7.1`)
            /// goes out instead of the greeting and the connection closes.
            fn connect(
                &self,
                info: &$crate::server::host::ConnectInfo,
            ) -> Result<Self::Handler, $crate::Reply>;
        }

        $(#[$attr])*
        ///
        /// Every method has the session's
        /// [`Context`](smtp_proto::server::host::Context); the ones that return a
        /// [`Decision`](smtp_proto::server::Decision) are asked while the session waits
        /// for it. Defaults accept what is pure policy (HELO, MAIL, RCPT, VRFY's `252`,
        /// EXPN's `502`, ETRN), refuse credentials, and ignore notifications;
        /// [`Handler::message_end`] has no default, because a message must be accepted
        /// only once it is stored (RFC 5321 §6.1).
        // In the blocking mode the notifications say `-> ()` and end in `()`, where
        // the async mode has `-> impl Future<Output = ()>` and `ready(())`.
        #[allow(clippy::unused_unit)]
        pub trait Handler: Send {
            /// HELO, EHLO or LHLO.
            fn hello(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                verb: $crate::Verb,
                host: &$crate::Host<'static>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, verb, host);
                $crate::handler_traits!(@val $mode $crate::server::Decision::Accept)
            }

            /// MAIL FROM, after every protocol check passed.
            fn mail(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                from: &$crate::ReversePath<'static>,
                params: &$crate::MailParams<'static>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, from, params);
                $crate::handler_traits!(@val $mode $crate::server::Decision::Accept)
            }

            /// RCPT TO: relay control and mailbox lookup belong here.
            fn rcpt(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                to: &$crate::ForwardPath<'static>,
                params: &$crate::RcptParams<'static>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, to, params);
                $crate::handler_traits!(@val $mode $crate::server::Decision::Accept)
            }

            /// The body starts: open storage. The reverse-path and the recipients are
            /// final.
            fn message_start(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
            ) -> $crate::handler_traits!(@ret $mode ()) {
                let _ = ctx;
                $crate::handler_traits!(@val $mode ())
            }

            /// A piece of the body, dot-unstuffed. A storage error should be remembered
            /// and turned into a `451 4.3.0` at [`Handler::message_end`].
            fn message_chunk(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                chunk: $crate::server::__private::Bytes,
            ) -> $crate::handler_traits!(@ret $mode ()) {
                let _ = (ctx, chunk);
                $crate::handler_traits!(@val $mode ())
            }

            /// SMTP: the whole body arrived and is clean. Accept only once the message
            /// is stored.
            fn message_end(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision);

            /// The message will not be accepted (client gone, timeout, smuggling, size,
            /// RSET between BDAT chunks, shutdown): discard what was stored.
            fn message_aborted(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                reason: $crate::server::AbortReason,
            ) -> $crate::handler_traits!(@ret $mode ()) {
                let _ = (ctx, reason);
                $crate::handler_traits!(@val $mode ())
            }

            /// LMTP: the whole body arrived and is clean; `recipients` calls to
            /// [`Handler::lmtp_delivery`] follow.
            fn lmtp_message_end(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                recipients: usize,
            ) -> $crate::handler_traits!(@ret $mode ()) {
                let _ = (ctx, recipients);
                $crate::handler_traits!(@val $mode ())
            }

            /// LMTP (RFC 2033 §4.2): the verdict for one recipient, in the order they
            /// were accepted. The default refuses with `451 4.3.0`
            /// ([`LMTP_NOT_IMPLEMENTED`](smtp_proto::server::host::LMTP_NOT_IMPLEMENTED)),
            /// so a host that forgot to implement it loses nothing.
            fn lmtp_delivery(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                to: &$crate::ForwardPath<'static>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, to);
                $crate::handler_traits!(@val $mode $crate::server::host::LMTP_NOT_IMPLEMENTED)
            }

            /// Credentials to check (their `Debug` is redacted). The default refuses
            /// (`535 5.7.8`,
            /// [`CREDENTIALS_INVALID`](smtp_proto::server::host::CREDENTIALS_INVALID)).
            fn auth(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                mechanism: &$crate::sasl::Mechanism,
                credentials: &$crate::sasl::Credentials,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, mechanism, credentials);
                $crate::handler_traits!(@val $mode $crate::server::host::CREDENTIALS_INVALID)
            }

            /// VRFY. Accepting sends `252 2.0.0` (no user enumeration).
            fn vrfy(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                arg: &$crate::Text<'static>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, arg);
                $crate::handler_traits!(@val $mode $crate::server::Decision::Accept)
            }

            /// EXPN. Accepting sends `502 5.5.1`.
            fn expn(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                arg: &$crate::Text<'static>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, arg);
                $crate::handler_traits!(@val $mode $crate::server::Decision::Accept)
            }

            /// ETRN (RFC 1985). Accepting sends `250 2.0.0 Queuing started`.
            fn etrn(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                arg: &$crate::Text<'static>,
            ) -> $crate::handler_traits!(@ret $mode $crate::server::Decision) {
                let _ = (ctx, arg);
                $crate::handler_traits!(@val $mode $crate::server::Decision::Accept)
            }

            /// Every other event, for logs and metrics:
            /// [`Event::Connected`](smtp_proto::server::Event::Connected),
            /// [`Event::Reset`](smtp_proto::server::Event::Reset),
            /// [`Event::TlsEstablished`](smtp_proto::server::Event::TlsEstablished),
            /// [`Event::Quit`](smtp_proto::server::Event::Quit),
            /// [`Event::ProtocolError`](smtp_proto::server::Event::ProtocolError),
            /// [`Event::Timeout`](smtp_proto::server::Event::Timeout).
            fn event(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
                event: &$crate::server::Event,
            ) {
                let _ = (ctx, event);
            }
        }

        /// Hands `event` to the handler method that hears it and the handler's answer,
        /// if the event asks for one, to the machine; a CRAM-MD5 challenge is the
        /// machine's to build, from the OS randomness (if any) and the time since the Unix
        /// epoch that `entropy` draws. Returns what to log.
        pub(crate) $($async)* fn dispatch<H: Handler>(
            session: &mut $crate::server::Server,
            info: &$crate::server::host::ConnectInfo,
            handler: &mut H,
            event: $crate::server::Event,
            entropy: impl FnOnce() -> (Option<u64>, ::core::time::Duration),
        ) -> Option<$crate::server::host::Note> {
            use $crate::server::Event;
            let ctx = &info.context(session);
            let decision = match &event {
                Event::Hello { verb, host } => Some(handler.hello(ctx, *verb, host) $($await)*),
                Event::Mail { from, params } => Some(handler.mail(ctx, from, params) $($await)*),
                Event::Rcpt { to, params } => Some(handler.rcpt(ctx, to, params) $($await)*),
                Event::MessageStart => {
                    handler.message_start(ctx) $($await)*;
                    None
                }
                Event::Body(chunk) => {
                    handler.message_chunk(ctx, chunk.clone()) $($await)*;
                    None
                }
                Event::MessageEnd => Some(handler.message_end(ctx) $($await)*),
                Event::LmtpMessageEnd { recipients } => {
                    handler.lmtp_message_end(ctx, *recipients) $($await)*;
                    None
                }
                Event::LmtpDelivery { to } => Some(handler.lmtp_delivery(ctx, to) $($await)*),
                Event::MessageAborted { reason } => {
                    handler.message_aborted(ctx, *reason) $($await)*;
                    None
                }
                Event::Auth {
                    mechanism,
                    credentials,
                } => Some(handler.auth(ctx, mechanism, credentials) $($await)*),
                Event::Vrfy(arg) => Some(handler.vrfy(ctx, arg) $($await)*),
                Event::Expn(arg) => Some(handler.expn(ctx, arg) $($await)*),
                Event::Etrn(arg) => Some(handler.etrn(ctx, arg) $($await)*),
                Event::AuthChallengeNeeded { .. } => {
                    let (random, since_epoch) = entropy();
                    // Without OS randomness, the clock's nanoseconds still differ from
                    // one try to the next.
                    let random = random.unwrap_or(since_epoch.subsec_nanos().into());
                    let result = session.auth_challenge_from(random, since_epoch.as_secs());
                    return result.err().map($crate::server::host::Note::challenge_refused);
                }
                other => {
                    handler.event(ctx, other);
                    None
                }
            };
            $crate::server::host::settle(session, &event, decision)
        }
    };
}

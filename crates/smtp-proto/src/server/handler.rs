//! The application traits of the adapters, written once: [`handler_traits!`](crate::handler_traits).
//!
//! The tokio adapter's `SessionHandler` returns futures and the blocking adapter's returns
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

/// Defines an adapter's `Backend` and `SessionHandler` traits and its `dispatch` function (an
/// [`Event`] to the handler method that hears it, the handler's decision to the machine).
///
/// `handler_traits!(async)` gives methods that return `impl Future + Send` and an
/// `async fn dispatch` (the tokio adapter); `handler_traits!(blocking)` plain methods
/// and a plain `dispatch` (the blocking adapter). Attributes after the mode
/// (`#[doc = ...]`) go on the `SessionHandler` trait. [`Event::AuthChallengeNeeded`] is not a
/// handler's business: `dispatch` answers it with [`Session::auth_challenge_from`].
///
/// [`Event`]: crate::server::Event
/// [`Event::AuthChallengeNeeded`]: crate::server::Event::AuthChallengeNeeded
/// [`Session::auth_challenge_from`]: crate::server::Session::auth_challenge_from
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
        pub trait Backend: Send + Sync + 'static {
            /// The per-session handler.
            type Handler: SessionHandler + 'static;

            /// A client connected (and, on an implicit-TLS listener, finished the
            /// handshake). `Err(reply)` refuses the session: the reply (e.g. `554 5.7.1`)
            /// goes out instead of the greeting and the connection closes.
            fn connect(
                &self,
                info: &$crate::server::host::ConnectInfo,
            ) -> Result<Self::Handler, $crate::Reply>;

            /// A client over the server's connection limit got `421 4.3.2` instead of
            /// a session, without [`Backend::connect`] being asked (for metrics).
            fn refused(&self, info: &$crate::server::host::ConnectInfo) {
                let _ = info;
            }
        }

        $(#[$attr])*
        ///
        /// Every method has the session's
        /// [`Context`](smtp_proto::server::host::Context); the ones that return a
        /// [`Decision`](smtp_proto::server::Decision) are asked while the session waits
        /// for it. Defaults accept what is pure policy (HELO, MAIL, RCPT, VRFY's `252`,
        /// EXPN's `502`, ETRN), refuse credentials, and ignore notifications;
        /// [`SessionHandler::message_end`] has no default, because a message must be accepted
        /// only once it is stored (RFC 5321 §6.1).
        // In the blocking mode the notifications say `-> ()` and end in `()`, where
        // the async mode has `-> impl Future<Output = ()>` and `ready(())`.
        #[allow(clippy::unused_unit)]
        pub trait SessionHandler: Send {
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

            /// Asked at each message start, after [`SessionHandler::message_start`]: whether
            /// to keep the whole body, so that
            /// [`Context::body`](smtp_proto::server::host::Context::body) gives it at
            /// [`SessionHandler::message_end`] (LMTP: from
            /// [`SessionHandler::lmtp_message_end`] to the last
            /// [`SessionHandler::lmtp_delivery`]). The body is kept up to the SIZE limit
            /// ([`Limits::max_message_size`](smtp_proto::server::Limits::max_message_size),
            /// or [`DEFAULT_BODY_LIMIT`](smtp_proto::server::host::DEFAULT_BODY_LIMIT)
            /// without one), so memory stays bounded; a body that outgrows it is refused
            /// with `552 5.3.4` and [`SessionHandler::message_aborted`] is called instead of
            /// `message_end`. The default, `false`, only streams the body through
            /// [`SessionHandler::message_chunk`] (which is called either way).
            fn buffer_message(&mut self, ctx: &$crate::server::host::Context<'_>) -> bool {
                let _ = ctx;
                false
            }

            /// A piece of the body, dot-unstuffed. A storage error should be remembered
            /// and turned into a `451 4.3.0` at [`SessionHandler::message_end`].
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
            /// [`SessionHandler::lmtp_delivery`] follow.
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

            /// The transaction was dropped before its message was taken: RSET, or a new
            /// HELO/EHLO while it was open ([`Event::Reset`](smtp_proto::server::Event::Reset);
            /// `message_aborted` comes first if a body had started). Forget the envelope.
            /// [`SessionHandler::event`] hears the event too.
            fn reset(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
            ) -> $crate::handler_traits!(@ret $mode ()) {
                let _ = ctx;
                $crate::handler_traits!(@val $mode ())
            }

            /// The session has ended, however it ended: QUIT, the client gone, a
            /// timeout, the server's shutdown, a broken connection. Called exactly once,
            /// last, before the connection closes
            /// ([`Event::Closed`](smtp_proto::server::Event::Closed));
            /// release what the session held. [`SessionHandler::event`] hears the event too.
            /// (The one exception: a tokio session that still runs when the shutdown's
            /// grace period and the write timeout after it are over is aborted, and
            /// its handler dropped without this call.)
            fn closed(
                &mut self,
                ctx: &$crate::server::host::Context<'_>,
            ) -> $crate::handler_traits!(@ret $mode ()) {
                let _ = ctx;
                $crate::handler_traits!(@val $mode ())
            }

            /// Every other event, for logs and metrics:
            /// [`Event::Connected`](smtp_proto::server::Event::Connected),
            /// [`Event::Reset`](smtp_proto::server::Event::Reset),
            /// [`Event::TlsEstablished`](smtp_proto::server::Event::TlsEstablished),
            /// [`Event::Quit`](smtp_proto::server::Event::Quit),
            /// [`Event::ProtocolError`](smtp_proto::server::Event::ProtocolError),
            /// [`Event::Timeout`](smtp_proto::server::Event::Timeout),
            /// [`Event::Closed`](smtp_proto::server::Event::Closed).
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
        /// epoch that `entropy` draws. Returns what to log, if it is at least `quietest`
        /// ([`settle_at`]($crate::server::host::settle_at)).
        pub(crate) $($async)* fn dispatch<H: SessionHandler>(
            session: &mut $crate::server::host::Driver,
            info: &$crate::server::host::ConnectInfo,
            handler: &mut H,
            event: $crate::server::Event,
            entropy: impl FnOnce() -> (Option<u64>, ::core::time::Duration),
            quietest: $crate::server::host::Level,
        ) -> Option<$crate::server::host::Note> {
            use $crate::server::Event;
            let ctx = &session.context(info);
            let decision = match &event {
                Event::Hello { verb, host } => Some(handler.hello(ctx, *verb, host) $($await)*),
                Event::Mail { from, params } => Some(handler.mail(ctx, from, params) $($await)*),
                Event::Rcpt { to, params } => Some(handler.rcpt(ctx, to, params) $($await)*),
                Event::MessageStart => {
                    handler.message_start(ctx) $($await)*;
                    if handler.buffer_message(ctx) {
                        session.keep_body();
                    }
                    None
                }
                Event::Body(chunk) => {
                    handler.message_chunk(ctx, chunk.clone()) $($await)*;
                    None
                }
                // A kept body that outgrew its limit: refused without asking (LMTP: for
                // every recipient), the handler told to discard what it stored.
                Event::MessageEnd | Event::LmtpMessageEnd { .. } if session.body_too_big() => {
                    let reason = $crate::server::AbortReason::Data(
                        $crate::DataError::SizeExceeded,
                    );
                    handler.message_aborted(ctx, reason) $($await)*;
                    match event {
                        Event::MessageEnd => Some($crate::server::host::BODY_TOO_BIG),
                        _ => None,
                    }
                }
                Event::LmtpDelivery { .. } if session.body_too_big() => {
                    Some($crate::server::host::BODY_TOO_BIG)
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
                Event::Reset => {
                    handler.reset(ctx) $($await)*;
                    handler.event(ctx, &event);
                    None
                }
                Event::Closed => {
                    handler.closed(ctx) $($await)*;
                    handler.event(ctx, &event);
                    None
                }
                other => {
                    handler.event(ctx, other);
                    None
                }
            };
            let note = $crate::server::host::settle_at(session, &event, decision, quietest);
            // The message has its verdict (LMTP: the last recipient's): its body goes.
            let delivered = match event {
                Event::MessageEnd => true,
                Event::LmtpDelivery { .. } => session.lmtp_recipients().is_empty(),
                _ => false,
            };
            if delivered {
                session.drop_body();
            }
            note
        }
    };
}

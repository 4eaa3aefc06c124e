//! What the application supplies: a [`Backend`] that is asked about each new connection and
//! hands out one [`SessionHandler`] per session, which decides policy and stores messages.
//!
//! Both traits are [`smtp_proto::handler_traits!`] in its `blocking` mode: the tokio
//! adapter's methods with plain values instead of futures, so a host written for one
//! adapter moves to the other by adding or removing `async`.

pub use smtp_proto::server::Decision;
pub use smtp_proto::server::host::{ConnectInfo, Context};

smtp_proto::handler_traits!(blocking
    /// Policy and delivery for one session, called on the session's own thread.
);

/// The handler of a session that is refused before it starts: it never decides anything.
pub(crate) struct Refused;

impl SessionHandler for Refused {
    fn message_end(&mut self, _: &Context<'_>) -> Decision {
        smtp_proto::server::host::REFUSED
    }
}

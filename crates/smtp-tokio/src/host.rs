//! What the application supplies: a [`Backend`] that is asked about each new connection and
//! hands out one [`SessionHandler`] per session, which decides policy and stores messages.
//!
//! Both traits are [`smtp_proto::handler_traits!`] in its `async` mode: the same methods
//! as the blocking adapter's, each returning a future.

pub use smtp_proto::server::Decision;
pub use smtp_proto::server::host::{ConnectInfo, Context};

smtp_proto::handler_traits!(async
    /// Policy and delivery for one session. Methods return `impl Future`, so
    /// implementations may be `async fn`.
);

/// The handler of a session that is refused before it starts: it never decides anything.
pub(crate) struct Refused;

impl SessionHandler for Refused {
    async fn message_end(&mut self, _: &Context<'_>) -> Decision {
        smtp_proto::server::host::REFUSED
    }
}

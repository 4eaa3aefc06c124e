//! One session's handler logic, shared by the tokio and the blocking hosts: the methods
//! of the adapters' `Handler` traits, synchronous. The ones that may reach the disk say
//! so first (`*_blocks`), for the tokio host to run them off its reactor threads.

use std::sync::Arc;

use smtp_proto::ForwardPath;
use smtp_proto::sasl::Credentials;
use smtp_proto::server::Server;

use crate::delivery::{Message, NewMessage, Store};
use crate::policy::{Policy, Verdict};

/// What every session shares.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) store: Store,
}

/// One session's state: the message being received.
pub(crate) struct Session {
    shared: Arc<Shared>,
    message: Option<Message>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>) -> Session {
        Session {
            shared,
            message: None,
        }
    }

    pub(crate) fn rcpt(&self, session: &Server, to: &ForwardPath<'_>) -> Verdict {
        self.shared.policy.rcpt(session, to)
    }

    /// Whether checking these credentials costs real CPU time (a slow password hash).
    pub(crate) fn auth_blocks(&self, credentials: &Credentials) -> bool {
        self.shared.policy.auth_is_slow(credentials)
    }

    pub(crate) fn auth(&self, credentials: &Credentials) -> Verdict {
        self.shared.policy.auth(credentials)
    }

    /// The first half of the message start: its id and head, from the session. No I/O.
    pub(crate) fn prepare(&self, session: &Server) -> NewMessage {
        self.shared.store.prepare(session)
    }

    /// The second half: opens storage; blocking when [`NewMessage::open_blocks`].
    pub(crate) fn open(&mut self, new: NewMessage) {
        self.message = Some(self.shared.store.open(new));
    }

    pub(crate) fn chunk_blocks(&self, len: usize) -> bool {
        self.message.as_ref().is_some_and(|m| m.write_blocks(len))
    }

    pub(crate) fn chunk(&mut self, chunk: &[u8]) {
        if let Some(m) = &mut self.message {
            m.write(chunk);
        }
    }

    /// Whether ending or aborting the message reaches the disk.
    pub(crate) fn end_blocks(&self) -> bool {
        self.message.as_ref().is_some_and(Message::finish_blocks)
    }

    /// SMTP end of data: stores the message and says what to reply.
    pub(crate) fn end(&mut self) -> Verdict {
        match self.message.take() {
            Some(mut m) => m.finish(),
            None => Message::missing(),
        }
    }

    /// LMTP end of data: stores the message, each file on its own.
    pub(crate) fn lmtp_end(&mut self) {
        if let Some(m) = &mut self.message {
            m.finish_lmtp();
        }
    }

    /// LMTP: the reply for recipient `to`.
    pub(crate) fn lmtp_delivery(&self, to: &ForwardPath<'_>) -> Verdict {
        self.message
            .as_ref()
            .map_or_else(Message::missing, |m| m.lmtp_verdict(to))
    }

    /// The message will not be accepted: its file in `tmp/` is removed.
    pub(crate) fn aborted(&mut self) {
        self.message = None;
    }
}

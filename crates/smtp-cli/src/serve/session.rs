//! One session's handler logic, shared by the tokio and the blocking hosts: the methods
//! of the adapters' `SessionHandler` traits, synchronous. The ones that may reach the disk say
//! so first (`*_blocks`), for the tokio host to run them off its reactor threads.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use smtp_proto::sasl::Credentials;
use smtp_proto::server::{self, Anvil};
use smtp_proto::{ForwardPath, Reply};

use crate::delivery::{Message, NewMessage, Store};
use crate::policy::{Policy, Verdict};

/// What every session shares.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) store: Store,
    /// Connections and AUTH failures per client.
    pub(crate) anvil: Mutex<Anvil>,
}

impl Shared {
    fn anvil(&self) -> MutexGuard<'_, Anvil> {
        // The counts stay usable if a session thread panicked holding the lock.
        self.anvil.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One session's state: the client, and the message being received.
pub(crate) struct Session {
    shared: Arc<Shared>,
    client: IpAddr,
    message: Option<Message>,
}

impl Session {
    /// A new connection from `client`, or the reply refusing it (too many connections
    /// from that client).
    pub(crate) fn connect(shared: Arc<Shared>, client: IpAddr) -> Result<Session, Reply> {
        shared.anvil().connect(client, Instant::now())?;
        Ok(Session {
            shared,
            client,
            message: None,
        })
    }

    pub(crate) fn rcpt(&self, session: &server::Session, to: &ForwardPath<'_>) -> Verdict {
        self.shared.policy.rcpt(session, to)
    }

    /// Whether checking these credentials costs real CPU time (a slow password hash).
    pub(crate) fn auth_blocks(&self, credentials: &Credentials) -> bool {
        self.shared.policy.auth_is_slow(credentials)
    }

    /// AUTH: refused at once while the client has failed too often, else checked, and a
    /// failure counted.
    pub(crate) fn auth(&self, credentials: &Credentials) -> Verdict {
        if let Some(refusal) = self
            .shared
            .anvil()
            .auth_refusal(self.client, Instant::now())
        {
            tracing::info!(client = %self.client, "AUTH refused: too many failures");
            return Verdict::Reject(refusal);
        }
        let verdict = self.shared.policy.auth(credentials);
        if !verdict.is_accept() {
            self.shared.anvil().auth_failed(self.client, Instant::now());
        }
        verdict
    }

    /// The first half of the message start: its id and head, from the session. No I/O.
    pub(crate) fn prepare(&self, session: &server::Session) -> NewMessage {
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

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.anvil().disconnect(self.client);
    }
}

//! The state table, and the only code that changes the session's phase.
//!
//! [`Session::step`] is the table: one `match` over the phase, each arm reading what that
//! phase reads and getting back from its handler a [`Next`]. [`Session::enter`] applies a
//! `Next`, whatever asked for it (a handler, a decision, a timeout, the end of input); it
//! is the one place where `phase` is assigned. [`Session::end_session`] is the one way a
//! session ends: the message in progress, if any, is reported aborted, then the last
//! reply goes out, then `Output::Close`. `docs/state-machines.md` draws the table, and
//! `tests/state_table.rs` checks it against this code.

use super::state::{Next, Pending, Phase};
use super::{AbortReason, Event, Output, Session, replies};
use crate::reply::Reply;

impl Session {
    /// One step of progress on buffered input; false when none is possible.
    pub(super) fn step(&mut self) -> bool {
        let next = match self.phase {
            Phase::Greeting => {
                self.send(replies::greeting(
                    &self.config.hostname,
                    &self.config.greeting,
                ));
                self.event(Event::Connected);
                Some(Next::Command)
            }
            // RFC 5321 §3.8: a shutdown waits for the transaction to end, then closes at
            // a command boundary.
            Phase::Command if self.shutdown.is_some() && self.txn.is_none() => {
                let reply = self.shutdown.take();
                Some(self.end_session(reply, None))
            }
            Phase::Command => self.read_command(),
            Phase::Data(_) => self.read_data(),
            Phase::Bdat(_) => self.read_bdat(),
            Phase::Auth(_) => self.read_auth_line(),
            Phase::Decide(_) | Phase::Tls | Phase::Closed => None,
        };
        match next {
            Some(next) => {
                self.enter(next);
                true
            }
            None => false,
        }
    }

    /// Goes where `next` says. A closed session stays closed.
    pub(super) fn enter(&mut self, next: Next) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let phase = match next {
            Next::Stay => return,
            Next::Command => Phase::Command,
            Next::Decide(pending) => Phase::Decide(pending),
            Next::Data(decoder) => {
                // The body's deadline counts from its start (see `handle_input`).
                self.last_activity = self.now;
                Phase::Data(decoder)
            }
            Next::Bdat(chunk) => Phase::Bdat(chunk),
            Next::Auth(exchange) => Phase::Auth(exchange),
            Next::Tls => {
                // The 220 goes out before the handshake starts (RFC 3207 §4).
                self.flush();
                self.queue.push_back(Output::StartTls);
                Phase::Tls
            }
            Next::Close => {
                self.inbuf.clear();
                self.flush();
                self.queue.push_back(Output::Close);
                Phase::Closed
            }
        };
        // AUTH lines have a limit of their own (RFC 4954 §4: 12288 octets).
        let limits = &self.config.limits;
        let max_line = match phase {
            Phase::Auth(_) => limits.max_auth_line,
            _ => limits.max_line,
        };
        self.decoder.framer.set_max_len(max_line);
        self.phase = phase;
    }

    /// Asks the host about `pending`, with `event`.
    pub(super) fn ask(&mut self, pending: Pending, event: Event) -> Next {
        self.event(event);
        Next::Decide(pending)
    }

    /// Ends the session: the message in progress is reported aborted, `reply` goes out,
    /// `event` is reported, and the session closes. Every way a session ends goes
    /// through here (the client's QUIT, an error it cannot recover from, a timeout, the
    /// end of input, the host closing it).
    pub(super) fn end_session(&mut self, reply: Option<Reply>, event: Option<Event>) -> Next {
        if self.in_message() {
            self.event(Event::MessageAborted {
                reason: AbortReason::Disconnected,
            });
        }
        if let Some(reply) = reply {
            self.send(reply);
        }
        if let Some(event) = event {
            self.event(event);
        }
        self.txn = None;
        Next::Close
    }

    /// Takes the phase's data out, leaving `Command` in its place until the handler's
    /// [`Next`] is entered.
    pub(super) fn take_phase(&mut self) -> Phase {
        std::mem::replace(&mut self.phase, Phase::Command)
    }

    /// The pending question, taken out to be answered; `None` if none is pending.
    pub(super) fn take_pending(&mut self) -> Option<Pending> {
        match self.take_phase() {
            Phase::Decide(pending) => Some(pending),
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// Whether a question is pending that `which` matches.
    pub(super) fn is_deciding(&self, which: impl FnOnce(&Pending) -> bool) -> bool {
        matches!(&self.phase, Phase::Decide(p) if which(p))
    }
}

//! The host's decisions: what each pending question becomes once it is answered, with
//! the default reply when the host gives none.

use crate::command::Verb;
use crate::reply::Reply;
use crate::sasl::Step;

use super::state::{Next, Pending, Transaction};
use super::{HostError, Session, replies};

/// What [`Session::decide`] does inside: a default or a custom reply.
pub(super) enum Verdict {
    Accept(Option<Reply>),
    Reject(Reply),
}

impl Session {
    /// Answers the pending question with `decision`.
    pub(super) fn verdict(&mut self, decision: Verdict) -> Result<(), HostError> {
        if self.state() == super::State::Closed {
            return Err(HostError::Closed);
        }
        let (accepted, custom) = match decision {
            Verdict::Accept(r) => (true, r),
            Verdict::Reject(r) => (false, Some(r)),
        };
        if self.is_deciding(|p| matches!(p, Pending::Challenge)) {
            // Only `auth_challenge` answers this, or a refusal.
            return match custom.filter(|_| !accepted) {
                Some(r) => {
                    self.send(r);
                    self.enter(Next::Command);
                    Ok(())
                }
                None => Err(HostError::Challenge),
            };
        }
        let Some(pending) = self.take_pending() else {
            return Err(HostError::NoDecisionPending);
        };
        // As Postfix counts them: a refused command is an error (relay denied, unknown
        // user, ...), and a message taken forgives the errors and junk commands before
        // it. AUTH failures have their own count; an LMTP recipient's delivery result is
        // not the client's error.
        let is_message = matches!(pending, Pending::Message { .. });
        let own_count = matches!(pending, Pending::Auth { .. });
        let counts = !(own_count || is_message && self.config.lmtp);
        let next = self.answer(pending, accepted, custom);
        if is_message && accepted {
            self.errors = 0;
            self.junk = 0;
        } else if counts && !accepted {
            self.count_error();
        }
        self.enter(next);
        Ok(())
    }

    fn answer(&mut self, pending: Pending, accepted: bool, custom: Option<Reply>) -> Next {
        match pending {
            Pending::Hello { verb, host } => {
                if accepted {
                    self.reset();
                    self.helo = Some((verb, host));
                    let r = match (custom, verb) {
                        (Some(r), _) => r,
                        (None, Verb::Helo) => replies::helo(&self.config.hostname),
                        (None, _) => self.ehlo_reply(),
                    };
                    self.send(r);
                } else if let Some(r) = custom {
                    self.send(r);
                }
                Next::Command
            }
            Pending::Mail { from, params } => {
                if accepted {
                    let max = self.config.limits.max_message_size;
                    self.txn = Some(Transaction::new(from, &params, max));
                }
                self.send(custom.unwrap_or(replies::MAIL_OK));
                Next::Command
            }
            Pending::Rcpt { to } => {
                if accepted {
                    if let Some(txn) = &mut self.txn {
                        txn.recipients.push(to);
                    }
                }
                self.send(custom.unwrap_or(replies::RCPT_OK));
                Next::Command
            }
            Pending::Message { left } => {
                self.send(custom.unwrap_or(replies::QUEUED));
                if self.config.lmtp {
                    self.ask_lmtp(left - 1)
                } else {
                    self.txn = None;
                    Next::Command
                }
            }
            Pending::Auth {
                mut exchange,
                identity,
            } => {
                if accepted {
                    self.auth = identity;
                    self.send(custom.unwrap_or(replies::AUTH_OK));
                    return Next::Command;
                }
                // XOAUTH2 and OAUTHBEARER send an error challenge first (RFC 7628 §3.2.2).
                let step = exchange.reject(None);
                let r = custom.unwrap_or(replies::AUTH_INVALID);
                match step {
                    Step::Challenge(_) => self.auth_step(exchange, step, Some(r)),
                    _ => {
                        self.send(r);
                        self.auth_failed()
                    }
                }
            }
            // Answered above.
            Pending::Challenge => Next::Command,
            Pending::Vrfy => {
                self.send(custom.unwrap_or(replies::CANNOT_VRFY));
                Next::Command
            }
            Pending::Expn => {
                self.send(custom.unwrap_or(replies::EXPN_NOT_AVAILABLE));
                Next::Command
            }
            Pending::Etrn => {
                self.send(custom.unwrap_or(replies::QUEUING_STARTED));
                Next::Command
            }
        }
    }
}

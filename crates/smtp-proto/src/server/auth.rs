//! An AUTH exchange (RFC 4954): challenges out, continuation lines in, the credentials
//! to the host, and the count of failures.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::CommandError;
use crate::reply::Reply;
use crate::sasl::{SaslError, ServerExchange, Step};

use super::state::{AuthExchange, Next, Pending, Phase};
use super::{Event, ProtocolError, Session, SyncPolicy, replies};

impl Session {
    /// The next AUTH continuation line; `None` when a whole line has not arrived yet.
    pub(super) fn read_auth_line(&mut self) -> Option<Next> {
        let line = match self.next_line()? {
            Err(CommandError::LineTooLong) => {
                // RFC 4954 §6.
                self.send(crate::sasl::AUTH_LINE_TOO_LONG);
                return Some(self.violation(ProtocolError::AuthFailed));
            }
            Err(error) => return Some(self.command_error(error)),
            Ok(line) => line,
        };
        if !self.inbuf.is_empty() && self.config.sync == SyncPolicy::Reject {
            // RFC 4954 §4: the client waits for each challenge.
            let event = Event::ProtocolError(ProtocolError::Synchronization);
            return Some(self.end_session(Some(replies::SYNCHRONIZATION), Some(event)));
        }
        let Phase::Auth(AuthExchange {
            mut exchange,
            reject,
        }) = self.take_phase()
        else {
            return Some(Next::Command);
        };
        let step = exchange.handle_line(&line);
        Some(self.auth_step(exchange, step, reject))
    }

    /// Sends a `334` challenge: `"334" SP [base64] CRLF` (RFC 4954 §4), the space there
    /// even when empty, and no enhanced status code.
    pub(super) fn send_challenge(&mut self, challenge: &[u8]) {
        self.outbuf.extend_from_slice(b"334 ");
        self.outbuf
            .extend_from_slice(STANDARD.encode(challenge).as_bytes());
        self.outbuf.extend_from_slice(b"\r\n");
    }

    /// Where a step of the exchange leads: another challenge, the host's decision on
    /// the credentials, or a failure. `reject` is the host's refusal held while
    /// XOAUTH2 or OAUTHBEARER sends its error challenge first (RFC 7628 §3.2.2).
    pub(super) fn auth_step(
        &mut self,
        exchange: ServerExchange,
        step: Step,
        reject: Option<Reply>,
    ) -> Next {
        match step {
            Step::Challenge(c) => {
                self.send_challenge(&c);
                Next::Auth(AuthExchange { exchange, reject })
            }
            Step::Done(credentials) => {
                let identity = credentials.identity().map(str::to_owned);
                let mechanism = exchange.mechanism().clone();
                self.ask(
                    Pending::Auth { exchange, identity },
                    Event::Auth {
                        mechanism,
                        credentials,
                    },
                )
            }
            Step::Failed(error) => {
                let cancelled = matches!(error, SaslError::Cancelled);
                let r = match reject {
                    Some(r) if matches!(error, SaslError::Rejected) => r,
                    _ => error.reply(),
                };
                self.send(r);
                if cancelled {
                    Next::Command
                } else {
                    self.auth_failed()
                }
            }
        }
    }

    /// A failed AUTH attempt, counted; at the limit the session ends with `421 4.7.0`.
    pub(super) fn auth_failed(&mut self) -> Next {
        self.auth_failures += 1;
        self.event(Event::ProtocolError(ProtocolError::AuthFailed));
        if self.auth_failures >= self.config.limits.max_auth_failures {
            let reply = replies::too_many_auth_failures(&self.config.hostname);
            return self.end_session(Some(reply), None);
        }
        Next::Command
    }
}

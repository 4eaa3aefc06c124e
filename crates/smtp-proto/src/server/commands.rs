//! Reading and answering command lines: what each command does in the session, and
//! where it leaves it ([`Next`]). Replies come from [`replies`](super::replies).

use bytes::Buf as _;

use crate::address::{ForwardPath, ReversePath};
use crate::command::{Command, Decoded, Verb};
use crate::data::{BdatDecoder, DataDecoder};
use crate::ehlo::Capabilities;
use crate::error::CommandError;
use crate::params::{BodyType, MailParams, RcptParams};
use crate::reply::Reply;
use crate::sasl::{Mechanism, ServerExchange};

use super::state::{Chunk, Chunks, Next, Pending};
use super::{AbortReason, Event, Extensions, ProtocolError, Session, SyncPolicy, replies};

/// Commands after which a client must wait for the reply (RFC 2920 §3.1; RFC 3207 §4 for
/// STARTTLS; RFC 4954 §4 for AUTH).
fn ends_group(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Helo | Verb::Ehlo | Verb::Lhlo | Verb::Data | Verb::Auth | Verb::StartTls
    )
}

/// What does not move mail along (Postfix's `smtpd_junk_command_limit`).
fn is_junk(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Helo
            | Verb::Ehlo
            | Verb::Lhlo
            | Verb::Rset
            | Verb::Noop
            | Verb::Vrfy
            | Verb::Expn
            | Verb::Etrn
            | Verb::Help
    )
}

impl Session {
    /// The next command line, answered; `None` when a whole line has not arrived yet.
    /// Lines are read by the public [`CommandDecoder`](crate::CommandDecoder), straight
    /// from the buffer: what is fuzzed and benchmarked is what runs.
    pub(super) fn read_command(&mut self) -> Option<Next> {
        if self.errors >= self.config.limits.max_errors {
            // Postfix checks the limit before reading the next command.
            let reply = replies::too_many_errors(&self.config.hostname);
            let event = Event::ProtocolError(ProtocolError::TooManyErrors);
            return Some(self.end_session(Some(reply), Some(event)));
        }
        self.decoder.options = crate::ParseOptions {
            utf8: self.config.extensions.smtputf8 && self.txn.as_ref().is_none_or(|t| t.smtputf8),
        };
        // The buffer is lent out while the command (which borrows it) is handled; the
        // handlers never read `inbuf`.
        let input = std::mem::take(&mut self.inbuf);
        let (next, consumed) = match self.decoder.decode(&input) {
            Decoded::NeedMore { discarded } => (None, discarded),
            Decoded::Error { error, consumed } => (Some(self.command_error(error)), consumed),
            Decoded::Command { command, consumed } => {
                let pipelined = consumed < input.len();
                (Some(self.handle_command(command, pipelined)), consumed)
            }
        };
        self.inbuf = input;
        self.inbuf.advance(consumed);
        next
    }

    /// A command line that did not parse.
    pub(super) fn command_error(&mut self, error: CommandError) -> Next {
        let mut r = error.reply();
        if let CommandError::Address {
            verb: Verb::Mail,
            error: crate::AddressError::Utf8NotPermitted,
        } = error
        {
            if !self.config.extensions.smtputf8 {
                r = replies::UTF8_NOT_OFFERED;
            }
        }
        // Bare CR and LF are how smuggling starts, and a BDAT whose size cannot be read
        // leaves the stream unframed: nothing after either can be trusted to be a
        // command, so the session ends.
        let fatal = matches!(
            error,
            CommandError::BareLf | CommandError::BareCr | CommandError::Syntax { verb: Verb::Bdat }
        );
        if fatal {
            let event = Event::ProtocolError(ProtocolError::Command(error));
            return self.end_session(Some(r), Some(event));
        }
        self.send(r);
        self.violation(ProtocolError::Command(error))
    }

    /// `pipelined`: more input followed the command in the buffer.
    fn handle_command(&mut self, command: Command<'_>, pipelined: bool) -> Next {
        let Some(verb) = command.verb() else {
            if command.is_forbidden() {
                let event = Event::ProtocolError(ProtocolError::ForbiddenCommand);
                return self.end_session(Some(replies::FORBIDDEN), Some(event));
            }
            self.send(replies::NOT_RECOGNIZED);
            return self.violation(ProtocolError::UnknownCommand);
        };
        // RFC 2920 §3.1: commands that end a group must be the last in what was sent.
        let pipelining = self.config.extensions.pipelining
            && self.helo.as_ref().is_some_and(|h| h.0 != Verb::Helo);
        if verb == Verb::StartTls && pipelined {
            // CVE-2011-0411: never process what was sent before the TLS handshake.
            return self.fatal(ProtocolError::StartTlsInjection);
        }
        let must_wait =
            ends_group(verb) || (!pipelining && verb != Verb::Quit && verb != Verb::Bdat);
        if pipelined && must_wait && self.config.sync == SyncPolicy::Reject {
            return self.fatal(ProtocolError::Synchronization);
        }
        if is_junk(verb) {
            self.junk += 1;
            if self.junk > self.config.limits.max_junk_commands {
                self.count_error();
            }
        }
        match command {
            Command::Helo(host) | Command::Ehlo(host) | Command::Lhlo(host) => {
                if self.config.lmtp != (verb == Verb::Lhlo) {
                    self.send(replies::NOT_RECOGNIZED);
                    return self.violation(ProtocolError::UnknownCommand);
                }
                let host = host.into_owned();
                let pending = Pending::Hello {
                    verb,
                    host: host.clone(),
                };
                self.ask(pending, Event::Hello { verb, host })
            }
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset();
                self.send(replies::OK);
                Next::Command
            }
            Command::Noop(_) => {
                self.send(replies::OK);
                Next::Command
            }
            Command::Help(_) => {
                self.send(replies::HELP);
                Next::Command
            }
            Command::Quit => {
                self.reset_quietly();
                self.end_session(Some(replies::BYE), Some(Event::Quit))
            }
            Command::Vrfy(text) => self.ask(Pending::Vrfy, Event::Vrfy(text.into_owned())),
            Command::Expn(text) => self.ask(Pending::Expn, Event::Expn(text.into_owned())),
            Command::Etrn(text) if self.config.extensions.etrn => {
                self.ask(Pending::Etrn, Event::Etrn(text.into_owned()))
            }
            Command::Etrn(_) => self.not_implemented(),
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(
                mechanism.as_str(),
                initial_response.as_ref().map(|r| r.expose().as_slice()),
            ),
            Command::Unknown(_) => Next::Command,
        }
    }

    fn mail(&mut self, from: ReversePath<'_>, params: MailParams<'_>) -> Next {
        let ext = &self.config.extensions;
        if self.helo.is_none() && self.config.helo_required {
            return self.bad_sequence(Verb::Mail, replies::SEND_HELO_FIRST);
        }
        if self.txn.is_some() {
            return self.bad_sequence(Verb::Mail, replies::NESTED_MAIL);
        }
        if self.config.require_tls && !self.tls {
            return self.refuse(replies::STARTTLS_FIRST);
        }
        if self.config.require_auth && self.auth.is_none() {
            return self.refuse(replies::AUTH_REQUIRED);
        }
        // RFC 5321 §4.1.1.11: parameters of extensions not offered are refused with 555.
        let unsupported = [
            (
                "BODY",
                matches!(params.body, Some(BodyType::EightBitMime)) && !ext.eight_bit_mime,
            ),
            (
                "BODY",
                matches!(params.body, Some(BodyType::BinaryMime))
                    && !(ext.binary_mime && ext.chunking),
            ),
            ("SMTPUTF8", params.smtputf8 && !ext.smtputf8),
            ("RET", params.ret.is_some() && !ext.dsn),
            ("ENVID", params.envid.is_some() && !ext.dsn),
            ("AUTH", params.auth.is_some() && ext.auth.is_empty()),
            (
                "REQUIRETLS",
                params.requiretls && !(ext.requiretls && self.tls),
            ),
            (
                "MT-PRIORITY",
                params.mt_priority.is_some() && !ext.mt_priority,
            ),
            ("BY", params.by.is_some() && !ext.deliver_by),
        ];
        if let Some(name) = first_unsupported(&unsupported, &params.other, ext) {
            return self.unsupported_param(&name);
        }
        // RFC 1870 §6.2: a declared size over the limit is refused at once.
        if let (Some(size), Some(max)) = (params.size, self.config.limits.max_message_size) {
            if size > max {
                return self.refuse(replies::SIZE_OVER_LIMIT);
            }
        }
        let (from, params) = (from.into_owned(), params.into_owned());
        let pending = Pending::Mail {
            from: from.clone(),
            params: params.clone(),
        };
        self.ask(pending, Event::Mail { from, params })
    }

    fn rcpt(&mut self, to: ForwardPath<'_>, params: RcptParams<'_>) -> Next {
        let ext = &self.config.extensions;
        let Some(txn) = &mut self.txn else {
            return self.bad_sequence(Verb::Rcpt, replies::NEED_MAIL);
        };
        if txn.chunks.started() {
            return self.bad_sequence(Verb::Rcpt, replies::RCPT_AFTER_BDAT);
        }
        let unsupported = [
            ("NOTIFY", params.notify.is_some() && !ext.dsn),
            ("ORCPT", params.orcpt.is_some() && !ext.dsn),
        ];
        if let Some(name) = first_unsupported(&unsupported, &params.other, ext) {
            return self.unsupported_param(&name);
        }
        txn.rcpt_attempts += 1;
        // RFC 5321 §4.5.3.1.10: 452 for too many recipients, so the client retries the
        // rest later; far beyond the limit each one is an error (Postfix's
        // smtpd_recipient_overshoot_limit).
        if txn.recipients.len() >= self.config.limits.max_recipients {
            txn.overshoot += 1;
            if txn.overshoot > self.config.limits.recipient_overshoot {
                self.count_error();
            }
            return self.refuse(replies::TOO_MANY_RECIPIENTS);
        }
        let (to, params) = (to.into_owned(), params.into_owned());
        self.ask(Pending::Rcpt { to: to.clone() }, Event::Rcpt { to, params })
    }

    /// Checks common to DATA and BDAT; the reply to refuse with, if any.
    fn body_refusal(&self, verb: Verb) -> Option<Reply> {
        let Some(txn) = &self.txn else {
            return Some(replies::NEED_MAIL);
        };
        if let Some(r) = txn.chunks.failure() {
            return Some(r.clone());
        }
        if verb == Verb::Data && txn.body == Some(BodyType::BinaryMime) {
            // RFC 3030 §3: BINARYMIME bodies go only with BDAT.
            return Some(replies::BDAT_REQUIRED);
        }
        if verb == Verb::Data && txn.chunks.started() {
            return Some(replies::DATA_AFTER_BDAT);
        }
        if txn.recipients.is_empty() {
            return Some(if txn.rcpt_attempts == 0 {
                replies::NEED_RCPT
            } else {
                replies::NO_VALID_RECIPIENTS
            });
        }
        None
    }

    fn data(&mut self) -> Next {
        if let Some(r) = self.body_refusal(Verb::Data) {
            self.send(r);
            return self.violation(ProtocolError::BadSequence(Verb::Data));
        }
        self.send(replies::START_DATA);
        self.event(Event::MessageStart);
        let decoder = DataDecoder::new()
            .with_bare_line_endings(self.config.bare_line_endings)
            .with_long_lines(self.config.long_lines)
            .with_max_size(self.config.limits.max_message_size);
        Next::Data(decoder)
    }

    fn bdat(&mut self, size: u64, last: bool) -> Next {
        if !self.config.extensions.chunking {
            // The chunk that follows will be read as commands; they fail in turn and
            // the error limit ends the session. RFC 3030 gives no way to skip it.
            return self.not_implemented();
        }
        if let Some(r) = self.body_refusal(Verb::Bdat) {
            // RFC 3030 §2: the chunk is read and discarded, then refused.
            let Some(txn) = &mut self.txn else {
                return Next::Bdat(Chunk {
                    last,
                    refusal: Some(r),
                    outside: Some(BdatDecoder::discarding(size)),
                });
            };
            txn.bdat.discard_chunk(size);
            let was_receiving = matches!(txn.chunks, Chunks::Receiving);
            if txn.chunks.failure().is_none() {
                txn.chunks = Chunks::Failed {
                    reply: r.clone(),
                    started: was_receiving,
                };
            }
            if was_receiving {
                self.event(Event::MessageAborted {
                    reason: AbortReason::Bdat,
                });
            }
            return Next::Bdat(Chunk {
                last,
                refusal: Some(r),
                outside: None,
            });
        }
        let Some(txn) = &mut self.txn else {
            return Next::Command;
        };
        let first = !txn.chunks.started();
        txn.chunks = Chunks::Receiving;
        let started = txn.bdat.start_chunk(size, last);
        if first {
            self.event(Event::MessageStart);
        }
        // RFC 1870 with RFC 3030: over the limit, the chunk (and every later one) is
        // read and discarded, then refused.
        let refusal = match started {
            Ok(()) => None,
            Err(error) => {
                let r = error.reply();
                if let Some(txn) = &mut self.txn {
                    txn.chunks = Chunks::Failed {
                        reply: r.clone(),
                        started: true,
                    };
                }
                self.event(Event::MessageAborted {
                    reason: AbortReason::Data(error),
                });
                Some(r)
            }
        };
        Next::Bdat(Chunk {
            last,
            refusal,
            outside: None,
        })
    }

    fn starttls(&mut self) -> Next {
        if !self.config.extensions.starttls {
            return self.not_implemented();
        }
        if self.tls {
            self.send(replies::TLS_ALREADY_ACTIVE);
            return self.violation(ProtocolError::BadSequence(Verb::StartTls));
        }
        self.send(replies::READY_FOR_TLS);
        self.reset_quietly();
        Next::Tls
    }

    /// The mechanisms offered now: password mechanisms wait for TLS when required.
    pub(super) fn offered_mechanisms(&self) -> Vec<Mechanism> {
        self.config
            .extensions
            .auth
            .iter()
            .filter_map(|m| Mechanism::parse(m).ok())
            .filter(|m| self.tls || !self.config.auth_requires_tls || !m.sends_password_in_clear())
            .collect()
    }

    fn auth(&mut self, mechanism: &str, initial: Option<&[u8]>) -> Next {
        if self.config.extensions.auth.is_empty() {
            return self.not_implemented();
        }
        if !self.helo.as_ref().is_some_and(|h| h.0 != Verb::Helo) {
            return self.bad_sequence(Verb::Auth, replies::SEND_EHLO_FIRST);
        }
        if self.auth.is_some() {
            return self.bad_sequence(Verb::Auth, replies::ALREADY_AUTHENTICATED);
        }
        if self.txn.is_some() {
            return self.bad_sequence(Verb::Auth, replies::AUTH_IN_TRANSACTION);
        }
        let mech = match Mechanism::parse(mechanism) {
            Ok(m)
                if self
                    .config
                    .extensions
                    .auth
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(m.as_str())) =>
            {
                m
            }
            _ => return self.refuse(replies::UNKNOWN_MECHANISM),
        };
        if !self.offered_mechanisms().contains(&mech) {
            // RFC 4954 §6: 538 when the mechanism needs an encrypted channel first.
            return self.refuse(replies::ENCRYPTION_REQUIRED);
        }
        if mech == Mechanism::CramMd5 && initial.is_none() {
            return self.ask(
                Pending::Challenge,
                Event::AuthChallengeNeeded { mechanism: mech },
            );
        }
        let (exchange, step) = ServerExchange::start(mech, initial, String::new);
        self.auth_step(exchange, step, None)
    }

    /// The EHLO/LHLO reply: extensions allowed in the current state.
    pub(super) fn ehlo_reply(&self) -> Reply {
        let ext = &self.config.extensions;
        // The hostname was checked when the configuration was built.
        let Ok(mut caps) = Capabilities::new(self.config.hostname.clone()) else {
            return replies::helo(&self.config.hostname);
        };
        caps.pipelining = ext.pipelining;
        caps.size = Some(self.config.limits.max_message_size);
        caps.vrfy = ext.vrfy;
        caps.etrn = ext.etrn;
        caps.starttls = ext.starttls && !self.tls;
        for mechanism in self.offered_mechanisms() {
            let _ = caps.add_auth(mechanism.as_str());
        }
        caps.enhanced_status_codes = ext.enhanced_status_codes;
        caps.eight_bit_mime = ext.eight_bit_mime;
        caps.dsn = ext.dsn;
        caps.smtputf8 = ext.smtputf8;
        caps.chunking = ext.chunking;
        // RFC 3030 §3: BINARYMIME only with CHUNKING.
        caps.binary_mime = ext.chunking && ext.binary_mime;
        // RFC 8689 §4: REQUIRETLS only over TLS.
        caps.requiretls = ext.requiretls && self.tls;
        let _ = caps.set_mt_priority(ext.mt_priority.then_some(None));
        caps.deliver_by = ext.deliver_by.then_some(None);
        caps.help = ext.help;
        caps.to_reply()
    }

    // ---- answers that keep reading commands ---------------------------------------------

    /// A refusal that is not the client's error (a policy or a limit).
    fn refuse(&mut self, reply: Reply) -> Next {
        self.send(reply);
        Next::Command
    }

    /// A client error: reported and counted.
    pub(super) fn violation(&mut self, error: ProtocolError) -> Next {
        self.event(Event::ProtocolError(error));
        self.count_error();
        Next::Command
    }

    fn bad_sequence(&mut self, verb: Verb, reply: Reply) -> Next {
        self.send(reply);
        self.violation(ProtocolError::BadSequence(verb))
    }

    fn not_implemented(&mut self) -> Next {
        self.send(replies::NOT_IMPLEMENTED);
        self.violation(ProtocolError::UnknownCommand)
    }

    fn unsupported_param(&mut self, name: &str) -> Next {
        self.send(replies::unsupported_option(name));
        self.violation(ProtocolError::Command(CommandError::Param {
            verb: Verb::Mail,
            keyword: name.to_owned(),
            error: crate::ParamError::Syntax,
        }))
    }

    /// Synchronization errors and STARTTLS injection end the session.
    fn fatal(&mut self, error: ProtocolError) -> Next {
        let event = Event::ProtocolError(error);
        self.end_session(Some(replies::SYNCHRONIZATION), Some(event))
    }
}

/// RFC 5321 §4.1.1.11: the first parameter of an extension not offered (`typed` pairs a
/// keyword with "sent but not offered"), or unknown to the host's `extra_params`.
fn first_unsupported(
    typed: &[(&str, bool)],
    other: &[crate::Param<'_>],
    ext: &Extensions,
) -> Option<String> {
    if let Some((name, _)) = typed.iter().find(|(_, bad)| *bad) {
        return Some((*name).to_owned());
    }
    other
        .iter()
        .find(|p| {
            !ext.extra_params
                .iter()
                .any(|e| e.eq_ignore_ascii_case(p.keyword()))
        })
        .map(|p| p.keyword().to_ascii_uppercase())
}

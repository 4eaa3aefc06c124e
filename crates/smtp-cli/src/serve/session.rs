//! One session's handler logic, shared by the tokio and the blocking hosts: the methods
//! of the adapters' `SessionHandler` traits, synchronous. The ones that may reach the disk say
//! so first (`*_blocks`), for the tokio host to run them off its reactor threads.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use smtp_proto::sasl::Credentials;
use smtp_proto::server::{self, Anvil, Refusal};
use smtp_proto::{ForwardPath, MailParams, RcptParams, Reply, ReversePath};
use smtp_relay::headers::HeaderScan;
use smtp_relay::spool::{Envelope, Recipient};

use super::relay::DomainCheck;
use super::verify::{Checked, Job, SenderAuth, Spf, SpfQuery, Verifier};
use crate::delivery::{Message, NewMessage, Relayed, Store};
use crate::dkim::Signers;
use crate::policy::{Destination, Policy, Verdict};

/// What every session shares.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) store: Store,
    /// `--check-recipient-domain`.
    pub(crate) domain_check: Option<DomainCheck>,
    /// Connections and AUTH failures per client.
    pub(crate) anvil: Mutex<Anvil>,
    /// `--verify`.
    pub(crate) verifier: Option<Arc<Verifier>>,
    /// `--dkim-sign`.
    pub(crate) signers: Arc<Signers>,
}

impl Shared {
    fn anvil(&self) -> MutexGuard<'_, Anvil> {
        // The counts stay usable if a session thread panicked holding the lock.
        self.anvil.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One session's state: the client, the transaction's parameters, and the message
/// being received.
pub(crate) struct Session {
    shared: Arc<Shared>,
    client: IpAddr,
    /// The relay queue's envelope from MAIL (no recipients yet).
    mail: Option<Envelope>,
    /// The recipients accepted in this transaction, as the relay queue keeps them.
    rcpts: Vec<(ForwardPath<'static>, Recipient)>,
    message: Option<Message>,
    /// The message's header section as it streams: `Received:` lines counted.
    scan: HeaderScan,
    /// LMTP: the message was refused for too many hops.
    looped: bool,
    /// `--verify` and `--dkim-sign`.
    sender_auth: SenderAuth,
    /// LMTP: the message was refused by the checks (`--dmarc-reject`).
    refused: Option<Verdict>,
}

/// A message that has been through too many hops (RFC 5321 §6.3; Postfix's
/// `hopcount_limit`).
const TOO_MANY_HOPS: Verdict = Verdict::Reject(Refusal::constant(Reply::fixed(
    554,
    Some((5, 4, 6)),
    "Too many hops",
)));

impl Session {
    /// A new connection from `client`, or the reply refusing it (too many connections
    /// from that client).
    pub(crate) fn connect(shared: Arc<Shared>, client: IpAddr) -> Result<Session, Reply> {
        shared.anvil().connect(client, Instant::now())?;
        Ok(Session {
            shared,
            client,
            mail: None,
            rcpts: Vec::new(),
            message: None,
            scan: HeaderScan::new(),
            looped: false,
            sender_auth: SenderAuth::default(),
            refused: None,
        })
    }

    /// MAIL, for the blocking host: SPF, then [`Session::mail_checked`].
    pub(crate) fn mail(
        &mut self,
        session: &server::Session,
        from: &ReversePath<'_>,
        params: &MailParams<'_>,
    ) -> Verdict {
        let spf = self
            .spf_query(session, from)
            .map(|(verifier, query)| verifier.spf_blocking(query));
        self.mail_checked(session, from, params, spf)
    }

    /// MAIL, first half: what SPF is to check (`--verify`, a client that did not AUTH).
    pub(crate) fn spf_query(
        &self,
        session: &server::Session,
        from: &ReversePath<'_>,
    ) -> Option<(Arc<Verifier>, SpfQuery)> {
        let verifier = self.shared.verifier.as_ref()?;
        if session.authenticated().is_some() {
            return None;
        }
        let query = SpfQuery::new(self.client, session.helo().map(|(_, h)| h), from);
        Some((Arc::clone(verifier), query))
    }

    /// MAIL, second half: `--spf-reject`, then a new transaction; its SPF results and
    /// parameters are kept.
    pub(crate) fn mail_checked(
        &mut self,
        session: &server::Session,
        from: &ReversePath<'_>,
        params: &MailParams<'_>,
        spf: Option<Spf>,
    ) -> Verdict {
        if let (Some(verifier), Some(spf)) = (&self.shared.verifier, &spf)
            && let Some(refused) = verifier.spf_verdict(spf)
        {
            tracing::info!(client = %self.client, from = %from, "MAIL refused: SPF fail");
            return refused;
        }
        self.sender_auth
            .mail(spf, session.authenticated().is_some());
        self.rcpts.clear();
        let from = from.mailbox().map_or_else(String::new, |m| m.to_string());
        self.mail = Some(Envelope {
            body: params.body.map(|b| b.as_str().to_owned()),
            smtputf8: params.smtputf8,
            ret: params.ret.map(|r| {
                match r {
                    smtp_proto::params::Ret::Full => "FULL",
                    smtp_proto::params::Ret::Hdrs => "HDRS",
                }
                .to_owned()
            }),
            envid: params.envid.as_ref().map(|e| e.as_str().to_owned()),
            requiretls: params.requiretls,
            ..envelope(from)
        });
        Verdict::Accept
    }

    /// RCPT, first half: relay control. `Ok(Some((check, domain)))`: the recipient is
    /// relayed and its domain is to be looked up first (`--check-recipient-domain`),
    /// then [`Session::rcpt_accept`]; `Ok(None)`: accept it now.
    pub(crate) fn rcpt_policy(
        &self,
        session: &server::Session,
        to: &ForwardPath<'static>,
    ) -> Result<Option<(DomainCheck, String)>, Verdict> {
        let verdict = self.shared.policy.rcpt(session, self.client, to);
        if !verdict.is_accept() {
            return Err(verdict);
        }
        let relayed = self.shared.policy.destination(to) == Destination::Relay;
        Ok(match (&self.shared.domain_check, to.mailbox()) {
            (Some(check), Some(m)) if relayed => Some((check.clone(), m.host().to_string())),
            _ => None,
        })
    }

    /// RCPT, for the blocking host: relay control, the domain check, and the recipient
    /// kept.
    pub(crate) fn rcpt(
        &mut self,
        session: &server::Session,
        to: &ForwardPath<'static>,
        params: &RcptParams<'_>,
    ) -> Verdict {
        match self.rcpt_policy(session, to) {
            Err(refused) => refused,
            Ok(Some((check, domain))) => match check.check_blocking(&domain) {
                Some(refused) => refused,
                None => self.rcpt_accept(to, params),
            },
            Ok(None) => self.rcpt_accept(to, params),
        }
    }

    /// RCPT, second half: the recipient is accepted; its DSN parameters are kept.
    pub(crate) fn rcpt_accept(
        &mut self,
        to: &ForwardPath<'static>,
        params: &RcptParams<'_>,
    ) -> Verdict {
        let verdict = Verdict::Accept;
        if let Some(m) = to.mailbox() {
            let notify = params.notify.map(|n| {
                let words = [
                    (n.success, "SUCCESS"),
                    (n.failure, "FAILURE"),
                    (n.delay, "DELAY"),
                ];
                let list: Vec<&str> = words.iter().filter(|w| w.0).map(|w| w.1).collect();
                if list.is_empty() {
                    "NEVER".to_owned()
                } else {
                    list.join(",")
                }
            });
            let orcpt = params
                .orcpt
                .as_ref()
                .map(|o| format!("{};{}", o.addr_type(), o.addr().as_str()));
            self.rcpts.push((
                to.clone(),
                Recipient {
                    address: m.to_string(),
                    notify,
                    orcpt,
                },
            ));
        }
        verdict
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

    /// The first half of the message start: its id and head, from the session, and which
    /// recipients are stored and which relayed, and whether it is signed. No I/O.
    pub(crate) fn prepare(&mut self, session: &server::Session) -> NewMessage {
        let policy = &self.shared.policy;
        let mut local = Vec::new();
        let mut relayed = Relayed {
            envelope: self.mail.clone().unwrap_or_else(|| envelope(String::new())),
            recipients: Vec::new(),
        };
        for to in session.recipients() {
            match policy.destination(to) {
                Destination::Local => local.push(to.clone()),
                Destination::Relay if relayed.recipients.contains(to) => {}
                Destination::Relay => {
                    // Every accepted RCPT is recorded; without its parameters otherwise.
                    let queued = self.rcpts.iter().find(|(path, _)| path == to).map_or_else(
                        || Recipient::new(to.mailbox().map_or_else(String::new, |m| m.to_string())),
                        |(_, r)| r.clone(),
                    );
                    relayed.envelope.recipients.push(queued);
                    relayed.recipients.push(to.clone());
                }
            }
        }
        // DKIM signing: what leaves through the relay, and what AUTH clients submit.
        let sign = !self.shared.signers.is_empty()
            && (self.sender_auth.authenticated() || !relayed.recipients.is_empty());
        self.sender_auth.start(self.shared.verifier.is_some(), sign);
        self.shared.store.prepare(session, &local, Some(relayed))
    }

    /// The second half: opens storage; blocking when [`NewMessage::open_blocks`].
    pub(crate) fn open(&mut self, new: NewMessage) {
        self.scan = HeaderScan::new();
        self.looped = false;
        self.refused = None;
        self.message = Some(self.shared.store.open(new));
    }

    pub(crate) fn chunk_blocks(&self, len: usize) -> bool {
        !self.sender_auth.holds() && self.message.as_ref().is_some_and(|m| m.write_blocks(len))
    }

    pub(crate) fn chunk(&mut self, chunk: &[u8]) {
        self.scan.feed(chunk);
        if !self.sender_auth.hold(chunk)
            && let Some(m) = &mut self.message
        {
            m.write(chunk);
        }
    }

    /// Whether ending or aborting the message reaches the disk.
    pub(crate) fn end_blocks(&self) -> bool {
        self.message.as_ref().is_some_and(Message::finish_blocks)
    }

    /// End of data, `--verify`: the checks to run, unless they ran; then
    /// [`Session::verified`].
    pub(crate) fn verify_job(&mut self) -> Option<Job> {
        if self.scan.too_many_hops() {
            return None;
        }
        self.sender_auth.job(self.shared.verifier.as_ref())
    }

    /// The checks ran: the message comes back with their outcome.
    pub(crate) fn verified(&mut self, message: Vec<u8>, checked: Checked) {
        self.sender_auth.verified(message, checked);
    }

    /// For the blocking host: the checks, if they are to run.
    fn verify_blocking(&mut self) {
        if let Some(job) = self.verify_job() {
            let (message, checked) = job.run_blocking();
            self.verified(message, checked);
        }
    }

    /// Writes the held message after the fields that go before it; `Some`: the checks
    /// refused it (`--dmarc-reject`), and its files go.
    fn write_held(&mut self) -> Option<Verdict> {
        let shared = &self.shared;
        match self
            .sender_auth
            .release(shared.verifier.as_deref(), &shared.signers)
        {
            Ok(None) => None,
            Ok(Some((head, message))) => {
                if let Some(m) = &mut self.message {
                    m.write(head.as_bytes());
                    m.write(&message);
                }
                None
            }
            Err(refused) => {
                let id = self.message.as_ref().map(|m| m.id().to_owned());
                tracing::info!(id = id.as_deref().unwrap_or(""), "refused: DMARC policy");
                self.message = None;
                Some(refused)
            }
        }
    }

    /// SMTP end of data: stores the message and says what to reply.
    pub(crate) fn end(&mut self) -> Verdict {
        if self.scan.too_many_hops() {
            self.refuse_loop();
            return TOO_MANY_HOPS;
        }
        self.verify_blocking();
        if let Some(refused) = self.write_held() {
            return refused;
        }
        match self.message.take() {
            Some(mut m) => {
                let verdict = m.finish();
                self.report_delivered(&m);
                verdict
            }
            None => Message::missing(),
        }
    }

    /// A message with too many `Received:` lines: its files go (nothing was committed).
    fn refuse_loop(&mut self) {
        let id = self.message.as_ref().map(|m| m.id().to_owned());
        tracing::info!(
            id = id.as_deref().unwrap_or(""),
            received = self.scan.received(),
            "refused: too many hops"
        );
        self.message = None;
        self.sender_auth.drop_message();
        self.looped = true;
    }

    /// The success reports the stored copies call for (`NOTIFY=SUCCESS`).
    fn report_delivered(&self, m: &Message) {
        let Some(mail) = &self.mail else { return };
        let delivered: Vec<Recipient> = m
            .stored()
            .filter_map(|to| self.rcpts.iter().find(|(p, _)| p == to))
            .map(|(_, r)| r.clone())
            .collect();
        if !delivered.is_empty() {
            self.shared
                .store
                .report_delivered(m.id(), mail, &delivered, self.scan.header());
        }
    }

    /// LMTP end of data: stores the message, each file on its own.
    pub(crate) fn lmtp_end(&mut self) {
        if self.scan.too_many_hops() {
            self.refuse_loop();
            return;
        }
        self.verify_blocking();
        if let Some(refused) = self.write_held() {
            self.refused = Some(refused);
            return;
        }
        if let Some(mut m) = self.message.take() {
            m.finish_lmtp();
            self.report_delivered(&m);
            self.message = Some(m);
        }
    }

    /// LMTP: the reply for recipient `to`.
    pub(crate) fn lmtp_delivery(&self, to: &ForwardPath<'_>) -> Verdict {
        if self.looped {
            return TOO_MANY_HOPS;
        }
        if let Some(refused) = &self.refused {
            return refused.clone();
        }
        self.message
            .as_ref()
            .map_or_else(Message::missing, |m| m.lmtp_verdict(to))
    }

    /// The message will not be accepted: its file in `tmp/` is removed.
    pub(crate) fn aborted(&mut self) {
        self.sender_auth.drop_message();
        self.message = None;
    }
}

/// A relay queue envelope from `from`, without parameters or recipients.
fn envelope(from: String) -> Envelope {
    Envelope {
        id: String::new(),
        from,
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
        requiretls: false,
        recipients: Vec::new(),
        arrived: 0,
        size: 0,
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        crate::metrics::disconnected();
        self.shared.anvil().disconnect(self.client);
    }
}

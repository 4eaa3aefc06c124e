//! What becomes of an accepted message, whatever the adapter: its queue id, the lines put
//! before it (`Return-Path:`, `Delivered-To:`, `Received:`), its Maildir file (or one file
//! per recipient with `--maildir-per-recipient`) for the local recipients, its entry in
//! the relay queue for the others, and the reply to the end of its data.
//!
//! Synchronous code. Every call that may touch the disk has a companion that says whether
//! it will (`*_blocks`), so that the tokio host runs only those on its blocking pool and
//! the blocking host simply calls them.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use smtp_proto::server::{Refusal, Session};
use smtp_proto::{EnhancedCode, ForwardPath, Reply};
use smtp_relay::dsn::{Report, Return};
use smtp_relay::engine::{LocalDelivery, submit_report};
use smtp_relay::notify::{self, Wants};
use smtp_relay::spool::{Envelope, FsWriter, Recipient, unix_secs};
use smtp_relay::{FsStore, RelayHandle, SpoolWriter as _, Store as _};
use tracing::{debug, error, info, warn};

use smtp_relay::date::rfc5322 as rfc5322_date;

use crate::maildir::{BUFFER, Delivery, Maildir, mailbox_path};
use crate::policy::Verdict;

/// Where messages go: a Maildir (one for all, or one per recipient), or nowhere
/// (`--discard`), for local recipients; the relay queue for the others; and the
/// queue-id counter.
pub(crate) struct Store {
    maildir: Option<Arc<Maildir>>,
    queue: Option<Queue>,
    /// The server's name: the domain of `<Postmaster>`'s Maildir, and the reports'.
    hostname: String,
    seq: AtomicU64,
    /// Where reports to local senders go.
    mailboxes: Arc<LocalMailboxes>,
}

/// The Maildir as the relay sees it: a report to a sender at a `--local-domain` is
/// stored there (from `<>`), not relayed.
#[derive(Debug)]
pub(crate) struct LocalMailboxes {
    maildir: Option<Arc<Maildir>>,
    /// Lower case, no trailing dot.
    domains: Vec<String>,
}

impl LocalMailboxes {
    /// `None`: `--discard` (a report to a local sender is dropped, as its mail would be).
    pub(crate) fn new(maildir: Option<Arc<Maildir>>, domains: &[String]) -> LocalMailboxes {
        LocalMailboxes {
            maildir,
            domains: domains
                .iter()
                .map(|d| crate::policy::normalize(d))
                .collect(),
        }
    }
}

impl LocalDelivery for LocalMailboxes {
    fn is_local(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, domain)| self.domains.contains(&crate::policy::normalize(domain)))
    }

    fn store(&self, address: &str, message: &[u8]) -> io::Result<()> {
        let Some(maildir) = &self.maildir else {
            info!(to = %address, "report discarded (--discard)");
            return Ok(());
        };
        let mailbox = match address.rsplit_once('@') {
            Some((local, domain)) if maildir.per_recipient() => Some(mailbox_path(domain, local)),
            _ => None,
        };
        let head = format!("Return-Path: <>\r\nDelivered-To: <{address}>\r\n");
        let mut d = maildir.begin_in(mailbox.as_deref(), head.as_bytes(), BUFFER)?;
        d.write(message)?;
        let file = d.commit()?;
        info!(to = %address, %file, "report stored");
        Ok(())
    }
}

/// The relay queue as the server writes to it, and the relay to tell.
#[derive(Clone, Debug)]
pub(crate) struct Queue {
    pub(crate) store: FsStore,
    pub(crate) handle: RelayHandle,
}

/// What the session says of a message's relayed recipients: the envelope (without its
/// id and arrival, which [`Store::prepare`] sets) and the paths it was given.
pub(crate) struct Relayed {
    pub(crate) envelope: Envelope,
    pub(crate) recipients: Vec<ForwardPath<'static>>,
}

/// A message about to be opened: its id and, when it is stored, the files to write.
/// Built from the session without I/O.
pub(crate) struct NewMessage {
    id: String,
    copies: Vec<NewCopy>,
    queued: Option<NewQueued>,
}

/// A message's entry in the relay queue, about to be opened.
struct NewQueued {
    queue: Queue,
    envelope: Envelope,
    head: Vec<u8>,
    recipients: Vec<ForwardPath<'static>>,
}

/// One file of a message: the recipient's Maildir (`None`: the one Maildir), the lines
/// put before the message, and the recipients whose copy it is.
struct NewCopy {
    mailbox: Option<PathBuf>,
    head: Vec<u8>,
    recipients: Vec<ForwardPath<'static>>,
}

impl NewMessage {
    /// Whether [`Store::open`] will touch the disk.
    pub(crate) fn open_blocks(&self) -> bool {
        !self.copies.is_empty() || self.queued.is_some()
    }
}

impl Store {
    /// `None`: `--discard`; `queue`: relaying is configured.
    pub(crate) fn new(
        maildir: Option<Arc<Maildir>>,
        queue: Option<Queue>,
        hostname: &str,
        mailboxes: Arc<LocalMailboxes>,
    ) -> Store {
        Store {
            maildir,
            queue,
            hostname: hostname.to_owned(),
            seq: AtomicU64::new(0),
            mailboxes,
        }
    }

    /// After local recipients' copies were stored: a success report (`Action:
    /// delivered`) to the sender for those that asked `NOTIFY=SUCCESS` (RFC 3461 §4.1),
    /// stored here when the sender is local, else queued from `<>`. `original` is the
    /// message's header section. Blocking (it writes the report).
    pub(crate) fn report_delivered(
        &self,
        id: &str,
        mail: &Envelope,
        delivered: &[Recipient],
        original: &[u8],
    ) {
        if mail.from.is_empty() {
            return; // RFC 3461 §6.2: never about a message from <>
        }
        let recipients: Vec<_> = delivered
            .iter()
            .filter(|r| Wants::parse(r.notify.as_deref()).success)
            .map(notify::delivered)
            .collect();
        if recipients.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let report = Report {
            hostname: &self.hostname,
            sender: &mail.from,
            queue_id: id,
            envid: mail.envid.as_deref(),
            arrived: now,
            smtputf8: mail.smtputf8,
            ret: Return::Headers,
            recipients,
            original,
        };
        let composed = report.compose(now, &format!("{id}D{}", getrandom::u32().unwrap_or(0)));
        let sent = match &self.queue {
            Some(q) => submit_report(
                &q.store,
                Some(&*self.mailboxes),
                &mail.from,
                &composed,
                mail.requiretls,
            )
            .map(|queued| {
                if let Some(report) = queued {
                    info!(%id, %report, to = %mail.from, "success report queued");
                    q.handle.queued(&report);
                }
            }),
            None if self.mailboxes.is_local(&mail.from) => {
                self.mailboxes.store(&mail.from, &composed.message)
            }
            None => {
                warn!(%id, to = %mail.from, "success report not sent: relaying is not configured");
                Ok(())
            }
        };
        if let Err(e) = sent {
            error!(%id, to = %mail.from, error = %e, "cannot send a success report");
        }
    }

    /// A queue id for `Received:`, the 250 reply and the relay queue: seconds,
    /// microseconds, a counter and a random number, in hex. The counter keeps ids
    /// unique within a run, the time and the random number across restarts (a queue
    /// entry that exists already is refused, never replaced).
    fn queue_id(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) & 0xFFFF;
        let random = getrandom::u32().unwrap_or(0) & 0xFFFF;
        format!(
            "{:X}{:05X}{seq:04X}{random:04X}",
            now.as_secs(),
            now.subsec_micros()
        )
    }

    /// The message the session is about to receive (its reverse-path and recipients are
    /// final): Maildir files for the `local` recipients, a queue entry for the
    /// `relayed` ones. No I/O. With a Maildir per recipient, each distinct recipient gets
    /// a copy with only its own `Delivered-To:`, so that no copy shows the others (Bcc).
    pub(crate) fn prepare(
        &self,
        session: &Session,
        local: &[ForwardPath<'static>],
        relayed: Option<Relayed>,
    ) -> NewMessage {
        let id = self.queue_id();
        let now = SystemTime::now();
        let queued = match (relayed, &self.queue) {
            (Some(r), Some(queue)) if !r.recipients.is_empty() => {
                let mut envelope = r.envelope;
                envelope.id = id.clone();
                envelope.arrived = unix_secs(now);
                Some(NewQueued {
                    queue: queue.clone(),
                    envelope,
                    head: received(session, &r.recipients, &id, now).into_bytes(),
                    recipients: r.recipients,
                })
            }
            _ => None,
        };
        let copies = match &self.maildir {
            None => Vec::new(),
            Some(_) if local.is_empty() => Vec::new(),
            Some(m) if m.per_recipient() => {
                let mut copies: Vec<NewCopy> = Vec::new();
                for to in local {
                    if copies.iter().any(|c| c.recipients.contains(to)) {
                        continue; // the same address twice: one copy
                    }
                    let (domain, local) = match to.mailbox() {
                        Some(m) => (m.host().to_string(), m.local_part()),
                        // RFC 5321 §4.1.1.3: <Postmaster> is this server's.
                        None => (self.hostname.clone(), "postmaster"),
                    };
                    let to = std::slice::from_ref(to);
                    copies.push(NewCopy {
                        mailbox: Some(mailbox_path(&domain, local)),
                        head: prefix(session, to, &id, now).into_bytes(),
                        recipients: to.to_vec(),
                    });
                }
                copies
            }
            Some(_) => vec![NewCopy {
                mailbox: None,
                head: prefix(session, local, &id, now).into_bytes(),
                recipients: local.to_vec(),
            }],
        };
        NewMessage { id, copies, queued }
    }

    /// Opens the message's files in `tmp/` and writes their heads; blocking when
    /// [`NewMessage::open_blocks`]. A failure is remembered for the end of data.
    pub(crate) fn open(&self, new: NewMessage) -> Message {
        // Many copies share the memory one file would have for its buffer.
        let buffer = (BUFFER / new.copies.len().max(1)).max(8 * 1024);
        let copies = new
            .copies
            .into_iter()
            .map(|c| {
                let begun = self
                    .maildir
                    .as_ref()
                    .map(|m| m.begin_in(c.mailbox.as_deref(), &c.head, buffer));
                let (delivery, error) = match begun {
                    Some(Ok(d)) => (Some(d), None),
                    Some(Err(e)) => (None, Some(e)),
                    None => (None, None),
                };
                Copy {
                    mailbox: c.mailbox,
                    recipients: c.recipients,
                    delivery,
                    error,
                    stored: false,
                }
            })
            .collect();
        let queued = new.queued.map(|q| {
            let begun = q.queue.store.create(&q.envelope).and_then(|mut w| {
                w.write_all(&q.head)?;
                Ok(w)
            });
            let (writer, error) = match begun {
                Ok(w) => (Some(w), None),
                Err(e) => (None, Some(e)),
            };
            Queued {
                queue: q.queue,
                recipients: q.recipients,
                writer,
                error,
                buffered: q.head.len(),
                committed: false,
            }
        });
        Message {
            id: new.id,
            copies,
            queued,
            outcome: None,
        }
    }
}

/// The lines `smtp serve` puts before a stored message, each ending in CRLF: the
/// `Return-Path:`, one `Delivered-To:` per recipient of this copy, then the session's
/// `Received:` header with the queue id and `now`.
pub(crate) fn prefix(
    session: &Session,
    recipients: &[ForwardPath<'static>],
    id: &str,
    now: SystemTime,
) -> String {
    let mut head = String::new();
    if let Some(from) = session.reverse_path() {
        head.push_str(&format!("Return-Path: {from}\r\n"));
    }
    for to in recipients {
        head.push_str(&format!("Delivered-To: {to}\r\n"));
    }
    head.push_str(&received(session, recipients, id, now));
    head
}

/// The session's `Received:` header with the queue id and `now`; a copy for one
/// recipient says whom it is for (a copy per recipient included).
fn received(
    session: &Session,
    recipients: &[ForwardPath<'static>],
    id: &str,
    now: SystemTime,
) -> String {
    match recipients {
        [only] => session.received_header_for(id, &rfc5322_date(now), only),
        _ => session.received_header(id, &rfc5322_date(now)),
    }
}

/// The message being received.
pub(crate) struct Message {
    id: String,
    /// Its files; none when discarding or when no recipient is local.
    copies: Vec<Copy>,
    /// Its relay queue entry, when some recipients are relayed.
    queued: Option<Queued>,
    /// The outcome for every recipient together, once decided: SMTP, or `--discard`.
    outcome: Option<bool>,
}

/// One file of the message being received.
struct Copy {
    mailbox: Option<PathBuf>,
    recipients: Vec<ForwardPath<'static>>,
    /// `None` after a storage error or once finished.
    delivery: Option<Delivery>,
    /// The first storage error; the copy then fails.
    error: Option<io::Error>,
    /// In `new/`, fsynced.
    stored: bool,
}

/// The queue entry of the message being received.
struct Queued {
    queue: Queue,
    recipients: Vec<ForwardPath<'static>>,
    /// `None` after an error or once committed.
    writer: Option<FsWriter>,
    /// The first error; the entry then fails.
    error: Option<io::Error>,
    /// Octets in the writer's buffer, as far as can be told: a write that overflows it
    /// reaches the disk.
    buffered: usize,
    /// Committed: in `msg/`, fsynced.
    committed: bool,
}

/// The queue writer's buffer (`FsStore`'s).
const QUEUE_BUFFER: usize = 64 * 1024;

impl Queued {
    fn write(&mut self, chunk: &[u8]) {
        if let Some(w) = &mut self.writer
            && let Err(e) = w.write_all(chunk)
        {
            self.error = Some(e);
            self.writer = None;
        }
        self.buffered = if self.buffered + chunk.len() <= QUEUE_BUFFER {
            self.buffered + chunk.len()
        } else if chunk.len() < QUEUE_BUFFER {
            chunk.len()
        } else {
            0
        };
    }

    /// Makes the entry durable; logs and remembers the outcome.
    fn commit(&mut self, id: &str) -> bool {
        if let Some(e) = self.error.take() {
            error!(%id, error = %e, "queueing for relay failed");
            self.writer = None;
            return false;
        }
        let Some(w) = self.writer.take() else {
            return false;
        };
        match w.commit() {
            Ok(()) => {
                let to: Vec<String> = self.recipients.iter().map(|r| r.to_string()).collect();
                info!(%id, to = %to.join(","), "message queued for relay");
                self.committed = true;
            }
            Err(e) => error!(%id, error = %e, "queueing for relay failed"),
        }
        self.committed
    }

    /// Hands the committed entry to the relay.
    fn announce(&self, id: &str) {
        if self.committed {
            self.queue.handle.queued(id);
        }
    }

    /// Takes back a committed entry that will not be acknowledged (its relay was not
    /// told yet).
    fn withdraw(&mut self, id: &str) {
        if self.committed {
            if let Err(e) = self.queue.store.remove(id) {
                error!(%id, error = %e, "cannot remove a queue entry");
            }
            self.committed = false;
        }
    }
}

impl Copy {
    /// Logs and forgets a storage error, if any; whether there was none.
    fn check(&mut self, id: &str) -> bool {
        match self.error.take() {
            Some(e) => {
                self.log_error(id, &e);
                false
            }
            None => true,
        }
    }

    fn log_error(&self, id: &str, e: &io::Error) {
        match &self.mailbox {
            Some(m) => error!(%id, mailbox = %m.display(), error = %e, "storage failed"),
            None => error!(%id, error = %e, "storage failed"),
        }
    }

    /// Renames the (fsynced) file into `new/`; remembers and logs the outcome.
    fn commit(&mut self, id: &str) -> bool {
        let Some(d) = self.delivery.take() else {
            return false;
        };
        match d.commit() {
            Ok(file) => {
                match &self.mailbox {
                    Some(m) => info!(%id, mailbox = %m.display(), %file, "message stored"),
                    None => info!(%id, %file, "message stored"),
                }
                self.stored = true;
            }
            Err(e) => self.log_error(id, &e),
        }
        self.stored
    }
}

impl Message {
    /// The queue id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The local recipients whose copy is stored in `new/`.
    pub(crate) fn stored(&self) -> impl Iterator<Item = &ForwardPath<'static>> {
        self.copies
            .iter()
            .filter(|c| c.stored)
            .flat_map(|c| c.recipients.iter())
    }

    /// Whether [`Message::write`] of `len` bytes will touch the disk.
    pub(crate) fn write_blocks(&self, len: usize) -> bool {
        self.copies
            .iter()
            .any(|c| c.delivery.as_ref().is_some_and(|d| !d.buffers(len)))
            || self
                .queued
                .as_ref()
                .is_some_and(|q| q.writer.is_some() && q.buffered + len > QUEUE_BUFFER)
    }

    /// Appends a piece of the body to every file; a failure is remembered for the end of
    /// data.
    pub(crate) fn write(&mut self, chunk: &[u8]) {
        for copy in &mut self.copies {
            if let Some(d) = &mut copy.delivery
                && let Err(e) = d.write(chunk)
            {
                copy.error = Some(e);
                copy.delivery = None;
            }
        }
        if let Some(q) = &mut self.queued {
            q.write(chunk);
        }
    }

    /// Whether [`Message::finish`] (or dropping the message) will touch the disk.
    pub(crate) fn finish_blocks(&self) -> bool {
        self.copies.iter().any(|c| c.delivery.is_some())
            || self.queued.as_ref().is_some_and(|q| q.writer.is_some())
    }

    /// SMTP: stores the message (or drops it with `--discard`) and queues it for its
    /// relayed recipients, and returns the reply to the end of its data: `250 2.0.0 Ok:
    /// queued as <id>` once every file is in `new/` and the queue entry in the queue,
    /// `451 4.3.0` otherwise. Every file is fsynced in `tmp/` before the queue entry is
    /// committed and before any file is moved into `new/`, so that a failure to write one
    /// leaves none stored (no duplicates when the client tries again).
    pub(crate) fn finish(&mut self) -> Verdict {
        let stored = self.store_all();
        self.outcome = Some(stored);
        if stored {
            queued(&self.id)
        } else {
            storage_failure()
        }
    }

    fn store_all(&mut self) -> bool {
        if self.copies.is_empty() && self.queued.is_none() {
            // At debug: the session's summary line says it at info (queue id included).
            debug!(id = %self.id, "message discarded");
            return true;
        }
        let id = &self.id;
        let mut written = true;
        for copy in &mut self.copies {
            if let (true, Some(d)) = (copy.check(id), &mut copy.delivery) {
                if let Err(e) = d.sync() {
                    copy.log_error(id, &e);
                    written = false;
                }
            } else {
                written = false;
            }
        }
        if !written {
            // Dropping the deliveries removes their files from tmp/.
            self.copies.clear();
            self.queued = None;
            return false;
        }
        if let Some(q) = &mut self.queued
            && !q.commit(id)
        {
            self.copies.clear();
            return false;
        }
        let mut stored = true;
        for copy in &mut self.copies {
            stored &= copy.commit(id);
        }
        if let Some(q) = &mut self.queued {
            if stored {
                q.announce(id);
            } else {
                // 451: the client sends it again, so the relayed copy goes too.
                q.withdraw(id);
            }
        }
        stored
    }

    /// LMTP end of data (RFC 2033 §4.2): stores each file on its own, so that each
    /// recipient's reply says what became of its own copy.
    pub(crate) fn finish_lmtp(&mut self) {
        if self.copies.is_empty() && self.queued.is_none() {
            self.outcome = Some(self.store_all());
            return;
        }
        let id = &self.id;
        for copy in &mut self.copies {
            if copy.check(id) {
                copy.commit(id);
            } else {
                copy.delivery = None;
            }
        }
        if let Some(q) = &mut self.queued
            && q.commit(id)
        {
            q.announce(id);
        }
    }

    /// LMTP: the reply for recipient `to`, from the file that holds its copy.
    pub(crate) fn lmtp_verdict(&self, to: &ForwardPath<'_>) -> Verdict {
        let relayed = self
            .queued
            .as_ref()
            .filter(|q| q.recipients.iter().any(|r| r == to));
        let stored = match (self.outcome, relayed) {
            (Some(outcome), _) => outcome,
            (None, Some(q)) => q.committed,
            // Local with --discard.
            (None, None) if self.copies.is_empty() => true,
            (None, None) => self
                .copies
                .iter()
                .find(|c| c.recipients.iter().any(|r| r == to))
                .is_some_and(|c| c.stored),
        };
        if stored {
            queued(&self.id)
        } else {
            storage_failure()
        }
    }

    /// The reply when no message was started (the machine never lets that happen).
    pub(crate) fn missing() -> Verdict {
        storage_failure()
    }
}

fn storage_failure() -> Verdict {
    const STORAGE_FAILURE: Verdict = Verdict::Reject(Refusal::constant(Reply::fixed(
        451,
        Some((4, 3, 0)),
        "Error: local error in processing: storage failure",
    )));
    STORAGE_FAILURE
}

fn queued(id: &str) -> Verdict {
    Reply::new(
        250,
        Some(EnhancedCode::of(2, 0, 0)),
        format!("Ok: queued as {id}"),
    )
    .and_then(Verdict::accept_with)
    .unwrap_or(Verdict::Accept)
}

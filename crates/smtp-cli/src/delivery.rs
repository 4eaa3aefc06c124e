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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use smtp_proto::server::{Refusal, Session};
use smtp_proto::{EnhancedCode, ForwardPath, Reply};
use smtp_relay::spool::{Envelope, FsWriter, unix_secs};
use smtp_relay::{FsStore, RelayHandle, SpoolWriter as _, Store as _};
use tracing::{debug, error, info};

use smtp_relay::date::rfc5322 as rfc5322_date;

use crate::maildir::{BUFFER, Delivery, Maildir, mailbox_path};
use crate::policy::Verdict;

/// Where messages go: a Maildir (one for all, or one per recipient), or nowhere
/// (`--discard`), for local recipients; the relay queue for the others; and the
/// queue-id counter.
pub(crate) struct Store {
    maildir: Option<Maildir>,
    queue: Option<Queue>,
    /// The server's name: the domain of `<Postmaster>`'s Maildir.
    hostname: String,
    seq: AtomicU64,
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
    pub(crate) fn new(maildir: Option<Maildir>, queue: Option<Queue>, hostname: &str) -> Store {
        Store {
            maildir,
            queue,
            hostname: hostname.to_owned(),
            seq: AtomicU64::new(0),
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

//! What becomes of an accepted message, whatever the adapter: its queue id, the lines put
//! before it (`Return-Path:`, `Delivered-To:`, `Received:`), its Maildir file, and the
//! reply to the end of its data.
//!
//! Synchronous code. Every call that may touch the disk has a companion that says whether
//! it will (`*_blocks`), so that the tokio host runs only those on its blocking pool and
//! the blocking host simply calls them.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use smtp_proto::server::Server;
use smtp_proto::{EnhancedCode, Reply};
use tracing::{error, info};

use crate::maildir::{Delivery, Maildir, rfc5322_date};
use crate::policy::Verdict;

/// Where messages go: a Maildir, or nowhere (`--discard`); and the queue-id counter.
pub(crate) struct Store {
    maildir: Option<Maildir>,
    seq: AtomicU64,
}

/// A message about to be opened: its id and, when it is stored, the lines put before
/// it. Built from the session without I/O.
pub(crate) struct NewMessage {
    id: String,
    head: Option<Vec<u8>>,
}

impl NewMessage {
    /// Whether [`Store::open`] will touch the disk.
    pub(crate) fn open_blocks(&self) -> bool {
        self.head.is_some()
    }
}

impl Store {
    /// `None`: `--discard`.
    pub(crate) fn new(maildir: Option<Maildir>) -> Store {
        Store {
            maildir,
            seq: AtomicU64::new(0),
        }
    }

    /// A queue id for `Received:` and the 250 reply: seconds and a counter, in hex.
    fn queue_id(&self) -> String {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{secs:X}{seq:06X}")
    }

    /// The message the session is about to receive (its reverse-path and recipients are
    /// final). No I/O.
    pub(crate) fn prepare(&self, session: &Server) -> NewMessage {
        let id = self.queue_id();
        let head = self
            .maildir
            .as_ref()
            .map(|_| prefix(session, &id, SystemTime::now()).into_bytes());
        NewMessage { id, head }
    }

    /// Opens the message's file in `tmp/` and writes its head; blocking when
    /// [`NewMessage::open_blocks`]. A failure is remembered for the end of data.
    pub(crate) fn open(&self, new: NewMessage) -> Message {
        let mut msg = Message {
            id: new.id,
            delivery: None,
            error: None,
            outcome: None,
        };
        if let (Some(maildir), Some(head)) = (&self.maildir, new.head) {
            match maildir.begin(&head) {
                Ok(d) => msg.delivery = Some(d),
                Err(e) => msg.error = Some(e),
            }
        }
        msg
    }
}

/// The lines `smtp serve` puts before a stored message, each ending in CRLF: the
/// `Return-Path:`, one `Delivered-To:` per accepted recipient, then the session's
/// `Received:` header with the queue id and `now`.
pub(crate) fn prefix(session: &Server, id: &str, now: SystemTime) -> String {
    let mut head = String::new();
    if let Some(from) = session.reverse_path() {
        head.push_str(&format!("Return-Path: {from}\r\n"));
    }
    for to in session.recipients() {
        head.push_str(&format!("Delivered-To: {to}\r\n"));
    }
    head.push_str(&session.received_header(id, &rfc5322_date(now)));
    head
}

/// The message being received.
pub(crate) struct Message {
    id: String,
    /// `None` when discarding, or after a storage error.
    delivery: Option<Delivery>,
    /// The first storage error; the message then ends in `451 4.3.0`.
    error: Option<io::Error>,
    /// LMTP: the outcome, decided once for every recipient.
    outcome: Option<bool>,
}

impl Message {
    /// Whether [`Message::write`] of `len` bytes will touch the disk.
    pub(crate) fn write_blocks(&self, len: usize) -> bool {
        self.delivery.as_ref().is_some_and(|d| !d.buffers(len))
    }

    /// Appends a piece of the body; a failure is remembered for the end of data.
    pub(crate) fn write(&mut self, chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Some(d) = &mut self.delivery {
            if let Err(e) = d.write(chunk) {
                self.error = Some(e);
                self.delivery = None;
            }
        }
    }

    /// Whether [`Message::finish`] (or dropping the message) will touch the disk.
    pub(crate) fn finish_blocks(&self) -> bool {
        self.delivery.is_some()
    }

    /// Stores the message (or drops it with `--discard`) and returns the reply to the end
    /// of its data: `250 2.0.0 Ok: queued as <id>` once it is in `new/`, `451 4.3.0`
    /// otherwise. For LMTP the outcome is kept for [`Message::lmtp_verdict`].
    pub(crate) fn finish(&mut self) -> Verdict {
        let stored = self.store();
        self.outcome = Some(stored);
        if stored {
            queued(&self.id)
        } else {
            storage_failure()
        }
    }

    /// LMTP (RFC 2033 §4.2): one file holds the message for every recipient, so each
    /// shares its outcome.
    pub(crate) fn lmtp_verdict(&self) -> Verdict {
        match self.outcome {
            Some(true) => queued(&self.id),
            _ => storage_failure(),
        }
    }

    /// The reply when no message was started (the machine never lets that happen).
    pub(crate) fn missing() -> Verdict {
        storage_failure()
    }

    fn store(&mut self) -> bool {
        if let Some(e) = self.error.take() {
            error!(error = %e, "storage failed");
            return false;
        }
        match self.delivery.take() {
            None => {
                info!(id = %self.id, "message discarded");
                true
            }
            Some(d) => match d.commit() {
                Ok(file) => {
                    info!(id = %self.id, %file, "message stored");
                    true
                }
                Err(e) => {
                    error!(error = %e, "storage failed");
                    false
                }
            },
        }
    }
}

fn storage_failure() -> Verdict {
    Verdict::reject(
        451,
        (4, 3, 0),
        "Error: local error in processing: storage failure",
    )
}

fn queued(id: &str) -> Verdict {
    Reply::new(
        250,
        Some(EnhancedCode::of(2, 0, 0)),
        format!("Ok: queued as {id}"),
    )
    .map_or(Verdict::Accept, Verdict::AcceptWith)
}

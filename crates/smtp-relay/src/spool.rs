//! The queue on disk: what a relay keeps of each message until every recipient is
//! delivered or has failed.
//!
//! [`Store`] is the small interface the engine uses (create, list, load, read the body,
//! record an attempt, complete, delete); [`FsStore`] is the embedded default, a directory
//! in which the disk is the source of truth and a restart rebuilds everything from it:
//!
//! ```text
//! queue-dir/
//!   tmp/<id>     a message being received (removed at start: never acknowledged)
//!   msg/<id>     one line of JSON (the Envelope), then the message as received
//!   state/<id>   JSON: each recipient's delivery state, once there has been an attempt
//! ```
//!
//! A message file is written to `tmp/`, fsynced, moved into `msg/` without replacing
//! anything, and `msg/` fsynced before [`SpoolWriter::commit`] returns: only then may the
//! server say `250`. A state file is replaced the same way (written, fsynced, renamed,
//! directory fsynced), so a crash leaves the old state or the new one, never a mix, and
//! at worst a recipient is tried once more (RFC 5321 §6.1 prefers a duplicate to a loss).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What the queue keeps of a message besides its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The queue id (letters and digits), also in the `Received:` line and the `250`.
    pub id: String,
    /// The reverse-path's address, empty for the null reverse-path `<>`.
    pub from: String,
    /// `BODY=` as received (`8BITMIME`, `BINARYMIME`), passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The message needs SMTPUTF8 (RFC 6531).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub smtputf8: bool,
    /// DSN `RET=` (`FULL`, `HDRS`; RFC 3461).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
    /// DSN `ENVID=`, decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// `REQUIRETLS` (RFC 8689).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requiretls: bool,
    /// The recipients to relay, in the order they were accepted.
    pub recipients: Vec<Recipient>,
    /// When the message was accepted, in seconds since the Unix epoch.
    pub arrived: u64,
    /// The message size in octets, as stored: [`FsStore`] sets it at
    /// [`SpoolWriter::commit`] to the octets written, so a server that does not know it
    /// when the message starts may pass 0.
    pub size: u64,
}

/// A recipient as queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The forward-path's address (`user@domain`).
    pub address: String,
    /// DSN `NOTIFY=` (`NEVER`, or some of `SUCCESS,FAILURE,DELAY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// DSN `ORCPT=`, as `addr-type;address` decoded (`rfc822;bob@example.org`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
}

impl Recipient {
    /// A recipient with no DSN parameters.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

/// Where one recipient stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    /// Queued, deferred, delivered or failed.
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before then (seconds since the Unix epoch); `None`: as soon as possible.
    pub next_attempt: Option<u64>,
    /// The last reply about this recipient from a server.
    pub last_reply: Option<ReplyRecord>,
    /// The last failure that was not a reply (DNS, connection, TLS, time-out).
    pub last_error: Option<String>,
    /// The message's delay warning was sent (set on every recipient of the message).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delay_warned: bool,
}

/// A recipient's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not tried yet.
    #[default]
    Queued,
    /// Tried, and to be tried again.
    Deferred,
    /// A server took responsibility for it (2xx).
    Delivered,
    /// It will not be delivered (5xx, or the queue lifetime passed).
    Failed,
}

impl Status {
    /// Delivered or failed: nothing more to do.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed)
    }
}

/// A server's reply as the queue keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRecord {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code (`5.1.1`), if there was one.
    pub enhanced: Option<String>,
    /// The text, lines joined with a space.
    pub text: String,
}

/// A queued message as loaded: its envelope and where each recipient stands (in the
/// envelope's order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The envelope.
    pub envelope: Envelope,
    /// One per recipient.
    pub states: Vec<RecipientState>,
}

impl Entry {
    /// Whether every recipient is delivered or failed.
    pub fn is_done(&self) -> bool {
        self.states.iter().all(|s| s.status.is_final())
    }
}

/// A message's content as a [`Store`] hands it out.
#[derive(Debug)]
pub enum Body {
    /// An open file, positioned at the first octet of the message.
    File(File),
    /// The message in memory.
    Bytes(Vec<u8>),
}

impl Body {
    /// The whole content, read into memory.
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            Body::Bytes(b) => Ok(b),
            Body::File(mut f) => {
                let mut out = Vec::new();
                f.read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

/// A message being written into the queue; dropped without [`commit`](Self::commit), it
/// is discarded.
pub trait SpoolWriter: Write + Send {
    /// Makes the message durable; only after this returns may the server acknowledge it.
    fn commit(self) -> io::Result<()>;
}

/// Where a relay keeps its queue. The engine calls these from a blocking context.
pub trait Store: Send + Sync + 'static {
    /// What [`create`](Self::create) returns.
    type Writer: SpoolWriter;

    /// Starts writing a message; its content follows through the writer.
    fn create(&self, envelope: &Envelope) -> io::Result<Self::Writer>;
    /// The ids of every queued message, oldest first.
    fn list(&self) -> io::Result<Vec<String>>;
    /// A message's envelope and state; `None` if it is not (or no longer) queued.
    fn load(&self, id: &str) -> io::Result<Option<Entry>>;
    /// The message content, from its first octet.
    fn body(&self, id: &str) -> io::Result<Body>;
    /// Replaces the recipients' states after an attempt (durably).
    fn record(&self, id: &str, states: &[RecipientState]) -> io::Result<()>;
    /// Removes a message whose recipients are all delivered or failed, or that an
    /// operator deletes; removing one that is gone is not an error.
    fn remove(&self, id: &str) -> io::Result<()>;
}

/// The queue in a directory (see the [module documentation](self)).
#[derive(Clone, Debug)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// Opens (creating if needed) the queue in `root`, and removes what a crash left in
    /// `tmp/` (never acknowledged) and state files without their message.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsStore> {
        let store = FsStore { root: root.into() };
        for dir in ["tmp", "msg", "state"] {
            fs::create_dir_all(store.root.join(dir))?;
        }
        for entry in fs::read_dir(store.root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        for entry in fs::read_dir(store.root.join("state"))? {
            let entry = entry?;
            if !store.root.join("msg").join(entry.file_name()).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(store)
    }

    /// The queue in `root` as it is, for a reader beside a running server (`smtp queue`):
    /// nothing is created or cleaned up, since `tmp/` may hold messages being received.
    pub fn existing(root: impl Into<PathBuf>) -> io::Result<FsStore> {
        let store = FsStore { root: root.into() };
        fs::metadata(store.root.join("msg"))?;
        Ok(store)
    }

    /// The queue directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, dir: &str, id: &str) -> io::Result<PathBuf> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad queue id {id:?}"),
            ));
        }
        Ok(self.root.join(dir).join(id))
    }

    /// Opens a message file past its envelope line.
    fn open_msg(&self, id: &str) -> io::Result<Option<(Envelope, BufReader<File>)>> {
        let file = match File::open(self.path("msg", id)?) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let envelope = serde_json::from_str(&line).map_err(invalid)?;
        Ok(Some((envelope, reader)))
    }
}

/// Room left after the envelope line for the digits of the size set at commit.
const SIZE_ROOM: usize = 20;

/// A message file in `tmp/`.
#[derive(Debug)]
pub struct FsWriter {
    file: BufWriter<File>,
    /// Written again at commit with the size (`header` octets, padded with spaces).
    envelope: Envelope,
    header: usize,
    written: u64,
    tmp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    done: bool,
}

impl Write for FsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl SpoolWriter for FsWriter {
    fn commit(mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.envelope.size != self.written {
            // The size is known now: the envelope line again, in the room left for it.
            self.envelope.size = self.written;
            let line = envelope_line(&self.envelope, self.header)?;
            let file = self.file.get_mut();
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&line)?;
        }
        self.file.get_ref().sync_all()?;
        // A hard link never replaces an existing file: a queue id used twice is an error,
        // not a lost message.
        fs::hard_link(&self.tmp, &self.target)?;
        sync_dir(&self.dir)?;
        self.done = true;
        let _ = fs::remove_file(&self.tmp);
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Store for FsStore {
    type Writer = FsWriter;

    fn create(&self, envelope: &Envelope) -> io::Result<FsWriter> {
        let tmp = self.path("tmp", &envelope.id)?;
        let target = self.path("msg", &envelope.id)?;
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut file = BufWriter::with_capacity(64 * 1024, file);
        let header = serde_json::to_vec(envelope).map_err(invalid)?.len() + SIZE_ROOM + 1;
        file.write_all(&envelope_line(envelope, header)?)?;
        let dir = self.root.join("msg");
        Ok(FsWriter {
            file,
            envelope: envelope.clone(),
            header,
            written: 0,
            tmp,
            target,
            dir,
            done: false,
        })
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(self.root.join("msg"))? {
            let entry = entry?;
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(UNIX_EPOCH);
            found.push((modified, id));
        }
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    fn load(&self, id: &str) -> io::Result<Option<Entry>> {
        let Some((envelope, _)) = self.open_msg(id)? else {
            return Ok(None);
        };
        let states = match fs::read(self.path("state", id)?) {
            Ok(json) => serde_json::from_slice(&json).map_err(invalid)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut states: Vec<RecipientState> = states;
        states.resize(envelope.recipients.len(), RecipientState::default());
        Ok(Some(Entry { envelope, states }))
    }

    fn body(&self, id: &str) -> io::Result<Body> {
        match self.open_msg(id)? {
            Some((_, mut reader)) => {
                // Past the envelope line; the BufReader may have read ahead.
                let offset = reader.stream_position()?;
                let mut file = reader.into_inner();
                file.seek(SeekFrom::Start(offset))?;
                Ok(Body::File(file))
            }
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{id} is not queued"),
            )),
        }
    }

    fn record(&self, id: &str, states: &[RecipientState]) -> io::Result<()> {
        let target = self.path("state", id)?;
        if !self.path("msg", id)?.exists() {
            // Deleted meanwhile: do not bring its state back.
            return Ok(());
        }
        let tmp = self.root.join("tmp").join(format!("{id}.state"));
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(states).map_err(invalid)?)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)?;
        sync_dir(&self.root.join("state"))
    }

    fn remove(&self, id: &str) -> io::Result<()> {
        // The message first: without it, a leftover state file is cleaned up at start.
        for dir in ["msg", "state"] {
            match fs::remove_file(self.path(dir, id)?) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        sync_dir(&self.root.join("msg"))
    }
}

/// The envelope as JSON, padded with spaces to `len` octets with the newline (JSON
/// allows the spaces; the size can then be set at commit without moving the message).
fn envelope_line(envelope: &Envelope, len: usize) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(envelope).map_err(invalid)?;
    if line.len() + 1 > len {
        return Err(io::Error::other("the envelope outgrew its line"));
    }
    line.resize(len - 1, b' ');
    line.push(b'\n');
    Ok(line)
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn invalid(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A new queue id for a message the relay makes itself (a report): seconds,
/// microseconds and a random number, in hex, with an `R` between them so that it never
/// equals an id `smtp serve` gives.
pub fn new_id(now: SystemTime, random: u64) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{:X}{:05X}R{:08X}",
        since.as_secs(),
        since.subsec_micros(),
        random & 0xFFFF_FFFF
    )
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The time `secs` seconds after the Unix epoch.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &str) -> Envelope {
        Envelope {
            id: id.into(),
            from: "alice@example.org".into(),
            body: Some("8BITMIME".into()),
            smtputf8: false,
            ret: None,
            envid: Some("QQ 1".into()),
            requiretls: false,
            recipients: vec![
                Recipient::new("bob@example.net"),
                Recipient {
                    notify: Some("NEVER".into()),
                    ..Recipient::new("carol@example.com")
                },
            ],
            arrived: 1_700_000_000,
            size: 12,
        }
    }

    #[test]
    fn enqueue_load_record_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let mut w = store.create(&envelope("A1")).unwrap();
        w.write_all(b"Subject: x\r\n\r\nhi\r\n").unwrap();
        // Not visible before the commit.
        assert!(store.load("A1").unwrap().is_none());
        w.commit().unwrap();
        let entry = store.load("A1").unwrap().unwrap();
        // The size is what was written, whatever the envelope said.
        let size = b"Subject: x\r\n\r\nhi\r\n".len() as u64;
        assert_eq!(
            entry.envelope,
            Envelope {
                size,
                ..envelope("A1")
            }
        );
        assert_eq!(entry.states, vec![RecipientState::default(); 2]);
        let body = store.body("A1").unwrap().into_bytes().unwrap();
        assert_eq!(body, b"Subject: x\r\n\r\nhi\r\n");

        let deferred = RecipientState {
            status: Status::Deferred,
            attempts: 1,
            next_attempt: Some(1_700_000_300),
            last_reply: Some(ReplyRecord {
                code: 451,
                enhanced: Some("4.3.0".into()),
                text: "later".into(),
            }),
            last_error: None,
            delay_warned: true,
        };
        let delivered = RecipientState {
            status: Status::Delivered,
            attempts: 1,
            ..Default::default()
        };
        store
            .record("A1", &[deferred.clone(), delivered.clone()])
            .unwrap();
        let entry = store.load("A1").unwrap().unwrap();
        assert_eq!(entry.states, [deferred, delivered]);
        assert!(!entry.is_done());
        assert_eq!(store.list().unwrap(), ["A1"]);

        store.remove("A1").unwrap();
        store.remove("A1").unwrap();
        assert!(store.load("A1").unwrap().is_none());
        assert!(store.list().unwrap().is_empty());
        // A record after a delete does not bring the message back.
        store.record("A1", &[]).unwrap();
        assert!(!dir.path().join("state/A1").exists());
    }

    #[test]
    fn never_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        store.create(&envelope("B2")).unwrap().commit().unwrap();
        // The same id again: refused, the first message kept.
        assert!(store.create(&envelope("B2")).unwrap().commit().is_err());
        assert!(store.load("B2").unwrap().is_some());
        // An abandoned writer leaves nothing.
        drop(store.create(&envelope("C3")).unwrap());
        assert!(
            fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        // What a crash leaves in tmp/ and orphan states go at the next open.
        fs::write(dir.path().join("tmp/D4"), b"half").unwrap();
        fs::write(dir.path().join("state/E5"), b"[]").unwrap();
        FsStore::open(dir.path()).unwrap();
        assert!(!dir.path().join("tmp/D4").exists());
        assert!(!dir.path().join("state/E5").exists());
        for bad in ["", "../x", "a/b", "a.b"] {
            assert!(store.load(bad).is_err(), "{bad}");
        }
    }
}

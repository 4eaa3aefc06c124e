//! `smtp queue`: the relay queue of `smtp serve`, like Postfix's `mailq`, `postqueue -f`,
//! `postsuper -d` and `postcat -q`.
//!
//! Reading (`list`, `show`) goes to the queue directory, which a running server only
//! changes atomically. Changing it goes through the server's control socket when one
//! runs (`flush` needs one; `delete` works either way), so that the server's memory and
//! its disk never disagree.

use std::io::{self, BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use smtp_relay::spool::{Entry, RecipientState, Status, from_unix_secs};
use smtp_relay::{FsStore, Store as _};

use smtp_relay::date::rfc3339;

use crate::serve::relay::control_path;
use crate::{EX_UNAVAILABLE, EX_USAGE};

/// EX_NOINPUT (sysexits.h): what was asked for is not there.
const EX_NOINPUT: u8 = 66;
/// EX_IOERR: the queue could not be read or changed.
const EX_IOERR: u8 = 74;

/// `smtp queue`.
#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Every queued message and its pending recipients (like mailq).
    List {
        #[command(flatten)]
        dir: QueueDir,
        /// One JSON array of messages.
        #[arg(long)]
        json: bool,
    },
    /// The server running on the queue tries every deferred recipient now (postqueue
    /// -f); exit 69 when no server runs on it.
    Flush {
        #[command(flatten)]
        dir: QueueDir,
    },
    /// Removes messages from the queue (postsuper -d), through the server when one runs.
    Delete {
        #[command(flatten)]
        dir: QueueDir,
        /// Every message.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Queue ids.
        #[arg(value_name = "ID", required_unless_present = "all")]
        ids: Vec<String>,
    },
    /// Prints a message as queued.
    Show {
        #[command(flatten)]
        dir: QueueDir,
        /// Its queue id.
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Args)]
struct QueueDir {
    /// The queue of `smtp serve --queue-dir`.
    #[arg(long, value_name = "DIR", default_value = "./queue")]
    queue_dir: PathBuf,
}

/// Runs `smtp queue`; returns the exit status.
pub(crate) fn main(args: QueueArgs) -> u8 {
    match args.command {
        QueueCommand::List { dir, json } => list(&dir.queue_dir, json),
        QueueCommand::Flush { dir } => match control(&dir.queue_dir, "flush") {
            Some(Ok(answer)) if answer == "ok" => 0,
            Some(Ok(answer)) => {
                eprintln!("smtp queue flush: the server says {answer:?}");
                EX_UNAVAILABLE
            }
            Some(Err(e)) => {
                eprintln!("smtp queue flush: {e}");
                EX_UNAVAILABLE
            }
            None => {
                eprintln!(
                    "smtp queue flush: no server runs on {}",
                    dir.queue_dir.display()
                );
                EX_UNAVAILABLE
            }
        },
        QueueCommand::Delete { dir, all, ids } => delete(&dir.queue_dir, all, &ids),
        QueueCommand::Show { dir, id } => show(&dir.queue_dir, &id),
    }
}

/// Says one line to the server on the queue and reads its answer; `None` when no server
/// listens there.
fn control(dir: &Path, line: &str) -> Option<io::Result<String>> {
    let mut stream = UnixStream::connect(control_path(dir)).ok()?;
    Some((|| {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer)?;
        Ok(answer.trim().to_owned())
    })())
}

/// The queue in `dir`, or why not (printed) and the exit status.
fn open(dir: &Path, what: &str) -> Result<FsStore, u8> {
    FsStore::existing(dir).map_err(|e| {
        eprintln!("smtp queue {what}: {}: not a queue: {e}", dir.display());
        EX_NOINPUT
    })
}

/// Every queued message, oldest first (one deleted meanwhile is skipped).
fn entries(store: &FsStore) -> io::Result<Vec<Entry>> {
    let mut found = Vec::new();
    for id in store.list()? {
        if let Some(entry) = store.load(&id)? {
            found.push(entry);
        }
    }
    Ok(found)
}

fn list(dir: &Path, json: bool) -> u8 {
    // A queue never created is an empty one (the server creates it at its first start).
    let listed = match FsStore::existing(dir) {
        Ok(store) => entries(&store),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    let entries = match listed {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("smtp queue list: {}: {e}", dir.display());
            return EX_IOERR;
        }
    };
    let mut out = io::stdout().lock();
    let written = if json {
        let list: Vec<Value> = entries.iter().map(to_json).collect();
        writeln!(out, "{}", Value::Array(list))
    } else {
        write!(out, "{}", table(&entries))
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => EX_IOERR,
    }
}

/// The recipients still to deliver, with their states.
fn pending(entry: &Entry) -> impl Iterator<Item = (&str, &RecipientState)> {
    entry
        .envelope
        .recipients
        .iter()
        .zip(&entry.states)
        .filter(|(_, s)| !s.status.is_final())
        .map(|(r, s)| (r.address.as_str(), s))
}

fn to_json(entry: &Entry) -> Value {
    let e = &entry.envelope;
    let recipients: Vec<Value> = pending(entry)
        .map(|(address, s)| {
            json!({
                "address": address,
                "status": if s.status == Status::Queued { "queued" } else { "deferred" },
                "attempts": s.attempts,
                // Never tried: due since it arrived.
                "next_attempt": rfc3339(from_unix_secs(s.next_attempt.unwrap_or(e.arrived))),
                "last_reply": s.last_reply.as_ref().map(|r| json!({
                    "code": r.code,
                    "enhanced": r.enhanced,
                    "text": r.text,
                })),
                "last_error": s.last_error,
            })
        })
        .collect();
    json!({
        "id": e.id,
        "from": e.from,
        "size": e.size,
        "arrived": rfc3339(from_unix_secs(e.arrived)),
        "recipients": recipients,
    })
}

/// The queue as mailq shows it.
fn table(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_owned();
    }
    let mut out = format!(
        "{:<24} {:>8} {:<20}  {}\n",
        "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------"
    );
    let mut bytes = 0;
    for entry in entries {
        let e = &entry.envelope;
        bytes += e.size;
        let from = if e.from.is_empty() { "<>" } else { &e.from };
        out.push_str(&format!(
            "{:<24} {:>8} {:<20}  {from}\n",
            e.id,
            e.size,
            rfc3339(from_unix_secs(e.arrived))
        ));
        for (address, s) in pending(entry) {
            let why = match (&s.last_reply, &s.last_error) {
                (Some(r), _) => Some(format!(
                    "{} {}{}",
                    r.code,
                    r.enhanced
                        .as_deref()
                        .map_or(String::new(), |x| format!("{x} ")),
                    r.text
                )),
                (None, Some(e)) => Some(e.clone()),
                (None, None) => None,
            };
            if let Some(why) = why {
                out.push_str(&format!("{:56}({why})\n", ""));
            }
            out.push_str(&format!("{:56}{address}\n", ""));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "-- {} Kbytes in {} Request{}.\n",
        bytes.div_ceil(1024),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    ));
    out
}

fn delete(dir: &Path, all: bool, ids: &[String]) -> u8 {
    if let Some(bad) = ids
        .iter()
        .find(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        eprintln!("smtp queue delete: {bad:?} is not a queue id");
        return EX_USAGE;
    }
    let store = match open(dir, "delete") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let ids = if all {
        match store.list() {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("smtp queue delete: {}: {e}", dir.display());
                return EX_IOERR;
            }
        }
    } else {
        ids.to_vec()
    };
    let mut code = 0;
    let mut deleted = 0;
    for id in &ids {
        let result = match control(dir, &format!("delete {id}")) {
            // A server runs: it removes the message and forgets it.
            Some(Ok(answer)) => match answer.as_str() {
                "ok" => Ok(true),
                "unknown" => Ok(false),
                other => Err(io::Error::other(other.to_owned())),
            },
            Some(Err(e)) => Err(e),
            // None runs: straight from the directory.
            None => store
                .load(id)
                .and_then(|found| store.remove(id).map(|()| found.is_some())),
        };
        match result {
            Ok(true) => deleted += 1,
            Ok(false) => {
                eprintln!("smtp queue delete: {id}: not in the queue");
                code = EX_NOINPUT;
            }
            Err(e) => {
                eprintln!("smtp queue delete: {id}: {e}");
                code = EX_IOERR;
            }
        }
    }
    eprintln!(
        "smtp queue delete: {deleted} message{} deleted",
        if deleted == 1 { "" } else { "s" }
    );
    code
}

fn show(dir: &Path, id: &str) -> u8 {
    let store = match open(dir, "show") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let found = match store.load(id) {
        Ok(found) => found,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            eprintln!("smtp queue show: {id:?} is not a queue id");
            return EX_USAGE;
        }
        Err(e) => {
            eprintln!("smtp queue show: {id}: {e}");
            return EX_IOERR;
        }
    };
    if found.is_none() {
        eprintln!("smtp queue show: {id}: not in the queue");
        return EX_NOINPUT;
    }
    let copied = store.body(id).and_then(|body| {
        let mut out = io::stdout().lock();
        match body {
            smtp_relay::spool::Body::File(mut f) => io::copy(&mut f, &mut out).map(|_| ()),
            smtp_relay::spool::Body::Bytes(b) => out.write_all(&b),
        }?;
        out.flush()
    });
    match copied {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("smtp queue show: {id}: not in the queue");
            EX_NOINPUT
        }
        Err(e) => {
            eprintln!("smtp queue show: {id}: {e}");
            EX_IOERR
        }
    }
}

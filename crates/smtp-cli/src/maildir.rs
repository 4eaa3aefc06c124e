//! Maildir storage (<https://cr.yp.to/proto/maildir.html>): write into `tmp/`, fsync,
//! rename into `new/`, fsync `new/`; only then is the message stored.
//!
//! Plain `std::fs` calls, so the same writer serves both adapters: the blocking host
//! calls it on its session thread, the tokio host moves the calls that reach the disk
//! onto tokio's blocking pool ([`Delivery::buffers`] tells which writes do not).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

/// Bytes gathered in memory before a write reaches the file.
pub(crate) const BUFFER: usize = 64 * 1024;

/// Where messages are stored: one Maildir (`tmp/`, `new/` and `cur/` under one
/// directory), or with `--maildir-per-recipient` one Maildir per recipient under it
/// (`DIR/<domain>/<local-part>/`, see [`mailbox_path`]).
#[derive(Debug)]
pub(crate) struct Maildir {
    root: PathBuf,
    per_recipient: bool,
    /// The host part of file names, with `/` and `:` escaped as the spec asks.
    host: String,
    seq: AtomicU64,
    /// The recipients' Maildirs this process has made sure of (created, and their
    /// entries fsynced up to `root`).
    ready: Mutex<HashSet<PathBuf>>,
}

impl Maildir {
    /// Opens `root`, creating it and its three subdirectories when missing, and removes
    /// what earlier runs left in `tmp/` (see [`clean_tmp`]). With `per_recipient`, `root`
    /// holds a Maildir per recipient, created at its first message, and leftovers are
    /// removed from each existing one's `tmp/`.
    pub(crate) fn open(root: &Path, hostname: &str, per_recipient: bool) -> io::Result<Maildir> {
        std::fs::create_dir_all(root)?;
        // The root's own entry too, for the first message's sake.
        let parent = root.parent().filter(|p| !p.as_os_str().is_empty());
        File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
        let host = hostname.replace('/', "\\057").replace(':', "\\072");
        let now = SystemTime::now();
        if per_recipient {
            for domain in subdirectories(root)? {
                for mailbox in subdirectories(&domain)? {
                    let tmp = mailbox.join("tmp");
                    if tmp.is_dir() {
                        clean_tmp(&tmp, &host, now);
                    }
                }
            }
        } else {
            create_maildir(root)?;
            clean_tmp(&root.join("tmp"), &host, now);
        }
        Ok(Maildir {
            root: root.to_owned(),
            per_recipient,
            host,
            seq: AtomicU64::new(0),
            ready: Mutex::default(),
        })
    }

    /// Whether each recipient has a Maildir of its own.
    pub(crate) fn per_recipient(&self) -> bool {
        self.per_recipient
    }

    /// A unique file name: `<secs>.M<usecs>P<pid>Q<seq>.<host>`.
    fn unique_name(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            seq,
            self.host
        )
    }

    /// Starts a message in `tmp/` with `head` (the prepended header lines) written first,
    /// in the Maildir `mailbox` (a [`mailbox_path`] under the root, created the first
    /// time) or else the root; `buffer` is the write buffer's size. Blocking: creates the
    /// file.
    pub(crate) fn begin_in(
        &self,
        mailbox: Option<&Path>,
        head: &[u8],
        buffer: usize,
    ) -> io::Result<Delivery> {
        let dir = match mailbox {
            None => self.root.clone(),
            Some(mailbox) => {
                let dir = self.root.join(mailbox);
                self.make_ready(&dir)?;
                dir
            }
        };
        let name = self.unique_name();
        let tmp_path = dir.join("tmp").join(&name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        let mut delivery = Delivery {
            file: Some(BufWriter::with_capacity(buffer, file)),
            synced: false,
            tmp_path,
            new_dir: dir.join("new"),
            name,
        };
        delivery.write(head)?;
        Ok(delivery)
    }

    /// Creates a recipient's Maildir `dir` (and its domain's directory) unless this
    /// process already has, fsyncing every directory that gains an entry, so that a
    /// message renamed into it survives a crash.
    fn make_ready(&self, dir: &Path) -> io::Result<()> {
        let ready = || self.ready.lock().unwrap_or_else(|e| e.into_inner());
        if ready().contains(dir) {
            return Ok(());
        }
        let domain = dir.parent().unwrap_or(dir);
        create_dir_synced(domain)?;
        create_dir_synced(dir)?;
        create_maildir(dir)?;
        ready().insert(dir.to_owned());
        Ok(())
    }
}

/// A recipient's Maildir under the root: `<domain>/<local-part>`, each made a safe
/// single file name by [`safe_name`], the domain in lower case.
pub(crate) fn mailbox_path(domain: &str, local_part: &str) -> PathBuf {
    let domain = domain.trim_end_matches('.').to_lowercase();
    PathBuf::from(safe_name(&domain)).join(safe_name(local_part))
}

/// `s` as one file name that cannot leave its directory or hide: `/`, `\`, `%`, control
/// and other non-printing characters, and a leading `.` (so `.`, `..` and dot files) are
/// written `%XX` per UTF-8 octet; an empty name is `%`. Distinct names stay distinct.
/// A name over 255 octets (the usual file system limit) is cut at 200 octets and ends in
/// `%%` and a hash of the whole.
fn safe_name(s: &str) -> String {
    if s.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        let keep = match c {
            '/' | '\\' | '%' => false,
            '.' => i > 0,
            ' '..='~' => true,
            c => c.is_alphanumeric(),
        };
        if keep {
            out.push(c);
        } else {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.len() > 255 {
        let mut cut = 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("%%");
        let hash = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
        for b in &hash.as_ref()[..16] {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// Creates `tmp/`, `new/` and `cur/` in `dir` when missing, then fsyncs `dir`.
fn create_maildir(dir: &Path) -> io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        match std::fs::create_dir(dir.join(sub)) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    File::open(dir)?.sync_all()
}

/// Creates `dir` when missing (its parent exists), then fsyncs its parent: also when it
/// was there, since whoever created it may not have fsynced yet.
fn create_dir_synced(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    File::open(dir.parent().unwrap_or(dir))?.sync_all()
}

/// The directories in `dir`.
fn subdirectories(dir: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// How long a file may sit in `tmp/` before it is taken for a leftover, whoever wrote
/// it: 36 hours, the Maildir convention (<https://cr.yp.to/proto/maildir.html>).
const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// Removes the leftovers in a Maildir's `tmp/` at start: files that a previous run of
/// this server left there (a `kill -9` in the middle of DATA), known by the names
/// [`Maildir::unique_name`] makes for this host, and any file not modified for
/// [`TMP_MAX_AGE`]. A file named for this host by a process that is still running (a
/// second server on the same Maildir) stays, as do other programs' fresh files (Dovecot
/// names its own `<secs>.M<usecs>P<pid>.<host>`, without our `Q<seq>`). Returns how many
/// files were removed; failures are logged, not fatal.
pub(crate) fn clean_tmp(tmp: &Path, host: &str, now: SystemTime) -> usize {
    let entries = match std::fs::read_dir(tmp) {
        Ok(e) => e,
        Err(e) => {
            warn!(dir = %tmp.display(), error = %e, "cannot list tmp/ to clean it");
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name();
        let own_leftover = name
            .to_str()
            .and_then(|n| own_name_pid(n, host))
            .is_some_and(|pid| !process_running(pid));
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > TMP_MAX_AGE);
        if own_leftover || old {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => warn!(file = %entry.path().display(), error = %e, "cannot remove"),
            }
        }
    }
    if removed > 0 {
        info!(dir = %tmp.display(), removed, "leftovers of earlier runs removed from tmp/");
    }
    removed
}

/// The process id in a name [`Maildir::unique_name`] made for `host`
/// (`<secs>.M<usecs>P<pid>Q<seq>.<host>`), or `None` for any other name.
fn own_name_pid(name: &str, host: &str) -> Option<u32> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let rest = name.strip_suffix(host)?.strip_suffix('.')?;
    let (secs, rest) = rest.split_once(".M")?;
    let (usecs, rest) = rest.split_once('P')?;
    let (pid, seq) = rest.split_once('Q')?;
    (digits(secs) && digits(usecs) && digits(seq) && digits(pid)).then(|| pid.parse().ok())?
}

/// Whether another process with this id is running now. This process has written nothing
/// yet when it cleans, so a file with its own id is from an earlier one (a container's
/// server is often pid 1 on every run). Without `/proc`, no process is taken as running.
fn process_running(pid: u32) -> bool {
    pid != std::process::id()
        && Path::new("/proc/self").exists()
        && Path::new("/proc").join(pid.to_string()).exists()
}

/// A message being written into `tmp/`. Dropped without [`Delivery::commit`], its file
/// is removed (a blocking call).
#[derive(Debug)]
pub(crate) struct Delivery {
    file: Option<BufWriter<File>>,
    /// Flushed and fsynced by [`Delivery::sync`], nothing written since.
    synced: bool,
    tmp_path: PathBuf,
    new_dir: PathBuf,
    name: String,
}

impl Delivery {
    /// Whether writing `len` more bytes only copies them into the buffer, without a
    /// system call.
    pub(crate) fn buffers(&self, len: usize) -> bool {
        // `BufWriter::write_all` copies when the bytes fit in the spare capacity.
        self.file
            .as_ref()
            .is_some_and(|f| len < f.capacity() - f.buffer().len())
    }

    /// Appends bytes; blocking unless [`Delivery::buffers`] says otherwise.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.synced = false;
        match &mut self.file {
            Some(f) => f.write_all(bytes),
            None => Err(io::Error::other("delivery already finished")),
        }
    }

    /// Flushes and fsyncs the file, still in `tmp/`: the first half of
    /// [`Delivery::commit`], for when several files must all be written before any is
    /// moved into `new/`. Blocking.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Err(io::Error::other("delivery already finished"));
        };
        file.flush()?;
        file.get_ref().sync_all()?;
        self.synced = true;
        Ok(())
    }

    /// Flushes and fsyncs the file (unless [`Delivery::sync`] just did), renames it into
    /// `new/` and fsyncs `new/`. Returns the file name. Blocking.
    pub(crate) fn commit(mut self) -> io::Result<String> {
        if !self.synced {
            self.sync()?; // on failure, dropping self removes the file
        }
        let file = self.file.take();
        let result = (|| {
            drop(file);
            std::fs::rename(&self.tmp_path, self.new_dir.join(&self.name))?;
            File::open(&self.new_dir)?.sync_all()
        })();
        match result {
            Ok(()) => Ok(std::mem::take(&mut self.name)),
            Err(e) => {
                let _ = std::fs::remove_file(&self.tmp_path);
                Err(e)
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_moves_into_new_and_drop_cleans_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "host/x:y", false).unwrap();
        let mut d = md.begin_in(None, b"Return-Path: <>\r\n", BUFFER).unwrap();
        assert!(d.buffers(6));
        assert!(!d.buffers(BUFFER));
        d.write(b"body\r\n").unwrap();
        let name = d.commit().unwrap();
        assert!(name.ends_with(".host\\057x\\072y"), "{name}");
        let stored = std::fs::read(dir.path().join("new").join(&name)).unwrap();
        assert_eq!(stored, b"Return-Path: <>\r\nbody\r\n");
        let d = md.begin_in(None, b"x", BUFFER).unwrap();
        drop(d);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn own_names() {
        let host = "mx\\057x\\072y";
        for (name, pid) in [
            ("1700000000.M123P42Q7.mx\\057x\\072y", Some(42)),
            ("1.M0P1Q0.mx\\057x\\072y", Some(1)),
            // Dovecot's names have no Q.
            ("1700000000.M123P42.mx\\057x\\072y", None),
            ("1700000000.M123P42Q7.other", None),
            ("1700000000.M123P42Q7.xmx\\057x\\072y", None),
            ("1700000000.M123P42Q.mx\\057x\\072y", None),
            ("1700000000.M12aP42Q7.mx\\057x\\072y", None),
            ("1700000000.V801I1234M567.mx\\057x\\072y", None),
            ("x1700000000.M123P42Q7.mx\\057x\\072y", None),
            ("1700000000.M123P99999999999Q7.mx\\057x\\072y", None),
        ] {
            assert_eq!(own_name_pid(name, host), pid, "{name}");
        }
    }

    #[test]
    fn clean_tmp_keeps_fresh_foreign_and_live_files() {
        let dir = tempfile::tempdir().unwrap();
        Maildir::open(dir.path(), "mx.example", false).unwrap();
        let tmp = dir.path().join("tmp");
        let now = SystemTime::now();
        let put = |name: &str, age: u64| {
            let f = File::create(tmp.join(name)).unwrap();
            f.set_modified(now - Duration::from_secs(age)).unwrap();
        };
        let me = std::process::id();
        let running = std::os::unix::process::parent_id();
        put("1.M1P4294967295Q0.mx.example", 0); // own name, no such process: removed
        put(&format!("1.M1P{me}Q0.mx.example"), 0); // own name and pid: an earlier run's
        put("1.V1I1M1.other.example", 37 * 3600); // another program's, too old
        put(&format!("2.M1P{running}Q0.mx.example"), 40 * 3600); // too old
        put("1.M1P4294967295.mx.example", 35 * 3600); // Dovecot's, young enough: kept
        put(&format!("3.M1P{running}Q0.mx.example"), 0); // a running server's: kept
        std::fs::create_dir(tmp.join("a-dir")).unwrap();
        assert_eq!(clean_tmp(&tmp, "mx.example", now), 4);
        let mut left: Vec<String> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "1.M1P4294967295.mx.example".to_owned(),
                format!("3.M1P{running}Q0.mx.example"),
                "a-dir".to_owned()
            ]
        );
    }

    #[test]
    fn mailbox_paths() {
        let long = "x".repeat(300);
        for (domain, local, want) in [
            ("Example.ORG.", "Bob", "example.org/Bob"),
            ("example.org", "..", "example.org/%2E."),
            ("example.org", ".", "example.org/%2E"),
            ("example.org", ".hidden", "example.org/%2Ehidden"),
            ("example.org", "a.b", "example.org/a.b"),
            ("example.org", "../../etc", "example.org/%2E.%2F..%2Fetc"),
            ("example.org", "a/b\\c", "example.org/a%2Fb%5Cc"),
            ("example.org", "100%", "example.org/100%25"),
            ("example.org", "", "example.org/%"),
            (
                "example.org",
                "a\0b\x7f\u{85}",
                "example.org/a%00b%7F%C2%85",
            ),
            ("example.org", "with space", "example.org/with space"),
            ("example.org", "jörg", "example.org/jörg"),
            ("example.org", "日本", "example.org/日本"),
            ("example.org", "a\u{202e}b", "example.org/a%E2%80%AEb"),
            ("BÜCHER.example", "x", "bücher.example/x"),
            ("[IPv6:::1]", "x", "[ipv6:::1]/x"),
            ("..", "x", "%/x"), // not a domain, but safe all the same
        ] {
            assert_eq!(
                mailbox_path(domain, local),
                PathBuf::from(want),
                "{local:?}"
            );
        }
        let cut = safe_name(&long);
        assert!(cut.len() <= 255 && cut.starts_with(&long[..200]) && cut.contains("%%"));
        assert_ne!(safe_name(&long), safe_name(&format!("{long}y")));
        assert_ne!(safe_name("%2F"), safe_name("/"));
        assert_eq!(safe_name(&"x".repeat(255)), "x".repeat(255));
    }

    #[test]
    fn per_recipient_maildirs_are_created_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let md = Maildir::open(&root, "mx.example", true).unwrap();
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "no tmp/ at the top"
        );
        let mailbox = mailbox_path("Example.org", "../x");
        let d = md.begin_in(Some(&mailbox), b"head\r\n", 4096).unwrap();
        let name = d.commit().unwrap();
        let stored = root.join("example.org/%2E.%2Fx/new").join(name);
        assert_eq!(std::fs::read(stored).unwrap(), b"head\r\n");
        for sub in ["tmp", "cur"] {
            assert!(root.join("example.org/%2E.%2Fx").join(sub).is_dir());
        }
        // A leftover in a recipient's tmp/ is removed when the server starts again.
        let leftover = root.join("example.org/%2E.%2Fx/tmp/1.M1P4294967295Q0.mx.example");
        File::create(&leftover).unwrap();
        Maildir::open(&root, "mx.example", true).unwrap();
        assert!(!leftover.exists());
    }
}

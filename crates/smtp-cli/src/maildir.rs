//! Maildir storage (<https://cr.yp.to/proto/maildir.html>): write into `tmp/`, fsync,
//! rename into `new/`, fsync `new/`; only then is the message stored.
//!
//! Plain `std::fs` calls, so the same writer serves both adapters: the blocking host
//! calls it on its session thread, the tokio host moves the calls that reach the disk
//! onto tokio's blocking pool ([`Delivery::buffers`] tells which writes do not).

use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes gathered in memory before a write reaches the file.
const BUFFER: usize = 64 * 1024;

/// A Maildir: `tmp/`, `new/` and `cur/` under one directory.
#[derive(Debug)]
pub(crate) struct Maildir {
    tmp: PathBuf,
    new: PathBuf,
    /// The host part of file names, with `/` and `:` escaped as the spec asks.
    host: String,
    seq: AtomicU64,
}

impl Maildir {
    /// Opens `root`, creating it and its three subdirectories when missing.
    pub(crate) fn open(root: &Path, hostname: &str) -> io::Result<Maildir> {
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let host = hostname.replace('/', "\\057").replace(':', "\\072");
        Ok(Maildir {
            tmp: root.join("tmp"),
            new: root.join("new"),
            host,
            seq: AtomicU64::new(0),
        })
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

    /// Starts a message in `tmp/` with `head` (the prepended header lines) written first.
    /// Blocking: creates the file.
    pub(crate) fn begin(&self, head: &[u8]) -> io::Result<Delivery> {
        let name = self.unique_name();
        let tmp_path = self.tmp.join(&name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        let mut delivery = Delivery {
            file: Some(BufWriter::with_capacity(BUFFER, file)),
            tmp_path,
            new_dir: self.new.clone(),
            name,
        };
        delivery.write(head)?;
        Ok(delivery)
    }
}

/// A message being written into `tmp/`. Dropped without [`Delivery::commit`], its file
/// is removed (a blocking call).
#[derive(Debug)]
pub(crate) struct Delivery {
    file: Option<BufWriter<File>>,
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
        match &mut self.file {
            Some(f) => f.write_all(bytes),
            None => Err(io::Error::other("delivery already finished")),
        }
    }

    /// Flushes and fsyncs the file, renames it into `new/` and fsyncs `new/`. Returns
    /// the file name. Blocking.
    pub(crate) fn commit(mut self) -> io::Result<String> {
        let Some(file) = self.file.take() else {
            return Err(io::Error::other("delivery already finished"));
        };
        let result = (|| {
            let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
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

/// An RFC 5322 §3.3 `date-time` in UTC: `Tue, 1 Jul 2025 09:05:03 +0000`.
pub(crate) fn rfc5322_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let at = |s: u64| rfc5322_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(at(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 +0000");
    }

    #[test]
    fn commit_moves_into_new_and_drop_cleans_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "host/x:y").unwrap();
        let mut d = md.begin(b"Return-Path: <>\r\n").unwrap();
        assert!(d.buffers(6));
        assert!(!d.buffers(BUFFER));
        d.write(b"body\r\n").unwrap();
        let name = d.commit().unwrap();
        assert!(name.ends_with(".host\\057x\\072y"), "{name}");
        let stored = std::fs::read(dir.path().join("new").join(&name)).unwrap();
        assert_eq!(stored, b"Return-Path: <>\r\nbody\r\n");
        let d = md.begin(b"x").unwrap();
        drop(d);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}

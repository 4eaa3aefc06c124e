//! Other processes of a test: waiting for a condition, peers killed when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Polls `done` every 50 ms until it holds; panics naming `what` after `secs` seconds.
pub(crate) fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when the test ends.
pub(crate) struct Peer(pub(crate) Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (`secs` seconds at most) for `child` to exit; its status, or `None` if it still runs.
pub(crate) fn wait_for_exit(child: &mut Child, secs: u64) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then the exit status; SIGKILL (and that status) after 20 s.
pub(crate) fn terminate(child: &mut Child) -> ExitStatus {
    stop(child, "TERM")
}

/// `kill -SIGNAL`, then the exit status; SIGKILL (and that status) after 20 s.
pub(crate) fn stop(child: &mut Child, signal: &str) -> ExitStatus {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    wait_for_exit(child, 20).unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().unwrap()
    })
}

/// Postfix's smtp-sink on 127.0.0.1:`port`, writing what it receives to `dir/dump`.
pub(crate) fn smtp_sink(dir: &Path, port: u16) -> Peer {
    smtp_sink_to(&dir.join("dump"), port, &[])
}

/// Postfix's smtp-sink on 127.0.0.1:`port`, appending what it receives to `dump`;
/// `extra` such as `-r RCPT` (every RCPT gets a 4xx).
pub(crate) fn smtp_sink_to(dump: &Path, port: u16, extra: &[&str]) -> Peer {
    // smtp-sink drops to `nobody`, which must be able to write the dump.
    let dir = dump.parent().unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let start = Instant::now();
    loop {
        let mut child = Command::new("/usr/sbin/smtp-sink")
            .args(extra)
            .args(["-u", "nobody", "-D", dump.to_str().unwrap()])
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Postfix smtp-sink (apt-get install postfix)");
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // the port is not free yet (a sink just stopped): again
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Peer(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

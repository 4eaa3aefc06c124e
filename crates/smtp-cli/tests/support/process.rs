//! Other processes of a test: waiting for a condition, peers killed when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// Postfix's smtp-sink on 127.0.0.1:`port`, writing what it receives to `dir/dump`.
pub(crate) fn smtp_sink(dir: &Path, port: u16) -> Peer {
    // smtp-sink drops to `nobody`, which must be able to write the dump.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut child = Command::new("/usr/sbin/smtp-sink")
        .args(["-u", "nobody", "-D", dir.join("dump").to_str().unwrap()])
        .arg(format!("127.0.0.1:{port}"))
        .arg("64")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Postfix smtp-sink (apt-get install postfix)");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "smtp-sink exited");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Peer(child)
}

//! A running `smtp serve` for a test: started from its arguments, its addresses read from
//! the `listening on` lines, stopped with SIGTERM (then SIGKILL) when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::process;

/// The binary under test.
pub(crate) const SMTP: &str = env!("CARGO_BIN_EXE_smtp");

/// `smtp serve ARGS` before it starts: arguments, environment, where stderr goes.
pub(crate) struct ServeCommand {
    cmd: Command,
    stderr: Option<PathBuf>,
    /// Whether the stderr file is appended to rather than made anew.
    append: bool,
    /// How many `listening on` lines to wait for, counted from the arguments.
    lines: usize,
    listens: usize,
}

impl ServeCommand {
    /// `smtp serve`, nothing more (add `--listen 127.0.0.1:0` or `--config`).
    pub(crate) fn new() -> ServeCommand {
        let mut cmd = Command::new(SMTP);
        cmd.arg("serve");
        ServeCommand {
            cmd,
            stderr: None,
            append: false,
            lines: 0,
            listens: 0,
        }
    }

    /// `smtp serve --io IO --listen 127.0.0.1:0 --hostname HOSTNAME`, the usual start.
    pub(crate) fn loopback(io: &str, hostname: &str) -> ServeCommand {
        ServeCommand::new().args([
            "--io",
            io,
            "--listen",
            "127.0.0.1:0",
            "--hostname",
            hostname,
        ])
    }

    /// One more argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> ServeCommand {
        let arg = arg.as_ref();
        if arg == "--listen" {
            self.listens += 1;
        } else if arg == "--implicit-tls" || arg == "--metrics-listen" {
            self.lines += 1;
        }
        self.cmd.arg(arg);
        self
    }

    /// More arguments.
    pub(crate) fn args<I, S>(self, args: I) -> ServeCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, |cmd, arg| cmd.arg(arg))
    }

    /// An environment variable for the server.
    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> ServeCommand {
        self.cmd.env(key, value);
        self
    }

    /// The server's stderr (its log) into the file `path` (made anew), read by [`Serve::log`].
    pub(crate) fn stderr_to(mut self, path: impl Into<PathBuf>) -> ServeCommand {
        self.stderr = Some(path.into());
        self.append = false;
        self
    }

    /// [`ServeCommand::stderr_to`], appended: one log across restarts in the same directory.
    pub(crate) fn stderr_appended_to(mut self, path: impl Into<PathBuf>) -> ServeCommand {
        self.stderr = Some(path.into());
        self.append = true;
        self
    }

    /// Starts it and waits (30 s at most) for every listener's `listening on` line.
    pub(crate) fn start(mut self) -> Serve {
        let stderr = match &self.stderr {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(self.append)
                    .truncate(!self.append)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::null(),
        };
        let mut child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the smtp binary starts");
        // A thread keeps reading stdout so that a later line never meets a closed pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let mut serve = Serve {
            child,
            listeners: Vec::new(),
            implicit_tls: Vec::new(),
            metrics: None,
            stderr: self.stderr,
        };
        for _ in 0..self.listens.max(1) + self.lines {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no 'listening on' line; stderr:\n{}", serve.log()));
            let addr = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("no 'listening on' line: {line:?}"));
            if let Some(addr) = addr.strip_suffix(" (metrics)") {
                serve.metrics = Some(addr.parse().unwrap());
            } else if let Some(addr) = addr.strip_suffix(" (implicit tls)") {
                serve.implicit_tls.push(addr.parse().unwrap());
            } else {
                serve.listeners.push(addr.parse().unwrap());
            }
        }
        serve
    }
}

/// A running `smtp serve`.
pub(crate) struct Serve {
    child: Child,
    /// The plain (STARTTLS) listeners, in the order printed.
    pub(crate) listeners: Vec<SocketAddr>,
    /// The implicit-TLS listeners, in the order printed.
    pub(crate) implicit_tls: Vec<SocketAddr>,
    /// The metrics listener, with `--metrics-listen`.
    pub(crate) metrics: Option<SocketAddr>,
    stderr: Option<PathBuf>,
}

impl Serve {
    /// The first plain listener.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.listeners[0]
    }

    /// The first plain listener's port.
    pub(crate) fn port(&self) -> u16 {
        self.addr().port()
    }

    /// The process id, for `kill`.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -NAME PID`, asserted to succeed.
    pub(crate) fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// The stderr file so far (empty when stderr was not kept).
    pub(crate) fn log(&self) -> String {
        self.stderr
            .as_deref()
            .map(|p: &Path| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits (15 s at most) until the log holds `needle`; the log line holding it.
    pub(crate) fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, if it has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM; the exit status, or `None` when it took over 20 s (then SIGKILL).
    pub(crate) fn terminate(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.try_wait() {
            return Some(status);
        }
        self.signal("TERM");
        let status = process::wait_for_exit(&mut self.child, 20);
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// SIGTERM, and the exit status (SIGKILL's after 20 s).
    pub(crate) fn stop(mut self) -> ExitStatus {
        process::terminate(&mut self.child)
    }

    /// SIGKILL, and the process reaped.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL: no shutdown at all.
    pub(crate) fn kill_9(mut self) {
        self.kill();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.terminate();
    }
}

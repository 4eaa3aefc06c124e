//! A real DNS server for tests: dnsmasq on 127.0.0.1 and a free port, authoritative for
//! the names given (everything under `.test` it does not know is NXDOMAIN), stopped when
//! dropped. Never the machine's resolver.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Dnsmasq {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Dnsmasq {
    /// `records` are dnsmasq options such as `--mx-host=example.test,mx.example.test,10`
    /// and `--host-record=mx.example.test,127.0.0.1`.
    pub(crate) fn start(records: &[&str]) -> Dnsmasq {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // /usr/sbin is not on every user's PATH.
        let sbin = std::path::Path::new("/usr/sbin/dnsmasq");
        let bin = if sbin.exists() {
            sbin.as_os_str()
        } else {
            "dnsmasq".as_ref()
        };
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--pid-file=",
                "--user=root",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--except-interface=nonexistent",
                "--local=/test/",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base; ./test.sh installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < until, "dnsmasq did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Dnsmasq { child, addr }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

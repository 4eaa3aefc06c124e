//! Loopback plumbing: free ports, lines off a socket.

use std::io::Read;
use std::net::{TcpListener, TcpStream};

/// A port nothing listens on, never handed out twice in this test process (tests run in
/// parallel). Another socket can still take it before a peer binds it: callers that start
/// a peer there check that it is alive and listening.
pub(crate) fn free_port() -> u16 {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut used = USED.lock().unwrap();
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

/// One CRLF-ended line from `s`, CRLF included; panics when the connection closes first.
pub(crate) fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8];
    while !line.ends_with(b"\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "connection closed");
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

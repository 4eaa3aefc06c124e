//! The socket, plain or upgraded to TLS, with blocking reads bounded by a deadline.
//!
//! The adapter keeps no bytes of its own: every read goes into a stack buffer that is
//! handed to the machine at once, and there is no `BufReader`, so when the machine asks
//! for STARTTLS the raw `TcpStream` holds nothing that was read ahead. Whatever the peer
//! sent after the STARTTLS line in the same read already went to the machine, which
//! refuses it (CVE-2011-0411 on the server, response injection on the client).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use rustls::{ConnectionCommon, SideData, StreamOwned};

/// Bytes read from the socket per read call. The buffer lives on the stack only while a
/// read completes.
pub(crate) const READ_CHUNK: usize = 8 * 1024;

/// How long a closing server waits for the client's side to close, so that the kernel
/// does not answer unread input with a reset that could destroy the last reply in
/// flight (a "lingering close").
const LINGER: Duration = Duration::from_secs(1);

/// What a bounded read gave.
pub(crate) enum ReadResult {
    /// Bytes, already in the caller's buffer.
    Data(usize),
    /// The peer closed its side.
    Eof,
    /// The deadline passed first.
    Timeout,
    /// The connection broke.
    Failed(io::Error),
}

/// A connection, plain or TLS (`C` is rustls' `ServerConnection` or `ClientConnection`).
pub(crate) enum Stream<C> {
    Plain(TcpStream),
    Tls(Box<StreamOwned<C, TcpStream>>),
    /// After a failed upgrade or a close.
    Gone,
}

impl<C, S> Stream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// The TCP socket underneath.
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(tcp) => Some(tcp),
            Stream::Tls(tls) => Some(tls.get_ref()),
            Stream::Gone => None,
        }
    }

    /// The TLS connection, once upgraded.
    pub(crate) fn tls(&self) -> Option<&C> {
        match self {
            Stream::Tls(tls) => Some(&tls.conn),
            _ => None,
        }
    }

    /// Reads once, waiting at most until `deadline` (forever when `None`).
    pub(crate) fn read(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> ReadResult {
        let timeout = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(t) if !t.is_zero() => Some(t),
                _ => return ReadResult::Timeout,
            },
            None => None,
        };
        let Some(tcp) = self.tcp() else {
            return ReadResult::Failed(io::ErrorKind::NotConnected.into());
        };
        if let Err(e) = tcp.set_read_timeout(timeout) {
            return ReadResult::Failed(e);
        }
        loop {
            let result = match self {
                Stream::Plain(tcp) => tcp.read(buf),
                Stream::Tls(tls) => tls.read(buf),
                Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
            };
            return match result {
                Ok(0) => ReadResult::Eof,
                Ok(n) => ReadResult::Data(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // SO_RCVTIMEO gives EAGAIN on Unix and WSAETIMEDOUT on Windows.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    ReadResult::Timeout
                }
                // A TLS peer that closes without close_notify: the session decides
                // whether that lost anything (a message cut short is aborted).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => ReadResult::Eof,
                Err(e) => ReadResult::Failed(e),
            };
        }
    }

    /// [`Stream::write_all`], each write to the socket waiting at most until `deadline`
    /// and at most `cap` (forever when both are `None`).
    pub(crate) fn write_all_until(
        &mut self,
        bytes: &[u8],
        deadline: Option<Instant>,
        cap: Option<Duration>,
    ) -> io::Result<()> {
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(t) if !t.is_zero() => Some(t),
                _ => return Err(io::ErrorKind::TimedOut.into()),
            },
            None => None,
        };
        let bound = match (left, cap) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
        if let Some(tcp) = self.tcp() {
            tcp.set_write_timeout(bound.map(|b| b.max(Duration::from_millis(1))))?;
        }
        self.write_all(bytes)
    }

    /// Writes everything and flushes (through TLS when active).
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.write_all(bytes),
            Stream::Tls(tls) => {
                tls.write_all(bytes)?;
                tls.flush()
            }
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Runs the TLS handshake on the raw socket, which holds no plaintext the machine
    /// has not seen, bounded by `deadline`.
    pub(crate) fn upgrade(&mut self, mut conn: C, deadline: Instant) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Gone) else {
            return Err(io::Error::other("TLS on a stream that is not plain TCP"));
        };
        let write_timeout = tcp.write_timeout()?;
        let mut io = Deadlined {
            tcp: &tcp,
            deadline,
        };
        while conn.is_handshaking() {
            match conn.complete_io(&mut io) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Err(e) => return Err(e),
            }
        }
        tcp.set_write_timeout(write_timeout)?;
        *self = Stream::Tls(Box::new(StreamOwned::new(conn, tcp)));
        Ok(())
    }

    /// Closes our side: TLS close_notify, then a TCP half-close. With `linger`, waits a
    /// little for the peer to close too, reading and dropping what it still sends.
    pub(crate) fn close(&mut self, linger: bool) {
        if let Stream::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let Some(tcp) = self.tcp() else { return };
        let _ = tcp.shutdown(Shutdown::Write);
        if linger {
            let until = Instant::now() + LINGER;
            let mut tcp = tcp;
            let mut sink = [0u8; 1024];
            let mut left = 64 * 1024usize;
            while let Some(t) = until.checked_duration_since(Instant::now()) {
                if t.is_zero() || tcp.set_read_timeout(Some(t)).is_err() {
                    break;
                }
                match tcp.read(&mut sink) {
                    Ok(n) if n > 0 && n < left => left -= n,
                    _ => break,
                }
            }
        }
        *self = Stream::Gone;
    }
}

/// The socket with every read and write bounded by one deadline (for the handshake,
/// where rustls makes several calls).
struct Deadlined<'a> {
    tcp: &'a TcpStream,
    deadline: Instant,
}

impl Deadlined<'_> {
    fn left(&self) -> io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|t| !t.is_zero())
            .ok_or_else(|| io::ErrorKind::TimedOut.into())
    }
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.left()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        let bound = self.tcp.write_timeout()?.map_or(left, |w| w.min(left));
        self.tcp.set_write_timeout(Some(bound))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

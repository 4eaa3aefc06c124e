//! A mail server on `smtp-proto` alone: `std::net`, a thread per connection, and the
//! loop an adapter is, written out by hand, deadlines included.
//!
//! ```text
//! cargo run -p smtp-sansio --example std_server -- LISTEN DOMAIN [--dir DIR] [--timeout SECS]
//! cargo run -p smtp-sansio --example std_server -- 127.0.0.1:2525 example.org --dir /tmp/mail
//! ```
//!
//! The policy: recipients at DOMAIN (and `<Postmaster>`, RFC 5321 §4.5.1) are accepted,
//! any other gets `554 5.7.1 <...>: Relay access denied`. Each message taken prints one
//! line (`message 1 from <alice@example.org> to <bob@example.org>: 123 octets`) and, with
//! `--dir`, is written to `DIR/<n>.eml` (to a temporary name, synced, then renamed) before
//! its `250 2.0.0 Ok: queued as <n>`. `--timeout` sets the command timeout in seconds
//! (default 300, RFC 5321 §4.5.3.2.7); the session says `421 4.4.2` when it passes.
//! The server calls itself DOMAIN and prints `listening on ADDR` once bound (port 0 picks
//! a free port).

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smtp_proto::server::{Decision, Event, Output, PeerInfo, ServerConfig, Session};
use smtp_proto::{EnhancedCode, ForwardPath, Reply};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// What every connection shares.
struct Policy {
    domain: String,
    dir: Option<PathBuf>,
    /// Numbers the messages taken, across connections.
    next_id: AtomicU64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: std_server LISTEN DOMAIN [--dir DIR] [--timeout SECS]";
    let [listen, domain, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let mut config = ServerConfig::new(domain)?;
    let mut dir = None;
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(usage)?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--timeout" => config.timeouts.command = Duration::from_secs(value.parse()?),
            _ => return Err(usage.into()),
        }
    }
    let config = Arc::new(config);
    let policy = Arc::new(Policy {
        domain: domain.clone(),
        dir,
        next_id: AtomicU64::new(1),
    });

    let listener = TcpListener::bind(listen)?;
    println!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let (config, policy) = (Arc::clone(&config), Arc::clone(&policy));
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, config, &policy) {
                eprintln!("session: {e}");
            }
        });
    }
    Ok(())
}

/// One connection: drain the machine's outputs, and do what its `Wait` says.
fn serve(mut stream: TcpStream, config: Arc<ServerConfig>, policy: &Policy) -> Result<()> {
    let peer = PeerInfo {
        addr: Some(stream.peer_addr()?.ip()),
        ..PeerInfo::default()
    };
    // A client that stops reading cannot hold a thread for ever either.
    stream.set_write_timeout(Some(config.timeouts.command))?;
    let mut session = Session::new(config, peer, Instant::now());
    let mut message = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match session.poll_output() {
            Output::Transmit(bytes) => stream.write_all(&bytes)?,
            Output::Event(event) => {
                if let Some(decision) = handle(&session, &event, &mut message, policy)? {
                    session.decide(decision)?;
                }
            }
            // All replies were written as they came: nothing is left to flush.
            Output::Close => return Ok(()),
            // STARTTLS is not offered (`config.extensions.starttls` is off).
            Output::StartTls => return Err("STARTTLS was not offered".into()),
            Output::Wait { deadline, read } => {
                let now = Instant::now();
                if deadline.is_some_and(|deadline| deadline <= now) {
                    session.handle_timeout(now);
                    continue;
                }
                let left = deadline.map(|deadline| deadline - now);
                if !read {
                    // Replies held back after too many errors: nothing to read, a
                    // deadline to wait for. (This loop never leaves a decision pending,
                    // the other reason not to read, so there always is a deadline.)
                    std::thread::sleep(left.ok_or("the session waits for nothing")?);
                    session.handle_timeout(Instant::now());
                    continue;
                }
                // The socket times out at the deadline (no deadline: it blocks).
                stream.set_read_timeout(left)?;
                match stream.read(&mut buf) {
                    Ok(0) => session.handle_eof(Instant::now()),
                    Ok(n) => session.handle_input(&buf[..n], Instant::now()),
                    // The socket timeout is the deadline: the session decides whether
                    // it has really passed (and says `421 4.4.2` if so).
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        session.handle_timeout(Instant::now())
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => session.handle_eof(Instant::now()),
                }
            }
        }
    }
}

/// An event: what the host does about it, and its decision when the session asks for one.
fn handle(
    session: &Session,
    event: &Event,
    message: &mut Vec<u8>,
    policy: &Policy,
) -> Result<Option<Decision>> {
    let decision = match event {
        Event::Rcpt { to, .. } => rcpt(to, &policy.domain)?,
        Event::MessageStart | Event::MessageAborted { .. } => {
            message.clear();
            return Ok(None);
        }
        Event::Body(piece) => {
            message.extend_from_slice(piece);
            return Ok(None);
        }
        Event::MessageEnd => {
            let decision = deliver(session, message, policy)?;
            message.clear();
            decision
        }
        // AUTH is not offered (`config.extensions.auth` is empty); refuse anyway.
        Event::Auth { .. } => Decision::reject(535, (5, 7, 8), "Authentication failed")?,
        // HELO, MAIL, VRFY (`252`), EXPN (`502`), ETRN: the session's defaults.
        event if event.needs_decision() => Decision::Accept,
        _ => return Ok(None),
    };
    Ok(Some(decision))
}

/// Relay control: only DOMAIN's recipients, and the postmaster.
fn rcpt(to: &ForwardPath<'static>, domain: &str) -> Result<Decision> {
    let ours = match to {
        ForwardPath::Postmaster => true,
        _ => to.domain().is_some_and(|d| d.eq_ignore_case(domain)),
    };
    if ours {
        return Ok(Decision::Accept);
    }
    // The checked constructor: the codes must agree (554 with 5.7.1) and the text
    // cannot carry CR or LF (the address was parsed, so it does not).
    Ok(Decision::reject(
        554,
        (5, 7, 1),
        format!("{to}: Relay access denied"),
    )?)
}

/// The end of a message: store it (with `--dir`), print the envelope, and only then
/// answer 250 (RFC 5321 §6.1).
fn deliver(session: &Session, message: &[u8], policy: &Policy) -> Result<Decision> {
    let id = policy.next_id.fetch_add(1, Ordering::Relaxed);
    if let Some(dir) = &policy.dir {
        if let Err(e) = store(dir, id, message) {
            eprintln!("message {id}: {e}");
            return Ok(Decision::reject(
                451,
                (4, 3, 0),
                "Error: local storage failed",
            )?);
        }
    }
    let from = session.reverse_path().map(ToString::to_string);
    let to: Vec<String> = session
        .recipients()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "message {id} from {} to {}: {} octets",
        from.unwrap_or_default(),
        to.join(", "),
        message.len()
    );
    let reply = Reply::new(
        250,
        Some(EnhancedCode::of(2, 0, 0)),
        format!("Ok: queued as {id}"),
    )?;
    Ok(Decision::accept_with(reply)?)
}

/// Writes `DIR/<id>.eml` under a temporary name, syncs it, then renames it into place.
fn store(dir: &Path, id: u64, message: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{id}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(message)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(format!("{id}.eml")))
}

//! Sans-I/O SMTP, ESMTP and LMTP.
//!
//! This crate is the protocol and nothing else: it never touches a socket, never reads a
//! clock, never spawns a task. Bytes go in as `&[u8]`, time goes in as an `Instant`
//! argument, and everything that must leave (bytes to send, events for the host, the next
//! deadline) comes out of a `poll_*` method. Adapters (`smtp-tokio`, `smtp-blocking`) are
//! thin loops around it.
//!
//! # Layers
//! - The codec: [`Command`] and [`Reply`] parse and serialize every command and reply of
//!   RFC 5321 and its extensions; [`address`] holds the mailbox grammar, [`params`] the
//!   MAIL/RCPT parameters, [`ehlo`] the EHLO capabilities, [`data`] dot-stuffing in both
//!   directions, [`sasl`] the AUTH mechanisms.
//! - Framing: [`LineFramer`] finds complete lines within the RFC 5321 §4.5.3.1 limits, so
//!   the parsers only ever see whole lines and never need "incomplete" tricks.
//! - The machines: [`server::Session`] is the server side of one connection,
//!   [`client::Client`] the client side.
//!
//! The crate is published as `smtp-sansio` and its library is named `smtp_proto`:
//!
//! ```toml
//! [dependencies]
//! smtp-sansio = "0.1"
//! ```
//!
//! `smtp-tokio` and `smtp-blocking` run these machines on sockets, with TLS, listeners,
//! limits and shutdown; a host can also drive them itself, as below.
//!
//! # Parsing a command
//! ```
//! use smtp_proto::{Command, ReversePath};
//! let cmd = Command::parse(b"MAIL FROM:<alice@example.org> SIZE=1024 BODY=8BITMIME\r\n").unwrap();
//! let Command::Mail { from, params } = &cmd else { unreachable!() };
//! assert_eq!(from.to_string(), "<alice@example.org>");
//! assert_eq!(params.size, Some(1024));
//! // Serializing gives canonical bytes that parse back to the same value.
//! assert_eq!(Command::parse(&cmd.to_bytes()).unwrap(), cmd);
//! ```
//!
//! # Serving connections with `std::net`
//! A host is a loop around [`poll_output`](server::Session::poll_output): write what it
//! transmits, answer the events that ask for a decision, and when it says
//! [`Output::Wait`](server::Output::Wait) read only if `read` is true, with the socket's
//! read timeout set from `deadline`, calling
//! [`handle_timeout`](server::Session::handle_timeout) once the deadline passes and
//! [`handle_eof`](server::Session::handle_eof) at the end of input. The machine then
//! says `421 4.4.2` to a client that is too slow, and holds its replies back after too
//! many errors, with no clock of its own. `examples/std_server.rs` is this loop with a
//! relay policy and storage, run against Python's smtplib and swaks in the tests.
//!
//! ```no_run
//! use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::sync::Arc;
//! use std::time::Instant;
//! use smtp_proto::server::{Decision, Event, Output, PeerInfo, ServerConfig, Session};
//!
//! type Error = Box<dyn std::error::Error>;
//!
//! fn serve(mut tcp: TcpStream, config: Arc<ServerConfig>) -> Result<(), Error> {
//!     let peer = PeerInfo { addr: Some(tcp.peer_addr()?.ip()), ..PeerInfo::default() };
//!     let mut session = Session::new(config, peer, Instant::now());
//!     let mut buf = [0u8; 8192];
//!     loop {
//!         match session.poll_output() {
//!             Output::Transmit(bytes) => tcp.write_all(&bytes)?,
//!             // Relay control: only this domain's recipients.
//!             Output::Event(Event::Rcpt { to, .. }) => {
//!                 let ours = to.domain().is_some_and(|d| d.eq_ignore_case("example.org"));
//!                 session.decide(match ours {
//!                     true => Decision::Accept,
//!                     false => Decision::reject(554, (5, 7, 1), "Relay access denied")?,
//!                 })?;
//!             }
//!             // HELO, MAIL, the end of the message: a real host stores the `Event::Body`
//!             // pieces and accepts `Event::MessageEnd` only once they are stored. (No
//!             // AUTH to decide: `config.extensions.auth` is empty.)
//!             Output::Event(event) if event.needs_decision() => session.accept()?,
//!             Output::Event(_) => {}
//!             Output::Close => return Ok(()),
//!             Output::StartTls => unreachable!("`config.extensions.starttls` is off"),
//!             Output::Wait { deadline, read } => {
//!                 let now = Instant::now();
//!                 if deadline.is_some_and(|deadline| deadline <= now) {
//!                     session.handle_timeout(now);
//!                     continue;
//!                 }
//!                 let left = deadline.map(|deadline| deadline - now);
//!                 if !read {
//!                     // Replies held back after too many errors: wait for the deadline.
//!                     // (The other reason, a decision pending, cannot last here.)
//!                     std::thread::sleep(left.unwrap_or_default());
//!                     session.handle_timeout(Instant::now());
//!                     continue;
//!                 }
//!                 tcp.set_read_timeout(left)?; // `None`: no deadline, block
//!                 match tcp.read(&mut buf) {
//!                     Ok(0) => session.handle_eof(Instant::now()),
//!                     Ok(n) => session.handle_input(&buf[..n], Instant::now()),
//!                     // The deadline: the machine checks that it has passed.
//!                     Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
//!                         session.handle_timeout(Instant::now())
//!                     }
//!                     Err(e) if e.kind() == Interrupted => {}
//!                     Err(_) => session.handle_eof(Instant::now()),
//!                 }
//!             }
//!         }
//!     }
//! }
//!
//! let config = Arc::new(ServerConfig::new("mx.example.org")?);
//! for tcp in TcpListener::bind("127.0.0.1:2525")?.incoming() {
//!     let (tcp, config) = (tcp?, Arc::clone(&config));
//!     std::thread::spawn(move || serve(tcp, config).map_err(|e| eprintln!("{e}")));
//! }
//! # Ok::<(), Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod ehlo;
pub mod error;
pub mod line;
pub mod params;
pub mod reply;
pub mod sasl;
pub mod secret;
pub mod server;
mod verb;

pub use address::{
    AddressLiteral, Domain, ForwardPath, GeneralLiteral, Host, Mailbox, ReversePath,
};
pub use command::{Command, CommandDecoder, Decoded, InitialResponse, ParseOptions, Text, Verb};
pub use data::{BareLineEndings, DataDecoder, DataError, DotStuffer, LineNormalizer, LongLines};
pub use ehlo::{Capabilities, EhloError};
pub use error::{AddressError, BuildError, CommandError, ParamError};
pub use line::{Line, LineFramer};
pub use params::{
    BodyType, ByMode, DeliverBy, MailAuth, MailParams, Notify, Orcpt, Param, RcptParams, Ret, XText,
};
pub use reply::{EnhancedCode, Reply, ReplyCode, ReplyDecoder, ReplyError, ReplyLimits};
pub use secret::Secret;

//! Tokio and rustls for the Sans-I/O [`smtp_proto`] server and client machines.
//!
//! This crate owns sockets, clocks, TLS and tasks; the protocol lives in
//! [`smtp_proto::server::Session`]. Each connection runs one machine in a loop around
//! [`poll_output`](smtp_proto::server::Session::poll_output): bytes the machine transmits
//! are written, events go to the application's [`SessionHandler`], whose [`Decision`]s go back
//! as `accept`/`reject`; `StartTls` hands the raw TCP stream to rustls; `Wait` reads
//! (only when the machine asks), sleeps until its deadline, or closes on shutdown. The
//! adapter never writes a byte the machine did not produce, and holds no input of its
//! own, so no plaintext can survive a STARTTLS.
//!
//! # Pieces
//! - [`Backend`]: asked about every new connection, returns a [`SessionHandler`] for it.
//! - [`SessionHandler`]: policy (HELO, MAIL, RCPT, AUTH, VRFY/EXPN/ETRN) and delivery
//!   (message start, body chunks, end, abort; LMTP per-recipient delivery). Methods
//!   return `impl Future`, so implementations may be `async fn`.
//! - [`Server`] and its [`Builder`]: plain (+STARTTLS) and implicit-TLS listeners, a
//!   connection limit (`421 4.3.2` over it), graceful shutdown, one `tracing` span per
//!   session (id and peer address; credentials never logged).
//!
//! - [`Connector`], from [`Connector::builder`]: the client's configuration (STARTTLS
//!   policy or implicit TLS, certificate [`Verification`] with the webpki roots by
//!   default, credentials, timeouts, a transcript hook); the builder and the [`Error`]
//!   type are [`smtp_proto::client::host`]'s, the same as the blocking adapter's.
//! - [`Connection`]: one client session; sends one message at a time with its body read
//!   from any `AsyncRead` in chunks.
//!
//! # A server with a policy
//! The [`Backend`] hands each connection a [`SessionHandler`]; this one refuses
//! recipients outside its domain, keeps each message whole ([`SessionHandler::buffer_message`],
//! then [`Context::body`]) and takes it with its queue id. STARTTLS is offered with a
//! self-signed certificate, and Ctrl-C stops the server gracefully. The program
//! `examples/tokio_server.rs` does more (a per-client limit, unknown users, files written
//! and synced), and the tests run it against smtplib and swaks.
//!
//! ```no_run
//! use smtp_proto::server::ServerConfig;
//! use smtp_proto::{EnhancedCode, ForwardPath, RcptParams, Reply};
//! use smtp_tokio::{Backend, ConnectInfo, Context, Decision, Server, SessionHandler, tls};
//!
//! struct Mx;
//! struct Session;
//!
//! impl Backend for Mx {
//!     type Handler = Session;
//!     fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
//!         Ok(Session)
//!     }
//! }
//!
//! impl SessionHandler for Session {
//!     async fn rcpt(
//!         &mut self,
//!         _: &Context<'_>,
//!         to: &ForwardPath<'static>,
//!         _: &RcptParams<'static>,
//!     ) -> Decision {
//!         if to.domain().is_some_and(|d| d.eq_ignore_case("example.org")) {
//!             return Decision::Accept;
//!         }
//!         // Checked when built: the codes must agree, the text hold no CR or LF.
//!         Decision::reject(554, (5, 7, 1), "Relay access denied").unwrap()
//!     }
//!
//!     fn buffer_message(&mut self, _: &Context<'_>) -> bool {
//!         true
//!     }
//!
//!     async fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
//!         let body = ctx.body().unwrap_or_default();
//!         // Store it here, and answer 250 only once it is stored (RFC 5321 §6.1).
//!         println!("{} octets from {:?}", body.len(), ctx.session.reverse_path());
//!         let queued = Reply::new(250, Some(EnhancedCode::of(2, 0, 0)), "Ok: queued as 1");
//!         Decision::accept_with(queued.unwrap()).unwrap()
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServerConfig::new("mx.example.org")?;
//! let (chain, key) = tls::self_signed(&["mx.example.org"])?;
//! let server = Server::builder(config, Mx)
//!     .listener(tokio::net::TcpListener::bind("127.0.0.1:2525").await?)
//!     .tls(tls::server_config(chain, key)?)
//!     .build()?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! # A client
//! One message over STARTTLS, required here, with the server's certificate checked
//! against the webpki roots (`examples/tokio_send.rs` sends standard input):
//!
//! ```no_run
//! use smtp_proto::client::{ClientConfig, Envelope, Recipient, StartTls};
//! use smtp_proto::{ForwardPath, ReversePath};
//! use smtp_tokio::{Connector, Verification};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let connector = Connector::builder(ClientConfig::new("client.example.org")?)
//!     .starttls(StartTls::Required)
//!     .verification(Verification::WebPki)
//!     .build()?;
//! let mut conn = connector.connect("mx.example.org:25").await?;
//! let from: ReversePath = "alice@example.org".parse()?;
//! let to: ForwardPath = "bob@example.org".parse()?;
//! let mut body: &[u8] = b"Subject: hi\r\n\r\nHello.\r\n";
//! let outcome = conn.send(Envelope::new(from, vec![Recipient::new(to)]), &mut body).await?;
//! println!("{:?} {:?}", outcome.status, outcome.reply);
//! conn.quit().await?;
//! # Ok(()) }
//! ```
//!
//! # TLS
//! [`tls`] builds rustls configurations with the `ring` provider (client ones from the
//! webpki roots, a CA file or an explicit insecure mode; server ones from PEM files or a
//! self-signed certificate): [`smtp_tls`], the same as the blocking adapter's.
//!
//! # Memory
//! An idle session holds its machine (about 650 bytes), its socket and its task, and no
//! read buffer: reads go through an 8 KiB stack buffer that exists only while a read
//! completes, and the large, rare futures (handler calls, TLS handshakes) are boxed for
//! their duration only. Measured with `smtp serve --discard` (release build, logging at
//! `warn`) and 2000 plain connections idle after EHLO: 4.5 KiB of resident memory per
//! connection (`crates/smtp-cli/bench/idle.py`).
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod client;
mod host;
mod server;
mod session;
mod stream;
pub mod tls;

pub use client::{Connection, Connector, ConnectorBuilder, DEFAULT_BODY_CHUNK, Error, Transcript};
pub use host::{Backend, ConnectInfo, Context, Decision, SessionHandler};
pub use server::{Builder, Server};
pub use smtp_proto::server::host::{ListenerAddr, SetupError};
pub use tls::{TlsError, Verification};

//! `smtp`: a standalone SMTP server and relay (`smtp serve`, with `smtp queue` for its
//! relay queue) and a client (`smtp send`),
//! built on `smtp-proto` and either adapter: `smtp-tokio` or `smtp-blocking` (`--io`).
//!
//! Both commands keep what is not I/O in shared, synchronous code (options, policy,
//! storage, TLS configuration, output, exit codes); only the driving of connections
//! differs between `--io tokio` and `--io blocking`.

mod delivery;
mod dkim;
mod maildir;
mod metrics;
mod passwords;
mod policy;
mod queue;
mod send;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// EX_USAGE (sysexits.h): bad arguments.
pub(crate) const EX_USAGE: u8 = 64;
/// EX_UNAVAILABLE: a permanent failure.
pub(crate) const EX_UNAVAILABLE: u8 = 69;
/// EX_SOFTWARE: the server failed at run time.
pub(crate) const EX_SOFTWARE: u8 = 70;
/// EX_CANTCREAT: an output file could not be created (`smtp dkim keygen`: it exists).
pub(crate) const EX_CANTCREAT: u8 = 73;
/// EX_TEMPFAIL: try again later.
pub(crate) const EX_TEMPFAIL: u8 = 75;
/// EX_CONFIG: a file given on the command line could not be used.
pub(crate) const EX_CONFIG: u8 = 78;

/// Which I/O adapter runs the connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Io {
    /// The tokio adapter (`smtp-tokio`).
    Tokio,
    /// The blocking adapter (`smtp-blocking`): `std::net`, a thread per connection.
    Blocking,
}

/// SMTP server and client.
#[derive(Debug, Parser)]
#[command(name = "smtp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an SMTP (or LMTP) server that stores what it accepts in a Maildir.
    Serve(Box<serve::ServeArgs>),
    /// Send a message, or many (load mode), like swaks and smtp-source.
    Send(Box<send::SendArgs>),
    /// The relay queue of `smtp serve`: list, flush, delete, show.
    Queue(queue::QueueArgs),
    /// DKIM keys: `smtp dkim keygen`.
    Dkim(dkim::keygen::DkimArgs),
}

fn main() -> ExitCode {
    // `smtp serve --config FILE`: the file's options go in before clap parses.
    let argv = match serve::config::prepare(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(code) => return ExitCode::from(code),
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; usage errors are EX_USAGE.
            return ExitCode::from(if e.use_stderr() { EX_USAGE } else { 0 });
        }
    };
    ExitCode::from(match cli.command {
        Command::Serve(args) => serve::main(*args),
        Command::Send(args) => send::main(*args),
        Command::Queue(args) => queue::main(args),
        Command::Dkim(args) => dkim::keygen::main(args),
    })
}

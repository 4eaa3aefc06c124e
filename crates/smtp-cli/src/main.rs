//! `smtp`: a standalone SMTP server (`smtp serve`) and a client (`smtp send`),
//! built on `smtp-proto` and the `smtp-tokio` adapter.

mod maildir;
mod passwords;
mod send;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; usage errors are EX_USAGE.
            return ExitCode::from(if e.use_stderr() { serve::EX_USAGE } else { 0 });
        }
    };
    ExitCode::from(match cli.command {
        Command::Serve(args) => serve::main(*args),
        Command::Send(args) => send::main(*args),
    })
}

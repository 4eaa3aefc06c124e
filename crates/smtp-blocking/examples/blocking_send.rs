//! Sends one message read from standard input with the blocking client.
//!
//! ```text
//! cargo run -p smtp-blocking --example blocking_send -- SERVER FROM TO [--insecure] < message.eml
//! ```
//!
//! STARTTLS is used when the server offers it, with certificates checked against the
//! web PKI roots; `--insecure` accepts any certificate (a test server's self-signed one).
//! Set `SMTP_USER` and `SMTP_PASSWORD` to authenticate.

use std::process::ExitCode;

use smtp_blocking::{Connector, Verification};
use smtp_proto::client::{ClientConfig, Envelope, Recipient};
use smtp_proto::sasl::ClientCredentials;
use smtp_proto::{ForwardPath, Mailbox, ReversePath};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, from, to, rest @ ..] = args.as_slice() else {
        eprintln!("usage: send SERVER FROM TO [--insecure] < message");
        return ExitCode::from(64);
    };
    match send(server, from, to, rest.iter().any(|a| a == "--insecure")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error says why, with its I/O or TLS cause (also its `source`).
            eprintln!("send: {e}");
            ExitCode::from(75)
        }
    }
}

fn send(
    server: &str,
    from: &str,
    to: &str,
    insecure: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = Connector::builder(ClientConfig::new("localhost")?);
    if insecure {
        builder = builder.verification(Verification::Insecure);
    }
    if let (Ok(user), Ok(password)) = (std::env::var("SMTP_USER"), std::env::var("SMTP_PASSWORD")) {
        builder = builder.credentials(ClientCredentials::password(user, password));
    }
    let connector = builder.build()?;
    let mut conn = connector.connect(server)?;
    let envelope = Envelope::new(
        ReversePath::Mailbox(Mailbox::parse(from)?.into_owned()),
        vec![Recipient::new(ForwardPath::Mailbox(
            Mailbox::parse(to)?.into_owned(),
        ))],
    );
    let outcome = conn.send(envelope, std::io::stdin().lock())?;
    println!("{:?} (tls: {})", outcome.status, conn.is_tls());
    if let Some(reply) = &outcome.reply {
        println!("{reply}");
    }
    conn.quit()?;
    Ok(())
}

//! Sends one message read from standard input with the blocking client.
//!
//! ```text
//! cargo run -p smtp-blocking --example blocking_send -- SERVER FROM TO [--insecure] < message.eml
//! ```
//!
//! STARTTLS is used when the server offers it, with certificates checked against the
//! web PKI roots; `--insecure` accepts any certificate (a test server's self-signed one).
//! Set `SMTP_USER` and `SMTP_PASSWORD` to authenticate. It prints the outcome and the
//! server's last reply; the exit status is 0 when the message was taken, 69 when it
//! was refused for good, 75 otherwise (a temporary refusal, or an error before it was
//! sent, such as a certificate that does not verify).

use std::process::ExitCode;

use smtp_blocking::{Connector, Verification};
use smtp_proto::client::{ClientConfig, DeliveryStatus, Envelope, Recipient};
use smtp_proto::sasl::ClientCredentials;
use smtp_proto::{ForwardPath, ReversePath};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, from, to, rest @ ..] = args.as_slice() else {
        eprintln!("usage: send SERVER FROM TO [--insecure] < message");
        return ExitCode::from(64);
    };
    match send(server, from, to, rest.iter().any(|a| a == "--insecure")) {
        Ok(DeliveryStatus::Sent) => ExitCode::SUCCESS,
        // Refused for good (sysexits' EX_UNAVAILABLE), or to be tried again (EX_TEMPFAIL).
        Ok(DeliveryStatus::Permanent) => ExitCode::from(69),
        Ok(_) => ExitCode::from(75),
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
) -> Result<DeliveryStatus, Box<dyn std::error::Error>> {
    let mut builder = Connector::builder(ClientConfig::new("localhost")?);
    if insecure {
        builder = builder.verification(Verification::Insecure);
    }
    if let (Ok(user), Ok(password)) = (std::env::var("SMTP_USER"), std::env::var("SMTP_PASSWORD")) {
        builder = builder.credentials(ClientCredentials::password(user, password));
    }
    let connector = builder.build()?;
    // `<alice@example.org>` or `alice@example.org`, `<>` for a bounce: checked before
    // connecting.
    let from: ReversePath = from.parse()?;
    let to: ForwardPath = to.parse()?;
    let envelope = Envelope::new(from, vec![Recipient::new(to)]);
    let mut conn = connector.connect(server)?;
    let outcome = conn.send(envelope, std::io::stdin().lock())?;
    println!("{:?} (tls: {})", outcome.status, conn.is_tls());
    if let Some(reply) = &outcome.reply {
        println!("{reply}");
    }
    conn.quit()?;
    Ok(outcome.status)
}

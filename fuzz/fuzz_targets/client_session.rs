//! A whole client session with two queued messages, against arbitrary server bytes
//! (raw, or realistic replies picked by the input) in arbitrary chunks, with the
//! configuration, TLS and the passing of time drawn from the fuzz input.
//!
//! Checks: no panic; `poll_output` always comes to `Wait`; what the client sends is
//! CRLF lines only (the bodies given are, so no bare CR or LF may appear: no smuggling,
//! no injection); each message is reported done at most once, and once the connection
//! ends, every queued message has been reported.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smtp_fuzz::{chunks, crlf_lines_only};
use smtp_proto::client::{
    Client, ClientConfig, ClientEvent, ClientOutput, Envelope, Recipient, StartTls,
};
use smtp_proto::sasl::ClientCredentials;
use smtp_proto::{BodyType, ForwardPath, Mailbox, Notify, ReversePath};

const CANNED: &[&[u8]] = &[
    b"220 mx.example.org ESMTP\r\n",
    b"220-mx.example.org\r\n220 ESMTP\r\n",
    b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN CRAM-MD5\r\n",
    b"250-mx.example.org\r\n250 PIPELINING\r\n",
    b"250 mx.example.org\r\n",
    b"250 2.1.0 Ok\r\n",
    b"250 2.1.5 Ok\r\n",
    b"250 2.0.0 Ok: queued\r\n",
    b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"220 2.0.0 Ready to start TLS\r\n",
    b"334 \r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"334 PDEyMy40NTZAbXguZXhhbXBsZS5vcmc+\r\n",
    b"235 2.7.0 Authentication successful\r\n",
    b"535 5.7.8 Authentication credentials invalid\r\n",
    b"550 5.1.1 No such user\r\n",
    b"452 4.2.2 Mailbox full\r\n",
    b"421 4.3.2 Shutting down\r\n",
    b"554 5.7.1 Rejected\r\n",
    b"503 5.5.1 Bad sequence\r\n",
    b"221 2.0.0 Bye\r\n",
    b"250-",
    b"\r\n",
];

#[derive(Arbitrary, Debug)]
enum Piece {
    Canned(u8),
    Raw(Vec<u8>),
    /// Time passes, in seconds.
    Tick(u16),
    /// The server's side of STARTTLS completes.
    Tls,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: u16,
    pieces: Vec<Piece>,
    sizes: Vec<u8>,
    eight_bit: bool,
    size: Option<u16>,
}

fn config(flags: u16) -> ClientConfig {
    let f = |bit: u16| flags & (1 << bit) != 0;
    let mut c = ClientConfig::new("client.example.org").unwrap();
    c.lmtp = f(0);
    c.starttls = match flags >> 1 & 3 {
        0 => StartTls::Never,
        1 => StartTls::Opportunistic,
        _ => StartTls::Required,
    };
    if f(3) {
        c.credentials = Some(ClientCredentials::password("alice", "s3cret"));
    } else if f(4) {
        c.credentials = Some(ClientCredentials::token("alice@example.org", "tok"));
    }
    c.allow_cleartext_auth = f(5);
    c.pipelining = !f(6);
    c.chunking = !f(7);
    c.transcript = f(8);
    c
}

fn envelope(input: &Input, n: usize) -> Envelope {
    let addr = |s: &str| Mailbox::parse(s).unwrap().into_owned();
    let mut recipients: Vec<Recipient> = (0..n)
        .map(|i| Recipient::new(ForwardPath::Mailbox(addr(&format!("r{i}@example.org")))))
        .collect();
    recipients[0].notify = Some(Notify {
        success: true,
        failure: true,
        delay: false,
    });
    let mut env = Envelope::new(ReversePath::Mailbox(addr("a@example.org")), recipients);
    env.size = input.size.map(u64::from);
    if input.eight_bit {
        env.body = BodyType::EightBitMime;
    }
    env
}

const BODY: &[u8] = b"Subject: hi\r\n\r\n.a line with a dot\r\nbye\r\n";

struct Harness {
    client: Client,
    sent: Vec<u8>,
    done: HashMap<u64, usize>,
    closed: bool,
    starttls: bool,
}

impl Harness {
    fn drain(&mut self) {
        for _ in 0..100_000 {
            match self.client.poll_output() {
                ClientOutput::Transmit(b) => {
                    assert!(!self.closed, "transmit after close");
                    self.sent.extend_from_slice(&b);
                }
                ClientOutput::Event(ClientEvent::BodyWanted { .. }) => {
                    // Asked for, so wanted: a message that ended meanwhile withdraws it.
                    self.client.send_body(&BODY[..10]).unwrap();
                    self.client.send_body(&BODY[10..]).unwrap();
                    self.client.end_body().unwrap();
                }
                ClientOutput::Event(ClientEvent::MessageDone(o)) => {
                    *self.done.entry(o.id).or_default() += 1;
                    assert_eq!(self.done[&o.id], 1, "message {} reported twice", o.id);
                }
                ClientOutput::Event(_) => {}
                ClientOutput::StartTls => self.starttls = true,
                ClientOutput::Close => self.closed = true,
                ClientOutput::Wait { .. } => return,
            }
        }
        panic!("poll_output never waited");
    }
}

fuzz_target!(|input: Input| {
    let mut now = Instant::now();
    let mut h = Harness {
        client: Client::new(Arc::new(config(input.config)), false, now),
        sent: Vec::new(),
        done: HashMap::new(),
        closed: false,
        starttls: false,
    };
    let ids = [
        h.client.send_mail(envelope(&input, 1)).unwrap(),
        h.client.send_mail(envelope(&input, 3)).unwrap(),
    ];
    if input.config & (1 << 9) != 0 {
        h.client.quit();
    }
    h.drain();
    let mut stream = Vec::new();
    let feed = |h: &mut Harness, stream: &mut Vec<u8>, now: Instant| {
        for chunk in chunks(stream, &input.sizes) {
            h.client.handle_input(chunk, now);
            h.drain();
        }
        stream.clear();
    };
    for piece in &input.pieces {
        match piece {
            Piece::Canned(i) => stream.extend_from_slice(CANNED[usize::from(*i) % CANNED.len()]),
            Piece::Raw(bytes) => stream.extend_from_slice(bytes),
            Piece::Tick(secs) => {
                feed(&mut h, &mut stream, now);
                now += Duration::from_secs(u64::from(*secs));
                h.client.handle_timeout(now);
                h.drain();
            }
            Piece::Tls => {
                feed(&mut h, &mut stream, now);
                if h.starttls {
                    h.starttls = false;
                    h.client.handle_tls_established(now);
                    h.drain();
                }
            }
        }
    }
    feed(&mut h, &mut stream, now);
    h.client.handle_eof(now);
    h.drain();
    assert!(h.client.is_closed(), "still open after EOF");
    if let Err(e) = crlf_lines_only(&h.sent) {
        panic!("{e}: {:?}", String::from_utf8_lossy(&h.sent));
    }
    for id in ids {
        assert_eq!(h.done.get(&id), Some(&1), "message {id} never reported");
    }
});

//! The client and the server machines talking to each other in memory, on virtual time,
//! with fuzzed configurations (pipelining, chunking, LMTP, STARTTLS, AUTH, size limit),
//! envelopes, bodies, host decisions, and the way bytes are cut between the two.
//!
//! Checks: no panic; the pair always settles and both sides close after QUIT; every
//! message is reported once; and the messages the server stored are exactly those the
//! client reports as sent, each equal to its body as the transfer defines it (BDAT: the
//! octets as they are; DATA: line endings normalised to CRLF and a final CRLF added).
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smtp_fuzz::{chunks, data_expected};
use smtp_proto::client::{
    Client, ClientConfig, ClientEvent, ClientOutput, DeliveryStatus, Envelope, MessageOutcome,
    Recipient, StartTls,
};
use smtp_proto::sasl::{ClientCredentials, Credentials};
use smtp_proto::server::{Event, Output, PeerInfo, Session, ServerConfig};
use smtp_proto::{BodyType, ForwardPath, LongLines, Mailbox, Reply, ReversePath};

#[derive(Arbitrary, Debug)]
struct Message {
    recipients: u8,
    kind: u8,
    body: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    flags: u16,
    max_size: Option<u16>,
    messages: Vec<Message>,
    /// Octets per `send_body` call.
    piece: u8,
    /// How bytes are cut on their way from one machine to the other.
    sizes: Vec<u8>,
    decisions: Vec<u8>,
}

/// With `FUZZ_TRACE` set, prints the transcript (to read a crash).
fn trace(who: &str, bytes: &[u8]) {
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("{who}: {:?}", String::from_utf8_lossy(bytes));
    }
}

struct Pair<'a> {
    client: Client,
    server: Session,
    bodies: HashMap<u64, Vec<u8>>,
    piece: usize,
    sizes: &'a [u8],
    decisions: std::iter::Cycle<std::slice::Iter<'a, u8>>,
    body: Vec<u8>,
    lmtp_body: Option<Vec<u8>>,
    stored: Vec<Vec<u8>>,
    outcomes: Vec<MessageOutcome>,
    client_tls: bool,
    server_tls: bool,
    closed: (bool, bool),
    challenge: u32,
}

impl Pair<'_> {
    fn decide(&mut self) -> u8 {
        self.decisions.next().copied().unwrap_or(255)
    }

    fn run(&mut self, mut now: Instant) {
        for _ in 0..10_000 {
            let mut progress = false;
            loop {
                match self.client.poll_output() {
                    ClientOutput::Transmit(b) => {
                        progress = true;
                        trace("C", &b);
                        for c in chunks(&b, self.sizes) {
                            self.server.handle_input(c, now);
                        }
                    }
                    ClientOutput::Event(e) => {
                        progress = true;
                        self.client_event(e);
                    }
                    ClientOutput::StartTls => {
                        progress = true;
                        self.client_tls = true;
                    }
                    ClientOutput::Close => {
                        progress = true;
                        assert!(!self.closed.0, "client closed twice");
                        self.closed.0 = true;
                        self.server.handle_eof(now);
                    }
                    ClientOutput::Wait { .. } => break,
                }
            }
            loop {
                match self.server.poll_output() {
                    Output::Transmit(b) => {
                        progress = true;
                        trace("S", &b);
                        for c in chunks(&b, self.sizes) {
                            self.client.handle_input(c, now);
                        }
                    }
                    Output::Event(e) => {
                        progress = true;
                        self.server_event(e);
                    }
                    Output::StartTls => {
                        progress = true;
                        self.server_tls = true;
                    }
                    Output::Close => {
                        progress = true;
                        assert!(!self.closed.1, "server closed twice");
                        self.closed.1 = true;
                        self.client.handle_eof(now);
                    }
                    // Replies held back (the error delay): the time passes, as an
                    // adapter would let it.
                    Output::Wait {
                        deadline: Some(until),
                        read: false,
                    } if !self.server_tls && !self.closed.1 => {
                        progress = true;
                        now = now.max(until);
                        self.server.handle_timeout(now);
                    }
                    Output::Wait { .. } => break,
                }
            }
            if self.client_tls && self.server_tls {
                self.client_tls = false;
                self.server_tls = false;
                self.server.handle_tls_established(now);
                self.client.handle_tls_established(now);
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("the machines never settled");
    }

    fn client_event(&mut self, e: ClientEvent) {
        trace("client event", format!("{e:?}").as_bytes());
        match e {
            ClientEvent::BodyWanted { id } => {
                let body = self.bodies.remove(&id).expect("a body for the message");
                for piece in body.chunks(self.piece) {
                    self.client.send_body(piece).unwrap();
                }
                self.client.end_body().unwrap();
            }
            ClientEvent::MessageDone(o) => self.outcomes.push(o),
            _ => {}
        }
    }

    fn server_event(&mut self, e: Event) {
        trace("server event", format!("{e:?}").as_bytes());
        let r = match e {
            Event::MessageStart => {
                self.body.clear();
                self.lmtp_body = None;
                Ok(())
            }
            Event::Body(b) => {
                self.body.extend_from_slice(&b);
                Ok(())
            }
            Event::MessageEnd => match self.decide() % 4 {
                0 => self.server.reject(Reply::fixed(554, Some((5, 7, 1)), "Spam")),
                1 => self.server.reject(Reply::fixed(451, Some((4, 3, 0)), "Later")),
                _ => {
                    self.stored.push(std::mem::take(&mut self.body));
                    self.server.accept()
                }
            },
            Event::LmtpMessageEnd { .. } => {
                self.lmtp_body = Some(std::mem::take(&mut self.body));
                Ok(())
            }
            Event::LmtpDelivery { .. } => match self.decide() % 3 {
                0 => self.server.reject(Reply::fixed(452, Some((4, 2, 2)), "Full")),
                _ => {
                    if let Some(body) = self.lmtp_body.take() {
                        self.stored.push(body);
                    }
                    self.server.accept()
                }
            },
            Event::Rcpt { .. } => match self.decide() % 4 {
                0 => self.server.reject(Reply::fixed(550, Some((5, 1, 1)), "No such user")),
                1 => self.server.reject(Reply::fixed(452, Some((4, 2, 2)), "Full")),
                _ => self.server.accept(),
            },
            Event::AuthChallengeNeeded { .. } => {
                self.challenge += 1;
                self.server
                    .auth_challenge(&format!("<{}.1@mx.example.org>", self.challenge))
            }
            Event::Auth { credentials, .. } => {
                let ok = match &credentials {
                    Credentials::XOAuth2 { token, .. } => token.expose() == "s3cret",
                    c => c.verify("s3cret"),
                };
                assert!(ok, "the client's own credentials do not verify");
                self.server.accept()
            }
            e if e.needs_decision() => self.server.accept(),
            _ => Ok(()),
        };
        r.unwrap();
    }
}

fuzz_target!(|input: Input| {
    let f = |bit: u16| input.flags & (1 << bit) != 0;
    let lmtp = f(0);
    let mut sc = ServerConfig::new("mx.example.org").unwrap();
    sc.lmtp = lmtp;
    sc.extensions.pipelining = !f(1);
    sc.extensions.chunking = !f(2);
    sc.extensions.binary_mime = !f(3);
    sc.extensions.starttls = f(4);
    if f(5) {
        sc.extensions.auth = vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()];
    }
    sc.limits.max_message_size = input.max_size.map(u64::from);
    sc.limits.max_errors = 1000;
    let mut cc = ClientConfig::new("client.example.org").unwrap();
    cc.lmtp = lmtp;
    cc.pipelining = !f(6);
    cc.chunking = !f(7);
    cc.starttls = if f(8) {
        StartTls::Opportunistic
    } else {
        StartTls::Never
    };
    if f(9) {
        cc.credentials = Some(ClientCredentials::password("alice", "s3cret"));
    }
    cc.long_lines = LongLines::Accept;

    let now = Instant::now();
    let mut pair = Pair {
        client: Client::new(Arc::new(cc), false, now),
        server: Session::new(Arc::new(sc), PeerInfo::default(), now),
        bodies: HashMap::new(),
        piece: usize::from(input.piece).max(1),
        sizes: &input.sizes,
        decisions: input.decisions.iter().cycle(),
        body: Vec::new(),
        lmtp_body: None,
        stored: Vec::new(),
        outcomes: Vec::new(),
        client_tls: false,
        server_tls: false,
        closed: (false, false),
        challenge: 0,
    };
    let mut expected = HashMap::new();
    for m in input.messages.iter().take(4) {
        let rcpts = usize::from(m.recipients % 4) + 1;
        let to = (0..rcpts)
            .map(|i| {
                let mb = Mailbox::new(&format!("r{i}"), "example.org").unwrap();
                Recipient::new(ForwardPath::Mailbox(mb))
            })
            .collect();
        let from = Mailbox::new("a", "example.org").unwrap();
        let mut env = Envelope::new(ReversePath::Mailbox(from), to);
        env.body = match m.kind % 3 {
            0 => BodyType::SevenBit,
            1 => BodyType::EightBitMime,
            _ => BodyType::BinaryMime,
        };
        // Only a BINARYMIME body goes as it is; text is CRLF-normalised with DATA and BDAT
        // alike (the client never sends bare CR or LF in text).
        let binary = env.body == BodyType::BinaryMime;
        let id = pair.client.send_mail(env).unwrap();
        pair.bodies.insert(id, m.body.clone());
        let wire = if binary { m.body.clone() } else { data_expected(&m.body) };
        expected.insert(id, wire);
    }
    pair.client.quit();
    pair.run(now);

    assert!(pair.closed.0 && pair.closed.1, "not both closed after QUIT");
    let mut ids: Vec<u64> = pair.outcomes.iter().map(|o| o.id).collect();
    ids.sort_unstable();
    let mut all: Vec<u64> = expected.keys().copied().collect();
    all.sort_unstable();
    assert_eq!(ids, all, "each message reported once");
    let delivered: Vec<&Vec<u8>> = pair
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, DeliveryStatus::Sent | DeliveryStatus::Partial))
        .map(|o| &expected[&o.id])
        .collect();
    let stored: Vec<&Vec<u8>> = pair.stored.iter().collect();
    assert_eq!(stored, delivered, "{:?}", pair.outcomes);
});

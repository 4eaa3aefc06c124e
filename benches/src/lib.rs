//! Fixtures and drivers for the benchmarks in `benches/`: the same work done by
//! `smtp-proto`, by its peers (Stalwart's `smtp-proto`, `lettre`), and by a bare `memchr`
//! scan, each returning something the benchmark can check and keep from being optimised
//! away. `tests/peers.rs` checks that every driver reads the fixtures the same way, so the
//! benchmarks compare equal work.

use std::sync::Arc;
use std::time::Instant;

use smtp_proto::client::{
    Client, ClientConfig, ClientEvent, ClientOutput, DeliveryStatus, Envelope, Recipient, StartTls,
};
use smtp_proto::data::{DataDecoder, DecodeStatus, DotStuffer, LongLines};
use smtp_proto::server::{Output, PeerInfo, ServerConfig, Session};
use smtp_proto::{
    Capabilities, CommandDecoder, Decoded, ForwardPath, Mailbox, ReplyDecoder, ReplyLimits,
    ReversePath,
};

/// The data files in `fixtures/`.
pub mod fixtures {
    /// A pipelined client session of 20 commands: EHLO, MAIL with SIZE and BODY, 10 RCPT
    /// (some with NOTIFY and ORCPT), DATA, RSET, a second MAIL with two RCPT, NOOP, RSET,
    /// QUIT.
    pub const COMMANDS: &[u8] = include_bytes!("../fixtures/commands.txt");
    /// A 12-line EHLO reply (Postfix's, with both AUTH forms).
    pub const EHLO: &[u8] = include_bytes!("../fixtures/ehlo.txt");
    /// Ten single-line replies with enhanced status codes, as a client reads them.
    pub const REPLIES: &[u8] = include_bytes!("../fixtures/replies.txt");
    /// A 64 KiB message: headers, text, HTML and a base64 attachment.
    pub const BODY: &[u8] = include_bytes!("../fixtures/body-64k.eml");
    /// A 64 KiB message whose every line starts with a dot.
    pub const DOTS: &[u8] = include_bytes!("../fixtures/dots.eml");
}

/// `bytes` `n` times over.
pub fn repeat(bytes: &[u8], n: usize) -> Vec<u8> {
    bytes.repeat(n)
}

/// A message as it goes on the wire after `354`: dot-stuffed, ending in `CRLF . CRLF`.
pub fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 16 + 5);
    encode_ours(body, &mut out);
    out
}

// ---- commands ---------------------------------------------------------------------

/// Parses every command in `buf` with [`CommandDecoder`]; returns how many.
pub fn commands_ours(buf: &[u8]) -> usize {
    let mut decoder = CommandDecoder::default();
    let mut rest = buf;
    let mut n = 0;
    loop {
        match decoder.decode(rest) {
            Decoded::Command { command, consumed } => {
                std::hint::black_box(&command);
                n += 1;
                rest = &rest[consumed..];
            }
            Decoded::NeedMore { .. } => return n,
            Decoded::Error { error, .. } => panic!("fixture does not parse: {error}"),
        }
    }
}

/// Parses every command in `buf` with Stalwart's `RequestReceiver`; returns how many.
pub fn commands_stalwart(buf: &[u8]) -> usize {
    use stalwart_smtp_proto::Error;
    use stalwart_smtp_proto::request::receiver::RequestReceiver;
    let mut receiver = RequestReceiver::default();
    let mut iter = buf.iter();
    let mut n = 0;
    loop {
        match receiver.ingest(&mut iter) {
            Ok(request) => {
                std::hint::black_box(&request);
                n += 1;
            }
            Err(Error::NeedsMoreData { .. }) => return n,
            Err(e) => panic!("fixture does not parse: {e:?}"),
        }
    }
}

/// The same, the input arriving in reads of `read` octets: each is appended to a buffer
/// the way a host buffers a socket (the decoder is handed what is buffered, and what it
/// has used is dropped from the front, the buffer compacted now and then rather than at
/// every command). Returns how many commands.
pub fn commands_ours_reads(buf: &[u8], read: usize) -> usize {
    let mut decoder = CommandDecoder::default();
    let mut inbuf: Vec<u8> = Vec::with_capacity(8192);
    let mut head = 0;
    let mut n = 0;
    for piece in buf.chunks(read) {
        if head >= 4096 {
            inbuf.drain(..head);
            head = 0;
        }
        inbuf.extend_from_slice(piece);
        loop {
            match decoder.decode(&inbuf[head..]) {
                Decoded::Command { command, consumed } => {
                    std::hint::black_box(&command);
                    n += 1;
                    head += consumed;
                }
                Decoded::NeedMore { discarded } => {
                    head += discarded;
                    break;
                }
                Decoded::Error { error, .. } => panic!("fixture does not parse: {error}"),
            }
        }
    }
    n
}

/// The same with Stalwart's `RequestReceiver`, which keeps the start of a line that has
/// not ended in a buffer of its own. Returns how many commands.
pub fn commands_stalwart_reads(buf: &[u8], read: usize) -> usize {
    use stalwart_smtp_proto::Error;
    use stalwart_smtp_proto::request::receiver::RequestReceiver;
    let mut receiver = RequestReceiver::default();
    let mut n = 0;
    for piece in buf.chunks(read) {
        let mut iter = piece.iter();
        loop {
            match receiver.ingest(&mut iter) {
                Ok(request) => {
                    std::hint::black_box(&request);
                    n += 1;
                }
                Err(Error::NeedsMoreData { .. }) => break,
                Err(e) => panic!("fixture does not parse: {e:?}"),
            }
        }
    }
    n
}

// ---- replies ----------------------------------------------------------------------

/// Decodes every reply in `buf` with [`ReplyDecoder`]; returns how many lines they had.
pub fn replies_ours(buf: &[u8]) -> usize {
    let mut decoder = ReplyDecoder::new(ReplyLimits::default());
    let mut rest = buf;
    let mut lines = 0;
    while let Some((reply, used)) = decoder.decode(rest).expect("fixture decodes") {
        lines += reply.lines().len();
        rest = &rest[used..];
    }
    lines
}

/// Decodes every reply in `buf` with Stalwart's `ResponseReceiver`; returns how many.
pub fn replies_stalwart(buf: &[u8]) -> usize {
    use stalwart_smtp_proto::Error;
    use stalwart_smtp_proto::response::parser::ResponseReceiver;
    let mut receiver = ResponseReceiver::default();
    let mut iter = buf.iter();
    let mut n = 0;
    loop {
        match receiver.parse(&mut iter) {
            Ok(response) => {
                std::hint::black_box(&response);
                receiver.reset();
                n += 1;
            }
            Err(Error::NeedsMoreData { .. }) => return n,
            Err(e) => panic!("fixture does not parse: {e:?}"),
        }
    }
}

/// Splits `buf` into replies, one string each, for `lettre`, whose public parser takes
/// one reply as a `&str` (done before timing).
pub fn split_replies(buf: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(buf).expect("ASCII fixture");
    text.split_inclusive("\r\n").map(str::to_owned).collect()
}

/// Parses each reply with `lettre`'s `Response::from_str`; returns how many lines.
pub fn replies_lettre(replies: &[String]) -> usize {
    use lettre::transport::smtp::response::Response;
    replies
        .iter()
        .map(|r| {
            let response: Response = r.parse().expect("fixture parses");
            response.message().count()
        })
        .sum()
}

// ---- EHLO -------------------------------------------------------------------------

/// Reads capabilities from an EHLO reply with [`Capabilities::parse`].
pub fn ehlo_ours(buf: &[u8]) -> Capabilities {
    Capabilities::parse(buf).expect("fixture parses")
}

/// The same through [`ReplyDecoder`] and [`Capabilities::from_reply`], as the client
/// machine does it.
pub fn ehlo_ours_via_reply(buf: &[u8]) -> Capabilities {
    let mut decoder = ReplyDecoder::new(ReplyLimits::default());
    let (reply, _) = decoder.decode(buf).expect("decodes").expect("complete");
    Capabilities::from_reply(&reply).expect("EHLO")
}

/// Reads capabilities with Stalwart's `EhloResponse::parse`.
pub fn ehlo_stalwart(buf: &[u8]) -> stalwart_smtp_proto::EhloResponse<String> {
    stalwart_smtp_proto::EhloResponse::parse(&mut buf.iter()).expect("fixture parses")
}

/// Reads capabilities with `lettre`: `Response::from_str`, then `ServerInfo::from_response`.
pub fn ehlo_lettre(text: &str) -> lettre::transport::smtp::extension::ServerInfo {
    use lettre::transport::smtp::extension::ServerInfo;
    use lettre::transport::smtp::response::Response;
    let response: Response = text.parse().expect("fixture parses");
    ServerInfo::from_response(&response).expect("EHLO")
}

// ---- DATA -------------------------------------------------------------------------

/// Decodes a DATA body with [`DataDecoder::decode_with`], copying the content into
/// `out` as a server storing the message would; returns the octets used.
pub fn data_ours(wire: &[u8], out: &mut Vec<u8>) -> usize {
    let mut decoder = DataDecoder::new();
    match decoder.decode_with(wire, |d| out.extend_from_slice(d)) {
        DecodeStatus::Done { outcome, consumed } => {
            assert_eq!(outcome, Ok(()));
            consumed
        }
        DecodeStatus::NeedMore => panic!("no end of data"),
    }
}

/// The same without copying: the decoder hands out slices of the input, and only their
/// lengths are added up.
pub fn data_ours_zero_copy(wire: &[u8]) -> usize {
    let mut decoder = DataDecoder::new();
    let mut content = 0;
    match decoder.decode_with(wire, |d| content += d.len()) {
        DecodeStatus::Done { .. } => content,
        DecodeStatus::NeedMore => panic!("no end of data"),
    }
}

/// Decodes a DATA body with Stalwart's `DataReceiver` into `out` (it copies; it has no
/// other way out). Returns the octets used.
pub fn data_stalwart(wire: &[u8], out: &mut Vec<u8>) -> usize {
    use stalwart_smtp_proto::request::receiver::DataReceiver;
    let mut receiver = DataReceiver::new();
    let mut iter = wire.iter();
    assert!(receiver.ingest(&mut iter, out), "no end of data");
    wire.len() - iter.as_slice().len()
}

/// The floor: one `memchr2` pass over the same bytes stopping at every CR and LF, the
/// least a decoder that must see every line ending (to find the end of data and refuse a
/// bare CR or LF) can do. Returns the sum of the positions, so that every one is visited.
pub fn memchr2_floor(wire: &[u8]) -> usize {
    memchr::memchr2_iter(b'\r', b'\n', wire).fold(0, |sum, i| sum ^ i)
}

/// A lower floor: one `memchr` pass stopping at every LF (what a decoder that ignores bare
/// CR could do). Not `count()`, which `memchr` turns into a vector population count that
/// stops nowhere.
pub fn memchr_floor(wire: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', wire).fold(0, |sum, i| sum ^ i)
}

/// `memchr`'s vectorised count of LF octets: how fast the bytes go by when nothing has to
/// happen at a line ending.
pub fn memchr_count(wire: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', wire).count()
}

/// Encodes a message for DATA with [`DotStuffer`] into `out`.
pub fn encode_ours(body: &[u8], out: &mut Vec<u8>) {
    let mut stuffer = DotStuffer::new().with_long_lines(LongLines::Accept);
    stuffer.encode(body, out).expect("accepts long lines");
    stuffer.finish(out).expect("no error");
}

// ---- sessions ---------------------------------------------------------------------

/// What a pipelining client sends for `messages` messages of `body` to 3 recipients each,
/// over DATA, then QUIT: the input of [`server_session`], in rounds. Each round must be
/// answered before the next is sent: EHLO (RFC 2920 §3.1), then MAIL, RCPT and DATA as one
/// group, then the message after the `354` with the next group (or QUIT) pipelined behind
/// it.
pub fn client_rounds(body: &[u8], messages: usize) -> Vec<Vec<u8>> {
    let wire = stuffed(body);
    let group: &[u8] = b"MAIL FROM:<alice@example.org> SIZE=65536 BODY=8BITMIME\r\n\
        RCPT TO:<bob@example.com>\r\n\
        RCPT TO:<carol@example.com> NOTIFY=SUCCESS,FAILURE\r\n\
        RCPT TO:<dave@example.net>\r\n\
        DATA\r\n";
    let mut rounds = vec![b"EHLO client.example.org\r\n".to_vec(), group.to_vec()];
    for i in 0..messages {
        let next: &[u8] = if i + 1 < messages { group } else { b"QUIT\r\n" };
        rounds.push([&wire[..], next].concat());
    }
    rounds
}

/// Runs a whole session through the server machine: each round in reads of `read`
/// octets, every decision accepted, the body events dropped. Returns the octets of
/// message content seen plus the octets sent back.
pub fn server_session(config: &Arc<ServerConfig>, rounds: &[Vec<u8>], read: usize) -> usize {
    let now = Instant::now();
    let mut server = Session::new(config.clone(), PeerInfo::default(), now);
    let mut total = 0;
    let mut drain = |server: &mut Session| {
        loop {
            match server.poll_output() {
                Output::Transmit(b) => total += b.len(),
                Output::Event(smtp_proto::server::Event::Body(b)) => total += b.len(),
                Output::Event(e) if e.needs_decision() => server.accept().expect("decision"),
                Output::Event(smtp_proto::server::Event::ProtocolError(e)) => {
                    panic!("protocol error: {e}")
                }
                Output::Event(_) => {}
                Output::Wait { .. } | Output::Close => break,
                Output::StartTls => unreachable!("no STARTTLS offered"),
            }
        }
    };
    drain(&mut server);
    for round in rounds {
        for piece in round.chunks(read) {
            server.handle_input(piece, now);
            drain(&mut server);
        }
    }
    total
}

/// A pipelined session of commands and no message, for the server machine: EHLO alone
/// (it ends a group, RFC 2920 §3.1), then the 20-command fixture without its EHLO, DATA
/// and QUIT `n` times over in one group (MAIL, RCPT, RSET and NOOP may all be pipelined),
/// then QUIT. As rounds for [`server_session`]; [`concat`](slice::concat) them for a
/// bare decoder.
pub fn command_session(n: usize) -> Vec<Vec<u8>> {
    let text = std::str::from_utf8(fixtures::COMMANDS).expect("ASCII");
    let group: String = text
        .split_inclusive("\r\n")
        .filter(|l| !["EHLO", "DATA", "QUIT"].iter().any(|v| l.starts_with(v)))
        .collect();
    let ehlo = text.split_inclusive("\r\n").next().expect("EHLO first");
    vec![
        ehlo.as_bytes().to_vec(),
        [group.repeat(n).as_bytes(), b"QUIT\r\n"].concat(),
    ]
}

/// The server configuration of the session benchmarks: the defaults (PIPELINING,
/// CHUNKING, 8BITMIME, SIZE 25 MiB...).
pub fn server_config() -> Arc<ServerConfig> {
    Arc::new(ServerConfig::new("mx.example.org").expect("valid"))
}

/// The configuration for [`command_session`]: the defaults, but no limit on RSET and NOOP
/// (50 rounds of the fixture hold 150 of them; Postfix's limit of 100 is for sessions
/// that deliver nothing, and would end this one).
pub fn server_commands_config() -> Arc<ServerConfig> {
    let mut config = ServerConfig::new("mx.example.org").expect("valid");
    config.limits.max_junk_commands = u32::MAX;
    Arc::new(config)
}

/// Client and server machines in memory: `messages` messages of `body`, 3 recipients
/// each, then QUIT; with `chunking` the client sends BDAT, else DATA. Returns the octets
/// that crossed, both ways.
pub fn paired_session(body: &[u8], messages: usize, chunking: bool) -> usize {
    let now = Instant::now();
    let mut cc = ClientConfig::new("client.example.org").expect("valid");
    cc.starttls = StartTls::Never;
    cc.chunking = chunking;
    let mut client = Client::new(Arc::new(cc), false, now);
    let mut server = Session::new(server_config(), PeerInfo::default(), now);
    let mailbox = |s: &str| Mailbox::parse(s).expect("valid").into_owned();
    for _ in 0..messages {
        let to = ["bob@example.com", "carol@example.com", "dave@example.net"]
            .iter()
            .map(|t| Recipient::new(ForwardPath::Mailbox(mailbox(t))))
            .collect();
        let mut env = Envelope::new(ReversePath::Mailbox(mailbox("alice@example.org")), to);
        env.size = Some(body.len() as u64);
        client.send_mail(env).expect("queued");
    }
    client.quit();
    let mut wire = 0;
    let mut sent = 0;
    loop {
        let mut progress = false;
        loop {
            match client.poll_output() {
                ClientOutput::Transmit(b) => {
                    progress = true;
                    wire += b.len();
                    server.handle_input(&b, now);
                }
                ClientOutput::Event(ClientEvent::BodyWanted { .. }) => {
                    progress = true;
                    client.send_body(body).expect("body");
                    client.end_body().expect("end");
                }
                ClientOutput::Event(ClientEvent::MessageDone(o)) => {
                    progress = true;
                    assert_eq!(o.status, DeliveryStatus::Sent);
                    sent += 1;
                }
                ClientOutput::Event(_) | ClientOutput::StartTls => progress = true,
                ClientOutput::Close => {
                    progress = true;
                    server.handle_eof(now);
                }
                ClientOutput::Wait { .. } => break,
            }
        }
        loop {
            match server.poll_output() {
                Output::Transmit(b) => {
                    progress = true;
                    wire += b.len();
                    client.handle_input(&b, now);
                }
                Output::Event(e) => {
                    progress = true;
                    if e.needs_decision() {
                        server.accept().expect("decision");
                    }
                }
                Output::Close => {
                    progress = true;
                    client.handle_eof(now);
                }
                Output::StartTls => progress = true,
                Output::Wait { .. } => break,
            }
        }
        if !progress {
            break;
        }
    }
    assert_eq!(sent, messages, "every message sent");
    wire
}

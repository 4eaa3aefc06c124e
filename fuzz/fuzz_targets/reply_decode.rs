//! Reply parsing over arbitrary bytes: `Reply::decode`, `ReplyDecoder` over arbitrary
//! pieces and limits, `Reply::parse`, and `Capabilities::parse` / `from_reply`.
//!
//! Checks: no panic; the incremental decoder finds the same replies and error however the
//! input is cut, never uses more than it was given and stays within its limits; every
//! decoded reply encodes to bytes that decode to the same reply; the two EHLO parsers
//! agree, and capabilities read from a reply survive `to_reply` and back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_fuzz::chunks;
use smtp_proto::{Capabilities, Reply, ReplyDecoder, ReplyLimits};

/// Limits large enough for any re-encoded reply of a fuzz input.
const ROOMY: ReplyLimits = ReplyLimits {
    max_line: 1 << 20,
    max_total: 1 << 24,
};

fn check_roundtrip(reply: &Reply) {
    let bytes = reply.to_bytes();
    match Reply::decode(&bytes, &ROOMY) {
        Ok(Some((again, used))) => {
            assert_eq!(used, bytes.len());
            assert_eq!(&again, reply, "{:?}", String::from_utf8_lossy(&bytes));
        }
        other => panic!(
            "{reply:?} encodes to {:?}, which decodes to {other:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// Decodes replies one after another, the way a client does from its socket buffer.
fn decode_all(pieces: &[&[u8]], limits: ReplyLimits) -> Vec<String> {
    let mut decoder = ReplyDecoder::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut found = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&buf) {
                Ok(None) => break,
                Ok(Some((reply, used))) => {
                    assert!(used > 0 && used <= buf.len(), "used {used} of {}", buf.len());
                    assert!(used <= limits.max_total.max(3), "reply of {used} octets");
                    check_roundtrip(&reply);
                    found.push(format!("{reply:?}"));
                    buf.drain(..used);
                }
                Err(e) => {
                    found.push(format!("!{e:?}"));
                    // Errors are sticky.
                    assert_eq!(decoder.decode(&buf), Err(e));
                    return found;
                }
            }
        }
    }
    found
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, input) = data.split_at(4);
    let limits = if head[0] & 1 == 0 {
        ReplyLimits::default()
    } else {
        ReplyLimits {
            max_line: usize::from(head[1]) + 1,
            max_total: usize::from(head[2]) * 4 + 1,
        }
    };
    let sizes = &head[3..4];

    let single = Reply::decode(input, &limits);
    if let Ok(Some((reply, used))) = &single {
        assert!(*used <= input.len());
        check_roundtrip(reply);
    }
    let whole = decode_all(&[input], limits);
    let cut = decode_all(&chunks(input, sizes), limits);
    assert_eq!(whole, cut, "chunking changed what was decoded");

    // Whole-reply parsers.
    let parsed = Reply::parse(input);
    let caps = Capabilities::parse(input);
    match &parsed {
        Ok(reply) => {
            check_roundtrip(reply);
            let from_reply = Capabilities::from_reply(reply);
            assert_eq!(caps, from_reply, "Capabilities::parse and from_reply disagree");
            if let Ok(caps) = from_reply {
                let _ = (caps.size_limit(), caps.has("AUTH"), caps.supports_auth("PLAIN"));
                // What was read is announced again the same way.
                let again = Capabilities::from_reply(&caps.to_reply());
                assert_eq!(again.as_ref(), Ok(&caps), "{:?}", caps.to_reply());
            }
        }
        Err(error) => assert_eq!(caps, Err((*error).into()), "EHLO from a broken reply"),
    }
});

//! OAUTHBEARER (RFC 7628): the GS2 header and key/value pairs, parsed by the server and
//! built by the client, and the JSON error a server sends before refusing a token.

use super::oauth::{bearer, key_value, set_once};
use super::{Credentials, SaslError, check_identity, identity, malformed};
use crate::secret::Secret;

/// RFC 7628 §3.1:
/// ```text
/// client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
/// gs2-header  = gs2-cbind-flag "," [ gs2-authzid ] ","   ; RFC 5801 §4
/// kvpair      = key "=" value kvsep
/// kvsep       = %x01
/// key         = 1*(ALPHA)
/// value       = *(VCHAR / SP / HTAB / CR / LF)
/// ```
/// The lone-kvsep form only answers an error challenge and is handled there.
pub(super) fn parse(message: &[u8]) -> Result<Credentials, SaslError> {
    const M: &str = "OAUTHBEARER";
    // gs2-cbind-flag: "n" or "y"; "p=" would ask for channel binding, which OAUTHBEARER
    // does not support (RFC 7628 §3.1).
    let rest = match message {
        [b'n' | b'y', b',', rest @ ..] => rest,
        [b'p', b'=', ..] => return Err(malformed(M, "channel binding is not supported")),
        _ => return Err(malformed(M, "bad GS2 header")),
    };
    let Some(comma) = rest.iter().position(|&b| b == b',') else {
        return Err(malformed(M, "bad GS2 header"));
    };
    let authzid = match &rest[..comma] {
        [] => None,
        [b'a', b'=', name @ ..] => Some(saslname(name, M)?),
        _ => return Err(malformed(M, "bad GS2 header")),
    };
    let pairs = rest[comma + 1..]
        .strip_prefix(b"\x01")
        .and_then(|r| r.strip_suffix(b"\x01\x01"))
        .ok_or_else(|| malformed(M, "key/value pairs must follow ^A and end with ^A^A"))?;
    let mut host = None;
    let mut port = None;
    let mut token = None;
    for pair in pairs.split(|&b| b == 1) {
        let (key, value) = key_value(pair, M)?;
        if !value
            .iter()
            .all(|&b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            return Err(malformed(M, "value holds a forbidden character"));
        }
        match key {
            b"host" => set_once(&mut host, identity(value, false, M)?, M)?,
            b"port" => {
                let number = std::str::from_utf8(value)
                    .ok()
                    .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| malformed(M, "port is not a number"))?;
                set_once(&mut port, number, M)?;
            }
            b"auth" => set_once(&mut token, bearer(value, M)?, M)?,
            // Other keys are extensions we do not know; skipping them keeps us compatible.
            _ => {}
        }
    }
    let token = token.ok_or_else(|| malformed(M, "auth is required"))?;
    Ok(Credentials::OAuthBearer {
        authzid,
        host: host.map(str::to_owned),
        port,
        token: Secret::new(token.to_owned()),
    })
}

/// `saslname` (RFC 5801 §4): `,` is written `=2C` and `=` is written `=3D`.
fn saslname(encoded: &[u8], mechanism: &'static str) -> Result<String, SaslError> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&b, tail)) = rest.split_first() {
        let (octet, tail) = match (b, tail) {
            (b'=', [b'2', b'C', tail @ ..]) => (b',', tail),
            (b'=', [b'3', b'D', tail @ ..]) => (b'=', tail),
            (b'=', _) => return Err(malformed(mechanism, "bad escape in authzid")),
            (b, tail) => (b, tail),
        };
        decoded.push(octet);
        rest = tail;
    }
    identity(&decoded, false, mechanism).map(str::to_owned)
}

fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Builds the JSON error a server sends as its last challenge when it refuses a bearer
/// token (RFC 7628 §3.2.2): `{"status":...,"scope":...,"openid-configuration":...}`.
///
/// Pass it to [`ServerExchange::reject`](super::ServerExchange::reject). Strings are JSON-escaped.
pub fn oauth_error_challenge(
    status: &str,
    scope: Option<&str>,
    openid_configuration: Option<&str>,
) -> Vec<u8> {
    let mut json = String::from("{");
    push_json_member(&mut json, "status", status);
    if let Some(scope) = scope {
        json.push(',');
        push_json_member(&mut json, "scope", scope);
    }
    if let Some(url) = openid_configuration {
        json.push(',');
        push_json_member(&mut json, "openid-configuration", url);
    }
    json.push('}');
    json.into_bytes()
}

fn push_json_member(json: &mut String, key: &str, value: &str) {
    for (i, s) in [key, value].into_iter().enumerate() {
        if i == 1 {
            json.push(':');
        }
        json.push('"');
        for c in s.chars() {
            match c {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    json.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => json.push(c),
            }
        }
        json.push('"');
    }
}

/// `n,a=` authzid `,^A` [`host=` host `^A`] [`port=` port `^A`] `auth=Bearer ` token
/// `^A^A` (RFC 7628 §3.1), from a user name and token the client has already checked.
pub(super) fn message(
    username: &str,
    token: &str,
    host: Option<&str>,
    port: Option<u16>,
) -> Result<String, SaslError> {
    let invalid = SaslError::InvalidCredentials;
    let mut m = format!("n,a={},\x01", encode_saslname(username));
    if let Some(host) = host {
        // A `value` is VCHAR (RFC 7628 §3.1); a host name needs no more.
        check_identity(host.as_bytes(), false).map_err(invalid)?;
        if !host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("host is not visible ASCII"));
        }
        m.push_str(&format!("host={host}\x01"));
    }
    if let Some(port) = port {
        m.push_str(&format!("port={port}\x01"));
    }
    m.push_str(&format!("auth=Bearer {token}\x01\x01"));
    Ok(m)
}

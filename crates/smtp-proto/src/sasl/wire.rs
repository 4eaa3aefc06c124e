//! What travels on the AUTH lines: strict base64 (RFC 4954 §4), the `=` empty initial
//! response and the `*` that cancels, decoded the same way by both sides.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{CANCEL, SaslError};
use crate::secret::Secret;

/// Encodes a challenge or response for the wire (RFC 4954 §4: base64, RFC 4648 §4, with
/// padding).
pub fn encode_base64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes base64 from the wire strictly: standard alphabet, canonical padding, no
/// whitespace, so that one message has one encoding.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, SaslError> {
    STANDARD.decode(text).map_err(|_| SaslError::Base64)
}

/// Encodes an initial response for the AUTH command: an empty one is written `=` (RFC 4954
/// §4), since an empty argument would mean "no initial response".
pub fn encode_initial_response(data: &[u8]) -> String {
    if data.is_empty() {
        String::from("=")
    } else {
        encode_base64(data)
    }
}

/// Decodes the initial-response argument of `AUTH <mechanism> <initial-response>`.
///
/// `=` stands for an empty response (RFC 4954 §4); anything else must be base64. An empty
/// argument is an error: it is not how an empty response is written.
pub fn decode_initial_response(argument: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
    match argument {
        b"=" => Ok(Secret::new(Vec::new())),
        b"" => Err(SaslError::Base64),
        text => decode_base64(text).map(Secret::new),
    }
}

/// What a client sent on a continuation line of an AUTH exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The decoded response; it may hold a password, hence the [`Secret`].
    Data(Secret<Vec<u8>>),
    /// The line `*`: the client abandons the exchange (RFC 4954 §4); the server answers
    /// [`AUTH_CANCELLED`](super::AUTH_CANCELLED).
    Cancel,
}

/// Decodes a client line sent in answer to a `334` challenge (RFC 4954 §4).
///
/// `line` is the line without its CRLF (a trailing CRLF is tolerated). `*` alone is
/// [`Response::Cancel`]; an empty line is an empty response; anything else must be base64,
/// or the error is [`SaslError::Base64`] (the server answers
/// [`AUTH_INVALID_BASE64`](super::AUTH_INVALID_BASE64)). Unlike the initial response, `=`
/// is not special here.
pub fn decode_response(line: &[u8]) -> Result<Response, SaslError> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    if line == CANCEL.as_bytes() {
        return Ok(Response::Cancel);
    }
    decode_base64(line).map(|data| Response::Data(Secret::new(data)))
}

//! Helpers shared by the fuzz targets: chunking input the way a socket would, and checking
//! that a byte stream is made of well-formed replies.

/// Splits `data` into pieces whose sizes come from `sizes`, cycled: a size of 0 takes all
/// that is left, any other is the piece's length (the last piece may be shorter). No sizes
/// gives one piece. Socket reads cut data anywhere; so does this.
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = match sizes.get(i % sizes.len().max(1)) {
            None | Some(0) => rest.len(),
            Some(&n) => usize::from(n).min(rest.len()),
        };
        let (piece, tail) = rest.split_at(n);
        out.push(piece);
        rest = tail;
        i += 1;
    }
    out
}

/// Checks that `out` is a sequence of well-formed reply lines (RFC 5321 §4.2): three
/// digits 2xx-5xx, then SP, `-` or CRLF, no bare CR or LF and no NUL, at most 512 octets
/// per line (§4.5.3.1.5), continuation lines carrying the code of their reply, and the
/// last reply complete.
pub fn well_formed_replies(out: &[u8]) -> Result<(), String> {
    let mut rest = out;
    let mut continuing: Option<&[u8]> = None;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no CRLF at end")?;
        let line = &rest[..end];
        if line.contains(&b'\r') || line.contains(&b'\n') || line.contains(&0) {
            return Err(format!("control character in {line:?}"));
        }
        if line.len() < 3
            || !line[..3].iter().all(u8::is_ascii_digit)
            || !(b'2'..=b'5').contains(&line[0])
        {
            return Err(format!("bad code in {:?}", String::from_utf8_lossy(line)));
        }
        if line.len() + 2 > 512 {
            return Err("reply line over 512 octets".into());
        }
        if let Some(code) = continuing {
            if code != &line[..3] {
                return Err("code changed inside a multi-line reply".into());
            }
        }
        continuing = match line.get(3) {
            Some(b'-') => Some(&line[..3]),
            Some(b' ') | None => None,
            Some(_) => return Err("fourth octet is not SP or -".into()),
        };
        rest = &rest[end + 2..];
    }
    match continuing {
        None => Ok(()),
        Some(_) => Err("unfinished multi-line reply".into()),
    }
}

/// Whether `out` is made of CRLF-terminated lines only: no bare CR, no bare LF, nothing
/// after the last CRLF. What a client sends outside BDAT chunks must be (RFC 5321 §2.3.8);
/// a bare line ending is what SMTP smuggling is built from.
pub fn crlf_lines_only(out: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            b'\r' if out.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' => return Err(format!("bare CR at {i}")),
            b'\n' => return Err(format!("bare LF at {i}")),
            _ => i += 1,
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        return Err("unterminated last line".into());
    }
    Ok(())
}

/// What the DATA path must deliver for a message `body` (RFC 5321 §4.5.2 and the
/// `DotStuffer`/`DataDecoder` contract): line endings normalised to CRLF, and a final
/// CRLF added if the body is not empty and does not end with one.
pub fn data_expected(body: &[u8]) -> Vec<u8> {
    let mut n = smtp_proto::data::normalize_line_endings(body);
    if !n.is_empty() && !n.ends_with(b"\r\n") {
        n.extend_from_slice(b"\r\n");
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking() {
        assert_eq!(chunks(b"abcdef", &[]), vec![&b"abcdef"[..]]);
        assert_eq!(chunks(b"abcdef", &[2]), vec![&b"ab"[..], b"cd", b"ef"]);
        assert_eq!(chunks(b"abcdef", &[1, 0]), vec![&b"a"[..], b"bcdef"]);
        assert!(chunks(b"", &[3]).is_empty());
    }

    #[test]
    fn replies() {
        assert!(well_formed_replies(b"250-a\r\n250 b\r\n354\r\n").is_ok());
        assert!(well_formed_replies(b"250-a\r\n251 b\r\n").is_err());
        assert!(well_formed_replies(b"250-a\r\n").is_err());
        assert!(well_formed_replies(b"250 a\n").is_err());
        assert!(crlf_lines_only(b"a\r\nb\r\n").is_ok());
        assert!(crlf_lines_only(b"a\nb\r\n").is_err());
    }
}

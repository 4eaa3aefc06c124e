//! Command verbs (RFC 5321 §4.1 and extensions): their names, case-insensitive
//! recognition, and the usage text of the 501 reply to a syntax error.
//!
//! A module of its own, below both [`command`](crate::command) and
//! [`error`](crate::error), so that an error can name the command it is about without
//! the error module importing the codec that reports it.

use std::fmt;

/// The command verbs this crate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verb {
    /// HELO (RFC 5321 §4.1.1.1)
    Helo,
    /// EHLO (RFC 5321 §4.1.1.1)
    Ehlo,
    /// LHLO (RFC 2033 §4.1)
    Lhlo,
    /// MAIL (RFC 5321 §4.1.1.2)
    Mail,
    /// RCPT (RFC 5321 §4.1.1.3)
    Rcpt,
    /// DATA (RFC 5321 §4.1.1.4)
    Data,
    /// BDAT (RFC 3030 §2)
    Bdat,
    /// RSET (RFC 5321 §4.1.1.5)
    Rset,
    /// VRFY (RFC 5321 §4.1.1.6)
    Vrfy,
    /// EXPN (RFC 5321 §4.1.1.7)
    Expn,
    /// HELP (RFC 5321 §4.1.1.8)
    Help,
    /// NOOP (RFC 5321 §4.1.1.9)
    Noop,
    /// QUIT (RFC 5321 §4.1.1.10)
    Quit,
    /// STARTTLS (RFC 3207 §4)
    StartTls,
    /// AUTH (RFC 4954 §4)
    Auth,
    /// ETRN (RFC 1985 §5)
    Etrn,
}

impl Verb {
    #[cfg(test)]
    const ALL: [Verb; 16] = [
        Verb::Helo,
        Verb::Ehlo,
        Verb::Lhlo,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Bdat,
        Verb::Rset,
        Verb::Vrfy,
        Verb::Expn,
        Verb::Help,
        Verb::Noop,
        Verb::Quit,
        Verb::StartTls,
        Verb::Auth,
        Verb::Etrn,
    ];

    /// The verb in upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Lhlo => "LHLO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Bdat => "BDAT",
            Verb::Rset => "RSET",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::Help => "HELP",
            Verb::Noop => "NOOP",
            Verb::Quit => "QUIT",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH",
            Verb::Etrn => "ETRN",
        }
    }

    /// Recognises a verb, case-insensitively.
    pub fn from_bytes(verb: &[u8]) -> Option<Verb> {
        // Every verb is 4 letters but STARTTLS. Clearing bit 5 upper-cases a letter, and
        // an octet that becomes an upper-case letter that way was that letter in one case
        // or the other, so comparing the masked word with the upper-case verb is exactly
        // `eq_ignore_ascii_case` for these all-letter verbs.
        const fn word(v: &[u8; 4]) -> u32 {
            u32::from_le_bytes(*v)
        }
        match *verb {
            [a, b, c, d] => {
                let v = match word(&[a, b, c, d]) & 0xDFDF_DFDF {
                    w if w == word(b"HELO") => Verb::Helo,
                    w if w == word(b"EHLO") => Verb::Ehlo,
                    w if w == word(b"LHLO") => Verb::Lhlo,
                    w if w == word(b"MAIL") => Verb::Mail,
                    w if w == word(b"RCPT") => Verb::Rcpt,
                    w if w == word(b"DATA") => Verb::Data,
                    w if w == word(b"BDAT") => Verb::Bdat,
                    w if w == word(b"RSET") => Verb::Rset,
                    w if w == word(b"VRFY") => Verb::Vrfy,
                    w if w == word(b"EXPN") => Verb::Expn,
                    w if w == word(b"HELP") => Verb::Help,
                    w if w == word(b"NOOP") => Verb::Noop,
                    w if w == word(b"QUIT") => Verb::Quit,
                    w if w == word(b"AUTH") => Verb::Auth,
                    w if w == word(b"ETRN") => Verb::Etrn,
                    _ => return None,
                };
                Some(v)
            }
            _ if verb.eq_ignore_ascii_case(b"STARTTLS") => Some(Verb::StartTls),
            _ => None,
        }
    }

    /// The text of the 501 reply to a syntax error (Postfix's wording).
    pub(crate) fn usage(self) -> &'static str {
        match self {
            Verb::Helo => "Syntax: HELO hostname",
            Verb::Ehlo => "Syntax: EHLO hostname",
            Verb::Lhlo => "Syntax: LHLO hostname",
            Verb::Mail => "Syntax: MAIL FROM:<address>",
            Verb::Rcpt => "Syntax: RCPT TO:<address>",
            Verb::Data => "Syntax: DATA",
            Verb::Bdat => "Syntax: BDAT size [LAST]",
            Verb::Rset => "Syntax: RSET",
            Verb::Vrfy => "Syntax: VRFY address",
            Verb::Expn => "Syntax: EXPN address",
            Verb::Help => "Syntax: HELP [topic]",
            Verb::Noop => "Syntax: NOOP [text]",
            Verb::Quit => "Syntax: QUIT",
            Verb::StartTls => "Syntax: STARTTLS",
            Verb::Auth => "Syntax: AUTH mechanism [initial-response]",
            Verb::Etrn => "Syntax: ETRN node",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition `Verb::from_bytes` must keep: a case-insensitive match.
    fn reference(verb: &[u8]) -> Option<Verb> {
        Verb::ALL
            .into_iter()
            .find(|v| v.as_str().as_bytes().eq_ignore_ascii_case(verb))
    }

    #[test]
    fn verb_from_bytes_is_a_case_insensitive_match() {
        for v in Verb::ALL {
            let upper = v.as_str().as_bytes().to_vec();
            assert_eq!(Verb::from_bytes(&upper), Some(v));
            assert_eq!(Verb::from_bytes(&upper.to_ascii_lowercase()), Some(v));
            // Every octet in every position: only the two cases of the letter match.
            for i in 0..upper.len() {
                for b in 0..=255u8 {
                    let mut w = upper.clone();
                    w[i] = b;
                    assert_eq!(Verb::from_bytes(&w), reference(&w), "{w:?}");
                }
            }
        }
        for w in [
            &b""[..],
            b"MAI",
            b"MAILS",
            b"STARTTL",
            b"@@@@",
            b"````",
            b"\xc1\xc9\xcc\xcd",
        ] {
            assert_eq!(Verb::from_bytes(w), None);
        }
    }
}

//! A host's answer to a question the session asked, checked when it is built: an
//! [`Acceptance`] can only hold a 2xx reply and a [`Refusal`] a 4xx or 5xx one, so no
//! [`Decision`] can say "yes" with a `550` or "no" with a `250`.

use std::borrow::Cow;
use std::fmt;

use crate::error::BuildError;
use crate::reply::{EnhancedCode, Reply};

/// A host's answer to a question the session asked (HELO, MAIL, RCPT, the end of a
/// message, AUTH, VRFY, ...), for [`Session::decide`](super::Session::decide): adapters
/// pass their handlers' answers through it.
///
/// ```
/// use smtp_proto::Reply;
/// use smtp_proto::server::Decision;
/// let no = Decision::reject(550, (5, 1, 1), "No such user").unwrap();
/// assert!(!no.is_accept());
/// // The reply code and the enhanced code must agree, and a refusal cannot be a 2xx.
/// assert!(Decision::reject(451, (5, 1, 1), "No such user").is_err());
/// assert!(Decision::reject(250, (2, 0, 0), "Ok").is_err());
/// assert!(Decision::reject(550, (5, 1, 1), "two\r\nlines").is_err());
/// let queued = Reply::new(250, None, "Ok: queued as ABC").unwrap();
/// assert!(Decision::accept_with(queued).unwrap().is_accept());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the protocol's default positive reply.
    Accept,
    /// Go on with this positive (2xx) reply, e.g. `250 2.0.0 Ok: queued as ABC`.
    AcceptWith(Acceptance),
    /// Refuse with this 4xx or 5xx reply.
    Reject(Refusal),
}

impl Decision {
    /// A refusal built from parts: `code` in 400..=599, `enhanced` (RFC 3463) of the same
    /// class, `text` without CR, LF or NUL. Anything else is the [`BuildError`] that says
    /// which part is wrong.
    pub fn reject(
        code: u16,
        enhanced: (u8, u16, u16),
        text: impl Into<Cow<'static, str>>,
    ) -> Result<Decision, BuildError> {
        let enhanced = EnhancedCode::new(enhanced.0, enhanced.1, enhanced.2)?;
        let reply = Reply::new(code, Some(enhanced), text)?;
        Refusal::new(reply).map(Decision::Reject)
    }

    /// A refusal with the host's own reply, which must be 4xx or 5xx.
    pub fn reject_with(reply: Reply) -> Result<Decision, BuildError> {
        Refusal::new(reply).map(Decision::Reject)
    }

    /// An acceptance with the host's own reply, which must be 2xx.
    pub fn accept_with(reply: Reply) -> Result<Decision, BuildError> {
        Acceptance::new(reply).map(Decision::AcceptWith)
    }

    /// Whether the session goes on.
    pub fn is_accept(&self) -> bool {
        !matches!(self, Decision::Reject(_))
    }

    /// The reply the host chose, if it chose one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Decision::Accept => None,
            Decision::AcceptWith(r) => Some(r.reply()),
            Decision::Reject(r) => Some(r.reply()),
        }
    }
}

impl From<Acceptance> for Decision {
    fn from(acceptance: Acceptance) -> Decision {
        Decision::AcceptWith(acceptance)
    }
}

impl From<Refusal> for Decision {
    fn from(refusal: Refusal) -> Decision {
        Decision::Reject(refusal)
    }
}

/// Defines a reply that only holds one kind of code.
macro_rules! classed_reply {
    ($(#[$doc:meta])* $name:ident, $what:literal, $ok:expr, $error:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(Reply);

        impl $name {
            #[doc = concat!("Checks that `reply` is ", $what, ".")]
            pub fn new(reply: Reply) -> Result<$name, BuildError> {
                if $ok(reply.code().class()) {
                    Ok($name(reply))
                } else {
                    Err($error(reply.code().get()))
                }
            }

            #[doc = concat!(
                "For a `const`: as [`", stringify!($name), "::new`], checked when the ",
                "program is compiled.\n\n# Panics\nWhen `reply` is not ", $what,
                " (at compile time in a `const`)."
            )]
            pub const fn constant(reply: Reply) -> $name {
                if !$ok(reply.code().class()) {
                    panic!(concat!("reply is not ", $what));
                }
                $name(reply)
            }

            /// The reply.
            pub fn reply(&self) -> &Reply {
                &self.0
            }

            /// The reply, taken out.
            pub fn into_reply(self) -> Reply {
                self.0
            }
        }

        impl TryFrom<Reply> for $name {
            type Error = BuildError;
            fn try_from(reply: Reply) -> Result<$name, BuildError> {
                $name::new(reply)
            }
        }

        impl From<$name> for Reply {
            fn from(value: $name) -> Reply {
                value.0
            }
        }

        impl AsRef<Reply> for $name {
            fn as_ref(&self) -> &Reply {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

const fn is_positive(class: u8) -> bool {
    class == 2
}

const fn is_negative(class: u8) -> bool {
    class == 4 || class == 5
}

classed_reply!(
    /// A positive (2xx) reply, the only kind [`Decision::AcceptWith`] holds.
    Acceptance,
    "2xx",
    is_positive,
    BuildError::NotPositive
);

classed_reply!(
    /// A transient (4xx) or permanent (5xx) negative reply, the only kind
    /// [`Decision::Reject`] holds.
    Refusal,
    "4xx or 5xx",
    is_negative,
    BuildError::NotRefusal
);

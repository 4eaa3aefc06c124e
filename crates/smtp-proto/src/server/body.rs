//! Reading a message body, DATA (RFC 5321 §4.1.1.4, through [`DataDecoder`]) or BDAT
//! chunks (RFC 3030), and asking the host about the message at its end (one decision per
//! recipient in LMTP, RFC 2033 §4.2).

use bytes::{Buf as _, Bytes};

use crate::data::{BdatStep, Content, DecodeStep};
use crate::reply::Reply;

use super::state::{Next, Pending, Phase};
use super::{AbortReason, Event, Session, replies};

impl Session {
    /// The next piece of a DATA body; `None` when more input is needed.
    pub(super) fn read_data(&mut self) -> Option<Next> {
        let Phase::Data(decoder) = &mut self.phase else {
            return None;
        };
        if self.inbuf.is_empty() {
            return None;
        }
        match decoder.decode(&self.inbuf) {
            DecodeStep::Data {
                content: Content::Input(range),
                consumed,
            } => {
                // Zero-copy: the content is a range of the buffer.
                let mut taken = self.inbuf.split_to(consumed).freeze();
                taken.truncate(range.end);
                self.body(taken.split_off(range.start));
                Some(Next::Stay)
            }
            DecodeStep::Data {
                content: Content::Inserted(data),
                consumed,
            } => {
                self.inbuf.advance(consumed);
                self.body(Bytes::from_static(data));
                Some(Next::Stay)
            }
            DecodeStep::Failed { error, consumed } => {
                self.inbuf.advance(consumed);
                self.event(Event::MessageAborted {
                    reason: AbortReason::Data(error),
                });
                Some(Next::Stay)
            }
            DecodeStep::NeedMore { consumed } => {
                self.inbuf.advance(consumed);
                None
            }
            DecodeStep::Done {
                outcome: Ok(()),
                consumed,
            } => {
                self.inbuf.advance(consumed);
                Some(self.ask_message())
            }
            DecodeStep::Done {
                outcome: Err(error),
                consumed,
            } => {
                self.inbuf.advance(consumed);
                // Already reported as MessageAborted by `Failed`.
                self.refuse_message(&error.reply(), true);
                Some(Next::Command)
            }
        }
    }

    /// Hands a piece of the body to the host, counted for [`Session::body_size`].
    fn body(&mut self, piece: Bytes) {
        if let Some(txn) = &mut self.txn {
            txn.size += piece.len() as u64;
        }
        self.event(Event::Body(piece));
    }

    /// The next piece of a BDAT chunk, or its end; `None` when more input is needed.
    pub(super) fn read_bdat(&mut self) -> Option<Next> {
        let Phase::Bdat(chunk) = &mut self.phase else {
            return None;
        };
        let decoder = match (&mut chunk.outside, &mut self.txn) {
            (Some(outside), _) => outside,
            (None, Some(txn)) => &mut txn.bdat,
            (None, None) => return Some(Next::Command),
        };
        match decoder.decode(&self.inbuf) {
            BdatStep::Data { consumed, .. } => {
                // The content is the first `consumed` octets of the buffer: zero-copy.
                let piece = self.inbuf.split_to(consumed).freeze();
                self.body(piece);
                Some(Next::Stay)
            }
            BdatStep::NeedMore { consumed: 0 } => None,
            BdatStep::NeedMore { consumed } => {
                self.inbuf.advance(consumed);
                Some(Next::Stay)
            }
            BdatStep::ChunkDone { consumed, .. } => {
                // The command's LAST counts, refused or not (the decoder reads a refused
                // chunk as one to drop).
                let (last, refusal) = (chunk.last, chunk.refusal.take());
                self.inbuf.advance(consumed);
                Some(self.chunk_done(last, refusal))
            }
            BdatStep::Idle => Some(Next::Command),
        }
    }

    /// A BDAT chunk read to its end: refused, or the message's end, or `250` and the
    /// next chunk.
    fn chunk_done(&mut self, last: bool, refusal: Option<Reply>) -> Next {
        if let Some(refusal) = refusal {
            // RFC 3030 §2: BDAT LAST ends the transaction, refused or not, as the final
            // dot of DATA does.
            self.refuse_message(&refusal, last);
            return Next::Command;
        }
        if last {
            return self.ask_message();
        }
        let size = self.txn.as_ref().map_or(0, |t| t.bdat.size());
        self.send(replies::octets_received(size));
        Next::Command
    }

    /// A message refused at its end (or a BDAT chunk refused): the reply, once, or in
    /// LMTP at the end of the message once per accepted recipient (RFC 2033 §4.2, with
    /// RFC 3030 for BDAT LAST); `end` closes the transaction.
    fn refuse_message(&mut self, reply: &Reply, end: bool) {
        let replies = match &self.txn {
            Some(t) if self.config.lmtp && end => t.recipients.len().max(1),
            _ => 1,
        };
        for _ in 0..replies {
            self.send(reply.clone());
        }
        if end {
            self.txn = None;
        }
    }

    /// The end of a message: the host decides (once, or per recipient in LMTP).
    fn ask_message(&mut self) -> Next {
        if self.config.lmtp {
            let left = self.txn.as_ref().map_or(0, |t| t.recipients.len());
            self.event(Event::LmtpMessageEnd { recipients: left });
            self.ask_lmtp(left)
        } else {
            self.ask(Pending::Message { left: 1 }, Event::MessageEnd)
        }
    }

    /// RFC 2033 §4.2: one decision, and one reply, per accepted recipient; `left` still
    /// to ask about.
    pub(super) fn ask_lmtp(&mut self, left: usize) -> Next {
        let to = self
            .txn
            .as_ref()
            .and_then(|t| t.recipients.get(t.recipients.len() - left))
            .cloned();
        match to {
            Some(to) if left > 0 => self.ask(Pending::Message { left }, Event::LmtpDelivery { to }),
            _ => {
                self.txn = None;
                Next::Command
            }
        }
    }
}

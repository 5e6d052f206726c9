//! The to-tag of a stateless reply carries the server's signature, so the
//! ACK for it can be recognised without keeping any state (as SER does):
//! 16 hex digits derived from a secret chosen at start, a `.`, and 8 hex
//! digits of a hash over what the ACK repeats from the request (Call-ID,
//! From tag, CSeq number; RFC 3261 §17.1.1.3).

use arrayvec::ArrayString;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::sip::Message;

/// Length of a signed to-tag.
pub const TAG_LEN: usize = 16 + 1 + 8;

/// A signed to-tag.
pub type ToTag = ArrayString<TAG_LEN>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    prefix: [u8; 16],
}

fn hex(mut n: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
}

impl Signature {
    pub fn new(secret: &[u8]) -> Signature {
        let mut prefix = [0u8; 16];
        hex(xxh3_64(secret), &mut prefix);
        Signature { prefix }
    }

    /// The dialog hash of a request or its ACK.
    fn check(msg: &Message<'_>) -> Option<u32> {
        let mut h = Xxh3::new();
        h.update(msg.call_id().ok()?);
        h.update(b"\0");
        h.update(msg.from().ok()?.tag.unwrap_or(b""));
        h.update(b"\0");
        h.update(&msg.cseq().ok()?.number.to_le_bytes());
        Some(h.digest() as u32)
    }

    /// The to-tag for a stateless reply to `req`; `None` when the request
    /// lacks what the signature covers.
    pub fn to_tag(&self, req: &Message<'_>) -> Option<ToTag> {
        let check = Self::check(req)?;
        let mut tag = [0u8; TAG_LEN];
        tag[..16].copy_from_slice(&self.prefix);
        tag[16] = b'.';
        hex(u64::from(check), &mut tag[17..]);
        let mut s = ArrayString::new();
        s.push_str(std::str::from_utf8(&tag).ok()?);
        Some(s)
    }

    /// Whether an ACK's to-tag is one this server signed for its request.
    pub fn signed(&self, ack: &Message<'_>) -> bool {
        let Some(tag) = ack.to().ok().and_then(|t| t.tag) else {
            return false;
        };
        tag.len() == TAG_LEN
            && tag[..16] == self.prefix
            && tag[16] == b'.'
            && Self::check(ack).is_some_and(|c| {
                let mut want = [0u8; 8];
                hex(u64::from(c), &mut want);
                tag[17..] == want
            })
    }
}

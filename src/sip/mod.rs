//! The SIP message layer (RFC 3261 §7, §18-20, §25).
//!
//! [`Message::parse`] frames a datagram in one pass: the start line, a
//! header index (kind plus byte ranges, list headers split per value) and
//! the body. Typed values ([`Via`], [`NameAddr`], [`CSeq`], [`Uri`], ...)
//! borrow the datagram and are parsed on demand; the ones a proxy reads on
//! every message are cached so each is parsed at most once. [`build`] writes
//! replies and the edits a proxy makes, without reparsing.

pub mod auth;
pub mod build;
pub mod error;
pub mod exercise;
pub mod header;
pub mod limits;
pub mod message;
pub mod name_addr;
pub mod salvage;
pub mod scan;
pub mod stream;
pub mod text;
pub mod uri;
pub mod validate;
pub mod values;
pub mod via;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rfc4475;

pub use auth::{DigestChallenge, DigestCredentials};
pub use error::{ParseError, Result};
pub use header::{Header, HeaderKind};
pub use message::{Message, StartLine};
pub use name_addr::{Contact, NameAddr};
pub use uri::{Host, Scheme, Uri};
pub use values::{CSeq, ContentType, Method};
pub use via::{Rport, Via};

/// A byte range inside a message; offsets fit in `u16` because a datagram
/// is at most [`limits::MAX_DATAGRAM`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u16,
    pub end: u16,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        debug_assert!(start <= end && end <= limits::MAX_DATAGRAM);
        Span {
            start: start as u16,
            end: end as u16,
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The span of `part`, a subslice of `whole`.
    pub fn of(whole: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        Span::new(start, start + part.len())
    }
}

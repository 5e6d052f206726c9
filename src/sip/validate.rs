//! Strict validation: every header the message layer understands is parsed
//! and the cross-header rules of RFC 3261 are checked. The packet path does
//! not need this (it parses lazily what it reads); it is what decides that a
//! message like those of RFC 4475 §3.1.2 is malformed, and what a `400`
//! reply names.

use super::error::{ParseError, Result};
use super::header::HeaderKind;
use super::message::Message;
use super::name_addr::Contact;
use super::values::check_date;

impl Message<'_> {
    /// Parses every known header value and checks the rules a message must
    /// obey as a whole. The first violation found is returned.
    pub fn validate(&self) -> Result<()> {
        for kind in [
            HeaderKind::Via,
            HeaderKind::From,
            HeaderKind::To,
            HeaderKind::CallId,
            HeaderKind::CSeq,
        ] {
            // RFC 3261 §8.1.1: these every request and response carries.
            if self.first(kind).is_none() {
                return Err(ParseError::MissingHeader(kind.name()));
            }
        }
        for kind in [
            HeaderKind::From,
            HeaderKind::To,
            HeaderKind::CallId,
            HeaderKind::CSeq,
            HeaderKind::MaxForwards,
            HeaderKind::ContentType,
            HeaderKind::Expires,
        ] {
            if self.all(kind).nth(1).is_some() {
                return Err(ParseError::DuplicateHeader(kind.name()));
            }
        }
        if self.is_request() && self.ruri()?.headers.is_some() {
            return Err(ParseError::HeadersInRequestUri);
        }
        for via in self.vias() {
            via?;
        }
        // The addresses too, which reading a tag leaves unparsed.
        self.from()?.uri()?;
        self.to()?.uri()?;
        self.call_id()?;
        let cseq = self.cseq()?;
        // §8.1.1.5: the CSeq method matches the request's method.
        if self.is_request() && cseq.method_raw != self.method_raw() {
            return Err(ParseError::CSeqMethodMismatch);
        }
        self.max_forwards()?;
        self.expires()?;
        self.content_type()?;
        let mut contacts = 0;
        let mut star = false;
        for c in self.contacts() {
            contacts += 1;
            match c? {
                Contact::Star => star = true,
                Contact::Addr(a) => {
                    a.uri()?;
                    a.expires()?;
                    a.q()?;
                }
            }
        }
        // §10.2.2: "*" stands alone.
        if star && contacts > 1 {
            return Err(ParseError::BadNameAddr);
        }
        for r in self.routes().chain(self.record_routes()) {
            r?.uri()?;
        }
        for h in self.all(HeaderKind::Date) {
            check_date(self.value(h))?;
        }
        Ok(())
    }
}

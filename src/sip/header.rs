//! Header names: the kinds the server knows, their compact forms
//! (RFC 3261 §7.3.3, §20) and the index entry the framing pass builds.

use super::Span;
use super::scan::eq_lower;

/// A header field the server recognises by name. Names compare
/// case-insensitively (RFC 3261 §7.3.1); compact forms map to the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HeaderKind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Contact,
    Route,
    RecordRoute,
    ContentLength,
    ContentType,
    ContentEncoding,
    Expires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    Allow,
    Accept,
    Subject,
    Date,
    UserAgent,
    Server,
    Event,
    AllowEvents,
    ReferTo,
    ReferredBy,
    SessionExpires,
    MinExpires,
    /// Any other name; the index keeps its span.
    Other,
}

impl HeaderKind {
    /// Number of kinds, for per-kind lookup tables.
    pub const COUNT: usize = HeaderKind::Other as usize + 1;

    /// Canonical (long) name, used when the server writes a header.
    pub const fn name(self) -> &'static str {
        match self {
            HeaderKind::Via => "Via",
            HeaderKind::From => "From",
            HeaderKind::To => "To",
            HeaderKind::CallId => "Call-ID",
            HeaderKind::CSeq => "CSeq",
            HeaderKind::MaxForwards => "Max-Forwards",
            HeaderKind::Contact => "Contact",
            HeaderKind::Route => "Route",
            HeaderKind::RecordRoute => "Record-Route",
            HeaderKind::ContentLength => "Content-Length",
            HeaderKind::ContentType => "Content-Type",
            HeaderKind::ContentEncoding => "Content-Encoding",
            HeaderKind::Expires => "Expires",
            HeaderKind::Authorization => "Authorization",
            HeaderKind::ProxyAuthorization => "Proxy-Authorization",
            HeaderKind::WwwAuthenticate => "WWW-Authenticate",
            HeaderKind::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderKind::Supported => "Supported",
            HeaderKind::Require => "Require",
            HeaderKind::ProxyRequire => "Proxy-Require",
            HeaderKind::Unsupported => "Unsupported",
            HeaderKind::Allow => "Allow",
            HeaderKind::Accept => "Accept",
            HeaderKind::Subject => "Subject",
            HeaderKind::Date => "Date",
            HeaderKind::UserAgent => "User-Agent",
            HeaderKind::Server => "Server",
            HeaderKind::Event => "Event",
            HeaderKind::AllowEvents => "Allow-Events",
            HeaderKind::ReferTo => "Refer-To",
            HeaderKind::ReferredBy => "Referred-By",
            HeaderKind::SessionExpires => "Session-Expires",
            HeaderKind::MinExpires => "Min-Expires",
            HeaderKind::Other => "",
        }
    }

    /// Headers whose values may be comma-joined on one line and which the
    /// index splits into one entry per value (RFC 3261 §7.3.1). Only those a
    /// proxy edits value by value are split.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderKind::Via | HeaderKind::Contact | HeaderKind::Route | HeaderKind::RecordRoute
        )
    }

    /// Recognises a header name, long or compact, case-insensitively.
    pub fn from_name(name: &[u8]) -> HeaderKind {
        let (Some(&first), Some(&last)) = (name.first(), name.last()) else {
            return HeaderKind::Other;
        };
        // The (length, first, last) slot holds the one spelling with that
        // shape, if any, which one case-insensitive comparison confirms.
        match NAME_SLOTS[name_slot(name.len(), first, last)] {
            0 => HeaderKind::Other,
            i => {
                let (spelling, kind) = SPELLINGS[usize::from(i) - 1];
                if eq_token_ignore_case(name, spelling) {
                    kind
                } else {
                    HeaderKind::Other
                }
            }
        }
    }
}

/// Every kind but `Other`, in declaration order: each has a long name.
pub(crate) const KNOWN: [HeaderKind; HeaderKind::COUNT - 1] = [
    HeaderKind::Via,
    HeaderKind::From,
    HeaderKind::To,
    HeaderKind::CallId,
    HeaderKind::CSeq,
    HeaderKind::MaxForwards,
    HeaderKind::Contact,
    HeaderKind::Route,
    HeaderKind::RecordRoute,
    HeaderKind::ContentLength,
    HeaderKind::ContentType,
    HeaderKind::ContentEncoding,
    HeaderKind::Expires,
    HeaderKind::Authorization,
    HeaderKind::ProxyAuthorization,
    HeaderKind::WwwAuthenticate,
    HeaderKind::ProxyAuthenticate,
    HeaderKind::Supported,
    HeaderKind::Require,
    HeaderKind::ProxyRequire,
    HeaderKind::Unsupported,
    HeaderKind::Allow,
    HeaderKind::Accept,
    HeaderKind::Subject,
    HeaderKind::Date,
    HeaderKind::UserAgent,
    HeaderKind::Server,
    HeaderKind::Event,
    HeaderKind::AllowEvents,
    HeaderKind::ReferTo,
    HeaderKind::ReferredBy,
    HeaderKind::SessionExpires,
    HeaderKind::MinExpires,
];

/// Every spelling recognised: the long names, then the compact forms
/// (RFC 3261 §7.3.3 and the RFCs that define the others).
const SPELLINGS: [(&[u8], HeaderKind); 48] = {
    const COMPACT: [(&[u8], HeaderKind); 15] = [
        (b"v", HeaderKind::Via),
        (b"f", HeaderKind::From),
        (b"t", HeaderKind::To),
        (b"i", HeaderKind::CallId),
        (b"m", HeaderKind::Contact),
        (b"l", HeaderKind::ContentLength),
        (b"c", HeaderKind::ContentType),
        (b"e", HeaderKind::ContentEncoding),
        (b"s", HeaderKind::Subject),
        (b"k", HeaderKind::Supported),
        (b"o", HeaderKind::Event),
        (b"u", HeaderKind::AllowEvents),
        (b"r", HeaderKind::ReferTo),
        (b"b", HeaderKind::ReferredBy),
        (b"x", HeaderKind::SessionExpires),
    ];
    let mut all: [(&[u8], HeaderKind); 48] = [(b"", HeaderKind::Other); 48];
    let mut i = 0;
    while i < KNOWN.len() {
        all[i] = (KNOWN[i].name().as_bytes(), KNOWN[i]);
        i += 1;
    }
    while i < all.len() {
        all[i] = COMPACT[i - KNOWN.len()];
        i += 1;
    }
    all
};

/// A spelling's slot from its length and its first and last bytes, case
/// folded. The constants make the 48 spellings' slots distinct (checked
/// when `NAME_SLOTS` is built); other names share slots and fail the
/// comparison.
const fn name_slot(len: usize, first: u8, last: u8) -> usize {
    let h = (len as u32)
        .wrapping_mul(42)
        .wrapping_add((first | 0x20) as u32 * 110)
        .wrapping_add((last | 0x20) as u32);
    (h >> 3) as usize & 127
}

/// Index + 1 into `SPELLINGS` by slot; 0 for a slot no spelling has.
const NAME_SLOTS: [u8; 128] = {
    let mut slots = [0u8; 128];
    let mut i = 0;
    while i < SPELLINGS.len() {
        let s = SPELLINGS[i].0;
        let slot = name_slot(s.len(), s[0], s[s.len() - 1]);
        assert!(slots[slot] == 0, "two header spellings share a slot");
        slots[slot] = i as u8 + 1;
        i += 1;
    }
    slots
};

/// Case-insensitive equality of `name` with a canonical header name, a
/// few overlapping words at a time. Where the canonical name has a letter
/// (bit 0x40 set) bit 0x20 is set on both sides, which lower-cases ASCII
/// letters; elsewhere (its `-`) the bytes must be equal. So a match is
/// made of letters and `-` only: a name that matches needs no token check
/// of its own (a CR in place of a `-`, say, does not match).
fn eq_token_ignore_case(name: &[u8], canonical: &[u8]) -> bool {
    const LETTER_BIT: u64 = 0x4040_4040_4040_4040;
    let n = name.len();
    if n != canonical.len() {
        return false;
    }
    let same = |at: usize, width: usize| {
        let x = word(name, at, width);
        let y = word(canonical, at, width);
        let fold = (y & LETTER_BIT) >> 1;
        x | fold == y | fold
    };
    match n {
        0 => true,
        2..=3 => same(0, 2) && same(n - 2, 2),
        4..=7 => same(0, 4) && same(n - 4, 4),
        8..=16 => same(0, 8) && same(n - 8, 8),
        17..=24 => same(0, 8) && same(8, 8) && same(n - 8, 8),
        _ => eq_lower(name, canonical),
    }
}

/// `width` (2, 4 or 8) bytes of `s` from `at` as one little-endian word.
#[inline(always)]
fn word(s: &[u8], at: usize, width: usize) -> u64 {
    match width {
        2 => u64::from(u16::from_le_bytes([s[at], s[at + 1]])),
        4 => u64::from(u32::from_le_bytes(
            s[at..at + 4].try_into().unwrap_or_default(),
        )),
        _ => u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default()),
    }
}

impl Header {
    /// The field name's span.
    pub fn name(&self) -> Span {
        Span {
            start: self.line.start,
            end: self.line.start + u16::from(self.name_len),
        }
    }
}

/// One entry of a message's header index: where a header (or, for list
/// headers, one of its comma-separated values) sits in the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: HeaderKind,
    /// Length of the field name as written (possibly compact); it starts
    /// the line. Names are at most 255 bytes.
    pub name_len: u8,
    /// The value (one value of a list header), white space trimmed; folded
    /// line breaks stay inside.
    pub value: Span,
    /// The whole line: from the name to just past its terminating CRLF
    /// (continuation lines included). Values sharing a line share it.
    pub line: Span,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_compact_names_map_to_kinds() {
        assert_eq!(HeaderKind::from_name(b"via"), HeaderKind::Via);
        assert_eq!(HeaderKind::from_name(b"V"), HeaderKind::Via);
        assert_eq!(HeaderKind::from_name(b"CALL-id"), HeaderKind::CallId);
        assert_eq!(HeaderKind::from_name(b"i"), HeaderKind::CallId);
        assert_eq!(HeaderKind::from_name(b"l"), HeaderKind::ContentLength);
        assert_eq!(
            HeaderKind::from_name(b"max-forwards"),
            HeaderKind::MaxForwards
        );
        assert_eq!(
            HeaderKind::from_name(b"Proxy-Authorization"),
            HeaderKind::ProxyAuthorization
        );
        assert_eq!(HeaderKind::from_name(b"X-Custom"), HeaderKind::Other);
        // Only letters fold: a CR where the '-' is does not match.
        assert_eq!(HeaderKind::from_name(b"Call\rID"), HeaderKind::Other);
        assert_eq!(HeaderKind::from_name(b"Call\rId"), HeaderKind::Other);
        assert_eq!(
            HeaderKind::from_name(b"MAX-FORWARDS"),
            HeaderKind::MaxForwards
        );
        assert_eq!(HeaderKind::from_name(b"z"), HeaderKind::Other);
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in KNOWN {
            assert_eq!(
                HeaderKind::from_name(kind.name().as_bytes()),
                kind,
                "{kind:?}"
            );
        }
    }
}

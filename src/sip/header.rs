//! Header names: the kinds the server knows, their compact forms
//! (RFC 3261 §7.3.3, §20) and the index entry the framing pass builds.

use super::Span;

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
    pub fn name(self) -> &'static str {
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
        if name.len() == 1 {
            return Self::from_compact(name[0].to_ascii_lowercase());
        }
        // Dispatch on length first: one comparison per candidate at most.
        let candidates: &[HeaderKind] = match name.len() {
            2 => &[HeaderKind::To],
            3 => &[HeaderKind::Via],
            4 => &[HeaderKind::From, HeaderKind::CSeq, HeaderKind::Date],
            5 => &[HeaderKind::Route, HeaderKind::Allow, HeaderKind::Event],
            6 => &[HeaderKind::Accept, HeaderKind::Server],
            7 => &[
                HeaderKind::CallId,
                HeaderKind::Contact,
                HeaderKind::Expires,
                HeaderKind::Require,
                HeaderKind::Subject,
            ],
            8 => &[HeaderKind::ReferTo],
            9 => &[HeaderKind::Supported],
            10 => &[HeaderKind::UserAgent],
            11 => &[
                HeaderKind::Unsupported,
                HeaderKind::ReferredBy,
                HeaderKind::MinExpires,
            ],
            12 => &[
                HeaderKind::MaxForwards,
                HeaderKind::RecordRoute,
                HeaderKind::ContentType,
                HeaderKind::AllowEvents,
            ],
            13 => &[HeaderKind::Authorization, HeaderKind::ProxyRequire],
            14 => &[HeaderKind::ContentLength],
            15 => &[HeaderKind::SessionExpires],
            16 => &[HeaderKind::ContentEncoding, HeaderKind::WwwAuthenticate],
            18 => &[HeaderKind::ProxyAuthenticate],
            19 => &[HeaderKind::ProxyAuthorization],
            _ => &[],
        };
        candidates
            .iter()
            .copied()
            .find(|k| k.name().as_bytes().eq_ignore_ascii_case(name))
            .unwrap_or(HeaderKind::Other)
    }

    /// Compact forms (RFC 3261 §7.3.3 and the RFCs that define the others).
    fn from_compact(c: u8) -> HeaderKind {
        match c {
            b'v' => HeaderKind::Via,
            b'f' => HeaderKind::From,
            b't' => HeaderKind::To,
            b'i' => HeaderKind::CallId,
            b'm' => HeaderKind::Contact,
            b'l' => HeaderKind::ContentLength,
            b'c' => HeaderKind::ContentType,
            b'e' => HeaderKind::ContentEncoding,
            b's' => HeaderKind::Subject,
            b'k' => HeaderKind::Supported,
            b'o' => HeaderKind::Event,
            b'u' => HeaderKind::AllowEvents,
            b'r' => HeaderKind::ReferTo,
            b'b' => HeaderKind::ReferredBy,
            b'x' => HeaderKind::SessionExpires,
            _ => HeaderKind::Other,
        }
    }
}

/// One entry of a message's header index: where a header (or, for list
/// headers, one of its comma-separated values) sits in the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: HeaderKind,
    /// The field name as written (possibly compact).
    pub name: Span,
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
        assert_eq!(HeaderKind::from_name(b"z"), HeaderKind::Other);
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in ALL {
            assert_eq!(
                HeaderKind::from_name(kind.name().as_bytes()),
                kind,
                "{kind:?}"
            );
        }
    }

    const ALL: [HeaderKind; HeaderKind::COUNT - 1] = [
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
}

//! Typed parse errors: each says what is wrong, so a 400 can carry it in its
//! reason phrase and a log line can name it.

use std::fmt;

/// Why a datagram or a header value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Larger than [`super::limits::MAX_DATAGRAM`].
    TooLarge,
    /// Empty datagram, or nothing but line breaks.
    Empty,
    /// The header section does not end with an empty line.
    Truncated,
    /// First line is neither `Method SP Request-URI SP SIP-Version` nor
    /// `SIP-Version SP Status-Code SP Reason-Phrase` (RFC 3261 §7.1, §7.2).
    BadStartLine,
    /// Method is not a token (RFC 3261 §25.1).
    BadMethod,
    /// SIP-Version is not `SIP/2.0` (RFC 3261 §7.1).
    BadVersion,
    /// Status code is not three digits in 100..=699 (RFC 3261 §7.2).
    BadStatusCode,
    /// A header line has no colon or its name is not a token.
    BadHeaderLine,
    /// A header line longer than [`super::limits::MAX_HEADER_LEN`].
    HeaderTooLong,
    /// More header entries than [`super::limits::MAX_HEADERS`].
    TooManyHeaders,
    /// More Via values than [`super::limits::MAX_VIAS`].
    TooManyVias,
    /// Content-Length is not a number (negative included).
    BadContentLength,
    /// Content-Length announces more bytes than the datagram holds.
    ContentLengthTooLarge,
    /// Two Content-Length headers disagree.
    ConflictingContentLength,
    /// A URI does not follow RFC 3261 §19.1 / RFC 3966.
    BadUri,
    /// A URI longer than [`super::limits::MAX_URI_LEN`].
    UriTooLong,
    /// A Via value does not follow RFC 3261 §20.42.
    BadVia,
    /// A CSeq value does not follow RFC 3261 §20.16.
    BadCSeq,
    /// A From, To, Contact, Route or Record-Route value is not a valid
    /// name-addr or addr-spec (RFC 3261 §20.10, §20.20, §20.39).
    BadNameAddr,
    /// A quoted string is not closed.
    UnterminatedQuote,
    /// A numeric header (Max-Forwards, Expires, ...) is not a number or out of range.
    BadNumber,
    /// Call-ID is empty or not a word (RFC 3261 §25.1 callid).
    BadCallId,
    /// Content-Type is not `type/subtype *(;param)`.
    BadContentType,
    /// Authorization / Proxy-Authorization is not a digest credential (RFC 2617 §3.2.2).
    BadCredentials,
    /// A header that every message must carry is absent (RFC 3261 §8.1.1).
    MissingHeader(&'static str),
    /// A header that may appear once appears more than once.
    DuplicateHeader(&'static str),
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    CSeqMethodMismatch,
    /// A Date value is not an RFC 1123 date in GMT (RFC 3261 §20.17).
    BadDate,
    /// Too many parameters on one value.
    TooManyParams,
    /// A `;name[=value]` parameter list is malformed.
    BadParam,
    /// The Request-URI carries `?headers`, which RFC 3261 §19.1.1 forbids there.
    HeadersInRequestUri,
}

impl ParseError {
    /// A short phrase suitable for a 400 reason phrase and log lines.
    pub fn reason(self) -> &'static str {
        match self {
            ParseError::TooLarge => "Message Too Large",
            ParseError::Empty => "Empty Message",
            ParseError::Truncated => "Truncated Header Section",
            ParseError::BadStartLine => "Bad Start Line",
            ParseError::BadMethod => "Bad Method",
            ParseError::BadVersion => "Unsupported SIP Version",
            ParseError::BadStatusCode => "Bad Status Code",
            ParseError::BadHeaderLine => "Bad Header Line",
            ParseError::HeaderTooLong => "Header Too Long",
            ParseError::TooManyHeaders => "Too Many Headers",
            ParseError::TooManyVias => "Too Many Via Values",
            ParseError::BadContentLength => "Bad Content-Length",
            ParseError::ContentLengthTooLarge => "Content-Length Exceeds Message",
            ParseError::ConflictingContentLength => "Conflicting Content-Length",
            ParseError::BadUri => "Bad URI",
            ParseError::UriTooLong => "URI Too Long",
            ParseError::BadVia => "Bad Via",
            ParseError::BadCSeq => "Bad CSeq",
            ParseError::BadNameAddr => "Bad Address",
            ParseError::UnterminatedQuote => "Unterminated Quoted String",
            ParseError::BadNumber => "Bad Number",
            ParseError::BadCallId => "Bad Call-ID",
            ParseError::BadContentType => "Bad Content-Type",
            ParseError::BadCredentials => "Bad Credentials",
            ParseError::MissingHeader(_) => "Missing Mandatory Header",
            ParseError::DuplicateHeader(_) => "Duplicate Header",
            ParseError::CSeqMethodMismatch => "CSeq Method Mismatch",
            ParseError::BadDate => "Bad Date",
            ParseError::TooManyParams => "Too Many Parameters",
            ParseError::BadParam => "Bad Parameter",
            ParseError::HeadersInRequestUri => "Headers In Request-URI",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MissingHeader(h) => write!(f, "missing mandatory header {h}"),
            ParseError::DuplicateHeader(h) => write!(f, "header {h} appears more than once"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ParseError {}

pub type Result<T> = std::result::Result<T, ParseError>;

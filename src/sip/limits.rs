//! Every limit the message layer enforces, in one place.
//!
//! Network input is hostile: each of these bounds a loop, a table or a
//! buffer, and exceeding one is a typed [`super::ParseError`], never a panic
//! or an unbounded allocation.

/// Largest datagram accepted: the UDP payload limit (RFC 768 length field).
/// Offsets inside a message fit in a `u16` because of it.
pub const MAX_DATAGRAM: usize = 65_535;

/// Entries in a message's header index. Via, Contact, Route and
/// Record-Route values sharing one line each take an entry.
pub const MAX_HEADERS: usize = 128;

/// Via values in one message (each is a proxy the message crossed).
pub const MAX_VIAS: usize = 64;

/// Bytes in one URI (Request-URI or a URI inside a header value).
pub const MAX_URI_LEN: usize = 2_048;

/// Bytes in one header line, folded continuation lines included.
pub const MAX_HEADER_LEN: usize = 8_192;

/// Parameters kept per Via, URI or name-addr value beyond the ones
/// with their own fields; more are still reachable by iterating the raw text.
pub const MAX_PARAMS: usize = 32;

/// Pending edits a proxy makes to one message before serialising it.
pub const MAX_EDITS: usize = 16;

/// Scratch bytes an edit set may format (branches, received addresses, numbers).
pub const EDIT_SCRATCH: usize = 512;

/// SER's MAX_BRANCHES: the destination set's size (the current URI
/// included), and the branches one transaction may have over its life
/// (failure-route branches included).
pub const MAX_BRANCHES: usize = 12;

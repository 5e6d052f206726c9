//! Stream transports (TCP, TLS; issue 20), under way: the shared table of
//! connections (`conns.rs`). Framing is `sip::stream`. Not yet wired to
//! sockets: rser serves UDP only so far.

pub mod conns;

//! maxfwd: `mf_process_maxfwd_header("N")` (RFC 3261 §16.3 step 3, §16.6
//! step 3). The check happens when the action runs; the header itself is
//! changed once, when the request is sent.

pub mod actions;

use crate::sip::Message;

/// What `mf_process_maxfwd_header` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxFwd {
    /// Absent: the request will be sent with `Max-Forwards: N`.
    Insert(u8),
    /// Present and above zero: it will be decremented.
    Decrement,
    /// Zero: the script should reply 483 (Too Many Hops).
    Exhausted,
    /// Present but not a number (the script may reply 400).
    Invalid,
}

/// `limit` is the action's argument; `max_limit` the module parameter (a
/// larger value in the request is lowered to it, as Kamailio does).
pub fn process(msg: &Message<'_>, limit: u8, max_limit: u8) -> (MaxFwd, Option<u8>) {
    match msg.max_forwards() {
        Ok(None) => (MaxFwd::Insert(limit), None),
        Ok(Some(0)) => (MaxFwd::Exhausted, None),
        Ok(Some(n)) if n > max_limit => (MaxFwd::Decrement, Some(max_limit)),
        Ok(Some(_)) => (MaxFwd::Decrement, None),
        Err(_) => (MaxFwd::Invalid, None),
    }
}

//! What the script works on for one message: the parsed message, where it
//! came from, and the state actions change (the current Request-URI, the
//! destination set, flags, text edits). The buffers live in a
//! [`ScriptState`] each worker keeps and reuses, so a message costs no
//! allocation until an action needs one.

use std::net::SocketAddr;

use crate::cfg::settings::Proto;
use crate::sip::Message;

use super::uri_ops::{Rewrite, RewriteError, rewrite};

pub use crate::sip::limits::MAX_BRANCHES;

/// Text edits (textops, rr) one message may carry; the rest of the proxy's
/// edit budget (`sip::limits::MAX_EDITS`) stays for Via, Record-Route and
/// the Request-URI.
pub const MAX_TEXT_EDITS: usize = 8;

/// A change to the message text by textops or rr, applied when it is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextEdit {
    /// Byte range of the original message replaced (empty: insertion).
    pub start: usize,
    pub end: usize,
    pub text: Vec<u8>,
}

/// Per-worker buffers, reset for every message.
#[derive(Debug, Default)]
pub struct ScriptState {
    uri: Vec<u8>,
    uri_rewritten: bool,
    scratch: Vec<u8>,
    /// Destination set beyond the current URI (SER's branches).
    branches: Branches,
    pub flags: u32,
    pub edits: Vec<TextEdit>,
    /// Set by `mf_process_maxfwd_header`: the Max-Forwards to insert when
    /// the request has none (RFC 3261 §16.6 step 3 uses 70 otherwise).
    pub max_forwards_insert: Option<u8>,
    /// A lower Max-Forwards to send than the decremented one (maxfwd's
    /// `max_limit`).
    pub max_forwards_cap: Option<u8>,
    /// The last internal error, which `sl_reply_error` reports.
    pub last_error: Option<(u16, &'static str)>,
    /// Set by `record_route()`: the request is sent with our Record-Route
    /// on top (RFC 3261 §16.6 step 4).
    pub record_route: bool,
    /// The next hop when it is not the Request-URI (Kamailio's `$du`):
    /// `loose_route()` sets it to a loose router's Route URI (RFC 3261
    /// §16.12). Empty when unset; the buffer is reused.
    pub dst_uri: Vec<u8>,
    /// The Route the current URI's branch is sent with (RFC 3327: a
    /// binding's path, `lookup()` on a phone connected to another node);
    /// empty: none.
    pub path: Vec<u8>,
    /// Kamailio's `set_forward_no_connect()`: the request goes only over
    /// a connection already open (a flow, RFC 5626 §5.3), never a new
    /// one.
    pub forward_no_connect: bool,
    /// What `ds_select_dst` chose and the destinations left for
    /// `ds_next_dst` (Kamailio's dispatcher AVPs); tm keeps it with the
    /// transaction for failure_route.
    pub ds: crate::modules::dispatcher::Failover,
    /// Buffers pseudo-variables are read into for a condition (reused).
    pub pv_value: Vec<u8>,
    pub pv_other: Vec<u8>,
    /// The last action's or route's return value (Kamailio's `$rc`).
    pub last_ret: i32,
    /// In branch_route, the branch's index (Kamailio's `$T_branch_idx`).
    pub branch_idx: u32,
    /// `force_rport()` was called: the top Via is treated as asking for
    /// `rport` (RFC 3581 §4).
    pub force_rport: bool,
    /// `set_reply_no_connect()`: replies must not open a connection. Over
    /// UDP, the only transport served yet, none is ever opened; a
    /// connection-oriented transport reads this.
    pub reply_no_connect: bool,
    /// The branch flags of the Request-URI's branch (Kamailio's
    /// `setbflag`): `save()` keeps them with the contacts, `lookup()` gives
    /// the chosen contact's back.
    pub bflags: u32,
    /// `$avp(name)` values of this message, in the order set.
    pub avps: super::avp::Avps,
    /// In onsend_route: where the request goes (`$snd(ip)`, `$snd(port)`).
    pub snd: Option<SocketAddr>,
    /// textops' `append_to_reply`: header lines for the replies this
    /// message gets from the script (sl's, tm's `t_reply`, auth's).
    pub reply_headers: Vec<u8>,
    /// Kamailio's `$fs`: the local socket requests go out from (a listen
    /// address), instead of the one that fits the destination.
    pub force_send: Option<SocketAddr>,
}

/// A `$var`'s value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum VarValue {
    /// Never assigned (`$null`).
    #[default]
    Null,
    Int(i64),
    Str(Vec<u8>),
}

impl VarValue {
    /// The value's text (a number in decimal, `$null` empty).
    pub fn text(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            VarValue::Null => std::borrow::Cow::Borrowed(&[]),
            VarValue::Int(n) => std::borrow::Cow::Owned(n.to_string().into_bytes()),
            VarValue::Str(s) => std::borrow::Cow::Borrowed(s),
        }
    }

    /// The value as a number: text is parsed (not a number: 0, as
    /// Kamailio).
    pub fn int(&self) -> i64 {
        match self {
            VarValue::Null => 0,
            VarValue::Int(n) => *n,
            VarValue::Str(s) => std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
        }
    }
}

impl ScriptState {
    pub fn new() -> ScriptState {
        ScriptState::default()
    }

    /// Forgets the previous message, keeping the buffers.
    pub fn reset(&mut self) {
        self.uri_rewritten = false;
        self.branches.len = 0;
        self.flags = 0;
        self.edits.clear();
        self.max_forwards_insert = None;
        self.max_forwards_cap = None;
        self.last_error = None;
        self.record_route = false;
        self.dst_uri.clear();
        self.path.clear();
        self.forward_no_connect = false;
        self.ds = Default::default();
        self.last_ret = 1;
        self.branch_idx = 0;
        self.force_rport = false;
        self.reply_no_connect = false;
        self.avps.clear();
        self.snd = None;
        self.force_send = None;
        self.reply_headers.clear();
        self.bflags = 0;
    }
}

/// The destination set beyond the current URI, in buffers kept from one
/// message to the next.
#[derive(Debug, Default)]
struct Branches {
    bufs: Vec<Vec<u8>>,
    /// Each branch's next hop when it is not its URI (its `$du`; empty:
    /// none).
    dsts: Vec<Vec<u8>>,
    /// Each branch's Route to send with (its path; empty: none).
    paths: Vec<Vec<u8>>,
    len: usize,
}

impl Branches {
    /// Adds a URI; false when the set (the current URI included) is full.
    fn push(&mut self, uri: &[u8]) -> bool {
        self.push_to(uri, b"")
    }

    /// Adds a URI with its next hop `dst`.
    fn push_to(&mut self, uri: &[u8], dst: &[u8]) -> bool {
        self.push_with(uri, dst, b"")
    }

    /// Adds a URI with its next hop `dst` and its `path`.
    fn push_with(&mut self, uri: &[u8], dst: &[u8], path: &[u8]) -> bool {
        if self.len + 1 >= MAX_BRANCHES {
            return false;
        }
        if self.bufs.len() == self.len {
            self.bufs.push(Vec::new());
            self.dsts.push(Vec::new());
            self.paths.push(Vec::new());
        }
        let p = &mut self.paths[self.len];
        p.clear();
        p.extend_from_slice(path);
        let b = &mut self.bufs[self.len];
        b.clear();
        b.extend_from_slice(uri);
        let d = &mut self.dsts[self.len];
        d.clear();
        d.extend_from_slice(dst);
        self.len += 1;
        true
    }
}

/// The current URI: the rewritten one, or the received one.
fn current<'x>(st_uri: &'x [u8], rewritten: bool, msg: &'x Message<'_>) -> &'x [u8] {
    if rewritten {
        st_uri
    } else {
        msg.request_uri_raw()
    }
}

/// One message going through the script.
pub struct MsgCtx<'a, 'm> {
    pub msg: &'a Message<'m>,
    pub src: SocketAddr,
    /// The local address it arrived on.
    pub dst: SocketAddr,
    pub proto: Proto,
    /// The reply status `status` tests: the reply's own in onreply_route,
    /// the winning reply's in failure_route.
    pub status: Option<u16>,
    pub st: &'a mut ScriptState,
}

impl<'a, 'm> MsgCtx<'a, 'm> {
    /// Starts a message; `st` is reset.
    pub fn new(
        msg: &'a Message<'m>,
        src: SocketAddr,
        dst: SocketAddr,
        proto: Proto,
        st: &'a mut ScriptState,
    ) -> MsgCtx<'a, 'm> {
        st.reset();
        MsgCtx {
            msg,
            src,
            dst,
            proto,
            status: msg.status(),
            st,
        }
    }

    /// The current Request-URI: rewritten, or the received one.
    pub fn uri(&self) -> &[u8] {
        current(&self.st.uri, self.st.uri_rewritten, self.msg)
    }

    /// Whether an action changed the Request-URI.
    pub fn uri_rewritten(&self) -> bool {
        self.st.uri_rewritten
    }

    /// Applies a rewriting action to the current URI.
    pub fn rewrite_uri(&mut self, op: Rewrite<'_>) -> Result<(), RewriteError> {
        let st = &mut *self.st;
        rewrite(
            current(&st.uri, st.uri_rewritten, self.msg),
            op,
            &mut st.scratch,
        )?;
        std::mem::swap(&mut st.uri, &mut st.scratch);
        st.uri_rewritten = true;
        Ok(())
    }

    /// `revert_uri()`: back to the received Request-URI.
    pub fn revert_uri(&mut self) {
        self.st.uri_rewritten = false;
    }

    /// The destination set beyond the current URI.
    pub fn branches(&self) -> impl Iterator<Item = &[u8]> {
        let b = &self.st.branches;
        b.bufs[..b.len].iter().map(Vec::as_slice)
    }

    /// Adds a URI to the destination set; false when it is full.
    pub fn append_branch(&mut self, uri: &[u8]) -> bool {
        self.st.branches.push(uri)
    }

    /// Adds a URI reached through next hop `dst` (lookup()'s contact
    /// registered over a connection).
    pub fn append_branch_to(&mut self, uri: &[u8], dst: &[u8]) -> bool {
        self.st.branches.push_to(uri, dst)
    }

    /// Branch `i`'s next hop beyond the current URI's (empty: its URI).
    pub fn branch_dst(&self, i: usize) -> &[u8] {
        let b = &self.st.branches;
        if i < b.len { &b.dsts[i] } else { b"" }
    }

    /// Branch `i`'s path (empty: none).
    pub fn branch_path(&self, i: usize) -> &[u8] {
        let b = &self.st.branches;
        if i < b.len { &b.paths[i] } else { b"" }
    }

    /// A branch to `uri` through `dst`, sent with the Route `path`
    /// (`lookup()`'s for a phone connected to another node).
    pub fn append_branch_with_path(&mut self, uri: &[u8], dst: &[u8], path: &[u8]) -> bool {
        self.st.branches.push_with(uri, dst, path)
    }

    /// `append_branch()`: the current URI joins the destination set.
    pub fn append_current_uri(&mut self) -> bool {
        let st = &mut *self.st;
        st.branches
            .push(current(&st.uri, st.uri_rewritten, self.msg))
    }

    /// Kamailio's `$br = uri`: the first branch beyond the current URI
    /// becomes `uri` (added if there is none); `None` removes it. False
    /// when the set is full.
    pub fn set_first_branch(&mut self, uri: Option<&[u8]>) -> bool {
        let b = &mut self.st.branches;
        match uri {
            None if b.len > 0 => {
                b.bufs[..b.len].rotate_left(1);
                b.dsts[..b.len].rotate_left(1);
                b.paths[..b.len].rotate_left(1);
                b.len -= 1;
                true
            }
            None => true,
            Some(u) if b.len > 0 => {
                b.bufs[0].clear();
                b.bufs[0].extend_from_slice(u);
                b.dsts[0].clear();
                b.paths[0].clear();
                true
            }
            Some(u) => b.push(u),
        }
    }

    pub fn clear_branches(&mut self) {
        self.st.branches.len = 0;
    }

    /// `extra` header lines with `append_to_reply`'s after them, for a
    /// reply the script sends.
    pub fn reply_header_lines<'x>(&'x self, extra: &'x [u8]) -> std::borrow::Cow<'x, [u8]> {
        if self.st.reply_headers.is_empty() {
            return std::borrow::Cow::Borrowed(extra);
        }
        let mut all = extra.to_vec();
        all.extend_from_slice(&self.st.reply_headers);
        std::borrow::Cow::Owned(all)
    }

    /// Records a text edit; false when there are too many or it overlaps one.
    pub fn add_edit(&mut self, edit: TextEdit) -> bool {
        self.add_edits(&mut [edit])
    }

    /// Records several text edits, all or none: false, and nothing
    /// recorded, when they would be too many or one overlaps another or
    /// one already recorded. The texts are moved out of `batch`.
    pub fn add_edits(&mut self, batch: &mut [TextEdit]) -> bool {
        let edits = &mut self.st.edits;
        let clear = batch
            .iter()
            .enumerate()
            .all(|(i, b)| !edits.iter().chain(&batch[..i]).any(|e| overlaps(e, b)));
        if !clear || edits.len() + batch.len() > MAX_TEXT_EDITS {
            return false;
        }
        for edit in batch {
            let at = edits.partition_point(|e| e.start <= edit.start);
            edits.insert(at, std::mem::take(edit));
        }
        true
    }
}

/// Whether two edits touch the same bytes; an insertion overlaps a
/// replacement only strictly inside it.
fn overlaps(a: &TextEdit, b: &TextEdit) -> bool {
    a.start < b.end && b.start < a.end
}

//! rr: `record_route()` and `loose_route()` (RFC 3261 §16.4, §16.6 steps
//! 4 and 6, §16.12).
//!
//! `record_route()` only marks the request; the Record-Route naming the
//! socket it leaves from is written when it is sent
//! (`server::proxy::build_request`). `loose_route()` works out every change
//! to the Route set first, touching nothing, then records them at once as
//! text edits of the received message, a new Request-URI, and the next
//! hop (`dst_uri`): a bad Route or a full edit budget leaves the message
//! as it was.

pub mod actions;

use std::net::SocketAddr;

use arrayvec::{ArrayString, ArrayVec};

use crate::cfg::program::Myself;
use crate::script::MsgCtx;
use crate::script::ctx::TextEdit;
use crate::script::uri_ops::Rewrite;
use crate::sip::limits::MAX_HEADERS;
use crate::sip::text;
use crate::sip::{Header, HeaderKind, Message, Method, NameAddr, ParseError, Uri};

const TRUE: i32 = 1;
const FALSE: i32 = -1;

/// Room for our Record-Route URI: `sip:[` 39-character IPv6 `]:65535`
/// plus `;transport=` with a short transport name, `;lr` and `;r2=on`.
pub const RECORD_ROUTE_URI_LEN: usize = 88;

/// Entries `loose_route()` removes at most: ours (the first, and the
/// second of a double Record-Route), and either a strict next hop's (the
/// next) or the last (a strict previous hop's).
const MAX_REMOVED: usize = 3;

/// Text edits `loose_route()` may make: one per removed entry at most, and
/// the Request-URI appended for a strict next hop.
const MAX_ROUTE_EDITS: usize = MAX_REMOVED + 1;

/// `record_route()`: the request goes on with our Record-Route on top, so
/// that the dialog's later requests pass us (RFC 3261 §16.6 step 4).
pub fn record_route(ctx: &mut MsgCtx<'_, '_>) -> i32 {
    ctx.st.record_route = true;
    TRUE
}

/// The URI our Record-Route carries: the address a request is sent from,
/// so the dialog's requests come back to a socket we hold, with `lr`
/// (we are a loose router, RFC 3261 §16.6 step 4, §19.1.1) and a
/// `transport` parameter for anything but UDP, the default (§19.1.2);
/// `double`: one of the two entries of a request that changes interface or
/// transport here, marked `r2=on` as Kamailio marks them. `None` when
/// `transport` is not a short token.
pub fn record_route_uri(
    local: SocketAddr,
    transport: &[u8],
    double: bool,
) -> Option<ArrayString<RECORD_ROUTE_URI_LEN>> {
    let mut uri = ArrayString::new();
    uri.try_push_str("sip:").ok()?;
    uri.try_push_str(text::ascii(text::ip(
        local.ip(),
        true,
        &mut [0; text::IP_TEXT],
    )))
    .ok()?;
    uri.try_push_str(":").ok()?;
    uri.try_push_str(text::ascii(text::decimal(
        u32::from(local.port()),
        &mut [0; 10],
    )))
    .ok()?;
    if !transport.eq_ignore_ascii_case(b"UDP") {
        uri.try_push_str(";transport=").ok()?;
        for &b in transport {
            if !b.is_ascii_alphanumeric() {
                return None;
            }
            uri.try_push(char::from(b.to_ascii_lowercase())).ok()?;
        }
    }
    uri.try_push_str(";lr").ok()?;
    if double {
        uri.try_push_str(";r2=on").ok()?;
    }
    Some(uri)
}

/// Why `loose_route()` changed nothing although the request has a Route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A Route value does not parse.
    BadRoute,
    /// A strict next hop needs the Request-URI appended to the Route set,
    /// and it is not a URI a name-addr can hold.
    BadRequestUri,
    /// The edits would exceed the message's text edit budget, or overlap
    /// one the script made.
    EditsRefused,
}

impl Refusal {
    /// What `sl_reply_error` answers.
    fn reply(self) -> (u16, &'static str) {
        match self {
            Refusal::BadRoute => (400, "Bad Route"),
            Refusal::BadRequestUri => (400, "Bad Request-URI"),
            Refusal::EditsRefused => (500, "Cannot Edit Route"),
        }
    }
}

/// `loose_route()`: routes a request by its Route set (RFC 3261 §16.4,
/// §16.12). True when it had Route entries, which makes it part of a
/// dialog to the script; false without any, or when refused (the reason
/// in `last_error`).
pub fn loose_route(ctx: &mut MsgCtx<'_, '_>, myself: &Myself) -> i32 {
    let msg = ctx.msg;
    if !msg.is_request() {
        return FALSE;
    }
    match plan(msg, ctx.uri(), myself).and_then(|p| apply(ctx, p)) {
        Ok(true) => TRUE,
        Ok(false) => FALSE,
        Err(r) => {
            log::debug!("loose_route: {r:?}");
            ctx.st.last_error = Some(r.reply());
            FALSE
        }
    }
}

/// SER 0.8's `rewriteFromRoute()`: strict routing by a preloaded Route
/// set (RFC 2543's, before §16.12 loose routing). The first Route value
/// becomes the Request-URI and is removed; false without a Route.
pub fn rewrite_from_route(ctx: &mut MsgCtx<'_, '_>) -> i32 {
    let msg = ctx.msg;
    if !msg.is_request() {
        return FALSE;
    }
    let plan = || -> Result<Option<Plan<'_>>, Refusal> {
        let set = RouteSet::of(msg).map_err(|_| Refusal::BadRoute)?;
        if set.entries.is_empty() {
            return Ok(None);
        }
        let mut p = Plan {
            request_uri: Some(set.uri(0)?.raw),
            ..Plan::default()
        };
        removal_edits(&set.entries, &[0], &mut p.edits)?;
        Ok(Some(p))
    };
    match plan().and_then(|p| apply(ctx, p)) {
        Ok(true) => TRUE,
        Ok(false) => FALSE,
        Err(r) => {
            log::debug!("rewriteFromRoute: {r:?}");
            ctx.st.last_error = Some(r.reply());
            FALSE
        }
    }
}

/// Makes a plan's changes, all or none; false without a plan (no Route).
/// Inlined: a `Plan` holds its edits by value, copied by a call.
#[inline(always)]
fn apply(ctx: &mut MsgCtx<'_, '_>, p: Option<Plan<'_>>) -> Result<bool, Refusal> {
    let Some(mut p) = p else {
        return Ok(false);
    };
    // The only change that can fail goes first.
    if !ctx.add_edits(&mut p.edits) {
        return Err(Refusal::EditsRefused);
    }
    if let Some(uri) = p.request_uri {
        // Replacing the whole URI cannot fail (uri_ops::rewrite).
        let _ = ctx.rewrite_uri(Rewrite::Uri(uri));
    }
    if let Some(uri) = p.dst_uri {
        ctx.st.dst_uri.clear();
        ctx.st.dst_uri.extend_from_slice(uri);
    }
    if let Some(flow) = p.flow {
        // Through that connection only (RFC 5626 §5.3: 430 when it is
        // gone), and the dialog's later requests through us too: only
        // this node can reach the phone.
        unescape(flow, &mut ctx.st.dst_uri);
        ctx.st.forward_no_connect = true;
        if !in_dialog(ctx.msg)
            && ctx
                .msg
                .method()
                .is_some_and(|m| matches!(m, Method::Invite | Method::Subscribe | Method::Refer))
        {
            ctx.st.record_route = true;
        }
    }
    Ok(true)
}

/// Everything `loose_route()` changes, worked out before any change.
#[derive(Debug, Default)]
struct Plan<'m> {
    /// Route entries removed and the Request-URI appended, as text edits.
    edits: ArrayVec<TextEdit, MAX_ROUTE_EDITS>,
    /// The new Request-URI, from a Route value.
    request_uri: Option<&'m [u8]>,
    /// The next hop when the Request-URI is not it: a loose router.
    dst_uri: Option<&'m [u8]>,
    /// Our Route, the last, names a connection we hold (its `received`
    /// parameter, escaped): another node's `lookup()` sent the request
    /// here for the phone behind it (RFC 3327 §5.3 with Kamailio's
    /// path `received`).
    flow: Option<&'m [u8]>,
}

/// Works out `loose_route()` on `msg` whose current Request-URI is
/// `request_uri`: `None` without a Route.
fn plan<'m>(
    msg: &Message<'m>,
    request_uri: &[u8],
    myself: &Myself,
) -> Result<Option<Plan<'m>>, Refusal> {
    let set = RouteSet::of(msg).map_err(|_| Refusal::BadRoute)?;
    if set.entries.is_empty() {
        return Ok(None);
    }
    let mut p = Plan::default();
    let mut removed = ArrayVec::<usize, MAX_REMOVED>::new();
    let last = set.entries.len() - 1;
    // §16.4: a strict router before us put the URI we record-routed with
    // into the Request-URI; the one meant is the last Route value.
    let strict_previous_hop = in_dialog(msg)
        && msg
            .uri_parsed(request_uri)
            .is_ok_and(|u| myself.has_uri(&u));
    if strict_previous_hop {
        p.request_uri = Some(set.uri(last)?.raw);
    }
    // The entries left to route by: [first, end).
    let mut first = 0;
    let end = if strict_previous_hop { last } else { last + 1 };
    // §16.4: the first value naming us has brought the request here.
    let ours = match first < end {
        true => Some(set.uri(first)?).filter(|u| myself.has_uri(u)),
        false => None,
    };
    if let Some(u) = ours {
        let double = u.param(b"r2").is_some();
        remove(&mut removed, first)?;
        first += 1;
        // The other half of our double Record-Route (the socket facing
        // the next hop) goes too.
        if double && first < end && myself.has_uri(&set.uri(first)?) {
            remove(&mut removed, first)?;
            first += 1;
        }
    }
    let next = if first < end {
        Some(set.uri(first)?)
    } else {
        None
    };
    if next.is_none()
        && let Some(flow) = ours.and_then(|u| u.param(b"received")).flatten()
    {
        let mut uri = Vec::new();
        unescape(flow, &mut uri);
        if Uri::parse(&uri).is_err() {
            return Err(Refusal::BadRoute);
        }
        p.flow = Some(flow);
    }
    let strict_next_hop = next.is_some_and(|n| !n.lr);
    if strict_previous_hop && !strict_next_hop {
        remove(&mut removed, last)?;
    }
    match next {
        // §16.12: a loose router is the next hop; the Request-URI stays.
        Some(n) if n.lr => p.dst_uri = Some(n.raw),
        // §16.6 step 6: a strict router wants its URI in the Request-URI,
        // and the Request-URI as the last Route value. After a strict
        // previous hop, that is the last Route value already: it stays.
        Some(n) => {
            if !strict_previous_hop {
                let after = set.entries[last].line.end as usize;
                push_edit(&mut p.edits, route_line(after, request_uri)?)?;
            }
            remove(&mut removed, first)?;
            p.request_uri = Some(n.raw);
        }
        None => {}
    }
    removed.sort_unstable();
    removal_edits(&set.entries, &removed, &mut p.edits)?;
    Ok(Some(p))
}

/// A URI parameter's value with its `%XX` escapes decoded (RFC 3261
/// §25.1), into `out`; an escape that is not one is kept as written.
fn unescape(v: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut i = 0;
    while i < v.len() {
        match (
            v[i],
            v.get(i + 1).and_then(|&b| hex(b)),
            v.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

fn remove(removed: &mut ArrayVec<usize, MAX_REMOVED>, i: usize) -> Result<(), Refusal> {
    removed.try_push(i).map_err(|_| Refusal::EditsRefused)
}

/// Whether `msg` belongs to a dialog (its To has a tag, RFC 3261 §12.2):
/// only then did a route set, and so a strict router's rewriting of our
/// Record-Route URI into the Request-URI, bring it here. A Route in a
/// request outside a dialog was preloaded (§8.1.2) and its Request-URI is
/// the target, even when it names us.
fn in_dialog(msg: &Message<'_>) -> bool {
    msg.to().is_ok_and(|t| t.tag.is_some())
}

/// The received Route set: every entry in order (RFC 3261 §20.34). An
/// entry is one comma-separated value; several may share a line, and the
/// index keeps those adjacent.
struct RouteSet<'h, 'm> {
    msg: &'h Message<'m>,
    entries: ArrayVec<&'h Header, MAX_HEADERS>,
}

impl<'h, 'm> RouteSet<'h, 'm> {
    /// Collects the entries; any value that does not parse is an error, so
    /// a Route set is used whole or not at all. Inlined: the set is 1 KiB,
    /// and a call returning it would copy it (two callers since
    /// `rewriteFromRoute`).
    #[inline(always)]
    fn of(msg: &'h Message<'m>) -> Result<RouteSet<'h, 'm>, ParseError> {
        let mut entries = ArrayVec::new();
        for h in msg.all(HeaderKind::Route) {
            NameAddr::parse(msg.value(h))?;
            entries
                .try_push(h)
                .map_err(|_| ParseError::TooManyHeaders)?;
        }
        Ok(RouteSet { msg, entries })
    }

    /// The URI of entry `i`.
    fn uri(&self, i: usize) -> Result<Uri<'m>, Refusal> {
        let h = self.entries.get(i).ok_or(Refusal::BadRoute)?;
        NameAddr::parse(self.msg.value(h))
            .and_then(|n| n.uri())
            .map_err(|_| Refusal::BadRoute)
    }
}

/// A new last Route value, on a line of its own inserted at `at`.
fn route_line(at: usize, uri: &[u8]) -> Result<TextEdit, Refusal> {
    // A name-addr holds a URI up to its first '>' (RFC 3261 §25.1: '<'
    // and '>' are never bare in a URI).
    if Uri::parse(uri).is_err() || uri.iter().any(|&b| b == b'<' || b == b'>') {
        return Err(Refusal::BadRequestUri);
    }
    let mut text = Vec::with_capacity(uri.len() + 12);
    text.extend_from_slice(b"Route: <");
    text.extend_from_slice(uri);
    text.extend_from_slice(b">\r\n");
    Ok(TextEdit {
        start: at,
        end: at,
        text,
    })
}

/// Edits removing the entries at `removed` (ascending positions in
/// `entries`): a line whose entries all go is removed whole; otherwise each
/// run of removed entries goes with the comma after it, or, at the end of
/// the line, the comma before it.
fn removal_edits(
    entries: &[&Header],
    removed: &[usize],
    out: &mut ArrayVec<TextEdit, MAX_ROUTE_EDITS>,
) -> Result<(), Refusal> {
    let mut rest = removed;
    while let Some(&at) = rest.first() {
        let line = entries.get(at).ok_or(Refusal::BadRoute)?.line;
        let (line_first, line_last) = line_extent(entries, at);
        // At least `at` itself: it is on its own line.
        let on_line = rest.iter().take_while(|&&i| i <= line_last).count();
        let (here, later) = rest.split_at(on_line);
        rest = later;
        if here.len() == line_last - line_first + 1 {
            push_edit(out, removal(line.start, line.end))?;
            continue;
        }
        for run in Runs(here) {
            push_edit(out, run_removal(entries, run, line_last)?)?;
        }
    }
    Ok(())
}

/// The first and last positions of the entries sharing entry `at`'s line.
fn line_extent(entries: &[&Header], at: usize) -> (usize, usize) {
    let line = entries[at].line;
    let same = |i: &usize| entries[*i].line == line;
    let first = (0..at).rev().take_while(same).last().unwrap_or(at);
    let last = (at + 1..entries.len())
        .take_while(same)
        .last()
        .unwrap_or(at);
    (first, last)
}

/// Removes the run of entries `(a, b)` (positions, inclusive) from a line
/// that keeps at least one entry ending at `line_last`.
fn run_removal(
    entries: &[&Header],
    (a, b): (usize, usize),
    line_last: usize,
) -> Result<TextEdit, Refusal> {
    let value = |i: usize| entries.get(i).map(|h| h.value).ok_or(Refusal::BadRoute);
    Ok(if b < line_last {
        // "<a>, <b>" loses "<a>, ".
        removal(value(a)?.start, value(b + 1)?.start)
    } else {
        // "<a>, <b>" loses ", <b>"; an entry before it stays.
        let before = a.checked_sub(1).ok_or(Refusal::BadRoute)?;
        removal(value(before)?.end, value(b)?.end)
    })
}

fn removal(start: u16, end: u16) -> TextEdit {
    TextEdit {
        start: start as usize,
        end: end as usize,
        text: Vec::new(),
    }
}

fn push_edit(out: &mut ArrayVec<TextEdit, MAX_ROUTE_EDITS>, edit: TextEdit) -> Result<(), Refusal> {
    out.try_push(edit).map_err(|_| Refusal::EditsRefused)
}

/// Runs of consecutive positions in an ascending slice, as (first, last).
struct Runs<'s>(&'s [usize]);

impl Iterator for Runs<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let (&a, _) = self.0.split_first()?;
        let len = 1 + self.0.windows(2).take_while(|w| w[1] == w[0] + 1).count();
        let b = a + len - 1;
        self.0 = &self.0[len..];
        Some((a, b))
    }
}

#[cfg(test)]
mod tests;

//! The registrar's reading of a REGISTER (RFC 3261 §10.3): what it asks
//! for, and how it changes the bindings an address-of-record has. Pure
//! code: the caller holds the bindings (usrloc's table) and the clock.

pub mod actions;
pub mod db_only;
pub mod plan;
pub mod runtime;
pub mod shared;

/// Indices in the module's counters.
pub(crate) const ACCEPTED: usize = 0;
pub(crate) const REJECTED: usize = 1;

use arrayvec::ArrayVec;

use crate::cfg::Config;
use crate::sip::Message;
use crate::sip::name_addr::Contact;

/// Most Contacts one REGISTER may carry, and most bindings one AOR may
/// hold (whatever `max_contacts` says): a reply lists them all.
pub const MAX_CONTACTS: usize = 32;

/// The registrar's module parameters, in seconds (Kamailio's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// When neither the Contact nor the request says (§10.3 step 7).
    pub default_expires: u32,
    /// Shorter non-zero requests get 423 (§10.3 step 7, §21.4.17).
    pub min_expires: u32,
    /// Longer requests are shortened to it (0: no limit).
    pub max_expires: u32,
    /// Most bindings per AOR (0: `MAX_CONTACTS`).
    pub max_contacts: u32,
    /// q (thousandths) of a Contact without one; None: unspecified.
    pub default_q: Option<u16>,
    /// Whether `lookup` adds every contact beyond the first as a branch.
    pub append_branches: bool,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 0,
            max_contacts: 0,
            default_q: None,
            append_branches: true,
        }
    }
}

impl Params {
    pub fn from_config(c: &Config) -> Params {
        let d = Params::default();
        let secs = |name, default: u32| {
            c.modparam_int("registrar", name, i64::from(default))
                .clamp(0, i64::from(u32::MAX)) as u32
        };
        Params {
            default_expires: secs("default_expires", d.default_expires),
            min_expires: secs("min_expires", d.min_expires),
            max_expires: secs("max_expires", d.max_expires),
            max_contacts: secs("max_contacts", d.max_contacts),
            // Kamailio's convention: thousandths, -1 for unspecified.
            default_q: u16::try_from(c.modparam_int("registrar", "default_q", -1))
                .ok()
                .map(|q| q.min(1000)),
            append_branches: c.modparam_int("registrar", "append_branches", 1) != 0,
        }
    }

    fn contact_limit(&self) -> usize {
        match self.max_contacts as usize {
            0 => MAX_CONTACTS,
            n => n.min(MAX_CONTACTS),
        }
    }
}

/// A refusal, as the reply says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub code: u16,
    pub reason: &'static str,
    /// For 423: the Min-Expires header's value.
    pub min_expires: Option<u32>,
}

const fn reject(code: u16, reason: &'static str) -> Reject {
    Reject {
        code,
        reason,
        min_expires: None,
    }
}

/// A Contact the REGISTER asks to bind (or, with `expires` 0, unbind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// The contact URI as written inside the brackets.
    pub uri: &'a [u8],
    pub expires: u32,
    /// Thousandths; None when the Contact has no `q`.
    pub q: Option<u16>,
}

/// What a REGISTER asks for.
// Boxing the contacts would put an allocation on the packet path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// No Contact: the current bindings, unchanged (§10.2.3).
    Query,
    /// `Contact: *` with `Expires: 0` (§10.2.2).
    RemoveAll,
    Update(ArrayVec<Wanted<'a>, MAX_CONTACTS>),
}

/// Reads the Contacts and expirations of a REGISTER (§10.3 steps 6-7).
pub fn read_request<'a>(msg: &Message<'a>, p: &Params) -> Result<Request<'a>, Reject> {
    let header_expires = msg
        .expires()
        .map_err(|_| reject(400, "Bad Expires Header"))?;
    let mut wanted = ArrayVec::new();
    let mut star = false;
    let mut count = 0usize;
    for c in msg.contacts() {
        count += 1;
        match c.map_err(|_| reject(400, "Bad Contact Header"))? {
            Contact::Star => star = true,
            Contact::Addr(a) => {
                // The address is stored and later dialled: it must parse.
                let uri = a.uri().map_err(|_| reject(400, "Bad Contact Header"))?;
                let asked = a
                    .expires()
                    .map_err(|_| reject(400, "Bad Contact Expires"))?
                    .or(header_expires)
                    .unwrap_or(p.default_expires);
                let expires = match p.max_expires {
                    0 => asked,
                    max => asked.min(max),
                };
                if expires != 0 && expires < p.min_expires {
                    return Err(Reject {
                        code: 423,
                        reason: "Interval Too Brief",
                        min_expires: Some(p.min_expires),
                    });
                }
                let q = a
                    .q()
                    .map_err(|_| reject(400, "Bad Contact q"))?
                    .or(p.default_q);
                let w = Wanted {
                    uri: uri.raw,
                    expires,
                    q,
                };
                if wanted.try_push(w).is_err() {
                    return Err(reject(400, "Too Many Contacts"));
                }
            }
        }
    }
    if star {
        // §10.3 step 6: `*` only alone and with Expires: 0.
        if count != 1 || header_expires != Some(0) {
            return Err(reject(400, "Invalid Request"));
        }
        return Ok(Request::RemoveAll);
    }
    Ok(if wanted.is_empty() {
        Request::Query
    } else {
        Request::Update(wanted)
    })
}

/// A binding the AOR has now, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current<'a> {
    pub contact: &'a [u8],
    pub call_id: &'a [u8],
    pub cseq: u32,
}

/// One change to the AOR's bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `current[i]` gets the Wanted `w`'s expiry and q, and the request's
    /// Call-ID and CSeq.
    Refresh { i: usize, w: usize },
    /// `current[i]` goes.
    Remove(usize),
    /// Wanted `w` becomes a new binding.
    Add(usize),
}

pub type Ops = ArrayVec<Op, { 2 * MAX_CONTACTS }>;

/// §10.3 steps 6-7: the changes a REGISTER (Call-ID `call_id`, CSeq
/// `cseq`) makes to the AOR's `current` bindings. All or nothing: a
/// refusal changes nothing.
pub fn decide(
    current: &[Current<'_>],
    req: &Request<'_>,
    call_id: &[u8],
    cseq: u32,
    p: &Params,
) -> Result<Ops, Reject> {
    // Same Call-ID and a CSeq not higher: an old or replayed request.
    let out_of_order = |c: &Current<'_>| c.call_id == call_id && cseq <= c.cseq;
    let mut ops = Ops::new();
    match req {
        Request::Query => {}
        Request::RemoveAll => {
            if current.iter().any(out_of_order) {
                return Err(reject(400, "Invalid CSeq Number"));
            }
            ops.extend((0..current.len()).map(Op::Remove));
        }
        Request::Update(wanted) => {
            let mut count = current.len();
            for (w, want) in wanted.iter().enumerate() {
                // The same Contact twice: the last one counts.
                if wanted[w + 1..].iter().any(|x| x.uri == want.uri) {
                    continue;
                }
                match current.iter().position(|c| c.contact == want.uri) {
                    Some(i) if out_of_order(&current[i]) => {
                        return Err(reject(400, "Invalid CSeq Number"));
                    }
                    Some(i) if want.expires == 0 => {
                        ops.push(Op::Remove(i));
                        count -= 1;
                    }
                    Some(i) => ops.push(Op::Refresh { i, w }),
                    None if want.expires == 0 => {}
                    None => {
                        ops.push(Op::Add(w));
                        count += 1;
                    }
                }
            }
            if count > p.contact_limit() {
                return Err(reject(503, "Too Many Registered Contacts"));
            }
        }
    }
    Ok(ops)
}

/// Appends `Contact: <uri>;expires=N[;q=0.5]` for a binding to a reply
/// (§10.3 step 8).
pub fn contact_line(uri: &[u8], expires_in: u64, q: Option<u16>, out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.extend_from_slice(b"Contact: <");
    out.extend_from_slice(uri);
    let _ = write!(out, ">;expires={expires_in}");
    match q {
        None => {}
        Some(1000..) => out.extend_from_slice(b";q=1"),
        Some(0) => out.extend_from_slice(b";q=0"),
        Some(q) => {
            let digits = [q / 100, q / 10 % 10, q % 10].map(|d| b'0' + d as u8);
            let n = 3 - digits.iter().rev().take_while(|&&d| d == b'0').count();
            out.extend_from_slice(b";q=0.");
            out.extend_from_slice(&digits[..n]);
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;

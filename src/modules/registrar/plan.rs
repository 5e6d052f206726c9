//! §10.3's decision made into the writes a store must do, as pure code,
//! for the registrar's stores that are not the shared-memory table (the
//! database in db_mode 3, Redis): what goes, what is written, and every
//! binding the AOR has afterwards (the 200's list).

use super::{Current, Op, Params, Reject, Request, Wanted, decide};
use crate::modules::usrloc::table::{Meta, Q_NONE};

/// A binding, owned: contact, Call-ID, fields.
pub type Owned = (Vec<u8>, Vec<u8>, Meta);

/// What a REGISTER changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Contacts whose bindings go.
    pub remove: Vec<Vec<u8>>,
    /// Bindings new or refreshed.
    pub write: Vec<Owned>,
    /// Every binding once changed.
    pub after: Vec<Owned>,
}

/// What the request gives every binding it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Template {
    pub sock: u8,
    pub cflags: u32,
    pub cseq: u32,
    pub now: u64,
    /// Over a stream: the connection's far end and transport code, and
    /// (shared through Redis) the node holding it.
    pub received: rser_shm::Peer,
    pub flow: u8,
    pub owner: rser_shm::Peer,
}

impl Template {
    fn meta(&self, w: &Wanted<'_>) -> Meta {
        Meta {
            q: w.q.unwrap_or(Q_NONE),
            sock: self.sock,
            received: self.received,
            flow: self.flow,
            owner: self.owner,
            cseq: self.cseq,
            cflags: self.cflags,
            expires: self.now + u64::from(w.expires),
            updated: self.now,
        }
    }
}

/// The plan for `req` (Call-ID `call_id`) on the AOR's `current`
/// bindings, or the refusal §10.3 gives.
pub fn plan(
    current: &[Owned],
    req: &Request<'_>,
    call_id: &[u8],
    p: &Params,
    t: &Template,
) -> Result<Plan, Reject> {
    let view: Vec<Current<'_>> = current
        .iter()
        .take(super::MAX_CONTACTS)
        .map(|(contact, id, m)| Current {
            contact,
            call_id: id,
            cseq: m.cseq,
        })
        .collect();
    let ops = decide(&view, req, call_id, t.cseq, p)?;
    let wanted: &[Wanted<'_>] = match req {
        Request::Update(w) => w,
        _ => &[],
    };
    let mut after: Vec<Option<Owned>> = current.iter().cloned().map(Some).collect();
    let mut out = Plan::default();
    for op in ops.iter() {
        match *op {
            Op::Add(w) => {
                let b = (wanted[w].uri.to_vec(), call_id.to_vec(), t.meta(&wanted[w]));
                out.write.push(b.clone());
                after.push(Some(b));
            }
            Op::Refresh { i, w } => {
                let b = (current[i].0.clone(), call_id.to_vec(), t.meta(&wanted[w]));
                out.write.push(b.clone());
                after[i] = Some(b);
            }
            Op::Remove(i) => {
                out.remove.push(current[i].0.clone());
                after[i] = None;
            }
        }
    }
    out.after = after.into_iter().flatten().collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayvec::ArrayVec;

    fn params() -> Params {
        Params::default()
    }

    #[test]
    fn adds_refreshes_and_removes_become_writes_and_the_list() {
        let t = Template {
            sock: 1,
            cflags: 0,
            cseq: 2,
            now: 1_000,
            ..Template::default()
        };
        let old = Meta {
            cseq: 1,
            expires: 1_500,
            ..Meta::default()
        };
        let current = vec![
            (b"sip:a@h".to_vec(), b"c1".to_vec(), old),
            (b"sip:b@h".to_vec(), b"c1".to_vec(), old),
        ];
        let mut w = ArrayVec::new();
        w.push(Wanted {
            uri: b"sip:a@h",
            expires: 600,
            q: None,
        });
        w.push(Wanted {
            uri: b"sip:b@h",
            expires: 0,
            q: None,
        });
        w.push(Wanted {
            uri: b"sip:c@h",
            expires: 300,
            q: Some(500),
        });
        let p = plan(&current, &Request::Update(w), b"c1", &params(), &t).unwrap();
        assert_eq!(p.remove, [b"sip:b@h".to_vec()]);
        let written: Vec<(&[u8], u64)> = p
            .write
            .iter()
            .map(|(c, _, m)| (c.as_slice(), m.expires))
            .collect();
        assert!(written.contains(&(&b"sip:a@h"[..], 1_600)));
        assert!(written.contains(&(&b"sip:c@h"[..], 1_300)));
        let after: Vec<&[u8]> = p.after.iter().map(|(c, _, _)| c.as_slice()).collect();
        assert_eq!(after.len(), 2);
        assert!(after.contains(&&b"sip:a@h"[..]) && after.contains(&&b"sip:c@h"[..]));
        // An older CSeq on the same Call-ID is refused, as in memory.
        let stale = Template { cseq: 1, ..t };
        let mut w = ArrayVec::new();
        w.push(Wanted {
            uri: b"sip:a@h",
            expires: 600,
            q: None,
        });
        assert!(plan(&current, &Request::Update(w), b"c1", &params(), &stale).is_err());
    }
}

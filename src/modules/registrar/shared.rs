//! `save()` with the location table shared through Redis: decided by the
//! same §10.3 code (`plan.rs`) on the AOR as this node's table holds it,
//! with the version it holds, and applied in Redis only on that version:
//! one round trip when the table is current (the usual case: the feed
//! keeps it so). Another node having moved the AOR, it is read from Redis
//! and decided again. Then this node's table gets the AOR's new bindings
//! at once (the other nodes get them from the feed) and the 200 lists
//! them. Redis not answering: 503 with Retry-After, nothing changed.

use crate::db::conn::DbError;
use crate::db::handle::Handle;
use crate::db::redis::{RedisConn, RedisUrl};
use crate::modules::def::Cx;
use crate::modules::registrar::plan::{Owned, Template, plan};
use crate::modules::registrar::{Params, Reject, Request, Wanted};
use crate::modules::usrloc::redis::record::Binding;
use crate::modules::usrloc::redis::store::{self, Applied};
use crate::modules::usrloc::{UlCounter, unix_now};
use crate::script::MsgCtx;

use super::runtime::RegistrarState;

/// A worker waits this long for Redis, in its own thread (an answer takes
/// well under a millisecond; a second is Redis in trouble, or a machine
/// too loaded to schedule it, and the breaker then fails saves at once
/// for a while).
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and decisions again when another node changed the AOR between
/// this node's read and its write, at most.
const ATTEMPTS: usize = 32;

/// What a REGISTER asks, owned (it is decided on the handle's thread).
enum Asked {
    Query,
    RemoveAll,
    Update(Vec<(Vec<u8>, u32, Option<u16>)>),
}

impl Asked {
    fn of(req: &Request<'_>) -> Asked {
        match req {
            Request::Query => Asked::Query,
            Request::RemoveAll => Asked::RemoveAll,
            Request::Update(w) => {
                Asked::Update(w.iter().map(|w| (w.uri.to_vec(), w.expires, w.q)).collect())
            }
        }
    }

    fn request(&self) -> Request<'_> {
        match self {
            Asked::Query => Request::Query,
            Asked::RemoveAll => Request::RemoveAll,
            Asked::Update(w) => Request::Update(
                w.iter()
                    .map(|(uri, expires, q)| Wanted {
                        uri,
                        expires: *expires,
                        q: *q,
                    })
                    .collect(),
            ),
        }
    }
}

/// How a save ended in Redis.
enum Saved {
    /// The AOR's bindings and version now.
    Done(Vec<Owned>, u64),
    Refused(Reject),
}

fn binding((contact, call_id, meta): &Owned) -> Binding {
    Binding {
        contact: contact.clone(),
        call_id: call_id.clone(),
        meta: *meta,
    }
}

/// Decide and apply, first on what this node's table holds (`cached`:
/// its version and bindings), then, while another node moved the AOR, on
/// what Redis holds.
#[allow(clippy::too_many_arguments)]
fn save(
    c: &mut RedisConn,
    node: u64,
    table: &str,
    aor: &[u8],
    asked: &Asked,
    call_id: &[u8],
    reg: &Params,
    t: &Template,
    mut cached: Option<(u64, Vec<Owned>)>,
) -> Result<Saved, DbError> {
    for _ in 0..ATTEMPTS {
        let from_cache = cached.is_some();
        let (version, current, expired) = match cached.take() {
            Some((v, current)) => (v, current, Vec::new()),
            None => {
                let cur = store::read(c, table, aor, t.now)?;
                let current: Vec<Owned> = cur
                    .bindings
                    .iter()
                    .map(|b| (b.contact.clone(), b.call_id.clone(), b.meta))
                    .collect();
                (cur.version, current, cur.expired)
            }
        };
        let p = match plan(&current, &asked.request(), call_id, reg, t) {
            Ok(p) => p,
            Err(r) => return Ok(Saved::Refused(r)),
        };
        if p.write.is_empty() && p.remove.is_empty() && expired.is_empty() {
            // Nothing to write, so no version checked: the list must come
            // from Redis, not from a table a few entries behind.
            if from_cache {
                continue;
            }
            return Ok(Saved::Done(p.after, version));
        }
        let remove: Vec<&[u8]> = p.remove.iter().chain(&expired).map(Vec::as_slice).collect();
        let write: Vec<Binding> = p.write.iter().map(binding).collect();
        let write: Vec<&Binding> = write.iter().collect();
        let after: Vec<Binding> = p.after.iter().map(binding).collect();
        match store::apply(c, node, table, aor, version, &remove, &write, &after)? {
            Applied::Done(v) => return Ok(Saved::Done(p.after, v)),
            Applied::Moved(_) => continue,
        }
    }
    Err(DbError(format!(
        "the AOR changed under {ATTEMPTS} attempts in a row"
    )))
}

impl RegistrarState<'_> {
    /// The address the other nodes reach this one at (RFC 3327's Path
    /// in effect: they send requests for a phone connected here through
    /// it): `node_address`, else the UDP socket on the address the
    /// request came to (the first UDP socket of its family). Port 0 when
    /// this node has no UDP socket (the other nodes then try the contact).
    pub(super) fn node_address(&self, cx: &Cx<'_>) -> rser_shm::Peer {
        if let Some(a) = self.ul.node_address {
            return a.into();
        }
        let here = cx.shell.local(cx.shell.in_sock());
        let sock = cx.shell.socket_for(here);
        match cx.shell.transport(sock) {
            crate::cfg::settings::Proto::Udp => cx.shell.local(sock).into(),
            _ => rser_shm::Peer::default(),
        }
    }

    /// The AOR as this node's table holds it, with its version (none
    /// held: version 0, as Redis has an AOR it never saw); None when its
    /// bindings say no version (then Redis is asked).
    fn cached(&mut self, domain: u16, now: u64) -> Option<(u64, Vec<Owned>)> {
        let loc = self.location;
        let aor = loc.aor(domain, &self.aor);
        self.texts.clear();
        let found = {
            let l = loc.lock(&aor);
            loc.find(&l, &aor, Some(now), &mut self.texts)
        };
        let version = found.iter().map(|f| f.version).max().unwrap_or(0);
        if version == 0 && !found.is_empty() {
            return None;
        }
        let texts = &self.texts;
        let current = found
            .iter()
            .map(|f| {
                (
                    texts[f.contact.0..f.contact.1].to_vec(),
                    texts[f.call_id.0..f.call_id.1].to_vec(),
                    f.meta,
                )
            })
            .collect();
        Some((u64::from(version), current))
    }

    /// `save()` in the shared mode; `self.aor` is the AOR, `domain` its
    /// table's index.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn save_shared(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        table: &str,
        domain: u16,
        req: &Request<'_>,
        call_id: &[u8],
        cseq: u32,
        headers: &mut Vec<u8>,
    ) -> i32 {
        let (received, flow) = super::runtime::flow_of(cx, ctx);
        let t = Template {
            sock: cx.shell.in_sock() as u8,
            cflags: ctx.st.bflags,
            cseq,
            now: unix_now(),
            received,
            flow,
            owner: match flow {
                0 => rser_shm::Peer::default(),
                _ => self.node_address(cx),
            },
        };
        if self.redis.is_none() {
            let Some(url) = self
                .ul
                .db_url
                .as_deref()
                .and_then(|u| RedisUrl::parse(u).ok())
            else {
                return -1;
            };
            self.redis = Some(Handle::inline(url, REDIS_TIMEOUT));
        }
        let node = self.location.node;
        let mut cached = self.cached(domain, t.now);
        let (table_s, aor, asked, id, reg) = (
            table.to_string(),
            self.aor.clone(),
            Asked::of(req),
            call_id.to_vec(),
            self.reg,
        );
        let Some(h) = self.redis.as_mut() else {
            return -1;
        };
        let t0 = std::time::Instant::now();
        let saved = h.call(
            move |c: &mut RedisConn| {
                save(
                    c,
                    node,
                    &table_s,
                    &aor,
                    &asked,
                    &id,
                    &reg,
                    &t,
                    cached.take(),
                )
            },
            cx.now_ms,
        );
        self.ul_counts.add(UlCounter::RedisSaves as usize, 1);
        self.ul_counts.add(
            UlCounter::RedisSaveUs as usize,
            t0.elapsed().as_micros() as u64,
        );
        match saved {
            Ok(Saved::Done(after, version)) => {
                let list: Vec<(&[u8], &[u8], crate::modules::usrloc::Meta)> = after
                    .iter()
                    .map(|(c, id, m)| (c.as_slice(), id.as_slice(), *m))
                    .collect();
                let loc = self.location;
                if loc
                    .replace(
                        &loc.aor(domain, &self.aor),
                        &list,
                        version,
                        t.now,
                        &mut self.scratch,
                    )
                    .is_err()
                {
                    self.ul_counts.add(UlCounter::TableFull as usize, 1);
                }
                super::db_only::list_and_reply(cx, ctx, &after, t.now, headers)
            }
            Ok(Saved::Refused(r)) => super::runtime::refuse(cx, ctx, headers, r),
            Err(e) => {
                self.ul_counts.add(UlCounter::DbErrors as usize, 1);
                if let Some(held) = self.db_log.allow(cx.now_ms) {
                    log::error!(
                        "usrloc: REGISTER not saved, Redis did not take it: {e}{}",
                        crate::server::log_limit::held_text(held)
                    );
                }
                cx.shell
                    .reply(ctx, 503, b"Service Unavailable", b"Retry-After: 5\r\n");
                0
            }
        }
    }
}

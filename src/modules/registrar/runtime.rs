//! The registrar in a worker: `save()` (RFC 3261 §10.3 on usrloc's
//! shared location table, then the reply) and `lookup()` (the
//! destination set from an AOR's bindings).

use arrayvec::ArrayVec;

use crate::cfg::Config;
use crate::cfg::program::Param;
use crate::modules::def::{Counts, Cx, Runtime, Start, bad_args};
use crate::modules::registrar::{self, Current, MAX_CONTACTS, Op, Reject, Request};
use crate::modules::usrloc::UlCounter;
use crate::modules::usrloc::table::{DIRTY, Q_NONE};
use crate::modules::usrloc::writer::{self, Change};
use crate::modules::usrloc::{self, DbMode, Location, Meta, unix_now};
use crate::script::MsgCtx;
use crate::script::uri_ops::Rewrite;
use crate::server::log_limit::LogLimit;
use crate::sip::{Method, Uri};

/// What a worker keeps for the registrar.
pub struct RegistrarState<'a> {
    pub location: Location,
    /// Location table names; a binding's `domain` indexes it.
    pub tables: Vec<String>,
    pub ul: usrloc::Params,
    pub reg: registrar::Params,
    /// Full-queue warnings (db_mode 1), at most once a second.
    queue_log: LogLimit,
    /// db_mode 3: the location table through this worker's bounded
    /// handle (made on first use), its wait bound, failures logged once
    /// a second.
    pub(super) db: Option<crate::db::handle::Handle>,
    pub(super) db_timeout: std::time::Duration,
    pub(super) db_log: LogLimit,
    /// Shared through Redis: this worker's bounded handle (made on first
    /// use).
    pub(super) redis: Option<crate::db::handle::Handle<crate::db::redis::RedisConn>>,
    pub(super) aor: Vec<u8>,
    pub(super) texts: Vec<u8>,
    /// A contact's next hop through its connection (reused).
    dst: Vec<u8>,
    pub(super) scratch: Vec<u8>,
    /// A reply's header lines (reused).
    headers: Vec<u8>,
    /// Table-full warnings, at most once a second.
    full_log: LogLimit,
    /// This node's addresses: a binding's owner among them is this node.
    myself: crate::cfg::program::Myself,
    /// A branch's Route through another node (reused).
    path: Vec<u8>,
    /// usrloc's counters (the table is usrloc's).
    pub(super) ul_counts: Counts<'a>,
}

impl<'a> RegistrarState<'a> {
    pub fn new(config: &Config, location: Location, ul_counts: Counts<'a>) -> RegistrarState<'a> {
        RegistrarState {
            location,
            tables: usrloc::tables(&config.program),
            // Checked at start-up (`load`): the default never serves.
            ul: usrloc::Params::from_config(config).unwrap_or_default(),
            reg: registrar::Params::from_config(config),
            queue_log: LogLimit::default(),
            db: None,
            db_timeout: ul_timeout(config),
            db_log: LogLimit::default(),
            redis: None,
            aor: Vec::new(),
            texts: Vec::new(),
            dst: Vec::new(),
            scratch: Vec::new(),
            headers: Vec::new(),
            full_log: LogLimit::default(),
            myself: config.program.myself.clone(),
            path: Vec::new(),
            ul_counts,
        }
    }

    fn domain(&self, table: &str) -> Option<u16> {
        self.tables
            .iter()
            .position(|t| t == table)
            .map(|i| i as u16)
    }
}

/// How long a db_mode 3 query may take.
fn ul_timeout(config: &Config) -> std::time::Duration {
    let url = config.modparam_str("usrloc", "db_url", "");
    crate::db::served(url).map_or(std::time::Duration::from_secs(2), |u| {
        crate::db::timeout(config, &u)
    })
}

/// A change save() made, for write-through.
enum Written {
    Upsert { contact: (usize, usize), meta: Meta },
    Delete { contact: (usize, usize) },
}

impl RegistrarState<'_> {
    /// `save(table)`: a REGISTER's bindings changed per §10.3 and the
    /// reply sent (200 with every binding, or the refusal).
    fn save(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, table: &str) -> i32 {
        let mut headers = std::mem::take(&mut self.headers);
        let r = self.save_in(cx, ctx, table, &mut headers);
        self.headers = headers;
        r
    }

    fn save_in(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        table: &str,
        headers: &mut Vec<u8>,
    ) -> i32 {
        let rs = self;
        let msg = ctx.msg;
        if msg.method() != Some(Method::Register) {
            log::warn!(
                "save({table}) on a {}: only REGISTER",
                String::from_utf8_lossy(msg.method_raw())
            );
            return -1;
        }
        let Some(domain) = rs.domain(table) else {
            return -1;
        };
        let to = match msg.to().and_then(|t| t.uri()) {
            Ok(uri) => uri,
            Err(_) => return refuse(cx, ctx, headers, REJECT_BAD_TO),
        };
        usrloc::aor_of(&to, rs.ul.use_domain, &mut rs.aor);
        if rs.aor.is_empty() {
            return refuse(cx, ctx, headers, REJECT_BAD_TO);
        }
        let req = match registrar::read_request(msg, &rs.reg) {
            Ok(r) => r,
            Err(r) => return refuse(cx, ctx, headers, r),
        };
        let (Ok(call_id), Ok(cseq)) = (msg.call_id(), msg.cseq()) else {
            return refuse(cx, ctx, headers, REJECT_BAD_TO);
        };
        match rs.ul.db_mode {
            DbMode::DbOnly => {
                return rs.save_db_only(cx, ctx, table, &req, call_id, cseq.number, headers);
            }
            DbMode::Shared => {
                return rs.save_shared(cx, ctx, table, domain, &req, call_id, cseq.number, headers);
            }
            _ => {}
        }
        let now = unix_now();
        let loc = rs.location;
        let aor = loc.aor(domain, &rs.aor);
        let tombstones = rs.ul.db_mode == DbMode::WriteBack;
        let dirty = if tombstones { DIRTY } else { 0 };
        let mut written: ArrayVec<Written, { 2 * MAX_CONTACTS }> = ArrayVec::new();
        rs.texts.clear();
        let mut l = loc.lock(&aor);
        let found = loc.find(&l, &aor, Some(now), &mut rs.texts);
        let current: ArrayVec<Current<'_>, MAX_CONTACTS> = found
            .iter()
            .map(|f| Current {
                contact: &rs.texts[f.contact.0..f.contact.1],
                call_id: &rs.texts[f.call_id.0..f.call_id.1],
                cseq: f.meta.cseq,
            })
            .collect();
        let decided = registrar::decide(&current, &req, call_id, cseq.number, &rs.reg);
        drop(current);
        let ops = match decided {
            Ok(ops) => ops,
            Err(r) => {
                drop(l);
                return refuse(cx, ctx, headers, r);
            }
        };
        let wanted: &[registrar::Wanted<'_>] = match &req {
            Request::Update(w) => w,
            _ => &[],
        };
        // Over a stream, the phone is reached through its connection
        // (behind NAT the only way in): the binding keeps its far end.
        let (received, flow) = flow_of(cx, ctx);
        let meta_for = |w: &registrar::Wanted<'_>| Meta {
            q: w.q.unwrap_or(Q_NONE),
            sock: cx.shell.in_sock() as u8,
            received,
            flow,
            owner: rser_shm::Peer::default(),
            cseq: cseq.number,
            cflags: ctx.st.bflags,
            expires: now + u64::from(w.expires),
            updated: now,
        };
        // New bindings first: running out of room then changes nothing.
        let mut added: ArrayVec<u32, MAX_CONTACTS> = ArrayVec::new();
        for op in &ops {
            let Op::Add(w) = *op else { continue };
            let want = &wanted[w];
            let meta = meta_for(want);
            match loc.insert(
                &mut l,
                &aor,
                want.uri,
                call_id,
                meta,
                dirty,
                &mut rs.scratch,
            ) {
                Ok(idx) => added.push(idx),
                Err(_) => {
                    for idx in added {
                        loc.remove(&mut l, idx, false);
                    }
                    drop(l);
                    rs.ul_counts.add(UlCounter::TableFull as usize, 1);
                    if let Some(held) = rs.full_log.allow(cx.now_ms) {
                        log::warn!(
                            "usrloc: table full ({} bindings); REGISTER refused{}",
                            loc.live(),
                            crate::server::log_limit::held_text(held)
                        );
                    }
                    return refuse(cx, ctx, headers, REJECT_FULL);
                }
            }
            let start = rs.texts.len();
            rs.texts.extend_from_slice(want.uri);
            let _ = written.try_push(Written::Upsert {
                contact: (start, rs.texts.len()),
                meta,
            });
        }
        for op in &ops {
            match *op {
                Op::Refresh { i, w } => {
                    let f = found[i];
                    let meta = meta_for(&wanted[w]);
                    let new_id =
                        (&rs.texts[f.call_id.0..f.call_id.1] != call_id).then_some(call_id);
                    let contact = &rs.texts[f.contact.0..f.contact.1];
                    if loc
                        .refresh(
                            &mut l,
                            f.idx,
                            &rs.aor,
                            contact,
                            new_id,
                            meta,
                            dirty,
                            &mut rs.scratch,
                        )
                        .is_err()
                    {
                        log::warn!("usrloc: pool full; a binding keeps its old Call-ID");
                    }
                    let _ = written.try_push(Written::Upsert {
                        contact: f.contact,
                        meta,
                    });
                }
                Op::Remove(i) => {
                    loc.remove(&mut l, found[i].idx, tombstones);
                    let _ = written.try_push(Written::Delete {
                        contact: found[i].contact,
                    });
                }
                Op::Add(_) => {}
            }
        }
        // The 200 lists every binding now (§10.3 step 8).
        let listing = headers;
        listing.clear();
        let mut texts = std::mem::take(&mut rs.scratch);
        texts.clear();
        for f in loc.find(&l, &aor, Some(now), &mut texts) {
            let q = (f.meta.q != Q_NONE).then_some(f.meta.q);
            registrar::contact_line(
                &texts[f.contact.0..f.contact.1],
                f.meta.expires - now,
                q,
                listing,
            );
        }
        drop(l);
        rs.scratch = texts;
        if rs.ul.db_mode == DbMode::WriteThrough {
            rs.write_through(domain, call_id, &written, cx.now_ms);
        }
        cx.counts.add(super::ACCEPTED, 1);
        cx.shell.reply(ctx, 200, b"OK", listing)
    }

    /// db_mode 1: what save() changed queued for the database, in order
    /// (`usrloc/writer.rs`).
    fn write_through(&mut self, domain: u16, call_id: &[u8], w: &[Written], now_ms: u64) {
        let rs = self;
        for op in w {
            let change = match op {
                Written::Upsert { contact, meta } => Change::Upsert {
                    domain,
                    aor: &rs.aor,
                    contact: &rs.texts[contact.0..contact.1],
                    call_id,
                    meta: *meta,
                },
                Written::Delete { contact } => Change::Delete {
                    domain,
                    aor: &rs.aor,
                    contact: &rs.texts[contact.0..contact.1],
                },
            };
            if let Err(e) = writer::queue(&rs.location, &change, now_ms) {
                rs.ul_counts.add(UlCounter::DbQueueFull as usize, 1);
                if let Some(held) = rs.queue_log.allow(now_ms) {
                    log::warn!(
                        "usrloc: a change to {} not queued for the database ({e:?}); kept in memory{}",
                        String::from_utf8_lossy(&rs.aor),
                        crate::server::log_limit::held_text(held)
                    );
                }
            }
        }
    }

    /// `lookup(table)`: the Request-URI becomes the AOR's best contact and
    /// the others join the destination set (highest q first, then the
    /// most recently registered). False when it has none.
    /// `registered(table)`: whether the Request-URI's AOR has a binding
    /// that has not expired; the message is not changed.
    fn registered(&mut self, ctx: &MsgCtx<'_, '_>, table: &str) -> i32 {
        let Some(domain) = self.domain(table) else {
            return -1;
        };
        let Ok(uri) = Uri::parse(ctx.uri()) else {
            return -1;
        };
        usrloc::aor_of(&uri, self.ul.use_domain, &mut self.aor);
        if self.aor.is_empty() {
            return -1;
        }
        let aor = self.location.aor(domain, &self.aor);
        self.texts.clear();
        let l = self.location.lock(&aor);
        let found = self
            .location
            .find(&l, &aor, Some(unix_now()), &mut self.texts);
        if found.is_empty() { -1 } else { 1 }
    }

    fn lookup(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, table: &str) -> i32 {
        let rs = self;
        let Some(domain) = rs.domain(table) else {
            return -1;
        };
        let Ok(uri) = Uri::parse(ctx.uri()) else {
            return -1;
        };
        usrloc::aor_of(&uri, rs.ul.use_domain, &mut rs.aor);
        if rs.aor.is_empty() {
            return -1;
        }
        let loc = rs.location;
        let aor = loc.aor(domain, &rs.aor);
        rs.texts.clear();
        let mut found = match rs.ul.db_mode {
            DbMode::DbOnly => match rs.find_db_only(cx, ctx, table) {
                Ok(found) => found,
                Err(r) => return r,
            },
            _ => {
                let l = loc.lock(&aor);
                loc.find(&l, &aor, Some(unix_now()), &mut rs.texts)
            }
        };
        if found.is_empty() {
            return -1;
        }
        // A contact registered over a connection that is gone cannot be
        // reached (a new connection to it would not get through a NAT):
        // left out, and if none is left, 480 at once. One whose
        // connection another node holds is reached through that node.
        let before = found.len();
        let (ul, myself) = (&rs.ul, &rs.myself);
        let elsewhere = |m: &Meta| held_elsewhere(m, ul, myself);
        found.retain(|f| {
            f.meta.received.port() == 0
                || elsewhere(&f.meta)
                || cx
                    .shell
                    .connected(f.meta.received.into(), flow_proto(cx, &f.meta))
        });
        if found.is_empty() {
            log::debug!(
                "lookup: the {before} contact(s) of {} were registered over connections now closed",
                String::from_utf8_lossy(&rs.aor)
            );
            ctx.st.last_error = Some((480, "Temporarily Unavailable"));
            return -1;
        }
        // Q_NONE sorts below any q (as Kamailio's unspecified q does).
        let rank = |q: u16| if q == Q_NONE { -1 } else { i32::from(q) };
        found.sort_by(|a, b| {
            rank(b.meta.q)
                .cmp(&rank(a.meta.q))
                .then(b.meta.updated.cmp(&a.meta.updated))
        });
        let texts = &rs.texts;
        if ctx
            .rewrite_uri(Rewrite::Uri(&texts[found[0].contact.0..found[0].contact.1]))
            .is_err()
        {
            return -1;
        }
        // The contact's branch flags (`setbflag` at its REGISTER).
        ctx.st.bflags = found[0].meta.cflags;
        let (mut dst, mut path) = (std::mem::take(&mut rs.dst), std::mem::take(&mut rs.path));
        let hop = |m: &Meta, dst: &mut Vec<u8>, path: &mut Vec<u8>| {
            path.clear();
            match elsewhere(m) {
                true => through_owner(m, flow_proto(cx, m), dst, path),
                false if connection_uri(m, flow_proto(cx, m), dst) => {}
                false => dst.clear(),
            }
        };
        hop(&found[0].meta, &mut dst, &mut path);
        if !dst.is_empty() {
            ctx.st.dst_uri.clone_from(&dst);
        }
        ctx.st.path.clone_from(&path);
        ctx.clear_branches();
        let more = if rs.reg.append_branches {
            &found[1..]
        } else {
            &[]
        };
        for f in more {
            hop(&f.meta, &mut dst, &mut path);
            if !ctx.append_branch_with_path(&texts[f.contact.0..f.contact.1], &dst, &path) {
                break;
            }
        }
        rs.path = path;
        rs.dst = dst;
        1
    }
}

/// The transport of a binding's connection: the one it recorded, else
/// its socket's.
fn flow_proto(cx: &Cx<'_>, m: &Meta) -> crate::cfg::settings::Proto {
    crate::cfg::settings::Proto::of_code(m.flow)
        .unwrap_or_else(|| cx.shell.transport(usize::from(m.sock)))
}

/// Whether a binding's connection is held by another node (shared
/// through Redis): its owner is neither one of this node's addresses nor
/// its `node_address`.
fn held_elsewhere(m: &Meta, ul: &usrloc::Params, myself: &crate::cfg::program::Myself) -> bool {
    if m.owner.port() == 0 || m.received.port() == 0 {
        return false;
    }
    let owner = std::net::SocketAddr::from(m.owner);
    ul.node_address != Some(owner) && !myself.addrs.contains(&(owner.ip(), owner.port()))
}

/// The next hop and Route of a contact whose connection another node
/// holds (RFC 3327's Path, as Kamailio's path module writes it): to that
/// node, whose `loose_route()` sends it on through the connection named
/// by the Route's `received` parameter.
fn through_owner(
    m: &Meta,
    proto: crate::cfg::settings::Proto,
    dst: &mut Vec<u8>,
    path: &mut Vec<u8>,
) {
    use std::io::Write as _;
    let (owner, far) = (
        std::net::SocketAddr::from(m.owner),
        std::net::SocketAddr::from(m.received),
    );
    dst.clear();
    let _ = write!(dst, "sip:{owner}");
    path.clear();
    let _ = write!(
        path,
        "<sip:{owner};lr;received=sip:{far}%3Btransport%3D{}>",
        proto.name()
    );
}

/// The next hop of a contact registered over a connection (its far end,
/// over its transport `proto`) into `out`; false for one that was not.
fn connection_uri(meta: &Meta, proto: crate::cfg::settings::Proto, out: &mut Vec<u8>) -> bool {
    use std::io::Write as _;
    if meta.received.port() == 0 {
        return false;
    }
    out.clear();
    let a = std::net::SocketAddr::from(meta.received);
    let _ = write!(out, "sip:{a};transport={}", proto.name());
    true
}

/// Over a stream, the connection a REGISTER came on (its far end and
/// transport code): the phone is reached through it (behind NAT the only
/// way in). None (port 0, code 0) over UDP.
pub(super) fn flow_of(cx: &Cx<'_>, ctx: &MsgCtx<'_, '_>) -> (rser_shm::Peer, u8) {
    let proto = cx.shell.transport(cx.shell.in_sock());
    match proto.is_stream() {
        true => (rser_shm::Peer::from(ctx.src), proto.code()),
        false => (rser_shm::Peer::default(), 0),
    }
}

/// A refusal from save(), replied.
pub(super) fn refuse(
    cx: &mut Cx<'_>,
    ctx: &mut MsgCtx<'_, '_>,
    headers: &mut Vec<u8>,
    r: Reject,
) -> i32 {
    use std::io::Write as _;
    cx.counts.add(super::REJECTED, 1);
    headers.clear();
    if let Some(min) = r.min_expires {
        let _ = write!(headers, "Min-Expires: {min}\r\n");
    }
    cx.shell.reply(ctx, r.code, r.reason.as_bytes(), headers);
    -1
}

impl Runtime for RegistrarState<'_> {
    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        match (id, args) {
            (super::actions::SAVE, [Param::Str(t)]) => self.save(cx, ctx, t),
            (super::actions::LOOKUP, [Param::Str(t)]) => self.lookup(cx, ctx, t),
            (super::actions::REGISTERED, [Param::Str(t)]) => self.registered(ctx, t),
            _ => bad_args("registrar", id),
        }
    }
}

/// The registrar in a process, over usrloc's table.
pub fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let location = s
        .shm_of::<Location>("usrloc")
        .copied()
        .expect("usrloc's table, carved wherever save() or lookup() is called");
    Box::new(RegistrarState::new(
        s.config,
        location,
        s.counts_of("usrloc"),
    ))
}

const REJECT_BAD_TO: Reject = Reject {
    code: 400,
    reason: "Bad To Header",
    min_expires: None,
};

const REJECT_FULL: Reject = Reject {
    code: 500,
    reason: "Server Internal Error (location table full)",
    min_expires: None,
};

//! The registrar in a worker: `save()` (RFC 3261 §10.3 on the shared
//! location table, then the reply) and `lookup()` (the destination set
//! from an AOR's bindings); and usrloc's upkeep in the timer process:
//! expiry, and in write-back mode the database writes.

use std::time::{Duration, Instant};

use arrayvec::ArrayVec;

use crate::cfg::Config;
use crate::modules::registrar::{self, Current, MAX_CONTACTS, Op, Reject, Request};
use crate::modules::usrloc::db::Db;
use crate::modules::usrloc::table::{DELETED, DIRTY, Q_NONE, Sweep};
use crate::modules::usrloc::{self, DbMode, Location, Meta, unix_now};
use crate::script::MsgCtx;
use crate::script::uri_ops::Rewrite;
use crate::server::shared::{Counter, Shared};
use crate::server::worker::Worker;
use crate::sip::{Method, Uri};

/// What a worker keeps for the registrar.
pub struct RegistrarState {
    pub location: Location,
    /// Location table names; a binding's `domain` indexes it.
    pub tables: Vec<String>,
    pub ul: usrloc::Params,
    pub reg: registrar::Params,
    /// Write-through mode's connection, opened on first use.
    db: Option<Db>,
    aor: Vec<u8>,
    texts: Vec<u8>,
    scratch: Vec<u8>,
}

impl RegistrarState {
    pub fn new(config: &Config, location: Location) -> RegistrarState {
        RegistrarState {
            location,
            tables: usrloc::tables(&config.program),
            // Checked at start-up (`load`): the default never serves.
            ul: usrloc::Params::from_config(config).unwrap_or_default(),
            reg: registrar::Params::from_config(config),
            db: None,
            aor: Vec::new(),
            texts: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn domain(&self, table: &str) -> Option<u16> {
        self.tables
            .iter()
            .position(|t| t == table)
            .map(|i| i as u16)
    }
}

/// A change save() made, for write-through.
enum Written {
    Upsert { contact: (usize, usize), meta: Meta },
    Delete { contact: (usize, usize) },
}

/// Loads the database into the table before the workers start; a
/// database that cannot be opened stops the start.
pub fn load(config: &Config, location: &Location) -> Result<(), String> {
    let ul = usrloc::Params::from_config(config)?;
    // The names were checked when the script compiled.
    let tables = usrloc::tables(&config.program);
    let (Some(url), true) = (&ul.db_url, ul.db_mode != DbMode::Memory) else {
        return Ok(());
    };
    let db = Db::open(url, &tables)?;
    let now = unix_now();
    let mut scratch = Vec::new();
    let mut loaded = 0usize;
    for (domain, t) in tables.iter().enumerate() {
        for row in db.load(t, now)? {
            let aor = location.aor(domain as u16, &row.aor);
            let l = location.lock(&aor);
            location
                .insert(
                    &l,
                    &aor,
                    &row.contact,
                    &row.call_id,
                    row.meta,
                    0,
                    &mut scratch,
                )
                .map_err(
                    |_| "usrloc: the database holds more bindings than shared memory (raise -m)",
                )?;
            loaded += 1;
        }
    }
    log::info!("usrloc: {loaded} bindings loaded from {url}");
    Ok(())
}

impl Worker<'_> {
    /// `save(table)`: a REGISTER's bindings changed per §10.3 and the
    /// reply sent (200 with every binding, or the refusal).
    pub(crate) fn save(&mut self, ctx: &mut MsgCtx<'_, '_>, table: &str) -> i32 {
        let Some(mut rs) = self.registrar.take() else {
            return -1;
        };
        let ret = self.save_in(ctx, table, &mut rs);
        self.registrar = Some(rs);
        ret
    }

    fn save_in(&mut self, ctx: &mut MsgCtx<'_, '_>, table: &str, rs: &mut RegistrarState) -> i32 {
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
        let to = match msg.to() {
            Ok(t) => t,
            Err(_) => return self.refuse(ctx, REJECT_BAD_TO),
        };
        usrloc::aor_of(&to.uri, rs.ul.use_domain, &mut rs.aor);
        if rs.aor.is_empty() {
            return self.refuse(ctx, REJECT_BAD_TO);
        }
        let req = match registrar::read_request(msg, &rs.reg) {
            Ok(r) => r,
            Err(r) => return self.refuse(ctx, r),
        };
        let (Ok(call_id), Ok(cseq)) = (msg.call_id(), msg.cseq()) else {
            return self.refuse(ctx, REJECT_BAD_TO);
        };
        let now = unix_now();
        let loc = rs.location;
        let aor = loc.aor(domain, &rs.aor);
        let tombstones = rs.ul.db_mode == DbMode::WriteBack;
        let dirty = if tombstones { DIRTY } else { 0 };
        let mut written: ArrayVec<Written, { 2 * MAX_CONTACTS }> = ArrayVec::new();
        rs.texts.clear();
        let l = loc.lock(&aor);
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
                return self.refuse(ctx, r);
            }
        };
        let wanted: &[registrar::Wanted<'_>] = match &req {
            Request::Update(w) => w,
            _ => &[],
        };
        let meta_for = |w: &registrar::Wanted<'_>| Meta {
            q: w.q.unwrap_or(Q_NONE),
            sock: self.in_sock as u8,
            cseq: cseq.number,
            expires: now + u64::from(w.expires),
            updated: now,
        };
        // New bindings first: running out of room then changes nothing.
        let mut added: ArrayVec<u32, MAX_CONTACTS> = ArrayVec::new();
        for op in &ops {
            let Op::Add(w) = *op else { continue };
            let want = &wanted[w];
            let meta = meta_for(want);
            match loc.insert(&l, &aor, want.uri, call_id, meta, dirty, &mut rs.scratch) {
                Ok(idx) => added.push(idx),
                Err(_) => {
                    for idx in added {
                        loc.remove(&l, idx, false);
                    }
                    drop(l);
                    self.count(Counter::UsrlocTableFull);
                    if let Some(held) = self.full_log.allow(self.now_ms) {
                        log::warn!(
                            "usrloc: table full ({} bindings); REGISTER refused{}",
                            loc.live(),
                            crate::server::log_limit::held_text(held)
                        );
                    }
                    return self.refuse(ctx, REJECT_FULL);
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
                            &l,
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
                    loc.remove(&l, found[i].idx, tombstones);
                    let _ = written.try_push(Written::Delete {
                        contact: found[i].contact,
                    });
                }
                Op::Add(_) => {}
            }
        }
        // The 200 lists every binding now (§10.3 step 8).
        let mut listing = std::mem::take(&mut self.reply_extra);
        listing.clear();
        let mut texts = std::mem::take(&mut rs.scratch);
        texts.clear();
        for f in loc.find(&l, &aor, Some(now), &mut texts) {
            let q = (f.meta.q != Q_NONE).then_some(f.meta.q);
            registrar::contact_line(
                &texts[f.contact.0..f.contact.1],
                f.meta.expires - now,
                q,
                &mut listing,
            );
        }
        drop(l);
        rs.scratch = texts;
        self.reply_extra = listing;
        if rs.ul.db_mode == DbMode::WriteThrough {
            self.write_through(rs, domain, call_id, &written);
        }
        self.count(Counter::RegistrarAccepted);
        self.text.clear();
        self.text.extend_from_slice(b"OK");
        self.reply_any(ctx, 200)
    }

    /// db_mode 1: the worker writes what save() changed.
    fn write_through(
        &mut self,
        rs: &mut RegistrarState,
        domain: u16,
        call_id: &[u8],
        w: &[Written],
    ) {
        if rs.db.is_none() {
            let url = rs.ul.db_url.clone().unwrap_or_default();
            match Db::open(&url, &rs.tables) {
                Ok(db) => rs.db = Some(db),
                Err(e) => {
                    self.count(Counter::UsrlocDbErrors);
                    log::error!("{e}");
                    return;
                }
            }
        }
        let Some(db) = &rs.db else { return };
        let table = &rs.tables[domain as usize];
        for op in w {
            let r = match op {
                Written::Upsert { contact, meta } => db.upsert(
                    table,
                    &rs.aor,
                    &rs.texts[contact.0..contact.1],
                    call_id,
                    meta,
                ),
                Written::Delete { contact } => {
                    db.delete(table, &rs.aor, &rs.texts[contact.0..contact.1])
                }
            };
            if let Err(e) = r {
                self.count(Counter::UsrlocDbErrors);
                log::error!("{e}");
            }
        }
    }

    /// A refusal from save(), replied.
    fn refuse(&mut self, ctx: &mut MsgCtx<'_, '_>, r: Reject) -> i32 {
        use std::io::Write as _;
        self.count(Counter::RegistrarRejected);
        self.reply_extra.clear();
        if let Some(min) = r.min_expires {
            let _ = write!(self.reply_extra, "Min-Expires: {min}\r\n");
        }
        self.text.clear();
        self.text.extend_from_slice(r.reason.as_bytes());
        self.reply_any(ctx, r.code);
        -1
    }

    /// `lookup(table)`: the Request-URI becomes the AOR's best contact and
    /// the others join the destination set (highest q first, then the
    /// most recently registered). False when it has none.
    pub(crate) fn lookup(&mut self, ctx: &mut MsgCtx<'_, '_>, table: &str) -> i32 {
        let Some(rs) = self.registrar.as_mut() else {
            return -1;
        };
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
        let mut found = {
            let l = loc.lock(&aor);
            loc.find(&l, &aor, Some(unix_now()), &mut rs.texts)
        };
        if found.is_empty() {
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
        ctx.clear_branches();
        let more = if rs.reg.append_branches {
            &found[1..]
        } else {
            &[]
        };
        for f in more {
            if !ctx.append_branch(&texts[f.contact.0..f.contact.1]) {
                break;
            }
        }
        1
    }
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

/// usrloc's upkeep, on a thread of the timer process: every second,
/// expired bindings go; in write-back mode, every `timer_interval`
/// seconds the changes go to the database in one transaction.
pub fn upkeep(shared: &Shared, slot: usize, config: &Config) {
    let Some(loc) = shared.usrloc else { return };
    let Ok(ul) = usrloc::Params::from_config(config) else {
        return;
    };
    let tables = usrloc::tables(&config.program);
    let mut db = match (&ul.db_url, ul.db_mode) {
        (Some(url), DbMode::WriteBack | DbMode::WriteThrough) => match Db::open(url, &tables) {
            Ok(db) => Some(db),
            Err(e) => {
                log::error!("{e}");
                None
            }
        },
        _ => None,
    };
    let interval = Duration::from_secs(ul.timer_interval);
    let mut next_write = Instant::now() + interval;
    let mut buf = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = unix_now();
        let write_now = Instant::now() >= next_write;
        let mut upserts: Vec<(u16, Vec<u8>, usize, usize, Meta)> = Vec::new();
        let mut deletes: Vec<(u16, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut expired = 0u64;
        let write_back = ul.db_mode == DbMode::WriteBack && write_now;
        loc.sweep(
            |b, text| {
                if b.flags & DELETED != 0 {
                    if !write_back {
                        return Sweep::Keep;
                    }
                    if let Some((aor, contact, _)) = b.parts(text) {
                        deletes.push((b.domain, aor.to_vec(), contact.to_vec()));
                    }
                    return Sweep::Remove;
                }
                if b.expires <= now {
                    expired += 1;
                    return Sweep::Remove;
                }
                if write_back && b.flags & DIRTY != 0 {
                    if let Some((aor, contact, _)) = b.parts(text) {
                        upserts.push((b.domain, text.to_vec(), aor.len(), contact.len(), b.meta()));
                    }
                    b.flags &= !DIRTY;
                }
                Sweep::Keep
            },
            &mut buf,
        );
        if expired > 0 {
            shared
                .counters
                .add(slot, Counter::UsrlocExpired as usize, expired);
        }
        if !write_now {
            continue;
        }
        next_write = Instant::now() + interval;
        let Some(db) = db.as_mut() else { continue };
        let r = db.batch(|db| {
            // Deletes first: a contact unregistered then registered again
            // within one interval is a tombstone and a new binding.
            for (domain, aor, contact) in &deletes {
                let Some(t) = tables.get(*domain as usize) else {
                    continue;
                };
                db.delete(t, aor, contact)?;
            }
            for (domain, text, a, c, meta) in &upserts {
                let Some(t) = tables.get(*domain as usize) else {
                    continue;
                };
                db.upsert(t, &text[..*a], &text[*a..a + c], &text[a + c..], meta)?;
            }
            for t in &tables {
                db.delete_expired(t, now)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            shared
                .counters
                .add(slot, Counter::UsrlocDbErrors as usize, 1);
            log::error!("{e}");
        }
    }
}

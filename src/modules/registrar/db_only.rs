//! usrloc's db_mode 3 (database only): no binding is kept in memory;
//! `save()` reads the AOR's bindings from the location table, decides as
//! in memory (§10.3, `registrar::decide`) and writes the changes in one
//! transaction; `lookup()` reads them. Several rser nodes can share one
//! table this way. Every wait is the worker's bounded handle's
//! (`db/handle.rs`); a database that cannot answer gives 500.
//!
//! Not kept in this mode: the far end of a stream connection a phone
//! registered over (lookup sends to its contact).

use arrayvec::ArrayVec;

use crate::db::handle::{Handle, Refused};
use crate::modules::def::Cx;
use crate::modules::registrar::plan::{Owned, Template, plan};
use crate::modules::registrar::{self, MAX_CONTACTS, Request};
use crate::modules::usrloc::db::{self as uldb, Stmt};
use crate::modules::usrloc::table::{Found, Meta, Q_NONE};
use crate::modules::usrloc::{UlCounter, unix_now};
use crate::script::MsgCtx;

use super::runtime::RegistrarState;

/// A binding as read: contact, Call-ID, fields.
type Binding = (String, String, Meta);

impl RegistrarState<'_> {
    fn handle(&mut self) -> Option<&mut Handle> {
        if self.db.is_none() {
            let url = crate::db::served(self.ul.db_url.as_deref()?).ok()?;
            self.db = Some(Handle::new(url, self.db_timeout));
        }
        self.db.as_mut()
    }

    /// The AOR's live bindings, or why not.
    fn read(&mut self, table: &str, now_ms: u64) -> Result<Vec<Binding>, Refused> {
        let (sql, params) = uldb::select_aor(table, &self.aor, self.ul.use_domain, unix_now());
        let Some(db) = self.handle() else {
            return Err(Refused::Down);
        };
        let rows = db.query(&sql, &params, now_ms)?;
        Ok(rows.iter().filter_map(|r| uldb::binding_of(r)).collect())
    }

    /// The table did not answer: 500, counted, logged once a second; the
    /// script ends (the client retries after a while).
    fn db_failed(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, e: &Refused) -> i32 {
        self.ul_counts.add(UlCounter::DbErrors as usize, 1);
        if let Some(held) = self.db_log.allow(cx.now_ms) {
            log::error!(
                "usrloc (db_mode 3): {e}{}",
                crate::server::log_limit::held_text(held)
            );
        }
        cx.shell
            .reply(ctx, 500, b"Server Internal Error", b"Retry-After: 5\r\n");
        0
    }

    /// `save()` in db_mode 3; `self.aor` is the AOR.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn save_db_only(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        table: &str,
        req: &Request<'_>,
        call_id: &[u8],
        cseq: u32,
        headers: &mut Vec<u8>,
    ) -> i32 {
        let bindings = match self.read(table, cx.now_ms) {
            Ok(b) => b,
            Err(e) => return self.db_failed(cx, ctx, &e),
        };
        let current: Vec<Owned> = bindings
            .into_iter()
            .map(|(c, id, m)| (c.into_bytes(), id.into_bytes(), m))
            .collect();
        let t = Template {
            sock: cx.shell.in_sock() as u8,
            cflags: ctx.st.bflags,
            cseq,
            now: unix_now(),
            // Kamailio's location table has received and path columns;
            // rser does not keep them there yet (a phone is reached at
            // its contact).
            ..Template::default()
        };
        let plan = match plan(&current, req, call_id, &self.reg, &t) {
            Ok(p) => p,
            Err(r) => return super::runtime::refuse(cx, ctx, headers, r),
        };
        let use_domain = self.ul.use_domain;
        let mut stmts: Vec<Stmt> = plan
            .remove
            .iter()
            .map(|c| uldb::delete_stmt(table, &self.aor, c, use_domain))
            .collect();
        for (contact, id, meta) in &plan.write {
            stmts.extend(uldb::upsert_stmts(
                table, &self.aor, contact, id, meta, use_domain,
            ));
        }
        if !stmts.is_empty() {
            let written = match self.handle() {
                Some(db) => db.transaction(stmts, cx.now_ms),
                None => Err(Refused::Down),
            };
            if let Err(e) = written {
                return self.db_failed(cx, ctx, &e);
            }
        }
        list_and_reply(cx, ctx, &plan.after, t.now, headers)
    }
    /// `lookup()`'s bindings in db_mode 3, as the memory table gives
    /// them: their texts appended to `self.texts`. Err: the table did not
    /// answer (the 500 is sent).
    pub(super) fn find_db_only(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        table: &str,
    ) -> Result<ArrayVec<Found, MAX_CONTACTS>, i32> {
        let bindings = match self.read(table, cx.now_ms) {
            Ok(b) => b,
            Err(e) => return Err(self.db_failed(cx, ctx, &e)),
        };
        let mut found = ArrayVec::new();
        for (contact, id, meta) in bindings.iter().take(MAX_CONTACTS) {
            let start = self.texts.len();
            self.texts.extend_from_slice(contact.as_bytes());
            let mid = self.texts.len();
            self.texts.extend_from_slice(id.as_bytes());
            found.push(Found {
                idx: 0,
                meta: *meta,
                version: 0,
                contact: (start, mid),
                call_id: (mid, self.texts.len()),
            });
        }
        Ok(found)
    }
}

/// The 200 listing every binding the AOR has now (§10.3 step 8).
pub(super) fn list_and_reply(
    cx: &mut Cx<'_>,
    ctx: &mut MsgCtx<'_, '_>,
    after: &[Owned],
    now: u64,
    headers: &mut Vec<u8>,
) -> i32 {
    headers.clear();
    for (uri, _, m) in after {
        let q = (m.q != Q_NONE).then_some(m.q);
        registrar::contact_line(uri, m.expires.saturating_sub(now), q, headers);
    }
    cx.counts.add(super::ACCEPTED, 1);
    cx.shell.reply(ctx, 200, b"OK", headers)
}

//! usrloc's bindings added and removed one by one from outside (SER's
//! FIFO `:ul_add:` and `:ul_rm_contact:`, Kamailio's `ul.add` and
//! `ul.rm_contact`), as the registrar would: under the AOR's lock, and
//! written to the database as db_mode says.

use crate::modules::usrloc::writer::Change;
use serde_json::{Value, json};

use super::methods::Control;
use super::rpc::{INTERNAL_ERROR, NOT_FOUND, RpcError};
use crate::modules::usrloc::table::{DIRTY, Meta, Q_NONE};
use crate::modules::usrloc::{DbMode, unix_now};

/// SER's Call-ID and CSeq for a binding added by hand.
pub const ADDED_CALL_ID: &str =
    "The-Answer-To-The-Ultimate-Question-Of-Life-Universe-And-Everything";
pub const ADDED_CSEQ: u32 = 42;

/// Longest an added binding may last (as the registrar's max bound).
const MAX_EXPIRES: f64 = 10.0 * 365.0 * 86_400.0;

impl Control<'_> {
    /// Adds (or refreshes) one binding of `aor` in `table`.
    pub(super) fn ul_add(
        &mut self,
        table: &str,
        aor: &str,
        contact: &str,
        expires: f64,
        q: f64,
    ) -> Result<Value, RpcError> {
        self.changeable()?;
        if !(1.0..=MAX_EXPIRES).contains(&expires) {
            return Err(RpcError::params("'expires' must be 1 second or more"));
        }
        if !(0.0..=1.0).contains(&q) {
            return Err(RpcError::params("'q' must be from 0 to 1"));
        }
        if contact.is_empty() || crate::sip::Uri::parse(contact.as_bytes()).is_err() {
            return Err(RpcError::params(format!("'{contact}' is not a SIP URI")));
        }
        let loc = *self.location()?;
        let domain = self.table_index(Some(table))?;
        let key = loc.aor(domain, aor.as_bytes());
        let now = unix_now();
        let meta = Meta {
            q: if q.is_nan() {
                Q_NONE
            } else {
                (q * 1000.0).round() as u16
            },
            sock: 0,
            received: rser_shm::Peer::default(),
            flow: 0,
            owner: rser_shm::Peer::default(),
            cseq: ADDED_CSEQ,
            cflags: 0,
            expires: now + expires as u64,
            updated: now,
        };
        let dirty = match self.ul.db_mode {
            DbMode::WriteBack => DIRTY,
            _ => 0,
        };
        let mut buf = Vec::new();
        let mut l = loc.lock(&key);
        let same = loc
            .find(&l, &key, None, &mut buf)
            .into_iter()
            .find(|f| &buf[f.contact.0..f.contact.1] == contact.as_bytes());
        let r = match same {
            Some(f) => loc.refresh(
                &mut l,
                f.idx,
                aor.as_bytes(),
                contact.as_bytes(),
                Some(ADDED_CALL_ID.as_bytes()),
                meta,
                dirty,
                &mut buf,
            ),
            None => loc
                .insert(
                    &mut l,
                    &key,
                    contact.as_bytes(),
                    ADDED_CALL_ID.as_bytes(),
                    meta,
                    dirty,
                    &mut buf,
                )
                .map(|_| ()),
        };
        drop(l);
        r.map_err(|_| RpcError::new(INTERNAL_ERROR, "the location table is full"))?;
        self.write_through(&[Change::Upsert {
            domain,
            aor: aor.as_bytes(),
            contact: contact.as_bytes(),
            call_id: ADDED_CALL_ID.as_bytes(),
            meta,
        }])?;
        Ok(json!({"aor": aor, "contact": contact, "table": table}))
    }

    /// Removes the binding of `contact` from `aor` in `table`.
    pub(super) fn ul_rm_contact(
        &mut self,
        table: &str,
        aor: &str,
        contact: &str,
    ) -> Result<Value, RpcError> {
        self.changeable()?;
        let loc = *self.location()?;
        let domain = self.table_index(Some(table))?;
        let key = loc.aor(domain, aor.as_bytes());
        let mut buf = Vec::new();
        let mut l = loc.lock(&key);
        let found = loc.find(&l, &key, None, &mut buf);
        if found.is_empty() {
            return Err(RpcError::new(NOT_FOUND, format!("no binding for '{aor}'")));
        }
        let Some(f) = found
            .iter()
            .find(|f| &buf[f.contact.0..f.contact.1] == contact.as_bytes())
        else {
            return Err(RpcError::new(
                NOT_FOUND,
                format!("'{aor}' has no contact '{contact}'"),
            ));
        };
        loc.remove(&mut l, f.idx, self.ul.db_mode == DbMode::WriteBack);
        drop(l);
        self.write_through(&[Change::Delete {
            domain,
            aor: aor.as_bytes(),
            contact: contact.as_bytes(),
        }])?;
        Ok(json!({"aor": aor, "contact": contact, "removed": 1}))
    }
}

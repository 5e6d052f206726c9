//! The user location table in shared memory: bindings of an
//! address-of-record to its contacts (RFC 3261 §10.3), found through AOR
//! hash buckets under lock stripes, so any worker saves and any worker
//! looks up. Each binding is a fixed record plus one pool chain holding
//! the AOR, the contact URI and the Call-ID back to back.

use arrayvec::ArrayVec;
use rser_shm::{Carver, Chain, Chains, Linked, Links, Peer, Pool, Stripe};
use xxhash_rust::xxh3::Xxh3;

use crate::modules::registrar::MAX_CONTACTS;

/// `q` of a Contact that had none.
pub const Q_NONE: u16 = u16::MAX;

/// Flags of a binding.
pub const DIRTY: u8 = 1;
/// Unregistered, kept until the write-back has deleted its row.
pub const DELETED: u8 = 2;

/// How long the record of an AOR removed from the shared store stays
/// (`Location::replace`): longer than any save takes to reach the table.
pub const TOMBSTONE_SECS: u64 = 30;

/// Pool blocks budgeted per binding: AOR, contact and Call-ID fit in two
/// 128-byte blocks for all but unusually long contacts.
const POOL_BLOCKS_PER_BINDING: usize = 2;

#[repr(C)]
pub struct Binding {
    links: Links,
    /// Which location table (the name `save()` and `lookup()` take).
    pub domain: u16,
    /// Thousandths, or `Q_NONE`.
    pub q: u16,
    pub flags: u8,
    /// Socket the REGISTER came in on.
    pub sock: u8,
    /// The far end of the connection it came on, when over a stream
    /// (port 0 otherwise): lookup() sends to the phone through it.
    pub received: Peer,
    /// The transport of `received` (`Proto::code`; 0: none).
    pub flow: u8,
    /// Shared through Redis: the node holding that connection, as the
    /// address other nodes reach it at (port 0: this node, or none).
    pub owner: Peer,
    aor_len: u16,
    contact_len: u16,
    pub cseq: u32,
    /// The branch flags the REGISTER's script set (Kamailio's `cflags`):
    /// `lookup()` gives them back to the call's branch.
    pub cflags: u32,
    aor_hash: u64,
    /// Unix seconds.
    pub expires: u64,
    /// Unix seconds of the last REGISTER that touched it.
    pub updated: u64,
    /// Shared through Redis: the AOR's version this binding is of (0
    /// otherwise).
    pub version: u32,
    text: Chain,
}

impl Linked for Binding {
    fn links(&self) -> &Links {
        &self.links
    }
    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

/// A binding's fields, as saved and as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    pub q: u16,
    pub sock: u8,
    /// The connection's far end, registered over a stream (port 0:
    /// none).
    pub received: Peer,
    /// The transport of `received` (`Proto::code`; 0: none).
    pub flow: u8,
    /// The node holding that connection, as other nodes reach it (port
    /// 0: this node, or not shared).
    pub owner: Peer,
    pub cseq: u32,
    pub cflags: u32,
    pub expires: u64,
    pub updated: u64,
}

/// A binding found for an AOR: its record and, in the caller's buffer,
/// the ranges of its contact and Call-ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub idx: u32,
    pub meta: Meta,
    /// The AOR's version in the shared store (0 when not shared).
    pub version: u32,
    pub contact: (usize, usize),
    pub call_id: (usize, usize),
}

/// The table ran out of records or pool blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Clone, Copy)]
pub struct Location {
    records: Chains<Binding>,
    pool: Pool,
    /// db_mode 1: the changes on their way to the database
    /// (`writer.rs`).
    pub queue: Option<rser_shm::ring::Ring>,
    /// Shared through Redis: where each bucket's feed stood when the
    /// master's snapshot began (stream id: milliseconds, sequence), for
    /// the feed reader to go on from.
    pub feed_from: Option<rser_shm::Slice<std::sync::atomic::AtomicU64>>,
    /// Shared through Redis: this node's name in the feeds (random at
    /// each start), so its reader skips what its workers wrote.
    pub node: u64,
}

/// Which AOR: its table, its hash and its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aor<'a> {
    pub domain: u16,
    pub name: &'a [u8],
    hash: u64,
    pub bucket: u32,
}

impl Location {
    /// Shared memory one binding is budgeted.
    pub fn bytes_per_binding() -> usize {
        std::mem::size_of::<Binding>()
            + Chains::<Binding>::OVERHEAD
            + POOL_BLOCKS_PER_BINDING * Pool::BYTES_PER_BLOCK
    }

    /// Carves a table for about `bytes` of shared memory.
    pub fn carve(carver: &mut Carver<'_>, bytes: usize) -> Option<Location> {
        let n = (bytes / Self::bytes_per_binding()).max(16);
        let records = Chains::carve(carver, n, "usrloc", || Binding {
            links: Links::FREE,
            domain: 0,
            q: Q_NONE,
            flags: 0,
            sock: 0,
            received: Peer::default(),
            flow: 0,
            owner: Peer::default(),
            aor_len: 0,
            contact_len: 0,
            cseq: 0,
            cflags: 0,
            aor_hash: 0,
            expires: 0,
            updated: 0,
            version: 0,
            text: Chain::EMPTY,
        })?;
        let pool = Pool::carve(carver, n * POOL_BLOCKS_PER_BINDING)?;
        Some(Location {
            records,
            pool,
            queue: None,
            feed_from: None,
            node: 0,
        })
    }

    pub fn capacity(&self) -> usize {
        self.records.capacity()
    }

    /// Bindings held now (tombstones included).
    pub fn live(&self) -> usize {
        self.records.live()
    }

    pub fn aor<'a>(&self, domain: u16, name: &'a [u8]) -> Aor<'a> {
        let mut h = Xxh3::new();
        h.update(&domain.to_le_bytes());
        h.update(name);
        let hash = h.digest();
        Aor {
            domain,
            name,
            hash,
            bucket: self.records.bucket_of(hash),
        }
    }

    pub fn lock(&self, aor: &Aor<'_>) -> Stripe<'_> {
        self.records.lock(aor.bucket)
    }

    /// The AOR's bindings (its stripe locked), newest first, with their
    /// texts appended to `buf`; tombstones and, with `now`, expired ones
    /// left out. At most `MAX_CONTACTS`.
    pub fn find(
        &self,
        l: &Stripe<'_>,
        aor: &Aor<'_>,
        now: Option<u64>,
        buf: &mut Vec<u8>,
    ) -> ArrayVec<Found, MAX_CONTACTS> {
        let mut out = ArrayVec::new();
        for idx in self.records.chain(l, aor.bucket) {
            let Some(b) = self.records.get(l, idx) else {
                continue;
            };
            if b.aor_hash != aor.hash
                || b.domain != aor.domain
                || b.flags & DELETED != 0
                || now.is_some_and(|n| b.expires <= n)
            {
                continue;
            }
            let start = buf.len();
            self.pool.read(b.text, buf);
            let (a, c) = (b.aor_len as usize, b.contact_len as usize);
            if buf.len() < start + a + c || &buf[start..start + a] != aor.name {
                buf.truncate(start);
                continue;
            }
            let found = Found {
                idx,
                meta: meta_of(b),
                version: b.version,
                contact: (start + a, start + a + c),
                call_id: (start + a + c, buf.len()),
            };
            if out.try_push(found).is_err() {
                buf.truncate(start);
                break;
            }
        }
        out
    }

    /// A new binding of `aor` (its stripe locked).
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        l: &mut Stripe<'_>,
        aor: &Aor<'_>,
        contact: &[u8],
        call_id: &[u8],
        meta: Meta,
        flags: u8,
        scratch: &mut Vec<u8>,
    ) -> Result<u32, Full> {
        let (aor_len, contact_len) = lens(aor.name, contact)?;
        scratch.clear();
        scratch.extend_from_slice(aor.name);
        scratch.extend_from_slice(contact);
        scratch.extend_from_slice(call_id);
        let text = self.pool.store(scratch).ok_or(Full)?;
        let idx = self.records.insert(l, aor.bucket, |b| {
            b.domain = aor.domain;
            b.aor_hash = aor.hash;
            b.aor_len = aor_len;
            b.contact_len = contact_len;
            b.text = text;
            b.flags = flags;
            b.version = 0;
            set_meta(b, meta);
        });
        idx.ok_or_else(|| {
            self.pool.free(text);
            Full
        })
    }

    /// A REGISTER refreshed binding `idx`; a new Call-ID (a rebooted UA,
    /// §10.3 step 7) means a new text.
    #[allow(clippy::too_many_arguments)]
    pub fn refresh(
        &self,
        l: &mut Stripe<'_>,
        idx: u32,
        aor: &[u8],
        contact: &[u8],
        new_call_id: Option<&[u8]>,
        meta: Meta,
        flags: u8,
        scratch: &mut Vec<u8>,
    ) -> Result<(), Full> {
        let b = self.records.get_mut(l, idx).ok_or(Full)?;
        if let Some(call_id) = new_call_id {
            scratch.clear();
            scratch.extend_from_slice(aor);
            scratch.extend_from_slice(contact);
            scratch.extend_from_slice(call_id);
            if !self.pool.replace(&mut b.text, scratch) {
                return Err(Full);
            }
        }
        b.flags |= flags;
        set_meta(b, meta);
        Ok(())
    }

    /// The AOR's bindings replaced by `bindings` (contact, Call-ID,
    /// fields) at `version`: what a change feed says an AOR holds now
    /// (`now`: unix seconds). Err when the table is full (the AOR then
    /// holds what fitted).
    pub fn replace(
        &self,
        aor: &Aor<'_>,
        bindings: &[(&[u8], &[u8], Meta)],
        version: u64,
        now: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<(), Full> {
        let mut l = self.lock(aor);
        let mut texts = Vec::new();
        let found = self.find(&l, aor, None, &mut texts);
        let tomb = self.tombstone(&l, aor, &mut texts);
        // An entry older than what the table holds (a feed read late,
        // after this node's own newer change, or a save answered before
        // another node's removal was applied) changes nothing.
        let version = version as u32;
        if found.iter().any(|f| f.version > version) || tomb.is_some_and(|(_, v)| v >= version) {
            return Ok(());
        }
        for f in found {
            self.remove(&mut l, f.idx, false);
        }
        if let Some((idx, _)) = tomb {
            self.remove(&mut l, idx, false);
        }
        if bindings.is_empty() && version != 0 {
            // The AOR is gone at this version: a record of it stays a
            // while, so that an older version arriving late cannot bring
            // its bindings back.
            let meta = Meta {
                expires: now + TOMBSTONE_SECS,
                ..Meta::default()
            };
            let idx = self.insert(&mut l, aor, b"", b"", meta, DELETED, scratch)?;
            if let Some(b) = self.records.get_mut(&mut l, idx) {
                b.version = version;
            }
        }
        for (contact, call_id, meta) in bindings {
            let idx = self.insert(&mut l, aor, contact, call_id, *meta, 0, scratch)?;
            if let Some(b) = self.records.get_mut(&mut l, idx) {
                b.version = version;
            }
        }
        Ok(())
    }

    /// The record of an AOR removed from the shared store (a `replace`
    /// with no binding left): its index and version.
    fn tombstone(&self, l: &Stripe<'_>, aor: &Aor<'_>, buf: &mut Vec<u8>) -> Option<(u32, u32)> {
        self.records.chain(l, aor.bucket).find_map(|idx| {
            let b = self.records.get(l, idx)?;
            if b.aor_hash != aor.hash
                || b.domain != aor.domain
                || b.flags & DELETED == 0
                || b.version == 0
            {
                return None;
            }
            buf.clear();
            self.pool.read(b.text, buf);
            (buf.get(..b.aor_len as usize) == Some(aor.name)).then_some((idx, b.version))
        })
    }

    /// Removes binding `idx`; with `tombstone`, keeps it (text and all,
    /// invisible to `find`) until the write-back deletes its row.
    pub fn remove(&self, l: &mut Stripe<'_>, idx: u32, tombstone: bool) {
        let Some(b) = self.records.get_mut(l, idx) else {
            return;
        };
        if tombstone {
            b.flags = DELETED;
            return;
        }
        self.pool.free(std::mem::take(&mut b.text));
        self.records.remove(l, idx);
    }

    /// Visits every binding, one stripe locked at a time: `f` gets the
    /// record's fields and text (AOR, contact and Call-ID lengths first)
    /// and says whether to remove it.
    pub fn sweep(&self, mut f: impl FnMut(&mut Binding, &[u8]) -> Sweep, buf: &mut Vec<u8>) {
        self.records.visit(|l, idx| {
            let Some(b) = self.records.get_mut(l, idx) else {
                return;
            };
            buf.clear();
            self.pool.read(b.text, buf);
            if f(b, buf) == Sweep::Remove {
                self.pool.free(std::mem::take(&mut b.text));
                self.records.remove(l, idx);
            }
        });
    }
}

/// What `sweep` does with a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    Keep,
    Remove,
}

impl Binding {
    /// The AOR, contact and Call-ID in a text read by `sweep`.
    pub fn parts<'t>(&self, text: &'t [u8]) -> Option<(&'t [u8], &'t [u8], &'t [u8])> {
        let (a, c) = (self.aor_len as usize, self.contact_len as usize);
        (text.len() >= a + c).then(|| (&text[..a], &text[a..a + c], &text[a + c..]))
    }

    pub fn meta(&self) -> Meta {
        meta_of(self)
    }
}

fn lens(aor: &[u8], contact: &[u8]) -> Result<(u16, u16), Full> {
    Ok((
        u16::try_from(aor.len()).map_err(|_| Full)?,
        u16::try_from(contact.len()).map_err(|_| Full)?,
    ))
}

fn meta_of(b: &Binding) -> Meta {
    Meta {
        q: b.q,
        sock: b.sock,
        received: b.received,
        flow: b.flow,
        owner: b.owner,
        cseq: b.cseq,
        cflags: b.cflags,
        expires: b.expires,
        updated: b.updated,
    }
}

fn set_meta(b: &mut Binding, m: Meta) {
    b.q = m.q;
    b.sock = m.sock;
    b.received = m.received;
    b.flow = m.flow;
    b.owner = m.owner;
    b.cseq = m.cseq;
    b.cflags = m.cflags;
    b.expires = m.expires;
    b.updated = m.updated;
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;

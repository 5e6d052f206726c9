//! The stream connections (TCP, TLS) every worker can see, in shared
//! memory: which peer each one reaches, which worker owns it (the one
//! that accepted or opened it, the only one that reads and writes its
//! socket), and under which other addresses the peer is reachable over it
//! (RFC 5923's `alias`: a phone's connection from an ephemeral port
//! serves requests to the port its Via names). A worker that wants to send
//! on a connection it does not own hands the message to the owner. A
//! connection's id carries a generation, so an id kept after the
//! connection went (and its record was reused) finds nothing.
//!
//! No process sits on the path of every connection: this table is read
//! and written under lock stripes by the worker at hand, as tm's is.

use rser_shm::{Carver, Chains, Linked, Links, Peer, Slice};
use xxhash_rust::xxh3::Xxh3;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

/// A stream transport.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    #[default]
    Tcp = 1,
    Tls = 2,
}

impl Stream {
    /// The table's kind of a stream transport (TLS, else TCP).
    pub fn of(p: crate::cfg::settings::Proto) -> Stream {
        match p {
            crate::cfg::settings::Proto::Tls => Stream::Tls,
            _ => Stream::Tcp,
        }
    }
}

/// A connection as its id: its record, the record's bucket (fixed by
/// the peer's address) and its generation then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId {
    pub idx: u32,
    pub bucket: u32,
    pub generation: u32,
}

/// What a lookup finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub id: ConnId,
    /// The worker (its slot) that owns the socket.
    pub owner: u16,
    /// The peer's own address (the connection's far end).
    pub peer: SocketAddr,
}

/// No room: every record is taken, or a limit is reached (the total of
/// connections, or those accepted from one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Counters of accepted connections by source address, in this many
/// cells (addresses share a cell by hash: a limit may bite a little early
/// for an address that shares, never late).
const SOURCE_CELLS: usize = 4096;

#[repr(C)]
struct Record {
    links: Links,
    /// The address this record is found under: the peer's own for a
    /// connection, another for an alias.
    key: Peer,
    hash: u64,
    proto: u8,
    /// An alias: the connection it stands for; a connection: itself.
    conn: u32,
    conn_bucket: u32,
    conn_generation: u32,
    /// Bumped each time the record is taken.
    generation: u32,
    owner: u16,
    alias: bool,
    /// Accepted (not opened by us): it counts toward its source's limit.
    accepted: bool,
}

impl Record {
    fn free() -> Record {
        Record {
            links: Links::FREE,
            key: Peer::default(),
            hash: 0,
            proto: 0,
            conn: 0,
            conn_bucket: 0,
            conn_generation: 0,
            generation: 0,
            owner: 0,
            alias: false,
            accepted: false,
        }
    }
}

impl Linked for Record {
    fn links(&self) -> &Links {
        &self.links
    }
    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

#[derive(Clone, Copy)]
pub struct Conns {
    records: Chains<Record>,
    /// [0]: connections open; then accepted ones per source cell.
    counts: Slice<AtomicU32>,
    /// `tcp_max_connections` and `tcp_accept_iplimit`.
    max: u32,
    per_source: u32,
}

fn source_cell(ip: IpAddr) -> usize {
    let h = match ip {
        IpAddr::V4(a) => xxhash_rust::xxh3::xxh3_64(&a.octets()),
        IpAddr::V6(a) => xxhash_rust::xxh3::xxh3_64(&a.octets()),
    };
    1 + (h as usize % SOURCE_CELLS)
}

fn hash(addr: SocketAddr, proto: Stream) -> u64 {
    let mut h = Xxh3::new();
    h.update(&[proto as u8]);
    match addr.ip() {
        std::net::IpAddr::V4(ip) => h.update(&ip.octets()),
        std::net::IpAddr::V6(ip) => h.update(&ip.octets()),
    }
    h.update(&addr.port().to_le_bytes());
    h.digest()
}

impl Conns {
    /// Room for `n` records (connections and their aliases), at most
    /// `max` connections open and `per_source` accepted from one address.
    pub fn carve(carver: &mut Carver<'_>, n: usize, max: u32, per_source: u32) -> Option<Conns> {
        let records = Chains::carve(carver, n, "tcp connections", Record::free)?;
        let counts = carver.slice(1 + SOURCE_CELLS, |_| AtomicU32::new(0))?;
        Some(Conns {
            records,
            counts,
            max,
            per_source,
        })
    }

    /// Connections open now (accepted and opened).
    pub fn connections(&self) -> u32 {
        self.counts[0].load(Ordering::Relaxed)
    }

    /// `tcp_max_connections`, `tcp_accept_iplimit`.
    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn per_source(&self) -> u32 {
        self.per_source
    }

    /// The connections (not aliases) of `kind`, `limit` at most, a stripe
    /// at a time.
    pub fn list(&self, kind: Stream, limit: usize) -> Vec<Found> {
        let mut out = Vec::new();
        self.records.visit(|l, idx| {
            let Some(r) = self.records.get(l, idx) else {
                return;
            };
            if !r.alias && r.proto == kind as u8 && out.len() < limit {
                out.push(Found {
                    id: ConnId {
                        idx,
                        bucket: self.records.bucket_of(r.hash),
                        generation: r.generation,
                    },
                    owner: r.owner,
                    peer: r.key.into(),
                });
            }
        });
        out
    }

    /// Connections open over TCP and over TLS.
    pub fn count_by_kind(&self) -> (usize, usize) {
        let (mut tcp, mut tls) = (0, 0);
        self.records.visit(|l, idx| match self.records.get(l, idx) {
            Some(r) if !r.alias && r.proto == Stream::Tls as u8 => tls += 1,
            Some(r) if !r.alias => tcp += 1,
            _ => {}
        });
        (tcp, tls)
    }

    /// Takes one unit of `cell` under `limit`; false at the limit.
    fn take(&self, cell: usize, limit: u32) -> bool {
        self.counts[cell]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn give(&self, cell: usize) {
        let _ = self.counts[cell].fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_sub(1))
        });
    }

    /// A connection's record went: its counts go with it.
    fn released(&self, key: Peer, accepted: bool) {
        self.give(0);
        if accepted {
            self.give(source_cell(SocketAddr::from(key).ip()));
        }
    }

    pub fn capacity(&self) -> usize {
        self.records.capacity()
    }

    /// Records in use (connections and aliases).
    pub fn live(&self) -> usize {
        self.records.live()
    }

    fn insert(
        &self,
        key: SocketAddr,
        proto: Stream,
        owner: u16,
        conn: Option<ConnId>,
        accepted: bool,
    ) -> Result<ConnId, Full> {
        let h = hash(key, proto);
        let bucket = self.records.bucket_of(h);
        let mut l = self.records.lock(bucket);
        let mut taken = None;
        let idx = self
            .records
            .insert(&mut l, bucket, |r| {
                r.generation = r.generation.wrapping_add(1);
                r.key = Peer::from(key);
                r.hash = h;
                r.proto = proto as u8;
                r.owner = owner;
                r.alias = conn.is_some();
                r.accepted = accepted;
                taken = Some(r.generation);
            })
            .ok_or(Full)?;
        let generation = taken.ok_or(Full)?;
        let id = ConnId {
            idx,
            bucket,
            generation,
        };
        let target = conn.unwrap_or(id);
        if let Some(r) = self.records.get_mut(&mut l, idx) {
            (r.conn, r.conn_bucket, r.conn_generation) =
                (target.idx, target.bucket, target.generation);
        }
        Ok(id)
    }

    /// A new connection to (or from, `accepted`) `peer`, owned by worker
    /// `owner`; `Full` past `tcp_max_connections`, or past
    /// `tcp_accept_iplimit` accepted from its address.
    pub fn add(
        &self,
        peer: SocketAddr,
        proto: Stream,
        owner: u16,
        accepted: bool,
    ) -> Result<ConnId, Full> {
        if !self.take(0, self.max) {
            return Err(Full);
        }
        let cell = source_cell(peer.ip());
        if accepted && !self.take(cell, self.per_source) {
            self.give(0);
            return Err(Full);
        }
        self.insert(peer, proto, owner, None, accepted)
            .inspect_err(|_| self.released(Peer::from(peer), accepted))
    }

    /// `addr` reaches the peer of `conn` too (RFC 5923 §5's alias).
    pub fn alias(&self, conn: ConnId, addr: SocketAddr, proto: Stream) -> Result<(), Full> {
        let Some(f) = self.get(conn) else {
            return Err(Full);
        };
        if f.peer == addr || self.find(addr, proto).is_some_and(|g| g.id == conn) {
            return Ok(());
        }
        self.insert(addr, proto, f.owner, Some(conn), false)
            .map(|_| ())
    }

    /// Connection `id`, if it is still there.
    pub fn get(&self, id: ConnId) -> Option<Found> {
        let l = self.records.lock(id.bucket);
        let r = self.records.get(&l, id.idx)?;
        (r.generation == id.generation && !r.alias).then(|| Found {
            id,
            owner: r.owner,
            peer: r.key.into(),
        })
    }

    /// The connection that reaches `addr` over `proto`: one to that very
    /// address, or one it is an alias of. An alias whose connection is
    /// gone is removed when met.
    pub fn find(&self, addr: SocketAddr, proto: Stream) -> Option<Found> {
        let h = hash(addr, proto);
        let bucket = self.records.bucket_of(h);
        let (alias, target) = {
            let l = self.records.lock(bucket);
            let key = Peer::from(addr);
            let hit = self.records.chain(&l, bucket).find(|&i| {
                self.records
                    .get(&l, i)
                    .is_some_and(|r| r.hash == h && r.key == key && r.proto == proto as u8)
            })?;
            let r = self.records.get(&l, hit)?;
            let me = ConnId {
                idx: hit,
                bucket,
                generation: r.generation,
            };
            if !r.alias {
                return Some(Found {
                    id: me,
                    owner: r.owner,
                    peer: addr,
                });
            }
            let target = ConnId {
                idx: r.conn,
                bucket: r.conn_bucket,
                generation: r.conn_generation,
            };
            (me, target)
        };
        // The alias's lock is not held here: the connection's may be
        // another stripe's.
        if let Some(f) = self.get(target) {
            return Some(f);
        }
        self.remove_record(alias);
        None
    }

    /// Record `id` goes, if it is still that one (a connection or an
    /// alias).
    fn remove_record(&self, id: ConnId) {
        let mut l = self.records.lock(id.bucket);
        if self
            .records
            .get(&l, id.idx)
            .is_some_and(|r| r.generation == id.generation)
        {
            self.records.remove(&mut l, id.idx);
        }
    }

    /// Connection `id` is gone: its record goes (its aliases go when next
    /// met).
    pub fn remove(&self, id: ConnId) {
        let mut l = self.records.lock(id.bucket);
        let gone = self
            .records
            .get(&l, id.idx)
            .filter(|r| r.generation == id.generation && !r.alias)
            .map(|r| (r.key, r.accepted));
        if let Some((key, accepted)) = gone {
            self.records.remove(&mut l, id.idx);
            self.released(key, accepted);
        }
    }

    /// Worker `owner` died: every connection and alias it owned goes
    /// (their sockets died with it); the number removed.
    pub fn remove_owner(&self, owner: u16) -> usize {
        let mut removed = 0;
        self.records.visit(|l, idx| {
            let Some(r) = self.records.get(l, idx).filter(|r| r.owner == owner) else {
                return;
            };
            let conn = (!r.alias).then_some((r.key, r.accepted));
            if self.records.remove(l, idx) {
                removed += 1;
                if let Some((key, accepted)) = conn {
                    self.released(key, accepted);
                }
            }
        });
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize) -> (rser_shm::Region, Conns) {
        let region = rser_shm::Region::create(n * 256 + (1 << 20)).unwrap();
        let c = Conns::carve(&mut region.carver(), n, n as u32, 3).unwrap();
        (region, c)
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn add_find_alias_and_remove() {
        let (_r, c) = table(64);
        let phone = a("192.0.2.7:40123");
        let id = c.add(phone, Stream::Tcp, 3, false).unwrap();
        let f = c.find(phone, Stream::Tcp).unwrap();
        assert_eq!((f.id, f.owner, f.peer), (id, 3, phone));
        // Not over TLS, not another port.
        assert!(c.find(phone, Stream::Tls).is_none());
        assert!(c.find(a("192.0.2.7:5060"), Stream::Tcp).is_none());
        // The phone's Via says alias: its port 5060 is reached over it.
        c.alias(id, a("192.0.2.7:5060"), Stream::Tcp).unwrap();
        c.alias(id, a("192.0.2.7:5060"), Stream::Tcp).unwrap();
        assert_eq!(c.live(), 2, "an alias once");
        let f = c.find(a("192.0.2.7:5060"), Stream::Tcp).unwrap();
        assert_eq!((f.id, f.peer), (id, phone));
        // Gone: its id and its alias find nothing; the alias's record is
        // dropped when met.
        c.remove(id);
        assert!(c.get(id).is_none());
        assert!(c.find(a("192.0.2.7:5060"), Stream::Tcp).is_none());
        assert_eq!(c.live(), 0);
    }

    #[test]
    fn a_reused_record_does_not_answer_to_an_old_id() {
        let (_r, c) = table(16);
        let old = c
            .add(a("[2001:db8::1]:5061"), Stream::Tls, 0, false)
            .unwrap();
        c.remove(old);
        let mut ids = Vec::new();
        for i in 0..c.capacity() {
            ids.push(
                c.add(a(&format!("10.0.0.{}:5060", i + 1)), Stream::Tcp, 1, false)
                    .unwrap(),
            );
        }
        assert!(c.get(old).is_none());
        assert_eq!(c.add(a("10.1.1.1:1"), Stream::Tcp, 1, false), Err(Full));
        for id in ids {
            assert!(c.get(id).is_some());
        }
    }

    #[test]
    fn a_dead_workers_connections_go_and_the_rest_stay() {
        let (_r, c) = table(64);
        let mine = c.add(a("192.0.2.1:1000"), Stream::Tcp, 2, false).unwrap();
        c.alias(mine, a("192.0.2.1:5060"), Stream::Tcp).unwrap();
        let other = c.add(a("192.0.2.2:1000"), Stream::Tcp, 5, false).unwrap();
        assert_eq!(c.remove_owner(2), 2);
        assert!(c.get(mine).is_none());
        assert!(c.get(other).is_some());
    }

    #[test]
    fn the_total_and_each_sources_accepted_connections_are_bounded() {
        let (_r, c) = table(64);
        let c = Conns { max: 5, ..c };
        let ids: Vec<_> = (0..3)
            .map(|i| {
                c.add(a(&format!("192.0.2.9:{}", 1000 + i)), Stream::Tcp, 0, true)
                    .unwrap()
            })
            .collect();
        // A fourth from the same address: over its limit (3).
        assert_eq!(c.add(a("192.0.2.9:2000"), Stream::Tcp, 0, true), Err(Full));
        // Others still come, up to the total (5).
        c.add(a("192.0.2.10:1"), Stream::Tcp, 0, true).unwrap();
        c.add(a("192.0.2.11:1"), Stream::Tcp, 1, false).unwrap();
        assert_eq!(c.add(a("192.0.2.12:1"), Stream::Tcp, 0, false), Err(Full));
        assert_eq!(c.connections(), 5);
        // One goes: its address may connect again; a dead owner's go too.
        c.remove(ids[0]);
        c.add(a("192.0.2.9:2000"), Stream::Tcp, 0, true).unwrap();
        assert_eq!(c.remove_owner(1), 1);
        assert_eq!(c.connections(), 4);
    }
}

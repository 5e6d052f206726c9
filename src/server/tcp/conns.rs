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

use rser_shm::{Carver, Chains, Linked, Links, Peer};
use xxhash_rust::xxh3::Xxh3;

use std::net::SocketAddr;

/// A stream transport.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    #[default]
    Tcp = 1,
    Tls = 2,
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

/// Every record is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

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
    /// Room for `n` records (connections and their aliases).
    pub fn carve(carver: &mut Carver<'_>, n: usize) -> Option<Conns> {
        let records = Chains::carve(carver, n, "tcp connections", Record::free)?;
        Some(Conns { records })
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

    /// A new connection to (or from) `peer`, owned by worker `owner`.
    pub fn add(&self, peer: SocketAddr, proto: Stream, owner: u16) -> Result<ConnId, Full> {
        self.insert(peer, proto, owner, None)
    }

    /// `addr` reaches the peer of `conn` too (RFC 5923 §5's alias).
    pub fn alias(&self, conn: ConnId, addr: SocketAddr, proto: Stream) -> Result<(), Full> {
        let Some(f) = self.get(conn) else {
            return Err(Full);
        };
        if f.peer == addr || self.find(addr, proto).is_some_and(|g| g.id == conn) {
            return Ok(());
        }
        self.insert(addr, proto, f.owner, Some(conn)).map(|_| ())
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
        let same = self
            .records
            .get(&l, id.idx)
            .is_some_and(|r| r.generation == id.generation && !r.alias);
        if same {
            self.records.remove(&mut l, id.idx);
        }
    }

    /// Worker `owner` died: every connection and alias it owned goes
    /// (their sockets died with it); the number removed.
    pub fn remove_owner(&self, owner: u16) -> usize {
        let mut removed = 0;
        self.records.visit(|l, idx| {
            if self.records.get(l, idx).is_some_and(|r| r.owner == owner) {
                removed += usize::from(self.records.remove(l, idx));
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
        let c = Conns::carve(&mut region.carver(), n).unwrap();
        (region, c)
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn add_find_alias_and_remove() {
        let (_r, c) = table(64);
        let phone = a("192.0.2.7:40123");
        let id = c.add(phone, Stream::Tcp, 3).unwrap();
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
        let old = c.add(a("[2001:db8::1]:5061"), Stream::Tls, 0).unwrap();
        c.remove(old);
        let mut ids = Vec::new();
        for i in 0..c.capacity() {
            ids.push(
                c.add(a(&format!("10.0.0.{}:5060", i + 1)), Stream::Tcp, 1)
                    .unwrap(),
            );
        }
        assert!(c.get(old).is_none());
        assert_eq!(c.add(a("10.1.1.1:1"), Stream::Tcp, 1), Err(Full));
        for id in ids {
            assert!(c.get(id).is_some());
        }
    }

    #[test]
    fn a_dead_workers_connections_go_and_the_rest_stay() {
        let (_r, c) = table(64);
        let mine = c.add(a("192.0.2.1:1000"), Stream::Tcp, 2).unwrap();
        c.alias(mine, a("192.0.2.1:5060"), Stream::Tcp).unwrap();
        let other = c.add(a("192.0.2.2:1000"), Stream::Tcp, 5).unwrap();
        assert_eq!(c.remove_owner(2), 2);
        assert!(c.get(mine).is_none());
        assert!(c.get(other).is_some());
    }
}

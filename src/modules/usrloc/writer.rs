//! db_mode 1 (write-through): every change a worker (or the control
//! process) makes to the location table is queued in shared memory as it
//! is made, and a thread of the timer process writes the queue to the
//! database in order, in batches of one transaction each. No worker waits
//! on the database; while it is slow or gone the batch in hand waits and
//! the queue fills, and it is written when the database is back. A full
//! queue drops the change (`usrloc_db_queue_full`, logged): the binding
//! stays served from memory, and its next refresh is queued again.

use std::time::Duration;

use rser_shm::ring::{PushError, Ring};

use super::db::Db;
use super::table::Meta;
use super::{Location, UlCounter};
use crate::modules::def::Start;

/// Bytes of a queued change: its fields and its texts (Kamailio's
/// columns hold a 64-byte user, 512-byte contact and 255-byte Call-ID).
pub const RECORD_BYTES: usize = 1_024;
/// How long the writer sleeps when the queue is empty.
const IDLE: Duration = Duration::from_millis(10);

/// One change to one binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    Upsert {
        domain: u16,
        aor: &'a [u8],
        contact: &'a [u8],
        call_id: &'a [u8],
        meta: Meta,
    },
    Delete {
        domain: u16,
        aor: &'a [u8],
        contact: &'a [u8],
    },
}

const HEAD: usize = 35;

/// Queues `c`; a full queue is counted and logged by the caller.
pub fn push(ring: &Ring, c: &Change<'_>, now_ms: u64) -> Result<(), PushError> {
    let (op, domain, aor, contact, call_id, m) = match c {
        Change::Upsert {
            domain,
            aor,
            contact,
            call_id,
            meta,
        } => (1u8, *domain, *aor, *contact, *call_id, *meta),
        Change::Delete {
            domain,
            aor,
            contact,
        } => (2u8, *domain, *aor, *contact, &[][..], Meta::default()),
    };
    let mut head = [0u8; HEAD];
    head[0] = op;
    head[1..3].copy_from_slice(&domain.to_le_bytes());
    let lens = [aor.len(), contact.len(), call_id.len()];
    for (i, l) in lens.iter().enumerate() {
        let l = u16::try_from(*l).map_err(|_| PushError::TooLong)?;
        head[3 + 2 * i..5 + 2 * i].copy_from_slice(&l.to_le_bytes());
    }
    head[9..11].copy_from_slice(&m.q.to_le_bytes());
    head[11..15].copy_from_slice(&m.cseq.to_le_bytes());
    head[15..19].copy_from_slice(&m.cflags.to_le_bytes());
    head[19..27].copy_from_slice(&m.expires.to_le_bytes());
    head[27..35].copy_from_slice(&m.updated.to_le_bytes());
    let mut record = arrayvec::ArrayVec::<u8, RECORD_BYTES>::new();
    for part in [&head[..], aor, contact, call_id] {
        record
            .try_extend_from_slice(part)
            .map_err(|_| PushError::TooLong)?;
    }
    ring.push(&record, now_ms)
}

/// Queues a change where db_mode 1 has a queue (else nothing to do).
pub fn queue(loc: &Location, c: &Change<'_>, now_ms: u64) -> Result<(), PushError> {
    match &loc.queue {
        Some(ring) => push(ring, c, now_ms),
        None => Ok(()),
    }
}

/// A queued change, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    upsert: bool,
    domain: u16,
    text: Vec<u8>,
    lens: [usize; 3],
    meta: Meta,
}

fn decode(b: &[u8]) -> Option<Owned> {
    let head = b.get(..HEAD)?;
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().unwrap_or_default());
    let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap_or_default());
    let lens = [
        usize::from(u16_at(3)),
        usize::from(u16_at(5)),
        usize::from(u16_at(7)),
    ];
    let text = b.get(HEAD..HEAD + lens.iter().sum::<usize>())?.to_vec();
    Some(Owned {
        upsert: head[0] == 1,
        domain: u16_at(1),
        text,
        lens,
        meta: Meta {
            q: u16_at(9),
            cseq: u32_at(11),
            cflags: u32_at(15),
            expires: u64_at(19),
            updated: u64_at(27),
            ..Meta::default()
        },
    })
}

/// The writer's loop (never returns while the process lives).
pub fn run(loc: Location, s: &Start<'_>, ul: &super::Params, tables: &[String]) {
    let (Some(queue), Some(url)) = (loc.queue, &ul.db_url) else {
        return;
    };
    let timeout = match crate::db::served(url) {
        Ok(u) => crate::db::timeout(s.config, &u),
        Err(_) => return,
    };
    let w = crate::db::queue::Writer {
        module: "usrloc",
        what: "changes",
        counts: &s.counts,
        lost: UlCounter::DbQueueLost as usize,
        written: UlCounter::DbWritten as usize,
        errors: UlCounter::DbErrors as usize,
        idle: IDLE,
    };
    crate::db::queue::run(
        &queue,
        &w,
        decode,
        || Db::open(url, tables, ul.use_domain, timeout),
        |db, batch| write(db, tables, batch),
    );
}

/// The batch in one transaction, in order; how many were written.
fn write(db: &mut Db, tables: &[String], batch: &[Owned]) -> Result<usize, String> {
    db.batch(|db| {
        for c in batch {
            let Some(t) = tables.get(usize::from(c.domain)) else {
                continue;
            };
            let [a, k, i] = c.lens;
            let (aor, contact) = (&c.text[..a], &c.text[a..a + k]);
            match c.upsert {
                true => db.upsert(t, aor, contact, &c.text[a + k..a + k + i], &c.meta)?,
                false => db.delete(t, aor, contact)?,
            }
        }
        Ok(batch.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rser_shm::ring::Pop;

    #[test]
    fn changes_round_trip_through_the_queue() {
        let r = rser_shm::Region::create(1 << 20).unwrap();
        let ring = Ring::carve(&mut r.carver(), 8, RECORD_BYTES).unwrap();
        let meta = Meta {
            q: 700,
            cseq: 9,
            cflags: 3,
            expires: 1_900_000_000,
            updated: 1_800_000_000,
            ..Meta::default()
        };
        let up = Change::Upsert {
            domain: 1,
            aor: b"alice",
            contact: b"sip:alice@192.0.2.1",
            call_id: b"abc",
            meta,
        };
        push(&ring, &up, 0).unwrap();
        push(
            &ring,
            &Change::Delete {
                domain: 0,
                aor: b"bob",
                contact: b"sip:bob@h",
            },
            0,
        )
        .unwrap();
        let mut buf = Vec::new();
        assert_eq!(ring.pop(&mut buf, 0), Pop::Record);
        let c = decode(&buf).unwrap();
        assert!(c.upsert);
        assert_eq!((c.domain, c.meta), (1, meta));
        assert_eq!(c.text, b"alicesip:alice@192.0.2.1abc");
        assert_eq!(ring.pop(&mut buf, 0), Pop::Record);
        let d = decode(&buf).unwrap();
        assert!(!d.upsert);
        assert_eq!(d.lens, [3, 9, 0]);
        let long = vec![b'x'; RECORD_BYTES];
        let too_long = Change::Delete {
            domain: 0,
            aor: b"a",
            contact: &long,
        };
        assert_eq!(push(&ring, &too_long, 0), Err(PushError::TooLong));
    }
}

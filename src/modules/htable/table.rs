//! Kamailio's htable in shared memory: every table's items in one set of
//! hash buckets under lock stripes, so any worker reads what another
//! wrote (`$sht(name=>key)`). An item is a fixed record and one pool
//! chain holding its key and, for text, its value.

use std::sync::atomic::{AtomicU64, Ordering};

use rser_shm::{CachePadded, Carver, Chain, Chains, Linked, Links, Pool, Slice, Stripe};
use xxhash_rust::xxh3::Xxh3;

use crate::script::ctx::VarValue;

/// Pool blocks budgeted per item (a key and a short value).
const POOL_BLOCKS_PER_ITEM: usize = 1;

#[repr(C)]
pub struct Item {
    links: Links,
    /// Which table (its place among the declared ones).
    table: u16,
    key_len: u16,
    /// 1: an integer in `int`; 2: text after the key.
    kind: u8,
    hash: u64,
    int: i64,
    /// Unix seconds after which it is gone (0: never).
    expires: u64,
    text: Chain,
}

impl Linked for Item {
    fn links(&self) -> &Links {
        &self.links
    }
    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

/// Every record or pool block is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Clone, Copy)]
pub struct Items {
    records: Chains<Item>,
    pool: Pool,
    /// Sets refused for want of room, by any process (the timer process
    /// adds them to the `htable_full` counter).
    full: Slice<CachePadded<AtomicU64>>,
}

/// One item as a sweep or a dump sees it.
pub struct Entry<'a> {
    pub table: u16,
    pub key: &'a [u8],
    pub value: VarValue,
    pub expires: u64,
}

impl Items {
    pub fn bytes_per_item() -> usize {
        std::mem::size_of::<Item>()
            + Chains::<Item>::OVERHEAD
            + POOL_BLOCKS_PER_ITEM * Pool::BYTES_PER_BLOCK
    }

    /// Carves room for `n` items.
    pub fn carve(carver: &mut Carver<'_>, n: usize) -> Option<Items> {
        let records = Chains::carve(carver, n, "htable", || Item {
            links: Links::FREE,
            table: 0,
            key_len: 0,
            kind: 0,
            hash: 0,
            int: 0,
            expires: 0,
            text: Chain::EMPTY,
        })?;
        let pool = Pool::carve(carver, n * POOL_BLOCKS_PER_ITEM)?;
        let full = carver.one(CachePadded::new(AtomicU64::new(0)))?;
        Some(Items {
            records,
            pool,
            full,
        })
    }

    /// Sets refused so far for want of room.
    pub fn refused(&self) -> u64 {
        self.full[0].load(Ordering::Relaxed)
    }

    fn refuse(&self) -> Full {
        self.full[0].fetch_add(1, Ordering::Relaxed);
        Full
    }

    pub fn capacity(&self) -> usize {
        self.records.capacity()
    }

    pub fn live(&self) -> usize {
        self.records.live()
    }

    fn hash(table: u16, key: &[u8]) -> u64 {
        let mut h = Xxh3::new();
        h.update(&table.to_le_bytes());
        h.update(key);
        h.digest()
    }

    /// The record holding `key` in the locked stripe of its bucket.
    fn find(
        &self,
        l: &Stripe<'_>,
        bucket: u32,
        table: u16,
        key: &[u8],
        hash: u64,
        buf: &mut Vec<u8>,
    ) -> Option<u32> {
        self.records.chain(l, bucket).find(|&idx| {
            let Some(it) = self.records.get(l, idx) else {
                return false;
            };
            if it.hash != hash || it.table != table || usize::from(it.key_len) != key.len() {
                return false;
            }
            buf.clear();
            self.pool.read(it.text, buf);
            buf.get(..key.len()) == Some(key)
        })
    }

    /// `key`'s value in `table`, unless it expired before `now` (then it
    /// is removed).
    pub fn get(&self, table: u16, key: &[u8], now: u64, buf: &mut Vec<u8>) -> VarValue {
        let hash = Self::hash(table, key);
        let bucket = self.records.bucket_of(hash);
        let mut l = self.records.lock(bucket);
        let Some(idx) = self.find(&l, bucket, table, key, hash, buf) else {
            return VarValue::Null;
        };
        let Some(it) = self.records.get(&l, idx) else {
            return VarValue::Null;
        };
        if it.expires != 0 && it.expires <= now {
            self.drop_item(&mut l, idx);
            return VarValue::Null;
        }
        match it.kind {
            1 => VarValue::Int(it.int),
            _ => VarValue::Str(buf.get(key.len()..).unwrap_or_default().to_vec()),
        }
    }

    /// Sets `key` (`$null` removes it); `expires` is when it goes (0:
    /// never), unless `keep_expiry` and the item exists.
    pub fn set(
        &self,
        table: u16,
        key: &[u8],
        value: &VarValue,
        expires: u64,
        keep_expiry: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), Full> {
        let key_len = u16::try_from(key.len()).map_err(|_| Full)?;
        let hash = Self::hash(table, key);
        let bucket = self.records.bucket_of(hash);
        let mut l = self.records.lock(bucket);
        let found = self.find(&l, bucket, table, key, hash, buf);
        let (kind, int) = match value {
            VarValue::Null => {
                if let Some(idx) = found {
                    self.drop_item(&mut l, idx);
                }
                return Ok(());
            }
            VarValue::Int(n) => (1, *n),
            VarValue::Str(_) => (2, 0),
        };
        buf.clear();
        buf.extend_from_slice(key);
        if let VarValue::Str(s) = value {
            buf.extend_from_slice(s);
        }
        if let Some(idx) = found {
            let it = self.records.get_mut(&mut l, idx).ok_or(Full)?;
            if !self.pool.replace(&mut it.text, buf) {
                return Err(self.refuse());
            }
            (it.kind, it.int) = (kind, int);
            if !keep_expiry {
                it.expires = expires;
            }
            return Ok(());
        }
        let text = self.pool.store(buf).ok_or_else(|| self.refuse())?;
        let idx = self.records.insert(&mut l, bucket, |it| {
            (it.table, it.key_len, it.kind, it.hash) = (table, key_len, kind, hash);
            (it.int, it.expires, it.text) = (int, expires, text);
        });
        idx.map(|_| ()).ok_or_else(|| {
            self.pool.free(text);
            self.refuse()
        })
    }

    fn drop_item(&self, l: &mut Stripe<'_>, idx: u32) {
        if let Some(it) = self.records.get_mut(l, idx) {
            self.pool.free(std::mem::take(&mut it.text));
            self.records.remove(l, idx);
        }
    }

    /// Visits every item, one stripe locked at a time; `remove` says
    /// which go. Items expired before `now` go without being shown.
    pub fn sweep(
        &self,
        now: u64,
        mut remove: impl FnMut(&Entry<'_>) -> bool,
        buf: &mut Vec<u8>,
    ) -> usize {
        let mut removed = 0;
        self.records.visit(|l, idx| {
            let Some(it) = self.records.get(l, idx) else {
                return;
            };
            let gone = if it.expires != 0 && it.expires <= now {
                true
            } else {
                buf.clear();
                self.pool.read(it.text, buf);
                let k = usize::from(it.key_len).min(buf.len());
                let value = match it.kind {
                    1 => VarValue::Int(it.int),
                    _ => VarValue::Str(buf[k..].to_vec()),
                };
                remove(&Entry {
                    table: it.table,
                    key: &buf[..k],
                    value,
                    expires: it.expires,
                })
            };
            if gone {
                self.drop_item(l, idx);
                removed += 1;
            }
        });
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> (rser_shm::Region, Items) {
        let region = rser_shm::Region::create(n * Items::bytes_per_item() + (1 << 20)).unwrap();
        let items = Items::carve(&mut region.carver(), n).unwrap();
        (region, items)
    }

    #[test]
    fn set_get_replace_remove_and_expire() {
        let (_r, t) = items(64);
        let mut buf = Vec::new();
        let s = |v: &str| VarValue::Str(v.as_bytes().to_vec());
        t.set(0, b"10.0.0.1", &VarValue::Int(3), 0, false, &mut buf)
            .unwrap();
        t.set(1, b"10.0.0.1", &s("other table"), 0, false, &mut buf)
            .unwrap();
        assert_eq!(t.get(0, b"10.0.0.1", 100, &mut buf), VarValue::Int(3));
        assert_eq!(t.get(1, b"10.0.0.1", 100, &mut buf), s("other table"));
        t.set(0, b"10.0.0.1", &s("now text"), 150, false, &mut buf)
            .unwrap();
        assert_eq!(t.get(0, b"10.0.0.1", 100, &mut buf), s("now text"));
        assert_eq!(t.live(), 2);
        // Expired: gone when read.
        assert_eq!(t.get(0, b"10.0.0.1", 150, &mut buf), VarValue::Null);
        assert_eq!(t.live(), 1);
        t.set(1, b"10.0.0.1", &VarValue::Null, 0, false, &mut buf)
            .unwrap();
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn full_and_sweep() {
        let (_r, t) = items(16);
        let mut buf = Vec::new();
        let cap = t.capacity();
        for i in 0..cap {
            let expires = if i % 2 == 0 { 10 } else { 0 };
            t.set(
                0,
                format!("k{i}").as_bytes(),
                &VarValue::Int(i as i64),
                expires,
                false,
                &mut buf,
            )
            .unwrap();
        }
        assert_eq!(
            t.set(0, b"one more", &VarValue::Int(0), 0, false, &mut buf),
            Err(Full)
        );
        assert_eq!(t.refused(), 1);
        // The expired half goes; of the rest, k1 is removed by name.
        let removed = t.sweep(10, |e| e.key == b"k1", &mut buf);
        assert_eq!(removed, cap / 2 + 1);
        assert_eq!(t.get(0, b"k3", 10, &mut buf), VarValue::Int(3));
        t.set(0, b"one more", &VarValue::Int(0), 0, false, &mut buf)
            .unwrap();
    }
}

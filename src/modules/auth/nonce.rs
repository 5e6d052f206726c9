//! Nonces verifiable without per-nonce state: issue time and an index,
//! signed with the server's secret (RFC 2617 §3.2.1's suggestion), and a
//! table in shared memory of the highest nonce count seen per index, so
//! a replayed `nc` is refused (RFC 2617 §3.2.2) whichever worker sees it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arrayvec::ArrayString;
use rser_shm::{CachePadded, Carver, Slice};
use sha2::{Digest, Sha256};

/// Hex digits of a nonce: issue time (8), index (8), signature (24).
pub const NONCE_LEN: usize = 40;

pub type Nonce = ArrayString<NONCE_LEN>;

/// Why a nonce is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Not one of ours (or altered).
    Invalid,
    /// Ours but too old, or its count slot was reused: the client should
    /// try again with a new one (`stale=true`, RFC 2617 §3.2.1).
    Stale,
    /// A nonce count not above the last one seen.
    Replayed,
}

fn sign(secret: &[u8], issued: u32, index: u32) -> [u8; 12] {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(issued.to_be_bytes());
    h.update(index.to_be_bytes());
    let d = h.finalize();
    let mut out = [0u8; 12];
    out.copy_from_slice(&d[..12]);
    out
}

fn push_hex(out: &mut Nonce, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

fn parse_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}

/// The count slot index as the nonce carries it: a keyed permutation of
/// the 32-bit index (a four-round Feistel network on its 16-bit halves),
/// so nonces do not tell how many challenges the server issued.
fn hide_index(secret: &[u8], issued: u32, index: u32) -> u32 {
    let (mut l, mut r) = ((index >> 16) as u16, index as u16);
    for round in 0..4u8 {
        (l, r) = (r, l ^ feistel_round(secret, issued, round, r));
    }
    (u32::from(l) << 16) | u32::from(r)
}

fn reveal_index(secret: &[u8], issued: u32, hidden: u32) -> u32 {
    let (mut l, mut r) = ((hidden >> 16) as u16, hidden as u16);
    for round in (0..4u8).rev() {
        (l, r) = (r ^ feistel_round(secret, issued, round, l), l);
    }
    (u32::from(l) << 16) | u32::from(r)
}

fn feistel_round(secret: &[u8], issued: u32, round: u8, half: u16) -> u16 {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(b"nonce-index");
    h.update(issued.to_be_bytes());
    h.update([round]);
    h.update(half.to_be_bytes());
    let d = h.finalize();
    u16::from_be_bytes([d[0], d[1]])
}

/// A nonce issued at `now` (seconds) for count slot `index`.
pub fn issue(secret: &[u8], now: u64, index: u32) -> Nonce {
    let issued = now as u32;
    let mut n = Nonce::new();
    push_hex(&mut n, &issued.to_be_bytes());
    push_hex(&mut n, &hide_index(secret, issued, index).to_be_bytes());
    push_hex(&mut n, &sign(secret, issued, index));
    n
}

/// Checks a nonce's signature and age; returns its count slot index.
pub fn check(secret: &[u8], nonce: &[u8], now: u64, expire: u64) -> Result<u32, NonceError> {
    if nonce.len() != NONCE_LEN {
        return Err(NonceError::Invalid);
    }
    let issued = u32::from_be_bytes(parse_hex::<4>(&nonce[..8]).ok_or(NonceError::Invalid)?);
    let hidden = u32::from_be_bytes(parse_hex::<4>(&nonce[8..16]).ok_or(NonceError::Invalid)?);
    let index = reveal_index(secret, issued, hidden);
    let mac = parse_hex::<12>(&nonce[16..]).ok_or(NonceError::Invalid)?;
    let good = sign(secret, issued, index);
    if mac.iter().zip(&good).fold(0, |a, (x, y)| a | (x ^ y)) != 0 {
        return Err(NonceError::Invalid);
    }
    let age = (now as u32).wrapping_sub(issued);
    if u64::from(age) > expire {
        return Err(NonceError::Stale);
    }
    Ok(index)
}

/// The nonce-count table: per slot, the index of the nonce that owns it
/// (high half) and the highest `nc` seen (low half).
#[derive(Clone, Copy)]
pub struct NonceCounts {
    slots: Slice<AtomicU64>,
    n: u32,
    /// The next index: every challenge in every process bumps it, so it
    /// has a cache line of its own.
    next: Slice<CachePadded<AtomicU32>>,
}

impl NonceCounts {
    pub const BYTES_PER_SLOT: usize = 8;

    pub fn carve(carver: &mut Carver<'_>, n: usize) -> Option<NonceCounts> {
        let n = n.clamp(64, u32::MAX as usize / 2);
        let slots = carver.slice(n, |_| AtomicU64::new(u64::MAX))?;
        let next = carver.one(CachePadded::new(AtomicU32::new(0)))?;
        Some(NonceCounts {
            slots,
            n: n as u32,
            next,
        })
    }

    fn slot(&self, index: u32) -> &AtomicU64 {
        &self.slots[(index % self.n) as usize]
    }

    /// An index for a new nonce; its slot starts again at count 0. A
    /// slot is reused after `n` newer nonces: its older nonce then
    /// reads as stale.
    pub fn fresh(&self) -> u32 {
        let index = self.next[0].fetch_add(1, Ordering::Relaxed);
        self.slot(index)
            .store(u64::from(index) << 32, Ordering::Relaxed);
        index
    }

    /// Records `nc` for the nonce with `index` if it is above the last.
    pub fn use_count(&self, index: u32, nc: u32) -> Result<(), NonceError> {
        let slot = self.slot(index);
        let mut v = slot.load(Ordering::Relaxed);
        loop {
            if (v >> 32) as u32 != index || v == u64::MAX {
                return Err(NonceError::Stale);
            }
            if nc <= v as u32 {
                return Err(NonceError::Replayed);
            }
            let new = (u64::from(index) << 32) | u64::from(nc);
            match slot.compare_exchange(v, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => v = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rser_shm::Region;

    const SECRET: &[u8] = b"0123456789abcdef";

    #[test]
    fn a_nonce_checks_until_it_expires() {
        let n = issue(SECRET, 1000, 7);
        assert_eq!(n.len(), NONCE_LEN);
        assert_eq!(check(SECRET, n.as_bytes(), 1010, 30), Ok(7));
        assert_eq!(
            check(SECRET, n.as_bytes(), 1031, 30),
            Err(NonceError::Stale)
        );
        assert_eq!(
            check(b"other secret", n.as_bytes(), 1010, 30),
            Err(NonceError::Invalid)
        );
        let mut forged = n;
        forged.truncate(8);
        forged.push_str("00000008");
        forged.push_str(&n[16..]);
        assert_eq!(
            check(SECRET, forged.as_bytes(), 1010, 30),
            Err(NonceError::Invalid)
        );
        assert_eq!(check(SECRET, b"junk", 1010, 30), Err(NonceError::Invalid));
    }

    #[test]
    fn nonces_do_not_reveal_how_many_were_issued() {
        // Consecutive indexes in the same second: the index fields look
        // unrelated, and each still checks back to its own index.
        let fields: Vec<String> = (0..4)
            .map(|i| issue(SECRET, 1000, i)[8..16].to_string())
            .collect();
        assert!(!fields.contains(&"00000000".to_string()), "{fields:?}");
        for (i, f) in fields.iter().enumerate() {
            assert!(fields[i + 1..].iter().all(|g| g != f), "{fields:?}");
            let n = issue(SECRET, 1000, i as u32);
            assert_eq!(check(SECRET, n.as_bytes(), 1000, 30), Ok(i as u32));
        }
        for index in [0, 1, 0xffff, 0x1_0000, u32::MAX] {
            let hidden = hide_index(SECRET, 77, index);
            assert_eq!(reveal_index(SECRET, 77, hidden), index);
        }
    }

    #[test]
    fn counts_must_rise_and_reused_slots_are_stale() {
        let r = Region::create(1 << 20).unwrap();
        let t = NonceCounts::carve(&mut r.carver(), 64).unwrap();
        let a = t.fresh();
        assert_eq!(t.use_count(a, 1), Ok(()));
        assert_eq!(t.use_count(a, 1), Err(NonceError::Replayed));
        assert_eq!(t.use_count(a, 3), Ok(()));
        assert_eq!(t.use_count(a, 2), Err(NonceError::Replayed));
        for _ in 0..64 {
            t.fresh();
        }
        assert_eq!(t.use_count(a, 4), Err(NonceError::Stale), "slot reused");
        assert_eq!(
            t.use_count(999_999, 1),
            Err(NonceError::Stale),
            "never issued"
        );
    }
}

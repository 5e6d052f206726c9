//! The shared table and wheel, in one process (the fork-sharing of the
//! region is the shm crate's to show).

use arrayvec::ArrayVec;
use rser_shm::Region;

use super::table::{Full, Table};
use super::txn::{Kind, Timers, Txn};

fn table(bytes: usize) -> (Region, Table) {
    let r = Region::create(bytes + (1 << 20)).unwrap();
    let t = Table::carve(&mut r.carver(), bytes).unwrap();
    (r, t)
}

fn txn() -> Txn {
    Txn::new(Kind::Invite, 0, &Timers::default())
}

#[test]
fn insert_find_remove() {
    let (_r, t) = table(1 << 20);
    let key = 0x1234_5678_9abc_def0_u128 << 3;
    let b = t.bucket_of(key);
    let mut l = t.lock(b);
    assert!(t.find(&l, b, key).is_none());
    let (idx, generation) = t.insert(&mut l, b, key, txn()).unwrap();
    assert_eq!(t.find(&l, b, key), Some((idx, generation)));
    assert!(t.slot(&mut l, idx, generation).is_some());
    assert!(
        t.slot(&mut l, idx, generation + 1).is_none(),
        "a stale generation misses"
    );
    let s = t.slot(&mut l, idx, generation).unwrap();
    let br = t.add_branch(s).unwrap();
    assert_eq!(br, 0);
    s.txn.request = t.pool.store(&[7; 1000]).unwrap();
    let free = t.pool_free_blocks();
    assert_eq!(t.live(), 1);
    t.remove(&mut l, idx);
    assert_eq!(t.live(), 0);
    assert!(t.find(&l, b, key).is_none());
    assert_eq!(t.pool_free_blocks(), free + 8);
}

#[test]
fn a_full_table_says_so_and_recovers() {
    let (_r, t) = table(64 << 10);
    let cap = t.capacity();
    let mut taken = Vec::new();
    for k in 0..cap as u128 + 5 {
        let b = t.bucket_of(k);
        let mut l = t.lock(b);
        match t.insert(&mut l, b, k, txn()) {
            Ok((idx, _)) => taken.push((b, idx)),
            Err(Full) => break,
        }
    }
    assert_eq!(taken.len(), cap);
    let (b, idx) = taken[0];
    t.remove(&mut t.lock(b), idx);
    let k = 1u128 << 100;
    let b = t.bucket_of(k);
    assert!(t.insert(&mut t.lock(b), b, k, txn()).is_ok());
}

#[test]
fn the_wheel_gives_back_what_is_due_when_it_is_due() {
    let (_r, t) = table(1 << 20);
    let key = 42;
    let b = t.bucket_of(key);
    let mut l = t.lock(b);
    let (idx, generation) = t.insert(&mut l, b, key, txn()).unwrap();
    let s = t.slot(&mut l, idx, generation).unwrap();
    let mut out: ArrayVec<u32, 8> = ArrayVec::new();
    t.wheel.take_due(&t, 100_000, &mut out); // the timer's first look
    t.arm(s, idx, 100_505);
    for now in [100_001, 100_500, 100_504] {
        t.wheel.take_due(&t, now, &mut out);
        assert!(out.is_empty(), "not due at {now}");
    }
    // At its time, not a tick later (the current tick is looked at too).
    t.wheel.take_due(&t, 100_505, &mut out);
    assert_eq!(out.as_slice(), &[idx]);
    out.clear();
    t.wheel.take_due(&t, 100_515, &mut out);
    assert!(out.is_empty(), "taken once");
    // Re-armed for the next lap and beyond: stays until then.
    out.clear();
    t.arm(s, idx, 100_515 + 50_000);
    t.wheel.take_due(&t, 100_515 + 45_000, &mut out);
    assert!(out.is_empty());
    t.wheel.take_due(&t, 100_515 + 50_020, &mut out);
    assert_eq!(out.as_slice(), &[idx]);
    drop(l);
}

/// Transactions spread over the wheel's shards: a worker's look takes
/// only what is due, says when to look next, and the timer process's pass
/// takes what the worker left.
#[test]
fn the_sharded_wheel_is_taken_by_whoever_looks_when_due() {
    let (_r, t) = table(1 << 20);
    let mut armed = Vec::new();
    for n in 1..=40u64 {
        let key = u128::from(n) << 70;
        let b = t.bucket_of(key);
        let mut l = t.lock(b);
        let (idx, generation) = t.insert(&mut l, b, key, txn()).unwrap();
        let s = t.slot(&mut l, idx, generation).unwrap();
        // Half due at 200_100, half at 200_300.
        let due = 200_100 + n % 2 * 200;
        t.arm(s, idx, due);
        armed.push((idx, due));
    }
    let shards: std::collections::HashSet<_> = armed
        .iter()
        .map(|(i, _)| *i as usize % super::wheel::SHARDS)
        .collect();
    assert!(shards.len() > 1, "slots spread over shards");
    let mut out: ArrayVec<u32, 64> = ArrayVec::new();
    // Nothing due yet: nothing taken, and the next look is at the first due.
    let next = t.wheel.take_ready(&t, 200_000, &mut out);
    assert!(out.is_empty());
    assert!(next <= 200_100, "next look at {next}");
    // At 200_100: exactly the ones due then.
    let next = t.wheel.take_ready(&t, 200_100, &mut out);
    let mut want: Vec<u32> = armed
        .iter()
        .filter(|(_, d)| *d <= 200_100)
        .map(|(i, _)| *i)
        .collect();
    let mut got = out.to_vec();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    assert!(next > 200_100 && next <= 200_300, "next look at {next}");
    // The timer process's pass takes the rest when due, once.
    out.clear();
    t.wheel.take_due(&t, 200_300, &mut out);
    assert_eq!(out.len(), armed.len() - want.len());
    out.clear();
    t.wheel.take_due(&t, 200_400, &mut out);
    assert!(t.wheel.take_ready(&t, 200_500, &mut out) > 200_500);
    assert!(out.is_empty(), "each taken once");
}

/// The timer process's next look: the earliest due time while no worker
/// looks; a grace later while workers take what falls due.
#[test]
fn the_timer_process_wakes_when_due_or_a_grace_after_when_workers_look() {
    use super::wheel::WORKER_GRACE_MS;
    let (_r, t) = table(1 << 20);
    let key = 7u128 << 80;
    let b = t.bucket_of(key);
    let mut l = t.lock(b);
    let (idx, generation) = t.insert(&mut l, b, key, txn()).unwrap();
    let s = t.slot(&mut l, idx, generation).unwrap();
    let mut out: ArrayVec<u32, 8> = ArrayVec::new();
    t.wheel.take_due(&t, 300_000, &mut out); // the timer's first pass
    t.arm(s, idx, 300_150);
    drop(l);
    assert_eq!(
        t.wheel.next_look(300_000),
        300_150,
        "no worker looks: exact"
    );
    // A worker looks (nothing due yet): the timer process leaves it to them.
    assert_eq!(t.wheel.take_ready(&t, 300_100, &mut out), 300_150);
    assert!(out.is_empty());
    assert_eq!(t.wheel.next_look(300_100), 300_150 + WORKER_GRACE_MS);
    // Workers gone quiet for a while: exact again.
    assert_eq!(t.wheel.next_look(300_350), 300_150);
}

/// Shared memory one INVITE transaction holds while ringing: its slot, one
/// branch record, and pool blocks for the stored request, the stored 180
/// and the branch URI (sizes given by the caller, e.g. sipp's).
fn invite_bytes(request: usize, reply: usize, uri: usize) -> usize {
    use rser_shm::Pool;
    std::mem::size_of::<super::table::Slot>()
        + std::mem::size_of::<super::txn::Branch>()
        + [request, reply, uri]
            .iter()
            .map(|&n| Pool::blocks_for(n) * Pool::BYTES_PER_BLOCK)
            .sum::<usize>()
}

#[test]
fn an_invite_transaction_fits_in_2_kib() {
    // A 900-byte INVITE with SDP, a 450-byte 180, a 40-byte URI.
    let bytes = invite_bytes(900, 450, 40);
    eprintln!(
        "slot {} B, branch {} B, INVITE transaction {bytes} B",
        std::mem::size_of::<super::table::Slot>(),
        std::mem::size_of::<super::txn::Branch>()
    );
    assert!(bytes < 2048, "{bytes}");
}

//! The location table in a real (private) region: save, find, refresh,
//! remove, tombstones and sweeping, and the memory a binding costs.

use super::*;
use rser_shm::Region;

fn table(bytes: usize) -> (Region, Location) {
    let r = Region::create(bytes + (1 << 20)).unwrap();
    let t = Location::carve(&mut r.carver(), bytes).unwrap();
    (r, t)
}

fn meta(expires: u64) -> Meta {
    Meta {
        cflags: 0,
        q: Q_NONE,
        sock: 0,
        received: rser_shm::Peer::default(),
        flow: 0,
        owner: rser_shm::Peer::default(),
        cseq: 1,
        expires,
        updated: 10,
    }
}

#[test]
fn saved_bindings_are_found_by_aor_and_table() {
    let (_r, t) = table(1 << 16);
    let mut s = Vec::new();
    let alice = t.aor(0, b"alice");
    let mut l = t.lock(&alice);
    t.insert(
        &mut l,
        &alice,
        b"sip:a@10.0.0.1",
        b"call-1",
        meta(100),
        0,
        &mut s,
    )
    .unwrap();
    t.insert(
        &mut l,
        &alice,
        b"sip:a@10.0.0.2",
        b"call-2",
        meta(100),
        0,
        &mut s,
    )
    .unwrap();
    drop(l);
    let other = t.aor(1, b"alice");
    let mut l = t.lock(&other);
    t.insert(
        &mut l,
        &other,
        b"sip:elsewhere@h",
        b"c",
        meta(100),
        0,
        &mut s,
    )
    .unwrap();
    drop(l);
    let mut buf = Vec::new();
    let l = t.lock(&alice);
    let found = t.find(&l, &alice, Some(50), &mut buf);
    assert_eq!(found.len(), 2);
    let f = found[0];
    assert_eq!(
        &buf[f.contact.0..f.contact.1],
        b"sip:a@10.0.0.2",
        "newest first"
    );
    assert_eq!(&buf[f.call_id.0..f.call_id.1], b"call-2");
    assert!(
        t.find(&l, &alice, Some(100), &mut buf).is_empty(),
        "expired at 100"
    );
}

#[test]
fn refresh_remove_and_tombstones() {
    let (_r, t) = table(1 << 16);
    let (mut s, mut buf) = (Vec::new(), Vec::new());
    let bob = t.aor(0, b"bob");
    let mut l = t.lock(&bob);
    let i = t
        .insert(&mut l, &bob, b"sip:b@h", b"c1", meta(100), 0, &mut s)
        .unwrap();
    t.refresh(
        &mut l,
        i,
        b"bob",
        b"sip:b@h",
        Some(b"c2"),
        meta(200),
        DIRTY,
        &mut s,
    )
    .unwrap();
    let f = t.find(&l, &bob, None, &mut buf)[0];
    assert_eq!(&buf[f.call_id.0..f.call_id.1], b"c2");
    assert_eq!(f.meta.expires, 200);
    t.remove(&mut l, i, true);
    assert!(t.find(&l, &bob, None, &mut buf).is_empty());
    assert_eq!(t.live(), 1, "the tombstone stays until written back");
    t.remove(&mut l, i, false);
    assert_eq!(t.live(), 0);
}

#[test]
fn sweep_removes_what_it_is_told_and_reads_the_parts() {
    let (_r, t) = table(1 << 16);
    let mut s = Vec::new();
    for (n, exp) in [(&b"u1"[..], 5), (b"u2", 50), (b"u3", 5)] {
        let a = t.aor(0, n);
        let mut l = t.lock(&a);
        t.insert(&mut l, &a, b"sip:x@h", b"cid", meta(exp), 0, &mut s)
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    t.sweep(
        |b, text| {
            let (aor, contact, call_id) = b.parts(text).unwrap();
            assert_eq!((contact, call_id), (&b"sip:x@h"[..], &b"cid"[..]));
            seen.push(aor.to_vec());
            if b.expires <= 10 {
                Sweep::Remove
            } else {
                Sweep::Keep
            }
        },
        &mut buf,
    );
    seen.sort();
    assert_eq!(seen, vec![b"u1".to_vec(), b"u2".to_vec(), b"u3".to_vec()]);
    assert_eq!(t.live(), 1);
}

#[test]
fn a_full_table_is_an_error_and_recovers() {
    let (_r, t) = table(0);
    let mut s = Vec::new();
    let mut taken = Vec::new();
    for i in 0..t.capacity() + 1 {
        let name = format!("user{i}");
        let a = t.aor(0, name.as_bytes());
        let mut l = t.lock(&a);
        match t.insert(&mut l, &a, b"sip:x@h", b"c", meta(9), 0, &mut s) {
            Ok(idx) => taken.push((name, idx)),
            Err(Full) => assert_eq!(i, t.capacity()),
        }
    }
    let (name, idx) = &taken[0];
    let a = t.aor(0, name.as_bytes());
    let mut l = t.lock(&a);
    t.remove(&mut l, *idx, false);
    drop(l);
    let a = t.aor(0, b"late");
    let mut l = t.lock(&a);
    assert!(
        t.insert(&mut l, &a, b"sip:x@h", b"c", meta(9), 0, &mut s)
            .is_ok()
    );
}

#[test]
fn a_binding_costs_under_512_bytes() {
    let n = Location::bytes_per_binding();
    eprintln!(
        "binding record {} B, budget per binding {n} B",
        std::mem::size_of::<Binding>()
    );
    assert!(n < 512, "{n}");
}

/// A shared AOR's removal is remembered a while: an older version of it
/// arriving late (a save answered before the removal was applied) does
/// not bring its bindings back; a newer one does; the sweep drops the
/// record once it expires.
#[test]
fn a_removed_shared_aor_is_not_brought_back_by_an_older_version() {
    let (_r, t) = table(1 << 16);
    let mut s = Vec::new();
    let bob = t.aor(0, b"bob");
    let live = |t: &Location| {
        let l = t.lock(&bob);
        t.find(&l, &bob, Some(50), &mut Vec::new()).len()
    };
    let one: &[(&[u8], &[u8], Meta)] = &[(b"sip:b@h", b"c1", meta(100))];
    t.replace(&bob, one, 5, 50, &mut s).unwrap();
    assert_eq!(live(&t), 1);
    t.replace(&bob, &[], 6, 50, &mut s).unwrap();
    assert_eq!(live(&t), 0);
    t.replace(&bob, one, 5, 50, &mut s).unwrap();
    t.replace(&bob, one, 6, 50, &mut s).unwrap();
    assert_eq!(live(&t), 0, "an older or the same version stays removed");
    t.replace(&bob, one, 7, 50, &mut s).unwrap();
    assert_eq!(live(&t), 1, "a newer one is served");
    t.replace(&bob, &[], 8, 50, &mut s).unwrap();
    // Kept until TOMBSTONE_SECS after the removal, then swept.
    let mut kept = 0;
    t.sweep(
        |b, _| match b.flags & DELETED != 0 && b.expires < 50 + TOMBSTONE_SECS {
            true => Sweep::Remove,
            false => {
                kept += 1;
                Sweep::Keep
            }
        },
        &mut s,
    );
    assert_eq!(kept, 1, "the record of the removal, not yet expired");
    t.replace(&bob, one, 7, 50, &mut s).unwrap();
    assert_eq!(live(&t), 0);
}

//! usrloc's Redis store against a real redis-server (issue 22, the first
//! part): an AOR read and changed all or nothing, a change decided on an
//! old version refused, expiry, the key gone with its last binding, and
//! every change in its bucket's feed.

mod common;

use std::time::Duration;

use common::redis::{Cluster, Redis};
use rser::db::redis::{RedisConn, RedisUrl};
use rser::modules::usrloc::redis::keys::{aor_key, bucket, feed_key};
use rser::modules::usrloc::redis::record::{Binding, parse_feed_entry};
use rser::modules::usrloc::redis::store::{self, Applied};
use rser::modules::usrloc::table::Meta;

const T: Duration = Duration::from_secs(3);

fn conn(url: &str) -> RedisConn {
    RedisConn::open(&RedisUrl::parse(url).unwrap(), T).unwrap()
}

fn binding(contact: &str, cseq: u32, expires: u64) -> Binding {
    Binding {
        contact: contact.as_bytes().to_vec(),
        call_id: b"call-1".to_vec(),
        meta: Meta {
            cseq,
            expires,
            updated: 100,
            q: 1000,
            ..Meta::default()
        },
    }
}

#[test]
fn a_change_applies_only_on_the_version_it_was_decided_on() {
    let r = Redis::start();
    changes_on(&r.url());
}

/// The same on a three-master Redis Cluster: the AOR's hash and its
/// feed share a slot, so the script runs.
#[test]
fn a_change_applies_the_same_on_a_redis_cluster() {
    let c = Cluster::start();
    changes_on(&c.url());
    racing_on(&c.url());
}

fn changes_on(url: &str) {
    let mut c = conn(url);
    let now = rser::modules::usrloc::unix_now();
    let empty = store::read(&mut c, "location", b"alice", now).unwrap();
    assert_eq!(empty, store::Aor::default());
    let a = binding("sip:alice@10.0.0.1", 1, now + 600);
    let got = store::apply(
        &mut c,
        7,
        "location",
        b"alice",
        0,
        &[],
        &[&a],
        std::slice::from_ref(&a),
    )
    .unwrap();
    assert_eq!(got, Applied::Done(1));
    // Another node decided on version 0 too: refused, told the version.
    let b = binding("sip:alice@10.0.0.2", 1, now + 600);
    let late = store::apply(
        &mut c,
        7,
        "location",
        b"alice",
        0,
        &[],
        &[&b],
        std::slice::from_ref(&b),
    )
    .unwrap();
    assert_eq!(late, Applied::Moved(1));
    let read = store::read(&mut c, "location", b"alice", now).unwrap();
    assert_eq!((read.version, read.bindings.clone()), (1, vec![a.clone()]));
    // Decided again on version 1: both bindings.
    let both = vec![a.clone(), b.clone()];
    let got = store::apply(&mut c, 7, "location", b"alice", 1, &[], &[&b], &both).unwrap();
    assert_eq!(got, Applied::Done(2));
    let mut read = store::read(&mut c, "location", b"alice", now).unwrap();
    read.bindings.sort_by(|x, y| x.contact.cmp(&y.contact));
    assert_eq!(read.bindings, both);
    // The key expires with its last binding.
    let ttl: i64 = c
        .run(redis::cmd("TTL").arg(aor_key("location", b"alice")))
        .unwrap();
    assert!(ttl > 0, "{ttl}");
    // Expired at a later time: listed to be removed, not served.
    let later = store::read(&mut c, "location", b"alice", now + 601).unwrap();
    assert!(later.bindings.is_empty());
    assert_eq!(later.expired.len(), 2);
    // Every binding removed: the key keeps only its version, a minute,
    // and the next save goes on from it.
    let remove: Vec<&[u8]> = both.iter().map(|b| b.contact.as_slice()).collect();
    let got = store::apply(&mut c, 7, "location", b"alice", 2, &remove, &[], &[]).unwrap();
    assert_eq!(got, Applied::Done(3));
    let key = aor_key("location", b"alice");
    let fields: Vec<(String, String)> = c.run(redis::cmd("HGETALL").arg(&key)).unwrap();
    assert_eq!(fields, [("#v".to_string(), "3".to_string())]);
    let ttl: i64 = c.run(redis::cmd("TTL").arg(&key)).unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
    let gone = store::read(&mut c, "location", b"alice", now).unwrap();
    assert_eq!((gone.version, gone.bindings.len()), (3, 0));
    // The feed holds each change: the AOR's whole set after it.
    let feed = feed_key(bucket("location", b"alice"));
    type Entry = (String, Vec<(String, Vec<u8>)>);
    let entries: Vec<Entry> = c
        .run(redis::cmd("XRANGE").arg(&feed).arg("-").arg("+"))
        .unwrap();
    let parsed: Vec<_> = entries
        .iter()
        .map(|(_, fields)| parse_feed_entry(&fields[0].1).unwrap())
        .map(|(t, aor, v, bs)| (t, aor, v, bs.len()))
        .collect();
    assert_eq!(
        parsed,
        [
            ("location".to_string(), b"alice".to_vec(), 1, 1),
            ("location".to_string(), b"alice".to_vec(), 2, 2),
            ("location".to_string(), b"alice".to_vec(), 3, 0),
        ]
    );
}

/// Two threads (two nodes) adding a binding each to one AOR, reading and
/// deciding again when refused: both bindings end in Redis, none lost.
#[test]
fn racing_writers_lose_nothing() {
    let r = Redis::start();
    racing_on(&r.url());
}

fn racing_on(url: &str) {
    let now = rser::modules::usrloc::unix_now();
    let workers: Vec<_> = (0..2)
        .map(|n| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let mut c = RedisConn::open(&RedisUrl::parse(&url).unwrap(), T).unwrap();
                let mut retries = 0;
                for i in 0..50 {
                    let mine = binding(&format!("sip:n{n}-{i}@h"), 1, now + 600);
                    loop {
                        let cur = store::read(&mut c, "location", b"bob", now).unwrap();
                        let mut after = cur.bindings.clone();
                        after.push(mine.clone());
                        match store::apply(
                            &mut c,
                            7,
                            "location",
                            b"bob",
                            cur.version,
                            &[],
                            &[&mine],
                            &after,
                        )
                        .unwrap()
                        {
                            Applied::Done(_) => break,
                            Applied::Moved(_) => retries += 1,
                        }
                    }
                }
                retries
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut c = conn(url);
    let read = store::read(&mut c, "location", b"bob", now).unwrap();
    assert_eq!(read.bindings.len(), 100, "every binding kept");
    assert_eq!(read.version, 100);
}

/// What a starting node reads: every AOR through the buckets' indexes,
/// then the feeds from where they stood, in order per bucket.
fn snapshot_then_feed_on(url: &str) {
    let mut c = conn(url);
    let now = rser::modules::usrloc::unix_now();
    let tails = store::feed_tails(&mut c).unwrap();
    for i in 0..20 {
        let aor = format!("user{i}");
        let b = binding(&format!("sip:u{i}@h"), 1, now + 600);
        let got = store::apply(
            &mut c,
            7,
            "location",
            aor.as_bytes(),
            0,
            &[],
            &[&b],
            std::slice::from_ref(&b),
        );
        assert_eq!(got.unwrap(), Applied::Done(1));
    }
    // user0 removed again: gone from the index too.
    let gone = store::apply(&mut c, 7, "location", b"user0", 1, &[b"sip:u0@h"], &[], &[]).unwrap();
    assert_eq!(gone, Applied::Done(2));
    let mut seen = Vec::new();
    let n = store::snapshot(&mut c, now, |t, aor, _, bs| {
        seen.push((
            t.to_string(),
            String::from_utf8_lossy(aor).into_owned(),
            bs.len(),
        ))
    })
    .unwrap();
    assert_eq!(n, 19);
    assert!(
        seen.iter()
            .all(|(t, a, n)| t == "location" && a != "user0" && *n == 1)
    );
    let (entries, skipped) = store::feed_after(&mut c, &tails, 100, None).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(entries.len(), 21);
    let user0: Vec<(u64, usize)> = entries
        .iter()
        .filter(|e| e.aor == b"user0")
        .map(|e| (e.version, e.bindings.len()))
        .collect();
    assert_eq!(user0, [(1, 1), (2, 0)], "in order within the bucket");
    // From the last ids read: nothing more.
    let mut next = tails.clone();
    for e in &entries {
        next[e.bucket as usize] = e.id.clone();
    }
    assert!(
        store::feed_after(&mut c, &next, 100, Some(10))
            .unwrap()
            .0
            .is_empty()
    );
}

#[test]
fn a_snapshot_then_the_feeds() {
    let r = Redis::start();
    snapshot_then_feed_on(&r.url());
}

#[test]
fn a_snapshot_then_the_feeds_on_a_redis_cluster() {
    let c = Cluster::start();
    snapshot_then_feed_on(&c.url());
}

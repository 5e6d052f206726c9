//! Where an AOR and its feed are in Redis: `ul:{bN}:TABLE:AOR` and
//! `ul:{bN}:feed`, N the AOR's bucket. The braces are Redis Cluster's
//! hash tag: the AOR's key and its bucket's feed are in one slot, so the
//! script touching both runs on one node.

/// Feeds (and hash tags): enough to spread the AORs over a cluster's
/// masters, few enough to read every feed in one round trip per node.
pub const BUCKETS: u32 = 16;

/// The bucket of `aor` in `table`.
pub fn bucket(table: &str, aor: &[u8]) -> u32 {
    use xxhash_rust::xxh3::Xxh3;
    let mut h = Xxh3::new();
    h.update(table.as_bytes());
    h.update(&[0]);
    h.update(aor);
    (h.digest() % u64::from(BUCKETS)) as u32
}

/// The AOR's hash.
pub fn aor_key(table: &str, aor: &[u8]) -> Vec<u8> {
    let mut k = format!("ul:{{b{}}}:{table}:", bucket(table, aor)).into_bytes();
    k.extend_from_slice(aor);
    k
}

/// The change feed of bucket `b`.
pub fn feed_key(b: u32) -> String {
    format!("ul:{{b{b}}}:feed")
}

/// Bucket `b`'s index: the keys of its AORs (a node's snapshot reads
/// it, on a cluster as on one node, with no SCAN across nodes).
pub fn index_key(b: u32) -> String {
    format!("ul:{{b{b}}}:index")
}

/// The store's epoch: a random number the first node writes into an
/// empty Redis. Gone or another, Redis lost the table (restarted without
/// persistence, flushed): the nodes write theirs back.
pub const EPOCH: &str = "ul:epoch";

/// The table and AOR a key names (a snapshot's SCAN finds keys).
pub fn parse_aor_key(key: &[u8]) -> Option<(&str, &[u8])> {
    let rest = key.strip_prefix(b"ul:{b")?;
    let close = rest.iter().position(|&b| b == b'}')?;
    let rest = rest.get(close + 1..)?.strip_prefix(b":")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let table = std::str::from_utf8(&rest[..colon]).ok()?;
    Some((table, &rest[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aor_and_its_feed_share_a_hash_tag() {
        let k = aor_key("location", b"alice@example.com");
        let b = bucket("location", b"alice@example.com");
        let tag = format!("{{b{b}}}");
        assert!(String::from_utf8_lossy(&k).contains(&tag));
        assert!(feed_key(b).contains(&tag));
        assert_eq!(
            parse_aor_key(&k),
            Some(("location", &b"alice@example.com"[..]))
        );
        assert_eq!(parse_aor_key(b"ul:{b3}:feed"), None);
        // Spread over every bucket.
        let used: std::collections::HashSet<u32> = (0..200)
            .map(|i| bucket("location", format!("user{i}").as_bytes()))
            .collect();
        assert_eq!(used.len(), BUCKETS as usize);
    }
}

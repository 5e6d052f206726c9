//! Reading an AOR from Redis and applying a decided change to it, all or
//! nothing, only if nobody changed it since it was read.

use redis::Script;

use super::keys::{BUCKETS, EPOCH, aor_key, bucket, feed_key, index_key, parse_aor_key};
use super::record::{self, Binding};
use crate::db::conn::DbError;
use crate::db::redis::RedisConn;

/// An AOR as read: its version and its live bindings, and the contacts
/// of bindings expired at the time of reading (to be removed with the
/// next change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aor {
    pub version: u64,
    pub bindings: Vec<Binding>,
    pub expired: Vec<Vec<u8>>,
}

const VERSION: &[u8] = b"#v";

fn fail(e: redis::RedisError) -> DbError {
    DbError(format!("redis: {e}"))
}

/// The AOR's bindings live at `now` (unix seconds). A field that does not
/// parse is counted as expired: the next change removes it.
pub fn read(conn: &mut RedisConn, table: &str, aor: &[u8], now: u64) -> Result<Aor, DbError> {
    let fields: Vec<(Vec<u8>, Vec<u8>)> = conn
        .run(redis::cmd("HGETALL").arg(aor_key(table, aor)))
        .map_err(fail)?;
    Ok(aor_of(fields, now))
}

/// An AOR's hash fields as an `Aor`.
fn aor_of(fields: Vec<(Vec<u8>, Vec<u8>)>, now: u64) -> Aor {
    let mut out = Aor::default();
    for (field, value) in fields {
        if field == VERSION {
            out.version = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            continue;
        }
        match record::decode(&field, &value) {
            Some(b) if b.meta.expires > now => out.bindings.push(b),
            _ => out.expired.push(field),
        }
    }
    out
}

/// What an apply found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Written; the AOR's new version.
    Done(u64),
    /// Another node changed the AOR since it was read (its version now):
    /// read and decide again.
    Moved(u64),
}

/// An AOR left with no binding keeps its key, holding only its version,
/// for 60 s (twice a node's record of the removal,
/// `table::TOMBSTONE_SECS`): a save after it goes on from that version,
/// which the nodes' records of the removal do not hide.
///
/// KEYS: the AOR's hash, its bucket's feed and index. ARGV: the version
/// the change was decided on, the key's expiry (unix seconds; 0: no
/// binding is left, the key keeps only its version), the feed's approximate length bound,
/// the feed entry, the writing node, the number of contacts to remove,
/// those contacts, then contact/value pairs to set.
const APPLY: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], '#v') or '0')
if v ~= tonumber(ARGV[1]) then return {0, v} end
local n = tonumber(ARGV[6])
local i = 7
for _ = 1, n do redis.call('HDEL', KEYS[1], ARGV[i]); i = i + 1 end
while i < #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
v = v + 1
local at = tonumber(ARGV[2])
if at == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], '#v', v)
  redis.call('EXPIRE', KEYS[1], 60)
  redis.call('SREM', KEYS[3], KEYS[1])
else
  redis.call('HSET', KEYS[1], '#v', v)
  redis.call('EXPIREAT', KEYS[1], at)
  redis.call('SADD', KEYS[3], KEYS[1])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[4], 'o', ARGV[5])
return {1, v}
";

/// The feed keeps about this many entries per bucket: a node that falls
/// further behind loads a snapshot instead.
pub const FEED_LEN: usize = 100_000;

/// Applies a change decided on `version`: `remove` the contacts that go,
/// `after` every binding the AOR has once changed (those whose fields
/// change are written), all in one script; `node` names the writer in
/// the feed (its own reader skips the entry).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    conn: &mut RedisConn,
    node: u64,
    table: &str,
    aor: &[u8],
    version: u64,
    remove: &[&[u8]],
    write: &[&Binding],
    after: &[Binding],
) -> Result<Applied, DbError> {
    thread_local! {
        static SCRIPT: Script = Script::new(APPLY);
    }
    let expires_at = after.iter().map(|b| b.meta.expires).max().unwrap_or(0);
    let entry = record::feed_entry(table, aor, version + 1, after);
    let (version_s, at_s, len_s, node_s, n_s) = (
        version.to_string(),
        expires_at.to_string(),
        FEED_LEN.to_string(),
        node.to_string(),
        remove.len().to_string(),
    );
    let values: Vec<Vec<u8>> = write
        .iter()
        .map(|b| record::encode(&b.call_id, &b.meta))
        .collect();
    let mut args: Vec<&[u8]> = vec![
        version_s.as_bytes(),
        at_s.as_bytes(),
        len_s.as_bytes(),
        &entry,
        node_s.as_bytes(),
        n_s.as_bytes(),
    ];
    args.extend_from_slice(remove);
    for (b, v) in write.iter().zip(&values) {
        args.push(&b.contact);
        args.push(v);
    }
    let key = aor_key(table, aor);
    let b = bucket(table, aor);
    let (feed, index) = (feed_key(b), index_key(b));
    let (done, v): (i64, u64) = SCRIPT
        .with(|s| conn.script(s, &[&key, feed.as_bytes(), index.as_bytes()], &args))
        .map_err(fail)?;
    Ok(match done {
        1 => Applied::Done(v),
        _ => Applied::Moved(v),
    })
}

/// A stream item as XRANGE/XREAD give it: its id and field/value pairs.
type Item = (String, Vec<(String, Vec<u8>)>);

/// An entry skipped (it did not parse): its bucket and id.
pub type Skipped = (u32, String);

/// Where a reader of each bucket's feed starts: the last entry's id (or
/// `0-0` for an empty feed), as Redis writes stream ids.
pub fn feed_tails(conn: &mut RedisConn) -> Result<Vec<String>, DbError> {
    (0..BUCKETS)
        .map(|b| {
            let last: Vec<Item> = conn
                .run(
                    redis::cmd("XREVRANGE")
                        .arg(feed_key(b))
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(1),
                )
                .map_err(fail)?;
            Ok(last
                .into_iter()
                .next()
                .map_or("0-0".to_string(), |(id, _)| id))
        })
        .collect()
}

/// Every AOR of every table in Redis, through the buckets' indexes: the
/// snapshot a node loads before it serves. `each` gets the table, the
/// AOR, its version and its live bindings at `now`; an index entry whose AOR expired
/// is dropped from the index.
pub fn snapshot(
    conn: &mut RedisConn,
    now: u64,
    mut each: impl FnMut(&str, &[u8], u64, &[Binding]),
) -> Result<usize, DbError> {
    let mut aors = 0;
    for b in 0..BUCKETS {
        let keys: Vec<Vec<u8>> = conn
            .run(redis::cmd("SMEMBERS").arg(index_key(b)))
            .map_err(fail)?;
        // The AORs read in pipelines: one round trip per batch.
        for batch in keys.chunks(SNAPSHOT_BATCH) {
            let cmds: Vec<redis::Cmd> = batch
                .iter()
                .map(|k| {
                    let mut c = redis::cmd("HGETALL");
                    c.arg(k);
                    c
                })
                .collect();
            let replies: Vec<Vec<(Vec<u8>, Vec<u8>)>> = conn.pipeline(cmds).map_err(fail)?;
            let mut stale = Vec::new();
            for (key, fields) in batch.iter().zip(replies) {
                let Some((table, aor)) = parse_aor_key(key) else {
                    continue;
                };
                let read = aor_of(fields, now);
                if read.version == 0 {
                    stale.push(key);
                    continue;
                }
                each(table, aor, read.version, &read.bindings);
                aors += 1;
            }
            if !stale.is_empty() {
                let _: i64 = conn
                    .run(redis::cmd("SREM").arg(index_key(b)).arg(stale))
                    .map_err(fail)?;
            }
        }
    }
    Ok(aors)
}

/// AORs read in one pipeline by a snapshot.
const SNAPSHOT_BATCH: usize = 512;

/// A feed entry read: the bucket, its id, the node that wrote it, and
/// what it says.
pub struct Entry {
    pub bucket: u32,
    pub id: String,
    pub node: u64,
    pub table: String,
    pub aor: Vec<u8>,
    pub version: u64,
    pub bindings: Vec<Binding>,
}

/// The entries after `from[b]` in each bucket's feed, at most `count`
/// a bucket: on one node one XREAD over every feed (waiting up to
/// `block_ms` for the first entry), on a cluster one XREAD per feed in
/// one pipeline (each names one key). An entry that does not parse is
/// skipped (its id still advances the reader).
pub fn feed_after(
    conn: &mut RedisConn,
    from: &[String],
    count: usize,
    block_ms: Option<u64>,
) -> Result<(Vec<Entry>, Vec<Skipped>), DbError> {
    type Streams = Option<Vec<(String, Vec<Item>)>>;
    let replies: Vec<Streams> = match (conn.is_cluster(), block_ms) {
        // One node: one XREAD over every feed, waiting for the first entry.
        (false, Some(ms)) => {
            let mut c = redis::cmd("XREAD");
            c.arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(ms)
                .arg("STREAMS");
            for b in 0..from.len() {
                c.arg(feed_key(b as u32));
            }
            for id in from {
                c.arg(id);
            }
            vec![conn.run(&c).map_err(fail)?]
        }
        // A cluster: one XREAD per feed (each its own slot), pipelined.
        _ => {
            let cmds: Vec<redis::Cmd> = from
                .iter()
                .enumerate()
                .map(|(b, id)| {
                    let mut c = redis::cmd("XREAD");
                    c.arg("COUNT")
                        .arg(count)
                        .arg("STREAMS")
                        .arg(feed_key(b as u32))
                        .arg(id);
                    c
                })
                .collect();
            conn.pipeline(cmds).map_err(fail)?
        }
    };
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (key, items) in replies.into_iter().flatten().flatten() {
        let Some(b) = key
            .strip_prefix("ul:{b")
            .and_then(|r| r.split('}').next())
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|b| (*b as usize) < from.len())
        else {
            continue;
        };
        for (id, fields) in items {
            let field = |name: &str| fields.iter().find(|(f, _)| f == name).map(|(_, v)| v);
            let parsed = field("e").and_then(|e| record::parse_feed_entry(e));
            let node = field("o")
                .and_then(|o| std::str::from_utf8(o).ok()?.parse().ok())
                .unwrap_or(0);
            match parsed {
                Some((table, aor, version, bindings)) => entries.push(Entry {
                    bucket: b,
                    id,
                    node,
                    table,
                    aor,
                    version,
                    bindings,
                }),
                None => skipped.push((b, id)),
            }
        }
    }
    Ok((entries, skipped))
}

/// The store's epoch, None when Redis has none (empty, or lost).
pub fn epoch(conn: &mut RedisConn) -> Result<Option<u64>, DbError> {
    let v: Option<String> = conn.run(redis::cmd("GET").arg(EPOCH)).map_err(fail)?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// Sets the epoch to `mine` if Redis has none; the epoch in force.
pub fn claim_epoch(conn: &mut RedisConn, mine: u64) -> Result<u64, DbError> {
    let _: Option<String> = conn
        .run(redis::cmd("SET").arg(EPOCH).arg(mine).arg("NX"))
        .map_err(fail)?;
    epoch(conn)?.ok_or_else(|| DbError("redis: the epoch vanished as it was set".into()))
}

/// Each feed's entries ever added and entries kept (0, 0 for none):
/// a reader that has read all but `added - read` of them, more than the
/// feed keeps, fell behind its trimming.
pub fn feed_counts(conn: &mut RedisConn) -> Result<Vec<(u64, u64)>, DbError> {
    const COUNTS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local added, len = 0, 0
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'length' then len = info[i + 1] end
end
return {added, len}
";
    let cmds: Vec<redis::Cmd> = (0..BUCKETS)
        .map(|b| {
            let mut c = redis::cmd("EVAL");
            c.arg(COUNTS).arg(1).arg(feed_key(b));
            c
        })
        .collect();
    conn.pipeline(cmds).map_err(fail)
}

//! Reading an AOR from Redis and applying a decided change to it, all or
//! nothing, only if nobody changed it since it was read.

use redis::Script;

use super::keys::{aor_key, bucket, feed_key};
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
    Ok(out)
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

/// KEYS: the AOR's hash, its bucket's feed. ARGV: the version the change
/// was decided on, the key's expiry (unix seconds; 0: no binding is
/// left, the key goes), the feed's approximate length bound, the feed
/// entry, the number of contacts to remove, those contacts, then
/// contact/value pairs to set.
const APPLY: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], '#v') or '0')
if v ~= tonumber(ARGV[1]) then return {0, v} end
local n = tonumber(ARGV[5])
local i = 6
for _ = 1, n do redis.call('HDEL', KEYS[1], ARGV[i]); i = i + 1 end
while i < #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
v = v + 1
local at = tonumber(ARGV[2])
if at == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], '#v', v)
  redis.call('EXPIREAT', KEYS[1], at)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[4])
return {1, v}
";

/// The feed keeps about this many entries per bucket: a node that falls
/// further behind loads a snapshot instead.
pub const FEED_LEN: usize = 100_000;

/// Applies a change decided on `version`: `remove` the contacts that go,
/// `after` every binding the AOR has once changed (those whose fields
/// change are written), all in one script.
pub fn apply(
    conn: &mut RedisConn,
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
    let (version_s, at_s, len_s, n_s) = (
        version.to_string(),
        expires_at.to_string(),
        FEED_LEN.to_string(),
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
        n_s.as_bytes(),
    ];
    args.extend_from_slice(remove);
    for (b, v) in write.iter().zip(&values) {
        args.push(&b.contact);
        args.push(v);
    }
    let key = aor_key(table, aor);
    let feed = feed_key(bucket(table, aor));
    let (done, v): (i64, u64) = SCRIPT
        .with(|s| conn.script(s, &[&key, feed.as_bytes()], &args))
        .map_err(fail)?;
    Ok(match done {
        1 => Applied::Done(v),
        _ => Applied::Moved(v),
    })
}

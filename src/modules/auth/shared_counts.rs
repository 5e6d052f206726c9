//! Nonce counts shared by several nodes through Redis (auth's
//! `nonce_count_redis`, issue 22): nodes sharing auth's `secret` accept
//! each other's nonces, and a nonce count seen on one is refused on every
//! other (RFC 2617 §3.2.2's replay protection across the cluster). Each
//! nonce's highest count is one Redis key, raised only upwards by a
//! script and gone when the nonce expires.

use std::time::Duration;

use crate::db::conn::DbError;
use crate::db::handle::{Handle, Refused};
use crate::db::redis::{RedisConn, RedisUrl};

/// Raises the nonce's count if `nc` is above it; 1 when it was, else 0.
const USE: &str = r"
local v = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > v then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
";

/// A worker waits this long (an answer takes well under a millisecond).
const TIMEOUT: Duration = Duration::from_secs(1);

pub struct SharedCounts {
    handle: Handle<RedisConn>,
    /// Seconds a nonce is good for: its key lives as long.
    expire: u64,
}

impl SharedCounts {
    pub fn new(url: RedisUrl, expire: u64) -> SharedCounts {
        SharedCounts {
            handle: Handle::inline(url, TIMEOUT),
            expire,
        }
    }

    /// Whether `nc` is above every count seen for `nonce` on any node
    /// (and is now the highest); Err when Redis did not answer.
    pub fn use_count(&mut self, nonce: &[u8], nc: u32, now_ms: u64) -> Result<bool, Refused> {
        let key = [b"nc:".as_slice(), nonce].concat();
        let (nc, expire) = (nc.to_string(), self.expire.max(1).to_string());
        self.handle.call(
            move |c: &mut RedisConn| {
                thread_local! {
                    static SCRIPT: redis::Script = redis::Script::new(USE);
                }
                let fresh: i64 = SCRIPT
                    .with(|s| c.script(s, &[&key], &[nc.as_bytes(), expire.as_bytes()]))
                    .map_err(|e| DbError(format!("redis: {e}")))?;
                Ok(fresh == 1)
            },
            now_ms,
        )
    }
}

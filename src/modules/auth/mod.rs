//! auth and auth_db: digest authentication of requests (RFC 2617, RFC
//! 8760) against a subscriber table in SQLite. `digest.rs` computes,
//! `nonce.rs` issues and checks nonces, `subscriber.rs` keeps the users.

pub mod actions;
pub mod cache;
pub mod digest;
pub mod nonce;
pub mod runtime;
pub mod shared_counts;
pub mod subscriber;
pub mod throttle;

/// Index of `auth_failures` in the module's counters.
pub(crate) const AUTH_FAILURES: usize = 0;
/// The subscriber table failed or was known down (the request got 500).
pub(crate) const AUTH_DB_ERRORS: usize = 1;
/// Queries the subscriber table answered, and answers from the cache.
pub(crate) const AUTH_DB_QUERIES: usize = 2;
pub(crate) const AUTH_CACHE_HITS: usize = 3;
/// `nonce_count_redis`: Redis did not answer (the node's own counts
/// served instead).
pub(crate) const AUTH_NC_REDIS_ERRORS: usize = 4;
/// Attempts refused (403) without a check: their source or user failed
/// too often lately (`throttle.rs`).
pub(crate) const AUTH_THROTTLED: usize = 5;
/// Sources and users that went over their limit of failures.
pub(crate) const AUTH_BLOCKED: usize = 6;

use arrayvec::ArrayVec;

use crate::cfg::Config;
use digest::Algorithm;

/// MD5 alone, as Kamailio offers: deployed UAs (baresip 1.0, sipsak,
/// sipp 3.6, most phones) answer only the first challenge and know only
/// MD5, and fail on a SHA-256 one even with the right password.
pub const DEFAULT_ALGORITHMS: &str = "MD5";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Where the subscriber table is: auth_db's `db_url`, or auth's (as
    /// in SER's seed).
    pub db_url: Option<String>,
    /// Seconds a nonce is good for (Kamailio's default 30).
    pub nonce_expire: u64,
    /// The challenges a 401/407 carries, most preferred first (RFC 8760
    /// §2.4): auth's `algorithm`, a comma list, default "MD5"; "SHA-256,
    /// MD5" offers RFC 8760's SHA-256 first to clients that read every
    /// challenge.
    pub algorithms: ArrayVec<Algorithm, 2>,
    /// auth's `secret`: nonces signed with it stay good across restarts
    /// and between servers sharing it (default: random at each start).
    pub secret: Option<String>,
    /// auth_db's `calculate_ha1`: Some(true) HA1 from the password
    /// column, Some(false) from the stored HA1 columns, None (unset) the
    /// password when the row has one, else the stored HA1.
    pub calculate_ha1: Option<bool>,
    /// The subscriber columns read: `user_column`, `domain_column`,
    /// `password_column` (the password in clear; with `calculate_ha1` 0
    /// the HA1, Kamailio's default `ha1` then), `password_column_2`
    /// (`ha1b`), `hash_column_sha256` (`ha1_sha256`, used where the
    /// table has it).
    pub columns: subscriber::Columns,
    /// auth's `nonce_count_redis`: nonce counts shared through Redis.
    pub nonce_count_redis: Option<String>,
    /// Seconds a subscriber's credentials stay cached in shared memory
    /// (`auth_cache_expires`, 0: every authorization asks the table).
    pub cache_expires: u64,
    /// auth_db's `use_domain`: the subscriber's domain must be the realm
    /// (rser's behaviour when unset, as SER's); 0: the user name alone.
    pub use_domain: bool,
    /// Failed authentications from one source (`failed_auth_limit`,
    /// default 10) and for one user (`failed_auth_user_limit`, default
    /// 30: above one address's, so that one guessing address does not
    /// lock its target out) within `failed_auth_window` seconds (default 60) before its
    /// next attempts are refused; 0 turns either off.
    pub failed_limit: u32,
    pub failed_user_limit: u32,
    pub failed_window: u64,
}

/// Parses auth's `algorithm` list.
pub fn parse_algorithms(list: &str) -> Result<ArrayVec<Algorithm, 2>, String> {
    let mut out = ArrayVec::new();
    for name in list.split(',').map(str::trim) {
        let alg = Algorithm::parse(Some(name.as_bytes()))
            .ok_or_else(|| format!("auth algorithm {name:?}: MD5 or SHA-256"))?;
        if !out.contains(&alg) && out.try_push(alg).is_err() {
            break;
        }
    }
    if out.is_empty() {
        return Err("auth algorithm: name MD5, SHA-256 or both".into());
    }
    Ok(out)
}

/// A parameter auth_db or (as in SER 0.8) auth sets; auth_db's first.
fn either<'c>(c: &'c Config, param: &str) -> Option<&'c crate::cfg::ParamValue> {
    c.modparam("auth_db", param)
        .or_else(|| c.modparam("auth", param))
}

impl Params {
    /// The parameters; an `algorithm` list that does not parse falls back
    /// to the default here (`prepare` refuses it at start-up).
    pub fn from_config(c: &Config) -> Params {
        let url = [("auth_db", "db_url"), ("auth", "db_url")]
            .iter()
            .map(|(m, p)| c.modparam_str(m, p, ""))
            .find(|u| !u.is_empty())
            .map(str::to_string);
        Params {
            db_url: url,
            nonce_expire: c.modparam_int("auth", "nonce_expire", 30).clamp(1, 86_400) as u64,
            algorithms: parse_algorithms(c.modparam_str("auth", "algorithm", DEFAULT_ALGORITHMS))
                .unwrap_or_else(|_| {
                    parse_algorithms(DEFAULT_ALGORITHMS).expect("the default parses")
                }),
            secret: Some(c.modparam_str("auth", "secret", ""))
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            // SER 0.8 set these on auth; Kamailio on auth_db.
            calculate_ha1: match either(c, "calculate_ha1") {
                Some(crate::cfg::ParamValue::Int(n)) => Some(*n != 0),
                _ => None,
            },
            columns: {
                let text = |p: &str, default: &str| match either(c, p) {
                    Some(crate::cfg::ParamValue::Str(s)) => s.clone(),
                    _ => default.to_string(),
                };
                let stored = matches!(
                    either(c, "calculate_ha1"),
                    Some(crate::cfg::ParamValue::Int(0))
                );
                subscriber::Columns {
                    user: text("user_column", "username"),
                    domain: text("domain_column", "domain"),
                    password: text("password_column", if stored { "ha1" } else { "password" }),
                    ha1: "ha1".into(),
                    ha1b: text("password_column_2", "ha1b"),
                    sha256: Some(text("hash_column_sha256", "ha1_sha256")),
                }
            },
            nonce_count_redis: Some(c.modparam_str("auth", "nonce_count_redis", ""))
                .filter(|u| !u.is_empty())
                .map(str::to_string),
            cache_expires: c
                .modparam_int("auth_db", "auth_cache_expires", 10)
                .clamp(0, 86_400) as u64,
            use_domain: c.modparam_int("auth_db", "use_domain", 1) != 0,
            failed_limit: c
                .modparam_int("auth", "failed_auth_limit", 10)
                .clamp(0, 1_000_000) as u32,
            failed_user_limit: c
                .modparam_int("auth", "failed_auth_user_limit", 30)
                .clamp(0, 1_000_000) as u32,
            failed_window: c
                .modparam_int("auth", "failed_auth_window", 60)
                .clamp(1, 86_400) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_lists() {
        assert_eq!(
            parse_algorithms("SHA-256,MD5").unwrap().as_slice(),
            &[Algorithm::Sha256, Algorithm::Md5]
        );
        assert_eq!(
            parse_algorithms(" md5 ").unwrap().as_slice(),
            &[Algorithm::Md5]
        );
        assert_eq!(parse_algorithms("MD5,MD5").unwrap().len(), 1);
        assert!(parse_algorithms("SHA-512-256").is_err());
        assert!(parse_algorithms("").is_err());
    }
}

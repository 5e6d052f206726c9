//! auth and auth_db: digest authentication of requests (RFC 2617, RFC
//! 8760) against a subscriber table in SQLite. `digest.rs` computes,
//! `nonce.rs` issues and checks nonces, `subscriber.rs` keeps the users.

pub mod digest;
pub mod nonce;
pub mod subscriber;

use crate::cfg::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Where the subscriber table is: auth_db's `db_url`, or auth's (as
    /// in SER's seed).
    pub db_url: Option<String>,
    /// Seconds a nonce is good for (Kamailio's default 30).
    pub nonce_expire: u64,
}

impl Params {
    pub fn from_config(c: &Config) -> Params {
        let url = [("auth_db", "db_url"), ("auth", "db_url")]
            .iter()
            .map(|(m, p)| c.modparam_str(m, p, ""))
            .find(|u| !u.is_empty())
            .map(str::to_string);
        Params {
            db_url: url,
            nonce_expire: c.modparam_int("auth", "nonce_expire", 30).clamp(1, 86_400) as u64,
        }
    }
}

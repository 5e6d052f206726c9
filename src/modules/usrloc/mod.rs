//! usrloc: the user location table (`table.rs`, in shared memory) and its
//! persistence (`db.rs`: Kamailio's location table on SQLite, MySQL or
//! PostgreSQL; `writer.rs`: db_mode 1's queue), with the module's
//! parameters. The
//! registrar's §10.3 logic is in `modules::registrar`.

pub mod db;
pub mod redis;
pub mod table;
pub mod upkeep;
pub mod writer;

pub use table::{Location, Meta};

use crate::cfg::Config;
use crate::cfg::program::Program;
use crate::modules::def::{Hooks, Module, ParamType};
use crate::sip::Uri;

crate::server::shared::counters! { UlCounter, COUNTER_NAMES, {
    /// A REGISTER found the table full (503).
    TableFull => "usrloc_table_full",
    Expired => "usrloc_expired",
    DbErrors => "usrloc_db_errors",
    /// Changes written to the database (db_mode 1 and 2).
    DbWritten => "usrloc_db_written",
    /// db_mode 1: a change found the queue to the database full.
    DbQueueFull => "usrloc_db_queue_full",
    /// db_mode 1: a change lost in the queue (its writer died mid-push).
    DbQueueLost => "usrloc_db_queue_lost",
    /// Shared through Redis: feed entries applied to this node's table.
    FeedApplied => "usrloc_feed_applied",
    /// Shared through Redis: Redis found without the table, written back.
    Reseeded => "usrloc_redis_reseeded",
    /// Shared through Redis: this node fell behind the trimmed feeds and
    /// loaded a snapshot again.
    Reloaded => "usrloc_feed_reloaded",
    /// Shared through Redis: the sum of the other nodes' entries' ages
    /// when applied here (ms; over `usrloc_feed_remote`, the mean lag).
    FeedLagMs => "usrloc_feed_lag_ms",
    FeedRemote => "usrloc_feed_remote",
    /// Shared through Redis: saves asked of Redis and the time they took
    /// (µs; the mean round trips' cost of a save).
    RedisSaves => "usrloc_redis_saves",
    RedisSaveUs => "usrloc_redis_save_us",
}}

pub static MODULE: Module = Module {
    counters: COUNTER_NAMES,
    hooks: Some(&Hooks {
        carve: Some(upkeep::carve),
        start: None,
        helper: Some(upkeep::run),
        used: Some(upkeep::used),
    }),
    check: Some(check),
    ..Module::params_only(
        "usrloc",
        &[
            ("db_url", ParamType::Str),
            ("db_mode", ParamType::Int),
            ("timer_interval", ParamType::Int),
            ("use_domain", ParamType::Int),
            ("timer_procs", ParamType::Int),
            ("node_address", ParamType::Str),
        ],
    )
};

/// usrloc's `db_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbMode {
    /// Memory only: a restart loses every binding.
    Memory,
    /// Every change is queued for the database as it is made and written
    /// at once, in order, by a thread of the timer process.
    WriteThrough,
    /// Changes are marked and written every `timer_interval` seconds by
    /// another process; no worker waits on the database.
    WriteBack,
    /// The database only: every save and lookup reads it (bounded), so
    /// nodes can share one table.
    DbOnly,
    /// Shared through Redis (a `redis://` db_url, any db_mode but 0):
    /// saves applied in Redis, each node's table a cache kept current by
    /// the change feed (`redis/`).
    Shared,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub db_url: Option<String>,
    pub db_mode: DbMode,
    /// Seconds between write-backs (and expiry sweeps' database cleanup).
    pub timer_interval: u64,
    /// The AOR is `user@domain` rather than the user alone (Kamailio's
    /// `use_domain`, off by default as in SER).
    pub use_domain: bool,
    /// Shared through Redis: the address the other nodes reach this one
    /// at (UDP), named in the bindings of phones registered over a
    /// connection to it, so that requests for them come through it.
    /// None: the UDP socket on the address the REGISTER came to.
    pub node_address: Option<std::net::SocketAddr>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            db_url: None,
            db_mode: DbMode::Memory,
            timer_interval: 60,
            use_domain: false,
            node_address: None,
        }
    }
}

/// `node_address`: `sip:IP:PORT` or `IP:PORT` (IPv6 in brackets), port
/// 5060 when left out.
fn node_address(v: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || format!("node_address \"{v}\": sip:IP[:PORT] (this node's UDP address)");
    let text = v.strip_prefix("sip:").unwrap_or(v);
    if let Ok(a) = text.parse::<std::net::SocketAddr>() {
        return Ok(Some(a));
    }
    let ip = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map_err(|_| bad())?;
    Ok(Some(std::net::SocketAddr::new(ip, 5060)))
}

impl Params {
    pub fn from_config(c: &Config) -> Result<Params, String> {
        let db_url = Some(c.modparam_str("usrloc", "db_url", ""))
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        let db_mode = match c.modparam_int("usrloc", "db_mode", 0) {
            0 => DbMode::Memory,
            1 => DbMode::WriteThrough,
            2 => DbMode::WriteBack,
            3 => DbMode::DbOnly,
            n => return Err(format!("db_mode {n}: 0, 1, 2 or 3")),
        };
        let redis = db_url
            .as_deref()
            .is_some_and(crate::db::redis::RedisUrl::is_redis);
        let db_mode = match db_mode {
            DbMode::Memory => DbMode::Memory,
            _ if redis => DbMode::Shared,
            m => m,
        };
        if db_mode != DbMode::Memory && db_url.is_none() {
            return Err(format!(
                "db_mode 1, 2 and 3 need modparam(\"usrloc\", \"db_url\", URL){}",
                crate::db::SER_DEFAULT_URL_NOTE
            ));
        }
        Ok(Params {
            db_url,
            db_mode,
            timer_interval: c
                .modparam_int("usrloc", "timer_interval", 60)
                .clamp(1, 86_400) as u64,
            use_domain: c.modparam_int("usrloc", "use_domain", 0) != 0,
            node_address: node_address(c.modparam_str("usrloc", "node_address", ""))?,
        })
    }
}

/// What a start checks of usrloc's parameters: the mode, and a database
/// URL this build serves when the mode writes to one.
fn check(config: &Config) -> Result<Vec<String>, String> {
    let p = Params::from_config(config)?;
    match (&p.db_url, p.db_mode) {
        (_, DbMode::Memory) | (None, _) => {}
        (Some(url), DbMode::Shared) => {
            crate::db::redis::RedisUrl::parse(url)?;
        }
        (Some(url), _) => {
            crate::db::served(url)?;
        }
    }
    let mut w = Vec::new();
    if config.modparam_int("usrloc", "timer_procs", 0) != 0 {
        w.push(
            "timer_procs: accepted and ignored: usrloc's upkeep runs as a thread of the timer process"
                .into(),
        );
    }
    Ok(w)
}

/// The location tables the script names in `save()` and `lookup()`, in a
/// fixed order: a binding's `domain` is an index into it.
pub fn tables(program: &Program) -> Vec<String> {
    program.string_args(&["save", "lookup", "registered"], 0)
}

/// The address-of-record a URI names: its user, and `@host` (lowercase)
/// with `use_domain`. Empty when the URI has no user.
pub fn aor_of(uri: &Uri<'_>, use_domain: bool, out: &mut Vec<u8>) {
    out.clear();
    let Some(user) = uri.user.filter(|u| !u.is_empty()) else {
        return;
    };
    out.extend_from_slice(user);
    if use_domain {
        out.push(b'@');
        out.extend(uri.host_raw.iter().map(u8::to_ascii_lowercase));
    }
}

/// Seconds since the Unix epoch: expiry survives restarts in the database.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

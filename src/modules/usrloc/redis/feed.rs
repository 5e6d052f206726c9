//! Each node's table as a cache of the Redis store: the master loads a
//! snapshot before the workers start (so a node serves only once it is
//! current), noting where every bucket's feed stood; a thread of the
//! timer process then applies the feeds' entries from there, each
//! replacing its AOR's bindings (idempotent: an entry carries the AOR's
//! whole set).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rser_shm::{Carver, Slice};

use super::keys::BUCKETS;
use super::record::Binding;
use super::store;
use crate::db::conn::DbError;
use crate::db::redis::{RedisConn, RedisUrl};
use crate::modules::def::Start;
use crate::modules::usrloc::{Location, UlCounter, unix_now};
use crate::server::log_limit::{LogLimit, held_text};

/// How long a node waits for Redis (connect, each command).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Entries read per bucket per round trip, and the pause when none came.
const COUNT: usize = 512;
const IDLE: Duration = Duration::from_millis(5);
/// One node: the reader waits in Redis for the next entry this long (a
/// cluster is polled every IDLE).
const BLOCK_MS: u64 = 500;
const RETRY: Duration = Duration::from_millis(500);

/// Where the loaded epoch is among the feed positions' words, and where
/// the feeds' entries-added counts start.
const EPOCH_WORD: usize = 2 * BUCKETS as usize;
const ADDED_WORDS: usize = EPOCH_WORD + 1;
/// How often the reader checks that Redis still has the table.
const EPOCH_CHECK: Duration = Duration::from_secs(1);

/// A new epoch: random, never 0.
fn fresh_epoch() -> u64 {
    u64::from_le_bytes(
        crate::server::secret()[8..16]
            .try_into()
            .unwrap_or_default(),
    ) | 1
}

/// A stream id as two words.
fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Puts an AOR's bindings in the table (`domain`: its table's index).
fn cache(
    loc: &Location,
    domain: u16,
    aor: &[u8],
    version: u64,
    bindings: &[Binding],
    scratch: &mut Vec<u8>,
) -> bool {
    let list: Vec<(&[u8], &[u8], crate::modules::usrloc::Meta)> = bindings
        .iter()
        .map(|b| (b.contact.as_slice(), b.call_id.as_slice(), b.meta))
        .collect();
    loc.replace(&loc.aor(domain, aor), &list, version, unix_now(), scratch)
        .is_ok()
}

/// In the master: the snapshot loaded into `loc`, and where each feed
/// stood carved beside it for the reader. Any failure stops the start.
pub fn load(
    url: &str,
    tables: &[String],
    loc: &mut Location,
    carver: &mut Carver<'_>,
) -> Result<(), String> {
    let url = RedisUrl::parse(url)?;
    let mut conn = RedisConn::open(&url, TIMEOUT).map_err(|e| format!("usrloc: {e}"))?;
    let fail = |e: DbError| format!("usrloc: redis {url}: {e}");
    let t0 = std::time::Instant::now();
    let epoch = store::claim_epoch(&mut conn, fresh_epoch()).map_err(fail)?;
    // Counted before the tails are noted: entries between the two count
    // as unread, so a reader errs towards loading again, never towards
    // missing a trimmed entry.
    let counts = store::feed_counts(&mut conn).map_err(fail)?;
    let tails = store::feed_tails(&mut conn).map_err(fail)?;
    let mut scratch = Vec::new();
    let (mut full, mut n) = (0usize, 0usize);
    let loaded = store::snapshot(&mut conn, unix_now(), |table, aor, version, bindings| {
        if let Some(domain) = tables.iter().position(|t| t == table) {
            n += bindings.len();
            if !cache(loc, domain as u16, aor, version, bindings, &mut scratch) {
                full += 1;
            }
        }
    })
    .map_err(fail)?;
    if full > 0 {
        return Err(format!(
            "usrloc: {full} AORs from {url} did not fit in shared memory (raise -m)"
        ));
    }
    // Each bucket's position, the epoch loaded, each feed's entries added.
    let from: Slice<AtomicU64> = carver
        .slice(ADDED_WORDS + BUCKETS as usize, |i| match i {
            EPOCH_WORD => AtomicU64::new(epoch),
            i if i >= ADDED_WORDS => AtomicU64::new(counts[i - ADDED_WORDS].0),
            _ => {
                let (ms, seq) = parse_id(&tails[i / 2]);
                AtomicU64::new(if i % 2 == 0 { ms } else { seq })
            }
        })
        .ok_or("shared memory too small for usrloc's feed positions")?;
    loc.feed_from = Some(from);
    loc.node = u64::from_le_bytes(crate::server::secret()[..8].try_into().unwrap_or_default()) | 1;
    log::info!(
        "usrloc: {n} bindings of {loaded} AORs loaded from {url} in {} ms",
        t0.elapsed().as_millis()
    );
    Ok(())
}

/// The feed reader (a thread of the timer process; never returns while
/// the process lives).
pub fn run(loc: Location, s: &Start<'_>, url: &str, tables: &[String]) {
    let (Some(from), Ok(url)) = (loc.feed_from, RedisUrl::parse(url)) else {
        return;
    };
    let mut ids: Vec<String> = (0..BUCKETS as usize)
        .map(|b| {
            format!(
                "{}-{}",
                from[2 * b].load(Ordering::Relaxed),
                from[2 * b + 1].load(Ordering::Relaxed)
            )
        })
        .collect();
    // Per feed: its entries-added count as of the reader's position.
    let mut added: Vec<u64> = (0..BUCKETS as usize)
        .map(|b| from[ADDED_WORDS + b].load(Ordering::Relaxed))
        .collect();
    let mut conn: Option<RedisConn> = None;
    let mut scratch = Vec::new();
    let mut err_log = LogLimit::default();
    let mut checked = std::time::Instant::now();
    loop {
        let c = match &mut conn {
            Some(c) => c,
            None => match RedisConn::open(&url, TIMEOUT) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    failed(s, &mut err_log, &e);
                    std::thread::sleep(RETRY);
                    continue;
                }
            },
        };
        if checked.elapsed() >= EPOCH_CHECK {
            checked = std::time::Instant::now();
            let had = from[EPOCH_WORD].load(Ordering::Relaxed);
            match store::epoch(c) {
                Ok(Some(e)) if e == had => match store::feed_counts(c) {
                    Ok(now)
                        if !now
                            .iter()
                            .zip(&added)
                            .any(|((total, len), read)| total.saturating_sub(*read) > *len) => {}
                    Ok(_) => match reload(c, &loc, tables, &mut scratch) {
                        Ok((counts, tails, aors)) => {
                            ids = tails;
                            added = counts;
                            s.counts.add(UlCounter::Reloaded as usize, 1);
                            log::warn!(
                                "usrloc: this node fell behind the Redis feeds; {aors} AORs loaded again"
                            );
                        }
                        Err(e) => failed(s, &mut err_log, &e),
                    },
                    Err(e) => failed(s, &mut err_log, &e),
                },
                Ok(_) => match reseed(c, &loc, tables) {
                    Ok((epoch, aors)) => {
                        from[EPOCH_WORD].store(epoch, Ordering::Relaxed);
                        // New feeds: read from their start.
                        ids.iter_mut().for_each(|id| *id = "0-0".into());
                        added.iter_mut().for_each(|a| *a = 0);
                        s.counts.add(UlCounter::Reseeded as usize, 1);
                        log::warn!(
                            "usrloc: Redis had lost the location table; {aors} AORs written back from this node's table"
                        );
                    }
                    Err(e) => {
                        conn = None;
                        failed(s, &mut err_log, &e);
                        std::thread::sleep(RETRY);
                        continue;
                    }
                },
                Err(e) => {
                    conn = None;
                    failed(s, &mut err_log, &e);
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
        }
        match store::feed_after(c, &ids, COUNT, Some(BLOCK_MS)) {
            Ok((entries, skipped)) => {
                let got = entries.len() + skipped.len();
                let wall_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                for e in &entries {
                    added[e.bucket as usize] += 1;
                    ids[e.bucket as usize].clone_from(&e.id);
                    // This node's own changes are in its table already.
                    if e.node == loc.node {
                        continue;
                    }
                    // The entry's id is Redis's clock at its writing.
                    let at = parse_id(&e.id).0;
                    s.counts
                        .add(UlCounter::FeedLagMs as usize, wall_ms.saturating_sub(at));
                    s.counts.add(UlCounter::FeedRemote as usize, 1);
                    if let Some(domain) = tables.iter().position(|t| *t == e.table)
                        && !cache(
                            &loc,
                            domain as u16,
                            &e.aor,
                            e.version,
                            &e.bindings,
                            &mut scratch,
                        )
                    {
                        s.counts.add(UlCounter::TableFull as usize, 1);
                    }
                }
                for (b, id) in skipped {
                    added[b as usize] += 1;
                    ids[b as usize] = id;
                }
                s.counts
                    .add(UlCounter::FeedApplied as usize, entries.len() as u64);
                // Entries come one by one under load: a pause gathers the
                // next ones into one read (a few ms of convergence for
                // far fewer round trips).
                if got > 0 || c.is_cluster() {
                    std::thread::sleep(IDLE);
                }
            }
            Err(e) => {
                conn = None;
                failed(s, &mut err_log, &e);
                std::thread::sleep(RETRY);
            }
        }
    }
}

fn failed(s: &Start<'_>, log: &mut LogLimit, e: &DbError) {
    s.counts.add(UlCounter::DbErrors as usize, 1);
    if let Some(held) = log.allow(crate::server::worker::now_ms()) {
        log::error!(
            "usrloc: the Redis feed cannot be read (lookups served from this node's table): {e}{}",
            held_text(held)
        );
    }
}

/// Redis lost the table: a new epoch claimed (or another node's taken),
/// and every AOR of this node's table written back where Redis has none
/// (another node may have written it first: then it is left as it is).
/// The epoch in force and the AORs written.
fn reseed(c: &mut RedisConn, loc: &Location, tables: &[String]) -> Result<(u64, usize), DbError> {
    let epoch = store::claim_epoch(c, fresh_epoch())?;
    // The table's bindings by AOR (domain, AOR), read under each lock.
    let mut aors: std::collections::BTreeMap<(u16, Vec<u8>), Vec<Binding>> = Default::default();
    let now = unix_now();
    let mut buf = Vec::new();
    loc.sweep(
        |b, text| {
            if b.expires > now
                && b.flags == 0
                && let Some((aor, contact, call_id)) = b.parts(text)
            {
                aors.entry((b.domain, aor.to_vec()))
                    .or_default()
                    .push(Binding {
                        contact: contact.to_vec(),
                        call_id: call_id.to_vec(),
                        meta: b.meta(),
                    });
            }
            crate::modules::usrloc::table::Sweep::Keep
        },
        &mut buf,
    );
    // The versions this table holds are of the lost store: unknown now
    // (a save reads the AOR from Redis once, the feed's entries apply).
    loc.sweep(
        |b, _| {
            b.version = 0;
            crate::modules::usrloc::table::Sweep::Keep
        },
        &mut buf,
    );
    let mut written = 0;
    for ((domain, aor), bindings) in &aors {
        let Some(table) = tables.get(usize::from(*domain)) else {
            continue;
        };
        let write: Vec<&Binding> = bindings.iter().collect();
        if let store::Applied::Done(_) =
            store::apply(c, loc.node, table, aor, 0, &[], &write, bindings)?
        {
            written += 1;
        }
    }
    Ok((epoch, written))
}

/// The node fell behind the feeds: a snapshot again (the feeds' counts
/// and tails noted first), applied over the table; bindings of AORs Redis
/// no longer has removed. The feeds' counts and positions, and the AORs
/// loaded.
type Reloaded = (Vec<u64>, Vec<String>, usize);

fn reload(
    c: &mut RedisConn,
    loc: &Location,
    tables: &[String],
    scratch: &mut Vec<u8>,
) -> Result<Reloaded, DbError> {
    let started = unix_now();
    let counts = store::feed_counts(c)?.into_iter().map(|(a, _)| a).collect();
    let tails = store::feed_tails(c)?;
    let mut seen: std::collections::HashSet<(u16, Vec<u8>)> = Default::default();
    let n = store::snapshot(c, unix_now(), |table, aor, version, bindings| {
        if let Some(domain) = tables.iter().position(|t| t == table) {
            cache(loc, domain as u16, aor, version, bindings, scratch);
            seen.insert((domain as u16, aor.to_vec()));
        }
    })?;
    let mut buf = Vec::new();
    loc.sweep(
        |b, text| match b.parts(text) {
            // Saved here while the snapshot was read: kept.
            Some((aor, _, _))
                if b.flags == 0
                    && b.updated < started
                    && !seen.contains(&(b.domain, aor.to_vec())) =>
            {
                crate::modules::usrloc::table::Sweep::Remove
            }
            _ => crate::modules::usrloc::table::Sweep::Keep,
        },
        &mut buf,
    );
    Ok((counts, tails, n))
}

//! usrloc's table at start (carved, loaded from the database) and its
//! upkeep on a thread of the timer process: expiry, and in write-back
//! mode the database writes.

use std::time::{Duration, Instant};

use super::UlCounter;
use super::db::Db;
use super::table::{DELETED, DIRTY, Sweep};
use super::writer::RECORD_BYTES;
use super::{DbMode, Location, Meta, unix_now};
use crate::cfg::Config;
use crate::modules::def::{Carved, Start};
use rser_shm::Carver;
use rser_shm::ring::Ring;

/// Share of the region given to the bindings: a quarter beside tm, else
/// half.
const SHARE_WITH_TM: usize = 4;
const SHARE: usize = 2;
/// db_mode 1's queue: a 16th of the region, within bounds (4,096 changes
/// with the default 64 MiB, 65,536 from 256 MiB).
const QUEUE_SHARE: usize = 16;
const QUEUE_MIN: usize = 64;
const QUEUE_MAX: usize = 65_536;

/// Whether the config needs the table: the script saves or looks up.
pub fn used(config: &Config) -> bool {
    !super::tables(&config.program).is_empty()
}

/// In the master: the table carved and filled from the database.
pub fn carve(config: &Config, carver: &mut Carver<'_>, region: usize) -> Result<Carved, String> {
    let share = if config.has_module("tm") {
        SHARE_WITH_TM
    } else {
        SHARE
    };
    let mut location = Location::carve(carver, region / share)
        .ok_or_else(|| format!("shared memory of {region} bytes is too small for usrloc"))?;
    load(config, &location)?;
    let ul = super::Params::from_config(config)?;
    if let (DbMode::Shared, Some(url)) = (ul.db_mode, &ul.db_url) {
        super::redis::feed::load(url, &super::tables(&config.program), &mut location, carver)?;
    }
    let mut queued = String::new();
    if ul.db_mode == DbMode::WriteThrough {
        let cells = (region / QUEUE_SHARE / RECORD_BYTES).clamp(QUEUE_MIN, QUEUE_MAX);
        let ring = Ring::carve(carver, cells, RECORD_BYTES)
            .ok_or("shared memory too small for usrloc's queue to the database")?;
        queued = format!(", a queue of {} changes to the database", ring.capacity());
        location.queue = Some(ring);
    }
    Ok(Carved {
        capacity: format!(
            "{} bindings of {} bytes{queued}",
            location.capacity(),
            Location::bytes_per_binding()
        ),
        shm: Box::new(location),
    })
}

/// Loads the database into the table before the workers start; a
/// database that cannot be opened stops the start.
pub fn load(config: &Config, location: &Location) -> Result<(), String> {
    let ul = super::Params::from_config(config)?;
    // The names were checked when the script compiled.
    let tables = super::tables(&config.program);
    let (Some(url), true) = (
        &ul.db_url,
        !matches!(ul.db_mode, DbMode::Memory | DbMode::Shared),
    ) else {
        return Ok(());
    };
    let timeout = crate::db::timeout(config, &crate::db::served(url)?);
    let mut db = Db::open(url, &tables, ul.use_domain, timeout)?;
    if ul.db_mode == DbMode::DbOnly {
        return Ok(()); // read per request, never held here
    }
    let now = unix_now();
    let mut scratch = Vec::new();
    let mut loaded = 0usize;
    for (domain, t) in tables.iter().enumerate() {
        for row in db.load(t, now)? {
            let aor = location.aor(domain as u16, &row.aor);
            let mut l = location.lock(&aor);
            location
                .insert(
                    &mut l,
                    &aor,
                    &row.contact,
                    &row.call_id,
                    row.meta,
                    0,
                    &mut scratch,
                )
                .map_err(
                    |_| "usrloc: the database holds more bindings than shared memory (raise -m)",
                )?;
            loaded += 1;
        }
    }
    log::info!("usrloc: {loaded} bindings loaded from {url}");
    Ok(())
}

/// The upkeep thread, and in db_mode 1 the writer's beside it.
pub fn run(s: &Start<'_>) {
    let Some(loc) = s.shm.and_then(|m| m.downcast_ref::<Location>()).copied() else {
        return;
    };
    let Ok(ul) = super::Params::from_config(s.config) else {
        return;
    };
    let tables = super::tables(&s.config.program);
    std::thread::scope(|scope| {
        if ul.db_mode == DbMode::WriteThrough {
            scope.spawn(|| super::writer::run(loc, s, &ul, &tables));
        }
        if let (DbMode::Shared, Some(url)) = (ul.db_mode, &ul.db_url) {
            scope.spawn(|| super::redis::feed::run(loc, s, url, &tables));
        }
        upkeep(loc, s);
    });
}

/// usrloc's upkeep, on a thread of the timer process: every second,
/// expired bindings go; in write-back mode, every `timer_interval`
/// seconds the changes go to the database in one transaction.
fn upkeep(loc: Location, s: &Start<'_>) {
    let config = s.config;
    let Ok(ul) = super::Params::from_config(config) else {
        return;
    };
    let tables = super::tables(&config.program);
    let url = match (&ul.db_url, ul.db_mode) {
        (Some(url), DbMode::WriteBack | DbMode::WriteThrough | DbMode::DbOnly) => {
            Some(url.as_str())
        }
        _ => None,
    };
    let timeout = url
        .and_then(|u| crate::db::served(u).ok())
        .map_or(Duration::from_secs(2), |u| crate::db::timeout(config, &u));
    let mut db: Option<Db> = None;
    // Changes a failed write-back left, written first next time (then
    // the newer ones over them).
    let mut upserts: Vec<(u16, Vec<u8>, usize, usize, Meta)> = Vec::new();
    let mut deletes: Vec<(u16, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut err_log = crate::server::log_limit::LogLimit::default();
    let interval = Duration::from_secs(ul.timer_interval);
    let mut next_write = Instant::now() + interval;
    let mut buf = Vec::new();
    // db_mode 2 writes what is marked before the process stops.
    let _draining = (ul.db_mode == DbMode::WriteBack).then(crate::server::drain::Writer::register);
    let mut stopped = false;
    loop {
        if stopped {
            return;
        }
        for _ in 0..10 {
            if crate::server::drain::stopping() {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let now = unix_now();
        let write_now = Instant::now() >= next_write || stopped;
        let mut expired = 0u64;
        let write_back = ul.db_mode == DbMode::WriteBack && write_now;
        loc.sweep(
            |b, text| {
                if b.flags & DELETED != 0 {
                    // A shared AOR's removal, kept a while (`replace`).
                    if b.version != 0 {
                        return match b.expires <= now {
                            true => Sweep::Remove,
                            false => Sweep::Keep,
                        };
                    }
                    if !write_back {
                        return Sweep::Keep;
                    }
                    if let Some((aor, contact, _)) = b.parts(text) {
                        deletes.push((b.domain, aor.to_vec(), contact.to_vec()));
                    }
                    return Sweep::Remove;
                }
                if b.expires <= now {
                    expired += 1;
                    return Sweep::Remove;
                }
                if write_back && b.flags & DIRTY != 0 {
                    if let Some((aor, contact, _)) = b.parts(text) {
                        upserts.push((b.domain, text.to_vec(), aor.len(), contact.len(), b.meta()));
                    }
                    b.flags &= !DIRTY;
                }
                Sweep::Keep
            },
            &mut buf,
        );
        if expired > 0 {
            s.counts.add(UlCounter::Expired as usize, expired);
        }
        if !write_now {
            continue;
        }
        next_write = Instant::now() + interval;
        let Some(url) = url else { continue };
        if db.is_none() {
            match Db::open(url, &tables, ul.use_domain, timeout) {
                Ok(d) => db = Some(d),
                Err(e) => {
                    s.counts.add(UlCounter::DbErrors as usize, 1);
                    log::error!("usrloc: {e}");
                    continue;
                }
            }
        }
        let Some(d) = db.as_mut() else { continue };
        let r = d.batch(|db| {
            // Deletes first: a contact unregistered then registered again
            // within one interval is a tombstone and a new binding.
            for (domain, aor, contact) in &deletes {
                let Some(t) = tables.get(*domain as usize) else {
                    continue;
                };
                db.delete(t, aor, contact)?;
            }
            for (domain, text, a, c, meta) in &upserts {
                let Some(t) = tables.get(*domain as usize) else {
                    continue;
                };
                db.upsert(t, &text[..*a], &text[*a..a + c], &text[a + c..], meta)?;
            }
            for t in &tables {
                db.delete_expired(t, now)?;
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                let n = upserts.len() + deletes.len();
                s.counts.add(UlCounter::DbWritten as usize, n as u64);
                upserts.clear();
                deletes.clear();
            }
            Err(e) => {
                db = None;
                s.counts.add(UlCounter::DbErrors as usize, 1);
                if let Some(held) = err_log.allow(crate::server::worker::now_ms()) {
                    log::error!(
                        "usrloc: {} changes wait for the database: {e}{}",
                        upserts.len() + deletes.len(),
                        crate::server::log_limit::held_text(held)
                    );
                }
                // Bounded: the table's own size (a binding is written
                // once per interval at most, its last state winning).
                if upserts.len() + deletes.len() > 4 * loc.capacity() {
                    let lost = upserts.len() + deletes.len();
                    upserts.clear();
                    deletes.clear();
                    log::error!(
                        "usrloc: {lost} changes dropped: the database has been gone too long"
                    );
                }
                // Sooner than a whole interval.
                next_write = Instant::now() + interval.min(Duration::from_secs(1));
            }
        }
    }
}

//! usrloc's table at start (carved, loaded from the database) and its
//! upkeep on a thread of the timer process: expiry, and in write-back
//! mode the database writes.

use std::time::{Duration, Instant};

use super::UlCounter;
use super::db::Db;
use super::table::{DELETED, DIRTY, Sweep};
use super::{DbMode, Location, Meta, unix_now};
use crate::cfg::Config;
use crate::modules::def::{Carved, Start};
use rser_shm::Carver;

/// Share of the region given to the bindings: a quarter beside tm, else
/// half.
const SHARE_WITH_TM: usize = 4;
const SHARE: usize = 2;

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
    let location = Location::carve(carver, region / share)
        .ok_or_else(|| format!("shared memory of {region} bytes is too small for usrloc"))?;
    load(config, &location)?;
    Ok(Carved {
        capacity: format!(
            "{} bindings of {} bytes",
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
    let (Some(url), true) = (&ul.db_url, ul.db_mode != DbMode::Memory) else {
        return Ok(());
    };
    let db = Db::open(url, &tables)?;
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

/// The upkeep thread.
pub fn run(s: &Start<'_>) {
    let Some(loc) = s.shm.and_then(|m| m.downcast_ref::<Location>()).copied() else {
        return;
    };
    upkeep(loc, s);
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
    let mut db = match (&ul.db_url, ul.db_mode) {
        (Some(url), DbMode::WriteBack | DbMode::WriteThrough) => match Db::open(url, &tables) {
            Ok(db) => Some(db),
            Err(e) => {
                log::error!("{e}");
                None
            }
        },
        _ => None,
    };
    let interval = Duration::from_secs(ul.timer_interval);
    let mut next_write = Instant::now() + interval;
    let mut buf = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = unix_now();
        let write_now = Instant::now() >= next_write;
        let mut upserts: Vec<(u16, Vec<u8>, usize, usize, Meta)> = Vec::new();
        let mut deletes: Vec<(u16, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut expired = 0u64;
        let write_back = ul.db_mode == DbMode::WriteBack && write_now;
        loc.sweep(
            |b, text| {
                if b.flags & DELETED != 0 {
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
        let Some(db) = db.as_mut() else { continue };
        let r = db.batch(|db| {
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
        if let Err(e) = r {
            s.counts.add(UlCounter::DbErrors as usize, 1);
            log::error!("{e}");
        }
    }
}

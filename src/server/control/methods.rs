//! The control interface's methods over shared memory: what the JSON-RPC
//! layer (`rpc.rs`) calls. Reads are lock-free (counters) or take one lock
//! stripe at a time (usrloc), so a control request never holds up a worker
//! for long.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::prometheus::Sample;
use super::rpc::{METHOD_NOT_FOUND, Methods, NOT_AVAILABLE, NOT_FOUND, Params, RpcError};
use crate::modules::dispatcher::list::MAX_DESTINATIONS;
use crate::modules::dispatcher::runtime::DsParams;
use crate::modules::usrloc::table::{DELETED, Sweep};
use crate::modules::usrloc::writer::Change;
use crate::modules::usrloc::{self, DbMode, unix_now};
use crate::server::shared::{Shared, counter_names};

/// Every method, for `system.listMethods`.
pub const METHODS: &[&str] = &[
    "core.version",
    "core.uptime",
    "core.ps",
    "stats.get",
    "stats.get_statistics",
    "ul.dump",
    "ul.lookup",
    "ul.rm",
    "ul.rm_contact",
    "ul.add",
    "tm.stats",
    "cfg.check",
    "dispatcher.list",
    "dispatcher.reload",
    "dispatcher.set_state",
    "tm.t_uac",
    "dst_blocklist.view",
    "dst_blocklist.delete",
    "htable.get",
    "htable.sv",
    "htable.seti",
    "htable.delete",
    "htable.dump",
    "htable.reset",
    "htable.listTables",
    "htable.flush",
    "pike.top",
    "pl.stats",
    "pl.get_pipes",
    "pl.set_pipe",
    "pl.get_pid",
    "pl.set_pid",
    "rl.stats",
    "rl.get_pipes",
    "rl.set_pipe",
    "rl.get_queues",
    "rl.get_pid",
    "rl.set_pid",
    "core.tcp_info",
    "tls.list",
    "tls.reload",
    "system.listMethods",
];

pub struct Control<'a> {
    pub shared: &'a Shared,
    /// The config file the server runs, for `cfg.check` without a path.
    pub config_path: Option<PathBuf>,
    /// Unix seconds at start.
    pub started: u64,
    pub ul_tables: Vec<String>,
    /// htable's declared tables.
    pub ht_tables: Vec<crate::modules::htable::TableDef>,
    pub ul: usrloc::Params,
    /// Where `dispatcher.reload` reads the list.
    pub ds_params: Option<DsParams>,
    /// The running config (`tls.reload` reads its tls parameters).
    pub config: Option<&'a crate::cfg::Config>,
}

/// The group of the shared tables' use (levels, not counts).
pub const SHM_GROUP: &str = "shm";

/// The group `name` belongs to in `stats.get`: `core`, the module whose
/// name prefixes a counter's, or `shm`; `None` for any other name.
pub fn group(name: &str) -> Option<&'static str> {
    ["core", SHM_GROUP]
        .into_iter()
        .chain(crate::modules::MODULES.iter().map(|m| m.name))
        .find(|g| *g == name)
}

/// The group a counter belongs to, from its name's prefix: the module's
/// name, else `core`.
fn group_of(name: &str) -> &'static str {
    crate::modules::MODULES
        .iter()
        .map(|m| m.name)
        .find(|g| name.strip_prefix(g).is_some_and(|r| r.starts_with('_')))
        .unwrap_or("core")
}

impl Control<'_> {
    /// Every counter, and the use of each shared table.
    pub fn samples(&self) -> Vec<Sample> {
        let s = self.shared;
        let mut out: Vec<Sample> = counter_names()
            .iter()
            .enumerate()
            .map(|(i, n)| Sample {
                group: group_of(n),
                name: (*n).to_string(),
                value: s.counters.total(i),
                gauge: false,
            })
            .collect();
        let mut gauge = |name: &str, value: usize| {
            out.push(Sample {
                group: SHM_GROUP,
                name: name.to_string(),
                value: value as u64,
                gauge: true,
            })
        };
        if let Some(tm) = &s.tm() {
            gauge("tm_transactions_live", tm.live());
            gauge("tm_transactions_capacity", tm.capacity());
            gauge("tm_pool_free_blocks", tm.pool_free_blocks());
        }
        if let Some(ds) = s.dispatcher() {
            gauge("dispatcher_destinations", ds.destinations());
            gauge("dispatcher_destinations_capacity", MAX_DESTINATIONS);
        }
        if let Some(b) = &s.blocklist() {
            gauge(
                "tm_blocklist_entries",
                b.list(crate::server::worker::now_ms()).len(),
            );
            gauge("tm_blocklist_capacity", b.capacity());
        }
        if let Some(ul) = &s.usrloc() {
            gauge("usrloc_bindings_live", ul.live());
            gauge("usrloc_bindings_capacity", ul.capacity());
        }
        out
    }

    fn stats(&self, group: Option<&str>) -> Result<Value, RpcError> {
        // Kamailio writes `stats.get tm:` or `all`; take those too.
        let group = group
            .map(|g| g.trim_end_matches(':'))
            .filter(|g| *g != "all");
        let mut groups: Map<String, Value> = Map::new();
        for s in self.samples() {
            if group.is_some_and(|g| g != s.group) {
                continue;
            }
            let entry = groups
                .entry(s.group.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(s.name, json!(s.value));
            }
        }
        match group {
            Some(g) if groups.is_empty() => Err(RpcError::new(
                NOT_FOUND,
                format!("no statistics group '{g}'"),
            )),
            _ => Ok(Value::Object(groups)),
        }
    }

    /// Kamailio's `stats.get_statistics`: `all`, `group:` or names
    /// (`group:name` or `name`), as `group:name = value` lines.
    fn get_statistics(&self, p: &Params) -> Result<Value, RpcError> {
        let mut wanted = Vec::new();
        // Positional names (kamcmd's), or one named `statistics` (a
        // name or a list).
        for i in 0..64 {
            match p.get(i, "statistics") {
                Some(Value::String(s)) => wanted.push(s.as_str()),
                Some(Value::Array(a)) => wanted.extend(a.iter().filter_map(Value::as_str)),
                _ => break,
            }
            if p.is_named() {
                break;
            }
        }
        if wanted.is_empty() {
            wanted.push("all");
        }
        let samples = self.samples();
        let mut out = Vec::new();
        for w in wanted {
            for s in &samples {
                let hit = match w.split_once(':') {
                    _ if w == "all" => true,
                    Some((g, "")) => s.group == g,
                    Some((g, n)) => s.group == g && s.name == n,
                    None => s.name == w,
                };
                if hit {
                    out.push(json!(format!("{}:{} = {}", s.group, s.name, s.value)));
                }
            }
        }
        if out.is_empty() {
            return Err(RpcError::new(NOT_FOUND, "no such statistic"));
        }
        Ok(Value::Array(out))
    }

    pub(super) fn location(&self) -> Result<&usrloc::Location, RpcError> {
        if self.ul.db_mode == usrloc::DbMode::DbOnly {
            return Err(RpcError::new(
                NOT_AVAILABLE,
                "usrloc db_mode 3: the bindings are in the database's location table only (query it there)",
            ));
        }
        self.shared
            .module_shm::<usrloc::Location>("usrloc")
            .ok_or_else(|| RpcError::new(NOT_AVAILABLE, "the script keeps no user location"))
    }

    pub(super) fn table_index(&self, table: Option<&str>) -> Result<u16, RpcError> {
        match table {
            None if !self.ul_tables.is_empty() => Ok(0),
            None => Err(RpcError::new(NOT_AVAILABLE, "no location table")),
            Some(t) => self
                .ul_tables
                .iter()
                .position(|n| n == t)
                .map(|i| i as u16)
                .ok_or_else(|| RpcError::new(NOT_FOUND, format!("no location table '{t}'"))),
        }
    }

    pub(super) fn ul_dump(&self) -> Result<Value, RpcError> {
        let loc = self.location()?;
        let now = unix_now();
        let mut tables: Vec<Map<String, Value>> =
            self.ul_tables.iter().map(|_| Map::new()).collect();
        let mut buf = Vec::new();
        loc.sweep(
            |b, text| {
                if b.flags & DELETED != 0 || b.expires <= now {
                    return Sweep::Keep;
                }
                let (Some((aor, contact, call_id)), Some(t)) =
                    (b.parts(text), tables.get_mut(b.domain as usize))
                else {
                    return Sweep::Keep;
                };
                let m = b.meta();
                let entry = t
                    .entry(String::from_utf8_lossy(aor).into_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = entry {
                    list.push(contact_json(contact, call_id, &m, now));
                }
                Sweep::Keep
            },
            &mut buf,
        );
        let out: Map<String, Value> = self
            .ul_tables
            .iter()
            .cloned()
            .zip(tables.into_iter().map(Value::Object))
            .collect();
        Ok(Value::Object(out))
    }

    pub(super) fn ul_lookup(&self, aor: &str, table: Option<&str>) -> Result<Value, RpcError> {
        let loc = self.location()?;
        let domain = self.table_index(table)?;
        let key = loc.aor(domain, aor.as_bytes());
        let now = unix_now();
        let mut buf = Vec::new();
        let l = loc.lock(&key);
        let found = loc.find(&l, &key, Some(now), &mut buf);
        drop(l);
        if found.is_empty() {
            return Err(RpcError::new(NOT_FOUND, format!("no binding for '{aor}'")));
        }
        let list: Vec<Value> = found
            .iter()
            .map(|f| {
                contact_json(
                    &buf[f.contact.0..f.contact.1],
                    &buf[f.call_id.0..f.call_id.1],
                    &f.meta,
                    now,
                )
            })
            .collect();
        Ok(json!({"aor": aor, "contacts": list}))
    }

    /// Removes every binding of an AOR, as `Contact: *` would, and from the
    /// database as db_mode says.
    /// Whether `ul.add`/`ul.rm` may change the table here: not while it
    /// is a cache of the Redis store (a change must go through Redis).
    pub(super) fn changeable(&self) -> Result<(), RpcError> {
        match self.ul.db_mode {
            usrloc::DbMode::Shared => Err(RpcError::new(
                NOT_AVAILABLE,
                "usrloc shares its table through Redis: ul.add and ul.rm would change this node's cache only (not served yet)",
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn ul_rm(&mut self, aor: &str, table: Option<&str>) -> Result<Value, RpcError> {
        self.changeable()?;
        let loc = *self.location()?;
        let domain = self.table_index(table)?;
        let key = loc.aor(domain, aor.as_bytes());
        let mut buf = Vec::new();
        let mut l = loc.lock(&key);
        let found = loc.find(&l, &key, None, &mut buf);
        let tombstone = self.ul.db_mode == DbMode::WriteBack;
        for f in &found {
            loc.remove(&mut l, f.idx, tombstone);
        }
        drop(l);
        if found.is_empty() {
            return Err(RpcError::new(NOT_FOUND, format!("no binding for '{aor}'")));
        }
        let changes: Vec<Change<'_>> = found
            .iter()
            .map(|f| Change::Delete {
                domain,
                aor: aor.as_bytes(),
                contact: &buf[f.contact.0..f.contact.1],
            })
            .collect();
        self.write_through(&changes)?;
        Ok(json!({"aor": aor, "removed": found.len()}))
    }

    /// In db_mode 1, what changed queued for the database (db_mode 2's
    /// write-back finds it marked).
    pub(super) fn write_through(&mut self, changes: &[Change<'_>]) -> Result<(), RpcError> {
        let loc = *self.location()?;
        let now = crate::server::worker::now_ms();
        for c in changes {
            crate::modules::usrloc::writer::queue(&loc, c, now).map_err(|e| {
                RpcError::new(
                    super::rpc::INTERNAL_ERROR,
                    format!("changed in memory, not queued for the database: {e:?}"),
                )
            })?;
        }
        Ok(())
    }

    fn tm_stats(&self) -> Result<Value, RpcError> {
        let tm = self
            .shared
            .tm()
            .ok_or_else(|| RpcError::new(NOT_AVAILABLE, "tm is not loaded"))?;
        let tm_counters: Map<String, Value> = self
            .samples()
            .into_iter()
            .filter(|s| s.group == "tm")
            .map(|s| (s.name, json!(s.value)))
            .collect();
        let count = |name: &str| tm_counters.get(name).cloned().unwrap_or(json!(0));
        Ok(json!({
            // Kamailio's names, where rser counts the same thing.
            "current": tm.live(),
            "total": count("tm_transactions"),
            "rpl_generated": count("tm_local_replies"),
            "capacity": tm.capacity(),
            "pool_free_blocks": tm.pool_free_blocks(),
            "counters": tm_counters,
        }))
    }

    fn cfg_check(&self, path: Option<&str>) -> Result<Value, RpcError> {
        let path = match (path, &self.config_path) {
            (Some(p), _) => PathBuf::from(p),
            (None, Some(p)) => p.clone(),
            (None, None) => return Err(RpcError::params("give the config's 'path'")),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| RpcError::new(NOT_FOUND, format!("{}: {e}", path.display())))?;
        Ok(match crate::cfg::load_from(&text, Some(&path)) {
            Ok(_) => json!({"path": path.display().to_string(), "ok": true, "errors": []}),
            Err(errors) => {
                let list: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}:{e}", path.display()))
                    .collect();
                json!({"path": path.display().to_string(), "ok": false, "errors": list})
            }
        })
    }

    fn ps(&self) -> Value {
        let mut list = vec![json!({"pid": std::os::unix::process::parent_id(), "role": "master"})];
        for (pid, role, slot) in self.shared.processes.list() {
            list.push(json!({"pid": pid, "role": role, "slot": slot}));
        }
        Value::Array(list)
    }
}

fn contact_json(contact: &[u8], call_id: &[u8], m: &usrloc::Meta, now: u64) -> Value {
    let q = (m.q != usrloc::table::Q_NONE).then(|| f64::from(m.q) / 1000.0);
    json!({
        "contact": String::from_utf8_lossy(contact),
        "expires": m.expires.saturating_sub(now),
        "q": q,
        "call_id": String::from_utf8_lossy(call_id),
        "cseq": m.cseq,
        "cflags": m.cflags,
        "last_modified": m.updated,
    })
}

/// `ul.dump` as Kamailio's usrloc answers it (`Domains`, `Domain`,
/// `AoRs`, `Info`, `Contacts`, `Contact` with Kamailio's field names), from
/// rser's table-to-AORs map; fields rser does not keep (User-Agent,
/// Received, Path, Socket, Ruid...) are left out rather than made up.
fn kamailio_ul_dump(tables: &Map<String, Value>, capacity: usize) -> Value {
    let domains: Vec<Value> = tables
        .iter()
        .map(|(table, aors)| {
            let aors = aors.as_object().cloned().unwrap_or_default();
            let records = aors.len();
            let list: Vec<Value> = aors
                .into_iter()
                .map(|(aor, contacts)| {
                    let contacts: Vec<Value> = contacts
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            json!({"Contact": {
                                "Address": c["contact"],
                                "Expires": c["expires"],
                                // Kamailio's -1: no q given.
                                "Q": if c["q"].is_null() { json!(-1) } else { c["q"].clone() },
                                "Call-ID": c["call_id"],
                                "CSeq": c["cseq"],
                                "CFlags": c["cflags"],
                                "Last-Modified": c["last_modified"],
                            }})
                        })
                        .collect();
                    json!({"Info": {"AoR": aor, "Contacts": contacts}})
                })
                .collect();
            json!({"Domain": {
                "Domain": table,
                "Size": capacity,
                "AoRs": list,
                "Stats": {"Records": records},
            }})
        })
        .collect();
    json!({ "Domains": domains })
}

impl Methods for Control<'_> {
    fn call(&mut self, method: &str, p: &Params) -> Result<Value, RpcError> {
        match method {
            "core.version" => Ok(json!({"name": "rser", "version": env!("CARGO_PKG_VERSION")})),
            "core.uptime" => {
                let now = unix_now();
                Ok(
                    json!({"now": now, "up_since": self.started, "uptime": now.saturating_sub(self.started)}),
                )
            }
            "core.ps" => Ok(self.ps()),
            "stats.get" => self.stats(p.str(0, "group")?),
            "stats.get_statistics" => self.get_statistics(p),
            m if m.starts_with("pl.") => super::pl::call(self.shared.module_shm("pipelimit"), m, p),
            "rl.get_queues" => super::pl::queues(self.config),
            m if m.starts_with("rl.") => {
                let same = m.replacen("rl.", "pl.", 1);
                super::pl::call(self.shared.module_shm("ratelimit"), &same, p)
            }
            "pike.top" => super::pike::top(self.shared.module_shm("pike"), p.str(0, "which")?),
            m if m.starts_with("htable.") => super::htable::Tables {
                items: self.shared.module_shm("htable"),
                defs: &self.ht_tables,
            }
            .call(m, p),
            "ul.dump" => {
                let capacity = self.location()?.capacity();
                match self.ul_dump()? {
                    Value::Object(tables) => Ok(kamailio_ul_dump(&tables, capacity)),
                    other => Ok(other),
                }
            }
            "ul.lookup" => self.ul_lookup(p.required_str(0, "aor")?, p.str(1, "table")?),
            "ul.rm" => self.ul_rm(p.required_str(0, "aor")?, p.str(1, "table")?),
            "ul.rm_contact" => self.ul_rm_contact(
                p.required_str(0, "table")?,
                p.required_str(1, "aor")?,
                p.required_str(2, "contact")?,
            ),
            "ul.add" => {
                let number = |i: usize, name: &str| -> Result<f64, RpcError> {
                    match p.get(i, name) {
                        Some(Value::Number(n)) => n.as_f64(),
                        Some(Value::String(s)) => s.trim().parse().ok(),
                        _ => None,
                    }
                    .ok_or_else(|| RpcError::params(format!("'{name}' must be a number")))
                };
                self.ul_add(
                    p.required_str(0, "table")?,
                    p.required_str(1, "aor")?,
                    p.required_str(2, "contact")?,
                    number(3, "expires")?,
                    number(4, "q")?,
                )
            }
            "tm.stats" => self.tm_stats(),
            "cfg.check" => self.cfg_check(p.str(0, "path")?),
            // Answered by the control loop when its transaction ends.
            "tm.t_uac" => Err(RpcError::new(
                super::rpc::INVALID_REQUEST,
                "tm.t_uac is a request of its own, not in a batch",
            )),
            "dst_blocklist.view" => super::blocklist::view(self.shared.blocklist().as_ref()),
            "dst_blocklist.delete" => {
                super::blocklist::delete(self.shared.blocklist().as_ref(), p.str(0, "address")?)
            }
            "dispatcher.list" => super::ds::list(self.shared.dispatcher()),
            "dispatcher.reload" => {
                super::ds::reload(self.shared.dispatcher(), self.ds_params.as_ref())
            }
            "dispatcher.set_state" => {
                let state = p.required_str(0, "state")?;
                let set = match p.get(1, "set") {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.parse().ok(),
                    _ => None,
                }
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| RpcError::params("'set' must be a set id"))?;
                let uri = p.required_str(2, "uri")?;
                super::ds::set_state(self.shared.dispatcher(), state, set, uri)
            }
            "core.tcp_info" => super::streams::tcp_info(self.shared.streams.as_ref()),
            "tls.list" => super::streams::tls_list(self.shared.streams.as_ref()),
            "tls.reload" => super::streams::tls_reload(self.shared.streams.as_ref(), self.config),
            "system.listMethods" => Ok(json!(METHODS)),
            _ => Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("no method '{method}'"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fall_in_groups_by_prefix() {
        assert_eq!(group_of("tm_transactions"), "tm");
        assert_eq!(group_of("sl_replies"), "sl");
        assert_eq!(group_of("usrloc_expired"), "usrloc");
        assert_eq!(group_of("received"), "core");
        assert_eq!(group_of("tmx"), "core");
    }

    #[test]
    fn every_counter_is_reported_once() {
        let config = crate::cfg::load(
            "loadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
             route { save(\"location\"); }\n",
        )
        .unwrap();
        let shared = Shared::create(8 << 20, 3, Some(&config)).unwrap();
        shared.count(0, crate::server::shared::Counter::Received);
        let c = Control {
            shared: &shared,
            config_path: None,
            started: 0,
            ul_tables: vec!["location".into()],
            ht_tables: Vec::new(),
            ul: usrloc::Params::default(),
            ds_params: None,
            config: None,
        };
        let samples = c.samples();
        for n in counter_names() {
            assert_eq!(samples.iter().filter(|s| s.name == *n).count(), 1, "{n}");
        }
        let v = c.stats(Some("core")).unwrap();
        assert_eq!(v["core"]["received"], 1);
        assert!(v.get("tm").is_none());
        assert_eq!(c.stats(Some("nope:")).unwrap_err().code, NOT_FOUND);
        let lines = c
            .get_statistics(&Params::of(Some(&json!(["core:received", "tm:"]))))
            .unwrap();
        assert_eq!(lines[0], "core:received = 1", "{lines}");
        assert!(
            lines.as_array().unwrap()[1..]
                .iter()
                .all(|l| l.as_str().unwrap().starts_with("tm:")),
            "{lines}"
        );
        let all = c.get_statistics(&Params::none()).unwrap();
        assert_eq!(all.as_array().unwrap().len(), c.samples().len());
        let all = c.stats(None).unwrap();
        assert!(all["shm"]["tm_transactions_capacity"].as_u64().unwrap() > 0);
    }
}

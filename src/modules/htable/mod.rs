//! htable (Kamailio's): named tables of keys and values in shared memory,
//! read and written by the script as `$sht(table=>key)`, each declared
//! with `modparam("htable", "htable", "name=>size=8;autoexpire=300")`.
//! Items in all tables share one store (`table.rs`); a table's
//! `autoexpire` drops an item that many seconds after it was last set
//! (`updateexpire=0`: after it was first set), and its `initval` is what a
//! missing key reads as. The timer process sweeps expired items every
//! `timer_interval` seconds; a read never returns one.

pub mod table;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Pv;
use crate::cfg::{Config, ParamValue};
use crate::modules::def::{
    Carved, Cx, Hooks, Module, ParamType, Regexes, Routes, Runtime, Start, action, bad_args,
};
use crate::script::MsgCtx;
use crate::script::ctx::VarValue;

use table::Items;

crate::server::shared::counters! { HtCounter, COUNTER_NAMES, {
    /// A `$sht` assignment found the store full (not set).
    Full => "htable_full",
    Expired => "htable_expired",
}}

/// Everywhere a script runs, onsend_route included.
const EVERYWHERE: Routes = Routes::ANY.or(Routes::ONSEND);

const RM_NAME_RE: u8 = 0;
const RM_VALUE_RE: u8 = 1;
const RESET: u8 = 2;

pub static MODULE: Module = Module {
    name: "htable",
    params: &[
        ("htable", ParamType::Str),
        ("timer_interval", ParamType::Int),
        ("db_url", ParamType::Str),
        ("enable_dmq", ParamType::Int),
    ],
    actions: &[
        action(
            "sht_rm_name_re",
            RM_NAME_RE,
            (1, 1),
            table_regex,
            Routes::ANY,
        ),
        action(
            "sht_rm_value_re",
            RM_VALUE_RE,
            (1, 1),
            table_regex,
            Routes::ANY,
        ),
        action("sht_reset", RESET, (1, 1), table_only, EVERYWHERE),
    ],
    counters: COUNTER_NAMES,
    hooks: Some(&Hooks::tables_and_runtime(carve, start)),
    unapplied: &["db_url", "enable_dmq"],
    check: Some(check),
};

/// A declared table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    pub name: String,
    /// Kamailio's `size`: 2^size slots; here it sizes the table's share
    /// of the store.
    pub size: u32,
    /// Seconds an item lives after being set (0: for ever).
    pub autoexpire: u64,
    pub update_expire: bool,
    /// What a missing key reads as (`$null` if unset).
    pub initval: Option<i64>,
}

/// Items a table of `size` may hold: 16 a slot, within bounds.
fn items_for(size: u32) -> usize {
    (16usize << size.min(16)).clamp(256, 1 << 20)
}

/// The declared tables, in order; an error names what is wrong.
pub fn tables(config: &Config) -> Result<Vec<TableDef>, String> {
    let mut out: Vec<TableDef> = Vec::new();
    for (m, p, v) in &config.modparams {
        let (true, "htable", ParamValue::Str(def)) = (*m == "htable", *p, v) else {
            continue;
        };
        let t = parse_def(def)?;
        if out.iter().any(|o| o.name == t.name) {
            return Err(format!("htable: table '{}' is declared twice", t.name));
        }
        out.push(t);
    }
    Ok(out)
}

fn parse_def(def: &str) -> Result<TableDef, String> {
    let (name, attrs) = def
        .split_once("=>")
        .ok_or_else(|| format!("htable: '{def}' is not name=>attributes"))?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("htable: '{name}' is not a table name"));
    }
    let mut t = TableDef {
        name: name.to_string(),
        size: 4,
        autoexpire: 0,
        update_expire: true,
        initval: None,
    };
    for attr in attrs.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        let (k, v) = (k.trim(), v.trim());
        let int = || {
            v.parse::<i64>()
                .map_err(|_| format!("htable '{name}': {k}={v} is not a number"))
        };
        match k {
            "size" => t.size = u32::try_from(int()?.clamp(2, 31)).unwrap_or(4),
            "autoexpire" => t.autoexpire = u64::try_from(int()?).unwrap_or(0),
            "updateexpire" => t.update_expire = int()? != 0,
            "initval" => t.initval = Some(int()?),
            "dmqreplicate" if int()? == 0 => {}
            "dbmode" if int()? == 0 => {}
            "dbtable" | "dbmode" | "dmqreplicate" | "cols" | "dbload" => {
                return Err(format!(
                    "htable '{name}': {k} is not supported (rser's htables are in memory only; no database load or save, no DMQ replication)"
                ));
            }
            _ => return Err(format!("htable '{name}': unknown attribute '{k}'")),
        }
    }
    Ok(t)
}

/// `rser -c`: the declarations parse, and every `$sht(name=>...)` the
/// script uses names a declared table.
fn check(config: &Config) -> Result<Vec<String>, String> {
    let defs = tables(config)?;
    let mut missing = Vec::new();
    config.program.each_pv(&mut |pv| {
        if let Pv::Sht(r) = pv {
            let name = r.table_name();
            if !defs.iter().any(|d| d.name == name) && !missing.contains(&name) {
                missing.push(name);
            }
        }
    });
    for (func, args) in config.program.module_calls() {
        if func.module_def().name != "htable" {
            continue;
        }
        if let Some(Param::Str(name)) = args.first()
            && !defs.iter().any(|d| *d.name == **name)
            && !missing.contains(&name.to_string())
        {
            missing.push(name.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "htable: $sht or an sht_ action uses table(s) {} not declared with modparam(\"htable\", \"htable\", \"name=>...\")",
            missing.join(", ")
        ));
    }
    Ok(Vec::new())
}

/// The store and the declared tables, as a process uses them.
#[derive(Clone)]
pub struct Htables {
    items: Items,
    defs: Arc<[TableDef]>,
    /// Each declared table's name as `$sht` refers to it (its index in
    /// the pseudo-variables' name table), in `defs`' order.
    ids: Arc<[Option<u16>]>,
}

thread_local! {
    /// This process's htables, set when its runtime starts (a thread of
    /// its own in tests, where several servers share a process).
    static CURRENT: RefCell<Option<Htables>> = const { RefCell::new(None) };
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

use crate::modules::usrloc::unix_now;

/// The declared table a `$sht` names (its index in the name table).
fn def_of(h: &Htables, name_index: u16) -> Option<(u16, &TableDef)> {
    let i = h.ids.iter().position(|id| *id == Some(name_index))?;
    Some((u16::try_from(i).ok()?, &h.defs[i]))
}

/// `$sht(table=>key)`'s value.
pub fn get(table: u16, key: &[u8]) -> VarValue {
    CURRENT.with_borrow(|h| {
        let Some(h) = h else {
            return VarValue::Null;
        };
        let Some((t, def)) = def_of(h, table) else {
            return VarValue::Null;
        };
        let v = BUF.with_borrow_mut(|buf| h.items.get(t, key, unix_now(), buf));
        match (v, def.initval) {
            (VarValue::Null, Some(n)) => VarValue::Int(n),
            (v, _) => v,
        }
    })
}

/// Why a `$sht` assignment did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// No htable runtime in this process (a bug, or `rser -c`).
    NotRunning,
    Full,
}

/// `$sht(table=>key) = value` (`$null` removes it).
pub fn set(table: u16, key: &[u8], value: &VarValue) -> Result<(), SetError> {
    CURRENT.with_borrow(|h| {
        let h = h.as_ref().ok_or(SetError::NotRunning)?;
        let (t, def) = def_of(h, table).ok_or(SetError::NotRunning)?;
        let now = unix_now();
        let expires = match def.autoexpire {
            0 => 0,
            secs => now + secs,
        };
        // updateexpire=0: an item keeps the expiry of its first set.
        let keep = def.autoexpire != 0 && !def.update_expire;
        BUF.with_borrow_mut(|buf| h.items.set(t, key, value, expires, keep, buf))
            .map_err(|_| SetError::Full)
    })
}

fn carve(
    config: &Config,
    carver: &mut rser_shm::Carver<'_>,
    region: usize,
) -> Result<Carved, String> {
    let defs = tables(config)?;
    let n: usize = defs
        .iter()
        .map(|d| items_for(d.size))
        .sum::<usize>()
        .max(16);
    let need = n * Items::bytes_per_item();
    // At most an eighth of the region: tm and usrloc need the rest.
    if need > region / 8 {
        return Err(format!(
            "htable: {n} items ({} MiB) do not fit an eighth of the shared memory ({} MiB): give more with -m, or smaller size= values",
            need >> 20,
            region >> 20
        ));
    }
    let items = Items::carve(carver, n)
        .ok_or_else(|| format!("shared memory too small for htable's {n} items"))?;
    Ok(Carved {
        capacity: format!(
            "{} items of {} bytes",
            items.capacity(),
            Items::bytes_per_item()
        ),
        shm: Box::new(items),
    })
}

struct HtRuntime {
    h: Option<Htables>,
    /// The actions' expressions, compiled once.
    regexes: Regexes,
    interval: Duration,
    next_sweep: Instant,
    /// The store's refused sets, as last counted.
    refused_seen: u64,
    buf: Vec<u8>,
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let items = s.shm.and_then(|m| m.downcast_ref::<Items>()).copied();
    let defs: Arc<[TableDef]> = tables(s.config).unwrap_or_default().into();
    let ids: Arc<[Option<u16>]> = defs
        .iter()
        .map(|d| crate::cfg::pv::sht_table_id(&d.name))
        .collect();
    let h = items.map(|items| Htables { items, defs, ids });
    CURRENT.with_borrow_mut(|c| c.clone_from(&h));
    let interval = Duration::from_secs(
        u64::try_from(s.config.modparam_int("htable", "timer_interval", 20)).unwrap_or(20),
    );
    Box::new(HtRuntime {
        h,
        regexes: Default::default(),
        interval,
        next_sweep: Instant::now() + interval,
        refused_seen: items.map_or(0, |i| i.refused()),
        buf: Vec::new(),
    })
}

impl Runtime for HtRuntime {
    /// Its sweep, and the full-table count once a second.
    fn next_tick(&self, now_ms: u64) -> u64 {
        let to_sweep = self.next_sweep.saturating_duration_since(Instant::now());
        now_ms + (to_sweep.as_millis() as u64).min(1_000)
    }

    /// In the timer process: expired items go every `timer_interval`.
    fn tick(&mut self, cx: &mut Cx<'_>) {
        let Some(h) = &self.h else { return };
        let refused = h.items.refused();
        cx.counts
            .add(HtCounter::Full as usize, refused - self.refused_seen);
        self.refused_seen = refused;
        if Instant::now() < self.next_sweep {
            return;
        }
        self.next_sweep = Instant::now() + self.interval;
        let gone = h.items.sweep(unix_now(), |_| false, &mut self.buf);
        cx.counts.add(HtCounter::Expired as usize, gone as u64);
    }

    fn call(&mut self, _: &mut Cx<'_>, _: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        let Some(h) = &self.h else { return -1 };
        let (name, re) = match (id, args) {
            (RM_NAME_RE | RM_VALUE_RE, [Param::Str(t), Param::Str(re)]) => (t, Some(re)),
            (RESET, [Param::Str(t)]) => (t, None),
            _ => return bad_args("htable", id),
        };
        // The names were checked by `check`, the expressions by the fixup.
        let Some(t) = h.defs.iter().position(|d| *d.name == **name) else {
            return -1;
        };
        let t = t as u16;
        let re = match re {
            None => None,
            Some(re) => match self.regexes.get(re) {
                Some(re) => Some(re),
                None => return -1,
            },
        };
        let by_name = id == RM_NAME_RE;
        h.items.sweep(
            unix_now(),
            |e| {
                e.table == t
                    && re.is_none_or(|re| {
                        if by_name {
                            re.is_match(e.key)
                        } else {
                            re.is_match(&e.value.text())
                        }
                    })
            },
            &mut self.buf,
        );
        1
    }
}

fn table_only(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Str(text(&a[0]).trim().into())])
}

/// `"table=>regex"`.
fn table_regex(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let t = text(&a[0]);
    let (name, re) = t
        .split_once("=>")
        .ok_or_else(|| error(&a[0], format!("htable: '{t}' is not table=>regex")))?;
    crate::cfg::compile::build_regex(re, false, false).map_err(|e| error(&a[0], e))?;
    Ok(vec![Param::Str(name.trim().into()), Param::Str(re.into())])
}

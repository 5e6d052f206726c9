//! The dispatcher in a process: the script's actions (`ds_select_dst`,
//! `ds_select_domain`, `ds_next_dst`, `ds_next_domain`, `ds_mark_dst`,
//! `ds_is_from_list`), OPTIONS probing from the timer process, and the
//! probes' replies, which any worker may receive. Every process keeps its
//! own parse of the list in force and takes it again when the shared
//! generation moves (a reload by the control process).

use crate::db::conn::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use arrayvec::ArrayVec;

use super::{NO_DESTINATION, PROBES_FAILED, PROBES_SENT, SELECTED, STATE_CHANGES};
use crate::cfg::Config;
use crate::cfg::program::Param;
use crate::modules::def::{Carved, Cx, Runtime, Start, Wants, bad_args};
use crate::modules::dispatcher::health::Health;
use crate::modules::dispatcher::health::Thresholds;
use crate::modules::dispatcher::list::{FLAG_DISABLED, FLAG_PROBING, List};
use crate::modules::dispatcher::select::{self, Alg, View};
use crate::modules::dispatcher::state::{self, DsShared};
use crate::modules::dispatcher::{Failover, MAX_FAILOVER};
use crate::script::MsgCtx;
use crate::script::uri_ops::Rewrite;
use crate::sip::{Message, Uri};
use rser_shm::Carver;

/// The branch prefix of our probes: a reply carrying it is a probe's.
const PROBE_BRANCH: &[u8] = b"z9hG4bKds.";

/// Where the list comes from and how destinations are probed.
#[derive(Debug, Clone)]
pub struct DsParams {
    pub list_file: Option<PathBuf>,
    pub db_url: Option<String>,
    pub table: String,
    pub ping_interval_ms: u64,
    pub thresholds: Thresholds,
    /// `ds_ping_reply_codes`: codes (`code=N`) and classes (`class=N`)
    /// accepted beside 2xx.
    pub reply_codes: Vec<u16>,
    pub reply_classes: Vec<u16>,
    /// 0: probe destinations with the probing flag; 1: all.
    pub probing_mode: i64,
    pub ping_method: String,
    pub ping_from: String,
}

impl DsParams {
    pub fn from_config(config: &Config, config_path: Option<&Path>) -> Result<DsParams, String> {
        let list_file = config.modparam_str("dispatcher", "list_file", "");
        let db_url = config.modparam_str("dispatcher", "db_url", "");
        let list_file = match (list_file.is_empty(), db_url.is_empty()) {
            (true, true) => return Err("dispatcher needs list_file or db_url".into()),
            (false, false) => return Err("dispatcher: set list_file or db_url, not both".into()),
            (false, true) => Some(relative_to_config(Path::new(list_file), config_path)),
            (true, false) => None,
        };
        let (mut reply_codes, mut reply_classes) = (Vec::new(), Vec::new());
        for item in config
            .modparam_str("dispatcher", "ds_ping_reply_codes", "")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let bad = || format!("ds_ping_reply_codes: '{item}' is not code=NNN or class=N");
            let (k, v) = item.split_once('=').ok_or_else(bad)?;
            let n: u16 = v.trim().parse().map_err(|_| bad())?;
            match (k.trim(), n) {
                ("code", 100..=699) => reply_codes.push(n),
                ("class", 1..=6) => reply_classes.push(n),
                _ => return Err(bad()),
            }
        }
        let probing_mode = config.modparam_int("dispatcher", "ds_probing_mode", 0);
        if !(0..=1).contains(&probing_mode) {
            return Err(format!(
                "ds_probing_mode {probing_mode}: 0 (flagged destinations) and 1 (all) are provided"
            ));
        }
        let table = config.modparam_str("dispatcher", "table_name", "dispatcher");
        crate::db::check_table_name(table)
            .map_err(|_| format!("dispatcher table_name {table:?}: not a plain SQL name"))?;
        Ok(DsParams {
            list_file,
            db_url: (!db_url.is_empty()).then(|| db_url.to_string()),
            table: table.to_string(),
            ping_interval_ms: config
                .modparam_int("dispatcher", "ds_ping_interval", 10)
                .clamp(0, 86_400) as u64
                * 1000,
            thresholds: Thresholds {
                probing: config
                    .modparam_int("dispatcher", "ds_probing_threshold", 1)
                    .clamp(1, 1000) as u32,
                inactive: config
                    .modparam_int("dispatcher", "ds_inactive_threshold", 1)
                    .clamp(1, 1000) as u32,
            },
            reply_codes,
            reply_classes,
            probing_mode,
            ping_method: config
                .modparam_str("dispatcher", "ds_ping_method", "OPTIONS")
                .to_string(),
            ping_from: config
                .modparam_str("dispatcher", "ds_ping_from", "sip:dispatcher@localhost")
                .to_string(),
        })
    }

    /// The list text now in the file or the database.
    pub fn read_source(&self) -> Result<String, String> {
        if let Some(path) = &self.list_file {
            return std::fs::read_to_string(path)
                .map_err(|e| format!("dispatcher list {}: {e}", path.display()));
        }
        let url = crate::db::served(self.db_url.as_deref().unwrap_or_default())?;
        let mut need = crate::db::schema::Need::of(&crate::db::schema::DISPATCHER, &self.table);
        need.columns = ["setid", "destination", "flags", "priority", "attrs"]
            .map(String::from)
            .to_vec();
        let mut conn = crate::db::schema::open_prepared(&url, &[need], crate::db::TOOL_TIMEOUT)
            .map_err(|e| format!("dispatcher {e}"))?;
        // Kamailio's dispatcher table; each row becomes a list line, so
        // both sources go through one parser.
        let sql = format!(
            "SELECT setid, destination, flags, priority, attrs FROM {} ORDER BY id",
            self.table
        );
        let rows = conn
            .query(&sql, &[])
            .map_err(|e| format!("dispatcher {url}: {e}"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let int = |i: usize| r.get(i).and_then(Value::as_int).unwrap_or(0);
                let text = |i: usize| r.get(i).and_then(Value::text).unwrap_or_default();
                format!("{} {} {} {} {}\n", int(0), text(1), int(2), int(3), text(4))
            })
            .collect())
    }

    /// Whether a probe's reply code counts as an answer.
    fn accepts(&self, code: u16) -> bool {
        code / 100 == 2
            || self.reply_codes.contains(&code)
            || self.reply_classes.contains(&(code / 100))
    }
}

/// Kamailio resolves a relative list file against the config's directory.
fn relative_to_config(path: &Path, config_path: Option<&Path>) -> PathBuf {
    match config_path.and_then(Path::parent) {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Reads the source and puts the list in force: at start (an error stops
/// the server) and on `dispatcher.reload` (an error keeps the old list).
pub fn reload(shm: &DsShared, params: &DsParams) -> Result<(u64, usize), String> {
    let text = params.read_source()?;
    let (g, list) = shm.load(&text).map_err(|e| e.join("; "))?;
    Ok((g, list.len()))
}

/// One process's parse of the list in force.
#[derive(Default)]
struct Parsed {
    generation: u64,
    list: List,
    /// Per set: index of its first destination in list order.
    base: Vec<usize>,
    /// Per destination in list order: its key and resolved address.
    keys: Vec<u64>,
    addrs: Vec<Option<SocketAddr>>,
}

impl Parsed {
    /// Set `id`'s position and the list index of its first destination.
    fn set(&self, id: u32) -> Option<(usize, usize)> {
        let pos = self.list.sets.binary_search_by_key(&id, |s| s.id).ok()?;
        Some((pos, self.base[pos]))
    }

    /// Destination `at`'s shared cell and key.
    fn cell<'s>(&self, shm: &'s DsShared, at: usize) -> Option<(&'s state::Cell, u64)> {
        Some((shm.cell(self.generation, at)?, *self.keys.get(at)?))
    }

    /// Destination `at`'s health, if its cell is still it.
    fn health(&self, shm: &DsShared, at: usize) -> Option<Health> {
        let (c, key) = self.cell(shm, at)?;
        c.health(key)
    }
}

pub struct DsState {
    pub shm: DsShared,
    params: DsParams,
    parsed: Parsed,
    text: String,
    rng: u64,
    probe_seq: u32,
    next_ping_ms: u64,
}

impl DsState {
    pub fn new(shm: DsShared, params: DsParams) -> DsState {
        DsState {
            shm,
            params,
            parsed: Parsed::default(),
            text: String::new(),
            rng: u64::from(std::process::id()) << 32
                | crate::server::worker::now_ms() & 0xffff_ffff,
            probe_seq: 0,
            next_ping_ms: 0,
        }
    }

    /// xorshift64*: algorithm 6 needs spread, not secrecy.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The destination's host:port (or host) as written in its URI.
fn host_port(uri: &str) -> Option<String> {
    let u = Uri::parse(uri.as_bytes()).ok()?;
    let host = std::str::from_utf8(u.host_text()).ok()?;
    Some(match u.port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

impl DsState {
    /// Takes the list again if a reload published a new one.
    fn refresh(&mut self, cx: &mut Cx<'_>) -> Option<&mut DsState> {
        let ds = &mut *self;
        if ds.shm.generation() != ds.parsed.generation {
            let mut text = std::mem::take(&mut ds.text);
            let shm = ds.shm;
            let g = shm.text(&mut text);
            let parsed = crate::modules::dispatcher::list::parse(&text);
            ds.text = text;
            let list = match parsed {
                Ok(l) => l,
                Err(e) => {
                    log::error!("dispatcher: the shared list does not parse: {e:?}");
                    return None;
                }
            };
            let mut p = Parsed {
                generation: g,
                ..Parsed::default()
            };
            for set in &list.sets {
                p.base.push(p.keys.len());
                for d in &set.dests {
                    p.keys.push(state::key(set.id, &d.uri));
                    let target = crate::modules::tm::relay::uri_target(d.uri.as_bytes());
                    p.addrs.push(
                        target.and_then(|(host, port, _)| cx.shell.resolve(&host, port, false)),
                    );
                }
            }
            p.list = list;
            self.parsed = p;
        }
        Some(self)
    }

    /// `ds_select_dst(set, alg[, limit])` / `ds_select_domain`.
    fn select(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        set: u32,
        alg: i64,
        limit: usize,
        domain: bool,
    ) -> i32 {
        let Some(alg) = Alg::from_number(alg) else {
            return -1;
        };
        let hash = |b: &[u8]| xxhash_rust::xxh3::xxh3_64(b);
        let key_of_msg = match alg {
            Alg::CallId => ctx.msg.call_id().map(hash).unwrap_or(0),
            Alg::FromUri => ctx.msg.from().map(|f| hash(f.addr_spec)).unwrap_or(0),
            Alg::ToUri => ctx.msg.to().map(|t| hash(t.addr_spec)).unwrap_or(0),
            Alg::RequestUri => hash(ctx.uri()),
            _ => 0,
        };
        let Some(ds) = self.refresh(cx) else {
            return -1;
        };
        let p = &ds.parsed;
        let Some((pos, base)) = p.set(set) else {
            log::warn!("ds_select_dst: set {set} is not in the list");
            return -1;
        };
        let views: ArrayVec<View, { select::MAX_PER_SET }> = p.list.sets[pos]
            .dests
            .iter()
            .enumerate()
            .map(|(i, d)| View {
                usable: p.health(&ds.shm, base + i).is_some_and(|h| h.usable()),
                weight: d.weight,
                load: p.cell(&ds.shm, base + i).map_or(0, |(c, _)| c.load()),
            })
            .collect();
        let key = match alg {
            Alg::RoundRobin | Alg::Weight => ds.shm.next_rr(pos),
            Alg::Random => ds.random(),
            _ => key_of_msg,
        };
        let order = select::order(alg, &views, key);
        if order.is_empty() {
            cx.counts.add(NO_DESTINATION, 1);
            ctx.st.last_error = Some((503, "Service Unavailable"));
            return -1;
        }
        let mut fo = Failover {
            set,
            generation: ds.parsed.generation as u32,
            order: [0; MAX_FAILOVER],
            len: 0,
            pos: 0,
            load: 0,
        };
        for (slot, i) in fo.order.iter_mut().zip(order.iter().take(limit)) {
            *slot = *i;
            fo.len += 1;
        }
        if alg == Alg::CallLoad {
            fo.load = LOAD_COUNTED;
        }
        cx.counts.add(SELECTED, 1);
        self.apply(ctx, fo, domain)
    }

    /// Sends the request to the failover order's current destination.
    fn apply(&mut self, ctx: &mut MsgCtx<'_, '_>, fo: Failover, domain: bool) -> i32 {
        let ds = &*self;
        let Some(set) = ds.parsed.list.set(fo.set) else {
            return -1;
        };
        let Some(d) = fo.current().and_then(|i| set.dests.get(usize::from(i))) else {
            return -1;
        };
        ctx.st.ds = fo;
        if domain {
            let Some(hp) = host_port(&d.uri) else {
                return -1;
            };
            if ctx.rewrite_uri(Rewrite::HostPort(hp.as_bytes())).is_err() {
                return -1;
            }
        } else {
            ctx.st.dst_uri.clear();
            ctx.st.dst_uri.extend_from_slice(d.uri.as_bytes());
        }
        1
    }

    /// `ds_next_dst()` / `ds_next_domain()`: the next destination of the
    /// selection still usable; false when none is left.
    fn next(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, domain: bool) -> i32 {
        let mut fo = ctx.st.ds;
        if fo.is_empty() {
            return -1;
        }
        let Some(ds) = self.refresh(cx) else {
            return -1;
        };
        let p = &ds.parsed;
        let Some((pos, base)) = p.set(fo.set) else {
            return -1;
        };
        let n = p.list.sets[pos].dests.len();
        let usable = |i: u8| {
            let i = usize::from(i);
            i < n && p.health(&ds.shm, base + i).is_some_and(|h| h.usable())
        };
        let prev = fo.current();
        let found = loop {
            fo.pos += 1;
            match fo.current() {
                None => break false,
                Some(i) if usable(i) => break true,
                Some(_) => {}
            }
        };
        if !found {
            cx.counts.add(NO_DESTINATION, 1);
            return -1;
        }
        // A call's load moves with it (Kamailio's ds_load_replace).
        if fo.load > LOAD_COUNTED {
            let cell = |i: u8| ds.shm.cell(p.generation, base + usize::from(i));
            if let Some(c) = prev.and_then(cell) {
                c.sub_load();
            }
            if let Some(c) = fo.current().and_then(cell) {
                c.add_load();
            }
            fo.load = fo.current().map_or(0, |i| i + 1 + LOAD_COUNTED);
        }
        // After a reload the indices are taken in the new list: still
        // destinations of the set, and only usable ones.
        fo.generation = p.generation as u32;
        self.apply(ctx, fo, domain)
    }

    /// `ds_mark_dst([state])`: the current destination's state.
    fn mark(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, how: &str) -> i32 {
        let fo = ctx.st.ds;
        let Some(i) = fo.current() else {
            return -1;
        };
        let Some(ds) = self.refresh(cx) else {
            return -1;
        };
        let p = &ds.parsed;
        let Some((pos, base)) = p.set(fo.set) else {
            return -1;
        };
        let Some((cell, key)) = p.cell(&ds.shm, base + usize::from(i)) else {
            return -1;
        };
        match cell.update(key, |h| h.marked(how).unwrap_or(h)) {
            Some((old, new)) => {
                if old.usable() != new.usable() {
                    log::info!(
                        "dispatcher: {} marked {} by the script",
                        p.list.sets[pos].dests[usize::from(i)].uri,
                        if new.usable() { "active" } else { "inactive" }
                    );
                }
                1
            }
            None => -1,
        }
    }

    /// `ds_is_from_list([set])`: the request's source is a destination
    /// (of `set`, or of any set when negative).
    fn is_from_list(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, set: i64) -> i32 {
        let src = ctx.src;
        let Some(ds) = self.refresh(cx) else {
            return -1;
        };
        let p = &ds.parsed;
        let found = p.list.sets.iter().enumerate().any(|(pos, s)| {
            (set < 0 || i64::from(s.id) == set)
                && (0..s.dests.len()).any(|i| p.addrs[p.base[pos] + i] == Some(src))
        });
        if found { 1 } else { -1 }
    }

    /// After a transaction is created with the selection: algorithm 10
    /// counts the call on its destination.
    fn count_load(&mut self, cx: &mut Cx<'_>, fo: &mut Failover) {
        if fo.load != LOAD_COUNTED {
            return;
        }
        let Some(i) = fo.current() else { return };
        if let Some(c) = self.cell(cx, fo.set, i) {
            c.add_load();
            fo.load = i + 1 + LOAD_COUNTED;
        }
    }

    /// When the transaction ends: the call no longer counts.
    fn release_load(&mut self, cx: &mut Cx<'_>, fo: &Failover) {
        if fo.load > LOAD_COUNTED
            && let Some(c) = self.cell(cx, fo.set, fo.load - 1 - LOAD_COUNTED)
        {
            c.sub_load();
        }
    }

    fn cell(&mut self, cx: &mut Cx<'_>, set: u32, i: u8) -> Option<&state::Cell> {
        let ds = self.refresh(cx)?;
        let p = &ds.parsed;
        let (_, base) = p.set(set)?;
        ds.shm.cell(p.generation, base + usize::from(i))
    }

    /// A reply to one of our probes (any worker may get it): counted on
    /// its destination and absorbed.
    fn probe_reply(&mut self, cx: &mut Cx<'_>, msg: &Message<'_>, src: SocketAddr) -> bool {
        let Some(branch) = msg.top_via().ok().and_then(|v| v.branch) else {
            return false;
        };
        let Some(rest) = branch.strip_prefix(PROBE_BRANCH) else {
            return false;
        };
        let code = msg.status().unwrap_or(0);
        let mut f = rest.split(|b| *b == b'.').map(|s| {
            std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        });
        let (Some(Some(generation)), Some(Some(i)), Some(Some(seq))) =
            (f.next(), f.next(), f.next())
        else {
            return true;
        };
        if code < 200 {
            return true;
        }
        let Some(ds) = self.refresh(cx) else {
            return true;
        };
        let p = &ds.parsed;
        let i = i as usize;
        if generation != p.generation || i >= p.keys.len() {
            return true; // a probe of a list since replaced
        }
        if p.addrs[i] != Some(src) {
            // Only the destination probed speaks for its health.
            log::debug!("dispatcher: probe reply from {src}, not the destination; ignored");
            return true;
        }
        let Some((cell, key)) = p.cell(&ds.shm, i) else {
            return true;
        };
        if !cell.answer_probe(seq as u32) {
            return true;
        }
        let ok = ds.params.accepts(code);
        let t = ds.params.thresholds;
        let changed = cell.update(key, |h| h.probed(ok, t));
        let flipped = changed.is_some_and(|(old, new)| old.usable() != new.usable());
        let uri = match flipped {
            true => p
                .list
                .sets
                .iter()
                .flat_map(|s| &s.dests)
                .nth(i)
                .map(|d| d.uri.clone()),
            false => None,
        };
        if !ok {
            cx.counts.add(PROBES_FAILED, 1);
        }
        log_change(cx, changed, uri.as_deref().unwrap_or("?"));
        true
    }

    /// The timer process's turn: every `ds_ping_interval`, a probe that got
    /// no answer counts as failed and a new OPTIONS goes to each probed
    /// destination.
    fn probe_tick(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now_ms;
        if self.params.ping_interval_ms == 0 || now < self.next_ping_ms {
            return;
        }
        self.next_ping_ms = now + self.params.ping_interval_ms;
        if self.refresh(cx).is_none() {
            return;
        }
        let ds = &*self;
        let p = &ds.parsed;
        let mut seq = ds.probe_seq;
        let mut i = 0;
        for set in &p.list.sets {
            for d in &set.dests {
                let at = i;
                i += 1;
                let Some((cell, key)) = p.cell(&ds.shm, at) else {
                    continue;
                };
                let Some(h) = cell.health(key) else { continue };
                let probed = h.flags & FLAG_DISABLED == 0
                    && (ds.params.probing_mode == 1 || h.flags & FLAG_PROBING != 0);
                if !probed {
                    cell.cancel_probe();
                    continue;
                }
                seq = seq.wrapping_add(1);
                if cell.start_probe(seq) {
                    let t = ds.params.thresholds;
                    cx.counts.add(PROBES_FAILED, 1);
                    log_change(cx, cell.update(key, |h| h.probed(false, t)), &d.uri);
                }
                match p.addrs[at] {
                    Some(to) => send_probe(cx, &ds.params, &d.uri, to, (p.generation, at, seq)),
                    None => log::debug!("dispatcher: {} does not resolve; not probed", d.uri),
                }
            }
        }
        self.probe_seq = seq;
    }
}

fn log_change(cx: &Cx<'_>, changed: Option<(Health, Health)>, uri: &str) {
    if let Some((old, new)) = changed
        && old.usable() != new.usable()
    {
        cx.counts.add(STATE_CHANGES, 1);
        if new.usable() {
            log::info!("dispatcher: {uri} answers probes again: active");
        } else {
            log::warn!("dispatcher: {uri} does not answer probes: inactive");
        }
    }
}

/// One OPTIONS probe to `to`; its branch names the list generation, the
/// destination and the probe's number.
fn send_probe(
    cx: &mut Cx<'_>,
    params: &DsParams,
    uri: &str,
    to: SocketAddr,
    (generation, i, seq): (u64, usize, u32),
) {
    let method = &params.ping_method;
    let from = &params.ping_from;
    let (via, buf) = cx.shell.send_new(to);
    use std::io::Write as _;
    let _ = write!(
        buf,
        "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch=z9hG4bKds.{generation}.{i}.{seq}\r\n\
             Max-Forwards: 70\r\n\
             From: <{from}>;tag=ds{seq}\r\n\
             To: <{uri}>\r\n\
             Call-ID: ds.{generation}.{i}.{seq}@{ip}\r\n\
             CSeq: {seq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
        ip = via.ip(),
    );
    cx.counts.add(PROBES_SENT, 1);
}

impl Runtime for DsState {
    fn wants(&self) -> Wants {
        Wants {
            ticks: true,
            replies: true,
            tm_lifecycle: true,
            ..Wants::default()
        }
    }

    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        use super::actions::*;
        match (id, args) {
            (
                DS_SELECT_DST | DS_SELECT_DOMAIN,
                [Param::Int(set), Param::Int(alg), Param::Int(limit)],
            ) => self.select(
                cx,
                ctx,
                *set as u32,
                *alg,
                *limit as usize,
                id == DS_SELECT_DOMAIN,
            ),
            (DS_NEXT_DST, []) => self.next(cx, ctx, false),
            (DS_NEXT_DOMAIN, []) => self.next(cx, ctx, true),
            (DS_MARK_DST, [Param::Str(state)]) => self.mark(cx, ctx, state),
            (DS_IS_FROM_LIST, [Param::Int(set)]) => self.is_from_list(cx, ctx, *set),
            _ => bad_args("dispatcher", id),
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.probe_tick(cx);
    }

    fn next_tick(&self, _now_ms: u64) -> u64 {
        match self.params.ping_interval_ms {
            0 => u64::MAX,
            _ => self.next_ping_ms,
        }
    }

    fn reply_in(&mut self, cx: &mut Cx<'_>, msg: &Message<'_>, src: SocketAddr) -> bool {
        self.probe_reply(cx, msg, src)
    }

    fn tm_created(&mut self, cx: &mut Cx<'_>, sel: &mut Failover) {
        self.count_load(cx, sel);
    }

    fn tm_destroyed(&mut self, cx: &mut Cx<'_>, sel: &Failover) {
        self.release_load(cx, sel);
    }
}

/// The dispatcher's parameters and list as a start reads them: a list
/// file that parses, or a database this build serves.
pub fn check(config: &Config) -> Result<Vec<String>, String> {
    let params = DsParams::from_config(config, config.path.as_deref())?;
    match &params.db_url {
        Some(url) => {
            crate::db::served(url)?;
        }
        None => {
            super::list::parse(&params.read_source()?).map_err(|e| e.join("; "))?;
        }
    }
    Ok(Vec::new())
}

/// In the master: the shared state carved and the list put in force (a
/// bad list stops the start).
pub fn carve(config: &Config, carver: &mut Carver<'_>, _: usize) -> Result<Carved, String> {
    let params = DsParams::from_config(config, config.path.as_deref())?;
    let shm = DsShared::carve(carver).ok_or("shared memory too small for the dispatcher")?;
    let (_, n) = reload(&shm, &params)?;
    Ok(Carved {
        capacity: format!("{n} destinations in force (two banks)"),
        shm: Box::new(shm),
    })
}

pub fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let shm = *s
        .shm
        .and_then(|m| m.downcast_ref::<DsShared>())
        .expect("the dispatcher's carve made its state");
    // Checked by carve: the parameters are good here.
    let params =
        DsParams::from_config(s.config, s.config.path.as_deref()).expect("checked at start");
    Box::new(DsState::new(shm, params))
}

/// [`Failover::load`]: 1 means "count the call once a transaction holds
/// it"; above 1, destination `load - 2` holds it.
const LOAD_COUNTED: u8 = 1;

//! The dispatcher's actions: `ds_select_dst`/`ds_select_domain(set,
//! alg[, limit])`, `ds_next_dst()`/`ds_next_domain()`,
//! `ds_mark_dst([state])`, `ds_is_from_list([set])`.

use super::MAX_FAILOVER;
use super::health::Health;
use super::select::Alg;
use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, int_in, text};
use crate::cfg::program::Param;
use crate::modules::def::{Hooks, Module, ParamType, Routes, action, no_args};

use ParamType::{Int, Str};

pub(super) const DS_SELECT_DST: u8 = 0;
pub(super) const DS_SELECT_DOMAIN: u8 = 1;
pub(super) const DS_NEXT_DST: u8 = 2;
pub(super) const DS_NEXT_DOMAIN: u8 = 3;
pub(super) const DS_MARK_DST: u8 = 4;
pub(super) const DS_IS_FROM_LIST: u8 = 5;

const ANY: Routes = Routes::ANY;

pub static MODULE: Module = Module {
    name: "dispatcher",
    params: &[
        ("list_file", Str),
        ("db_url", Str),
        ("table_name", Str),
        ("ds_ping_interval", Int),
        ("ds_probing_threshold", Int),
        ("ds_inactive_threshold", Int),
        ("ds_ping_reply_codes", Str),
        ("ds_probing_mode", Int),
        ("ds_ping_method", Str),
        ("ds_ping_from", Str),
    ],
    actions: &[
        action("ds_select_dst", DS_SELECT_DST, (2, 3), select, ANY),
        action("ds_select_domain", DS_SELECT_DOMAIN, (2, 3), select, ANY),
        action("ds_next_dst", DS_NEXT_DST, (0, 0), no_args, ANY),
        action("ds_next_domain", DS_NEXT_DOMAIN, (0, 0), no_args, ANY),
        action("ds_mark_dst", DS_MARK_DST, (0, 1), mark, ANY),
        action("ds_is_from_list", DS_IS_FROM_LIST, (0, 1), from_list, ANY),
    ],
    counters: &[
        "dispatcher_selected",
        "dispatcher_no_destination",
        "dispatcher_probes_sent",
        "dispatcher_probes_failed",
        "dispatcher_state_changes",
    ],
    hooks: Some(&Hooks::tables_and_runtime(
        super::runtime::carve,
        super::runtime::start,
    )),
    unapplied: &[],
    check: Some(super::runtime::check),
};

/// A set id, an algorithm this build provides, and a failover limit.
fn select(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let alg = int_in(&a[1], 0, 10)?;
    if Alg::from_number(alg).is_none() {
        return Err(error(
            &a[1],
            format!("dispatcher algorithm {alg} is not provided (0-4, 6, 8-10 are)"),
        ));
    }
    let limit = match a.get(2) {
        Some(l) => int_in(l, 1, MAX_FAILOVER as i64)?,
        None => MAX_FAILOVER as i64,
    };
    Ok(vec![
        Param::Int(int_in(&a[0], 0, i64::from(u32::MAX))?),
        Param::Int(alg),
        Param::Int(limit),
    ])
}

/// The state to mark (Kamailio's letters; `i` when absent).
fn mark(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let state = a.first().map_or_else(|| "i".to_string(), text);
    if Health::default().marked(&state).is_none() {
        return Err(error(
            &a[0],
            format!("ds_mark_dst state '{state}': expected a, i, t or d, with p"),
        ));
    }
    Ok(vec![Param::Str(state.into())])
}

/// A set id, or -1 for any set.
fn from_list(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Int(match a.first() {
        Some(set) => int_in(set, -1, i64::from(u32::MAX))?,
        None => -1,
    })])
}

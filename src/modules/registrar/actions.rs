//! The registrar's actions: `save(table)`, `lookup(table)` and
//! `registered(table)` (Kamailio's: the Request-URI's AOR has a binding).

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, nonempty};
use crate::cfg::program::Param;
use crate::modules::def::{Hooks, Module, ParamType, Routes, action};

use ParamType::Int;

pub(super) const SAVE: u8 = 0;
pub(super) const LOOKUP: u8 = 1;
pub(super) const REGISTERED: u8 = 2;

pub static MODULE: Module = Module {
    name: "registrar",
    params: &[
        ("default_expires", Int),
        ("min_expires", Int),
        ("max_expires", Int),
        ("default_q", Int),
        ("append_branches", Int),
        ("max_contacts", Int),
        ("method_filtering", Int),
        ("gruu_enabled", Int),
        ("use_path", Int),
        ("path_mode", Int),
    ],
    actions: &[
        action("save", SAVE, (1, 1), table, Routes::NOT_BRANCH),
        action(
            "lookup",
            LOOKUP,
            (1, 1),
            table,
            Routes::REQUEST.or(Routes::FAILURE),
        ),
        action("registered", REGISTERED, (1, 1), table, Routes::ANY),
    ],
    counters: &["registrar_accepted", "registrar_rejected"],
    hooks: Some(&Hooks {
        carve: None,
        start: Some(super::runtime::start),
        helper: None,
        used: Some(crate::modules::usrloc::upkeep::used),
    }),
    unapplied: &[],
    check: Some(check),
};

/// Kamailio's registrar switches rser does not do, said when turned on.
fn check(config: &crate::cfg::Config) -> Result<Vec<String>, String> {
    let mut w = Vec::new();
    for (name, what) in [
        (
            "method_filtering",
            "lookup() does not filter contacts by their methods",
        ),
        ("gruu_enabled", "no GRUUs (RFC 5627) are given"),
        ("use_path", "Path headers (RFC 3327) are not stored"),
    ] {
        if config.modparam_int("registrar", name, 0) != 0 {
            w.push(format!("{name}: accepted and ignored: {what}"));
        }
    }
    if config.modparam("registrar", "path_mode").is_some()
        && config.modparam_int("registrar", "use_path", 0) != 0
    {
        w.push("path_mode: accepted and ignored: Path is not stored".into());
    }
    Ok(w)
}

/// The location table's name, which becomes an SQL table's when usrloc
/// persists.
fn table(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let table = nonempty(&a[0])?;
    crate::modules::usrloc::db::check_table_name(&table).map_err(|e| error(&a[0], e))?;
    Ok(vec![Param::Str(table)])
}

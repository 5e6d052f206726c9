//! The modules, each in its folder: its pure core, its actions (`def.rs`
//! says what a module declares) and, for now, a runtime that runs them in
//! a worker. [`MODULES`] is the one list of them.

pub mod acc;
pub mod auth;
pub mod compat;
pub mod def;
pub mod dispatcher;
pub mod exec;
pub mod htable;
pub mod maxfwd;
pub mod pike;
pub mod pipelimit;
pub mod print;
pub mod registrar;
pub mod rr;
pub mod sanity;
pub mod siputils;
pub mod sl;
pub mod textops;
pub mod tls;
pub mod tm;
pub mod usrloc;
pub mod xlog;

use def::Module;

/// Database drivers have no actions: they only name where `db_url`
/// points (see issue 6).
static MYSQL: Module = Module::params_only("mysql", &[]);
static DB_SQLITE: Module = Module::params_only("db_sqlite", &[]);
/// Kamailio's MySQL/MariaDB and PostgreSQL drivers: their wait bounds
/// are every module's (`db::timeout`); the rest is accepted as
/// Kamailio's operators set it.
static DB_MYSQL: Module = Module::params_only(
    "db_mysql",
    &[
        ("timeout_interval", def::ParamType::Int),
        ("ping_interval", def::ParamType::Int),
        ("auto_reconnect", def::ParamType::Int),
        ("insert_delayed", def::ParamType::Int),
        ("update_affected_found", def::ParamType::Int),
    ],
)
.unapplied(&[
    "ping_interval",
    "auto_reconnect",
    "insert_delayed",
    "update_affected_found",
]);
static DB_POSTGRES: Module = Module::params_only(
    "db_postgres",
    &[
        ("timeout", def::ParamType::Int),
        ("retries", def::ParamType::Int),
        ("bytea_output_escape", def::ParamType::Int),
        ("con_param", def::ParamType::Str),
    ],
)
.unapplied(&["retries", "bytea_output_escape", "con_param"]);

/// Most modules the list may hold (the worker keeps per-module hooks in
/// arrays of this size).
pub const MAX_MODULES: usize = 40;

/// Every module rser carries: `loadmodule` selects from it, the compiler
/// resolves actions in it, a worker runs them through it.
pub static MODULES: &[&Module] = &[
    &sl::actions::MODULE,
    &tm::actions::MODULE,
    &maxfwd::actions::MODULE,
    &rr::actions::MODULE,
    &textops::MODULE,
    &siputils::MODULE,
    &exec::MODULE,
    &usrloc::MODULE,
    &registrar::actions::MODULE,
    &auth::actions::MODULE,
    &auth::actions::AUTH_DB,
    &dispatcher::actions::MODULE,
    &MYSQL,
    &DB_SQLITE,
    &DB_MYSQL,
    &DB_POSTGRES,
    &acc::MODULE,
    &print::MODULE,
    &xlog::MODULE,
    &sanity::MODULE,
    &compat::PV,
    &compat::KEX,
    &compat::COREX,
    &compat::TMX,
    &compat::TEXTOPSX,
    &compat::JSONRPCS,
    &compat::CTL,
    &compat::CFG_RPC,
    &compat::COUNTERS,
    &htable::MODULE,
    &tls::MODULE,
    &pike::MODULE,
    &pipelimit::MODULE,
    &pipelimit::ratelimit::MODULE,
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_fits_its_bound() {
        assert!(super::MODULES.len() <= super::MAX_MODULES);
    }
}

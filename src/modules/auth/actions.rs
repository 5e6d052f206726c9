//! auth's and auth_db's actions: `www_authorize`/`proxy_authorize(realm,
//! table)`, `www_challenge`/`proxy_challenge(realm, qop)`,
//! `check_to()`/`check_from()`, `consume_credentials()`, and Kamailio's
//! `auth_check(realm, table, flags)` / `auth_challenge(realm, flags)`
//! (401 for a REGISTER, else 407; the realm may hold pseudo-variables).

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, int_in, nonempty, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Format;
use crate::modules::def::{ActionDef, Hooks, Module, ParamType, Routes, action, no_args};

use ParamType::{Int, Str};

pub(super) const WWW_AUTHORIZE: u8 = 0;
pub(super) const PROXY_AUTHORIZE: u8 = 1;
pub(super) const WWW_CHALLENGE: u8 = 2;
pub(super) const PROXY_CHALLENGE: u8 = 3;
pub(super) const CHECK_TO: u8 = 4;
pub(super) const CHECK_FROM: u8 = 5;
pub(super) const CONSUME_CREDENTIALS: u8 = 6;
pub(super) const AUTH_CHECK: u8 = 7;
pub(super) const AUTH_CHALLENGE: u8 = 8;

/// `auth_check`'s flags: the authenticated user must be the To user (a
/// REGISTER) or the From user (any other request).
pub(super) const CHECK_IDENTITY: i64 = 1;
/// `auth_challenge`'s flags: offer qop=auth (2, qop=auth-int, is offered
/// as auth); 4: add the header to the reply without sending it (not
/// supported: refused at load).
pub(super) const QOP_AUTH: i64 = 1 | 2;

/// An action auth_db provides as well (SER 0.8's auth read credentials
/// itself; auth_db does now).
const fn with_db(mut a: ActionDef) -> ActionDef {
    a.also_in = &["auth_db"];
    a
}

const REQ: Routes = Routes::REQUEST;

pub static MODULE: Module = Module {
    name: "auth",
    params: &[
        ("secret", Str),
        ("nonce_expire", Int),
        ("nonce_count_redis", Str),
        ("algorithm", Str),
        // SER 0.8's auth module read credentials itself (the seed's
        // "Module Parameters" example sets it); auth_db has it now.
        ("db_url", Str),
        ("calculate_ha1", Int),
        ("password_column", Str),
        // rser's: failed authentications before a source or a user is
        // refused, within failed_auth_window seconds (0: never).
        ("failed_auth_limit", Int),
        ("failed_auth_user_limit", Int),
        ("failed_auth_window", Int),
    ],
    actions: &[
        with_db(action(
            "www_authorize",
            WWW_AUTHORIZE,
            (2, 2),
            authorize,
            REQ,
        )),
        with_db(action(
            "proxy_authorize",
            PROXY_AUTHORIZE,
            (2, 2),
            authorize,
            REQ,
        )),
        action("www_challenge", WWW_CHALLENGE, (2, 2), challenge, REQ),
        action("proxy_challenge", PROXY_CHALLENGE, (2, 2), challenge, REQ),
        with_db(action("check_to", CHECK_TO, (0, 0), no_args, REQ)),
        with_db(action("check_from", CHECK_FROM, (0, 0), no_args, REQ)),
        with_db(action("auth_check", AUTH_CHECK, (3, 3), auth_check, REQ)),
        action(
            "auth_challenge",
            AUTH_CHALLENGE,
            (2, 2),
            auth_challenge,
            REQ,
        ),
        action(
            "consume_credentials",
            CONSUME_CREDENTIALS,
            (0, 0),
            no_args,
            REQ,
        ),
    ],
    counters: &[
        "auth_failures",
        "auth_db_errors",
        "auth_db_queries",
        "auth_cache_hits",
        "auth_nc_redis_errors",
        "auth_throttled",
        "auth_blocked",
    ],
    hooks: Some(&Hooks::tables_and_runtime(
        super::runtime::carve,
        super::runtime::start,
    )),
    unapplied: &[],
    check: Some(super::runtime::check),
};

pub static AUTH_DB: Module = Module::params_only(
    "auth_db",
    &[
        ("db_url", Str),
        ("calculate_ha1", Int),
        ("password_column", Str),
        ("password_column_2", Str),
        ("user_column", Str),
        ("domain_column", Str),
        ("hash_column_sha256", Str),
        ("use_domain", Int),
        ("load_credentials", Str),
        ("auth_cache_expires", Int),
    ],
);

/// A realm (may be empty: the request's host) and a subscriber table.
fn authorize(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![
        Param::Str(text(&a[0]).into()),
        Param::Str(nonempty(&a[1])?),
    ])
}

/// `auth_check`: a realm with pseudo-variables, a table, flags (1: the
/// user must be the To/From user; Kamailio's other bits select what rser
/// does anyway or are refused).
fn auth_check(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let flags = int_in(&a[2], 0, 31)?;
    if flags & !CHECK_IDENTITY != 0 {
        return Err(error(
            &a[2],
            format!(
                "auth_check flags {flags}: only 0 and 1 (check the To/From user) are supported"
            ),
        ));
    }
    Ok(vec![
        Param::Fmt(Format::parse(&text(&a[0])).map_err(|e| error(&a[0], e))?),
        Param::Str(nonempty(&a[1])?),
        Param::Int(flags),
    ])
}

/// `auth_challenge`: a realm with pseudo-variables and flags (1 or 2:
/// offer qop=auth).
fn auth_challenge(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let flags = int_in(&a[1], 0, 31)?;
    if flags & !QOP_AUTH != 0 {
        return Err(error(
            &a[1],
            format!(
                "auth_challenge flags {flags}: only 0, 1 and 2 (qop) are supported; 4 (header without a reply) is not"
            ),
        ));
    }
    Ok(vec![
        Param::Fmt(Format::parse(&text(&a[0])).map_err(|e| error(&a[0], e))?),
        Param::Int(flags),
    ])
}

/// A realm and whether to offer qop (0 or 1).
fn challenge(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![
        Param::Str(text(&a[0]).into()),
        Param::Int(int_in(&a[1], 0, 1)?),
    ])
}

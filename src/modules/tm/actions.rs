//! tm's actions: `t_relay([host, port])` (and `t_relay_to_udp`,
//! `t_relay_to_tcp`), `t_newtran()`, `t_reply(code, reason)`, and
//! `t_on_failure`/`t_on_reply`/`t_on_branch(route)` arming the
//! transaction's routes.

use super::relay::RelayTo;
use super::state::TmState;
use crate::cfg::ConfigError;
use crate::cfg::ast::{Arg, RouteKind};
use crate::cfg::fixup::{Fixup, error, int_in, nonempty};
use crate::cfg::program::Param;
use crate::cfg::settings::Proto;
use crate::modules::def::{Cx, Hooks, Module, ParamType, Routes, action, bad_args, no_args};
use crate::modules::sl::actions::code_reason;
use crate::script::MsgCtx;

use ParamType::Int;

const T_RELAY: u8 = 0;
const T_RELAY_TO_UDP: u8 = 1;
const T_RELAY_TO_TCP: u8 = 2;
const T_NEWTRAN: u8 = 3;
const T_REPLY: u8 = 4;
const T_ON_FAILURE: u8 = 5;
const T_ON_REPLY: u8 = 6;
const T_ON_BRANCH: u8 = 7;
const T_REPLICATE: u8 = 8;
const T_IS_SET: u8 = 9;
const T_IS_CANCELED: u8 = 10;
const T_CHECK_TRANS: u8 = 11;
const T_PRECHECK_TRANS: u8 = 12;
const T_CHECK_STATUS: u8 = 13;
const T_BRANCH_TIMEOUT: u8 = 14;
const T_BRANCH_REPLIED: u8 = 15;
const T_ANY_TIMEOUT: u8 = 16;
const T_ANY_REPLIED: u8 = 17;
const T_SET_FR: u8 = 18;
const T_RELAY_TO_TLS: u8 = 19;

pub static MODULE: Module = Module {
    name: "tm",
    params: &[
        ("fr_timer", Int),
        ("fr_inv_timer", Int),
        ("wt_timer", Int),
        ("delete_timer", Int),
        ("retr_timer1", Int),
        ("retr_timer2", Int),
        ("max_inv_lifetime", Int),
        ("max_noninv_lifetime", Int),
        ("noisy_ctimer", Int),
        ("ruri_matching", Int),
        ("via1_matching", Int),
        ("unix_tx_timeout", Int),
        ("failure_reply_mode", Int),
        ("restart_fr_on_each_reply", Int),
        ("auto_inv_100", Int),
        ("blst_methods_add", Int),
    ],
    actions: &[
        action("t_relay", T_RELAY, (0, 2), host_port, Routes::NOT_BRANCH),
        action(
            "t_relay_to_udp",
            T_RELAY_TO_UDP,
            (0, 2),
            host_port,
            Routes::NOT_BRANCH,
        ),
        action(
            "t_relay_to_tcp",
            T_RELAY_TO_TCP,
            (0, 2),
            host_port,
            Routes::NOT_BRANCH,
        ),
        action(
            "t_relay_to_tls",
            T_RELAY_TO_TLS,
            (0, 2),
            host_port,
            Routes::NOT_BRANCH,
        ),
        action("t_newtran", T_NEWTRAN, (0, 0), no_args, Routes::NOT_BRANCH),
        action("t_reply", T_REPLY, (2, 2), code_reason, Routes::NOT_BRANCH),
        action(
            "t_on_failure",
            T_ON_FAILURE,
            (1, 1),
            failure_route,
            Routes::ANY,
        ),
        action("t_on_reply", T_ON_REPLY, (1, 1), reply_route, Routes::ANY),
        action(
            "t_on_branch",
            T_ON_BRANCH,
            (1, 1),
            branch_route,
            Routes::ANY,
        ),
        action("t_is_set", T_IS_SET, (1, 1), route_kind_name, Routes::ANY),
        action("t_check_trans", T_CHECK_TRANS, (0, 0), no_args, Routes::ANY),
        action(
            "t_precheck_trans",
            T_PRECHECK_TRANS,
            (0, 0),
            no_args,
            Routes::REQUEST,
        ),
        action("t_is_canceled", T_IS_CANCELED, (0, 0), no_args, Routes::ANY),
        action(
            "t_check_status",
            T_CHECK_STATUS,
            (1, 1),
            status_regex,
            Routes::ANY,
        ),
        // tmx's: what became of the winning branch, or of any, in
        // failure_route.
        action(
            "t_branch_timeout",
            T_BRANCH_TIMEOUT,
            (0, 0),
            no_args,
            Routes::FAILURE,
        ),
        action(
            "t_branch_replied",
            T_BRANCH_REPLIED,
            (0, 0),
            no_args,
            Routes::FAILURE,
        ),
        action(
            "t_any_timeout",
            T_ANY_TIMEOUT,
            (0, 0),
            no_args,
            Routes::FAILURE,
        ),
        action(
            "t_any_replied",
            T_ANY_REPLIED,
            (0, 0),
            no_args,
            Routes::FAILURE,
        ),
        action("t_set_fr", T_SET_FR, (1, 2), fr_timers, Routes::NOT_BRANCH),
        action(
            "t_replicate",
            T_REPLICATE,
            (1, 2),
            replica_target,
            Routes::REQUEST,
        ),
    ],
    counters: super::COUNTER_NAMES,
    hooks: Some(&Hooks::tables_and_runtime(
        super::carve,
        super::state::start,
    )),
    unapplied: &[
        "delete_timer",
        "max_inv_lifetime",
        "max_noninv_lifetime",
        "noisy_ctimer",
        "ruri_matching",
        "via1_matching",
        "unix_tx_timeout",
        "restart_fr_on_each_reply",
        "failure_reply_mode",
    ],
    check: Some(super::check),
};

/// No arguments, or a host and a port.
fn host_port(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    match a {
        [] => Ok(vec![]),
        [host, port] => Ok(vec![
            Param::Str(nonempty(host)?),
            Param::Int(int_in(port, 1, 65535)?),
        ]),
        [one, ..] => Err(error(
            one,
            "t_relay takes no arguments, or a host and a port".into(),
        )),
    }
}

/// `t_set_fr(fr_inv_ms [, fr_ms])`: 0 keeps tm's; kept in tenths of a
/// second, up to 6,553,500 ms (109 minutes).
fn fr_timers(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let ms = |x: Option<&Arg>| x.map_or(Ok(0), |x| int_in(x, 0, 6_553_500));
    Ok(vec![Param::Int(ms(a.first())?), Param::Int(ms(a.get(1))?)])
}

/// `t_check_status`'s regular expression (Kamailio's: unanchored, so
/// "48" matches 486).
fn status_regex(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let re = nonempty(&a[0])?;
    crate::cfg::compile::build_regex(&re, false, false).map_err(|e| error(&a[0], e))?;
    Ok(vec![Param::Str(re)])
}

fn failure_route(fx: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Route(fx.route(RouteKind::Failure, &a[0])?)])
}

fn reply_route(fx: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Route(fx.route(RouteKind::Reply, &a[0])?)])
}

/// `t_is_set("branch_route" | "failure_route" | "onreply_route")`.
fn route_kind_name(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let which = match crate::cfg::fixup::text(&a[0]).as_str() {
        "branch_route" => 0,
        "failure_route" => 1,
        "onreply_route" => 2,
        other => {
            return Err(error(
                &a[0],
                format!("t_is_set: '{other}' is not branch_route, failure_route or onreply_route"),
            ));
        }
    };
    Ok(vec![Param::Int(which)])
}

/// `t_replicate("sip:host:port")` (Kamailio) or `t_replicate(host,
/// port)` (SER 0.8): where the copy goes.
fn replica_target(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    match a {
        [uri] => {
            let text = nonempty(uri)?;
            let u = crate::sip::Uri::parse(text.as_bytes())
                .map_err(|_| error(uri, format!("t_replicate: '{text}' is not a SIP URI")))?;
            if u.transport.is_some_and(|t| !t.eq_ignore_ascii_case(b"udp")) {
                return Err(error(
                    uri,
                    "t_replicate: only UDP is served by this build (TCP and TLS are not yet)"
                        .into(),
                ));
            }
            let host = String::from_utf8_lossy(u.host_text()).into_owned();
            Ok(vec![
                Param::Str(host.into()),
                Param::Int(i64::from(u.port_or_default())),
            ])
        }
        [host, port] => Ok(vec![
            Param::Str(nonempty(host)?),
            Param::Int(int_in(port, 1, 65535)?),
        ]),
        _ => unreachable!("arity checked"),
    }
}

fn branch_route(fx: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Route(fx.route(RouteKind::Branch, &a[0])?)])
}

/// Sends a copy of the request, as forwarded, to `host:port`, without a
/// transaction: the script's own forwarding is untouched, and the copy's
/// replies are the replica's (absorbed by [`absorbs_replica_reply`]).
fn replicate(cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, host: &str, port: u16) -> i32 {
    let sock = cx.shell.in_sock();
    let prefer_v6 = cx.shell.local(sock).is_ipv6();
    let Some(to) = cx.shell.resolve(host, port, prefer_v6) else {
        log::warn!("t_replicate: cannot resolve {host}");
        return -1;
    };
    let sock = cx.shell.socket_for(to);
    let via = cx.shell.local(sock);
    let buf = cx.shell.push(sock, to);
    match crate::server::proxy::build_replica(ctx, via, b"UDP", buf) {
        Ok(()) => {
            cx.counts.add(super::TmCounter::Replicated as usize, 1);
            1
        }
        Err(e) => {
            cx.shell.pop();
            log::warn!("t_replicate to {to}: {e:?}");
            -1
        }
    }
}

/// A reply to a copy `t_replicate()` sent: absorbed and counted.
pub(super) fn absorbs_replica_reply(cx: &mut Cx<'_>, msg: &crate::sip::Message<'_>) -> bool {
    let replica = msg
        .top_via()
        .ok()
        .and_then(|v| v.branch)
        .is_some_and(|b| b.starts_with(crate::server::proxy::REPLICA_BRANCH));
    if replica {
        cx.counts.add(super::TmCounter::ReplicaReplies as usize, 1);
    }
    replica
}

pub(super) fn run(
    tm: &mut TmState,
    cx: &mut Cx<'_>,
    ctx: &mut MsgCtx<'_, '_>,
    id: u8,
    args: &[Param],
) -> i32 {
    match (id, args) {
        (T_REPLY, [Param::Int(code), Param::Fmt(reason)]) => {
            let mut text = std::mem::take(&mut tm.text);
            text.clear();
            crate::script::pv::format_into(reason, ctx, &mut text);
            let r = tm.t_reply(cx, ctx, *code as u16, &text, b"");
            tm.text = text;
            r
        }
        (T_RELAY | T_RELAY_TO_UDP | T_RELAY_TO_TCP | T_RELAY_TO_TLS, _) => {
            let proto = match id {
                T_RELAY_TO_UDP => Some(Proto::Udp),
                T_RELAY_TO_TCP => Some(Proto::Tcp),
                T_RELAY_TO_TLS => Some(Proto::Tls),
                _ => None,
            };
            let host = match args {
                [Param::Str(host), Param::Int(port)] => Some((&**host, *port as u16)),
                _ => None,
            };
            tm.t_relay(cx, ctx, RelayTo { host, proto })
        }
        (T_NEWTRAN, []) => tm.t_newtran(cx, ctx),
        (T_IS_SET, [Param::Int(which)]) => {
            let armed = match which {
                0 => tm.armed.branch,
                1 => tm.armed.failure,
                _ => tm.armed.reply,
            };
            if armed != 0 { 1 } else { -1 }
        }
        // rser runs no failure_route for a cancelled transaction (Kamailio
        // does, for the script to ask this), so there it is false; in the
        // request route, whether a CANCEL ended the transaction already.
        (T_CHECK_TRANS, []) => tm.t_check_trans(ctx),
        // Kamailio's asks whether another process is at work on the same
        // request before its transaction exists. Here two copies racing
        // are resolved when the transaction is inserted (the later one is
        // absorbed), so no script need wait: false.
        (T_PRECHECK_TRANS, []) => -1,
        // The reply's status in onreply_route, the winning one in
        // failure_route, else the last the transaction sent upstream.
        (T_CHECK_STATUS, [Param::Str(re)]) => {
            let Some(code) = ctx.status.or_else(|| tm.last_reply_code()) else {
                return -1;
            };
            let Some(re) = tm.regexes.get(re) else {
                return -1;
            };
            if re.is_match(code.to_string().as_bytes()) {
                1
            } else {
                -1
            }
        }
        (T_BRANCH_TIMEOUT | T_BRANCH_REPLIED | T_ANY_TIMEOUT | T_ANY_REPLIED, []) => {
            use super::txn::{REPLIED, TIMED_OUT};
            let what = match id {
                T_BRANCH_TIMEOUT | T_ANY_TIMEOUT => TIMED_OUT,
                _ => REPLIED,
            };
            let any = matches!(id, T_ANY_TIMEOUT | T_ANY_REPLIED);
            if tm.branch_history(what, any) { 1 } else { -1 }
        }
        (T_SET_FR, [Param::Int(fr_inv), Param::Int(fr)]) => {
            (tm.armed.fr_inv_ms, tm.armed.fr_ms) = (*fr_inv as u32, *fr as u32);
            1
        }
        (T_IS_CANCELED, []) => match tm.is_canceled() {
            true => 1,
            false => -1,
        },
        (T_REPLICATE, [Param::Str(host), Param::Int(port)]) => {
            replicate(cx, ctx, host, *port as u16)
        }
        (T_ON_FAILURE, [Param::Route(r)]) => {
            tm.armed.failure = (*r + 1) as u16;
            1
        }
        (T_ON_REPLY, [Param::Route(r)]) => {
            tm.armed.reply = (*r + 1) as u16;
            1
        }
        (T_ON_BRANCH, [Param::Route(r)]) => {
            tm.armed.branch = (*r + 1) as u16;
            1
        }
        _ => bad_args("tm", id),
    }
}

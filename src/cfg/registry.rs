//! What a script may name: the built-in modules with their parameters, and
//! every action (core or exported by a module) with its arity.
//!
//! Modules are compiled in; `loadmodule "…/name.so"` only enables one, as a
//! shared library would in SER. Calling a module's action without loading
//! the module is a config error, as in SER.

/// A module parameter's type, as the SER module docs write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Str,
}

#[derive(Debug)]
pub struct ModuleDef {
    pub name: &'static str,
    pub params: &'static [(&'static str, ParamType)],
}

use ParamType::{Int, Str};

/// Every module rser carries. Database drivers (`mysql`, `db_sqlite`) have
/// no actions: they only name where `db_url` points (see issue 6).
pub const MODULES: &[ModuleDef] = &[
    ModuleDef {
        name: "sl",
        params: &[
            ("default_code", Int),
            ("default_reason", Str),
            ("bind_tm", Int),
        ],
    },
    ModuleDef {
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
            ("restart_fr_on_each_reply", Int),
            ("auto_inv_100", Int),
            ("blst_methods_add", Int),
        ],
    },
    ModuleDef {
        name: "maxfwd",
        params: &[("max_limit", Int)],
    },
    ModuleDef {
        name: "rr",
        params: &[
            ("enable_full_lr", Int),
            ("append_fromtag", Int),
            ("enable_double_rr", Int),
        ],
    },
    ModuleDef {
        name: "textops",
        params: &[],
    },
    ModuleDef {
        name: "siputils",
        params: &[],
    },
    ModuleDef {
        name: "exec",
        params: &[("time_to_kill", Int), ("setvars", Int)],
    },
    ModuleDef {
        name: "usrloc",
        params: &[
            ("db_url", Str),
            ("db_mode", Int),
            ("timer_interval", Int),
            ("use_domain", Int),
        ],
    },
    ModuleDef {
        name: "registrar",
        params: &[
            ("default_expires", Int),
            ("min_expires", Int),
            ("max_expires", Int),
            ("default_q", Int),
            ("append_branches", Int),
            ("max_contacts", Int),
        ],
    },
    ModuleDef {
        name: "auth",
        params: &[
            ("secret", Str),
            ("nonce_expire", Int),
            ("algorithm", Str),
            // SER 0.8's auth module read credentials itself (the seed's
            // "Module Parameters" example sets it); auth_db has it now.
            ("db_url", Str),
        ],
    },
    ModuleDef {
        name: "auth_db",
        params: &[("db_url", Str), ("calculate_ha1", Int)],
    },
    ModuleDef {
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
    },
    ModuleDef {
        name: "mysql",
        params: &[],
    },
    ModuleDef {
        name: "db_sqlite",
        params: &[],
    },
];

pub fn module(name: &str) -> Option<&'static ModuleDef> {
    MODULES.iter().find(|m| m.name == name)
}

/// The module a `loadmodule` path selects: the file name without its
/// directory and `.so` (`/usr/lib/ser/modules/sl.so` and `sl.so` are `sl`).
pub fn module_name_of_path(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".so").unwrap_or(file)
}

/// Every action a script can call. Core actions are run by the VM itself;
/// module actions are resolved here and run where their module lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    // core
    Forward,
    ForwardUdp,
    ForwardTcp,
    Send,
    Log,
    Strip,
    Prefix,
    RewriteUri,
    RewriteHost,
    RewriteHostPort,
    RewriteUser,
    RewriteUserPass,
    RewritePort,
    AppendBranch,
    RevertUri,
    SetFlag,
    ResetFlag,
    IsFlagSet,
    LenGt,
    Route,
    // sl
    SlSendReply,
    SendReply,
    SlReplyError,
    // tm
    TRelay,
    TRelayToUdp,
    TRelayToTcp,
    TNewtran,
    TReply,
    TOnFailure,
    TOnReply,
    TOnBranch,
    // registrar
    Save,
    Lookup,
    // rr
    RecordRoute,
    LooseRoute,
    // maxfwd
    MfProcessMaxfwdHeader,
    // siputils
    HasTotag,
    // textops
    Search,
    SearchAppend,
    Replace,
    Subst,
    // exec
    ExecDset,
    ExecMsg,
    // auth, auth_db
    WwwAuthorize,
    ProxyAuthorize,
    WwwChallenge,
    ProxyChallenge,
    CheckTo,
    CheckFrom,
    ConsumeCredentials,
    // dispatcher
    DsSelectDst,
    DsSelectDomain,
    DsNextDst,
    DsNextDomain,
    DsMarkDst,
    DsIsFromList,
}

#[derive(Debug)]
pub struct FuncDef {
    pub name: &'static str,
    pub func: Func,
    /// Modules any one of which provides it; empty for core actions.
    pub modules: &'static [&'static str],
    pub min_args: u8,
    pub max_args: u8,
}

const fn def(
    name: &'static str,
    func: Func,
    modules: &'static [&'static str],
    min_args: u8,
    max_args: u8,
) -> FuncDef {
    FuncDef {
        name,
        func,
        modules,
        min_args,
        max_args,
    }
}

const CORE: &[&str] = &[];
const AUTH_DB: &[&str] = &["auth_db", "auth"];
const DS: &[&str] = &["dispatcher"];

pub const FUNCS: &[FuncDef] = &[
    def("forward", Func::Forward, CORE, 0, 2),
    def("forward_udp", Func::ForwardUdp, CORE, 0, 2),
    def("forward_tcp", Func::ForwardTcp, CORE, 0, 2),
    def("send", Func::Send, CORE, 1, 2),
    def("log", Func::Log, CORE, 1, 2),
    def("strip", Func::Strip, CORE, 1, 1),
    def("prefix", Func::Prefix, CORE, 1, 1),
    def("rewriteuri", Func::RewriteUri, CORE, 1, 1),
    def("seturi", Func::RewriteUri, CORE, 1, 1),
    def("rewritehost", Func::RewriteHost, CORE, 1, 1),
    def("sethost", Func::RewriteHost, CORE, 1, 1),
    def("rewritehostport", Func::RewriteHostPort, CORE, 1, 1),
    def("sethostport", Func::RewriteHostPort, CORE, 1, 1),
    def("rewriteuser", Func::RewriteUser, CORE, 1, 1),
    def("setuser", Func::RewriteUser, CORE, 1, 1),
    def("rewriteuserpass", Func::RewriteUserPass, CORE, 1, 1),
    def("setuserpass", Func::RewriteUserPass, CORE, 1, 1),
    def("rewriteport", Func::RewritePort, CORE, 1, 1),
    def("setport", Func::RewritePort, CORE, 1, 1),
    def("append_branch", Func::AppendBranch, CORE, 0, 1),
    def("revert_uri", Func::RevertUri, CORE, 0, 0),
    def("setflag", Func::SetFlag, CORE, 1, 1),
    def("resetflag", Func::ResetFlag, CORE, 1, 1),
    def("isflagset", Func::IsFlagSet, CORE, 1, 1),
    def("len_gt", Func::LenGt, CORE, 1, 1),
    def("route", Func::Route, CORE, 1, 1),
    def("sl_send_reply", Func::SlSendReply, &["sl"], 2, 2),
    def("send_reply", Func::SendReply, &["sl"], 2, 2),
    def("sl_reply_error", Func::SlReplyError, &["sl"], 0, 0),
    def("t_relay", Func::TRelay, &["tm"], 0, 2),
    def("t_relay_to_udp", Func::TRelayToUdp, &["tm"], 0, 2),
    def("t_relay_to_tcp", Func::TRelayToTcp, &["tm"], 0, 2),
    def("t_newtran", Func::TNewtran, &["tm"], 0, 0),
    def("t_reply", Func::TReply, &["tm"], 2, 2),
    def("t_on_failure", Func::TOnFailure, &["tm"], 1, 1),
    def("t_on_reply", Func::TOnReply, &["tm"], 1, 1),
    def("t_on_branch", Func::TOnBranch, &["tm"], 1, 1),
    def("save", Func::Save, &["registrar"], 1, 1),
    def("lookup", Func::Lookup, &["registrar"], 1, 1),
    def("record_route", Func::RecordRoute, &["rr"], 0, 0),
    def("loose_route", Func::LooseRoute, &["rr"], 0, 0),
    def(
        "mf_process_maxfwd_header",
        Func::MfProcessMaxfwdHeader,
        &["maxfwd"],
        1,
        1,
    ),
    def("has_totag", Func::HasTotag, &["siputils"], 0, 0),
    def("search", Func::Search, &["textops"], 1, 1),
    def("search_append", Func::SearchAppend, &["textops"], 2, 2),
    def("replace", Func::Replace, &["textops"], 2, 2),
    def("subst", Func::Subst, &["textops"], 1, 1),
    def("exec_dset", Func::ExecDset, &["exec"], 1, 1),
    def("exec_msg", Func::ExecMsg, &["exec"], 1, 1),
    def("www_authorize", Func::WwwAuthorize, AUTH_DB, 2, 2),
    def("proxy_authorize", Func::ProxyAuthorize, AUTH_DB, 2, 2),
    def("www_challenge", Func::WwwChallenge, &["auth"], 2, 2),
    def("proxy_challenge", Func::ProxyChallenge, &["auth"], 2, 2),
    def("check_to", Func::CheckTo, AUTH_DB, 0, 0),
    def("check_from", Func::CheckFrom, AUTH_DB, 0, 0),
    def(
        "consume_credentials",
        Func::ConsumeCredentials,
        &["auth"],
        0,
        0,
    ),
    def("ds_select_dst", Func::DsSelectDst, DS, 2, 3),
    def("ds_select_domain", Func::DsSelectDomain, DS, 2, 3),
    def("ds_next_dst", Func::DsNextDst, DS, 0, 0),
    def("ds_next_domain", Func::DsNextDomain, DS, 0, 0),
    def("ds_mark_dst", Func::DsMarkDst, DS, 0, 1),
    def("ds_is_from_list", Func::DsIsFromList, DS, 0, 1),
];

pub fn func(name: &str) -> Option<&'static FuncDef> {
    FUNCS.iter().find(|f| f.name == name)
}

/// The name a function is listed under first (for dumps and messages).
pub fn func_name(f: Func) -> &'static str {
    FUNCS.iter().find(|d| d.func == f).map_or("?", |d| d.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_select_by_file_name() {
        assert_eq!(module_name_of_path("/usr/lib/ser/modules/sl.so"), "sl");
        assert_eq!(module_name_of_path("sl.so"), "sl");
        assert_eq!(module_name_of_path("modules/mysql/mysql.so"), "mysql");
        assert_eq!(module_name_of_path("tm"), "tm");
    }

    #[test]
    fn every_module_function_names_a_known_module() {
        for f in FUNCS {
            for m in f.modules {
                assert!(module(m).is_some(), "{} names {m}", f.name);
            }
            assert!(f.min_args <= f.max_args, "{}", f.name);
        }
    }
}

//! What a script may name: the built-in actions the VM runs itself (core,
//! textops, exec), and the modules of [`crate::modules::MODULES`] with
//! their parameters and actions.
//!
//! Modules are compiled in; `loadmodule "…/name.so"` only enables one, as a
//! shared library would in SER. Calling a module's action without loading
//! the module is a config error, as in SER.

use crate::modules::MODULES;
pub use crate::modules::def::{ActionDef, Module, ParamType};

/// The module `name`.
pub fn module(name: &str) -> Option<&'static Module> {
    MODULES.iter().copied().find(|m| m.name == name)
}

/// Kamailio's modules rser does not provide, with what they do: `-c`
/// says so (and which of the stock config's `WITH_*` they serve) rather
/// than "unknown module".
const NOT_PROVIDED: &[(&str, &str)] = &[
    ("db_redis", "Redis as a database"),
    ("ndb_redis", "Redis commands from the script"),
    ("nathelper", "NAT traversal helpers (WITH_NAT)"),
    ("rtpproxy", "RTPProxy control (WITH_NAT)"),
    ("rtpengine", "RTPEngine control (WITH_RTPENGINE)"),
    (
        "xhttp",
        "HTTP serving (WITH_JSONRPC's xhttp); rser's JSON-RPC is on ctl_socket (-s)",
    ),
    ("debugger", "the script debugger (WITH_DEBUG)"),
    ("permissions", "address-based authorization (WITH_IPAUTH)"),
    ("alias_db", "database aliases (WITH_ALIASDB)"),
    ("speeddial", "speed dial (WITH_SPEEDDIAL)"),
    ("domain", "the domain table (WITH_MULTIDOMAIN)"),
    ("presence", "presence (WITH_PRESENCE)"),
    ("presence_xml", "presence (WITH_PRESENCE)"),
    ("dialog", "dialog tracking"),
    ("uac", "UAC functions (uac_replace_from, uac_auth)"),
    ("dmq", "DMQ replication"),
    ("topoh", "topology hiding"),
    ("siptrace", "SIP tracing"),
    ("path", "Path headers (RFC 3327)"),
    ("outbound", "SIP outbound (RFC 5626)"),
];

/// Functions of the modules in [`NOT_PROVIDED`] that Kamailio's stock
/// config calls, so `-c` names the module an unknown action needs.
const NOT_PROVIDED_ACTIONS: &[(&str, &str)] = &[
    ("nat_uac_test", "nathelper"),
    ("fix_nated_register", "nathelper"),
    ("fix_nated_contact", "nathelper"),
    ("set_contact_alias", "nathelper"),
    ("add_contact_alias", "nathelper"),
    ("handle_ruri_alias", "nathelper"),
    ("rtpproxy_manage", "rtpproxy"),
    ("rtpengine_manage", "rtpengine"),
    ("allow_source_address", "permissions"),
    ("alias_db_lookup", "alias_db"),
    ("sd_lookup", "speeddial"),
    ("is_from_local", "domain"),
    ("is_domain_local", "domain"),
    ("lookup_domain", "domain"),
    ("handle_publish", "presence"),
    ("handle_subscribe", "presence"),
    ("dlg_manage", "dialog"),
    ("uac_replace_from", "uac"),
    ("sql_query", "sqlops"),
];

/// The module rser does not provide that an action comes from.
pub fn not_provided_action(action: &str) -> Option<(&'static str, &'static str)> {
    let (_, module) = NOT_PROVIDED_ACTIONS.iter().find(|(a, _)| *a == action)?;
    Some((module, not_provided(module)?))
}

/// What Kamailio's module `name` would do, when rser does not provide it.
pub fn not_provided(name: &str) -> Option<&'static str> {
    NOT_PROVIDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, what)| *what)
}

/// The module a `loadmodule` path selects: the file name without its
/// directory and `.so` (`/usr/lib/ser/modules/sl.so` and `sl.so` are `sl`).
pub fn module_name_of_path(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".so").unwrap_or(file)
}

/// An action the VM runs itself (core, textops, exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Forward,
    ForwardUdp,
    ForwardTcp,
    ForwardTls,
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
    ForceRport,
    SetReplyNoConnect,
    IsMyself,
    IsDstUriSet,
    SetBFlag,
    ResetBFlag,
    IsBFlagSet,
    ResetFlag,
    IsFlagSet,
    LenGt,
    Route,
    // textops
    Search,
    SearchAppend,
    Replace,
    Subst,
    SubstUri,
    // exec
    ExecDset,
    ExecMsg,
}

#[derive(Debug)]
pub struct BuiltinDef {
    pub name: &'static str,
    pub builtin: Builtin,
    /// Modules any one of which provides it; empty for core actions.
    pub modules: &'static [&'static str],
    pub min_args: u8,
    pub max_args: u8,
}

const fn def(
    name: &'static str,
    builtin: Builtin,
    modules: &'static [&'static str],
    min_args: u8,
    max_args: u8,
) -> BuiltinDef {
    BuiltinDef {
        name,
        builtin,
        modules,
        min_args,
        max_args,
    }
}

const CORE: &[&str] = &[];

pub const BUILTINS: &[BuiltinDef] = &[
    def("forward", Builtin::Forward, CORE, 0, 2),
    def("forward_udp", Builtin::ForwardUdp, CORE, 0, 2),
    def("forward_tcp", Builtin::ForwardTcp, CORE, 0, 2),
    def("forward_tls", Builtin::ForwardTls, CORE, 0, 2),
    def("send", Builtin::Send, CORE, 1, 2),
    def("log", Builtin::Log, CORE, 1, 2),
    def("strip", Builtin::Strip, CORE, 1, 1),
    def("prefix", Builtin::Prefix, CORE, 1, 1),
    def("rewriteuri", Builtin::RewriteUri, CORE, 1, 1),
    def("seturi", Builtin::RewriteUri, CORE, 1, 1),
    def("rewritehost", Builtin::RewriteHost, CORE, 1, 1),
    def("sethost", Builtin::RewriteHost, CORE, 1, 1),
    def("rewritehostport", Builtin::RewriteHostPort, CORE, 1, 1),
    def("sethostport", Builtin::RewriteHostPort, CORE, 1, 1),
    def("rewriteuser", Builtin::RewriteUser, CORE, 1, 1),
    def("setuser", Builtin::RewriteUser, CORE, 1, 1),
    def("rewriteuserpass", Builtin::RewriteUserPass, CORE, 1, 1),
    def("setuserpass", Builtin::RewriteUserPass, CORE, 1, 1),
    def("rewriteport", Builtin::RewritePort, CORE, 1, 1),
    def("setport", Builtin::RewritePort, CORE, 1, 1),
    def("append_branch", Builtin::AppendBranch, CORE, 0, 1),
    def("revert_uri", Builtin::RevertUri, CORE, 0, 0),
    def("setflag", Builtin::SetFlag, CORE, 1, 1),
    def("force_rport", Builtin::ForceRport, CORE, 0, 0),
    def("is_myself", Builtin::IsMyself, CORE, 1, 1),
    def("isdsturiset", Builtin::IsDstUriSet, &["kex"], 0, 0),
    def(
        "set_reply_no_connect",
        Builtin::SetReplyNoConnect,
        CORE,
        0,
        0,
    ),
    def("setbflag", Builtin::SetBFlag, CORE, 1, 2),
    def("resetbflag", Builtin::ResetBFlag, CORE, 1, 2),
    def("isbflagset", Builtin::IsBFlagSet, CORE, 1, 2),
    def("resetflag", Builtin::ResetFlag, CORE, 1, 1),
    def("isflagset", Builtin::IsFlagSet, CORE, 1, 1),
    def("len_gt", Builtin::LenGt, CORE, 1, 1),
    def("route", Builtin::Route, CORE, 1, 1),
    def("search", Builtin::Search, &["textops"], 1, 1),
    def("search_append", Builtin::SearchAppend, &["textops"], 2, 2),
    def("replace", Builtin::Replace, &["textops"], 2, 2),
    def("subst", Builtin::Subst, &["textops"], 1, 1),
    def("subst_uri", Builtin::SubstUri, &["textops"], 1, 1),
    def("exec_dset", Builtin::ExecDset, &["exec"], 1, 1),
    def("exec_msg", Builtin::ExecMsg, &["exec"], 1, 1),
];

/// A module's action: the module's place in [`MODULES`] and the action's
/// in its list. Compiled into the program; the worker runs it through
/// the module's [`crate::modules::def::RunFn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Func {
    pub module: u8,
    pub action: u8,
}

impl Func {
    /// The action called `name` in any module.
    pub fn named(name: &str) -> Option<Func> {
        MODULES.iter().enumerate().find_map(|(m, module)| {
            let a = module.actions.iter().position(|a| a.name == name)?;
            Some(Func {
                module: m as u8,
                action: a as u8,
            })
        })
    }

    pub fn module_def(self) -> &'static Module {
        MODULES[usize::from(self.module)]
    }

    pub fn def(self) -> &'static ActionDef {
        &self.module_def().actions[usize::from(self.action)]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The modules whose loading provides it.
    pub fn providers(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.module_def().name).chain(self.def().also_in.iter().copied())
    }
}

/// What a name in a script resolves to.
#[derive(Debug, Clone, Copy)]
pub enum Resolved {
    Builtin(&'static BuiltinDef),
    Module(Func),
}

impl Resolved {
    pub fn arity(self) -> (u8, u8) {
        match self {
            Resolved::Builtin(d) => (d.min_args, d.max_args),
            Resolved::Module(f) => (f.def().min_args, f.def().max_args),
        }
    }
}

pub fn resolve(name: &str) -> Option<Resolved> {
    match BUILTINS.iter().find(|f| f.name == name) {
        Some(d) => Some(Resolved::Builtin(d)),
        None => Func::named(name).map(Resolved::Module),
    }
}

/// An action's name (for dumps and messages).
pub fn func_name(f: Func) -> &'static str {
    f.name()
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
    fn every_action_names_known_modules_and_is_named_once() {
        for f in BUILTINS {
            for m in f.modules {
                assert!(module(m).is_some(), "{} names {m}", f.name);
            }
            assert!(f.min_args <= f.max_args, "{}", f.name);
        }
        let mut names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        for m in MODULES {
            assert!(
                m.actions.is_empty() || m.hooks.is_some_and(|h| h.start.is_some()),
                "{} runs nothing",
                m.name
            );
            let mut ids: Vec<u8> = m.actions.iter().map(|a| a.id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), m.actions.len(), "{}: an id twice", m.name);
            for a in m.actions {
                assert!(a.min_args <= a.max_args, "{}", a.name);
                assert!(a.also_in.iter().all(|o| module(o).is_some()), "{}", a.name);
                names.push(a.name);
            }
        }
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "an action is named twice");
        let mut mods: Vec<&str> = MODULES.iter().map(|m| m.name).collect();
        mods.sort();
        mods.dedup();
        assert_eq!(mods.len(), MODULES.len(), "a module is listed twice");
    }
}

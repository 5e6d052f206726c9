//! The compiled script: flat bytecode for every route block, with the
//! conditions, actions and regular expressions it refers to resolved once
//! at load, so running it parses nothing.

use std::fmt::Write as _;
use std::net::IpAddr;

use regex::bytes::Regex;

use super::ast::RouteKind;
use super::pv::{Format, Pv};
use super::registry::{Func, func_name};
use super::settings::{Alias, Proto};
use crate::sip::{Host as UriHost, Uri};

/// One instruction. Conditions leave their truth in the VM's return-value
/// register (positive true, negative false), as actions do in SER, so one
/// jump instruction serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    /// Evaluate `tests[i]`.
    Test(u32),
    /// Run `actions[i]`; a zero result ends the script (SER semantics).
    Act(u32),
    /// Call `routes[i]`; its return value becomes the result.
    Route(u32),
    /// Jump when (result > 0) == `when`.
    JumpIf {
        target: u32,
        when: bool,
    },
    Jump(u32),
    /// Leave the current route block with a value (`return(n)`, `break`,
    /// the end of a block).
    Return(i32),
    /// End the script (`exit`).
    Exit,
    /// End the script and discard the message (`drop`).
    Drop,
}

/// Left-hand operands of conditions (SER's core operands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Method,
    Uri,
    /// The From and To header fields' URIs (SER's `from_uri`, `to_uri`).
    FromUri,
    ToUri,
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    Proto,
    Af,
    MsgLen,
    Status,
}

impl Operand {
    pub fn parse(s: &str) -> Option<Operand> {
        Some(match s {
            "method" => Operand::Method,
            "uri" => Operand::Uri,
            "from_uri" => Operand::FromUri,
            "to_uri" => Operand::ToUri,
            "src_ip" => Operand::SrcIp,
            "dst_ip" => Operand::DstIp,
            "src_port" => Operand::SrcPort,
            "dst_port" => Operand::DstPort,
            "proto" => Operand::Proto,
            "af" => Operand::Af,
            "msg:len" => Operand::MsgLen,
            "status" => Operand::Status,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Operand::Method => "method",
            Operand::Uri => "uri",
            Operand::FromUri => "from_uri",
            Operand::ToUri => "to_uri",
            Operand::SrcIp => "src_ip",
            Operand::DstIp => "dst_ip",
            Operand::SrcPort => "src_port",
            Operand::DstPort => "dst_port",
            Operand::Proto => "proto",
            Operand::Af => "af",
            Operand::MsgLen => "msg:len",
            Operand::Status => "status",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl NumOp {
    pub fn holds(self, a: i64, b: i64) -> bool {
        self.orders(a, b)
    }

    /// The comparison on anything ordered (numbers, text).
    pub fn orders<T: Ord>(self, a: T, b: T) -> bool {
        match self {
            NumOp::Eq => a == b,
            NumOp::Ne => a != b,
            NumOp::Lt => a < b,
            NumOp::Gt => a > b,
            NumOp::Le => a <= b,
            NumOp::Ge => a >= b,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            NumOp::Eq => "==",
            NumOp::Ne => "!=",
            NumOp::Lt => "<",
            NumOp::Gt => ">",
            NumOp::Le => "<=",
            NumOp::Ge => ">=",
        }
    }
}

/// An address block: `IP`, `IP/len` or `IP/mask` (a mask is stored as its
/// prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// A compiled condition. `negate` folds `!=` and `!~` in.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Case-insensitive text equality (SER compares method and URI so).
    StrEq {
        operand: Operand,
        value: Box<str>,
        negate: bool,
    },
    Regex {
        operand: Operand,
        re: u32,
        negate: bool,
    },
    /// `uri==myself` (or `from_uri`, `to_uri`): the URI's host and port
    /// are ours.
    UriMyself {
        operand: Operand,
        negate: bool,
    },
    /// `src_ip == 10.0.0.0/8`, a hostname resolved at load, ...
    IpIn {
        operand: Operand,
        nets: Box<[Net]>,
        negate: bool,
    },
    /// `src_ip==myself`: one of the listen addresses.
    IpMyself {
        operand: Operand,
        negate: bool,
    },
    Num {
        operand: Operand,
        op: NumOp,
        value: i64,
    },
    ProtoIs {
        proto: Proto,
        negate: bool,
    },
    /// `af==inet6`.
    AfIs {
        v6: bool,
        negate: bool,
    },
    /// Kamailio's `$pv == "text"` (case-sensitive, as its string compare).
    PvStr {
        pv: Pv,
        value: Box<str>,
        negate: bool,
    },
    PvRegex {
        pv: Pv,
        re: u32,
        negate: bool,
    },
    /// `$pv <op> N`: the value read as an integer (none: false).
    PvNum {
        pv: Pv,
        op: NumOp,
        value: i64,
    },
    /// `$a == $b`: the two values' text.
    PvPv {
        a: Pv,
        b: Pv,
        negate: bool,
    },
    /// `if ($pv)`: a value that is neither empty nor `0`.
    PvTrue(Pv),
    /// Any other value as a condition, true as [`Test::PvTrue`].
    ValTrue(Val),
    /// Values compared: as numbers when the left is one (or either is,
    /// for `<`, `>`, `<=`, `>=`), else as text (case-sensitive).
    Values {
        a: Val,
        op: NumOp,
        b: Val,
    },
    ValRegex {
        a: Val,
        re: u32,
        negate: bool,
    },
}

/// What an assignment may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignTarget {
    Var(u16),
    /// `$avp(name) = value` adds a value; `= $null` removes them all.
    Avp(u16),
    Xavp(super::pv::XavpRef),
    /// `$sht(table=>key) = value`; `= $null` removes the item.
    Sht(Box<super::pv::ShtRef>),
    /// `$br = uri`: the first branch set (`$null`: removed).
    Branch,
    /// `$fs = "udp:IP:PORT"`: requests go out from that listen address
    /// (`$null`: the usual choice again).
    ForceSend,
    /// `$ru`, `$rU`, `$rd`: the current Request-URI, its user, its host.
    Ruri,
    RuriUser,
    RuriDomain,
    /// `$du`: the next hop.
    DstUri,
}

/// An assignment's value, compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(Box<str>),
    Int(i64),
    Pv(Pv),
    Bin(super::ast::BinOp, Box<Val>, Box<Val>),
    Unary(super::ast::UnOp, Box<Val>),
}

/// Where a forward goes: a fixed host, or the current URI's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host(Box<str>),
    UriHost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    /// The URI's port, or the scheme's default.
    UriPort,
    /// No port given: SIP's default (5060).
    Default,
    Port(u16),
}

/// `forward` and its transport-specific forms; `send` sends as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    Forward,
    Udp,
    Tcp,
    Tls,
    Send,
}

/// A module action's argument, checked and converted at load.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Str(Box<str>),
    /// Text with pseudo-variables (`$fU`, `$ru`, ...) filled per message.
    Fmt(Format),
    /// Index into [`Program::routes`].
    Route(u32),
}

/// `subst('/re/replacement/flags')`.
#[derive(Debug, Clone)]
pub struct SubstExpr {
    pub re: Regex,
    pub replacement: Box<str>,
    pub global: bool,
}

/// An action with its arguments resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `$var(x) = ...`, `$ru = ...`: the value evaluated, then stored.
    Assign {
        target: AssignTarget,
        value: Val,
    },
    Forward {
        kind: ForwardKind,
        target: Target,
        port: PortSpec,
    },
    /// SER levels: -3 alert .. -1 error, 1 warning, 2 notice, 3 info, 4 debug.
    Log {
        level: i8,
        msg: Format,
    },
    Strip(usize),
    Prefix(Box<str>),
    RewriteUri(Box<str>),
    RewriteHost(Box<str>),
    RewriteHostPort(Box<str>),
    RewriteUser(Box<str>),
    RewriteUserPass(Box<str>),
    RewritePort(Box<str>),
    AppendBranch(Option<Box<str>>),
    RevertUri,
    SetFlag(u8),
    /// Kamailio's `force_rport()`: as if the sender had asked for `rport`
    /// (RFC 3581): replies go to its source port, and the Via forwarded
    /// carries `rport=` and `received=`.
    ForceRport,
    /// Kamailio's `is_myself(uri)`: the URI (pseudo-variables filled) is
    /// one of ours (RFC 3261 §16.4).
    IsMyself(Format),
    /// kex's `isdsturiset()`: a next hop (`$du`) is set.
    IsDstUriSet,
    /// Kamailio's `set_reply_no_connect()`: a reply to this request is
    /// not to open a connection (the sender's may be gone behind NAT).
    SetReplyNoConnect,
    /// Kamailio's branch flags, of the Request-URI's branch (0).
    SetBFlag(u8),
    ResetBFlag(u8),
    IsBFlagSet(u8),
    ResetFlag(u8),
    IsFlagSet(u8),
    LenGt(usize),
    Search(u32),
    SearchAppend(u32, Box<str>),
    Replace(u32, Box<str>),
    Subst(u32),
    /// textops' `subst_uri('/re/replacement/flags')` on the current URI.
    SubstUri(u32),
    ExecDset(Box<str>),
    ExecMsg(Box<str>),
    /// Run by the module's runtime through the VM's host.
    Module {
        func: Func,
        args: Box<[Param]>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub kind: RouteKind,
    /// `None` for the main request route.
    pub name: Option<Box<str>>,
    pub entry: u32,
}

/// Which addresses and names are "myself".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Myself {
    /// Listen addresses with their ports.
    pub addrs: Vec<(IpAddr, u16)>,
    pub aliases: Vec<Alias>,
}

impl Myself {
    /// RFC 3261 §16.4's "is this URI mine": the host is a listen address
    /// with the URI's port (5060/5061 when absent), or an alias (any port
    /// unless the alias names one).
    pub fn has_uri(&self, u: &Uri<'_>) -> bool {
        let port = u.port_or_default();
        let addr_match = |ip: IpAddr| self.addrs.iter().any(|(a, p)| *a == ip && *p == port);
        let host_text = match u.host {
            UriHost::V4(ip) if addr_match(IpAddr::V4(ip)) => return true,
            UriHost::V6(ip) if addr_match(IpAddr::V6(ip)) => return true,
            UriHost::None => return false,
            _ => u.host_text(),
        };
        self.aliases.iter().any(|a| {
            a.host.as_bytes().eq_ignore_ascii_case(host_text) && a.port.is_none_or(|p| p == port)
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Program {
    pub code: Vec<Insn>,
    /// Source line of each instruction.
    pub lines: Vec<u32>,
    pub tests: Vec<Test>,
    pub actions: Vec<Action>,
    pub regexes: Vec<Regex>,
    pub substs: Vec<SubstExpr>,
    pub routes: Vec<Route>,
    pub myself: Myself,
}

impl Program {
    /// Index into [`Program::routes`] of a route block.
    pub fn route(&self, kind: RouteKind, name: Option<&str>) -> Option<u32> {
        self.routes
            .iter()
            .position(|r| r.kind == kind && r.name.as_deref() == name)
            .map(|i| i as u32)
    }

    /// The main request route, if the script has one.
    pub fn main_route(&self) -> Option<u32> {
        self.route(RouteKind::Request, None)
    }

    /// The module actions the script calls, with their arguments.
    pub fn module_calls(&self) -> impl Iterator<Item = (Func, &[Param])> {
        self.actions.iter().filter_map(|a| match a {
            Action::Module { func, args } => Some((*func, &args[..])),
            _ => None,
        })
    }

    /// Every pseudo-variable the program reads or writes, nested ones (a
    /// transformation's, an htable key's) included.
    pub fn each_pv(&self, f: &mut dyn FnMut(&Pv)) {
        fn pv(p: &Pv, f: &mut dyn FnMut(&Pv)) {
            f(p);
            match p {
                Pv::Tr(t) => pv(&t.pv, f),
                Pv::Sht(r) => format(&r.key, f),
                _ => {}
            }
        }
        fn format(fmt: &super::pv::Format, f: &mut dyn FnMut(&Pv)) {
            for part in fmt.parts.iter() {
                if let super::pv::Part::Var(p) = part {
                    pv(p, f);
                }
            }
        }
        fn val(v: &Val, f: &mut dyn FnMut(&Pv)) {
            match v {
                Val::Pv(p) => pv(p, f),
                Val::Bin(_, a, b) => {
                    val(a, f);
                    val(b, f);
                }
                Val::Unary(_, a) => val(a, f),
                Val::Str(_) | Val::Int(_) => {}
            }
        }
        for t in &self.tests {
            match t {
                Test::PvStr { pv: p, .. }
                | Test::PvRegex { pv: p, .. }
                | Test::PvNum { pv: p, .. }
                | Test::PvTrue(p) => pv(p, f),
                Test::PvPv { a, b, .. } => {
                    pv(a, f);
                    pv(b, f);
                }
                Test::ValTrue(a) | Test::ValRegex { a, .. } => val(a, f),
                Test::Values { a, b, .. } => {
                    val(a, f);
                    val(b, f);
                }
                _ => {}
            }
        }
        for a in &self.actions {
            match a {
                Action::Assign { target, value } => {
                    if let AssignTarget::Sht(r) = target {
                        pv(&Pv::Sht(r.clone()), f);
                    }
                    val(value, f);
                }
                Action::Log { msg, .. } => format(msg, f),
                Action::Module { args, .. } => {
                    for p in args.iter() {
                        if let Param::Fmt(fmt) = p {
                            format(fmt, f);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the script calls any action of module `module`.
    pub fn calls_module(&self, module: &str) -> bool {
        self.module_calls()
            .any(|(f, _)| f.module_def().name == module)
    }

    /// The string argument `arg` of every call to one of the actions
    /// named `funcs` (table names given to `save`, `www_authorize`, ...),
    /// sorted, each once.
    pub fn string_args(&self, funcs: &[&str], arg: usize) -> Vec<String> {
        let mut names: Vec<String> = self
            .module_calls()
            .filter(|(f, _)| funcs.contains(&f.name()))
            .filter_map(|(_, args)| match args.get(arg) {
                Some(Param::Str(s)) => Some(s.to_string()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The program as text, one instruction a line with its source line
    /// (`rser -c --dump`).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (i, insn) in self.code.iter().enumerate() {
            if let Some(r) = self.routes.iter().find(|r| r.entry as usize == i) {
                let _ = writeln!(out, "{}:", r.label());
            }
            let _ = writeln!(
                out,
                "  {i:04}  line {:<4} {}",
                self.lines[i],
                self.show(insn)
            );
        }
        out
    }

    fn show(&self, insn: &Insn) -> String {
        match *insn {
            Insn::Test(t) => format!("test {}", self.show_test(&self.tests[t as usize])),
            Insn::Act(a) => format!("act {}", self.show_action(&self.actions[a as usize])),
            Insn::Route(r) => format!("route {}", self.routes[r as usize].label()),
            Insn::JumpIf { target, when } => {
                format!(
                    "jump_if_{} {target:04}",
                    if when { "true" } else { "false" }
                )
            }
            Insn::Jump(t) => format!("jump {t:04}"),
            Insn::Return(v) => format!("return {v}"),
            Insn::Exit => "exit".into(),
            Insn::Drop => "drop".into(),
        }
    }

    fn show_test(&self, t: &Test) -> String {
        let eq = |n: bool| if n { "!=" } else { "==" };
        let matches = |n: bool| if n { "!~" } else { "=~" };
        match t {
            Test::StrEq {
                operand,
                value,
                negate,
            } => format!("{} {} {value:?}", operand.name(), eq(*negate)),
            Test::Regex {
                operand,
                re,
                negate,
            } => format!(
                "{} {} /{}/",
                operand.name(),
                matches(*negate),
                self.regexes[*re as usize].as_str()
            ),
            Test::UriMyself { operand, negate } => {
                format!("{} {} myself", operand.name(), eq(*negate))
            }
            Test::IpIn {
                operand,
                nets,
                negate,
            } => {
                let nets: Vec<String> = nets
                    .iter()
                    .map(|n| format!("{}/{}", n.addr, n.prefix))
                    .collect();
                let op = if *negate { "not in" } else { "in" };
                format!("{} {op} [{}]", operand.name(), nets.join(", "))
            }
            Test::IpMyself { operand, negate } => {
                format!("{} {} myself", operand.name(), eq(*negate))
            }
            Test::Num { operand, op, value } => {
                format!("{} {} {value}", operand.name(), op.symbol())
            }
            Test::ProtoIs { proto, negate } => format!("proto {} {}", eq(*negate), proto.name()),
            Test::AfIs { v6, negate } => {
                format!("af {} {}", eq(*negate), if *v6 { "inet6" } else { "inet" })
            }
            Test::PvStr { pv, value, negate } => {
                format!("{} {} {value:?}", pv_name(pv), eq(*negate))
            }
            Test::PvRegex { pv, re, negate } => format!(
                "{} {} /{}/",
                pv_name(pv),
                matches(*negate),
                self.regexes[*re as usize].as_str()
            ),
            Test::PvNum { pv, op, value } => format!("{} {} {value}", pv_name(pv), op.symbol()),
            Test::PvPv { a, b, negate } => {
                format!("{} {} {}", pv_name(a), eq(*negate), pv_name(b))
            }
            Test::PvTrue(pv) => format!("{} is set", pv_name(pv)),
            Test::ValTrue(v) => format!("{} is set", show_val(v)),
            Test::Values { a, op, b } => {
                format!("{} {} {}", show_val(a), op.symbol(), show_val(b))
            }
            Test::ValRegex { a, re, negate } => format!(
                "{} {} /{}/",
                show_val(a),
                matches(*negate),
                self.regexes[*re as usize].as_str()
            ),
        }
    }

    fn show_action(&self, a: &Action) -> String {
        match a {
            Action::Assign { target, value } => {
                let t = match target {
                    AssignTarget::Var(i) => format!("$var({})", super::pv::var_name(*i)),
                    AssignTarget::Avp(i) => {
                        format!(
                            "$avp({})",
                            super::pv::var_name(*i).trim_start_matches("avp:")
                        )
                    }
                    AssignTarget::Xavp(x) => pv_name(&Pv::Xavp(*x)),
                    AssignTarget::Sht(r) => pv_name(&Pv::Sht(r.clone())),
                    AssignTarget::Branch => "$br".into(),
                    AssignTarget::ForceSend => "$fs".into(),
                    AssignTarget::Ruri => "$ru".into(),
                    AssignTarget::RuriUser => "$rU".into(),
                    AssignTarget::RuriDomain => "$rd".into(),
                    AssignTarget::DstUri => "$du".into(),
                };
                format!("{t} = {}", show_val(value))
            }
            Action::Forward { kind, target, port } => {
                let name = match kind {
                    ForwardKind::Forward => "forward",
                    ForwardKind::Udp => "forward_udp",
                    ForwardKind::Tcp => "forward_tcp",
                    ForwardKind::Tls => "forward_tls",
                    ForwardKind::Send => "send",
                };
                let host = match target {
                    Target::Host(h) => h.to_string(),
                    Target::UriHost => "uri:host".into(),
                };
                let port = match port {
                    PortSpec::Port(p) => p.to_string(),
                    PortSpec::UriPort => "uri:port".into(),
                    PortSpec::Default => "default".into(),
                };
                format!("{name}({host}, {port})")
            }
            Action::Log { level, msg } => format!("log({level}, {msg})"),
            Action::Strip(n) => format!("strip({n})"),
            Action::Prefix(s) => format!("prefix({s:?})"),
            Action::RewriteUri(s) => format!("rewriteuri({s:?})"),
            Action::RewriteHost(s) => format!("rewritehost({s:?})"),
            Action::RewriteHostPort(s) => format!("rewritehostport({s:?})"),
            Action::RewriteUser(s) => format!("rewriteuser({s:?})"),
            Action::RewriteUserPass(s) => format!("rewriteuserpass({s:?})"),
            Action::RewritePort(s) => format!("rewriteport({s:?})"),
            Action::AppendBranch(None) => "append_branch()".into(),
            Action::AppendBranch(Some(s)) => format!("append_branch({s:?})"),
            Action::RevertUri => "revert_uri()".into(),
            Action::SetFlag(f) => format!("setflag({f})"),
            Action::ForceRport => "force_rport()".into(),
            Action::IsMyself(f) => format!("is_myself({f})"),
            Action::IsDstUriSet => "isdsturiset()".into(),
            Action::SetReplyNoConnect => "set_reply_no_connect()".into(),
            Action::SetBFlag(f) => format!("setbflag({f})"),
            Action::ResetBFlag(f) => format!("resetbflag({f})"),
            Action::IsBFlagSet(f) => format!("isbflagset({f})"),
            Action::ResetFlag(f) => format!("resetflag({f})"),
            Action::IsFlagSet(f) => format!("isflagset({f})"),
            Action::LenGt(n) => format!("len_gt({n})"),
            Action::Search(re) => format!("search(/{}/)", self.regexes[*re as usize].as_str()),
            Action::SearchAppend(re, s) => format!(
                "search_append(/{}/, {s:?})",
                self.regexes[*re as usize].as_str()
            ),
            Action::Replace(re, s) => {
                format!("replace(/{}/, {s:?})", self.regexes[*re as usize].as_str())
            }
            Action::Subst(i) | Action::SubstUri(i) => {
                let s = &self.substs[*i as usize];
                let g = if s.global { "g" } else { "" };
                let name = if matches!(a, Action::Subst(_)) {
                    "subst"
                } else {
                    "subst_uri"
                };
                format!("{name}(/{}/{}/{g})", s.re.as_str(), s.replacement)
            }
            Action::ExecDset(c) => format!("exec_dset({c:?})"),
            Action::ExecMsg(c) => format!("exec_msg({c:?})"),
            Action::Module { func, args } => {
                let args: Vec<String> = args.iter().map(|p| self.show_param(p)).collect();
                format!("{}({})", func_name(*func), args.join(", "))
            }
        }
    }

    fn show_param(&self, p: &Param) -> String {
        match p {
            Param::Int(n) => n.to_string(),
            Param::Str(s) => format!("{s:?}"),
            Param::Fmt(f) => f.to_string(),
            Param::Route(r) => self.routes[*r as usize].label(),
        }
    }
}

/// `route`, `failure_route[1]`, ... as the script writes it.
pub fn route_label(kind: RouteKind, name: Option<&str>) -> String {
    let k = match kind {
        RouteKind::Request => "route",
        RouteKind::Failure => "failure_route",
        RouteKind::Reply => "onreply_route",
        RouteKind::Branch => "branch_route",
        RouteKind::Event => "event_route",
        RouteKind::OnSend => "onsend_route",
    };
    match name {
        Some(n) => format!("{k}[{n}]"),
        None => k.to_string(),
    }
}

impl Route {
    fn label(&self) -> String {
        route_label(self.kind, self.name.as_deref())
    }
}

fn show_val(v: &Val) -> String {
    use super::ast::BinOp::*;
    match v {
        Val::Str(s) => format!("{s:?}"),
        Val::Int(n) => n.to_string(),
        Val::Pv(p) => pv_name(p),
        Val::Bin(op, a, b) => {
            let op = match op {
                Add => "+",
                Sub => "-",
                Mul => "*",
                Div => "/",
                Mod => "%",
                BitOr => "|",
                BitAnd => "&",
            };
            format!("({} {op} {})", show_val(a), show_val(b))
        }
        Val::Unary(op, v) => {
            let op = match op {
                super::ast::UnOp::Strlen => "strlen",
                super::ast::UnOp::Strempty => "strempty",
                super::ast::UnOp::Defined => "defined",
            };
            format!("{op}({})", show_val(v))
        }
    }
}

/// A pseudo-variable as `--dump` prints it.
fn pv_name(pv: &Pv) -> String {
    let f = super::pv::Format {
        parts: Box::new([super::pv::Part::Var(pv.clone())]),
    };
    f.to_string().trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_match_by_prefix() {
        let n = Net {
            addr: "192.168.0.0".parse().unwrap(),
            prefix: 16,
        };
        assert!(n.contains("192.168.77.1".parse().unwrap()));
        assert!(!n.contains("192.169.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let all = Net {
            addr: "0.0.0.0".parse().unwrap(),
            prefix: 0,
        };
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let host = Net {
            addr: "::1".parse().unwrap(),
            prefix: 128,
        };
        assert!(host.contains("::1".parse().unwrap()));
    }
}

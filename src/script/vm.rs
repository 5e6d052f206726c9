//! Runs a compiled [`Program`] for one message. Core actions, textops and
//! exec run here; forwarding and module actions (sl, tm, registrar, ...)
//! go to a [`Host`], which the server provides and tests replace.
//!
//! SER's return semantics: an action's positive value is true, negative is
//! false, and zero ends the script. Execution is bounded in route depth
//! and in instructions, so no script can loop a worker forever.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use arrayvec::{ArrayString, ArrayVec};

use crate::cfg::Config;
use crate::cfg::program::{
    Action, AssignTarget, ForwardKind, Insn, Operand, Param, PortSpec, Program, Target, Test, Val,
};
use crate::cfg::registry::Func;
use crate::cfg::settings::Proto;
use crate::sip::{Host as UriHost, Scheme, Uri};

use super::avp::MAX_AVPS;
use super::ctx::{MsgCtx, VarValue};
use super::exec::{self, Job};
use super::pv::format_into;
use super::textops;
use super::uri_ops::Rewrite;

/// Deepest `route(N)` nesting (recursion is allowed, unbounded is not).
pub const MAX_ROUTE_DEPTH: usize = 64;
/// Most instructions one message may run.
pub const MAX_STEPS: u32 = 100_000;

const TRUE: i32 = 1;
const FALSE: i32 = -1;

/// Where a forward goes, resolved from the action and the current URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Host name or address text (IPv6 without brackets).
    pub host: ArrayString<255>,
    pub port: u16,
    /// From the URI's `transport` parameter or the action (`forward_tcp`).
    pub proto: Proto,
    /// Whether one of those chose it (else it is the default, which a
    /// request too large for UDP overrides, RFC 3261 §18.1.1).
    pub proto_forced: bool,
    pub kind: ForwardKind,
}

/// What the VM cannot do alone: send, and run module actions.
pub trait Host {
    /// `forward`, `forward_udp`, `forward_tcp`, `send`.
    fn forward(&mut self, ctx: &mut MsgCtx<'_, '_>, dest: &Destination) -> i32;
    /// A module action with its checked arguments.
    fn module(&mut self, ctx: &mut MsgCtx<'_, '_>, func: Func, args: &[Param]) -> i32;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunError {
    /// `route(N)` nested deeper than [`MAX_ROUTE_DEPTH`].
    TooDeep { line: u32 },
    /// More than [`MAX_STEPS`] instructions.
    TooLong { line: u32 },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::TooDeep { line } => write!(
                f,
                "route() nested deeper than {MAX_ROUTE_DEPTH} at config line {line}; script ended"
            ),
            RunError::TooLong { line } => write!(
                f,
                "more than {MAX_STEPS} instructions at config line {line}; script ended"
            ),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The last result (SER's return code).
    pub ret: i32,
    /// `drop` was executed.
    pub dropped: bool,
    pub error: Option<RunError>,
}

/// A loaded program plus the settings its actions need.
pub struct Vm<'p> {
    prog: &'p Program,
    time_to_kill: Duration,
}

impl<'p> Vm<'p> {
    pub fn new(config: &'p Config) -> Vm<'p> {
        let secs = config.modparam_int("exec", "time_to_kill", 0);
        let time_to_kill = if secs > 0 {
            Duration::from_secs(secs as u64)
        } else {
            exec::DEFAULT_TIME_TO_KILL
        };
        Vm {
            prog: &config.program,
            time_to_kill,
        }
    }

    pub fn program(&self) -> &'p Program {
        self.prog
    }

    /// Runs route block `route` (an index into `Program::routes`).
    pub fn run(&self, route: u32, ctx: &mut MsgCtx<'_, '_>, host: &mut dyn Host) -> Outcome {
        let code = &self.prog.code;
        let mut pc = self.prog.routes[route as usize].entry as usize;
        let mut stack: ArrayVec<u32, MAX_ROUTE_DEPTH> = ArrayVec::new();
        let mut ret = TRUE;
        let mut steps = 0u32;
        let end = |ret, dropped, error| Outcome {
            ret,
            dropped,
            error,
        };
        loop {
            steps += 1;
            if steps > MAX_STEPS {
                let line = self.prog.lines[pc];
                return end(0, false, Some(RunError::TooLong { line }));
            }
            match code[pc] {
                Insn::Test(t) => {
                    ret = if self.test(&self.prog.tests[t as usize], ctx) {
                        TRUE
                    } else {
                        FALSE
                    };
                    pc += 1;
                }
                Insn::Act(a) => {
                    ret = self.act(&self.prog.actions[a as usize], ctx, host);
                    ctx.st.last_ret = ret;
                    if ret == 0 {
                        return end(0, false, None);
                    }
                    pc += 1;
                }
                Insn::Route(r) => {
                    if stack.try_push(pc as u32 + 1).is_err() {
                        let line = self.prog.lines[pc];
                        return end(0, false, Some(RunError::TooDeep { line }));
                    }
                    pc = self.prog.routes[r as usize].entry as usize;
                }
                Insn::JumpIf { target, when } => {
                    pc = if (ret > 0) == when {
                        target as usize
                    } else {
                        pc + 1
                    };
                }
                Insn::Jump(target) => pc = target as usize,
                Insn::Return(v) => {
                    ret = v;
                    ctx.st.last_ret = ret;
                    match stack.pop() {
                        Some(back) if ret != 0 => pc = back as usize,
                        _ => return end(ret, false, None),
                    }
                }
                Insn::Exit => return end(ret, false, None),
                Insn::Drop => return end(ret, true, None),
            }
        }
    }

    // ---- conditions ----

    fn test(&self, t: &Test, ctx: &mut MsgCtx<'_, '_>) -> bool {
        match t {
            Test::PvStr { pv, value, negate } => {
                self.with_pv(pv, ctx, |v| v == value.as_bytes()) != *negate
            }
            Test::PvRegex { pv, re, negate } => {
                let re = &self.prog.regexes[*re as usize];
                self.with_pv(pv, ctx, |v| re.is_match(v)) != *negate
            }
            Test::PvNum { pv, op, value } => self.with_pv(pv, ctx, |v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .is_some_and(|n| op.holds(n, *value))
            }),
            Test::PvPv { a, b, negate } => {
                let mut other = std::mem::take(&mut ctx.st.pv_other);
                other.clear();
                crate::script::pv::pv_into(b, ctx, &mut other);
                let same = self.with_pv(a, ctx, |v| v == &other[..]);
                ctx.st.pv_other = other;
                same != *negate
            }
            Test::PvTrue(pv) => self.with_pv(pv, ctx, |v| !v.is_empty() && v != b"0"),
            Test::ValTrue(v) => match eval(v, ctx) {
                VarValue::Null => false,
                VarValue::Int(n) => n != 0,
                VarValue::Str(s) => !s.is_empty() && s != b"0",
            },
            Test::Values { a, op, b } => {
                let (a, b) = (eval(a, ctx), eval(b, ctx));
                let ordering = !matches!(
                    op,
                    crate::cfg::program::NumOp::Eq | crate::cfg::program::NumOp::Ne
                );
                let numbers =
                    matches!(a, VarValue::Int(_)) || (ordering && matches!(b, VarValue::Int(_)));
                if numbers {
                    op.holds(a.int(), b.int())
                } else {
                    op.orders(&*a.text(), &*b.text())
                }
            }
            Test::ValRegex { a, re, negate } => {
                let re = &self.prog.regexes[*re as usize];
                re.is_match(&eval(a, ctx).text()) != *negate
            }
            Test::StrEq {
                operand,
                value,
                negate,
            } => text_operand(*operand, ctx).eq_ignore_ascii_case(value.as_bytes()) != *negate,
            Test::Regex {
                operand,
                re,
                negate,
            } => {
                let re = &self.prog.regexes[*re as usize];
                let mut buf = ArrayString::<64>::new();
                let hay: &[u8] = match operand {
                    Operand::Method | Operand::Uri | Operand::FromUri | Operand::ToUri => {
                        text_operand(*operand, ctx)
                    }
                    _ => {
                        number_text(*operand, ctx, &mut buf);
                        buf.as_bytes()
                    }
                };
                re.is_match(hay) != *negate
            }
            Test::UriMyself { operand, negate } => {
                self.uri_is_myself(text_operand(*operand, ctx)) != *negate
            }
            Test::IpIn {
                operand,
                nets,
                negate,
            } => {
                let ip = ip_operand(*operand, ctx);
                nets.iter().any(|n| n.contains(ip)) != *negate
            }
            Test::IpMyself { operand, negate } => {
                let ip = ip_operand(*operand, ctx);
                self.prog.myself.addrs.iter().any(|(a, _)| *a == ip) != *negate
            }
            Test::Num { operand, op, value } => match number_operand(*operand, ctx) {
                Some(n) => op.holds(n, *value),
                None => false,
            },
            Test::ProtoIs { proto, negate } => (ctx.proto == *proto) != *negate,
            Test::AfIs { v6, negate } => (ctx.src.is_ipv6() == *v6) != *negate,
        }
    }

    /// `f` on a pseudo-variable's value, read into the state's buffer (no
    /// allocation once it has grown).
    fn with_pv(
        &self,
        pv: &crate::cfg::pv::Pv,
        ctx: &mut MsgCtx<'_, '_>,
        f: impl FnOnce(&[u8]) -> bool,
    ) -> bool {
        let mut buf = std::mem::take(&mut ctx.st.pv_value);
        buf.clear();
        crate::script::pv::pv_into(pv, ctx, &mut buf);
        let r = f(&buf);
        ctx.st.pv_value = buf;
        r
    }

    /// `uri==myself` (RFC 3261 §16.4): a URI that does not parse is not ours.
    fn uri_is_myself(&self, uri: &[u8]) -> bool {
        Uri::parse(uri).is_ok_and(|u| self.prog.myself.has_uri(&u))
    }

    // ---- actions ----

    fn act(&self, a: &Action, ctx: &mut MsgCtx<'_, '_>, host: &mut dyn Host) -> i32 {
        match a {
            Action::Assign { target, value } => {
                let v = eval(value, ctx);
                match target {
                    AssignTarget::Var(i) => {
                        super::vars::set(*i, v);
                        TRUE
                    }
                    AssignTarget::Avp(i) => match ctx.st.avps.set(*i, v) {
                        Ok(()) => TRUE,
                        Err(e) => {
                            log::warn!(
                                "script: $avp not set: {e:?} (at most {MAX_AVPS} a message)"
                            );
                            FALSE
                        }
                    },
                    AssignTarget::ForceSend => match force_send(&v) {
                        Ok(a) => {
                            ctx.st.force_send = a;
                            TRUE
                        }
                        Err(()) => {
                            log::warn!(
                                "script: $fs = {:?}: not udp:IP:PORT (rser serves UDP only)",
                                String::from_utf8_lossy(&v.text())
                            );
                            FALSE
                        }
                    },
                    AssignTarget::Branch => {
                        let uri = (v != VarValue::Null).then(|| v.text());
                        if ctx.set_first_branch(uri.as_deref()) {
                            TRUE
                        } else {
                            log::warn!("script: $br not set: the destination set is full");
                            FALSE
                        }
                    }
                    AssignTarget::Sht(r) => {
                        let mut key = Vec::new();
                        crate::script::pv::format_into(&r.key, ctx, &mut key);
                        match crate::modules::htable::set(r.table, &key, &v) {
                            Ok(()) => TRUE,
                            Err(e) => {
                                log::warn!(
                                    "script: $sht({}=>{}) not set: {e:?}",
                                    r.table_name(),
                                    String::from_utf8_lossy(&key)
                                );
                                FALSE
                            }
                        }
                    }
                    AssignTarget::Xavp(x) => match ctx.st.avps.xset(x.name, x.index, x.field, v) {
                        Ok(()) => TRUE,
                        Err(e) => {
                            log::warn!("script: $xavp not set: {e:?}");
                            FALSE
                        }
                    },
                    AssignTarget::Ruri => self.rewrite(ctx, Rewrite::Uri(&v.text())),
                    AssignTarget::RuriUser => self.rewrite(ctx, Rewrite::User(&v.text())),
                    AssignTarget::RuriDomain => self.rewrite(ctx, Rewrite::Host(&v.text())),
                    AssignTarget::DstUri => {
                        let t = v.text();
                        ctx.st.dst_uri.clear();
                        ctx.st.dst_uri.extend_from_slice(&t);
                        TRUE
                    }
                }
            }
            Action::Forward { kind, target, port } => {
                match destination(ctx, *kind, target, *port) {
                    Some(dest) => host.forward(ctx, &dest),
                    None => {
                        if crate::sip::uri::is_sip_scheme(ctx.uri()) {
                            log::warn!(
                                "forward: no destination in the current URI '{}'",
                                String::from_utf8_lossy(ctx.uri())
                            );
                        } else {
                            ctx.st.last_error = Some(crate::sip::uri::UNSUPPORTED_SCHEME);
                        }
                        FALSE
                    }
                }
            }
            Action::Log { level, msg } => {
                let level = log_level(*level);
                if log::log_enabled!(level) {
                    let mut out = Vec::new();
                    format_into(msg, ctx, &mut out);
                    log::log!(level, "{}", String::from_utf8_lossy(&out).trim_end());
                }
                TRUE
            }
            Action::Strip(n) => self.rewrite(ctx, Rewrite::Strip(*n)),
            Action::Prefix(s) => self.rewrite(ctx, Rewrite::Prefix(s.as_bytes())),
            Action::RewriteUri(s) => self.rewrite(ctx, Rewrite::Uri(s.as_bytes())),
            Action::RewriteHost(s) => self.rewrite(ctx, Rewrite::Host(s.as_bytes())),
            Action::RewriteHostPort(s) => self.rewrite(ctx, Rewrite::HostPort(s.as_bytes())),
            Action::RewriteUser(s) => self.rewrite(ctx, Rewrite::User(s.as_bytes())),
            Action::RewriteUserPass(s) => self.rewrite(ctx, Rewrite::UserPass(s.as_bytes())),
            Action::RewritePort(s) => self.rewrite(ctx, Rewrite::Port(s.as_bytes())),
            Action::AppendBranch(uri) => {
                let ok = match uri {
                    Some(u) => ctx.append_branch(u.as_bytes()),
                    None => ctx.append_current_uri(),
                };
                if ok {
                    TRUE
                } else {
                    log::warn!(
                        "append_branch: the destination set is full ({} URIs)",
                        super::ctx::MAX_BRANCHES
                    );
                    FALSE
                }
            }
            Action::RevertUri => {
                ctx.revert_uri();
                TRUE
            }
            Action::SetBFlag(f) => {
                ctx.st.bflags |= 1 << f;
                TRUE
            }
            Action::ResetBFlag(f) => {
                ctx.st.bflags &= !(1 << f);
                TRUE
            }
            Action::IsBFlagSet(f) => {
                if ctx.st.bflags & (1 << f) != 0 {
                    TRUE
                } else {
                    FALSE
                }
            }
            Action::SetReplyNoConnect => {
                ctx.st.reply_no_connect = true;
                TRUE
            }
            Action::ForceRport => {
                ctx.st.force_rport = true;
                TRUE
            }
            Action::IsMyself(f) => {
                let mut uri = std::mem::take(&mut ctx.st.pv_value);
                uri.clear();
                format_into(f, ctx, &mut uri);
                let mine = self.uri_is_myself(&uri);
                ctx.st.pv_value = uri;
                if mine { TRUE } else { FALSE }
            }
            Action::IsDstUriSet => {
                if ctx.st.dst_uri.is_empty() {
                    FALSE
                } else {
                    TRUE
                }
            }
            Action::SetFlag(f) => {
                ctx.st.flags |= 1 << f;
                TRUE
            }
            Action::ResetFlag(f) => {
                ctx.st.flags &= !(1 << f);
                TRUE
            }
            Action::IsFlagSet(f) => truth(ctx.st.flags & (1 << f) != 0),
            Action::LenGt(n) => truth(ctx.msg.buf().len() > *n),
            Action::Search(re) => textops::search(ctx, &self.prog.regexes[*re as usize]),
            Action::SearchAppend(re, s) => {
                textops::search_append(ctx, &self.prog.regexes[*re as usize], s)
            }
            Action::Replace(re, s) => textops::replace(ctx, &self.prog.regexes[*re as usize], s),
            Action::Subst(i) => textops::subst(ctx, &self.prog.substs[*i as usize]),
            Action::SubstUri(i) => {
                match textops::subst_text(ctx.uri(), &self.prog.substs[*i as usize]) {
                    Some(uri) => self.rewrite(ctx, Rewrite::Uri(&uri)),
                    None => FALSE,
                }
            }
            Action::ExecDset(cmd) => self.exec_dset(ctx, cmd),
            Action::ExecMsg(cmd) => self.exec_msg(ctx, cmd),
            Action::Module { func, args } => host.module(ctx, *func, args),
        }
    }

    fn rewrite(&self, ctx: &mut MsgCtx<'_, '_>, op: Rewrite<'_>) -> i32 {
        match ctx.rewrite_uri(op) {
            Ok(()) => TRUE,
            Err(e) => {
                log::warn!(
                    "URI rewrite of '{}' failed: {e}",
                    String::from_utf8_lossy(ctx.uri())
                );
                FALSE
            }
        }
    }

    /// `exec_dset`: the command gets the current URI as its last argument
    /// (shell-quoted) and in `SIP_RURI`; its output lines become the
    /// destination set, the first one the new Request-URI.
    fn exec_dset(&self, ctx: &mut MsgCtx<'_, '_>, cmd: &str) -> i32 {
        let uri = String::from_utf8_lossy(ctx.uri()).into_owned();
        let mut line = format!("{cmd} ");
        exec::shell_quote(&uri, &mut line);
        let src = ctx.src.ip().to_string();
        let job = Job {
            command: &line,
            env: &[("SIP_RURI", &uri), ("SRCIP", &src)],
            input: b"",
            capture: true,
            time_to_kill: self.time_to_kill,
        };
        let out = match exec::run(&job) {
            Ok(f) if f.status.success() => f.output,
            Ok(f) => {
                log::warn!("exec_dset: '{cmd}' exited with {}", f.status);
                return FALSE;
            }
            Err(e) => {
                log::warn!("exec_dset: '{cmd}': {e}");
                return FALSE;
            }
        };
        let mut uris = out
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .filter(|l| !l.is_empty());
        let Some(first) = uris.next() else {
            log::warn!("exec_dset: '{cmd}' printed no URI");
            return FALSE;
        };
        if Uri::parse(first).is_err() || ctx.rewrite_uri(Rewrite::Uri(first)).is_err() {
            log::warn!(
                "exec_dset: '{cmd}' printed '{}', not a URI",
                String::from_utf8_lossy(first)
            );
            return FALSE;
        }
        ctx.clear_branches();
        for u in uris {
            if Uri::parse(u).is_err() {
                log::warn!(
                    "exec_dset: skipping '{}', not a URI",
                    String::from_utf8_lossy(u)
                );
            } else if !ctx.append_branch(u) {
                log::warn!("exec_dset: destination set full; later URIs dropped");
                break;
            }
        }
        TRUE
    }

    /// `exec_msg`: the message on the command's standard input, the source
    /// address in `SRCIP`; true when the command exits with 0.
    fn exec_msg(&self, ctx: &mut MsgCtx<'_, '_>, cmd: &str) -> i32 {
        let src = ctx.src.ip().to_string();
        let uri = String::from_utf8_lossy(ctx.uri()).into_owned();
        let job = Job {
            command: cmd,
            env: &[("SRCIP", &src), ("SIP_RURI", &uri)],
            input: ctx.msg.buf(),
            capture: false,
            time_to_kill: self.time_to_kill,
        };
        match exec::run(&job) {
            Ok(f) if f.status.success() => TRUE,
            Ok(f) => {
                log::info!("exec_msg: '{cmd}' exited with {}", f.status);
                FALSE
            }
            Err(e) => {
                log::warn!("exec_msg: '{cmd}': {e}");
                FALSE
            }
        }
    }
}

fn truth(b: bool) -> i32 {
    if b { TRUE } else { FALSE }
}

/// SER's levels onto `log`'s: negative are errors, 1 warning, 2-3 info.
fn log_level(ser: i8) -> log::Level {
    match ser {
        i8::MIN..=0 => log::Level::Error,
        1 => log::Level::Warn,
        2 | 3 => log::Level::Info,
        _ => log::Level::Debug,
    }
}

fn text_operand<'c>(op: Operand, ctx: &'c MsgCtx<'_, '_>) -> &'c [u8] {
    match op {
        Operand::Uri => ctx.uri(),
        // A missing or bad header field reads as empty (never ours).
        Operand::FromUri => ctx.msg.from().map_or(&b""[..], |f| f.addr_spec),
        Operand::ToUri => ctx.msg.to().map_or(&b""[..], |t| t.addr_spec),
        // In a reply, the method is the CSeq's (as SER has it).
        _ if !ctx.msg.is_request() => ctx.msg.cseq().map_or(&b""[..], |c| c.method_raw),
        _ => ctx.msg.method_raw(),
    }
}

fn ip_operand(op: Operand, ctx: &MsgCtx<'_, '_>) -> IpAddr {
    if op == Operand::DstIp {
        ctx.dst.ip()
    } else {
        ctx.src.ip()
    }
}

fn number_operand(op: Operand, ctx: &MsgCtx<'_, '_>) -> Option<i64> {
    Some(match op {
        Operand::SrcPort => i64::from(ctx.src.port()),
        Operand::DstPort => i64::from(ctx.dst.port()),
        Operand::MsgLen => ctx.msg.buf().len() as i64,
        Operand::Status => i64::from(ctx.status?),
        _ => return None,
    })
}

/// An operand as text, for `=~` on addresses, ports and status codes.
fn number_text(op: Operand, ctx: &MsgCtx<'_, '_>, out: &mut ArrayString<64>) {
    let _ = match op {
        Operand::SrcIp | Operand::DstIp => write!(out, "{}", ip_operand(op, ctx)),
        Operand::Proto => write!(out, "{}", ctx.proto.name()),
        Operand::Af => write!(out, "{}", if ctx.src.is_ipv6() { "inet6" } else { "inet" }),
        _ => match number_operand(op, ctx) {
            Some(n) => write!(out, "{n}"),
            None => Ok(()),
        },
    };
}

/// Resolves a forward's target against the current URI.
fn destination(
    ctx: &MsgCtx<'_, '_>,
    kind: ForwardKind,
    target: &Target,
    port: PortSpec,
) -> Option<Destination> {
    let parsed = match (target, port) {
        (Target::Host(_), PortSpec::Port(_) | PortSpec::Default) => None,
        _ => Some(Uri::parse(ctx.uri()).ok()?),
    };
    let mut host = ArrayString::new();
    match target {
        Target::Host(h) => host.try_push_str(h.trim_start_matches('[').trim_end_matches(']')),
        Target::UriHost => {
            let u = parsed.as_ref()?;
            if u.host == UriHost::None {
                return None;
            }
            host.try_push_str(std::str::from_utf8(u.host_text()).ok()?)
        }
    }
    .ok()?;
    let secure = parsed.as_ref().is_some_and(|u| u.scheme == Scheme::Sips);
    let default_port = if secure { 5061 } else { 5060 };
    let port = match port {
        PortSpec::Port(p) => p,
        PortSpec::Default => default_port,
        PortSpec::UriPort => parsed.as_ref()?.port_or_default(),
    };
    let uri_proto = parsed
        .as_ref()
        .and_then(|u| u.transport)
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(Proto::parse);
    let proto = match kind {
        ForwardKind::Udp => Proto::Udp,
        ForwardKind::Tcp => Proto::Tcp,
        ForwardKind::Tls => Proto::Tls,
        ForwardKind::Forward | ForwardKind::Send => {
            uri_proto.unwrap_or(if secure { Proto::Tls } else { Proto::Udp })
        }
    };
    Some(Destination {
        host,
        port,
        proto,
        proto_forced: uri_proto.is_some()
            || matches!(kind, ForwardKind::Udp | ForwardKind::Tcp | ForwardKind::Tls),
        kind,
    })
}

/// `$fs`'s value: `[udp:]IP:PORT` (an IPv6 address in brackets), or
/// `$null` for none.
fn force_send(v: &VarValue) -> Result<Option<std::net::SocketAddr>, ()> {
    if *v == VarValue::Null {
        return Ok(None);
    }
    let text = v.text();
    let text = std::str::from_utf8(&text).map_err(|_| ())?;
    let addr = text.strip_prefix("udp:").unwrap_or(text);
    addr.parse().map(Some).map_err(|_| ())
}

/// An assignment's value. Pseudo-variables that are numbers in Kamailio
/// (`$cs`, `$sp`, `$Rp`, `$rs`, `$rp`, an int `$var`) are numbers here.
fn eval(v: &Val, ctx: &MsgCtx<'_, '_>) -> VarValue {
    use crate::cfg::ast::BinOp;
    match v {
        Val::Str(s) => VarValue::Str(s.as_bytes().to_vec()),
        Val::Int(n) => VarValue::Int(*n),
        Val::Pv(pv) => crate::script::pv::typed(pv, ctx),
        Val::Unary(op, v) => {
            use crate::cfg::ast::UnOp;
            let v = eval(v, ctx);
            VarValue::Int(match op {
                UnOp::Strlen => i64::try_from(v.text().len()).unwrap_or(i64::MAX),
                UnOp::Strempty => i64::from(v.text().is_empty()),
                UnOp::Defined => i64::from(v != VarValue::Null),
            })
        }
        Val::Bin(op, a, b) => {
            let (a, b) = (eval(a, ctx), eval(b, ctx));
            if let (BinOp::Add, VarValue::Str(mut s)) = (op, a.clone()) {
                // Text on the left: concatenation.
                s.extend_from_slice(&b.text());
                return VarValue::Str(s);
            }
            let (x, y) = (a.int(), b.int());
            VarValue::Int(match op {
                BinOp::Add => x.wrapping_add(y),
                BinOp::Sub => x.wrapping_sub(y),
                BinOp::Mul => x.wrapping_mul(y),
                BinOp::Div | BinOp::Mod if y == 0 => {
                    log::warn!("script: division by zero gives 0");
                    0
                }
                BinOp::Div => x.wrapping_div(y),
                BinOp::Mod => x.wrapping_rem(y),
                BinOp::BitOr => x | y,
                BinOp::BitAnd => x & y,
            })
        }
    }
}

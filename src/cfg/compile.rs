//! Route blocks to bytecode. Checking happens on the way: every action
//! name, arity, argument, module and route reference is resolved here, so
//! a program that compiles needs no checks while it runs.

use std::collections::HashSet;
use std::net::{IpAddr, ToSocketAddrs};

use regex::bytes::{Regex, RegexBuilder};

use super::ConfigError;
use super::ast::{Arg, Call, CmpOp, Expr, Rhs, RouteKind, Script, Stmt, ValueExpr};
use super::fixup::{Fixup, int_in, nonempty, route_ref, show, text};
use super::lexer::Pos;
use super::program::{
    Action, ForwardKind, Insn, Myself, Net, NumOp, Operand, PortSpec, Program, Route, SubstExpr,
    Target, Test, Val, route_label,
};
use super::pv::Format;
use super::registry::{self, Builtin, Resolved};
use super::settings::{Proto, Settings};
use crate::sip::Uri;
use crate::sip::limits::MAX_URI_LEN;

/// Flags are bits of a 32-bit word, as in SER.
pub const MAX_FLAG: i64 = 31;

type Res<T> = Result<T, ConfigError>;

pub fn compile(
    script: &Script,
    settings: &Settings,
    loaded: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) -> Program {
    let mut c = Compiler {
        prog: Program::default(),
        loaded,
        errors,
        kind: RouteKind::Request,
        breaks: Vec::new(),
    };
    c.prog.myself = myself(settings);
    c.declare_routes(script);
    for (i, block) in script.routes.iter().enumerate() {
        if c.prog.routes[i].entry != u32::MAX {
            continue; // a duplicate, reported by declare_routes
        }
        c.prog.routes[i].entry = c.here();
        c.kind = block.kind;
        c.stmts(&block.body);
        let end = block.body.last().map_or(block.pos, stmt_pos);
        c.emit(Insn::Return(1), end);
    }
    c.prog
}

/// Listen addresses and aliases, for `myself`.
pub fn myself(settings: &Settings) -> Myself {
    Myself {
        addrs: settings
            .listen
            .iter()
            .map(|l| (l.addr, settings.port_of(l)))
            .collect(),
        aliases: settings.aliases.clone(),
    }
}

fn stmt_pos(s: &Stmt) -> Pos {
    match s {
        Stmt::Call(c) => c.pos,
        Stmt::If { pos, .. } => *pos,
        Stmt::Block(b) => b.last().map_or_else(Pos::default, stmt_pos),
        Stmt::Break(p) | Stmt::Exit(p) | Stmt::Drop(p) | Stmt::Return(_, p) => *p,
        Stmt::Assign { pos, .. } | Stmt::Switch { pos, .. } | Stmt::While { pos, .. } => *pos,
    }
}

struct Compiler<'a> {
    prog: Program,
    loaded: &'a HashSet<&'a str>,
    errors: &'a mut Vec<ConfigError>,
    /// Kind of the route block being compiled.
    kind: RouteKind,
    /// The `switch`es and `while`s being compiled, innermost last: the
    /// jumps each `break` in them made, placed at their end.
    breaks: Vec<Vec<usize>>,
}

/// Placeholder target of a jump not yet placed.
const UNPLACED: u32 = u32::MAX;

impl Compiler<'_> {
    fn here(&self) -> u32 {
        self.prog.code.len() as u32
    }

    fn emit(&mut self, insn: Insn, pos: Pos) -> usize {
        self.prog.code.push(insn);
        self.prog.lines.push(pos.line);
        self.prog.code.len() - 1
    }

    /// Points the jumps at `at` to the current end of code.
    fn place(&mut self, at: &[usize]) {
        let here = self.here();
        for &i in at {
            if let Insn::JumpIf { target, .. } | Insn::Jump(target) = &mut self.prog.code[i] {
                *target = here;
            }
        }
    }

    fn error(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    /// Registers every route block first, so calls may precede definitions.
    fn declare_routes(&mut self, script: &Script) {
        let mut seen = HashSet::new();
        for r in &script.routes {
            let entry = if seen.insert((r.kind, r.name.clone())) {
                u32::MAX
            } else {
                let label = route_label(r.kind, r.name.as_deref());
                self.error(ConfigError::new(r.pos, format!("{label} is defined twice")));
                0
            };
            let name = r.name.as_deref().unwrap_or("");
            if r.kind == RouteKind::Event && !crate::cfg::ast::EVENTS.contains(&name) {
                self.error(ConfigError::warning(
                    r.pos,
                    format!(
                        "event_route[{name}]: rser raises no such event, so it never runs (it raises {})",
                        crate::cfg::ast::EVENTS.join(", ")
                    ),
                ));
            }
            self.prog.routes.push(Route {
                kind: r.kind,
                name: r.name.as_deref().map(Into::into),
                entry,
            });
        }
    }

    fn stmts(&mut self, body: &[Stmt]) {
        for s in body {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Assign { target, value, pos } => match self.assign(target, value, *pos) {
                Ok(action) => {
                    self.prog.actions.push(action);
                    let i = self.prog.actions.len() as u32 - 1;
                    self.emit(Insn::Act(i), *pos);
                }
                Err(e) => self.error(e),
            },
            Stmt::Call(call) => {
                if let Some(insn) = self.call(call) {
                    self.emit(insn, call.pos);
                }
            }
            Stmt::If {
                cond,
                then,
                otherwise,
                pos,
            } => {
                let mut to_else = Vec::new();
                self.cond(cond, false, &mut to_else);
                self.stmts(then);
                if otherwise.is_empty() {
                    self.place(&to_else);
                } else {
                    let end = self.emit(Insn::Jump(UNPLACED), *pos);
                    self.place(&to_else);
                    self.stmts(otherwise);
                    self.place(&[end]);
                }
            }
            Stmt::Block(b) => self.stmts(b),
            // In a switch or a loop, `break` leaves it; else the route.
            Stmt::Break(p) => match self.breaks.is_empty() {
                true => {
                    self.emit(Insn::Return(1), *p);
                }
                false => {
                    let j = self.emit(Insn::Jump(UNPLACED), *p);
                    if let Some(top) = self.breaks.last_mut() {
                        top.push(j);
                    }
                }
            },
            Stmt::While { cond, body, pos } => {
                let top = self.here();
                let mut exit = Vec::new();
                self.cond(cond, false, &mut exit);
                self.breaks.push(Vec::new());
                self.stmts(body);
                self.emit(Insn::Jump(top), *pos);
                let breaks = self.breaks.pop().unwrap_or_default();
                self.place(&exit);
                self.place(&breaks);
            }
            Stmt::Switch { pv, cases, pos } => self.switch(pv, cases, *pos),
            Stmt::Exit(p) => {
                self.emit(Insn::Exit, *p);
            }
            Stmt::Drop(p) => {
                self.emit(Insn::Drop, *p);
            }
            Stmt::Return(v, p) => {
                let v = v.unwrap_or(1).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                self.emit(Insn::Return(v), *p);
            }
        }
    }

    /// Emits code that jumps to the targets collected in `out` when the
    /// condition's truth equals `when`, and falls through otherwise
    /// (short-circuit evaluation, no value stack).
    fn cond(&mut self, e: &Expr, when: bool, out: &mut Vec<usize>) {
        match e {
            Expr::Not(inner) => self.cond(inner, !when, out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                let is_and = matches!(e, Expr::And(..));
                if is_and != when {
                    // and-false / or-true: either side decides alone.
                    self.cond(a, when, out);
                    self.cond(b, when, out);
                } else {
                    // and-true / or-false: the left side must not decide.
                    let mut skip = Vec::new();
                    self.cond(a, !when, &mut skip);
                    self.cond(b, when, out);
                    self.place(&skip);
                }
            }
            Expr::Call(call) => {
                if let Some(insn) = self.call(call) {
                    self.emit(insn, call.pos);
                }
                out.push(self.emit(
                    Insn::JumpIf {
                        target: UNPLACED,
                        when,
                    },
                    call.pos,
                ));
            }
            Expr::Pv { pv, pos } => {
                let t = self.pv(pv, *pos).map(Test::PvTrue);
                out.push(self.test_jump(t, *pos, when));
            }
            Expr::Cmp {
                operand,
                op,
                rhs,
                pos,
            } => {
                let t = self.test(operand, *op, rhs, *pos);
                out.push(self.test_jump(t, *pos, when));
            }
            Expr::Value { v, pos } => {
                let t = self.val(v, *pos).map(Test::ValTrue);
                out.push(self.test_jump(t, *pos, when));
            }
            Expr::Values { a, op, b, pos } => {
                let t = self.values_test(a, *op, b, *pos);
                out.push(self.test_jump(t, *pos, when));
            }
        }
    }

    /// Emits test `t` (an error is recorded instead) and a jump, not yet
    /// placed, taken when its truth is `when`; returns the jump.
    fn test_jump(&mut self, t: Res<Test>, pos: Pos, when: bool) -> usize {
        match t {
            Ok(t) => {
                self.prog.tests.push(t);
                let i = self.prog.tests.len() as u32 - 1;
                self.emit(Insn::Test(i), pos);
            }
            Err(err) => self.error(err),
        }
        self.emit(
            Insn::JumpIf {
                target: UNPLACED,
                when,
            },
            pos,
        )
    }

    // ---- conditions ----

    /// `switch`: one test a case, each jumping to its body; the bodies in
    /// order (a case falls through to the next); `default`, or the end,
    /// when none matches.
    fn switch(&mut self, pv: &str, cases: &[crate::cfg::ast::Case], pos: Pos) {
        let mut to_body: Vec<Vec<usize>> = Vec::new();
        for case in cases {
            let mut jumps = Vec::new();
            if let Some(value) = &case.value {
                let t = self.pv_test(pv, CmpOp::Eq, value, case.pos);
                jumps.push(self.test_jump(t, case.pos, true));
            }
            to_body.push(jumps);
        }
        // No case matched: default, or past the switch.
        let none = self.emit(Insn::Jump(UNPLACED), pos);
        let default = cases.iter().position(|c| c.value.is_none());
        if let Some(d) = default {
            to_body[d].push(none);
        }
        self.breaks.push(Vec::new());
        for (case, jumps) in cases.iter().zip(&to_body) {
            self.place(jumps);
            self.stmts(&case.body);
        }
        let mut breaks = self.breaks.pop().unwrap_or_default();
        if default.is_none() {
            breaks.push(none);
        }
        self.place(&breaks);
    }

    /// `target = value`: a writable pseudo-variable and a value of
    /// strings, numbers and pseudo-variables rser provides.
    fn assign(&self, target: &str, value: &ValueExpr, pos: Pos) -> Res<Action> {
        use crate::cfg::program::AssignTarget;
        let pv = self.pv(target, pos)?;
        let variable = matches!(
            pv,
            crate::cfg::pv::Pv::Var(_)
                | crate::cfg::pv::Pv::Avp(_)
                | crate::cfg::pv::Pv::Xavp(_)
                | crate::cfg::pv::Pv::Sht(_)
        );
        if matches!(self.kind, RouteKind::OnSend | RouteKind::Event) && !variable {
            return Err(ConfigError::new(
                pos,
                format!(
                    "'{target}' cannot be assigned in {} (variables can: $var, $avp, $xavp, $sht)",
                    route_kind_label(self.kind)
                ),
            ));
        }
        let target = match pv {
            crate::cfg::pv::Pv::Var(i) => AssignTarget::Var(i),
            crate::cfg::pv::Pv::Avp(i) => AssignTarget::Avp(i),
            crate::cfg::pv::Pv::Xavp(x) => AssignTarget::Xavp(x),
            crate::cfg::pv::Pv::Sht(r) => AssignTarget::Sht(r),
            crate::cfg::pv::Pv::Branch => AssignTarget::Branch,
            crate::cfg::pv::Pv::ForceSend => AssignTarget::ForceSend,
            crate::cfg::pv::Pv::Ruri => AssignTarget::Ruri,
            crate::cfg::pv::Pv::RuriUser => AssignTarget::RuriUser,
            crate::cfg::pv::Pv::RuriDomain => AssignTarget::RuriDomain,
            crate::cfg::pv::Pv::DstUri => AssignTarget::DstUri,
            _ => {
                return Err(ConfigError::new(
                    pos,
                    format!(
                        "'{target}' cannot be assigned ($var, $avp, $xavp, $sht, $ru, $rU, $rd, $du, $br and $fs can)"
                    ),
                ));
            }
        };
        Ok(Action::Assign {
            target,
            value: self.val(value, pos)?,
        })
    }

    /// A value of strings, numbers, pseudo-variables and operators.
    fn val(&self, v: &ValueExpr, pos: Pos) -> Res<Val> {
        use crate::cfg::ast::UnOp;
        Ok(match v {
            ValueExpr::Str(s) => Val::Str(s.as_str().into()),
            ValueExpr::Int(n) => Val::Int(*n),
            ValueExpr::Pv(p) => Val::Pv(self.pv(p, pos)?),
            ValueExpr::Bin(op, a, b) => Val::Bin(
                *op,
                Box::new(self.val(a, pos)?),
                Box::new(self.val(b, pos)?),
            ),
            ValueExpr::Unary(UnOp::Defined, inner) if !matches!(**inner, ValueExpr::Pv(_)) => {
                return Err(ConfigError::new(
                    pos,
                    "'defined' applies to a pseudo-variable".to_string(),
                ));
            }
            ValueExpr::Unary(op, inner) => Val::Unary(*op, Box::new(self.val(inner, pos)?)),
        })
    }

    /// `a op b` on values (not a pseudo-variable against a plain value:
    /// [`Compiler::pv_test`] has direct tests for those).
    fn values_test(&mut self, a: &ValueExpr, op: CmpOp, b: &ValueExpr, pos: Pos) -> Res<Test> {
        let a = self.val(a, pos)?;
        let Some(num) = num_op(op) else {
            let ValueExpr::Str(pattern) = b else {
                return Err(ConfigError::new(
                    pos,
                    "=~ needs a quoted regular expression".to_string(),
                ));
            };
            return Ok(Test::ValRegex {
                a,
                re: self.regex(pattern, false, pos)?,
                negate: op == CmpOp::NotMatch,
            });
        };
        Ok(Test::Values {
            a,
            op: num,
            b: self.val(b, pos)?,
        })
    }

    /// A pseudo-variable rser provides; any other is an error naming it.
    fn pv(&self, text: &str, pos: Pos) -> Res<crate::cfg::pv::Pv> {
        let pv = crate::cfg::pv::Pv::parse_checked(text).map_err(|e| ConfigError::new(pos, e))?;
        if matches!(pv, crate::cfg::pv::Pv::Sht(_)) && !self.loaded.contains("htable") {
            return Err(ConfigError::new(
                pos,
                format!("'{text}' needs the htable module (loadmodule \"htable.so\")"),
            ));
        }
        Ok(pv)
    }

    /// `$pv op rhs` (Kamailio's comparisons: text case-sensitive, numbers
    /// when the right side is one).
    fn pv_test(&mut self, pv: &str, op: CmpOp, rhs: &Rhs, pos: Pos) -> Res<Test> {
        let err = |msg: String| ConfigError::new(pos, msg);
        let pv = self.pv(pv, pos)?;
        let negate = matches!(op, CmpOp::Ne | CmpOp::NotMatch);
        let Some(num) = num_op(op) else {
            let Rhs::Str(pattern) = rhs else {
                return Err(err("=~ needs a quoted regular expression".into()));
            };
            return Ok(Test::PvRegex {
                pv,
                re: self.regex(pattern, false, pos)?,
                negate,
            });
        };
        match (op, rhs) {
            (CmpOp::Eq | CmpOp::Ne, Rhs::Pv(b)) => Ok(Test::PvPv {
                a: pv,
                b: self.pv(b, pos)?,
                negate,
            }),
            (CmpOp::Eq | CmpOp::Ne, Rhs::Str(s) | Rhs::Word(s)) => Ok(Test::PvStr {
                pv,
                value: s.as_str().into(),
                negate,
            }),
            (_, Rhs::Int(n)) => Ok(Test::PvNum {
                pv,
                op: num,
                value: *n,
            }),
            // Text ordered (`$fU < "m"`): the general comparison.
            (_, Rhs::Str(s)) => Ok(Test::Values {
                a: Val::Pv(pv),
                op: num,
                b: Val::Str(s.as_str().into()),
            }),
            (_, Rhs::Pv(b)) => Ok(Test::Values {
                a: Val::Pv(pv),
                op: num,
                b: Val::Pv(self.pv(b, pos)?),
            }),
            _ => Err(err(
                "compare a pseudo-variable with a string, a number, a regular expression or another pseudo-variable"
                    .into(),
            )),
        }
    }

    fn test(&mut self, operand: &str, op: CmpOp, rhs: &Rhs, pos: Pos) -> Res<Test> {
        if operand.starts_with('$') {
            return self.pv_test(operand, op, rhs, pos);
        }
        let err = |msg: String| ConfigError::new(pos, msg);
        let operand =
            Operand::parse(operand).ok_or_else(|| err(format!("unknown operand '{operand}'")))?;
        let negate = matches!(op, CmpOp::Ne | CmpOp::NotMatch);
        let is_match = matches!(op, CmpOp::Match | CmpOp::NotMatch);
        let is_equality = matches!(op, CmpOp::Eq | CmpOp::Ne);
        if operand == Operand::Status && !matches!(self.kind, RouteKind::Reply | RouteKind::Failure)
        {
            return Err(err(
                "'status' is only known in onreply_route and failure_route".into(),
            ));
        }
        if is_match {
            let Rhs::Str(pattern) = rhs else {
                return Err(err(format!(
                    "'{}' =~ needs a quoted regular expression",
                    operand.name()
                )));
            };
            let re = self.regex(pattern, false, pos)?;
            return Ok(Test::Regex {
                operand,
                re,
                negate,
            });
        }
        match operand {
            Operand::Method | Operand::Uri | Operand::FromUri | Operand::ToUri => {
                if !is_equality {
                    return Err(err(format!(
                        "'{}' is text: compare it with ==, !=, =~ or !~",
                        operand.name()
                    )));
                }
                match rhs {
                    Rhs::Word(w) if w == "myself" && operand != Operand::Method => {
                        Ok(Test::UriMyself { operand, negate })
                    }
                    Rhs::Str(s) => Ok(Test::StrEq {
                        operand,
                        value: s.as_str().into(),
                        negate,
                    }),
                    _ => Err(err(format!(
                        "'{}' compares with a quoted string{}",
                        operand.name(),
                        if operand != Operand::Method {
                            " or myself"
                        } else {
                            ""
                        }
                    ))),
                }
            }
            Operand::SrcIp | Operand::DstIp => {
                if !is_equality {
                    return Err(err(format!(
                        "'{}' compares with ==, != or =~",
                        operand.name()
                    )));
                }
                let nets = match rhs {
                    Rhs::Word(w) if w == "myself" => {
                        return Ok(Test::IpMyself { operand, negate });
                    }
                    Rhs::Word(w) | Rhs::Str(w) => address(w).map_err(err)?,
                    Rhs::Net(ip, mask) => vec![net(ip, mask).map_err(err)?],
                    Rhs::Int(_) | Rhs::Pv(_) => {
                        return Err(err(format!(
                            "'{}' compares with an address, a network, a hostname or myself",
                            operand.name()
                        )));
                    }
                };
                Ok(Test::IpIn {
                    operand,
                    nets: nets.into(),
                    negate,
                })
            }
            Operand::SrcPort | Operand::DstPort | Operand::MsgLen | Operand::Status => {
                let value = match rhs {
                    Rhs::Int(n) => *n,
                    Rhs::Str(s) | Rhs::Word(s) => s
                        .parse()
                        .map_err(|_| err(format!("'{}' compares with a number", operand.name())))?,
                    Rhs::Net(..) | Rhs::Pv(_) => {
                        return Err(err(format!("'{}' compares with a number", operand.name())));
                    }
                };
                let op = match op {
                    CmpOp::Eq => NumOp::Eq,
                    CmpOp::Ne => NumOp::Ne,
                    CmpOp::Lt => NumOp::Lt,
                    CmpOp::Gt => NumOp::Gt,
                    CmpOp::Le => NumOp::Le,
                    CmpOp::Ge => NumOp::Ge,
                    CmpOp::Match | CmpOp::NotMatch => unreachable!("handled above"),
                };
                Ok(Test::Num { operand, op, value })
            }
            Operand::Proto => {
                let proto = match rhs {
                    Rhs::Word(w) | Rhs::Str(w) if is_equality => Proto::parse(w),
                    _ => None,
                }
                .ok_or_else(|| {
                    err("'proto' compares (== or !=) with udp, tcp, tls or sctp".into())
                })?;
                Ok(Test::ProtoIs { proto, negate })
            }
            Operand::Af => {
                let v6 = match rhs {
                    Rhs::Word(w) | Rhs::Str(w) if is_equality && w.eq_ignore_ascii_case("inet") => {
                        Some(false)
                    }
                    Rhs::Word(w) | Rhs::Str(w)
                        if is_equality && w.eq_ignore_ascii_case("inet6") =>
                    {
                        Some(true)
                    }
                    Rhs::Int(4) if is_equality => Some(false),
                    Rhs::Int(6) if is_equality => Some(true),
                    _ => None,
                }
                .ok_or_else(|| err("'af' compares (== or !=) with inet or inet6".into()))?;
                Ok(Test::AfIs { v6, negate })
            }
        }
    }

    /// Compiles a regular expression once, case-insensitively (SER uses
    /// REG_ICASE). `lines` makes `^`/`$` match at each line of a message
    /// (REG_NEWLINE, textops).
    fn regex(&mut self, pattern: &str, lines: bool, pos: Pos) -> Res<u32> {
        let re = build_regex(pattern, lines, true).map_err(|m| ConfigError::new(pos, m))?;
        self.prog.regexes.push(re);
        Ok(self.prog.regexes.len() as u32 - 1)
    }

    // ---- actions ----

    /// Resolves a call; `None` after reporting an error.
    fn call(&mut self, call: &Call) -> Option<Insn> {
        match self.resolve(call) {
            Ok(insn) => Some(insn),
            Err(e) => {
                self.error(e);
                None
            }
        }
    }

    fn resolve(&mut self, call: &Call) -> Res<Insn> {
        let name = call.name.as_str();
        let err = |msg: String| ConfigError::new(call.pos, msg);
        let found = registry::resolve(name).ok_or_else(|| {
            err(match registry::not_provided_action(name) {
                Some((module, what)) => {
                    format!("'{name}' is module {module}'s, which rser does not provide: {what}")
                }
                None => format!("unknown action '{name}'"),
            })
        })?;
        let providers: Vec<&str> = match found {
            Resolved::Builtin(d) => d.modules.to_vec(),
            Resolved::Module(f) => f.providers().collect(),
        };
        if !providers.is_empty() && !providers.iter().any(|m| self.loaded.contains(m)) {
            return Err(err(format!(
                "'{name}' is exported by module '{}', which is not loaded (loadmodule \"{}.so\")",
                providers[0], providers[0]
            )));
        }
        let n = call.args.len();
        let (min, max) = found.arity();
        if n < min as usize || n > max as usize {
            let want = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(err(format!(
                "'{name}' takes {want} argument{}, found {n}",
                if want == "1" { "" } else { "s" }
            )));
        }
        let action = match found {
            Resolved::Builtin(d)
                if matches!(self.kind, RouteKind::OnSend | RouteKind::Event)
                    && !allowed_outside_routing(d.builtin, self.kind) =>
            {
                return Err(err(format!(
                    "'{name}' may not be called in {}: {}",
                    route_kind_label(self.kind),
                    if self.kind == RouteKind::OnSend {
                        "it runs on the request as built (log, flags, variables and drop)"
                    } else {
                        "no message is routed there"
                    }
                )));
            }
            Resolved::Builtin(d) if d.builtin == Builtin::Route => {
                let idx =
                    self.route_ref(RouteKind::Request, &text(&call.args[0]), call.args[0].pos())?;
                return Ok(Insn::Route(idx));
            }
            Resolved::Builtin(d) => self.builtin(d.builtin, call)?,
            Resolved::Module(func) => {
                let def = func.def();
                if !def.routes.allows(self.kind) {
                    return Err(err(format!(
                        "'{name}' may not be called in {}",
                        route_kind_label(self.kind)
                    )));
                }
                let fx = Fixup { prog: &self.prog };
                let args = (def.fixup)(&fx, &call.args)?;
                Action::Module {
                    func,
                    args: args.into(),
                }
            }
        };
        self.prog.actions.push(action);
        Ok(Insn::Act(self.prog.actions.len() as u32 - 1))
    }

    fn route_ref(&self, kind: RouteKind, name: &str, pos: Pos) -> Res<u32> {
        route_ref(&self.prog, kind, name, pos)
    }

    fn builtin(&mut self, func: Builtin, call: &Call) -> Res<Action> {
        let a = &call.args;
        Ok(match func {
            Builtin::Forward
            | Builtin::ForwardUdp
            | Builtin::ForwardTcp
            | Builtin::ForwardTls
            | Builtin::Send => {
                let kind = match func {
                    Builtin::Forward => ForwardKind::Forward,
                    Builtin::ForwardUdp => ForwardKind::Udp,
                    Builtin::ForwardTcp => ForwardKind::Tcp,
                    Builtin::ForwardTls => ForwardKind::Tls,
                    _ => ForwardKind::Send,
                };
                let target = match a.first() {
                    None => Target::UriHost,
                    Some(h) => host_arg(h)?,
                };
                let port = match (a.first(), a.get(1)) {
                    (None, _) => PortSpec::UriPort,
                    (Some(_), None) => PortSpec::Default,
                    (Some(_), Some(p)) => port_arg(p)?,
                };
                Action::Forward { kind, target, port }
            }
            Builtin::Log => {
                let (level, msg) = match &a[..] {
                    [msg] => (4, msg),
                    [level, msg] => (int_in(level, -3, 9)?, msg),
                    _ => unreachable!("arity checked"),
                };
                Action::Log {
                    level: level as i8,
                    msg: Format::parse(&text(msg)).map_err(|e| ConfigError::new(msg.pos(), e))?,
                }
            }
            Builtin::Strip => Action::Strip(int_in(&a[0], 0, MAX_URI_LEN as i64)? as usize),
            Builtin::Prefix => Action::Prefix(nonempty(&a[0])?),
            Builtin::RewriteUri => Action::RewriteUri(uri_arg(&a[0])?),
            Builtin::RewriteHost => Action::RewriteHost(nonempty(&a[0])?),
            Builtin::RewriteHostPort => Action::RewriteHostPort(nonempty(&a[0])?),
            Builtin::RewriteUser => Action::RewriteUser(text(&a[0]).into()),
            Builtin::RewriteUserPass => Action::RewriteUserPass(text(&a[0]).into()),
            Builtin::RewritePort => {
                let p = text(&a[0]);
                if !p.is_empty() {
                    int_in(&a[0], 1, 65535)?;
                }
                Action::RewritePort(p.into())
            }
            Builtin::AppendBranch => Action::AppendBranch(match a.first() {
                None => None,
                Some(u) => Some(uri_arg(u)?),
            }),
            Builtin::RevertUri => Action::RevertUri,
            Builtin::SetFlag => Action::SetFlag(int_in(&a[0], 0, MAX_FLAG)? as u8),
            Builtin::ForceRport => Action::ForceRport,
            Builtin::IsMyself => Action::IsMyself(
                Format::parse(&text(&a[0])).map_err(|e| ConfigError::new(a[0].pos(), e))?,
            ),
            Builtin::IsDstUriSet => Action::IsDstUriSet,
            Builtin::SetReplyNoConnect => Action::SetReplyNoConnect,
            Builtin::SetBFlag | Builtin::ResetBFlag | Builtin::IsBFlagSet => {
                // Only the Request-URI's branch (0) has flags here; the
                // routes that see a transaction's branches are refused.
                if let Some(b) = a.get(1)
                    && int_in(b, 0, 0).is_err()
                {
                    return Err(ConfigError::new(
                        b.pos(),
                        "branch flags of a branch other than 0 are not provided".into(),
                    ));
                }
                if matches!(self.kind, RouteKind::Failure | RouteKind::Reply) {
                    return Err(ConfigError::new(
                        call.pos,
                        format!(
                            "{} in {}: a transaction's branch flags are not kept yet",
                            call.name,
                            self.kind.name()
                        ),
                    ));
                }
                let f = int_in(&a[0], 0, 31)? as u8;
                match func {
                    Builtin::SetBFlag => Action::SetBFlag(f),
                    Builtin::ResetBFlag => Action::ResetBFlag(f),
                    _ => Action::IsBFlagSet(f),
                }
            }
            Builtin::ResetFlag => Action::ResetFlag(int_in(&a[0], 0, MAX_FLAG)? as u8),
            Builtin::IsFlagSet => Action::IsFlagSet(int_in(&a[0], 0, MAX_FLAG)? as u8),
            // SER's `len_gt(max_len)`: longer than the largest message
            // the server takes (SER's BUF_SIZE; rser's datagram bound).
            Builtin::LenGt if matches!(&a[0], Arg::Word(w, _) if w == "max_len") => {
                Action::LenGt(crate::sip::limits::MAX_DATAGRAM)
            }
            Builtin::LenGt => Action::LenGt(int_in(&a[0], 0, i64::from(u32::MAX))? as usize),
            Builtin::Search => Action::Search(self.regex(&text(&a[0]), true, a[0].pos())?),
            Builtin::SearchAppend => Action::SearchAppend(
                self.regex(&text(&a[0]), true, a[0].pos())?,
                text(&a[1]).into(),
            ),
            Builtin::Replace => Action::Replace(
                self.regex(&text(&a[0]), true, a[0].pos())?,
                text(&a[1]).into(),
            ),
            Builtin::Subst | Builtin::SubstUri => {
                let s = subst(&text(&a[0])).map_err(|m| ConfigError::new(a[0].pos(), m))?;
                self.prog.substs.push(s);
                let i = self.prog.substs.len() as u32 - 1;
                if func == Builtin::Subst {
                    Action::Subst(i)
                } else {
                    Action::SubstUri(i)
                }
            }
            Builtin::ExecDset => Action::ExecDset(nonempty(&a[0])?),
            Builtin::ExecMsg => Action::ExecMsg(nonempty(&a[0])?),
            Builtin::Route => unreachable!("resolved as an instruction"),
        })
    }
}

/// A route block's kind as a script names it.
/// The core's actions that make sense where no message is being routed:
/// onsend_route (the request is already built) and event routes (the
/// stand-in or local request; tm:local-request's text edits are applied).
fn allowed_outside_routing(b: Builtin, kind: RouteKind) -> bool {
    match b {
        Builtin::Log
        | Builtin::SetFlag
        | Builtin::ResetFlag
        | Builtin::IsFlagSet
        | Builtin::IsBFlagSet
        | Builtin::LenGt
        | Builtin::Route
        | Builtin::IsMyself
        | Builtin::IsDstUriSet => true,
        // Text edits: tm:local-request sends them, onsend_route could not.
        Builtin::Search | Builtin::SearchAppend | Builtin::Replace | Builtin::Subst => {
            kind == RouteKind::Event
        }
        _ => false,
    }
}

/// A comparison as an order; `None` for a regular expression's.
fn num_op(op: CmpOp) -> Option<NumOp> {
    Some(match op {
        CmpOp::Eq => NumOp::Eq,
        CmpOp::Ne => NumOp::Ne,
        CmpOp::Lt => NumOp::Lt,
        CmpOp::Gt => NumOp::Gt,
        CmpOp::Le => NumOp::Le,
        CmpOp::Ge => NumOp::Ge,
        CmpOp::Match | CmpOp::NotMatch => return None,
    })
}

fn route_kind_label(kind: RouteKind) -> &'static str {
    match kind {
        RouteKind::Request => "a request route",
        RouteKind::Failure => "failure_route",
        RouteKind::Reply => "onreply_route",
        RouteKind::Branch => "branch_route",
        RouteKind::Event => "event_route",
        RouteKind::OnSend => "onsend_route",
    }
}

/// Builds a case-(in)sensitive POSIX-extended-style regex over bytes.
pub fn build_regex(pattern: &str, lines: bool, icase: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(icase)
        .multi_line(lines)
        .crlf(lines)
        .build()
        .map_err(|e| {
            // The crate's message spans lines (pattern, caret, reason);
            // a config error is one line.
            let reason = e
                .to_string()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            format!("bad regular expression \"{pattern}\": {reason}")
        })
}

/// `/re/replacement/flags` with any delimiter; `\` escapes it.
fn subst(s: &str) -> Result<SubstExpr, String> {
    let bad = || format!("subst expects '/regex/replacement/flags', found '{s}'");
    let mut chars = s.chars();
    let delim = chars.next().ok_or_else(bad)?;
    if delim.is_alphanumeric() || delim == '\\' || delim.is_whitespace() {
        return Err(bad());
    }
    let mut fields = vec![String::new()];
    let mut escaped = false;
    for c in chars {
        if escaped {
            if c != delim {
                fields.last_mut().unwrap().push('\\');
            }
            fields.last_mut().unwrap().push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            fields.push(String::new());
        } else {
            fields.last_mut().unwrap().push(c);
        }
    }
    if escaped {
        fields.last_mut().unwrap().push('\\');
    }
    let [re, replacement, flags] = <[String; 3]>::try_from(fields).map_err(|_| bad())?;
    let mut global = false;
    let mut icase = false;
    for f in flags.chars() {
        match f {
            'g' => global = true,
            'i' => icase = true,
            _ => return Err(format!("subst: unknown flag '{f}' (g and i are known)")),
        }
    }
    let re = build_regex(&re, true, icase)?;
    let groups = re.captures_len();
    let mut b = replacement.bytes().peekable();
    while let Some(c) = b.next() {
        if c == b'\\' {
            if let Some(d) = b.next().filter(u8::is_ascii_digit) {
                if usize::from(d - b'0') >= groups {
                    return Err(format!("subst: \\{} names no group of '{re}'", d - b'0'));
                }
            }
        }
    }
    Ok(SubstExpr {
        re,
        replacement: replacement.into(),
        global,
    })
}

fn uri_arg(a: &Arg) -> Res<Box<str>> {
    let t = text(a);
    Uri::parse(t.as_bytes())
        .map(|_| t.as_str().into())
        .map_err(|_| ConfigError::new(a.pos(), format!("{} is not a valid URI", show(a))))
}

fn host_arg(a: &Arg) -> Res<Target> {
    match a {
        Arg::Word(w, _) if w == "uri:host" => Ok(Target::UriHost),
        Arg::Word(h, _) | Arg::Str(h, _) if is_host(h) => Ok(Target::Host(h.as_str().into())),
        _ => Err(ConfigError::new(
            a.pos(),
            format!(
                "expected a host (address or name) or uri:host, found {}",
                show(a)
            ),
        )),
    }
}

fn port_arg(a: &Arg) -> Res<PortSpec> {
    match a {
        Arg::Word(w, _) if w == "uri:port" => Ok(PortSpec::UriPort),
        _ => Ok(PortSpec::Port(int_in(a, 1, 65535).map_err(|_| {
            ConfigError::new(
                a.pos(),
                format!(
                    "expected a port (1 to 65535) or uri:port, found {}",
                    show(a)
                ),
            )
        })? as u16)),
    }
}

/// A hostname, an IPv4 address, or an IPv6 one in brackets or bare.
fn is_host(h: &str) -> bool {
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    !h.is_empty()
        && (h.parse::<IpAddr>().is_ok()
            || h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
}

/// An address, or a hostname resolved now (SER resolves at load too).
fn address(w: &str) -> Result<Vec<Net>, String> {
    if let Ok(ip) = w.parse::<IpAddr>() {
        return Ok(vec![host_net(ip)]);
    }
    if !is_host(w) {
        return Err(format!("'{w}' is not an address or a hostname"));
    }
    let addrs: Vec<Net> = (w, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{w}': {e}"))?
        .map(|sa| host_net(sa.ip()))
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve '{w}'"));
    }
    Ok(addrs)
}

fn host_net(ip: IpAddr) -> Net {
    Net {
        addr: ip,
        prefix: if ip.is_ipv4() { 32 } else { 128 },
    }
}

/// `IP/len` or `IP/mask` (a dotted mask must be contiguous).
fn net(ip: &str, mask: &str) -> Result<Net, String> {
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| format!("'{ip}' is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = if let Ok(len) = mask.parse::<u8>() {
        len
    } else if let (Ok(IpAddr::V4(m)), true) = (mask.parse::<IpAddr>(), addr.is_ipv4()) {
        let bits = u32::from(m);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(format!("'{mask}' is not a contiguous network mask"));
        }
        bits.leading_ones() as u8
    } else {
        return Err(format!("'{mask}' is not a prefix length or a network mask"));
    };
    if prefix > max {
        return Err(format!("prefix length {prefix} is longer than {max}"));
    }
    Ok(Net { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_from_lengths_and_masks() {
        assert_eq!(net("192.168.0.0", "16").unwrap().prefix, 16);
        assert_eq!(net("192.168.0.0", "255.255.0.0").unwrap().prefix, 16);
        assert!(net("192.168.0.0", "255.0.255.0").is_err());
        assert!(net("192.168.0.0", "33").is_err());
        assert_eq!(net("fe80::", "10").unwrap().prefix, 10);
    }

    #[test]
    fn subst_expressions() {
        let s = subst("/^(To|t): .*/\\1: x/gi").unwrap();
        assert!(s.global);
        assert_eq!(&*s.replacement, "\\1: x");
        let s = subst("#a\\#b#c#").unwrap();
        assert_eq!(s.re.as_str(), "a#b");
        assert!(subst("/a/b").is_err());
        assert!(subst("/a/\\1/").is_err(), "no group 1");
        assert!(subst("/a/b/x").is_err());
        assert!(subst("/(/b/").is_err());
    }
}

//! The routing script as a tree, every node with its source position.

use super::lexer::Pos;

/// A whole `ser.cfg`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    pub globals: Vec<Global>,
    pub modules: Vec<LoadModule>,
    pub modparams: Vec<ModParam>,
    pub routes: Vec<RouteBlock>,
}

/// `name = value` (global parameters such as `listen=`, `children=`).
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    pub name: String,
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Str(String),
    /// Unquoted text: `yes`, `udp:127.0.0.1:5060`, a hostname or address.
    Word(String),
}

/// `loadmodule "path"`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadModule {
    pub path: String,
    pub pos: Pos,
}

/// `modparam("module", "param", value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModParam {
    pub module: String,
    pub param: String,
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `route`, `route[N]`, `route[name]`, `request_route`.
    Request,
    /// `failure_route[N]`.
    Failure,
    /// `onreply_route[N]`.
    Reply,
    /// `branch_route[N]`.
    Branch,
    /// `event_route[group:event]`: run when rser raises the event
    /// ([`EVENTS`]).
    Event,
    /// `onsend_route`: run before a request goes out (a stateless
    /// forward, each branch `t_relay` starts) on the request, with the
    /// destination in `$snd(ip)`, `$snd(port)`; `drop` keeps it from
    /// going.
    OnSend,
}

/// The events rser raises at start, each run once by the first worker on
/// a stand-in OPTIONS (Kamailio's "faked" message): `htable:mod-init`
/// (Kamailio's, to fill htables), then `core:worker-one-init`.
pub const START_EVENTS: &[&str] = &["htable:mod-init", "core:worker-one-init"];

/// `tm:local-request`: run on each request tm sends of its own (JSON-RPC's
/// `tm.t_uac`, the FIFO's `t_uac_dlg`), before it goes; its text changes
/// (`append_hf`, `remove_hf`) go with it, its `drop` keeps it from going.
pub const LOCAL_REQUEST: &str = "tm:local-request";

/// Every event rser raises.
pub const EVENTS: &[&str] = &["htable:mod-init", "core:worker-one-init", LOCAL_REQUEST];

impl RouteKind {
    /// As the script writes it.
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Request => "route",
            RouteKind::Failure => "failure_route",
            RouteKind::Reply => "onreply_route",
            RouteKind::Branch => "branch_route",
            RouteKind::Event => "event_route",
            RouteKind::OnSend => "onsend_route",
        }
    }
}

/// A route block; `name` is `None` for the main request route (`route`,
/// `route[0]` and `request_route` all name it).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteBlock {
    pub kind: RouteKind,
    pub name: Option<String>,
    pub body: Vec<Stmt>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Call(Call),
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
        pos: Pos,
    },
    Block(Vec<Stmt>),
    /// `break`: leaves the current route block.
    Break(Pos),
    /// `exit`: ends the script.
    Exit(Pos),
    /// `drop`: ends the script and discards the message.
    Drop(Pos),
    /// `return` / `return(n)`.
    Return(Option<i64>, Pos),
    /// Kamailio's `switch ($pv) { case V: ... default: ... }`: cases fall
    /// through to the next until a `break`, which leaves the switch.
    Switch {
        pv: String,
        cases: Vec<Case>,
        pos: Pos,
    },
    /// `while (cond) { ... }`; `break` leaves the loop.
    While {
        cond: Expr,
        body: Vec<Stmt>,
        pos: Pos,
    },
    /// Kamailio's `$var(x) = value;` (`$ru`, `$rU`, `$rd`, `$du` too).
    Assign {
        target: String,
        value: ValueExpr,
        pos: Pos,
    },
}

/// A `case` (its value; `None`: `default`) and the statements up to the
/// next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub value: Option<Rhs>,
    pub body: Vec<Stmt>,
    pub pos: Pos,
}

/// The right side of an assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueExpr {
    /// A quoted string: its text as written (no pseudo-variables filled,
    /// as Kamailio's expressions).
    Str(String),
    Int(i64),
    Pv(String),
    Bin(BinOp, Box<ValueExpr>, Box<ValueExpr>),
    /// `strlen(v)`, `strempty(v)`, `defined $pv`.
    Unary(UnOp, Box<ValueExpr>),
}

/// Kamailio's unary operators on a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// The length of the value's text.
    Strlen,
    /// 1 when the value's text is empty.
    Strempty,
    /// 1 when a pseudo-variable has a value (not `$null`).
    Defined,
}

/// Kamailio's expression operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// Sum of numbers; with text on the left, concatenation.
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitOr,
    BitAnd,
}

/// An action call: `forward(192.168.0.1, 5060)`, `t_relay()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Arg>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String, Pos),
    Int(i64, Pos),
    /// Unquoted: an address, a hostname, or `uri:host` / `uri:port`.
    Word(String, Pos),
}

impl Arg {
    pub fn pos(&self) -> Pos {
        match self {
            Arg::Str(_, p) | Arg::Int(_, p) | Arg::Word(_, p) => *p,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Match,
    NotMatch,
    Lt,
    Gt,
    Le,
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    Str(String),
    Int(i64),
    /// An address, a hostname, or `myself`.
    Word(String),
    /// `IP/len` or `IP/mask`.
    Net(String, String),
    /// A pseudo-variable as written (`$fU`, `$hdr(X)`).
    Pv(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `operand op rhs`, e.g. `uri =~ "^sip:1"`; `operand` as written
    /// (`method`, `uri`, `src_ip`, `msg:len`, ...).
    Cmp {
        operand: String,
        op: CmpOp,
        rhs: Rhs,
        pos: Pos,
    },
    /// An action whose return value is the condition.
    Call(Call),
    /// A pseudo-variable alone (Kamailio: true when it has a value that is
    /// not empty and not 0).
    Pv {
        pv: String,
        pos: Pos,
    },
    /// Any other value as a condition (`strempty($fU)`, `$var(n) % 2`):
    /// true as a pseudo-variable alone is.
    Value {
        v: ValueExpr,
        pos: Pos,
    },
    /// Values compared (`strlen($rU) > 4`, `$var(a) + 1 == $var(b)`):
    /// numbers when the left is one (or either is, for `<` and `>`), else
    /// their text.
    Values {
        a: ValueExpr,
        op: CmpOp,
        b: ValueExpr,
        pos: Pos,
    },
}

//! What a module declares: its name, its parameters, and its actions
//! (name, arity, how their arguments are checked at load, which routes
//! may run them, and the runtime that runs them in a worker). The one
//! list of modules is [`super::MODULES`]; the config checker, the
//! compiler and the worker's dispatch all read it, so nothing else lists
//! a module or its actions.

use std::net::SocketAddr;

use crate::cfg::ast::{Arg, RouteKind};
use crate::cfg::fixup::Fixup;
use crate::cfg::program::Param;
use crate::cfg::settings::Proto;
use crate::cfg::{Config, ConfigError};
use crate::modules::dispatcher::Failover;
use crate::script::{MsgCtx, Outcome};
use crate::sip::Message;

/// A module parameter's type, as the SER module docs write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Str,
}

/// A module's action arguments checked and converted once, at load (SER's
/// "fixup"); an error names the argument's position.
pub type FixupFn = fn(&Fixup<'_>, &[Arg]) -> Result<Vec<Param>, ConfigError>;

/// The route blocks an action may run in, as a bit set of [`RouteKind`]s
/// (Kamailio's `REQUEST_ROUTE | FAILURE_ROUTE | ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes(u8);

impl Routes {
    pub const REQUEST: Routes = Routes(1);
    pub const FAILURE: Routes = Routes(2);
    pub const ONREPLY: Routes = Routes(4);
    pub const BRANCH: Routes = Routes(8);
    pub const EVENT: Routes = Routes(16);
    /// onsend_route: only what neither routes nor changes the request
    /// (xlog, htable's actions) opts in.
    pub const ONSEND: Routes = Routes(32);
    /// Every route a message is routed in, and event routes.
    pub const ANY: Routes = Routes(31);
    /// Replying and relaying: not in branch_route, which shapes one
    /// branch's request (as in Kamailio).
    pub const NOT_BRANCH: Routes = Routes(7);

    pub const fn or(self, o: Routes) -> Routes {
        Routes(self.0 | o.0)
    }

    pub fn allows(self, kind: RouteKind) -> bool {
        let bit = match kind {
            RouteKind::Request => Routes::REQUEST,
            RouteKind::Failure => Routes::FAILURE,
            RouteKind::Reply => Routes::ONREPLY,
            RouteKind::Branch => Routes::BRANCH,
            RouteKind::Event => Routes::EVENT,
            RouteKind::OnSend => Routes::ONSEND,
        };
        self.0 & bit.0 != 0
    }
}

#[derive(Debug)]
pub struct ActionDef {
    pub name: &'static str,
    /// The module's own number for it, which its [`Runtime::call`]
    /// matches on.
    pub id: u8,
    pub min_args: u8,
    pub max_args: u8,
    pub fixup: FixupFn,
    pub routes: Routes,
    /// Other modules whose loading also provides it (SER 0.8's `auth`
    /// read credentials itself; `auth_db` does now).
    pub also_in: &'static [&'static str],
}

/// An action with no arguments to check beyond their count.
pub fn no_args(_: &Fixup<'_>, _: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(Vec::new())
}

/// `ActionDef` in one line: name, id, arity, fixup, routes.
pub const fn action(
    name: &'static str,
    id: u8,
    args: (u8, u8),
    fixup: FixupFn,
    routes: Routes,
) -> ActionDef {
    ActionDef {
        name,
        id,
        min_args: args.0,
        max_args: args.1,
        fixup,
        routes,
        also_in: &[],
    }
}

#[derive(Debug)]
pub struct Module {
    pub name: &'static str,
    pub params: &'static [(&'static str, ParamType)],
    pub actions: &'static [ActionDef],
    /// Its counters' names, each starting with the module's name and `_`
    /// (its group in `stats.get`); [`Counts::add`] takes an index here.
    pub counters: &'static [&'static str],
    /// Its runtime, shared tables and helper thread, when it has them.
    pub hooks: Option<&'static Hooks>,
    /// Parameters the checker accepts (SER and Kamailio configs set them)
    /// but this build does not apply yet: said by `-c` and at start-up.
    pub unapplied: &'static [&'static str],
    /// Its parameters checked as its runtime and tables will read them
    /// (by `rser -c` and before a start, when the config uses it):
    /// warnings for what is accepted but done otherwise, or why the
    /// config cannot run.
    pub check: Option<ModuleCheck>,
}

/// A module's [`Module::check`].
pub type ModuleCheck = fn(&Config) -> Result<Vec<String>, String>;

/// What a module with a [`Runtime`] gives the server.
#[derive(Debug)]
pub struct Hooks {
    /// In the master, before forking, when the module is loaded: its
    /// tables carved from the shared region (`region` bytes in all), or
    /// why the config cannot run. Also where a config the checker passed
    /// is refused for what only a start can find (a database it cannot
    /// open). `None`: nothing shared.
    pub carve: Option<CarveFn>,
    /// In every worker and the timer process: the module's per-process
    /// runtime over its tables (`None`: it has tables only).
    pub start: Option<StartFn>,
    /// A thread in the timer process (a database writer), so nothing
    /// slow runs in a worker.
    pub helper: Option<HelperFn>,
    /// Whether the config needs the module's tables, runtime and helper
    /// (`None`: when it is loaded or one of its actions called).
    pub used: Option<fn(&Config) -> bool>,
}

impl Hooks {
    /// A runtime alone: no tables, no helper.
    pub const fn runtime(start: StartFn) -> Hooks {
        Hooks {
            carve: None,
            start: Some(start),
            helper: None,
            used: None,
        }
    }

    /// Tables and a runtime: no helper.
    pub const fn tables_and_runtime(carve: CarveFn, start: StartFn) -> Hooks {
        Hooks {
            carve: Some(carve),
            start: Some(start),
            helper: None,
            used: None,
        }
    }

    /// Whether `config` runs module `m`'s hooks.
    pub fn used_by(m: &Module, config: &Config) -> bool {
        match m.hooks.and_then(|h| h.used) {
            Some(used) => used(config),
            None => config.uses_module(m.name),
        }
    }
}

/// A module's tables in shared memory, as its `start` downcasts them.
pub type ModuleShm = Box<dyn std::any::Any + Send + Sync>;
pub type CarveFn = fn(&Config, &mut rser_shm::Carver<'_>, usize) -> Result<Carved, String>;

/// What a module's `carve` made, and its capacity in words (for the
/// region's layout in the start-up log).
pub struct Carved {
    pub shm: ModuleShm,
    pub capacity: String,
}
pub type StartFn = for<'a> fn(&Start<'a>) -> Box<dyn Runtime + 'a>;
pub type HelperFn = for<'a> fn(&Start<'a>);

/// What a module's `start` and helper get.
pub struct Start<'a> {
    pub config: &'a Config,
    /// What its `carve` made.
    pub shm: Option<&'a ModuleShm>,
    pub counts: Counts<'a>,
    /// Every module's tables, by place in the module list.
    pub(crate) modules: &'a [Option<ModuleShm>],
}

impl<'a> Start<'a> {
    /// The tables module `name` carved, as type `T`: how a module uses
    /// another's (the registrar usrloc's).
    /// Module `name`'s counters in this process's row: how a module
    /// counts what it does to another's table (the registrar, usrloc's).
    pub fn counts_of(&self, name: &str) -> Counts<'a> {
        let m = super::MODULES.iter().position(|m| m.name == name);
        Counts {
            base: m.map_or(self.counts.base, crate::server::shared::counter_base),
            ..self.counts
        }
    }

    pub fn shm_of<T: 'static>(&self, name: &str) -> Option<&'a T> {
        let m = super::MODULES.iter().position(|m| m.name == name)?;
        self.modules.get(m)?.as_ref()?.downcast_ref::<T>()
    }
}

/// A module's own counters in this process's row.
#[derive(Clone, Copy)]
pub struct Counts<'a> {
    pub(crate) counters: &'a rser_shm::Counters,
    pub(crate) slot: usize,
    /// Where the module's counters start among all.
    pub(crate) base: usize,
}

impl Counts<'_> {
    /// Adds `n` to the module's counter `i` (an index in its
    /// [`Module::counters`]).
    pub fn add(&self, i: usize, n: u64) {
        self.counters.add(self.slot, self.base + i, n);
    }
}

/// What a runtime may use while it runs an action or a callback: the
/// clock, the module's counters, and the worker's services.
pub struct Cx<'a> {
    /// Milliseconds on the monotonic clock, for this batch.
    pub now_ms: u64,
    pub counts: Counts<'a>,
    /// The module's place in the module list.
    pub me: usize,
    pub shell: &'a mut dyn Shell,
}

impl Cx<'_> {
    /// Runs a route of the script on `ctx` (tm's failure_route,
    /// onreply_route, branch_route) with this runtime, `rt`, lent to it:
    /// the route's calls of the module's own actions reach `rt`, and
    /// replies the route's other modules send go on `rt`'s transaction
    /// ([`Runtime::reply_on_txn`]).
    pub fn run_route(
        &mut self,
        kind: RouteKind,
        route: u32,
        ctx: &mut MsgCtx<'_, '_>,
        rt: &mut dyn Runtime,
    ) -> Outcome {
        self.shell.run_route(kind, route, ctx, self.me, rt)
    }
}

/// A datagram the kernel would not send, as a runtime that wants send
/// failures hears of it.
#[derive(Debug, Clone, Copy)]
pub enum Refusal<'a> {
    /// Refused by `sendmmsg`: the label the module gave it
    /// ([`Shell::tag_last`]).
    Tagged(u128),
    /// An ICMP error came back for it: its start, as quoted.
    Head(&'a [u8]),
}

/// What the worker does for any module (the only way one reaches
/// another: a reply goes on the request's transaction when tm made one).
pub trait Shell {
    /// Replies to the current request: on its transaction if it has one,
    /// else statelessly (SER's `send_reply`); `headers` are extra header
    /// lines (`Name: value\r\n` each). SER's return convention.
    fn reply(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16, reason: &[u8], headers: &[u8]) -> i32;

    /// Replies statelessly (sl), whatever transaction there is.
    fn reply_stateless(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16, reason: &[u8]) -> i32;

    /// The To tag a local reply to `req` carries (sl's signed tag, so
    /// the ACK to it is recognised); `None` when `req` lacks what it is
    /// computed from.
    fn to_tag(&self, req: &Message<'_>) -> Option<crate::modules::sl::signature::ToTag>;

    /// Whether `msg` is an ACK to a local stateless reply, which sl's
    /// filter absorbs (SER's `sl_filter_ACK()`; counted when it is).
    fn absorbs_ack(&mut self, msg: &Message<'_>) -> bool;

    /// Counts one of the core's counters (messages forwarded, send
    /// errors).
    fn count(&self, c: crate::server::shared::Counter);

    /// The socket (its index) the current message came in on.
    fn in_sock(&self) -> usize;

    /// The address of socket `sock` (the last one if out of range).
    fn local(&self, sock: usize) -> SocketAddr;

    /// The UDP socket to send to `dest` from: the current message's if it
    /// is UDP and its address family fits, else the first that fits.
    fn socket_for(&self, dest: SocketAddr) -> usize;

    /// The transport of socket `sock` (a stream's sockets follow the UDP
    /// ones), for the Via of what is sent from it.
    fn transport(&self, sock: usize) -> Proto;

    /// Whether a `proto` (TCP or TLS) connection to `peer` is open (in
    /// any worker).
    fn connected(&self, peer: SocketAddr, proto: Proto) -> bool;

    /// A host name's address (the process's cache, else the resolver),
    /// IPv6 first if `prefer_v6`.
    fn resolve(&mut self, host: &str, port: u16, prefer_v6: bool) -> Option<SocketAddr>;

    /// A cleared buffer for a datagram to `dest` from socket `sock`,
    /// sent with the batch.
    fn push(&mut self, sock: usize, dest: SocketAddr) -> &mut Vec<u8>;

    /// Takes back the last [`Shell::push`] (its message could not be
    /// built).
    fn pop(&mut self);

    /// Labels the last push, so that the kernel refusing it reaches this
    /// module as [`Refusal::Tagged`].
    fn tag_last(&mut self, tag: u128);

    /// A new request to `to`, sent with the batch from the socket that
    /// fits: the address its Via names, and the buffer to write it into.
    fn send_new(&mut self, to: SocketAddr) -> (SocketAddr, &mut Vec<u8>) {
        let sock = self.socket_for(to);
        let via = self.local(sock);
        (via, self.push(sock, to))
    }

    /// Runs route `route` (of kind `kind`) on `ctx` with runtime `rt`
    /// (module `me`) lent to it; script errors are counted and logged
    /// here. See [`Cx::run_route`].
    fn run_route(
        &mut self,
        kind: RouteKind,
        route: u32,
        ctx: &mut MsgCtx<'_, '_>,
        me: usize,
        rt: &mut dyn Runtime,
    ) -> Outcome;

    /// The socket a request to `dest` over `proto` goes from, `forced`
    /// (`$fs`) if set (`None` when that is not a listen address, or no
    /// socket serves `proto`).
    fn send_socket(
        &self,
        forced: Option<SocketAddr>,
        dest: SocketAddr,
        proto: Proto,
    ) -> Option<usize>;

    /// The script's onsend_route, if it has one, on a request about to go
    /// to `to` (its flags `flags`): false when the route dropped it.
    fn on_send(&mut self, msg: &Message<'_>, src: SocketAddr, flags: u32, to: SocketAddr) -> bool;

    /// TMCB_REQUEST_IN to the runtimes that follow transactions' lives
    /// ([`Wants::tm_lifecycle`]); the transaction keeps the selection as
    /// they leave it.
    fn tm_created(&mut self, sel: &mut Failover);

    /// TMCB_DESTROY to the same runtimes.
    fn tm_destroyed(&mut self, sel: &Failover);

    /// Whether a runtime wants tm's callbacks ([`Wants::tm_events`]) for
    /// a transaction with these script flags.
    fn tm_hooked(&self, flags: u32) -> bool;

    /// A tm callback to every runtime that wants it; the script flags
    /// they reset.
    fn tm_emit(&mut self, ev: &TmEvent<'_, '_>) -> u32;
}

/// A module's per-process state and behaviour.
pub trait Runtime {
    /// What it takes part in beyond its actions (asked once, at start).
    fn wants(&self) -> Wants {
        Wants::default()
    }

    /// With `Wants::per_message`: a new message is about to be scripted;
    /// forget the last one.
    fn message_start(&mut self) {}

    /// With `Wants::ticks`: each tick of the timer process (10 ms at
    /// most apart unless every runtime says it needs none sooner).
    fn tick(&mut self, _cx: &mut Cx<'_>) {}

    /// With `Wants::ticks`: when it next needs a tick (ms on `now_ms`'s
    /// clock); the timer process sleeps until the earliest runtime's, at
    /// most [`crate::server::limits::TIMER_MAX_SLEEP_MS`]. By default the
    /// next 10 ms tick.
    fn next_tick(&self, now_ms: u64) -> u64 {
        now_ms + crate::modules::tm::wheel::TICK_MS
    }

    /// With `Wants::drives_timers`: after each batch of messages a worker
    /// handled, the timer work due now that no one else is doing (tm:
    /// shards of its wheel), so it grows with the workers.
    fn drive_timers(&mut self, _cx: &mut Cx<'_>) {}

    /// With `Wants::requests`: a request before the script (tm: its
    /// transactions' retransmissions and ACKs); true when it took it.
    fn request_in(&mut self, _cx: &mut Cx<'_>, _msg: &Message<'_>) -> bool {
        false
    }

    /// With `Wants::replies`: a reply; true when it took it (tm: its
    /// branches'; the dispatcher: its probes').
    fn reply_in(&mut self, _cx: &mut Cx<'_>, _msg: &Message<'_>, _src: SocketAddr) -> bool {
        false
    }

    /// With `Wants::transactions`: a reply to the current request on its
    /// transaction (`send_reply` once tm made one); `None` when it has
    /// none, and the reply goes statelessly.
    fn reply_on_txn(
        &mut self,
        _cx: &mut Cx<'_>,
        _ctx: &mut MsgCtx<'_, '_>,
        _code: u16,
        _reason: &[u8],
        _headers: &[u8],
    ) -> Option<i32> {
        None
    }

    /// With `Wants::send_failures`: a datagram to `dest` the kernel would
    /// not send (tm: a branch's request ends with 477).
    fn send_failed(&mut self, _cx: &mut Cx<'_>, _dest: SocketAddr, _what: Refusal<'_>) {}

    /// With `Wants::tm_lifecycle`, TMCB_REQUEST_IN: a transaction was
    /// created with the script's dispatcher selection (which it keeps, as
    /// Kamailio keeps it in AVPs); the dispatcher counts the call's load.
    fn tm_created(&mut self, _cx: &mut Cx<'_>, _sel: &mut Failover) {}

    /// With `Wants::tm_lifecycle`, TMCB_DESTROY: the transaction ended.
    fn tm_destroyed(&mut self, _cx: &mut Cx<'_>, _sel: &Failover) {}

    /// Runs action `id` (the module's own numbering) on the current
    /// message; SER's return convention.
    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32;

    /// Whether a transaction created with these script flags concerns it
    /// (asked before tm reads the stored request for [`TmEvent`]s).
    fn tm_wants(&self, _flags: u32) -> bool {
        false
    }

    /// A tm callback (SER's `register_tmcb`), for transactions it wants;
    /// returns script flags to reset on the transaction (acc's missed-call
    /// flags, once a missed call is recorded).
    fn tm_event(&mut self, _cx: &mut Cx<'_>, _ev: &TmEvent<'_, '_>) -> u32 {
        0
    }
}

/// The places in the worker's loop a runtime takes part in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wants {
    pub per_message: bool,
    pub ticks: bool,
    /// [`Runtime::drive_timers`] after each batch a worker handles.
    pub drives_timers: bool,
    pub requests: bool,
    pub replies: bool,
    /// It keeps transactions: [`Runtime::reply_on_txn`] (one module: tm).
    pub transactions: bool,
    pub send_failures: bool,
    pub tm_lifecycle: bool,
    /// tm's callbacks ([`Runtime::tm_wants`], [`Runtime::tm_event`]).
    pub tm_events: bool,
}

/// A transaction's request as tm keeps it, with what it knows of it.
pub struct TmRequest<'e, 'm> {
    /// The request as relayed (after the script's changes, before our
    /// Via).
    pub msg: &'e Message<'m>,
    /// Where it came from, and the address it came in on.
    pub source: SocketAddr,
    pub local: SocketAddr,
    /// The script's flags when the transaction was created.
    pub flags: u32,
}

/// tm's callbacks (SER's and Kamailio's TMCB_* types) that modules see.
pub enum TmEvent<'e, 'm> {
    /// TMCB_RESPONSE_OUT: a reply went upstream, relayed or local: every
    /// relayed provisional one, and the first final one.
    ResponseOut {
        req: TmRequest<'e, 'm>,
        code: u16,
        reason: &'e [u8],
        /// The reply's To tag (empty: none).
        to_tag: &'e [u8],
        /// Whether the reply carries a body (early media on a 1xx).
        has_body: bool,
    },
    /// TMCB_ON_FAILURE: a branch's failure (>= 300) became the
    /// transaction's best reply before failure_route runs.
    Failure {
        req: TmRequest<'e, 'm>,
        code: u16,
        reason: &'e [u8],
        to_tag: &'e [u8],
    },
}

impl Module {
    /// A module with parameters only (database drivers: `db_url` names
    /// them).
    pub const fn params_only(
        name: &'static str,
        params: &'static [(&'static str, ParamType)],
    ) -> Module {
        Module {
            name,
            params,
            actions: &[],
            counters: &[],
            hooks: None,
            unapplied: &[],
            check: None,
        }
    }

    /// The same, with parameters accepted but not applied yet.
    pub const fn unapplied(mut self, params: &'static [&'static str]) -> Module {
        self.unapplied = params;
        self
    }
}

/// What a module's runtime does with arguments its fixup cannot have
/// produced: a bug, logged, the action false.
pub fn bad_args(module: &str, id: u8) -> i32 {
    log::error!("{module}: action {id} run with arguments its fixup never makes");
    -1
}

/// Regular expressions a module's actions carry as text (their fixup
/// checked that they compile), compiled once per process on first use.
#[derive(Default)]
pub struct Regexes(std::collections::HashMap<Box<str>, regex::bytes::Regex>);

impl Regexes {
    /// `re` compiled (`None` only if it does not compile, which the
    /// fixup ruled out).
    pub fn get(&mut self, re: &str) -> Option<&regex::bytes::Regex> {
        if !self.0.contains_key(re) {
            let compiled = crate::cfg::compile::build_regex(re, false, false).ok()?;
            self.0.insert(re.into(), compiled);
        }
        self.0.get(re)
    }
}

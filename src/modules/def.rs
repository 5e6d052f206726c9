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
use crate::cfg::{Config, ConfigError};
use crate::modules::dispatcher::Failover;
use crate::script::MsgCtx;
use crate::server::worker::Worker;
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

/// Runs one of the module's actions (by its id) on the current message;
/// SER's return convention (positive true, negative false, 0 ends the
/// script).
pub type RunFn = for<'w, 'm, 's> fn(&mut Worker<'w>, &mut MsgCtx<'m, 's>, u8, &[Param]) -> i32;

/// The route blocks an action may run in, as a bit set of [`RouteKind`]s
/// (Kamailio's `REQUEST_ROUTE | FAILURE_ROUTE | ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes(u8);

impl Routes {
    pub const REQUEST: Routes = Routes(1);
    pub const FAILURE: Routes = Routes(2);
    pub const ONREPLY: Routes = Routes(4);
    pub const BRANCH: Routes = Routes(8);
    pub const ANY: Routes = Routes(15);
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
        };
        self.0 & bit.0 != 0
    }
}

#[derive(Debug)]
pub struct ActionDef {
    pub name: &'static str,
    /// The module's own number for it, which its [`RunFn`] matches on.
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
    /// Runs the actions in a worker through the worker itself (the
    /// modules written before [`Runtime`]); `None` for a module without
    /// actions or with a [`Runtime`].
    pub run: Option<RunFn>,
    /// Its counters' names, each starting with the module's name and `_`
    /// (its group in `stats.get`); [`Counts::add`] takes an index here.
    pub counters: &'static [&'static str],
    /// Its runtime, shared tables and helper thread, when it has them.
    pub hooks: Option<&'static Hooks>,
    /// Where the worker hands it messages and time (the modules written
    /// before [`Runtime`]).
    pub shell: Option<&'static ShellHooks>,
    /// Parameters the checker accepts (SER and Kamailio configs set them)
    /// but this build does not apply yet: said at start-up, not hidden.
    pub unapplied: &'static [&'static str],
}

/// A module's places in the worker's loop, for the modules that run on
/// the worker itself.
#[derive(Debug, Default)]
pub struct ShellHooks {
    /// A request before the script (tm: its transactions'
    /// retransmissions and ACKs); true when it took it.
    pub request_in: Option<for<'w, 'm> fn(&mut Worker<'w>, &Message<'m>) -> bool>,
    /// A reply (tm: its branches'; the dispatcher: its probes'); true
    /// when it took it.
    pub reply_in: Option<for<'w, 'm> fn(&mut Worker<'w>, &Message<'m>, SocketAddr) -> bool>,
    /// Each tick of the timer process (10 ms).
    pub tick: Option<for<'w> fn(&mut Worker<'w>)>,
}

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

    /// Adds `n` to one of the shell's counters (those modules written
    /// before their own lists share).
    pub fn shell(&self, c: crate::server::shared::Counter, n: u64) {
        self.counters.add(self.slot, c as usize, n);
    }
}

/// What a runtime may use while it runs an action or a callback: the
/// clock, the module's counters, and the worker's services.
pub struct Cx<'a> {
    /// Milliseconds on the monotonic clock, for this batch.
    pub now_ms: u64,
    pub counts: Counts<'a>,
    pub shell: &'a mut dyn Shell,
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

    /// Counts one of the shell's counters (those shared by modules
    /// written before their own lists).
    fn count(&self, c: crate::server::shared::Counter);

    /// The socket (its index) the current message came in on.
    fn in_sock(&self) -> usize;

    /// A host name's address (the process's cache, else the resolver).
    fn resolve(&mut self, host: &str, port: u16) -> Option<SocketAddr>;

    /// A new request to `to`, sent with the batch from the socket that
    /// fits: the address its Via names, and the buffer to write it into.
    fn send_new(&mut self, to: SocketAddr) -> (SocketAddr, &mut Vec<u8>);
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

    /// With `Wants::ticks`: each tick of the timer process (10 ms).
    fn tick(&mut self, _cx: &mut Cx<'_>) {}

    /// With `Wants::replies`: a reply no transaction took; true when it
    /// took it (the dispatcher's probes).
    fn reply_in(&mut self, _cx: &mut Cx<'_>, _msg: &Message<'_>, _src: SocketAddr) -> bool {
        false
    }

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
    pub replies: bool,
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
            run: None,
            counters: &[],
            hooks: None,
            shell: None,
            unapplied: &[],
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

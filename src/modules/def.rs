//! What a module declares: its name, its parameters, and its actions
//! (name, arity, how their arguments are checked at load, which routes
//! may run them, and the runtime that runs them in a worker). The one
//! list of modules is [`super::MODULES`]; the config checker, the
//! compiler and the worker's dispatch all read it, so nothing else lists
//! a module or its actions.

use crate::cfg::ConfigError;
use crate::cfg::ast::{Arg, RouteKind};
use crate::cfg::fixup::Fixup;
use crate::cfg::program::Param;
use crate::script::MsgCtx;
use crate::server::worker::Worker;

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
    /// Runs the actions in a worker; `None` for a module without actions
    /// (database drivers) or whose actions the VM runs itself.
    pub run: Option<RunFn>,
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
        }
    }
}

/// What a module's runtime does with arguments its fixup cannot have
/// produced: a bug, logged, the action false.
pub fn bad_args(module: &str, id: u8) -> i32 {
    log::error!("{module}: action {id} run with arguments its fixup never makes");
    -1
}

//! What a module's fixup (its check of an action's arguments at load)
//! works with: the arguments as written, converters that report an error
//! at the argument's position, and the route blocks it may refer to.

use super::ConfigError;
use super::ast::{Arg, RouteKind};
use super::lexer::Pos;
use super::program::{Program, route_label};

pub type Res<T> = Result<T, ConfigError>;

/// The program being compiled, as far as a fixup may see it.
pub struct Fixup<'c> {
    pub(super) prog: &'c Program,
}

impl Fixup<'_> {
    /// The index of route block `name` of `kind` (`"0"` is the main
    /// request route).
    pub fn route(&self, kind: RouteKind, a: &Arg) -> Res<u32> {
        route_ref(self.prog, kind, &text(a), a.pos())
    }
}

/// See [`Fixup::route`].
pub(super) fn route_ref(prog: &Program, kind: RouteKind, name: &str, pos: Pos) -> Res<u32> {
    let name = if kind == RouteKind::Request && name == "0" {
        None
    } else {
        Some(name)
    };
    prog.route(kind, name)
        .ok_or_else(|| ConfigError::new(pos, format!("{} is not defined", route_label(kind, name))))
}

/// An error at the argument's position.
pub fn error(a: &Arg, msg: String) -> ConfigError {
    ConfigError::new(a.pos(), msg)
}

pub fn text(a: &Arg) -> String {
    match a {
        Arg::Str(s, _) | Arg::Word(s, _) => s.clone(),
        Arg::Int(n, _) => n.to_string(),
    }
}

pub fn nonempty(a: &Arg) -> Res<Box<str>> {
    let t = text(a);
    if t.is_empty() {
        return Err(ConfigError::new(a.pos(), "empty argument".into()));
    }
    Ok(t.into())
}

pub fn int_in(a: &Arg, min: i64, max: i64) -> Res<i64> {
    let n = match a {
        Arg::Int(n, _) => Some(*n),
        Arg::Str(s, _) | Arg::Word(s, _) => s.trim().parse().ok(),
    };
    n.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        ConfigError::new(
            a.pos(),
            format!("expected a number from {min} to {max}, found {}", show(a)),
        )
    })
}

pub fn show(a: &Arg) -> String {
    match a {
        Arg::Str(s, _) => format!("\"{s}\""),
        Arg::Word(w, _) => format!("'{w}'"),
        Arg::Int(n, _) => n.to_string(),
    }
}

//! xlog (Kamailio's): `xlog([level,] format)`, `xdbg`, `xinfo`,
//! `xnotice`, `xwarn`, `xerr`, `xbug`, `xalert`, `xcrit`: a log line
//! with pseudo-variables filled. Levels map onto rser's log levels
//! (L_ALERT, L_BUG, L_CRIT, L_ERR: error; L_WARN: warn; L_NOTICE,
//! L_INFO: info; L_DBG: debug); xlog without a level logs at L_ERR, as
//! Kamailio's. A `$` that starts no pseudo-variable rser provides is a
//! load error, not text.

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Format;
use crate::modules::def::{Cx, Hooks, Module, ParamType, Routes, Runtime, Start, action, bad_args};
use crate::script::MsgCtx;

/// Everywhere a script runs, onsend_route included.
const LOGGING: Routes = Routes::ANY.or(Routes::ONSEND);

const XLOG: u8 = 0;
const XDBG: u8 = 1;
const XINFO: u8 = 2;
const XNOTICE: u8 = 3;
const XWARN: u8 = 4;
const XERR: u8 = 5;
const XBUG: u8 = 6;
const XALERT: u8 = 7;
const XCRIT: u8 = 8;

pub static MODULE: Module = Module {
    name: "xlog",
    params: &[
        ("buf_size", ParamType::Int),
        ("force_color", ParamType::Int),
        ("long_format", ParamType::Int),
        ("prefix", ParamType::Str),
        ("log_facility", ParamType::Str),
        ("log_colors", ParamType::Str),
    ],
    actions: &[
        action("xlog", XLOG, (1, 2), level_format, LOGGING),
        action("xdbg", XDBG, (1, 1), format_only, LOGGING),
        action("xinfo", XINFO, (1, 1), format_only, LOGGING),
        action("xnotice", XNOTICE, (1, 1), format_only, LOGGING),
        action("xwarn", XWARN, (1, 1), format_only, LOGGING),
        action("xerr", XERR, (1, 1), format_only, LOGGING),
        action("xbug", XBUG, (1, 1), format_only, LOGGING),
        action("xalert", XALERT, (1, 1), format_only, LOGGING),
        action("xcrit", XCRIT, (1, 1), format_only, LOGGING),
    ],
    counters: &[],
    hooks: Some(&Hooks::runtime(start)),
    unapplied: &[
        "buf_size",
        "force_color",
        "long_format",
        "prefix",
        "log_facility",
        "log_colors",
    ],
    check: None,
};

/// The levels, as rser logs them (0 error .. 3 debug).
fn level_of(name: &str) -> Option<i64> {
    Some(match name.trim().to_ascii_uppercase().as_str() {
        "L_ALERT" | "L_BUG" | "L_CRIT2" | "L_CRIT" | "L_ERR" => 0,
        "L_WARN" => 1,
        "L_NOTICE" | "L_INFO" => 2,
        "L_DBG" => 3,
        n => match n.parse::<i64>().ok()? {
            i64::MIN..=-1 => 0,
            0 => 1,
            1 | 2 => 2,
            _ => 3,
        },
    })
}

/// A format whose every `$` starts a pseudo-variable rser provides.
fn checked_format(a: &Arg) -> Result<Format, ConfigError> {
    let t = text(a);
    let f = Format::parse(&t).map_err(|e| error(a, e))?;
    let literal: String = f
        .parts
        .iter()
        .filter_map(|p| match p {
            crate::cfg::pv::Part::Text(s) => Some(&**s),
            crate::cfg::pv::Part::Var(_) => None,
        })
        .collect();
    let bytes = literal.as_bytes();
    for (i, _) in literal.match_indices('$') {
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        if next.is_ascii_alphabetic() || next == b'(' || next == b'{' {
            let word: String = literal[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .take(30)
                .collect();
            return Err(error(
                a,
                format!("pseudo-variable in '{word}' is not provided (the format is \"{t}\")"),
            ));
        }
    }
    Ok(f)
}

fn level_format(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    match a {
        [f] => Ok(vec![Param::Int(0), Param::Fmt(checked_format(f)?)]),
        [level, f] => {
            let l = level_of(&text(level)).ok_or_else(|| {
                error(
                    level,
                    format!(
                        "xlog: '{}' is not a log level (L_ERR, L_INFO, ...)",
                        text(level)
                    ),
                )
            })?;
            Ok(vec![Param::Int(l), Param::Fmt(checked_format(f)?)])
        }
        _ => unreachable!("arity checked"),
    }
}

fn format_only(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Fmt(checked_format(&a[0])?)])
}

/// xlog keeps nothing per process.
struct XLog;

fn start<'a>(_: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(XLog)
}

impl Runtime for XLog {
    fn call(&mut self, _: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        let (level, f) = match (id, args) {
            (XLOG, [Param::Int(l), Param::Fmt(f)]) => (*l, f),
            (XDBG, [Param::Fmt(f)]) => (3, f),
            (XINFO | XNOTICE, [Param::Fmt(f)]) => (2, f),
            (XWARN, [Param::Fmt(f)]) => (1, f),
            (XERR | XBUG | XALERT | XCRIT, [Param::Fmt(f)]) => (0, f),
            _ => return bad_args("xlog", id),
        };
        let level = match level {
            0 => log::Level::Error,
            1 => log::Level::Warn,
            2 => log::Level::Info,
            _ => log::Level::Debug,
        };
        if log::log_enabled!(target: "xlog", level) {
            let mut out = Vec::new();
            crate::script::pv::format_into(f, ctx, &mut out);
            log::log!(target: "xlog", level, "{}", String::from_utf8_lossy(&out).trim_end());
        }
        1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_and_levels_are_checked_at_load() {
        let ok = crate::cfg::load(
            "loadmodule \"xlog.so\"\nroute { xlog(\"L_INFO\", \"from $fU at $si:$sp\\n\"); xdbg(\"x\"); xlog(\"costs 5$\"); }",
        );
        assert!(ok.is_ok(), "{ok:?}");
        let e = crate::cfg::load(
            "loadmodule \"xlog.so\"\nroute { xlog(\"L_LOUD\", \"x\"); xlog(\"$nope(x) $(ru{s.len})\"); }",
        )
        .expect_err("errors");
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("'L_LOUD' is not a log level"), "{text:?}");
        assert!(
            text[1].contains("pseudo-variable in '$nope(x)' is not provided"),
            "{text:?}"
        );
    }
}

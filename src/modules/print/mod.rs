//! print (SER 0.8's example module, loaded by its quick-start config):
//! `print("text")` writes the text and a line break to the server's
//! standard output, as SER's did with printf.

use std::io::Write as _;

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, text};
use crate::cfg::program::Param;
use crate::modules::def::{Cx, Hooks, Module, Routes, Runtime, Start, action};
use crate::script::MsgCtx;

pub static MODULE: Module = Module {
    name: "print",
    params: &[],
    actions: &[action("print", 0, (1, 1), one_text, Routes::ANY)],
    counters: &[],
    hooks: Some(&Hooks::runtime(start)),
    unapplied: &[],
    check: None,
};

fn one_text(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let mut line = text(&a[0]);
    line.push('\n');
    Ok(vec![Param::Str(line.into())])
}

/// print keeps nothing per process.
struct Print;

fn start<'a>(_: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(Print)
}

impl Runtime for Print {
    fn call(&mut self, _: &mut Cx<'_>, _: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        let [Param::Str(line)] = args else {
            return crate::modules::def::bad_args("print", id);
        };
        // One write of the whole line, so lines of several workers do not
        // interleave; standard output closed is not the script's failure.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        1
    }
}

//! SER's routing language (`ser.cfg`): lexer → parser (AST with
//! positions) → checks and compilation to bytecode ([`Program`]). The
//! master loads a config once with [`load`]; workers run the program with
//! the VM in `crate::script`.

pub mod ast;
pub mod compile;
pub mod fixup;
pub mod lexer;
pub mod parser;
pub mod program;
pub mod pv;
pub mod registry;
pub mod settings;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod parser_tests;

use std::collections::HashSet;
use std::fmt;

use ast::{Script, Value};
use lexer::Pos;
pub use program::Program;
use registry::ParamType;
pub use settings::Settings;

/// A problem in a config, at a position (`FILE:LINE:COL: error: msg`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigError {
    pub pos: Pos,
    pub msg: String,
}

impl ConfigError {
    pub fn new(pos: Pos, msg: String) -> ConfigError {
        ConfigError { pos, msg }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.pos, self.msg)
    }
}

/// A `modparam` value after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Int(i64),
    Str(String),
}

/// A loaded config: the core settings, the modules, their parameters and
/// the compiled routes.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// Names of the loaded modules, in load order.
    pub modules: Vec<&'static str>,
    /// `(module, parameter, value)` in script order; later ones win.
    pub modparams: Vec<(&'static str, &'static str, ParamValue)>,
    pub program: Program,
    /// The file it was read from, when known (Kamailio resolves relative
    /// file parameters, the dispatcher's list, against its directory).
    pub path: Option<std::path::PathBuf>,
}

impl Config {
    /// Whether module `name` is loaded, or one of its actions is called
    /// (`auth_db` provides auth's).
    pub fn uses_module(&self, name: &str) -> bool {
        self.has_module(name) || self.program.calls_module(name)
    }

    pub fn has_module(&self, name: &str) -> bool {
        self.modules.contains(&name)
    }

    /// The value a script gave a module parameter, if any.
    pub fn modparam(&self, module: &str, param: &str) -> Option<&ParamValue> {
        self.modparams
            .iter()
            .rev()
            .find(|(m, p, _)| *m == module && *p == param)
            .map(|(_, _, v)| v)
    }

    pub fn modparam_int(&self, module: &str, param: &str, default: i64) -> i64 {
        match self.modparam(module, param) {
            Some(ParamValue::Int(n)) => *n,
            _ => default,
        }
    }

    pub fn modparam_str<'a>(&'a self, module: &str, param: &str, default: &'a str) -> &'a str {
        match self.modparam(module, param) {
            Some(ParamValue::Str(s)) => s,
            _ => default,
        }
    }
}

/// Parses, checks and compiles a config. On failure returns every error
/// found, in source order.
pub fn load(src: &str) -> Result<Config, Vec<ConfigError>> {
    let (script, syntax) = parser::parse(src);
    let mut errors: Vec<ConfigError> = syntax
        .into_iter()
        .map(|e| ConfigError::new(e.pos, e.msg))
        .collect();
    let config = check_and_compile(&script, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort();
        errors.dedup();
        Err(errors)
    }
}

fn check_and_compile(script: &Script, errors: &mut Vec<ConfigError>) -> Config {
    let settings = settings::settings(&script.globals, errors);
    let modules = modules(script, errors);
    let modparams = modparams(script, &modules, errors);
    let loaded: HashSet<&str> = modules.iter().copied().collect();
    let program = compile::compile(script, &settings, &loaded, errors);
    Config {
        settings,
        modules,
        modparams,
        program,
        path: None,
    }
}

fn modules(script: &Script, errors: &mut Vec<ConfigError>) -> Vec<&'static str> {
    let mut loaded = Vec::new();
    for lm in &script.modules {
        let name = registry::module_name_of_path(&lm.path);
        match registry::module(name) {
            Some(m) if !loaded.contains(&m.name) => loaded.push(m.name),
            Some(_) => {}
            None => errors.push(ConfigError::new(
                lm.pos,
                format!("unknown module '{name}' (loadmodule \"{}\")", lm.path),
            )),
        }
    }
    loaded
}

fn modparams(
    script: &Script,
    loaded: &[&'static str],
    errors: &mut Vec<ConfigError>,
) -> Vec<(&'static str, &'static str, ParamValue)> {
    let mut out = Vec::new();
    for mp in &script.modparams {
        let fail = |msg: String| ConfigError::new(mp.pos, msg);
        let Some(module) = registry::module(&mp.module) else {
            errors.push(fail(format!("modparam for unknown module '{}'", mp.module)));
            continue;
        };
        if !loaded.contains(&module.name) {
            errors.push(fail(format!(
                "modparam for module '{}', which is not loaded",
                module.name
            )));
            continue;
        }
        let Some(&(param, ty)) = module.params.iter().find(|(p, _)| *p == mp.param) else {
            errors.push(fail(format!(
                "module '{}' has no parameter '{}'",
                module.name, mp.param
            )));
            continue;
        };
        let value = match (ty, &mp.value) {
            (ParamType::Int, Value::Int(n)) => ParamValue::Int(*n),
            (ParamType::Str, Value::Str(s)) => ParamValue::Str(s.clone()),
            (ParamType::Int, _) => {
                errors.push(fail(format!(
                    "parameter '{param}' of module '{}' is a number (int), not a string",
                    module.name
                )));
                continue;
            }
            (ParamType::Str, _) => {
                errors.push(fail(format!(
                    "parameter '{param}' of module '{}' is a quoted string (str)",
                    module.name
                )));
                continue;
            }
        };
        out.push((module.name, param, value));
    }
    out
}

//! SER's routing language (`ser.cfg`): lexer → parser (AST with
//! positions) → checks and compilation to bytecode ([`Program`]). The
//! master loads a config once with [`load`]; workers run the program with
//! the VM in `crate::script`.

pub mod ast;
pub mod compile;
pub mod fixup;
pub mod lexer;
pub mod parser;
pub mod preprocess;
pub mod program;
pub mod pv;
pub mod registry;
pub mod settings;
pub mod transform;

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

/// A problem in a config, at a position (`FILE:LINE:COL: error: msg`),
/// or a warning (`...: warning: msg`): something accepted that this build
/// does not do as the config asks. `rser -c` and start-up say the same.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigError {
    /// An included file's name; `None`: the file the caller loaded (its
    /// name is the caller's to print).
    pub file: Option<String>,
    pub pos: Pos,
    pub msg: String,
    pub warning: bool,
}

impl ConfigError {
    pub fn new(pos: Pos, msg: String) -> ConfigError {
        ConfigError {
            file: None,
            pos,
            msg,
            warning: false,
        }
    }

    pub fn warning(pos: Pos, msg: String) -> ConfigError {
        ConfigError {
            file: None,
            pos,
            msg,
            warning: true,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning { "warning" } else { "error" };
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(f, "{}: {kind}: {}", self.pos, self.msg)
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
    /// What is accepted but not done as written (said by `-c` and logged
    /// at start), in source order.
    pub warnings: Vec<ConfigError>,
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

/// Parses, checks and compiles a config (the language only: what the
/// script's modules would refuse at start is [`load_from`]'s). On failure
/// returns every error found, in source order (warnings among them).
pub fn load(src: &str) -> Result<Config, Vec<ConfigError>> {
    load_inner(src, None, &[], false)
}

/// [`load`] for the config read from `path`, as `rser -c` and a start
/// load it: relative file parameters (the dispatcher's list) resolve
/// against its directory, and the checks a start makes (modules'
/// parameters, database URLs, files named) are made here, so a config
/// `rser -c` passes is one that starts.
pub fn load_from(src: &str, path: Option<&std::path::Path>) -> Result<Config, Vec<ConfigError>> {
    load_with(src, path, &[])
}

/// [`load_from`] with names defined before the text is read (Kamailio's
/// `-A NAME[=VALUE]`).
pub fn load_with(
    src: &str,
    path: Option<&std::path::Path>,
    defines: &[(String, Option<String>)],
) -> Result<Config, Vec<ConfigError>> {
    load_inner(src, path, defines, true)
}

fn load_inner(
    src: &str,
    path: Option<&std::path::Path>,
    defines: &[(String, Option<String>)],
    as_started: bool,
) -> Result<Config, Vec<ConfigError>> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p);
    let (source, pp_errors) = preprocess::preprocess(src, path, defines, &read);
    let (script, syntax) = parser::parse(&source.text);
    let mut errors: Vec<ConfigError> = syntax
        .into_iter()
        .map(|e| ConfigError::new(e.pos, e.msg))
        .collect();
    let file_name = |file: u16| {
        source.files[file as usize]
            .as_ref()
            .filter(|_| file != 0)
            .map(|p| p.display().to_string())
    };
    let mut config = check_and_compile(&script, &mut errors);
    config.path = path.map(std::path::Path::to_path_buf);
    if as_started && errors.iter().all(|e| e.warning) {
        start_checks(&script, &mut config, &mut errors);
    }
    // Positions in the preprocessed text back to the files as written.
    for e in &mut errors {
        let o = source.origin(e.pos.line);
        e.pos.line = o.line;
        e.file = file_name(o.file);
    }
    errors.extend(pp_errors.into_iter().map(|e| {
        let mut c = ConfigError::new(
            Pos {
                line: e.origin.line,
                col: 1,
            },
            e.msg,
        );
        c.file = file_name(e.origin.file);
        c
    }));
    let (mut warnings, mut errors): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| e.warning);
    warnings.sort();
    warnings.dedup();
    if errors.is_empty() {
        config.warnings = warnings;
        Ok(config)
    } else {
        errors.append(&mut warnings);
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
        warnings: Vec::new(),
    }
}

/// What a start would refuse or not do as written, found now: each used
/// module's own check (its parameters as its runtime reads them), and
/// parameters accepted but not applied. An error is placed at the
/// module's `loadmodule` line (its first `modparam`, or 1:1, if none).
fn start_checks(script: &Script, config: &mut Config, errors: &mut Vec<ConfigError>) {
    let first = Pos { line: 1, col: 1 };
    for m in crate::modules::MODULES {
        if !crate::modules::def::Hooks::used_by(m, config) {
            continue;
        }
        let Some(check) = m.check else { continue };
        let pos = script
            .modules
            .iter()
            .find(|lm| registry::module_name_of_path(&lm.path) == m.name)
            .map(|lm| lm.pos)
            .or_else(|| {
                script
                    .modparams
                    .iter()
                    .find(|mp| mp.module == m.name)
                    .map(|mp| mp.pos)
            })
            .unwrap_or(first);
        match check(config) {
            Ok(warnings) => {
                errors.extend(warnings.into_iter().map(|w| ConfigError::warning(pos, w)))
            }
            Err(e) => errors.push(ConfigError::new(pos, format!("{}: {e}", m.name))),
        }
    }
    for mp in &script.modparams {
        if registry::module(&mp.module).is_some_and(|d| d.unapplied.contains(&mp.param.as_str())) {
            errors.push(ConfigError::warning(
                mp.pos,
                format!(
                    "modparam(\"{}\", \"{}\") is accepted but not applied by this build",
                    mp.module, mp.param
                ),
            ));
        }
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
                match registry::not_provided(name) {
                    Some(what) => format!(
                        "module '{name}' is not provided by rser: {what} (loadmodule \"{}\"; its modparams are not checked)",
                        lm.path
                    ),
                    None => format!("unknown module '{name}' (loadmodule \"{}\")", lm.path),
                },
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
        // Kamailio's `modparam("a|b", ...)` sets it on each module named
        // that has the parameter.
        let mut found = false;
        let mut wrong = Vec::new();
        for name in mp.module.split('|').map(str::trim) {
            match modparam(script, loaded, mp, name) {
                Ok(entry) => {
                    found = true;
                    out.extend(entry);
                }
                Err(e) => wrong.push(ConfigError::new(mp.pos, e)),
            }
        }
        if !found {
            errors.extend(wrong);
        }
    }
    out
}

/// One module's `modparam`: the checked entry, `None` for a module rser
/// does not provide (said at its loadmodule), or what is wrong.
fn modparam(
    script: &Script,
    loaded: &[&'static str],
    mp: &crate::cfg::ast::ModParam,
    name: &str,
) -> Result<Option<(&'static str, &'static str, ParamValue)>, String> {
    let Some(module) = registry::module(name) else {
        let said = script
            .modules
            .iter()
            .any(|lm| registry::module_name_of_path(&lm.path) == name);
        return if said {
            Ok(None)
        } else {
            Err(format!("modparam for unknown module '{name}'"))
        };
    };
    if !loaded.contains(&module.name) {
        return Err(format!(
            "modparam for module '{}', which is not loaded",
            module.name
        ));
    }
    let Some(&(param, ty)) = module.params.iter().find(|(p, _)| *p == mp.param) else {
        return Err(format!(
            "module '{}' has no parameter '{}'",
            module.name, mp.param
        ));
    };
    let value = match (ty, &mp.value) {
        (ParamType::Int, Value::Int(n)) => ParamValue::Int(*n),
        (ParamType::Str, Value::Str(s)) => ParamValue::Str(s.clone()),
        (ParamType::Int, _) => {
            return Err(format!(
                "parameter '{param}' of module '{}' is a number (int), not a string",
                module.name
            ));
        }
        (ParamType::Str, _) => {
            return Err(format!(
                "parameter '{param}' of module '{}' is a quoted string (str)",
                module.name
            ));
        }
    };
    Ok(Some((module.name, param, value)))
}

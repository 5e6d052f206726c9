//! Kamailio's preprocessor (SER 3 had it too), run on the text before the
//! lexer: `#!define`/`#!trydef`/`#!redefine`, `#!ifdef`/`#!ifndef`/
//! `#!else`/`#!endif` (nested), `#!subst`/`#!substdef`, `#!defenv`/
//! `#!trydefenv`, the `#!KAMAILIO`/`#!SER` headers, defined names
//! replaced by their values, and `include_file`/`import_file`. A
//! directive is a line starting with `#!` (or `!!`) outside a `/* */`
//! comment; every other `#` starts a comment the lexer skips.
//!
//! The output keeps each kept line's origin (file and line), so `rser -c`
//! reports positions in the files as written; lines dropped (directives,
//! skipped blocks) stay as empty lines so a file's own lines keep their
//! numbers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::Regex;

/// Nesting of `include_file` at most (a file including itself stops here).
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// Lines in all, includes counted: a runaway include is an error.
pub const MAX_LINES: usize = 200_000;
/// Rounds of replacing a defined name inside a define's value.
const MAX_EXPANSION: usize = 8;

/// Where an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index into [`Source::files`]; 0 is the main file.
    pub file: u16,
    /// 1-based.
    pub line: u32,
}

/// The text the lexer reads, and where each of its lines came from.
#[derive(Debug, Default)]
pub struct Source {
    pub text: String,
    pub origins: Vec<Origin>,
    /// The files read, the main one first (`None`: text given directly).
    pub files: Vec<Option<PathBuf>>,
}

impl Source {
    /// The origin of output line `line` (1-based).
    pub fn origin(&self, line: u32) -> Origin {
        self.origins
            .get(line.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(Origin { file: 0, line })
    }
}

/// A preprocessor error at an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PpError {
    pub origin: Origin,
    pub msg: String,
}

/// Reads an included file.
pub type Loader<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

struct Cond {
    /// This branch's lines are kept.
    active: bool,
    /// The enclosing branch was kept (an `#!else` can only turn on then).
    parent: bool,
    seen_else: bool,
    at: Origin,
}

struct Pp<'a> {
    defines: HashMap<String, String>,
    substs: Vec<(Regex, String, bool)>,
    conds: Vec<Cond>,
    out: Source,
    errors: Vec<PpError>,
    load: Loader<'a>,
    in_comment: bool,
}

/// Preprocesses `text` (read from `path`, when given; includes resolve
/// against the including file's directory) with `defines` set first
/// (`-A NAME[=VALUE]`).
pub fn preprocess(
    text: &str,
    path: Option<&Path>,
    defines: &[(String, Option<String>)],
    load: Loader<'_>,
) -> (Source, Vec<PpError>) {
    let mut pp = Pp {
        defines: defines
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect(),
        substs: Vec::new(),
        conds: Vec::new(),
        out: Source::default(),
        errors: Vec::new(),
        load,
        in_comment: false,
    };
    pp.out.files.push(path.map(Path::to_path_buf));
    pp.file(text, 0, 0);
    for c in std::mem::take(&mut pp.conds) {
        pp.error(c.at, "#!ifdef without #!endif".into());
    }
    (pp.out, pp.errors)
}

impl Pp<'_> {
    fn active(&self) -> bool {
        self.conds.last().is_none_or(|c| c.active)
    }

    fn error(&mut self, origin: Origin, msg: String) {
        self.errors.push(PpError { origin, msg });
    }

    fn emit(&mut self, line: &str, origin: Origin) {
        self.out.text.push_str(line);
        self.out.text.push('\n');
        self.out.origins.push(origin);
    }

    fn file(&mut self, text: &str, file: u16, depth: usize) {
        let mut lines = text.lines().enumerate().peekable();
        while let Some((i, raw)) = lines.next() {
            if self.out.origins.len() >= MAX_LINES {
                let at = Origin {
                    file,
                    line: i as u32 + 1,
                };
                self.error(at, format!("more than {MAX_LINES} lines, includes counted"));
                return;
            }
            let origin = Origin {
                file,
                line: i as u32 + 1,
            };
            let trimmed = raw.trim_start();
            let directive =
                !self.in_comment && (trimmed.starts_with("#!") || trimmed.starts_with("!!"));
            if directive {
                // A value continued with a trailing `\` takes the next lines.
                let mut line = trimmed[2..].to_string();
                let mut taken = 0;
                while line.ends_with('\\') {
                    line.pop();
                    match lines.next() {
                        Some((_, next)) => {
                            line.push('\n');
                            line.push_str(next);
                            taken += 1;
                        }
                        None => break,
                    }
                }
                self.directive(&line, origin);
                for k in 0..=taken {
                    self.emit(
                        "",
                        Origin {
                            file,
                            line: origin.line + k,
                        },
                    );
                }
                continue;
            }
            if !self.active() {
                self.emit("", origin);
                continue;
            }
            if let Some(target) = include_target(trimmed).filter(|_| !self.in_comment) {
                self.include(target, origin, depth);
                continue;
            }
            let replaced = self.replace_names(raw);
            let replaced = self.apply_substs(replaced);
            self.emit(&replaced, origin);
        }
    }

    fn directive(&mut self, text: &str, at: Origin) {
        let text = text.trim();
        let (word, rest) = text
            .split_once(|c: char| c.is_whitespace())
            .map_or((text, ""), |(w, r)| (w, r.trim()));
        let name_of = |rest: &str| -> (String, String) {
            let (n, v) = rest
                .split_once(|c: char| c.is_whitespace())
                .map_or((rest, ""), |(n, v)| (n, v.trim()));
            (n.to_string(), v.to_string())
        };
        match word {
            "ifdef" | "ifndef" => {
                let (name, _) = name_of(rest);
                let parent = self.active();
                let defined = self.defines.contains_key(&name);
                self.conds.push(Cond {
                    active: parent && (defined == (word == "ifdef")),
                    parent,
                    seen_else: false,
                    at,
                });
            }
            "else" => match self.conds.last_mut() {
                Some(c) if !c.seen_else => {
                    c.seen_else = true;
                    c.active = c.parent && !c.active;
                }
                Some(_) => self.error(at, "a second #!else for one #!ifdef".into()),
                None => self.error(at, "#!else without #!ifdef".into()),
            },
            "endif" => {
                if self.conds.pop().is_none() {
                    self.error(at, "#!endif without #!ifdef".into());
                }
            }
            _ if !self.active() => {}
            "KAMAILIO" | "SER" | "OPENSER" | "ALL" | "MAXCOMPAT" | "kamailio" | "ser" => {}
            "define" | "trydef" | "redefine" => {
                let (name, value) = name_of(rest);
                if !is_name(&name) {
                    return self.error(at, format!("#!{word}: '{name}' is not a name"));
                }
                let exists = self.defines.contains_key(&name);
                match (word, exists) {
                    ("define", true) => self.error(
                        at,
                        format!("#!define {name}: already defined (#!redefine replaces)"),
                    ),
                    ("trydef", true) => {}
                    _ => {
                        // A continued value is one line of text.
                        let value = self.expand(&value.replace('\n', " "));
                        self.defines.insert(name, value);
                    }
                }
            }
            "defenv" | "trydefenv" => {
                // `#!defenv NAME=ENVVAR` or `#!defenv ENVVAR`.
                let (name, var) = rest.split_once('=').unwrap_or((rest, rest));
                let (name, var) = (name.trim(), var.trim());
                match std::env::var(var) {
                    Ok(v) if is_name(name) => {
                        if word == "defenv" || !self.defines.contains_key(name) {
                            self.defines.insert(name.to_string(), v);
                        }
                    }
                    Ok(_) => self.error(at, format!("#!{word}: '{name}' is not a name")),
                    Err(_) if word == "trydefenv" => {}
                    Err(_) => self.error(at, format!("#!defenv: no environment variable {var}")),
                }
            }
            "subst" | "substdef" | "substdefs" => match parse_subst(rest) {
                Ok((re, replacement, global)) => {
                    if word != "subst" {
                        let value = if word == "substdefs" {
                            format!("\"{replacement}\"")
                        } else {
                            replacement.clone()
                        };
                        self.defines.insert(re.as_str().to_string(), value);
                    }
                    self.substs.push((re, replacement, global));
                }
                Err(e) => self.error(at, format!("#!{word}: {e}")),
            },
            _ => self.error(at, format!("unknown preprocessor directive '#!{word}'")),
        }
    }

    fn include(&mut self, target: (&str, bool), at: Origin, depth: usize) {
        let (name, required) = target;
        if depth >= MAX_INCLUDE_DEPTH {
            return self.error(
                at,
                format!("include_file nested deeper than {MAX_INCLUDE_DEPTH}"),
            );
        }
        let base = self.out.files[at.file as usize]
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        let path = match (Path::new(name).is_absolute(), base) {
            (false, Some(dir)) => dir.join(name),
            _ => PathBuf::from(name),
        };
        match (self.load)(&path) {
            Ok(text) => {
                let id = self.out.files.len();
                let Ok(id) = u16::try_from(id) else {
                    return self.error(at, "too many included files".into());
                };
                self.out.files.push(Some(path));
                // The including line becomes the included text.
                self.file(&text, id, depth + 1);
            }
            Err(_) if !required => self.emit("", at),
            Err(e) => self.error(at, format!("include_file \"{}\": {e}", path.display())),
        }
    }

    /// A define's value with the names it uses replaced.
    fn expand(&self, value: &str) -> String {
        let mut v = value.to_string();
        for _ in 0..MAX_EXPANSION {
            let next = replace_ids(&v, &self.defines, &mut false);
            if next == v {
                break;
            }
            v = next;
        }
        v
    }

    /// Defined names replaced on a line, outside strings, comments and
    /// pseudo-variables; tracks `/* */` across lines.
    fn replace_names(&mut self, line: &str) -> String {
        if self.defines.is_empty() && !line.contains("/*") && !self.in_comment {
            return line.to_string();
        }
        let mut in_comment = self.in_comment;
        let out = replace_ids(line, &self.defines, &mut in_comment);
        self.in_comment = in_comment;
        out
    }

    fn apply_substs(&self, line: String) -> String {
        let mut line = line;
        for (re, replacement, global) in &self.substs {
            line = if *global {
                re.replace_all(&line, replacement.as_str()).into_owned()
            } else {
                re.replace(&line, replacement.as_str()).into_owned()
            };
        }
        line
    }
}

fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `include_file "path"` / `import_file "path"` alone on a line: the
/// path, and whether it must exist (`import_file`'s need not).
fn include_target(trimmed: &str) -> Option<(&str, bool)> {
    let (rest, required) = if let Some(r) = trimmed.strip_prefix("include_file") {
        (r, true)
    } else {
        (trimmed.strip_prefix("import_file")?, false)
    };
    let rest = rest.trim_start().strip_prefix('"')?;
    let (path, after) = rest.split_once('"')?;
    let after = after.trim().trim_start_matches(';').trim();
    (after.is_empty() || after.starts_with('#')).then_some((path, required))
}

/// `"/regex/replacement/flags"` (any delimiter; `g` replaces every match).
fn parse_subst(arg: &str) -> Result<(Regex, String, bool), String> {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(arg);
    let mut chars = inner.chars();
    let delim = chars.next().ok_or("an empty substitution")?;
    let parts: Vec<&str> = chars.as_str().splitn(3, delim).collect();
    let [re, replacement, flags] = parts[..] else {
        return Err(format!(
            "expected {delim}regex{delim}replacement{delim}flags"
        ));
    };
    let re = Regex::new(re).map_err(|e| format!("bad regex: {e}"))?;
    // Kamailio's \1 back-references are regex's ${1}.
    let replacement = Regex::new(r"\\(\d)")
        .map(|r| r.replace_all(replacement, "$${$1}").into_owned())
        .unwrap_or_else(|_| replacement.to_string());
    Ok((re, replacement, flags.contains('g')))
}

/// Replaces whole identifiers found in `defines`, leaving strings, `#`
/// comments, `/* */` comments (state in `in_comment`, carried across
/// lines) and pseudo-variables (`$name(...)`) as they are.
fn replace_ids(line: &str, defines: &HashMap<String, String>, in_comment: &mut bool) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < b.len() {
        if *in_comment {
            match line[i..].find("*/") {
                Some(end) => {
                    out.push_str(&line[i..i + end + 2]);
                    i += end + 2;
                    *in_comment = false;
                }
                None => {
                    out.push_str(&line[i..]);
                    break;
                }
            }
            continue;
        }
        let c = b[i];
        match c {
            b'"' | b'\'' => {
                // A string to its closing quote (backslash escapes).
                let mut j = i + 1;
                while j < b.len() && b[j] != c {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(b.len());
                out.push_str(&line[i..end]);
                i = end;
            }
            b'#' => {
                out.push_str(&line[i..]);
                break;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                *in_comment = true;
                out.push_str("/*");
                i += 2;
            }
            b'$' => {
                // A pseudo-variable: its name, then a balanced `(...)`.
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j < b.len() && b[j] == b'(' {
                    let mut depth = 0;
                    while j < b.len() {
                        match b[j] {
                            b'(' => depth += 1,
                            b')' => {
                                depth -= 1;
                                if depth == 0 {
                                    j += 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                }
                out.push_str(&line[i..j]);
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let word = &line[i..j];
                // Part of a dotted name or address (`pstn.gw_ip`) stays.
                let dotted = i > 0 && b[i - 1] == b'.' || b.get(j) == Some(&b'.');
                match defines.get(word).filter(|_| !dotted) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(word),
                }
                i = j;
            }
            c if c.is_ascii_digit() => {
                // A number or an address: not a name.
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'.')
                {
                    j += 1;
                }
                out.push_str(&line[i..j]);
                i = j;
            }
            _ => {
                let ch = line[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_files(p: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} not found", p.display()),
        ))
    }

    fn pp(text: &str) -> (String, Vec<String>) {
        let (s, e) = preprocess(text, None, &[], &no_files);
        (
            s.text,
            e.into_iter()
                .map(|e| format!("{}: {}", e.origin.line, e.msg))
                .collect(),
        )
    }

    #[test]
    fn ifdef_else_nested_and_lines_kept() {
        let text = "#!KAMAILIO\n#!define A\n#!ifdef A\na1\n#!ifdef B\nb1\n#!else\nnotb\n#!endif\n#!else\nnota\n#!endif\nend\n";
        let (out, errors) = pp(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out, "\n\n\na1\n\n\n\nnotb\n\n\n\n\nend\n");
        let (out, _) = pp("#!ifndef X\nyes\n#!endif\n");
        assert_eq!(out, "\nyes\n\n");
    }

    #[test]
    fn defines_replace_names_outside_strings_comments_and_pvs() {
        let text = "#!define FLT_ACC 1\n#!define DBURL \"sqlite:///x\"\n#!trydef DBURL \"other\"\n\
                    setflag(FLT_ACC); xlog(\"FLT_ACC\"); # FLT_ACC\n$var(FLT_ACC) = FLT_ACC; /* FLT_ACC */ x=DBURL\n\
                    pstn.FLT_ACC = 2\n";
        let (out, errors) = pp(text);
        assert!(errors.is_empty(), "{errors:?}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[3], "setflag(1); xlog(\"FLT_ACC\"); # FLT_ACC");
        assert_eq!(
            lines[4],
            "$var(FLT_ACC) = 1; /* FLT_ACC */ x=\"sqlite:///x\""
        );
        assert_eq!(lines[5], "pstn.FLT_ACC = 2");
    }

    #[test]
    fn directives_in_block_comments_are_text() {
        let (out, errors) = pp("/* a comment\n#!define X 1\n*/\nX\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out.lines().nth(3), Some("X"));
    }

    #[test]
    fn command_line_defines_and_redefinition() {
        let (s, e) = preprocess(
            "#!ifdef WITH_AUTH\nauth\n#!endif\n#!define V 1\n#!redefine V 2\nV\n",
            None,
            &[("WITH_AUTH".into(), None)],
            &no_files,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.text, "\nauth\n\n\n\n2\n");
        let (_, errors) = pp("#!define V 1\n#!define V 2\n");
        assert_eq!(
            errors,
            ["2: #!define V: already defined (#!redefine replaces)"]
        );
    }

    #[test]
    fn unbalanced_and_unknown_directives_are_errors() {
        let (_, errors) = pp("#!ifdef A\nx\n");
        assert_eq!(errors, ["1: #!ifdef without #!endif"]);
        let (_, errors) = pp("#!endif\n#!else\n#!frobnicate\n");
        assert_eq!(
            errors,
            [
                "1: #!endif without #!ifdef",
                "2: #!else without #!ifdef",
                "3: unknown preprocessor directive '#!frobnicate'"
            ]
        );
    }

    #[test]
    fn subst_and_substdef() {
        let (out, errors) = pp(
            "#!substdef \"!MY_IP!10.0.0.1!g\"\n#!subst \"/PORT/5060/g\"\nlisten=udp:MY_IP:PORT\nx=\"MY_IP\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "listen=udp:10.0.0.1:5060");
        assert_eq!(lines[3], "x=\"10.0.0.1\"");
    }

    #[test]
    fn includes_resolve_against_the_including_file_with_origins() {
        let load = |p: &Path| -> std::io::Result<String> {
            match p.to_str() {
                Some("/etc/k/local.cfg") => Ok("#!define LOCAL 7\nlocal_line\n".into()),
                _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no")),
            }
        };
        let (s, e) = preprocess(
            "first\ninclude_file \"local.cfg\"\nimport_file \"missing.cfg\"\nLOCAL\n",
            Some(Path::new("/etc/k/main.cfg")),
            &[],
            &load,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.text, "first\n\nlocal_line\n\n7\n");
        assert_eq!(s.origin(3), Origin { file: 1, line: 2 });
        assert_eq!(s.origin(5), Origin { file: 0, line: 4 });
        assert_eq!(s.files[1].as_deref(), Some(Path::new("/etc/k/local.cfg")));
        let (_, e) = preprocess("include_file \"nope.cfg\"\n", None, &[], &load);
        assert_eq!(e.len(), 1);
        assert!(e[0].msg.starts_with("include_file \"nope.cfg\""), "{e:?}");
    }

    #[test]
    fn continued_define_values() {
        let (out, errors) = pp("#!define LONG a \\\n b\nLONG\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out, "\n\na   b\n");
    }
}

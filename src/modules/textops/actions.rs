//! textops' header actions, as Kamailio's: `is_method("INVITE|BYE")`,
//! `is_present_hf(name)`, `append_hf(text)` (pseudo-variables filled) and
//! `remove_hf(name)`. Changes are edits of the received text, applied
//! when the message is sent, as `search_append`'s.

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Format;
use crate::modules::def::{Cx, Runtime, Start, bad_args};
use crate::script::MsgCtx;
use crate::script::ctx::TextEdit;

pub const IS_METHOD: u8 = 0;
pub const IS_PRESENT_HF: u8 = 1;
pub const APPEND_HF: u8 = 2;
pub const REMOVE_HF: u8 = 3;
pub const IS_PRESENT_HF_RE: u8 = 4;
pub const REMOVE_HF_RE: u8 = 5;
pub const APPEND_TO_REPLY: u8 = 6;

/// Bytes `append_to_reply` may add to one message's replies.
const MAX_REPLY_HEADERS: usize = 4096;

const TRUE: i32 = 1;
const FALSE: i32 = -1;

/// `is_method`'s list: method names separated by `|`, kept upper-case.
pub fn methods(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let list = text(&a[0]);
    let names: Vec<String> = list
        .split('|')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    if names
        .iter()
        .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(error(
            &a[0],
            format!("is_method: '{list}' is not a list of methods (INVITE|BYE)"),
        ));
    }
    Ok(vec![Param::Str(names.join("|").into())])
}

/// A header name.
pub fn header_name(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let name = text(&a[0]);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(error(&a[0], format!("'{name}' is not a header name")));
    }
    Ok(vec![Param::Str(name.into())])
}

/// A regular expression on header names (as written, compact forms
/// included), matched case-insensitively as Kamailio's.
pub fn name_regex(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let re = text(&a[0]);
    crate::cfg::compile::build_regex(&format!("(?i){re}"), false, false)
        .map_err(|e| error(&a[0], e))?;
    Ok(vec![Param::Str(format!("(?i){re}").into())])
}

/// `append_hf`'s header line(s), pseudo-variables filled per message; a
/// missing line break is added, as a header must end with one.
pub fn header_text(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let mut t = text(&a[0]);
    if !t.contains(':') {
        return Err(error(
            &a[0],
            format!("append_hf: '{t}' is not a header line (Name: value)"),
        ));
    }
    if !t.ends_with("\r\n") {
        t = t.trim_end_matches(['\r', '\n']).to_string() + "\r\n";
    }
    Ok(vec![Param::Fmt(
        Format::parse(&t).map_err(|e| error(&a[0], e))?,
    )])
}

/// textops keeps nothing per process.
/// textops' runtime: the `*_re` actions' expressions, compiled once.
#[derive(Default)]
pub struct TextOps {
    regexes: crate::modules::def::Regexes,
}

pub fn start<'a>(_: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(TextOps::default())
}

/// Removes whole header lines (values sharing a line share its span:
/// each line once); false when there are none, or too many edits.
fn remove_lines(ctx: &mut MsgCtx<'_, '_>, mut lines: Vec<(usize, usize)>) -> i32 {
    lines.dedup();
    if lines.is_empty() {
        return FALSE;
    }
    let mut batch: Vec<TextEdit> = lines
        .into_iter()
        .map(|(start, end)| TextEdit {
            start,
            end,
            text: Vec::new(),
        })
        .collect();
    if ctx.add_edits(&mut batch) {
        TRUE
    } else {
        FALSE
    }
}

impl Runtime for TextOps {
    fn call(&mut self, _: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        match (id, args) {
            (IS_METHOD, [Param::Str(list)]) => {
                // A reply's method is its CSeq's (Kamailio's is_method).
                let method = match ctx.msg.cseq() {
                    Ok(c) if !ctx.msg.is_request() => c.method_raw,
                    _ => ctx.msg.method_raw(),
                };
                let hit = list
                    .split('|')
                    .any(|m| m.as_bytes().eq_ignore_ascii_case(method));
                if hit { TRUE } else { FALSE }
            }
            (IS_PRESENT_HF, [Param::Str(name)]) => {
                if ctx.msg.named(name.as_bytes()).next().is_some() {
                    TRUE
                } else {
                    FALSE
                }
            }
            (APPEND_HF, [Param::Fmt(f)]) => {
                let mut line = Vec::new();
                crate::script::pv::format_into(f, ctx, &mut line);
                let at = ctx.msg.headers_end();
                let mut batch = [TextEdit {
                    start: at,
                    end: at,
                    text: line,
                }];
                if ctx.add_edits(&mut batch) {
                    TRUE
                } else {
                    FALSE
                }
            }
            (REMOVE_HF, [Param::Str(name)]) => {
                let lines: Vec<(usize, usize)> = ctx
                    .msg
                    .named(name.as_bytes())
                    .map(|h| (h.line.start as usize, h.line.end as usize))
                    .collect();
                remove_lines(ctx, lines)
            }
            (APPEND_TO_REPLY, [Param::Fmt(f)]) => {
                let mut lines = std::mem::take(&mut ctx.st.reply_headers);
                let at = lines.len();
                crate::script::pv::format_into(f, ctx, &mut lines);
                let fits = lines.len() <= MAX_REPLY_HEADERS;
                if !fits {
                    lines.truncate(at);
                    log::warn!("append_to_reply: over {MAX_REPLY_HEADERS} bytes; not added");
                }
                ctx.st.reply_headers = lines;
                if fits { TRUE } else { FALSE }
            }
            (IS_PRESENT_HF_RE | REMOVE_HF_RE, [Param::Str(re)]) => {
                let Some(re) = self.regexes.get(re) else {
                    return FALSE;
                };
                let msg = ctx.msg;
                let lines: Vec<(usize, usize)> = msg
                    .headers()
                    .iter()
                    .filter(|h| re.is_match(msg.name(h)))
                    .map(|h| (h.line.start as usize, h.line.end as usize))
                    .collect();
                match id {
                    IS_PRESENT_HF_RE if lines.is_empty() => FALSE,
                    IS_PRESENT_HF_RE => TRUE,
                    _ => remove_lines(ctx, lines),
                }
            }
            _ => bad_args("textops", id),
        }
    }
}

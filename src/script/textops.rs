//! The textops module's actions over the received message's text:
//! `search`, `search_append`, `replace` and `subst`. Like SER's lumps, the
//! changes are recorded as edits of the original text and applied when the
//! message is sent; searches see the message as received.

use regex::bytes::{Captures, Regex};

use crate::cfg::program::SubstExpr;

use super::ctx::{MsgCtx, TextEdit};

/// SER truth values.
const TRUE: i32 = 1;
const FALSE: i32 = -1;

/// `search(re)`: true if the regex matches anywhere in the message.
pub fn search(ctx: &MsgCtx<'_, '_>, re: &Regex) -> i32 {
    if re.is_match(ctx.msg.buf()) {
        TRUE
    } else {
        FALSE
    }
}

/// `search_append(re, text)`: inserts `text` after the first match.
pub fn search_append(ctx: &mut MsgCtx<'_, '_>, re: &Regex, text: &str) -> i32 {
    let Some(m) = re.find(ctx.msg.buf()) else {
        return FALSE;
    };
    edit(ctx, m.end(), m.end(), text.as_bytes().to_vec())
}

/// `replace(re, text)`: replaces the first match with `text`.
pub fn replace(ctx: &mut MsgCtx<'_, '_>, re: &Regex, text: &str) -> i32 {
    let Some(m) = re.find(ctx.msg.buf()) else {
        return FALSE;
    };
    edit(ctx, m.start(), m.end(), text.as_bytes().to_vec())
}

/// `subst('/re/replacement/flags')`: sed-like, `\0`..`\9` in the
/// replacement; every match with `g`, else the first.
pub fn subst(ctx: &mut MsgCtx<'_, '_>, s: &SubstExpr) -> i32 {
    let buf = ctx.msg.buf();
    let mut done = 0;
    for caps in s.re.captures_iter(buf) {
        let whole = caps.get(0).expect("group 0 always matches");
        let text = expand(&caps, s.replacement.as_bytes());
        if edit(ctx, whole.start(), whole.end(), text) != TRUE {
            return FALSE;
        }
        done += 1;
        if !s.global {
            break;
        }
    }
    if done > 0 { TRUE } else { FALSE }
}

/// `subst_uri`'s work: `text` with the expression's matches replaced
/// (the first, or all with `g`); `None` when nothing matched.
pub fn subst_text(text: &[u8], s: &SubstExpr) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut last = 0;
    let mut matched = false;
    for caps in s.re.captures_iter(text) {
        matched = true;
        let whole = caps.get(0).expect("group 0 always matches");
        out.extend_from_slice(&text[last..whole.start()]);
        out.extend_from_slice(&expand(&caps, s.replacement.as_bytes()));
        last = whole.end();
        if !s.global {
            break;
        }
    }
    if !matched {
        return None;
    }
    out.extend_from_slice(&text[last..]);
    Some(out)
}

fn edit(ctx: &mut MsgCtx<'_, '_>, start: usize, end: usize, text: Vec<u8>) -> i32 {
    if ctx.add_edit(TextEdit { start, end, text }) {
        TRUE
    } else {
        log::warn!("textops: too many or overlapping changes to one message; change not made");
        FALSE
    }
}

/// The replacement with `\N` group references filled in; `\\` is a
/// backslash, any other escaped byte stands for itself.
fn expand(caps: &Captures<'_>, repl: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(repl.len());
    let mut i = 0;
    while i < repl.len() {
        match (repl[i], repl.get(i + 1)) {
            (b'\\', Some(d)) if d.is_ascii_digit() => {
                if let Some(g) = caps.get(usize::from(d - b'0')) {
                    out.extend_from_slice(g.as_bytes());
                }
                i += 2;
            }
            (b'\\', Some(&c)) => {
                out.push(c);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

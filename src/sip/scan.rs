//! Byte-level helpers shared by every parser of the message layer
//! (RFC 3261 §25.1 basic rules). None allocates and none panics.

use super::error::{ParseError, Result};

/// SP or HTAB.
#[inline]
pub fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Linear white space inside a header value: SP, HTAB and the CR LF of a
/// folded line (the framing pass guarantees a CR LF inside a value is
/// followed by white space, RFC 3261 §7.3.1).
#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Byte classes as lookup tables: one load per byte on the packet path.
const fn class_table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `token` (RFC 3261 §25.1).
const TOKEN: [bool; 256] = class_table(b"-.!%*_+`'~");
/// `word`, as Call-ID uses it (RFC 3261 §25.1).
const WORD: [bool; 256] = class_table(b"-.!%*_+`'~()<>:\\\"/[]?{}");

/// `token` characters (RFC 3261 §25.1).
#[inline]
pub fn is_token_char(b: u8) -> bool {
    TOKEN[b as usize]
}

/// `word` characters, as Call-ID uses them (RFC 3261 §25.1).
#[inline]
pub fn is_word_char(b: u8) -> bool {
    WORD[b as usize]
}

/// Whether every byte is a token character; no early exit, so short
/// names cost no branch per byte.
#[inline]
pub fn all_token(s: &[u8]) -> bool {
    s.iter().fold(true, |ok, &b| ok & TOKEN[b as usize])
}

pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_char(b))
}

/// Index of the first `needle` in `s`, eight bytes at a time in a
/// register (SWAR), inlined. The slices of a SIP message searched per
/// header (a line, a URI, a parameter) are tens of bytes, where the call,
/// dispatch and setup of a SIMD search cost more than the search.
#[inline]
pub fn find_byte(s: &[u8], needle: u8) -> Option<usize> {
    // From 16 bytes, 16 at a time with SSE2 (part of x86_64).
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if s.len() >= 16 {
        return find_byte_sse2(s, needle);
    }
    find_flagged(s, |w| flag_byte(w, needle), |b| b == needle)
}

/// [`find_byte`] from 16 bytes: unaligned 16-byte compares from the start
/// (what is searched is a line or a value, usually found in the first
/// one or two), the last one overlapping those before it.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn find_byte_sse2(s: &[u8], needle: u8) -> Option<usize> {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    debug_assert!(s.len() >= 16);
    let last = s.len() - 16;
    // SAFETY: SSE2 is enabled (the cfg; it is part of the x86_64
    // baseline), and every 16-byte load starts at most at `last`, so lies
    // inside `s`.
    unsafe {
        let want = _mm_set1_epi8(needle as i8);
        let hits = |at: usize| {
            let v = _mm_loadu_si128(s.as_ptr().add(at).cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, want)) as u32
        };
        let mut at = 0;
        while at < last {
            let m = hits(at);
            if m != 0 {
                return Some(at + m.trailing_zeros() as usize);
            }
            at += 16;
        }
        // The bytes from `at` on, in the last 16 (those before were seen).
        let m = hits(last) >> (at - last);
        (m != 0).then(|| at + m.trailing_zeros() as usize)
    }
}

/// Index of the first of the bytes of `set` in `s` (see [`find_byte`]).
#[inline]
pub fn find_any<const N: usize>(s: &[u8], set: [u8; N]) -> Option<usize> {
    find_flagged(
        s,
        |w| set.iter().fold(0, |hit, &b| hit | flag_byte(w, b)),
        |x| set.contains(&x),
    )
}

/// The first byte `flags` marks, a word at a time; the last word overlaps
/// the one before it rather than falling back to bytes (its bytes already
/// seen had no mark, so the first mark is new). Under eight bytes, `one`
/// tests byte by byte.
#[inline(always)]
fn find_flagged(s: &[u8], flags: impl Fn(u64) -> u64, one: impl Fn(u8) -> bool) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let hit = flags(w);
        if hit != 0 {
            return Some(base + (hit.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| one(b))
        .map(|p| base + p)
}

/// Flags (0x80 in a byte's place) the bytes of `w` equal to `b`. The
/// lowest flag is exact; higher ones may be false (a borrow runs upwards),
/// so only the first match may be read from it.
#[inline(always)]
fn flag_byte(w: u64, b: u8) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = w ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x & HI
}

/// Whether every byte is visible ASCII (0x21-0x7E), as URI components
/// must be. No early exit, so the compiler checks many bytes at once.
#[inline]
pub fn all_visible(s: &[u8]) -> bool {
    s.iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x21) < 0x5e))
}

/// ASCII case-insensitive equality for `name` against `lower`, a name
/// made of letters (of either case) and bytes below 0x40 (digits, '-'):
/// the parameter, scheme and header names the parsers recognise.
#[inline]
pub fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    // Bit 0x20 set on both sides where `lower` has a letter (bit 0x40),
    // which folds an upper-case letter only; other bytes compare exactly.
    // No early exit: the names are short.
    name.len() == lower.len()
        && name.iter().zip(lower).fold(true, |same, (&a, &b)| {
            let fold = (b & 0x40) >> 1;
            same & (a | fold == b | fold)
        })
}

/// Strips linear white space from both ends.
pub fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

pub fn trim_start(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    &s[start..]
}

/// Parses a decimal number of at most `u32::MAX`; anything else (sign,
/// empty, overflow, stray characters) is `BadNumber`.
pub fn parse_u32(s: &[u8]) -> Result<u32> {
    if s.is_empty() || s.len() > 10 {
        return Err(ParseError::BadNumber);
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(ParseError::BadNumber);
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).map_err(|_| ParseError::BadNumber)
}

pub fn parse_u16(s: &[u8]) -> Result<u16> {
    u16::try_from(parse_u32(s)?).map_err(|_| ParseError::BadNumber)
}

/// Index of the first `needle` in `s` that is outside a quoted string and
/// outside `<...>`. Quoted strings honour `\` escapes (RFC 3261 §25.1
/// quoted-pair). An unterminated quote is an error.
pub fn find_top_level(s: &[u8], needle: u8) -> Result<Option<usize>> {
    // A plain loop: the values scanned are short.
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b if b == needle => return Ok(Some(i)),
            b'"' => i = skip_quoted(s, i)?,
            // Inside <...> only the closing bracket matters.
            b'<' => match find_byte(&s[i..], b'>') {
                Some(close) => i += close + 1,
                None => return Ok(None),
            },
            _ => i += 1,
        }
    }
    Ok(None)
}

/// Given `s[start] == '"'`, returns the index just past the closing quote.
pub fn skip_quoted(s: &[u8], start: usize) -> Result<usize> {
    let mut i = start + 1;
    while let Some(off) = memchr::memchr2(b'\\', b'"', s.get(i..).unwrap_or_default()) {
        i += off;
        if s[i] == b'"' {
            return Ok(i + 1);
        }
        i += 2; // quoted-pair
    }
    Err(ParseError::UnterminatedQuote)
}

/// Splits a header value on commas outside quotes and angle brackets: the
/// values of a Via, Contact, Route or Record-Route line (RFC 3261 §7.3.1).
pub struct CommaSplit<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> CommaSplit<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        CommaSplit { rest: Some(s) }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = Result<&'a [u8]>;
    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest?;
        match find_top_level(s, b',') {
            Ok(Some(i)) => {
                self.rest = Some(&s[i + 1..]);
                Some(Ok(&s[..i]))
            }
            Ok(None) => {
                self.rest = None;
                Some(Ok(s))
            }
            Err(e) => {
                self.rest = None;
                Some(Err(e))
            }
        }
    }
}

/// One `;name[=value]` parameter. `value` keeps its quotes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Iterates `;name[=value]` parameters of a Via, name-addr or URI, given the
/// text after the first `;`. Quoted values may contain `;`.
#[derive(Clone)]
pub struct Params<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Params<'a> {
    /// `s` is the text following a value, starting with `;` or empty.
    pub fn new(s: &'a [u8]) -> Self {
        Params {
            rest: s,
            failed: false,
        }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let s = trim_start(self.rest);
        if s.is_empty() {
            return None;
        }
        if s[0] != b';' {
            self.failed = true;
            return Some(Err(ParseError::BadParam));
        }
        let s = &s[1..];
        // The parameter's end (a ';' outside quotes and <...>) and its
        // first '='.
        let mut eq = None;
        let mut nested = false;
        // The first stop: the usual `=` of `name=value` (the value's end
        // is searched from there), or the end, or a quote or bracket.
        let mut i = match find_any(s, [b';', b'=', b'"', b'<']) {
            Some(off) if s[off] == b'=' => {
                eq = Some(off);
                off + 1
            }
            Some(off) => off,
            None => s.len(),
        };
        while i < s.len() {
            let Some(off) = find_any(&s[i..], [b';', b'"', b'<']) else {
                i = s.len();
                break;
            };
            i += off;
            match s[i] {
                b';' => break,
                b'"' => match skip_quoted(s, i) {
                    Ok(end) => {
                        nested = true;
                        i = end;
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                },
                // Inside <...> only the closing bracket matters; an
                // unclosed one runs to the end.
                _ => {
                    nested = true;
                    i = find_byte(&s[i..], b'>').map_or(s.len(), |c| i + c + 1);
                }
            }
        }
        let end = i.min(s.len());
        let item = &s[..end];
        self.rest = &s[end..];
        // The first '=' of the item, even one inside quotes or brackets.
        if eq.is_none() && nested {
            eq = find_byte(item, b'=');
        }
        let (name, value) = match eq {
            Some(eq) => (trim(&item[..eq]), Some(trim(&item[eq + 1..]))),
            None => (trim(item), None),
        };
        if name.is_empty() {
            self.failed = true;
            return Some(Err(ParseError::BadParam));
        }
        Some(Ok(Param { name, value }))
    }
}

/// Removes surrounding quotes from a quoted-string value; other values are
/// returned unchanged. Escapes inside are left as they are.
pub fn unquote(s: &[u8]) -> &[u8] {
    if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Decodes `%HH` escapes lazily (RFC 3261 §19.1.2), for comparisons that
/// must treat escaped and unescaped forms alike without allocating.
pub fn unescaped(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *s.get(i)?;
        if b == b'%' {
            let hi = s.get(i + 1).copied().and_then(hex);
            let lo = s.get(i + 2).copied().and_then(hex);
            if let (Some(h), Some(l)) = (hi, lo) {
                i += 3;
                return Some((h << 4) | l);
            }
        }
        i += 1;
        Some(b)
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_agree_with_a_byte_loop_at_every_length_and_place() {
        // Lengths around the word and vector widths; the needle at each
        // place, twice, or absent; a high byte next to it (a borrow must
        // not fake a match).
        for len in 0..80 {
            for at in (0..len).map(Some).chain([None]) {
                let mut s = vec![b'a'; len];
                if let Some(at) = at {
                    s[at] = b':';
                    if at + 3 < len {
                        s[at + 3] = b':';
                    }
                    if at > 0 {
                        s[at - 1] = 0xbb;
                    }
                }
                let want = s.iter().position(|&b| b == b':');
                assert_eq!(find_byte(&s, b':'), want, "len {len} at {at:?}");
                let any = s.iter().position(|&b| b == b':' || b == b';');
                assert_eq!(find_any(&s, [b';', b':']), any, "len {len} at {at:?}");
            }
        }
    }

    #[test]
    fn trims_folded_white_space() {
        assert_eq!(trim(b" \r\n\tabc \r\n "), b"abc");
        assert_eq!(trim(b"   "), b"");
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
        assert!(parse_u32(b"4294967296").is_err());
        assert!(parse_u32(b"-1").is_err());
        assert!(parse_u32(b"").is_err());
        assert!(parse_u32(b"99999999999999999999").is_err());
    }

    #[test]
    fn commas_inside_quotes_and_brackets_do_not_split() {
        let v: Vec<_> = CommaSplit::new(b"\"a,b\" <sip:x;p=1,2>;q=1, <sip:y>")
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(v, vec![&b"\"a,b\" <sip:x;p=1,2>;q=1"[..], &b" <sip:y>"[..]]);
        assert!(CommaSplit::new(b"\"open").next().unwrap().is_err());
    }

    #[test]
    fn params_with_quoted_semicolons() {
        let p: Vec<_> = Params::new(b";a=1;b;c=\"x;y\" ")
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[1],
            Param {
                name: b"b",
                value: None
            }
        );
        assert_eq!(p[2].value, Some(&b"\"x;y\""[..]));
    }

    #[test]
    fn unescapes_lazily() {
        let v: Vec<u8> = unescaped(b"%61lice%2").collect();
        assert_eq!(v, b"alice%2");
    }
}

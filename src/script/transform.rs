//! Applies Kamailio's transformations ([`Tr`]) to a value. A
//! transformation that cannot apply (`{s.int}` of text, `{uri.user}` of
//! something not a URI) gives no value (`$null`), as Kamailio's.

use std::io::Write as _;

use crate::cfg::transform::{NameAddrPart, Tr, UriPart};
use crate::sip::{NameAddr, Uri};

use super::ctx::VarValue;

/// `v` through `tr`.
pub fn apply(tr: &Tr, v: VarValue) -> VarValue {
    let s = v.text();
    let s: &[u8] = &s;
    let text = |b: &[u8]| VarValue::Str(b.to_vec());
    let int = |n: usize| VarValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
    match tr {
        Tr::Len => int(s.len()),
        Tr::Int => match leading_int(s) {
            Some(n) => VarValue::Int(n),
            None => VarValue::Null,
        },
        Tr::Substr(offset, len) => substr(s, *offset, *len).map_or(VarValue::Null, text),
        Tr::Select(i, sep) => {
            let fields: Vec<&[u8]> = s.split(|b| b == sep).collect();
            let at = if *i < 0 {
                fields.len().checked_sub(i.unsigned_abs() as usize)
            } else {
                usize::try_from(*i).ok()
            };
            at.and_then(|at| fields.get(at))
                .map_or(VarValue::Null, |f| text(f))
        }
        Tr::ToLower => VarValue::Str(s.to_ascii_lowercase()),
        Tr::ToUpper => VarValue::Str(s.to_ascii_uppercase()),
        Tr::Strip(n) => text(s.get(*n..).unwrap_or(b"")),
        Tr::StripTail(n) => text(&s[..s.len().saturating_sub(*n)]),
        Tr::StripTo(c) => match memchr::memchr(*c, s) {
            Some(i) => text(&s[i..]),
            None => text(s),
        },
        Tr::Trim => text(s.trim_ascii()),
        Tr::LTrim => text(s.trim_ascii_start()),
        Tr::RTrim => text(s.trim_ascii_end()),
        Tr::Rm(what) => VarValue::Str(replace(s, what.as_bytes(), b"")),
        Tr::Replace(what, with) => VarValue::Str(replace(s, what.as_bytes(), with.as_bytes())),
        Tr::Before(t) => text(find(s, t, false).map_or(s, |i| &s[..i])),
        Tr::RBefore(t) => text(find(s, t, true).map_or(s, |i| &s[..i])),
        Tr::After(t) => text(find(s, t, false).map_or(b"", |i| &s[i + t.len()..])),
        Tr::RAfter(t) => text(find(s, t, true).map_or(b"", |i| &s[i + t.len()..])),
        Tr::EncodeHexa => VarValue::Str(hex(s)),
        Tr::DecodeHexa => unhex(s).map_or(VarValue::Null, VarValue::Str),
        Tr::Md5 => {
            use md5::Digest as _;
            VarValue::Str(hex(&md5::Md5::digest(s)))
        }
        Tr::Sha256 => {
            use sha2::Digest as _;
            VarValue::Str(hex(&sha2::Sha256::digest(s)))
        }
        Tr::EscapeCommon => {
            let mut out = Vec::with_capacity(s.len());
            for &b in s {
                match b {
                    b'\'' | b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                    0 => out.extend_from_slice(b"\\0"),
                    _ => out.push(b),
                }
            }
            VarValue::Str(out)
        }
        Tr::UnescapeCommon => {
            let mut out = Vec::with_capacity(s.len());
            let mut it = s.iter();
            while let Some(&b) = it.next() {
                match (b, it.clone().next()) {
                    (b'\\', Some(b'0')) => {
                        it.next();
                        out.push(0);
                    }
                    (b'\\', Some(&c @ (b'\'' | b'"' | b'\\'))) => {
                        it.next();
                        out.push(c);
                    }
                    _ => out.push(b),
                }
            }
            VarValue::Str(out)
        }
        // RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved ),
        // pvalue = 1*paramchar (param-unreserved / unreserved / escaped).
        Tr::EscapeUser => VarValue::Str(escape(s, b"-_.!~*'()&=+$,;?/")),
        Tr::EscapeParam => VarValue::Str(escape(s, b"-_.!~*'()[]/:&+$")),
        Tr::Unescape => unescape(s).map_or(VarValue::Null, VarValue::Str),
        Tr::Unquote => text(strip_pair(s, b'"', b'"')),
        Tr::Unbracket => text(strip_pair(s, b'<', b'>')),
        Tr::Numeric => VarValue::Str(s.iter().copied().filter(u8::is_ascii_digit).collect()),
        Tr::Uri(part) => match Uri::parse(s) {
            Ok(u) => uri_part(*part, &u),
            Err(_) => VarValue::Null,
        },
        Tr::UriParam(name) => match Uri::parse(s) {
            Ok(u) => match u.param(name.as_bytes()) {
                Some(v) => text(v.unwrap_or(b"")),
                None => VarValue::Null,
            },
            Err(_) => VarValue::Null,
        },
        Tr::ParamValue(name, sep) => params(s, *sep)
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map_or(VarValue::Null, |(_, v)| text(v)),
        Tr::ParamIn(name, sep) => VarValue::Int(i64::from(
            params(s, *sep).any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())),
        )),
        Tr::ParamCount(sep) => int(params(s, *sep).count()),
        Tr::ParamValueAt(i, sep) => params(s, *sep)
            .nth(*i)
            .map_or(VarValue::Null, |(_, v)| text(v)),
        Tr::ParamName(i, sep) => params(s, *sep)
            .nth(*i)
            .map_or(VarValue::Null, |(n, _)| text(n)),
        Tr::NameAddr(part) => match NameAddr::parse(s) {
            Ok(na) => name_addr_part(*part, &na, s.len()),
            Err(_) => VarValue::Null,
        },
    }
}

fn leading_int(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    let digits = s.strip_prefix(b"-").or(s.strip_prefix(b"+")).unwrap_or(s);
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let end = s.len() - digits.len() + n;
    std::str::from_utf8(&s[..end]).ok()?.parse().ok()
}

/// Kamailio's `{s.substr}`: a negative offset counts from the end; length
/// 0 takes the rest, a negative one leaves that many off the end.
fn substr(s: &[u8], offset: i64, len: i64) -> Option<&[u8]> {
    let n = i64::try_from(s.len()).ok()?;
    let start = if offset < 0 { n + offset } else { offset };
    if !(0..n).contains(&start) {
        return None;
    }
    let end = match len {
        0 => n,
        l if l < 0 => n + l,
        l => (start + l).min(n),
    };
    if end <= start {
        return None;
    }
    s.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

fn find(s: &[u8], t: &str, last: bool) -> Option<usize> {
    let t = t.as_bytes();
    if t.is_empty() || t.len() > s.len() {
        return None;
    }
    let mut windows = s.windows(t.len());
    if last {
        windows.rposition(|w| w == t)
    } else {
        windows.position(|w| w == t)
    }
}

fn replace(s: &[u8], what: &[u8], with: &[u8]) -> Vec<u8> {
    if what.is_empty() {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(what) {
            out.extend_from_slice(with);
            i += what.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn hex(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 2);
    for b in s {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

fn escape(s: &[u8], allowed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || allowed.contains(&b) {
            out.push(b);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

fn strip_pair(s: &[u8], open: u8, close: u8) -> &[u8] {
    match s {
        [a, mid @ .., b] if *a == open && *b == close => mid,
        _ => s,
    }
}

/// `a=1;b;c=3` as names and values (a bare name has an empty value).
fn params(s: &[u8], sep: u8) -> impl Iterator<Item = (&[u8], &[u8])> {
    s.split(move |b| *b == sep)
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .map(|p| match memchr::memchr(b'=', p) {
            Some(i) => (p[..i].trim_ascii(), p[i + 1..].trim_ascii()),
            None => (p, &b""[..]),
        })
}

fn uri_part(part: UriPart, u: &Uri<'_>) -> VarValue {
    let text = |b: Option<&[u8]>| b.map_or(VarValue::Null, |b| VarValue::Str(b.to_vec()));
    match part {
        UriPart::User => text(u.user),
        UriPart::Host => text(Some(u.host_raw)),
        UriPart::Passwd => text(u.password),
        UriPart::Port => u
            .port
            .map_or(VarValue::Null, |p| VarValue::Int(i64::from(p))),
        UriPart::Params => text(Some(u.params.strip_prefix(b";").unwrap_or(u.params))),
        UriPart::Headers => text(u.headers),
        UriPart::Transport => text(u.transport),
        UriPart::Ttl => u
            .ttl
            .map_or(VarValue::Null, |t| VarValue::Int(i64::from(t))),
        UriPart::UParam => text(u.user_param),
        UriPart::Maddr => text(u.maddr),
        UriPart::Method => text(u.method),
        UriPart::Lr => text(u.param(b"lr").map(|v| v.unwrap_or(b""))),
        UriPart::R2 => text(u.param(b"r2").map(|v| v.unwrap_or(b""))),
        UriPart::Scheme => {
            let colon = memchr::memchr(b':', u.raw).unwrap_or(0);
            text(Some(&u.raw[..colon]))
        }
        UriPart::Saor => {
            let mut out = Vec::new();
            if let Some(user) = u.user {
                out.extend_from_slice(user);
                out.push(b'@');
            }
            out.extend_from_slice(u.host_raw);
            VarValue::Str(out)
        }
    }
}

fn name_addr_part(part: NameAddrPart, na: &NameAddr<'_>, len: usize) -> VarValue {
    let text = |b: Option<&[u8]>| b.map_or(VarValue::Null, |b| VarValue::Str(b.to_vec()));
    match part {
        NameAddrPart::Display => text(na.display.map(|d| strip_pair(d, b'"', b'"'))),
        NameAddrPart::Uri => text(Some(na.addr_spec)),
        NameAddrPart::Len => VarValue::Int(i64::try_from(len).unwrap_or(i64::MAX)),
        NameAddrPart::Tag => text(na.tag),
        NameAddrPart::User => text(na.uri().ok().and_then(|u| u.user)),
        NameAddrPart::Host => text(na.uri().ok().map(|u| u.host_raw)),
        NameAddrPart::Params => text(Some(na.params.strip_prefix(b";").unwrap_or(na.params))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfg::transform::parse_chain;

    /// `value` through the chain written as in a script, as text.
    fn tr(value: &str, chain: &str) -> String {
        let mut v = VarValue::Str(value.as_bytes().to_vec());
        for t in parse_chain(chain).unwrap() {
            v = apply(&t, v);
        }
        match v {
            VarValue::Null => "<null>".into(),
            VarValue::Int(n) => format!("#{n}"),
            VarValue::Str(s) => String::from_utf8(s).unwrap(),
        }
    }

    #[test]
    fn strings() {
        for (value, chain, want) in [
            ("alice", "{s.len}", "#5"),
            ("", "{s.len}", "#0"),
            ("42abc", "{s.int}", "#42"),
            ("-7", "{s.int}", "#-7"),
            ("abc", "{s.int}", "<null>"),
            ("abcdef", "{s.substr,1,3}", "bcd"),
            ("abcdef", "{s.substr,-2,0}", "ef"),
            ("abcdef", "{s.substr,2,-1}", "cde"),
            ("abcdef", "{s.substr,9,1}", "<null>"),
            ("a:b:c", "{s.select,1,:}", "b"),
            ("a:b:c", "{s.select,-1,:}", "c"),
            ("a:b:c", "{s.select,5,:}", "<null>"),
            ("MiXeD", "{s.tolower}", "mixed"),
            ("MiXeD", "{s.toupper}", "MIXED"),
            ("+4930123", "{s.strip,1}", "4930123"),
            ("4930123", "{s.striptail,3}", "4930"),
            ("4930123", "{s.strip,99}", ""),
            ("abc@host", "{s.stripto,@}", "@host"),
            ("  x y \t", "{s.trim}", "x y"),
            ("  x ", "{s.ltrim}", "x "),
            ("  x ", "{s.rtrim}", "  x"),
            ("a-b-c", "{s.rm,-}", "abc"),
            ("a-b-c", "{s.replace,-,+}", "a+b+c"),
            ("user@host@x", "{s.before,@}", "user"),
            ("user@host@x", "{s.rbefore,@}", "user@host"),
            ("user@host@x", "{s.after,@}", "host@x"),
            ("user@host@x", "{s.rafter,@}", "x"),
            ("nothing", "{s.after,@}", ""),
            ("nothing", "{s.before,@}", "nothing"),
            ("AB", "{s.encode.hexa}", "4142"),
            ("4142", "{s.decode.hexa}", "AB"),
            ("414", "{s.decode.hexa}", "<null>"),
            ("abc", "{s.md5}", "900150983cd24fb0d6963f7d28e17f72"),
            ("it's \"q\"", "{s.escape.common}", "it\\'s \\\"q\\\""),
            ("it\\'s \\\"q\\\"", "{s.unescape.common}", "it's \"q\""),
            ("a b@c", "{s.escape.user}", "a%20b%40c"),
            ("a%20b%40c", "{s.unescape.user}", "a b@c"),
            ("a b;c", "{s.escape.param}", "a%20b%3Bc"),
            ("%2", "{s.unescape.param}", "<null>"),
            ("\"Alice\"", "{s.unquote}", "Alice"),
            ("<sip:a@b>", "{s.unbracket}", "sip:a@b"),
            ("+49 (30) 123", "{s.numeric}", "4930123"),
            ("hello", "{s.len}{s.substr,0,1}", "5"),
            ("hello", "{s.toupper}{s.len}", "#5"),
        ] {
            assert_eq!(tr(value, chain), want, "{value:?} {chain}");
        }
    }

    #[test]
    fn uris_params_and_name_addrs() {
        let uri = "sip:bob:pw@example.com:5070;transport=tcp;lr;user=phone?Subject=x";
        for (chain, want) in [
            ("{uri.user}", "bob"),
            ("{uri.passwd}", "pw"),
            ("{uri.host}", "example.com"),
            ("{uri.port}", "#5070"),
            ("{uri.transport}", "tcp"),
            ("{uri.params}", "transport=tcp;lr;user=phone"),
            ("{uri.param,user}", "phone"),
            ("{uri.param,lr}", ""),
            ("{uri.param,nope}", "<null>"),
            ("{uri.lr}", ""),
            ("{uri.uparam}", "phone"),
            ("{uri.headers}", "Subject=x"),
            ("{uri.scheme}", "sip"),
            ("{uri.saor}", "bob@example.com"),
            ("{uri.maddr}", "<null>"),
        ] {
            assert_eq!(tr(uri, chain), want, "{chain}");
        }
        assert_eq!(tr("not a uri", "{uri.user}"), "<null>");
        assert_eq!(tr("sip:example.com", "{uri.port}"), "<null>");

        let params = "a=1; b = 2 ;flag;c=three";
        for (chain, want) in [
            ("{param.value,b}", "2"),
            ("{param.value,flag}", ""),
            ("{param.value,z}", "<null>"),
            ("{param.in,c}", "#1"),
            ("{param.in,z}", "#0"),
            ("{param.count}", "#4"),
            ("{param.valueat,3}", "three"),
            ("{param.name,2}", "flag"),
            ("{param.name,9}", "<null>"),
        ] {
            assert_eq!(tr(params, chain), want, "{chain}");
        }
        assert_eq!(tr("x=1&y=2", "{param.value,y,&}"), "2");

        let to = "\"Bob B\" <sip:bob@example.com;user=phone>;tag=abc;x=1";
        for (chain, want) in [
            ("{tobody.uri}", "sip:bob@example.com;user=phone"),
            ("{tobody.display}", "Bob B"),
            ("{nameaddr.name}", "Bob B"),
            ("{tobody.tag}", "abc"),
            ("{tobody.user}", "bob"),
            ("{tobody.host}", "example.com"),
            ("{tobody.params}", "tag=abc;x=1"),
            ("{tobody.uri}{uri.param,user}", "phone"),
            ("{nameaddr.len}", &format!("#{}", to.len())),
        ] {
            assert_eq!(tr(to, chain), want, "{chain}");
        }
    }
}

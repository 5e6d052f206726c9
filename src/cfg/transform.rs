//! Kamailio's transformations: `$(ru{uri.user})`, `$(var(x){s.len})`,
//! `$(hdr(From){tobody.uri}{uri.host})`. Parsed once at load into [`Tr`]s;
//! `script::transform` applies them to a value per message.

/// One transformation, its arguments checked at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tr {
    // ---- {s.*}: the value as text ----
    /// `{s.len}`: its length in bytes (a number).
    Len,
    /// `{s.int}`: a leading decimal number (none: no value).
    Int,
    /// `{s.substr,offset,length}`: a negative offset counts from the end;
    /// length 0 takes the rest.
    Substr(i64, i64),
    /// `{s.select,index,separator}`: the field at index (negative: from
    /// the end).
    Select(i64, u8),
    ToLower,
    ToUpper,
    /// `{s.strip,n}` / `{s.striptail,n}`: without the first / last n bytes.
    Strip(usize),
    StripTail(usize),
    /// `{s.stripto,c}`: without everything before the first `c`.
    StripTo(u8),
    Trim,
    LTrim,
    RTrim,
    /// `{s.rm,text}`: every occurrence of text removed.
    Rm(Box<str>),
    /// `{s.replace,match,repl}`: every occurrence replaced.
    Replace(Box<str>, Box<str>),
    /// `{s.before,text}` / `{s.after,text}`: around its first occurrence;
    /// `{s.rbefore}` / `{s.rafter}`: around its last.
    Before(Box<str>),
    After(Box<str>),
    RBefore(Box<str>),
    RAfter(Box<str>),
    EncodeHexa,
    DecodeHexa,
    Md5,
    Sha256,
    /// `{s.escape.common}`: `'`, `"`, `\` and NUL backslash-escaped.
    EscapeCommon,
    UnescapeCommon,
    /// `{s.escape.user}` / `{s.escape.param}`: %-escaped as RFC 3261
    /// §25.1's `user` / `pvalue` allow.
    EscapeUser,
    EscapeParam,
    /// `{s.unescape.user}` / `{s.unescape.param}`: %-escapes decoded.
    Unescape,
    /// `{s.unquote}` / `{s.unbracket}`: surrounding `"..."` / `<...>`
    /// removed.
    Unquote,
    Unbracket,
    /// `{s.numeric}`: only the digits kept.
    Numeric,

    // ---- {uri.*}: the value parsed as a SIP URI ----
    Uri(UriPart),
    /// `{uri.param,name}`.
    UriParam(Box<str>),

    // ---- {param.*}: the value as `a=1;b=2` ----
    ParamValue(Box<str>, u8),
    ParamIn(Box<str>, u8),
    ParamCount(u8),
    ParamValueAt(usize, u8),
    ParamName(usize, u8),

    // ---- {nameaddr.*} / {tobody.*}: the value as a name-addr ----
    NameAddr(NameAddrPart),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriPart {
    User,
    Host,
    Passwd,
    Port,
    Params,
    Headers,
    Transport,
    Ttl,
    UParam,
    Maddr,
    Method,
    Lr,
    R2,
    Scheme,
    /// `user@host`.
    Saor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameAddrPart {
    /// `{nameaddr.name}`, `{tobody.display}`.
    Display,
    /// `{nameaddr.uri}`, `{tobody.uri}`.
    Uri,
    /// `{nameaddr.len}`.
    Len,
    /// `{tobody.tag}`, `{tobody.user}`, `{tobody.host}`, `{tobody.params}`.
    Tag,
    User,
    Host,
    Params,
}

/// Splits `{a}{b,1}` into its transformations; an error names the one
/// that is unknown or badly written.
pub fn parse_chain(mut s: &str) -> Result<Vec<Tr>, String> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let body = s
            .strip_prefix('{')
            .ok_or_else(|| format!("'{s}': a transformation starts with '{{'"))?;
        let end = body
            .find('}')
            .ok_or_else(|| format!("'{s}': '}}' missing"))?;
        out.push(parse_one(&body[..end])?);
        s = &body[end + 1..];
    }
    Ok(out)
}

fn parse_one(text: &str) -> Result<Tr, String> {
    let mut parts = text.split(',');
    let name = parts.next().unwrap_or("").trim();
    let args: Vec<&str> = parts.collect();
    if let Some(a) = args.iter().find(|a| a.contains('$')) {
        return Err(format!(
            "{{{text}}}: a pseudo-variable as a transformation's argument ('{a}') is not supported"
        ));
    }
    let want = |n: std::ops::RangeInclusive<usize>| {
        if n.contains(&args.len()) {
            Ok(())
        } else {
            Err(format!(
                "{{{text}}}: {name} takes {} argument(s)",
                if n.start() == n.end() {
                    n.start().to_string()
                } else {
                    format!("{} to {}", n.start(), n.end())
                }
            ))
        }
    };
    let int = |i: usize| -> Result<i64, String> {
        args[i]
            .trim()
            .parse()
            .map_err(|_| format!("{{{text}}}: '{}' is not a number", args[i]))
    };
    let byte = |i: usize, default: u8| -> Result<u8, String> {
        match args.get(i).map(|a| a.as_bytes()) {
            None | Some(b"") => Ok(default),
            Some([c]) => Ok(*c),
            Some(_) => Err(format!(
                "{{{text}}}: the separator '{}' is not one character",
                args[i]
            )),
        }
    };
    let text_arg = |i: usize| -> Box<str> { args[i].into() };
    let none = |tr: Tr| want(0..=0).map(|_| tr);
    Ok(match name {
        "s.len" => none(Tr::Len)?,
        "s.int" => none(Tr::Int)?,
        "s.substr" => {
            want(2..=2)?;
            Tr::Substr(int(0)?, int(1)?)
        }
        "s.select" => {
            want(2..=2)?;
            Tr::Select(int(0)?, byte(1, b',')?)
        }
        "s.tolower" => none(Tr::ToLower)?,
        "s.toupper" => none(Tr::ToUpper)?,
        "s.strip" | "s.striptail" => {
            want(1..=1)?;
            let n = usize::try_from(int(0)?).map_err(|_| format!("{{{text}}}: negative"))?;
            if name == "s.strip" {
                Tr::Strip(n)
            } else {
                Tr::StripTail(n)
            }
        }
        "s.stripto" => {
            want(1..=1)?;
            Tr::StripTo(byte(0, b' ')?)
        }
        "s.trim" => none(Tr::Trim)?,
        "s.ltrim" => none(Tr::LTrim)?,
        "s.rtrim" => none(Tr::RTrim)?,
        "s.rm" => {
            want(1..=1)?;
            Tr::Rm(text_arg(0))
        }
        "s.replace" => {
            want(2..=2)?;
            Tr::Replace(text_arg(0), text_arg(1))
        }
        "s.before" | "s.after" | "s.rbefore" | "s.rafter" => {
            want(1..=1)?;
            let t = text_arg(0);
            match name {
                "s.before" => Tr::Before(t),
                "s.after" => Tr::After(t),
                "s.rbefore" => Tr::RBefore(t),
                _ => Tr::RAfter(t),
            }
        }
        "s.encode.hexa" => none(Tr::EncodeHexa)?,
        "s.decode.hexa" => none(Tr::DecodeHexa)?,
        "s.md5" => none(Tr::Md5)?,
        "s.sha256" => none(Tr::Sha256)?,
        "s.escape.common" => none(Tr::EscapeCommon)?,
        "s.unescape.common" => none(Tr::UnescapeCommon)?,
        "s.escape.user" => none(Tr::EscapeUser)?,
        "s.escape.param" => none(Tr::EscapeParam)?,
        "s.unescape.user" | "s.unescape.param" => none(Tr::Unescape)?,
        "s.unquote" => none(Tr::Unquote)?,
        "s.unbracket" => none(Tr::Unbracket)?,
        "s.numeric" => none(Tr::Numeric)?,
        "uri.param" => {
            want(1..=1)?;
            Tr::UriParam(text_arg(0))
        }
        "param.value" | "param.in" => {
            want(1..=2)?;
            let sep = byte(1, b';')?;
            if name == "param.value" {
                Tr::ParamValue(text_arg(0), sep)
            } else {
                Tr::ParamIn(text_arg(0), sep)
            }
        }
        "param.count" => {
            want(0..=1)?;
            Tr::ParamCount(byte(0, b';')?)
        }
        "param.valueat" | "param.name" => {
            want(1..=2)?;
            let i = usize::try_from(int(0)?).map_err(|_| format!("{{{text}}}: negative"))?;
            let sep = byte(1, b';')?;
            if name == "param.valueat" {
                Tr::ParamValueAt(i, sep)
            } else {
                Tr::ParamName(i, sep)
            }
        }
        _ => {
            if let Some(part) = uri_part(name) {
                return none(Tr::Uri(part));
            }
            if let Some(part) = name_addr_part(name) {
                return none(Tr::NameAddr(part));
            }
            return Err(format!("transformation '{{{text}}}' is not provided"));
        }
    })
}

fn uri_part(name: &str) -> Option<UriPart> {
    Some(match name.strip_prefix("uri.")? {
        "user" => UriPart::User,
        "host" => UriPart::Host,
        "passwd" => UriPart::Passwd,
        "port" => UriPart::Port,
        "params" => UriPart::Params,
        "headers" => UriPart::Headers,
        "transport" => UriPart::Transport,
        "ttl" => UriPart::Ttl,
        "uparam" => UriPart::UParam,
        "maddr" => UriPart::Maddr,
        "method" => UriPart::Method,
        "lr" => UriPart::Lr,
        "r2" => UriPart::R2,
        "scheme" => UriPart::Scheme,
        "saor" => UriPart::Saor,
        _ => return None,
    })
}

fn name_addr_part(name: &str) -> Option<NameAddrPart> {
    Some(match name {
        "nameaddr.name" | "tobody.display" => NameAddrPart::Display,
        "nameaddr.uri" | "tobody.uri" => NameAddrPart::Uri,
        "nameaddr.len" => NameAddrPart::Len,
        "tobody.tag" => NameAddrPart::Tag,
        "tobody.user" => NameAddrPart::User,
        "tobody.host" => NameAddrPart::Host,
        "tobody.params" => NameAddrPart::Params,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_parse() {
        assert_eq!(
            parse_chain("{tobody.uri}{uri.host}{s.len}").unwrap(),
            vec![
                Tr::NameAddr(NameAddrPart::Uri),
                Tr::Uri(UriPart::Host),
                Tr::Len
            ]
        );
        assert_eq!(
            parse_chain("{s.substr,1,-2}{s.select,0,@}{param.value,tag}").unwrap(),
            vec![
                Tr::Substr(1, -2),
                Tr::Select(0, b'@'),
                Tr::ParamValue("tag".into(), b';')
            ]
        );
    }

    #[test]
    fn errors_name_the_transformation() {
        for (s, says) in [
            ("{s.nope}", "'{s.nope}' is not provided"),
            ("{s.substr,1}", "takes 2 argument"),
            ("{s.substr,a,1}", "'a' is not a number"),
            ("{s.len,3}", "takes 0 argument"),
            ("{s.select,1,ab}", "not one character"),
            (
                "{s.substr,0,$var(n)}",
                "pseudo-variable as a transformation's argument",
            ),
            ("{s.len", "'}' missing"),
            ("s.len}", "starts with '{'"),
        ] {
            let e = parse_chain(s).unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
    }
}

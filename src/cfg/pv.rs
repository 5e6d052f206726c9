//! Pseudo-variables in text arguments (`send_reply("403", "Invalid user -
//! $fU")`), as Kamailio writes them. A format is split once at load into
//! literal text and variables; the VM fills the variables per message.
//! A `$` that starts no known variable stays literal text.

use std::fmt;

/// A value taken from the message being processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pv {
    /// `$ru`: the current Request-URI.
    Ruri,
    /// `$rU`: its user part.
    RuriUser,
    /// `$rd`: its host.
    RuriDomain,
    /// `$rp`: its port (or the scheme's default).
    RuriPort,
    /// `$fu`, `$fU`, `$fd`: From URI, user, host.
    FromUri,
    FromUser,
    FromDomain,
    /// `$tu`, `$tU`, `$td`: To URI, user, host.
    ToUri,
    ToUser,
    ToDomain,
    /// `$ci`: Call-ID.
    CallId,
    /// `$rm`: the method.
    Method,
    /// `$cs`: the CSeq number.
    CSeq,
    /// `$si`, `$sp`: source address and port.
    SrcIp,
    SrcPort,
    /// `$ua`: User-Agent.
    UserAgent,
    /// `$rs`, `$rr`: a reply's status and reason.
    Status,
    Reason,
    /// `$hdr(Name)`: the first header of that name.
    Header(Box<str>),
    /// `$du`: the next hop when it is not the Request-URI.
    DstUri,
    /// `$ct`: the first Contact header's value.
    Contact,
    /// `$Ri`, `$Rp`: the local address and port the message came in on.
    RecvIp,
    RecvPort,
    /// `$pr`: the transport (`udp`).
    Proto,
    /// `$null`: nothing.
    Null,
    /// `$rc`, `$retcode`: the last action's or route's return value.
    RetCode,
    /// `$T_branch_idx`: in branch_route, the branch's index (else 0).
    BranchIdx,
    /// `$avp(name)`: a value attached to the message being scripted (its
    /// last one); a transaction keeps them for its branch, reply and
    /// failure routes, as Kamailio's.
    Avp(u16),
    /// `$var(name)`: a worker's own variable (it keeps its value from one
    /// message to the next, as Kamailio's), by its index in [`var_name`]'s
    /// table.
    Var(u16),
    /// `$xavp(name[index]=>field)`: a field of an XAVP (Kamailio's
    /// structured AVPs), kept with the transaction as `$avp`s are.
    Xavp(XavpRef),
    /// `$fs`: the forced send socket (`udp:IP:PORT`), if set.
    ForceSend,
    /// `$br`: the first branch beyond the current URI (`append_branch`,
    /// `lookup`'s other contacts).
    Branch,
    /// `$snd(ip)`, `$snd(port)`, `$snd(af)`, `$snd(proto)` (and
    /// `$sndto(...)`): in onsend_route, where the request goes.
    Snd(SndField),
    /// `$sht(table=>key)`: an item of an htable (in shared memory, the
    /// same for every worker); the key may hold pseudo-variables.
    Sht(Box<ShtRef>),
    /// `$(pv{tr}...)`: a variable's value through Kamailio's
    /// transformations.
    Tr(Box<Transformed>),
}

/// What of the destination `$snd` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SndField {
    Ip,
    Port,
    /// `inet` or `inet6`.
    Af,
    Proto,
}

/// Which XAVP and field: names as indices in [`var_name`]'s table; no
/// index is Kamailio's "the newest" (and, assigned to, "a new one").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XavpRef {
    pub name: u16,
    pub index: Option<u8>,
    pub field: Option<u16>,
}

/// Which htable item: the table's name as an index in [`var_name`]'s
/// table, and the key's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShtRef {
    pub table: u16,
    pub key: Format,
}

impl ShtRef {
    /// The table's name as written.
    pub fn table_name(&self) -> String {
        var_name(self.table).trim_start_matches("sht:").to_string()
    }
}

/// The index `$sht(table=>...)` refers to table `table` by.
pub fn sht_table_id(table: &str) -> Option<u16> {
    var_index(&format!("sht:{table}"))
}

/// `$sht(table=>key)`'s inside.
fn sht_ref(arg: &str) -> Result<Option<ShtRef>, String> {
    let Some((table, key)) = arg.split_once("=>") else {
        return Ok(None);
    };
    let table = table.trim();
    if table.is_empty()
        || !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Ok(None);
    }
    let Some(index) = sht_table_id(table) else {
        return Ok(None);
    };
    Ok(Some(ShtRef {
        table: index,
        key: Format::parse(key)?,
    }))
}

/// `name` or `name[i]`.
fn indexed(s: &str) -> Option<(&str, Option<u8>)> {
    let (name, index) = match s.split_once('[') {
        Some((n, rest)) => (n, Some(rest.strip_suffix(']')?.parse().ok()?)),
        None => (s, None),
    };
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    ok.then_some((name, index))
}

/// `$xavp(root[i]=>field)`'s inside. A field's own index is not
/// supported (the newest value is read).
fn xavp_ref(arg: &str) -> Option<XavpRef> {
    let (root, field) = match arg.split_once("=>") {
        Some((r, f)) => (r, Some(f)),
        None => (arg, None),
    };
    let (name, index) = indexed(root.trim())?;
    let field = match field {
        Some(f) => match indexed(f.trim())? {
            (f, None) => Some(var_index(&format!("xavp.f:{f}"))?),
            (_, Some(_)) => return None,
        },
        None => None,
    };
    Some(XavpRef {
        name: var_index(&format!("xavp:{name}"))?,
        index,
        field,
    })
}

/// A pseudo-variable and the transformations applied to its value, with
/// the text as written (for printing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformed {
    pub pv: Pv,
    pub trs: Box<[super::transform::Tr]>,
    pub text: Box<str>,
}

/// `$var` names, given indices as configs are loaded (in the master,
/// before the workers fork, so every process has the same table).
static VAR_NAMES: std::sync::Mutex<Vec<Box<str>>> = std::sync::Mutex::new(Vec::new());
/// Distinct `$var` names at most.
pub const MAX_VARS: usize = 1024;

fn var_index(name: &str) -> Option<u16> {
    let mut names = VAR_NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(i) = names.iter().position(|n| &**n == name) {
        return u16::try_from(i).ok();
    }
    if names.len() >= MAX_VARS {
        return None;
    }
    names.push(name.into());
    u16::try_from(names.len() - 1).ok()
}

/// The name of `$var` number `i`.
pub fn var_name(i: u16) -> String {
    VAR_NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(usize::from(i))
        .map_or_else(|| "?".to_string(), |n| n.to_string())
}

const NAMES: &[(&str, Pv)] = &[
    ("ru", Pv::Ruri),
    ("rU", Pv::RuriUser),
    ("rd", Pv::RuriDomain),
    ("rp", Pv::RuriPort),
    ("fu", Pv::FromUri),
    ("fU", Pv::FromUser),
    ("fd", Pv::FromDomain),
    ("tu", Pv::ToUri),
    ("tU", Pv::ToUser),
    ("td", Pv::ToDomain),
    ("ci", Pv::CallId),
    ("rm", Pv::Method),
    ("cs", Pv::CSeq),
    ("si", Pv::SrcIp),
    ("sp", Pv::SrcPort),
    ("ua", Pv::UserAgent),
    ("rs", Pv::Status),
    ("rr", Pv::Reason),
    ("du", Pv::DstUri),
    ("ct", Pv::Contact),
    ("Ri", Pv::RecvIp),
    ("Rp", Pv::RecvPort),
    ("pr", Pv::Proto),
    ("rc", Pv::RetCode),
];

impl Pv {
    /// A whole pseudo-variable as written (`$fU`, `$hdr(User-Agent)`,
    /// `$null`); `None` for one rser does not provide.
    pub fn parse(text: &str) -> Option<Pv> {
        Pv::parse_checked(text).ok()
    }

    /// As [`Pv::parse`], with the reason when it is not one rser provides.
    pub fn parse_checked(text: &str) -> Result<Pv, String> {
        let not = || format!("pseudo-variable '{text}' is not provided");
        let rest = text.strip_prefix('$').ok_or_else(not)?;
        match variable(rest)? {
            Some((pv, len)) if len == rest.len() => Ok(pv),
            _ => Err(not()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(Box<str>),
    Var(Pv),
}

/// Text with pseudo-variables, split at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub parts: Box<[Part]>,
}

impl Format {
    /// Splits `s`; an error is a `$(...)` variable that is not one.
    pub fn parse(s: &str) -> Result<Format, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match variable(after)? {
                Some((pv, len)) => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text).into()));
                    }
                    parts.push(Part::Var(pv));
                    rest = &after[len..];
                }
                None => {
                    text.push('$');
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text.into()));
        }
        Ok(Format {
            parts: parts.into(),
        })
    }

    /// The text when there are no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match &self.parts[..] {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }
}

/// A variable at the start of `s` (after the `$`), and the bytes it spans;
/// `None` when none starts there (the `$` is text). An error is a
/// `$(...)` form, which can only mean a variable, that is not one.
fn variable(s: &str) -> Result<Option<(Pv, usize)>, String> {
    if s.starts_with('(') {
        return transformed(s).map(Some);
    }
    // Names longer than two letters first (`$rUx` is not `$rU`).
    let word_len = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(s.len());
    match &s[..word_len] {
        "T_branch_idx" => return Ok(Some((Pv::BranchIdx, word_len))),
        "null" => return Ok(Some((Pv::Null, word_len))),
        "retcode" => return Ok(Some((Pv::RetCode, word_len))),
        "br" => return Ok(Some((Pv::Branch, word_len))),
        "fs" => return Ok(Some((Pv::ForceSend, word_len))),
        _ => {}
    }
    if s[word_len..].starts_with('(') {
        // The key of `$sht(t=>$var(k))` has parentheses of its own.
        let Some(end) = matching_paren(&s.as_bytes()[word_len..]) else {
            return Ok(None);
        };
        let arg = &s[word_len + 1..word_len + end];
        let len = word_len + end + 1;
        let name_ok = |extra: &[u8]| {
            !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || extra.contains(&b))
        };
        let pv = match &s[..word_len] {
            "var" if name_ok(b".") => var_index(arg).map(Pv::Var),
            // `$avp(s:name)` is Kamailio's old form of `$avp(name)`.
            "avp" => {
                let name = arg.strip_prefix("s:").unwrap_or(arg);
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
                ok.then(|| var_index(&format!("avp:{name}")))
                    .flatten()
                    .map(Pv::Avp)
            }
            "hdr" if name_ok(b"-") => Some(Pv::Header(arg.into())),
            "xavp" => xavp_ref(arg).map(Pv::Xavp),
            "snd" | "sndto" => match arg {
                "ip" => Some(Pv::Snd(SndField::Ip)),
                "port" => Some(Pv::Snd(SndField::Port)),
                "af" => Some(Pv::Snd(SndField::Af)),
                "proto" => Some(Pv::Snd(SndField::Proto)),
                _ => None,
            },
            "sht" => sht_ref(arg)?.map(|r| Pv::Sht(Box::new(r))),
            _ => None,
        };
        return Ok(pv.map(|pv| (pv, len)));
    }
    if word_len != 2 {
        return Ok(None);
    }
    Ok(NAMES
        .iter()
        .find(|(n, _)| *n == &s[..2])
        .map(|(_, pv)| (pv.clone(), 2)))
}

/// Where the `(` starting `s` closes (parentheses nest; braces of
/// transformations may hold any).
pub(crate) fn matching_paren(s: &[u8]) -> Option<usize> {
    let (mut depth, mut braces) = (0usize, 0usize);
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'{' => braces += 1,
            b'}' => braces = braces.saturating_sub(1),
            b'(' if braces == 0 => depth += 1,
            b')' if braces == 0 => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `(pv{tr}...)` at the start of `s`: the variable (written without its
/// `$`) and its transformations, up to the matching `)`.
fn transformed(s: &str) -> Result<(Pv, usize), String> {
    let end = matching_paren(s.as_bytes());
    let end = end.ok_or_else(|| format!("'${s}': ')' missing"))?;
    let inner = &s[1..end];
    let split = inner.find('{').unwrap_or(inner.len());
    let (name, chain) = inner.split_at(split);
    let pv = match variable(name)? {
        Some((pv, len)) if len == name.len() => pv,
        _ => return Err(format!("pseudo-variable '${name}' is not provided")),
    };
    let trs = super::transform::parse_chain(chain)?;
    if trs.is_empty() {
        return Ok((pv, end + 1));
    }
    Ok((
        Pv::Tr(Box::new(Transformed {
            pv,
            trs: trs.into(),
            text: format!("${}", &s[..=end]).into(),
        })),
        end + 1,
    ))
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for p in self.parts.iter() {
            match p {
                Part::Text(t) => write!(f, "{}", t.escape_debug())?,
                Part::Var(Pv::Header(h)) => write!(f, "$hdr({h})")?,
                Part::Var(Pv::Null) => write!(f, "$null")?,
                Part::Var(Pv::RetCode) => write!(f, "$rc")?,
                Part::Var(Pv::BranchIdx) => write!(f, "$T_branch_idx")?,
                Part::Var(Pv::Avp(i)) => {
                    write!(f, "$avp({})", var_name(*i).trim_start_matches("avp:"))?
                }
                Part::Var(Pv::Var(i)) => write!(f, "$var({})", var_name(*i))?,
                Part::Var(Pv::Tr(t)) => f.write_str(&t.text)?,
                Part::Var(Pv::Branch) => write!(f, "$br")?,
                Part::Var(Pv::ForceSend) => write!(f, "$fs")?,
                Part::Var(Pv::Snd(field)) => {
                    write!(f, "$snd({})", format!("{field:?}").to_ascii_lowercase())?
                }
                Part::Var(Pv::Sht(r)) => {
                    let key = r.key.to_string();
                    write!(f, "$sht({}=>{})", r.table_name(), key.trim_matches('"'))?
                }
                Part::Var(Pv::Xavp(x)) => {
                    write!(f, "$xavp({}", var_name(x.name).trim_start_matches("xavp:"))?;
                    if let Some(i) = x.index {
                        write!(f, "[{i}]")?;
                    }
                    if let Some(field) = x.field {
                        write!(f, "=>{}", var_name(field).trim_start_matches("xavp.f:"))?;
                    }
                    f.write_str(")")?
                }
                Part::Var(v) => {
                    let name = NAMES.iter().find(|(_, p)| p == v).map_or("?", |(n, _)| n);
                    write!(f, "${name}")?
                }
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_variables() {
        let f = Format::parse("Invalid user - $fU").unwrap();
        assert_eq!(
            &f.parts[..],
            &[
                Part::Text("Invalid user - ".into()),
                Part::Var(Pv::FromUser)
            ]
        );
        assert_eq!(f.to_string(), "\"Invalid user - $fU\"");
    }

    #[test]
    fn unknown_dollars_stay_text() {
        // exec's shell variables and prices are not pseudo-variables.
        for s in ["echo $SRCIP", "costs 5$", "$rUx", "$hdr()", "$$"] {
            assert_eq!(Format::parse(s).unwrap().as_literal(), Some(s), "{s}");
        }
    }

    #[test]
    fn header_variables() {
        let f = Format::parse("$hdr(User-Agent)!").unwrap();
        assert_eq!(
            &f.parts[..],
            &[
                Part::Var(Pv::Header("User-Agent".into())),
                Part::Text("!".into())
            ]
        );
    }

    #[test]
    fn transformed_variables() {
        use crate::cfg::transform::{NameAddrPart, Tr, UriPart};
        let f = Format::parse("to $(hdr(To){tobody.uri}{uri.user}), $(var(n){s.len})").unwrap();
        let Part::Var(Pv::Tr(t)) = &f.parts[1] else {
            panic!("{f:?}")
        };
        assert_eq!(t.pv, Pv::Header("To".into()));
        assert_eq!(
            &t.trs[..],
            &[Tr::NameAddr(NameAddrPart::Uri), Tr::Uri(UriPart::User)]
        );
        assert_eq!(
            f.to_string(),
            "\"to $(hdr(To){tobody.uri}{uri.user}), $(var(n){s.len})\""
        );
        // Without transformations, `$(ru)` is `$ru`.
        assert_eq!(Pv::parse("$(ru)"), Some(Pv::Ruri));
        assert!(matches!(Pv::parse("$(fu{uri.host})"), Some(Pv::Tr(_))));
        let e = Format::parse("x $(ru{s.bogus}) y").unwrap_err();
        assert!(e.contains("s.bogus"), "{e}");
        let e = Pv::parse_checked("$(xy{s.len})").unwrap_err();
        assert!(e.contains("'$xy' is not provided"), "{e}");
        assert!(Pv::parse_checked("$(ru{s.len}").is_err());
    }
}

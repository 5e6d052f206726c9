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
    /// last one), in the request route only for now (Kamailio carries
    /// AVPs with the transaction into failure and reply routes).
    Avp(u16),
    /// `$var(name)`: a worker's own variable (it keeps its value from one
    /// message to the next, as Kamailio's), by its index in [`var_name`]'s
    /// table.
    Var(u16),
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
        let rest = text.strip_prefix('$')?;
        if let Some(name) = rest.strip_prefix("avp(").and_then(|r| r.strip_suffix(')')) {
            // `$avp(s:name)` is Kamailio's old form of `$avp(name)`.
            let name = name.strip_prefix("s:").unwrap_or(name);
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            return ok
                .then(|| var_index(&format!("avp:{name}")))
                .flatten()
                .map(Pv::Avp);
        }
        match rest {
            "null" => return Some(Pv::Null),
            "rc" | "retcode" => return Some(Pv::RetCode),
            "T_branch_idx" => return Some(Pv::BranchIdx),
            _ => {}
        }
        match variable(rest) {
            Some((pv, len)) if len == rest.len() => Some(pv),
            _ => None,
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
    pub fn parse(s: &str) -> Format {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match variable(after) {
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
        Format {
            parts: parts.into(),
        }
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

/// A variable at the start of `s` (after the `$`), and the bytes it spans.
fn variable(s: &str) -> Option<(Pv, usize)> {
    if let Some(rest) = s.strip_prefix("T_branch_idx")
        && !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    {
        return Some((Pv::BranchIdx, "T_branch_idx".len()));
    }
    if let Some(rest) = s.strip_prefix("var(") {
        let end = rest.find(')')?;
        let name = &rest[..end];
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        return ok
            .then(|| var_index(name))
            .flatten()
            .map(|i| (Pv::Var(i), 4 + end + 1));
    }
    if let Some(rest) = s.strip_prefix("hdr(") {
        let end = rest.find(')')?;
        let name = &rest[..end];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        return Some((Pv::Header(name.into()), 4 + end + 1));
    }
    let two = s.get(..2)?;
    // `$rUx` is not `$rU` followed by `x`: variables end at a non-word byte.
    if s[2..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    NAMES
        .iter()
        .find(|(n, _)| *n == two)
        .map(|(_, pv)| (pv.clone(), 2))
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
        let f = Format::parse("Invalid user - $fU");
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
            assert_eq!(Format::parse(s).as_literal(), Some(s), "{s}");
        }
    }

    #[test]
    fn header_variables() {
        let f = Format::parse("$hdr(User-Agent)!");
        assert_eq!(
            &f.parts[..],
            &[
                Part::Var(Pv::Header("User-Agent".into())),
                Part::Text("!".into())
            ]
        );
    }
}

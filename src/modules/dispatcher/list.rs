//! The dispatcher's destination sets, from Kamailio's list file format:
//! one destination a line, `setid destination [flags [priority
//! [attributes]]]`, `#` comments. Attributes are `name=value;...`; the
//! dispatcher reads `weight` (algorithm 9) and `duid`. Parsed in the
//! process that (re)loads the list; a line that does not parse is an error
//! naming it, and the old list stays in force.

use super::select::MAX_PER_SET;
use crate::sip::Uri;

/// Destination flags as Kamailio's list file writes them.
pub const FLAG_INACTIVE: u32 = 1;
pub const FLAG_TRYING: u32 = 2;
pub const FLAG_DISABLED: u32 = 4;
/// Probe this destination with OPTIONS (ds_probing_mode 0).
pub const FLAG_PROBING: u32 = 8;

/// Bounds on a list, so a mistaken file cannot exhaust the tables.
pub const MAX_DESTINATIONS: usize = 1024;
pub const MAX_SETS: usize = 256;
const MAX_URI: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub uri: String,
    /// The flags the file gives: the state a new destination starts in.
    pub flags: u32,
    pub priority: i32,
    pub attrs: String,
    /// `weight=` of the attributes, 0..=100 (0: none given).
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub id: u32,
    /// By priority, highest first (Kamailio's order), then file order.
    pub dests: Vec<Destination>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    /// By set id.
    pub sets: Vec<Set>,
}

impl List {
    pub fn set(&self, id: u32) -> Option<&Set> {
        self.sets
            .binary_search_by_key(&id, |s| s.id)
            .ok()
            .map(|i| &self.sets[i])
    }

    pub fn len(&self) -> usize {
        self.sets.iter().map(|s| s.dests.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    attrs.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

fn line_of(n: usize, line: &str) -> Result<(u32, Destination), String> {
    let err = |m: &str| format!("line {n}: {m}");
    let mut f = line.split_whitespace();
    let set: u32 = f
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err("the set id must be a number"))?;
    let uri = f.next().ok_or_else(|| err("no destination"))?;
    if uri.len() > MAX_URI {
        return Err(err("destination too long"));
    }
    match Uri::parse(uri.as_bytes()) {
        Ok(u) if matches!(u.scheme, crate::sip::Scheme::Sip | crate::sip::Scheme::Sips) => {}
        _ => return Err(err(&format!("'{uri}' is not a SIP URI"))),
    }
    let flags: u32 = match f.next() {
        Some(s) => s.parse().map_err(|_| err("flags must be a number"))?,
        None => 0,
    };
    let priority: i32 = match f.next() {
        Some(s) => s.parse().map_err(|_| err("priority must be a number"))?,
        None => 0,
    };
    let attrs = f.collect::<Vec<_>>().join(" ");
    let weight = match attr(&attrs, "weight") {
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|w| *w <= 100)
            .ok_or_else(|| err("weight must be 0 to 100"))?,
        None => 0,
    };
    Ok((
        set,
        Destination {
            uri: uri.to_string(),
            flags,
            priority,
            attrs,
            weight,
        },
    ))
}

/// Parses a list file; every bad line is reported.
pub fn parse(text: &str) -> Result<List, Vec<String>> {
    let mut errors = Vec::new();
    let mut sets: Vec<Set> = Vec::new();
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line_of(i + 1, line) {
            Ok((id, d)) => {
                count += 1;
                if count > MAX_DESTINATIONS {
                    errors.push(format!("more than {MAX_DESTINATIONS} destinations"));
                    break;
                }
                if let Some(s) = sets.iter_mut().find(|s| s.id == id) {
                    if s.dests.len() >= MAX_PER_SET {
                        errors.push(format!(
                            "line {}: set {id} has more than {MAX_PER_SET} destinations",
                            i + 1
                        ));
                        break;
                    }
                    s.dests.push(d);
                } else if sets.len() < MAX_SETS {
                    sets.push(Set { id, dests: vec![d] });
                } else {
                    errors.push(format!("line {}: more than {MAX_SETS} sets", i + 1));
                    break;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    sets.sort_by_key(|s| s.id);
    for s in &mut sets {
        // Stable: equal priorities keep the file's order.
        s.dests.sort_by_key(|d| std::cmp::Reverse(d.priority));
    }
    Ok(List { sets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kamailios_format() {
        let l = parse(
            "# gateways\n\
             2 sip:10.0.0.3:5060 0 5\n\
             1 sip:127.0.0.1:5080 8 0 weight=25;duid=a\n\
             1 sip:127.0.0.1:5082\n\
             1 sip:127.0.0.1:5084 0 10 weight=50\n",
        )
        .unwrap();
        assert_eq!(l.sets.len(), 2);
        assert_eq!(l.len(), 4);
        let s1 = l.set(1).unwrap();
        let uris: Vec<&str> = s1.dests.iter().map(|d| d.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "sip:127.0.0.1:5084",
                "sip:127.0.0.1:5080",
                "sip:127.0.0.1:5082"
            ]
        );
        assert_eq!(s1.dests[1].flags, FLAG_PROBING);
        assert_eq!(s1.dests[1].weight, 25);
        assert_eq!(s1.dests[1].attrs, "weight=25;duid=a");
        assert!(l.set(3).is_none());
    }

    #[test]
    fn every_bad_line_is_named() {
        let e =
            parse("x sip:a\n1\n1 http://a\n1 sip:a.b z\n1 sip:a.b 0 0 weight=101\n1 sip:ok.net\n")
                .unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("line 1:"));
        assert!(e[2].contains("not a SIP URI"));
        assert!(e[4].starts_with("line 5:"));
    }

    #[test]
    fn lists_are_bounded() {
        let text: String = (0..=MAX_DESTINATIONS)
            .map(|i| format!("{} sip:h{i}.net\n", i % 100))
            .collect();
        assert!(parse(&text).is_err());
        let text: String = (0..=MAX_PER_SET)
            .map(|i| format!("1 sip:h{i}.net\n"))
            .collect();
        assert!(parse(&text).unwrap_err()[0].contains("more than 64"));
        let text: String = (0..=MAX_SETS).map(|i| format!("{i} sip:h.net\n")).collect();
        assert!(parse(&text).is_err());
    }
}

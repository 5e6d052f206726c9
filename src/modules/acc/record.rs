//! An accounting record as Kamailio's acc writes it: which transactions
//! give one (pure decisions over flags and codes), its fields, its log
//! line, and its encoding for the queue to the database writer.

use super::params::Params;

/// What a record says happened (the log line's prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A transaction's reply: answered, failed, early media, a CANCEL.
    Answered,
    /// An INVITE no branch answered with a 2xx.
    Missed,
    /// `acc_log_request` / `acc_db_request` in the script.
    Request,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Answered => "ACC: transaction answered: ",
            Kind::Missed => "ACC: call missed: ",
            Kind::Request => "ACC: request accounted: ",
        }
    }
}

/// Kamailio's core fields of a record; an absent value is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Unix seconds when it was made.
    pub time: u64,
    /// The request's CSeq method.
    pub method: Vec<u8>,
    pub from_tag: Vec<u8>,
    /// The reply's To tag (the request's when it has none).
    pub to_tag: Vec<u8>,
    pub call_id: Vec<u8>,
    /// The code as text: empty for a comment without one.
    pub code: Vec<u8>,
    pub reason: Vec<u8>,
    /// The extra attributes' values, in their configured order.
    pub extras: Vec<Vec<u8>>,
}

/// Where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sinks {
    pub log: bool,
    pub db: bool,
}

impl Sinks {
    pub fn any(self) -> bool {
        self.log || self.db
    }
}

/// Kamailio's `should_acc_reply` and flags: whether a reply that went
/// upstream is recorded, and where.
pub fn on_reply(p: &Params, flags: u32, code: u16, has_body: bool) -> Sinks {
    let wanted = match code {
        // Early media: a provisional reply with a body.
        0..200 => p.early_media && has_body,
        200..300 => true,
        _ => Params::has(flags, p.failed_transaction_flag) && !p.failed_filter.contains(&code),
    };
    Sinks {
        log: wanted && Params::has(flags, p.log_flag),
        db: wanted && Params::has(flags, p.db_flag),
    }
}

/// Kamailio's `on_missed`: an INVITE's failure with a missed-call flag.
pub fn on_missed(p: &Params, flags: u32, invite: bool, code: u16) -> Sinks {
    let missed = invite && code >= 300;
    Sinks {
        log: missed && Params::has(flags, p.log_missed_flag),
        db: missed && Params::has(flags, p.db_missed_flag),
    }
}

/// `acc_log_request("comment")`'s comment: three leading digits are the
/// code, the rest (after white space) the reason; else no code, and the
/// whole comment is the reason (Kamailio's `acc_parse_code`).
pub fn parse_comment(c: &[u8]) -> (&[u8], &[u8]) {
    if c.len() >= 3 && c[..3].iter().all(u8::is_ascii_digit) {
        (&c[..3], c[3..].trim_ascii_start())
    } else {
        (b"", c)
    }
}

impl Record {
    /// `ACC: transaction answered: timestamp=…;method=…;…;name=value`:
    /// Kamailio's log line (time_mode 0), extras in `names`' order.
    pub fn log_line<'n>(&self, kind: Kind, names: impl IntoIterator<Item = &'n str>) -> String {
        let mut s = String::with_capacity(160);
        s.push_str(kind.prefix());
        s.push_str(&format!("timestamp={}", self.time));
        let core: [(&str, &[u8]); 6] = [
            ("method", &self.method),
            ("from_tag", &self.from_tag),
            ("to_tag", &self.to_tag),
            ("call_id", &self.call_id),
            ("code", &self.code),
            ("reason", &self.reason),
        ];
        let extras = names.into_iter().zip(self.extras.iter().map(Vec::as_slice));
        for (name, value) in core.into_iter().chain(extras) {
            s.push(';');
            s.push_str(name);
            s.push('=');
            s.push_str(&String::from_utf8_lossy(value));
        }
        s
    }

    /// The record and its table for the queue: the table, the time, then
    /// each field, length-prefixed. False when it does not fit `max`.
    pub fn encode(&self, table: &str, max: usize, out: &mut Vec<u8>) -> bool {
        out.clear();
        out.extend_from_slice(&self.time.to_le_bytes());
        let fields = [
            table.as_bytes(),
            &self.method,
            &self.from_tag,
            &self.to_tag,
            &self.call_id,
            &self.code,
            &self.reason,
        ];
        for f in fields
            .into_iter()
            .chain(self.extras.iter().map(Vec::as_slice))
        {
            let Ok(n) = u16::try_from(f.len()) else {
                return false;
            };
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(f);
        }
        out.len() <= max
    }

    /// What [`Record::encode`] wrote: the table and the record.
    pub fn decode(b: &[u8]) -> Option<(String, Record)> {
        let time = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let mut rest = &b[8..];
        let mut fields = Vec::new();
        while !rest.is_empty() {
            let n = usize::from(u16::from_le_bytes(rest.get(..2)?.try_into().ok()?));
            fields.push(rest.get(2..2 + n)?.to_vec());
            rest = &rest[2 + n..];
        }
        if fields.len() < 7 {
            return None;
        }
        let extras = fields.split_off(7);
        let mut f = fields.into_iter();
        let mut next = || f.next().unwrap_or_default();
        let table = String::from_utf8(next()).ok()?;
        Some((
            table,
            Record {
                time,
                method: next(),
                from_tag: next(),
                to_tag: next(),
                call_id: next(),
                code: next(),
                reason: next(),
                extras,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        let src = "loadmodule \"tm.so\"\nloadmodule \"acc.so\"\n\
                   modparam(\"acc\", \"log_flag\", 1)\nmodparam(\"acc\", \"db_url\", \"sqlite:///tmp/x\")\n\
                   modparam(\"acc\", \"db_flag\", 2)\nmodparam(\"acc\", \"failed_transaction_flag\", 3)\n\
                   modparam(\"acc\", \"log_missed_flag\", 4)\nmodparam(\"acc\", \"failed_filter\", \"408\")\n\
                   route { t_relay(); }\n";
        Params::from_config(&crate::cfg::load(src).unwrap()).unwrap()
    }

    #[test]
    fn answered_calls_are_recorded_where_their_flags_say() {
        let p = params();
        assert_eq!(
            on_reply(&p, 1 << 1, 200, false),
            Sinks {
                log: true,
                db: false
            }
        );
        assert_eq!(
            on_reply(&p, 1 << 1 | 1 << 2, 200, false),
            Sinks {
                log: true,
                db: true
            }
        );
        assert!(!on_reply(&p, 0, 200, false).any());
        // 1xx only as early media, which is off by default.
        assert!(!on_reply(&p, 1 << 1, 183, true).any());
    }

    #[test]
    fn failures_need_the_failed_transaction_flag_and_pass_the_filter() {
        let p = params();
        assert!(!on_reply(&p, 1 << 1, 486, false).any());
        assert!(on_reply(&p, 1 << 1 | 1 << 3, 486, false).log);
        assert!(!on_reply(&p, 1 << 1 | 1 << 3, 408, false).any(), "filtered");
    }

    #[test]
    fn missed_calls_are_failed_invites_with_the_missed_flag() {
        let p = params();
        assert!(on_missed(&p, 1 << 4, true, 486).log);
        assert!(!on_missed(&p, 1 << 4, false, 486).any(), "not an INVITE");
        assert!(!on_missed(&p, 1 << 4, true, 200).any());
        assert!(!on_missed(&p, 1 << 1, true, 486).any(), "no missed flag");
    }

    #[test]
    fn comments_give_code_and_reason_as_kamailio_parses_them() {
        assert_eq!(parse_comment(b"200 OK"), (&b"200"[..], &b"OK"[..]));
        assert_eq!(parse_comment(b"4040 x"), (&b"404"[..], &b"0 x"[..]));
        assert_eq!(parse_comment(b"called"), (&b""[..], &b"called"[..]));
    }

    #[test]
    fn the_log_line_is_kamailios_and_the_encoding_round_trips() {
        let r = Record {
            time: 1_700_000_000,
            method: b"INVITE".to_vec(),
            from_tag: b"a".to_vec(),
            to_tag: b"b".to_vec(),
            call_id: b"c".to_vec(),
            code: b"200".to_vec(),
            reason: b"OK".to_vec(),
            extras: vec![b"1.2.3.4".to_vec(), Vec::new()],
        };
        assert_eq!(
            r.log_line(Kind::Answered, ["src_ip", "caller"]),
            "ACC: transaction answered: timestamp=1700000000;method=INVITE;from_tag=a;\
             to_tag=b;call_id=c;code=200;reason=OK;src_ip=1.2.3.4;caller="
        );
        let mut buf = Vec::new();
        assert!(r.encode("acc", 1024, &mut buf));
        assert_eq!(Record::decode(&buf), Some(("acc".to_string(), r.clone())));
        assert!(!r.encode("acc", 20, &mut buf), "too long for the cell");
        assert_eq!(Record::decode(&buf[..buf.len() - 1]), None);
    }
}

//! acc's module parameters, with Kamailio's names and defaults, checked
//! once at start. What Kamailio has and rser does not do yet is refused
//! by name rather than ignored.

use crate::cfg::Config;
use crate::cfg::compile::MAX_FLAG;
use crate::cfg::pv::{Format, Part};

/// One `name=$pv` of `log_extra` / `db_extra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub name: String,
    pub value: Format,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub log_flag: Option<u8>,
    pub log_missed_flag: Option<u8>,
    pub db_flag: Option<u8>,
    pub db_missed_flag: Option<u8>,
    pub failed_transaction_flag: Option<u8>,
    /// Failure codes never recorded as failed transactions.
    pub failed_filter: Vec<u16>,
    /// A provisional reply with a body is recorded too.
    pub early_media: bool,
    /// A CANCEL's own transaction is recorded.
    pub report_cancels: bool,
    pub log_level: log::Level,
    /// syslog(3)'s facility, when `log_facility` names one: records go
    /// there as well as to rser's log.
    pub log_facility: Option<i32>,
    pub log_extra: Vec<Extra>,
    pub db_extra: Vec<Extra>,
    pub db_url: Option<String>,
    pub table_acc: String,
    pub table_missed: String,
    /// The core columns: method, from_tag, to_tag, callid, sip_code,
    /// sip_reason, time.
    pub columns: [String; 7],
}

/// Kamailio's column parameters, in [`Params::columns`] order, with
/// their defaults.
pub const COLUMN_PARAMS: [(&str, &str); 7] = [
    ("acc_method_column", "method"),
    ("acc_from_tag_column", "from_tag"),
    ("acc_to_tag_column", "to_tag"),
    ("acc_callid_column", "callid"),
    ("acc_sip_code_column", "sip_code"),
    ("acc_sip_reason_column", "sip_reason"),
    ("acc_time_column", "time"),
];

impl Params {
    pub fn from_config(c: &Config) -> Result<Params, String> {
        let flag = |name: &str| -> Result<Option<u8>, String> {
            match c.modparam_int("acc", name, -1) {
                -1 => Ok(None),
                n if (0..=MAX_FLAG).contains(&n) => Ok(Some(n as u8)),
                n => Err(format!("acc {name} {n}: a flag from 0 to {MAX_FLAG}")),
            }
        };
        for (name, what) in [
            ("report_ack", "accounting of ACKs"),
            (
                "detect_direction",
                "swapping From and To for upstream requests",
            ),
        ] {
            if c.modparam_int("acc", name, 0) != 0 {
                return Err(format!("acc {name} ({what}) is not implemented"));
            }
        }
        if c.modparam_int("acc", "time_mode", 0) != 0 {
            return Err("acc time_mode: only 0 (a Unix timestamp) is implemented".into());
        }
        let text = |name: &str, default: &str| c.modparam_str("acc", name, default).to_string();
        let db_url = Some(text("db_url", "")).filter(|u| !u.is_empty());
        let p = Params {
            log_flag: flag("log_flag")?,
            log_missed_flag: flag("log_missed_flag")?,
            db_flag: flag("db_flag")?,
            db_missed_flag: flag("db_missed_flag")?,
            failed_transaction_flag: flag("failed_transaction_flag")?,
            failed_filter: codes(&text("failed_filter", ""))?,
            early_media: c.modparam_int("acc", "early_media", 0) != 0,
            report_cancels: c.modparam_int("acc", "report_cancels", 0) != 0,
            log_level: level(c.modparam_int("acc", "log_level", 1)),
            log_facility: match c.modparam("acc", "log_facility") {
                None => None,
                Some(_) => Some(facility(&text("log_facility", ""))?),
            },
            log_extra: extras(&text("log_extra", ""))?,
            db_extra: extras(&text("db_extra", ""))?,
            table_acc: text("db_table_acc", "acc"),
            table_missed: text("db_table_missed_calls", "missed_calls"),
            columns: COLUMN_PARAMS.map(|(p, d)| text(p, d)),
            db_url,
        };
        if p.db_url.is_none() && (p.db_flag.is_some() || p.db_missed_flag.is_some()) {
            return Err(
                "acc db_flag and db_missed_flag need modparam(\"acc\", \"db_url\", ...)".into(),
            );
        }
        for name in [&p.table_acc, &p.table_missed]
            .into_iter()
            .chain(&p.columns)
            .chain(p.db_extra.iter().map(|e| &e.name))
        {
            crate::db::check_table_name(name).map_err(|e| format!("acc: {e}"))?;
        }
        Ok(p)
    }

    pub fn has(flags: u32, flag: Option<u8>) -> bool {
        flag.is_some_and(|f| flags & (1 << f) != 0)
    }

    /// The flags that make a transaction the module's concern.
    pub fn any_flag(&self, flags: u32) -> bool {
        [
            self.log_flag,
            self.db_flag,
            self.log_missed_flag,
            self.db_missed_flag,
        ]
        .into_iter()
        .any(|f| Params::has(flags, f))
    }

    /// Bits of the missed-call flags.
    pub fn missed_bits(&self) -> u32 {
        [self.log_missed_flag, self.db_missed_flag]
            .into_iter()
            .flatten()
            .fold(0, |b, f| b | 1 << f)
    }
}

/// Kamailio's log levels (L_ALERT -5 .. L_DBG 3) as the log crate's.
fn level(n: i64) -> log::Level {
    match n {
        i64::MIN..=-1 => log::Level::Error,
        0 => log::Level::Warn,
        1 | 2 => log::Level::Info,
        _ => log::Level::Debug,
    }
}

/// syslog's facility by its name (`LOG_LOCAL0`, `LOG_DAEMON`, ...).
fn facility(name: &str) -> Result<i32, String> {
    let f = match name.trim().to_ascii_uppercase().as_str() {
        "LOG_DAEMON" => libc::LOG_DAEMON,
        "LOG_USER" => libc::LOG_USER,
        "LOG_LOCAL0" => libc::LOG_LOCAL0,
        "LOG_LOCAL1" => libc::LOG_LOCAL1,
        "LOG_LOCAL2" => libc::LOG_LOCAL2,
        "LOG_LOCAL3" => libc::LOG_LOCAL3,
        "LOG_LOCAL4" => libc::LOG_LOCAL4,
        "LOG_LOCAL5" => libc::LOG_LOCAL5,
        "LOG_LOCAL6" => libc::LOG_LOCAL6,
        "LOG_LOCAL7" => libc::LOG_LOCAL7,
        _ => {
            return Err(format!(
                "acc log_facility '{name}': LOG_DAEMON, LOG_USER or LOG_LOCAL0..7"
            ));
        }
    };
    Ok(f)
}

/// `failed_filter`: three-digit codes, comma-separated.
fn codes(s: &str) -> Result<Vec<u16>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| match c.parse::<u16>() {
            Ok(n) if (100..=699).contains(&n) => Ok(n),
            _ => Err(format!("acc failed_filter: '{c}' is not a reply code")),
        })
        .collect()
}

/// `name=$pv;name=$pv`: each value one pseudo-variable, as Kamailio's
/// parser demands.
pub fn extras(s: &str) -> Result<Vec<Extra>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(';')
        .map(|item| {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("acc extra '{item}': expected name=$pv"))?;
            let (name, value) = (name.trim(), value.trim());
            let format = Format::parse(value)?;
            match (&format.parts[..], name.is_empty()) {
                ([Part::Var(_)], false) => Ok(Extra {
                    name: name.to_string(),
                    value: format,
                }),
                _ => Err(format!(
                    "acc extra '{item}': expected name=$pv with one known pseudo-variable"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_are_names_and_single_variables() {
        let e = extras("src_ip=$si; caller = $fU;callee=$rU").unwrap();
        let names: Vec<&str> = e.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["src_ip", "caller", "callee"]);
        assert!(extras("x=literal").is_err());
        assert!(
            extras("x=$si;").is_err(),
            "a trailing ';' is an error, as in Kamailio"
        );
        assert!(extras("=$si").is_err());
        assert!(extras("").unwrap().is_empty());
    }

    #[test]
    fn filters_and_facilities() {
        assert_eq!(codes("408, 487").unwrap(), [408, 487]);
        assert!(codes("4xx").is_err());
        assert_eq!(facility("log_local0").unwrap(), libc::LOG_LOCAL0);
        assert!(facility("LOG_KERN").is_err());
    }

    fn params(cfg: &str) -> Result<Params, String> {
        let src =
            format!("loadmodule \"tm.so\"\nloadmodule \"acc.so\"\n{cfg}\nroute {{ t_relay(); }}\n");
        Params::from_config(&crate::cfg::load(&src).expect("config"))
    }

    #[test]
    fn kamailio_defaults_and_refusals() {
        let p = params("").unwrap();
        assert_eq!(p.log_flag, None);
        assert_eq!(p.table_acc, "acc");
        assert_eq!(p.table_missed, "missed_calls");
        assert_eq!(p.columns[3], "callid");
        assert_eq!(p.log_level, log::Level::Info);
        let p =
            params("modparam(\"acc\", \"log_flag\", 1)\nmodparam(\"acc\", \"log_missed_flag\", 2)")
                .unwrap();
        assert!(p.any_flag(1 << 1) && p.any_flag(1 << 2) && !p.any_flag(1 << 3));
        assert_eq!(p.missed_bits(), 1 << 2);
        assert!(
            params("modparam(\"acc\", \"report_ack\", 1)")
                .unwrap_err()
                .contains("report_ack")
        );
        assert!(params("modparam(\"acc\", \"time_mode\", 2)").is_err());
        assert!(
            params("modparam(\"acc\", \"db_flag\", 1)")
                .unwrap_err()
                .contains("db_url")
        );
        assert!(params("modparam(\"acc\", \"log_flag\", 40)").is_err());
    }
}

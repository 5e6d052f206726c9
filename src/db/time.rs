//! DATETIME columns as Kamailio's database modules write them: local
//! time `YYYY-MM-DD HH:MM:SS` on MySQL and PostgreSQL (a naive
//! timestamp), the Julian day on SQLite (db_sqlite's way, which SQLite's
//! own date functions read). rser keeps seconds since the epoch.

/// `secs` as the local calendar time, or None past what libc converts.
fn local(secs: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: localtime_r writes the zeroed struct it is given and reads
    // only `t`; both live for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    ok.then_some(tm)
}

/// The local calendar time's fields: year, month, day, hour, minute,
/// second.
pub fn fields(secs: i64) -> Option<[u32; 6]> {
    let tm = local(secs)?;
    Some([
        (tm.tm_year + 1900).try_into().ok()?,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    ])
}

/// Seconds since the epoch of a local calendar time.
pub fn from_fields(f: [u32; 6]) -> Option<i64> {
    // SAFETY: mktime reads and normalises the struct it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(f[0]).ok()? - 1900;
    tm.tm_mon = i32::try_from(f[1]).ok()? - 1;
    tm.tm_mday = f[2] as i32;
    tm.tm_hour = f[3] as i32;
    tm.tm_min = f[4] as i32;
    tm.tm_sec = f[5] as i32;
    tm.tm_isdst = -1;
    let t = unsafe { libc::mktime(&mut tm) };
    #[allow(clippy::useless_conversion)] // time_t is i32 on some targets
    (t != -1).then_some(i64::from(t))
}

/// `secs` as `YYYY-MM-DD HH:MM:SS`, local time.
pub fn text(secs: i64) -> String {
    match fields(secs) {
        Some([y, mo, d, h, mi, s]) => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
        None => "1970-01-01 00:00:00".into(),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (a fraction or zone after it ignored), local.
pub fn parse(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |a: usize, b: usize| t.get(a..b)?.parse::<u32>().ok();
    let sep = |i: usize, c: &[u8]| t.as_bytes().get(i).is_some_and(|b| c.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b" T") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    from_fields([
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    ])
}

/// A time as db_sqlite stores a DATETIME: the Julian day.
pub fn julian_day(secs: i64) -> f64 {
    secs as f64 / 86_400.0 + 2_440_587.5
}

pub fn from_julian_day(jd: f64) -> i64 {
    ((jd - 2_440_587.5) * 86_400.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_julian_days_round_trip() {
        for secs in [0, 1_700_000_000, 1_900_000_000] {
            assert_eq!(parse(&text(secs)), Some(secs), "{}", text(secs));
            assert_eq!(from_julian_day(julian_day(secs)), secs);
        }
        assert_eq!(
            parse("2030-05-28T21:32:15.000"),
            parse("2030-05-28 21:32:15")
        );
        assert_eq!(parse("2030-05-28"), None);
        assert_eq!(parse("yesterday at noon"), None);
    }
}

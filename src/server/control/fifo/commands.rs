//! SER's FIFO commands over the control interface's methods, answered in
//! SER's reply format: a status line (`200 ok`, `404 ...`), then the
//! body.

use std::path::PathBuf;

use super::frame::{COMMANDS, Request};
use crate::server::control::methods::Control;
use crate::server::control::rpc::{INVALID_PARAMS, NOT_FOUND, RpcError};
use crate::server::control::uac::{Ask, Done, Engine};

/// What a request got: its reply now, or a transaction started whose
/// end writes it.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Now(String),
    Started,
}

/// Runs `req`; `reply` is its reply file (for a UAC's later report).
pub fn run(
    ctl: &mut Control<'_>,
    uac: Option<&mut Engine>,
    req: &Request,
    reply: Option<PathBuf>,
    now_ms: u64,
) -> Answer {
    let a = &req.args;
    Answer::Now(match req.command.as_str() {
        "t_uac_from" | "t_uac_dlg" => return t_uac(uac, req, reply, now_ms),
        "ps" => ps(ctl),
        "uptime" => uptime(ctl.started),
        "version" => format!(
            "200 ok\nServer: rser ({} ({}/{}))\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            std::env::consts::OS
        ),
        "which" => {
            let mut t = "200 ok\n".to_string();
            for (name, _) in COMMANDS {
                t.push_str(name);
                t.push('\n');
            }
            t
        }
        "ul_dump" => ul_dump(ctl),
        "ul_show_contact" => match a.as_slice() {
            [table, user] => show_contact(ctl, table, &aor(ctl, user)),
            _ => usage("ul_show_contact", "table, user"),
        },
        "ul_rm" => match a.as_slice() {
            [table, user] => {
                let aor = aor(ctl, user);
                match table_known(ctl, table).and_then(|_| ctl.ul_rm(&aor, Some(table))) {
                    Ok(_) => format!("200 user ({table}, {aor}) deleted\n"),
                    Err(e) => ul_error(&e, table, &aor),
                }
            }
            _ => usage("ul_rm", "table, user"),
        },
        "ul_rm_contact" => match a.as_slice() {
            [table, user, contact] => {
                let aor = aor(ctl, user);
                match table_known(ctl, table).and_then(|_| ctl.ul_rm_contact(table, &aor, contact))
                {
                    Ok(_) => format!("200 Contact ({aor}, {contact}) deleted from table {table}\n"),
                    Err(e) => ul_error(&e, table, &aor),
                }
            }
            _ => usage("ul_rm_contact", "table, user, contact"),
        },
        "ul_add" => match a.as_slice() {
            // SER's sixth line, `replicate`, named a replication peer
            // set; only 0 (none) is taken.
            [table, user, contact, expires, q] | [table, user, contact, expires, q, _] => {
                if a.get(5).is_some_and(|r| r.trim() != "0") {
                    return Answer::Now(
                        "400 ul_add: replication is not provided (its line must be 0)\n".into(),
                    );
                }
                let (Ok(exp), Ok(qv)) = (expires.trim().parse::<f64>(), q.trim().parse::<f64>())
                else {
                    return Answer::Now("400 Invalid expires or q format\n".into());
                };
                let aor = aor(ctl, user);
                match table_known(ctl, table)
                    .and_then(|_| ctl.ul_add(table, &aor, contact, exp, qv))
                {
                    Ok(_) => format!("200 Added to table\n('{aor}','{contact}') to '{table}'\n"),
                    Err(e) => ul_error(&e, table, &aor),
                }
            }
            _ => usage("ul_add", "table, user, contact, expires, q"),
        },
        other => format!("500 command '{other}' not available\n"),
    })
}

fn usage(command: &str, lines: &str) -> String {
    format!("400 {command}: expects the lines {lines}\n")
}

/// SER's FIFO named users without the domain unless usrloc's
/// `use_domain` is on.
fn aor(ctl: &Control<'_>, user: &str) -> String {
    let user = user.trim();
    let aor = match (ctl.ul.use_domain, user.split_once('@')) {
        (false, Some((u, _))) => u,
        _ => user,
    };
    aor.to_ascii_lowercase()
}

fn table_known(ctl: &Control<'_>, table: &str) -> Result<(), RpcError> {
    ctl.location()?;
    if ctl.ul_tables.iter().any(|t| t == table) {
        Ok(())
    } else {
        Err(RpcError::new(
            INVALID_PARAMS,
            format!("table ({table}) not found"),
        ))
    }
}

fn ul_error(e: &RpcError, table: &str, aor: &str) -> String {
    match e.code {
        NOT_FOUND => format!("404 Username {aor} in table {table} not found\n"),
        INVALID_PARAMS => format!("400 {}\n", e.message),
        _ => format!("500 {}\n", e.message),
    }
}

fn show_contact(ctl: &Control<'_>, table: &str, aor: &str) -> String {
    let found = table_known(ctl, table).and_then(|_| ctl.ul_lookup(aor, Some(table)));
    let v = match found {
        Ok(v) => v,
        Err(e) => return ul_error(&e, table, aor),
    };
    let mut t = "200 OK\n".to_string();
    for c in v["contacts"].as_array().into_iter().flatten() {
        t.push_str(&format!("<{}>", c["contact"].as_str().unwrap_or("")));
        if let Some(q) = c["q"].as_f64() {
            t.push_str(&format!(";q={q:.2}"));
        }
        t.push_str(&format!(";expires={}\n", c["expires"]));
    }
    t
}

/// SER's `ul_dump` layout, without its pointers.
fn ul_dump(ctl: &Control<'_>) -> String {
    let v = match ctl.ul_dump() {
        Ok(v) => v,
        Err(e) => return format!("500 {}\n", e.message),
    };
    let mut t = "200 ok\n===Domain list===\n".to_string();
    for (table, records) in v.as_object().into_iter().flatten() {
        let records = records.as_object().cloned().unwrap_or_default();
        t.push_str(&format!(
            "---Domain---\nname : '{table}'\nsize : {}\n",
            records.len()
        ));
        for (aor, contacts) in &records {
            t.push_str(&format!("...Record...\naor   : '{aor}'\n"));
            for c in contacts.as_array().into_iter().flatten() {
                let text = |k: &str| c[k].as_str().unwrap_or("").to_string();
                t.push_str(&format!(
                    "~~~Contact~~~\nContact: '{}'\nExpires: {}\nq      : {}\nCall-ID: '{}'\nCSeq   : {}\n~~~/Contact~~~\n",
                    text("contact"),
                    c["expires"],
                    c["q"].as_f64().map_or("-".to_string(), |q| format!("{q:.2}")),
                    text("call_id"),
                    c["cseq"],
                ));
            }
            t.push_str(".../Record...\n");
        }
        t.push_str("---/Domain---\n");
    }
    t.push_str("===/Domain list===\n");
    t
}

fn ps(ctl: &Control<'_>) -> String {
    let mut t = format!(
        "200 ok\n0\t{}\tmaster\n",
        std::os::unix::process::parent_id()
    );
    for (i, (pid, role, _)) in ctl.shared.processes.list().into_iter().enumerate() {
        t.push_str(&format!("{}\t{pid}\t{role}\n", i + 1));
    }
    t
}

/// A time as C's ctime() writes it (local time, a line break at the end).
fn ctime(secs: u64) -> String {
    let t = secs as libc::time_t;
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: ctime_r writes at most 26 bytes into the 64 given.
    let p = unsafe { libc::ctime_r(&t, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("{secs}\n");
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn uptime(started: u64) -> String {
    let now = crate::modules::usrloc::unix_now();
    format!(
        "200 ok\nNow: {}Up Since: {}Up time: {} [sec]\n",
        ctime(now),
        ctime(started),
        now.saturating_sub(started)
    )
}

/// `:t_uac_from:` (method, sender URI, destination URI) and
/// `:t_uac_dlg:` (method, Request-URI, next hop or `.`), then header
/// lines and body.
fn t_uac(uac: Option<&mut Engine>, req: &Request, reply: Option<PathBuf>, now_ms: u64) -> Answer {
    let Some(engine) = uac else {
        return Answer::Now(format!(
            "500 command '{}' not available: tm is not loaded\n",
            req.command
        ));
    };
    let [method, second, third] = req.args.as_slice() else {
        return Answer::Now(format!(
            "400 {}: method and two URI lines expected\n",
            req.command
        ));
    };
    let ask = match req.command.as_str() {
        "t_uac_from" => Ask {
            method: method.clone(),
            ruri: third.clone(),
            next_hop: None,
            from: Some(second.clone()),
            headers: req.headers.clone(),
            body: req.body.clone(),
        },
        _ => Ask {
            method: method.clone(),
            ruri: second.clone(),
            next_hop: Some(third.clone()),
            from: None,
            headers: req.headers.clone(),
            body: req.body.clone(),
        },
    };
    let done = match reply {
        Some(p) => Done::Fifo(p),
        None => Done::Nobody,
    };
    match engine.start(&ask, done, now_ms) {
        Ok(()) => Answer::Started,
        Err((code, reason, _)) => Answer::Now(format!("{code} {}: {reason}\n", req.command)),
    }
}

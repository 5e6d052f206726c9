//! rserctl: rser's operator tool.
//!
//! ```text
//! rserctl subscriber add USER@DOMAIN PASSWORD  [--db URL | -f ser.cfg] [--table T]
//! rserctl subscriber rm USER@DOMAIN            [--db URL | -f ser.cfg] [--table T]
//! rserctl subscriber list                      [--db URL | -f ser.cfg] [--table T]
//! rserctl version | uptime | ps                [-s SOCKET | -f ser.cfg]
//! rserctl stats [GROUP] [--prometheus]
//! rserctl ul dump | ul show AOR | ul rm AOR    [--table T]
//! rserctl tm stats | tm uac METHOD RURI [--next-hop URI] [-H LINE]... [--body B]
//! rserctl dispatcher list | reload | set-state STATE SET URI
//! rserctl blocklist show | blocklist rm [IP:PORT]
//! rserctl cfg check [FILE]
//! rserctl rpc METHOD [PARAMS-JSON]             (any method, raw JSON out)
//! ```

use clap::{Parser, Subcommand};
use rser_tools::ctl;
use rser_tools::subscriber::{self, Command};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "rserctl", about = "rser's operator tool")]
struct Cli {
    #[command(subcommand)]
    what: What,
    /// The server's control socket.
    #[arg(short = 's', long = "socket", global = true)]
    socket: Option<String>,
    /// Take the control socket (ctl_socket) or the subscriber database
    /// (auth_db db_url) from this config.
    #[arg(short = 'f', global = true)]
    config: Option<String>,
}

#[derive(Subcommand)]
enum What {
    /// The users digest authentication checks.
    Subscriber {
        #[command(subcommand)]
        op: Op,
        /// The database (sqlite:///path/rser.db).
        #[arg(long, global = true)]
        db: Option<String>,
        /// The subscriber table www_authorize/proxy_authorize name.
        #[arg(long, global = true, default_value = "subscriber")]
        table: String,
    },
    /// The server's version.
    Version,
    /// How long the server has run.
    Uptime,
    /// The server's processes and their roles.
    Ps,
    /// Every counter and the shared tables' use, or one group's.
    Stats {
        /// core, sl, tm, registrar, usrloc, auth or shm.
        group: Option<String>,
        /// In Prometheus' text format.
        #[arg(long)]
        prometheus: bool,
    },
    /// The user location table.
    Ul {
        #[command(subcommand)]
        op: UlOp,
        /// The location table (default: the first the script names).
        #[arg(long, global = true)]
        table: Option<String>,
    },
    /// Transactions.
    Tm {
        #[command(subcommand)]
        op: TmOp,
    },
    /// The dispatcher's destination sets.
    Dispatcher {
        #[command(subcommand)]
        op: DsOp,
    },
    /// tm's destination blocklist.
    Blocklist {
        #[command(subcommand)]
        op: BlOp,
    },
    /// The configuration.
    Cfg {
        #[command(subcommand)]
        op: CfgOp,
    },
    /// Kamailio's schema for rser's tables in a database (MySQL/MariaDB,
    /// PostgreSQL, SQLite).
    Db {
        #[command(subcommand)]
        op: DbOp,
    },
    /// Any control method, with its params as JSON; prints the raw result.
    Rpc {
        method: String,
        params: Option<String>,
    },
}

#[derive(Subcommand)]
enum DbOp {
    /// Creates the missing tables (all rser uses, or those named), with
    /// their rows in `version` (as kamdbctl create).
    Init { url: String, tables: Vec<String> },
    /// Reports missing tables and versions rser does not read.
    Check { url: String, tables: Vec<String> },
}

#[derive(Subcommand)]
enum Op {
    /// Adds (or replaces) a user.
    Add {
        user: String,
        password: String,
        /// Store the password itself too (by default only its hashes:
        /// ha1, ha1b, ha1_sha256, as Kamailio's subscriber table).
        #[arg(long)]
        plaintext: bool,
    },
    /// Removes a user.
    Rm { user: String },
    /// Lists the users.
    List,
}

#[derive(Subcommand)]
enum UlOp {
    /// Every binding.
    Dump,
    /// One AOR's contacts.
    Show { aor: String },
    /// Removes every binding of an AOR.
    Rm { aor: String },
}

#[derive(Subcommand)]
enum TmOp {
    /// The transaction table's use and tm's counters.
    Stats,
    /// Sends a request (MESSAGE, NOTIFY, OPTIONS, INVITE, ...) as a UAC
    /// and prints its final reply (a final reply of 300 or more exits
    /// 1); an INVITE's final reply is acknowledged by the server.
    Uac {
        method: String,
        ruri: String,
        /// Send to this URI's address instead of the Request-URI's.
        #[arg(long)]
        next_hop: Option<String>,
        /// An extra header line (`Name: value`), repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        #[arg(long, default_value = "")]
        body: String,
    },
}

#[derive(Subcommand)]
enum DsOp {
    /// Every set and each destination's state.
    List,
    /// Reads the list file (or table) again; destinations keep their state.
    Reload,
    /// Sets a destination's state: a(ctive), i(nactive), t(rying),
    /// d(isabled), with p for probing (Kamailio's letters).
    SetState {
        state: String,
        set: u32,
        uri: String,
    },
}

#[derive(Subcommand)]
enum BlOp {
    /// The blocklisted addresses and the time left.
    Show,
    /// Unblocks one address, or every one.
    Rm { address: Option<String> },
}

#[derive(Subcommand)]
enum CfgOp {
    /// Checks a config file (default: the one the server runs).
    Check { file: Option<String> },
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(out) if out.is_empty() => {}
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("rserctl: {e}");
            std::process::exit(1);
        }
    }
}

fn run(cli: Cli) -> Result<String, String> {
    let (socket, config) = (cli.socket.as_deref(), cli.config.as_deref());
    let call = |method: &str, params: Value| {
        let path = ctl::socket_path(socket, config)?;
        ctl::call(&path, method, params)
    };
    match cli.what {
        What::Subscriber { op, db, table } => {
            let url = subscriber::db_url(db.as_deref(), config)?;
            let cmd = match &op {
                Op::Add {
                    user,
                    password,
                    plaintext,
                } => Command::Add {
                    user,
                    password,
                    keep_password: *plaintext,
                },
                Op::Rm { user } => Command::Remove { user },
                Op::List => Command::List,
            };
            subscriber::run(&url, &table, cmd)
        }
        What::Db { op } => match op {
            DbOp::Init { url, tables } => rser_tools::db::init(&url, &tables),
            DbOp::Check { url, tables } => rser_tools::db::check(&url, &tables),
        },
        What::Version => {
            let v = call("core.version", json!([]))?;
            Ok(format!(
                "{} {}",
                v["name"].as_str().unwrap_or("?"),
                v["version"].as_str().unwrap_or("?")
            ))
        }
        What::Uptime => Ok(ctl::uptime_text(&call("core.uptime", json!([]))?)),
        What::Ps => Ok(ctl::ps_text(&call("core.ps", json!([]))?)),
        What::Stats { group, prometheus } => {
            let v = call("stats.get", json!([group]))?;
            Ok(if prometheus {
                ctl::stats_prometheus(&v).trim_end().to_string()
            } else {
                ctl::stats_text(&v)
            })
        }
        What::Ul { op, table } => match op {
            UlOp::Dump => Ok(ctl::ul_dump_text(&call("ul.dump", json!([]))?)),
            UlOp::Show { aor } => Ok(ctl::ul_lookup_text(&call(
                "ul.lookup",
                json!([aor, table]),
            )?)),
            UlOp::Rm { aor } => {
                let v = call("ul.rm", json!([aor, table]))?;
                Ok(format!("removed {} binding(s) of {aor}", v["removed"]))
            }
        },
        What::Tm { op: TmOp::Stats } => Ok(ctl::object_text(&call("tm.stats", json!([]))?)),
        What::Tm {
            op:
                TmOp::Uac {
                    method,
                    ruri,
                    next_hop,
                    headers,
                    body,
                },
        } => {
            // The answer comes when the transaction ends: fr_inv_timer
            // after a provisional, two minutes by default.
            let v = ctl::call_within(
                &ctl::socket_path(socket, config)?,
                "tm.t_uac",
                json!([
                    method,
                    ruri,
                    next_hop.unwrap_or_else(|| ".".into()),
                    headers.join("\r\n"),
                    body
                ]),
                std::time::Duration::from_secs(300),
            )?;
            let text = format!(
                "{} {} (from {})",
                v["code"],
                v["reason"].as_str().unwrap_or(""),
                v["destination"].as_str().unwrap_or("?")
            );
            // A final reply of 300 or more fails the command, so a script
            // can tell (the reply is still printed, on stderr).
            match v["code"].as_u64() {
                Some(code) if code < 300 => Ok(text),
                _ => Err(text),
            }
        }
        What::Dispatcher { op } => match op {
            DsOp::List => Ok(ctl::dispatcher_text(&call("dispatcher.list", json!([]))?)),
            DsOp::Reload => {
                let v = call("dispatcher.reload", json!([]))?;
                Ok(format!(
                    "reloaded: {} destinations (generation {})",
                    v["destinations"], v["generation"]
                ))
            }
            DsOp::SetState { state, set, uri } => {
                let v = call("dispatcher.set_state", json!([state, set, uri]))?;
                Ok(format!(
                    "{uri} in set {set}: {}",
                    v["flags"].as_str().unwrap_or("?")
                ))
            }
        },
        What::Blocklist { op } => match op {
            BlOp::Show => Ok(ctl::blocklist_text(&call("dst_blocklist.view", json!([]))?)),
            BlOp::Rm { address } => {
                let v = call("dst_blocklist.delete", json!([address]))?;
                Ok(format!("unblocked {}", v["removed"]))
            }
        },
        What::Cfg {
            op: CfgOp::Check { file },
        } => {
            let v = call("cfg.check", json!([file]))?;
            if v["ok"] == true {
                Ok(format!("{}: ok", v["path"].as_str().unwrap_or("?")))
            } else {
                let errors: Vec<&str> = v["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                Err(errors.join("\n"))
            }
        }
        What::Rpc { method, params } => {
            let params = match params {
                Some(p) => serde_json::from_str(&p).map_err(|e| format!("params: {e}"))?,
                None => json!([]),
            };
            let v = call(&method, params)?;
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())
        }
    }
}

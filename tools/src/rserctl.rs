//! rserctl: rser's operator tool.
//!
//! ```text
//! rserctl subscriber add USER@DOMAIN PASSWORD  [--db URL | -f ser.cfg] [--table T]
//! rserctl subscriber rm USER@DOMAIN            [--db URL | -f ser.cfg] [--table T]
//! rserctl subscriber list                      [--db URL | -f ser.cfg] [--table T]
//! ```

use clap::{Parser, Subcommand};
use rser_tools::subscriber::{self, Command};

#[derive(Parser)]
#[command(name = "rserctl", about = "rser's operator tool")]
struct Cli {
    #[command(subcommand)]
    what: What,
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
        /// Take the database from this config's auth_db db_url.
        #[arg(short = 'f', global = true)]
        config: Option<String>,
        /// The subscriber table www_authorize/proxy_authorize name.
        #[arg(long, global = true, default_value = "subscriber")]
        table: String,
    },
}

#[derive(Subcommand)]
enum Op {
    /// Adds (or replaces) a user.
    Add { user: String, password: String },
    /// Removes a user.
    Rm { user: String },
    /// Lists the users.
    List,
}

fn main() {
    let cli = Cli::parse();
    let What::Subscriber {
        op,
        db,
        config,
        table,
    } = cli.what;
    let result = subscriber::db_url(db.as_deref(), config.as_deref()).and_then(|url| {
        let cmd = match &op {
            Op::Add { user, password } => Command::Add { user, password },
            Op::Rm { user } => Command::Remove { user },
            Op::List => Command::List,
        };
        subscriber::run(&url, &table, cmd)
    });
    match result {
        Ok(out) if out.is_empty() => {}
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("rserctl: {e}");
            std::process::exit(1);
        }
    }
}

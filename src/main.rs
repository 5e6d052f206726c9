//! The `rser` binary.

use std::process::ExitCode;

use clap::Parser;

/// rser: a SIP router scripted in SER's routing language.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Configuration file (SER's ser.cfg language).
    #[arg(
        short = 'f',
        long = "config",
        value_name = "FILE",
        default_value = "ser.cfg"
    )]
    config: String,
    /// Check the configuration and exit.
    #[arg(short = 'c', long = "check")]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let what = if cli.check {
        "checking a configuration"
    } else {
        "running a configuration"
    };
    log::error!(
        "{}: {what} needs the routing-language compiler and the server, which are \
         not built yet; this binary only carries the SIP message layer (see README.md)",
        cli.config
    );
    ExitCode::from(2)
}

//! The `rser` binary.

use std::process::ExitCode;

use clap::Parser;

use rser::cfg;

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
    /// Check the configuration and exit: 0 when it is valid, else one
    /// `FILE:LINE:COL: error: ...` line per problem on stderr.
    #[arg(short = 'c', long = "check")]
    check: bool,
    /// With -c: print the compiled program, one instruction a line.
    #[arg(long = "dump", requires = "check")]
    dump: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let src = match std::fs::read_to_string(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: error: cannot read the configuration: {e}", cli.config);
            return ExitCode::FAILURE;
        }
    };
    let config = match cfg::load(&src) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}:{e}", cli.config);
            }
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        if cli.dump {
            print!("{}", config.program.dump());
        }
        return ExitCode::SUCCESS;
    }
    log::error!(
        "{}: the configuration is valid, but the server that runs it is not built yet \
         (issue 4); use -c to check a configuration",
        cli.config
    );
    ExitCode::from(2)
}

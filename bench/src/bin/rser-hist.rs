//! rser-hist: latency percentiles of several runs side by side, and
//! optionally their percentile distributions on one chart.
//!
//! Inputs: rser-bench's `.hgrm` and `.json` outputs and sipp's
//! `-trace_rtt` `.csv` files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rser_bench::hist::{self, plot};

#[derive(Parser)]
#[command(
    name = "rser-hist",
    about = "Compare latency distributions (.hgrm, .json, sipp _rtt.csv)"
)]
struct Args {
    /// Input files: HdrHistogram percentile text (.hgrm), rser-bench
    /// reports (.json) or sipp -trace_rtt output (.csv).
    #[arg(required = true, value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Also draw the percentile distributions into this file (.svg or .png).
    #[arg(long, value_name = "OUT.svg|OUT.png")]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rser-hist: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    // A bad plot target (type, or no font for PNG) is found before the
    // inputs are read, not after the table has been printed.
    if let Some(out) = &args.plot {
        plot::Format::for_path(out)?;
    }
    let mut series = Vec::new();
    for input in &args.inputs {
        series.extend(hist::load(input)?);
    }
    print!("{}", hist::table(&series));
    if let Some(out) = &args.plot {
        plot::draw(&series, out)?;
    }
    Ok(())
}

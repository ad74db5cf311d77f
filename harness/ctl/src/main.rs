//! `bdsnapctl`: the command-line tool for the bdsnap module.

use anyhow::Result;
use bdsnapctl::Control;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "bdsnapctl",
    version,
    about = "Control the bdsnap snapshot and CBT module"
)]
struct Cli {
    /// The control device.
    #[arg(long, global = true, default_value_os_t = Control::default_path())]
    device: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the module's version (from the running module, not this tool).
    Version,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let ctl = Control::open(&cli.device)?;
    match cli.command {
        Cmd::Version => {
            let v = ctl.version()?;
            if cli.json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{}.{}.{}", v.major, v.minor, v.patch);
            }
        }
    }
    Ok(())
}

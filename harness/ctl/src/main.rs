//! `bdsnapctl`: the command-line tool for the bdsnap module.

use anyhow::{bail, Context as _, Result};
use bdsnapctl::format::{parse_range, parse_range_file, MapJson};
use bdsnapctl::{BlockDevice, Control};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "bdsnapctl",
    version,
    about = "Control the bdsnap snapshot and CBT module"
)]
struct Cli {
    /// The control device.
    #[arg(long, global = true, default_value_os_t = Control::default_path())]
    ctl: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the module's version (from the running module, not this tool).
    Version,
    /// Start, stop and list change tracking of block devices.
    #[command(subcommand)]
    Tracker(TrackerCmd),
    /// Changed-block tracking maps.
    #[command(subcommand)]
    Cbt(CbtCmd),
}

#[derive(Subcommand, Debug)]
enum TrackerCmd {
    /// Start tracking DEVICE (a block device path or MAJ:MIN).
    Attach { device: String },
    /// Stop tracking DEVICE.
    Detach { device: String },
    /// List tracked devices as MAJ:MIN.
    List,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum MapFormat {
    Json,
    Raw,
}

#[derive(Subcommand, Debug)]
enum CbtCmd {
    /// Block size, block count, device size, generation UUID, current generation, state.
    Info { device: String },
    /// Copy the map (one generation byte per block).
    Read {
        device: String,
        /// The live map instead of the read map (stable since the last snapshot).
        #[arg(long)]
        live: bool,
        #[arg(long, value_enum, default_value_t = MapFormat::Json)]
        format: MapFormat,
        /// Write to FILE instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Mark sector ranges as written in the current generation.
    MarkDirty {
        device: String,
        /// SECTOR:COUNT in 512-byte sectors (repeatable).
        #[arg(long = "range", value_parser = parse_range_arg)]
        ranges: Vec<(u64, u64)>,
        /// A file with one SECTOR:COUNT per line (# comments allowed).
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

fn parse_range_arg(s: &str) -> Result<(u64, u64), String> {
    parse_range(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: every error's text already carries its cause.
            eprintln!("bdsnapctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The device a command is about, resolved before the control device is opened, so a wrong
/// path is reported as such even when the module is not loaded.
fn device_of(cmd: &Cmd) -> Result<Option<BlockDevice>> {
    let spec = match cmd {
        Cmd::Tracker(TrackerCmd::Attach { device } | TrackerCmd::Detach { device })
        | Cmd::Cbt(
            CbtCmd::Info { device }
            | CbtCmd::Read { device, .. }
            | CbtCmd::MarkDirty { device, .. },
        ) => device,
        _ => return Ok(None),
    };
    Ok(Some(BlockDevice::resolve(spec)?))
}

fn run(cli: Cli) -> Result<()> {
    let dev = device_of(&cli.command)?;
    let dev = || dev.as_ref().context("internal: command without a device");
    let ctl = Control::open(&cli.ctl)?;
    match cli.command {
        Cmd::Version => {
            let v = ctl.version()?;
            if cli.json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{}.{}.{}", v.major, v.minor, v.patch);
            }
        }
        Cmd::Tracker(TrackerCmd::Attach { .. }) => ctl.tracker_attach(dev()?)?,
        Cmd::Tracker(TrackerCmd::Detach { .. }) => ctl.tracker_detach(dev()?)?,
        Cmd::Tracker(TrackerCmd::List) => {
            let list = ctl.tracker_list()?;
            if cli.json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for d in list {
                    println!("{d}");
                }
            }
        }
        Cmd::Cbt(CbtCmd::Info { .. }) => {
            let info = ctl.cbt_info(dev()?)?;
            if cli.json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!("block_size: {}", info.block_size);
                println!("block_count: {}", info.block_count);
                println!("device_sectors: {}", info.device_sectors);
                println!("generation_id: {}", info.generation_id);
                println!("snap_number: {}", info.snap_number);
                println!("state: {}", info.state_flags.join(","));
            }
        }
        Cmd::Cbt(CbtCmd::Read {
            live,
            format,
            output,
            ..
        }) => {
            let (info, map) = ctl.cbt_read_all(dev()?, live)?;
            let bytes = match format {
                MapFormat::Raw => map,
                MapFormat::Json => {
                    let mut s = serde_json::to_vec(&MapJson::new(&info, &map, live))?;
                    s.push(b'\n');
                    s
                }
            };
            match output {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().lock().write_all(&bytes)?,
            }
        }
        Cmd::Cbt(CbtCmd::MarkDirty {
            mut ranges, from, ..
        }) => {
            if let Some(path) = from {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                ranges.extend(
                    parse_range_file(&text).with_context(|| format!("{}", path.display()))?,
                );
            }
            if ranges.is_empty() {
                bail!("no ranges: give --range SECTOR:COUNT or --from FILE");
            }
            ctl.cbt_mark_dirty(dev()?, &ranges)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bdsnapctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_documented_commands_parse() {
        let c = parse(&[
            "cbt", "read", "/dev/vdb", "--live", "--format", "raw", "-o", "m",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Cmd::Cbt(CbtCmd::Read {
                live: true,
                format: MapFormat::Raw,
                ..
            })
        ));
        let c = parse(&[
            "cbt",
            "mark-dirty",
            "253:0",
            "--range",
            "0:8",
            "--range",
            "16:1",
        ])
        .unwrap();
        let Cmd::Cbt(CbtCmd::MarkDirty { ranges, .. }) = c.command else {
            panic!()
        };
        assert_eq!(ranges, vec![(0, 8), (16, 1)]);
        let c = parse(&["tracker", "list", "--json"]).unwrap();
        assert!(c.json);
        assert_eq!(c.ctl, PathBuf::from("/dev/bdsnap-ctl"));
        assert!(parse(&["--ctl", "/tmp/x", "version"]).is_ok());
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["tracker", "attach"]).is_err(), "device is required");
        assert!(parse(&["cbt", "read", "/dev/vdb", "--format", "xml"]).is_err());
        let e = parse(&["cbt", "mark-dirty", "/dev/vdb", "--range", "5"]).unwrap_err();
        assert!(e.to_string().contains("expected SECTOR:COUNT"), "{e}");
        assert!(parse(&["cbt", "mark-dirty", "/dev/vdb", "--range", "5:0"]).is_err());
        assert!(parse(&["tracker", "frobnicate", "x"]).is_err());
    }
}

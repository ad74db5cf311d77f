//! `bdsnapctl`: the command-line tool for the bdsnap module.

use anyhow::{bail, Context as _, Result};
use bdsnapctl::backup;
use bdsnapctl::format::{parse_range, parse_range_file, parse_size, MapJson};
use bdsnapctl::{BlockDevice, Control};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use snapshot_cli::SnapshotCmd;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "cli/snapshot.rs"]
mod snapshot_cli;

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
    /// Snapshots of tracked devices: create, add devices, take, inspect, wait for events,
    /// destroy.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Copy a device's snapshot image to a file: in full, or only the blocks CBT says changed
    /// since the backup a state file describes.
    Backup(BackupCmd),
}

#[derive(Args, Debug)]
struct BackupCmd {
    /// A taken snapshot holding DEVICE.
    #[arg(long)]
    snapshot: u64,
    /// The original device (path or MAJ:MIN); its image is copied.
    #[arg(long)]
    device: String,
    /// The backup file (created for a full backup, updated in place by an incremental one).
    #[arg(long)]
    output: PathBuf,
    /// JSON state: read by --incremental, written by every backup.
    #[arg(long)]
    state: PathBuf,
    /// Copy only the blocks changed since the backup STATE describes (a full backup when that
    /// is not safe, saying why).
    #[arg(long)]
    incremental: bool,
}

#[derive(Subcommand, Debug)]
enum TrackerCmd {
    /// Start tracking DEVICE (a block device path or MAJ:MIN).
    Attach {
        device: String,
        /// Attach the filter only, without a CBT map (measures the filter's own cost).
        #[arg(long)]
        filter_only: bool,
    },
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

pub(crate) fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        // The command said why on stderr (e.g. an expected event did not come).
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // One line: every error's text already carries its cause.
            eprintln!("bdsnapctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The devices a command is about, resolved before the control device is opened, so a wrong
/// path is reported as such even when the module is not loaded.
fn devices_of(cmd: &Cmd) -> Result<Vec<BlockDevice>> {
    let specs: Vec<&String> = match cmd {
        Cmd::Tracker(TrackerCmd::Attach { device, .. } | TrackerCmd::Detach { device })
        | Cmd::Cbt(
            CbtCmd::Info { device }
            | CbtCmd::Read { device, .. }
            | CbtCmd::MarkDirty { device, .. },
        )
        | Cmd::Snapshot(SnapshotCmd::Image { device, .. })
        | Cmd::Backup(BackupCmd { device, .. }) => vec![device],
        Cmd::Snapshot(SnapshotCmd::Add { devices, .. }) => devices.iter().collect(),
        _ => vec![],
    };
    Ok(specs
        .into_iter()
        .map(|s| BlockDevice::resolve(s))
        .collect::<Result<_, _>>()?)
}

pub(crate) fn print_json(v: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<bool> {
    let devs = devices_of(&cli.command)?;
    let dev = || devs.first().context("internal: command without a device");
    // Like the devices: a missing or malformed state file is reported before the module is.
    let previous = match &cli.command {
        Cmd::Backup(b) if b.incremental => Some(backup::BackupState::load(&b.state)?),
        _ => None,
    };
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
        Cmd::Tracker(TrackerCmd::Attach { filter_only, .. }) => {
            ctl.tracker_attach(dev()?, filter_only)?
        }
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
        Cmd::Snapshot(cmd) => return snapshot_cli::run(&ctl, cmd, &devs, cli.json),
        Cmd::Backup(b) => {
            let report = backup::run(
                &ctl,
                &backup::BackupArgs {
                    snapshot: b.snapshot,
                    device: dev()?,
                    output: &b.output,
                    state: &b.state,
                    previous,
                },
            )?;
            if cli.json {
                print_json(&report)?;
            } else {
                print_backup(&report);
            }
        }
    }
    Ok(true)
}

fn print_backup(r: &backup::Report) {
    println!("mode: {}", r.mode.name());
    if let Some(reason) = &r.reason {
        println!("reason: {reason}");
    }
    println!("bytes_copied: {}", r.bytes_copied);
    println!("blocks_copied: {}", r.blocks_copied);
    println!("block_size: {}", r.block_size);
    println!("image_bytes: {}", r.image_bytes);
    println!("elapsed_ms: {:.3}", r.elapsed_ms);
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
    fn snapshot_commands_parse() {
        let c = parse(&[
            "snapshot",
            "create",
            "--storage",
            "/tmp/diff",
            "--bytes",
            "64M",
            "--limit",
            "1G",
            "--grow-step",
            "16M",
            "--low-space",
            "8M",
        ])
        .unwrap();
        let Cmd::Snapshot(SnapshotCmd::Create {
            storage,
            bytes,
            limit,
            grow_step,
            low_space,
        }) = c.command
        else {
            panic!()
        };
        assert_eq!(storage, PathBuf::from("/tmp/diff"));
        assert_eq!(
            (bytes, limit, grow_step, low_space),
            (64 << 20, 1 << 30, 16 << 20, 8 << 20)
        );
        let c = parse(&["snapshot", "create", "--storage", "/dev/vdc"]).unwrap();
        assert!(matches!(
            c.command,
            Cmd::Snapshot(SnapshotCmd::Create {
                bytes: 0,
                limit: 0,
                ..
            })
        ));
        let c = parse(&["snapshot", "add", "1", "/dev/vdb", "253:32"]).unwrap();
        let Cmd::Snapshot(SnapshotCmd::Add { id: 1, devices }) = c.command else {
            panic!()
        };
        assert_eq!(devices, vec!["/dev/vdb", "253:32"]);
        assert!(matches!(
            parse(&["snapshot", "take", "2", "--no-freeze"])
                .unwrap()
                .command,
            Cmd::Snapshot(SnapshotCmd::Take {
                id: 2,
                no_freeze: true
            })
        ));
        let c = parse(&[
            "--json",
            "snapshot",
            "wait-event",
            "3",
            "--expect",
            "low-space",
        ])
        .unwrap();
        assert!(c.json);
        assert!(matches!(
            c.command,
            Cmd::Snapshot(SnapshotCmd::WaitEvent {
                id: 3,
                timeout_ms: 10_000,
                expect: Some(snapshot_cli::ExpectCode::LowSpace)
            })
        ));
        for args in [
            &["snapshot", "destroy", "3"][..],
            &["snapshot", "info", "3"],
            &["snapshot", "list"],
            &[
                "snapshot",
                "append-storage",
                "3",
                "--storage",
                "/tmp/d2",
                "--bytes",
                "1G",
            ],
            &["snapshot", "wait-event", "3", "--timeout-ms", "0"],
            &["snapshot", "image", "3", "/dev/vdb"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn backup_parses() {
        let c = parse(&[
            "backup",
            "--snapshot",
            "1",
            "--device",
            "/dev/vdb",
            "--output",
            "/b/vdb.img",
            "--state",
            "/b/vdb.state",
            "--incremental",
        ])
        .unwrap();
        let Cmd::Backup(b) = c.command else { panic!() };
        assert_eq!((b.snapshot, b.incremental), (1, true));
        assert!(parse(&[
            "backup",
            "--snapshot",
            "1",
            "--device",
            "x",
            "--output",
            "o"
        ])
        .is_err());
    }

    #[test]
    fn bad_snapshot_arguments_are_refused() {
        assert!(
            parse(&["snapshot", "create"]).is_err(),
            "--storage is required"
        );
        let e = parse(&["snapshot", "create", "--storage", "d", "--bytes", "5X"]).unwrap_err();
        assert!(e.to_string().contains("expected a byte count"), "{e}");
        assert!(
            parse(&["snapshot", "add", "1"]).is_err(),
            "a device is required"
        );
        assert!(parse(&["snapshot", "take", "x"]).is_err());
        assert!(parse(&["snapshot", "wait-event", "1", "--expect", "none"]).is_err());
        assert!(parse(&["snapshot", "wait-event", "1", "--timeout-ms", "-1"]).is_err());
    }

    #[test]
    fn devices_are_resolved_before_the_module_is_asked() {
        let c = parse(&["snapshot", "add", "1", "253:0", "/nonexistent/vdz"]).unwrap();
        let e = devices_of(&c.command).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/vdz: "), "{e}");
        let c = parse(&["snapshot", "add", "1", "253:0", "253:16"]).unwrap();
        assert_eq!(devices_of(&c.command).unwrap().len(), 2);
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

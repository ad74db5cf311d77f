//! `bdsnap-testio`: the guest-side test tool of the scenarios.
//!
//! - `write-random`: reproducible writes, discards and zero-outs, logged as JSON lines;
//! - `cbt-verify`: the live CBT map against such a log (misses fail, over-reporting is bounded);
//! - `fuzz-ioctl`: malformed ioctls to the control device.
//!
//! Each prints one JSON summary on stdout and exits non-zero when its check failed.

use anyhow::{Context as _, Result};
use bdsnapctl::testio::{extent, fuzz, verify, write};
use bdsnapctl::{BlockDevice, Control};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "bdsnap-testio", version, about = "bdsnap guest test tool")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a reproducible random set of extents (page cache, O_DIRECT, discard, zero-out)
    /// to DEVICE and append each completed one to the log.
    WriteRandom {
        device: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        count: u64,
        /// JSON-lines log of the extents (appended to).
        #[arg(long)]
        log: PathBuf,
        /// Largest extent in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        max_size: u64,
        /// Only use the first BYTES of the device.
        #[arg(long)]
        span: Option<u64>,
    },
    /// Check the live CBT map of DEVICE (tracked) against a write-random log.
    CbtVerify {
        device: String,
        #[arg(long)]
        log: PathBuf,
        /// Generation every written block must carry.
        #[arg(long, conflicts_with = "current")]
        expect_gen: Option<u8>,
        /// The device's current generation (the default).
        #[arg(long)]
        current: bool,
        /// Largest acceptable over-reported/touched ratio.
        #[arg(long, default_value_t = 0.0)]
        max_over_ratio: f64,
        /// Start of the logged device inside the tracked one, in bytes (negative: the log is
        /// of the whole disk and DEVICE a partition starting that far in).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        partition_offset: i64,
        #[arg(long, default_value_os_t = Control::default_path())]
        ctl: PathBuf,
    },
    /// Send malformed ioctls to the control device; every one must be refused.
    FuzzIoctl {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The control device.
        #[arg(long, default_value_os_t = Control::default_path())]
        device: PathBuf,
        /// A tracked device, so calls reach the per-device checks.
        #[arg(long)]
        tracked: Option<String>,
        /// Every call (well-formed ones too) must fail with EPERM.
        #[arg(long)]
        expect_eperm: bool,
        /// Open the control device, then drop CAP_SYS_ADMIN before sending (implies
        /// --expect-eperm).
        #[arg(long)]
        drop_caps: bool,
    },
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Cmd::WriteRandom {
            device,
            seed,
            count,
            log,
            max_size,
            span,
        } => {
            let s = write::run(&write::WriteArgs {
                device: &device,
                log: &log,
                seed,
                count,
                max_size,
                span,
            })?;
            print_json(&s)?;
            Ok(true)
        }
        Cmd::CbtVerify {
            device,
            log,
            expect_gen,
            current: _,
            max_over_ratio,
            partition_offset,
            ctl,
        } => {
            let extents = extent::read_log(&log)?;
            let dev = BlockDevice::resolve(&device)?;
            let ctl = Control::open(&ctl)?;
            let opts = verify::Options {
                expect: expect_gen.map_or(verify::Expect::Current, verify::Expect::Generation),
                max_over_ratio,
                partition_offset,
            };
            let src = verify::LiveCbt {
                ctl: &ctl,
                dev: &dev,
            };
            let (summary, misses) = verify::verify_source(&src, &extents, &opts)
                .with_context(|| format!("verifying {device}"))?;
            for m in &misses {
                eprintln!(
                    "MISS block {} holds {} (expected {}), written by {} {}+{}",
                    m.block,
                    m.value,
                    summary.expected_generation,
                    m.extent.kind.name(),
                    m.extent.offset,
                    m.extent.length
                );
            }
            if summary.over_ratio > max_over_ratio {
                eprintln!(
                    "OVER {} blocks marked but not written ({} touched, ratio {} > {})",
                    summary.over, summary.touched, summary.over_ratio, max_over_ratio
                );
            }
            print_json(&summary)?;
            Ok(summary.ok)
        }
        Cmd::FuzzIoctl {
            count,
            seed,
            device,
            tracked,
            expect_eperm,
            drop_caps,
        } => {
            let tracked = tracked.as_deref().map(BlockDevice::resolve).transpose()?;
            let s = fuzz::run(&fuzz::FuzzArgs {
                ctl: device,
                count,
                seed,
                tracked,
                expect_eperm: expect_eperm || drop_caps,
                drop_caps,
            })?;
            for f in &s.failure_examples {
                eprintln!(
                    "FAIL [{}] {} (cmd {}): {}",
                    f.category, f.what, f.cmd, f.result
                );
            }
            print_json(&s)?;
            Ok(s.ok)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bdsnap-testio: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bdsnap-testio").chain(args.iter().copied()))
    }

    #[test]
    fn documented_invocations_parse() {
        let c = parse(&[
            "write-random",
            "/dev/vdb",
            "--seed",
            "3",
            "--count",
            "100",
            "--log",
            "/tmp/l",
            "--max-size",
            "65536",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Cmd::WriteRandom {
                seed: 3,
                count: 100,
                max_size: 65536,
                ..
            }
        ));
        let c = parse(&[
            "cbt-verify",
            "/dev/vdb",
            "--log",
            "l",
            "--partition-offset",
            "-1048576",
            "--max-over-ratio",
            "0.5",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Cmd::CbtVerify {
                partition_offset: -1048576,
                ..
            }
        ));
        let c = parse(&["fuzz-ioctl", "--count", "10", "--drop-caps"]).unwrap();
        assert!(matches!(
            c.command,
            Cmd::FuzzIoctl {
                drop_caps: true,
                seed: 1,
                ..
            }
        ));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["write-random", "/dev/vdb", "--count", "1", "--log", "l"]).is_err());
        assert!(parse(&[
            "cbt-verify",
            "/dev/vdb",
            "--log",
            "l",
            "--expect-gen",
            "256"
        ])
        .is_err());
        assert!(parse(&[
            "cbt-verify",
            "x",
            "--log",
            "l",
            "--expect-gen",
            "1",
            "--current"
        ])
        .is_err());
        assert!(parse(&["fuzz-ioctl"]).is_err(), "--count is required");
    }
}

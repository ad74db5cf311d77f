//! `bdsnap-testio`: the guest-side test tool of the scenarios.
//!
//! - `write-random`: reproducible writes, discards and zero-outs, logged as JSON lines;
//! - `cbt-verify`: the live CBT map against such a log (misses fail, over-reporting is bounded);
//! - `fuzz-ioctl`: malformed ioctls to the control device;
//! - `pattern-write`: self-describing blocks written under load while a take command runs,
//!   with a log of which writes a snapshot may show;
//! - `pattern-verify`: a file as the snapshot shows it, checked block by block against that log;
//! - `cbt-read-mmap`: one CBT_READ into a shared file mapping not faulted in yet;
//! - `hog`: anonymous memory, every page written, held until a time passes or SIGTERM;
//! - `nowait-write`: O_DIRECT RWF_NOWAIT writes, EAGAIN counted and the write issued again.
//!
//! Each prints one JSON summary on stdout and exits non-zero when its check failed.

use anyhow::{Context as _, Result};
use bdsnapctl::format::parse_size;
use bdsnapctl::testio::{
    cbt_mmap, extent, fuzz, hog, nowait, pattern, pattern_write, verify, write,
};
use bdsnapctl::{BlockDevice, Control};
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    /// Overwrite random 4 KiB blocks of pattern files with O_DIRECT from several threads, run
    /// the take command meanwhile, and log which writes a snapshot may show.
    PatternWrite {
        /// A pattern file (repeatable; its position is the tag written into its blocks).
        #[arg(long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Bytes per file, a multiple of 4096 (K, M, G suffixes).
        #[arg(long, value_parser = parse_size_arg)]
        size: u64,
        /// Writer threads in all; each goes round-robin over the files.
        #[arg(long, default_value_t = 4)]
        threads: u32,
        /// How long the writers run in all (on until a write after the take has completed).
        #[arg(long)]
        seconds: f64,
        /// When to run the take command, in seconds from the start of the writes.
        #[arg(long)]
        take_after: f64,
        /// Shell command that takes the snapshot (`sh -c`); its stdout goes to our stderr.
        #[arg(long)]
        take_cmd: String,
        /// The JSON log pattern-verify reads.
        #[arg(long)]
        log: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write every block (seq 0) and fsync before the run, so that the run's writes are
        /// in-place overwrites. Without it the files are truncated: blocks start as zeros.
        #[arg(long)]
        prefill: bool,
    },
    /// Check every block of PATH (a pattern file as the snapshot shows it) against the log.
    PatternVerify {
        #[arg(long)]
        log: PathBuf,
        /// Which --file of pattern-write PATH is.
        #[arg(long)]
        file_index: usize,
        #[arg(long)]
        path: PathBuf,
    },
    /// One CBT_READ of DEVICE's read map (its first MiB if longer) into a MAP_SHARED mapping
    /// of FILE that is not faulted in yet, so the kernel's copy to user space takes the page
    /// faults; prints how long the call took.
    CbtReadMmap {
        device: String,
        /// An existing file at least as long as the bytes read; opened read-write.
        #[arg(long)]
        file: PathBuf,
        /// Shell command run once FILE is mapped, before the call: e.g. `fsfreeze -f MNT` (an
        /// open for writing would wait on a frozen filesystem, so freeze after it).
        #[arg(long, value_name = "CMD")]
        before_read: Option<String>,
        #[arg(long, default_value_os_t = Control::default_path())]
        ctl: PathBuf,
    },
    /// Allocate MIB MiB of anonymous memory, write every page, print how long that took, then
    /// hold it for --hold-secs (default: until SIGTERM or SIGINT, which end it with exit 0).
    Hog {
        #[arg(long)]
        mib: u64,
        #[arg(long)]
        hold_secs: Option<u64>,
    },
    /// O_DIRECT pwritev2(RWF_NOWAIT) of COUNT random aligned blocks of DEVICE; EAGAIN is
    /// counted and the block written again with a plain pwrite. Fails only on I/O errors.
    NowaitWrite {
        device: PathBuf,
        #[arg(long)]
        count: u64,
        /// Bytes per write, a multiple of the logical block size (K, M suffixes).
        #[arg(long, value_parser = parse_size_arg)]
        bs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the blocks start, in bytes.
        #[arg(long, value_parser = parse_size_arg, default_value = "0")]
        offset: u64,
        /// Bytes from --offset the writes may use (default: to the end of the device).
        #[arg(long, value_parser = parse_size_arg)]
        span: Option<u64>,
        /// JSON-lines log of the writes, as write-random keeps it (appended to).
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
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
        Cmd::PatternWrite {
            files,
            size,
            threads,
            seconds,
            take_after,
            take_cmd,
            log,
            seed,
            prefill,
        } => {
            let s = pattern_write::run(&pattern_write::WriteArgs {
                files: &files,
                size,
                threads,
                seconds,
                take_after,
                take_cmd: &take_cmd,
                log: &log,
                seed,
                prefill,
            })?;
            if !s.take_ok {
                eprintln!(
                    "FAIL the take command exited with {:?}: {take_cmd}",
                    s.take_status
                );
            }
            if s.writes.after == 0 {
                eprintln!("FAIL no write was issued after the take");
            }
            print_json(&s)?;
            Ok(s.ok)
        }
        Cmd::PatternVerify {
            log,
            file_index,
            path,
        } => {
            let s = pattern::verify(&log, file_index, &path)?;
            let opt = |v: Option<u64>| v.map_or_else(|| "unwritten".to_string(), |v| v.to_string());
            for f in &s.failure_examples {
                eprintln!(
                    "{} block {}: seq {}, allowed {} or window {:?}: {}",
                    f.kind.to_uppercase(),
                    f.block,
                    opt(f.seq),
                    opt(f.before),
                    f.window,
                    f.detail
                );
            }
            for p in &s.problems {
                eprintln!("FAIL {p}");
            }
            print_json(&s)?;
            Ok(s.ok)
        }
        Cmd::CbtReadMmap {
            device,
            file,
            before_read,
            ctl,
        } => {
            let dev = BlockDevice::resolve(&device)?;
            let s = cbt_mmap::run(&cbt_mmap::Args {
                ctl: &ctl,
                device: &dev,
                file: &file,
                before_read: before_read.as_deref(),
            })?;
            if let Some(e) = &s.error {
                eprintln!("FAIL CBT_READ into a mapping of {}: {e}", file.display());
            }
            print_json(&s)?;
            Ok(s.ok)
        }
        Cmd::Hog { mib, hold_secs } => run_hog(mib, hold_secs),
        Cmd::NowaitWrite {
            device,
            count,
            bs,
            seed,
            offset,
            span,
            log,
        } => {
            let s = nowait::run(&nowait::Args {
                device: &device,
                count,
                bs,
                seed,
                offset,
                span,
                log: log.as_deref(),
            })?;
            print_json(&s)?;
            Ok(true)
        }
    }
}

fn run_hog(mib: u64, hold_secs: Option<u64>) -> Result<bool> {
    // Before the memory is touched, so that a SIGTERM meanwhile also ends the hog cleanly.
    hog::block_stop_signals()?;
    let (memory, summary) = hog::allocate(mib, hold_secs)?;
    print_json(&summary)?;
    // Scenarios wait for this line before they go on.
    std::io::stdout().flush()?;
    let held = Instant::now();
    let end = hog::hold(hold_secs.map(Duration::from_secs))?;
    drop(memory);
    let how = match end {
        hog::HoldEnd::Elapsed => "hold time passed".to_string(),
        hog::HoldEnd::Signal(libc::SIGTERM) => "SIGTERM".to_string(),
        hog::HoldEnd::Signal(libc::SIGINT) => "SIGINT".to_string(),
        hog::HoldEnd::Signal(n) => format!("signal {n}"),
    };
    eprintln!(
        "bdsnap-testio: hog: {how} after {:.1} s; {mib} MiB released",
        held.elapsed().as_secs_f64()
    );
    Ok(true)
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
        let pattern_write = |extra: &[&'static str], size: &'static str| {
            let mut args = vec!["pattern-write", "--size", size, "--seconds", "3"];
            args.extend(["--take-after", "1", "--take-cmd", "true", "--log", "l"]);
            args.extend(extra);
            parse(&args)
        };
        assert!(pattern_write(&[], "1M").is_err(), "--file is required");
        assert!(pattern_write(&["--file", "a"], "1Q").is_err(), "bad size");
        assert!(pattern_write(&["--file", "a"], "1M").is_ok());
        assert!(parse(&["pattern-verify", "--log", "l", "--path", "p"]).is_err());
    }

    #[test]
    fn the_0_3_commands_parse() {
        let c = parse(&[
            "cbt-read-mmap",
            "/dev/vdb",
            "--file",
            "/mnt/frozen/buf",
            "--ctl",
            "/tmp/ctl",
        ])
        .unwrap();
        let Cmd::CbtReadMmap {
            device,
            file,
            ctl,
            before_read,
        } = c.command
        else {
            panic!()
        };
        assert_eq!(before_read, None);
        assert_eq!(device, "/dev/vdb");
        assert_eq!(file, PathBuf::from("/mnt/frozen/buf"));
        assert_eq!(ctl, PathBuf::from("/tmp/ctl"));
        let c = parse(&[
            "cbt-read-mmap",
            "253:16",
            "--file",
            "f",
            "--before-read",
            "fsfreeze -f /mnt/a",
        ])
        .unwrap();
        assert!(
            matches!(&c.command, Cmd::CbtReadMmap { before_read: Some(b), .. } if b == "fsfreeze -f /mnt/a")
        );
        assert!(
            matches!(c.command, Cmd::CbtReadMmap { ctl, .. } if ctl == Control::default_path())
        );

        let c = parse(&["hog", "--mib", "256"]).unwrap();
        assert!(matches!(
            c.command,
            Cmd::Hog {
                mib: 256,
                hold_secs: None
            }
        ));
        let c = parse(&["hog", "--mib", "8", "--hold-secs", "30"]).unwrap();
        assert!(matches!(
            c.command,
            Cmd::Hog {
                mib: 8,
                hold_secs: Some(30)
            }
        ));

        let c = parse(&[
            "nowait-write",
            "/dev/vdb",
            "--count",
            "1000",
            "--bs",
            "4K",
            "--offset",
            "1M",
            "--span",
            "64M",
            "--seed",
            "9",
            "--log",
            "/root/nowait.log",
        ])
        .unwrap();
        let Cmd::NowaitWrite {
            count,
            bs,
            seed,
            offset,
            span,
            log,
            ..
        } = c.command
        else {
            panic!()
        };
        assert_eq!(
            (count, bs, seed, offset, span),
            (1000, 4096, 9, 1 << 20, Some(64 << 20))
        );
        assert_eq!(log, Some(PathBuf::from("/root/nowait.log")));
        let c = parse(&["nowait-write", "/dev/vdb", "--count", "1", "--bs", "512"]).unwrap();
        assert!(matches!(
            c.command,
            Cmd::NowaitWrite {
                seed: 1,
                offset: 0,
                span: None,
                log: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_0_3_arguments_are_refused() {
        assert!(parse(&["cbt-read-mmap", "/dev/vdb"]).is_err(), "--file");
        assert!(parse(&["hog"]).is_err(), "--mib");
        assert!(parse(&["hog", "--mib", "-1"]).is_err());
        assert!(parse(&["hog", "--mib", "1", "--hold-secs", "1.5"]).is_err());
        assert!(
            parse(&["nowait-write", "/dev/vdb", "--bs", "4K"]).is_err(),
            "--count"
        );
        assert!(
            parse(&["nowait-write", "/dev/vdb", "--count", "1"]).is_err(),
            "--bs"
        );
        let e = parse(&["nowait-write", "/dev/vdb", "--count", "1", "--bs", "4Q"]).unwrap_err();
        assert!(e.to_string().contains("expected a byte count"), "{e}");
    }

    #[test]
    fn pattern_commands_parse() {
        let c = parse(&[
            "pattern-write",
            "--file",
            "/mnt/a/p",
            "--file",
            "/mnt/b/p",
            "--size",
            "64M",
            "--threads",
            "4",
            "--seconds",
            "10",
            "--take-after",
            "3",
            "--take-cmd",
            "bdsnapctl snapshot take 1",
            "--log",
            "/root/log.json",
            "--prefill",
        ])
        .unwrap();
        let Cmd::PatternWrite {
            files,
            size,
            seed,
            prefill,
            take_after,
            ..
        } = c.command
        else {
            panic!()
        };
        assert_eq!(files.len(), 2);
        assert_eq!((size, seed, prefill, take_after), (64 << 20, 1, true, 3.0));
        let c = parse(&[
            "pattern-verify",
            "--log",
            "l.json",
            "--file-index",
            "1",
            "--path",
            "/mnt/s/p",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Cmd::PatternVerify { file_index: 1, .. }
        ));
    }
}

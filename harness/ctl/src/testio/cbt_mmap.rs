//! `cbt-read-mmap`: one `CBT_READ` call whose buffer is a shared mapping of a file, not faulted
//! in yet, so that the kernel's copy to user space takes the page faults. On a frozen
//! filesystem those faults wait for the thaw: a scenario runs this against a file there while
//! a snapshot is taken, to show that such a reader does not hold up the take (the module copies
//! the read map under its lock, but never across the copy to user space).
//!
//! The file must be opened and mapped before its filesystem is frozen (an open for writing
//! waits for the thaw), so `--before-read` runs a command, typically the freeze, between the
//! mapping and the call.

use super::mem::Mapping;
use crate::{errno, BlockDevice, Control, CtlError, CBT_READ_CHUNK};
use serde::Serialize;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum CbtMmapError {
    #[error(transparent)]
    Ctl(#[from] CtlError),
    #[error("{path}: {what}: {error}")]
    File {
        path: PathBuf,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("{path} is {len} bytes; the map read needs at least {need}")]
    TooShort { path: PathBuf, len: u64, need: u64 },
    #[error("{device}: the CBT map has no blocks")]
    EmptyMap { device: String },
    #[error("before-read command {cmd:?}: {error}")]
    Spawn { cmd: String, error: std::io::Error },
    #[error("before-read command {cmd:?} failed ({status}); no CBT_READ was made")]
    BeforeRead { cmd: String, status: ExitStatus },
}

pub struct Args<'a> {
    pub ctl: &'a Path,
    pub device: &'a BlockDevice,
    pub file: &'a Path,
    /// A shell command run after the mapping and before the call (`sh -c`; its stdout goes to
    /// our stderr); it must succeed.
    pub before_read: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub device: String,
    pub file: PathBuf,
    /// Blocks of the map (CBT_INFO).
    pub block_count: u32,
    /// Bytes asked for in the one call: the whole map, or its first MiB.
    pub bytes: u64,
    /// Whether the map is longer than what was read.
    pub truncated: bool,
    /// Time the ioctl took.
    pub elapsed_ms: f64,
    /// `CLOCK_BOOTTIME` (the clock of the module's events) when the call was made and when it
    /// returned, to place it against a take made by another process.
    pub start_boottime_ns: u64,
    pub end_boottime_ns: u64,
    /// `CLOCK_BOOTTIME` when the tool began and when the file was open and mapped: time spent
    /// before the call (a file system that blocks the open, say) shows as the gap to
    /// `start_boottime_ns`.
    pub began_boottime_ns: u64,
    pub mapped_boottime_ns: u64,
    pub ok: bool,
    /// The errno name when the call failed.
    pub errno: Option<String>,
    /// The whole error message when the call failed.
    pub error: Option<String>,
    /// Non-zero map bytes copied (after a successful call).
    pub blocks_set: Option<u64>,
}

/// Bytes the one call reads: the whole map, at most [`CBT_READ_CHUNK`].
pub fn read_length(block_count: u32) -> usize {
    block_count.min(CBT_READ_CHUNK) as usize
}

/// Now on `CLOCK_BOOTTIME`, in ns.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer, a live local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Runs `cmd` with `sh -c`, its stdout on our stderr so that ours stays one JSON object.
fn run_before_read(cmd: &str) -> Result<(), CbtMmapError> {
    let spawn = |error| CbtMmapError::Spawn {
        cmd: cmd.to_string(),
        error,
    };
    let status = super::run_shell_to_stderr(cmd).map_err(spawn)?;
    if !status.success() {
        return Err(CbtMmapError::BeforeRead {
            cmd: cmd.to_string(),
            status,
        });
    }
    Ok(())
}

pub fn run(a: &Args) -> Result<Summary, CbtMmapError> {
    let began_boottime_ns = boottime_ns();
    let file_err = |what| {
        let path = a.file.to_path_buf();
        move |error| CbtMmapError::File { path, what, error }
    };
    // The file first: a wrong path is reported as such even without the module.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(a.file)
        .map_err(file_err("cannot open read-write"))?;
    let ctl = Control::open(a.ctl)?;
    let info = ctl.cbt_info(a.device)?;
    let len = read_length(info.block_count);
    if len == 0 {
        return Err(CbtMmapError::EmptyMap {
            device: a.device.name.clone(),
        });
    }
    let file_len = file.metadata().map_err(file_err("stat"))?.len();
    if file_len < len as u64 {
        return Err(CbtMmapError::TooShort {
            path: a.file.to_path_buf(),
            len: file_len,
            need: len as u64,
        });
    }
    let mut map = Mapping::file_shared(&file, len).map_err(file_err("mmap MAP_SHARED"))?;
    let mapped_boottime_ns = boottime_ns();
    if let Some(cmd) = a.before_read {
        run_before_read(cmd)?;
    }

    let start_boottime_ns = boottime_ns();
    let started = Instant::now();
    let result = ctl.cbt_read_once(a.device, 0, map.as_mut_slice(), false);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let end_boottime_ns = boottime_ns();

    let (errno, error, blocks_set) = match &result {
        Ok(()) => {
            let set = map.as_slice().iter().filter(|&&b| b != 0).count() as u64;
            (None, None, Some(set))
        }
        Err(e) => (e.errno().map(errno::name), Some(e.to_string()), None),
    };
    Ok(Summary {
        device: a.device.name.clone(),
        file: a.file.to_path_buf(),
        block_count: info.block_count,
        bytes: len as u64,
        truncated: (len as u64) < u64::from(info.block_count),
        elapsed_ms,
        start_boottime_ns,
        end_boottime_ns,
        began_boottime_ns,
        mapped_boottime_ns,
        ok: result.is_ok(),
        errno,
        error,
        blocks_set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_reads_the_whole_map_or_its_first_mib() {
        assert_eq!(read_length(0), 0);
        assert_eq!(read_length(1600), 1600);
        assert_eq!(read_length(1 << 20), 1 << 20);
        assert_eq!(read_length((1 << 20) + 1), 1 << 20);
        assert_eq!(read_length(u32::MAX), 1 << 20);
    }

    #[test]
    fn boottime_moves_forward() {
        let a = boottime_ns();
        let b = boottime_ns();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn a_failed_call_is_reported_with_its_errno() {
        let s = Summary {
            device: "/dev/vdb".into(),
            file: "/mnt/f".into(),
            block_count: 3,
            bytes: 3,
            truncated: false,
            elapsed_ms: 1.5,
            start_boottime_ns: 1,
            end_boottime_ns: 2,
            began_boottime_ns: 0,
            mapped_boottime_ns: 1,
            ok: false,
            errno: Some(errno::name(libc::EFAULT)),
            error: Some("CBT_READ /dev/vdb: EFAULT: bad address".into()),
            blocks_set: None,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["errno"], "EFAULT");
        assert!(v["blocks_set"].is_null());
        assert_eq!(v["bytes"], 3);
    }

    #[test]
    fn the_before_read_command_must_succeed() {
        assert!(run_before_read("true").is_ok());
        let e = run_before_read("exit 3").unwrap_err();
        assert_eq!(
            e.to_string(),
            "before-read command \"exit 3\" failed (exit status: 3); no CBT_READ was made"
        );
    }

    #[test]
    fn messages_name_the_file_and_the_sizes() {
        let e = CbtMmapError::TooShort {
            path: "/mnt/f".into(),
            len: 10,
            need: 4096,
        };
        assert_eq!(
            e.to_string(),
            "/mnt/f is 10 bytes; the map read needs at least 4096"
        );
    }
}

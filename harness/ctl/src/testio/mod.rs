//! The guest test tool `bdsnap-testio`: reproducible writes with a log of what was written
//! ([`write`]), exact verification of the CBT map against that log ([`verify`]), an ioctl
//! fuzzer for the control device ([`fuzz`]), pattern files written under load while a
//! snapshot is taken, checked block by block on the snapshot ([`pattern_write`],
//! [`pattern`]), one CBT read into a faulting file mapping ([`cbt_mmap`]), memory pressure
//! ([`hog`]) and RWF_NOWAIT writes ([`nowait`]). Pure parts (plans, block math, codecs) are
//! unit-tested on the host; the parts that need a kernel are thin.

pub mod blk;
pub mod caps;
pub mod cbt_mmap;
pub mod extent;
pub mod fuzz;
pub mod hog;
pub mod mem;
pub mod nowait;
pub mod pattern;
pub mod pattern_write;
pub mod rng;
pub mod verify;
pub mod write;

use std::os::fd::AsFd;
use std::process::{Command, ExitStatus, Stdio};

/// Runs `cmd` with `sh -c`, its standard output on our standard error (so that our standard
/// output stays one JSON object) and no standard input.
pub(crate) fn run_shell_to_stderr(cmd: &str) -> std::io::Result<ExitStatus> {
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
}

//! Error type shared by every part of the crate.

use std::path::PathBuf;
use std::time::Duration;

use crate::qmp::QmpError;

/// Everything that can go wrong while starting, driving or stopping a guest.
///
/// Variants carry the context a person needs to act on the failure (file paths, the command,
/// the tail of the serial console), because these errors end up in scenario results.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("qemu-img failed to create overlay {overlay}: {stderr}")]
    Overlay { overlay: PathBuf, stderr: String },
    #[error("could not start QEMU ({program}): {detail}")]
    Spawn { program: String, detail: String },
    #[error("QEMU exited before {stage}; console tail:\n{console_tail}")]
    QemuExited { stage: String, console_tail: String },
    #[error(
        "guest did not print BDSNAP-GUEST-READY within {timeout:?}; console tail:\n{console_tail}"
    )]
    BootTimeout {
        timeout: Duration,
        console_tail: String,
    },
    #[error("ssh {context}: {detail}")]
    Ssh { context: String, detail: String },
    #[error("command timed out after {timeout:?} ({ended}): {command}\n--- stdout so far ---\n{stdout}\n--- stderr so far ---\n{stderr}")]
    CommandTimeout {
        command: String,
        timeout: Duration,
        stdout: String,
        stderr: String,
        /// How the command's processes were ended.
        ended: String,
    },
    #[error("invalid environment variable name {0:?}")]
    InvalidEnvName(String),
    #[error("invalid disk name {0:?}: use 1-18 characters from [A-Za-z0-9_-]")]
    InvalidDiskName(String),
    #[error("disk {name} (serial {serial}) did not appear in the guest within {timeout:?}: {last_output}")]
    DiskNotVisible {
        name: String,
        serial: String,
        timeout: Duration,
        last_output: String,
    },
    #[error("QMP: {0}")]
    Qmp(#[from] QmpError),
}

impl VmError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        VmError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn ssh(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        VmError::Ssh {
            context: context.into(),
            detail: err.to_string(),
        }
    }
}

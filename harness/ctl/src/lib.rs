//! bdsnapctl: safe bindings to the bdsnap control device and the commands built on them.

pub mod uapi;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot open {path}: {source} (is the bdsnap module loaded?)")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{command} failed: {source}")]
    Ioctl {
        command: &'static str,
        source: std::io::Error,
    },
}

/// An open control device.
pub struct Control {
    file: File,
}

/// Module and interface version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
    pub flags: u32,
}

impl Control {
    pub fn default_path() -> PathBuf {
        Path::new("/dev").join(uapi::BDSNAP_CTL_NAME)
    }

    pub fn open(path: &Path) -> Result<Self, CtlError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| CtlError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self { file })
    }

    /// Issues `request` with `arg` as its in/out structure.
    fn ioctl<T>(&self, command: &'static str, request: u32, arg: &mut T) -> Result<(), CtlError> {
        // SAFETY: `arg` is a live, exclusively borrowed #[repr(C)] struct whose size is encoded
        // in `request`; the kernel reads and writes at most that many bytes.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                request as libc::c_ulong,
                arg as *mut T as *mut libc::c_void,
            )
        };
        if rc < 0 {
            return Err(CtlError::Ioctl {
                command,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    pub fn version(&self) -> Result<Version, CtlError> {
        let mut v = uapi::BdsnapVersion::default();
        self.ioctl("BDSNAP_IOCTL_VERSION", uapi::BDSNAP_IOCTL_VERSION, &mut v)?;
        Ok(Version {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            flags: v.flags,
        })
    }
}

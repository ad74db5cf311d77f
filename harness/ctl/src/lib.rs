//! bdsnapctl: safe bindings to the bdsnap control device (`/dev/bdsnap-ctl`) and the guest
//! test tools built on them.
//!
//! Every ioctl goes through [`Control`]; its errors carry the command, the device (or snapshot)
//! and the errno name, so a scenario log says `TRACKER_ATTACH /dev/vdb: EBUSY: already tracked`.
//! The snapshot commands live in [`snapshot`], the backup helper in [`backup`].

pub mod backup;
pub mod device;
pub mod errno;
pub mod format;
pub mod snapshot;
pub mod testio;
pub mod uapi;

pub use device::{BlockDevice, DeviceError};
pub use snapshot::{CreateParams, Event, EventCode, SnapshotInfo, SnapshotState, TakeTimes};

use serde::Serialize;
use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use uapi::BdsnapDevId;

/// Bytes of map copied per `CBT_READ` call: bounded so a huge map never needs one huge kernel
/// copy, big enough that a 1 TiB device at 64 KiB blocks (16 MiB map) takes 16 calls.
pub const CBT_READ_CHUNK: u32 = 1 << 20;

/// Times one `CBT_READ` piece is tried again after `EAGAIN` (a take switched the read map
/// during the call) before the error is returned.
pub const CBT_READ_EAGAIN_RETRIES: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot open {path}: {error} (is the bdsnap module loaded?)")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An ioctl failed; `target` is the device it was about (empty for VERSION and LIST).
    #[error("{command}{}{target}: {}: {}", if target.is_empty() { "" } else { " " }, errno::name(*errno), errno::meaning(command, *errno))]
    Ioctl {
        command: &'static str,
        target: String,
        errno: i32,
    },
    /// A call that failed the same way every time it was tried.
    #[error("{error} (given up after {attempts} attempts)")]
    GaveUp {
        attempts: u32,
        #[source]
        error: Box<CtlError>,
    },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{command} {target}: {what}")]
    Invalid {
        command: &'static str,
        target: String,
        what: String,
    },
}

impl CtlError {
    /// The errno of a failed ioctl, for callers that react to one (e.g. EBUSY on attach).
    pub fn errno(&self) -> Option<i32> {
        match self {
            CtlError::Ioctl { errno, .. } => Some(*errno),
            CtlError::Open { error, .. } => error.raw_os_error(),
            CtlError::GaveUp { error, .. } => error.errno(),
            _ => None,
        }
    }
}

/// Module and interface version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
    pub flags: u32,
}

/// A generation UUID, shown in the usual 8-4-4-4-12 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenerationId(pub [u8; 16]);

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for GenerationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A device as `"MAJ:MIN"` in JSON and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DevNum(pub BdsnapDevId);

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.major, self.0.minor)
    }
}

impl Serialize for DevNum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The answer of CBT_INFO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CbtInfo {
    pub block_size: u32,
    pub block_count: u32,
    pub device_sectors: u64,
    pub generation_id: GenerationId,
    pub snap_number: u8,
    /// Raw `BDSNAP_CBT_*` state bits.
    pub state: u32,
    /// The state bits by name (`"resized"`), and `"0x..."` for bits this tool does not know.
    pub state_flags: Vec<String>,
}

impl CbtInfo {
    fn from_uapi(i: &uapi::BdsnapCbtInfo) -> Self {
        let mut state_flags = Vec::new();
        if i.state & uapi::BDSNAP_CBT_RESIZED != 0 {
            state_flags.push("resized".to_string());
        }
        let unknown = i.state & !uapi::BDSNAP_CBT_RESIZED;
        if unknown != 0 {
            state_flags.push(format!("{unknown:#x}"));
        }
        Self {
            block_size: i.block_size,
            block_count: i.block_count,
            device_sectors: i.device_sectors,
            generation_id: GenerationId(i.generation_id),
            snap_number: i.snap_number,
            state: i.state,
            state_flags,
        }
    }
}

/// Runs `call` until it does not fail with `EAGAIN`, at most `retries` times more than once;
/// the last `EAGAIN` is returned wrapped in [`CtlError::GaveUp`].
fn retry_on_eagain<T>(
    retries: u32,
    mut call: impl FnMut() -> Result<T, CtlError>,
) -> Result<T, CtlError> {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match call() {
            Err(e) if e.errno() == Some(libc::EAGAIN) => {
                if attempts > retries {
                    return Err(CtlError::GaveUp {
                        attempts,
                        error: Box::new(e),
                    });
                }
            }
            other => return other,
        }
    }
}

/// An open control device.
pub struct Control {
    file: File,
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
            .map_err(|error| CtlError::Open {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(Self { file })
    }

    /// The raw descriptor, for the fuzzer (which sends deliberately broken calls).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// Issues `request` with `arg` as its in/out structure.
    fn ioctl<T: uapi::Plain>(
        &self,
        request: u32,
        target: &str,
        arg: &mut T,
    ) -> Result<(), CtlError> {
        // SAFETY: `arg` is a live, exclusively borrowed #[repr(C)] struct whose size is encoded
        // in `request`; the kernel reads and writes at most that many bytes. Any user pointer
        // inside it was set by the caller to a live buffer of the length the struct declares.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                request as libc::c_ulong,
                arg as *mut T as *mut libc::c_void,
            )
        };
        if rc < 0 {
            return Err(CtlError::Ioctl {
                command: uapi::command_name(request).unwrap_or("IOCTL"),
                target: target.to_string(),
                errno: std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            });
        }
        Ok(())
    }

    pub fn version(&self) -> Result<Version, CtlError> {
        let mut v = uapi::BdsnapVersion::default();
        self.ioctl(uapi::BDSNAP_IOCTL_VERSION, "", &mut v)?;
        Ok(Version {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            flags: v.flags,
        })
    }

    /// Start tracking `dev`; with `filter_only`, attach the filter without a CBT map (the
    /// filter's own cost, for benchmarks).
    pub fn tracker_attach(&self, dev: &BlockDevice, filter_only: bool) -> Result<(), CtlError> {
        let mut arg = uapi::BdsnapTrackerCtl::new(dev.id);
        if filter_only {
            arg.flags = uapi::BDSNAP_TRACKER_FILTER_ONLY;
        }
        self.ioctl(uapi::BDSNAP_IOCTL_TRACKER_ATTACH, &dev.name, &mut arg)
    }

    pub fn tracker_detach(&self, dev: &BlockDevice) -> Result<(), CtlError> {
        let mut arg = uapi::BdsnapTrackerCtl::new(dev.id);
        self.ioctl(uapi::BDSNAP_IOCTL_TRACKER_DETACH, &dev.name, &mut arg)
    }

    /// Every tracked device, sorted. Retries when trackers appear between the sizing call and
    /// the copy.
    pub fn tracker_list(&self) -> Result<Vec<DevNum>, CtlError> {
        let mut room = 16u32;
        loop {
            let mut devs = vec![BdsnapDevId::default(); room as usize];
            let mut arg = uapi::BdsnapTrackerList {
                count: room,
                devs: devs.as_mut_ptr() as u64,
                ..Default::default()
            };
            self.ioctl(uapi::BDSNAP_IOCTL_TRACKER_LIST, "", &mut arg)?;
            if arg.count <= room {
                devs.truncate(arg.count as usize);
                let mut out: Vec<DevNum> = devs.into_iter().map(DevNum).collect();
                out.sort();
                return Ok(out);
            }
            room = arg.count.saturating_add(16);
        }
    }

    pub fn cbt_info(&self, dev: &BlockDevice) -> Result<CbtInfo, CtlError> {
        let mut arg = uapi::BdsnapCbtInfo::new(dev.id);
        self.ioctl(uapi::BDSNAP_IOCTL_CBT_INFO, &dev.name, &mut arg)?;
        Ok(CbtInfo::from_uapi(&arg))
    }

    /// Copies `len` map bytes from block `offset` on, in [`CBT_READ_CHUNK`] pieces; `live`
    /// chooses the live map instead of the read map (stable since the last snapshot). A piece
    /// refused with `EAGAIN` (a take switched the read map during the call, so nothing it
    /// copied may be used) is read again, up to [`CBT_READ_EAGAIN_RETRIES`] times.
    pub fn cbt_read(
        &self,
        dev: &BlockDevice,
        offset: u64,
        len: u64,
        live: bool,
    ) -> Result<Vec<u8>, CtlError> {
        let total = usize::try_from(len).map_err(|_| CtlError::Invalid {
            command: "CBT_READ",
            target: dev.name.clone(),
            what: format!("length {len} does not fit in memory"),
        })?;
        let mut map = vec![0u8; total];
        let mut done = 0usize;
        while done < total {
            let chunk = (total - done).min(CBT_READ_CHUNK as usize);
            let mut arg = uapi::BdsnapCbtRead::new(dev.id);
            arg.flags = if live { uapi::BDSNAP_CBT_READ_LIVE } else { 0 };
            arg.offset = offset.saturating_add(done as u64);
            arg.length = chunk as u32;
            arg.buf = map[done..].as_mut_ptr() as u64;
            retry_on_eagain(CBT_READ_EAGAIN_RETRIES, || {
                let mut call = arg;
                self.ioctl(uapi::BDSNAP_IOCTL_CBT_READ, &dev.name, &mut call)
            })?;
            done += chunk;
        }
        Ok(map)
    }

    /// Exactly one `CBT_READ` call of `buf.len()` map bytes from block `offset` into `buf`,
    /// without retrying on `EAGAIN`: for tests that need to know what a single call does (where
    /// the kernel's copy to user space faults, how long it takes).
    pub fn cbt_read_once(
        &self,
        dev: &BlockDevice,
        offset: u64,
        buf: &mut [u8],
        live: bool,
    ) -> Result<(), CtlError> {
        let length = u32::try_from(buf.len()).map_err(|_| CtlError::Invalid {
            command: "CBT_READ",
            target: dev.name.clone(),
            what: format!("{} bytes do not fit in one call", buf.len()),
        })?;
        let mut arg = uapi::BdsnapCbtRead::new(dev.id);
        arg.flags = if live { uapi::BDSNAP_CBT_READ_LIVE } else { 0 };
        arg.offset = offset;
        arg.length = length;
        arg.buf = buf.as_mut_ptr() as u64;
        self.ioctl(uapi::BDSNAP_IOCTL_CBT_READ, &dev.name, &mut arg)
    }

    /// The info and the whole map, read in that order.
    pub fn cbt_read_all(
        &self,
        dev: &BlockDevice,
        live: bool,
    ) -> Result<(CbtInfo, Vec<u8>), CtlError> {
        let info = self.cbt_info(dev)?;
        let map = self.cbt_read(dev, 0, u64::from(info.block_count), live)?;
        Ok((info, map))
    }

    /// Marks `(sector, count)` ranges dirty, in calls of at most `BDSNAP_MARK_DIRTY_MAX`
    /// ranges. A failing call leaves the earlier calls' ranges marked (over-marking is safe
    /// for a backup, missing is not).
    pub fn cbt_mark_dirty(&self, dev: &BlockDevice, ranges: &[(u64, u64)]) -> Result<(), CtlError> {
        let ranges: Vec<uapi::BdsnapSectorRange> = ranges
            .iter()
            .map(|&(sector, count)| uapi::BdsnapSectorRange { sector, count })
            .collect();
        for chunk in ranges.chunks(uapi::BDSNAP_MARK_DIRTY_MAX as usize) {
            let mut arg = uapi::BdsnapCbtMarkDirty::new(dev.id);
            arg.count = chunk.len() as u32;
            arg.ranges = chunk.as_ptr() as u64;
            self.ioctl(uapi::BDSNAP_IOCTL_CBT_MARK_DIRTY, &dev.name, &mut arg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_error_reads_like_the_brief_says() {
        let e = CtlError::Ioctl {
            command: "TRACKER_ATTACH",
            target: "/dev/vdb".into(),
            errno: libc::EBUSY,
        };
        assert_eq!(
            e.to_string(),
            "TRACKER_ATTACH /dev/vdb: EBUSY: already tracked, or its disk or one of its partitions is in a snapshot"
        );
        let e = CtlError::Ioctl {
            command: "VERSION",
            target: String::new(),
            errno: libc::EPERM,
        };
        assert_eq!(e.to_string(), "VERSION: EPERM: CAP_SYS_ADMIN is required");
        assert_eq!(e.errno(), Some(libc::EPERM));
    }

    fn eagain() -> CtlError {
        CtlError::Ioctl {
            command: "CBT_READ",
            target: "/dev/vdb".into(),
            errno: libc::EAGAIN,
        }
    }

    #[test]
    fn eagain_is_retried_a_bounded_number_of_times() {
        // Fails twice, then succeeds: three calls, the value comes back.
        let mut calls = 0;
        let r = retry_on_eagain(8, || {
            calls += 1;
            if calls <= 2 {
                Err(eagain())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);

        // Always EAGAIN: one call and eight retries, then the error, which keeps its errno.
        let mut calls = 0;
        let e = retry_on_eagain(CBT_READ_EAGAIN_RETRIES, || -> Result<(), _> {
            calls += 1;
            Err(eagain())
        })
        .unwrap_err();
        assert_eq!(calls, 9);
        assert_eq!(e.errno(), Some(libc::EAGAIN));
        assert_eq!(
            e.to_string(),
            "CBT_READ /dev/vdb: EAGAIN: a snapshot switched the read map during the call (retry) \
             (given up after 9 attempts)"
        );

        // Any other error is returned at once.
        let mut calls = 0;
        let e = retry_on_eagain(8, || -> Result<(), _> {
            calls += 1;
            Err(CtlError::Ioctl {
                command: "CBT_READ",
                target: String::new(),
                errno: libc::EINVAL,
            })
        })
        .unwrap_err();
        assert_eq!((calls, e.errno()), (1, Some(libc::EINVAL)));
    }

    #[test]
    fn generation_id_is_uuid_text() {
        let id = GenerationId([
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ]);
        assert_eq!(id.to_string(), "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"12345678-9abc-def0-0123-456789abcdef\""
        );
    }

    #[test]
    fn state_flags_are_named() {
        let mut raw = uapi::BdsnapCbtInfo::new(BdsnapDevId::default());
        raw.state = uapi::BDSNAP_CBT_RESIZED | 0x8;
        let info = CbtInfo::from_uapi(&raw);
        assert_eq!(info.state_flags, vec!["resized", "0x8"]);
    }

    #[test]
    fn opening_a_missing_control_device_says_so() {
        let Err(e) = Control::open(Path::new("/nonexistent/bdsnap-ctl")) else {
            panic!("opened a missing device");
        };
        assert!(
            e.to_string().contains("is the bdsnap module loaded?"),
            "{e}"
        );
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }
}

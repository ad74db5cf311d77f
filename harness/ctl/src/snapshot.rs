//! Snapshots: the typed side of the SNAPSHOT_* ioctls (create, add, take, destroy, info, list,
//! append storage, wait for an event) and where a snapshot image appears as a block device.
//!
//! Every method names the snapshot in its errors (`SNAPSHOT_TAKE snapshot 3: EBUSY: ...`), so a
//! scenario log says which call failed on what.

use crate::uapi::{self, BdsnapDevId};
use crate::{errno, BlockDevice, Control, CtlError, DevNum};
use serde::Serialize;
use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `enum bdsnap_snapshot_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotState {
    Created,
    Taken,
    Corrupted,
    /// A state this tool does not know (a newer module).
    Unknown(u32),
}

impl SnapshotState {
    pub fn from_raw(v: u32) -> Self {
        match v {
            uapi::BDSNAP_SNAPSHOT_CREATED => Self::Created,
            uapi::BDSNAP_SNAPSHOT_TAKEN => Self::Taken,
            uapi::BDSNAP_SNAPSHOT_CORRUPTED => Self::Corrupted,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created => f.write_str("created"),
            Self::Taken => f.write_str("taken"),
            Self::Corrupted => f.write_str("corrupted"),
            Self::Unknown(v) => write!(f, "unknown-{v}"),
        }
    }
}

impl Serialize for SnapshotState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `enum bdsnap_event_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCode {
    /// The timeout passed without an event.
    None,
    LowSpace,
    Corrupted,
    DevRemoved,
    StorageGrown,
    Overflow,
    Unknown(u32),
}

impl EventCode {
    pub fn from_raw(v: u32) -> Self {
        match v {
            uapi::BDSNAP_EVENT_NONE => Self::None,
            uapi::BDSNAP_EVENT_LOW_SPACE => Self::LowSpace,
            uapi::BDSNAP_EVENT_CORRUPTED => Self::Corrupted,
            uapi::BDSNAP_EVENT_DEV_REMOVED => Self::DevRemoved,
            uapi::BDSNAP_EVENT_STORAGE_GROWN => Self::StorageGrown,
            uapi::BDSNAP_EVENT_OVERFLOW => Self::Overflow,
            other => Self::Unknown(other),
        }
    }

    /// The name used on the command line and in JSON (`low-space`).
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for EventCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::LowSpace => f.write_str("low-space"),
            Self::Corrupted => f.write_str("corrupted"),
            Self::DevRemoved => f.write_str("dev-removed"),
            Self::StorageGrown => f.write_str("storage-grown"),
            Self::Overflow => f.write_str("overflow"),
            Self::Unknown(v) => write!(f, "unknown-{v}"),
        }
    }
}

impl Serialize for EventCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A positive errno from the module (0: none), shown by name: `"ENOSPC"`, JSON `null` for 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrnoName(pub u32);

impl ErrnoName {
    pub fn is_set(&self) -> bool {
        self.0 != 0
    }
}

impl fmt::Display for ErrnoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        match i32::try_from(self.0) {
            Ok(e) => f.write_str(&errno::name(e)),
            Err(_) => write!(f, "E{}", self.0),
        }
    }
}

impl Serialize for ErrnoName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            s.serialize_none()
        } else {
            s.collect_str(self)
        }
    }
}

/// One device of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotDevInfo {
    pub dev: DevNum,
    /// The image's device number; `None` before TAKE (the module reports 0:0).
    pub image: Option<DevNum>,
    /// `/dev/<name>` of the image, found through sysfs; `None` before TAKE or if not found.
    pub image_path: Option<PathBuf>,
    pub chunk_size: u32,
    pub chunks_copied: u64,
    /// Bytes of kernel memory the device's chunk map uses (limit: the module parameter
    /// `chunk_memory_max_mib`); 0 from a 0.2 module.
    pub chunk_memory: u64,
    /// Copies that ran on the copy reserve because memory was short.
    pub reserve_copies: u64,
    /// Discards completed without reaching the device while the snapshot was taken.
    pub discards_dropped: u64,
    pub error: ErrnoName,
}

impl SnapshotDevInfo {
    fn from_uapi(
        d: &uapi::BdsnapSnapshotDevInfo,
        image_path: impl Fn(DevNum) -> Option<PathBuf>,
    ) -> Self {
        let image = nonzero_dev(d.image);
        Self {
            dev: DevNum(d.dev),
            image,
            image_path: image.and_then(image_path),
            chunk_size: d.chunk_size,
            chunks_copied: d.chunks_copied,
            chunk_memory: d.chunk_memory,
            reserve_copies: d.reserve_copies,
            discards_dropped: d.discards_dropped,
            error: ErrnoName(d.error),
        }
    }
}

/// What a TAKE reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TakeTimes {
    /// Nanoseconds from the first freeze to the last thaw.
    pub take_ns: u64,
    /// Nanoseconds the take then waited for the writes in flight at the switch (0 from a 0.2
    /// module, which does not wait).
    pub wait_ns: u64,
    /// Writes in flight at the switch, all devices together.
    pub writes_waited: u32,
}

impl TakeTimes {
    fn from_uapi(c: &uapi::BdsnapSnapshotCtl) -> Self {
        Self {
            take_ns: c.take_ns,
            wait_ns: c.wait_ns,
            writes_waited: c.writes_waited,
        }
    }
}

/// The answer of SNAPSHOT_INFO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub id: u64,
    pub state: SnapshotState,
    pub error: ErrnoName,
    pub storage_used: u64,
    pub storage_total: u64,
    pub storage_limit: u64,
    pub devices: Vec<SnapshotDevInfo>,
}

impl SnapshotInfo {
    /// The entry of `dev`, if it is in the snapshot.
    pub fn device(&self, dev: BdsnapDevId) -> Option<&SnapshotDevInfo> {
        self.devices.iter().find(|d| d.dev.0 == dev)
    }
}

/// The answer of SNAPSHOT_WAIT_EVENT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub code: EventCode,
    /// Boot-time clock of the event, in ns (0 for `none`).
    pub time_ns: u64,
    /// The device concerned (CORRUPTED, DEV_REMOVED); `None` for 0:0.
    pub dev: Option<DevNum>,
    pub error: ErrnoName,
    pub used: u64,
    pub total: u64,
    pub limit: u64,
}

impl Event {
    fn from_uapi(e: &uapi::BdsnapEvent) -> Self {
        Self {
            code: EventCode::from_raw(e.code),
            time_ns: e.time_ns,
            dev: nonzero_dev(e.dev),
            error: ErrnoName(e.error),
            used: e.used,
            total: e.total,
            limit: e.limit,
        }
    }
}

fn nonzero_dev(d: BdsnapDevId) -> Option<DevNum> {
    (d != BdsnapDevId::default()).then_some(DevNum(d))
}

/// Parameters of SNAPSHOT_CREATE besides the storage path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateParams {
    /// Bytes of the storage file to use now (0: its current size; a block device: all of it).
    pub bytes: u64,
    /// Grow the storage up to this total (0: never grow).
    pub limit: u64,
    /// Bytes per growth (0: module default).
    pub grow_step: u64,
    /// Low-space event threshold (0: module default).
    pub low_space: u64,
}

/// The target text of a snapshot's errors.
fn target(id: u64) -> String {
    format!("snapshot {id}")
}

/// A storage path as the kernel wants it: NUL-terminated, shorter than the UAPI maximum.
fn storage_path(command: &'static str, id: u64, path: &Path) -> Result<CString, CtlError> {
    let invalid = |what: String| CtlError::Invalid {
        command,
        target: target(id),
        what,
    };
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(invalid("empty storage path".into()));
    }
    if bytes.len() >= uapi::BDSNAP_STORAGE_PATH_MAX as usize {
        return Err(invalid(format!(
            "storage path is {} bytes, the module takes fewer than {}",
            bytes.len(),
            uapi::BDSNAP_STORAGE_PATH_MAX
        )));
    }
    CString::new(bytes).map_err(|_| {
        invalid(format!(
            "storage path {} contains a NUL byte",
            path.display()
        ))
    })
}

/// Finds the block device whose `dev` file in `sys_block` (normally `/sys/block`) holds `dev`,
/// and returns `/dev/<name>`. Partitions are not searched: images have none.
pub fn image_path_in(sys_block: &Path, dev: BdsnapDevId) -> Option<PathBuf> {
    let want = format!("{}:{}", dev.major, dev.minor);
    let mut names: Vec<_> = std::fs::read_dir(sys_block)
        .ok()?
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("dev"))
                .map(|s| s.trim() == want)
                .unwrap_or(false)
        })
        .map(|e| e.file_name())
        .collect();
    names.sort();
    names.first().map(|n| Path::new("/dev").join(n))
}

/// [`image_path_in`] `/sys/block`.
pub fn image_path(dev: BdsnapDevId) -> Option<PathBuf> {
    image_path_in(Path::new("/sys/block"), dev)
}

impl Control {
    /// Creates a snapshot with its first piece of difference storage; returns its id.
    pub fn snapshot_create(&self, storage: &Path, p: &CreateParams) -> Result<u64, CtlError> {
        let path = storage_path("SNAPSHOT_CREATE", 0, storage)?;
        let mut arg = uapi::BdsnapSnapshotCreate::default();
        arg.storage.path = path.as_ptr() as u64;
        arg.storage.bytes = p.bytes;
        arg.limit = p.limit;
        arg.grow_step = p.grow_step;
        arg.low_space = p.low_space;
        self.ioctl(
            uapi::BDSNAP_IOCTL_SNAPSHOT_CREATE,
            &storage.display().to_string(),
            &mut arg,
        )?;
        Ok(arg.id)
    }

    /// Adds a tracked device to a snapshot that is not taken yet.
    pub fn snapshot_add(&self, id: u64, dev: &BlockDevice) -> Result<(), CtlError> {
        let mut arg = uapi::BdsnapSnapshotDev::new(id, dev.id);
        self.ioctl(
            uapi::BDSNAP_IOCTL_SNAPSHOT_ADD,
            &format!("snapshot {id} {}", dev.name),
            &mut arg,
        )
    }

    /// Takes the snapshot; returns how long the devices were frozen and how long the take
    /// then waited for the writes in flight at the switch.
    pub fn snapshot_take(&self, id: u64, no_freeze: bool) -> Result<TakeTimes, CtlError> {
        let mut arg = uapi::BdsnapSnapshotCtl::new(id);
        if no_freeze {
            arg.flags = uapi::BDSNAP_TAKE_NO_FREEZE;
        }
        self.ioctl(uapi::BDSNAP_IOCTL_SNAPSHOT_TAKE, &target(id), &mut arg)?;
        Ok(TakeTimes::from_uapi(&arg))
    }

    pub fn snapshot_destroy(&self, id: u64) -> Result<(), CtlError> {
        let mut arg = uapi::BdsnapSnapshotCtl::new(id);
        self.ioctl(uapi::BDSNAP_IOCTL_SNAPSHOT_DESTROY, &target(id), &mut arg)
    }

    /// State, storage figures and every device with its image. Asks again with more room when
    /// the snapshot has more devices than the first call had room for.
    pub fn snapshot_info(&self, id: u64) -> Result<SnapshotInfo, CtlError> {
        let mut room = 8u32;
        loop {
            let mut devs = vec![uapi::BdsnapSnapshotDevInfo::default(); room as usize];
            let mut arg = uapi::BdsnapSnapshotInfo::new(id);
            arg.count = room;
            arg.devs = devs.as_mut_ptr() as u64;
            self.ioctl(uapi::BDSNAP_IOCTL_SNAPSHOT_INFO, &target(id), &mut arg)?;
            if arg.count > room {
                room = arg.count;
                continue;
            }
            devs.truncate(arg.count as usize);
            return Ok(SnapshotInfo {
                id,
                state: SnapshotState::from_raw(arg.state),
                error: ErrnoName(arg.error),
                storage_used: arg.storage_used,
                storage_total: arg.storage_total,
                storage_limit: arg.storage_limit,
                devices: devs
                    .iter()
                    .map(|d| SnapshotDevInfo::from_uapi(d, |i| image_path(i.0)))
                    .collect(),
            });
        }
    }

    /// Every snapshot id, sorted.
    pub fn snapshot_list(&self) -> Result<Vec<u64>, CtlError> {
        let mut room = 16u32;
        loop {
            let mut ids = vec![0u64; room as usize];
            let mut arg = uapi::BdsnapSnapshotList {
                count: room,
                ids: ids.as_mut_ptr() as u64,
                ..Default::default()
            };
            self.ioctl(uapi::BDSNAP_IOCTL_SNAPSHOT_LIST, "", &mut arg)?;
            if arg.count <= room {
                ids.truncate(arg.count as usize);
                ids.sort_unstable();
                return Ok(ids);
            }
            room = arg.count.saturating_add(16);
        }
    }

    /// Adds another piece of difference storage (`bytes` as for create).
    pub fn snapshot_append_storage(
        &self,
        id: u64,
        storage: &Path,
        bytes: u64,
    ) -> Result<(), CtlError> {
        let path = storage_path("SNAPSHOT_APPEND_STORAGE", id, storage)?;
        let mut arg = uapi::BdsnapSnapshotStorage::new(id);
        arg.path = path.as_ptr() as u64;
        arg.bytes = bytes;
        self.ioctl(
            uapi::BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE,
            &format!("snapshot {id} {}", storage.display()),
            &mut arg,
        )
    }

    /// Waits up to `timeout_ms` for the next event; [`EventCode::None`] when none came.
    pub fn snapshot_wait_event(&self, id: u64, timeout_ms: u32) -> Result<Event, CtlError> {
        let mut arg = uapi::BdsnapEvent::new(id, timeout_ms);
        self.ioctl(
            uapi::BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT,
            &target(id),
            &mut arg,
        )?;
        Ok(Event::from_uapi(&arg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_states_codes_and_errors() {
        assert_eq!(SnapshotState::from_raw(1).to_string(), "taken");
        assert_eq!(SnapshotState::from_raw(9).to_string(), "unknown-9");
        for (raw, name) in [
            (0, "none"),
            (1, "low-space"),
            (2, "corrupted"),
            (3, "dev-removed"),
            (4, "storage-grown"),
            (5, "overflow"),
            (77, "unknown-77"),
        ] {
            assert_eq!(EventCode::from_raw(raw).name(), name);
        }
        assert_eq!(ErrnoName(libc::ENOSPC as u32).to_string(), "ENOSPC");
        assert_eq!(ErrnoName(0).to_string(), "none");
        assert_eq!(serde_json::to_string(&ErrnoName(0)).unwrap(), "null");
        assert_eq!(
            serde_json::to_string(&ErrnoName(libc::ENODEV as u32)).unwrap(),
            "\"ENODEV\""
        );
    }

    #[test]
    fn event_json_names_code_dev_and_error() {
        let mut raw = uapi::BdsnapEvent::new(3, 0);
        raw.code = uapi::BDSNAP_EVENT_CORRUPTED;
        raw.dev = BdsnapDevId {
            major: 253,
            minor: 16,
        };
        raw.error = libc::ENOSPC as u32;
        raw.used = 10;
        let v = serde_json::to_value(Event::from_uapi(&raw)).unwrap();
        assert_eq!(v["code"], "corrupted");
        assert_eq!(v["dev"], "253:16");
        assert_eq!(v["error"], "ENOSPC");
        assert_eq!(v["used"], 10);
        let v = serde_json::to_value(Event::from_uapi(&uapi::BdsnapEvent::new(3, 0))).unwrap();
        assert_eq!(v["code"], "none");
        assert!(v["dev"].is_null() && v["error"].is_null());
    }

    #[test]
    fn device_info_and_take_times_carry_the_0_3_fields() {
        let raw = uapi::BdsnapSnapshotDevInfo {
            dev: BdsnapDevId {
                major: 253,
                minor: 16,
            },
            image: BdsnapDevId {
                major: 252,
                minor: 0,
            },
            chunk_size: 65536,
            chunks_copied: 7,
            chunk_memory: 4096,
            reserve_copies: 2,
            discards_dropped: 3,
            ..Default::default()
        };
        let d = SnapshotDevInfo::from_uapi(&raw, |_| Some(PathBuf::from("/dev/bdsnap-image0")));
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["dev"], "253:16");
        assert_eq!(v["image"], "252:0");
        assert_eq!(v["image_path"], "/dev/bdsnap-image0");
        assert_eq!(v["chunks_copied"], 7);
        assert_eq!(v["chunk_memory"], 4096);
        assert_eq!(v["reserve_copies"], 2);
        assert_eq!(v["discards_dropped"], 3);
        assert!(v["error"].is_null());
        let before_take =
            SnapshotDevInfo::from_uapi(&uapi::BdsnapSnapshotDevInfo::default(), |_| {
                panic!("no image to look up before the take")
            });
        assert_eq!((before_take.image, before_take.image_path), (None, None));

        let mut ctl = uapi::BdsnapSnapshotCtl::new(4);
        ctl.take_ns = 1_500_000;
        ctl.wait_ns = 250_000;
        ctl.writes_waited = 9;
        assert_eq!(
            TakeTimes::from_uapi(&ctl),
            TakeTimes {
                take_ns: 1_500_000,
                wait_ns: 250_000,
                writes_waited: 9
            }
        );
    }

    #[test]
    fn storage_paths_are_checked_before_the_call() {
        assert!(storage_path("SNAPSHOT_CREATE", 0, Path::new("/tmp/diff")).is_ok());
        let e = storage_path("SNAPSHOT_CREATE", 0, Path::new("")).unwrap_err();
        assert!(e.to_string().contains("empty storage path"), "{e}");
        let long = "/x".repeat(2048);
        let e = storage_path("SNAPSHOT_APPEND_STORAGE", 4, Path::new(&long)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("SNAPSHOT_APPEND_STORAGE snapshot 4: "),
            "{e}"
        );
        let nul = std::ffi::OsStr::from_bytes(b"/tmp/a\0b");
        assert!(storage_path("SNAPSHOT_CREATE", 0, Path::new(nul)).is_err());
    }

    #[test]
    fn image_path_is_found_by_device_number_in_sysfs() {
        let root = tempfile::tempdir().unwrap();
        for (name, dev) in [("vda", "253:0\n"), ("bdsnap-image0", "252:0\n")] {
            std::fs::create_dir(root.path().join(name)).unwrap();
            std::fs::write(root.path().join(name).join("dev"), dev).unwrap();
        }
        std::fs::create_dir(root.path().join("nodev")).unwrap();
        let id = |major, minor| BdsnapDevId { major, minor };
        assert_eq!(
            image_path_in(root.path(), id(252, 0)),
            Some(PathBuf::from("/dev/bdsnap-image0"))
        );
        assert_eq!(image_path_in(root.path(), id(252, 1)), None);
        assert_eq!(image_path_in(Path::new("/nonexistent"), id(252, 0)), None);
    }
}

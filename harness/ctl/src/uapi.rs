//! Rust mirror of `module/include/uapi/linux/bdsnap.h`. The header is the source of truth;
//! `tests/uapi_layout.rs` compiles it with the host C compiler and checks every size, offset,
//! ioctl number and constant here against it, so the two cannot drift apart.

use std::mem::size_of;

/// Version of the interface this mirror was written against.
pub const BDSNAP_VERSION_MAJOR: u16 = 0;
pub const BDSNAP_VERSION_MINOR: u16 = 3;
pub const BDSNAP_VERSION_PATCH: u16 = 0;

/// ioctl type byte of every bdsnap command.
pub const BDSNAP_IOCTL_MAGIC: u32 = 0xBD;
/// Device node name under /dev.
pub const BDSNAP_CTL_NAME: &str = "bdsnap-ctl";

/// `struct bdsnap_cbt_info.state`: the device changed size.
pub const BDSNAP_CBT_RESIZED: u32 = 1 << 0;
/// `struct bdsnap_tracker_ctl.flags` (attach): the filter without a CBT map.
pub const BDSNAP_TRACKER_FILTER_ONLY: u32 = 1 << 0;
/// `struct bdsnap_cbt_read.flags`: read the live map, not the read map.
pub const BDSNAP_CBT_READ_LIVE: u32 = 1 << 0;
/// Most ranges one `BDSNAP_IOCTL_CBT_MARK_DIRTY` call takes.
pub const BDSNAP_MARK_DIRTY_MAX: u32 = 65536;

// asm-generic/ioctl.h layout (x86, arm64, riscv; not powerpc/mips/sparc/alpha).
const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
/// `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`: user space writes the argument (the kernel reads it).
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: the kernel writes the argument back.
pub const IOC_READ: u32 = 2;
/// Largest size the 14-bit size field can encode.
pub const IOC_SIZE_MAX: u32 = (1 << IOC_SIZEBITS) - 1;

/// `_IOC(dir, type, nr, size)`; the size is masked to its 14 bits as the C macro's users expect
/// (the fuzzer relies on this to encode deliberately wrong sizes).
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: u32) -> u32 {
    (dir << IOC_DIRSHIFT)
        | ((ty & 0xff) << IOC_TYPESHIFT)
        | ((nr & 0xff) << IOC_NRSHIFT)
        | ((size & IOC_SIZE_MAX) << IOC_SIZESHIFT)
}

/// `_IOW(type, nr, size)`.
pub const fn iow(ty: u32, nr: u32, size: usize) -> u32 {
    ioc(IOC_WRITE, ty, nr, size as u32)
}

/// `_IOWR(type, nr, size)`.
pub const fn iowr(ty: u32, nr: u32, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size as u32)
}

/// `_IOC_NR(cmd)`.
pub const fn ioc_nr(cmd: u32) -> u32 {
    (cmd >> IOC_NRSHIFT) & 0xff
}

/// `_IOC_SIZE(cmd)`.
pub const fn ioc_size(cmd: u32) -> u32 {
    (cmd >> IOC_SIZESHIFT) & IOC_SIZE_MAX
}

/// `_IOC_DIR(cmd)`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    cmd >> IOC_DIRSHIFT
}

/// Size of `T` as the `size` member wants it.
const fn size32<T>() -> u32 {
    size_of::<T>() as u32
}

/// `struct bdsnap_version`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapVersion {
    pub size: u32,
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
    pub reserved0: u16,
    pub flags: u32,
    pub reserved: [u8; 48],
}

impl Default for BdsnapVersion {
    fn default() -> Self {
        Self {
            size: size32::<Self>(),
            major: 0,
            minor: 0,
            patch: 0,
            reserved0: 0,
            flags: 0,
            reserved: [0; 48],
        }
    }
}

/// `struct bdsnap_dev_id`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BdsnapDevId {
    pub major: u32,
    pub minor: u32,
}

/// `struct bdsnap_tracker_ctl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapTrackerCtl {
    pub size: u32,
    pub flags: u32,
    pub dev: BdsnapDevId,
    pub reserved: [u8; 48],
}

impl BdsnapTrackerCtl {
    pub fn new(dev: BdsnapDevId) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            dev,
            reserved: [0; 48],
        }
    }
}

/// `struct bdsnap_tracker_list`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapTrackerList {
    pub size: u32,
    pub count: u32,
    /// User pointer to `count` [`BdsnapDevId`]s.
    pub devs: u64,
    pub reserved: [u8; 48],
}

impl Default for BdsnapTrackerList {
    fn default() -> Self {
        Self {
            size: size32::<Self>(),
            count: 0,
            devs: 0,
            reserved: [0; 48],
        }
    }
}

/// `struct bdsnap_cbt_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapCbtInfo {
    pub size: u32,
    pub flags: u32,
    pub dev: BdsnapDevId,
    pub device_sectors: u64,
    pub block_size: u32,
    pub block_count: u32,
    pub generation_id: [u8; 16],
    pub snap_number: u8,
    pub reserved0: [u8; 3],
    pub state: u32,
    pub reserved: [u8; 40],
}

impl BdsnapCbtInfo {
    pub fn new(dev: BdsnapDevId) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            dev,
            device_sectors: 0,
            block_size: 0,
            block_count: 0,
            generation_id: [0; 16],
            snap_number: 0,
            reserved0: [0; 3],
            state: 0,
            reserved: [0; 40],
        }
    }
}

/// `struct bdsnap_cbt_read`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapCbtRead {
    pub size: u32,
    pub flags: u32,
    pub dev: BdsnapDevId,
    pub offset: u64,
    pub length: u32,
    pub reserved0: u32,
    /// User pointer to `length` bytes.
    pub buf: u64,
    pub reserved: [u8; 32],
}

impl BdsnapCbtRead {
    pub fn new(dev: BdsnapDevId) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            dev,
            offset: 0,
            length: 0,
            reserved0: 0,
            buf: 0,
            reserved: [0; 32],
        }
    }
}

/// `struct bdsnap_sector_range`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BdsnapSectorRange {
    pub sector: u64,
    pub count: u64,
}

/// `struct bdsnap_cbt_mark_dirty`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapCbtMarkDirty {
    pub size: u32,
    pub flags: u32,
    pub dev: BdsnapDevId,
    pub count: u32,
    pub reserved0: u32,
    /// User pointer to `count` [`BdsnapSectorRange`]s.
    pub ranges: u64,
    pub reserved: [u8; 32],
}

impl BdsnapCbtMarkDirty {
    pub fn new(dev: BdsnapDevId) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            dev,
            count: 0,
            reserved0: 0,
            ranges: 0,
            reserved: [0; 32],
        }
    }
}

/// `enum bdsnap_snapshot_state`: added devices, not taken yet.
pub const BDSNAP_SNAPSHOT_CREATED: u32 = 0;
/// `enum bdsnap_snapshot_state`: taken; images exist.
pub const BDSNAP_SNAPSHOT_TAKEN: u32 = 1;
/// `enum bdsnap_snapshot_state`: failed (overflow, I/O error, removal); only DESTROY is left.
pub const BDSNAP_SNAPSHOT_CORRUPTED: u32 = 2;

/// Longest difference storage path, including the terminating NUL.
pub const BDSNAP_STORAGE_PATH_MAX: u32 = 4096;

/// `struct bdsnap_snapshot_ctl.flags` of TAKE: do not freeze the filesystems (raw devices).
pub const BDSNAP_TAKE_NO_FREEZE: u32 = 1 << 0;

/// `enum bdsnap_event_code`: the timeout passed without an event.
pub const BDSNAP_EVENT_NONE: u32 = 0;
/// Free storage fell below `low_space`.
pub const BDSNAP_EVENT_LOW_SPACE: u32 = 1;
/// The snapshot is corrupted.
pub const BDSNAP_EVENT_CORRUPTED: u32 = 2;
/// A device of the snapshot went away.
pub const BDSNAP_EVENT_DEV_REMOVED: u32 = 3;
/// The module extended the storage.
pub const BDSNAP_EVENT_STORAGE_GROWN: u32 = 4;
/// Events were lost (queue full).
pub const BDSNAP_EVENT_OVERFLOW: u32 = 5;

/// `struct bdsnap_snapshot_storage`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapSnapshotStorage {
    pub size: u32,
    pub flags: u32,
    pub id: u64,
    /// User pointer to a NUL-terminated path.
    pub path: u64,
    pub bytes: u64,
    pub reserved: [u8; 32],
}

impl BdsnapSnapshotStorage {
    pub fn new(id: u64) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            id,
            path: 0,
            bytes: 0,
            reserved: [0; 32],
        }
    }
}

/// `struct bdsnap_snapshot_create`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapSnapshotCreate {
    pub size: u32,
    pub flags: u32,
    pub id: u64,
    pub storage: BdsnapSnapshotStorage,
    pub limit: u64,
    pub grow_step: u64,
    pub low_space: u64,
    pub reserved: [u8; 24],
}

impl Default for BdsnapSnapshotCreate {
    fn default() -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            id: 0,
            storage: BdsnapSnapshotStorage::new(0),
            limit: 0,
            grow_step: 0,
            low_space: 0,
            reserved: [0; 24],
        }
    }
}

/// `struct bdsnap_snapshot_dev`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapSnapshotDev {
    pub size: u32,
    pub flags: u32,
    pub id: u64,
    pub dev: BdsnapDevId,
    pub reserved: [u8; 40],
}

impl BdsnapSnapshotDev {
    pub fn new(id: u64, dev: BdsnapDevId) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            id,
            dev,
            reserved: [0; 40],
        }
    }
}

/// `struct bdsnap_snapshot_ctl` (TAKE and DESTROY). The `take_ns`, `wait_ns` and
/// `writes_waited` outputs of TAKE must be zero on input.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapSnapshotCtl {
    pub size: u32,
    pub flags: u32,
    pub id: u64,
    /// Out (TAKE): nanoseconds from the first freeze to the last thaw.
    pub take_ns: u64,
    /// Out (TAKE): nanoseconds waited for the writes in flight at the switch.
    pub wait_ns: u64,
    /// Out (TAKE): writes in flight at the switch, all devices together.
    pub writes_waited: u32,
    pub reserved0: u32,
    pub reserved: [u8; 24],
}

impl BdsnapSnapshotCtl {
    pub fn new(id: u64) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            id,
            take_ns: 0,
            wait_ns: 0,
            writes_waited: 0,
            reserved0: 0,
            reserved: [0; 24],
        }
    }
}

/// `struct bdsnap_snapshot_dev_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BdsnapSnapshotDevInfo {
    pub dev: BdsnapDevId,
    pub image: BdsnapDevId,
    pub chunk_size: u32,
    pub error: u32,
    pub chunks_copied: u64,
    /// Bytes of kernel memory of the device's chunk map (counted against
    /// `chunk_memory_max_mib`).
    pub chunk_memory: u64,
    /// Copies that ran on the copy reserve under memory pressure.
    pub reserve_copies: u64,
    /// Discards completed without reaching the device while the snapshot was taken.
    pub discards_dropped: u64,
    pub reserved: [u8; 8],
}

/// `struct bdsnap_snapshot_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapSnapshotInfo {
    pub size: u32,
    pub flags: u32,
    pub id: u64,
    pub state: u32,
    pub error: u32,
    pub storage_used: u64,
    pub storage_total: u64,
    pub storage_limit: u64,
    pub count: u32,
    pub reserved0: u32,
    /// User pointer to `count` [`BdsnapSnapshotDevInfo`]s.
    pub devs: u64,
    pub reserved: [u8; 64],
}

impl BdsnapSnapshotInfo {
    pub fn new(id: u64) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            id,
            state: 0,
            error: 0,
            storage_used: 0,
            storage_total: 0,
            storage_limit: 0,
            count: 0,
            reserved0: 0,
            devs: 0,
            reserved: [0; 64],
        }
    }
}

/// `struct bdsnap_snapshot_list`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapSnapshotList {
    pub size: u32,
    pub count: u32,
    /// User pointer to `count` u64 ids.
    pub ids: u64,
    pub reserved: [u8; 48],
}

impl Default for BdsnapSnapshotList {
    fn default() -> Self {
        Self {
            size: size32::<Self>(),
            count: 0,
            ids: 0,
            reserved: [0; 48],
        }
    }
}

/// `struct bdsnap_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdsnapEvent {
    pub size: u32,
    pub flags: u32,
    pub id: u64,
    pub timeout_ms: u32,
    pub code: u32,
    pub time_ns: u64,
    pub dev: BdsnapDevId,
    pub error: u32,
    pub reserved0: u32,
    pub used: u64,
    pub total: u64,
    pub limit: u64,
    pub reserved: [u8; 56],
}

impl BdsnapEvent {
    pub fn new(id: u64, timeout_ms: u32) -> Self {
        Self {
            size: size32::<Self>(),
            flags: 0,
            id,
            timeout_ms,
            code: 0,
            time_ns: 0,
            dev: BdsnapDevId::default(),
            error: 0,
            reserved0: 0,
            used: 0,
            total: 0,
            limit: 0,
            reserved: [0; 56],
        }
    }
}

pub const BDSNAP_IOCTL_VERSION: u32 = iowr(BDSNAP_IOCTL_MAGIC, 0x00, size_of::<BdsnapVersion>());
pub const BDSNAP_IOCTL_TRACKER_ATTACH: u32 =
    iow(BDSNAP_IOCTL_MAGIC, 0x01, size_of::<BdsnapTrackerCtl>());
pub const BDSNAP_IOCTL_TRACKER_DETACH: u32 =
    iow(BDSNAP_IOCTL_MAGIC, 0x02, size_of::<BdsnapTrackerCtl>());
pub const BDSNAP_IOCTL_TRACKER_LIST: u32 =
    iowr(BDSNAP_IOCTL_MAGIC, 0x03, size_of::<BdsnapTrackerList>());
pub const BDSNAP_IOCTL_CBT_INFO: u32 = iowr(BDSNAP_IOCTL_MAGIC, 0x04, size_of::<BdsnapCbtInfo>());
pub const BDSNAP_IOCTL_CBT_READ: u32 = iow(BDSNAP_IOCTL_MAGIC, 0x05, size_of::<BdsnapCbtRead>());
pub const BDSNAP_IOCTL_CBT_MARK_DIRTY: u32 =
    iow(BDSNAP_IOCTL_MAGIC, 0x06, size_of::<BdsnapCbtMarkDirty>());

pub const BDSNAP_IOCTL_SNAPSHOT_CREATE: u32 =
    iowr(BDSNAP_IOCTL_MAGIC, 0x10, size_of::<BdsnapSnapshotCreate>());
pub const BDSNAP_IOCTL_SNAPSHOT_ADD: u32 =
    iow(BDSNAP_IOCTL_MAGIC, 0x11, size_of::<BdsnapSnapshotDev>());
pub const BDSNAP_IOCTL_SNAPSHOT_TAKE: u32 =
    iowr(BDSNAP_IOCTL_MAGIC, 0x12, size_of::<BdsnapSnapshotCtl>());
pub const BDSNAP_IOCTL_SNAPSHOT_DESTROY: u32 =
    iow(BDSNAP_IOCTL_MAGIC, 0x13, size_of::<BdsnapSnapshotCtl>());
pub const BDSNAP_IOCTL_SNAPSHOT_INFO: u32 =
    iowr(BDSNAP_IOCTL_MAGIC, 0x14, size_of::<BdsnapSnapshotInfo>());
pub const BDSNAP_IOCTL_SNAPSHOT_LIST: u32 =
    iowr(BDSNAP_IOCTL_MAGIC, 0x15, size_of::<BdsnapSnapshotList>());
pub const BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE: u32 =
    iow(BDSNAP_IOCTL_MAGIC, 0x16, size_of::<BdsnapSnapshotStorage>());
pub const BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT: u32 =
    iowr(BDSNAP_IOCTL_MAGIC, 0x17, size_of::<BdsnapEvent>());

/// Every command: (name without the `BDSNAP_IOCTL_` prefix, number, argument size).
pub const COMMANDS: &[(&str, u32, usize)] = &[
    ("VERSION", BDSNAP_IOCTL_VERSION, size_of::<BdsnapVersion>()),
    (
        "TRACKER_ATTACH",
        BDSNAP_IOCTL_TRACKER_ATTACH,
        size_of::<BdsnapTrackerCtl>(),
    ),
    (
        "TRACKER_DETACH",
        BDSNAP_IOCTL_TRACKER_DETACH,
        size_of::<BdsnapTrackerCtl>(),
    ),
    (
        "TRACKER_LIST",
        BDSNAP_IOCTL_TRACKER_LIST,
        size_of::<BdsnapTrackerList>(),
    ),
    (
        "CBT_INFO",
        BDSNAP_IOCTL_CBT_INFO,
        size_of::<BdsnapCbtInfo>(),
    ),
    (
        "CBT_READ",
        BDSNAP_IOCTL_CBT_READ,
        size_of::<BdsnapCbtRead>(),
    ),
    (
        "CBT_MARK_DIRTY",
        BDSNAP_IOCTL_CBT_MARK_DIRTY,
        size_of::<BdsnapCbtMarkDirty>(),
    ),
    (
        "SNAPSHOT_CREATE",
        BDSNAP_IOCTL_SNAPSHOT_CREATE,
        size_of::<BdsnapSnapshotCreate>(),
    ),
    (
        "SNAPSHOT_ADD",
        BDSNAP_IOCTL_SNAPSHOT_ADD,
        size_of::<BdsnapSnapshotDev>(),
    ),
    (
        "SNAPSHOT_TAKE",
        BDSNAP_IOCTL_SNAPSHOT_TAKE,
        size_of::<BdsnapSnapshotCtl>(),
    ),
    (
        "SNAPSHOT_DESTROY",
        BDSNAP_IOCTL_SNAPSHOT_DESTROY,
        size_of::<BdsnapSnapshotCtl>(),
    ),
    (
        "SNAPSHOT_INFO",
        BDSNAP_IOCTL_SNAPSHOT_INFO,
        size_of::<BdsnapSnapshotInfo>(),
    ),
    (
        "SNAPSHOT_LIST",
        BDSNAP_IOCTL_SNAPSHOT_LIST,
        size_of::<BdsnapSnapshotList>(),
    ),
    (
        "SNAPSHOT_APPEND_STORAGE",
        BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE,
        size_of::<BdsnapSnapshotStorage>(),
    ),
    (
        "SNAPSHOT_WAIT_EVENT",
        BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT,
        size_of::<BdsnapEvent>(),
    ),
];

/// The name of a command number, for messages.
pub fn command_name(cmd: u32) -> Option<&'static str> {
    COMMANDS.iter().find(|c| c.1 == cmd).map(|c| c.0)
}

/// Views a plain `#[repr(C)]` UAPI struct as bytes (the fuzzer corrupts them byte by byte).
///
/// Only implemented for the structs above: they have no padding and every bit pattern is valid.
pub trait Plain: Copy + Sized {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: implementors are #[repr(C)] with fixed-width integer fields and no padding
        // (checked against the header by tests/uapi_layout.rs), so every byte is initialised.
        unsafe { std::slice::from_raw_parts(self as *const Self as *const u8, size_of::<Self>()) }
    }
}

impl Plain for BdsnapVersion {}
impl Plain for BdsnapDevId {}
impl Plain for BdsnapTrackerCtl {}
impl Plain for BdsnapTrackerList {}
impl Plain for BdsnapCbtInfo {}
impl Plain for BdsnapCbtRead {}
impl Plain for BdsnapSectorRange {}
impl Plain for BdsnapCbtMarkDirty {}
impl Plain for BdsnapSnapshotStorage {}
impl Plain for BdsnapSnapshotCreate {}
impl Plain for BdsnapSnapshotDev {}
impl Plain for BdsnapSnapshotCtl {}
impl Plain for BdsnapSnapshotDevInfo {}
impl Plain for BdsnapSnapshotInfo {}
impl Plain for BdsnapSnapshotList {}
impl Plain for BdsnapEvent {}

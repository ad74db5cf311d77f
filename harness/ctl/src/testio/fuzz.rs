//! `fuzz-ioctl`: malformed calls to the control device. Every call must fail, with an errno the
//! UAPI allows (EINVAL, EFAULT, ENOTTY, ENOENT, ENODEV, EPERM, EBUSY); a malformed call that
//! succeeds or an errno outside that set is a failure. With `--expect-eperm` every call, even a
//! well-formed one, must fail with EPERM.
//!
//! Snapshot commands name a snapshot id that never exists, so no case can create, take or
//! destroy a real snapshot; their storage paths are empty strings.
//!
//! Memory safety of the fuzzer itself: bad pointers are only ever handed to the kernel. Every
//! buffer the kernel could legitimately write (argument structs, map and list buffers) is ours
//! and at least as large as the size the call declares (the argument buffer covers the largest
//! size an ioctl number can encode); declared sizes larger than our buffers get an
//! inaccessible pointer instead.
//!
//! Unknown-number cases never use magics the VFS itself answers on any file (0x00 FIGETBSZ,
//! 'T' FIONBIO and friends, 'f', 'X', 0x94, 0x15), whose success would not be the module's.

use super::blk::AlignedBuf;
use super::caps;
use super::rng::Rng;
use crate::uapi::*;
use crate::{errno, BlockDevice, CbtInfo, Control, CtlError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;

/// errnos a refused call may return.
pub const ALLOWED: &[i32] = &[
    libc::EINVAL,
    libc::EFAULT,
    libc::ENOTTY,
    libc::ENOENT,
    libc::ENODEV,
    libc::EPERM,
    libc::EBUSY,
];

/// Magics for "another driver's" numbers: none is answered by the VFS on a char device.
const OTHER_MAGICS: &[u32] = &[0x01, 0xAB, 0xBC, 0xBE, 0xFF];

/// Devices that cannot exist: major 0 is never a block device; the others exceed dev_t or any
/// real minor.
const NONEXISTENT: &[BdsnapDevId] = &[
    BdsnapDevId { major: 0, minor: 0 },
    BdsnapDevId { major: 0, minor: 1 },
    BdsnapDevId {
        major: 4095,
        minor: (1 << 20) - 1,
    },
    BdsnapDevId {
        major: 259,
        minor: (1 << 20) - 1,
    },
    BdsnapDevId {
        major: u32::MAX,
        minor: u32::MAX,
    },
    BdsnapDevId {
        major: 1 << 12,
        minor: 0,
    },
];

/// The snapshot every snapshot template names: ids count up from 1 and are never reused, so
/// this one never exists (a malformed call that slipped through cannot touch a real snapshot).
const ABSENT_SNAPSHOT: u64 = u64::MAX;

/// Other ids no snapshot has.
const ABSENT_SNAPSHOTS: &[u64] = &[0, 1 << 63, u64::MAX - 1];

const MAP_SCRATCH: usize = 1 << 20;
const RANGES_ROOM: usize = BDSNAP_MARK_DIRTY_MAX as usize + 2;

/// A pointer value given to the kernel, named so that it is resolved against this process's
/// buffers only when the call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ptr {
    Null,
    One,
    /// The start of x86_64's direct map of physical memory.
    KernelDirectMap,
    /// Near the very top of the address space.
    KernelTop,
    /// Just past the end of user space (not canonical).
    NonCanonical,
    HighNonCanonical,
    /// A page mapped PROT_NONE.
    NoAccess,
    /// A page of zeros mapped read-only.
    ReadOnly,
    /// Our writable map/list buffer ([`MAP_SCRATCH`] bytes).
    Scratch,
    /// Our range buffer, holding the case's ranges.
    Ranges,
    /// A raw value (random high addresses).
    Raw(u64),
}

const BAD_PTRS: &[Ptr] = &[
    Ptr::Null,
    Ptr::One,
    Ptr::KernelDirectMap,
    Ptr::KernelTop,
    Ptr::NonCanonical,
    Ptr::HighNonCanonical,
    Ptr::NoAccess,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Malformed: must fail.
    MustFail,
    /// Not certainly malformed (e.g. a bad list pointer while nothing is tracked, which the
    /// kernel never needs to touch): success is allowed, an error must still be an allowed one.
    MayPass,
}

#[derive(Debug, Clone)]
pub enum Arg {
    /// Struct bytes, copied to our argument buffer; optionally a pointer field patched in.
    Bytes {
        bytes: Vec<u8>,
        embedded: Option<(usize, Ptr)>,
        /// Place the struct so that its last 8 bytes lie on a PROT_NONE page.
        straddle: bool,
    },
    Pointer(Ptr),
}

#[derive(Debug, Clone)]
pub struct Case {
    pub category: &'static str,
    pub what: String,
    pub cmd: u32,
    pub arg: Arg,
    pub ranges: Vec<BdsnapSectorRange>,
    pub expect: Expect,
}

/// A command's well-formed argument and where its must-be-zero input bytes are.
#[derive(Debug, Clone)]
struct Template {
    name: &'static str,
    cmd: u32,
    bytes: Vec<u8>,
    /// (offset, length) of inputs that must be zero.
    zero: Vec<(usize, usize)>,
    /// Offset of `flags` and the bits that are allowed.
    flags: Option<(usize, u32)>,
    /// Offset of the device id, for commands about one device.
    dev: Option<usize>,
    /// Offset of the snapshot id, for commands about one snapshot.
    snapshot: Option<usize>,
    embedded: Option<(usize, Ptr)>,
    ranges: Vec<BdsnapSectorRange>,
}

impl Template {
    fn case(&self, category: &'static str, what: String) -> Case {
        Case {
            category,
            what: format!("{} {what}", self.name),
            cmd: self.cmd,
            arg: Arg::Bytes {
                bytes: self.bytes.clone(),
                embedded: self.embedded,
                straddle: false,
            },
            ranges: self.ranges.clone(),
            expect: Expect::MustFail,
        }
    }
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// What the generator knows about the machine.
#[derive(Debug, Clone)]
pub struct Context {
    pub tracked: Option<(BdsnapDevId, CbtInfo)>,
    pub untracked: Option<BdsnapDevId>,
    /// Whether snapshots exist (then SNAPSHOT_LIST must write its list and fail on a bad one).
    pub snapshots_exist: bool,
    pub expect_eperm: bool,
}

impl Context {
    fn dev(&self) -> BdsnapDevId {
        self.tracked.as_ref().map(|t| t.0).unwrap_or(NONEXISTENT[0])
    }

    fn block_count(&self) -> u64 {
        self.tracked
            .as_ref()
            .map(|t| u64::from(t.1.block_count))
            .unwrap_or(16)
    }

    fn device_sectors(&self) -> u64 {
        self.tracked
            .as_ref()
            .map(|t| t.1.device_sectors)
            .unwrap_or(1 << 21)
    }
}

fn templates(ctx: &Context) -> Vec<Template> {
    let dev = ctx.dev();
    let v = BdsnapVersion::default();
    let version = Template {
        name: "VERSION",
        cmd: BDSNAP_IOCTL_VERSION,
        bytes: v.as_bytes().to_vec(),
        zero: vec![
            (offset_of!(BdsnapVersion, major), 2),
            (offset_of!(BdsnapVersion, minor), 2),
            (offset_of!(BdsnapVersion, patch), 2),
            (offset_of!(BdsnapVersion, reserved0), 2),
            (offset_of!(BdsnapVersion, reserved), 48),
        ],
        flags: Some((offset_of!(BdsnapVersion, flags), 0)),
        dev: None,
        snapshot: None,
        embedded: None,
        ranges: vec![],
    };
    let ctl = BdsnapTrackerCtl::new(dev);
    let tracker = |name, cmd, allowed| Template {
        name,
        cmd,
        bytes: ctl.as_bytes().to_vec(),
        zero: vec![(offset_of!(BdsnapTrackerCtl, reserved), 48)],
        flags: Some((offset_of!(BdsnapTrackerCtl, flags), allowed)),
        dev: Some(offset_of!(BdsnapTrackerCtl, dev)),
        snapshot: None,
        embedded: None,
        ranges: vec![],
    };
    let list = Template {
        name: "TRACKER_LIST",
        cmd: BDSNAP_IOCTL_TRACKER_LIST,
        bytes: BdsnapTrackerList {
            count: 4,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        zero: vec![(offset_of!(BdsnapTrackerList, reserved), 48)],
        flags: None,
        dev: None,
        snapshot: None,
        embedded: Some((offset_of!(BdsnapTrackerList, devs), Ptr::Scratch)),
        ranges: vec![],
    };
    let info = Template {
        name: "CBT_INFO",
        cmd: BDSNAP_IOCTL_CBT_INFO,
        bytes: BdsnapCbtInfo::new(dev).as_bytes().to_vec(),
        zero: vec![
            (offset_of!(BdsnapCbtInfo, reserved0), 3),
            (offset_of!(BdsnapCbtInfo, reserved), 40),
        ],
        flags: Some((offset_of!(BdsnapCbtInfo, flags), 0)),
        dev: Some(offset_of!(BdsnapCbtInfo, dev)),
        snapshot: None,
        embedded: None,
        ranges: vec![],
    };
    let mut r = BdsnapCbtRead::new(dev);
    r.length = ctx.block_count().min(4096) as u32;
    let read = Template {
        name: "CBT_READ",
        cmd: BDSNAP_IOCTL_CBT_READ,
        bytes: r.as_bytes().to_vec(),
        zero: vec![
            (offset_of!(BdsnapCbtRead, reserved0), 4),
            (offset_of!(BdsnapCbtRead, reserved), 32),
        ],
        flags: Some((offset_of!(BdsnapCbtRead, flags), BDSNAP_CBT_READ_LIVE)),
        dev: Some(offset_of!(BdsnapCbtRead, dev)),
        snapshot: None,
        embedded: Some((offset_of!(BdsnapCbtRead, buf), Ptr::Scratch)),
        ranges: vec![],
    };
    let mut m = BdsnapCbtMarkDirty::new(dev);
    m.count = 1;
    let mark = Template {
        name: "CBT_MARK_DIRTY",
        cmd: BDSNAP_IOCTL_CBT_MARK_DIRTY,
        bytes: m.as_bytes().to_vec(),
        zero: vec![
            (offset_of!(BdsnapCbtMarkDirty, reserved0), 4),
            (offset_of!(BdsnapCbtMarkDirty, reserved), 32),
        ],
        flags: Some((offset_of!(BdsnapCbtMarkDirty, flags), 0)),
        dev: Some(offset_of!(BdsnapCbtMarkDirty, dev)),
        snapshot: None,
        embedded: Some((offset_of!(BdsnapCbtMarkDirty, ranges), Ptr::Ranges)),
        ranges: vec![BdsnapSectorRange {
            sector: 0,
            count: 1,
        }],
    };
    let mut out = vec![
        version,
        tracker(
            "TRACKER_ATTACH",
            BDSNAP_IOCTL_TRACKER_ATTACH,
            BDSNAP_TRACKER_FILTER_ONLY,
        ),
        tracker("TRACKER_DETACH", BDSNAP_IOCTL_TRACKER_DETACH, 0),
        list,
        info,
        read,
        mark,
    ];
    out.extend(snapshot_templates(dev));
    out
}

/// The snapshot commands, each about [`ABSENT_SNAPSHOT`]; storage paths point at a read-only
/// page of zeros (an empty path, which no filesystem resolves).
fn snapshot_templates(dev: BdsnapDevId) -> Vec<Template> {
    let storage_at = offset_of!(BdsnapSnapshotCreate, storage);
    let create = Template {
        name: "SNAPSHOT_CREATE",
        cmd: BDSNAP_IOCTL_SNAPSHOT_CREATE,
        bytes: BdsnapSnapshotCreate::default().as_bytes().to_vec(),
        zero: vec![
            // out only: must be zero on input
            (offset_of!(BdsnapSnapshotCreate, id), 8),
            (storage_at + offset_of!(BdsnapSnapshotStorage, flags), 4),
            (storage_at + offset_of!(BdsnapSnapshotStorage, reserved), 32),
            (offset_of!(BdsnapSnapshotCreate, reserved), 24),
        ],
        flags: Some((offset_of!(BdsnapSnapshotCreate, flags), 0)),
        dev: None,
        snapshot: None,
        embedded: Some((
            storage_at + offset_of!(BdsnapSnapshotStorage, path),
            Ptr::ReadOnly,
        )),
        ranges: vec![],
    };
    let add = Template {
        name: "SNAPSHOT_ADD",
        cmd: BDSNAP_IOCTL_SNAPSHOT_ADD,
        bytes: BdsnapSnapshotDev::new(ABSENT_SNAPSHOT, dev)
            .as_bytes()
            .to_vec(),
        zero: vec![(offset_of!(BdsnapSnapshotDev, reserved), 40)],
        flags: Some((offset_of!(BdsnapSnapshotDev, flags), 0)),
        dev: Some(offset_of!(BdsnapSnapshotDev, dev)),
        snapshot: Some(offset_of!(BdsnapSnapshotDev, id)),
        embedded: None,
        ranges: vec![],
    };
    let ctl = |name, cmd, allowed| Template {
        name,
        cmd,
        bytes: BdsnapSnapshotCtl::new(ABSENT_SNAPSHOT).as_bytes().to_vec(),
        zero: vec![
            // out only (TAKE): must be zero on input
            (offset_of!(BdsnapSnapshotCtl, take_ns), 8),
            (offset_of!(BdsnapSnapshotCtl, wait_ns), 8),
            (offset_of!(BdsnapSnapshotCtl, writes_waited), 4),
            (offset_of!(BdsnapSnapshotCtl, reserved0), 4),
            (offset_of!(BdsnapSnapshotCtl, reserved), 24),
        ],
        flags: Some((offset_of!(BdsnapSnapshotCtl, flags), allowed)),
        dev: None,
        snapshot: Some(offset_of!(BdsnapSnapshotCtl, id)),
        embedded: None,
        ranges: vec![],
    };
    let mut i = BdsnapSnapshotInfo::new(ABSENT_SNAPSHOT);
    i.count = 4;
    let info = Template {
        name: "SNAPSHOT_INFO",
        cmd: BDSNAP_IOCTL_SNAPSHOT_INFO,
        bytes: i.as_bytes().to_vec(),
        zero: vec![
            (offset_of!(BdsnapSnapshotInfo, reserved0), 4),
            (offset_of!(BdsnapSnapshotInfo, reserved), 64),
        ],
        flags: Some((offset_of!(BdsnapSnapshotInfo, flags), 0)),
        dev: None,
        snapshot: Some(offset_of!(BdsnapSnapshotInfo, id)),
        embedded: Some((offset_of!(BdsnapSnapshotInfo, devs), Ptr::Scratch)),
        ranges: vec![],
    };
    let list = Template {
        name: "SNAPSHOT_LIST",
        cmd: BDSNAP_IOCTL_SNAPSHOT_LIST,
        bytes: BdsnapSnapshotList {
            count: 4,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        zero: vec![(offset_of!(BdsnapSnapshotList, reserved), 48)],
        flags: None,
        dev: None,
        snapshot: None,
        embedded: Some((offset_of!(BdsnapSnapshotList, ids), Ptr::Scratch)),
        ranges: vec![],
    };
    let append = Template {
        name: "SNAPSHOT_APPEND_STORAGE",
        cmd: BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE,
        bytes: BdsnapSnapshotStorage::new(ABSENT_SNAPSHOT)
            .as_bytes()
            .to_vec(),
        zero: vec![(offset_of!(BdsnapSnapshotStorage, reserved), 32)],
        flags: Some((offset_of!(BdsnapSnapshotStorage, flags), 0)),
        dev: None,
        snapshot: Some(offset_of!(BdsnapSnapshotStorage, id)),
        embedded: Some((offset_of!(BdsnapSnapshotStorage, path), Ptr::ReadOnly)),
        ranges: vec![],
    };
    // Timeout 0: a call that got through would return at once.
    let wait = Template {
        name: "SNAPSHOT_WAIT_EVENT",
        cmd: BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT,
        bytes: BdsnapEvent::new(ABSENT_SNAPSHOT, 0).as_bytes().to_vec(),
        zero: vec![
            (offset_of!(BdsnapEvent, reserved0), 4),
            (offset_of!(BdsnapEvent, reserved), 56),
        ],
        flags: Some((offset_of!(BdsnapEvent, flags), 0)),
        dev: None,
        snapshot: Some(offset_of!(BdsnapEvent, id)),
        embedded: None,
        ranges: vec![],
    };
    vec![
        create,
        add,
        ctl(
            "SNAPSHOT_TAKE",
            BDSNAP_IOCTL_SNAPSHOT_TAKE,
            BDSNAP_TAKE_NO_FREEZE,
        ),
        ctl("SNAPSHOT_DESTROY", BDSNAP_IOCTL_SNAPSHOT_DESTROY, 0),
        info,
        list,
        append,
        wait,
    ]
}

/// Whether `nr` (with the bdsnap magic) is a command's number.
fn is_known_nr(nr: u32) -> bool {
    COMMANDS.iter().any(|c| ioc_nr(c.1) == nr)
}

/// The deterministic, exhaustive part: every kind of malformation for every command.
pub fn systematic(ctx: &Context, rng: &mut Rng) -> Vec<Case> {
    let mut out = Vec::new();
    let tmpls = templates(ctx);
    for t in &tmpls {
        let size = t.bytes.len() as u32;
        // The size member.
        for s in [0, size - 1, size + 1, 4096, u32::MAX] {
            let mut c = t.case("size", format!("size={s}"));
            if let Arg::Bytes { bytes, .. } = &mut c.arg {
                put_u32(bytes, 0, s);
            }
            out.push(c);
        }
        // Every must-be-zero byte.
        for &(off, len) in &t.zero {
            for i in off..off + len {
                let mut c = t.case("reserved", format!("byte {i} set"));
                if let Arg::Bytes { bytes, .. } = &mut c.arg {
                    bytes[i] = rng.range(1, 255) as u8;
                }
                out.push(c);
            }
        }
        // Every unknown flag bit.
        if let Some((off, allowed)) = t.flags {
            for bit in 0..32 {
                if allowed & (1 << bit) != 0 {
                    continue;
                }
                let mut c = t.case("flags", format!("flag bit {bit}"));
                if let Arg::Bytes { bytes, .. } = &mut c.arg {
                    put_u32(bytes, off, 1 << bit);
                }
                out.push(c);
            }
        }
        // The argument pointer itself.
        for &p in BAD_PTRS.iter().chain(&[Ptr::ReadOnly]) {
            let mut c = t.case("arg-pointer", format!("arg={p:?}"));
            c.arg = Arg::Pointer(p);
            out.push(c);
        }
        let mut c = t.case("arg-pointer", "struct tail on a PROT_NONE page".into());
        if let Arg::Bytes { straddle, .. } = &mut c.arg {
            *straddle = true;
        }
        out.push(c);
        // Pointers inside the struct.
        if let Some((off, _)) = t.embedded {
            for &p in BAD_PTRS.iter().chain(&[Ptr::ReadOnly]) {
                let mut c = t.case("inner-pointer", format!("pointer={p:?}"));
                if let Arg::Bytes { embedded, .. } = &mut c.arg {
                    *embedded = Some((off, p));
                }
                // A list call with nothing to list never needs to touch the pointer.
                if (t.cmd == BDSNAP_IOCTL_TRACKER_LIST && ctx.tracked.is_none())
                    || (t.cmd == BDSNAP_IOCTL_SNAPSHOT_LIST && !ctx.snapshots_exist)
                {
                    c.expect = Expect::MayPass;
                }
                out.push(c);
            }
        }
        // Devices that do not exist, are not tracked, or are tracked already.
        if let Some(off) = t.dev {
            for d in NONEXISTENT {
                let mut c = t.case("device", format!("dev={}:{}", d.major, d.minor));
                if let Arg::Bytes { bytes, .. } = &mut c.arg {
                    put_u32(bytes, off, d.major);
                    put_u32(bytes, off + 4, d.minor);
                }
                out.push(c);
            }
            if let Some(u) = ctx.untracked {
                if t.cmd != BDSNAP_IOCTL_TRACKER_ATTACH {
                    let mut c = t.case("device", format!("untracked {}:{}", u.major, u.minor));
                    if let Arg::Bytes { bytes, .. } = &mut c.arg {
                        put_u32(bytes, off, u.major);
                        put_u32(bytes, off + 4, u.minor);
                    }
                    out.push(c);
                }
            }
            if t.cmd == BDSNAP_IOCTL_TRACKER_ATTACH && ctx.tracked.is_some() {
                out.push(t.case("device", "already tracked".into()));
            }
        }
        // Snapshots that do not exist.
        if let Some(off) = t.snapshot {
            for &id in ABSENT_SNAPSHOTS {
                let mut c = t.case("snapshot", format!("id={id}"));
                if let Arg::Bytes { bytes, .. } = &mut c.arg {
                    put_u64(bytes, off, id);
                }
                out.push(c);
            }
        }
        if !ctx.expect_eperm {
            out.extend(encodings(t));
        }
    }
    out.extend(overflows(ctx, &tmpls));
    if !ctx.expect_eperm {
        out.extend(unknown_numbers(&tmpls));
    } else {
        out.extend(well_formed(&tmpls));
    }
    out
}

/// The right struct under a wrong number: other directions and sizes of the same command.
fn encodings(t: &Template) -> Vec<Case> {
    let mut out = Vec::new();
    let (nr, size, dir) = (ioc_nr(t.cmd), ioc_size(t.cmd), ioc_dir(t.cmd));
    for d in [IOC_NONE, IOC_READ, IOC_WRITE, IOC_READ | IOC_WRITE] {
        if d != dir {
            let mut c = t.case("encoding", format!("dir={d}"));
            c.cmd = ioc(d, BDSNAP_IOCTL_MAGIC, nr, size);
            out.push(c);
        }
    }
    for s in [0, size - 1, size + 1, size * 2, IOC_SIZE_MAX] {
        let mut c = t.case("encoding", format!("encoded size={s}"));
        c.cmd = ioc(dir, BDSNAP_IOCTL_MAGIC, nr, s);
        out.push(c);
    }
    out
}

fn unknown_numbers(tmpls: &[Template]) -> Vec<Case> {
    let mut out = Vec::new();
    let v = &tmpls[0];
    let unknown = (0..0x20).filter(|&nr| !is_known_nr(nr));
    for nr in unknown.chain([0x7f, 0x80, 0xbd, 0xfe, 0xff]) {
        for dir in [IOC_NONE, IOC_READ | IOC_WRITE] {
            let mut c = v.case("unknown-number", format!("magic 0xbd nr={nr:#x} dir={dir}"));
            c.cmd = ioc(dir, BDSNAP_IOCTL_MAGIC, nr, 64);
            out.push(c);
        }
    }
    for t in tmpls {
        for &m in OTHER_MAGICS {
            let mut c = t.case("unknown-number", format!("magic={m:#x}"));
            c.cmd = ioc(ioc_dir(t.cmd), m, ioc_nr(t.cmd), ioc_size(t.cmd));
            out.push(c);
        }
    }
    out
}

fn overflows(ctx: &Context, tmpls: &[Template]) -> Vec<Case> {
    let mut out = Vec::new();
    let bc = ctx.block_count();
    let read = &tmpls[5];
    let ro = offset_of!(BdsnapCbtRead, offset);
    let rl = offset_of!(BdsnapCbtRead, length);
    let rb = offset_of!(BdsnapCbtRead, buf);
    let reads: [(u64, u64); 7] = [
        (u64::MAX, 1),
        (u64::MAX, u64::from(u32::MAX)),
        (1 << 63, 1),
        (bc, 1),
        (bc.saturating_sub(1), 2),
        (0, bc + 1),
        (0, u64::from(u32::MAX)),
    ];
    for (off, len) in reads {
        let mut c = read.case("overflow", format!("offset={off} length={len}"));
        if let Arg::Bytes {
            bytes, embedded, ..
        } = &mut c.arg
        {
            put_u64(bytes, ro, off);
            put_u32(bytes, rl, len as u32);
            let p = if len as usize <= MAP_SCRATCH {
                Ptr::Scratch
            } else {
                Ptr::NoAccess
            };
            *embedded = Some((rb, p));
        }
        out.push(c);
    }
    let mut c = read.case("overflow", "length=0".into());
    if let Arg::Bytes { bytes, .. } = &mut c.arg {
        put_u32(bytes, rl, 0);
    }
    c.expect = Expect::MayPass;
    out.push(c);

    let mark = &tmpls[6];
    let mc = offset_of!(BdsnapCbtMarkDirty, count);
    let valid = BdsnapSectorRange {
        sector: 0,
        count: 1,
    };
    for count in [0, BDSNAP_MARK_DIRTY_MAX + 1, u32::MAX] {
        let mut c = mark.case("overflow", format!("count={count}"));
        if let Arg::Bytes { bytes, .. } = &mut c.arg {
            put_u32(bytes, mc, count);
        }
        c.ranges = vec![valid; (count as usize).min(RANGES_ROOM)];
        out.push(c);
    }
    let ds = ctx.device_sectors();
    let bad: [(u64, u64); 7] = [
        (0, 0),
        (u64::MAX, 1),
        (u64::MAX - 1, 4),
        (ds, 1),
        (ds.saturating_sub(1), 2),
        (0, ds + 1),
        (0, u64::MAX),
    ];
    for (sector, count) in bad {
        let mut c = mark.case("overflow", format!("range {sector}+{count}"));
        c.ranges = vec![BdsnapSectorRange { sector, count }];
        out.push(c);
        // The bad range second: nothing at all may be marked, and the call must fail.
        let mut c = mark.case("overflow", format!("valid range, then {sector}+{count}"));
        if let Arg::Bytes { bytes, .. } = &mut c.arg {
            put_u32(bytes, mc, 2);
        }
        c.ranges = vec![valid, BdsnapSectorRange { sector, count }];
        out.push(c);
    }
    out
}

/// Well-formed calls, for `--expect-eperm` (they must fail too, with EPERM).
fn well_formed(tmpls: &[Template]) -> Vec<Case> {
    tmpls
        .iter()
        .map(|t| {
            let mut c = t.case("well-formed", "as documented".into());
            if let Arg::Bytes { bytes, .. } = &mut c.arg {
                if t.cmd == BDSNAP_IOCTL_TRACKER_LIST {
                    put_u32(bytes, offset_of!(BdsnapTrackerList, count), 0);
                }
                if t.cmd == BDSNAP_IOCTL_SNAPSHOT_LIST {
                    put_u32(bytes, offset_of!(BdsnapSnapshotList, count), 0);
                }
            }
            c
        })
        .collect()
}

/// A random malformed call, derived from a command's template.
pub fn random_case(ctx: &Context, rng: &mut Rng) -> Case {
    let tmpls = templates(ctx);
    let t = rng.pick(&tmpls);
    let choices = if ctx.expect_eperm { 3 } else { 4 };
    match rng.below(choices) {
        0 => {
            // Random bytes, then make sure it is malformed: a must-be-zero byte set.
            let mut c = t.case("random", "random bytes".into());
            if let Arg::Bytes { bytes, .. } = &mut c.arg {
                rng.fill(bytes);
                let &(off, len) = rng.pick(&t.zero);
                bytes[off + rng.below(len as u64) as usize] |= 1 << rng.below(8);
            }
            c
        }
        1 => {
            let s = loop {
                let s = rng.below(1024) as u32;
                if s != t.bytes.len() as u32 {
                    break s;
                }
            };
            let mut c = t.case("random", format!("size={s}"));
            if let Arg::Bytes { bytes, .. } = &mut c.arg {
                put_u32(bytes, 0, s);
            }
            c
        }
        2 => {
            let p = 0xffff_8000_0000_0000 | rng.next_u64();
            let mut c = t.case("random", format!("arg={p:#x}"));
            c.arg = Arg::Pointer(Ptr::Raw(p));
            c
        }
        _ => {
            let magic = if rng.percent(50) {
                BDSNAP_IOCTL_MAGIC
            } else {
                *rng.pick(OTHER_MAGICS)
            };
            let nr = loop {
                let nr = rng.below(256) as u32;
                if magic != BDSNAP_IOCTL_MAGIC || !is_known_nr(nr) {
                    break nr;
                }
            };
            let cmd = ioc(
                rng.below(4) as u32,
                magic,
                nr,
                rng.below(u64::from(IOC_SIZE_MAX) + 1) as u32,
            );
            let mut c = t.case("random", format!("cmd={cmd:#x}"));
            c.cmd = cmd;
            c
        }
    }
}

/// The buffers calls point into, and the mappings bad pointers point at.
struct Arena {
    arg: AlignedBuf,
    scratch: AlignedBuf,
    ranges: AlignedBuf,
    /// Two pages: readable-writable, then PROT_NONE.
    guard: *mut u8,
    ro: *mut u8,
    page: usize,
}

impl Arena {
    fn new() -> std::io::Result<Self> {
        // SAFETY: sysconf has no memory effects.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| std::io::Error::other("no page size"))?;
        let map = |len, prot| {
            // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(p as *mut u8)
            }
        };
        let guard = map(2 * page, libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: the second page of the mapping just made.
        if unsafe { libc::mprotect(guard.add(page) as *mut _, page, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let ro = map(page, libc::PROT_READ)?;
        Ok(Self {
            // Covers the largest size an ioctl number can encode, whatever the kernel copies.
            arg: AlignedBuf::zeroed(IOC_SIZE_MAX as usize + 1),
            scratch: AlignedBuf::zeroed(MAP_SCRATCH),
            ranges: AlignedBuf::zeroed(RANGES_ROOM * size_of::<BdsnapSectorRange>()),
            guard,
            ro,
            page,
        })
    }

    fn resolve(&self, p: Ptr) -> u64 {
        match p {
            Ptr::Null => 0,
            Ptr::One => 1,
            Ptr::KernelDirectMap => 0xffff_8880_0000_0000,
            Ptr::KernelTop => 0xffff_ffff_ffff_f000,
            Ptr::NonCanonical => 0x0000_8000_0000_0000,
            Ptr::HighNonCanonical => 0x8000_0000_0000_0000,
            Ptr::NoAccess => self.guard as u64 + self.page as u64,
            Ptr::ReadOnly => self.ro as u64,
            Ptr::Scratch => self.scratch.addr(),
            Ptr::Ranges => self.ranges.addr(),
            Ptr::Raw(v) => v,
        }
    }

    /// Makes the call; `Ok(())` when the ioctl succeeded, else its errno.
    fn send(&mut self, fd: libc::c_int, c: &Case) -> Result<(), i32> {
        let rbuf = self.ranges.as_mut_slice();
        rbuf.fill(0);
        for (i, r) in c.ranges.iter().take(RANGES_ROOM).enumerate() {
            let at = i * size_of::<BdsnapSectorRange>();
            rbuf[at..at + size_of::<BdsnapSectorRange>()].copy_from_slice(r.as_bytes());
        }
        let addr = match &c.arg {
            Arg::Pointer(p) => self.resolve(*p),
            Arg::Bytes {
                bytes,
                embedded,
                straddle,
            } => {
                let mut b = bytes.clone();
                if let Some((off, p)) = embedded {
                    put_u64(&mut b, *off, self.resolve(*p));
                }
                if *straddle && b.len() > 8 && b.len() - 8 <= self.page {
                    let start = self.page - (b.len() - 8);
                    // SAFETY: writes b.len()-8 bytes ending exactly at the end of the first,
                    // writable page of the guard mapping.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            b.as_ptr(),
                            self.guard.add(start),
                            b.len() - 8,
                        )
                    };
                    self.guard as u64 + start as u64
                } else {
                    let a = self.arg.as_mut_slice();
                    a.fill(0);
                    a[..b.len()].copy_from_slice(&b);
                    self.arg.addr()
                }
            }
        };
        // SAFETY: the kernel validates `addr`; every address that is ours points to a buffer at
        // least as large as any size the call can make the kernel write (see the module doc).
        let rc = unsafe { libc::ioctl(fd, c.cmd as libc::c_ulong, addr as *mut libc::c_void) };
        if rc < 0 {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        } else {
            Ok(())
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mappings made in `new`, with their lengths.
        unsafe {
            libc::munmap(self.guard as *mut _, 2 * self.page);
            libc::munmap(self.ro as *mut _, self.page);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub category: &'static str,
    pub what: String,
    pub cmd: String,
    pub result: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub sent: u64,
    pub errno: BTreeMap<String, u64>,
    pub categories: BTreeMap<&'static str, u64>,
    /// Calls not certainly malformed that succeeded (allowed).
    pub lenient_successes: u64,
    pub failures: u64,
    /// The first failures, in full.
    pub failure_examples: Vec<Failure>,
    pub systematic_cases: usize,
    pub tracked: Option<String>,
    pub untracked: Option<String>,
    pub expect_eperm: bool,
    pub ok: bool,
}

impl Summary {
    fn fail(&mut self, c: &Case, result: String) {
        self.failures += 1;
        if self.failure_examples.len() < 50 {
            self.failure_examples.push(Failure {
                category: c.category,
                what: c.what.clone(),
                cmd: format!("{:#x}", c.cmd),
                result,
            });
        }
    }

    /// Judges one call's result.
    pub fn record(&mut self, c: &Case, result: Result<(), i32>, expect_eperm: bool) {
        self.sent += 1;
        *self.categories.entry(c.category).or_default() += 1;
        match result {
            Ok(()) if expect_eperm || c.expect == Expect::MustFail => {
                self.fail(c, "succeeded".into())
            }
            Ok(()) => self.lenient_successes += 1,
            Err(e) => {
                *self.errno.entry(errno::name(e)).or_default() += 1;
                if expect_eperm && e != libc::EPERM {
                    self.fail(c, format!("{} instead of EPERM", errno::name(e)));
                } else if !ALLOWED.contains(&e) {
                    self.fail(c, format!("{} is not an allowed errno", errno::name(e)));
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    #[error(transparent)]
    Ctl(#[from] CtlError),
    #[error("{what}: {error}")]
    Io {
        what: &'static str,
        error: std::io::Error,
    },
}

pub struct FuzzArgs {
    pub ctl: PathBuf,
    pub count: u64,
    pub seed: u64,
    pub tracked: Option<BlockDevice>,
    pub expect_eperm: bool,
    pub drop_caps: bool,
}

/// A block device that exists and is not tracked, from /sys/dev/block.
fn find_untracked(tracked: &[BdsnapDevId]) -> Option<BdsnapDevId> {
    let mut found: Vec<BdsnapDevId> = std::fs::read_dir("/sys/dev/block")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let (maj, min) = name.to_str()?.split_once(':')?;
            Some(BdsnapDevId {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
            })
        })
        .filter(|d| !tracked.contains(d))
        .collect();
    found.sort();
    found.into_iter().next()
}

pub fn run(a: &FuzzArgs) -> Result<Summary, FuzzError> {
    let ctl = Control::open(&a.ctl)?;
    let mut ctx = Context {
        tracked: None,
        untracked: None,
        snapshots_exist: false,
        expect_eperm: a.expect_eperm,
    };
    if !a.expect_eperm {
        let list: Vec<BdsnapDevId> = ctl.tracker_list()?.into_iter().map(|d| d.0).collect();
        ctx.untracked = find_untracked(&list);
        ctx.snapshots_exist = match ctl.snapshot_list() {
            Ok(ids) => !ids.is_empty(),
            // A module without snapshots refuses every snapshot call anyway.
            Err(e) if e.errno() == Some(libc::ENOTTY) => false,
            Err(e) => return Err(e.into()),
        };
        if let Some(dev) = &a.tracked {
            ctx.tracked = Some((dev.id, ctl.cbt_info(dev)?));
        }
    } else if let Some(dev) = &a.tracked {
        // Without the capability the info cannot be asked for; the device id is enough.
        ctx.tracked = Some((dev.id, placeholder_info()));
    }
    if a.drop_caps {
        caps::drop_sys_admin().map_err(|error| FuzzError::Io {
            what: "dropping CAP_SYS_ADMIN",
            error,
        })?;
    }
    let mut rng = Rng::new(a.seed);
    let mut cases = systematic(&ctx, &mut rng);
    let mut summary = Summary {
        systematic_cases: cases.len(),
        tracked: ctx
            .tracked
            .as_ref()
            .map(|t| format!("{}:{}", t.0.major, t.0.minor)),
        untracked: ctx.untracked.map(|u| format!("{}:{}", u.major, u.minor)),
        expect_eperm: a.expect_eperm,
        ..Default::default()
    };
    // Fisher-Yates with our generator: a short run still samples every category.
    if (a.count as usize) < cases.len() {
        for i in (1..cases.len()).rev() {
            cases.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    let mut arena = Arena::new().map_err(|error| FuzzError::Io {
        what: "mapping the fuzzer's buffers",
        error,
    })?;
    let fd = ctl.raw_fd();
    for i in 0..a.count {
        let c = match cases.get(i as usize) {
            Some(c) => c.clone(),
            None => random_case(&ctx, &mut rng),
        };
        let r = arena.send(fd, &c);
        summary.record(&c, r, a.expect_eperm);
    }
    // A buggy module could have obeyed a malformed detach: the tracker must still be there.
    if let (Some(dev), false) = (&a.tracked, a.expect_eperm) {
        if let Err(e) = ctl.cbt_info(dev) {
            summary.failures += 1;
            summary.failure_examples.push(Failure {
                category: "after",
                what: format!("{dev} is no longer tracked"),
                cmd: "CBT_INFO".into(),
                result: e.to_string(),
            });
        }
    }
    summary.ok = summary.failures == 0;
    Ok(summary)
}

fn placeholder_info() -> CbtInfo {
    CbtInfo {
        block_size: 65536,
        block_count: 16,
        device_sectors: 1 << 21,
        generation_id: Default::default(),
        snap_number: 1,
        state: 0,
        state_flags: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi;

    fn ctx(eperm: bool) -> Context {
        Context {
            tracked: Some((
                BdsnapDevId {
                    major: 253,
                    minor: 16,
                },
                placeholder_info(),
            )),
            untracked: Some(BdsnapDevId {
                major: 259,
                minor: 0,
            }),
            snapshots_exist: false,
            expect_eperm: eperm,
        }
    }

    /// Re-reads the struct a case sends, as the kernel would.
    fn bytes(c: &Case) -> &[u8] {
        match &c.arg {
            Arg::Bytes { bytes, .. } => bytes,
            Arg::Pointer(_) => &[],
        }
    }

    #[test]
    fn every_command_gets_every_category() {
        let cases = systematic(&ctx(false), &mut Rng::new(1));
        for (name, _, _) in uapi::COMMANDS {
            for cat in [
                "size",
                "reserved",
                "flags",
                "arg-pointer",
                "encoding",
                "unknown-number",
            ] {
                if cat == "flags" && matches!(*name, "TRACKER_LIST" | "SNAPSHOT_LIST") {
                    continue; // the only structs without a flags member
                }
                assert!(
                    cases
                        .iter()
                        .any(|c| c.category == cat && c.what.starts_with(name)),
                    "{name} lacks {cat}"
                );
            }
        }
        for cat in ["inner-pointer", "device", "overflow", "snapshot"] {
            assert!(cases.iter().any(|c| c.category == cat), "{cat}");
        }
        for name in [
            "SNAPSHOT_ADD",
            "SNAPSHOT_TAKE",
            "SNAPSHOT_DESTROY",
            "SNAPSHOT_INFO",
            "SNAPSHOT_APPEND_STORAGE",
            "SNAPSHOT_WAIT_EVENT",
        ] {
            assert!(
                cases
                    .iter()
                    .any(|c| c.category == "snapshot" && c.what.starts_with(name)),
                "{name} lacks absent snapshot ids"
            );
        }
        // One case per must-be-zero byte of CBT_INFO: 3 + 40.
        let n = cases
            .iter()
            .filter(|c| c.category == "reserved" && c.what.starts_with("CBT_INFO"))
            .count();
        assert_eq!(n, 43);
    }

    #[test]
    fn reserved_cases_differ_from_the_template_in_exactly_one_byte() {
        let ctx = ctx(false);
        let tmpls = templates(&ctx);
        for c in systematic(&ctx, &mut Rng::new(3))
            .iter()
            .filter(|c| c.category == "reserved")
        {
            let t = tmpls.iter().find(|t| t.cmd == c.cmd).unwrap();
            let diff = t.bytes.iter().zip(bytes(c)).filter(|(a, b)| a != b).count();
            assert_eq!(diff, 1, "{}", c.what);
        }
    }

    #[test]
    fn templates_are_well_formed() {
        // The malformations must be the only thing wrong: the templates carry the right size.
        for t in templates(&ctx(false)) {
            assert_eq!(ioc_size(t.cmd) as usize, t.bytes.len(), "{}", t.name);
            assert_eq!(
                u32::from_ne_bytes(t.bytes[..4].try_into().unwrap()) as usize,
                t.bytes.len()
            );
        }
    }

    #[test]
    fn unknown_numbers_avoid_known_commands_and_vfs_magics() {
        let mut rng = Rng::new(9);
        let cases: Vec<Case> = systematic(&ctx(false), &mut rng)
            .into_iter()
            .chain((0..5000).map(|_| random_case(&ctx(false), &mut rng)))
            .filter(|c| c.category != "well-formed")
            .collect();
        for c in &cases {
            let magic = (c.cmd >> 8) & 0xff;
            assert!(
                ![0x00, 0x54, 0x58, 0x66, 0x94, 0x15].contains(&magic),
                "{c:?}"
            );
            if uapi::command_name(c.cmd).is_some() {
                // A known number: the struct itself must be broken somewhere (or be absent).
                assert!(
                    !matches!(c.category, "unknown-number" | "encoding"),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn expect_eperm_sends_well_formed_calls_and_no_unknown_numbers() {
        let cases = systematic(&ctx(true), &mut Rng::new(1));
        assert!(cases
            .iter()
            .any(|c| c.category == "well-formed" && c.cmd == BDSNAP_IOCTL_VERSION));
        assert!(
            cases.iter().all(|c| uapi::command_name(c.cmd).is_some()),
            "only known commands"
        );
    }

    #[test]
    fn snapshot_templates_never_name_a_real_snapshot_or_wait() {
        for t in templates(&ctx(false))
            .iter()
            .filter(|t| t.name.starts_with("SNAPSHOT_"))
        {
            if let Some(off) = t.snapshot {
                let id = u64::from_ne_bytes(t.bytes[off..off + 8].try_into().unwrap());
                assert_eq!(id, ABSENT_SNAPSHOT, "{}", t.name);
            }
            if t.cmd == BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT {
                let off = offset_of!(BdsnapEvent, timeout_ms);
                assert_eq!(&t.bytes[off..off + 4], &[0; 4]);
            }
        }
        // CREATE and APPEND get an empty path from a read-only page, not a shared buffer the
        // kernel may have written into.
        for name in ["SNAPSHOT_CREATE", "SNAPSHOT_APPEND_STORAGE"] {
            let t = templates(&ctx(false))
                .into_iter()
                .find(|t| t.name == name)
                .unwrap();
            assert!(matches!(t.embedded, Some((_, Ptr::ReadOnly))), "{name}");
        }
    }

    #[test]
    fn judging() {
        let c = templates(&ctx(false))[0].case("size", "x".into());
        let mut s = Summary::default();
        s.record(&c, Err(libc::EINVAL), false);
        assert_eq!(s.failures, 0);
        s.record(&c, Ok(()), false);
        assert_eq!(
            s.failures, 1,
            "a malformed call that succeeds fails the run"
        );
        s.record(&c, Err(libc::EIO), false);
        assert_eq!(s.failures, 2, "EIO is not an allowed errno");
        s.record(&c, Err(libc::EINVAL), true);
        assert_eq!(s.failures, 3, "EINVAL where EPERM is expected");
        let mut lenient = c.clone();
        lenient.expect = Expect::MayPass;
        s.record(&lenient, Ok(()), false);
        assert_eq!((s.failures, s.lenient_successes), (3, 1));
        assert_eq!(s.sent, 5);
        assert_eq!(s.errno.get("EINVAL"), Some(&2));
    }
}

//! Rust mirror of `module/include/uapi/linux/bdsnap.h`. The header is the source of truth;
//! `tests/uapi_layout.rs` compiles it with the host C compiler and checks every size, offset
//! and ioctl number here against it.

/// ioctl type byte of every bdsnap command.
pub const BDSNAP_IOCTL_MAGIC: u32 = 0xBD;
/// Device node name under /dev.
pub const BDSNAP_CTL_NAME: &str = "bdsnap-ctl";

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOWR(type, nr, size)` as the asm-generic ioctl.h defines it (x86, arm64, riscv).
pub const fn iowr(ty: u32, nr: u32, size: usize) -> u32 {
    ((IOC_READ | IOC_WRITE) << IOC_DIRSHIFT)
        | (ty << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
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
            size: std::mem::size_of::<Self>() as u32,
            major: 0,
            minor: 0,
            patch: 0,
            reserved0: 0,
            flags: 0,
            reserved: [0; 48],
        }
    }
}

pub const BDSNAP_IOCTL_VERSION: u32 = iowr(
    BDSNAP_IOCTL_MAGIC,
    0x00,
    std::mem::size_of::<BdsnapVersion>(),
);

//! Block device ioctls from `linux/fs.h` that the test tool needs (libc does not export them
//! all), and an aligned buffer for O_DIRECT.

use crate::uapi::{ioc, IOC_NONE, IOC_READ};
use std::alloc::{self, Layout};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

const BLK: u32 = 0x12;
/// `BLKSSZGET = _IO(0x12, 104)`: logical sector size (int).
const BLKSSZGET: u32 = ioc(IOC_NONE, BLK, 104, 0);
/// `BLKDISCARD = _IO(0x12, 119)`: argument `u64[2]` = {start, length} in bytes.
const BLKDISCARD: u32 = ioc(IOC_NONE, BLK, 119, 0);
/// `BLKZEROOUT = _IO(0x12, 127)`: argument `u64[2]` = {start, length} in bytes.
const BLKZEROOUT: u32 = ioc(IOC_NONE, BLK, 127, 0);
/// `BLKGETSIZE64 = _IOR(0x12, 114, size_t)`: size in bytes (u64).
const BLKGETSIZE64: u32 = ioc(IOC_READ, BLK, 114, 8);

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Device size in bytes.
pub fn size_bytes(f: &File) -> io::Result<u64> {
    let mut size = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64 to the pointer, which is a live local.
    check(unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) })?;
    Ok(size)
}

/// Logical block size: the alignment O_DIRECT, discard and zero-out need.
pub fn logical_block_size(f: &File) -> io::Result<u64> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int to the pointer, which is a live local.
    check(unsafe { libc::ioctl(f.as_raw_fd(), BLKSSZGET as _, &mut size as *mut libc::c_int) })?;
    u64::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn range_ioctl(f: &File, request: u32, offset: u64, length: u64) -> io::Result<()> {
    let range = [offset, length];
    // SAFETY: the request reads two u64 from the pointer, a live local array.
    check(unsafe { libc::ioctl(f.as_raw_fd(), request as _, range.as_ptr()) })
}

pub fn discard(f: &File, offset: u64, length: u64) -> io::Result<()> {
    range_ioctl(f, BLKDISCARD, offset, length)
}

pub fn zero_out(f: &File, offset: u64, length: u64) -> io::Result<()> {
    range_ioctl(f, BLKZEROOUT, offset, length)
}

/// A zeroed heap buffer aligned for O_DIRECT (4096 covers every logical block size).
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuf {
    pub const ALIGN: usize = 4096;

    pub fn zeroed(len: usize) -> Self {
        let layout = match Layout::from_size_align(len.max(1), Self::ALIGN) {
            Ok(l) => l,
            Err(_) => alloc::handle_alloc_error(Layout::new::<u8>()),
        };
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            alloc::handle_alloc_error(layout);
        }
        Self { ptr, layout }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `layout.size()` initialised bytes we own.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above, shared.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }

    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { alloc::dealloc(self.ptr, self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_linux_fs_h() {
        // Values as the kernel headers expand them on x86_64.
        assert_eq!(BLKSSZGET, 0x1268);
        assert_eq!(BLKDISCARD, 0x1277);
        assert_eq!(BLKZEROOUT, 0x127f);
        assert_eq!(BLKGETSIZE64, 0x8008_1272);
    }

    #[test]
    fn aligned_buffer_is_aligned_and_zero() {
        let mut b = AlignedBuf::zeroed(10_000);
        assert_eq!(b.addr() % AlignedBuf::ALIGN as u64, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[9_999] = 1;
        assert_eq!(b.as_slice().len(), 10_000);
    }
}

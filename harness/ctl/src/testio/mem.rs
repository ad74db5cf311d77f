//! Memory mappings for the tests that need the kernel to meet memory in a given state: a
//! shared file mapping whose pages are not faulted in yet (`cbt-read-mmap`), anonymous memory
//! touched page by page (`hog`). The only `mmap` calls of the tool are here.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// One mapping, unmapped on drop. Nothing is pre-faulted: no `MAP_POPULATE`, and creating the
/// slice views below touches no page.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// `len` bytes of `file` from offset 0, `MAP_SHARED`, readable and writable: a write to a
    /// page faults it in through the file system (`page_mkwrite`).
    pub fn file_shared(file: &File, len: usize) -> io::Result<Self> {
        Self::map(
            len,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            libc::PROT_READ | libc::PROT_WRITE,
        )
    }

    /// `len` bytes of private anonymous memory (zero pages until written).
    pub fn anonymous(len: usize) -> io::Result<Self> {
        Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    }

    fn map(len: usize, flags: libc::c_int, fd: libc::c_int, prot: libc::c_int) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a new mapping at an address of the kernel's choosing; it aliases no Rust
        // object. The result is checked before use.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping as bytes. A file mapping's contents are the file's, so every byte is
    /// initialised; another process writing the file meanwhile changes them under us, which a
    /// test tool accepts (no invariant of ours depends on them).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable and writable bytes that only this
        // object hands out, borrowed mutably here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above, shared.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Writes one byte in every `page`-byte page, so that each is faulted in and backed by
    /// its own memory (not the shared zero page). Volatile, so the stores stay even though
    /// nothing reads them.
    pub fn touch_pages(&mut self, page: usize, value: u8) {
        let page = page.max(1);
        for at in (0..self.len).step_by(page) {
            // SAFETY: `at < len`, inside the live, writable mapping.
            unsafe { self.ptr.add(at).write_volatile(value) };
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing borrows them any more.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&p| p > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn a_shared_file_mapping_writes_through_to_the_file() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[0u8; 8192]).unwrap();
        {
            let mut m = Mapping::file_shared(&f, 8192).unwrap();
            assert_eq!(m.len(), 8192);
            m.as_mut_slice()[5000] = 7;
        }
        let mut back = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back[5000], 7);
        assert_eq!(back.iter().filter(|&&b| b != 0).count(), 1);
    }

    #[test]
    fn anonymous_pages_are_touched_once_each() {
        let page = page_size();
        let mut m = Mapping::anonymous(3 * page + 1).unwrap();
        assert!(m.as_slice().iter().all(|&b| b == 0));
        m.touch_pages(page, 0xa5);
        let s = m.as_slice();
        let set: Vec<usize> = (0..s.len()).filter(|&i| s[i] != 0).collect();
        assert_eq!(set, vec![0, page, 2 * page, 3 * page]);
    }

    #[test]
    fn an_empty_mapping_is_refused() {
        assert_eq!(
            Mapping::anonymous(0).err().and_then(|e| e.raw_os_error()),
            Some(libc::EINVAL)
        );
    }
}

//! Dropping CAP_SYS_ADMIN after opening the control device, so the fuzzer can check that every
//! command refuses a caller without it (the device node is root-only, so an unprivileged user
//! could not even open it; a process that opened it and then lost the capability is exactly
//! the case the module's per-call check exists for).
//!
//! Uses capget/capset directly (libc has no wrapper): clears the capability from the effective,
//! permitted and inheritable sets of this thread. The tool is single-threaded when it does this.

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_SYS_ADMIN: u32 = 21;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> std::io::Result<[CapData; 2]> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 capget writes two CapData structs into `data`, a live local array.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(data)
}

/// Whether this thread has CAP_SYS_ADMIN in its effective set.
pub fn has_sys_admin() -> std::io::Result<bool> {
    Ok(capget()?[0].effective & (1 << CAP_SYS_ADMIN) != 0)
}

/// Removes CAP_SYS_ADMIN from this thread and checks that it is gone.
pub fn drop_sys_admin() -> std::io::Result<()> {
    let mut data = capget()?;
    let bit = !(1u32 << CAP_SYS_ADMIN);
    data[0].effective &= bit;
    data[0].permitted &= bit;
    data[0].inheritable &= bit;
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: version 3 capset reads the header and two CapData structs, both live locals.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if has_sys_admin()? {
        return Err(std::io::Error::other(
            "CAP_SYS_ADMIN still effective after capset",
        ));
    }
    Ok(())
}

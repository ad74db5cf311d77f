//! errno names, so messages say `EBUSY` rather than a translated sentence, and what each errno
//! means for each bdsnap command (the header documents the kernel's answers).

/// The symbolic name of an errno value (`"EINVAL"`), or `"E<n>"` for one not listed.
pub fn name(errno: i32) -> String {
    let known = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOTTY => "ENOTTY",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOTBLK => "ENOTBLK",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ENOMSG => "ENOMSG",
        libc::ENODATA => "ENODATA",
        libc::EXDEV => "EXDEV",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EFBIG => "EFBIG",
        libc::EISDIR => "EISDIR",
        libc::ETXTBSY => "ETXTBSY",
        libc::EDQUOT => "EDQUOT",
        _ => return format!("E{errno}"),
    };
    known.to_string()
}

/// What `errno` from `command` (without the `BDSNAP_IOCTL_` prefix) means, in a few words.
pub fn meaning(command: &str, errno: i32) -> String {
    let specific = match (command, errno) {
        (_, libc::EPERM) => Some("CAP_SYS_ADMIN is required"),
        (_, libc::ENOTTY) => Some("the module does not know this command (version mismatch?)"),
        ("TRACKER_ATTACH", libc::EBUSY) => {
            Some("already tracked, or its disk or one of its partitions is in a snapshot")
        }
        ("TRACKER_DETACH", libc::EBUSY) => Some("the device is in a snapshot (destroy it first)"),
        ("TRACKER_ATTACH", libc::ENODEV) => Some("no such block device"),
        ("TRACKER_ATTACH", libc::EOPNOTSUPP) => Some("zoned devices cannot be tracked"),
        ("TRACKER_DETACH", libc::ENOENT) => Some("not tracked"),
        ("CBT_INFO" | "CBT_READ" | "CBT_MARK_DIRTY", libc::ENOENT) => Some("not tracked"),
        ("CBT_INFO" | "CBT_READ" | "CBT_MARK_DIRTY", libc::ENODATA) => {
            Some("tracked with --filter-only: no CBT map")
        }
        ("CBT_READ", libc::EINVAL) => Some("invalid argument (range beyond the map?)"),
        ("CBT_READ", libc::EAGAIN) => {
            Some("a snapshot switched the read map during the call (retry)")
        }
        ("CBT_MARK_DIRTY", libc::EINVAL) => Some("invalid argument (range beyond the device?)"),
        ("SNAPSHOT_CREATE" | "SNAPSHOT_APPEND_STORAGE", libc::ENOENT) => {
            Some("no such storage file (or no such snapshot)")
        }
        ("SNAPSHOT_CREATE" | "SNAPSHOT_APPEND_STORAGE", libc::EXDEV) => {
            Some("the storage is on a device of a snapshot (or one stacked on it, or a snapshot image)")
        }
        ("SNAPSHOT_CREATE" | "SNAPSHOT_APPEND_STORAGE", libc::EINVAL) => {
            Some("invalid argument (storage not a regular file or block device, or too short?)")
        }
        ("SNAPSHOT_ADD", libc::ENOENT) => Some("no such snapshot, or the device is not tracked"),
        ("SNAPSHOT_ADD", libc::EBUSY) => {
            Some("snapshot already taken, the device is in a snapshot already, or another device on its disk is tracked")
        }
        ("SNAPSHOT_ADD", libc::EXDEV) => Some(
            "difference storage of a snapshot is on this device or on a device stacked on it",
        ),
        ("SNAPSHOT_ADD", libc::ENODEV) => {
            Some("the device's tracker went away (detached or removed) during the call")
        }
        ("SNAPSHOT_ADD", libc::EINVAL) => Some("the device is tracked with --filter-only"),
        ("SNAPSHOT_TAKE", libc::EBUSY) => Some("already taken (or corrupted)"),
        ("SNAPSHOT_TAKE", libc::EINVAL) => Some("invalid argument (no device added?)"),
        ("SNAPSHOT_TAKE", libc::ETIMEDOUT) => Some(
            "writes in flight at the switch did not complete in time (module parameter take_wait_ms); nothing was taken",
        ),
        ("SNAPSHOT_TAKE", libc::EFBIG) => {
            Some("a device needs more chunks than the module parameter chunk_max_count allows")
        }
        ("SNAPSHOT_TAKE", libc::EIO | libc::ENODEV) => {
            Some("a device of the snapshot went away during the take")
        }
        (
            "SNAPSHOT_TAKE" | "SNAPSHOT_DESTROY" | "SNAPSHOT_INFO" | "SNAPSHOT_WAIT_EVENT",
            libc::ENOENT,
        ) => Some("no such snapshot"),
        ("SNAPSHOT_WAIT_EVENT", libc::EINTR) => Some("interrupted by a signal"),
        _ => None,
    };
    match specific {
        Some(s) => s.to_string(),
        None => std::io::Error::from_raw_os_error(errno)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_lowercase(),
    }
}

/// Why a snapshot was corrupted, from the positive errno of its CORRUPTED event or of
/// SNAPSHOT_INFO; `None` for 0 and for errnos the header does not document.
pub fn corruption_reason(errno: u32) -> Option<&'static str> {
    let errno = i32::try_from(errno).ok()?;
    Some(match errno {
        libc::ENOSPC => "difference storage exhausted",
        libc::EIO => "difference storage or original device read failed",
        libc::ENODEV => "a device was removed",
        libc::ENOMEM => "out of memory in the I/O path",
        libc::EDQUOT => "chunk metadata limit reached (chunk_memory_max_mib)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_meanings() {
        assert_eq!(name(libc::EBUSY), "EBUSY");
        assert_eq!(name(4095), "E4095");
        assert_eq!(
            meaning("TRACKER_ATTACH", libc::EBUSY),
            "already tracked, or its disk or one of its partitions is in a snapshot"
        );
        assert_eq!(
            meaning("CBT_INFO", libc::ENODATA),
            "tracked with --filter-only: no CBT map"
        );
        assert_eq!(meaning("TRACKER_DETACH", libc::ENOENT), "not tracked");
        assert_eq!(meaning("VERSION", libc::EFAULT), "bad address");
        assert_eq!(name(libc::EXDEV), "EXDEV");
        assert_eq!(meaning("SNAPSHOT_INFO", libc::ENOENT), "no such snapshot");
    }

    #[test]
    fn the_0_3_errors_are_explained() {
        assert_eq!(name(libc::EDQUOT), "EDQUOT");
        assert_eq!(
            meaning("TRACKER_ATTACH", libc::EOPNOTSUPP),
            "zoned devices cannot be tracked"
        );
        assert_eq!(
            meaning("SNAPSHOT_ADD", libc::EXDEV),
            "difference storage of a snapshot is on this device or on a device stacked on it"
        );
        assert!(meaning("SNAPSHOT_ADD", libc::ENODEV).contains("tracker went away"));
        for cmd in ["SNAPSHOT_CREATE", "SNAPSHOT_APPEND_STORAGE"] {
            assert_eq!(
                meaning(cmd, libc::EXDEV),
                "the storage is on a device of a snapshot (or one stacked on it, or a snapshot image)"
            );
        }
        assert!(meaning("SNAPSHOT_TAKE", libc::ETIMEDOUT).starts_with(
            "writes in flight at the switch did not complete in time (module parameter take_wait_ms)"
        ));
        assert!(meaning("SNAPSHOT_TAKE", libc::EFBIG).contains("chunk_max_count"));
        assert!(meaning("CBT_READ", libc::EAGAIN).contains("retry"));
        // Elsewhere EAGAIN is the C library's sentence.
        assert_eq!(
            meaning("VERSION", libc::EAGAIN),
            "resource temporarily unavailable"
        );
        assert_eq!(
            corruption_reason(libc::EDQUOT as u32),
            Some("chunk metadata limit reached (chunk_memory_max_mib)")
        );
        assert_eq!(
            corruption_reason(libc::ENOSPC as u32),
            Some("difference storage exhausted")
        );
        assert_eq!(corruption_reason(0), None);
        assert_eq!(corruption_reason(u32::MAX), None);
    }
}

//! File-system helpers for building root trees as root without ever touching
//! the host outside the cache directory.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ImageError;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

/// An exclusive `flock` on a file, released when dropped. Serialises builds
/// sharing one cache directory (parallel harness runs).
pub(crate) struct CacheLock {
    _file: File,
}

impl CacheLock {
    pub(crate) fn acquire(path: &Path, log: &mut dyn FnMut(&str)) -> Result<Self, ImageError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err(format!("opening lock {}", path.display())))?;
        let fd = file.as_raw_fd();
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            log(&format!(
                "waiting for another build holding {}",
                path.display()
            ));
            // SAFETY: as above.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(io_err(format!("locking {}", path.display()))(
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(Self { _file: file })
    }
}

/// Decodes the octal escapes (`\040`) mountinfo uses for blanks.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// Mount points at or below `dir` (deepest first).
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let file =
        File::open("/proc/self/mountinfo").map_err(io_err("reading /proc/self/mountinfo"))?;
    let mut found = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io_err("reading /proc/self/mountinfo"))?;
        if let Some(field) = line.split(' ').nth(4) {
            let point = unescape_mountinfo(field);
            if point.starts_with(dir) {
                found.push(point);
            }
        }
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(found)
}

/// Lazily unmounts everything below `dir`; fails if anything stays mounted.
/// An interrupted debootstrap can leave /proc (or, in some containers, bind
/// mounts of the host's /dev) inside its target: deleting through those would
/// delete host files.
pub(crate) fn unmount_all_under(dir: &Path) -> Result<(), ImageError> {
    let Ok(dir) = dir.canonicalize() else {
        return Ok(()); // does not exist: nothing mounted there
    };
    for point in mounts_under(&dir)? {
        let c = CString::new(point.as_os_str().as_bytes()).map_err(|_| ImageError::Unsafe {
            message: format!("mount point {} has a NUL byte", point.display()),
        })?;
        // SAFETY: umount2 with a valid C string; MNT_DETACH never blocks.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    let left = mounts_under(&dir)?;
    if let Some(point) = left.first() {
        return Err(ImageError::Unsafe {
            message: format!(
                "{} is still mounted; refusing to delete it",
                point.display()
            ),
        });
    }
    Ok(())
}

/// Removes a build tree or image (file or directory) after unmounting anything
/// inside it. Missing paths are fine.
pub(crate) fn remove_tree(path: &Path) -> Result<(), ImageError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("inspecting {}", path.display()))(e)),
        Ok(meta) if meta.is_dir() => {
            unmount_all_under(path)?;
            // remove_dir_all does not follow symlinks (the rootfs has absolute
            // ones such as /dev/fd -> /proc/self/fd).
            std::fs::remove_dir_all(path).map_err(io_err(format!("removing {}", path.display())))
        }
        Ok(_) => std::fs::remove_file(path).map_err(io_err(format!("removing {}", path.display()))),
    }
}

/// Resolves a guest path (`/usr/sbin/x`) inside `root`, creating parent
/// directories, and checks that symlinks in the rootfs (e.g. the merged-/usr
/// `/sbin -> usr/sbin`) do not lead outside `root`.
pub(crate) fn guest_path(root: &Path, guest: &str) -> Result<PathBuf, ImageError> {
    let rel = Path::new(guest.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(ImageError::Unsafe {
            message: format!("guest path {guest} is not a plain absolute path"),
        });
    }
    let host = root.join(rel);
    let parent = host.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
    let real_root = root
        .canonicalize()
        .map_err(io_err(format!("resolving {}", root.display())))?;
    let real_parent = parent
        .canonicalize()
        .map_err(io_err(format!("resolving {}", parent.display())))?;
    if !real_parent.starts_with(&real_root) {
        return Err(ImageError::Unsafe {
            message: format!(
                "guest path {guest} resolves outside the rootfs ({})",
                real_parent.display()
            ),
        });
    }
    let name = host.file_name().unwrap_or_default();
    Ok(real_parent.join(name))
}

/// Writes a file inside the rootfs with the given mode.
pub(crate) fn write_guest_file(
    root: &Path,
    guest: &str,
    content: &[u8],
    mode: u32,
) -> Result<(), ImageError> {
    let path = guest_path(root, guest)?;
    std::fs::write(&path, content).map_err(io_err(format!("writing {}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// Bytes the tree would take in ext4: every file rounded up to 4 KiB blocks,
/// plus one 256-byte inode per entry.
pub(crate) fn tree_size(dir: &Path) -> Result<(u64, u64), ImageError> {
    let mut bytes = 0u64;
    let mut inodes = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(io_err(format!("listing {}", d.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("listing {}", d.display())))?;
            let meta = std::fs::symlink_metadata(entry.path())
                .map_err(io_err(format!("inspecting {}", entry.path().display())))?;
            inodes += 1;
            bytes += meta.len().div_ceil(4096) * 4096;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok((bytes, inodes))
}

/// Runs a command, sending each line of its standard output and error to
/// `log` as it comes, and fails with the last lines when it exits non-zero.
pub(crate) fn run_logged(cmd: &mut Command, log: &mut dyn FnMut(&str)) -> Result<(), ImageError> {
    let shown = format!("{cmd:?}");
    log(&format!("$ {shown}"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(format!("starting {shown}")))?;
    // `log` is not Send: two reader threads feed one channel read here.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_reader(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_reader(err, tx.clone()));
    }
    drop(tx);
    let mut tail: VecDeque<String> = VecDeque::new();
    for line in rx {
        log(&line);
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .wait()
        .map_err(io_err(format!("waiting for {shown}")))?;
    if !status.success() {
        return Err(ImageError::Command {
            command: shown,
            status: status.to_string(),
            output_tail: Vec::from(tail).join("\n"),
        });
    }
    Ok(())
}

fn spawn_reader(
    stream: impl std::io::Read + Send + 'static,
    tx: std::sync::mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let line = line.unwrap_or_else(|e| format!("(unreadable output: {e})"));
            if tx.send(line).is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), PathBuf::from("/a b/c"));
        assert_eq!(unescape_mountinfo("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape_mountinfo("/end\\04"), PathBuf::from("/end\\04"));
    }

    #[test]
    fn guest_paths_follow_relative_symlinks_but_never_escape() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/sbin")).unwrap();
        std::os::unix::fs::symlink("usr/sbin", root.path().join("sbin")).unwrap();
        let p = guest_path(root.path(), "/sbin/init").unwrap();
        assert_eq!(p, root.path().canonicalize().unwrap().join("usr/sbin/init"));

        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("evil")).unwrap();
        let e = guest_path(root.path(), "/evil/x").unwrap_err();
        assert!(matches!(e, ImageError::Unsafe { .. }), "{e}");
        assert!(guest_path(root.path(), "/a/../../x").is_err());
    }

    #[test]
    fn removing_a_plain_tree_works_and_missing_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd", tree.join("a/fd")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        remove_tree(&tree).unwrap();
    }

    #[test]
    fn failing_command_reports_its_output() {
        let mut lines = Vec::new();
        let e = run_logged(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            &mut |l: &str| lines.push(l.to_string()),
        )
        .unwrap_err()
        .to_string();
        assert!(lines.iter().any(|l| l == "out") && lines.iter().any(|l| l == "err"));
        assert!(e.contains("exit status: 3") && e.contains("err"), "{e}");
    }
}

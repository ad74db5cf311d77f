//! One debootstrap chroot per Debian suite: that suite's compiler, make and libc headers, and
//! later the kernel headers. Cached under `<cache>/chroots/<suite>-<key>/`, where the key covers
//! everything that decides its content, so a changed recipe builds a new one.

use crate::KernelsError;
use bdsnap_host::{CmdLog, ContentKey};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the way chroots are made changes, so old ones are rebuilt.
const RECIPE_VERSION: &str = "1";
/// Packages every build chroot has besides the suite's compiler.
const BASE_PACKAGES: &[&str] = &["make", "libc6-dev", "ca-certificates", "xz-utils", "perl"];
const READY_MARK: &str = ".bdsnap-ready";

/// A ready chroot.
#[derive(Debug, Clone)]
pub struct Chroot {
    pub root: PathBuf,
    pub suite: String,
    /// Whether it came from the cache rather than being built by this run.
    pub cached: bool,
}

fn chroot_err(kernel: &str, source: bdsnap_host::CmdError) -> KernelsError {
    KernelsError::Command {
        kernel: kernel.to_string(),
        source,
    }
}

fn io_err(kernel: &str, path: &Path, source: std::io::Error) -> KernelsError {
    KernelsError::Io {
        kernel: kernel.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

impl Chroot {
    /// The cache key of a chroot for `suite` with `compiler`.
    pub fn key(suite: &str, compiler: &str) -> String {
        let mut key = ContentKey::new("chroot");
        key.add_str("recipe", RECIPE_VERSION)
            .add_str("suite", suite)
            .add_str("compiler", compiler)
            .add_str("packages", &BASE_PACKAGES.join(","));
        key.short()
    }

    /// Returns the cached chroot for `suite`, making it with debootstrap if needed.
    pub fn ensure(
        cache: &Path,
        kernel: &str,
        suite: &str,
        compiler: &str,
        log: &CmdLog,
    ) -> Result<Self, KernelsError> {
        let parent = cache.join("chroots");
        let root = parent.join(format!("{suite}-{}", Self::key(suite, compiler)));
        if root.join(READY_MARK).is_file() {
            return Ok(Self {
                root,
                suite: suite.to_string(),
                cached: true,
            });
        }
        std::fs::create_dir_all(&parent).map_err(|e| io_err(kernel, &parent, e))?;
        let tmp = parent.join(format!(
            ".{}.tmp",
            root.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        remove_tree(&tmp).map_err(|e| io_err(kernel, &tmp, e))?;
        let include = format!("{compiler},{}", BASE_PACKAGES.join(","));
        log.run(Command::new("debootstrap").args([
            "--variant=minbase",
            &format!("--include={include}"),
            suite,
            &tmp.to_string_lossy(),
        ]))
        .map_err(|e| chroot_err(kernel, e))?;
        let mark = tmp.join(READY_MARK);
        std::fs::write(&mark, format!("{suite} {compiler}\n"))
            .map_err(|e| io_err(kernel, &mark, e))?;
        std::fs::rename(&tmp, &root).map_err(|e| io_err(kernel, &root, e))?;
        // Older chroots of this suite belong to recipes that no longer exist.
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{suite}-")) && entry.path() != root {
                    let _ = remove_tree(&entry.path());
                }
            }
        }
        Ok(Self {
            root,
            suite: suite.to_string(),
            cached: false,
        })
    }

    /// Runs `args` inside the chroot with a clean environment; `/proc` is mounted for the call
    /// (7.2's objtool needs it) and unmounted afterwards whatever happened.
    pub fn run(
        &self,
        kernel: &str,
        log: &CmdLog,
        args: &[&str],
    ) -> Result<bdsnap_host::Output, KernelsError> {
        let proc_dir = self.root.join("proc");
        let _mount = ProcMount::new(&proc_dir, log).map_err(|e| chroot_err(kernel, e))?;
        let mut cmd = Command::new("chroot");
        cmd.arg(&self.root)
            .args([
                "env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                "HOME=/root",
                "DEBIAN_FRONTEND=noninteractive",
            ])
            .args(args);
        log.run(&mut cmd).map_err(|e| chroot_err(kernel, e))
    }

    /// Refreshes the suite's package lists (the newest kernel is resolved from them).
    pub fn apt_update(&self, kernel: &str, log: &CmdLog) -> Result<(), KernelsError> {
        let dst = self.root.join("etc/resolv.conf");
        // A dangling resolv.conf symlink from the suite's packages would make the copy fail.
        let _ = std::fs::remove_file(&dst);
        std::fs::copy("/etc/resolv.conf", &dst).map_err(|e| io_err(kernel, &dst, e))?;
        // Package registries may serve a frozen snapshot of a suite whose Release file has
        // passed its Valid-Until date (seen with sid); the signatures are still checked.
        let conf = self.root.join("etc/apt/apt.conf.d/99bdsnap");
        std::fs::write(&conf, "Acquire::Check-Valid-Until \"false\";\n")
            .map_err(|e| io_err(kernel, &conf, e))?;
        self.run(kernel, log, &["apt-get", "update", "-q"])?;
        Ok(())
    }
}

/// `/proc` mounted inside a chroot for as long as this lives.
struct ProcMount {
    dir: PathBuf,
    log: CmdLog,
    mounted: bool,
}

impl ProcMount {
    fn new(dir: &Path, log: &CmdLog) -> Result<Self, bdsnap_host::CmdError> {
        let already = std::fs::read_to_string("/proc/self/mounts")
            .map(|m| {
                m.lines()
                    .any(|l| l.split(' ').nth(1) == Some(&*dir.to_string_lossy()))
            })
            .unwrap_or(false);
        if !already {
            log.run(Command::new("mount").args(["-t", "proc", "proc"]).arg(dir))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            log: log.clone(),
            mounted: !already,
        })
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        if self.mounted {
            // Lazy, so a process still holding it cannot leave /proc mounted in the cache.
            let _ = self
                .log
                .run(Command::new("umount").arg("-l").arg(&self.dir));
        }
    }
}

/// Removes a directory tree if it exists, refusing to follow a mount (a leftover /proc).
pub(crate) fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let proc_dir = dir.join("proc");
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(&*proc_dir.to_string_lossy()))
        })
        .unwrap_or(false);
    if mounted {
        let _ = Command::new("umount").arg("-l").arg(&proc_dir).status();
    }
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_suite_and_compiler() {
        let a = Chroot::key("sid", "gcc-16");
        assert_eq!(a, Chroot::key("sid", "gcc-16"));
        assert_ne!(a, Chroot::key("sid", "gcc-15"));
        assert_ne!(a, Chroot::key("trixie", "gcc-16"));
    }

    #[test]
    fn cached_chroot_is_reused_without_debootstrap() {
        let cache = tempfile::tempdir().unwrap();
        let root = cache
            .path()
            .join("chroots")
            .join(format!("sid-{}", Chroot::key("sid", "gcc-16")));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(READY_MARK), "x").unwrap();
        let c = Chroot::ensure(cache.path(), "7.2", "sid", "gcc-16", &CmdLog::discard()).unwrap();
        assert!(c.cached);
        assert_eq!(c.root, root);
    }
}

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
/// Run by `sh` in the command's own mount namespace: mounts `/proc` and the bind mounts
/// (`$1` the root, `$2` how many host/target pairs follow), then execs the chroot.
const IN_NAMESPACE: &str = r#"set -e
root=$1 n=$2; shift 2
mount -t proc proc "$root/proc"
while [ "$n" -gt 0 ]; do mount --bind "$1" "$2"; shift 2; n=$((n - 1)); done
exec chroot "$root" "$@"
"#;

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

    /// Runs `args` inside the chroot with a clean environment and `/proc` mounted (7.2's
    /// objtool needs it).
    pub fn run(
        &self,
        kernel: &str,
        log: &CmdLog,
        args: &[&str],
    ) -> Result<bdsnap_host::Output, KernelsError> {
        self.run_with_binds(kernel, log, &[], args)
    }

    /// Like [`Chroot::run`], with each `(host directory, absolute path inside)` of `binds`
    /// bind-mounted for the call (a kernel tree kept in the cache, outside the chroot).
    ///
    /// The mounts are made in a mount namespace of the command's own (`unshare --mount`), so
    /// they vanish with it whatever happens, and concurrent commands in the same chroot (a
    /// kernel build beside a module build) never unmount each other's `/proc`.
    pub fn run_with_binds(
        &self,
        kernel: &str,
        log: &CmdLog,
        binds: &[(PathBuf, PathBuf)],
        args: &[&str],
    ) -> Result<bdsnap_host::Output, KernelsError> {
        let root = self.root.display().to_string();
        let mut mounts = Vec::new();
        for (host, inside) in binds {
            let target = self.root.join(inside.strip_prefix("/").unwrap_or(inside));
            std::fs::create_dir_all(&target).map_err(|e| io_err(kernel, &target, e))?;
            mounts.push(host.display().to_string());
            mounts.push(target.display().to_string());
        }
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            IN_NAMESPACE,
            "sh",
        ])
        .arg(&root)
        .arg(binds.len().to_string())
        .args(&mounts)
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

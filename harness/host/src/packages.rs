//! Host packages: find what is missing and install it when root, or say exactly what to run.

use crate::cmd::{CmdError, CmdLog};
use std::path::Path;
use std::process::Command;

/// A program the harness runs and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTool {
    pub program: &'static str,
    pub package: &'static str,
}

impl HostTool {
    pub const fn new(program: &'static str, package: &'static str) -> Self {
        Self { program, package }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("missing host packages ({packages}); install them with:\n    {command}")]
    Missing { packages: String, command: String },
    #[error("installing host packages failed: {0}")]
    Install(#[from] CmdError),
}

/// Whether `program` is an executable on `PATH` (or an existing absolute path).
pub fn have_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin"].map(std::path::PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .any(|dir| dir.join(program).is_file())
}

/// The packages of `tools` whose program is missing, without duplicates, in order.
pub fn missing_packages(tools: &[HostTool], have: &dyn Fn(&str) -> bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for tool in tools {
        if !have(tool.program) && !out.contains(&tool.package) {
            out.push(tool.package);
        }
    }
    out
}

/// The apt-get arguments that install `packages`. Debian 12 machines may carry a backported
/// qemu-utils that conflicts with bookworm's qemu-system-x86, so qemu-utils is pinned to the
/// version qemu-system-x86 would be installed at (`pinned_qemu`), and downgrades are allowed.
pub fn apt_install_args(packages: &[&str], pinned_qemu: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["install", "-y", "-q", "--no-install-recommends"]
        .map(String::from)
        .to_vec();
    let mut names: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    if let Some(version) = pinned_qemu.filter(|_| packages.contains(&"qemu-system-x86")) {
        args.push("--allow-downgrades".into());
        names.retain(|p| p != "qemu-utils");
        names.push(format!("qemu-utils={version}"));
    }
    args.extend(names);
    args
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn candidate_version(log: &CmdLog, package: &str) -> Option<String> {
    let out = log
        .run(Command::new("apt-cache").args(["policy", package]))
        .ok()?;
    out.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(|v| v.trim().to_string())
        .filter(|v| v != "(none)")
}

/// Makes sure every tool is present: installs the missing packages when running as root,
/// otherwise fails with the exact command to run.
pub fn ensure_host_tools(
    tools: &[HostTool],
    log: &CmdLog,
) -> Result<Vec<&'static str>, PackageError> {
    let missing = missing_packages(tools, &have_program);
    if missing.is_empty() {
        return Ok(missing);
    }
    if !is_root() {
        let args = apt_install_args(&missing, None);
        return Err(PackageError::Missing {
            packages: missing.join(", "),
            command: format!("sudo apt-get {}", args.join(" ")),
        });
    }
    log.run(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let pinned = if missing.contains(&"qemu-system-x86") {
        candidate_version(log, "qemu-system-x86")
    } else {
        None
    };
    let args = apt_install_args(&missing, pinned.as_deref());
    log.run(
        Command::new("apt-get")
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLS: &[HostTool] = &[
        HostTool::new("qemu-system-x86_64", "qemu-system-x86"),
        HostTool::new("qemu-img", "qemu-utils"),
        HostTool::new("debootstrap", "debootstrap"),
        HostTool::new("mkfs.ext4", "e2fsprogs"),
        HostTool::new("debugfs", "e2fsprogs"),
    ];

    #[test]
    fn only_missing_packages_once_each() {
        let have = |p: &str| p == "debootstrap";
        assert_eq!(
            missing_packages(TOOLS, &have),
            vec!["qemu-system-x86", "qemu-utils", "e2fsprogs"]
        );
        assert!(missing_packages(TOOLS, &|_| true).is_empty());
    }

    #[test]
    fn qemu_utils_is_pinned_beside_qemu_system() {
        let args = apt_install_args(&["qemu-system-x86", "qemu-utils"], Some("1:7.2+dfsg-7"));
        assert!(args.contains(&"--allow-downgrades".to_string()));
        assert!(args.contains(&"qemu-utils=1:7.2+dfsg-7".to_string()));
        assert!(!args.contains(&"qemu-utils".to_string()));
        let plain = apt_install_args(&["debootstrap"], Some("1:7.2"));
        assert_eq!(plain.last().map(String::as_str), Some("debootstrap"));
        assert!(!plain.contains(&"--allow-downgrades".to_string()));
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(have_program("sh"));
        assert!(!have_program("surely-no-such-program-bdsnap"));
    }
}

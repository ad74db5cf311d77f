//! The kernel's own style checker, `scripts/checkpatch.pl`, taken from a suite's
//! `linux-source` package (it is not in any headers package) and cached with the two data
//! files it reads beside it.

use crate::chroot::remove_tree;
use crate::{Kernel, KernelsError};
use bdsnap_host::CmdLog;
use std::path::{Path, PathBuf};
use std::process::Command;

const FILES: &[&str] = &["checkpatch.pl", "spelling.txt", "const_structs.checkpatch"];
const READY_MARK: &str = ".bdsnap-ready";

/// The checkpatch.pl of `kernel`'s suite (the newest `linux-source` there), fetched once.
pub fn ensure_checkpatch(
    kernel: &Kernel,
    cache: &Path,
    log: &CmdLog,
) -> Result<PathBuf, KernelsError> {
    let name = &kernel.spec.name;
    let io = |path: &Path, source| KernelsError::Io {
        kernel: name.clone(),
        path: path.to_path_buf(),
        source,
    };
    let cmd = |source| KernelsError::Command {
        kernel: name.clone(),
        source,
    };
    let chroot = kernel
        .chroot
        .as_ref()
        .ok_or_else(|| KernelsError::Prepare {
            kernel: name.clone(),
            message: "checkpatch comes from a Debian suite's linux-source: use a packaged kernel"
                .into(),
        })?;
    let out = chroot.run(name, log, &["apt-cache", "depends", "linux-source"])?;
    let package = crate::kernel::parse_depends(&out.stdout)
        .into_iter()
        .find(|d| d.starts_with("linux-source-"))
        .ok_or_else(|| KernelsError::Prepare {
            kernel: name.clone(),
            message: format!("no linux-source-* package in {}", kernel.spec.suite),
        })?;
    let dir = cache.join("checkpatch").join(&package);
    let script = dir.join("checkpatch.pl");
    if dir.join(READY_MARK).is_file() {
        return Ok(script);
    }
    let dl = chroot.root.join("var/cache/bdsnap-source");
    remove_tree(&dl).map_err(|e| io(&dl, e))?;
    std::fs::create_dir_all(&dl).map_err(|e| io(&dl, e))?;
    chroot.run(
        name,
        log,
        &[
            "sh",
            "-c",
            "cd /var/cache/bdsnap-source && apt-get download \"$1\"",
            "sh",
            &package,
        ],
    )?;
    let tmp = dir.with_extension("tmp");
    remove_tree(&tmp).map_err(|e| io(&tmp, e))?;
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    // The package holds one tarball of the whole tree; only three files are needed from it.
    let version = package.trim_start_matches("linux-source-");
    let wanted: Vec<String> = FILES
        .iter()
        .map(|f| format!("linux-source-{version}/scripts/{f}"))
        .collect();
    let script_text = format!(
        "set -e; deb=$(ls {dl}/*.deb); dpkg-deb --fsys-tarfile \"$deb\" | tar -xO ./usr/src/linux-source-{version}.tar.xz | tar -xJ -C {tmp} --strip-components=2 \"$@\"",
        dl = dl.display(),
        tmp = tmp.display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script_text, "sh"]).args(&wanted);
    log.run(&mut c).map_err(cmd)?;
    for f in FILES {
        if !tmp.join(f).is_file() {
            return Err(KernelsError::Prepare {
                kernel: name.clone(),
                message: format!("{package} has no scripts/{f}"),
            });
        }
    }
    std::fs::write(tmp.join(READY_MARK), &package).map_err(|e| io(&tmp, e))?;
    remove_tree(&dir).map_err(|e| io(&dir, e))?;
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    remove_tree(&dl).map_err(|e| io(&dl, e))?;
    Ok(script)
}

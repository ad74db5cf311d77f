//! A kernel of the matrix made ready: its suite's chroot with the kernel headers installed, and
//! the kernel image, modules and config extracted from the suite's packages into the cache.

use crate::chroot::{remove_tree, Chroot};
use crate::{KernelSpec, KernelsError, Origin};
use bdsnap_host::CmdLog;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

const READY_MARK: &str = ".bdsnap-ready";

/// What a run records about a kernel: enough to reproduce it exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KernelVersions {
    /// `uname -r` of the kernel: "6.1.0-41-cloud-amd64".
    pub release: String,
    /// Debian version of its image package: "6.1.158-1".
    pub package_version: String,
    /// Every package the image was extracted from, with its version.
    pub packages: Vec<String>,
    /// First line of the suite compiler's `--version`.
    pub compiler: String,
    /// For a kernel built from source: the source package, `linux-source-6.12=6.12.117-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// For a kernel built from source: its config fragments, as paths relative to the project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_fragments: Vec<String>,
}

/// A kernel ready to build against and to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub spec: KernelSpec,
    pub versions: KernelVersions,
    /// Where modules for it are built: its suite's chroot, or the host (a developer's tree).
    pub chroot: Option<Chroot>,
    /// The kbuild tree as the build sees it (`KDIR=`); `None`: the headers package's
    /// `/lib/modules/<release>/build` inside the chroot.
    pub kdir: Option<PathBuf>,
    /// Extra `make` variables for building modules against it (`CC=gcc-14`).
    pub make_args: Vec<String>,
    /// Host directories bind-mounted into the chroot for module builds, as (host, inside):
    /// a kernel built from source lives in the cache, outside its suite's chroot.
    pub binds: Vec<(PathBuf, PathBuf)>,
    pub vmlinuz: PathBuf,
    /// The directory that is `lib/modules/<release>` of this kernel.
    pub modules_dir: PathBuf,
    pub config: PathBuf,
    /// Whether the kernel files came from the cache.
    pub cached: bool,
}

pub(crate) fn prep_err(spec: &KernelSpec, message: impl Into<String>) -> KernelsError {
    KernelsError::Prepare {
        kernel: spec.name.clone(),
        message: message.into(),
    }
}

pub(crate) fn io_err(spec: &KernelSpec, path: &Path, source: std::io::Error) -> KernelsError {
    KernelsError::Io {
        kernel: spec.name.clone(),
        path: path.to_path_buf(),
        source,
    }
}

/// The `Depends:` targets of one package in `apt-cache depends` output.
pub fn parse_depends(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.starts_with('<'))
        .collect()
}

/// The kernel release a `linux-headers-<flavour>` meta package points at.
pub fn release_from_meta(depends: &[String], flavour: &str) -> Option<String> {
    depends
        .iter()
        .filter_map(|d| d.strip_prefix("linux-headers-"))
        .find(|r| r.ends_with(flavour) && r.len() > flavour.len())
        .map(str::to_string)
}

/// The release a pin names: "6.1.0-41" becomes "6.1.0-41-cloud-amd64".
pub fn pinned_release(pin: &str, flavour: &str) -> String {
    if pin.ends_with(flavour) {
        pin.to_string()
    } else {
        format!("{pin}-{flavour}")
    }
}

/// A field of `apt-cache show`/`dpkg-deb -f` style output.
pub fn control_field(text: &str, field: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Makes `spec`'s kernel ready to build against and boot, however the matrix says it is made.
pub fn prepare_kernel(
    spec: &KernelSpec,
    cache: &Path,
    log: &CmdLog,
) -> Result<Kernel, KernelsError> {
    match &spec.origin {
        Origin::Packages => prepare_packaged(spec, cache, log),
        Origin::Source { .. } => crate::source::prepare_source_kernel(spec, cache, log),
        Origin::Tree { path } => crate::tree::prepare_tree_kernel(spec, path, cache, log),
    }
}

/// Resolves the kernel's release in its suite, installs its headers in the chroot, and extracts
/// its image, modules and config into `<cache>/kernels/` (reused when present).
fn prepare_packaged(spec: &KernelSpec, cache: &Path, log: &CmdLog) -> Result<Kernel, KernelsError> {
    // One run at a time per suite: apt and the headers install share the chroot.
    let lock_path = cache.join("chroots").join(format!("{}.lock", spec.suite));
    let _lock =
        bdsnap_host::CacheLock::acquire(&lock_path).map_err(|e| io_err(spec, &lock_path, e))?;
    let chroot = Chroot::ensure(cache, &spec.name, &spec.suite, &spec.compiler, log)?;
    chroot.apt_update(&spec.name, log)?;
    let run = |args: &[&str]| chroot.run(&spec.name, log, args);

    let release = match &spec.pin {
        Some(pin) => pinned_release(pin, &spec.flavour),
        None => {
            let meta = format!("linux-headers-{}", spec.flavour);
            let out = run(&["apt-cache", "depends", &meta])?;
            release_from_meta(&parse_depends(&out.stdout), &spec.flavour).ok_or_else(|| {
                prep_err(
                    spec,
                    format!("{meta} in {} depends on no kernel headers", spec.suite),
                )
            })?
        }
    };
    let image_pkg = format!("linux-image-{release}");
    let shown = run(&["apt-cache", "show", "--no-all-versions", &image_pkg]).map_err(|_| {
        prep_err(
            spec,
            format!("{image_pkg} is not in {} (check pin)", spec.suite),
        )
    })?;
    let package_version = control_field(&shown.stdout, "Version")
        .ok_or_else(|| prep_err(spec, format!("{image_pkg} has no Version")))?;

    // Headers: the kbuild tree modules are built against.
    let build_dir = chroot.root.join("lib/modules").join(&release).join("build");
    if !build_dir.join("Makefile").is_file() {
        run(&[
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            &format!("linux-headers-{release}"),
        ])?;
    }
    let compiler = run(&[&spec.compiler, "--version"])?
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();

    let dir = cache.join("kernels").join(format!(
        "{release}_{}",
        package_version.replace([':', '/'], "_")
    ));
    let cached = dir.join(READY_MARK).is_file();
    if !cached {
        extract_kernel(spec, &chroot, &release, &dir, log)?;
    }
    let packages_file = dir.join("packages.txt");
    let packages = std::fs::read_to_string(&packages_file)
        .map_err(|e| io_err(spec, &packages_file, e))?
        .lines()
        .map(str::to_string)
        .collect();
    let find = |candidates: &[String]| -> Result<PathBuf, KernelsError> {
        candidates
            .iter()
            .map(|c| dir.join("root").join(c))
            .find(|p| p.exists())
            .ok_or_else(|| prep_err(spec, format!("none of {candidates:?} in {}", dir.display())))
    };
    let vmlinuz = find(&[
        format!("boot/vmlinuz-{release}"),
        format!("usr/lib/modules/{release}/vmlinuz"),
        format!("lib/modules/{release}/vmlinuz"),
    ])?;
    let modules_dir = find(&[
        format!("lib/modules/{release}"),
        format!("usr/lib/modules/{release}"),
    ])?;
    let config = find(&[
        format!("boot/config-{release}"),
        format!("usr/lib/modules/{release}/config"),
        format!("lib/modules/{release}/config"),
    ])?;
    Ok(Kernel {
        spec: spec.clone(),
        versions: KernelVersions {
            release,
            package_version,
            packages,
            compiler,
            source: None,
            config_fragments: Vec::new(),
        },
        chroot: Some(chroot),
        kdir: None,
        make_args: Vec::new(),
        binds: Vec::new(),
        vmlinuz,
        modules_dir,
        config,
        cached,
    })
}

/// Downloads the image package and the packages it splits into (7.2 ships the image, modules and
/// config as linux-binary-*, linux-modules-*, linux-base-*) and unpacks them without installing.
fn extract_kernel(
    spec: &KernelSpec,
    chroot: &Chroot,
    release: &str,
    dir: &Path,
    log: &CmdLog,
) -> Result<(), KernelsError> {
    let image_pkg = format!("linux-image-{release}");
    let deps = chroot.run(&spec.name, log, &["apt-cache", "depends", &image_pkg])?;
    let mut pkgs = vec![image_pkg.clone()];
    pkgs.extend(
        parse_depends(&deps.stdout)
            .into_iter()
            .filter(|d| d.contains(release) && d.starts_with("linux-")),
    );
    let dl_rel = "var/cache/bdsnap-download";
    let dl = chroot.root.join(dl_rel);
    remove_tree(&dl).map_err(|e| io_err(spec, &dl, e))?;
    std::fs::create_dir_all(&dl).map_err(|e| io_err(spec, &dl, e))?;
    let mut args = vec![
        "sh",
        "-c",
        "cd /var/cache/bdsnap-download && apt-get download \"$@\"",
        "sh",
    ];
    args.extend(pkgs.iter().map(String::as_str));
    chroot.run(&spec.name, log, &args)?;

    let tmp = dir.with_extension("tmp");
    remove_tree(&tmp).map_err(|e| io_err(spec, &tmp, e))?;
    let root = tmp.join("root");
    std::fs::create_dir_all(&root).map_err(|e| io_err(spec, &root, e))?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dl)
        .map_err(|e| io_err(spec, &dl, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    let mut listing = String::new();
    for deb in &debs {
        let fields = log
            .run(
                Command::new("dpkg-deb")
                    .arg("-f")
                    .arg(deb)
                    .args(["Package", "Version"]),
            )
            .map_err(|source| KernelsError::Command {
                kernel: spec.name.clone(),
                source,
            })?;
        let name = control_field(&fields.stdout, "Package").unwrap_or_default();
        let version = control_field(&fields.stdout, "Version").unwrap_or_default();
        listing.push_str(&format!("{name}={version}\n"));
        log.run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))
            .map_err(|source| KernelsError::Command {
                kernel: spec.name.clone(),
                source,
            })?;
    }
    let packages_file = tmp.join("packages.txt");
    std::fs::write(&packages_file, listing).map_err(|e| io_err(spec, &packages_file, e))?;
    std::fs::write(tmp.join(READY_MARK), release).map_err(|e| io_err(spec, &tmp, e))?;
    remove_tree(dir).map_err(|e| io_err(spec, dir, e))?;
    std::fs::rename(&tmp, dir).map_err(|e| io_err(spec, dir, e))?;
    remove_tree(&dl).map_err(|e| io_err(spec, &dl, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from `apt-cache depends` in a sid chroot, 2026-11.
    const SID_META: &str = "linux-headers-cloud-amd64\n  Depends: linux-base-cloud-amd64\n  Depends: linux-headers-7.2.13+deb14-cloud-amd64\n";
    const SID_IMAGE: &str = "linux-image-7.2.13+deb14-cloud-amd64\n  PreDepends: linux-base\n |Depends: dracut\n |Depends: initramfs-tools\n  Depends: <linux-initramfs-tool>\n    dracut\n  Depends: linux-base-7.2.13+deb14-cloud-amd64\n  Depends: linux-binary-7.2.13+deb14-cloud-amd64\n  Depends: linux-modules-7.2.13+deb14-cloud-amd64\n  Breaks: initramfs-tools\n";

    #[test]
    fn release_comes_from_the_headers_meta_package() {
        let deps = parse_depends(SID_META);
        assert_eq!(
            release_from_meta(&deps, "cloud-amd64").as_deref(),
            Some("7.2.13+deb14-cloud-amd64")
        );
        assert_eq!(release_from_meta(&deps, "rt-amd64"), None);
    }

    #[test]
    fn split_image_dependencies_are_found() {
        let deps: Vec<String> = parse_depends(SID_IMAGE)
            .into_iter()
            .filter(|d| d.contains("7.2.13+deb14-cloud-amd64"))
            .collect();
        assert_eq!(
            deps,
            [
                "linux-base-7.2.13+deb14-cloud-amd64",
                "linux-binary-7.2.13+deb14-cloud-amd64",
                "linux-modules-7.2.13+deb14-cloud-amd64"
            ]
        );
    }

    #[test]
    fn pins_get_the_flavour() {
        assert_eq!(
            pinned_release("6.1.0-41", "cloud-amd64"),
            "6.1.0-41-cloud-amd64"
        );
        assert_eq!(
            pinned_release("6.1.0-41-cloud-amd64", "cloud-amd64"),
            "6.1.0-41-cloud-amd64"
        );
    }

    #[test]
    fn control_fields() {
        let t = "Package: linux-image-x\nVersion: 6.1.158-1\n";
        assert_eq!(control_field(t, "Version").as_deref(), Some("6.1.158-1"));
        assert_eq!(control_field(t, "Source"), None);
    }
}

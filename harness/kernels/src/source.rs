//! Kernels built from source: the suite's `linux-source-X` package compiled inside that suite's
//! chroot with that suite's gcc, configured as the tree's x86_64_defconfig plus the fragments the
//! matrix names (`images/kconfig/*.config`). The result (kbuild tree, bzImage, installed modules)
//! lives in the chroot under `/build/kernels/<name>-<key>/`, where the key covers everything that
//! decides it: the source package's version, the compiler, the fragments' text and this recipe.

use crate::chroot::{remove_tree, Chroot};
use crate::kernel::{control_field, io_err, prep_err, Kernel, KernelVersions};
use crate::{KernelSpec, KernelsError, Origin};
use bdsnap_host::{CmdLog, ContentKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bump when the way source kernels are configured or built changes.
const RECIPE_VERSION: &str = "1";
const READY_MARK: &str = ".bdsnap-ready";
/// What building a kernel needs in the chroot besides the suite's compiler.
const BUILD_PACKAGES: &[&str] = &[
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "python3",
    "kmod",
];

/// Configures the tree: defconfig, the fragments merged over it, then olddefconfig.
/// Arguments: work dir, source tarball, compiler, LOCALVERSION, then the fragments.
const CONFIGURE: &str = r#"set -euo pipefail
w=$1 tarball=$2 cc=$3 lv=$4; shift 4
rm -rf "$w/src" "$w/out" "$w/stage"
mkdir -p "$w/src" "$w/out" "$w/stage"
tar -xf "$tarball" -C "$w/src" --strip-components=1
m() { make -C "$w/src" O="$w/out" CC="$cc" HOSTCC="$cc" LOCALVERSION="$lv" "$@"; }
{
  m x86_64_defconfig
  "$w/src/scripts/kconfig/merge_config.sh" -m -O "$w/out" "$w/out/.config" "$@"
  m olddefconfig
} > "$w/configure.log" 2>&1 || { tail -n 40 "$w/configure.log" >&2; exit 1; }
"#;

/// Builds the configured tree and installs its modules into `stage/`.
/// Arguments: work dir, compiler, LOCALVERSION, jobs.
const BUILD: &str = r#"set -euo pipefail
w=$1 cc=$2 lv=$3 jobs=$4
m() { make -C "$w/src" O="$w/out" CC="$cc" HOSTCC="$cc" LOCALVERSION="$lv" "$@"; }
{
  m -j"$jobs" bzImage modules
  m INSTALL_MOD_PATH="$w/stage" modules_install
} > "$w/build.log" 2>&1 || { grep -E 'error|Error' "$w/build.log" | tail -n 20 >&2; tail -n 20 "$w/build.log" >&2; exit 1; }
m -s kernelrelease > "$w/release"
"#;

/// Every `CONFIG_X=v` and `# CONFIG_X is not set` line of a config or fragment, as X → v
/// ("n" for not set).
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                out.insert(name.to_string(), "n".to_string());
            }
        } else if let Some(rest) = line.strip_prefix("CONFIG_") {
            if let Some((name, value)) = rest.split_once('=') {
                out.insert(name.to_string(), value.to_string());
            }
        }
    }
    out
}

/// The options a fragment asks for that the final config does not have as asked, each as a
/// sentence naming the option, what was asked, what it became and the fragment.
pub fn config_mismatches(
    fragment: &str,
    fragment_name: &str,
    config: &BTreeMap<String, String>,
) -> Vec<String> {
    parse_config(fragment)
        .into_iter()
        .filter_map(|(name, want)| {
            let got = config.get(&name).map(String::as_str).unwrap_or("n");
            (got != want).then(|| {
                format!(
                    "CONFIG_{name}={want} asked by {fragment_name} is {got} in the final config \
                     (an option it depends on is off, or it is not in this kernel)"
                )
            })
        })
        .collect()
}

/// The suite's chroot with fresh package lists (under the suite's lock), and the version of
/// the source package there.
fn resolve_source(
    spec: &KernelSpec,
    package: &str,
    cache: &Path,
    log: &CmdLog,
) -> Result<(Chroot, String), KernelsError> {
    let lock_path = cache.join("chroots").join(format!("{}.lock", spec.suite));
    let _lock =
        bdsnap_host::CacheLock::acquire(&lock_path).map_err(|e| io_err(spec, &lock_path, e))?;
    let chroot = Chroot::ensure(cache, &spec.name, &spec.suite, &spec.compiler, log)?;
    chroot.apt_update(&spec.name, log)?;
    let shown = chroot
        .run(
            &spec.name,
            log,
            &["apt-cache", "show", "--no-all-versions", package],
        )
        .map_err(|_| prep_err(spec, format!("{package} is not in {}", spec.suite)))?;
    let version = control_field(&shown.stdout, "Version")
        .ok_or_else(|| prep_err(spec, format!("{package} has no Version")))?;
    Ok((chroot, version))
}

/// Installs the source package and the build tools in the chroot (under the suite's lock).
fn install_source(
    spec: &KernelSpec,
    chroot: &Chroot,
    package: &str,
    cache: &Path,
    log: &CmdLog,
) -> Result<(), KernelsError> {
    let lock_path = cache.join("chroots").join(format!("{}.lock", spec.suite));
    let _lock =
        bdsnap_host::CacheLock::acquire(&lock_path).map_err(|e| io_err(spec, &lock_path, e))?;
    let mut args = vec![
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        package,
    ];
    args.extend(BUILD_PACKAGES);
    chroot.run(&spec.name, log, &args)?;
    Ok(())
}

/// Builds (or finds built) the kernel of a `source:` matrix entry. It is built inside the
/// suite's chroot under `/build/kernels/<name>-<key>`, then kept in the cache
/// (`<cache>/kernels/src-<name>-<key>`) and bind-mounted back at the same place inside the
/// chroot whenever a module is built against it, so the kbuild tree's absolute paths hold.
pub fn prepare_source_kernel(
    spec: &KernelSpec,
    cache: &Path,
    log: &CmdLog,
) -> Result<Kernel, KernelsError> {
    let Origin::Source { package, fragments } = &spec.origin else {
        return Err(prep_err(spec, "not a kernel built from source"));
    };
    let (chroot, version) = resolve_source(spec, package, cache, log)?;
    let compiler = chroot
        .run(&spec.name, log, &[&spec.compiler, "--version"])?
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let mut texts = Vec::new();
    let mut key = ContentKey::new("source-kernel");
    key.add_str("recipe", RECIPE_VERSION)
        .add_str("package", package)
        .add_str("version", &version)
        .add_str("compiler", &compiler);
    for f in fragments {
        let text = std::fs::read_to_string(f).map_err(|e| io_err(spec, f, e))?;
        key.add_str("fragment", &text);
        texts.push((f.display().to_string(), text));
    }
    let short = key.short();
    let dir_name = format!("{}-{short}", spec.name);
    let inside = PathBuf::from("/build/kernels").join(&dir_name);
    let stored = cache.join("kernels").join(format!("src-{dir_name}"));
    let localversion = format!("-bdsnap-{}", &short[..short.len().min(8)]);

    let lock_path = cache.join("kernels").join(format!("src-{dir_name}.lock"));
    let _lock =
        bdsnap_host::CacheLock::acquire(&lock_path).map_err(|e| io_err(spec, &lock_path, e))?;
    let cached = stored.join(READY_MARK).is_file();
    if !cached {
        install_source(spec, &chroot, package, cache, log)?;
        let work = chroot
            .root
            .join(inside.strip_prefix("/").unwrap_or(&inside));
        build(
            spec,
            &chroot,
            package,
            &inside,
            &work,
            &localversion,
            &texts,
            log,
        )?;
        remove_tree(&stored).map_err(|e| io_err(spec, &stored, e))?;
        std::fs::rename(&work, &stored).map_err(|e| io_err(spec, &stored, e))?;
        let mark = stored.join(READY_MARK);
        std::fs::write(&mark, &localversion).map_err(|e| io_err(spec, &mark, e))?;
    }
    let release_file = stored.join("release");
    let release = std::fs::read_to_string(&release_file)
        .map_err(|e| io_err(spec, &release_file, e))?
        .trim()
        .to_string();
    let modules_dir = stored.join("stage/lib/modules").join(&release);
    let vmlinuz = stored.join("out/arch/x86/boot/bzImage");
    for p in [&modules_dir, &vmlinuz] {
        if !p.exists() {
            return Err(prep_err(
                spec,
                format!("the built kernel has no {}", p.display()),
            ));
        }
    }
    Ok(Kernel {
        versions: KernelVersions {
            release,
            package_version: version.clone(),
            packages: vec![format!("{package}={version}")],
            compiler,
            source: Some(format!("{package}={version}")),
            config_fragments: texts.iter().map(|(name, _)| name.clone()).collect(),
        },
        kdir: Some(inside.join("out")),
        make_args: vec![
            format!("CC={}", spec.compiler),
            format!("HOSTCC={}", spec.compiler),
        ],
        binds: vec![(stored.clone(), inside)],
        vmlinuz,
        modules_dir,
        config: stored.join("out/.config"),
        cached,
        chroot: Some(chroot),
        spec: spec.clone(),
    })
}

/// Configures, checks the config against the fragments, builds, installs the modules.
#[allow(clippy::too_many_arguments)]
fn build(
    spec: &KernelSpec,
    chroot: &Chroot,
    package: &str,
    inside: &Path,
    work: &Path,
    localversion: &str,
    fragments: &[(String, String)],
    log: &CmdLog,
) -> Result<(), KernelsError> {
    remove_tree(work).map_err(|e| io_err(spec, work, e))?;
    let frag_dir = work.join("fragments");
    std::fs::create_dir_all(&frag_dir).map_err(|e| io_err(spec, &frag_dir, e))?;
    let mut frag_args = Vec::new();
    for (i, (_, text)) in fragments.iter().enumerate() {
        let name = format!("{i:02}.config");
        let path = frag_dir.join(&name);
        std::fs::write(&path, text).map_err(|e| io_err(spec, &path, e))?;
        frag_args.push(inside.join("fragments").join(name).display().to_string());
    }
    let tarball = format!("/usr/src/{package}.tar.xz");
    if !chroot.root.join(tarball.trim_start_matches('/')).is_file() {
        return Err(prep_err(spec, format!("{package} installed no {tarball}")));
    }
    let w = inside.display().to_string();
    let mut args = vec![
        "bash",
        "-c",
        CONFIGURE,
        "bash",
        &w,
        &tarball,
        &spec.compiler,
    ];
    args.push(localversion);
    args.extend(frag_args.iter().map(String::as_str));
    chroot.run(&spec.name, log, &args)?;

    let config_path = work.join("out/.config");
    let config = parse_config(
        &std::fs::read_to_string(&config_path).map_err(|e| io_err(spec, &config_path, e))?,
    );
    let wrong: Vec<String> = fragments
        .iter()
        .flat_map(|(name, text)| config_mismatches(text, name, &config))
        .collect();
    if !wrong.is_empty() {
        return Err(prep_err(
            spec,
            format!(
                "the config of {package} does not take its fragments:\n{}",
                wrong.join("\n")
            ),
        ));
    }

    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .to_string();
    chroot.run(
        &spec.name,
        log,
        &[
            "bash",
            "-c",
            BUILD,
            "bash",
            &w,
            &spec.compiler,
            localversion,
            &jobs,
        ],
    )?;
    // Objects are not needed to build modules against the tree (Debian's headers packages do
    // without them too), except the host tools' (scripts/, tools/: modpost, objtool); vmlinux
    // stays for decoding stack traces.
    // (Not `-prune`: find ignores it under `-delete`, which implies `-depth`, and fails.)
    let out = work.join("out");
    log.run(
        std::process::Command::new("find")
            .arg(&out)
            .args(["-name", "*.o", "-not", "-path"])
            .arg(format!("{}/*", out.join("scripts").display()))
            .args(["-not", "-path"])
            .arg(format!("{}/*", out.join("tools").display()))
            .arg("-delete"),
    )
    .map_err(|source| KernelsError::Command {
        kernel: spec.name.clone(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_set_and_unset_options() {
        let c = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n# comment\n");
        assert_eq!(c["A"], "y");
        assert_eq!(c["B"], "n");
        assert_eq!(c["C"], "\"x y\"");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn mismatches_name_the_option_and_fragment() {
        let config = parse_config("CONFIG_KASAN=y\nCONFIG_DRM=m\n");
        let wrong = config_mismatches(
            "CONFIG_KASAN=y\nCONFIG_KFENCE=y\n# CONFIG_DRM is not set\n",
            "images/kconfig/debug.config",
            &config,
        );
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong.iter().any(|w| w.starts_with("CONFIG_KFENCE=y")
            && w.contains("debug.config")
            && w.contains("is n")));
        assert!(wrong
            .iter()
            .any(|w| w.starts_with("CONFIG_DRM=n") && w.contains("is m")));
    }

    #[test]
    fn the_committed_fragments_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/kconfig");
        for name in ["base.config", "debug.config"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let options = parse_config(&text);
            assert!(options.len() > 10, "{name}");
            // Every line is an option, a comment or blank: a typo would be silently ignored.
            for line in text.lines().map(str::trim) {
                assert!(
                    line.is_empty()
                        || line.starts_with("CONFIG_")
                        || (line.starts_with("# ") && !line.starts_with("# CONFIG_"))
                        || (line.starts_with("# CONFIG_") && line.ends_with(" is not set")),
                    "{name}: {line}"
                );
            }
        }
    }
}

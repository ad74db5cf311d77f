//! The out-of-tree module built with Kbuild inside the kernel's own suite chroot (its gcc, its
//! headers), so each kernel's modules are compiled the way that kernel was. Results are cached by
//! the module sources' content and the exact kernel and compiler.

use crate::chroot::remove_tree;
use crate::{Kernel, KernelsError};
use bdsnap_host::{CmdLog, ContentKey};
use std::path::{Path, PathBuf};
use std::process::Command;

const READY_MARK: &str = ".bdsnap-ready";

/// Test-only modules: subdirectories of the module sources, each with its own Makefile that
/// builds `build/<release>/*.ko`. They are built and installed into test guests like the main
/// modules, but dkms.conf and `make install` never see them. `memcheck` commits memory errors
/// on purpose for the scanner's self-tests (see module/memcheck/memcheck.c).
pub const TEST_MODULE_DIRS: &[&str] = &["memcheck", "debugcheck"];

/// The modules built for one kernel.
#[derive(Debug, Clone)]
pub struct ModuleBuild {
    /// The `.ko` files, in name order: the main modules and the test-only ones
    /// ([`TEST_MODULE_DIRS`]), all to be installed into test guests.
    pub modules: Vec<PathBuf>,
    /// Kbuild's full output.
    pub log: PathBuf,
    /// Whether the build came from the cache.
    pub cached: bool,
}

/// Generated and built files in the source tree that must not change the cache key.
fn is_build_output(rel: &Path) -> bool {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    rel.starts_with("build")
        || TEST_MODULE_DIRS
            .iter()
            .any(|dir| rel.starts_with(Path::new(dir).join("build")))
        || [
            ".o", ".ko", ".mod", ".mod.c", ".cmd", ".order", ".symvers", ".tmp",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
        || name == "compat_config.h"
}

/// Compiler diagnostics in a Kbuild log: each is a defect, the module must build without any.
pub fn compiler_warnings(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.contains("warning:") || l.contains("error:"))
        .map(str::to_string)
        .collect()
}

/// Builds the module sources in `src` for `kernel`, or returns the cached build.
pub fn build_module(
    kernel: &Kernel,
    src: &Path,
    cache: &Path,
    log: &CmdLog,
) -> Result<ModuleBuild, KernelsError> {
    let name = &kernel.spec.name;
    let io = |path: &Path, source| KernelsError::Io {
        kernel: name.clone(),
        path: path.to_path_buf(),
        source,
    };
    let mut key = ContentKey::new("module");
    key.add_tree(src, &is_build_output)
        .map_err(|e| io(src, e))?;
    key.add_str("release", &kernel.versions.release)
        .add_str("package", &kernel.versions.package_version)
        .add_str("compiler", &kernel.versions.compiler)
        .add_str("make", &kernel.make_args.join(" "));
    // A kernel built from source or by the developer can change under the same release.
    if kernel.spec.origin != crate::Origin::Packages {
        let config = std::fs::read_to_string(&kernel.config).map_err(|e| io(&kernel.config, e))?;
        key.add_str("config", &config);
    }
    let lock_path = cache
        .join("modules")
        .join(format!("{}.lock", kernel.versions.release));
    let _lock = bdsnap_host::CacheLock::acquire(&lock_path).map_err(|e| io(&lock_path, e))?;
    let out = cache
        .join("modules")
        .join(format!("{}-{}", kernel.versions.release, key.short()));
    let build_log = out.join("build.log");
    if out.join(READY_MARK).is_file() {
        return Ok(ModuleBuild {
            modules: list_modules(&out).map_err(|e| io(&out, e))?,
            log: build_log,
            cached: true,
        });
    }

    // One directory per build key: concurrent runs building the same kernel never share one.
    // Inside the kernel's chroot, or for a developer's tree (built on this host) in the cache.
    let inside = format!("build/bdsnap-{}", key.short());
    let work = match &kernel.chroot {
        Some(c) => c.root.join(&inside),
        None => cache.join("modules").join(&inside),
    };
    let make_path = |dir: &str| match &kernel.chroot {
        Some(_) => format!("/{inside}{dir}"),
        None => format!("{}{dir}", work.display()),
    };
    remove_tree(&work).map_err(|e| io(&work, e))?;
    std::fs::create_dir_all(&work).map_err(|e| io(&work, e))?;
    log.run(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(&work),
    )
    .map_err(|source| KernelsError::Command {
        kernel: name.clone(),
        source,
    })?;
    let _ = std::fs::remove_dir_all(work.join("build"));
    for dir in TEST_MODULE_DIRS {
        let _ = std::fs::remove_dir_all(work.join(dir).join("build"));
    }
    let work_guard = RemoveOnDrop(work.clone());
    let release = &kernel.versions.release;
    // The main modules, then each test-only module present in the sources, each with its own
    // make (the directory to run it in, inside the chroot, and where its `.ko` files appear);
    // every `.ko` ends up side by side in the cached build.
    let mut makes = vec![(make_path(""), work.join("build").join(release))];
    for dir in TEST_MODULE_DIRS {
        if work.join(dir).join("Makefile").is_file() {
            makes.push((
                make_path(&format!("/{dir}")),
                work.join(dir).join("build").join(release),
            ));
        }
    }
    let mut vars = vec![format!("KVER={release}")];
    if let Some(kdir) = &kernel.kdir {
        vars.push(format!("KDIR={}", kdir.display()));
    }
    vars.extend(kernel.make_args.iter().cloned());
    let mut output = String::new();
    for (make_dir, _) in &makes {
        let mut args = vec!["make", "-C", make_dir.as_str()];
        args.extend(vars.iter().map(String::as_str));
        let built = match &kernel.chroot {
            Some(c) => c.run_with_binds(name, log, &kernel.binds, &args)?,
            None => log
                .run(Command::new(args[0]).args(&args[1..]))
                .map_err(|source| KernelsError::Command {
                    kernel: name.clone(),
                    source,
                })?,
        };
        output.push_str(&built.stdout);
        output.push_str(&built.stderr);
    }
    let diagnostics = compiler_warnings(&output);
    if !diagnostics.is_empty() {
        return Err(KernelsError::Prepare {
            kernel: name.clone(),
            message: format!(
                "the module must build without warnings; the compiler said:\n{}",
                diagnostics.join("\n")
            ),
        });
    }
    let tmp = out.with_extension("tmp");
    remove_tree(&tmp).map_err(|e| io(&tmp, e))?;
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let mut modules = Vec::new();
    for (_, dir) in &makes {
        let found = list_modules(dir).map_err(|e| io(dir, e))?;
        if found.is_empty() {
            return Err(KernelsError::Prepare {
                kernel: name.clone(),
                message: format!("make produced no .ko in {}", dir.display()),
            });
        }
        modules.extend(found);
    }
    for ko in &modules {
        let dst = tmp.join(ko.file_name().unwrap_or_default());
        std::fs::copy(ko, &dst).map_err(|e| io(&dst, e))?;
    }
    std::fs::write(tmp.join("build.log"), &output).map_err(|e| io(&tmp, e))?;
    std::fs::write(tmp.join(READY_MARK), release).map_err(|e| io(&tmp, e))?;
    remove_tree(&out).map_err(|e| io(&out, e))?;
    std::fs::rename(&tmp, &out).map_err(|e| io(&out, e))?;
    drop(work_guard);
    Ok(ModuleBuild {
        modules: list_modules(&out).map_err(|e| io(&out, e))?,
        log: build_log,
        cached: false,
    })
}

/// Removes a build directory inside a chroot when the build ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = remove_tree(&self.0);
    }
}

fn list_modules(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut kos: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    kos.sort();
    Ok(kos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_outputs_do_not_change_the_key() {
        assert!(is_build_output(Path::new("build/6.1/bdsnap.ko")));
        assert!(is_build_output(Path::new("src/.main.o.cmd")));
        assert!(is_build_output(Path::new("src/main.o")));
        assert!(is_build_output(Path::new("compat_config.h")));
        assert!(is_build_output(Path::new("memcheck/build/6.1/Kbuild")));
        assert!(!is_build_output(Path::new("memcheck/memcheck.c")));
        assert!(!is_build_output(Path::new("memcheck/Kbuild")));
        assert!(!is_build_output(Path::new("src/main.c")));
        assert!(!is_build_output(Path::new("Kbuild")));
    }

    #[test]
    fn warnings_are_found() {
        let log = "  CC [M]  /b/src/main.o\n/b/src/main.c:3:5: warning: unused variable 'x' [-Wunused-variable]\n  LD [M]  bdsnap.ko\n";
        assert_eq!(compiler_warnings(log).len(), 1);
        assert!(compiler_warnings("  CC [M] a.o\n").is_empty());
    }
}

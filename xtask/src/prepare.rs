//! Preparing the kernels of a run: each kernel's chroot, headers and files, then the module
//! built for it. Kernels are independent, so they are prepared side by side.

use crate::KernelArgs;
use anyhow::{anyhow, Context, Result};
use bdsnap_host::{cache_dir, CmdLog};
use bdsnap_kernels::{build_module, prepare_kernel, Kernel, Matrix, ModuleBuild};
use std::time::Instant;

/// One kernel, ready to boot, with the module built for it.
pub struct Prepared {
    pub kernel: Kernel,
    pub build: ModuleBuild,
    pub prepare_secs: f64,
}

/// Prepares the kernels of the run (see [`KernelArgs::specs`]).
pub fn prepare(args: &KernelArgs, for_bench: bool, log: &CmdLog) -> Result<Vec<Prepared>> {
    let matrix = Matrix::load(&args.matrix)?;
    let specs = args.specs(&matrix, for_bench)?;
    let cache = cache_dir();
    let module_src = std::path::PathBuf::from("module");
    let board = crate::progress::Board::new();
    let results: Vec<Result<Prepared>> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| {
                let bar = board.task(&spec.name);
                let (cache, log, src) = (&cache, log, &module_src);
                scope.spawn(move || {
                    let started = Instant::now();
                    bar.stage(format!("{}: chroot, headers, kernel files", spec.suite));
                    let kernel = prepare_kernel(spec, cache, log)?;
                    bar.stage(format!("{}: building module", kernel.versions.release));
                    let build = build_module(&kernel, src, cache, log)?;
                    let secs = started.elapsed().as_secs_f64();
                    let how = if kernel.cached && build.cached {
                        "cached"
                    } else {
                        "built"
                    };
                    bar.finish(format!(
                        "{} ({}) module {how} in {secs:.1}s",
                        kernel.versions.release, kernel.versions.package_version
                    ));
                    Ok(Prepared {
                        kernel,
                        build,
                        prepare_secs: secs,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a preparation thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(p) => out.push(p),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        return Err(anyhow!("preparing kernels failed:\n{}", errors.join("\n"))).context(format!(
            "commands are logged in {}",
            log.path()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    }
    Ok(out)
}

//! `cargo xtask`: the one entry point for building, testing and benchmarking bdsnap.

mod bench;
mod guest;
mod hostdeps;
mod prepare;
mod progress;
mod shell;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test and benchmark bdsnap on a matrix of kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum AccelChoice {
    /// Probe KVM with a short boot and fall back to TCG when it does not work.
    Auto,
    Kvm,
    Tcg,
}

/// Flags shared by every command that prepares kernels.
#[derive(clap::Args, Clone, Debug)]
pub struct KernelArgs {
    /// A kernel of images/kernels.yaml (repeatable); default: all of them.
    #[arg(long = "kernel", value_name = "NAME")]
    pub kernels: Vec<String>,
    /// The kernel matrix file.
    #[arg(long, value_name = "FILE", default_value = "images/kernels.yaml")]
    pub matrix: PathBuf,
    /// Instead of the matrix: the kernel built in this tree (its arch/x86/boot/bzImage, its
    /// modules and the tree itself to build bdsnap against), named `tree` in results. Nothing
    /// in it is rebuilt.
    #[arg(long, value_name = "PATH", conflicts_with = "kernels")]
    pub kernel_tree: Option<PathBuf>,
}

/// The name a `--kernel-tree` kernel has in results and in scenarios' `kernels:` lists.
pub const TREE_KERNEL: &str = "tree";

impl KernelArgs {
    /// Every kernel name a scenario may list: the matrix's, and `tree`.
    pub fn known_names(&self, matrix: &bdsnap_kernels::Matrix) -> Vec<String> {
        let mut names = matrix.names();
        names.push(TREE_KERNEL.to_string());
        names
    }

    /// The kernels of this run: the `--kernel-tree` one, or those of the matrix selected with
    /// `--kernel`; without `--kernel`, `skip_unbenched` leaves out kernels whose matrix entry
    /// says `benchmark: false` (debug kernels).
    pub fn specs(
        &self,
        matrix: &bdsnap_kernels::Matrix,
        skip_unbenched: bool,
    ) -> Result<Vec<bdsnap_kernels::KernelSpec>> {
        if let Some(tree) = &self.kernel_tree {
            return Ok(vec![bdsnap_kernels::KernelSpec::tree(TREE_KERNEL, tree)]);
        }
        let mut specs = matrix.select(&self.kernels)?;
        if skip_unbenched && self.kernels.is_empty() {
            specs.retain(|k| k.benchmark);
        }
        Ok(specs)
    }
}

/// Flags shared by every command that boots VMs.
#[derive(clap::Args, Clone, Debug)]
pub struct VmArgs {
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Where run directories go.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Guest memory per VM, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub memory: u32,
    /// Guest CPUs per VM.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub cpus: u32,
    /// Extra kernel command-line arguments for every VM of the run, e.g. "lockdep.debug=1".
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub cmdline: String,
}

impl VmArgs {
    /// The accelerator to use: as asked, or for `auto` the result of a short KVM probe boot of
    /// `vmlinuz` (cached), falling back to TCG.
    pub fn accel(&self, vmlinuz: &std::path::Path) -> bdsnap_vm::Accel {
        match self.accel {
            AccelChoice::Kvm => bdsnap_vm::Accel::Kvm,
            AccelChoice::Tcg => bdsnap_vm::Accel::Tcg,
            AccelChoice::Auto => bdsnap_vm::probe_accel(
                &PathBuf::from("qemu-system-x86_64"),
                vmlinuz,
                &bdsnap_host::cache_dir(),
            ),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Prepare each kernel (chroot, headers, image) and build the module for it.
    Build {
        #[command(flatten)]
        kernels: KernelArgs,
    },
    /// Build the module, boot every kernel in QEMU, run the scenarios, write results/<run>/.
    Test(test::TestArgs),
    /// Boot one kernel with the module and guest tools installed and scratch disks attached
    /// ($DISK_NAME), then give a shell in it, or run CMD and exit with its status. The VM is
    /// gone afterwards. Example: cargo xtask shell --kernel 6.1 --disk data:256MiB
    Shell(shell::ShellArgs),
    /// Measure what the filter, tracking and snapshots cost against the raw device and
    /// dm-snapshot: one VM per kernel, every configuration interleaved and repeated; writes
    /// results/bench-<run>/ with bench.json, report.md and SVG charts.
    Bench(bench::BenchArgs),
    /// Check the module sources with the kernel's checkpatch.pl (from the newest suite's
    /// linux-source package); fails on any error or warning.
    Checkpatch {
        /// The kernel matrix file (its last packaged kernel's suite provides checkpatch.pl).
        #[arg(long, value_name = "FILE", default_value = "images/kernels.yaml")]
        matrix: PathBuf,
    },
    /// List the names of the matrix's kernels, one per line (for scripts).
    Kernels {
        /// Only kernels from Debian's binary packages, built from source, or developers' trees.
        #[arg(long, value_enum)]
        origin: Option<OriginChoice>,
        #[arg(long, value_name = "FILE", default_value = "images/kernels.yaml")]
        matrix: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum OriginChoice {
    Packages,
    Source,
    Tree,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Cmd::Build { kernels } => {
            let log = bdsnap_host::CmdLog::to_file(&root.join("results/build-commands.log"))?;
            hostdeps::ensure(&log)?;
            let prepared = prepare::prepare(&kernels, false, &log)?;
            for p in prepared {
                println!(
                    "{:5} {:32} {} module(s): {}",
                    p.kernel.spec.name,
                    p.kernel.versions.release,
                    p.build.modules.len(),
                    p.build
                        .modules
                        .iter()
                        .map(|m| m.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Ok(())
        }
        Cmd::Checkpatch { matrix } => {
            let log = bdsnap_host::CmdLog::to_file(&root.join("results/checkpatch-commands.log"))?;
            hostdeps::ensure(&log)?;
            let matrix = bdsnap_kernels::Matrix::load(&matrix)?;
            let newest = matrix
                .kernels
                .iter()
                .rev()
                .find(|k| k.origin == bdsnap_kernels::Origin::Packages)
                .ok_or_else(|| anyhow::anyhow!("the matrix has no packaged kernel"))?;
            let cache = bdsnap_host::cache_dir();
            let kernel = bdsnap_kernels::prepare_kernel(newest, &cache, &log)?;
            let script = bdsnap_kernels::ensure_checkpatch(&kernel, &cache, &log)?;
            println!("checkpatch: {}", script.display());
            let status = std::process::Command::new("make")
                .args(["-s", "-C", "module", "checkpatch"])
                .arg(format!("CHECKPATCH={}", script.display()))
                .status()?;
            if !status.success() {
                anyhow::bail!("checkpatch found problems in module/");
            }
            Ok(())
        }
        Cmd::Kernels { origin, matrix } => {
            let matrix = bdsnap_kernels::Matrix::load(&matrix)?;
            for k in &matrix.kernels {
                let kind = match k.origin {
                    bdsnap_kernels::Origin::Packages => OriginChoice::Packages,
                    bdsnap_kernels::Origin::Source { .. } => OriginChoice::Source,
                    bdsnap_kernels::Origin::Tree { .. } => OriginChoice::Tree,
                };
                if origin.is_none_or(|o| o == kind) {
                    println!("{}", k.name);
                }
            }
            Ok(())
        }
        Cmd::Bench(args) => {
            let ok = bench::run(&root, args)?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Shell(args) => {
            let code = shell::run(&root, args)?;
            std::process::exit(code);
        }
        Cmd::Test(args) => {
            let ok = test::run(&root, args)?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// The workspace root: xtask lives one level below it.
fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

//! bdsnap-kernels: the kernel matrix (`images/kernels.yaml`), one cached debootstrap chroot per
//! Debian suite with that suite's compiler and kernel headers, the kernel image and modules
//! extracted from the suite's packages, and the module built out of tree inside each chroot.
//!
//! Data flows one way: matrix → chroot → resolved kernel → extracted artefacts → module build.

pub mod build;
pub mod checkpatch;
pub mod chroot;
pub mod kernel;
pub mod matrix;
pub mod source;
pub mod tree;

pub use build::{build_module, ModuleBuild, TEST_MODULE_DIRS};
pub use checkpatch::ensure_checkpatch;
pub use chroot::Chroot;
pub use kernel::{prepare_kernel, Kernel};
pub use matrix::{KernelSpec, Matrix, MatrixError, Origin};

/// Every failure of this crate, with the kernel it concerns.
#[derive(Debug, thiserror::Error)]
pub enum KernelsError {
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error("kernel {kernel}: {message}")]
    Prepare { kernel: String, message: String },
    #[error("kernel {kernel}")]
    Command {
        kernel: String,
        #[source]
        source: bdsnap_host::CmdError,
    },
    #[error("kernel {kernel}: {path}")]
    Io {
        kernel: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

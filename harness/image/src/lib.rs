//! bdsnap-image: builds the guest root filesystem every test VM boots from.
//!
//! Two cached stages, each built in a temporary path inside the cache
//! directory and renamed into place only when complete, so an interrupted
//! build never leaves something that looks valid:
//!
//! 1. `rootfs-<key>/`: `debootstrap --variant=V --include=PKGS SUITE` with
//!    debootstrap's default mirror. Keyed on suite, variant and packages only:
//!    it is the slow stage (about a minute) and rarely changes.
//! 2. `guest-<key>.img`: a copy of the rootfs plus the recipe's files (the
//!    init), every matrix kernel's modules (`depmod -b`), root's
//!    `authorized_keys`, turned into a raw ext4 image with `mkfs.ext4 -d`
//!    (no mount, no loop device). Keyed on everything that goes into it.
//!
//! Older entries of the same stage are deleted after a successful build.
//! Building needs root (debootstrap, device nodes, file ownership); a cache
//! hit does not.

mod build;
mod fsutil;
mod key;
pub mod recipe;

use std::path::{Path, PathBuf};

pub use recipe::Recipe;

/// One kernel's modules to install in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelModules {
    /// `uname -r` of the kernel, e.g. `6.1.0-41-cloud-amd64`.
    pub release: String,
    /// A directory that *is* `lib/modules/<release>` (holds `kernel/`,
    /// `modules.order`, ...); copied to `/lib/modules/<release>` in the guest.
    pub modules_dir: PathBuf,
}

/// A built (or cached) guest image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestImage {
    /// Raw ext4 image; use it through a per-VM overlay, never write to it.
    pub path: PathBuf,
    /// The full cache key (hex SHA-256); the file name holds a prefix of it.
    pub key: String,
    /// True when the image came from the cache without building anything.
    pub cached: bool,
}

/// Everything that can go wrong while building an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The recipe is unreadable or invalid; `message` starts with the field.
    #[error("{}: {message}", file.display())]
    Recipe { file: PathBuf, message: String },
    /// A kernel given by the caller is unusable.
    #[error("kernel {release}: {message}")]
    Kernel { release: String, message: String },
    /// The SSH public key is not a single OpenSSH public key line.
    #[error("ssh public key: {0}")]
    PublicKey(String),
    /// A build is needed but we are not root.
    #[error(
        "building the guest image needs root (debootstrap, device nodes, file owners); run as root"
    )]
    NotRoot,
    /// An external command failed.
    #[error("{command} failed ({status}); last output:\n{output_tail}")]
    Command {
        command: String,
        status: String,
        output_tail: String,
    },
    /// A safety check refused to go on (mounts left in a tree, paths escaping the rootfs).
    #[error("{message}")]
    Unsafe { message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Builds the guest image described by `recipe` (`images/guest.yaml`), or
/// returns the cached one when nothing it depends on changed. `log` receives
/// progress lines and the output of the commands run.
pub fn build_guest_image(
    recipe: &Path,
    cache_dir: &Path,
    kernels: &[KernelModules],
    ssh_pubkey: &str,
    log: &mut dyn FnMut(&str),
) -> Result<GuestImage, ImageError> {
    let loaded = recipe::LoadedRecipe::load(recipe)?;
    check_public_key(ssh_pubkey)?;
    for k in kernels {
        check_kernel(k)?;
    }
    let key = key::image_key(&loaded, kernels, ssh_pubkey)?;
    build::build(&loaded, cache_dir, kernels, ssh_pubkey.trim(), &key, log)
}

/// Computes the cache key `build_guest_image` would use, without building.
/// Lets a caller tell whether an image is current (and tests check keying).
pub fn guest_image_key(
    recipe: &Path,
    kernels: &[KernelModules],
    ssh_pubkey: &str,
) -> Result<String, ImageError> {
    let loaded = recipe::LoadedRecipe::load(recipe)?;
    check_public_key(ssh_pubkey)?;
    for k in kernels {
        check_kernel(k)?;
    }
    key::image_key(&loaded, kernels, ssh_pubkey)
}

fn check_public_key(key: &str) -> Result<(), ImageError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(ImageError::PublicKey("is empty".into()));
    }
    if key.contains('\n') {
        return Err(ImageError::PublicKey("must be one line".into()));
    }
    let kind = key.split_whitespace().next().unwrap_or("");
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    if !known || key.split_whitespace().count() < 2 {
        return Err(ImageError::PublicKey(format!(
            "`{}` does not look like an OpenSSH public key (`ssh-ed25519 AAAA... comment`)",
            key.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

fn check_kernel(k: &KernelModules) -> Result<(), ImageError> {
    let bad = |message: String| ImageError::Kernel {
        release: k.release.clone(),
        message,
    };
    let release_ok = !k.release.is_empty()
        && k.release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._~".contains(c))
        && !k.release.starts_with('.');
    if !release_ok {
        return Err(bad("not a kernel release string".into()));
    }
    if !k.modules_dir.join("modules.order").is_file() && !k.modules_dir.join("kernel").is_dir() {
        return Err(bad(format!(
            "{} is not a lib/modules/<release> directory (no kernel/ nor modules.order)",
            k.modules_dir.display()
        )));
    }
    Ok(())
}

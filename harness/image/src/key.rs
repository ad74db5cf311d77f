//! Cache keys of the two build stages.
//!
//! The debootstrap stage depends only on what debootstrap is asked for (suite,
//! variant, packages), so editing the init script or adding a kernel reuses it.
//! The final image depends on everything that ends up inside it.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::recipe::LoadedRecipe;
use crate::{ImageError, KernelModules};

/// Bumped whenever the build code changes what it puts in a stage, so old
/// caches are not reused for output the new code would make differently.
const ROOTFS_FORMAT: &str = "bdsnap-rootfs-v1";
const IMAGE_FORMAT: &str = "bdsnap-image-v1";

/// Feeds length-prefixed fields, so `["ab","c"]` and `["a","bc"]` differ.
struct KeyHasher(Sha256);

impl KeyHasher {
    fn new(format: &str) -> Self {
        let mut h = Self(Sha256::new());
        h.field(format.as_bytes());
        h
    }
    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
    fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// Key of the debootstrap stage. Package order does not matter to debootstrap,
/// so the list is sorted and deduplicated first.
pub(crate) fn rootfs_key(recipe: &LoadedRecipe) -> String {
    let mut h = KeyHasher::new(ROOTFS_FORMAT);
    h.field(recipe.recipe.suite.as_bytes());
    h.field(recipe.recipe.variant.as_bytes());
    let mut packages: Vec<&str> = recipe.recipe.packages.iter().map(String::as_str).collect();
    packages.sort_unstable();
    packages.dedup();
    for p in packages {
        h.field(p.as_bytes());
    }
    h.finish()
}

/// Key of the final image: the rootfs key, the whole recipe text, every
/// installed file, each kernel's release and module manifest, and the key.
pub(crate) fn image_key(
    recipe: &LoadedRecipe,
    kernels: &[KernelModules],
    ssh_pubkey: &str,
) -> Result<String, ImageError> {
    let mut h = KeyHasher::new(IMAGE_FORMAT);
    h.field(rootfs_key(recipe).as_bytes());
    h.field(&recipe.raw);
    for f in &recipe.files {
        h.field(f.dest.as_bytes());
        h.field(&f.mode.to_le_bytes());
        h.field(&f.content);
    }
    let mut sorted: Vec<&KernelModules> = kernels.iter().collect();
    sorted.sort_by(|a, b| a.release.cmp(&b.release));
    for k in sorted {
        h.field(k.release.as_bytes());
        h.field(module_manifest(&k.modules_dir)?.as_bytes());
    }
    h.field(ssh_pubkey.trim().as_bytes());
    Ok(h.finish())
}

/// Relative path, type and size of every entry under a modules directory.
/// Cheaper than hashing the contents (hundreds of MB for four kernels), yet it
/// changes when a rebuilt package of the same release ships different files.
fn module_manifest(dir: &Path) -> Result<String, ImageError> {
    let mut entries = Vec::new();
    collect(dir, dir, &mut entries)?;
    entries.sort();
    Ok(entries.join("\n"))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), ImageError> {
    let io = |e| ImageError::Io {
        context: format!("listing kernel modules in {}", dir.display()),
        source: e,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io)?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if meta.is_dir() {
            out.push(format!("d {rel}"));
            collect(root, &path, out)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io)?;
            out.push(format!("l {rel} {}", target.display()));
        } else {
            out.push(format!("f {rel} {}", meta.len()));
        }
    }
    Ok(())
}

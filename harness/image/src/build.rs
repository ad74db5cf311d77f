//! The two build stages and the cache directory layout:
//!
//! ```text
//! CACHE/.lock                      flock held while building
//! CACHE/rootfs-<key16>/            debootstrap stage (complete trees only)
//! CACHE/guest-<key16>.img          final raw ext4 images
//! CACHE/.tmp-*                     work in progress; deleted on the next build
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::fsutil::{
    guest_path, io_err, remove_tree, run_logged, tree_size, unmount_all_under, write_guest_file,
    CacheLock,
};
use crate::key::rootfs_key;
use crate::recipe::LoadedRecipe;
use crate::{GuestImage, ImageError, KernelModules};

const MIB: u64 = 1024 * 1024;
/// Room for the ext4 journal mke2fs picks for images up to 16 GiB.
const JOURNAL_BYTES: u64 = 64 * MIB;
/// The init contract: the guest calls itself this (see images/guest/bdsnap-init).
const GUEST_HOSTNAME: &str = "bdsnap-guest";

fn short(key: &str) -> &str {
    key.get(..16).unwrap_or(key)
}

fn image_path(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join(format!("guest-{}.img", short(key)))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub(crate) fn build(
    recipe: &LoadedRecipe,
    cache_dir: &Path,
    kernels: &[KernelModules],
    ssh_pubkey: &str,
    key: &str,
    log: &mut dyn FnMut(&str),
) -> Result<GuestImage, ImageError> {
    let image = image_path(cache_dir, key);
    // Only complete images are ever renamed to this name, so existence is enough.
    if image.is_file() {
        log(&format!("guest image cached: {}", image.display()));
        return Ok(GuestImage {
            path: image,
            key: key.to_string(),
            cached: true,
        });
    }
    if !is_root() {
        return Err(ImageError::NotRoot);
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(io_err(format!("creating {}", cache_dir.display())))?;
    let _lock = CacheLock::acquire(&cache_dir.join(".lock"), log)?;
    if image.is_file() {
        log(&format!(
            "guest image built meanwhile by another process: {}",
            image.display()
        ));
        return Ok(GuestImage {
            path: image,
            key: key.to_string(),
            cached: true,
        });
    }
    // We hold the lock, so every temporary entry is a leftover of an interrupted build.
    remove_entries(cache_dir, |name| name.starts_with(".tmp-"), log)?;

    let rootfs = ensure_rootfs(recipe, cache_dir, log)?;

    let started = Instant::now();
    let stage = cache_dir.join(format!(".tmp-stage-{}", short(key)));
    run_logged(
        Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg(&rootfs)
            .arg(&stage),
        log,
    )?;
    populate(recipe, &stage, kernels, ssh_pubkey, log)?;

    let (bytes, inodes) = tree_size(&stage)?;
    let content = bytes + inodes * 256;
    let margin = recipe.recipe.image.margin_mib * MIB;
    let size_mib = (content + content / 10 + JOURNAL_BYTES + margin).div_ceil(MIB);
    // mke2fs allots one inode per 16 KiB by default; module trees are many
    // small files, so never go below twice what the content needs.
    let inode_count = (size_mib * MIB / 16384).max(inodes * 2);
    log(&format!(
        "content {} MiB in {inodes} inodes; image {size_mib} MiB (margin {} MiB)",
        content.div_ceil(MIB),
        recipe.recipe.image.margin_mib
    ));
    let tmp_image = cache_dir.join(format!(".tmp-guest-{}.img", short(key)));
    run_logged(
        Command::new("mkfs.ext4")
            .arg("-F")
            .args(["-d".as_ref(), stage.as_os_str()])
            .args(["-L", &recipe.recipe.image.label])
            // No blocks reserved for root: the guest's only user is root.
            .args(["-m", "0"])
            .args(["-N", &inode_count.to_string()])
            .arg(&tmp_image)
            .arg(format!("{size_mib}M")),
        log,
    )?;
    std::fs::File::open(&tmp_image)
        .and_then(|f| f.sync_all())
        .map_err(io_err(format!("syncing {}", tmp_image.display())))?;
    std::fs::rename(&tmp_image, &image)
        .map_err(io_err(format!("renaming into {}", image.display())))?;
    remove_tree(&stage)?;
    log(&format!(
        "guest image built in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        image.display()
    ));

    // Older images are stale unless another kernel selection (`--kernel`) still uses them:
    // keep the few most recently built, so runs on different kernel sets do not rebuild each
    // other's image every time. In-use images stay readable by processes that opened them.
    let keep_image = image.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut older: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(cache_dir)
        .map_err(io_err(format!("listing {}", cache_dir.display())))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_image = name.starts_with("guest-") && name.ends_with(".img");
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            (is_image && Some(name.as_str()) != keep_image.as_deref()).then_some((modified, name))
        })
        .collect();
    older.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let stale: Vec<String> = older
        .into_iter()
        .skip(KEEP_OLDER_IMAGES)
        .map(|(_, name)| name)
        .collect();
    remove_entries(cache_dir, |name| stale.iter().any(|s| s == name), log)?;
    let keep_rootfs = rootfs.file_name().map(|n| n.to_string_lossy().into_owned());
    remove_entries(
        cache_dir,
        |name| name.starts_with("rootfs-") && Some(name) != keep_rootfs.as_deref(),
        log,
    )?;
    Ok(GuestImage {
        path: image,
        key: key.to_string(),
        cached: false,
    })
}

/// Returns the debootstrap tree for this recipe, building it if missing.
fn ensure_rootfs(
    recipe: &LoadedRecipe,
    cache_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, ImageError> {
    let key = rootfs_key(recipe);
    let rootfs = cache_dir.join(format!("rootfs-{}", short(&key)));
    if rootfs.is_dir() {
        log(&format!("debootstrap stage cached: {}", rootfs.display()));
        return Ok(rootfs);
    }
    let started = Instant::now();
    let tmp = cache_dir.join(format!(".tmp-rootfs-{}", short(&key)));
    let r = &recipe.recipe;
    // No mirror argument: debootstrap's default mirror.
    let result = run_logged(
        Command::new("debootstrap")
            .arg(format!("--variant={}", r.variant))
            .arg(format!("--include={}", r.packages.join(",")))
            .arg(&r.suite)
            .arg(&tmp),
        log,
    );
    // debootstrap unmounts its /proc and /sys on exit, even on failure; make sure.
    unmount_all_under(&tmp)?;
    result?;
    // Downloaded packages and indexes are half the tree and useless in a guest.
    trim_dir(&tmp.join("var/cache/apt/archives"), |n| n.ends_with(".deb"))?;
    trim_dir(&tmp.join("var/lib/apt/lists"), |n| {
        n != "lock" && n != "partial"
    })?;
    std::fs::rename(&tmp, &rootfs)
        .map_err(io_err(format!("renaming into {}", rootfs.display())))?;
    log(&format!(
        "debootstrap stage built in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        rootfs.display()
    ));
    Ok(rootfs)
}

/// Installs everything that is not debootstrap's into the staging tree.
fn populate(
    recipe: &LoadedRecipe,
    stage: &Path,
    kernels: &[KernelModules],
    ssh_pubkey: &str,
    log: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    for f in &recipe.files {
        log(&format!("installing {} (mode {:o})", f.dest, f.mode));
        write_guest_file(stage, &f.dest, &f.content, f.mode)?;
    }
    for k in kernels {
        let dest = guest_path(stage, &format!("/lib/modules/{}", k.release))?;
        remove_tree(&dest)?;
        let mut src = k.modules_dir.clone().into_os_string();
        src.push("/.");
        std::fs::create_dir_all(&dest).map_err(io_err(format!("creating {}", dest.display())))?;
        run_logged(Command::new("cp").arg("-a").arg(&src).arg(&dest), log)?;
        run_logged(
            Command::new("depmod").arg("-b").arg(stage).arg(&k.release),
            log,
        )?;
    }
    let ssh_dir = guest_path(stage, "/root/.ssh/authorized_keys")?;
    if let Some(dir) = ssh_dir.parent() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("chmod {}", dir.display())))?;
    }
    write_guest_file(
        stage,
        "/root/.ssh/authorized_keys",
        format!("{ssh_pubkey}\n").as_bytes(),
        0o600,
    )?;
    write_guest_file(
        stage,
        "/etc/hostname",
        format!("{GUEST_HOSTNAME}\n").as_bytes(),
        0o644,
    )?;
    // sshd and sudo-like tools look their own name up; keep it local.
    let hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{GUEST_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    write_guest_file(stage, "/etc/hosts", hosts.as_bytes(), 0o644)?;
    Ok(())
}

/// How many superseded guest images stay cached besides the current one.
const KEEP_OLDER_IMAGES: usize = 3;

/// Deletes the entries of `dir` whose names match `pred` (missing dir: no-op).
fn trim_dir(dir: &Path, pred: impl Fn(&str) -> bool) -> Result<(), ImageError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
        if pred(&entry.file_name().to_string_lossy()) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_entries(
    dir: &Path,
    pred: impl Fn(&str) -> bool,
    log: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let entries = std::fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
        if pred(&entry.file_name().to_string_lossy()) {
            log(&format!("removing stale {}", entry.path().display()));
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

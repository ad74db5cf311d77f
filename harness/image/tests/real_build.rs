//! Builds the real guest image (needs root and network: debootstrap fetches
//! packages). Run with:
//! `cargo test -p bdsnap-image --test real_build -- --ignored --nocapture`
//! Environment:
//! - `BDSNAP_IMAGE_TEST_CACHE`: cache dir (default /tmp/bdsnap-image-test/cache)
//! - `BDSNAP_IMAGE_TEST_MODULES`: `RELEASE=DIR[,RELEASE=DIR...]` kernels to install
//!
//! The SSH key pair is made (once) in /tmp/bdsnap-image-test/key{,.pub}.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bdsnap_image::{build_guest_image, KernelModules};

fn recipe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/guest.yaml")
}

#[test]
#[ignore = "needs root and network; builds a ~600 MB image"]
fn builds_real_image_then_hits_cache() {
    let work = Path::new("/tmp/bdsnap-image-test");
    std::fs::create_dir_all(work).unwrap();
    let key = work.join("key");
    if !key.exists() {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bdsnap-test", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen failed");
    }
    let pubkey = std::fs::read_to_string(work.join("key.pub")).unwrap();
    let cache = std::env::var_os("BDSNAP_IMAGE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.join("cache"));
    let kernels: Vec<KernelModules> = std::env::var("BDSNAP_IMAGE_TEST_MODULES")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (release, dir) = s.split_once('=').expect("RELEASE=DIR");
            KernelModules {
                release: release.to_string(),
                modules_dir: PathBuf::from(dir),
            }
        })
        .collect();

    let mut log = |line: &str| eprintln!("[image] {line}");
    let t = Instant::now();
    let first = build_guest_image(&recipe(), &cache, &kernels, &pubkey, &mut log).unwrap();
    let first_secs = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&first.path).unwrap().len();
    eprintln!(
        "first call: {first_secs:.1} s, cached={}, {} ({} MiB)",
        first.cached,
        first.path.display(),
        size / (1024 * 1024)
    );
    // The image is a valid ext4 filesystem with our label and our init.
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(&first.path)
        .output()
        .unwrap();
    let header = String::from_utf8_lossy(&out.stdout);
    assert!(
        header.contains("Filesystem volume name:   bdsnaproot"),
        "{header}"
    );
    let out = Command::new("debugfs")
        .args(["-R", "stat /usr/sbin/bdsnap-init"])
        .arg(&first.path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Mode:  0755"));
    for k in &kernels {
        let out = Command::new("debugfs")
            .args([
                "-R",
                &format!("stat /usr/lib/modules/{}/modules.dep", k.release),
            ])
            .arg(&first.path)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("Type: regular"));
    }

    let t = Instant::now();
    let second = build_guest_image(&recipe(), &cache, &kernels, &pubkey, &mut log).unwrap();
    eprintln!(
        "second call: {:.3} s, cached={}",
        t.elapsed().as_secs_f64(),
        second.cached
    );
    assert!(second.cached);
    assert_eq!(second.path, first.path);
    assert_eq!(second.key, first.key);
}

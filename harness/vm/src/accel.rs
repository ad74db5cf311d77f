//! Choosing the accelerator: KVM when it really runs guest code, TCG otherwise.
//!
//! `/dev/kvm` existing proves little: on nested setups (PVM) stock kernels die under `-cpu host`
//! or hang. So the only trustworthy test is to boot the kernel we will use and watch it get past
//! early boot. That costs a few seconds, so the answer is cached per QEMU version and kernel.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// Factor to stretch every guest-side timeout by: TCG emulates each instruction and is
    /// several times slower than hardware virtualisation.
    pub fn timeout_scale(&self) -> f64 {
        match self {
            Accel::Kvm => 1.0,
            Accel::Tcg => 4.0,
        }
    }

    /// The QEMU arguments selecting this accelerator and a CPU model that works with it.
    pub fn qemu_args(&self) -> Vec<String> {
        let args: [&str; 4] = match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg,thread=multi", "-cpu", "max"],
        };
        args.iter().map(|s| s.to_string()).collect()
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// Parsing "kvm" or "tcg", e.g. from a command-line flag.
impl std::str::FromStr for Accel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!(
                "unknown accelerator {other:?} (expected kvm or tcg)"
            )),
        }
    }
}

/// How long the KVM probe boot may take. A working KVM reaches the root-mount panic in one or
/// two seconds; anything this slow is not worth using.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

const CACHE_FILE: &str = "accel-probe.json";

/// Lines a kernel prints only after it has run for a while: seeing one after "Linux version"
/// proves the virtual CPU executes guest code, not just that QEMU started.
const LATE_BOOT_MARKERS: &[&str] = &[
    "Freeing unused kernel",
    "Cannot open root device",
    "Unable to mount root",
    "Run /init as init process",
];

/// Decides between KVM and TCG for `kernel`, booting it briefly under KVM when no cached answer
/// exists. Never fails: anything that goes wrong means TCG, which always works.
pub fn probe_accel(qemu: &Path, kernel: &Path, cache_dir: &Path) -> Accel {
    if !kvm_device_usable() {
        return Accel::Tcg;
    }
    let key = match cache_key(qemu, kernel) {
        Some(key) => key,
        None => return Accel::Tcg,
    };
    let cache_path = cache_dir.join(CACHE_FILE);
    let mut cache = read_cache(&cache_path);
    if let Some(accel) = cache.get(&key) {
        return *accel;
    }
    let accel = if kvm_boots(qemu, kernel, PROBE_TIMEOUT) {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    cache.insert(key, accel);
    // A cache that cannot be written only costs another probe next time.
    let _ = write_cache(cache_dir, &cache_path, &cache);
    accel
}

fn kvm_device_usable() -> bool {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Cache key: QEMU's version line plus the kernel's SHA-256, so a new QEMU or a new kernel
/// build is probed again.
pub(crate) fn cache_key(qemu: &Path, kernel: &Path) -> Option<String> {
    let output = Command::new(qemu).arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if !output.status.success() || version.is_empty() {
        return None;
    }
    let hash = file_sha256(kernel)?;
    Some(format!("{version} | {hash}"))
}

fn file_sha256(path: &Path) -> Option<String> {
    let mut file = fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(hex::encode(hasher.finalize()))
}

pub(crate) fn read_cache(path: &Path) -> BTreeMap<String, Accel> {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Writes through a temporary file and a rename so parallel harness runs never see a torn file.
pub(crate) fn write_cache(
    cache_dir: &Path,
    path: &Path,
    cache: &BTreeMap<String, Accel>,
) -> std::io::Result<()> {
    fs::create_dir_all(cache_dir)?;
    let tmp = cache_dir.join(format!("{CACHE_FILE}.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(cache).map_err(std::io::Error::other)?;
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// Boots `kernel` without a root disk under KVM and reports whether it got past early boot.
fn kvm_boots(qemu: &Path, kernel: &Path, timeout: Duration) -> bool {
    let mut child = match Command::new(qemu)
        .args([
            "-machine",
            "pc",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-accel", "kvm", "-cpu", "host", "-m", "256"])
        .args(["-serial", "stdio"])
        .arg("-kernel")
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => return false,
    };
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return false;
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen_banner = false;
    let mut ok = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                if line.contains("Linux version") {
                    seen_banner = true;
                } else if seen_banner && LATE_BOOT_MARKERS.iter().any(|m| line.contains(m)) {
                    ok = true;
                    break;
                }
            }
            // Timeout, or QEMU closed its output (exited).
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn display_and_scale() {
        assert_eq!(Accel::Kvm.to_string(), "kvm");
        assert_eq!(Accel::Tcg.to_string(), "tcg");
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Tcg));
        assert!("KVM ".parse::<Accel>().is_err());
        assert!(Accel::Tcg.timeout_scale() > Accel::Kvm.timeout_scale());
        assert_eq!(
            Accel::Tcg.qemu_args(),
            ["-accel", "tcg,thread=multi", "-cpu", "max"]
        );
    }

    /// Writes a shell script standing in for qemu-system-x86_64. A child process writes it:
    /// had this process held it open for writing, a fork by a parallel test could inherit the
    /// descriptor and make exec fail with ETXTBSY.
    fn fake_qemu(dir: &Path, body: &str) -> std::path::PathBuf {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("fake-qemu-{n}"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(r#"printf '#!/bin/sh\n%s\n' "$2" > "$1" && chmod 755 "$1""#)
            .arg("sh")
            .arg(&path)
            .arg(body)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        path
    }

    #[test]
    fn boot_probe_needs_a_late_boot_line() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        fs::write(&kernel, b"kernel").unwrap();
        let good = fake_qemu(
            dir.path(),
            r#"echo "[0.0] Linux version 6.1.0"; echo "VFS: Unable to mount root fs on unknown-block(0,0)""#,
        );
        assert!(kvm_boots(&good, &kernel, Duration::from_secs(10)));
        // A banner alone (then a crash, as with the MSR assertion) is not enough.
        let crashing = fake_qemu(
            dir.path(),
            r#"echo "Linux version 6.1.0"; echo "qemu: kvm_buf_set_msrs assertion failed" >&2; exit 134"#,
        );
        assert!(!kvm_boots(&crashing, &kernel, Duration::from_secs(10)));
        // A hang must end at the timeout.
        let hanging = fake_qemu(dir.path(), r#"echo "Linux version 6.1.0"; exec sleep 30"#);
        let start = Instant::now();
        assert!(!kvm_boots(&hanging, &kernel, Duration::from_millis(500)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn cache_key_tracks_qemu_version_and_kernel_content() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        fs::write(&kernel, b"kernel one").unwrap();
        let qemu = fake_qemu(dir.path(), "echo 'QEMU emulator version 7.2.0'");
        let k1 = cache_key(&qemu, &kernel).unwrap();
        assert!(k1.starts_with("QEMU emulator version 7.2.0 | "));
        fs::write(&kernel, b"kernel two").unwrap();
        let k2 = cache_key(&qemu, &kernel).unwrap();
        assert_ne!(k1, k2);
        let failing = fake_qemu(dir.path(), "exit 1");
        assert_eq!(cache_key(&failing, &kernel), None);
    }

    #[test]
    fn cached_answer_is_used_without_booting() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        fs::write(&kernel, b"kernel").unwrap();
        // This fake QEMU would pass the probe; the cache says otherwise and must win.
        let qemu = fake_qemu(
            dir.path(),
            r#"if [ "$1" = --version ]; then echo 'QEMU emulator version 7.2.0'; exit 0; fi
touch "$(dirname "$0")/booted"; echo "Linux version 6.1"; echo "Unable to mount root""#,
        );
        let cache_dir = dir.path().join("cache");
        let key = cache_key(&qemu, &kernel).unwrap();
        let mut cache = BTreeMap::new();
        cache.insert(key.clone(), Accel::Tcg);
        write_cache(&cache_dir, &cache_dir.join(CACHE_FILE), &cache).unwrap();
        let text = fs::read_to_string(cache_dir.join(CACHE_FILE)).unwrap();
        assert!(text.contains("\"tcg\""), "{text}");
        if kvm_device_usable() {
            assert_eq!(probe_accel(&qemu, &kernel, &cache_dir), Accel::Tcg);
            assert!(!dir.path().join("booted").exists());
            // Without a cache entry the (fake) boot runs and its answer is stored.
            fs::remove_file(cache_dir.join(CACHE_FILE)).unwrap();
            assert_eq!(probe_accel(&qemu, &kernel, &cache_dir), Accel::Kvm);
            assert!(dir.path().join("booted").exists());
            assert_eq!(
                read_cache(&cache_dir.join(CACHE_FILE)).get(&key),
                Some(&Accel::Kvm)
            );
        } else {
            assert_eq!(probe_accel(&qemu, &kernel, &cache_dir), Accel::Tcg);
        }
    }
}

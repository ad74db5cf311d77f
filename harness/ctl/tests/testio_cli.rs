//! `bdsnap-testio` as a scenario runs it, for the commands that need no kernel module: the
//! memory hog's clean stop on SIGTERM and the errors of `cbt-read-mmap` before any ioctl.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TESTIO: &str = env!("CARGO_BIN_EXE_bdsnap-testio");

#[test]
fn hog_reports_then_holds_until_sigterm_and_exits_cleanly() {
    let mut child = Command::new(TESTIO)
        .args(["hog", "--mib", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["mib"], 8);
    assert_eq!(v["bytes"], 8 << 20);
    assert_eq!(v["pid"], child.id());
    assert!(v["hold_secs"].is_null());
    assert!(v["touch_ms"].as_f64().unwrap() >= 0.0);
    // Touched pages are resident (the tool itself adds its own few MiB).
    assert!(v["vm_rss_kib"].as_u64().unwrap() >= 8 * 1024, "{v}");

    // Still holding a moment later.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the hog ended by itself"
    );
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hog: SIGTERM after"), "{err}");
}

#[test]
fn hog_with_a_hold_time_ends_by_itself() {
    let started = Instant::now();
    let out = Command::new(TESTIO)
        .args(["hog", "--mib", "1", "--hold-secs", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hold_secs"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("hold time passed"));
}

#[test]
fn hog_of_nothing_is_refused() {
    let out = Command::new(TESTIO)
        .args(["hog", "--mib", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mib 0: must be at least 1"));
}

#[test]
fn cbt_read_mmap_names_a_missing_file_before_the_module() {
    let out = Command::new(TESTIO)
        .args([
            "cbt-read-mmap",
            "253:0",
            "--file",
            "/nonexistent/buf",
            "--ctl",
            "/nonexistent/ctl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/buf: cannot open read-write: "),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let f = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(TESTIO)
        .args(["cbt-read-mmap", "253:0", "--file"])
        .arg(f.path())
        .args(["--ctl", "/nonexistent/ctl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the bdsnap module loaded?"), "{err}");
}

#[test]
fn nowait_write_refuses_what_is_not_a_block_device() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(TESTIO)
        .args(["nowait-write"])
        .arg(f.path())
        .args(["--count", "1", "--bs", "4K"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // O_DIRECT may be refused by the file system first; either way the path is named.
    let path = f.path().display().to_string();
    assert!(
        err.contains(&format!("{path}: not a block device"))
            || err.contains(&format!("{path}: open O_DIRECT: ")),
        "{err}"
    );
}

//! The Rust UAPI mirror must match the C header exactly: compile a probe against the header with
//! the host C compiler and compare sizes, offsets and ioctl numbers.

use bdsnapctl::uapi::*;
use std::mem::{offset_of, size_of};
use std::process::Command;

fn c_values() -> Vec<(String, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../../module/include/uapi");
    let src = dir.path().join("probe.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <stddef.h>
#include <linux/bdsnap.h>
#define P(name, v) printf("%s %llu\n", name, (unsigned long long)(v))
int main(void)
{
	P("magic", BDSNAP_IOCTL_MAGIC);
	P("version.sizeof", sizeof(struct bdsnap_version));
	P("version.size", offsetof(struct bdsnap_version, size));
	P("version.major", offsetof(struct bdsnap_version, major));
	P("version.minor", offsetof(struct bdsnap_version, minor));
	P("version.patch", offsetof(struct bdsnap_version, patch));
	P("version.reserved0", offsetof(struct bdsnap_version, reserved0));
	P("version.flags", offsetof(struct bdsnap_version, flags));
	P("version.reserved", offsetof(struct bdsnap_version, reserved));
	P("ioctl.version", BDSNAP_IOCTL_VERSION);
	return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("probe");
    let status = Command::new("cc")
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) is needed to check the UAPI header");
    assert!(status.success(), "the UAPI header does not compile");
    let out = Command::new(&exe).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn rust_structs_and_ioctls_match_the_c_header() {
    let rust: Vec<(&str, u64)> = vec![
        ("magic", BDSNAP_IOCTL_MAGIC as u64),
        ("version.sizeof", size_of::<BdsnapVersion>() as u64),
        ("version.size", offset_of!(BdsnapVersion, size) as u64),
        ("version.major", offset_of!(BdsnapVersion, major) as u64),
        ("version.minor", offset_of!(BdsnapVersion, minor) as u64),
        ("version.patch", offset_of!(BdsnapVersion, patch) as u64),
        (
            "version.reserved0",
            offset_of!(BdsnapVersion, reserved0) as u64,
        ),
        ("version.flags", offset_of!(BdsnapVersion, flags) as u64),
        (
            "version.reserved",
            offset_of!(BdsnapVersion, reserved) as u64,
        ),
        ("ioctl.version", BDSNAP_IOCTL_VERSION as u64),
    ];
    let c = c_values();
    assert_eq!(
        c.len(),
        rust.len(),
        "probe and mirror list different fields"
    );
    for ((ck, cv), (rk, rv)) in c.iter().zip(&rust) {
        assert_eq!(ck, rk);
        assert_eq!(cv, rv, "{ck}: C says {cv}, Rust says {rv}");
    }
}

//! The Rust UAPI mirror must match the C header exactly: compile a probe against the header with
//! the host C compiler and compare every struct size, every field offset and size, every ioctl
//! number and every constant.
//!
//! The probe's C lines and the Rust values are generated from one list below, so a field missing
//! on either side fails to compile (Rust) or to build the probe (C); the values themselves come
//! independently from each compiler.

use bdsnapctl::uapi::*;
use std::mem::{offset_of, size_of};
use std::process::Command;

/// Size of a field, from an accessor closure (no instance needed).
fn field_size<T, F>(_: fn(&T) -> &F) -> u64 {
    size_of::<F>() as u64
}

/// One checked value: its name, the C expression printing it, and the Rust value.
struct Check {
    name: String,
    c_expr: String,
    rust: u64,
}

macro_rules! structs {
    ($checks:ident; $( $rty:ty => $cname:literal { $($field:ident),* $(,)? } )*) => {$(
        let mut fields_total = 0u64;
        $(
            $checks.push(Check {
                name: format!("{}.{}.offset", $cname, stringify!($field)),
                c_expr: format!("offsetof(struct {}, {})", $cname, stringify!($field)),
                rust: offset_of!($rty, $field) as u64,
            });
            let fsize = field_size(|s: &$rty| &s.$field);
            fields_total += fsize;
            $checks.push(Check {
                name: format!("{}.{}.size", $cname, stringify!($field)),
                c_expr: format!("sizeof(((struct {} *)0)->{})", $cname, stringify!($field)),
                rust: fsize,
            });
        )*
        $checks.push(Check {
            name: format!("{}.sizeof", $cname),
            c_expr: format!("sizeof(struct {})", $cname),
            rust: size_of::<$rty>() as u64,
        });
        // No implicit padding: the ABI rules in the header promise it, and the fuzzer's
        // byte-level view of the structs relies on it.
        assert_eq!(fields_total, size_of::<$rty>() as u64, "{} has padding", $cname);
    )*};
}

macro_rules! constants {
    ($checks:ident; $($name:ident),* $(,)?) => {$(
        $checks.push(Check {
            name: stringify!($name).to_string(),
            c_expr: stringify!($name).to_string(),
            rust: $name as u64,
        });
    )*};
}

fn checks() -> Vec<Check> {
    let mut checks = Vec::new();
    structs! { checks;
        BdsnapVersion => "bdsnap_version" { size, major, minor, patch, reserved0, flags, reserved }
        BdsnapDevId => "bdsnap_dev_id" { major, minor }
        BdsnapTrackerCtl => "bdsnap_tracker_ctl" { size, flags, dev, reserved }
        BdsnapTrackerList => "bdsnap_tracker_list" { size, count, devs, reserved }
        BdsnapCbtInfo => "bdsnap_cbt_info" {
            size, flags, dev, device_sectors, block_size, block_count, generation_id,
            snap_number, reserved0, state, reserved
        }
        BdsnapCbtRead => "bdsnap_cbt_read" {
            size, flags, dev, offset, length, reserved0, buf, reserved
        }
        BdsnapSectorRange => "bdsnap_sector_range" { sector, count }
        BdsnapCbtMarkDirty => "bdsnap_cbt_mark_dirty" {
            size, flags, dev, count, reserved0, ranges, reserved
        }
        BdsnapSnapshotStorage => "bdsnap_snapshot_storage" {
            size, flags, id, path, bytes, reserved
        }
        BdsnapSnapshotCreate => "bdsnap_snapshot_create" {
            size, flags, id, storage, limit, grow_step, low_space, reserved
        }
        BdsnapSnapshotDev => "bdsnap_snapshot_dev" { size, flags, id, dev, reserved }
        BdsnapSnapshotCtl => "bdsnap_snapshot_ctl" {
            size, flags, id, take_ns, wait_ns, writes_waited, reserved0, reserved
        }
        BdsnapSnapshotDevInfo => "bdsnap_snapshot_dev_info" {
            dev, image, chunk_size, error, chunks_copied, chunk_memory, reserve_copies,
            discards_dropped, reserved
        }
        BdsnapSnapshotInfo => "bdsnap_snapshot_info" {
            size, flags, id, state, error, storage_used, storage_total, storage_limit, count,
            reserved0, devs, reserved
        }
        BdsnapSnapshotList => "bdsnap_snapshot_list" { size, count, ids, reserved }
        BdsnapEvent => "bdsnap_event" {
            size, flags, id, timeout_ms, code, time_ns, dev, error, reserved0, used, total,
            limit, reserved
        }
    }
    constants! { checks;
        BDSNAP_VERSION_MAJOR, BDSNAP_VERSION_MINOR, BDSNAP_VERSION_PATCH,
        BDSNAP_IOCTL_MAGIC,
        BDSNAP_CBT_RESIZED, BDSNAP_CBT_READ_LIVE, BDSNAP_MARK_DIRTY_MAX, BDSNAP_TRACKER_FILTER_ONLY,
        BDSNAP_IOCTL_VERSION,
        BDSNAP_IOCTL_TRACKER_ATTACH, BDSNAP_IOCTL_TRACKER_DETACH, BDSNAP_IOCTL_TRACKER_LIST,
        BDSNAP_IOCTL_CBT_INFO, BDSNAP_IOCTL_CBT_READ, BDSNAP_IOCTL_CBT_MARK_DIRTY,
        BDSNAP_SNAPSHOT_CREATED, BDSNAP_SNAPSHOT_TAKEN, BDSNAP_SNAPSHOT_CORRUPTED,
        BDSNAP_STORAGE_PATH_MAX, BDSNAP_TAKE_NO_FREEZE,
        BDSNAP_EVENT_NONE, BDSNAP_EVENT_LOW_SPACE, BDSNAP_EVENT_CORRUPTED,
        BDSNAP_EVENT_DEV_REMOVED, BDSNAP_EVENT_STORAGE_GROWN, BDSNAP_EVENT_OVERFLOW,
        BDSNAP_IOCTL_SNAPSHOT_CREATE, BDSNAP_IOCTL_SNAPSHOT_ADD, BDSNAP_IOCTL_SNAPSHOT_TAKE,
        BDSNAP_IOCTL_SNAPSHOT_DESTROY, BDSNAP_IOCTL_SNAPSHOT_INFO, BDSNAP_IOCTL_SNAPSHOT_LIST,
        BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE, BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT,
    }
    checks
}

/// Compiles and runs the probe; returns the C value of every check, in order.
fn c_values(checks: &[Check], extra_c: &str) -> Vec<(String, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../../module/include/uapi");
    let src = dir.path().join("probe.c");
    let mut body = String::new();
    for c in checks {
        body.push_str(&format!("\tP(\"{}\", {});\n", c.name, c.c_expr));
    }
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#include <stddef.h>\n#include <string.h>\n#include <linux/bdsnap.h>\n\
             #define P(name, v) printf(\"%s %llu\\n\", name, (unsigned long long)(v))\n\
             int main(void)\n{{\n{body}{extra_c}\treturn 0;\n}}\n"
        ),
    )
    .unwrap();
    let exe = dir.path().join("probe");
    let status = Command::new("cc")
        .args(["-Wall", "-Werror", "-I"])
        .arg(include)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) is needed to check the UAPI header");
    assert!(status.success(), "the UAPI probe does not compile");
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
    let checks = checks();
    let c = c_values(&checks, "");
    assert_eq!(c.len(), checks.len(), "the probe printed a different count");
    let mut mismatches = Vec::new();
    for ((ck, cv), r) in c.iter().zip(&checks) {
        assert_eq!(ck, &r.name);
        if *cv != r.rust {
            mismatches.push(format!("{ck}: C says {cv}, Rust says {}", r.rust));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// What the 0.2 mirror of `struct bdsnap_snapshot_ctl` would look like with `wait_ns` after
/// `writes_waited`: the same size and no padding, only two fields in the wrong place.
#[repr(C)]
#[allow(dead_code)]
struct MisorderedSnapshotCtl {
    size: u32,
    flags: u32,
    id: u64,
    take_ns: u64,
    writes_waited: u32,
    reserved0: u32,
    wait_ns: u64,
    reserved: [u8; 24],
}

/// The 0.2 layout, where everything after `take_ns` was reserved.
#[repr(C)]
#[allow(dead_code)]
struct OldSnapshotCtl {
    size: u32,
    flags: u32,
    id: u64,
    take_ns: u64,
    reserved: [u8; 40],
}

/// The names of the checks whose C and Rust values differ.
fn mismatched(checks: &[Check]) -> Vec<String> {
    c_values(checks, "")
        .into_iter()
        .zip(checks)
        .filter(|((_, cv), r)| *cv != r.rust)
        .map(|((name, _), _)| name)
        .collect()
}

#[test]
fn a_field_in_the_wrong_place_or_of_the_wrong_size_is_caught() {
    let mut checks = Vec::new();
    structs! { checks;
        MisorderedSnapshotCtl => "bdsnap_snapshot_ctl" {
            size, flags, id, take_ns, writes_waited, reserved0, wait_ns, reserved
        }
    }
    assert_eq!(
        mismatched(&checks),
        [
            "bdsnap_snapshot_ctl.writes_waited.offset",
            "bdsnap_snapshot_ctl.reserved0.offset",
            "bdsnap_snapshot_ctl.wait_ns.offset",
        ]
    );
    let mut checks = Vec::new();
    structs! { checks;
        OldSnapshotCtl => "bdsnap_snapshot_ctl" { size, flags, id, take_ns, reserved }
    }
    assert_eq!(
        mismatched(&checks),
        [
            "bdsnap_snapshot_ctl.reserved.offset",
            "bdsnap_snapshot_ctl.reserved.size"
        ]
    );
}

#[test]
fn control_device_name_matches_the_header() {
    let c = c_values(
        &[],
        "\tP(\"name_ok\", strcmp(BDSNAP_CTL_NAME, \"bdsnap-ctl\") == 0);\n",
    );
    assert_eq!(BDSNAP_CTL_NAME, "bdsnap-ctl");
    assert_eq!(c, vec![("name_ok".to_string(), 1)]);
}

#[test]
fn every_command_is_listed_once_with_its_size() {
    let mut numbers: Vec<u32> = COMMANDS.iter().map(|c| c.1).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), COMMANDS.len());
    assert_eq!(numbers.len(), 15);
    for (name, cmd, size) in COMMANDS {
        assert_eq!(ioc_size(*cmd) as usize, *size, "{name}");
        assert_eq!((cmd >> 8) & 0xff, BDSNAP_IOCTL_MAGIC, "{name}");
        assert_eq!(command_name(*cmd), Some(*name));
    }
}

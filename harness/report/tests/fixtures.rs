//! The scanner against real kernel output: each fixture must give exactly these markers on
//! exactly these lines, and a clean boot of a Debian cloud kernel must give none.

use bdsnap_report::{scan, Marker};
use std::path::Path;

fn findings(name: &str) -> Vec<(usize, Marker)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8_lossy(&bytes);
    scan(&text)
        .into_iter()
        .map(|f| (f.line, f.marker))
        .collect()
}

use Marker::*;

#[test]
fn clean_debian_cloud_boot_has_no_findings() {
    assert_eq!(findings("clean_boot_debian_6.1_cloud.txt"), vec![]);
}

#[test]
fn panic_is_found_but_not_the_panic_option_on_the_command_line() {
    assert_eq!(
        findings("panic_no_root_debian_6.1_cloud.txt"),
        vec![(351, KernelPanic)]
    );
}

#[test]
fn null_pointer_oops_with_call_trace() {
    assert_eq!(
        findings("null_pointer_oops_6.6_i386.txt"),
        vec![(1, Bug), (5, Oops)]
    );
    assert_eq!(
        findings("null_pointer_oops_5.10_debian.txt"),
        vec![(3, Bug), (7, Oops)]
    );
}

#[test]
fn warning_with_call_trace() {
    assert_eq!(findings("warning_call_trace_6.2.txt"), vec![(2, Warning)]);
    assert_eq!(findings("warning_debian_6.12.txt"), vec![(2, Warning)]);
}

#[test]
fn soft_lockup_after_a_shell_prompt() {
    assert_eq!(
        findings("soft_lockup_shell_prompt.txt"),
        vec![(1, SoftLockup)]
    );
}

#[test]
fn rcu_stall_and_soft_lockup_with_wall_clock_timestamps() {
    assert_eq!(
        findings("rcu_stall_and_soft_lockup_dmesg_T.txt"),
        vec![(1, RcuStall), (6, SoftLockup)]
    );
}

#[test]
fn hung_tasks() {
    assert_eq!(
        findings("hung_task_debian_4.19.txt"),
        vec![(1, HungTask), (4, HungTask), (7, HungTask)]
    );
    assert_eq!(
        findings("hung_task_call_trace_dmesg_T.txt"),
        vec![(1, HungTask)]
    );
}

#[test]
fn lockdep_circular_locking() {
    assert_eq!(
        findings("lockdep_circular_5.10.txt"),
        vec![(2, CircularLocking)]
    );
}

#[test]
fn kasan_reports() {
    assert_eq!(findings("kasan_use_after_free_5.10.txt"), vec![(1, Kasan)]);
    assert_eq!(findings("kasan_caller_id_6.5.txt"), vec![(2, Kasan)]);
}

#[test]
fn kernel_bug_at_behind_a_journal_prefix() {
    assert_eq!(findings("kernel_bug_at_syslog.txt"), vec![(3, KernelBugAt)]);
}

#[test]
fn a_scenario_window_sees_only_its_own_complaints() {
    // The clean boot, then a scenario whose window holds the 6.12 warning.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let boot = String::from_utf8_lossy(
        &std::fs::read(dir.join("panic_no_root_debian_6.1_cloud.txt")).unwrap(),
    )
    .into_owned();
    let warning = std::fs::read_to_string(dir.join("warning_debian_6.12.txt")).unwrap();
    let log = format!("{boot}\n{warning}");
    let boot_lines = boot.matches('\n').count() + 1;
    let found = bdsnap_report::scan_since(&log, boot.len() + 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].marker, Warning);
    assert_eq!(found[0].line, boot_lines + 2);
    assert!(found[0].text.contains("kernel/rcu/tree_plugin.h:761"));
}

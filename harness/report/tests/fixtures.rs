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
    // DEBUG_LIST reports the corruption, then BUG()s on it.
    assert_eq!(
        findings("kernel_bug_at_syslog.txt"),
        vec![(1, ListCorruption), (3, KernelBugAt)]
    );
}

fn fixture_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What each SLUB or KFENCE finding reports: the header's text after the taint (`Poison
/// overwritten`) or after `KFENCE: `, up to ` in <function>`.
fn problems(name: &str) -> Vec<String> {
    bdsnap_report::scan(&fixture_text(name))
        .into_iter()
        .filter(|f| f.marker != Warning)
        .map(|f| {
            let text = f.text.as_str();
            let after = text
                .rfind("): ")
                .map(|i| &text[i + 3..])
                .or_else(|| text.find("KFENCE: ").map(|i| &text[i + 8..]))
                .unwrap_or(text);
            after.split(" in ").next().unwrap_or(after).to_string()
        })
        .collect()
}

#[test]
fn test_boot_with_memory_checks_has_no_findings() {
    // The options are on the echoed command lines and KFENCE announces itself: none of it is
    // a report.
    let name = "clean_boot_debian_7.2_cloud_memchecks.txt";
    let text = fixture_text(name);
    assert_eq!(
        text.matches("slub_debug=FZP kfence.sample_interval=100")
            .count(),
        2
    );
    assert!(text.contains("kfence: initialized"));
    assert_eq!(findings(name), vec![]);
}

#[test]
fn slub_red_zone_reports_on_every_kernel() {
    // bdsnap_memcheck mode=slub-redzone under slub_debug=FZP. Up to 6.1 the header names the
    // problem; from 6.12 the problem is a line of its own before the header (`Object corrupt`)
    // and object_err() adds a WARNING.
    for (kernel, expected, problem) in [
        ("5.10", vec![(3, Slub)], "Right Redzone overwritten"),
        ("6.1", vec![(3, Slub)], "Right Redzone overwritten"),
        ("6.12", vec![(4, Slub), (23, Warning)], "Object corrupt"),
        ("7.2", vec![(4, Slub), (23, Warning)], "Object corrupt"),
    ] {
        let name = format!("slub_redzone_debian_{kernel}_cloud.txt");
        assert_eq!(findings(&name), expected, "{name}");
        assert_eq!(problems(&name), [problem], "{name}");
    }
}

#[test]
fn slub_poison_reports_on_every_kernel() {
    // mode=slub-poison, then `echo 1 > /sys/kernel/slab/kmalloc-64/validate`.
    for (kernel, expected, problem) in [
        ("5.10", vec![(5, Slub)], "Poison overwritten"),
        ("6.1", vec![(5, Slub)], "Poison overwritten"),
        ("6.12", vec![(6, Slub), (26, Warning)], "Object corrupt"),
        ("7.2", vec![(6, Slub), (26, Warning)], "Object corrupt"),
    ] {
        let name = format!("slub_poison_debian_{kernel}_cloud.txt");
        assert_eq!(findings(&name), expected, "{name}");
        assert_eq!(problems(&name), [problem], "{name}");
    }
}

#[test]
fn slub_double_free_report() {
    let name = "slub_double_free_debian_7.2_cloud.txt";
    assert_eq!(findings(name), vec![(3, Slub), (23, Warning)]);
    assert_eq!(problems(name), ["Object already free"]);
}

#[test]
fn kfence_reports_of_every_kind() {
    // mode=kfence-oob-read, -oob-write, -uaf, -invalid-free, -corruption in turn, one report
    // each; the lines after each header (`Out-of-bounds read at ...`, `kfence-#84: ...`,
    // `Tainted: [B]=BAD_PAGE`) are not reports of their own.
    let kinds = [
        "out-of-bounds read",
        "out-of-bounds write",
        "use-after-free read",
        "invalid free",
        "memory corruption",
    ];
    for (kernel, lines) in [
        ("6.12", [4, 78, 146, 228, 270]),
        ("7.2", [4, 79, 147, 229, 271]),
    ] {
        let name = format!("kfence_debian_{kernel}_cloud.txt");
        let expected: Vec<(usize, Marker)> = lines.iter().map(|&l| (l, Kfence)).collect();
        assert_eq!(findings(&name), expected, "{name}");
        assert_eq!(problems(&name), kinds, "{name}");
    }
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

/// A boot of the debug kernel (6.12-debug: lockdep, KASAN, KFENCE, UBSAN, kmemleak,
/// DEBUG_OBJECTS) to the guest's ready line: its notices (`RCU lockdep checking is enabled`,
/// kmemleak's start, ACPI's loop timeouts under TCG) are not complaints.
#[test]
fn clean_debug_kernel_boot_has_no_findings() {
    assert_eq!(findings("clean_boot_6.12_debug.txt"), vec![]);
}

/// The debug kernel's own KASAN reports of a use-after-free and an out-of-bounds read
/// (`bdsnap_debugcheck`): one finding each, at the report's `BUG: KASAN:` line.
#[test]
fn kasan_reports_of_the_debug_kernel() {
    assert_eq!(
        findings("kasan_debugcheck_6.12_debug.txt"),
        vec![(3, Kasan), (109, Kasan)]
    );
}

/// lockdep's report of `bdsnap_debugcheck mode=lock-inversion` on the debug kernel.
#[test]
fn lockdep_report_of_the_debug_kernel() {
    assert_eq!(
        findings("lockdep_debugcheck_6.12_debug.txt"),
        vec![(4, CircularLocking)]
    );
}

/// kmemleak's report (`cat /sys/kernel/debug/kmemleak`) of a leak in a module's init code:
/// the module's frame is a bare address (init code is freed after the load, as all of a
/// module's code is after `rmmod`), which is blamed on an unloaded module.
#[test]
fn kmemleak_report_of_the_debug_kernel() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kmemleak_init_leak_6.12_debug.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let reports = bdsnap_report::kmemleak::parse(&text);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].blame().as_deref(), Some("an unloaded module"));
    let found = bdsnap_report::kmemleak::findings(&text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].marker, Kmemleak);
    assert!(found[0].text.contains("(size 64)"), "{}", found[0].text);
}

/// The debug kernel's UBSAN, DEBUG_OBJECTS, DEBUG_LIST and DEBUG_ATOMIC_SLEEP reports of
/// `bdsnap_debugcheck` (ubsan-bounds, odebug-free, list-corruption, atomic-sleep). UBSAN's
/// out-of-bounds read is also a KASAN stack-out-of-bounds; the other two come with a WARNING.
#[test]
fn other_checkers_of_the_debug_kernel() {
    assert_eq!(
        findings("ubsan_debugcheck_6.12_debug.txt"),
        vec![(3, Ubsan), (50, Kasan)]
    );
    assert_eq!(
        findings("odebug_debugcheck_6.12_debug.txt"),
        vec![(3, DebugObjects), (4, Warning)]
    );
    assert_eq!(
        findings("list_debugcheck_6.12_debug.txt"),
        vec![(3, ListCorruption), (4, Warning)]
    );
    assert_eq!(
        findings("atomic_sleep_debugcheck_6.12_debug.txt"),
        vec![(2, Bug)]
    );
}

//! The repository's self-test scenarios name the console marker they must cause by its label
//! (`expect_failure: {console: SLUB}`), and the case compares that text with each finding's
//! [`Marker::label`]. A name the scanner never produces would make the self-test fail on every
//! kernel for a reason nobody looks for: every name must be a marker's label.

use bdsnap_report::Marker;
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn selftest_console_names_are_scanner_labels() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/selftest");
    let kernels = ["5.10", "6.1", "6.12", "7.2", "6.12-debug"];
    let scenarios = bdsnap_scenario::load_dir(&dir, &kernels).unwrap_or_else(|e| panic!("{e}"));
    let labels: Vec<&str> = Marker::ALL.iter().map(|m| m.label()).collect();
    let mut named = BTreeSet::new();
    for sc in &scenarios {
        let Some(name) = sc
            .expect_failure
            .as_ref()
            .and_then(|f| f.console.as_deref())
        else {
            continue;
        };
        assert!(
            Marker::from_label(name).is_some(),
            "{}: console {name:?} is not a scanner marker; the labels are {labels:?}",
            sc.source.display()
        );
        named.insert(name);
    }
    // The memory checkers' self-tests are there, next to the WARNING one, and the debug
    // kernel's: lockdep, KASAN, UBSAN, DEBUG_OBJECTS, DEBUG_LIST, kmemleak.
    for want in [
        "WARNING",
        "SLUB",
        "KFENCE",
        "possible circular locking",
        "KASAN",
        "UBSAN",
        "ODEBUG",
        "list corruption",
        "kmemleak",
    ] {
        assert!(
            named.contains(want),
            "no self-test expects {want}: {named:?}"
        );
    }
}

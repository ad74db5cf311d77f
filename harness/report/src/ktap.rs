//! `results.ktap`: KTAP version 1 (Documentation/dev-tools/ktap.rst), the format kernel
//! test tooling (kunit.py, kselftest runners, LAVA/KernelCI parsers) and people read. The top
//! level has one test per kernel; each is a subtest indented by two spaces with one result
//! line per scenario. Failure reasons are `# ` diagnostic lines just before the result
//! line they explain, as KUnit prints them.

use crate::model::{CaseResult, RunSummary};
use crate::write::failure_details;
use crate::ReportError;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// Step output kept in KTAP diagnostics; the case directory has all of it.
const DIAGNOSTIC_OUTPUT_LINES: usize = 20;

/// Writes `summary` as a KTAP v1 stream to `path`.
pub fn write_ktap(summary: &RunSummary, path: &Path) -> Result<(), ReportError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(ReportError::io(parent))?;
    }
    fs::write(path, render_ktap(summary)).map_err(ReportError::io(path))
}

/// The KTAP v1 text for `summary`.
pub fn render_ktap(summary: &RunSummary) -> String {
    let groups = summary.by_kernel();
    let mut out = String::new();
    let _ = writeln!(out, "KTAP version 1");
    let _ = writeln!(
        out,
        "# bdsnap run {} (accel {}, host {})",
        clean(&summary.run_id),
        clean(&summary.accel),
        clean(&summary.host)
    );
    if !summary.boot_options.is_empty() {
        let _ = writeln!(
            out,
            "# boot options: {}",
            clean(&summary.boot_options.join(" "))
        );
    }
    let _ = writeln!(out, "1..{}", groups.len());
    for (number, (kernel, info, cases)) in groups.iter().enumerate() {
        let name = test_name(&format!("bdsnap.{kernel}"));
        let _ = writeln!(out, "  KTAP version 1");
        let _ = writeln!(out, "  # Subtest: {name}");
        if let Some(k) = info {
            let _ = writeln!(
                out,
                "  # kernel {} ({} {}, package {}, {})",
                clean(&k.name),
                clean(&k.suite),
                clean(&k.release),
                clean(&k.package_version),
                clean(&k.compiler)
            );
        }
        let _ = writeln!(out, "  1..{}", cases.len());
        for (index, case) in cases.iter().enumerate() {
            write_case(&mut out, index + 1, case);
        }
        let ok = if !cases.iter().any(|c| c.failed()) {
            "ok"
        } else {
            "not ok"
        };
        let _ = writeln!(out, "{ok} {} {name}", number + 1);
    }
    out
}

fn write_case(out: &mut String, number: usize, case: &CaseResult) {
    let name = test_name(&case.scenario);
    if let Some(why) = &case.skipped {
        // KTAP: a skipped test is "ok" with a SKIP directive and its reason.
        let _ = writeln!(out, "  ok {number} {name} # SKIP {}", clean(why));
        return;
    }
    if case.passed() {
        let _ = writeln!(out, "  ok {number} {name}");
        return;
    }
    if let Some(message) = case.failure_message() {
        let _ = writeln!(out, "  # {name}: {}", clean(&message));
    }
    // The summary line above already holds a one-line harness error.
    let repeated = case
        .error
        .as_deref()
        .filter(|e| !e.contains('\n'))
        .map(|e| format!("harness error: {e}"));
    for line in failure_details(case, Some(DIAGNOSTIC_OUTPUT_LINES))
        .lines()
        .filter(|l| Some(*l) != repeated.as_deref())
    {
        let _ = writeln!(out, "  # {}", clean(line));
    }
    let _ = writeln!(out, "  not ok {number} {name}");
}

/// Test names may not hold `#` (it starts a directive) nor line breaks.
fn test_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '#' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_string()
    } else {
        cleaned
    }
}

/// A diagnostic stays on its line: no line breaks or other control characters.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_hashes_and_whitespace() {
        assert_eq!(test_name("a b#c\nd"), "a_b_c_d");
        assert_eq!(test_name(""), "_");
    }
}

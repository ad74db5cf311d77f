//! Plain files of a run: `summary.json` and the per-case directory
//! `results/<run>/<kernel>/<scenario>/` with `console.log`, `dmesg.txt`, `steps.json` and
//! `commands.log`, plus each fio step's JSON report (`fio-stepNN.json`).

use crate::model::{CaseResult, RunSummary};
use crate::ReportError;
use bdsnap_scenario::{StepRecord, Verdict};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Writes the whole run as pretty JSON, the machine-readable record of record.
pub fn write_summary_json(summary: &RunSummary, path: &Path) -> Result<(), ReportError> {
    let json = serde_json::to_string_pretty(summary).map_err(|source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_file(path, json.as_bytes())
}

/// Where a case's files live: `<run_dir>/<kernel>/<scenario>`, with each part made safe as
/// a single path component (a scenario named `../x` must not write outside the run).
pub fn case_dir(run_dir: &Path, case: &CaseResult) -> PathBuf {
    run_dir
        .join(path_component(&case.kernel))
        .join(path_component(&case.scenario))
}

/// Writes the evidence of one case and returns its directory. `console_excerpt` is the part
/// of the serial console written while the case ran; `dmesg` is the guest's `dmesg` after it.
pub fn write_case_dir(
    run_dir: &Path,
    case: &CaseResult,
    console_excerpt: &str,
    dmesg: &str,
) -> Result<PathBuf, ReportError> {
    let dir = case_dir(run_dir, case);
    fs::create_dir_all(&dir).map_err(ReportError::io(&dir))?;
    write_file(&dir.join("console.log"), console_excerpt.as_bytes())?;
    write_file(&dir.join("dmesg.txt"), dmesg.as_bytes())?;
    let steps_path = dir.join("steps.json");
    let json = serde_json::to_string_pretty(case).map_err(|source| ReportError::Json {
        path: steps_path.clone(),
        source,
    })?;
    write_file(&steps_path, json.as_bytes())?;
    write_file(
        &dir.join("commands.log"),
        render_commands_log(case).as_bytes(),
    )?;
    for step in case.outcome.iter().flat_map(|o| &o.steps) {
        if step.kind == "fio" && !step.stdout.is_empty() {
            write_file(&dir.join(fio_report_name(step)), step.stdout.as_bytes())?;
        }
    }
    for step in case.outcome.iter().flat_map(|o| &o.cleanup) {
        if step.kind == "fio" && !step.stdout.is_empty() {
            let name = format!("fio-cleanup{:02}.json", step.index);
            write_file(&dir.join(name), step.stdout.as_bytes())?;
        }
    }
    Ok(dir)
}

/// The file a fio step's JSON report is kept in, inside its case directory:
/// `fio-step03.json`.
pub fn fio_report_name(step: &StepRecord) -> String {
    format!("fio-step{:02}.json", step.index)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(ReportError::io(parent))?;
    }
    fs::write(path, bytes).map_err(ReportError::io(path))
}

fn path_component(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | '\0' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

/// The human-readable transcript of a case: each step's command, exit status, duration,
/// verdict, stdout and stderr, in order.
pub fn render_commands_log(case: &CaseResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# kernel {}, scenario {} ({})",
        case.kernel, case.scenario, case.scenario_file
    );
    match case.failure_message() {
        None => {
            let _ = writeln!(out, "# result: PASS");
        }
        Some(msg) => {
            let _ = writeln!(out, "# result: FAIL: {msg}");
        }
    }
    if let Some(error) = &case.error {
        let _ = writeln!(out, "# harness error:");
        for line in error.lines() {
            let _ = writeln!(out, "#   {line}");
        }
    }
    for finding in &case.findings {
        let _ = writeln!(out, "# console {finding}");
    }
    let steps = case.outcome.as_ref().map_or(&[][..], |o| &o.steps[..]);
    for step in steps {
        out.push('\n');
        out.push_str(&render_step("step", step, None));
    }
    for step in case.outcome.iter().flat_map(|o| &o.cleanup) {
        out.push('\n');
        out.push_str(&render_step("cleanup", step, None));
    }
    out
}

/// One step as text. With `max_output_lines`, only the last lines of stdout and stderr are
/// kept (the end of an output is where the error is).
fn render_step(label: &str, step: &StepRecord, max_output_lines: Option<usize>) -> String {
    let mut out = String::new();
    let line = if step.line > 0 {
        format!(" (line {})", step.line)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "== {label} {}{line} {}: {}",
        step.index, step.kind, step.action
    );
    let exit = step
        .exit
        .map_or_else(|| "-".to_string(), |code| code.to_string());
    let verdict = match &step.verdict {
        Verdict::Pass => "pass".to_string(),
        Verdict::Skipped => "skipped".to_string(),
        Verdict::Fail(reason) => format!("FAIL: {reason}"),
    };
    let _ = writeln!(
        out,
        "exit: {exit}  duration: {} ms  verdict: {verdict}",
        step.duration_ms
    );
    for (name, text) in [("stdout", &step.stdout), ("stderr", &step.stderr)] {
        if text.is_empty() {
            continue;
        }
        let _ = writeln!(out, "--- {name} ---");
        let lines: Vec<&str> = text.lines().collect();
        let keep = max_output_lines.map_or(lines.len(), |n| n.min(lines.len()));
        if keep < lines.len() {
            let _ = writeln!(out, "[... {} earlier lines ...]", lines.len() - keep);
        }
        for l in &lines[lines.len() - keep..] {
            let _ = writeln!(out, "{l}");
        }
    }
    out
}

/// Everything a person needs to see why a case failed, for JUnit failure bodies and KTAP
/// diagnostics: the harness error, the console findings and the failing step with its
/// output (only its last `max_output_lines` lines, when given). Empty when the case passed.
pub fn failure_details(case: &CaseResult, max_output_lines: Option<usize>) -> String {
    if case.passed() {
        return String::new();
    }
    let mut out = String::new();
    if let Some(error) = &case.error {
        let _ = writeln!(out, "harness error: {error}");
    }
    if !case.findings.is_empty() {
        let _ = writeln!(out, "kernel console:");
        for f in &case.findings {
            let _ = writeln!(out, "  {f}");
        }
    }
    match (&case.outcome, case.failing_step()) {
        (_, Some(step)) => out.push_str(&render_step("step", step, max_output_lines)),
        (None, None) if case.error.is_none() => {
            let _ = writeln!(out, "scenario did not run");
        }
        _ => {}
    }
    if let Some(step) = case
        .outcome
        .as_ref()
        .and_then(|o| o.first_cleanup_failure())
    {
        out.push_str(&render_step("cleanup", step, max_output_lines));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components_cannot_escape_the_run_directory() {
        assert_eq!(path_component("../etc"), ".._etc");
        assert_eq!(path_component(".."), "_..");
        assert_eq!(path_component(""), "_");
        assert_eq!(path_component("6.1"), "6.1");
        assert_eq!(path_component("a/b\\c"), "a_b_c");
    }
}

//! The table printed at the end of a run: kernel × scenario → PASS/FAIL and why.

use crate::model::{one_line, RunSummary};
use std::fmt::Write as _;

/// How much of a failure reason fits on a terminal line; the files have the rest.
const REASON_CHARS: usize = 110;

/// A plain-text table (no colours: it also lands in CI logs) followed by a count line.
pub fn render_terminal_summary(summary: &RunSummary) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for (kernel, info, cases) in summary.by_kernel() {
        let kernel_label = match info {
            Some(k) if !k.release.is_empty() => format!("{kernel} ({})", k.release),
            _ => kernel.to_string(),
        };
        for case in cases {
            let (result, reason) = match (&case.skipped, case.failure_message()) {
                (Some(why), _) => ("SKIP", shorten(&one_line(why), REASON_CHARS)),
                (None, None) => ("PASS", String::new()),
                (None, Some(msg)) => ("FAIL", shorten(&one_line(&msg), REASON_CHARS)),
            };
            rows.push([
                kernel_label.clone(),
                case.scenario.clone(),
                result.to_string(),
                reason,
            ]);
        }
    }
    let header = ["KERNEL", "SCENARIO", "RESULT", "REASON"].map(String::from);
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let failed = summary.failed_count();
    let total = summary.cases.len();
    // Deliberately not the bare "N passed, N failed" form: CI readers take that line for a
    // test runner's verdict on the project's own tests.
    let skipped = summary.skipped_count();
    let skipped_part = match skipped {
        0 => String::new(),
        n => format!(", {n} skipped"),
    };
    let _ = writeln!(
        out,
        "{total} cases: {} passed, {failed} failed{skipped_part} (run {}, accel {}, {}.{:01} s)",
        total - failed - skipped,
        summary.run_id,
        summary.accel,
        summary.duration_ms / 1000,
        (summary.duration_ms % 1000) / 100
    );
    out
}

/// The same table in Markdown, for a CI run's page (GitHub's `$GITHUB_STEP_SUMMARY`): a
/// heading with the counts, then one row per case.
pub fn render_markdown_summary(summary: &RunSummary) -> String {
    let mut out = String::new();
    let failed = summary.failed_count();
    let skipped = summary.skipped_count();
    let total = summary.cases.len();
    let _ = writeln!(
        out,
        "### bdsnap run {}: {} passed, {failed} failed, {skipped} skipped of {total} (accel {})\n",
        cell(&summary.run_id),
        total - failed - skipped,
        cell(&summary.accel)
    );
    let _ = writeln!(out, "| kernel | scenario | result | reason |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (kernel, info, cases) in summary.by_kernel() {
        let label = match info {
            Some(k) if !k.release.is_empty() => format!("{kernel} ({})", k.release),
            _ => kernel.to_string(),
        };
        for case in cases {
            let (result, reason) = match (&case.skipped, case.failure_message()) {
                (Some(why), _) => ("SKIP", why.clone()),
                (None, None) => ("PASS", String::new()),
                (None, Some(msg)) => ("**FAIL**", msg),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {result} | {} |",
                cell(&label),
                cell(&case.scenario),
                cell(&shorten(&one_line(&reason), REASON_CHARS * 2))
            );
        }
    }
    out
}

/// Text safe inside a Markdown table cell: no pipes or line breaks, HTML special characters
/// escaped.
fn cell(text: &str) -> String {
    one_line(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

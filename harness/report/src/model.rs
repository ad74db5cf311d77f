//! What a run produced, in the shape every writer reads: kernels, and one case per
//! (kernel, scenario) pair with its steps, its console findings and any harness error.

use crate::scan::Finding;
use bdsnap_scenario::{ScenarioOutcome, StepRecord, Verdict};
use serde::{Deserialize, Serialize};

/// Exactly which kernel a case ran on, so a result can be reproduced later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// The matrix name, e.g. `6.1`.
    pub name: String,
    /// Debian suite the kernel came from, e.g. `bookworm`.
    pub suite: String,
    /// `uname -r`, e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// The Debian package version, e.g. `6.1.192-2`.
    pub package_version: String,
    /// The compiler the kernel was built with (the module must be built with the same one).
    pub compiler: String,
    /// Every Debian package the kernel's files came from, as `name=version`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// For a kernel built from source: the source package and version
    /// (`linux-source-6.12=6.12.117-1`); for a developer's tree: `tree <path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// For a kernel built from source: the config fragments merged over its defconfig.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_fragments: Vec<String>,
    /// Boot options beyond the harness's own: the matrix entry's `cmdline`, then `--cmdline`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extra_cmdline: String,
}

/// One scenario on one kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    /// [`KernelInfo::name`] of the kernel it ran on.
    pub kernel: String,
    pub scenario: String,
    pub scenario_file: String,
    /// `None` when the scenario never ran (boot failed, image missing...).
    pub outcome: Option<ScenarioOutcome>,
    /// Kernel complaints on the console while the scenario ran.
    pub findings: Vec<Finding>,
    /// A failure of the harness rather than of the module, e.g. `boot failed: ...`.
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Set for the harness's self-test scenarios: the failure the scenario must cause. Such a
    /// case passes only when exactly that failure was detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_failure: Option<ExpectedFailure>,
    /// Why the case did not run because the scenario's `requires` were not met: it is
    /// neither passed nor failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The failure a self-test scenario declares (see `expect_failure` in scenarios/README.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedFailure {
    /// The 1-based step that must fail; `None`: every step must pass.
    pub step: Option<usize>,
    /// A console marker label (`WARNING`, `Oops`, ...) that must be found; `None`: the console
    /// must stay clean.
    pub console: Option<String>,
}

impl CaseResult {
    /// A case passes only when it ran, every step passed and the kernel stayed quiet: an
    /// oops in a worker thread fails the case even if every command returned 0.
    pub fn passed(&self) -> bool {
        if self.skipped.is_some() {
            return false;
        }
        match &self.expected_failure {
            None => {
                self.error.is_none()
                    && self.findings.is_empty()
                    && self.outcome.as_ref().is_some_and(ScenarioOutcome::passed)
            }
            Some(expected) => {
                self.error.is_none() && self.expected_failure_mismatch(expected).is_none()
            }
        }
    }

    /// Skipped for unmet requirements: neither passed nor failed.
    pub fn is_skipped(&self) -> bool {
        self.skipped.is_some()
    }

    /// It ran (or should have) and did not pass.
    pub fn failed(&self) -> bool {
        !self.passed() && !self.is_skipped()
    }

    /// How the observed failure differs from the declared one, or `None` when it matches.
    fn expected_failure_mismatch(&self, expected: &ExpectedFailure) -> Option<String> {
        let Some(outcome) = &self.outcome else {
            return Some("the scenario did not run".into());
        };
        if let Some(step) = outcome.first_cleanup_failure() {
            return Some(format!(
                "its cleanup failed: {}",
                step_failure("cleanup", step)
            ));
        }
        let failed_step = outcome.first_failure().map(|s| s.index);
        if failed_step != expected.step {
            return Some(format!(
                "expected {}, got {}",
                expected
                    .step
                    .map_or("every step to pass".into(), |s| format!("step {s} to fail")),
                failed_step.map_or("every step passing".into(), |s| format!("step {s} failing"))
            ));
        }
        let labels: Vec<&str> = self.findings.iter().map(|f| f.marker.label()).collect();
        match &expected.console {
            Some(marker) if !labels.contains(&marker.as_str()) => Some(format!(
                "expected a console {marker:?} finding, got [{}]",
                labels.join(", ")
            )),
            None if !labels.is_empty() => Some(format!(
                "expected a clean console, got [{}]",
                labels.join(", ")
            )),
            _ => None,
        }
    }

    /// Why the case failed, in one line for tables and JUnit `message` attributes, or
    /// `None` when it passed. Console findings come first: when the kernel oopsed, the
    /// failing command is usually a consequence.
    pub fn failure_message(&self) -> Option<String> {
        if !self.failed() {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(expected) = &self.expected_failure {
            if let Some(mismatch) = self.expected_failure_mismatch(expected) {
                parts.push(format!("self-test: {mismatch}"));
            }
        }
        if let Some(error) = &self.error {
            parts.push(format!("harness error: {}", one_line(error)));
        }
        if let Some(first) = self.findings.first() {
            let more = match self.findings.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            parts.push(format!(
                "console line {} ({}): {}{more}",
                first.line,
                first.marker,
                one_line(&first.text)
            ));
        }
        match &self.outcome {
            Some(outcome) => {
                if let Some(step) = outcome.first_failure() {
                    parts.push(step_failure("step", step));
                }
                // Reported apart: the steps' verdict stays what it was.
                if self.expected_failure.is_none() {
                    if let Some(step) = outcome.first_cleanup_failure() {
                        parts.push(step_failure("cleanup", step));
                    }
                }
            }
            None if self.error.is_none() => parts.push("scenario did not run".to_string()),
            None => {}
        }
        Some(parts.join("; "))
    }

    /// The first failing step, if the scenario ran and one failed.
    pub fn failing_step(&self) -> Option<&StepRecord> {
        self.outcome.as_ref()?.first_failure()
    }
}

/// `label` is `step` or `cleanup` (which list the step is in).
fn step_failure(label: &str, step: &StepRecord) -> String {
    let reason = match &step.verdict {
        Verdict::Fail(reason) => one_line(reason),
        Verdict::Pass | Verdict::Skipped => String::new(),
    };
    let place = if step.line > 0 {
        format!("{label} {} (line {})", step.index, step.line)
    } else {
        format!("{label} {}", step.index)
    };
    format!("{place} `{}` failed: {reason}", one_line(&step.action))
}

/// Joins a possibly multi-line text into one line for places that hold one, keeping the
/// spacing inside each line (console lines are aligned with it).
pub(crate) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A whole run of the matrix: the file `summary.json` holds exactly this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub started_unix: u64,
    /// `kvm` or `tcg`: timings mean different things under each.
    pub accel: String,
    pub host: String,
    /// Kernel options every VM of the run booted with on top of the harness's own command line
    /// (the memory checks, for instance); each VM's whole QEMU command line is in its
    /// `qemu.cmdline`.
    #[serde(default)]
    pub boot_options: Vec<String>,
    pub kernels: Vec<KernelInfo>,
    pub cases: Vec<CaseResult>,
    pub duration_ms: u64,
}

impl RunSummary {
    /// No case failed (skipped ones did not fail).
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(CaseResult::failed)
    }

    pub fn failed_count(&self) -> usize {
        self.cases.iter().filter(|c| c.failed()).count()
    }

    pub fn skipped_count(&self) -> usize {
        self.cases.iter().filter(|c| c.is_skipped()).count()
    }

    /// The kernels in report order: those declared in [`RunSummary::kernels`] first, then
    /// any kernel a case names that was not declared (so no case is ever dropped), each with
    /// its cases in run order.
    pub fn by_kernel(&self) -> Vec<(&str, Option<&KernelInfo>, Vec<&CaseResult>)> {
        let mut names: Vec<&str> = self.kernels.iter().map(|k| k.name.as_str()).collect();
        for case in &self.cases {
            if !names.contains(&case.kernel.as_str()) {
                names.push(&case.kernel);
            }
        }
        names
            .into_iter()
            .map(|name| {
                let info = self.kernels.iter().find(|k| k.name == name);
                let cases = self.cases.iter().filter(|c| c.kernel == name).collect();
                (name, info, cases)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Marker;

    fn step(index: usize, verdict: Verdict) -> StepRecord {
        StepRecord {
            index,
            line: 10 + index,
            kind: "run".into(),
            action: format!("cmd{index}"),
            stdout: String::new(),
            stderr: String::new(),
            exit: Some(0),
            duration_ms: 1,
            verdict,
            fio: Vec::new(),
        }
    }

    fn case(steps: Vec<StepRecord>) -> CaseResult {
        CaseResult {
            skipped: None,
            expected_failure: None,
            kernel: "6.1".into(),
            scenario: "basic".into(),
            scenario_file: "scenarios/basic.yaml".into(),
            outcome: Some(ScenarioOutcome {
                scenario: "basic".into(),
                steps,
                cleanup: Vec::new(),
            }),
            findings: vec![],
            error: None,
            duration_ms: 5,
        }
    }

    #[test]
    fn a_failed_cleanup_fails_the_case_and_is_named_apart() {
        let mut c = case(vec![step(
            1,
            Verdict::Fail("exit status 1, expected 0".into()),
        )]);
        if let Some(o) = c.outcome.as_mut() {
            o.cleanup = vec![step(1, Verdict::Fail("exit status 32, expected 0".into()))];
        }
        let msg = c.failure_message().unwrap_or_default();
        assert!(msg.contains("; cleanup 1 "), "{msg}");
        assert!(msg.starts_with("step 1 "), "{msg}");

        // A self-test whose step failed as declared still fails when its cleanup did.
        c.expected_failure = Some(ExpectedFailure {
            step: Some(1),
            console: None,
        });
        assert!(!c.passed());
        let msg = c.failure_message().unwrap_or_default();
        assert!(
            msg.starts_with("self-test: its cleanup failed: cleanup 1 "),
            "{msg}"
        );
        if let Some(o) = c.outcome.as_mut() {
            o.cleanup[0].verdict = Verdict::Pass;
        }
        assert!(c.passed());
    }

    #[test]
    fn passing_steps_and_quiet_console_pass() {
        let c = case(vec![step(1, Verdict::Pass), step(2, Verdict::Pass)]);
        assert!(c.passed());
        assert_eq!(c.failure_message(), None);
    }

    #[test]
    fn a_finding_fails_a_case_whose_steps_passed() {
        let mut c = case(vec![step(1, Verdict::Pass)]);
        c.findings.push(Finding {
            line: 812,
            marker: Marker::Oops,
            text: "[ 9.1] Oops: 0000 [#1] SMP".into(),
        });
        assert!(!c.passed());
        let msg = c.failure_message().unwrap();
        assert!(
            msg.starts_with("console line 812 (Oops): [ 9.1] Oops"),
            "{msg}"
        );
    }

    #[test]
    fn a_failing_step_fails_and_is_named() {
        let c = case(vec![
            step(1, Verdict::Pass),
            step(2, Verdict::Fail("exit 1, expected 0".into())),
            step(3, Verdict::Skipped),
        ]);
        assert!(!c.passed());
        assert_eq!(
            c.failure_message().unwrap(),
            "step 2 (line 12) `cmd2` failed: exit 1, expected 0"
        );
        assert_eq!(c.failing_step().unwrap().index, 2);
    }

    #[test]
    fn a_self_test_passes_only_on_its_declared_failure() {
        let warning = Finding {
            line: 40,
            marker: Marker::Warning,
            text: "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1".into(),
        };
        // Declared: step 2 fails.
        let mut c = case(vec![
            step(1, Verdict::Pass),
            step(2, Verdict::Fail("exit 3, expected 0".into())),
            step(3, Verdict::Skipped),
        ]);
        c.expected_failure = Some(ExpectedFailure {
            step: Some(2),
            console: None,
        });
        assert!(c.passed(), "{:?}", c.failure_message());
        // The same declaration, but a different step failed.
        c.expected_failure = Some(ExpectedFailure {
            step: Some(1),
            console: None,
        });
        assert!(!c.passed());
        assert!(c
            .failure_message()
            .unwrap()
            .contains("expected step 1 to fail, got step 2 failing"));
        // Declared: a console WARNING, steps all pass.
        let mut c = case(vec![step(1, Verdict::Pass)]);
        c.expected_failure = Some(ExpectedFailure {
            step: None,
            console: Some("WARNING".into()),
        });
        assert!(!c.passed(), "no warning was seen");
        c.findings.push(warning.clone());
        assert!(c.passed(), "{:?}", c.failure_message());
        // A harness error never counts as the expected failure.
        c.error = Some("boot failed".into());
        assert!(!c.passed());
        // An unexpected console finding fails a step-failure self-test.
        let mut c = case(vec![step(1, Verdict::Fail("x".into()))]);
        c.expected_failure = Some(ExpectedFailure {
            step: Some(1),
            console: None,
        });
        c.findings.push(warning);
        assert!(!c.passed());
    }

    #[test]
    fn skipped_steps_alone_do_not_fail() {
        let c = case(vec![step(1, Verdict::Pass), step(2, Verdict::Skipped)]);
        assert!(c.passed());
    }

    #[test]
    fn a_harness_error_or_a_missing_outcome_fails() {
        let mut c = case(vec![step(1, Verdict::Pass)]);
        c.error = Some("boot failed:\ntimeout".into());
        assert!(!c.passed());
        assert_eq!(
            c.failure_message().unwrap(),
            "harness error: boot failed: timeout"
        );
        let mut c = case(vec![]);
        c.outcome = None;
        assert!(!c.passed());
        assert_eq!(c.failure_message().unwrap(), "scenario did not run");
    }

    #[test]
    fn findings_come_before_the_step_they_caused() {
        let mut c = case(vec![step(1, Verdict::Fail("exit 137".into()))]);
        for line in [5, 9] {
            c.findings.push(Finding {
                line,
                marker: Marker::Bug,
                text: "BUG: kernel NULL pointer dereference".into(),
            });
        }
        let msg = c.failure_message().unwrap();
        assert_eq!(
            msg,
            "console line 5 (BUG): BUG: kernel NULL pointer dereference (and 1 more); \
             step 1 (line 11) `cmd1` failed: exit 137"
        );
    }

    #[test]
    fn undeclared_kernels_still_get_their_cases_reported() {
        let mut other = case(vec![]);
        other.kernel = "7.2".into();
        let summary = RunSummary {
            run_id: "r".into(),
            started_unix: 0,
            accel: "tcg".into(),
            host: "h".into(),
            boot_options: vec![],
            kernels: vec![],
            cases: vec![case(vec![]), other],
            duration_ms: 0,
        };
        let groups = summary.by_kernel();
        let names: Vec<_> = groups.iter().map(|g| g.0).collect();
        assert_eq!(names, vec!["6.1", "7.2"]);
    }
}

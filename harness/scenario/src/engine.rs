//! Runs a scenario's steps on a guest and records what each one did.
//!
//! The engine knows nothing about QEMU or SSH: the VM side implements [`Guest`], and tests use
//! a fake. Steps run in order; the first failure skips the rest, because later steps assume
//! the state earlier ones built (a module loaded, a disk gone).

use std::time::{Duration, Instant};

use crate::model::{Action, FioStep, RunStep, Scenario, Step};
use crate::outcome::{ScenarioOutcome, StepRecord, Verdict};

/// How long a `run` step may take when it says nothing, before scaling.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a guest command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    pub exit: i32,
    pub duration: Duration,
}

/// A failure to talk to the guest, as opposed to a command that ran and failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// The command or action did not finish within its (already scaled) timeout. `partial`
    /// is what a command printed until then, and how its processes were ended.
    #[error("timed out after {}{}", crate::units::format_duration(*.after), .partial.ended.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Timeout { after: Duration, partial: Partial },
    /// SSH, QMP or anything else between the harness and the guest broke.
    #[error("{0}")]
    Transport(String),
}

/// What a timed-out command left: its output up to the timeout, and how its processes were
/// ended (`None`: nothing to end, e.g. an unplug).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial {
    pub stdout: String,
    pub stderr: String,
    pub ended: Option<String>,
}

impl GuestError {
    /// A timeout with nothing printed and nothing to end.
    pub fn timeout(after: Duration) -> Self {
        Self::Timeout {
            after,
            partial: Partial::default(),
        }
    }
}

/// The guest as the engine sees it; implemented by the VM crate.
pub trait Guest {
    /// Runs `command` under `bash -c` in the guest with extra environment; Err for transport
    /// failures (not non-zero exits).
    fn exec(
        &mut self,
        command: &str,
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<ExecResult, GuestError>;

    /// Hot-removes the disk called `name` (QMP device_del + wait for DEVICE_DELETED).
    fn unplug(&mut self, name: &str) -> Result<(), GuestError>;
}

/// Runs every step of `scenario` on `guest`.
///
/// `disk_env` maps each declared disk's name to its device node in the guest (`("data",
/// "/dev/vdb")`); commands see it as `DISK_data=/dev/vdb`. Every timeout (per step and the
/// scenario's budget) is multiplied by `step_timeout_scale`, since TCG runs much slower than
/// KVM. Never panics: every problem becomes a failed step.
pub fn run(
    scenario: &Scenario,
    guest: &mut dyn Guest,
    disk_env: &[(String, String)],
    step_timeout_scale: f64,
) -> ScenarioOutcome {
    let scale = if step_timeout_scale.is_finite() && step_timeout_scale > 0.0 {
        step_timeout_scale
    } else {
        1.0
    };
    let mut env: Vec<(String, String)> = disk_env
        .iter()
        .map(|(name, node)| (format!("DISK_{name}"), node.clone()))
        .collect();
    let missing: Vec<&str> = scenario
        .disks
        .iter()
        .filter(|d| !disk_env.iter().any(|(name, _)| name == &d.name))
        .map(|d| d.name.as_str())
        .collect();
    let budget = scenario.timeout.map(|t| t.mul_f64(scale));
    let started = Instant::now();

    let mut records = Vec::with_capacity(scenario.steps.len());
    let mut failed = false;
    for (i, step) in scenario.steps.iter().enumerate() {
        let mut record = blank_record(i, step);
        if failed {
            records.push(record);
            continue;
        }
        let remaining = budget.map(|b| b.saturating_sub(started.elapsed()));
        record.verdict = if !missing.is_empty() {
            Verdict::Fail(format!(
                "the harness gave no device node for disk(s): {}",
                missing.join(", ")
            ))
        } else if remaining.is_some_and(|r| r.is_zero()) {
            Verdict::Fail(format!(
                "scenario timeout ({}) used up before this step",
                crate::units::format_duration(budget.unwrap_or_default())
            ))
        } else {
            run_action(step, guest, &env, scale, remaining, &mut record)
        };
        failed = matches!(record.verdict, Verdict::Fail(_));
        if !failed {
            capture(step, &record, &mut env);
        }
        records.push(record);
    }
    // Cleanup runs whatever happened above, each step even after another failed, with its own
    // timeout only: the scenario's budget may be what ran out.
    let cleanup = scenario
        .cleanup
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut record = blank_record(i, step);
            record.verdict = if missing.is_empty() {
                run_action(step, guest, &env, scale, None, &mut record)
            } else {
                Verdict::Skipped
            };
            if record.verdict == Verdict::Pass {
                capture(step, &record, &mut env);
            }
            record
        })
        .collect();
    ScenarioOutcome {
        scenario: scenario.name.clone(),
        steps: records,
        cleanup,
    }
}

/// A passing step with `capture: NAME` gives its trimmed stdout to the steps after it as
/// `$NAME` (a later capture of the same name replaces it).
fn capture(step: &Step, record: &StepRecord, env: &mut Vec<(String, String)>) {
    if let Action::Run(RunStep {
        capture: Some(name),
        ..
    }) = &step.action
    {
        let value = record.stdout.trim().to_string();
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => env.push((name.clone(), value)),
        }
    }
}

fn run_action(
    step: &Step,
    guest: &mut dyn Guest,
    env: &[(String, String)],
    scale: f64,
    remaining: Option<Duration>,
    record: &mut StepRecord,
) -> Verdict {
    match &step.action {
        Action::Run(run) => run_step(run, guest, env, scale, remaining, record),
        Action::Fio(fio) => fio_step(fio, guest, env, scale, remaining, record),
        Action::Unplug(unplug) => {
            let begun = Instant::now();
            let result = guest.unplug(&unplug.disk);
            record.duration_ms = millis(begun.elapsed());
            match result {
                Ok(()) => Verdict::Pass,
                Err(err) => Verdict::Fail(format!("unplug failed: {err}")),
            }
        }
    }
}

fn blank_record(index: usize, step: &Step) -> StepRecord {
    StepRecord {
        index: index + 1,
        line: step.location.line,
        kind: step.action.kind().to_string(),
        action: step.action.describe(),
        stdout: String::new(),
        stderr: String::new(),
        exit: None,
        duration_ms: 0,
        verdict: Verdict::Skipped,
        fio: Vec::new(),
    }
}

fn run_step(
    run: &RunStep,
    guest: &mut dyn Guest,
    env: &[(String, String)],
    scale: f64,
    remaining_budget: Option<Duration>,
    record: &mut StepRecord,
) -> Verdict {
    let mut timeout = run.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT).mul_f64(scale);
    if let Some(remaining) = remaining_budget {
        timeout = timeout.min(remaining);
    }
    let result = match guest.exec(&run.command, env, timeout) {
        Ok(result) => result,
        Err(err) => return guest_failure(err, record),
    };
    record.duration_ms = millis(result.duration);
    record.exit = Some(result.exit);
    let mismatches = check_expectations(run, &result);
    record.stdout = result.stdout;
    record.stderr = result.stderr;
    if mismatches.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(mismatches.join("; "))
    }
}

/// A command that did not complete: a timed-out one keeps what it printed (and the record
/// says how long it ran), so the evidence shows how far it got.
fn guest_failure(err: GuestError, record: &mut StepRecord) -> Verdict {
    if let GuestError::Timeout { after, partial } = &err {
        record.duration_ms = millis(*after);
        record.stdout.clone_from(&partial.stdout);
        record.stderr.clone_from(&partial.stderr);
    }
    Verdict::Fail(format!("guest: {err}"))
}

/// Runs a fio job; passes when fio exits 0 with a report whose jobs have no error. The JSON
/// report stays in the record's stdout (the evidence) and its figures go to `record.fio`.
fn fio_step(
    fio: &FioStep,
    guest: &mut dyn Guest,
    env: &[(String, String)],
    scale: f64,
    remaining_budget: Option<Duration>,
    record: &mut StepRecord,
) -> Verdict {
    let mut timeout = fio.timeout().mul_f64(scale);
    if let Some(remaining) = remaining_budget {
        timeout = timeout.min(remaining);
    }
    let result = match guest.exec(&fio.job.command(), env, timeout) {
        Ok(result) => result,
        Err(err) => return guest_failure(err, record),
    };
    record.duration_ms = millis(result.duration);
    record.exit = Some(result.exit);
    record.stdout = result.stdout;
    record.stderr = result.stderr;
    if result.exit != 0 {
        let why = record.stderr.lines().last().unwrap_or("").to_string();
        return Verdict::Fail(format!("fio exited with status {}: {why}", result.exit));
    }
    let origin = format!("step {} (fio {})", record.index, fio.job.name);
    match bdsnap_fio::FioOutput::parse(&record.stdout, &origin) {
        Err(err) => Verdict::Fail(err.to_string()),
        Ok(report) => {
            record.fio = report.summaries();
            let failed = report.failed_jobs();
            if failed.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail(format!(
                    "fio reported errors: {}",
                    failed
                        .iter()
                        .map(|(job, code)| format!("job {job}: error {code}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
    }
}

/// Every way the result differs from the step's `expect`, so one failure shows all of them.
fn check_expectations(run: &RunStep, result: &ExecResult) -> Vec<String> {
    let expect = &run.expect;
    let mut mismatches = Vec::new();
    if !expect.exit.accepts(result.exit) {
        mismatches.push(format!(
            "exit status {}, expected {}",
            result.exit,
            match expect.exit {
                crate::model::ExitExpect::Code(code) => code.to_string(),
                crate::model::ExitExpect::Any => "any".to_string(),
            }
        ));
    }
    if let Some(wanted) = &expect.stdout {
        let got = result.stdout.trim_end();
        if got != wanted.trim_end() {
            mismatches.push(format!(
                "stdout was {got:?}, expected {:?}",
                wanted.trim_end()
            ));
        }
    }
    if let Some(wanted) = &expect.stdout_contains {
        if !result.stdout.contains(wanted.as_str()) {
            mismatches.push(format!("stdout does not contain {wanted:?}"));
        }
    }
    if let Some(wanted) = &expect.stderr_contains {
        if !result.stderr.contains(wanted.as_str()) {
            mismatches.push(format!("stderr does not contain {wanted:?}"));
        }
    }
    mismatches
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

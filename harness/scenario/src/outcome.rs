//! What running a scenario produced: one record per step, shared with the report writers.

use serde::{Deserialize, Serialize};

/// The verdict on one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail(String),
    /// Not run because an earlier step failed.
    Skipped,
}

/// Everything a person needs to see about one executed step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based position in the scenario's `steps` list.
    pub index: usize,
    /// Line of the step in the scenario file (1-based), 0 when unknown.
    pub line: usize,
    /// `run`, `unplug`, ... : the step's kind as written in YAML.
    pub kind: String,
    /// The command or action, as shown to people (`rmmod bdsnap`, `unplug data`).
    pub action: String,
    pub stdout: String,
    pub stderr: String,
    /// Exit status for commands; `None` for actions that are not guest commands.
    pub exit: Option<i32>,
    pub duration_ms: u64,
    pub verdict: Verdict,
    /// For fio steps: the report's figures per job (fio's whole JSON is `stdout`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fio: Vec<bdsnap_fio::JobSummary>,
}

/// The result of one scenario on one kernel, before the console was judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioOutcome {
    pub scenario: String,
    pub steps: Vec<StepRecord>,
    /// The scenario's `cleanup` steps, run after `steps` whatever happened to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleanup: Vec<StepRecord>,
}

impl ScenarioOutcome {
    /// The first failing step, if any.
    pub fn first_failure(&self) -> Option<&StepRecord> {
        self.steps
            .iter()
            .find(|s| matches!(s.verdict, Verdict::Fail(_)))
    }

    /// The first failing cleanup step, if any.
    pub fn first_cleanup_failure(&self) -> Option<&StepRecord> {
        self.cleanup
            .iter()
            .find(|s| matches!(s.verdict, Verdict::Fail(_)))
    }

    /// Every step and every cleanup step passed.
    pub fn passed(&self) -> bool {
        self.first_failure().is_none() && self.first_cleanup_failure().is_none()
    }
}

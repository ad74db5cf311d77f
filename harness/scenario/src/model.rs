//! A validated scenario: what the harness and the engine work with once loading succeeded.
//!
//! Nothing here can be invalid any more (every disk a step names is declared, every kernel is
//! known), so the VM side never has to re-check a scenario.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::located::Location;

/// How a disk is attached to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    #[default]
    Virtio,
    Scsi,
    Nvme,
}

impl Bus {
    pub fn as_str(self) -> &'static str {
        match self {
            Bus::Virtio => "virtio",
            Bus::Scsi => "scsi",
            Bus::Nvme => "nvme",
        }
    }
}

/// A scratch disk the harness creates and attaches before the scenario starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `[a-z][a-z0-9_]{0,15}`; the guest sees its device node as `$DISK_<name>`.
    pub name: String,
    pub size_bytes: u64,
    pub bus: Bus,
    pub location: Location,
}

/// Which kernels of the matrix a scenario runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kernels {
    All,
    /// Matrix names such as `6.1`, checked against the matrix at load time.
    Only(Vec<String>),
}

/// What a `run` step's command must produce to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub exit: ExitExpect,
    /// Whole stdout, compared after trimming trailing whitespace on both sides.
    pub stdout: Option<String>,
    pub stdout_contains: Option<String>,
    pub stderr_contains: Option<String>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            exit: ExitExpect::Code(0),
            stdout: None,
            stdout_contains: None,
            stderr_contains: None,
        }
    }
}

/// The exit status a `run` step expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitExpect {
    Code(i32),
    /// Any status passes: the step is there for its output or its side effect.
    Any,
}

impl ExitExpect {
    pub fn accepts(self, exit: i32) -> bool {
        match self {
            ExitExpect::Code(code) => code == exit,
            ExitExpect::Any => true,
        }
    }
}

/// A shell command run in the guest with `bash -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    pub command: String,
    pub expect: Expect,
    /// Unscaled; `None` means the engine's default.
    pub timeout: Option<Duration>,
    /// When the step passes, its stdout (trimmed) is given to every later step (and to the
    /// cleanup) as this environment variable.
    pub capture: Option<String>,
}

/// Hot-removal of a declared disk through QMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnplugStep {
    pub disk: String,
}

/// A fio job run in the guest; its JSON report is kept with the step and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FioStep {
    pub job: bdsnap_fio::FioJob,
    /// Unscaled; `None` means the engine's default for the job (see [`FioStep::timeout`]).
    pub timeout: Option<Duration>,
}

impl FioStep {
    /// How long the step may take before scaling: what the scenario says, or for a job with a
    /// runtime twice that plus a minute, and never less than the engine's default.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or_else(|| {
            let expected = self
                .job
                .expected_duration()
                .map(|d| d * 2 + Duration::from_secs(60))
                .unwrap_or_default();
            expected.max(crate::engine::DEFAULT_STEP_TIMEOUT)
        })
    }
}

/// What a step does. Each variant is one action key in YAML; new kinds of step (tracker,
/// snapshot, checksum) are new variants plus a field in the raw step in `load.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run(RunStep),
    Unplug(UnplugStep),
    Fio(FioStep),
}

impl Action {
    /// The YAML key that selects this action; also the `kind` in step records.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Run(_) => "run",
            Action::Unplug(_) => "unplug",
            Action::Fio(_) => "fio",
        }
    }

    /// How the step is shown to people in reports.
    pub fn describe(&self) -> String {
        match self {
            Action::Run(run) => run.command.clone(),
            Action::Unplug(unplug) => format!("unplug {}", unplug.disk),
            Action::Fio(fio) => fio.job.command(),
        }
    }
}

/// One step and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub location: Location,
}

/// The failure a self-test scenario declares it will cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectFailure {
    /// The 1-based step that must fail.
    pub step: Option<usize>,
    /// A console marker (e.g. `WARNING`) the scanner must report.
    pub console: Option<String>,
}

/// A loaded, validated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub kernels: Kernels,
    /// Budget for the whole scenario, unscaled.
    pub timeout: Option<Duration>,
    /// What the kernel and guest must have; unmet, the case is skipped.
    pub requires: crate::requires::Requires,
    pub disks: Vec<Disk>,
    pub steps: Vec<Step>,
    /// Steps that run after `steps` whatever happened to them (a failure, a timeout, the
    /// scenario's budget used up), each one even if an earlier one failed.
    pub cleanup: Vec<Step>,
    /// For self-tests of the harness: the failure this scenario must produce. Such a case
    /// passes only when exactly this failure is detected.
    pub expect_failure: Option<ExpectFailure>,
    /// The file it was loaded from (as given to the loader).
    pub source: PathBuf,
    /// Where `name` is written, for errors about the scenario as a whole.
    pub name_location: Location,
}

impl Scenario {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn disks(&self) -> &[Disk] {
        &self.disks
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Whether this scenario runs on the matrix kernel called `kernel_name` (e.g. `6.1`).
    pub fn applies_to(&self, kernel_name: &str) -> bool {
        match &self.kernels {
            Kernels::All => true,
            Kernels::Only(names) => names.iter().any(|n| n == kernel_name),
        }
    }
}

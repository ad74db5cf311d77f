//! Load errors: each one names the file, line, column and field, the way compilers do, so a
//! person can jump straight to the mistake.

use std::fmt;
use std::path::PathBuf;

use crate::located::Location;

/// What kind of mistake a [`Diagnostic`] reports, for callers that react to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Rejected while parsing: YAML syntax, unknown field, wrong type, bad size or duration,
    /// unknown bus, missing field.
    Parse,
    /// Scenario name missing or unusable as a directory name.
    Name,
    DiskName,
    DuplicateDisk,
    /// A step names a disk that `disks` does not declare.
    UndeclaredDisk,
    /// The same disk is unplugged twice.
    DiskAlreadyUnplugged,
    UnknownKernel,
    EmptySteps,
    /// A step has no action key, several, or an option its action does not take.
    StepShape,
    ExitStatus,
    /// A fio step's job is impossible: unknown mode, bad block size, queue depth, ...
    FioJob,
    /// Two files in one directory declare the same scenario name.
    DuplicateScenario,
    /// A `requires` entry is not a version range, option, program or module name.
    Requires,
}

/// One mistake in one scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub location: Location,
    /// Path of the offending field, e.g. `steps[2].unplug`.
    pub field: String,
    pub message: String,
    pub kind: ErrorKind,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.location,
            self.field,
            self.message
        )
    }
}

/// Why a scenario (or a directory of them) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostic),
}

impl ScenarioError {
    /// The diagnostic, when the error is about the file's content.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ScenarioError::Invalid(d) => Some(d),
            ScenarioError::Read { .. } => None,
        }
    }
}

/// Every error found, one per line when displayed: loading never stops at the first mistake
/// of a file that parsed, nor at the first bad file of a directory.
#[derive(Debug, thiserror::Error)]
pub struct LoadErrors(pub Vec<ScenarioError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl LoadErrors {
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter_map(ScenarioError::diagnostic)
    }
}

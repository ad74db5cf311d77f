//! bdsnap-scenario: YAML scenarios, their validation, and the engine that runs them on a guest.
//!
//! Flow: [`load_dir`] (or [`load`]) reads and checks files before any VM starts, returning
//! every mistake with file, line, column and field; the harness picks scenarios with
//! [`Scenario::applies_to`], attaches [`Scenario::disks`], and calls [`run`] with a [`Guest`].
//! The format is documented for people in `scenarios/README.md`.

pub mod engine;
pub mod error;
pub mod load;
pub mod located;
pub mod model;
pub mod outcome;
pub mod requires;
pub mod units;

pub use bdsnap_fio;
pub use engine::{run, ExecResult, Guest, GuestError, Partial, DEFAULT_STEP_TIMEOUT};
pub use error::{Diagnostic, ErrorKind, LoadErrors, ScenarioError};
pub use load::{disk_from_arg, load, load_dir, load_str, scenario_files};
pub use located::Location;
pub use model::{
    Action, Bus, Disk, ExitExpect, Expect, ExpectFailure, FioStep, Kernels, RunStep, Scenario,
    Step, UnplugStep,
};
pub use outcome::{ScenarioOutcome, StepRecord, Verdict};
pub use requires::Requires;

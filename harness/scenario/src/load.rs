//! Reading scenario files: serde_norway parses the text into raw structs (catching syntax,
//! unknown fields and wrong types with their position), then a validation pass checks what
//! types cannot express and locates each finding through [`LocatedDocument`].
//!
//! Adding a kind of step: a field in [`RawStep`], its name in [`ACTION_KEYS`], a variant in
//! [`Action`], and one arm in [`step_from_raw`] and [`RawStep::from_step`].

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Diagnostic, ErrorKind, LoadErrors, ScenarioError};
use crate::located::{FieldPath, LocatedDocument, Location};
use crate::model::{
    Action, Bus, Disk, ExitExpect, Expect, ExpectFailure, FioStep, Kernels, RunStep, Scenario,
    Step, UnplugStep,
};
use crate::requires::{Requires, VersionRange};
use crate::units::{ByteSize, FioSize, HumanDuration};
use bdsnap_fio::{FioJob, RwMode, RW_MODES};

/// The keys that choose what a step does; exactly one per step.
pub const ACTION_KEYS: &[&str] = &["run", "unplug", "fio"];

const MAX_DISK_NAME: usize = 16;

#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a scenario: a mapping with name, steps and optional description, kernels, timeout, requires, disks, cleanup"
)]
struct RawScenario {
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(default)]
    kernels: RawKernels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requires: Option<RawRequires>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    disks: Vec<RawDisk>,
    steps: Vec<RawStep>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cleanup: Vec<RawStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expect_failure: Option<RawExpectFailure>,
}

/// What a scenario needs (see `requires.rs`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "requirements: a mapping with optional kernel (a version range), config, programs and modules (lists)"
)]
struct RawRequires {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    config: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    programs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    modules: Vec<String>,
}

/// A self-test scenario's declared failure: the harness must detect exactly this.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "expected failure: a mapping with step (1-based) and/or console (a marker such as WARNING)"
)]
struct RawExpectFailure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    console: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a disk: a mapping with name, size and optional bus"
)]
struct RawDisk {
    name: String,
    size: ByteSize,
    #[serde(default)]
    bus: Bus,
}

/// Every key any step may have; which combinations are legal is checked in [`step_from_raw`],
/// because serde's enum representations cannot say "exactly one of these keys, plus options".
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a step: a mapping with one action key (run, unplug, fio) and its options"
)]
struct RawStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unplug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fio: Option<RawFio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expect: Option<RawExpect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capture: Option<String>,
}

/// A fio job as written in a step; checked by [`FioJob::problems`] once parsed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a fio job: a mapping with name, rw, bs, size, filename and optional iodepth, \
                 runtime, time_based, ramp_time, ioengine, direct, rwmixread, numjobs"
)]
struct RawFio {
    name: String,
    rw: String,
    bs: FioSize,
    size: FioSize,
    filename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iodepth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runtime: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    time_based: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ramp_time: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ioengine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    direct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rwmixread: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    numjobs: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "expectations: a mapping with exit, stdout, stdout_contains or stderr_contains"
)]
struct RawExpect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit: Option<RawExit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdout_contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stderr_contains: Option<String>,
}

/// `exit: 3` or `exit: any`; the range is checked by validation so the message can say which.
#[derive(Debug, Clone, Copy)]
enum RawExit {
    Code(i64),
    Any,
}

impl<'de> Deserialize<'de> for RawExit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExitVisitor;
        impl Visitor<'_> for ExitVisitor {
            type Value = RawExit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exit status (0..255) or `any`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawExit, E> {
                Ok(RawExit::Code(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawExit, E> {
                Ok(RawExit::Code(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawExit, E> {
                if v == "any" {
                    Ok(RawExit::Any)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(ExitVisitor)
    }
}

impl Serialize for RawExit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RawExit::Code(code) => serializer.serialize_i64(*code),
            RawExit::Any => serializer.serialize_str("any"),
        }
    }
}

/// `kernels: all` or `kernels: ["6.1", "7.2"]`.
#[derive(Debug, Default)]
enum RawKernels {
    #[default]
    All,
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for RawKernels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KernelsVisitor;
        impl<'de> Visitor<'de> for KernelsVisitor {
            type Value = RawKernels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all` or a list of kernel names such as [\"6.1\", \"7.2\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKernels, E> {
                if v == "all" {
                    Ok(RawKernels::All)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawKernels, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(RawKernels::Only(names))
            }
        }
        deserializer.deserialize_any(KernelsVisitor)
    }
}

impl Serialize for RawKernels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RawKernels::All => serializer.serialize_str("all"),
            RawKernels::Only(names) => names.serialize(serializer),
        }
    }
}

/// Collects findings for one file, each located through the position tree.
struct Checker<'a> {
    file: &'a Path,
    doc: &'a LocatedDocument,
    found: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn report(&mut self, path: &FieldPath, kind: ErrorKind, message: String) {
        self.found.push(Diagnostic {
            file: self.file.to_path_buf(),
            location: self.doc.locate(path),
            field: path.to_string(),
            message,
            kind,
        });
    }
}

/// Loads one scenario file. `known_kernels` are the matrix names (`5.10`, `6.1`, ...) that a
/// `kernels:` list may use.
pub fn load(path: &Path, known_kernels: &[impl AsRef<str>]) -> Result<Scenario, LoadErrors> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        LoadErrors(vec![ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        }])
    })?;
    load_str(&text, path, known_kernels)
}

/// Loads a scenario from text; `source` is only used to name the file in errors and in the
/// result.
pub fn load_str(
    text: &str,
    source: &Path,
    known_kernels: &[impl AsRef<str>],
) -> Result<Scenario, LoadErrors> {
    let invalid = |d: Diagnostic| LoadErrors(vec![ScenarioError::Invalid(d)]);
    let located = LocatedDocument::parse(text);
    // libyaml (inside serde_norway) is the reference parser: its verdict comes first.
    let raw: RawScenario = match serde_norway::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            return Err(invalid(parse_diagnostic(
                &err,
                source,
                located.ok().as_ref(),
            )))
        }
    };
    let doc = match located {
        Ok(doc) => doc,
        Err(err) => {
            return Err(invalid(Diagnostic {
                file: source.to_path_buf(),
                location: err.at,
                field: FieldPath::root().to_string(),
                message: err.message,
                kind: ErrorKind::Parse,
            }))
        }
    };
    let mut checker = Checker {
        file: source,
        doc: &doc,
        found: Vec::new(),
    };
    let scenario = validate(raw, source, known_kernels, &mut checker);
    if checker.found.is_empty() {
        Ok(scenario)
    } else {
        Err(LoadErrors(
            checker
                .found
                .into_iter()
                .map(ScenarioError::Invalid)
                .collect(),
        ))
    }
}

/// Loads every `*.yaml` file directly in `dir`, in name order, and reports the errors of all
/// files together, so one run of the harness shows every mistake.
pub fn load_dir(
    dir: &Path,
    known_kernels: &[impl AsRef<str>],
) -> Result<Vec<Scenario>, LoadErrors> {
    let files = scenario_files(dir).map_err(|source| {
        LoadErrors(vec![ScenarioError::Read {
            path: dir.to_path_buf(),
            source,
        }])
    })?;
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load(&file, known_kernels) {
            Ok(scenario) => {
                if let Some(first) = scenarios.iter().find(|s| s.name == scenario.name) {
                    errors.push(ScenarioError::Invalid(Diagnostic {
                        file: file.clone(),
                        location: scenario.name_location,
                        field: "name".to_string(),
                        message: format!(
                            "scenario name {:?} is already used by {}",
                            scenario.name,
                            first.source.display()
                        ),
                        kind: ErrorKind::DuplicateScenario,
                    }));
                } else {
                    scenarios.push(scenario);
                }
            }
            Err(LoadErrors(mut found)) => errors.append(&mut found),
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Turns serde_norway's error into a diagnostic. serde prints `path: message at line L column
/// C`; the path is recognised among the document's real paths rather than by guessing its
/// syntax, and for unknown or missing fields the field's own name is appended.
fn parse_diagnostic(
    err: &serde_norway::Error,
    file: &Path,
    doc: Option<&LocatedDocument>,
) -> Diagnostic {
    let location = err
        .location()
        .map(|l| Location {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or(Location { line: 1, column: 1 });
    let mut message = err.to_string();
    let suffix = format!(" at line {} column {}", location.line, location.column);
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message = stripped.to_string();
    }
    let mut field = String::new();
    let prefix = match doc {
        Some(doc) => doc
            .paths()
            .into_iter()
            .filter(|p| message.starts_with(&format!("{p}: ")))
            .max_by_key(String::len),
        // The event parser gave up too (broken YAML): fall back to the shape of serde's
        // paths, which never contain spaces or backticks.
        None => message
            .split_once(": ")
            .map(|(head, _)| head.to_string())
            .filter(|head| !head.contains([' ', '`', '"'])),
    };
    if let Some(prefix) = prefix {
        message = message[prefix.len() + 2..].to_string();
        field = prefix;
    }
    for lead in ["unknown field `", "missing field `"] {
        if let Some(name) = message
            .strip_prefix(lead)
            .and_then(|rest| rest.split('`').next())
        {
            field = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}.{name}")
            };
        }
    }
    if field.is_empty() {
        field = FieldPath::root().to_string();
    }
    Diagnostic {
        file: file.to_path_buf(),
        location,
        field,
        message,
        kind: ErrorKind::Parse,
    }
}

fn validate(
    raw: RawScenario,
    source: &Path,
    known_kernels: &[impl AsRef<str>],
    checker: &mut Checker<'_>,
) -> Scenario {
    let root = FieldPath::root();
    let name_path = root.key("name");
    if !valid_scenario_name(&raw.name) {
        checker.report(
            &name_path,
            ErrorKind::Name,
            format!(
                "scenario name {:?} must be letters, digits, '.', '_' or '-' (it names result directories)",
                raw.name
            ),
        );
    }

    let kernels = match raw.kernels {
        RawKernels::All => Kernels::All,
        RawKernels::Only(names) => {
            if names.is_empty() {
                checker.report(
                    &root.key("kernels"),
                    ErrorKind::UnknownKernel,
                    "the list is empty; write `all` or name at least one kernel".to_string(),
                );
            }
            let known: Vec<&str> = known_kernels.iter().map(AsRef::as_ref).collect();
            for (i, name) in names.iter().enumerate() {
                if !known.contains(&name.as_str()) {
                    checker.report(
                        &root.key("kernels").index(i),
                        ErrorKind::UnknownKernel,
                        format!(
                            "kernel {name:?} is not in the matrix (known: {})",
                            known.join(", ")
                        ),
                    );
                }
            }
            Kernels::Only(names)
        }
    };

    let requires = raw
        .requires
        .map(|r| requires_from_raw(r, &root.key("requires"), checker))
        .unwrap_or_default();

    let mut disks: Vec<Disk> = Vec::new();
    for (i, raw_disk) in raw.disks.into_iter().enumerate() {
        let path = root.key("disks").index(i).key("name");
        if !valid_disk_name(&raw_disk.name) {
            checker.report(
                &path,
                ErrorKind::DiskName,
                format!(
                    "disk name {:?} must match [a-z][a-z0-9_]{{0,15}} (it becomes $DISK_<name> in the guest)",
                    raw_disk.name
                ),
            );
        }
        if let Some(first) = disks.iter().find(|d| d.name == raw_disk.name) {
            checker.report(
                &path,
                ErrorKind::DuplicateDisk,
                format!(
                    "disk {:?} is declared twice (first at line {})",
                    raw_disk.name, first.location.line
                ),
            );
        }
        disks.push(Disk {
            name: raw_disk.name,
            size_bytes: raw_disk.size.0,
            bus: raw_disk.bus,
            location: checker.doc.locate(&root.key("disks").index(i)),
        });
    }

    let steps_path = root.key("steps");
    if raw.steps.is_empty() {
        checker.report(
            &steps_path,
            ErrorKind::EmptySteps,
            "a scenario needs at least one step".to_string(),
        );
    }
    let declared: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    let steps = steps_from_raw(raw.steps, &steps_path, &declared, checker);
    // Cleanup runs however far the steps got, so a disk unplugged by a step may still be
    // there: only declaration is checked, and an unplug in cleanup is counted on its own.
    let cleanup = steps_from_raw(raw.cleanup, &root.key("cleanup"), &declared, checker);

    let expect_failure = raw.expect_failure.map(|f| {
        let path = root.key("expect_failure");
        if f.step.is_none() && f.console.is_none() {
            checker.report(
                &path,
                ErrorKind::StepShape,
                "say which failure is expected: `step: N`, `console: MARKER`, or both".to_string(),
            );
        }
        if let Some(step) = f.step {
            if step == 0 || step > steps.len() {
                checker.report(
                    &path.key("step"),
                    ErrorKind::StepShape,
                    format!(
                        "step {step} does not exist (steps are numbered 1..{})",
                        steps.len()
                    ),
                );
            }
        }
        ExpectFailure {
            step: f.step,
            console: f.console,
        }
    });

    Scenario {
        name: raw.name,
        description: raw.description,
        kernels,
        timeout: raw.timeout.map(|t| t.0),
        requires,
        disks,
        steps,
        cleanup,
        expect_failure,
        source: source.to_path_buf(),
        name_location: checker.doc.locate(&name_path),
    }
}

/// One list of steps (`steps` or `cleanup`), each checked; a disk unplugged in the list may
/// not be used after that within it.
fn steps_from_raw(
    raw: Vec<RawStep>,
    list: &FieldPath,
    declared: &[&str],
    checker: &mut Checker<'_>,
) -> Vec<Step> {
    let mut unplugged: Vec<(String, usize)> = Vec::new();
    let mut steps = Vec::new();
    for (i, raw_step) in raw.into_iter().enumerate() {
        let path = list.index(i);
        let location = checker.doc.locate(&path);
        let Some(action) = step_from_raw(raw_step, &path, checker) else {
            continue;
        };
        check_disk_use(&action, &path, declared, &mut unplugged, checker);
        steps.push(Step { action, location });
    }
    steps
}

/// Checks every entry of `requires`, reporting each bad one where it is written.
fn requires_from_raw(raw: RawRequires, path: &FieldPath, checker: &mut Checker<'_>) -> Requires {
    let kernel = raw.kernel.and_then(|text| {
        VersionRange::parse(&text)
            .map_err(|e| checker.report(&path.key("kernel"), ErrorKind::Requires, e))
            .ok()
    });
    let mut config = Vec::new();
    for (i, option) in raw.config.iter().enumerate() {
        match crate::requires::config_name(option) {
            Some(name) => config.push(name),
            None => checker.report(
                &path.key("config").index(i),
                ErrorKind::Requires,
                format!("{option:?} is not a kernel option name (write e.g. BLK_DEV_ZONED)"),
            ),
        }
    }
    let mut names = |list: Vec<String>, key: &str, what: &str| {
        let mut out = Vec::new();
        for (i, name) in list.into_iter().enumerate() {
            if crate::requires::valid_name(&name) {
                out.push(name);
            } else {
                checker.report(
                    &path.key(key).index(i),
                    ErrorKind::Requires,
                    format!("{name:?} is not a {what} name (letters, digits, '.', '_', '-', '+')"),
                );
            }
        }
        out
    };
    let programs = names(raw.programs, "programs", "program");
    let modules = names(raw.modules, "modules", "module");
    Requires {
        kernel,
        config,
        programs,
        modules,
    }
}

/// Picks the step's single action and checks that its options belong to it.
fn step_from_raw(raw: RawStep, path: &FieldPath, checker: &mut Checker<'_>) -> Option<Action> {
    let present: Vec<&str> = [
        ("run", raw.run.is_some()),
        ("unplug", raw.unplug.is_some()),
        ("fio", raw.fio.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    match present.as_slice() {
        [] => {
            checker.report(
                path,
                ErrorKind::StepShape,
                format!(
                    "a step needs one action key: one of {}",
                    ACTION_KEYS.join(", ")
                ),
            );
            return None;
        }
        [_] => {}
        [_, _, ..] => {
            checker.report(
                path,
                ErrorKind::StepShape,
                format!(
                    "a step has exactly one action, but this one has {}",
                    present.join(" and ")
                ),
            );
            return None;
        }
    }

    if let Some(command) = raw.run {
        let mut expect = Expect::default();
        if let Some(raw_expect) = raw.expect {
            if let Some(exit) = raw_expect.exit {
                expect.exit = match exit {
                    RawExit::Any => ExitExpect::Any,
                    RawExit::Code(code) => match i32::try_from(code) {
                        Ok(code) if (0..=255).contains(&code) => ExitExpect::Code(code),
                        _ => {
                            checker.report(
                                &path.key("expect").key("exit"),
                                ErrorKind::ExitStatus,
                                format!("exit status {code} is outside 0..255 (or write `any`)"),
                            );
                            ExitExpect::Any
                        }
                    },
                };
            }
            expect.stdout = raw_expect.stdout;
            expect.stdout_contains = raw_expect.stdout_contains;
            expect.stderr_contains = raw_expect.stderr_contains;
        }
        let capture = raw.capture.filter(|name| {
            let ok = valid_capture_name(name);
            if !ok {
                checker.report(
                    &path.key("capture"),
                    ErrorKind::StepShape,
                    format!(
                        "capture name {name:?} must be a shell variable name ([A-Za-z_][A-Za-z0-9_]*) \
                         that is not DISK_* (those are the disks')"
                    ),
                );
            }
            ok
        });
        return Some(Action::Run(RunStep {
            command,
            expect,
            timeout: raw.timeout.map(|t| t.0),
            capture,
        }));
    }
    if raw.capture.is_some() {
        checker.report(
            &path.key("capture"),
            ErrorKind::StepShape,
            "`capture` belongs to run steps (it keeps a command's output)".to_string(),
        );
    }

    if let Some(disk) = raw.unplug {
        for (key, set) in [
            ("expect", raw.expect.is_some()),
            ("timeout", raw.timeout.is_some()),
        ] {
            if set {
                checker.report(
                    &path.key(key),
                    ErrorKind::StepShape,
                    format!("`{key}` belongs to run steps, not to unplug"),
                );
            }
        }
        return Some(Action::Unplug(UnplugStep { disk }));
    }

    if let Some(fio) = raw.fio {
        if raw.expect.is_some() {
            checker.report(
                &path.key("expect"),
                ErrorKind::StepShape,
                "`expect` belongs to run steps; a fio step passes when fio exits 0 with a \
                 report and no job error"
                    .to_string(),
            );
        }
        let job = fio_job_from_raw(fio, &path.key("fio"), checker)?;
        return Some(Action::Fio(FioStep {
            job,
            timeout: raw.timeout.map(|t| t.0),
        }));
    }
    None
}

/// Builds the job and reports each of its problems at its own field.
fn fio_job_from_raw(raw: RawFio, path: &FieldPath, checker: &mut Checker<'_>) -> Option<FioJob> {
    let Some(rw) = RwMode::from_name(&raw.rw) else {
        checker.report(
            &path.key("rw"),
            ErrorKind::FioJob,
            format!(
                "rw {:?} is not a fio mode (one of {})",
                raw.rw,
                RW_MODES
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    };
    let rwmixread = match raw.rwmixread {
        None => None,
        Some(p) if p <= 100 => u8::try_from(p).ok(),
        Some(p) => {
            checker.report(
                &path.key("rwmixread"),
                ErrorKind::FioJob,
                format!("rwmixread {p} is not a percentage (0..100)"),
            );
            None
        }
    };
    let job = FioJob {
        name: raw.name,
        rw,
        bs: raw.bs.0,
        iodepth: raw.iodepth.unwrap_or(1),
        size: raw.size.0,
        runtime: raw.runtime.map(|t| t.0),
        time_based: raw.time_based,
        ramp_time: raw.ramp_time.map(|t| t.0),
        filename: raw.filename,
        ioengine: raw.ioengine.unwrap_or_else(|| "libaio".to_string()),
        direct: raw.direct.unwrap_or(true),
        rwmixread,
        numjobs: raw.numjobs.unwrap_or(1),
    };
    for (field, message) in job.problems() {
        checker.report(&path.key(field), ErrorKind::FioJob, message);
    }
    Some(job)
}

/// Every disk a step names must be declared; a disk can be unplugged only once.
fn check_disk_use(
    action: &Action,
    path: &FieldPath,
    declared: &[&str],
    unplugged: &mut Vec<(String, usize)>,
    checker: &mut Checker<'_>,
) {
    let declared_list = || {
        if declared.is_empty() {
            "no disks are declared".to_string()
        } else {
            format!("declared: {}", declared.join(", "))
        }
    };
    match action {
        Action::Run(run) => {
            let mut seen = HashSet::new();
            for (variable, disk) in disk_references(&run.command) {
                if !declared.contains(&disk.as_str()) && seen.insert(disk.clone()) {
                    checker.report(
                        &path.key("run"),
                        ErrorKind::UndeclaredDisk,
                        format!(
                            "{variable} refers to disk {disk:?}, which is not declared in disks ({})",
                            declared_list()
                        ),
                    );
                }
            }
        }
        Action::Fio(fio) => {
            let mut seen = HashSet::new();
            for (variable, disk) in disk_references(&fio.job.filename) {
                if !declared.contains(&disk.as_str()) && seen.insert(disk.clone()) {
                    checker.report(
                        &path.key("fio").key("filename"),
                        ErrorKind::UndeclaredDisk,
                        format!(
                            "{variable} refers to disk {disk:?}, which is not declared in disks ({})",
                            declared_list()
                        ),
                    );
                }
            }
        }
        Action::Unplug(unplug) => {
            let field = path.key("unplug");
            if !declared.contains(&unplug.disk.as_str()) {
                checker.report(
                    &field,
                    ErrorKind::UndeclaredDisk,
                    format!(
                        "disk {:?} is not declared in disks ({})",
                        unplug.disk,
                        declared_list()
                    ),
                );
            } else if let Some((_, line)) = unplugged.iter().find(|(d, _)| d == &unplug.disk) {
                checker.report(
                    &field,
                    ErrorKind::DiskAlreadyUnplugged,
                    format!(
                        "disk {:?} was already unplugged at line {line}",
                        unplug.disk
                    ),
                );
            } else {
                unplugged.push((unplug.disk.clone(), checker.doc.locate(&field).line));
            }
        }
    }
}

/// The `$DISK_x` and `${DISK_x}` references in a shell command, as (text written, disk name).
/// Shell variable names run as long as letters, digits and `_` follow, so `$DISK_data_2`
/// names disk `data_2`, exactly as bash would read it.
pub fn disk_references(command: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let bytes = command.as_bytes();
    let mut i = 0;
    while let Some(offset) = command[i..].find('$') {
        let start = i + offset;
        let braced = bytes.get(start + 1) == Some(&b'{');
        let name_start = start + if braced { 2 } else { 1 };
        i = start + 1;
        let Some(rest) = command.get(name_start..) else {
            break;
        };
        let Some(after_prefix) = rest.strip_prefix("DISK_") else {
            continue;
        };
        let len = after_prefix
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after_prefix.len());
        let disk = &after_prefix[..len];
        let end = name_start + "DISK_".len() + len;
        let written = if braced && bytes.get(end) == Some(&b'}') {
            &command[start..=end]
        } else {
            &command[start..end]
        };
        found.push((written.to_string(), disk.to_string()));
    }
    found
}

/// A disk given on a command line as `NAME:SIZE[:BUS]` (`data:256MiB`, `fast:64MiB:nvme`),
/// with the same rules as a scenario's `disks` entry.
pub fn disk_from_arg(text: &str) -> Result<Disk, String> {
    let mut parts = text.split(':');
    let (Some(name), Some(size)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "disk {text:?}: write NAME:SIZE[:BUS], e.g. data:256MiB"
        ));
    };
    if !valid_disk_name(name) {
        return Err(format!(
            "disk {text:?}: the name must match [a-z][a-z0-9_]{{0,{}}}",
            MAX_DISK_NAME - 1
        ));
    }
    let size_bytes = crate::units::parse_size(size).map_err(|e| format!("disk {text:?}: {e}"))?;
    let bus = match parts.next() {
        None | Some("virtio") => Bus::Virtio,
        Some("scsi") => Bus::Scsi,
        Some("nvme") => Bus::Nvme,
        Some(other) => {
            return Err(format!(
                "disk {text:?}: bus {other:?} is not one of virtio, scsi, nvme"
            ))
        }
    };
    if parts.next().is_some() {
        return Err(format!(
            "disk {text:?}: write NAME:SIZE[:BUS], e.g. data:256MiB"
        ));
    }
    Ok(Disk {
        name: name.to_string(),
        size_bytes,
        bus,
        location: Location::default(),
    })
}

/// A name `capture` may give: a shell variable, not one of the disks' `DISK_*` names.
fn valid_capture_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("DISK_")
}

fn valid_disk_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= MAX_DISK_NAME
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

fn valid_scenario_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl RawStep {
    fn from_step(step: &Step) -> RawStep {
        match &step.action {
            Action::Run(run) => RawStep {
                run: Some(run.command.clone()),
                expect: Some(RawExpect {
                    exit: Some(match run.expect.exit {
                        ExitExpect::Code(code) => RawExit::Code(code.into()),
                        ExitExpect::Any => RawExit::Any,
                    }),
                    stdout: run.expect.stdout.clone(),
                    stdout_contains: run.expect.stdout_contains.clone(),
                    stderr_contains: run.expect.stderr_contains.clone(),
                }),
                timeout: run.timeout.map(HumanDuration),
                capture: run.capture.clone(),
                ..RawStep::default()
            },
            Action::Unplug(unplug) => RawStep {
                unplug: Some(unplug.disk.clone()),
                ..RawStep::default()
            },
            Action::Fio(fio) => {
                let job = &fio.job;
                RawStep {
                    fio: Some(RawFio {
                        name: job.name.clone(),
                        rw: job.rw.as_str().to_string(),
                        bs: FioSize(job.bs),
                        size: FioSize(job.size),
                        filename: job.filename.clone(),
                        iodepth: Some(job.iodepth),
                        runtime: job.runtime.map(HumanDuration),
                        time_based: job.time_based,
                        ramp_time: job.ramp_time.map(HumanDuration),
                        ioengine: Some(job.ioengine.clone()),
                        direct: Some(job.direct),
                        rwmixread: job.rwmixread.map(u32::from),
                        numjobs: Some(job.numjobs),
                    }),
                    timeout: fio.timeout.map(HumanDuration),
                    ..RawStep::default()
                }
            }
        }
    }
}

impl Scenario {
    /// The scenario in the file format, e.g. to keep the exact scenario with a run's results.
    /// Loading the text again gives the same scenario (positions aside).
    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        let raw = RawScenario {
            name: self.name.clone(),
            description: self.description.clone(),
            kernels: match &self.kernels {
                Kernels::All => RawKernels::All,
                Kernels::Only(names) => RawKernels::Only(names.clone()),
            },
            timeout: self.timeout.map(HumanDuration),
            requires: (!self.requires.is_empty()).then(|| RawRequires {
                kernel: self
                    .requires
                    .kernel
                    .as_ref()
                    .map(|r| r.as_str().to_string()),
                config: self.requires.config.clone(),
                programs: self.requires.programs.clone(),
                modules: self.requires.modules.clone(),
            }),
            disks: self
                .disks
                .iter()
                .map(|d| RawDisk {
                    name: d.name.clone(),
                    size: ByteSize(d.size_bytes),
                    bus: d.bus,
                })
                .collect(),
            steps: self.steps.iter().map(RawStep::from_step).collect(),
            cleanup: self.cleanup.iter().map(RawStep::from_step).collect(),
            expect_failure: self.expect_failure.as_ref().map(|f| RawExpectFailure {
                step: f.step,
                console: f.console.clone(),
            }),
        };
        serde_norway::to_string(&raw)
    }
}

/// The `*.yaml` files directly in `dir`, sorted by name: the files [`load_dir`] reads.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_from_the_command_line() {
        let d = disk_from_arg("data:256MiB").unwrap();
        assert_eq!(
            (d.name.as_str(), d.size_bytes, d.bus),
            ("data", 256 << 20, Bus::Virtio)
        );
        assert_eq!(disk_from_arg("f_2:4KiB:nvme").unwrap().bus, Bus::Nvme);
        assert_eq!(disk_from_arg("s:1GiB:scsi").unwrap().bus, Bus::Scsi);
        for bad in [
            "data",
            "Data:1MiB",
            "data:1MB",
            "data:1MiB:ide",
            "data:1MiB:nvme:x",
            ":1MiB",
        ] {
            let err = disk_from_arg(bad).unwrap_err();
            assert!(err.starts_with(&format!("disk {bad:?}")), "{err}");
        }
    }

    #[test]
    fn finds_disk_references_as_bash_reads_them() {
        let refs =
            disk_references("cat $DISK_data_2 ${DISK_a:-x} ${DISK_b} $DISK $HOME $ é$DISK_c\"");
        let refs: Vec<(&str, &str)> = refs.iter().map(|(w, d)| (w.as_str(), d.as_str())).collect();
        assert_eq!(
            refs,
            [
                ("$DISK_data_2", "data_2"),
                ("${DISK_a", "a"),
                ("${DISK_b}", "b"),
                ("$DISK_c", "c"),
            ]
        );
        assert!(disk_references("echo $").is_empty());
    }
}

//! What a benchmark run does in each guest: the configurations compared, the workloads read
//! from `scenarios/bench/*.yaml`, and the interleaved order of the units that measure them.
//!
//! A *unit* is one small scenario: the guest commands that put the data disk into a
//! configuration, then one or two fio runs (two when a snapshot's first pass and second pass
//! are both measured), then evidence commands. Rounds repeat every unit of every workload in
//! the same order (A B C ... A B C ...), so each round's samples are compared with that
//! round's raw sample.

use std::path::Path;
use std::time::Duration;

use bdsnap_fio::FioJob;
use bdsnap_scenario::{
    Action, Disk, Expect, FioStep, Kernels, RunStep, Scenario, Step, DEFAULT_STEP_TIMEOUT,
};
use serde::{Deserialize, Serialize};

use crate::BenchError;

/// The disk every workload runs on.
pub const DATA_DISK: &str = "data";
/// The disk that holds bdsnap's difference storage and dm-snapshot's exception store: the
/// same device for both, so neither gets a faster store.
pub const STORE_DISK: &str = "store";
/// dm-snapshot's chunk in sectors: 64 KiB, bdsnap's default chunk (`chunk_min_shift=16`).
pub const DM_CHUNK_SECTORS: u32 = 128;

const DM_ORIGIN: &str = "bdbench-origin";
const DM_SNAP: &str = "bdbench-snap";

/// One way of setting up the data disk that a workload is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Config {
    /// The bare device: the baseline every ratio is relative to.
    Raw,
    /// bdfilter attached, no tracker work (`tracker attach --filter-only`).
    Filter,
    /// Tracker with CBT.
    Tracked,
    /// First pass over the region after a snapshot was taken: chunks are copied on first write.
    Cow,
    /// Second pass over the same region in the same snapshot: chunks already copied.
    Overwrite,
    /// dm-snapshot (snapshot-origin + persistent snapshot, same chunk and store): first pass.
    DmCow,
    /// dm-snapshot, second pass.
    DmOverwrite,
    /// Reads from bdsnap's snapshot image of a freshly taken snapshot.
    Image,
    /// Reads from dm-snapshot's snapshot device, freshly created.
    DmImage,
}

impl Config {
    pub const ALL: [Config; 9] = [
        Config::Raw,
        Config::Filter,
        Config::Tracked,
        Config::Cow,
        Config::Overwrite,
        Config::DmCow,
        Config::DmOverwrite,
        Config::Image,
        Config::DmImage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Config::Raw => "raw",
            Config::Filter => "filter",
            Config::Tracked => "tracked",
            Config::Cow => "cow",
            Config::Overwrite => "overwrite",
            Config::DmCow => "dm-cow",
            Config::DmOverwrite => "dm-overwrite",
            Config::Image => "image",
            Config::DmImage => "dm-image",
        }
    }

    pub fn from_name(name: &str) -> Option<Config> {
        Config::ALL.into_iter().find(|c| c.name() == name)
    }

    /// One line for reports.
    pub fn description(self) -> &'static str {
        match self {
            Config::Raw => "the bare device (baseline)",
            Config::Filter => "bdfilter attached, no CBT (tracker attach --filter-only)",
            Config::Tracked => "tracker with CBT",
            Config::Cow => "bdsnap snapshot taken, first pass: chunks copied on first write",
            Config::Overwrite => "same bdsnap snapshot, second pass: chunks already copied",
            Config::DmCow => "dm-snapshot (P, 64 KiB chunks, same store disk), first pass",
            Config::DmOverwrite => "same dm-snapshot, second pass",
            Config::Image => "reads from the bdsnap snapshot image (fresh snapshot)",
            Config::DmImage => "reads from the dm-snapshot snapshot device (fresh snapshot)",
        }
    }
}

/// A unit of measurement: a setup and the configurations its fio runs measure, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitKind {
    Raw,
    Filter,
    Tracked,
    Snapshot,
    DmSnapshot,
    Image,
    DmImage,
}

impl UnitKind {
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Raw => "raw",
            UnitKind::Filter => "filter",
            UnitKind::Tracked => "tracked",
            UnitKind::Snapshot => "snapshot",
            UnitKind::DmSnapshot => "dm-snapshot",
            UnitKind::Image => "image",
            UnitKind::DmImage => "dm-image",
        }
    }

    /// The configurations measured, one fio run each, in order.
    pub fn configs(self) -> &'static [Config] {
        match self {
            UnitKind::Raw => &[Config::Raw],
            UnitKind::Filter => &[Config::Filter],
            UnitKind::Tracked => &[Config::Tracked],
            UnitKind::Snapshot => &[Config::Cow, Config::Overwrite],
            UnitKind::DmSnapshot => &[Config::DmCow, Config::DmOverwrite],
            UnitKind::Image => &[Config::Image],
            UnitKind::DmImage => &[Config::DmImage],
        }
    }

    /// The units for a job: writers are measured under snapshots, readers on images.
    pub fn for_job(job: &FioJob) -> &'static [UnitKind] {
        if job.rw.writes() {
            &[
                UnitKind::Raw,
                UnitKind::Filter,
                UnitKind::Tracked,
                UnitKind::Snapshot,
                UnitKind::DmSnapshot,
            ]
        } else {
            &[
                UnitKind::Raw,
                UnitKind::Filter,
                UnitKind::Tracked,
                UnitKind::Image,
                UnitKind::DmImage,
            ]
        }
    }

    /// Guest commands that put the data disk into this unit's state.
    fn setup(self) -> Option<String> {
        let bdsnap_snapshot = "set -e\n\
             bdsnapctl tracker attach \"$DISK_data\"\n\
             id=$(bdsnapctl snapshot create --storage \"$DISK_store\")\n\
             echo \"$id\" > /run/bdbench-id\n\
             bdsnapctl snapshot add \"$id\" \"$DISK_data\"\n\
             bdsnapctl snapshot take \"$id\" --no-freeze\n";
        let dm_snapshot = format!(
            "set -e\n\
             export DM_DISABLE_UDEV=1\n\
             # A reused persistent store would reload old exceptions: clear its header.\n\
             dd if=/dev/zero of=\"$DISK_store\" bs=1M count=1 oflag=direct status=none\n\
             sectors=$(blockdev --getsz \"$DISK_data\")\n\
             dmsetup --noudevsync create {DM_ORIGIN} --table \"0 $sectors snapshot-origin $DISK_data\"\n\
             dmsetup --noudevsync create {DM_SNAP} --table \"0 $sectors snapshot $DISK_data $DISK_store P {DM_CHUNK_SECTORS}\"\n\
             # The origin learns the snapshot's chunk size when it resumes (LVM suspends it\n\
             # around the snapshot's creation). Without this it passes multi-chunk writes\n\
             # whole and dm-snapshot copies only their first chunk (measured: 1 of 16).\n\
             dmsetup --noudevsync suspend {DM_ORIGIN}\n\
             dmsetup --noudevsync resume {DM_ORIGIN}\n\
             dmsetup --noudevsync mknodes\n\
             test -b /dev/mapper/{DM_ORIGIN} && test -b /dev/mapper/{DM_SNAP}\n"
        );
        match self {
            UnitKind::Raw => None,
            UnitKind::Filter => {
                Some("bdsnapctl tracker attach --filter-only \"$DISK_data\"".to_string())
            }
            UnitKind::Tracked => Some("bdsnapctl tracker attach \"$DISK_data\"".to_string()),
            UnitKind::Snapshot => Some(bdsnap_snapshot.to_string()),
            UnitKind::Image => Some(format!(
                "{bdsnap_snapshot}bdsnapctl snapshot image \"$id\" \"$DISK_data\" > /run/bdbench-target\n\
                 test -b \"$(cat /run/bdbench-target)\"\n"
            )),
            UnitKind::DmSnapshot | UnitKind::DmImage => Some(dm_snapshot),
        }
    }

    /// What fio's `filename` is in this unit.
    fn target(self) -> String {
        match self {
            UnitKind::Raw | UnitKind::Filter | UnitKind::Tracked | UnitKind::Snapshot => {
                "$DISK_data".to_string()
            }
            UnitKind::Image => "$(cat /run/bdbench-target)".to_string(),
            UnitKind::DmSnapshot => format!("/dev/mapper/{DM_ORIGIN}"),
            UnitKind::DmImage => format!("/dev/mapper/{DM_SNAP}"),
        }
    }

    /// Commands run after the measurements, for the evidence (how much was copied).
    fn evidence(self) -> Option<String> {
        match self {
            UnitKind::Snapshot | UnitKind::Image => {
                Some("bdsnapctl --json snapshot info \"$(cat /run/bdbench-id)\"".to_string())
            }
            UnitKind::DmSnapshot | UnitKind::DmImage => {
                Some(format!("dmsetup status {DM_SNAP}; dmsetup table"))
            }
            _ => None,
        }
    }
}

/// Puts the guest back to the plain state whatever a unit left behind (it may have failed
/// half-way): snapshots destroyed, dm devices removed, tracker detached. Always succeeds.
pub const RESET_SCRIPT: &str = "export DM_DISABLE_UDEV=1\n\
for id in $(bdsnapctl snapshot list 2>/dev/null); do bdsnapctl snapshot destroy \"$id\"; done\n\
for dev in bdbench-snap bdbench-origin; do\n\
  if dmsetup info \"$dev\" >/dev/null 2>&1; then dmsetup --noudevsync remove \"$dev\"; fi\n\
done\n\
bdsnapctl tracker detach \"$DISK_data\" >/dev/null 2>&1\n\
rm -f /run/bdbench-id /run/bdbench-target\n\
true";

/// A workload: one file of `scenarios/bench/`, a scenario whose single step is a fio job on
/// `$DISK_data`, with `data` and `store` disks declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub description: String,
    pub source: String,
    pub job: FioJob,
    pub data: Disk,
    pub store: Disk,
    /// Unscaled timeout of the fio step, as the file says or the engine's default.
    pub timeout: Duration,
}

impl Workload {
    pub fn from_scenario(sc: &Scenario) -> Result<Workload, BenchError> {
        let fail = |line: usize, message: String| BenchError::Workload {
            file: sc.source.display().to_string(),
            line,
            message,
        };
        let disk = |name: &str| {
            sc.disks
                .iter()
                .find(|d| d.name == name)
                .cloned()
                .ok_or_else(|| {
                    fail(
                        sc.name_location.line,
                        format!("a benchmark declares disks `{DATA_DISK}` and `{STORE_DISK}`; `{name}` is missing"),
                    )
                })
        };
        let data = disk(DATA_DISK)?;
        let store = disk(STORE_DISK)?;
        let [step] = sc.steps.as_slice() else {
            let line = sc
                .steps
                .get(1)
                .map_or(sc.name_location.line, |s| s.location.line);
            return Err(fail(
                line,
                format!(
                    "a benchmark has exactly one step, a fio job; this one has {}",
                    sc.steps.len()
                ),
            ));
        };
        let Action::Fio(fio) = &step.action else {
            return Err(fail(
                step.location.line,
                format!(
                    "a benchmark's step is a fio job, not {}",
                    step.action.kind()
                ),
            ));
        };
        if !matches!(fio.job.filename.as_str(), "$DISK_data" | "${DISK_data}") {
            return Err(fail(
                step.location.line,
                format!(
                    "the fio job's filename is \"$DISK_data\" (the harness points it at each \
                     configuration's device), not {:?}",
                    fio.job.filename
                ),
            ));
        }
        if fio.job.time_based && fio.job.rw.writes() {
            return Err(fail(
                step.location.line,
                "a writing benchmark job makes one pass over its region (no time_based), so \
                 that the first pass after a snapshot copies every chunk once"
                    .to_string(),
            ));
        }
        if fio.job.size > data.size_bytes {
            return Err(fail(
                step.location.line,
                format!(
                    "the job's size ({} bytes) is larger than disk `{DATA_DISK}` ({} bytes)",
                    fio.job.size, data.size_bytes
                ),
            ));
        }
        Ok(Workload {
            name: fio.job.name.clone(),
            description: sc.description.clone(),
            source: sc.source.display().to_string(),
            job: fio.job.clone(),
            data,
            store,
            timeout: fio.timeout(),
        })
    }

    /// The workload for `--quick`: a quarter of the region (at least 64 blocks and 4 MiB) and
    /// half the runtime cap, so one round of everything takes minutes under emulation.
    pub fn quick(&self) -> Workload {
        let mut w = self.clone();
        let floor = (w.job.bs * 64).max(4 << 20).min(w.job.size);
        let quarter = (w.job.size / 4 / w.job.bs) * w.job.bs;
        w.job.size = quarter.max(floor);
        w.job.runtime = w.job.runtime.map(|r| (r / 2).max(Duration::from_secs(1)));
        w
    }
}

/// One unit in the run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedUnit {
    /// 1-based.
    pub round: u32,
    /// Index into the workloads.
    pub workload: usize,
    pub kind: UnitKind,
}

/// Every unit of a run, in order: round by round, workload by workload, configuration by
/// configuration (A B C ... A B C ...).
pub fn plan(workloads: &[Workload], rounds: u32) -> Vec<PlannedUnit> {
    let mut units = Vec::new();
    for round in 1..=rounds {
        for (index, w) in workloads.iter().enumerate() {
            for kind in UnitKind::for_job(&w.job) {
                units.push(PlannedUnit {
                    round,
                    workload: index,
                    kind: *kind,
                });
            }
        }
    }
    units
}

impl PlannedUnit {
    /// `r1-randwrite-4k-qd1-snapshot`: names the unit's evidence directory.
    pub fn id(&self, workloads: &[Workload]) -> String {
        let name = workloads
            .get(self.workload)
            .map_or("unknown", |w| w.name.as_str());
        format!("r{}-{name}-{}", self.round, self.kind.name())
    }

    /// The unit as a scenario the engine runs: setup, one fio run per configuration, evidence.
    pub fn scenario(&self, workload: &Workload) -> Scenario {
        let id = format!("r{}-{}-{}", self.round, workload.name, self.kind.name());
        let mut steps = Vec::new();
        let run = |command: String| Step {
            action: Action::Run(RunStep {
                command,
                expect: Expect::default(),
                timeout: Some(DEFAULT_STEP_TIMEOUT),
                capture: None,
            }),
            location: Default::default(),
        };
        if let Some(setup) = self.kind.setup() {
            steps.push(run(setup));
        }
        for config in self.kind.configs() {
            let mut job = workload.job.clone();
            job.name = format!("{}-{}", workload.name, config.name());
            job.filename = self.kind.target();
            steps.push(Step {
                action: Action::Fio(FioStep {
                    job,
                    timeout: Some(workload.timeout),
                }),
                location: Default::default(),
            });
        }
        if let Some(evidence) = self.kind.evidence() {
            steps.push(run(evidence));
        }
        Scenario {
            name: id,
            description: format!(
                "{} on {}",
                workload.name,
                self.kind
                    .configs()
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(" then ")
            ),
            kernels: Kernels::All,
            timeout: None,
            requires: Default::default(),
            disks: vec![workload.data.clone(), workload.store.clone()],
            steps,
            cleanup: Vec::new(),
            expect_failure: None,
            source: Path::new(&workload.source).to_path_buf(),
            name_location: Default::default(),
        }
    }
}

/// The guest commands run once after boot, before any unit: modules loaded, both disks
/// written end to end so that no measurement reads or fills a sparse host file.
pub fn prepare_script(data_bytes: u64, store_bytes: u64) -> String {
    format!(
        "set -e\n\
         modprobe bdsnap\n\
         modprobe dm-snapshot\n\
         dd if=/dev/zero of=\"$DISK_data\" bs=1M count={} oflag=direct status=none\n\
         dd if=/dev/zero of=\"$DISK_store\" bs=1M count={} oflag=direct status=none\n\
         fio --version",
        data_bytes >> 20,
        store_bytes >> 20
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bdsnap_fio::RwMode;

    fn workload(name: &str, rw: RwMode) -> Workload {
        let disk = |name: &str, size: u64| Disk {
            name: name.to_string(),
            size_bytes: size,
            bus: Default::default(),
            location: Default::default(),
        };
        Workload {
            name: name.to_string(),
            description: String::new(),
            source: format!("scenarios/bench/{name}.yaml"),
            job: FioJob::new(name, rw, 4096, 32 << 20, "$DISK_data"),
            data: disk("data", 256 << 20),
            store: disk("store", 512 << 20),
            timeout: Duration::from_secs(120),
        }
    }

    #[test]
    fn rounds_interleave_every_configuration() {
        let w = [
            workload("w", RwMode::RandWrite),
            workload("r", RwMode::RandRead),
        ];
        let units = plan(&w, 3);
        assert_eq!(units.len(), 3 * (5 + 5));
        let order: Vec<String> = units.iter().take(10).map(|u| u.id(&w)).collect();
        assert_eq!(
            order,
            [
                "r1-w-raw",
                "r1-w-filter",
                "r1-w-tracked",
                "r1-w-snapshot",
                "r1-w-dm-snapshot",
                "r1-r-raw",
                "r1-r-filter",
                "r1-r-tracked",
                "r1-r-image",
                "r1-r-dm-image"
            ]
        );
        assert_eq!(units[10].id(&w), "r2-w-raw");
        assert_eq!(units.last().map(|u| u.round), Some(3));
    }

    #[test]
    fn unit_scenarios_measure_their_configurations_in_order() {
        let w = workload("w", RwMode::RandWrite);
        let unit = PlannedUnit {
            round: 2,
            workload: 0,
            kind: UnitKind::DmSnapshot,
        };
        let sc = unit.scenario(&w);
        assert_eq!(sc.name, "r2-w-dm-snapshot");
        let kinds: Vec<&str> = sc.steps.iter().map(|s| s.action.kind()).collect();
        assert_eq!(kinds, ["run", "fio", "fio", "run"]);
        let Action::Fio(first) = &sc.steps[1].action else {
            panic!()
        };
        assert_eq!(first.job.name, "w-dm-cow");
        assert_eq!(first.job.filename, "/dev/mapper/bdbench-origin");
        let Action::Run(setup) = &sc.steps[0].action else {
            panic!()
        };
        assert!(setup.command.contains("P 128"), "{}", setup.command);
        // The generated scenario is a valid one: it survives the file format.
        let yaml = sc.to_yaml().unwrap();
        let again = bdsnap_scenario::load_str(&yaml, Path::new("unit.yaml"), &["6.1"])
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(again.steps.len(), 4);

        let raw = PlannedUnit {
            round: 1,
            workload: 0,
            kind: UnitKind::Raw,
        }
        .scenario(&w);
        assert_eq!(raw.steps.len(), 1);
    }

    #[test]
    fn quick_workloads_are_smaller() {
        let w = workload("w", RwMode::RandWrite);
        let q = w.quick();
        assert_eq!(q.job.size, 8 << 20);
        let mut big = w.clone();
        big.job.bs = 1 << 20;
        big.job.size = 128 << 20;
        assert_eq!(big.quick().job.size, 64 << 20, "at least 64 blocks");
    }

    #[test]
    fn config_names_round_trip() {
        for c in Config::ALL {
            assert_eq!(Config::from_name(c.name()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
    }
}

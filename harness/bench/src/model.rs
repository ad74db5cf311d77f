//! `bench.json`: every sample of a run, what was compared, and the figures computed from them.

use bdsnap_fio::{DirectionSummary, JobSummary, Percentiles};
use serde::{Deserialize, Serialize};

use crate::plan::Config;
use crate::stats::{ratios_by_round, RatioStats, Spread};

/// Bumped when a reader of an older `bench.json` would misread a newer one.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole record of one `cargo xtask bench` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRun {
    pub schema: u32,
    pub run_id: String,
    pub started_unix: u64,
    /// `kvm` or `tcg`: numbers from different accelerators are not comparable.
    pub accel: String,
    pub host: String,
    pub quick: bool,
    pub rounds: u32,
    pub kernels: Vec<BenchKernel>,
    pub workloads: Vec<WorkloadInfo>,
    pub samples: Vec<Sample>,
    /// Units that did not produce their samples.
    #[serde(default)]
    pub failures: Vec<UnitFailure>,
    /// Kernel complaints (WARNING, BUG, ...) seen on a console during the run.
    #[serde(default)]
    pub console_findings: Vec<ConsoleFinding>,
    /// Computed from `samples` by [`BenchRun::compute`].
    #[serde(default)]
    pub results: Vec<CellResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchKernel {
    /// Matrix name (`6.1`).
    pub name: String,
    /// `uname -r`.
    pub release: String,
    pub package_version: String,
    pub compiler: String,
    pub boot_secs: f64,
    pub wall_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub name: String,
    pub description: String,
    pub source: String,
    pub rw: String,
    pub bs: u64,
    pub iodepth: u32,
    pub size: u64,
    pub writes: bool,
    /// The fio command line for the raw device.
    pub command: String,
}

/// One fio run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub kernel: String,
    pub workload: String,
    pub config: Config,
    pub round: u32,
    /// fio's JSON report, relative to the run directory.
    pub evidence: String,
    pub fio: JobSummary,
    /// First passes (`cow`, `dm-cow`): bytes the snapshot's store held after the unit, from
    /// its evidence (see [`crate::copies`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitFailure {
    pub kernel: String,
    pub workload: String,
    pub unit: String,
    pub round: u32,
    pub message: String,
    /// The unit's evidence directory, relative to the run directory.
    pub evidence: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleFinding {
    pub kernel: String,
    pub unit: String,
    pub finding: String,
}

/// Latency percentiles of one configuration: the median over rounds of each percentile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMedians {
    pub p50_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub p99_9_ns: Option<f64>,
    pub mean_ns: Option<f64>,
}

/// The figures of one kernel × workload × configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub kernel: String,
    pub workload: String,
    pub config: Config,
    pub samples: usize,
    /// IOPS of all directions together.
    pub iops: Spread,
    pub bw_bytes: Spread,
    /// `write` for workloads that write, `read` otherwise: the direction whose latency the
    /// configuration changes.
    pub latency_direction: String,
    pub latency: LatencyMedians,
    /// IOPS relative to raw, round by round; `None` for raw itself or without raw samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<RatioStats>,
    pub cpu_sys_median: f64,
}

fn direction(fio: &JobSummary, writes: bool) -> Option<&DirectionSummary> {
    if writes {
        fio.write.as_ref().or(fio.read.as_ref())
    } else {
        fio.read.as_ref().or(fio.write.as_ref())
    }
}

fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    crate::stats::median(&v)
}

impl BenchRun {
    pub fn workload(&self, name: &str) -> Option<&WorkloadInfo> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// Fills `results` from `samples`: per kernel, workload and configuration, medians and
    /// spreads, and ratios to raw paired round by round.
    pub fn compute(&mut self) {
        let mut results = Vec::new();
        for kernel in &self.kernels {
            for w in &self.workloads {
                let of = |config: Config| -> Vec<&Sample> {
                    self.samples
                        .iter()
                        .filter(|s| {
                            s.kernel == kernel.name && s.workload == w.name && s.config == config
                        })
                        .collect()
                };
                let raw: Vec<(u32, f64)> = of(Config::Raw)
                    .iter()
                    .map(|s| (s.round, s.fio.total_iops()))
                    .collect();
                for config in Config::ALL {
                    let samples = of(config);
                    let iops: Vec<f64> = samples.iter().map(|s| s.fio.total_iops()).collect();
                    let Some(iops_spread) = Spread::of(&iops) else {
                        continue;
                    };
                    let bw: Vec<f64> = samples
                        .iter()
                        .map(|s| s.fio.total_bw_bytes() as f64)
                        .collect();
                    let dirs: Vec<Option<&DirectionSummary>> = samples
                        .iter()
                        .map(|s| direction(&s.fio, w.writes))
                        .collect();
                    let pct = |f: fn(&Percentiles) -> Option<u64>| {
                        median_of(
                            dirs.iter()
                                .map(|d| d.and_then(|d| f(&d.percentiles)).map(|v| v as f64)),
                        )
                    };
                    let latency = LatencyMedians {
                        p50_ns: pct(|p| p.p50_ns),
                        p99_ns: pct(|p| p.p99_ns),
                        p99_9_ns: pct(|p| p.p99_9_ns),
                        mean_ns: median_of(dirs.iter().map(|d| d.map(|d| d.lat_mean_ns))),
                    };
                    let ratio = if config == Config::Raw {
                        None
                    } else {
                        let mine: Vec<(u32, f64)> = samples
                            .iter()
                            .map(|s| (s.round, s.fio.total_iops()))
                            .collect();
                        ratios_by_round(&mine, &raw)
                    };
                    results.push(CellResult {
                        kernel: kernel.name.clone(),
                        workload: w.name.clone(),
                        config,
                        samples: samples.len(),
                        iops: iops_spread,
                        bw_bytes: Spread::of(&bw).unwrap_or(iops_spread),
                        latency_direction: if w.writes { "write" } else { "read" }.to_string(),
                        latency,
                        ratio,
                        cpu_sys_median: median_of(samples.iter().map(|s| Some(s.fio.sys_cpu)))
                            .unwrap_or(0.0),
                    });
                }
            }
        }
        self.results = results;
    }

    pub fn result(&self, kernel: &str, workload: &str, config: Config) -> Option<&CellResult> {
        self.results
            .iter()
            .find(|r| r.kernel == kernel && r.workload == workload && r.config == config)
    }

    /// The configurations that have results, in the canonical order.
    pub fn configs_present(&self) -> Vec<Config> {
        Config::ALL
            .into_iter()
            .filter(|c| self.results.iter().any(|r| r.config == *c))
            .collect()
    }
}

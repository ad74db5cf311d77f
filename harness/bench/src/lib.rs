//! bdsnap-bench: what the filter, tracking and snapshots cost, measured against the raw device
//! and dm-snapshot, and the files that say so.
//!
//! Data flows one way: [`plan`] turns the workloads of `scenarios/bench/*.yaml` into
//! interleaved units (small scenarios the harness runs in one VM per kernel), the harness
//! records each fio run as a [`Sample`] in a [`BenchRun`], [`BenchRun::compute`] derives
//! medians and ratios, and [`write_outputs`] writes `bench.json`, `report.md` and the SVG charts.
//! [`compare()`] sets a run against a baseline.

pub mod compare;
pub mod copies;
pub mod model;
pub mod plan;
pub mod plots;
pub mod report;
pub mod stats;

use std::path::{Path, PathBuf};

pub use compare::{compare, regressions, Comparison, Verdict};
pub use model::{
    BenchKernel, BenchRun, CellResult, ConsoleFinding, Sample, UnitFailure, WorkloadInfo,
    SCHEMA_VERSION,
};
pub use plan::{plan, Config, PlannedUnit, UnitKind, Workload};
pub use stats::{median, quantile, RatioStats, Spread};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{file}:{line}: {message}")]
    Workload {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: schema {found}, this harness reads schema {SCHEMA_VERSION}", path.display())]
    Schema { path: PathBuf, found: u32 },
    #[error("{}: cannot draw: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

/// What [`write_outputs`] wrote, relative to the directory.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub bench_json: PathBuf,
    pub report: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// Writes `bench.json`, the charts and `report.md` into `dir`.
pub fn write_outputs(
    run: &BenchRun,
    dir: &Path,
    comparison: Option<(&str, &[Comparison])>,
) -> Result<Outputs, BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let bench_json = dir.join("bench.json");
    let json = serde_json::to_string_pretty(run).map_err(|source| BenchError::Json {
        path: bench_json.clone(),
        source,
    })?;
    write(&bench_json, json.as_bytes())?;
    let plots = plots::write_all(run, dir)?;
    let report = dir.join("report.md");
    write(&report, report::render(run, &plots, comparison).as_bytes())?;
    Ok(Outputs {
        bench_json,
        report,
        plots,
    })
}

/// Reads a run's `bench.json` (the file, or the directory that holds it).
pub fn load_run(path: &Path) -> Result<BenchRun, BenchError> {
    let file = if path.is_dir() {
        path.join("bench.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| BenchError::Io {
        path: file.clone(),
        source,
    })?;
    let run: BenchRun = serde_json::from_str(&text).map_err(|source| BenchError::Json {
        path: file.clone(),
        source,
    })?;
    if run.schema != SCHEMA_VERSION {
        return Err(BenchError::Schema {
            path: file,
            found: run.schema,
        });
    }
    Ok(run)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, bytes).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}
